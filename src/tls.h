/* SPDX-License-Identifier: MIT */
/*
 * TLS settings of a listener (`listeners[].tls`) and the OpenSSL contexts
 * built from them when a snapshot is built.  The contexts are immutable
 * once built and shared by every worker; SSL objects made from them belong
 * to one connection (transport_tls.c).
 *
 * One SSL_CTX per certificate.  A connection starts on the first
 * certificate's context (the default); the SNI callback moves it to the
 * certificate whose names match the requested server name.  What a
 * handshake needs (the name table, the ALPN preference) belongs to the
 * contexts themselves, so an SSL stays valid after its snapshot is freed.
 *
 * Session tickets are encrypted with a process-wide key ring that lives
 * outside any snapshot, so a reload keeps tickets valid.  Everything a
 * handshake reaches is safe to use from several worker threads at once.
 */
#ifndef RP_TLS_H
#define RP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include "revproxy/config.h"

/* The keys of `tls` and of each `tls.certificates[]` entry
 * (NULL-terminated), for rp_config_keys_foreach(). */
extern const char *const rp_tls_keys[];
extern const char *const rp_tls_certificate_keys[];

/* Parse and load `tls` (the object at path, e.g. "listeners[1].tls"):
 * certificates, keys, protocol versions, ciphers, ALPN.  Every problem is
 * added to errs with its JSON path; warnings (an expired certificate, or
 * one not valid yet) are added to warns.  0 and *out set, or -1 with *out
 * untouched.  Main thread (it reads files). */
int rp_tls_ctx_parse(const json_t *tls, const char *path, rp_tls_ctx_t **out,
                     rp_errs_t *errs, rp_errs_t *warns);
/* NULL is accepted.  SSL objects made from c stay valid. */
void rp_tls_ctx_free(rp_tls_ctx_t *c);
/* The effective settings, as rp_tls_ctx_parse() accepts them again:
 * defaults filled in (the cipher lists OpenSSL resolved when unset). */
json_t *rp_tls_ctx_dump(const rp_tls_ctx_t *c);

/* What each certificate of c is, by its file name: the start of its
 * SHA-256 fingerprint and its expiry ("sha256 0123456789abcdef..., expires
 * 2027-01-01 00:00:00 UTC"), to tell a file renewed in place. */
json_t *rp_tls_ctx_certs(const rp_tls_ctx_t *c);

/* A server-side SSL for one accepted connection, or NULL (out of memory).
 * Any thread. */
SSL *rp_tls_ssl_new(const rp_tls_ctx_t *c);

/* The protocol ALPN selected on a finished handshake. */
typedef enum rp_alpn {
    RP_ALPN_NONE = 0,   /* no ALPN: HTTP/1.1 */
    RP_ALPN_HTTP11,
    RP_ALPN_H2,
} rp_alpn_t;
rp_alpn_t rp_tls_alpn(SSL *ssl);

/* Why a handshake failed, from an OpenSSL error code (ERR_peek_error()):
 * one of "protocol_version" (no common protocol version), "no_shared_cipher"
 * (no common cipher, group or signature algorithm), "no_application_protocol"
 * (ALPN offered, none acceptable), "http_request" (plain HTTP on a TLS
 * port), "bad_record" (malformed or undecryptable records or messages),
 * "unknown_ca" and "bad_certificate" (the client refused the certificate),
 * "closed" (the peer closed mid-handshake) or "other".  Static strings. */
const char *rp_tls_failure_reason(unsigned long err);

/* The DNS names one certificate answers to, lowercase: exact names
 * ("www.example.com") and wildcards ("*.example.com"). */
typedef struct rp_tls_names {
    char  **names;   /* owned */
    size_t  count;
    bool    oom;     /* a name was lost: memory ran out */
} rp_tls_names_t;

/* The certificate for a requested server name (SNI), compared without
 * case: the first certificate with that exact name, else the first whose
 * wildcard matches (a wildcard stands for exactly one left-most label:
 * "*.example.com" matches "www.example.com", neither "example.com" nor
 * "a.b.example.com"), else 0, the default.  NULL (no SNI) gives 0. */
size_t rp_tls_sni_pick(const rp_tls_names_t *certs, size_t ncerts, const char *servername);

/* Tests: move the session ticket key ring's clock forward (seconds). */
void rp_tls_ticket_clock_advance(long seconds);

#endif
