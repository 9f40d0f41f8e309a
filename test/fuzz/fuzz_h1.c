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
 * input asks for them.  The transport, the backend, the loop, the checks of
 * what the backends receive and of a final response against the backend's
 * reply, and the end of an input are shared with fuzz_h2.c: harness.c.
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
 *     exactly one Host (not empty) and one X-Request-Id (a valid request
 *     id, as the proxy adopts a client's), at most one Content-Length,
 *     never both Content-Length and Transfer-Encoding, and a
 *     Transfer-Encoding only as "chunked" exactly.  The last request on a
 *     connection may be cut short (the proxy closes or resets a connection
 *     in the middle of a request body it gives up); a malformed one never
 *     passes;
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
 *   - the loop settles: it does not keep running (nor keep events active)
 *     while no backend has anything left to send;
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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>
#include "revproxy/txn.h"
#include "conn.h"
#include "h2.h"
#include "worker.h"
#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQS     4096         /* requests whose method and version are kept */

/* ---- what the target keeps (the transport, the backend and the loop are
 * harness.c's) ---- */

typedef struct req_info {
    bool head;    /* the method is HEAD */
    bool v10;     /* HTTP/1.0 */
} req_info_t;

/* The requests, as the client bytes parse. */
static struct {
    req_info_t     req[MAX_REQS];
    size_t         begun;
    bool           own_ids;       /* no X-Request-Id in the client bytes: ids are unique */
} F;

static rp_conn_t *
the_conn(void)
{
    return TAILQ_FIRST(&H.w.conns);
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

/* A final response the client got whole, when the request ids tell
 * requests apart: the proxy's own error answers of a request it never
 * forwards must not have been forwarded; anything else answers the one
 * reply taken for its request: same status, same body once de-chunked. */
static void
check_final(void)
{
    if (!F.own_ids || C.id_len == 0 || C.id_len > RID_MAX)
        return;
    C.id[C.id_len] = '\0';
    check_answer(&(answer_t){ .sid = -1, .status = C.status, .head = C.head, .rid = C.id,
                              .rid_len = C.id_len, .body = body_buf, .body_len = C.body_len });
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
    if (F.own_ids)
        mark_dups();
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &rs_settings);
    const char *data = H.sink, *end = H.sink + H.sink_len;
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
                     llhttp_errno_name(err), (size_t)(llhttp_get_error_pos(&parser) - H.sink));
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

/* The limits of configurations A and B (header comment, byte 0 bit 7);
 * the rest of each is harness.c's. */
static const char limits_a[] =
    "{\"max_connections\": 64, \"max_header_bytes\": 1024, \"max_headers\": 8,"
    " \"max_uri_bytes\": 64, \"max_body_bytes\": 64}";

static const char limits_b[] =
    "{\"max_connections\": 64, \"max_header_bytes\": 4096, \"max_headers\": 32,"
    " \"max_uri_bytes\": 1024, \"max_body_bytes\": 0}";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    harness_init("fuzz_h1", "FUZZ_H1_DUMP", limits_a, limits_b);
    llhttp_settings_init(&rq_settings);
    rq_settings.on_message_begin = rq_message_begin;
    rq_settings.on_method_complete = rq_method_complete;
    rq_settings.on_version_complete = rq_version_complete;
    rq_settings.on_headers_complete = rq_pause;
    rq_settings.on_message_complete = rq_pause;
    llhttp_settings_init(&rs_settings);
    rs_settings.on_message_begin = rs_message_begin;
    rs_settings.on_header_field = rs_header_field;
    rs_settings.on_header_field_complete = rs_header_field_complete;
    rs_settings.on_header_value = rs_header_value;
    rs_settings.on_header_value_complete = rs_header_value_complete;
    rs_settings.on_body = rs_body;
    rs_settings.on_headers_complete = rs_headers_complete;
    rs_settings.on_message_complete = rs_message_complete;
    return 0;
}

/* ---- one input ---- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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

    harness_begin((o0 & 128) != 0, (o0 & 16) != 0, (o1 & 32) != 0, (o0 & 8) != 0,
                  client + clen, size - 4 - clen);
    F.own_ids = !has_request_id(client, clen);
    size_t bound = record_requests(client, clen);

    /* Accepted, counted as the worker counts it. */
    rp_peer_t peer;
    harness_accept((o1 & 64) != 0, &peer);
    if (rp_conn_new_transport(&H.w, &H.ft->tr, &peer) < 0)
        rp_worker_conn_closed(&H.w, 0);
    pump();

    /* The client's bytes, slice by slice. */
    bool ends = (o0 & 32) == 0, reset = (o0 & 64) != 0, late = (o1 & 128) != 0;
    size_t off = 0;
    bool ended = client_feed(client, clen, client_slice(o0, clen), &off, ends && !late, reset);
    if (ends && !ended && off == clen) {
        settle();
        finish_client(reset);
    }
    settle();

    /* Time passes, for what the input asks. */
    if ((o1 & 16) && H.ft != NULL && H.ft->write_pending && H.ft->write_timeout_ms > 0) {
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
    if ((o1 & 8) && H.ft != NULL && H.ft->reading && H.ft->read_timeout_ms > 0) {
        client_event(BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
        settle();
    }
    client_take();

    if (H.dump) {
        rp_conn_t *c0 = the_conn();
        fprintf(stderr, "fuzz_h1: %zu of %zu client bytes taken; connection %s",
                off, clen, c0 == NULL ? "closed" : "open");
        if (c0 != NULL)
            fprintf(stderr, " in state %d, transaction %s", (int)c0->state,
                    c0->txn == NULL ? "none" : rp_txn_state_name(c0->txn->state));
        fputc('\n', stderr);
        harness_dump();
    }

    harness_end();
    bool whole = H.freed_by_proxy && !H.freed_reset && !H.freed_pending && !H.client_gone
                 && !H.sink_over;
    if (H.dump) {
        fprintf(stderr, "fuzz_h1: %zu requests begun; transport freed by %s%s; client output:\n",
                F.begun, H.freed_by_proxy ? "the proxy" : "the fuzzer",
                H.freed_reset ? " (reset)" : "");
        fwrite(H.sink, 1, H.sink_len, stderr);
        fputs("\nfuzz_h1: end of client output\n", stderr);
    }
    check_output(bound, whole);
    return 0;
}
