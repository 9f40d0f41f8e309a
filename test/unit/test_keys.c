/* SPDX-License-Identifier: MIT */
/*
 * The configuration page cannot drift from the parser: every key name the
 * core and the modules accept is documented as an item (".It Cm key") in
 * man/revproxy.json.5, and every item documented there is accepted.  Nor
 * can revproxy(8) drift from the reason words: every error word is an item
 * (".It Li word") there, and every termination word is named.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "revproxy/config.h"
#include "revproxy/reasons.h"

#define MAX_KEYS 4096

typedef struct keyset {
    char  *names[MAX_KEYS];
    size_t n;
} keyset_t;

static bool
has(const keyset_t *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->names[i], name) == 0)
            return true;
    return false;
}

static void
add(keyset_t *k, const char *name)
{
    if (has(k, name))
        return;
    ck_assert_uint_lt(k->n, MAX_KEYS);
    k->names[k->n++] = strdup(name);
}

static void
add_cb(const char *key, void *arg)
{
    add(arg, key);
}

static void
free_set(keyset_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->names[i]);
    k->n = 0;
}

/* Items of a page: lines starting with prefix (".It Cm "), or every
 * word anywhere when prefix is NULL. */
static void
read_items(keyset_t *k, const char *page, const char *prefix)
{
    const char *top = getenv("top_srcdir");
    char path[1024];
    snprintf(path, sizeof path, "%s/man/%s", top != NULL ? top : ".", page);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char name[128];
        if (prefix == NULL) {
            for (char *p = line; *p; p++) {
                int n = 0;
                if ((p == line || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
                    && sscanf(p, "%127[a-z0-9_]%n", name, &n) == 1 && n > 0) {
                    add(k, name);
                    p += n - 1;
                }
            }
            continue;
        }
        size_t pl = strlen(prefix);
        if (strncmp(line, prefix, pl) == 0 && sscanf(line + pl, "%127[A-Za-z0-9_]", name) == 1)
            add(k, name);
    }
    fclose(f);
}

/* The ".It Li" items of section sec (".Sh SEC" to the next ".Sh") of a page. */
static void
read_section_items(keyset_t *k, const char *page, const char *sec)
{
    const char *top = getenv("top_srcdir");
    char path[1024];
    snprintf(path, sizeof path, "%s/man/%s", top != NULL ? top : ".", page);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[1024], want[160];
    snprintf(want, sizeof want, ".Sh %s\n", sec);
    bool in = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, ".Sh ", 4) == 0)
            in = strcmp(line, want) == 0;
        char name[128];
        if (in && strncmp(line, ".It Li ", 7) == 0 && sscanf(line + 7, "%127[A-Za-z0-9_]", name) == 1)
            add(k, name);
    }
    fclose(f);
}

static void
read_page(keyset_t *k)
{
    read_items(k, "revproxy.json.5", ".It Cm ");
}

START_TEST(test_reason_words_documented)
{
    keyset_t items = { 0 }, words = { 0 };
    read_section_items(&items, "revproxy.8", "DIAGNOSTICS");
    /* No item there that is not a word (one renamed or removed). */
    for (size_t i = 0; i < items.n; i++) {
        bool known = false;
        for (int e = 1; e < RP_ERR_COUNT && !known; e++)
            known = strcmp(items.names[i], rp_error_name((rp_error_t)e)) == 0;
        ck_assert_msg(known, "revproxy(8) DIAGNOSTICS lists \"%s\", which is no reason word",
                      items.names[i]);
    }
    read_items(&words, "revproxy.8", NULL);
    for (int e = 1; e < RP_ERR_COUNT; e++)
        ck_assert_msg(has(&items, rp_error_name((rp_error_t)e)),
                      "reason word \"%s\" is not an item of revproxy(8) DIAGNOSTICS",
                      rp_error_name((rp_error_t)e));
    for (int c = 0; c < RP_CLOSE_COUNT; c++)
        ck_assert_msg(has(&words, rp_close_name((rp_close_t)c)),
                      "termination word \"%s\" is not in revproxy(8)", rp_close_name((rp_close_t)c));
    free_set(&items);
    free_set(&words);
}
END_TEST

START_TEST(test_parser_keys_documented)
{
    keyset_t parser = { 0 }, page = { 0 };
    rp_config_keys_foreach(add_cb, &parser);
    read_page(&page);
    ck_assert_uint_gt(parser.n, 20);
    for (size_t i = 0; i < parser.n; i++)
        ck_assert_msg(has(&page, parser.names[i]),
                      "key \"%s\" is accepted but not documented in revproxy.json(5)",
                      parser.names[i]);
    free_set(&parser);
    free_set(&page);
}
END_TEST

START_TEST(test_documented_keys_accepted)
{
    keyset_t parser = { 0 }, page = { 0 };
    rp_config_keys_foreach(add_cb, &parser);
    read_page(&page);
    ck_assert_uint_gt(page.n, 20);
    for (size_t i = 0; i < page.n; i++)
        ck_assert_msg(has(&parser, page.names[i]),
                      "revproxy.json(5) documents \"%s\", which the parser does not accept",
                      page.names[i]);
    free_set(&parser);
    free_set(&page);
}
END_TEST

static Suite *
keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("documentation");
    tcase_add_test(tc, test_parser_keys_documented);
    tcase_add_test(tc, test_documented_keys_accepted);
    tcase_add_test(tc, test_reason_words_documented);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(keys_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
