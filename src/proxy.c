/* SPDX-License-Identifier: MIT */
/*
 * The transaction state machine (see proxy.h and revproxy/txn.h).
 *
 *   DECIDE -> PICK -> CONNECT -> WAIT_HEAD -> RELAY -> DONE
 *                 \______________________________/
 *                  any failure -> ERROR (answer) or abort
 *
 * Request bodies are streamed from the client parser into the upstream
 * connection, response bodies from the upstream parser into the client
 * connection; each side stops its producer when the other side's output
 * passes RP_WBUF_HIGH and resumes it under RP_WBUF_LOW, so memory per
 * transaction stays bounded whatever the body sizes.
 *
 * Parser callbacks only record and copy; decisions that can end the
 * transaction are taken after llhttp_execute() returns.
 */
#include "config.h"
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "conn.h"
#include "pool.h"
#include "proxy.h"
#include "worker.h"
#include "util.h"

/* Response-side parser state, kept next to the txn. */
typedef struct rp_txn_ext {
    rp_txn_t  t;
    llhttp_t  rp;              /* response parser */
    bool      interim;         /* parsing a 1xx response */
    bool      resp_msg_done;
    bool      resp_bad;
    const char *resp_bad_reason;
    bool      resp_started;    /* a response byte arrived on this attempt */
    bool      resp_in_body;    /* head done: header callbacks are trailers */
    size_t    resp_trailer_bytes;
    uint64_t  attempt_start_us;
    size_t    req_queued;      /* bytes of request queued on this attempt */
    struct event timer_ev;     /* t.timer points here */
    struct event deadline_ev;  /* t.deadline points here */
    struct rp_txn_ext *next_free;
} rp_txn_ext_t;

/* Freed transactions are kept per worker (with their head buffers) and
 * reused, which saves half a dozen allocations per request. */
#define TXN_CACHE_MAX 64
#define TXN_CACHE_BUF_MAX 8192

typedef struct txn_cache {
    rp_txn_ext_t *head;
    unsigned      n;
} txn_cache_t;
static _Thread_local txn_cache_t txn_cache;

#define EXT(t) ((rp_txn_ext_t *)(t))

static llhttp_settings_t resp_settings;

static const char *const state_names[RP_TXN_STATE_COUNT] = {
    "read_head", "decide", "pick", "connect", "wait_head", "relay", "error", "done"
};

const char *
rp_txn_state_name(rp_txn_state_t s)
{
    return s < RP_TXN_STATE_COUNT ? state_names[s] : "?";
}

const char *
rp_close_name(rp_close_t c)
{
    static const char *const names[] = {
        "ok", "client_abort", "client_timeout", "bad_request", "limit", "module",
        "upstream_connect", "upstream_timeout", "upstream_bad_response",
        "upstream_abort", "deadline", "internal", "shutdown"
    };
    return (size_t)c < RP_ARRAY_LEN(names) ? names[c] : "?";
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

static const struct timeval *
ms_tv(const rp_txn_t *t, unsigned ms)
{
    return rp_timeout_tv(t->worker->base, ms);
}

/* ---- lifecycle ---- */

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);

rp_txn_t *
rp_txn_new(rp_conn_t *c)
{
    rp_txn_ext_t *x = txn_cache.head;
    rp_http_head_t req, resp;
    size_t limit = c->w->snap->limits.max_header_bytes;
    if (x != NULL) {
        txn_cache.head = x->next_free;
        txn_cache.n--;
        req = x->t.req;
        resp = x->t.resp;
        memset(x, 0, sizeof *x);
        req.limit = resp.limit = limit;
    } else {
        x = rp_xmalloc(sizeof *x);
        memset(x, 0, sizeof *x);
        rp_http_head_init(&req, limit);
        rp_http_head_init(&resp, limit);
    }
    rp_txn_t *t = &x->t;
    t->req = req;
    t->resp = resp;
    t->client = c;
    t->worker = c->w;
    t->worker_id = c->w->id;
    t->snap = rp_snapshot_ref(c->w->snap);
    t->state = RP_TXN_READ_HEAD;
    t->decided_by = -1;
    t->start_us = rp_now_us();
    rp_request_id_new(t->id);
    evtimer_assign(&x->timer_ev, c->w->base, timer_cb, t);
    evtimer_assign(&x->deadline_ev, c->w->base, deadline_cb, t);
    t->timer = &x->timer_ev;
    t->deadline = &x->deadline_ev;
    return t;
}

static void
complete(rp_txn_t *t)
{
    if (t->completed)
        return;
    t->completed = 1;
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
    complete(t);
    if (t->up != NULL) {
        rp_upconn_close(t->up);
        t->up = NULL;
    }
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    rp_snapshot_unref(t->snap);
    t->snap = NULL;
    rp_txn_ext_t *x = EXT(t);
    if (txn_cache.n < TXN_CACHE_MAX && t->req.cap <= TXN_CACHE_BUF_MAX
        && t->resp.cap <= TXN_CACHE_BUF_MAX) {
        rp_http_head_reset(&t->req);
        rp_http_head_reset(&t->resp);
        x->next_free = txn_cache.head;
        txn_cache.head = x;
        txn_cache.n++;
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
        txn_cache.head = x->next_free;
        rp_http_head_free(&x->t.req);
        rp_http_head_free(&x->t.resp);
        free(x);
    }
    txn_cache.n = 0;
}

static void
report_attempt(rp_txn_t *t, rp_attempt_result_t r)
{
    rp_attempt_t a = {
        .backend = t->backend,
        .result = r,
        .reused = t->up != NULL && t->up->uses > 0,
        .duration_us = rp_now_us() - EXT(t)->attempt_start_us,
    };
    rp_modules_on_upstream_result(t, &a);
}

/* End the transaction normally: the response has been queued entirely. */
static void
finish(rp_txn_t *t)
{
    rp_conn_t *c = t->client;
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    if (t->up != NULL) {
        report_attempt(t, RP_ATTEMPT_OK);
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
    bool keep = t->client_keepalive && !t->resp_close_delimited && t->req_done && !t->close_client;
    rp_conn_txn_done(c, keep);
}

/* Something failed on the upstream side or a deadline passed.  Answer with
 * status if nothing was sent yet, else cut the client connection. */
static void
fail(rp_txn_t *t, int status, rp_close_t why, const char *reason)
{
    rp_conn_t *c = t->client;
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    if (t->up != NULL) {
        rp_upconn_close(t->up);
        t->up = NULL;
    }
    t->why = why;
    t->reason = reason;
    t->where = t->state;
    if (!t->resp_head_sent) {
        t->status = status;
        rp_txn_set_state(t, RP_TXN_ERROR);
        rp_conn_send_error(c, t);
        return;
    }
    rp_log(RP_LOG_WARN, t, "response aborted: %s", reason);
    rp_txn_set_state(t, RP_TXN_DONE);
    rp_conn_txn_done(c, false);
}

void
rp_txn_abort(rp_txn_t *t, rp_close_t why, const char *reason)
{
    if (t->completed)
        return;
    evtimer_del(t->timer);
    evtimer_del(t->deadline);
    if (t->up != NULL) {
        rp_upconn_close(t->up);
        t->up = NULL;
    }
    if (t->why == RP_CLOSE_OK) {
        t->why = why;
        t->reason = reason;
    }
    t->where = t->state;
    rp_log(RP_LOG_DEBUG, t, "transaction aborted: %s", reason);
}

void
rp_txn_client_error(rp_txn_t *t, int status, rp_close_t why, const char *reason)
{
    t->close_client = 1;
    t->client_keepalive = 0;
    fail(t, status, why, reason);
}

/* ---- request side ---- */

/* A message head is built in one reserved, contiguous piece of the output
 * buffer and committed once: one buffer callback per head rather than one
 * per field. */
typedef struct head_builder {
    struct evbuffer      *out;
    struct evbuffer_iovec v;
    char                 *p;
} head_builder_t;

static void
hb_begin(head_builder_t *b, struct evbuffer *out, size_t max)
{
    b->out = out;
    if (evbuffer_reserve_space(out, (ev_ssize_t)max, &b->v, 1) < 1)
        abort();   /* allocation failure inside libevent */
    b->p = b->v.iov_base;
}

static void
hb_put(head_builder_t *b, const void *s, size_t n)
{
    memcpy(b->p, s, n);
    b->p += n;
}

#define HB_LIT(b, lit) hb_put((b), (lit), sizeof(lit) - 1)

static void
hb_str(head_builder_t *b, const char *s)
{
    hb_put(b, s, strlen(s));
}

static void
hb_uint(head_builder_t *b, uint64_t v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    hb_put(b, p, (size_t)(buf + sizeof buf - p));
}

static void
hb_fields(head_builder_t *b, const rp_http_head_t *h)
{
    for (unsigned i = 0; i < h->nfields; i++) {
        const rp_hfield_t *f = &h->fields[i];
        if (f->flags & RP_HF_DROP)
            continue;
        hb_put(b, rp_hf_name(h, f), f->name_len);
        HB_LIT(b, ": ");
        hb_put(b, rp_hf_value(h, f), f->value_len);
        HB_LIT(b, "\r\n");
    }
}

static size_t
hb_end(head_builder_t *b)
{
    size_t n = (size_t)(b->p - (char *)b->v.iov_base);
    assert(n <= b->v.iov_len);
    b->v.iov_len = n;
    evbuffer_commit_space(b->out, &b->v, 1);
    return n;
}

/* Room a head needs beyond its stored fields: request line or status line,
 * the proxy's own fields, separators. */
#define HEAD_EXTRA 1024

/* Serialise the request head for the backend. */
static void
write_request_head(rp_txn_t *t, struct evbuffer *out)
{
    static const char *const replaced[] = {
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "x-request-id", "expect", NULL };
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
    if (host == NULL || host_len == 0) {
        host = t->backend->addr.text;
        host_len = strlen(host);
    }

    head_builder_t b;
    hb_begin(&b, out, h->len + 4 * (size_t)h->nfields + 2 * host_len + HEAD_EXTRA);
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
    hb_str(&b, t->client->peer_ip);
    HB_LIT(&b, "\r\nX-Forwarded-Proto: http\r\n");
    if (host != t->backend->addr.text) {
        HB_LIT(&b, "X-Forwarded-Host: ");
        hb_put(&b, host, host_len);
        HB_LIT(&b, "\r\n");
    }
    HB_LIT(&b, "X-Request-Id: ");
    hb_str(&b, t->id);
    HB_LIT(&b, "\r\n");
    if (t->req_chunked) {
        HB_LIT(&b, "Transfer-Encoding: chunked\r\n");
    } else if (t->req_has_cl) {
        HB_LIT(&b, "Content-Length: ");
        hb_uint(&b, t->req_content_length);
        HB_LIT(&b, "\r\n");
    }
    HB_LIT(&b, "\r\n");
    hb_end(&b);
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
    if (t->up == NULL)
        return 0;
    struct evbuffer *out = bufferevent_get_output(t->up->bev);
    if (t->req_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
        evbuffer_add(out, hdr, (size_t)n);
        evbuffer_add(out, at, len);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, at, len);
    }
    if (evbuffer_get_length(out) > RP_WBUF_HIGH)
        t->client_paused = 1;
    return 0;
}

void
rp_txn_req_end(rp_txn_t *t)
{
    rp_reader_set_timeout(&t->client->rd, 0);
    t->req_done = 1;
    if (t->up != NULL && t->req_chunked)
        evbuffer_add(bufferevent_get_output(t->up->bev), "0\r\n\r\n", 5);
    if (EXT(t)->resp_msg_done) {
        /* The backend answered before the body ended and the response is
         * complete: now the exchange is over. */
        finish(t);
        return;
    }
    if (t->state == RP_TXN_WAIT_HEAD && !t->resp_head_sent) {
        evtimer_add(t->timer, ms_tv(t, t->snap->timeouts.upstream_response_ms));
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
    if (rp_http_head_add_target(&t->resp, at, len) < 0)
        return resp_bad(t, "response head larger than limits.max_header_bytes");
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
    if (rp_http_head_add_name(&t->resp, at, len) < 0)
        return resp_bad(t, "response head larger than limits.max_header_bytes");
    return 0;
}

static int
on_r_header_value(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    if (EXT(t)->resp_in_body)
        return resp_trailer(t, len);
    if (rp_http_head_add_value(&t->resp, at, len) < 0)
        return resp_bad(t, "response head larger than limits.max_header_bytes");
    return 0;
}

static bool
reason_ok(const char *r, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)r[i];
        if (c < 0x20 && c != '\t')
            return false;
        if (c == 0x7f)
            return false;
    }
    return true;
}

static void
write_response_head(rp_txn_t *t, bool no_body, bool has_cl, uint64_t cl)
{
    static const char *const replaced[] = { "x-request-id", NULL };
    struct evbuffer *out = bufferevent_get_output(t->client->bev);
    rp_http_head_t *h = &t->resp;
    rp_http_mark_hop_by_hop(h, replaced);
    const char *reason = h->buf + h->target_off;
    size_t rlen = h->target_len;
    if (rlen == 0 || !reason_ok(reason, rlen)) {
        reason = rp_http_reason(h->status);
        rlen = strlen(reason);
    }
    head_builder_t b;
    hb_begin(&b, out, h->len + 4 * (size_t)h->nfields + rlen + HEAD_EXTRA);
    HB_LIT(&b, "HTTP/1.1 ");
    hb_uint(&b, (uint64_t)h->status);
    HB_LIT(&b, " ");
    hb_put(&b, reason, rlen);
    HB_LIT(&b, "\r\n");
    hb_fields(&b, h);
    HB_LIT(&b, "X-Request-Id: ");
    hb_str(&b, t->id);
    HB_LIT(&b, "\r\n");
    if (has_cl && h->status != 204) {
        HB_LIT(&b, "Content-Length: ");
        hb_uint(&b, cl);
        HB_LIT(&b, "\r\n");
    } else if (!no_body && t->resp_chunked_out) {
        HB_LIT(&b, "Transfer-Encoding: chunked\r\n");
    }
    if (!t->req_done) {
        /* The backend answers before the request body ended: the rest of
         * the body will not be read, so the connection closes after this
         * response, and the response says so. */
        t->close_client = 1;
    }
    bool keep = t->client_keepalive && !t->resp_close_delimited && !t->close_client;
    if (!keep)
        HB_LIT(&b, "Connection: close\r\n");
    else if (t->req.minor == 0)
        HB_LIT(&b, "Connection: keep-alive\r\n");
    HB_LIT(&b, "\r\n");
    t->bytes_out += hb_end(&b);
}

static int
on_r_headers_complete(llhttp_t *p)
{
    rp_txn_t *t = p->data;
    rp_txn_ext_t *x = EXT(t);
    if (rp_http_head_finish(&t->resp) < 0)
        return resp_bad(t, "response head larger than limits.max_header_bytes");
    t->resp.status = p->status_code;
    t->resp.major = p->http_major;
    t->resp.minor = p->http_minor;
    if (p->http_major != 1)
        return resp_bad(t, "response is not HTTP/1.x");
    if (p->status_code == 101)
        return resp_bad(t, "unrequested protocol switch (101)");
    if (p->status_code < 100 || p->status_code > 999)
        return resp_bad(t, "invalid status code");
    x->resp_in_body = true;
    if (p->status_code < 200) {
        /* Interim responses are dropped: the proxy answered any Expect
         * itself, and 103 hints are optional. */
        x->interim = true;
        return 0;
    }
    unsigned nte = 0;
    rp_http_find(&t->resp, "transfer-encoding", &nte);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (nte > 0 && !chunked)
        return resp_bad(t, "Transfer-Encoding without chunked in a response");
    bool has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    bool no_body = t->head_request || p->status_code == 204 || p->status_code == 304;
    uint64_t cl = has_cl ? p->content_length : 0;
    if (!no_body && !has_cl) {
        if (t->req.minor == 1)
            t->resp_chunked_out = 1;
        else
            t->resp_close_delimited = 1;   /* HTTP/1.0 client: end by closing */
    }
    if (rp_modules_on_response(t) != RP_CONTINUE)
        return resp_bad(t, "response refused by a module");
    t->status = p->status_code;
    write_response_head(t, no_body, has_cl, cl);
    t->resp_head_sent = 1;
    evtimer_del(t->timer);
    rp_reader_set_timeout(&t->up->rd, t->snap->timeouts.upstream_response_ms);
    rp_txn_set_state(t, RP_TXN_RELAY);
    return no_body ? 1 : 0;
}

static int
on_r_body(llhttp_t *p, const char *at, size_t len)
{
    rp_txn_t *t = p->data;
    if (len == 0)
        return 0;   /* a zero-size chunk would end the re-framed body */
    struct evbuffer *out = bufferevent_get_output(t->client->bev);
    if (t->resp_chunked_out) {
        char hdr[24];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
        evbuffer_add(out, hdr, (size_t)n);
        evbuffer_add(out, at, len);
        evbuffer_add(out, "\r\n", 2);
        t->bytes_out += (uint64_t)n + len + 2;
    } else {
        evbuffer_add(out, at, len);
        t->bytes_out += len;
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
        x->interim = false;
        return 0;
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
           && t->req_body_bytes == 0
           && (!request_written(t) || rp_http_method_idempotent(t->req.method));
}

static void
replay(rp_txn_t *t)
{
    rp_log(RP_LOG_INFO, t, "reused upstream connection failed before responding; replaying once");
    report_attempt(t, RP_ATTEMPT_RESET);
    rp_upconn_close(t->up);
    t->up = NULL;
    t->replayed = 1;
    t->req_head_sent = 0;
    evtimer_del(t->timer);
    start_attempt(t);
}

static void
response_done(rp_txn_t *t)
{
    if (t->resp_chunked_out)
        evbuffer_add(bufferevent_get_output(t->client->bev), "0\r\n\r\n", 5);
    t->resp_done = 1;
    if (!t->req_done) {
        /* Early response: the rest of the request body is not wanted; the
         * client connection closes after the response. */
        t->close_client = 1;
        t->up_reusable = 0;
        t->req_done = 1;
    }
    finish(t);
}

static void
up_process(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    struct evbuffer *in = bufferevent_get_input(t->up->bev);
    struct evbuffer *cout = bufferevent_get_output(t->client->bev);
    for (;;) {
        while (evbuffer_get_length(in) > 0) {
            if (evbuffer_get_length(cout) > RP_WBUF_HIGH) {
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
                rp_log(RP_LOG_WARN, t, "malformed response from backend: %s", why ? why : "parse error");
                report_attempt(t, RP_ATTEMPT_BAD_RESPONSE);
                fail(t, 502, RP_CLOSE_UP_BAD, "malformed backend response");
                return;
            }
            evbuffer_drain(in, used);
            rp_reader_drained(&t->up->rd);
            if (x->resp_msg_done) {
                if (evbuffer_get_length(in) > 0)
                    t->up_reusable = 0;   /* bytes after the response: never reuse */
                response_done(t);
                return;
            }
        }
        /* Send what was parsed; when the client took it all, go on. */
        rp_bev_flush(t->client->bev);
        if (!t->up_paused || evbuffer_get_length(cout) > RP_WBUF_LOW)
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
        rp_conn_resume(t->client);
    }
}

static void
send_request(rp_txn_t *t)
{
    struct bufferevent *ub = t->up->bev;
    write_request_head(t, bufferevent_get_output(ub));
    if (t->req_done && t->req_chunked)
        evbuffer_add(bufferevent_get_output(ub), "0\r\n\r\n", 5);   /* replay of an empty body */
    EXT(t)->req_queued = evbuffer_get_length(bufferevent_get_output(ub));
    t->req_head_sent = 1;
    rp_txn_set_state(t, RP_TXN_WAIT_HEAD);
    /* The read timeout starts with the response head; until the request
     * is sent, only a backend that stops reading is timed. */
    const struct timeval *rt = ms_tv(t, t->snap->timeouts.upstream_response_ms);
    bufferevent_set_timeouts(ub, NULL, rt);
    rp_reader_enable(&t->up->rd);
    rp_bev_flush(ub);
    if (t->expect_continue && !t->replayed) {
        evbuffer_add(bufferevent_get_output(t->client->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        rp_bev_flush(t->client->bev);
    }
    bool has_body = t->req_chunked || t->req_content_length > 0;
    if (!has_body || t->req_done) {
        /* No body, or a replay of a request already read. */
        evtimer_add(t->timer, rt);
    } else {
        /* The body is read now: the client may not pause longer than
         * client_idle_ms between two reads. */
        rp_reader_set_timeout(&t->client->rd, t->snap->timeouts.client_idle_ms);
    }
    rp_conn_resume(t->client);
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rp_txn_t *t = arg;
    rp_txn_ext_t *x = EXT(t);
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        evtimer_del(t->timer);
        bufferevent_disable(t->up->bev, EV_WRITE);
        bufferevent_setwatermark(t->up->bev, EV_WRITE, RP_WBUF_LOW, 0);
        t->up->state = RP_UP_ACTIVE;
        send_request(t);
        return;
    }
    if (t->state == RP_TXN_CONNECT) {
        int e = EVUTIL_SOCKET_ERROR();
        rp_log(RP_LOG_WARN, t, "connect to backend failed: %s", e ? strerror(e) : "closed");
        report_attempt(t, RP_ATTEMPT_CONNECT_ERROR);
        fail(t, 502, RP_CLOSE_UP_CONNECT, "backend connect failed");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        report_attempt(t, RP_ATTEMPT_TIMEOUT);
        fail(t, 504, RP_CLOSE_UP_TIMEOUT,
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
    report_attempt(t, RP_ATTEMPT_RESET);
    if (!x->resp_started)
        fail(t, 502, RP_CLOSE_UP_ABORT, "backend closed the connection without responding");
    else if (!t->resp_head_sent)
        fail(t, 502, RP_CLOSE_UP_BAD, "backend closed the connection inside the response head");
    else
        fail(t, 502, RP_CLOSE_UP_ABORT, "backend closed the connection inside the response body");
}

/* ---- timers ---- */

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_txn_t *t = arg;
    (void)fd;
    (void)what;
    if (t->state == RP_TXN_CONNECT) {
        rp_log(RP_LOG_WARN, t, "connect to backend timed out after %u ms",
               t->snap->timeouts.upstream_connect_ms);
        report_attempt(t, RP_ATTEMPT_CONNECT_TIMEOUT);
        fail(t, 502, RP_CLOSE_UP_CONNECT, "backend connect timed out");
        return;
    }
    report_attempt(t, RP_ATTEMPT_TIMEOUT);
    fail(t, 504, RP_CLOSE_UP_TIMEOUT, "backend response timed out");
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_txn_t *t = arg;
    (void)fd;
    (void)what;
    if (t->up != NULL)
        report_attempt(t, RP_ATTEMPT_TIMEOUT);
    fail(t, 504, RP_CLOSE_DEADLINE, "request not completed within timeouts.request_ms");
}

/* ---- the driver ---- */

static void
start_attempt(rp_txn_t *t)
{
    rp_txn_ext_t *x = EXT(t);
    rp_txn_set_state(t, RP_TXN_PICK);
    rp_verdict_t v = rp_modules_select_backend(t);
    if (v != RP_CONTINUE || t->backend == NULL) {
        t->why = RP_CLOSE_MODULE;
        if (v == RP_FAIL || t->status == 0)
            t->status = v == RP_FAIL ? 500 : 503;
        t->reason = "no backend available";
        rp_txn_set_state(t, RP_TXN_ERROR);
        rp_conn_send_error(t->client, t);
        return;
    }
    t->attempts++;
    x->attempt_start_us = rp_now_us();
    x->resp_started = false;
    x->resp_msg_done = false;
    x->resp_bad = false;
    x->interim = false;
    x->resp_in_body = false;
    x->resp_trailer_bytes = 0;
    llhttp_init(&x->rp, HTTP_RESPONSE, &resp_settings);
    x->rp.data = t;
    rp_http_head_reset(&t->resp);

    rp_upconn_t *up = NULL;
    if (!t->replayed)
        up = rp_pool_acquire(t->worker, t->backend,
                             rp_http_method_idempotent(t->req.method) ? 0 : NONIDEMPOTENT_MAX_IDLE_US);
    if (up != NULL) {
        t->up = up;
        bufferevent_setcb(up->bev, NULL, up_write_cb, up_event_cb, t);
        rp_reader_setcb(&up->rd, up_read_cb, up_event_cb, t);
        bufferevent_setwatermark(up->bev, EV_WRITE, RP_WBUF_LOW, 0);
        rp_txn_set_state(t, RP_TXN_CONNECT);
        send_request(t);
        return;
    }
    up = rp_upconn_connect(t->worker, t->backend);
    if (up == NULL) {
        rp_log(RP_LOG_WARN, t, "connect to backend failed: %s", strerror(errno));
        report_attempt(t, RP_ATTEMPT_CONNECT_ERROR);
        fail(t, 502, RP_CLOSE_UP_CONNECT, "backend connect failed");
        return;
    }
    t->up = up;
    bufferevent_setcb(up->bev, NULL, up_write_cb, up_event_cb, t);
    rp_reader_setcb(&up->rd, up_read_cb, up_event_cb, t);
    rp_txn_set_state(t, RP_TXN_CONNECT);
    evtimer_add(t->timer, ms_tv(t, t->snap->timeouts.upstream_connect_ms));
}

void
rp_txn_start(rp_txn_t *t)
{
    if (t->snap->timeouts.request_ms > 0) {
        evtimer_add(t->deadline, ms_tv(t, t->snap->timeouts.request_ms));
    }
    rp_txn_set_state(t, RP_TXN_DECIDE);
    rp_verdict_t v = rp_modules_on_request(t);
    if (v != RP_CONTINUE) {
        t->why = RP_CLOSE_MODULE;
        if (v == RP_FAIL) {
            t->status = 500;
            t->reason = "internal error in a module";
        } else if (t->reason == NULL) {
            t->reason = rp_http_reason(t->status);
        }
        rp_txn_set_state(t, RP_TXN_ERROR);
        rp_conn_send_error(t->client, t);
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
