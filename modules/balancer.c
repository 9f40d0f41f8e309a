/* SPDX-License-Identifier: MIT */
/*
 * The balancer, over the eligible backends of the upstream the router
 * chose (health and slow start come from the backend state table,
 * include/revproxy/bstate.h):
 *
 * round_robin: smooth weighted round robin (the nginx algorithm).  Each
 *   worker keeps its own current weights, so picking takes no lock; over
 *   any window each worker's sequence gives every backend its weight's
 *   share, interleaved rather than in bursts.
 * least_conn: the backend with the fewest requests in flight (counted
 *   across workers) relative to its weight; ties (the rule when traffic is
 *   light) are broken by the same weighted round robin, so weights and
 *   slow start still hold then.
 *
 * Both pass over backends at their max_connections that have no idle
 * connection on this worker; when that leaves none while some are
 * eligible, the request parks (RP_PARK, module.h).  No eligible backend:
 * 503, no_healthy_backend.
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/bstate.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "revproxy/balancer.h"
#include "revproxy/upstream.h"
#include "../src/util.h"
#include "../src/pool.h"
#include "../src/worker.h"

struct rp_swrr {
    size_t   n;
    unsigned rows;
    int64_t  total;
    int64_t *weight;   /* owned: n */
    int64_t *current;  /* owned: rows * stride */
    size_t   stride;   /* n rounded up to a cache line of int64s */
};

rp_swrr_t *
rp_swrr_new(const unsigned *weights, size_t n, unsigned rows)
{
    rp_swrr_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->n = n;
    s->rows = rows ? rows : 1;
    s->stride = (n + 7) & ~(size_t)7;
    s->weight = calloc(n ? n : 1, sizeof *s->weight);
    s->current = calloc(s->rows * s->stride + 1, sizeof *s->current);
    if (s->weight == NULL || s->current == NULL) {
        rp_swrr_free(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s->weight[i] = weights[i];
        s->total += weights[i];
    }
    return s;
}

void
rp_swrr_free(rp_swrr_t *s)
{
    if (s == NULL)
        return;
    free(s->weight);
    free(s->current);
    free(s);
}

size_t
rp_swrr_next_w(rp_swrr_t *s, unsigned row, const uint64_t *weight)
{
    int64_t *cur = s->current + (size_t)(row % s->rows) * s->stride;
    size_t best = RP_PICK_NONE;
    int64_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (weight[i] == 0)
            continue;
        cur[i] += (int64_t)weight[i];
        total += (int64_t)weight[i];
        if (best == RP_PICK_NONE || cur[i] > cur[best])
            best = i;
    }
    if (best != RP_PICK_NONE)
        cur[best] -= total;
    return best;
}

size_t
rp_least_conn_ties(const unsigned *active, const uint64_t *weight, size_t n, uint64_t *tied)
{
    size_t best = RP_PICK_NONE;
    for (size_t i = 0; i < n; i++) {
        if (weight[i] == 0)
            continue;
        /* active[i] / weight[i] < active[best] / weight[best] */
        if (best == RP_PICK_NONE
            || (uint64_t)active[i] * weight[best] < (uint64_t)active[best] * weight[i])
            best = i;
    }
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        tied[i] = 0;
        if (best != RP_PICK_NONE && weight[i] != 0
            && (uint64_t)active[i] * weight[best] == (uint64_t)active[best] * weight[i]) {
            tied[i] = weight[i];
            nt++;
        }
    }
    return nt;
}

size_t
rp_swrr_next(rp_swrr_t *s, unsigned row)
{
    int64_t *cur = s->current + (size_t)(row % s->rows) * s->stride;
    size_t best = 0;
    if (s->n == 0)
        return 0;   /* callers never build an empty set; stay in bounds anyway */
    for (size_t i = 0; i < s->n; i++) {
        cur[i] += s->weight[i];
        if (cur[i] > cur[best])
            best = i;
    }
    cur[best] -= s->total;
    return best;
}

typedef struct balancer_state {
    size_t      n;
    unsigned    rows;          /* workers the current weights were sized for */
    rp_swrr_t **by_upstream;   /* owned: one per upstream, by index */
} balancer_state_t;

static void balancer_release(void *state);

static int
balancer_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    (void)root;
    balancer_state_t *b = calloc(1, sizeof *b);
    if (b == NULL || (b->by_upstream = calloc(snap->nupstreams + 1, sizeof *b->by_upstream)) == NULL) {
        free(b);
        rp_errs_add(errs, "upstreams", "out of memory");
        return -1;
    }
    b->n = snap->nupstreams;
    b->rows = snap->workers;
    for (size_t i = 0; i < b->n; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        unsigned *w = calloc(u->npos ? u->npos : 1, sizeof *w);
        if (w != NULL) {
            for (size_t k = 0; k < u->npos; k++)
                w[k] = u->backends[u->pos_entry[k]].weight;
            b->by_upstream[i] = rp_swrr_new(w, u->npos, snap->workers);
            free(w);
        }
        if (b->by_upstream[i] == NULL) {
            balancer_release(b);
            rp_errs_add(errs, "upstreams", "out of memory");
            return -1;
        }
    }
    *state = b;
    return 0;
}

static void
balancer_release(void *state)
{
    balancer_state_t *b = state;
    for (size_t i = 0; i < b->n; i++)
        rp_swrr_free(b->by_upstream[i]);
    free(b->by_upstream);
    free(b);
}

/* Picking takes no lock because every worker has its own row of current
 * weights, sized by the snapshot's worker count.  A worker beyond them
 * would share a row with another thread: refuse to start it. */
static int
balancer_start(rp_worker_t *w, void *state)
{
    const balancer_state_t *b = state;
    if (w->id < b->rows)
        return 0;
    rp_log(RP_LOG_ERROR, NULL,
           "balancer: worker %u has no weights of its own (the configuration was built for %u workers)",
           w->id, b->rows);
    return -1;
}

static rp_request_hook_fn balancer_select;

static rp_verdict_t
balancer_select(rp_txn_t *txn, void *state)
{
    balancer_state_t *b = state;
    const rp_upstream_t *u = txn->upstream;
    if (u == NULL || u->npos == 0) {
        txn->status = 503;
        txn->reason = "no backend available";
        return RP_RESPOND;
    }
    /* This pick's weights, by position (revproxy/upstream.h): 0 for an
     * empty one or a backend that is out, scaled down while one ramps up
     * after coming back. */
    size_t np = u->npos;
    uint64_t weight[np];
    unsigned active[np];
    unsigned ids[np];
    uint64_t now = rp_now_us();
    bool full = false;   /* an eligible backend is at its max_connections */
    for (size_t k = 0; k < np; k++) {
        rp_pos_t p;
        weight[k] = 0;
        active[k] = 0;
        if (!rp_upstream_pos(u, k, &p))
            continue;
        ids[k] = p.id;
        const rp_bstate_t *bs = rp_bstate(p.id);
        weight[k] = rp_bstate_eligible(bs, now) ? rp_bstate_weight(bs, p.be->weight, now) : 0;
        if (weight[k] != 0 && p.be->max_connections > 0
            && !rp_bstate_has_room(bs, p.be->max_connections)
            && rp_pool_idle(txn->worker, p.id) == 0) {
            weight[k] = 0;
            full = true;
        }
        if (u->balancer == RP_BALANCER_LEAST_CONN)
            active[k] = atomic_load_explicit(&bs->active, memory_order_relaxed);
    }
    /* A retry goes to a backend not tried yet when one can be used. */
    if (txn->navoid > 0) {
        bool other = false;
        for (size_t k = 0; k < np && !other; k++) {
            if (weight[k] == 0)
                continue;
            bool tried = false;
            for (unsigned a = 0; a < txn->navoid; a++)
                tried = tried || txn->avoid[a] == ids[k];
            other = !tried;
        }
        for (size_t k = 0; k < np && other; k++)
            for (unsigned a = 0; a < txn->navoid; a++)
                if (weight[k] != 0 && txn->avoid[a] == ids[k])
                    weight[k] = 0;
    }
    if (u->balancer == RP_BALANCER_LEAST_CONN) {
        uint64_t tied[np];
        rp_least_conn_ties(active, weight, np, tied);
        memcpy(weight, tied, sizeof weight);
    }
    size_t i = rp_swrr_next_w(b->by_upstream[u->index], txn->worker_id, weight);
    if (i == RP_PICK_NONE && full)
        return RP_PARK;
    if (i == RP_PICK_NONE) {
        txn->status = 503;
        txn->error = RP_ERR_NO_HEALTHY_BACKEND;
        txn->reason = "no healthy backend";
        return RP_RESPOND;
    }
    rp_pos_t p = { &u->backends[u->pos_entry[i]], ids[i] };
    txn->backend = rp_pos_backend(&p, &txn->backend_own);
    return RP_CONTINUE;
}

const rp_module_t rp_module_balancer = {
    .name = "balancer",
    .configure = balancer_configure,
    .release = balancer_release,
    .start = balancer_start,
    .select_backend = balancer_select,
};
