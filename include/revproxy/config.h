/* SPDX-License-Identifier: MIT */
/*
 * Config snapshots.  A snapshot is built from a JSON document, validated
 * completely, and never changed afterwards; it is reference-counted, and
 * every transaction holds the snapshot it started with.  The core parses
 * listeners, workers, limits, timeouts, upstreams and log; modules parse
 * their own keys through their configure hook.
 */
#ifndef REVPROXY_CONFIG_H
#define REVPROXY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>
#include "revproxy/types.h"
#include "revproxy/module.h"
#include "../../src/retry.h"

/* Every validation error, each "json.path: message". */
struct rp_errs {
    size_t count;   /* messages in msgs */
    char **msgs;    /* owned */
    size_t total;   /* errors added, those whose message memory ran out
                     * for included: compare this to tell whether a step
                     * found errors */
};
void rp_errs_add(rp_errs_t *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rp_errs_free(rp_errs_t *e);

typedef struct rp_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[264];     /* as written in the config, normalised (a host name
                           of 253 characters and a port fit) */
} rp_addr_t;

/* Parse "1.2.3.4:80" or "[::1]:80" (numeric only).  Returns 0, or -1 with
 * *why set to a static message. */
int rp_addr_parse(const char *text, rp_addr_t *out, const char **why);

/* A listener's TLS settings and contexts (src/tls.h); NULL on plain ones. */
typedef struct rp_tls_ctx rp_tls_ctx_t;

typedef struct rp_listener {
    rp_addr_t     addr;
    rp_tls_ctx_t *tls;    /* owned */
    unsigned      ident;  /* rp_listener_identity */
    unsigned      proxy_protocol;   /* 0: none; 1 or 2: the header version expected */
} rp_listener_t;

/* A backend as configured.  One given by host name ("host:port") has
 * name set, addr.text "host:port" and no socket address; the addresses it
 * resolves to are backends of their own (identities with the same weight
 * and max_connections), found through rp_upstream_pos (revproxy/upstream.h). */
struct rp_backend {
    rp_addr_t addr;
    unsigned  weight;     /* 1..1000 */
    unsigned  max_connections;   /* open connections, all workers; 0: no limit */
    unsigned  id;         /* stable identity: upstream name + address */
    unsigned  index;      /* position in the upstream's list */
    unsigned  pos;        /* its first position (rp_upstream_pos) */
    char     *name;       /* owned: the host name, or NULL for a numeric address */
    unsigned  rname;      /* with name: its name identity (src/resolve.h) */
};

typedef enum rp_balancer_kind {
    RP_BALANCER_ROUND_ROBIN = 0,
    RP_BALANCER_LEAST_CONN,
} rp_balancer_kind_t;

typedef struct rp_pos_cache rp_pos_cache_t;

struct rp_upstream {
    char         *name;               /* owned */
    unsigned      index;
    rp_balancer_kind_t balancer;
    rp_backend_t *backends;           /* owned */
    size_t        nbackends;
    unsigned      max_idle_per_backend;  /* per worker */
    unsigned      idle_timeout_ms;
    unsigned      uq;                 /* identity of its queue (rp_upstream_identity) */
    size_t        npos;               /* positions: one per numeric backend,
                                         RP_NAME_ADDRS per named one */
    unsigned     *pos_entry;          /* owned: backend index of each position */
    struct rp_pos_cache *pos_cache;   /* owned: with host-name backends (src/resolve.c) */
    unsigned      resolve_interval_ms;   /* named backends: how often; 0 when none */
    unsigned      queue_size;         /* waiting requests, all workers; 0: no queue */
    unsigned      queue_timeout_ms;
    bool          limited;            /* some backend has max_connections */
    unsigned      max_active_requests;   /* circuit: requests at once, all workers; 0: none */
    rp_retry_cfg_t retry;             /* a route may override it */
};

typedef struct rp_limits {
    unsigned max_connections;
    unsigned max_header_bytes;
    unsigned max_headers;
    unsigned max_uri_bytes;
    uint64_t max_body_bytes;
    unsigned h2_max_concurrent_streams;
    unsigned max_active_requests_per_worker;   /* 0: no limit */
    unsigned max_connections_per_ip;           /* 0: no limit */
} rp_limits_t;

typedef struct rp_timeouts {
    unsigned client_header_ms;
    unsigned client_idle_ms;
    unsigned request_ms;
    unsigned upstream_connect_ms;
    unsigned upstream_response_ms;
    unsigned shutdown_drain_ms;   /* graceful shutdown; 0: stop at once */
    /* Slowest a client may send a request body or read a response while
     * revproxy waits on it, over RP_RATE_WINDOW_MS windows; 0: no minimum.
     * The whole connection's: routes do not override it. */
    unsigned client_min_bytes_per_s;
} rp_timeouts_t;

/* WebSocket tunnels (src/ws.c), on routes with "websocket": true. */
typedef struct rp_ws_cfg {
    uint64_t max_message_bytes;   /* a larger message closes the tunnel with 1009 */
    unsigned idle_timeout_ms;     /* a client silent this long is closed (pinged at half) */
} rp_ws_cfg_t;

/* The admin port (src/admin.c); enabled only with an "admin" section. */
typedef struct rp_admin_cfg {
    bool      enabled;
    rp_addr_t addr;
    bool      allow_remote;   /* may listen on an address other than loopback */
    char     *token;          /* owned: bearer token every endpoint requires, or NULL */
} rp_admin_cfg_t;

/* Whether a is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
bool rp_addr_is_loopback(const rp_addr_t *a);

struct rp_snapshot {
    atomic_uint    refs;
    unsigned       workers;        /* resolved: never 0 */
    rp_listener_t *listeners;      /* owned */
    size_t         nlisteners;
    rp_limits_t    limits;
    rp_timeouts_t  timeouts;
    rp_upstream_t *upstreams;      /* owned, sorted by name */
    size_t         nupstreams;
    int            log_level;
    bool           log_text;       /* log.format "text" */
    char          *access_log;     /* owned; NULL = stderr */
    bool           access_log_off; /* "off": no access lines */
    rp_admin_cfg_t admin;
    rp_ws_cfg_t    websocket;
    struct rp_cidr *trusted;       /* owned: trusted_proxies */
    size_t         ntrusted;
    char          *server_header;  /* owned: Server on revproxy's own responses; NULL: none */
    char           sha256[65];     /* of the file it was loaded from ("" when built
                                      from a document in memory) */
    uint64_t       loaded_unix_ms; /* when it was built */
    unsigned       generation;     /* 1 at start, one more each reload that
                                      publishes it (0: never in force) */
    void          *mod_state[RP_MOD_COUNT];
    rp_errs_t      warnings;       /* owned: "json.path: message" lines that
                                      do not make the document invalid
                                      (an expired certificate) */
};

/* The largest configuration file read. */
#define RP_CONFIG_MAX_BYTES (64u << 20)
/* A configuration has at most this many listeners. */
#define RP_MAX_LISTENERS 64

/* Build a snapshot from a parsed document.  On success *out holds one
 * reference and 0 is returned, with any warnings in (*out)->warnings; on
 * failure *out is untouched, every problem is in errs and -1 is returned. */
int rp_snapshot_build(const json_t *root, rp_snapshot_t **out, rp_errs_t *errs);
/* Same, reading and parsing the file first (JSON syntax errors are reported
 * with line and column). */
int rp_snapshot_load(const char *path, rp_snapshot_t **out, rp_errs_t *errs);
rp_snapshot_t *rp_snapshot_ref(rp_snapshot_t *s);
void rp_snapshot_unref(rp_snapshot_t *s);
const rp_upstream_t *rp_snapshot_upstream(const rp_snapshot_t *s, const char *name);

/* The effective configuration, defaults filled in, as a new JSON object
 * that rp_snapshot_build() accepts again. */
json_t *rp_snapshot_dump(const rp_snapshot_t *s);

/* Call fn for every key name the core and the modules accept (names may
 * repeat: "address" is both a listener and a backend key). */
void rp_config_keys_foreach(void (*fn)(const char *key, void *arg), void *arg);

/* Helpers for modules parsing their own keys.  Each reports a bad value in
 * errs with path and returns -1; an absent key leaves *out unchanged. */
int rp_conf_uint(const json_t *obj, const char *key, const char *path,
                 uint64_t min, uint64_t max, uint64_t *out, rp_errs_t *errs);
int rp_conf_bool(const json_t *obj, const char *key, const char *path,
                 bool *out, rp_errs_t *errs);
int rp_conf_string(const json_t *obj, const char *key, const char *path,
                   const char **out, rp_errs_t *errs);
/* Read a "retry" object at path over *c (keys left out keep their
 * values).  Returns the number of errors added. */
int rp_retry_parse(const json_t *o, const char *path, rp_retry_cfg_t *c, rp_errs_t *errs);
/* The same object, every key filled in (--dump-config). */
json_t *rp_retry_dump(const rp_retry_cfg_t *c);
/* "an integer", "a string", ...: the JSON type of v, for messages. */
const char *rp_conf_type_name(const json_t *v);
/* Report every key of obj not in allowed (NULL-terminated) as unknown, and
 * every key in unsupported as "not supported yet".  Returns the number of
 * errors added. */
int rp_conf_keys(const json_t *obj, const char *path, const char *const *allowed,
                 const char *const *unsupported, rp_errs_t *errs);
/* Join a path and a key ("a.b" + "c" -> "a.b.c"; "" + "c" -> "c"). */
void rp_conf_path(char *buf, size_t cap, const char *path, const char *key);

/* Route jansson's allocations through a check (first thing in main): a
 * configuration parsed while memory ran out is refused, never half read. */
void rp_json_alloc_install(void);
/* Free what jansson handed out to be freed by its caller (json_dumps). */
void rp_json_free(void *p);

/* Stable identity of a backend across snapshots (upstream name + address):
 * the same pair always gets the same small integer, and keeps addr (see
 * rp_backend_addr).  Any thread.  These identity functions return
 * RP_IDENT_NOMEM when memory for a new identity ran out. */
#define RP_IDENT_NOMEM (~0u)
unsigned rp_backend_identity(const char *upstream, const rp_addr_t *addr);
/* Parse "name:port" with a DNS host name (letters, digits, '-', labels of
 * 1 to 63 separated by dots, 253 at most, not all digits).  0, or -1 with
 * *why set. */
int rp_hostport_parse(const char *text, char *host, size_t cap, unsigned *port, const char **why);
unsigned rp_backend_identity_count(void);
/* The same for an upstream (its name): the identity of its queue. */
unsigned rp_upstream_identity(const char *name);
unsigned rp_upstream_identity_count(void);
/* The same for a route (its label, "host path") and a listener (its
 * address): the keys of their counters (revproxy/metrics.h). */
unsigned rp_route_identity(const char *label);
unsigned rp_listener_identity(const char *address);

#endif
