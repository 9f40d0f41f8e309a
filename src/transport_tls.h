/* SPDX-License-Identifier: MIT */
/* The TLS transport (transport_tls.c): see transport.h for the interface. */
#ifndef RP_TRANSPORT_TLS_H
#define RP_TRANSPORT_TLS_H

#include <openssl/ssl.h>
#include "transport.h"

/* A server-side TLS transport over an accepted, non-blocking socket; the
 * socket and ssl are owned from now on (freed on failure).  Nothing
 * happens until rp_tls_transport_start(). */
rp_transport_t *rp_tls_transport_new(struct event_base *base, int fd, SSL *ssl,
                                     size_t read_high);
/* Run the handshake: its end is reported to the event callback as
 * BEV_EVENT_CONNECTED, a failure as BEV_EVENT_READING|BEV_EVENT_ERROR. */
void rp_tls_transport_start(rp_transport_t *tr);
SSL *rp_tls_transport_ssl(rp_transport_t *tr);
/* Why the handshake failed: a reason word. */
const char *rp_tls_transport_failure(const rp_transport_t *tr);

#endif
