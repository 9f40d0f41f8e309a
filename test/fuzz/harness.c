/* SPDX-License-Identifier: MIT */
/*
 * The harness fuzz_h1.c and fuzz_h2.c share: see harness.h.
 */
#include "config.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <llhttp.h>
#include <sanitizer/common_interface_defs.h>
#include "revproxy/config.h"
#include "revproxy/http.h"
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "conn.h"
#include "h2.h"
#include "pool.h"
#include "proxy.h"
#include "transport.h"
#include "worker.h"
#include "harness.h"

harness_t H;

#define FT(t) ((fake_tr_t *)(t))

/* ---- the backend ---- */

typedef enum be_state {
    BE_IDLE = 0,   /* waiting for bytes to answer */
    BE_WAITING,    /* reply chosen; answers at the next read */
    BE_SENDING,    /* a slice per loop iteration */
    BE_DRAINING,   /* all queued; the end action runs once written */
    BE_HALF,       /* write side shut */
    BE_SILENT      /* script used up: reads and says nothing */
} be_state_t;

enum { END_KEEP = 0, END_CLOSE, END_RESET, END_HALF };

/* Why the request parser of a backend connection paused. */
enum { UP_RUN = 0, UP_HEAD, UP_END };

/* Header fields of a forwarded request that are counted. */
enum { UF_OTHER = 0, UF_HOST, UF_CL, UF_TE, UF_XRID };

typedef struct backend_conn {
    struct bufferevent *bev;
    be_state_t          state;
    const uint8_t      *reply;
    size_t              len, off, slice;
    int                 end;
    unsigned            serial;     /* names the connection in the reply records */
    /* what the proxy sends, parsed as requests */
    llhttp_t            rq;
    char               *in;         /* bytes from the current request's start */
    size_t              in_len, in_cap;
    size_t              parsed;     /* of in, given to the parser */
    bool                in_body;    /* the head is checked: body bytes are not kept */
    int                 paused;     /* UP_HEAD or UP_END when the parser paused */
    uint8_t             method;     /* of the latest request */
    uint16_t            flags;      /* the parser's flags at its head's end */
    bool                head_done;  /* the latest request's head was complete */
    char                id[RID_MAX + 1];   /* and its X-Request-Id */
    unsigned            nhost, ncl, nte, nxrid;
    bool                host_empty, te_other;
    int                 kind;       /* UF_*: the field whose value is parsed */
    char                name[24];
    size_t              name_len;
    char                val[RID_MAX + 1];
    size_t              val_len;
    LIST_ENTRY(backend_conn) link;
} backend_conn_t;

/* A reply of the script, with the request it was taken for: the latest
 * request begun on its connection when the connection took it. */
typedef struct reply_rec {
    const uint8_t *data;
    size_t         len;
    unsigned       serial;   /* its backend connection */
    bool           known;    /* that request's head was complete */
    bool           head;     /* that request is HEAD */
    bool           dup;      /* another reply was taken for the same id */
    int8_t         exact;    /* one whole response, nothing after: 1 yes, -1 no, 0 not known yet */
    char           id[RID_MAX + 1];
} reply_rec_t;

/* The backend's side of the harness. */
static struct {
    struct evconnlistener *lst;
    LIST_HEAD(, backend_conn) backends;
    unsigned       serial;
    /* per input */
    const uint8_t *script;
    size_t         script_len, script_pos;
    char           fwd[MAX_FWD][RID_MAX + 1];   /* ids of the requests forwarded */
    size_t         nfwd;
    reply_rec_t    rec[MAX_REPLIES];
    size_t         nrec;
    bool           rec_over;      /* more replies than kept: no body checks */
    rp_snapshot_t *snap;          /* the input's, its references ... */
    unsigned       refs, active;  /* ... and the connections counted at its start */
} B;

void
violation(const char *what)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s", H.name, what);
    __sanitizer_report_error_summary(line);
    abort();
}

void
violation_on(const char *what, int32_t sid)
{
    if (sid < 0)
        violation(what);
    char line[200];
    snprintf(line, sizeof line, "%s (stream %d)", what, (int)sid);
    violation(line);
}

/* ---- transport ops ---- */

static void
sink_take(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    if (n == 0)
        return;
    H.progress++;
    if (H.sink_over || H.sink_len + n > SINK_MAX) {
        H.sink_over = true;
        evbuffer_drain(out, n);
        return;
    }
    if (evbuffer_remove(out, H.sink + H.sink_len, n) != (int)n)
        violation("evbuffer_remove came short");
    H.sink_len += n;
}

static void
ft_read(rp_transport_t *tr, bool on)
{
    FT(tr)->reading = on;
    H.progress++;
}

static void
ft_read_timeout(rp_transport_t *tr, unsigned ms)
{
    FT(tr)->read_timeout_ms = ms;
}

static void
ft_drained(rp_transport_t *tr)
{
    (void)tr;
    H.progress++;
}

static void
ft_write_timeout(rp_transport_t *tr, unsigned ms)
{
    FT(tr)->write_timeout_ms = ms;
}

static void
ft_set_lowat(rp_transport_t *tr, size_t lowat)
{
    FT(tr)->lowat = lowat;
}

static void
ft_flush(rp_transport_t *tr)
{
    fake_tr_t *ft = FT(tr);
    if (ft->shut && evbuffer_get_length(tr->out) > 0)
        violation("output queued after the transport was shut down");
    if (H.stall) {
        /* The client is not reading now: what is queued waits. */
        if (evbuffer_get_length(tr->out) > 0)
            ft->write_pending = true;
        return;
    }
    sink_take(tr->out);
}

static void
ft_shutdown(rp_transport_t *tr)
{
    fake_tr_t *ft = FT(tr);
    if (evbuffer_get_length(tr->out) > 0)
        violation("transport shut down with output still queued");
    ft->shut = true;
    H.progress++;
}

static void
ft_free(rp_transport_t *tr, bool reset)
{
    fake_tr_t *ft = FT(tr);
    if (ft != H.ft)
        violation("a transport freed twice");
    H.tr_frees++;
    H.freed_reset = reset;
    H.freed_by_proxy = !H.in_cleanup;
    H.freed_pending = evbuffer_get_length(tr->out) > 0;
    evbuffer_free(tr->in);
    evbuffer_free(tr->out);
    free(ft);
    H.ft = NULL;
    H.progress++;
}

/* No socket: the slow-client meter reads no acknowledged bytes from it
 * (rp_fd_bytes_acked gives 0) and never judges a reader. */
static int
ft_fd(rp_transport_t *tr)
{
    (void)tr;
    return -1;
}

static const rp_transport_ops_t fake_ops = {
    .name = "fake",
    .read = ft_read,
    .read_timeout = ft_read_timeout,
    .drained = ft_drained,
    .write_timeout = ft_write_timeout,
    .set_lowat = ft_set_lowat,
    .flush = ft_flush,
    .shutdown = ft_shutdown,
    .free = ft_free,
    .fd = ft_fd,
};

static fake_tr_t *
fake_new(bool secure)
{
    fake_tr_t *ft = calloc(1, sizeof *ft);
    if (ft == NULL)
        abort();
    ft->tr.ops = &fake_ops;
    ft->tr.in = evbuffer_new();
    ft->tr.out = evbuffer_new();
    if (ft->tr.in == NULL || ft->tr.out == NULL)
        abort();
    ft->tr.secure = secure;
    return ft;
}

/* ---- the client side of the transport ---- */

/* Bytes arrive as a read would bring them (not past the read watermark,
 * only while reading is on).  Returns how many were taken. */
static size_t
client_send(const uint8_t *p, size_t n)
{
    fake_tr_t *ft = H.ft;
    if (ft == NULL || !ft->reading || H.eof_sent)
        return 0;
    size_t have = evbuffer_get_length(ft->tr.in);
    if (have >= H.read_high)
        return 0;
    if (n > H.read_high - have)
        n = H.read_high - have;
    evbuffer_add(ft->tr.in, p, n);
    if (H.read_begin != NULL)
        H.read_begin(n);
    H.progress++;
    ft->tr.read_cb(ft->tr.arg);   /* may free the transport */
    if (H.read_end != NULL)
        H.read_end();
    return n;
}

void
client_event(short what)
{
    fake_tr_t *ft = H.ft;
    if (ft == NULL)
        return;
    if (what & BEV_EVENT_READING)
        ft->reading = false;   /* after EOF, an error or a timeout, reading is off */
    H.progress++;
    ft->tr.event_cb(what, ft->tr.arg);
}

void
client_take(void)
{
    fake_tr_t *ft = H.ft;
    if (ft == NULL || !ft->write_pending)
        return;
    ft->write_pending = false;
    sink_take(ft->tr.out);
    ft->tr.write_cb(ft->tr.arg);
}

void
client_end_try(void)
{
    fake_tr_t *ft = H.ft;
    if (ft == NULL)
        return;
    if (H.eof_due && !H.eof_sent && ft->reading
        && evbuffer_get_length(ft->tr.in) < H.read_high) {
        H.eof_sent = true;
        client_event(BEV_EVENT_READING | BEV_EVENT_EOF);
        return;
    }
    if (H.reset_due && !H.client_gone) {
        short what = 0;
        if (ft->reading)
            what = BEV_EVENT_READING | BEV_EVENT_ERROR;
        else if (ft->write_pending)
            what = BEV_EVENT_WRITING | BEV_EVENT_ERROR;
        if (what != 0) {
            H.client_gone = true;
            client_event(what);
        }
    }
}

void
finish_client(bool reset)
{
    if (reset)
        H.reset_due = true;
    else
        H.eof_due = true;
    client_end_try();
}

/* A slice size, raised so that len bytes take at most MAX_SLICES slices;
 * 0 or more than len: all at once. */
static size_t
slice_clamp(size_t slice, size_t len)
{
    if (slice == 0 || slice > len)
        slice = len;
    if (len > 0 && (len + slice - 1) / slice > MAX_SLICES)
        slice = (len + MAX_SLICES - 1) / MAX_SLICES;
    return slice;
}

size_t
client_slice(unsigned sel, size_t n)
{
    static const size_t slices[8] = { 0, 1, 2, 3, 7, 16, 61, 256 };
    return slice_clamp(slices[sel & 7], n);
}

bool
client_feed(const uint8_t *p, size_t n, size_t slice, size_t *off, bool end, bool reset)
{
    bool ended = false;
    for (unsigned stuck = 0; *off < n && H.ft != NULL && stuck < 3;) {
        size_t k = n - *off < slice ? n - *off : slice;
        size_t got = client_send(p + *off, k);
        *off += got;
        stuck = got == 0 ? stuck + 1 : 0;
        if (*off == n && end) {
            finish_client(reset);
            ended = true;
        }
        pump();
        client_take();
        client_end_try();
    }
    return ended;
}

/* ---- what the backends receive, parsed as requests ---- */

static llhttp_settings_t up_settings;

static void
up_violation(const backend_conn_t *b, const char *what)
{
    if (H.dump) {
        fprintf(stderr, "%s: backend connection %u holds:\n", H.name, b->serial);
        fwrite(b->in, 1, b->in_len, stderr);
        fprintf(stderr, "\n%s: end of what it holds\n", H.name);
    }
    violation(what);
}

static int
up_message_begin(llhttp_t *p)
{
    backend_conn_t *b = p->data;
    b->head_done = false;
    b->id[0] = '\0';
    b->nhost = b->ncl = b->nte = b->nxrid = 0;
    b->host_empty = b->te_other = false;
    b->kind = UF_OTHER;
    b->name_len = 0;
    return 0;
}

static int
up_header_field(llhttp_t *p, const char *at, size_t len)
{
    backend_conn_t *b = p->data;
    for (size_t i = 0; i < len; i++, b->name_len++)
        if (b->name_len < sizeof b->name)
            b->name[b->name_len] = at[i];
    return 0;
}

static bool
name_is(const backend_conn_t *b, const char *name)
{
    size_t n = strlen(name);
    return b->name_len == n && strncasecmp(b->name, name, n) == 0;
}

static int
up_header_field_complete(llhttp_t *p)
{
    backend_conn_t *b = p->data;
    b->kind = name_is(b, "host") ? UF_HOST
            : name_is(b, "content-length") ? UF_CL
            : name_is(b, "transfer-encoding") ? UF_TE
            : name_is(b, "x-request-id") ? UF_XRID : UF_OTHER;
    switch (b->kind) {
    case UF_HOST: b->nhost++; break;
    case UF_CL:   b->ncl++; break;
    case UF_TE:   b->nte++; break;
    case UF_XRID: b->nxrid++; break;
    default:      break;
    }
    b->name_len = 0;
    b->val_len = 0;
    return 0;
}

static int
up_header_value(llhttp_t *p, const char *at, size_t len)
{
    backend_conn_t *b = p->data;
    if (b->kind == UF_OTHER)
        return 0;
    for (size_t i = 0; i < len; i++, b->val_len++)
        if (b->val_len < RID_MAX)
            b->val[b->val_len] = at[i];
    return 0;
}

static int
up_header_value_complete(llhttp_t *p)
{
    backend_conn_t *b = p->data;
    switch (b->kind) {
    case UF_HOST:
        if (b->val_len == 0)
            b->host_empty = true;
        break;
    case UF_TE:
        if (b->val_len != 7 || memcmp(b->val, "chunked", 7) != 0)
            b->te_other = true;
        break;
    case UF_XRID:
        if (b->val_len <= RID_MAX) {
            memcpy(b->id, b->val, b->val_len);
            b->id[b->val_len] = '\0';
        }
        break;
    default:
        break;
    }
    b->kind = UF_OTHER;
    return 0;
}

static int
up_headers_complete(llhttp_t *p)
{
    backend_conn_t *b = p->data;
    b->method = p->method;
    b->flags = p->flags;
    b->paused = UP_HEAD;
    return HPE_PAUSED;   /* the head is checked where it ends */
}

static int
up_message_complete(llhttp_t *p)
{
    backend_conn_t *b = p->data;
    b->paused = UP_END;
    return HPE_PAUSED;   /* the next request starts right there */
}

static bool
tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
           || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The head of a forwarded request, b->in[0, len), its fields counted by
 * the parser: the request line is METHOD SP origin-form (or "*" for
 * OPTIONS) SP HTTP/1.1, every line ends in CRLF and none is folded, the
 * framing is one the backend reads the way the proxy meant it, and the
 * request id is one the proxy would take from a client. */
static void
up_check_head(backend_conn_t *b, size_t len)
{
    const char *h = b->in, *end = h + len;
    const char *eol = memchr(h, '\n', len);
    if (eol == NULL || eol == h || eol[-1] != '\r')
        up_violation(b, "a forwarded request line that does not end in CRLF");
    const char *q = h;
    while (q < eol && tchar((unsigned char)*q))
        q++;
    if (q == h || *q != ' ')
        up_violation(b, "a forwarded request line that does not start with a method and a space");
    const char *target = ++q;
    while (q < eol && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
        q++;
    size_t tlen = (size_t)(q - target);
    static const char version[] = " HTTP/1.1\r";
    if (tlen == 0 || (size_t)(eol - q) != sizeof version - 1
        || memcmp(q, version, sizeof version - 1) != 0)
        up_violation(b, "a forwarded request line that is not METHOD SP target SP HTTP/1.1");
    if (target[0] != '/' && !(tlen == 1 && target[0] == '*' && b->method == HTTP_OPTIONS))
        up_violation(b, "a forwarded request target neither in origin form nor OPTIONS *");
    for (const char *l = eol + 1; l < end;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (e == NULL || e == l || e[-1] != '\r')
            up_violation(b, "a forwarded header line that does not end in CRLF");
        if (*l == ' ' || *l == '\t')
            up_violation(b, "a folded header line in a forwarded request");
        if (e == l + 1 && e + 1 != end)
            up_violation(b, "an empty line inside a forwarded head");
        l = e + 1;
    }
    if (b->nhost != 1 || b->host_empty)
        up_violation(b, "a forwarded request without exactly one non-empty Host");
    if (b->ncl > 1 || b->nte > 1)
        up_violation(b, "a forwarded request with Content-Length or Transfer-Encoding twice");
    if (b->ncl > 0 && b->nte > 0)
        up_violation(b, "a forwarded request with both Content-Length and Transfer-Encoding");
    if (b->te_other || (b->nte > 0) != ((b->flags & F_CHUNKED) != 0))
        up_violation(b, "a forwarded request with a Transfer-Encoding other than chunked");
    if (b->nxrid != 1 || b->id[0] == '\0')
        up_violation(b, "a forwarded request without exactly one X-Request-Id");
    if (!rp_request_id_valid(b->id, strlen(b->id)))
        up_violation(b, "a forwarded X-Request-Id that is not a valid request id");
    if (B.nfwd < MAX_FWD)
        memcpy(B.fwd[B.nfwd++], b->id, sizeof b->id);
    b->head_done = true;
}

/* What a backend connection read: appended to what it holds and parsed.
 * A request cut short at the end is fine (the proxy closes or resets a
 * connection in the middle of a request body it gives up); a malformed
 * one never is. */
static void
up_take(backend_conn_t *b, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src);
    if (n == 0)
        return;
    if (b->in_len + n > b->in_cap) {
        size_t cap = b->in_cap < 4096 ? 4096 : b->in_cap;
        while (cap < b->in_len + n)
            cap *= 2;
        b->in = realloc(b->in, cap);
        if (b->in == NULL)
            abort();
        b->in_cap = cap;
    }
    if (evbuffer_remove(src, b->in + b->in_len, n) != (int)n)
        violation("evbuffer_remove came short");
    b->in_len += n;
    while (b->parsed < b->in_len) {
        b->paused = UP_RUN;
        llhttp_errno_t err = llhttp_execute(&b->rq, b->in + b->parsed, b->in_len - b->parsed);
        if (err == HPE_OK) {
            b->parsed = b->in_len;
            break;
        }
        if (err != HPE_PAUSED) {
            char what[160];
            snprintf(what, sizeof what,
                     "a backend received bytes that do not parse as HTTP/1.1 requests (%s: %s)",
                     llhttp_errno_name(err), llhttp_get_error_reason(&b->rq));
            up_violation(b, what);
        }
        size_t pos = (size_t)(llhttp_get_error_pos(&b->rq) - b->in);
        llhttp_resume(&b->rq);
        b->parsed = pos;
        if (b->paused == UP_HEAD) {
            up_check_head(b, pos);
            b->in_body = true;
        } else if (b->paused == UP_END) {
            b->in_body = false;
            memmove(b->in, b->in + pos, b->in_len - pos);
            b->in_len -= pos;
            b->parsed = 0;
        }
    }
    if (b->in_body) {
        /* Body bytes are parsed, not kept. */
        memmove(b->in, b->in + b->parsed, b->in_len - b->parsed);
        b->in_len -= b->parsed;
        b->parsed = 0;
    }
}

/* ---- the backend's connections ---- */

static void
be_close(backend_conn_t *b, bool reset)
{
    if (reset) {
        struct linger lg = { 1, 0 };
        setsockopt(bufferevent_getfd(b->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    bufferevent_free(b->bev);
    LIST_REMOVE(b, link);
    free(b->in);
    free(b);
    H.progress++;
}

/* The next reply of the script, or false when it is used up. */
static bool
script_next(backend_conn_t *b)
{
    static const size_t slices[4] = { 0, 1, 5, 64 };
    if (B.script_pos >= B.script_len)
        return false;
    const uint8_t *s = B.script + B.script_pos;
    size_t left = B.script_len - B.script_pos;
    uint8_t ctl = s[0];
    size_t hdr = left >= 3 ? 3 : left;
    size_t len = left >= 3 ? ((size_t)s[1] | (size_t)s[2] << 8) : 0;
    if (len > left - hdr)
        len = left - hdr;
    B.script_pos += hdr + len;
    b->reply = s + hdr;
    b->len = len;
    b->off = 0;
    b->end = ctl & 3;
    b->slice = slice_clamp(slices[(ctl >> 2) & 3], len);
    b->state = (ctl & 16) ? BE_WAITING : BE_SENDING;
    if (B.nrec < MAX_REPLIES) {
        reply_rec_t *r = &B.rec[B.nrec++];
        r->data = b->reply;
        r->len = len;
        r->serial = b->serial;
        r->known = b->head_done;
        r->head = b->method == HTTP_HEAD;
        r->dup = false;
        r->exact = 0;
        memcpy(r->id, b->id, sizeof r->id);
    } else {
        B.rec_over = true;
    }
    return true;
}

static void
be_finish(backend_conn_t *b)
{
    switch (b->end) {
    case END_KEEP:
        b->state = BE_IDLE;
        return;
    case END_CLOSE:
        be_close(b, false);
        return;
    case END_RESET:
        be_close(b, true);
        return;
    default:
        shutdown(bufferevent_getfd(b->bev), SHUT_WR);
        b->state = BE_HALF;
        return;
    }
}

static void
be_read(struct bufferevent *bev, void *arg)
{
    backend_conn_t *b = arg;
    up_take(b, bufferevent_get_input(bev));
    H.progress++;
    if (b->state == BE_WAITING) {
        b->state = BE_SENDING;
        return;
    }
    if (b->state != BE_IDLE)
        return;
    if (script_next(b))
        return;
    if (H.silent)
        b->state = BE_SILENT;
    else
        be_close(b, false);
}

static void
be_write(struct bufferevent *bev, void *arg)
{
    backend_conn_t *b = arg;
    (void)bev;
    if (b->state == BE_DRAINING)
        be_finish(b);
}

static void
be_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    be_close(arg, false);   /* the proxy closed or reset the connection */
}

static void
be_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    /* Slices go out as they are written, not held back for an ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(H.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    backend_conn_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    b->bev = bev;
    b->serial = ++B.serial;
    llhttp_init(&b->rq, HTTP_REQUEST, &up_settings);
    b->rq.data = b;
    LIST_INSERT_HEAD(&B.backends, b, link);
    bufferevent_setcb(bev, be_read, be_write, be_event, b);
    bufferevent_enable(bev, EV_READ);
    H.progress++;
}

/* One slice for every backend connection whose last slice was written.
 * Returns whether any backend still has something to send. */
static bool
backends_tick(void)
{
    bool busy = false;
    backend_conn_t *b, *next;
    for (b = LIST_FIRST(&B.backends); b != NULL; b = next) {
        next = LIST_NEXT(b, link);
        if (b->state == BE_DRAINING)
            busy = true;
        if (b->state != BE_SENDING)
            continue;
        busy = true;
        if (evbuffer_get_length(bufferevent_get_output(b->bev)) > 0)
            continue;
        size_t n = b->len - b->off;
        if (n > b->slice)
            n = b->slice;
        if (n > 0)
            bufferevent_write(b->bev, b->reply + b->off, n);
        b->off += n;
        H.progress++;
        if (b->off == b->len) {
            b->state = BE_DRAINING;
            if (n == 0)
                be_finish(b);   /* an empty reply: no write callback comes */
        }
    }
    return busy;
}

static void
backends_close_all(void)
{
    backend_conn_t *b;
    while ((b = LIST_FIRST(&B.backends)) != NULL)
        be_close(b, true);
}

/* Connections the proxy opened and gave up before they were accepted:
 * reset. */
void
refuse_backlog(struct evconnlistener *l)
{
    int lfd = evconnlistener_get_fd(l);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return;
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
}

/* ---- driving the loop ---- */

/* Runs the loop without blocking until nothing moves: no progress and no
 * event left active (the connection's deferred work re-activates its
 * event; one that keeps doing so without end is a busy loop). */
void
pump(void)
{
    unsigned quiet = 0;
    bool busy = false;
    for (unsigned i = 0; i < PUMP_MAX && quiet < PUMP_QUIET; i++) {
        unsigned long before = H.progress;
        event_base_loop(H.base, EVLOOP_NONBLOCK);
        busy = backends_tick();
        bool active = event_base_get_num_events(H.base, EVENT_BASE_COUNT_ACTIVE) > 0;
        quiet = H.progress == before && !active ? quiet + 1 : 0;
    }
    if (quiet < PUMP_QUIET && !busy)
        violation("the event loop keeps running with no backend sending");
}

void
settle(void)
{
    pump();
    client_take();
    client_end_try();
    pump();
}

void
fire(struct event *ev)
{
    if (ev == NULL || !event_pending(ev, EV_TIMEOUT, NULL))
        return;
    event_active(ev, EV_TIMEOUT, 1);
    H.progress++;
    pump();
}

/* ---- a final response the client got whole, held to the backend ---- */

/* A reply of the script, read the way the proxy reads it: 1xx responses
 * end with their heads and the final one starts on a fresh parser; no
 * body to HEAD, nor with 204 or 304. */
typedef struct reply_view {
    bool   head;          /* the request was HEAD */
    bool   interim, interim_done, final_seen, final_done, odd;
    int    status;
    size_t body_len;
    char   body[BODY_MAX];
} reply_view_t;

static reply_view_t R;

static int
rv_headers_complete(llhttp_t *p)
{
    if (p->http_major != 1 || p->status_code < 100 || p->status_code == 101)
        R.odd = true;   /* the proxy refuses it (502) */
    if (p->status_code < 200) {
        R.interim = true;
        return 1;
    }
    R.final_seen = true;
    R.status = p->status_code;
    return R.head || p->status_code == 204 || p->status_code == 304 ? 1 : 0;
}

static int
rv_body(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    if (R.body_len < BODY_MAX)
        memcpy(R.body + R.body_len, at, len < BODY_MAX - R.body_len ? len : BODY_MAX - R.body_len);
    R.body_len += len;
    return 0;
}

static int
rv_message_complete(llhttp_t *p)
{
    (void)p;
    if (R.interim)
        R.interim_done = true;
    else
        R.final_done = true;
    return HPE_PAUSED;
}

static llhttp_settings_t rv_settings;

/* Read reply r into R.  Returns whether it holds a final response that
 * ends (by its framing, or by the close for a body that runs to it);
 * *exact tells whether that response ends right where the reply does, so
 * that whatever the connection carries next starts a new response. */
static bool
reply_read(const reply_rec_t *r, bool *exact)
{
    memset(&R, 0, offsetof(reply_view_t, body));
    R.head = r->head;
    *exact = false;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &rv_settings);
    const char *data = (const char *)r->data, *end = data + r->len;
    for (;;) {
        llhttp_errno_t err = llhttp_execute(&p, data, (size_t)(end - data));
        if (err == HPE_OK)
            break;
        if (err != HPE_PAUSED)
            return false;
        const char *pos = llhttp_get_error_pos(&p);
        if (R.final_done) {
            *exact = pos == end;
            return !R.odd;
        }
        if (!R.interim_done)
            return false;
        R.interim = R.interim_done = false;
        llhttp_init(&p, HTTP_RESPONSE, &rv_settings);
        data = pos;
    }
    if (!R.final_seen || R.odd)
        return false;
    llhttp_errno_t err = llhttp_finish(&p);
    return (err == HPE_OK || err == HPE_PAUSED) && R.final_done;
}

/* The body of the proxy's own error answer: "NNN Reason\nerror: WORD\n
 * request_id: ID\n" (see h1_send_error and h2_send_error).  Returns the
 * word, or NULL when the response is not one (or, answering HEAD, has no
 * body to tell). */
static const char *
proxy_answer_word(const answer_t *a, char *word, size_t cap)
{
    size_t blen = a->body_len;
    if (blen > BODY_MAX || a->body == NULL)
        return NULL;
    const char *b = a->body, *end = a->body + blen;
    char num[8];
    int nl = snprintf(num, sizeof num, "%d ", a->status);
    if (blen < (size_t)nl || memcmp(b, num, (size_t)nl) != 0)
        return NULL;
    const char *e = memchr(b, '\n', blen);
    if (e == NULL || (size_t)(end - e) < 8 || memcmp(e + 1, "error: ", 7) != 0)
        return NULL;
    const char *w = e + 8;
    e = memchr(w, '\n', (size_t)(end - w));
    if (e == NULL || (size_t)(e - w) >= cap)
        return NULL;
    memcpy(word, w, (size_t)(e - w));
    word[e - w] = '\0';
    static const char rid[] = "request_id: ";
    const char *i = e + 1;
    if ((size_t)(end - i) != sizeof rid - 1 + a->rid_len + 1 || memcmp(i, rid, sizeof rid - 1) != 0
        || memcmp(i + sizeof rid - 1, a->rid, a->rid_len) != 0 || end[-1] != '\n')
        return NULL;
    return word;
}

/* Error words the proxy only ever answers before it forwards a request. */
static bool
before_forwarding(const char *word)
{
    static const char *const words[] = {
        "bad_request", "bad_path", "uri_too_long", "unsupported_transfer_coding",
        "unsupported_version", "method_not_allowed", "expectation_failed",
        "header_timeout", "no_route", NULL };
    for (const char *const *w = words; *w != NULL; w++)
        if (strcmp(word, *w) == 0)
            return true;
    return false;
}

bool
forwarded(const char *id)
{
    for (size_t i = 0; i < B.nfwd; i++)
        if (strcmp(B.fwd[i], id) == 0)
            return true;
    return false;
}

/* The reply taken for the request with this id, when it is the only one
 * and whatever its connection carried before is in step with the
 * requests (every earlier reply there one whole response, the only one
 * for its request).  NULL otherwise. */
static const reply_rec_t *
reply_for(const char *id)
{
    reply_rec_t *found = NULL;
    for (size_t i = 0; i < B.nrec && found == NULL; i++)
        if (B.rec[i].known && strcmp(B.rec[i].id, id) == 0)
            found = &B.rec[i];
    if (found == NULL || found->dup)
        return NULL;
    for (reply_rec_t *r = B.rec; r < found; r++) {
        if (r->serial != found->serial)
            continue;
        if (r->exact == 0) {
            bool exact;
            r->exact = reply_read(r, &exact) && exact ? 1 : -1;
        }
        if (!r->known || r->dup || r->exact < 0)
            return NULL;
    }
    return found;
}

void
mark_dups(void)
{
    if (B.rec_over)
        return;
    for (size_t i = 0; i < B.nrec; i++) {
        reply_rec_t *r = &B.rec[i];
        if (!r->known || r->dup)
            continue;
        for (size_t j = i + 1; j < B.nrec; j++)
            if (B.rec[j].known && strcmp(B.rec[j].id, r->id) == 0)
                r->dup = B.rec[j].dup = true;
    }
}

void
check_answer(const answer_t *a)
{
    char where[32] = "response";
    if (a->sid >= 0)
        snprintf(where, sizeof where, "stream %d:", (int)a->sid);
    char word[40];
    if (proxy_answer_word(a, word, sizeof word) != NULL) {
        if (before_forwarding(word) && forwarded(a->rid)) {
            char what[160];
            snprintf(what, sizeof what, "a request forwarded that the proxy answered %d (%s)",
                     a->status, word);
            violation_on(what, a->sid);
        }
        if (H.dump)
            fprintf(stderr, "%s: %s %d %s: the proxy's own (%s)\n",
                    H.name, where, a->status, a->rid, word);
        return;
    }
    if (B.rec_over)
        return;
    const reply_rec_t *r = reply_for(a->rid);
    bool exact;
    if (r == NULL || !reply_read(r, &exact))
        return;
    if (a->status != R.status) {
        if (a->head)
            return;   /* an error answer to HEAD has no body to know it by */
        char what[160];
        snprintf(what, sizeof what, "the client got status %d, the backend sent %d",
                 a->status, R.status);
        violation_on(what, a->sid);
    }
    if (a->body_len > BODY_MAX || R.body_len > BODY_MAX)
        return;
    if (a->body_len != R.body_len || (a->body_len > 0 && memcmp(a->body, R.body, a->body_len) != 0)) {
        char what[160];
        snprintf(what, sizeof what,
                 "the client got a body of %zu bytes other than the %zu bytes the backend sent",
                 a->body_len, R.body_len);
        violation_on(what, a->sid);
    }
    if (H.dump)
        fprintf(stderr, "%s: %s %d %s: status and %zu body bytes as the backend sent\n",
                H.name, where, a->status, a->rid, a->body_len);
}

/* ---- set-up ---- */

/* Configurations A (small limits, pooling, route /, a request deadline)
 * and B (no pooling, no request deadline, routes only /a and host
 * b.example), around the target's limits (%s) and the backend's port. */
static const char config_a[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": %s,"
    " \"timeouts\": {\"client_header_ms\": 50000, \"client_idle_ms\": 51000, \"request_ms\": 52000,"
    "   \"upstream_connect_ms\": 53000, \"upstream_response_ms\": 54000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 2, \"idle_timeout_ms\": 55000}}},"
    " \"routes\": [{\"path_prefix\": \"/\", \"upstream\": \"app\"}],"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

static const char config_b[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": %s,"
    " \"timeouts\": {\"client_header_ms\": 56000, \"client_idle_ms\": 57000, \"request_ms\": 0,"
    "   \"upstream_connect_ms\": 58000, \"upstream_response_ms\": 59000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 0}}},"
    " \"routes\": [{\"path_prefix\": \"/a\", \"upstream\": \"app\"},"
    "   {\"host\": \"b.example\", \"upstream\": \"app\"}],"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

static rp_snapshot_t *
snapshot(const char *fmt, const char *limits, unsigned port)
{
    char text[2048];
    snprintf(text, sizeof text, fmt, limits, port);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "%s: config: %s\n", H.name, jerr.text);
        abort();
    }
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    if (rp_snapshot_build(root, &s, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s: config: %s\n", H.name, errs.msgs[i]);
        abort();
    }
    rp_errs_free(&errs);
    json_decref(root);
    return s;
}

void
harness_init(const char *name, const char *dump_env, const char *limits_a, const char *limits_b)
{
    H.name = name;
    signal(SIGPIPE, SIG_IGN);
    /* Quiet logs: only errors are formatted, and access lines are off
     * (rp_log_start records that; its writer thread is not needed here, so
     * lines go out at once, from this thread). */
    rp_log_level = RP_LOG_ERROR;
    if (rp_log_start(NULL, true) == 0)
        rp_log_stop();
    rp_proxy_init();
    rp_max_conns = 1000000;

    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    H.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (H.base == NULL)
        abort();
    LIST_INIT(&B.backends);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    B.lst = evconnlistener_new_bind(H.base, be_accept, NULL,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                                    64, (struct sockaddr *)&sin, sizeof sin);
    if (B.lst == NULL)
        abort();
    socklen_t slen = sizeof sin;
    if (getsockname(evconnlistener_get_fd(B.lst), (struct sockaddr *)&sin, &slen) != 0)
        abort();
    unsigned port = ntohs(sin.sin_port);

    H.w.id = 0;
    H.w.base = H.base;
    H.w.stop_pipe[0] = H.w.stop_pipe[1] = -1;
    TAILQ_INIT(&H.w.conns);
    TAILQ_INIT(&H.w.handshakes);
    TAILQ_INIT(&H.w.h2s);
    H.snaps[0] = snapshot(config_a, limits_a, port);
    H.snaps[1] = snapshot(config_b, limits_b, port);
    for (int i = 0; i < 2; i++) {
        H.w.snap = H.snaps[i];
        if (rp_modules_start(&H.w, H.snaps[i]) != 0)
            abort();
    }

    llhttp_settings_init(&up_settings);
    up_settings.on_message_begin = up_message_begin;
    up_settings.on_header_field = up_header_field;
    up_settings.on_header_field_complete = up_header_field_complete;
    up_settings.on_header_value = up_header_value;
    up_settings.on_header_value_complete = up_header_value_complete;
    up_settings.on_headers_complete = up_headers_complete;
    up_settings.on_message_complete = up_message_complete;
    llhttp_settings_init(&rv_settings);
    rv_settings.on_headers_complete = rv_headers_complete;
    rv_settings.on_body = rv_body;
    rv_settings.on_message_complete = rv_message_complete;

    H.dump = getenv(dump_env) != NULL;
    if (H.dump)
        rp_log_level = RP_LOG_DEBUG;
    H.sink = malloc(SINK_MAX);
    if (H.sink == NULL)
        abort();
}

/* ---- one input ---- */

void
harness_begin(bool config_b, bool stall, bool silent, bool small_high,
              const uint8_t *script, size_t script_len)
{
    H.ft = NULL;
    H.tr_frees = 0;
    H.freed_reset = H.freed_by_proxy = H.freed_pending = false;
    H.in_cleanup = H.client_gone = H.eof_due = H.eof_sent = H.reset_due = false;
    H.stall = stall;
    H.silent = silent;
    H.read_high = small_high ? SMALL_HIGH : RP_RBUF_HIGH;
    H.sink_len = 0;
    H.sink_over = false;
    B.script = script;
    B.script_len = script_len;
    B.script_pos = 0;
    B.nfwd = 0;
    B.nrec = 0;
    B.rec_over = false;
    B.snap = H.snaps[config_b ? 1 : 0];
    H.w.snap = B.snap;
    B.refs = atomic_load(&B.snap->refs);
    B.active = atomic_load(&rp_active_conns);
}

void
harness_accept(bool secure, rp_peer_t *peer)
{
    H.ft = fake_new(secure);
    *peer = (rp_peer_t){ .text = "192.0.2.7:40000", .ip = "192.0.2.7" };
    atomic_fetch_add(&rp_active_conns, 1);
    H.w.nconns++;
    rp_metrics_conn_opened(H.w.id, 0);
}

void
harness_dump(void)
{
    fprintf(stderr, "%s: script at %zu of %zu\n", H.name, B.script_pos, B.script_len);
    for (backend_conn_t *b = LIST_FIRST(&B.backends); b != NULL; b = LIST_NEXT(b, link))
        fprintf(stderr, "%s: backend connection in state %d, %zu of %zu sent\n",
                H.name, (int)b->state, b->off, b->len);
}

void
harness_end(void)
{
    /* Whatever is left is freed as a stopping worker frees it. */
    H.in_cleanup = true;
    rp_h2_t *h;
    while ((h = TAILQ_FIRST(&H.w.h2s)) != NULL)
        rp_h2_stop(h);
    rp_conn_t *c;
    while ((c = TAILQ_FIRST(&H.w.conns)) != NULL)
        rp_conn_free(c);
    rp_pools_free(&H.w);
    refuse_backlog(B.lst);
    backends_close_all();
    /* Let libevent finish freeing what was closed. */
    event_base_loop(H.base, EVLOOP_NONBLOCK);
    event_base_loop(H.base, EVLOOP_NONBLOCK);
    backends_close_all();
    refuse_backlog(B.lst);
    rp_txn_cache_free();
    rp_h2_cache_free();
    H.in_cleanup = false;

    if (H.tr_frees != 1 || H.ft != NULL)
        violation("the client transport was not freed exactly once");
    if (!TAILQ_EMPTY(&H.w.conns) || !TAILQ_EMPTY(&H.w.h2s) || H.w.nconns != 0
        || atomic_load(&rp_active_conns) != B.active)
        violation("a connection is still counted");
    if (atomic_load(&B.snap->refs) != B.refs)
        violation("a transaction or a session still holds the snapshot");
}
