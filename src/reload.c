/* SPDX-License-Identifier: MIT */
/*
 * In-process reload (reload.h).
 *
 * The new snapshot is built completely (every module's configure, TLS
 * contexts) and checked against the one in force before anything
 * changes (listeners it adds are bound for every worker).  Then the main
 * thread's module work (active health checks) moves to it, and each
 * worker is handed a reference over its pipe, to switch at a safe point of
 * its own loop.  Host names the new snapshot adds are resolved before it
 * is published (up to RELOAD_RESOLVE_MS; the main thread's loop goes on
 * meanwhile, and the reload ends from an event).  Transactions keep the
 * snapshot they
 * started with; the old snapshot is freed when its last user drops it, on
 * whichever thread that is.  State keyed by identity (backend health and
 * pools, queues, retry budgets, counters, TLS ticket keys) is not part of
 * a snapshot and carries over.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "admin.h"
#include "diff.h"
#include "notify.h"
#include "failmalloc.h"
#include "reload.h"
#include "resolve.h"
#include "worker.h"
#include "util.h"
#include "io.h"

/* How long a reload waits for the host names it adds. */
#define RELOAD_RESOLVE_MS 2000u

static struct {
    void             (*applied)(const rp_snapshot_t *);
    struct event_base *base;
    const char        *path;
    rp_snapshot_t     *cur;     /* ref */
    unsigned           generation;
    rp_reload_stats_t  stats;
    struct {                          /* a reload waiting for its new host names */
        rp_snapshot_t     *next;      /* ref; NULL: none */
        int               *fds;
        rp_reload_done_fn *done;
        void              *arg;
        struct event      *resolved;  /* the resolver activates it */
        struct event      *deadline;
    } pend;
    bool               again;     /* a SIGHUP came while a reload waited */
    struct event      *restart;   /* main-thread module work failed to start: again */
} R = { .stats = { .last_ok = true } };

/* The modules' main-thread work (active health checks) of the
 * configuration in force did not start (out of memory): tried again each
 * second until it does, rather than left off until the next reload. */
static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    rp_modules_main_stop(R.cur);   /* what did start, stopped */
    if (rp_modules_main_start(R.base, R.cur) < 0) {
        struct timeval tv = { 1, 0 };
        rp_event_add(R.restart, &tv);
    } else {
        rp_log(RP_LOG_INFO, NULL, "reload: the modules' main-thread work started");
    }
}

void
rp_reload_init(struct event_base *base, const char *path, rp_snapshot_t *snap,
               void (*applied)(const rp_snapshot_t *))
{
    R.applied = applied;
    R.base = base;
    R.path = path;
    R.cur = rp_snapshot_ref(snap);
    snap->generation = ++R.generation;
    R.restart = evtimer_new(base, restart_cb, NULL);
}

rp_snapshot_t *
rp_reload_current(void)
{
    return R.cur;
}

void
rp_reload_stats(rp_reload_stats_t *out)
{
    *out = R.stats;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

void
rp_reload_compatible(const rp_snapshot_t *old, const rp_snapshot_t *nw, rp_errs_t *errs)
{
    if (old->workers != nw->workers)
        rp_errs_add(errs, "workers", "%u workers run; a reload cannot change that to %u "
                    "(restart revproxy)", old->workers, nw->workers);
    if (old->admin.enabled != nw->admin.enabled
        || (old->admin.enabled && strcmp(old->admin.addr.text, nw->admin.addr.text) != 0))
        rp_errs_add(errs, "admin.address", "a reload cannot open, close or move the admin port "
                    "(its token may change); restart revproxy");
    if (old->access_log_off != nw->access_log_off || !same_str(old->access_log, nw->access_log))
        rp_errs_add(errs, "log.access_log", "a reload cannot change where access lines go; "
                    "restart revproxy");
}

static uint64_t
unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
failed(rp_errs_t *errs, rp_snapshot_t *next)
{
    rp_snapshot_unref(next);
    R.stats.failure++;
    R.stats.last_ok = false;
    for (size_t i = 0; i < errs->count; i++)
        rp_log(RP_LOG_ERROR, NULL, "reload: %s", errs->msgs[i]);
    rp_log(RP_LOG_ERROR, NULL, "reload failed (%zu error%s): generation %u stays in force",
           errs->count, errs->count == 1 ? "" : "s", R.cur->generation);
    char st[160];
    snprintf(st, sizeof st, "READY=1\nSTATUS=reload failed; generation %u in force",
             R.cur->generation);
    rp_notify(st);
    return -1;
}

/* At most this many lines say what a reload changed. */
#define CHANGES_LOGGED 100

/* What the reload from old to nw changes, a line each ("reload changes
 * PATH: OLD -> NEW", "reload adds PATH = VALUE", "reload removes PATH"):
 * the lines --diff-against prints, plus certificate files renewed in
 * place, which only the running process can tell. */
static void
log_changes(const rp_snapshot_t *old, const rp_snapshot_t *nw)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    size_t n = mem != NULL ? rp_config_diff(mem, old, nw) : 0;
    if (mem == NULL || fclose(mem) != 0) {
        free(text);
        rp_log(RP_LOG_WARN, NULL, "reload: out of memory listing what changed");
        return;
    }
    size_t shown = 0;
    for (char *line = text, *nl; line != NULL && *line != '\0'; line = nl) {
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl++ = '\0';
        if (shown == CHANGES_LOGGED)
            break;
        const char *verb = line[0] == '+' ? "adds" : line[0] == '-' ? "removes" : "changes";
        rp_log(RP_LOG_INFO, NULL, "reload %s %s", verb, line[0] != '\0' ? line + 2 : line);
        shown++;
    }
    if (n > shown)
        rp_log(RP_LOG_INFO, NULL, "reload: %zu more changes not listed (revproxy --check "
               "--diff-against lists them all)", n - shown);
    else if (n == 0)
        rp_log(RP_LOG_INFO, NULL, "reload: the configuration is unchanged");
    free(text);
}

/* Switch to next (its listeners bound in fds): nothing can fail from
 * here on. */
static void
publish(rp_snapshot_t *next, int *fds)
{
    rp_modules_main_stop(R.cur);
    if (R.restart != NULL)
        evtimer_del(R.restart);
    if (rp_modules_main_start(R.base, next) < 0) {
        rp_log(RP_LOG_ERROR, NULL, "reload: a module's main-thread work did not start (see "
               "above); trying again each second");
        struct timeval tv = { 1, 0 };
        if (R.restart != NULL)
            rp_event_add(R.restart, &tv);
    }
    next->generation = ++R.generation;
    rp_workers_publish_with(next, fds);
    if (R.applied != NULL)
        R.applied(next);   /* limits the process applies itself */
    rp_admin_set_snapshot(next);
    rp_log_level = next->log_level;
    rp_log_set_text(next->log_text);
    if (rp_log_level >= RP_LOG_INFO)
        log_changes(R.cur, next);
    rp_snapshot_t *old = R.cur;
    R.cur = next;
    rp_snapshot_unref(old);
    R.stats.success++;
    R.stats.last_ok = true;
    rp_log(RP_LOG_INFO, NULL, "configuration reloaded: generation %u (sha256 %s)",
           next->generation, next->sha256);
    char st[160];
    snprintf(st, sizeof st, "READY=1\nSTATUS=generation %u in force", next->generation);
    rp_notify(st);
}

/* The reload waiting for its new host names ends: published, or dropped
 * (rc -1 and why) when revproxy stops first. */
static void
pending_end(int rc, const char *why)
{
    rp_resolver_forget_notify();
    event_free(R.pend.resolved);
    event_free(R.pend.deadline);
    rp_snapshot_t *next = R.pend.next;
    int *fds = R.pend.fds;
    rp_reload_done_fn *done = R.pend.done;
    void *arg = R.pend.arg;
    memset(&R.pend, 0, sizeof R.pend);
    rp_errs_t errs = { 0 };
    if (rc == 0) {
        publish(next, fds);
    } else {
        /* Dropped, not failed: the file was good; nothing is counted. */
        rp_workers_unbind(next, fds);
        rp_snapshot_unref(next);
        rp_errs_add(&errs, "", "%s", why);
        rp_log(RP_LOG_WARN, NULL, "%s", why);
        char st[160];
        snprintf(st, sizeof st, "READY=1\nSTATUS=generation %u in force", R.cur->generation);
        rp_notify(st);
    }
    if (done != NULL)
        done(rc, &errs, arg);
    rp_errs_free(&errs);
    if (rc == 0 && R.again) {
        /* A SIGHUP came while this one waited: the file may have changed
         * since it was read. */
        R.again = false;
        rp_errs_t e2 = { 0 };
        rp_reload("SIGHUP received while a reload waited", &e2, NULL, NULL);
        rp_errs_free(&e2);
    }
}

static void
resolved_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pending_end(0, NULL);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    rp_log(RP_LOG_WARN, NULL, "reload: host names not all resolved within %u ms; publishing, "
           "their backends join as they resolve", RELOAD_RESOLVE_MS);
    pending_end(0, NULL);
}

static int
reload_run(const char *why, rp_errs_t *errs, rp_reload_done_fn *done, void *arg)
{
    if (R.pend.next != NULL) {
        rp_errs_add(errs, "", "a reload is already under way (resolving the host names it adds)");
        if (done == NULL) {
            /* A signal: reload again once that one is in force. */
            R.again = true;
            rp_log(RP_LOG_INFO, NULL, "%s: a reload is under way; reloading again once it ends",
                   why);
        } else {
            rp_log(RP_LOG_WARN, NULL, "%s: a reload is already under way; not reloading again",
                   why);
        }
        return -1;
    }
    R.stats.last_unix_ms = unix_ms();
    rp_notify("RELOADING=1");
    rp_log(RP_LOG_INFO, NULL, "%s: reloading %s", why, R.path);
    rp_snapshot_t *next = NULL;
    if (rp_snapshot_load(R.path, &next, errs) < 0)
        return failed(errs, NULL);
    rp_reload_compatible(R.cur, next, errs);
    if (errs->total > 0)
        return failed(errs, next);
    /* Listeners it adds are bound (for every worker) before anything
     * changes. */
    int *fds = rp_workers_bind_new(R.cur, next, errs);
    if (fds == NULL)
        return failed(errs, next);
    for (size_t i = 0; i < next->warnings.count; i++)
        rp_log(RP_LOG_WARN, NULL, "%s", next->warnings.msgs[i]);
    /* Host names it adds get their first answer before it is published:
     * the main thread's loop goes on meanwhile (signals, the admin port,
     * active checks), for RELOAD_RESOLVE_MS at most. */
    struct event *resolved = event_new(R.base, -1, 0, resolved_cb, NULL);
    struct event *deadline = evtimer_new(R.base, deadline_cb, NULL);
    int names = resolved != NULL && deadline != NULL ? rp_resolver_update(next, resolved)
                                                     : RP_RESOLVE_NOMEM;
    if (names == RP_RESOLVE_NOMEM) {
        /* Nothing changed yet: the reload is refused as a whole. */
        if (resolved != NULL)
            event_free(resolved);
        if (deadline != NULL)
            event_free(deadline);
        rp_workers_unbind(next, fds);
        rp_errs_add(errs, "", "out of memory preparing the host-name backends");
        return failed(errs, next);
    }
    if (names != 1) {
        rp_resolver_forget_notify();
        if (resolved != NULL)
            event_free(resolved);
        if (deadline != NULL)
            event_free(deadline);
        if (names < 0)
            rp_log(RP_LOG_ERROR, NULL, "reload: host-name backends will not resolve (see above)");
        publish(next, fds);
        return 0;
    }
    struct timeval tv = { RELOAD_RESOLVE_MS / 1000, (RELOAD_RESOLVE_MS % 1000) * 1000 };
    if (evtimer_add(deadline, &tv) < 0) {
        /* Cannot wait: published now. */
        rp_resolver_forget_notify();
        event_free(resolved);
        event_free(deadline);
        publish(next, fds);
        return 0;
    }
    R.pend.next = next;
    R.pend.fds = fds;
    R.pend.done = done;
    R.pend.arg = arg;
    R.pend.resolved = resolved;
    R.pend.deadline = deadline;
    return 1;
}

int
rp_reload(const char *why, rp_errs_t *errs, rp_reload_done_fn *done, void *arg)
{
    /* Allocation failures injected into a reload (tests) hit this part. */
    rp_fm_reload_scope(true);
    int rc = reload_run(why, errs, done, arg);
    rp_fm_reload_scope(false);
    return rc;
}

void
rp_reload_cancel(const char *why)
{
    R.again = false;
    if (R.pend.next != NULL)
        pending_end(-1, why);
}

void
rp_reload_forget(void *arg)
{
    if (R.pend.next != NULL && R.pend.arg == arg)
        R.pend.done = NULL;
}

void
rp_reload_stop(void)
{
    rp_reload_cancel("revproxy is stopping");
    if (R.restart != NULL) {
        event_free(R.restart);
        R.restart = NULL;
    }
    rp_snapshot_unref(R.cur);
    R.cur = NULL;
}
