/* SPDX-License-Identifier: MIT */
/* The PROXY protocol header, versions 1 and 2 (see proxyproto.h). */
#include "config.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "proxyproto.h"

static const unsigned char v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static int
bad(const char **why, const char *what)
{
    *why = what;
    return -1;
}

/* Whether the bytes seen so far can start the other version's header:
 * said so, since it is a configuration mistake rather than an attack. */
static bool
looks_like(const unsigned char *b, size_t len, int version)
{
    if (version == 2) {
        size_t n = len < 12 ? len : 12;
        return n > 0 && memcmp(b, v2_sig, n) == 0;
    }
    size_t n = len < 6 ? len : 6;
    return n > 0 && memcmp(b, "PROXY ", n) == 0;
}

/* A port in decimal: 1 to 5 digits, at most 65535. */
static bool
v1_port(const char *s, size_t n, unsigned *port)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = v;
    return true;
}

static bool
v1_addr(const char *s, size_t n, int family, void *dst)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(family, tmp, dst) == 1;
}

static int
parse_v1(const unsigned char *b, size_t len, rp_pp_t *out, const char **why)
{
    if (!looks_like(b, len, 1))
        return bad(why, looks_like(b, len, 2) ? "a version 2 header on a version 1 listener"
                                              : "no PROXY protocol header");
    size_t lim = len < RP_PP_V1_MAX ? len : RP_PP_V1_MAX;
    size_t end = 0;
    bool found = false;
    for (size_t i = 0; i < lim; i++) {
        if (b[i] == '\r') {
            if (i + 1 >= len)
                break;   /* its LF may follow */
            if (b[i + 1] != '\n')
                return bad(why, "CR without LF in the header");
            if (i + 2 > RP_PP_V1_MAX)
                break;   /* its CRLF would end past byte 107 */
            end = i;
            found = true;
            break;
        }
        if (b[i] < 0x20 || b[i] > 0x7e)
            return bad(why, "a control or non-ASCII byte in the header");
    }
    if (!found)
        return len >= RP_PP_V1_MAX ? bad(why, "header longer than 107 bytes") : 0;
    const char *line = (const char *)b + 6;
    size_t n = end - 6;
    memset(out, 0, sizeof *out);
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' '))
        return (int)end + 2;   /* whatever follows: the connection's own addresses */
    /* The fields after "PROXY ", one space apart. */
    const char *f[6];
    size_t fl[6];
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == ' ') {
            if (nf == 6)
                return bad(why, "too many fields");
            f[nf] = line + start;
            fl[nf] = i - start;
            nf++;
            start = i + 1;
        }
    }
    int family;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return bad(why, "protocol not TCP4, TCP6 or UNKNOWN");
    if (nf != 5)
        return bad(why, "not 5 fields");
    unsigned char src[16], dst[16];
    unsigned sport, dport;
    if (!v1_addr(f[1], fl[1], family, src) || !v1_addr(f[2], fl[2], family, dst))
        return bad(why, "an address not of its protocol");
    if (!v1_port(f[3], fl[3], &sport) || !v1_port(f[4], fl[4], &dport))
        return bad(why, "a port not a number from 0 to 65535");
    out->has_src = true;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, src, 4);
        s4->sin_port = htons((uint16_t)sport);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, src, 16);
        s6->sin6_port = htons((uint16_t)sport);
    }
    return (int)end + 2;
}

static int
parse_v2(const unsigned char *b, size_t len, rp_pp_t *out, const char **why)
{
    if (!looks_like(b, len, 2))
        return bad(why, looks_like(b, len, 1) ? "a version 1 header on a version 2 listener"
                                              : "no PROXY protocol header");
    if (len < 16)
        return 0;
    if (b[12] >> 4 != 2)
        return bad(why, "version not 2");
    unsigned cmd = b[12] & 0x0f;
    if (cmd > 1)
        return bad(why, "command not LOCAL or PROXY");
    unsigned fam = b[13];
    switch (fam) {
    case 0x00: case 0x11: case 0x12: case 0x21: case 0x22: case 0x31: case 0x32:
        break;
    default:
        return bad(why, "unknown address family or protocol");
    }
    size_t total = 16 + ((size_t)b[14] << 8 | b[15]);
    if (total > RP_PP_V2_MAX)
        return bad(why, "header longer than 2064 bytes");
    if (len < total)
        return 0;
    memset(out, 0, sizeof *out);
    if (cmd == 0)
        return (int)total;   /* LOCAL: the balancer's own connection */
    if (fam == 0x11) {
        if (total < 16 + 12)
            return bad(why, "addresses shorter than TCP over IPv4 needs");
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, b + 16, 4);
        memcpy(&s4->sin_port, b + 24, 2);
        out->has_src = true;
    } else if (fam == 0x21) {
        if (total < 16 + 36)
            return bad(why, "addresses shorter than TCP over IPv6 needs");
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, b + 16, 16);
        memcpy(&s6->sin6_port, b + 48, 2);
        out->has_src = true;
    }
    /* Other families, and any TLVs, are not used. */
    return (int)total;
}

/* An IPv4 client that a dual-stack balancer names in IPv6's mapped form
 * (::ffff:a.b.c.d) is an IPv4 client, as if it had connected directly. */
static void
unmap(rp_pp_t *out)
{
    if (!out->has_src || out->src.ss_family != AF_INET6)
        return;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&out->src;
    if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return;
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = s6->sin6_port;
    memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
    memset(&out->src, 0, sizeof out->src);
    memcpy(&out->src, &s4, sizeof s4);
}

int
rp_pp_parse(const unsigned char *buf, size_t len, int version, rp_pp_t *out, const char **why)
{
    *why = "";
    if (len == 0)
        return 0;
    int n = version == 2 ? parse_v2(buf, len, out, why) : parse_v1(buf, len, out, why);
    if (n > 0)
        unmap(out);
    return n;
}
