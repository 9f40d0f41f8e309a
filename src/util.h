/* SPDX-License-Identifier: MIT */
/*
 * Small helpers used everywhere: allocation that aborts on exhaustion (limits
 * bound memory, so running out is a bug or a lost machine, not an input
 * error) and clocks.
 */
#ifndef RP_UTIL_H
#define RP_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *rp_xmalloc(size_t n);
void *rp_xcalloc(size_t n, size_t size);
void *rp_xrealloc(void *p, size_t n);
char *rp_xstrdup(const char *s);
char *rp_xstrndup(const char *s, size_t n);

/* Out of memory where no caller could do better: log and abort. */
void rp_die_oom(void) __attribute__((noreturn));
/* An allocation on the request path failed and `what` was given up (a
 * connection closed, a request answered 503): logged a line a second at
 * most, with how many happened since the last line (log.c). */
void rp_oom_note(const char *what);
/* The same for an event libevent could not register (rp_event_add), with
 * the errno it left. */
void rp_event_note(int err);

/* Monotonic clock in microseconds. */
uint64_t rp_now_us(void);
/* What is left of a limit of ms that started at since_us (0: now), at
 * least 1 ms. */
unsigned rp_ms_left(unsigned ms, uint64_t since_us);

#define RP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Objects kept in a free list for reuse are poisoned there under
 * AddressSanitizer, so that a use after "free" is still reported. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)   /* clang */
#define RP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)      /* gcc */
#define RP_ASAN 1
#endif
#if defined(RP_ASAN)
#include <sanitizer/asan_interface.h>
#define RP_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define RP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define RP_POISON(p, n) ((void)(p), (void)(n))
#define RP_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
