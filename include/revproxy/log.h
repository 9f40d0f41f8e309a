/* SPDX-License-Identifier: MIT */
/*
 * Structured logging: one JSON object per line.  Lines are formatted on the
 * calling thread and handed to a writer thread through a bounded queue, so a
 * worker never blocks on stderr or on the access-log file; when the queue is
 * full the line is dropped and counted.
 */
#ifndef REVPROXY_LOG_H
#define REVPROXY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "revproxy/types.h"

typedef enum rp_log_level {
    RP_LOG_ERROR = 0,
    RP_LOG_WARN,
    RP_LOG_INFO,
    RP_LOG_DEBUG
} rp_log_level_t;

extern _Atomic int rp_log_level;   /* lines above this level are not formatted
                                     (a reload may change it) */

/* Log "msg" with the transaction's request id, client, route, upstream and
 * backend added when txn is not NULL. */
#define rp_log(lvl, txn, ...) \
    do { if ((int)(lvl) <= rp_log_level) rp_log_emit((lvl), (txn), __VA_ARGS__); } while (0)

void rp_log_emit(rp_log_level_t lvl, const rp_txn_t *txn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log with extra structured fields: "extra" is a JSON object body without
 * braces (`"k":"v","n":1`), built with rp_json_* helpers; may be NULL. */
void rp_log_fields(rp_log_level_t lvl, const rp_txn_t *txn, const char *extra,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The access line of a finished transaction. */
void rp_log_access(const rp_txn_t *txn);

/* Lines as text ("TS LEVEL MSG key=value ...") rather than JSON. */
void rp_log_set_text(bool text);
/* One JSON line of this logger (len bytes) as such text, into out (cap
 * bytes, at least 2); returns its length, a newline included. */
size_t rp_log_json_to_text(const char *in, size_t len, char *out, size_t cap);

/* This thread (a worker) buffers its access lines, handing them to the
 * writer 64 KiB at a time or 100 ms after the first, from a timer on
 * base; 0, or -1 when it cannot (its lines then go one by one).  Stop
 * hands over what is left. */
struct event_base;
int rp_log_worker_start(struct event_base *base);
void rp_log_worker_stop(void);

/* Parse "error"/"warn"/"info"/"debug"; -1 when unknown. */
int rp_log_level_parse(const char *s);

/* Start the writer thread.  access_path NULL sends access lines to stderr;
 * access_off drops them.  Returns 0, or -1 with errno set when the access
 * log cannot be opened. */
int rp_log_start(const char *access_path, bool access_off);
/* Ask the writer thread to reopen the access log file (SIGUSR1, after
 * log rotation).  A failure keeps the old file and is logged. */
void rp_log_reopen(void);
/* Flush what is queued and stop the writer thread. */
void rp_log_stop(void);
/* Lines dropped because the queue was full. */
unsigned long rp_log_dropped(void);

/* Bound of the queue: the bytes held by lines queued or being written
 * (each line's text plus its list node). */
#define RP_LOG_QUEUE_MAX_BYTES ((size_t)8 << 20)
/* The most bytes the queue held at once since rp_log_start(). */
size_t rp_log_queue_peak(void);

/* Append s as a JSON string (with quotes) to buf of size cap at *pos. */
void rp_json_str(char *buf, size_t cap, size_t *pos, const char *s, size_t len);

#endif
