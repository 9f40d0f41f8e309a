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
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "../../src/util.h"

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
    rp_metrics_conn_opened(0, 0);
    rp_metrics_conn_opened(1, 0);
    rp_metrics_conn_opened(1, 0);
    rp_metrics_conn_closed(1, 0);
    rp_metrics_read(&after);
    ck_assert_uint_eq(rp_metrics_active_connections(&after) - rp_metrics_active_connections(&before), 2);
    ck_assert_uint_eq(after.connections_accepted - before.connections_accepted, 3);
    rp_metrics_conn_closed(0, 0);
    rp_metrics_conn_closed(1, 0);
    rp_metrics_read(&after);
    ck_assert_uint_eq(rp_metrics_active_connections(&after), rp_metrics_active_connections(&before));
}
END_TEST

START_TEST(test_hist_buckets)
{
    ck_assert_uint_eq(rp_hist_bucket(0), 0);
    ck_assert_uint_eq(rp_hist_bucket(1000), 0);      /* le="0.001" includes it */
    ck_assert_uint_eq(rp_hist_bucket(1001), 1);
    ck_assert_uint_eq(rp_hist_bucket(60000000), RP_HIST_BOUNDS - 1);
    ck_assert_uint_eq(rp_hist_bucket(60000001), RP_HIST_BOUNDS);
    for (unsigned i = 1; i < RP_HIST_BOUNDS; i++)
        ck_assert(rp_hist_bounds_us[i] > rp_hist_bounds_us[i - 1]);
}
END_TEST

/* Figures by identity, summed over workers, from the hooks the core
 * calls; a route never seen reads as zeros. */
START_TEST(test_by_identity)
{
    rp_route_t rt;
    memset(&rt, 0, sizeof rt);
    rt.ident = 70;   /* in the second block */
    rp_upstream_t up;
    memset(&up, 0, sizeof up);
    up.uq = 3;
    rp_route_metrics_t r0, r1;
    rp_upstream_metrics_t u0, u1;
    rp_metrics_route(70, &r0);
    rp_metrics_upstream(3, &u0);
    rp_txn_t t;
    memset(&t, 0, sizeof t);
    t.route = &rt;
    t.upstream = &up;
    t.start_us = rp_now_us();
    rp_attempt_t a1 = { .result = RP_ATTEMPT_CONNECT_TIMEOUT, .duration_us = 2000 };
    rp_attempt_t a2 = { .result = RP_ATTEMPT_OK, .duration_us = 70000 };
    t.worker_id = 0;
    rp_module_metrics.on_upstream_result(&t, NULL, &a1);
    t.worker_id = 5;
    rp_module_metrics.on_upstream_result(&t, NULL, &a2);
    t.status = 200;
    t.attempts = 2;
    t.nresults = 2;
    rp_module_metrics.on_complete(&t, NULL);
    t.worker_id = 0;
    t.status = 503;
    t.attempts = 1;
    t.error = RP_ERR_RETRY_BUDGET_EXHAUSTED;
    rp_module_metrics.on_complete(&t, NULL);
    rp_metrics_route(70, &r1);
    rp_metrics_upstream(3, &u1);
    ck_assert_uint_eq(r1.by_class[2] - r0.by_class[2], 1);
    ck_assert_uint_eq(r1.by_class[5] - r0.by_class[5], 1);
    uint64_t n0 = 0, n1 = 0;
    for (unsigned i = 0; i <= RP_HIST_BOUNDS; i++) {
        n0 += r0.duration.bucket[i];
        n1 += r1.duration.bucket[i];
    }
    ck_assert_uint_eq(n1 - n0, 2);
    ck_assert_uint_eq(u1.requests - u0.requests, 2);   /* both were tried */
    ck_assert_uint_eq(u1.attempts - u0.attempts, 2);
    ck_assert_uint_eq(u1.retries - u0.retries, 1);
    ck_assert_uint_eq(u1.budget_exhausted - u0.budget_exhausted, 1);
    ck_assert_uint_eq(u1.by_result[RP_ATTEMPT_CONNECT_TIMEOUT] - u0.by_result[RP_ATTEMPT_CONNECT_TIMEOUT], 1);
    ck_assert_uint_eq(u1.by_result[RP_ATTEMPT_OK] - u0.by_result[RP_ATTEMPT_OK], 1);
    ck_assert_uint_eq(u1.duration.bucket[1] - u0.duration.bucket[1], 1);   /* 2 ms: le 0.0025 */
    ck_assert_uint_eq(u1.duration.bucket[6] - u0.duration.bucket[6], 1);   /* 70 ms: le 0.1 */
    ck_assert_uint_eq(u1.duration.sum_us - u0.duration.sum_us, 72000);
    rp_route_metrics_t never;
    rp_metrics_route(4000, &never);
    ck_assert_uint_eq(never.by_class[2], 0);
    rp_metrics_route(1u << 30, &never);   /* past the bound: zeros, no crash */
    ck_assert_uint_eq(never.duration.sum_us, 0);
}
END_TEST

START_TEST(test_listeners_and_rejects)
{
    rp_listener_metrics_t l0, l1;
    rp_metrics_t m0, m1;
    rp_metrics_listener(2, &l0);
    rp_metrics_read(&m0);
    rp_metrics_conn_opened(0, 2);
    rp_metrics_conn_opened(1, 2);
    rp_metrics_conn_closed(1, 2);
    rp_metrics_rejected(1, RP_REJECT_MAX_CONNECTIONS);
    rp_metrics_h2_goaway(0, 0);
    rp_metrics_h2_goaway(0, 11);
    rp_metrics_h2_goaway(0, 0x1234);   /* unknown code: the last slot */
    rp_metrics_listener(2, &l1);
    rp_metrics_read(&m1);
    ck_assert_uint_eq(l1.accepted - l0.accepted, 2);
    ck_assert_uint_eq(l1.closed - l0.closed, 1);
    ck_assert_uint_eq(m1.rejected[RP_REJECT_MAX_CONNECTIONS] - m0.rejected[RP_REJECT_MAX_CONNECTIONS], 1);
    ck_assert_uint_eq(m1.h2_goaways[0] - m0.h2_goaways[0], 1);
    ck_assert_uint_eq(m1.h2_goaways[11] - m0.h2_goaways[11], 1);
    ck_assert_uint_eq(m1.h2_goaways[RP_H2_CODES - 1] - m0.h2_goaways[RP_H2_CODES - 1], 1);
    ck_assert_str_eq(rp_reject_name(RP_REJECT_MODULE), "module_refused");
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
    tcase_add_test(tc, test_hist_buckets);
    tcase_add_test(tc, test_by_identity);
    tcase_add_test(tc, test_listeners_and_rejects);
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
