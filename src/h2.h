/* SPDX-License-Identifier: MIT */
/*
 * HTTP/2 client connections (h2.c): an nghttp2 server session over a
 * client transport.  Each request stream drives one transaction through
 * rp_h2_downstream, exactly as an HTTP/1 request does; backends still get
 * HTTP/1.1.
 */
#ifndef RP_H2_H
#define RP_H2_H

#include <stdint.h>
#include <sys/queue.h>
#include "revproxy/txn.h"
#include "transport.h"

typedef struct rp_h2 rp_h2_t;

/* The connection preface a client sends first (RFC 9113 3.4). */
#define RP_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define RP_H2_PREFACE_LEN 24

/* Take over a client transport (counted in the worker's connections)
 * whose next input is the HTTP/2 connection preface; bytes already in its
 * input buffer are processed.  Returns 0. */
int rp_h2_new(rp_worker_t *w, rp_transport_t *tr, const rp_peer_t *peer);
/* Close at once (worker stop): transactions are aborted, GOAWAY is sent
 * if the socket takes it. */
unsigned rp_h2_stop(rp_h2_t *h);   /* returns the requests it cut */
/* Graceful shutdown: a shutdown notice and a PING now, GOAWAY with the
 * last stream processed when the PING's ACK comes back (a round trip: the
 * requests the client sent before it saw the notice have arrived), or
 * RP_H2_DRAIN_NOTICE_MS later if it does not; the connection closes once
 * its streams are done. */
#define RP_H2_DRAIN_NOTICE_MS 1000
void rp_h2_drain(rp_h2_t *h);
/* The same for the HTTP/2 connections of w from listener identity ident. */
void rp_h2_drain_listener(rp_worker_t *w, unsigned ident);
/* The same for every HTTP/2 connection of w. */
void rp_h2_drain_all(rp_worker_t *w);
/* Free this thread's cache of stream objects (at worker exit). */
void rp_h2_cache_free(void);

extern const rp_downstream_ops_t rp_h2_downstream;

/* The limits applied to every session, for the documentation and tests. */
#define RP_H2_STREAM_WINDOW      (64u * 1024u)     /* per-stream receive window */
#define RP_H2_CONN_WINDOW        (1024u * 1024u)   /* connection receive window */
#define RP_H2_RESET_BURST        100u   /* stream resets tolerated at once ... */
#define RP_H2_RESET_RATE         10u    /* ... and per second after */
#define RP_H2_MAX_CONTINUATIONS  8u
#define RP_H2_MAX_SETTINGS       16u    /* entries in one SETTINGS frame */
#define RP_H2_MAX_OUTBOUND_ACK   100u
#define RP_H2_IDLE_FRAME_BUDGET  1000u  /* frames that do no work, per connection */
#define RP_H2_IDLE_FRAME_REFUND  10u    /* returned to the budget per answered stream */

#endif
