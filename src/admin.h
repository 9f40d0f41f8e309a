/* SPDX-License-Identifier: MIT */
/*
 * The admin port (admin.c) and what it renders (expo.c): /healthz, /ready,
 * /metrics (Prometheus text exposition 0.0.4), /stats (JSON) and /config.
 * Main thread only.
 */
#ifndef RP_ADMIN_H
#define RP_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include "revproxy/config.h"

struct event_base;
struct evbuffer;

#define RP_ADMIN_MAX_CONNS  16      /* connections at once */
#define RP_ADMIN_MAX_HEAD   8192    /* request head bytes */
#define RP_ADMIN_MAX_FIELDS 64      /* request header fields */
#define RP_ADMIN_TIMEOUT_MS 10000   /* for a request to arrive, and an answer to leave */

/* Listen on snap->admin.addr when the section is there (0 otherwise).
 * Returns -1 after logging why it cannot listen. */
int rp_admin_start(struct event_base *base, rp_snapshot_t *snap, uint64_t start_unix_ms);
/* /ready answers 200 from now on (or 503 again). */
void rp_admin_set_ready(bool ready);
/* Serve snap's configuration from now on (a reload). */
void rp_admin_set_snapshot(rp_snapshot_t *snap);
/* /ready answers 503 "draining" from now on (graceful shutdown). */
void rp_admin_set_draining(void);
/* Close every admin connection and the listener. */
void rp_admin_stop(void);

/* Renderers: the figures of revproxy/metrics.h and the backend state
 * table, for the configured routes, upstreams and listeners of snap.
 * 0, or -1 when memory ran out (out then holds part of it). */
int rp_expo_prometheus(struct evbuffer *out, const rp_snapshot_t *snap, uint64_t start_unix_ms);
int rp_expo_stats(struct evbuffer *out, const rp_snapshot_t *snap, uint64_t start_unix_ms);
int rp_expo_config(struct evbuffer *out, const rp_snapshot_t *snap);

#endif
