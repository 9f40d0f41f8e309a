/* SPDX-License-Identifier: MIT */
/*
 * The module hook table.  Modules are compiled in and listed once, in order,
 * in RP_MODULES below; the core calls every non-NULL hook of every module in
 * that order.  A module sees the transaction, the config snapshot and its own
 * state, never another module's.
 */
#ifndef REVPROXY_MODULE_H
#define REVPROXY_MODULE_H

#include <jansson.h>
#include "revproxy/types.h"

struct event_base;

/* The order of this list is the order hooks run in: ratelimit after the
 * router, so that a route may have its own limit. */
#define RP_MODULES(X) \
    X(router, ROUTER) \
    X(ratelimit, RATELIMIT) \
    X(health, HEALTH) \
    X(balancer, BALANCER) \
    X(metrics, METRICS)

#define RP_MOD_ID_(name, NAME) RP_MOD_##NAME,
enum rp_module_id { RP_MODULES(RP_MOD_ID_) RP_MOD_COUNT };
#undef RP_MOD_ID_

typedef enum rp_verdict {
    RP_CONTINUE = 0,  /* not mine to decide: next module */
    RP_RESPOND,       /* I set txn->status (404, 429, 503): answer now */
    RP_FAIL,          /* internal error: the core answers 500 and logs why */
    RP_PARK           /* select_backend only: backends are there but none
                         can take another connection now; wait in the
                         upstream's queue and ask again when woken */
} rp_verdict_t;

typedef rp_verdict_t rp_request_hook_fn(rp_txn_t *txn, void *state);
typedef void rp_notify_hook_fn(const rp_txn_t *txn, void *state);

/*
 * Every hook is optional and runs on a worker thread unless said otherwise;
 * hooks never block.
 *
 * configure: main thread, while a snapshot is built.  Read the module's own
 *   keys of root, check them against what the core already parsed in snap,
 *   and compile *state.  Every problem is added to errs with its JSON path;
 *   returns 0, or -1 after adding at least one error (*state is then ignored
 *   and release is not called).
 * release: the snapshot holding state is freed (last reference dropped),
 *   on whichever thread dropped it: a worker after a reload, or the main
 *   thread; it must not touch another thread's event base.
 * start/stop: a worker thread starts or stops, with the snapshot of the
 *   start (a reload does not call them again: the worker count, which is
 *   what they may depend on, cannot change by reload).  start returns 0, or -1
 *   after logging why; the modules started before it on that worker are
 *   then stopped (in reverse order) and start-up fails: no worker serves
 *   and revproxy exits with status 1.
 * on_accept: a client connection was accepted (before any TLS handshake
 *   or byte of HTTP); RP_RESPOND closes it at once.
 * on_request: the request head is complete and valid.  RP_RESPOND answers
 *   with txn->status at once.  The router leaves txn->route NULL when no
 *   route matches and the core answers 404 after the other modules.
 * select_backend: a backend is needed; set txn->backend.  Called again for
 *   every new attempt.  RP_RESPOND with 503 when none can be used.
 *   RP_PARK when eligible backends exist but every one is at its
 *   max_connections: the core parks the request in the upstream's queue
 *   (src/queue.h), or answers 503 queue_full with Retry-After when the
 *   queue is full or the upstream has none, or 503 queue_timeout when
 *   queue.timeout_ms passes first.  When capacity frees, one waiter is
 *   woken and select_backend is called again for it (it may park again,
 *   keeping its turn and its place).  The core also parks, without asking,
 *   a new request for an upstream whose queue is not empty, so waiters
 *   are served before newcomers.  From any other hook RP_PARK is an
 *   internal error (500).
 * on_upstream_result: an attempt ended (ok, connect error, timeout, bad
 *   response); a describes it.
 * on_response: the response head from the backend is complete.
 * on_complete: the transaction ends, whatever the outcome; exactly once.
 * main_start/main_stop: main thread, after the workers have started and
 *   before they stop, and around each reload (main_stop with the old
 *   snapshot, then main_start with the new one): work a module does on the main thread's event base
 *   (active health checks).  main_start returns 0, or -1 after logging
 *   why (start-up then fails).
 * dump: main thread; add the module's keys, with defaults filled in, to
 *   root (revproxy --dump-config).
 * keys: every config key name the module accepts (NULL-terminated), so
 *   tests can hold the documentation to the parser.
 */
typedef struct rp_module {
    const char *name;   /* config key and log tag */
    int  (*configure)(const json_t *root, rp_snapshot_t *snap, void **state,
                      rp_errs_t *errs);
    void (*release)(void *state);
    int  (*start)(rp_worker_t *w, void *state);
    void (*stop)(rp_worker_t *w, void *state);
    rp_verdict_t (*on_accept)(const rp_peer_t *peer, void *state);
    rp_request_hook_fn *on_request, *select_backend, *on_response;
    void (*on_upstream_result)(rp_txn_t *txn, void *state, const rp_attempt_t *a);
    rp_notify_hook_fn *on_complete;
    int  (*main_start)(struct event_base *base, void *state);
    void (*main_stop)(void *state);
    void (*dump)(const void *state, json_t *root);
    const char *const *keys;
} rp_module_t;

#define RP_MOD_DECL_(name, NAME) extern const rp_module_t rp_module_##name;
RP_MODULES(RP_MOD_DECL_)
#undef RP_MOD_DECL_

extern const rp_module_t *const rp_modules[RP_MOD_COUNT];

/* Dispatchers (modules/modules.c).  Verdict dispatchers record the deciding
 * module in txn->decided_by. */
int rp_modules_configure(const json_t *root, rp_snapshot_t *snap, rp_errs_t *errs);
void rp_modules_release(rp_snapshot_t *snap);
rp_verdict_t rp_modules_on_accept(const rp_peer_t *peer, rp_snapshot_t *snap);
rp_verdict_t rp_modules_on_request(rp_txn_t *txn);
rp_verdict_t rp_modules_select_backend(rp_txn_t *txn);
rp_verdict_t rp_modules_on_response(rp_txn_t *txn);
void rp_modules_on_upstream_result(rp_txn_t *txn, const rp_attempt_t *a);
void rp_modules_on_complete(const rp_txn_t *txn);
int rp_modules_start(rp_worker_t *w, rp_snapshot_t *snap);
int rp_modules_main_start(struct event_base *base, rp_snapshot_t *snap);
void rp_modules_main_stop(rp_snapshot_t *snap);
void rp_modules_stop(rp_worker_t *w, rp_snapshot_t *snap);
const char *rp_module_name(int id);
void rp_modules_dump(const rp_snapshot_t *snap, json_t *root);

#endif
