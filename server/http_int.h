/*
 * server/http_int.h: private to server/ (and the HTTP fuzz target): the
 * HTTP/1.1 request reader of the HTTPS listener (server/http_parse.c).
 *
 * It turns bytes into one complete, checked request at a time with
 * libhttp-parser: the route and method, the body's encoding (from
 * Content-Type), Expect: 100-continue, keep-alive, and the body itself,
 * all under hard caps (request line + headers, URL, body). It knows no
 * TLS, no sockets and no KMIP, and builds with common/ and libhttp-parser
 * only, so a fuzzer can drive it alone. Who may call a route (client
 * certificates) is decided by server/http.c, which owns the connection.
 */
#ifndef KMS_SERVER_HTTP_INT_H
#define KMS_SERVER_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "common/kms.h"

/* What a request asks for; also the route label of the metrics. */
enum srv_http_route {
    SRV_HTTP_ROUTE_METRICS = 0, /* GET|HEAD /metrics */
    SRV_HTTP_ROUTE_HEALTHZ,     /* GET|HEAD /healthz */
    SRV_HTTP_ROUTE_READYZ,      /* GET|HEAD /readyz */
    SRV_HTTP_ROUTE_KMIP,        /* POST /kmip */
    SRV_HTTP_ROUTE_OTHER,       /* anything else (answered 404 / 405) */
    SRV_HTTP_ROUTES
};

/* The message encoding of a POST /kmip body (and of its answer). */
enum srv_http_enc {
    SRV_HTTP_ENC_NONE = 0,
    SRV_HTTP_ENC_TTLV,          /* application/octet-stream */
    SRV_HTTP_ENC_JSON,          /* application/json */
    SRV_HTTP_ENC_XML,           /* text/xml or application/xml (answered alike) */
};

typedef struct srv_hreq_limits {
    size_t max_header;          /* request line + header bytes (http.max_header) */
    size_t max_body;            /* body bytes (http.max_body) */
    /* Stop after the headers of a request with a body (SRV_HREQ_HEADERS),
     * so the caller can decide how much of a body it may hold before any
     * of it is buffered; srv_hreq_body_go continues. */
    bool pause_at_body;
} srv_hreq_limits_t;

/* Longest request target accepted (414 beyond). */
#define SRV_HTTP_MAX_URL 1024

enum srv_hreq_state {
    SRV_HREQ_MORE = 0,          /* bytes consumed, request not complete yet */
    SRV_HREQ_COMPLETE,          /* one request complete: serve it, then srv_hreq_next */
    SRV_HREQ_ERROR,             /* answer `status` (with `why`) and close */
    SRV_HREQ_HEADERS,           /* pause_at_body: headers read, body_hint known; call
                                   srv_hreq_body_go (or answer an error and close) */
};

typedef struct srv_hreq {
    http_parser p;
    srv_hreq_limits_t lim;
    /* the request, valid once COMPLETE (route, method, encoding) */
    enum srv_http_route route;
    bool head_only;             /* HEAD: headers without a body */
    bool keep_alive;            /* the client keeps the connection (HTTP/1.1 default) */
    bool expect_continue;       /* Expect: 100-continue, for a request we will read */
    bool continue_due;          /* set at the end of the headers: send 100 Continue now */
    bool begun;                 /* a request's first byte was parsed */
    enum srv_http_enc enc;
    char ctype[64];             /* the request's media type, lower case, no parameters */
    kms_buf_t body;             /* POST /kmip: the body (wiped when reset) */
    size_t body_hint;           /* its Content-Length; 0 = not given (chunked) */
    bool body_due;              /* SRV_HREQ_HEADERS given, srv_hreq_body_go not called yet */
    /* on SRV_HREQ_ERROR */
    int status;                 /* 400, 404, 405, 413, 414, 415, 431 ... */
    const char *why;            /* short text for the response and the log */
    const char *allow;          /* 405: the methods the route takes */
    /* private */
    char url_[SRV_HTTP_MAX_URL + 1];
    size_t url_len_;
    char hname_[32];
    size_t hname_len_;
    int hkind_;                 /* which header the value being read belongs to */
    bool in_value_;
    size_t head_bytes_;
    size_t discard_;            /* body bytes of routes that take none */
    bool complete_;
} srv_hreq_t;

void srv_hreq_init(srv_hreq_t *r, const srv_hreq_limits_t *lim);
/* Wipe and free the body. The reader may be re-initialised. */
void srv_hreq_dispose(srv_hreq_t *r);
/*
 * Parse up to n bytes. Returns how many were consumed (the rest belongs
 * to the next request: feed it after srv_hreq_next) and sets *st_out.
 * Once a request is COMPLETE or in ERROR, nothing more is consumed until
 * srv_hreq_next (COMPLETE) or ever (ERROR). n must be > 0.
 */
size_t srv_hreq_feed(srv_hreq_t *r, const uint8_t *data, size_t n, enum srv_hreq_state *st_out);
/* After SRV_HREQ_HEADERS: read the body, at most max_body bytes of it for
 * this request (0 = http.max_body); more is refused 413. */
void srv_hreq_body_go(srv_hreq_t *r, size_t max_body);
/* The completed request was answered: get ready for the next one. */
void srv_hreq_next(srv_hreq_t *r);

/* Reason phrase of a status code ("Not Found"); "Unknown" otherwise. */
const char *srv_http_reason(int status);

#endif /* KMS_SERVER_HTTP_INT_H */
