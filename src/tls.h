/* SPDX-License-Identifier: MIT */
/*
 * TLS settings of a listener (`listeners[].tls`) and the OpenSSL contexts
 * built from them when a snapshot is built.  The contexts are immutable
 * once built and shared by every worker; SSL objects made from them belong
 * to one connection (transport_tls.c).
 *
 * Session tickets are encrypted with a process-wide key ring that lives
 * outside any snapshot, so a reload keeps tickets valid.
 */
#ifndef RP_TLS_H
#define RP_TLS_H

#include <stdbool.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include "revproxy/config.h"

/* Parse and load `tls` (the object at path, e.g. "listeners[1].tls"):
 * certificates, keys, protocol versions, ciphers, ALPN.  Every problem is
 * added to errs with its JSON path; warnings (an expired certificate) are
 * added to warns.  0 and *out set, or -1. */
int rp_tls_ctx_parse(const json_t *tls, const char *path, rp_tls_ctx_t **out,
                     rp_errs_t *errs, rp_errs_t *warns);
void rp_tls_ctx_free(rp_tls_ctx_t *c);
/* The effective settings, as rp_tls_ctx_parse() accepts them again. */
json_t *rp_tls_ctx_dump(const rp_tls_ctx_t *c);

/* A server-side SSL for one accepted connection, or NULL (out of memory). */
SSL *rp_tls_ssl_new(const rp_tls_ctx_t *c);

/* The protocol ALPN selected on a finished handshake. */
typedef enum rp_alpn {
    RP_ALPN_NONE = 0,   /* no ALPN: HTTP/1.1 */
    RP_ALPN_HTTP11,
    RP_ALPN_H2,
} rp_alpn_t;
rp_alpn_t rp_tls_alpn(SSL *ssl);

#endif
