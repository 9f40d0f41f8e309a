/* SPDX-License-Identifier: MIT */
/*
 * The allocation functions of a --enable-failmalloc binary: the link
 * (-Wl,--wrap=malloc,...) sends every call revproxy's objects make to
 * these, which fail when failmalloc.c says so and otherwise call the C
 * library's (or the sanitizer's).
 */
#include "config.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include "failmalloc.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *
__wrap_malloc(size_t n)
{
    if (rp_fm_fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *
__wrap_calloc(size_t nmemb, size_t size)
{
    if (rp_fm_fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(nmemb, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    if (rp_fm_fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

char *
__wrap_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = __wrap_malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *
__wrap_strdup(const char *s)
{
    return __wrap_strndup(s, strlen(s));
}
