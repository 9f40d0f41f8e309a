/* SPDX-License-Identifier: MIT */
/*
 * HTTP/2 client connections (see h2.h).
 *
 * Re-entrancy rule: nghttp2 is called (mem_recv, send) only from the top
 * of an event callback of this file, never from inside a transaction's
 * call into the downstream.  Downstream ops queue (submit, resume data)
 * and schedule h->run; transactions are started and fed only after
 * nghttp2 has returned.  So a stream closed inside nghttp2 can free its
 * transaction (no transaction code is on the stack then), and a whole
 * batch of frames is seen before any upstream work starts: a stream
 * opened and reset in one read never reaches a backend.
 *
 * Flow control follows consumption: automatic WINDOW_UPDATE is off, and
 * request body bytes are acknowledged (nghttp2_session_consume) only as
 * the transaction hands them to its backend; response bytes wait in the
 * stream's buffer until the client's window and the connection's output
 * take them, and the transaction stops reading its backend while that
 * buffer is above H2_STREAM_HIGH (per stream, much lower than HTTP/1's
 * watermark: a connection carries up to h2_max_concurrent_streams).
 */
#include "config.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/txn.h"
#include "accept.h"
#include "h2.h"
#include "io.h"
#include "proxy.h"
#include "rate.h"
#include "worker.h"
#include "ws.h"
#include "mem.h"
#include "util.h"

/* Stop producing frames while this much waits for the socket; go on when
 * the transport's output falls to H2_OUT_LOW. */
#define H2_OUT_HIGH (64u * 1024u)
#define H2_OUT_LOW  (16u * 1024u)
/* A DATA frame sent earns the client one free WINDOW_UPDATE (for the
 * stream and for the connection) and one free PING when it carries at
 * least this much, or ends the response. */
#define H2_CREDIT_MIN_FRAME 1024u
/* Free PINGs do not bank up: a client measuring bandwidth has one out
 * at a time. */
#define H2_FREE_PINGS_MAX 4u
/* Bytes buffered per stream and direction before the producer pauses, and
 * the level at which it resumes. */
#define H2_STREAM_HIGH (64u * 1024u)
#define H2_STREAM_LOW  (16u * 1024u)
/* Checks for streams stalled on a zero window. */
#define H2_SWEEP_MS 1000u

typedef struct h2_stream h2_stream_t;

struct rp_h2 {
    rp_worker_t      *w;          /* borrowed */
    rp_transport_t   *tr;         /* owned */
    rp_peer_t         peer;
    nghttp2_session  *ng;         /* owned */
    unsigned          idle_ms;    /* timeouts of the configuration it started with */
    unsigned          header_ms;
    rp_rate_t         out_rate;   /* timeouts.client_min_bytes_per_s on what
                                   * the client acknowledges */
    struct event     *timer;      /* owned: preface/first request, then idle */
    struct event     *sweep;      /* owned: zero-window stalls */
    struct event     *run;        /* owned: deferred processing */
    TAILQ_HEAD(, h2_stream) streams;
    TAILQ_HEAD(, h2_stream) ready;   /* streams with something to act on */
    unsigned          nstreams;
    unsigned          requests;   /* streams that became transactions */
    unsigned          budget;     /* frames that do no work still tolerated */
    uint64_t          budget_at;  /* µs: last refill by time */
    unsigned          own_resets; /* streams reset for want of memory, with
                                   * no stream state to say so: their
                                   * resets are not the client's doing */
    bool              got_headers;/* a request head has arrived */
    bool              calm;       /* abuse: GOAWAY ENHANCE_YOUR_CALM */
    bool              closing;    /* flush what is queued, then close */
    bool              dead;       /* close now */
    bool              reset_soon; /* close abortively: drop what is queued */
    bool              scheduled;
    bool              input;      /* tr->in holds bytes not yet parsed */
    bool              close_armed;/* timer: closing ends at the latest then */
    bool              draining;   /* shutdown notice sent; GOAWAY follows */
    bool              drain_notice; /* the notice is queued, not yet sent */
    bool              drain_ping; /* the PING sent behind it awaits its ACK */
    uint8_t           drain_opaque[8]; /* that PING's data (random) */
    struct event     *drain_ev;   /* owned: sends that GOAWAY */
    bool              goaway_sent;/* a GOAWAY went out, with goaway_last */
    uint64_t          owed;       /* DATA bytes sent, not yet credited back */
    uint64_t          owed_frames;/* DATA frames sent, not yet credited back */
    uint64_t          free_pings; /* DATA frames sent, not yet matched by a PING */
    /* A copy of the library's stream reset rate limit, which queues a
     * GOAWAY without ending the session: once it may have fired, new
     * streams wait while frames are queued (process_streams). */
    uint64_t          rl_sec;     /* monotonic second of the last refill */
    unsigned          rl_tokens;
    bool              reset_suspect;
    int32_t           goaway_last;
    TAILQ_ENTRY(rp_h2) link;
};

struct h2_stream {
    rp_h2_t          *h;
    int32_t           id;
    rp_txn_t         *txn;        /* owned while the exchange runs */
    struct evbuffer  *body;       /* request body received, not yet handed on */
    struct evbuffer  *resp;       /* response body waiting for the client */
    char             *cookie;     /* crumbs joined with "; " */
    size_t            cookie_len;
    char              authority[256];
    size_t            authority_len;
    char              method[24];
    size_t            method_len;
    int               error;      /* 4xx decided while the head arrived */
    rp_error_t        error_word;
    const char       *error_reason;
    uint64_t          stall_since;/* µs: window at zero since, 0: not stalled */
    uint64_t          owed;       /* DATA bytes sent, not yet credited back */
    uint64_t          owed_frames;/* DATA frames sent, not yet credited back */
    uint64_t          since_us;   /* head begun, then last DATA received */
    bool              has_scheme, has_path, has_authority;
    bool              scheme_ok;  /* :scheme is http or https */
    bool              head_done;  /* HEADERS (and CONTINUATIONs) complete */
    bool              started;    /* the transaction was started */
    bool              body_end;   /* END_STREAM received */
    bool              body_lost;  /* body bytes dropped (out of memory) */
    bool              body_ended; /* rp_txn_req_end called */
    bool              resp_submitted;
    bool              resp_end;   /* the response body is complete */
    bool              deferred;   /* the data source waits for bytes */
    bool              rst_after;  /* reset (NO_ERROR) once the response is out */
    bool              drained;    /* response buffer fell under the low mark */
    bool              answered;   /* a final response was submitted */
    bool              refused;    /* we refused it (above a GOAWAY's last id) */
    bool              cut;        /* the response will not complete: no more DATA
                                   * (what is queued stays until the stream closes,
                                   * since a DATA frame may be half way out) */
    bool              queued;     /* on h->ready */
    bool              rejected;   /* reset as malformed (by us or the library):
                                   * never started, never fed again */
    char              protocol[16]; /* :protocol of an extended CONNECT */
    size_t            protocol_len;
    bool              has_protocol;
    bool              ws_connect; /* an extended CONNECT for WebSocket (RFC 8441):
                                   * its DATA is the tunnel's, kept from the start */
    bool              ws_gone;    /* END_STREAM told to the tunnel */
    rp_ws_t          *ws;         /* the tunnel on this stream, once open */
    uint64_t          received;   /* DATA bytes into body */
    rp_rate_t         body_rate;  /* timeouts.client_min_bytes_per_s on them */
    uint64_t          credited;   /* of them, given back to the client's window */
    TAILQ_ENTRY(h2_stream) link;
    TAILQ_ENTRY(h2_stream) ready_link;
};

static void h2_schedule(rp_h2_t *h);
static void h2_free(rp_h2_t *h);

#define STREAM(t) ((h2_stream_t *)(t)->ds_ctx)

/* The stream has something to act on once nghttp2 has returned. */
static void
mark(h2_stream_t *s)
{
    if (!s->queued) {
        s->queued = true;
        TAILQ_INSERT_TAIL(&s->h->ready, s, ready_link);
    }
    h2_schedule(s->h);
}

/* ---- methods ---- */

static int
method_from(const char *m, size_t len)
{
    static const struct { const char *name; int id; } methods[] = {
#define M_(num, name, str) { #str, num },
        HTTP_METHOD_MAP(M_)
#undef M_
    };
    for (size_t i = 0; i < RP_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, m, len) == 0)
            return methods[i].id;
    return -1;
}

/* ---- streams ---- */

/* Freed streams are kept per worker, with their two (empty) buffers, and
 * reused: three allocations fewer per request.  Bounded: at most
 * STREAM_CACHE_MAX of them (448 bytes each and two empty buffers, about
 * 0.3 MiB) stay after a burst. */
#define STREAM_CACHE_MAX 512

static _Thread_local struct {
    h2_stream_t *head;   /* linked through s->h */
    unsigned     n;
} stream_cache;

static h2_stream_t *
stream_new(rp_h2_t *h, int32_t id)
{
    h2_stream_t *s = stream_cache.head;
    struct evbuffer *body, *resp;
    if (s != NULL) {
        RP_UNPOISON(s, sizeof *s);
        stream_cache.head = (h2_stream_t *)s->h;
        stream_cache.n--;
        body = s->body;
        resp = s->resp;
    } else {
        s = malloc(sizeof *s);
        body = s != NULL ? evbuffer_new() : NULL;
        resp = body != NULL ? evbuffer_new() : NULL;
        if (resp == NULL) {
            if (body != NULL)
                evbuffer_free(body);
            free(s);
            rp_oom_note("an HTTP/2 stream (reset)");
            return NULL;
        }
    }
    memset(s, 0, sizeof *s);
    s->h = h;
    s->id = id;
    s->body = body;
    s->resp = resp;
    TAILQ_INSERT_TAIL(&h->streams, s, link);
    h->nstreams++;
    return s;
}

/* Body bytes received and never handed on still count against the
 * connection's window: give them back. */
static void
stream_free(h2_stream_t *s)
{
    rp_h2_t *h = s->h;
    size_t unread = evbuffer_get_length(s->body);
    if (unread > 0 && h->ng != NULL)
        nghttp2_session_consume_connection(h->ng, unread);
    free(s->cookie);
    if (s->queued)
        TAILQ_REMOVE(&h->ready, s, ready_link);
    TAILQ_REMOVE(&h->streams, s, link);
    h->nstreams--;
    if (stream_cache.n < STREAM_CACHE_MAX) {
        evbuffer_drain(s->body, evbuffer_get_length(s->body));
        evbuffer_drain(s->resp, evbuffer_get_length(s->resp));
        s->h = (rp_h2_t *)stream_cache.head;
        stream_cache.head = s;
        stream_cache.n++;
        RP_POISON(s, sizeof *s);
        return;
    }
    evbuffer_free(s->body);
    evbuffer_free(s->resp);
    free(s);
}

void
rp_h2_cache_free(void)
{
    h2_stream_t *s;
    while ((s = stream_cache.head) != NULL) {
        RP_UNPOISON(s, sizeof *s);
        stream_cache.head = (h2_stream_t *)s->h;
        evbuffer_free(s->body);
        evbuffer_free(s->resp);
        free(s);
    }
    stream_cache.n = 0;
}

/* The client is gone from this stream: end its transaction, if any. */
static void
stream_drop_txn(h2_stream_t *s, rp_close_t why, rp_error_t err, const char *reason)
{
    rp_txn_t *t = s->txn;
    if (t == NULL)
        return;
    s->txn = NULL;
    rp_txn_abort(t, why, err, reason);
    rp_txn_free(t);
}

/* Reset stream id.  A reset that cannot be queued (out of memory) would
 * leave the stream waiting for ever: the whole connection goes then. */
static void
rst(rp_h2_t *h, int32_t id, uint32_t code)
{
    if (nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, id, code) != 0) {
        rp_oom_note("an HTTP/2 stream reset (connection closed)");
        h->dead = true;
    }
}

static void
reset_stream(h2_stream_t *s, uint32_t code)
{
    s->rejected = true;
    rst(s->h, s->id, code);
    h2_schedule(s->h);
}

/* ---- abuse budget ---- */

static void
refund(rp_h2_t *h, unsigned n)
{
    h->budget = h->budget + n < RP_H2_IDLE_FRAME_BUDGET ? h->budget + n : RP_H2_IDLE_FRAME_BUDGET;
}

/* A frame that did no work: charged to the connection's budget, which
 * refills by answered streams and one frame a second. */
static void
spend(rp_h2_t *h)
{
    if (h->calm)
        return;
    uint64_t now = rp_now_us();
    if (now - h->budget_at >= 1000000u) {
        uint64_t secs = (now - h->budget_at) / 1000000u;
        refund(h, secs > RP_H2_IDLE_FRAME_BUDGET ? RP_H2_IDLE_FRAME_BUDGET : (unsigned)secs);
        h->budget_at += secs * 1000000u;
    }
    if (h->budget > 0) {
        h->budget--;
        return;
    }
    h->calm = true;
    rp_metrics_h2_calm(h->w->id);
    rp_log(RP_LOG_DEBUG, NULL, "HTTP/2 client %s sent too many frames that do no work: GOAWAY",
           h->peer.text);
    /* Unless the library is already ending the session (its own limits):
     * a second GOAWAY would announce a higher last stream id. */
    if (nghttp2_session_want_read(h->ng))
        nghttp2_session_terminate_session(h->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* The library counts every RST_STREAM it passes on (this callback sees
 * each) in a token bucket of RP_H2_RESET_BURST refilled by
 * RP_H2_RESET_RATE each monotonic second, and queues a GOAWAY when it
 * runs dry.  The same bucket here, declared dry a few tokens early, says
 * when that GOAWAY may be waiting. */
#define H2_RESET_MARGIN 10u

static void
count_reset(rp_h2_t *h)
{
    if (h->reset_suspect)
        return;
    uint64_t sec = rp_now_us() / 1000000u;
    if (sec > h->rl_sec) {
        uint64_t t = h->rl_tokens + (sec - h->rl_sec) * RP_H2_RESET_RATE;
        h->rl_tokens = t > RP_H2_RESET_BURST ? RP_H2_RESET_BURST : (unsigned)t;
        h->rl_sec = sec;
    }
    if (h->rl_tokens <= H2_RESET_MARGIN)
        h->reset_suspect = true;
    else
        h->rl_tokens--;
}

/* ---- nghttp2 callbacks: record, never call a transaction ---- */

static ssize_t
send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *arg)
{
    rp_h2_t *h = arg;
    (void)ng;
    (void)flags;
    if (evbuffer_get_length(h->tr->out) >= H2_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(h->tr->out, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

/* DATA frames go out without a copy into nghttp2: the frame header, then
 * the bytes moved from the stream's buffer. */
static int
send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
             size_t length, nghttp2_data_source *src, void *arg)
{
    rp_h2_t *h = arg;
    h2_stream_t *s = src->ptr;
    (void)ng;
    if (evbuffer_get_length(h->tr->out) >= H2_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (frame->data.padlen > 0 || evbuffer_get_length(s->resp) < length)
        return NGHTTP2_ERR_CALLBACK_FAILURE;   /* cannot happen: never a corrupt frame */
    if (evbuffer_add(h->tr->out, framehd, 9) != 0
        || evbuffer_remove_buffer(s->resp, h->tr->out, length) != (int)length)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* Credit the client may give back with WINDOW_UPDATE at no charge: at
     * most one update per DATA frame, and no more bytes than were sent.
     * Frames a tiny window cuts small (a client dribbling its window a
     * byte at a time) earn no free frame; nor do PINGs bank up. */
    h->owed += length;
    s->owed += length;
    if (length >= H2_CREDIT_MIN_FRAME || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        h->owed_frames++;
        s->owed_frames++;
        if (h->free_pings < H2_FREE_PINGS_MAX)
            h->free_pings++;
    }
    if (s->txn != NULL)
        s->txn->bytes_out += length;
    if (!s->drained && ((s->txn != NULL && s->txn->up_paused) || s->ws != NULL)
        && evbuffer_get_length(s->resp) <= H2_STREAM_LOW) {
        s->drained = true;
        mark(s);
    }
    return 0;
}

static ssize_t
data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
             uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    h2_stream_t *s = src->ptr;
    (void)ng;
    (void)id;
    (void)buf;
    (void)arg;
    size_t have = evbuffer_get_length(s->resp);
    if (s->cut) {
        s->deferred = false;
        return NGHTTP2_ERR_DEFERRED;   /* the RST_STREAM queued ends it */
    }
    if (have == 0 && !s->resp_end) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = have < length ? have : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == have && s->resp_end)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int
on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
    rp_h2_t *h = arg;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (h->calm)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h2_stream_t *s = stream_new(h, frame->hd.stream_id);
    if (s != NULL) {
        s->txn = rp_txn_new(h->w, &rp_h2_downstream, s, &h->peer);
        if (s->txn == NULL) {
            stream_free(s);
            s = NULL;
            rp_oom_note("an HTTP/2 request (stream reset)");
        }
    }
    if (s == NULL) {
        /* The library resets the stream; the reset is ours, not charged
         * to the client's budget (on_frame_send). */
        h->own_resets++;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_session_set_stream_user_data(ng, s->id, s);
    s->since_us = rp_now_us();
    if (h->got_headers)
        evtimer_del(h->timer);   /* not idle any more */
    return 0;
}

static void
head_error(h2_stream_t *s, int status, rp_error_t word, const char *reason)
{
    if (s->error == 0) {
        s->error = status;
        s->error_word = word;
        s->error_reason = reason;
    }
}

/* A head function failed (rc): too large, or out of memory. */
static void
head_fail(h2_stream_t *s, int rc)
{
    if (rc == RP_HEAD_NOMEM)
        head_error(s, 503, RP_ERR_OUT_OF_MEMORY, "out of memory for the request head");
    else
        head_error(s, 431, RP_ERR_HEADERS_TOO_LARGE, "request head larger than limits.max_header_bytes");
}

static int
add_field(h2_stream_t *s, const char *name, size_t nlen, const char *value, size_t vlen)
{
    rp_txn_t *t = s->txn;
    if (t->req.nfields >= t->snap->limits.max_headers) {
        head_error(s, 431, RP_ERR_HEADERS_TOO_LARGE, "more header fields than limits.max_headers");
        return -1;
    }
    int rc = rp_http_head_add_name(&t->req, name, nlen);
    if (rc == 0)
        rc = rp_http_head_add_value(&t->req, value, vlen);
    if (rc < 0) {
        head_fail(s, rc);
        return -1;
    }
    return 0;
}

static int
on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
          const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    (void)flags;
    (void)arg;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (s == NULL || s->txn == NULL)
        return 0;
    if (s->head_done)
        return 0;   /* trailer fields: dropped, as on HTTP/1 (their size is bounded by the library) */
    if (s->error != 0)
        return 0;   /* answered once the head is complete */
    rp_txn_t *t = s->txn;
    const char *n = (const char *)name, *v = (const char *)value;
    /* nghttp2 has checked the field (RFC 9113 8.2, 8.3): lowercase names,
     * no connection-specific fields, TE only "trailers", pseudo-headers
     * known, once each and before the others. */
    if (nlen > 0 && n[0] == ':') {
        if (nlen == 7 && memcmp(n, ":method", 7) == 0) {
            if (vlen >= sizeof s->method) {
                head_error(s, 400, RP_ERR_BAD_REQUEST, "unknown method");
                return 0;
            }
            memcpy(s->method, v, vlen);
            s->method_len = vlen;
        } else if (nlen == 5 && memcmp(n, ":path", 5) == 0) {
            if (vlen > t->snap->limits.max_uri_bytes) {
                head_error(s, 414, RP_ERR_URI_TOO_LONG, "request target longer than limits.max_uri_bytes");
                return 0;
            }
            int rc = rp_http_head_add_target(&t->req, v, vlen);
            if (rc < 0) {
                head_fail(s, rc);
                return 0;
            }
            s->has_path = true;
        } else if (nlen == 10 && memcmp(n, ":authority", 10) == 0) {
            if (vlen >= sizeof s->authority) {
                head_error(s, 400, RP_ERR_BAD_REQUEST, "invalid :authority");
                return 0;
            }
            memcpy(s->authority, v, vlen);
            s->authority_len = vlen;
            s->has_authority = true;
        } else if (nlen == 9 && memcmp(n, ":protocol", 9) == 0) {
            s->has_protocol = true;
            s->protocol_len = vlen < sizeof s->protocol ? vlen : sizeof s->protocol;
            memcpy(s->protocol, v, s->protocol_len);
            if (vlen >= sizeof s->protocol)
                s->protocol_len = 0;   /* too long to be one we know */
        } else if (nlen == 7 && memcmp(n, ":scheme", 7) == 0) {
            s->has_scheme = true;
            s->scheme_ok = (vlen == 4 && memcmp(v, "http", 4) == 0)
                           || (vlen == 5 && memcmp(v, "https", 5) == 0);
        }
        return 0;
    }
    if (nlen == 6 && memcmp(n, "cookie", 6) == 0) {
        /* Crumbs are joined into one field for HTTP/1.1 (RFC 9113 8.2.3). */
        size_t need = s->cookie_len + (s->cookie_len > 0 ? 2 : 0) + vlen;
        if (need > t->snap->limits.max_header_bytes) {
            head_error(s, 431, RP_ERR_HEADERS_TOO_LARGE,
                       "request head larger than limits.max_header_bytes");
            return 0;
        }
        char *cookie = realloc(s->cookie, need + 1);
        if (cookie == NULL) {
            head_fail(s, RP_HEAD_NOMEM);
            return 0;
        }
        s->cookie = cookie;
        if (s->cookie_len > 0) {
            memcpy(s->cookie + s->cookie_len, "; ", 2);
            s->cookie_len += 2;
        }
        memcpy(s->cookie + s->cookie_len, v, vlen);
        s->cookie_len += vlen;
        return 0;
    }
    /* An extended CONNECT's key is the proxy's to make (RFC 8441 has
     * none): one from the client is dropped.  Pseudo-headers come first,
     * so :protocol is known here. */
    if (s->has_protocol && nlen == 17 && memcmp(n, "sec-websocket-key", 17) == 0)
        return 0;
    /* nghttp2 refuses pseudo-headers after regular ones, so the target
     * (:path) is always stored before the first field; a missing :path is
     * found when the head ends. */
    add_field(s, n, nlen, v, vlen);
    return 0;
}

/* The request head is complete: turn it into the HTTP/1.1-shaped head the
 * transaction checks and forwards.  Returns 0, or -1 when the stream was
 * reset (malformed). */
static int
finish_head(h2_stream_t *s, bool end_stream)
{
    rp_txn_t *t = s->txn;
    rp_http_head_t *rq = &t->req;
    s->head_done = true;
    s->body_end = end_stream;
    t->req.major = 2;
    t->req.minor = 0;
    t->version_known = 1;
    int m = method_from(s->method, s->method_len);
    if (m >= 0) {
        t->req.method = m;
        t->method_known = 1;
        t->head_request = m == HTTP_HEAD;
    }
    if (s->error != 0)
        return 0;
    if (m == HTTP_CONNECT && s->has_protocol) {
        /* An extended CONNECT (RFC 8441; nghttp2 has checked :scheme,
         * :path and :authority): WebSocket is the one protocol served, as
         * an HTTP/1.1 Upgrade towards the backend, with a key of our own
         * (the HTTP/2 client sends none). */
        if (s->protocol_len != 9 || memcmp(s->protocol, "websocket", 9) != 0) {
            head_error(s, 400, RP_ERR_BAD_REQUEST, "extended CONNECT for a protocol other than websocket");
            return 0;
        }
        s->ws_connect = true;
        t->ws_h2 = 1;
        m = HTTP_GET;
        t->req.method = HTTP_GET;
        uint8_t raw[16];
        char key[25];
        if (RAND_bytes(raw, sizeof raw) != 1
            || EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw) != 24) {
            head_error(s, 500, RP_ERR_INTERNAL, "no random bytes for a WebSocket key");
            return 0;
        }
        if (add_field(s, "upgrade", 7, "websocket", 9) < 0
            || add_field(s, "connection", 10, "upgrade", 7) < 0
            || add_field(s, "sec-websocket-key", 17, key, 24) < 0)
            return 0;
    } else if (m == HTTP_CONNECT) {
        /* A well-formed CONNECT (nghttp2 has checked: :authority only). */
        return 0;
    }
    if (m < 0 || m == HTTP_PRI) {
        head_error(s, 400, RP_ERR_BAD_REQUEST, "unknown method");
        return 0;
    }
    if (!s->has_path || !s->has_scheme) {
        reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
        return -1;
    }
    /* Only http and https are proxied, and only origin-form targets (or
     * "*" for OPTIONS): an absolute :path would name another authority.
     * Bytes outside visible ASCII are malformed, as llhttp holds HTTP/1
     * request targets. */
    const char *path = rq->buf + rq->target_off;
    size_t plen = rq->target_len;
    bool asterisk = plen == 1 && path[0] == '*' && m == HTTP_OPTIONS;
    if (!s->scheme_ok || plen == 0 || (path[0] != '/' && !asterisk)) {
        reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
        return -1;
    }
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
            return -1;
        }
    }
    /* Host must agree with :authority (RFC 9113 8.3.1); either names the
     * host, which goes to the backend as Host. */
    unsigned nhost = 0;
    const rp_hfield_t *host = rp_http_find(rq, "host", &nhost);
    if (s->has_authority && host != NULL) {
        if (nhost > 1 || host->value_len != s->authority_len
            || !rp_ascii_ieq(rp_hf_value(rq, host), s->authority, s->authority_len)) {
            reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
            return -1;
        }
    }
    if (s->has_authority && host == NULL
        && add_field(s, "host", 4, s->authority, s->authority_len) < 0)
        return 0;
    if (s->cookie_len > 0 && add_field(s, "cookie", 6, s->cookie, s->cookie_len) < 0)
        return 0;
    int hrc = rp_http_head_finish(rq);
    if (hrc < 0) {
        head_fail(s, hrc);
        return 0;
    }
    /* Body framing towards the backend: Content-Length when the client
     * gave one (nghttp2 holds the DATA to it), chunked when a body of
     * unknown length follows, nothing when the stream ended. */
    unsigned ncl = 0;
    const rp_hfield_t *cl = rp_http_find(rq, "content-length", &ncl);
    if (cl != NULL) {
        const char *v = rp_hf_value(rq, cl);
        uint64_t n = 0;
        if (cl->value_len == 0 || cl->value_len > 19) {
            reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
            return -1;
        }
        for (size_t i = 0; i < cl->value_len; i++) {
            if (!isdigit((unsigned char)v[i])) {
                reset_stream(s, NGHTTP2_PROTOCOL_ERROR);
                return -1;
            }
            n = n * 10 + (uint64_t)(v[i] - '0');
        }
        t->req_has_cl = 1;
        t->req_content_length = n;
    } else if (!end_stream && !s->ws_connect) {
        t->req_chunked = 1;   /* a tunnel's DATA is no request body */
    }
    return 0;
}

static int
on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
    rp_h2_t *h = arg;
    h2_stream_t *s;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (s != NULL && s->txn == NULL && s->ws_connect
            && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->body_end = true;   /* a tunnel's end, on trailer fields */
            mark(s);
            return 0;
        }
        if (s == NULL || s->txn == NULL)
            return 0;
        if (!s->head_done) {
            if (!h->got_headers) {
                h->got_headers = true;
                evtimer_del(h->timer);
            }
            s->since_us = rp_now_us();
            if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
                finish_head(s, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
        } else if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            s->body_end = true;   /* after trailer fields */
        }
        mark(s);
        return 0;
    case NGHTTP2_DATA:
        s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (frame->hd.length <= frame->data.padlen && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            spend(h);   /* empty, or padding only */
        if (s != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->body_end = true;
            mark(s);
        }
        return 0;
    case NGHTTP2_PING:
        /* A PING per burst of DATA received is how clients measure the
         * bandwidth-delay product (gRPC does): free, one per DATA frame
         * sent and a few at most in reserve.  Any other is not. */
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && h->drain_ping
            && memcmp(frame->ping.opaque_data, h->drain_opaque, sizeof h->drain_opaque) == 0) {
            /* The round trip after the notice: GOAWAY now. */
            h->drain_ping = false;
            if (h->drain_ev != NULL) {
                struct timeval now = { 0, 0 };
                rp_event_add(h->drain_ev, &now);
            }
            return 0;
        }
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) || h->free_pings == 0)
            spend(h);   /* an ACK that answers no PING of ours */
        else
            h->free_pings--;
        return 0;
    case NGHTTP2_GOAWAY:
        spend(h);   /* one is news; a stream of them is a flood */
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            spend(h);
        return 0;
    case NGHTTP2_PRIORITY:
        spend(h);
        return 0;
    case NGHTTP2_WINDOW_UPDATE: {
        /* Giving back credit for DATA received is work: free, up to one
         * update per DATA frame sent and no more bytes than were sent.
         * Beyond that (one to open a larger window, say, or updates of
         * a byte each) it is charged.  An update for a stream that is
         * gone was charged as it began (on_begin_frame). */
        uint64_t inc = (uint64_t)frame->window_update.window_size_increment;
        uint64_t *owed = &h->owed, *frames = &h->owed_frames;
        if (frame->hd.stream_id != 0) {
            s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
            if (s == NULL)
                return 0;
            owed = &s->owed;
            frames = &s->owed_frames;
        }
        if (*frames > 0 && inc <= *owed) {
            *owed -= inc;
            (*frames)--;
        } else {
            if (inc > *owed)
                *owed = 0;
            spend(h);
        }
        return 0;
    }
    case NGHTTP2_RST_STREAM:
        s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (s == NULL || !s->answered)
            spend(h);
        count_reset(h);
        return 0;
    default:
        return 0;
    }
}

/* Frame types the library skips silently (extensions) do no work
 * either, nor does a WINDOW_UPDATE for a stream that is gone (the library
 * drops it without a callback). */
static int
on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *arg)
{
    if (hd->type > NGHTTP2_CONTINUATION)
        spend(arg);
    else if (hd->type == NGHTTP2_WINDOW_UPDATE && hd->stream_id != 0
             && nghttp2_session_get_stream_user_data(ng, hd->stream_id) == NULL)
        spend(arg);
    return 0;
}

/* The library found a stream malformed (a bad field, DATA beyond its
 * content-length, a window overflow) and queued its reset: the stream
 * must not start.  The reset itself is charged to the budget when it is
 * sent (on_frame_send). */
static int
on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int code, void *arg)
{
    (void)code;
    (void)arg;
    if (frame->hd.stream_id != 0) {
        h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (s != NULL)
            s->rejected = true;
    }
    return 0;
}

/* Extension frames are skipped; counting them needs the library to
 * report them, which it does only for types registered as wanted. */
static int
on_extension_chunk(nghttp2_session *ng, const nghttp2_frame_hd *hd, const uint8_t *data,
                   size_t len, void *arg)
{
    (void)ng;
    (void)hd;
    (void)data;
    (void)len;
    (void)arg;
    return 0;
}

static int
unpack_extension(nghttp2_session *ng, void **payload, const nghttp2_frame_hd *hd, void *arg)
{
    (void)ng;
    (void)payload;
    (void)hd;
    (void)arg;
    return NGHTTP2_ERR_CANCEL;   /* ignored, as RFC 9113 5.5 asks */
}

/* Body bytes that could not be kept (out of memory): the stream is reset,
 * so that what went on never passes for the whole body. */
static int
data_lost(nghttp2_session *ng, h2_stream_t *s, size_t len)
{
    nghttp2_session_consume(ng, s->id, len);
    rp_oom_note("an HTTP/2 request body (stream reset)");
    /* The body must never end normally now (pump_body answers 503 and
     * cuts the backend's request); a tunnel's byte stream is broken, so
     * the stream is reset, which ends the tunnel (on_stream_close). */
    s->body_lost = true;
    if (s->ws != NULL || s->ws_connect)
        reset_stream(s, NGHTTP2_INTERNAL_ERROR);
    mark(s);
    return 0;
}

static int
on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
              size_t len, void *arg)
{
    (void)arg;
    (void)flags;
    h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, id);
    if (s != NULL && s->ws_connect && !s->rejected) {
        /* Tunnel bytes, before the tunnel opens too: kept, bounded by
         * the stream's window, which opens as the tunnel takes them. */
        if (evbuffer_add(s->body, data, len) < 0)
            return data_lost(ng, s, len);
        s->received += len;
        mark(s);
        return 0;
    }
    if (s == NULL || s->txn == NULL || s->txn->req_done || s->rejected) {
        /* Nobody wants these bytes (the exchange ended early). */
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    /* Bounded by the stream's receive window, which opens again only as
     * the bytes are handed on. */
    if (evbuffer_add(s->body, data, len) < 0)
        return data_lost(ng, s, len);
    s->received += len;
    s->since_us = rp_now_us();
    mark(s);
    return 0;
}

static int
on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
    rp_h2_t *h = arg;
    h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (s->ws != NULL) {
        rp_ws_client_detach(s->ws);   /* the stream goes; the tunnel ends */
        s->ws = NULL;
    }
    if (s->txn != NULL) {
        if (s->rejected || !s->head_done)
            stream_drop_txn(s, RP_CLOSE_BAD_REQUEST, s->started ? RP_ERR_BAD_BODY : RP_ERR_BAD_REQUEST,
                            "malformed HTTP/2 request (stream reset)");
        else
            stream_drop_txn(s, RP_CLOSE_CLIENT_ABORT, RP_ERR_CLIENT_RESET,
                            code == NGHTTP2_NO_ERROR || code == NGHTTP2_CANCEL
                            ? "client reset the stream" : "stream reset");
    }
    stream_free(s);
    if (h->nstreams == 0)
        h2_schedule(h);   /* the idle timer starts */
    return 0;
}

static int
on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
    if (frame->hd.type == NGHTTP2_RST_STREAM && frame->rst_stream.error_code != NGHTTP2_NO_ERROR) {
        /* A stream we reset before answering it (malformed, refused, a
         * window overflow, DATA beyond its content-length): the client
         * can provoke these as cheaply as it sends its own resets. */
        rp_h2_t *h = arg;
        h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (s == NULL && h->own_resets > 0)
            h->own_resets--;
        else if (s == NULL || (!s->answered && !s->refused))
            spend(arg);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        rp_h2_t *h = arg;
        rp_metrics_h2_goaway(h->w->id, frame->goaway.error_code);
        if (h->drain_notice && frame->goaway.last_stream_id == INT32_MAX) {
            /* The shutdown notice is out: the PING goes behind it, so its
             * ACK proves the client has read the notice. */
            h->drain_notice = false;
            if (RAND_bytes(h->drain_opaque, sizeof h->drain_opaque) != 1)
                memcpy(h->drain_opaque, "rp-drain", sizeof h->drain_opaque);
            h->drain_ping = nghttp2_submit_ping(ng, NGHTTP2_FLAG_NONE, h->drain_opaque) == 0;
        }
        return 0;
    }
    if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream_t *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (s != NULL && s->rst_after) {
        /* The response is out; the client need not finish its body. */
        rst(s->h, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

/* A GOAWAY never raises the last stream id of one sent before (RFC 9113
 * 6.8: the client may already be retrying the streams above it on another
 * connection).  nghttp2 can queue two: its reset rate limit queues one
 * without ending the session, and a connection error found further on in
 * the same input (or the frame budget, see spend) queues another, with a
 * higher id, before the first is out.  That one is dropped, and the
 * connection ends once what is queued is out, as it would have. */
static int
before_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
    rp_h2_t *h = arg;
    (void)ng;
    if (frame->hd.type != NGHTTP2_GOAWAY)
        return 0;
    if (h->goaway_sent && frame->goaway.last_stream_id > h->goaway_last) {
        h->closing = true;
        return NGHTTP2_ERR_CANCEL;
    }
    h->goaway_sent = true;
    h->goaway_last = frame->goaway.last_stream_id;
    return 0;
}

/* ---- driving the session ---- */

/* Produce frames while the transport takes them, and write. */
static void
h2_send(rp_h2_t *h)
{
    /* The socket often takes everything at once, and then no write event
     * will come to ask for more: go on while the library has frames and
     * the output stays low (a few rounds, then the next turn). */
    for (int round = 0; round < 8 && !h->dead; round++) {
        int rv = nghttp2_session_send(h->ng);
        if (rv != 0) {
            rp_log(RP_LOG_DEBUG, NULL, "HTTP/2 session with %s: %s", h->peer.text,
                   nghttp2_strerror(rv));
            h->dead = true;
            return;
        }
        rp_tr_flush(h->tr);
        if (!nghttp2_session_want_write(h->ng) || evbuffer_get_length(h->tr->out) > H2_OUT_LOW)
            return;
    }
    if (!h->dead && nghttp2_session_want_write(h->ng) && evbuffer_get_length(h->tr->out) <= H2_OUT_LOW)
        h2_schedule(h);
}

/* Hand request body bytes to the transaction while it takes them. */
static void
pump_body(h2_stream_t *s)
{
    rp_txn_t *t = s->txn;
    rp_h2_t *h = s->h;
    if (t != NULL && s->body_lost && !t->completed) {
        /* Part of the body was lost: the backend's request is cut. */
        evbuffer_drain(s->body, evbuffer_get_length(s->body));
        rp_txn_client_error(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY,
                            "out of memory for the request body");
        return;
    }
    for (;;) {
        while (s->txn != NULL && evbuffer_get_length(s->body) > 0 && rp_txn_wants_body(t)) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(s->body, -1, NULL, &v, 1) < 1)
                break;
            size_t n = v.iov_len;
            int rc = rp_txn_req_body(t, v.iov_base, n);
            if (rc < 0) {
                evbuffer_drain(s->body, n);
                nghttp2_session_consume(h->ng, s->id, n);
                if (rc == RP_BODY_NOMEM)
                    rp_txn_client_error(t, 503, RP_CLOSE_INTERNAL, RP_ERR_OUT_OF_MEMORY,
                                        "out of memory for the request body");
                else
                    rp_txn_client_error(t, 413, RP_CLOSE_LIMIT, RP_ERR_BODY_TOO_LARGE,
                                        "request body larger than limits.max_body_bytes");
                return;
            }
            evbuffer_drain(s->body, n);
            nghttp2_session_consume(h->ng, s->id, n);
        }
        if (s->txn == NULL)
            return;
        if (s->body_end && !s->body_ended && evbuffer_get_length(s->body) == 0
            && (t->req_head_sent || t->req_done)) {
            s->body_ended = true;
            if (!t->req_done)
                rp_txn_req_end(t);
            if (s->txn != NULL)
                rp_txn_push_body(t);   /* the end of a chunked body goes out now */
            return;
        }
        if (!rp_txn_push_body(t))
            return;
    }
}

static void
start_stream(h2_stream_t *s)
{
    rp_txn_t *t = s->txn;
    s->started = true;
    s->h->requests++;
    if (s->error != 0) {
        rp_txn_respond(t, s->error,
                       s->error == 400 ? RP_CLOSE_BAD_REQUEST
                       : s->error_word == RP_ERR_OUT_OF_MEMORY ? RP_CLOSE_INTERNAL : RP_CLOSE_LIMIT,
                       s->error_word, s->error_reason);
        return;
    }
    if (t->req.method == HTTP_CONNECT) {
        rp_txn_respond(t, 405, RP_CLOSE_BAD_REQUEST, RP_ERR_METHOD_NOT_ALLOWED,
                       "CONNECT is not served");
        return;
    }
    rp_txn_start(t);
}

/* Everything nghttp2 reported, acted on now that it has returned: the
 * streams marked since the last run, in order. */
static void
process_streams(rp_h2_t *h)
{
    TAILQ_HEAD(, h2_stream) now = TAILQ_HEAD_INITIALIZER(now);
    TAILQ_CONCAT(&now, &h->ready, ready_link);
    /* Once the library's reset limiter may have queued a GOAWAY (it ends
     * nothing by itself), control frames still queued after h2_send (it
     * runs first) could not go out, and that GOAWAY may be among them: it
     * must go out before any stream above its last id starts.  Taken
     * once: frames the streams below queue do not count. */
    bool hold = h->reset_suspect && nghttp2_session_get_outbound_queue_size(h->ng) > 0;
    h2_stream_t *s;
    while ((s = TAILQ_FIRST(&now)) != NULL) {
        TAILQ_REMOVE(&now, s, ready_link);
        s->queued = false;
        if (h->calm || h->dead || h->closing || s->rejected)
            continue;
        if (s->ws != NULL) {
            /* A tunnel: its frames moved, or the client ended its side. */
            bool drained = s->drained;
            s->drained = false;
            if (drained)
                rp_ws_client_writable(s->ws);
            if (s->ws != NULL)
                rp_ws_client_input(s->ws);
            if (s->ws != NULL && s->body_end && !s->ws_gone && evbuffer_get_length(s->body) == 0) {
                s->ws_gone = true;
                rp_ws_client_gone(s->ws, false);
            }
            continue;
        }
        if (s->drained) {
            /* Its response buffer drained: the transaction reads on. */
            s->drained = false;
            if (s->txn != NULL && s->txn->up_paused)
                rp_txn_client_drained(s->txn);
        }
        if (s->txn == NULL || !s->head_done)
            continue;
        if (!s->started) {
            if (h->goaway_sent && s->id > h->goaway_last) {
                /* Above the last stream id a GOAWAY named: the client
                 * takes it as never processed, and may send it again
                 * elsewhere.  So it must not be. */
                stream_drop_txn(s, RP_CLOSE_LIMIT, RP_ERR_CLIENT_RESET,
                                "stream above the last stream id of a GOAWAY");
                /* Our refusal: not charged to the client's budget. */
                s->refused = true;
                rst(h, s->id, NGHTTP2_REFUSED_STREAM);
                continue;
            }
            if (hold) {
                /* They wait for the queue to drain: h2_send left the
                 * output above H2_OUT_LOW (write_cb comes) or scheduled
                 * another run.  Control frames go out before DATA, so a
                 * stream waits one drain at most, not for the DATA of
                 * slow downloads to end. */
                s->queued = true;
                TAILQ_INSERT_TAIL(&h->ready, s, ready_link);
                continue;
            }
            start_stream(s);
            if (s->txn == NULL)
                continue;
        }
        if (s->txn->req_head_sent && !s->txn->req_done)
            pump_body(s);
        else if (s->txn->req_done && s->body_end)
            s->body_ended = true;
    }
}

static void
arm_idle(rp_h2_t *h)
{
    if (h->nstreams == 0 && !h->closing && !h->close_armed) {
        unsigned ms = h->got_headers ? h->idle_ms : h->header_ms;
        if (!evtimer_pending(h->timer, NULL))
            rp_event_add(h->timer, rp_timeout_tv(h->w->base, ms));
    }
}

/* Run after every event: act on what was recorded, send, and close when
 * there is nothing left to do.  Frees h (returns false) when it is done. */
static bool
h2_settle(rp_h2_t *h)
{
    for (int round = 0; round < 4 && !h->dead; round++) {
        h->scheduled = false;
        /* Resets the library queued go out first: their streams close
         * before anything could start them. */
        h2_send(h);
        process_streams(h);
        h2_send(h);
        if (!h->scheduled)
            break;
    }
    if (!h->dead && !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng))
        h->closing = true;
    if (h->closing && !h->dead) {
        rp_tr_read(h->tr, false);
        if (evbuffer_get_length(h->tr->out) == 0) {
            h->dead = true;
        } else {
            rp_tr_set_lowat(h->tr, 0);
            /* The last frames get client_idle_ms to leave, however the
             * transport fares. */
            if (!h->close_armed) {
                h->close_armed = true;
                rp_event_add(h->timer, rp_timeout_tv(h->w->base, h->idle_ms));
            }
        }
    }
    if (h->dead) {
        h2_free(h);
        return false;
    }
    if (h->nstreams == 0)
        arm_idle(h);
    if (!evtimer_pending(h->sweep, NULL) && h->nstreams > 0)
        rp_event_add(h->sweep, rp_timeout_tv(h->w->base, H2_SWEEP_MS));
    if (h->scheduled)
        event_active(h->run, 0, 0);
    return true;
}

static void
h2_schedule(rp_h2_t *h)
{
    if (h->scheduled)
        return;
    h->scheduled = true;
    event_active(h->run, 0, 0);
}

static void read_cb(void *arg);

static void
run_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_h2_t *h = arg;
    (void)fd;
    (void)what;
    if (h->input) {
        h->input = false;
        read_cb(h);
        return;
    }
    h2_settle(h);
}

static void
read_cb(void *arg)
{
    rp_h2_t *h = arg;
    struct evbuffer *in = h->tr->in;
    while (evbuffer_get_length(in) > 0 && !h->dead) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t n = nghttp2_session_mem_recv(h->ng, v.iov_base, v.iov_len);
        if (n < 0) {
            /* A connection error: nghttp2 has queued GOAWAY where the
             * protocol asks for one; send it, then close. */
            rp_log(RP_LOG_DEBUG, NULL, "HTTP/2 client %s: %s", h->peer.text,
                   nghttp2_strerror((int)n));
            if (n == NGHTTP2_ERR_FLOODED)
                rp_metrics_h2_calm(h->w->id);
            evbuffer_drain(in, evbuffer_get_length(in));
            nghttp2_session_send(h->ng);
            h->closing = true;
            break;
        }
        evbuffer_drain(in, (size_t)n);
    }
    rp_tr_drained(h->tr);
    h2_settle(h);
}

static void
write_cb(void *arg)
{
    rp_h2_t *h = arg;
    if (h->closing && evbuffer_get_length(h->tr->out) == 0)
        h->dead = true;
    h2_settle(h);
}

static void
event_cb(short what, void *arg)
{
    rp_h2_t *h = arg;
    /* An end of input, an error or a stalled client: nothing more can be
     * exchanged on this connection. */
    rp_close_t why = (what & BEV_EVENT_TIMEOUT) ? RP_CLOSE_CLIENT_TIMEOUT : RP_CLOSE_CLIENT_ABORT;
    rp_error_t err = (what & BEV_EVENT_TIMEOUT) ? RP_ERR_CLIENT_STALLED : RP_ERR_CLIENT_CLOSED;
    h2_stream_t *s;
    TAILQ_FOREACH(s, &h->streams, link)
        stream_drop_txn(s, why, err, (what & BEV_EVENT_TIMEOUT) ? "client stopped reading"
                                                                : "client closed the connection");
    h->dead = true;
    h2_free(h);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_h2_t *h = arg;
    (void)fd;
    (void)what;
    if (h->closing) {
        h->dead = true;   /* the goodbye did not leave in time */
        h2_free(h);
        return;
    }
    if (h->nstreams > 0 && h->got_headers)
        return;
    /* Idle, or no request within client_header_ms: say goodbye. */
    nghttp2_session_terminate_session(h->ng, NGHTTP2_NO_ERROR);
    h->closing = true;
    h2_settle(h);
}

/* timeouts.client_min_bytes_per_s as the worker's configuration has it
 * now: a reload applies to connections already open. */
static unsigned
min_rate(const rp_h2_t *h)
{
    return h->w->snap->timeouts.client_min_bytes_per_s;
}

/* timeouts.client_min_bytes_per_s on a request body, measured while the
 * stream's body is wanted and all received has been handed on (else the
 * backend is the slower one and the window waits).  True when the stream
 * got its answer. */
static bool
slow_body(h2_stream_t *s, uint64_t now)
{
    rp_txn_t *t = s->txn;
    rp_h2_t *h = s->h;
    unsigned min = min_rate(h);
    if (min == 0 || t == NULL || !s->started || s->ws_connect || s->body_end) {
        rp_rate_stop(&s->body_rate);
        return false;
    }
    /* Not waiting on the client: the backend is slower (the body waits,
     * or the exchange paused it), or our windows, the stream's or the
     * connection's (other streams' bodies waiting), leave it no room. */
    if (!rp_txn_wants_body(t) || evbuffer_get_length(s->body) > 0
        || nghttp2_session_get_local_window_size(h->ng) <= 0
        || nghttp2_session_get_stream_local_window_size(h->ng, s->id) <= 0) {
        rp_rate_pause(&s->body_rate, now, s->received);
        return false;
    }
    if (!rp_rate_running(&s->body_rate)) {
        rp_rate_resume(&s->body_rate, now, s->received);
        return false;
    }
    if (!rp_rate_too_slow(&s->body_rate, now, s->received, min))
        return false;
    rp_rate_stop(&s->body_rate);
    rp_txn_client_error(t, 408, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_BODY_TOO_SLOW,
                        "client sent the request body slower than timeouts.client_min_bytes_per_s");
    return true;
}

/* timeouts.client_min_bytes_per_s on what the client reads: measured while
 * frames wait that the socket cannot take, by what the client's kernel
 * acknowledges.  Too slow: every exchange is cut with the connection
 * (freed: true). */
static bool
slow_reader(rp_h2_t *h, uint64_t now)
{
    unsigned min = min_rate(h);
    if (min == 0) {
        rp_rate_stop(&h->out_rate);
        return false;
    }
    if (evbuffer_get_length(h->tr->out) == 0) {
        if (rp_rate_running(&h->out_rate))   /* caught up, for now */
            rp_rate_pause(&h->out_rate, now, rp_fd_bytes_acked(rp_tr_fd(h->tr)));
        return false;
    }
    uint64_t acked = rp_fd_bytes_acked(rp_tr_fd(h->tr));
    if (!rp_rate_running(&h->out_rate)) {
        rp_rate_resume(&h->out_rate, now, acked);
        return false;
    }
    if (!rp_rate_too_slow(&h->out_rate, now, acked, min))
        return false;
    h2_stream_t *s;
    TAILQ_FOREACH(s, &h->streams, link)
        stream_drop_txn(s, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_CLIENT_TOO_SLOW,
                        "client read responses slower than timeouts.client_min_bytes_per_s");
    h->reset_soon = true;
    h->dead = true;
    h2_free(h);
    return true;
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_h2_t *h = arg;
    (void)fd;
    (void)what;
    uint64_t now = rp_now_us();
    uint64_t limit = (uint64_t)h->idle_ms * 1000u;
    uint64_t head_limit = (uint64_t)h->header_ms * 1000u;
    bool conn_stalled = nghttp2_session_get_remote_window_size(h->ng) <= 0;
    bool tunnels = false;
    h2_stream_t *s, *next;
    for (s = TAILQ_FIRST(&h->streams); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->ws_connect)
            tunnels = true;
        if (!s->head_done && s->txn != NULL && now - s->since_us >= head_limit) {
            /* A head that never ends blocks the whole connection (the
             * library waits for its CONTINUATION): close it. */
            nghttp2_session_terminate_session(h->ng, NGHTTP2_PROTOCOL_ERROR);
            h->closing = true;
            break;
        }
        if (s->txn != NULL && s->started && s->txn->req_head_sent && !s->body_end
            && !s->ws_connect && evbuffer_get_length(s->body) == 0 && now - s->since_us >= limit) {
            rp_txn_client_error(s->txn, 408, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_BODY_TIMEOUT,
                                "client sent no request body bytes for timeouts.client_idle_ms");
            continue;
        }
        if (slow_body(s, now))
            continue;
        bool waiting = evbuffer_get_length(s->resp) > 0
                       && (conn_stalled || nghttp2_session_get_stream_remote_window_size(h->ng, s->id) <= 0);
        if (!waiting) {
            s->stall_since = 0;
            continue;
        }
        if (s->stall_since == 0) {
            s->stall_since = now;
        } else if (now - s->stall_since >= limit) {
            /* The client has not opened its window for client_idle_ms. */
            stream_drop_txn(s, RP_CLOSE_CLIENT_TIMEOUT, RP_ERR_CLIENT_STALLED,
                            "client window stayed closed for timeouts.client_idle_ms");
            s->cut = true;
            s->stall_since = 0;
            rst(h, s->id, NGHTTP2_CANCEL);
        }
    }
    /* A connection carrying a tunnel is not measured (tunnels are bounded
     * by their idle timeout, and their output cannot be told apart). */
    if (tunnels || h->closing) {
        if (rp_rate_running(&h->out_rate))
            rp_rate_pause(&h->out_rate, now, rp_fd_bytes_acked(rp_tr_fd(h->tr)));
    } else if (slow_reader(h, now)) {
        return;   /* freed */
    }
    if (h->nstreams > 0)
        rp_event_add(h->sweep, rp_timeout_tv(h->w->base, H2_SWEEP_MS));
    else if (rp_rate_running(&h->out_rate))   /* no sweep until the next stream */
        rp_rate_pause(&h->out_rate, now, rp_fd_bytes_acked(rp_tr_fd(h->tr)));
    h2_settle(h);
}

/* ---- set-up and teardown ---- */

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;

static void
init_once(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_before_frame_send_callback(callbacks, before_frame_send);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
    nghttp2_session_callbacks_set_on_extension_chunk_recv_callback(callbacks, on_extension_chunk);
    nghttp2_session_callbacks_set_unpack_extension_callback(callbacks, unpack_extension);
    nghttp2_option_new(&options);
    nghttp2_option_set_no_auto_window_update(options, 1);
    nghttp2_option_set_stream_reset_rate_limit(options, RP_H2_RESET_BURST, RP_H2_RESET_RATE);
    nghttp2_option_set_max_continuations(options, RP_H2_MAX_CONTINUATIONS);
    nghttp2_option_set_max_settings(options, RP_H2_MAX_SETTINGS);
    nghttp2_option_set_max_outbound_ack(options, RP_H2_MAX_OUTBOUND_ACK);
    for (unsigned type = NGHTTP2_CONTINUATION + 1; type <= 255; type++)
        nghttp2_option_set_user_recv_extension_type(options, (uint8_t)type);
}

int
rp_h2_new(rp_worker_t *w, rp_transport_t *tr, const rp_peer_t *peer)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
    rp_h2_t *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->timer = evtimer_new(w->base, timer_cb, h);
        h->sweep = evtimer_new(w->base, sweep_cb, h);
        h->run = event_new(w->base, -1, 0, run_cb, h);
    }
    if (h == NULL || h->timer == NULL || h->sweep == NULL || h->run == NULL
        || nghttp2_session_server_new3(&h->ng, callbacks, h, options, rp_mem_nghttp2()) != 0) {
        if (h != NULL) {
            if (h->timer != NULL)
                event_free(h->timer);
            if (h->sweep != NULL)
                event_free(h->sweep);
            if (h->run != NULL)
                event_free(h->run);
            free(h);
        }
        rp_tr_free(tr, true);
        rp_oom_note("an HTTP/2 connection");
        return -1;
    }
    h->w = w;
    h->tr = tr;
    h->peer = *peer;
    h->peer.secure = tr->secure;
    /* Not a reference: a connection may outlive many reloads. */
    h->idle_ms = w->snap->timeouts.client_idle_ms;
    h->header_ms = w->snap->timeouts.client_header_ms;
    h->budget = RP_H2_IDLE_FRAME_BUDGET;
    h->budget_at = rp_now_us();
    TAILQ_INIT(&h->streams);
    TAILQ_INIT(&h->ready);
    TAILQ_INSERT_TAIL(&w->h2s, h, link);
    /* The library's reset bucket starts full now (count_reset). */
    h->rl_tokens = RP_H2_RESET_BURST;
    h->rl_sec = rp_now_us() / 1000000u;
    const rp_snapshot_t *s = w->snap;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->limits.h2_max_concurrent_streams },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RP_H2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->limits.max_header_bytes },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 },   /* RFC 8441 */
    };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, RP_ARRAY_LEN(iv)) != 0
        || nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0,
                                                 RP_H2_CONN_WINDOW) != 0) {
        /* Out of memory: without its SETTINGS the client would wait for
         * ever; the connection goes at the first turn (h2_settle). */
        rp_oom_note("an HTTP/2 connection's SETTINGS (connection closed)");
        h->dead = true;
    }
    rp_tr_setcb(tr, read_cb, write_cb, event_cb, h);
    rp_tr_set_lowat(tr, H2_OUT_LOW);
    rp_tr_write_timeout(tr, s->timeouts.client_idle_ms);
    rp_tr_read(tr, true);
    /* The preface and the first request within client_header_ms. */
    /* A value of its own each time: a plain timer, not a shared timeout. */
    unsigned first_ms = rp_ms_left(s->timeouts.client_header_ms, peer->accepted_us);
    struct timeval first_tv = { first_ms / 1000, (first_ms % 1000) * 1000 };
    rp_event_add(h->timer, &first_tv);
    /* Our SETTINGS go out, and bytes that came with the preface are
     * parsed, on the next turn: never from inside the caller. */
    h->input = evbuffer_get_length(tr->in) > 0;
    h2_schedule(h);
    if (w->draining || rp_worker_listener_gone(w, peer->listener))
        rp_h2_drain(h);
    return 0;
}

/* The second step of a drain: GOAWAY with the last stream processed, a
 * round trip after the notice (the ACK of the PING sent with it, or the
 * timer when none comes), so that requests the client sent before it saw
 * the notice are served, not refused. */
static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_h2_t *h = arg;
    (void)fd;
    (void)what;
    h->drain_ping = false;   /* a late ACK sends no second GOAWAY */
    h->drain_notice = false;
    if (!h->dead && !h->closing && nghttp2_session_want_read(h->ng))
        nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
    h2_schedule(h);
}

void
rp_h2_drain_listener(rp_worker_t *w, unsigned ident)
{
    rp_h2_t *h;
    TAILQ_FOREACH(h, &w->h2s, link)
        if (h->peer.listener == ident)
            rp_h2_drain(h);
}

void
rp_h2_drain_all(rp_worker_t *w)
{
    rp_h2_t *h;
    TAILQ_FOREACH(h, &w->h2s, link)
        rp_h2_drain(h);
}

void
rp_h2_drain(rp_h2_t *h)
{
    if (h->draining || h->dead)
        return;
    h->draining = true;
    if (nghttp2_session_want_read(h->ng))
        h->drain_notice = nghttp2_submit_shutdown_notice(h->ng) == 0;
    h->drain_ev = evtimer_new(h->w->base, drain_cb, h);
    if (h->drain_ev != NULL) {
        struct timeval tv = { RP_H2_DRAIN_NOTICE_MS / 1000, (RP_H2_DRAIN_NOTICE_MS % 1000) * 1000 };
        rp_event_add(h->drain_ev, &tv);
    }
    h2_schedule(h);
}

static void
h2_free(rp_h2_t *h)
{
    h2_stream_t *s;
    while ((s = TAILQ_FIRST(&h->streams)) != NULL) {
        if (s->ws != NULL) {
            rp_ws_client_detach(s->ws);
            s->ws = NULL;
        }
        stream_drop_txn(s, RP_CLOSE_CLIENT_ABORT, RP_ERR_CLIENT_CLOSED, "connection closed");
        stream_free(s);
    }
    nghttp2_session_del(h->ng);
    h->ng = NULL;
    event_free(h->timer);
    if (h->drain_ev != NULL)
        event_free(h->drain_ev);
    event_free(h->sweep);
    event_free(h->run);
    rp_tr_free(h->tr, h->reset_soon);
    TAILQ_REMOVE(&h->w->h2s, h, link);
    rp_peer_release(&h->peer);
    rp_worker_conn_closed(h->w, h->peer.listener);
    if (rp_log_level >= RP_LOG_DEBUG)
        rp_log(RP_LOG_DEBUG, NULL, "HTTP/2 connection from %s closed (%u requests)",
               h->peer.text, h->requests);
    free(h);
}

unsigned
rp_h2_stop(rp_h2_t *h)
{
    h2_stream_t *s;
    unsigned cut = 0;
    TAILQ_FOREACH(s, &h->streams, link) {
        cut += s->txn != NULL;
        stream_drop_txn(s, RP_CLOSE_SHUTDOWN, RP_ERR_SHUTDOWN, "revproxy is stopping");
    }
    nghttp2_session_terminate_session(h->ng, NGHTTP2_NO_ERROR);
    nghttp2_session_send(h->ng);
    rp_tr_flush(h->tr);
    h2_free(h);
    return cut;
}

/* ---- the HTTP/2 downstream ---- */

static void
lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
}

static void
submit(h2_stream_t *s, nghttp2_nv *nv, size_t nnv, bool body)
{
    nghttp2_data_provider dp = { .source.ptr = s, .read_callback = data_read_cb };
    s->resp_submitted = true;
    s->answered = true;
    if (!s->body_end)
        s->rst_after = true;
    refund(s->h, RP_H2_IDLE_FRAME_REFUND);
    if (nv == NULL || nghttp2_submit_response(s->h->ng, s->id, nv, nnv, body ? &dp : NULL) != 0) {
        /* Out of memory, or the stream is going: no response then. */
        s->cut = true;
        rst(s->h, s->id, NGHTTP2_INTERNAL_ERROR);
    }
    h2_schedule(s->h);
}

#define NV_(n, v, vl) ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE })

static int
h2_send_head(rp_txn_t *t, const rp_resp_framing_t *f)
{
    h2_stream_t *s = STREAM(t);
    rp_http_head_t *rh = &t->resp;
    if (f->codings != NULL)
        return -1;   /* HTTP/2 has no transfer-codings (RFC 9113 8.2.2) */
    /* HTTP/2 wants lowercase names: one copy of every name, made here. */
    size_t names = 0;
    for (unsigned i = 0; i < rh->nfields; i++)
        names += rh->fields[i].name_len;
    /* On the stack for the usual head (nghttp2 copies what it is given). */
    char lc_stack[1024];
    nghttp2_nv nv_stack[40];
    char *lc = names + 1 <= sizeof lc_stack ? lc_stack : malloc(names + 1);
    nghttp2_nv *nv = rh->nfields + 4 <= RP_ARRAY_LEN(nv_stack)
                         ? nv_stack : malloc((rh->nfields + 4) * sizeof *nv);
    if (lc == NULL || nv == NULL) {
        if (nv != nv_stack)
            free(nv);
        if (lc != lc_stack)
            free(lc);
        return RP_SEND_NOMEM;   /* nothing sent: the transaction answers 503 */
    }
    size_t n = 0, off = 0;
    char status[3], clen[24];
    unsigned st = (unsigned)rh->status % 1000;
    status[0] = (char)('0' + st / 100);
    status[1] = (char)('0' + st / 10 % 10);
    status[2] = (char)('0' + st % 10);
    nv[n++] = NV_(":status", status, 3);
    for (unsigned i = 0; i < rh->nfields; i++) {
        const rp_hfield_t *fl = &rh->fields[i];
        /* Connection-specific fields (Connection, Keep-Alive,
         * Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding, and
         * what Connection names) are marked to drop by
         * rp_http_mark_hop_by_hop before any send_head. */
        if (fl->flags & RP_HF_DROP)
            continue;
        lower(lc + off, rp_hf_name(rh, fl), fl->name_len);
        nv[n++] = (nghttp2_nv){ (uint8_t *)lc + off, (uint8_t *)rp_hf_value(rh, fl),
                                fl->name_len, fl->value_len, NGHTTP2_NV_FLAG_NONE };
        off += fl->name_len;
    }
    /* A new value every time: kept out of the HPACK dynamic table, where
     * each id would evict the fields that do repeat (content-type,
     * server, ...) and make every response carry them in full again. */
    nv[n++] = (nghttp2_nv){ (uint8_t *)"x-request-id", (uint8_t *)t->id, 12, strlen(t->id),
                            NGHTTP2_NV_FLAG_NO_INDEX };
    if (f->has_length && rh->status != 204 && rh->status != 304) {
        char *p = clen + sizeof clen;
        uint64_t v = f->length;
        do {
            *--p = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        nv[n++] = NV_("content-length", p, (size_t)(clen + sizeof clen - p));
    }
    for (size_t i = 0; i < n; i++)
        t->bytes_out += nv[i].namelen + nv[i].valuelen + 4;
    submit(s, nv, n, !f->no_body);
    if (nv != nv_stack)
        free(nv);
    if (lc != lc_stack)
        free(lc);
    return 0;
}

static int
h2_send_body(rp_txn_t *t, const char *at, size_t len)
{
    h2_stream_t *s = STREAM(t);
    if (evbuffer_add(s->resp, at, len) < 0)
        return -1;
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h->ng, s->id);
    }
    return 0;
}

static void
h2_end(rp_txn_t *t)
{
    h2_stream_t *s = STREAM(t);
    s->resp_end = true;
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h->ng, s->id);
    }
    h2_schedule(s->h);
}

static void
h2_abort(rp_txn_t *t)
{
    /* The response was cut: reset the stream so the client cannot take
     * what it got for a whole response. */
    h2_stream_t *s = STREAM(t);
    s->txn = NULL;
    rp_txn_free(t);
    s->cut = true;
    s->answered = true;
    reset_stream(s, NGHTTP2_INTERNAL_ERROR);
}

static void
h2_send_continue(rp_txn_t *t)
{
    h2_stream_t *s = STREAM(t);
    nghttp2_nv nv = NV_(":status", "100", 3);
    nghttp2_submit_headers(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NULL, &nv, 1, NULL);
    h2_schedule(s->h);
}

static void
h2_send_error(rp_txn_t *t)
{
    h2_stream_t *s = STREAM(t);
    char body[256], status[4], clen[24];
    int st = t->status;
    const char *word = rp_error_name(t->error);
    int blen = snprintf(body, sizeof body, "%d %s\nerror: %s\nrequest_id: %s\n", st,
                        rp_http_reason(st), word[0] ? word : "-", t->id);
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = (int)strlen(body);
    snprintf(status, sizeof status, "%03d", st % 1000);
    int cl = snprintf(clen, sizeof clen, "%d", blen);
    char ra[16];
    int ral = snprintf(ra, sizeof ra, "%u", t->retry_after);
    nghttp2_nv nv[6];
    size_t n = 0;
    nv[n++] = NV_(":status", status, 3);
    nv[n++] = NV_("content-type", "text/plain", 10);
    nv[n++] = NV_("content-length", clen, (size_t)cl);
    nv[n++] = (nghttp2_nv){ (uint8_t *)"x-request-id", (uint8_t *)t->id, 12, strlen(t->id),
                            NGHTTP2_NV_FLAG_NO_INDEX };
    if (t->retry_after > 0)
        nv[n++] = NV_("retry-after", ra, (size_t)ral);
    else if (t->error == RP_ERR_WS_VERSION)
        nv[n++] = NV_("sec-websocket-version", "13", 2);   /* RFC 6455 4.4 */
    const char *srv = t->snap->server_header;
    if (srv != NULL)
        nv[n++] = (nghttp2_nv){ (uint8_t *)"server", (uint8_t *)srv, 6, strlen(srv),
                                NGHTTP2_NV_FLAG_NONE };
    bool body_too = !t->head_request;
    if (body_too && evbuffer_add(s->resp, body, (size_t)blen) < 0) {
        /* No room for the body its content-length announces: no answer,
         * the stream is reset. */
        rp_oom_note("an HTTP/2 error response (stream reset)");
        s->resp_end = true;
        t->resp_head_sent = 1;
        submit(s, NULL, 0, false);
        s->txn = NULL;
        rp_txn_free(t);
        return;
    }
    if (body_too)
        t->bytes_out += (uint64_t)blen;
    s->resp_end = true;
    t->resp_head_sent = 1;
    submit(s, nv, n, body_too);
    s->txn = NULL;
    rp_txn_free(t);
}

static void
h2_resume_body(rp_txn_t *t)
{
    mark(STREAM(t));
}

static void
h2_close_after(rp_txn_t *t)
{
    (void)t;   /* one stream ends; the connection goes on */
}

static size_t
h2_pending(const rp_txn_t *t)
{
    return evbuffer_get_length(STREAM(t)->resp);
}

static void
h2_flush(rp_txn_t *t)
{
    h2_schedule(STREAM(t)->h);
}

static int
h2_check_body(rp_txn_t *t)
{
    (void)t;   /* DATA frames carry their own framing, checked by nghttp2 */
    return 0;
}

static void
h2_done(rp_txn_t *t, bool reusable)
{
    h2_stream_t *s = STREAM(t);
    (void)reusable;   /* the stream ends; the connection goes on */
    s->txn = NULL;
    rp_txn_free(t);
    h2_schedule(s->h);
}

/* A stream the client reset, or whose connection closed, frees its
 * transaction at once: one that still exists has a client. */
static bool
h2_client_gone(const rp_txn_t *t)
{
    (void)t;
    return false;
}

/* ---- a WebSocket tunnel on a stream (RFC 8441) ---- */

static void
tun_read(void *ctx, bool on)
{
    (void)ctx;
    (void)on;   /* the stream's window is the flow control: see tun_flush */
}

/* Frames went into resp, and input was taken from body: send, and give
 * the client back the window of what was taken. */
static void
tun_flush(void *ctx)
{
    h2_stream_t *s = ctx;
    uint64_t taken = s->received - evbuffer_get_length(s->body);
    if (taken > s->credited) {
        nghttp2_session_consume(s->h->ng, s->id, (size_t)(taken - s->credited));
        s->credited = taken;
    }
    if (s->deferred && evbuffer_get_length(s->resp) > 0) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h->ng, s->id);
    }
    /* The client ended its side and the tunnel has taken the rest. */
    if (s->body_end && !s->ws_gone && evbuffer_get_length(s->body) == 0)
        mark(s);
    h2_schedule(s->h);
}

static size_t
tun_pending(void *ctx)
{
    (void)ctx;
    return 0;   /* resp is all there is */
}

static void
tun_close(void *ctx, bool graceful)
{
    h2_stream_t *s = ctx;
    s->ws = NULL;
    if (graceful) {
        /* What is queued goes, then END_STREAM, and a reset (NO_ERROR)
         * if the client has not ended its side. */
        s->resp_end = true;
        s->rst_after = !s->body_end;
        if (s->deferred) {
            s->deferred = false;
            nghttp2_session_resume_data(s->h->ng, s->id);
        }
    } else {
        s->cut = true;
        rst(s->h, s->id, NGHTTP2_CANCEL);
    }
    h2_schedule(s->h);
}

static const rp_ws_client_ops_t tun_ops = { tun_read, tun_flush, tun_pending, tun_close,
                                             H2_STREAM_HIGH, H2_STREAM_LOW };

static int
h2_tunnel(rp_txn_t *t)
{
    h2_stream_t *s = STREAM(t);
    rp_http_head_t *rh = &t->resp;
    /* 200 (RFC 8441 5), with what the backend said of the protocol. */
    nghttp2_nv nv[8];
    size_t n = 0;
    nv[n++] = NV_(":status", "200", 3);
    for (unsigned i = 0; i < rh->nfields && n < RP_ARRAY_LEN(nv) - 1; i++) {
        const rp_hfield_t *f = &rh->fields[i];
        if (f->flags & RP_HF_DROP)
            continue;
        if (rp_hf_is(rh, f, "sec-websocket-protocol"))
            nv[n++] = NV_("sec-websocket-protocol", rp_hf_value(rh, f), f->value_len);
        else if (rp_hf_is(rh, f, "sec-websocket-extensions"))
            nv[n++] = NV_("sec-websocket-extensions", rp_hf_value(rh, f), f->value_len);
    }
    nv[n++] = (nghttp2_nv){ (uint8_t *)"x-request-id", (uint8_t *)t->id, 12, strlen(t->id),
                            NGHTTP2_NV_FLAG_NO_INDEX };
    for (size_t i = 0; i < n; i++)
        t->bytes_out += nv[i].namelen + nv[i].valuelen + 4;
    submit(s, nv, n, true);
    s->rst_after = false;   /* the stream carries the tunnel both ways */
    if (s->cut)
        return -1;
    s->txn = NULL;
    s->ws = rp_ws_start(t, &tun_ops, s, s->body, s->resp);
    mark(s);   /* DATA or END_STREAM that came before it */
    return 0;
}

const rp_downstream_ops_t rp_h2_downstream = {
    .name = "http/2",
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .end = h2_end,
    .abort = h2_abort,
    .send_continue = h2_send_continue,
    .send_error = h2_send_error,
    .resume_body = h2_resume_body,
    .close_after = h2_close_after,
    .pending = h2_pending,
    .flush = h2_flush,
    .check_body = h2_check_body,
    .done = h2_done,
    .client_gone = h2_client_gone,
    .tunnel = h2_tunnel,
    .resp_high = H2_STREAM_HIGH,
    .resp_low = H2_STREAM_LOW,
    .req_high = H2_STREAM_HIGH,
    .req_low = H2_STREAM_LOW,
};
