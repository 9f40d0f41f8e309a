/* SPDX-License-Identifier: MIT */
/*
 * The router: compiles the "routes" array into sorted tables at config load
 * and matches requests against them without allocating.  Precedence (see
 * revproxy/route.h): exact host, then the longest wildcard suffix, then any
 * host; within a host group the exact path, then the longest prefix that
 * ends at a segment boundary.  A host group with no matching path falls
 * through to the next group.  Paths arrive normalised (revproxy/path.h).
 */
#include "config.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/path.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "../src/util.h"

typedef struct host_group {
    const char  *host;      /* exact host, wildcard suffix (".example.com"), or NULL */
    size_t       host_len;
    rp_route_t **exact;     /* sorted by path */
    size_t       nexact;
    rp_route_t **prefix;    /* longest first */
    size_t       nprefix;
} host_group_t;

struct rp_router {
    rp_route_t   *routes;   /* owned */
    size_t        nroutes;
    host_group_t *exact;    /* sorted by host */
    size_t        nexact;
    host_group_t *wild;     /* longest suffix first */
    size_t        nwild;
    host_group_t  any;
};

static bool
valid_host_label_chars(const char *h)
{
    if (*h == '\0')
        return false;
    for (; *h; h++) {
        unsigned char c = (unsigned char)*h;
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return false;
    }
    return true;
}

static void
free_group(host_group_t *g)
{
    free(g->exact);
    free(g->prefix);
}

void
rp_router_free(rp_router_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nroutes; i++) {
        free(r->routes[i].host);
        free(r->routes[i].path);
    }
    free(r->routes);
    for (size_t i = 0; i < r->nexact; i++)
        free_group(&r->exact[i]);
    for (size_t i = 0; i < r->nwild; i++)
        free_group(&r->wild[i]);
    free(r->exact);
    free(r->wild);
    free_group(&r->any);
    free(r);
}

static const char *const route_keys[] = { "routes", "name", "host", "path", "path_prefix",
    "upstream", "timeouts", "retry", "websocket", "ratelimit", NULL };

/* A route's own timeouts: those that start once a route is chosen.  The
 * others bound what happens before (reading the head, idle connections). */
static void
parse_route_timeouts(const json_t *o, const char *p, const rp_snapshot_t *snap, rp_route_t *rt,
                     rp_errs_t *errs)
{
    static const char *const allowed[] = { "upstream_connect_ms", "upstream_response_ms",
                                           "request_ms", NULL };
    static const struct { const char *key; size_t off; uint64_t min; } t[] = {
        { "upstream_connect_ms", offsetof(rp_timeouts_t, upstream_connect_ms), 1 },
        { "upstream_response_ms", offsetof(rp_timeouts_t, upstream_response_ms), 1 },
        { "request_ms", offsetof(rp_timeouts_t, request_ms), 0 },
    };
    char q[512];
    rt->timeouts = snap->timeouts;
    const json_t *to = json_object_get(o, "timeouts");
    if (to == NULL)
        return;
    rp_conf_path(q, sizeof q, p, "timeouts");
    if (!json_is_object(to)) {
        rp_errs_add(errs, q, "must be an object, not %s", rp_conf_type_name(to));
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)to, key, v) {
        if (strcmp(key, "client_header_ms") == 0 || strcmp(key, "client_idle_ms") == 0
            || strcmp(key, "shutdown_drain_ms") == 0) {
            char k[600];
            rp_conf_path(k, sizeof k, q, key);
            rp_errs_add(errs, k, "not a route's: it applies before a route is chosen; "
                        "set it in the top-level timeouts");
        } else if (strcmp(key, "client_min_bytes_per_s") == 0) {
            char k[600];
            rp_conf_path(k, sizeof k, q, key);
            rp_errs_add(errs, k, "not a route's: it measures the whole client connection; "
                        "set it in the top-level timeouts");
        }
    }
    static const char *const before_route[] = { "client_header_ms", "client_idle_ms",
                                                "shutdown_drain_ms", "client_min_bytes_per_s",
                                                NULL };
    /* Keys reported above are not reported again as unknown. */
    json_t *rest = json_deep_copy(to);
    for (const char *const *k = before_route; *k != NULL; k++)
        json_object_del(rest, *k);
    rp_conf_keys(rest, q, allowed, NULL, errs);
    json_decref(rest);
    for (size_t i = 0; i < RP_ARRAY_LEN(t); i++) {
        uint64_t val = *(unsigned *)((char *)&rt->timeouts + t[i].off);
        rp_conf_uint(to, t[i].key, q, t[i].min, 86400000, &val, errs);
        *(unsigned *)((char *)&rt->timeouts + t[i].off) = (unsigned)val;
    }
}

static int
parse_route(const json_t *o, const char *p, const rp_snapshot_t *snap, rp_route_t *rt,
            rp_errs_t *errs)
{
    const char *const *allowed = route_keys + 1;
    static const char *const unsupported[] = { NULL };
    char q[512];
    size_t before = errs->total;
    if (!json_is_object(o)) {
        rp_errs_add(errs, p, "must be an object");
        return -1;
    }
    rp_conf_keys(o, p, allowed, unsupported, errs);

    const char *host = NULL, *path = NULL, *prefix = NULL, *up = NULL, *name = NULL;
    if (rp_conf_string(o, "name", p, &name, errs) == 0 && name != NULL) {
        size_t n = strlen(name), ok = n >= 1 && n <= 64;
        for (size_t i = 0; i < n && ok; i++)
            ok = isalnum((unsigned char)name[i]) || strchr("._:-", name[i]) != NULL;
        if (!ok) {
            rp_conf_path(q, sizeof q, p, "name");
            rp_errs_add(errs, q, "must be 1 to 64 letters, digits and ._:-");
            name = NULL;
        }
    }
    rp_conf_string(o, "host", p, &host, errs);
    rp_conf_string(o, "path", p, &path, errs);
    rp_conf_string(o, "path_prefix", p, &prefix, errs);
    rp_conf_string(o, "upstream", p, &up, errs);
    rp_conf_bool(o, "websocket", p, &rt->websocket, errs);

    if (host != NULL) {
        rp_conf_path(q, sizeof q, p, "host");
        char lower[256];
        size_t n = strlen(host);
        if (n == 0 || n >= sizeof lower) {
            rp_errs_add(errs, q, "must be 1 to 255 characters");
        } else {
            for (size_t i = 0; i <= n; i++)
                lower[i] = (char)tolower((unsigned char)host[i]);
            if (lower[n - 1] == '.')
                lower[--n] = '\0';
            if (strchr(lower, ':') != NULL)
                rp_errs_add(errs, q, "must not contain a port (routes match the host name only)");
            else if (strcmp(lower, "*") == 0 || strcmp(lower, "*.") == 0)
                rp_errs_add(errs, q, "\"*\" is not a host: leave host out to match any host");
            else if (lower[0] == '*' && (lower[1] != '.' || !valid_host_label_chars(lower + 2)
                                         || strchr(lower + 1, '*') != NULL))
                rp_errs_add(errs, q, "a wildcard must be written *.domain");
            else if (lower[0] != '*' && !valid_host_label_chars(lower))
                rp_errs_add(errs, q, "invalid host name \"%s\"", host);
            else if ((rt->host = strdup(lower)) == NULL)
                rp_errs_add(errs, q, "out of memory");
        }
    }
    if (path != NULL && prefix != NULL) {
        rp_errs_add(errs, p, "path and path_prefix are exclusive");
    } else {
        const char *v = path != NULL ? path : prefix != NULL ? prefix : "/";
        rp_conf_path(q, sizeof q, p, path != NULL ? "path" : "path_prefix");
        if (v[0] != '/')
            rp_errs_add(errs, q, "must start with /");
        else if (strlen(v) > 4096)
            rp_errs_add(errs, q, "longer than 4096 characters");
        else {
            bool bad = false;
            for (const char *c = v; *c; c++)
                if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '?' || *c == '#')
                    bad = true;
            if (bad) {
                rp_errs_add(errs, q, "must be a URL path without spaces, control characters, ? or #");
            } else {
                /* Requests are matched after normalisation; a route not
                 * in normal form could never match what it says. */
                char norm[4097];
                size_t len = strlen(v), nlen = len;
                memcpy(norm, v, len + 1);
                int rc = rp_path_normalize(norm, len, &nlen);
                if (rc < 0)
                    rp_errs_add(errs, q, "%s", rp_path_error(rc));
                else if (nlen != len || memcmp(norm, v, len) != 0)
                    rp_errs_add(errs, q, "not in normal form: requests are matched as \"%.*s\"",
                                (int)nlen, norm);
            }
            if ((rt->path = strdup(v)) == NULL)
                rp_errs_add(errs, q, "out of memory");
            rt->path_len = strlen(v);
            rt->prefix = path == NULL;
        }
    }
    parse_route_timeouts(o, p, snap, rt, errs);
    rp_conf_path(q, sizeof q, p, "upstream");
    if (json_object_get(o, "upstream") == NULL)
        rp_errs_add(errs, q, "required");
    else if (up != NULL && snap->nupstreams > 0
             && (rt->upstream = rp_snapshot_upstream(snap, up)) == NULL)
        rp_errs_add(errs, q, "unknown upstream \"%s\"", up);
    if (rt->upstream != NULL)
        rt->retry = rt->upstream->retry;
    const json_t *retry = json_object_get(o, "retry");
    if (retry != NULL) {
        rp_conf_path(q, sizeof q, p, "retry");
        rp_retry_parse(retry, q, &rt->retry, errs);
    }
    if (name != NULL)
        snprintf(rt->label, sizeof rt->label, "%s", name);
    else
        snprintf(rt->label, sizeof rt->label, "%s %s%s", rt->host ? rt->host : "*",
                 rt->path ? rt->path : "/", rt->prefix ? "*" : "");
    rt->named = name != NULL;
    return errs->total == before ? 0 : -1;
}

static int
cmp_exact(const void *a, const void *b)
{
    const rp_route_t *x = *(rp_route_t *const *)a, *y = *(rp_route_t *const *)b;
    return strcmp(x->path, y->path);
}

static int
cmp_prefix(const void *a, const void *b)
{
    const rp_route_t *x = *(rp_route_t *const *)a, *y = *(rp_route_t *const *)b;
    if (x->path_len != y->path_len)
        return x->path_len > y->path_len ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int
cmp_group_host(const void *a, const void *b)
{
    return strcmp(((const host_group_t *)a)->host, ((const host_group_t *)b)->host);
}

static int
cmp_group_wild(const void *a, const void *b)
{
    const host_group_t *x = a, *y = b;
    if (x->host_len != y->host_len)
        return x->host_len > y->host_len ? -1 : 1;
    return strcmp(x->host, y->host);
}

static host_group_t *
group_for(rp_router_t *r, const rp_route_t *rt)
{
    if (rt->host == NULL)
        return &r->any;
    bool wild = rt->host[0] == '*';
    const char *key = wild ? rt->host + 1 : rt->host;   /* ".example.com" */
    host_group_t **arr = wild ? &r->wild : &r->exact;
    size_t *n = wild ? &r->nwild : &r->nexact;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i].host, key) == 0)
            return &(*arr)[i];
    host_group_t *more = realloc(*arr, (*n + 1) * sizeof **arr);
    if (more == NULL)
        return NULL;
    *arr = more;
    host_group_t *g = &(*arr)[(*n)++];
    memset(g, 0, sizeof *g);
    g->host = key;
    g->host_len = strlen(key);
    return g;
}

/* -1 when memory ran out. */
static int
group_add(host_group_t *g, rp_route_t *rt)
{
    rp_route_t ***arr = rt->prefix ? &g->prefix : &g->exact;
    size_t *n = rt->prefix ? &g->nprefix : &g->nexact;
    rp_route_t **more = realloc(*arr, (*n + 1) * sizeof **arr);
    if (more == NULL)
        return -1;
    *arr = more;
    (*arr)[(*n)++] = rt;
    return 0;
}

/* Routes sorted by path: equal neighbours are duplicates; the later one in
 * the file is the error. */
static void
report_duplicates(rp_route_t *const *arr, size_t n, const char *kind, rp_errs_t *errs)
{
    for (size_t i = 1; i < n; i++) {
        const rp_route_t *a = arr[i - 1], *b = arr[i];
        if (strcmp(a->path, b->path) != 0)
            continue;
        const rp_route_t *later = a->index > b->index ? a : b;
        const rp_route_t *first = a->index > b->index ? b : a;
        char p[64];
        snprintf(p, sizeof p, "routes[%u]", later->index);
        rp_errs_add(errs, p, "duplicate route (same host and %s as routes[%u])", kind,
                    first->index);
    }
}

static int
cmp_label(const void *a, const void *b)
{
    const rp_route_t *x = *(rp_route_t *const *)a, *y = *(rp_route_t *const *)b;
    int c = strcmp(x->label, y->label);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* A route's label names it in logs and metrics (and keys its counters):
 * two routes with one label (an exact path "/a*" and a prefix "/a", a
 * name given twice, or labels cut at their size) would be one. */
static void
report_same_labels(rp_router_t *r, rp_errs_t *errs)
{
    rp_route_t **by = calloc(r->nroutes, sizeof *by);
    if (by == NULL) {
        rp_errs_add(errs, "routes", "out of memory");
        return;
    }
    for (size_t i = 0; i < r->nroutes; i++)
        by[i] = &r->routes[i];
    qsort(by, r->nroutes, sizeof *by, cmp_label);
    for (size_t i = 1; i < r->nroutes; i++) {
        if (strcmp(by[i - 1]->label, by[i]->label) != 0)
            continue;
        char p[64];
        snprintf(p, sizeof p, "routes[%u]", by[i]->index);
        if (by[i]->named)
            rp_errs_add(errs, p, "name \"%s\" is routes[%u]'s already", by[i]->label,
                        by[i - 1]->index);
        else
            rp_errs_add(errs, p, "shows as \"%.80s%s\" in logs and metrics, as routes[%u] "
                        "does: give one of them a \"name\"", by[i]->label,
                        strlen(by[i]->label) > 80 ? "..." : "", by[i - 1]->index);
    }
    free(by);
}

static void
group_sort(host_group_t *g, rp_errs_t *errs)
{
    if (g->nexact > 1)
        qsort(g->exact, g->nexact, sizeof *g->exact, cmp_exact);
    if (g->nprefix > 1)
        qsort(g->prefix, g->nprefix, sizeof *g->prefix, cmp_prefix);
    report_duplicates(g->exact, g->nexact, "path", errs);
    report_duplicates(g->prefix, g->nprefix, "path prefix", errs);
}

rp_router_t *
rp_router_build(const json_t *root, const rp_snapshot_t *snap, rp_errs_t *errs)
{
    const json_t *arr = json_object_get(root, "routes");
    if (arr == NULL) {
        rp_errs_add(errs, "routes", "required: at least one route");
        return NULL;
    }
    if (!json_is_array(arr)) {
        rp_errs_add(errs, "routes", "must be an array");
        return NULL;
    }
    if (json_array_size(arr) == 0) {
        rp_errs_add(errs, "routes", "must contain at least one route");
        return NULL;
    }
    if (json_array_size(arr) > 100000) {
        rp_errs_add(errs, "routes", "at most 100000 routes");
        return NULL;
    }
    size_t before = errs->total;
    rp_router_t *r = calloc(1, sizeof *r);
    if (r == NULL || (r->routes = calloc(json_array_size(arr), sizeof *r->routes)) == NULL) {
        free(r);
        rp_errs_add(errs, "routes", "out of memory");
        return NULL;
    }
    r->nroutes = json_array_size(arr);
    size_t i;
    const json_t *o;
    json_array_foreach(arr, i, o) {
        char p[64];
        snprintf(p, sizeof p, "routes[%zu]", i);
        r->routes[i].index = (unsigned)i;
        parse_route(o, p, snap, &r->routes[i], errs);
    }
    if (errs->total != before) {
        rp_router_free(r);
        return NULL;
    }
    for (i = 0; i < r->nroutes; i++) {
        host_group_t *g = group_for(r, &r->routes[i]);
        if (g == NULL || group_add(g, &r->routes[i]) < 0) {
            rp_errs_add(errs, "routes", "out of memory");
            rp_router_free(r);
            return NULL;
        }
    }
    if (r->nexact > 1)
        qsort(r->exact, r->nexact, sizeof *r->exact, cmp_group_host);
    if (r->nwild > 1)
        qsort(r->wild, r->nwild, sizeof *r->wild, cmp_group_wild);
    for (i = 0; i < r->nexact; i++)
        group_sort(&r->exact[i], errs);
    for (i = 0; i < r->nwild; i++)
        group_sort(&r->wild[i], errs);
    group_sort(&r->any, errs);
    if (errs->total == before)
        report_same_labels(r, errs);   /* duplicates have one label too: said once */
    if (errs->total != before) {
        rp_router_free(r);
        return NULL;
    }
    /* Only a valid route set takes identities. */
    for (i = 0; i < r->nroutes; i++) {
        r->routes[i].ident = rp_route_identity(r->routes[i].label);
        if (r->routes[i].ident == RP_IDENT_NOMEM) {
            rp_errs_add(errs, "routes", "out of memory");
            rp_router_free(r);
            return NULL;
        }
    }
    return r;
}

static const rp_route_t *
group_match(const host_group_t *g, const char *path, size_t len)
{
    size_t lo = 0, hi = g->nexact;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rp_route_t *rt = g->exact[mid];
        size_t n = rt->path_len < len ? rt->path_len : len;
        int c = memcmp(path, rt->path, n);
        if (c == 0)
            c = len < rt->path_len ? -1 : len > rt->path_len ? 1 : 0;
        if (c == 0)
            return rt;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    /* Longest first, so the first match is the longest.  A prefix ends at a
     * segment boundary: "/api" is the directory "/api", not the start of
     * "/apiary".  A prefix ending in '/' has its boundary built in. */
    for (size_t i = 0; i < g->nprefix; i++) {
        const rp_route_t *rt = g->prefix[i];
        if (rt->path_len <= len && memcmp(path, rt->path, rt->path_len) == 0
            && (rt->path_len == len || path[rt->path_len] == '/'
                || rt->path[rt->path_len - 1] == '/'))
            return rt;
    }
    return NULL;
}

const rp_route_t *
rp_router_match(const rp_router_t *r, const char *host, const char *path, size_t path_len)
{
    const rp_route_t *rt;
    size_t hl = strlen(host);
    if (hl > 0) {
        size_t lo = 0, hi = r->nexact;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(host, r->exact[mid].host);
            if (c == 0) {
                if ((rt = group_match(&r->exact[mid], path, path_len)) != NULL)
                    return rt;
                break;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        for (size_t i = 0; i < r->nwild; i++) {
            const host_group_t *g = &r->wild[i];
            /* ".example.com" matches "a.example.com", not "example.com". */
            if (hl > g->host_len && memcmp(host + hl - g->host_len, g->host, g->host_len) == 0
                && (rt = group_match(g, path, path_len)) != NULL)
                return rt;
        }
    }
    return group_match(&r->any, path, path_len);
}

const rp_route_t *
rp_router_routes(const rp_snapshot_t *snap, size_t *n)
{
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    *n = r != NULL ? r->nroutes : 0;
    return r != NULL ? r->routes : NULL;
}

/* ---- the module ---- */

static int
router_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    rp_router_t *r = rp_router_build(root, snap, errs);
    if (r == NULL)
        return -1;
    *state = r;
    return 0;
}

static void
router_release(void *state)
{
    rp_router_free(state);
}

static rp_request_hook_fn router_on_request;

static rp_verdict_t
router_on_request(rp_txn_t *txn, void *state)
{
    const rp_route_t *rt = rp_router_match(state, txn->host, txn->path, txn->path_len);
    if (rt == NULL) {
        /* No route: the core answers 404 once the modules after this one
         * (the rate limit) have seen the request. */
        txn->route = NULL;
        return RP_CONTINUE;
    }
    txn->route = rt;
    txn->upstream = rt->upstream;
    return RP_CONTINUE;
}

static void
router_dump(const void *state, json_t *root)
{
    const rp_router_t *r = state;
    json_t *arr = json_array();
    for (size_t i = 0; i < r->nroutes; i++) {
        const rp_route_t *rt = &r->routes[i];
        json_t *o = json_object();
        if (rt->named)
            json_object_set_new(o, "name", json_string(rt->label));
        if (rt->host != NULL)
            json_object_set_new(o, "host", json_string(rt->host));
        json_object_set_new(o, rt->prefix ? "path_prefix" : "path", json_string(rt->path));
        json_object_set_new(o, "upstream", json_string(rt->upstream->name));
        json_object_set_new(o, "timeouts", json_pack("{s:I,s:I,s:I}",
            "upstream_connect_ms", (json_int_t)rt->timeouts.upstream_connect_ms,
            "upstream_response_ms", (json_int_t)rt->timeouts.upstream_response_ms,
            "request_ms", (json_int_t)rt->timeouts.request_ms));
        json_object_set_new(o, "retry", rp_retry_dump(&rt->retry));
        json_object_set_new(o, "websocket", json_boolean(rt->websocket));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "routes", arr);
}

const rp_module_t rp_module_router = {
    .name = "router",
    .configure = router_configure,
    .release = router_release,
    .on_request = router_on_request,
    .dump = router_dump,
    .keys = route_keys,
};
