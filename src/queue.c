/* SPDX-License-Identifier: MIT */
/*
 * Upstream queues (see queue.h).
 */
#include "config.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <event2/event.h>
#include "revproxy/bstate.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/upstream.h"
#include "pool.h"
#include "queue.h"
#include "worker.h"
#include "util.h"
#include "io.h"

typedef struct uq_worker {
    atomic_uint   waiting;   /* listed on that worker */
    atomic_uint   wake;      /* wake tokens sent to it, not yet taken */
    atomic_bool   trim;      /* it should close its idle connections */
    atomic_bool   flagged;   /* the identity is in its mailbox */
    atomic_ullong oldest;    /* when its oldest waiter parked (µs), 0: none */
} uq_worker_t;

typedef struct rp_uq {
    atomic_uint queued;    /* places taken, all workers */
    atomic_uint active;    /* requests inside the circuit, all workers */
    rp_budget_t budget;    /* retries */
    uq_worker_t per[RP_MAX_WORKERS];
} rp_uq_t;

#define SWEEP_MS 100

#define UQ_CHUNK 16u
#define UQ_CHUNKS 4096u

static _Atomic(rp_uq_t *) chunks[UQ_CHUNKS];

bool
rp_uq_ensure(unsigned uq)
{
    unsigned c = uq / UQ_CHUNK;
    if (c >= UQ_CHUNKS)
        return false;   /* identities are bounded far below this */
    for (unsigned i = 0; i <= c; i++) {
        if (atomic_load_explicit(&chunks[i], memory_order_acquire) != NULL)
            continue;
        rp_uq_t *q = calloc(UQ_CHUNK, sizeof *q);
        if (q == NULL)
            return false;
        for (unsigned k = 0; k < UQ_CHUNK; k++) {
            atomic_init(&q[k].queued, 0);
            atomic_init(&q[k].active, 0);
            for (unsigned w = 0; w < RP_MAX_WORKERS; w++) {
                atomic_init(&q[k].per[w].waiting, 0);
                atomic_init(&q[k].per[w].wake, 0);
                atomic_init(&q[k].per[w].trim, false);
                atomic_init(&q[k].per[w].flagged, false);
                atomic_init(&q[k].per[w].oldest, 0);
            }
        }
        atomic_store_explicit(&chunks[i], q, memory_order_release);
    }
    return true;
}

static rp_uq_t *
uq_get(unsigned uq)
{
    rp_uq_t *c = atomic_load_explicit(&chunks[uq / UQ_CHUNK], memory_order_acquire);
    return &c[uq % UQ_CHUNK];
}

unsigned
rp_queue_len(unsigned uq)
{
    return atomic_load(&uq_get(uq)->queued);
}

static rp_qlist_t *
qlist(rp_worker_t *w, unsigned uq)
{
    if (uq >= w->nqlists) {
        unsigned n = rp_upstream_identity_count();
        if (n <= uq)
            n = uq + 1;
        rp_qlist_t *more = realloc(w->qlists, n * sizeof *w->qlists);
        if (more == NULL)
            return NULL;   /* out of memory: only ever for a new identity */
        w->qlists = more;
        /* The heads moved: the first waiter of each list points back at
         * its head, and an empty head at itself. */
        for (unsigned i = 0; i < w->nqlists; i++) {
            rp_qlist_t *l = &w->qlists[i];
            if (TAILQ_EMPTY(&l->waiters))
                TAILQ_INIT(&l->waiters);
            else
                TAILQ_FIRST(&l->waiters)->link.tqe_prev = &TAILQ_FIRST(&l->waiters);
        }
        for (unsigned i = w->nqlists; i < n; i++)
            TAILQ_INIT(&w->qlists[i].waiters);
        w->nqlists = n;
    }
    return &w->qlists[uq];
}

static bool
has_local(const rp_worker_t *w, unsigned uq)
{
    return uq < w->nqlists && !TAILQ_EMPTY(&w->qlists[uq].waiters);
}

/* Publish when w's oldest waiter for uq parked, after its list changed. */
static void
publish_oldest(rp_worker_t *w, unsigned uq)
{
    rp_qwait_t *h = TAILQ_FIRST(&qlist(w, uq)->waiters);
    atomic_store(&uq_get(uq)->per[w->id].oldest, h != NULL ? h->since : 0);
}

static void
sweep_arm(rp_worker_t *w)
{
    if (w->q_sweep != NULL && !evtimer_pending(w->q_sweep, NULL)) {
        struct timeval tv = { 0, SWEEP_MS * 1000 };
        rp_event_add(w->q_sweep, &tv);
    }
}

bool
rp_queue_enter(rp_worker_t *w, rp_qwait_t *q, const rp_upstream_t *u, unsigned size)
{
    rp_uq_t *uqs = uq_get(u->uq);
    rp_qlist_t *list = qlist(w, u->uq);
    if (list == NULL)
        return false;   /* out of memory: refused as a full queue */
    unsigned n = atomic_load(&uqs->queued);
    do {
        if (n >= size)
            return false;
    } while (!atomic_compare_exchange_weak(&uqs->queued, &n, n + 1));
    q->uq = u->uq;
    q->u = u;
    q->since = rp_now_us();
    if (q->since == 0)
        q->since = 1;
    q->counted = true;
    TAILQ_INSERT_TAIL(&list->waiters, q, link);
    q->listed = true;
    atomic_fetch_add(&uqs->per[w->id].waiting, 1);
    publish_oldest(w, u->uq);
    sweep_arm(w);
    return true;
}

void
rp_queue_relist(rp_worker_t *w, rp_qwait_t *q)
{
    if (q->listed)
        return;
    TAILQ_INSERT_HEAD(&qlist(w, q->uq)->waiters, q, link);
    q->listed = true;
    atomic_fetch_add(&uq_get(q->uq)->per[w->id].waiting, 1);
    publish_oldest(w, q->uq);
    sweep_arm(w);
}

static void
unlist(rp_worker_t *w, rp_qwait_t *q)
{
    TAILQ_REMOVE(&qlist(w, q->uq)->waiters, q, link);
    q->listed = false;
    atomic_fetch_sub(&uq_get(q->uq)->per[w->id].waiting, 1);
    publish_oldest(w, q->uq);
}

void
rp_queue_leave(rp_worker_t *w, rp_qwait_t *q)
{
    if (q->listed)
        unlist(w, q);
    if (q->counted) {
        q->counted = false;
        atomic_fetch_sub(&uq_get(q->uq)->queued, 1);
    }
}

/* Put uq in worker to's mailbox (once) and wake its loop. */
static void
post(unsigned to, unsigned uq)
{
    rp_worker_t *y = rp_worker_get(to);
    if (y == NULL)
        return;
    if (atomic_exchange(&uq_get(uq)->per[to].flagged, true))
        return;   /* already there: it will read the counts */
    pthread_mutex_lock(&y->mb_lock);
    if (y->mb_n == y->mb_cap) {
        size_t cap = y->mb_cap ? y->mb_cap * 2 : 8;
        unsigned *mb = realloc(y->mb, cap * sizeof *mb);
        if (mb != NULL) {
            y->mb = mb;
            y->mb_cap = cap;
        }
    }
    if (y->mb_n < y->mb_cap)
        y->mb[y->mb_n++] = uq;
    else
        y->mb_scan = true;   /* the flag stays set: found by a scan */
    pthread_mutex_unlock(&y->mb_lock);
    uint64_t one = 1;
    while (write(y->mb_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* The worker whose oldest waiter for uq parked first (w itself on a
 * tie), or -1 when nobody is listed. */
static int
oldest_worker(const rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    unsigned n = rp_worker_count();
    int best = -1;
    uint64_t best_since = 0;
    for (unsigned k = 0; k < n; k++) {
        uint64_t since = atomic_load(&u->per[k].oldest);
        if (since == 0 || atomic_load(&u->per[k].waiting) == 0)
            continue;
        if (best < 0 || since < best_since || (since == best_since && k == w->id)) {
            best = (int)k;
            best_since = since;
        }
    }
    return best;
}

void
rp_queue_capacity(rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    if (atomic_load(&u->queued) == 0)
        return;
    int to = oldest_worker(w, uq);
    if (to < 0)
        return;   /* the waiters left, or are being woken right now */
    atomic_fetch_add(&u->per[to].wake, 1);
    post((unsigned)to, uq);
}

bool
rp_queue_oldest_here(const rp_worker_t *w, unsigned uq)
{
    return oldest_worker(w, uq) == (int)w->id;
}

void
rp_queue_trim_others(rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    unsigned n = rp_worker_count();
    for (unsigned k = 0; k < n; k++) {
        if (k == w->id)
            continue;
        atomic_store(&u->per[k].trim, true);
        post(k, uq);
    }
}

/* Wake up to n of w's waiters for uq, oldest first.  A woken waiter
 * that parks again goes back to the head of the list, so the count, not
 * the list, bounds the loop. */
static unsigned
wake_local(rp_worker_t *w, unsigned uq, unsigned n)
{
    unsigned done = 0;
    for (; done < n; done++) {
        rp_qwait_t *q = uq < w->nqlists ? TAILQ_FIRST(&w->qlists[uq].waiters) : NULL;
        if (q == NULL)
            break;
        unlist(w, q);
        q->wake(q);   /* may relist it, free it, or park others */
    }
    return done;
}

/* The mailbox: wake as many local waiters as tokens came, oldest first.
 * A token nobody here can use any more goes on to the oldest waiter
 * elsewhere, with its place: a connection this worker kept idle for a
 * waiter is closed first. */
static void
handle(rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    atomic_store(&u->per[w->id].flagged, false);
    bool trim = atomic_exchange(&u->per[w->id].trim, false);
    unsigned tokens = atomic_exchange(&u->per[w->id].wake, 0);
    /* Waiters here first: a connection kept idle for one is theirs, and
     * only what they leave is trimmed. */
    tokens -= wake_local(w, uq, tokens);
    if (trim)
        rp_pool_trim(w, uq);
    for (; tokens > 0 && atomic_load(&u->queued) > 0; tokens--) {
        if (!rp_pool_trim_one(w, uq))   /* its close passes the token on */
            rp_queue_capacity(w, uq);
    }
}

rp_budget_t *
rp_queue_budget(unsigned uq)
{
    return &uq_get(uq)->budget;
}

bool
rp_circuit_enter(const rp_upstream_t *u)
{
    if (u->max_active_requests == 0)
        return true;
    rp_uq_t *q = uq_get(u->uq);
    unsigned n = atomic_load(&q->active);
    do {
        if (n >= u->max_active_requests)
            return false;
    } while (!atomic_compare_exchange_weak(&q->active, &n, n + 1));
    return true;
}

void
rp_circuit_leave(rp_worker_t *w, const rp_upstream_t *u)
{
    atomic_fetch_sub(&uq_get(u->uq)->active, 1);
    rp_queue_capacity(w, u->uq);
}

bool
rp_queue_room(rp_worker_t *w, const rp_upstream_t *u)
{
    if (u->max_active_requests > 0
        && atomic_load(&uq_get(u->uq)->active) >= u->max_active_requests)
        return false;
    uint64_t now = rp_now_us();
    for (size_t k = 0; k < u->npos; k++) {
        rp_pos_t p;
        if (!rp_upstream_pos(u, k, &p))
            continue;
        const rp_bstate_t *bs = rp_bstate(p.id);
        if (rp_bstate_eligible(bs, now)
            && (rp_bstate_has_room(bs, p.be->max_connections) || rp_pool_idle(w, p.id) > 0))
            return true;
    }
    return false;
}

bool
rp_queue_any_eligible(const rp_upstream_t *u)
{
    uint64_t now = rp_now_us();
    for (size_t k = 0; k < u->npos; k++) {
        rp_pos_t p;
        if (rp_upstream_pos(u, k, &p) && rp_bstate_eligible(rp_bstate(p.id), now))
            return true;
    }
    return false;
}

unsigned
rp_queue_idle_elsewhere(rp_worker_t *w, const rp_upstream_t *u)
{
    unsigned n = 0;
    uint64_t now = rp_now_us();
    for (size_t k = 0; k < u->npos; k++) {
        /* Only a place a waiter could use: a capped backend in service. */
        rp_pos_t p;
        if (!rp_upstream_pos(u, k, &p) || p.be->max_connections == 0
            || !rp_bstate_eligible(rp_bstate(p.id), now))
            continue;
        unsigned all = atomic_load_explicit(&rp_bstate(p.id)->idle, memory_order_relaxed);
        unsigned here = rp_pool_idle(w, p.id);
        if (all > here)
            n += all - here;
    }
    return n;
}

/* Every SWEEP_MS while w has waiters (queue.h). */
static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t *w = arg;
    bool any = false;
    (void)fd;
    (void)what;
    for (unsigned uq = 0; uq < w->nqlists; uq++) {
        rp_qwait_t *h = TAILQ_FIRST(&w->qlists[uq].waiters);
        if (h == NULL)
            continue;
        const rp_upstream_t *u = h->u;
        if (!rp_queue_any_eligible(u)) {
            wake_local(w, uq, atomic_load(&uq_get(uq)->per[w->id].waiting));
        } else if (rp_queue_room(w, u)) {
            rp_queue_capacity(w, uq);
        } else if (rp_queue_idle_elsewhere(w, u) > 0) {
            rp_queue_trim_others(w, uq);
        }
        any = any || has_local(w, uq);
    }
    if (any)
        sweep_arm(w);
}

static void
mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t *w = arg;
    uint64_t v;
    (void)what;
    if (read((int)fd, &v, sizeof v) < 0)
        return;
    pthread_mutex_lock(&w->mb_lock);
    unsigned *list = w->mb;
    size_t n = w->mb_n;
    bool scan = w->mb_scan;
    w->mb = NULL;
    w->mb_n = w->mb_cap = 0;
    w->mb_scan = false;
    pthread_mutex_unlock(&w->mb_lock);
    for (size_t i = 0; i < n; i++)
        handle(w, list[i]);
    free(list);
    /* Without memory for the list, a poster left the identity flagged
     * and said so: every flagged identity is handled (a flag cleared
     * above was handled already). */
    for (unsigned c = 0; scan && c < UQ_CHUNKS; c++) {
        rp_uq_t *q = atomic_load_explicit(&chunks[c], memory_order_acquire);
        if (q == NULL)
            break;
        for (unsigned k = 0; k < UQ_CHUNK; k++)
            if (atomic_load(&q[k].per[w->id].flagged))
                handle(w, c * UQ_CHUNK + k);
    }
}

int
rp_queue_worker_init(rp_worker_t *w)
{
    w->mb_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->mb_fd < 0)
        return -1;
    w->mb_ev = event_new(w->base, w->mb_fd, EV_READ | EV_PERSIST, mailbox_cb, w);
    w->q_sweep = evtimer_new(w->base, sweep_cb, w);
    if (w->mb_ev == NULL || w->q_sweep == NULL || event_add(w->mb_ev, NULL) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void
rp_queue_worker_free(rp_worker_t *w)
{
    if (w->mb_ev != NULL)
        event_free(w->mb_ev);
    w->mb_ev = NULL;
    if (w->q_sweep != NULL)
        event_free(w->q_sweep);
    w->q_sweep = NULL;
    if (w->mb_fd >= 0)
        close(w->mb_fd);
    w->mb_fd = -1;
    free(w->mb);
    w->mb = NULL;
    w->mb_n = w->mb_cap = 0;
    free(w->qlists);
    w->qlists = NULL;
    w->nqlists = 0;
    pthread_mutex_destroy(&w->mb_lock);
}
