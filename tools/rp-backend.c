/* SPDX-License-Identifier: MIT */
/*
 * rp-backend: a small single-threaded HTTP/1.1 origin server built on
 * libevent's evhttp.  It is the upstream used by the quick-start demo and
 * by the benchmark scripts, and is handy for poking at the proxy by hand.
 *
 *   rp-backend --listen ADDR:PORT [--name NAME]
 *
 * ADDR:PORT is an IPv4 address (127.0.0.1:9001) or a bracketed IPv6
 * address ([::1]:9001); port 0 picks a free port.  Endpoints:
 *
 *   GET  /echo-headers   the request headers, one "Name: value" per line
 *   GET  /bytes/N        N bytes of 'x' (capped at 1 GiB), streamed
 *   POST|PUT /echo...    the path, a newline, then the request body
 *   POST|PUT|PATCH any   "received N bytes\n"
 *   anything else        "hello from NAME\n"
 *
 * Every response carries "X-Backend: NAME".  NAME defaults to the bound
 * address.  SIGINT and SIGTERM stop the server cleanly.
 */

#include <sys/queue.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#define BYTES_MAX        ((uint64_t)1 << 30)   /* largest /bytes/N body */
#define BYTES_CHUNK      (256u * 1024u)        /* bytes queued per write */
#define UPLOAD_MAX       ((ev_ssize_t)256 << 20) /* largest request body */
#define LISTEN_BACKLOG   1024

static const char *g_name;
static char g_xbuf[BYTES_CHUNK];

/* State of one streamed /bytes/N response. */
struct stream {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    uint64_t remaining;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rp-backend --listen ADDR:PORT [--name NAME]\n"
            "  ADDR:PORT  e.g. 127.0.0.1:9001 or [::1]:9001 (port 0 = any)\n"
            "  NAME       reported in bodies and X-Backend "
            "(default: the bound address)\n");
}

static void set_common_headers(struct evhttp_request *req, const char *ctype)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", ctype);
    evhttp_add_header(out, "X-Backend", g_name);
}

static void reply_text(struct evhttp_request *req, int code,
                       const char *reason, struct evbuffer *body)
{
    set_common_headers(req, "text/plain");
    evhttp_send_reply(req, code, reason, body);
}

static void reply_error(struct evhttp_request *req, int code,
                        const char *reason, const char *msg)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(body, "%s\n", msg);
    reply_text(req, code, reason, body);
    evbuffer_free(body);
}

static void handle_hello(struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(body, "hello from %s\n", g_name);
    reply_text(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

static void handle_echo_headers(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    TAILQ_FOREACH(kv, in, next)
        evbuffer_add_printf(body, "%s: %s\n", kv->key, kv->value);
    reply_text(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

/* The path on a line of its own, then the body received: each answer
 * names its request, so a client can check it got its own bytes back. */
static void handle_echo(struct evhttp_request *req, const char *path)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(body, "%s\n", path);
    evbuffer_add_buffer(body, evhttp_request_get_input_buffer(req));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/octet-stream");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

static void handle_upload(struct evhttp_request *req)
{
    size_t n = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(body, "received %zu bytes\n", n);
    reply_text(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

/* A buffer referencing the next slice of a /bytes/N body, or NULL. */
static struct evbuffer *stream_slice(struct stream *st)
{
    size_t n = st->remaining < BYTES_CHUNK ? (size_t)st->remaining
                                           : BYTES_CHUNK;
    struct evbuffer *chunk = evbuffer_new();

    if (chunk == NULL)
        return NULL;
    if (evbuffer_add_reference(chunk, g_xbuf, n, NULL, NULL) != 0) {
        evbuffer_free(chunk);
        return NULL;
    }
    st->remaining -= n;
    return chunk;
}

static void stream_closed(struct evhttp_connection *evcon, void *arg)
{
    struct stream *st = arg;
    (void)evcon;
    /*
     * The connection is going away mid-body.  When the peer hung up, evhttp
     * detaches the unfinished request and leaves it to us; when it is
     * still attached (the connection or server is being freed) evhttp
     * frees it itself.
     */
    if (evhttp_request_get_connection(st->req) == NULL)
        evhttp_send_reply_end(st->req);
    free(st);
}

/* Write-completion callback: queue the next slice or finish the reply. */
static void stream_next(struct evhttp_connection *evcon, void *arg)
{
    struct stream *st = arg;
    struct evbuffer *chunk;
    (void)evcon;

    if (st->remaining == 0) {
        evhttp_connection_set_closecb(st->evcon, NULL, NULL);
        evhttp_send_reply_end(st->req);
        free(st);
        return;
    }
    chunk = stream_slice(st);
    if (chunk == NULL) {
        /* Out of memory: drop the connection rather than send short. */
        evhttp_connection_free(st->evcon); /* runs stream_closed */
        return;
    }
    evhttp_send_reply_chunk_with_cb(st->req, chunk, stream_next, st);
    evbuffer_free(chunk);
}

static void handle_bytes(struct evhttp_request *req, const char *arg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evhttp_connection *evcon;
    struct evbuffer *first;
    struct stream *st;
    uint64_t n = 0;
    char len[32];
    const char *p;

    if (*arg == '\0') {
        reply_error(req, HTTP_BADREQUEST, "Bad Request",
                    "usage: /bytes/N with N a decimal byte count");
        return;
    }
    for (p = arg; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            reply_error(req, HTTP_BADREQUEST, "Bad Request",
                        "usage: /bytes/N with N a decimal byte count");
            return;
        }
        if (n <= BYTES_MAX)
            n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n > BYTES_MAX)
        n = BYTES_MAX;

    set_common_headers(req, "application/octet-stream");
    snprintf(len, sizeof(len), "%" PRIu64, n);
    evhttp_add_header(out, "Content-Length", len);

    /* No body to stream: a plain reply carries the headers. */
    if (n == 0 || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        evhttp_send_reply(req, HTTP_OK, "OK", NULL);
        return;
    }

    evcon = evhttp_request_get_connection(req);
    st = malloc(sizeof(*st));
    if (st == NULL || evcon == NULL) {
        free(st);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    st->req = req;
    st->evcon = evcon;
    st->remaining = n;
    first = stream_slice(st);
    if (first == NULL) {
        free(st);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }

    /*
     * With Content-Length set, evhttp sends the body unchunked; each slice
     * is queued only once the previous one has been written out, so memory
     * stays at one slice per connection whatever N is.
     */
    evhttp_send_reply_start(req, HTTP_OK, "OK");
    evhttp_connection_set_closecb(evcon, stream_closed, st);
    evhttp_send_reply_chunk_with_cb(req, first, stream_next, st);
    evbuffer_free(first);
}

static void handle_request(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    (void)arg;

    if (path == NULL || *path == '\0')
        path = "/";

    switch (cmd) {
    case EVHTTP_REQ_POST:
    case EVHTTP_REQ_PUT:
    case EVHTTP_REQ_PATCH:
        if (cmd != EVHTTP_REQ_PATCH && strncmp(path, "/echo", 5) == 0
            && strcmp(path, "/echo-headers") != 0) {
            handle_echo(req, path);
            return;
        }
        handle_upload(req);
        return;
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD:
        if (strcmp(path, "/echo-headers") == 0) {
            handle_echo_headers(req);
            return;
        }
        if (strncmp(path, "/bytes/", 7) == 0) {
            handle_bytes(req, path + 7);
            return;
        }
        break;
    default:
        break;
    }
    handle_hello(req);
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    (void)sig;
    (void)events;
    event_base_loopbreak(arg);
}

/* Render a socket address as ADDR:PORT, bracketing IPv6. */
static int format_sockaddr(const struct sockaddr *sa, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
            return -1;
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
            return -1;
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
        return 0;
    }
    return -1;
}

/*
 * Parse "A.B.C.D:PORT" or "[IPV6]:PORT" (port 0 allowed) into *ss.
 * Returns the address length, or 0 when the text is not an address.
 */
static socklen_t parse_listen(const char *text, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port, *end;
    size_t hlen;
    unsigned long pnum;
    char *stop;

    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return 0;
        hlen = (size_t)(end - text - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return 0;
        memcpy(host, text + 1, hlen);
        port = end + 2;
    } else {
        end = strrchr(text, ':');
        if (end == NULL)
            return 0;
        hlen = (size_t)(end - text);
        if (hlen == 0 || hlen >= sizeof(host))
            return 0;
        memcpy(host, text, hlen);
        port = end + 1;
    }
    host[hlen] = '\0';

    if (*port < '0' || *port > '9')
        return 0;
    errno = 0;
    pnum = strtoul(port, &stop, 10);
    if (errno != 0 || *stop != '\0' || pnum > 65535)
        return 0;

    if (text[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return 0;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)pnum);
        return sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return 0;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)pnum);
        return sizeof(*sin);
    }
}

int main(int argc, char **argv)
{
    const char *listen_arg = NULL;
    const char *name_arg = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char bound[INET6_ADDRSTRLEN + 16];
    struct event_base *base = NULL;
    struct evhttp *http = NULL;
    struct evconnlistener *lev = NULL;
    struct event *sigint_ev = NULL, *sigterm_ev = NULL;
    int i, rc = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_arg = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            listen_arg = argv[i] + 9;
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name_arg = argv[++i];
        } else if (strncmp(argv[i], "--name=", 7) == 0) {
            name_arg = argv[i] + 7;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rp-backend: unexpected argument '%s'\n",
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (listen_arg == NULL) {
        usage(stderr);
        return 2;
    }

    sslen = parse_listen(listen_arg, &ss);
    if (sslen == 0) {
        fprintf(stderr, "rp-backend: bad listen address '%s' "
                "(want ADDR:PORT or [ADDR6]:PORT)\n", listen_arg);
        return 2;
    }

    /* A peer that hangs up mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    memset(g_xbuf, 'x', sizeof(g_xbuf));

    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "rp-backend: event_base_new failed\n");
        goto out;
    }

    lev = evconnlistener_new_bind(base, NULL, NULL,
                                  LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                  LEV_OPT_CLOSE_ON_EXEC, LISTEN_BACKLOG,
                                  (struct sockaddr *)&ss, (int)sslen);
    if (lev == NULL) {
        fprintf(stderr, "rp-backend: cannot listen on %s: %s\n", listen_arg,
                strerror(errno));
        goto out;
    }

    sslen = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss,
                    &sslen) != 0 ||
        format_sockaddr((struct sockaddr *)&ss, bound, sizeof(bound)) != 0) {
        snprintf(bound, sizeof(bound), "%s", listen_arg);
    }
    g_name = name_arg != NULL ? name_arg : bound;

    http = evhttp_new(base);
    if (http == NULL) {
        fprintf(stderr, "rp-backend: evhttp_new failed\n");
        goto out;
    }
    if (evhttp_bind_listener(http, lev) == NULL) {
        fprintf(stderr, "rp-backend: evhttp_bind_listener failed\n");
        goto out;
    }
    lev = NULL; /* owned by http now */

    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE |
                               EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(http, UPLOAD_MAX);
    evhttp_set_gencb(http, handle_request, NULL);

    sigint_ev = evsignal_new(base, SIGINT, on_signal, base);
    sigterm_ev = evsignal_new(base, SIGTERM, on_signal, base);
    if (sigint_ev == NULL || sigterm_ev == NULL ||
        evsignal_add(sigint_ev, NULL) != 0 ||
        evsignal_add(sigterm_ev, NULL) != 0) {
        fprintf(stderr, "rp-backend: cannot install signal handlers\n");
        goto out;
    }

    fprintf(stderr, "rp-backend %s listening on %s\n", g_name, bound);

    if (event_base_dispatch(base) < 0) {
        fprintf(stderr, "rp-backend: event loop failed\n");
        goto out;
    }
    rc = 0;

out:
    if (sigint_ev != NULL)
        event_free(sigint_ev);
    if (sigterm_ev != NULL)
        event_free(sigterm_ev);
    if (http != NULL)
        evhttp_free(http);
    if (lev != NULL)
        evconnlistener_free(lev);
    if (base != NULL)
        event_base_free(base);
    return rc;
}
