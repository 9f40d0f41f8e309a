/* SPDX-License-Identifier: MIT */
/*
 * TLS transport (see transport.h): OpenSSL on the accepted socket itself
 * (a socket BIO), with the plaintext in two evbuffers of our own.
 *
 * Why not libevent's SSL bufferevent: it writes one TLS record (and one
 * write()) per evbuffer chain and reads 4 KiB at a time.  Here output is
 * coalesced into records of up to 16 KiB (one SSL_write each) and input is
 * read with read-ahead (one read() for all the records the socket holds)
 * until the SSL's buffer is used up or the read high watermark is
 * reached.
 *
 * The handshake runs first, driven by the same two events; its end is
 * reported as BEV_EVENT_CONNECTED through the event callback (ALPN can
 * be read then), a failure as BEV_EVENT_READING|BEV_EVENT_ERROR.
 *
 * Nothing is reported from inside a call the owner makes (flush, drained,
 * read): errors found there are reported from the event loop, so the owner
 * never sees its transport fail in the middle of its own call.
 */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "io.h"
#include "tls.h"
#include "transport_tls.h"
#include "transport.h"
#include "util.h"

/* The largest TLS record's plaintext: what one SSL_write() carries. */
#define TLS_RECORD 16384

typedef struct tls_transport {
    rp_transport_t   tr;
    SSL             *ssl;          /* owned */
    int              fd;           /* owned */
    struct evbuffer *in, *out;     /* owned */
    struct event     rev, wev;
    /* Runs of the callbacks the transport asks for itself (input already
     * inside the SSL, an error to report): separate events, since libevent
     * does not register the socket of an event that is active when added. */
    struct event     rkick, wkick;
    struct timeval   rtv, wtv;
    size_t           high;         /* no reads while this much is buffered */
    size_t           lowat;        /* write_cb when out falls to this */
    size_t           wlen;         /* length of an SSL_write() to repeat, 0: none */
    const char      *fail;         /* handshake failure reason word */
    bool             hs_done;
    bool             reading;      /* the owner wants input */
    bool             eof;          /* close_notify or EOF seen: no more input */
    short            later;        /* EOF or error seen after data: report it next */
    bool             wcb_report;   /* output drained outside on_writable: tell the owner */
    bool             err_report;   /* a write failed in flush: report it */
    bool             read_want_w;  /* SSL_read or the handshake needs writability */
    bool             write_want_r; /* SSL_write needs readability */
    bool             write_blocked;/* SSL_write needs writability */
    bool             dead;         /* a fatal error: no more I/O */
    bool             shut;         /* close_notify sent */
    bool             r_armed, r_timed, w_armed, w_timed;
    bool             has_rtv, has_wtv;
} tls_transport_t;

#define TLS(t) ((tls_transport_t *)(t))

static void
set_ev(struct event *ev, bool *armed, bool *timed, bool want, const struct timeval *tv,
       bool restart)
{
    if (!want) {
        if (*armed)
            event_del(ev);
        *armed = *timed = false;
        return;
    }
    /* An event that could not be registered is not armed: the next
     * update tries again. */
    if (tv != NULL) {
        if ((!*armed || !*timed || restart) && rp_event_add(ev, tv) < 0) {
            *armed = *timed = false;
            return;
        }
        *timed = true;
    } else {
        if (!*armed && rp_event_add(ev, NULL) < 0) {
            *timed = false;
            return;
        }
        if (*armed && *timed)
            event_remove_timer(ev);
        *timed = false;
    }
    *armed = true;
}

/* Arm the two events for what is wanted now; restart: the timeouts begin
 * again (progress was made). */
static void
update(tls_transport_t *t, bool restart_r, bool restart_w)
{
    bool owner_r = t->hs_done && t->reading && !t->eof
                   && evbuffer_get_length(t->in) < t->high;
    bool want_r = !t->dead && (!t->hs_done || t->write_want_r || owner_r);
    bool want_w = !t->dead && (t->read_want_w || t->write_blocked);
    set_ev(&t->rev, &t->r_armed, &t->r_timed, want_r,
           owner_r && t->has_rtv ? &t->rtv
           : t->write_want_r && t->has_wtv ? &t->wtv : NULL, restart_r);
    set_ev(&t->wev, &t->w_armed, &t->w_timed, want_w,
           t->write_blocked && t->has_wtv ? &t->wtv : NULL, restart_w);

}

static const char *
io_failure(int err)
{
    if (err == ECONNRESET)
        return "reset";
    return err == 0 || err == EPIPE ? "closed" : "io_error";
}

/* Returns 1 when the handshake is done, 0 when it waits, -1 on failure. */
static int
handshake(tls_transport_t *t)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    t->read_want_w = false;
    if (r == 1) {
        t->hs_done = true;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        t->read_want_w = true;
        return 0;
    case SSL_ERROR_SYSCALL:
        t->fail = ERR_peek_error() != 0 ? rp_tls_failure_reason(ERR_peek_error())
                                        : io_failure(errno);
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        t->fail = "closed";
        return -1;
    default:
        t->fail = rp_tls_failure_reason(ERR_peek_last_error());
        return -1;
    }
}

/* Read records until the socket runs dry or the buffer is full.  Returns
 * true when bytes were added to in; sets eof or dead. */
static bool
read_records(tls_transport_t *t)
{
    bool got = false;
    t->read_want_w = false;
    while (!t->eof && !t->dead && evbuffer_get_length(t->in) < t->high) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(t->in, TLS_RECORD, &v, 1) < 1) {
            t->dead = true;
            errno = ENOMEM;
            break;
        }
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(t->ssl, v.iov_base, (int)v.iov_len);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(t->in, &v, 1);
            got = true;
            /* With read-ahead, one read() took all the socket had (up to
             * the SSL's buffer): once that is used up, the socket is left
             * to the poller rather than asked again for an EAGAIN. */
            if (!SSL_has_pending(t->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            t->read_want_w = true;
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify, or an EOF without one (the SSL ignores an
             * unexpected EOF): either way the end of input; a message it
             * cut short is caught by HTTP framing, as on plain TCP. */
            t->eof = true;
            break;
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
            t->eof = true;
            break;
        }
        if (errno == 0)
            errno = EPROTO;
        t->dead = true;
    }
    return got;
}

/* Write out as whole records as possible.  Returns -1 on a fatal error. */
static int
write_records(tls_transport_t *t)
{
    t->write_want_r = false;
    t->write_blocked = false;
    while (evbuffer_get_length(t->out) > 0) {
        size_t n = t->wlen;
        if (n == 0) {
            n = evbuffer_get_length(t->out);
            if (n > TLS_RECORD)
                n = TLS_RECORD;
        }
        /* A retried SSL_write() must repeat the same bytes: they stay at
         * the front of out until written, and wlen keeps the length. */
        unsigned char *p = evbuffer_pullup(t->out, (ev_ssize_t)n);
        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(t->ssl, p, (int)n);
        if (r > 0) {
            evbuffer_drain(t->out, (size_t)r);
            t->wlen = 0;
            continue;
        }
        t->wlen = n;
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
            t->write_blocked = true;
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ) {
            t->write_want_r = true;
            return 0;
        }
        if (errno == 0)
            errno = EPIPE;
        return -1;
    }
    return 0;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
    tls_transport_t *t = arg;
    rp_transport_t *tr = &t->tr;
    (void)fd;
    if (t->later != 0) {
        /* The end of input, or an error, found behind the last data. */
        short e = t->later;
        t->later = 0;
        t->reading = false;
        update(t, false, false);
        tr->event_cb(BEV_EVENT_READING | e, tr->arg);
        return;
    }
    if (t->dead)
        return;
    if (!t->hs_done) {
        int r = handshake(t);
        if (r < 0) {
            t->dead = true;
            update(t, false, false);
            tr->event_cb(BEV_EVENT_READING | BEV_EVENT_ERROR, tr->arg);
            return;
        }
        update(t, true, false);
        if (r == 0)
            return;
        /* Records that came with the client's Finished are read on the
         * next turn; by then the owner has set itself up. */
        event_active(&t->rkick, EV_READ, 1);
        tr->event_cb(BEV_EVENT_CONNECTED, tr->arg);
        return;
    }
    if ((what & EV_TIMEOUT) && !(what & EV_READ)) {
        /* An SSL_write waiting for input times out as a write does. */
        short dir = t->write_want_r && !(t->reading && t->has_rtv) ? BEV_EVENT_WRITING
                                                                    : BEV_EVENT_READING;
        t->reading = false;
        update(t, false, false);
        tr->event_cb(dir | BEV_EVENT_TIMEOUT, tr->arg);
        return;
    }
    if (t->write_want_r) {
        /* An SSL_write waited for input (a TLS 1.3 key update, say). */
        if (write_records(t) < 0) {
            t->dead = true;
            update(t, false, false);
            tr->event_cb(BEV_EVENT_WRITING | BEV_EVENT_ERROR, tr->arg);
            return;
        }
        if (evbuffer_get_length(t->out) <= t->lowat) {
            t->wcb_report = true;
            event_active(&t->wkick, EV_WRITE, 1);
        }
        if (!t->reading) {
            update(t, false, true);
            return;
        }
    }
    if (!t->reading) {
        update(t, false, false);
        return;
    }
    bool got = read_records(t);
    if (t->dead && !got) {
        update(t, false, false);
        tr->event_cb(BEV_EVENT_READING | BEV_EVENT_ERROR, tr->arg);
        return;
    }
    if (t->eof && !got) {
        t->reading = false;
        update(t, false, false);
        tr->event_cb(BEV_EVENT_READING | BEV_EVENT_EOF, tr->arg);
        return;
    }
    if (t->eof || t->dead) {
        /* Data first, then the end or the error: on the next turn. */
        t->later = t->dead ? BEV_EVENT_ERROR : BEV_EVENT_EOF;
        t->eof = true;
        event_active(&t->rkick, EV_READ, 1);
    }
    update(t, got, false);
    if (got)
        tr->read_cb(tr->arg);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
    tls_transport_t *t = arg;
    rp_transport_t *tr = &t->tr;
    (void)fd;
    if (t->wcb_report && !t->err_report && !t->dead) {
        t->wcb_report = false;
        if (evbuffer_get_length(t->out) <= t->lowat) {
            tr->write_cb(tr->arg);
            return;
        }
    }
    if (t->err_report) {
        t->err_report = false;
        t->dead = true;
        update(t, false, false);
        tr->event_cb(BEV_EVENT_WRITING | BEV_EVENT_ERROR, tr->arg);
        return;
    }
    if (t->dead)
        return;
    if (!t->hs_done) {
        on_readable(fd, EV_READ, arg);   /* the handshake wanted to write */
        return;
    }
    if ((what & EV_TIMEOUT) && !(what & EV_WRITE)) {
        update(t, false, false);
        tr->event_cb(BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT, tr->arg);
        return;
    }
    if (t->read_want_w) {
        /* An SSL_read waited to write: read again now. */
        t->read_want_w = false;
        event_active(&t->rkick, EV_READ, 1);
    }
    if (evbuffer_get_length(t->out) == 0) {
        update(t, false, false);
        return;
    }
    size_t before = evbuffer_get_length(t->out);
    if (write_records(t) < 0) {
        t->dead = true;
        update(t, false, false);
        tr->event_cb(BEV_EVENT_WRITING | BEV_EVENT_ERROR, tr->arg);
        return;
    }
    size_t left = evbuffer_get_length(t->out);
    update(t, false, left < before);
    if (left <= t->lowat)
        tr->write_cb(tr->arg);
}

/* ---- ops ---- */

static void
tls_read(rp_transport_t *tr, bool on)
{
    tls_transport_t *t = TLS(tr);
    bool was = t->reading;
    t->reading = on;
    update(t, false, false);
    /* Plaintext may already wait inside the SSL (read while the buffer
     * was full): the socket will not say so. */
    if (on && !was && t->hs_done && SSL_has_pending(t->ssl))
        event_active(&t->rkick, EV_READ, 1);
}

static void
tls_read_timeout(rp_transport_t *tr, unsigned ms)
{
    tls_transport_t *t = TLS(tr);
    t->has_rtv = ms > 0;
    if (ms > 0)
        t->rtv = *rp_timeout_tv(event_get_base(&t->rev), ms);
    update(t, true, false);
}

static void
tls_drained(rp_transport_t *tr)
{
    tls_transport_t *t = TLS(tr);
    bool was = t->r_armed;
    update(t, false, false);
    if (!was && t->r_armed && SSL_has_pending(t->ssl))
        event_active(&t->rkick, EV_READ, 1);
}

static void
tls_write_timeout(rp_transport_t *tr, unsigned ms)
{
    tls_transport_t *t = TLS(tr);
    t->has_wtv = ms > 0;
    if (ms > 0)
        t->wtv = *rp_timeout_tv(event_get_base(&t->wev), ms);
    update(t, false, true);
}

static void
tls_set_lowat(rp_transport_t *tr, size_t lowat)
{
    TLS(tr)->lowat = lowat;
}

static void
tls_flush(rp_transport_t *tr)
{
    tls_transport_t *t = TLS(tr);
    if (!t->hs_done || t->dead || t->err_report || t->write_blocked || t->write_want_r)
        return;
    if (write_records(t) < 0) {
        t->err_report = true;
        event_active(&t->wkick, EV_WRITE, 1);
        return;
    }
    update(t, false, true);
}

static void
tls_shutdown(rp_transport_t *tr)
{
    tls_transport_t *t = TLS(tr);
    if (t->hs_done && !t->dead && !t->shut) {
        /* close_notify, best effort: the socket takes a few bytes. */
        t->shut = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl);
    }
    shutdown(t->fd, SHUT_WR);
}

static void
tls_free(rp_transport_t *tr, bool reset)
{
    tls_transport_t *t = TLS(tr);
    event_del(&t->rev);
    event_del(&t->wev);
    event_del(&t->rkick);
    event_del(&t->wkick);
    if (reset)
        rp_fd_reset_on_close(t->fd);
    else if (t->hs_done && !t->dead && !t->shut && evbuffer_get_length(t->out) == 0) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
    }
    SSL_free(t->ssl);
    ERR_clear_error();
    close(t->fd);
    evbuffer_free(t->in);
    evbuffer_free(t->out);
    free(t);
}

static int
tls_fd(rp_transport_t *tr)
{
    return ((tls_transport_t *)tr)->fd;
}

static const rp_transport_ops_t tls_ops = {
    .name = "tls",
    .read = tls_read,
    .read_timeout = tls_read_timeout,
    .drained = tls_drained,
    .write_timeout = tls_write_timeout,
    .set_lowat = tls_set_lowat,
    .flush = tls_flush,
    .shutdown = tls_shutdown,
    .free = tls_free,
    .fd = tls_fd,
};

rp_transport_t *
rp_tls_transport_new(struct event_base *base, int fd, SSL *ssl, size_t read_high)
{
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    /* An EOF without close_notify reads as an ordinary end of input. */
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read-ahead: one read() per batch of records instead of two per
     * record (header, then body).  What it reads beyond the record asked
     * for waits in the SSL (SSL_has_pending), where the socket's events
     * cannot see it: every path that resumes reading checks for it. */
    SSL_set_read_ahead(ssl, 1);
    tls_transport_t *t = calloc(1, sizeof *t);
    if (t != NULL) {
        t->in = evbuffer_new();
        t->out = evbuffer_new();
    }
    if (t == NULL || t->in == NULL || t->out == NULL) {
        if (t != NULL && t->in != NULL)
            evbuffer_free(t->in);
        if (t != NULL && t->out != NULL)
            evbuffer_free(t->out);
        free(t);
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    t->tr.ops = &tls_ops;
    t->tr.secure = true;
    t->ssl = ssl;
    t->fd = fd;
    t->tr.in = t->in;
    t->tr.out = t->out;
    t->high = read_high;
    event_assign(&t->rev, base, fd, EV_READ | EV_PERSIST, on_readable, t);
    event_assign(&t->wev, base, fd, EV_WRITE | EV_PERSIST, on_writable, t);
    event_assign(&t->rkick, base, -1, 0, on_readable, t);
    event_assign(&t->wkick, base, -1, 0, on_writable, t);
    return &t->tr;
}

void
rp_tls_transport_start(rp_transport_t *tr)
{
    tls_transport_t *t = TLS(tr);
    update(t, false, false);
    /* The ClientHello is usually there already. */
    event_active(&t->rkick, EV_READ, 1);
}

SSL *
rp_tls_transport_ssl(rp_transport_t *tr)
{
    return TLS(tr)->ssl;
}

const char *
rp_tls_transport_failure(const rp_transport_t *tr)
{
    const char *f = TLS(tr)->fail;
    return f != NULL ? f : "other";
}
