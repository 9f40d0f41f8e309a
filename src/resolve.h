/* SPDX-License-Identifier: MIT */
/*
 * Host-name backends.  A name identity (upstream name + "host:port") holds
 * the backend identities its name resolves to, in RP_NAME_ADDRS slots
 * (include/revproxy/upstream.h).  Like the backend state table it is
 * core-owned and never freed, so it outlives snapshots; the resolver
 * thread is its only writer and workers read its slots with atomics.
 *
 * The resolver thread resolves every name of the configuration in force
 * when it is new and again every resolve_interval_ms of its upstream, with getaddrinfo (which may block:
 * never on a worker, never on the main thread, whose event loop serves
 * signals).  A name that does not resolve keeps the addresses it had; one
 * that never resolved leaves its positions empty, so it takes no traffic.
 */
#ifndef RP_RESOLVE_H
#define RP_RESOLVE_H

#include <stdbool.h>
#include "revproxy/config.h"

/* The name identity of upstream + host:port (main thread, config). */
unsigned rp_name_identity(const char *upstream, const char *host, unsigned port);
/* The backend identity in slot k of name identity rname, or -1u when
 * empty. */
unsigned rp_name_slot(unsigned rname, unsigned k);

/* Resolve host:port now (blocking): the number of addresses (at most max)
 * put in out, or 0 with *err set to why. */
size_t rp_resolve(const char *host, unsigned port, rp_addr_t *out, size_t max, const char **err);

/* Addresses in the slots of name identity rname now. */
unsigned rp_name_count(unsigned rname);

/* Make the named backends of snap the ones the resolver thread looks up
 * (main thread, at start and at each reload), starting the thread the
 * first time there is a name.  A name configured before keeps its
 * addresses and schedule; a new one (or one whose upstream's numeric
 * backends changed) is looked up at once, and the call waits until each
 * has had its first answer, at most wait_ms.  Names no longer configured
 * keep their last addresses for the snapshots still using them, are no
 * longer looked up, and no longer hold their addresses against the
 * others.  0, or -1 after logging why (the thread did not start). */
int rp_resolver_update(const rp_snapshot_t *snap, unsigned wait_ms);
/* Stop it and wait for it (a resolution under way finishes first). */
void rp_resolver_stop(void);

#endif
