/* SPDX-License-Identifier: MIT */
/*
 * Client connections (see conn.h): accept-time set-up, the HTTP/1.x request
 * parser glue, request-side limits and timers, keep-alive, pipelining,
 * lingering close, and the HTTP/1 downstream: every byte of HTTP/1 framing
 * sent to a client (response heads, chunked bodies, interim and error
 * responses) is written here.  What happens between a valid request head
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
#include "accept.h"
#include "conn.h"
#include "h2.h"
#include "hbuild.h"
#include "io.h"
#include "proxy.h"
#include "worker.h"
#include "ws.h"
#include "util.h"

#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1u << 20)
/* Most body bytes already buffered that are checked before a request head
 * is forwarded (the input buffer holds at most RP_RBUF_HIGH anyway). */
#define BODY_CHECK_MAX RP_RBUF_HIGH

static llhttp_settings_t req_settings;
static llhttp_settings_t probe_settings;

static void conn_process(rp_conn_t *c);
static void close_after_flush(rp_conn_t *c);
static void conn_txn_done(rp_conn_t *c, bool keepalive);
static int limit_error(rp_conn_t *c, int status, rp_error_t word, const char *reason);

/* Whether c is idle and whole, waiting to be compacted (counted per
 * worker). */
static void
set_grace(rp_conn_t *c, bool on)
{
    if (c->idle_grace == on)
        return;
    c->idle_grace = on;
    if (on)
        c->w->idle_whole++;
    else
        c->w->idle_whole--;
}

static void
arm_timer(rp_conn_t *c, unsigned ms)
{
    set_grace(c, false);
    rp_event_add(c->timer, rp_timeout_tv(c->w->base, ms));
}

static bool conn_compact(rp_conn_t *c, unsigned left_ms);

/* Between requests: client_idle_ms, in two steps where the connection
 * may give up all but its socket after the first (conn_compact). */
static void
arm_idle(rp_conn_t *c)
{
    unsigned ms = c->w->snap->timeouts.client_idle_ms;
    if (ms <= RP_IDLE_COMPACT_MS || !rp_tr_is_tcp(c->tr)) {
        arm_timer(c, ms);
        return;
    }
    /* Past the worker's RP_IDLE_WHOLE_MAX whole idle connections, the
     * grace is short: a crowd of idle clients gives its memory back
     * within RP_IDLE_COMPACT_SOON_MS, while a client whose next request
     * follows sooner (a busy keep-alive one) never pays the switch. */
    unsigned grace = c->w->idle_whole >= RP_IDLE_WHOLE_MAX ? RP_IDLE_COMPACT_SOON_MS
                                                           : RP_IDLE_COMPACT_MS;
    arm_timer(c, grace);
    set_grace(c, true);
    c->idle_left_ms = ms - grace;
}

static const rp_snapshot_t *
conn_snap(const rp_conn_t *c)
{
    return c->txn != NULL ? c->txn->snap : c->w->snap;
}

/* ---- slow clients (rate.h): both meters use c->timer while a
 * transaction runs, and the response meter while a connection closing
 * flushes its last response: the times it is not the header, idle or
 * linger timer ---- */

static unsigned
min_rate(const rp_conn_t *c)
{
    const rp_snapshot_t *s = c->txn != NULL ? c->txn->snap : c->w->snap;
    return s->timeouts.client_min_bytes_per_s;
}

static uint64_t
acked(rp_conn_t *c)
{
    return rp_fd_bytes_acked(rp_tr_fd(c->tr));
}

static void
slow_stop(rp_conn_t *c)
{
    rp_rate_stop(&c->body_rate);
    rp_rate_stop(&c->out_rate);
}

/* The timer fires when the earlier running window is due.  Not one of the
 * shared timeouts (rp_timeout_tv): the time left differs every time. */
static void
slow_arm(rp_conn_t *c)
{
    uint64_t now = rp_now_us();
    unsigned ms = 0;
    if (rp_rate_running(&c->body_rate))
        ms = rp_rate_due_ms(&c->body_rate, now);
    if (rp_rate_running(&c->out_rate)) {
        unsigned o = rp_rate_due_ms(&c->out_rate, now);
        if (ms == 0 || o < ms)
            ms = o;
    }
    if (ms == 0)
        return;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    rp_event_add(c->timer, &tv);
}

/* Whether the response meter may run: a transaction's response, or the
 * last one still leaving a closing connection. */
static bool
out_metered(const rp_conn_t *c)
{
    return c->state == RP_CONN_TXN || (c->state == RP_CONN_CLOSING && !c->closing_now);
}

/* Write what is queued now; remember the most ever queued, a figure the
 * debug log reports when the connection closes.  What the socket cannot
 * take now waits on the client: its reading is measured from then on. */
static void
conn_flush(rp_conn_t *c)
{
    size_t n = evbuffer_get_length(c->tr->out);
    if (n > c->out_peak)
        c->out_peak = n;
    rp_tr_flush(c->tr);
    if (!rp_rate_running(&c->out_rate) && out_metered(c)
        && evbuffer_get_length(c->tr->out) > 0 && min_rate(c) > 0) {
        rp_rate_resume(&c->out_rate, rp_now_us(), acked(c));
        slow_arm(c);
    }
}

/* c->timer while a meter runs.  Returns true when c was freed. */
static bool
slow_check(rp_conn_t *c)
{
    rp_txn_t *t = c->txn;
    unsigned min = min_rate(c);
    uint64_t now = rp_now_us();
    if (min == 0) {
        slow_stop(c);   /* a reload turned it off */
        return false;
    }
    if (rp_rate_running(&c->body_rate)) {
        if (t == NULL || !rp_txn_wants_body(t)) {
            /* Ended, or paused by a backend slower than the client:
             * resume_body goes on with the window. */
            rp_rate_pause(&c->body_rate, now, c->body_wire);
        } else if (evbuffer_get_length(c->tr->in) > 0) {
            rp_rate_start(&c->body_rate, now, c->body_wire);   /* ours to take */
        } else if (rp_rate_too_slow(&c->body_rate, now, c->body_wire, min)) {
            slow_stop(c);
            rp_txn_client_error(t, 408, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_BODY_TOO_SLOW,
                                "client sent the request body slower than "
                                "timeouts.client_min_bytes_per_s");
            return false;
        }
    }
    if (rp_rate_running(&c->out_rate)) {
        if (evbuffer_get_length(c->tr->out) == 0 || !out_metered(c)) {
            rp_rate_pause(&c->out_rate, now, acked(c));   /* caught up */
        } else if (rp_rate_too_slow(&c->out_rate, now, acked(c), min)) {
            if (t != NULL)
                rp_txn_abort(t, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_CLIENT_TOO_SLOW,
                             "client read the response slower than "
                             "timeouts.client_min_bytes_per_s");
            else if (rp_log_level >= RP_LOG_DEBUG)
                rp_log(RP_LOG_DEBUG, NULL, "connection from %s reset: the end of its last "
                       "response read slower than timeouts.client_min_bytes_per_s",
                       c->peer.text);
            c->reset_soon = true;   /* drop what its kernel still holds */
            rp_conn_free(c);
            return true;
        }
    }
    slow_arm(c);
    return false;
}

static rp_txn_t *
conn_txn_new(rp_conn_t *c)
{
    return rp_txn_new(c->w, &rp_h1_downstream, c, &c->peer);
}

/* ---- parser callbacks: record, never free ---- */

static int
on_message_begin(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    if (c->txn != NULL)
        return HPE_INTERNAL;   /* cannot happen: parsing pauses between requests */
    c->txn = conn_txn_new(c);
    if (c->txn == NULL)
        return limit_error(c, 503, RP_ERR_OUT_OF_MEMORY, "out of memory for a request");
    c->head_bytes = 0;
    c->trailer_bytes = 0;
    c->in_body = false;
    if (c->state == RP_CONN_IDLE && (c->requests > 0 || c->drain_soft))
        arm_timer(c, c->txn->snap->timeouts.client_header_ms);   /* (past a drain's grace too) */
    c->state = RP_CONN_HEAD;
    return 0;
}

static int
limit_error(rp_conn_t *c, int status, rp_error_t word, const char *reason)
{
    c->parse_error = status;
    c->parse_word = word;
    c->parse_reason = reason;
    return HPE_USER;
}

#define HEAD_TOO_LARGE(c) \
    limit_error((c), 431, RP_ERR_HEADERS_TOO_LARGE, "request head larger than limits.max_header_bytes")
/* A head function failed (rc): too large, or out of memory. */
#define HEAD_ERROR(c, rc) \
    ((rc) == RP_HEAD_NOMEM ? limit_error((c), 503, RP_ERR_OUT_OF_MEMORY, "out of memory for the request head") \
                           : HEAD_TOO_LARGE(c))

static int
on_method_complete(llhttp_t *p)
{
    /* The method and the version are known only once the parser has
     * passed them: a request that fails earlier is logged without them,
     * never with llhttp's zero values (DELETE, HTTP/0.0). */
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
on_url(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    rp_txn_t *t = c->txn;
    if (t->req.target_len + len > t->snap->limits.max_uri_bytes)
        return limit_error(c, 414, RP_ERR_URI_TOO_LONG,
                           "request target longer than limits.max_uri_bytes");
    int rc = rp_http_head_add_target(&t->req, at, len);
    if (rc < 0)
        return HEAD_ERROR(c, rc);
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
        return limit_error(c, 431, RP_ERR_HEADERS_TOO_LARGE,
                           "request trailer larger than limits.max_header_bytes");
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
        return limit_error(c, 431, RP_ERR_HEADERS_TOO_LARGE,
                           "more header fields than limits.max_headers");
    int rc = rp_http_head_add_name(&t->req, at, len);
    if (rc < 0)
        return HEAD_ERROR(c, rc);
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    rp_conn_t *c = p->data;
    /* A value span that ended inside the bytes being parsed, then resumed:
     * llhttp joined an obs-fold line.  Refused (RFC 9112 5.2 lets a
     * server answer 400), so that no two parsers read the head apart. */
    if (c->value_cut)
        return limit_error(c, 400, RP_ERR_BAD_REQUEST, "obs-fold in a header field");
    c->value_cut = at + len < c->exec_end;
    if (c->in_body || c->txn == NULL)
        return trailer(c, len);
    int rc = rp_http_head_add_value(&c->txn->req, at, len);
    if (rc < 0)
        return HEAD_ERROR(c, rc);
    return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    c->value_cut = false;
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    rp_conn_t *c = p->data;
    rp_txn_t *t = c->txn;
    if (t->req.last_cb == 2 || t->req.last_cb == 1 || t->req.target_len > 0) {
        int rc = rp_http_head_finish(&t->req);
        if (rc < 0)
            return HEAD_ERROR(c, rc);
    }
    if (!rp_http_names_ok(&t->req))
        return limit_error(c, 400, RP_ERR_BAD_REQUEST, "header field without a name");
    t->req.method = p->method;
    t->req.major = p->http_major;
    t->req.minor = p->http_minor;
    t->req_chunked = (p->flags & F_CHUNKED) != 0;
    t->req_has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    t->req_has_te = (p->flags & F_TRANSFER_ENCODING) != 0;
    t->req_content_length = t->req_has_cl ? p->content_length : 0;
    c->keepalive = llhttp_should_keep_alive(p) != 0;
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
    int rc = rp_txn_req_body(c->txn, at, len);
    if (rc == RP_BODY_NOMEM)
        return limit_error(c, 503, RP_ERR_OUT_OF_MEMORY, "out of memory for the request body");
    if (rc < 0)
        return limit_error(c, 413, RP_ERR_BODY_TOO_LARGE,
                           "request body larger than limits.max_body_bytes");
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

static int
on_probe_complete(llhttp_t *p)
{
    (void)p;
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
    req_settings.on_header_value_complete = on_header_value_complete;
    req_settings.on_headers_complete = on_headers_complete;
    req_settings.on_body = on_body;
    req_settings.on_message_complete = on_message_complete;
    /* The probe only follows the framing of a body already buffered. */
    llhttp_settings_init(&probe_settings);
    probe_settings.on_message_complete = on_probe_complete;
}

static void
head_done(rp_conn_t *c)
{
    evtimer_del(c->timer);
    c->state = RP_CONN_TXN;
    rp_txn_start(c->txn);
}

/* ---- input processing ---- */

static bool
may_parse(const rp_conn_t *c)
{
    switch (c->state) {
    case RP_CONN_IDLE:
    case RP_CONN_HEAD:
        /* Responses the proxy writes itself (404, 417, ...) to a client
         * that pipelines and does not read would grow the output without
         * bound: parse the next request only once the client has taken
         * the previous answers down to the watermark. */
        return evbuffer_get_length(c->tr->out) <= RP_WBUF_HIGH;
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
    rp_error_t word = c->parse_error ? c->parse_word : RP_ERR_BAD_REQUEST;
    const char *reason = c->parse_reason ? c->parse_reason : llhttp_get_error_reason(&c->parser);
    if (reason == NULL)
        reason = llhttp_errno_name(err);
    if (c->txn == NULL)
        c->txn = conn_txn_new(c);
    rp_txn_t *t = c->txn;
    if (t == NULL) {
        /* No memory to answer with: the connection closes. */
        rp_oom_note("a request (connection closed)");
        c->keepalive = false;
        close_after_flush(c);
        return;
    }
    rp_close_t why = status == 400 ? RP_CLOSE_BAD_REQUEST
                     : word == RP_ERR_OUT_OF_MEMORY ? RP_CLOSE_INTERNAL : RP_CLOSE_LIMIT;
    if (c->state == RP_CONN_TXN) {
        /* Body phase: the transaction is under way. */
        if (word == RP_ERR_BAD_REQUEST)
            word = RP_ERR_BAD_BODY;
        rp_txn_client_error(t, status, why, word, reason);
        return;
    }
    evtimer_del(c->timer);
    c->state = RP_CONN_TXN;
    c->keepalive = false;
    rp_txn_respond(t, status, why, word, reason);
}

/* On a plain connection, before its first request: is the client speaking
 * HTTP/2 with prior knowledge?  1 yes, 0 no, -1 cannot tell yet. */
static int
h2_preface(rp_conn_t *c)
{
    char buf[RP_H2_PREFACE_LEN];
    size_t have = evbuffer_get_length(c->tr->in);
    if (have > sizeof buf)
        have = sizeof buf;
    evbuffer_copyout(c->tr->in, buf, have);
    if (memcmp(buf, RP_H2_PREFACE, have) != 0)
        return 0;
    return have == sizeof buf ? 1 : -1;
}

static void
conn_parse(rp_conn_t *c)
{
    struct evbuffer *in = c->tr->in;
    if (c->h2_probe && evbuffer_get_length(in) > 0) {
        int p = h2_preface(c);
        if (p < 0)
            return;   /* wait for the rest of the preface */
        c->h2_probe = false;
        if (p > 0) {
            c->to_h2 = true;
            return;
        }
    }
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
        c->exec_end = data + v.iov_len;
        err = llhttp_execute(&c->parser, data, v.iov_len);
        size_t used = v.iov_len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (c->state == RP_CONN_HEAD || c->head_complete) {
            c->head_bytes += used;
            const rp_snapshot_t *s = conn_snap(c);
            if (c->head_bytes > s->limits.max_header_bytes && err == HPE_OK) {
                HEAD_TOO_LARGE(c);
                err = HPE_USER;
            }
        }
        if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
            parse_failed(c, err);
            return;
        }
        evbuffer_drain(in, used);
        if (c->state == RP_CONN_TXN)
            c->body_wire += used;   /* chunk framing and trailers count too */
        if (c->head_complete) {
            c->head_complete = false;
            head_done(c);
            continue;
        }
        if (c->msg_complete) {
            c->msg_complete = false;
            if (c->txn != NULL && !c->txn->req_done) {
                rp_tr_read_timeout(c->tr, 0);
                rp_txn_req_end(c->txn);
            }
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE && c->txn == NULL)
            continue;
    }
}

/* The client half-closed and what it sent has been parsed: end what can
 * no longer complete.  True when c was freed. */
static bool
after_peer_eof(rp_conn_t *c)
{
    rp_txn_t *t = c->txn;
    if (c->state == RP_CONN_TXN && t != NULL
        && (t->state == RP_TXN_QUEUE || t->state == RP_TXN_RETRY)) {
        /* Still waiting for a backend: nothing was sent anywhere, and the
         * place in the queue is for clients still there.  Whatever the
         * client sent after the head (a body, pipelined requests) goes
         * with it: a request whose client left is never started later.
         * A client that only half-closed is treated the same, as nginx
         * treats it while it waits for a backend. */
        rp_txn_abort(t, RP_CLOSE_CLIENT_ABORT, RP_ERR_CLIENT_CLOSED,
                     t->state == RP_TXN_QUEUE ? "client closed while its request waited in the queue"
                                              : "client closed while its request waited to be retried");
        rp_conn_free(c);
        return true;
    }
    if (evbuffer_get_length(c->tr->in) > 0)
        return false;   /* parsing waits for the transaction; more to come */
    switch (c->state) {
    case RP_CONN_IDLE:
        close_after_flush(c);
        return false;
    case RP_CONN_HEAD:
        /* A request head that will never end. */
        t->why = RP_CLOSE_CLIENT_ABORT;
        t->error = RP_ERR_CLIENT_CLOSED;
        t->reason = "client closed inside the request head";
        c->keepalive = false;
        c->state = RP_CONN_TXN;
        conn_txn_done(c, false);
        return false;
    case RP_CONN_TXN:
        if (t != NULL && !t->req_done && rp_txn_wants_body(t))
            rp_txn_client_error(t, 400, RP_CLOSE_CLIENT_ABORT, RP_ERR_BODY_INCOMPLETE,
                                "client closed before the request body ended");
        return false;
    default:
        return false;
    }
}

/* Hand the transport to an HTTP/2 session and forget this connection. */
static void
conn_to_h2(rp_conn_t *c)
{
    rp_worker_t *w = c->w;
    rp_transport_t *tr = c->tr;
    rp_peer_t peer = c->peer;
    set_grace(c, false);
    evtimer_del(c->timer);
    event_free(c->timer);
    event_free(c->resume);
    if (c->txn != NULL)
        rp_txn_free(c->txn);
    TAILQ_REMOVE(&w->conns, c, link);
    free(c);
    if (rp_h2_new(w, tr, &peer) < 0) {
        rp_peer_release(&peer);
        rp_worker_conn_closed(w, peer.listener);
    }
}

static void
conn_process(rp_conn_t *c)
{
    for (;;) {
        conn_parse(c);
        if (c->to_h2) {
            conn_to_h2(c);
            return;
        }
        rp_tr_drained(c->tr);
        if (c->peer_eof && after_peer_eof(c))
            return;
        rp_txn_t *t = c->txn;
        if (t == NULL || c->state != RP_CONN_TXN)
            return;
        if (!rp_txn_push_body(t)) {
            /* The backend is slower than the client for now: its time does
             * not count against the client (resume_body goes on). */
            if (t->client_paused && rp_rate_running(&c->body_rate))
                rp_rate_pause(&c->body_rate, rp_now_us(), c->body_wire);
            return;
        }
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
        struct evbuffer *in = c->tr->in;
        c->head_bytes += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->head_bytes > LINGER_MAX_BYTES) {
            rp_conn_free(c);
            return;
        }
        rp_tr_drained(c->tr);
        return;
    }
    conn_process(c);
}

static void
write_cb(void *arg)
{
    rp_conn_t *c = arg;
    /* The client took what was queued, down to the low mark: waiting on it
     * ends for now (the next backlog goes on with the window). */
    if (rp_rate_running(&c->out_rate))
        rp_rate_pause(&c->out_rate, rp_now_us(), acked(c));
    if (c->state == RP_CONN_CLOSING) {
        if (evbuffer_get_length(c->tr->out) == 0 && !c->closing_now) {
            /* Flushed: half-close and linger until the client closes. */
            rp_rate_stop(&c->out_rate);
            c->closing_now = true;
            rp_tr_shutdown(c->tr);
            c->head_bytes = 0;
            /* Nothing to linger for once the client has closed its side. */
            arm_timer(c, c->peer_eof ? 0 : LINGER_MS);
        }
        return;
    }
    if (c->txn != NULL && c->state == RP_CONN_TXN) {
        rp_txn_client_drained(c->txn);
        return;
    }
    /* Parsing stopped while the client was not taking our answers. */
    if (evbuffer_get_length(c->tr->in) > 0)
        conn_process(c);
}

static void
event_cb(short what, void *arg)
{
    rp_conn_t *c = arg;
    if (c->state == RP_CONN_TXN && c->txn != NULL && (what & BEV_EVENT_TIMEOUT)
        && (what & BEV_EVENT_READING)) {
        rp_txn_client_error(c->txn, 408, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_BODY_TIMEOUT,
                            "client sent no request body bytes for timeouts.client_idle_ms");
        return;
    }
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->peer_eof
        && (c->state != RP_CONN_CLOSING || evbuffer_get_length(c->tr->out) > 0)) {
        /* The client half-closed.  What it sent before is still served,
         * pipelined requests included; then the connection closes (see
         * after_peer_eof). */
        c->peer_eof = true;
        rp_tr_read(c->tr, false);
        if (c->state != RP_CONN_CLOSING)
            conn_process(c);
        return;
    }
    bool stalled = (what & BEV_EVENT_TIMEOUT) != 0;
    if (c->txn != NULL) {
        if (stalled)
            rp_txn_abort(c->txn, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_CLIENT_STALLED,
                         "client stopped reading");
        else
            rp_txn_abort(c->txn, RP_CLOSE_CLIENT_ABORT, RP_ERR_CLIENT_CLOSED,
                         "client closed the connection");
    }
    /* A client that stopped reading is reset rather than closed, so the
     * kernel drops what is still queued for it instead of trickling it
     * out (and holding the memory) for minutes. */
    if (stalled)
        c->reset_soon = true;
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
            c->state = RP_CONN_TXN;
            c->keepalive = false;
            rp_txn_respond(c->txn, 408, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_HEADER_TIMEOUT,
                           "request head not complete within timeouts.client_header_ms");
            return;
        }
        rp_conn_free(c);
        return;
    case RP_CONN_CLOSING:
        if (!c->closing_now && rp_rate_running(&c->out_rate)) {
            slow_check(c);   /* its last response still leaving */
            return;
        }
        rp_conn_free(c);
        return;
    case RP_CONN_IDLE:
        if (c->idle_grace) {
            /* The rest of client_idle_ms with only the socket kept. */
            unsigned left = c->idle_left_ms;
            if (!conn_compact(c, left))
                arm_timer(c, left);
            return;
        }
        rp_conn_free(c);
        return;
    case RP_CONN_TXN:
        slow_check(c);
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
    if (c->reset_soon) {
        rp_conn_free(c);
        return;
    }
    if (c->state == RP_CONN_CLOSING)
        return;
    conn_process(c);
}

static void
conn_resume(rp_conn_t *c)
{
    event_active(c->resume, 0, 0);
}

/* A connection on tr; requests > 0: one woken from idle (rp_idle_t) that
 * has served that many. */
static int
conn_setup(rp_worker_t *w, rp_transport_t *tr, const rp_peer_t *peer, unsigned requests,
           unsigned idle_left_ms)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_settings);
    rp_conn_t *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->timer = evtimer_new(w->base, timer_cb, c);
        c->resume = event_new(w->base, -1, 0, resume_cb, c);
    }
    if (c == NULL || c->timer == NULL || c->resume == NULL) {
        /* Out of memory: the connection is closed (the caller releases
         * what it counted). */
        if (c != NULL && c->timer != NULL)
            event_free(c->timer);
        if (c != NULL && c->resume != NULL)
            event_free(c->resume);
        free(c);
        rp_tr_free(tr, true);
        rp_oom_note("an HTTP/1 connection");
        return -1;
    }
    c->w = w;
    c->tr = tr;
    c->peer = *peer;
    c->peer.secure = tr->secure;
    llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
    c->parser.data = c;
    c->state = RP_CONN_IDLE;
    c->requests = requests;
    /* Prior-knowledge h2c on plain listeners, in a connection's first bytes. */
    c->h2_probe = !tr->secure && requests == 0;
    /* Draining, or its listener dropped by a reload: one request,
     * answered with Connection: close. */
    c->close_after = w->draining || rp_worker_listener_gone(w, peer->listener);
    TAILQ_INSERT_TAIL(&w->conns, c, link);

    const rp_snapshot_t *s = w->snap;
    rp_tr_setcb(tr, read_cb, write_cb, event_cb, c);
    rp_tr_set_lowat(tr, RP_WBUF_LOW);
    rp_tr_write_timeout(tr, s->timeouts.client_idle_ms);
    rp_tr_read(tr, true);
    if (requests > 0) {
        /* Woken by bytes (or their end): still idle until a request
         * begins (on_message_begin arms the header timer), for what was
         * left of client_idle_ms: a value of its own, a plain timer.  A
         * socket the poller cannot watch now is closed (nothing else
         * would end it). */
        struct timeval tv = { idle_left_ms / 1000, (idle_left_ms % 1000) * 1000 };
        if (!rp_tcp_transport_reading(tr) || rp_event_add(c->timer, &tv) < 0) {
            TAILQ_REMOVE(&w->conns, c, link);
            event_free(c->timer);
            event_free(c->resume);
            free(c);
            rp_tr_free(tr, true);
            return -1;
        }
        return 0;
    }
    /* The first request gets client_header_ms from the accept on (a TLS
     * handshake used part of it). */
    {
        /* What the handshake left of client_header_ms: a value of its own
         * each time, so a plain timer, not one of the shared timeouts. */
        unsigned ms = rp_ms_left(s->timeouts.client_header_ms, peer->accepted_us);
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        rp_event_add(c->timer, &tv);
    }
    return 0;
}

int
rp_conn_new_transport(rp_worker_t *w, rp_transport_t *tr, const rp_peer_t *peer)
{
    return conn_setup(w, tr, peer, 0, 0);
}

/* ---- idle connections (conn.h) ---- */

struct rp_idle {
    struct event     ev;   /* EV_READ on the socket; timeout: the rest of client_idle_ms */
    rp_worker_t     *w;    /* borrowed */
    uint64_t         until_us;   /* the end of client_idle_ms */
    unsigned         requests;
    rp_peer_packed_t peer;
    TAILQ_ENTRY(rp_idle) link;
};

static void
log_closed(const rp_peer_t *peer, unsigned requests, size_t out_peak)
{
    if (rp_log_level >= RP_LOG_DEBUG) {
        char extra[160];
        snprintf(extra, sizeof extra, "\"requests\":%u,\"output_peak\":%zu", requests, out_peak);
        rp_log_fields(RP_LOG_DEBUG, NULL, extra, "connection from %s closed", peer->text);
    }
}

/* The idle connection is over: its socket closed (and its counts). */
static void
idle_free(rp_idle_t *i)
{
    rp_worker_t *w = i->w;
    rp_peer_t peer;
    rp_peer_unpack(&i->peer, &peer);
    event_del(&i->ev);
    close(event_get_fd(&i->ev));
    TAILQ_REMOVE(&w->idles, i, link);
    log_closed(&peer, i->requests, 0);
    rp_peer_release(&peer);
    rp_worker_conn_closed(w, peer.listener);
    free(i);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_idle_t *i = arg;
    if (what & EV_TIMEOUT) {
        idle_free(i);   /* client_idle_ms is over */
        return;
    }
    /* Bytes, or the end of them: a whole connection again.  Its reader
     * is added before the idle event is removed (no system call either);
     * the socket is readable, so it reads on the next turn. */
    rp_worker_t *w = i->w;
    rp_peer_t peer;
    rp_peer_unpack(&i->peer, &peer);
    uint64_t now = rp_now_us();
    unsigned left = i->until_us > now + 1000 ? (unsigned)((i->until_us - now) / 1000) : 1;
    rp_transport_t *tr = rp_tcp_transport_new(w->base, (int)fd, RP_RBUF_HIGH);
    int rc = tr != NULL ? conn_setup(w, tr, &peer, i->requests, left) : -1;
    /* (A failure closed the socket: removing the event of a closed
     * descriptor is quiet in libevent.) */
    event_del(&i->ev);
    TAILQ_REMOVE(&w->idles, i, link);
    if (rc < 0) {
        rp_oom_note("an idle connection woken (connection closed)");
        rp_peer_release(&peer);
        rp_worker_conn_closed(w, peer.listener);
    } else if (rp_log_level >= RP_LOG_DEBUG) {
        rp_log(RP_LOG_DEBUG, NULL, "connection from %s: whole again", peer.text);
    }
    free(i);
}

/* c has been idle RP_IDLE_COMPACT_MS: keep its socket, peer and count
 * only, for left_ms more.  False (c untouched) when c must stay whole:
 * TLS (OpenSSL frees its own buffers between records), bytes buffered
 * either way, a drain or close under way, or no memory. */
static bool
conn_compact(rp_conn_t *c, unsigned left_ms)
{
    rp_worker_t *w = c->w;
    if (c->state != RP_CONN_IDLE || c->txn != NULL || c->requests == 0 || !rp_tr_is_tcp(c->tr)
        || c->peer_eof || c->drain_soft || c->close_after || w->draining
        || evbuffer_get_length(c->tr->in) > 0 || evbuffer_get_length(c->tr->out) > 0)
        return false;
    rp_idle_t *i = malloc(sizeof *i);
    if (i == NULL)
        return false;
    if (!rp_peer_pack(&c->peer, &i->peer)) {
        free(i);
        return false;
    }
    i->w = w;
    i->requests = c->requests;
    /* The idle event is added while the reader's still holds the socket
     * in epoll, and the reader's removed after: neither is a system call. */
    int fd = rp_tr_fd(c->tr);
    event_assign(&i->ev, w->base, fd, EV_READ | EV_PERSIST, idle_cb, i);
    if (rp_event_add(&i->ev, rp_timeout_tv(w->base, left_ms)) < 0) {
        free(i);   /* not watched: it stays whole */
        return false;
    }
    i->until_us = rp_now_us() + (uint64_t)left_ms * 1000u;
    TAILQ_INSERT_TAIL(&w->idles, i, link);
    if (rp_log_level >= RP_LOG_DEBUG)
        rp_log(RP_LOG_DEBUG, NULL, "connection from %s idle: only its socket kept", c->peer.text);
    set_grace(c, false);
    rp_tcp_transport_detach(c->tr);
    event_free(c->timer);
    event_free(c->resume);
    TAILQ_REMOVE(&w->conns, c, link);
    free(c);
    return true;
}

void
rp_conn_idles_close(rp_worker_t *w, bool all, unsigned listener)
{
    rp_idle_t *i, *next;
    for (i = TAILQ_FIRST(&w->idles); i != NULL; i = next) {
        next = TAILQ_NEXT(i, link);
        if (all || i->peer.listener == listener)
            idle_free(i);
    }
}

void
rp_conn_free(rp_conn_t *c)
{
    if (c->txn != NULL) {
        rp_txn_abort(c->txn, RP_CLOSE_CLIENT_ABORT, RP_ERR_CLIENT_CLOSED, "connection closed");
        rp_txn_free(c->txn);
        c->txn = NULL;
    }
    log_closed(&c->peer, c->requests, c->out_peak);
    set_grace(c, false);
    event_free(c->timer);
    event_free(c->resume);
    rp_tr_free(c->tr, c->reset_soon);
    TAILQ_REMOVE(&c->w->conns, c, link);
    rp_peer_release(&c->peer);
    rp_worker_conn_closed(c->w, c->peer.listener);
    free(c);
}

static void
close_after_flush(rp_conn_t *c)
{
    c->state = RP_CONN_CLOSING;
    c->closing_now = false;
    rp_rate_stop(&c->body_rate);
    evtimer_del(c->timer);
    rp_tr_set_lowat(c->tr, 0);
    rp_tr_read_timeout(c->tr, 0);
    if (!c->peer_eof)
        rp_tr_read(c->tr, true);
    conn_flush(c);
    if (evbuffer_get_length(c->tr->out) == 0)
        write_cb(c);
    else
        slow_arm(c);   /* the response meter, if the response waits on the client */
    /* else write_cb runs when the output is flushed */
}

/* While draining: a request is served behind this one (already received
 * whole, a pipelined one waiting in the input). */
static bool
drain_more(const rp_conn_t *c)
{
    return c->txn != NULL && c->txn->req_done && evbuffer_get_length(c->tr->in) > 0;
}

void
rp_conn_drain(rp_conn_t *c)
{
    /* Requests already received are served; the response of the last
     * one says close (drain_soft is decided as each response starts). */
    c->drain_soft = true;
    /* Idle between requests: closed now.  A new connection may have its
     * first request on the way: it is served (within client_header_ms). */
    if (c->state == RP_CONN_IDLE && c->txn == NULL && evbuffer_get_length(c->tr->in) == 0) {
        if (c->requests > 0)
            close_after_flush(c);
        else
            arm_timer(c, RP_DRAIN_GRACE_MS);   /* a request on its way has a moment */
    }
}

static void
conn_txn_done(rp_conn_t *c, bool keepalive)
{
    rp_txn_t *t = c->txn;
    conn_flush(c);
    /* The body is done with; the response meter goes on only if the
     * connection closes behind this response (kept alive, the idle timer
     * bounds what is left). */
    rp_rate_stop(&c->body_rate);
    if (c->drain_soft && !drain_more(c))
        c->close_after = true;   /* its head went out before the drain */
    bool body_pending = t->req_head_sent ? !t->req_done
                                         : (t->req_chunked || t->req_content_length > 0) && !t->req_done;
    c->txn = NULL;
    c->requests++;
    rp_txn_free(t);
    if (c->peer_eof && evbuffer_get_length(c->tr->in) == 0)
        keepalive = false;
    c->resp_chunked = false;
    c->resp_close_delimited = false;
    if (!keepalive || body_pending || c->close_after) {
        close_after_flush(c);
        return;
    }
    c->state = RP_CONN_IDLE;
    rp_rate_stop(&c->out_rate);
    rp_tr_read_timeout(c->tr, 0);   /* the idle timer takes over */
    c->head_bytes = 0;
    c->parse_error = 0;
    c->parse_word = RP_ERR_NONE;
    c->parse_reason = NULL;
    if (!c->peer_eof)
        rp_tr_read(c->tr, true);
    arm_idle(c);
    if (evbuffer_get_length(c->tr->in) > 0)
        conn_resume(c);
}

/* ---- the HTTP/1 downstream ---- */

#define CONN(t) ((rp_conn_t *)(t)->ds_ctx)

static bool
reason_ok(const char *r, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)r[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static int
h1_send_head(rp_txn_t *t, const rp_resp_framing_t *f)
{
    rp_conn_t *c = CONN(t);
    rp_http_head_t *h = &t->resp;
    if (!f->no_body && !f->has_length) {
        if (t->req.minor == 1) {
            c->resp_chunked = true;
        } else if (f->codings != NULL) {
            /* An HTTP/1.0 client knows no transfer-codings: the body
             * cannot be handed over undone. */
            return -1;
        } else {
            c->resp_close_delimited = true;   /* HTTP/1.0 client: end by closing */
        }
    }
    if (!t->req_done) {
        /* The backend answers before the request body ended: the rest of
         * the body will not be read, so the connection closes after this
         * response, and the response says so. */
        c->close_after = true;
    }
    const char *reason = h->buf + h->target_off;
    size_t rlen = h->target_len;
    if (rlen == 0 || !reason_ok(reason, rlen)) {
        reason = rp_http_reason(h->status);
        rlen = strlen(reason);
    }
    head_builder_t b;
    if (!hb_begin(&b, c->tr->out, h->len + 4 * (size_t)h->nfields + rlen + f->codings_len + HEAD_EXTRA)) {
        c->resp_chunked = c->resp_close_delimited = false;
        return RP_SEND_NOMEM;
    }
    HB_LIT(&b, "HTTP/1.1 ");
    hb_uint(&b, (uint64_t)h->status);
    HB_LIT(&b, " ");
    hb_put(&b, reason, rlen);
    HB_LIT(&b, "\r\n");
    hb_fields(&b, h);
    HB_LIT(&b, "X-Request-Id: ");
    hb_str(&b, t->id);
    HB_LIT(&b, "\r\n");
    if (f->has_length && h->status != 204) {
        HB_LIT(&b, "Content-Length: ");
        hb_uint(&b, f->length);
        HB_LIT(&b, "\r\n");
    } else if (c->resp_chunked) {
        HB_LIT(&b, "Transfer-Encoding: ");
        if (f->codings != NULL) {
            hb_put(&b, f->codings, f->codings_len);
            HB_LIT(&b, ", ");
        }
        HB_LIT(&b, "chunked\r\n");
    }
    if (c->drain_soft && !drain_more(c))
        c->close_after = true;
    bool keep = c->keepalive && !c->resp_close_delimited && !c->close_after;
    if (!keep)
        HB_LIT(&b, "Connection: close\r\n");
    else if (t->req.minor == 0)
        HB_LIT(&b, "Connection: keep-alive\r\n");
    HB_LIT(&b, "\r\n");
    t->bytes_out += hb_end(&b);
    return 0;
}

static int
h1_send_body(rp_txn_t *t, const char *at, size_t len)
{
    rp_conn_t *c = CONN(t);
    struct evbuffer *out = c->tr->out;
    if (c->resp_chunked) {
        size_t n = rp_chunk_add(out, at, len);
        if (n == 0)
            return -1;
        t->bytes_out += n;
    } else {
        if (evbuffer_add(out, at, len) < 0)
            return -1;
        t->bytes_out += len;
    }
    return 0;
}

static void
h1_end(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    if (c->resp_chunked) {
        if (evbuffer_add(c->tr->out, "0\r\n\r\n", 5) < 0) {
            /* Out of memory: the body stays unterminated (what the
             * client holds cannot pass for whole) and the connection
             * closes behind it, never reused. */
            rp_oom_note("the end of a response (connection closed)");
            c->close_after = true;
            c->reset_soon = true;
            return;
        }
        t->bytes_out += 5;
    }
}

static void
h1_abort(rp_txn_t *t)
{
    /* The response was cut: reset the connection, so that no client can
     * take what it received for a whole response (a close-delimited body
     * would look complete after a plain close). */
    rp_conn_t *c = CONN(t);
    c->txn = NULL;
    c->requests++;
    rp_txn_free(t);
    c->state = RP_CONN_CLOSING;
    c->closing_now = true;
    evtimer_del(c->timer);
    rp_tr_read(c->tr, false);
    c->reset_soon = true;
    conn_resume(c);
}

static void
h1_send_continue(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    evbuffer_add(c->tr->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    conn_flush(c);
}

static void
h1_send_error(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    char body[256];
    int status = t->status;
    const char *word = rp_error_name(t->error);
    int blen = snprintf(body, sizeof body, "%d %s\nerror: %s\nrequest_id: %s\n", status,
                        rp_http_reason(status), word[0] ? word : "-", t->id);
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = (int)strlen(body);
    /* Keep the connection only when the request was read to its end (or
     * had no body), the client wants it and the error leaves the stream
     * in sync (not 400/408, nor a 5xx of our own making other than the
     * upstream failures 502-504). */
    bool read_whole = t->req_done || (!t->req_chunked && t->req_content_length == 0);
    if (c->drain_soft && !drain_more(c))
        c->close_after = true;
    bool keep = c->keepalive && read_whole && !c->close_after;
    if (status == 400 || status == 408 || (status >= 500 && status != 502 && status != 503
                                           && status != 504))
        keep = false;
    /* What follows a refused CONNECT head is tunnel data, not requests. */
    if (t->req.method == HTTP_CONNECT)
        keep = false;
    struct evbuffer *out = c->tr->out;
    char ra[64] = "";
    if (t->retry_after > 0)
        snprintf(ra, sizeof ra, "Retry-After: %u\r\n", t->retry_after);
    else if (t->error == RP_ERR_WS_VERSION)
        snprintf(ra, sizeof ra, "Sec-WebSocket-Version: 13\r\n");   /* RFC 6455 4.4 */
    const char *srv = t->snap->server_header;
    int hlen = evbuffer_add_printf(out,
        "HTTP/1.1 %d %s\r\n%s%s%sContent-Type: text/plain\r\nContent-Length: %d\r\n"
        "X-Request-Id: %s\r\n%sConnection: %s\r\n\r\n",
        status, rp_http_reason(status), srv != NULL ? "Server: " : "", srv != NULL ? srv : "",
        srv != NULL ? "\r\n" : "", blen, t->id, ra, keep ? "keep-alive" : "close");
    /* A response to HEAD never has a body, error or not: the client
     * would read it as the start of the next response. */
    if (hlen < 0 || (!t->head_request && evbuffer_add(out, body, (size_t)blen) < 0)) {
        /* Out of memory: no answer, or one cut short; the connection is
         * reset behind what went out. */
        rp_oom_note("an error response (connection reset)");
        keep = false;
        c->reset_soon = true;
    } else if (!t->head_request) {
        t->bytes_out += (uint64_t)blen;
    }
    t->resp_head_sent = 1;
    conn_txn_done(c, keep);
}

static void
h1_resume_body(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    if (!t->req_done) {
        /* The body is read now: the client may not pause longer than
         * client_idle_ms between two reads. */
        rp_tr_read_timeout(c->tr, t->snap->timeouts.client_idle_ms);
        /* From now the client is waited on: a window begins (again after
         * a pause that was the backend's doing). */
        if (min_rate(c) > 0) {
            rp_rate_resume(&c->body_rate, rp_now_us(), c->body_wire);
            slow_arm(c);
        }
    }
    conn_resume(c);
}

static void
h1_close_after(rp_txn_t *t)
{
    CONN(t)->close_after = true;
}

static size_t
h1_pending(const rp_txn_t *t)
{
    return evbuffer_get_length(CONN(t)->tr->out);
}

static void
h1_flush(rp_txn_t *t)
{
    conn_flush(CONN(t));
}

/* Run the framing of the body bytes already buffered through a copy of the
 * parser, stopping at the end of this request: a bad chunk-size line right
 * behind the head is caught before anything goes to a backend. */
static int
h1_check_body(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    struct evbuffer *in = c->tr->in;
    if (t->req_done || evbuffer_get_length(in) == 0)
        return 0;
    llhttp_t probe = c->parser;
    probe.settings = &probe_settings;
    probe.data = NULL;
    if (llhttp_get_errno(&probe) == HPE_PAUSED)
        llhttp_resume(&probe);
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
    size_t seen = 0;
    while (seen < BODY_CHECK_MAX) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, &pos, &v, 1) < 1)
            break;
        size_t n = v.iov_len;
        if (n > BODY_CHECK_MAX - seen)
            n = BODY_CHECK_MAX - seen;
        llhttp_errno_t err = llhttp_execute(&probe, v.iov_base, n);
        if (err == HPE_PAUSED)
            return 0;   /* the whole body was there and well-formed */
        if (err != HPE_OK)
            return -1;
        seen += n;
        if (evbuffer_ptr_set(in, &pos, n, EVBUFFER_PTR_ADD) < 0)
            break;
    }
    return 0;
}

static void
h1_done(rp_txn_t *t, bool reusable)
{
    rp_conn_t *c = CONN(t);
    conn_txn_done(c, reusable && c->keepalive && !c->resp_close_delimited && !c->close_after);
}

static bool
h1_client_gone(const rp_txn_t *t)
{
    return CONN(t)->peer_eof;
}

/* ---- a WebSocket tunnel over the connection ---- */

/* What stays of an HTTP/1 connection once it carries a tunnel: its
 * transport and its peer (the transaction's, until the tunnel ends).  It
 * stays counted among the worker's connections. */
typedef struct h1_tunnel {
    rp_worker_t    *w;
    rp_transport_t *tr;
    rp_peer_t       peer;
    rp_ws_t        *ws;
    bool            closing;   /* flushing the last frames, then closed */
    struct event   *linger;    /* owned: bounds the flush */
    TAILQ_ENTRY(h1_tunnel) link;   /* in w->lingering while closing */
} h1_tunnel_t;

static void
ht_free(h1_tunnel_t *ht, bool reset)
{
    if (ht->closing)
        TAILQ_REMOVE(&ht->w->lingering, ht, link);
    if (ht->linger != NULL)
        event_free(ht->linger);
    rp_tr_free(ht->tr, reset);
    rp_peer_release(&ht->peer);
    rp_worker_conn_closed(ht->w, ht->peer.listener);
    free(ht);
}

static void
ht_read_cb(void *arg)
{
    h1_tunnel_t *ht = arg;
    if (ht->closing) {
        evbuffer_drain(ht->tr->in, evbuffer_get_length(ht->tr->in));
        rp_tr_drained(ht->tr);
        return;
    }
    rp_ws_client_input(ht->ws);
}

static void
ht_write_cb(void *arg)
{
    h1_tunnel_t *ht = arg;
    if (ht->closing) {
        if (evbuffer_get_length(ht->tr->out) == 0)
            ht_free(ht, false);
        return;
    }
    rp_ws_client_writable(ht->ws);
}

static void
ht_event_cb(short what, void *arg)
{
    h1_tunnel_t *ht = arg;
    if (ht->closing) {
        ht_free(ht, false);
        return;
    }
    /* The end of its input is a half-close: what it sent is still
     * relayed and it may still read.  Anything else (an error, a write
     * timeout) leaves nothing to send it. */
    rp_ws_client_gone(ht->ws, !((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING)));
}

static void
ht_linger_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ht_free(arg, false);
}

static void
ht_read(void *ctx, bool on)
{
    h1_tunnel_t *ht = ctx;
    rp_tr_read(ht->tr, on);
    if (on)
        rp_tr_drained(ht->tr);
}

static void
ht_flush(void *ctx)
{
    h1_tunnel_t *ht = ctx;
    rp_tr_flush(ht->tr);
    rp_tr_drained(ht->tr);
}

static size_t
ht_pending(void *ctx)
{
    (void)ctx;
    return 0;   /* out is all there is */
}

static void
ht_close(void *ctx, bool graceful)
{
    h1_tunnel_t *ht = ctx;
    if (!graceful || evbuffer_get_length(ht->tr->out) == 0) {
        ht_free(ht, false);
        return;
    }
    /* Its last frames (a Close) go out first, for RP_WS_CLOSE_MS at most;
     * the worker counts it till then (a drain waits, a stop frees it). */
    ht->closing = true;
    TAILQ_INSERT_TAIL(&ht->w->lingering, ht, link);
    rp_tr_set_lowat(ht->tr, 0);
    rp_tr_flush(ht->tr);
    ht->linger = evtimer_new(ht->w->base, ht_linger_cb, ht);
    struct timeval tv = { RP_WS_CLOSE_MS / 1000, (RP_WS_CLOSE_MS % 1000) * 1000 };
    if (ht->linger == NULL) {
        ht_free(ht, false);
        return;
    }
    rp_event_add(ht->linger, &tv);
}

static const rp_ws_client_ops_t ht_ops = { ht_read, ht_flush, ht_pending, ht_close,
                                            RP_WBUF_HIGH, RP_WBUF_LOW };

void
rp_conn_lingering_free(rp_worker_t *w)
{
    h1_tunnel_t *ht;
    while ((ht = TAILQ_FIRST(&w->lingering)) != NULL)
        ht_free(ht, false);
}

static int
h1_tunnel(rp_txn_t *t)
{
    rp_conn_t *c = CONN(t);
    h1_tunnel_t *ht = calloc(1, sizeof *ht);
    if (ht == NULL)
        return RP_SEND_NOMEM;
    /* 101, with what the backend said of the protocol. */
    rp_http_head_t *h = &t->resp;
    head_builder_t b;
    if (!hb_begin(&b, c->tr->out, h->len + 4 * (size_t)h->nfields + HEAD_EXTRA)) {
        free(ht);
        return RP_SEND_NOMEM;
    }
    HB_LIT(&b, "HTTP/1.1 101 Switching Protocols\r\n");
    hb_fields(&b, h);
    HB_LIT(&b, "X-Request-Id: ");
    hb_str(&b, t->id);
    HB_LIT(&b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    t->bytes_out += hb_end(&b);
    /* The connection becomes the tunnel's client side. */
    ht->w = c->w;
    ht->tr = c->tr;
    ht->peer = c->peer;
    t->peer = &ht->peer;   /* rp_ws_start copies it */
    t->ds_ctx = NULL;
    c->txn = NULL;
    c->tr = NULL;
    event_free(c->timer);
    event_free(c->resume);
    TAILQ_REMOVE(&c->w->conns, c, link);
    free(c);
    rp_tr_setcb(ht->tr, ht_read_cb, ht_write_cb, ht_event_cb, ht);
    rp_tr_read_timeout(ht->tr, 0);
    /* A client that stops reading is bounded by the idle timeout. */
    rp_tr_write_timeout(ht->tr, t->snap->websocket.idle_timeout_ms);
    rp_tr_set_lowat(ht->tr, RP_WBUF_LOW);
    /* On failure rp_ws_start has closed ht already (ht_close). */
    rp_ws_t *ws = rp_ws_start(t, &ht_ops, ht, ht->tr->in, ht->tr->out);
    if (ws != NULL)
        ht->ws = ws;
    return 0;
}

const rp_downstream_ops_t rp_h1_downstream = {
    .name = "http/1",
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .end = h1_end,
    .abort = h1_abort,
    .send_continue = h1_send_continue,
    .send_error = h1_send_error,
    .resume_body = h1_resume_body,
    .close_after = h1_close_after,
    .pending = h1_pending,
    .flush = h1_flush,
    .check_body = h1_check_body,
    .done = h1_done,
    .client_gone = h1_client_gone,
    .tunnel = h1_tunnel,
    .resp_high = RP_WBUF_HIGH,
    .resp_low = RP_WBUF_LOW,
    .req_high = RP_WBUF_HIGH,
    .req_low = RP_WBUF_LOW,
};
