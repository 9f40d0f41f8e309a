/* SPDX-License-Identifier: MIT */
/*
 * Client connections speaking HTTP/1.x: the HTTP/1 downstream.  The
 * connection owns its transport, its request parser, its timers and the
 * transaction in progress; requests are handled one at a time, so
 * pipelined requests wait in the input buffer (bounded by the read
 * watermark) and are answered in order.  The transaction talks back
 * through rp_h1_downstream (revproxy/txn.h), which does all HTTP/1
 * client-side framing.
 */
#ifndef RP_CONN_H
#define RP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <llhttp.h>
#include "revproxy/txn.h"
#include "revproxy/types.h"
#include "rate.h"
#include "transport.h"

typedef enum rp_conn_state {
    RP_CONN_IDLE = 0,   /* between requests; idle timer armed */
    RP_CONN_HEAD,       /* request head arriving; header timer armed */
    RP_CONN_TXN,        /* a transaction runs; no conn timer */
    RP_CONN_CLOSING,    /* last response flushing, then close */
    RP_CONN_STATE_COUNT
} rp_conn_state_t;

struct rp_conn {
    rp_worker_t        *w;           /* borrowed */
    rp_transport_t     *tr;          /* owned */
    rp_conn_state_t     state;
    rp_peer_t           peer;
    llhttp_t            parser;
    rp_txn_t           *txn;         /* owned: request in progress */
    size_t              head_bytes;  /* bytes of the current head so far */
    size_t              trailer_bytes; /* chunked trailer fields, dropped */
    size_t              out_peak;    /* most output ever queued (debug log) */
    bool                in_body;     /* head complete: header callbacks are trailers */
    bool                value_cut;   /* a header value span ended before the data did */
    const char         *exec_end;    /* end of the bytes llhttp_execute() is parsing */
    int                 parse_error; /* status chosen in a parser callback */
    rp_error_t          parse_word;
    const char         *parse_reason;
    unsigned            requests;
    struct event       *timer;       /* owned: idle or header timer */
    struct event       *resume;      /* owned: deferred input processing / close */
    bool                head_complete, msg_complete, closing_now;
    bool                peer_eof;    /* the client half-closed: no more input */
    bool                h2_probe;    /* first bytes may be the HTTP/2 preface */
    bool                to_h2;       /* they were: hand over to h2.c */
    bool                reset_soon;  /* resume_cb closes abortively */
    /* The exchange in progress, as the client sees it. */
    bool                keepalive;   /* the client asked to keep the connection */
    bool                resp_chunked;        /* response body chunked by us */
    bool                resp_close_delimited;/* response body ends with the connection */
    bool                close_after;         /* no further exchange */
    bool                drain_soft;          /* draining: serve what is received, then close */
    bool                idle_grace;  /* idle, whole: c->timer compacts it (w->idle_whole) */
    unsigned            idle_left_ms;/* then, what is left of client_idle_ms */
    /* timeouts.client_min_bytes_per_s while a transaction runs (c->timer). */
    rp_rate_t           body_rate;   /* request body bytes received */
    uint64_t            body_wire;   /* bytes parsed while a request body is read */
    rp_rate_t           out_rate;    /* response bytes the client acknowledged */
    TAILQ_ENTRY(rp_conn) link;
};

/* An HTTP/1 connection over an accepted client transport (taken over),
 * counted in the worker's connections.  Returns 0. */
int rp_conn_new_transport(rp_worker_t *w, rp_transport_t *tr, const rp_peer_t *peer);

/* A plain-TCP keep-alive connection idle for RP_IDLE_COMPACT_MS (when
 * timeouts.client_idle_ms is longer) keeps only its socket, its peer and
 * one event, in an rp_idle_t of about 0.3 KiB: its parser, transaction
 * state, bufferevent, buffers and timers are freed, as nginx frees an
 * idle connection's buffers.  Its next bytes (or their end) make it a
 * whole connection again; the rest of client_idle_ms closes it.  While a
 * worker has RP_IDLE_WHOLE_MAX whole idle connections, one going idle is
 * compacted after RP_IDLE_COMPACT_SOON_MS instead: a crowd of idle
 * clients soon gives its memory back, and busy keep-alive clients (the
 * next request sooner) never pay the switch.  The switch makes no system
 * call (the socket stays in epoll). */
#define RP_IDLE_COMPACT_MS 1000u
#define RP_IDLE_WHOLE_MAX 64u
#define RP_IDLE_COMPACT_SOON_MS 20u
typedef struct rp_idle rp_idle_t;
/* Close w's idle connections: all of them, or those of one listener. */
void rp_conn_idles_close(rp_worker_t *w, bool all, unsigned listener);
/* Close at once, aborting any transaction. */
void rp_conn_free(rp_conn_t *c);
/* Graceful shutdown: no further exchange; an idle keep-alive connection
 * closes now, one with a request in progress after its response. */
void rp_conn_drain(rp_conn_t *c);
/* How long a connection that has sent nothing yet may still send its
 * first request once a drain starts (one accepted after gets the whole
 * client_header_ms). */
#define RP_DRAIN_GRACE_MS 1000

/* Close the connections that carried a WebSocket tunnel and are still
 * sending its last frames (worker stop). */
void rp_conn_lingering_free(rp_worker_t *w);

extern const rp_downstream_ops_t rp_h1_downstream;

#endif
