/* SPDX-License-Identifier: MIT */
/*
 * Upstream connections and keep-alive pools (see pool.h).  This file owns
 * connections while they are idle; while a transaction uses one, the
 * transaction sets the callbacks and decides whether it comes back here.
 */
#include "config.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include "revproxy/bstate.h"
#include "revproxy/log.h"
#include "conn.h"
#include "pool.h"
#include "queue.h"
#include "worker.h"
#include "util.h"

static rp_pool_t *
pool_for(rp_worker_t *w, unsigned id)
{
    if (id >= w->npools) {
        unsigned n = rp_backend_identity_count();
        if (n <= id)
            n = id + 1;
        rp_pool_t *more = realloc(w->pools, n * sizeof *w->pools);
        if (more == NULL)
            return NULL;   /* out of memory: only ever for a new identity */
        w->pools = more;
        /* The heads moved: the first connection of each list points back
         * at its head, and an empty head at itself. */
        for (unsigned i = 0; i < w->npools; i++) {
            struct rp_upconn_tailq *h = &w->pools[i].idle;
            if (TAILQ_EMPTY(h))
                TAILQ_INIT(h);
            else
                TAILQ_FIRST(h)->link.tqe_prev = &TAILQ_FIRST(h);
        }
        for (unsigned i = w->npools; i < n; i++) {
            TAILQ_INIT(&w->pools[i].idle);
            w->pools[i].nidle = 0;
        }
        w->npools = n;
    }
    return &w->pools[id];
}

void
rp_upconn_close(rp_upconn_t *up)
{
    if (up == NULL)
        return;
    rp_bstate_t *bs = rp_bstate(up->backend_id);
    if (up->state == RP_UP_IDLE) {
        rp_pool_t *p = pool_for(up->w, up->backend_id);
        TAILQ_REMOVE(&p->idle, up, link);
        p->nidle--;
        atomic_fetch_sub_explicit(&bs->idle, 1, memory_order_relaxed);
    }
    rp_worker_t *w = up->w;
    rp_reader_release(&up->rd);
    /* The socket closes now, not when libevent finalizes the bufferevent
     * on a later loop turn: its max_connections place is given back just
     * below, and another worker may take it at once. */
    evutil_socket_t fd = bufferevent_getfd(up->bev);
    bufferevent_setfd(up->bev, -1);
    bufferevent_free(up->bev);
    if (fd >= 0)
        close(fd);
    free(up);
    /* Its place is free: a request waiting for one may have it (see the
     * ordering in queue.h). */
    atomic_fetch_sub(&bs->conns, 1);
    rp_queue_capacity(w, bs->uq);
}

void
rp_upconn_abort(rp_upconn_t *up)
{
    rp_fd_reset_on_close(bufferevent_getfd(up->bev));
    rp_upconn_close(up);
}

/* Take a place below the backend's max_connections (any number when it
 * has none). */
static bool
reserve(rp_bstate_t *bs, unsigned max)
{
    if (max == 0) {
        atomic_fetch_add(&bs->conns, 1);
        return true;
    }
    unsigned n = atomic_load(&bs->conns);
    do {
        if (n >= max)
            return false;
    } while (!atomic_compare_exchange_weak(&bs->conns, &n, n + 1));
    return true;
}

static void
unreserve(rp_worker_t *w, rp_bstate_t *bs)
{
    atomic_fetch_sub(&bs->conns, 1);
    rp_queue_capacity(w, bs->uq);
}

rp_upconn_t *
rp_upconn_connect(rp_worker_t *w, const rp_backend_t *be)
{
    rp_bstate_t *bs = rp_bstate(be->id);
    if (!reserve(bs, be->max_connections)) {
        errno = EBUSY;
        return NULL;
    }
    int fd = socket(be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        unreserve(w, bs);
        errno = e;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        unreserve(w, bs);
        errno = ENOMEM;
        return NULL;
    }
    if (bufferevent_socket_connect(bev, (const struct sockaddr *)&be->addr.ss,
                                   (int)be->addr.len) < 0) {
        /* Immediate failure (e.g. no route): report as a connect error. */
        int e = errno;
        bufferevent_free(bev);
        unreserve(w, bs);
        errno = e ? e : ECONNREFUSED;
        return NULL;
    }
    rp_upconn_t *up = calloc(1, sizeof *up);
    if (up == NULL) {
        bufferevent_free(bev);
        unreserve(w, bs);
        errno = ENOMEM;
        return NULL;
    }
    up->w = w;
    up->bev = bev;
    up->state = RP_UP_CONNECTING;
    up->backend_id = be->id;
    bufferevent_disable(bev, EV_READ);
    rp_reader_init(&up->rd, w->base, bev, RP_RBUF_HIGH_UP);
    return up;
}

/* An idle connection became readable: the backend closed it, reset it or
 * sent bytes nobody asked for.  Either way it cannot carry a request. */
static void
idle_read_cb(void *arg)
{
    rp_upconn_t *up = arg;
    rp_log(RP_LOG_DEBUG, NULL, "pool: dropping idle connection that received unexpected data");
    rp_upconn_close(up);
}

static void
idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rp_upconn_t *up = arg;
    (void)bev;
    rp_log(RP_LOG_DEBUG, NULL, "pool: idle connection %s",
           (what & BEV_EVENT_TIMEOUT) ? "timed out" : "closed by backend");
    rp_upconn_close(up);
}

/* True when neither the input buffer nor the socket holds a byte or an
 * EOF.  The socket is always asked (MSG_PEEK): a backend may have sent
 * bytes beyond its last response, or closed, while nobody watched the
 * socket (its reader paused for a slow client), after the poller's last
 * look, or beyond the events one poll reports; reading them as the next
 * request's response would serve a stale answer to the wrong request,
 * and a closed connection would fail a request that cannot be replayed.
 * Neither an old short read nor a loop turn since the release proves the
 * socket quiet now. */
static bool
still_quiet(rp_upconn_t *up)
{
    char b;
    if (evbuffer_get_length(bufferevent_get_input(up->bev)) != 0)
        return false;
    ssize_t n = recv(bufferevent_getfd(up->bev), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

rp_upconn_t *
rp_pool_acquire(rp_worker_t *w, const rp_backend_t *be, uint64_t max_idle_us)
{
    rp_pool_t *p = pool_for(w, be->id);
    rp_upconn_t *up;
    uint64_t now = rp_now_us();
    if (p == NULL)
        return NULL;   /* out of memory: a new connection then */
    while ((up = TAILQ_FIRST(&p->idle)) != NULL) {
        /* Most recently used first: when this one has been idle too long
         * for the caller, so have all the others. */
        if (max_idle_us > 0 && now - up->idle_since_us > max_idle_us)
            return NULL;
        TAILQ_REMOVE(&p->idle, up, link);
        p->nidle--;
        atomic_fetch_sub_explicit(&rp_bstate(up->backend_id)->idle, 1, memory_order_relaxed);
        up->state = RP_UP_ACTIVE;
        if (!still_quiet(up)) {
            rp_upconn_close(up);
            continue;
        }
        bufferevent_setcb(up->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(up->bev, EV_WRITE);
        rp_reader_set_timeout(&up->rd, 0);
        return up;
    }
    return NULL;
}

void
rp_pool_release(rp_upconn_t *up, const rp_upstream_t *u)
{
    rp_pool_t *p = pool_for(up->w, up->backend_id);
    if (p == NULL || u->max_idle_per_backend == 0 || up->w->draining
        || evbuffer_get_length(bufferevent_get_input(up->bev)) != 0
        || evbuffer_get_length(bufferevent_get_output(up->bev)) != 0) {
        rp_upconn_close(up);
        return;
    }
    /* Requests wait for a place at this upstream's backends: the
     * connection is for the oldest of them when it waits on this worker,
     * else its place is (queue.h). */
    rp_bstate_t *bs = rp_bstate(up->backend_id);
    bool for_waiter = false;
    if (rp_queue_len(bs->uq) > 0) {
        if (!rp_queue_oldest_here(up->w, bs->uq)) {
            rp_upconn_close(up);
            return;
        }
        for_waiter = true;
    }
    while (p->nidle >= u->max_idle_per_backend) {
        rp_upconn_t *old = TAILQ_LAST(&p->idle, rp_upconn_tailq);
        rp_upconn_close(old);
    }
    up->state = RP_UP_IDLE;
    up->idle_since_us = rp_now_us();
    TAILQ_INSERT_HEAD(&p->idle, up, link);
    p->nidle++;
    atomic_fetch_add_explicit(&bs->idle, 1, memory_order_relaxed);
    bufferevent_setcb(up->bev, NULL, NULL, idle_event_cb, up);
    bufferevent_disable(up->bev, EV_WRITE);
    rp_reader_setcb(&up->rd, idle_read_cb, idle_event_cb, up);
    rp_reader_set_timeout(&up->rd, u->idle_timeout_ms);
    rp_reader_enable(&up->rd);
    if (for_waiter)
        rp_queue_capacity(up->w, bs->uq);
}

unsigned
rp_pool_idle(rp_worker_t *w, unsigned id)
{
    return id < w->npools ? w->pools[id].nidle : 0;
}

void
rp_pool_drop_one(rp_worker_t *w, unsigned id)
{
    if (id < w->npools && !TAILQ_EMPTY(&w->pools[id].idle))
        rp_upconn_close(TAILQ_LAST(&w->pools[id].idle, rp_upconn_tailq));
}

bool
rp_pool_trim_one(rp_worker_t *w, unsigned uq)
{
    for (unsigned i = 0; i < w->npools; i++) {
        if (w->pools[i].nidle > 0 && rp_bstate(i)->uq == uq) {
            rp_upconn_close(TAILQ_LAST(&w->pools[i].idle, rp_upconn_tailq));
            return true;
        }
    }
    return false;
}

void
rp_pool_trim(rp_worker_t *w, unsigned uq)
{
    for (unsigned i = 0; i < w->npools; i++) {
        if (w->pools[i].nidle == 0 || rp_bstate(i)->uq != uq)
            continue;
        rp_upconn_t *up;
        while ((up = TAILQ_FIRST(&w->pools[i].idle)) != NULL)
            rp_upconn_close(up);
    }
}

void
rp_pools_free(rp_worker_t *w)
{
    for (unsigned i = 0; i < w->npools; i++) {
        rp_upconn_t *up;
        while ((up = TAILQ_FIRST(&w->pools[i].idle)) != NULL)
            rp_upconn_close(up);
    }
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
}

void
rp_pools_drain(rp_worker_t *w)
{
    for (unsigned i = 0; i < w->npools; i++) {
        rp_upconn_t *up;
        while ((up = TAILQ_FIRST(&w->pools[i].idle)) != NULL)
            rp_upconn_close(up);
    }
}
