/* SPDX-License-Identifier: MIT */
/*
 * Host-name backends.  A name identity (upstream name + "host:port") holds
 * the backend identities its name resolves to, in RP_NAME_ADDRS slots
 * (include/revproxy/upstream.h).  Like the backend state table it is
 * core-owned and never freed, so it outlives snapshots; the resolver
 * threads write its slots (the main thread empties those of a name a
 * reload configures afresh) and workers read them with atomics.
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

/* The name identity of upstream + host:port (main thread, config),
 * RP_NAME_FULL when the 65536 a process keeps are taken (identities are
 * never freed: names come and go only by reload), or RP_IDENT_NOMEM. */
#define RP_NAME_FULL (~0u - 1)
unsigned rp_name_identity(const char *upstream, const char *host, unsigned port);
/* The backend identity in slot k of name identity rname, or -1u when
 * empty. */
unsigned rp_name_slot(unsigned rname, unsigned k);

/* Resolve host:port now (blocking): the number of addresses (at most max)
 * put in out, or 0 with *err set to why. */
size_t rp_resolve(const char *host, unsigned port, rp_addr_t *out, size_t max, const char **err);

/* Addresses in the slots of name identity rname now. */
unsigned rp_name_count(unsigned rname);

struct event;

/* Make the named backends of snap the ones the resolver thread looks up
 * (main thread, at start and at each reload), starting the thread the
 * first time there is a name.  A name configured before keeps its
 * addresses and schedule.  A new one (or one configured again) starts
 * with no address and gets its first lookup at once from helper threads
 * (up to 8 for the names of one update, so a slow name holds up only
 * one), which activate notify when the last ends (when not NULL; any
 * thread may activate it) and end rp_resolver_wait().  A lookup begun
 * before a name was configured afresh is not applied.  Which addresses an upstream
 * uses is decided per configuration (rp_upstream_pos): an address that
 * is a numeric backend of the upstream, or that another of its names
 * holds, counts once.  Returns 1 when new names are being looked up, 0
 * when there is nothing to wait for (also when no helper could start:
 * the resolver thread looks them up at once), -1 after logging that the
 * resolver thread did not start, or RP_RESOLVE_NOMEM when memory ran out
 * before anything changed. */
#define RP_RESOLVE_NOMEM (-2)
int rp_resolver_update(const rp_snapshot_t *snap, struct event *notify);
/* Wait, at most wait_ms, until the names of the last update have had
 * their first answer; whether they have. */
bool rp_resolver_wait(unsigned wait_ms);
/* The notify event of the last update is about to be freed. */
void rp_resolver_forget_notify(void);

/* An upstream's record of which name positions repeat an address
 * (rp_upstream_pos), for upstreams with host-name backends: made with the
 * snapshot, freed with free(). */
rp_pos_cache_t *rp_pos_cache_new(size_t npos);
/* Stop it and wait for it (a resolution under way finishes first). */
void rp_resolver_stop(void);

#endif
