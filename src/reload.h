/* SPDX-License-Identifier: MIT */
/*
 * In-process reload (reload.c): read, validate and compile a complete new
 * snapshot, check what a reload may change, then publish it to every
 * worker and the main thread's users.  Any failure leaves the snapshot in
 * force untouched.  Main thread only.
 */
#ifndef RP_RELOAD_H
#define RP_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "revproxy/config.h"

struct event_base;

/* The snapshot in force (the main thread's reference) and the file it
 * came from; set once at start. */
void rp_reload_init(struct event_base *base, const char *path, rp_snapshot_t *snap,
                    void (*applied)(const rp_snapshot_t *));
rp_snapshot_t *rp_reload_current(void);

/* Reload from the file.  0 on success; -1 with every error in errs
 * ("json.path: message") and the old snapshot still in force. */
int rp_reload(const char *why, rp_errs_t *errs);

/* Counts for the admin port. */
typedef struct rp_reload_stats {
    uint64_t success, failure;
    bool     last_ok;          /* the last reload succeeded (true before any) */
    uint64_t last_unix_ms;     /* when the last one was tried, 0: never */
} rp_reload_stats_t;
void rp_reload_stats(rp_reload_stats_t *out);

/* Drop the main thread's reference (at exit). */
void rp_reload_stop(void);

/* What a reload from old to new may not change: added to errs (workers,
 * admin.address, log.access_log).  Also --check --diff-against. */
void rp_reload_compatible(const rp_snapshot_t *old, const rp_snapshot_t *new_, rp_errs_t *errs);

#endif
