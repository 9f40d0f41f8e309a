/* SPDX-License-Identifier: MIT */
/* Allocation wrappers and clocks. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util.h"

static void
oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void
rp_die_oom(void)
{
    oom(0);
    abort();
}

void *
rp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
rp_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *
rp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *
rp_xstrdup(const char *s)
{
    return rp_xstrndup(s, strlen(s));
}

char *
rp_xstrndup(const char *s, size_t n)
{
    char *p = rp_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t
rp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

unsigned
rp_ms_left(unsigned ms, uint64_t since_us)
{
    if (since_us == 0)
        return ms;
    uint64_t used = (rp_now_us() - since_us) / 1000u;
    return used >= ms ? 1 : ms - (unsigned)used;
}
