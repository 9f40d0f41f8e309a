/* SPDX-License-Identifier: MIT */
/*
 * Forward declarations of the types modules and the core pass around.
 * Definitions live in the header named next to each type.
 */
#ifndef REVPROXY_TYPES_H
#define REVPROXY_TYPES_H

typedef struct rp_snapshot rp_snapshot_t;   /* config.h */
typedef struct rp_errs     rp_errs_t;       /* config.h */
typedef struct rp_upstream rp_upstream_t;   /* config.h */
typedef struct rp_backend  rp_backend_t;    /* config.h */
typedef struct rp_route    rp_route_t;      /* config.h */
typedef struct rp_txn      rp_txn_t;        /* txn.h */
typedef struct rp_attempt  rp_attempt_t;    /* txn.h */
typedef struct rp_conn     rp_conn_t;       /* src/conn.h */
typedef struct rp_peer     rp_peer_t;       /* txn.h */
typedef struct rp_upconn   rp_upconn_t;     /* src/pool.h */
typedef struct rp_worker   rp_worker_t;     /* src/worker.h */

#endif
