/* SPDX-License-Identifier: MIT */
/*
 * Host-name backends and their resolver thread (see resolve.h).
 */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include "revproxy/bstate.h"
#include "revproxy/log.h"
#include "revproxy/upstream.h"
#include "resolve.h"
#include "util.h"

typedef struct rname {
    char       *upstream;   /* owned */
    char       *host;       /* owned */
    unsigned    port;
    atomic_uint slot[RP_NAME_ADDRS];   /* backend identity + 1; 0: empty */
    /* under R.lock */
    unsigned    incarnation;/* bumped when a reload configures it afresh: a
                               lookup started before applies only if unchanged */
    bool        ever;       /* resolved once since it was (last) configured */
    char        err[160];   /* the last failure logged */
    uint64_t    warned_us;  /* when it was logged (monotonic) */
} rname_t;

/* Backend identities a process may create: the table (bstate.c) holds a
 * million. */
#define RP_IDENTITIES_MAX 1000000u

#define NAME_CHUNK 64u
#define NAME_CHUNKS 1024u

static _Atomic(rname_t *) chunks[NAME_CHUNKS];
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned nnames;

/* Bumped (after the slots are written) whenever any name's slots change:
 * an upstream's view of its positions is computed again then. */
static _Atomic uint64_t slot_gen = 1;

/* Which of an upstream's name positions repeat an address the upstream
 * has already (rp_upstream_pos): computed once per slot_gen, by whichever
 * thread asks first; the bits are read without a lock (a reader racing a
 * recomputation may see a position of the moment before, as it would
 * racing the resolver). */
struct rp_pos_cache {
    _Atomic uint64_t gen;
    size_t           nwords;
    _Atomic uint64_t dup[];
};

rp_pos_cache_t *
rp_pos_cache_new(size_t npos)
{
    size_t nw = npos / 64 + 1;
    rp_pos_cache_t *c = calloc(1, sizeof *c + nw * sizeof c->dup[0]);
    if (c == NULL)
        return NULL;
    atomic_init(&c->gen, 0);
    c->nwords = nw;
    for (size_t i = 0; i < nw; i++)
        atomic_init(&c->dup[i], 0);
    return c;
}

static rname_t *
name_get(unsigned id)
{
    rname_t *c = atomic_load_explicit(&chunks[id / NAME_CHUNK], memory_order_acquire);
    return &c[id % NAME_CHUNK];
}

unsigned
rp_name_identity(const char *upstream, const char *host, unsigned port)
{
    pthread_mutex_lock(&names_lock);
    for (unsigned i = 0; i < nnames; i++) {
        rname_t *n = name_get(i);
        if (n->port == port && strcmp(n->host, host) == 0 && strcmp(n->upstream, upstream) == 0) {
            pthread_mutex_unlock(&names_lock);
            return i;
        }
    }
    unsigned id = nnames;
    unsigned c = id / NAME_CHUNK;
    if (c >= NAME_CHUNKS) {
        pthread_mutex_unlock(&names_lock);
        return RP_NAME_FULL;
    }
    char *up = strdup(upstream), *hs = strdup(host);
    if (up == NULL || hs == NULL) {
        free(up);
        free(hs);
        pthread_mutex_unlock(&names_lock);
        return RP_IDENT_NOMEM;
    }
    if (atomic_load_explicit(&chunks[c], memory_order_acquire) == NULL) {
        rname_t *b = calloc(NAME_CHUNK, sizeof *b);
        if (b == NULL) {
            free(up);
            free(hs);
            pthread_mutex_unlock(&names_lock);
            return RP_IDENT_NOMEM;
        }
        for (unsigned k = 0; k < NAME_CHUNK; k++)
            for (unsigned s = 0; s < RP_NAME_ADDRS; s++)
                atomic_init(&b[k].slot[s], 0);
        atomic_store_explicit(&chunks[c], b, memory_order_release);
    }
    rname_t *n = name_get(id);
    n->upstream = up;
    n->host = hs;
    n->port = port;
    nnames++;
    pthread_mutex_unlock(&names_lock);
    return id;
}

unsigned
rp_name_slot(unsigned rname, unsigned k)
{
    unsigned v = atomic_load_explicit(&name_get(rname)->slot[k], memory_order_acquire);
    return v == 0 ? -1u : v - 1;
}

/* Add id to the open-addressing set (cap a power of two, 0 = free slot
 * holds id + 1); whether it was there. */
static bool
set_add(unsigned *set, size_t cap, unsigned id)
{
    size_t i = ((size_t)id * 2654435761u) & (cap - 1);
    while (set[i] != 0) {
        if (set[i] == id + 1)
            return true;
        i = (i + 1) & (cap - 1);
    }
    set[i] = id + 1;
    return false;
}

/* One pass over u's positions: numeric backends first (they keep their
 * address whatever the order), then name positions in order. */
static void
pos_cache_fill(const rp_upstream_t *u, rp_pos_cache_t *c, uint64_t g)
{
    size_t cap = 64;
    while (cap < 2 * (u->nbackends + u->npos))
        cap *= 2;
    unsigned small[256];
    unsigned *set = cap <= RP_ARRAY_LEN(small) ? small : calloc(cap, sizeof *set);
    if (set == NULL)
        return;   /* no duplicates skipped until memory allows */
    memset(set, 0, cap * sizeof *set);
    for (size_t j = 0; j < u->nbackends; j++)
        if (u->backends[j].name == NULL)
            set_add(set, cap, u->backends[j].id);
    for (size_t w = 0; w < c->nwords; w++) {
        uint64_t bits = 0;
        for (size_t b = 0; b < 64 && w * 64 + b < u->npos; b++) {
            size_t k = w * 64 + b;
            const rp_backend_t *be = &u->backends[u->pos_entry[k]];
            if (be->name == NULL)
                continue;
            unsigned id = rp_name_slot(be->rname, (unsigned)(k - be->pos));
            if (id != -1u && set_add(set, cap, id))
                bits |= (uint64_t)1 << b;
        }
        atomic_store_explicit(&c->dup[w], bits, memory_order_relaxed);
    }
    atomic_store_explicit(&c->gen, g, memory_order_release);
    if (set != small)
        free(set);
}

bool
rp_upstream_pos(const rp_upstream_t *u, size_t k, rp_pos_t *out)
{
    const rp_backend_t *be = &u->backends[u->pos_entry[k]];
    out->be = be;
    if (be->name == NULL) {
        out->id = be->id;
        return true;
    }
    unsigned id = rp_name_slot(be->rname, (unsigned)(k - be->pos));
    out->id = id;
    if (id == -1u)
        return false;
    /* One address is one backend, whatever entries lead to it: a name's
     * address that is a numeric backend of the upstream, or that an
     * earlier position holds, leaves this position empty.  Decided per
     * configuration, since a name's slots are shared by every
     * configuration that names it. */
    rp_pos_cache_t *c = u->pos_cache;
    if (c == NULL)
        return true;
    uint64_t g = atomic_load_explicit(&slot_gen, memory_order_acquire);
    if (atomic_load_explicit(&c->gen, memory_order_acquire) != g)
        pos_cache_fill(u, c, g);
    return !((atomic_load_explicit(&c->dup[k / 64], memory_order_relaxed) >> (k % 64)) & 1u);
}

const rp_backend_t *
rp_pos_backend(const rp_pos_t *p, rp_backend_t *own)
{
    if (p->be->name == NULL)
        return p->be;
    *own = *p->be;
    own->addr = rp_bstate(p->id)->addr;
    own->id = p->id;
    return own;
}

static size_t resolve_all(const char *host, unsigned port, rp_addr_t *out, size_t max,
                          const char **err);

static int
addr_cmp(const void *a, const void *b)
{
    return strcmp(((const rp_addr_t *)a)->text, ((const rp_addr_t *)b)->text);
}

#define RESOLVE_MAX 128

size_t
rp_resolve(const char *host, unsigned port, rp_addr_t *out, size_t max, const char **err)
{
    /* All the answers (up to RESOLVE_MAX) are sorted before the first max
     * are kept: a name with more addresses than that keeps the same ones
     * whatever order its answers come in. */
    rp_addr_t all[RESOLVE_MAX];
    size_t n = resolve_all(host, port, all, RESOLVE_MAX, err);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof *out);
    return n;
}

static size_t
resolve_all(const char *host, unsigned port, rp_addr_t *out, size_t max, const char **err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int e = getaddrinfo(host, ps, &hints, &res);
    if (e != 0) {
        *err = e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e);
        return 0;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        rp_addr_t a;
        memset(&a, 0, sizeof a);
        char buf[INET6_ADDRSTRLEN];
        if (ai->ai_family == AF_INET && ai->ai_addrlen <= sizeof a.ss) {
            memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
            a.len = ai->ai_addrlen;
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, buf, sizeof buf);
            snprintf(a.text, sizeof a.text, "%s:%u", buf, port);
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen <= sizeof a.ss) {
            memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
            a.len = ai->ai_addrlen;
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, buf, sizeof buf);
            snprintf(a.text, sizeof a.text, "[%s]:%u", buf, port);
        } else {
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup = dup || strcmp(out[i].text, a.text) == 0;
        if (!dup)
            out[n++] = a;
    }
    freeaddrinfo(res);
    if (n == 0) {
        *err = "no IPv4 or IPv6 address";
        return 0;
    }
    /* The same set in any order is the same set. */
    qsort(out, n, sizeof *out, addr_cmp);
    return n;
}

static uint64_t mono_us(void);

/* A warning for name nm: once per distinct message, and again at most
 * once a minute (a name that flaps between answers must not flood the
 * log). */
static void
name_warn(rname_t *nm, const char *msg)
{
    uint64_t now = mono_us();
    if (strcmp(nm->err, msg) == 0 && now - nm->warned_us < 60000000u)
        return;
    snprintf(nm->err, sizeof nm->err, "%s", msg);
    nm->warned_us = now;
    rp_log(RP_LOG_WARN, NULL, "upstream %s: %s:%u %s", nm->upstream, nm->host, nm->port, msg);
}

/* Publish what name id resolved to: n addresses (sorted, distinct), or
 * the failure err (with R.lock held: a stop never finds it half done).
 * Which of them an upstream uses is decided per configuration
 * (rp_upstream_pos). */
static void
apply_one(unsigned id, const rp_addr_t *addrs, size_t n, const char *err)
{
    rname_t *nm = name_get(id);
    if (n == 0) {
        char msg[160];
        snprintf(msg, sizeof msg, nm->ever ? "does not resolve (%s); keeping its last addresses"
                                           : "does not resolve (%s); it takes no traffic until it does",
                 err);
        name_warn(nm, msg);
        if (!nm->ever) {
            for (size_t i = 0; i < RP_NAME_ADDRS; i++)
                atomic_store_explicit(&nm->slot[i], 0, memory_order_release);
            atomic_fetch_add_explicit(&slot_gen, 1, memory_order_release);
        }
        return;
    }
    /* Identities are never freed: a name whose addresses change without
     * end would use them up.  Far below the table's size, new addresses
     * are refused (the last ones stay) rather than the process dying. */
    if (rp_backend_identity_count() + n > RP_IDENTITIES_MAX) {
        if (strcmp(nm->err, "identities") != 0) {
            snprintf(nm->err, sizeof nm->err, "identities");
            rp_log(RP_LOG_ERROR, NULL, "upstream %s: %s:%u: %u backend addresses seen since "
                   "start, the most revproxy keeps; keeping its last addresses", nm->upstream,
                   nm->host, nm->port, rp_backend_identity_count());
        }
        return;
    }
    unsigned ids[RP_NAME_ADDRS];
    for (size_t i = 0; i < n; i++) {
        ids[i] = rp_backend_identity(nm->upstream, &addrs[i]);
        if (ids[i] == RP_IDENT_NOMEM) {
            /* The addresses in use stay; the next lookup tries again. */
            rp_log(RP_LOG_ERROR, NULL, "upstream %s: %s:%u: out of memory for its addresses",
                   nm->upstream, nm->host, nm->port);
            return;
        }
    }
    nm->err[0] = '\0';   /* the next failure is news */
    bool same = nm->ever;
    for (size_t i = 0; i < n; i++)
        same = same && atomic_load(&nm->slot[i]) == ids[i] + 1;
    same = same && (n == RP_NAME_ADDRS || atomic_load(&nm->slot[n]) == 0);
    nm->ever = true;
    if (same)
        return;
    for (size_t i = 0; i < RP_NAME_ADDRS; i++)
        atomic_store_explicit(&nm->slot[i], i < n ? ids[i] + 1 : 0, memory_order_release);
    atomic_fetch_add_explicit(&slot_gen, 1, memory_order_release);
    char list[RP_NAME_ADDRS * 50];
    size_t pos = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", addrs[i].text);
    rp_log(RP_LOG_INFO, NULL, "upstream %s: %s:%u resolves to %s", nm->upstream, nm->host,
           nm->port, list);
}

unsigned
rp_name_count(unsigned rname)
{
    unsigned n = 0;
    for (unsigned k = 0; k < RP_NAME_ADDRS; k++)
        n += atomic_load(&name_get(rname)->slot[k]) != 0;
    return n;
}

/* ---- the threads ---- */

/*
 * The resolver thread looks names up again on their schedules.  A name
 * new to the configuration gets its first lookup from a helper thread
 * started for it (for all the names one update adds), so that it never
 * waits behind a scheduled lookup that blocks on a slow name server; the
 * helper then activates the event the main thread gave it, or wakes
 * rp_resolver_wait().
 */

typedef struct due {
    unsigned name;
    unsigned interval_ms;
    uint64_t at_us;    /* monotonic */
} due_t;

static struct {
    pthread_t       thread;
    pthread_mutex_t lock;
    pthread_cond_t  wake;     /* the thread waits on it */
    pthread_cond_t  done;     /* a helper ended: rp_resolver_wait looks again */
    bool            inited, running, stop;
    unsigned        epoch;    /* bumped when dues is replaced */
    due_t          *dues;     /* owned: the names of the configuration in force */
    size_t          n;
    unsigned        helpers;  /* helper threads running */
    unsigned        pending;  /* of them, those started by the last update */
    unsigned        gen;      /* which update a helper belongs to */
    struct event   *notify;   /* activated when the last update's helper ends */
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
abs_time(uint64_t us, struct timespec *ts)
{
    ts->tv_sec = (time_t)(us / 1000000u);
    ts->tv_nsec = (long)(us % 1000000u) * 1000;
}

static void
block_signals(void)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *
resolver_main(void *arg)
{
    (void)arg;
    block_signals();
    pthread_mutex_lock(&R.lock);
    while (!R.stop) {
        uint64_t now = mono_us();
        uint64_t next = UINT64_MAX;
        bool replaced = false;
        for (size_t i = 0; i < R.n && !R.stop && !replaced; i++) {
            if (R.dues[i].at_us <= now) {
                /* The lookup may block for the resolver's timeouts: it runs
                 * unlocked, and what it found is applied under the lock
                 * unless revproxy is stopping by then (it does not wait for
                 * a lookup, see rp_resolver_stop).  A reload may replace
                 * the list meanwhile: the name is then found again by
                 * identity, and the pass starts over. */
                unsigned name = R.dues[i].name, epoch = R.epoch;
                rname_t *nm = name_get(name);
                unsigned inc = nm->incarnation;
                rp_addr_t addrs[RP_NAME_ADDRS];
                const char *err = NULL;
                pthread_mutex_unlock(&R.lock);
                size_t n = rp_resolve(nm->host, nm->port, addrs, RP_NAME_ADDRS, &err);
                pthread_mutex_lock(&R.lock);
                if (R.stop)
                    break;
                size_t at = i;
                if (R.epoch != epoch) {
                    replaced = true;
                    for (at = 0; at < R.n && R.dues[at].name != name; at++)
                        ;
                    if (at == R.n)
                        continue;   /* no longer configured: dropped */
                }
                if (nm->incarnation == inc)   /* else configured afresh since */
                    apply_one(name, addrs, n, err);
                now = mono_us();
                R.dues[at].at_us = now + (uint64_t)R.dues[at].interval_ms * 1000u;
                if (replaced)
                    break;
            }
            if (R.dues[i].at_us < next)
                next = R.dues[i].at_us;
        }
        if (R.stop)
            break;
        if (replaced)
            continue;
        if (next == UINT64_MAX) {
            pthread_cond_wait(&R.wake, &R.lock);
        } else {
            struct timespec ts;
            abs_time(next, &ts);
            pthread_cond_timedwait(&R.wake, &R.lock, &ts);
        }
    }
    pthread_mutex_unlock(&R.lock);
    return NULL;
}

/* The first lookups of the names one update adds, shared by up to
 * HELPERS_MAX threads: a slow name holds up one of them, not the others. */
#define HELPERS_MAX 8u

typedef struct batch {
    unsigned  gen;      /* the update's */
    size_t    n, next;  /* names; the next to take (under R.lock) */
    unsigned  alive;    /* its threads still running */
    unsigned  names[];
} batch_t;

static void *
helper_main(void *arg)
{
    batch_t *b = arg;
    block_signals();
    pthread_mutex_lock(&R.lock);
    while (!R.stop && b->next < b->n) {
        unsigned name = b->names[b->next++];
        rname_t *nm = name_get(name);
        unsigned inc = nm->incarnation;
        pthread_mutex_unlock(&R.lock);
        rp_addr_t addrs[RP_NAME_ADDRS];
        const char *err = NULL;
        size_t n = rp_resolve(nm->host, nm->port, addrs, RP_NAME_ADDRS, &err);
        pthread_mutex_lock(&R.lock);
        if (!R.stop && nm->incarnation == inc)
            apply_one(name, addrs, n, err);
    }
    bool last = --b->alive == 0;
    if (last && b->gen == R.gen) {
        R.pending = 0;
        if (R.notify != NULL && !R.stop)
            event_active(R.notify, EV_TIMEOUT, 1);
    }
    R.helpers--;
    pthread_cond_broadcast(&R.done);
    pthread_mutex_unlock(&R.lock);
    if (last)
        free(b);
    return NULL;
}

int
rp_resolver_update(const rp_snapshot_t *snap, struct event *notify)
{
    if (!R.inited) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&R.wake, &ca);
        pthread_cond_init(&R.done, &ca);
        pthread_condattr_destroy(&ca);
        R.inited = true;   /* main thread only */
    }
    size_t n = 0;
    due_t *dues = NULL;
    for (size_t i = 0; i < snap->nupstreams; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        for (size_t k = 0; k < u->nbackends; k++) {
            const rp_backend_t *be = &u->backends[k];
            if (be->name == NULL)
                continue;
            due_t *more = realloc(dues, (n + 1) * sizeof *dues);
            if (more == NULL) {
                free(dues);
                return RP_RESOLVE_NOMEM;
            }
            dues = more;
            dues[n].name = be->rname;
            dues[n].interval_ms = u->resolve_interval_ms;
            dues[n].at_us = 0;
            n++;
        }
    }
    uint64_t now = mono_us();
    batch_t *h = malloc(sizeof *h + (n ? n : 1) * sizeof h->names[0]);
    if (h == NULL) {
        free(dues);
        return RP_RESOLVE_NOMEM;
    }
    h->n = 0;
    h->next = 0;
    h->alive = 0;

    pthread_mutex_lock(&R.lock);
    for (size_t j = 0; j < n; j++) {
        rname_t *nm = name_get(dues[j].name);
        const due_t *old = NULL;
        for (size_t i = 0; i < R.n && old == NULL; i++)
            if (R.dues[i].name == dues[j].name)
                old = &R.dues[i];
        /* A name configured before keeps its addresses and schedule
         * (sooner if its interval shrank).  A new one, or one configured
         * again after a time without, starts empty: its first answer comes
         * from a helper, its next on its interval. */
        uint64_t soon = now + (uint64_t)dues[j].interval_ms * 1000u;
        if (old != NULL) {
            dues[j].at_us = old->at_us < soon ? old->at_us : soon;
            continue;
        }
        dues[j].at_us = soon;
        bool dup = false;
        for (size_t q = 0; q < h->n && !dup; q++)
            dup = h->names[q] == dues[j].name;
        if (dup)
            continue;
        nm->incarnation++;   /* a lookup of its earlier life lands nowhere */
        nm->ever = false;
        nm->err[0] = '\0';
        for (size_t k = 0; k < RP_NAME_ADDRS; k++)
            atomic_store_explicit(&nm->slot[k], 0, memory_order_release);
        h->names[h->n++] = dues[j].name;
    }
    if (h->n > 0)
        atomic_fetch_add_explicit(&slot_gen, 1, memory_order_release);
    free(R.dues);
    R.dues = dues;
    R.n = n;
    R.epoch++;
    R.gen++;
    R.notify = notify;
    R.pending = 0;
    pthread_cond_signal(&R.wake);
    int rc = 0;
    if (!R.running && n > 0) {
        R.stop = false;
        int e = pthread_create(&R.thread, NULL, resolver_main, NULL);
        if (e != 0) {
            rp_log(RP_LOG_ERROR, NULL, "cannot start the resolver thread: %s", strerror(e));
            rc = -1;
        } else {
            R.running = true;
        }
    }
    if (h->n > 0) {
        h->gen = R.gen;
        unsigned want = h->n < HELPERS_MAX ? (unsigned)h->n : HELPERS_MAX;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        for (unsigned i = 0; i < want; i++) {
            pthread_t t;
            int e = pthread_create(&t, &at, helper_main, h);
            if (e != 0) {
                if (i == 0)
                    rp_log(RP_LOG_ERROR, NULL, "cannot start a resolver thread: %s", strerror(e));
                break;
            }
            h->alive++;
            R.helpers++;
        }
        pthread_attr_destroy(&at);
        if (h->alive == 0) {
            /* Their first lookup comes from the resolver thread instead. */
            for (size_t j = 0; j < n; j++)
                for (size_t q = 0; q < h->n; q++)
                    if (R.dues[j].name == h->names[q])
                        R.dues[j].at_us = 0;
            pthread_cond_signal(&R.wake);
        } else {
            R.pending = 1;
            h = NULL;   /* the helpers own it */
            if (rc == 0)
                rc = 1;
        }
    }
    pthread_mutex_unlock(&R.lock);
    free(h);
    return rc;
}

void
rp_resolver_forget_notify(void)
{
    pthread_mutex_lock(&R.lock);
    R.notify = NULL;
    pthread_mutex_unlock(&R.lock);
}

bool
rp_resolver_wait(unsigned wait_ms)
{
    struct timespec ts;
    abs_time(mono_us() + (uint64_t)wait_ms * 1000u, &ts);
    pthread_mutex_lock(&R.lock);
    while (R.pending > 0)
        if (pthread_cond_timedwait(&R.done, &R.lock, &ts) == ETIMEDOUT)
            break;
    bool done = R.pending == 0;
    pthread_mutex_unlock(&R.lock);
    return done;
}

void
rp_resolver_stop(void)
{
    pthread_mutex_lock(&R.lock);
    R.stop = true;
    R.notify = NULL;
    if (R.inited)
        pthread_cond_signal(&R.wake);
    pthread_mutex_unlock(&R.lock);
    if (!R.running)
        return;
    /* A lookup under way may block for the resolver's timeouts (seconds
     * per name server): after a second, leave the thread to it.  It
     * touches nothing once it sees the stop (it checks under the lock),
     * and the process is exiting.  Helpers are detached and do the same. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (pthread_timedjoin_np(R.thread, NULL, &ts) != 0) {
        pthread_detach(R.thread);
        R.running = false;
        return;
    }
    free(R.dues);
    R.dues = NULL;
    R.n = 0;
    R.running = false;
}
