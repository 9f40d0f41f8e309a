/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the HTTP/1 client connection (src/conn.c: parser glue,
 * limits, pipelining, error responses, keep-alive, the HTTP/1 downstream)
 * and the transaction behind it (src/proxy.c), end to end.  A client's
 * bytes go in through an in-memory transport; what the client gets back is
 * kept and held to rules every correct answer follows.  The backend is a
 * real listening socket on 127.0.0.1, served on the worker's own event base
 * with bytes taken from the input.  Time never passes on its own: the loop
 * runs without blocking until nothing moves, and timers fire only when the
 * input asks for them.
 *
 * Input:
 *   byte 0, client options:
 *     bits 0-2  the client bytes arrive in slices of: all, 1, 2, 3, 7, 16,
 *               61 or 256 bytes (never more than 256 slices)
 *     bit 3     the transport stops reading at 64 buffered bytes (else at
 *               RP_RBUF_HIGH, as TCP does)
 *     bit 4     slow client: output stays queued until the client takes
 *               it, once per step (then the write callback runs)
 *     bit 5     the client neither closes nor resets at the end
 *     bit 6     the client resets the connection at the end (else it
 *               half-closes: end of input)
 *     bit 7     configuration B (no pooling, no body limit, roomier head
 *               limits, no request deadline, routes only /a and host
 *               b.example) instead of A (small limits, pooling, route /)
 *   byte 1, what happens at the end:
 *     bit 0     fire the connection's timer (header, idle or linger), if armed
 *     bit 1     fire the transaction's connect or response timer, if armed
 *     bit 2     fire the request deadline, if armed
 *     bit 3     client read timeout, if one is set and reading is on
 *     bit 4     client write timeout, if output is waiting (slow client)
 *     bit 5     once the script is used up, the backend stays silent
 *               (else it closes connections that send it anything)
 *     bit 6     the client connection counts as TLS
 *     bit 7     the client closes (or resets) only once the exchange has
 *               settled (else right after its last bytes)
 *   bytes 2-3: n, little-endian; the next n bytes (fewer if the input ends
 *     first) are what the client sends.
 *   The rest is the backend script: replies, each
 *     1 byte    control: bits 0-1 what follows the reply: 0 the connection
 *               stays open, 1 close, 2 reset, 3 half-close; bits 2-3 slice
 *               size: all, 1, 5, 64 bytes per loop iteration (never more
 *               than 256 slices); bit 4 answer only at the second read
 *     2 bytes   length, little-endian (cut to what is left)
 *     bytes     the reply
 *   A backend connection that receives bytes while it is not answering
 *   takes the next reply of the script, whichever connection it is.
 *
 * Checks (abort() on failure), beyond ASan, UBSan and LeakSanitizer:
 *   - what the client got is a sequence of HTTP/1.1 responses: each starts
 *     with "HTTP/1.1 NNN " right where the previous one ended, and the
 *     whole parses with llhttp in response mode (told which requests were
 *     HEAD);
 *   - no more final responses than requests (counted by parsing the client
 *     bytes the way the connection does, plus one for a request that could
 *     not even begin), each final response with exactly one X-Request-Id,
 *     and none chunked nor interim in answer to an HTTP/1.0 request;
 *   - nothing follows a final response that does not keep the connection;
 *   - nothing is queued for the client once the transport is shut down,
 *     and it is not shut down with output still queued;
 *   - when the proxy closes the connection cleanly on its own (no reset,
 *     nothing left queued, the client did not reset it), the client got
 *     whole responses only: a response cut short must end with a reset;
 *   - what each backend connection receives is a sequence of well-formed
 *     HTTP/1.1 requests, parsed with llhttp in request mode: each request
 *     line is METHOD SP target SP HTTP/1.1 with an origin-form target (or
 *     "*" for OPTIONS), every head line ends in CRLF and none is folded,
 *     exactly one Host (not empty) and one X-Request-Id, at most one
 *     Content-Length, never both Content-Length and Transfer-Encoding, and
 *     a Transfer-Encoding only as "chunked" exactly.  The last request on
 *     a connection may be cut short (the proxy closes or resets a
 *     connection in the middle of a request body it gives up); a
 *     malformed one never passes;
 *   - the proxy's own error answers that it only gives before forwarding
 *     (bad_request, bad_path, uri_too_long, unsupported_transfer_coding,
 *     unsupported_version, method_not_allowed, expectation_failed,
 *     header_timeout, no_route: told by the body "NNN Reason\nerror:
 *     WORD\nrequest_id: ID\n") carry the id of no request a backend
 *     received;
 *   - a final response the client got whole that is not the proxy's own
 *     answer has the status and, de-chunked, the body bytes of the backend
 *     reply taken for its request.  Which reply that is: the one a backend
 *     connection took while the latest request it had received (whose
 *     head was complete) carried the response's X-Request-Id.  Covered
 *     only when that is unambiguous: exactly one reply was taken for that
 *     id (not, say, a second one for more body bytes, nor one on each
 *     connection of a replay); the reply is well-formed read as the proxy
 *     reads it (any 1xx, then one final response that ends by its framing
 *     or by the close; told whether the request was HEAD); every earlier
 *     reply on the same connection (pooled) was one whole response ending
 *     exactly where the reply ends, the only one for its request; and the
 *     client bytes name no X-Request-Id (the proxy adopts a client's id,
 *     so ids might repeat).  An answer to HEAD whose status differs is
 *     passed over (an error answer to HEAD has no body to tell it by);
 *   - the loop settles: it does not keep running while no backend has
 *     anything left to send;
 *   - at the end, once the fuzzer has freed whatever connection remains
 *     and the pools: the transport was freed exactly once, no connection
 *     is counted any more, and the snapshot's references are back to what
 *     they were (every transaction was released).
 *
 * Logs: only errors are formatted and access lines are off, but the lines
 * of the proxy's own answers still reach stderr (run.sh closes the
 * target's stderr).  With FUZZ_H1_DUMP set in the environment, debug lines,
 * the state left at the end, what the client got, how each final response
 * was checked and what a backend connection held when its bytes broke a
 * rule are printed, to read a failing input.
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

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SINK_MAX     (1u << 20)   /* client output kept for the checks */
#define MAX_REQS     4096         /* requests whose method and version are kept */
#define PUMP_MAX     1024         /* loop iterations per step, at most */
#define PUMP_QUIET   4            /* iterations without progress: settled */
#define SMALL_HIGH   64           /* read watermark of option bit 3 */
#define MAX_SLICES   256          /* a slice size is raised to stay within this */
#define RID_MAX      64           /* longest X-Request-Id (as the proxy takes them) */
#define MAX_FWD      1024         /* request ids kept as the backends receive them */
#define MAX_REPLIES  1400         /* replies kept with the request they answer */
#define BODY_MAX     16384        /* bytes of one client response body kept */

/* A rule broken: say which through the sanitizers' report, which still
 * reaches the fuzzer's log when the target's stderr is closed. */
static void
violation(const char *what)
{
    char line[256];
    snprintf(line, sizeof line, "fuzz_h1: %s", what);
    __sanitizer_report_error_summary(line);
    abort();
}

/* ---- the fake transport ---- */

typedef struct fake_tr {
    rp_transport_t tr;
    bool     reading;        /* rp_tr_read(tr, true) in force */
    bool     write_pending;  /* output left over by a flush (slow client) */
    bool     shut;
    size_t   lowat;
    unsigned read_timeout_ms, write_timeout_ms;
} fake_tr_t;

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

/* ---- everything the target keeps ---- */

typedef struct req_info {
    bool head;    /* the method is HEAD */
    bool v10;     /* HTTP/1.0 */
} req_info_t;

static struct {
    struct event_base     *base;
    rp_worker_t            w;
    rp_snapshot_t         *snaps[2];
    struct evconnlistener *lst;
    LIST_HEAD(, backend_conn) backends;
    char                  *sink;
    /* per input */
    fake_tr_t     *ft;            /* the client transport while it lives */
    unsigned       tr_frees;
    bool           freed_reset, freed_by_proxy, freed_pending;
    bool           in_cleanup, client_gone, eof_due, eof_sent, reset_due;
    bool           stall, silent;
    size_t         read_high;
    unsigned long  progress;      /* bumped by anything that moves */
    size_t         sink_len;
    bool           sink_over;
    const uint8_t *script;
    size_t         script_len, script_pos;
    /* the requests, as the client bytes parse */
    req_info_t     req[MAX_REQS];
    size_t         begun;
    bool           own_ids;       /* no X-Request-Id in the client bytes: ids are unique */
    /* what the backends received and answered */
    unsigned       be_serial;
    char           fwd[MAX_FWD][RID_MAX + 1];   /* ids of the requests forwarded */
    size_t         nfwd;
    reply_rec_t    rec[MAX_REPLIES];
    size_t         nrec;
    bool           rec_over;      /* more replies than kept: no body checks */
    bool           dump;          /* FUZZ_H1_DUMP set: debug lines, end state, output */
} F;

/* ---- transport ops ---- */

static void
sink_take(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    if (n == 0)
        return;
    F.progress++;
    if (F.sink_over || F.sink_len + n > SINK_MAX) {
        F.sink_over = true;
        evbuffer_drain(out, n);
        return;
    }
    if (evbuffer_remove(out, F.sink + F.sink_len, n) != (int)n)
        violation("evbuffer_remove came short");
    F.sink_len += n;
}

static void
ft_read(rp_transport_t *tr, bool on)
{
    FT(tr)->reading = on;
    F.progress++;
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
    F.progress++;
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
    if (F.stall) {
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
    F.progress++;
}

static void
ft_free(rp_transport_t *tr, bool reset)
{
    fake_tr_t *ft = FT(tr);
    if (ft != F.ft)
        violation("a transport freed twice");
    F.tr_frees++;
    F.freed_reset = reset;
    F.freed_by_proxy = !F.in_cleanup;
    F.freed_pending = evbuffer_get_length(tr->out) > 0;
    evbuffer_free(tr->in);
    evbuffer_free(tr->out);
    free(ft);
    F.ft = NULL;
    F.progress++;
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
    fake_tr_t *ft = F.ft;
    if (ft == NULL || !ft->reading || F.eof_sent)
        return 0;
    size_t have = evbuffer_get_length(ft->tr.in);
    if (have >= F.read_high)
        return 0;
    if (n > F.read_high - have)
        n = F.read_high - have;
    evbuffer_add(ft->tr.in, p, n);
    F.progress++;
    ft->tr.read_cb(ft->tr.arg);   /* may free the transport */
    return n;
}

static void
client_event(short what)
{
    fake_tr_t *ft = F.ft;
    if (ft == NULL)
        return;
    if (what & BEV_EVENT_READING)
        ft->reading = false;   /* after EOF, an error or a timeout, reading is off */
    F.progress++;
    ft->tr.event_cb(what, ft->tr.arg);
}

/* The slow client reads what waits for it: the write callback follows. */
static void
client_take(void)
{
    fake_tr_t *ft = F.ft;
    if (ft == NULL || !ft->write_pending)
        return;
    ft->write_pending = false;
    sink_take(ft->tr.out);
    ft->tr.write_cb(ft->tr.arg);
}

/* The end of input, or the reset, is seen once reading can see it. */
static void
client_end_try(void)
{
    fake_tr_t *ft = F.ft;
    if (ft == NULL)
        return;
    if (F.eof_due && !F.eof_sent && ft->reading
        && evbuffer_get_length(ft->tr.in) < F.read_high) {
        F.eof_sent = true;
        client_event(BEV_EVENT_READING | BEV_EVENT_EOF);
        return;
    }
    if (F.reset_due && !F.client_gone) {
        short what = 0;
        if (ft->reading)
            what = BEV_EVENT_READING | BEV_EVENT_ERROR;
        else if (ft->write_pending)
            what = BEV_EVENT_WRITING | BEV_EVENT_ERROR;
        if (what != 0) {
            F.client_gone = true;
            client_event(what);
        }
    }
}

/* ---- what the backends receive, parsed as requests ---- */

static llhttp_settings_t up_settings;

static void
up_violation(const backend_conn_t *b, const char *what)
{
    if (F.dump) {
        fprintf(stderr, "fuzz_h1: backend connection %u holds:\n", b->serial);
        fwrite(b->in, 1, b->in_len, stderr);
        fputs("\nfuzz_h1: end of what it holds\n", stderr);
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
 * OPTIONS) SP HTTP/1.1, every line ends in CRLF and none is folded, and
 * the framing is one the backend reads the way the proxy meant it. */
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
    if (F.nfwd < MAX_FWD)
        memcpy(F.fwd[F.nfwd++], b->id, sizeof b->id);
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

/* ---- the backend ---- */

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
    F.progress++;
}

/* The next reply of the script, or false when it is used up. */
static bool
script_next(backend_conn_t *b)
{
    static const size_t slices[4] = { 0, 1, 5, 64 };
    if (F.script_pos >= F.script_len)
        return false;
    const uint8_t *s = F.script + F.script_pos;
    size_t left = F.script_len - F.script_pos;
    uint8_t ctl = s[0];
    size_t hdr = left >= 3 ? 3 : left;
    size_t len = left >= 3 ? ((size_t)s[1] | (size_t)s[2] << 8) : 0;
    if (len > left - hdr)
        len = left - hdr;
    F.script_pos += hdr + len;
    b->reply = s + hdr;
    b->len = len;
    b->off = 0;
    b->end = ctl & 3;
    b->slice = slices[(ctl >> 2) & 3];
    if (b->slice == 0 || b->slice > len)
        b->slice = len;
    if (len > 0 && (len + b->slice - 1) / b->slice > MAX_SLICES)
        b->slice = (len + MAX_SLICES - 1) / MAX_SLICES;
    b->state = (ctl & 16) ? BE_WAITING : BE_SENDING;
    if (F.nrec < MAX_REPLIES) {
        reply_rec_t *r = &F.rec[F.nrec++];
        r->data = b->reply;
        r->len = len;
        r->serial = b->serial;
        r->known = b->head_done;
        r->head = b->method == HTTP_HEAD;
        r->dup = false;
        r->exact = 0;
        memcpy(r->id, b->id, sizeof r->id);
    } else {
        F.rec_over = true;
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
    F.progress++;
    if (b->state == BE_WAITING) {
        b->state = BE_SENDING;
        return;
    }
    if (b->state != BE_IDLE)
        return;
    if (script_next(b))
        return;
    if (F.silent)
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
    struct bufferevent *bev = bufferevent_socket_new(F.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    backend_conn_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    b->bev = bev;
    b->serial = ++F.be_serial;
    llhttp_init(&b->rq, HTTP_REQUEST, &up_settings);
    b->rq.data = b;
    LIST_INSERT_HEAD(&F.backends, b, link);
    bufferevent_setcb(bev, be_read, be_write, be_event, b);
    bufferevent_enable(bev, EV_READ);
    F.progress++;
}

/* One slice for every backend connection whose last slice was written.
 * Returns whether any backend still has something to send. */
static bool
backends_tick(void)
{
    bool busy = false;
    backend_conn_t *b, *next;
    for (b = LIST_FIRST(&F.backends); b != NULL; b = next) {
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
        F.progress++;
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
    while ((b = LIST_FIRST(&F.backends)) != NULL)
        be_close(b, true);
}

/* Connections the proxy opened and gave up before they were accepted. */
static void
drain_backlog(void)
{
    int lfd = evconnlistener_get_fd(F.lst);
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

static void
pump(void)
{
    unsigned quiet = 0;
    bool busy = false;
    for (unsigned i = 0; i < PUMP_MAX && quiet < PUMP_QUIET; i++) {
        unsigned long before = F.progress;
        event_base_loop(F.base, EVLOOP_NONBLOCK);
        busy = backends_tick();
        quiet = F.progress == before ? quiet + 1 : 0;
    }
    if (quiet < PUMP_QUIET && !busy)
        violation("the event loop keeps running with no backend sending");
}

static rp_conn_t *
the_conn(void)
{
    return TAILQ_FIRST(&F.w.conns);
}

/* Time passes for one armed timer only. */
static void
fire(struct event *ev)
{
    if (ev == NULL || !event_pending(ev, EV_TIMEOUT, NULL))
        return;
    event_active(ev, EV_TIMEOUT, 1);
    F.progress++;
    pump();
}

static void
settle(void)
{
    pump();
    client_take();
    client_end_try();
    pump();
}

/* ---- the requests the client sent, as the connection parses them ---- */

static int
rq_message_begin(llhttp_t *p)
{
    (void)p;
    if (F.begun < MAX_REQS)
        F.req[F.begun] = (req_info_t){ 0 };
    F.begun++;
    return 0;
}

static int
rq_method_complete(llhttp_t *p)
{
    if (F.begun > 0 && F.begun <= MAX_REQS)
        F.req[F.begun - 1].head = p->method == HTTP_HEAD;
    return 0;
}

static int
rq_version_complete(llhttp_t *p)
{
    if (F.begun > 0 && F.begun <= MAX_REQS)
        F.req[F.begun - 1].v10 = p->http_major == 1 && p->http_minor == 0;
    return 0;
}

static int
rq_pause(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;   /* the connection pauses there too */
}

static llhttp_settings_t rq_settings;

/* Whether the client bytes name X-Request-Id anywhere: the proxy adopts
 * a valid one, so ids need not tell requests apart then. */
static bool
has_request_id(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 12 <= n; i++)
        if ((p[i] | 0x20) == 'x' && strncasecmp((const char *)p + i, "x-request-id", 12) == 0)
            return true;
    return false;
}

/* Returns how many final responses the client bytes allow at most. */
static size_t
record_requests(const uint8_t *p, size_t n)
{
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &rq_settings);
    F.begun = 0;
    const char *data = (const char *)p, *end = data + n;
    for (size_t guard = 0; data < end && guard <= n + 16; guard++) {
        llhttp_errno_t err = llhttp_execute(&parser, data, (size_t)(end - data));
        if (err == HPE_PAUSED) {
            data = llhttp_get_error_pos(&parser);
            llhttp_resume(&parser);
        } else if (err == HPE_PAUSED_UPGRADE) {
            data = llhttp_get_error_pos(&parser);
            llhttp_resume_after_upgrade(&parser);
        } else {
            break;
        }
    }
    /* A request that fails before it begins is answered too (400). */
    return F.begun + 1;
}

/* ---- what the client got ---- */

static struct {
    size_t   bound;      /* most final responses allowed */
    size_t   finals;     /* final responses so far */
    unsigned xrid;       /* X-Request-Id fields in the current head */
    char     name[16];
    size_t   name_len;
    bool     must_end;   /* a final response that does not keep the connection */
    /* the current response */
    int      status;
    bool     head;       /* the answer to a HEAD request */
    bool     in_xrid;    /* the value parsed is an X-Request-Id */
    char     id[RID_MAX + 1];
    size_t   id_len;
    size_t   body_len;   /* de-chunked, in body_buf */
} C;

static char body_buf[BODY_MAX];

static int
rs_message_begin(llhttp_t *p)
{
    (void)p;
    C.xrid = 0;
    C.name_len = 0;
    C.status = 0;
    C.head = false;
    C.in_xrid = false;
    C.id_len = 0;
    C.body_len = 0;
    return 0;
}

static int
rs_header_field(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    for (size_t i = 0; i < len; i++, C.name_len++)
        if (C.name_len < sizeof C.name)
            C.name[C.name_len] = at[i];
    return 0;
}

static int
rs_header_field_complete(llhttp_t *p)
{
    (void)p;
    C.in_xrid = C.name_len == 12 && strncasecmp(C.name, "x-request-id", 12) == 0;
    if (C.in_xrid) {
        C.xrid++;
        C.id_len = 0;
    }
    C.name_len = 0;
    return 0;
}

static int
rs_header_value(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    if (!C.in_xrid)
        return 0;
    for (size_t i = 0; i < len; i++, C.id_len++)
        if (C.id_len < RID_MAX)
            C.id[C.id_len] = at[i];
    return 0;
}

static int
rs_header_value_complete(llhttp_t *p)
{
    (void)p;
    C.in_xrid = false;
    return 0;
}

static int
rs_body(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    /* Past BODY_MAX only the length counts (no body compared then). */
    if (C.body_len < BODY_MAX)
        memcpy(body_buf + C.body_len, at,
               len < BODY_MAX - C.body_len ? len : BODY_MAX - C.body_len);
    C.body_len += len;
    return 0;
}

static int
rs_headers_complete(llhttp_t *p)
{
    if (p->http_major != 1 || p->http_minor != 1)
        violation("a response that is not HTTP/1.1");
    size_t k = C.finals;
    C.status = p->status_code;
    C.head = k < MAX_REQS && k < F.begun && F.req[k].head;
    if (p->status_code < 200) {
        /* Interim: never to an HTTP/1.0 client, which knows no 1xx. */
        if (k < MAX_REQS && k < F.begun && F.req[k].v10)
            violation("an interim response to an HTTP/1.0 request");
        return 1;   /* a 1xx ends with its head */
    }
    if (k >= C.bound)
        violation("more final responses than requests");
    if (C.xrid != 1)
        violation("a final response without exactly one X-Request-Id");
    if (k < MAX_REQS && k < F.begun) {
        if (F.req[k].v10 && (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)))
            violation("a response with Transfer-Encoding to an HTTP/1.0 request");
        if (F.req[k].head)
            return 1;   /* no body follows */
    }
    /* Whatever Content-Length says (RFC 9110 6.4.1); llhttp leaves that to
     * its caller. */
    if (p->status_code == 204 || p->status_code == 304)
        return 1;
    return 0;
}

/* ---- a final response the client received whole, held to the backend ---- */

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
 * request_id: ID\n" (see h1_send_error).  Returns the word, or NULL when
 * the current response is not one (or, answering HEAD, has no body to
 * tell). */
static const char *
proxy_answer_word(char *word, size_t cap)
{
    const char *b = body_buf, *end = body_buf + C.body_len;
    char num[8];
    int nl = snprintf(num, sizeof num, "%d ", C.status);
    if (C.body_len > BODY_MAX || C.body_len < (size_t)nl || memcmp(b, num, (size_t)nl) != 0)
        return NULL;
    const char *e = memchr(b, '\n', C.body_len);
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
    if ((size_t)(end - i) != sizeof rid - 1 + C.id_len + 1 || memcmp(i, rid, sizeof rid - 1) != 0
        || memcmp(i + sizeof rid - 1, C.id, C.id_len) != 0 || end[-1] != '\n')
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

static bool
forwarded(const char *id)
{
    for (size_t i = 0; i < F.nfwd; i++)
        if (strcmp(F.fwd[i], id) == 0)
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
    for (size_t i = 0; i < F.nrec && found == NULL; i++)
        if (F.rec[i].known && strcmp(F.rec[i].id, id) == 0)
            found = &F.rec[i];
    if (found == NULL || found->dup)
        return NULL;
    for (reply_rec_t *r = F.rec; r < found; r++) {
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

/* Marks the replies taken for an id some other reply was taken for too. */
static void
mark_dups(void)
{
    for (size_t i = 0; i < F.nrec; i++) {
        reply_rec_t *r = &F.rec[i];
        if (!r->known || r->dup)
            continue;
        for (size_t j = i + 1; j < F.nrec; j++)
            if (F.rec[j].known && strcmp(F.rec[j].id, r->id) == 0)
                r->dup = F.rec[j].dup = true;
    }
}

/* A final response the client got whole.  The proxy's own error answers
 * of a request it never forwards must not have been forwarded; anything
 * else answers the one reply taken for its request: same status, same
 * body once de-chunked. */
static void
check_final(void)
{
    if (!F.own_ids || C.id_len == 0 || C.id_len > RID_MAX)
        return;
    C.id[C.id_len] = '\0';
    char word[40];
    if (proxy_answer_word(word, sizeof word) != NULL) {
        if (before_forwarding(word) && forwarded(C.id)) {
            char what[160];
            snprintf(what, sizeof what, "a request forwarded that the proxy answered %d (%s)",
                     C.status, word);
            violation(what);
        }
        if (F.dump)
            fprintf(stderr, "fuzz_h1: response %d %s: the proxy's own (%s)\n",
                    C.status, C.id, word);
        return;
    }
    if (F.rec_over)
        return;
    const reply_rec_t *r = reply_for(C.id);
    bool exact;
    if (r == NULL || !reply_read(r, &exact))
        return;
    if (C.status != R.status) {
        if (C.head)
            return;   /* an error answer to HEAD has no body to know it by */
        char what[160];
        snprintf(what, sizeof what, "the client got status %d, the backend sent %d",
                 C.status, R.status);
        violation(what);
    }
    if (C.body_len > BODY_MAX || R.body_len > BODY_MAX)
        return;
    if (C.body_len != R.body_len || memcmp(body_buf, R.body, C.body_len) != 0) {
        char what[160];
        snprintf(what, sizeof what,
                 "the client got a body of %zu bytes other than the %zu bytes the backend sent",
                 C.body_len, R.body_len);
        violation(what);
    }
    if (F.dump)
        fprintf(stderr, "fuzz_h1: response %d %s: status and %zu body bytes as the backend sent\n",
                C.status, C.id, C.body_len);
}

static int
rs_message_complete(llhttp_t *p)
{
    if (p->status_code >= 200) {
        C.finals++;
        if (!llhttp_should_keep_alive(p))
            C.must_end = true;
        check_final();
    }
    return HPE_PAUSED;   /* to know where the next response starts */
}

static llhttp_settings_t rs_settings;

static void
check_status_line(const char *p, size_t rem)
{
    static const char want[] = "HTTP/1.1 ";
    size_t n = rem < 9 ? rem : 9;
    if (memcmp(p, want, n) != 0)
        violation("a response that does not start with \"HTTP/1.1 \"");
    if (rem >= 13) {
        for (size_t i = 9; i < 12; i++)
            if (p[i] < '0' || p[i] > '9')
                violation("a status that is not three digits");
        if (p[12] != ' ')
            violation("no space after the status code");
    }
}

static void
check_output(size_t bound, bool whole)
{
    memset(&C, 0, sizeof C);
    C.bound = bound;
    if (F.own_ids && !F.rec_over)
        mark_dups();
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &rs_settings);
    const char *data = F.sink, *end = F.sink + F.sink_len;
    while (data < end) {
        if (C.must_end)
            violation("bytes after a response that closes the connection");
        check_status_line(data, (size_t)(end - data));
        llhttp_errno_t err = llhttp_execute(&parser, data, (size_t)(end - data));
        if (err == HPE_PAUSED) {
            const char *next = llhttp_get_error_pos(&parser);
            if (next <= data)
                violation("a response of no bytes");
            data = next;
            llhttp_resume(&parser);
            if (data == end)
                (void)llhttp_execute(&parser, data, 0);   /* to the next message's start */
            continue;
        }
        if (err != HPE_OK) {
            char what[160];
            snprintf(what, sizeof what,
                     "client output that does not parse as HTTP/1.1 responses (%s at byte %zu)",
                     llhttp_errno_name(err), (size_t)(llhttp_get_error_pos(&parser) - F.sink));
            violation(what);
        }
        break;   /* all taken: the last response may be unfinished */
    }
    if (whole) {
        /* A body delimited by the close ends here; anything else must have
         * been complete. */
        llhttp_errno_t err = llhttp_finish(&parser);
        if (err != HPE_OK && err != HPE_PAUSED)
            violation("a clean close in the middle of a response");
    }
}

/* ---- set-up ---- */

static rp_snapshot_t *
snapshot(const char *fmt, unsigned port)
{
    char text[2048];
    snprintf(text, sizeof text, fmt, port);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "fuzz_h1: config: %s\n", jerr.text);
        abort();
    }
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    if (rp_snapshot_build(root, &s, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "fuzz_h1: config: %s\n", errs.msgs[i]);
        abort();
    }
    rp_errs_free(&errs);
    json_decref(root);
    return s;
}

static const char config_a[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": {\"max_connections\": 64, \"max_header_bytes\": 1024, \"max_headers\": 8,"
    "   \"max_uri_bytes\": 64, \"max_body_bytes\": 64},"
    " \"timeouts\": {\"client_header_ms\": 50000, \"client_idle_ms\": 51000, \"request_ms\": 52000,"
    "   \"upstream_connect_ms\": 53000, \"upstream_response_ms\": 54000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 2, \"idle_timeout_ms\": 55000}}},"
    " \"routes\": [{\"path_prefix\": \"/\", \"upstream\": \"app\"}],"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

static const char config_b[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": {\"max_connections\": 64, \"max_header_bytes\": 4096, \"max_headers\": 32,"
    "   \"max_uri_bytes\": 1024, \"max_body_bytes\": 0},"
    " \"timeouts\": {\"client_header_ms\": 56000, \"client_idle_ms\": 57000, \"request_ms\": 0,"
    "   \"upstream_connect_ms\": 58000, \"upstream_response_ms\": 59000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 0}}},"
    " \"routes\": [{\"path_prefix\": \"/a\", \"upstream\": \"app\"},"
    "   {\"host\": \"b.example\", \"upstream\": \"app\"}],"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
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
    F.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (F.base == NULL)
        abort();
    LIST_INIT(&F.backends);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    F.lst = evconnlistener_new_bind(F.base, be_accept, NULL,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                                    64, (struct sockaddr *)&sin, sizeof sin);
    if (F.lst == NULL)
        abort();
    socklen_t slen = sizeof sin;
    if (getsockname(evconnlistener_get_fd(F.lst), (struct sockaddr *)&sin, &slen) != 0)
        abort();
    unsigned port = ntohs(sin.sin_port);

    F.w.id = 0;
    F.w.base = F.base;
    F.w.stop_pipe[0] = F.w.stop_pipe[1] = -1;
    TAILQ_INIT(&F.w.conns);
    TAILQ_INIT(&F.w.handshakes);
    TAILQ_INIT(&F.w.h2s);
    F.snaps[0] = snapshot(config_a, port);
    F.snaps[1] = snapshot(config_b, port);
    for (int i = 0; i < 2; i++) {
        F.w.snap = F.snaps[i];
        if (rp_modules_start(&F.w, F.snaps[i]) != 0)
            abort();
    }

    llhttp_settings_init(&rq_settings);
    rq_settings.on_message_begin = rq_message_begin;
    rq_settings.on_method_complete = rq_method_complete;
    rq_settings.on_version_complete = rq_version_complete;
    rq_settings.on_headers_complete = rq_pause;
    rq_settings.on_message_complete = rq_pause;
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
    llhttp_settings_init(&rs_settings);
    rs_settings.on_message_begin = rs_message_begin;
    rs_settings.on_header_field = rs_header_field;
    rs_settings.on_header_field_complete = rs_header_field_complete;
    rs_settings.on_header_value = rs_header_value;
    rs_settings.on_header_value_complete = rs_header_value_complete;
    rs_settings.on_body = rs_body;
    rs_settings.on_headers_complete = rs_headers_complete;
    rs_settings.on_message_complete = rs_message_complete;

    F.dump = getenv("FUZZ_H1_DUMP") != NULL;
    if (F.dump)
        rp_log_level = RP_LOG_DEBUG;
    F.sink = malloc(SINK_MAX);
    if (F.sink == NULL)
        abort();
    return 0;
}

/* ---- one input ---- */

static void
finish_client(bool reset)
{
    if (reset)
        F.reset_due = true;
    else
        F.eof_due = true;
    client_end_try();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t slices[8] = { 0, 1, 2, 3, 7, 16, 61, 256 };
    if (size < 4)
        return 0;
    uint8_t o0 = data[0], o1 = data[1];
    size_t clen = (size_t)data[2] | (size_t)data[3] << 8;
    const uint8_t *client = data + 4;
    if (clen > size - 4)
        clen = size - 4;
    /* A plain connection that starts with the HTTP/2 preface is handed to
     * h2.c: fuzz_h2's business. */
    if (clen >= RP_H2_PREFACE_LEN && (o1 & 64) == 0
        && memcmp(client, RP_H2_PREFACE, RP_H2_PREFACE_LEN) == 0)
        return 0;

    F.ft = NULL;
    F.tr_frees = 0;
    F.freed_reset = F.freed_by_proxy = F.freed_pending = false;
    F.in_cleanup = F.client_gone = F.eof_due = F.eof_sent = F.reset_due = false;
    F.stall = (o0 & 16) != 0;
    F.silent = (o1 & 32) != 0;
    F.read_high = (o0 & 8) ? SMALL_HIGH : RP_RBUF_HIGH;
    F.sink_len = 0;
    F.sink_over = false;
    F.script = client + clen;
    F.script_len = size - 4 - clen;
    F.script_pos = 0;
    F.nfwd = 0;
    F.nrec = 0;
    F.rec_over = false;
    F.own_ids = !has_request_id(client, clen);
    size_t bound = record_requests(client, clen);

    rp_snapshot_t *snap = F.snaps[o0 >> 7];
    F.w.snap = snap;
    unsigned refs = atomic_load(&snap->refs);
    unsigned active = atomic_load(&rp_active_conns);

    /* Accepted, counted as the worker counts it. */
    F.ft = fake_new((o1 & 64) != 0);
    rp_peer_t peer = { .text = "192.0.2.7:40000", .ip = "192.0.2.7" };
    atomic_fetch_add(&rp_active_conns, 1);
    F.w.nconns++;
    rp_metrics_conn_opened(F.w.id);
    if (rp_conn_new_transport(&F.w, &F.ft->tr, &peer) < 0)
        rp_worker_conn_closed(&F.w);
    pump();

    /* The client's bytes, slice by slice. */
    bool ends = (o0 & 32) == 0, reset = (o0 & 64) != 0, late = (o1 & 128) != 0;
    bool ended = false;
    size_t slice = slices[o0 & 7];
    if (slice == 0 || slice > clen)
        slice = clen;
    if (clen > 0 && (clen + slice - 1) / slice > MAX_SLICES)
        slice = (clen + MAX_SLICES - 1) / MAX_SLICES;
    size_t off = 0;
    for (unsigned stuck = 0; off < clen && F.ft != NULL && stuck < 3;) {
        size_t n = clen - off < slice ? clen - off : slice;
        size_t got = client_send(client + off, n);
        off += got;
        stuck = got == 0 ? stuck + 1 : 0;
        if (off == clen && ends && !late) {
            finish_client(reset);
            ended = true;
        }
        pump();
        client_take();
        client_end_try();
    }
    if (ends && !ended && off == clen) {
        settle();
        finish_client(reset);
    }
    settle();

    /* Time passes, for what the input asks. */
    if ((o1 & 16) && F.ft != NULL && F.ft->write_pending && F.ft->write_timeout_ms > 0) {
        client_event(BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT);
        settle();
    }
    client_take();
    if ((o1 & 1) && the_conn() != NULL) {
        fire(the_conn()->timer);
        settle();
    }
    if ((o1 & 2) && the_conn() != NULL && the_conn()->txn != NULL) {
        fire(the_conn()->txn->timer);
        settle();
    }
    if ((o1 & 4) && the_conn() != NULL && the_conn()->txn != NULL) {
        fire(the_conn()->txn->deadline);
        settle();
    }
    if ((o1 & 8) && F.ft != NULL && F.ft->reading && F.ft->read_timeout_ms > 0) {
        client_event(BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
        settle();
    }
    client_take();

    if (F.dump) {
        rp_conn_t *c0 = the_conn();
        fprintf(stderr, "fuzz_h1: %zu of %zu client bytes taken; connection %s",
                off, clen, c0 == NULL ? "closed" : "open");
        if (c0 != NULL)
            fprintf(stderr, " in state %d, transaction %s", (int)c0->state,
                    c0->txn == NULL ? "none" : rp_txn_state_name(c0->txn->state));
        fprintf(stderr, "; script at %zu of %zu\n", F.script_pos, F.script_len);
        for (backend_conn_t *b = LIST_FIRST(&F.backends); b != NULL; b = LIST_NEXT(b, link))
            fprintf(stderr, "fuzz_h1: backend connection in state %d, %zu of %zu sent\n",
                    (int)b->state, b->off, b->len);
    }

    /* Whatever is left is freed as a stopping worker frees it. */
    F.in_cleanup = true;
    rp_conn_t *c;
    while ((c = the_conn()) != NULL)
        rp_conn_free(c);
    rp_pools_free(&F.w);
    drain_backlog();
    backends_close_all();
    /* Let libevent finish freeing what was closed. */
    event_base_loop(F.base, EVLOOP_NONBLOCK);
    event_base_loop(F.base, EVLOOP_NONBLOCK);
    backends_close_all();
    drain_backlog();
    rp_txn_cache_free();
    F.in_cleanup = false;

    if (F.tr_frees != 1 || F.ft != NULL)
        violation("the client transport was not freed exactly once");
    if (!TAILQ_EMPTY(&F.w.conns) || F.w.nconns != 0 || atomic_load(&rp_active_conns) != active)
        violation("a connection is still counted");
    if (atomic_load(&snap->refs) != refs)
        violation("a transaction still holds the snapshot");
    bool whole = F.freed_by_proxy && !F.freed_reset && !F.freed_pending && !F.client_gone
                 && !F.sink_over;
    if (F.dump) {
        fprintf(stderr, "fuzz_h1: %zu requests begun; transport freed by %s%s; client output:\n",
                F.begun, F.freed_by_proxy ? "the proxy" : "the fuzzer",
                F.freed_reset ? " (reset)" : "");
        fwrite(F.sink, 1, F.sink_len, stderr);
        fputs("\nfuzz_h1: end of client output\n", stderr);
    }
    check_output(bound, whole);
    return 0;
}
