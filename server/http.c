/*
 * server/http.c: the HTTPS listener's requests, on the same event loops,
 * TLS code, timers and limits as KMIP connections (conn.c calls in here
 * where a KMIP connection would frame TTLV).
 *
 *   GET|HEAD /healthz   200 while the process runs its loops (no client
 *                       certificate needed)
 *   GET|HEAD /readyz    200 when ready to serve keys, else 503 with a
 *                       short JSON reason (srv_ready; no certificate needed)
 *   GET|HEAD /metrics   Prometheus text format, for a certificate listed in
 *                       http.metrics_clients or of a registered admin
 *                       client, else 403 (decided and rendered on a
 *                       worker thread)
 *   POST /kmip          the KMIP HTTPS binding: the body is a request in
 *                       TTLV (application/octet-stream), JSON
 *                       (application/json) or XML (text/xml,
 *                       application/xml); JSON and XML are turned into
 *                       TTLV and the request takes exactly the path of a
 *                       port 5696 request (srv_conn_dispatch: same
 *                       authentication by certificate and Credential,
 *                       tenancy, audit, log); the answer comes back in the
 *                       request's encoding, always with status 200 (KMIP
 *                       errors are inside the message).
 * Requests are read one at a time (the parser pauses after each), so
 * pipelined requests are answered in order; every error status closes the
 * connection after it is sent. Timeouts are the KMIP ones: handshake,
 * limits.message_timeout from a request's first byte to its last (and for
 * a client that reads nothing), limits.idle_timeout between requests.
 *
 * It deliberately parses nothing itself: http_parse.c (on libhttp-parser)
 * reads requests and the ttlv/ codec converts encodings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"
#include "ttlv/ttlv.h"

/* Plaintext read from TLS per step, at most. */
#define SRV_HTTP_CHUNK 16384
/* Cap on a /metrics body. */
#define SRV_HTTP_METRICS_MAX ((size_t)8 << 20)
/* Per-request memory of a JSON / XML conversion (the tree). */
#define SRV_HTTP_ARENA_MAX ((size_t)256 << 20)

struct srv_http {
    srv_hreq_t req;
    uv_work_t work;           /* /metrics rendering */
    kms_buf_t out;            /* its text */
    int out_rc;
    uint64_t t0_ns;
    uint8_t in[SRV_HTTP_CHUNK];
    size_t in_off, in_len;    /* read from TLS, not yet parsed */
};

int srv_http_new(srv_conn_t *c)
{
    const conf_t *cf = c->loop->srv->conf;
    srv_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return KMS_ERR_NOMEM;
    srv_hreq_limits_t lim = {.max_header = cf->http.max_header, .max_body = cf->http.max_body,
                             .pause_at_body = true};
    srv_hreq_init(&h->req, &lim);
    c->http = h;
    return 0;
}

void srv_http_free(srv_http_t *h)
{
    if (!h)
        return;
    srv_hreq_dispose(&h->req);
    kms_buf_dispose_wipe(&h->out);
    kms_wipe(h->in, sizeof h->in);
    free(h);
}

bool srv_http_partial(const srv_conn_t *c)
{
    const srv_http_t *h = c->http;
    return h->req.begun || h->in_off < h->in_len;
}

static const char *content_type(const srv_http_t *h)
{
    switch (h->req.enc) {
    case SRV_HTTP_ENC_JSON: return "application/json";
    case SRV_HTTP_ENC_XML: return h->req.ctype; /* text/xml or application/xml, as asked */
    default: return "application/octet-stream";
    }
}

/* The status line and headers of a response with a body of `len` bytes. */
static int put_head(kms_buf_t *b, int status, const char *ctype, size_t len, bool keep,
                    const char *allow)
{
    return kms_buf_printf(b,
                          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                          "%s%s%sConnection: %s\r\n\r\n",
                          status, srv_http_reason(status), ctype, len, allow ? "Allow: " : "",
                          allow ? allow : "", allow ? "\r\n" : "", keep ? "keep-alive" : "close");
}

static void log_http(const srv_conn_t *c, int status, const char *why)
{
    const srv_http_t *h = c->http;
    static const char *const paths[SRV_HTTP_ROUTES] = {"/metrics", "/healthz", "/readyz",
                                                       "/kmip", "?"};
    enum kms_log_level lvl = status >= 400 ? KMS_LOG_INFO : KMS_LOG_DEBUG;
    if (!KMS_LOG_ENABLED(lvl))
        return;
    kms_log_field_t f[] = {
        {.key = "conn", .num = (int64_t)c->id},
        {.key = "addr", .str = c->addr},
        {.key = "path", .str = paths[h->req.route]},
        {.key = "status", .num = status},
        {.key = "us", .num = (int64_t)((kms_mono_ns() - h->t0_ns) / 1000)},
    };
    kms_log_fields(lvl, SRV_LOG, f, KMS_ARRAY_SIZE(f), "conn %llu %s http %s %d%s%s",
                   (unsigned long long)c->id, c->addr, paths[h->req.route], status,
                   why ? ": " : "", why ? why : "");
}

/* Answer the current request with a small body (not a KMIP answer). A
 * status >= 400 closes the connection after it. false: closing. */
static bool respond(srv_conn_t *c, int status, const char *ctype, const void *body, size_t len,
                    const char *why)
{
    srv_http_t *h = c->http;
    bool keep = status < 400 && h->req.keep_alive;
    kms_buf_t b;
    kms_buf_init(&b, SIZE_MAX);
    int rc = put_head(&b, status, ctype, len, keep, status == 405 ? h->req.allow : NULL);
    if (!rc && !h->req.head_only && len)
        rc = kms_buf_append(&b, body, len);
    srv_metrics_http(c->loop, h->req.status ? SRV_HTTP_ROUTE_OTHER : (int)h->req.route, status);
    log_http(c, status, why);
    bool ok = rc == 0 && srv_conn_tls_write(c, b.data, b.len);
    kms_buf_dispose(&b);
    if (!ok)
        return false;
    if (!keep) {
        char reason[160];
        snprintf(reason, sizeof reason, "http %d%s%s", status, why ? ": " : "", why ? why : "");
        srv_conn_close(c, status < 400 ? "http: client asked to close" : reason);
        return false;
    }
    srv_timer_set(c, SRV_TIMER_NONE, false); /* answered: the idle time restarts */
    srv_hreq_next(&h->req);
    return true;
}

static bool respond_text(srv_conn_t *c, int status, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", text);
    return respond(c, status, "text/plain; charset=utf-8", body,
                   n > 0 && (size_t)n < sizeof body ? (size_t)n : 0, text);
}

/* --------------------------------------------------------------- routes */
/* /metrics shows server-wide totals (objects by type and state, requests
 * by operation): every tenant's activity. Readers: the certificates
 * http.metrics_clients lists (a Prometheus that is no KMIP client) and
 * registered admin clients, who see every tenant's objects anyway
 * (docs/access-control.md). The admin's role is read from the clients
 * table on the worker thread at each scrape, as a KMIP request's is, so a
 * removed or demoted admin is refused from its next scrape. */
static bool metrics_reader(srv_conn_t *c)
{
    const conf_t *cf = c->loop->srv->conf;
    for (size_t i = 0; i < cf->http.n_metrics_clients; i++)
        if (strcmp(cf->http.metrics_clients[i], c->fp) == 0)
            return true;
    kmip_peer_t peer = {.cert_sha256 = c->fp, .cert_cn = c->cn[0] ? c->cn : NULL,
                        .address = c->addr};
    kmip_identity_t id;
    return kmip_identify_cert(c->loop->srv->kmip, &peer, &id) == 0 &&
           id.role == KMIP_ROLE_ADMIN;
}

static void metrics_work(uv_work_t *w)
{
    srv_conn_t *c = w->data;
    srv_http_t *h = c->http;
    kms_buf_init(&h->out, SRV_HTTP_METRICS_MAX);
    h->out_rc = metrics_reader(c) ? srv_metrics_render(c->loop->srv, &h->out) : KMS_ERR_PERM;
}

/* A refused scrape: 403 with nothing that tells why; the log says. */
static bool metrics_refused(srv_conn_t *c, const char *why)
{
    static const char body[] = "forbidden\n";
    return respond(c, 403, "text/plain; charset=utf-8", body, sizeof body - 1, why);
}

static void metrics_done(uv_work_t *w, int status)
{
    srv_conn_t *c = w->data;
    srv_http_t *h = c->http;
    if (c->state != SRV_CONN_CLOSING) {
        c->state = SRV_CONN_READ;
        if (status == 0 && h->out_rc == KMS_ERR_PERM)
            (void)metrics_refused(c, "the certificate is neither in http.metrics_clients nor "
                                     "a registered admin client's");
        else if (status != 0 || h->out_rc != 0)
            (void)respond_text(c, 500, "metrics could not be rendered");
        else
            (void)respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", h->out.data,
                          h->out.len, NULL);
        srv_conn_resume(c);
    }
    kms_buf_dispose(&h->out);
    srv_conn_release(c);
}

static bool serve_metrics(srv_conn_t *c)
{
    srv_http_t *h = c->http;
    if (!c->fp[0])
        return metrics_refused(c, "no client certificate");
    c->state = SRV_CONN_DISPATCH;
    h->work.data = c;
    if (uv_queue_work(&c->loop->loop, &h->work, metrics_work, metrics_done) != 0) {
        c->state = SRV_CONN_READ;
        return respond_text(c, 503, "busy");
    }
    c->refs++; /* released by metrics_done */
    return false;
}

static bool serve_ready(srv_conn_t *c)
{
    char why[128], body[200];
    bool ok = srv_ready(c->loop->srv, why, sizeof why);
    int n = ok ? snprintf(body, sizeof body, "{\"status\":\"ready\"}\n")
               : snprintf(body, sizeof body, "{\"status\":\"not ready\",\"reason\":\"%s\"}\n", why);
    return respond(c, ok ? 200 : 503, "application/json", body, (size_t)n, ok ? NULL : why);
}

/* POST /kmip: the body, as TTLV, into c->in; then the KMIP path. */
static bool serve_kmip(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    srv_http_t *h = c->http;
    if (!c->fp[0] && srv->conf->tls.client_auth == CONF_CLIENT_AUTH_REQUIRED)
        return respond_text(c, 403, "a client certificate is required (tls.client_auth)");
    kms_buf_t *body = &h->req.body;
    int rc = 0;
    kms_error_t err;
    kms_error_clear(&err);
    kms_buf_reset(&c->in);
    if (h->req.enc == SRV_HTTP_ENC_TTLV) {
        size_t total = 0;
        rc = ttlv_frame_need(body->data, body->len, srv->limits.max_message, &total);
        if (rc == 0 && total != body->len)
            rc = KMS_ERR_PROTO;
        if (rc == 0)
            rc = kms_buf_append(&c->in, body->data, body->len);
        if (rc == KMS_ERR_PARTIAL || rc == KMS_ERR_PROTO)
            kms_error_set(&err, KMS_ERR_PROTO, "the body is not one TTLV message");
    } else {
        kms_arena_t *a = kms_arena_new(SRV_HTTP_ARENA_MAX);
        ttlv_item_t *root = NULL;
        ttlv_limits_t lim = {.max_depth = srv->limits.max_depth,
                             .max_items = srv->limits.max_items,
                             .max_size = srv->conf->http.max_body};
        if (!a)
            rc = KMS_ERR_NOMEM;
        else if (h->req.enc == SRV_HTTP_ENC_JSON)
            rc = ttlv_from_json((const char *)body->data, body->len, &lim, a, &root, &err);
        else
            rc = ttlv_from_xml((const char *)body->data, body->len, &lim, a, &root, &err);
        if (rc == 0)
            rc = ttlv_encode(root, &c->in);
        kms_arena_free(a); /* wiped: a Register carries key material */
    }
    kms_wipe(body->data, body->len);
    body->len = 0;
    if (rc != 0) {
        kms_wipe(c->in.data, c->in.len);
        c->in.len = 0;
        if (rc == KMS_ERR_LIMIT)
            return respond_text(c, 413, "request larger than limits.max_message");
        if (rc == KMS_ERR_NOMEM)
            return respond_text(c, 503, "out of memory");
        return respond_text(c, 400, err.msg[0] ? err.msg : "malformed request");
    }
    return srv_conn_dispatch(c);
}

static bool serve(srv_conn_t *c)
{
    srv_http_t *h = c->http;
    switch (h->req.route) {
    case SRV_HTTP_ROUTE_HEALTHZ:
        return respond(c, 200, "application/json", "{\"status\":\"ok\"}\n", 16, NULL);
    case SRV_HTTP_ROUTE_READYZ:
        return serve_ready(c);
    case SRV_HTTP_ROUTE_METRICS:
        return serve_metrics(c);
    case SRV_HTTP_ROUTE_KMIP:
        return serve_kmip(c);
    default:
        return respond_text(c, 404, "no such resource");
    }
}

/* A POST /kmip's headers are read: may its body be? A client not yet
 * authenticated gets limits.max_message_unauthenticated; an authenticated
 * one reserves the body's declared size (http.max_body when chunked) in
 * the request memory budget, as a KMIP request does its TTLV size, and
 * waits when there is no room (reading stops). false: it waits, or the
 * request was refused 413 (the connection closes). */
static bool body_admitted(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    srv_http_t *h = c->http;
    size_t cap = srv->limits.max_message_unauthenticated;
    size_t need = h->req.body_hint;
    if (c->authenticated && !need)
        need = srv->conf->http.max_body;
    char why[160];
    int r = srv_conn_admit_bytes(c, need, why, sizeof why);
    if (r == KMS_ERR_AGAIN)
        return false;
    if (r != 0) {
        h->in_off = h->in_len;
        (void)respond_text(c, 413, why);
        return false;
    }
    srv_hreq_body_go(&h->req, c->authenticated ? need : cap);
    return true;
}

bool srv_http_step(srv_conn_t *c)
{
    srv_http_t *h = c->http;
    if (h->req.body_due && !body_admitted(c))
        return false; /* still waiting for memory */
    if (h->in_off == h->in_len) {
        int n = srv_conn_tls_read(c, h->in, sizeof h->in);
        if (n <= 0)
            return false;
        h->in_off = 0;
        h->in_len = (size_t)n;
    }
    bool fresh = !h->req.begun;
    enum srv_hreq_state st;
    size_t used = srv_hreq_feed(&h->req, h->in + h->in_off, h->in_len - h->in_off, &st);
    h->in_off += used;
    if (fresh && h->req.begun)
        h->t0_ns = kms_mono_ns();
    if (st == SRV_HREQ_ERROR) {
        h->in_off = h->in_len; /* nothing after a refused request is read */
        (void)respond_text(c, h->req.status, h->req.why ? h->req.why : "bad request");
        return false;
    }
    if (st == SRV_HREQ_HEADERS && !body_admitted(c))
        return false;
    if (h->req.continue_due) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        h->req.continue_due = false;
        if (!srv_conn_tls_write(c, cont, sizeof cont - 1))
            return false;
    }
    if (st != SRV_HREQ_COMPLETE)
        return true;
    return serve(c);
}

/* ------------------------------------------------------- KMIP answers */
/* The TTLV answer in `resp` in the request's encoding, appended to `out`. */
static int convert_answer(srv_conn_t *c, const kms_buf_t *resp, kms_buf_t *out, kms_error_t *err)
{
    srv_t *srv = c->loop->srv;
    kms_arena_t *a = kms_arena_new(SRV_HTTP_ARENA_MAX);
    ttlv_item_t *root = NULL;
    ttlv_limits_t lim = {.max_size = resp->len + 8};
    int rc = a ? ttlv_decode(resp->data, resp->len, &lim, a, &root, err) : KMS_ERR_NOMEM;
    (void)srv;
    if (rc == 0)
        rc = c->http->req.enc == SRV_HTTP_ENC_JSON ? ttlv_to_json(root, 0, out, err)
                                                   : ttlv_to_xml(root, 0, out, err);
    kms_arena_free(a);
    return rc;
}

void srv_http_kmip_answer(srv_conn_t *c, int *rc)
{
    srv_http_t *h = c->http;
    if (c->resp.len == 0) {
        /* No answer to give (the request could not run): say so, then
         * conn_finish closes the connection. */
        h->req.keep_alive = false;
        (void)respond_text(c, 503, kms_strerror(*rc ? *rc : KMS_ERR_INTERNAL));
        return;
    }
    kms_buf_t conv, out;
    kms_error_t err;
    kms_error_clear(&err);
    kms_buf_init(&conv, SIZE_MAX);
    kms_buf_init(&out, SIZE_MAX);
    const kms_buf_t *body = &c->resp;
    int r = 0;
    if (h->req.enc != SRV_HTTP_ENC_TTLV) {
        r = convert_answer(c, &c->resp, &conv, &err);
        body = &conv;
    }
    bool keep = h->req.keep_alive && *rc == 0;
    if (r == 0)
        r = put_head(&out, 200, content_type(h), body->len, keep, NULL);
    if (r == 0)
        r = kms_buf_append(&out, body->data, body->len);
    kms_buf_dispose_wipe(&conv);
    if (r != 0) {
        kms_buf_dispose_wipe(&out);
        kms_wipe(c->resp.data, c->resp.len);
        c->resp.len = 0;
        h->req.keep_alive = false;
        kms_log(KMS_LOG_ERROR, SRV_LOG, "conn %llu %s http: answer not encoded: %s",
                (unsigned long long)c->id, c->addr, kms_error_msg(&err));
        (void)respond_text(c, 500, "the answer could not be encoded");
        if (*rc == 0)
            *rc = r;
        return;
    }
    srv_metrics_http(c->loop, SRV_HTTP_ROUTE_KMIP, 200);
    /* The response replaces the TTLV answer (both may hold key material). */
    size_t max = c->resp.max;
    kms_buf_dispose_wipe(&c->resp);
    c->resp = out;
    c->resp.max = max > out.len ? max : out.len;
}

void srv_http_answered(srv_conn_t *c)
{
    srv_http_t *h = c->http;
    if (!h->req.keep_alive) {
        srv_conn_close(c, "http: client asked to close");
        return;
    }
    srv_hreq_next(&h->req);
}
