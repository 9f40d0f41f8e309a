/* SPDX-License-Identifier: MIT */
/*
 * The figures (modules/metrics.c).  Each worker adds to its own slot with
 * relaxed atomic adds (no lock, no shared cache line on the data path);
 * readers sum the slots, so a read may be a few requests behind but never
 * torn for a single 64-bit counter.  Per-route, per-upstream and
 * per-listener figures are kept by stable identity (rp_route_identity,
 * rp_upstream_identity, rp_listener_identity), so they outlive snapshots;
 * a worker allocates its block of them the first time it records one
 * (once per 64 identities, never per request).  The admin server renders
 * them (src/admin.c).
 */
#ifndef REVPROXY_METRICS_H
#define REVPROXY_METRICS_H

#include <stdint.h>
#include "revproxy/reasons.h"

#define RP_METRICS_MAX_WORKERS 256

/* Why a client connection was closed at accept, before a byte of TLS or
 * HTTP was read. */
#define RP_REJECTS(X) \
    X(MAX_CONNECTIONS, "max_connections") \
    X(MODULE,          "module_refused") \
    X(PER_IP,          "per_ip_limit") \
    X(PP_UNTRUSTED,    "proxy_protocol_untrusted") \
    X(PP_INVALID,      "proxy_protocol_invalid") \
    X(OUT_OF_MEMORY,   "out_of_memory")
#define RP_REJECT_ENUM_(e, w) RP_REJECT_##e,
typedef enum rp_reject { RP_REJECTS(RP_REJECT_ENUM_) RP_REJECT_COUNT } rp_reject_t;
#undef RP_REJECT_ENUM_
const char *rp_reject_name(rp_reject_t r);

/* HTTP/2 error codes a GOAWAY can carry (RFC 9113 7), and one slot for
 * any other. */
#define RP_H2_CODES 15

/* WebSocket close codes counted one by one (RFC 6455 7.4.1); others
 * share the last slot. */
#define RP_WS_CODES 13
extern const unsigned rp_ws_codes[RP_WS_CODES - 1];

typedef enum rp_ws_metric {
    RP_METRIC_WS_OPENED, RP_METRIC_WS_CLOSED,   /* value: the close code */
    RP_METRIC_WS_MSGS_IN, RP_METRIC_WS_MSGS_OUT, RP_METRIC_WS_BYTES_IN, RP_METRIC_WS_BYTES_OUT
} rp_ws_metric_t;

/* Duration histograms: upper bounds in microseconds (the exposition says
 * seconds), and one more bucket above the last. */
#define RP_HIST_BOUNDS 15
extern const uint64_t rp_hist_bounds_us[RP_HIST_BOUNDS];

typedef struct rp_hist {
    uint64_t bucket[RP_HIST_BOUNDS + 1];   /* not cumulative: [i] counts durations
                                              in (bound[i-1], bound[i]] */
    uint64_t sum_us;
} rp_hist_t;

typedef struct rp_metrics {
    uint64_t requests;
    uint64_t by_class[6];        /* [0] other, [1..5] 1xx..5xx */
    uint64_t by_protocol[3];     /* [0] unknown (failed early), [1] HTTP/1.x, [2] HTTP/2 */
    uint64_t bytes_in;           /* request body bytes received */
    uint64_t bytes_out;          /* response bytes sent */
    uint64_t upstream_errors;    /* attempts that did not end OK */
    uint64_t upstream_attempts;
    uint64_t connections_closed;   /* read before accepted (so never above it):
                                      open now = accepted - closed */
    uint64_t connections_accepted;
    uint64_t h2_calm;              /* HTTP/2 connections closed for abuse */
    uint64_t retries;              /* tries after a request's first */
    uint64_t by_error[RP_ERR_COUNT];   /* requests by reason word */
    uint64_t rejected[RP_REJECT_COUNT];
    uint64_t h2_goaways[RP_H2_CODES];  /* GOAWAY frames sent, by error code */
    uint64_t unrouted_by_class[6];     /* requests that matched no route (or
                                          failed before routing) */
    uint64_t ws_closed, ws_opened;     /* tunnels (closed first: open = opened - closed) */
    uint64_t ws_msgs[2], ws_bytes[2];  /* [0] client to backend, [1] backend to client */
    uint64_t ws_codes[RP_WS_CODES];    /* tunnels by close code (rp_ws_codes, other) */
    rp_hist_t unrouted_duration;
} rp_metrics_t;

/* A route's figures (by its identity). */
typedef struct rp_route_metrics {
    uint64_t  by_class[6];
    rp_hist_t duration;          /* request head to last response byte */
} rp_route_metrics_t;

/* An upstream's figures (by its identity). */
typedef struct rp_upstream_metrics {
    uint64_t  requests;          /* requests tried at one of its backends at least once */
    uint64_t  attempts;          /* tries, each reported once */
    uint64_t  by_result[8];      /* attempts by rp_attempt_result_t */
    uint64_t  retries;           /* tries after a request's first */
    uint64_t  budget_exhausted;  /* retries the budget refused */
    rp_hist_t duration;          /* per attempt: connect to end of response */
} rp_upstream_metrics_t;

/* A listener's client connections (by its identity). */
typedef struct rp_listener_metrics {
    uint64_t closed, accepted;   /* closed first: summed in this order */
} rp_listener_metrics_t;

/* Connections open now (accepted - closed, never below 0). */
static inline uint64_t
rp_listener_open(const rp_listener_metrics_t *l)
{
    return l->accepted > l->closed ? l->accepted - l->closed : 0;
}

/* Sums of every worker's counters. */
void rp_metrics_read(rp_metrics_t *out);
void rp_metrics_route(unsigned ident, rp_route_metrics_t *out);
void rp_metrics_upstream(unsigned ident, rp_upstream_metrics_t *out);
void rp_metrics_listener(unsigned ident, rp_listener_metrics_t *out);

/* The core counts client connections as they open and close on a
 * listener (modules see only accepts), and the ones it refuses. */
void rp_metrics_conn_opened(unsigned worker, unsigned listener);
void rp_metrics_conn_closed(unsigned worker, unsigned listener);
void rp_metrics_rejected(unsigned worker, rp_reject_t why);
/* An HTTP/2 connection was closed for abuse (GOAWAY ENHANCE_YOUR_CALM, or
 * the library found it flooding). */
void rp_metrics_h2_calm(unsigned worker);
/* A GOAWAY with error code code went out. */
void rp_metrics_h2_goaway(unsigned worker, uint32_t code);
/* WebSocket tunnels: opened, closed (value: the close code), and what one
 * carried, added when it ends. */
void rp_metrics_ws(unsigned worker, rp_ws_metric_t what, uint64_t value);
/* Client connections open now: the sum over workers of opened - closed. */
uint64_t rp_metrics_active_connections(const rp_metrics_t *m);

/* The bucket of a duration. */
unsigned rp_hist_bucket(uint64_t us);

#endif
