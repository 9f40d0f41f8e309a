/* SPDX-License-Identifier: MIT */
/*
 * The balancer's choices (modules/balancer.c), as pure functions so they
 * can be tested alone: smooth weighted round robin with one row of current
 * weights per worker (each worker picks without locking), and least
 * connections relative to weight.
 */
#ifndef REVPROXY_BALANCER_H
#define REVPROXY_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#define RP_PICK_NONE ((size_t)-1)

typedef struct rp_swrr rp_swrr_t;

/* NULL when out of memory. */
rp_swrr_t *rp_swrr_new(const unsigned *weights, size_t n, unsigned rows);
void rp_swrr_free(rp_swrr_t *s);
/* Index of the next backend for this row (worker), by the weights given
 * at creation. */
size_t rp_swrr_next(rp_swrr_t *s, unsigned row);
/* The same with the weights of this pick (weight[i] = 0: not eligible);
 * RP_PICK_NONE when none is. */
size_t rp_swrr_next_w(rp_swrr_t *s, unsigned row, const uint64_t *weight);

/* The eligible backends (weight[i] > 0) with the fewest active requests
 * relative to their weight (active[i] / weight[i] smallest): tied[i] gets
 * weight[i] for each of them and 0 for the others; returns how many there
 * are (0: none is eligible).  The caller picks among them by weighted
 * round robin (rp_swrr_next_w with tied), so that ties, which are the
 * rule when traffic is light, still follow weights and slow start, and
 * rotate per upstream. */
size_t rp_least_conn_ties(const unsigned *active, const uint64_t *weight, size_t n,
                          uint64_t *tied);

#endif
