/* SPDX-License-Identifier: MIT */
/*
 * The ratelimit module: a token bucket per client address (the peer, or
 * the client a trusted proxy names), for every route (ratelimit.per_ip)
 * or a route's own ("ratelimit": {...} in the route), or none for a route
 * ("ratelimit": false).  Over the limit: 429 with Retry-After.
 *
 * Buckets live in tables outside snapshots, shared by every snapshot
 * whose settings for that scope are the same, so a reload that keeps them
 * keeps the buckets.
 */
#include "config.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "revproxy/cidr.h"
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/ratelimit.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "../src/util.h"

/* ---- the bucket ---- */

void
rp_bucket_init(rp_bucket_t *b, unsigned burst, uint64_t now_us)
{
    b->tokens = (uint64_t)burst * RP_TOKEN;
    b->last_us = now_us;
}

bool
rp_bucket_take(rp_bucket_t *b, unsigned rate, unsigned burst, uint64_t now_us, unsigned *retry_s)
{
    uint64_t cap = (uint64_t)burst * RP_TOKEN;
    if (now_us > b->last_us) {
        uint64_t elapsed = now_us - b->last_us;
        /* millionths: rate per µs (a long pause fills it, no overflow) */
        uint64_t add = elapsed >= cap / rate + 1 ? cap : elapsed * rate;
        b->tokens = b->tokens + add < cap ? b->tokens + add : cap;
        b->last_us = now_us;
    }
    if (b->tokens >= RP_TOKEN) {
        b->tokens -= RP_TOKEN;
        return true;
    }
    uint64_t wait_us = (RP_TOKEN - b->tokens + rate - 1) / rate;
    uint64_t s = (wait_us + 999999u) / 1000000u;
    *retry_s = s > 0 ? (unsigned)s : 1;
    return false;
}

/* ---- the table ---- */

#define SHARDS 16u
#define NIL UINT32_MAX

typedef struct rlnode {
    rp_ip_t     key;
    rp_bucket_t b;
    uint32_t    chain;        /* next in its hash chain */
    uint32_t    prev, next;   /* LRU list, most recent first */
} rlnode_t;

typedef struct rlshard {
    pthread_mutex_t lock;
    rlnode_t       *nodes;    /* owned: cap of them */
    uint32_t       *heads;    /* owned: nheads chains */
    uint32_t        cap, used, nheads;
    uint32_t        lru_head, lru_tail;
} rlshard_t;

struct rp_rltable {
    rlshard_t   shard[SHARDS];
    unsigned    nshards;   /* SHARDS, or max when smaller */
    atomic_uint count;
};

rp_rltable_t *
rp_rltable_new(unsigned max)
{
    rp_rltable_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->nshards = max < SHARDS ? (max > 0 ? max : 1) : SHARDS;
    for (unsigned i = 0; i < t->nshards; i++) {
        /* max split exactly; a shard's memory is taken at its first use
         * (a configuration only checked, or never used, costs nothing). */
        uint32_t per = max / t->nshards + (i < max % t->nshards ? 1 : 0);
        uint32_t nh = 1;
        while (nh < 2 * per)
            nh *= 2;
        rlshard_t *s = &t->shard[i];
        pthread_mutex_init(&s->lock, NULL);
        s->cap = per;
        s->nheads = nh;
        s->lru_head = s->lru_tail = NIL;
    }
    atomic_init(&t->count, 0);
    return t;
}

void
rp_rltable_free(rp_rltable_t *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < t->nshards; i++) {
        pthread_mutex_destroy(&t->shard[i].lock);
        free(t->shard[i].nodes);
        free(t->shard[i].heads);
    }
    free(t);
}

static void
lru_unlink(rlshard_t *s, uint32_t i)
{
    rlnode_t *n = &s->nodes[i];
    if (n->prev != NIL)
        s->nodes[n->prev].next = n->next;
    else
        s->lru_head = n->next;
    if (n->next != NIL)
        s->nodes[n->next].prev = n->prev;
    else
        s->lru_tail = n->prev;
}

static void
lru_front(rlshard_t *s, uint32_t i)
{
    rlnode_t *n = &s->nodes[i];
    n->prev = NIL;
    n->next = s->lru_head;
    if (s->lru_head != NIL)
        s->nodes[s->lru_head].prev = i;
    s->lru_head = i;
    if (s->lru_tail == NIL)
        s->lru_tail = i;
}

bool
rp_rltable_take(rp_rltable_t *t, const rp_ip_t *key, unsigned rate, unsigned burst,
                uint64_t now_us, unsigned *retry_s)
{
    uint64_t h = rp_ip_hash(key);
    rlshard_t *s = &t->shard[h % t->nshards];
    pthread_mutex_lock(&s->lock);
    if (s->nodes == NULL) {
        s->nodes = calloc(s->cap, sizeof *s->nodes);
        s->heads = malloc(s->nheads * sizeof *s->heads);
        if (s->nodes == NULL || s->heads == NULL) {
            free(s->nodes);
            free(s->heads);
            s->nodes = NULL;
            s->heads = NULL;
            pthread_mutex_unlock(&s->lock);
            return true;   /* out of memory: not limited rather than refused */
        }
        for (uint32_t k = 0; k < s->nheads; k++)
            s->heads[k] = NIL;
    }
    uint32_t *head = &s->heads[(h / SHARDS) & (s->nheads - 1)];
    uint32_t i = *head;
    while (i != NIL && memcmp(s->nodes[i].key.b, key->b, 16) != 0)
        i = s->nodes[i].chain;
    if (i == NIL) {
        if (s->used < s->cap) {
            i = s->used++;
            atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
        } else {
            /* Full: the least recently used address goes. */
            i = s->lru_tail;
            lru_unlink(s, i);
            uint64_t oh = rp_ip_hash(&s->nodes[i].key);
            uint32_t *p = &s->heads[(oh / SHARDS) & (s->nheads - 1)];   /* same divisor */
            while (*p != i)
                p = &s->nodes[*p].chain;
            *p = s->nodes[i].chain;
        }
        s->nodes[i].key = *key;
        rp_bucket_init(&s->nodes[i].b, burst, now_us);
        s->nodes[i].chain = *head;
        *head = i;
    } else {
        lru_unlink(s, i);
    }
    lru_front(s, i);
    bool ok = rp_bucket_take(&s->nodes[i].b, rate, burst, now_us, retry_s);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

unsigned
rp_rltable_count(rp_rltable_t *t)
{
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

void
rp_rl_key(const rp_ip_t *ip, unsigned ipv6_prefix, rp_ip_t *key)
{
    *key = *ip;
    if (rp_ip_is_v4(ip) || ipv6_prefix >= 128)
        return;
    for (unsigned b = ipv6_prefix; b < 128; b++)
        key->b[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
}

/* ---- tables shared across snapshots ---- */

typedef struct shared {
    char           *name;   /* scope and settings */
    rp_rltable_t   *table;
    unsigned        refs;
    struct shared  *next;
} shared_t;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static shared_t *registry;

static shared_t *
table_get(const char *scope, unsigned rate, unsigned burst, unsigned prefix, unsigned max)
{
    char name[9100];
    snprintf(name, sizeof name, "%s\n%u\n%u\n%u\n%u", scope, rate, burst, prefix, max);
    pthread_mutex_lock(&reg_lock);
    shared_t *s;
    for (s = registry; s != NULL && strcmp(s->name, name) != 0; s = s->next)
        ;
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s != NULL && ((s->name = strdup(name)) == NULL
                          || (s->table = rp_rltable_new(max)) == NULL)) {
            free(s->name);
            free(s);
            s = NULL;
        }
        if (s == NULL) {
            pthread_mutex_unlock(&reg_lock);
            return NULL;   /* out of memory */
        }
        s->next = registry;
        registry = s;
    }
    s->refs++;
    pthread_mutex_unlock(&reg_lock);
    return s;
}

static void
table_put(shared_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    if (--s->refs == 0) {
        shared_t **p = &registry;
        while (*p != s)
            p = &(*p)->next;
        *p = s->next;
        rp_rltable_free(s->table);
        free(s->name);
        free(s);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- the module ---- */

typedef struct limit {
    bool      on;
    unsigned  rate, burst;
    shared_t *shared;
    bool      own;   /* the route's own settings (else the global ones) */
} limit_t;

typedef struct rl_state {
    limit_t   global;
    unsigned  ipv6_prefix, max;
    bool      configured;   /* a "ratelimit" section */
    limit_t  *routes;       /* by route index */
    size_t    nroutes;
} rl_state_t;

static const char *const rl_keys[] = { "ratelimit", "per_ip", "requests_per_second", "burst",
                                       "ipv6_prefix", "max_tracked_addresses", NULL };

static void
parse_limit(const json_t *o, const char *path, limit_t *l, rp_errs_t *errs)
{
    static const char *const keys[] = { "requests_per_second", "burst", NULL };
    if (!json_is_object(o)) {
        rp_errs_add(errs, path, "must be an object, not %s", rp_conf_type_name(o));
        return;
    }
    rp_conf_keys(o, path, keys, NULL, errs);
    char q[256];
    rp_conf_path(q, sizeof q, path, "requests_per_second");
    if (json_object_get(o, "requests_per_second") == NULL) {
        rp_errs_add(errs, q, "required");
        return;
    }
    uint64_t rate = 0, burst = 0;
    if (rp_conf_uint(o, "requests_per_second", path, 1, 1000000, &rate, errs) < 0)
        return;
    burst = rate;
    if (rp_conf_uint(o, "burst", path, 1, 1000000, &burst, errs) < 0)
        return;
    l->on = true;
    l->rate = (unsigned)rate;
    l->burst = (unsigned)burst;
}

static void rl_release(void *state);

static int
rl_configure(const json_t *root, rp_snapshot_t *snap, void **state, rp_errs_t *errs)
{
    (void)snap;
    size_t before = errs->total;
    rl_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        rp_errs_add(errs, "ratelimit", "out of memory");
        return -1;
    }
    st->ipv6_prefix = 64;
    st->max = 100000;
    const json_t *o = json_object_get(root, "ratelimit");
    if (o != NULL) {
        static const char *const keys[] = { "per_ip", "ipv6_prefix", "max_tracked_addresses",
                                            NULL };
        if (!json_is_object(o)) {
            rp_errs_add(errs, "ratelimit", "must be an object, not %s", rp_conf_type_name(o));
        } else {
            st->configured = true;
            rp_conf_keys(o, "ratelimit", keys, NULL, errs);
            uint64_t v = st->ipv6_prefix;
            rp_conf_uint(o, "ipv6_prefix", "ratelimit", 1, 128, &v, errs);
            st->ipv6_prefix = (unsigned)v;
            v = st->max;
            rp_conf_uint(o, "max_tracked_addresses", "ratelimit", 1, 10000000, &v, errs);
            st->max = (unsigned)v;
            const json_t *pi = json_object_get(o, "per_ip");
            if (pi != NULL)
                parse_limit(pi, "ratelimit.per_ip", &st->global, errs);
        }
    }
    const json_t *routes = json_object_get(root, "routes");
    size_t nroutes = json_is_array(routes) ? json_array_size(routes) : 0;
    st->routes = calloc(nroutes + 1, sizeof *st->routes);
    if (st->routes == NULL) {
        rp_errs_add(errs, "ratelimit", "out of memory");
        rl_release(st);
        return -1;
    }
    st->nroutes = nroutes;
    for (size_t i = 0; i < st->nroutes; i++) {
        const json_t *r = json_object_get(json_array_get(routes, i), "ratelimit");
        limit_t *l = &st->routes[i];
        if (r == NULL) {
            *l = st->global;   /* inherited */
            continue;
        }
        char p[64];
        snprintf(p, sizeof p, "routes[%zu].ratelimit", i);
        if (json_is_false(r))
            continue;   /* off for this route */
        if (json_is_true(r)) {
            rp_errs_add(errs, p, "must be an object or false, not true");
            continue;
        }
        parse_limit(r, p, l, errs);
        l->own = true;
    }
    if (errs->total != before) {
        rl_release(st);
        return -1;
    }
    /* The tables: the global one, and one per route with its own. */
    if (st->global.on
        && (st->global.shared = table_get("per_ip", st->global.rate, st->global.burst,
                                          st->ipv6_prefix, st->max)) == NULL) {
        rp_errs_add(errs, "ratelimit.per_ip", "out of memory");
        rl_release(st);
        return -1;
    }
    for (size_t i = 0; i < st->nroutes; i++) {
        limit_t *l = &st->routes[i];
        if (!l->on)
            continue;
        if (!l->own) {
            l->shared = NULL;   /* the global table */
            continue;
        }
        /* A route's table is known by its name, or by its host and path
         * (unique among routes), so a reload that moves it keeps it. */
        const json_t *ro = json_array_get(routes, i);
        const char *name = json_string_value(json_object_get(ro, "name"));
        const char *host = json_string_value(json_object_get(ro, "host"));
        const char *path = json_string_value(json_object_get(ro, "path"));
        const char *prefix = json_string_value(json_object_get(ro, "path_prefix"));
        char scope[9000];
        if (name != NULL)
            snprintf(scope, sizeof scope, "name %s", name);
        else
            snprintf(scope, sizeof scope, "host %s %s %s", host != NULL ? host : "*",
                     path != NULL ? "path" : "prefix", path != NULL ? path : prefix != NULL ? prefix : "/");
        l->shared = table_get(scope, l->rate, l->burst, st->ipv6_prefix, st->max);
        if (l->shared == NULL) {
            rp_errs_add(errs, "routes", "out of memory");
            l->own = false;   /* nothing to give back */
            rl_release(st);
            return -1;
        }
    }
    *state = st;
    return 0;
}

static void
rl_release(void *state)
{
    rl_state_t *st = state;
    if (st == NULL)
        return;
    table_put(st->global.shared);
    for (size_t i = 0; i < st->nroutes; i++)
        if (st->routes[i].own)
            table_put(st->routes[i].shared);
    free(st->routes);
    free(st);
}

static uint64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static rp_request_hook_fn rl_on_request;

static rp_verdict_t
rl_on_request(rp_txn_t *t, void *state)
{
    rl_state_t *st = state;
    const limit_t *l = t->route != NULL && t->route->index < st->nroutes
                           ? &st->routes[t->route->index] : &st->global;
    if (!l->on)
        return RP_CONTINUE;
    shared_t *sh = l->shared != NULL ? l->shared : st->global.shared;
    if (sh == NULL)
        return RP_CONTINUE;
    rp_ip_t ip, key;
    const char *who = t->client_ip[0] != '\0' ? t->client_ip : t->peer->ip;
    if (rp_ip_parse(who, strlen(who), false, &ip) < 0)
        return RP_CONTINUE;
    rp_rl_key(&ip, st->ipv6_prefix, &key);
    unsigned retry = 0;
    if (rp_rltable_take(sh->table, &key, l->rate, l->burst, mono_us(), &retry))
        return RP_CONTINUE;
    t->status = 429;
    t->retry_after = retry;
    t->error = RP_ERR_RATE_LIMITED;
    t->reason = l->own ? "over the route's rate limit" : "over ratelimit.per_ip";
    return RP_RESPOND;
}

static void
rl_dump(const void *state, json_t *root)
{
    const rl_state_t *st = state;
    json_t *o = json_pack("{s:I,s:I}", "ipv6_prefix", (json_int_t)st->ipv6_prefix,
                          "max_tracked_addresses", (json_int_t)st->max);
    if (st->global.on)
        json_object_set_new(o, "per_ip", json_pack("{s:I,s:I}", "requests_per_second",
                                                   (json_int_t)st->global.rate, "burst",
                                                   (json_int_t)st->global.burst));
    json_object_set_new(root, "ratelimit", o);
    json_t *routes = json_object_get(root, "routes");
    for (size_t i = 0; i < st->nroutes && i < json_array_size(routes); i++) {
        const limit_t *l = &st->routes[i];
        json_t *r = json_array_get(routes, i);
        if (l->own)
            json_object_set_new(r, "ratelimit", json_pack("{s:I,s:I}", "requests_per_second",
                                                          (json_int_t)l->rate, "burst",
                                                          (json_int_t)l->burst));
        else if (!l->on && st->global.on)
            json_object_set_new(r, "ratelimit", json_false());
    }
}

json_t *
rp_ratelimit_stats(const rp_snapshot_t *snap)
{
    const rl_state_t *st = snap->mod_state[RP_MOD_RATELIMIT];
    json_t *o = json_object();
    if (st == NULL)
        return o;
    if (st->global.shared != NULL)
        json_object_set_new(o, "per_ip", json_pack("{s:I}", "tracked_addresses",
                            (json_int_t)rp_rltable_count(st->global.shared->table)));
    json_t *r = json_object();
    for (size_t i = 0; i < st->nroutes; i++) {
        if (!st->routes[i].own || st->routes[i].shared == NULL)
            continue;
        char k[32];
        snprintf(k, sizeof k, "%zu", i);
        json_object_set_new(r, k, json_pack("{s:I}", "tracked_addresses",
                            (json_int_t)rp_rltable_count(st->routes[i].shared->table)));
    }
    json_object_set_new(o, "routes", r);
    return o;
}

const rp_module_t rp_module_ratelimit = {
    .name = "ratelimit",
    .configure = rl_configure,
    .release = rl_release,
    .on_request = rl_on_request,
    .dump = rl_dump,
    .keys = rl_keys,
};
