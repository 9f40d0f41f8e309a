/* SPDX-License-Identifier: MIT */
/*
 * Plain TCP transport (see transport.h).  Output is a libevent socket
 * bufferevent written at once by rp_bev_flush() (EV_WRITE only while data is
 * left over, so an exchange costs no epoll_ctl); input is read by an
 * rp_reader (one readv, no FIONREAD) into the same bufferevent's input.
 */
#include "config.h"
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include "io.h"
#include "transport.h"
#include "util.h"

typedef struct tcp_transport {
    rp_transport_t      tr;
    struct bufferevent *bev;    /* owned */
    rp_reader_t         rd;     /* owned */
} tcp_transport_t;

#define TCP(t) ((tcp_transport_t *)(t))

static void
tcp_read_cb(void *arg)
{
    rp_transport_t *tr = arg;
    tr->read_cb(tr->arg);
}

static void
tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rp_transport_t *tr = arg;
    (void)bev;
    tr->event_cb(what, tr->arg);
}

static void
tcp_write_cb(struct bufferevent *bev, void *arg)
{
    rp_transport_t *tr = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    tr->write_cb(tr->arg);
}

static void
tcp_read(rp_transport_t *tr, bool on)
{
    if (on)
        rp_reader_enable(&TCP(tr)->rd);
    else
        rp_reader_disable(&TCP(tr)->rd);
}

static void
tcp_read_timeout(rp_transport_t *tr, unsigned ms)
{
    rp_reader_set_timeout(&TCP(tr)->rd, ms);
}

static void
tcp_drained(rp_transport_t *tr)
{
    rp_reader_drained(&TCP(tr)->rd);
}

static void
tcp_write_timeout(rp_transport_t *tr, unsigned ms)
{
    struct bufferevent *bev = TCP(tr)->bev;
    bufferevent_set_timeouts(bev, NULL, ms > 0 ? rp_timeout_tv(bufferevent_get_base(bev), ms) : NULL);
}

static void
tcp_set_lowat(rp_transport_t *tr, size_t lowat)
{
    bufferevent_setwatermark(TCP(tr)->bev, EV_WRITE, lowat, 0);
}

static void
tcp_flush(rp_transport_t *tr)
{
    rp_bev_flush(TCP(tr)->bev);
}

static void
tcp_shutdown(rp_transport_t *tr)
{
    shutdown(bufferevent_getfd(TCP(tr)->bev), SHUT_WR);
}

static void
tcp_free(rp_transport_t *tr, bool reset)
{
    tcp_transport_t *t = TCP(tr);
    if (reset)
        rp_fd_reset_on_close(bufferevent_getfd(t->bev));
    rp_reader_release(&t->rd);
    bufferevent_free(t->bev);
    free(t);
}

static int
tcp_fd(rp_transport_t *tr)
{
    return (int)bufferevent_getfd(TCP(tr)->bev);
}

static const rp_transport_ops_t tcp_ops = {
    .name = "tcp",
    .read = tcp_read,
    .read_timeout = tcp_read_timeout,
    .drained = tcp_drained,
    .write_timeout = tcp_write_timeout,
    .set_lowat = tcp_set_lowat,
    .flush = tcp_flush,
    .shutdown = tcp_shutdown,
    .free = tcp_free,
    .fd = tcp_fd,
};

bool
rp_tr_is_tcp(const rp_transport_t *tr)
{
    return tr->ops == &tcp_ops;
}

bool
rp_tcp_transport_reading(rp_transport_t *tr)
{
    return TCP(tr)->rd.armed;
}

int
rp_tcp_transport_detach(rp_transport_t *tr)
{
    tcp_transport_t *t = TCP(tr);
    int fd = (int)bufferevent_getfd(t->bev);
    rp_reader_release(&t->rd);
    /* The bufferevent closes its descriptor when freed: it has none. */
    bufferevent_setfd(t->bev, -1);
    bufferevent_free(t->bev);
    free(t);
    return fd;
}

rp_transport_t *
rp_tcp_transport_new(struct event_base *base, int fd, size_t read_high)
{
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return NULL;
    }
    tcp_transport_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        bufferevent_free(bev);   /* closes fd */
        return NULL;
    }
    t->tr.ops = &tcp_ops;
    t->tr.in = bufferevent_get_input(bev);
    t->tr.out = bufferevent_get_output(bev);
    t->bev = bev;
    bufferevent_setcb(bev, NULL, tcp_write_cb, tcp_event_cb, &t->tr);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    rp_reader_init(&t->rd, base, bev, read_high);
    rp_reader_setcb(&t->rd, tcp_read_cb, tcp_event_cb, &t->tr);
    return &t->tr;
}
