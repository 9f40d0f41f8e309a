/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the header rules.  The input is split on NUL bytes
 * into a host value, a request target and header fields ("name:value");
 * the head storage, hop-by-hop marking, host normalisation and target
 * splitting must hold their contracts for any bytes.
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        for (unsigned i = 0; i < h.nfields; i++) {
            const rp_hfield_t *f = &h.fields[i];
            if (rp_hf_name(&h, f)[f->name_len] != '\0' || rp_hf_value(&h, f)[f->value_len] != '\0')
                abort();   /* every stored string is NUL-terminated */
            if (rp_hf_is(&h, f, "connection") && !(f->flags & RP_HF_DROP))
                abort();
            (void)rp_http_list_has(rp_hf_value(&h, f), f->value_len, "close");
        }
        unsigned count;
        (void)rp_http_find(&h, "host", &count);
    }
    rp_http_head_free(&h);
    return 0;
}
