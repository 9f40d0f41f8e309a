/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the WebSocket tunnel (src/ws.c) behind an HTTP/1
 * client connection, end to end.  The client's bytes go in through the
 * in-memory transport of harness.c; the backend is a real listening
 * socket on 127.0.0.1 served on the worker's event base.  The handshake
 * is always a valid one: the target sends an upgrade request on a route
 * with "websocket": true and the backend answers it with a valid 101
 * (Sec-WebSocket-Accept computed here), so that the inputs spend their
 * bytes on frames.  Then the client's frames and the backend's frames go
 * through the tunnel as the input orders them, and time passes only when
 * the input asks: a timer fired has the clock revproxy reads (rp_now_us)
 * moved on to its deadline first, so that the idle ping and the idle
 * close are reached too.  The client transport gives the end of its
 * input again each time reading is turned back on, as a socket does.  The
 * loop runs pass by pass (event_base_loop), so that one that spins is
 * caught.  Both are wrapped at link time: run.sh links this target with
 * -Wl,--wrap=rp_now_us,--wrap=event_base_loop.
 *
 * Input:
 *   byte 0, the client:
 *     bits 0-2  its frame bytes arrive in slices of: all, 1, 2, 3, 7, 16,
 *               61 or 256 bytes (never more than 256 slices)
 *     bit 3     the transport stops reading at 64 buffered bytes
 *     bit 4     slow client: output stays queued until the client takes
 *               it, once per step
 *     bit 5     the client neither closes nor resets at the end
 *     bit 6     the client resets the connection at the end (else it
 *               half-closes: end of input)
 *     bit 7     configuration B (websocket.max_message_bytes 64, idle
 *               timeout 2 s) instead of A (4096, 60 s)
 *   byte 1, time and the ends:
 *     bits 0-1  at the end, this many timers fire (each time the earliest
 *               one pending, the clock moved on to its deadline)
 *     bit 2     one timer fires that way right after the 101, before any
 *               frame
 *     bit 3     client write timeout at the end, if output is waiting
 *               (slow client) and the tunnel set one
 *     bit 4     the worker drains at the end (tunnels told to go away)
 *     bit 5     the client closes (or resets) only once everything else
 *               has happened (else right after its last bytes)
 *     bits 6-7  what the backend does after its last frame: 0 nothing
 *               (the connection stays open), 1 close, 2 reset, 3
 *               half-close
 *   byte 2, the frames:
 *     bits 0-1  the backend's frames go out in slices of: all, 1, 7 or 64
 *               bytes (one slice per step, the loop run after each)
 *     bits 2-3  the order: 0 the client's frames, then the backend's; 1
 *               the backend's, then the client's; 2 one frame of each in
 *               turn, the client first; 3 the backend's frames go in the
 *               same write as its 101, then the client's
 *     bit 4     the client's frames go in the same read as the request,
 *               before the 101
 *     bit 5     the client's section is raw: sent exactly as it is
 *     bit 6     the backend's section is raw
 *     bit 7     masking may be wrong: a frame whose record asks for it
 *               (below) goes unmasked from the client, masked from the
 *               backend
 *   byte 3, the extension and how much:
 *     bit 0     the client offers permessage-deflate
 *     bits 1-3  the backend's frames are written 1, 2, 4, ... 128 times
 *               over, one copy after another (as many whole copies as
 *               fit in 512 KiB)
 *     bits 4-6  the client's frames likewise (16 KiB at most with the
 *               64-byte read watermark, 512 KiB at most either way)
 *     bit 7     the backend agrees to permessage-deflate (when offered):
 *               RSV1 may then mark a message (it is relayed as it is,
 *               compressed or not)
 *   bytes 4-5: n, little-endian; the next n bytes (fewer if the input ends
 *     first) are the client's section, the rest the backend's.
 *   A section that is not raw is a sequence of frame records, each
 *     1 byte    the frame's first byte as is (FIN, RSV1-3, opcode)
 *     1 byte    bits 0-6 the length field as is (126: 2 bytes of length
 *               follow, 127: 8 bytes, as is, big-endian); bit 7 asks for
 *               wrong masking (with byte 2 bit 7)
 *     bytes     the extended length, if any, then the payload: as many
 *               bytes as the length says, or what is left
 *   from which the target writes the frame: masked by the client (with a
 *   key of its own, the payload given unmasked), unmasked by the backend.
 *
 * Checks (abort() on failure), beyond ASan, UBSan and LeakSanitizer:
 *   - the backend receives the upgrade request with the client's key,
 *     Upgrade: websocket and Sec-WebSocket-Version: 13, on one connection;
 *   - whatever the client gets starts with a 101 carrying the right
 *     Sec-WebSocket-Accept, and Sec-WebSocket-Extensions: permessage-deflate
 *     exactly when the backend agreed to it;
 *   - what follows the 101, and what the backend receives after the
 *     request, are well-formed frames: no RSV bit (but RSV1 on the first
 *     frame of a message when permessage-deflate was agreed), known
 *     opcodes, lengths in their shortest form, control frames whole and
 *     at most 125 bytes, unmasked towards the client and
 *     masked towards the backend, continuations only inside a message and
 *     no new message inside one, nothing at all after a Close, and a
 *     Close with no payload or a code one may send (1000-1003, 1007-1014,
 *     3000-4999) and a UTF-8 reason: the other side's Close relayed, the
 *     receiver's own answered, or one with a code of the proxy's own
 *     (1001, 1002, 1007, 1009, 1011);
 *   - the data messages each side receives are the other side's data
 *     messages, in order, from the first on: the same opcode, RSV1 and
 *     bytes, a message received whole only if it was sent whole, one cut
 *     short only as a prefix of what was sent (frames may be cut
 *     differently);
 *   - text messages received are UTF-8 (a message cut short: a valid
 *     start; one with RSV1 is compressed and not looked at), and no
 *     message received is over max_message_bytes;
 *   - pings received are the proxy's own ("revproxy", the idle check) and
 *     pongs received answer a ping of the receiver's: neither side's
 *     control frames reach the other;
 *   - when the proxy closes the client connection on its own with nothing
 *     left queued while the client is still there (it neither reset, nor
 *     half-closed, nor timed out), the client's bytes end at the end of a
 *     frame and the last frame is a Close; and when it closes the
 *     backend's connection cleanly while the backend keeps it open, the
 *     backend's bytes too;
 *   - no run of the loop spins: a descriptor that stays ready pass after
 *     pass (2000 passes) when nothing else is left to do;
 *   - the loop settles, and at the end (the tunnel and what is left freed
 *     as a stopping worker frees them) the transport was freed exactly
 *     once, no connection is counted and the snapshot's references are
 *     back (harness.c).
 *
 * With FUZZ_WS_DUMP set in the environment, debug lines, the state at the
 * end and what each side received are printed.
 */
#include "config.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "conn.h"
#include "worker.h"
#include "ws.h"
#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY       "dGhlIHNhbXBsZSBub25jZQ=="
#define HEAD_MAX  8192            /* the forwarded request head, at most */
#define MAX_A     4096u           /* websocket.max_message_bytes of configuration A */
#define MAX_B     64u             /* and of B */

#define REQUEST(ext) \
    "GET /ws/chat HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n" ext "\r\n"
static const char request[] = REQUEST("");
static const char request_deflate[] =
    REQUEST("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
#define MAX_REPEAT_BYTES (512u * 1024u)   /* a side's frames, repeated, at most */
#define MAX_TURNS        256u                /* turns of order 2, at most */
#define SPIN_PASSES      2000                /* passes of one non-blocking loop run, at most */

static char accept_value[32];   /* what the 101 must carry for KEY */

/* ---- the clock revproxy reads ---- */

uint64_t __real_rp_now_us(void);
uint64_t __wrap_rp_now_us(void);

static uint64_t skew_us;   /* how far time has been moved on; it never goes back */

uint64_t
__wrap_rp_now_us(void)
{
    return __real_rp_now_us() + skew_us;
}

/* ---- the event loop, pass by pass ---- */

int __real_event_base_loop(struct event_base *base, int flags);
int __wrap_event_base_loop(struct event_base *base, int flags);

static unsigned long loop_passes_max;   /* the most passes one run took */

/* Counts the descriptors the loop waits on that are ready now. */
static int
count_ready(const struct event_base *base, const struct event *ev, void *arg)
{
    (void)base;
    short what = event_get_events(ev) & (EV_READ | EV_WRITE);
    evutil_socket_t fd = event_get_fd(ev);
    if (fd < 0 || what == 0 || (what = (short)event_pending(ev, what, NULL)) == 0)
        return 0;
    struct pollfd p = { .fd = fd, .events = (short)((what & EV_READ ? POLLIN : 0)
                                                    | (what & EV_WRITE ? POLLOUT : 0)) };
    if (poll(&p, 1, 0) == 1 && p.revents != 0)
        ++*(unsigned *)arg;
    return 0;
}

/* A non-blocking run of the loop (harness.c's pump) goes on for as long
 * as each pass finds something to do: one descriptor that stays ready
 * pass after pass keeps it there for ever, a worker burning its CPU.  So
 * it runs pass by pass here, until nothing is ready, SPIN_PASSES passes
 * at most. */
int
__wrap_event_base_loop(struct event_base *base, int flags)
{
    if (flags != EVLOOP_NONBLOCK)
        return __real_event_base_loop(base, flags);
    for (unsigned long pass = 1;; pass++) {
        int r = __real_event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        unsigned ready = 0;
        event_base_foreach_event(base, count_ready, &ready);
        bool idle = ready == 0 && event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) == 0;
        if (r != 0 || idle) {
            if (pass > loop_passes_max)
                loop_passes_max = pass;
            return r;
        }
        if (pass == SPIN_PASSES)
            violation("the event loop spins: a descriptor stays ready pass after pass");
    }
}

/* ---- violations ---- */

static void violationf(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void
violationf(const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    violation(what);
}

/* ---- growing byte buffers (kept from one input to the next) ---- */

typedef struct bytes {
    uint8_t *p;
    size_t   len, cap;
} bytes_t;

static void
bytes_put(bytes_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    if (n > 0 && p != NULL)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- UTF-8, as RFC 3629 has it ---- */

typedef struct utf8 {
    uint8_t need;      /* continuation bytes still expected */
    uint8_t lo, hi;    /* the range of the next one */
    bool    bad;
} utf8_t;

static void
utf8_feed(utf8_t *u, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && !u->bad; i++) {
        uint8_t c = p[i];
        if (u->need > 0) {
            if (c < u->lo || c > u->hi) {
                u->bad = true;
                break;
            }
            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            continue;
        }
        u->lo = 0x80;
        u->hi = 0xbf;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) {
            u->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            u->need = 2;
            if (c == 0xe0)
                u->lo = 0xa0;    /* no overlong form */
            else if (c == 0xed)
                u->hi = 0x9f;    /* no surrogate */
        } else if (c >= 0xf0 && c <= 0xf4) {
            u->need = 3;
            if (c == 0xf0)
                u->lo = 0x90;
            else if (c == 0xf4)
                u->hi = 0x8f;    /* nothing past U+10FFFF */
        } else {
            u->bad = true;
        }
    }
}

static bool
utf8_valid(const uint8_t *p, size_t n)
{
    utf8_t u = { 0 };
    utf8_feed(&u, p, n);
    return !u.bad && u.need == 0;
}

/* ---- frames ---- */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* A frame header as it is on the wire. */
typedef struct fhead {
    bool     fin, masked;
    uint8_t  rsv, op, code;   /* code: the 7-bit length field */
    size_t   size;            /* the header's bytes, mask key included */
    uint64_t len;
    uint8_t  key[4];
} fhead_t;

/* The header at p[0, n): false when it is not all there. */
static bool
fhead_read(const uint8_t *p, size_t n, fhead_t *h)
{
    if (n < 2)
        return false;
    h->fin = (p[0] & 0x80) != 0;
    h->rsv = (p[0] >> 4) & 7;
    h->op = p[0] & 15;
    h->masked = (p[1] & 0x80) != 0;
    h->code = p[1] & 0x7f;
    size_t ext = h->code == 126 ? 2 : h->code == 127 ? 8 : 0;
    h->size = 2 + ext + (h->masked ? 4 : 0);
    if (n < h->size)
        return false;
    h->len = h->code;
    if (ext > 0) {
        h->len = 0;
        for (size_t i = 0; i < ext; i++)
            h->len = h->len << 8 | p[2 + i];
    }
    if (h->masked)
        memcpy(h->key, p + 2 + ext, 4);
    return true;
}

static bool
is_control(uint8_t op)
{
    return op >= 8;
}

static bool
known_op(uint8_t op)
{
    return op <= 2 || (op >= 8 && op <= 10);
}

/* Whether the length is written in its shortest form (and fits 63 bits). */
static bool
length_minimal(const fhead_t *h)
{
    if (h->code == 126)
        return h->len >= 126;
    if (h->code == 127)
        return h->len >= 65536 && (h->len >> 63) == 0;
    return true;
}

/* The frames of one side: as written (wire), where each ends (for the
 * turns of byte 2's order 2), and the data messages in them as the other
 * side of the tunnel should receive them. */
typedef struct msg {
    uint8_t op;
    bool    fin;          /* sent whole */
    bool    rsv1;         /* marked RSV1 (compressed) */
    size_t  off, len;     /* its payload in the side's data */
} msg_t;

typedef struct side_in {
    bytes_t  wire;
    size_t  *ends;
    size_t   nends, ends_cap;
    msg_t   *msgs;
    size_t   nmsgs, msgs_cap;
    bytes_t  data;        /* the messages' payloads, unmasked, one after another */
    bytes_t  pings;       /* the payloads of its pings, each behind its length byte */
    bool     has_close;   /* its first Close, whole: */
    uint8_t  close[125];  /* the payload, unmasked */
    size_t   close_len;
} side_in_t;

static side_in_t CS, BS;   /* the client's and the backend's */

static void
side_reset(side_in_t *s)
{
    s->wire.len = 0;
    s->nends = 0;
    s->nmsgs = 0;
    s->data.len = 0;
    s->pings.len = 0;
    s->has_close = false;
}

static void
add_end(side_in_t *s, size_t end)
{
    if (s->nends == s->ends_cap) {
        s->ends_cap = s->ends_cap ? s->ends_cap * 2 : 64;
        s->ends = realloc(s->ends, s->ends_cap * sizeof *s->ends);
        if (s->ends == NULL)
            abort();
    }
    s->ends[s->nends++] = end;
}

static msg_t *
add_msg(side_in_t *s, uint8_t op)
{
    if (s->nmsgs == s->msgs_cap) {
        s->msgs_cap = s->msgs_cap ? s->msgs_cap * 2 : 64;
        s->msgs = realloc(s->msgs, s->msgs_cap * sizeof *s->msgs);
        if (s->msgs == NULL)
            abort();
    }
    msg_t *m = &s->msgs[s->nmsgs++];
    *m = (msg_t){ .op = op, .off = s->data.len };
    return m;
}

/* The frames written times over, one copy after another (whole copies,
 * max bytes at most). */
static void
repeat_wire(bytes_t *w, unsigned times, size_t max)
{
    size_t base = w->len;
    if (base == 0 || times < 2)
        return;
    if ((size_t)times > max / base)
        times = (unsigned)(max / base);
    if (times < 2)
        return;
    bytes_put(w, NULL, base * (times - 1));   /* room first: the copies come from w itself */
    for (unsigned i = 1; i < times; i++)
        memcpy(w->p + base * i, w->p, base);
}

/* Where turn i of a side ends (order 2): frame by frame, or, with more
 * frames than MAX_TURNS, as many frames a turn as it takes. */
static size_t
turn_end(const side_in_t *s, size_t i)
{
    if (s->nends <= MAX_TURNS)
        return s->ends[i];
    size_t j = (i + 1) * s->nends / MAX_TURNS;
    return s->ends[j > 0 ? j - 1 : 0];
}

/* The frames of a section of records (header comment), masked by a
 * client, written into s->wire. */
static void
build_frames(side_in_t *s, const uint8_t *in, size_t n, bool client, bool wrong_ok)
{
    size_t i = 0;
    for (unsigned k = 0; i < n; k++) {
        uint8_t hdr[14];
        size_t h = 0;
        hdr[h++] = in[i++];
        if (i == n) {
            bytes_put(&s->wire, hdr, h);   /* a header cut short */
            return;
        }
        uint8_t b1 = in[i++];
        bool masked = client != (wrong_ok && (b1 & 0x80));
        uint8_t code = b1 & 0x7f;
        hdr[h++] = (uint8_t)((masked ? 0x80 : 0) | code);
        size_t ext = code == 126 ? 2 : code == 127 ? 8 : 0;
        uint64_t len = code;
        if (ext > 0) {
            if (n - i < ext) {
                bytes_put(&s->wire, hdr, h);
                bytes_put(&s->wire, in + i, n - i);
                return;
            }
            len = 0;
            for (size_t j = 0; j < ext; j++) {
                len = len << 8 | in[i];
                hdr[h++] = in[i++];
            }
        }
        uint8_t key[4] = { (uint8_t)(0x3c ^ k), 0xa5, (uint8_t)(0x5a + k), (uint8_t)(k >> 8) };
        if (masked) {
            memcpy(hdr + h, key, 4);
            h += 4;
        }
        bytes_put(&s->wire, hdr, h);
        size_t pl = len < n - i ? (size_t)len : n - i;
        for (size_t j = 0; j < pl; j++) {
            uint8_t c = in[i + j] ^ (masked ? key[j & 3] : 0);
            bytes_put(&s->wire, &c, 1);
        }
        i += pl;
    }
}

/* Reads s->wire: where each frame ends, and the data messages the other
 * side should receive.  Past the first frame the proxy must refuse (a
 * reserved opcode or RSV bit (RSV1 is one on a message's first frame when
 * permessage-deflate was agreed), the wrong masking, a length not in its
 * shortest form, a control frame fragmented or over 125 bytes, a
 * continuation outside a message or a new message inside one) or a
 * Close, no message counts: the proxy relays nothing from there on. */
static void
scan_frames(side_in_t *s, bool client, bool deflate)
{
    const uint8_t *p = s->wire.p;
    size_t n = s->wire.len, pos = 0;
    bool stopped = false;
    msg_t *open = NULL;
    while (pos < n) {
        fhead_t h;
        if (!fhead_read(p + pos, n - pos, &h)) {
            add_end(s, n);
            return;
        }
        size_t avail = n - pos - h.size;
        size_t pl = h.len < avail ? (size_t)h.len : avail;
        const uint8_t *payload = p + pos + h.size;
        if (h.op == OP_PING && pl == h.len && pl <= 125) {
            uint8_t l = (uint8_t)pl;
            bytes_put(&s->pings, &l, 1);
            for (size_t j = 0; j < pl; j++) {
                uint8_t c = payload[j] ^ (h.masked ? h.key[j & 3] : 0);
                bytes_put(&s->pings, &c, 1);
            }
        }
        if (h.op == OP_CLOSE && !s->has_close && pl == h.len && pl <= sizeof s->close) {
            s->has_close = true;
            s->close_len = pl;
            for (size_t j = 0; j < pl; j++)
                s->close[j] = payload[j] ^ (h.masked ? h.key[j & 3] : 0);
        }
        if (!stopped) {
            bool data_start = h.op == OP_TEXT || h.op == OP_BINARY;
            bool bad = (h.rsv & ~(deflate && data_start ? 4 : 0)) != 0 || h.masked != client
                       || !length_minimal(&h) || !known_op(h.op)
                       || (is_control(h.op) && (!h.fin || h.len > 125))
                       || (h.op == OP_CONT && open == NULL)
                       || ((h.op == OP_TEXT || h.op == OP_BINARY) && open != NULL);
            if (bad || h.op == OP_CLOSE) {
                stopped = true;
            } else if (!is_control(h.op)) {
                if (h.op != OP_CONT) {
                    open = add_msg(s, h.op);
                    open->rsv1 = (h.rsv & 4) != 0;
                }
                for (size_t j = 0; j < pl; j++) {
                    uint8_t c = payload[j] ^ (h.masked ? h.key[j & 3] : 0);
                    bytes_put(&s->data, &c, 1);
                }
                open = &s->msgs[s->nmsgs - 1];   /* the array may have moved */
                open->len += pl;
                if (pl == h.len && h.fin) {
                    open->fin = true;
                    open = NULL;
                }
            }
        }
        pos += h.size + pl;
        add_end(s, pos);
        if (pl < h.len)
            return;
    }
}

/* What a side received after the handshake, held to the rules (header
 * comment) and to the messages the other side sent. */
typedef struct rx_result {
    size_t whole;     /* bytes in whole frames */
    size_t frames;
    bool   close;     /* a Close came */
} rx_result_t;

static bool
close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* The codes the proxy closes with on its own account (src/ws.h). */
static bool
proxy_code(unsigned c)
{
    return c == RP_WS_GOING_AWAY || c == RP_WS_PROTOCOL || c == RP_WS_BAD_DATA
           || c == RP_WS_TOO_BIG || c == RP_WS_SERVER_ERROR;
}

/* Whether side s sent a ping with this payload. */
static bool
pinged(const side_in_t *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < s->pings.len; i += 1 + (size_t)s->pings.p[i])
        if (s->pings.p[i] == n && memcmp(s->pings.p + i + 1, p, n) == 0)
            return true;
    return false;
}

/* Whether a Close with this payload is side s's own first Close. */
static bool
same_close(const side_in_t *s, const uint8_t *p, size_t n)
{
    return s->has_close && s->close_len == n && memcmp(s->close, p, n) == 0;
}

static void
check_frames(const uint8_t *p, size_t n, bool masked, bool deflate, const side_in_t *from,
             const side_in_t *own, uint64_t max, const char *who, rx_result_t *res)
{
    static bytes_t pay;
    memset(res, 0, sizeof *res);
    size_t pos = 0, k = 0, got = 0;
    const msg_t *cur = NULL;   /* the message being received */
    utf8_t u = { 0 };
    while (pos < n) {
        if (res->close)
            violationf("%s bytes after a Close", who);
        fhead_t h;
        if (!fhead_read(p + pos, n - pos, &h))
            break;
        if ((h.rsv & 3) != 0 || ((h.rsv & 4) && !deflate))
            violationf("%s a frame with RSV bits %u", who, (unsigned)h.rsv);
        if ((h.rsv & 4) && h.op != OP_TEXT && h.op != OP_BINARY)
            violationf("%s RSV1 on a frame with opcode %u", who, (unsigned)h.op);
        if (!known_op(h.op))
            violationf("%s a frame with the reserved opcode %u", who, (unsigned)h.op);
        if (h.masked != masked)
            violationf("%s a frame %s", who, masked ? "unmasked" : "masked");
        if (!length_minimal(&h))
            violationf("%s a frame length not in its shortest form", who);
        if (is_control(h.op) && (!h.fin || h.len > 125))
            violationf("%s a control frame fragmented or over 125 bytes", who);
        if (n - pos - h.size < h.len)
            break;   /* the last frame, cut short */
        size_t len = (size_t)h.len;
        pay.len = 0;
        bytes_put(&pay, p + pos + h.size, len);
        if (h.masked)
            for (size_t j = 0; j < len; j++)
                pay.p[j] ^= h.key[j & 3];
        switch (h.op) {
        case OP_TEXT:
        case OP_BINARY:
            if (cur != NULL)
                violationf("%s a new message inside a fragmented one", who);
            if (k >= from->nmsgs)
                violationf("%s message %zu, which was never sent", who, k);
            cur = &from->msgs[k++];
            if (cur->op != h.op)
                violationf("%s message %zu with opcode %u, sent with %u", who, k - 1,
                           (unsigned)h.op, (unsigned)cur->op);
            if (cur->rsv1 != ((h.rsv & 4) != 0))
                violationf("%s message %zu with RSV1 %s", who, k - 1,
                           cur->rsv1 ? "cleared" : "set");
            got = 0;
            memset(&u, 0, sizeof u);
            /* fall through */
        case OP_CONT:
            if (cur == NULL)
                violationf("%s a continuation frame outside a message", who);
            if (got + len > cur->len || memcmp(from->data.p + cur->off + got, pay.p, len) != 0)
                violationf("%s in message %zu bytes %zu to %zu other than those sent", who,
                           (size_t)(cur - from->msgs), got, got + len);
            got += len;
            if (got > max)
                violationf("%s message %zu over max_message_bytes (%zu bytes)", who,
                           (size_t)(cur - from->msgs), got);
            if (cur->op == OP_TEXT && !cur->rsv1) {
                utf8_feed(&u, pay.p, len);
                if (u.bad)
                    violationf("%s text message %zu that is not UTF-8", who,
                               (size_t)(cur - from->msgs));
            }
            if (h.fin) {
                if (!cur->fin || got != cur->len)
                    violationf("%s message %zu whole, of %zu bytes, sent as %zu bytes%s", who,
                               (size_t)(cur - from->msgs), got, cur->len,
                               cur->fin ? "" : " not whole");
                if (u.need != 0)
                    violationf("%s text message %zu ending inside a character", who,
                               (size_t)(cur - from->msgs));
                cur = NULL;
            }
            break;
        case OP_CLOSE:
            if (len == 1)
                violationf("%s a Close with a one-byte payload", who);
            if (len >= 2) {
                unsigned code = (unsigned)pay.p[0] << 8 | pay.p[1];
                if (!close_code_ok(code))
                    violationf("%s a Close with the code %u", who, code);
                if (!utf8_valid(pay.p + 2, len - 2))
                    violationf("%s a Close whose reason is not UTF-8", who);
                /* The other side's Close relayed, its own answered, or
                 * the proxy's. */
                if (!proxy_code(code) && !same_close(from, pay.p, len)
                    && !same_close(own, pay.p, len))
                    violationf("%s a Close with the code %u, neither the other side's, nor its"
                               " own, nor one of the proxy's", who, code);
            }
            res->close = true;
            break;
        case OP_PING:
            /* The proxy's own (the idle check); the other side's stay on
             * their side. */
            if (len != 8 || memcmp(pay.p, "revproxy", 8) != 0)
                violationf("%s a ping that is not the proxy's", who);
            break;
        case OP_PONG:
            /* The answer to one of its own pings; the other side's pongs
             * stay on their side too. */
            if (!pinged(own, pay.p, len))
                violationf("%s a pong that answers none of its pings", who);
            break;
        default:
            break;
        }
        pos += h.size + len;
        res->whole = pos;
        res->frames++;
    }
}

/* ---- the backend ---- */

static struct {
    struct evconnlistener *lst;
    unsigned   port;
    /* per input */
    struct bufferevent *bev;     /* the connection while it is open */
    unsigned   conns;            /* accepted */
    bool       head_done;        /* the request head came, the 101 went */
    bool       proxy_closed, proxy_reset;
    bool       ended;            /* its end action done */
    bytes_t    head;             /* the request head, while it comes */
    bytes_t    rx;               /* what came after the head */
    bool       offer;            /* the client offers permessage-deflate */
    bool       deflate;          /* the backend agrees to it */
    const uint8_t *with101;      /* frames sent with the 101 (order 3) */
    size_t     with101_len;
    size_t     sent;             /* of BS.wire */
} K;

static void
k_drop(bool reset)
{
    if (K.bev == NULL)
        return;
    if (reset) {
        struct linger lg = { 1, 0 };
        setsockopt(bufferevent_getfd(K.bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    bufferevent_free(K.bev);
    K.bev = NULL;
    H.progress++;
}

/* Whether the head holds the line "name: value" (the name in any case). */
static bool
head_has(const uint8_t *h, size_t n, const char *line)
{
    size_t l = strlen(line);
    for (size_t i = 0; i + l + 2 <= n; i++)
        if ((i == 0 || h[i - 1] == '\n') && strncasecmp((const char *)h + i, line, l) == 0
            && h[i + l] == '\r' && h[i + l + 1] == '\n')
            return true;
    return false;
}

static void
k_answer(void)
{
    const uint8_t *h = K.head.p;
    size_t n = K.head.len;
    static const char line[] = "GET /ws/chat HTTP/1.1\r\n";
    if (n < sizeof line - 1 || memcmp(h, line, sizeof line - 1) != 0)
        violation("the forwarded upgrade does not start with its request line");
    if (!head_has(h, n, "sec-websocket-key: " KEY))
        violation("the forwarded upgrade does not carry the client's key");
    if (!head_has(h, n, "upgrade: websocket"))
        violation("the forwarded upgrade has no Upgrade: websocket");
    if (!head_has(h, n, "sec-websocket-version: 13"))
        violation("the forwarded upgrade has no Sec-WebSocket-Version: 13");
    if (head_has(h, n, "sec-websocket-extensions: permessage-deflate; client_max_window_bits")
        != K.offer)
        violation(K.offer ? "the forwarded upgrade lost the client's permessage-deflate offer"
                          : "the forwarded upgrade offers an extension the client did not");
    char resp[256];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", accept_value,
                       K.deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    struct evbuffer *out = bufferevent_get_output(K.bev);
    evbuffer_add(out, resp, (size_t)len);
    if (K.with101 != NULL) {
        evbuffer_add(out, K.with101, K.with101_len);
        K.sent = K.with101_len;
    }
}

static void
k_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    H.progress++;
    if (!K.head_done) {
        /* The head, byte by byte up to its blank line (what follows is
         * frames). */
        uint8_t c;
        while (!K.head_done && evbuffer_remove(in, &c, 1) == 1) {
            bytes_put(&K.head, &c, 1);
            if (K.head.len > HEAD_MAX)
                violation("a forwarded upgrade head over 8 KiB");
            if (K.head.len >= 4 && memcmp(K.head.p + K.head.len - 4, "\r\n\r\n", 4) == 0) {
                K.head_done = true;
                k_answer();
            }
        }
    }
    uint8_t buf[4096];
    int n;
    while ((n = evbuffer_remove(in, buf, sizeof buf)) > 0)
        bytes_put(&K.rx, buf, (size_t)n);
}

static void
k_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)arg;
    if (what & BEV_EVENT_EOF)
        K.proxy_closed = true;
    else
        K.proxy_reset = true;
    k_drop(false);
}

static void
k_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    if (K.conns++ > 0)
        violation("a second backend connection for one upgrade");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    K.bev = bufferevent_socket_new(H.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (K.bev == NULL)
        abort();
    bufferevent_setcb(K.bev, k_read, NULL, k_event, NULL);
    bufferevent_enable(K.bev, EV_READ);
    H.progress++;
}

/* ---- one input's plan ---- */

typedef struct plan {
    /* byte 0 */
    unsigned client_sel;
    bool     small_high, stall, ends, reset, config_b;
    /* byte 1 */
    unsigned timers;
    bool     timer_early, wtimeout, drain, late;
    unsigned be_end;
    /* byte 2 */
    unsigned be_sel, order;
    bool     eager, craw, braw, wrong;
    /* byte 3 */
    bool     offer, deflate;
    unsigned brepeat, crepeat;
    /* the run */
    bytes_t  cbuf;           /* the request, then the client's frames */
    size_t   coff;           /* of cbuf, taken */
    size_t   cslice;
    bool     cended;         /* the client closed or reset */
    bool     wtimeout_fired;
    unsigned fired;          /* timers fired */
    size_t   req_len;        /* the request's bytes at the start of cbuf */
} plan_t;

static plan_t S;

/* A socket that reached the end of its input gives it again each time
 * reading is turned back on (rp_reader_enable reads, and reads 0): the
 * tunnel opened after the client's half-close learns of it that way. */
static void
eof_again(void)
{
    for (int i = 0; i < 4; i++) {
        fake_tr_t *ft = H.ft;
        if (ft == NULL || !H.eof_sent || H.client_gone || !ft->reading
            || evbuffer_get_length(ft->tr.in) >= H.read_high)
            return;
        client_event(BEV_EVENT_READING | BEV_EVENT_EOF);
        settle();
    }
}

/* The loop run until nothing moves, the end of input seen again if due. */
static void
step(void)
{
    settle();
    eof_again();
}

/* The client's bytes up to cbuf offset upto; it ends after its last byte
 * unless it waits (late) or never does. */
static void
client_to(size_t upto, size_t slice)
{
    bool last = upto == S.cbuf.len;
    bool end_now = last && S.ends && !S.late && !S.cended;
    if (client_feed(S.cbuf.p, upto, slice, &S.coff, end_now, S.reset)) {
        S.cended = true;
        eof_again();
    } else if (end_now && S.coff == upto) {
        step();
        finish_client(S.reset);
        S.cended = true;
    }
}

static void
backend_end(void)
{
    if (K.ended || K.bev == NULL)
        return;
    K.ended = true;
    step();   /* what it wrote is out before it closes */
    if (K.bev == NULL)
        return;
    switch (S.be_end) {
    case 1:
        k_drop(false);
        break;
    case 2:
        k_drop(true);
        break;
    case 3:
        shutdown(bufferevent_getfd(K.bev), SHUT_WR);
        H.progress++;
        break;
    default:
        break;
    }
    step();
}

/* The backend's frames up to wire offset upto, a slice per step; its end
 * action after the last. */
static void
backend_to(size_t upto)
{
    static const size_t slices[4] = { 0, 1, 7, 64 };
    if (!K.head_done)
        return;
    size_t slice = slices[S.be_sel];
    size_t total = BS.wire.len;
    if (slice == 0 || slice > total)
        slice = total;
    if (total > 0 && (total + slice - 1) / slice > 256)
        slice = (total + 255) / 256;
    while (K.sent < upto && K.bev != NULL) {
        size_t k = upto - K.sent < slice ? upto - K.sent : slice;
        bufferevent_write(K.bev, BS.wire.p + K.sent, k);
        K.sent += k;
        H.progress++;
        pump();
        client_take();
        client_end_try();
        eof_again();
    }
    if (K.sent == total)
        backend_end();
}

/* The earliest timer pending in the base. */
typedef struct pick {
    struct event  *ev;
    struct timeval at;
} pick_t;

static int
pick_timer(const struct event_base *base, const struct event *ev, void *arg)
{
    (void)base;
    pick_t *pk = arg;
    struct timeval at;
    if (!event_pending(ev, EV_TIMEOUT, &at))
        return 0;
    /* At the same time, the later one: a common timeout's own event
     * comes before the events of its queue. */
    if (pk->ev == NULL || !timercmp(&at, &pk->at, >)) {
        pk->ev = (struct event *)ev;
        pk->at = at;
    }
    return 0;
}

/* Time passes up to the earliest deadline: the clock moves on to it and
 * that timer fires. */
static void
fire_next(void)
{
    pick_t pk = { 0 };
    event_base_foreach_event(H.base, pick_timer, &pk);
    if (pk.ev == NULL)
        return;
    struct timeval now;
    evutil_gettimeofday(&now, NULL);
    if (timercmp(&pk.at, &now, >)) {
        struct timeval d;
        timersub(&pk.at, &now, &d);
        skew_us += (uint64_t)d.tv_sec * 1000000u + (uint64_t)d.tv_usec;
    }
    S.fired++;
    fire(pk.ev);
    step();
}

/* ---- set-up ---- */

static rp_snapshot_t *snaps[2];       /* the target's configurations A and B */
static rp_snapshot_t *harness_snaps[2];

static const char config_fmt[] =
    "{\"workers\": 1, \"listeners\": [{\"address\": \"127.0.0.1:1\"}],"
    " \"limits\": {\"max_connections\": 64},"
    " \"timeouts\": {\"client_header_ms\": 50000, \"client_idle_ms\": 51000, \"request_ms\": 52000,"
    "   \"upstream_connect_ms\": 53000, \"upstream_response_ms\": 54000},"
    " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:%u\"}],"
    "   \"pool\": {\"max_idle_per_backend\": 0}}},"
    " \"routes\": [{\"path_prefix\": \"/ws/\", \"upstream\": \"app\", \"websocket\": true}],"
    " \"websocket\": {\"max_message_bytes\": %u, \"idle_timeout_ms\": %u},"
    " \"log\": {\"level\": \"error\", \"access_log\": \"off\"}}";

static rp_snapshot_t *
ws_snapshot(unsigned max, unsigned idle_ms)
{
    char text[2048];
    snprintf(text, sizeof text, config_fmt, K.port, max, idle_ms);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "fuzz_ws: config: %s\n", jerr.text);
        abort();
    }
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    if (rp_snapshot_build(root, &s, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "fuzz_ws: config: %s\n", errs.msgs[i]);
        abort();
    }
    rp_errs_free(&errs);
    json_decref(root);
    H.w.snap = s;
    if (rp_modules_start(&H.w, s) != 0)
        abort();
    return s;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The harness's own configurations and backend go unused: this
     * target's route takes WebSocket and its backend speaks it. */
    harness_init("fuzz_ws", "FUZZ_WS_DUMP", "{}", "{}");
    TAILQ_INIT(&H.w.tunnels);
    TAILQ_INIT(&H.w.lingering);

    struct sockaddr_in sin = { .sin_family = AF_INET };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    K.lst = evconnlistener_new_bind(H.base, k_accept, NULL,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                                    64, (struct sockaddr *)&sin, sizeof sin);
    if (K.lst == NULL)
        abort();
    socklen_t slen = sizeof sin;
    if (getsockname(evconnlistener_get_fd(K.lst), (struct sockaddr *)&sin, &slen) != 0)
        abort();
    K.port = ntohs(sin.sin_port);

    harness_snaps[0] = H.snaps[0];
    harness_snaps[1] = H.snaps[1];
    snaps[0] = ws_snapshot(MAX_A, 60000);
    snaps[1] = ws_snapshot(MAX_B, 2000);
    H.snaps[0] = snaps[0];
    H.snaps[1] = snaps[1];

    /* Sec-WebSocket-Accept: base64(SHA-1(key GUID)), RFC 6455 4.2.2. */
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char both[sizeof KEY - 1 + sizeof guid];
    memcpy(both, KEY, sizeof KEY - 1);
    memcpy(both + sizeof KEY - 1, guid, sizeof guid);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)both, strlen(both), md);
    if (EVP_EncodeBlock((unsigned char *)accept_value, md, sizeof md) != 28)
        abort();
    return 0;
}

/* ---- checks at the end ---- */

/* The 101 at the start of what the client got; its length, or 0 when the
 * client got nothing. */
static size_t
check_head(void)
{
    if (H.sink_len == 0)
        return 0;
    static const char status[] = "HTTP/1.1 101 ";
    const uint8_t *s = (const uint8_t *)H.sink;
    if (H.sink_len < sizeof status - 1 || memcmp(s, status, sizeof status - 1) != 0)
        violation("the client got something other than a 101");
    size_t end = 0;
    for (size_t i = 0; i + 4 <= H.sink_len; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
            end = i + 4;
            break;
        }
    if (end == 0)
        violation("the client got a 101 head cut short");
    char line[64];
    snprintf(line, sizeof line, "sec-websocket-accept: %s", accept_value);
    if (!head_has(s, end, line))
        violation("the client got a 101 without the right Sec-WebSocket-Accept");
    if (head_has(s, end, "sec-websocket-extensions: permessage-deflate") != S.deflate)
        violation(S.deflate ? "the client got a 101 without the extension agreed to"
                            : "the client got a 101 with an extension not agreed to");
    return end;
}

static void
dump_end(void)
{
    fprintf(stderr, "fuzz_ws: client %zu of %zu bytes taken (%s); backend %zu of %zu frame bytes"
            " sent, %u connection(s)%s%s; %u timer(s) fired; %s\n",
            S.coff, S.cbuf.len, S.cended ? "ended" : "open", K.sent, BS.wire.len, K.conns,
            K.proxy_closed ? ", closed by the proxy" : "",
            K.proxy_reset ? ", reset by the proxy" : "", S.fired,
            TAILQ_EMPTY(&H.w.tunnels) ? "no tunnel" : "the tunnel open");
    fprintf(stderr, "fuzz_ws: the client sent %zu message(s), the backend %zu; the longest"
            " loop run so far took %lu passes\n", CS.nmsgs, BS.nmsgs, loop_passes_max);
}

/* The frames in p[0, n), one line each. */
static void
dump_frames(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "fuzz_ws: %s (%zu bytes):\n", what, n);
    size_t pos = 0;
    while (pos < n) {
        fhead_t h;
        if (!fhead_read(p + pos, n - pos, &h)) {
            fprintf(stderr, "  %zu bytes: a header cut short\n", n - pos);
            return;
        }
        size_t avail = n - pos - h.size;
        size_t pl = h.len < avail ? (size_t)h.len : avail;
        fprintf(stderr, "  %s op %u%s%s len %llu%s:", h.fin ? "FIN" : "   ", (unsigned)h.op,
                h.rsv ? " RSV" : "", h.masked ? " masked" : "", (unsigned long long)h.len,
                pl < h.len ? " (cut short)" : "");
        for (size_t j = 0; j < pl && j < 24; j++)
            fprintf(stderr, " %02x", p[pos + h.size + j] ^ (h.masked ? h.key[j & 3] : 0));
        fprintf(stderr, "%s\n", pl > 24 ? " ..." : "");
        pos += h.size + pl;
    }
}

/* ---- one input ---- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    bytes_t cbuf = S.cbuf;
    memset(&S, 0, sizeof S);
    S.cbuf = cbuf;
    uint8_t o0 = data[0], o1 = data[1], o2 = data[2];
    S.client_sel = o0 & 7;
    S.small_high = (o0 & 8) != 0;
    S.stall = (o0 & 16) != 0;
    S.ends = (o0 & 32) == 0;
    S.reset = (o0 & 64) != 0;
    S.config_b = (o0 & 128) != 0;
    S.timers = o1 & 3;
    S.timer_early = (o1 & 4) != 0;
    S.wtimeout = (o1 & 8) != 0;
    S.drain = (o1 & 16) != 0;
    S.late = (o1 & 32) != 0;
    S.be_end = o1 >> 6;
    S.be_sel = o2 & 3;
    S.order = (o2 >> 2) & 3;
    S.eager = (o2 & 16) != 0;
    S.craw = (o2 & 32) != 0;
    S.braw = (o2 & 64) != 0;
    S.wrong = (o2 & 128) != 0;
    uint8_t o3 = data[3];
    S.offer = (o3 & 1) != 0;
    S.deflate = S.offer && (o3 & 128) != 0;
    S.brepeat = 1u << ((o3 >> 1) & 7);
    S.crepeat = 1u << ((o3 >> 4) & 7);
    size_t clen = (size_t)data[4] | (size_t)data[5] << 8;
    const uint8_t *csec = data + 6;
    if (clen > size - 6)
        clen = size - 6;
    const uint8_t *bsec = csec + clen;
    size_t blen = size - 6 - clen;

    /* Both sides' frames, and the messages in them. */
    side_reset(&CS);
    side_reset(&BS);
    if (S.craw)
        bytes_put(&CS.wire, csec, clen);
    else
        build_frames(&CS, csec, clen, true, S.wrong);
    if (S.braw)
        bytes_put(&BS.wire, bsec, blen);
    else
        build_frames(&BS, bsec, blen, false, S.wrong);
    /* 64 bytes a read: a client's 16 KiB take 256 reads already. */
    repeat_wire(&CS.wire, S.crepeat, S.small_high ? SMALL_HIGH * 256u : MAX_REPEAT_BYTES);
    repeat_wire(&BS.wire, S.brepeat, MAX_REPEAT_BYTES);
    scan_frames(&CS, true, S.deflate);
    scan_frames(&BS, false, S.deflate);
    S.req_len = S.offer ? sizeof request_deflate - 1 : sizeof request - 1;
    S.cbuf.len = 0;
    bytes_put(&S.cbuf, S.offer ? request_deflate : request, S.req_len);
    bytes_put(&S.cbuf, CS.wire.p, CS.wire.len);
    S.cslice = client_slice(S.client_sel, CS.wire.len);

    /* The backend, fresh. */
    k_drop(true);
    refuse_backlog(K.lst);
    K.conns = 0;
    K.head_done = K.proxy_closed = K.proxy_reset = K.ended = false;
    K.head.len = 0;
    K.rx.len = 0;
    K.sent = 0;
    K.with101 = S.order == 3 ? BS.wire.p : NULL;
    K.with101_len = BS.wire.len;
    K.offer = S.offer;
    K.deflate = S.deflate;

    harness_begin(S.config_b, S.stall, false, S.small_high, NULL, 0);
    rp_peer_t peer;
    harness_accept(false, &peer);
    peer.listener = H.w.snap->listeners[0].ident;
    if (rp_conn_new_transport(&H.w, &H.ft->tr, &peer) < 0)
        rp_worker_conn_closed(&H.w, peer.listener);
    pump();

    /* The upgrade: alone, or with all the client's frames behind it. */
    size_t first = S.eager ? S.cbuf.len : S.req_len;
    client_to(first, first);
    step();
    if (S.timer_early && !TAILQ_EMPTY(&H.w.tunnels))
        fire_next();

    /* The frames, in the input's order. */
    switch (S.order) {
    case 0:
        client_to(S.cbuf.len, S.cslice);
        backend_to(BS.wire.len);
        break;
    case 2:
        for (size_t i = 0; i < MAX_TURNS && (i < CS.nends || i < BS.nends); i++) {
            if (i < CS.nends)
                client_to(S.req_len + turn_end(&CS, i), S.cslice);
            if (i < BS.nends)
                backend_to(turn_end(&BS, i));
        }
        client_to(S.cbuf.len, S.cslice);
        backend_to(BS.wire.len);
        break;
    default:   /* 1, and 3 (the backend's frames went with its 101) */
        backend_to(BS.wire.len);
        client_to(S.cbuf.len, S.cslice);
        break;
    }
    step();
    if (S.ends && !S.cended) {
        finish_client(S.reset);
        S.cended = true;
    }
    step();

    /* What else happens, and time passing. */
    if (S.drain) {
        rp_ws_going_away_all(&H.w, false, 0);
        step();
    }
    if (S.wtimeout && H.ft != NULL && H.ft->write_pending && H.ft->write_timeout_ms > 0) {
        S.wtimeout_fired = true;
        client_event(BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT);
        step();
    }
    client_take();
    for (unsigned i = 0; i < S.timers; i++)
        fire_next();
    client_take();
    step();

    if (H.dump) {
        dump_end();
        harness_dump();
    }

    /* The end: the tunnel and its connection freed as a stopping worker
     * frees them, the backend's connection closed, then the rest
     * (harness_end). */
    H.in_cleanup = true;
    rp_ws_stop_all(&H.w);
    rp_conn_lingering_free(&H.w);
    H.in_cleanup = false;
    k_drop(true);
    harness_end();
    refuse_backlog(K.lst);

    /* What each side received. */
    bool clean = H.freed_by_proxy && !H.freed_reset && !H.freed_pending && !H.client_gone
                 && !H.eof_sent && !S.wtimeout_fired && !H.sink_over;
    if (H.dump) {
        fprintf(stderr, "fuzz_ws: transport freed by %s%s%s\n",
                H.freed_by_proxy ? "the proxy" : "the fuzzer", H.freed_reset ? " (reset)" : "",
                H.freed_pending ? " with output queued" : "");
        dump_frames("the backend received after the head", K.rx.p, K.rx.len);
        size_t h = 0;
        while (h + 4 <= H.sink_len && memcmp(H.sink + h, "\r\n\r\n", 4) != 0)
            h++;
        h = h + 4 <= H.sink_len ? h + 4 : H.sink_len;
        fprintf(stderr, "fuzz_ws: the client's head:\n");
        fwrite(H.sink, 1, h, stderr);
        dump_frames("the client received after its head", (const uint8_t *)H.sink + h,
                    H.sink_len - h);
    }
    uint64_t max = S.config_b ? MAX_B : MAX_A;
    size_t head = check_head();
    if (head > 0 && !H.sink_over) {
        rx_result_t r;
        check_frames((const uint8_t *)H.sink + head, H.sink_len - head, false, S.deflate, &BS,
                     &CS, max, "the client got", &r);
        if (clean && r.whole != H.sink_len - head)
            violation("a clean close in the middle of a frame");
        if (clean && !r.close)
            violation("the proxy closed the client connection without a Close");
    }
    if (K.head_done) {
        rx_result_t r;
        check_frames(K.rx.p, K.rx.len, true, S.deflate, &CS, &BS, max, "the backend got", &r);
        /* The proxy closed the backend's connection cleanly, the backend
         * keeping it open: a Close came last, whole. */
        if (K.proxy_closed && S.be_end == 0 && (r.whole != K.rx.len || !r.close))
            violation("the proxy closed the backend connection without a Close");
    }
    return 0;
}
