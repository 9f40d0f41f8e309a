/* SPDX-License-Identifier: MIT */
/*
 * The slow-client meter (timeouts.client_min_bytes_per_s).
 *
 * A meter runs while revproxy waits on the client alone: for a request
 * body, while the body is wanted and every byte received has been handed
 * on; for a response, while bytes are queued that the socket cannot take.
 * Its count is a running total the owner reads (body bytes received, bytes
 * the client's kernel acknowledged).  Once RP_RATE_WINDOW_MS have passed it
 * is judged: fewer bytes than the minimum over the time elapsed is too
 * slow; else a new window begins.  A window in which nothing moved at all
 * goes on unjudged: a complete stall is timeouts.client_idle_ms's to end,
 * so that one pause shorter than that is never fatal, while a client that
 * trickles bytes to stay clear of the idle timer is.
 *
 * Pure arithmetic on times the owner passes in: the owner arms its own
 * timer with rp_rate_due() and calls rp_rate_judge() when it fires.
 */
#ifndef RP_RATE_H
#define RP_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define RP_RATE_WINDOW_MS 10000u

typedef struct rp_rate {
    uint64_t since_us;   /* window start; 0: not running */
    uint64_t due_us;     /* when it is judged next */
    uint64_t base;       /* the count at its start */
} rp_rate_t;

static inline bool
rp_rate_running(const rp_rate_t *m)
{
    return m->since_us != 0;
}

/* Begin a window now (again, if one runs). */
static inline void
rp_rate_start(rp_rate_t *m, uint64_t now_us, uint64_t count)
{
    m->since_us = now_us != 0 ? now_us : 1;
    m->due_us = m->since_us + (uint64_t)RP_RATE_WINDOW_MS * 1000u;
    m->base = count;
}

static inline void
rp_rate_stop(rp_rate_t *m)
{
    m->since_us = 0;
}

/* Milliseconds until the running window is due (at least 1). */
static inline unsigned
rp_rate_due_ms(const rp_rate_t *m, uint64_t now_us)
{
    if (m->due_us <= now_us + 1000u)
        return 1;
    return (unsigned)((m->due_us - now_us + 999u) / 1000u);
}

/* Judge a running window at now_us against min_per_s: true when the client
 * moved some bytes but fewer than the minimum over the time elapsed.
 * A window not yet due goes on; one in which nothing moved goes on too,
 * due again a window later; one passed begins anew. */
static inline bool
rp_rate_too_slow(rp_rate_t *m, uint64_t now_us, uint64_t count, unsigned min_per_s)
{
    if (m->since_us == 0 || min_per_s == 0)
        return false;
    if (now_us < m->due_us)
        return false;
    uint64_t moved = count >= m->base ? count - m->base : 0;
    if (moved == 0) {
        m->due_us = now_us + (uint64_t)RP_RATE_WINDOW_MS * 1000u;   /* looked at again then */
        return false;
    }
    uint64_t elapsed_ms = (now_us - m->since_us) / 1000u;
    /* moved * 1000 < min_per_s * elapsed_ms, in 64 bits: min_per_s is at
     * most 1e8 and elapsed_ms under 2^36 while a connection lives. */
    if (moved < UINT64_MAX / 1000u && moved * 1000u < (uint64_t)min_per_s * elapsed_ms)
        return true;
    rp_rate_start(m, now_us, count);
    return false;
}

#endif
