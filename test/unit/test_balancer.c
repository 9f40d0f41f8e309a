/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for smooth weighted round robin: exact shares per cycle,
 * interleaving (no bursts of a light backend), independent rows, and the
 * degenerate single-backend and equal-weight cases.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/balancer.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAXB 8

typedef struct weights {
    unsigned w[MAXB];
    size_t   n;
} weights_t;

static const weights_t tables[] = {
    { { 5, 1, 1 }, 3 },
    { { 1 }, 1 },
    { { 1, 1 }, 2 },
    { { 2, 3 }, 2 },
    { { 1, 1, 1, 1 }, 4 },
    { { 10, 5, 1 }, 3 },
    { { 1000, 1 }, 2 },
    { { 3, 3, 2, 1 }, 4 },
    { { 7, 11, 13, 1, 1, 2, 5, 1000 }, 8 },
};

static unsigned
total_of(const weights_t *t)
{
    unsigned sum = 0;
    for (size_t i = 0; i < t->n; i++)
        sum += t->w[i];
    return sum;
}

/* ---- distribution ---- */

/* Over 1000 full cycles every backend is picked exactly weight * 1000 times,
 * and the counts are exact at every cycle boundary, not just at the end. */
START_TEST(test_distribution_exact)
{
    const weights_t *t = &tables[_i];
    const unsigned cycle = total_of(t);
    rp_swrr_t *s = rp_swrr_new(t->w, t->n, 1);
    ck_assert_ptr_nonnull(s);
    unsigned long count[MAXB] = { 0 };
    for (unsigned c = 1; c <= 1000; c++) {
        for (unsigned k = 0; k < cycle; k++) {
            size_t b = rp_swrr_next(s, 0);
            ck_assert_uint_lt(b, t->n);
            count[b]++;
        }
        for (size_t i = 0; i < t->n; i++)
            ck_assert_msg(count[i] == (unsigned long)t->w[i] * c,
                          "table %d, after %u cycles: backend %zu picked %lu times, want %lu",
                          _i, c, i, count[i], (unsigned long)t->w[i] * c);
    }
    rp_swrr_free(s);
}
END_TEST

/* The sequence repeats with the cycle: the state is back to zero after
 * every total-weight picks. */
START_TEST(test_sequence_periodic)
{
    const weights_t *t = &tables[_i];
    const unsigned cycle = total_of(t);
    rp_swrr_t *s = rp_swrr_new(t->w, t->n, 1);
    size_t *first = calloc(cycle, sizeof *first);
    ck_assert_ptr_nonnull(first);
    for (unsigned k = 0; k < cycle; k++)
        first[k] = rp_swrr_next(s, 0);
    for (unsigned c = 1; c < 20; c++)
        for (unsigned k = 0; k < cycle; k++)
            ck_assert_uint_eq(rp_swrr_next(s, 0), first[k]);
    free(first);
    rp_swrr_free(s);
}
END_TEST

/* ---- smoothness ---- */

/* 5,1,1 gives the nginx smooth WRR order a a b a c a a in every cycle. */
START_TEST(test_smooth_nginx_order)
{
    static const unsigned w[] = { 5, 1, 1 };
    static const size_t want[] = { 0, 0, 1, 0, 2, 0, 0 };
    rp_swrr_t *s = rp_swrr_new(w, 3, 1);
    for (int c = 0; c < 100; c++)
        for (size_t k = 0; k < 7; k++) {
            size_t got = rp_swrr_next(s, 0);
            ck_assert_msg(got == want[k], "cycle %d, pick %zu: got %zu, want %zu",
                          c, k, got, want[k]);
        }
    rp_swrr_free(s);
}
END_TEST

/* No backend lighter than half the total is ever picked twice in a row: the
 * light ones are spread out, not served in bursts.  (A backend holding more
 * than half the weight necessarily repeats.) */
START_TEST(test_smooth_no_bursts)
{
    const weights_t *t = &tables[_i];
    const unsigned total = total_of(t);
    rp_swrr_t *s = rp_swrr_new(t->w, t->n, 1);
    size_t prev = rp_swrr_next(s, 0);
    for (unsigned k = 1; k < total * 50; k++) {
        size_t b = rp_swrr_next(s, 0);
        if (t->n > 1 && 2 * t->w[b] <= total)
            ck_assert_msg(b != prev, "table %d, pick %u: backend %zu (weight %u of %u) twice",
                          _i, k, b, t->w[b], total);
        prev = b;
    }
    rp_swrr_free(s);
}
END_TEST

/* Every prefix of the sequence stays close to the ideal share: a backend is
 * never more than one pick ahead of, or n picks behind, weight * k / total. */
START_TEST(test_smooth_bounded_lag)
{
    const weights_t *t = &tables[_i];
    const unsigned total = total_of(t);
    rp_swrr_t *s = rp_swrr_new(t->w, t->n, 1);
    long count[MAXB] = { 0 };
    for (unsigned k = 1; k <= total * 3; k++) {
        count[rp_swrr_next(s, 0)]++;
        for (size_t i = 0; i < t->n; i++) {
            /* compare count * total with weight * k to stay in integers */
            long have = count[i] * (long)total;
            long ideal = (long)t->w[i] * (long)k;
            ck_assert_msg(have - ideal < (long)total,
                          "table %d, pick %u: backend %zu ahead (%ld of %u)", _i, k, i,
                          count[i], k);
            ck_assert_msg(ideal - have <= (long)(t->n * total),
                          "table %d, pick %u: backend %zu behind (%ld of %u)", _i, k, i,
                          count[i], k);
        }
    }
    rp_swrr_free(s);
}
END_TEST

/* ---- rows ---- */

/* Each row (worker) keeps its own state: interleaving picks from several
 * rows gives every row the same sequence a lone row would give. */
START_TEST(test_rows_independent)
{
    const weights_t *t = &tables[_i];
    const unsigned cycle = total_of(t);
    enum { ROWS = 3 };
    rp_swrr_t *ref = rp_swrr_new(t->w, t->n, 1);
    rp_swrr_t *s = rp_swrr_new(t->w, t->n, ROWS);
    unsigned long count[ROWS][MAXB];
    memset(count, 0, sizeof count);
    for (unsigned k = 0; k < cycle * 200; k++) {
        size_t want = rp_swrr_next(ref, 0);
        /* row 0 every step, row 1 every step, row 2 only every other step */
        size_t a = rp_swrr_next(s, 0);
        size_t b = rp_swrr_next(s, 1);
        ck_assert_uint_eq(a, want);
        ck_assert_uint_eq(b, want);
        count[0][a]++;
        count[1][b]++;
        if (k % 2 == 0)
            count[2][rp_swrr_next(s, 2)]++;
    }
    for (size_t i = 0; i < t->n; i++) {
        ck_assert_uint_eq(count[0][i], (unsigned long)t->w[i] * 200);
        ck_assert_uint_eq(count[1][i], (unsigned long)t->w[i] * 200);
        ck_assert_uint_eq(count[2][i], (unsigned long)t->w[i] * 100);
    }
    rp_swrr_free(ref);
    rp_swrr_free(s);
}
END_TEST

/* One row's heavy use does not shift another row's position. */
START_TEST(test_rows_no_crosstalk)
{
    static const unsigned w[] = { 5, 1, 1 };
    static const size_t want[] = { 0, 0, 1, 0, 2, 0, 0 };
    rp_swrr_t *s = rp_swrr_new(w, 3, 4);
    for (int k = 0; k < 3; k++)
        ck_assert_uint_eq(rp_swrr_next(s, 3), want[k]);
    for (int k = 0; k < 1001; k++)
        (void)rp_swrr_next(s, 1);
    for (int k = 3; k < 7; k++)
        ck_assert_uint_eq(rp_swrr_next(s, 3), want[k]);
    for (int k = 0; k < 7; k++) {
        ck_assert_uint_eq(rp_swrr_next(s, 0), want[k]);
        ck_assert_uint_eq(rp_swrr_next(s, 2), want[k]);
    }
    rp_swrr_free(s);
}
END_TEST

/* ---- degenerate cases ---- */

static const unsigned single_weights[] = { 1, 2, 1000 };

START_TEST(test_single_backend)
{
    const unsigned w = single_weights[_i];
    rp_swrr_t *s = rp_swrr_new(&w, 1, 2);
    for (int k = 0; k < 5000; k++) {
        ck_assert_uint_eq(rp_swrr_next(s, 0), 0);
        ck_assert_uint_eq(rp_swrr_next(s, 1), 0);
    }
    rp_swrr_free(s);
}
END_TEST

static const unsigned equal_sizes[] = { 2, 3, 5, 8 };

/* Equal weights rotate in order 0, 1, ..., n-1, whatever the weight. */
START_TEST(test_equal_weights_rotate)
{
    const size_t n = equal_sizes[_i];
    unsigned w[MAXB];
    for (unsigned weight = 1; weight <= 7; weight += 3) {
        for (size_t i = 0; i < n; i++)
            w[i] = weight;
        rp_swrr_t *s = rp_swrr_new(w, n, 1);
        for (size_t k = 0; k < n * 100; k++)
            ck_assert_uint_eq(rp_swrr_next(s, 0), k % n);
        rp_swrr_free(s);
    }
}
END_TEST

START_TEST(test_weights_copied)
{
    /* The caller's array may go away after rp_swrr_new. */
    unsigned w[] = { 2, 1 };
    rp_swrr_t *s = rp_swrr_new(w, 2, 1);
    w[0] = 1;
    w[1] = 1000;
    unsigned long count[2] = { 0 };
    for (int k = 0; k < 300; k++)
        count[rp_swrr_next(s, 0)]++;
    ck_assert_uint_eq(count[0], 200);
    ck_assert_uint_eq(count[1], 100);
    rp_swrr_free(s);
    rp_swrr_free(NULL);
}
END_TEST

/* ---- with the weights of each pick (health, slow start) ---- */

/* Weights given per pick: a backend at weight 0 is never picked, and the
 * others keep their shares among themselves. */
START_TEST(test_swrr_skips_ineligible)
{
    const unsigned w[3] = { 1, 1, 1 };
    rp_swrr_t *s = rp_swrr_new(w, 3, 1);
    uint64_t dyn[3] = { 2000, 0, 1000 };
    unsigned count[3] = { 0 };
    for (int i = 0; i < 3000; i++) {
        size_t k = rp_swrr_next_w(s, 0, dyn);
        ck_assert_uint_lt(k, 3);
        count[k]++;
    }
    ck_assert_uint_eq(count[1], 0);
    ck_assert_uint_eq(count[0], 2000);
    ck_assert_uint_eq(count[2], 1000);
    const uint64_t none[3] = { 0, 0, 0 };
    ck_assert_uint_eq(rp_swrr_next_w(s, 0, none), RP_PICK_NONE);
    rp_swrr_free(s);
}
END_TEST

/* ---- least connections ---- */

/* A least_conn pick as the balancer makes it: the tied set, then weighted
 * round robin among it. */
static size_t
lc_pick(rp_swrr_t *s, const unsigned *active, const uint64_t *weight, size_t n)
{
    uint64_t tied[MAXB];
    rp_least_conn_ties(active, weight, n, tied);
    return rp_swrr_next_w(s, 0, tied);
}

START_TEST(test_least_conn_fewest_relative_to_weight)
{
    /* 4 in flight at weight 2 (2 each) beats 3 at weight 1. */
    unsigned active[3] = { 3, 4, 9 };
    uint64_t weight[3] = { 1000, 2000, 1000 };
    uint64_t tied[3];
    ck_assert_uint_eq(rp_least_conn_ties(active, weight, 3, tied), 1);
    ck_assert(tied[0] == 0 && tied[1] == 2000 && tied[2] == 0);
    /* An ineligible backend is never among them, however idle. */
    unsigned idle[3] = { 0, 5, 6 };
    uint64_t out[3] = { 0, 1000, 1000 };
    ck_assert_uint_eq(rp_least_conn_ties(idle, out, 3, tied), 1);
    ck_assert_uint_eq(tied[1], 1000);
    const uint64_t none[3] = { 0, 0, 0 };
    ck_assert_uint_eq(rp_least_conn_ties(idle, none, 3, tied), 0);
}
END_TEST

/* Ties are shared out exactly, whichever backend is busy or out: no
 * neighbour of a busy one gets a double share. */
START_TEST(test_least_conn_ties_even)
{
    const unsigned w1[4] = { 1, 1, 1, 1 };
    rp_swrr_t *s = rp_swrr_new(w1, 4, 1);
    unsigned active[4] = { 2, 2, 5, 2 };
    uint64_t weight[4] = { 1000, 1000, 1000, 1000 };
    unsigned count[4] = { 0 };
    for (int r = 0; r < 300; r++)
        count[lc_pick(s, active, weight, 4)]++;
    ck_assert_uint_eq(count[2], 0);
    ck_assert_uint_eq(count[0], 100);
    ck_assert_uint_eq(count[1], 100);
    ck_assert_uint_eq(count[3], 100);
    /* One out and all idle: the other three a third each. */
    unsigned idle[4] = { 0, 0, 0, 0 };
    uint64_t one_out[4] = { 1000, 0, 1000, 1000 };
    memset(count, 0, sizeof count);
    for (int r = 0; r < 300; r++)
        count[lc_pick(s, idle, one_out, 4)]++;
    ck_assert_uint_eq(count[1], 0);
    ck_assert_uint_eq(count[0], 100);
    ck_assert_uint_eq(count[2], 100);
    ck_assert_uint_eq(count[3], 100);
    rp_swrr_free(s);
}
END_TEST

/* With no traffic in flight every backend ties: weights, and a weight
 * ramping in slow start, still decide the shares. */
START_TEST(test_least_conn_idle_follows_weights)
{
    const unsigned w1[2] = { 1, 1 };
    rp_swrr_t *s = rp_swrr_new(w1, 2, 1);
    unsigned idle[2] = { 0, 0 };
    uint64_t weight[2] = { 3000, 1000 };
    unsigned count[2] = { 0 };
    for (int r = 0; r < 400; r++)
        count[lc_pick(s, idle, weight, 2)]++;
    ck_assert_uint_eq(count[0], 300);
    ck_assert_uint_eq(count[1], 100);
    uint64_t ramping[2] = { 1000, 10 };   /* the second at 1% of its weight */
    memset(count, 0, sizeof count);
    for (int r = 0; r < 1010; r++)
        count[lc_pick(s, idle, ramping, 2)]++;
    ck_assert_uint_le(count[1], 11);
    rp_swrr_free(s);
}
END_TEST

/* Simulated load: requests arrive and each holds its backend for a while;
 * a backend of weight 3 carries about three times the requests of one of
 * weight 1. */
START_TEST(test_least_conn_weighted_share)
{
    const unsigned w1[2] = { 1, 1 };
    rp_swrr_t *s = rp_swrr_new(w1, 2, 1);
    unsigned active[2] = { 0, 0 };
    uint64_t weight[2] = { 3000, 1000 };
    unsigned served[2] = { 0 };
    size_t held[64];
    size_t nheld = 0;
    for (size_t r = 0; r < 4000; r++) {
        if (nheld == 40) {   /* the oldest finishes */
            active[held[0]]--;
            memmove(held, held + 1, --nheld * sizeof *held);
        }
        size_t k = lc_pick(s, active, weight, 2);
        active[k]++;
        served[k]++;
        held[nheld++] = k;
    }
    ck_assert_uint_ge(served[0], 2800);
    ck_assert_uint_le(served[0], 3200);
    rp_swrr_free(s);
}
END_TEST

/* ---- suite ---- */

static Suite *
balancer_suite(void)
{
    Suite *s = suite_create("balancer");
    TCase *tc;

    tc = tcase_create("distribution");
    /* Millions of picks for the largest tables: no time limit a loaded
     * machine (or the sanitizers) could miss by a few seconds. */
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_distribution_exact, 0, NCASES(tables));
    tcase_add_loop_test(tc, test_sequence_periodic, 0, NCASES(tables));
    tcase_add_test(tc, test_weights_copied);
    suite_add_tcase(s, tc);

    tc = tcase_create("smoothness");
    tcase_add_test(tc, test_smooth_nginx_order);
    tcase_add_loop_test(tc, test_smooth_no_bursts, 0, NCASES(tables));
    tcase_add_loop_test(tc, test_smooth_bounded_lag, 0, NCASES(tables));
    suite_add_tcase(s, tc);

    tc = tcase_create("rows_independent");
    tcase_add_loop_test(tc, test_rows_independent, 0, NCASES(tables));
    tcase_add_test(tc, test_rows_no_crosstalk);
    suite_add_tcase(s, tc);

    tc = tcase_create("single_backend");
    tcase_add_loop_test(tc, test_single_backend, 0, NCASES(single_weights));
    suite_add_tcase(s, tc);

    tc = tcase_create("eligibility");
    tcase_add_test(tc, test_swrr_skips_ineligible);
    suite_add_tcase(s, tc);

    tc = tcase_create("least_conn");
    tcase_add_test(tc, test_least_conn_fewest_relative_to_weight);
    tcase_add_test(tc, test_least_conn_ties_even);
    tcase_add_test(tc, test_least_conn_idle_follows_weights);
    tcase_add_test(tc, test_least_conn_weighted_share);
    suite_add_tcase(s, tc);

    tc = tcase_create("equal_weights");
    tcase_add_loop_test(tc, test_equal_weights_rotate, 0, NCASES(equal_sizes));
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(balancer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
