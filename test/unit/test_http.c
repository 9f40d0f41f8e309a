/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the HTTP head storage and header rules: building heads as
 * the parser callbacks do, lookups, token lists, hop-by-hop removal, request
 * ids, Host normalisation, absolute-form targets, reasons and methods.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "revproxy/http.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Append a NUL-terminated string through one of the add functions. */
#define ADD(fn, h, s) fn((h), (s), strlen(s))

typedef struct hdr {
    const char *name;
    const char *value;
} hdr_t;

/* A finished head with the given fields (and target, if not NULL), each
 * name and value delivered in two pieces as a parser may do across reads. */
static void
build_head(rp_http_head_t *h, const char *target, const hdr_t *fields, size_t n)
{
    rp_http_head_init(h, 65536);
    if (target != NULL) {
        size_t half = strlen(target) / 2;
        ck_assert_int_eq(rp_http_head_add_target(h, target, half), 0);
        ck_assert_int_eq(ADD(rp_http_head_add_target, h, target + half), 0);
    }
    for (size_t i = 0; i < n; i++) {
        size_t half = strlen(fields[i].name) / 2;
        ck_assert_int_eq(rp_http_head_add_name(h, fields[i].name, half), 0);
        ck_assert_int_eq(ADD(rp_http_head_add_name, h, fields[i].name + half), 0);
        half = strlen(fields[i].value) / 2;
        ck_assert_int_eq(rp_http_head_add_value(h, fields[i].value, half), 0);
        ck_assert_int_eq(ADD(rp_http_head_add_value, h, fields[i].value + half), 0);
    }
    ck_assert_int_eq(rp_http_head_finish(h), 0);
}

/* ---- building heads ---- */

START_TEST(test_head_build)
{
    static const hdr_t f[] = {
        { "Host", "example.com" },
        { "X-Long-Header-Name", "a value, with: punctuation" },
        { "Accept", "*/*" },
    };
    rp_http_head_t h;
    build_head(&h, "/index.html?x=1", f, 3);
    ck_assert_uint_eq(h.nfields, 3);
    ck_assert_uint_eq(h.target_len, 15);
    ck_assert_mem_eq(h.buf + h.target_off, "/index.html?x=1", 15);
    ck_assert_int_eq(h.buf[h.target_off + h.target_len], '\0');
    for (unsigned i = 0; i < 3; i++) {
        const rp_hfield_t *fl = &h.fields[i];
        ck_assert_str_eq(rp_hf_name(&h, fl), f[i].name);
        ck_assert_str_eq(rp_hf_value(&h, fl), f[i].value);
        ck_assert_uint_eq(fl->name_len, strlen(f[i].name));
        ck_assert_uint_eq(fl->value_len, strlen(f[i].value));
        ck_assert_uint_eq(fl->flags, 0);
    }
    ck_assert_uint_le(h.len, h.limit);
    rp_http_head_free(&h);
    ck_assert_ptr_null(h.buf);
    ck_assert_ptr_null(h.fields);
    rp_http_head_free(&h);   /* harmless twice */
}
END_TEST

/* Whitespace after a value, even in pieces, is not part of it: "2 \t"
 * is "2", and a value of only spaces is "". */
START_TEST(test_head_values_trimmed)
{
    rp_http_head_t h;
    rp_http_head_init(&h, 1024);
    ck_assert_int_eq(ADD(rp_http_head_add_target, &h, "/"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "Content-Length"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "2 "), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "\t "), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Blank"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "   "), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Inner"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "a b "), 0);
    ck_assert_int_eq(rp_http_head_finish(&h), 0);
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[0]), "2");
    ck_assert_uint_eq(h.fields[0].value_len, 1);
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[1]), "");
    ck_assert_uint_eq(h.fields[1].value_len, 0);
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[2]), "a b");
    ck_assert_str_eq(rp_hf_name(&h, &h.fields[2]), "X-Inner");
    rp_http_head_free(&h);
}
END_TEST

/* Values arriving as zero-length pieces, or not at all, end up as "". */
START_TEST(test_head_empty_values)
{
    rp_http_head_t h;
    rp_http_head_init(&h, 1024);
    ck_assert_int_eq(ADD(rp_http_head_add_target, &h, "/"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Empty"), 0);
    ck_assert_int_eq(rp_http_head_add_value(&h, "", 0), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Full"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "v"), 0);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Last"), 0);   /* no value */
    ck_assert_int_eq(rp_http_head_finish(&h), 0);
    ck_assert_uint_eq(h.nfields, 3);
    ck_assert_str_eq(rp_hf_name(&h, &h.fields[0]), "X-Empty");
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[0]), "");
    ck_assert_uint_eq(h.fields[0].value_len, 0);
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[1]), "v");
    ck_assert_str_eq(rp_hf_name(&h, &h.fields[2]), "X-Last");
    ck_assert_str_eq(rp_hf_value(&h, &h.fields[2]), "");
    ck_assert_uint_eq(h.fields[2].value_len, 0);
    ck_assert_str_eq(h.buf + h.target_off, "/");
    rp_http_head_free(&h);
}
END_TEST

/* A response head: no target, fields only; also many fields (the array
 * grows) and a head reused after reset. */
START_TEST(test_head_many_fields_and_reset)
{
    rp_http_head_t h;
    char name[32], value[32];
    rp_http_head_init(&h, 65536);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "X-H%d", i);
            snprintf(value, sizeof value, "v%d-%d", i, round);
            ck_assert_int_eq(ADD(rp_http_head_add_name, &h, name), 0);
            ck_assert_int_eq(ADD(rp_http_head_add_value, &h, value), 0);
        }
        ck_assert_int_eq(rp_http_head_finish(&h), 0);
        ck_assert_uint_eq(h.nfields, 100);
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "X-H%d", i);
            snprintf(value, sizeof value, "v%d-%d", i, round);
            ck_assert_str_eq(rp_hf_name(&h, &h.fields[i]), name);
            ck_assert_str_eq(rp_hf_value(&h, &h.fields[i]), value);
        }
        rp_http_head_reset(&h);
        ck_assert_uint_eq(h.nfields, 0);
        ck_assert_uint_eq(h.len, 0);
        ck_assert_uint_eq(h.target_len, 0);
    }
    rp_http_head_free(&h);
}
END_TEST

START_TEST(test_head_value_without_name)
{
    rp_http_head_t h;
    rp_http_head_init(&h, 1024);
    ck_assert_int_eq(ADD(rp_http_head_add_value, &h, "orphan"), -1);
    rp_http_head_free(&h);
}
END_TEST

/* Limits: target, name and value each take their bytes plus a NUL, and the
 * whole must fit in limit.  With exactly enough room every step succeeds;
 * with one byte less, a step fails, and the buffer never exceeds the limit.
 * Each row: target, name, value. */
static const struct {
    const char *target, *name, *value;
} limit_cases[] = {
    { "/", "Host", "example.com" },
    { "/a/rather/long/path?with=query", "X", "" },
    { "/", "X-Name", "a-value-of-some-length-0123456789" },
    { "/0123456789", "N", "v" },
};

START_TEST(test_head_limit)
{
    const char *t = limit_cases[_i].target, *n = limit_cases[_i].name,
               *v = limit_cases[_i].value;
    const size_t need = strlen(t) + strlen(n) + strlen(v) + 3;
    for (size_t limit = need - 4; limit <= need + 1; limit++) {
        rp_http_head_t h;
        rp_http_head_init(&h, limit);
        int rc = ADD(rp_http_head_add_target, &h, t);
        if (rc == 0)
            rc = ADD(rp_http_head_add_name, &h, n);
        if (rc == 0)
            rc = ADD(rp_http_head_add_value, &h, v);
        if (rc == 0)
            rc = rp_http_head_finish(&h);
        ck_assert_uint_le(h.len, limit);
        if (limit >= need) {
            ck_assert_msg(rc == 0, "limit %zu (need %zu) refused", limit, need);
            ck_assert_str_eq(h.buf + h.target_off, t);
            ck_assert_str_eq(rp_hf_name(&h, &h.fields[0]), n);
            ck_assert_str_eq(rp_hf_value(&h, &h.fields[0]), v);
        } else {
            ck_assert_msg(rc == -1, "limit %zu (need %zu) accepted", limit, need);
        }
        rp_http_head_free(&h);
    }
}
END_TEST

/* A long value added piece by piece stops at the limit. */
START_TEST(test_head_limit_incremental)
{
    rp_http_head_t h;
    rp_http_head_init(&h, 4096);
    ck_assert_int_eq(ADD(rp_http_head_add_name, &h, "X-Big"), 0);
    char chunk[100];
    memset(chunk, 'a', sizeof chunk);
    int ok = 0, rc = 0;
    while ((rc = rp_http_head_add_value(&h, chunk, sizeof chunk)) == 0)
        ok++;
    ck_assert_int_eq(rc, -1);
    ck_assert_int_gt(ok, 30);
    ck_assert_uint_le(h.len, 4096);
    /* what fits still fits, and every append keeps room for the final NUL */
    while (rp_http_head_add_value(&h, "b", 1) == 0)
        ;
    ck_assert_uint_eq(h.len, 4095);
    ck_assert_int_eq(rp_http_head_finish(&h), 0);
    ck_assert_uint_eq(h.len, 4096);
    ck_assert_uint_eq(strlen(rp_hf_value(&h, &h.fields[0])), h.fields[0].value_len);
    ck_assert_int_eq(rp_hf_value(&h, &h.fields[0])[h.fields[0].value_len - 1], 'b');
    rp_http_head_free(&h);
}
END_TEST

/* ---- rp_http_find ---- */

static const hdr_t find_fields[] = {
    { "Host", "example.com" },
    { "Accept", "text/html" },
    { "Accept-Encoding", "gzip" },
    { "ACCEPT", "*/*" },
    { "Cookie", "a=1" },
    { "accept", "image/png" },
    { "X-Empty", "" },
};

static const struct {
    const char *name;
    unsigned count;
    const char *first_value;   /* NULL when count is 0 */
} find_cases[] = {
    { "accept", 3, "text/html" },
    { "ACCEPT", 3, "text/html" },
    { "Accept", 3, "text/html" },
    { "host", 1, "example.com" },
    { "HOST", 1, "example.com" },
    { "accept-encoding", 1, "gzip" },
    { "x-empty", 1, "" },
    { "acc", 0, NULL },
    { "accept-", 0, NULL },
    { "hostx", 0, NULL },
    { "content-length", 0, NULL },
    { "", 0, NULL },
};

START_TEST(test_find)
{
    rp_http_head_t h;
    build_head(&h, "/", find_fields, NCASES(find_fields));
    unsigned count = 99;
    const rp_hfield_t *f = rp_http_find(&h, find_cases[_i].name, &count);
    ck_assert_uint_eq(count, find_cases[_i].count);
    if (find_cases[_i].first_value == NULL) {
        ck_assert_ptr_null(f);
    } else {
        ck_assert_ptr_nonnull(f);
        ck_assert_str_eq(rp_hf_value(&h, f), find_cases[_i].first_value);
        ck_assert(rp_hf_is(&h, f, find_cases[_i].name));
    }
    /* count may be NULL */
    ck_assert_ptr_eq(rp_http_find(&h, find_cases[_i].name, NULL), f);
    rp_http_head_free(&h);
}
END_TEST

START_TEST(test_find_empty_head)
{
    rp_http_head_t h;
    rp_http_head_init(&h, 1024);
    unsigned count = 5;
    ck_assert_ptr_null(rp_http_find(&h, "host", &count));
    ck_assert_uint_eq(count, 0);
    rp_http_head_free(&h);
}
END_TEST

/* ---- rp_http_list_has ---- */

static const struct {
    const char *value;
    int len;               /* -1: strlen(value) */
    const char *token;
    bool want;
} list_cases[] = {
    { "close", -1, "close", true },
    { "Close", -1, "close", true },
    { "close", -1, "CLOSE", true },
    { "keep-alive, Upgrade", -1, "upgrade", true },
    { "keep-alive, Upgrade", -1, "keep-alive", true },
    { "keep-alive,Upgrade", -1, "upgrade", true },
    { "  a ,  b  ,c", -1, "b", true },
    { "  a ,  b  ,c", -1, "c", true },
    { "  a ,  b  ,c", -1, "a", true },
    { "a\t,\tb\t", -1, "b", true },
    { "a,,b", -1, "b", true },
    { ",,close,,", -1, "close", true },
    { "close, X-Foo", -1, "x-foo", true },
    { "a, bc", -1, "b", false },
    { "a, bc", -1, "c", false },
    { "abc", -1, "b", false },
    { "xclose", -1, "close", false },
    { "closex", -1, "close", false },
    { "close upgrade", -1, "close", false },
    { "", -1, "close", false },
    { ",,,", -1, "close", false },
    { "   ", -1, "close", false },
    /* only len bytes are looked at */
    { "close,upgrade", 5, "close", true },
    { "close,upgrade", 5, "upgrade", false },
    { "close,upgrade", 4, "close", false },
    { "upgrade", 0, "upgrade", false },
};

START_TEST(test_list_has)
{
    const char *v = list_cases[_i].value;
    size_t len = list_cases[_i].len < 0 ? strlen(v) : (size_t)list_cases[_i].len;
    bool got = rp_http_list_has(v, len, list_cases[_i].token);
    ck_assert_msg(got == list_cases[_i].want, "\"%.*s\" has \"%s\": got %d", (int)len, v,
                  list_cases[_i].token, got);
}
END_TEST

/* ---- rp_http_mark_hop_by_hop ---- */

typedef struct hop_field {
    const char *name, *value;
    bool drop;
} hop_field_t;

static const hop_field_t hop_fields[] = {
    { "Host", "example.com", false },
    { "Connection", "close, X-Foo", true },
    { "X-Foo", "listed in Connection", true },
    { "x-foo", "listed, other case", true },
    { "X-Foo-Bar", "not listed", false },
    { "X-Bar", "not listed", false },
    { "Keep-Alive", "timeout=5", true },
    { "Proxy-Connection", "keep-alive", true },
    { "TE", "trailers", true },
    { "Trailer", "X-Checksum", true },
    { "Upgrade", "websocket", true },
    { "Transfer-Encoding", "chunked", true },
    { "Content-Length", "10", true },
    { "Content-Type", "text/plain", false },
    { "Upgrade-Insecure-Requests", "1", false },
    { "Trailers", "x", false },
    { "X-Request-Id", "abc", true },   /* in extra */
    { "X-Forwarded-For", "10.0.0.1", true },   /* in extra */
    { "Cookie", "a=b", false },
    { "Accept", "*/*", false },
    { "Close", "a header named like a token", true },   /* listed in Connection */
};

static void
build_hop_head(rp_http_head_t *h, const hop_field_t *list, size_t n)
{
    hdr_t f[32];
    ck_assert_uint_le(n, 32);
    for (size_t i = 0; i < n; i++) {
        f[i].name = list[i].name;
        f[i].value = list[i].value;
    }
    build_head(h, "/", f, n);
}

START_TEST(test_hop_by_hop)
{
    static const char *const extra[] = { "x-request-id", "X-FORWARDED-FOR", NULL };
    rp_http_head_t h;
    build_hop_head(&h, hop_fields, NCASES(hop_fields));
    rp_http_mark_hop_by_hop(&h, extra);
    for (unsigned i = 0; i < h.nfields; i++) {
        bool dropped = (h.fields[i].flags & RP_HF_DROP) != 0;
        ck_assert_msg(dropped == hop_fields[i].drop, "%s: dropped %d, want %d",
                      hop_fields[i].name, dropped, hop_fields[i].drop);
    }
    /* marking again changes nothing */
    rp_http_mark_hop_by_hop(&h, extra);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_uint_eq(h.fields[i].flags, hop_fields[i].drop ? RP_HF_DROP : 0);
    rp_http_head_free(&h);
}
END_TEST

START_TEST(test_hop_by_hop_no_extra)
{
    static const hop_field_t list[] = {
        { "X-Request-Id", "abc", false },
        { "Connection", "keep-alive", true },
        { "Keep-Alive", "timeout=5", true },
        { "Accept", "*/*", false },
    };
    rp_http_head_t h;
    build_hop_head(&h, list, NCASES(list));
    rp_http_mark_hop_by_hop(&h, NULL);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_msg(((h.fields[i].flags & RP_HF_DROP) != 0) == list[i].drop, "%s",
                      list[i].name);
    rp_http_head_free(&h);
}
END_TEST

/* Every Connection field counts, not only the first. */
START_TEST(test_hop_by_hop_several_connection)
{
    static const hop_field_t list[] = {
        { "Connection", "X-A", true },
        { "X-A", "1", true },
        { "X-B", "2", true },
        { "X-C", "3", false },
        { "connection", " x-b ,", true },
    };
    rp_http_head_t h;
    build_hop_head(&h, list, NCASES(list));
    rp_http_mark_hop_by_hop(&h, NULL);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_msg(((h.fields[i].flags & RP_HF_DROP) != 0) == list[i].drop, "%s",
                      list[i].name);
    rp_http_head_free(&h);
}
END_TEST

/* Elements of a Connection value are trimmed of spaces and tabs; empty
 * elements name nothing; a name is matched whole, in any case. */
START_TEST(test_hop_by_hop_connection_elements)
{
    static const hop_field_t list[] = {
        { "Connection", "\tX-T\t, ,,  ,x-U ", true },
        { "x-t", "1", true },
        { "X-U", "2", true },
        { "X-T2", "3", false },
        { "X-", "4", false },
        { "U", "5", false },
    };
    rp_http_head_t h;
    build_hop_head(&h, list, NCASES(list));
    rp_http_mark_hop_by_hop(&h, NULL);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_msg(((h.fields[i].flags & RP_HF_DROP) != 0) == list[i].drop, "%s",
                      list[i].name);
    rp_http_head_free(&h);
}
END_TEST

/* However many Connection fields there are, every name they list goes:
 * the last of twenty lists X-Last. */
START_TEST(test_hop_by_hop_many_connection)
{
    hop_field_t list[24];
    char names[20][16];
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "x-n%d", i);
        list[n++] = (hop_field_t){ "Connection", names[i], true };
    }
    list[n++] = (hop_field_t){ "X-N19", "listed by the 20th", true };
    list[n++] = (hop_field_t){ "X-N0", "listed by the 1st", true };
    list[n++] = (hop_field_t){ "X-N20", "not listed", false };
    list[n++] = (hop_field_t){ "X-Last", "not listed", false };
    rp_http_head_t h;
    build_hop_head(&h, list, n);
    rp_http_mark_hop_by_hop(&h, NULL);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_msg(((h.fields[i].flags & RP_HF_DROP) != 0) == list[i].drop, "%s: %s",
                      list[i].name, list[i].value);
    rp_http_head_free(&h);
}
END_TEST

/* ---- transfer-codings ---- */

typedef struct te_case {
    const char *v1, *v2;    /* one or two Transfer-Encoding fields */
    int rc;
    size_t n;
    bool last, twice;
    const char *before;     /* codings before a final chunked, joined */
} te_case_t;

static const te_case_t te_cases[] = {
    { "chunked", NULL, 0, 1, true, false, "" },
    { "gzip, chunked", NULL, 0, 2, true, false, "gzip" },
    { "gzip", "chunked", 0, 2, true, false, "gzip" },
    { "GZip ,\tdeflate ,Chunked", NULL, 0, 3, true, false, "GZip, deflate" },
    { "gzip", NULL, 0, 1, false, false, "" },
    { "chunked, gzip", NULL, 0, 2, false, true, "" },
    { "chunked, chunked", NULL, 0, 2, true, true, "" },
    { "x;a=b ; c=d, chunked", NULL, 0, 2, true, false, "x;a=b ; c=d" },
    { "chunked;x=1", NULL, -2, 1, true, false, NULL },
    { "chunked,", NULL, -2, 2, false, true, NULL },
    { "gzip, , chunked", NULL, -2, 3, true, false, NULL },
    { "gzip;p=\"a,b\", chunked", NULL, -2, 3, true, false, NULL },
    { "gzip;p", NULL, -2, 1, false, false, NULL },
    { "gz ip", NULL, -2, 1, false, false, NULL },
    { "", NULL, -2, 1, false, false, NULL },
};

START_TEST(test_transfer_codings)
{
    const te_case_t *c = &te_cases[_i];
    hdr_t f[3] = { { "Host", "a" }, { "Transfer-Encoding", c->v1 }, { "transfer-encoding", c->v2 } };
    rp_http_head_t h;
    build_head(&h, "/", f, c->v2 != NULL ? 3 : 2);
    size_t n = 99;
    bool last = false, twice = false;
    int rc = rp_http_transfer_codings(&h, &n, &last, &twice);
    ck_assert_msg(rc == c->rc, "%s: rc %d", c->v1, rc);
    ck_assert_msg(n == c->n, "%s: n %zu", c->v1, n);
    if (rc == 0) {
        ck_assert_msg(last == c->last && twice == c->twice, "%s: last %d twice %d", c->v1,
                      last, twice);
        char out[64];
        size_t len = rp_http_codings_join(&h, last ? n - 1 : 0, out, sizeof out);
        if (!twice) {
            ck_assert_uint_eq(len, strlen(c->before));
            if (len > 0)
                ck_assert_str_eq(out, c->before);
        }
    }
    rp_http_head_free(&h);
}
END_TEST

START_TEST(test_transfer_codings_absent)
{
    hdr_t f[1] = { { "Host", "a" } };
    rp_http_head_t h;
    build_head(&h, "/", f, 1);
    size_t n;
    bool last, twice;
    ck_assert_int_eq(rp_http_transfer_codings(&h, &n, &last, &twice), -1);
    char out[8];
    ck_assert_uint_eq(rp_http_codings_join(&h, 3, out, sizeof out), 0);
    rp_http_head_free(&h);
}
END_TEST

/* End-to-end headers survive when there is nothing hop-by-hop. */
START_TEST(test_hop_by_hop_end_to_end_kept)
{
    static const hop_field_t list[] = {
        { "Host", "a", false },
        { "Accept", "*/*", false },
        { "Authorization", "Bearer x", false },
        { "Cache-Control", "no-cache", false },
        { "Via", "1.1 other", false },
    };
    rp_http_head_t h;
    build_hop_head(&h, list, NCASES(list));
    rp_http_mark_hop_by_hop(&h, NULL);
    for (unsigned i = 0; i < h.nfields; i++)
        ck_assert_uint_eq(h.fields[i].flags, 0);
    rp_http_head_free(&h);
}
END_TEST

/* ---- request ids ---- */

static const struct {
    const char *s;
    int len;   /* -1: strlen */
    bool valid;
} rid_cases[] = {
    { "abc", -1, true },
    { "A-Z_0.9:x", -1, true },
    { "0123456789abcdef0123456789abcdef", -1, true },
    { "urn:uuid:123e4567-e89b-12d3-a456-426614174000", -1, true },
    { "a", -1, true },
    { "", 0, false },
    { "abc", 0, false },
    { "a b", -1, false },
    { "a/b", -1, false },
    { "a+b", -1, false },
    { "a=b", -1, false },
    { "a\"b", -1, false },
    { "a\nb", -1, false },
    { "a\rb", -1, false },
    { "a\tb", -1, false },
    { "a,b", -1, false },
    { "a;b", -1, false },
    { "\xc3\xa9t\xc3\xa9", -1, false },
    { "a\0b", 3, false },
    { "abc\x7f", -1, false },
};

START_TEST(test_request_id_valid)
{
    const char *s = rid_cases[_i].s;
    size_t len = rid_cases[_i].len < 0 ? strlen(s) : (size_t)rid_cases[_i].len;
    ck_assert_msg(rp_request_id_valid(s, len) == rid_cases[_i].valid, "case %d", _i);
}
END_TEST

static const struct {
    size_t len;
    bool valid;
} rid_lengths[] = {
    { 0, false }, { 1, true }, { 63, true }, { 64, true }, { 65, false }, { 200, false },
};

START_TEST(test_request_id_length)
{
    char buf[256];
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(rp_request_id_valid(buf, rid_lengths[_i].len), rid_lengths[_i].valid);
}
END_TEST

START_TEST(test_request_id_new)
{
    char a[33], b[33];
    memset(a, '#', sizeof a);
    memset(b, '#', sizeof b);
    rp_request_id_new(a);
    rp_request_id_new(b);
    ck_assert_int_eq(a[32], '\0');
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_uint_eq(strlen(b), 32);
    for (int i = 0; i < 32; i++) {
        ck_assert_msg((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'),
                      "not lowercase hex: %s", a);
        ck_assert_msg((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f'),
                      "not lowercase hex: %s", b);
    }
    ck_assert_str_ne(a, b);
    ck_assert(rp_request_id_valid(a, 32));

    /* 128 random bits: many ids, no repeats among them */
    enum { N = 256 };
    static char ids[N][33];
    for (int i = 0; i < N; i++) {
        rp_request_id_new(ids[i]);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(ids[i], ids[j]);
    }
}
END_TEST

/* ---- rp_host_normalize ---- */

static const struct {
    const char *in;
    int len;          /* -1: strlen */
    const char *out;  /* NULL: invalid (-1) */
} host_cases[] = {
    { "example.com", -1, "example.com" },
    { "Example.COM", -1, "example.com" },
    { "example.com:8080", -1, "example.com" },
    { "EXAMPLE.com:80", -1, "example.com" },
    { "example.com.", -1, "example.com" },
    { "Example.com.:443", -1, "example.com" },
    { "example.com:", -1, "example.com" },   /* empty port allowed (RFC 3986) */
    { "a_b-c.example", -1, "a_b-c.example" },
    { "localhost", -1, "localhost" },
    { "127.0.0.1", -1, "127.0.0.1" },
    { "127.0.0.1:80", -1, "127.0.0.1" },
    { "[::1]", -1, "[::1]" },
    { "[::1]:80", -1, "[::1]" },
    { "[2001:DB8::1]:8443", -1, "[2001:db8::1]" },
    { "[::ffff:1.2.3.4]", -1, "[::ffff:1.2.3.4]" },
    { "example.com:80garbage", 14, "example.com" },
    { "", -1, NULL },
    { "example.com", 0, NULL },
    { ":80", -1, NULL },
    { ".", -1, NULL },
    { "exa mple.com", -1, NULL },
    { "ex/ample.com", -1, NULL },
    { "user@example.com", -1, NULL },
    { "example.com:80x", -1, NULL },
    { "example.com:-1", -1, NULL },
    { "example.com:123456", -1, NULL },
    { "example.com: 80", -1, NULL },
    { "a:b:c", -1, NULL },
    { "[::1", -1, NULL },
    { "[::1]x", -1, NULL },
    { "[::1]:x", -1, NULL },
    { "[::g]", -1, NULL },
    { "[::1]:123456", -1, NULL },
    { "exa\tmple", -1, NULL },
    { "\xc3\xa9xample.com", -1, NULL },
};

START_TEST(test_host_normalize)
{
    const char *in = host_cases[_i].in;
    size_t len = host_cases[_i].len < 0 ? strlen(in) : (size_t)host_cases[_i].len;
    char out[256];
    memset(out, '#', sizeof out);
    int rc = rp_host_normalize(in, len, out, sizeof out);
    if (host_cases[_i].out == NULL) {
        ck_assert_msg(rc == -1, "\"%s\" accepted as \"%s\"", in, rc >= 0 ? out : "");
    } else {
        ck_assert_msg(rc >= 0, "\"%s\" rejected", in);
        ck_assert_str_eq(out, host_cases[_i].out);
        ck_assert_int_eq(rc, (int)strlen(host_cases[_i].out));
    }
}
END_TEST

START_TEST(test_host_normalize_capacity)
{
    char out[16];
    /* "example.com" is 11 bytes and needs 12 with the NUL */
    ck_assert_int_eq(rp_host_normalize("example.com", 11, out, 11), -1);
    ck_assert_int_eq(rp_host_normalize("example.com", 11, out, 12), 11);
    ck_assert_str_eq(out, "example.com");
    /* the port and trailing dot do not count */
    ck_assert_int_eq(rp_host_normalize("Example.com.:8080", 17, out, 12), 11);
    ck_assert_str_eq(out, "example.com");
}
END_TEST

/* ---- rp_http_split_absolute ---- */

static const struct {
    const char *target;
    int len;               /* -1: strlen */
    const char *authority; /* NULL: rejected */
    const char *origin;
} abs_cases[] = {
    { "http://example.com/path?q=1", -1, "example.com", "/path?q=1" },
    { "https://Example.com:8443/x", -1, "Example.com:8443", "/x" },
    { "HTTP://example.com/", -1, "example.com", "/" },
    { "HtTpS://example.com/a/b", -1, "example.com", "/a/b" },
    { "http://example.com", -1, "example.com", "" },
    { "https://example.com:443", -1, "example.com:443", "" },
    { "http://[::1]:8080/p", -1, "[::1]:8080", "/p" },
    { "http://example.com/a@b", -1, "example.com", "/a@b" },
    { "http://example.com/path-cut-here", 23, "example.com", "/path" },
    { "http://user:pw@example.com/", -1, NULL, NULL },
    { "http://user@example.com", -1, NULL, NULL },
    { "http://@example.com/", -1, NULL, NULL },
    { "ftp://example.com/", -1, NULL, NULL },
    { "ws://example.com/", -1, NULL, NULL },
    { "httpx://example.com/", -1, NULL, NULL },
    { "http:/example.com/", -1, NULL, NULL },
    { "http:example.com", -1, NULL, NULL },
    { "http://", -1, NULL, NULL },
    { "https://", -1, NULL, NULL },
    { "http:///path", -1, NULL, NULL },
    { "/path", -1, NULL, NULL },
    { "example.com:80", -1, NULL, NULL },
    { "*", -1, NULL, NULL },
    { "", -1, NULL, NULL },
    { "http://example.com/", 6, NULL, NULL },
};

START_TEST(test_split_absolute)
{
    const char *t = abs_cases[_i].target;
    size_t len = abs_cases[_i].len < 0 ? strlen(t) : (size_t)abs_cases[_i].len;
    const char *auth = NULL, *origin = NULL;
    size_t auth_len = 999, origin_len = 999;
    int rc = rp_http_split_absolute(t, len, &auth, &auth_len, &origin, &origin_len);
    if (abs_cases[_i].authority == NULL) {
        ck_assert_msg(rc == -1, "\"%.*s\" accepted", (int)len, t);
        return;
    }
    ck_assert_msg(rc == 0, "\"%.*s\" rejected", (int)len, t);
    ck_assert_uint_eq(auth_len, strlen(abs_cases[_i].authority));
    ck_assert_mem_eq(auth, abs_cases[_i].authority, auth_len);
    ck_assert_uint_eq(origin_len, strlen(abs_cases[_i].origin));
    if (origin_len > 0)
        ck_assert_mem_eq(origin, abs_cases[_i].origin, origin_len);
    /* both point into the target */
    ck_assert(auth >= t && auth + auth_len <= t + len);
    ck_assert(origin >= t && origin + origin_len <= t + len);
}
END_TEST

/* ---- reasons and methods ---- */

static const struct {
    int status;
    const char *reason;
} reason_cases[] = {
    { 100, "Continue" },
    { 200, "OK" },
    { 204, "No Content" },
    { 301, "Moved Permanently" },
    { 304, "Not Modified" },
    { 400, "Bad Request" },
    { 404, "Not Found" },
    { 405, "Method Not Allowed" },
    { 408, "Request Timeout" },
    { 413, "Content Too Large" },
    { 414, "URI Too Long" },
    { 417, "Expectation Failed" },
    { 429, "Too Many Requests" },
    { 431, "Request Header Fields Too Large" },
    { 500, "Internal Server Error" },
    { 502, "Bad Gateway" },
    { 503, "Service Unavailable" },
    { 504, "Gateway Timeout" },
    { 505, "HTTP Version Not Supported" },
    { 418, "Unknown" },
    { 299, "Unknown" },
    { 999, "Unknown" },
    { 0, "Unknown" },
    { -1, "Unknown" },
};

START_TEST(test_reason)
{
    ck_assert_str_eq(rp_http_reason(reason_cases[_i].status), reason_cases[_i].reason);
}
END_TEST

static const struct {
    int method;
    const char *name;
    bool idempotent;
} method_cases[] = {
    { HTTP_GET, "GET", true },
    { HTTP_HEAD, "HEAD", true },
    { HTTP_PUT, "PUT", true },
    { HTTP_DELETE, "DELETE", true },
    { HTTP_OPTIONS, "OPTIONS", true },
    { HTTP_TRACE, "TRACE", true },
    { HTTP_POST, "POST", false },
    { HTTP_PATCH, "PATCH", false },
    { HTTP_CONNECT, "CONNECT", false },
    { HTTP_PROPFIND, "PROPFIND", false },
    { HTTP_LOCK, "LOCK", false },
};

START_TEST(test_trace_id)
{
    char id[33];
    static const char *const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ck_assert(rp_http_trace_id(good, strlen(good), id));
    ck_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    /* A later version may carry more fields after its own. */
    static const char *const later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz";
    ck_assert(rp_http_trace_id(later, strlen(later), id));
    static const char *const bad[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",   /* 00 with more */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",     /* misplaced dash */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",      /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",     /* flags not hex */
        "", "00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!rp_http_trace_id(bad[i], strlen(bad[i]), id), "%s", bad[i]);
}
END_TEST

START_TEST(test_method_idempotent)
{
    ck_assert_msg(rp_http_method_idempotent(method_cases[_i].method)
                  == method_cases[_i].idempotent, "%s", method_cases[_i].name);
    ck_assert_str_eq(rp_http_method_str(method_cases[_i].method), method_cases[_i].name);
}
END_TEST

/* ---- suite ---- */

static Suite *
http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("head_build");
    tcase_add_test(tc, test_head_build);
    tcase_add_test(tc, test_head_empty_values);
    tcase_add_test(tc, test_head_values_trimmed);
    tcase_add_test(tc, test_head_many_fields_and_reset);
    tcase_add_test(tc, test_head_value_without_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("head_limit");
    tcase_add_loop_test(tc, test_head_limit, 0, NCASES(limit_cases));
    tcase_add_test(tc, test_head_limit_incremental);
    suite_add_tcase(s, tc);

    tc = tcase_create("find");
    tcase_add_loop_test(tc, test_find, 0, NCASES(find_cases));
    tcase_add_test(tc, test_find_empty_head);
    suite_add_tcase(s, tc);

    tc = tcase_create("list_has");
    tcase_add_loop_test(tc, test_list_has, 0, NCASES(list_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("hop_by_hop");
    tcase_add_test(tc, test_hop_by_hop);
    tcase_add_test(tc, test_hop_by_hop_no_extra);
    tcase_add_test(tc, test_hop_by_hop_several_connection);
    tcase_add_test(tc, test_hop_by_hop_connection_elements);
    tcase_add_test(tc, test_hop_by_hop_many_connection);
    tcase_add_loop_test(tc, test_transfer_codings, 0, NCASES(te_cases));
    tcase_add_test(tc, test_transfer_codings_absent);
    tcase_add_test(tc, test_hop_by_hop_end_to_end_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("request_id");
    tcase_add_loop_test(tc, test_request_id_valid, 0, NCASES(rid_cases));
    tcase_add_loop_test(tc, test_request_id_length, 0, NCASES(rid_lengths));
    tcase_add_test(tc, test_request_id_new);
    suite_add_tcase(s, tc);

    tc = tcase_create("host_normalize");
    tcase_add_loop_test(tc, test_host_normalize, 0, NCASES(host_cases));
    tcase_add_test(tc, test_host_normalize_capacity);
    suite_add_tcase(s, tc);

    tc = tcase_create("split_absolute");
    tcase_add_loop_test(tc, test_split_absolute, 0, NCASES(abs_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("reason");
    tcase_add_loop_test(tc, test_reason, 0, NCASES(reason_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("method_idempotent");
    tcase_add_loop_test(tc, test_method_idempotent, 0, NCASES(method_cases));
    tcase_add_test(tc, test_trace_id);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
