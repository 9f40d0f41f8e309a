/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: request path normalisation (src/path.c).  For any
 * bytes: a result is 0 or one of the RP_PATH_E* codes; an error leaves the
 * target untouched; a success is no longer than the input, keeps the
 * query byte for byte, leaves no "." or ".." segment and no escape of an
 * unreserved character in the path, and is a fixed point (normalising it
 * again changes nothing).
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *t = malloc(size + 1);
    char *orig = malloc(size + 1);
    if (t == NULL || orig == NULL)
        abort();
    memcpy(t, data, size);
    memcpy(orig, data, size);
    t[size] = orig[size] = '\0';
    size_t out = (size_t)-1;
    int rc = rp_path_normalize(t, size, &out);
    if (rc < 0) {
        if (rc != RP_PATH_EESCAPE && rc != RP_PATH_EROOT && rc != RP_PATH_EFORM)
            abort();
        if (memcmp(t, orig, size) != 0 || out != (size_t)-1)
            abort();   /* an error changes nothing */
        if (rp_path_error(rc)[0] == '\0')
            abort();
        goto done;
    }
    if (rc != 0 || out > size)
        abort();
    if (size == 0 || t[0] != '/')
        goto done;   /* empty, "?..." or "*": unchanged */
    const char *q = memchr(t, '?', out);
    size_t plen = q != NULL ? (size_t)(q - t) : out;
    const char *oq = memchr(orig, '?', size);
    /* The query, byte for byte. */
    if ((q == NULL) != (oq == NULL))
        abort();
    if (q != NULL && (out - plen != size - (size_t)(oq - orig)
                      || memcmp(q, oq, out - plen) != 0))
        abort();
    /* No dot segment, no escaped unreserved character, escapes upper-case. */
    for (size_t i = 0; i < plen; i++) {
        if (t[i] == '/') {
            size_t j = i + 1;
            size_t n = 0;
            while (j + n < plen && t[j + n] != '/')
                n++;
            if ((n == 1 && t[j] == '.') || (n == 2 && t[j] == '.' && t[j + 1] == '.'))
                abort();
        }
        if (t[i] == '%') {
            if (i + 2 >= plen)
                abort();   /* a cut escape survived */
            int hi = hexval(t[i + 1]), lo = hexval(t[i + 2]);
            if (hi < 0 || lo < 0 || unreserved(hi * 16 + lo))
                abort();
        }
    }
    /* A fixed point. */
    char *again = malloc(out + 1);
    if (again == NULL)
        abort();
    memcpy(again, t, out);
    size_t out2 = 0;
    if (rp_path_normalize(again, out, &out2) != 0 || out2 != out || memcmp(again, t, out) != 0)
        abort();
    free(again);
done:
    free(t);
    free(orig);
    return 0;
}
