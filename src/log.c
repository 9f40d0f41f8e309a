/* SPDX-License-Identifier: MIT */
/*
 * Structured logs (JSON, or text for a person).  Callers format a whole
 * line on their own thread; a writer thread owns the file descriptors and
 * writes queued lines in batches.  A worker thread (rp_log_worker_start)
 * appends its access lines to a buffer of its own, without a lock or an
 * allocation per line, and hands the writer the whole buffer when it is
 * full or 100 ms after its first line, whichever comes first.  The queue is bounded in bytes: under a log storm lines are
 * dropped (and counted) rather than memory growing or workers blocking.
 * A line counts against the bound from the moment it is queued until the
 * writer has written and freed it, so queued and in-flight lines together
 * never hold more than RP_LOG_QUEUE_MAX_BYTES.
 * Before rp_log_start() and after rp_log_stop() lines are written directly.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "revproxy/config.h"
#include "revproxy/log.h"
#include "revproxy/route.h"
#include "revproxy/txn.h"
#include "conn.h"
#include "ws.h"
#include "util.h"
#include "io.h"

_Atomic int rp_log_level = RP_LOG_INFO;

#define LINE_MAX_BYTES 8192

typedef struct line {
    struct line *next;
    int          access;    /* goes to the access log */
    unsigned     nlines;    /* lines in data (a worker's buffer holds many) */
    size_t       held;      /* bytes it counts against the queue's bound */
    size_t       len;
    char         data[];
} line_t;

/* A worker's access buffer. */
#define ACC_CHUNK ((size_t)64 << 10)
#define ACC_FLUSH_MS 100

static _Thread_local struct {
    bool          on;
    line_t       *chunk;     /* ACC_CHUNK bytes of data */
    struct event *timer;     /* flushes ACC_FLUSH_MS after the first line */
} tl_acc;

static _Atomic bool text_format;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    pthread_t       thread;
    bool            running, stopping;
    line_t         *head, *tail;
    size_t          bytes;       /* held by queued and in-flight lines */
    size_t          peak;        /* high-water mark of bytes */
    int             access_fd;   /* -1: stderr */
    char           *access_path; /* owned; NULL: stderr */
    bool            reopen;      /* reopen the access log before writing */
} lq = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .access_fd = -1 };

static atomic_ulong dropped;
static bool access_off;

int
rp_log_level_parse(const char *s)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static const char *
level_name(rp_log_level_t l)
{
    switch (l) {
    case RP_LOG_ERROR: return "error";
    case RP_LOG_WARN:  return "warn";
    case RP_LOG_INFO:  return "info";
    case RP_LOG_DEBUG: return "debug";
    }
    return "info";
}

void
rp_json_str(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    /* Reserve room for the closing quote and NUL. */
    if (cap < 3 || p >= cap - 3)
        return;
    buf[p++] = '"';
    for (size_t i = 0; i < len && p < cap - 8; i++) {
        /* A run of bytes that need no escape, copied whole. */
        size_t run = 0;
        while (i + run < len && (unsigned char)s[i + run] >= 0x20 && (unsigned char)s[i + run] < 0x7f
               && s[i + run] != '"' && s[i + run] != '\\')
            run++;
        if (run > 0) {
            if (run > cap - 8 - p)
                run = cap - 8 - p;
            memcpy(buf + p, s + i, run);
            p += run;
            i += run;
            if (i >= len || p >= cap - 8)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[p++] = '\\';
            buf[p++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* Non-ASCII bytes are escaped one by one: logs stay valid JSON
             * whatever a client sends. */
            buf[p++] = '\\';
            buf[p++] = 'u';
            buf[p++] = '0';
            buf[p++] = '0';
            buf[p++] = hex[c >> 4];
            buf[p++] = hex[c & 15];
        } else {
            buf[p++] = (char)c;
        }
    }
    buf[p++] = '"';
    buf[p] = '\0';
    *pos = p;
}

static void
put(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
put(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
    if (*pos >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *pos += (size_t)n < cap - *pos ? (size_t)n : cap - *pos - 1;
}

/* Append n bytes (truncated at the end of buf, keeping room for a NUL). */
static void
put_mem(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos >= cap)
        return;
    if (n > cap - *pos - 1)
        n = cap - *pos - 1;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

#define PUT_LIT(buf, cap, pos, lit) put_mem((buf), (cap), (pos), (lit), sizeof(lit) - 1)

static void
put_u64(char *buf, size_t cap, size_t *pos, uint64_t v)
{
    char d[24];
    size_t n = sizeof d;
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    put_mem(buf, cap, pos, d + n, sizeof d - n);
}

/* Microseconds as milliseconds with three decimals. */
static void
put_ms(char *buf, size_t cap, size_t *pos, uint64_t us)
{
    put_u64(buf, cap, pos, us / 1000);
    char f[4] = { '.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                  (char)('0' + us % 10) };
    put_mem(buf, cap, pos, f, 4);
}

/* A line keeps this much room after its strings for the short fields
 * (numbers, words) and its end, so that it is always whole JSON: a string
 * too long is cut (still a valid string), a field that does not fit is
 * left out, and the line then says "truncated":true. */
#define KV_HEADROOM 1024
static _Thread_local bool tl_cut;

static void
put_kv(char *buf, size_t cap, size_t *pos, const char *key, const char *v, size_t len)
{
    size_t kl = strlen(key);
    if (cap < KV_HEADROOM || *pos + kl + 16 >= cap - KV_HEADROOM) {
        tl_cut = true;
        return;
    }
    PUT_LIT(buf, cap, pos, ",\"");
    put_mem(buf, cap, pos, key, kl);
    PUT_LIT(buf, cap, pos, "\":");
    size_t before = *pos;
    rp_json_str(buf, cap - KV_HEADROOM, pos, v, len);
    if (*pos - before < len + 2)
        tl_cut = tl_cut || *pos + 16 >= cap - KV_HEADROOM;
}

/* The date and time up to the second are formatted once a second per
 * thread. */
static _Thread_local struct {
    time_t sec;
    char   text[32];   /* {"ts":"YYYY-MM-DDTHH:MM:SS */
    size_t len;
} tl_ts = { .sec = -1 };

static void
put_ts(char *buf, size_t cap, size_t *pos)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != tl_ts.sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(tl_ts.text, sizeof tl_ts.text, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        tl_ts.len = n > 0 && (size_t)n < sizeof tl_ts.text ? (size_t)n : 0;
        tl_ts.sec = ts.tv_sec;
    }
    put_mem(buf, cap, pos, tl_ts.text, tl_ts.len);
    long ms = ts.tv_nsec / 1000000;
    char f[6] = { '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                  'Z', '"' };
    put_mem(buf, cap, pos, f, sizeof f);
}

static void
put_txn(char *buf, size_t cap, size_t *pos, const rp_txn_t *txn)
{
    if (txn == NULL)
        return;
    put_kv(buf, cap, pos, "request_id", txn->id, strlen(txn->id));
    /* A valid W3C traceparent (passed to the backend untouched) ties the
     * line to the client's trace. */
    size_t tl;
    const char *tp = txn->req.nfields > 0 ? rp_txn_req_header(txn, "traceparent", &tl) : NULL;
    char trace[33];
    if (tp != NULL && rp_http_trace_id(tp, tl, trace))
        put_kv(buf, cap, pos, "trace_id", trace, 32);
    if (txn->peer != NULL)
        put_kv(buf, cap, pos, "client", txn->peer->text, strlen(txn->peer->text));
    if (txn->client_ip[0] != '\0')
        put_kv(buf, cap, pos, "client_ip", txn->client_ip, strlen(txn->client_ip));
    if (txn->route != NULL)
        put_kv(buf, cap, pos, "route", txn->route->label, strlen(txn->route->label));
    if (txn->upstream != NULL)
        put_kv(buf, cap, pos, "upstream", txn->upstream->name, strlen(txn->upstream->name));
    if (txn->backend != NULL)
        put_kv(buf, cap, pos, "backend", txn->backend->addr.text, strlen(txn->backend->addr.text));
}

/* Whether it was all written. */
static bool
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Lines the output refused (a full disk, /dev/full, a closed pipe): lost,
 * counted with the dropped ones, and said in the error log once a second
 * at most.  Writer thread only. */
static atomic_ulong lost;
static int lost_errno;

static void
count_lost(unsigned long n, int err)
{
    atomic_fetch_add_explicit(&lost, n, memory_order_relaxed);
    lost_errno = err;
}

static void
submit(const char *buf, size_t len, int access)
{
    pthread_mutex_lock(&lq.lock);
    if (!lq.running) {
        int fd = access && lq.access_fd >= 0 ? lq.access_fd : STDERR_FILENO;
        pthread_mutex_unlock(&lq.lock);
        write_all(fd, buf, len);
        return;
    }
    size_t need = sizeof(line_t) + len;
    line_t *l = lq.bytes + need > RP_LOG_QUEUE_MAX_BYTES ? NULL : malloc(need);
    if (l == NULL) {
        /* The queue is full, or memory ran out: the line is dropped. */
        pthread_mutex_unlock(&lq.lock);
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    l->next = NULL;
    l->access = access;
    l->nlines = 1;
    l->held = need;
    l->len = len;
    memcpy(l->data, buf, len);
    if (lq.tail != NULL)
        lq.tail->next = l;
    else
        lq.head = l;
    lq.tail = l;
    lq.bytes += need;
    if (lq.bytes > lq.peak)
        lq.peak = lq.bytes;
    pthread_cond_signal(&lq.cond);
    pthread_mutex_unlock(&lq.lock);
}

/* ---- a worker's access buffer ---- */

static line_t *
chunk_new(void)
{
    line_t *c = malloc(sizeof *c + ACC_CHUNK);
    if (c != NULL) {
        c->next = NULL;
        c->access = 1;
        c->nlines = 0;
        c->held = sizeof *c + ACC_CHUNK;
        c->len = 0;
    }
    return c;
}

/* Hand this thread's buffer to the writer whole; when the queue has no
 * room its lines are dropped and counted, like single lines. */
static void
acc_flush(void)
{
    line_t *c = tl_acc.chunk;
    if (c == NULL || c->len == 0)
        return;
    if (tl_acc.timer != NULL)
        evtimer_del(tl_acc.timer);
    /* A buffer flushed by its timer with little in it goes as a copy of
     * its size (so it counts what it holds against the bound), and the
     * buffer stays for the next lines; a fuller one goes itself. */
    line_t *give = NULL;
    if (c->len < ACC_CHUNK / 2 && (give = malloc(sizeof *give + c->len)) != NULL) {
        *give = *c;
        give->held = sizeof *give + c->len;
        memcpy(give->data, c->data, c->len);
    }
    bool whole = give == NULL;
    if (whole)
        give = c;
    give->next = NULL;
    pthread_mutex_lock(&lq.lock);
    if (!lq.running || lq.bytes + give->held > RP_LOG_QUEUE_MAX_BYTES) {
        bool running = lq.running;
        int fd = lq.access_fd >= 0 ? lq.access_fd : STDERR_FILENO;
        pthread_mutex_unlock(&lq.lock);
        if (running)
            atomic_fetch_add_explicit(&dropped, c->nlines, memory_order_relaxed);
        else
            write_all(fd, c->data, c->len);
        if (!whole)
            free(give);
        c->len = 0;
        c->nlines = 0;
        return;
    }
    if (lq.tail != NULL)
        lq.tail->next = give;
    else
        lq.head = give;
    lq.tail = give;
    lq.bytes += give->held;
    if (lq.bytes > lq.peak)
        lq.peak = lq.bytes;
    pthread_cond_signal(&lq.cond);
    pthread_mutex_unlock(&lq.lock);
    if (whole) {
        tl_acc.chunk = chunk_new();   /* NULL: lines go one by one until it works */
    } else {
        c->len = 0;
        c->nlines = 0;
    }
}

static void
acc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    acc_flush();
}

/* An access line: into this thread's buffer when it has one. */
static void
acc_put(const char *line, size_t len)
{
    if (!tl_acc.on) {
        submit(line, len, 1);
        return;
    }
    if (tl_acc.chunk != NULL && tl_acc.chunk->len + len > ACC_CHUNK)
        acc_flush();
    if (tl_acc.chunk == NULL && (tl_acc.chunk = chunk_new()) == NULL) {
        submit(line, len, 1);
        return;
    }
    line_t *c = tl_acc.chunk;
    memcpy(c->data + c->len, line, len);
    if (c->len == 0) {
        struct timeval tv = { 0, ACC_FLUSH_MS * 1000 };
        rp_event_add(tl_acc.timer, &tv);
    }
    c->len += len;
    c->nlines++;
}

int
rp_log_worker_start(struct event_base *base)
{
    tl_acc.timer = evtimer_new(base, acc_timer_cb, NULL);
    tl_acc.chunk = chunk_new();
    if (tl_acc.timer == NULL || tl_acc.chunk == NULL) {
        rp_log_worker_stop();
        return -1;
    }
    tl_acc.on = true;
    return 0;
}

void
rp_log_worker_stop(void)
{
    acc_flush();
    tl_acc.on = false;
    if (tl_acc.timer != NULL)
        event_free(tl_acc.timer);
    tl_acc.timer = NULL;
    free(tl_acc.chunk);
    tl_acc.chunk = NULL;
}

/* ---- text lines ---- */

/* The end of the JSON value starting at p (a string, an array, or a
 * scalar up to ',' or '}'), within end. */
static const char *
value_end(const char *p, const char *end)
{
    if (p < end && *p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\' && p + 1 < end)
                p++;
        return p < end ? p + 1 : end;
    }
    int depth = 0;
    bool str = false;
    for (; p < end; p++) {
        if (str) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                str = false;
        } else if (*p == '"') {
            str = true;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if (*p == ']' || *p == '}') {
            if (depth == 0)
                break;   /* the end of the line's object */
            depth--;
        } else if (depth == 0 && (*p == ',' || *p == '}')) {
            break;
        }
    }
    return p;
}

/* A JSON line of this file as text: "TS LEVEL MSG key=value ...", a
 * string value without its quotes unless it is empty or holds a space
 * (escapes stay as they are, so the line stays one line of ASCII). */
size_t
rp_log_json_to_text(const char *in, size_t len, char *out, size_t cap)
{
    const char *p = in, *end = in + len;
    size_t o = 0;
    if (p < end && *p == '{')
        p++;
    while (p < end && *p == '"' && o + 8 < cap) {
        const char *k = ++p;
        while (p < end && *p != '"')
            p++;
        size_t kl = (size_t)(p - k);
        p += 2;   /* '"' and ':' */
        if (p >= end)
            break;
        const char *v = p, *ve = value_end(p, end);
        p = ve;
        bool head = (kl == 2 && memcmp(k, "ts", 2) == 0) || (kl == 5 && memcmp(k, "level", 5) == 0)
                    || (kl == 3 && memcmp(k, "msg", 3) == 0);
        if (*v == '"' && ve - v >= 2) {
            bool keep = !head && (ve - v == 2 || memchr(v, ' ', (size_t)(ve - v)) != NULL);
            if (!keep) {
                v++;
                ve--;
            }
        }
        if (o + 4 >= cap)
            break;
        if (o > 0)
            out[o++] = ' ';
        if (!head) {
            size_t n = kl + 1 < cap - o ? kl : 0;
            memcpy(out + o, k, n);
            o += n;
            if (o < cap)
                out[o++] = '=';
        }
        if (o + 2 >= cap)
            break;
        size_t n = (size_t)(ve - v) < cap - o - 2 ? (size_t)(ve - v) : cap - o - 2;
        memcpy(out + o, v, n);
        o += n;
        if (p < end && *p == ',')
            p++;
    }
    if (o >= cap)
        o = cap - 1;
    out[o++] = '\n';
    return o;
}

void
rp_log_set_text(bool text)
{
    text_format = text;
}

static void
finish_line(char *buf, size_t cap, size_t *pos)
{
    if (tl_cut) {
        PUT_LIT(buf, cap, pos, ",\"truncated\":true");
        tl_cut = false;
    }
    /* Never reached with the headroom kept; a last guard. */
    if (*pos > cap - 3)
        *pos = cap - 3;
    buf[(*pos)++] = '}';
    buf[(*pos)++] = '\n';
    buf[*pos] = '\0';
}

static void
emit(rp_log_level_t lvl, const rp_txn_t *txn, const char *extra, bool direct, const char *fmt,
     va_list ap) __attribute__((format(printf, 5, 0)));

static void
emit(rp_log_level_t lvl, const rp_txn_t *txn, const char *extra, bool direct, const char *fmt,
     va_list ap)
{
    char msg[2048];
    char buf[LINE_MAX_BYTES];
    size_t pos = 0;
    vsnprintf(msg, sizeof msg, fmt, ap);
    put_ts(buf, sizeof buf, &pos);
    put(buf, sizeof buf, &pos, ",\"level\":\"%s\"", level_name(lvl));
    put_kv(buf, sizeof buf, &pos, "msg", msg, strlen(msg));
    put_txn(buf, sizeof buf, &pos, txn);
    if (extra != NULL && extra[0] != '\0') {
        size_t el = strlen(extra);
        if (pos + el + 2 < sizeof buf - KV_HEADROOM) {
            PUT_LIT(buf, sizeof buf, &pos, ",");
            put_mem(buf, sizeof buf, &pos, extra, el);
        } else {
            tl_cut = true;
        }
    }
    finish_line(buf, sizeof buf, &pos);
    if (text_format) {
        char text[LINE_MAX_BYTES];
        size_t n = rp_log_json_to_text(buf, pos, text, sizeof text);
        if (direct)
            write_all(STDERR_FILENO, text, n);
        else
            submit(text, n, 0);
        return;
    }
    if (direct)
        write_all(STDERR_FILENO, buf, pos);
    else
        submit(buf, pos, 0);
}

/* A line of the writer thread itself, written at once to stderr. */
static void
direct_line(rp_log_level_t lvl, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
direct_line(rp_log_level_t lvl, const char *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, NULL, extra, true, fmt, ap);
    va_end(ap);
}

void
rp_log_emit(rp_log_level_t lvl, const rp_txn_t *txn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, txn, NULL, false, fmt, ap);
    va_end(ap);
}

void
rp_log_fields(rp_log_level_t lvl, const rp_txn_t *txn, const char *extra, const char *fmt, ...)
{
    if ((int)lvl > rp_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, txn, extra, false, fmt, ap);
    va_end(ap);
}

void
rp_log_access(const rp_txn_t *txn)
{
    char buf[LINE_MAX_BYTES];
    size_t pos = 0;
    if (access_off)
        return;
    uint64_t now = txn->end_us != 0 ? txn->end_us : rp_now_us();   /* the metric's too */
    put_ts(buf, sizeof buf, &pos);
    PUT_LIT(buf, sizeof buf, &pos, ",\"level\":\"info\",\"msg\":\"access\"");
    put_txn(buf, sizeof buf, &pos, txn);
    const char *method = txn->method_known ? rp_http_method_str(txn->req.method) : "-";
    put_kv(buf, sizeof buf, &pos, "method", method, strlen(method));
    put_kv(buf, sizeof buf, &pos, "target", txn->req.buf + txn->req.target_off,
           txn->req.target_len > 1024 ? 1024 : txn->req.target_len);
    put_kv(buf, sizeof buf, &pos, "host", txn->host, strlen(txn->host));
    if (txn->version_known && txn->req.major == 2) {
        PUT_LIT(buf, sizeof buf, &pos, ",\"protocol\":\"HTTP/2\"");
    } else if (txn->version_known) {
        PUT_LIT(buf, sizeof buf, &pos, ",\"protocol\":\"HTTP/");
        put_u64(buf, sizeof buf, &pos, txn->req.major);
        PUT_LIT(buf, sizeof buf, &pos, ".");
        put_u64(buf, sizeof buf, &pos, txn->req.minor);
        PUT_LIT(buf, sizeof buf, &pos, "\"");
    } else {
        PUT_LIT(buf, sizeof buf, &pos, ",\"protocol\":\"-\"");
    }
    PUT_LIT(buf, sizeof buf, &pos, ",\"status\":");
    put_u64(buf, sizeof buf, &pos, (uint64_t)(txn->status > 0 ? txn->status : 0));
    PUT_LIT(buf, sizeof buf, &pos, ",\"bytes_in\":");
    put_u64(buf, sizeof buf, &pos, txn->req_body_bytes);
    PUT_LIT(buf, sizeof buf, &pos, ",\"bytes_out\":");
    put_u64(buf, sizeof buf, &pos, txn->bytes_out);
    PUT_LIT(buf, sizeof buf, &pos, ",\"duration_ms\":");
    put_ms(buf, sizeof buf, &pos, now > txn->start_us ? now - txn->start_us : 0);
    PUT_LIT(buf, sizeof buf, &pos, ",\"attempts\":");
    put_u64(buf, sizeof buf, &pos, txn->attempts);
    if (txn->snap != NULL) {
        PUT_LIT(buf, sizeof buf, &pos, ",\"config_generation\":");
        put_u64(buf, sizeof buf, &pos, txn->snap->generation);
    }
    if (txn->nresults > 0) {
        PUT_LIT(buf, sizeof buf, &pos, ",\"upstream_results\":[");
        unsigned n = txn->nresults < RP_TXN_RESULTS_MAX ? txn->nresults : RP_TXN_RESULTS_MAX;
        for (unsigned i = 0; i < n; i++) {
            const char *r = rp_attempt_result_name((rp_attempt_result_t)txn->results[i]);
            if (i > 0)
                PUT_LIT(buf, sizeof buf, &pos, ",");
            PUT_LIT(buf, sizeof buf, &pos, "\"");
            put_mem(buf, sizeof buf, &pos, r, strlen(r));
            PUT_LIT(buf, sizeof buf, &pos, "\"");
        }
        PUT_LIT(buf, sizeof buf, &pos, "],\"upstream_duration_ms\":");
        put_ms(buf, sizeof buf, &pos, txn->upstream_us);
        PUT_LIT(buf, sizeof buf, &pos, ",\"upstream_status\":[");
        for (unsigned i = 0; i < n; i++) {
            if (i > 0)
                PUT_LIT(buf, sizeof buf, &pos, ",");
            if (txn->statuses[i] != 0)
                put_u64(buf, sizeof buf, &pos, txn->statuses[i]);
            else
                PUT_LIT(buf, sizeof buf, &pos, "null");
        }
        PUT_LIT(buf, sizeof buf, &pos, "]");
    }
    if (txn->ws_tunnel) {
        PUT_LIT(buf, sizeof buf, &pos, ",\"websocket\":true,\"ws_close_code\":");
        put_u64(buf, sizeof buf, &pos, txn->ws_close_code);
        const char *by = rp_ws_closer_name(txn->ws_closed_by);
        put_kv(buf, sizeof buf, &pos, "ws_closed_by", by, strlen(by));
        PUT_LIT(buf, sizeof buf, &pos, ",\"ws_messages_in\":");
        put_u64(buf, sizeof buf, &pos, txn->ws_msgs_in);
        PUT_LIT(buf, sizeof buf, &pos, ",\"ws_messages_out\":");
        put_u64(buf, sizeof buf, &pos, txn->ws_msgs_out);
    }
    if (txn->error != RP_ERR_NONE) {
        const char *e = rp_error_name(txn->error);
        put_kv(buf, sizeof buf, &pos, "error", e, strlen(e));
    }
    if (txn->why != RP_CLOSE_OK) {
        const char *w = rp_close_name(txn->why);
        put_kv(buf, sizeof buf, &pos, "termination", w, strlen(w));
        const char *st = rp_txn_state_name(txn->where);
        put_kv(buf, sizeof buf, &pos, "state", st, strlen(st));
    }
    if (txn->decided_by >= 0) {
        const char *m = rp_module_name(txn->decided_by);
        put_kv(buf, sizeof buf, &pos, "decided_by", m, strlen(m));
    }
    finish_line(buf, sizeof buf, &pos);
    if (text_format) {
        char text[LINE_MAX_BYTES];
        acc_put(text, rp_log_json_to_text(buf, pos, text, sizeof text));
        return;
    }
    acc_put(buf, pos);
}

/* Lines dropped since the last report are reported once, in the error
 * log, as soon as the queue has room again (and when logging stops).
 * Writer thread, or after it ended. */
static void
report_dropped(void)
{
    static unsigned long reported;
    unsigned long now_dropped = atomic_load(&dropped);
    if (now_dropped == reported)
        return;
    char extra[96];
    snprintf(extra, sizeof extra, "\"dropped\":%lu,\"dropped_total\":%lu", now_dropped - reported,
             now_dropped);
    direct_line(RP_LOG_WARN, extra, "log queue full: lines dropped");
    reported = now_dropped;
}

/* Lines lost to a failing output since the last report, once a second at
 * most (the report itself may go to the output that fails). */
static void
report_lost(void)
{
    static unsigned long reported;
    static uint64_t last_us;
    unsigned long now_lost = atomic_load(&lost);
    uint64_t now = rp_now_us();
    if (now_lost == reported || (last_us != 0 && now - last_us < 1000000u))
        return;
    char extra[96];
    snprintf(extra, sizeof extra, "\"lost\":%lu,\"lost_total\":%lu", now_lost - reported,
             now_lost);
    direct_line(RP_LOG_WARN, extra, "log write failed (%s): lines lost", strerror(lost_errno));
    reported = now_lost;
    last_us = now;
}

/* Writer thread, lock held: open the access log anew (after rotation). */
static void
reopen_access_log(void)
{
    lq.reopen = false;
    if (lq.access_path == NULL)
        return;
    int fd = open(lq.access_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        char extra[300];
        size_t pos = 0;
        PUT_LIT(extra, sizeof extra, &pos, "\"error\":");
        const char *e = strerror(errno);
        rp_json_str(extra, sizeof extra, &pos, e, strlen(e));
        direct_line(RP_LOG_ERROR, extra, "reopening access log failed, keeping the old file");
    } else {
        close(lq.access_fd);
        lq.access_fd = fd;
        direct_line(RP_LOG_INFO, NULL, "access log reopened");
    }
}

void
rp_log_reopen(void)
{
    pthread_mutex_lock(&lq.lock);
    lq.reopen = true;
    pthread_cond_signal(&lq.cond);
    pthread_mutex_unlock(&lq.lock);
}

static void *
writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lq.lock);
    for (;;) {
        while (lq.head == NULL && !lq.stopping && !lq.reopen)
            pthread_cond_wait(&lq.cond, &lq.lock);
        if (lq.reopen)
            reopen_access_log();
        if (lq.head == NULL && lq.stopping)
            break;
        if (lq.head == NULL)
            continue;
        /* The batch leaves the queue but its bytes stay counted until
         * each line is written: a blocked output cannot make room for
         * more lines than the bound. */
        line_t *batch = lq.head;
        lq.head = lq.tail = NULL;
        int afd = lq.access_fd;
        pthread_mutex_unlock(&lq.lock);
        report_dropped();
        report_lost();
        /* Write runs of lines going to the same descriptor with writev. */
        while (batch != NULL) {
            struct iovec iov[64];
            unsigned nl[64];   /* the lines each holds */
            int n = 0;
            int access = batch->access;
            line_t *l = batch;
            while (l != NULL && n < 64 && l->access == access) {
                iov[n].iov_base = l->data;
                iov[n].iov_len = l->len;
                nl[n] = l->nlines > 0 ? l->nlines : 1;
                n++;
                l = l->next;
            }
            int fd = access && afd >= 0 ? afd : STDERR_FILENO;
            ssize_t total = 0;
            for (int i = 0; i < n; i++)
                total += (ssize_t)iov[i].iov_len;
            ssize_t w = writev(fd, iov, n);
            if (w < 0 && errno != EINTR) {
                unsigned long lines = 0;
                for (int i = 0; i < n; i++)
                    lines += nl[i];
                count_lost(lines, errno);
            } else if (w < total) {
                /* Short write (or interrupted): finish line by line. */
                ssize_t skip = w > 0 ? w : 0;
                for (int i = 0; i < n; i++) {
                    if (skip >= (ssize_t)iov[i].iov_len) {
                        skip -= (ssize_t)iov[i].iov_len;
                        continue;
                    }
                    if (!write_all(fd, (char *)iov[i].iov_base + skip,
                                   iov[i].iov_len - (size_t)skip))
                        count_lost(nl[i], errno);   /* (a line cut short counts whole) */
                    skip = 0;
                }
            }
            size_t written = 0;
            while (batch != l) {
                line_t *next = batch->next;
                written += batch->held;
                free(batch);
                batch = next;
            }
            pthread_mutex_lock(&lq.lock);
            lq.bytes -= written;
            pthread_mutex_unlock(&lq.lock);
        }
        pthread_mutex_lock(&lq.lock);
    }
    pthread_mutex_unlock(&lq.lock);
    return NULL;
}

int
rp_log_start(const char *access_path, bool off)
{
    access_off = off;
    if (access_path != NULL) {
        int fd = open(access_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
        lq.access_fd = fd;
        lq.access_path = rp_xstrdup(access_path);
    }
    pthread_mutex_lock(&lq.lock);
    lq.stopping = false;
    lq.running = true;
    lq.peak = lq.bytes;
    pthread_mutex_unlock(&lq.lock);
    if (pthread_create(&lq.thread, NULL, writer_main, NULL) != 0) {
        pthread_mutex_lock(&lq.lock);
        lq.running = false;
        pthread_mutex_unlock(&lq.lock);
        return -1;
    }
    return 0;
}

void
rp_log_stop(void)
{
    pthread_mutex_lock(&lq.lock);
    if (!lq.running) {
        pthread_mutex_unlock(&lq.lock);
        return;
    }
    lq.stopping = true;
    pthread_cond_signal(&lq.cond);
    pthread_mutex_unlock(&lq.lock);
    pthread_join(lq.thread, NULL);
    pthread_mutex_lock(&lq.lock);
    lq.running = false;
    pthread_mutex_unlock(&lq.lock);
    report_dropped();
    report_lost();
    if (lq.access_fd >= 0) {
        close(lq.access_fd);
        lq.access_fd = -1;
    }
    free(lq.access_path);
    lq.access_path = NULL;
}

unsigned long
rp_log_dropped(void)
{
    return atomic_load(&dropped) + atomic_load(&lost);
}

size_t
rp_log_queue_peak(void)
{
    pthread_mutex_lock(&lq.lock);
    size_t peak = lq.peak;
    pthread_mutex_unlock(&lq.lock);
    return peak;
}

/* Whether a line may go out now (one a second, whatever the thread); n:
 * the events counted since the last one, this one included. */
static bool
once_a_second(atomic_long *last_sec, atomic_ulong *since, unsigned long *n)
{
    *n = atomic_fetch_add(since, 1) + 1;
    long now = (long)time(NULL);
    long was = atomic_load(last_sec);
    if (was == now || !atomic_compare_exchange_strong(last_sec, &was, now))
        return false;
    atomic_fetch_sub(since, *n);
    return true;
}

void
rp_oom_note(const char *what)
{
    static atomic_long last_sec;
    static atomic_ulong since;
    unsigned long n;
    if (once_a_second(&last_sec, &since, &n))
        rp_log(RP_LOG_ERROR, NULL, "out of memory: %s given up (%lu since the last such line)",
               what, n);
}

void
rp_event_note(int err)
{
    static atomic_long last_sec;
    static atomic_ulong since;
    unsigned long n;
    if (once_a_second(&last_sec, &since, &n))
        rp_log(RP_LOG_ERROR, NULL,
               "an event could not be registered (%s): left to the timers that were"
               " (%lu since the last such line)", strerror(err), n);
}
