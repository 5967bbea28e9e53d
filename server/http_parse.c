/*
 * server/http_parse.c: one HTTP/1.1 request at a time, checked and
 * bounded, on libhttp-parser (the request reader of server/http_int.h).
 *
 * libhttp-parser does the protocol (request line, header syntax, chunked
 * bodies, Content-Length, keep-alive); this file adds what kmsd needs on
 * top: caps on the request target, the header block and the body, the
 * route and the methods each route takes, the body's encoding from
 * Content-Type, Expect: 100-continue, and a pause at the end of each
 * request so that pipelined requests wait, unparsed, until the previous
 * one is answered. Errors carry the status to answer; the caller closes
 * the connection after it.
 *
 * It deliberately knows nothing about TLS, certificates or KMIP.
 */
#include <string.h>
#include <strings.h>

#include "server/http_int.h"

enum hkind { H_OTHER = 0, H_CTYPE, H_EXPECT };

static srv_hreq_t *req_of(http_parser *p)
{
    return p->data;
}

/* Stop the parser with `status` to answer. */
static int refuse(srv_hreq_t *r, int status, const char *why)
{
    if (!r->status) {
        r->status = status;
        r->why = why;
    }
    return -1;
}

static int count_head(srv_hreq_t *r, size_t n)
{
    r->head_bytes_ += n;
    return r->head_bytes_ > r->lim.max_header
               ? refuse(r, 431, "request line and headers larger than http.max_header")
               : 0;
}

static int on_message_begin(http_parser *p)
{
    req_of(p)->begun = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    srv_hreq_t *r = req_of(p);
    if (count_head(r, n))
        return -1;
    if (n > SRV_HTTP_MAX_URL - r->url_len_)
        return refuse(r, 414, "request target too long");
    memcpy(r->url_ + r->url_len_, at, n);
    r->url_len_ += n;
    r->url_[r->url_len_] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    srv_hreq_t *r = req_of(p);
    if (count_head(r, n))
        return -1;
    if (r->in_value_) {
        r->in_value_ = false;
        r->hname_len_ = 0;
    }
    /* Only short names matter; a long one is kept cut (it matches none). */
    size_t room = sizeof r->hname_ - 1 - r->hname_len_;
    size_t k = n < room ? n : room;
    memcpy(r->hname_ + r->hname_len_, at, k);
    r->hname_len_ += k;
    r->hname_[r->hname_len_] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    srv_hreq_t *r = req_of(p);
    if (count_head(r, n))
        return -1;
    if (!r->in_value_) {
        r->in_value_ = true;
        r->hkind_ = strcasecmp(r->hname_, "Content-Type") == 0 ? H_CTYPE
                    : strcasecmp(r->hname_, "Expect") == 0     ? H_EXPECT
                                                               : H_OTHER;
        if (r->hkind_ == H_CTYPE && r->ctype[0])
            return refuse(r, 400, "more than one Content-Type");
    }
    if (r->hkind_ == H_CTYPE) {
        size_t have = strlen(r->ctype);
        size_t room = sizeof r->ctype - 1 - have;
        if (n > room)
            return refuse(r, 415, "unsupported Content-Type");
        for (size_t i = 0; i < n; i++)
            r->ctype[have + i] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
        r->ctype[have + n] = '\0';
    } else if (r->hkind_ == H_EXPECT) {
        if (n != 12 || strncasecmp(at, "100-continue", 12) != 0)
            return refuse(r, 400, "unsupported Expect");
        r->expect_continue = true;
    }
    return 0;
}

/* "application/json; charset=utf-8" -> "application/json". */
static void media_type(char *ct)
{
    char *semi = strchr(ct, ';');
    if (semi)
        *semi = '\0';
    size_t n = strlen(ct);
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        ct[--n] = '\0';
    size_t lead = strspn(ct, " \t");
    memmove(ct, ct + lead, strlen(ct + lead) + 1);
}

static int on_headers_complete(http_parser *p)
{
    srv_hreq_t *r = req_of(p);
    if (p->upgrade)
        return refuse(r, 400, "protocol upgrades are not supported");
    /* The path, without a query string. */
    char *q = strchr(r->url_, '?');
    if (q)
        *q = '\0';
    const char *path = r->url_;
    bool get = p->method == HTTP_GET || p->method == HTTP_HEAD;
    r->head_only = p->method == HTTP_HEAD;
    if (strcmp(path, "/metrics") == 0)
        r->route = SRV_HTTP_ROUTE_METRICS;
    else if (strcmp(path, "/healthz") == 0)
        r->route = SRV_HTTP_ROUTE_HEALTHZ;
    else if (strcmp(path, "/readyz") == 0)
        r->route = SRV_HTTP_ROUTE_READYZ;
    else if (strcmp(path, "/kmip") == 0)
        r->route = SRV_HTTP_ROUTE_KMIP;
    else
        return refuse(r, 404, "no such resource");
    if (r->route == SRV_HTTP_ROUTE_KMIP) {
        if (p->method != HTTP_POST) {
            r->allow = "POST";
            return refuse(r, 405, "POST only");
        }
        media_type(r->ctype);
        if (strcmp(r->ctype, "application/octet-stream") == 0)
            r->enc = SRV_HTTP_ENC_TTLV;
        else if (strcmp(r->ctype, "application/json") == 0)
            r->enc = SRV_HTTP_ENC_JSON;
        else if (strcmp(r->ctype, "text/xml") == 0 || strcmp(r->ctype, "application/xml") == 0)
            r->enc = SRV_HTTP_ENC_XML;
        else
            return refuse(r, 415,
                          "Content-Type must be application/octet-stream (TTLV), "
                          "application/json or text/xml");
        if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->lim.max_body)
            return refuse(r, 413, "body larger than http.max_body");
        r->continue_due = r->expect_continue;
        r->body_hint = (p->flags & F_CONTENTLENGTH) ? (size_t)p->content_length : 0;
        if (r->lim.pause_at_body) {
            r->body_due = true;
            r->keep_alive = http_should_keep_alive(p) != 0;
            http_parser_pause(p, 1);
            return 0;
        }
    } else if (!get) {
        r->allow = "GET, HEAD";
        return refuse(r, 405, "GET or HEAD only");
    }
    r->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    srv_hreq_t *r = req_of(p);
    if (r->route != SRV_HTTP_ROUTE_KMIP) {
        /* Health and metrics take no body: a small one is skipped. */
        r->discard_ += n;
        return r->discard_ > r->lim.max_header ? refuse(r, 413, "unexpected body") : 0;
    }
    if (kms_buf_append(&r->body, at, n) != 0)
        return refuse(r, 413, r->body.max < r->lim.max_body
                                  ? "body larger than this client may send now"
                                  : "body larger than http.max_body");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    srv_hreq_t *r = req_of(p);
    r->complete_ = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings g_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Per-request fields back to "nothing read yet". */
static void reset_request(srv_hreq_t *r)
{
    kms_wipe(r->body.data, r->body.len);
    kms_buf_reset(&r->body);
    r->body.max = r->lim.max_body;
    r->body_hint = 0;
    r->body_due = false;
    r->route = SRV_HTTP_ROUTE_OTHER;
    r->head_only = r->keep_alive = r->expect_continue = r->continue_due = r->begun = false;
    r->enc = SRV_HTTP_ENC_NONE;
    r->ctype[0] = '\0';
    r->url_[0] = '\0';
    r->url_len_ = r->hname_len_ = r->head_bytes_ = r->discard_ = 0;
    r->hname_[0] = '\0';
    r->hkind_ = H_OTHER;
    r->in_value_ = false;
    r->complete_ = false;
}

void srv_hreq_init(srv_hreq_t *r, const srv_hreq_limits_t *lim)
{
    memset(r, 0, sizeof *r);
    r->lim = *lim;
    kms_buf_init(&r->body, lim->max_body);
    http_parser_init(&r->p, HTTP_REQUEST);
    r->p.data = r;
    reset_request(r);
}

void srv_hreq_dispose(srv_hreq_t *r)
{
    kms_buf_dispose_wipe(&r->body);
}

size_t srv_hreq_feed(srv_hreq_t *r, const uint8_t *data, size_t n, enum srv_hreq_state *st_out)
{
    if (r->status) {
        *st_out = SRV_HREQ_ERROR;
        return 0;
    }
    if (r->complete_) {
        *st_out = SRV_HREQ_COMPLETE;
        return 0;
    }
    if (r->body_due) {
        *st_out = SRV_HREQ_HEADERS;
        return 0;
    }
    size_t used = http_parser_execute(&r->p, &g_settings, (const char *)data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    if (r->status || (e != HPE_OK && e != HPE_PAUSED)) {
        if (!r->status) {
            r->status = 400;
            r->why = http_errno_description(e);
        }
        *st_out = SRV_HREQ_ERROR;
        return used;
    }
    if (r->p.upgrade && !r->complete_) {
        refuse(r, 400, "protocol upgrades are not supported");
        *st_out = SRV_HREQ_ERROR;
        return used;
    }
    *st_out = r->complete_      ? SRV_HREQ_COMPLETE
              : r->body_due ? SRV_HREQ_HEADERS
                                : SRV_HREQ_MORE;
    return used;
}

void srv_hreq_body_go(srv_hreq_t *r, size_t max_body)
{
    if (!r->body_due)
        return;
    r->body_due = false;
    r->body.max = max_body && max_body < r->lim.max_body ? max_body : r->lim.max_body;
    http_parser_pause(&r->p, 0);
}

void srv_hreq_next(srv_hreq_t *r)
{
    reset_request(r);
    http_parser_pause(&r->p, 0);
}

const char *srv_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}
