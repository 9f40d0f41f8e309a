/* SPDX-License-Identifier: MIT */
/*
 * The transaction: one request/response exchange, from a complete request
 * head to the last byte of the response.  Its state is a field changed only
 * through rp_txn_set_state(); each state says what the txn holds.
 */
#ifndef REVPROXY_TXN_H
#define REVPROXY_TXN_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>
#include "revproxy/types.h"
#include "revproxy/cidr.h"
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/http.h"
#include "revproxy/reasons.h"

typedef enum rp_txn_state {
    RP_TXN_READ_HEAD = 0, /* client head arriving; header timer armed (conn) */
    RP_TXN_DECIDE,        /* [transient] on_request hooks */
    RP_TXN_PICK,          /* [transient] select_backend; re-entered on replay */
    RP_TXN_QUEUE,         /* waiting in the upstream's queue; queue timer */
    RP_TXN_RETRY,         /* an attempt failed; the next waits its backoff (timer) */
    RP_TXN_CONNECT,       /* upstream conn pending, owned by the txn; connect timer */
    RP_TXN_WAIT_HEAD,     /* request head sent, body streaming; response timer */
    RP_TXN_RELAY,         /* response head sent to client; bodies flowing */
    RP_TXN_TUNNEL,        /* a WebSocket tunnel (src/ws.c) owns it until it ends */
    RP_TXN_ERROR,         /* [transient] answer txn->status to the client */
    RP_TXN_DONE,          /* [transient] on_complete, log, free */
    RP_TXN_STATE_COUNT
} rp_txn_state_t;

/* Who or what ended the transaction (rp_close_t, the access line's
 * "termination") and why it failed (rp_error_t, "error"): reasons.h. */

/* X(ENUM_SUFFIX, "word") */
#define RP_ATTEMPT_RESULTS(X) \
    X(OK,              "ok") \
    X(CONNECT_ERROR,   "connect_error") \
    X(CONNECT_TIMEOUT, "connect_timeout") \
    X(TIMEOUT,         "timeout") \
    X(BAD_RESPONSE,    "bad_response") \
    X(RESET,           "reset") \
    X(ABORTED,         "aborted")   /* the client side ended it first */ \
    X(LOCAL_ERROR,     "local_error")   /* the proxy ran out of descriptors, memory or ports */

#define RP_ATTEMPT_ENUM_(e, w) RP_ATTEMPT_##e,
typedef enum rp_attempt_result { RP_ATTEMPT_RESULTS(RP_ATTEMPT_ENUM_) RP_ATTEMPT_COUNT } rp_attempt_result_t;
#undef RP_ATTEMPT_ENUM_

const char *rp_attempt_result_name(rp_attempt_result_t r);

/* One attempt at a backend, reported exactly once to on_upstream_result. */
struct rp_attempt {
    const rp_backend_t  *backend;
    rp_attempt_result_t  result;
    int                  status;      /* response status, 0 when no head arrived */
    bool                 reused;      /* connection came from the pool */
    uint64_t             duration_us;
};

/* Attempts whose results the access line lists (later ones are counted). */
#define RP_TXN_RESULTS_MAX 12   /* at least retry.max_retries + 1 */

/* What the transaction knows of its client; owned by the downstream. */
struct rp_peer {
    char text[64];       /* "ip:port" or "[ip6]:port" */
    char ip[48];         /* for X-Forwarded-For */
    bool secure;         /* the client spoke TLS */
    uint64_t accepted_us;/* when the connection was accepted (rp_now_us), 0: now */
    unsigned listener;   /* the listener's identity (rp_listener_identity) */
    rp_ip_t  addr;       /* the address, for per-address limits */
    bool     ip_counted; /* counted for limits.max_connections_per_ip (released
                            once, by whoever holds the connection when it closes) */
    bool     unnamed;    /* relayed by a balancer whose PROXY header named no
                            client: its X-Forwarded-For is never believed */
};

/* How the response body is framed, for the downstream to express in its
 * own protocol.  The status and fields are in txn->resp; fields marked
 * RP_HF_DROP are not sent. */
typedef struct rp_resp_framing {
    bool        no_body;      /* HEAD, 204, 304: nothing follows the head */
    bool        has_length;   /* the body length is known */
    uint64_t    length;
    const char *codings;      /* transfer-codings applied before chunked, or NULL */
    size_t      codings_len;
} rp_resp_framing_t;

/*
 * The downstream: how a transaction talks to its client (an HTTP/1
 * connection, later an HTTP/2 stream).  The downstream owns the txn;
 * after send_error, abort or done it has been freed.
 *
 * send_head: the response head; -1 when this client cannot be given it
 *   (e.g. transfer-codings to an HTTP/1.0 client), RP_SEND_NOMEM when
 *   memory for it ran out; nothing sent then.
 * send_body/end: response body bytes (de-chunked), and its end;
 *   send_body returns -1 when memory ran out (the response is cut then).
 * abort: the response cannot complete; make sure the client cannot
 *   mistake what it got for a complete response (close the HTTP/1
 *   connection abortively, reset the HTTP/2 stream).
 * send_continue: an interim 100 (Continue).
 * send_error: the proxy's own response, status txn->status, word txn->error.
 * resume_body: the request body may flow again (it was paused because the
 *   backend was not taking it).
 * close_after: no further exchange on this client connection after this
 *   one (Connection: close, or GOAWAY).
 * pending: response bytes queued to the client and not yet sent.
 * flush: send what is queued now.
 * check_body: before the request head goes to a backend, are the body
 *   bytes the downstream already holds well-formed so far?  0, or -1:
 *   the request is answered 400 and nothing is sent upstream.
 * done: the exchange ended cleanly; reusable says whether the transaction
 *   saw nothing that forbids another exchange on the connection.
 * client_gone: whether the client closed its side (a request of a client
 *   gone is not tried again).
 * resp_high/resp_low: response bytes pending for the client above which
 *   the transaction stops reading its backend, and at or below which it
 *   reads again; req_high/req_low: the same for request body bytes queued
 *   towards the backend, pausing the downstream's body.  An HTTP/2 stream
 *   keeps them small, since a connection carries many.
 * tunnel: the backend switched to WebSocket (its 101 checked): answer the
 *   client (101 on HTTP/1) and hand the client side and t over to
 *   rp_ws_start (src/ws.h); the downstream no longer owns t.  -1 when it
 *   cannot (nothing sent then; the transaction fails with 502), or
 *   RP_SEND_NOMEM when memory ran out (503).
 */
#define RP_SEND_NOMEM (-2)
typedef struct rp_downstream_ops {
    const char *name;
    int    (*send_head)(rp_txn_t *t, const rp_resp_framing_t *f);
    int    (*send_body)(rp_txn_t *t, const char *at, size_t len);
    void   (*end)(rp_txn_t *t);
    void   (*abort)(rp_txn_t *t);
    void   (*send_continue)(rp_txn_t *t);
    void   (*send_error)(rp_txn_t *t);
    void   (*resume_body)(rp_txn_t *t);
    void   (*close_after)(rp_txn_t *t);
    size_t (*pending)(const rp_txn_t *t);
    void   (*flush)(rp_txn_t *t);
    int    (*check_body)(rp_txn_t *t);
    void   (*done)(rp_txn_t *t, bool reusable);
    bool   (*client_gone)(const rp_txn_t *t);
    int    (*tunnel)(rp_txn_t *t);
    size_t resp_high, resp_low, req_high, req_low;
} rp_downstream_ops_t;

struct rp_txn {
    char            id[65];      /* request id: in every log line and error body */
    rp_txn_state_t  state;       /* changed only by rp_txn_set_state() */
    rp_txn_state_t  where;       /* state it was in when it ended */
    rp_close_t      why;
    rp_error_t      error;       /* the reason word, RP_ERR_NONE when none */
    const char     *reason;      /* static text for the error log line */
    rp_worker_t    *worker;      /* borrowed */
    unsigned        worker_id;
    const rp_downstream_ops_t *ds;   /* the client side */
    void           *ds_ctx;      /* the downstream's own (HTTP/1: rp_conn_t) */
    const rp_peer_t *peer;       /* borrowed from the downstream */
    rp_snapshot_t  *snap;        /* ref: taken in rp_txn_new, dropped in rp_txn_free */
    rp_http_head_t  req;         /* owned: the request head as received */
    rp_http_head_t  resp;        /* owned: the response head from the backend */
    char            host[256];   /* normalised host ("" when none) */
    const char     *path;        /* borrowed from req.buf: path without query */
    size_t          path_len;
    const char     *origin;      /* borrowed from req.buf: origin-form target */
    size_t          origin_len;
    const rp_route_t    *route;     /* borrowed from snap */
    const rp_upstream_t *upstream;  /* borrowed from snap */
    const rp_backend_t  *backend;   /* borrowed from snap, or backend_own */
    rp_backend_t    backend_own; /* a backend resolved from a host name (rp_pos_backend) */
    rp_upconn_t    *up;          /* owned from CONNECT until the response ends */
    int             status;      /* status sent (or to send) to the client */
    unsigned        retry_after; /* seconds: Retry-After on the proxy's own answer, 0: none */
    int             decided_by;  /* module id that answered, or -1 */
    unsigned        attempts;
    unsigned        avoid[RP_TXN_RESULTS_MAX];   /* backends tried: a retry goes elsewhere */
    unsigned        navoid;
    unsigned        nresults;    /* attempts reported to on_upstream_result */
    uint8_t         results[RP_TXN_RESULTS_MAX];   /* rp_attempt_result_t of each */
    uint16_t        statuses[RP_TXN_RESULTS_MAX];  /* final status of each, 0: none */
    uint64_t        start_us;
    uint64_t        upstream_us; /* time spent in attempts, all of them */
    uint64_t        end_us;      /* when it completed (rp_now_us), read once for
                                    on_complete and the access line; 0: not yet */
    uint64_t        req_body_bytes, resp_body_bytes, bytes_out;
    uint64_t        req_content_length;   /* when req_has_cl */
    struct event   *timer;       /* owned: connect/response timer */
    struct event   *deadline;    /* owned: request_ms */
    /* req_chunked, req_has_cl, req_has_te and req_content_length are set
     * by the downstream from its parser before rp_txn_start(). */
    unsigned        req_chunked:1, req_has_cl:1, req_has_te:1, req_done:1, req_head_sent:1,
                    expect_continue:1, head_request:1,
                    resp_head_sent:1, resp_done:1, up_reusable:1, replayed:1,
                    close_client:1, client_paused:1, up_paused:1, completed:1,
                    method_known:1, version_known:1,  /* the parser got that far */
                    ws:1,          /* a valid WebSocket upgrade on a WebSocket route */
                    ws_deflate:1,  /* the backend agreed to permessage-deflate */
                    ws_h2:1,       /* an HTTP/2 extended CONNECT (RFC 8441) for WebSocket */
                    ws_tunnel:1;   /* the tunnel opened (101 relayed) */
    char            client_ip[48]; /* the client, from a trusted proxy's
                                      X-Forwarded-For ("" when it is the peer) */
    uint16_t        ws_close_code;     /* the tunnel's close code (0: none) */
    uint8_t         ws_closed_by;      /* rp_ws_closer_t */
    uint64_t        ws_msgs_in, ws_msgs_out;   /* messages from the client, to it */
    void           *mod[RP_MOD_COUNT];   /* each module's private slot */
};

const char *rp_txn_state_name(rp_txn_state_t s);

/* Check a complete request head and derive host, path, origin, the request
 * id, Expect and whether the body is already complete (http.c).  0, or -1
 * with status, why, error and reason set. */
int rp_http_check_request(rp_txn_t *t);

/* Value of the first request header named name, or NULL; *len gets its length. */
const char *rp_txn_req_header(const rp_txn_t *txn, const char *name, size_t *len);

#endif
