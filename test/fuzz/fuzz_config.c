/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: configuration documents.  Whatever the bytes, building
 * a snapshot must not crash or leak; a valid snapshot's dump must build
 * again, and routing lookups on it must not crash.
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "revproxy/config.h"
#include "revproxy/module.h"
#include "revproxy/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return 0;
    rp_errs_t errs = { 0 };
    rp_snapshot_t *s = NULL;
    if (rp_snapshot_build(root, &s, &errs) == 0) {
        if (errs.count != 0)
            abort();
        json_t *dump = rp_snapshot_dump(s);
        rp_errs_t errs2 = { 0 };
        rp_snapshot_t *s2 = NULL;
        if (rp_snapshot_build(dump, &s2, &errs2) != 0)
            abort();   /* the effective configuration must be valid again */
        static const char *const hosts[] = { "", "a.example.com", "example.com", "x.y.z" };
        static const char *const paths[] = { "/", "/v1/", "/v1/users", "/a" };
        for (size_t h = 0; h < 4; h++)
            for (size_t p = 0; p < 4; p++)
                (void)rp_router_match(s->mod_state[RP_MOD_ROUTER], hosts[h], paths[p],
                                      strlen(paths[p]));
        rp_snapshot_unref(s2);
        rp_errs_free(&errs2);
        json_decref(dump);
        rp_snapshot_unref(s);
    } else if (errs.count == 0) {
        abort();   /* a refused document must say why */
    }
    rp_errs_free(&errs);
    json_decref(root);
    return 0;
}
