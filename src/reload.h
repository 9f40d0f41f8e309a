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

/* How a reload that had to wait ended: rc 0 (in force) or -1 with errs. */
typedef void rp_reload_done_fn(int rc, const rp_errs_t *errs, void *arg);

/* Reload from the file.  0 when the new snapshot is in force; -1 with
 * every error in errs ("json.path: message") and the old snapshot still in
 * force (also while another reload is under way: with done NULL, a
 * signal's reload, it runs again once that one ends); 1 when it is built and
 * waits for the first answers of the host names it adds (at most 2 s,
 * the main loop running meanwhile): done(rc, errs, arg) is called when it
 * ends, unless forgotten. */
int rp_reload(const char *why, rp_errs_t *errs, rp_reload_done_fn *done, void *arg);
/* Drop a waiting reload (revproxy stops): done is called with -1 and why;
 * not counted as a failed reload (the file was valid). */
void rp_reload_cancel(const char *why);
/* The waiting reload's done must not be called for arg (it went away). */
void rp_reload_forget(void *arg);

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
