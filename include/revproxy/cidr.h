/* SPDX-License-Identifier: MIT */
/*
 * IP addresses and CIDR blocks (src/cidr.c), for `trusted_proxies` and
 * the client address a request is attributed to.  IPv4 addresses are
 * kept in their IPv4-mapped IPv6 form (::ffff:a.b.c.d), so an IPv4 block
 * matches a peer whether it arrived over IPv4 or as a mapped address on
 * an IPv6 socket.  Pure functions, no I/O.
 */
#ifndef REVPROXY_CIDR_H
#define REVPROXY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rp_ip {
    uint8_t b[16];   /* IPv6, or IPv4-mapped IPv6 */
} rp_ip_t;

typedef struct rp_cidr {
    rp_ip_t  net;    /* bits beyond the prefix are zero */
    unsigned bits;   /* prefix length, over the 128 bits (IPv4: 96 + /n) */
    bool     v4;     /* written as IPv4 */
} rp_cidr_t;

/* Parse an address: IPv4 dotted quad, or IPv6 (with brackets or not).
 * With ports true, an IPv4 address or a bracketed IPv6 one may carry a
 * ":port" (as some X-Forwarded-For writers add).  0, or -1. */
int rp_ip_parse(const char *s, size_t len, bool ports, rp_ip_t *out);
/* Whether ip is an IPv4(-mapped) address. */
bool rp_ip_is_v4(const rp_ip_t *ip);
/* A hash of ip, for tables keyed by address. */
uint64_t rp_ip_hash(const rp_ip_t *ip);
/* Text of ip (IPv4 as a dotted quad) into out (at least 46 bytes). */
void rp_ip_text(const rp_ip_t *ip, char *out, size_t cap);

/* Parse "address/prefix" or an address alone (the whole address).  0, or
 * -1 with *why set (static text). */
int rp_cidr_parse(const char *s, rp_cidr_t *out, const char **why);
bool rp_cidr_match(const rp_cidr_t *c, const rp_ip_t *ip);
/* Whether ip is in any of the n blocks. */
bool rp_cidr_any(const rp_cidr_t *c, size_t n, const rp_ip_t *ip);

/* The client a request is attributed to.  peer: the address the
 * connection came from.  When it is in trusted (n blocks), the
 * X-Forwarded-For values (xff, in the order they came, joined with ", ")
 * are read from the right: the first address not in trusted is the
 * client; when every address is trusted, the leftmost one; an element
 * that is not an address stops the walk (the address right of it, or the
 * peer, is the client).  Otherwise the peer.  Returns whether the result
 * came from X-Forwarded-For. */
bool rp_client_address(const rp_ip_t *peer, const rp_cidr_t *trusted, size_t n,
                       const char *xff, size_t xff_len, rp_ip_t *out);

#endif
