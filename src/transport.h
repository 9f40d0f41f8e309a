/* SPDX-License-Identifier: MIT */
/*
 * The client-side transport: every read, write, half-close and close of a
 * client connection goes through these calls, so that what carries the
 * bytes (plain TCP here; TLS later) is one implementation of a small table.
 *
 * A transport exposes two evbuffers: `in` holds bytes received and not yet
 * consumed, `out` bytes queued for the peer.  The owner consumes `in`,
 * appends to `out` and calls rp_tr_flush(); the transport reports back
 * through three callbacks:
 *   read:   new bytes were appended to `in`;
 *   write:  `out` fell to the low watermark set with rp_tr_set_lowat()
 *           (0: emptied entirely);
 *   event:  BEV_EVENT_READING or BEV_EVENT_WRITING with BEV_EVENT_EOF,
 *           BEV_EVENT_ERROR or BEV_EVENT_TIMEOUT, as a bufferevent reports
 *           them.  After EOF or an error on reading, reading is off.
 *
 * Reading is off until rp_tr_read(tr, true); it pauses by itself while `in`
 * holds the read high watermark and resumes after rp_tr_drained().
 */
#ifndef RP_TRANSPORT_H
#define RP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>

typedef struct rp_transport rp_transport_t;

typedef void rp_tr_cb_fn(void *arg);
typedef void rp_tr_event_fn(short what, void *arg);

typedef struct rp_transport_ops {
    const char *name;                                    /* "tcp" */
    void (*read)(rp_transport_t *tr, bool on);
    void (*read_timeout)(rp_transport_t *tr, unsigned ms);   /* 0: none; restarts with each read */
    void (*drained)(rp_transport_t *tr);
    void (*write_timeout)(rp_transport_t *tr, unsigned ms);  /* 0: none; while output is pending */
    void (*set_lowat)(rp_transport_t *tr, size_t lowat);
    void (*flush)(rp_transport_t *tr);
    void (*shutdown)(rp_transport_t *tr);                /* no more output (after flush) */
    void (*free)(rp_transport_t *tr, bool reset);        /* close; reset: abortive (RST) */
    int  (*fd)(rp_transport_t *tr);                      /* the socket */
} rp_transport_ops_t;

struct rp_transport {
    const rp_transport_ops_t *ops;
    struct evbuffer *in;          /* borrowed from the implementation */
    struct evbuffer *out;
    bool             secure;      /* TLS */
    rp_tr_cb_fn     *read_cb;
    rp_tr_cb_fn     *write_cb;
    rp_tr_event_fn  *event_cb;
    void            *arg;
};

/* Plain TCP over an accepted, non-blocking socket (owned from now on; closed
 * by free).  NULL when it cannot be set up (the socket is closed). */
rp_transport_t *rp_tcp_transport_new(struct event_base *base, int fd, size_t read_high);
/* Whether tr is a plain TCP transport. */
bool rp_tr_is_tcp(const rp_transport_t *tr);
/* Whether a plain TCP transport's reader is registered with the poller
 * (it may have been refused: rp_event_add). */
bool rp_tcp_transport_reading(rp_transport_t *tr);
/* Free a plain TCP transport, its buffers (which must be empty) and its
 * events, but not its socket: returned, still open, for the caller to
 * watch with less (an idle connection, conn.c). */
int rp_tcp_transport_detach(rp_transport_t *tr);

static inline void
rp_tr_setcb(rp_transport_t *tr, rp_tr_cb_fn *read_cb, rp_tr_cb_fn *write_cb,
            rp_tr_event_fn *event_cb, void *arg)
{
    tr->read_cb = read_cb;
    tr->write_cb = write_cb;
    tr->event_cb = event_cb;
    tr->arg = arg;
}

static inline void rp_tr_read(rp_transport_t *tr, bool on) { tr->ops->read(tr, on); }
static inline void rp_tr_read_timeout(rp_transport_t *tr, unsigned ms) { tr->ops->read_timeout(tr, ms); }
static inline void rp_tr_drained(rp_transport_t *tr) { tr->ops->drained(tr); }
static inline void rp_tr_write_timeout(rp_transport_t *tr, unsigned ms) { tr->ops->write_timeout(tr, ms); }
static inline void rp_tr_set_lowat(rp_transport_t *tr, size_t lowat) { tr->ops->set_lowat(tr, lowat); }
static inline void rp_tr_flush(rp_transport_t *tr) { tr->ops->flush(tr); }
static inline void rp_tr_shutdown(rp_transport_t *tr) { tr->ops->shutdown(tr); }
static inline int rp_tr_fd(rp_transport_t *tr) { return tr->ops->fd(tr); }
static inline void rp_tr_free(rp_transport_t *tr, bool reset) { tr->ops->free(tr, reset); }

#endif
