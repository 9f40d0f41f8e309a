/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol header (versions 1 and 2) that a layer-4 load
 * balancer puts in front of a connection to say whose it is.  Parsing
 * only: accept.c peeks at the socket, asks how long the header is, then
 * reads exactly that much, so what follows is left for TLS or HTTP.
 */
#ifndef RP_PROXYPROTO_H
#define RP_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest header of each version accepted: version 1's own limit,
 * and for version 2 the 16-byte preamble and up to 2 KiB of addresses and
 * TLVs (load balancers send tens of bytes). */
#define RP_PP_V1_MAX 107
#define RP_PP_V2_MAX (16 + 2048)

typedef struct rp_pp {
    /* false: the connection's own addresses stand (version 1 UNKNOWN, a
     * version 2 LOCAL command such as the balancer's health check, or an
     * address family other than TCP over IPv4 or IPv6). */
    bool                    has_src;
    struct sockaddr_storage src;   /* the client, with its port (an IPv4-mapped
                                      IPv6 address as IPv4) */
} rp_pp_t;

/* Parse the bytes that start a connection as a header of version (1 or 2).
 * Returns its length (> 0) when whole and valid, 0 when more bytes are
 * needed (none seen so far is wrong), or -1 when they are not such a
 * header; *why then says what is wrong, a static phrase. */
int rp_pp_parse(const unsigned char *buf, size_t len, int version, rp_pp_t *out,
                const char **why);

#endif
