/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for addresses and CIDR blocks: parsing (ports where
 * X-Forwarded-For writers add them), matching IPv4, IPv6 and IPv4-mapped
 * IPv6 against both kinds of blocks, and the client address taken from a
 * trusted peer's X-Forwarded-For.
 */
#include "config.h"
#include <check.h>
#include <string.h>
#include "revproxy/cidr.h"
#include "accept.h"
#include "ipcount.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static rp_ip_t
ip(const char *s)
{
    rp_ip_t a;
    ck_assert_msg(rp_ip_parse(s, strlen(s), true, &a) == 0, "parse %s", s);
    return a;
}

static const struct { const char *in; bool ports; int rc; const char *text; } parse_cases[] = {
    { "10.1.2.3", false, 0, "10.1.2.3" },
    { "10.1.2.3:8080", true, 0, "10.1.2.3" },
    { "10.1.2.3:8080", false, -1, NULL },
    { "::1", false, 0, "::1" },
    { "[::1]", false, 0, "::1" },
    { "[2001:db8::1]:443", true, 0, "2001:db8::1" },
    { "[2001:db8::1]:443", false, -1, NULL },
    { "::ffff:192.0.2.7", false, 0, "192.0.2.7" },
    { "256.1.1.1", false, -1, NULL },
    { "1.2.3", false, -1, NULL },
    { "unknown", true, -1, NULL },
    { "", true, -1, NULL },
    { "[::1", true, -1, NULL },
    { "10.1.2.3:port", true, -1, NULL },
    { "10.1.2.3:123456", true, -1, NULL },
};

START_TEST(test_parse)
{
    rp_ip_t a;
    int rc = rp_ip_parse(parse_cases[_i].in, strlen(parse_cases[_i].in), parse_cases[_i].ports, &a);
    ck_assert_msg(rc == parse_cases[_i].rc, "%s: rc %d", parse_cases[_i].in, rc);
    if (rc == 0) {
        char t[64];
        rp_ip_text(&a, t, sizeof t);
        ck_assert_str_eq(t, parse_cases[_i].text);
    }
}
END_TEST

static const struct { const char *cidr; const char *why; } bad_cidrs[] = {
    { "10.0.0.0/33", "the prefix must be 0 to 32" },
    { "::/129", "the prefix must be 0 to 128" },
    { "10.1.0.0/8", "has address bits set beyond its prefix" },
    { "10.0.0.0/x", "the prefix must be 0 to 32" },
    { "example.com/8", "must be an IPv4 or IPv6 address, optionally with /prefix" },
    { "[::1]/128", "must be an IPv4 or IPv6 address, optionally with /prefix" },
    { "10.0.0.0/", "the prefix must be 0 to 32" },
};

START_TEST(test_bad_cidr)
{
    rp_cidr_t c;
    const char *why = NULL;
    ck_assert_int_eq(rp_cidr_parse(bad_cidrs[_i].cidr, &c, &why), -1);
    ck_assert_str_eq(why, bad_cidrs[_i].why);
}
END_TEST

static const struct { const char *cidr, *addr; bool in; } match_cases[] = {
    { "10.0.0.0/8", "10.255.1.2", true },
    { "10.0.0.0/8", "11.0.0.1", false },
    { "10.0.0.0/8", "::ffff:10.9.9.9", true },     /* mapped peer, v4 block */
    { "192.0.2.128/25", "192.0.2.200", true },
    { "192.0.2.128/25", "192.0.2.127", false },
    { "192.0.2.7", "192.0.2.7", true },           /* one address */
    { "192.0.2.7", "192.0.2.8", false },
    { "0.0.0.0/0", "203.0.113.9", true },
    { "0.0.0.0/0", "2001:db8::1", false },        /* every IPv4, no IPv6 */
    { "2001:db8::/32", "2001:db8:ffff::1", true },
    { "2001:db8::/32", "2001:db9::1", false },
    { "::/0", "2001:db8::1", true },
    { "::1", "::1", true },
    { "::ffff:10.0.0.0/104", "10.1.1.1", true },  /* a v4 block written mapped */
    { "fe80::/10", "febf::1", true },
    { "fe80::/10", "fec0::1", false },
};

START_TEST(test_match)
{
    rp_cidr_t c;
    const char *why = NULL;
    ck_assert_msg(rp_cidr_parse(match_cases[_i].cidr, &c, &why) == 0, "%s: %s",
                  match_cases[_i].cidr, why);
    rp_ip_t a = ip(match_cases[_i].addr);
    ck_assert_msg(rp_cidr_match(&c, &a) == match_cases[_i].in, "%s in %s", match_cases[_i].addr,
                  match_cases[_i].cidr);
}
END_TEST

static const struct { const char *peer, *xff, *want; bool from; } client_cases[] = {
    /* an untrusted peer: never believed */
    { "203.0.113.5", "1.2.3.4", "203.0.113.5", false },
    /* a trusted peer: the last untrusted address from the right */
    { "10.0.0.1", "198.51.100.7", "198.51.100.7", true },
    { "10.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7", true },
    { "10.0.0.1", "198.51.100.7, 10.0.0.2", "198.51.100.7", true },
    { "10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.3, 10.0.0.2", "198.51.100.7", true },
    /* every hop trusted: the leftmost */
    { "10.0.0.1", "10.0.0.9, 10.0.0.2", "10.0.0.9", true },
    /* garbage stops the walk: the address right of it */
    { "10.0.0.1", "6.6.6.6, nonsense, 10.0.0.2", "10.0.0.2", true },
    { "10.0.0.1", "nonsense", "10.0.0.1", false },
    { "10.0.0.1", "", "10.0.0.1", false },
    { "10.0.0.1", " , 198.51.100.7 ,", "198.51.100.7", true },
    { "10.0.0.1", "[2001:db8::5]:4711", "2001:db8::5", true },
    { "::ffff:10.0.0.1", "198.51.100.7:1234", "198.51.100.7", true },
};

START_TEST(test_client)
{
    rp_cidr_t t[2];
    const char *why = NULL;
    ck_assert_int_eq(rp_cidr_parse("10.0.0.0/8", &t[0], &why), 0);
    ck_assert_int_eq(rp_cidr_parse("2001:db8:1::/48", &t[1], &why), 0);
    rp_ip_t peer = ip(client_cases[_i].peer), out;
    const char *x = client_cases[_i].xff;
    bool from = rp_client_address(&peer, t, 2, x, strlen(x), &out);
    char text[64];
    rp_ip_text(&out, text, sizeof text);
    ck_assert_msg(strcmp(text, client_cases[_i].want) == 0 && from == client_cases[_i].from,
                  "peer %s xff \"%s\": %s (%d)", client_cases[_i].peer, x, text, from);
}
END_TEST

/* Connections per address: the limit, release, and entries freed when an
 * address has none left. */
START_TEST(test_ipcount)
{
    rp_ip_t a = ip("192.0.2.1"), b = ip("::ffff:192.0.2.2"), c = ip("2001:db8::1");
    unsigned before = rp_ipcount_addresses();
    ck_assert_int_eq(rp_ipcount_acquire(&a, 2), 0);
    ck_assert_int_eq(rp_ipcount_acquire(&a, 2), 0);
    ck_assert_int_eq(rp_ipcount_acquire(&a, 2), RP_IPCOUNT_FULL);   /* at its limit */
    ck_assert_int_eq(rp_ipcount_acquire(&b, 2), 0);    /* another address */
    ck_assert_int_eq(rp_ipcount_acquire(&c, 1), 0);
    ck_assert_int_eq(rp_ipcount_acquire(&c, 1), RP_IPCOUNT_FULL);
    ck_assert_uint_eq(rp_ipcount_get(&a), 2);
    ck_assert_uint_eq(rp_ipcount_addresses(), before + 3);
    rp_ipcount_release(&a);
    ck_assert_int_eq(rp_ipcount_acquire(&a, 2), 0);    /* a place freed */
    rp_ipcount_release(&a);
    rp_ipcount_release(&a);
    rp_ipcount_release(&b);
    rp_ipcount_release(&c);
    ck_assert_uint_eq(rp_ipcount_get(&a), 0);
    ck_assert_uint_eq(rp_ipcount_addresses(), before);
    /* Many addresses share shards and buckets: each counted on its own. */
    for (unsigned i = 0; i < 5000; i++) {
        rp_ip_t x = a;
        x.b[14] = (uint8_t)(i >> 8);
        x.b[15] = (uint8_t)i;
        ck_assert_int_eq(rp_ipcount_acquire(&x, 1), 0);
    }
    ck_assert_uint_eq(rp_ipcount_addresses(), before + 5000);
    for (unsigned i = 0; i < 5000; i++) {
        rp_ip_t x = a;
        x.b[14] = (uint8_t)(i >> 8);
        x.b[15] = (uint8_t)i;
        ck_assert_int_eq(rp_ipcount_acquire(&x, 1), RP_IPCOUNT_FULL);
        rp_ipcount_release(&x);
    }
    ck_assert_uint_eq(rp_ipcount_addresses(), before);
}
END_TEST

/* An idle connection's peer, packed into a socket address and back: the
 * same text and address for IPv4, IPv6 and IPv4-mapped IPv6; a text that
 * would not come back the same is refused (the connection stays whole). */
START_TEST(test_peer_pack)
{
    static const struct { const char *text, *ip; } ok[] = {
        { "192.0.2.7:51234", "192.0.2.7" },
        { "[2001:db8::5]:443", "2001:db8::5" },
        { "[::ffff:192.0.2.9]:80", "::ffff:192.0.2.9" },
        { "[::1]:0", "::1" },
        { "0.0.0.0:65535", "0.0.0.0" },
    };
    for (int i = 0; i < NCASES(ok); i++) {
        rp_peer_t p, back;
        memset(&p, 0, sizeof p);
        strcpy(p.text, ok[i].text);
        strcpy(p.ip, ok[i].ip);
        p.accepted_us = 12345;
        p.listener = 7;
        p.ip_counted = true;
        p.unnamed = i % 2;
        p.addr = ip(ok[i].ip);
        rp_peer_packed_t k;
        ck_assert_msg(rp_peer_pack(&p, &k), "pack %s", ok[i].text);
        rp_peer_unpack(&k, &back);
        ck_assert_str_eq(back.text, p.text);
        ck_assert_str_eq(back.ip, p.ip);
        ck_assert_uint_eq(back.accepted_us, 12345);
        ck_assert_uint_eq(back.listener, 7);
        ck_assert(back.ip_counted);
        ck_assert_int_eq(back.unnamed, p.unnamed);
        ck_assert(memcmp(&back.addr, &p.addr, sizeof p.addr) == 0);
    }
    static const struct { const char *text, *ip; } bad[] = {
        { "192.0.2.7", "192.0.2.7" },               /* no port */
        { "192.0.2.7:99999", "192.0.2.7" },         /* out of range */
        { "192.0.2.7:80", "192.0.2.8" },            /* text and address differ */
        { "[2001:DB8::5]:443", "2001:DB8::5" },     /* not the canonical form */
        { "[2001:db8::5]:443x", "2001:db8::5" },
    };
    for (int i = 0; i < NCASES(bad); i++) {
        rp_peer_t p;
        memset(&p, 0, sizeof p);
        strcpy(p.text, bad[i].text);
        strcpy(p.ip, bad[i].ip);
        rp_peer_packed_t k;
        ck_assert_msg(!rp_peer_pack(&p, &k), "pack %s", bad[i].text);
    }
}
END_TEST

static Suite *
cidr_suite(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("cidr");
    tcase_add_loop_test(tc, test_parse, 0, NCASES(parse_cases));
    tcase_add_loop_test(tc, test_bad_cidr, 0, NCASES(bad_cidrs));
    tcase_add_loop_test(tc, test_match, 0, NCASES(match_cases));
    tcase_add_loop_test(tc, test_client, 0, NCASES(client_cases));
    tcase_add_test(tc, test_ipcount);
    tcase_add_test(tc, test_peer_pack);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cidr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
