/* SPDX-License-Identifier: MIT */
/*
 * Upstream connections and the per-worker keep-alive pools.  A pool holds
 * idle connections to one backend identity (upstream name + address),
 * bounded by max_idle_per_backend and idle_timeout_ms.  An idle connection
 * watches its socket: if the backend closes it or sends anything, it is
 * dropped, so a connection taken from the pool was alive an instant ago.
 */
#ifndef RP_POOL_H
#define RP_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <event2/bufferevent.h>
#include "revproxy/config.h"
#include "io.h"

typedef enum rp_upconn_state {
    RP_UP_CONNECTING = 0,  /* connect in progress; owned by a txn */
    RP_UP_ACTIVE,          /* carrying a request; owned by a txn */
    RP_UP_IDLE,            /* in its pool; owned by the pool */
    RP_UP_STATE_COUNT
} rp_upconn_state_t;

struct rp_upconn {
    rp_worker_t        *w;          /* borrowed */
    struct bufferevent *bev;        /* owned: output side and input buffer */
    rp_reader_t         rd;         /* owned: the read side */
    rp_upconn_state_t   state;
    unsigned            backend_id;
    unsigned            uses;       /* requests carried so far */
    uint64_t            idle_since_us;
    TAILQ_ENTRY(rp_upconn) link;    /* in the pool when idle */
};

struct rp_pool {
    TAILQ_HEAD(rp_upconn_tailq, rp_upconn) idle;   /* most recently used first */
    unsigned nidle;
};

/* A live idle connection to be, or NULL.  max_idle_us > 0: only a
 * connection idle for at most that long (a backend's keep-alive timeout
 * may be closing an older one right now).  The caller owns what it gets
 * (state ACTIVE) and must set its callbacks (bufferevent and reader) before
 * returning to the event loop; reading stays enabled. */
rp_upconn_t *rp_pool_acquire(rp_worker_t *w, const rp_backend_t *be, uint64_t max_idle_us);
/* Start a new connection (state CONNECTING); callbacks are the caller's to
 * set.  It takes one of the backend's max_connections places, given back
 * when it closes.  NULL when a socket cannot even be created (errno says
 * why), or with errno EBUSY when the backend has no place left. */
rp_upconn_t *rp_upconn_connect(rp_worker_t *w, const rp_backend_t *be);
/* Give a connection that finished a request cleanly back to its pool;
 * closed instead if the pool is full or idle pooling is off. */
void rp_pool_release(rp_upconn_t *up, const rp_upstream_t *u);
void rp_upconn_close(rp_upconn_t *up);
/* Close abortively (RST): the backend sees the request aborted. */
void rp_upconn_abort(rp_upconn_t *up);
/* Idle connections to backend identity id in w's pool. */
unsigned rp_pool_idle(rp_worker_t *w, unsigned id);
/* Close the connection idle longest in w's pool for backend id, if any. */
void rp_pool_drop_one(rp_worker_t *w, unsigned id);
/* Close one of w's idle connections to the backends of upstream identity
 * uq; false when it holds none. */
bool rp_pool_trim_one(rp_worker_t *w, unsigned uq);
/* Close w's idle connections to the backends of upstream identity uq. */
void rp_pool_trim(rp_worker_t *w, unsigned uq);
/* Close every idle connection of the worker (shutdown). */
void rp_pools_free(rp_worker_t *w);
/* Close every idle pooled connection of w (graceful shutdown). */
void rp_pools_drain(rp_worker_t *w);

#endif
