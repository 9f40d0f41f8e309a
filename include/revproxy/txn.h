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
#include "revproxy/module.h"
#include "revproxy/http.h"

typedef enum rp_txn_state {
    RP_TXN_READ_HEAD = 0, /* client head arriving; header timer armed (conn) */
    RP_TXN_DECIDE,        /* [transient] on_request hooks */
    RP_TXN_PICK,          /* [transient] select_backend; re-entered on replay */
    RP_TXN_CONNECT,       /* upstream conn pending, owned by the txn; connect timer */
    RP_TXN_WAIT_HEAD,     /* request head sent, body streaming; response timer */
    RP_TXN_RELAY,         /* response head sent to client; bodies flowing */
    RP_TXN_ERROR,         /* [transient] answer txn->status to the client */
    RP_TXN_DONE,          /* [transient] on_complete, log, free */
    RP_TXN_STATE_COUNT
} rp_txn_state_t;

/* Who or what ended the transaction, for logs and counters. */
typedef enum rp_close {
    RP_CLOSE_OK = 0,
    RP_CLOSE_CLIENT_ABORT,     /* client closed or reset */
    RP_CLOSE_CLIENT_TIMEOUT,   /* client too slow */
    RP_CLOSE_BAD_REQUEST,      /* malformed request */
    RP_CLOSE_LIMIT,            /* a limit of the limits section */
    RP_CLOSE_MODULE,           /* a module answered (404, 503 ...) */
    RP_CLOSE_UP_CONNECT,       /* backend connect failed or timed out */
    RP_CLOSE_UP_TIMEOUT,       /* backend did not answer in time */
    RP_CLOSE_UP_BAD,           /* malformed backend response */
    RP_CLOSE_UP_ABORT,         /* backend closed mid-response */
    RP_CLOSE_DEADLINE,         /* request_ms elapsed */
    RP_CLOSE_INTERNAL,
    RP_CLOSE_SHUTDOWN          /* revproxy stopped with the exchange in flight */
} rp_close_t;

typedef enum rp_attempt_result {
    RP_ATTEMPT_OK = 0,
    RP_ATTEMPT_CONNECT_ERROR,
    RP_ATTEMPT_CONNECT_TIMEOUT,
    RP_ATTEMPT_TIMEOUT,
    RP_ATTEMPT_BAD_RESPONSE,
    RP_ATTEMPT_RESET
} rp_attempt_result_t;

struct rp_attempt {
    const rp_backend_t  *backend;
    rp_attempt_result_t  result;
    bool                 reused;      /* connection came from the pool */
    uint64_t             duration_us;
};

struct rp_txn {
    char            id[65];      /* request id: in every log line and error body */
    rp_txn_state_t  state;       /* changed only by rp_txn_set_state() */
    rp_txn_state_t  where;       /* state it was in when it ended */
    rp_close_t      why;
    const char     *reason;      /* static text for the error log line */
    rp_worker_t    *worker;      /* borrowed */
    unsigned        worker_id;
    rp_conn_t      *client;      /* borrowed: the connection owns its txn */
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
    const rp_backend_t  *backend;   /* borrowed from snap */
    rp_upconn_t    *up;          /* owned from CONNECT until the response ends */
    int             status;      /* status sent (or to send) to the client */
    int             decided_by;  /* module id that answered, or -1 */
    unsigned        attempts;
    uint64_t        start_us;
    uint64_t        req_body_bytes, resp_body_bytes, bytes_out;
    uint64_t        req_content_length;   /* when req_has_cl */
    struct event   *timer;       /* owned: connect/response timer */
    struct event   *deadline;    /* owned: request_ms */
    unsigned        req_chunked:1, req_has_cl:1, req_done:1, req_head_sent:1,
                    expect_continue:1, client_keepalive:1, head_request:1,
                    resp_head_sent:1, resp_chunked_out:1, resp_close_delimited:1,
                    resp_done:1, up_reusable:1, replayed:1, close_client:1,
                    client_paused:1, up_paused:1, completed:1,
                    method_known:1, version_known:1;  /* the parser got that far */
    void           *mod[RP_MOD_COUNT];   /* each module's private slot */
};

const char *rp_txn_state_name(rp_txn_state_t s);
const char *rp_close_name(rp_close_t c);

/* Value of the first request header named name, or NULL; *len gets its length. */
const char *rp_txn_req_header(const rp_txn_t *txn, const char *name, size_t *len);

#endif
