/* SPDX-License-Identifier: MIT */
/*
 * The backend state table (include/revproxy/bstate.h): chunks of
 * BSTATE_CHUNK entries, allocated as identities are
 * created and never freed or moved, so a worker's pointer stays good.
 */
#include "config.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "revproxy/bstate.h"
#include "util.h"

#define BSTATE_CHUNK 256u
#define BSTATE_CHUNKS 4096u   /* a million identities */

static _Atomic(rp_bstate_t *) chunks[BSTATE_CHUNKS];

bool
rp_bstate_ensure(unsigned id)
{
    unsigned c = id / BSTATE_CHUNK;
    if (c >= BSTATE_CHUNKS)
        return false;   /* identities are bounded far below this */
    for (unsigned i = 0; i <= c; i++) {
        if (atomic_load_explicit(&chunks[i], memory_order_acquire) != NULL)
            continue;
        rp_bstate_t *b = calloc(BSTATE_CHUNK, sizeof *b);
        if (b == NULL)
            return false;
        for (unsigned k = 0; k < BSTATE_CHUNK; k++) {
            atomic_init(&b[k].active, 0);
            atomic_init(&b[k].conns, 0);
            atomic_init(&b[k].idle, 0);
            atomic_init(&b[k].health, RP_HEALTH_HEALTHY);
            atomic_init(&b[k].active_down, false);
            atomic_init(&b[k].ejected_until, 0);
            atomic_init(&b[k].ramp_from, 0);
            atomic_init(&b[k].ramp_ms, 0);
            atomic_init(&b[k].fails, 0);
            atomic_init(&b[k].ejections, 0);
            atomic_init(&b[k].last_fail, 0);
            for (unsigned h = 0; h < RP_HEALTH_COUNT; h++)
                atomic_init(&b[k].changes[h], 0);
        }
        atomic_store_explicit(&chunks[i], b, memory_order_release);
    }
    return true;
}

rp_bstate_t *
rp_bstate(unsigned id)
{
    rp_bstate_t *c = atomic_load_explicit(&chunks[id / BSTATE_CHUNK], memory_order_acquire);
    return &c[id % BSTATE_CHUNK];
}

uint64_t
rp_bstate_weight(const rp_bstate_t *b, unsigned weight, uint64_t now_us)
{
    uint64_t w = (uint64_t)weight * 1000u;
    uint64_t from = atomic_load_explicit(&b->ramp_from, memory_order_relaxed);
    unsigned ms = atomic_load_explicit(&b->ramp_ms, memory_order_relaxed);
    if (from == 0 || ms == 0 || now_us < from)
        return w;
    uint64_t done = now_us - from;
    uint64_t len = (uint64_t)ms * 1000u;
    if (done >= len)
        return w;
    uint64_t r = w * done / len;
    return r < weight ? weight : r;
}

const char *
rp_health_name(rp_health_t h)
{
    static const char *const names[RP_HEALTH_COUNT] = { "healthy", "unhealthy", "recovering" };
    return (unsigned)h < RP_HEALTH_COUNT ? names[h] : "?";
}

static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;

void
rp_bstate_note(rp_bstate_t *b, rp_health_t to, const char *why)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&note_lock);
    if (atomic_load(&b->health) != (unsigned)to) {
        pthread_mutex_unlock(&note_lock);
        return;
    }
    b->last_unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    snprintf(b->last_why, sizeof b->last_why, "%s", why);
    pthread_mutex_unlock(&note_lock);
}

uint64_t
rp_bstate_last(const rp_bstate_t *b, char *out, size_t cap)
{
    pthread_mutex_lock(&note_lock);
    uint64_t t = b->last_unix_ms;
    snprintf(out, cap, "%s", b->last_why);
    pthread_mutex_unlock(&note_lock);
    return t;
}
