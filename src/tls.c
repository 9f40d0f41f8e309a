/* SPDX-License-Identifier: MIT */
/*
 * `listeners[].tls`: parse the settings, load certificates and keys, and
 * build one OpenSSL server context per certificate.  Also the handshake
 * callbacks those contexts use (SNI, ALPN, session tickets) and the
 * process-wide ticket key ring.  The byte-moving side of TLS connections
 * is transport_tls.c's.
 *
 * Lifetimes: rp_tls_ctx_t (in a snapshot) holds a reference to the default
 * context, the first certificate's.  That context owns, as ex_data, the
 * SNI table (names and references to the other certificates' contexts);
 * the ALPN preference is a static table.  Every SSL holds a reference to
 * the context it was made from, so a handshake in flight never sees freed
 * memory, whatever happens to the snapshot.
 *
 * What stays on the original context after SSL_set_SSL_CTX() (protocol
 * versions, options, ciphers, session cache, ticket callback) and what is
 * read from the switched one (the ALPN callback, the certificate) differ,
 * so every context gets the whole configuration.
 */
#include "config.h"
#include "tls.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "util.h"

#define MAX_CERTIFICATES     256
#define MAX_CIPHER_STRING    4096
#define SESSION_CACHE_SIZE   20480   /* sessions per listener (session ids) */
#define SESSION_TIMEOUT_S    7200    /* session and ticket lifetime */
#define TICKET_ROTATE_S      3600    /* a new ticket encryption key every hour */
#define TICKET_KEEP_S        7200    /* older keys decrypt for two more hours */
#define TICKET_KEYS_MAX      4

const char *const rp_tls_keys[] = {
    "certificates", "min_version", "ciphers", "ciphersuites", "alpn", NULL };
const char *const rp_tls_certificate_keys[] = { "cert", "key", NULL };

/* ---- ALPN ---- */

typedef struct alpn_pref {
    size_t    n;
    rp_alpn_t order[2];   /* server preference */
} alpn_pref_t;

/* Every list the configuration may give: the callback's argument points
 * here, so it never depends on a snapshot. */
static const alpn_pref_t alpn_prefs[] = {
    { 2, { RP_ALPN_H2, RP_ALPN_HTTP11 } },
    { 2, { RP_ALPN_HTTP11, RP_ALPN_H2 } },
    { 1, { RP_ALPN_H2, RP_ALPN_NONE } },
    { 1, { RP_ALPN_HTTP11, RP_ALPN_NONE } },
};

static const char *
alpn_name(rp_alpn_t a)
{
    return a == RP_ALPN_H2 ? "h2" : "http/1.1";
}

/* The first protocol of the server's list that the client offers; no
 * match fails the handshake with no_application_protocol.  A client that
 * offers no ALPN never gets here. */
static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
               const unsigned char *in, unsigned int inlen, void *arg)
{
    const alpn_pref_t *pref = arg;
    (void)ssl;
    for (size_t i = 0; i < pref->n; i++) {
        const char *want = alpn_name(pref->order[i]);
        size_t wlen = strlen(want);
        unsigned int pos = 0;
        while (pos < inlen) {
            unsigned int len = in[pos];
            if (len == 0 || len > inlen - pos - 1)
                break;   /* malformed; OpenSSL checked it already */
            if (len == wlen && memcmp(in + pos + 1, want, wlen) == 0) {
                *out = in + pos + 1;
                *outlen = (unsigned char)len;
                return SSL_TLSEXT_ERR_OK;
            }
            pos += len + 1;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

rp_alpn_t
rp_tls_alpn(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return RP_ALPN_H2;
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return RP_ALPN_HTTP11;
    return RP_ALPN_NONE;
}

/* ---- failure reasons ---- */

const char *
rp_tls_failure_reason(unsigned long err)
{
    if (err == 0 || ERR_GET_LIB(err) != ERR_LIB_SSL)
        return "other";
    switch (ERR_GET_REASON(err)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_INAPPROPRIATE_FALLBACK:
    case SSL_R_TLSV1_ALERT_INAPPROPRIATE_FALLBACK:
        return "protocol_version";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        return "no_shared_cipher";
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
        return "no_application_protocol";
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return "http_request";
    case SSL_R_DECRYPTION_FAILED:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_BAD_RECORD_TYPE:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
    case SSL_R_BAD_PACKET:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_UNEXPECTED_CCS_MESSAGE:
    case SSL_R_SSLV3_ALERT_BAD_RECORD_MAC:
    case SSL_R_TLSV1_ALERT_DECODE_ERROR:
    case SSL_R_TLSV1_ALERT_DECRYPTION_FAILED:
    case SSL_R_TLSV1_ALERT_RECORD_OVERFLOW:
        return "bad_record";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return "unknown_ca";
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        return "bad_certificate";
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return "closed";
    default:
        return "other";
    }
}

/* ---- SNI ---- */

static bool
name_eq(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && strncasecmp(name, s, len) == 0;
}

size_t
rp_tls_sni_pick(const rp_tls_names_t *certs, size_t ncerts, const char *servername)
{
    if (servername == NULL)
        return 0;
    size_t len = strlen(servername);
    if (len > 0 && servername[len - 1] == '.')
        len--;   /* an absolute name ("example.com.") is the same name */
    const char *dot = memchr(servername, '.', len);
    size_t wild = SIZE_MAX;
    for (size_t i = 0; i < ncerts; i++) {
        for (size_t j = 0; j < certs[i].count; j++) {
            const char *n = certs[i].names[j];
            if (n[0] != '*') {
                if (name_eq(n, servername, len))
                    return i;
            } else if (wild == SIZE_MAX && dot != NULL && dot != servername
                       && name_eq(n + 1, dot, len - (size_t)(dot - servername))) {
                /* "*.example.com": n + 1 is ".example.com", the name less
                 * its first label must equal it. */
                wild = i;
            }
        }
    }
    return wild != SIZE_MAX ? wild : 0;
}

/* Owned by the default context (ex_data): freed with it. */
typedef struct sni_table {
    size_t          ncerts;
    SSL_CTX       **ctxs;    /* [0] the default context itself (no reference);
                                the others owned references */
    rp_tls_names_t *names;   /* owned, one per certificate */
} sni_table_t;

static int sni_index = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

static void
names_free(rp_tls_names_t *n)
{
    for (size_t i = 0; i < n->count; i++)
        free(n->names[i]);
    free(n->names);
    n->names = NULL;
    n->count = 0;
}

static void
sni_table_free(sni_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncerts; i++) {
        if (i > 0)
            SSL_CTX_free(t->ctxs[i]);
        names_free(&t->names[i]);
    }
    free(t->ctxs);
    free(t->names);
    free(t);
}

static void
sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    sni_table_free(ptr);
}

static void
sni_index_init(void)
{
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_ex_free);
}

static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
    const sni_table_t *t = arg;
    size_t i = rp_tls_sni_pick(t->names, t->ncerts,
                               SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    /* A second ClientHello (after HelloRetryRequest) comes here again,
     * possibly on a switched context: switch to whatever it asks now. */
    if (SSL_get_SSL_CTX(ssl) != t->ctxs[i] && SSL_set_SSL_CTX(ssl, t->ctxs[i]) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Lowercase a DNS name from a certificate and add it, unless it is not a
 * name SNI could ever match: only letters, digits, '-', '_' and '.', and a
 * wildcard only as a whole first label ("*.example.com"). */
static void
names_add(rp_tls_names_t *out, const unsigned char *s, int slen)
{
    if (slen <= 0)
        return;
    size_t len = (size_t)slen;
    if (s[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return;
    size_t start = 0;
    if (s[0] == '*') {
        if (len < 3 || s[1] != '.')
            return;
        start = 1;
    }
    for (size_t i = start; i < len; i++) {
        unsigned char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                  || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        if (!ok)
            return;
    }
    char *n = malloc(len + 1);
    char **names = n != NULL ? realloc(out->names, (out->count + 1) * sizeof *out->names) : NULL;
    if (names == NULL) {
        free(n);
        out->oom = true;
        return;
    }
    for (size_t i = 0; i < len; i++)
        n[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : (char)s[i];
    n[len] = '\0';
    out->names = names;
    out->names[out->count++] = n;
}

/* The names a certificate answers to: its DNS subjectAltNames, or, when it
 * has none, its subject's (last) common name. */
static void
cert_names(X509 *x, rp_tls_names_t *out)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool dns = false;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        dns = true;
        names_add(out, ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (dns)
        return;
    X509_NAME *subj = X509_get_subject_name(x);
    int idx = -1, last = -1;
    while ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >= 0)
        last = idx;
    if (last < 0)
        return;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last)));
    if (len > 0)
        names_add(out, utf8, len);
    OPENSSL_free(utf8);
}

/* ---- session ticket keys ---- */

typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];    /* AES-256-CBC */
    unsigned char hmac[32];   /* HMAC-SHA256 */
    int64_t       created;    /* ring clock, seconds */
} ticket_key_t;

/* The ring: [0] encrypts new tickets, the others only decrypt.  Not part
 * of any snapshot: contexts built by a reload use the same keys. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static ticket_key_t ring[TICKET_KEYS_MAX];
static size_t ring_count;
static int64_t ring_offset;   /* tests move the clock */

static int64_t
ring_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec + ring_offset;
}

void
rp_tls_ticket_clock_advance(long seconds)
{
    pthread_mutex_lock(&ring_lock);
    ring_offset += seconds;
    pthread_mutex_unlock(&ring_lock);
}

/* Under ring_lock.  Rotation is lazy: the first handshake after the
 * current key turns an hour old makes a new one; a key is dropped two
 * hours after it stopped encrypting (when the key after it was made). */
static int
ring_update(int64_t now)
{
    if (ring_count == 0 || now - ring[0].created >= TICKET_ROTATE_S) {
        ticket_key_t k;
        if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1
            || RAND_bytes(k.hmac, sizeof k.hmac) != 1) {
            OPENSSL_cleanse(&k, sizeof k);
            return -1;
        }
        k.created = now;
        if (ring_count == TICKET_KEYS_MAX)
            OPENSSL_cleanse(&ring[--ring_count], sizeof ring[0]);
        memmove(&ring[1], &ring[0], ring_count * sizeof ring[0]);
        ring[0] = k;
        ring_count++;
        OPENSSL_cleanse(&k, sizeof k);
    }
    while (ring_count > 1 && now - ring[ring_count - 2].created >= TICKET_KEEP_S)
        OPENSSL_cleanse(&ring[--ring_count], sizeof ring[0]);
    return 0;
}

/* Encrypting (enc 1): name the current key, fresh IV.  Decrypting: find
 * the key by name; 0 (unknown or dropped key: full handshake), 1, or 2
 * (an older key: the client gets a new ticket). */
static int
ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
              EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    ticket_key_t k;
    bool found = false, current = false;
    (void)ssl;
    pthread_mutex_lock(&ring_lock);
    if (ring_update(ring_now()) == 0) {
        for (size_t i = 0; i < ring_count; i++) {
            if (enc || memcmp(ring[i].name, key_name, sizeof ring[i].name) == 0) {
                k = ring[i];
                found = true;
                current = i == 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&ring_lock);
    if (!found)
        return 0;   /* encrypting: no ticket; decrypting: full handshake */

    int rc = enc ? 1 : current ? 1 : 2;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        memcpy(key_name, k.name, sizeof k.name);
        if (RAND_bytes(iv, 16) != 1
            || EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = 0;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = 0;
    }
    if (rc != 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = 0;
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

/* ---- the settings ---- */

struct rp_tls_ctx {
    SSL_CTX           *ctx;           /* owned reference: the default context */
    char             **certs, **keys; /* owned: file names, as configured */
    size_t             ncerts;
    int                min_version;   /* TLS1_2_VERSION or TLS1_3_VERSION */
    char              *ciphers;       /* owned; NULL: OpenSSL's default */
    char              *ciphersuites;  /* owned; NULL: OpenSSL's default */
    const alpn_pref_t *alpn;          /* static */
};

/* Encrypted keys are refused, never prompted for; u, when not NULL, is a
 * bool set to say the key was encrypted. */
static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (u != NULL)
        *(bool *)u = true;
    return 0;
}

/* The first OpenSSL error queued, then an empty queue. */
static const char *
ssl_error_text(void)
{
    unsigned long e = ERR_peek_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return why != NULL ? why : "unknown OpenSSL error";
}

static const char *const tls13_suites[] = {
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256", NULL };

/* A cipher string: OpenSSL skips names it does not know, so a typo would
 * drop a cipher without a word; every name not prefixed (!, -, +, @) must
 * select something on its own. */
static int
parse_ciphers(const json_t *tls, const char *path, SSL_CTX *scratch, char **out, rp_errs_t *errs)
{
    const char *v = NULL;
    char p[512];
    if (rp_conf_string(tls, "ciphers", path, &v, errs) < 0 || v == NULL)
        return 0;
    rp_conf_path(p, sizeof p, path, "ciphers");
    if (v[0] == '\0' || strlen(v) > MAX_CIPHER_STRING) {
        rp_errs_add(errs, p, "must be 1 to %d characters", MAX_CIPHER_STRING);
        return -1;
    }
    char *copy = strdup(v), *save = NULL;
    if (copy == NULL) {
        rp_errs_add(errs, p, "out of memory");
        return -1;
    }
    int bad = 0;
    static const char seps[] = ":, ;";   /* OpenSSL's separators */
    for (char *tok = strtok_r(copy, seps, &save); tok != NULL; tok = strtok_r(NULL, seps, &save)) {
        if (strchr("!-+@", tok[0]) != NULL)
            continue;
        if (SSL_CTX_set_cipher_list(scratch, tok) != 1) {
            ERR_clear_error();
            rp_errs_add(errs, p, "\"%s\" matches no TLS 1.2 cipher", tok);
            bad = -1;
        }
    }
    free(copy);
    if (bad == 0 && SSL_CTX_set_cipher_list(scratch, v) != 1) {
        rp_errs_add(errs, p, "selects no TLS 1.2 cipher (%s)", ssl_error_text());
        bad = -1;
    }
    if (bad == 0 && (*out = strdup(v)) == NULL) {
        rp_errs_add(errs, p, "out of memory");
        bad = -1;
    }
    return bad;
}

static int
parse_ciphersuites(const json_t *tls, const char *path, SSL_CTX *scratch, char **out,
                   rp_errs_t *errs)
{
    const char *v = NULL;
    char p[512];
    if (rp_conf_string(tls, "ciphersuites", path, &v, errs) < 0 || v == NULL)
        return 0;
    rp_conf_path(p, sizeof p, path, "ciphersuites");
    if (v[0] == '\0' || strlen(v) > MAX_CIPHER_STRING) {
        rp_errs_add(errs, p, "must be 1 to %d characters", MAX_CIPHER_STRING);
        return -1;
    }
    char *copy = strdup(v), *save = NULL;
    if (copy == NULL) {
        rp_errs_add(errs, p, "out of memory");
        return -1;
    }
    int bad = 0;
    for (char *tok = strtok_r(copy, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
        size_t i = 0;
        while (tls13_suites[i] != NULL && strcmp(tls13_suites[i], tok) != 0)
            i++;
        if (tls13_suites[i] == NULL) {
            rp_errs_add(errs, p, "unknown TLS 1.3 cipher suite \"%s\"", tok);
            bad = -1;
        }
    }
    free(copy);
    if (bad == 0 && SSL_CTX_set_ciphersuites(scratch, v) != 1) {
        rp_errs_add(errs, p, "selects no TLS 1.3 cipher suite (%s)", ssl_error_text());
        bad = -1;
    }
    if (bad == 0 && (*out = strdup(v)) == NULL) {
        rp_errs_add(errs, p, "out of memory");
        bad = -1;
    }
    return bad;
}

static void
parse_min_version(const json_t *tls, const char *path, rp_tls_ctx_t *c, rp_errs_t *errs)
{
    const char *v = NULL;
    char p[512];
    if (rp_conf_string(tls, "min_version", path, &v, errs) < 0 || v == NULL)
        return;
    if (strcmp(v, "TLSv1.2") == 0) {
        c->min_version = TLS1_2_VERSION;
    } else if (strcmp(v, "TLSv1.3") == 0) {
        c->min_version = TLS1_3_VERSION;
    } else {
        rp_conf_path(p, sizeof p, path, "min_version");
        rp_errs_add(errs, p, "must be \"TLSv1.2\" or \"TLSv1.3\", not \"%s\"", v);
    }
}

static void
parse_alpn(const json_t *tls, const char *path, rp_tls_ctx_t *c, rp_errs_t *errs)
{
    const json_t *a = json_object_get(tls, "alpn");
    char p[512], ep[600];
    if (a == NULL)
        return;
    rp_conf_path(p, sizeof p, path, "alpn");
    if (!json_is_array(a)) {
        rp_errs_add(errs, p, "must be an array, not %s", rp_conf_type_name(a));
        return;
    }
    if (json_array_size(a) == 0) {
        rp_errs_add(errs, p, "must contain at least one protocol");
        return;
    }
    alpn_pref_t want = { 0, { RP_ALPN_NONE, RP_ALPN_NONE } };
    bool ok = true;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
        snprintf(ep, sizeof ep, "%s[%zu]", p, i);
        if (!json_is_string(v)) {
            rp_errs_add(errs, ep, "must be a string, not %s", rp_conf_type_name(v));
            ok = false;
            continue;
        }
        const char *s = json_string_value(v);
        rp_alpn_t id = RP_ALPN_NONE;
        if (json_string_length(v) == strlen(s)) {
            if (strcmp(s, "h2") == 0)
                id = RP_ALPN_H2;
            else if (strcmp(s, "http/1.1") == 0)
                id = RP_ALPN_HTTP11;
        }
        if (id == RP_ALPN_NONE) {
            rp_errs_add(errs, ep, "must be \"h2\" or \"http/1.1\", not \"%s\"", s);
            ok = false;
        } else if ((want.n > 0 && want.order[0] == id) || (want.n > 1 && want.order[1] == id)) {
            rp_errs_add(errs, ep, "\"%s\" is listed twice", s);
            ok = false;
        } else if (want.n < 2) {
            want.order[want.n++] = id;
        }
    }
    if (!ok)
        return;
    for (size_t k = 0; k < RP_ARRAY_LEN(alpn_prefs); k++) {
        if (alpn_prefs[k].n == want.n && alpn_prefs[k].order[0] == want.order[0]
            && (want.n == 1 || alpn_prefs[k].order[1] == want.order[1]))
            c->alpn = &alpn_prefs[k];
    }
}

/* A file must exist, be readable and be a regular file before OpenSSL is
 * asked to parse it, so that the message says which. */
static bool
readable(const char *file, const char *path, rp_errs_t *errs)
{
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rp_errs_add(errs, path, "cannot read %s: %s", file, strerror(errno));
        return false;
    }
    struct stat st;
    int rc = fstat(fd, &st);
    int err = errno;
    close(fd);
    if (rc < 0) {
        rp_errs_add(errs, path, "cannot read %s: %s", file, strerror(err));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        rp_errs_add(errs, path, "cannot read %s: %s", file,
                    S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
        return false;
    }
    return true;
}

static void
asn1_time_text(const ASN1_TIME *t, char *buf, size_t cap)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, cap, "(unreadable date)");
}

static void
check_validity(X509 *x, const char *path, rp_errs_t *warns)
{
    char when[64];
    const ASN1_TIME *after = X509_get0_notAfter(x), *before = X509_get0_notBefore(x);
    if (X509_cmp_current_time(after) < 0) {
        asn1_time_text(after, when, sizeof when);
        rp_errs_add(warns, path, "certificate expired on %s", when);
    } else if (X509_cmp_current_time(before) > 0) {
        asn1_time_text(before, when, sizeof when);
        rp_errs_add(warns, path, "certificate is not valid before %s", when);
    }
}

/* Everything but the certificate, the same on every context. */
static int
configure_ctx(SSL_CTX *ctx, const rp_tls_ctx_t *c)
{
    int ok = SSL_CTX_set_min_proto_version(ctx, c->min_version)
             && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                             | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (c->ciphers != NULL)
        ok = ok && SSL_CTX_set_cipher_list(ctx, c->ciphers);
    if (c->ciphersuites != NULL)
        ok = ok && SSL_CTX_set_ciphersuites(ctx, c->ciphersuites);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    ok = ok && SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, (void *)c->alpn);
    SSL_CTX_set_default_passwd_cb(ctx, no_password_cb);
    return ok ? 0 : -1;
}

static EVP_PKEY *
load_key(const char *file, const char *path, rp_errs_t *errs)
{
    if (!readable(file, path, errs))
        return NULL;
    BIO *b = BIO_new_file(file, "r");
    EVP_PKEY *k = NULL;
    bool encrypted = false;
    if (b != NULL)
        k = PEM_read_bio_PrivateKey(b, NULL, no_password_cb, &encrypted);
    BIO_free(b);
    if (k != NULL)
        return k;
    /* OpenSSL's words for "there is no key in this file" are "no start
     * line" or "unsupported" (no decoder took it). */
    unsigned long e = ERR_peek_error();
    const char *why;
    if (encrypted)
        why = "the key is encrypted (only unencrypted keys can be read)";
    else if ((ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
             || (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED))
        why = "no private key found";
    else
        why = ssl_error_text();
    ERR_clear_error();
    rp_errs_add(errs, path, "cannot load a PEM private key from %s: %s", file, why);
    return NULL;
}

/* Load certificate i into a new context configured like the others;
 * NULL with errors added. */
static SSL_CTX *
load_certificate(const rp_tls_ctx_t *c, size_t i, const char *path, rp_errs_t *errs,
                 rp_errs_t *warns)
{
    char cp[600], kp[600];
    snprintf(cp, sizeof cp, "%s.cert", path);
    snprintf(kp, sizeof kp, "%s.key", path);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || configure_ctx(ctx, c) < 0) {
        rp_errs_add(errs, path, "cannot set up a TLS context: %s", ssl_error_text());
        SSL_CTX_free(ctx);
        return NULL;
    }
    bool cert_ok = false;
    if (readable(c->certs[i], cp, errs)) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->certs[i]) == 1) {
            cert_ok = true;
        } else {
            unsigned long e = ERR_peek_error();
            bool none = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
            const char *why = none ? "no certificate found" : ssl_error_text();
            ERR_clear_error();
            rp_errs_add(errs, cp, "cannot load a PEM certificate chain from %s: %s",
                        c->certs[i], why);
        }
    }
    EVP_PKEY *key = load_key(c->keys[i], kp, errs);
    if (cert_ok && key != NULL) {
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            rp_errs_add(errs, kp, "the private key in %s does not match the certificate in %s",
                        c->keys[i], c->certs[i]);
            cert_ok = false;
        }
    }
    EVP_PKEY_free(key);
    if (!cert_ok || key == NULL) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    check_validity(SSL_CTX_get0_certificate(ctx), cp, warns);
    return ctx;
}

/* The session id context: the same for every context of a listener and
 * for the same certificates after a reload (tickets stay valid), different
 * for listeners with other certificates (their sessions do not mix). */
static int
session_id_context(SSL_CTX *const *ctxs, size_t n, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        ok = X509_digest(SSL_CTX_get0_certificate(ctxs[i]), EVP_sha256(), d, &dlen) == 1
             && EVP_DigestUpdate(md, d, dlen) == 1;
    }
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

static void
parse_certificates(const json_t *tls, const char *path, rp_tls_ctx_t *c, rp_errs_t *errs)
{
    const json_t *arr = json_object_get(tls, "certificates");
    char p[512], ep[600];
    rp_conf_path(p, sizeof p, path, "certificates");
    if (arr == NULL) {
        rp_errs_add(errs, p, "required: at least one certificate");
        return;
    }
    if (!json_is_array(arr)) {
        rp_errs_add(errs, p, "must be an array, not %s", rp_conf_type_name(arr));
        return;
    }
    if (json_array_size(arr) == 0) {
        rp_errs_add(errs, p, "must contain at least one certificate");
        return;
    }
    if (json_array_size(arr) > MAX_CERTIFICATES) {
        rp_errs_add(errs, p, "at most %d certificates", MAX_CERTIFICATES);
        return;
    }
    size_t n = json_array_size(arr);
    c->certs = calloc(n, sizeof *c->certs);
    c->keys = calloc(n, sizeof *c->keys);
    if (c->certs == NULL || c->keys == NULL) {
        rp_errs_add(errs, p, "out of memory");
        return;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e) {
        snprintf(ep, sizeof ep, "%s[%zu]", p, i);
        if (!json_is_object(e)) {
            rp_errs_add(errs, ep, "must be an object, not %s", rp_conf_type_name(e));
            continue;
        }
        rp_conf_keys(e, ep, rp_tls_certificate_keys, NULL, errs);
        const char *files[2] = { NULL, NULL };
        bool ok = true;
        for (int k = 0; k < 2; k++) {
            const char *key = rp_tls_certificate_keys[k];
            char kp[700];
            rp_conf_path(kp, sizeof kp, ep, key);
            if (json_object_get(e, key) == NULL) {
                rp_errs_add(errs, kp, "required");
                ok = false;
            } else if (rp_conf_string(e, key, ep, &files[k], errs) < 0) {
                ok = false;
            } else if (files[k][0] != '/') {
                rp_errs_add(errs, kp, "must be an absolute path");
                ok = false;
            }
        }
        if (!ok)
            continue;
        char *cf = strdup(files[0]), *kf = strdup(files[1]);
        if (cf == NULL || kf == NULL) {
            free(cf);
            free(kf);
            rp_errs_add(errs, ep, "out of memory");
            continue;
        }
        c->certs[c->ncerts] = cf;
        c->keys[c->ncerts] = kf;
        c->ncerts++;
    }
}

/* Load every certificate and build the contexts; errors added. */
static void
build_contexts(rp_tls_ctx_t *c, const char *path, rp_errs_t *errs, rp_errs_t *warns)
{
    char p[512], ep[600];
    rp_conf_path(p, sizeof p, path, "certificates");
    pthread_once(&sni_once, sni_index_init);
    sni_table_t *t = calloc(1, sizeof *t);
    if (t != NULL) {
        t->ctxs = calloc(c->ncerts + 1, sizeof *t->ctxs);
        t->names = calloc(c->ncerts + 1, sizeof *t->names);
    }
    if (t == NULL || t->ctxs == NULL || t->names == NULL) {
        sni_table_free(t);
        rp_errs_add(errs, path, "out of memory");
        return;
    }
    bool ok = sni_index >= 0;
    for (size_t i = 0; i < c->ncerts; i++) {
        snprintf(ep, sizeof ep, "%s[%zu]", p, i);
        SSL_CTX *ctx = load_certificate(c, i, ep, errs, warns);
        if (ctx == NULL) {
            ok = false;
            continue;
        }
        t->ctxs[t->ncerts] = ctx;
        cert_names(SSL_CTX_get0_certificate(ctx), &t->names[t->ncerts]);
        if (t->names[t->ncerts].oom) {
            rp_errs_add(errs, ep, "out of memory");
            ok = false;
        }
        if (i > 0 && t->names[t->ncerts].count == 0) {
            char cp[700];
            snprintf(cp, sizeof cp, "%s.cert", ep);
            rp_errs_add(warns, cp, "certificate has no DNS name (subjectAltName or common name): "
                        "no server name selects it");
        }
        t->ncerts++;
    }
    unsigned char sid[32];
    if (ok && session_id_context(t->ctxs, t->ncerts, sid) < 0) {
        rp_errs_add(errs, path, "cannot compute the session id context: %s", ssl_error_text());
        ok = false;
    }
    for (size_t i = 0; ok && i < t->ncerts; i++) {
        if (SSL_CTX_set_session_id_context(t->ctxs[i], sid, sizeof sid) != 1) {
            rp_errs_add(errs, path, "cannot set the session id context: %s", ssl_error_text());
            ok = false;
        }
    }
    if (!ok || t->ncerts == 0) {
        /* Until it is attached, the table does not own ctxs[0]. */
        if (t->ncerts > 0)
            SSL_CTX_free(t->ctxs[0]);
        sni_table_free(t);
        return;
    }
    SSL_CTX *def = t->ctxs[0];
    if (SSL_CTX_set_ex_data(def, sni_index, t) != 1) {
        rp_errs_add(errs, path, "cannot set up SNI: %s", ssl_error_text());
        SSL_CTX_free(def);
        sni_table_free(t);
        return;
    }
    /* From here the default context owns the table and, through it, the
     * other contexts. */
    SSL_CTX_set_tlsext_servername_callback(def, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(def, t);
    c->ctx = def;
}

json_t *
rp_tls_ctx_certs(const rp_tls_ctx_t *c)
{
    json_t *o = json_object();
    const sni_table_t *t = SSL_CTX_get_ex_data(c->ctx, sni_index);
    for (size_t i = 0; t != NULL && i < t->ncerts && i < c->ncerts; i++) {
        X509 *x = SSL_CTX_get0_certificate(t->ctxs[i]);
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        char text[200], when[64];
        size_t pos = (size_t)snprintf(text, sizeof text, "sha256 ");
        if (x != NULL && X509_digest(x, EVP_sha256(), d, &dlen) == 1) {
            for (unsigned k = 0; k < 8 && k < dlen; k++)
                pos += (size_t)snprintf(text + pos, sizeof text - pos, "%02x", d[k]);
            asn1_time_text(X509_get0_notAfter(x), when, sizeof when);
            pos += (size_t)snprintf(text + pos, sizeof text - pos, "..., expires %s", when);
            /* The chain sent with it, as one digest: an intermediate
             * renewed in the same file shows too. */
            STACK_OF(X509) *chain = NULL;
            SSL_CTX_get0_chain_certs(t->ctxs[i], &chain);
            EVP_MD_CTX *md = chain != NULL && sk_X509_num(chain) > 0 ? EVP_MD_CTX_new() : NULL;
            bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
            for (int k = 0; ok && k < sk_X509_num(chain); k++) {
                unsigned char cd[EVP_MAX_MD_SIZE];
                unsigned int cl = 0;
                ok = X509_digest(sk_X509_value(chain, k), EVP_sha256(), cd, &cl) == 1
                     && EVP_DigestUpdate(md, cd, cl) == 1;
            }
            unsigned int cl = 0;
            if (ok && EVP_DigestFinal_ex(md, d, &cl) == 1 && pos < sizeof text) {
                pos += (size_t)snprintf(text + pos, sizeof text - pos, ", chain of %d sha256 ",
                                        sk_X509_num(chain));
                for (unsigned k = 0; k < 8 && k < cl && pos < sizeof text; k++)
                    pos += (size_t)snprintf(text + pos, sizeof text - pos, "%02x", d[k]);
            }
            EVP_MD_CTX_free(md);
        } else {
            snprintf(text, sizeof text, "(unreadable certificate)");
        }
        json_object_set_new(o, c->certs[i], json_string(text));
    }
    return o;
}

int
rp_tls_ctx_parse(const json_t *tls, const char *path, rp_tls_ctx_t **out,
                 rp_errs_t *errs, rp_errs_t *warns)
{
    size_t before = errs->total;
    if (!json_is_object(tls)) {
        rp_errs_add(errs, path, "must be an object, not %s", rp_conf_type_name(tls));
        return -1;
    }
    rp_conf_keys(tls, path, rp_tls_keys, NULL, errs);
    rp_tls_ctx_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        rp_errs_add(errs, path, "out of memory");
        return -1;
    }
    c->min_version = TLS1_2_VERSION;
    c->alpn = &alpn_prefs[0];
    parse_min_version(tls, path, c, errs);
    SSL_CTX *scratch = SSL_CTX_new(TLS_server_method());
    if (scratch == NULL) {
        rp_errs_add(errs, path, "cannot set up a TLS context: %s", ssl_error_text());
    } else {
        parse_ciphers(tls, path, scratch, &c->ciphers, errs);
        parse_ciphersuites(tls, path, scratch, &c->ciphersuites, errs);
        SSL_CTX_free(scratch);
    }
    parse_alpn(tls, path, c, errs);
    parse_certificates(tls, path, c, errs);
    /* Files are loaded even when settings were wrong, so that one pass
     * reports every problem; the contexts are dropped then. */
    if (c->ncerts > 0)
        build_contexts(c, path, errs, warns);
    ERR_clear_error();
    if (errs->total != before || c->ctx == NULL) {
        if (errs->total == before)
            rp_errs_add(errs, path, "cannot set up TLS");
        rp_tls_ctx_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void
rp_tls_ctx_free(rp_tls_ctx_t *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->ncerts; i++) {
        free(c->certs[i]);
        free(c->keys[i]);
    }
    free(c->certs);
    free(c->keys);
    free(c->ciphers);
    free(c->ciphersuites);
    free(c);
}

/* The names of the ciphers a context resolved, TLS 1.2 ones or TLS 1.3
 * suites, joined with ':'. */
static json_t *
cipher_names(SSL_CTX *ctx, bool tls13)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    buf[0] = '\0';
    for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        if ((strcmp(SSL_CIPHER_get_version(ci), "TLSv1.3") == 0) != tls13)
            continue;
        const char *name = SSL_CIPHER_get_name(ci);
        size_t n = strlen(name);
        if (len + n + 2 > cap) {
            cap = (len + n + 2) * 2;
            char *more = realloc(buf, cap);
            if (more == NULL) {
                free(buf);
                return NULL;
            }
            buf = more;
        }
        if (len > 0)
            buf[len++] = ':';
        memcpy(buf + len, name, n + 1);
        len += n;
    }
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

json_t *
rp_tls_ctx_dump(const rp_tls_ctx_t *c)
{
    json_t *certs = json_array();
    for (size_t i = 0; i < c->ncerts; i++)
        json_array_append_new(certs, json_pack("{s:s,s:s}", "cert", c->certs[i],
                                               "key", c->keys[i]));
    json_t *alpn = json_array();
    for (size_t i = 0; i < c->alpn->n; i++)
        json_array_append_new(alpn, json_string(alpn_name(c->alpn->order[i])));
    return json_pack("{s:o,s:s,s:o,s:o,s:o}",
        "certificates", certs,
        "min_version", c->min_version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2",
        "ciphers", c->ciphers != NULL ? json_string(c->ciphers) : cipher_names(c->ctx, false),
        "ciphersuites", c->ciphersuites != NULL ? json_string(c->ciphersuites)
                                                : cipher_names(c->ctx, true),
        "alpn", alpn);
}

SSL *
rp_tls_ssl_new(const rp_tls_ctx_t *c)
{
    SSL *ssl = SSL_new(c->ctx);
    if (ssl == NULL)
        ERR_clear_error();
    return ssl;
}
