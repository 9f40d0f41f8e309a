/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.x message heads as the parser leaves them, and the header rules
 * the proxy applies: hop-by-hop removal, X-Forwarded-*, request ids, host
 * normalisation.  Pure functions, no I/O.
 */
#ifndef REVPROXY_HTTP_H
#define REVPROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* A header field: offsets into rp_http_head.buf. */
typedef struct rp_hfield {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    uint32_t flags;          /* RP_HF_* */
} rp_hfield_t;

#define RP_HF_DROP 0x1u       /* not forwarded (hop-by-hop, replaced) */

typedef struct rp_http_head {
    char        *buf;        /* owned: target/reason, names and values */
    size_t       len, cap;
    size_t       limit;      /* most bytes buf may hold */
    rp_hfield_t *fields;     /* owned */
    unsigned     nfields, cap_fields;
    uint32_t     target_off, target_len;  /* request target, or reason */
    int          method;     /* llhttp method (requests) */
    int          status;     /* responses */
    unsigned     major, minor;
    int          last_cb;    /* parser bookkeeping: 0 none, 1 name, 2 value */
} rp_http_head_t;

void rp_http_head_init(rp_http_head_t *h, size_t limit);
void rp_http_head_reset(rp_http_head_t *h);
void rp_http_head_free(rp_http_head_t *h);
/* Append bytes to the target, the current header name or value.  Return 0,
 * or -1 when the head would exceed its limit. */
/* The head functions return 0, -1 when the head would pass its limit, or
 * RP_HEAD_NOMEM when memory for it ran out. */
#define RP_HEAD_NOMEM (-2)
int rp_http_head_add_target(rp_http_head_t *h, const char *at, size_t len);
int rp_http_head_add_name(rp_http_head_t *h, const char *at, size_t len);
int rp_http_head_add_value(rp_http_head_t *h, const char *at, size_t len);
/* The head is complete: NUL-terminate the last string.  0, -1 over the
 * limit, or RP_HEAD_NOMEM. */
int rp_http_head_finish(rp_http_head_t *h);

static inline const char *rp_hf_name(const rp_http_head_t *h, const rp_hfield_t *f)
{ return h->buf + f->name_off; }
static inline const char *rp_hf_value(const rp_http_head_t *h, const rp_hfield_t *f)
{ return h->buf + f->value_off; }

/* Case-insensitive comparison of a field name (inline: with a literal
 * name the length is known at compile time). */
static inline unsigned char rp_ascii_lower(unsigned char c)
{ return (unsigned char)((unsigned)c - 'A' < 26u ? c + ('a' - 'A') : c); }
/* ASCII case-insensitive equality of n bytes (field names are ASCII
 * tokens; no locale is involved). */
static inline bool rp_ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rp_ascii_lower((unsigned char)a[i]) != rp_ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}
/* The same against lc, which is in lowercase already. */
static inline bool rp_ascii_ieq_lc(const char *a, const char *lc, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rp_ascii_lower((unsigned char)a[i]) != (unsigned char)lc[i])
            return false;
    return true;
}
/* Whether field f is named name, in any case. */
static inline bool rp_hf_is(const rp_http_head_t *h, const rp_hfield_t *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && rp_ascii_ieq(h->buf + f->name_off, name, n);
}
/* Every field has a name (llhttp lets a line starting with ':' through
 * as a field with an empty name). */
bool rp_http_names_ok(const rp_http_head_t *h);
/* First field named name, or NULL; *count (if not NULL) gets how many. */
const rp_hfield_t *rp_http_find(const rp_http_head_t *h, const char *name, unsigned *count);

/* Case-insensitive search for token in a comma-separated list value. */
bool rp_http_list_has(const char *value, size_t len, const char *token);

/* Mark hop-by-hop fields RP_HF_DROP: Connection and every field it lists,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding,
 * Content-Length (the proxy re-frames bodies itself).  Also drops the
 * names in extra (NULL-terminated, may be NULL). */
void rp_http_mark_hop_by_hop(rp_http_head_t *h, const char *const *extra);

/* A request id from outside is kept when it is 1..64 characters of
 * [A-Za-z0-9._:-]. */
bool rp_request_id_valid(const char *s, size_t len);
/* 32 lowercase hex digits (128 random bits) and a NUL into out[33]. */
void rp_request_id_new(char out[33]);

/* Normalise a Host value: lowercase, port and a trailing dot removed.
 * Returns the length written to out (cap bytes), or -1 when the value is
 * not a valid host[:port]. */
int rp_host_normalize(const char *in, size_t len, char *out, size_t cap);

/* Reason phrase for a status code ("Bad Gateway"); "Unknown" if none. */
const char *rp_http_reason(int status);

/* Split an absolute-form target "http://host[:port]/path?q" into authority
 * and origin-form.  Returns 0, or -1 when the scheme is not http/https or
 * the form is invalid.  An empty path becomes "/" (origin_len 0 means
 * "use /"). */
int rp_http_split_absolute(const char *t, size_t len, const char **authority,
                           size_t *authority_len, const char **origin,
                           size_t *origin_len);

/* The transfer-codings of every Transfer-Encoding field, in order: how
 * many, whether the last is chunked, and whether chunked appears more than
 * once or before another coding.  Returns 0; -1 when there is no
 * Transfer-Encoding at all; -2 when an element is empty or not a coding
 * (token, parameters token=token; chunked without parameters). */
int rp_http_transfer_codings(const rp_http_head_t *h, size_t *ncodings, bool *chunked_last,
                             bool *chunked_twice);
/* The first count transfer-codings, joined with ", " into out
 * (NUL-terminated); returns their length, 0 when none (or too long for
 * cap). */
size_t rp_http_codings_join(const rp_http_head_t *h, size_t count, char *out, size_t cap);

/* Method name ("GET") of an llhttp method number. */
const char *rp_http_method_str(int method);

/* Idempotent methods (RFC 9110 9.2.2), by llhttp method number. */
bool rp_http_method_idempotent(int method);
/* The trace id of a W3C traceparent field value (version 00 exactly, a
 * later version with at least its fields): 32 lowercase hex digits, not
 * all zero, with a parent id not all zero.  true with out filled (33
 * bytes, NUL-terminated), or false when the value is not valid. */
bool rp_http_trace_id(const char *v, size_t len, char out[33]);

#endif
