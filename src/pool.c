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
#include "worker.h"
#include "util.h"

static rp_pool_t *
pool_for(rp_worker_t *w, unsigned id)
{
    if (id >= w->npools) {
        unsigned n = rp_backend_identity_count();
        if (n <= id)
            n = id + 1;
        w->pools = rp_xrealloc(w->pools, n * sizeof *w->pools);
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
    if (up->state == RP_UP_IDLE) {
        rp_pool_t *p = pool_for(up->w, up->backend_id);
        TAILQ_REMOVE(&p->idle, up, link);
        p->nidle--;
    }
    rp_reader_release(&up->rd);
    bufferevent_free(up->bev);
    atomic_fetch_sub_explicit(&rp_bstate(up->backend_id)->conns, 1, memory_order_relaxed);
    free(up);
}

void
rp_upconn_abort(rp_upconn_t *up)
{
    rp_fd_reset_on_close(bufferevent_getfd(up->bev));
    rp_upconn_close(up);
}

rp_upconn_t *
rp_upconn_connect(rp_worker_t *w, const rp_backend_t *be)
{
    int fd = socket(be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    if (bufferevent_socket_connect(bev, (const struct sockaddr *)&be->addr.ss,
                                   (int)be->addr.len) < 0) {
        /* Immediate failure (e.g. no route): report as a connect error. */
        int e = errno;
        bufferevent_free(bev);
        errno = e ? e : ECONNREFUSED;
        return NULL;
    }
    rp_upconn_t *up = rp_xcalloc(1, sizeof *up);
    up->w = w;
    up->bev = bev;
    up->state = RP_UP_CONNECTING;
    up->backend_id = be->id;
    atomic_fetch_add_explicit(&rp_bstate(be->id)->conns, 1, memory_order_relaxed);
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
    while ((up = TAILQ_FIRST(&p->idle)) != NULL) {
        /* Most recently used first: when this one has been idle too long
         * for the caller, so have all the others. */
        if (max_idle_us > 0 && now - up->idle_since_us > max_idle_us)
            return NULL;
        TAILQ_REMOVE(&p->idle, up, link);
        p->nidle--;
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
    if (u->max_idle_per_backend == 0
        || evbuffer_get_length(bufferevent_get_input(up->bev)) != 0
        || evbuffer_get_length(bufferevent_get_output(up->bev)) != 0) {
        rp_upconn_close(up);
        return;
    }
    while (p->nidle >= u->max_idle_per_backend) {
        rp_upconn_t *old = TAILQ_LAST(&p->idle, rp_upconn_tailq);
        rp_upconn_close(old);
    }
    up->state = RP_UP_IDLE;
    up->idle_since_us = rp_now_us();
    TAILQ_INSERT_HEAD(&p->idle, up, link);
    p->nidle++;
    bufferevent_setcb(up->bev, NULL, NULL, idle_event_cb, up);
    bufferevent_disable(up->bev, EV_WRITE);
    rp_reader_setcb(&up->rd, idle_read_cb, idle_event_cb, up);
    rp_reader_set_timeout(&up->rd, u->idle_timeout_ms);
    rp_reader_enable(&up->rd);
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
