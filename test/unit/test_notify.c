/* SPDX-License-Identifier: MIT */
/*
 * rp_notify against a datagram socket of the test's own, as a service
 * manager would listen: a path socket and an abstract one.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "notify.h"

static int
listen_dgram(const char *name, int abstract)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sun.sun_path + (abstract ? 1 : 0), name, len);
    socklen_t slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (abstract ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, slen), 0);
    return fd;
}

static void
expect_datagram(int fd, const char *want)
{
    char buf[256];
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

START_TEST(test_path_socket)
{
    char dir[] = "/tmp/rp-notify-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_dgram(path, 0);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(rp_notify("READY=1\nSTATUS=listening"), 1);
    expect_datagram(fd, "READY=1\nSTATUS=listening");
    ck_assert_int_eq(rp_notify("STOPPING=1"), 1);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "rp-notify-test-%ld", (long)getpid());
    int fd = listen_dgram(name, 1);
    char env[80];
    snprintf(env, sizeof env, "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    ck_assert_int_eq(rp_notify("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    close(fd);
}
END_TEST

START_TEST(test_no_socket)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(rp_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(rp_notify("READY=1"), 0);
}
END_TEST

START_TEST(test_bad_socket)
{
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    ck_assert_int_eq(rp_notify("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "/nonexistent/dir/notify", 1);
    ck_assert_int_eq(rp_notify("READY=1"), -1);
}
END_TEST

static Suite *
notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("sd_notify");
    tcase_add_test(tc, test_path_socket);
    tcase_add_test(tc, test_abstract_socket);
    tcase_add_test(tc, test_no_socket);
    tcase_add_test(tc, test_bad_socket);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(notify_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
