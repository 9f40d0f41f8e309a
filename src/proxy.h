/* SPDX-License-Identifier: MIT */
/*
 * The transaction state machine (proxy.c): from a valid request head to the
 * end of the response.  A downstream (the HTTP/1 client connection, later
 * an HTTP/2 stream) creates the transaction, feeds it the request body and
 * tells it when the client can take more; the transaction answers through
 * the downstream's ops (revproxy/txn.h).  The upstream side is entirely
 * its own.
 */
#ifndef RP_PROXY_H
#define RP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include "revproxy/txn.h"

/* A new transaction for a downstream, holding a reference to the worker's
 * current snapshot.  State READ_HEAD. */
rp_txn_t *rp_txn_new(rp_worker_t *w, const rp_downstream_ops_t *ds, void *ds_ctx,
                     const rp_peer_t *peer);
/* Run on_complete and the access log if not done yet, release everything.
 * Called by the downstream, which owns the transaction. */
void rp_txn_free(rp_txn_t *t);
/* The head is complete: validate it (rp_http_check_request), decide, pick a
 * backend, connect; or answer an error. */
void rp_txn_start(rp_txn_t *t);
/* Answer with the proxy's own response (status, reason word) without
 * involving a backend: logs why and calls the downstream's send_error. */
void rp_txn_respond(rp_txn_t *t, int status, rp_close_t why, rp_error_t err,
                    const char *reason);
/* Request body bytes (already de-chunked).  Returns 0, -1 when
 * max_body_bytes is exceeded, or RP_BODY_NOMEM when memory ran out (the
 * caller answers 503). */
#define RP_BODY_NOMEM (-2)
int rp_txn_req_body(rp_txn_t *t, const char *at, size_t len);
/* The request body ended. */
void rp_txn_req_end(rp_txn_t *t);
/* May the downstream feed body bytes now? */
bool rp_txn_wants_body(const rp_txn_t *t);
/* Send the body bytes fed so far to the backend now.  True when it took
 * them all and the body may go on flowing at once. */
bool rp_txn_push_body(rp_txn_t *t);
/* The client's output drained below the low watermark. */
void rp_txn_client_drained(rp_txn_t *t);
/* The client side failed while the txn runs (bad body, body timeout):
 * answer status if no response was started, else abort. */
void rp_txn_client_error(rp_txn_t *t, int status, rp_close_t why, rp_error_t err,
                         const char *reason);
/* The client went away: drop the upstream side, nothing more is sent. */
void rp_txn_abort(rp_txn_t *t, rp_close_t why, rp_error_t err, const char *reason);
void rp_txn_set_state(rp_txn_t *t, rp_txn_state_t s);
/* A WebSocket tunnel that owned t ended: complete it (access line) and
 * free it. */
void rp_txn_tunnel_done(rp_txn_t *t);

/* Free the calling worker thread's cache of transaction objects. */
void rp_txn_cache_free(void);

/* Initialise the parser settings (once, before workers start). */
void rp_proxy_init(void);

#endif
