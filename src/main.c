/* SPDX-License-Identifier: MIT */
/*
 * revproxy: command line, start-up and the main thread's event loop.  The
 * main thread owns signals and the config; workers own traffic.
 *
 * Exit status: 0 success, 64 usage error, 78 configuration error, 1 any
 * other failure.
 */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <wslay/wslayver.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/module.h"
#include "admin.h"
#include "diff.h"
#include "notify.h"
#include "reload.h"
#include "resolve.h"
#include "revproxy/upstream.h"
#include "proxy.h"
#include "accept.h"
#include "worker.h"
#include "mem.h"
#include "util.h"
#include "io.h"

#define EXIT_USAGE 64
#define EXIT_CONFIG 78
#define DEFAULT_CONFIG "/etc/revproxy.json"

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: revproxy [-c FILE] [-t | -T] [-V] [--build-info] [-h]\n"
        "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
        "  -t, --check         validate the configuration and exit (0 valid, 78 invalid)\n"
        "  -T, --dump-config   print the effective configuration, defaults filled in\n"
        "      --diff-against CURRENT\n"
        "                      with -t: print what a reload from CURRENT to the\n"
        "                      configuration would change (exit 1 when a reload\n"
        "                      cannot apply it and a restart is needed)\n"
        "  -V, --version       print the version and exit\n"
        "      --build-info    print the versions of the libraries built in\n"
        "  -h, --help          print this help and exit\n");
}

static void
build_info(void)
{
    const nghttp2_info *ng = nghttp2_version(0);
    printf("revproxy %s\n", PACKAGE_VERSION);
    printf("libevent %s\n", event_get_version());
    printf("openssl %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("nghttp2 %s\n", ng->version_str);
    printf("jansson %s\n", jansson_version_str());
    printf("wslay %s\n", WSLAY_VERSION);
    printf("llhttp %d.%d.%d (strict mode)\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
           LLHTTP_VERSION_PATCH);
}

static void
print_errors(const char *path, const rp_errs_t *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "revproxy: %s: %s\n", path, errs->msgs[i]);
    fprintf(stderr, "revproxy: configuration %s is invalid (%zu error%s)\n", path,
            errs->count, errs->count == 1 ? "" : "s");
}

/*
 * Descriptor budget: what the configuration may hold open at once.
 *   2 x limits.max_connections (a client and an upstream descriptor each)
 * + workers x sum over upstreams of pool.max_idle_per_backend x backends
 *   (idle pooled upstream connections, kept per worker and per backend)
 * + 64 + workers x listeners (listening sockets, event bases, pipes, logs).
 * The soft RLIMIT_NOFILE is raised to it (up to the hard limit); when it
 * still does not fit, the connection cap is lowered so that descriptors
 * never run out mid-request, and a warning names the keys involved.
 * --check does the same (the limit is the process's own) and prints the
 * warning on stderr.
 */
/* Backends an upstream's idle pools are budgeted for: a host name
 * counts the addresses it resolved to at start (at least one). */
static size_t
budget_backends(const rp_upstream_t *u)
{
    size_t n = 0;
    for (size_t k = 0; k < u->nbackends; k++) {
        if (u->backends[k].name == NULL) {
            n++;
        } else {
            unsigned r = rp_name_count(u->backends[k].rname);
            n += r ? r : 1;
        }
    }
    return n;
}

static void
fd_budget(const rp_snapshot_t *s, bool check)
{
    rlim_t idle = 0;
    for (size_t i = 0; i < s->nupstreams; i++)
        idle += (rlim_t)s->upstreams[i].max_idle_per_backend * budget_backends(&s->upstreams[i]);
    idle *= s->workers;
    rlim_t admin = s->admin.enabled ? RP_ADMIN_MAX_CONNS + 1 : 0;
    rlim_t reserve = 64 + (rlim_t)s->workers * (rlim_t)s->nlisteners + admin;
    rlim_t want = (rlim_t)s->limits.max_connections * 2 + idle + reserve;
    rp_max_conns = s->limits.max_connections;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < want) {
        rlim_t cur = want;
        if (rl.rlim_max != RLIM_INFINITY && cur > rl.rlim_max)
            cur = rl.rlim_max;
        rl.rlim_cur = cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur >= want)
        return;

    /* Idle pools and the reserve are fixed; what is left, two descriptors
     * per connection. */
    rlim_t fixed = idle + reserve;
    rlim_t fit = rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / 2 : 0;
    unsigned cap = fit > 0 ? (unsigned)fit : 1;
    rp_max_conns = cap;

    char pools[640];
    size_t pos = 0, shown = 0, more = 0;
    pools[0] = '\0';
    for (size_t i = 0; i < s->nupstreams; i++) {
        const rp_upstream_t *u = &s->upstreams[i];
        size_t nb = budget_backends(u);
        if (u->max_idle_per_backend == 0 || nb == 0)
            continue;
        if (shown == 4) {
            more++;
            continue;
        }
        int n = snprintf(pools + pos, sizeof pools - pos,
                         "%supstreams.%.64s.pool.max_idle_per_backend %u x %zu backend%s",
                         shown > 0 ? " + " : "", u->name, u->max_idle_per_backend,
                         nb, nb == 1 ? "" : "s");
        if (n < 0 || (size_t)n >= sizeof pools - pos) {
            pools[pos] = '\0';
            more++;
            continue;
        }
        pos += (size_t)n;
        shown++;
    }
    if (more > 0 && pos < sizeof pools)
        snprintf(pools + pos, sizeof pools - pos, " + %zu more upstream%s", more,
                 more == 1 ? "" : "s");

    char msg[1400];
    snprintf(msg, sizeof msg,
             "file descriptor limit %llu is too low for limits.max_connections %u; "
             "accepting at most %u connection%s (needs %llu = 2 x limits.max_connections %u"
             " + %llu idle pooled upstream connections [workers %u x (%s)]"
             " + %llu reserved [64 + workers x listeners%s])%s",
             (unsigned long long)rl.rlim_cur, s->limits.max_connections, cap,
             cap == 1 ? "" : "s", (unsigned long long)want, s->limits.max_connections,
             (unsigned long long)idle, s->workers, shown > 0 ? pools : "no pools",
             (unsigned long long)reserve, admin > 0 ? " + 17 for the admin port" : "",
             fit == 0 ? "; the idle pools and the reserve leave no room for connections: lower "
                        "upstreams.NAME.pool.max_idle_per_backend or workers" : "");
    if (check)
        fprintf(stderr, "revproxy: warning: %s\n", msg);
    else
        rp_log(RP_LOG_WARN, NULL, "%s", msg);
}

/* A reload took effect: the connection cap and descriptor budget follow
 * the new limits. */
static void
reload_applied(const rp_snapshot_t *s)
{
    fd_budget(s, false);
}

/* Graceful shutdown: the main loop ends when every worker has drained,
 * or when timeouts.shutdown_drain_ms has passed, or on a second signal. */
static struct {
    struct event_base *base;
    struct event      *check;      /* polls the workers */
    struct event      *deadline;
    bool               draining;
    bool               expired;    /* the deadline ended it */
    uint64_t           since_us;
    unsigned           drain_ms;
} drain;

static void
drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (rp_workers_drained()) {
        rp_log(RP_LOG_INFO, NULL, "drained in %llu ms: every connection closed",
               (unsigned long long)((rp_now_us() - drain.since_us) / 1000));
        event_base_loopexit(drain.base, NULL);
    }
}

static void
drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    drain.expired = true;
    event_base_loopexit(drain.base, NULL);
}

static void
stop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    if ((int)sig == SIGQUIT || drain.draining
        || rp_reload_current()->timeouts.shutdown_drain_ms == 0) {
        rp_log(RP_LOG_INFO, NULL, "received %s%s: stopping now", strsignal((int)sig),
               drain.draining ? " again" : "");
        event_base_loopexit(arg, NULL);
        return;
    }
    /* A reload still waiting for host names is dropped: the drain uses
     * the configuration in force. */
    rp_reload_cancel("revproxy is draining: the reload under way is dropped");
    drain.draining = true;
    drain.since_us = rp_now_us();
    drain.drain_ms = rp_reload_current()->timeouts.shutdown_drain_ms;   /* as reloaded */
    rp_log(RP_LOG_INFO, NULL, "received %s: draining (at most timeouts.shutdown_drain_ms %u ms)",
           strsignal((int)sig), drain.drain_ms);
    rp_notify("STOPPING=1");
    rp_admin_set_draining();
    rp_workers_drain();
    drain.check = event_new(drain.base, -1, EV_PERSIST, drain_check_cb, NULL);
    drain.deadline = evtimer_new(drain.base, drain_deadline_cb, NULL);
    struct timeval every = { 0, 20000 };
    struct timeval dl = { drain.drain_ms / 1000, (drain.drain_ms % 1000) * 1000 };
    if (drain.check == NULL || drain.deadline == NULL) {
        event_base_loopexit(arg, NULL);   /* cannot wait: stop now */
        return;
    }
    rp_event_add(drain.check, &every);
    rp_event_add(drain.deadline, &dl);
}

static void
hup_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (drain.draining) {
        rp_log(RP_LOG_WARN, NULL, "received %s while draining: no reload", strsignal((int)sig));
        return;
    }
    char why[64];
    snprintf(why, sizeof why, "received %s", strsignal((int)sig));
    rp_errs_t errs = { 0 };
    rp_reload(why, &errs, NULL, NULL);
    rp_errs_free(&errs);
}

static void
usr1_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    rp_log(RP_LOG_INFO, NULL, "received %s: reopening the access log", strsignal((int)sig));
    rp_log_reopen();
}

/* Failed TLS handshakes are logged one by one at debug only: their
 * counts by reason, once, when revproxy stops. */
static void
log_tls_failures(void)
{
    rp_tls_fail_count_t f[RP_TLS_FAIL_SLOTS + 1];
    size_t n = rp_tls_failures(f, RP_TLS_FAIL_SLOTS + 1);
    if (n > RP_TLS_FAIL_SLOTS + 1)
        n = RP_TLS_FAIL_SLOTS + 1;
    if (n == 0)
        return;
    char buf[1024];
    size_t pos = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n && pos < sizeof buf - 64; i++) {
        int w = snprintf(buf + pos, sizeof buf - pos, "%s\"%s\":%llu", i ? "," : "",
                         f[i].reason, (unsigned long long)f[i].count);
        if (w > 0)
            pos += (size_t)w;
        total += f[i].count;
    }
    char extra[1100];
    snprintf(extra, sizeof extra, "\"tls_handshake_failures\":{%s}", buf);
    rp_log_fields(RP_LOG_INFO, NULL, extra, "%llu TLS handshakes failed", (unsigned long long)total);
}

/* --check: backends given by host name are resolved once; one that does
 * not resolve now is a warning (a DNS blip at boot must not stop the
 * service), and the configuration stays valid. */
static void
check_names(const rp_snapshot_t *snap)
{
    for (size_t i = 0; i < snap->nupstreams; i++) {
        const rp_upstream_t *u = &snap->upstreams[i];
        for (size_t k = 0; k < u->nbackends; k++) {
            const rp_backend_t *be = &u->backends[k];
            if (be->name == NULL)
                continue;
            rp_addr_t a[RP_NAME_ADDRS];
            const char *err = NULL;
            const char *colon = strrchr(be->addr.text, ':');
            unsigned port = colon != NULL ? (unsigned)atoi(colon + 1) : 0;
            if (rp_resolve(be->name, port, a, RP_NAME_ADDRS, &err) == 0)
                fprintf(stderr, "revproxy: warning: upstreams.%s.backends[%zu].address: %s "
                        "does not resolve now (%s); it takes no traffic until it does\n",
                        u->name, k, be->addr.text, err);
        }
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 't' },
        { "dump-config", no_argument, NULL, 'T' },
        { "diff-against", required_argument, NULL, 'D' },
        { "version", no_argument, NULL, 'V' },
        { "build-info", no_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    /* Before libevent allocates anything. */
    rp_mem_install();
    rp_json_alloc_install();
    struct timespec started;
    clock_gettime(CLOCK_REALTIME, &started);
    uint64_t start_unix_ms = (uint64_t)started.tv_sec * 1000u + (uint64_t)started.tv_nsec / 1000000u;
    const char *path = DEFAULT_CONFIG;
    bool check = false, dump = false;
    const char *against = NULL;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "c:tTVh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'D':
            against = optarg;
            break;
        case 'T':
            dump = true;
            break;
        case 'B':
            build_info();
            return 0;
        case 'V':
            printf("revproxy %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            if (optopt != 0 && optopt != '?')
                fprintf(stderr, "revproxy: option -%c needs an argument or is unknown\n", optopt);
            else
                fprintf(stderr, "revproxy: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "revproxy: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    rp_errs_t errs = { 0 };
    rp_snapshot_t *snap = NULL;
    if (rp_snapshot_load(path, &snap, &errs) < 0) {
        print_errors(path, &errs);
        rp_errs_free(&errs);
        return EXIT_CONFIG;
    }
    if (dump) {
        json_t *eff = rp_snapshot_dump(snap);
        json_dumpf(eff, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(eff);
        rp_snapshot_unref(snap);
        return 0;
    }
    if (against != NULL && !check) {
        fprintf(stderr, "revproxy: --diff-against goes with --check\n");
        usage(stderr);
        rp_snapshot_unref(snap);
        return EXIT_USAGE;
    }
    if (against != NULL) {
        rp_snapshot_t *cur = NULL;
        if (rp_snapshot_load(against, &cur, &errs) < 0) {
            fprintf(stderr, "revproxy: %s (the configuration to compare with) is invalid:\n",
                    against);
            print_errors(against, &errs);
            rp_errs_free(&errs);
            rp_snapshot_unref(snap);
            return EXIT_CONFIG;
        }
        /* The warnings --check alone would print, too. */
        for (size_t i = 0; i < snap->warnings.count; i++)
            fprintf(stderr, "revproxy: warning: %s\n", snap->warnings.msgs[i]);
        check_names(snap);
        fd_budget(snap, true);
        size_t n = rp_config_diff(stdout, cur, snap);
        rp_reload_compatible(cur, snap, &errs);
        rp_snapshot_unref(cur);
        int rc = 0;
        if (errs.total > 0) {
            printf("revproxy: a reload from %s cannot apply %s; restart revproxy for it:\n",
                   against, path);
            for (size_t i = 0; i < errs.count; i++)
                printf("  %s\n", errs.msgs[i]);
            rc = 1;
        } else {
            printf("revproxy: %s is valid; a reload from %s applies %zu change%s\n", path, against,
                   n, n == 1 ? "" : "s");
        }
        rp_errs_free(&errs);
        rp_snapshot_unref(snap);
        return rc;
    }
    if (check) {
        for (size_t i = 0; i < snap->warnings.count; i++)
            fprintf(stderr, "revproxy: warning: %s\n", snap->warnings.msgs[i]);
        check_names(snap);
        fd_budget(snap, true);
        printf("revproxy: configuration %s is valid\n", path);
        rp_snapshot_unref(snap);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    rp_log_level = snap->log_level;
    rp_log_set_text(snap->log_text);
    if (rp_log_start(snap->access_log, snap->access_log_off) < 0) {
        rp_log(RP_LOG_ERROR, NULL, "cannot open access log %s: %s", snap->access_log,
               strerror(errno));
        rp_snapshot_unref(snap);
        return 1;
    }
    if (evthread_use_pthreads() < 0) {
        rp_log(RP_LOG_ERROR, NULL, "libevent: no thread support");
        rp_log_stop();
        return 1;
    }
    rp_proxy_init();
    for (size_t i = 0; i < snap->warnings.count; i++)
        rp_log(RP_LOG_WARN, NULL, "%s", snap->warnings.msgs[i]);

    struct event_base *base = event_base_new();
    if (base == NULL) {
        rp_log(RP_LOG_ERROR, NULL, "cannot create the main event base");
        rp_log_stop();
        return 1;
    }
    /* Signals are caught before the workers exist, so no thread ever dies
     * of a stray HUP. */
    struct event *sigs[5] = {
        evsignal_new(base, SIGINT, stop_signal_cb, base),
        evsignal_new(base, SIGTERM, stop_signal_cb, base),
        evsignal_new(base, SIGQUIT, stop_signal_cb, base),
        evsignal_new(base, SIGHUP, hup_signal_cb, base),
        evsignal_new(base, SIGUSR1, usr1_signal_cb, base),
    };
    for (size_t i = 0; i < RP_ARRAY_LEN(sigs); i++)
        evsignal_add(sigs[i], NULL);

    /* Host names get their first answer before traffic is served. */
    int names = rp_resolver_update(snap, NULL);
    if (names == 1 && !rp_resolver_wait(5000))
        rp_log(RP_LOG_WARN, NULL, "host names not all resolved within 5000 ms; serving, their "
               "backends join as they resolve");
    bool resolving = names >= 0;
    if (resolving)
        fd_budget(snap, false);
    bool admin_up = resolving && rp_admin_start(base, snap, start_unix_ms) == 0;
    bool workers_up = admin_up && rp_workers_start(snap) == 0;
    bool main_up = workers_up && rp_modules_main_start(base, snap) == 0;
    if (!main_up) {
        if (workers_up)
            rp_workers_stop();
        rp_admin_stop();
        rp_resolver_stop();
        for (size_t i = 0; i < RP_ARRAY_LEN(sigs); i++)
            event_free(sigs[i]);
        event_base_free(base);
        rp_snapshot_unref(snap);
        rp_log_stop();
        return 1;
    }
    for (size_t i = 0; i < snap->nlisteners; i++)
        rp_log(RP_LOG_INFO, NULL, "listening on %s (%u workers)", snap->listeners[i].addr.text,
               snap->workers);
    char ready[128];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=listening on %zu address%s\nMAINPID=%ld",
             snap->nlisteners, snap->nlisteners == 1 ? "" : "es", (long)getpid());
    if (rp_notify(ready) < 0)
        rp_log(RP_LOG_WARN, NULL, "notifying the service manager: %s", strerror(errno));
    rp_reload_init(base, path, snap, reload_applied);
    rp_admin_set_ready(true);
    drain.base = base;
    drain.drain_ms = snap->timeouts.shutdown_drain_ms;
    /* From here the reload module holds the configuration in force: this
     * first one is freed once a reload replaces it and its users end. */
    rp_snapshot_unref(snap);
    snap = NULL;
    event_base_dispatch(base);
    rp_admin_set_ready(false);
    rp_reload_cancel("revproxy is stopping: the reload under way is dropped");

    if (!drain.draining)
        rp_notify("STOPPING=1");
    rp_modules_main_stop(rp_reload_current());
    rp_admin_stop();
    unsigned cut = rp_workers_stop();
    if (drain.expired)
        rp_log(RP_LOG_WARN, NULL, "timeouts.shutdown_drain_ms (%u ms) passed: %u request%s cut",
               drain.drain_ms, cut, cut == 1 ? "" : "s");
    else if (drain.draining && cut > 0)
        rp_log(RP_LOG_WARN, NULL, "stopped during the drain: %u request%s cut", cut,
               cut == 1 ? "" : "s");
    else if (cut > 0)
        rp_log(RP_LOG_WARN, NULL, "stopped with %u request%s in flight, cut", cut,
               cut == 1 ? "" : "s");
    if (drain.check != NULL)
        event_free(drain.check);
    if (drain.deadline != NULL)
        event_free(drain.deadline);
    /* Last: a lookup under way may take the resolver's timeout, and
     * traffic has stopped by now. */
    rp_resolver_stop();
    log_tls_failures();
    rp_log(RP_LOG_INFO, NULL, "stopped");
    for (size_t i = 0; i < RP_ARRAY_LEN(sigs); i++)
        event_free(sigs[i]);
    event_base_free(base);
    rp_reload_stop();
    rp_snapshot_unref(snap);
    rp_log_stop();
    libevent_global_shutdown();
    rp_mem_cache_free();
    return 0;
}
