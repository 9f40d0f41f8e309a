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
#include "revproxy/log.h"
#include "pool.h"
#include "queue.h"
#include "worker.h"
#include "util.h"

typedef struct uq_worker {
    atomic_uint waiting;   /* listed on that worker */
    atomic_uint wake;      /* wake tokens sent to it, not yet taken */
    atomic_bool trim;      /* it should close its idle connections */
    atomic_bool flagged;   /* the identity is in its mailbox */
} uq_worker_t;

typedef struct rp_uq {
    atomic_uint queued;    /* places taken, all workers */
    atomic_uint next;      /* where the search for another worker starts */
    uq_worker_t per[RP_MAX_WORKERS];
} rp_uq_t;

#define UQ_CHUNK 16u
#define UQ_CHUNKS 4096u

static _Atomic(rp_uq_t *) chunks[UQ_CHUNKS];

void
rp_uq_ensure(unsigned uq)
{
    unsigned c = uq / UQ_CHUNK;
    if (c >= UQ_CHUNKS)
        rp_die_oom();   /* identities are bounded far below this */
    for (unsigned i = 0; i <= c; i++) {
        if (atomic_load_explicit(&chunks[i], memory_order_acquire) != NULL)
            continue;
        rp_uq_t *q = rp_xcalloc(UQ_CHUNK, sizeof *q);
        for (unsigned k = 0; k < UQ_CHUNK; k++) {
            atomic_init(&q[k].queued, 0);
            atomic_init(&q[k].next, 0);
            for (unsigned w = 0; w < RP_MAX_WORKERS; w++) {
                atomic_init(&q[k].per[w].waiting, 0);
                atomic_init(&q[k].per[w].wake, 0);
                atomic_init(&q[k].per[w].trim, false);
                atomic_init(&q[k].per[w].flagged, false);
            }
        }
        atomic_store_explicit(&chunks[i], q, memory_order_release);
    }
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
        w->qlists = rp_xrealloc(w->qlists, n * sizeof *w->qlists);
        for (unsigned i = w->nqlists; i < n; i++)
            TAILQ_INIT(&w->qlists[i].waiters);
        w->nqlists = n;
    }
    return &w->qlists[uq];
}

bool
rp_queue_has_local(const rp_worker_t *w, unsigned uq)
{
    return uq < w->nqlists && !TAILQ_EMPTY(&w->qlists[uq].waiters);
}

bool
rp_queue_enter(rp_worker_t *w, rp_qwait_t *q, unsigned uq, unsigned size)
{
    rp_uq_t *u = uq_get(uq);
    unsigned n = atomic_load(&u->queued);
    do {
        if (n >= size)
            return false;
    } while (!atomic_compare_exchange_weak(&u->queued, &n, n + 1));
    q->uq = uq;
    q->counted = true;
    TAILQ_INSERT_TAIL(&qlist(w, uq)->waiters, q, link);
    q->listed = true;
    atomic_fetch_add(&u->per[w->id].waiting, 1);
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
}

static void
unlist(rp_worker_t *w, rp_qwait_t *q)
{
    TAILQ_REMOVE(&qlist(w, q->uq)->waiters, q, link);
    q->listed = false;
    atomic_fetch_sub(&uq_get(q->uq)->per[w->id].waiting, 1);
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
        y->mb_cap = y->mb_cap ? y->mb_cap * 2 : 8;
        y->mb = rp_xrealloc(y->mb, y->mb_cap * sizeof *y->mb);
    }
    y->mb[y->mb_n++] = uq;
    pthread_mutex_unlock(&y->mb_lock);
    uint64_t one = 1;
    while (write(y->mb_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void
rp_queue_capacity(rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    if (atomic_load(&u->queued) == 0)
        return;
    unsigned n = rp_worker_count();
    unsigned to = w->id;
    if (atomic_load(&u->per[w->id].waiting) == 0) {
        /* Another worker's turn: start where the last search ended, so
         * wakes go round the workers that wait. */
        unsigned start = atomic_fetch_add(&u->next, 1);
        to = n;
        for (unsigned i = 0; i < n; i++) {
            unsigned k = (start + i) % n;
            if (k != w->id && atomic_load(&u->per[k].waiting) > 0) {
                to = k;
                break;
            }
        }
        if (to == n)
            return;   /* the waiters left, or found capacity themselves */
    }
    atomic_fetch_add(&u->per[to].wake, 1);
    post(to, uq);
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

/* The mailbox: wake as many local waiters as tokens came, oldest first;
 * tokens nobody here can use any more go on to another worker. */
static void
handle(rp_worker_t *w, unsigned uq)
{
    rp_uq_t *u = uq_get(uq);
    atomic_store(&u->per[w->id].flagged, false);
    if (atomic_exchange(&u->per[w->id].trim, false))
        rp_pool_trim(w, uq);
    unsigned tokens = atomic_exchange(&u->per[w->id].wake, 0);
    for (; tokens > 0; tokens--) {
        rp_qwait_t *q = uq < w->nqlists ? TAILQ_FIRST(&w->qlists[uq].waiters) : NULL;
        if (q == NULL)
            break;
        unlist(w, q);
        q->wake(q);   /* may relist it, free it, or park others */
    }
    for (; tokens > 0; tokens--)
        rp_queue_capacity(w, uq);
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
    w->mb = NULL;
    w->mb_n = w->mb_cap = 0;
    pthread_mutex_unlock(&w->mb_lock);
    for (size_t i = 0; i < n; i++)
        handle(w, list[i]);
    free(list);
}

int
rp_queue_worker_init(rp_worker_t *w)
{
    w->mb_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->mb_fd < 0)
        return -1;
    w->mb_ev = event_new(w->base, w->mb_fd, EV_READ | EV_PERSIST, mailbox_cb, w);
    if (w->mb_ev == NULL || event_add(w->mb_ev, NULL) < 0) {
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
