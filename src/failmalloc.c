/* SPDX-License-Identifier: MIT */
/* Allocation-failure injection (see failmalloc.h). */
#include "config.h"
#ifdef RP_FAILMALLOC
#include <execinfo.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include "failmalloc.h"

static _Thread_local bool is_worker;
static _Thread_local bool in_reload;
static _Thread_local volatile bool in_library;   /* inside OpenSSL's allocator hook (volatile:
                                                  * a compiler may take malloc for
                                                  * one that cannot see it) */
static atomic_bool own_only;            /* count revproxy's own calls only */

static atomic_int  scope;          /* 0: disarmed */
static atomic_long to_skip;        /* counted allocations still to pass */
static atomic_long to_fail;        /* then this many fail */
static atomic_ulong n_counted;
static atomic_ulong n_failed;
static bool trace;   /* REVPROXY_FAILMALLOC_TRACE: each failure's stack to stderr */

void
rp_fm_worker_thread(void)
{
    is_worker = true;
}

void
rp_fm_reload_scope(bool inside)
{
    in_reload = inside;
}

void
rp_fm_arm(long after, long count, enum rp_fm_scope sc, bool own, unsigned long *counted,
          unsigned long *failed)
{
    atomic_store(&scope, 0);
    atomic_store(&own_only, own);
    *counted = atomic_exchange(&n_counted, 0);
    *failed = atomic_exchange(&n_failed, 0);
    if (after <= 0)
        return;
    atomic_store(&to_skip, after - 1);
    atomic_store(&to_fail, count > 0 ? count : 1);
    atomic_store(&scope, (int)sc);
}

bool
rp_fm_fail_now(void)
{
    int sc = atomic_load_explicit(&scope, memory_order_relaxed);
    if (sc == 0)
        return false;
    if (!(sc == RP_FM_WORKERS ? is_worker : in_reload && !is_worker))
        return false;
    if (in_library && atomic_load_explicit(&own_only, memory_order_relaxed))
        return false;
    atomic_fetch_add(&n_counted, 1);
    if (atomic_fetch_sub(&to_skip, 1) > 0)
        return false;
    if (atomic_fetch_sub(&to_fail, 1) > 0) {
        atomic_fetch_add(&n_failed, 1);
        if (trace) {
            void *pcs[24];
            int n = backtrace(pcs, 24);
            static const char hdr[] = "failmalloc: failing an allocation at\n";
            if (write(2, hdr, sizeof hdr - 1) < 0)
                return true;
            backtrace_symbols_fd(pcs, n, 2);
        }
        return true;
    }
    atomic_store(&scope, 0);   /* done: the rest goes through */
    return false;
}

/* The libraries' hooks call malloc, which in the binary is the wrapper
 * (failmalloc_wrap.c): one place decides. */
static void *ev_malloc(size_t n) { return malloc(n); }
static void *ev_realloc(void *p, size_t n) { return realloc(p, n); }
static void ev_free(void *p) { free(p); }
static void *
ssl_malloc(size_t n, const char *f, int l)
{
    (void)f;
    (void)l;
    in_library = true;
    void *p = malloc(n);
    in_library = false;
    return p;
}

static void *
ssl_realloc(void *p, size_t n, const char *f, int l)
{
    (void)f;
    (void)l;
    in_library = true;
    void *q = realloc(p, n);
    in_library = false;
    return q;
}
static void ssl_free(void *p, const char *f, int l) { (void)f; (void)l; free(p); }

void
rp_fm_install(void)
{
    trace = getenv("REVPROXY_FAILMALLOC_TRACE") != NULL;
    if (trace) {
        void *pc;
        backtrace(&pc, 1);   /* loads what backtrace needs, now */
    }
    event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
    CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free);
}
#else
typedef int rp_failmalloc_unused;   /* ISO C wants a declaration */
#endif
