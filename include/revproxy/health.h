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

/* How long the nth ejection in a row lasts: ejection_ms * nth, at most
 * max_ejection_ms. */
uint64_t rp_passive_ejection_ms(const rp_passive_cfg_t *c, unsigned nth);
/* How many of nbackends may be out by ejection at once: the percentage,
 * rounded down, but at least one. */
unsigned rp_passive_max_out(const rp_passive_cfg_t *c, size_t nbackends);
/* Whether an attempt counts as a failure of its backend. */
bool rp_passive_is_failure(const rp_passive_cfg_t *c, const rp_attempt_t *a);

#endif
