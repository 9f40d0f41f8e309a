/* SPDX-License-Identifier: MIT */
/*
 * The words that explain an exchange, defined once.
 *
 * RP_TERMINATIONS: who or what ended an exchange (the access line's
 * "termination"); RP_ERRORS: why a request failed or a connection was cut
 * (the access line's "error", the error log line's "error" and the body of
 * the proxy's own error responses).  Each entry is X(ENUM_SUFFIX, "word");
 * words are snake_case and never change meaning once published, since
 * operators grep and alert on them.
 */
#ifndef REVPROXY_REASONS_H
#define REVPROXY_REASONS_H

#define RP_TERMINATIONS(X) \
    X(OK,              "ok") \
    X(CLIENT_ABORT,    "client_abort") \
    X(CLIENT_TIMEOUT,  "client_timeout") \
    X(BAD_REQUEST,     "bad_request") \
    X(LIMIT,           "limit") \
    X(MODULE,          "module") \
    X(UP_CONNECT,      "upstream_connect") \
    X(UP_TIMEOUT,      "upstream_timeout") \
    X(UP_BAD,          "upstream_bad_response") \
    X(UP_ABORT,        "upstream_abort") \
    X(DEADLINE,        "deadline") \
    X(QUEUE,           "queue") \
    X(INTERNAL,        "internal") \
    X(SHUTDOWN,        "shutdown")

#define RP_ERRORS(X) \
    X(NONE,                        "") \
    /* the client's request */ \
    X(BAD_REQUEST,                 "bad_request") \
    X(BAD_PATH,                    "bad_path") \
    X(HEADERS_TOO_LARGE,           "headers_too_large") \
    X(URI_TOO_LONG,                "uri_too_long") \
    X(BODY_TOO_LARGE,              "body_too_large") \
    X(BAD_BODY,                    "bad_body") \
    X(BODY_INCOMPLETE,             "body_incomplete") \
    X(UNSUPPORTED_TRANSFER_CODING, "unsupported_transfer_coding") \
    X(UNSUPPORTED_VERSION,         "unsupported_version") \
    X(METHOD_NOT_ALLOWED,          "method_not_allowed") \
    X(EXPECTATION_FAILED,          "expectation_failed") \
    X(HEADER_TIMEOUT,              "header_timeout") \
    X(BODY_TIMEOUT,                "body_timeout") \
    X(BODY_TOO_SLOW,               "body_too_slow") \
    X(CLIENT_CLOSED,               "client_closed") \
    X(CLIENT_STALLED,              "client_stalled") \
    X(CLIENT_TOO_SLOW,             "client_too_slow") \
    X(CLIENT_RESET,                "client_reset") \
    X(BAD_WS_HANDSHAKE,            "bad_websocket_handshake") \
    X(WS_VERSION,                  "websocket_version") \
    /* routing and modules */ \
    X(NO_ROUTE,                    "no_route") \
    X(NO_BACKEND,                  "no_backend") \
    X(NO_HEALTHY_BACKEND,          "no_healthy_backend") \
    X(QUEUE_FULL,                  "queue_full") \
    X(QUEUE_TIMEOUT,               "queue_timeout") \
    X(UPSTREAM_OVERLOADED,         "upstream_overloaded") \
    X(RETRY_BUDGET_EXHAUSTED,      "retry_budget_exhausted") \
    X(WORKER_OVERLOADED,           "worker_overloaded") \
    X(MODULE_REFUSED,              "module_refused") \
    X(RATE_LIMITED,                "rate_limited") \
    /* the backend */ \
    X(UPSTREAM_CONNECT_FAILED,     "upstream_connect_failed") \
    X(UPSTREAM_CONNECT_TIMEOUT,    "upstream_connect_timeout") \
    X(UPSTREAM_TIMEOUT,            "upstream_timeout") \
    X(UPSTREAM_BAD_RESPONSE,       "upstream_bad_response") \
    X(UPSTREAM_RESET,              "upstream_reset") \
    X(UPSTREAM_TRANSFER_CODING,    "upstream_transfer_coding") \
    X(UPSTREAM_BAD_HANDSHAKE,      "upstream_bad_handshake") \
    /* WebSocket tunnels */ \
    X(WS_PROTOCOL,                 "websocket_protocol_error") \
    X(WS_BAD_UTF8,                 "websocket_invalid_utf8") \
    X(WS_TOO_BIG,                  "websocket_message_too_big") \
    X(WS_IDLE,                     "websocket_idle_timeout") \
    /* the proxy */ \
    X(REQUEST_TIMEOUT,             "request_timeout") \
    X(SHUTDOWN,                    "shutdown") \
    X(OUT_OF_MEMORY,               "out_of_memory") \
    X(INTERNAL,                    "internal_error")

#define RP_CLOSE_ENUM_(e, w) RP_CLOSE_##e,
typedef enum rp_close { RP_TERMINATIONS(RP_CLOSE_ENUM_) RP_CLOSE_COUNT } rp_close_t;
#undef RP_CLOSE_ENUM_

#define RP_ERR_ENUM_(e, w) RP_ERR_##e,
typedef enum rp_error { RP_ERRORS(RP_ERR_ENUM_) RP_ERR_COUNT } rp_error_t;
#undef RP_ERR_ENUM_

/* The word of a termination or an error ("" for RP_ERR_NONE). */
const char *rp_close_name(rp_close_t c);
const char *rp_error_name(rp_error_t e);

#endif
