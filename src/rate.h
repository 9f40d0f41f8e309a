/* SPDX-License-Identifier: MIT */
/*
 * The slow-client meter (timeouts.client_min_bytes_per_s).
 *
 * A meter runs only while revproxy waits on the client alone: for a
 * request body, while the body is wanted and every byte received has been
 * handed on; for a response, while bytes are queued that the socket cannot
 * take.  The owner pauses it when the wait ends (the backend is the slower
 * one for a while) and resumes it when it starts again: only the time
 * spent waiting on the client, and what the client moved meanwhile, count.
 * Its count is a running total the owner reads (body bytes on the wire,
 * bytes the client's kernel acknowledged).
 *
 * Once RP_RATE_WINDOW_MS of waiting have passed the window is judged:
 * fewer bytes than the minimum over that time is too slow; else a new
 * window begins.  A window in which nothing moved at all is not judged but
 * begins anew: a complete stall is timeouts.client_idle_ms's to end, so a
 * pause is never fatal by itself, while a client that trickles bytes to
 * stay clear of the idle timer is caught by the window they fall in.
 *
 * Pure arithmetic on times the owner passes in: the owner arms its own
 * timer with rp_rate_due_ms() and calls rp_rate_too_slow() when it fires.
 */
#ifndef RP_RATE_H
#define RP_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define RP_RATE_WINDOW_MS 10000u
#define RP_RATE_WINDOW_US ((uint64_t)RP_RATE_WINDOW_MS * 1000u)

typedef struct rp_rate {
    uint64_t since_us;   /* the current span of waiting began; 0: not waiting */
    uint64_t base;       /* the count then */
    uint64_t acc_us;     /* waiting time of the window's earlier spans */
    uint64_t acc_moved;  /* and what moved in them */
} rp_rate_t;

static inline bool
rp_rate_running(const rp_rate_t *m)
{
    return m->since_us != 0;
}

/* Begin a fresh window now (forgetting any earlier span). */
static inline void
rp_rate_start(rp_rate_t *m, uint64_t now_us, uint64_t count)
{
    m->since_us = now_us != 0 ? now_us : 1;
    m->base = count;
    m->acc_us = 0;
    m->acc_moved = 0;
}

/* The wait on the client ended for now: its span counts, time stops. */
static inline void
rp_rate_pause(rp_rate_t *m, uint64_t now_us, uint64_t count)
{
    if (m->since_us == 0)
        return;
    m->acc_us += now_us > m->since_us ? now_us - m->since_us : 0;
    m->acc_moved += count >= m->base ? count - m->base : 0;
    m->since_us = 0;
}

/* Waiting on the client again: a new span of the same window. */
static inline void
rp_rate_resume(rp_rate_t *m, uint64_t now_us, uint64_t count)
{
    if (m->since_us != 0)
        return;
    m->since_us = now_us != 0 ? now_us : 1;
    m->base = count;
}

/* Forget it all (the exchange ended). */
static inline void
rp_rate_stop(rp_rate_t *m)
{
    m->since_us = 0;
    m->acc_us = 0;
    m->acc_moved = 0;
}

static inline uint64_t
rp_rate_waited_us(const rp_rate_t *m, uint64_t now_us)
{
    return m->acc_us + (m->since_us != 0 && now_us > m->since_us ? now_us - m->since_us : 0);
}

/* Milliseconds until the running window is due (at least 1). */
static inline unsigned
rp_rate_due_ms(const rp_rate_t *m, uint64_t now_us)
{
    uint64_t waited = rp_rate_waited_us(m, now_us);
    if (waited + 1000u >= RP_RATE_WINDOW_US)
        return 1;
    return (unsigned)((RP_RATE_WINDOW_US - waited + 999u) / 1000u);
}

/* Judge a running window at now_us against min_per_s: true when the client
 * moved some bytes but fewer than the minimum over the time waited.  A
 * window not yet due goes on; one passed, or in which nothing moved,
 * begins anew. */
static inline bool
rp_rate_too_slow(rp_rate_t *m, uint64_t now_us, uint64_t count, unsigned min_per_s)
{
    if (m->since_us == 0 || min_per_s == 0)
        return false;
    uint64_t waited = rp_rate_waited_us(m, now_us);
    if (waited < RP_RATE_WINDOW_US)
        return false;
    uint64_t moved = m->acc_moved + (count >= m->base ? count - m->base : 0);
    /* moved * 1000 < min_per_s * waited_ms, in 64 bits: min_per_s is at
     * most 1e8 and the waited time a window's, give or take a timer's
     * lateness. */
    uint64_t waited_ms = waited / 1000u;
    if (moved > 0 && moved < UINT64_MAX / 1000u && waited_ms < (1ull << 36)
        && moved * 1000u < (uint64_t)min_per_s * waited_ms)
        return true;
    rp_rate_start(m, now_us, count);
    return false;
}

#endif
