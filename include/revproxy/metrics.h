/* SPDX-License-Identifier: MIT */
/*
 * Counters (modules/metrics.c).  Each worker increments its own slot
 * without atomics; readers sum the slots, so a read may be a few requests
 * behind but never torn for a single 64-bit counter.
 */
#ifndef REVPROXY_METRICS_H
#define REVPROXY_METRICS_H

#include <stdint.h>
#include "revproxy/reasons.h"

#define RP_METRICS_MAX_WORKERS 256

typedef struct rp_metrics {
    uint64_t requests;
    uint64_t by_class[6];        /* [0] other, [1..5] 1xx..5xx */
    uint64_t by_protocol[3];     /* [0] unknown (failed early), [1] HTTP/1.x, [2] HTTP/2 */
    uint64_t bytes_in;           /* request body bytes received */
    uint64_t bytes_out;          /* response bytes sent */
    uint64_t upstream_errors;    /* attempts that did not end OK */
    uint64_t upstream_attempts;
    uint64_t connections_accepted;
    uint64_t connections_closed;   /* open now: accepted - closed */
    uint64_t h2_calm;              /* HTTP/2 connections closed for abuse */
    uint64_t retries;              /* tries after a request's first */
    uint64_t by_error[RP_ERR_COUNT];   /* requests by reason word (queue_full,
                                          upstream_overloaded, retry_budget_exhausted...) */
} rp_metrics_t;

/* Sum of every worker's counters. */
void rp_metrics_read(rp_metrics_t *out);
/* The core counts client connections as they open and close (modules see
 * only accepts). */
void rp_metrics_conn_opened(unsigned worker);
void rp_metrics_conn_closed(unsigned worker);
/* An HTTP/2 connection was closed for abuse (GOAWAY ENHANCE_YOUR_CALM, or
 * the library found it flooding). */
void rp_metrics_h2_calm(unsigned worker);
/* Client connections open now: the sum over workers of opened - closed. */
uint64_t rp_metrics_active_connections(const rp_metrics_t *m);

#endif
