/* SPDX-License-Identifier: MIT */
/*
 * The health module's arithmetic: how long ejections last, how many of an
 * upstream may be out, what counts as a failure, and the weight of a
 * backend ramping up after it comes back (slow start).
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/bstate.h"
#include "revproxy/health.h"

static const rp_passive_cfg_t defaults = {
    .on = true, .consecutive_failures = 5, .ejection_ms = 30000, .max_ejection_ms = 300000,
    .max_ejection_percent = 50, .include_5xx = false };

START_TEST(test_ejection_grows_and_caps)
{
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 1), 30000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 2), 60000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 9), 270000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 10), 300000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 11), 300000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 4000000000u), 300000);
    ck_assert_uint_eq(rp_passive_ejection_ms(&defaults, 0), 30000);
}
END_TEST

START_TEST(test_max_ejection_percent)
{
    rp_passive_cfg_t c = defaults;
    ck_assert_uint_eq(rp_passive_max_out(&c, 1), 1);   /* at least one */
    ck_assert_uint_eq(rp_passive_max_out(&c, 2), 1);
    ck_assert_uint_eq(rp_passive_max_out(&c, 3), 1);
    ck_assert_uint_eq(rp_passive_max_out(&c, 10), 5);
    c.max_ejection_percent = 100;
    ck_assert_uint_eq(rp_passive_max_out(&c, 3), 3);
    c.max_ejection_percent = 10;
    ck_assert_uint_eq(rp_passive_max_out(&c, 5), 1);
    ck_assert_uint_eq(rp_passive_max_out(&c, 25), 2);
}
END_TEST

START_TEST(test_what_counts_as_failure)
{
    rp_passive_cfg_t c = defaults;
    rp_attempt_t a = { .result = RP_ATTEMPT_OK, .status = 503 };
    ck_assert(!rp_passive_is_failure(&c, &a));
    c.include_5xx = true;
    ck_assert(rp_passive_is_failure(&c, &a));
    a.status = 404;
    ck_assert(!rp_passive_is_failure(&c, &a));
    static const rp_attempt_result_t bad[] = { RP_ATTEMPT_CONNECT_ERROR, RP_ATTEMPT_CONNECT_TIMEOUT,
                                               RP_ATTEMPT_TIMEOUT, RP_ATTEMPT_BAD_RESPONSE,
                                               RP_ATTEMPT_RESET };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a.result = bad[i];
        ck_assert(rp_passive_is_failure(&c, &a));
    }
    a.result = RP_ATTEMPT_ABORTED;   /* the client's doing */
    ck_assert(!rp_passive_is_failure(&c, &a));
}
END_TEST

/* Slow start: the weight grows linearly over the ramp, from a thousandth
 * of it, and is whole outside a ramp. */
START_TEST(test_slow_start_weight)
{
    rp_bstate_ensure(0);
    rp_bstate_t *b = rp_bstate(0);
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 123456789), 3000);
    atomic_store(&b->ramp_from, 1000000);
    atomic_store(&b->ramp_ms, 10000);   /* 10 s from t = 1 s */
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 999999), 3000);   /* not begun (still out) */
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 1000000), 3);     /* a thousandth */
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 3500000), 750);   /* a quarter */
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 6000000), 1500);  /* half */
    ck_assert_uint_eq(rp_bstate_weight(b, 3, 11000000), 3000); /* done */
    uint64_t last = 0;
    for (uint64_t t = 1000000; t <= 11000000; t += 100000) {
        uint64_t w = rp_bstate_weight(b, 3, t);
        ck_assert_uint_ge(w, last);
        last = w;
    }
    /* Eligibility: ejected until a time, or down by active checks. */
    atomic_store(&b->ejected_until, 5000);
    ck_assert(!rp_bstate_eligible(b, 4999));
    ck_assert(rp_bstate_eligible(b, 5000));
    atomic_store(&b->active_down, true);
    ck_assert(!rp_bstate_eligible(b, 6000));
}
END_TEST

/* Alternating results never change the state; thresholds count results
 * in a row. */
START_TEST(test_active_hysteresis)
{
    rp_active_cfg_t c = { .healthy_threshold = 2, .unhealthy_threshold = 3 };
    rp_active_run_t r = { 0 };
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(rp_active_step(&r, i % 2 == 0, &c), 0);
    ck_assert(!r.down);
    /* The loop ended on a failure: two more make three in a row. */
    ck_assert_int_eq(rp_active_step(&r, false, &c), 0);
    ck_assert_int_eq(rp_active_step(&r, false, &c), -1);
    ck_assert(r.down);
    ck_assert_int_eq(rp_active_step(&r, false, &c), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(rp_active_step(&r, i % 2 == 0, &c), 0);
    ck_assert(r.down);
    ck_assert_int_eq(rp_active_step(&r, true, &c), 0);
    ck_assert_int_eq(rp_active_step(&r, true, &c), 1);     /* second in a row */
    ck_assert(!r.down);
    ck_assert_int_eq(rp_active_step(&r, true, &c), 0);
    /* Flapping that never reaches a threshold changes nothing: two
     * failures and a success, over and over, leave it up... */
    for (int i = 0; i < 900; i++)
        ck_assert_int_eq(rp_active_step(&r, i % 3 == 2, &c), 0);
    ck_assert(!r.down);
    /* ... and once down, a success between failures leaves it down. */
    for (int i = 0; i < 3; i++)
        rp_active_step(&r, false, &c);
    ck_assert(r.down);
    for (int i = 0; i < 900; i++)
        ck_assert_int_eq(rp_active_step(&r, i % 2 == 0, &c), 0);
    ck_assert(r.down);
}
END_TEST

START_TEST(test_expect_status)
{
    rp_active_cfg_t c = { 0 };
    const char *why = NULL;
    ck_assert_int_eq(rp_active_parse_status(&c, "200-399", &why), 0);
    ck_assert(rp_active_status_ok(&c, 200));
    ck_assert(rp_active_status_ok(&c, 399));
    ck_assert(!rp_active_status_ok(&c, 404));
    ck_assert_int_eq(rp_active_parse_status(&c, "200,204,301-302", &why), 0);
    ck_assert_uint_eq(c.nranges, 3);
    ck_assert(rp_active_status_ok(&c, 204));
    ck_assert(rp_active_status_ok(&c, 302));
    ck_assert(!rp_active_status_ok(&c, 201));
    static const char *const bad[] = { "", "2xx", "200-", "-200", "200,", "200 ,204", "99",
                                       "600", "300-200", "200;204", "1,2,3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(rp_active_parse_status(&c, bad[i], &why) == -1, "%s", bad[i]);
    char many[256] = "";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", i ? "," : "", 200 + i);
    ck_assert_int_eq(rp_active_parse_status(&c, many, &why), -1);
    ck_assert_str_eq(why, "at most 16 ranges");
}
END_TEST

static Suite *
health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("passive");
    tcase_add_test(tc, test_ejection_grows_and_caps);
    tcase_add_test(tc, test_max_ejection_percent);
    tcase_add_test(tc, test_what_counts_as_failure);
    suite_add_tcase(s, tc);
    tc = tcase_create("active");
    tcase_add_test(tc, test_active_hysteresis);
    tcase_add_test(tc, test_expect_status);
    suite_add_tcase(s, tc);
    tc = tcase_create("slow_start");
    tcase_add_test(tc, test_slow_start_weight);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(health_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
