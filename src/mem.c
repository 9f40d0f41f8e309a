/* SPDX-License-Identifier: MIT */
/*
 * A per-thread cache of small blocks for the libraries that allocate and
 * free on every request: libevent (buffer chains) and nghttp2 (streams,
 * frames, copies of header lists).  A request makes about eight of these
 * allocations; in bursts of many streams they miss glibc's small per-thread
 * cache and go to its slower paths.  Here a block is rounded up to a size
 * class and, when freed, kept on the freeing thread's list for that class
 * (a block of a class is interchangeable with any other, whichever thread
 * made it), up to MEM_KEEP_BYTES per class and thread; beyond that, and
 * for blocks larger than the largest class, malloc and free are used.
 *
 * Each block carries a 16-byte header (its class, and its size when it
 * has no class) in front of what the caller sees, which keeps malloc's
 * 16-byte alignment.  Under AddressSanitizer nothing is installed, so the
 * sanitizer sees every allocation of the libraries as it is.
 */
#include "config.h"
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "failmalloc.h"
#include "mem.h"
#include "util.h"

#define MEM_HDR 16
#define MEM_KEEP_BYTES (256u * 1024u)

static const size_t class_size[] = { 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384 };
#define NCLASS RP_ARRAY_LEN(class_size)

typedef struct mem_hdr {
    size_t   size;    /* usable bytes */
    unsigned cls;     /* index in class_size, or NCLASS */
} mem_hdr_t;
_Static_assert(sizeof(mem_hdr_t) <= MEM_HDR, "header fits");
_Static_assert(MEM_HDR % _Alignof(max_align_t) == 0, "blocks keep malloc's alignment");

typedef struct mem_free {
    struct mem_free *next;
} mem_free_t;

static _Thread_local struct {
    mem_free_t *head[NCLASS];
    unsigned    n[NCLASS];
} cache;

static bool installed;

static unsigned
class_of(size_t n)
{
    for (unsigned c = 0; c < NCLASS; c++)
        if (n <= class_size[c])
            return c;
    return NCLASS;
}

void *
rp_mem_malloc(size_t n)
{
    unsigned c = class_of(n);
    mem_hdr_t *h;
    if (c < NCLASS && cache.head[c] != NULL) {
        mem_free_t *f = cache.head[c];
        RP_UNPOISON(f, class_size[c]);
        cache.head[c] = f->next;
        cache.n[c]--;
        h = (mem_hdr_t *)((char *)f - MEM_HDR);
        return (char *)h + MEM_HDR;
    }
    size_t usable = c < NCLASS ? class_size[c] : n;
    if (usable > SIZE_MAX - MEM_HDR) {
        errno = ENOMEM;
        return NULL;
    }
    h = malloc(MEM_HDR + usable);
    if (h == NULL)
        return NULL;
    h->size = usable;
    h->cls = c;
    return (char *)h + MEM_HDR;
}

void
rp_mem_free(void *p)
{
    if (p == NULL)
        return;
    mem_hdr_t *h = (mem_hdr_t *)((char *)p - MEM_HDR);
    unsigned c = h->cls;
    if (c < NCLASS && cache.n[c] < MEM_KEEP_BYTES / class_size[c]) {
        mem_free_t *f = p;
        f->next = cache.head[c];
        cache.head[c] = f;
        cache.n[c]++;
        RP_POISON(f, class_size[c]);
        return;
    }
    free(h);
}

void *
rp_mem_calloc(size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = rp_mem_malloc(nmemb * size);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

void *
rp_mem_realloc(void *p, size_t n)
{
    if (p == NULL)
        return rp_mem_malloc(n);
    if (n == 0) {
        /* As glibc's realloc: the block is freed. */
        rp_mem_free(p);
        return NULL;
    }
    mem_hdr_t *h = (mem_hdr_t *)((char *)p - MEM_HDR);
    if (n <= h->size)
        return p;
    void *q = rp_mem_malloc(n);
    if (q == NULL)
        return NULL;   /* p is left as it was, as realloc does */
    memcpy(q, p, h->size);
    rp_mem_free(p);
    return q;
}

size_t
rp_mem_cached(void)
{
    size_t bytes = 0;
    for (unsigned c = 0; c < NCLASS; c++)
        bytes += cache.n[c] * class_size[c];
    return bytes;
}

void
rp_mem_cache_free(void)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        mem_free_t *f;
        while ((f = cache.head[c]) != NULL) {
            RP_UNPOISON(f, class_size[c]);
            cache.head[c] = f->next;
            free((char *)f - MEM_HDR);
        }
        cache.n[c] = 0;
    }
}

/* nghttp2's allocator interface. */
static void *ng_malloc(size_t n, void *ud) { (void)ud; return rp_mem_malloc(n); }
static void ng_free(void *p, void *ud) { (void)ud; rp_mem_free(p); }
static void *ng_calloc(size_t nmemb, size_t size, void *ud) { (void)ud; return rp_mem_calloc(nmemb, size); }
static void *ng_realloc(void *p, size_t n, void *ud) { (void)ud; return rp_mem_realloc(p, n); }

static nghttp2_mem ng_mem = { NULL, ng_malloc, ng_free, ng_calloc, ng_realloc };

#ifdef RP_FAILMALLOC
/* With failure injection, nghttp2 allocates through the C library's
 * functions, which the binary's link sends to the injecting wrappers. */
static void *fm_malloc(size_t n, void *ud) { (void)ud; return malloc(n); }
static void fm_free(void *p, void *ud) { (void)ud; free(p); }
static void *fm_calloc(size_t nmemb, size_t size, void *ud) { (void)ud; return calloc(nmemb, size); }
static void *fm_realloc(void *p, size_t n, void *ud) { (void)ud; return realloc(p, n); }
static nghttp2_mem fm_mem = { NULL, fm_malloc, fm_free, fm_calloc, fm_realloc };
#endif

void
rp_mem_install(void)
{
#if defined(RP_FAILMALLOC)
    rp_fm_install();   /* no cache: every allocation goes to the wrappers */
#elif !defined(RP_ASAN)
    event_set_mem_functions(rp_mem_malloc, rp_mem_realloc, rp_mem_free);
    installed = true;
#endif
}

nghttp2_mem *
rp_mem_nghttp2(void)
{
#ifdef RP_FAILMALLOC
    (void)ng_mem;
    (void)installed;
    return &fm_mem;
#else
    return installed ? &ng_mem : NULL;
#endif
}
