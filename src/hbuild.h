/* SPDX-License-Identifier: MIT */
/*
 * Building HTTP/1 message heads straight into an evbuffer (request heads
 * for backends in proxy.c, response heads for HTTP/1 clients in conn.c).
 */
#ifndef RP_HBUILD_H
#define RP_HBUILD_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "revproxy/http.h"

/* A message head is built in one reserved, contiguous piece of the output
 * buffer and committed once: one buffer callback per head rather than one
 * per field. */
typedef struct head_builder {
    struct evbuffer      *out;
    struct evbuffer_iovec v;
    char                 *p;
} head_builder_t;

/* False when the buffer could not grow (out of memory): nothing is
 * written then, and the caller gives up the message. */
static inline bool __attribute__((warn_unused_result))
hb_begin(head_builder_t *b, struct evbuffer *out, size_t max)
{
    b->out = out;
    if (evbuffer_reserve_space(out, (ev_ssize_t)max, &b->v, 1) < 1)
        return false;
    b->p = b->v.iov_base;
    return true;
}

static inline void
hb_put(head_builder_t *b, const void *s, size_t n)
{
    memcpy(b->p, s, n);
    b->p += n;
}

#define HB_LIT(b, lit) hb_put((b), (lit), sizeof(lit) - 1)

static inline void
hb_str(head_builder_t *b, const char *s)
{
    hb_put(b, s, strlen(s));
}

static inline void
hb_uint(head_builder_t *b, uint64_t v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    hb_put(b, p, (size_t)(buf + sizeof buf - p));
}

static inline void
hb_fields(head_builder_t *b, const rp_http_head_t *h)
{
    for (unsigned i = 0; i < h->nfields; i++) {
        const rp_hfield_t *f = &h->fields[i];
        if (f->flags & RP_HF_DROP)
            continue;
        hb_put(b, rp_hf_name(h, f), f->name_len);
        HB_LIT(b, ": ");
        hb_put(b, rp_hf_value(h, f), f->value_len);
        HB_LIT(b, "\r\n");
    }
}

static inline size_t
hb_end(head_builder_t *b)
{
    size_t n = (size_t)(b->p - (char *)b->v.iov_base);
    assert(n <= b->v.iov_len);
    b->v.iov_len = n;
    evbuffer_commit_space(b->out, &b->v, 1);
    return n;
}

/* Append len body bytes as one chunk of a chunked body (len > 0: a
 * zero-size chunk would end the body).  Returns the bytes added, or 0
 * when memory ran out: the body's framing is broken then, and the caller
 * must cut the message. */
static inline size_t
rp_chunk_add(struct evbuffer *out, const char *at, size_t len)
{
    char hdr[24];
    char *p = hdr + sizeof hdr;
    *--p = '\n';
    *--p = '\r';
    size_t v = len;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    size_t n = (size_t)(hdr + sizeof hdr - p);
    if (evbuffer_add(out, p, n) < 0 || evbuffer_add(out, at, len) < 0
        || evbuffer_add(out, "\r\n", 2) < 0)
        return 0;
    return n + len + 2;
}

/* Room a head needs beyond its stored fields: request line or status line,
 * the proxy's own fields, separators. */
#define HEAD_EXTRA 1024

#endif
