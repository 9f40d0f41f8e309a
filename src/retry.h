/* SPDX-License-Identifier: MIT */
/*
 * Retries: when one is safe, how long to wait before it, and the budget
 * that keeps them from multiplying load on backends that already fail.
 * Pure logic, apart from the atomics of the budget; the transaction state
 * machine (proxy.c) applies it.
 */
#ifndef RP_RETRY_H
#define RP_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RP_RETRY_STATUS_MAX 16

typedef struct rp_retry_cfg {
    unsigned max_retries;         /* 0: no retries */
    unsigned budget_percent;      /* of the window's requests */
    unsigned min_retries_per_s;   /* floor, so low traffic can retry */
    unsigned backoff_base_ms, backoff_max_ms;
    uint64_t max_body_bytes;      /* a larger body is streamed, not kept */
    uint16_t on_status[RP_RETRY_STATUS_MAX];
    unsigned non_status;
} rp_retry_cfg_t;

/* What is known of an attempt that failed. */
typedef struct rp_retry_case {
    bool idempotent;     /* GET, HEAD, OPTIONS, TRACE, PUT, DELETE */
    bool written;        /* a byte of the request reached the backend */
    bool body_whole;     /* every body byte read so far is kept to send again */
    bool resp_started;   /* a byte of a response reached the client */
} rp_retry_case_t;

/* Whether sending the request again is safe: never once the client got a
 * response byte, nor when the body cannot be sent whole again; otherwise
 * always when the backend got nothing, and for idempotent methods
 * otherwise. */
bool rp_retry_safe(const rp_retry_case_t *c);

/* Whether status is one the configuration retries on. */
bool rp_retry_on_status(const rp_retry_cfg_t *c, int status);

/* The wait before retry n (1 for the first): "full jitter", uniform in
 * [0, min(backoff_max_ms, backoff_base_ms * 2^(n-1))] drawn from rnd. */
unsigned rp_retry_backoff_ms(const rp_retry_cfg_t *c, unsigned n, uint64_t rnd);

/* The retry budget of an upstream: requests and retries over a sliding
 * window of RP_BUDGET_SLOTS one-second slots, shared by all workers. */
#define RP_BUDGET_SLOTS 10

typedef struct rp_budget {
    atomic_ullong second[RP_BUDGET_SLOTS];   /* which second each slot counts */
    atomic_uint   requests[RP_BUDGET_SLOTS];
    atomic_uint   retries[RP_BUDGET_SLOTS];
} rp_budget_t;

/* A request started (now_us: any clock in microseconds). */
void rp_budget_request(rp_budget_t *b, uint64_t now_us);
/* Take a retry from the budget: true when the retries of the window stay
 * within budget_percent of its requests plus min_retries_per_s for each
 * second of the window that saw traffic (this one included). */
bool rp_budget_retry(rp_budget_t *b, const rp_retry_cfg_t *c, uint64_t now_us);

#endif
