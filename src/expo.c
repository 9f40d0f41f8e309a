/* SPDX-License-Identifier: MIT */
/*
 * Rendering the figures for the admin port: the Prometheus text
 * exposition (format 0.0.4) and the same figures as JSON, with the state
 * of every backend.  Labels come only from configured names (route label,
 * upstream name, backend address, listener address) and fixed words
 * (status class, reason words, results); never from a request.
 */
#include "config.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include "revproxy/bstate.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/metrics.h"
#include "revproxy/ratelimit.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "revproxy/upstream.h"
#include "accept.h"
#include "admin.h"
#include "queue.h"
#include "reload.h"
#include "util.h"

_Static_assert(RP_ATTEMPT_COUNT <= 8, "rp_upstream_metrics_t.by_result holds every result");

/* Histogram bounds as they are written in "le" (seconds). */
static const char *const le_text[RP_HIST_BOUNDS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30", "60",
};

static const char *const class_text[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
static const char *const proto_text[3] = { "unknown", "http/1", "http/2" };

/* The label used for requests that matched no route. */
#define NO_ROUTE_LABEL "none"

/* The lowercase name of HTTP/2 error code i ("other" past the known ones). */
static void
h2_code_name(unsigned i, char *out, size_t cap)
{
    if (i >= RP_H2_CODES - 1) {
        snprintf(out, cap, "other");
        return;
    }
    const char *n = nghttp2_http2_strerror((uint32_t)i);
    size_t k = 0;
    for (; n[k] != '\0' && k + 1 < cap; k++)
        out[k] = (char)(n[k] >= 'A' && n[k] <= 'Z' ? n[k] - 'A' + 'a' : n[k]);
    out[k] = '\0';
}

/* ---- Prometheus ---- */

/* The exposition is built in a buffer of its own and handed to the
 * evbuffer in large pieces: tens of thousands of short appends would
 * cost more than the figures. */
typedef struct pout {
    struct evbuffer *eb;
    size_t           n;
    int              err;
    char             b[16384];
} pout_t;

static void
pflush(pout_t *o)
{
    if (o->n > 0 && evbuffer_add(o->eb, o->b, o->n) < 0)
        o->err = -1;
    o->n = 0;
}

static void
pput(pout_t *o, const char *s, size_t n)
{
    if (n > sizeof o->b - o->n) {
        pflush(o);
        if (n > sizeof o->b) {
            if (evbuffer_add(o->eb, s, n) < 0)
                o->err = -1;
            return;
        }
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
}

static void
pstr(pout_t *o, const char *s)
{
    pput(o, s, strlen(s));
}

static void
pu64(pout_t *o, uint64_t v)
{
    char d[24];
    size_t n = sizeof d;
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    pput(o, d + n, sizeof d - n);
}

static void
family(pout_t *o, const char *name, const char *type, const char *help)
{
    pstr(o, "# HELP ");
    pstr(o, name);
    pput(o, " ", 1);
    pstr(o, help);
    pstr(o, "\n# TYPE ");
    pstr(o, name);
    pput(o, " ", 1);
    pstr(o, type);
    pput(o, "\n", 1);
}

/* A label value, escaped (backslash, double quote, newline). */
static void
label_value(pout_t *o, const char *v)
{
    const char *run = v;
    for (; *v != '\0'; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (esc == NULL)
            continue;
        pput(o, run, (size_t)(v - run));
        pput(o, esc, 2);
        run = v + 1;
    }
    pput(o, run, (size_t)(v - run));
}

/* name{k1="v1",k2="v2"}: labels as a NULL-terminated list of key, value
 * pairs. */
static void
series(pout_t *o, const char *name, const char *suffix, const char *const *labels)
{
    pstr(o, name);
    if (suffix != NULL)
        pstr(o, suffix);
    if (labels != NULL && labels[0] != NULL) {
        pput(o, "{", 1);
        for (size_t i = 0; labels[i] != NULL; i += 2) {
            if (i > 0)
                pput(o, ",", 1);
            pstr(o, labels[i]);
            pput(o, "=\"", 2);
            label_value(o, labels[i + 1]);
            pput(o, "\"", 1);
        }
        pput(o, "}", 1);
    }
    pput(o, " ", 1);
}

static void
sample(pout_t *o, const char *name, const char *const *labels, const char *value)
{
    series(o, name, NULL, labels);
    pstr(o, value);
    pput(o, "\n", 1);
}

static void
sample_u(pout_t *o, const char *name, const char *const *labels, uint64_t v)
{
    series(o, name, NULL, labels);
    pu64(o, v);
    pput(o, "\n", 1);
}

/* A histogram's series for one set of labels (up to 4 pairs). */
static void
histogram(pout_t *o, const char *name, const char *const *labels, const rp_hist_t *h)
{
    const char *l[12];
    size_t k = 0;
    for (; labels[k] != NULL && k < 8; k++)
        l[k] = labels[k];
    l[k] = "le";
    l[k + 2] = NULL;
    uint64_t cum = 0;
    for (unsigned i = 0; i <= RP_HIST_BOUNDS; i++) {
        cum += h->bucket[i];
        l[k + 1] = i < RP_HIST_BOUNDS ? le_text[i] : "+Inf";
        series(o, name, "_bucket", l);
        pu64(o, cum);
        pput(o, "\n", 1);
    }
    series(o, name, "_sum", labels);
    pu64(o, h->sum_us / 1000000u);
    char frac[8] = { '.', (char)('0' + h->sum_us / 100000 % 10), (char)('0' + h->sum_us / 10000 % 10),
                     (char)('0' + h->sum_us / 1000 % 10), (char)('0' + h->sum_us / 100 % 10),
                     (char)('0' + h->sum_us / 10 % 10), (char)('0' + h->sum_us % 10), '\n' };
    pput(o, frac, sizeof frac);
    series(o, name, "_count", labels);
    pu64(o, cum);
    pput(o, "\n", 1);
}

/* What the admin shows of one backend position. */
typedef struct bview {
    const rp_upstream_t *u;
    const rp_backend_t  *be;   /* the configured entry */
    rp_bstate_t         *bs;
} bview_t;

/* Call fn for every filled position of every upstream of snap (each
 * backend identity once). */
static void
each_backend(const rp_snapshot_t *snap, void (*fn)(const bview_t *b, void *arg), void *arg)
{
    for (size_t i = 0; i < snap->nupstreams; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        for (size_t k = 0; k < u->npos; k++) {
            rp_pos_t p;
            if (!rp_upstream_pos(u, k, &p))
                continue;   /* empty, or an address another position holds */
            bview_t b = { u, p.be, rp_bstate(p.id) };
            fn(&b, arg);
        }
    }
}

static bool
backend_up(const rp_bstate_t *bs)
{
    return atomic_load(&bs->health) != RP_HEALTH_UNHEALTHY;
}

typedef struct prom_ctx {
    pout_t          *o;
    int              which;
} prom_ctx_t;

static void
prom_backend(const bview_t *b, void *arg)
{
    prom_ctx_t *c = arg;
    const char *l[] = { "upstream", b->u->name, "backend", b->bs->addr.text, NULL, NULL, NULL };
    switch (c->which) {
    case 0:
        sample_u(c->o, "revproxy_upstream_up", l, backend_up(b->bs));
        break;
    case 1:
        l[4] = "to";
        for (unsigned h = 0; h < RP_HEALTH_COUNT; h++) {
            l[5] = rp_health_name((rp_health_t)h);
            sample_u(c->o, "revproxy_upstream_health_transitions_total", l,
                     atomic_load(&b->bs->changes[h]));
        }
        break;
    case 2:
        sample_u(c->o, "revproxy_upstream_backend_active_requests", l,
                 atomic_load(&b->bs->active));
        break;
    case 3: {
        unsigned conns = atomic_load(&b->bs->conns), idle = atomic_load(&b->bs->idle);
        l[4] = "state";
        l[5] = "idle";
        sample_u(c->o, "revproxy_upstream_pool_connections", l, idle);
        l[5] = "active";
        sample_u(c->o, "revproxy_upstream_pool_connections", l, conns > idle ? conns - idle : 0);
        break;
    }
    }
}

static unsigned
upstream_active(const rp_upstream_t *u)
{
    unsigned n = 0;
    for (size_t k = 0; k < u->npos; k++) {
        rp_pos_t p;
        if (rp_upstream_pos(u, k, &p))
            n += atomic_load(&rp_bstate(p.id)->active);
    }
    return n;
}

/* The label of WebSocket close-code slot k. */
static void
ws_code_name(unsigned k, char *out, size_t cap)
{
    if (k == RP_WS_CODES - 1)
        snprintf(out, cap, "other");
    else if (rp_ws_codes[k] == 0)
        snprintf(out, cap, "none");
    else
        snprintf(out, cap, "%u", rp_ws_codes[k]);
}

static int prometheus(pout_t *o, const rp_snapshot_t *snap, uint64_t start_unix_ms);

int
rp_expo_prometheus(struct evbuffer *out, const rp_snapshot_t *snap, uint64_t start_unix_ms)
{
    pout_t *o = malloc(sizeof *o);
    if (o == NULL)
        return -1;
    o->eb = out;
    o->n = 0;
    o->err = 0;
    int rc = prometheus(o, snap, start_unix_ms);
    pflush(o);
    rc = rc < 0 || o->err < 0 ? -1 : 0;
    free(o);
    return rc;
}

static int
prometheus(pout_t *o, const rp_snapshot_t *snap, uint64_t start_unix_ms)
{
    rp_metrics_t m;
    rp_metrics_read(&m);

    family(o, "revproxy_build_info", "gauge", "Always 1; the version of the running binary.");
    const char *bl[] = { "version", PACKAGE_VERSION, NULL };
    sample(o, "revproxy_build_info", bl, "1");
    family(o, "revproxy_start_time_seconds", "gauge", "When the process started (Unix time).");
    char t[48];
    snprintf(t, sizeof t, "%" PRIu64 ".%03" PRIu64, start_unix_ms / 1000u, start_unix_ms % 1000u);
    sample(o, "revproxy_start_time_seconds", NULL, t);
    family(o, "revproxy_config_load_time_seconds", "gauge",
           "When the configuration in force was loaded (Unix time).");
    snprintf(t, sizeof t, "%" PRIu64 ".%03" PRIu64, snap->loaded_unix_ms / 1000u,
             snap->loaded_unix_ms % 1000u);
    sample(o, "revproxy_config_load_time_seconds", NULL, t);
    rp_reload_stats_t rs;
    rp_reload_stats(&rs);
    family(o, "revproxy_config_generation", "gauge",
           "The configuration in force: 1 at start, one more for each reload that took effect.");
    sample_u(o, "revproxy_config_generation", NULL, snap->generation);
    family(o, "revproxy_config_reloads_total", "counter", "Reloads tried, by result.");
    const char *ok[] = { "result", "success", NULL };
    sample_u(o, "revproxy_config_reloads_total", ok, rs.success);
    const char *ko[] = { "result", "failure", NULL };
    sample_u(o, "revproxy_config_reloads_total", ko, rs.failure);
    family(o, "revproxy_config_last_reload_success", "gauge",
           "1 when the last reload took effect (or none was tried), 0 when it failed.");
    sample_u(o, "revproxy_config_last_reload_success", NULL, rs.last_ok);

    /* connections */
    family(o, "revproxy_connections_active", "gauge", "Client connections open now, by listener.");
    for (size_t i = 0; i < snap->nlisteners; i++) {
        rp_listener_metrics_t lm;
        rp_metrics_listener(snap->listeners[i].ident, &lm);
        const char *l[] = { "listener", snap->listeners[i].addr.text, NULL };
        sample_u(o, "revproxy_connections_active", l, rp_listener_open(&lm));
    }
    family(o, "revproxy_connections_accepted_total", "counter",
           "Client connections accepted, by listener.");
    for (size_t i = 0; i < snap->nlisteners; i++) {
        rp_listener_metrics_t lm;
        rp_metrics_listener(snap->listeners[i].ident, &lm);
        const char *l[] = { "listener", snap->listeners[i].addr.text, NULL };
        sample_u(o, "revproxy_connections_accepted_total", l, lm.accepted);
    }
    family(o, "revproxy_connections_rejected_total", "counter",
           "Client connections closed at accept, by reason.");
    for (unsigned r = 0; r < RP_REJECT_COUNT; r++) {
        const char *l[] = { "reason", rp_reject_name((rp_reject_t)r), NULL };
        sample_u(o, "revproxy_connections_rejected_total", l, m.rejected[r]);
    }
    family(o, "revproxy_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    rp_tls_fail_count_t f[RP_TLS_FAIL_SLOTS + 1];
    size_t nf = rp_tls_failures(f, RP_TLS_FAIL_SLOTS + 1);
    for (size_t i = 0; i < nf && i <= RP_TLS_FAIL_SLOTS; i++) {
        const char *l[] = { "reason", f[i].reason, NULL };
        sample_u(o, "revproxy_tls_handshake_failures_total", l, f[i].count);
    }
    family(o, "revproxy_http2_goaways_total", "counter",
           "GOAWAY frames sent to HTTP/2 clients, by error code.");
    for (unsigned i = 0; i < RP_H2_CODES; i++) {
        char name[48];
        h2_code_name(i, name, sizeof name);
        const char *l[] = { "code", name, NULL };
        sample_u(o, "revproxy_http2_goaways_total", l, m.h2_goaways[i]);
    }

    family(o, "revproxy_websocket_tunnels_open", "gauge", "WebSocket tunnels open now.");
    sample_u(o, "revproxy_websocket_tunnels_open", NULL,
             m.ws_opened > m.ws_closed ? m.ws_opened - m.ws_closed : 0);
    family(o, "revproxy_websocket_tunnels_total", "counter", "WebSocket tunnels opened.");
    sample_u(o, "revproxy_websocket_tunnels_total", NULL, m.ws_opened);
    static const char *const dirs[2] = { "client_to_backend", "backend_to_client" };
    family(o, "revproxy_websocket_messages_total", "counter",
           "WebSocket messages relayed by ended tunnels, by direction.");
    for (unsigned d = 0; d < 2; d++) {
        const char *l[] = { "direction", dirs[d], NULL };
        sample_u(o, "revproxy_websocket_messages_total", l, m.ws_msgs[d]);
    }
    family(o, "revproxy_websocket_payload_bytes_total", "counter",
           "WebSocket payload bytes relayed by ended tunnels, by direction.");
    for (unsigned d = 0; d < 2; d++) {
        const char *l[] = { "direction", dirs[d], NULL };
        sample_u(o, "revproxy_websocket_payload_bytes_total", l, m.ws_bytes[d]);
    }
    family(o, "revproxy_websocket_closes_total", "counter",
           "WebSocket tunnels ended, by the close code recorded (\"none\": no Close, "
           "\"other\": a code not listed).");
    for (unsigned k = 0; k < RP_WS_CODES; k++) {
        char code[16];
        ws_code_name(k, code, sizeof code);
        const char *l[] = { "code", code, NULL };
        sample_u(o, "revproxy_websocket_closes_total", l, m.ws_codes[k]);
    }

    /* requests: each route's figures summed once, "none" last */
    size_t nroutes = 0;
    const rp_route_t *routes = rp_router_routes(snap, &nroutes);
    rp_route_metrics_t *rms = calloc(nroutes + 1, sizeof *rms);
    if (rms == NULL) {
        return -1;
    }
    for (size_t i = 0; i < nroutes; i++)
        rp_metrics_route(routes[i].ident, &rms[i]);
    memcpy(rms[nroutes].by_class, m.unrouted_by_class, sizeof m.unrouted_by_class);
    rms[nroutes].duration = m.unrouted_duration;
    family(o, "revproxy_http_requests_total", "counter",
           "Requests answered, by route and status class (route \"" NO_ROUTE_LABEL
           "\": before or without a route).");
    for (size_t i = 0; i <= nroutes; i++) {
        for (unsigned c = 0; c < 6; c++) {
            const char *l[] = { "route", i < nroutes ? routes[i].label : NO_ROUTE_LABEL, "code",
                                class_text[c], NULL };
            sample_u(o, "revproxy_http_requests_total", l, rms[i].by_class[c]);
        }
    }
    family(o, "revproxy_http_request_duration_seconds", "histogram",
           "Time from a complete request head to the end of the exchange, by route.");
    for (size_t i = 0; i <= nroutes; i++) {
        const char *l[] = { "route", i < nroutes ? routes[i].label : NO_ROUTE_LABEL, NULL };
        histogram(o, "revproxy_http_request_duration_seconds", l, &rms[i].duration);
    }
    free(rms);
    family(o, "revproxy_http_errors_total", "counter",
           "Requests the proxy answered itself or cut, by reason word (revproxy(8) DIAGNOSTICS).");
    for (unsigned e = 1; e < RP_ERR_COUNT; e++) {
        const char *l[] = { "reason", rp_error_name((rp_error_t)e), NULL };
        sample_u(o, "revproxy_http_errors_total", l, m.by_error[e]);
    }
    family(o, "revproxy_http_requests_by_protocol_total", "counter",
           "Requests by protocol (unknown: failed before the version was read).");
    for (unsigned p = 0; p < 3; p++) {
        const char *l[] = { "protocol", proto_text[p], NULL };
        sample_u(o, "revproxy_http_requests_by_protocol_total", l, m.by_protocol[p]);
    }
    family(o, "revproxy_http_request_body_bytes_total", "counter", "Request body bytes received.");
    sample_u(o, "revproxy_http_request_body_bytes_total", NULL, m.bytes_in);
    family(o, "revproxy_http_response_bytes_total", "counter", "Response bytes sent to clients.");
    sample_u(o, "revproxy_http_response_bytes_total", NULL, m.bytes_out);
    family(o, "revproxy_log_lines_dropped_total", "counter",
           "Log lines (access lines included) dropped because the log could not keep up.");
    sample_u(o, "revproxy_log_lines_dropped_total", NULL, rp_log_dropped());
    family(o, "revproxy_http2_abusive_connections_total", "counter",
           "HTTP/2 connections closed for abuse (ENHANCE_YOUR_CALM).");
    sample_u(o, "revproxy_http2_abusive_connections_total", NULL, m.h2_calm);

    /* upstreams */
    static const struct {
        const char *name, *type, *help;
    } up_fams[] = {
        { "revproxy_upstream_requests_total", "counter", "Requests sent to the upstream." },
        { "revproxy_upstream_attempts_total", "counter", "Tries at a backend, by result." },
        { "revproxy_upstream_connect_errors_total", "counter",
          "Connections to a backend that failed (refused, unreachable); timeouts are counted apart." },
        { "revproxy_upstream_timeouts_total", "counter",
          "Tries that timed out, by phase (connect, response)." },
        { "revproxy_upstream_retries_total", "counter", "Tries after a request's first." },
        { "revproxy_upstream_retry_budget_exhausted_total", "counter",
          "Retries the retry budget refused." },
        { "revproxy_upstream_request_duration_seconds", "histogram",
          "Time of each try, from connecting to the end of the response." },
        { "revproxy_upstream_active_requests", "gauge", "Requests in flight to the upstream now." },
        { "revproxy_upstream_queued_requests", "gauge", "Requests waiting in the upstream's queue." },
    };
    rp_upstream_metrics_t *ums = calloc(snap->nupstreams + 1, sizeof *ums);
    if (ums == NULL) {
        return -1;
    }
    for (size_t i = 0; i < snap->nupstreams; i++)
        rp_metrics_upstream(snap->upstreams[i].uq, &ums[i]);
    for (size_t fi = 0; fi < RP_ARRAY_LEN(up_fams); fi++) {
        family(o, up_fams[fi].name, up_fams[fi].type, up_fams[fi].help);
        for (size_t i = 0; i < snap->nupstreams; i++) {
            const rp_upstream_t *u = &snap->upstreams[i];
            const rp_upstream_metrics_t um = ums[i];
            const char *l[] = { "upstream", u->name, NULL, NULL, NULL };
            const char *n = up_fams[fi].name;
            switch (fi) {
            case 0:
                sample_u(o, n, l, um.requests);
                break;
            case 1:
                l[2] = "result";
                for (unsigned r = 0; r < RP_ATTEMPT_COUNT; r++) {
                    l[3] = rp_attempt_result_name((rp_attempt_result_t)r);
                    sample_u(o, n, l, um.by_result[r]);
                }
                break;
            case 2:
                sample_u(o, n, l, um.by_result[RP_ATTEMPT_CONNECT_ERROR]);
                break;
            case 3:
                l[2] = "phase";
                l[3] = "connect";
                sample_u(o, n, l, um.by_result[RP_ATTEMPT_CONNECT_TIMEOUT]);
                l[3] = "response";
                sample_u(o, n, l, um.by_result[RP_ATTEMPT_TIMEOUT]);
                break;
            case 4:
                sample_u(o, n, l, um.retries);
                break;
            case 5:
                sample_u(o, n, l, um.budget_exhausted);
                break;
            case 6:
                histogram(o, n, l, &um.duration);
                break;
            case 7:
                sample_u(o, n, l, upstream_active(u));
                break;
            case 8:
                sample_u(o, n, l, rp_queue_len(u->uq));
                break;
            }
        }
    }
    free(ums);
    static const struct {
        const char *name, *type, *help;
    } be_fams[] = {
        { "revproxy_upstream_up", "gauge",
          "1 when the backend takes traffic (healthy or recovering), 0 when it is out." },
        { "revproxy_upstream_health_transitions_total", "counter",
          "Times the backend entered each health state." },
        { "revproxy_upstream_backend_active_requests", "gauge",
          "Requests in flight to the backend now, all workers." },
        { "revproxy_upstream_pool_connections", "gauge",
          "Open connections to the backend: idle in pools, or active with a request." },
    };
    for (int fi = 0; fi < (int)RP_ARRAY_LEN(be_fams); fi++) {
        family(o, be_fams[fi].name, be_fams[fi].type, be_fams[fi].help);
        prom_ctx_t c = { o, fi };
        each_backend(snap, prom_backend, &c);
    }
    return 0;
}

/* ---- JSON ---- */

/* Write root (and drop it); -1 when it could not be formatted. */
static int
dump_json(struct evbuffer *out, json_t *root)
{
    char *text = root != NULL ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                                 | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(root);
    if (text == NULL)
        return -1;
    int rc = evbuffer_add(out, text, strlen(text)) == 0 && evbuffer_add(out, "\n", 1) == 0 ? 0 : -1;
    rp_json_free(text);
    return rc;
}

static json_t *
hist_json(const rp_hist_t *h)
{
    json_t *b = json_object();
    uint64_t cum = 0;
    for (unsigned i = 0; i <= RP_HIST_BOUNDS; i++) {
        cum += h->bucket[i];
        json_object_set_new(b, i < RP_HIST_BOUNDS ? le_text[i] : "+Inf", json_integer((json_int_t)cum));
    }
    return json_pack("{s:I,s:f,s:o}", "count", (json_int_t)cum, "sum", (double)h->sum_us / 1e6,
                     "buckets", b);
}

static json_t *
classes_json(const uint64_t *cls)
{
    json_t *o = json_object();
    for (unsigned c = 0; c < 6; c++)
        json_object_set_new(o, class_text[c], json_integer((json_int_t)cls[c]));
    return o;
}

static json_t *
unix_json(uint64_t ms)
{
    return json_real((double)ms / 1000.0);
}

typedef struct stats_ctx {
    json_t  *ups;
    uint64_t start_unix_ms;
} stats_ctx_t;

static void
stats_backend(const bview_t *b, void *arg)
{
    stats_ctx_t *c = arg;
    json_t *u = json_object_get(c->ups, b->u->name);
    json_t *list = json_object_get(u, "backends");
    rp_bstate_t *bs = b->bs;
    char why[128];
    uint64_t since = rp_bstate_last(bs, why, sizeof why);
    unsigned conns = atomic_load(&bs->conns), idle = atomic_load(&bs->idle);
    json_t *tr = json_object();
    for (unsigned h = 0; h < RP_HEALTH_COUNT; h++)
        json_object_set_new(tr, rp_health_name((rp_health_t)h),
                            json_integer((json_int_t)atomic_load(&bs->changes[h])));
    json_t *o = json_pack("{s:s,s:s,s:b,s:o,s:s,s:o,s:I,s:{s:I,s:I},s:I}",
        "address", bs->addr.text,
        "health", rp_health_name((rp_health_t)atomic_load(&bs->health)),
        "up", backend_up(bs),
        "since", unix_json(since != 0 ? since : c->start_unix_ms),
        "last_transition_reason", since != 0 ? why : "start",
        "transitions", tr,
        "active_requests", (json_int_t)atomic_load(&bs->active),
        "connections", "active", (json_int_t)(conns > idle ? conns - idle : 0),
        "idle", (json_int_t)idle,
        "weight", (json_int_t)b->be->weight);
    if (b->be->name != NULL)
        json_object_set_new(o, "name", json_string(b->be->addr.text));
    if (b->be->max_connections > 0)
        json_object_set_new(o, "max_connections", json_integer(b->be->max_connections));
    json_array_append_new(list, o);
}

int
rp_expo_stats(struct evbuffer *out, const rp_snapshot_t *snap, uint64_t start_unix_ms)
{
    rp_metrics_t m;
    rp_metrics_read(&m);
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string(PACKAGE_VERSION));
    json_object_set_new(root, "start_time", unix_json(start_unix_ms));
    rp_reload_stats_t rld;
    rp_reload_stats(&rld);
    json_object_set_new(root, "config", json_pack("{s:s,s:o,s:I,s:{s:I,s:I,s:b}}",
        "sha256", snap->sha256, "loaded_at", unix_json(snap->loaded_unix_ms),
        "generation", (json_int_t)snap->generation,
        "reloads", "success", (json_int_t)rld.success, "failure", (json_int_t)rld.failure,
        "last_ok", rld.last_ok));
    /* connections */
    json_t *lst = json_object();
    for (size_t i = 0; i < snap->nlisteners; i++) {
        rp_listener_metrics_t lm;
        rp_metrics_listener(snap->listeners[i].ident, &lm);
        json_object_set_new(lst, snap->listeners[i].addr.text,
                            json_pack("{s:I,s:I}", "active", (json_int_t)rp_listener_open(&lm),
                                      "accepted", (json_int_t)lm.accepted));
    }
    json_t *rej = json_object();
    for (unsigned r = 0; r < RP_REJECT_COUNT; r++)
        json_object_set_new(rej, rp_reject_name((rp_reject_t)r), json_integer((json_int_t)m.rejected[r]));
    json_t *tls = json_object();
    rp_tls_fail_count_t f[RP_TLS_FAIL_SLOTS + 1];
    size_t nf = rp_tls_failures(f, RP_TLS_FAIL_SLOTS + 1);
    for (size_t i = 0; i < nf && i <= RP_TLS_FAIL_SLOTS; i++)
        json_object_set_new(tls, f[i].reason, json_integer((json_int_t)f[i].count));
    json_t *ga = json_object();
    for (unsigned i = 0; i < RP_H2_CODES; i++) {
        char name[48];
        h2_code_name(i, name, sizeof name);
        json_object_set_new(ga, name, json_integer((json_int_t)m.h2_goaways[i]));
    }
    json_t *wsc = json_object();
    for (unsigned k = 0; k < RP_WS_CODES; k++) {
        char code[16];
        ws_code_name(k, code, sizeof code);
        json_object_set_new(wsc, code, json_integer((json_int_t)m.ws_codes[k]));
    }
    json_object_set_new(root, "ratelimit", rp_ratelimit_stats(snap));
    json_object_set_new(root, "websocket", json_pack("{s:I,s:I,s:{s:I,s:I},s:{s:I,s:I},s:o}",
        "open", (json_int_t)(m.ws_opened > m.ws_closed ? m.ws_opened - m.ws_closed : 0),
        "opened", (json_int_t)m.ws_opened,
        "messages", "client_to_backend", (json_int_t)m.ws_msgs[0],
        "backend_to_client", (json_int_t)m.ws_msgs[1],
        "payload_bytes", "client_to_backend", (json_int_t)m.ws_bytes[0],
        "backend_to_client", (json_int_t)m.ws_bytes[1],
        "closes", wsc));
    json_object_set_new(root, "connections", json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:I}",
        "active", (json_int_t)rp_metrics_active_connections(&m),
        "accepted", (json_int_t)m.connections_accepted,
        "listeners", lst, "rejected", rej, "tls_handshake_failures", tls,
        "http2_goaways", ga, "http2_abusive", (json_int_t)m.h2_calm));
    /* requests */
    json_t *errors = json_object();
    for (unsigned e = 1; e < RP_ERR_COUNT; e++)
        json_object_set_new(errors, rp_error_name((rp_error_t)e), json_integer((json_int_t)m.by_error[e]));
    json_t *proto = json_object();
    for (unsigned p = 0; p < 3; p++)
        json_object_set_new(proto, proto_text[p], json_integer((json_int_t)m.by_protocol[p]));
    json_object_set_new(root, "requests", json_pack("{s:I,s:o,s:o,s:o,s:I,s:I,s:I}",
        "total", (json_int_t)m.requests, "by_class", classes_json(m.by_class),
        "by_protocol", proto, "errors", errors,
        "body_bytes_received", (json_int_t)m.bytes_in, "bytes_sent", (json_int_t)m.bytes_out,
        "retries", (json_int_t)m.retries));
    json_object_set_new(root, "log_lines_dropped", json_integer((json_int_t)rp_log_dropped()));
    /* routes */
    size_t nroutes = 0;
    const rp_route_t *routes = rp_router_routes(snap, &nroutes);
    json_t *rs = json_array();
    for (size_t i = 0; i < nroutes; i++) {
        rp_route_metrics_t rm;
        rp_metrics_route(routes[i].ident, &rm);
        json_array_append_new(rs, json_pack("{s:s,s:s,s:o,s:o}", "route", routes[i].label,
            "upstream", routes[i].upstream != NULL ? routes[i].upstream->name : "",
            "requests", classes_json(rm.by_class), "duration_seconds", hist_json(&rm.duration)));
    }
    json_array_append_new(rs, json_pack("{s:s,s:n,s:o,s:o}", "route", NO_ROUTE_LABEL,
        "upstream", "requests", classes_json(m.unrouted_by_class),
        "duration_seconds", hist_json(&m.unrouted_duration)));
    json_object_set_new(root, "routes", rs);
    /* upstreams and their backends */
    json_t *ups = json_object();
    for (size_t i = 0; i < snap->nupstreams; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        rp_upstream_metrics_t um;
        rp_metrics_upstream(u->uq, &um);
        json_t *res = json_object();
        for (unsigned r = 0; r < RP_ATTEMPT_COUNT; r++)
            json_object_set_new(res, rp_attempt_result_name((rp_attempt_result_t)r),
                                json_integer((json_int_t)um.by_result[r]));
        json_object_set_new(ups, u->name, json_pack(
            "{s:I,s:I,s:o,s:I,s:{s:I,s:I},s:I,s:I,s:I,s:I,s:o,s:[]}",
            "requests", (json_int_t)um.requests, "attempts", (json_int_t)um.attempts,
            "attempt_results", res,
            "connect_errors", (json_int_t)um.by_result[RP_ATTEMPT_CONNECT_ERROR],
            "timeouts", "connect", (json_int_t)um.by_result[RP_ATTEMPT_CONNECT_TIMEOUT],
            "response", (json_int_t)um.by_result[RP_ATTEMPT_TIMEOUT],
            "retries", (json_int_t)um.retries,
            "retry_budget_exhausted", (json_int_t)um.budget_exhausted,
            "active_requests", (json_int_t)upstream_active(u),
            "queued_requests", (json_int_t)rp_queue_len(u->uq),
            "duration_seconds", hist_json(&um.duration),
            "backends"));
    }
    stats_ctx_t c = { ups, start_unix_ms };
    each_backend(snap, stats_backend, &c);
    json_object_set_new(root, "upstreams", ups);
    return dump_json(out, root);
}

int
rp_expo_config(struct evbuffer *out, const rp_snapshot_t *snap)
{
    json_t *cfg = rp_snapshot_dump(snap);
    json_t *admin = json_object_get(cfg, "admin");
    if (admin != NULL && json_object_get(admin, "token") != NULL)
        json_object_set_new(admin, "token", json_string("(redacted)"));
    json_t *root = json_pack("{s:I,s:s,s:o,s:o}", "generation", (json_int_t)snap->generation,
                             "sha256", snap->sha256, "loaded_at", unix_json(snap->loaded_unix_ms),
                             "config", cfg);
    return dump_json(out, root);
}
