/* SPDX-License-Identifier: MIT */
/*
 * Worker threads.  Each worker owns an event_base, its own SO_REUSEPORT
 * listening sockets, the client connections accepted on them and its
 * upstream connection pools; a connection lives and dies on one worker.
 * The main thread owns signals and config and talks to workers only
 * through a pipe per worker; worker event bases have no locks, since no
 * other thread ever touches them.
 */
#ifndef RP_WORKER_H
#define RP_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/listener.h>
#include "revproxy/config.h"

typedef struct rp_pool rp_pool_t;
/* A reload's hand-over to one worker: the snapshot (a reference) and, for
 * each of its listeners, a socket bound for this worker when the listener
 * is new (-1 otherwise). */
typedef struct rp_listen_ctx {
    rp_worker_t *w;
    size_t       index;   /* in snap->listeners */
} rp_listen_ctx_t;
/* Everything a worker's switch to a new snapshot needs, allocated before
 * the snapshot is published (a switch cannot fail half-way). */
typedef struct rp_handover {
    rp_snapshot_t          *snap;
    int                    *fds;
    size_t                  nfds;   /* snap's listeners */
    struct evconnlistener **ls;     /* the worker's new listener arrays */
    rp_listen_ctx_t        *lc;
    bool                    kept[RP_MAX_LISTENERS + 1];
    int                     from[RP_MAX_LISTENERS + 1];
    unsigned                gone[RP_MAX_LISTENERS + 1];
} rp_handover_t;
typedef struct rp_qlist rp_qlist_t;

struct rp_worker {
    unsigned              id;
    pthread_t             thread;
    struct event_base    *base;          /* owned */
    rp_snapshot_t        *snap;          /* ref: snapshot new requests start with */
    struct evconnlistener **listeners;   /* owned */
    rp_listen_ctx_t      *lctx;          /* owned: one per listener */
    size_t                nlisteners;
    struct event         *accept_timer;  /* owned: re-enables paused listeners */
    bool                  accept_paused;
    unsigned              accept_errors;          /* accept failures not yet logged */
    uint64_t              accept_error_logged_us; /* the last line about them */
    struct event         *stop_ev;       /* owned: reads stop_pipe[0] */
    int                   stop_pipe[2];  /* owned: the main thread writes a byte to stop */
    TAILQ_HEAD(, rp_conn) conns;         /* owned: HTTP/1 connections */
    TAILQ_HEAD(, rp_idle) idles;         /* owned: HTTP/1 connections idle long
                                          * enough to keep only their socket */
    TAILQ_HEAD(, rp_handshake) handshakes;  /* owned: PROXY headers awaited and TLS
                                               handshakes in progress */
    TAILQ_HEAD(, rp_h2) h2s;             /* owned: HTTP/2 connections */
    TAILQ_HEAD(, rp_ws) tunnels;         /* owned: WebSocket tunnels */
    TAILQ_HEAD(, h1_tunnel) lingering;   /* owned: their HTTP/1 connections sending
                                            the last frames after the tunnel ended */
    unsigned              nconns;
    unsigned              idle_whole;    /* HTTP/1 connections idle, not yet compact (conn.c) */
    unsigned              active_txns;   /* transactions started and not freed */
    rp_pool_t            *pools;         /* owned: indexed by backend identity */
    unsigned              npools;
    rp_qlist_t           *qlists;        /* owned: queue waiters, by upstream identity */
    unsigned              nqlists;
    /* The mailbox (queue.c): other threads add upstream identities under
     * mb_lock and write mb_fd (an eventfd). */
    pthread_mutex_t       mb_lock;
    unsigned             *mb;            /* owned */
    size_t                mb_n, mb_cap;
    bool                  mb_scan;       /* the list could not grow: look
                                          * at every identity's flag */
    int                   mb_fd;         /* owned */
    struct event         *mb_ev;         /* owned */
    struct event         *q_sweep;       /* owned: queue sweep while it has waiters */
    /* Graceful shutdown (rp_workers_drain): listeners closed, connections
     * closing as their exchanges end; drained once none is left. */
    bool                  draining;
    bool                  from_queue;    /* accepting what waits in a queue: past the cap */
    atomic_bool           drained;
    struct event         *drain_check;   /* owned */
    unsigned              cut;           /* requests aborted by the final stop */
    /* A reload hands the next snapshot over here (a reference), and
     * writes 'r' to the pipe: the worker switches in its own loop. */
    _Atomic(rp_handover_t *) pending;
};

/* Connections open across all workers, and the cap applied to them. */
extern atomic_uint rp_active_conns;
extern _Atomic unsigned rp_max_conns;   /* a reload may change it */

/* Bind every listener once per worker (SO_REUSEPORT) on the main thread, so
 * a port in use fails start-up cleanly; then start the threads, each of
 * which runs its modules' start hooks, and wait for all of them: workers
 * serve only once every one has started.  Returns 0 then, or -1 after
 * logging why (a module that failed to start is named); nothing is left
 * running, every thread has been joined. */
int rp_workers_start(rp_snapshot_t *snap);
/* Stop all workers (close listeners and connections, aborting what is in
 * flight) and join them; returns how many requests were aborted. */
unsigned rp_workers_stop(void);
/* Graceful shutdown: each worker accepts what waits in its listening
 * sockets' queues, closes them, closes idle keep-alive connections, lets
 * exchanges in flight finish (each with Connection: close, or after an
 * HTTP/2 shutdown notice and GOAWAY) and closes idle pooled upstream
 * connections.  rp_workers_drained() tells when every worker is done. */
void rp_workers_drain(void);
bool rp_workers_drained(void);
/* Hand snap to every worker (each takes a reference and switches to it
 * at a safe point of its loop: new connections and requests start with
 * it, those under way keep theirs). */
void rp_workers_publish(rp_snapshot_t *snap);
/* Bind, for every worker, the listeners of next that cur does not have:
 * fds[worker * next->nlisteners + j], -1 where not new.  Returns the
 * array, or NULL after adding "listeners[j].address: ..." to errs (then
 * nothing stays bound).  rp_workers_publish takes it over. */
int *rp_workers_bind_new(const rp_snapshot_t *cur, const rp_snapshot_t *next, rp_errs_t *errs);
/* Close and free what rp_workers_bind_new bound for next (a reload that
 * is dropped). */
void rp_workers_unbind(const rp_snapshot_t *next, int *fds);
/* Publish with those sockets: listeners next adds start accepting, those
 * it drops accept what waits in their queues and close, and their
 * connections drain as at shutdown. */
void rp_workers_publish_with(rp_snapshot_t *snap, int *fds);
/* Whether listener identity ident is not one of w's snapshot now (its
 * connections get no further exchange). */
bool rp_worker_listener_gone(const rp_worker_t *w, unsigned ident);


/* Worker id of the running set, or NULL; and how many run. */
rp_worker_t *rp_worker_get(unsigned id);
unsigned rp_worker_count(void);

/* A connection closed: accounting and listener re-enable. */
void rp_worker_conn_closed(rp_worker_t *w, unsigned listener);

#endif
