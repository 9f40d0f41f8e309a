/* SPDX-License-Identifier: MIT */
/*
 * Worker threads (see worker.h): listening sockets, accepting, the global
 * connection cap, the start handshake and orderly stop.  Listening sockets
 * are created and bound on the main thread so that start-up fails before any
 * thread runs; module start hooks run on the worker threads, and the main
 * thread waits for all of them before it reports start-up done.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/module.h"
#include "revproxy/txn.h"
#include "accept.h"
#include "conn.h"
#include "h2.h"
#include "pool.h"
#include "proxy.h"
#include "queue.h"
#include "worker.h"
#include "failmalloc.h"
#include "mem.h"
#include "ws.h"
#include "util.h"
#include "io.h"

atomic_uint rp_active_conns;
_Atomic unsigned rp_max_conns;

static rp_worker_t *workers;
static unsigned nworkers;

rp_worker_t *
rp_worker_get(unsigned id)
{
    return id < nworkers ? &workers[id] : NULL;
}

unsigned
rp_worker_count(void)
{
    return nworkers;
}

/* Start handshake.  Each worker runs its modules' start hooks, reports,
 * and waits for the verdict; the main thread waits for every report, then
 * lets all workers run, or, when one failed, tells them all to stop. */
enum { GATE_PENDING, GATE_RUN, GATE_ABORT };
static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    unsigned        reported;   /* workers done with their start hooks */
    unsigned        failed;     /* of which failed */
    int             verdict;
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int
bind_only(const rp_addr_t *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Bound and listening. */
static int
bind_listener(const rp_addr_t *a)
{
    int fd = bind_only(a);
    if (fd >= 0 && listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void
set_accepting(rp_worker_t *w, bool on)
{
    if (w->draining)
        return;   /* its listeners are closing or closed */
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (on)
            evconnlistener_enable(w->listeners[i]);
        else
            evconnlistener_disable(w->listeners[i]);
    }
    w->accept_paused = !on;
    if (!on) {
        struct timeval tv = { 0, 100000 };
        rp_event_add(w->accept_timer, &tv);
    }
}

static void
accept_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t *w = arg;
    (void)fd;
    (void)what;
    if (!w->accept_paused)
        return;
    if (atomic_load(&rp_active_conns) < rp_max_conns)
        set_accepting(w, true);
    else
        set_accepting(w, false);
}

void
rp_worker_conn_closed(rp_worker_t *w, unsigned listener)
{
    atomic_fetch_sub(&rp_active_conns, 1);
    w->nconns--;
    rp_metrics_conn_closed(w->id, listener);
    if (w->accept_paused && atomic_load(&rp_active_conns) < rp_max_conns)
        set_accepting(w, true);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int socklen, void *arg)
{
    rp_listen_ctx_t *lc = arg;
    rp_worker_t *w = lc->w;
    (void)l;
    (void)socklen;
    unsigned n = atomic_fetch_add(&rp_active_conns, 1) + 1;
    /* Connections taken from a closing listener's queue are served even
     * past the cap (the backlog bounds them): closing would reset them. */
    if (n > rp_max_conns && !w->from_queue) {
        /* Another worker took the last slot: refuse this one and stop
         * accepting until a slot frees up. */
        atomic_fetch_sub(&rp_active_conns, 1);
        close(fd);
        rp_metrics_rejected(w->id, RP_REJECT_MAX_CONNECTIONS);
        set_accepting(w, false);
        return;
    }
    w->nconns++;
    const rp_listener_t *li = &w->snap->listeners[lc->index];
    rp_metrics_conn_opened(w->id, li->ident);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rp_accept(w, fd, sa, li) < 0) {
        rp_worker_conn_closed(w, li->ident);
        return;
    }
    if (n >= rp_max_conns)
        set_accepting(w, false);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    rp_listen_ctx_t *lc = arg;
    rp_worker_t *w = lc->w;
    int e = EVUTIL_SOCKET_ERROR();
    (void)l;
    /* EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full
     * descriptor table; said once a second at most (per worker), with the
     * pauses since. */
    w->accept_errors++;
    uint64_t now = rp_now_us();
    if (w->accept_error_logged_us == 0 || now - w->accept_error_logged_us >= 1000000u) {
        rp_log(RP_LOG_WARN, NULL, "accept: %s; pausing accepts for 100 ms (%u time%s since the "
               "last line)", strerror(e), w->accept_errors, w->accept_errors == 1 ? "" : "s");
        w->accept_errors = 0;
        w->accept_error_logged_us = now;
    }
    set_accepting(w, false);
}

static bool
worker_empty(const rp_worker_t *w)
{
    return TAILQ_EMPTY(&w->conns) && TAILQ_EMPTY(&w->idles) && TAILQ_EMPTY(&w->h2s) && TAILQ_EMPTY(&w->handshakes)
           && TAILQ_EMPTY(&w->tunnels) && TAILQ_EMPTY(&w->lingering);
}

static void
drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t *w = arg;
    (void)fd;
    (void)what;
    if (worker_empty(w)) {
        atomic_store(&w->drained, true);
        evtimer_del(w->drain_check);
    }
}

/* Accept what waits in each listening socket's queue (so that nothing
 * there is reset), then close the sockets. */
/* Accept what waits in listener i's queue (bounded by its backlog). */
static void
accept_queue(rp_worker_t *w, size_t i)
{
    struct evconnlistener *l = w->listeners[i];
    evutil_socket_t lfd = evconnlistener_get_fd(l);
    w->from_queue = true;
    for (unsigned n = 0; n < 100000; n++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            && n < 100) {
            struct timespec ts = { 0, 10000000 };   /* descriptors free as others close */
            nanosleep(&ts, NULL);
            continue;
        }
        if (fd < 0)
            break;   /* EAGAIN: empty */
        accept_cb(l, fd, (struct sockaddr *)&ss, (int)len, &w->lctx[i]);
    }
    w->from_queue = false;
}

/* Accept what waits in each listening socket's queue and close it at
 * once, one after the other. */
static void
drain_listeners(rp_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        accept_queue(w, i);
        evconnlistener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    w->nlisteners = 0;
}

static void
worker_drain(rp_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = true;
    drain_listeners(w);
    rp_conn_t *c, *next;
    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        rp_conn_drain(c);
    }
    rp_conn_idles_close(w, true, 0);   /* idle keep-alive: closed at once */
    rp_h2_drain_all(w);
    rp_ws_going_away_all(w, false, 0);
    rp_pools_drain(w);
    w->drain_check = event_new(w->base, -1, EV_PERSIST, drain_check_cb, w);
    struct timeval tv = { 0, 20000 };
    if (w->drain_check != NULL)
        rp_event_add(w->drain_check, &tv);
    else
        atomic_store(&w->drained, worker_empty(w));
}

static void
handover_free(rp_handover_t *h)
{
    if (h == NULL)
        return;
    for (size_t j = 0; h->fds != NULL && j < h->nfds; j++)
        if (h->fds[j] >= 0)
            close(h->fds[j]);
    free(h->fds);
    free(h->ls);
    free(h->lc);
    if (h->snap != NULL)
        rp_snapshot_unref(h->snap);
    free(h);
}

/* A hand-over for a snapshot of n listeners (no snapshot, no sockets
 * yet), or NULL when out of memory. */
static rp_handover_t *
handover_new(size_t n)
{
    rp_handover_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->fds = malloc((n + 1) * sizeof *h->fds);
    h->ls = calloc(RP_MAX_LISTENERS + 1, sizeof *h->ls);
    h->lc = calloc(RP_MAX_LISTENERS + 1, sizeof *h->lc);
    h->nfds = n;
    for (size_t j = 0; h->fds != NULL && j < n; j++)
        h->fds[j] = -1;
    if (h->fds == NULL || h->ls == NULL || h->lc == NULL) {
        h->nfds = 0;
        handover_free(h);
        return NULL;
    }
    return h;
}

/* The hand-overs of the reload being prepared, one per worker
 * (rp_workers_bind_new), taken by rp_workers_publish_with. */
static rp_handover_t **prepared;

static void
prepared_free(void)
{
    for (unsigned i = 0; prepared != NULL && i < nworkers; i++)
        handover_free(prepared[i]);
    free(prepared);
    prepared = NULL;
}

bool
rp_worker_listener_gone(const rp_worker_t *w, unsigned ident)
{
    for (size_t i = 0; i < w->snap->nlisteners; i++)
        if (w->snap->listeners[i].ident == ident)
            return false;
    return true;
}

/* Switch to the hand-over's snapshot: listeners it keeps carry on (with
 * their new position), new ones start, dropped ones accept what waits in
 * their queues and close, and their connections drain. */
static void
worker_switch(rp_worker_t *w, rp_handover_t *h)
{
    rp_snapshot_t *old = w->snap, *next = h->snap;
    size_t n = next->nlisteners;
    bool *kept = h->kept;   /* (zeroed, room for RP_MAX_LISTENERS) */
    int *from = h->from;    /* old position + 1, 0: new */
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < w->nlisteners && from[j] == 0; i++)
            if (!kept[i] && strcmp(old->listeners[w->lctx[i].index].addr.text,
                                   next->listeners[j].addr.text) == 0) {
                kept[i] = true;
                from[j] = (int)i + 1;
            }
    /* Dropped: their queues are served (with the old snapshot, which
     * their positions refer to), then they close. */
    if (!w->draining) {
        for (size_t i = 0; i < w->nlisteners; i++) {
            if (kept[i])
                continue;
            accept_queue(w, i);
        }
    }
    struct evconnlistener **ls = h->ls;
    rp_listen_ctx_t *lc = h->lc;
    h->ls = NULL;
    h->lc = NULL;
    size_t nl = 0;
    for (size_t j = 0; j < n && !w->draining; j++) {
        struct evconnlistener *l = NULL;
        if (from[j] > 0) {
            l = w->listeners[from[j] - 1];
        } else if (h->fds != NULL && h->fds[j] >= 0) {
            l = evconnlistener_new(w->base, accept_cb, NULL,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, h->fds[j]);
            if (l == NULL) {
                rp_log(RP_LOG_ERROR, NULL, "worker %u: listen on %s: cannot create listener",
                       w->id, next->listeners[j].addr.text);
                close(h->fds[j]);
            } else {
                evconnlistener_set_error_cb(l, accept_error_cb);
                if (w->accept_paused)
                    evconnlistener_disable(l);
            }
            h->fds[j] = -1;
        }
        if (l == NULL)
            continue;
        lc[nl].w = w;
        lc[nl].index = j;
        ls[nl] = l;
        nl++;
    }
    for (size_t i = 0; i < nl; i++)
        evconnlistener_set_cb(ls[i], accept_cb, &lc[i]);
    unsigned *gone = h->gone;
    size_t ngone = 0;
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (kept[i] && !w->draining)
            continue;
        if (!kept[i])
            gone[ngone++] = old->listeners[w->lctx[i].index].ident;
        if (!kept[i] || w->draining)
            evconnlistener_free(w->listeners[i]);
    }
    free(w->listeners);
    free(w->lctx);
    w->listeners = ls;
    w->lctx = lc;
    w->nlisteners = nl;
    w->snap = next;
    h->snap = NULL;
    /* Connections that came through a dropped listener: no further
     * exchange, as at shutdown. */
    for (size_t g = 0; g < ngone; g++) {
        rp_conn_t *c, *cn;
        for (c = TAILQ_FIRST(&w->conns); c != NULL; c = cn) {
            cn = TAILQ_NEXT(c, link);
            if (c->peer.listener == gone[g])
                rp_conn_drain(c);
        }
        rp_conn_idles_close(w, false, gone[g]);
        rp_h2_drain_listener(w, gone[g]);
        rp_ws_going_away_all(w, true, gone[g]);
    }
    handover_free(h);
    rp_snapshot_unref(old);   /* freed here if nothing else holds it */
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    rp_worker_t *w = arg;
    char b;
    (void)what;
    if (read((int)fd, &b, 1) != 1)
        return;
    if (b == 'd') {
        worker_drain(w);
        return;
    }
    if (b == 'r') {
        rp_handover_t *h = atomic_exchange(&w->pending, NULL);
        if (h != NULL)
            worker_switch(w, h);
        return;
    }
    event_del(w->stop_ev);
    if (w->drain_check != NULL)
        evtimer_del(w->drain_check);
    w->cut = 0;
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_free(w->listeners[i]);
    w->nlisteners = 0;
    rp_conn_t *c;
    while ((c = TAILQ_FIRST(&w->conns)) != NULL) {
        if (c->txn != NULL) {
            w->cut++;
            rp_txn_abort(c->txn, RP_CLOSE_SHUTDOWN, RP_ERR_SHUTDOWN, "revproxy is stopping");
        }
        rp_conn_free(c);
    }
    rp_conn_idles_close(w, true, 0);
    rp_handshake_t *hs;
    while ((hs = TAILQ_FIRST(&w->handshakes)) != NULL)
        rp_handshake_free(hs);
    rp_h2_t *h;
    while ((h = TAILQ_FIRST(&w->h2s)) != NULL)
        w->cut += rp_h2_stop(h);
    w->cut += rp_ws_stop_all(w);
    rp_conn_lingering_free(w);
    rp_pools_free(w);
    event_base_loopbreak(w->base);
}

static void
signal_stop(rp_worker_t *w, const char *cmd)
{
    while (write(w->stop_pipe[1], cmd, 1) < 0 && errno == EINTR)
        ;
}

static void *
worker_main(void *arg)
{
    rp_worker_t *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    rp_fm_worker_thread();
    /* Without its buffer a worker's access lines go one by one. */
    if (rp_log_worker_start(w->base) < 0)
        rp_log(RP_LOG_WARN, NULL, "worker %u: no access log buffer; access lines go one by one",
               w->id);
    /* A failed start has already undone itself (rp_modules_start). */
    bool started = rp_modules_start(w, w->snap) == 0;
    pthread_mutex_lock(&gate.lock);
    gate.reported++;
    if (!started)
        gate.failed++;
    pthread_cond_broadcast(&gate.cond);
    while (gate.verdict == GATE_PENDING)
        pthread_cond_wait(&gate.cond, &gate.lock);
    bool run = gate.verdict == GATE_RUN;
    pthread_mutex_unlock(&gate.lock);
    if (started) {
        if (run)
            event_base_dispatch(w->base);
        rp_modules_stop(w, w->snap);
    }
    rp_log_worker_stop();
    rp_txn_cache_free();
    rp_h2_cache_free();
    rp_mem_cache_free();
    return NULL;
}

static void
worker_cleanup(rp_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_free(w->listeners[i]);
    free(w->listeners);
    free(w->lctx);
    if (w->accept_timer)
        event_free(w->accept_timer);
    if (w->drain_check)
        event_free(w->drain_check);
    if (w->stop_ev)
        event_free(w->stop_ev);
    rp_queue_worker_free(w);
    handover_free(atomic_exchange(&w->pending, NULL));
    if (w->base)
        event_base_free(w->base);
    for (int i = 0; i < 2; i++)
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
    rp_snapshot_unref(w->snap);
}

int
rp_workers_start(rp_snapshot_t *snap)
{
    nworkers = snap->workers;
    workers = calloc(nworkers, sizeof *workers);
    if (workers == NULL) {
        rp_log(RP_LOG_ERROR, NULL, "out of memory for %u workers", nworkers);
        nworkers = 0;
        return -1;
    }
    /* Every worker's descriptors read "none" before any is created: a
     * failure part way cleans up all of them. */
    for (unsigned i = 0; i < nworkers; i++) {
        workers[i].stop_pipe[0] = workers[i].stop_pipe[1] = -1;
        workers[i].mb_fd = -1;
        pthread_mutex_init(&workers[i].mb_lock, NULL);
    }
    for (unsigned i = 0; i < nworkers; i++) {
        rp_worker_t *w = &workers[i];
        w->id = i;
        TAILQ_INIT(&w->conns);
        TAILQ_INIT(&w->idles);
        TAILQ_INIT(&w->handshakes);
        TAILQ_INIT(&w->h2s);
        TAILQ_INIT(&w->tunnels);
        TAILQ_INIT(&w->lingering);
        w->snap = rp_snapshot_ref(snap);
        struct event_config *ec = event_config_new();
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
        if (w->base == NULL) {
            rp_log(RP_LOG_ERROR, NULL, "worker %u: cannot create event base", i);
            goto fail;
        }
        w->accept_timer = evtimer_new(w->base, accept_timer_cb, w);
        if (pipe2(w->stop_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
            rp_log(RP_LOG_ERROR, NULL, "worker %u: pipe: %s", i, strerror(errno));
            goto fail;
        }
        w->stop_ev = event_new(w->base, w->stop_pipe[0], EV_READ | EV_PERSIST, stop_cb, w);
        if (w->accept_timer == NULL || w->stop_ev == NULL || event_add(w->stop_ev, NULL) < 0) {
            rp_log(RP_LOG_ERROR, NULL, "worker %u: cannot create its events", i);
            goto fail;
        }
        if (rp_queue_worker_init(w) < 0) {
            rp_log(RP_LOG_ERROR, NULL, "worker %u: mailbox: %s", i, strerror(errno));
            goto fail;
        }
        w->listeners = calloc(snap->nlisteners, sizeof *w->listeners);
        w->lctx = calloc(snap->nlisteners, sizeof *w->lctx);
        if (w->listeners == NULL || w->lctx == NULL) {
            rp_log(RP_LOG_ERROR, NULL, "worker %u: out of memory", i);
            goto fail;
        }
        for (size_t j = 0; j < snap->nlisteners; j++) {
            int fd = bind_listener(&snap->listeners[j].addr);
            if (fd < 0) {
                rp_log(RP_LOG_ERROR, NULL, "listen on %s: %s", snap->listeners[j].addr.text,
                       strerror(errno));
                goto fail;
            }
            w->lctx[j].w = w;
            w->lctx[j].index = j;
            struct evconnlistener *l = evconnlistener_new(w->base, accept_cb, &w->lctx[j],
                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
            if (l == NULL) {
                close(fd);
                rp_log(RP_LOG_ERROR, NULL, "listen on %s: cannot create listener",
                       snap->listeners[j].addr.text);
                goto fail;
            }
            evconnlistener_set_error_cb(l, accept_error_cb);
            w->listeners[w->nlisteners++] = l;
        }
    }
    /* No worker serves before every one has started its modules. */
    pthread_mutex_lock(&gate.lock);
    gate.reported = gate.failed = 0;
    gate.verdict = GATE_PENDING;
    pthread_mutex_unlock(&gate.lock);
    unsigned running = 0;
    for (; running < nworkers; running++) {
        if (pthread_create(&workers[running].thread, NULL, worker_main, &workers[running]) != 0) {
            rp_log(RP_LOG_ERROR, NULL, "cannot start worker thread %u", running);
            break;
        }
    }
    pthread_mutex_lock(&gate.lock);
    while (gate.reported < running)
        pthread_cond_wait(&gate.cond, &gate.lock);
    unsigned failed = gate.failed;
    gate.verdict = running == nworkers && failed == 0 ? GATE_RUN : GATE_ABORT;
    pthread_cond_broadcast(&gate.cond);
    bool ok = gate.verdict == GATE_RUN;
    pthread_mutex_unlock(&gate.lock);
    if (!ok) {
        for (unsigned i = 0; i < running; i++)
            pthread_join(workers[i].thread, NULL);
        if (failed > 0)
            rp_log(RP_LOG_ERROR, NULL, "start-up failed: %u of %u workers could not start their modules",
                   failed, nworkers);
        goto fail;
    }
    return 0;
fail:
    for (unsigned i = 0; i < nworkers; i++)
        worker_cleanup(&workers[i]);
    free(workers);
    workers = NULL;
    nworkers = 0;
    return -1;
}

unsigned
rp_workers_stop(void)
{
    unsigned cut = 0;
    for (unsigned i = 0; i < nworkers; i++)
        signal_stop(&workers[i], "s");
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        cut += workers[i].cut;
        worker_cleanup(&workers[i]);
    }
    free(workers);
    workers = NULL;
    nworkers = 0;
    return cut;
}

int *
rp_workers_bind_new(const rp_snapshot_t *cur, const rp_snapshot_t *next, rp_errs_t *errs)
{
    size_t n = next->nlisteners;
    prepared_free();
    int *fds = malloc((nworkers * n + 1) * sizeof *fds);
    prepared = calloc(nworkers, sizeof *prepared);
    for (unsigned i = 0; prepared != NULL && i < nworkers; i++)
        if ((prepared[i] = handover_new(n)) == NULL)
            break;
    if (fds == NULL || prepared == NULL || (nworkers > 0 && prepared[nworkers - 1] == NULL)) {
        free(fds);
        prepared_free();
        rp_errs_add(errs, "", "out of memory preparing the workers' switch");
        return NULL;
    }
    for (size_t k = 0; k < nworkers * n; k++)
        fds[k] = -1;
    for (size_t j = 0; j < n; j++) {
        bool known = false;
        for (size_t i = 0; i < cur->nlisteners && !known; i++)
            known = strcmp(cur->listeners[i].addr.text, next->listeners[j].addr.text) == 0;
        for (unsigned w = 0; w < nworkers && !known; w++) {
            /* Bound only: a connection must not queue on a socket that
             * a dropped reload would close (it listens once published). */
            int fd = bind_only(&next->listeners[j].addr);
            if (fd < 0) {
                char p[64];
                snprintf(p, sizeof p, "listeners[%zu].address", j);
                rp_errs_add(errs, p, "cannot listen on %s: %s", next->listeners[j].addr.text,
                            strerror(errno));
                for (size_t k = 0; k < nworkers * n; k++)
                    if (fds[k] >= 0)
                        close(fds[k]);
                free(fds);
                prepared_free();
                return NULL;
            }
            fds[w * n + j] = fd;
        }
    }
    return fds;
}

void
rp_workers_unbind(const rp_snapshot_t *next, int *fds)
{
    for (size_t k = 0; fds != NULL && k < nworkers * next->nlisteners; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    free(fds);
    prepared_free();
}

void
rp_workers_publish_with(rp_snapshot_t *snap, int *fds)
{
    size_t n = snap->nlisteners;
    for (size_t k = 0; fds != NULL && k < nworkers * n; k++) {
        if (fds[k] >= 0 && listen(fds[k], 511) < 0) {
            rp_log(RP_LOG_ERROR, NULL, "reload: cannot listen on %s: %s",
                   snap->listeners[k % n].addr.text, strerror(errno));
            close(fds[k]);
            fds[k] = -1;
        }
    }
    for (unsigned i = 0; i < nworkers; i++) {
        rp_handover_t *h = prepared != NULL ? prepared[i] : NULL;
        if (prepared != NULL)
            prepared[i] = NULL;
        else if ((h = handover_new(n)) == NULL)
            rp_die_oom();   /* (a publication without rp_workers_bind_new) */
        h->snap = rp_snapshot_ref(snap);
        for (size_t j = 0; j < n; j++)
            h->fds[j] = fds != NULL ? fds[i * n + j] : -1;
        /* A hand-over the worker has not taken yet is replaced; sockets
         * it bound for listeners this one keeps move over (the worker
         * still runs without them). */
        rp_handover_t *was = atomic_exchange(&workers[i].pending, NULL);
        for (size_t k = 0; was != NULL && k < was->nfds; k++) {
            if (was->fds[k] < 0)
                continue;
            for (size_t j = 0; j < n; j++) {
                if (h->fds[j] < 0
                    && strcmp(was->snap->listeners[k].addr.text, snap->listeners[j].addr.text) == 0) {
                    h->fds[j] = was->fds[k];
                    was->fds[k] = -1;
                    break;
                }
            }
        }
        handover_free(was);
        handover_free(atomic_exchange(&workers[i].pending, h));
        signal_stop(&workers[i], "r");
    }
    free(fds);
    prepared_free();
}

void
rp_workers_publish(rp_snapshot_t *snap)
{
    rp_workers_publish_with(snap, NULL);
}

void
rp_workers_drain(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        signal_stop(&workers[i], "d");
}

bool
rp_workers_drained(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        if (!atomic_load(&workers[i].drained))
            return false;
    return true;
}


