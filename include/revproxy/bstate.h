/* SPDX-License-Identifier: MIT */
/*
 * The shared state of each backend identity (upstream name + address; see
 * rp_backend_identity): what every worker's traffic to it adds up to, and
 * its health.  Owned by the core, created with the identity and never
 * freed, so it outlives configuration snapshots.  Workers, the health
 * module and the health thread read and write it with atomics only: the
 * data path takes no lock.
 *
 * Writers: the core keeps active and conns; the health module keeps the
 * rest.  Readers (the balancer) go through rp_bstate_eligible and
 * rp_bstate_weight.
 */
#ifndef REVPROXY_BSTATE_H
#define REVPROXY_BSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rp_health {
    RP_HEALTH_HEALTHY = 0,
    RP_HEALTH_UNHEALTHY,    /* excluded from balancing */
    RP_HEALTH_RECOVERING,   /* back in, its weight ramping up (slow start) */
    RP_HEALTH_COUNT
} rp_health_t;

#include "revproxy/config.h"

typedef struct rp_bstate {
    /* core */
    atomic_uint   active;        /* requests in flight to it, all workers */
    atomic_uint   conns;         /* open upstream connections, all workers */
    atomic_uint   idle;          /* of which idle in pools */
    unsigned      uq;            /* its upstream's queue identity (set once) */
    rp_addr_t     addr;          /* its address (set once) */
    /* health module */
    atomic_uint   health;        /* rp_health_t, as last logged */
    atomic_bool   active_down;   /* active checks say down */
    atomic_ullong ejected_until; /* µs (rp_now_us): passive ejection ends */
    atomic_ullong ramp_from;     /* µs: slow start began (0: none) */
    atomic_uint   ramp_ms;       /* slow start length */
    atomic_uint   fails;         /* consecutive passive failures */
    atomic_uint   ejections;     /* consecutive passive ejections */
    atomic_ullong last_fail;     /* µs: last passive failure */
    atomic_ullong changes[RP_HEALTH_COUNT]; /* times it entered each state */
    /* the last change (or news of one, a new ejection of a backend out
     * already): through rp_bstate_note and rp_bstate_last */
    uint64_t      last_unix_ms;  /* wall clock, 0: none since start */
    char          last_why[128];
    /* the active checks' run, main thread only: whichever checker checks
     * the backend (an address of a host name moves between positions)
     * counts on from it */
    bool          run_down;
    unsigned      run_ok, run_fail;
} rp_bstate_t;

/* The state of backend identity id (created by rp_backend_identity). */
rp_bstate_t *rp_bstate(unsigned id);
/* Make sure the state of identities 0..id exists (with the
 * identity); false when memory ran out. */
bool rp_bstate_ensure(unsigned id);

/* Whether traffic may go to it now (now_us: rp_now_us). */
static inline bool
rp_bstate_eligible(const rp_bstate_t *b, uint64_t now_us)
{
    return !atomic_load_explicit(&b->active_down, memory_order_relaxed)
           && now_us >= atomic_load_explicit(&b->ejected_until, memory_order_relaxed);
}

/* Whether another connection may be opened to it (max: its
 * max_connections, 0 for none). */
static inline bool
rp_bstate_has_room(const rp_bstate_t *b, unsigned max)
{
    return max == 0 || atomic_load(&b->conns) < max;
}

/* Its weight now: weight, scaled down linearly while slow start ramps
 * (never below 1 in 1000 of it, and at least 1 when weight is). */
uint64_t rp_bstate_weight(const rp_bstate_t *b, unsigned weight, uint64_t now_us);

const char *rp_health_name(rp_health_t h);

/* Record why its state changed to to, now (any thread; a lock shared by
 * every backend, taken only on changes and by readers of /stats).  A note
 * that comes late, the state having changed again since, is not kept. */
void rp_bstate_note(rp_bstate_t *b, rp_health_t to, const char *why);
/* The last change: its time (Unix ms, 0 when none) and why (into out). */
uint64_t rp_bstate_last(const rp_bstate_t *b, char *out, size_t cap);

#endif
