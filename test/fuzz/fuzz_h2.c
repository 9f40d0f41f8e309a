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
 * when the input asks for them.  The transport, the backend, the loop, the
 * checks of what the backends receive and of a final response against the
 * backend's reply, and the end of an input are shared with fuzz_h1.c:
 * harness.c.
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
 *     receives, is a valid request id; the DATA of a stream ended with
 *     END_STREAM add up to its content-length (none for HEAD, 204, 304);
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
 * input.  run.sh closes the target's stderr (the proxy's error lines).
 */
#include "config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include "revproxy/http.h"
#include "revproxy/log.h"
#include "h2.h"
#include "worker.h"
#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CLIENT_MAX   (128u << 10) /* client bytes made from one input, at most */
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

/* ---- what the target keeps (the transport, the backend and the loop are
 * harness.c's) ---- */

static struct {
    event_callback_fn      h2_timer_fn;   /* the callback of the connection's timer */
    nghttp2_session_callbacks *gen_cbs;
    nghttp2_option        *gen_opt;
    /* per input: the client bytes */
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
    nghttp2_hd_inflater *cinf, *rinf;
    uint8_t       *blk;           /* a header block being put together */
    size_t         blk_len, blk_cap;
} F;

/* ---- the reads of client bytes ---- */

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
        F.bcut[F.nb - 1] = H.ft == NULL || !H.ft->reading;
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
/* Around each read of client bytes (H.read_begin, H.read_end). */
static void
read_begin(size_t n)
{
    batch_add(F.fed);
    F.fed += n;
}

static void
read_end(void)
{
    batch_done();
}

/* ---- time ---- */


static rp_h2_t *
the_h2(void)
{
    return TAILQ_FIRST(&H.w.h2s);
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
    event_base_foreach_event(H.base, timers_cb, t);
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
    if (H.dump)
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
    if (H.dump)
        fprintf(stderr, "fuzz_h2:   < %.*s: %.*s\n", (int)nv->namelen, (const char *)nv->name,
                nv->valuelen > 80 ? 80 : (int)nv->valuelen, (const char *)nv->value);
    if (nv->namelen == 0)
        violation("a response field with an empty name");
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
    if (!rp_request_id_valid(hb.rid, hb.rid_len > RID_MAX ? 0 : hb.rid_len))
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
    const uint8_t *p = (const uint8_t *)H.sink, *end = p + H.sink_len;
    size_t nframes = 0;
    int32_t blk = 0;
    bool blk_es = false;
    bool goaway = false;
    uint32_t goaway_last = 0;
    unsigned acks = 0, pongs = 0;
    if (H.sink_over)
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
            if (goaway && last > goaway_last)
                violation("a GOAWAY that raises the last stream id");
            goaway = true;
            goaway_last = last;
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

/* A final response stream s got whole: no other stream's id, and see
 * check_answer. */
static void
check_final(const strm_t *s)
{
    if (s->rid_len == 0 || s->rid_len > RID_MAX)
        return;
    for (size_t i = 0; i < F.nst; i++)
        if (&F.st[i] != s && F.st[i].has_cid && strcmp(F.st[i].cid, s->rid) == 0)
            violation_on("a response carries the request id another stream gave", s->id);
    check_answer(&(answer_t){ .sid = s->id, .status = s->status, .head = s->head, .rid = s->rid,
                              .rid_len = s->rid_len, .body = s->body, .body_len = s->body_len });
}


static void
check_streams(void)
{
    if (!F.ids_ok)
        return;
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
    (void)namelen;
    (void)value;
    (void)valuelen;
    (void)flags;
    (void)arg;
    violation_on("the client session finds a response field invalid", frame->hd.stream_id);
    return 0;
}

static void
check_client_session(void)
{
    if (F.cs == NULL || !F.pure || H.sink_over)
        return;
    ssize_t r = nghttp2_session_mem_recv(F.cs, (const uint8_t *)H.sink, H.sink_len);
    if (r < 0) {
        char what[160];
        snprintf(what, sizeof what, "the client session rejects what the server sent (%s)",
                 nghttp2_strerror((int)r));
        violation(what);
    }
}

/* ---- set-up ---- */

/* The limits of configurations A and B (header comment, byte 0 bit 7);
 * the rest of each is harness.c's. */
static const char limits_a[] =
    "{\"max_connections\": 64, \"max_header_bytes\": 1024, \"max_headers\": 8,"
    " \"max_uri_bytes\": 64, \"max_body_bytes\": 64, \"h2_max_concurrent_streams\": 4}";

static const char limits_b[] =
    "{\"max_connections\": 64, \"max_header_bytes\": 32768, \"max_headers\": 32,"
    " \"max_uri_bytes\": 1024, \"max_body_bytes\": 0}";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    harness_init("fuzz_h2", "FUZZ_H2_DUMP", limits_a, limits_b);
    H.read_begin = read_begin;
    H.read_end = read_end;
    if (nghttp2_session_callbacks_new(&F.gen_cbs) != 0 || nghttp2_option_new(&F.gen_opt) != 0)
        abort();
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(F.gen_cbs, cs_invalid_frame);
    nghttp2_session_callbacks_set_on_invalid_header_callback(F.gen_cbs, cs_invalid_header);
    /* More streams than a server allows before its SETTINGS arrive. */
    nghttp2_option_set_peer_max_concurrent_streams(F.gen_opt, 256);
    memset(g_big, 'b', sizeof g_big);
    F.cbuf = malloc(CLIENT_MAX);
    if (F.cbuf == NULL)
        abort();
    return 0;
}

/* ---- one input ---- */

/* Time passes, for what the input asks. */
static void
time_passes(uint8_t o1)
{
    if ((o1 & 8) && H.ft != NULL && H.ft->write_pending && H.ft->write_timeout_ms > 0) {
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
    if (size < 5)
        return 0;
    uint8_t o0 = data[0], o1 = data[1], o2 = data[2];
    size_t plen = (size_t)data[3] | (size_t)data[4] << 8;
    const uint8_t *prog = data + 5;
    if (plen > size - 5)
        plen = size - 5;

    harness_begin((o0 & 128) != 0, (o0 & 16) != 0, (o1 & 16) != 0, (o0 & 8) != 0,
                  prog + plen, size - 5 - plen);
    F.nst = 0;
    F.st_over = false;
    F.ngen = 0;
    F.nb = 0;
    F.fed = 0;
    F.clen = 0;
    F.cs = NULL;
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
    if (H.dump)
        dump_frames("client", F.cbuf, F.clen, RP_H2_PREFACE_LEN);

    /* Accepted, counted as the worker counts it, and handed over. */
    rp_peer_t peer;
    harness_accept((o1 & 32) != 0, &peer);
    size_t clen = F.clen;
    size_t slice = client_slice(o0, clen);
    size_t off = 0;
    if ((o1 & 128) && clen > 0) {
        size_t n = slice < H.read_high ? slice : H.read_high;
        evbuffer_add(H.ft->tr.in, F.cbuf, n);
        batch_add(0);
        F.fed = off = n;
    }
    rp_h2_new(&H.w, &H.ft->tr, &peer);
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
    bool ended = client_feed(F.cbuf, clen, slice, &off, ends && !late, reset);
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

    if (H.dump) {
        fprintf(stderr, "fuzz_h2: %zu of %zu client bytes taken in %zu reads; connection %s\n",
                F.fed, clen, F.nb, the_h2() == NULL ? "closed" : "open");
        harness_dump();
    }

    harness_end();
    if (H.dump)
        dump_frames("server", (const uint8_t *)H.sink, H.sink_len, 0);
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
