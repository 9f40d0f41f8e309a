/* SPDX-License-Identifier: MIT */
/*
 * Per-thread size-class cache for the allocations libevent and nghttp2
 * make on every request (see mem.c).
 */
#ifndef RP_MEM_H
#define RP_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <nghttp2/nghttp2.h>

void *rp_mem_malloc(size_t n);
void *rp_mem_calloc(size_t nmemb, size_t size);
void *rp_mem_realloc(void *p, size_t n);
void rp_mem_free(void *p);

/* Bytes kept in this thread's lists. */
size_t rp_mem_cached(void);
/* Give this thread's lists back to malloc (a thread does so as it ends). */
void rp_mem_cache_free(void);

/* Make libevent allocate through the cache: called first thing in main,
 * before libevent allocates anything.  Does nothing under
 * AddressSanitizer.  Once installed, memory libevent hands to its caller
 * to free (evbuffer_readln, evhttp_decode_uri, evhttp_uriencode, ...)
 * must be given back with rp_mem_free, never free(). */
void rp_mem_install(void);
/* The allocator for nghttp2 sessions: the cache once installed, else NULL
 * (nghttp2's own). */
nghttp2_mem *rp_mem_nghttp2(void);

#endif
