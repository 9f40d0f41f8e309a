/* SPDX-License-Identifier: MIT */
/*
 * What the libFuzzer targets fuzz_h1.c and fuzz_h2.c share (harness.c,
 * compiled into both by run.sh):
 *   - the worker they run on: one event base, a snapshot for each of the
 *     target's two configurations, the modules started;
 *   - the in-memory client transport: what the proxy writes is kept in
 *     H.sink (the slow client, the read watermark, EOF, the reset and the
 *     transport's timeouts as the input asks for them), and the client
 *     bytes go in slice by slice as reads would bring them;
 *   - the backend: a real listening socket on 127.0.0.1 whose connections
 *     answer with the replies of the input's script (the format is in the
 *     header comment of fuzz_h1.c), and the checks of what each backend
 *     connection receives: a sequence of well-formed HTTP/1.1 requests,
 *     each with one valid X-Request-Id (the checks are listed there too);
 *   - driving the loop (it must settle) and firing single timers;
 *   - a final response the client got whole, held to the backend reply
 *     taken for its request, and the proxy's own error answers held to
 *     the requests that reached a backend (check_answer);
 *   - the end of an input: whatever is left freed as a stopping worker
 *     frees it, the transport freed exactly once, nothing counted any
 *     more, the snapshot's references back to what they were.
 * A rule broken ends the process with abort(), its line starting with the
 * target's name.
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include "revproxy/config.h"
#include "revproxy/txn.h"
#include "transport.h"
#include "worker.h"

#define SINK_MAX     (1u << 20)   /* client output kept for the checks */
#define PUMP_MAX     1024         /* loop iterations per step, at most */
#define PUMP_QUIET   4            /* iterations without progress: settled */
#define SMALL_HIGH   64           /* read watermark of the small-watermark option */
#define MAX_SLICES   256          /* a slice size is raised to stay within this */
#define RID_MAX      64           /* longest X-Request-Id (as the proxy takes them) */
#define MAX_FWD      1024         /* request ids kept as the backends receive them */
#define MAX_REPLIES  1400         /* replies kept with the request they answer */
#define BODY_MAX     16384        /* bytes of one response body kept */

/* The client transport. */
typedef struct fake_tr {
    rp_transport_t tr;
    bool     reading;        /* rp_tr_read(tr, true) in force */
    bool     write_pending;  /* output left over by a flush (slow client) */
    bool     shut;
    size_t   lowat;
    unsigned read_timeout_ms, write_timeout_ms;
} fake_tr_t;

typedef struct harness {
    /* set once (harness_init) */
    const char        *name;          /* the target's, at the start of every line */
    struct event_base *base;
    rp_worker_t        w;
    rp_snapshot_t     *snaps[2];      /* configurations A and B */
    bool               dump;          /* the target's *_DUMP variable set */
    /* set by the target if it wants them: around each read of client bytes */
    void             (*read_begin)(size_t n);
    void             (*read_end)(void);
    /* per input */
    fake_tr_t         *ft;            /* the client transport while it lives */
    unsigned           tr_frees;
    bool               freed_reset, freed_by_proxy, freed_pending;
    bool               in_cleanup, client_gone, eof_due, eof_sent, reset_due;
    bool               stall, silent;
    size_t             read_high;
    unsigned long      progress;      /* bumped by anything that moves */
    char              *sink;          /* what the client got */
    size_t             sink_len;
    bool               sink_over;     /* more than SINK_MAX: not kept */
} harness_t;

extern harness_t H;

/* A rule broken: said through the sanitizers' report, which still reaches
 * the fuzzer's log when the target's stderr is closed.  violation_on
 * names an HTTP/2 stream (none when sid < 0). */
void violation(const char *what) __attribute__((noreturn));
void violation_on(const char *what, int32_t sid) __attribute__((noreturn));

/* Once, from LLVMFuzzerInitialize: name ("fuzz_h1") starts the lines
 * printed, dump_env is the variable that turns the dump on, limits_a and
 * limits_b are the "limits" objects (JSON) of configurations A and B. */
void harness_init(const char *name, const char *dump_env, const char *limits_a,
                  const char *limits_b);

/* Per input, first: configuration B (else A), the slow client, the
 * backend silent once the script is used up, the small read watermark,
 * and the backend script. */
void harness_begin(bool config_b, bool stall, bool silent, bool small_high,
                   const uint8_t *script, size_t script_len);
/* The client transport, accepted and counted as the worker counts it, and
 * the peer to hand over with it. */
void harness_accept(bool secure, rp_peer_t *peer);
/* The dump's lines on the script and the backend connections. */
void harness_dump(void);
/* Per input, last: whatever is left freed as a stopping worker frees it,
 * then the transport, the counts and the snapshot's references checked. */
void harness_end(void);

/* The slice size that option bits sel (0-7) choose for n client bytes. */
size_t client_slice(unsigned sel, size_t n);
/* The client bytes p[*off, n) in slices, the loop run after each; with
 * end, the client closes (or, with reset, resets) right after the last
 * byte is taken.  Returns whether it did. */
bool client_feed(const uint8_t *p, size_t n, size_t slice, size_t *off, bool end, bool reset);
/* An event on the client transport (a timeout, EOF, an error). */
void client_event(short what);
/* The slow client reads what waits for it: the write callback follows. */
void client_take(void);
/* The end of input, or the reset, is seen once reading can see it. */
void client_end_try(void);
/* The client closes (or resets) as soon as it can be seen. */
void finish_client(bool reset);

struct evconnlistener;
/* Resets the connections waiting in l's accept queue (ones the proxy
 * opened and gave up before they were accepted). */
void refuse_backlog(struct evconnlistener *l);
/* Runs the loop without blocking until nothing moves. */
void pump(void);
/* pump, the slow client's turn, the end of input if due, pump. */
void settle(void);
/* Time passes for one armed timer only (nothing if ev is not armed). */
void fire(struct event *ev);

/* Whether a backend received a request with this id. */
bool forwarded(const char *id);
/* Marks the replies taken for an id some other reply was taken for too;
 * once per input, before check_answer. */
void mark_dups(void);

/* A final response the client got whole. */
typedef struct answer {
    int32_t     sid;        /* its HTTP/2 stream, or -1 */
    int         status;
    bool        head;       /* it answers HEAD */
    const char *rid;        /* its request id, NUL-terminated, 1 to RID_MAX bytes */
    size_t      rid_len;
    const char *body;       /* its first BODY_MAX bytes, de-chunked (NULL: none) */
    size_t      body_len;   /* all of them */
} answer_t;

/* The proxy's own error answers of a request it never forwards must not
 * have been forwarded; anything else answers the one reply taken for its
 * request (when that is unambiguous): same status, same body. */
void check_answer(const answer_t *a);

#endif
