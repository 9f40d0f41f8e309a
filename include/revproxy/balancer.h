/* SPDX-License-Identifier: MIT */
/*
 * Smooth weighted round robin (modules/balancer.c), one row of current
 * weights per worker so each worker picks without locking.
 */
#ifndef REVPROXY_BALANCER_H
#define REVPROXY_BALANCER_H

#include <stddef.h>

typedef struct rp_swrr rp_swrr_t;

rp_swrr_t *rp_swrr_new(const unsigned *weights, size_t n, unsigned rows);
void rp_swrr_free(rp_swrr_t *s);
/* Index of the next backend for this row (worker). */
size_t rp_swrr_next(rp_swrr_t *s, unsigned row);

#endif
