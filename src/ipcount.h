/* SPDX-License-Identifier: MIT */
/*
 * Client connections open per address, across workers, for
 * limits.max_connections_per_ip.  A sharded table (a lock per shard,
 * shards picked by a hash of the address) holding an entry for each
 * address with a connection open: at most one entry per open connection,
 * so bounded by limits.max_connections.  Any thread.
 */
#ifndef RP_IPCOUNT_H
#define RP_IPCOUNT_H

#include <stdbool.h>
#include "revproxy/cidr.h"

/* Count one more connection from ip unless limit are open already:
 * 0 counted, RP_IPCOUNT_FULL at the limit, RP_IPCOUNT_NOMEM without
 * memory for the address's entry (not counted either). */
#define RP_IPCOUNT_FULL  (-1)
#define RP_IPCOUNT_NOMEM (-2)
int rp_ipcount_acquire(const rp_ip_t *ip, unsigned limit);
/* One of ip's counted connections closed. */
void rp_ipcount_release(const rp_ip_t *ip);
/* Connections open from ip now (tests, /stats). */
unsigned rp_ipcount_get(const rp_ip_t *ip);
/* Addresses with a connection open. */
unsigned rp_ipcount_addresses(void);

#endif
