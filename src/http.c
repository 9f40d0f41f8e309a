/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.x head storage and header rules.  The parser glue (conn.c, proxy.c)
 * appends what llhttp reports; the functions here decide what is forwarded.
 * Nothing here does I/O or allocates per lookup.
 */
#include "config.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>
#include <openssl/rand.h>
#include <llhttp.h>
#include "revproxy/http.h"
#include "revproxy/path.h"
#include "revproxy/config.h"
#include "revproxy/txn.h"
#include "util.h"

void
rp_http_head_init(rp_http_head_t *h, size_t limit)
{
    memset(h, 0, sizeof *h);
    h->limit = limit;
}

void
rp_http_head_reset(rp_http_head_t *h)
{
    h->len = 0;
    h->nfields = 0;
    h->target_off = h->target_len = 0;
    h->method = 0;
    h->status = 0;
    h->major = h->minor = 0;
    h->last_cb = 0;
}

void
rp_http_head_free(rp_http_head_t *h)
{
    free(h->buf);
    free(h->fields);
    h->buf = NULL;
    h->fields = NULL;
    h->cap = h->cap_fields = 0;
    rp_http_head_reset(h);
}

static int
append(rp_http_head_t *h, const char *at, size_t len)
{
    /* One byte more for the NUL that ends each string (see terminate). */
    if (h->len + len + 1 > h->limit)
        return -1;
    if (h->len + len + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap < h->len + len + 1)
            cap *= 2;
        if (cap > h->limit + 1)
            cap = h->limit + 1;
        char *buf = realloc(h->buf, cap);
        if (buf == NULL)
            return RP_HEAD_NOMEM;
        h->buf = buf;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, at, len);
    h->len += len;
    return 0;
}

/* Each name, value and target is stored NUL-terminated, so the rules below
 * can use C string functions on them. */
static int
terminate(rp_http_head_t *h)
{
    if (h->len + 1 > h->limit)
        return -1;
    int rc = append(h, "", 0);
    if (rc < 0)
        return rc;
    h->buf[h->len++] = '\0';
    return 0;
}

int
rp_http_head_add_target(rp_http_head_t *h, const char *at, size_t len)
{
    if (h->target_len == 0)
        h->target_off = (uint32_t)h->len;
    int rc = append(h, at, len);
    if (rc < 0)
        return rc;
    h->target_len += (uint32_t)len;
    return 0;
}

int
rp_http_head_add_name(rp_http_head_t *h, const char *at, size_t len)
{
    if (h->last_cb != 1) {
        /* A new field starts: close the previous string (target or value). */
        int rc = terminate(h);
        if (rc < 0)
            return rc;
        if (h->nfields == h->cap_fields) {
            unsigned cap = h->cap_fields ? h->cap_fields * 2 : 16;
            rp_hfield_t *fields = realloc(h->fields, cap * sizeof *h->fields);
            if (fields == NULL)
                return RP_HEAD_NOMEM;
            h->fields = fields;
            h->cap_fields = cap;
        }
        rp_hfield_t *f = &h->fields[h->nfields++];
        memset(f, 0, sizeof *f);
        f->name_off = (uint32_t)h->len;
        h->last_cb = 1;
    }
    int rc = append(h, at, len);
    if (rc < 0)
        return rc;
    h->fields[h->nfields - 1].name_len += (uint32_t)len;
    return 0;
}

int
rp_http_head_add_value(rp_http_head_t *h, const char *at, size_t len)
{
    if (h->nfields == 0)
        return -1;
    rp_hfield_t *f = &h->fields[h->nfields - 1];
    if (h->last_cb != 2) {
        int rc = terminate(h);
        if (rc < 0)
            return rc;
        f->value_off = (uint32_t)h->len;
        h->last_cb = 2;
    }
    int rc = append(h, at, len);
    if (rc < 0)
        return rc;
    f->value_len += (uint32_t)len;
    return 0;
}

int
rp_http_head_finish(rp_http_head_t *h)
{
    int rc = terminate(h);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < h->nfields; i++) {
        rp_hfield_t *f = &h->fields[i];
        /* The value ends before trailing whitespace (RFC 9112 5: OWS
         * around a field value is not part of it); HTTP/2 forbids it. */
        while (f->value_len > 0
               && (h->buf[f->value_off + f->value_len - 1] == ' '
                   || h->buf[f->value_off + f->value_len - 1] == '\t'))
            h->buf[f->value_off + --f->value_len] = '\0';
        /* A field with an empty value never got a value_off. */
        if (f->value_len == 0)
            f->value_off = f->name_off + f->name_len;
    }
    return 0;
}

bool
rp_http_names_ok(const rp_http_head_t *h)
{
    for (unsigned i = 0; i < h->nfields; i++)
        if (h->fields[i].name_len == 0)
            return false;
    return true;
}

const rp_hfield_t *
rp_http_find(const rp_http_head_t *h, const char *name, unsigned *count)
{
    const rp_hfield_t *first = NULL;
    unsigned c = 0;
    for (unsigned i = 0; i < h->nfields; i++) {
        if (rp_hf_is(h, &h->fields[i], name)) {
            if (first == NULL)
                first = &h->fields[i];
            c++;
        }
    }
    if (count != NULL)
        *count = c;
    return first;
}

/* The next element of a comma-separated list value from *i on, trimmed
 * of spaces and tabs: [*start, *end); false at the end of the value.
 * Empty elements come back empty. */
static bool
list_next(const char *v, size_t len, size_t *i, size_t *start, size_t *end)
{
    while (*i < len && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ','))
        (*i)++;
    if (*i >= len)
        return false;
    *start = *i;
    while (*i < len && v[*i] != ',')
        (*i)++;
    *end = *i;
    while (*end > *start && (v[*end - 1] == ' ' || v[*end - 1] == '\t'))
        (*end)--;
    return true;
}

bool
rp_http_list_has(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0, start, end;
    while (list_next(v, len, &i, &start, &end))
        if (end - start == tl && rp_ascii_ieq(v + start, token, tl))
            return true;
    return false;
}

/* A field every proxy hop consumes: the ones RFC 9110 7.6.1 names, and
 * Content-Length (bodies are framed again by the proxy). */
static bool
hop_by_hop_name(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return rp_ascii_ieq_lc(n, "te", 2);
    case 7:
        return rp_ascii_ieq_lc(n, "trailer", 7) || rp_ascii_ieq_lc(n, "upgrade", 7);
    case 10:
        return rp_ascii_ieq_lc(n, "connection", 10) || rp_ascii_ieq_lc(n, "keep-alive", 10);
    case 14:
        return rp_ascii_ieq_lc(n, "content-length", 14);
    case 16:
        return rp_ascii_ieq_lc(n, "proxy-connection", 16);
    case 17:
        return rp_ascii_ieq_lc(n, "transfer-encoding", 17);
    default:
        return false;
    }
}

/* Mark every field named by an element of the Connection value v. */
static void
drop_listed(rp_http_head_t *h, const char *v, size_t len)
{
    size_t i = 0, start, end;
    while (list_next(v, len, &i, &start, &end)) {
        size_t tl = end - start;
        for (unsigned k = 0; tl > 0 && k < h->nfields; k++) {
            rp_hfield_t *f = &h->fields[k];
            if (!(f->flags & RP_HF_DROP) && f->name_len == tl
                && rp_ascii_ieq(h->buf + f->name_off, v + start, tl))
                f->flags |= RP_HF_DROP;
        }
    }
}

void
rp_http_mark_hop_by_hop(rp_http_head_t *h, const char *const *extra)
{
    /* The lengths of the extra names, measured once (past the sixteenth,
     * each time). */
    size_t elen[16];
    size_t nextra = 0;
    for (; extra != NULL && extra[nextra] != NULL; nextra++)
        if (nextra < RP_ARRAY_LEN(elen))
            elen[nextra] = strlen(extra[nextra]);
    bool has_conn = false;
    for (unsigned i = 0; i < h->nfields; i++) {
        rp_hfield_t *f = &h->fields[i];
        const char *name = h->buf + f->name_off;
        bool drop = hop_by_hop_name(name, f->name_len);
        if (drop && f->name_len == 10 && rp_ascii_ieq_lc(name, "connection", 10))
            has_conn = true;
        for (size_t k = 0; k < nextra && !drop; k++) {
            size_t el = k < RP_ARRAY_LEN(elen) ? elen[k] : strlen(extra[k]);
            drop = f->name_len == el && rp_ascii_ieq(name, extra[k], el);
        }
        if (drop)
            f->flags |= RP_HF_DROP;
    }
    /* Every name a Connection field lists is hop-by-hop too, however many
     * Connection fields there are (their number is bounded by the header
     * limits). */
    for (unsigned k = 0; has_conn && k < h->nfields; k++) {
        const rp_hfield_t *g = &h->fields[k];
        if (g->name_len == 10 && rp_ascii_ieq_lc(h->buf + g->name_off, "connection", 10))
            drop_listed(h, h->buf + g->value_off, g->value_len);
    }
}

bool
rp_request_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-' && c != ':')
            return false;
    }
    return true;
}

void
rp_request_id_new(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    /* Random bytes are drawn from OpenSSL's DRBG 4 KiB at a time per
     * thread: one RAND_bytes call (and its fork check) per 256 ids. */
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t left;
    if (left < 16) {
        if (RAND_bytes(pool, sizeof pool) != 1
            && getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool) {
            /* The DRBG failing (it allocates when it reseeds) falls back
             * on the kernel's; both failing is not an input error, and a
             * predictable id is never handed out silently. */
            abort();
        }
        left = sizeof pool;
    }
    unsigned char *r = pool + sizeof pool - left;
    left -= 16;
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    memset(r, 0, 16);   /* an id's bytes do not stay around */
    out[32] = '\0';
}

int
rp_host_normalize(const char *in, size_t len, char *out, size_t cap)
{
    size_t hl = len;
    if (len == 0)
        return -1;
    if (in[0] == '[') {
        /* IP literal: [v6]:port */
        const char *end = memchr(in, ']', len);
        if (end == NULL)
            return -1;
        hl = (size_t)(end - in) + 1;
        if (hl < 4)   /* "[::]" is the shortest */
            return -1;
        bool colon = false;
        for (size_t i = 1; i < hl - 1; i++) {
            unsigned char c = (unsigned char)in[i];
            if (!isxdigit(c) && c != ':' && c != '.')
                return -1;
            colon |= c == ':';
        }
        if (!colon)
            return -1;
    } else {
        const char *colon = memchr(in, ':', len);
        if (colon != NULL)
            hl = (size_t)(colon - in);
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)in[i];
            if (!isalnum(c) && c != '-' && c != '.' && c != '_')
                return -1;
            /* no empty labels: ".a", "a..b" */
            if (c == '.' && (i == 0 || in[i - 1] == '.'))
                return -1;
        }
    }
    if (hl < len) {
        /* ":port" with 1-5 digits up to 65535 (an empty port is allowed
         * by RFC 3986). */
        if (in[hl] != ':' || len - hl - 1 > 5)
            return -1;
        unsigned long port = 0;
        for (size_t i = hl + 1; i < len; i++) {
            if (!isdigit((unsigned char)in[i]))
                return -1;
            port = port * 10 + (unsigned long)(in[i] - '0');
        }
        if (port > 65535)
            return -1;
    }
    if (hl > 0 && in[hl - 1] == '.' && in[0] != '[')
        hl--;
    if (hl == 0 || hl + 1 > cap)
        return -1;
    for (size_t i = 0; i < hl; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[hl] = '\0';
    return (int)hl;
}

const char *
rp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

int
rp_http_split_absolute(const char *t, size_t len, const char **authority,
                       size_t *authority_len, const char **origin, size_t *origin_len)
{
    size_t skip;
    if (len >= 7 && strncasecmp(t, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(t, "https://", 8) == 0)
        skip = 8;
    else
        return -1;
    const char *a = t + skip;
    size_t rest = len - skip;
    size_t i = 0;
    while (i < rest && a[i] != '/' && a[i] != '?' && a[i] != '#')
        i++;
    if (i == 0 || memchr(a, '@', i) != NULL)   /* no userinfo in requests */
        return -1;
    *authority = a;
    *authority_len = i;
    *origin = a + i;
    *origin_len = rest - i;
    return 0;
}

static bool
lower_hex(const char *p, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

bool
rp_http_trace_id(const char *v, size_t len, char out[33])
{
    /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 */
    bool zero;
    if (len < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if (!lower_hex(v, 2, &zero) || (v[0] == 'f' && v[1] == 'f'))
        return false;   /* version ff is invalid */
    bool v00 = v[0] == '0' && v[1] == '0';
    if ((v00 && len != 55) || (!v00 && len > 55 && v[55] != '-'))
        return false;
    if (!lower_hex(v + 53, 2, &zero))
        return false;
    if (!lower_hex(v + 36, 16, &zero) || zero)
        return false;
    if (!lower_hex(v + 3, 32, &zero) || zero)
        return false;
    memcpy(out, v + 3, 32);
    out[32] = '\0';
    return true;
}

bool
rp_http_method_idempotent(int method)
{
    switch (method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_PUT: case HTTP_DELETE:
    case HTTP_OPTIONS: case HTTP_TRACE:
        return true;
    default:
        return false;
    }
}

const char *
rp_http_method_str(int method)
{
    return llhttp_method_name((llhttp_method_t)method);
}

/* ---- request checks ---- */

static int
reject(rp_txn_t *t, int status, rp_error_t err, const char *reason)
{
    t->status = status;
    t->why = status == 413 || status == 414 || status == 431 ? RP_CLOSE_LIMIT : RP_CLOSE_BAD_REQUEST;
    t->error = err;
    t->reason = reason;
    return -1;
}

/* Walk the comma-separated elements of every field named name, each
 * trimmed of optional whitespace.  Empty elements are returned too (with
 * len 0): for Transfer-Encoding they are refused, since llhttp and the
 * proxy must agree on the list exactly. */
typedef struct token_iter {
    const rp_http_head_t *h;
    const char *name;
    unsigned field;
    size_t pos;
    bool in_field;
} token_iter_t;

static bool
next_token(token_iter_t *it, const char **tok, size_t *len)
{
    const rp_http_head_t *h = it->h;
    for (; it->field < h->nfields; it->field++, it->pos = 0, it->in_field = false) {
        const rp_hfield_t *f = &h->fields[it->field];
        if (!rp_hf_is(h, f, it->name))
            continue;
        const char *v = rp_hf_value(h, f);
        size_t i = it->pos;
        if (it->in_field) {
            if (i >= f->value_len)
                continue;
            i++;   /* past the comma that ended the previous element */
        }
        it->in_field = true;
        size_t start = i;
        while (i < f->value_len && v[i] != ',')
            i++;
        size_t end = i;
        while (start < end && (v[start] == ' ' || v[start] == '\t'))
            start++;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        it->pos = i;
        *tok = v + start;
        *len = end - start;
        return true;
    }
    return false;
}

static bool
tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A transfer-coding: token *( OWS ";" OWS token "=" token ).  Quoted
 * parameter values are refused: nothing the proxy relays needs them, and
 * a quoted comma would split the list differently for different parsers. */
static bool
coding_ok(const char *s, size_t len, bool *is_chunked)
{
    size_t i = 0;
    while (i < len && tchar((unsigned char)s[i]))
        i++;
    if (i == 0)
        return false;
    *is_chunked = i == 7 && strncasecmp(s, "chunked", 7) == 0;
    if (*is_chunked && i != len)
        return false;   /* chunked takes no parameters */
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == len || s[i++] != ';')
            return false;
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t k = i;
        while (i < len && tchar((unsigned char)s[i]))
            i++;
        if (i == k || i == len || s[i++] != '=')
            return false;
        k = i;
        while (i < len && tchar((unsigned char)s[i]))
            i++;
        if (i == k)
            return false;
    }
    return true;
}

int
rp_http_transfer_codings(const rp_http_head_t *h, size_t *ncodings, bool *chunked_last,
                         bool *chunked_twice)
{
    token_iter_t it = { h, "transfer-encoding", 0, 0, false };
    const char *tok;
    size_t len;
    size_t n = 0;
    bool last = false, twice = false, seen = false, bad = false;
    while (next_token(&it, &tok, &len)) {
        n++;
        if (!coding_ok(tok, len, &last))
            bad = true;
        if (last) {
            twice |= seen;
            seen = true;
        }
    }
    *ncodings = n;
    *chunked_last = last;
    *chunked_twice = twice || (seen && !last);
    if (n == 0)
        return -1;
    return bad ? -2 : 0;
}

size_t
rp_http_codings_join(const rp_http_head_t *h, size_t count, char *out, size_t cap)
{
    token_iter_t it = { h, "transfer-encoding", 0, 0, false };
    const char *tok;
    size_t len;
    size_t pos = 0, n = 0;
    while (n < count && next_token(&it, &tok, &len)) {
        n++;
        if (pos + len + 3 > cap)
            return 0;   /* too long to forward: the caller refuses it */
        if (pos > 0) {
            out[pos++] = ',';
            out[pos++] = ' ';
        }
        memcpy(out + pos, tok, len);
        pos += len;
    }
    if (cap > 0)
        out[pos] = '\0';
    return pos;
}

int
rp_http_check_request(rp_txn_t *t)
{
    rp_http_head_t *h = &t->req;
    const char *target = h->buf + h->target_off;
    size_t tlen = h->target_len;

    /* HTTP/2 heads arrive here reshaped by h2.c: the target from :path,
     * Host from :authority, framing checked by the HTTP/2 layer. */
    bool h2 = h->major == 2;
    if (!h2 && (h->major != 1 || h->minor > 1))
        return reject(t, 505, RP_ERR_UNSUPPORTED_VERSION, "unsupported HTTP version");
    if (h->method == HTTP_CONNECT)
        return reject(t, 405, RP_ERR_METHOD_NOT_ALLOWED, "CONNECT is not served");
    if (h->method == HTTP_PRI)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "HTTP/2 preface on an HTTP/1 connection");
    if (tlen == 0)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "empty request target");
    if (memchr(target, '#', tlen) != NULL)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "fragment in request target");

    unsigned nhost = 0;
    const rp_hfield_t *host = rp_http_find(h, "host", &nhost);
    if (nhost > 1)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "more than one Host header");
    if (nhost == 0 && h->minor == 1)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "HTTP/1.1 request without Host");
    if (nhost == 0 && h2)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "HTTP/2 request without :authority or Host");

    const char *authority = NULL;
    size_t authority_len = 0;
    if (target[0] == '/') {
        t->origin = target;
        t->origin_len = tlen;
    } else if (tlen == 1 && target[0] == '*') {
        if (h->method != HTTP_OPTIONS)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "asterisk-form target outside OPTIONS");
        t->origin = target;
        t->origin_len = 1;
    } else if (rp_http_split_absolute(target, tlen, &authority, &authority_len,
                                      &t->origin, &t->origin_len) == 0) {
        /* Absolute form: its authority replaces Host (RFC 9112 3.2.2). */
        if (authority_len == 0)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "absolute-form target without host");
    } else {
        return reject(t, 400, RP_ERR_BAD_REQUEST, "invalid request target form");
    }
    if (authority != NULL) {
        if (rp_host_normalize(authority, authority_len, t->host, sizeof t->host) < 0)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "invalid host in request target");
    } else if (host != NULL) {
        if (rp_host_normalize(rp_hf_value(h, host), host->value_len, t->host, sizeof t->host) < 0)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "invalid Host header");
    }
    /* Route on what the backend will see: unreserved escapes decoded and
     * dot-segments removed, in place (the target shrinks or stays). */
    if (t->origin_len > 0 && t->origin[0] == '/') {
        size_t nlen = t->origin_len;
        int rc = rp_path_normalize((char *)t->origin, t->origin_len, &nlen);
        if (rc < 0)
            return reject(t, 400, RP_ERR_BAD_PATH, rp_path_error(rc));
        h->target_len -= (uint32_t)(t->origin_len - nlen);
        t->origin_len = nlen;
    }
    if (t->origin_len == 0 || t->origin[0] == '?') {
        /* "http://host" or "http://host?q": the path is "/". */
        t->path = "/";
        t->path_len = 1;
    } else {
        t->path = t->origin;
        const char *q = memchr(t->origin, '?', t->origin_len);
        t->path_len = q != NULL ? (size_t)(q - t->origin) : t->origin_len;
    }

    /* Transfer-Encoding (RFC 9112 6.1, 6.3): the final coding must be
     * chunked, and only once, or the body cannot be framed (400, and the
     * connection closes); other codings before it are codings the proxy
     * cannot vouch for a backend understanding (501). */
    size_t ncodings = 0;
    bool chunked_last = false, chunked_twice = false;
    int te = t->req_has_te && !h2 ? rp_http_transfer_codings(h, &ncodings, &chunked_last, &chunked_twice)
                           : -1;
    if (te == -2)
        return reject(t, 400, RP_ERR_BAD_REQUEST, "malformed Transfer-Encoding");
    if (te == 0) {
        if (h->minor == 0)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
        if (!chunked_last || chunked_twice || !t->req_chunked)
            return reject(t, 400, RP_ERR_BAD_REQUEST, "Transfer-Encoding does not end in chunked once");
        if (ncodings > 1)
            return reject(t, 501, RP_ERR_UNSUPPORTED_TRANSFER_CODING,
                          "transfer-coding other than chunked in a request");
    } else if (t->req_chunked && !h2) {
        return reject(t, 400, RP_ERR_BAD_REQUEST, "chunked framing without Transfer-Encoding");
    }
    const rp_snapshot_t *s = t->snap;
    if (s->limits.max_body_bytes > 0 && t->req_has_cl
        && t->req_content_length > s->limits.max_body_bytes)
        return reject(t, 413, RP_ERR_BODY_TOO_LARGE, "Content-Length larger than limits.max_body_bytes");

    unsigned nexp = 0;
    const rp_hfield_t *exp = rp_http_find(h, "expect", &nexp);
    if (exp != NULL && (h->minor == 1 || h2)) {
        if (nexp > 1 || strcasecmp(rp_hf_value(h, exp), "100-continue") != 0)
            return reject(t, 417, RP_ERR_EXPECTATION_FAILED, "unsupported Expect");
        t->expect_continue = t->req_chunked || t->req_content_length > 0;
    }

    unsigned nid = 0;
    const rp_hfield_t *rid = rp_http_find(h, "x-request-id", &nid);
    if (nid == 1 && rp_request_id_valid(rp_hf_value(h, rid), rid->value_len))
        memcpy(t->id, rp_hf_value(h, rid), rid->value_len + 1);
    /* Without a body the request is complete with its head. */
    if (!t->req_chunked && t->req_content_length == 0)
        t->req_done = 1;
    return 0;
}
