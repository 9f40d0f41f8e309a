/* SPDX-License-Identifier: MIT */
/*
 * The log queue bound: stderr is a pipe the test reads only when it wants
 * to, so the writer thread blocks in the middle of a batch.  Lines queued
 * while it is blocked, added to the batch it holds, must never exceed the
 * bound; what does not fit is dropped, counted and reported, and every line
 * that was accepted is written once the pipe is read again.
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "revproxy/log.h"

#define MARK "queue-bound-test"

static char msg[1001];
static int rd = -1;          /* read end of the pipe that is stderr */
static int saved_stderr = -1;

static void
log_one(void)
{
    rp_log(RP_LOG_WARN, NULL, "%s %s", MARK, msg);
}

/* Everything read from the pipe since the writer started. */
static struct {
    char  *buf;
    size_t len, cap;
} out;

static char *
out_room(size_t want)
{
    if (out.cap - out.len < want + 1) {
        out.cap = out.cap * 2 + want + 1;
        out.buf = realloc(out.buf, out.cap);
        if (out.buf == NULL)
            abort();
    }
    return out.buf + out.len;
}

/* Read exactly n bytes from the pipe (each read waits at most 5 s). */
static void
read_n(size_t n)
{
    while (n > 0) {
        struct pollfd p = { .fd = rd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        size_t want = n < 65536 ? n : 65536;
        ssize_t r = read(rd, out_room(want), want);
        ck_assert_int_gt(r, 0);
        out.len += (size_t)r;
        n -= (size_t)r;
    }
}

/* Submit lines until one is dropped; returns how many were queued. */
static size_t
submit_until_drop(size_t max)
{
    size_t queued = 0;
    for (size_t i = 0; i < max; i++) {
        unsigned long before = rp_log_dropped();
        log_one();
        if (rp_log_dropped() != before)
            return queued;
        queued++;
    }
    ck_abort_msg("no line dropped after %zu lines", max);
    return queued;
}

/* Read until end of file (the last write end is closed). */
static void *
drain_main(void *arg)
{
    (void)arg;
    for (;;) {
        ssize_t r = read(rd, out_room(65536), 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        out.len += (size_t)r;
    }
    return NULL;
}

START_TEST(test_queue_bound_counts_in_flight_lines)
{
    const size_t max = RP_LOG_QUEUE_MAX_BYTES;
    memset(msg, 'x', sizeof msg - 1);

    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    int pipe_size = fcntl(p[1], F_SETPIPE_SZ, 4096);
    ck_assert_int_gt(pipe_size, 0);
    rd = p[0];
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);

    /* Before the writer starts, a line is written directly: its size is
     * the size of every line below (the timestamp has a fixed width). */
    rp_log_level = RP_LOG_INFO;
    log_one();
    int n = 0;
    ck_assert_int_eq(ioctl(rd, FIONREAD, &n), 0);
    ck_assert_int_gt(n, (int)sizeof msg);
    const size_t line = (size_t)n;
    read_n(line);
    out.len = 0;

    /* Fill the pipe: the writer blocks on the first lines it takes. */
    char *filler = malloc((size_t)pipe_size);
    ck_assert_ptr_nonnull(filler);
    memset(filler, '#', (size_t)pipe_size - 1);
    filler[pipe_size - 1] = '\n';
    ck_assert_int_eq(write(STDERR_FILENO, filler, (size_t)pipe_size), pipe_size);
    free(filler);

    ck_assert_int_eq(rp_log_start(NULL, false), 0);
    unsigned long dropped0 = rp_log_dropped();
    const size_t guard = 3 * max / line;

    /* Nobody reads: the queue fills up behind the blocked writer until
     * lines are dropped. */
    size_t queued = submit_until_drop(guard);
    size_t submitted = queued + 1;
    size_t peak = rp_log_queue_peak();
    ck_assert_uint_le(peak, max);
    ck_assert_uint_gt(peak, max - 2 * line);

    /* Read 1 MiB: the writer finishes the few lines it held, takes all
     * that was queued as its next batch, and blocks again on the pipe
     * after writing about 1 MiB of it. */
    const size_t taken = 1u << 20;
    read_n(taken);

    /* The batch the writer holds is still counted: only what it wrote made
     * room.  Counting it as gone would let about another 8 MiB in. */
    size_t more = submit_until_drop(guard);
    queued += more;
    submitted += more + 1;
    /* Written so far: at most what was read plus what fills the pipe. */
    size_t written_max = taken + (size_t)pipe_size;
    ck_assert_msg(queued * line <= max + written_max,
                  "%zu bytes of lines accepted but at most %zu written: %zu held, bound %zu",
                  queued * line, written_max, queued * line - written_max, max);
    ck_assert_uint_le(rp_log_queue_peak(), max);
    unsigned long dropped = rp_log_dropped() - dropped0;
    ck_assert_uint_ge(dropped, 2);
    ck_assert_uint_eq(dropped, submitted - queued);

    /* Read everything; stop the writer (it writes what is left first). */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, drain_main, NULL), 0);
    rp_log_stop();
    ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    pthread_join(t, NULL);
    close(rd);
    *out_room(0) = '\0';

    /* Every accepted line came out whole, and the drops were reported with
     * their total. */
    size_t lines = 0;
    unsigned long reported_total = 0;
    for (char *s = out.buf, *e; *s != '\0'; s = e + 1) {
        e = strchr(s, '\n');
        ck_assert_ptr_nonnull(e);
        *e = '\0';
        if (strstr(s, MARK) != NULL) {
            ck_assert_uint_eq((size_t)(e - s) + 1, line);
            lines++;
        }
        const char *tot = strstr(s, "\"dropped_total\":");
        if (strstr(s, "log queue full: lines dropped") != NULL && tot != NULL) {
            unsigned long v = strtoul(tot + strlen("\"dropped_total\":"), NULL, 10);
            if (v > reported_total)
                reported_total = v;
        }
    }
    ck_assert_uint_eq(lines, queued);
    ck_assert_uint_eq(reported_total, rp_log_dropped());
    free(out.buf);
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("queue");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_queue_bound_counts_in_flight_lines);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
