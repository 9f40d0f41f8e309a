/* SPDX-License-Identifier: MIT */
/*
 * The health module: passive health checks from real traffic, and slow
 * start, over the backend state table (include/revproxy/bstate.h), which
 * outlives snapshots.  It runs before the balancer, which reads the table
 * through rp_bstate_eligible and rp_bstate_weight.
 *
 * Passive ("health.passive"): an attempt that ends in a connect failure or
 * timeout, a reset, a response timeout or a malformed response (or a 5xx
 * with include_5xx) is a failure; consecutive_failures of them in a row
 * eject the backend for ejection_ms, times the number of ejections in a
 * row, at most max_ejection_ms.  The count of ejections in a row starts
 * over once the backend has served without a failure for ejection_ms
 * after its last ejection.  At most max_ejection_percent of an upstream's
 * backends are out by ejection at once (and always at least one may be).
 *
 * Slow start ("health.slow_start_ms"): a backend coming back is
 * "recovering" while its weight ramps up linearly from a thousandth of it.
 *
 * States (healthy, unhealthy, recovering) change on a worker: an ejection
 * as the failure that causes it is reported, an ejection's end and a
 * ramp's end as the first request of the upstream that comes after them.
 * A compare-and-swap on the state picks one worker to log and count each
 * change.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/bstate.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "revproxy/health.h"
#include "../src/util.h"

static const char *const health_keys[] = {
    "health", "passive", "consecutive_failures", "ejection_ms", "max_ejection_ms",
    "max_ejection_percent", "include_5xx", "slow_start_ms", NULL };

typedef struct up_health {
    const char      *name;        /* the snapshot's */
    bool             on;          /* a "health" section */
    rp_passive_cfg_t passive;
    unsigned         slow_start_ms;
    atomic_uint      out;         /* backends out or ramping: sweep them */
} up_health_t;

typedef struct health_state {
    size_t       n;
    up_health_t *up;   /* owned: by upstream index */
} health_state_t;

/* ---- the pure parts (tested alone) ---- */

uint64_t
rp_passive_ejection_ms(const rp_passive_cfg_t *c, unsigned nth)
{
    uint64_t ms = (uint64_t)c->ejection_ms * (nth ? nth : 1);
    return ms > c->max_ejection_ms ? c->max_ejection_ms : ms;
}

unsigned
rp_passive_max_out(const rp_passive_cfg_t *c, size_t nbackends)
{
    size_t n = nbackends * c->max_ejection_percent / 100;
    return (unsigned)(n ? n : 1);
}

bool
rp_passive_is_failure(const rp_passive_cfg_t *c, const rp_attempt_t *a)
{
    switch (a->result) {
    case RP_ATTEMPT_CONNECT_ERROR:
    case RP_ATTEMPT_CONNECT_TIMEOUT:
    case RP_ATTEMPT_TIMEOUT:
    case RP_ATTEMPT_BAD_RESPONSE:
    case RP_ATTEMPT_RESET:
        return true;
    case RP_ATTEMPT_OK:
        return c->include_5xx && a->status >= 500 && a->status <= 599;
    default:
        return false;   /* the client ended it: says nothing of the backend */
    }
}

/* ---- configuration ---- */

/* An unsigned key in min..max; an absent key leaves *out as it was. */
static void
conf_unsigned(const json_t *o, const char *key, const char *p, unsigned min, unsigned max,
              unsigned *out, rp_errs_t *errs)
{
    uint64_t v = *out;
    if (rp_conf_uint(o, key, p, min, max, &v, errs) == 0)
        *out = (unsigned)v;
}

static void
parse_health(const json_t *h, const char *p, up_health_t *uh, rp_errs_t *errs)
{
    static const char *const allowed[] = { "passive", "slow_start_ms", NULL };
    static const char *const unsupported[] = { "active", NULL };
    static const char *const passive_keys[] = {
        "consecutive_failures", "ejection_ms", "max_ejection_ms", "max_ejection_percent",
        "include_5xx", NULL };
    if (!json_is_object(h)) {
        rp_errs_add(errs, p, "must be an object, not %s", rp_conf_type_name(h));
        return;
    }
    rp_conf_keys(h, p, allowed, unsupported, errs);
    uh->on = true;
    conf_unsigned(h, "slow_start_ms", p, 0, 3600000, &uh->slow_start_ms, errs);
    const json_t *ps = json_object_get(h, "passive");
    if (ps == NULL)
        return;
    char q[512];
    rp_conf_path(q, sizeof q, p, "passive");
    if (!json_is_object(ps)) {
        rp_errs_add(errs, q, "must be an object, not %s", rp_conf_type_name(ps));
        return;
    }
    rp_conf_keys(ps, q, passive_keys, NULL, errs);
    rp_passive_cfg_t *c = &uh->passive;
    c->on = true;
    conf_unsigned(ps, "consecutive_failures", q, 1, 1000, &c->consecutive_failures, errs);
    conf_unsigned(ps, "ejection_ms", q, 1, 86400000, &c->ejection_ms, errs);
    conf_unsigned(ps, "max_ejection_ms", q, 1, 86400000, &c->max_ejection_ms, errs);
    conf_unsigned(ps, "max_ejection_percent", q, 1, 100, &c->max_ejection_percent, errs);
    rp_conf_bool(ps, "include_5xx", q, &c->include_5xx, errs);
    if (c->max_ejection_ms < c->ejection_ms) {
        char m[512];
        rp_conf_path(m, sizeof m, q, "max_ejection_ms");
        rp_errs_add(errs, m, "must be at least ejection_ms (%u)", c->ejection_ms);
    }
}

static int
health_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    size_t before = errs->count;
    health_state_t *hs = rp_xcalloc(1, sizeof *hs);
    hs->n = snap->nupstreams;
    hs->up = rp_xcalloc(hs->n ? hs->n : 1, sizeof *hs->up);
    const json_t *ups = json_object_get(root, "upstreams");
    for (size_t i = 0; i < hs->n; i++) {
        up_health_t *uh = &hs->up[i];
        uh->passive = (rp_passive_cfg_t){ .consecutive_failures = 5, .ejection_ms = 30000,
                                          .max_ejection_ms = 300000,
                                          .max_ejection_percent = 50 };
        atomic_init(&uh->out, 0);
        const rp_upstream_t *u = &snap->upstreams[i];
        uh->name = u->name;
        const json_t *uo = json_is_object(ups) ? json_object_get(ups, u->name) : NULL;
        const json_t *h = json_is_object(uo) ? json_object_get(uo, "health") : NULL;
        if (h == NULL)
            continue;
        char p[512];
        snprintf(p, sizeof p, "upstreams.%s.health", u->name);
        parse_health(h, p, uh, errs);
    }
    if (errs->count > before) {
        free(hs->up);
        free(hs);
        return -1;
    }
    *state = hs;
    return 0;
}

static void
health_release(void *state)
{
    health_state_t *hs = state;
    free(hs->up);
    free(hs);
}

/* ---- state changes ---- */

/* The info line of a state change (or of a new ejection of a backend
 * already out). */
static void
log_change(const rp_upstream_t *u, const rp_backend_t *be, rp_health_t from, rp_health_t to,
           const char *why)
{
    /* Upstream names and addresses need no JSON escaping (config.c). */
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"upstream\":\"%s\",\"backend\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
             "\"reason\":\"%s\"", u->name, be->addr.text, rp_health_name(from),
             rp_health_name(to), why);
    rp_log_fields(RP_LOG_INFO, NULL, extra, "backend %s of upstream %s: %s -> %s (%s)",
                  be->addr.text, u->name, rp_health_name(from), rp_health_name(to), why);
}

/* One worker wins each change: it counts and logs it, and keeps the
 * upstream's count of backends not healthy. */
static void
set_health(const rp_upstream_t *u, up_health_t *uh, const rp_backend_t *be, rp_bstate_t *bs,
           rp_health_t from, rp_health_t to, const char *why)
{
    unsigned expect = from;
    if (from == to || !atomic_compare_exchange_strong(&bs->health, &expect, to))
        return;   /* another worker made this change */
    atomic_fetch_add_explicit(&bs->changes[to], 1, memory_order_relaxed);
    if (from == RP_HEALTH_HEALTHY)
        atomic_fetch_add(&uh->out, 1);
    else if (to == RP_HEALTH_HEALTHY)
        atomic_fetch_sub(&uh->out, 1);
    log_change(u, be, from, to, why);
}

/* Ejections and ramps that have ended since: the first request of the
 * upstream after them notices, and one worker logs each. */
static void
sweep(const rp_upstream_t *u, up_health_t *uh, uint64_t now)
{
    for (size_t k = 0; k < u->nbackends; k++) {
        const rp_backend_t *be = &u->backends[k];
        rp_bstate_t *bs = rp_bstate(be->id);
        rp_health_t h = atomic_load(&bs->health);
        if (h == RP_HEALTH_UNHEALTHY && rp_bstate_eligible(bs, now)) {
            if (atomic_load(&bs->ramp_from) != 0) {
                set_health(u, uh, be, bs, h, RP_HEALTH_RECOVERING, "ejection ended; slow start");
                h = RP_HEALTH_RECOVERING;
            } else {
                set_health(u, uh, be, bs, h, RP_HEALTH_HEALTHY, "ejection ended");
                continue;
            }
        }
        if (h == RP_HEALTH_RECOVERING) {
            uint64_t from = atomic_load(&bs->ramp_from);
            uint64_t len = (uint64_t)atomic_load(&bs->ramp_ms) * 1000u;
            if (now >= from + len)
                set_health(u, uh, be, bs, h, RP_HEALTH_HEALTHY, "slow start done");
        }
    }
}

static rp_verdict_t
health_select(rp_txn_t *txn, void *state)
{
    health_state_t *hs = state;
    const rp_upstream_t *u = txn->upstream;
    if (u == NULL || u->index >= hs->n)
        return RP_CONTINUE;
    up_health_t *uh = &hs->up[u->index];
    if (atomic_load_explicit(&uh->out, memory_order_relaxed) > 0)
        sweep(u, uh, rp_now_us());
    return RP_CONTINUE;
}

static void
eject(const rp_upstream_t *u, up_health_t *uh, const rp_backend_t *be, rp_bstate_t *bs,
      uint64_t now, unsigned fails)
{
    const rp_passive_cfg_t *c = &uh->passive;
    /* How many of the upstream are out by ejection now. */
    unsigned out = 0;
    for (size_t k = 0; k < u->nbackends; k++)
        if (now < atomic_load(&rp_bstate(u->backends[k].id)->ejected_until))
            out++;
    if (out >= rp_passive_max_out(c, u->nbackends))
        return;   /* max_ejection_percent: keep it in */
    uint64_t until = atomic_load(&bs->ejected_until);
    if (now < until)
        return;   /* already out */
    unsigned nth = atomic_load(&bs->ejections) + 1;
    uint64_t ms = rp_passive_ejection_ms(c, nth);
    if (!atomic_compare_exchange_strong(&bs->ejected_until, &until, now + ms * 1000u))
        return;   /* another worker ejected it */
    atomic_store(&bs->ejections, nth);
    atomic_store(&bs->fails, 0);
    atomic_store(&bs->ramp_ms, uh->slow_start_ms);
    atomic_store(&bs->ramp_from, uh->slow_start_ms ? now + ms * 1000u : 0);
    char why[128];
    snprintf(why, sizeof why, "passive: %u failures in a row; ejected for %llu ms (ejection %u)",
             fails, (unsigned long long)ms, nth);
    rp_health_t h = atomic_load(&bs->health);
    if (h == RP_HEALTH_UNHEALTHY) {
        /* Its last ejection ended unnoticed (no request came since): the
         * state stays, but the new ejection is news all the same. */
        log_change(u, be, h, h, why);
        return;
    }
    set_health(u, uh, be, bs, h, RP_HEALTH_UNHEALTHY, why);
}

static void
health_result(rp_txn_t *txn, void *state, const rp_attempt_t *a)
{
    health_state_t *hs = state;
    const rp_upstream_t *u = txn->upstream;
    if (u == NULL || u->index >= hs->n || a->backend == NULL)
        return;
    up_health_t *uh = &hs->up[u->index];
    const rp_passive_cfg_t *c = &uh->passive;
    if (!c->on || a->result == RP_ATTEMPT_ABORTED)
        return;
    rp_bstate_t *bs = rp_bstate(a->backend->id);
    uint64_t now = rp_now_us();
    if (!rp_passive_is_failure(c, a)) {
        if (atomic_load_explicit(&bs->fails, memory_order_relaxed) != 0)
            atomic_store_explicit(&bs->fails, 0, memory_order_relaxed);
        /* Served well for ejection_ms after its last ejection ended: the
         * next ejection is a first one again. */
        if (atomic_load_explicit(&bs->ejections, memory_order_relaxed) != 0) {
            uint64_t until = atomic_load(&bs->ejected_until);
            uint64_t last = atomic_load(&bs->last_fail);
            uint64_t calm = (uint64_t)c->ejection_ms * 1000u;
            if (now >= until + calm && now >= last + calm)
                atomic_store(&bs->ejections, 0);
        }
        return;
    }
    atomic_store_explicit(&bs->last_fail, now, memory_order_relaxed);
    unsigned fails = atomic_fetch_add(&bs->fails, 1) + 1;
    if (fails >= c->consecutive_failures)
        eject(u, uh, a->backend, bs, now, fails);
}

static void
health_dump(const void *state, json_t *root)
{
    const health_state_t *hs = state;
    json_t *ups = json_object_get(root, "upstreams");
    for (size_t i = 0; i < hs->n; i++) {
        const up_health_t *uh = &hs->up[i];
        json_t *uo = json_object_get(ups, uh->name);
        if (!uh->on || uo == NULL)
            continue;
        json_t *h = json_object();
        json_object_set_new(h, "slow_start_ms", json_integer(uh->slow_start_ms));
        if (uh->passive.on) {
            const rp_passive_cfg_t *c = &uh->passive;
            json_object_set_new(h, "passive", json_pack("{s:I,s:I,s:I,s:I,s:b}",
                "consecutive_failures", (json_int_t)c->consecutive_failures,
                "ejection_ms", (json_int_t)c->ejection_ms,
                "max_ejection_ms", (json_int_t)c->max_ejection_ms,
                "max_ejection_percent", (json_int_t)c->max_ejection_percent,
                "include_5xx", c->include_5xx));
        }
        json_object_set_new(uo, "health", h);
    }
}

const rp_module_t rp_module_health = {
    .name = "health",
    .configure = health_configure,
    .release = health_release,
    .select_backend = health_select,
    .on_upstream_result = health_result,
    .dump = health_dump,
    .keys = health_keys,
};
