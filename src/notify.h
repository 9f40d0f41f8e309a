/* SPDX-License-Identifier: MIT */
/*
 * Service manager notifications (the sd_notify protocol) written in-tree:
 * one datagram with "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET.  No libsystemd dependency; without $NOTIFY_SOCKET every
 * call is a no-op.
 */
#ifndef RP_NOTIFY_H
#define RP_NOTIFY_H

/* Send state (e.g. "READY=1\nSTATUS=...").  Returns 1 when sent, 0 when no
 * socket is configured, -1 on failure (errno set). */
int rp_notify(const char *state);

#endif
