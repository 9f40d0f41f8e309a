/* SPDX-License-Identifier: MIT */
/*
 * From an accepted socket to a connection that speaks HTTP: on a listener
 * with proxy_protocol, the header that names the client (from a trusted
 * peer only); the per-address limit and the accept hooks of the modules;
 * then, on a TLS listener, the handshake (all bounded by
 * timeouts.client_header_ms from the accept), after which ALPN picks the HTTP/2 session
 * (h2.c) or the HTTP/1 connection (conn.c).  On a plain listener the
 * HTTP/1 connection recognises the HTTP/2 connection preface itself.
 */
#ifndef RP_ACCEPT_H
#define RP_ACCEPT_H

#include <sys/queue.h>
#include <sys/socket.h>
#include "revproxy/config.h"
#include "revproxy/txn.h"
#include "transport.h"

/* A connection not yet speaking HTTP: its PROXY protocol header awaited
 * (tr NULL, fd owned), or its TLS handshake in progress. */
typedef struct rp_handshake {
    rp_worker_t    *w;         /* borrowed */
    rp_transport_t *tr;        /* owned until handed over */
    rp_peer_t       peer;
    struct event   *timer;     /* owned: client_header_ms */
    int             fd;        /* owned while the PROXY header is awaited */
    struct event   *pp_ev;     /* owned: its bytes arriving (edge-triggered) */
    unsigned        pp;        /* the header version awaited */
    bool            pp_seen;   /* some of it arrived */
    rp_snapshot_t  *pp_snap;   /* a reference: the configuration it was accepted
                                * under, whose listener (pp_l) it goes on with
                                * even if a reload removed it meanwhile */
    const rp_listener_t *pp_l;
    TAILQ_ENTRY(rp_handshake) link;
} rp_handshake_t;

/* A peer in fewer bytes (an idle connection's, conn.c): its address as a
 * socket address, from which the text is made again. */
typedef struct rp_peer_packed {
    union {
        struct sockaddr     sa;
        struct sockaddr_in  sin;
        struct sockaddr_in6 sin6;
    } u;
    uint64_t accepted_us;
    rp_ip_t  addr;
    unsigned listener;
    bool     secure, ip_counted, unnamed;
} rp_peer_packed_t;
/* False when p's text would not come back the same (then keep p whole). */
bool rp_peer_pack(const rp_peer_t *p, rp_peer_packed_t *out);
void rp_peer_unpack(const rp_peer_packed_t *in, rp_peer_t *p);

/* Take an accepted socket (counted in the worker's connections).  Returns
 * 0 when taken (it may be closed already), -1 when it could not be set up:
 * the socket is closed and the caller undoes the counting. */
int rp_accept(rp_worker_t *w, int fd, const struct sockaddr *sa, const rp_listener_t *l);
/* The connection of p closed: its place under limits.max_connections_per_ip
 * is free (once; nothing when it was not counted). */
void rp_peer_release(rp_peer_t *p);
/* Close a handshake in progress (worker stop). */
void rp_handshake_free(rp_handshake_t *hs);

/* TLS handshakes that failed, by reason word (process-wide, counted
 * without a lock); reasons beyond the slots add up under "other_reasons". */
#define RP_TLS_FAIL_SLOTS 16
typedef struct rp_tls_fail_count {
    const char *reason;
    uint64_t    count;
} rp_tls_fail_count_t;
/* Copy the counters out (cap should be RP_TLS_FAIL_SLOTS + 1); returns
 * how many there are. */
size_t rp_tls_failures(rp_tls_fail_count_t *out, size_t cap);

#endif
