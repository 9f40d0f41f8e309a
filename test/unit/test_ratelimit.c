/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the ratelimit module's arithmetic, on a clock the tests
 * set: a bucket's burst, its refill, Retry-After, and the bounded table's
 * least-recently-used eviction and IPv6 aggregation; and the slow-client
 * meter of timeouts.client_min_bytes_per_s (rate.h).
 */
#include "config.h"
#include <check.h>
#include <string.h>
#include "revproxy/ratelimit.h"
#include "rate.h"

static rp_ip_t
ip(const char *s)
{
    rp_ip_t a;
    ck_assert_int_eq(rp_ip_parse(s, strlen(s), false, &a), 0);
    return a;
}

START_TEST(test_bucket)
{
    rp_bucket_t b;
    unsigned retry = 0;
    uint64_t t = 1000000;
    rp_bucket_init(&b, 5, t);
    for (int i = 0; i < 5; i++)
        ck_assert(rp_bucket_take(&b, 2, 5, t, &retry));   /* the burst */
    ck_assert(!rp_bucket_take(&b, 2, 5, t, &retry));
    ck_assert_uint_eq(retry, 1);                          /* 0.5 s: one whole second */
    ck_assert(!rp_bucket_take(&b, 2, 5, t + 499999, &retry));
    ck_assert(rp_bucket_take(&b, 2, 5, t + 500000, &retry));   /* 2/s: one every 0.5 s */
    ck_assert(!rp_bucket_take(&b, 2, 5, t + 500000, &retry));
    /* A long pause fills it to the burst, no more. */
    t += 3600u * 1000000u;
    for (int i = 0; i < 5; i++)
        ck_assert(rp_bucket_take(&b, 2, 5, t, &retry));
    ck_assert(!rp_bucket_take(&b, 2, 5, t, &retry));
    /* A slow rate: the wait in whole seconds, rounded up. */
    rp_bucket_init(&b, 1, t);
    ck_assert(rp_bucket_take(&b, 1, 1, t, &retry));
    ck_assert(!rp_bucket_take(&b, 1, 1, t + 1, &retry));
    ck_assert_uint_eq(retry, 1);
    /* A clock that goes back refills nothing. */
    ck_assert(!rp_bucket_take(&b, 1, 1, t - 5000000, &retry));
}
END_TEST

START_TEST(test_table_lru)
{
    /* 32 addresses at most (2 a shard): the least recent go first. */
    rp_rltable_t *tb = rp_rltable_new(32);
    unsigned retry;
    uint64_t t = 1;
    rp_ip_t keys[200];
    for (int i = 0; i < 200; i++) {
        keys[i] = ip("192.0.2.0");
        keys[i].b[14] = (uint8_t)(i >> 8);
        keys[i].b[15] = (uint8_t)i;
        ck_assert(rp_rltable_take(tb, &keys[i], 1, 1, t, &retry));
        ck_assert_uint_le(rp_rltable_count(tb), 32);
    }
    ck_assert_uint_eq(rp_rltable_count(tb), 32);
    /* The most recent is still tracked (its bucket is empty); an early
     * one was forgotten (a full bucket again). */
    ck_assert(!rp_rltable_take(tb, &keys[199], 1, 1, t, &retry));
    ck_assert(rp_rltable_take(tb, &keys[0], 1, 1, t, &retry));
    rp_rltable_free(tb);
}
END_TEST

START_TEST(test_keys_v6_prefix)
{
    rp_ip_t a = ip("2001:db8:1:2:aaaa::1"), b = ip("2001:db8:1:2:bbbb::9"),
            c = ip("2001:db8:1:3::1"), v4 = ip("192.0.2.77");
    rp_ip_t ka, kb, kc, k4;
    rp_rl_key(&a, 64, &ka);
    rp_rl_key(&b, 64, &kb);
    rp_rl_key(&c, 64, &kc);
    rp_rl_key(&v4, 64, &k4);
    ck_assert_mem_eq(ka.b, kb.b, 16);         /* one /64 */
    ck_assert(memcmp(ka.b, kc.b, 16) != 0);   /* another */
    ck_assert_mem_eq(k4.b, v4.b, 16);         /* IPv4 whole */
    rp_rl_key(&a, 128, &ka);
    ck_assert_mem_eq(ka.b, a.b, 16);
}
END_TEST

/* The slow-client meter, on times the test sets (µs). */
START_TEST(test_slow_meter)
{
    rp_rate_t m;
    memset(&m, 0, sizeof m);
    const uint64_t W = RP_RATE_WINDOW_US;
    uint64_t t = 5000000;
    ck_assert(!rp_rate_running(&m));
    ck_assert(!rp_rate_too_slow(&m, t, 0, 1000));   /* not running: never */
    rp_rate_start(&m, t, 100);
    ck_assert(rp_rate_running(&m));
    ck_assert_uint_eq(rp_rate_due_ms(&m, t), RP_RATE_WINDOW_MS);
    ck_assert_uint_eq(rp_rate_due_ms(&m, t + 2500000), RP_RATE_WINDOW_MS - 2500);
    /* Not judged before the window ends, however little moved. */
    ck_assert(!rp_rate_too_slow(&m, t + W - 1, 101, 1000));
    /* 10 s at 1000 B/s: 10,000 bytes pass, 9,999 do not. */
    ck_assert(rp_rate_too_slow(&m, t + W, 100 + 9999, 1000));
    rp_rate_start(&m, t, 100);
    ck_assert(!rp_rate_too_slow(&m, t + W, 100 + 10000, 1000));
    /* A window passed begins anew from there. */
    ck_assert_uint_eq(m.since_us, t + W);
    ck_assert_uint_eq(m.base, 10100);
    ck_assert(rp_rate_too_slow(&m, t + 2 * W, 10100 + 5000, 1000));
    /* Nothing moved: a stall, left to client_idle_ms; the window begins
     * anew, so a client that then goes at the minimum is not cut for the
     * pause, while a trickle after it is judged on its own window. */
    rp_rate_start(&m, t, 0);
    ck_assert(!rp_rate_too_slow(&m, t + W, 0, 1000));
    ck_assert_uint_eq(m.since_us, t + W);
    ck_assert(!rp_rate_too_slow(&m, t + 3 * W, 0, 1000));
    ck_assert(!rp_rate_too_slow(&m, t + 4 * W, 10000, 1000));   /* resumed at the minimum */
    rp_rate_start(&m, t, 0);
    ck_assert(!rp_rate_too_slow(&m, t + W, 0, 1000));
    ck_assert(rp_rate_too_slow(&m, t + 2 * W, 1, 1000));       /* one byte in a window */
    /* Paused (the backend was the slower one): its time does not count. */
    rp_rate_start(&m, t, 0);
    rp_rate_pause(&m, t + 4000000, 2000);                  /* 4 s, 2000 bytes */
    ck_assert(!rp_rate_running(&m));
    ck_assert(!rp_rate_too_slow(&m, t + W, 2000, 1000));   /* paused: not judged */
    rp_rate_resume(&m, t + 60000000, 5000);                 /* a minute later */
    ck_assert_uint_eq(rp_rate_due_ms(&m, t + 60000000), 6000);
    ck_assert(!rp_rate_too_slow(&m, t + 60000000 + 5999999, 5000, 1000));
    /* 10 s waited, 2000 + 7000 moved: too slow; 2000 + 8000: not. */
    ck_assert(rp_rate_too_slow(&m, t + 66000000, 12000, 1000));
    rp_rate_start(&m, t, 0);
    rp_rate_pause(&m, t + 4000000, 2000);
    rp_rate_resume(&m, t + 60000000, 5000);
    ck_assert(!rp_rate_too_slow(&m, t + 66000000, 13000, 1000));
    /* Resuming a running meter changes nothing; stop forgets the spans. */
    rp_rate_start(&m, t, 0);
    rp_rate_resume(&m, t + 5000000, 777);
    ck_assert_uint_eq(m.since_us, t);
    rp_rate_pause(&m, t + 5000000, 10);
    rp_rate_stop(&m);
    rp_rate_resume(&m, t + 6000000, 10);
    ck_assert_uint_eq(rp_rate_due_ms(&m, t + 6000000), RP_RATE_WINDOW_MS);
    /* 0: no minimum. */
    rp_rate_start(&m, t, 0);
    ck_assert(!rp_rate_too_slow(&m, t + W, 1, 0));
    /* The largest minimum late by a day, and counts going backwards (a
     * counter the kernel reset), do not wrap. */
    rp_rate_start(&m, t, 0);
    ck_assert(rp_rate_too_slow(&m, t + 86400ull * 1000000u, 1, 100000000));
    rp_rate_start(&m, t, 500);
    ck_assert(!rp_rate_too_slow(&m, t + W, 10, 1000));
    rp_rate_stop(&m);
    ck_assert(!rp_rate_running(&m));
    /* A start at time 0 still runs. */
    rp_rate_start(&m, 0, 0);
    ck_assert(rp_rate_running(&m));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("ratelimit");
    tcase_add_test(tc, test_bucket);
    tcase_add_test(tc, test_table_lru);
    tcase_add_test(tc, test_keys_v6_prefix);
    tcase_add_test(tc, test_slow_meter);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
