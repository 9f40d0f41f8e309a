/* SPDX-License-Identifier: MIT */
/*
 * Retries (see retry.h).
 */
#include "config.h"
#include "retry.h"

bool
rp_retry_safe(const rp_retry_case_t *c)
{
    if (c->resp_started || !c->body_whole)
        return false;
    return !c->written || c->idempotent;
}

bool
rp_retry_on_status(const rp_retry_cfg_t *c, int status)
{
    for (unsigned i = 0; i < c->non_status; i++)
        if (c->on_status[i] == status)
            return true;
    return false;
}

unsigned
rp_retry_backoff_ms(const rp_retry_cfg_t *c, unsigned n, uint64_t rnd)
{
    uint64_t cap = c->backoff_base_ms;
    for (unsigned i = 1; i < n && cap < c->backoff_max_ms; i++)
        cap *= 2;
    if (cap > c->backoff_max_ms)
        cap = c->backoff_max_ms;
    return (unsigned)(rnd % (cap + 1));
}

/* The slot of second s, emptied first when it last counted an older
 * second.  Two workers may race to empty it: one wins, and a count the
 * other added in between is lost, which a budget can afford. */
static unsigned
slot(rp_budget_t *b, uint64_t s)
{
    unsigned i = (unsigned)(s % RP_BUDGET_SLOTS);
    unsigned long long old = atomic_load(&b->second[i]);
    if (old != s && atomic_compare_exchange_strong(&b->second[i], &old, s)) {
        atomic_store(&b->requests[i], 0);
        atomic_store(&b->retries[i], 0);
    }
    return i;
}

void
rp_budget_request(rp_budget_t *b, uint64_t now_us)
{
    atomic_fetch_add(&b->requests[slot(b, now_us / 1000000u)], 1);
}

bool
rp_budget_retry(rp_budget_t *b, const rp_retry_cfg_t *c, uint64_t now_us)
{
    uint64_t s = now_us / 1000000u;
    unsigned i = slot(b, s);
    uint64_t requests = 0, retries = 0, seconds = 1;   /* this one */
    for (unsigned k = 0; k < RP_BUDGET_SLOTS; k++) {
        uint64_t sec = atomic_load(&b->second[k]);
        if (sec + RP_BUDGET_SLOTS <= s || sec > s)
            continue;   /* older than the window */
        unsigned rq = atomic_load(&b->requests[k]), rt = atomic_load(&b->retries[k]);
        requests += rq;
        retries += rt;
        if (k != i && (rq > 0 || rt > 0))
            seconds++;
    }
    /* The floor accrues per second of traffic in the window: a burst
     * after a quiet spell gets one second's worth, not ten. */
    uint64_t allowed = requests * c->budget_percent / 100
                       + (uint64_t)c->min_retries_per_s * seconds;
    if (retries + 1 > allowed)
        return false;
    atomic_fetch_add(&b->retries[i], 1);
    return true;
}
