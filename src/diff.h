/* SPDX-License-Identifier: MIT */
/*
 * revproxy --check --config NEW --diff-against CURRENT: what a reload
 * would change, a line each ("+ path = value", "- path",
 * "~ path: old -> new"); returns how many lines.
 */
#ifndef RP_DIFF_H
#define RP_DIFF_H

#include <stddef.h>
#include <stdio.h>
#include "revproxy/config.h"

size_t rp_config_diff(FILE *out, const rp_snapshot_t *from, const rp_snapshot_t *to);

#endif
