/* SPDX-License-Identifier: MIT */
/*
 * The read side of a socket bufferevent, done here instead of by libevent.
 * libevent's bufferevent asks the kernel how many bytes are readable
 * (ioctl FIONREAD) before every read; at proxy request rates that extra
 * system call per read costs more than the parsing.  A reader reads into
 * the bufferevent's own input buffer with one readv(), so the rest of the
 * code still sees an ordinary bufferevent; output stays libevent's.
 *
 * The owner keeps EV_READ disabled on the bufferevent and uses these calls
 * instead of bufferevent_enable/disable(EV_READ) and read timeouts.
 */
#ifndef RP_IO_H
#define RP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

/* Output above this stops the producer; below RP_WBUF_LOW resumes it. */
#define RP_WBUF_HIGH (256u * 1024u)
#define RP_WBUF_LOW  (64u * 1024u)
/* Most input buffered per direction before reading stops. */
#define RP_RBUF_HIGH (256u * 1024u)
#define RP_RBUF_HIGH_UP RP_RBUF_HIGH

typedef void rp_read_fn(void *arg);
/* what: BEV_EVENT_READING with BEV_EVENT_EOF, BEV_EVENT_ERROR (errno
 * set) or BEV_EVENT_TIMEOUT, as a bufferevent would report them. */
typedef void rp_read_event_fn(struct bufferevent *bev, short what, void *arg);

typedef struct rp_reader {
    struct bufferevent *bev;       /* borrowed: the owner's */
    struct event        ev;        /* owned (assigned, not allocated) */
    rp_read_fn         *read_cb;
    rp_read_event_fn   *event_cb;
    void               *arg;
    struct timeval      timeout;
    bool                has_timeout;
    bool                enabled;   /* the owner wants input */
    bool                armed;     /* the event is added */
    size_t              high;      /* no reads while this much is buffered */
    size_t              chunk;     /* next read size */
} rp_reader_t;

void rp_reader_init(rp_reader_t *r, struct event_base *base, struct bufferevent *bev,
                    size_t high);
void rp_reader_setcb(rp_reader_t *r, rp_read_fn *read_cb, rp_read_event_fn *event_cb,
                     void *arg);
/* ms 0: no timeout.  The timeout restarts with every read. */
void rp_reader_set_timeout(rp_reader_t *r, unsigned ms);
void rp_reader_enable(rp_reader_t *r);

void rp_reader_disable(rp_reader_t *r);
/* The owner consumed input: resume reading if it had stopped at high. */
void rp_reader_drained(rp_reader_t *r);
/* A timeval for ms on base, as a libevent common timeout when possible:
 * timers of a handful of fixed durations (the configured timeouts) then
 * cost a queue append instead of a heap insertion.  The result is copied
 * by event_add(); valid on base only. */
const struct timeval *rp_timeout_tv(struct event_base *base, unsigned ms);

/* event_add() whose failure is said.  libevent fails to register an
 * event when it cannot grow its timer heap or its descriptor map, or
 * when epoll_ctl() fails (ENOMEM, ENOSPC); that is logged, a line a
 * second at most, and what the event guards is left to its other timers
 * (a connection's and a transaction's own timers are shared timeouts,
 * which never allocate).  The event is not fired in its stead: a
 * callback re-arming its own event would spin while memory stays short,
 * and a local failure would pass for a backend's timeout.  Returns
 * event_add()'s result. */
int rp_event_add(struct event *ev, const struct timeval *tv);

/* Write what bev has queued now, without waiting for the next loop
 * iteration; if the socket cannot take it all, leave the rest to the
 * bufferevent (EV_WRITE enabled until drained).  Bufferevents here keep
 * EV_WRITE disabled while their output is empty, which saves two
 * epoll_ctl calls per response. */
void rp_bev_flush(struct bufferevent *bev);

/* Make the coming close of fd abortive (SO_LINGER 0): the kernel drops
 * what is still queued and the peer sees a reset, never a clean end of a
 * message cut short. */
void rp_fd_reset_on_close(int fd);

/* Bytes of what was written to the TCP socket fd that its peer has
 * acknowledged (its kernel has them), from TCP_INFO; 0 when the kernel
 * cannot tell.  Unlike what leaves a user-space buffer, it moves as the
 * peer reads, however full the socket's send buffer is. */
uint64_t rp_fd_bytes_acked(int fd);

/* Before the bufferevent is freed. */
void rp_reader_release(rp_reader_t *r);

#endif
