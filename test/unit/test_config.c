/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for config snapshots: defaults, every validation message (with
 * its JSON path), file loading and address parsing.
 */
#include "config.h"
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"

/* Pieces of an otherwise valid document, so each invalid case below only
 * differs from a good one by the thing it tests. */
#define LST "\"listeners\": [{\"address\": \"127.0.0.1:8080\"}]"
#define UPS "\"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:9000\"}]}}"
#define RTS "\"routes\": [{\"upstream\": \"app\"}]"
#define BASE LST ", " UPS ", " RTS
/* The same document with one extra root key. */
#define WITH(extra) "{" BASE ", " extra "}"
/* A document with custom upstreams (listeners and routes fixed). */
#define WITH_UPS(ups) "{" LST ", \"upstreams\": " ups ", " RTS "}"
/* A document with custom routes (listeners and upstreams fixed). */
#define WITH_RTS(rts) "{" LST ", " UPS ", \"routes\": " rts "}"
/* A document with custom listeners. */
#define WITH_LST(lst) "{\"listeners\": " lst ", " UPS ", " RTS "}"
/* A backend list for the "app" upstream. */
#define APP(body) WITH_UPS("{\"app\": " body "}")

static json_t *
parse(const char *text)
{
    json_error_t jerr;
    /* DECODE_ANY: non-object roots are among the invalid documents. */
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                              &jerr);
    ck_assert_msg(root != NULL, "test document does not parse: %s (line %d col %d): %s",
                  jerr.text, jerr.line, jerr.column, text);
    return root;
}

static void
dump_errs(const rp_errs_t *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "  error %zu: %s\n", i, errs->msgs[i]);
}

static bool
errs_have(const rp_errs_t *errs, const char *line)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strcmp(errs->msgs[i], line) == 0)
            return true;
    return false;
}

/* Build text; it must succeed.  The caller unrefs the snapshot. */
static rp_snapshot_t *
build_ok(const char *text)
{
    json_t *root = parse(text);
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    int rc = rp_snapshot_build(root, &snap, &errs);
    if (rc != 0)
        dump_errs(&errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_ptr_nonnull(snap);
    rp_errs_free(&errs);
    json_decref(root);
    return snap;
}

/* ---- valid documents ---- */

/* least_conn and health settings come back from --dump-config as given,
 * with the defaults filled in, and the dump builds the same snapshot. */
START_TEST(test_health_dump_round_trip)
{
    rp_snapshot_t *s = build_ok(
        "{\"listeners\": [{\"address\": \"127.0.0.1:8080\"}],"
        " \"upstreams\": {\"app\": {\"balancer\": \"least_conn\","
        "   \"backends\": [{\"address\": \"127.0.0.1:9000\"}, {\"address\": \"127.0.0.1:9001\"}],"
        "   \"health\": {\"passive\": {\"consecutive_failures\": 7}, \"slow_start_ms\": 5000}},"
        "  \"plain\": {\"backends\": [{\"address\": \"127.0.0.1:9002\"}]},"
        "  \"lim\": {\"backends\": [{\"address\": \"127.0.0.1:9003\", \"max_connections\": 9}],"
        "   \"queue\": {\"size\": 4}},"
        "  \"named\": {\"backends\": [{\"address\": \"Web.Example:8000\"}, {\"address\": \"127.0.0.1:9004\"},"
        "   {\"address\": \"my_service.example.:81\"}]}},"
        " \"routes\": [{\"path_prefix\": \"/\", \"upstream\": \"app\"}]}");
    ck_assert_int_eq(s->upstreams[0].balancer, RP_BALANCER_LEAST_CONN);
    json_t *d = rp_snapshot_dump(s);
    const json_t *app = json_object_get(json_object_get(d, "upstreams"), "app");
    ck_assert_str_eq(json_string_value(json_object_get(app, "balancer")), "least_conn");
    const json_t *ps = json_object_get(json_object_get(app, "health"), "passive");
    ck_assert_int_eq(json_integer_value(json_object_get(ps, "consecutive_failures")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(ps, "ejection_ms")), 30000);
    ck_assert_int_eq(json_integer_value(json_object_get(ps, "max_ejection_ms")), 300000);
    ck_assert_int_eq(json_integer_value(json_object_get(ps, "max_ejection_percent")), 50);
    ck_assert(json_is_false(json_object_get(ps, "include_5xx")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(app, "health"),
                                                        "slow_start_ms")), 5000);
    const json_t *plain = json_object_get(json_object_get(d, "upstreams"), "plain");
    ck_assert_ptr_null(json_object_get(plain, "health"));
    ck_assert_ptr_null(json_object_get(plain, "queue"));
    const json_t *lim = json_object_get(json_object_get(d, "upstreams"), "lim");
    const json_t *lq = json_object_get(lim, "queue");
    ck_assert_int_eq(json_integer_value(json_object_get(lq, "size")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(lq, "timeout_ms")), 1000);
    const json_t *lb = json_array_get(json_object_get(lim, "backends"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(lb, "max_connections")), 9);
    ck_assert_uint_eq(s->upstreams[1].backends[0].max_connections, 9);
    ck_assert(s->upstreams[1].limited);
    ck_assert(!s->upstreams[0].limited);
    ck_assert_uint_ne(s->upstreams[0].uq, s->upstreams[1].uq);
    /* upstreams sorted by name: app, lim, named, plain */
    const rp_upstream_t *nu = &s->upstreams[2];
    ck_assert_str_eq(nu->name, "named");
    ck_assert_str_eq(nu->backends[0].name, "web.example");
    ck_assert_str_eq(nu->backends[0].addr.text, "web.example:8000");
    ck_assert_ptr_null(nu->backends[1].name);
    ck_assert_uint_eq(nu->npos, 33);
    ck_assert_str_eq(nu->backends[2].addr.text, "my_service.example:81");
    ck_assert_uint_eq(nu->backends[1].pos, 16);
    ck_assert_uint_eq(nu->pos_entry[15], 0);
    ck_assert_uint_eq(nu->pos_entry[16], 1);
    ck_assert_uint_eq(nu->resolve_interval_ms, 30000);
    const json_t *nj = json_object_get(json_object_get(d, "upstreams"), "named");
    ck_assert_int_eq(json_integer_value(json_object_get(nj, "resolve_interval_ms")), 30000);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(nj, "backends"), 0),
                                                       "address")), "web.example:8000");
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s2 = NULL;
    ck_assert_int_eq(rp_snapshot_build(d, &s2, &errs), 0);
    json_t *d2 = rp_snapshot_dump(s2);
    ck_assert(json_equal(d, d2));
    json_decref(d2);
    json_decref(d);
    rp_snapshot_unref(s2);
    rp_snapshot_unref(s);
}
END_TEST

START_TEST(test_minimal_valid)
{
    rp_snapshot_t *s = build_ok("{" BASE "}");
    ck_assert_uint_ge(s->workers, 1);
    ck_assert_uint_eq(s->nlisteners, 1);
    ck_assert_str_eq(s->listeners[0].addr.text, "127.0.0.1:8080");
    ck_assert_int_eq(s->listeners[0].addr.ss.ss_family, AF_INET);
    ck_assert_ptr_null(s->listeners[0].tls);
    ck_assert_uint_eq(s->warnings.count, 0);

    /* Every default. */
    ck_assert_uint_eq(s->limits.max_connections, 10000);
    ck_assert_uint_eq(s->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(s->limits.max_headers, 100);
    ck_assert_uint_eq(s->limits.max_uri_bytes, 8192);
    ck_assert_uint_eq(s->limits.max_body_bytes, 10485760);
    ck_assert_uint_eq(s->timeouts.client_header_ms, 10000);
    ck_assert_uint_eq(s->timeouts.client_idle_ms, 60000);
    ck_assert_uint_eq(s->timeouts.request_ms, 30000);
    ck_assert_uint_eq(s->timeouts.upstream_connect_ms, 2000);
    ck_assert_uint_eq(s->timeouts.upstream_response_ms, 15000);
    ck_assert_int_eq(s->log_level, RP_LOG_INFO);
    ck_assert_ptr_null(s->access_log);

    ck_assert_uint_eq(s->nupstreams, 1);
    const rp_upstream_t *u = rp_snapshot_upstream(s, "app");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->name, "app");
    ck_assert_uint_eq(u->max_idle_per_backend, 32);
    ck_assert_uint_eq(u->idle_timeout_ms, 4000);
    ck_assert_uint_eq(u->nbackends, 1);
    ck_assert_uint_eq(u->backends[0].weight, 1);
    ck_assert_uint_eq(u->backends[0].index, 0);
    ck_assert_str_eq(u->backends[0].addr.text, "127.0.0.1:9000");

    ck_assert_ptr_nonnull(s->mod_state[RP_MOD_ROUTER]);
    ck_assert_uint_eq(atomic_load(&s->refs), 1);
    rp_snapshot_unref(s);
}
END_TEST

static const char full_doc[] =
    "{\n"
    "  \"workers\": 0,\n"
    "  \"listeners\": [\n"
    "    {\"address\": \"0.0.0.0:8080\"},\n"
    "    {\"address\": \"[0:0:0:0:0:0:0:1]:8443\"}\n"
    "  ],\n"
    "  \"limits\": {\"max_connections\": 500, \"max_headers\": 50,\n"
    "             \"max_uri_bytes\": 4096, \"max_body_bytes\": 0},\n"
    "  \"timeouts\": {\"client_idle_ms\": 5000, \"request_ms\": 0,\n"
    "               \"upstream_connect_ms\": 250, \"upstream_response_ms\": 900},\n"
    "  \"upstreams\": {\n"
    "    \"zeta\": {\"balancer\": \"round_robin\",\n"
    "             \"backends\": [{\"address\": \"10.0.0.1:80\", \"weight\": 5},\n"
    "                          {\"address\": \"10.0.0.2:80\"},\n"
    "                          {\"address\": \"[::1]:81\", \"weight\": 1000}],\n"
    "             \"pool\": {\"max_idle_per_backend\": 0}},\n"
    "    \"alpha\": {\"backends\": [{\"address\": \"10.0.1.1:8000\"}],\n"
    "              \"pool\": {\"idle_timeout_ms\": 1500}},\n"
    "    \"mid-1.b_x\": {\"backends\": [{\"address\": \"10.0.2.1:8000\"}]}\n"
    "  },\n"
    "  \"routes\": [\n"
    "    {\"host\": \"api.example.com\", \"path_prefix\": \"/v1\", \"upstream\": \"zeta\"},\n"
    "    {\"host\": \"*.example.com\", \"path\": \"/health\", \"upstream\": \"alpha\"},\n"
    "    {\"upstream\": \"mid-1.b_x\"}\n"
    "  ],\n"
    "  \"log\": {\"level\": \"debug\", \"format\": \"json\",\n"
    "          \"access_log\": \"/var/log/revproxy/access.log\"}\n"
    "}\n";

START_TEST(test_full_valid)
{
    rp_snapshot_t *s = build_ok(full_doc);

    /* workers 0 means "one per CPU", never 0 in the snapshot. */
    ck_assert_uint_ge(s->workers, 1);
    ck_assert_uint_le(s->workers, 256);

    ck_assert_uint_eq(s->nlisteners, 2);
    ck_assert_str_eq(s->listeners[0].addr.text, "0.0.0.0:8080");
    ck_assert_str_eq(s->listeners[1].addr.text, "[::1]:8443");
    ck_assert_int_eq(s->listeners[1].addr.ss.ss_family, AF_INET6);

    /* Given values kept, the others defaulted. */
    ck_assert_uint_eq(s->limits.max_connections, 500);
    ck_assert_uint_eq(s->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(s->limits.max_headers, 50);
    ck_assert_uint_eq(s->limits.max_uri_bytes, 4096);
    ck_assert_uint_eq(s->limits.max_body_bytes, 0);
    ck_assert_uint_eq(s->timeouts.client_header_ms, 10000);
    ck_assert_uint_eq(s->timeouts.client_idle_ms, 5000);
    ck_assert_uint_eq(s->timeouts.request_ms, 0);
    ck_assert_uint_eq(s->timeouts.upstream_connect_ms, 250);
    ck_assert_uint_eq(s->timeouts.upstream_response_ms, 900);

    /* Upstreams sorted by name, indexes follow the sorted order. */
    ck_assert_uint_eq(s->nupstreams, 3);
    ck_assert_str_eq(s->upstreams[0].name, "alpha");
    ck_assert_str_eq(s->upstreams[1].name, "mid-1.b_x");
    ck_assert_str_eq(s->upstreams[2].name, "zeta");
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(s->upstreams[i].index, i);
        ck_assert_ptr_eq(rp_snapshot_upstream(s, s->upstreams[i].name), &s->upstreams[i]);
    }
    ck_assert_ptr_null(rp_snapshot_upstream(s, "nope"));
    ck_assert_ptr_null(rp_snapshot_upstream(s, "Alpha"));
    ck_assert_ptr_null(rp_snapshot_upstream(s, ""));
    ck_assert_ptr_null(rp_snapshot_upstream(s, "zzz"));

    const rp_upstream_t *z = rp_snapshot_upstream(s, "zeta");
    ck_assert_ptr_nonnull(z);
    ck_assert_uint_eq(z->nbackends, 3);
    ck_assert_str_eq(z->backends[0].addr.text, "10.0.0.1:80");
    ck_assert_uint_eq(z->backends[0].weight, 5);
    ck_assert_uint_eq(z->backends[1].weight, 1);
    ck_assert_str_eq(z->backends[2].addr.text, "[::1]:81");
    ck_assert_uint_eq(z->backends[2].weight, 1000);
    for (unsigned i = 0; i < 3; i++)
        ck_assert_uint_eq(z->backends[i].index, i);
    ck_assert_uint_ne(z->backends[0].id, z->backends[1].id);
    ck_assert_uint_ne(z->backends[1].id, z->backends[2].id);
    ck_assert_uint_eq(z->max_idle_per_backend, 0);
    ck_assert_uint_eq(z->idle_timeout_ms, 4000);

    const rp_upstream_t *a = rp_snapshot_upstream(s, "alpha");
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->max_idle_per_backend, 32);
    ck_assert_uint_eq(a->idle_timeout_ms, 1500);

    ck_assert_int_eq(s->log_level, RP_LOG_DEBUG);
    ck_assert_ptr_nonnull(s->access_log);
    ck_assert_str_eq(s->access_log, "/var/log/revproxy/access.log");
    ck_assert_ptr_nonnull(s->mod_state[RP_MOD_ROUTER]);

    /* Reference counting: the last unref frees (ASan checks the rest). */
    ck_assert_ptr_eq(rp_snapshot_ref(s), s);
    ck_assert_uint_eq(atomic_load(&s->refs), 2);
    rp_snapshot_unref(s);
    ck_assert_uint_eq(atomic_load(&s->refs), 1);
    rp_snapshot_unref(s);
    rp_snapshot_unref(NULL);
}
END_TEST

/* Backend identities are stable across snapshots: same upstream name and
 * address, same id. */
START_TEST(test_backend_identity_stable)
{
    rp_snapshot_t *a = build_ok(full_doc);
    rp_snapshot_t *b = build_ok(full_doc);
    const rp_upstream_t *ua = rp_snapshot_upstream(a, "zeta");
    const rp_upstream_t *ub = rp_snapshot_upstream(b, "zeta");
    for (size_t i = 0; i < ua->nbackends; i++)
        ck_assert_uint_eq(ua->backends[i].id, ub->backends[i].id);
    ck_assert_uint_ge(rp_backend_identity_count(), 5);
    rp_snapshot_unref(a);
    rp_snapshot_unref(b);
}
END_TEST

START_TEST(test_access_log_stderr)
{
    rp_snapshot_t *s = build_ok(WITH("\"log\": {\"access_log\": \"stderr\", \"level\": \"error\"}"));
    ck_assert_ptr_null(s->access_log);
    ck_assert_int_eq(s->log_level, RP_LOG_ERROR);
    rp_snapshot_unref(s);
}
END_TEST

START_TEST(test_uri_limit_follows_small_head_limit)
{
    /* Unset, max_uri_bytes follows a max_header_bytes below its default;
     * set, it must fit (see the invalid cases). */
    rp_snapshot_t *s = build_ok(WITH("\"limits\": {\"max_header_bytes\": 2048}"));
    ck_assert_uint_eq(s->limits.max_uri_bytes, 2048);
    rp_snapshot_unref(s);
    s = build_ok(WITH("\"limits\": {\"max_header_bytes\": 65536}"));
    ck_assert_uint_eq(s->limits.max_uri_bytes, 8192);
    rp_snapshot_unref(s);
}
END_TEST

START_TEST(test_access_log_off)
{
    rp_snapshot_t *s = build_ok(WITH("\"log\": {\"access_log\": \"off\"}"));
    ck_assert_ptr_null(s->access_log);
    ck_assert(s->access_log_off);
    rp_snapshot_unref(s);
}
END_TEST

/* ---- invalid documents: exact messages ---- */

#define MAX_EXPECT 3

typedef struct bad_case {
    const char *doc;
    const char *want[MAX_EXPECT];   /* every error line, any order */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    /* the root */
    { "[]", { "the configuration must be a JSON object" } },
    { "\"text\"", { "the configuration must be a JSON object" } },
    { WITH("\"worker\": 2"), { "worker: unknown key" } },
    { WITH("\"websocket\": {\"max_message_bytes\": 0}"),
      { "websocket.max_message_bytes: must be between 1 and 1073741824, not 0" } },
    { WITH("\"websocket\": {\"idle_timeout_ms\": 999}"),
      { "websocket.idle_timeout_ms: must be between 1000 and 86400000, not 999" } },
    { WITH("\"websocket\": {\"ping\": true}"), { "websocket.ping: unknown key" } },
    { WITH("\"websocket\": true"), { "websocket: must be an object, not a boolean" } },
    { WITH("\"trusted_proxies\": \"10.0.0.0/8\""),
      { "trusted_proxies: must be an array of addresses or CIDR blocks, not a string" } },
    { WITH("\"trusted_proxies\": [\"10.0.0.0/8\", \"10.1.0.0/8\", 7, \"::/129\"]"),
      { "trusted_proxies[1]: has address bits set beyond its prefix",
        "trusted_proxies[2]: must be a string, not an integer",
        "trusted_proxies[3]: the prefix must be 0 to 128" } },
    { WITH("\"server_header\": \"\""),
      { "server_header: must be false or 1 to 128 printable ASCII characters" } },
    { WITH("\"server_header\": true"),
      { "server_header: must be false or 1 to 128 printable ASCII characters" } },
    { WITH("\"admin\": {}"), { "admin.address: required" } },
    { WITH("\"admin\": []"), { "admin: must be an object, not an array" } },
    { WITH("\"admin\": {\"address\": \"0.0.0.0:9901\"}"),
      { "admin.address: 0.0.0.0:9901 is not a loopback address: the admin port shows the "
        "configuration and the state of every backend; set admin.allow_remote to true to "
        "serve it beyond this host (with admin.token)" } },
    { WITH("\"admin\": {\"address\": \"[::]:9901\", \"allow_remote\": false}"),
      { "admin.address: [::]:9901 is not a loopback address: the admin port shows the "
        "configuration and the state of every backend; set admin.allow_remote to true to "
        "serve it beyond this host (with admin.token)" } },
    { WITH("\"admin\": {\"address\": \"localhost:9901\"}"),
      { "admin.address: host must be a numeric IPv4 or [IPv6] address" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:9901\", \"token\": \"\"}"),
      { "admin.token: must be 1 to 256 characters of letters, digits and -._~+/= (a bearer token)" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:9901\", \"token\": \"a b\"}"),
      { "admin.token: must be 1 to 256 characters of letters, digits and -._~+/= (a bearer token)" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:9901\", \"token\": 5}"),
      { "admin.token: must be a string, not an integer" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:9901\", \"allow_remote\": 1}"),
      { "admin.allow_remote: must be true or false, not an integer" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:9901\", \"port\": 1}"),
      { "admin.port: unknown key" } },
    { WITH("\"admin\": {\"address\": \"127.0.0.1:8080\"}"),
      { "admin.address: 127.0.0.1:8080 overlaps listeners[0] (127.0.0.1:8080)" } },
    { "{\"listeners\": [{\"address\": \"0.0.0.0:8080\"}], " UPS ", " RTS
      ", \"admin\": {\"address\": \"127.0.0.1:8080\"}}",
      { "admin.address: 127.0.0.1:8080 overlaps listeners[0] (0.0.0.0:8080)" } },
    { WITH("\"ratelimit\": {\"per_ip\": {\"burst\": 5}}"),
      { "ratelimit.per_ip.requests_per_second: required" } },
    { WITH("\"ratelimit\": {\"per_ip\": {\"requests_per_second\": 0}, \"ipv6_prefix\": 0}"),
      { "ratelimit.per_ip.requests_per_second: must be between 1 and 1000000, not 0",
        "ratelimit.ipv6_prefix: must be between 1 and 128, not 0" } },
    { WITH("\"ratelimit\": []"), { "ratelimit: must be an object, not an array" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"ratelimit\": true}]"),
      { "routes[0].ratelimit: must be an object or false, not true" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"ratelimit\": {\"requests_per_second\": 5, \"rate\": 1}}]"),
      { "routes[0].ratelimit.rate: unknown key" } },
    { WITH("\"health\": {}"), { "health: not supported yet" } },
    { WITH("\"tls\": {}"), { "tls: not supported yet" } },

    /* workers */
    { WITH("\"workers\": -1"), { "workers: must be between 0 and 256, not -1" } },
    { WITH("\"workers\": 1000"), { "workers: must be between 0 and 256, not 1000" } },
    { WITH("\"workers\": 257"), { "workers: must be between 0 and 256, not 257" } },
    { WITH("\"workers\": \"2\""), { "workers: must be an integer, not a string" } },
    { WITH("\"workers\": 1.5"), { "workers: must be an integer, not a number with a fraction" } },
    { WITH("\"workers\": true"), { "workers: must be an integer, not a boolean" } },
    { WITH("\"workers\": null"), { "workers: must be an integer, not null" } },

    /* listeners */
    { "{" UPS ", " RTS "}", { "listeners: required: at least one listener" } },
    { WITH_LST("{}"), { "listeners: must be an array, not an object" } },
    { WITH_LST("\"127.0.0.1:80\""), { "listeners: must be an array, not a string" } },
    { WITH_LST("[]"), { "listeners: must contain at least one listener" } },
    { WITH_LST("[\"127.0.0.1:80\"]"), { "listeners[0]: must be an object, not a string" } },
    { WITH_LST("[{}]"), { "listeners[0].address: required" } },
    { WITH_LST("[{\"address\": 80}]"), { "listeners[0].address: must be a string, not an integer" } },
    { WITH_LST("[{\"address\": \"127.0.0.1\"}]"), { "listeners[0].address: must be host:port" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:0\"}]"), { "listeners[0].address: port out of range" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:70000\"}]"), { "listeners[0].address: port out of range" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:\"}]"), { "listeners[0].address: port out of range" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:http\"}]"),
      { "listeners[0].address: port must be a number" } },
    { WITH_LST("[{\"address\": \"localhost:80\"}]"),
      { "listeners[0].address: host must be a numeric IPv4 or [IPv6] address" } },
    { WITH_LST("[{\"address\": \"::1:80\"}]"),
      { "listeners[0].address: IPv6 addresses must be written [addr]:port" } },
    { WITH_LST("[{\"address\": \"[::1]\"}]"), { "listeners[0].address: must be [IPv6]:port" } },
    { WITH_LST("[{\"address\": \"[::1]:0\"}]"), { "listeners[0].address: port out of range" } },
    { WITH_LST("[{\"address\": \"[nope]:80\"}]"), { "listeners[0].address: invalid IPv6 address" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\"}, {\"address\": \"127.0.0.1:80\"}]"),
      { "listeners[1].address: duplicate listener 127.0.0.1:80" } },
    /* Duplicates are found on the normalised text. */
    { WITH_LST("[{\"address\": \"127.0.0.1:80\"}, {\"address\": \"127.0.0.1:080\"}]"),
      { "listeners[1].address: duplicate listener 127.0.0.1:80" } },
    { WITH_LST("[{\"address\": \"[::1]:80\"}, {\"address\": \"[0::0:1]:80\"}]"),
      { "listeners[1].address: duplicate listener [::1]:80" } },
    /* tls is parsed (test_tls.c has its own cases): */
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"tls\": {}}]"),
      { "listeners[0].tls.certificates: required: at least one certificate" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"tls\": true}]"),
      { "listeners[0].tls: must be an object, not a boolean" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"tls\": {\"certificates\": "
               "[{\"cert\": \"/nonexistent/c.pem\", \"key\": \"/nonexistent/k.pem\"}]}}]"),
      { "listeners[0].tls.certificates[0].cert: cannot read /nonexistent/c.pem: "
        "No such file or directory",
        "listeners[0].tls.certificates[0].key: cannot read /nonexistent/k.pem: "
        "No such file or directory" } },
    /* the address and tls of one listener in the same pass */
    { WITH_LST("[{\"address\": \"127.0.0.1\", \"tls\": {\"alpn\": []}}]"),
      { "listeners[0].address: must be host:port",
        "listeners[0].tls.alpn: must contain at least one protocol",
        "listeners[0].tls.certificates: required: at least one certificate" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"port\": 80}]"),
      { "listeners[0].port: unknown key" } },

    /* limits */
    { WITH("\"limits\": []"), { "limits: must be an object, not an array" } },
    { WITH("\"limits\": {\"max_connections\": 0}"),
      { "limits.max_connections: must be between 1 and 1000000, not 0" } },
    { WITH("\"limits\": {\"max_header_bytes\": 1023}"),
      { "limits.max_header_bytes: must be between 1024 and 1048576, not 1023" } },
    { WITH("\"limits\": {\"max_header_bytes\": 1048577}"),
      { "limits.max_header_bytes: must be between 1024 and 1048576, not 1048577" } },
    { WITH("\"limits\": {\"max_headers\": 1001}"),
      { "limits.max_headers: must be between 1 and 1000, not 1001" } },
    { WITH("\"limits\": {\"max_uri_bytes\": 63}"),
      { "limits.max_uri_bytes: must be between 64 and 1048576, not 63" } },
    { WITH("\"limits\": {\"max_uri_bytes\": 16385}"),
      { "limits.max_uri_bytes: must not exceed limits.max_header_bytes (16384)" } },
    { WITH("\"limits\": {\"max_header_bytes\": 2048, \"max_uri_bytes\": 4096}"),
      { "limits.max_uri_bytes: must not exceed limits.max_header_bytes (2048)" } },
    { WITH("\"limits\": {\"max_body_bytes\": -5}"),
      { "limits.max_body_bytes: must be between 0 and 1125899906842624, not -5" } },
    { WITH("\"limits\": {\"max_connections_per_ip\": -1}"),
      { "limits.max_connections_per_ip: must be between 0 and 1000000, not -1" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"proxy_protocol\": \"v1\"}]"),
      { "listeners[0].proxy_protocol: needs trusted_proxies: the header is believed only from the load balancers listed there" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"proxy_protocol\": \"v3\"}]"),
      { "listeners[0].proxy_protocol: must be \"v1\" or \"v2\"" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"proxy_protocol\": true}], \"trusted_proxies\": [\"10.0.0.1\"]"),
      { "listeners[0].proxy_protocol: must be \"v1\" or \"v2\"" } },
    { WITH_LST("[{\"address\": \"127.0.0.1:80\", \"proxy_protocol\": \"v2\"}], \"trusted_proxies\": []"),
      { "listeners[0].proxy_protocol: needs trusted_proxies: the header is believed only from the load balancers listed there" } },
    { WITH("\"limits\": {\"h2_max_concurrent_streams\": 0}"),
      { "limits.h2_max_concurrent_streams: must be between 1 and 1000, not 0" } },
    { WITH("\"limits\": {\"max_conns\": 10}"), { "limits.max_conns: unknown key" } },

    /* timeouts */
    { WITH("\"timeouts\": 5"), { "timeouts: must be an object, not an integer" } },
    { WITH("\"timeouts\": {\"shutdown_drain_ms\": 3600001}"),
      { "timeouts.shutdown_drain_ms: must be between 0 and 3600000, not 3600001" } },
    { WITH("\"timeouts\": {\"client_min_bytes_per_s\": 100000001}"),
      { "timeouts.client_min_bytes_per_s: must be between 0 and 100000000, not 100000001" } },
    { WITH("\"timeouts\": {\"client_min_bytes_per_s\": \"fast\"}"),
      { "timeouts.client_min_bytes_per_s: must be an integer, not a string" } },
    { WITH("\"timeouts\": {\"client_header_ms\": 0}"),
      { "timeouts.client_header_ms: must be between 1 and 86400000, not 0" } },
    { WITH("\"timeouts\": {\"upstream_connect_ms\": 86400001}"),
      { "timeouts.upstream_connect_ms: must be between 1 and 86400000, not 86400001" } },
    { WITH("\"timeouts\": {\"request_ms\": -1}"),
      { "timeouts.request_ms: must be between 0 and 86400000, not -1" } },
    { WITH("\"timeouts\": {\"connect_ms\": 1}"), { "timeouts.connect_ms: unknown key" } },

    /* upstreams */
    { "{" LST ", " RTS "}", { "upstreams: required: at least one upstream" } },
    { WITH_UPS("{}"), { "upstreams: must contain at least one upstream" } },
    { WITH_UPS("[]"), { "upstreams: must be an object, not an array" } },
    { WITH_UPS("{\"my app\": {\"backends\": [{\"address\": \"127.0.0.1:9000\"}]}}"),
      { "upstreams.my app: upstream names are 1 to 64 characters of A-Z a-z 0-9 _ - .",
        "routes[0].upstream: unknown upstream \"app\"" } },
    { WITH_UPS("{\"app\": []}"), { "upstreams.app: must be an object, not an array" } },
    { APP("{}"), { "upstreams.app.backends: required: at least one backend" } },
    { APP("{\"backends\": []}"), { "upstreams.app.backends: must contain at least one backend" } },
    { APP("{\"backends\": {}}"), { "upstreams.app.backends: must be an array, not an object" } },
    { APP("{\"backends\": [{}]}"), { "upstreams.app.backends[0].address: required" } },
    { APP("{\"backends\": [\"127.0.0.1:9000\"]}"),
      { "upstreams.app.backends[0]: must be an object, not a string" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1\"}]}"),
      { "upstreams.app.backends[0].address: must be host:port" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}, {\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.backends[1].address: duplicate backend 127.0.0.1:9000 in this upstream" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"weight\": 0}]}"),
      { "upstreams.app.backends[0].weight: must be between 1 and 1000, not 0" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"weight\": 1001}]}"),
      { "upstreams.app.backends[0].weight: must be between 1 and 1000, not 1001" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"weight\": \"5\"}]}"),
      { "upstreams.app.backends[0].weight: must be an integer, not a string" } },
    { APP("{\"backends\": [{\"address\": \"-web.example:80\"}]}"),
      { "upstreams.app.backends[0].address: host name labels are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'" } },
    { APP("{\"backends\": [{\"address\": \"web..example:80\"}]}"),
      { "upstreams.app.backends[0].address: host name labels are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:99999\"}]}"),
      { "upstreams.app.backends[0].address: port out of range" } },
    { APP("{\"backends\": [{\"address\": \"::1:80\"}]}"),
      { "upstreams.app.backends[0].address: IPv6 addresses must be written [addr]:port" } },
    { APP("{\"backends\": [{\"address\": \"web!1:80\"}]}"),
      { "upstreams.app.backends[0].address: host must be a host name, a numeric IPv4 or an [IPv6] address" } },
    { APP("{\"backends\": [{\"address\": \"1.2.3:80\"}]}"),
      { "upstreams.app.backends[0].address: host must be a numeric IPv4 or [IPv6] address" } },
    { APP("{\"backends\": [{\"address\": \"web:0\"}]}"),
      { "upstreams.app.backends[0].address: port out of range" } },
    { APP("{\"backends\": [{\"address\": \"web:80\"}, {\"address\": \"WEB:80\"}]}"),
      { "upstreams.app.backends[1].address: duplicate backend web:80 in this upstream" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"resolve_interval_ms\": 1000}"),
      { "upstreams.app.resolve_interval_ms: no backend of this upstream is given by host name" } },
    { APP("{\"backends\": [{\"address\": \"web:80\"}], \"resolve_interval_ms\": 50}"),
      { "upstreams.app.resolve_interval_ms: must be between 100 and 86400000, not 50" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"max_connections\": 0}]}"),
      { "upstreams.app.backends[0].max_connections: must be between 1 and 1000000, not 0" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"max_connections\": \"5\"}]}"),
      { "upstreams.app.backends[0].max_connections: must be an integer, not a string" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"queue\": {\"size\": 10}}"),
      { "upstreams.app.queue.size: a queue needs at least one backend with max_connections, or circuit.max_active_requests" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"circuit\": {\"max_active_requests\": 0}}"),
      { "upstreams.app.circuit.max_active_requests: must be between 1 and 10000000, not 0" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"circuit\": {\"max_requests\": 5}}"),
      { "upstreams.app.circuit.max_requests: unknown key" } },
    { WITH("\"limits\": {\"max_active_requests_per_worker\": -1}"),
      { "limits.max_active_requests_per_worker: must be between 0 and 10000000, not -1" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"max_connections\": 5}],"
          " \"queue\": {\"size\": -1, \"timeout_ms\": 0}}"),
      { "upstreams.app.queue.size: must be between 0 and 1000000, not -1",
        "upstreams.app.queue.timeout_ms: must be between 1 and 3600000, not 0" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"max_connections\": 5}],"
          " \"queue\": {\"length\": 1}}"),
      { "upstreams.app.queue.length: unknown key" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\", \"max_connections\": 5}],"
          " \"queue\": []}"),
      { "upstreams.app.queue: must be an object, not an array" } },
    { APP("{\"health\": {\"active\": {\"expect_status\": \"2xx\"}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.expect_status: must be status codes and ranges separated by commas, as \"200-399\" or \"200,204\"" } },
    { APP("{\"health\": {\"active\": {\"expect_status\": \"500-200\"}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.expect_status: status codes are 100 to 599, each range low-high" } },
    { APP("{\"health\": {\"active\": {\"interval_ms\": 500, \"timeout_ms\": 500}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.timeout_ms: must be below interval_ms (500)" } },
    { APP("{\"health\": {\"active\": {\"path\": \"healthz\"}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.path: must start with / and be printable ASCII without spaces or #, under 1024 bytes" } },
    { APP("{\"health\": {\"active\": {\"path\": \"/h#x\"}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.path: must start with / and be printable ASCII without spaces or #, under 1024 bytes" } },
    { APP("{\"health\": {\"active\": {\"host\": \"a@b\"}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.active.host: must be a host name or address, with an optional port (letters, digits and - . : [ ] _)" } },
    { APP("{\"balancer\": \"random\", \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.balancer: unknown balancer \"random\" (round_robin, least_conn)" } },
    { APP("{\"health\": {\"passive\": {\"ejection_ms\": 0}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.passive.ejection_ms: must be between 1 and 86400000, not 0" } },
    { APP("{\"health\": {\"passive\": {\"ejection_ms\": 500, \"max_ejection_ms\": 100}}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health.passive.max_ejection_ms: must be at least ejection_ms (500)" } },
    { APP("{\"health\": [], \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.health: must be an object, not an array" } },
    { APP("{\"retry\": {\"max_retries\": 11}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry.max_retries: must be between 0 and 10, not 11" } },
    { APP("{\"retry\": {\"backoff_base_ms\": 300, \"backoff_max_ms\": 100}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry.backoff_max_ms: must be at least backoff_base_ms (300)" } },
    { APP("{\"retry\": {\"on_status\": [503, 200]}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry.on_status: status codes are integers from 400 to 599 (entry 1)" } },
    { APP("{\"retry\": {\"on_status\": 503}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry.on_status: must be an array of status codes, not an integer" } },
    { APP("{\"retry\": {\"tries\": 1}, \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry.tries: unknown key" } },
    { APP("{\"retry\": [], \"backends\": [{\"address\": \"127.0.0.1:9000\"}]}"),
      { "upstreams.app.retry: must be an object, not an array" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"retry\": {\"budget_percent\": 101}}]"),
      { "routes[0].retry.budget_percent: must be between 0 and 100, not 101" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"pool\": {\"max_idle_per_backend\": -1}}"),
      { "upstreams.app.pool.max_idle_per_backend: must be between 0 and 100000, not -1" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"pool\": {\"idle_timeout_ms\": 0}}"),
      { "upstreams.app.pool.idle_timeout_ms: must be between 1 and 86400000, not 0" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"pool\": {\"size\": 1}}"),
      { "upstreams.app.pool.size: unknown key" } },
    { APP("{\"backends\": [{\"address\": \"127.0.0.1:9000\"}], \"pool\": 1}"),
      { "upstreams.app.pool: must be an object, not an integer" } },

    /* routes (checked by the router module, whatever errors the core
     * sections had) */
    { "{" LST ", " UPS "}", { "routes: required: at least one route" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"timeouts\": {\"client_header_ms\": 5}}]"),
      { "routes[0].timeouts.client_header_ms: not a route's: it applies before a route is chosen; set it in the top-level timeouts" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"timeouts\": {\"client_min_bytes_per_s\": 5}}]"),
      { "routes[0].timeouts.client_min_bytes_per_s: not a route's: it measures the whole client connection; set it in the top-level timeouts" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"timeouts\": {\"connect_ms\": 5}}]"),
      { "routes[0].timeouts.connect_ms: unknown key" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"timeouts\": {\"upstream_response_ms\": 0}}]"),
      { "routes[0].timeouts.upstream_response_ms: must be between 1 and 86400000, not 0" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"timeouts\": 5}]"),
      { "routes[0].timeouts: must be an object, not an integer" } },
    { WITH_RTS("[]"), { "routes: must contain at least one route" } },
    { WITH_RTS("{}"), { "routes: must be an array" } },
    { WITH_RTS("[\"app\"]"), { "routes[0]: must be an object" } },
    { WITH_RTS("[{}]"), { "routes[0].upstream: required" } },
    { WITH_RTS("[{\"upstream\": \"nope\"}]"), { "routes[0].upstream: unknown upstream \"nope\"" } },
    { WITH_RTS("[{\"upstream\": 1}]"), { "routes[0].upstream: must be a string, not an integer" } },
    { WITH_RTS("[{\"path\": \"/a\", \"path_prefix\": \"/b\", \"upstream\": \"app\"}]"),
      { "routes[0]: path and path_prefix are exclusive" } },
    { WITH_RTS("[{\"path\": \"api\", \"upstream\": \"app\"}]"),
      { "routes[0].path: must start with /" } },
    { WITH_RTS("[{\"path_prefix\": \"api\", \"upstream\": \"app\"}]"),
      { "routes[0].path_prefix: must start with /" } },
    { WITH_RTS("[{\"path\": \"/a b\", \"upstream\": \"app\"}]"),
      { "routes[0].path: must be a URL path without spaces, control characters, ? or #" } },
    { WITH_RTS("[{\"path_prefix\": \"/a?b\", \"upstream\": \"app\"}]"),
      { "routes[0].path_prefix: must be a URL path without spaces, control characters, ? or #" } },
    { WITH_RTS("[{\"path_prefix\": \"/files%2fprivate\", \"upstream\": \"app\"}]"),
      { "routes[0].path_prefix: not in normal form: requests are matched as \"/files%2Fprivate\"" } },
    { WITH_RTS("[{\"path\": \"/x/./y\", \"upstream\": \"app\"}]"),
      { "routes[0].path: not in normal form: requests are matched as \"/x/y\"" } },
    { WITH_RTS("[{\"path_prefix\": \"/%7Euser\", \"upstream\": \"app\"}]"),
      { "routes[0].path_prefix: not in normal form: requests are matched as \"/~user\"" } },
    { WITH_RTS("[{\"path\": \"/a/../../b\", \"upstream\": \"app\"}]"),
      { "routes[0].path: path climbs above the root" } },
    { WITH_RTS("[{\"path\": \"/a%zz\", \"upstream\": \"app\"}]"),
      { "routes[0].path: invalid percent-escape in path" } },
    { WITH_RTS("[{\"host\": \"example.com:80\", \"upstream\": \"app\"}]"),
      { "routes[0].host: must not contain a port (routes match the host name only)" } },
    { WITH_RTS("[{\"host\": \"*\", \"upstream\": \"app\"}]"),
      { "routes[0].host: \"*\" is not a host: leave host out to match any host" } },
    { WITH_RTS("[{\"host\": \"*example.com\", \"upstream\": \"app\"}]"),
      { "routes[0].host: a wildcard must be written *.domain" } },
    { WITH_RTS("[{\"host\": \"*.*.example.com\", \"upstream\": \"app\"}]"),
      { "routes[0].host: a wildcard must be written *.domain" } },
    { WITH_RTS("[{\"host\": \"a.*.com\", \"upstream\": \"app\"}]"),
      { "routes[0].host: invalid host name \"a.*.com\"" } },
    { WITH_RTS("[{\"host\": \"exa mple.com\", \"upstream\": \"app\"}]"),
      { "routes[0].host: invalid host name \"exa mple.com\"" } },
    { WITH_RTS("[{\"host\": \"\", \"upstream\": \"app\"}]"),
      { "routes[0].host: must be 1 to 255 characters" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"websocket\": 1}]"),
      { "routes[0].websocket: must be true or false, not an integer" } },
    { WITH_RTS("[{\"upstream\": \"app\", \"methods\": [\"GET\"]}]"),
      { "routes[0].methods: unknown key" } },
    /* Duplicates name the later route and the first one; case and a
     * trailing dot in the host do not make routes different. */
    { WITH_RTS("[{\"host\": \"a.example.com\", \"path\": \"/x\", \"upstream\": \"app\"},"
               " {\"upstream\": \"app\"},"
               " {\"host\": \"A.Example.com.\", \"path\": \"/x\", \"upstream\": \"app\"}]"),
      { "routes[2]: duplicate route (same host and path as routes[0])" } },
    { WITH_RTS("[{\"path_prefix\": \"/\", \"upstream\": \"app\"}, {\"upstream\": \"app\"}]"),
      { "routes[1]: duplicate route (same host and path prefix as routes[0])" } },
    { WITH_RTS("[{\"host\": \"*.example.com\", \"path_prefix\": \"/a\", \"upstream\": \"app\"},"
               " {\"host\": \"*.EXAMPLE.com\", \"path_prefix\": \"/a\", \"upstream\": \"app\"}]"),
      { "routes[1]: duplicate route (same host and path prefix as routes[0])" } },
    /* Several problems in one route are all reported. */
    { WITH_RTS("[{\"host\": \"*\", \"path\": \"x\", \"upstream\": \"nope\"}]"),
      { "routes[0].host: \"*\" is not a host: leave host out to match any host",
        "routes[0].path: must start with /",
        "routes[0].upstream: unknown upstream \"nope\"" } },

    /* log */
    { WITH("\"log\": \"info\""), { "log: must be an object, not a string" } },
    { WITH("\"log\": {\"level\": \"verbose\"}"),
      { "log.level: must be one of error, warn, info, debug, not \"verbose\"" } },
    { WITH("\"log\": {\"level\": 3}"), { "log.level: must be a string, not an integer" } },
    { WITH("\"log\": {\"format\": \"xml\"}"),
      { "log.format: must be \"json\" or \"text\", not \"xml\"" } },
    { WITH("\"log\": {\"access_log\": \"logs/access.log\"}"),
      { "log.access_log: must be an absolute path, \"stderr\" or \"off\"" } },
    { WITH("\"log\": {\"access_log\": \"\"}"),
      { "log.access_log: must be an absolute path, \"stderr\" or \"off\"" } },
    { WITH("\"log\": {\"access_log\": \"/tmp/a\\u0000b\"}"),
      { "log.access_log: must not contain NUL characters" } },
    { WITH("\"log\": {\"file\": \"/tmp/x\"}"), { "log.file: unknown key" } },
};

START_TEST(test_invalid_exact)
{
    const bad_case_t *c = &bad_cases[_i];
    json_t *root = parse(c->doc);
    rp_errs_t errs = { 0 };
    static rp_snapshot_t dummy;
    rp_snapshot_t *const sentinel = &dummy;
    rp_snapshot_t *snap = sentinel;   /* must stay untouched */
    int rc = rp_snapshot_build(root, &snap, &errs);

    size_t nwant = 0;
    while (nwant < MAX_EXPECT && c->want[nwant] != NULL)
        nwant++;
    if (errs.count != nwant)
        dump_errs(&errs);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_eq(snap, sentinel);
    ck_assert_msg(errs.count == nwant, "case %d: %zu errors, expected %zu (first expected: %s)",
                  _i, errs.count, nwant, c->want[0]);
    for (size_t i = 0; i < nwant; i++) {
        if (!errs_have(&errs, c->want[i]))
            dump_errs(&errs);
        ck_assert_msg(errs_have(&errs, c->want[i]), "case %d: missing error \"%s\"",
                      _i, c->want[i]);
    }
    rp_errs_free(&errs);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_ptr_null(errs.msgs);
    json_decref(root);
}
END_TEST

/* Validation does not stop at the first problem. */
START_TEST(test_all_errors_reported)
{
    json_t *root = parse(
        "{\"workers\": -1, \"listeners\": [{\"address\": \"127.0.0.1\"}, {\"address\": \"x:1\"}],"
        " \"limits\": {\"max_headers\": 0, \"max_connections_per_ip\": -1},"
        " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:9000\", \"weight\": 0}]}},"
        " \"routes\": [{\"upstream\": \"app\"}], \"log\": {\"format\": \"TEXT\"}, \"extra\": 1}");
    static const char *const want[] = {
        "extra: unknown key",
        "workers: must be between 0 and 256, not -1",
        "listeners[0].address: must be host:port",
        "listeners[1].address: host must be a numeric IPv4 or [IPv6] address",
        "limits.max_headers: must be between 1 and 1000, not 0",
        "limits.max_connections_per_ip: must be between 0 and 1000000, not -1",
        "upstreams.app.backends[0].weight: must be between 1 and 1000, not 0",
        "log.format: must be \"json\" or \"text\", not \"TEXT\"",
    };
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), -1);
    ck_assert_ptr_null(snap);
    if (errs.count != sizeof want / sizeof want[0])
        dump_errs(&errs);
    ck_assert_uint_gt(errs.count, 1);
    ck_assert_uint_eq(errs.count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(errs_have(&errs, want[i]), "missing error \"%s\"", want[i]);
    rp_errs_free(&errs);
    json_decref(root);
}
END_TEST

/* Errors in the core sections do not stop the modules from checking theirs:
 * the router's errors come in the same pass as the listeners', the
 * upstreams' and the root's. */
START_TEST(test_module_errors_with_core_errors)
{
    json_t *root = parse(
        "{\"listeners\": [{\"address\": \"127.0.0.1:99999\"}],"
        " \"upstreams\": {\"a\": {\"backends\": [{\"address\": \"127.0.0.1:2\", \"weight\": 0}]}},"
        " \"routes\": [{\"upstream\": \"b\"}, {\"path\": \"x\", \"upstream\": \"a\"}],"
        " \"admin\": {}}");
    static const char *const want[] = {
        "admin.address: required",
        "listeners[0].address: port out of range",
        "upstreams.a.backends[0].weight: must be between 1 and 1000, not 0",
        "routes[0].upstream: unknown upstream \"b\"",
        "routes[1].path: must start with /",
    };
    rp_errs_t errs = { 0 };
    static rp_snapshot_t dummy;
    rp_snapshot_t *snap = &dummy;
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), -1);
    ck_assert_ptr_eq(snap, &dummy);
    if (errs.count != sizeof want / sizeof want[0])
        dump_errs(&errs);
    ck_assert_uint_eq(errs.count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(errs_have(&errs, want[i]), "missing error \"%s\"", want[i]);
    rp_errs_free(&errs);
    json_decref(root);
}
END_TEST

/* Errors are appended: a caller may collect several documents' errors in one
 * list, and a failed build leaves earlier entries alone. */
START_TEST(test_errors_append)
{
    rp_errs_t errs = { 0 };
    rp_errs_add(&errs, "", "plain %d", 1);
    rp_errs_add(&errs, "a.b", "with path %s", "x");
    json_t *root = parse(WITH("\"workers\": 999"));
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), -1);
    ck_assert_uint_eq(errs.count, 3);
    ck_assert_str_eq(errs.msgs[0], "plain 1");
    ck_assert_str_eq(errs.msgs[1], "a.b: with path x");
    ck_assert_str_eq(errs.msgs[2], "workers: must be between 0 and 256, not 999");
    rp_errs_free(&errs);
    rp_errs_free(&errs);   /* harmless twice */
    json_decref(root);
}
END_TEST

START_TEST(test_conf_path)
{
    char buf[32];
    rp_conf_path(buf, sizeof buf, "", "c");
    ck_assert_str_eq(buf, "c");
    rp_conf_path(buf, sizeof buf, "a.b", "c");
    ck_assert_str_eq(buf, "a.b.c");
    rp_conf_path(buf, 6, "abc", "defgh");   /* truncated, still terminated */
    ck_assert_str_eq(buf, "abc.d");
}
END_TEST

/* ---- loading files ---- */

static char tmp_path[256];
#define BASE_DOC_FOR_HASH "{" BASE "}\n"
/* printf '%s\n' "$doc" | sha256sum */
#define BASE_DOC_SHA256 "60cec9d69451d601c3e9e6074c73e15361a103b4bbe8963793a3b18dd752c443"

static void
write_tmp(const char *content)
{
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/rp-test-config-XXXXXX",
             dir != NULL && dir[0] != '\0' ? dir : "/tmp");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(content);
    ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
    ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_load_valid_file)
{
    write_tmp(full_doc);
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    int rc = rp_snapshot_load(tmp_path, &snap, &errs);
    unlink(tmp_path);
    if (rc != 0)
        dump_errs(&errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(snap->nupstreams, 3);
    rp_snapshot_unref(snap);
}
END_TEST

START_TEST(test_load_syntax_error)
{
    /* The stray "}" on line 4 column 1 closes an array. */
    write_tmp("{\n  \"workers\": 1,\n  \"listeners\": [\n}\n");
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_load(tmp_path, &snap, &errs), -1);
    unlink(tmp_path);
    ck_assert_ptr_null(snap);
    ck_assert_uint_eq(errs.count, 1);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:4:1: ", tmp_path);
    ck_assert_msg(strncmp(errs.msgs[0], prefix, strlen(prefix)) == 0,
                  "\"%s\" does not start with \"%s\"", errs.msgs[0], prefix);
    ck_assert_uint_gt(strlen(errs.msgs[0]), strlen(prefix));
    rp_errs_free(&errs);
}
END_TEST

START_TEST(test_load_duplicate_key)
{
    /* Duplicate keys would silently drop a setting: rejected at parse time. */
    write_tmp("{\"workers\": 1,\n \"workers\": 2}\n");
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_load(tmp_path, &snap, &errs), -1);
    unlink(tmp_path);
    ck_assert_uint_eq(errs.count, 1);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:2:", tmp_path);
    ck_assert_msg(strncmp(errs.msgs[0], prefix, strlen(prefix)) == 0,
                  "\"%s\" does not start with \"%s\"", errs.msgs[0], prefix);
    ck_assert_ptr_nonnull(strstr(errs.msgs[0], "duplicate"));
    rp_errs_free(&errs);
}
END_TEST

START_TEST(test_load_semantic_error)
{
    write_tmp(WITH("\"workers\": \"4\""));
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_load(tmp_path, &snap, &errs), -1);
    unlink(tmp_path);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.msgs[0], "workers: must be an integer, not a string");
    rp_errs_free(&errs);
}
END_TEST

START_TEST(test_admin_valid)
{
    json_t *root = parse(WITH("\"admin\": {\"address\": \"[::1]:9901\", \"token\": \"Ab9-._~+/=0123456789\"}"));
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), 0);
    ck_assert(snap->admin.enabled);
    ck_assert(!snap->admin.allow_remote);
    ck_assert_str_eq(snap->admin.token, "Ab9-._~+/=0123456789");
    ck_assert_uint_eq(snap->warnings.count, 0);
    json_t *d = rp_snapshot_dump(snap);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "admin"), "address")),
                     "[::1]:9901");
    json_decref(d);
    rp_snapshot_unref(snap);
    json_decref(root);
    /* Beyond loopback without a token: valid, with a warning. */
    root = parse(WITH("\"admin\": {\"address\": \"0.0.0.0:9901\", \"allow_remote\": true}"));
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), 0);
    ck_assert_uint_eq(snap->warnings.count, 1);
    ck_assert_ptr_nonnull(strstr(snap->warnings.msgs[0], "admin.allow_remote: "));
    rp_snapshot_unref(snap);
    json_decref(root);
    /* No section: no admin port. */
    root = parse(WITH("\"workers\": 1"));
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), 0);
    ck_assert(!snap->admin.enabled);
    ck_assert_ptr_null(json_object_get(d = rp_snapshot_dump(snap), "admin"));
    json_decref(d);
    rp_snapshot_unref(snap);
    json_decref(root);
}
END_TEST

/* The hash is of the file's bytes, as sha256sum prints it. */
START_TEST(test_load_hash)
{
    write_tmp(BASE_DOC_FOR_HASH);
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_load(tmp_path, &snap, &errs), 0);
    unlink(tmp_path);
    ck_assert_str_eq(snap->sha256, BASE_DOC_SHA256);
    ck_assert_uint_gt(snap->loaded_unix_ms, 1700000000000ull);
    rp_snapshot_unref(snap);
}
END_TEST

START_TEST(test_load_missing_file)
{
    const char *path = "/nonexistent/revproxy-test/config.json";
    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    ck_assert_int_eq(rp_snapshot_load(path, &snap, &errs), -1);
    ck_assert_ptr_null(snap);
    ck_assert_uint_eq(errs.count, 1);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s: ", path);
    ck_assert_msg(strncmp(errs.msgs[0], prefix, strlen(prefix)) == 0,
                  "\"%s\" does not start with \"%s\"", errs.msgs[0], prefix);
    ck_assert_uint_gt(strlen(errs.msgs[0]), strlen(prefix));
    rp_errs_free(&errs);
}
END_TEST

/* ---- rp_addr_parse ---- */

typedef struct addr_case {
    const char *in;
    const char *text;   /* normalised, or NULL when invalid */
    int family;
    unsigned port;
    const char *why;    /* when invalid */
} addr_case_t;

static const addr_case_t addr_cases[] = {
    { "127.0.0.1:80", "127.0.0.1:80", AF_INET, 80, NULL },
    { "0.0.0.0:65535", "0.0.0.0:65535", AF_INET, 65535, NULL },
    { "10.1.2.3:1", "10.1.2.3:1", AF_INET, 1, NULL },
    { "127.0.0.1:0080", "127.0.0.1:80", AF_INET, 80, NULL },
    { "[::1]:8080", "[::1]:8080", AF_INET6, 8080, NULL },
    { "[0:0:0:0:0:0:0:1]:8080", "[::1]:8080", AF_INET6, 8080, NULL },
    { "[2001:DB8:0::1]:443", "[2001:db8::1]:443", AF_INET6, 443, NULL },
    { "[::]:80", "[::]:80", AF_INET6, 80, NULL },
    { "[::ffff:1.2.3.4]:80", "[::ffff:1.2.3.4]:80", AF_INET6, 80, NULL },
    { "", NULL, 0, 0, "must be host:port" },
    { "127.0.0.1", NULL, 0, 0, "must be host:port" },
    { ":80", NULL, 0, 0, "missing or too long host" },
    { "127.0.0.1:", NULL, 0, 0, "port out of range" },
    { "127.0.0.1:0", NULL, 0, 0, "port out of range" },
    { "127.0.0.1:65536", NULL, 0, 0, "port out of range" },
    { "127.0.0.1:70000", NULL, 0, 0, "port out of range" },
    { "127.0.0.1:123456", NULL, 0, 0, "port out of range" },
    { "127.0.0.1:8a", NULL, 0, 0, "port must be a number" },
    { "127.0.0.1:-1", NULL, 0, 0, "port must be a number" },
    { "127.0.0.1: 80", NULL, 0, 0, "port must be a number" },
    { "localhost:80", NULL, 0, 0, "host must be a numeric IPv4 or [IPv6] address" },
    { "1.2.3:80", NULL, 0, 0, "host must be a numeric IPv4 or [IPv6] address" },
    { "256.1.1.1:80", NULL, 0, 0, "host must be a numeric IPv4 or [IPv6] address" },
    { "::1:80", NULL, 0, 0, "IPv6 addresses must be written [addr]:port" },
    { "[::1]", NULL, 0, 0, "must be [IPv6]:port" },
    { "[::1]80", NULL, 0, 0, "must be [IPv6]:port" },
    { "[::1:80", NULL, 0, 0, "must be [IPv6]:port" },
    { "[]:80", NULL, 0, 0, "invalid IPv6 address" },
    { "[::g]:80", NULL, 0, 0, "invalid IPv6 address" },
    { "[1.2.3.4]:80", NULL, 0, 0, "invalid IPv6 address" },
    { "[::1]:", NULL, 0, 0, "port out of range" },
    { "[::1]:99999", NULL, 0, 0, "port out of range" },
};

START_TEST(test_addr_parse)
{
    const addr_case_t *c = &addr_cases[_i];
    rp_addr_t a;
    const char *why = NULL;
    int rc = rp_addr_parse(c->in, &a, &why);
    if (c->text != NULL) {
        ck_assert_msg(rc == 0, "\"%s\" rejected: %s", c->in, why ? why : "?");
        ck_assert_str_eq(a.text, c->text);
        ck_assert_int_eq(a.ss.ss_family, c->family);
        if (c->family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a.ss;
            ck_assert_uint_eq(a.len, sizeof *s4);
            ck_assert_uint_eq(ntohs(s4->sin_port), c->port);
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a.ss;
            ck_assert_uint_eq(a.len, sizeof *s6);
            ck_assert_uint_eq(ntohs(s6->sin6_port), c->port);
        }
    } else {
        ck_assert_msg(rc == -1, "\"%s\" accepted as %s", c->in, a.text);
        ck_assert_ptr_nonnull(why);
        ck_assert_str_eq(why, c->why);
    }
}
END_TEST

START_TEST(test_addr_parse_roundtrip)
{
    /* The normalised text parses back to itself. */
    const addr_case_t *c = &addr_cases[_i];
    if (c->text == NULL)
        return;
    rp_addr_t a, b;
    const char *why = NULL;
    ck_assert_int_eq(rp_addr_parse(c->in, &a, &why), 0);
    ck_assert_int_eq(rp_addr_parse(a.text, &b, &why), 0);
    ck_assert_str_eq(a.text, b.text);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_mem_eq(&a.ss, &b.ss, a.len);
}
END_TEST

/* ---- suite ---- */

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("valid_minimal");
    tcase_add_test(tc, test_minimal_valid);
    tcase_add_test(tc, test_health_dump_round_trip);
    tcase_add_test(tc, test_access_log_stderr);
    tcase_add_test(tc, test_access_log_off);
    tcase_add_test(tc, test_uri_limit_follows_small_head_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid_full");
    tcase_add_test(tc, test_full_valid);
    tcase_add_test(tc, test_backend_identity_stable);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid_exact_messages");
    tcase_add_loop_test(tc, test_invalid_exact, 0, NCASES(bad_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("all_errors_reported");
    tcase_add_test(tc, test_all_errors_reported);
    tcase_add_test(tc, test_module_errors_with_core_errors);
    tcase_add_test(tc, test_errors_append);
    tcase_add_test(tc, test_conf_path);
    suite_add_tcase(s, tc);

    tc = tcase_create("load_file");
    tcase_add_test(tc, test_load_valid_file);
    tcase_add_test(tc, test_load_syntax_error);
    tcase_add_test(tc, test_load_duplicate_key);
    tcase_add_test(tc, test_load_semantic_error);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_admin_valid);
    tcase_add_test(tc, test_load_hash);
    suite_add_tcase(s, tc);

    tc = tcase_create("addr_parse");
    tcase_add_loop_test(tc, test_addr_parse, 0, NCASES(addr_cases));
    tcase_add_loop_test(tc, test_addr_parse_roundtrip, 0, NCASES(addr_cases));
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
