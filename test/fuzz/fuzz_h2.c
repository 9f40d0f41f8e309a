/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: HTTP/2 client connections (src/h2.c: the nghttp2
 * server session glue, the streams and their transactions, flow control
 * tied to consumption, the abuse budget, the connection's timers) and the
 * transactions behind the streams (src/proxy.c), end to end.  A client's
 * bytes go in through an in-memory transport handed to rp_h2_new() as the
 * HTTP/1 connection hands one over after the preface; what the client
 * gets back is kept, walked frame by frame and held to rules every
 * correct HTTP/2 server follows.  The backend is a real listening socket
 * on 127.0.0.1, served on the worker's own event base with bytes taken
 * from the input (as in fuzz_h1.c).  Time never passes on its own: the
 * loop runs without blocking until nothing moves, and timers fire only
 * when the input asks for them.
 *
 * Input:
 *   byte 0, client options:
 *     bits 0-2  the client bytes arrive in slices of: all, 1, 2, 3, 7, 16,
 *               61 or 256 bytes (never more than 256 slices)
 *     bit 3     the transport stops reading at 64 buffered bytes (else at
 *               RP_RBUF_HIGH, as TCP does)
 *     bit 4     slow client: output stays queued until the client takes
 *               it, once per step (then the write callback runs)
 *     bit 5     the client neither closes nor resets at the end (the
 *               connection is then stopped as a stopping worker does)
 *     bit 6     the client resets the connection at the end (else it
 *               half-closes: end of input)
 *     bit 7     configuration B (no pooling, no body limit, roomier head
 *               limits, no request deadline, routes only /a and host
 *               b.example) instead of A (small limits, pooling, route /,
 *               at most 4 concurrent streams)
 *   byte 1, time and the end:
 *     bit 0     fire the connection's timer (preface and first request,
 *               or idle), if armed
 *     bit 1     fire the connection's sweep timer (zero-window stalls,
 *               heads that never end, silent bodies), twice, if armed
 *     bit 2     fire every other armed timer, one at a time (the
 *               transactions' connect, response and request deadlines)
 *     bit 3     client write timeout, if output is waiting (slow client)
 *     bit 4     once the script is used up, the backend stays silent
 *               (else it closes connections that send it anything)
 *     bit 5     the client connection counts as TLS
 *     bit 6     the timers fire before the client closes (else after)
 *               and the client closes only once the exchange settled
 *               (else right after its last bytes)
 *     bit 7     the first slice is already in the transport's input when
 *               rp_h2_new() takes it over (as after the HTTP/1 probe)
 *   byte 2, mode:
 *     bit 0     structured: the client bytes are a program (below) that
 *               an nghttp2 client session turns into frames; else raw:
 *               the client bytes are frames, sent after the connection
 *               preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" that the target
 *               puts in front of them
 *     bits 1-7  unused
 *   bytes 3-4: n, little-endian; the next n bytes (fewer if the input ends
 *     first) are the client bytes (raw) or the program (structured).
 *   The rest is the backend script, as in fuzz_h1.c: replies, each
 *     1 byte    control: bits 0-1 what follows the reply: 0 the connection
 *               stays open, 1 close, 2 reset, 3 half-close; bits 2-3 slice
 *               size: all, 1, 5, 64 bytes per loop iteration (never more
 *               than 256 slices); bit 4 answer only at the second read
 *     2 bytes   length, little-endian (cut to what is left)
 *     bytes     the reply
 *   A backend connection that receives bytes while it is not answering
 *   takes the next reply of the script, whichever connection it is.
 *
 * The program (structured mode): the client session sends its preface and
 * an empty SETTINGS, then for each operation what it submits; streams are
 * chosen by a selector byte among those opened so far (modulo).  Each
 * operation is a byte whose low 4 bits say what, the high 4 its flags F:
 *   0, 1, 15  request: 3 bytes a, b, c.  :method from a&7 (GET POST HEAD
 *             PUT OPTIONS DELETE CONNECT BREW), :path from (a>>3)&7, and
 *             :authority from a>>6; F bit 0: END_STREAM on the HEADERS;
 *             bit 1: content-length b&127; bit 2: a host field (the
 *             authority if b&128, else another); bit 3: no :authority.
 *             c bit 0: expect: 100-continue; bit 1: a big field (6000 to
 *             24000 bytes: CONTINUATION past 16384); bit 2: two cookie
 *             crumbs; bit 3: no :scheme (a CONNECT has no :path then
 *             either); bit 4: no x-request-id (else "fz-<stream id>");
 *             bit 5: te: trailers; bits 6-7: that many more fields
 *   13        GET / with END_STREAM, no operand
 *   2, 12     DATA: selector, length b (times 64 with F bit 1); F bit 0
 *             END_STREAM (a length 0 without it: an empty DATA frame)
 *   3         HEADERS on an open stream (trailers): selector; F bit 0:
 *             without END_STREAM (malformed)
 *   4, 14     RST_STREAM: selector, error code b % 14
 *   5         PING: 8 bytes of opaque data
 *   6         SETTINGS: count a & 3, then that many (id, value) byte
 *             pairs, turned into valid entries
 *   7         WINDOW_UPDATE: selector (a&128: the connection), increment
 *             (b + 1) * 256
 *   8         PRIORITY: selector, dependency selector (0: none), weight
 *             c | 1; F bit 0: exclusive
 *   9         GOAWAY: error code a % 14
 *   10        repeat the previous operation (a & 63) + 1 times (times 16
 *             with F bit 2)
 *   A program stops after 4096 operations (repeats included), when the
 *   client bytes reach 128 KiB, or when the client session holds more
 *   than 64 frames it cannot send (streams over its limit).
 *   11        raw bytes: length a & 63, then that many bytes, as they are
 *             (the client bytes are not a valid sequence any more)
 *
 * Checks (abort() on failure), beyond ASan, UBSan and LeakSanitizer:
 *   - what the client got is a sequence of whole frames, each no longer
 *     than SETTINGS_MAX_FRAME_SIZE (16384 unless a client SETTINGS raised
 *     it); the first is SETTINGS on stream 0; only DATA, HEADERS,
 *     RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE and CONTINUATION
 *     (no PUSH_PROMISE); no DATA, HEADERS, RST_STREAM or CONTINUATION on
 *     stream 0 and no SETTINGS, PING or GOAWAY elsewhere; no frame for an
 *     even stream, nor for a stream no HEADERS of the client opened;
 *     fixed-size frames of the right size; SETTINGS values valid (push
 *     only 0), no more SETTINGS ACKs than client SETTINGS nor PING ACKs
 *     than client PINGs, no PING that is not an ACK; GOAWAY never raises
 *     its last stream id, and no response begins on a stream above a
 *     GOAWAY's last stream id (nghttp2 may send a GOAWAY and go on, as
 *     its reset rate limit does, so frames may follow one);
 *   - header blocks are HEADERS then CONTINUATIONs of the same stream,
 *     uninterrupted, and decode with HPACK (nghttp2's inflater, in order);
 *     every response head starts with exactly one :status (3 digits, not
 *     101) and has no other pseudo-header, lowercase valid names, values
 *     that RFC 9113 allows, no connection-specific field; a final head
 *     has exactly one x-request-id and at most one (numeric)
 *     content-length; a 1xx never ends the stream; a second block after
 *     the final head is trailers: END_STREAM and no pseudo-header;
 *   - per stream: no DATA before the final HEADERS, nothing but
 *     RST_STREAM and WINDOW_UPDATE after END_STREAM, nothing at all after
 *     the server's RST_STREAM (another RST_STREAM aside: nghttp2 sends
 *     one for each stream error it finds while the first waits); every
 *     x-request-id of a response, and every X-Request-Id a backend
 *     receives, is a valid request id; the DATA of a stream ended with END_STREAM
 *     add up to its content-length (none for HEAD, 204, 304);
 *   - in structured mode without raw bytes, the client session that made
 *     the client bytes takes what came back with no error and no invalid
 *     frame or header field (nghttp2's own checks of a server);
 *   - what each backend connection receives is a sequence of well-formed
 *     HTTP/1.1 requests (the checks of fuzz_h1.c: METHOD SP origin-form
 *     SP HTTP/1.1, CRLF line ends, exactly one non-empty Host and one
 *     X-Request-Id, at most one Content-Length, never both it and
 *     Transfer-Encoding, Transfer-Encoding only "chunked"; the last
 *     request on a connection may be cut short);
 *   - when the request ids are known (the client's header blocks all
 *     decode, and the ids clients gave are distinct): no response carries
 *     the id another stream gave; the proxy's own answers it only gives
 *     before forwarding carry the id of no request a backend received;
 *     a final response the client got whole (END_STREAM, no reset) that
 *     is not the proxy's own answer has the status and body of the one
 *     backend reply taken for its request (when that is unambiguous, as
 *     in fuzz_h1.c);
 *   - no request reaches a backend for a stream whose head and whose
 *     RST_STREAM arrived in the same read (a stream opened and reset in
 *     one read never reaches a backend, says src/h2.c), unless the
 *     connection stopped reading at that read (a connection error: what
 *     follows it in the read is never parsed);
 *   - the loop settles: it does not keep running (nor keep events active)
 *     while no backend has anything left to send;
 *   - once the client closed or reset and the loop settled, no HTTP/2
 *     connection is left; at the end: the transport was freed exactly
 *     once, no connection is counted any more (w->h2s and w->conns
 *     empty), and the snapshot's references are back to what they were.
 *
 * With FUZZ_H2_DUMP set in the environment, debug lines, the frames each
 * side sent and the state left at the end are printed, to read a failing
 * input.  With FUZZ_H2_KNOWN set, findings already reported pass, so that
 * fuzzing goes on past them: a GOAWAY whose last stream id rises after
 * nghttp2's own GOAWAY of its reset rate limit, a request line with an
 * 8-bit byte in its target (an HTTP/2 :path forwarded as it is),
 * request ids that are not valid ids (a head h2.c rejected but started,
 * its last value never NUL-terminated), and response fields with an empty
 * name (a backend's header line that starts with ':', relayed).
 * run.sh closes the target's stderr (the proxy's error lines).
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
#include <nghttp2/nghttp2.h>
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

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SINK_MAX     (1u << 20)   /* client output kept for the checks */
#define CLIENT_MAX   (128u << 10) /* client bytes made from one input, at most */
#define PUMP_MAX     1024         /* loop iterations per step, at most */
#define PUMP_QUIET   4            /* iterations without progress: settled */
#define SMALL_HIGH   64           /* read watermark of option bit 3 */
#define MAX_SLICES   256          /* a slice size is raised to stay within this */
#define RID_MAX      64           /* longest X-Request-Id (as the proxy takes them) */
#define MAX_FWD      1024         /* request ids kept as the backends receive them */
#define MAX_REPLIES  1400         /* replies kept with the request they answer */
#define BODY_MAX     16384        /* bytes of one response body kept */
#define MAX_STREAMS  1024         /* streams followed */
#define MAX_TIMERS   64           /* armed timers looked at, at once */
#define DEFAULT_FRAME 16384u      /* SETTINGS_MAX_FRAME_SIZE's initial value */
#define GEN_OPS_MAX  4096         /* operations a program runs, repeats included */
#define GEN_QUEUED_MAX 64         /* frames the client session may hold unsent */

/* Frame types and flags (RFC 9113 6). */
enum { FT_DATA = 0, FT_HEADERS, FT_PRIORITY, FT_RST_STREAM, FT_SETTINGS, FT_PUSH_PROMISE,
       FT_PING, FT_GOAWAY, FT_WINDOW_UPDATE, FT_CONTINUATION };
#define FL_END_STREAM  0x01
#define FL_ACK         0x01
#define FL_END_HEADERS 0x04
#define FL_PADDED      0x08
#define FL_PRIORITY    0x20

/* A rule broken: say which through the sanitizers' report, which still
 * reaches the fuzzer's log when the target's stderr is closed. */
static void
violation(const char *what)
{
    char line[256];
    snprintf(line, sizeof line, "fuzz_h2: %s", what);
    __sanitizer_report_error_summary(line);
    abort();
}

static void
violation_on(const char *what, int32_t sid)
{
    char line[200];
    snprintf(line, sizeof line, "%s (stream %d)", what, (int)sid);
    violation(line);
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
    bool                skip;       /* a known finding: not parsed any more */
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

/* ---- a stream, as both sides' frames tell it ---- */

enum { SS_IDLE = 0, SS_INTERIM, SS_FINAL, SS_ENDED, SS_RESET };

typedef struct strm {
    int32_t  id;
    /* the client's side */
    bool     opened;        /* a HEADERS frame of the client names it */
    bool     dec;           /* its first header block decoded */
    bool     head;          /* :method HEAD */
    bool     has_cid;       /* exactly one valid x-request-id: the proxy adopts it */
    char     cid[RID_MAX + 1];
    size_t   head_end;      /* client bytes up to the end of its first header block */
    size_t   rst_end;       /* up to the end of the client's first RST_STREAM for it */
    /* the program's data source (structured mode) */
    bool     gen_busy;
    size_t   gen_left, gen_off;
    /* the server's side */
    uint8_t  st;            /* SS_* */
    bool     server_es;     /* END_STREAM sent */
    int      status;        /* of the final response */
    char     rid[RID_MAX + 1];
    size_t   rid_len;
    bool     has_cl;
    uint64_t cl;
    size_t   body_len;
    char    *body;          /* its first BODY_MAX bytes, from the first DATA */
} strm_t;

/* A header block's fields, as the checks count them. */
typedef struct hblock {
    unsigned nfields, npseudo, nstatus, nxrid, ncl;
    bool     regular_seen;   /* a regular field came: no pseudo-header after it */
    int      status;
    bool     cl_bad;
    uint64_t cl;
    char     rid[RID_MAX + 1];
    size_t   rid_len;
    /* the client's side */
    bool     head;
} hblock_t;

/* ---- everything the target keeps ---- */

static struct {
    struct event_base     *base;
    rp_worker_t            w;
    rp_snapshot_t         *snaps[2];
    struct evconnlistener *lst;
    LIST_HEAD(, backend_conn) backends;
    char                  *sink;
    event_callback_fn      h2_timer_fn;   /* the callback of the connection's timer */
    nghttp2_session_callbacks *gen_cbs;
    nghttp2_option        *gen_opt;
    /* per input */
    fake_tr_t     *ft;            /* the client transport while it lives */
    unsigned       tr_frees;
    bool           freed_pending;
    bool           in_cleanup, client_gone, eof_due, eof_sent, reset_due;
    bool           stall, silent;
    size_t         read_high;
    unsigned long  progress;      /* bumped by anything that moves */
    size_t         sink_len;
    bool           sink_over;
    const uint8_t *script;
    size_t         script_len, script_pos;
    /* the client bytes */
    uint8_t       *cbuf;
    size_t         clen;
    bool           structured, pure, gen_full;
    nghttp2_session *cs;          /* structured: the client session */
    strm_t        *gen[MAX_STREAMS];
    size_t         ngen;
    size_t         fed;           /* client bytes the proxy took */
    size_t        *bstart;        /* where each read began, in the client bytes */
    bool          *bcut;          /* the connection stopped reading at that read */
    size_t         nb, bcap;
    /* what the client bytes say */
    strm_t         st[MAX_STREAMS];
    size_t         nst;
    bool           st_over;
    uint32_t       max_frame;
    unsigned       c_settings, c_pings;
    bool           ids_ok;
    bool           goaway_raised; /* the known GOAWAY case (check_output) */
    nghttp2_hd_inflater *cinf, *rinf;
    uint8_t       *blk;           /* a header block being put together */
    size_t         blk_len, blk_cap;
    /* what the backends received and answered */
    unsigned       be_serial;
    char           fwd[MAX_FWD][RID_MAX + 1];   /* ids of the requests forwarded */
    size_t         nfwd;
    reply_rec_t    rec[MAX_REPLIES];
    size_t         nrec;
    bool           rec_over;      /* more replies than kept: no body checks */
    bool           dump;          /* FUZZ_H2_DUMP set */
    bool           known;         /* FUZZ_H2_KNOWN set: known findings pass */
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
    (void)reset;
    if (ft != F.ft)
        violation("a transport freed twice");
    F.tr_frees++;
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

/* Where a read began: the reads are what the connection parses at once. */
static void
batch_add(size_t start)
{
    if (F.nb == F.bcap) {
        F.bcap = F.bcap ? 2 * F.bcap : 1024;
        F.bstart = realloc(F.bstart, F.bcap * sizeof *F.bstart);
        F.bcut = realloc(F.bcut, F.bcap * sizeof *F.bcut);
        if (F.bstart == NULL || F.bcut == NULL)
            abort();
    }
    F.bcut[F.nb] = false;
    F.bstart[F.nb++] = start;
}

/* After a read: a connection that stopped reading may have given up in
 * the middle of it (a connection error: the rest is never parsed). */
static void
batch_done(void)
{
    if (F.nb > 0)
        F.bcut[F.nb - 1] = F.ft == NULL || !F.ft->reading;
}

/* The read a client byte came with, or -1 when it never came. */
static long
batch_of(size_t pos)
{
    if (pos >= F.fed || F.nb == 0)
        return -1;
    size_t lo = 0, hi = F.nb;   /* the last start <= pos is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (F.bstart[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return (long)lo;
}

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
    batch_add(F.fed);
    F.fed += n;
    F.progress++;
    ft->tr.read_cb(ft->tr.arg);   /* may free the transport */
    batch_done();
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

/* ---- what the backends receive, parsed as requests (as fuzz_h1.c) ---- */

static llhttp_settings_t up_settings;

static void
up_violation(const backend_conn_t *b, const char *what)
{
    if (F.dump) {
        fprintf(stderr, "fuzz_h2: backend connection %u holds:\n", b->serial);
        fwrite(b->in, 1, b->in_len, stderr);
        fputs("\nfuzz_h2: end of what it holds\n", stderr);
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
    if (!rp_request_id_valid(b->id, strlen(b->id)) && !F.known)
        up_violation(b, "a forwarded X-Request-Id that is not a valid request id");
    if (F.nfwd < MAX_FWD)
        memcpy(F.fwd[F.nfwd++], b->id, sizeof b->id);
    b->head_done = true;
}

/* Whether the request line held has a byte above 0x7f. */
static bool
target_has_8bit(const backend_conn_t *b)
{
    for (size_t i = 0; i < b->in_len && b->in[i] != '\n'; i++)
        if ((unsigned char)b->in[i] >= 0x80)
            return true;
    return false;
}

/* What a backend connection read: appended to what it holds and parsed.
 * A request cut short at the end is fine; a malformed one never is. */
static void
up_take(backend_conn_t *b, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src);
    if (n == 0)
        return;
    if (b->skip) {
        evbuffer_drain(src, n);
        return;
    }
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
            if (F.known && err == HPE_INVALID_URL && target_has_8bit(b)) {
                b->skip = true;   /* known: an 8-bit :path forwarded as it is */
                return;
            }
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

/* Runs the loop without blocking until nothing moves: no progress and no
 * event left active (the connection's deferred work re-activates its
 * event; one that keeps doing so without end is a busy loop). */
static void
pump(void)
{
    unsigned quiet = 0;
    bool busy = false;
    for (unsigned i = 0; i < PUMP_MAX && quiet < PUMP_QUIET; i++) {
        unsigned long before = F.progress;
        event_base_loop(F.base, EVLOOP_NONBLOCK);
        busy = backends_tick();
        bool active = event_base_get_num_events(F.base, EVENT_BASE_COUNT_ACTIVE) > 0;
        quiet = F.progress == before && !active ? quiet + 1 : 0;
    }
    if (quiet < PUMP_QUIET && !busy)
        violation("the event loop keeps running with no backend sending");
}

static void
settle(void)
{
    pump();
    client_take();
    client_end_try();
    pump();
}

static rp_h2_t *
the_h2(void)
{
    return TAILQ_FIRST(&F.w.h2s);
}

/* The armed timers (events on no descriptor, with a timeout pending). */
typedef struct timers {
    struct event *ev[MAX_TIMERS];
    size_t        n;
} timers_t;

static int
timers_cb(const struct event_base *base, const struct event *ev, void *arg)
{
    timers_t *t = arg;
    (void)base;
    if (event_get_fd(ev) != -1 || !event_pending(ev, EV_TIMEOUT, NULL))
        return 0;
    if (t->n < MAX_TIMERS)
        t->ev[t->n++] = (struct event *)ev;
    return 0;
}

static void
timers_list(timers_t *t)
{
    t->n = 0;
    event_base_foreach_event(F.base, timers_cb, t);
}

/* Time passes for one armed timer only. */
static void
fire(struct event *ev)
{
    event_active(ev, EV_TIMEOUT, 1);
    F.progress++;
    pump();
}

/* The connection's own timers: the first (preface, first request, idle)
 * or the sweep, told apart by their callbacks. */
static void
fire_h2(bool conn_timer)
{
    rp_h2_t *h = the_h2();
    if (h == NULL)
        return;
    timers_t t;
    timers_list(&t);
    for (size_t i = 0; i < t.n; i++) {
        if (event_get_callback_arg(t.ev[i]) != h)
            continue;
        if ((event_get_callback(t.ev[i]) == F.h2_timer_fn) != conn_timer)
            continue;
        fire(t.ev[i]);
        return;
    }
}

/* Every other armed timer, one at a time: a timer may free others, so the
 * list is taken afresh after each. */
static void
fire_others(void)
{
    struct event *done[MAX_TIMERS];
    size_t ndone = 0;
    while (ndone < MAX_TIMERS) {
        rp_h2_t *h = the_h2();
        timers_t t;
        timers_list(&t);
        struct event *pick = NULL;
        for (size_t i = 0; i < t.n && pick == NULL; i++) {
            if (h != NULL && event_get_callback_arg(t.ev[i]) == h)
                continue;
            bool seen = false;
            for (size_t j = 0; j < ndone && !seen; j++)
                seen = done[j] == t.ev[i];
            if (!seen)
                pick = t.ev[i];
        }
        if (pick == NULL)
            return;
        done[ndone++] = pick;
        fire(pick);
        client_take();
        client_end_try();
        pump();
    }
}

/* ---- streams ---- */

static strm_t *
strm_get(int32_t id, bool create)
{
    for (size_t i = F.nst; i-- > 0;)
        if (F.st[i].id == id)
            return &F.st[i];
    if (!create)
        return NULL;
    if (F.nst == MAX_STREAMS) {
        F.st_over = true;
        return NULL;
    }
    strm_t *s = &F.st[F.nst++];
    memset(s, 0, sizeof *s);
    s->id = id;
    return s;
}

static void
streams_free(void)
{
    for (size_t i = 0; i < F.nst; i++)
        free(F.st[i].body);
    F.nst = 0;
}

static void
blk_append(const uint8_t *p, size_t n)
{
    if (F.blk_len + n > F.blk_cap) {
        size_t cap = F.blk_cap ? F.blk_cap : 4096;
        while (cap < F.blk_len + n)
            cap *= 2;
        F.blk = realloc(F.blk, cap);
        if (F.blk == NULL)
            abort();
        F.blk_cap = cap;
    }
    memcpy(F.blk + F.blk_len, p, n);
    F.blk_len += n;
}

typedef void field_fn(hblock_t *hb, const nghttp2_nv *nv);

/* Decodes the block put together in F.blk, in the order blocks came.
 * Returns false when it does not decode. */
static bool
inflate_block(nghttp2_hd_inflater *inf, field_fn *fn, hblock_t *hb)
{
    const uint8_t *in = F.blk;
    size_t left = F.blk_len;
    memset(hb, 0, sizeof *hb);
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(inf, &nv, &fl, (uint8_t *)in, left, 1);
        if (r < 0)
            return false;
        in += r;
        left -= (size_t)r;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            hb->nfields++;
            fn(hb, &nv);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            return true;
        }
        if (r == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))
            return false;
    }
}

static bool
nv_is(const nghttp2_nv *nv, const char *name)
{
    size_t n = strlen(name);
    return nv->namelen == n && memcmp(nv->name, name, n) == 0;
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- the client bytes: what the program makes (structured mode) ---- */

static const char *const g_methods[8] = {
    "GET", "POST", "HEAD", "PUT", "OPTIONS", "DELETE", "CONNECT", "BREW" };
static const char *const g_paths[8] = {
    "/", "/a", "/a/b?q=1", "/x y", "*",
    "/a/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789",
    "a", "/%2e%2e/x" };
static const char *const g_authorities[4] = { "a", "b.example", "", "h.example:8080" };
static char g_big[24000];

#define NV_S(n, v) ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE })

static void
gen_flush(void)
{
    /* Submitted and never sent (streams over the client session's own
     * limit): the program stops there, or memory would. */
    if (nghttp2_session_get_outbound_queue_size(F.cs) > GEN_QUEUED_MAX)
        F.gen_full = true;
    while (!F.gen_full) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(F.cs, &d);
        if (n < 0)
            F.gen_full = true;
        if (n <= 0)
            return;
        size_t take = (size_t)n;
        if (take > CLIENT_MAX - F.clen) {
            take = CLIENT_MAX - F.clen;
            F.gen_full = true;
        }
        memcpy(F.cbuf + F.clen, d, take);
        F.clen += take;
    }
}

static ssize_t
gen_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
         nghttp2_data_source *src, void *arg)
{
    static const char pattern[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    strm_t *s = src->ptr;
    (void)ng;
    (void)id;
    (void)arg;
    size_t n = s->gen_left < length ? s->gen_left : length;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)pattern[(s->gen_off + i) % (sizeof pattern - 1)];
    s->gen_off += n;
    s->gen_left -= n;
    if (s->gen_left == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        s->gen_busy = false;
    }
    return (ssize_t)n;
}

static strm_t *
gen_pick(uint8_t sel)
{
    return F.ngen == 0 ? NULL : F.gen[sel % F.ngen];
}

static void
gen_request(uint8_t fl, uint8_t a, uint8_t b, uint8_t c)
{
    nghttp2_nv nv[16];
    size_t k = 0;
    char rid[24], clen[8], extra[3][8];
    int32_t next = (int32_t)nghttp2_session_get_next_stream_id(F.cs);
    const char *method = g_methods[a & 7];
    bool connect = strcmp(method, "CONNECT") == 0;
    nv[k++] = NV_S(":method", method);
    if (!(c & 8))
        nv[k++] = NV_S(":scheme", "https");
    if (!(fl & 8))
        nv[k++] = NV_S(":authority", g_authorities[a >> 6]);
    if (!(c & 8) || !connect)
        nv[k++] = NV_S(":path", g_paths[(a >> 3) & 7]);
    if (fl & 4)
        nv[k++] = NV_S("host", (b & 128) ? g_authorities[a >> 6] : "other.example");
    if (fl & 2) {
        snprintf(clen, sizeof clen, "%u", (unsigned)(b & 127));
        nv[k++] = NV_S("content-length", clen);
    }
    if (!(c & 16)) {
        snprintf(rid, sizeof rid, "fz-%d", (int)next);
        nv[k++] = NV_S("x-request-id", rid);
    }
    if (c & 1)
        nv[k++] = NV_S("expect", "100-continue");
    if (c & 2) {
        size_t big = 6000u * (1u + ((c >> 6) & 3u));
        nv[k++] = (nghttp2_nv){ (uint8_t *)"x-big", (uint8_t *)g_big, 5, big, NGHTTP2_NV_FLAG_NONE };
    }
    if (c & 4) {
        nv[k++] = NV_S("cookie", "a=1");
        nv[k++] = NV_S("cookie", "b=2");
    }
    if (c & 32)
        nv[k++] = NV_S("te", "trailers");
    for (unsigned i = 0; i < (unsigned)(c >> 6); i++) {
        snprintf(extra[i], sizeof extra[i], "x-f%u", i);
        nv[k++] = NV_S(extra[i], "v");
    }
    int32_t id = nghttp2_submit_headers(F.cs, (fl & 1) ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE,
                                        -1, NULL, nv, k, NULL);
    if (id <= 0)
        return;
    strm_t *s = strm_get(id, true);
    if (s != NULL)
        F.gen[F.ngen++] = s;
}

/* One operation of the program at p[0, n); returns the bytes it used. */
static size_t
gen_op(const uint8_t *p, size_t n)
{
    uint8_t op = p[0], kind = op & 15, fl = op >> 4;
    uint8_t a = n > 1 ? p[1] : 0, b = n > 2 ? p[2] : 0, c = n > 3 ? p[3] : 0;
    strm_t *s;
    switch (kind) {
    case 0: case 1: case 15:
        gen_request(fl, a, b, c);
        return 4;
    case 13:
        gen_request(1, 0, 0, 0);
        return 1;
    case 2: case 12: {
        s = gen_pick(a);
        if (s != NULL && !s->gen_busy) {
            nghttp2_data_provider dp = { .source.ptr = s, .read_callback = gen_read };
            s->gen_left = (size_t)b * ((fl & 2) ? 64 : 1);
            if (nghttp2_submit_data(F.cs, (fl & 1) ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE,
                                    s->id, &dp) == 0)
                s->gen_busy = true;
        }
        return 3;
    }
    case 3:
        s = gen_pick(a);
        if (s != NULL) {
            nghttp2_nv nv = NV_S("x-trailer", "t");
            nghttp2_submit_headers(F.cs, (fl & 1) ? NGHTTP2_FLAG_NONE : NGHTTP2_FLAG_END_STREAM,
                                   s->id, NULL, &nv, 1, NULL);
        }
        return 2;
    case 4: case 14:
        s = gen_pick(a);
        if (s != NULL)
            nghttp2_submit_rst_stream(F.cs, NGHTTP2_FLAG_NONE, s->id, b % 14u);
        return 3;
    case 5: {
        uint8_t opaque[8] = { 0 };
        memcpy(opaque, p + 1, n - 1 < 8 ? n - 1 : 8);
        nghttp2_submit_ping(F.cs, NGHTTP2_FLAG_NONE, opaque);
        return 9;
    }
    case 6: {
        nghttp2_settings_entry iv[3];
        size_t cnt = a & 3u, k = 0, used = 2;
        for (size_t i = 0; i < cnt; i++, used += 2) {
            uint8_t which = n > used ? p[used] : 0, v = n > used + 1 ? p[used + 1] : 0;
            switch (which % 6u) {
            case 0: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, v * 32u }; break;
            case 1: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, v & 1u }; break;
            case 2: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, v }; break;
            case 3: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                                        v == 255 ? 0x7fffffffu : v * 512u }; break;
            case 4: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384u + v * 1024u }; break;
            default: iv[k++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, v * 64u }; break;
            }
        }
        nghttp2_submit_settings(F.cs, NGHTTP2_FLAG_NONE, iv, k);
        return used;
    }
    case 7:
        s = (a & 128) ? NULL : gen_pick(a);
        if ((a & 128) || s != NULL)
            nghttp2_submit_window_update(F.cs, NGHTTP2_FLAG_NONE, s == NULL ? 0 : s->id,
                                         ((int32_t)b + 1) * 256);
        return 3;
    case 8:
        s = gen_pick(a);
        if (s != NULL) {
            strm_t *dep = b == 0 ? NULL : gen_pick(b);
            nghttp2_priority_spec ps;
            nghttp2_priority_spec_init(&ps, dep == NULL ? 0 : dep->id, (int32_t)(c | 1), fl & 1);
            nghttp2_submit_priority(F.cs, NGHTTP2_FLAG_NONE, s->id, &ps);
        }
        return 4;
    case 9:
        nghttp2_submit_goaway(F.cs, NGHTTP2_FLAG_NONE, 0, a % 14u, NULL, 0);
        return 2;
    case 11: {
        size_t len = a & 63u;
        if (len > n - (n > 1 ? 2 : 1))
            len = n - (n > 1 ? 2 : 1);
        gen_flush();
        if (len > CLIENT_MAX - F.clen)
            len = CLIENT_MAX - F.clen;
        memcpy(F.cbuf + F.clen, p + 2, len);
        F.clen += len;
        F.pure = false;
        return 2 + len;
    }
    default:
        return 1;
    }
}

/* The program at p[0, n), through the client session, into F.cbuf. */
static void
generate(const uint8_t *p, size_t n)
{
    if (nghttp2_session_client_new2(&F.cs, F.gen_cbs, NULL, F.gen_opt) != 0)
        abort();
    nghttp2_submit_settings(F.cs, NGHTTP2_FLAG_NONE, NULL, 0);
    gen_flush();
    const uint8_t *last = NULL;
    size_t last_n = 0;
    size_t i = 0, ops = 0;
    while (i < n && !F.gen_full && ops < GEN_OPS_MAX) {
        if ((p[i] & 15) == 10) {
            unsigned times = ((n - i > 1 ? p[i + 1] : 0) & 63u) + 1u;
            if (p[i] & 0x40)
                times *= 16;
            for (unsigned k = 0; k < times && last != NULL && !F.gen_full && ops < GEN_OPS_MAX; k++) {
                gen_op(last, last_n);
                gen_flush();
                ops++;
            }
            i += 2;
            continue;
        }
        ops++;
        size_t used = gen_op(p + i, n - i);
        last = p + i;
        last_n = n - i;
        i += used;
        gen_flush();
    }
}

/* ---- the client bytes, walked as the server reads them ---- */

static void
client_field(hblock_t *hb, const nghttp2_nv *nv)
{
    if (F.dump)
        fprintf(stderr, "fuzz_h2:   %.*s: %.*s\n", (int)nv->namelen, (const char *)nv->name,
                nv->valuelen > 80 ? 80 : (int)nv->valuelen, (const char *)nv->value);
    if (nv_is(nv, ":method"))
        hb->head = nv->valuelen == 4 && memcmp(nv->value, "HEAD", 4) == 0;
    else if (nv_is(nv, "x-request-id")) {
        hb->nxrid++;
        hb->rid_len = nv->valuelen;
        if (nv->valuelen <= RID_MAX) {
            memcpy(hb->rid, nv->value, nv->valuelen);
            hb->rid[nv->valuelen] = '\0';
        }
    }
}

/* A client header block ended at `end` in the client bytes.  Returns
 * false when it does not decode (the server gives up there too). */
static bool
client_block(int32_t sid, bool first, size_t end)
{
    hblock_t hb;
    if (!inflate_block(F.cinf, client_field, &hb))
        return false;
    strm_t *s = first ? strm_get(sid, false) : NULL;
    if (s != NULL) {
        s->dec = true;
        s->head = hb.head;
        s->head_end = end;
        if (hb.nxrid == 1 && hb.rid_len <= RID_MAX && rp_request_id_valid(hb.rid, hb.rid_len)) {
            s->has_cid = true;
            memcpy(s->cid, hb.rid, hb.rid_len + 1);
        }
    }
    return true;
}

/* The frames of the client bytes, after the preface, as far as the
 * server can read them: which streams they open, their methods and
 * request ids, where each head and reset ends, the SETTINGS and PINGs. */
static void
walk_client(void)
{
    size_t off = RP_H2_PREFACE_LEN;
    int32_t blk = 0;       /* stream whose header block continues */
    bool blk_first = false;
    F.max_frame = DEFAULT_FRAME;
    F.c_settings = F.c_pings = 0;
    while (off <= F.clen && F.clen - off >= 9) {
        const uint8_t *f = F.cbuf + off, *pl = f + 9;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        uint8_t type = f[3], flags = f[4];
        int32_t sid = (int32_t)(be32(f + 5) & 0x7fffffffu);
        if (len > DEFAULT_FRAME)
            return;   /* FRAME_SIZE_ERROR */
        if (F.clen - off - 9 < len) {
            /* The frame never came whole; nghttp2 takes a HEADERS frame
             * as it comes, so its stream is open all the same. */
            if (type == FT_HEADERS && blk == 0 && (sid & 1)) {
                strm_t *s = strm_get(sid, true);
                if (s != NULL)
                    s->opened = true;
            }
            return;
        }
        size_t fend = off + 9 + len;
        if (blk != 0 && (type != FT_CONTINUATION || sid != blk))
            return;   /* a header block interrupted: PROTOCOL_ERROR */
        switch (type) {
        case FT_HEADERS: {
            size_t skip = 0, pad = 0;
            if (flags & FL_PADDED) {
                if (len < 1)
                    return;
                pad = pl[0];
                skip = 1;
            }
            if (flags & FL_PRIORITY)
                skip += 5;
            if (skip + pad > len || sid == 0 || !(sid & 1))
                return;
            strm_t *s = strm_get(sid, true);
            blk_first = s != NULL && !s->opened;
            if (s != NULL)
                s->opened = true;
            F.blk_len = 0;
            blk_append(pl + skip, len - skip - pad);
            if (flags & FL_END_HEADERS) {
                if (!client_block(sid, blk_first, fend))
                    return;
            } else {
                blk = sid;
            }
            break;
        }
        case FT_CONTINUATION:
            if (blk == 0)
                return;
            blk_append(pl, len);
            if (flags & FL_END_HEADERS) {
                if (!client_block(blk, blk_first, fend))
                    return;
                blk = 0;
            }
            break;
        case FT_RST_STREAM:
            if (sid != 0 && len == 4) {
                strm_t *s = strm_get(sid, false);
                if (s != NULL && s->rst_end == 0)
                    s->rst_end = fend;
            }
            break;
        case FT_SETTINGS:
            if (!(flags & FL_ACK) && sid == 0 && len % 6 == 0) {
                F.c_settings++;
                for (size_t i = 0; i < len; i += 6) {
                    unsigned id = (unsigned)pl[i] << 8 | pl[i + 1];
                    uint32_t v = be32(pl + i + 2);
                    if (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && v >= DEFAULT_FRAME
                        && v <= 16777215u && v > F.max_frame)
                        F.max_frame = v;
                }
            }
            break;
        case FT_PING:
            if (!(flags & FL_ACK) && sid == 0 && len == 8)
                F.c_pings++;
            break;
        default:
            break;
        }
        off = fend;
    }
}

/* Whether the request ids tell requests apart: the ids clients gave (the
 * proxy adopts them) are all distinct. */
static bool
ids_distinct(void)
{
    for (size_t i = 0; i < F.nst; i++) {
        if (!F.st[i].has_cid)
            continue;
        for (size_t j = i + 1; j < F.nst; j++)
            if (F.st[j].has_cid && strcmp(F.st[i].cid, F.st[j].cid) == 0)
                return false;
    }
    return !F.st_over;
}

/* ---- what the client got, walked frame by frame ---- */

static void
response_field(hblock_t *hb, const nghttp2_nv *nv)
{
    if (F.dump)
        fprintf(stderr, "fuzz_h2:   < %.*s: %.*s\n", (int)nv->namelen, (const char *)nv->name,
                nv->valuelen > 80 ? 80 : (int)nv->valuelen, (const char *)nv->value);
    if (nv->namelen == 0) {
        if (!F.known)
            violation("a response field with an empty name");
        hb->regular_seen = true;   /* known: a backend's ": value" line relayed */
        return;
    }
    if (nv->name[0] == ':') {
        if (hb->regular_seen)
            violation("a pseudo-header after a regular field in a response");
        hb->npseudo++;
        if (!nv_is(nv, ":status"))
            violation("a response pseudo-header other than :status");
        hb->nstatus++;
        if (nv->valuelen != 3)
            violation("a :status that is not three digits");
        int st = 0;
        for (size_t i = 0; i < 3; i++) {
            if (nv->value[i] < '0' || nv->value[i] > '9')
                violation("a :status that is not three digits");
            st = st * 10 + (nv->value[i] - '0');
        }
        if (st < 100 || st == 101)
            violation("a :status below 100, or 101, in HTTP/2");
        hb->status = st;
        return;
    }
    hb->regular_seen = true;
    if (!nghttp2_check_header_name(nv->name, nv->namelen))
        violation("a response field name HTTP/2 forbids (uppercase or not a token)");
    if (!nghttp2_check_header_value_rfc9113(nv->value, nv->valuelen))
        violation("a response field value HTTP/2 forbids");
    static const char *const hop[] = { "connection", "keep-alive", "proxy-connection",
                                       "transfer-encoding", "upgrade", "te", NULL };
    for (const char *const *h = hop; *h != NULL; h++)
        if (nv_is(nv, *h))
            violation("a connection-specific field in an HTTP/2 response");
    if (nv_is(nv, "x-request-id")) {
        hb->nxrid++;
        hb->rid_len = nv->valuelen;
        if (nv->valuelen <= RID_MAX) {
            memcpy(hb->rid, nv->value, nv->valuelen);
            hb->rid[nv->valuelen] = '\0';
        }
    } else if (nv_is(nv, "content-length")) {
        hb->ncl++;
        uint64_t v = 0;
        if (nv->valuelen == 0 || nv->valuelen > 19)
            hb->cl_bad = true;
        for (size_t i = 0; i < nv->valuelen; i++) {
            if (nv->value[i] < '0' || nv->value[i] > '9')
                hb->cl_bad = true;
            else
                v = v * 10 + (uint64_t)(nv->value[i] - '0');
        }
        hb->cl = v;
    }
}

static void
stream_ended(strm_t *s)
{
    s->server_es = true;
    s->st = SS_ENDED;
    bool no_body = s->head || s->status == 204 || s->status == 304;
    if (no_body && s->body_len > 0)
        violation_on("DATA in answer to HEAD, or with 204 or 304", s->id);
    if (!no_body && s->has_cl && s->body_len != s->cl && !(s->body_len == 0 && !s->dec))
        violation_on("DATA that do not add up to the response's content-length", s->id);
}

static strm_t *
out_stream(int32_t sid)
{
    if (!(sid & 1))
        violation_on("a frame on an even (server-initiated) stream", sid);
    strm_t *s = strm_get(sid, false);
    if (s == NULL && F.st_over)
        return NULL;
    if (s == NULL || !s->opened)
        violation_on("a frame on a stream the client never opened", sid);
    return s;
}

/* A response header block of stream s is complete in F.blk. */
static void
response_block(strm_t *s, bool es)
{
    hblock_t hb;
    if (!inflate_block(F.rinf, response_field, &hb))
        violation_on("a response header block that does not decode (HPACK)", s == NULL ? 0 : s->id);
    if (s == NULL)
        return;
    if (s->st == SS_FINAL) {
        /* Trailer fields. */
        if (hb.npseudo > 0)
            violation_on("a pseudo-header in response trailers", s->id);
        if (!es)
            violation_on("a header block after the final response that does not end the stream", s->id);
        stream_ended(s);
        return;
    }
    if (hb.nstatus != 1)
        violation_on("a response head without exactly one :status", s->id);
    if (hb.status < 200) {
        if (es)
            violation_on("an interim response that ends the stream", s->id);
        s->st = SS_INTERIM;
        return;
    }
    if (hb.nxrid != 1)
        violation_on("a final response without exactly one x-request-id", s->id);
    if (!rp_request_id_valid(hb.rid, hb.rid_len > RID_MAX ? 0 : hb.rid_len) && !F.known)
        violation_on("a response x-request-id that is not a valid request id", s->id);
    if (hb.ncl > 1 || hb.cl_bad)
        violation_on("a final response with content-length twice, or not a number", s->id);
    s->st = SS_FINAL;
    s->status = hb.status;
    s->rid_len = hb.rid_len;
    memcpy(s->rid, hb.rid, sizeof s->rid);
    s->has_cl = hb.ncl == 1;
    s->cl = hb.cl;
    if (es)
        stream_ended(s);
}

static void
dump_frames(const char *who, const uint8_t *p, size_t n, size_t start)
{
    size_t off = start;
    while (off <= n && n - off >= 9) {
        const uint8_t *f = p + off;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        fprintf(stderr, "fuzz_h2: %s @%zu: type %u flags 0x%02x stream %u length %zu%s", who, off,
                f[3], f[4], (unsigned)(be32(f + 5) & 0x7fffffffu), len,
                n - off - 9 < len ? " (cut)" : "");
        if ((f[3] == FT_GOAWAY && len >= 8 && n - off - 9 >= 8) || (f[3] == FT_RST_STREAM && len == 4 && n - off - 9 >= 4))
            fprintf(stderr, ": %u %u", (unsigned)be32(f + 9), f[3] == FT_GOAWAY ? (unsigned)be32(f + 13) : 0u);
        fputc('\n', stderr);
        off += 9 + len;
    }
    if (off < n)
        fprintf(stderr, "fuzz_h2: %s @%zu: %zu bytes, not a frame header\n", who, off, n - off);
}

static void
check_output(void)
{
    const uint8_t *p = (const uint8_t *)F.sink, *end = p + F.sink_len;
    size_t nframes = 0;
    int32_t blk = 0;
    bool blk_es = false;
    bool goaway = false, goaway_rate_limit = false;
    uint32_t goaway_last = 0;
    unsigned acks = 0, pongs = 0;
    if (F.sink_over)
        return;
    while (p < end) {
        if (end - p < 9)
            violation("client output that ends inside a frame header");
        size_t len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        uint8_t type = p[3], flags = p[4];
        int32_t sid = (int32_t)(be32(p + 5) & 0x7fffffffu);
        const uint8_t *pl = p + 9;
        if ((size_t)(end - pl) < len)
            violation("client output that ends inside a frame");
        if (nframes == 0 && (type != FT_SETTINGS || (flags & FL_ACK) || sid != 0))
            violation("the server's first frame is not its SETTINGS");
        if (len > F.max_frame)
            violation_on("a frame longer than SETTINGS_MAX_FRAME_SIZE", sid);
        if (blk != 0 && (type != FT_CONTINUATION || sid != blk))
            violation_on("a header block interrupted by another frame", sid);
        bool on0 = type == FT_SETTINGS || type == FT_PING || type == FT_GOAWAY
                   || (type == FT_WINDOW_UPDATE && sid == 0);
        if (on0 && sid != 0)
            violation_on("SETTINGS, PING or GOAWAY on a stream", sid);
        if (!on0 && sid == 0)
            violation("DATA, HEADERS, RST_STREAM or CONTINUATION on stream 0");
        strm_t *s = NULL;
        if (!on0) {
            s = out_stream(sid);
            /* nghttp2 may send a second RST_STREAM for a stream whose
             * first one is still queued (a stream error found meanwhile):
             * receivers ignore it. */
            if (s != NULL && s->st == SS_RESET && type != FT_RST_STREAM)
                violation_on("a frame on a stream after the server reset it", sid);
        }
        switch (type) {
        case FT_DATA: {
            size_t skip = 0, pad = 0;
            if (flags & FL_PADDED) {
                if (len < 1 || (size_t)pl[0] + 1 > len)
                    violation_on("DATA with bad padding", sid);
                pad = pl[0];
                skip = 1;
            }
            size_t n = len - skip - pad;
            if (s == NULL)
                break;
            if (s->st == SS_IDLE || s->st == SS_INTERIM)
                violation_on("DATA before the final response HEADERS", sid);
            if (s->st == SS_ENDED)
                violation_on("DATA after END_STREAM", sid);
            if (n > 0 && s->body_len < BODY_MAX) {
                if (s->body == NULL && (s->body = malloc(BODY_MAX)) == NULL)
                    abort();
                size_t k = BODY_MAX - s->body_len < n ? BODY_MAX - s->body_len : n;
                memcpy(s->body + s->body_len, pl + skip, k);
            }
            s->body_len += n;
            if (flags & FL_END_STREAM)
                stream_ended(s);
            break;
        }
        case FT_HEADERS: {
            size_t skip = 0, pad = 0;
            if (flags & FL_PADDED) {
                if (len < 1)
                    violation_on("HEADERS with bad padding", sid);
                pad = pl[0];
                skip = 1;
            }
            if (flags & FL_PRIORITY)
                skip += 5;
            if (skip + pad > len)
                violation_on("HEADERS with bad padding", sid);
            if (s != NULL && s->st == SS_ENDED)
                violation_on("HEADERS after END_STREAM", sid);
            if (s != NULL && s->st == SS_IDLE && goaway && (uint32_t)sid > goaway_last)
                violation_on("a response begun on a stream above the GOAWAY's last stream id", sid);
            F.blk_len = 0;
            blk_append(pl + skip, len - skip - pad);
            blk_es = (flags & FL_END_STREAM) != 0;
            if (flags & FL_END_HEADERS)
                response_block(s, blk_es);
            else
                blk = sid;
            break;
        }
        case FT_CONTINUATION:
            if (blk == 0)
                violation_on("CONTINUATION outside a header block", sid);
            blk_append(pl, len);
            if (flags & FL_END_HEADERS) {
                response_block(s, blk_es);
                blk = 0;
            }
            break;
        case FT_RST_STREAM:
            if (len != 4)
                violation_on("RST_STREAM of a length other than 4", sid);
            if (s != NULL)
                s->st = SS_RESET;
            break;
        case FT_SETTINGS:
            if (flags & FL_ACK) {
                if (len != 0)
                    violation("a SETTINGS ACK with a payload");
                if (++acks > F.c_settings)
                    violation("more SETTINGS ACKs than SETTINGS from the client");
                break;
            }
            if (len % 6 != 0)
                violation("SETTINGS whose length is not a multiple of 6");
            for (size_t i = 0; i < len; i += 6) {
                unsigned id = (unsigned)pl[i] << 8 | pl[i + 1];
                uint32_t v = be32(pl + i + 2);
                if ((id == NGHTTP2_SETTINGS_ENABLE_PUSH && v != 0)
                    || (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && v > 0x7fffffffu)
                    || (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && (v < DEFAULT_FRAME || v > 16777215u)))
                    violation("a SETTINGS value a server may not send");
            }
            break;
        case FT_PING:
            if (len != 8)
                violation("PING of a length other than 8");
            if (!(flags & FL_ACK))
                violation("the server sent a PING of its own");
            if (++pongs > F.c_pings)
                violation("more PING ACKs than PINGs from the client");
            break;
        case FT_GOAWAY: {
            if (len < 8)
                violation("GOAWAY shorter than 8 bytes");
            uint32_t last = be32(pl) & 0x7fffffffu;
            if (goaway && last > goaway_last) {
                /* Known, and left to pass so that fuzzing goes on: after
                 * nghttp2's own GOAWAY of its reset rate limit (queued,
                 * INTERNAL_ERROR, last stream id the last received),
                 * h2.c's abuse budget terminates the session with the
                 * last stream id processed, which can be higher. */
                if (!goaway_rate_limit || !F.known)
                    violation("a GOAWAY that raises the last stream id");
                last = goaway_last;
                F.goaway_raised = true;
            }
            goaway = true;
            goaway_last = last;
            if (be32(pl + 4) == NGHTTP2_INTERNAL_ERROR)
                goaway_rate_limit = true;
            break;
        }
        case FT_WINDOW_UPDATE:
            if (len != 4)
                violation_on("WINDOW_UPDATE of a length other than 4", sid);
            if ((be32(pl) & 0x7fffffffu) == 0)
                violation_on("WINDOW_UPDATE of 0", sid);
            break;
        default:
            violation_on("a frame of a type the server never sends (PRIORITY, PUSH_PROMISE or unknown)", sid);
        }
        p = pl + len;
        nframes++;
    }
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
 * *exact tells whether that response ends right where the reply does. */
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
 * request_id: ID\n" (see h2_send_error).  Returns the word, or NULL when
 * the response is not one (or, answering HEAD, has no body to tell). */
static const char *
proxy_answer_word(const strm_t *s, char *word, size_t cap)
{
    size_t blen = s->body_len;
    if (blen > BODY_MAX || s->body == NULL)
        return NULL;
    const char *b = s->body, *end = s->body + blen;
    char num[8];
    int nl = snprintf(num, sizeof num, "%d ", s->status);
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
    if ((size_t)(end - i) != sizeof rid - 1 + s->rid_len + 1 || memcmp(i, rid, sizeof rid - 1) != 0
        || memcmp(i + sizeof rid - 1, s->rid, s->rid_len) != 0 || end[-1] != '\n')
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
 * requests.  NULL otherwise. */
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

/* A final response stream s got whole. */
static void
check_final(const strm_t *s)
{
    if (s->rid_len == 0 || s->rid_len > RID_MAX)
        return;
    for (size_t i = 0; i < F.nst; i++)
        if (&F.st[i] != s && F.st[i].has_cid && strcmp(F.st[i].cid, s->rid) == 0)
            violation_on("a response carries the request id another stream gave", s->id);
    char word[40];
    if (proxy_answer_word(s, word, sizeof word) != NULL) {
        if (before_forwarding(word) && forwarded(s->rid)) {
            char what[160];
            snprintf(what, sizeof what, "a request forwarded that the proxy answered %d (%s)",
                     s->status, word);
            violation_on(what, s->id);
        }
        if (F.dump)
            fprintf(stderr, "fuzz_h2: stream %d: %d %s: the proxy's own (%s)\n",
                    (int)s->id, s->status, s->rid, word);
        return;
    }
    if (F.rec_over)
        return;
    const reply_rec_t *r = reply_for(s->rid);
    bool exact;
    if (r == NULL || !reply_read(r, &exact))
        return;
    if (s->status != R.status) {
        if (s->head)
            return;   /* an error answer to HEAD has no body to know it by */
        char what[160];
        snprintf(what, sizeof what, "the client got status %d, the backend sent %d",
                 s->status, R.status);
        violation_on(what, s->id);
    }
    if (s->body_len > BODY_MAX || R.body_len > BODY_MAX)
        return;
    if (s->body_len != R.body_len || (s->body_len > 0 && memcmp(s->body, R.body, s->body_len) != 0)) {
        char what[160];
        snprintf(what, sizeof what,
                 "the client got a body of %zu bytes other than the %zu bytes the backend sent",
                 s->body_len, R.body_len);
        violation_on(what, s->id);
    }
    if (F.dump)
        fprintf(stderr, "fuzz_h2: stream %d: %d %s: status and %zu body bytes as the backend sent\n",
                (int)s->id, s->status, s->rid, s->body_len);
}

static void
check_streams(void)
{
    if (!F.ids_ok)
        return;
    if (!F.rec_over)
        mark_dups();
    for (size_t i = 0; i < F.nst; i++) {
        strm_t *s = &F.st[i];
        if (s->server_es && s->status >= 200)
            check_final(s);   /* whole: a reset after END_STREAM takes nothing away */
        /* A head and its reset in one read: never forwarded. */
        if (s->dec && s->has_cid && s->head_end > 0 && s->rst_end > s->head_end) {
            long bh = batch_of(s->head_end - 1), br = batch_of(s->rst_end - 1);
            if (bh >= 0 && bh == br && !F.bcut[bh] && forwarded(s->cid))
                violation_on("a request forwarded for a stream opened and reset in one read", s->id);
        }
    }
}

/* ---- the client session's own view (structured mode) ---- */

static int
cs_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *arg)
{
    (void)ng;
    (void)arg;
    if (frame->hd.type == NGHTTP2_GOAWAY && F.goaway_raised)
        return 0;   /* the known case check_output let pass */
    char what[160];
    snprintf(what, sizeof what, "the client session finds a frame of type %u invalid (%s)",
             frame->hd.type, nghttp2_strerror(err));
    violation_on(what, frame->hd.stream_id);
    return 0;
}

static int
cs_invalid_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                  size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
    (void)ng;
    (void)name;
    (void)value;
    (void)valuelen;
    (void)flags;
    (void)arg;
    if (namelen == 0 && F.known)
        return 0;   /* the known case response_field let pass */
    violation_on("the client session finds a response field invalid", frame->hd.stream_id);
    return 0;
}

static void
check_client_session(void)
{
    if (F.cs == NULL || !F.pure || F.sink_over)
        return;
    ssize_t r = nghttp2_session_mem_recv(F.cs, (const uint8_t *)F.sink, F.sink_len);
    if (r < 0) {
        char what[160];
        snprintf(what, sizeof what, "the client session rejects what the server sent (%s)",
                 nghttp2_strerror((int)r));
        violation(what);
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
        fprintf(stderr, "fuzz_h2: config: %s\n", jerr.text);
        abort();
    }
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    if (rp_snapshot_build(root, &s, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "fuzz_h2: config: %s\n", errs.msgs[i]);
        abort();
    }
    rp_errs_free(&errs);
    json_decref(root);
    return s;
}

static const char config_a[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": {\"max_connections\": 64, \"max_header_bytes\": 1024, \"max_headers\": 8,"
    "   \"max_uri_bytes\": 64, \"max_body_bytes\": 64, \"h2_max_concurrent_streams\": 4},"
    " \"timeouts\": {\"client_header_ms\": 50000, \"client_idle_ms\": 51000, \"request_ms\": 52000,"
    "   \"upstream_connect_ms\": 53000, \"upstream_response_ms\": 54000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 2, \"idle_timeout_ms\": 55000}}},"
    " \"routes\": [{\"path_prefix\": \"/\", \"upstream\": \"app\"}],"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

static const char config_b[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": {\"max_connections\": 64, \"max_header_bytes\": 32768, \"max_headers\": 32,"
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

    if (nghttp2_session_callbacks_new(&F.gen_cbs) != 0 || nghttp2_option_new(&F.gen_opt) != 0)
        abort();
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(F.gen_cbs, cs_invalid_frame);
    nghttp2_session_callbacks_set_on_invalid_header_callback(F.gen_cbs, cs_invalid_header);
    /* More streams than a server allows before its SETTINGS arrive. */
    nghttp2_option_set_peer_max_concurrent_streams(F.gen_opt, 256);
    memset(g_big, 'b', sizeof g_big);

    F.dump = getenv("FUZZ_H2_DUMP") != NULL;
    F.known = getenv("FUZZ_H2_KNOWN") != NULL;
    if (F.dump)
        rp_log_level = RP_LOG_DEBUG;
    F.sink = malloc(SINK_MAX);
    F.cbuf = malloc(CLIENT_MAX);
    if (F.sink == NULL || F.cbuf == NULL)
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

/* Time passes, for what the input asks. */
static void
time_passes(uint8_t o1)
{
    if ((o1 & 8) && F.ft != NULL && F.ft->write_pending && F.ft->write_timeout_ms > 0) {
        client_event(BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT);
        settle();
    }
    client_take();
    if (o1 & 1) {
        fire_h2(true);
        settle();
    }
    if (o1 & 2) {
        fire_h2(false);
        settle();
        fire_h2(false);
        settle();
    }
    if (o1 & 4) {
        fire_others();
        settle();
    }
    client_take();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t slices[8] = { 0, 1, 2, 3, 7, 16, 61, 256 };
    if (size < 5)
        return 0;
    uint8_t o0 = data[0], o1 = data[1], o2 = data[2];
    size_t plen = (size_t)data[3] | (size_t)data[4] << 8;
    const uint8_t *prog = data + 5;
    if (plen > size - 5)
        plen = size - 5;

    F.ft = NULL;
    F.tr_frees = 0;
    F.freed_pending = false;
    F.in_cleanup = F.client_gone = F.eof_due = F.eof_sent = F.reset_due = false;
    F.stall = (o0 & 16) != 0;
    F.silent = (o1 & 16) != 0;
    F.read_high = (o0 & 8) ? SMALL_HIGH : RP_RBUF_HIGH;
    F.sink_len = 0;
    F.sink_over = false;
    F.script = prog + plen;
    F.script_len = size - 5 - plen;
    F.script_pos = 0;
    F.nfwd = 0;
    F.nrec = 0;
    F.rec_over = false;
    F.nst = 0;
    F.st_over = false;
    F.ngen = 0;
    F.nb = 0;
    F.fed = 0;
    F.clen = 0;
    F.cs = NULL;
    F.goaway_raised = false;
    F.structured = (o2 & 1) != 0;
    F.pure = F.structured;
    F.gen_full = false;

    /* The client's bytes. */
    if (F.structured) {
        generate(prog, plen);
    } else {
        memcpy(F.cbuf, RP_H2_PREFACE, RP_H2_PREFACE_LEN);
        memcpy(F.cbuf + RP_H2_PREFACE_LEN, prog, plen);
        F.clen = RP_H2_PREFACE_LEN + plen;
    }
    if (nghttp2_hd_inflate_new(&F.cinf) != 0 || nghttp2_hd_inflate_new(&F.rinf) != 0)
        abort();
    walk_client();
    F.ids_ok = ids_distinct();
    if (F.dump)
        dump_frames("client", F.cbuf, F.clen, RP_H2_PREFACE_LEN);

    rp_snapshot_t *snap = F.snaps[o0 >> 7];
    F.w.snap = snap;
    unsigned refs = atomic_load(&snap->refs);
    unsigned active = atomic_load(&rp_active_conns);

    /* Accepted, counted as the worker counts it, and handed over. */
    F.ft = fake_new((o1 & 32) != 0);
    rp_peer_t peer = { .text = "192.0.2.7:40000", .ip = "192.0.2.7" };
    atomic_fetch_add(&rp_active_conns, 1);
    F.w.nconns++;
    rp_metrics_conn_opened(F.w.id);
    size_t clen = F.clen;
    size_t slice = slices[o0 & 7];
    if (slice == 0 || slice > clen)
        slice = clen;
    if (clen > 0 && (clen + slice - 1) / slice > MAX_SLICES)
        slice = (clen + MAX_SLICES - 1) / MAX_SLICES;
    size_t off = 0;
    if ((o1 & 128) && clen > 0) {
        size_t n = slice < F.read_high ? slice : F.read_high;
        evbuffer_add(F.ft->tr.in, F.cbuf, n);
        batch_add(0);
        F.fed = off = n;
    }
    rp_h2_new(&F.w, &F.ft->tr, &peer);
    if (F.h2_timer_fn == NULL) {
        /* Only the first timer is armed yet: learn its callback. */
        timers_t t;
        timers_list(&t);
        for (size_t i = 0; i < t.n; i++)
            if (event_get_callback_arg(t.ev[i]) == the_h2())
                F.h2_timer_fn = event_get_callback(t.ev[i]);
    }
    pump();
    if (F.nb > 0)
        batch_done();   /* the bytes handed over are parsed by now */

    /* The client's bytes, slice by slice. */
    bool ends = (o0 & 32) == 0, reset = (o0 & 64) != 0, late = (o1 & 64) != 0;
    bool ended = false;
    for (unsigned stuck = 0; off < clen && F.ft != NULL && stuck < 3;) {
        size_t n = clen - off < slice ? clen - off : slice;
        size_t got = client_send(F.cbuf + off, n);
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
    settle();
    if (late)
        time_passes(o1);
    if (ends && !ended) {
        finish_client(reset);
        settle();
    }
    if (!late)
        time_passes(o1);
    settle();
    if (ends && the_h2() != NULL)
        violation("an HTTP/2 connection still open after its client closed");

    if (F.dump) {
        fprintf(stderr, "fuzz_h2: %zu of %zu client bytes taken in %zu reads; connection %s; "
                "script at %zu of %zu\n", F.fed, clen, F.nb, the_h2() == NULL ? "closed" : "open",
                F.script_pos, F.script_len);
        for (backend_conn_t *b = LIST_FIRST(&F.backends); b != NULL; b = LIST_NEXT(b, link))
            fprintf(stderr, "fuzz_h2: backend connection in state %d, %zu of %zu sent\n",
                    (int)b->state, b->off, b->len);
    }

    /* Whatever is left is freed as a stopping worker frees it. */
    F.in_cleanup = true;
    rp_h2_t *h;
    while ((h = the_h2()) != NULL)
        rp_h2_stop(h);
    rp_conn_t *c;
    while ((c = TAILQ_FIRST(&F.w.conns)) != NULL)
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
    if (!TAILQ_EMPTY(&F.w.conns) || !TAILQ_EMPTY(&F.w.h2s) || F.w.nconns != 0
        || atomic_load(&rp_active_conns) != active)
        violation("a connection is still counted");
    if (atomic_load(&snap->refs) != refs)
        violation("a transaction or a session still holds the snapshot");

    if (F.dump)
        dump_frames("server", (const uint8_t *)F.sink, F.sink_len, 0);
    check_output();
    check_client_session();
    check_streams();

    if (F.cs != NULL)
        nghttp2_session_del(F.cs);
    F.cs = NULL;
    nghttp2_hd_inflate_del(F.cinf);
    nghttp2_hd_inflate_del(F.rinf);
    F.cinf = F.rinf = NULL;
    streams_free();
    return 0;
}
