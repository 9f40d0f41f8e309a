/* SPDX-License-Identifier: MIT */
/*
 * Per-address token buckets (modules/ratelimit.c).  The arithmetic is
 * exposed for tests: a bucket holds up to burst tokens, refills at rate
 * tokens a second, and a request takes one.
 */
#ifndef REVPROXY_RATELIMIT_H
#define REVPROXY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "revproxy/cidr.h"

/* Tokens are counted in millionths, so that rate x elapsed microseconds
 * is exact. */
#define RP_TOKEN 1000000u

typedef struct rp_bucket {
    uint64_t tokens;   /* millionths of a token */
    uint64_t last_us;  /* monotonic time of the last refill */
} rp_bucket_t;

/* A full bucket at now_us. */
void rp_bucket_init(rp_bucket_t *b, unsigned burst, uint64_t now_us);
/* Take one token at now_us: true, or false with *retry_s set to the whole
 * seconds until one is there (at least 1). */
bool rp_bucket_take(rp_bucket_t *b, unsigned rate, unsigned burst, uint64_t now_us,
                    unsigned *retry_s);

/* A table of buckets by address, bounded: past max addresses the least
 * recently used one is dropped.  Any thread (sharded, a lock a shard);
 * nothing is allocated after it is made. */
typedef struct rp_rltable rp_rltable_t;
rp_rltable_t *rp_rltable_new(unsigned max);   /* NULL when out of memory */
void rp_rltable_free(rp_rltable_t *t);
bool rp_rltable_take(rp_rltable_t *t, const rp_ip_t *key, unsigned rate, unsigned burst,
                     uint64_t now_us, unsigned *retry_s);
/* Addresses tracked now. */
unsigned rp_rltable_count(rp_rltable_t *t);

/* The key of an address: IPv6 cut to its first prefix bits, IPv4 whole. */
void rp_rl_key(const rp_ip_t *ip, unsigned ipv6_prefix, rp_ip_t *key);

/* /stats: the addresses each table tracks. */
struct rp_snapshot;
#include <jansson.h>
json_t *rp_ratelimit_stats(const struct rp_snapshot *snap);

#endif
