/* SPDX-License-Identifier: MIT */
/*
 * The health module's arithmetic (modules/health.c), as pure functions so
 * tests can hold it to the documentation.
 */
#ifndef REVPROXY_HEALTH_H
#define REVPROXY_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "revproxy/txn.h"

typedef struct rp_passive_cfg {
    bool     on;
    unsigned consecutive_failures;   /* default 5 */
    unsigned ejection_ms;            /* default 30000 */
    unsigned max_ejection_ms;        /* default 300000 */
    unsigned max_ejection_percent;   /* default 50 */
    bool     include_5xx;            /* default false */
} rp_passive_cfg_t;

#define RP_STATUS_RANGES_MAX 16

typedef struct rp_active_cfg {
    bool     on;
    char    *path;                   /* owned; default "/" */
    char    *host;                   /* owned; NULL: the backend's address */
    unsigned interval_ms;            /* default 2000, +-10% jitter */
    unsigned timeout_ms;             /* default 1000 */
    unsigned healthy_threshold;      /* default 2 */
    unsigned unhealthy_threshold;    /* default 3 */
    unsigned nranges;                /* expect_status, default 200-399 */
    uint16_t lo[RP_STATUS_RANGES_MAX], hi[RP_STATUS_RANGES_MAX];
} rp_active_cfg_t;

/* Parse an expect_status value ("200-399", "200,204,301-302") into c's
 * ranges; -1 with a reason in *why when it is malformed. */
int rp_active_parse_status(rp_active_cfg_t *c, const char *s, const char **why);
bool rp_active_status_ok(const rp_active_cfg_t *c, int status);

/* The runs of active check results of one backend. */
typedef struct rp_active_run {
    bool     down;
    unsigned ok, fail;   /* consecutive successes, failures */
} rp_active_run_t;
/* Count one check result: +1 when it brings the backend up, -1 when it
 * takes it down, 0 when its state stays. */
int rp_active_step(rp_active_run_t *r, bool ok, const rp_active_cfg_t *c);

/* How long the nth ejection in a row lasts: ejection_ms * nth, at most
 * max_ejection_ms. */
uint64_t rp_passive_ejection_ms(const rp_passive_cfg_t *c, unsigned nth);
/* How many of nbackends may be out by ejection at once: the percentage,
 * rounded down, but at least one. */
unsigned rp_passive_max_out(const rp_passive_cfg_t *c, size_t nbackends);
/* Whether an attempt counts as a failure of its backend. */
bool rp_passive_is_failure(const rp_passive_cfg_t *c, const rp_attempt_t *a);

#endif
