/* SPDX-License-Identifier: MIT */
/*
 * Request path normalisation: unreserved %-escapes decoded, dot-segments
 * removed (RFC 3986 6.2.2 and 5.2.4), so that routes are matched against
 * the path a backend will resolve.  It runs for every request: a first
 * read-only pass decides whether anything has to change and finds every
 * error, so the common path costs one scan and a rejected target is never
 * half rewritten; the rewrite happens in place, left to right, since the
 * result is never longer than what it replaces.
 */
#include "config.h"
#include <stdbool.h>
#include <string.h>
#include "revproxy/path.h"

/* Value of a hex digit, or -1.  Not isxdigit(): the request bytes are not
 * in the locale's character set, and this is as cheap. */
static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 2.3: these mean the same encoded or not, so they are decoded;
 * anything else (in particular '/', '\\', '%', '?') stays an escape,
 * because decoding it would change what the path says. */
static bool
unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

/* How many dots a segment is once decoded: 1 for ".", 2 for "..", 0 for any
 * other segment ("", "...", ".a").  "%2e" counts as a dot, as a backend
 * that decodes the path will see it.  The escapes have been checked. */
static int
dot_segment(const char *s, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (dots == 2)
            return 0;
        if (s[i] == '.')
            i++;
        else if (s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E'))
            i += 3;
        else
            return 0;
    }
    return dots;
}

/* Could the path need work?  A '%', or a '.' just after a '/'.  Most paths
 * have neither ("/.well-known/x" is a false positive the next pass sorts
 * out); memchr makes this cheaper than the full scan. */
static bool
maybe_work(const char *p, size_t n)
{
    if (memchr(p, '%', n) != NULL)
        return true;
    for (const char *d = memchr(p, '.', n); d != NULL;
         d = memchr(d + 1, '.', n - (size_t)(d + 1 - p)))
        if (d > p && d[-1] == '/')
            return true;
    return false;
}

/* The read-only pass over path p (n bytes, p[0] == '/').  Checks every
 * escape and replays dot-segment removal by counting the segments the
 * output would hold: a ".." when there are none climbs above the root.
 * Returns 0 or RP_PATH_E*; *work tells whether the rewrite is needed. */
static int
scan(const char *p, size_t n, bool *work)
{
    size_t depth = 0;
    *work = false;
    for (size_t i = 0; i < n;) {
        size_t start = ++i;   /* past the '/' */
        while (i < n && p[i] != '/') {
            if (p[i] != '%') {
                i++;
                continue;
            }
            if (n - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
                return RP_PATH_EESCAPE;
            *work = true;
            i += 3;
        }
        int dots = dot_segment(p + start, i - start);
        if (dots == 0) {
            depth++;
            continue;
        }
        *work = true;
        if (dots == 2) {
            if (depth == 0)
                return RP_PATH_EROOT;
            depth--;
        }
    }
    return 0;
}

static char
upper_hex(char c)
{
    return c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
}

/* Copy segment bytes [r, end) of p to w (w <= r), decoding unreserved
 * escapes and uppercasing the others.  Returns the new write position. */
static size_t
copy_segment(char *p, size_t w, size_t r, size_t end)
{
    while (r < end) {
        if (p[r] != '%') {
            p[w++] = p[r++];
            continue;
        }
        /* read both digits before writing: w may be r */
        char h = p[r + 1], l = p[r + 2];
        int c = hexval(h) << 4 | hexval(l);
        r += 3;
        if (unreserved(c)) {
            p[w++] = (char)c;
        } else {
            p[w++] = '%';
            p[w++] = upper_hex(h);
            p[w++] = upper_hex(l);
        }
    }
    return w;
}

/* RFC 3986 5.2.4 in place on a path that scan() accepted.  The output
 * [0, w) is a run of "/segment"; w never passes the read position, since
 * each step writes at most what it consumed. */
static size_t
rewrite(char *p, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        size_t start = r + 1, end = start;
        while (end < n && p[end] != '/')
            end++;
        int dots = dot_segment(p + start, end - start);
        if (dots == 0) {
            p[w++] = '/';
            w = copy_segment(p, w, start, end);
        } else {
            if (dots == 2) {
                /* drop the last output segment; scan() saw there is one,
                 * so a '/' is found before w reaches 0 */
                do
                    w--;
                while (p[w] != '/');
            }
            /* "/a/." and "/a/b/.." name the directory: "/a/" */
            if (end == n)
                p[w++] = '/';
        }
        r = end;
    }
    return w;
}

int
rp_path_normalize(char *target, size_t len, size_t *out_len)
{
    if (len == 0 || target[0] == '?' || (len == 1 && target[0] == '*')) {
        *out_len = len;
        return 0;
    }
    if (target[0] != '/')
        return RP_PATH_EFORM;

    const char *q = memchr(target, '?', len);
    size_t n = q != NULL ? (size_t)(q - target) : len;
    if (!maybe_work(target, n)) {
        *out_len = len;
        return 0;
    }
    bool work;
    int rc = scan(target, n, &work);
    if (rc != 0)
        return rc;
    if (!work) {
        *out_len = len;
        return 0;
    }
    size_t m = rewrite(target, n);
    if (m < n) {
        memmove(target + m, target + n, len - n);
        target[m + len - n] = '\0';
    }
    *out_len = m + len - n;
    return 0;
}

const char *
rp_path_error(int rc)
{
    switch (rc) {
    case 0:
        return "";
    case RP_PATH_EESCAPE:
        return "invalid percent-escape in path";
    case RP_PATH_EROOT:
        return "path climbs above the root";
    case RP_PATH_EFORM:
        return "request target is not origin-form";
    default:
        return "invalid path";
    }
}
