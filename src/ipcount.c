/* SPDX-License-Identifier: MIT */
/*
 * Client connections open per address (ipcount.h).
 */
#include "config.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "ipcount.h"
#include "util.h"

#define SHARDS 64u
#define BUCKETS 256u   /* per shard */

typedef struct node {
    rp_ip_t      ip;
    unsigned     n;
    struct node *next;
} node_t;

static struct shard {
    pthread_mutex_t lock;
    node_t         *bucket[BUCKETS];
} shards[SHARDS];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_uint naddrs;

static void
init(void)
{
    for (unsigned i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
}

/* The shard of ip, locked, and the head of its bucket. */
static node_t **
find(const rp_ip_t *ip, struct shard **sh)
{
    pthread_once(&once, init);
    uint64_t h = rp_ip_hash(ip);
    *sh = &shards[h % SHARDS];
    pthread_mutex_lock(&(*sh)->lock);
    node_t **p = &(*sh)->bucket[(h / SHARDS) % BUCKETS];
    while (*p != NULL && memcmp((*p)->ip.b, ip->b, 16) != 0)
        p = &(*p)->next;
    return p;
}

int
rp_ipcount_acquire(const rp_ip_t *ip, unsigned limit)
{
    struct shard *sh;
    node_t **p = find(ip, &sh);
    int rc = 0;
    if (*p == NULL) {
        node_t *n = malloc(sizeof *n);
        if (n == NULL) {
            rc = RP_IPCOUNT_NOMEM;
        } else {
            n->ip = *ip;
            n->n = 1;
            n->next = NULL;
            *p = n;
            atomic_fetch_add(&naddrs, 1);
        }
    } else if ((*p)->n >= limit) {
        rc = RP_IPCOUNT_FULL;
    } else {
        (*p)->n++;
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

void
rp_ipcount_release(const rp_ip_t *ip)
{
    struct shard *sh;
    node_t **p = find(ip, &sh);
    node_t *gone = NULL;
    if (*p != NULL && --(*p)->n == 0) {
        gone = *p;
        *p = gone->next;
        atomic_fetch_sub(&naddrs, 1);
    }
    pthread_mutex_unlock(&sh->lock);
    free(gone);
}

unsigned
rp_ipcount_get(const rp_ip_t *ip)
{
    struct shard *sh;
    node_t **p = find(ip, &sh);
    unsigned n = *p != NULL ? (*p)->n : 0;
    pthread_mutex_unlock(&sh->lock);
    return n;
}

unsigned
rp_ipcount_addresses(void)
{
    return atomic_load(&naddrs);
}
