/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for request path normalisation: the RFC 3986 5.2.4 and 5.4
 * examples that apply to absolute paths, encoded dot-segments, escapes that
 * must stay encoded, paths climbing above the root, malformed escapes, the
 * query kept as received, and targets that must come back untouched.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/path.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct ok_case {
    const char *in;
    const char *want;
} ok_case_t;

typedef struct bad_case {
    const char *in;
    int         rc;
} bad_case_t;

/* Normalise in, as the proxy does: in a buffer holding the target and the
 * NUL the head stores after it, with guard bytes behind.  Returns the
 * result code; out gets the result (or the buffer, on error). */
static int
normalize(const char *in, char *out, size_t cap, size_t *out_len)
{
    size_t len = strlen(in);
    ck_assert_uint_lt(len + 8, cap);
    memcpy(out, in, len + 1);
    memset(out + len + 1, '#', 7);
    *out_len = (size_t)-1;
    int rc = rp_path_normalize(out, len, out_len);
    /* nothing past the target is ever touched */
    ck_assert_mem_eq(out + len + 1, "#######", 7);
    return rc;
}

/* in must become want, NUL-terminated, and stay want when normalised again. */
static void
check_ok(const ok_case_t *c)
{
    char buf[256];
    size_t n;
    int rc = normalize(c->in, buf, sizeof buf, &n);
    ck_assert_msg(rc == 0, "\"%s\": returned %d (%s), expected \"%s\"", c->in, rc,
                  rp_path_error(rc), c->want);
    ck_assert_msg(n == strlen(c->want) && memcmp(buf, c->want, n) == 0,
                  "\"%s\": got \"%.*s\" (%zu bytes), expected \"%s\"", c->in, (int)n, buf, n,
                  c->want);
    ck_assert_msg(buf[n] == '\0', "\"%s\": result not NUL-terminated", c->in);

    char again[256];
    size_t m;
    ck_assert_int_eq(normalize(buf, again, sizeof again, &m), 0);
    ck_assert_msg(m == n && memcmp(again, buf, n) == 0,
                  "\"%s\": not idempotent: \"%s\" became \"%.*s\"", c->in, buf, (int)m, again);
}

/* in must fail with rc, and be left exactly as it was. */
static void
check_bad(const bad_case_t *c)
{
    char buf[256];
    size_t n;
    int rc = normalize(c->in, buf, sizeof buf, &n);
    ck_assert_msg(rc == c->rc, "\"%s\": returned %d, expected %d (%s)", c->in, rc, c->rc,
                  rp_path_error(c->rc));
    ck_assert_str_eq(buf, c->in);
    ck_assert_uint_eq(n, (size_t)-1);
}

#define OK_TEST(name, table)              \
    START_TEST(name)                      \
    {                                     \
        check_ok(&(table)[_i]);           \
    }                                     \
    END_TEST

#define BAD_TEST(name, table)             \
    START_TEST(name)                      \
    {                                     \
        check_bad(&(table)[_i]);          \
    }                                     \
    END_TEST

/* ---- RFC 3986 ---- */

/* 5.2.4's own examples, and the 5.4 examples against the base
 * "http://a/b/c/d;p?q" written as the merged absolute path that
 * remove_dot_segments receives (5.2.2, 5.2.3): "../g" is "/b/c/../g". */
static const ok_case_t rfc[] = {
    /* 5.2.4 */
    { "/a/b/c/./../../g", "/a/g" },
    { "/mid/content=5/../6", "/mid/6" },
    /* 5.4.1 normal examples */
    { "/b/c/g", "/b/c/g" },
    { "/b/c/./g", "/b/c/g" },
    { "/b/c/g/", "/b/c/g/" },
    { "/g", "/g" },
    { "/b/c/d;p", "/b/c/d;p" },
    { "/b/c/g;x", "/b/c/g;x" },
    { "/b/c/.", "/b/c/" },
    { "/b/c/./", "/b/c/" },
    { "/b/c/..", "/b/" },
    { "/b/c/../", "/b/" },
    { "/b/c/../g", "/b/g" },
    { "/b/c/../..", "/" },
    { "/b/c/../../", "/" },
    { "/b/c/../../g", "/g" },
    /* 5.4.2 abnormal examples that stay within the root */
    { "/./g", "/g" },
    { "/b/c/g.", "/b/c/g." },
    { "/b/c/.g", "/b/c/.g" },
    { "/b/c/g..", "/b/c/g.." },
    { "/b/c/..g", "/b/c/..g" },
    { "/b/c/./../g", "/b/g" },
    { "/b/c/./g/.", "/b/c/g/" },
    { "/b/c/g/./h", "/b/c/g/h" },
    { "/b/c/g/../h", "/b/c/h" },
    { "/b/c/g;x=1/./y", "/b/c/g;x=1/y" },
    { "/b/c/g;x=1/../y", "/b/c/y" },
    /* the shortest cases */
    { "/.", "/" },
    { "/./", "/" },
    { "/a/..", "/" },
    { "/a/../", "/" },
    { "/g/.", "/g/" },
    { "/g/..", "/" },
    { "/a/b/..", "/a/" },
    { "/./.", "/" },
    { "/././a", "/a" },
    { "/a/./../b/./../c", "/c" },
    { "/a/b/c/../../../d", "/d" },
};
OK_TEST(test_rfc, rfc)

/* ---- escapes ---- */

static const ok_case_t encoded[] = {
    /* encoded dot-segments are dot-segments */
    { "/public/%2e%2e/admin", "/admin" },
    { "/public/%2E%2E/admin", "/admin" },
    { "/public/.%2e/admin", "/admin" },
    { "/public/%2e./admin", "/admin" },
    { "/public/%2E./admin", "/admin" },
    { "/a/%2e/b", "/a/b" },
    { "/a/%2E", "/a/" },
    { "/a/b/%2e%2e", "/a/" },
    { "/a/b/%2e%2e?q", "/a/?q" },
    /* ... but "..." and "..x" are plain segments */
    { "/a/%2e%2e%2e/b", "/a/.../b" },
    { "/a/%2e%2ex", "/a/..x" },
    { "/a/x%2e%2e", "/a/x.." },
    /* unreserved characters are decoded, whatever the case of the digits */
    { "/%7Euser", "/~user" },
    { "/%7euser", "/~user" },
    { "/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~" },
    { "/caf%65", "/cafe" },
    /* everything else stays encoded, hex digits uppercased */
    { "/a%2F..%2Fb", "/a%2F..%2Fb" },
    { "/a%2f..%2fb", "/a%2F..%2Fb" },
    { "/a%5C..%5Cb", "/a%5C..%5Cb" },
    { "/a%5c..%5cb", "/a%5C..%5Cb" },
    { "/%2e%2e%2f", "/..%2F" },
    { "/%2e%2e%5c", "/..%5C" },
    { "/a/%2F/../b", "/a/b" },
    { "/%20x%3f%23%00", "/%20x%3F%23%00" },
    { "/%c3%a9t%c3%a9", "/%C3%A9t%C3%A9" },
    { "/%FF", "/%FF" },
    /* no double decoding: "%25" is '%', and stays encoded */
    { "/%252e%252e/x", "/%252e%252e/x" },
    { "/%25%32%65", "/%252e" },
    { "/a/%25%32%65%25%32%65/b", "/a/%252e%252e/b" },
};
OK_TEST(test_encoded, encoded)

/* ---- the query ---- */

static const ok_case_t query[] = {
    { "/a/./b?x=/../y", "/a/b?x=/../y" },
    { "/a/../b?q", "/b?q" },
    { "/a/..?q", "/?q" },
    { "/a/.?", "/a/?" },
    { "/a/%2e%2e/b?%zz&%2e%2e", "/b?%zz&%2e%2e" },
    { "/a%2e?%2e", "/a.?%2e" },
    { "/%7e?%7e", "/~?%7e" },
    { "/a/b/../../c?a?b/../c", "/c?a?b/../c" },
    /* the query alone is never touched, nor checked */
    { "/a/b?c/../d", "/a/b?c/../d" },
    { "/a?%", "/a?%" },
    { "/?/..", "/?/.." },
    { "/a?", "/a?" },
};
OK_TEST(test_query, query)

/* ---- targets left alone ---- */

static const ok_case_t untouched[] = {
    { "/", "/" },
    { "/index.html", "/index.html" },
    { "/static/app.min.js", "/static/app.min.js" },
    { "/.well-known/acme-challenge/x", "/.well-known/acme-challenge/x" },
    { "/.hidden/.x/", "/.hidden/.x/" },
    { "/...", "/..." },
    { "/a../..b/.c./", "/a../..b/.c./" },
    { "/a/b/", "/a/b/" },
    { "//", "//" },
    { "/a//b", "/a//b" },
    /* not paths: empty, no path before the query, asterisk form */
    { "", "" },
    { "?q=1", "?q=1" },
    { "?/../x", "?/../x" },
    { "*", "*" },
};
OK_TEST(test_untouched, untouched)

/* Duplicate slashes are not merged: an empty segment is a segment, which a
 * ".." removes like any other (RFC 3986 5.2.4, step 2C). */
static const ok_case_t slashes[] = {
    { "//a/../b", "//b" },
    { "/a//../b", "/a/b" },
    { "/a//./b", "/a//b" },
    { "/a/.//b", "/a//b" },
    { "//..", "/" },
    { "///../..", "/" },
    { "/a/b//", "/a/b//" },
};
OK_TEST(test_slashes, slashes)

/* ---- errors ---- */

static const bad_case_t bad[] = {
    /* above the root */
    { "/..", RP_PATH_EROOT },
    { "/../", RP_PATH_EROOT },
    { "/../a", RP_PATH_EROOT },
    { "/a/../../b", RP_PATH_EROOT },
    { "/a/../..", RP_PATH_EROOT },
    { "/./..", RP_PATH_EROOT },
    { "/a/./../..", RP_PATH_EROOT },
    { "/b/c/../../../g", RP_PATH_EROOT },
    { "/b/c/../../../../g", RP_PATH_EROOT },
    { "/%2e%2e", RP_PATH_EROOT },
    { "/%2E%2E/etc/passwd", RP_PATH_EROOT },
    { "/.%2e/x", RP_PATH_EROOT },
    { "/a/%2e%2e/%2e%2e/x", RP_PATH_EROOT },
    { "/..?q", RP_PATH_EROOT },
    /* malformed escapes */
    { "/%", RP_PATH_EESCAPE },
    { "/%4", RP_PATH_EESCAPE },
    { "/%zz", RP_PATH_EESCAPE },
    { "/%4g", RP_PATH_EESCAPE },
    { "/%g4", RP_PATH_EESCAPE },
    { "/a%", RP_PATH_EESCAPE },
    { "/ok/fine/%", RP_PATH_EESCAPE },
    { "/%%41", RP_PATH_EESCAPE },
    { "/%4?x", RP_PATH_EESCAPE },
    { "/%?41", RP_PATH_EESCAPE },
    { "/%/41", RP_PATH_EESCAPE },
    { "/% 41", RP_PATH_EESCAPE },
    { "/a/b/c/%2", RP_PATH_EESCAPE },
    /* both: the first one in the path is reported */
    { "/../%zz", RP_PATH_EROOT },
    { "/%zz/../..", RP_PATH_EESCAPE },
    /* not origin-form */
    { "a/b", RP_PATH_EFORM },
    { "http://a/b", RP_PATH_EFORM },
    { "**", RP_PATH_EFORM },
    { ".", RP_PATH_EFORM },
};
BAD_TEST(test_bad, bad)

START_TEST(test_error_strings)
{
    ck_assert_str_eq(rp_path_error(0), "");
    ck_assert_str_eq(rp_path_error(RP_PATH_EESCAPE), "invalid percent-escape in path");
    ck_assert_str_eq(rp_path_error(RP_PATH_EROOT), "path climbs above the root");
    ck_assert_str_eq(rp_path_error(RP_PATH_EFORM), "request target is not origin-form");
    ck_assert_str_eq(rp_path_error(-99), "invalid path");
    /* any error is negative: "rc < 0" is "bad request" */
    ck_assert_int_lt(RP_PATH_EESCAPE, 0);
    ck_assert_int_lt(RP_PATH_EROOT, 0);
    ck_assert_int_lt(RP_PATH_EFORM, 0);
}
END_TEST

/* ---- the length is honoured ---- */

/* Only len bytes are the target: what follows (here, more dot-segments) is
 * neither read as path nor written. */
START_TEST(test_len_respected)
{
    char buf[] = "/a/../b/../../..";
    size_t n = 0;
    ck_assert_int_eq(rp_path_normalize(buf, 7, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(buf, "/b\0", 3);
    ck_assert_str_eq(buf + 7, "/../../..");

    /* unchanged: not even a NUL is written */
    char same[] = "/abc/def";
    ck_assert_int_eq(rp_path_normalize(same, 4, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(same, "/abc/def");

    /* a '?' beyond len is not the query: the path ends at len */
    char q[] = "/x/./y?/..";
    ck_assert_int_eq(rp_path_normalize(q, 6, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(q, "/x/y");
    ck_assert_str_eq(q + 6, "?/..");

    /* an escape cut by len is malformed, whatever follows */
    char e[] = "/a%41";
    ck_assert_int_eq(rp_path_normalize(e, 4, &n), RP_PATH_EESCAPE);
    ck_assert_str_eq(e, "/a%41");
}
END_TEST

/* ---- long paths ---- */

/* Thousands of segments and as many ".." back: linear, and the depth count
 * is exact to the last segment. */
START_TEST(test_long_paths)
{
    enum { SEGS = 20000 };
    size_t cap = SEGS * 2 + SEGS * 3 + 16;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t len = 0;
    for (int i = 0; i < SEGS; i++) {
        memcpy(buf + len, "/a", 2);
        len += 2;
    }
    for (int i = 0; i < SEGS; i++) {
        memcpy(buf + len, "/..", 3);
        len += 3;
    }
    memcpy(buf + len, "?x", 3);
    len += 2;
    size_t n = 0;
    ck_assert_int_eq(rp_path_normalize(buf, len, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(buf, "/?x");

    /* one ".." more climbs above the root; the target is left as it was */
    len = 0;
    for (int i = 0; i < SEGS; i++) {
        memcpy(buf + len, "/a", 2);
        len += 2;
    }
    for (int i = 0; i <= SEGS; i++) {
        memcpy(buf + len, "/..", 3);
        len += 3;
    }
    buf[len] = '\0';
    n = 7;
    ck_assert_int_eq(rp_path_normalize(buf, len, &n), RP_PATH_EROOT);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(buf, "/a/a", 4);
    ck_assert_mem_eq(buf + len - 6, "/../..", 6);

    /* a long path of escapes shrinks to a third */
    len = 0;
    buf[len++] = '/';
    for (int i = 0; i < SEGS; i++) {
        memcpy(buf + len, "%7E", 3);
        len += 3;
    }
    buf[len] = '\0';
    ck_assert_int_eq(rp_path_normalize(buf, len, &n), 0);
    ck_assert_uint_eq(n, (size_t)SEGS + 1);
    for (size_t i = 1; i < n; i++)
        ck_assert_int_eq(buf[i], '~');
    ck_assert_int_eq(buf[n], '\0');
    free(buf);
}
END_TEST

/* ---- suite ---- */

static Suite *
path_suite(void)
{
    Suite *s = suite_create("path");
    TCase *tc;

    tc = tcase_create("rfc3986");
    tcase_add_loop_test(tc, test_rfc, 0, NCASES(rfc));
    suite_add_tcase(s, tc);

    tc = tcase_create("encoded");
    tcase_add_loop_test(tc, test_encoded, 0, NCASES(encoded));
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_loop_test(tc, test_query, 0, NCASES(query));
    suite_add_tcase(s, tc);

    tc = tcase_create("untouched");
    tcase_add_loop_test(tc, test_untouched, 0, NCASES(untouched));
    suite_add_tcase(s, tc);

    tc = tcase_create("slashes");
    tcase_add_loop_test(tc, test_slashes, 0, NCASES(slashes));
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_bad, 0, NCASES(bad));
    tcase_add_test(tc, test_error_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("length");
    tcase_add_test(tc, test_len_respected);
    tcase_add_test(tc, test_long_paths);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(path_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
