/* SPDX-License-Identifier: MIT */
/*
 * What a reload from one configuration to another would change, from
 * their effective forms (rp_snapshot_dump: defaults filled in, so a key
 * left out and its default written out are the same).  Objects are
 * compared key by key; lists whose entries have an identity are matched
 * by it rather than by position (listeners and backends by address,
 * routes by name or host and path), so a backend moved in its list is
 * not "changed".  Values are printed as compact JSON; the admin token
 * never is.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "revproxy/config.h"
#include "diff.h"
#include "tls.h"

/* The identity of a list entry, or NULL when it has none. */
static char *
entry_key(const json_t *e)
{
    if (!json_is_object(e))
        return NULL;
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *addr = json_string_value(json_object_get(e, "address"));
    const char *host = json_string_value(json_object_get(e, "host"));
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *prefix = json_string_value(json_object_get(e, "path_prefix"));
    char buf[1024];
    if (name != NULL)
        snprintf(buf, sizeof buf, "%s", name);
    else if (addr != NULL)
        snprintf(buf, sizeof buf, "%s", addr);
    else if (path != NULL || prefix != NULL)
        snprintf(buf, sizeof buf, "%s %s%s", host != NULL ? host : "*",
                 path != NULL ? path : prefix, path != NULL ? "" : "*");
    else
        return NULL;
    return strdup(buf);
}

static void
show(FILE *out, const json_t *v, const char *path)
{
    (void)path;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        fputs("?", out);
        return;
    }
    if (strlen(s) > 200)
        fprintf(out, "%.200s...", s);
    else
        fputs(s, out);
    rp_json_free(s);
}

static size_t diff_value(FILE *out, const char *path, const json_t *a, const json_t *b);

static void
join(char *buf, size_t cap, const char *path, const char *key, bool bracket)
{
    if (bracket)
        snprintf(buf, cap, "%s[%s]", path, key);
    else if (path[0] == '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s.%s", path, key);
}

static size_t
diff_object(FILE *out, const char *path, const json_t *a, const json_t *b)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    char p[2048];
    json_object_foreach((json_t *)a, k, v) {
        join(p, sizeof p, path, k, false);
        json_t *w = json_object_get(b, k);
        if (w == NULL) {
            fprintf(out, "- %s\n", p);
            n++;
        } else {
            n += diff_value(out, p, v, w);
        }
    }
    json_object_foreach((json_t *)b, k, v) {
        if (json_object_get(a, k) != NULL)
            continue;
        join(p, sizeof p, path, k, false);
        fprintf(out, "+ %s = ", p);
        show(out, v, p);
        fputc('\n', out);
        n++;
    }
    return n;
}

static size_t
diff_array(FILE *out, const char *path, const json_t *a, const json_t *b)
{
    size_t n = 0, i;
    json_t *v;
    char p[2048];
    bool keyed = json_array_size(a) + json_array_size(b) > 0;
    json_array_foreach((json_t *)a, i, v) {
        char *k = entry_key(v);
        keyed = keyed && k != NULL;
        free(k);
    }
    json_array_foreach((json_t *)b, i, v) {
        char *k = entry_key(v);
        keyed = keyed && k != NULL;
        free(k);
    }
    if (!keyed) {
        if (!json_equal((json_t *)a, (json_t *)b)) {
            fprintf(out, "~ %s: ", path);
            show(out, a, path);
            fputs(" -> ", out);
            show(out, b, path);
            fputc('\n', out);
            n++;
        }
        return n;
    }
    /* (An entry whose key cannot be made, memory running out, is left
     * out: this only reports.) */
    json_array_foreach((json_t *)a, i, v) {
        char *k = entry_key(v);
        if (k == NULL)
            continue;
        join(p, sizeof p, path, k, true);
        size_t j;
        json_t *w, *match = NULL;
        json_array_foreach((json_t *)b, j, w) {
            char *kb = entry_key(w);
            if (kb != NULL && strcmp(k, kb) == 0)
                match = w;
            free(kb);
            if (match != NULL)
                break;
        }
        if (match == NULL) {
            fprintf(out, "- %s\n", p);
            n++;
        } else {
            n += diff_value(out, p, v, match);
        }
        free(k);
    }
    json_array_foreach((json_t *)b, i, v) {
        char *k = entry_key(v);
        if (k == NULL)
            continue;
        bool found = false;
        size_t j;
        json_t *w;
        json_array_foreach((json_t *)a, j, w) {
            char *ka = entry_key(w);
            found = found || (ka != NULL && strcmp(k, ka) == 0);
            free(ka);
        }
        if (!found) {
            join(p, sizeof p, path, k, true);
            fprintf(out, "+ %s = ", p);
            show(out, v, p);
            fputc('\n', out);
            n++;
        }
        free(k);
    }
    return n;
}

static size_t
diff_value(FILE *out, const char *path, const json_t *a, const json_t *b)
{
    if (json_is_object(a) && json_is_object(b))
        return diff_object(out, path, a, b);
    if (json_is_array(a) && json_is_array(b))
        return diff_array(out, path, a, b);
    if (json_equal((json_t *)a, (json_t *)b))
        return 0;
    fprintf(out, "~ %s: ", path);
    show(out, a, path);
    fputs(" -> ", out);
    show(out, b, path);
    fputc('\n', out);
    return 1;
}

size_t
rp_config_diff(FILE *out, const rp_snapshot_t *from, const rp_snapshot_t *to)
{
    json_t *a = rp_snapshot_dump(from), *b = rp_snapshot_dump(to);
    /* Tokens are secrets: whether one changed is all that shows. */
    json_t *ta = json_object_get(json_object_get(a, "admin"), "token");
    json_t *tb = json_object_get(json_object_get(b, "admin"), "token");
    bool same = ta != NULL && tb != NULL && json_equal(ta, tb);
    if (ta != NULL)
        json_object_set_new(json_object_get(a, "admin"), "token",
                            json_string(same ? "(a token)" : "(the old token)"));
    if (tb != NULL)
        json_object_set_new(json_object_get(b, "admin"), "token",
                            json_string(same ? "(a token)" : "(a new token)"));
    size_t n = diff_value(out, "", a, b);
    json_decref(a);
    json_decref(b);
    /* A certificate file renewed in place is the same key in both: what
     * was loaded from it tells. */
    for (size_t i = 0; i < to->nlisteners; i++) {
        const rp_listener_t *l = &to->listeners[i];
        const rp_listener_t *m = NULL;
        for (size_t j = 0; j < from->nlisteners && m == NULL; j++)
            if (strcmp(from->listeners[j].addr.text, l->addr.text) == 0)
                m = &from->listeners[j];
        if (l->tls == NULL || m == NULL || m->tls == NULL)
            continue;
        json_t *ca = rp_tls_ctx_certs(m->tls), *cb = rp_tls_ctx_certs(l->tls);
        const char *file;
        json_t *v;
        json_object_foreach(cb, file, v) {
            json_t *w = json_object_get(ca, file);
            if (w == NULL || json_equal(v, w))
                continue;
            fprintf(out, "~ listeners[%s].tls.certificates[%s]: %s -> %s\n", l->addr.text, file,
                    json_string_value(w), json_string_value(v));
            n++;
        }
        json_decref(ca);
        json_decref(cb);
    }
    return n;
}
