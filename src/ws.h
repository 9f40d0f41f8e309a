/* SPDX-License-Identifier: MIT */
/*
 * WebSocket (RFC 6455) on routes with "websocket": true.
 *
 * The handshake: rp_ws_check_request() decides, once the route is known,
 * whether a request is a WebSocket upgrade and whether it is a valid one
 * (400, or 426 for another Sec-WebSocket-Version); the request goes to
 * the backend with Upgrade and Connection, and extensions the relay
 * cannot carry taken out of its offer; rp_ws_check_response() holds the
 * backend's 101 to the key (Sec-WebSocket-Accept), the protocols and the
 * extensions offered.  A backend that answers anything else is relayed as
 * a plain response, the connection staying HTTP.
 *
 * The tunnel: after the 101, the client connection (or HTTP/2 stream) and
 * the backend connection belong to an rp_ws_t, which relays frame by
 * frame with a wslay context on each side: a server context towards the
 * client (its frames must be masked), a client context towards the
 * backend (its frames must not be).  Messages are not buffered whole:
 * payload moves as it arrives, message boundaries, opcodes and RSV1 kept
 * (frames may be cut differently, at most 4 KiB of payload each).  Ping
 * and pong are answered on each side; Close goes through, after the data
 * before it.  Output above RP_WBUF_HIGH on one side stops reading the
 * other until it falls below RP_WBUF_LOW.
 */
#ifndef RP_WS_H
#define RP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>
#include "revproxy/txn.h"

typedef struct rp_ws rp_ws_t;

/* RFC 6455 7.4.1 close codes revproxy sends or records. */
#define RP_WS_NORMAL        1000
#define RP_WS_GOING_AWAY    1001
#define RP_WS_PROTOCOL      1002
#define RP_WS_NO_STATUS     1005
#define RP_WS_ABNORMAL      1006
#define RP_WS_BAD_DATA      1007
#define RP_WS_TOO_BIG       1009
#define RP_WS_SERVER_ERROR  1011

/* The closing handshake gets this long, after a drain or one side's Close. */
#define RP_WS_CLOSE_MS 1000

/* Who ended a tunnel (the access line's "ws_closed_by"). */
typedef enum rp_ws_closer {
    RP_WS_BY_NONE = 0, RP_WS_BY_CLIENT, RP_WS_BY_BACKEND, RP_WS_BY_PROXY
} rp_ws_closer_t;
const char *rp_ws_closer_name(int c);

/* ---- the handshake (pure: tests call them directly) ---- */

/* For a transaction whose route takes WebSocket: 0 when the request is
 * not a WebSocket upgrade (Upgrade does not list "websocket"), 1 when it
 * is a valid one (t->ws set), -1 when it is an invalid one, with
 * t->status (400 or 426), t->error and t->reason set. */
int rp_ws_check_request(rp_txn_t *t);

/* The Sec-WebSocket-Accept value for a key: base64(SHA-1(key GUID)),
 * 28 characters and a NUL; false (out matching nothing) when memory for
 * the digest ran out. */
bool rp_ws_accept_value(const char *key, size_t len, char out[29]);

/* The elements of a Sec-WebSocket-Extensions value the relay can carry
 * (permessage-deflate, with its parameters), joined with ", " into out;
 * their length (0: none). */
size_t rp_ws_filter_extensions(const char *v, size_t len, char *out, size_t cap);

/* Check the backend's 101 for t: 0 (t->ws_deflate set when
 * permessage-deflate was agreed), or -1 (RP_WS_NOMEM: out of memory) with
 * *why set. */
#define RP_WS_NOMEM (-2)
int rp_ws_check_response(rp_txn_t *t, const char **why);

/* ---- the tunnel ---- */

/* The client side of a tunnel, as the downstream provides it.  in: bytes
 * received from the client; out: bytes to send it. */
typedef struct rp_ws_client_ops {
    void   (*read)(void *ctx, bool on);   /* take client input, or stop */
    void   (*flush)(void *ctx);           /* send what was added to out */
    size_t (*pending)(void *ctx);         /* queued for the client, not sent yet */
    /* The tunnel is over: what is still queued is sent if the client
     * takes it (graceful) or dropped, then the client side ends (its
     * connection closes, or its stream ends).  Last call. */
    void   (*close)(void *ctx, bool graceful);
    /* Bytes queued for the client above which the backend is not read,
     * and at or below which it is again (an HTTP/2 stream keeps them
     * small: a connection carries many). */
    size_t high, low;
} rp_ws_client_ops_t;

/* Start the tunnel of t, whose backend answered 101 (on t->up, whose
 * input may hold frames already).  The tunnel takes over t (it completes
 * and frees it when it ends: the access line is written then) and t->up.
 * Never fails: out of memory, both sides are closed at once. */
rp_ws_t *rp_ws_start(rp_txn_t *t, const rp_ws_client_ops_t *ops, void *ctx,
                     struct evbuffer *in, struct evbuffer *out);
/* From the downstream: client bytes were added to in; out fell to the low
 * watermark; the client side ended: error false for the end of its input
 * (it may still read), true when nothing more can reach it. */
void rp_ws_client_input(rp_ws_t *ws);
void rp_ws_client_writable(rp_ws_t *ws);
void rp_ws_client_gone(rp_ws_t *ws, bool error);
/* The client side is going away now (an HTTP/2 stream or connection being
 * freed): the tunnel no longer touches it, nor calls its ops, and ends
 * from the loop (the backend gets 1001). */
void rp_ws_client_detach(rp_ws_t *ws);
/* Drain (every tunnel of w) or listener removal (those whose client came
 * through listener identity ident): Close 1001 to both sides,
 * RP_WS_CLOSE_MS to finish the closing handshake, then both connections
 * close. */
void rp_ws_going_away_all(rp_worker_t *w, bool one_listener, unsigned ident);
/* The worker stops: close every tunnel now; how many there were. */
unsigned rp_ws_stop_all(rp_worker_t *w);

#endif
