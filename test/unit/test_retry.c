/* SPDX-License-Identifier: MIT */
/*
 * Retries: when sending a request again is safe (method, what reached
 * the backend, the body kept, what reached the client), the full-jitter
 * backoff, and the budget over its sliding window on a clock the test
 * sets.
 */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/retry.h"

static const rp_retry_cfg_t defaults = {
    .max_retries = 2, .budget_percent = 20, .min_retries_per_s = 10,
    .backoff_base_ms = 25, .backoff_max_ms = 250, .max_body_bytes = 65536,
    .on_status = { 502, 503, 504 }, .non_status = 3 };

START_TEST(test_safe_table)
{
    /* Every combination: idempotent, written, body kept whole, response
     * started; safe exactly when nothing reached the client, the body can
     * be sent whole, and the backend got nothing or the method is
     * idempotent. */
    for (unsigned m = 0; m < 16; m++) {
        rp_retry_case_t c = { .idempotent = m & 1, .written = m & 2, .body_whole = m & 4,
                              .resp_started = m & 8 };
        bool want = !c.resp_started && c.body_whole && (!c.written || c.idempotent);
        ck_assert_msg(rp_retry_safe(&c) == want, "case %u", m);
    }
    /* The cases the issue names. */
    rp_retry_case_t post_connect_failed = { false, false, true, false };
    ck_assert(rp_retry_safe(&post_connect_failed));
    rp_retry_case_t post_reset_after_write = { false, true, true, false };
    ck_assert(!rp_retry_safe(&post_reset_after_write));
    rp_retry_case_t get_big_body = { true, true, false, false };
    ck_assert(!rp_retry_safe(&get_big_body));
    rp_retry_case_t get_after_relay = { true, true, true, true };
    ck_assert(!rp_retry_safe(&get_after_relay));
}
END_TEST

START_TEST(test_on_status)
{
    ck_assert(rp_retry_on_status(&defaults, 502));
    ck_assert(rp_retry_on_status(&defaults, 504));
    ck_assert(!rp_retry_on_status(&defaults, 500));
    ck_assert(!rp_retry_on_status(&defaults, 200));
}
END_TEST

START_TEST(test_backoff_bounds_and_spread)
{
    /* Caps: 25, 50, 100, 200, then 250 for every later retry. */
    static const unsigned cap[] = { 0, 25, 50, 100, 200, 250, 250, 250 };
    srandom(12345);
    for (unsigned n = 1; n < 8; n++) {
        unsigned lo = ~0u, hi = 0;
        unsigned hist[4] = { 0 };
        for (int i = 0; i < 20000; i++) {
            uint64_t rnd = ((uint64_t)random() << 31) ^ (uint64_t)random();
            unsigned ms = rp_retry_backoff_ms(&defaults, n, rnd);
            ck_assert_uint_le(ms, cap[n]);
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
            hist[ms * 4 / (cap[n] + 1)]++;
        }
        /* Full jitter: the whole range is used, evenly (each quarter
         * within 20% of its share). */
        ck_assert_uint_eq(lo, 0);
        ck_assert_uint_eq(hi, cap[n]);
        for (int q = 0; q < 4; q++)
            ck_assert_msg(hist[q] > 4000 && hist[q] < 6000, "n %u quarter %d: %u", n, q, hist[q]);
    }
    /* A huge retry number neither overflows nor passes the cap. */
    ck_assert_uint_le(rp_retry_backoff_ms(&defaults, 4000000000u, 999999), 250);
}
END_TEST

START_TEST(test_budget_percent_and_floor)
{
    rp_budget_t b;
    memset(&b, 0, sizeof b);
    rp_retry_cfg_t c = defaults;
    c.min_retries_per_s = 0;
    uint64_t t = 1000 * 1000000ull;   /* second 1000 */
    /* 100 requests: 20 retries, not 21. */
    for (int i = 0; i < 100; i++)
        rp_budget_request(&b, t);
    int granted = 0;
    for (int i = 0; i < 50; i++)
        granted += rp_budget_retry(&b, &c, t);
    ck_assert_int_eq(granted, 20);
    /* The floor: min_retries_per_s for each second of the window with
     * traffic: 3 in the first second, 3 more in the next... */
    rp_budget_t f;
    memset(&f, 0, sizeof f);
    c.min_retries_per_s = 3;
    granted = 0;
    for (int i = 0; i < 100; i++)
        granted += rp_budget_retry(&f, &c, t);
    ck_assert_int_eq(granted, 3);
    for (int i = 0; i < 100; i++)
        granted += rp_budget_retry(&f, &c, t + 1000000);
    ck_assert_int_eq(granted, 6);
    /* ... and a burst after ten quiet seconds starts from one second's. */
    granted = 0;
    for (int i = 0; i < 100; i++)
        granted += rp_budget_retry(&f, &c, t + 30 * 1000000ull);
    ck_assert_int_eq(granted, 3);
}
END_TEST

START_TEST(test_budget_window_slides)
{
    rp_budget_t b;
    memset(&b, 0, sizeof b);
    rp_retry_cfg_t c = defaults;
    c.min_retries_per_s = 0;
    uint64_t s0 = 5000;
    /* Steady load, 50 requests a second; each second tries 30 retries. */
    int granted_late = 0, tried_late = 0;
    for (uint64_t s = s0; s < s0 + 30; s++) {
        uint64_t t = s * 1000000ull + 500000;
        for (int i = 0; i < 50; i++)
            rp_budget_request(&b, t);
        for (int i = 0; i < 30; i++) {
            bool ok = rp_budget_retry(&b, &c, t);
            if (s >= s0 + 10) {
                tried_late++;
                granted_late += ok;
            }
        }
    }
    /* Once the window is full, retries settle at 20% of requests: 10 a
     * second (within one second's worth). */
    ck_assert_int_ge(granted_late, 20 * 10 - 10);
    ck_assert_int_le(granted_late, 20 * 10 + 10);
    ck_assert_int_eq(tried_late, 20 * 30);
    /* After a quiet window, the old seconds no longer count. */
    uint64_t later = (s0 + 100) * 1000000ull;
    ck_assert(!rp_budget_retry(&b, &c, later));
    rp_budget_request(&b, later);
    for (int i = 0; i < 4; i++)
        rp_budget_request(&b, later);
    ck_assert(rp_budget_retry(&b, &c, later));    /* 5 requests: 1 retry */
    ck_assert(!rp_budget_retry(&b, &c, later));
}
END_TEST

static Suite *
retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_add_test(tc, test_safe_table);
    tcase_add_test(tc, test_on_status);
    tcase_add_test(tc, test_backoff_bounds_and_spread);
    tcase_add_test(tc, test_budget_percent_and_floor);
    tcase_add_test(tc, test_budget_window_slides);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(retry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
