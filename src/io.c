/* SPDX-License-Identifier: MIT */
/* Reading sockets into bufferevent input buffers (see io.h). */
#include "config.h"
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/tcp.h>
#include <event2/buffer.h>
#include "io.h"
#include "util.h"

/* Reads start small (most requests and responses are) and grow while
 * they fill up, as a body streams. */
#define READ_MIN 4096
#define READ_MAX 65536

static void
arm(rp_reader_t *r)
{
    bool want = r->enabled
        && evbuffer_get_length(bufferevent_get_input(r->bev)) < r->high;
    if (want) {
        /* Not registered: not armed, so the next enable tries again. */
        if (rp_event_add(&r->ev, r->has_timeout ? &r->timeout : NULL) < 0)
            want = false;
    } else if (r->armed) {
        event_del(&r->ev);
    }
    r->armed = want;
}

static void
reader_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_reader_t *r = arg;
    if (what & EV_TIMEOUT) {
        r->enabled = false;
        arm(r);
        r->event_cb(r->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, r->arg);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(r->bev);
    size_t have = evbuffer_get_length(in);
    size_t want = r->high > have ? r->high - have : 0;
    if (r->chunk < READ_MIN)
        r->chunk = READ_MIN;
    if (want > r->chunk)
        want = r->chunk;
    if (want == 0) {
        arm(r);
        return;
    }
    struct evbuffer_iovec v[2];
    /* The bufferevent keeps its input's end frozen against writers other
     * than itself; thaw it for the length of one read. */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    ssize_t got = -1;
    int err = 0;
    if (nv > 0) {
        size_t total = 0;
        for (int i = 0; i < nv; i++) {
            if (total + v[i].iov_len > want)
                v[i].iov_len = want - total;
            total += v[i].iov_len;
        }
        /* recv() skips the iovec import and file-position lock of
         * readv(); the second vector is only there when the first chain
         * is short of room. */
        if (nv == 1)
            got = recv((int)fd, v[0].iov_base, v[0].iov_len, 0);
        else
            got = readv((int)fd, (struct iovec *)v, nv);
        err = errno;
        if (got > 0) {
            size_t left = (size_t)got;
            for (int i = 0; i < nv; i++) {
                if (v[i].iov_len > left)
                    v[i].iov_len = left;
                left -= v[i].iov_len;
            }
            evbuffer_commit_space(in, v, nv);
        }
    } else {
        err = ENOMEM;
    }
    evbuffer_freeze(in, 0);
    if (got < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
            return;
        r->enabled = false;
        arm(r);
        errno = err;
        r->event_cb(r->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, r->arg);
        return;
    }
    if ((size_t)got == want && r->chunk < READ_MAX)
        r->chunk *= 2;
    else if ((size_t)got < want / 4 && r->chunk > READ_MIN)
        r->chunk /= 2;
    if (got == 0) {
        r->enabled = false;
        arm(r);
        r->event_cb(r->bev, BEV_EVENT_READING | BEV_EVENT_EOF, r->arg);
        return;
    }
    if (evbuffer_get_length(in) >= r->high)
        arm(r);
    r->read_cb(r->arg);
}

/* Write what the socket takes of out.  One chain (a request or response
 * head with a small body usually fits in one) goes out with send(), which
 * skips writev()'s iovec import and file-position lock; more go out with
 * evbuffer_write() (one writev() of up to 128 chains). */
static void
write_out(struct evbuffer *out, evutil_socket_t fd)
{
    struct evbuffer_iovec v[2];
    if (evbuffer_peek(out, -1, NULL, v, 2) != 1) {
        evbuffer_write(out, fd);
        return;
    }
    ssize_t n = send((int)fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
    if (n > 0)
        evbuffer_drain(out, (size_t)n);
}

void
rp_bev_flush(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0)
        return;
    if (!(bufferevent_get_enabled(bev) & EV_WRITE)) {
        /* A socket bufferevent freezes the front of its output buffer;
         * it thaws it around its own writes, and so do we.  Errors (EPIPE,
         * ECONNRESET) are left for the bufferevent to report through its
         * event callback once EV_WRITE is enabled. */
        evbuffer_unfreeze(out, 1);
        write_out(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
    }
    /* Enabling again would restart the write timeout: a client that
     * stops reading must not be kept alive by our flushing. */
    if (evbuffer_get_length(out) > 0 && !(bufferevent_get_enabled(bev) & EV_WRITE))
        bufferevent_enable(bev, EV_WRITE);
}

void
rp_fd_reset_on_close(int fd)
{
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

uint64_t
rp_fd_bytes_acked(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    /* An older kernel fills less of the structure. */
    if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
        return 0;
    return ti.tcpi_bytes_acked;
}

int
rp_event_add(struct event *ev, const struct timeval *tv)
{
    int saved = errno;
    errno = 0;
    int rc = event_add(ev, tv);
    if (rc < 0)
        rp_event_note(errno != 0 ? errno : ENOMEM);
    errno = saved;
    return rc;
}

const struct timeval *
rp_timeout_tv(struct event_base *base, unsigned ms)
{
    /* One cache per thread: each worker thread runs one base. */
    static _Thread_local struct { struct event_base *base; unsigned ms; struct timeval tv; } cache[16];
    static _Thread_local unsigned n;
    static _Thread_local struct timeval plain;
    for (unsigned i = 0; i < n; i++)
        if (cache[i].ms == ms && cache[i].base == base)
            return &cache[i].tv;
    plain.tv_sec = ms / 1000;
    plain.tv_usec = (ms % 1000) * 1000;
    if (n == sizeof cache / sizeof cache[0])
        return &plain;
    const struct timeval *c = event_base_init_common_timeout(base, &plain);
    if (c == NULL)
        return &plain;
    cache[n].base = base;
    cache[n].ms = ms;
    cache[n].tv = *c;
    return &cache[n++].tv;
}

void
rp_reader_init(rp_reader_t *r, struct event_base *base, struct bufferevent *bev, size_t high)
{
    memset(r, 0, sizeof *r);
    r->bev = bev;
    r->high = high;
    event_assign(&r->ev, base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, reader_cb, r);
}

void
rp_reader_setcb(rp_reader_t *r, rp_read_fn *read_cb, rp_read_event_fn *event_cb, void *arg)
{
    r->read_cb = read_cb;
    r->event_cb = event_cb;
    r->arg = arg;
}

void
rp_reader_set_timeout(rp_reader_t *r, unsigned ms)
{
    bool had = r->has_timeout;
    r->has_timeout = ms > 0;
    if (ms > 0)
        r->timeout = *rp_timeout_tv(event_get_base(&r->ev), ms);
    if (!r->armed)
        return;
    if (r->has_timeout)
        rp_event_add(&r->ev, &r->timeout);
    else if (had)
        event_remove_timer(&r->ev);   /* event_add(NULL) would keep it */
}

void
rp_reader_enable(rp_reader_t *r)
{
    if (r->enabled && r->armed)
        return;
    r->enabled = true;
    arm(r);
}

void
rp_reader_disable(rp_reader_t *r)
{
    r->enabled = false;
    arm(r);
}

void
rp_reader_drained(rp_reader_t *r)
{
    if (r->enabled && !r->armed)
        arm(r);
}

void
rp_reader_release(rp_reader_t *r)
{
    event_del(&r->ev);
    r->armed = false;
    r->enabled = false;
}
