/* SPDX-License-Identifier: MIT */
/*
 * The backends of an upstream as they are now.  A numeric backend takes
 * one position; a backend given by host name takes RP_NAME_ADDRS, one per
 * address the name resolves to (resolved off the workers, src/resolve.c),
 * empty while it resolves to fewer.  Each filled position is a backend
 * identity with its own health and connection count, and the weight and
 * max_connections of its configured entry.  Positions are fixed for a
 * snapshot, so balancers keep per-position state.
 */
#ifndef REVPROXY_UPSTREAM_H
#define REVPROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include "revproxy/config.h"

#define RP_NAME_ADDRS 16

typedef struct rp_pos {
    const rp_backend_t *be;   /* the configured entry */
    unsigned            id;   /* the backend identity there now */
} rp_pos_t;

/* Position k (below u->npos) of u; false when it is empty. */
bool rp_upstream_pos(const rp_upstream_t *u, size_t k, rp_pos_t *out);

/* The backend to connect to for a filled position: the entry itself when
 * numeric, else *own filled with the resolved address and identity (the
 * caller keeps own as long as it uses the result). */
const rp_backend_t *rp_pos_backend(const rp_pos_t *p, rp_backend_t *own);

#endif
