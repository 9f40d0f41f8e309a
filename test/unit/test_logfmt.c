/* SPDX-License-Identifier: MIT */
/*
 * Log line formats: the text form of JSON lines, lines that must be cut
 * staying whole JSON, and a worker's access buffer counting only what it
 * holds against the queue's bound.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <jansson.h>
#include "revproxy/log.h"
#include "revproxy/txn.h"

static const struct {
    const char *json, *text;
} text_cases[] = {
    { "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"hello world\"}\n", "T info hello world\n" },
    { "{\"ts\":\"T\",\"level\":\"warn\",\"msg\":\"m\",\"a\":\"x y\",\"b\":\"\",\"c\":12,\"d\":\"z\"}\n",
      "T warn m a=\"x y\" b=\"\" c=12 d=z\n" },
    /* arrays and objects stay whole, whatever they hold */
    { "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"m\",\"r\":[\"a,b\",\"]\"],\"o\":{\"k\":1,\"j\":{\"x\":\"}\"}},\"e\":1}\n",
      "T info m r=[\"a,b\",\"]\"] o={\"k\":1,\"j\":{\"x\":\"}\"}} e=1\n" },
    /* escapes stay escapes: one line of ASCII */
    { "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"a\\\"b\\n\",\"t\":\"\\u0001\\\\\"}\n",
      "T info a\\\"b\\n t=\\u0001\\\\\n" },
};

START_TEST(test_text_form)
{
    const char *in = text_cases[_i].json;
    char out[512];
    size_t n = rp_log_json_to_text(in, strlen(in), out, sizeof out);
    out[n] = '\0';
    ck_assert_str_eq(out, text_cases[_i].text);
}
END_TEST

/* Any output size: no write past it, and a newline at the end. */
START_TEST(test_text_small_out)
{
    const char *in = text_cases[2].json;
    for (size_t cap = 2; cap < 80; cap++) {
        char *out = malloc(cap);
        size_t n = rp_log_json_to_text(in, strlen(in), out, cap);
        ck_assert_uint_le(n, cap);
        ck_assert_uint_ge(n, 1);
        ck_assert_int_eq(out[n - 1], '\n');
        free(out);
    }
}
END_TEST

/* Lines are written to stderr directly before the writer starts: catch
 * them in a file. */
static char *
capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    long len = ftell(tmp);
    if (len <= 0) {
        fseek(tmp, 0, SEEK_END);
        len = ftell(tmp);
    }
    rewind(tmp);
    char *buf = calloc(1, (size_t)len + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return buf;
}

static char huge[2040];

static void
log_huge(void)
{
    rp_log_fields(RP_LOG_WARN, NULL, "\"k\":\"v\"", "%s", huge);
}

/* A message of control bytes escapes to six times its size, past the
 * line's 8 KiB: the line is cut, and stays one whole JSON object. */
START_TEST(test_cut_lines_stay_json)
{
    memset(huge, '\001', sizeof huge - 1);
    char *text = capture(log_huge);
    ck_assert_uint_gt(strlen(text), 4000);
    ck_assert_int_eq(text[strlen(text) - 1], '\n');
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    ck_assert_msg(j != NULL, "not JSON: %s", e.text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
    ck_assert(json_is_true(json_object_get(j, "truncated")) || json_object_get(j, "k") != NULL);
    json_decref(j);
    free(text);
}
END_TEST

/* A worker's buffer handed over with one line in it counts that line
 * against the queue's bound, not its 64 KiB. */
START_TEST(test_small_buffer_counts_its_size)
{
    char path[] = "/tmp/rp-logfmt-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(rp_log_start(path, false), 0);
    struct event_base *base = event_base_new();
    ck_assert_int_eq(rp_log_worker_start(base), 0);
    rp_txn_t t;
    memset(&t, 0, sizeof t);
    strcpy(t.id, "abc");
    t.status = 200;
    rp_log_access(&t);
    rp_log_worker_stop();
    size_t peak = rp_log_queue_peak();
    rp_log_stop();
    event_base_free(base);
    ck_assert_uint_gt(peak, 0);
    ck_assert_uint_lt(peak, 4096);
    FILE *f = fopen(path, "r");
    char line[4096];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);
    ck_assert_ptr_nonnull(strstr(line, "\"request_id\":\"abc\""));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("logfmt");
    TCase *tc = tcase_create("formats");
    tcase_add_loop_test(tc, test_text_form, 0, (int)(sizeof text_cases / sizeof text_cases[0]));
    tcase_add_test(tc, test_text_small_out);
    tcase_add_test(tc, test_cut_lines_stay_json);
    tcase_add_test(tc, test_small_buffer_counts_its_size);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
