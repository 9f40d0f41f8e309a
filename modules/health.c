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
 * Active ("health.active"): checks from the main thread, see below.
 *
 * States (healthy, unhealthy, recovering) change on a worker (an ejection
 * as the failure that causes it is reported, an ejection's end and a
 * ramp's end at the first sweep of the upstream after them) or on the
 * main thread (active check results).
 * A compare-and-swap on the state picks one worker to log and count each
 * change.
 */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include "revproxy/bstate.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "revproxy/health.h"
#include "revproxy/upstream.h"
#include "../src/util.h"
#include "io.h"

static const char *const health_keys[] = {
    "health", "passive", "consecutive_failures", "ejection_ms", "max_ejection_ms",
    "max_ejection_percent", "include_5xx", "slow_start_ms", "active", "path", "host",
    "interval_ms", "timeout_ms", "healthy_threshold", "unhealthy_threshold", "expect_status",
    NULL };

typedef struct up_health {
    const char      *name;        /* the snapshot's */
    bool             on;          /* a "health" section */
    rp_passive_cfg_t passive;
    rp_active_cfg_t  active;
    unsigned         slow_start_ms;
    atomic_uint      out;         /* backends out or ramping: sweep them */
    atomic_ullong    swept;       /* µs: last sweep (one at least every 100 ms) */
    pthread_mutex_t  eject_lock;  /* the max_ejection_percent count and the
                                     ejection it allows, together (rare) */
} up_health_t;

typedef struct checker checker_t;

typedef struct health_state {
    size_t       n;
    up_health_t *up;   /* owned: by upstream index */
    const rp_snapshot_t *snap;   /* borrowed: the one holding this state */
    checker_t   *checks;   /* owned while checking (main_start..main_stop) */
    size_t       nchecks;
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

int
rp_active_parse_status(rp_active_cfg_t *c, const char *s, const char **why)
{
    unsigned n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9')
            goto bad;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                goto bad;
            hi = strtoul(p, &end, 10);
            p = end;
        }
        if (*p != '\0' && *p != ',')
            goto bad;
        if (lo < 100 || hi > 599 || lo > hi) {
            *why = "status codes are 100 to 599, each range low-high";
            return -1;
        }
        if (n == RP_STATUS_RANGES_MAX) {
            *why = "at most 16 ranges";
            return -1;
        }
        c->lo[n] = (uint16_t)lo;
        c->hi[n] = (uint16_t)hi;
        n++;
        if (*p == '\0')
            break;
        if (*p != ',')
            goto bad;
        p++;
    }
    c->nranges = n;
    return 0;
bad:
    *why = "must be status codes and ranges separated by commas, as \"200-399\" or \"200,204\"";
    return -1;
}

bool
rp_active_status_ok(const rp_active_cfg_t *c, int status)
{
    for (unsigned i = 0; i < c->nranges; i++)
        if (status >= c->lo[i] && status <= c->hi[i])
            return true;
    return false;
}

int
rp_active_step(rp_active_run_t *r, bool ok, const rp_active_cfg_t *c)
{
    if (ok) {
        r->fail = 0;
        if (r->ok < UINT32_MAX)
            r->ok++;
        if (r->down && r->ok >= c->healthy_threshold) {
            r->down = false;
            return 1;
        }
    } else {
        r->ok = 0;
        if (r->fail < UINT32_MAX)
            r->fail++;
        if (!r->down && r->fail >= c->unhealthy_threshold) {
            r->down = true;
            return -1;
        }
    }
    return 0;
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
parse_active(const json_t *a, const char *q, rp_active_cfg_t *c, rp_errs_t *errs)
{
    static const char *const active_keys[] = {
        "path", "host", "interval_ms", "timeout_ms", "healthy_threshold",
        "unhealthy_threshold", "expect_status", NULL };
    if (!json_is_object(a)) {
        rp_errs_add(errs, q, "must be an object, not %s", rp_conf_type_name(a));
        return;
    }
    rp_conf_keys(a, q, active_keys, NULL, errs);
    c->on = true;
    char k[512];
    const char *path = NULL, *host = NULL, *st = NULL;
    if (rp_conf_string(a, "path", q, &path, errs) == 0 && path != NULL) {
        rp_conf_path(k, sizeof k, q, "path");
        bool ok = path[0] == '/' && strlen(path) < 1024;
        for (const char *x = path; ok && *x; x++)
            ok = *x > 0x20 && *x < 0x7f && *x != '#';
        if (!ok)
            rp_errs_add(errs, k, "must start with / and be printable ASCII without spaces "
                        "or #, under 1024 bytes");
        else if ((c->path = strdup(path)) == NULL)
            rp_errs_add(errs, k, "out of memory");
    }
    if (rp_conf_string(a, "host", q, &host, errs) == 0 && host != NULL) {
        rp_conf_path(k, sizeof k, q, "host");
        bool ok = host[0] != '\0' && strlen(host) < 256;
        for (const char *x = host; ok && *x; x++)
            ok = isalnum((unsigned char)*x) || strchr("-.:[]_", *x) != NULL;
        if (!ok)
            rp_errs_add(errs, k, "must be a host name or address, with an optional port "
                        "(letters, digits and - . : [ ] _)");
        else if ((c->host = strdup(host)) == NULL)
            rp_errs_add(errs, k, "out of memory");
    }
    conf_unsigned(a, "interval_ms", q, 100, 86400000, &c->interval_ms, errs);
    if (json_object_get(a, "timeout_ms") == NULL && c->timeout_ms >= c->interval_ms)
        c->timeout_ms = c->interval_ms / 2;   /* the default fits a short interval */
    conf_unsigned(a, "timeout_ms", q, 10, 86400000, &c->timeout_ms, errs);
    conf_unsigned(a, "healthy_threshold", q, 1, 1000, &c->healthy_threshold, errs);
    conf_unsigned(a, "unhealthy_threshold", q, 1, 1000, &c->unhealthy_threshold, errs);
    if (rp_conf_string(a, "expect_status", q, &st, errs) == 0 && st != NULL) {
        const char *why;
        rp_conf_path(k, sizeof k, q, "expect_status");
        if (rp_active_parse_status(c, st, &why) < 0)
            rp_errs_add(errs, k, "%s", why);
    }
    if (c->timeout_ms >= c->interval_ms) {
        rp_conf_path(k, sizeof k, q, "timeout_ms");
        rp_errs_add(errs, k, "must be below interval_ms (%u)", c->interval_ms);
    }
}

static void
parse_health(const json_t *h, const char *p, up_health_t *uh, rp_errs_t *errs)
{
    static const char *const allowed[] = { "passive", "active", "slow_start_ms", NULL };
    static const char *const passive_keys[] = {
        "consecutive_failures", "ejection_ms", "max_ejection_ms", "max_ejection_percent",
        "include_5xx", NULL };
    if (!json_is_object(h)) {
        rp_errs_add(errs, p, "must be an object, not %s", rp_conf_type_name(h));
        return;
    }
    rp_conf_keys(h, p, allowed, NULL, errs);
    uh->on = true;
    conf_unsigned(h, "slow_start_ms", p, 0, 3600000, &uh->slow_start_ms, errs);
    char q[512];
    const json_t *as = json_object_get(h, "active");
    if (as != NULL) {
        rp_conf_path(q, sizeof q, p, "active");
        parse_active(as, q, &uh->active, errs);
    }
    const json_t *ps = json_object_get(h, "passive");
    if (ps == NULL)
        return;
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
    if (json_object_get(ps, "max_ejection_ms") == NULL && c->max_ejection_ms < c->ejection_ms)
        c->max_ejection_ms = c->ejection_ms;   /* the default never undercuts ejection_ms */
    conf_unsigned(ps, "max_ejection_percent", q, 1, 100, &c->max_ejection_percent, errs);
    rp_conf_bool(ps, "include_5xx", q, &c->include_5xx, errs);
    if (c->max_ejection_ms < c->ejection_ms) {
        char m[512];
        rp_conf_path(m, sizeof m, q, "max_ejection_ms");
        rp_errs_add(errs, m, "must be at least ejection_ms (%u)", c->ejection_ms);
    }
}

static void
health_release(void *state)
{
    health_state_t *hs = state;
    for (size_t i = 0; i < hs->n; i++) {
        free(hs->up[i].active.path);
        free(hs->up[i].active.host);
        pthread_mutex_destroy(&hs->up[i].eject_lock);
    }
    free(hs->up);
    free(hs);
}

static int
health_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    size_t before = errs->total;
    health_state_t *hs = calloc(1, sizeof *hs);
    if (hs == NULL || (hs->up = calloc(snap->nupstreams + 1, sizeof *hs->up)) == NULL) {
        free(hs);
        rp_errs_add(errs, "upstreams", "out of memory");
        return -1;
    }
    hs->n = snap->nupstreams;
    const json_t *ups = json_object_get(root, "upstreams");
    for (size_t i = 0; i < hs->n; i++) {
        up_health_t *uh = &hs->up[i];
        uh->passive = (rp_passive_cfg_t){ .consecutive_failures = 5, .ejection_ms = 30000,
                                          .max_ejection_ms = 300000,
                                          .max_ejection_percent = 50 };
        atomic_init(&uh->out, 0);
        atomic_init(&uh->swept, 0);
        pthread_mutex_init(&uh->eject_lock, NULL);
        uh->active = (rp_active_cfg_t){ .interval_ms = 2000, .timeout_ms = 1000,
                                        .healthy_threshold = 2, .unhealthy_threshold = 3,
                                        .nranges = 1, .lo = { 200 }, .hi = { 399 } };
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
    hs->snap = snap;
    if (errs->total > before) {
        health_release(hs);
        return -1;
    }
    *state = hs;
    return 0;
}

/* ---- state changes ---- */

/* The info line of a state change (or of a new ejection of a backend
 * already out). */
static void
log_change(const rp_upstream_t *u, const rp_backend_t *be, rp_bstate_t *bs, rp_health_t from,
           rp_health_t to, const char *why)
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
    rp_bstate_note(bs, to, why);
    if (from == RP_HEALTH_HEALTHY) {
        atomic_fetch_add(&uh->out, 1);
    } else if (to == RP_HEALTH_HEALTHY) {
        /* Never below 0 (a state from before this snapshot). */
        unsigned o = atomic_load(&uh->out);
        while (o > 0 && !atomic_compare_exchange_weak(&uh->out, &o, o - 1))
            ;
    }
    log_change(u, be, bs, from, to, why);
}

/* A backend goes out: whatever state it is in (a sweep may be changing
 * it right now), it ends unhealthy. */
static void
take_out(const rp_upstream_t *u, up_health_t *uh, const rp_backend_t *be, rp_bstate_t *bs,
         const char *why)
{
    for (;;) {
        rp_health_t h = atomic_load(&bs->health);
        if (h == RP_HEALTH_UNHEALTHY) {
            /* Out already (its last ejection ended unnoticed, or the other
             * kind of check took it out): the state stays, but this is
             * news all the same. */
            log_change(u, be, bs, h, h, why);
            return;
        }
        set_health(u, uh, be, bs, h, RP_HEALTH_UNHEALTHY, why);
        if (atomic_load(&bs->health) == RP_HEALTH_UNHEALTHY)
            return;
    }
}

/* A backend that was out is back in (its ejection ended, or active
 * checks passed): recovering or healthy.  If it went out again meanwhile
 * (another worker ejected it), its state says so once more. */
static void
back_in(const rp_upstream_t *u, up_health_t *uh, const rp_backend_t *be, rp_bstate_t *bs,
        const char *why)
{
    uint64_t from = atomic_load(&bs->ramp_from);
    uint64_t len = (uint64_t)atomic_load(&bs->ramp_ms) * 1000u;
    rp_health_t to = from != 0 && rp_now_us() < from + len ? RP_HEALTH_RECOVERING
                                                            : RP_HEALTH_HEALTHY;
    set_health(u, uh, be, bs, RP_HEALTH_UNHEALTHY, to, why);
    if (!rp_bstate_eligible(bs, rp_now_us()))
        set_health(u, uh, be, bs, to, RP_HEALTH_UNHEALTHY, "out again");
}

/* Ejections and ramps that have ended since: the first request of the
 * upstream after them notices, and one worker logs each. */
static void
sweep(const rp_upstream_t *u, up_health_t *uh, uint64_t now)
{
    for (size_t k = 0; k < u->npos; k++) {
        rp_pos_t p;
        if (!rp_upstream_pos(u, k, &p))
            continue;
        rp_bstate_t *bs = rp_bstate(p.id);
        rp_health_t h = atomic_load(&bs->health);
        if (h == RP_HEALTH_HEALTHY)
            continue;
        rp_backend_t own;   /* only for a change to log */
        const rp_backend_t *be = rp_pos_backend(&p, &own);
        if (h == RP_HEALTH_UNHEALTHY && rp_bstate_eligible(bs, now)) {
            back_in(u, uh, be, bs, "back in");
            h = atomic_load(&bs->health);
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
    if (!uh->on)
        return RP_CONTINUE;
    /* Every 10 ms while a backend is out or ramping, every 100 ms anyway
     * (a state left from before this snapshot is not in its count).  Only
     * the logged state waits for it: eligibility is a matter of time. */
    uint64_t now = rp_now_us();
    uint64_t swept = atomic_load_explicit(&uh->swept, memory_order_relaxed);
    uint64_t every = atomic_load_explicit(&uh->out, memory_order_relaxed) > 0 ? 10000u : 100000u;
    if (now - swept >= every) {
        atomic_store_explicit(&uh->swept, now, memory_order_relaxed);
        sweep(u, uh, now);
    }
    return RP_CONTINUE;
}

static void
eject(const rp_upstream_t *u, up_health_t *uh, const rp_backend_t *be, rp_bstate_t *bs,
      uint64_t now, unsigned fails)
{
    const rp_passive_cfg_t *c = &uh->passive;
    unsigned nth = atomic_load(&bs->ejections) + 1;
    uint64_t ms = rp_passive_ejection_ms(c, nth);
    /* Counting the upstream's ejected backends and ejecting this one go
     * together: two workers ejecting two backends at once must not both
     * pass max_ejection_percent.  A rare path (a threshold reached). */
    pthread_mutex_lock(&uh->eject_lock);
    unsigned out = 0;
    size_t n = 0;
    for (size_t k = 0; k < u->npos; k++) {
        rp_pos_t p;
        if (!rp_upstream_pos(u, k, &p))
            continue;
        n++;
        if (now < atomic_load(&rp_bstate(p.id)->ejected_until))
            out++;
    }
    uint64_t until = atomic_load(&bs->ejected_until);
    bool go = out < rp_passive_max_out(c, n) && now >= until;
    if (go) {
        /* The ramp before the ejection is visible, so that no worker sees
         * it back in at full weight. */
        atomic_store(&bs->ramp_ms, uh->slow_start_ms);
        atomic_store(&bs->ramp_from, uh->slow_start_ms ? now + ms * 1000u : 0);
        atomic_store(&bs->ejected_until, now + ms * 1000u);
        atomic_store(&bs->ejections, nth);
        atomic_store(&bs->fails, 0);
    }
    pthread_mutex_unlock(&uh->eject_lock);
    if (!go)
        return;   /* max_ejection_percent keeps it in, or it is out already */
    char why[128];
    snprintf(why, sizeof why, "passive: %u failures in a row; ejected for %llu ms (ejection %u)",
             fails, (unsigned long long)ms, nth);
    take_out(u, uh, be, bs, why);
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
    /* Attempts still ending while it is out say nothing new: the count
     * starts over when it is back. */
    if (now < atomic_load(&bs->ejected_until))
        return;
    unsigned fails = atomic_fetch_add(&bs->fails, 1) + 1;
    if (fails >= c->consecutive_failures)
        eject(u, uh, a->backend, bs, now, fails);
}

/* ---- active checks ----
 *
 * On the main thread's event base: one checker per backend of an upstream
 * with "health.active", so never more than one check in flight per
 * backend, whatever the number of workers.  A check connects, sends a GET
 * of the path, reads the response head (llhttp, strict) and closes; a
 * connect error, a timeout, a malformed head or a status outside
 * expect_status is a failure.  The next check starts interval_ms +-10%
 * after this one ended. */

struct checker {
    health_state_t     *hs;
    const rp_upstream_t *u;
    up_health_t        *uh;
    size_t              pos;       /* its position in the upstream */
    const rp_backend_t *be;        /* the backend there now, or NULL */
    rp_backend_t        own;       /* be, when resolved from a host name */
    unsigned            id;        /* its identity, -1u: none yet */
    rp_bstate_t        *bs;
    struct event_base  *base;
    struct event       *timer;     /* the next check, or this one's deadline */
    struct bufferevent *bev;       /* the check in flight, or NULL */
    llhttp_t            parser;
    llhttp_settings_t   settings;
    int                 status;    /* 0 until the final head is complete */
    size_t              parsed;    /* response bytes parsed so far */
};

static void check_start(checker_t *c);

static unsigned
jittered(unsigned ms)
{
    unsigned span = ms / 5;   /* +-10% */
    return span ? ms - ms / 10 + (unsigned)(random() % (span + 1)) : ms;
}

static void
active_change(checker_t *c, int step)
{
    uint64_t now = rp_now_us();
    rp_bstate_t *bs = c->bs;
    rp_health_t h = atomic_load(&bs->health);
    if (step < 0) {
        atomic_store(&bs->active_down, true);
        char why[96];
        snprintf(why, sizeof why, "active: %u failed checks in a row", bs->run_fail);
        take_out(c->u, c->uh, c->be, bs, why);
        return;
    }
    /* Up again: slow start from now, then eligible (unless an ejection
     * still runs; its end is noticed as usual). */
    /* The ramp starts when it can take traffic again: now, or when an
     * ejection still running ends. */
    uint64_t until = atomic_load(&bs->ejected_until);
    atomic_store(&bs->ramp_ms, c->uh->slow_start_ms);
    atomic_store(&bs->ramp_from, c->uh->slow_start_ms > 0 ? (until > now ? until : now) : 0);
    atomic_store(&bs->active_down, false);
    if (h == RP_HEALTH_UNHEALTHY && rp_bstate_eligible(bs, now)) {
        char why[96];
        snprintf(why, sizeof why, "active: %u good checks in a row", bs->run_ok);
        back_in(c->u, c->uh, c->be, bs, why);
    }
}

static void check_timer_cb(evutil_socket_t fd, short what, void *arg);

/* The check in flight ends: ok or not; the next is scheduled. */
static void
check_end(checker_t *c, bool ok, const char *why)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (!ok)
        rp_log(RP_LOG_DEBUG, NULL, "health check of %s (upstream %s) failed: %s",
               c->be->addr.text, c->u->name, why);
    /* The run is the backend's, not this checker's (bstate.h). */
    rp_active_run_t run = { c->bs->run_down, c->bs->run_ok, c->bs->run_fail };
    int step = rp_active_step(&run, ok, &c->uh->active);
    c->bs->run_down = run.down;
    c->bs->run_ok = run.ok;
    c->bs->run_fail = run.fail;
    if (step != 0)
        active_change(c, step);
    unsigned ms = jittered(c->uh->active.interval_ms);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_del(c->timer);
    rp_event_add(c->timer, &tv);
}

static int
check_on_headers_complete(llhttp_t *p)
{
    checker_t *c = p->data;
    if (p->status_code < 200 && p->status_code != 101)
        return 0;   /* interim (100, 103): the final head follows */
    c->status = p->status_code;
    return HPE_PAUSED;   /* the head is all a check needs */
}

static void
check_read_cb(struct bufferevent *bev, void *arg)
{
    checker_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0 && c->status == 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        /* The heads (interim ones included) may take 16 KiB at most. */
        size_t n = v.iov_len;
        if (c->parsed + n > 16384)
            n = 16384 - c->parsed;
        llhttp_errno_t e = llhttp_execute(&c->parser, v.iov_base, n);
        if (e != HPE_OK && e != HPE_PAUSED) {
            check_end(c, false, "malformed response");
            return;
        }
        c->parsed += n;
        evbuffer_drain(in, v.iov_len);
        if (c->status == 0 && c->parsed >= 16384) {
            check_end(c, false, "response head over 16 KiB");
            return;
        }
    }
    if (c->status != 0) {
        bool ok = rp_active_status_ok(&c->uh->active, c->status);
        char why[48];
        snprintf(why, sizeof why, "status %d", c->status);
        check_end(c, ok, why);
    }
}

static void
check_event_cb(struct bufferevent *bev, short what, void *arg)
{
    checker_t *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        const rp_active_cfg_t *a = &c->uh->active;
        struct evbuffer *out = bufferevent_get_output(bev);
        evbuffer_add_printf(out, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: revproxy-health-check\r\n"
                            "Connection: close\r\n\r\n",
                            a->path ? a->path : "/",
                            a->host ? a->host : c->u->backends[c->u->pos_entry[c->pos]].addr.text);
        bufferevent_enable(bev, EV_READ);
        return;
    }
    check_end(c, false, (what & BEV_EVENT_EOF) ? "closed before a response"
                        : (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
                        : "error");
}

/* The backend at the checker's position now.  A position of a host name
 * may hold another address than at the last check, or none: its run of
 * results starts over. */
static bool
check_target(checker_t *c)
{
    rp_pos_t p;
    if (!rp_upstream_pos(c->u, c->pos, &p)) {
        c->be = NULL;
        c->id = -1u;
        return false;
    }
    if (p.id != c->id) {
        c->id = p.id;
        c->bs = rp_bstate(p.id);
    }
    c->be = rp_pos_backend(&p, &c->own);
    return true;
}

static void
check_start(checker_t *c)
{
    c->status = 0;
    c->parsed = 0;
    if (!check_target(c)) {
        /* Nothing there (a name resolving to fewer addresses): look again
         * after an interval. */
        unsigned ms = jittered(c->uh->active.interval_ms);
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        evtimer_del(c->timer);
        rp_event_add(c->timer, &tv);
        return;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
    c->parser.data = c;
    int fd = socket(c->be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        check_end(c, false, strerror(errno));
        return;
    }
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        check_end(c, false, "no memory");
        return;
    }
    bufferevent_setcb(c->bev, check_read_cb, NULL, check_event_cb, c);
    if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&c->be->addr.ss,
                                   (int)c->be->addr.len) < 0) {
        check_end(c, false, errno ? strerror(errno) : "connect failed");
        return;
    }
    /* The deadline of this check. */
    unsigned ms = c->uh->active.timeout_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_del(c->timer);
    rp_event_add(c->timer, &tv);
}

static void
check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    checker_t *c = arg;
    (void)fd;
    (void)what;
    if (c->bev != NULL)
        check_end(c, false, "timed out");
    else
        check_start(c);
}

static int
health_main_start(struct event_base *base, void *state)
{
    health_state_t *hs = state;
    size_t n = 0;
    for (size_t i = 0; i < hs->n; i++) {
        const rp_upstream_t *u = &hs->snap->upstreams[i];
        if (hs->up[i].active.on) {
            n += u->npos;
            continue;
        }
        /* No active checks here (any more, after a reload): what they
         * said no longer keeps a backend out. */
        for (size_t k = 0; k < u->npos; k++) {
            rp_pos_t p;
            if (!rp_upstream_pos(u, k, &p))
                continue;
            rp_bstate_t *bs = rp_bstate(p.id);
            if (atomic_exchange(&bs->active_down, false))
                rp_log(RP_LOG_INFO, NULL, "backend %s of upstream %s: no active checks any more; "
                       "it takes traffic again unless passive checks keep it out",
                       bs->addr.text, u->name);
            bs->run_down = false;
            bs->run_ok = bs->run_fail = 0;
        }
    }
    if (n == 0)
        return 0;
    /* Jitter that differs from one run (and one proxy) to the next. */
    unsigned seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        seed = (unsigned)rp_now_us() ^ (unsigned)getpid();
    srandom(seed);
    hs->checks = calloc(n, sizeof *hs->checks);
    hs->nchecks = 0;
    if (hs->checks == NULL)
        return -1;   /* logged by the caller: no active checks */
    for (size_t i = 0; i < hs->n; i++) {
        up_health_t *uh = &hs->up[i];
        if (!uh->active.on)
            continue;
        const rp_upstream_t *u = &hs->snap->upstreams[i];
        for (size_t k = 0; k < u->npos; k++) {
            checker_t *c = &hs->checks[hs->nchecks++];
            c->hs = hs;
            c->u = u;
            c->uh = uh;
            c->pos = k;
            c->id = -1u;
            c->base = base;
            llhttp_settings_init(&c->settings);
            c->settings.on_headers_complete = check_on_headers_complete;
            c->timer = evtimer_new(base, check_timer_cb, c);
            if (c->timer == NULL) {
                hs->nchecks--;   /* the checks started go on; the caller logs */
                return -1;
            }
            /* The first checks spread over one interval. */
            unsigned ms = (unsigned)(random() % (uh->active.interval_ms + 1));
            struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
            rp_event_add(c->timer, &tv);
        }
    }
    return 0;
}

static void
health_main_stop(void *state)
{
    health_state_t *hs = state;
    for (size_t i = 0; i < hs->nchecks; i++) {
        checker_t *c = &hs->checks[i];
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        event_free(c->timer);
    }
    free(hs->checks);
    hs->checks = NULL;
    hs->nchecks = 0;
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
        if (uh->active.on) {
            const rp_active_cfg_t *a = &uh->active;
            char st[RP_STATUS_RANGES_MAX * 8 + 1];
            size_t pos = 0;
            for (unsigned r = 0; r < a->nranges; r++) {
                int w = a->lo[r] == a->hi[r]
                            ? snprintf(st + pos, sizeof st - pos, "%s%u", r ? "," : "", a->lo[r])
                            : snprintf(st + pos, sizeof st - pos, "%s%u-%u", r ? "," : "",
                                       a->lo[r], a->hi[r]);
                pos += (size_t)w;
            }
            json_t *ao = json_pack("{s:s,s:I,s:I,s:I,s:I,s:s}", "path", a->path ? a->path : "/",
                                   "interval_ms", (json_int_t)a->interval_ms,
                                   "timeout_ms", (json_int_t)a->timeout_ms,
                                   "healthy_threshold", (json_int_t)a->healthy_threshold,
                                   "unhealthy_threshold", (json_int_t)a->unhealthy_threshold,
                                   "expect_status", st);
            if (a->host != NULL)
                json_object_set_new(ao, "host", json_string(a->host));
            json_object_set_new(h, "active", ao);
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
    .main_start = health_main_start,
    .main_stop = health_main_stop,
    .dump = health_dump,
    .keys = health_keys,
};
