/* SPDX-License-Identifier: MIT */
/*
 * Client connections speaking HTTP/1.x.  The connection owns its bufferevent,
 * its request parser, its timers and the transaction in progress; requests
 * are handled one at a time, so pipelined requests wait in the input buffer
 * (bounded by the read watermark) and are answered in order.
 */
#ifndef RP_CONN_H
#define RP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <llhttp.h>
#include "revproxy/types.h"
#include "io.h"

/* Output above this stops the producer; below RP_WBUF_LOW resumes it. */
#define RP_WBUF_HIGH (256u * 1024u)
#define RP_WBUF_LOW  (64u * 1024u)
/* Most input buffered per direction before reading stops. */
#define RP_RBUF_HIGH (256u * 1024u)
#define RP_RBUF_HIGH_UP RP_RBUF_HIGH

typedef enum rp_conn_state {
    RP_CONN_IDLE = 0,   /* between requests; idle timer armed */
    RP_CONN_HEAD,       /* request head arriving; header timer armed */
    RP_CONN_TXN,        /* a transaction runs; no conn timer */
    RP_CONN_CLOSING,    /* last response flushing, then close */
    RP_CONN_STATE_COUNT
} rp_conn_state_t;

struct rp_conn {
    rp_worker_t        *w;           /* borrowed */
    struct bufferevent *bev;         /* owned: output side and input buffer */
    rp_reader_t         rd;          /* owned: the read side */
    rp_conn_state_t     state;
    char                peer[64];    /* "ip:port" */
    char                peer_ip[48]; /* "ip" for X-Forwarded-For */
    llhttp_t            parser;
    rp_txn_t           *txn;         /* owned: request in progress */
    size_t              head_bytes;  /* bytes of the current head so far */
    size_t              trailer_bytes; /* chunked trailer fields, dropped */
    bool                in_body;     /* head complete: header callbacks are trailers */
    int                 parse_error; /* status chosen in a parser callback */
    const char         *parse_reason;
    unsigned            requests;
    struct event       *timer;       /* owned: idle or header timer */
    struct event       *resume;      /* owned: deferred input processing / close */
    bool                head_complete, msg_complete, closing_now;
    bool                peer_eof;    /* the client half-closed: no more input */
    TAILQ_ENTRY(rp_conn) link;
};

/* Take ownership of an accepted socket, counted in the worker's
 * connections.  Returns 0 when the connection was taken (a module may have
 * closed it already), or -1 when it could not be set up: the socket is
 * closed and the caller undoes the counting. */
int rp_conn_new(rp_worker_t *w, int fd, const struct sockaddr *sa, socklen_t len);
/* Close at once, aborting any transaction. */
void rp_conn_free(rp_conn_t *c);
const char *rp_conn_peer(const rp_conn_t *c);

/* Write what bev has queued now, without waiting for the next loop
 * iteration; if the socket cannot take it all, leave the rest to the
 * bufferevent (EV_WRITE enabled until drained).  Bufferevents here keep
 * EV_WRITE disabled while their output is empty, which saves two
 * epoll_ctl calls per response. */
void rp_bev_flush(struct bufferevent *bev);

/* Called by the transaction: */
/* Request body may be read (again): parse what is buffered, soon. */
void rp_conn_resume(rp_conn_t *c);
/* The transaction ended; keepalive says whether the connection may serve
 * another request.  The txn is freed here. */
void rp_conn_txn_done(rp_conn_t *c, bool keepalive);
/* Write an error response for txn (status in txn->status) and close after. */
void rp_conn_send_error(rp_conn_t *c, rp_txn_t *txn);

#endif
