/* SPDX-License-Identifier: MIT */
/*
 * WebSocket handshakes and tunnels (ws.h).
 */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>
#include <stdatomic.h>
#include "revproxy/bstate.h"
#include "revproxy/http.h"
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "io.h"
#include "pool.h"
#include "proxy.h"
#include "worker.h"
#include "ws.h"
#include "util.h"

static const char *const closer_names[] = { "", "client", "backend", "proxy" };

const char *
rp_ws_closer_name(int c)
{
    return c >= 0 && c < (int)RP_ARRAY_LEN(closer_names) ? closer_names[c] : "";
}

/* ---- the handshake ---- */

/* Whether any field named name lists token (Connection, Upgrade may come
 * as several fields). */
static bool
fields_list(const rp_http_head_t *h, const char *name, const char *token)
{
    for (unsigned i = 0; i < h->nfields; i++) {
        const rp_hfield_t *f = &h->fields[i];
        if (rp_hf_is(h, f, name) && rp_http_list_has(rp_hf_value(h, f), f->value_len, token))
            return true;
    }
    return false;
}

/* The one value of field name: NULL when absent or repeated (*count says
 * which). */
static const char *
one_value(const rp_http_head_t *h, const char *name, size_t *len, unsigned *count)
{
    const rp_hfield_t *f = rp_http_find(h, name, count);
    if (f == NULL || *count != 1)
        return NULL;
    *len = f->value_len;
    return rp_hf_value(h, f);
}

static bool
is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+'
           || c == '/';
}

static int
bad(rp_txn_t *t, int status, rp_error_t err, const char *reason)
{
    t->status = status;
    t->why = RP_CLOSE_BAD_REQUEST;
    t->error = err;
    t->reason = reason;
    return -1;
}

int
rp_ws_check_request(rp_txn_t *t)
{
    const rp_http_head_t *h = &t->req;
    if (!fields_list(h, "upgrade", "websocket"))
        return 0;
    if (h->method != HTTP_GET)
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE, "a WebSocket handshake must be a GET");
    if (!(h->major == 1 && h->minor == 1) && !(h->major == 2 && t->ws_h2))
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE, "a WebSocket handshake must be HTTP/1.1");
    if (!fields_list(h, "connection", "upgrade"))
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE,
                   "a WebSocket handshake must have Connection: upgrade");
    if (t->req_chunked || t->req_has_te || (t->req_has_cl && t->req_content_length > 0))
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE, "a WebSocket handshake has no body");
    size_t vlen = 0, klen = 0;
    unsigned n = 0;
    const char *v = one_value(h, "sec-websocket-version", &vlen, &n);
    if (v == NULL)
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE,
                   n == 0 ? "Sec-WebSocket-Version missing" : "Sec-WebSocket-Version repeated");
    if (vlen != 2 || memcmp(v, "13", 2) != 0) {
        bad(t, 426, RP_ERR_WS_VERSION, "Sec-WebSocket-Version other than 13");
        return -1;
    }
    const char *k = one_value(h, "sec-websocket-key", &klen, &n);
    if (k == NULL)
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE,
                   n == 0 ? "Sec-WebSocket-Key missing" : "Sec-WebSocket-Key repeated");
    /* 16 bytes in base64: 22 characters and "==". */
    bool ok = klen == 24 && k[22] == '=' && k[23] == '=';
    for (size_t i = 0; ok && i < 22; i++)
        ok = is_b64((unsigned char)k[i]);
    /* The last character carries 2 bits: its low 4 bits must be zero. */
    ok = ok && strchr("AQgw", k[21]) != NULL;
    if (!ok)
        return bad(t, 400, RP_ERR_BAD_WS_HANDSHAKE,
                   "Sec-WebSocket-Key is not 16 bytes in base64");
    t->ws = 1;
    return 1;
}

bool
rp_ws_accept_value(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char d[SHA_DIGEST_LENGTH];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dl = 0;
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1
              && EVP_DigestUpdate(md, key, len) == 1
              && EVP_DigestUpdate(md, guid, sizeof guid - 1) == 1
              && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == sizeof d;
    EVP_MD_CTX_free(md);
    if (!ok || EVP_EncodeBlock((unsigned char *)out, d, sizeof d) != 28) {
        memset(out, 0, 29);   /* matches no Accept value */
        return false;
    }
    out[28] = '\0';
    return true;
}

/* The next element of a comma-separated value (spaces trimmed), from *i. */
static bool
next_elem(const char *v, size_t len, size_t *i, size_t *s, size_t *e)
{
    while (*i < len && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ','))
        (*i)++;
    if (*i >= len)
        return false;
    *s = *i;
    bool quoted = false;
    while (*i < len && (quoted || v[*i] != ',')) {
        if (v[*i] == '"')
            quoted = !quoted;
        (*i)++;
    }
    *e = *i;
    while (*e > *s && (v[*e - 1] == ' ' || v[*e - 1] == '\t'))
        (*e)--;
    return true;
}

/* Whether element [s, e) names extension ext (before any ';'). */
static bool
elem_is(const char *v, size_t s, size_t e, const char *ext)
{
    size_t n = s;
    while (n < e && v[n] != ';' && v[n] != ' ' && v[n] != '\t')
        n++;
    size_t el = strlen(ext);
    return n - s == el && rp_ascii_ieq(v + s, ext, el);
}

size_t
rp_ws_filter_extensions(const char *v, size_t len, char *out, size_t cap)
{
    size_t i = 0, s, e, pos = 0;
    while (next_elem(v, len, &i, &s, &e)) {
        if (!elem_is(v, s, e, "permessage-deflate"))
            continue;
        size_t need = (pos > 0 ? 2 : 0) + (e - s);
        if (pos + need >= cap)
            break;
        if (pos > 0) {
            memcpy(out + pos, ", ", 2);
            pos += 2;
        }
        memcpy(out + pos, v + s, e - s);
        pos += e - s;
    }
    if (cap > 0)
        out[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

int
rp_ws_check_response(rp_txn_t *t, const char **why)
{
    const rp_http_head_t *r = &t->resp;
    unsigned n = 0;
    size_t len = 0;
    if (r->major != 1 || r->minor != 1) {
        *why = "a 101 that is not HTTP/1.1";
        return -1;
    }
    const char *up = one_value(r, "upgrade", &len, &n);
    if (up == NULL || len != 9 || !rp_ascii_ieq(up, "websocket", 9)) {
        *why = "101 without Upgrade: websocket";
        return -1;
    }
    if (!fields_list(r, "connection", "upgrade")) {
        *why = "101 without Connection: upgrade";
        return -1;
    }
    size_t klen = 0;
    const char *key = one_value(&t->req, "sec-websocket-key", &klen, &n);
    const char *acc = one_value(r, "sec-websocket-accept", &len, &n);
    char want[29];
    if (key == NULL || acc == NULL) {
        *why = "101 without one Sec-WebSocket-Accept";
        return -1;
    }
    if (!rp_ws_accept_value(key, klen, want)) {
        *why = "out of memory checking Sec-WebSocket-Accept";
        return RP_WS_NOMEM;
    }
    if (len != 28 || memcmp(acc, want, 28) != 0) {
        *why = "Sec-WebSocket-Accept does not match the key";
        return -1;
    }
    /* A protocol must be one the client offered. */
    const rp_hfield_t *pf = rp_http_find(r, "sec-websocket-protocol", &n);
    if (n > 1) {
        *why = "Sec-WebSocket-Protocol repeated in the 101";
        return -1;
    }
    if (pf != NULL) {
        const char *pv = rp_hf_value(r, pf);
        size_t pl = pf->value_len;
        bool offered = false;
        for (unsigned i = 0; i < t->req.nfields && !offered; i++) {
            const rp_hfield_t *f = &t->req.fields[i];
            if (!rp_hf_is(&t->req, f, "sec-websocket-protocol"))
                continue;
            size_t j = 0, s, e;
            const char *ov = rp_hf_value(&t->req, f);
            while (!offered && next_elem(ov, f->value_len, &j, &s, &e))
                offered = e - s == pl && memcmp(ov + s, pv, pl) == 0;
        }
        if (!offered) {
            *why = "Sec-WebSocket-Protocol the client did not offer";
            return -1;
        }
    }
    /* Extensions: only permessage-deflate was offered; the backend may
     * take it, nothing else. */
    bool offered_deflate = false;
    for (unsigned i = 0; i < t->req.nfields && !offered_deflate; i++) {
        const rp_hfield_t *f = &t->req.fields[i];
        if (!rp_hf_is(&t->req, f, "sec-websocket-extensions"))
            continue;
        size_t j = 0, s0, e0;
        const char *ov = rp_hf_value(&t->req, f);
        while (!offered_deflate && next_elem(ov, f->value_len, &j, &s0, &e0))
            offered_deflate = elem_is(ov, s0, e0, "permessage-deflate");
    }
    unsigned deflates = 0;
    for (unsigned i = 0; i < r->nfields; i++) {
        const rp_hfield_t *f = &r->fields[i];
        if (!rp_hf_is(r, f, "sec-websocket-extensions"))
            continue;
        size_t j = 0, s, e;
        const char *ev = rp_hf_value(r, f);
        while (next_elem(ev, f->value_len, &j, &s, &e)) {
            if (!elem_is(ev, s, e, "permessage-deflate")) {
                *why = "the 101 agrees to an extension that was not offered";
                return -1;
            }
            deflates++;
        }
    }
    if (deflates > 1 || (deflates == 1 && !offered_deflate)) {
        *why = "the 101 agrees to permessage-deflate wrongly";
        return -1;
    }
    t->ws_deflate = deflates == 1;
    return 0;
}

/* ---- the tunnel ---- */

/* A message relayed one way, in the order it came. */
typedef struct wmsg {
    uint64_t known;    /* payload bytes received so far */
    uint64_t sent;     /* of them, handed to the sending context */
    bool     fin;      /* its last frame has been received */
    bool     queued;   /* queued on the sending context */
    uint8_t  opcode, rsv;
} wmsg_t;

typedef struct side side_t;
struct side {
    rp_ws_t                *ws;
    side_t                 *other;
    wslay_event_context_ptr ctx;     /* owned: speaks to this peer */
    bool                    client;  /* this peer is the client */
    /* What this peer sends. */
    uint64_t                msg_bytes;   /* of the message it is sending */
    bool                    data_frame;  /* the frame being received carries data */
    bool                    frame_fin;
    bool                    paused;      /* reading stopped: the other side is full */
    bool                    eof;         /* its connection cannot be written (ended,
                                            failed or gone): nothing more to it */
    bool                    rd_end;      /* it sends no more (end of its input); what it
                                            sent before is still read */
    bool                    dropping;    /* the message it sends cannot go on: dropped */
    bool                    failed;      /* wslay closed it for a protocol error */
    bool                    closed_by_hand; /* its 1002 was written here, not by wslay */
    uint64_t                msgs, bytes; /* received from it */
    /* What goes to this peer: payload from the other side, and its
     * messages in order. */
    struct evbuffer        *stage;       /* owned */
    wmsg_t                 *q;           /* owned ring */
    unsigned                qhead, qlen, qcap;
    /* A Close for this peer that waits for the data before it. */
    bool                    close_wanted;
    uint16_t                close_code;
    char                    close_reason[123];
    size_t                  close_reason_len;
};

struct rp_ws {
    rp_txn_t                 *t;
    rp_peer_t                 peer;   /* the client's, for the txn until it ends */
    struct evbuffer          *own_in, *own_out;   /* owned: after a detach */
    rp_worker_t              *w;
    const rp_ws_client_ops_t *cops;
    void                     *cctx;
    struct evbuffer          *cin, *cout;
    rp_upconn_t              *up;
    unsigned                  backend_id;   /* counted active while the tunnel is open */
    side_t                    c, u;   /* c faces the client, u the backend */
    struct event             *timer;  /* owned: idle checks, then the closing deadline */
    struct event             *kick;   /* owned: the first pump, from the loop */
    uint64_t                  client_seen_us;   /* last frame from the client */
    uint64_t                  start_us;
    bool                      pinged;
    bool                      started;          /* its first kick ran */
    bool                      closing;          /* the closing deadline is armed */
    bool                      finishing;        /* both sides done: flushing out */
    bool                      end_graceful;     /* how to end once flushed */
    bool                      ended;
    bool                      in_call;          /* inside process(): no free */
    bool                      free_wanted;
    uint16_t                  code;             /* the close code recorded */
    rp_ws_closer_t            by;
    rp_error_t                error;
    TAILQ_ENTRY(rp_ws)        link;
};

#define MAX_QUEUED_MSGS 1024u

static void ws_end(rp_ws_t *ws, bool graceful);
static bool pump(rp_ws_t *ws);
/* Set by ws_end when it freed the tunnel (it may only wait for a flush). */
static _Thread_local bool ws_gone;

static struct evbuffer *
peer_in(const side_t *s)
{
    return s->client ? s->ws->cin : bufferevent_get_input(s->ws->up->bev);
}

static struct evbuffer *
peer_out(const side_t *s)
{
    return s->client ? s->ws->cout : bufferevent_get_output(s->ws->up->bev);
}

/* The watermarks of output to this peer. */
static size_t
high_of(const side_t *s)
{
    return s->client ? s->ws->cops->high : RP_WBUF_HIGH;
}

static size_t
low_of(const side_t *s)
{
    return s->client ? s->ws->cops->low : RP_WBUF_LOW;
}

/* Bytes waiting to reach this peer. */
static size_t
pending_to(const side_t *s)
{
    size_t n = evbuffer_get_length(s->stage) + evbuffer_get_length(peer_out(s));
    if (s->client)
        n += s->ws->cops->pending(s->ws->cctx);
    return n;
}

static void
record(rp_ws_t *ws, rp_ws_closer_t by, uint16_t code, rp_error_t err)
{
    if (ws->by != RP_WS_BY_NONE)
        return;
    ws->by = by;
    ws->code = code;
    ws->error = err;
}

static wmsg_t *
q_at(side_t *s, unsigned i)
{
    return &s->q[(s->qhead + i) & (s->qcap - 1)];
}

static wmsg_t *
q_push(side_t *s)
{
    if (s->qlen == s->qcap) {
        unsigned cap = s->qcap ? s->qcap * 2 : 8;
        wmsg_t *q = malloc(cap * sizeof *q);
        if (q == NULL)
            return NULL;
        for (unsigned i = 0; i < s->qlen; i++)
            q[i] = *q_at(s, i);
        free(s->q);
        s->q = q;
        s->qhead = 0;
        s->qcap = cap;
    }
    wmsg_t *m = q_at(s, s->qlen++);
    memset(m, 0, sizeof *m);
    return m;
}

/* ---- wslay callbacks ---- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
    side_t *s = arg;
    (void)flags;
    /* The other way is full: stop here, the bytes wait in the input. */
    /* Either way full: its pongs and Close replies go to its own output,
     * a ping flood must not grow that either. */
    side_t *o = s->other;
    bool o_open = !o->eof && wslay_event_get_write_enabled(o->ctx)
                  && !wslay_event_get_close_sent(o->ctx);
    if (pending_to(o) > high_of(o) || pending_to(s) > high_of(s)
        || (o_open && wslay_event_get_queued_msg_count(o->ctx) > MAX_QUEUED_MSGS)) {
        s->paused = true;
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    int n = evbuffer_remove(peer_in(s), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (s->client) {
        /* Any byte from the client is a sign of life, mid-frame too. */
        s->ws->client_seen_us = rp_now_us();
        s->ws->pinged = false;
    }
    return n;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
    side_t *s = arg;
    (void)flags;
    if (s->eof || evbuffer_add(peer_out(s), data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int
genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
    (void)arg;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* The payload of the message at the head of s's queue, as far as it has
 * arrived.  Its last byte is held back until the message is known to end
 * (wslay ends a message only with data in hand). */
static ssize_t
read_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
        const union wslay_event_msg_source *src, int *eof, void *arg)
{
    side_t *s = src->data;
    (void)ctx;
    (void)arg;
    if (s->qlen == 0)
        return 0;
    wmsg_t *m = q_at(s, 0);
    uint64_t avail = m->known - m->sent;
    uint64_t n = avail < len ? avail : len;
    if (!m->fin && n == avail)
        n = avail > 0 ? avail - 1 : 0;
    if (n == 0)
        return 0;
    evbuffer_remove(s->stage, buf, (size_t)n);
    m->sent += n;
    if (m->fin && m->sent == m->known) {
        *eof = 1;
        s->qhead = (s->qhead + 1) & (s->qcap - 1);
        s->qlen--;
    }
    return (ssize_t)n;
}

/* Close towards s: at once when urgent (an error, going away: control
 * frames go before queued data), else once the data queued before it has
 * gone. */
static void
want_close(side_t *s, uint16_t code, const char *reason, size_t rlen, bool urgent)
{
    if (s->close_wanted || s->eof || !wslay_event_get_write_enabled(s->ctx))
        return;
    s->close_wanted = true;
    s->close_code = code;
    if (rlen > sizeof s->close_reason)
        rlen = sizeof s->close_reason;
    memcpy(s->close_reason, reason, rlen);
    s->close_reason_len = rlen;
    if (urgent) {
        s->qlen = 0;   /* what is not sent yet will not be */
        evbuffer_drain(s->stage, evbuffer_get_length(s->stage));
    }
}

/* s's connection ended or failed: nothing more either way, and what
 * waited to be sent to it never leaves. */
static void
side_gone(side_t *s)
{
    s->eof = true;
    s->qlen = 0;
    evbuffer_drain(s->stage, evbuffer_get_length(s->stage));
}

static void
arm_closing(rp_ws_t *ws)
{
    if (ws->closing)
        return;
    ws->closing = true;
    struct timeval tv = { RP_WS_CLOSE_MS / 1000, (RP_WS_CLOSE_MS % 1000) * 1000 };
    rp_event_add(ws->timer, &tv);
}

/* Memory for a message from s ran out: it cannot be relayed whole, so
 * the tunnel closes, 1011 both ways. */
static void
oom_close(rp_ws_t *ws, side_t *s)
{
    rp_oom_note("a WebSocket message (tunnel closed with 1011)");
    record(ws, RP_WS_BY_PROXY, RP_WS_SERVER_ERROR, RP_ERR_OUT_OF_MEMORY);
    wslay_event_shutdown_read(s->ctx);
    wslay_event_queue_close(s->ctx, RP_WS_SERVER_ERROR, NULL, 0);
    want_close(s->other, RP_WS_SERVER_ERROR, "", 0, true);
    s->data_frame = false;
    s->dropping = true;
    arm_closing(ws);
}

static void
frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
               void *arg)
{
    side_t *s = arg;
    rp_ws_t *ws = s->ws;
    (void)ctx;
    if (s->client) {
        ws->client_seen_us = rp_now_us();
        ws->pinged = false;
    }
    s->data_frame = a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME
                    || a->opcode == WSLAY_CONTINUATION_FRAME;
    s->frame_fin = a->fin != 0;
    if (!s->data_frame)
        return;
    side_t *o = s->other;
    if (a->opcode != WSLAY_CONTINUATION_FRAME) {
        s->msg_bytes = 0;
        /* The other side closing (or closed): the message has nowhere to
         * go. */
        s->dropping = o->close_wanted || o->eof || !wslay_event_get_write_enabled(o->ctx)
                      || wslay_event_get_close_sent(o->ctx);
        if (!s->dropping) {
            wmsg_t *m = q_push(o);
            if (m == NULL) {
                oom_close(ws, s);
                return;
            }
            m->opcode = a->opcode;
            m->rsv = a->rsv;
        }
    }
    s->msg_bytes += a->payload_length;
    if (s->msg_bytes > ws->t->snap->websocket.max_message_bytes) {
        /* Too big: this peer gets 1009, the other is told we go away. */
        record(ws, RP_WS_BY_PROXY, RP_WS_TOO_BIG, RP_ERR_WS_TOO_BIG);
        wslay_event_shutdown_read(s->ctx);
        wslay_event_queue_close(s->ctx, RP_WS_TOO_BIG, (const uint8_t *)"message too big", 15);
        want_close(o, RP_WS_GOING_AWAY, "", 0, true);
        s->data_frame = false;
        arm_closing(ws);
    }
}

static void
chunk_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
         void *arg)
{
    side_t *s = arg;
    (void)ctx;
    if (!s->data_frame || a->data_length == 0)
        return;
    side_t *o = s->other;
    s->bytes += a->data_length;
    if (s->dropping || o->close_wanted || o->eof || o->qlen == 0)
        return;   /* the other way is closing or gone: dropped */
    wmsg_t *m = q_at(o, o->qlen - 1);
    if (evbuffer_add(o->stage, a->data, a->data_length) < 0) {
        oom_close(s->ws, s);
        return;
    }
    m->known += a->data_length;
    if (!m->queued) {
        struct wslay_event_fragmented_msg fm;
        memset(&fm, 0, sizeof fm);
        fm.opcode = m->opcode;
        fm.source.data = o;
        fm.read_callback = read_cb;
        int rv = wslay_event_queue_fragmented_msg_ex(o->ctx, &fm, m->rsv);
        m->queued = rv == 0;
        if (!m->queued) {
            /* The other side no longer takes messages (closing), or
             * memory ran out (then the tunnel closes: the message can go
             * neither whole nor into another). */
            o->qlen--;
            evbuffer_drain(o->stage, evbuffer_get_length(o->stage));
            if (rv == WSLAY_ERR_NOMEM)
                oom_close(s->ws, s);
            else
                s->dropping = true;   /* what is left of it has nowhere to go */
        }
    }
}

static void
frame_end_cb(wslay_event_context_ptr ctx, void *arg)
{
    side_t *s = arg;
    (void)ctx;
    if (!s->data_frame || !s->frame_fin)
        return;
    s->msgs++;
    side_t *o = s->other;
    if (s->dropping || o->close_wanted || o->qlen == 0)
        return;
    wmsg_t *m = q_at(o, o->qlen - 1);
    m->fin = true;
    if (!m->queued) {
        /* An empty message: whole, at once. */
        struct wslay_event_msg em = { m->opcode, NULL, 0 };
        int rv = wslay_event_queue_msg_ex(o->ctx, &em, m->rsv);
        o->qlen--;
        if (rv == WSLAY_ERR_NOMEM)
            oom_close(s->ws, s);
    }
}

/* Fail the connection of s with code, at once: wslay writes nothing more
 * to it (a Close of its own, queued, stays unsent) and the Close goes by
 * hand, never a second one; the other side is told we go away. */
static void
fail_by_hand(side_t *s, uint16_t code, rp_error_t err)
{
    wslay_event_shutdown_write(s->ctx);
    uint8_t f[8] = { 0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)(code & 0xff) };
    size_t n = 4;
    if (!s->client) {
        /* To a server, masked. */
        uint8_t key[4] = { 0 };
        RAND_bytes(key, sizeof key);
        f[1] = 0x82;
        memcpy(f + 2, key, 4);
        f[6] = (uint8_t)((code >> 8) ^ key[0]);
        f[7] = (uint8_t)((code & 0xff) ^ key[1]);
        n = 8;
    }
    if (!s->eof && !wslay_event_get_close_sent(s->ctx))
        evbuffer_add(peer_out(s), f, n);
    s->closed_by_hand = true;
    s->failed = true;
    record(s->ws, RP_WS_BY_PROXY, code, err);
    want_close(s->other, RP_WS_GOING_AWAY, "", 0, true);
    arm_closing(s->ws);
}

/* Whether p[0, n) is UTF-8 (RFC 3629: shortest forms, no surrogates,
 * nothing past U+10FFFF). */
static bool
utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i++];
        if (c < 0x80)
            continue;
        unsigned more = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                        : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        if (more == 0 || n - i < more)
            return false;
        uint8_t lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        uint8_t hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        for (unsigned k = 0; k < more; k++, lo = 0x80, hi = 0xbf)
            if (p[i + k] < lo || p[i + k] > hi)
                return false;
        i += more;
    }
    return true;
}

/* Whole control messages: a Close goes through to the other side (ping
 * and pong stay on their side; wslay answers pings itself). */
static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *arg)
{
    side_t *s = arg;
    rp_ws_t *ws = s->ws;
    (void)ctx;
    if (a->opcode != WSLAY_CONNECTION_CLOSE)
        return;
    if (a->msg_length > 2 && !utf8_valid(a->msg + 2, a->msg_length - 2)) {
        /* wslay checks a Close's reason piece by piece as it is read, from
         * the third byte of each piece: one read a byte or two at a time
         * is not checked at all.  A reason that is not UTF-8 fails the
         * connection (1007) and goes no further. */
        fail_by_hand(s, RP_WS_BAD_DATA, RP_ERR_WS_BAD_UTF8);
        return;
    }
    uint16_t code = a->status_code;
    record(ws, s->client ? RP_WS_BY_CLIENT : RP_WS_BY_BACKEND, code ? code : RP_WS_NO_STATUS,
           RP_ERR_NONE);
    side_t *o = s->other;
    const char *reason = a->msg_length > 2 ? (const char *)a->msg + 2 : "";
    size_t rlen = a->msg_length > 2 ? a->msg_length - 2 : 0;
    /* A message cut by the Close cannot end: the Close goes at once. */
    bool cut = o->qlen > 0 && !q_at(o, o->qlen - 1)->fin;
    want_close(o, code, reason, rlen, cut);
    arm_closing(ws);
}

static const struct wslay_event_callbacks callbacks = {
    recv_cb, send_cb, genmask_cb, frame_start_cb, chunk_cb, frame_end_cb, msg_cb
};

/* ---- moving bytes ---- */

static void
flush_to(side_t *s)
{
    if (s->client)
        s->ws->cops->flush(s->ws->cctx);
    else
        rp_bev_flush(s->ws->up->bev);
}

/* Send what s has queued: a Close that waited for its data, then
 * everything wslay can write. */
static void
send_side(side_t *s)
{
    /* Nothing reaches a side whose connection failed: a flush would arm
     * its write event again, and the error with it, pass after pass. */
    if (s->eof)
        return;
    if (s->closed_by_hand) {
        flush_to(s);
        return;
    }
    /* The last message may leave in this send: its Close goes behind it
     * in the same turn. */
    for (int i = 0; i < 2 && !s->eof; i++) {
        if (s->close_wanted && s->qlen == 0 && wslay_event_get_write_enabled(s->ctx)
            && !wslay_event_get_close_sent(s->ctx)) {
            wslay_event_queue_close(s->ctx, s->close_code, (const uint8_t *)s->close_reason,
                                    s->close_reason_len);
            s->close_wanted = false;
        }
        if (wslay_event_want_write(s->ctx) && wslay_event_send(s->ctx) < 0)
            side_gone(s);   /* cannot write to it any more */
    }
    flush_to(s);
}

/* Whether side s is finished: the Close went both ways, or its
 * connection ended (or cannot be written). */
static bool
side_done(side_t *s)
{
    if (s->eof || s->closed_by_hand)
        return true;
    bool sent = wslay_event_get_close_sent(s->ctx);
    bool rcvd = wslay_event_get_close_received(s->ctx) || !wslay_event_get_read_enabled(s->ctx)
                || (s->rd_end && evbuffer_get_length(peer_in(s)) == 0);
    return sent && rcvd;
}

/* Read what s has sent, as far as the other side takes it. */
static void
recv_side(side_t *s)
{
    /* A side that can read no more is not waiting to: left marked as
     * paused, it would have the loop kick the tunnel for ever. */
    s->paused = false;
    if (s->eof || !wslay_event_want_read(s->ctx))
        return;
    if (wslay_event_recv(s->ctx) < 0) {
        /* A frame wslay cannot even read as one (a control frame
         * fragmented or over 125 bytes, a length over 2^63): it gives up
         * on the peer with an empty Close.  The peer gets 1002 instead,
         * written here, and nothing more. */
        fail_by_hand(s, RP_WS_PROTOCOL, RP_ERR_WS_PROTOCOL);
        return;
    }
    if (!wslay_event_get_read_enabled(s->ctx) && !wslay_event_get_close_received(s->ctx)
        && !s->failed) {
        /* wslay found a protocol error (1002), invalid UTF-8 (1007) or a
         * frame over the limit, and queued a Close to this peer. */
        s->failed = true;
        record(s->ws, RP_WS_BY_PROXY, 0, RP_ERR_WS_PROTOCOL);
        want_close(s->other, RP_WS_GOING_AWAY, "", 0, true);
        arm_closing(s->ws);
    }
}

/* Whether s ended its side without a Close, all it sent read. */
static bool
gone_quietly(side_t *s)
{
    if (wslay_event_get_close_received(s->ctx) || s->closed_by_hand)
        return false;
    return s->eof || (s->rd_end && evbuffer_get_length(peer_in(s)) == 0);
}

/* Run both directions until nothing moves; end the tunnel when both
 * sides are done.  False when ws was freed. */
static bool
pump(rp_ws_t *ws)
{
    if (ws->ended || ws->finishing)
        return true;
    ws->in_call = true;
    for (int round = 0; round < 4; round++) {
        recv_side(&ws->c);
        recv_side(&ws->u);
        send_side(&ws->u);
        send_side(&ws->c);
        if (!(ws->c.paused && pending_to(&ws->u) <= low_of(&ws->u)
              && pending_to(&ws->c) <= low_of(&ws->c))
            && !(ws->u.paused && pending_to(&ws->c) <= low_of(&ws->c)
                 && pending_to(&ws->u) <= low_of(&ws->u)))
            break;
    }
    ws->in_call = false;
    /* The code wslay sent for a protocol error is known once sent. */
    for (side_t *s = &ws->c; s != NULL; s = s == &ws->c ? &ws->u : NULL) {
        if (s->failed && ws->code == 0 && wslay_event_get_close_sent(s->ctx)) {
            ws->code = wslay_event_get_status_code_sent(s->ctx);
            ws->error = ws->code == RP_WS_BAD_DATA ? RP_ERR_WS_BAD_UTF8
                        : ws->code == RP_WS_TOO_BIG ? RP_ERR_WS_TOO_BIG : RP_ERR_WS_PROTOCOL;
        }
    }
    if (gone_quietly(&ws->c) && !ws->u.eof && !ws->u.close_wanted
        && !wslay_event_get_close_sent(ws->u.ctx)) {
        /* The client went without a Close. */
        record(ws, RP_WS_BY_CLIENT, RP_WS_ABNORMAL, RP_ERR_CLIENT_CLOSED);
        want_close(&ws->u, RP_WS_GOING_AWAY, "", 0, true);
        send_side(&ws->u);
        arm_closing(ws);
    }
    if (gone_quietly(&ws->u) && !ws->c.eof && !ws->c.close_wanted
        && !wslay_event_get_close_sent(ws->c.ctx)) {
        /* The backend went without a Close. */
        record(ws, RP_WS_BY_BACKEND, RP_WS_ABNORMAL, RP_ERR_UPSTREAM_RESET);
        want_close(&ws->c, RP_WS_SERVER_ERROR, "backend closed", 14, true);
        send_side(&ws->c);
        arm_closing(ws);
    }
    if (side_done(&ws->c) && side_done(&ws->u)) {
        ws_end(ws, true);
        return !ws_gone;
    }
    if (ws->free_wanted) {
        ws_end(ws, false);
        return !ws_gone;
    }
    /* Input taken: a side paused at its read watermark reads again. */
    if (!ws->u.eof && !ws->u.rd_end)
        rp_reader_drained(&ws->up->rd);
    /* A side that stopped on the other's queue, which is free again, goes
     * on from the loop (nothing else would wake it). */
    if ((ws->c.paused && pending_to(&ws->u) <= low_of(&ws->u) && pending_to(&ws->c) <= low_of(&ws->c))
        || (ws->u.paused && pending_to(&ws->c) <= low_of(&ws->c)
            && pending_to(&ws->u) <= low_of(&ws->u)))
        event_active(ws->kick, 0, 0);
    return true;
}

/* ---- events ---- */

static void
up_read(void *arg)
{
    pump(arg);
}

static void
up_write(struct bufferevent *bev, void *arg)
{
    rp_ws_t *ws = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (ws->finishing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            ws_end(ws, ws->end_graceful);
        return;
    }
    pump(ws);
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
    rp_ws_t *ws = arg;
    (void)bev;
    if (ws->finishing) {
        ws_end(ws, false);
        return;
    }
    if ((what & BEV_EVENT_READING) && (what & BEV_EVENT_EOF))
        ws->u.rd_end = true;   /* what it sent before is still relayed */
    else
        side_gone(&ws->u);     /* an error: nothing more either way */
    rp_reader_disable(&ws->up->rd);
    pump(ws);
}

void
rp_ws_client_input(rp_ws_t *ws)
{
    /* Bytes from the client, read or not yet (a backend not reading
     * holds them): a sign of life. */
    ws->client_seen_us = rp_now_us();
    ws->pinged = false;
    pump(ws);
}

void
rp_ws_client_writable(rp_ws_t *ws)
{
    if (!ws->finishing)
        pump(ws);
}

static void null_read(void *ctx, bool on) { (void)ctx; (void)on; }
static void null_flush(void *ctx) { (void)ctx; }
static size_t null_pending(void *ctx) { (void)ctx; return 0; }
static void null_close(void *ctx, bool graceful) { (void)ctx; (void)graceful; }
static const rp_ws_client_ops_t null_ops = { null_read, null_flush, null_pending, null_close,
                                              RP_WBUF_HIGH, RP_WBUF_LOW };

void
rp_ws_client_detach(rp_ws_t *ws)
{
    ws->cops = &null_ops;
    ws->cctx = NULL;
    ws->own_in = evbuffer_new();
    ws->own_out = evbuffer_new();
    if (ws->own_in == NULL || ws->own_out == NULL) {
        /* No buffers to stand in for the client's: the tunnel ends now,
         * the backend cut without its Close. */
        rp_oom_note("a WebSocket tunnel whose client went (backend connection closed)");
        record(ws, RP_WS_BY_CLIENT, RP_WS_ABNORMAL, RP_ERR_CLIENT_CLOSED);
        ws_end(ws, false);
        return;
    }
    ws->cin = ws->own_in;
    ws->cout = ws->own_out;
    side_gone(&ws->c);
    event_active(ws->kick, 0, 0);
}

void
rp_ws_client_gone(rp_ws_t *ws, bool error)
{
    if (error)
        side_gone(&ws->c);
    else
        ws->c.rd_end = true;
    ws->cops->read(ws->cctx, false);
    if (ws->finishing) {
        ws_end(ws, false);
        return;
    }
    pump(ws);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_ws_t *ws = arg;
    (void)fd;
    (void)what;
    if (ws->closing || ws->finishing) {
        /* The closing handshake took too long: both sides close; a
         * client whose side is done gets its last frames (and a clean
         * end), not a reset. */
        bool client_done = side_done(&ws->c) && !ws->c.eof;
        ws->finishing = true;   /* no more waiting for the backend */
        ws_end(ws, client_done);
        return;
    }
    unsigned idle_ms = ws->t->snap->websocket.idle_timeout_ms;
    uint64_t now = rp_now_us(), quiet = now - ws->client_seen_us;
    if (quiet >= (uint64_t)idle_ms * 1000u) {
        record(ws, RP_WS_BY_PROXY, RP_WS_GOING_AWAY, RP_ERR_WS_IDLE);
        want_close(&ws->c, RP_WS_GOING_AWAY, "idle timeout", 12, true);
        want_close(&ws->u, RP_WS_GOING_AWAY, "", 0, true);
        arm_closing(ws);
        pump(ws);
        return;
    }
    if (quiet >= (uint64_t)idle_ms * 500u && !ws->pinged) {
        /* A live client answers, and its pong counts as activity. */
        struct wslay_event_msg ping = { WSLAY_PING, (const uint8_t *)"revproxy", 8 };
        if (wslay_event_queue_msg(ws->c.ctx, &ping) == 0)
            ws->pinged = true;
        if (!pump(ws) || ws->closing || ws->finishing)
            return;   /* freed, or the closing deadline holds the timer now */
    }
    uint64_t due = ws->pinged ? (uint64_t)idle_ms * 1000u - quiet
                              : (uint64_t)idle_ms * 500u > quiet ? (uint64_t)idle_ms * 500u - quiet
                                                                 : (uint64_t)idle_ms * 1000u - quiet;
    struct timeval tv = { (time_t)(due / 1000000u), (suseconds_t)(due % 1000000u) };
    rp_event_add(ws->timer, &tv);
}

static void going_away(rp_ws_t *ws);

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_ws_t *ws = arg;
    (void)fd;
    (void)what;
    if (!ws->started) {
        ws->started = true;
        /* Opened while draining, or through a listener a reload removed:
         * it goes at once, as the others went. */
        if (ws->w->draining || rp_worker_listener_gone(ws->w, ws->peer.listener)) {
            going_away(ws);
            return;
        }
    }
    pump(ws);
}

/* ---- start and end ---- */

static int
side_init(rp_ws_t *ws, side_t *s, side_t *other, bool client)
{
    s->ws = ws;
    s->other = other;
    s->client = client;
    s->stage = evbuffer_new();
    if (s->stage == NULL)
        return -1;
    int r = client ? wslay_event_context_server_init(&s->ctx, &callbacks, s)
                   : wslay_event_context_client_init(&s->ctx, &callbacks, s);
    if (r != 0) {
        s->ctx = NULL;
        return -1;
    }
    wslay_event_config_set_no_buffering(s->ctx, 1);
    /* Frames are relayed as they come: the message limit is counted here
     * (frame_start_cb), wslay's own per frame bound is the same. */
    wslay_event_config_set_max_recv_msg_length(s->ctx, ws->t->snap->websocket.max_message_bytes);
    if (ws->t->ws_deflate)
        wslay_event_config_set_allowed_rsv_bits(s->ctx, WSLAY_RSV1_BIT);
    return 0;
}

static void
side_free(side_t *s)
{
    if (s->ctx != NULL)
        wslay_event_context_free(s->ctx);
    if (s->stage != NULL)
        evbuffer_free(s->stage);
    free(s->q);
    s->ctx = NULL;
    s->stage = NULL;
    s->q = NULL;
}

rp_ws_t *
rp_ws_start(rp_txn_t *t, const rp_ws_client_ops_t *ops, void *ctx, struct evbuffer *in,
            struct evbuffer *out)
{
    rp_ws_t *ws = calloc(1, sizeof *ws);
    if (ws == NULL) {
        /* The 101 went out: the tunnel closes both ways at once. */
        rp_oom_note("a WebSocket tunnel (closed)");
        rp_upconn_abort(t->up);
        t->up = NULL;
        t->why = RP_CLOSE_INTERNAL;
        t->error = RP_ERR_OUT_OF_MEMORY;
        t->reason = "out of memory for the tunnel";
        t->ws_close_code = RP_WS_ABNORMAL;
        t->ws_closed_by = RP_WS_BY_PROXY;
        rp_txn_tunnel_done(t);   /* the access line; t->peer is the client's */
        ops->close(ctx, false);
        return NULL;
    }
    ws->t = t;
    ws->w = t->worker;
    ws->cops = ops;
    ws->cctx = ctx;
    ws->cin = in;
    ws->cout = out;
    ws->peer = *t->peer;
    t->peer = &ws->peer;
    ws->up = t->up;
    t->up = NULL;
    /* A tunnel is work at its backend for as long as it is open: least_conn
     * sees it. */
    ws->backend_id = ws->up->backend_id;
    atomic_fetch_add_explicit(&rp_bstate(ws->backend_id)->active, 1, memory_order_relaxed);
    ws->start_us = ws->client_seen_us = rp_now_us();
    ws->c.ws = ws->u.ws = ws;
    TAILQ_INSERT_TAIL(&ws->w->tunnels, ws, link);
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_OPENED, 0);
    ws->timer = evtimer_new(ws->w->base, timer_cb, ws);
    ws->kick = event_new(ws->w->base, -1, 0, kick_cb, ws);
    if (ws->timer == NULL || ws->kick == NULL || side_init(ws, &ws->c, &ws->u, true) < 0
        || side_init(ws, &ws->u, &ws->c, false) < 0) {
        record(ws, RP_WS_BY_PROXY, RP_WS_ABNORMAL, RP_ERR_OUT_OF_MEMORY);   /* (all it can be) */
        ws_end(ws, false);
        return NULL;
    }
    struct bufferevent *ub = ws->up->bev;
    bufferevent_setcb(ub, NULL, up_write, up_event, ws);
    rp_reader_setcb(&ws->up->rd, up_read, up_event, ws);
    rp_reader_set_timeout(&ws->up->rd, 0);
    bufferevent_set_timeouts(ub, NULL, NULL);
    rp_reader_enable(&ws->up->rd);
    ops->read(ctx, true);
    unsigned idle_ms = t->snap->websocket.idle_timeout_ms;
    struct timeval tv = { idle_ms / 2000, (idle_ms / 2 % 1000) * 1000 };
    rp_event_add(ws->timer, &tv);
    /* Frames that came with the 101, or before it from the client: from
     * the loop, not from inside the callback that opened the tunnel. */
    event_active(ws->kick, 0, 0);
    return ws;
}

static void
ws_end(rp_ws_t *ws, bool graceful)
{
    ws_gone = false;
    if (ws->ended)
        return;
    if (ws->in_call) {
        ws->free_wanted = true;
        return;
    }
    if (graceful && !ws->finishing && ws->up != NULL && !ws->u.eof
        && evbuffer_get_length(bufferevent_get_output(ws->up->bev)) > 0) {
        /* The backend's last frames (its Close) go first. */
        ws->finishing = true;
        ws->end_graceful = true;
        rp_reader_disable(&ws->up->rd);
        arm_closing(ws);
        return;
    }
    ws->ended = true;
    rp_txn_t *t = ws->t;
    t->ws_close_code = ws->code;
    t->ws_closed_by = (uint8_t)ws->by;
    t->ws_msgs_in = ws->c.msgs;
    t->ws_msgs_out = ws->u.msgs;
    t->req_body_bytes = ws->c.bytes;
    t->resp_body_bytes = ws->u.bytes;
    t->bytes_out += ws->u.bytes;
    if (ws->error != RP_ERR_NONE && t->error == RP_ERR_NONE)
        t->error = ws->error;
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_CLOSED, ws->code);
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_MSGS_IN, ws->c.msgs);
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_MSGS_OUT, ws->u.msgs);
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_BYTES_IN, ws->c.bytes);
    rp_metrics_ws(ws->w->id, RP_METRIC_WS_BYTES_OUT, ws->u.bytes);
    TAILQ_REMOVE(&ws->w->tunnels, ws, link);
    atomic_fetch_sub_explicit(&rp_bstate(ws->backend_id)->active, 1, memory_order_relaxed);
    if (ws->timer != NULL)
        event_free(ws->timer);
    if (ws->kick != NULL)
        event_free(ws->kick);
    side_free(&ws->c);
    side_free(&ws->u);
    if (ws->up != NULL)
        rp_upconn_close(ws->up);
    ws->up = NULL;
    const rp_ws_client_ops_t *cops = ws->cops;
    void *cctx = ws->cctx;
    bool client_ok = !ws->c.eof;
    rp_txn_tunnel_done(t);   /* the access line (t->peer is ws->peer) */
    if (ws->own_in != NULL)
        evbuffer_free(ws->own_in);
    if (ws->own_out != NULL)
        evbuffer_free(ws->own_out);
    free(ws);
    ws_gone = true;
    cops->close(cctx, graceful && client_ok);
}

static void
going_away(rp_ws_t *ws)
{
    if (ws->ended || ws->finishing)
        return;
    record(ws, RP_WS_BY_PROXY, RP_WS_GOING_AWAY, RP_ERR_SHUTDOWN);
    want_close(&ws->c, RP_WS_GOING_AWAY, "going away", 10, true);
    want_close(&ws->u, RP_WS_GOING_AWAY, "going away", 10, true);
    evtimer_del(ws->timer);
    ws->closing = false;
    arm_closing(ws);
    pump(ws);
}

void
rp_ws_going_away_all(rp_worker_t *w, bool one_listener, unsigned ident)
{
    rp_ws_t *ws, *next;
    for (ws = TAILQ_FIRST(&w->tunnels); ws != NULL; ws = next) {
        next = TAILQ_NEXT(ws, link);
        if (!one_listener || ws->t->peer->listener == ident)
            going_away(ws);
    }
}

unsigned
rp_ws_stop_all(rp_worker_t *w)
{
    unsigned n = 0;
    rp_ws_t *ws;
    while ((ws = TAILQ_FIRST(&w->tunnels)) != NULL) {
        record(ws, RP_WS_BY_PROXY, RP_WS_ABNORMAL, RP_ERR_SHUTDOWN);
        ws->in_call = false;
        ws->finishing = false;
        ws_end(ws, false);
        n++;
    }
    return n;
}
