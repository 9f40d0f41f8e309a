/* SPDX-License-Identifier: MIT */
/*
 * IP addresses and CIDR blocks (revproxy/cidr.h).
 */
#include "config.h"
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "revproxy/cidr.h"

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool
rp_ip_is_v4(const rp_ip_t *ip)
{
    return memcmp(ip->b, v4_prefix, sizeof v4_prefix) == 0;
}

static bool
all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

int
rp_ip_parse(const char *s, size_t len, bool ports, rp_ip_t *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (end == NULL)
            return -1;
        size_t rest = len - (size_t)(end - s) - 1;
        if (rest > 0 && !(ports && end[1] == ':' && rest <= 6 && all_digits(end + 2, rest - 1)
                          && atoi(end + 2) <= 65535))
            return -1;
        len = (size_t)(end - s) - 1;
        s++;
        memcpy(buf, s, len);
        buf[len] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return -1;
        memcpy(out->b, &a6, 16);
        return 0;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *colon = strchr(buf, ':');
    if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        /* One colon: an IPv4 address and a port. */
        if (!ports || !all_digits(colon + 1, strlen(colon + 1)) || strlen(colon + 1) > 5
            || atoi(colon + 1) > 65535)
            return -1;
        buf[colon - buf] = '\0';
    }
    struct in_addr a4;
    if (strchr(buf, ':') == NULL) {
        if (inet_pton(AF_INET, buf, &a4) != 1)
            return -1;
        memcpy(out->b, v4_prefix, 12);
        memcpy(out->b + 12, &a4, 4);
        return 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) != 1)
        return -1;
    memcpy(out->b, &a6, 16);
    return 0;
}

/* A random seed, so that nobody can choose addresses that fall into one
 * chain of a table (every request of the shard would walk it). */
static uint64_t hash_seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void
seed_init(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&s;
    hash_seed = s;
}

uint64_t
rp_ip_hash(const rp_ip_t *ip)
{
    pthread_once(&seed_once, seed_init);
    uint64_t h = 1469598103934665603ull ^ hash_seed;   /* FNV-1a, seeded, mixed once more */
    for (unsigned i = 0; i < 16; i++) {
        h ^= ip->b[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

void
rp_ip_text(const rp_ip_t *ip, char *out, size_t cap)
{
    if (rp_ip_is_v4(ip)) {
        if (inet_ntop(AF_INET, ip->b + 12, out, (socklen_t)cap) == NULL && cap > 0)
            out[0] = '\0';
    } else if (inet_ntop(AF_INET6, ip->b, out, (socklen_t)cap) == NULL && cap > 0) {
        out[0] = '\0';
    }
}

int
rp_cidr_parse(const char *s, rp_cidr_t *out, const char **why)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    memset(out, 0, sizeof *out);
    if (rp_ip_parse(s, alen, false, &out->net) < 0 || (alen > 0 && s[0] == '[')) {
        *why = "must be an IPv4 or IPv6 address, optionally with /prefix";
        return -1;
    }
    out->v4 = rp_ip_is_v4(&out->net) && strchr(s, '.') != NULL && memchr(s, ':', alen) == NULL;
    unsigned max = out->v4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (!all_digits(p, strlen(p)) || strlen(p) > 3 || (bits = (unsigned)atoi(p)) > max) {
            *why = out->v4 ? "the prefix must be 0 to 32" : "the prefix must be 0 to 128";
            return -1;
        }
    }
    out->bits = out->v4 ? 96 + bits : bits;
    /* Bits past the prefix must be zero: "10.1.0.0/8" is a mistake. */
    for (unsigned i = out->bits; i < 128; i++) {
        if (out->net.b[i / 8] & (0x80u >> (i % 8))) {
            *why = "has address bits set beyond its prefix";
            return -1;
        }
    }
    return 0;
}

bool
rp_cidr_match(const rp_cidr_t *c, const rp_ip_t *ip)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net.b, ip->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (c->net.b[full] & mask) == (ip->b[full] & mask);
}

bool
rp_cidr_any(const rp_cidr_t *c, size_t n, const rp_ip_t *ip)
{
    for (size_t i = 0; i < n; i++)
        if (rp_cidr_match(&c[i], ip))
            return true;
    return false;
}

bool
rp_client_address(const rp_ip_t *peer, const rp_cidr_t *trusted, size_t n,
                   const char *xff, size_t xff_len, rp_ip_t *out)
{
    *out = *peer;
    if (n == 0 || xff == NULL || xff_len == 0 || !rp_cidr_any(trusted, n, peer))
        return false;
    bool from_xff = false;
    size_t end = xff_len;
    while (end > 0) {
        /* The element ending at end. */
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
            a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
            b--;
        end = start > 0 ? start - 1 : 0;
        if (a == b)
            continue;   /* an empty element */
        rp_ip_t ip;
        if (rp_ip_parse(xff + a, b - a, true, &ip) < 0)
            break;      /* not an address: believe nothing left of it */
        *out = ip;
        from_xff = true;
        if (!rp_cidr_any(trusted, n, &ip))
            break;      /* the first untrusted address from the right */
        if (start == 0)
            break;
    }
    return from_xff;
}
