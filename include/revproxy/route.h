/* SPDX-License-Identifier: MIT */
/*
 * Routes and the compiled router (modules/router.c).  Matching picks the most
 * specific host first (exact, then the longest wildcard suffix, then any
 * host), and within it the exact path, then the longest path prefix; when
 * a host group has no matching path the next less specific group is tried.
 * A prefix not ending in '/' matches at a segment boundary only ("/api"
 * matches "/api" and "/api/x", not "/apiary").  The result does not depend
 * on the order of routes in the file.
 */
#ifndef REVPROXY_ROUTE_H
#define REVPROXY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "revproxy/types.h"
#include "revproxy/config.h"

struct rp_route {
    char                *host;       /* owned: NULL any, "*.example.com", or exact */
    char                *path;       /* owned: exact path or prefix */
    size_t               path_len;
    bool                 prefix;
    const rp_upstream_t *upstream;   /* borrowed from the snapshot */
    unsigned             index;      /* position in the routes array */
    rp_retry_cfg_t       retry;      /* the upstream's, with the route's overrides */
    rp_timeouts_t        timeouts;   /* the snapshot's, with the route's overrides
                                        (upstream_connect_ms, upstream_response_ms,
                                        request_ms) */
    char                 label[320]; /* "host path" for logs and metrics */
    unsigned             ident;      /* rp_route_identity(label) */
    bool                 named;      /* the label is its "name" */
    bool                 websocket;  /* WebSocket upgrades are tunnelled (src/ws.c) */
};

typedef struct rp_router rp_router_t;

/* Compile the "routes" array of root against the upstreams of snap.
 * Returns NULL after adding errors. */
rp_router_t *rp_router_build(const json_t *root, const rp_snapshot_t *snap,
                             rp_errs_t *errs);
void rp_router_free(rp_router_t *r);
/* host: normalised (lowercase, no port), "" when absent.  path: the path
 * without the query, normalised by rp_path_normalize.  No allocation. */
const rp_route_t *rp_router_match(const rp_router_t *r, const char *host,
                                  const char *path, size_t path_len);

/* The routes of snap, in the order of the file (NULL and 0 when the
 * snapshot has no router). */
const rp_route_t *rp_router_routes(const rp_snapshot_t *snap, size_t *n);

#endif
