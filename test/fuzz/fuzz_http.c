/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the header rules.  The input is split on NUL bytes
 * into a host value, a request target and header fields ("name:value");
 * the head storage, hop-by-hop marking, host normalisation and target
 * splitting must hold their contracts for any bytes, and the field lookups
 * (rp_http_find, rp_http_list_has) must agree with the plain reference
 * versions below.
 */
#include "config.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reference versions: slow and simple on purpose ---- */

static unsigned char
ref_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Byte-wise ASCII case-insensitive equality of a and b, n bytes each. */
static bool
ref_same(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ref_lower((unsigned char)a[i]) != ref_lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool
ref_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The value split at every comma; each member stripped of spaces and tabs
 * at both ends; is one of them tok (tl > 0 bytes), ignoring ASCII case? */
static bool
ref_list_has(const char *v, size_t len, const char *tok, size_t tl)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && v[i] != ',')
            continue;
        size_t a = start, b = i;
        while (a < b && ref_ows(v[a]))
            a++;
        while (b > a && ref_ows(v[b - 1]))
            b--;
        if (b - a == tl && ref_same(v + a, tok, tl))
            return true;
        start = i + 1;
    }
    return false;
}

/* Index of the first field named name (any ASCII case), or -1; *count
 * gets how many fields have that name. */
static long
ref_find(const rp_http_head_t *h, const char *name, size_t nl, unsigned *count)
{
    long first = -1;
    *count = 0;
    for (unsigned i = 0; i < h->nfields; i++) {
        const rp_hfield_t *f = &h->fields[i];
        if (f->name_len == nl && ref_same(h->buf + f->name_off, name, nl)) {
            if (first < 0)
                first = (long)i;
            (*count)++;
        }
    }
    return first;
}

static void
check_find(const rp_http_head_t *h, const char *name)
{
    unsigned count = ~0u, want_count;
    const rp_hfield_t *got = rp_http_find(h, name, &count);
    long want = ref_find(h, name, strlen(name), &want_count);
    if (count != want_count)
        abort();
    if (want < 0 ? got != NULL : got != &h->fields[want])
        abort();
    if (rp_http_find(h, name, NULL) != got)
        abort();   /* the count is optional and changes nothing */
}

static void
check_list_has(const char *v, size_t len, const char *tok)
{
    size_t tl = strlen(tok);
    if (tl == 0)
        return;   /* tokens are field names or list members: never empty */
    if (rp_http_list_has(v, len, tok) != ref_list_has(v, len, tok, tl))
        abort();
}

/* tok with its ASCII letters' case flipped, into out (cap bytes). */
static const char *
flip_case(const char *tok, char *out, size_t cap)
{
    size_t i = 0;
    for (; tok[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        else if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        out[i] = (char)c;
    }
    out[i] = '\0';
    return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *parts[64];
    size_t lens[64];
    size_t n = 0;
    while (p <= end && n < 64) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (z == NULL)
            z = end;
        parts[n] = p;
        lens[n] = (size_t)(z - p);
        n++;
        p = z + 1;
    }
    if (n == 0)
        return 0;

    char host[256];
    int hl = rp_host_normalize(parts[0], lens[0], host, sizeof host);
    if (hl >= 0 && (size_t)hl != strlen(host))
        abort();

    if (n > 1) {
        const char *auth, *origin;
        size_t alen, olen;
        if (rp_http_split_absolute(parts[1], lens[1], &auth, &alen, &origin, &olen) == 0) {
            if (auth < parts[1] || auth + alen > parts[1] + lens[1] || alen == 0)
                abort();
            if (origin + olen != parts[1] + lens[1])
                abort();
        }
        (void)rp_request_id_valid(parts[1], lens[1]);
    }

    rp_http_head_t h;
    rp_http_head_init(&h, 4096);
    int ok = lens[0] == 0 || rp_http_head_add_target(&h, parts[0], lens[0]) == 0;
    for (size_t i = 2; i < n && ok; i++) {
        const char *colon = memchr(parts[i], ':', lens[i]);
        size_t nl = colon != NULL ? (size_t)(colon - parts[i]) : lens[i];
        if (nl == 0)
            continue;
        ok = rp_http_head_add_name(&h, parts[i], nl) == 0;
        if (ok && colon != NULL && lens[i] > nl + 1)
            ok = rp_http_head_add_value(&h, colon + 1, lens[i] - nl - 1) == 0;
    }
    if (ok && rp_http_head_finish(&h) == 0) {
        if (h.len > h.limit)
            abort();
        rp_http_mark_hop_by_hop(&h, NULL);
        static const char *const fixed[] = { "host", "connection", "close", "keep-alive",
                                             "Close", "HOST", "x" };
        char flipped[512];
        for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
            check_find(&h, fixed[k]);
        for (unsigned i = 0; i < h.nfields; i++) {
            const rp_hfield_t *f = &h.fields[i];
            const char *name = rp_hf_name(&h, f), *value = rp_hf_value(&h, f);
            if (name[f->name_len] != '\0' || value[f->value_len] != '\0')
                abort();   /* every stored string is NUL-terminated */
            if (rp_hf_is(&h, f, "connection") && !(f->flags & RP_HF_DROP))
                abort();
            /* Every field's own name, as stored and with its case
             * flipped, is found (with all its duplicates). */
            check_find(&h, name);
            check_find(&h, flip_case(name, flipped, sizeof flipped));
            unsigned nsame;
            if (rp_http_find(&h, name, &nsame) == NULL || nsame == 0)
                abort();
            for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
                check_list_has(value, f->value_len, fixed[k]);
            /* Other fields' names as list members (what hop-by-hop
             * marking asks), bounded so a run stays linear-ish. */
            for (unsigned j = 0; j < h.nfields && j < 16; j++)
                check_list_has(value, f->value_len, rp_hf_name(&h, &h.fields[j]));
            /* The value's first member, recased: must be found whenever
             * it is not empty. */
            const char *comma = memchr(value, ',', f->value_len);
            size_t ml = comma != NULL ? (size_t)(comma - value) : f->value_len;
            if (ml < sizeof flipped) {
                char member[sizeof flipped];
                memcpy(member, value, ml);
                member[ml] = '\0';
                const char *tok = member;
                while (ref_ows(*tok))
                    tok++;
                size_t tl = strlen(tok);
                while (tl > 0 && ref_ows(tok[tl - 1]))
                    tl--;
                member[(size_t)(tok - member) + tl] = '\0';
                check_list_has(value, f->value_len, tok);
                check_list_has(value, f->value_len, flip_case(tok, flipped, sizeof flipped));
                if (tl > 0 && !rp_http_list_has(value, f->value_len, tok))
                    abort();
            }
        }
    }
    rp_http_head_free(&h);
    return 0;
}
