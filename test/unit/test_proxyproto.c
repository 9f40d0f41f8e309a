/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the PROXY protocol header parser (src/proxyproto.c):
 * versions 1 and 2, the addresses they give, headers in pieces, and every
 * way a header is refused.
 */
#include "config.h"
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include "proxyproto.h"

static int
parse(const char *s, size_t len, int version, rp_pp_t *out, const char **why)
{
    return rp_pp_parse((const unsigned char *)s, len, version, out, why);
}

#define P1(s, out, why) parse((s), sizeof(s) - 1, 1, (out), (why))
#define P2(s, out, why) parse((s), sizeof(s) - 1, 2, (out), (why))

static void
check_v4(const rp_pp_t *pp, const char *ip, unsigned port)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&pp->src;
    char text[INET_ADDRSTRLEN];
    ck_assert(pp->has_src);
    ck_assert_int_eq(s4->sin_family, AF_INET);
    ck_assert_str_eq(inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text), ip);
    ck_assert_uint_eq(ntohs(s4->sin_port), port);
}

static void
check_v6(const rp_pp_t *pp, const char *ip, unsigned port)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&pp->src;
    char text[INET6_ADDRSTRLEN];
    ck_assert(pp->has_src);
    ck_assert_int_eq(s6->sin6_family, AF_INET6);
    ck_assert_str_eq(inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text), ip);
    ck_assert_uint_eq(ntohs(s6->sin6_port), port);
}

START_TEST(test_v1)
{
    rp_pp_t pp;
    const char *why;
    static const char tcp4[] = "PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
    ck_assert_int_eq(P1(tcp4, &pp, &why), 43);   /* the header only */
    check_v4(&pp, "203.0.113.7", 56324);
    ck_assert_int_eq(P1("PROXY TCP6 2001:db8::5 ::1 0 65535\r\n", &pp, &why), 36);
    check_v6(&pp, "2001:db8::5", 0);
    ck_assert_int_eq(P1("PROXY UNKNOWN\r\n", &pp, &why), 15);
    ck_assert(!pp.has_src);
    ck_assert_int_eq(P1("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n", &pp, &why), 39);
    ck_assert(!pp.has_src);
    /* In pieces: every prefix of a good header waits for more. */
    for (size_t n = 0; n < 43; n++)
        ck_assert_int_eq(parse(tcp4, n, 1, &pp, &why), 0);
    /* The longest: 107 bytes with its CRLF. */
    static const char longest[] =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(sizeof longest - 1, 104);
    ck_assert_int_eq(P1(longest, &pp, &why), 104);
    /* 107 bytes with its CRLF pass, 108 do not, however they arrive. */
    char line[120];
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    ck_assert_int_eq(parse(line, 107, 1, &pp, &why), 107);
    ck_assert_int_eq(parse(line, 120, 1, &pp, &why), 107);
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2);
    ck_assert_int_eq(parse(line, 107, 1, &pp, &why), -1);
    ck_assert_int_eq(parse(line, 108, 1, &pp, &why), -1);
    ck_assert_str_eq(why, "header longer than 107 bytes");
    /* UNKNOWN: whatever follows, however many fields. */
    ck_assert_int_eq(P1("PROXY UNKNOWN a b c d e f g h\r\n", &pp, &why), 31);
    ck_assert(!pp.has_src);
    ck_assert_int_eq(P1("PROXY UNKNOWNX 1.2.3.4 1.2.3.4 1 2\r\n", &pp, &why), -1);
    /* An IPv4-mapped IPv6 client is an IPv4 client. */
    ck_assert_int_eq(P1("PROXY TCP6 ::ffff:203.0.113.11 ::1 7 80\r\n", &pp, &why), 41);
    check_v4(&pp, "203.0.113.11", 7);
}
END_TEST

START_TEST(test_v1_refused)
{
    rp_pp_t pp;
    const char *why;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1 2\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1 2\rX",
        "PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1 2 \r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1 2 3\r\n",
        "PROXY TCP4 999.0.113.7 10.0.0.1 1 2\r\n",
        "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        "PROXY TCP6 203.0.113.7 ::1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 65536 2\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 -1 2\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 123456 2\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 1 \r\n",
        "PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
        "PROXY tcp4 203.0.113.7 10.0.0.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7\t10.0.0.1 1 2\r\n",
        "PROXY \r\n",
        "proxy TCP4 203.0.113.7 10.0.0.1 1 2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        ck_assert_msg(parse(bad[i], strlen(bad[i]), 1, &pp, &why) == -1, "%s", bad[i]);
        ck_assert(why != NULL && why[0] != '\0');
    }
    /* No CRLF within 107 bytes. */
    char lng[200];
    memset(lng, 'A', sizeof lng);
    memcpy(lng, "PROXY ", 6);
    ck_assert_int_eq(parse(lng, 106, 1, &pp, &why), 0);
    ck_assert_int_eq(parse(lng, 107, 1, &pp, &why), -1);
    ck_assert_str_eq(why, "header longer than 107 bytes");
    /* A version 2 header is named as such. */
    ck_assert_int_eq(parse("\r\n\r\n\0\r\nQUIT\n", 12, 1, &pp, &why), -1);
    ck_assert_str_eq(why, "a version 2 header on a version 1 listener");
    ck_assert_int_eq(parse("\r\n", 2, 1, &pp, &why), -1);
    ck_assert_int_eq(parse("", 0, 1, &pp, &why), 0);
}
END_TEST

static size_t
v2(unsigned char *b, unsigned char cmd, unsigned char fam, const void *body, size_t len)
{
    memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
    b[12] = cmd;
    b[13] = fam;
    b[14] = (unsigned char)(len >> 8);
    b[15] = (unsigned char)len;
    memcpy(b + 16, body, len);
    return 16 + len;
}

START_TEST(test_v2)
{
    unsigned char b[RP_PP_V2_MAX + 64];
    rp_pp_t pp;
    const char *why;
    const unsigned char in4[12] = { 203, 0, 113, 8, 10, 0, 0, 1, 0x9c, 0x40, 0x01, 0xbb };
    size_t n = v2(b, 0x21, 0x11, in4, sizeof in4);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 28);
    check_v4(&pp, "203.0.113.8", 40000);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(rp_pp_parse(b, k, 2, &pp, &why), 0);
    /* Bytes behind it are not its. */
    b[n] = 'G';
    ck_assert_int_eq(rp_pp_parse(b, n + 1, 2, &pp, &why), 28);
    /* TCP over IPv6, with TLVs after the addresses. */
    unsigned char in6[36 + 7];
    memset(in6, 0, sizeof in6);
    in6[0] = 0x20; in6[1] = 0x01; in6[2] = 0x0d; in6[3] = 0xb8; in6[15] = 9;
    in6[16] = 0x20; in6[17] = 0x01; in6[18] = 0x0d; in6[19] = 0xb8; in6[31] = 1;
    in6[32] = 0x9c; in6[33] = 0x41;
    memcpy(in6 + 36, "\x04\x00\x04wxyz", 7);
    n = v2(b, 0x21, 0x21, in6, sizeof in6);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), (int)n);
    check_v6(&pp, "2001:db8::9", 40001);
    /* Mapped IPv4 in version 2 too. */
    in6[0] = 0; in6[1] = 0; in6[2] = 0; in6[3] = 0; in6[15] = 0;
    in6[10] = 0xff; in6[11] = 0xff; in6[12] = 198; in6[13] = 51; in6[14] = 100; in6[15] = 4;
    n = v2(b, 0x21, 0x21, in6, 36);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 52);
    check_v4(&pp, "198.51.100.4", 40001);
    /* LOCAL, UNSPEC, UDP, UNIX: the connection's own addresses. */
    n = v2(b, 0x20, 0x11, in4, sizeof in4);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 28);
    ck_assert(!pp.has_src);
    n = v2(b, 0x20, 0x00, "", 0);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 16);
    ck_assert(!pp.has_src);
    n = v2(b, 0x21, 0x12, in4, sizeof in4);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 28);
    ck_assert(!pp.has_src);
    unsigned char unx[216];
    memset(unx, 0, sizeof unx);
    n = v2(b, 0x21, 0x31, unx, sizeof unx);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), 232);
    ck_assert(!pp.has_src);
    /* The longest accepted, and one byte more. */
    static unsigned char big[2048];
    memcpy(big, in4, sizeof in4);
    n = v2(b, 0x21, 0x11, big, 2048);
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), RP_PP_V2_MAX);
    b[14] = 0x08; b[15] = 0x01;   /* 2049 */
    ck_assert_int_eq(rp_pp_parse(b, 16, 2, &pp, &why), -1);
    ck_assert_str_eq(why, "header longer than 2064 bytes");
}
END_TEST

START_TEST(test_v2_refused)
{
    unsigned char b[64];
    rp_pp_t pp;
    const char *why;
    const unsigned char in4[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
    size_t n = v2(b, 0x11, 0x11, in4, sizeof in4);   /* version 1 in the byte */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    ck_assert_str_eq(why, "version not 2");
    n = v2(b, 0x22, 0x11, in4, sizeof in4);           /* command 2 */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    n = v2(b, 0x21, 0x13, in4, sizeof in4);           /* protocol 3 */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    n = v2(b, 0x21, 0x41, in4, sizeof in4);           /* family 4 */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    n = v2(b, 0x21, 0x11, in4, 11);                   /* addresses short */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    n = v2(b, 0x21, 0x21, in4, 12);                   /* IPv6 in IPv4's room */
    ck_assert_int_eq(rp_pp_parse(b, n, 2, &pp, &why), -1);
    /* A wrong signature byte anywhere is refused at once. */
    n = v2(b, 0x21, 0x11, in4, sizeof in4);
    for (size_t k = 0; k < 12; k++) {
        unsigned char c[64];
        memcpy(c, b, n);
        c[k] ^= 0x20;
        ck_assert_int_eq(rp_pp_parse(c, k + 1, 2, &pp, &why), -1);
    }
    ck_assert_int_eq(P2("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &pp, &why), -1);
    ck_assert_str_eq(why, "a version 1 header on a version 2 listener");
    ck_assert_int_eq(P2("GET / HTTP/1.1\r\n", &pp, &why), -1);
    ck_assert_str_eq(why, "no PROXY protocol header");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("proxyproto");
    TCase *tc = tcase_create("proxyproto");
    tcase_add_test(tc, test_v1);
    tcase_add_test(tc, test_v1_refused);
    tcase_add_test(tc, test_v2);
    tcase_add_test(tc, test_v2_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
