/* SPDX-License-Identifier: MIT */
/*
 * Upstream queues: requests waiting for a backend connection when every
 * eligible backend of their upstream is at its max_connections.
 *
 * The queue of an upstream identity (its name; see rp_upstream_identity)
 * is one bounded count shared by all workers (queued: places taken, never
 * more than the upstream's queue.size) and, on each worker, a FIFO list of
 * that worker's waiters, which only that worker touches.  Like the backend
 * state table, it is core-owned and never freed.
 *
 * Capacity that frees (a connection to one of the upstream's backends
 * closes, or finishes a request while others wait) wakes one waiter, not
 * all: the oldest, whichever worker it waits on (each worker publishes
 * when its oldest waiter parked).  The token goes through that worker's
 * mailbox (a locked list of upstream identities needing attention, and an
 * eventfd that wakes its event loop), also when it is the worker where the
 * place freed: wakes always run from the event loop, never inside the code
 * that freed the capacity.
 *
 * While an upstream has waiters, connections to its backends are not kept
 * idle in pools (an idle connection on one worker would hold a place a
 * waiter on another worker needs): a finished connection stays for the
 * oldest waiter when that one waits on the same worker, and is closed
 * otherwise; a worker parking a request while places are held idle on
 * other workers asks them to close those connections ("trim"), and a
 * token that finds no waiter left on its worker first closes an idle
 * connection held there for one.
 *
 * An upstream with circuit.max_active_requests uses the same queue for
 * requests beyond that many: a request leaving the circuit frees a place
 * as a closing connection does.
 *
 * Eligibility changes (a backend taken out or brought back by health
 * checks) free no connection: while a worker has waiters it sweeps them
 * every 100 ms, waking one when a backend has room and all of them when
 * no backend of the upstream is eligible any more (they get 503
 * no_healthy_backend).  The sweep also bounds any wake lost to a race.
 *
 * Lost wakes: a worker parking a request takes its place first and then
 * looks for capacity again; a worker freeing capacity gives it up first
 * and then looks for places taken.  With sequentially consistent atomics
 * one of the two always sees the other.
 */
#ifndef RP_QUEUE_H
#define RP_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include "revproxy/types.h"
#include "retry.h"

/* Workers a snapshot may have (config "workers" is at most this). */
#define RP_MAX_WORKERS 256

typedef struct rp_qwait rp_qwait_t;
struct rp_qwait {
    TAILQ_ENTRY(rp_qwait) link;
    unsigned uq;        /* upstream identity */
    const rp_upstream_t *u;   /* borrowed: the waiter's snapshot holds it */
    uint64_t since;     /* µs (rp_now_us): when it parked */
    bool     listed;    /* in its worker's list */
    bool     counted;   /* holds a place in the upstream's queue */
    /* Called from the worker's event loop after the waiter was taken off
     * its list (still counted): try again. */
    void   (*wake)(rp_qwait_t *q);
};

typedef struct rp_qlist {
    TAILQ_HEAD(, rp_qwait) waiters;   /* oldest first */
} rp_qlist_t;

/* Make sure the queue of upstream identity 0..uq exists (with
 * the identity); false when memory ran out. */
bool rp_uq_ensure(unsigned uq);

/* Places taken in the queue of uq, all workers. */
unsigned rp_queue_len(unsigned uq);

/* Take a place in u's queue (at most size) and join this worker's list
 * at its tail; false when the queue is full (nothing taken). */
bool rp_queue_enter(rp_worker_t *w, rp_qwait_t *q, const rp_upstream_t *u, unsigned size);
/* Back on the list after a wake that found no capacity, at its head: it
 * keeps its turn (and its place). */
void rp_queue_relist(rp_worker_t *w, rp_qwait_t *q);
/* Off the list and give the place back (no-op when neither). */
void rp_queue_leave(rp_worker_t *w, rp_qwait_t *q);

/* Capacity for uq freed: wake its oldest waiter, on any worker.  Cheap
 * when nobody waits. */
void rp_queue_capacity(rp_worker_t *w, unsigned uq);
/* Whether uq's oldest waiter is listed on w. */
bool rp_queue_oldest_here(const rp_worker_t *w, unsigned uq);
/* Ask every other worker to close its idle connections to uq's backends. */
void rp_queue_trim_others(rp_worker_t *w, unsigned uq);

/* By the balancer's rule (modules/balancer.c): whether a backend of u
 * could take a request on w now (eligible, and below its max_connections
 * or with an idle connection on w); whether any is eligible at all; and
 * how many idle connections to u's backends other workers hold. */
bool rp_queue_room(rp_worker_t *w, const rp_upstream_t *u);

/* The circuit of u (circuit.max_active_requests): take a place among its
 * requests at once, false when none is left (always true without a
 * circuit); give it back (a waiter is woken, as for a connection place). */
bool rp_circuit_enter(const rp_upstream_t *u);
/* The retry budget of upstream identity uq (retry.h). */
rp_budget_t *rp_queue_budget(unsigned uq);
void rp_circuit_leave(rp_worker_t *w, const rp_upstream_t *u);
bool rp_queue_any_eligible(const rp_upstream_t *u);
unsigned rp_queue_idle_elsewhere(rp_worker_t *w, const rp_upstream_t *u);

/* Worker side (worker.c): set up and tear down the mailbox, and handle it. */
int rp_queue_worker_init(rp_worker_t *w);
void rp_queue_worker_free(rp_worker_t *w);

#endif
