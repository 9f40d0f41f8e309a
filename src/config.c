/* SPDX-License-Identifier: MIT */
/*
 * Config snapshots: parse a JSON document into an immutable, reference-
 * counted rp_snapshot_t.  Validation never stops at the first problem: every
 * error is collected with its JSON path so an operator fixes them in one
 * pass.  The core sections (workers, listeners, limits, timeouts, upstreams,
 * log) are parsed here; routes and other module sections are handed to the
 * modules' configure hooks (modules/modules.c).
 */
#include "config.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "revproxy/bstate.h"
#include "revproxy/cidr.h"
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/upstream.h"
#include "queue.h"
#include "resolve.h"
#include "tls.h"
#include "util.h"

/* ---- errors ---- */

/* jansson's parser goes on after one of its allocations fails, with its
 * token buffer short of what it then writes into it: a heap overflow, or
 * a string cut short and a different configuration.  So a parse is never
 * let go on: the first allocation that fails during one leaves it
 * (longjmp back to parse_json), and every block the parse allocated and
 * had not freed is freed there.  To know them, each of jansson's blocks
 * carries a header; during a parse it is linked in the parse's list, and
 * a block made at any other time is marked by pointing at itself. */
typedef struct jblock {
    struct jblock *next, *prev;   /* next == self: not in a parse's list */
} jblock_t;
_Static_assert(sizeof(jblock_t) % _Alignof(max_align_t) == 0, "blocks keep malloc's alignment");

static _Thread_local jblock_t *parse_blocks;    /* this thread's parse, if any */
static _Thread_local jmp_buf *parse_escape;     /* set while parsing */

static void *
json_alloc(size_t n)
{
    jblock_t *b = n <= SIZE_MAX - sizeof *b ? malloc(sizeof *b + n) : NULL;
    if (b == NULL) {
        if (parse_escape != NULL)
            longjmp(*parse_escape, 1);
        return NULL;
    }
    if (parse_escape != NULL) {
        b->prev = NULL;
        b->next = parse_blocks;
        if (parse_blocks != NULL)
            parse_blocks->prev = b;
        parse_blocks = b;
    } else {
        b->next = b->prev = b;
    }
    return b + 1;
}

static void
json_free(void *p)
{
    if (p == NULL)
        return;
    jblock_t *b = (jblock_t *)p - 1;
    if (b->next != b) {
        if (b->prev != NULL)
            b->prev->next = b->next;
        else
            parse_blocks = b->next;
        if (b->next != NULL)
            b->next->prev = b->prev;
    }
    free(b);
}

void
rp_json_alloc_install(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
}

void
rp_json_free(void *p)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    f(p);
}

/* json_loadb, left at the first allocation that fails (*oom then). */
static json_t *
parse_json(const char *text, size_t len, json_error_t *jerr, bool *oom)
{
    jmp_buf escape;
    json_t *volatile root = NULL;
    *oom = false;
    parse_blocks = NULL;
    if (setjmp(escape) == 0) {
        parse_escape = &escape;
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, jerr);
        parse_escape = NULL;
        /* What it made lives on outside the parse. */
        jblock_t *b = parse_blocks, *next;
        for (; b != NULL; b = next) {
            next = b->next;
            b->next = b->prev = b;
        }
    } else {
        parse_escape = NULL;
        jblock_t *b = parse_blocks, *next;
        for (; b != NULL; b = next) {
            next = b->next;
            free(b);
        }
        *oom = true;
        root = NULL;
    }
    parse_blocks = NULL;
    return root;
}

/* Allocations of a configuration being built: on failure an error "out
 * of memory" at path, and NULL. */
static void *
cfg_calloc(rp_errs_t *errs, const char *path, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        rp_errs_add(errs, path, "out of memory");
    return p;
}

static char *
cfg_strdup(rp_errs_t *errs, const char *path, const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        rp_errs_add(errs, path, "out of memory");
    return p;
}

/* What an error list holds when memory for its messages ran out (never
 * freed, never written). */
static char errs_oom_text[] = "out of memory";
static char *errs_oom_list[1] = { errs_oom_text };

void
rp_errs_add(rp_errs_t *e, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(path) + strlen(msg) + 3;
    e->total++;
    if (e->msgs == errs_oom_list)
        return;   /* already short of memory: that one error stands */
    char *line = malloc(n);
    char **msgs = line != NULL ? realloc(e->msgs, (e->count + 1) * sizeof *e->msgs) : NULL;
    if (msgs == NULL) {
        /* Out of memory: an error is recorded all the same, so that what
         * was being checked never passes for valid. */
        free(line);
        if (e->count == 0) {
            free(e->msgs);
            e->msgs = errs_oom_list;
            e->count = 1;
        } else if (e->msgs[e->count - 1] != errs_oom_text) {
            free(e->msgs[e->count - 1]);
            e->msgs[e->count - 1] = errs_oom_text;
        }
        return;
    }
    if (path[0] != '\0')
        snprintf(line, n, "%s: %s", path, msg);
    else
        snprintf(line, n, "%s", msg);
    e->msgs = msgs;
    e->msgs[e->count++] = line;
}

void
rp_errs_free(rp_errs_t *e)
{
    for (size_t i = 0; i < e->count; i++)
        if (e->msgs[i] != errs_oom_text)
            free(e->msgs[i]);
    if (e->msgs != errs_oom_list)
        free(e->msgs);
    e->msgs = NULL;
    e->count = 0;
    e->total = 0;
}

/* ---- generic helpers ---- */

void
rp_conf_path(char *buf, size_t cap, const char *path, const char *key)
{
    if (path[0] == '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s.%s", path, key);
}

const char *
rp_conf_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "unknown";
}

int
rp_conf_uint(const json_t *obj, const char *key, const char *path,
             uint64_t min, uint64_t max, uint64_t *out, rp_errs_t *errs)
{
    const json_t *v = json_object_get(obj, key);
    char p[512];
    if (v == NULL)
        return 0;
    rp_conf_path(p, sizeof p, path, key);
    if (!json_is_integer(v)) {
        rp_errs_add(errs, p, "must be an integer, not %s", rp_conf_type_name(v));
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
        rp_errs_add(errs, p, "must be between %" PRIu64 " and %" PRIu64 ", not %" JSON_INTEGER_FORMAT,
                    min, max, n);
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

int
rp_conf_bool(const json_t *obj, const char *key, const char *path,
             bool *out, rp_errs_t *errs)
{
    const json_t *v = json_object_get(obj, key);
    char p[512];
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        rp_conf_path(p, sizeof p, path, key);
        rp_errs_add(errs, p, "must be true or false, not %s", rp_conf_type_name(v));
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int
rp_conf_string(const json_t *obj, const char *key, const char *path,
               const char **out, rp_errs_t *errs)
{
    const json_t *v = json_object_get(obj, key);
    char p[512];
    if (v == NULL)
        return 0;
    rp_conf_path(p, sizeof p, path, key);
    if (!json_is_string(v)) {
        rp_errs_add(errs, p, "must be a string, not %s", rp_conf_type_name(v));
        return -1;
    }
    if (json_string_length(v) != strlen(json_string_value(v))) {
        rp_errs_add(errs, p, "must not contain NUL characters");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static bool
in_list(const char *key, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

int
rp_conf_keys(const json_t *obj, const char *path, const char *const *allowed,
             const char *const *unsupported, rp_errs_t *errs)
{
    const char *key;
    const json_t *v;
    int n = 0;
    char p[512];
    json_object_foreach((json_t *)obj, key, v) {
        rp_conf_path(p, sizeof p, path, key);
        if (in_list(key, unsupported)) {
            rp_errs_add(errs, p, "not supported yet");
            n++;
        } else if (!in_list(key, allowed)) {
            rp_errs_add(errs, p, "unknown key");
            n++;
        }
    }
    return n;
}

static bool
expect_object(const json_t *v, const char *path, rp_errs_t *errs)
{
    if (json_is_object(v))
        return true;
    rp_errs_add(errs, path, "must be an object, not %s", rp_conf_type_name(v));
    return false;
}

/* ---- addresses ---- */

/* The port after "host:": 1 to 65535 in decimal digits. */
static int
parse_port(const char *port, unsigned long *out, const char **why)
{
    if (port[0] == '\0' || strlen(port) > 5) {
        *why = "port out of range";
        return -1;
    }
    unsigned long p = 0;
    for (const char *c = port; *c; c++) {
        if (!isdigit((unsigned char)*c)) {
            *why = "port must be a number";
            return -1;
        }
        p = p * 10 + (unsigned long)(*c - '0');
    }
    if (p == 0 || p > 65535) {
        *why = "port out of range";
        return -1;
    }
    *out = p;
    return 0;
}

int
rp_addr_parse(const char *text, rp_addr_t *out, const char **why)
{
    char host[64];
    const char *port;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':') {
            *why = "must be [IPv6]:port";
            return -1;
        }
        size_t hl = (size_t)(end - text - 1);
        if (hl == 0 || hl >= sizeof host) {
            *why = "invalid IPv6 address";
            return -1;
        }
        memcpy(host, text + 1, hl);
        host[hl] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            *why = "must be host:port";
            return -1;
        }
        if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
            *why = "IPv6 addresses must be written [addr]:port";
            return -1;
        }
        size_t hl = (size_t)(colon - text);
        if (hl == 0 || hl >= sizeof host) {
            *why = "missing or too long host";
            return -1;
        }
        memcpy(host, text, hl);
        host[hl] = '\0';
        port = colon + 1;
    }
    unsigned long p;
    if (parse_port(port, &p, why) < 0)
        return -1;
    if (text[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
            *why = "invalid IPv6 address";
            return -1;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        out->len = sizeof *s6;
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
        snprintf(out->text, sizeof out->text, "[%s]:%lu", buf, p);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
            *why = "host must be a numeric IPv4 or [IPv6] address";
            return -1;
        }
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)p);
        out->len = sizeof *s4;
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
        snprintf(out->text, sizeof out->text, "%s:%lu", buf, p);
    }
    return 0;
}

int
rp_hostport_parse(const char *text, char *host, size_t cap, unsigned *port, const char **why)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL) {
        *why = "must be host:port";
        return -1;
    }
    size_t hl = (size_t)(colon - text);
    if (hl > 1 && text[hl - 1] == '.')
        hl--;   /* a fully qualified name: "example.com." */
    if (hl == 0 || hl > 253 || hl >= cap) {
        *why = "missing or too long host";
        return -1;
    }
    bool digits_only = true;
    size_t label = 0;
    for (size_t i = 0; i < hl; i++) {
        char c = text[i];
        if (c == '.') {
            if (label == 0 || text[i - 1] == '-') {
                *why = "host name labels are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'";
                return -1;
            }
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
            *why = "host must be a host name, a numeric IPv4 or an [IPv6] address";
            return -1;
        }
        if ((c == '-' && label == 0) || ++label > 63) {
            *why = "host name labels are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'";
            return -1;
        }
        if (!isdigit((unsigned char)c))
            digits_only = false;
    }
    if (label == 0 || text[hl - 1] == '-') {
        *why = "host name labels are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'";
        return -1;
    }
    if (digits_only) {
        *why = "host must be a numeric IPv4 or [IPv6] address";
        return -1;
    }
    unsigned long p;
    if (parse_port(colon + 1, &p, why) < 0)
        return -1;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)text[i]);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

/* ---- backend identities ---- */

static pthread_mutex_t ident_lock = PTHREAD_MUTEX_INITIALIZER;
static char **ident_keys;
static atomic_uint ident_count;
static char **uident_keys;
static atomic_uint uident_count;

/* With ident_lock held. */
static unsigned
upstream_identity_locked(const char *name)
{
    unsigned n = atomic_load(&uident_count);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(uident_keys[i], name) == 0)
            return i;
    char **keys = realloc(uident_keys, (n + 1) * sizeof *uident_keys);
    if (keys == NULL)
        return RP_IDENT_NOMEM;
    uident_keys = keys;
    if ((uident_keys[n] = strdup(name)) == NULL)
        return RP_IDENT_NOMEM;
    if (!rp_uq_ensure(n)) {
        free(uident_keys[n]);
        return RP_IDENT_NOMEM;
    }
    atomic_store(&uident_count, n + 1);
    return n;
}

unsigned
rp_upstream_identity(const char *name)
{
    pthread_mutex_lock(&ident_lock);
    unsigned id = upstream_identity_locked(name);
    pthread_mutex_unlock(&ident_lock);
    return id;
}

unsigned
rp_upstream_identity_count(void)
{
    return atomic_load(&uident_count);
}

unsigned
rp_backend_identity(const char *upstream, const rp_addr_t *addr)
{
    char key[512];
    snprintf(key, sizeof key, "%s\n%s", upstream, addr->text);
    pthread_mutex_lock(&ident_lock);
    unsigned n = atomic_load(&ident_count);
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(ident_keys[i], key) == 0) {
            pthread_mutex_unlock(&ident_lock);
            return i;
        }
    }
    char **keys = realloc(ident_keys, (n + 1) * sizeof *ident_keys);
    unsigned uq = RP_IDENT_NOMEM;
    if (keys != NULL) {
        ident_keys = keys;
        uq = upstream_identity_locked(upstream);
    }
    /* The state before anyone can see the identity. */
    if (uq == RP_IDENT_NOMEM || !rp_bstate_ensure(n) || (ident_keys[n] = strdup(key)) == NULL) {
        pthread_mutex_unlock(&ident_lock);
        return RP_IDENT_NOMEM;
    }
    rp_bstate(n)->uq = uq;
    rp_bstate(n)->addr = *addr;
    atomic_store(&ident_count, n + 1);
    pthread_mutex_unlock(&ident_lock);
    return n;
}

unsigned
rp_backend_identity_count(void)
{
    return atomic_load(&ident_count);
}

/* ---- route and listener identities ---- */

/* Names and their identities, with an open-addressing index (a config
 * may have 100000 routes). */
typedef struct names {
    char   **keys;
    unsigned n, cap;
    unsigned *slot;     /* identity + 1, 0: empty; nslots a power of two */
    size_t   nslots;
} names_t;

static names_t route_names, listener_names;

static size_t
name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static unsigned
name_identity(names_t *t, const char *key)
{
    pthread_mutex_lock(&ident_lock);
    if ((t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        unsigned *slot = calloc(ns, sizeof *slot);
        if (slot == NULL) {
            pthread_mutex_unlock(&ident_lock);
            return RP_IDENT_NOMEM;
        }
        for (unsigned i = 0; i < t->n; i++) {
            size_t h = name_hash(t->keys[i]) & (ns - 1);
            while (slot[h] != 0)
                h = (h + 1) & (ns - 1);
            slot[h] = i + 1;
        }
        free(t->slot);
        t->slot = slot;
        t->nslots = ns;
    }
    size_t h = name_hash(key) & (t->nslots - 1);
    while (t->slot[h] != 0 && strcmp(t->keys[t->slot[h] - 1], key) != 0)
        h = (h + 1) & (t->nslots - 1);
    if (t->slot[h] == 0) {
        if (t->n == t->cap) {
            unsigned cap = t->cap ? t->cap * 2 : 64;
            char **keys = realloc(t->keys, cap * sizeof *t->keys);
            if (keys == NULL) {
                pthread_mutex_unlock(&ident_lock);
                return RP_IDENT_NOMEM;
            }
            t->keys = keys;
            t->cap = cap;
        }
        if ((t->keys[t->n] = strdup(key)) == NULL) {
            pthread_mutex_unlock(&ident_lock);
            return RP_IDENT_NOMEM;
        }
        t->slot[h] = ++t->n;
    }
    unsigned id = t->slot[h] - 1;
    pthread_mutex_unlock(&ident_lock);
    return id;
}

unsigned
rp_route_identity(const char *label)
{
    return name_identity(&route_names, label);
}

unsigned
rp_listener_identity(const char *address)
{
    return name_identity(&listener_names, address);
}

/* ---- the keys each section accepts ---- */

static const char *const root_keys[] = {
    "workers", "listeners", "limits", "timeouts", "upstreams", "routes", "log", "admin",
    "websocket", "trusted_proxies", "server_header", "ratelimit", NULL };
static const char *const listener_keys[] = { "address", "tls", "proxy_protocol", NULL };
static const char *const limits_keys[] = {
    "max_connections", "max_header_bytes", "max_headers", "max_uri_bytes", "max_body_bytes",
    "h2_max_concurrent_streams", "max_active_requests_per_worker", "max_connections_per_ip", NULL };
static const char *const timeouts_keys[] = {
    "client_header_ms", "client_idle_ms", "request_ms", "upstream_connect_ms",
    "upstream_response_ms", "shutdown_drain_ms", "client_min_bytes_per_s", NULL };
static const char *const upstream_keys[] = { "balancer", "backends", "pool", "health", "queue",
    "resolve_interval_ms", "circuit", "retry", NULL };
static const char *const circuit_keys[] = { "max_active_requests", NULL };
static const char *const retry_keys[] = { "max_retries", "budget_percent", "min_retries_per_s",
    "backoff_base_ms", "backoff_max_ms", "on_status", "max_body_bytes", NULL };

int
rp_retry_parse(const json_t *o, const char *path, rp_retry_cfg_t *c, rp_errs_t *errs)
{
    size_t before = errs->total;
    if (!expect_object(o, path, errs))
        return (int)(errs->total - before);
    rp_conf_keys(o, path, retry_keys, NULL, errs);
    uint64_t v = c->max_retries;
    rp_conf_uint(o, "max_retries", path, 0, 10, &v, errs);
    c->max_retries = (unsigned)v;
    v = c->budget_percent;
    rp_conf_uint(o, "budget_percent", path, 0, 100, &v, errs);
    c->budget_percent = (unsigned)v;
    v = c->min_retries_per_s;
    rp_conf_uint(o, "min_retries_per_s", path, 0, 100000, &v, errs);
    c->min_retries_per_s = (unsigned)v;
    v = c->backoff_base_ms;
    rp_conf_uint(o, "backoff_base_ms", path, 1, 60000, &v, errs);
    c->backoff_base_ms = (unsigned)v;
    v = c->backoff_max_ms;
    rp_conf_uint(o, "backoff_max_ms", path, 1, 600000, &v, errs);
    c->backoff_max_ms = (unsigned)v;
    if (c->backoff_max_ms < c->backoff_base_ms) {
        char q[512];
        rp_conf_path(q, sizeof q, path, "backoff_max_ms");
        rp_errs_add(errs, q, "must be at least backoff_base_ms (%u)", c->backoff_base_ms);
    }
    v = c->max_body_bytes;
    rp_conf_uint(o, "max_body_bytes", path, 0, 16u << 20, &v, errs);
    c->max_body_bytes = v;
    const json_t *st = json_object_get(o, "on_status");
    if (st != NULL) {
        char q[512];
        rp_conf_path(q, sizeof q, path, "on_status");
        if (!json_is_array(st)) {
            rp_errs_add(errs, q, "must be an array of status codes, not %s", rp_conf_type_name(st));
        } else if (json_array_size(st) > RP_RETRY_STATUS_MAX) {
            rp_errs_add(errs, q, "at most %d status codes", RP_RETRY_STATUS_MAX);
        } else {
            c->non_status = 0;
            size_t i;
            const json_t *e;
            json_array_foreach(st, i, e) {
                if (!json_is_integer(e) || json_integer_value(e) < 400 || json_integer_value(e) > 599) {
                    rp_errs_add(errs, q, "status codes are integers from 400 to 599 (entry %zu)", i);
                    break;
                }
                c->on_status[c->non_status++] = (uint16_t)json_integer_value(e);
            }
        }
    }
    return (int)(errs->total - before);
}

json_t *
rp_retry_dump(const rp_retry_cfg_t *c)
{
    json_t *st = json_array();
    for (unsigned i = 0; i < c->non_status; i++)
        json_array_append_new(st, json_integer(c->on_status[i]));
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:I}",
        "max_retries", (json_int_t)c->max_retries, "budget_percent", (json_int_t)c->budget_percent,
        "min_retries_per_s", (json_int_t)c->min_retries_per_s,
        "backoff_base_ms", (json_int_t)c->backoff_base_ms,
        "backoff_max_ms", (json_int_t)c->backoff_max_ms, "on_status", st,
        "max_body_bytes", (json_int_t)c->max_body_bytes);
}
static const char *const backend_keys[] = { "address", "weight", "max_connections", NULL };
static const char *const queue_keys[] = { "size", "timeout_ms", NULL };
static const char *const pool_keys[] = { "max_idle_per_backend", "idle_timeout_ms", NULL };
static const char *const log_keys[] = { "level", "format", "access_log", NULL };
static const char *const admin_keys[] = { "address", "allow_remote", "token", NULL };
static const char *const websocket_keys[] = { "max_message_bytes", "idle_timeout_ms", NULL };

void
rp_config_keys_foreach(void (*fn)(const char *key, void *arg), void *arg)
{
    static const char *const *const core[] = {
        root_keys, listener_keys, rp_tls_keys, rp_tls_certificate_keys, limits_keys,
        timeouts_keys, upstream_keys, backend_keys, pool_keys, queue_keys, circuit_keys, retry_keys,
        log_keys, admin_keys, websocket_keys };
    for (size_t i = 0; i < RP_ARRAY_LEN(core); i++)
        for (const char *const *k = core[i]; *k != NULL; k++)
            fn(*k, arg);
    for (int m = 0; m < RP_MOD_COUNT; m++)
        for (const char *const *k = rp_modules[m]->keys; k != NULL && *k != NULL; k++)
            fn(*k, arg);
}

/* ---- sections ---- */

static void
parse_workers(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    uint64_t w = 0;
    rp_conf_uint(root, "workers", "", 0, 256, &w, errs);
    if (w == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        w = n > 0 ? (uint64_t)n : 1;
        if (w > 256)
            w = 256;
    }
    s->workers = (unsigned)w;
}

/* The address of listener p; 0, or -1 with the error added. */
static int
parse_listener_address(const json_t *l, const char *p, const rp_snapshot_t *s, rp_addr_t *a,
                       rp_errs_t *errs)
{
    const char *addr = NULL;
    char ap[512];
    rp_conf_path(ap, sizeof ap, p, "address");
    if (json_object_get(l, "address") == NULL) {
        rp_errs_add(errs, ap, "required");
        return -1;
    }
    if (rp_conf_string(l, "address", p, &addr, errs) < 0)
        return -1;
    const char *why;
    if (rp_addr_parse(addr, a, &why) < 0) {
        rp_errs_add(errs, ap, "%s", why);
        return -1;
    }
    for (size_t j = 0; j < s->nlisteners; j++) {
        if (strcmp(s->listeners[j].addr.text, a->text) == 0) {
            rp_errs_add(errs, ap, "duplicate listener %s", a->text);
            return -1;
        }
    }
    return 0;
}

static void
parse_listeners(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const char *const *allowed = listener_keys;
    const json_t *arr = json_object_get(root, "listeners");
    char p[512];
    if (arr == NULL) {
        rp_errs_add(errs, "listeners", "required: at least one listener");
        return;
    }
    if (!json_is_array(arr)) {
        rp_errs_add(errs, "listeners", "must be an array, not %s", rp_conf_type_name(arr));
        return;
    }
    if (json_array_size(arr) == 0) {
        rp_errs_add(errs, "listeners", "must contain at least one listener");
        return;
    }
    if (json_array_size(arr) > RP_MAX_LISTENERS) {
        rp_errs_add(errs, "listeners", "at most %d listeners", RP_MAX_LISTENERS);
        return;
    }
    s->listeners = cfg_calloc(errs, "listeners", json_array_size(arr), sizeof *s->listeners);
    if (s->listeners == NULL)
        return;
    size_t i;
    const json_t *l;
    json_array_foreach(arr, i, l) {
        snprintf(p, sizeof p, "listeners[%zu]", i);
        if (!expect_object(l, p, errs))
            continue;
        static const char *const unsupported[] = { NULL };
        rp_conf_keys(l, p, allowed, unsupported, errs);
        rp_addr_t a;
        bool ok = parse_listener_address(l, p, s, &a, errs) == 0;
        unsigned pp = 0;
        const json_t *ppv = json_object_get(l, "proxy_protocol");
        if (ppv != NULL) {
            char pq[512];
            rp_conf_path(pq, sizeof pq, p, "proxy_protocol");
            const char *v = json_string_value(ppv);
            const json_t *tp = json_object_get(root, "trusted_proxies");
            if (v != NULL && strcmp(v, "v1") == 0) {
                pp = 1;
            } else if (v != NULL && strcmp(v, "v2") == 0) {
                pp = 2;
            } else {
                rp_errs_add(errs, pq, "must be \"v1\" or \"v2\"");
                ok = false;
            }
            if (pp != 0 && !(json_is_array(tp) && json_array_size(tp) > 0)) {
                rp_errs_add(errs, pq, "needs trusted_proxies: the header is believed only "
                            "from the load balancers listed there");
                ok = false;
            }
        }
        /* TLS is checked (and its files loaded) whatever the address, so
         * that one pass reports everything. */
        rp_tls_ctx_t *tls = NULL;
        const json_t *t = json_object_get(l, "tls");
        if (t != NULL) {
            char tp[512];
            rp_conf_path(tp, sizeof tp, p, "tls");
            if (rp_tls_ctx_parse(t, tp, &tls, errs, &s->warnings) < 0)
                ok = false;
        }
        if (!ok) {
            rp_tls_ctx_free(tls);
            continue;
        }
        s->listeners[s->nlisteners].addr = a;
        s->listeners[s->nlisteners].tls = tls;
        s->listeners[s->nlisteners].ident = rp_listener_identity(a.text);
        if (s->listeners[s->nlisteners].ident == RP_IDENT_NOMEM)
            rp_errs_add(errs, p, "out of memory");   /* the snapshot is not used */
        s->listeners[s->nlisteners].proxy_protocol = pp;
        s->nlisteners++;
    }
}

static void
parse_limits(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const char *const *allowed = limits_keys;
    static const char *const unsupported[] = { NULL };
    rp_limits_t *l = &s->limits;
    l->max_connections = 10000;
    l->max_header_bytes = 16384;
    l->max_headers = 100;
    l->max_uri_bytes = 8192;
    l->max_body_bytes = 10485760;
    l->h2_max_concurrent_streams = 128;
    const json_t *o = json_object_get(root, "limits");
    if (o == NULL || !expect_object(o, "limits", errs))
        return;
    rp_conf_keys(o, "limits", allowed, unsupported, errs);
    uint64_t v;
    v = l->max_connections;
    rp_conf_uint(o, "max_connections", "limits", 1, 1000000, &v, errs);
    l->max_connections = (unsigned)v;
    v = l->max_header_bytes;
    rp_conf_uint(o, "max_header_bytes", "limits", 1024, 1048576, &v, errs);
    l->max_header_bytes = (unsigned)v;
    v = l->max_headers;
    rp_conf_uint(o, "max_headers", "limits", 1, 1000, &v, errs);
    l->max_headers = (unsigned)v;
    /* Unset, the URI limit follows a smaller head limit down. */
    v = l->max_uri_bytes < l->max_header_bytes ? l->max_uri_bytes : l->max_header_bytes;
    if (rp_conf_uint(o, "max_uri_bytes", "limits", 64, 1048576, &v, errs) == 0
        && v > l->max_header_bytes)
        rp_errs_add(errs, "limits.max_uri_bytes",
                    "must not exceed limits.max_header_bytes (%u)", l->max_header_bytes);
    l->max_uri_bytes = (unsigned)v;
    v = l->max_body_bytes;
    rp_conf_uint(o, "max_body_bytes", "limits", 0, (uint64_t)1 << 50, &v, errs);
    l->max_body_bytes = v;
    v = l->h2_max_concurrent_streams;
    rp_conf_uint(o, "h2_max_concurrent_streams", "limits", 1, 1000, &v, errs);
    l->h2_max_concurrent_streams = (unsigned)v;
    v = 0;
    rp_conf_uint(o, "max_active_requests_per_worker", "limits", 0, 10000000, &v, errs);
    l->max_active_requests_per_worker = (unsigned)v;
    v = 0;
    rp_conf_uint(o, "max_connections_per_ip", "limits", 0, 1000000, &v, errs);
    l->max_connections_per_ip = (unsigned)v;
}

static void
parse_timeouts(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const char *const *allowed = timeouts_keys;
    static const char *const unsupported[] = { NULL };
    static const struct { const char *key; size_t off; unsigned def; uint64_t min, max; } t[] = {
        { "client_header_ms", offsetof(rp_timeouts_t, client_header_ms), 10000, 1, 86400000 },
        { "client_idle_ms", offsetof(rp_timeouts_t, client_idle_ms), 60000, 1, 86400000 },
        { "request_ms", offsetof(rp_timeouts_t, request_ms), 30000, 0, 86400000 },
        { "upstream_connect_ms", offsetof(rp_timeouts_t, upstream_connect_ms), 2000, 1, 86400000 },
        { "upstream_response_ms", offsetof(rp_timeouts_t, upstream_response_ms), 15000, 1, 86400000 },
        { "shutdown_drain_ms", offsetof(rp_timeouts_t, shutdown_drain_ms), 30000, 0, 3600000 },
        { "client_min_bytes_per_s", offsetof(rp_timeouts_t, client_min_bytes_per_s), 500, 0,
          100000000 },
    };
    const json_t *o = json_object_get(root, "timeouts");
    bool have = o != NULL && expect_object(o, "timeouts", errs);
    if (have)
        rp_conf_keys(o, "timeouts", allowed, unsupported, errs);
    for (size_t i = 0; i < RP_ARRAY_LEN(t); i++) {
        uint64_t v = t[i].def;
        if (have)
            rp_conf_uint(o, t[i].key, "timeouts", t[i].min, t[i].max, &v, errs);
        *(unsigned *)((char *)&s->timeouts + t[i].off) = (unsigned)v;
    }
}

/* trusted_proxies: peers whose X-Forwarded-For is believed. */
static void
parse_trusted(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const json_t *a = json_object_get(root, "trusted_proxies");
    if (a == NULL)
        return;
    if (!json_is_array(a)) {
        rp_errs_add(errs, "trusted_proxies", "must be an array of addresses or CIDR blocks, not %s",
                    rp_conf_type_name(a));
        return;
    }
    if (json_array_size(a) > 1024) {
        rp_errs_add(errs, "trusted_proxies", "at most 1024 entries");
        return;
    }
    s->trusted = cfg_calloc(errs, "trusted_proxies", json_array_size(a) + 1, sizeof *s->trusted);
    if (s->trusted == NULL)
        return;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
        char p[48];
        snprintf(p, sizeof p, "trusted_proxies[%zu]", i);
        const char *why = NULL;
        if (!json_is_string(v)) {
            rp_errs_add(errs, p, "must be a string, not %s", rp_conf_type_name(v));
            continue;
        }
        if (rp_cidr_parse(json_string_value(v), &s->trusted[s->ntrusted], &why) < 0) {
            rp_errs_add(errs, p, "%s", why);
            continue;
        }
        s->ntrusted++;
    }
}

/* server_header: a string, or false for none; "revproxy" by default. */
static void
parse_server_header(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const json_t *v = json_object_get(root, "server_header");
    if (v == NULL) {
        s->server_header = cfg_strdup(errs, "server_header", "revproxy");
        return;
    }
    if (json_is_false(v))
        return;
    const char *t = json_string_value(v);
    size_t n = t != NULL ? strlen(t) : 0;
    bool ok = t != NULL && n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)t[i] >= 0x20 && (unsigned char)t[i] < 0x7f;
    if (!ok) {
        rp_errs_add(errs, "server_header", "must be false or 1 to 128 printable ASCII characters");
        return;
    }
    s->server_header = cfg_strdup(errs, "server_header", t);
}

static void
parse_websocket(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    uint64_t max = 1048576, idle = 60000;
    const json_t *o = json_object_get(root, "websocket");
    if (o != NULL && expect_object(o, "websocket", errs)) {
        rp_conf_keys(o, "websocket", websocket_keys, NULL, errs);
        rp_conf_uint(o, "max_message_bytes", "websocket", 1, 1073741824, &max, errs);
        rp_conf_uint(o, "idle_timeout_ms", "websocket", 1000, 86400000, &idle, errs);
    }
    s->websocket.max_message_bytes = max;
    s->websocket.idle_timeout_ms = (unsigned)idle;
}

static bool
valid_upstream_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64)
        return false;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && *n != '_' && *n != '-' && *n != '.')
            return false;
    return true;
}

static void
parse_backend(const json_t *b, const char *p, rp_upstream_t *u, rp_errs_t *errs)
{
    const char *const *allowed = backend_keys;
    char ap[512];
    if (!expect_object(b, p, errs))
        return;
    rp_conf_keys(b, p, allowed, NULL, errs);
    rp_conf_path(ap, sizeof ap, p, "address");
    const char *addr = NULL;
    if (json_object_get(b, "address") == NULL) {
        rp_errs_add(errs, ap, "required");
        return;
    }
    if (rp_conf_string(b, "address", p, &addr, errs) < 0)
        return;
    rp_backend_t *be = &u->backends[u->nbackends];
    const char *why;
    char host[256];
    unsigned port = 0;
    bool named = false;
    if (rp_addr_parse(addr, &be->addr, &why) < 0) {
        /* Not numeric: a host name, resolved off the workers.  What looks
         * numeric (digits and dots, or an IPv6 address) keeps the numeric
         * parser's message. */
        const char *why2;
        const char *colon = strrchr(addr, ':');
        size_t hl = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
        bool numeric = addr[0] == '[' || memchr(addr, ':', hl) != NULL
                       || strspn(addr, "0123456789.") == hl;
        if (numeric || rp_hostport_parse(addr, host, sizeof host, &port, &why2) < 0) {
            rp_errs_add(errs, ap, "%s", numeric ? why : why2);
            return;
        }
        memset(&be->addr, 0, sizeof be->addr);
        be->addr.ss.ss_family = AF_UNSPEC;
        snprintf(be->addr.text, sizeof be->addr.text, "%s:%u", host, port);
        named = true;
    }
    for (size_t j = 0; j < u->nbackends; j++) {
        if (strcmp(u->backends[j].addr.text, be->addr.text) == 0) {
            rp_errs_add(errs, ap, "duplicate backend %s in this upstream", be->addr.text);
            return;
        }
    }
    uint64_t w = 1;
    if (rp_conf_uint(b, "weight", p, 1, 1000, &w, errs) < 0)
        return;
    be->weight = (unsigned)w;
    uint64_t mc = 0;
    if (rp_conf_uint(b, "max_connections", p, 1, 1000000, &mc, errs) < 0)
        return;
    be->max_connections = (unsigned)mc;
    if (mc > 0)
        u->limited = true;
    if (named) {
        be->name = strdup(host);
        be->rname = be->name != NULL ? rp_name_identity(u->name, host, port) : RP_IDENT_NOMEM;
        if (be->rname == RP_NAME_FULL || be->rname == RP_IDENT_NOMEM) {
            if (be->rname == RP_NAME_FULL)
                rp_errs_add(errs, ap, "too many distinct host-name backends since revproxy "
                            "started (65536); restart revproxy");
            else
                rp_errs_add(errs, ap, "out of memory");
            free(be->name);
            be->name = NULL;
            return;
        }
    }
    be->index = (unsigned)u->nbackends;
    be->id = rp_backend_identity(u->name, &be->addr);
    if (be->id == RP_IDENT_NOMEM) {
        rp_errs_add(errs, ap, "out of memory");
        free(be->name);
        be->name = NULL;
        return;
    }
    be->pos = (unsigned)u->npos;
    u->npos += be->name != NULL ? RP_NAME_ADDRS : 1;
    u->nbackends++;
}

static void
parse_upstream(const char *name, const json_t *o, rp_upstream_t *u, rp_errs_t *errs)
{
    const char *const *allowed = upstream_keys;
    static const char *const unsupported[] = { NULL };
    const char *const *pool_allowed = pool_keys;
    char p[512], q[512];
    snprintf(p, sizeof p, "upstreams.%s", name);
    u->name = cfg_strdup(errs, p, name);
    if (u->name == NULL)
        return;
    u->max_idle_per_backend = 32;
    u->idle_timeout_ms = 4000;
    u->queue_timeout_ms = 1000;
    u->uq = rp_upstream_identity(name);
    if (u->uq == RP_IDENT_NOMEM) {
        rp_errs_add(errs, p, "out of memory");
        return;
    }
    static const rp_retry_cfg_t retry_defaults = {
        .max_retries = 2, .budget_percent = 20, .min_retries_per_s = 10,
        .backoff_base_ms = 25, .backoff_max_ms = 250, .max_body_bytes = 65536,
        .on_status = { 502, 503, 504 }, .non_status = 3 };
    u->retry = retry_defaults;
    if (!valid_upstream_name(name))
        rp_errs_add(errs, p, "upstream names are 1 to 64 characters of A-Z a-z 0-9 _ - .");
    if (!expect_object(o, p, errs))
        return;
    rp_conf_keys(o, p, allowed, unsupported, errs);

    const char *bal = NULL;
    if (rp_conf_string(o, "balancer", p, &bal, errs) == 0 && bal != NULL) {
        rp_conf_path(q, sizeof q, p, "balancer");
        if (strcmp(bal, "least_conn") == 0)
            u->balancer = RP_BALANCER_LEAST_CONN;
        else if (strcmp(bal, "round_robin") != 0)
            rp_errs_add(errs, q, "unknown balancer \"%s\" (round_robin, least_conn)", bal);
    }

    const json_t *arr = json_object_get(o, "backends");
    rp_conf_path(q, sizeof q, p, "backends");
    if (arr == NULL) {
        rp_errs_add(errs, q, "required: at least one backend");
    } else if (!json_is_array(arr)) {
        rp_errs_add(errs, q, "must be an array, not %s", rp_conf_type_name(arr));
    } else if (json_array_size(arr) == 0) {
        rp_errs_add(errs, q, "must contain at least one backend");
    } else if (json_array_size(arr) > 1024) {
        rp_errs_add(errs, q, "at most 1024 backends");
    } else {
        u->backends = cfg_calloc(errs, q, json_array_size(arr), sizeof *u->backends);
        size_t i;
        const json_t *b;
        if (u->backends != NULL) json_array_foreach(arr, i, b) {
            char bp[512];
            snprintf(bp, sizeof bp, "%s[%zu]", q, i);
            parse_backend(b, bp, u, errs);
        }
    }

    if (u->npos > 4096) {
        rp_conf_path(q, sizeof q, p, "backends");
        rp_errs_add(errs, q, "at most 4096 addresses (a backend given by host name counts for %u)",
                    RP_NAME_ADDRS);
    }
    u->pos_entry = cfg_calloc(errs, p, u->npos ? u->npos : 1, sizeof *u->pos_entry);
    if (u->pos_entry == NULL) {
        u->npos = 0;   /* (the modules still look at the upstream) */
        return;
    }
    bool named = false;
    for (size_t j = 0; j < u->nbackends; j++) {
        const rp_backend_t *be = &u->backends[j];
        size_t w = be->name != NULL ? RP_NAME_ADDRS : 1;
        for (size_t k = 0; k < w; k++)
            u->pos_entry[be->pos + k] = (unsigned)j;
        named = named || be->name != NULL;
    }
    if (named && (u->pos_cache = rp_pos_cache_new(u->npos)) == NULL)
        rp_errs_add(errs, p, "out of memory");
    if (json_object_get(o, "resolve_interval_ms") != NULL) {
        uint64_t v = 30000;
        rp_conf_uint(o, "resolve_interval_ms", p, 100, 86400000, &v, errs);
        if (!named) {
            rp_conf_path(q, sizeof q, p, "resolve_interval_ms");
            rp_errs_add(errs, q, "no backend of this upstream is given by host name");
        }
        u->resolve_interval_ms = (unsigned)v;
    } else if (named) {
        u->resolve_interval_ms = 30000;
    }

    const json_t *pool = json_object_get(o, "pool");
    rp_conf_path(q, sizeof q, p, "pool");
    if (pool != NULL && expect_object(pool, q, errs)) {
        rp_conf_keys(pool, q, pool_allowed, NULL, errs);
        uint64_t v = u->max_idle_per_backend;
        rp_conf_uint(pool, "max_idle_per_backend", q, 0, 100000, &v, errs);
        u->max_idle_per_backend = (unsigned)v;
        v = u->idle_timeout_ms;
        rp_conf_uint(pool, "idle_timeout_ms", q, 1, 86400000, &v, errs);
        u->idle_timeout_ms = (unsigned)v;
    }

    const json_t *retry = json_object_get(o, "retry");
    if (retry != NULL) {
        rp_conf_path(q, sizeof q, p, "retry");
        rp_retry_parse(retry, q, &u->retry, errs);
    }

    const json_t *circuit = json_object_get(o, "circuit");
    rp_conf_path(q, sizeof q, p, "circuit");
    if (circuit != NULL && expect_object(circuit, q, errs)) {
        rp_conf_keys(circuit, q, circuit_keys, NULL, errs);
        uint64_t v = 0;
        rp_conf_uint(circuit, "max_active_requests", q, 1, 10000000, &v, errs);
        u->max_active_requests = (unsigned)v;
    }

    const json_t *queue = json_object_get(o, "queue");
    rp_conf_path(q, sizeof q, p, "queue");
    if (queue != NULL && expect_object(queue, q, errs)) {
        rp_conf_keys(queue, q, queue_keys, NULL, errs);
        uint64_t v = 0;
        rp_conf_uint(queue, "size", q, 0, 1000000, &v, errs);
        u->queue_size = (unsigned)v;
        v = u->queue_timeout_ms;
        rp_conf_uint(queue, "timeout_ms", q, 1, 3600000, &v, errs);
        u->queue_timeout_ms = (unsigned)v;
        /* A queue only ever holds requests that found every backend at
         * its max_connections, or the upstream at its circuit's limit:
         * without either it would never be used. */
        if (u->queue_size > 0 && u->backends != NULL && !u->limited && u->max_active_requests == 0) {
            char sp[512];
            rp_conf_path(sp, sizeof sp, q, "size");
            rp_errs_add(errs, sp, "a queue needs at least one backend with max_connections, "
                        "or circuit.max_active_requests");
        }
    }
}

static int
upstream_cmp(const void *a, const void *b)
{
    return strcmp(((const rp_upstream_t *)a)->name, ((const rp_upstream_t *)b)->name);
}

static void
parse_upstreams(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const json_t *o = json_object_get(root, "upstreams");
    if (o == NULL) {
        rp_errs_add(errs, "upstreams", "required: at least one upstream");
        return;
    }
    if (!expect_object(o, "upstreams", errs))
        return;
    if (json_object_size(o) == 0) {
        rp_errs_add(errs, "upstreams", "must contain at least one upstream");
        return;
    }
    s->upstreams = cfg_calloc(errs, "upstreams", json_object_size(o), sizeof *s->upstreams);
    if (s->upstreams == NULL)
        return;
    const char *name;
    const json_t *u;
    json_object_foreach((json_t *)o, name, u) {
        rp_upstream_t *up = &s->upstreams[s->nupstreams];
        parse_upstream(name, u, up, errs);
        if (up->name != NULL)
            s->nupstreams++;   /* (nothing else is held without it) */
    }
    qsort(s->upstreams, s->nupstreams, sizeof *s->upstreams, upstream_cmp);
    for (size_t i = 0; i < s->nupstreams; i++)
        s->upstreams[i].index = (unsigned)i;
}

static void
parse_log(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const char *const *allowed = log_keys;
    s->log_level = RP_LOG_INFO;
    const json_t *o = json_object_get(root, "log");
    if (o == NULL || !expect_object(o, "log", errs))
        return;
    rp_conf_keys(o, "log", allowed, NULL, errs);
    const char *v = NULL;
    if (rp_conf_string(o, "level", "log", &v, errs) == 0 && v != NULL) {
        int lvl = rp_log_level_parse(v);
        if (lvl < 0)
            rp_errs_add(errs, "log.level", "must be one of error, warn, info, debug, not \"%s\"", v);
        else
            s->log_level = lvl;
    }
    v = NULL;
    if (rp_conf_string(o, "format", "log", &v, errs) == 0 && v != NULL) {
        if (strcmp(v, "text") == 0)
            s->log_text = true;
        else if (strcmp(v, "json") != 0)
            rp_errs_add(errs, "log.format", "must be \"json\" or \"text\", not \"%s\"", v);
    }
    v = NULL;
    if (rp_conf_string(o, "access_log", "log", &v, errs) == 0 && v != NULL) {
        if (strcmp(v, "stderr") == 0)
            ;
        else if (strcmp(v, "off") == 0)
            s->access_log_off = true;
        else if (v[0] != '/')
            rp_errs_add(errs, "log.access_log", "must be an absolute path, \"stderr\" or \"off\"");
        else
            s->access_log = cfg_strdup(errs, "log.access_log", v);
    }
}

bool
rp_addr_is_loopback(const rp_addr_t *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(v6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127;
    }
    return false;
}

static bool
addr_is_any(const rp_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static unsigned
addr_port(const rp_addr_t *a)
{
    return a->ss.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&a->ss)->sin_port)
                                      : ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* A bearer token: token68 (RFC 9110 11.2) without its trailing '='s
 * being special, 1 to 256 characters. */
static bool
token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!isalnum(c) && strchr("-._~+/=", c) == NULL)
            return false;
    }
    return true;
}

static void
parse_admin(const json_t *root, rp_snapshot_t *s, rp_errs_t *errs)
{
    const json_t *o = json_object_get(root, "admin");
    if (o == NULL || !expect_object(o, "admin", errs))
        return;
    rp_conf_keys(o, "admin", admin_keys, NULL, errs);
    rp_admin_cfg_t *a = &s->admin;
    rp_conf_bool(o, "allow_remote", "admin", &a->allow_remote, errs);
    const char *tok = NULL;
    if (rp_conf_string(o, "token", "admin", &tok, errs) == 0 && tok != NULL) {
        if (!token_ok(tok))
            rp_errs_add(errs, "admin.token", "must be 1 to 256 characters of letters, digits "
                        "and -._~+/= (a bearer token)");
        else
            a->token = cfg_strdup(errs, "admin.token", tok);
    }
    const char *addr = NULL;
    if (json_object_get(o, "address") == NULL) {
        rp_errs_add(errs, "admin.address", "required");
        return;
    }
    if (rp_conf_string(o, "address", "admin", &addr, errs) < 0)
        return;
    const char *why;
    if (rp_addr_parse(addr, &a->addr, &why) < 0) {
        rp_errs_add(errs, "admin.address", "%s", why);
        return;
    }
    if (a->addr.ss.ss_family == AF_INET6
        && IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&a->addr.ss)->sin6_addr)) {
        rp_errs_add(errs, "admin.address", "%s is an IPv4-mapped IPv6 address: write the IPv4 "
                    "address itself", a->addr.text);
        return;
    }
    if (!rp_addr_is_loopback(&a->addr) && !a->allow_remote) {
        rp_errs_add(errs, "admin.address", "%s is not a loopback address: the admin port shows "
                    "the configuration and the state of every backend; set admin.allow_remote "
                    "to true to serve it beyond this host (with admin.token)", a->addr.text);
        return;
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        const rp_addr_t *l = &s->listeners[i].addr;
        if (addr_port(l) == addr_port(&a->addr) && l->ss.ss_family == a->addr.ss.ss_family
            && (strcmp(l->text, a->addr.text) == 0 || addr_is_any(l) || addr_is_any(&a->addr))) {
            rp_errs_add(errs, "admin.address", "%s overlaps listeners[%zu] (%s)", a->addr.text,
                        i, l->text);
            return;
        }
    }
    if (a->allow_remote && a->token == NULL && !rp_addr_is_loopback(&a->addr))
        rp_errs_add(&s->warnings, "admin.allow_remote",
                    "the admin port on %s has no token: anyone who can reach it reads the "
                    "configuration and the state of every backend", a->addr.text);
    if (a->token != NULL && strlen(a->token) < 16)
        rp_errs_add(&s->warnings, "admin.token",
                    "%zu characters is short for a secret: use 16 or more (e.g. openssl rand "
                    "-base64 24)", strlen(a->token));
    a->enabled = true;
}

/* ---- snapshots ---- */

static void
snapshot_free(rp_snapshot_t *s)
{
    for (size_t i = 0; i < s->nlisteners; i++)
        rp_tls_ctx_free(s->listeners[i].tls);
    free(s->listeners);
    for (size_t i = 0; i < s->nupstreams; i++) {
        free(s->upstreams[i].name);
        for (size_t k = 0; k < s->upstreams[i].nbackends; k++)
            free(s->upstreams[i].backends[k].name);
        free(s->upstreams[i].backends);
        free(s->upstreams[i].pos_entry);
        free(s->upstreams[i].pos_cache);
    }
    free(s->upstreams);
    free(s->access_log);
    free(s->admin.token);
    free(s->trusted);
    free(s->server_header);
    rp_errs_free(&s->warnings);
    free(s);
}

int
rp_snapshot_build(const json_t *root, rp_snapshot_t **out, rp_errs_t *errs)
{
    const char *const *allowed = root_keys;
    static const char *const unsupported[] = { "health", "tls", NULL };
    size_t before = errs->total;
    if (!json_is_object(root)) {
        rp_errs_add(errs, "", "the configuration must be a JSON object");
        return -1;
    }
    rp_snapshot_t *s = cfg_calloc(errs, "", 1, sizeof *s);
    if (s == NULL)
        return -1;
    rp_conf_keys(root, "", allowed, unsupported, errs);
    parse_workers(root, s, errs);
    parse_listeners(root, s, errs);
    parse_limits(root, s, errs);
    parse_timeouts(root, s, errs);
    parse_upstreams(root, s, errs);
    parse_log(root, s, errs);
    parse_admin(root, s, errs);
    parse_websocket(root, s, errs);
    parse_trusted(root, s, errs);
    parse_server_header(root, s, errs);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->loaded_unix_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    /* Modules check their sections even when the core ones had errors, so
     * that one pass reports everything. */
    if (rp_modules_configure(root, s, errs) < 0 || errs->total != before) {
        rp_modules_release(s);
        snapshot_free(s);
        return -1;
    }
    atomic_init(&s->refs, 1);
    *out = s;
    return 0;
}

int
rp_snapshot_load(const char *path, rp_snapshot_t **out, rp_errs_t *errs)
{
    /* Read whole (bounded) to hash exactly what was parsed. */
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rp_errs_add(errs, "", "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *text = malloc(cap);
    for (;;) {
        if (text == NULL) {
            fclose(f);
            rp_errs_add(errs, "", "%s: out of memory reading it", path);
            return -1;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (len < cap)
            break;
        if (cap >= RP_CONFIG_MAX_BYTES && fgetc(f) == EOF && !ferror(f))
            break;   /* exactly the limit */
        if (cap >= RP_CONFIG_MAX_BYTES) {
            fclose(f);
            free(text);
            rp_errs_add(errs, "", "%s: larger than %u bytes", path, RP_CONFIG_MAX_BYTES);
            return -1;
        }
        cap *= 2;
        char *more = realloc(text, cap);
        if (more == NULL)
            free(text);
        text = more;
    }
    bool bad = ferror(f) != 0;
    int saved = errno;
    fclose(f);
    if (bad) {
        free(text);
        rp_errs_add(errs, "", "%s: %s", path, strerror(saved));
        return -1;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[65] = "";
    if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        free(text);
        rp_errs_add(errs, "", "%s: out of memory hashing it", path);
        return -1;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    json_error_t jerr;
    bool oom;
    json_t *root = parse_json(text, len, &jerr, &oom);
    free(text);
    if (oom) {
        rp_errs_add(errs, "", "%s: out of memory parsing it", path);
        return -1;
    }
    if (root == NULL) {
        if (jerr.line <= 0)
            rp_errs_add(errs, "", "%s: %s", path, jerr.text);
        else
            rp_errs_add(errs, "", "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int rc = rp_snapshot_build(root, out, errs);
    json_decref(root);
    if (rc == 0)
        memcpy((*out)->sha256, hex, sizeof hex);
    return rc;
}

rp_snapshot_t *
rp_snapshot_ref(rp_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
rp_snapshot_unref(rp_snapshot_t *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    rp_modules_release(s);
    snapshot_free(s);
}

const rp_upstream_t *
rp_snapshot_upstream(const rp_snapshot_t *s, const char *name)
{
    size_t lo = 0, hi = s->nupstreams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->upstreams[mid].name);
        if (c == 0)
            return &s->upstreams[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- the effective configuration ---- */

static json_t *
ms(unsigned v)
{
    return json_integer((json_int_t)v);
}

json_t *
rp_snapshot_dump(const rp_snapshot_t *s)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    json_t *root = json_object();
    json_object_set_new(root, "workers", json_integer(s->workers));
    json_t *ls = json_array();
    for (size_t i = 0; i < s->nlisteners; i++) {
        json_t *l = json_pack("{s:s}", "address", s->listeners[i].addr.text);
        if (s->listeners[i].tls != NULL)
            json_object_set_new(l, "tls", rp_tls_ctx_dump(s->listeners[i].tls));
        if (s->listeners[i].proxy_protocol != 0)
            json_object_set_new(l, "proxy_protocol",
                                json_string(s->listeners[i].proxy_protocol == 1 ? "v1" : "v2"));
        json_array_append_new(ls, l);
    }
    json_object_set_new(root, "listeners", ls);
    json_object_set_new(root, "limits", json_pack("{s:o,s:o,s:o,s:o,s:I,s:o,s:o,s:o}",
        "max_connections", ms(s->limits.max_connections),
        "max_header_bytes", ms(s->limits.max_header_bytes),
        "max_headers", ms(s->limits.max_headers),
        "max_uri_bytes", ms(s->limits.max_uri_bytes),
        "max_body_bytes", (json_int_t)s->limits.max_body_bytes,
        "h2_max_concurrent_streams", ms(s->limits.h2_max_concurrent_streams),
        "max_active_requests_per_worker", ms(s->limits.max_active_requests_per_worker),
        "max_connections_per_ip", ms(s->limits.max_connections_per_ip)));
    json_object_set_new(root, "timeouts", json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
        "client_header_ms", ms(s->timeouts.client_header_ms),
        "client_idle_ms", ms(s->timeouts.client_idle_ms),
        "request_ms", ms(s->timeouts.request_ms),
        "upstream_connect_ms", ms(s->timeouts.upstream_connect_ms),
        "upstream_response_ms", ms(s->timeouts.upstream_response_ms),
        "shutdown_drain_ms", ms(s->timeouts.shutdown_drain_ms),
        "client_min_bytes_per_s", ms(s->timeouts.client_min_bytes_per_s)));
    json_t *tp = json_array();
    for (size_t i = 0; i < s->ntrusted; i++) {
        char t[64], out[80];
        rp_ip_text(&s->trusted[i].net, t, sizeof t);
        if (s->trusted[i].v4)
            snprintf(out, sizeof out, "%s/%u", t, s->trusted[i].bits - 96);
        else if (rp_ip_is_v4(&s->trusted[i].net))
            snprintf(out, sizeof out, "::ffff:%s/%u", t, s->trusted[i].bits);
        else
            snprintf(out, sizeof out, "%s/%u", t, s->trusted[i].bits);
        json_array_append_new(tp, json_string(out));
    }
    json_object_set_new(root, "trusted_proxies", tp);
    json_object_set_new(root, "server_header",
                        s->server_header != NULL ? json_string(s->server_header) : json_false());
    json_object_set_new(root, "websocket", json_pack("{s:I,s:o}",
        "max_message_bytes", (json_int_t)s->websocket.max_message_bytes,
        "idle_timeout_ms", ms(s->websocket.idle_timeout_ms)));
    json_t *ups = json_object();
    for (size_t i = 0; i < s->nupstreams; i++) {
        const rp_upstream_t *u = &s->upstreams[i];
        json_t *bs = json_array();
        for (size_t j = 0; j < u->nbackends; j++) {
            const rp_backend_t *be = &u->backends[j];
            json_t *bj = json_pack("{s:s,s:o}", "address", be->addr.text, "weight", ms(be->weight));
            if (be->max_connections > 0)
                json_object_set_new(bj, "max_connections", ms(be->max_connections));
            json_array_append_new(bs, bj);
        }
        json_t *uj = json_pack("{s:s,s:o,s:{s:o,s:o}}",
            "balancer", u->balancer == RP_BALANCER_LEAST_CONN ? "least_conn" : "round_robin",
            "backends", bs,
            "pool", "max_idle_per_backend", ms(u->max_idle_per_backend),
            "idle_timeout_ms", ms(u->idle_timeout_ms));
        if (u->limited || u->max_active_requests > 0)
            json_object_set_new(uj, "queue", json_pack("{s:o,s:o}", "size", ms(u->queue_size),
                                                        "timeout_ms", ms(u->queue_timeout_ms)));
        if (u->max_active_requests > 0)
            json_object_set_new(uj, "circuit", json_pack("{s:o}", "max_active_requests",
                                                          ms(u->max_active_requests)));
        json_object_set_new(uj, "retry", rp_retry_dump(&u->retry));
        if (u->resolve_interval_ms > 0)
            json_object_set_new(uj, "resolve_interval_ms", ms(u->resolve_interval_ms));
        json_object_set_new(ups, u->name, uj);
    }
    json_object_set_new(root, "upstreams", ups);
    rp_modules_dump(s, root);
    const char *access = s->access_log_off ? "off" : s->access_log != NULL ? s->access_log : "stderr";
    json_object_set_new(root, "log", json_pack("{s:s,s:s,s:s}",
        "level", levels[s->log_level], "format", s->log_text ? "text" : "json", "access_log", access));
    if (s->admin.enabled) {
        json_t *a = json_pack("{s:s,s:b}", "address", s->admin.addr.text, "allow_remote",
                              s->admin.allow_remote);
        if (s->admin.token != NULL)
            json_object_set_new(a, "token", json_string(s->admin.token));
        json_object_set_new(root, "admin", a);
    }
    return root;
}
