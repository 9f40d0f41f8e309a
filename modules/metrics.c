/* SPDX-License-Identifier: MIT */
/*
 * The metrics module: per-worker counters of requests by status class,
 * bytes, upstream attempts and errors, and client connections opened and
 * closed (counted by the core, which sees both).  Counters live
 * outside any snapshot (they survive reloads) in one cache-line-aligned
 * slot per worker; rp_metrics_read() sums them.  Exposing them is the admin
 * server's job.
 */
#include "config.h"
#include <string.h>
#include "revproxy/config.h"
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"

typedef struct slot {
    _Alignas(64) rp_metrics_t m;
} slot_t;

static slot_t slots[RP_METRICS_MAX_WORKERS];

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

void
rp_metrics_conn_opened(unsigned worker)
{
    add(&mine(worker)->connections_accepted, 1);
}

void
rp_metrics_h2_calm(unsigned worker)
{
    add(&mine(worker)->h2_calm, 1);
}

void
rp_metrics_conn_closed(unsigned worker)
{
    add(&mine(worker)->connections_closed, 1);
}

uint64_t
rp_metrics_active_connections(const rp_metrics_t *m)
{
    return m->connections_accepted - m->connections_closed;
}

static void
metrics_on_upstream_result(rp_txn_t *txn, void *state, const rp_attempt_t *a)
{
    (void)state;
    rp_metrics_t *m = mine(txn->worker_id);
    add(&m->upstream_attempts, 1);
    if (a->result != RP_ATTEMPT_OK)
        add(&m->upstream_errors, 1);
}

static rp_notify_hook_fn metrics_on_complete;

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
}

const rp_module_t rp_module_metrics = {
    .name = "metrics",
    .on_upstream_result = metrics_on_upstream_result,
    .on_complete = metrics_on_complete,
};
