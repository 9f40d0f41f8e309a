/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for DNS in tests, preloaded into revproxy (LD_PRELOAD): names
 * ending in ".fake.test" resolve to the IPv4 addresses listed on the first
 * line of the file $FAKE_RESOLVER_FILE (separated by spaces; an empty line
 * or no file: the name does not resolve), after $FAKE_RESOLVER_DELAY_MS,
 * or after the milliseconds on the file's second line when it has one
 * (read before waiting).  A name with a file of its own,
 * $FAKE_RESOLVER_FILE.NAME (NAME without ".fake.test"), is answered from
 * that file instead.
 * Every other name goes to the C library as usual.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUFFIX ".fake.test"

typedef int gai_fn(const char *, const char *, const struct addrinfo *, struct addrinfo **);
typedef void fai_fn(struct addrinfo *);

/* Our answers are single allocations: an addrinfo, a tag, then its
 * sockaddr.  freeaddrinfo knows them by where their ai_addr points (never
 * right behind the addrinfo, as the C library's are) and the tag. */
struct fake_ai {
    struct addrinfo    ai;
    unsigned           tag;
    struct sockaddr_in sin;
};
#define TAG 0x5eedf00du

static int
is_fake(const char *node)
{
    size_t n = node != NULL ? strlen(node) : 0, s = strlen(SUFFIX);
    return n > s && strcmp(node + n - s, SUFFIX) == 0;
}

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    if (!is_fake(node)) {
        gai_fn *real = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
        return real(node, service, hints, res);
    }
    const char *d = getenv("FAKE_RESOLVER_DELAY_MS");
    long ms = d != NULL ? atol(d) : 0;
    const char *path = getenv("FAKE_RESOLVER_FILE");
    FILE *f = NULL;
    if (path != NULL) {
        char own[1024];
        int label = (int)(strlen(node) - strlen(SUFFIX));
        snprintf(own, sizeof own, "%s.%.*s", path, label, node);
        f = fopen(own, "r");
        if (f == NULL)
            f = fopen(path, "r");
    }
    char line[1024] = "", second[64] = "";
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        if (fgets(second, sizeof second, f) != NULL && second[0] >= '0' && second[0] <= '9')
            ms = atol(second);
        fclose(f);
    }
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    struct addrinfo *first = NULL, **next = &first;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\n", &save); w != NULL; w = strtok_r(NULL, " \t\n", &save)) {
        struct fake_ai *a = calloc(1, sizeof *a);
        if (a == NULL)
            break;
        if (inet_pton(AF_INET, w, &a->sin.sin_addr) != 1) {
            free(a);
            continue;
        }
        a->tag = TAG;
        a->sin.sin_family = AF_INET;
        a->sin.sin_port = htons((unsigned short)atoi(service != NULL ? service : "0"));
        a->ai.ai_family = AF_INET;
        a->ai.ai_socktype = SOCK_STREAM;
        a->ai.ai_protocol = IPPROTO_TCP;
        a->ai.ai_addrlen = sizeof a->sin;
        a->ai.ai_addr = (struct sockaddr *)&a->sin;
        *next = &a->ai;
        next = &a->ai.ai_next;
    }
    if (first == NULL)
        return EAI_NONAME;
    *res = first;
    return 0;
}

void
freeaddrinfo(struct addrinfo *ai)
{
    if (ai != NULL && ai->ai_addr == (struct sockaddr *)&((struct fake_ai *)ai)->sin
        && ((struct fake_ai *)ai)->tag == TAG) {
        while (ai != NULL) {
            struct addrinfo *n = ai->ai_next;
            free(ai);
            ai = n;
        }
        return;
    }
    fai_fn *real = (fai_fn *)dlsym(RTLD_NEXT, "freeaddrinfo");
    real(ai);
}
