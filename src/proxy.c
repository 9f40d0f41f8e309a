/* SPDX-License-Identifier: MIT */
/*
 * The transaction state machine (see proxy.h and revproxy/txn.h).
 *
 *   DECIDE -> PICK -> CONNECT -> WAIT_HEAD -> RELAY -> DONE
 *                 \______________________________/
 *                  any failure -> ERROR (answer) or abort
 *
 * Request bodies are streamed from the downstream into the upstream
 * connection, response bodies from the upstream parser into the downstream;
 * each side stops its producer when the other side's output passes
 * the downstream's high watermark (RP_WBUF_HIGH on HTTP/1) and resumes it
 * at its low one, so memory per transaction
 * stays bounded whatever the body sizes.
 *
 * Nothing here knows how the client speaks: the response goes out through
 * the downstream's ops (txn->ds), which own the client-side framing.
 *
 * Parser callbacks only record and copy; decisions that can end the
 * transaction are taken after llhttp_execute() returns.
 */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include "revproxy/bstate.h"
#include "revproxy/cidr.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "hbuild.h"
#include "io.h"
#include "pool.h"
#include "proxy.h"
#include "queue.h"
#include "worker.h"
#include "ws.h"
#include "util.h"

/* Response-side parser state, kept next to the txn. */
typedef struct rp_txn_ext {
    rp_txn_t  t;
    llhttp_t  rp;              /* response parser */
    bool      interim;         /* parsing a 1xx response */
    bool      interim_done;    /* a 1xx ended: the parser starts afresh */
    bool      resp_msg_done;
    bool      resp_bad;
    rp_error_t resp_bad_error; /* the word when resp_bad */
    const char *resp_bad_reason;
    bool        resp_oom;          /* resp_bad because memory ran out */
    bool      resp_started;    /* a response byte arrived on this attempt */
    bool      resp_in_body;    /* head done: header callbacks are trailers */
    bool      attempt_open;    /* started and not yet reported */
    int       attempt_status;  /* status of this attempt's response head */
    size_t    resp_trailer_bytes;
    size_t    req_queued;      /* bytes of request queued on this attempt */
    uint64_t  attempt_start_us;
    unsigned  attempt_backend;  /* identity the open attempt counts against */
    char      codings[128];    /* response transfer-codings before chunked */
    struct event timer_ev;     /* t.timer points here */
    struct event deadline_ev;  /* t.deadline points here */
    rp_qwait_t qw;             /* its place in the upstream's queue */
    bool      circuit_held;    /* one of the upstream's circuit places */
    bool      resp_retry;      /* the response head's status is retried */
    bool      ws_switch;       /* a valid 101: the tunnel takes over after the head */
    bool      continue_sent;   /* the client got its 100 (Continue) */
    unsigned  retry_backoff;   /* ms, with resp_retry */
    bool      body_kept;       /* body_copy holds every body byte read */
    struct evbuffer *body_copy;   /* owned: the body so far, to send again */
    bool      worker_counted;  /* in worker->active_txns */
    struct rp_txn_ext *next_free;
} rp_txn_ext_t;

/* Freed transactions are kept per worker (with their head buffers) and
 * reused, which saves half a dozen allocations per request.  Enough for
 * the streams of several busy HTTP/2 connections (eight clients with 64
 * streams each); at most about 3.6 MiB stays after a burst: 512 of 1904
 * bytes, with two head buffers of up to 2 KiB and two field arrays of up
 * to 32 entries (20 bytes each). */
#define TXN_CACHE_MAX 512
#define TXN_CACHE_BUF_MAX 2048
#define TXN_CACHE_FIELDS_MAX 32

typedef struct txn_cache {
    rp_txn_ext_t *head;
    unsigned      n;
} txn_cache_t;
static _Thread_local txn_cache_t txn_cache;

#define EXT(t) ((rp_txn_ext_t *)(t))

static llhttp_settings_t resp_settings;

static const char *const state_names[RP_TXN_STATE_COUNT] = {
    "read_head", "decide", "pick", "queue", "retry", "connect", "wait_head", "relay", "tunnel",
    "error", "done"
};

const char *
rp_txn_state_name(rp_txn_state_t s)
{
    return s < RP_TXN_STATE_COUNT ? state_names[s] : "?";
}

#define WORD_(e, w) w,
static const char *const close_names[] = { RP_TERMINATIONS(WORD_) };
static const char *const error_names[] = { RP_ERRORS(WORD_) };
static const char *const attempt_names[] = { RP_ATTEMPT_RESULTS(WORD_) };
#undef WORD_

const char *
rp_close_name(rp_close_t c)
{
    return (size_t)c < RP_ARRAY_LEN(close_names) ? close_names[c] : "?";
}

const char *
rp_error_name(rp_error_t e)
{
    return (size_t)e < RP_ARRAY_LEN(error_names) ? error_names[e] : "?";
}

const char *
rp_attempt_result_name(rp_attempt_result_t r)
{
    return (size_t)r < RP_ARRAY_LEN(attempt_names) ? attempt_names[r] : "?";
}

void
rp_txn_set_state(rp_txn_t *t, rp_txn_state_t s)
{
    rp_log(RP_LOG_DEBUG, t, "state %s -> %s", rp_txn_state_name(t->state), rp_txn_state_name(s));
    t->state = s;
}

const char *
rp_txn_req_header(const rp_txn_t *t, const char *name, size_t *len)
{
    const rp_hfield_t *f = rp_http_find(&t->req, name, NULL);
    if (f == NULL)
        return NULL;
    if (len != NULL)
        *len = f->value_len;
    return rp_hf_value(&t->req, f);
}

/* The timeouts that apply: the route's once one is chosen. */
static const rp_timeouts_t *
tmo(const rp_txn_t *t)
{
    return t->route != NULL ? &t->route->timeouts : &t->snap->timeouts;
}

/* The retry settings that apply: the route's (the upstream's, with the
 * route's overrides). */
static const rp_retry_cfg_t *
rcfg(const rp_txn_t *t)
{
    return t->route != NULL ? &t->route->retry : &t->upstream->retry;
}

static const struct timeval *
ms_tv(const rp_txn_t *t, unsigned ms)
{
    return rp_timeout_tv(t->worker->base, ms);
}

/* ---- lifecycle ---- */

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);
typedef enum { RETRY_NO, RETRY_YES, RETRY_NO_BUDGET } retry_verdict_t;
static retry_verdict_t retry_decide(rp_txn_t *t, bool written, unsigned *backoff_ms);
static void retry_schedule(rp_txn_t *t, unsigned backoff_ms, const char *why);

/* The buffers a cached transaction keeps are poisoned with it: a pointer
 * kept into a freed request's head is reported, not read as the next
 * one's. */
static void
head_poison(rp_http_head_t *h, bool on)
{
    size_t fb = h->cap_fields * sizeof *h->fields;
    if (on) {
        if (h->buf != NULL)
            RP_POISON(h->buf, h->cap);
        if (h->fields != NULL)
            RP_POISON(h->fields, fb);
    } else {
        if (h->buf != NULL)
            RP_UNPOISON(h->buf, h->cap);
        if (h->fields != NULL)
            RP_UNPOISON(h->fields, fb);
    }
    (void)fb;
}

rp_txn_t *
rp_txn_new(rp_worker_t *w, const rp_downstream_ops_t *ds, void *ds_ctx, const rp_peer_t *peer)
{
    rp_txn_ext_t *x = txn_cache.head;
    rp_http_head_t req, resp;
    size_t limit = w->snap->limits.max_header_bytes;
    if (x != NULL) {
        RP_UNPOISON(x, sizeof *x);
        txn_cache.head = x->next_free;
        txn_cache.n--;
        req = x->t.req;
        resp = x->t.resp;
        head_poison(&req, false);
        head_poison(&resp, false);
        memset(x, 0, sizeof *x);
        req.limit = resp.limit = limit;
    } else {
        x = calloc(1, sizeof *x);
        if (x == NULL)
            return NULL;
        rp_http_head_init(&req, limit);
        rp_http_head_init(&resp, limit);
    }
    rp_txn_t *t = &x->t;
    t->req = req;
    t->resp = resp;
    t->ds = ds;
    t->ds_ctx = ds_ctx;
    t->peer = peer;
    t->worker = w;
    t->worker_id = w->id;
    t->snap = rp_snapshot_ref(w->snap);
    t->state = RP_TXN_READ_HEAD;
    t->decided_by = -1;
    t->start_us = rp_now_us();
    rp_request_id_new(t->id);
    evtimer_assign(&x->timer_ev, w->base, timer_cb, t);
    evtimer_assign(&x->deadline_ev, w->base, deadline_cb, t);
    t->timer = &x->timer_ev;
    t->deadline = &x->deadline_ev;
    return t;
}

/* Out of the upstream's queue, if in it. */
static void
unpark(rp_txn_t *t)
{
    rp_queue_leave(t->worker, &EXT(t)->qw);
}

/* The exchange is over for the limits (the upstream's circuit, the
 * worker's cap): before its last bytes go to the client, so that a
 * client sending its next request at once finds the place free.  Once. */
static void
release_places(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    if (x->circuit_held) {
        x->circuit_held = false;
        rp_circuit_leave(t->worker, t->upstream);
    }
    if (x->worker_counted) {
        x->worker_counted = false;
        t->worker->active_txns--;
    }
}

/* Report the attempt in progress, once: every attempt started reaches
 * on_upstream_result exactly once, whatever ends it. */
static void
end_attempt(rp_txn_t *t, rp_attempt_result_t r)
{
    rp_txn_ext_t *x = EXT(t);
    if (!x->attempt_open)
        return;
    x->attempt_open = false;
    atomic_fetch_sub_explicit(&rp_bstate(x->attempt_backend)->active, 1, memory_order_relaxed);
    rp_attempt_t a = {
        .backend = t->backend,
        .result = r,
        .status = x->attempt_status,
        .reused = t->up != NULL && t->up->uses > 0,
        .duration_us = rp_now_us() - x->attempt_start_us,
    };
    if (t->nresults < RP_TXN_RESULTS_MAX) {
        t->results[t->nresults] = (uint8_t)r;
        t->statuses[t->nresults] = (uint16_t)x->attempt_status;
    }
    t->nresults++;
    t->upstream_us += a.duration_us;
    rp_modules_on_upstream_result(t, &a);
}

/* Give up the upstream connection.  While a request body is unfinished on
 * it, the close is abortive (RST): the backend must see an aborted
 * request, never a message that looks complete or a connection it could
 * keep using. */
static void
drop_upstream(rp_txn_t *t)
{
    if (t->up == NULL)
        return;
    if (t->req_head_sent && !t->req_done)
        rp_upconn_abort(t->up);
    else
        rp_upconn_close(t->up);
    t->up = NULL;
}

static void
complete(rp_txn_t *t)
{
    if (t->completed)
        return;
    t->completed = 1;
    t->end_us = rp_now_us();
    if (t->where == RP_TXN_READ_HEAD && t->state != RP_TXN_READ_HEAD)
        t->where = t->state;
    rp_modules_on_complete(t);
    rp_log_access(t);
}

void
rp_txn_free(rp_txn_t *t)
{
    if (t == NULL)
        return;
    unpark(t);
    end_attempt(t, RP_ATTEMPT_ABORTED);
    drop_upstream(t);
    complete(t);
    rp_txn_ext_t *xx = EXT(t);
    if (xx->body_copy != NULL) {
        evbuffer_free(xx->body_copy);
        xx->body_copy = NULL;
    }
    release_places(t);
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    rp_snapshot_unref(t->snap);
    t->snap = NULL;
    rp_txn_ext_t *x = EXT(t);
    if (txn_cache.n < TXN_CACHE_MAX) {
        /* Large head buffers are not kept: they would hold the cache's
         * memory up long after one large head. */
        if (t->req.cap > TXN_CACHE_BUF_MAX || t->req.cap_fields > TXN_CACHE_FIELDS_MAX)
            rp_http_head_free(&t->req);
        if (t->resp.cap > TXN_CACHE_BUF_MAX || t->resp.cap_fields > TXN_CACHE_FIELDS_MAX)
            rp_http_head_free(&t->resp);
        rp_http_head_reset(&t->req);
        rp_http_head_reset(&t->resp);
        x->next_free = txn_cache.head;
        txn_cache.head = x;
        txn_cache.n++;
        head_poison(&t->req, true);
        head_poison(&t->resp, true);
        RP_POISON(x, sizeof *x);
        return;
    }
    rp_http_head_free(&t->req);
    rp_http_head_free(&t->resp);
    free(x);
}

void
rp_txn_cache_free(void)
{
    rp_txn_ext_t *x;
    while ((x = txn_cache.head) != NULL) {
        RP_UNPOISON(x, sizeof *x);
        txn_cache.head = x->next_free;
        head_poison(&x->t.req, false);
        head_poison(&x->t.resp, false);
        rp_http_head_free(&x->t.req);
        rp_http_head_free(&x->t.resp);
        free(x);
    }
    txn_cache.n = 0;
}

/* End the transaction normally: the response has been queued entirely. */
static void
finish(rp_txn_t *t)
{
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    if (t->up != NULL) {
        end_attempt(t, RP_ATTEMPT_OK);
        if (t->up_reusable && t->req_done) {
            t->up->uses++;
            rp_pool_release(t->up, t->upstream);
        } else {
            rp_upconn_close(t->up);
        }
        t->up = NULL;
    }
    t->where = t->state;
    rp_txn_set_state(t, RP_TXN_DONE);
    release_places(t);
    t->ds->done(t, t->req_done && !t->close_client);
}

/* The "error" field of a log line. */
static void
error_field(char *buf, size_t cap, size_t *pos, rp_error_t err)
{
    const char *w = rp_error_name(err);
    memcpy(buf + *pos, "\"error\":", 8);
    *pos += 8;
    rp_json_str(buf, cap, pos, w, strlen(w));
}

void
rp_txn_respond(rp_txn_t *t, int status, rp_close_t why, rp_error_t err, const char *reason)
{
    t->status = status ? status : 500;
    t->why = why != RP_CLOSE_OK ? why : RP_CLOSE_INTERNAL;
    t->error = err;
    t->reason = reason;
    if (t->state != RP_TXN_READ_HEAD) {
        t->where = t->state;
        rp_txn_set_state(t, RP_TXN_ERROR);
    }
    char extra[96];
    size_t pos = 0;
    error_field(extra, sizeof extra, &pos, err);
    rp_log_fields(t->status >= 500 ? RP_LOG_WARN : RP_LOG_INFO, t, extra, "%d %s: %s",
                  t->status, rp_http_reason(t->status), reason ? reason : "error");
    release_places(t);
    t->ds->send_error(t);
}

/* Something failed on the upstream side or a deadline passed.  Answer with
 * status if nothing was sent yet, else cut the client's response so that
 * it cannot pass for complete. */
static void
fail(rp_txn_t *t, int status, rp_close_t why, rp_error_t err, const char *reason)
{
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    unpark(t);
    end_attempt(t, RP_ATTEMPT_ABORTED);
    drop_upstream(t);
    if (!t->resp_head_sent) {
        rp_txn_respond(t, status, why, err, reason);
        return;
    }
    t->why = why;
    t->error = err;
    t->reason = reason;
    t->where = t->state;
    char extra[96];
    size_t pos = 0;
    error_field(extra, sizeof extra, &pos, err);
    rp_log_fields(RP_LOG_WARN, t, extra, "response aborted: %s", reason);
    rp_txn_set_state(t, RP_TXN_DONE);
    t->ds->abort(t);
}

void
rp_txn_abort(rp_txn_t *t, rp_close_t why, rp_error_t err, const char *reason)
{
    if (t->completed)
        return;
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    unpark(t);
    end_attempt(t, RP_ATTEMPT_ABORTED);
    drop_upstream(t);
    if (t->why == RP_CLOSE_OK) {
        t->why = why;
        t->error = err;
        t->reason = reason;
    }
    t->where = t->state;
    rp_log(RP_LOG_DEBUG, t, "transaction aborted: %s", reason);
}

void
rp_txn_client_error(rp_txn_t *t, int status, rp_close_t why, rp_error_t err, const char *reason)
{
    t->close_client = 1;
    t->ds->close_after(t);
    fail(t, status, why, err, reason);
}

/* ---- request side ---- */

/* Serialise the request head for the backend: -1 when out of memory
 * (nothing written). */
static int
write_request_head(rp_txn_t *t, struct evbuffer *out)
{
    static const char *const replaced[] = {
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "x-request-id", "expect", "http2-settings", NULL };
    rp_http_head_t *h = &t->req;
    rp_http_mark_hop_by_hop(h, replaced);

    /* Host: as the client named it (the absolute-form authority wins),
     * else the backend's address. */
    const char *host = NULL;
    size_t host_len = 0;
    const char *target = h->buf + h->target_off;
    const char *auth;
    size_t auth_len;
    const char *o;
    size_t ol;
    if (target[0] != '/' && target[0] != '*'
        && rp_http_split_absolute(target, h->target_len, &auth, &auth_len, &o, &ol) == 0) {
        host = auth;
        host_len = auth_len;
    } else {
        host = rp_txn_req_header(t, "host", &host_len);
    }
    /* The backend as configured: its host name when it has one. */
    const char *configured = t->upstream->backends[t->backend->index].addr.text;
    if (host == NULL || host_len == 0) {
        host = configured;
        host_len = strlen(host);
    }

    /* A WebSocket upgrade keeps its Upgrade; extensions the relay cannot
     * carry leave the offer. */
    char exts[512];
    size_t exts_len = 0;
    if (t->ws) {
        for (unsigned i = 0; i < h->nfields; i++) {
            rp_hfield_t *f = &h->fields[i];
            if (!rp_hf_is(h, f, "sec-websocket-extensions"))
                continue;
            f->flags |= RP_HF_DROP;
            if (exts_len + 2 < sizeof exts) {
                if (exts_len > 0) {
                    memcpy(exts + exts_len, ", ", 2);
                    exts_len += 2;
                }
                size_t n = rp_ws_filter_extensions(rp_hf_value(h, f), f->value_len,
                                                   exts + exts_len, sizeof exts - exts_len);
                if (n == 0 && exts_len >= 2)
                    exts_len -= 2;
                exts_len += n;
            }
        }
    }

    head_builder_t b;
    if (!hb_begin(&b, out, h->len + 4 * (size_t)h->nfields + 2 * host_len + exts_len + HEAD_EXTRA))
        return -1;
    hb_str(&b, rp_http_method_str(h->method));
    HB_LIT(&b, " ");
    if (t->origin_len == 0 || t->origin[0] == '?')
        HB_LIT(&b, "/");   /* absolute form without a path */
    hb_put(&b, t->origin, t->origin_len);
    HB_LIT(&b, " HTTP/1.1\r\nHost: ");
    hb_put(&b, host, host_len);
    HB_LIT(&b, "\r\n");
    hb_fields(&b, h);

    /* X-Forwarded-For: every value received, joined, then the client. */
    HB_LIT(&b, "X-Forwarded-For: ");
    for (unsigned i = 0; i < h->nfields; i++) {
        const rp_hfield_t *f = &h->fields[i];
        if (f->value_len > 0 && rp_hf_is(h, f, "x-forwarded-for")) {
            hb_put(&b, rp_hf_value(h, f), f->value_len);
            HB_LIT(&b, ", ");
        }
    }
    hb_str(&b, t->peer->ip);
    if (t->peer->secure)
        HB_LIT(&b, "\r\nX-Forwarded-Proto: https\r\n");
    else
        HB_LIT(&b, "\r\nX-Forwarded-Proto: http\r\n");
    if (host != configured) {
        HB_LIT(&b, "X-Forwarded-Host: ");
        hb_put(&b, host, host_len);
        HB_LIT(&b, "\r\n");
    }
    HB_LIT(&b, "X-Request-Id: ");
    hb_str(&b, t->id);
    HB_LIT(&b, "\r\n");
    if (t->ws) {
        HB_LIT(&b, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
        if (exts_len > 0) {
            HB_LIT(&b, "Sec-WebSocket-Extensions: ");
            hb_put(&b, exts, exts_len);
            HB_LIT(&b, "\r\n");
        }
    }
    if (t->req_chunked) {
        HB_LIT(&b, "Transfer-Encoding: chunked\r\n");
    } else if (t->req_has_cl) {
        HB_LIT(&b, "Content-Length: ");
        hb_uint(&b, t->req_content_length);
        HB_LIT(&b, "\r\n");
    }
    HB_LIT(&b, "\r\n");
    hb_end(&b);
    return 0;
}

bool
rp_txn_wants_body(const rp_txn_t *t)
{
    return t->req_head_sent && !t->req_done && !t->client_paused && t->up != NULL;
}

int
rp_txn_req_body(rp_txn_t *t, const char *at, size_t len)
{
    const rp_snapshot_t *s = t->snap;
    if (len == 0)
        return 0;   /* a zero-size chunk would end the re-framed body */
    t->req_body_bytes += len;
    if (s->limits.max_body_bytes > 0 && t->req_body_bytes > s->limits.max_body_bytes)
        return -1;
    rp_txn_ext_t *x = EXT(t);
    if (x->body_kept) {
        /* Kept to be sent again by a retry, up to retry.max_body_bytes. */
        if (t->req_body_bytes > rcfg(t)->max_body_bytes) {
            x->body_kept = false;
            if (x->body_copy != NULL) {
                evbuffer_free(x->body_copy);
                x->body_copy = NULL;
            }
        } else {
            if (x->body_copy == NULL)
                x->body_copy = evbuffer_new();
            if (x->body_copy == NULL || evbuffer_add(x->body_copy, at, len) < 0)
                x->body_kept = false;
        }
    }
    if (t->up == NULL)
        return 0;
    struct evbuffer *out = bufferevent_get_output(t->up->bev);
    if (t->req_chunked ? rp_chunk_add(out, at, len) == 0 : evbuffer_add(out, at, len) < 0) {
        rp_oom_note("a request body (answered 503)");
        return RP_BODY_NOMEM;
    }
    if (evbuffer_get_length(out) > t->ds->req_high)
        t->client_paused = 1;
    return 0;
}

bool
rp_txn_push_body(rp_txn_t *t)
{
    if (t->up == NULL)
        return false;
    /* If the backend took everything, the body may go on at once instead
     * of waiting for a write event. */
    struct evbuffer *out = bufferevent_get_output(t->up->bev);
    rp_bev_flush(t->up->bev);
    if (!t->client_paused || evbuffer_get_length(out) > t->ds->req_low)
        return false;
    t->client_paused = 0;
    return true;
}

/* The end of a chunked request body could not be queued: the backend
 * may have part of the body without its end, so its connection is reset
 * (drop_upstream would go by req_done, already set); a response already
 * whole stands, else the client gets 503. */
static void
terminator_failed(rp_txn_t *t)
{
    rp_oom_note("the end of a request body (backend connection reset)");
    bool answered = EXT(t)->resp_msg_done;
    end_attempt(t, answered ? RP_ATTEMPT_OK : RP_ATTEMPT_LOCAL_ERROR);
    rp_upconn_abort(t->up);
    t->up = NULL;
    if (answered)
        finish(t);
    else
        fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, "out of memory for the request body");
}

void
rp_txn_req_end(rp_txn_t *t)
{
    t->req_done = 1;
    if (t->up != NULL && t->req_chunked
        && evbuffer_add(bufferevent_get_output(t->up->bev), "0\r\n\r\n", 5) < 0) {
        terminator_failed(t);
        return;
    }
    if (EXT(t)->resp_msg_done) {
        /* The backend answered before the body ended and the response is
         * complete: now the exchange is over. */
        finish(t);
        return;
    }
    if (t->state == RP_TXN_WAIT_HEAD && !t->resp_head_sent) {
        rp_event_add(t->timer, ms_tv(t, tmo(t)->upstream_response_ms));
    }
}

/* ---- response side: parser callbacks ---- */

static int
resp_bad(rp_txn_t *t, const char *reason)
{
    EXT(t)->resp_bad = true;
    EXT(t)->resp_bad_reason = reason;
    return HPE_USER;
}

/* A response head function failed (rc): too large, or no memory for it
 * (the proxy's failing, not the backend's). */
static int
resp_head_error(rp_txn_t *t, int rc)
{
    if (rc == RP_HEAD_NOMEM) {
        EXT(t)->resp_oom = true;
        return resp_bad(t, "out of memory for the response head");
    }
    return resp_bad(t, "response head larger than limits.max_header_bytes");
}

static int
on_r_message_begin(llhttp_t *p)
{
    rp_txn_t *t = p->data;
    rp_http_head_reset(&t->resp);
    EXT(t)->resp_in_body = false;
    return 0;
}

/* Response trailers are dropped like request trailers (the body is
 * re-framed), within the head size limit. */
static int
resp_trailer(rp_txn_t *t, size_t len)
{
    rp_txn_ext_t *x = EXT(t);
    x->resp_trailer_bytes += len;
    if (x->resp_trailer_bytes > t->snap->limits.max_header_bytes)
        return resp_bad(t, "response trailer larger than limits.max_header_bytes");
    return 0;
}

static int
on_r_status(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    int rc = rp_http_head_add_target(&t->resp, at, len);
    if (rc < 0)
        return resp_head_error(t, rc);
    return 0;
}

static int
on_r_header_field(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    if (EXT(t)->resp_in_body)
        return resp_trailer(t, len);
    if (t->resp.last_cb != 1 && t->resp.nfields >= t->snap->limits.max_headers)
        return resp_bad(t, "response has more header fields than limits.max_headers");
    int rc = rp_http_head_add_name(&t->resp, at, len);
    if (rc < 0)
        return resp_head_error(t, rc);
    return 0;
}

static int
on_r_header_value(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    if (EXT(t)->resp_in_body)
        return resp_trailer(t, len);
    int rc = rp_http_head_add_value(&t->resp, at, len);
    if (rc < 0)
        return resp_head_error(t, rc);
    return 0;
}

static int
on_r_headers_complete(llhttp_t *p)
{
    rp_txn_t *t = p->data;
    rp_txn_ext_t *x = EXT(t);
    int hrc = rp_http_head_finish(&t->resp);
    if (hrc < 0)
        return resp_head_error(t, hrc);
    if (!rp_http_names_ok(&t->resp))
        return resp_bad(t, "response header field without a name");
    t->resp.status = p->status_code;
    t->resp.major = p->http_major;
    t->resp.minor = p->http_minor;
    if (p->http_major != 1)
        return resp_bad(t, "response is not HTTP/1.x");
    if (p->status_code == 101) {
        if (!t->ws)
            return resp_bad(t, "unrequested protocol switch (101)");
        const char *why = NULL;
        int rc = rp_ws_check_response(t, &why);
        if (rc == RP_WS_NOMEM) {
            x->resp_oom = true;
            return resp_bad(t, why);
        }
        if (rc < 0) {
            x->resp_bad_error = RP_ERR_UPSTREAM_BAD_HANDSHAKE;
            return resp_bad(t, why);
        }
        if (rp_modules_on_response(t) != RP_CONTINUE)
            return resp_bad(t, "response refused by a module");
        x->attempt_status = 101;
        x->ws_switch = true;
        return HPE_PAUSED;   /* what follows the head is WebSocket frames */
    }
    if (p->status_code < 100 || p->status_code > 999)
        return resp_bad(t, "invalid status code");
    x->resp_in_body = true;
    if (t->ws_h2 && p->status_code >= 200 && p->status_code < 300) {
        /* A 2xx to an extended CONNECT would tell the HTTP/2 client its
         * tunnel is open: without a 101 it is not. */
        x->resp_bad_error = RP_ERR_UPSTREAM_BAD_HANDSHAKE;
        return resp_bad(t, "a WebSocket upgrade answered 2xx without switching protocols");
    }
    if (p->status_code < 200) {
        /* Interim responses are dropped: the proxy answered any Expect
         * itself, and 103 hints are optional.  A 1xx ends with its head
         * whatever framing fields it carries (RFC 9112 6.3): bytes after
         * it belong to the next response, never to a body. */
        x->interim = true;
        return 1;
    }
    x->attempt_status = p->status_code;
    if (rp_retry_on_status(rcfg(t), p->status_code)) {
        unsigned backoff = 0;
        retry_verdict_t v = retry_decide(t, true, &backoff);
        if (v == RETRY_YES) {
            /* The response is dropped and the request tried again. */
            x->resp_retry = true;
            x->retry_backoff = backoff;
            return HPE_PAUSED;
        }
        if (v == RETRY_NO_BUDGET) {
            rp_log(RP_LOG_DEBUG, t, "not retrying status %d: the retry budget of upstream %s is spent",
                   p->status_code, t->upstream->name);
            t->error = RP_ERR_RETRY_BUDGET_EXHAUSTED;
        }
    }
    rp_resp_framing_t f = { 0 };
    f.has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    f.no_body = t->head_request || p->status_code == 204 || p->status_code == 304;
    f.length = f.has_length ? p->content_length : 0;
    size_t ncodings = 0;
    bool chunked_last = false, chunked_twice = false;
    int te = -1;
    if (!f.no_body && (p->flags & F_TRANSFER_ENCODING) != 0)
        te = rp_http_transfer_codings(&t->resp, &ncodings, &chunked_last, &chunked_twice);
    if (te == -2)
        return resp_bad(t, "malformed Transfer-Encoding in a response");
    if (te == 0 && chunked_last != ((p->flags & F_CHUNKED) != 0))
        return resp_bad(t, "Transfer-Encoding the parser reads otherwise");
    if (te == 0) {
        /* Codings the proxy does not undo travel on, the body re-chunked
         * under them: those before a final chunked, or all of them when
         * the last is not chunked and the body runs to the connection's
         * end (RFC 9112 6.3). */
        if (chunked_twice)
            return resp_bad(t, "chunked applied more than once in a response");
        size_t keep = chunked_last ? ncodings - 1 : ncodings;
        if (keep > 0) {
            f.codings_len = rp_http_codings_join(&t->resp, keep, x->codings, sizeof x->codings);
            if (f.codings_len == 0)
                return resp_bad(t, "response Transfer-Encoding too long");
            f.codings = x->codings;
        }
    }
    if (rp_modules_on_response(t) != RP_CONTINUE)
        return resp_bad(t, "response refused by a module");
    static const char *const replaced[] = { "x-request-id", NULL };
    rp_http_mark_hop_by_hop(&t->resp, replaced);
    t->status = p->status_code;
    if (x->body_copy != NULL) {
        /* No retry once the client gets a response: the copy goes. */
        evbuffer_free(x->body_copy);
        x->body_copy = NULL;
        x->body_kept = false;
    }
    int sent = t->ds->send_head(t, &f);
    if (sent == RP_SEND_NOMEM) {
        x->resp_oom = true;
        return resp_bad(t, "out of memory for the response head");
    }
    if (sent < 0) {
        x->resp_bad = true;
        x->resp_bad_error = RP_ERR_UPSTREAM_TRANSFER_CODING;
        x->resp_bad_reason = "response transfer-coding the client cannot take";
        return HPE_USER;
    }
    t->resp_head_sent = 1;
    evtimer_del(t->timer);
    rp_reader_set_timeout(&t->up->rd, tmo(t)->upstream_response_ms);
    rp_txn_set_state(t, RP_TXN_RELAY);
    return f.no_body ? 1 : 0;
}

static int
on_r_body(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    if (len == 0)
        return 0;
    if (!t->resp_head_sent)
        return resp_bad(t, "response body before a final response head");
    if (t->ds->send_body(t, at, len) < 0) {
        EXT(t)->resp_oom = true;
        return resp_bad(t, "out of memory for the response body");
    }
    t->resp_body_bytes += len;
    return 0;
}

static int
on_r_message_complete(llhttp_t *p)
{
    rp_txn_t *t = p->data;
    rp_txn_ext_t *x = EXT(t);
    if (x->interim) {
        /* The final response starts on a fresh parser: nothing of the
         * interim one (Connection: close, HTTP/1.0) may carry over. */
        x->interim_done = true;
        return HPE_PAUSED;
    }
    x->resp_msg_done = true;
    t->up_reusable = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;
}

void
rp_proxy_init(void)
{
    llhttp_settings_init(&resp_settings);
    resp_settings.on_message_begin = on_r_message_begin;
    resp_settings.on_status = on_r_status;
    resp_settings.on_header_field = on_r_header_field;
    resp_settings.on_header_value = on_r_header_value;
    resp_settings.on_headers_complete = on_r_headers_complete;
    resp_settings.on_body = on_r_body;
    resp_settings.on_message_complete = on_r_message_complete;
}

/* ---- response side: driving the parser ---- */

static void start_attempt(rp_txn_t *t);

/* How long a pooled connection may have been idle and still carry a
 * request that must not be sent twice: a backend's keep-alive timeout may
 * close an older one while the request is on the wire, and such a request
 * cannot be replayed. */
#define NONIDEMPOTENT_MAX_IDLE_US 1000000u

/* Bytes of the request already handed to the kernel on this attempt. */
static bool
request_written(const rp_txn_t *t)
{
    return t->up != NULL
           && evbuffer_get_length(bufferevent_get_output(t->up->bev)) < EXT(t)->req_queued;
}

static bool
may_replay(const rp_txn_t *t)
{
    /* A reused connection that failed before any response byte: the backend
     * most likely closed it while idle.  Replay once, on a new connection,
     * when no body byte has been consumed (so the request can be sent again
     * whole), and only if the backend cannot have acted on it: nothing was
     * written, or the method is idempotent.  A POST that reached a backend
     * is never sent twice. */
    return t->up != NULL && t->up->uses > 0 && !EXT(t)->resp_started && !t->replayed
           /* a try like any other while retries are on; the one replay
            * stays when they are off */
           && t->attempts <= (rcfg(t)->max_retries > 0 ? rcfg(t)->max_retries : 1)
           && t->req_body_bytes == 0
           && (!request_written(t) || rp_http_method_idempotent(t->req.method));
}

static void
replay(rp_txn_t *t)
{
    rp_log(RP_LOG_INFO, t, "reused upstream connection failed before responding; replaying once");
    end_attempt(t, RP_ATTEMPT_RESET);
    rp_upconn_close(t->up);
    t->up = NULL;
    t->replayed = 1;
    t->req_head_sent = 0;
    evtimer_del(t->timer);
    start_attempt(t);
}

/* ---- retries (retry.h) ---- */

/* A per-thread generator for backoff jitter (xorshift64*), seeded from
 * the clock and the thread. */
static uint64_t
jitter_rand(void)
{
    static _Thread_local uint64_t s;
    if (s == 0)
        s = (rp_now_us() ^ (uint64_t)(uintptr_t)&s) | 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

/* May the attempt that just failed be followed by another?  written: a
 * byte of the request reached the backend.  Takes a retry from the
 * upstream's budget when the answer is yes. */
static retry_verdict_t
retry_decide(rp_txn_t *t, bool written, unsigned *backoff_ms)
{
    if (t->upstream == NULL)
        return RETRY_NO;
    const rp_retry_cfg_t *c = rcfg(t);
    if (c->max_retries == 0 || t->attempts > c->max_retries)
        return RETRY_NO;
    if (t->ds->client_gone(t))
        return RETRY_NO;   /* nobody is waiting for the answer */
    rp_retry_case_t rc = {
        .idempotent = rp_http_method_idempotent(t->req.method),
        .written = written,
        .body_whole = t->req_body_bytes == 0 || EXT(t)->body_kept,
        .resp_started = t->resp_head_sent,
    };
    if (!rp_retry_safe(&rc))
        return RETRY_NO;
    *backoff_ms = rp_retry_backoff_ms(c, t->attempts, jitter_rand());
    uint64_t now = rp_now_us();
    unsigned deadline_ms = tmo(t)->request_ms;
    if (deadline_ms > 0 && now + (uint64_t)*backoff_ms * 1000u >= t->start_us + (uint64_t)deadline_ms * 1000u)
        return RETRY_NO;   /* never past the request's deadline */
    if (!rp_budget_retry(rp_queue_budget(t->upstream->uq), c, now))
        return RETRY_NO_BUDGET;
    return RETRY_YES;
}

/* The failed attempt (reported already) is left, and the next one starts
 * after backoff_ms, on another backend when one can be used. */
static void
retry_schedule(rp_txn_t *t, unsigned backoff_ms, const char *why)
{
    evtimer_del(t->timer);
    drop_upstream(t);
    t->req_head_sent = 0;
    t->client_paused = 0;
    t->up_paused = 0;
    t->backend = NULL;
    rp_log(RP_LOG_INFO, t, "retrying (attempt %u of %u) in %u ms: %s", t->attempts + 1,
           rcfg(t)->max_retries + 1, backoff_ms, why);
    rp_txn_set_state(t, RP_TXN_RETRY);
    struct timeval tv = { backoff_ms / 1000, (backoff_ms % 1000) * 1000 };
    rp_event_add(t->timer, &tv);
}

/* An attempt failed before any response reached the client (it was
 * reported): retry when that is safe and allowed, else answer. */
static void
attempt_failed(rp_txn_t *t, bool written, int status, rp_close_t why, rp_error_t err,
               const char *reason)
{
    unsigned backoff = 0;
    retry_verdict_t v = retry_decide(t, written, &backoff);
    if (v == RETRY_YES) {
        retry_schedule(t, backoff, reason);
        return;
    }
    if (v == RETRY_NO_BUDGET) {
        /* The access line says so (error retry_budget_exhausted): a line
         * of its own for each would flood the log when backends fail. */
        rp_log(RP_LOG_DEBUG, t, "not retrying: the retry budget of upstream %s is spent",
               t->upstream->name);
        err = RP_ERR_RETRY_BUDGET_EXHAUSTED;
    }
    fail(t, status, why, err, reason);
}

static void
response_done(rp_txn_t *t)
{
    t->ds->end(t);
    t->resp_done = 1;
    if (!t->req_done) {
        /* Early response: the rest of the request body is not wanted; the
         * client connection closes after the response (its head said so). */
        t->close_client = 1;
        t->up_reusable = 0;
        t->req_done = 1;
    }
    finish(t);
}

/* The backend switched to WebSocket: the client gets its answer and the
 * tunnel takes both connections and t. */
static void
open_tunnel(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    x->ws_switch = false;
    evtimer_del(t->timer);
    evtimer_del(t->deadline);   /* a tunnel has no request_ms */
    end_attempt(t, RP_ATTEMPT_OK);
    release_places(t);
    t->status = 101;
    static const char *const replaced[] = { "x-request-id", NULL };
    rp_http_mark_hop_by_hop(&t->resp, replaced);
    t->resp_head_sent = 1;
    t->ws_tunnel = 1;
    t->where = RP_TXN_TUNNEL;
    rp_txn_set_state(t, RP_TXN_TUNNEL);
    int rc = t->ds->tunnel != NULL ? t->ds->tunnel(t) : -1;
    if (rc < 0) {
        t->ws_tunnel = 0;
        t->resp_head_sent = 0;
        if (rc == RP_SEND_NOMEM) {
            rp_oom_note("a WebSocket tunnel (answered 503)");
            fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, "out of memory for the tunnel");
        } else {
            fail(t, 502, RP_CLOSE_UP_BAD, RP_ERR_UPSTREAM_BAD_HANDSHAKE,
                 "the client side cannot take the WebSocket tunnel");
        }
    }
}

void
rp_txn_tunnel_done(rp_txn_t *t)
{
    t->where = RP_TXN_TUNNEL;
    rp_txn_set_state(t, RP_TXN_DONE);
    rp_txn_free(t);
}

static void
up_process(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    struct evbuffer *in = bufferevent_get_input(t->up->bev);
    for (;;) {
        while (evbuffer_get_length(in) > 0) {
            if (t->ds->pending(t) > t->ds->resp_high) {
                t->up_paused = 1;
                rp_reader_disable(&t->up->rd);
                break;
            }
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
                return;
            x->resp_started = true;
            const char *data = v.iov_base;
            llhttp_errno_t err = llhttp_execute(&x->rp, data, v.iov_len);
            size_t used = v.iov_len;
            if (err == HPE_PAUSED)
                used = (size_t)(llhttp_get_error_pos(&x->rp) - data);
            if (err != HPE_OK && err != HPE_PAUSED) {
                const char *why = x->resp_bad ? x->resp_bad_reason : llhttp_get_error_reason(&x->rp);
                if (x->resp_oom) {
                    /* Not the backend's fault: nothing counts against it. */
                    rp_oom_note("a response head");
                    end_attempt(t, RP_ATTEMPT_LOCAL_ERROR);
                    fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, why);
                    return;
                }
                rp_log(RP_LOG_WARN, t, "malformed response from backend: %s", why ? why : "parse error");
                end_attempt(t, RP_ATTEMPT_BAD_RESPONSE);
                if (x->resp_bad && x->resp_bad_error != RP_ERR_NONE)
                    fail(t, 502, RP_CLOSE_UP_BAD, x->resp_bad_error, why);
                else
                    fail(t, 502, RP_CLOSE_UP_BAD, RP_ERR_UPSTREAM_BAD_RESPONSE,
                         "malformed backend response");
                return;
            }
            evbuffer_drain(in, used);
            rp_reader_drained(&t->up->rd);
            if (x->ws_switch) {
                open_tunnel(t);
                return;   /* t belongs to the tunnel now, or is gone */
            }
            if (x->resp_retry) {
                x->resp_retry = false;
                char why[48];
                snprintf(why, sizeof why, "backend answered %d", x->attempt_status);
                t->up_reusable = 0;
                end_attempt(t, RP_ATTEMPT_OK);
                retry_schedule(t, x->retry_backoff, why);
                return;
            }
            if (x->interim_done) {
                x->interim_done = false;
                x->interim = false;
                llhttp_init(&x->rp, HTTP_RESPONSE, &resp_settings);
                x->rp.data = t;
                continue;
            }
            if (x->resp_msg_done) {
                if (evbuffer_get_length(in) > 0)
                    t->up_reusable = 0;   /* bytes after the response: never reuse */
                response_done(t);
                return;
            }
        }
        /* Send what was parsed; when the client took it all, go on. */
        t->ds->flush(t);
        if (!t->up_paused || t->ds->pending(t) > t->ds->resp_low)
            return;
        t->up_paused = 0;
        rp_reader_enable(&t->up->rd);
    }
}

static void
up_read_cb(void *arg)
{
    up_process(arg);
}

static void
up_write_cb(struct bufferevent *bev, void *arg)
{
    rp_txn_t *t = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (t->client_paused) {
        t->client_paused = 0;
        t->ds->resume_body(t);
    }
}

static void
send_request(rp_txn_t *t)
{
    struct bufferevent *ub = t->up->bev;
    if (!t->req_done && t->ds->check_body(t) < 0) {
        /* The body bytes already received are malformed: answer 400 and
         * send the backend nothing at all. */
        rp_txn_client_error(t, 400, RP_CLOSE_BAD_REQUEST, RP_ERR_BAD_BODY,
                            "malformed request body");
        return;
    }
    struct evbuffer *out = bufferevent_get_output(ub);
    if (write_request_head(t, out) < 0) {
        rp_oom_note("a request head for a backend (answered 503)");
        end_attempt(t, RP_ATTEMPT_LOCAL_ERROR);
        fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, "out of memory for the request head");
        return;
    }
    rp_txn_ext_t *xb = EXT(t);
    size_t kept = xb->body_copy != NULL ? evbuffer_get_length(xb->body_copy) : 0;
    if (kept > 0) {
        /* A retry: the body read so far goes again, the rest follows. */
        const char *at = (const char *)evbuffer_pullup(xb->body_copy, -1);
        if (at == NULL || (t->req_chunked ? rp_chunk_add(out, at, kept) == 0
                                          : evbuffer_add(out, at, kept) < 0)) {
            rp_oom_note("a request body sent again (answered 503)");
            end_attempt(t, RP_ATTEMPT_LOCAL_ERROR);
            fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, "out of memory for the request body");
            return;
        }
        if (evbuffer_get_length(out) > t->ds->req_high)
            t->client_paused = 1;
    }
    /* The end of a body sent again (or empty). */
    if (t->req_done && t->req_chunked && evbuffer_add(out, "0\r\n\r\n", 5) < 0) {
        terminator_failed(t);
        return;
    }
    EXT(t)->req_queued = evbuffer_get_length(bufferevent_get_output(ub));
    t->req_head_sent = 1;
    rp_txn_set_state(t, RP_TXN_WAIT_HEAD);
    /* The read timeout starts with the response head; until the request
     * is sent, only a backend that stops reading is timed. */
    const struct timeval *rt = ms_tv(t, tmo(t)->upstream_response_ms);
    bufferevent_set_timeouts(ub, NULL, rt);
    rp_reader_enable(&t->up->rd);
    rp_bev_flush(ub);
    if (t->expect_continue && !xb->continue_sent) {
        xb->continue_sent = true;
        t->ds->send_continue(t);
    }
    if (t->req_done) {
        /* No body, or a replay of a request already read. */
        rp_event_add(t->timer, rt);
    }
    t->ds->resume_body(t);
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rp_txn_t *t = arg;
    rp_txn_ext_t *x = EXT(t);
    int read_errno = errno;
    (void)bev;
    if ((what & BEV_EVENT_ERROR) && (what & BEV_EVENT_READING) && read_errno == ENOMEM) {
        /* No memory to read into (io.c): the proxy's failing, not the
         * backend's. */
        rp_oom_note("a backend response (answered 503)");
        end_attempt(t, RP_ATTEMPT_LOCAL_ERROR);
        fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY, "out of memory reading the backend");
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        evtimer_del(t->timer);
        bufferevent_disable(t->up->bev, EV_WRITE);
        bufferevent_setwatermark(t->up->bev, EV_WRITE, t->ds->req_low, 0);
        t->up->state = RP_UP_ACTIVE;
        send_request(t);
        return;
    }
    if (t->state == RP_TXN_CONNECT) {
        int e = EVUTIL_SOCKET_ERROR();
        rp_log(RP_LOG_WARN, t, "connect to backend failed: %s", e ? strerror(e) : "closed");
        end_attempt(t, RP_ATTEMPT_CONNECT_ERROR);
        attempt_failed(t, false, 502, RP_CLOSE_UP_CONNECT, RP_ERR_UPSTREAM_CONNECT_FAILED,
                       "backend connect failed");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        bool written = request_written(t);
        end_attempt(t, RP_ATTEMPT_TIMEOUT);
        attempt_failed(t, written, 504, RP_CLOSE_UP_TIMEOUT, RP_ERR_UPSTREAM_TIMEOUT,
                       (what & BEV_EVENT_WRITING) ? "backend stopped reading the request"
                                                  : "backend response timed out");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* Close-delimited body: EOF is its end. */
        if (t->resp_head_sent && !x->resp_msg_done) {
            /* on_r_message_complete pauses the parser: HPE_PAUSED is fine. */
            llhttp_errno_t err = llhttp_finish(&x->rp);
            if ((err == HPE_OK || err == HPE_PAUSED) && x->resp_msg_done) {
                t->up_reusable = 0;
                response_done(t);
                return;
            }
        }
    }
    if (may_replay(t)) {
        replay(t);
        return;
    }
    bool written = request_written(t);
    end_attempt(t, RP_ATTEMPT_RESET);
    if (!x->resp_started)
        attempt_failed(t, written, 502, RP_CLOSE_UP_ABORT, RP_ERR_UPSTREAM_RESET,
                       "backend closed the connection without responding");
    else if (!t->resp_head_sent)
        attempt_failed(t, written, 502, RP_CLOSE_UP_BAD, RP_ERR_UPSTREAM_BAD_RESPONSE,
                       "backend closed the connection inside the response head");
    else
        fail(t, 502, RP_CLOSE_UP_ABORT, RP_ERR_UPSTREAM_RESET,
             "backend closed the connection inside the response body");
}

/* ---- timers ---- */

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_txn_t *t = arg;
    (void)fd;
    (void)what;
    if (t->state == RP_TXN_QUEUE) {
        unpark(t);
        t->retry_after = 1;
        rp_txn_respond(t, 503, RP_CLOSE_QUEUE, RP_ERR_QUEUE_TIMEOUT,
                       "no backend connection freed within queue.timeout_ms");
        return;
    }
    if (t->state == RP_TXN_RETRY) {
        /* The backoff is over.  (A client that left meanwhile ended the
         * transaction already: conn.c after_peer_eof.) */
        start_attempt(t);
        return;
    }
    if (t->state == RP_TXN_CONNECT) {
        rp_log(RP_LOG_WARN, t, "connect to backend timed out after %u ms",
               tmo(t)->upstream_connect_ms);
        end_attempt(t, RP_ATTEMPT_CONNECT_TIMEOUT);
        attempt_failed(t, false, 502, RP_CLOSE_UP_CONNECT, RP_ERR_UPSTREAM_CONNECT_TIMEOUT,
                       "backend connect timed out");
        return;
    }
    bool written = request_written(t);
    end_attempt(t, RP_ATTEMPT_TIMEOUT);
    attempt_failed(t, written, 504, RP_CLOSE_UP_TIMEOUT, RP_ERR_UPSTREAM_TIMEOUT,
                   "backend response timed out");
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_txn_t *t = arg;
    (void)fd;
    (void)what;
    /* The deadline covers the client's own upload and download too: only
     * a backend that was being waited for (no response head yet, or its
     * body not held back by the client) timed out. */
    bool backend_held = t->req_done || t->client_paused;   /* body all sent, or backend full */
    bool backend_slow = t->state == RP_TXN_CONNECT
                        || (t->state == RP_TXN_WAIT_HEAD && backend_held)
                        || (t->state == RP_TXN_RELAY && !t->up_paused && backend_held);
    end_attempt(t, backend_slow ? RP_ATTEMPT_TIMEOUT : RP_ATTEMPT_ABORTED);
    fail(t, 504, RP_CLOSE_DEADLINE, RP_ERR_REQUEST_TIMEOUT,
         "request not completed within timeouts.request_ms");
}

/* ---- the driver ---- */

static void start_attempt(rp_txn_t *t);

static void
queue_woken(rp_qwait_t *q)
{
    rp_txn_ext_t *x = (rp_txn_ext_t *)((char *)q - offsetof(rp_txn_ext_t, qw));
    start_attempt(&x->t);
}

/* Wait in the upstream's queue for a connection place (see queue.h).
 * behind: the request could be served but others wait; it waits behind
 * them while the queue has room, and otherwise goes ahead (false, nothing
 * done).  Else a full queue is answered 503 queue_full. */
static bool
park(rp_txn_t *t, bool behind, rp_error_t full_err)
{
    rp_txn_ext_t *x = EXT(t);
    const rp_upstream_t *u = t->upstream;
    /* A waiting request holds no circuit place: one waiting for a
     * connection while holding it would keep out the requests that could
     * free that connection, and wakes go to the oldest waiter.  It takes a
     * place again when woken. */
    if (x->circuit_held && !behind) {
        x->circuit_held = false;
        rp_circuit_leave(t->worker, u);
    }
    unsigned idle_elsewhere = rp_queue_idle_elsewhere(t->worker, u);
    if (x->qw.counted) {
        /* Woken, and the place went to someone else: back to the head of
         * the line, with the same queue deadline.  While it was off the
         * list, a place freed elsewhere found no waiter to wake: look
         * again. */
        rp_queue_relist(t->worker, &x->qw);
    } else {
        /* Places held by idle connections on other workers are as good as
         * free: they are closed on request, so a request may wait for one
         * even beyond the queue's size (or without a queue). */
        unsigned size = u->queue_size
                        + (behind || full_err != RP_ERR_QUEUE_FULL ? 0 : idle_elsewhere);
        if (!rp_queue_enter(t->worker, &x->qw, u, size)) {
            if (behind) {
                /* A backend has room: let the waiters know, and go on. */
                rp_queue_capacity(t->worker, u->uq);
                return false;
            }
            t->backend = NULL;
            t->retry_after = 1;
            if (full_err == RP_ERR_UPSTREAM_OVERLOADED)
                rp_txn_respond(t, 503, RP_CLOSE_LIMIT, full_err,
                               u->queue_size == 0
                                   ? "upstream at circuit.max_active_requests and there is no queue"
                                   : "upstream at circuit.max_active_requests and the queue is full");
            else
                rp_txn_respond(t, 503, RP_CLOSE_QUEUE, full_err,
                               u->queue_size == 0
                                   ? "every backend is at max_connections and there is no queue"
                                   : "every backend is at max_connections and the queue is full");
            return true;
        }
        x->qw.wake = queue_woken;
        rp_event_add(t->timer, ms_tv(t, u->queue_timeout_ms));
        rp_log(RP_LOG_DEBUG, t, "queued for upstream %s on worker %u (%u waiting)", u->name,
               t->worker_id, rp_queue_len(u->uq));
    }
    t->decided_by = -1;   /* waiting is nobody's answer */
    t->backend = NULL;
    rp_txn_set_state(t, RP_TXN_QUEUE);
    if (idle_elsewhere > 0 && full_err == RP_ERR_QUEUE_FULL)
        rp_queue_trim_others(t->worker, u->uq);
    /* A place may have freed since the balancer looked (queue.h). */
    if (rp_queue_room(t->worker, u))
        rp_queue_capacity(t->worker, u->uq);
    return true;
}

static void
start_attempt(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    rp_txn_set_state(t, RP_TXN_PICK);
    const rp_upstream_t *u = t->upstream;
    bool limited = u != NULL && u->limited;
    bool queues = u != NULL && (u->limited || u->max_active_requests > 0);
    /* Requests already waiting for this upstream go first, when a backend
     * can be used at all (else the balancer answers no_healthy_backend). */
    if (queues && t->attempts == 0 && !x->qw.counted && !x->circuit_held
        && rp_queue_len(u->uq) > 0 && rp_queue_any_eligible(u) && park(t, true, RP_ERR_QUEUE_FULL))
        return;
    /* The circuit: at most max_active_requests of the upstream's requests
     * at once, the others wait in its queue or are refused. */
    if (u != NULL && u->max_active_requests > 0 && !x->circuit_held) {
        if (!rp_circuit_enter(u)) {
            park(t, false, RP_ERR_UPSTREAM_OVERLOADED);
            return;
        }
        x->circuit_held = true;
    }
    rp_verdict_t v = rp_modules_select_backend(t);
    if (v == RP_PARK && limited) {
        park(t, false, RP_ERR_QUEUE_FULL);
        return;
    }
    if (v != RP_CONTINUE || t->backend == NULL) {
        if (x->qw.counted) {
            unpark(t);
            evtimer_del(t->timer);   /* the queue timer */
        }
        rp_error_t err = t->error != RP_ERR_NONE ? t->error : RP_ERR_NO_BACKEND;
        bool internal = v == RP_FAIL || v == RP_PARK;
        int status = internal ? 500 : t->status ? t->status : 503;
        rp_txn_respond(t, status, RP_CLOSE_MODULE, internal ? RP_ERR_INTERNAL : err,
                       internal ? "internal error in a module"
                       : t->reason != NULL ? t->reason : "no backend available");
        return;
    }
    rp_upconn_t *pooled = NULL, *fresh = NULL;
    int connect_errno = 0;
    if (!t->replayed)
        pooled = rp_pool_acquire(t->worker, t->backend,
                                 rp_http_method_idempotent(t->req.method) ? 0
                                                                          : NONIDEMPOTENT_MAX_IDLE_US);
    if (pooled == NULL) {
        fresh = rp_upconn_connect(t->worker, t->backend);
        connect_errno = errno;
        if (fresh == NULL && connect_errno == EBUSY
            && rp_pool_idle(t->worker, t->backend->id) > 0) {
            /* The backend's places are held by idle connections here that
             * this request may not use (idle too long for a method that
             * cannot be replayed): one of them gives way. */
            rp_pool_drop_one(t->worker, t->backend->id);
            fresh = rp_upconn_connect(t->worker, t->backend);
            connect_errno = errno;
        }
        if (fresh == NULL && connect_errno == EBUSY) {
            /* Another worker took the backend's last place since the
             * balancer looked. */
            park(t, false, RP_ERR_QUEUE_FULL);
            return;
        }
    }
    if (t->attempts == 0) {
        rp_budget_request(rp_queue_budget(u->uq), rp_now_us());
        /* A body is kept for a retry only where one may be sent again
         * after reaching a backend (idempotent methods, retries on), and
         * only when it fits: a body declared larger is streamed. */
        const rp_retry_cfg_t *rc = rcfg(t);
        x->body_kept = rc->max_retries > 0 && rp_http_method_idempotent(t->req.method)
                       && (!t->req_has_cl || t->req_content_length <= rc->max_body_bytes);
    }
    if (t->navoid < RP_TXN_RESULTS_MAX)
        t->avoid[t->navoid++] = t->backend->id;
    if (x->qw.counted) {
        unpark(t);
        evtimer_del(t->timer);   /* the queue timer */
        /* Places that came without a connection closing (a backend back
         * in, a higher cap) wake waiters one after the other. */
        if (rp_queue_len(t->upstream->uq) > 0 && rp_queue_room(t->worker, t->upstream))
            rp_queue_capacity(t->worker, t->upstream->uq);
    }
    t->attempts++;
    x->attempt_open = true;
    x->attempt_backend = t->backend->id;
    atomic_fetch_add_explicit(&rp_bstate(x->attempt_backend)->active, 1, memory_order_relaxed);
    x->attempt_status = 0;
    x->attempt_start_us = rp_now_us();
    x->resp_started = false;
    x->resp_msg_done = false;
    x->resp_bad = false;
    x->resp_oom = false;
    x->resp_bad_error = RP_ERR_NONE;
    x->interim = false;
    x->interim_done = false;
    x->resp_in_body = false;
    x->resp_trailer_bytes = 0;
    llhttp_init(&x->rp, HTTP_RESPONSE, &resp_settings);
    x->rp.data = t;
    rp_http_head_reset(&t->resp);

    if (pooled != NULL) {
        /* From the pool: the request goes out now. */
        t->up = pooled;
        bufferevent_setcb(pooled->bev, NULL, up_write_cb, up_event_cb, t);
        rp_reader_setcb(&pooled->rd, up_read_cb, up_event_cb, t);
        bufferevent_setwatermark(pooled->bev, EV_WRITE, t->ds->req_low, 0);
        rp_txn_set_state(t, RP_TXN_CONNECT);
        send_request(t);
        return;
    }
    if (fresh == NULL) {
        rp_log(RP_LOG_WARN, t, "connect to backend failed: %s", strerror(connect_errno));
        /* Out of descriptors, memory or local ports: the proxy's trouble,
         * not the backend's. */
        bool local = connect_errno == EMFILE || connect_errno == ENFILE
                     || connect_errno == ENOBUFS || connect_errno == ENOMEM
                     || connect_errno == EADDRNOTAVAIL;
        end_attempt(t, local ? RP_ATTEMPT_LOCAL_ERROR : RP_ATTEMPT_CONNECT_ERROR);
        if (connect_errno == ENOMEM)
            fail(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY,
                 "out of memory connecting to the backend");
        else if (local)
            fail(t, 502, RP_CLOSE_UP_CONNECT, RP_ERR_UPSTREAM_CONNECT_FAILED,
                 "backend connect failed");
        else
            attempt_failed(t, false, 502, RP_CLOSE_UP_CONNECT, RP_ERR_UPSTREAM_CONNECT_FAILED,
                           "backend connect failed");
        return;
    }
    t->up = fresh;
    bufferevent_setcb(fresh->bev, NULL, up_write_cb, up_event_cb, t);
    rp_reader_setcb(&fresh->rd, up_read_cb, up_event_cb, t);
    rp_txn_set_state(t, RP_TXN_CONNECT);
    rp_event_add(t->timer, ms_tv(t, tmo(t)->upstream_connect_ms));
}

/* The client the request is attributed to: the peer, or, from a trusted
 * proxy, the last untrusted address of its X-Forwarded-For. */
static void
client_address(rp_txn_t *t)
{
    t->client_ip[0] = '\0';
    const rp_snapshot_t *s = t->snap;
    if (s->ntrusted == 0 || t->peer->unnamed)
        return;
    rp_ip_t peer, out;
    if (rp_ip_parse(t->peer->ip, strlen(t->peer->ip), false, &peer) < 0)
        return;
    const rp_http_head_t *h = &t->req;
    /* Every X-Forwarded-For field, in order, as one list; only its right
     * end matters (the trusted proxies append there), so it is filled
     * from the right, and a longer list keeps its last 2 KiB, cut to
     * whole elements. */
    char joined[2048];
    size_t start = sizeof joined;
    bool any = false, full = false;
    for (unsigned i = h->nfields; i-- > 0 && !full;) {
        const rp_hfield_t *f = &h->fields[i];
        if (!rp_hf_is(h, f, "x-forwarded-for"))
            continue;
        size_t sep = any ? 2 : 0;
        const char *v = rp_hf_value(h, f);
        size_t vl = f->value_len;
        if (vl + sep > start) {
            /* The part that fits, from its first whole element on. */
            size_t room = start > sep ? start - sep : 0;
            const char *tail = v + vl - room;
            const char *comma = memchr(tail, ',', room);
            size_t keep = comma != NULL ? (size_t)(v + vl - comma - 1) : 0;
            full = true;
            if (keep == 0)
                break;   /* not one whole element fits, nor its separator */
            vl = keep;
            v = v + f->value_len - keep;
        }
        if (any) {
            start -= 2;
            memcpy(joined + start, ", ", 2);
        }
        start -= vl;
        memcpy(joined + start, v, vl);
        any = true;
    }
    if (!any)
        return;
    if (rp_client_address(&peer, s->trusted, s->ntrusted, joined + start, sizeof joined - start,
                          &out))
        rp_ip_text(&out, t->client_ip, sizeof t->client_ip);
}

void
rp_txn_start(rp_txn_t *t)
{
    if (rp_http_check_request(t) < 0) {
        rp_txn_respond(t, t->status, t->why, t->error, t->reason);
        return;
    }
    /* A worker holds so many transactions at most: beyond, fail fast
     * rather than queue without bound. */
    unsigned cap = t->snap->limits.max_active_requests_per_worker;
    if (cap > 0 && t->worker->active_txns >= cap) {
        t->retry_after = 1;
        rp_txn_respond(t, 503, RP_CLOSE_LIMIT, RP_ERR_WORKER_OVERLOADED,
                       "worker at limits.max_active_requests_per_worker");
        return;
    }
    t->worker->active_txns++;
    EXT(t)->worker_counted = true;
    client_address(t);
    rp_txn_set_state(t, RP_TXN_DECIDE);
    rp_verdict_t v = rp_modules_on_request(t);
    /* The deadline runs from here, by the route's timeouts once the router
     * chose one. */
    if (tmo(t)->request_ms > 0)
        rp_event_add(t->deadline, ms_tv(t, tmo(t)->request_ms));
    if (v != RP_CONTINUE) {
        if (v == RP_FAIL || v == RP_PARK)
            rp_txn_respond(t, 500, RP_CLOSE_MODULE, RP_ERR_INTERNAL, "internal error in a module");
        else
            rp_txn_respond(t, t->status, RP_CLOSE_MODULE,
                           t->error != RP_ERR_NONE ? t->error : RP_ERR_MODULE_REFUSED,
                           t->reason != NULL ? t->reason : rp_http_reason(t->status));
        return;
    }
    if (t->route == NULL) {
        t->decided_by = RP_MOD_ROUTER;
        rp_txn_respond(t, 404, RP_CLOSE_MODULE, RP_ERR_NO_ROUTE, "no route matches the host and path");
        return;
    }
    /* A WebSocket route: an upgrade must be a valid one.  An HTTP/2
     * extended CONNECT has no plain-HTTP meaning elsewhere. */
    if (t->ws_h2 && (t->route == NULL || !t->route->websocket)) {
        rp_txn_respond(t, 400, RP_CLOSE_BAD_REQUEST, RP_ERR_BAD_WS_HANDSHAKE,
                       "extended CONNECT for WebSocket on a route without websocket");
        return;
    }
    if (t->route != NULL && t->route->websocket && rp_ws_check_request(t) < 0) {
        rp_txn_respond(t, t->status, t->why, t->error, t->reason);
        return;
    }
    start_attempt(t);
}

void
rp_txn_client_drained(rp_txn_t *t)
{
    if (t->up_paused && t->up != NULL) {
        t->up_paused = 0;
        rp_reader_enable(&t->up->rd);
        up_process(t);   /* what was already read waits in the input buffer */
    }
}
