/* SPDX-License-Identifier: MIT */
/*
 * Metrics module: per-worker counters, summed on read.  The hooks are
 * called directly with transactions of different workers and outcomes.
 */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"

static const struct { unsigned worker; int status; uint64_t in, out; unsigned major; } cases[] = {
    { 0, 200, 10, 100, 1 }, { 1, 200, 0, 50, 2 }, { 1, 404, 0, 70, 2 }, { 2, 502, 5, 90, 1 },
    { 0, 503, 0, 80, 1 }, { 3, 0, 0, 0, 0 }, { 255, 101, 1, 1, 1 },
};

START_TEST(test_sum_over_workers)
{
    rp_metrics_t before, after;
    rp_metrics_read(&before);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rp_txn_t t;
        memset(&t, 0, sizeof t);
        t.worker_id = cases[i].worker;
        t.status = cases[i].status;
        t.req_body_bytes = cases[i].in;
        t.bytes_out = cases[i].out;
        t.req.major = cases[i].major;
        t.version_known = cases[i].major != 0;
        rp_module_metrics.on_complete(&t, NULL);
    }
    rp_metrics_read(&after);
    ck_assert_uint_eq(after.requests - before.requests, 7);
    ck_assert_uint_eq(after.by_class[2] - before.by_class[2], 2);
    ck_assert_uint_eq(after.by_class[4] - before.by_class[4], 1);
    ck_assert_uint_eq(after.by_class[5] - before.by_class[5], 2);
    ck_assert_uint_eq(after.by_class[1] - before.by_class[1], 1);
    ck_assert_uint_eq(after.by_class[0] - before.by_class[0], 1);   /* no status */
    ck_assert_uint_eq(after.bytes_in - before.bytes_in, 16);
    ck_assert_uint_eq(after.by_protocol[0] - before.by_protocol[0], 1);
    ck_assert_uint_eq(after.by_protocol[1] - before.by_protocol[1], 4);
    ck_assert_uint_eq(after.by_protocol[2] - before.by_protocol[2], 2);
    ck_assert_uint_eq(after.bytes_out - before.bytes_out, 391);
}
END_TEST

START_TEST(test_retries_and_reasons)
{
    rp_metrics_t before, after;
    rp_metrics_read(&before);
    rp_txn_t t;
    memset(&t, 0, sizeof t);
    t.status = 503;
    t.attempts = 3;
    t.error = RP_ERR_RETRY_BUDGET_EXHAUSTED;
    rp_module_metrics.on_complete(&t, NULL);
    t.attempts = 1;
    t.error = RP_ERR_UPSTREAM_OVERLOADED;
    t.worker_id = 1;
    rp_module_metrics.on_complete(&t, NULL);
    t.attempts = 0;
    t.error = RP_ERR_UPSTREAM_OVERLOADED;
    rp_module_metrics.on_complete(&t, NULL);
    rp_metrics_read(&after);
    ck_assert_uint_eq(after.retries - before.retries, 2);
    ck_assert_uint_eq(after.by_error[RP_ERR_RETRY_BUDGET_EXHAUSTED]
                      - before.by_error[RP_ERR_RETRY_BUDGET_EXHAUSTED], 1);
    ck_assert_uint_eq(after.by_error[RP_ERR_UPSTREAM_OVERLOADED]
                      - before.by_error[RP_ERR_UPSTREAM_OVERLOADED], 2);
}
END_TEST

START_TEST(test_upstream_results)
{
    rp_metrics_t before, after;
    rp_metrics_read(&before);
    rp_txn_t t;
    memset(&t, 0, sizeof t);
    rp_attempt_t ok = { .result = RP_ATTEMPT_OK }, bad = { .result = RP_ATTEMPT_CONNECT_ERROR },
                 slow = { .result = RP_ATTEMPT_TIMEOUT };
    t.worker_id = 0;
    rp_module_metrics.on_upstream_result(&t, NULL, &ok);
    t.worker_id = 1;
    rp_module_metrics.on_upstream_result(&t, NULL, &bad);
    rp_module_metrics.on_upstream_result(&t, NULL, &slow);
    rp_metrics_read(&after);
    ck_assert_uint_eq(after.upstream_attempts - before.upstream_attempts, 3);
    ck_assert_uint_eq(after.upstream_errors - before.upstream_errors, 2);
}
END_TEST

START_TEST(test_active_connections)
{
    rp_metrics_t before, after;
    rp_metrics_read(&before);
    rp_metrics_conn_opened(0);
    rp_metrics_conn_opened(1);
    rp_metrics_conn_opened(1);
    rp_metrics_conn_closed(1);
    rp_metrics_read(&after);
    ck_assert_uint_eq(rp_metrics_active_connections(&after) - rp_metrics_active_connections(&before), 2);
    ck_assert_uint_eq(after.connections_accepted - before.connections_accepted, 3);
    rp_metrics_conn_closed(0);
    rp_metrics_conn_closed(1);
    rp_metrics_read(&after);
    ck_assert_uint_eq(rp_metrics_active_connections(&after), rp_metrics_active_connections(&before));
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("counters");
    tcase_add_test(tc, test_sum_over_workers);
    tcase_add_test(tc, test_retries_and_reasons);
    tcase_add_test(tc, test_upstream_results);
    tcase_add_test(tc, test_active_connections);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
