/* SPDX-License-Identifier: MIT */
/*
 * The worker start handshake: rp_workers_start returns only once every
 * worker has run its modules' start hooks.  When one fails, start-up fails
 * with the module named, and nothing is left behind: no thread, no
 * descriptor, no listening socket.
 */
#include "config.h"
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/thread.h>
#include <jansson.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "io.h"
#include "worker.h"

static unsigned port;

static int
entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Threads of the process.  A joined thread may still be listed for a
 * moment while the kernel finishes its exit: wait up to a second for the
 * count expected. */
static int
threads(int expect)
{
    int n = entries("/proc/self/task");
    for (int i = 0; expect >= 0 && i < 1000 && n != expect; i++) {
        usleep(1000);
        n = entries("/proc/self/task");
    }
    return n;
}

static int
descriptors(void)
{
    return entries("/proc/self/fd");
}

/* A socket on the test port without SO_REUSEPORT: binding it fails while
 * any worker's listener is open. */
static int
port_free(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
    close(fd);
    return ok;
}

static rp_snapshot_t *
snapshot(unsigned workers)
{
    /* An ephemeral port nobody else holds. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    close(fd);

    char text[512];
    snprintf(text, sizeof text,
             "{\"workers\": %u, \"listeners\": [{\"address\": \"127.0.0.1:%u\"}],"
             " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:9\"}]}},"
             " \"routes\": [{\"path_prefix\": \"/\", \"upstream\": \"app\"}]}",
             workers, port);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(root);
    rp_snapshot_t *snap = NULL;
    rp_errs_t errs = { 0 };
    ck_assert_int_eq(rp_snapshot_build(root, &snap, &errs), 0);
    json_decref(root);
    rp_errs_free(&errs);
    return snap;
}

/* Log lines go straight to stderr while the log writer is not running:
 * send them to a file for the duration of fn. */
static char *
captured(int (*fn)(rp_snapshot_t *), rp_snapshot_t *snap, int *rc)
{
    char path[] = "/tmp/rp-test-worker-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    *rc = fn(snap);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    return text;
}

static void
setup(void)
{
    evthread_use_pthreads();
}

START_TEST(test_start_and_stop)
{
    rp_snapshot_t *snap = snapshot(2);
    int t0 = threads(-1), fd0 = descriptors();
    ck_assert_int_eq(rp_workers_start(snap), 0);
    ck_assert_int_eq(threads(t0 + 2), t0 + 2);
    ck_assert(!port_free());
    rp_workers_stop();
    ck_assert_int_eq(threads(t0), t0);
    ck_assert_int_eq(descriptors(), fd0);
    ck_assert(port_free());
    rp_snapshot_unref(snap);
}
END_TEST

START_TEST(test_module_start_failure_fails_start_up)
{
    /* The balancer's per-worker weights are sized when the snapshot is
     * built; a snapshot run with more workers than that cannot start the
     * balancer on the extra one. */
    rp_snapshot_t *snap = snapshot(2);
    snap->workers = 3;
    int t0 = threads(-1), fd0 = descriptors();
    int rc;
    char *log = captured(rp_workers_start, snap, &rc);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(log, "\"msg\":\"worker 2: module balancer failed to start\"") != NULL,
                  "%s", log);
    ck_assert_msg(strstr(log, "balancer: worker 2 has no weights of its own") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "start-up failed: 1 of 3 workers could not start their modules") != NULL,
                  "%s", log);
    ck_assert_msg(strstr(log, "\"level\":\"error\"") != NULL, "%s", log);
    free(log);
    /* The two workers that started were stopped and joined; every
     * listener and pipe is closed. */
    ck_assert_int_eq(threads(t0), t0);
    ck_assert_int_eq(descriptors(), fd0);
    ck_assert(port_free());

    /* Nothing of the failed attempt lingers: the right snapshot starts. */
    snap->workers = 2;
    ck_assert_int_eq(rp_workers_start(snap), 0);
    ck_assert_int_eq(threads(t0 + 2), t0 + 2);
    rp_workers_stop();
    ck_assert_int_eq(threads(t0), t0);
    rp_snapshot_unref(snap);
}
END_TEST

/* An event libevent cannot register (here epoll_ctl refuses a closed
 * descriptor; in service, no memory for its timer heap or descriptor map)
 * is reported and never fired in its stead (a callback re-arming its own
 * event would spin); errno is left as it was. */
static int fired;

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fired++;
}

START_TEST(test_event_add_failure_is_reported)
{
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    struct event *ok = event_new(base, sv[0], EV_READ, on_event, NULL);
    struct timeval tv = { 60, 0 };
    ck_assert_int_eq(rp_event_add(ok, &tv), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 1);   /* the peer's close: readable */
    event_free(ok);
    fired = 0;
    int fd = sv[0];
    close(fd);   /* registered afterwards: epoll_ctl fails (EBADF) */
    struct event *bad = event_new(base, fd, EV_READ | EV_PERSIST, on_event, NULL);
    errno = EINTR;
    ck_assert_int_lt(rp_event_add(bad, &tv), 0);
    ck_assert_int_eq(errno, EINTR);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 0);
    ck_assert(!event_pending(bad, EV_READ | EV_TIMEOUT, NULL));
    event_free(bad);
    event_base_free(base);
}
END_TEST

static Suite *
worker_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("start");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_start_and_stop);
    tcase_add_test(tc, test_module_start_failure_fails_start_up);
    suite_add_tcase(s, tc);
    TCase *ev = tcase_create("events");
    tcase_add_test(ev, test_event_add_failure_is_reported);
    suite_add_tcase(s, ev);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
