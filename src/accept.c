/* SPDX-License-Identifier: MIT */
/* From an accepted socket to an HTTP connection (see accept.h). */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "accept.h"
#include "ipcount.h"
#include "conn.h"
#include "h2.h"
#include "io.h"
#include "proxyproto.h"
#include "tls.h"
#include "transport_tls.h"
#include "worker.h"
#include "util.h"

/* ---- handshake failures by reason ---- */

/* Slots taken by the first failure of each reason (a static word), then
 * counted with atomic adds: no lock, on any worker. */
static _Atomic(const char *) fail_reason[RP_TLS_FAIL_SLOTS];
static atomic_ullong fail_count[RP_TLS_FAIL_SLOTS];
static atomic_ullong fail_other;   /* reasons beyond the slots */

static void
count_failure(const char *reason)
{
    for (size_t i = 0; i < RP_TLS_FAIL_SLOTS; i++) {
        const char *r = atomic_load(&fail_reason[i]);
        if (r == NULL) {
            if (atomic_compare_exchange_strong(&fail_reason[i], &r, reason))
                r = reason;
        }
        if (r == reason || strcmp(r, reason) == 0) {
            atomic_fetch_add_explicit(&fail_count[i], 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&fail_other, 1, memory_order_relaxed);
}

size_t
rp_tls_failures(rp_tls_fail_count_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < RP_TLS_FAIL_SLOTS; i++) {
        const char *r = atomic_load(&fail_reason[i]);
        if (r == NULL)
            break;
        if (n < cap) {
            out[n].reason = r;
            out[n].count = atomic_load_explicit(&fail_count[i], memory_order_relaxed);
        }
        n++;
    }
    uint64_t other = atomic_load_explicit(&fail_other, memory_order_relaxed);
    if (other > 0) {
        if (n < cap) {
            out[n].reason = "other_reasons";
            out[n].count = other;
        }
        n++;
    }
    return n;
}

/* ---- peers ---- */

static void
peer_from_sockaddr(rp_peer_t *p, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, p->ip, sizeof p->ip);
        snprintf(p->text, sizeof p->text, "[%s]:%u", p->ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, p->ip, sizeof p->ip);
        snprintf(p->text, sizeof p->text, "%s:%u", p->ip, ntohs(s4->sin_port));
    }
}

bool
rp_peer_pack(const rp_peer_t *p, rp_peer_packed_t *out)
{
    memset(out, 0, sizeof *out);
    const char *colon = strrchr(p->text, ':');
    if (colon == NULL)
        return false;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535)
        return false;
    if (p->text[0] == '[') {
        out->u.sin6.sin6_family = AF_INET6;
        out->u.sin6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, p->ip, &out->u.sin6.sin6_addr) != 1)
            return false;
    } else {
        out->u.sin.sin_family = AF_INET;
        out->u.sin.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, p->ip, &out->u.sin.sin_addr) != 1)
            return false;
    }
    out->accepted_us = p->accepted_us;
    out->addr = p->addr;
    out->listener = p->listener;
    out->secure = p->secure;
    out->ip_counted = p->ip_counted;
    out->unnamed = p->unnamed;
    /* The same text and address back, or the peer stays whole. */
    rp_peer_t back;
    rp_peer_unpack(out, &back);
    return strcmp(back.text, p->text) == 0 && strcmp(back.ip, p->ip) == 0;
}

void
rp_peer_unpack(const rp_peer_packed_t *in, rp_peer_t *p)
{
    memset(p, 0, sizeof *p);
    peer_from_sockaddr(p, &in->u.sa);
    p->accepted_us = in->accepted_us;
    p->addr = in->addr;
    p->listener = in->listener;
    p->secure = in->secure;
    p->ip_counted = in->ip_counted;
    p->unnamed = in->unnamed;
}

/* ---- TLS handshakes ---- */

static void
hs_release(rp_handshake_t *hs)
{
    TAILQ_REMOVE(&hs->w->handshakes, hs, link);
    event_free(hs->timer);
    if (hs->pp_ev != NULL)
        event_free(hs->pp_ev);
    if (hs->pp_snap != NULL)
        rp_snapshot_unref(hs->pp_snap);
    free(hs);
}

void
rp_peer_release(rp_peer_t *p)
{
    if (p->ip_counted) {
        p->ip_counted = false;
        rp_ipcount_release(&p->addr);
    }
}

void
rp_handshake_free(rp_handshake_t *hs)
{
    rp_worker_t *w = hs->w;
    if (hs->tr != NULL)
        rp_tr_free(hs->tr, false);
    else
        close(hs->fd);
    unsigned listener = hs->peer.listener;
    rp_peer_release(&hs->peer);
    hs_release(hs);
    rp_worker_conn_closed(w, listener);
}

static void
hs_failed(rp_handshake_t *hs, const char *reason)
{
    count_failure(reason);
    /* Debug only: a scanner must not be able to flood the log. */
    rp_log(RP_LOG_DEBUG, NULL, "TLS handshake with %s failed: %s", hs->peer.text, reason);
    rp_handshake_free(hs);
}

static void
hs_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hs_failed(arg, "timeout");
}

static void
hs_read_cb(void *arg)
{
    (void)arg;   /* nothing is read before the handshake ends */
}

static void
hs_write_cb(void *arg)
{
    (void)arg;
}

static void
hs_event_cb(short what, void *arg)
{
    rp_handshake_t *hs = arg;
    if (!(what & BEV_EVENT_CONNECTED)) {
        hs_failed(hs, rp_tls_transport_failure(hs->tr));
        return;
    }
    rp_worker_t *w = hs->w;
    rp_transport_t *tr = hs->tr;
    rp_peer_t peer = hs->peer;
    rp_alpn_t alpn = rp_tls_alpn(rp_tls_transport_ssl(tr));
    hs_release(hs);
    if ((alpn == RP_ALPN_H2 ? rp_h2_new(w, tr, &peer) : rp_conn_new_transport(w, tr, &peer)) < 0) {
        rp_peer_release(&peer);
        rp_worker_conn_closed(w, peer.listener);
        rp_metrics_rejected(w->id, RP_REJECT_OUT_OF_MEMORY);
    }
}

static int
start_tls(rp_worker_t *w, int fd, const rp_peer_t *peer, const rp_tls_ctx_t *ctx)
{
    SSL *ssl = rp_tls_ssl_new(ctx);
    if (ssl == NULL) {
        close(fd);
        return -1;
    }
    rp_transport_t *tr = rp_tls_transport_new(w->base, fd, ssl, RP_RBUF_HIGH);
    if (tr == NULL)
        return -1;
    rp_handshake_t *hs = calloc(1, sizeof *hs);
    struct event *timer = hs != NULL ? evtimer_new(w->base, hs_timer_cb, hs) : NULL;
    if (timer == NULL) {
        free(hs);
        rp_tr_free(tr, true);
        rp_oom_note("a TLS handshake");
        return -1;
    }
    hs->w = w;
    hs->tr = tr;
    hs->peer = *peer;
    hs->peer.secure = true;
    hs->fd = -1;
    hs->timer = timer;
    TAILQ_INSERT_TAIL(&w->handshakes, hs, link);
    rp_tr_setcb(tr, hs_read_cb, hs_write_cb, hs_event_cb, hs);
    /* What a PROXY header left of client_header_ms (a plain timer then,
     * since it differs each time). */
    unsigned full = w->snap->timeouts.client_header_ms;
    unsigned ms = rp_ms_left(full, peer->accepted_us);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    rp_event_add(hs->timer, ms + 1 >= full ? rp_timeout_tv(w->base, full) : &tv);
    rp_tls_transport_start(tr);
    return 0;
}

/* Past the PROXY header, if any: the per-address limit, the modules, then
 * TLS or HTTP.  Returns -1 (socket closed, nothing counted) when refused. */
static int
accept_go(rp_worker_t *w, int fd, rp_peer_t *peer, const rp_listener_t *l)
{
    /* Connections open from one address, across workers: over the limit,
     * closed before a byte of TLS or HTTP is read. */
    unsigned per_ip = w->snap->limits.max_connections_per_ip;
    if (per_ip > 0 && rp_ip_parse(peer->ip, strlen(peer->ip), false, &peer->addr) == 0) {
        int rc = rp_ipcount_acquire(&peer->addr, per_ip);
        if (rc < 0) {
            close(fd);
            if (rc == RP_IPCOUNT_NOMEM)
                rp_oom_note("a client address's connection count (connection closed)");
            rp_metrics_rejected(w->id, rc == RP_IPCOUNT_NOMEM ? RP_REJECT_OUT_OF_MEMORY
                                                              : RP_REJECT_PER_IP);
            return -1;
        }
        peer->ip_counted = true;
    }
    if (rp_modules_on_accept(peer, w->snap) != RP_CONTINUE) {
        close(fd);   /* refused by a module */
        rp_metrics_rejected(w->id, RP_REJECT_MODULE);
        rp_peer_release(peer);
        return -1;
    }
    int rc;
    if (l->tls != NULL) {
        rc = start_tls(w, fd, peer, l->tls);
    } else {
        rp_transport_t *tr = rp_tcp_transport_new(w->base, fd, RP_RBUF_HIGH);
        rc = tr != NULL ? rp_conn_new_transport(w, tr, peer) : -1;
    }
    if (rc < 0) {
        /* (Every failure above is an allocation's: the socket is closed.) */
        rp_peer_release(peer);
        rp_metrics_rejected(w->id, RP_REJECT_OUT_OF_MEMORY);
    }
    return rc;
}

/* ---- the PROXY protocol header ---- */

static void
pp_failed(rp_handshake_t *hs, const char *why, bool count)
{
    if (count)
        rp_metrics_rejected(hs->w->id, RP_REJECT_PP_INVALID);
    /* Debug only, like TLS failures: the peers are trusted balancers, but
     * what they relay is not. */
    rp_log(RP_LOG_DEBUG, NULL, "PROXY protocol v%u header from %s refused: %s", hs->pp,
           hs->peer.text, why);
    rp_handshake_free(hs);
}

static void
pp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pp_failed(arg, "not complete within timeouts.client_header_ms", true);
}

/* Look at what has arrived; once the header is whole and valid, take
 * exactly its bytes and go on as that client's connection.  closed: the
 * client has ended its side (a header still incomplete never will be). */
static void
pp_try(rp_handshake_t *hs, bool closed)
{
    unsigned char buf[RP_PP_V2_MAX];
    ssize_t n = recv(hs->fd, buf, sizeof buf, MSG_PEEK);
    if (n < 0) {
        /* A reset before a byte came: a balancer's TCP check too. */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            pp_failed(hs, strerror(errno), hs->pp_seen);
        else if (closed)
            pp_failed(hs, "closed before the header", true);
        return;
    }
    if (n == 0) {
        /* Connected and closed without a byte: a balancer's TCP check,
         * not worth a count. */
        pp_failed(hs, "closed before the header", hs->pp_seen);
        return;
    }
    hs->pp_seen = true;
    rp_pp_t pp;
    const char *why;
    int len = rp_pp_parse(buf, (size_t)n, (int)hs->pp, &pp, &why);
    if (len == 0) {
        /* More to come: the next arrival wakes us (edge-triggered), unless
         * the client has closed. */
        if (closed)
            pp_failed(hs, "closed before the header was complete", true);
        return;
    }
    if (len < 0) {
        pp_failed(hs, why, true);
        return;
    }
    if (recv(hs->fd, buf, (size_t)len, 0) != len) {
        pp_failed(hs, "could not take the header", true);
        return;
    }
    rp_worker_t *w = hs->w;
    int fd = hs->fd;
    rp_peer_t peer = hs->peer;
    /* The listener as configured when the connection was accepted: one a
     * reload removed meanwhile still serves it (its connections then close
     * after one exchange, as queued ones do). */
    rp_snapshot_t *snap = rp_snapshot_ref(hs->pp_snap);
    const rp_listener_t *l = hs->pp_l;
    if (pp.has_src) {
        char was[sizeof peer.text];
        memcpy(was, peer.text, sizeof was);
        peer_from_sockaddr(&peer, (const struct sockaddr *)&pp.src);
        if (rp_log_level >= RP_LOG_DEBUG)
            rp_log(RP_LOG_DEBUG, NULL, "PROXY protocol: %s is %s", was, peer.text);
    } else {
        /* The balancer's own address stands, but its trust does not pass
         * to whoever it relays. */
        peer.unnamed = true;
    }
    hs->fd = -1;
    hs_release(hs);
    if (accept_go(w, fd, &peer, l) < 0)
        rp_worker_conn_closed(w, peer.listener);
    rp_snapshot_unref(snap);
}

static void
pp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    pp_try(arg, (what & EV_CLOSED) != 0);
}

static int
pp_wait(rp_worker_t *w, int fd, const rp_peer_t *peer, const rp_listener_t *l)
{
    rp_handshake_t *hs = calloc(1, sizeof *hs);
    if (hs != NULL) {
        hs->timer = evtimer_new(w->base, pp_timer_cb, hs);
        /* Edge-triggered (epoll): a header only partly there is peeked at
         * again only once more bytes arrive, or the client closes, not on
         * every turn of the loop. */
        hs->pp_ev = event_new(w->base, fd, EV_READ | EV_CLOSED | EV_PERSIST | EV_ET, pp_read_cb,
                              hs);
    }
    if (hs == NULL || hs->timer == NULL || hs->pp_ev == NULL) {
        if (hs != NULL && hs->timer != NULL)
            event_free(hs->timer);
        if (hs != NULL && hs->pp_ev != NULL)
            event_free(hs->pp_ev);
        free(hs);
        close(fd);
        rp_oom_note("a PROXY protocol header");
        rp_metrics_rejected(w->id, RP_REJECT_OUT_OF_MEMORY);
        return -1;
    }
    hs->w = w;
    hs->fd = fd;
    hs->pp = l->proxy_protocol;
    hs->pp_snap = rp_snapshot_ref(w->snap);
    hs->pp_l = l;
    hs->peer = *peer;
    TAILQ_INSERT_TAIL(&w->handshakes, hs, link);
    rp_event_add(hs->timer, rp_timeout_tv(w->base, w->snap->timeouts.client_header_ms));
    rp_event_add(hs->pp_ev, NULL);
    pp_try(hs, false);   /* it usually comes with the connection's first bytes */
    return 0;
}

int
rp_accept(rp_worker_t *w, int fd, const struct sockaddr *sa, const rp_listener_t *l)
{
    rp_peer_t peer;
    memset(&peer, 0, sizeof peer);
    peer_from_sockaddr(&peer, sa);
    peer.accepted_us = rp_now_us();
    peer.listener = l->ident;
    if (l->proxy_protocol != 0) {
        /* Only a balancer listed in trusted_proxies may say whose a
         * connection is; anyone else is closed unread. */
        rp_ip_t ip;
        if (rp_ip_parse(peer.ip, strlen(peer.ip), false, &ip) != 0
            || !rp_cidr_any(w->snap->trusted, w->snap->ntrusted, &ip)) {
            close(fd);
            rp_metrics_rejected(w->id, RP_REJECT_PP_UNTRUSTED);
            rp_log(RP_LOG_DEBUG, NULL, "connection from %s refused: not in trusted_proxies, "
                   "on a listener with proxy_protocol", peer.text);
            return -1;
        }
        return pp_wait(w, fd, &peer, l);
    }
    return accept_go(w, fd, &peer, l);
}
