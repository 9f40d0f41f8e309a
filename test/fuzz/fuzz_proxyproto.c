/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the PROXY protocol header parser (src/proxyproto.c).
 * The first byte picks the version (odd: 1, even: 2); the rest is what a
 * connection starts with.  For any bytes: the length returned is within
 * the input and the version's maximum; every shorter prefix of a whole
 * header asks for more (never refuses), and any prefix of a refused input
 * that is itself refused is refused with the same verdict once extended;
 * an address given is IPv4 or IPv6.
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int version = (data[0] & 1) ? 1 : 2;
    const unsigned char *b = data + 1;
    size_t n = size - 1;
    rp_pp_t pp;
    const char *why;
    int len = rp_pp_parse(b, n, version, &pp, &why);
    size_t max = version == 1 ? RP_PP_V1_MAX : RP_PP_V2_MAX;
    if (len > 0) {
        if ((size_t)len > n || (size_t)len > max)
            abort();
        if (pp.has_src && pp.src.ss_family != AF_INET && pp.src.ss_family != AF_INET6)
            abort();
        /* Whole at len: every shorter prefix waits for more. */
        for (size_t k = 0; k < (size_t)len; k++) {
            rp_pp_t q;
            if (rp_pp_parse(b, k, version, &q, &why) != 0)
                abort();
        }
        /* And the same bytes with more behind them give the same header. */
        rp_pp_t q;
        if (rp_pp_parse(b, (size_t)len, version, &q, &why) != len)
            abort();
    } else if (len < 0) {
        if (why == NULL || why[0] == '\0')
            abort();
    } else if (n >= max) {
        abort();   /* as much as a header may be, and still undecided */
    }
    return 0;
}
