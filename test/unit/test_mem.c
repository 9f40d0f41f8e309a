/* SPDX-License-Identifier: MIT */
/*
 * The per-thread block cache libevent and nghttp2 allocate through:
 * size classes, reuse, the bound on what a thread keeps, realloc and
 * calloc semantics, blocks freed on another thread, and an nghttp2
 * session running on it.
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>
#include "mem.h"
#include "util.h"

START_TEST(test_sizes_are_usable_and_aligned)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 65, 1000, 16384, 16385, 100000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = rp_mem_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, 0xa5, sizes[i]);
        rp_mem_free(p);
    }
    rp_mem_free(NULL);
    rp_mem_cache_free();
    ck_assert_uint_eq(rp_mem_cached(), 0);
}
END_TEST

START_TEST(test_freed_block_is_reused_for_its_class)
{
    rp_mem_cache_free();
    void *p = rp_mem_malloc(100);
    rp_mem_free(p);
    ck_assert_uint_eq(rp_mem_cached(), 128);
    void *q = rp_mem_malloc(128);   /* same class: the same block */
    ck_assert_ptr_eq(p, q);
    ck_assert_uint_eq(rp_mem_cached(), 0);
    void *r = rp_mem_malloc(129);   /* next class: another block */
    ck_assert_ptr_ne(q, r);
    rp_mem_free(q);
    rp_mem_free(r);
    /* Blocks above the largest class are not kept. */
    rp_mem_free(rp_mem_malloc(20000));
    ck_assert_uint_eq(rp_mem_cached(), 128 + 256);
    rp_mem_cache_free();
    ck_assert_uint_eq(rp_mem_cached(), 0);
}
END_TEST

START_TEST(test_a_thread_keeps_a_bounded_amount)
{
    rp_mem_cache_free();
    enum { N = 3 * 8192 };   /* 1.5 MiB of 64-byte blocks */
    void **v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < N; i++)
        v[i] = rp_mem_malloc(64);
    for (int i = 0; i < N; i++)
        rp_mem_free(v[i]);
    ck_assert_uint_eq(rp_mem_cached(), 256 * 1024);
    /* 100 blocks of the largest class: 16 are kept. */
    for (int i = 0; i < 100; i++)
        v[i] = rp_mem_malloc(16384);
    for (int i = 0; i < 100; i++)
        rp_mem_free(v[i]);
    ck_assert_uint_eq(rp_mem_cached(), 2 * 256 * 1024);
    free(v);
    rp_mem_cache_free();
}
END_TEST

START_TEST(test_realloc_keeps_contents)
{
    unsigned char *p = rp_mem_realloc(NULL, 10);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 10; i++)
        p[i] = (unsigned char)i;
    /* Within the class: the block stays. */
    ck_assert_ptr_eq(rp_mem_realloc(p, 64), p);
    ck_assert_ptr_eq(rp_mem_realloc(p, 5), p);
    /* Across classes and past the largest one. */
    p = rp_mem_realloc(p, 5000);
    ck_assert_ptr_nonnull(p);
    p[4999] = 0x5a;
    p = rp_mem_realloc(p, 70000);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(p[i], (unsigned)i);
    ck_assert_uint_eq(p[4999], 0x5a);
    p[69999] = 1;
    ck_assert_ptr_eq(rp_mem_realloc(p, 100), p);
    /* Size 0 frees, as glibc's realloc does. */
    ck_assert_ptr_null(rp_mem_realloc(p, 0));
    rp_mem_cache_free();
}
END_TEST

START_TEST(test_calloc_zeroes_a_reused_block)
{
    unsigned char *p = rp_mem_malloc(200);
    memset(p, 0xff, 200);
    rp_mem_free(p);
    unsigned char *q = rp_mem_calloc(25, 8);
    ck_assert_ptr_eq(p, q);
    for (int i = 0; i < 200; i++)
        ck_assert_uint_eq(q[i], 0);
    rp_mem_free(q);
    errno = 0;
    ck_assert_ptr_null(rp_mem_calloc(SIZE_MAX / 2, 4));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(rp_mem_malloc(SIZE_MAX - 4));
    ck_assert_int_eq(errno, ENOMEM);
    rp_mem_cache_free();
}
END_TEST

typedef struct freer {
    void  *block;
    size_t before, after;   /* the thread's cache around its free */
} freer_t;

static void *
free_here(void *arg)
{
    freer_t *f = arg;
    f->before = rp_mem_cached();
    rp_mem_free(f->block);
    f->after = rp_mem_cached();
    rp_mem_cache_free();
    return NULL;
}

START_TEST(test_block_freed_on_another_thread)
{
    rp_mem_cache_free();
    /* This thread's cache holds a block; the other thread's is its own. */
    rp_mem_free(rp_mem_malloc(200));
    ck_assert_uint_eq(rp_mem_cached(), 256);
    freer_t f = { .block = rp_mem_malloc(1000) };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, free_here, &f), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_uint_eq(f.before, 0);
    ck_assert_uint_eq(f.after, 1024);
    ck_assert_uint_eq(rp_mem_cached(), 256);
    rp_mem_cache_free();
}
END_TEST

/* Two threads allocating, writing and freeing at once, some blocks
 * handed across: each block stays intact while held (a cache shared
 * without locks would hand one block to both). */
enum { STRESS_ROUNDS = 20000, STRESS_HELD = 64 };

static void *
stress(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned char *held[STRESS_HELD] = { NULL };
    size_t size[STRESS_HELD] = { 0 };
    unsigned char tag = (unsigned char)(seed & 0xff);
    for (int r = 0; r < STRESS_ROUNDS; r++) {
        unsigned i = (unsigned)rand_r(&seed) % STRESS_HELD;
        if (held[i] != NULL) {
            for (size_t k = 0; k < size[i]; k++)
                if (held[i][k] != tag)
                    return (void *)1;
            rp_mem_free(held[i]);
        }
        size[i] = 1 + (size_t)rand_r(&seed) % 3000;
        held[i] = rp_mem_malloc(size[i]);
        if (held[i] == NULL)
            return (void *)1;
        memset(held[i], tag, size[i]);
    }
    for (unsigned i = 0; i < STRESS_HELD; i++)
        rp_mem_free(held[i]);
    rp_mem_cache_free();
    return NULL;
}

START_TEST(test_two_threads_at_once)
{
    pthread_t a, b;
    void *ra, *rb;
    ck_assert_int_eq(pthread_create(&a, NULL, stress, (void *)(uintptr_t)0x11), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, stress, (void *)(uintptr_t)0x22), 0);
    ck_assert_int_eq(pthread_join(a, &ra), 0);
    ck_assert_int_eq(pthread_join(b, &rb), 0);
    ck_assert_ptr_null(ra);
    ck_assert_ptr_null(rb);
}
END_TEST

static ssize_t
discard(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *ud)
{
    (void)s, (void)d, (void)fl, (void)ud;
    return (ssize_t)n;
}

START_TEST(test_nghttp2_session_on_the_cache)
{
    rp_mem_install();
    nghttp2_mem *mem = rp_mem_nghttp2();
#if !defined(RP_ASAN)
    ck_assert_ptr_nonnull(mem);
#endif
    nghttp2_session_callbacks *cb;
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_send_callback(cb, discard);
    nghttp2_session *c;
    ck_assert_int_eq(nghttp2_session_client_new3(&c, cb, NULL, NULL, mem), 0);
    ck_assert_int_eq(nghttp2_submit_settings(c, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    for (int i = 0; i < 200; i++) {
        const nghttp2_nv nv[] = {
            { (uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0 },
            { (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
            { (uint8_t *)":path", (uint8_t *)"/", 5, 1, 0 },
            { (uint8_t *)":authority", (uint8_t *)"a", 10, 1, 0 },
        };
        ck_assert_int_gt(nghttp2_submit_request(c, NULL, nv, 4, NULL, NULL), 0);
        ck_assert_int_eq(nghttp2_session_send(c), 0);
    }
    nghttp2_session_del(c);
    nghttp2_session_callbacks_del(cb);
#if !defined(RP_ASAN)
    ck_assert_uint_gt(rp_mem_cached(), 0);
#endif
    rp_mem_cache_free();
}
END_TEST

static Suite *
mem_suite(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("cache");
    tcase_add_test(tc, test_sizes_are_usable_and_aligned);
    tcase_add_test(tc, test_freed_block_is_reused_for_its_class);
    tcase_add_test(tc, test_a_thread_keeps_a_bounded_amount);
    tcase_add_test(tc, test_realloc_keeps_contents);
    tcase_add_test(tc, test_calloc_zeroes_a_reused_block);
    tcase_add_test(tc, test_block_freed_on_another_thread);
    tcase_add_test(tc, test_two_threads_at_once);
    tcase_add_test(tc, test_nghttp2_session_on_the_cache);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(mem_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
