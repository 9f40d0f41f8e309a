/* SPDX-License-Identifier: MIT */
/*
 * The metrics module: per-worker counters of requests by status class and
 * reason word, bytes, upstream attempts by result, retries, durations per
 * route and per upstream, and client connections per listener (counted by
 * the core, which sees both ends of a connection).  Counters live outside
 * any snapshot, keyed by identity, so they survive reloads: one
 * cache-line-aligned slot per worker, and per worker blocks of 64 route,
 * upstream and listener entries that the worker itself allocates the
 * first time it records into one.  Readers sum the workers (see
 * revproxy/metrics.h); the admin server renders the sums.
 */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "revproxy/config.h"
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "../src/util.h"

const uint64_t rp_hist_bounds_us[RP_HIST_BOUNDS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

#define BLOCK 64u          /* entries per block */
#define BLOCKS 2048u       /* blocks per kind: 131072 identities of each kind
                              (routes are at most 100000) */

typedef enum kind { K_ROUTE, K_UPSTREAM, K_LISTENER, K_COUNT } kind_t;

static const size_t kind_size[K_COUNT] = {
    sizeof(rp_route_metrics_t), sizeof(rp_upstream_metrics_t), sizeof(rp_listener_metrics_t),
};

typedef struct slot {
    _Alignas(64) rp_metrics_t m;
    void *_Atomic blocks[K_COUNT][BLOCKS];   /* written once, by the owner */
} slot_t;

static slot_t slots[RP_METRICS_MAX_WORKERS];
/* One more than the highest worker that ever recorded into a block. */
static _Atomic unsigned hi_worker;

static const char *const reject_names[] = {
#define RP_REJECT_NAME_(e, w) w,
    RP_REJECTS(RP_REJECT_NAME_)
#undef RP_REJECT_NAME_
};

const char *
rp_reject_name(rp_reject_t r)
{
    return (unsigned)r < RP_REJECT_COUNT ? reject_names[r] : "unknown";
}

static rp_metrics_t *
mine(unsigned worker)
{
    return &slots[worker % RP_METRICS_MAX_WORKERS].m;
}

/* Relaxed atomic adds on the owner's slot: no lock, and readers on other
 * threads never see torn values. */
static void
add(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* Worker's entry of identity id of kind k, allocating its block; NULL
 * past the bound or when memory runs out (the figure is then not kept). */
static void *
entry(unsigned worker, kind_t k, unsigned id)
{
    if (id >= BLOCK * BLOCKS)
        return NULL;
    slot_t *s = &slots[worker % RP_METRICS_MAX_WORKERS];
    void *_Atomic *bp = &s->blocks[k][id / BLOCK];
    char *b = atomic_load_explicit(bp, memory_order_acquire);
    if (b == NULL) {
        b = calloc(BLOCK, kind_size[k]);
        if (b == NULL)
            return NULL;
        atomic_store_explicit(bp, b, memory_order_release);
        unsigned want = worker % RP_METRICS_MAX_WORKERS + 1, h = atomic_load(&hi_worker);
        while (h < want && !atomic_compare_exchange_weak(&hi_worker, &h, want))
            ;
    }
    return b + (size_t)(id % BLOCK) * kind_size[k];
}

/* Sum of identity id of kind k over workers into out (size words of
 * uint64_t). */
static void
sum(kind_t k, unsigned id, uint64_t *out)
{
    size_t words = kind_size[k] / sizeof(uint64_t);
    memset(out, 0, kind_size[k]);
    if (id >= BLOCK * BLOCKS)
        return;
    unsigned hi = atomic_load(&hi_worker);
    for (unsigned w = 0; w < hi; w++) {
        const char *b = atomic_load_explicit(&slots[w].blocks[k][id / BLOCK], memory_order_acquire);
        if (b == NULL)
            continue;
        const uint64_t *src = (const uint64_t *)(b + (size_t)(id % BLOCK) * kind_size[k]);
        for (size_t i = 0; i < words; i++)
            out[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

void
rp_metrics_route(unsigned ident, rp_route_metrics_t *out)
{
    sum(K_ROUTE, ident, (uint64_t *)out);
}

void
rp_metrics_upstream(unsigned ident, rp_upstream_metrics_t *out)
{
    sum(K_UPSTREAM, ident, (uint64_t *)out);
}

void
rp_metrics_listener(unsigned ident, rp_listener_metrics_t *out)
{
    sum(K_LISTENER, ident, (uint64_t *)out);
}

void
rp_metrics_read(rp_metrics_t *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned w = 0; w < RP_METRICS_MAX_WORKERS; w++) {
        const uint64_t *src = (const uint64_t *)&slots[w].m;
        uint64_t *dst = (uint64_t *)out;
        for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
            dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

unsigned
rp_hist_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < RP_HIST_BOUNDS && us > rp_hist_bounds_us[i])
        i++;
    return i;
}

static void
observe(rp_hist_t *h, uint64_t us)
{
    add(&h->bucket[rp_hist_bucket(us)], 1);
    add(&h->sum_us, us);
}

void
rp_metrics_conn_opened(unsigned worker, unsigned listener)
{
    add(&mine(worker)->connections_accepted, 1);
    rp_listener_metrics_t *l = entry(worker, K_LISTENER, listener);
    if (l != NULL)
        add(&l->accepted, 1);
}

void
rp_metrics_conn_closed(unsigned worker, unsigned listener)
{
    add(&mine(worker)->connections_closed, 1);
    rp_listener_metrics_t *l = entry(worker, K_LISTENER, listener);
    if (l != NULL)
        add(&l->closed, 1);
}

void
rp_metrics_rejected(unsigned worker, rp_reject_t why)
{
    if ((unsigned)why < RP_REJECT_COUNT)
        add(&mine(worker)->rejected[why], 1);
}

void
rp_metrics_h2_calm(unsigned worker)
{
    add(&mine(worker)->h2_calm, 1);
}

void
rp_metrics_h2_goaway(unsigned worker, uint32_t code)
{
    add(&mine(worker)->h2_goaways[code < RP_H2_CODES - 1 ? code : RP_H2_CODES - 1], 1);
}

const unsigned rp_ws_codes[RP_WS_CODES - 1] = {
    0, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011 };

void
rp_metrics_ws(unsigned worker, rp_ws_metric_t what, uint64_t value)
{
    rp_metrics_t *m = mine(worker);
    switch (what) {
    case RP_METRIC_WS_OPENED:
        add(&m->ws_opened, 1);
        break;
    case RP_METRIC_WS_CLOSED: {
        unsigned k = 0;
        while (k < RP_WS_CODES - 1 && rp_ws_codes[k] != value)
            k++;
        add(&m->ws_codes[k], 1);
        add(&m->ws_closed, 1);
        break;
    }
    case RP_METRIC_WS_MSGS_IN:
        add(&m->ws_msgs[0], value);
        break;
    case RP_METRIC_WS_MSGS_OUT:
        add(&m->ws_msgs[1], value);
        break;
    case RP_METRIC_WS_BYTES_IN:
        add(&m->ws_bytes[0], value);
        break;
    case RP_METRIC_WS_BYTES_OUT:
        add(&m->ws_bytes[1], value);
        break;
    }
}

uint64_t
rp_metrics_active_connections(const rp_metrics_t *m)
{
    return m->connections_accepted > m->connections_closed
               ? m->connections_accepted - m->connections_closed : 0;
}

static void
metrics_on_upstream_result(rp_txn_t *txn, void *state, const rp_attempt_t *a)
{
    (void)state;
    rp_metrics_t *m = mine(txn->worker_id);
    add(&m->upstream_attempts, 1);
    if (a->result != RP_ATTEMPT_OK)
        add(&m->upstream_errors, 1);
    if (txn->upstream == NULL)
        return;
    rp_upstream_metrics_t *u = entry(txn->worker_id, K_UPSTREAM, txn->upstream->uq);
    if (u == NULL)
        return;
    add(&u->attempts, 1);
    if ((unsigned)a->result < RP_ARRAY_LEN(u->by_result))
        add(&u->by_result[a->result], 1);
    observe(&u->duration, a->duration_us);
}

static void
metrics_on_complete(const rp_txn_t *txn, void *state)
{
    (void)state;
    rp_metrics_t *m = mine(txn->worker_id);
    int cls = txn->status >= 100 && txn->status < 600 ? txn->status / 100 : 0;
    add(&m->requests, 1);
    add(&m->by_class[cls], 1);
    add(&m->by_protocol[!txn->version_known ? 0 : txn->req.major == 2 ? 2 : 1], 1);
    add(&m->bytes_in, txn->req_body_bytes);
    add(&m->bytes_out, txn->bytes_out);
    if (txn->attempts > 1)
        add(&m->retries, txn->attempts - 1);
    if ((unsigned)txn->error < RP_ERR_COUNT)
        add(&m->by_error[txn->error], 1);
    uint64_t now = txn->end_us != 0 ? txn->end_us : rp_now_us();
    uint64_t took = now > txn->start_us ? now - txn->start_us : 0;
    rp_route_metrics_t *r = txn->route != NULL ? entry(txn->worker_id, K_ROUTE, txn->route->ident)
                                               : NULL;
    if (r != NULL) {
        add(&r->by_class[cls], 1);
        observe(&r->duration, took);
    } else if (txn->route == NULL) {
        add(&m->unrouted_by_class[cls], 1);
        observe(&m->unrouted_duration, took);
    }
    if (txn->upstream != NULL) {
        rp_upstream_metrics_t *u = entry(txn->worker_id, K_UPSTREAM, txn->upstream->uq);
        if (u != NULL) {
            if (txn->nresults > 0)
                add(&u->requests, 1);   /* it went to a backend */
            if (txn->attempts > 1)
                add(&u->retries, txn->attempts - 1);
            if (txn->error == RP_ERR_RETRY_BUDGET_EXHAUSTED)
                add(&u->budget_exhausted, 1);
        }
    }
}

const rp_module_t rp_module_metrics = {
    .name = "metrics",
    .on_upstream_result = metrics_on_upstream_result,
    .on_complete = metrics_on_complete,
};
