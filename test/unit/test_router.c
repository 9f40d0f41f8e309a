/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the router: host precedence (exact, longest wildcard
 * suffix, any host), path precedence (exact, longest prefix), prefixes
 * matching at segment boundaries, fall-through between host groups, and
 * independence from the order of routes.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/route.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Everything a router needs but the routes.  Each route names one of these
 * upstreams; matches are identified by the route label ("host path", with
 * "*" for any host and a trailing "*" for a prefix), which is independent of
 * the route's position in the file. */
static const char base_doc[] =
    "{\"listeners\": [{\"address\": \"127.0.0.1:8080\"}],"
    " \"upstreams\": {"
    "   \"a\": {\"backends\": [{\"address\": \"127.0.0.1:9001\"}]},"
    "   \"b\": {\"backends\": [{\"address\": \"127.0.0.1:9002\"}]},"
    "   \"c\": {\"backends\": [{\"address\": \"127.0.0.1:9003\"}]}}}";

/* The routes every lookup table below runs against. */
static const char *const routes[] = {
    "{\"host\": \"api.example.com\", \"path\": \"/v1/users\", \"upstream\": \"a\"}",
    "{\"host\": \"api.example.com\", \"path_prefix\": \"/v1\", \"upstream\": \"a\"}",
    "{\"host\": \"api.example.com\", \"path_prefix\": \"/v1/admin\", \"upstream\": \"b\"}",
    "{\"host\": \"api.example.com\", \"path_prefix\": \"/v1/admin/\", \"upstream\": \"c\"}",
    "{\"host\": \"*.example.com\", \"path_prefix\": \"/\", \"upstream\": \"b\"}",
    "{\"host\": \"*.example.com\", \"path\": \"/only\", \"upstream\": \"c\"}",
    "{\"host\": \"*.api.example.com\", \"upstream\": \"c\"}",
    "{\"host\": \"*.deep.api.example.com\", \"path_prefix\": \"/x\", \"upstream\": \"a\"}",
    "{\"path_prefix\": \"/api\", \"upstream\": \"a\"}",
    "{\"path_prefix\": \"/static/\", \"upstream\": \"b\"}",
    "{\"path\": \"/health\", \"upstream\": \"c\"}",
    "{\"path\": \"/\", \"upstream\": \"c\"}",
    "{\"host\": \"Shop.Example.COM.\", \"path_prefix\": \"/cart\", \"upstream\": \"a\"}",
    "{\"host\": \"*.Wild.ORG\", \"upstream\": \"b\"}",
    "{\"host\": \"only-host.test\", \"path\": \"/exact\", \"upstream\": \"a\"}",
};
#define NROUTES NCASES(routes)

typedef struct lookup {
    const char *host;
    const char *path;
    const char *want;   /* route label, or NULL for no match */
} lookup_t;

/* Build a document from base_doc plus the routes in the order given by
 * order[] (indexes into routes[]). */
static json_t *
make_doc(const char *const *list, const int *order, int n)
{
    json_error_t jerr;
    json_t *root = json_loads(base_doc, 0, &jerr);
    ck_assert_msg(root != NULL, "base document: %s", jerr.text);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const char *text = list[order != NULL ? order[i] : i];
        json_t *r = json_loads(text, 0, &jerr);
        ck_assert_msg(r != NULL, "route %s: %s", text, jerr.text);
        json_array_append_new(arr, r);
    }
    json_object_set_new(root, "routes", arr);
    return root;
}

static void
dump_errs(const rp_errs_t *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "  error %zu: %s\n", i, errs->msgs[i]);
}

/* A snapshot from the document, and its router. */
static rp_snapshot_t *
snapshot_for(json_t *root)
{
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    int rc = rp_snapshot_build(root, &snap, &errs);
    if (rc != 0)
        dump_errs(&errs);
    ck_assert_int_eq(rc, 0);
    rp_errs_free(&errs);
    ck_assert_ptr_nonnull(snap->mod_state[RP_MOD_ROUTER]);
    return snap;
}

static rp_snapshot_t *fx_snap;
static const rp_router_t *fx_router;

static void
fixture_setup(void)
{
    json_t *root = make_doc(routes, NULL, NROUTES);
    fx_snap = snapshot_for(root);
    fx_router = fx_snap->mod_state[RP_MOD_ROUTER];
    json_decref(root);
}

static void
fixture_teardown(void)
{
    rp_snapshot_unref(fx_snap);
    fx_snap = NULL;
    fx_router = NULL;
}

static void
check_lookup(const rp_router_t *r, const lookup_t *l)
{
    const rp_route_t *rt = rp_router_match(r, l->host, l->path, strlen(l->path));
    if (l->want == NULL) {
        ck_assert_msg(rt == NULL, "host \"%s\" path \"%s\": matched \"%s\", expected no match",
                      l->host, l->path, rt != NULL ? rt->label : "");
    } else {
        ck_assert_msg(rt != NULL, "host \"%s\" path \"%s\": no match, expected \"%s\"",
                      l->host, l->path, l->want);
        ck_assert_msg(strcmp(rt->label, l->want) == 0,
                      "host \"%s\" path \"%s\": matched \"%s\", expected \"%s\"",
                      l->host, l->path, rt->label, l->want);
        ck_assert_ptr_nonnull(rt->upstream);
    }
}

/* One looped test per table, all against the fixture router. */
#define LOOKUP_TEST(name, table)                    \
    START_TEST(name)                                \
    {                                               \
        check_lookup(fx_router, &(table)[_i]);      \
    }                                               \
    END_TEST

/* ---- hosts ---- */

static const lookup_t host_precedence[] = {
    /* exact host beats wildcard beats any host */
    { "api.example.com", "/v1/x", "api.example.com /v1*" },
    { "www.example.com", "/v1/x", "*.example.com /*" },
    { "example.org", "/api/v1", "* /api*" },
    /* host specificity comes before path length: the wildcard group's "/"
     * wins over the any-host group's longer "/api" */
    { "www.example.com", "/api/x", "*.example.com /*" },
    { "other.test", "/", "* /" },
    { "only-host.test", "/exact", "only-host.test /exact" },
};
LOOKUP_TEST(test_host_precedence, host_precedence)

static const lookup_t wildcard_longest[] = {
    /* "*.api.example.com" is longer than "*.example.com" */
    { "x.api.example.com", "/anything", "*.api.example.com /*" },
    { "a.b.api.example.com", "/", "*.api.example.com /*" },
    { "x.deep.api.example.com", "/x/1", "*.deep.api.example.com /x*" },
    /* the longest suffix has no matching path: the next wildcard is tried */
    { "x.deep.api.example.com", "/y", "*.api.example.com /*" },
    { "x.example.com", "/z", "*.example.com /*" },
    { "x.wild.org", "/", "*.wild.org /*" },
    { "a.b.c.wild.org", "/deep/path", "*.wild.org /*" },
};
LOOKUP_TEST(test_wildcard_longest, wildcard_longest)

static const lookup_t wildcard_not_bare[] = {
    /* "*.example.com" needs at least one label before ".example.com" */
    { "example.com", "/only", NULL },
    { "example.com", "/z", NULL },
    { "wild.org", "/", "* /" },
    { "wild.org", "/nothing", NULL },
    /* a suffix match must start at a label boundary */
    { "badexample.com", "/only", NULL },
    { "xwild.org", "/anything", NULL },
    /* api.example.com is exact for one group and a plain subdomain for
     * "*.example.com", never a match for "*.api.example.com" */
    { "api.example.com", "/only", "*.example.com /only" },
};
LOOKUP_TEST(test_wildcard_not_bare, wildcard_not_bare)

/* ---- paths ---- */

static const lookup_t exact_vs_prefix[] = {
    { "api.example.com", "/v1/users", "api.example.com /v1/users" },
    { "api.example.com", "/v1/users/", "api.example.com /v1*" },
    { "api.example.com", "/v1/users/7", "api.example.com /v1*" },
    { "api.example.com", "/v1/user", "api.example.com /v1*" },
    { "x.example.com", "/only", "*.example.com /only" },
    { "x.example.com", "/only/not", "*.example.com /*" },
    { "other.test", "/health", "* /health" },
    { "other.test", "/health/x", NULL },
    { "other.test", "/healthz", NULL },
    { "other.test", "/", "* /" },
};
LOOKUP_TEST(test_exact_vs_prefix, exact_vs_prefix)

static const lookup_t longest_prefix[] = {
    { "api.example.com", "/v1", "api.example.com /v1*" },
    { "api.example.com", "/v1/admin", "api.example.com /v1/admin*" },
    { "api.example.com", "/v1/adminx", "api.example.com /v1*" },
    { "api.example.com", "/v1/admin/", "api.example.com /v1/admin/*" },
    { "api.example.com", "/v1/admin/users", "api.example.com /v1/admin/*" },
};
LOOKUP_TEST(test_longest_prefix, longest_prefix)

/* Prefixes match at a segment boundary: "/api" matches "/api" and "/api/x",
 * not "/apix".  A prefix ending in '/' ("/static/", "/") matches whatever
 * starts with it, and so "/static/" does not match "/static". */
static const lookup_t segment_prefix[] = {
    { "other.test", "/api", "* /api*" },
    { "other.test", "/api/", "* /api*" },
    { "other.test", "/api/x", "* /api*" },
    { "other.test", "/api//x", "* /api*" },
    { "other.test", "/apiary", NULL },
    { "other.test", "/apix", NULL },
    { "other.test", "/api-v2/y", NULL },
    { "other.test", "/api.json", NULL },
    { "other.test", "/api%2Fx", NULL },   /* an escaped '/' is no boundary */
    { "other.test", "/ap", NULL },
    { "other.test", "/API", NULL },   /* paths are case-sensitive */
    { "other.test", "/static/app.js", "* /static/*" },
    { "other.test", "/static/", "* /static/*" },
    { "other.test", "/static", NULL },
    { "other.test", "/staticx", NULL },
    /* a longer prefix missing its boundary leaves the shorter one */
    { "api.example.com", "/v1/administrator", "api.example.com /v1*" },
    /* no prefix of the host group matches: the next group is tried */
    { "api.example.com", "/v1x", "*.example.com /*" },
    { "shop.example.com", "/cartoon", "*.example.com /*" },
    { "x.deep.api.example.com", "/xy", "*.api.example.com /*" },
    { "x.deep.api.example.com", "/x/y", "*.deep.api.example.com /x*" },
};
LOOKUP_TEST(test_segment_prefix, segment_prefix)

/* ---- fall-through and no match ---- */

static const lookup_t fallthrough[] = {
    /* exact host group has no matching path: wildcard group */
    { "api.example.com", "/v2", "*.example.com /*" },
    { "shop.example.com", "/x", "*.example.com /*" },
    /* exact host and wildcard both miss: any-host group */
    { "only-host.test", "/api/q", "* /api*" },
    { "only-host.test", "/", "* /" },
    { "x.api.example.com", "/", "*.api.example.com /*" },
};
LOOKUP_TEST(test_fallthrough, fallthrough)

static const lookup_t no_match[] = {
    { "only-host.test", "/exact/more", NULL },
    { "unknown.test", "/nothing", NULL },
    { "unknown.test", "", NULL },
    { "", "/nothing", NULL },
    { "only-host.test", "/static", NULL },
};
LOOKUP_TEST(test_no_match, no_match)

/* ---- host spelling ---- */

/* Hosts in the config are lowercased (and lose a trailing dot) when the
 * router is built; lookups pass hosts already normalised. */
static const lookup_t host_case[] = {
    { "shop.example.com", "/cart", "shop.example.com /cart*" },
    { "shop.example.com", "/cart/42", "shop.example.com /cart*" },
    { "x.wild.org", "/", "*.wild.org /*" },
};
LOOKUP_TEST(test_host_case_insensitive, host_case)

START_TEST(test_route_fields)
{
    const rp_route_t *rt = rp_router_match(fx_router, "shop.example.com", "/cart", 5);
    ck_assert_ptr_nonnull(rt);
    ck_assert_str_eq(rt->host, "shop.example.com");
    ck_assert_str_eq(rt->path, "/cart");
    ck_assert_uint_eq(rt->path_len, 5);
    ck_assert(rt->prefix);
    ck_assert_uint_eq(rt->index, 12);
    ck_assert_str_eq(rt->upstream->name, "a");
    ck_assert_ptr_eq(rt->upstream, rp_snapshot_upstream(fx_snap, "a"));

    rt = rp_router_match(fx_router, "x.wild.org", "/", 1);
    ck_assert_ptr_nonnull(rt);
    ck_assert_str_eq(rt->host, "*.wild.org");
    ck_assert(rt->prefix);
    ck_assert_str_eq(rt->path, "/");   /* no path: prefix "/" */

    rt = rp_router_match(fx_router, "other.test", "/health", 7);
    ck_assert_ptr_nonnull(rt);
    ck_assert_ptr_null(rt->host);
    ck_assert(!rt->prefix);
    ck_assert_uint_eq(rt->index, 10);
}
END_TEST

/* The path length is honoured: the path need not be NUL-terminated (the
 * proxy passes the part of the target before '?'). */
START_TEST(test_path_len_respected)
{
    const char *target = "/healthz?x=1";
    const rp_route_t *rt = rp_router_match(fx_router, "other.test", target, 7);
    ck_assert_ptr_nonnull(rt);
    ck_assert_str_eq(rt->label, "* /health");
    rt = rp_router_match(fx_router, "other.test", target, 8);
    ck_assert_ptr_null(rt);
    rt = rp_router_match(fx_router, "api.example.com", "/v1/users?id=3", 9);
    ck_assert_ptr_nonnull(rt);
    ck_assert_str_eq(rt->label, "api.example.com /v1/users");
}
END_TEST

/* ---- segment boundaries ---- */

/* "/api" and "/api/" side by side, exact paths that a prefix would have
 * covered byte-wise, and a shorter prefix, in every rotation of the list
 * and its reverse: the result never depends on the order. */
static const char *const seg_routes[] = {
    "{\"path_prefix\": \"/api\", \"upstream\": \"a\"}",
    "{\"path_prefix\": \"/api/\", \"upstream\": \"b\"}",
    "{\"path\": \"/apiary\", \"upstream\": \"c\"}",
    "{\"path\": \"/api/v\", \"upstream\": \"c\"}",
    "{\"path\": \"/api\", \"upstream\": \"c\"}",
    "{\"path_prefix\": \"/ap\", \"upstream\": \"c\"}",
    "{\"path_prefix\": \"/\", \"upstream\": \"a\"}",
};
#define NSEG NCASES(seg_routes)

typedef struct seg_lookup {
    const char *path;
    size_t      len;    /* 0: strlen(path); else the path before a query */
    const char *want;
} seg_lookup_t;

static const seg_lookup_t seg_lookups[] = {
    { "/api", 0, "* /api" },            /* the exact path beats the prefix */
    { "/api/", 0, "* /api/*" },         /* longest prefix */
    { "/api/x", 0, "* /api/*" },
    { "/api/v", 0, "* /api/v" },
    { "/api/v/", 0, "* /api/*" },
    { "/api/vx", 0, "* /api/*" },
    { "/apiary", 0, "* /apiary" },
    { "/apiary/", 0, "* /*" },           /* exact paths are not prefixes */
    { "/apiary/x", 0, "* /*" },
    { "/apiar", 0, "* /*" },
    { "/apix", 0, "* /*" },
    { "/ap", 0, "* /ap*" },
    { "/ap/i", 0, "* /ap*" },
    { "/apx", 0, "* /*" },
    { "/a", 0, "* /*" },
    { "/", 0, "* /*" },
    /* the router is given the path without the query */
    { "/api?q", 4, "* /api" },
    { "/api/?q", 5, "* /api/*" },
    { "/ap?i", 3, "* /ap*" },
    { "/apiary?x", 7, "* /apiary" },
};

START_TEST(test_segment_orders)
{
    /* _i < NSEG: rotation by _i; else the reverse, rotated by _i - NSEG */
    int order[NSEG];
    for (int k = 0; k < NSEG; k++) {
        int j = (k + _i) % NSEG;
        order[k] = _i < NSEG ? j : NSEG - 1 - j;
    }
    json_t *root = make_doc(seg_routes, order, NSEG);
    rp_snapshot_t *snap = snapshot_for(root);
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    for (int k = 0; k < NCASES(seg_lookups); k++) {
        const seg_lookup_t *l = &seg_lookups[k];
        size_t len = l->len != 0 ? l->len : strlen(l->path);
        const rp_route_t *rt = rp_router_match(r, "h.test", l->path, len);
        ck_assert_msg(rt != NULL, "order %d, path \"%.*s\": no match, expected \"%s\"", _i,
                      (int)len, l->path, l->want);
        ck_assert_msg(strcmp(rt->label, l->want) == 0,
                      "order %d, path \"%.*s\": matched \"%s\", expected \"%s\"", _i,
                      (int)len, l->path, rt->label, l->want);
    }
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* Without a "/" route, a boundary miss is no match at all. */
START_TEST(test_segment_no_fallback)
{
    static const char *const list[] = {
        "{\"path_prefix\": \"/api\", \"upstream\": \"a\"}",
        "{\"host\": \"h.test\", \"path_prefix\": \"/v1\", \"upstream\": \"b\"}",
    };
    json_t *root = make_doc(list, NULL, NCASES(list));
    rp_snapshot_t *snap = snapshot_for(root);
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    ck_assert_ptr_null(rp_router_match(r, "h.test", "/apiary", 7));
    ck_assert_ptr_null(rp_router_match(r, "h.test", "/v1beta", 7));
    ck_assert_ptr_null(rp_router_match(r, "h.test", "/api", 3));   /* "/ap" */
    ck_assert_str_eq(rp_router_match(r, "h.test", "/api", 4)->label, "* /api*");
    ck_assert_str_eq(rp_router_match(r, "h.test", "/apiary", 4)->label, "* /api*");
    ck_assert_str_eq(rp_router_match(r, "h.test", "/v1/x", 5)->label, "h.test /v1*");
    ck_assert_str_eq(rp_router_match(r, "h.test", "/v1", 3)->label, "h.test /v1*");
    ck_assert_str_eq(rp_router_match(r, "h.test", "/api/v1", 7)->label, "* /api*");
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* ---- empty host ---- */

/* An HTTP/1.0 request without Host has host "": only any-host routes can
 * match it, never an exact or wildcard host. */
static const lookup_t empty_host[] = {
    { "", "/api/v", "* /api*" },
    { "", "/health", "* /health" },
    { "", "/", "* /" },
    { "", "/v1/users", NULL },
    { "", "/exact", NULL },
    { "", "/cart", NULL },
};
LOOKUP_TEST(test_empty_host, empty_host)

START_TEST(test_empty_host_without_any_routes)
{
    static const char *const host_only[] = {
        "{\"host\": \"a.test\", \"upstream\": \"a\"}",
        "{\"host\": \"*.test\", \"upstream\": \"b\"}",
    };
    json_t *root = make_doc(host_only, NULL, 2);
    rp_snapshot_t *snap = snapshot_for(root);
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    ck_assert_ptr_null(rp_router_match(r, "", "/", 1));
    ck_assert_ptr_null(rp_router_match(r, "test", "/", 1));
    ck_assert_ptr_nonnull(rp_router_match(r, "a.test", "/", 1));
    ck_assert_str_eq(rp_router_match(r, "a.test", "/", 1)->label, "a.test /*");
    ck_assert_str_eq(rp_router_match(r, "b.test", "/x", 2)->label, "*.test /*");
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* ---- order independence ---- */

/* Every lookup of every table above, gathered for the order test. */
static const lookup_t *const all_tables[] = {
    host_precedence, wildcard_longest, wildcard_not_bare, exact_vs_prefix,
    longest_prefix, segment_prefix, fallthrough, no_match, host_case, empty_host,
};
static const int all_sizes[] = {
    NCASES(host_precedence), NCASES(wildcard_longest), NCASES(wildcard_not_bare),
    NCASES(exact_vs_prefix), NCASES(longest_prefix), NCASES(segment_prefix),
    NCASES(fallthrough), NCASES(no_match), NCASES(host_case), NCASES(empty_host),
};

/* Permutations of the routes: reversed, rotated, interleaved. */
static void
make_order(int kind, int *order)
{
    for (int i = 0; i < NROUTES; i++) {
        switch (kind) {
        case 0: order[i] = NROUTES - 1 - i; break;
        case 1: order[i] = (i + 5) % NROUTES; break;
        case 2: order[i] = i % 2 == 0 ? i / 2 : NROUTES - 1 - i / 2; break;
        default: order[i] = (i * 7) % NROUTES; break;   /* 7 is prime to 15 */
        }
    }
}

START_TEST(test_order_independent)
{
    int order[NROUTES];
    make_order(_i, order);
    /* the permutation really is one */
    int seen[NROUTES] = { 0 };
    for (int i = 0; i < NROUTES; i++)
        seen[order[i]]++;
    for (int i = 0; i < NROUTES; i++)
        ck_assert_int_eq(seen[i], 1);

    json_t *root = make_doc(routes, order, NROUTES);
    rp_snapshot_t *snap = snapshot_for(root);
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    for (size_t t = 0; t < sizeof all_tables / sizeof all_tables[0]; t++) {
        for (int k = 0; k < all_sizes[t]; k++) {
            const lookup_t *l = &all_tables[t][k];
            const rp_route_t *a = rp_router_match(fx_router, l->host, l->path, strlen(l->path));
            const rp_route_t *b = rp_router_match(r, l->host, l->path, strlen(l->path));
            ck_assert_msg((a == NULL) == (b == NULL)
                          && (a == NULL || strcmp(a->label, b->label) == 0),
                          "order %d, host \"%s\" path \"%s\": \"%s\" vs \"%s\"", _i,
                          l->host, l->path, a ? a->label : "(none)", b ? b->label : "(none)");
            check_lookup(r, l);
        }
    }
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* ---- building a router directly ---- */

START_TEST(test_build_direct)
{
    json_t *root = make_doc(routes, NULL, NROUTES);
    rp_snapshot_t *snap = snapshot_for(root);
    rp_errs_t errs = { 0 };
    rp_router_t *r = rp_router_build(root, snap, &errs);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(errs.count, 0);
    for (size_t t = 0; t < sizeof all_tables / sizeof all_tables[0]; t++)
        for (int k = 0; k < all_sizes[t]; k++)
            check_lookup(r, &all_tables[t][k]);
    rp_router_free(r);
    rp_router_free(NULL);
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

START_TEST(test_route_timeouts_inherit)
{
    static const char *const rts[] = {
        "{\"path\": \"/slow\", \"upstream\": \"a\", \"timeouts\": {\"upstream_response_ms\": 500}}",
        "{\"upstream\": \"a\"}",
    };
    json_t *root = make_doc(rts, NULL, 2);
    rp_snapshot_t *snap = snapshot_for(root);
    rp_errs_t errs = { 0 };
    rp_router_t *r = rp_router_build(root, snap, &errs);
    ck_assert_ptr_nonnull(r);
    const rp_route_t *slow = rp_router_match(r, "x.test", "/slow", 5);
    const rp_route_t *any = rp_router_match(r, "x.test", "/other", 6);
    ck_assert_ptr_nonnull(slow);
    ck_assert_ptr_nonnull(any);
    ck_assert_uint_eq(slow->timeouts.upstream_response_ms, 500);
    ck_assert_uint_eq(slow->timeouts.upstream_connect_ms, snap->timeouts.upstream_connect_ms);
    ck_assert_uint_eq(slow->timeouts.request_ms, snap->timeouts.request_ms);
    ck_assert_uint_eq(slow->timeouts.client_header_ms, snap->timeouts.client_header_ms);
    ck_assert_uint_eq(any->timeouts.upstream_response_ms, snap->timeouts.upstream_response_ms);
    rp_router_free(r);
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

START_TEST(test_build_direct_errors)
{
    static const char *const dup[] = {
        "{\"host\": \"a.test\", \"path\": \"/x\", \"upstream\": \"a\"}",
        "{\"host\": \"A.TEST\", \"path\": \"/x\", \"upstream\": \"b\"}",
        "{\"upstream\": \"zzz\"}",
    };
    json_t *good = make_doc(routes, NULL, 1);
    rp_snapshot_t *snap = snapshot_for(good);
    json_t *root = make_doc(dup, NULL, 3);
    rp_errs_t errs = { 0 };
    ck_assert_ptr_null(rp_router_build(root, snap, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.msgs[0], "routes[2].upstream: unknown upstream \"zzz\"");
    rp_errs_free(&errs);

    /* with the bad upstream fixed, the duplicate shows */
    json_array_remove(json_object_get(root, "routes"), 2);
    ck_assert_ptr_null(rp_router_build(root, snap, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.msgs[0], "routes[1]: duplicate route (same host and path as routes[0])");
    rp_errs_free(&errs);

    rp_snapshot_unref(snap);
    json_decref(root);
    json_decref(good);
}
END_TEST

/* Same path under different hosts, or exact and prefix with the same path,
 * are different routes. */
START_TEST(test_not_duplicates)
{
    static const char *const list[] = {
        "{\"host\": \"a.test\", \"path\": \"/x\", \"upstream\": \"a\"}",
        "{\"host\": \"b.test\", \"path\": \"/x\", \"upstream\": \"b\"}",
        "{\"host\": \"*.a.test\", \"path\": \"/x\", \"upstream\": \"c\"}",
        "{\"path\": \"/x\", \"upstream\": \"a\"}",
        "{\"path_prefix\": \"/x\", \"upstream\": \"b\"}",
    };
    json_t *root = make_doc(list, NULL, NCASES(list));
    rp_snapshot_t *snap = snapshot_for(root);
    const rp_router_t *r = snap->mod_state[RP_MOD_ROUTER];
    ck_assert_str_eq(rp_router_match(r, "a.test", "/x", 2)->label, "a.test /x");
    ck_assert_str_eq(rp_router_match(r, "b.test", "/x", 2)->label, "b.test /x");
    ck_assert_str_eq(rp_router_match(r, "z.a.test", "/x", 2)->label, "*.a.test /x");
    ck_assert_str_eq(rp_router_match(r, "c.test", "/x", 2)->label, "* /x");
    ck_assert_str_eq(rp_router_match(r, "c.test", "/x/y", 4)->label, "* /x*");
    ck_assert_str_eq(rp_router_match(r, "a.test", "/x/y", 4)->label, "* /x*");
    ck_assert_ptr_null(rp_router_match(r, "a.test", "/xy", 3));
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* ---- suite ---- */

static TCase *
lookup_tcase(const char *name, const TTest *test, int n)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_loop_test(tc, test, 0, n);
    return tc;
}

static Suite *
router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc;

    suite_add_tcase(s, lookup_tcase("host_precedence", test_host_precedence,
                                    NCASES(host_precedence)));
    suite_add_tcase(s, lookup_tcase("wildcard_longest_suffix", test_wildcard_longest,
                                    NCASES(wildcard_longest)));
    suite_add_tcase(s, lookup_tcase("wildcard_not_bare_domain", test_wildcard_not_bare,
                                    NCASES(wildcard_not_bare)));
    suite_add_tcase(s, lookup_tcase("exact_path_beats_prefix", test_exact_vs_prefix,
                                    NCASES(exact_vs_prefix)));
    suite_add_tcase(s, lookup_tcase("longest_prefix", test_longest_prefix,
                                    NCASES(longest_prefix)));
    suite_add_tcase(s, lookup_tcase("segment_prefix", test_segment_prefix,
                                    NCASES(segment_prefix)));
    suite_add_tcase(s, lookup_tcase("fallthrough", test_fallthrough, NCASES(fallthrough)));
    suite_add_tcase(s, lookup_tcase("no_match", test_no_match, NCASES(no_match)));

    tc = lookup_tcase("host_case_insensitive", test_host_case_insensitive, NCASES(host_case));
    tcase_add_test(tc, test_route_fields);
    tcase_add_test(tc, test_path_len_respected);
    suite_add_tcase(s, tc);

    tc = lookup_tcase("empty_host", test_empty_host, NCASES(empty_host));
    tcase_add_test(tc, test_empty_host_without_any_routes);
    suite_add_tcase(s, tc);

    tc = tcase_create("segment_boundary");
    tcase_add_loop_test(tc, test_segment_orders, 0, 2 * NSEG);
    tcase_add_test(tc, test_segment_no_fallback);
    suite_add_tcase(s, tc);

    tc = tcase_create("order_independent");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_loop_test(tc, test_order_independent, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("build_direct");
    tcase_add_test(tc, test_build_direct);
    tcase_add_test(tc, test_route_timeouts_inherit);
    tcase_add_test(tc, test_build_direct_errors);
    tcase_add_test(tc, test_not_duplicates);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(router_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
