/* SPDX-License-Identifier: MIT */
/*
 * Request path normalisation (src/path.c).  Routing must see the path the
 * backend will resolve: "/public/%2e%2e/admin" is "/admin" to most servers,
 * so it must be "/admin" to the router too, and it is that normalised
 * target which is forwarded.  Pure functions, no I/O, no allocation.
 */
#ifndef REVPROXY_PATH_H
#define REVPROXY_PATH_H

#include <stddef.h>

/* Results of rp_path_normalize: 0, or one of these (all negative, so a
 * caller that only needs "bad request" can test < 0). */
#define RP_PATH_EESCAPE (-1)   /* "%", "%4" or "%zz" in the path */
#define RP_PATH_EROOT   (-2)   /* "/..", "/a/../..": climbs above "/" */
#define RP_PATH_EFORM   (-3)   /* not an origin-form target ("a/b") */

/* Normalise an origin-form request target ("/path" or "/path?query", len
 * bytes, need not be NUL-terminated) in place:
 *
 *   - in the path (the bytes before the first '?'), %-escapes of unreserved
 *     characters (ALPHA DIGIT - . _ ~) are decoded; every other escape
 *     stays encoded with its hex digits uppercased ("%2f" becomes "%2F"
 *     and is never a separator);
 *   - then dot-segments are removed as in RFC 3986 5.2.4, except that a
 *     ".." with nothing left to remove is an error (RP_PATH_EROOT) instead
 *     of being dropped;
 *   - the query, when there is one, is kept byte for byte and moved left to
 *     follow the shortened path.  Duplicate slashes are kept.
 *
 * On success returns 0 and sets *out_len to the new length (<= len); when it
 * is shorter, target[*out_len] is set to NUL and the bytes after it up to
 * len are unspecified.  The caller uses the first *out_len bytes as the
 * target from then on (for the path length too: the '?' may have moved).
 * A target that needs no change (the usual case: no '%' and no "." or ".."
 * segment) is left untouched with *out_len = len.
 *
 * On error returns RP_PATH_E* and leaves target and *out_len untouched; the
 * request is answered 400 (rp_path_error gives the reason).
 *
 * An empty target, one starting with '?' (an absolute-form target without
 * a path) and the asterisk form "*" are returned unchanged with 0; any other
 * target not starting with '/' is RP_PATH_EFORM. */
int rp_path_normalize(char *target, size_t len, size_t *out_len);

/* A short reason for a result of rp_path_normalize, for logs and error
 * responses ("invalid percent-escape in path"); "" for 0. */
const char *rp_path_error(int rc);

#endif
