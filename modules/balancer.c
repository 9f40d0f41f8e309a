/* SPDX-License-Identifier: MIT */
/*
 * The balancer: smooth weighted round robin (the nginx algorithm) over the
 * backends of the upstream the router chose.  Each worker keeps its own
 * current weights, so picking takes no lock; over any window each worker's
 * sequence gives every backend its weight's share, interleaved rather than
 * in bursts.
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "revproxy/balancer.h"
#include "../src/util.h"
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
    rp_swrr_t *s = rp_xcalloc(1, sizeof *s);
    s->n = n;
    s->rows = rows ? rows : 1;
    s->stride = (n + 7) & ~(size_t)7;
    s->weight = rp_xcalloc(n, sizeof *s->weight);
    s->current = rp_xcalloc(s->rows * s->stride, sizeof *s->current);
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

static int
balancer_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    (void)root;
    (void)errs;
    balancer_state_t *b = rp_xcalloc(1, sizeof *b);
    b->n = snap->nupstreams;
    b->rows = snap->workers;
    b->by_upstream = rp_xcalloc(b->n, sizeof *b->by_upstream);
    for (size_t i = 0; i < b->n; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        unsigned *w = rp_xcalloc(u->nbackends, sizeof *w);
        for (size_t j = 0; j < u->nbackends; j++)
            w[j] = u->backends[j].weight;
        b->by_upstream[i] = rp_swrr_new(w, u->nbackends, snap->workers);
        free(w);
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
    if (u == NULL || u->nbackends == 0) {
        txn->status = 503;
        txn->reason = "no backend available";
        return RP_RESPOND;
    }
    size_t i = rp_swrr_next(b->by_upstream[u->index], txn->worker_id);
    txn->backend = &u->backends[i];
    return RP_CONTINUE;
}

const rp_module_t rp_module_balancer = {
    .name = "balancer",
    .configure = balancer_configure,
    .release = balancer_release,
    .start = balancer_start,
    .select_backend = balancer_select,
};
