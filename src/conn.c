/* SPDX-License-Identifier: MIT */
/*
 * Client connections (see conn.h): accept-time set-up, the HTTP/1.x request
 * parser glue, request-side limits and timers, error responses, keep-alive,
 * pipelining and lingering close.  What happens between a valid request head
 * and the end of its response is proxy.c's business.
 *
 * Ownership rule: nothing here frees the connection from inside a parser
 * callback or a transaction call; freeing happens only at the top of an
 * event callback, which then returns at once.
 */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "conn.h"
#include "pool.h"
#include "proxy.h"
#include "worker.h"
#include "util.h"

#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1u << 20)

static llhttp_settings_t req_settings;

static void conn_process(rp_conn_t *c);
static void close_after_flush(rp_conn_t *c);

const char *
rp_conn_peer(const rp_conn_t *c)
{
    return c->peer;
}

static void
arm_timer(rp_conn_t *c, unsigned ms)
{
    evtimer_add(c->timer, rp_timeout_tv(c->w->base, ms));
}

static const rp_snapshot_t *
conn_snap(const rp_conn_t *c)
{
    return c->txn != NULL ? c->txn->snap : c->w->snap;
}

/* ---- parser callbacks: record, never free ---- */

static int
on_message_begin(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    if (c->txn != NULL)
        return HPE_INTERNAL;   /* cannot happen: parsing pauses between requests */
    c->txn = rp_txn_new(c);
    c->head_bytes = 0;
    c->trailer_bytes = 0;
    c->in_body = false;
    if (c->state == RP_CONN_IDLE && c->requests > 0)
        arm_timer(c, c->txn->snap->timeouts.client_header_ms);
    c->state = RP_CONN_HEAD;
    return 0;
}

static int
limit_error(rp_conn_t *c, int status, const char *reason)
{
    c->parse_error = status;
    c->parse_reason = reason;
    return HPE_USER;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    rp_txn_t *t = c->txn;
    if (t->req.target_len + len > t->snap->limits.max_uri_bytes)
        return limit_error(c, 414, "request target longer than limits.max_uri_bytes");
    if (rp_http_head_add_target(&t->req, at, len) < 0)
        return limit_error(c, 431, "request head larger than limits.max_header_bytes");
    return 0;
}

/* Trailer fields of a chunked request are not forwarded (the proxy ends
 * the body it re-frames without them); they only count against the head
 * size limit. */
static int
trailer(rp_conn_t *c, size_t len)
{
    c->trailer_bytes += len;
    if (c->txn != NULL && c->trailer_bytes > c->txn->snap->limits.max_header_bytes)
        return limit_error(c, 431, "request trailer larger than limits.max_header_bytes");
    return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    rp_txn_t *t = c->txn;
    if (c->in_body || t == NULL)
        return trailer(c, len);
    if (t->req.last_cb != 1 && t->req.nfields >= t->snap->limits.max_headers)
        return limit_error(c, 431, "more header fields than limits.max_headers");
    if (rp_http_head_add_name(&t->req, at, len) < 0)
        return limit_error(c, 431, "request head larger than limits.max_header_bytes");
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    if (c->in_body || c->txn == NULL)
        return trailer(c, len);
    if (rp_http_head_add_value(&c->txn->req, at, len) < 0)
        return limit_error(c, 431, "request head larger than limits.max_header_bytes");
    return 0;
}

/* The method and the version are known only once the parser has passed
 * them: a request that fails earlier is logged without them, never with
 * llhttp's zero values (DELETE, HTTP/0.0). */
static int
on_method_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    if (c->txn != NULL && !c->in_body) {
        c->txn->req.method = p->method;
        c->txn->method_known = 1;
        c->txn->head_request = p->method == HTTP_HEAD;
    }
    return 0;
}

static int
on_version_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    if (c->txn != NULL && !c->in_body) {
        c->txn->req.major = p->http_major;
        c->txn->req.minor = p->http_minor;
        c->txn->version_known = 1;
    }
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    rp_txn_t *t = c->txn;
    if (t->req.last_cb == 2 || t->req.last_cb == 1 || t->req.target_len > 0) {
        if (rp_http_head_finish(&t->req) < 0)
            return limit_error(c, 431, "request head larger than limits.max_header_bytes");
    }
    t->req.method = p->method;
    t->req.major = p->http_major;
    t->req.minor = p->http_minor;
    t->req_chunked = (p->flags & F_CHUNKED) != 0;
    t->req_has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    t->req_content_length = t->req_has_cl ? p->content_length : 0;
    t->client_keepalive = llhttp_should_keep_alive(p) != 0;
    c->head_complete = true;
    c->in_body = true;
    /* Stop here: the body waits until an upstream connection takes it. */
    return HPE_PAUSED;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    if (c->txn == NULL)
        return 0;   /* discarding what is left of a request already answered */
    if (rp_txn_req_body(c->txn, at, len) < 0)
        return limit_error(c, 413, "request body larger than limits.max_body_bytes");
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    if (c->txn == NULL)
        return 0;
    c->msg_complete = true;
    return HPE_PAUSED;
}

static void
init_settings(void)
{
    llhttp_settings_init(&req_settings);
    req_settings.on_message_begin = on_message_begin;
    req_settings.on_method_complete = on_method_complete;
    req_settings.on_url = on_url;
    req_settings.on_version_complete = on_version_complete;
    req_settings.on_header_field = on_header_field;
    req_settings.on_header_value = on_header_value;
    req_settings.on_headers_complete = on_headers_complete;
    req_settings.on_body = on_body;
    req_settings.on_message_complete = on_message_complete;
}

/* ---- request head validation ---- */

static int
head_error(rp_txn_t *t, int status, const char *reason)
{
    t->status = status;
    t->why = status == 413 || status == 414 || status == 431 ? RP_CLOSE_LIMIT : RP_CLOSE_BAD_REQUEST;
    t->reason = reason;
    return -1;
}

/* Check the head and fill host, path and origin.  0, or -1 with status. */
static int
validate_head(rp_conn_t *c, rp_txn_t *t)
{
    rp_http_head_t *h = &t->req;
    const char *target = h->buf + h->target_off;
    size_t tlen = h->target_len;

    if (h->major != 1 || h->minor > 1)
        return head_error(t, 505, "unsupported HTTP version");
    if (h->method == HTTP_CONNECT)
        return head_error(t, 405, "CONNECT is not served");
    if (h->method == HTTP_PRI)
        return head_error(t, 400, "HTTP/2 preface on an HTTP/1 connection");
    if (tlen == 0)
        return head_error(t, 400, "empty request target");
    if (memchr(target, '#', tlen) != NULL)
        return head_error(t, 400, "fragment in request target");

    unsigned nhost = 0;
    const rp_hfield_t *host = rp_http_find(h, "host", &nhost);
    if (nhost > 1)
        return head_error(t, 400, "more than one Host header");
    if (nhost == 0 && h->minor == 1)
        return head_error(t, 400, "HTTP/1.1 request without Host");

    const char *authority = NULL;
    size_t authority_len = 0;
    if (target[0] == '/') {
        t->origin = target;
        t->origin_len = tlen;
    } else if (tlen == 1 && target[0] == '*') {
        if (h->method != HTTP_OPTIONS)
            return head_error(t, 400, "asterisk-form target outside OPTIONS");
        t->origin = target;
        t->origin_len = 1;
    } else if (rp_http_split_absolute(target, tlen, &authority, &authority_len,
                                      &t->origin, &t->origin_len) == 0) {
        /* Absolute form: its authority replaces Host (RFC 9112 3.2.2). */
        if (authority_len == 0)
            return head_error(t, 400, "absolute-form target without host");
    } else {
        return head_error(t, 400, "invalid request target form");
    }
    if (authority != NULL) {
        if (rp_host_normalize(authority, authority_len, t->host, sizeof t->host) < 0)
            return head_error(t, 400, "invalid host in request target");
    } else if (host != NULL) {
        if (rp_host_normalize(rp_hf_value(h, host), host->value_len, t->host, sizeof t->host) < 0)
            return head_error(t, 400, "invalid Host header");
    }
    if (t->origin_len == 0 || t->origin[0] == '?') {
        /* "http://host" or "http://host?q": the path is "/". */
        t->path = "/";
        t->path_len = 1;
    } else {
        t->path = t->origin;
        const char *q = memchr(t->origin, '?', t->origin_len);
        t->path_len = q != NULL ? (size_t)(q - t->origin) : t->origin_len;
    }

    if (t->req_chunked && h->minor == 0)
        return head_error(t, 400, "Transfer-Encoding in an HTTP/1.0 request");
    unsigned nte = 0;
    rp_http_find(h, "transfer-encoding", &nte);
    if (nte > 0 && !t->req_chunked)
        return head_error(t, 400, "Transfer-Encoding without chunked");
    const rp_snapshot_t *s = t->snap;
    if (s->limits.max_body_bytes > 0 && t->req_has_cl
        && t->req_content_length > s->limits.max_body_bytes)
        return head_error(t, 413, "Content-Length larger than limits.max_body_bytes");

    unsigned nexp = 0;
    const rp_hfield_t *exp = rp_http_find(h, "expect", &nexp);
    if (exp != NULL && h->minor == 1) {
        if (nexp > 1 || strcasecmp(rp_hf_value(h, exp), "100-continue") != 0)
            return head_error(t, 417, "unsupported Expect");
        t->expect_continue = t->req_chunked || t->req_content_length > 0;
    }

    unsigned nid = 0;
    const rp_hfield_t *rid = rp_http_find(h, "x-request-id", &nid);
    if (nid == 1 && rp_request_id_valid(rp_hf_value(h, rid), rid->value_len))
        memcpy(t->id, rp_hf_value(h, rid), rid->value_len + 1);
    /* Without a body the request is complete with its head; the parser's
     * end-of-message event comes later and only pauses the parser. */
    if (!t->req_chunked && t->req_content_length == 0)
        t->req_done = 1;
    (void)c;
    return 0;
}

static void
head_done(rp_conn_t *c)
{
    rp_txn_t *t = c->txn;
    evtimer_del(c->timer);
    c->state = RP_CONN_TXN;
    if (validate_head(c, t) < 0) {
        rp_conn_send_error(c, t);
        return;
    }
    rp_txn_start(t);
}

void
rp_bev_flush(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0)
        return;
    if (!(bufferevent_get_enabled(bev) & EV_WRITE)) {
        /* A socket bufferevent freezes the front of its output buffer;
         * it thaws it around its own writes, and so do we.  Errors (EPIPE,
         * ECONNRESET) are left for the bufferevent to report through its
         * event callback once EV_WRITE is enabled. */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
}

/* ---- input processing ---- */

static bool
may_parse(const rp_conn_t *c)
{
    switch (c->state) {
    case RP_CONN_IDLE:
    case RP_CONN_HEAD:
        return true;
    case RP_CONN_TXN:
        return c->txn != NULL ? rp_txn_wants_body(c->txn) : true;
    default:
        return false;
    }
}

static void
parse_failed(rp_conn_t *c, llhttp_errno_t err)
{
    int status = c->parse_error ? c->parse_error : 400;
    const char *reason = c->parse_reason ? c->parse_reason : llhttp_get_error_reason(&c->parser);
    if (reason == NULL)
        reason = llhttp_errno_name(err);
    if (c->txn == NULL)
        c->txn = rp_txn_new(c);
    rp_txn_t *t = c->txn;
    if (c->state == RP_CONN_TXN) {
        /* Body phase: the transaction is under way. */
        rp_txn_client_error(t, status, status == 413 ? RP_CLOSE_LIMIT : RP_CLOSE_BAD_REQUEST, reason);
        return;
    }
    evtimer_del(c->timer);
    c->state = RP_CONN_TXN;
    t->status = status;
    t->why = status == 400 ? RP_CLOSE_BAD_REQUEST : RP_CLOSE_LIMIT;
    t->reason = reason;
    t->client_keepalive = false;
    rp_conn_send_error(c, t);
}

static void
conn_parse(rp_conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (evbuffer_get_length(in) > 0 && may_parse(c)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        llhttp_errno_t err = llhttp_get_errno(&c->parser);
        if (err == HPE_PAUSED)
            llhttp_resume(&c->parser);
        else if (err == HPE_PAUSED_UPGRADE)
            llhttp_resume_after_upgrade(&c->parser);
        const char *data = v.iov_base;
        err = llhttp_execute(&c->parser, data, v.iov_len);
        size_t used = v.iov_len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (c->state == RP_CONN_HEAD || c->head_complete) {
            c->head_bytes += used;
            const rp_snapshot_t *s = conn_snap(c);
            if (c->head_bytes > s->limits.max_header_bytes && err == HPE_OK) {
                c->parse_error = 431;
                c->parse_reason = "request head larger than limits.max_header_bytes";
                err = HPE_USER;
            }
        }
        if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
            parse_failed(c, err);
            return;
        }
        evbuffer_drain(in, used);
        if (c->head_complete) {
            c->head_complete = false;
            head_done(c);
            continue;
        }
        if (c->msg_complete) {
            c->msg_complete = false;
            if (c->txn != NULL && !c->txn->req_done)
                rp_txn_req_end(c->txn);
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE && c->txn == NULL)
            continue;
    }
}

/* The client half-closed and what it sent has been parsed: end what can
 * no longer complete. */
static void
after_peer_eof(rp_conn_t *c)
{
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return;   /* parsing waits for the transaction; more to come */
    rp_txn_t *t = c->txn;
    switch (c->state) {
    case RP_CONN_IDLE:
        close_after_flush(c);
        return;
    case RP_CONN_HEAD:
        /* A request head that will never end. */
        t->why = RP_CLOSE_CLIENT_ABORT;
        t->reason = "client closed inside the request head";
        t->client_keepalive = false;
        c->state = RP_CONN_TXN;
        rp_conn_txn_done(c, false);
        return;
    case RP_CONN_TXN:
        if (t != NULL && !t->req_done && rp_txn_wants_body(t))
            rp_txn_client_error(t, 400, RP_CLOSE_CLIENT_ABORT,
                                "client closed before the request body ended");
        return;
    default:
        return;
    }
}

static void
conn_process(rp_conn_t *c)
{
    for (;;) {
        conn_parse(c);
        rp_reader_drained(&c->rd);
        if (c->peer_eof)
            after_peer_eof(c);
        rp_txn_t *t = c->txn;
        if (t == NULL || t->up == NULL)
            return;
        /* Send the body bytes just parsed; if the backend took them all,
         * go on parsing at once instead of waiting for a write event. */
        struct evbuffer *out = bufferevent_get_output(t->up->bev);
        rp_bev_flush(t->up->bev);
        if (!t->client_paused || evbuffer_get_length(out) > RP_WBUF_LOW)
            return;
        t->client_paused = 0;
    }
}

/* ---- events ---- */

static void
read_cb(void *arg)
{
    rp_conn_t *c = arg;
    if (c->state == RP_CONN_CLOSING) {
        /* Lingering: read and discard so that our response is not lost to
         * a reset, but only so much. */
        struct evbuffer *in = bufferevent_get_input(c->bev);
        c->head_bytes += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->head_bytes > LINGER_MAX_BYTES) {
            rp_conn_free(c);
            return;
        }
        rp_reader_drained(&c->rd);
        return;
    }
    conn_process(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    rp_conn_t *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (c->state == RP_CONN_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && !c->closing_now) {
            /* Flushed: half-close and linger until the client closes. */
            c->closing_now = true;
            shutdown(bufferevent_getfd(bev), SHUT_WR);
            c->head_bytes = 0;
            /* Nothing to linger for once the client has closed its side. */
            arm_timer(c, c->peer_eof ? 0 : LINGER_MS);
        }
        return;
    }
    if (c->txn != NULL && c->state == RP_CONN_TXN)
        rp_txn_client_drained(c->txn);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    rp_conn_t *c = arg;
    (void)bev;
    if (c->state == RP_CONN_TXN && c->txn != NULL && (what & BEV_EVENT_TIMEOUT)
        && (what & BEV_EVENT_READING)) {
        rp_txn_client_error(c->txn, 408, RP_CLOSE_CLIENT_TIMEOUT,
                            "client sent no request body bytes for timeouts.client_idle_ms");
        return;
    }
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->peer_eof
        && (c->state != RP_CONN_CLOSING
            || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)) {
        /* The client half-closed.  What it sent before is still served,
         * pipelined requests included; then the connection closes (see the
         * end of conn_process). */
        c->peer_eof = true;
        rp_reader_disable(&c->rd);
        if (c->state != RP_CONN_CLOSING)
            conn_process(c);
        return;
    }
    if (c->txn != NULL) {
        if (what & BEV_EVENT_TIMEOUT)
            rp_txn_abort(c->txn, RP_CLOSE_CLIENT_TIMEOUT, "client stopped reading");
        else
            rp_txn_abort(c->txn, RP_CLOSE_CLIENT_ABORT, "client closed the connection");
    }
    if (what & BEV_EVENT_TIMEOUT) {
        /* A client that stopped reading: reset rather than close, so the
         * kernel drops what is still queued for it instead of trickling it
         * out (and holding the memory) for minutes. */
        struct linger lg = { 1, 0 };
        setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    rp_conn_free(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case RP_CONN_HEAD:
        if (c->txn != NULL) {
            rp_txn_t *t = c->txn;
            c->state = RP_CONN_TXN;
            t->status = 408;
            t->why = RP_CLOSE_CLIENT_TIMEOUT;
            t->reason = "request head not complete within timeouts.client_header_ms";
            t->client_keepalive = false;
            rp_conn_send_error(c, t);
            return;
        }
        rp_conn_free(c);
        return;
    case RP_CONN_IDLE:
    case RP_CONN_CLOSING:
        rp_conn_free(c);
        return;
    default:
        return;
    }
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    (void)fd;
    (void)what;
    if (c->state == RP_CONN_CLOSING)
        return;
    conn_process(c);
}

void
rp_conn_resume(rp_conn_t *c)
{
    event_active(c->resume, 0, 0);
}

int
rp_conn_new(rp_worker_t *w, int fd, const struct sockaddr *sa, socklen_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_settings);
    (void)len;
    rp_conn_t *c = rp_xcalloc(1, sizeof *c);
    c->w = w;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        free(c);
        return -1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_ip, sizeof c->peer_ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", c->peer_ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, c->peer_ip, sizeof c->peer_ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", c->peer_ip, ntohs(s4->sin_port));
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
    c->parser.data = c;
    c->timer = evtimer_new(w->base, timer_cb, c);
    c->resume = event_new(w->base, -1, 0, resume_cb, c);
    c->state = RP_CONN_IDLE;
    TAILQ_INSERT_TAIL(&w->conns, c, link);

    const rp_snapshot_t *s = w->snap;
    bufferevent_setcb(c->bev, NULL, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, RP_WBUF_LOW, 0);
    bufferevent_set_timeouts(c->bev, NULL, rp_timeout_tv(w->base, s->timeouts.client_idle_ms));
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    rp_reader_init(&c->rd, w->base, c->bev, RP_RBUF_HIGH);
    rp_reader_setcb(&c->rd, read_cb, event_cb, c);
    rp_reader_enable(&c->rd);
    /* The first request gets client_header_ms from the accept on. */
    arm_timer(c, s->timeouts.client_header_ms);
    if (rp_modules_on_accept(c, w->snap) != RP_CONTINUE)
        rp_conn_free(c);   /* accepted, then refused by a module */
    return 0;
}

void
rp_conn_free(rp_conn_t *c)
{
    if (c->txn != NULL) {
        rp_txn_abort(c->txn, RP_CLOSE_CLIENT_ABORT, "connection closed");
        rp_txn_free(c->txn);
        c->txn = NULL;
    }
    event_free(c->timer);
    event_free(c->resume);
    rp_reader_release(&c->rd);
    bufferevent_free(c->bev);
    TAILQ_REMOVE(&c->w->conns, c, link);
    rp_worker_conn_closed(c->w);
    free(c);
}

static void
close_after_flush(rp_conn_t *c)
{
    c->state = RP_CONN_CLOSING;
    c->closing_now = false;
    evtimer_del(c->timer);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    rp_reader_set_timeout(&c->rd, 0);
    if (!c->peer_eof)
        rp_reader_enable(&c->rd);
    rp_bev_flush(c->bev);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        write_cb(c->bev, c);
    /* else write_cb runs when the output is flushed */
}

void
rp_conn_txn_done(rp_conn_t *c, bool keepalive)
{
    rp_txn_t *t = c->txn;
    rp_bev_flush(c->bev);
    bool body_pending = t->req_head_sent ? !t->req_done
                                         : (t->req_chunked || t->req_content_length > 0) && !t->req_done;
    c->txn = NULL;
    c->requests++;
    rp_txn_free(t);
    if (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        keepalive = false;
    if (!keepalive || body_pending) {
        close_after_flush(c);
        return;
    }
    c->state = RP_CONN_IDLE;
    rp_reader_set_timeout(&c->rd, 0);   /* the idle timer takes over */
    c->head_bytes = 0;
    c->parse_error = 0;
    c->parse_reason = NULL;
    if (!c->peer_eof)
        rp_reader_enable(&c->rd);
    arm_timer(c, c->w->snap->timeouts.client_idle_ms);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        rp_conn_resume(c);
}

void
rp_conn_send_error(rp_conn_t *c, rp_txn_t *t)
{
    char body[256];
    int status = t->status ? t->status : 500;
    t->status = status;
    int blen = snprintf(body, sizeof body, "%d %s\nrequest_id: %s\n", status,
                        rp_http_reason(status), t->id);
    /* Keep the connection only when the request was read to its end (or
     * had no body) and the client wants it. */
    bool keep = t->client_keepalive && status != 400 && status != 408 && status < 500
                && (t->req_done || (!t->req_chunked && t->req_content_length == 0));
    if (status == 502 || status == 503 || status == 504)
        keep = t->client_keepalive && (t->req_done || (!t->req_chunked && t->req_content_length == 0));
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        "X-Request-Id: %s\r\nConnection: %s\r\n\r\n",
        status, rp_http_reason(status), blen, t->id, keep ? "keep-alive" : "close");
    /* A response to HEAD never has a body, error or not: the client
     * would read it as the start of the next response. */
    if (!t->head_request) {
        evbuffer_add(out, body, (size_t)blen);
        t->bytes_out += (uint64_t)blen;
    }
    t->resp_head_sent = 1;
    if (t->why == RP_CLOSE_OK)
        t->why = RP_CLOSE_INTERNAL;
    rp_log(status >= 500 ? RP_LOG_WARN : RP_LOG_INFO, t, "%d %s: %s", status,
           rp_http_reason(status), t->reason ? t->reason : "error");
    rp_conn_txn_done(c, keep);
}
