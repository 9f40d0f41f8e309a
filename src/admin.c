/* SPDX-License-Identifier: MIT */
/*
 * The admin port: a small HTTP/1.1 server on the main thread's event
 * base, apart from the traffic listeners and their workers, so a flood
 * there cannot starve it and a slow scrape cannot slow traffic.
 *
 * Bounded in every way: at most RP_ADMIN_MAX_CONNS connections at once
 * (the listener stops accepting at the cap and the kernel's backlog holds
 * the rest), a request head of RP_ADMIN_MAX_HEAD bytes, no request body,
 * one request at a time per connection (a pipelined one waits until the
 * answer is out), and RP_ADMIN_TIMEOUT_MS for each request to arrive and
 * for each answer to leave.  Requests are parsed by llhttp as strictly as
 * on the traffic ports.  With a token, every endpoint requires
 * "Authorization: Bearer <token>" (compared in constant time), 401
 * otherwise.
 */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <llhttp.h>
#include "revproxy/config.h"
#include "revproxy/http.h"
#include "revproxy/log.h"
#include <jansson.h>
#include "admin.h"
#include "failmalloc.h"
#include "reload.h"
#include "util.h"
#include "io.h"

typedef struct aconn aconn_t;
struct aconn {
    TAILQ_ENTRY(aconn)  link;
    struct bufferevent *bev;
    struct event       *timer;     /* the request must arrive by then */
    llhttp_t            parser;
    rp_http_head_t      head;
    bool                answering; /* an answer is going out; input waits */
    bool                waiting;   /* for the reload it asked for to end */
    bool                close_after;
    bool                complete;  /* the request parsed whole */
    bool                value_at_end; /* the last value span ended where the
                                         bytes being parsed did */
    const char         *exec_end;  /* end of the bytes being parsed */
    size_t              head_bytes;/* bytes of the request so far, blank lines and
                                      whitespace included */
    int                 status;    /* an error found while parsing (413, 431) */
    char                peer[64];
};

static struct {
    struct event_base     *base;
    struct evconnlistener *lst;
    rp_snapshot_t         *snap;       /* ref */
    TAILQ_HEAD(, aconn)    conns;
    unsigned               nconns;
    bool                   paused;     /* at the cap: not accepting */
    bool                   starved;    /* out of descriptors: not accepting for a while */
    struct event          *retry;      /* ends starved */
    time_t                 logged_401; /* refusals are logged once a second at most */
    unsigned long          refused;    /* since the last line */
    bool                   ready;
    bool                   draining;
    uint64_t               start_unix_ms;
    aconn_t               *reload_waiter; /* its POST /reload waits */
} A;

static llhttp_settings_t settings;

static void
peer_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

/* ---- parsing ---- */

static int
on_message_begin(llhttp_t *p)
{
    aconn_t *c = p->data;
    rp_http_head_reset(&c->head);
    c->complete = false;
    c->status = 0;
    return 0;
}

static int
too_large(aconn_t *c, int status)
{
    c->status = status;
    return HPE_USER;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    aconn_t *c = p->data;
    return rp_http_head_add_target(&c->head, at, len) < 0 ? too_large(c, 431) : 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    aconn_t *c = p->data;
    if (c->head.last_cb != 1 && c->head.nfields >= RP_ADMIN_MAX_FIELDS)
        return too_large(c, 431);
    return rp_http_head_add_name(&c->head, at, len) < 0 ? too_large(c, 431) : 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    aconn_t *c = p->data;
    /* A value that goes on although its last span ended inside the
     * bytes being parsed: llhttp joined an obs-fold line.  Refused, as on
     * the traffic ports. */
    if (c->head.last_cb == 2 && !c->value_at_end) {
        c->status = 400;
        return HPE_USER;
    }
    c->value_at_end = at + len == c->exec_end;
    return rp_http_head_add_value(&c->head, at, len) < 0 ? too_large(c, 431) : 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    aconn_t *c = p->data;
    if (rp_http_head_finish(&c->head) < 0)
        return too_large(c, 431);
    if (!rp_http_names_ok(&c->head)) {
        c->status = 400;
        return HPE_USER;
    }
    c->head.method = p->method;
    c->head.major = p->http_major;
    c->head.minor = p->http_minor;
    /* As on the traffic ports: HTTP/1.1 needs one Host, none has two. */
    unsigned hosts = 0;
    rp_http_find(&c->head, "host", &hosts);
    if (hosts > 1 || (hosts == 0 && p->http_major == 1 && p->http_minor >= 1)) {
        c->status = 400;
        return HPE_USER;
    }
    if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)) {
        c->status = 413;   /* no endpoint takes a body */
        return HPE_USER;
    }
    /* No upgrade here: answered, then closed. */
    c->close_after = !llhttp_should_keep_alive(p) || p->upgrade;
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    aconn_t *c = p->data;
    c->complete = true;
    return HPE_PAUSED;   /* one request at a time */
}

/* ---- connections ---- */

static void
set_accepting(void)
{
    bool want = A.nconns < RP_ADMIN_MAX_CONNS && !A.starved;
    if (A.lst == NULL || want == !A.paused)
        return;
    if (want)
        evconnlistener_enable(A.lst);
    else
        evconnlistener_disable(A.lst);
    A.paused = !want;
}

static void
conn_free(aconn_t *c)
{
    if (A.reload_waiter == c) {
        rp_reload_forget(c);
        A.reload_waiter = NULL;
    }
    TAILQ_REMOVE(&A.conns, c, link);
    A.nconns--;
    bufferevent_free(c->bev);
    event_free(c->timer);
    rp_http_head_free(&c->head);
    free(c);
    set_accepting();
}

static void
arm_timer(aconn_t *c)
{
    struct timeval tv = { RP_ADMIN_TIMEOUT_MS / 1000, (RP_ADMIN_TIMEOUT_MS % 1000) * 1000 };
    rp_event_add(c->timer, &tv);
}

/* Queue an answer; the connection reads again once it is out (or closes
 * when close_after). */
static void
answer(aconn_t *c, int status, const char *ctype, const char *extra_headers,
       struct evbuffer *body, bool head_only)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = body != NULL ? evbuffer_get_length(body) : 0;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                        status, rp_http_reason(status), ctype, len,
                        extra_headers != NULL ? extra_headers : "",
                        c->close_after ? "Connection: close\r\n" : "");
    if (body != NULL && !head_only)
        evbuffer_add_buffer(out, body);
    c->answering = true;
    /* The whole answer must leave in time (the write timeout alone would
     * let a slow reader keep the connection for as long as it reads). */
    arm_timer(c);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_enable(c->bev, EV_WRITE);
}

static void
answer_text(aconn_t *c, int status, const char *extra_headers, const char *text, bool head_only)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        c->close_after = true;   /* out of memory: an empty answer, then closed */
        answer(c, 503, "text/plain; charset=utf-8", NULL, NULL, head_only);
        return;
    }
    evbuffer_add(b, text, strlen(text));
    answer(c, status, "text/plain; charset=utf-8", extra_headers, b, head_only);
    evbuffer_free(b);
}

/* Constant-time check of "Bearer <token>" (the scheme in any case). */
static bool
authorized(const aconn_t *c)
{
    const char *tok = A.snap->admin.token;
    if (tok == NULL)
        return true;
    unsigned n = 0;
    const rp_hfield_t *f = rp_http_find(&c->head, "authorization", &n);
    if (f == NULL || n != 1)
        return false;
    const char *v = rp_hf_value(&c->head, f);
    size_t vl = f->value_len, tl = strlen(tok);
    if (vl < 7 || !rp_ascii_ieq_lc(v, "bearer ", 7))
        return false;
    v += 7;
    vl -= 7;
    while (vl > 0 && *v == ' ') {
        v++;
        vl--;
    }
    /* The time spent depends on the token's length only, never on where
     * a guess first differs. */
    bool same_len = vl == tl;
    int diff = CRYPTO_memcmp(same_len ? v : tok, tok, tl);
    return same_len && diff == 0;
}

typedef void endpoint_fn(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype,
                         int *status);

static void
ep_healthz(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype, int *status)
{
    (void)snap;
    (void)ctype;
    (void)status;
    evbuffer_add_printf(out, "ok\n");
}

static void
ep_ready(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype, int *status)
{
    (void)snap;
    (void)ctype;
    if (A.ready) {
        evbuffer_add_printf(out, "ready\n");
    } else {
        *status = 503;
        evbuffer_add_printf(out, A.draining ? "draining\n" : "starting\n");
    }
}

static void
ep_metrics(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype, int *status)
{
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (rp_expo_prometheus(out, snap, A.start_unix_ms) < 0)
        *status = 503;
}

static void
ep_stats(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype, int *status)
{
    *ctype = "application/json";
    if (rp_expo_stats(out, snap, A.start_unix_ms) < 0)
        *status = 503;
}

static void
ep_config(struct evbuffer *out, rp_snapshot_t *snap, const char **ctype, int *status)
{
    *ctype = "application/json";
    if (rp_expo_config(out, snap) < 0)
        *status = 503;
}

/* POST /reload: the result as JSON, with every error and its JSON path
 * (200 when it took effect, 409 when the old configuration stays).  A
 * reload that waits for the host names it adds answers when it ends. */
static void
reload_answer(aconn_t *c, int rc, const rp_errs_t *errs)
{
    json_t *e = json_array();
    for (size_t i = 0; i < errs->count; i++)
        json_array_append_new(e, json_string(errs->msgs[i]));
    json_t *root = json_pack("{s:s,s:I,s:o}", "result", rc == 0 ? "success" : "failure",
                             "generation", (json_int_t)rp_reload_current()->generation,
                             "errors", e);
    char *text = root != NULL ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    struct evbuffer *b = text != NULL ? evbuffer_new() : NULL;
    if (b == NULL) {
        rp_json_free(text);
        c->close_after = true;
        answer(c, 503, "text/plain; charset=utf-8", NULL, NULL, false);
        return;
    }
    evbuffer_add_printf(b, "%s\n", text);
    rp_json_free(text);
    answer(c, rc == 0 ? 200 : 409, "application/json", NULL, b, false);
    evbuffer_free(b);
}

static void
reload_done(int rc, const rp_errs_t *errs, void *arg)
{
    aconn_t *c = arg;
    A.reload_waiter = NULL;
    c->waiting = false;
    reload_answer(c, rc, errs);
}

static void
ep_reload(aconn_t *c)
{
    rp_errs_t errs = { 0 };
    int rc = -1;
    if (A.draining)
        rp_errs_add(&errs, "", "revproxy is draining: no reload");
    else
        rc = rp_reload("POST /reload on the admin port", &errs, reload_done, c);
    if (rc == 1) {
        /* Input waits, and the answer must still leave in time. */
        A.reload_waiter = c;
        c->waiting = true;
        c->answering = true;
        bufferevent_disable(c->bev, EV_READ);
        arm_timer(c);
    } else {
        reload_answer(c, rc, &errs);
    }
    rp_errs_free(&errs);
}

#ifdef RP_FAILMALLOC
/* POST /failmalloc?after=N[&count=K][&scope=workers|reload][&only=own] (a
 * --enable-failmalloc build only): arms allocation-failure injection and
 * answers what the previous arming counted and failed; after=0 disarms. */
static void
ep_failmalloc(aconn_t *c, const char *q, size_t ql)
{
    long after = -1, count = 1;
    bool own = false;
    enum rp_fm_scope scope = RP_FM_WORKERS;
    char query[128];
    if (ql >= sizeof query)
        ql = sizeof query - 1;
    memcpy(query, q, ql);
    query[ql] = '\0';
    char *save = NULL;
    for (char *kv = strtok_r(query, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
        if (strncmp(kv, "after=", 6) == 0)
            after = strtol(kv + 6, NULL, 10);
        else if (strncmp(kv, "count=", 6) == 0)
            count = strtol(kv + 6, NULL, 10);
        else if (strcmp(kv, "scope=reload") == 0)
            scope = RP_FM_RELOAD;
        else if (strcmp(kv, "only=own") == 0)
            own = true;
        else if (strcmp(kv, "scope=workers") != 0)
            after = -1;
    }
    if (after < 0) {
        answer_text(c, 400, NULL, "usage: POST /failmalloc?after=N[&count=K]"
                    "[&scope=workers|reload][&only=own]\n", false);
        return;
    }
    unsigned long counted, failed;
    rp_fm_arm(after, count, scope, own, &counted, &failed);
    char text[96];
    snprintf(text, sizeof text, "{\"counted\": %lu, \"failed\": %lu}\n", counted, failed);
    answer_text(c, 200, NULL, text, false);
}
#endif

static const struct {
    const char  *path;
    endpoint_fn *fn;
    bool         post;     /* POST only; else GET and HEAD */
} endpoints[] = {
    { "/healthz", ep_healthz, false },
    { "/ready", ep_ready, false },
    { "/metrics", ep_metrics, false },
    { "/stats", ep_stats, false },
    { "/config", ep_config, false },
    { "/reload", NULL, true },
};

static void
serve(aconn_t *c)
{
    const char *target = c->head.buf + c->head.target_off;
    size_t tl = c->head.target_len;
    const char *q = memchr(target, '?', tl);
    size_t pl = q != NULL ? (size_t)(q - target) : tl;
    bool head_only = c->head.method == HTTP_HEAD;
    if (!authorized(c)) {
        /* One guess per connection, and a line a second at most. */
        c->close_after = true;
        A.refused++;
        time_t now = time(NULL);
        if (now != A.logged_401) {
            rp_log(RP_LOG_INFO, NULL, "admin: %s: %s %.*s: 401 (no valid token; %lu refused "
                   "since the last line)", c->peer, rp_http_method_str(c->head.method),
                   (int)(pl > 256 ? 256 : pl), target, A.refused);
            A.logged_401 = now;
            A.refused = 0;
        }
        answer_text(c, 401, "WWW-Authenticate: Bearer realm=\"revproxy admin\"\r\n",
                    "unauthorized: this admin port requires Authorization: Bearer <token>\n",
                    head_only);
        return;
    }
#ifdef RP_FAILMALLOC
    if (pl == 11 && memcmp(target, "/failmalloc", 11) == 0 && c->head.method == HTTP_POST) {
        ep_failmalloc(c, q != NULL ? q + 1 : "", q != NULL ? tl - pl - 1 : 0);
        return;
    }
#endif
    for (size_t i = 0; i < RP_ARRAY_LEN(endpoints); i++) {
        if (strlen(endpoints[i].path) != pl || memcmp(endpoints[i].path, target, pl) != 0)
            continue;
        if (endpoints[i].post ? c->head.method != HTTP_POST
                              : c->head.method != HTTP_GET && c->head.method != HTTP_HEAD) {
            answer_text(c, 405, endpoints[i].post ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n",
                        "method not allowed\n", head_only);
            return;
        }
        if (endpoints[i].fn == NULL) {
            ep_reload(c);
            return;
        }
        struct evbuffer *b = evbuffer_new();
        if (b == NULL) {
            c->close_after = true;
            answer(c, 503, "text/plain; charset=utf-8", NULL, NULL, head_only);
            return;
        }
        const char *ctype = "text/plain; charset=utf-8";
        int status = 200;
        endpoints[i].fn(b, A.snap, &ctype, &status);
        if (status == 503 && endpoints[i].fn != ep_ready) {
            /* Out of memory: never a partial document with 200. */
            evbuffer_drain(b, evbuffer_get_length(b));
            evbuffer_add_printf(b, "out of memory\n");
            ctype = "text/plain; charset=utf-8";
        }
        answer(c, status, ctype, NULL, b, head_only);
        evbuffer_free(b);
        return;
    }
    answer_text(c, 404, NULL,
                "not found: the admin port serves /healthz /ready /metrics /stats /config "
                "/reload\n",
                head_only);
}

/* An error found while reading: answered, then closed. */
static void
refuse(aconn_t *c, int status, const char *why)
{
    /* A line a second at most: anyone who can connect could flood it. */
    static time_t logged;
    static unsigned long since;
    time_t now = time(NULL);
    since++;
    if (now != logged) {
        rp_log(RP_LOG_INFO, NULL, "admin: %s: %d: %s (%lu refused since the last line)", c->peer,
               status, why, since);
        logged = now;
        since = 0;
    }
    c->close_after = true;
    char text[160];
    snprintf(text, sizeof text, "%s\n", why);
    answer_text(c, status, NULL, text, false);
}

static void
process(aconn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->answering) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        const char *data = (const char *)evbuffer_pullup(in, -1);
        if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
            llhttp_resume(&c->parser);
        c->exec_end = data + len;
        llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
        size_t used = len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (err == HPE_PAUSED_UPGRADE) {
            err = HPE_PAUSED;   /* complete; closed after its answer */
            c->close_after = true;
        }
        /* Every byte of a request counts, blank lines and whitespace
         * that the head does not keep included. */
        c->head_bytes += used;
        if (!c->complete && c->head_bytes > RP_ADMIN_MAX_HEAD && err == HPE_OK) {
            c->status = 431;
            err = HPE_USER;
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            int st = c->status != 0 ? c->status : 400;
            refuse(c, st, st == 431 ? "request head too large"
                          : st == 413 ? "the admin port takes no request body"
                                      : "bad request");
            evbuffer_drain(in, len);
            return;
        }
        evbuffer_drain(in, used);
        if (!c->complete)
            return;   /* more bytes to come */
        c->complete = false;
        c->head_bytes = 0;   /* the next request counts from here */
        serve(c);
    }
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    aconn_t *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 || !c->answering || c->waiting)
        return;
    if (c->close_after) {
        conn_free(c);
        return;
    }
    c->answering = false;
    arm_timer(c);
    bufferevent_enable(c->bev, EV_READ);
    process(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;   /* end of stream, an error, or the write timeout */
    conn_free(arg);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    /* The request did not arrive in time, or its answer did not leave:
     * reset, so that what the kernel still holds for a slow reader goes
     * too. */
    aconn_t *c = arg;
    struct linger lg = { 1, 0 };
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_free(c);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
    (void)l;
    (void)salen;
    (void)arg;
    aconn_t *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c != NULL ? bufferevent_socket_new(A.base, fd, BEV_OPT_CLOSE_ON_FREE)
                                        : NULL;
    struct event *t = bev != NULL ? evtimer_new(A.base, timer_cb, c) : NULL;
    if (t == NULL) {
        if (bev != NULL)
            bufferevent_free(bev);
        else
            close(fd);
        free(c);
        return;
    }
    c->bev = bev;
    c->timer = t;
    peer_text(sa, c->peer, sizeof c->peer);
    rp_http_head_init(&c->head, RP_ADMIN_MAX_HEAD);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    TAILQ_INSERT_TAIL(&A.conns, c, link);
    A.nconns++;
    set_accepting();
    struct timeval wt = { RP_ADMIN_TIMEOUT_MS / 1000, (RP_ADMIN_TIMEOUT_MS % 1000) * 1000 };
    bufferevent_set_timeouts(bev, NULL, &wt);
    /* Input is bounded by the head limit plus one read. */
    bufferevent_setwatermark(bev, EV_READ, 0, RP_ADMIN_MAX_HEAD + 1024);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(bev, EV_READ);
    arm_timer(c);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    A.starved = false;
    set_accepting();
}

/* Out of descriptors (or buffers): the connection stays in the backlog,
 * so accepting again at once would spin; wait 100 ms, log once a second. */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    static time_t logged;
    time_t now = time(NULL);
    if (now != logged) {
        rp_log(RP_LOG_WARN, NULL, "admin: accept: %s; pausing the admin port for 100 ms",
               strerror(e));
        logged = now;
    }
    A.starved = true;
    set_accepting();
    struct timeval tv = { 0, 100000 };
    rp_event_add(A.retry, &tv);
}

int
rp_admin_start(struct event_base *base, rp_snapshot_t *snap, uint64_t start_unix_ms)
{
    if (!snap->admin.enabled)
        return 0;
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_message_complete = on_message_complete;
    TAILQ_INIT(&A.conns);
    A.base = base;
    A.start_unix_ms = start_unix_ms;
    const rp_addr_t *a = &snap->admin.addr;
    /* Bound as the traffic listeners are: an IPv6 address is IPv6 only. */
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ss.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 64) < 0
        || (A.lst = evconnlistener_new(base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd)) == NULL
        || (A.retry = evtimer_new(base, retry_cb, NULL)) == NULL) {
        rp_log(RP_LOG_ERROR, NULL, "admin.address: cannot listen on %s: %s", a->text,
               strerror(errno));
        if (A.lst != NULL)
            evconnlistener_free(A.lst);
        else if (fd >= 0)
            close(fd);
        A.lst = NULL;
        return -1;
    }
    evconnlistener_set_error_cb(A.lst, accept_error_cb);
    A.snap = rp_snapshot_ref(snap);
    rp_log(RP_LOG_INFO, NULL, "admin port on %s%s", a->text,
           snap->admin.token != NULL ? " (token required)" : "");
    return 0;
}

void
rp_admin_set_ready(bool ready)
{
    A.ready = ready;
}

void
rp_admin_set_snapshot(rp_snapshot_t *snap)
{
    if (A.snap == NULL)
        return;
    rp_snapshot_t *old = A.snap;
    A.snap = rp_snapshot_ref(snap);
    rp_snapshot_unref(old);
}

void
rp_admin_set_draining(void)
{
    A.ready = false;
    A.draining = true;
}

void
rp_admin_stop(void)
{
    if (A.lst == NULL)
        return;
    while (!TAILQ_EMPTY(&A.conns))
        conn_free(TAILQ_FIRST(&A.conns));
    evconnlistener_free(A.lst);
    A.lst = NULL;
    event_free(A.retry);
    A.retry = NULL;
    rp_snapshot_unref(A.snap);
    A.snap = NULL;
}
