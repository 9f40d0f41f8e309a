/* SPDX-License-Identifier: MIT */
/*
 * Allocation-failure injection, for tests only (./configure
 * --enable-failmalloc).  Armed from the admin port (POST /failmalloc), it
 * makes the Nth allocation after arming fail, counting only allocations
 * made where the arming asked: on worker threads (the request path), or
 * on the main thread while a reload builds its configuration.  Counted
 * are revproxy's own malloc, calloc, realloc, strdup and strndup (the
 * binary is linked with --wrap for them, see failmalloc_wrap.c) and
 * those of libevent, OpenSSL, nghttp2 and jansson (their allocator hooks
 * lead to the same wrappers; jansson's is config.c's, always installed).  wslay and glibc itself allocate out of
 * sight.  Without --enable-failmalloc everything here compiles to
 * nothing and the endpoint does not exist.
 */
#ifndef RP_FAILMALLOC_H
#define RP_FAILMALLOC_H

#include <stdbool.h>

enum rp_fm_scope {
    RP_FM_WORKERS = 1,   /* allocations of worker threads */
    RP_FM_RELOAD  = 2,   /* the main thread's, while a reload builds */
};

#ifdef RP_FAILMALLOC
/* First thing in main: the libraries' allocator hooks. */
void rp_fm_install(void);
/* Marks the calling thread as a worker (its allocations can be failed). */
void rp_fm_worker_thread(void);
/* The main thread enters or leaves the building part of a reload. */
void rp_fm_reload_scope(bool inside);
/* Arm: after `after` counted allocations (0 disarms), fail `count` in a
 * row; own: count revproxy's own calls only, not OpenSSL's (a TLS
 * reload makes thousands).  The previous arming's report is returned:
 * how many allocations it counted and how many it failed. */
void rp_fm_arm(long after, long count, enum rp_fm_scope scope, bool own,
               unsigned long *counted, unsigned long *failed);
/* Whether the allocation being made should fail (the wrappers ask). */
bool rp_fm_fail_now(void);
#else
static inline void rp_fm_install(void) { }
static inline void rp_fm_worker_thread(void) { }
static inline void rp_fm_reload_scope(bool inside) { (void)inside; }
#endif

#endif
