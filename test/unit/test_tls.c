/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for `listeners[].tls` (src/tls.c): settings and their dump,
 * every error with its JSON path, certificate warnings, SNI selection as a
 * pure function and in real handshakes, ALPN, protocol versions, and
 * session resumption across two builds of the same configuration.
 *
 * Certificates are made here with OpenSSL (EC P-256 keys, X509 with
 * subjectAltNames, signed by a test CA) and written as PEM files into a
 * temporary directory; handshakes run in memory over a BIO pair.  The
 * TLS transport (src/transport_tls.c) runs on a socket pair with a client
 * SSL on the other end.
 */
#include "config.h"
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "revproxy/config.h"
#include "tls.h"
#include "transport_tls.h"

#define DAY (24L * 60 * 60)

static char dir[256];

/* ---- test certificates ---- */

static EVP_PKEY *
new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    return k;
}

/* A certificate for key, valid from `from` to `to` seconds from now, with
 * subject CN cn and the subjectAltName san ("DNS:a,DNS:b", or NULL for
 * none), signed by ca (or self-signed when ca is NULL). */
static X509 *
new_cert(EVP_PKEY *key, const char *cn, const char *san, long from, long to,
         X509 *ca, EVP_PKEY *ca_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), from));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), to));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1, -1, 0), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : name), 1);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca != NULL ? ca : x, x, NULL, NULL, 0);
    if (san != NULL) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
    }
    if (ca == NULL) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                                "critical,CA:TRUE");
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
    }
    ck_assert_int_gt(X509_sign(x, ca_key != NULL ? ca_key : key, EVP_sha256()), 0);
    return x;
}

static void
file_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void
write_text(const char *name, const char *text)
{
    char p[512];
    file_path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* name.crt: the leaf then the CA (a chain); name.key: the key, encrypted
 * with a password when encrypt. */
static void
write_pair(const char *name, X509 *leaf, X509 *ca, EVP_PKEY *key, bool encrypt)
{
    char p[512], file[128];
    snprintf(file, sizeof file, "%s.crt", name);
    file_path(p, sizeof p, file);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, leaf), 1);
    if (ca != NULL)
        ck_assert_int_eq(PEM_write_X509(f, ca), 1);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(file, sizeof file, "%s.key", name);
    file_path(p, sizeof p, file);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    if (encrypt)
        ck_assert_int_eq(PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(),
                                              (const unsigned char *)"secret", 6, NULL, NULL), 1);
    else
        ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void
make_leaf(const char *name, const char *cn, const char *san, long from, long to,
          X509 *ca, EVP_PKEY *ca_key)
{
    EVP_PKEY *k = new_key();
    X509 *x = new_cert(k, cn, san, from, to, ca, ca_key);
    write_pair(name, x, ca, k, strcmp(name, "enc") == 0);
    X509_free(x);
    EVP_PKEY_free(k);
}

static const char *const files[] = {
    "a.crt", "a.key", "wild.crt", "wild.key", "api.crt", "api.key", "cn.crt", "cn.key",
    "expired.crt", "expired.key", "future.crt", "future.key", "enc.crt", "enc.key",
    "garbage.pem", NULL };

/* Every test gets a fresh directory with:
 *   a        default certificate, SAN a.test (signed by the test CA)
 *   wild     SAN *.example.com
 *   api      SAN api.example.com, API2.example.com
 *   cn       no SAN, CN cn-only.test (self-signed)
 *   expired  SAN a.test, expired yesterday
 *   future   SAN a.test, valid from tomorrow
 *   enc      SAN a.test, its key encrypted with a password
 *   garbage.pem  not PEM at all */
static void
setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rp-test-tls-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    EVP_PKEY *ca_key = new_key();
    X509 *ca = new_cert(ca_key, "revproxy test CA", NULL, -DAY, 30 * DAY, NULL, NULL);
    make_leaf("a", "a.test", "DNS:a.test", -DAY, 30 * DAY, ca, ca_key);
    make_leaf("wild", "wildcard", "DNS:*.example.com", -DAY, 30 * DAY, ca, ca_key);
    make_leaf("api", "api", "DNS:api.example.com,DNS:API2.example.com,IP:127.0.0.1",
              -DAY, 30 * DAY, ca, ca_key);
    make_leaf("cn", "cn-only.test", NULL, -DAY, 30 * DAY, NULL, NULL);
    make_leaf("expired", "expired", "DNS:a.test", -10 * DAY, -DAY, ca, ca_key);
    make_leaf("future", "future", "DNS:a.test", DAY, 30 * DAY, ca, ca_key);
    make_leaf("enc", "enc", "DNS:a.test", -DAY, 30 * DAY, ca, ca_key);
    write_text("garbage.pem", "this is not a certificate\n");
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

static void
teardown(void)
{
    char p[512];
    for (size_t i = 0; files[i] != NULL; i++) {
        file_path(p, sizeof p, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- documents ---- */

/* text with every "$D" replaced by the test directory. */
static char *
subst(const char *text)
{
    size_t cap = strlen(text) * 2 + 4096, len = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    for (const char *s = text; *s != '\0'; s++) {
        if (s[0] == '$' && s[1] == 'D') {
            size_t n = strlen(dir);
            ck_assert_uint_lt(len + n, cap);
            memcpy(out + len, dir, n);
            len += n;
            s++;
        } else {
            ck_assert_uint_lt(len + 1, cap);
            out[len++] = *s;
        }
    }
    out[len] = '\0';
    return out;
}

static json_t *
doc(const char *text)
{
    char *t = subst(text);
    json_error_t jerr;
    json_t *root = json_loads(t, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    ck_assert_msg(root != NULL, "test document does not parse: %s: %s", jerr.text, t);
    free(t);
    return root;
}

static void
dump_errs(const char *what, const rp_errs_t *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "  %s %zu: %s\n", what, i, errs->msgs[i]);
}

#define PAIR(n) "{\"cert\": \"$D/" n ".crt\", \"key\": \"$D/" n ".key\"}"
#define PATH "listeners[1].tls"

/* Parse text as listener 1's tls; it must succeed without warnings. */
static rp_tls_ctx_t *
parse_ok(const char *text)
{
    json_t *root = doc(text);
    rp_errs_t errs = { 0 }, warns = { 0 };
    rp_tls_ctx_t *c = NULL;
    int rc = rp_tls_ctx_parse(root, PATH, &c, &errs, &warns);
    if (rc != 0 || warns.count != 0) {
        dump_errs("error", &errs);
        dump_errs("warning", &warns);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(warns.count, 0);
    ck_assert_ptr_nonnull(c);
    json_decref(root);
    return c;
}

/* ---- settings and dump ---- */

START_TEST(test_defaults_and_dump)
{
    rp_tls_ctx_t *c = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    json_t *d = rp_tls_ctx_dump(c);
    json_t *want_certs = doc("[" PAIR("a") "]");
    ck_assert(json_equal(json_object_get(d, "certificates"), want_certs));
    ck_assert_str_eq(json_string_value(json_object_get(d, "min_version")), "TLSv1.2");
    json_t *want_alpn = json_pack("[s,s]", "h2", "http/1.1");
    ck_assert(json_equal(json_object_get(d, "alpn"), want_alpn));
    /* The cipher lists OpenSSL resolved: TLS 1.2 names in one, TLS 1.3
     * suites in the other. */
    const char *ciphers = json_string_value(json_object_get(d, "ciphers"));
    const char *suites = json_string_value(json_object_get(d, "ciphersuites"));
    ck_assert_ptr_nonnull(ciphers);
    ck_assert_ptr_nonnull(suites);
    ck_assert_ptr_nonnull(strstr(ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    ck_assert_ptr_null(strstr(ciphers, "TLS_AES"));
    ck_assert_ptr_nonnull(strstr(suites, "TLS_AES_256_GCM_SHA384"));
    ck_assert_ptr_null(strstr(suites, "ECDHE"));
    ck_assert_uint_eq(json_object_size(d), 5);

    /* The dump parses again, to the same settings. */
    rp_errs_t errs = { 0 }, warns = { 0 };
    rp_tls_ctx_t *c2 = NULL;
    ck_assert_int_eq(rp_tls_ctx_parse(d, PATH, &c2, &errs, &warns), 0);
    json_t *d2 = rp_tls_ctx_dump(c2);
    ck_assert(json_equal(d, d2));
    json_decref(d2);
    json_decref(d);
    json_decref(want_certs);
    json_decref(want_alpn);
    rp_tls_ctx_free(c2);
    rp_tls_ctx_free(c);
    rp_tls_ctx_free(NULL);
}
END_TEST

START_TEST(test_settings_dump_as_given)
{
    static const char text[] =
        "{\"certificates\": [" PAIR("a") ", " PAIR("wild") "],"
        " \"min_version\": \"TLSv1.3\","
        " \"ciphers\": \"ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL\","
        " \"ciphersuites\": \"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\","
        " \"alpn\": [\"http/1.1\", \"h2\"]}";
    rp_tls_ctx_t *c = parse_ok(text);
    json_t *d = rp_tls_ctx_dump(c);
    json_t *want = doc(text);
    ck_assert(json_equal(d, want));
    json_decref(want);
    json_decref(d);
    rp_tls_ctx_free(c);
}
END_TEST

/* ---- errors, with their JSON paths ---- */

#define MAX_EXPECT 3

typedef struct bad_case {
    const char *doc;
    const char *want[MAX_EXPECT];   /* every error; a trailing '*' matches a prefix */
} bad_case_t;

#define P0 PATH ".certificates[0]"

static const bad_case_t bad_cases[] = {
    { "[]", { PATH ": must be an object, not an array" } },
    { "{}", { PATH ".certificates: required: at least one certificate" } },
    { "{\"certificates\": {}}", { PATH ".certificates: must be an array, not an object" } },
    { "{\"certificates\": []}", { PATH ".certificates: must contain at least one certificate" } },
    { "{\"certificates\": [\"$D/a.crt\"]}", { P0 ": must be an object, not a string" } },
    { "{\"certificates\": [{\"key\": \"$D/a.key\"}]}", { P0 ".cert: required" } },
    { "{\"certificates\": [{\"cert\": \"$D/a.crt\"}]}", { P0 ".key: required" } },
    { "{\"certificates\": [{\"cert\": 1, \"key\": \"$D/a.key\"}]}",
      { P0 ".cert: must be a string, not an integer" } },
    { "{\"certificates\": [{\"cert\": \"a.crt\", \"key\": \"$D/a.key\"}]}",
      { P0 ".cert: must be an absolute path" } },
    { "{\"certificates\": [{\"cert\": \"$D/a.crt\", \"key\": \"$D/a.key\", \"chain\": \"x\"}]}",
      { P0 ".chain: unknown key" } },
    { "{\"certificates\": [" PAIR("a") "], \"session_tickets\": false}",
      { PATH ".session_tickets: unknown key" } },
    /* files */
    { "{\"certificates\": [{\"cert\": \"$D/nope.pem\", \"key\": \"$D/a.key\"}]}",
      { P0 ".cert: cannot read $D/nope.pem: No such file or directory" } },
    { "{\"certificates\": [{\"cert\": \"$D/a.crt\", \"key\": \"$D/nope.pem\"}]}",
      { P0 ".key: cannot read $D/nope.pem: No such file or directory" } },
    { "{\"certificates\": [{\"cert\": \"$D\", \"key\": \"$D/a.key\"}]}",
      { P0 ".cert: cannot read $D: Is a directory" } },
    { "{\"certificates\": [{\"cert\": \"$D/garbage.pem\", \"key\": \"$D/a.key\"}]}",
      { P0 ".cert: cannot load a PEM certificate chain from $D/garbage.pem: "
        "no certificate found" } },
    { "{\"certificates\": [{\"cert\": \"$D/garbage.pem\", \"key\": \"$D/garbage.pem\"}]}",
      { P0 ".cert: cannot load a PEM certificate chain from $D/garbage.pem: no certificate found",
        P0 ".key: cannot load a PEM private key from $D/garbage.pem: no private key found" } },
    /* a key where the certificate should be, and the other way round */
    { "{\"certificates\": [{\"cert\": \"$D/a.key\", \"key\": \"$D/a.crt\"}]}",
      { P0 ".cert: cannot load a PEM certificate chain from $D/a.key: no certificate found",
        P0 ".key: cannot load a PEM private key from $D/a.crt: no private key found" } },
    { "{\"certificates\": [" PAIR("enc") "]}",
      { P0 ".key: cannot load a PEM private key from $D/enc.key: the key is encrypted "
        "(only unencrypted keys can be read)" } },
    { "{\"certificates\": [{\"cert\": \"$D/a.crt\", \"key\": \"$D/api.key\"}]}",
      { P0 ".key: the private key in $D/api.key does not match the certificate in $D/a.crt" } },
    /* both files of one entry reported at once, and later entries too */
    { "{\"certificates\": [{\"cert\": \"$D/nope.crt\", \"key\": \"$D/nope.key\"}, "
      "{\"cert\": \"$D/a.crt\", \"key\": \"$D/wild.key\"}]}",
      { P0 ".cert: cannot read $D/nope.crt: No such file or directory",
        P0 ".key: cannot read $D/nope.key: No such file or directory",
        PATH ".certificates[1].key: the private key in $D/wild.key does not match the "
        "certificate in $D/a.crt" } },
    /* min_version */
    { "{\"certificates\": [" PAIR("a") "], \"min_version\": \"TLSv1.1\"}",
      { PATH ".min_version: must be \"TLSv1.2\" or \"TLSv1.3\", not \"TLSv1.1\"" } },
    { "{\"certificates\": [" PAIR("a") "], \"min_version\": 1.2}",
      { PATH ".min_version: must be a string, not a number with a fraction" } },
    /* alpn */
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": \"h2\"}",
      { PATH ".alpn: must be an array, not a string" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": []}",
      { PATH ".alpn: must contain at least one protocol" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": [\"h2\", \"h2\"]}",
      { PATH ".alpn[1]: \"h2\" is listed twice" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": [\"http/1.1\", \"h2\", \"http/1.1\"]}",
      { PATH ".alpn[2]: \"http/1.1\" is listed twice" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": [\"h2\", \"spdy/3\"]}",
      { PATH ".alpn[1]: must be \"h2\" or \"http/1.1\", not \"spdy/3\"" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": [\"HTTP/1.1\"]}",
      { PATH ".alpn[0]: must be \"h2\" or \"http/1.1\", not \"HTTP/1.1\"" } },
    { "{\"certificates\": [" PAIR("a") "], \"alpn\": [2]}",
      { PATH ".alpn[0]: must be a string, not an integer" } },
    /* ciphers */
    { "{\"certificates\": [" PAIR("a") "], \"ciphers\": \"NO-SUCH-CIPHER\"}",
      { PATH ".ciphers: \"NO-SUCH-CIPHER\" matches no TLS 1.2 cipher" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphers\": \"HIGH:ECDHE-RSA-AES128-GCM-SHA257\"}",
      { PATH ".ciphers: \"ECDHE-RSA-AES128-GCM-SHA257\" matches no TLS 1.2 cipher" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphers\": \"TLS_AES_128_GCM_SHA256\"}",
      { PATH ".ciphers: \"TLS_AES_128_GCM_SHA256\" matches no TLS 1.2 cipher" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphers\": \"\"}",
      { PATH ".ciphers: must be 1 to 4096 characters" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphers\": [\"HIGH\"]}",
      { PATH ".ciphers: must be a string, not an array" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphersuites\": \"TLS_AES_128_GCM_SHA256:TLS_FOO\"}",
      { PATH ".ciphersuites: unknown TLS 1.3 cipher suite \"TLS_FOO\"" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphersuites\": \"ECDHE-RSA-AES128-GCM-SHA256\"}",
      { PATH ".ciphersuites: unknown TLS 1.3 cipher suite \"ECDHE-RSA-AES128-GCM-SHA256\"" } },
    { "{\"certificates\": [" PAIR("a") "], \"ciphersuites\": \"\"}",
      { PATH ".ciphersuites: must be 1 to 4096 characters" } },
    /* several problems, one pass */
    { "{\"certificates\": [{\"cert\": \"$D/a.crt\", \"key\": \"$D/nope.key\"}],"
      " \"min_version\": \"SSLv3\", \"alpn\": [\"h3\"]}",
      { P0 ".key: cannot read $D/nope.key: No such file or directory",
        PATH ".min_version: must be \"TLSv1.2\" or \"TLSv1.3\", not \"SSLv3\"",
        PATH ".alpn[0]: must be \"h2\" or \"http/1.1\", not \"h3\"" } },
};

static bool
line_matches(const char *line, const char *want)
{
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*')
        return strncmp(line, want, n - 1) == 0 && strlen(line) > n - 1;
    return strcmp(line, want) == 0;
}

START_TEST(test_errors_exact)
{
    const bad_case_t *bc = &bad_cases[_i];
    json_t *root = doc(bc->doc);
    rp_errs_t errs = { 0 }, warns = { 0 };
    static rp_tls_ctx_t *const sentinel = (rp_tls_ctx_t *)&dir;
    rp_tls_ctx_t *c = sentinel;
    int rc = rp_tls_ctx_parse(root, PATH, &c, &errs, &warns);
    size_t nwant = 0;
    while (nwant < MAX_EXPECT && bc->want[nwant] != NULL)
        nwant++;
    if (errs.count != nwant)
        dump_errs("error", &errs);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_eq(c, sentinel);
    ck_assert_msg(errs.count == nwant, "case %d: %zu errors, expected %zu (first: %s)",
                  _i, errs.count, nwant, bc->want[0]);
    for (size_t i = 0; i < nwant; i++) {
        char *want = subst(bc->want[i]);
        bool found = false;
        for (size_t j = 0; j < errs.count && !found; j++)
            found = line_matches(errs.msgs[j], want);
        if (!found)
            dump_errs("error", &errs);
        ck_assert_msg(found, "case %d: missing error \"%s\"", _i, want);
        free(want);
    }
    ck_assert_uint_eq(warns.count, 0);
    /* Nothing left behind for the next OpenSSL call on this thread. */
    ck_assert_uint_eq(ERR_peek_error(), 0);
    rp_errs_free(&errs);
    json_decref(root);
}
END_TEST

/* ---- warnings ---- */

START_TEST(test_expired_is_a_warning)
{
    json_t *root = doc("{\"certificates\": [" PAIR("expired") ", " PAIR("future") "]}");
    rp_errs_t errs = { 0 }, warns = { 0 };
    rp_tls_ctx_t *c = NULL;
    ck_assert_int_eq(rp_tls_ctx_parse(root, PATH, &c, &errs, &warns), 0);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_ptr_nonnull(c);
    if (warns.count != 2)
        dump_errs("warning", &warns);
    ck_assert_uint_eq(warns.count, 2);
    ck_assert(line_matches(warns.msgs[0],
                           PATH ".certificates[0].cert: certificate expired on *"));
    ck_assert_ptr_nonnull(strstr(warns.msgs[0], " UTC"));
    ck_assert(line_matches(warns.msgs[1],
                           PATH ".certificates[1].cert: certificate is not valid before *"));
    rp_errs_free(&warns);
    rp_tls_ctx_free(c);
    json_decref(root);
}
END_TEST

START_TEST(test_nameless_certificate_warning)
{
    /* The self-signed "cn" certificate has a CN: no warning.  A second
     * certificate without any DNS name could never be picked. */
    EVP_PKEY *k = new_key();
    X509 *x = new_cert(k, "not a host name!", "IP:127.0.0.1", -DAY, DAY, NULL, NULL);
    write_pair("nameless", x, NULL, k, false);
    X509_free(x);
    EVP_PKEY_free(k);
    json_t *root = doc("{\"certificates\": [" PAIR("a") ", " PAIR("cn") ", " PAIR("nameless") "]}");
    rp_errs_t errs = { 0 }, warns = { 0 };
    rp_tls_ctx_t *c = NULL;
    ck_assert_int_eq(rp_tls_ctx_parse(root, PATH, &c, &errs, &warns), 0);
    ck_assert_uint_eq(warns.count, 1);
    ck_assert_str_eq(warns.msgs[0], PATH ".certificates[2].cert: certificate has no DNS name "
                     "(subjectAltName or common name): no server name selects it");
    rp_errs_free(&warns);
    rp_tls_ctx_free(c);
    json_decref(root);
    char p[512];
    file_path(p, sizeof p, "nameless.crt");
    unlink(p);
    file_path(p, sizeof p, "nameless.key");
    unlink(p);
}
END_TEST

/* Through the snapshot: warnings survive the build, the dump includes
 * `tls` and builds again. */
START_TEST(test_snapshot_warnings_and_dump)
{
    json_t *root = doc(
        "{\"listeners\": [{\"address\": \"127.0.0.1:8080\"},"
        "                 {\"address\": \"127.0.0.1:8443\", \"tls\": {\"certificates\": ["
        PAIR("expired") "]}}],"
        " \"upstreams\": {\"app\": {\"backends\": [{\"address\": \"127.0.0.1:9000\"}]}},"
        " \"routes\": [{\"upstream\": \"app\"}]}");
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    int rc = rp_snapshot_build(root, &s, &errs);
    if (rc != 0)
        dump_errs("error", &errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_null(s->listeners[0].tls);
    ck_assert_ptr_nonnull(s->listeners[1].tls);
    ck_assert_uint_eq(s->warnings.count, 1);
    ck_assert(line_matches(s->warnings.msgs[0],
                           "listeners[1].tls.certificates[0].cert: certificate expired on *"));

    json_t *d = rp_snapshot_dump(s);
    const json_t *ls = json_object_get(d, "listeners");
    ck_assert_ptr_null(json_object_get(json_array_get(ls, 0), "tls"));
    const json_t *t = json_object_get(json_array_get(ls, 1), "tls");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(json_string_value(json_object_get(t, "min_version")), "TLSv1.2");
    rp_snapshot_t *s2 = NULL;
    ck_assert_int_eq(rp_snapshot_build(d, &s2, &errs), 0);
    ck_assert_uint_eq(s2->warnings.count, 1);
    json_t *d2 = rp_snapshot_dump(s2);
    ck_assert(json_equal(d, d2));
    json_decref(d2);
    json_decref(d);
    rp_snapshot_unref(s2);
    rp_snapshot_unref(s);
    json_decref(root);
}
END_TEST

/* ---- SNI as a pure function ---- */

static char *names_0[] = { "a.test" };
static char *names_1[] = { "*.example.com", "www.example.org" };
static char *names_2[] = { "api.example.com" };
static char *names_3[] = { "*.b.example.com" };
static const rp_tls_names_t sni_certs[] = {
    { names_0, 1, false }, { names_1, 2, false }, { names_2, 1, false }, { names_3, 1, false },
};

static const struct { const char *name; size_t want; } sni_cases[] = {
    { "a.test", 0 },
    { "www.example.org", 1 },
    { "www.example.com", 1 },          /* wildcard */
    { "api.example.com", 2 },          /* exact beats the earlier wildcard */
    { "API.Example.COM", 2 },          /* case-insensitive */
    { "WWW.EXAMPLE.COM", 1 },
    { "x.b.example.com", 3 },          /* one label only: not *.example.com */
    { "b.example.com", 1 },
    { "example.com", 0 },              /* a wildcard never matches the bare domain */
    { ".example.com", 0 },             /* the label must not be empty */
    { "a.b.c.example.com", 0 },
    { "api.example.com.", 2 },         /* absolute form */
    { "unknown.test", 0 },             /* no match: the default */
    { "", 0 },
    { NULL, 0 },                       /* no SNI */
};

START_TEST(test_sni_pick)
{
    ck_assert_uint_eq(rp_tls_sni_pick(sni_certs, 4, sni_cases[_i].name), sni_cases[_i].want);
}
END_TEST

START_TEST(test_sni_pick_first_wins)
{
    static char *w1[] = { "*.example.com" }, *w2[] = { "*.example.com", "x.example.com" };
    static const rp_tls_names_t certs[] = { { NULL, 0, false }, { w1, 1, false }, { w2, 2, false } };
    ck_assert_uint_eq(rp_tls_sni_pick(certs, 3, "y.example.com"), 1);
    ck_assert_uint_eq(rp_tls_sni_pick(certs, 3, "x.example.com"), 2);
    ck_assert_uint_eq(rp_tls_sni_pick(certs, 0, "x.example.com"), 0);
}
END_TEST

/* ---- handshakes in memory ---- */

typedef struct client_opts {
    const char *sni;
    const unsigned char *alpn;   /* wire format, or NULL */
    unsigned int alpn_len;
    int max_version;             /* 0: TLS 1.3 */
    SSL_SESSION *session;        /* to resume, or NULL */
    bool no_ticket;
} client_opts_t;

typedef struct hs {
    SSL_CTX *cctx;
    SSL *cli, *srv;
    unsigned long srv_err;       /* the server's first error on failure */
} hs_t;

/* Handshake a client with opts against a new server SSL of c, over a BIO
 * pair.  0 when both sides finished, -1 when one failed. */
static int
handshake(hs_t *h, const rp_tls_ctx_t *c, const client_opts_t *o)
{
    memset(h, 0, sizeof *h);
    h->cctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(h->cctx);
    if (o->max_version != 0)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(h->cctx, o->max_version), 1);
    if (o->no_ticket)
        SSL_CTX_set_options(h->cctx, SSL_OP_NO_TICKET);
    h->cli = SSL_new(h->cctx);
    h->srv = rp_tls_ssl_new(c);
    ck_assert_ptr_nonnull(h->cli);
    ck_assert_ptr_nonnull(h->srv);
    if (o->sni != NULL)
        ck_assert_int_eq(SSL_set_tlsext_host_name(h->cli, o->sni), 1);
    if (o->alpn != NULL)
        ck_assert_int_eq(SSL_set_alpn_protos(h->cli, o->alpn, o->alpn_len), 0);
    if (o->session != NULL)
        ck_assert_int_eq(SSL_set_session(h->cli, o->session), 1);
    BIO *bc, *bs;
    ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(h->cli, bc, bc);
    SSL_set_bio(h->srv, bs, bs);
    SSL_set_connect_state(h->cli);
    SSL_set_accept_state(h->srv);

    bool cdone = false, sdone = false;
    for (int round = 0; round < 32 && !(cdone && sdone); round++) {
        if (!cdone) {
            ERR_clear_error();
            int r = SSL_do_handshake(h->cli);
            if (r == 1) {
                cdone = true;
            } else {
                int e = SSL_get_error(h->cli, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return -1;
            }
        }
        if (!sdone) {
            ERR_clear_error();
            int r = SSL_do_handshake(h->srv);
            if (r == 1) {
                sdone = true;
            } else {
                int e = SSL_get_error(h->srv, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    h->srv_err = ERR_peek_error();
                    return -1;
                }
            }
        }
    }
    if (!(cdone && sdone))
        return -1;
    /* TLS 1.3 tickets come after the handshake: let the client read them. */
    unsigned char b;
    ck_assert_int_le(SSL_read(h->cli, &b, 1), 0);
    ERR_clear_error();
    return 0;
}

/* A clean close first: OpenSSL marks the session of a connection freed
 * without close_notify as not resumable. */
static void
hs_free(hs_t *h)
{
    if (SSL_is_init_finished(h->cli) && SSL_is_init_finished(h->srv)) {
        SSL_shutdown(h->cli);
        SSL_shutdown(h->srv);
    }
    SSL_free(h->cli);
    SSL_free(h->srv);
    SSL_CTX_free(h->cctx);
    ERR_clear_error();
}

/* The CN of the certificate the server presented. */
static void
peer_cn(SSL *cli, char *buf, int cap)
{
    X509 *x = SSL_get0_peer_certificate(cli);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_gt(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
                                               buf, cap), 0);
}

#define ALPN_H2 (const unsigned char *)"\x02h2", 3
#define ALPN_H11 (const unsigned char *)"\x08http/1.1", 9
#define ALPN_BOTH (const unsigned char *)"\x08http/1.1\x02h2", 12
#define ALPN_OTHER (const unsigned char *)"\x06spdy/3\x02h3", 10

#define SNI_DOC "{\"certificates\": [" PAIR("a") ", " PAIR("wild") ", " PAIR("api") ", " \
    PAIR("cn") "]}"

static const struct { const char *sni, *cn; } hs_sni_cases[] = {
    { NULL, "a.test" },
    { "a.test", "a.test" },
    { "www.example.com", "wildcard" },
    { "api.example.com", "api" },
    { "API2.EXAMPLE.com", "api" },
    { "x.y.example.com", "a.test" },
    { "example.com", "a.test" },
    { "cn-only.test", "cn-only.test" },   /* no SAN: the CN counts */
    { "other.test", "a.test" },
};

START_TEST(test_handshake_sni)
{
    rp_tls_ctx_t *c = parse_ok(SNI_DOC);
    hs_t h;
    client_opts_t o = { .sni = hs_sni_cases[_i].sni, .alpn = ALPN_BOTH };
    ck_assert_int_eq(handshake(&h, c, &o), 0);
    char cn[128];
    peer_cn(h.cli, cn, sizeof cn);
    ck_assert_str_eq(cn, hs_sni_cases[_i].cn);
    /* The ALPN callback works on the switched contexts too; the server's
     * preference (h2 first) wins over the client's. */
    ck_assert_int_eq(rp_tls_alpn(h.srv), RP_ALPN_H2);
    hs_free(&h);
    rp_tls_ctx_free(c);
}
END_TEST

static const struct {
    const char *alpn_conf;           /* the "alpn" setting, or NULL */
    const unsigned char *offer;
    unsigned int offer_len;
    int rc;
    rp_alpn_t want;
} hs_alpn_cases[] = {
    { NULL, ALPN_BOTH, 0, RP_ALPN_H2 },
    { NULL, ALPN_H11, 0, RP_ALPN_HTTP11 },
    { NULL, ALPN_H2, 0, RP_ALPN_H2 },
    { NULL, NULL, 0, 0, RP_ALPN_NONE },                  /* no ALPN: HTTP/1.1 */
    { NULL, ALPN_OTHER, -1, RP_ALPN_NONE },              /* no_application_protocol */
    { "[\"http/1.1\", \"h2\"]", ALPN_BOTH, 0, RP_ALPN_HTTP11 },
    { "[\"http/1.1\"]", ALPN_BOTH, 0, RP_ALPN_HTTP11 },
    { "[\"http/1.1\"]", ALPN_H2, -1, RP_ALPN_NONE },
    { "[\"h2\"]", ALPN_H11, -1, RP_ALPN_NONE },
    { "[\"h2\"]", NULL, 0, 0, RP_ALPN_NONE },
};

START_TEST(test_handshake_alpn)
{
    char text[1024];
    if (hs_alpn_cases[_i].alpn_conf != NULL)
        snprintf(text, sizeof text, "{\"certificates\": [" PAIR("a") ", " PAIR("api") "],"
                 " \"alpn\": %s}", hs_alpn_cases[_i].alpn_conf);
    else
        snprintf(text, sizeof text, "{\"certificates\": [" PAIR("a") ", " PAIR("api") "]}");
    rp_tls_ctx_t *c = parse_ok(text);
    /* Over the default context and over a switched one. */
    for (int sni = 0; sni < 2; sni++) {
        hs_t h;
        client_opts_t o = { .sni = sni ? "api.example.com" : NULL,
                            .alpn = hs_alpn_cases[_i].offer,
                            .alpn_len = hs_alpn_cases[_i].offer_len };
        int rc = handshake(&h, c, &o);
        ck_assert_int_eq(rc, hs_alpn_cases[_i].rc);
        if (rc == 0)
            ck_assert_int_eq(rp_tls_alpn(h.srv), hs_alpn_cases[_i].want);
        else
            ck_assert_str_eq(rp_tls_failure_reason(h.srv_err), "no_application_protocol");
        hs_free(&h);
    }
    rp_tls_ctx_free(c);
}
END_TEST

START_TEST(test_min_version)
{
    rp_tls_ctx_t *c13 = parse_ok("{\"certificates\": [" PAIR("a") "],"
                                 " \"min_version\": \"TLSv1.3\"}");
    rp_tls_ctx_t *c12 = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    hs_t h;
    client_opts_t o12 = { .max_version = TLS1_2_VERSION };
    client_opts_t o13 = { 0 };

    ck_assert_int_eq(handshake(&h, c13, &o12), -1);
    ck_assert_str_eq(rp_tls_failure_reason(h.srv_err), "protocol_version");
    hs_free(&h);

    ck_assert_int_eq(handshake(&h, c13, &o13), 0);
    ck_assert_int_eq(SSL_version(h.srv), TLS1_3_VERSION);
    hs_free(&h);

    ck_assert_int_eq(handshake(&h, c12, &o12), 0);
    ck_assert_int_eq(SSL_version(h.srv), TLS1_2_VERSION);
    hs_free(&h);
    ck_assert_int_eq(handshake(&h, c12, &o13), 0);
    ck_assert_int_eq(SSL_version(h.srv), TLS1_3_VERSION);
    hs_free(&h);
    rp_tls_ctx_free(c13);
    rp_tls_ctx_free(c12);
}
END_TEST

/* A TLS 1.2 client restricted to one cipher the server does not allow. */
START_TEST(test_no_shared_cipher)
{
    rp_tls_ctx_t *c = parse_ok("{\"certificates\": [" PAIR("a") "],"
                               " \"ciphers\": \"ECDHE-ECDSA-AES256-GCM-SHA384\"}");
    hs_t h;
    memset(&h, 0, sizeof h);
    client_opts_t o = { .max_version = TLS1_2_VERSION };
    /* handshake() makes its own client context: restrict it through a
     * second run with the cipher list set on the SSL. */
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256"), 1);
    SSL *cli = SSL_new(cctx), *srv = rp_tls_ssl_new(c);
    BIO *bc, *bs;
    ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(cli, bc, bc);
    SSL_set_bio(srv, bs, bs);
    SSL_set_connect_state(cli);
    SSL_set_accept_state(srv);
    ck_assert_int_le(SSL_do_handshake(cli), 0);
    ERR_clear_error();
    ck_assert_int_le(SSL_do_handshake(srv), 0);
    ck_assert_str_eq(rp_tls_failure_reason(ERR_peek_error()), "no_shared_cipher");
    ERR_clear_error();
    SSL_free(cli);
    SSL_free(srv);
    SSL_CTX_free(cctx);
    /* With the allowed cipher it works. */
    ck_assert_int_eq(handshake(&h, c, &o), 0);
    ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(h.srv)),
                     "ECDHE-ECDSA-AES256-GCM-SHA384");
    hs_free(&h);
    rp_tls_ctx_free(c);
}
END_TEST

/* ---- resumption ---- */

static SSL_SESSION *
session_of(hs_t *h)
{
    SSL_SESSION *s = SSL_get1_session(h->cli);
    ck_assert_ptr_nonnull(s);
    ck_assert(SSL_SESSION_is_resumable(s));
    return s;
}

/* A session from context A resumes on context B built from the same
 * configuration (a reload), by ticket, with TLS 1.3 and TLS 1.2. */
START_TEST(test_ticket_resumes_across_reload)
{
    static const int versions[] = { 0, TLS1_2_VERSION };
    rp_tls_ctx_t *a = parse_ok(SNI_DOC);
    rp_tls_ctx_t *b = parse_ok(SNI_DOC);
    for (size_t v = 0; v < 2; v++) {
        for (int sni = 0; sni < 2; sni++) {
            hs_t h;
            client_opts_t o = { .max_version = versions[v], .sni = sni ? "api.example.com" : NULL };
            ck_assert_int_eq(handshake(&h, a, &o), 0);
            ck_assert(!SSL_session_reused(h.cli));
            SSL_SESSION *sess = session_of(&h);
            hs_free(&h);
            rp_tls_ctx_free(a);
            a = parse_ok(SNI_DOC);   /* the old contexts are gone */

            o.session = sess;
            ck_assert_int_eq(handshake(&h, b, &o), 0);
            ck_assert_msg(SSL_session_reused(h.cli), "version %zu sni %d: not resumed", v, sni);
            char cn[128];
            peer_cn(h.cli, cn, sizeof cn);
            ck_assert_str_eq(cn, sni ? "api" : "a.test");
            hs_free(&h);
            SSL_SESSION_free(sess);
        }
    }
    rp_tls_ctx_free(a);
    rp_tls_ctx_free(b);
}
END_TEST

/* Other certificates, another session id context: no resumption across
 * listeners that do not serve the same certificates. */
START_TEST(test_sessions_stay_with_their_certificates)
{
    rp_tls_ctx_t *a = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    rp_tls_ctx_t *other = parse_ok("{\"certificates\": [" PAIR("a") ", " PAIR("api") "]}");
    for (int v = 0; v < 2; v++) {
        hs_t h;
        client_opts_t o = { .max_version = v ? TLS1_2_VERSION : 0 };
        ck_assert_int_eq(handshake(&h, a, &o), 0);
        SSL_SESSION *sess = session_of(&h);
        hs_free(&h);
        o.session = sess;
        ck_assert_int_eq(handshake(&h, other, &o), 0);
        ck_assert(!SSL_session_reused(h.cli));
        hs_free(&h);
        SSL_SESSION_free(sess);
    }
    rp_tls_ctx_free(a);
    rp_tls_ctx_free(other);
}
END_TEST

/* Without tickets, TLS 1.2 resumes from the server's session cache. */
START_TEST(test_session_cache)
{
    rp_tls_ctx_t *a = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    hs_t h;
    client_opts_t o = { .max_version = TLS1_2_VERSION, .no_ticket = true };
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    SSL_SESSION *sess = session_of(&h);
    ck_assert(!SSL_SESSION_has_ticket(sess));
    hs_free(&h);
    o.session = sess;
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    ck_assert(SSL_session_reused(h.cli));
    hs_free(&h);
    SSL_SESSION_free(sess);
    SSL *srv = rp_tls_ssl_new(a);
    ck_assert_int_eq(SSL_CTX_sess_get_cache_size(SSL_get_SSL_CTX(srv)), 20480);
    SSL_free(srv);
    rp_tls_ctx_free(a);
}
END_TEST

static bool
same_ticket(const SSL_SESSION *x, const SSL_SESSION *y)
{
    const unsigned char *tx, *ty;
    size_t lx, ly;
    SSL_SESSION_get0_ticket(x, &tx, &lx);
    SSL_SESSION_get0_ticket(y, &ty, &ly);
    return lx == ly && memcmp(tx, ty, lx) == 0;
}

/* The key ring: a key older than an hour still decrypts, and the client
 * gets a ticket under the new key; two hours after it stopped encrypting
 * it is gone and the ticket gives a full handshake. */
START_TEST(test_ticket_key_rotation)
{
    rp_tls_ctx_t *a = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    hs_t h;
    client_opts_t o = { .max_version = TLS1_2_VERSION };
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    SSL_SESSION *s1 = session_of(&h);
    ck_assert(SSL_SESSION_has_ticket(s1));
    hs_free(&h);

    /* Within the hour: resumed, same ticket kept. */
    o.session = s1;
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    ck_assert(SSL_session_reused(h.cli));
    SSL_SESSION *s = session_of(&h);
    ck_assert(same_ticket(s, s1));
    SSL_SESSION_free(s);
    hs_free(&h);

    /* An hour later: a new key encrypts; the old ticket still resumes and
     * is replaced. */
    rp_tls_ticket_clock_advance(3601);
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    ck_assert(SSL_session_reused(h.cli));
    SSL_SESSION *s2 = session_of(&h);
    ck_assert(!same_ticket(s2, s1));
    hs_free(&h);

    /* Two more hours: the first key is dropped, the second still decrypts. */
    rp_tls_ticket_clock_advance(7200);
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    ck_assert(!SSL_session_reused(h.cli));
    hs_free(&h);
    o.session = s2;
    ck_assert_int_eq(handshake(&h, a, &o), 0);
    ck_assert(SSL_session_reused(h.cli));
    hs_free(&h);

    SSL_SESSION_free(s1);
    SSL_SESSION_free(s2);
    rp_tls_ctx_free(a);
}
END_TEST

/* An SSL outlives the configuration it was made from (a snapshot freed
 * by a reload while a handshake is in flight). */
START_TEST(test_ssl_outlives_ctx)
{
    rp_tls_ctx_t *c = parse_ok(SNI_DOC);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *cli = SSL_new(cctx), *srv = rp_tls_ssl_new(c);
    rp_tls_ctx_free(c);
    ck_assert_int_eq(SSL_set_tlsext_host_name(cli, "www.example.com"), 1);
    ck_assert_int_eq(SSL_set_alpn_protos(cli, ALPN_H11), 0);
    BIO *bc, *bs;
    ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(cli, bc, bc);
    SSL_set_bio(srv, bs, bs);
    SSL_set_connect_state(cli);
    SSL_set_accept_state(srv);
    int done = 0;
    for (int i = 0; i < 32 && done != 3; i++) {
        if (SSL_do_handshake(cli) == 1)
            done |= 1;
        if (SSL_do_handshake(srv) == 1)
            done |= 2;
    }
    ck_assert_int_eq(done, 3);
    char cn[128];
    peer_cn(cli, cn, sizeof cn);
    ck_assert_str_eq(cn, "wildcard");
    ck_assert_int_eq(rp_tls_alpn(srv), RP_ALPN_HTTP11);
    SSL_free(cli);
    SSL_free(srv);
    SSL_CTX_free(cctx);
    ERR_clear_error();
}
END_TEST

/* ---- failure reasons ---- */

static const struct { int lib, reason; const char *want; } reason_cases[] = {
    { ERR_LIB_SSL, SSL_R_UNSUPPORTED_PROTOCOL, "protocol_version" },
    { ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER, "protocol_version" },
    { ERR_LIB_SSL, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, "protocol_version" },
    { ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER, "no_shared_cipher" },
    { ERR_LIB_SSL, SSL_R_NO_SHARED_GROUPS, "no_shared_cipher" },
    { ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL, "no_application_protocol" },
    { ERR_LIB_SSL, SSL_R_HTTP_REQUEST, "http_request" },
    { ERR_LIB_SSL, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, "bad_record" },
    { ERR_LIB_SSL, SSL_R_PACKET_LENGTH_TOO_LONG, "bad_record" },
    { ERR_LIB_SSL, SSL_R_TLSV1_ALERT_UNKNOWN_CA, "unknown_ca" },
    { ERR_LIB_SSL, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, "bad_certificate" },
    { ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING, "closed" },
    { ERR_LIB_SSL, SSL_R_BAD_SIGNATURE, "other" },
    { ERR_LIB_EVP, SSL_R_NO_SHARED_CIPHER, "other" },
    { 0, 0, "other" },
};

START_TEST(test_failure_reason)
{
    unsigned long e = reason_cases[_i].lib == 0
        ? 0 : ERR_PACK(reason_cases[_i].lib, 0, reason_cases[_i].reason);
    ck_assert_str_eq(rp_tls_failure_reason(e), reason_cases[_i].want);
}
END_TEST

/* A plain HTTP request on the TLS port. */
START_TEST(test_http_on_tls_port)
{
    rp_tls_ctx_t *c = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    SSL *srv = rp_tls_ssl_new(c);
    BIO *bc, *bs;
    ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(srv, bs, bs);
    SSL_set_accept_state(srv);
    static const char req[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    ck_assert_int_eq(BIO_write(bc, req, sizeof req - 1), (int)(sizeof req - 1));
    ERR_clear_error();
    ck_assert_int_le(SSL_do_handshake(srv), 0);
    ck_assert_str_eq(rp_tls_failure_reason(ERR_peek_error()), "http_request");
    ERR_clear_error();
    SSL_free(srv);
    BIO_free(bc);
    rp_tls_ctx_free(c);
}
END_TEST

/* ---- the transport ---- */

typedef struct {
    rp_transport_t *tr;
    size_t          got;        /* plaintext bytes the owner took */
    bool            connected, failed;
} tr_owner_t;

static void
owner_read(void *arg)
{
    tr_owner_t *o = arg;
    struct evbuffer *in = o->tr->in;
    o->got += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    rp_tr_drained(o->tr);
}

static void
owner_write(void *arg)
{
    (void)arg;
}

static void
owner_event(short what, void *arg)
{
    tr_owner_t *o = arg;
    if (what & BEV_EVENT_CONNECTED) {
        o->connected = true;
        rp_tr_read(o->tr, true);
    } else {
        o->failed = true;
    }
}

/* Run the loop until cond holds or 2 s have passed. */
#define RUN_UNTIL(base, cond)                                                 \
    do {                                                                      \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++) {                        \
            struct timeval tv_ = { 0, 1000 };                                 \
            event_base_loopexit((base), &tv_);                                \
            event_base_dispatch(base);                                        \
        }                                                                     \
    } while (0)

/* Records read ahead into the SSL beyond the read high watermark are
 * invisible to the socket's events: once the owner drains its input, the
 * transport must go on from them by itself. */
START_TEST(test_transport_read_ahead_past_watermark)
{
    rp_tls_ctx_t *c = parse_ok("{\"certificates\": [" PAIR("a") "]}");
    signal(SIGPIPE, SIG_IGN);   /* as the daemon: writes to a closed peer fail */
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    tr_owner_t o = { 0 };
    o.tr = rp_tls_transport_new(base, sv[0], rp_tls_ssl_new(c), 100);
    ck_assert_ptr_nonnull(o.tr);
    rp_tr_setcb(o.tr, owner_read, owner_write, owner_event, &o);
    rp_tls_transport_start(o.tr);

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *cli = SSL_new(cctx);
    ck_assert_int_eq(SSL_set_fd(cli, sv[1]), 1);
    SSL_set_connect_state(cli);
    int r = 0;
    for (int i = 0; i < 2000 && !(r == 1 && o.connected); i++) {
        if (r != 1) {
            ERR_clear_error();
            r = SSL_do_handshake(cli);
            if (r != 1) {
                int e = SSL_get_error(cli, r);
                ck_assert(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
            }
        }
        struct timeval tv = { 0, 1000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    ck_assert_int_eq(r, 1);
    ck_assert(o.connected);

    /* Ten records of 40 bytes in the socket at once: the transport takes
     * them with one read, hands over three (120 >= 100) and stops. */
    char rec[40];
    memset(rec, 'x', sizeof rec);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(SSL_write(cli, rec, sizeof rec), (int)sizeof rec);
    RUN_UNTIL(base, o.got == 400 || o.failed);
    ck_assert(!o.failed);
    ck_assert_uint_eq(o.got, 400);

    SSL_free(cli);
    SSL_CTX_free(cctx);
    close(sv[1]);
    rp_tr_free(o.tr, false);
    event_base_free(base);
    rp_tls_ctx_free(c);
}
END_TEST

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("settings");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults_and_dump);
    tcase_add_test(tc, test_settings_dump_as_given);
    tcase_add_loop_test(tc, test_errors_exact, 0, NCASES(bad_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("warnings");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_expired_is_a_warning);
    tcase_add_test(tc, test_nameless_certificate_warning);
    tcase_add_test(tc, test_snapshot_warnings_and_dump);
    suite_add_tcase(s, tc);

    tc = tcase_create("sni");
    tcase_add_loop_test(tc, test_sni_pick, 0, NCASES(sni_cases));
    tcase_add_test(tc, test_sni_pick_first_wins);
    suite_add_tcase(s, tc);

    tc = tcase_create("handshake");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_handshake_sni, 0, NCASES(hs_sni_cases));
    tcase_add_loop_test(tc, test_handshake_alpn, 0, NCASES(hs_alpn_cases));
    tcase_add_test(tc, test_min_version);
    tcase_add_test(tc, test_no_shared_cipher);
    tcase_add_test(tc, test_ssl_outlives_ctx);
    tcase_add_test(tc, test_http_on_tls_port);
    suite_add_tcase(s, tc);

    tc = tcase_create("transport");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_transport_read_ahead_past_watermark);
    suite_add_tcase(s, tc);

    tc = tcase_create("resumption");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ticket_resumes_across_reload);
    tcase_add_test(tc, test_sessions_stay_with_their_certificates);
    tcase_add_test(tc, test_session_cache);
    tcase_add_test(tc, test_ticket_key_rotation);
    suite_add_tcase(s, tc);

    tc = tcase_create("failure_reason");
    tcase_add_loop_test(tc, test_failure_reason, 0, NCASES(reason_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
