/*
 * server/conn.c: one client connection: TLS through memory BIOs, KMIP
 * framing, dispatch to a worker thread, ordered responses, closing.
 *
 * libuv owns the socket. Bytes read go into OpenSSL's read BIO; what
 * OpenSSL writes to its write BIO is handed to uv_write. The plaintext is
 * read exactly up to the end of the current request (8-byte header first,
 * checked with ttlv_frame_need() against limits.max_message before any body
 * buffer grows), so pipelined requests stay inside OpenSSL until their turn:
 * one request in flight per connection, answers strictly in order. While a
 * request runs, socket reads continue only until SRV_RBIO_HIGH bytes wait
 * in the read BIO; above limits.max_pending_output unsent bytes, reading
 * stops until the write callbacks drain them.
 *
 * A complete request is decoded once into a kmip_request_t (its bytes are
 * wiped at once). Reads and single-write operations are executed on the
 * loop thread itself: a read is answered at once (pipelined answers leave
 * in one socket write), a write is handed to the store's writer
 * (store_commit_async) and the answer is encoded and sent when the commit
 * is durable; a commit that lost a race runs the decoded request again on
 * a worker, any other failed commit is answered as the failure it is.
 * Everything else (Locate, key pair generation, password checks,
 * multi-write batches) runs on libuv's threadpool (uv_queue_work), which
 * is handed the decoded request. Either way a connection has one request
 * at a time, so answers stay in order, and every request ends in one
 * place (conn_finish: count, audit, log, write, wipe). With
 * replication.sync_acks, a request that changed something is answered
 * only once that many peers acknowledged its last change (repl_wait: the
 * replication thread hands the verdict back like the store's writer
 * does), or after replication.sync_timeout_ms as on_sync_timeout says. A
 * node certificate (kmsd peer role) is refused right after the
 * handshake: it opens replication links, never a KMIP session. It
 * deliberately knows no KMIP beyond the TTLV header and never blocks the
 * loop thread. A misbehaving client loses only its own connection.
 *
 * What a connection may hold is decided elsewhere: whether it is admitted
 * and when it counts as authenticated (admit.c), how many request bytes
 * it may hold and how many worker requests its tenant may run (budget.c).
 * Here those verdicts are applied: a request that must wait (memory, a
 * tenant slot, a full audit backlog, an audit record not yet durable)
 * parks the connection in its loop's wait list, and srv_conn_wake() picks
 * it up where it stopped. A connection that closes cancels what it has
 * queued or running (kmip_request_cancel).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "certs/certs.h" /* certs_has_peer_role */
#include "keys/keys.h" /* keys_hsm_down */
#include "replication/repl.h" /* repl_wait */
#include "server/server_int.h"
#include "ttlv/ttlv.h"

/* Unprocessed TLS bytes buffered per connection while a request runs. */
#define SRV_RBIO_HIGH (64 * 1024)
/* Largest single plaintext read into the request buffer. */
#define SRV_READ_CHUNK 16384
/* Memory BIOs above this capacity are replaced when the connection idles. */
#define SRV_BIO_KEEP 1024
/* Unprocessed TLS bytes kept while the connection's certificate is looked
 * up (admission): a client that is not known yet gets little. */
#define SRV_RBIO_PREAUTH (16 * 1024)

typedef struct srv_wreq {
    uv_write_t req;
    srv_conn_t *c;
    size_t len;
    uint8_t data[];
} srv_wreq_t;

static void conn_pump(srv_conn_t *c);
static void conn_settle(srv_conn_t *c);
static bool conn_partial(const srv_conn_t *c);

/* ------------------------------------------------------------- lifetime */
static void conn_unref(srv_conn_t *c)
{
    if (--c->refs > 0)
        return;
    srv_loop_t *l = c->loop;
    srv_t *srv = l->srv;
    if (c->prev)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->id) {
        l->n_conns--;
        srv_metrics_conn(l, c->http != NULL, SRV_M_CLOSED);
    }
    atomic_fetch_sub(&srv->n_conns, 1);
    srv_wait_end(c);
    srv_preauth_leave(c);
    srv_tenant_release(c);
    srv_budget_release(c);
    kmip_request_free(c->req); /* NULL: nothing can be in flight here */
    srv_http_free(c->http);
    SSL_free(c->ssl); /* frees both BIOs */
    kms_buf_dispose_wipe(&c->in);
    kms_buf_dispose_wipe(&c->resp);
    free(c);
    if (l->stopping && l->n_conns == 0)
        srv_loop_conns_gone(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

void srv_conn_release(srv_conn_t *c)
{
    conn_unref(c);
}

void srv_conn_close_now(srv_conn_t *c)
{
    if (c->handles_closing)
        return;
    c->handles_closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->timer_init)
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* Close once nothing of ours is still queued or running. */
static void conn_close_continue(srv_conn_t *c)
{
    if (c->writes_pending == 0 && c->req == NULL)
        srv_conn_close_now(c);
}

/* ------------------------------------------------------------ writing */
static void on_write(uv_write_t *req, int status)
{
    srv_wreq_t *w = (srv_wreq_t *)req;
    srv_conn_t *c = w->c;
    c->pending_out -= w->len;
    c->writes_pending--;
    free(w);
    if (c->state == SRV_CONN_CLOSING) {
        conn_close_continue(c);
        return;
    }
    if (status < 0) {
        char why[96];
        snprintf(why, sizeof why, "write error: %s", uv_strerror(status));
        srv_conn_close(c, why);
        return;
    }
    if (c->state == SRV_CONN_WRITE && c->pending_out <= c->loop->srv->limits.max_pending_output) {
        c->state = SRV_CONN_READ;
        conn_pump(c);
    } else if (c->state == SRV_CONN_WRITE) {
        srv_timer_set(c, SRV_TIMER_WRITE, true); /* progress: the client reads */
    }
}

/* Hand everything OpenSSL wrote to libuv. 0, or a negative libuv error.
 * With nothing queued before it, the bytes go straight to the socket
 * (uv_try_write: no request, no copy, no poll-set change); only what the
 * socket does not take is copied into a uv_write request. */
static int conn_flush(srv_conn_t *c)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0 || c->handles_closing)
        return 0;
    uint8_t *direct = NULL;
    long avail = BIO_get_mem_data(c->wbio, (char **)&direct);
    if (c->writes_pending == 0 && avail > 0 && (size_t)avail == n && direct) {
        uv_buf_t tb = uv_buf_init((char *)direct, (unsigned)n);
        int wr = uv_try_write((uv_stream_t *)&c->tcp, &tb, 1);
        if (wr < 0 && wr != UV_EAGAIN)
            return wr;
        if (wr > 0) {
            /* Drop what was sent from the BIO (a read into a bounded scratch). */
            uint8_t scratch[4096];
            size_t left = (size_t)wr;
            while (left > 0) {
                int k = BIO_read(c->wbio, scratch, (int)(left < sizeof scratch ? left : sizeof scratch));
                if (k <= 0)
                    return UV_EIO;
                left -= (size_t)k;
            }
            n -= (size_t)wr;
            if (n == 0)
                return 0;
        }
    }
    srv_wreq_t *w = malloc(sizeof *w + n);
    if (!w)
        return UV_ENOMEM;
    int got = BIO_read(c->wbio, w->data, (int)n);
    if (got <= 0 || (size_t)got != n) {
        free(w);
        return UV_EIO;
    }
    w->c = c;
    w->len = n;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w);
        return r;
    }
    c->pending_out += n;
    c->writes_pending++;
    return 0;
}

/* ------------------------------------------------------------ closing */
void srv_conn_close(srv_conn_t *c, const char *reason)
{
    if (c->state == SRV_CONN_CLOSING)
        return;
    c->state = SRV_CONN_CLOSING;
    /* Unauthenticated connections are what floods are made of: their
     * lines are rate-limited. */
    if (c->authenticated)
        kms_log(KMS_LOG_INFO, SRV_LOG, "conn %llu close %s: %s (%llu requests)",
                (unsigned long long)c->id, c->addr, reason, (unsigned long long)c->requests);
    else
        srv_log_limited(SRV_LOGC_PREAUTH, KMS_LOG_INFO, "conn %llu close %s: %s (%llu requests)",
                        (unsigned long long)c->id, c->addr, reason,
                        (unsigned long long)c->requests);
    /* Whatever the connection has queued or running is for nobody now. */
    enum srv_wait was = c->wait;
    srv_wait_end(c);
    if (was == SRV_WAIT_AUDIT || was == SRV_WAIT_TENANT) {
        kmip_request_free(c->req); /* decoded, never run: nothing to audit */
        c->req = NULL;
        c->prepared = false;
        srv_budget_release(c);
        atomic_fetch_add(&c->loop->srv->n_cancelled, 1); /* queued: cancelled too */
    }
    if (c->req && c->on_worker) {
        kmip_request_cancel(c->req);
        (void)uv_cancel((uv_req_t *)&c->work); /* not started yet: it never runs */
        atomic_fetch_add(&c->loop->srv->n_cancelled, 1);
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->ssl && !c->tls_failed && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* queue close_notify; we do not wait for the peer's */
        ERR_clear_error();
    }
    /* A failed handshake leaves its alert in the write BIO: send it too. */
    if (c->ssl)
        (void)conn_flush(c);
    srv_timer_set(c, SRV_TIMER_CLOSE, true);
    conn_close_continue(c);
}

/* Map a failed SSL call to a precise reason and close. */
static void conn_tls_fail(srv_conn_t *c, int ssl_err, const char *what)
{
    char why[320], detail[256] = "";
    unsigned long e = ERR_peek_error();
    long vr = SSL_get_verify_result(c->ssl);
    switch (ssl_err) {
    case SSL_ERROR_SSL:
        if (e)
            ERR_error_string_n(e, detail, sizeof detail);
        if (vr != X509_V_OK && !c->handshake_done) {
            size_t l = strlen(detail);
            snprintf(detail + l, sizeof detail - l, " (certificate: %s)",
                     X509_verify_cert_error_string(vr));
        }
        break;
    case SSL_ERROR_SYSCALL:
        snprintf(detail, sizeof detail, "unexpected end of stream");
        break;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(detail, sizeof detail, "close_notify from client");
        break;
    case SSL_ERROR_WANT_WRITE:
    case SSL_ERROR_WANT_X509_LOOKUP:
    case SSL_ERROR_WANT_ASYNC:
    case SSL_ERROR_WANT_ASYNC_JOB:
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
        snprintf(detail, sizeof detail, "unexpected SSL_get_error %d", ssl_err);
        break;
    default:
        snprintf(detail, sizeof detail, "SSL_get_error %d", ssl_err);
        break;
    }
    ERR_clear_error();
    c->tls_failed = ssl_err == SSL_ERROR_SSL || ssl_err == SSL_ERROR_SYSCALL;
    if (!c->handshake_done)
        srv_metrics_tls(c->loop, c->http != NULL, SRV_M_TLS_FAILED);
    snprintf(why, sizeof why, "tls %s failed: %s", what, detail);
    srv_conn_close(c, why);
}

/* ----------------------------------------------------------- dispatch */
/*
 * A request's path (kmip.h has the steps): conn_dispatch decodes the bytes
 * once into a kmip_request_t and wipes them; the request is executed here
 * on the loop when kmip allows it (conn_prepare authenticates and gates
 * it first), else handed, decoded, to a worker (work_cb prepares,
 * executes and encodes it there). A loop execution that left a write
 * hands it to the store's writer and waits in DISPATCH; the writer's
 * verdict comes back through srv_conn_commits_done: durable or failed for
 * good, the answer is encoded here; a conflict runs the request again on
 * a worker. Every path ends in conn_finish, the one place that counts,
 * audits, logs and writes an answer.
 */

/* What an HSM-down gate answers key operations with. */
#define SRV_KEYS_UNAVAILABLE "HSM unavailable"

/* Who is asking, as the TLS layer established it. */
static kmip_peer_t conn_peer(const srv_conn_t *c)
{
    kmip_peer_t peer = {
        .cert_sha256 = c->fp[0] ? c->fp : NULL,
        .cert_cn = c->cn[0] ? c->cn : NULL,
        .address = c->addr,
    };
    return peer;
}

/* Identity, then what the server can offer right now (the HSM health
 * monitor's verdict, read once per request). On whichever thread executes
 * the request first. */
static void conn_prepare(srv_conn_t *c)
{
    if (c->prepared)
        return;
    c->prepared = true;
    /* A refusal is answered, item by item. */
    c->auth_ok = kmip_request_authenticate(c->req) == 0;
    kmip_gate_t g = {
        .keys_unavailable = keys_hsm_down(),
        .keys_reason = SRV_KEYS_UNAVAILABLE,
    };
    /* audit.on_full: fail. A request that cannot be recorded does not run. */
    if (c->loop->srv->conf->audit.on_full == CONF_AUDIT_FULL_FAIL && srv_audit_full()) {
        atomic_fetch_add(&c->loop->srv->n_audit_refused, 1);
        g.refuse_all = "audit log unavailable: its backlog is full (the disk refuses writes; "
                       "audit.on_full: fail); nothing was done";
    }
    kmip_request_gate(c->req, &g);
}

/* With replication.sync_acks, a request that changed something waits for
 * peer acknowledgements before it is answered. Any thread. */
static bool conn_needs_acks(const srv_conn_t *c)
{
    struct repl *r = c->loop->srv->repl;
    return r && repl_sync_acks(r) > 0 && kmip_request_last_seq(c->req) > 0;
}

/* Worker thread: the steps up to the encoded answer (or, when it must
 * wait for peer acknowledgements, up to the commit: the loop encodes). */
static void work_cb(uv_work_t *w)
{
    srv_conn_t *c = w->data;
    conn_prepare(c);
    int rc = kmip_request_execute(c->req, KMIP_RUN_WORKER);
    c->acks_encode = rc == 0 && conn_needs_acks(c);
    if (rc == 0 && !c->acks_encode)
        rc = kmip_request_encode(c->req, &c->resp);
    if (rc)
        c->rc = rc;
}

static void log_request(const srv_conn_t *c, const kmip_summary_t *s, uint64_t us)
{
    if (c->rc != 0 && c->rc != KMS_ERR_PROTO && c->state == SRV_CONN_CLOSING) {
        /* Its client went away first: the request was cancelled. */
        kms_log(KMS_LOG_INFO, SRV_LOG, "conn %llu %s request cancelled: the client closed (%lluus)",
                (unsigned long long)c->id, c->addr, (unsigned long long)us);
        return;
    }
    if (c->rc != 0 && c->rc != KMS_ERR_PROTO) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "conn %llu %s request failed: %s (%lluus)",
                (unsigned long long)c->id, c->addr, kms_strerror(c->rc),
                (unsigned long long)us);
        return;
    }
    const char *op = s->operation ? ttlv_enum_name(KMIP_TAG_OPERATION, s->operation) : NULL;
    const char *st = ttlv_enum_name(KMIP_TAG_RESULT_STATUS, s->result_status);
    const char *rs = s->result_reason ? ttlv_enum_name(KMIP_TAG_RESULT_REASON, s->result_reason)
                                      : NULL;
    if (!KMS_LOG_ENABLED(KMS_LOG_INFO))
        return;
    /* The JSON log format carries the request's fields as members; the
     * text line already says the same. */
    kms_log_field_t f[] = {
        {.key = "conn", .num = (int64_t)c->id},
        {.key = "addr", .str = c->addr},
        {.key = "transport", .str = c->http ? "https" : "kmip"},
        {.key = "identity", .str = s->identity},
        {.key = "tenant", .str = s->tenant},
        {.key = "op", .str = op ? op : ""},
        {.key = "batch", .num = (int64_t)s->batch_count},
        {.key = "status", .str = st ? st : ""},
        {.key = "reason", .str = rs ? rs : ""},
        {.key = "object", .str = s->object_id},
        {.key = "us", .num = (int64_t)us},
    };
    kms_log_fields(KMS_LOG_INFO, SRV_LOG, f, KMS_ARRAY_SIZE(f),
            "conn %llu %s id=%s tenant=%s op=%s batch=%zu status=%s reason=%s obj=%s %lluus%s",
            (unsigned long long)c->id, c->addr, s->identity[0] ? s->identity : "-",
            s->tenant[0] ? s->tenant : "-", op ? op : "-", s->batch_count, st ? st : "-",
            rs ? rs : "-", s->object_id[0] ? s->object_id : "-", (unsigned long long)us,
            c->rc == KMS_ERR_PROTO ? " (not TTLV)" : "");
}

/* Hand the answer in c->resp to OpenSSL (the caller flushes). A request
 * that produced no answer, or one too large, leaves *rc set for the
 * caller's close. false: the TLS write failed and the connection is
 * closing. */
static bool conn_write_resp(srv_conn_t *c, int *rc)
{
    if ((*rc != 0 && *rc != KMS_ERR_PROTO) || c->resp.len == 0)
        return true;
    if (c->resp.len > INT32_MAX) {
        *rc = KMS_ERR_LIMIT;
        return true;
    }
    return srv_conn_tls_write(c, c->resp.data, c->resp.len);
}

bool srv_conn_tls_write(srv_conn_t *c, const void *p, size_t n)
{
    if (n > INT32_MAX) {
        srv_conn_close(c, "response too large");
        return false;
    }
    ERR_clear_error();
    int w = SSL_write(c->ssl, p, (int)n);
    if (w <= 0) {
        conn_tls_fail(c, SSL_get_error(c->ssl, w), "write");
        return false;
    }
    return true;
}

/* The one end of every request, on the loop thread: count it, audit it,
 * log it, free it, hand its answer to TLS and wipe that. A request that
 * failed (c->rc other than 0 and KMS_ERR_PROTO) or was not TTLV closes
 * the connection after its answer, if it has one. */
/* The connection becomes authenticated: out of the pre-auth pool, its
 * budget share and tenant known. */
static void conn_authenticated(srv_conn_t *c, char kind, const char *who, const char *tenant)
{
    c->authenticated = true;
    srv_preauth_leave(c);
    snprintf(c->ident, sizeof c->ident, "%c:%s", kind, who);
    kms_strlcpy(c->tenant, tenant, sizeof c->tenant);
}

static void conn_send(srv_conn_t *c);

static void conn_finish(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    kmip_summary_t sum;
    kmip_request_summary(c->req, &sum);
    kmip_request_free(c->req);
    c->req = NULL;
    c->prepared = false;
    c->requests++;
    atomic_fetch_add_explicit(&srv->n_requests, 1, memory_order_relaxed);
    srv_budget_release(c); /* the request and its decoded form are gone */
    /* A Credential verified: a password client is authenticated now. */
    if (c->auth_ok && !c->authenticated && c->state != SRV_CONN_CLOSING && sum.identity[0])
        conn_authenticated(c, 'u', sum.identity, sum.tenant);
    c->auth_ok = false;
    uint64_t ticket = 0;
    if (c->rc == 0 || c->rc == KMS_ERR_PROTO) {
        kmip_peer_t peer = conn_peer(c);
        srv_audit_record(&sum, &peer, c->state != SRV_CONN_CLOSING ? &ticket : NULL);
    }
    uint64_t ns = kms_mono_ns() - c->t0_ns;
    srv_metrics_request(c->loop, &sum, c->rc, ns);
    log_request(c, &sum, ns / 1000);
    if (ticket && ticket > srv_audit_durable()) {
        /* audit.durable: the answer leaves once its record is on disk. */
        c->audit_ticket = ticket;
        c->state = SRV_CONN_DISPATCH;
        srv_wait_start(c, SRV_WAIT_DURABLE);
        srv_timer_set(c, SRV_TIMER_DURABLE, true);
        return;
    }
    conn_send(c);
}

/* Hand the finished request's answer to TLS, wipe it; close after it when
 * the request failed or was not TTLV. */
static void conn_send(srv_conn_t *c)
{
    int rc = c->rc;
    if (c->http && c->state != SRV_CONN_CLOSING)
        srv_http_kmip_answer(c, &rc); /* the HTTP response, in the request's encoding */
    bool written = c->state == SRV_CONN_CLOSING || conn_write_resp(c, &rc);
    /* A Get response carries key material: wipe it, keep the memory for the
     * next request (freed when the connection idles, conn_shrink). */
    kms_wipe(c->resp.data, c->resp.len);
    kms_buf_reset(&c->resp);
    if (c->http && written && rc == 0 && c->state != SRV_CONN_CLOSING)
        srv_http_answered(c); /* the next request, or close as asked */
    if (c->state == SRV_CONN_CLOSING) {
        conn_close_continue(c);
        return;
    }
    if (written && rc != 0) {
        (void)conn_flush(c);
        srv_conn_close(c, rc == KMS_ERR_PROTO ? "request is not TTLV" : kms_strerror(rc));
    }
}

/* Encode the executed request's answer on this thread and end it. */
static void conn_answer(srv_conn_t *c)
{
    int rc = kmip_request_encode(c->req, &c->resp);
    if (rc)
        c->rc = rc;
    conn_finish(c);
}

/* After an answer that came back asynchronously: send it, read on. */
void srv_conn_resume(srv_conn_t *c)
{
    if (c->state == SRV_CONN_CLOSING || c->wait == SRV_WAIT_DURABLE)
        return;
    if (conn_flush(c) != 0) {
        srv_conn_close(c, "write failed");
        return;
    }
    c->state = c->pending_out > c->loop->srv->limits.max_pending_output ? SRV_CONN_WRITE
                                                                        : SRV_CONN_READ;
    if (c->state == SRV_CONN_READ)
        conn_pump(c);
    else
        conn_settle(c);
}

static void conn_wait_acks(srv_conn_t *c);

static void after_work_cb(uv_work_t *w, int status)
{
    srv_conn_t *c = w->data;
    bool wait = c->acks_encode;
    c->acks_encode = false;
    c->on_worker = false;
    srv_tenant_release(c); /* may hand the slot to a waiting request at once */
    if (status == UV_ECANCELED)
        c->rc = KMS_ERR_UNAVAIL;
    if (wait && c->rc == 0 && c->state != SRV_CONN_CLOSING) {
        conn_wait_acks(c); /* committed; answered once peers have it */
    } else {
        conn_finish(c);
        srv_conn_resume(c);
    }
    conn_unref(c);
}

/* Hand the decoded request to a worker (state DISPATCH), or queue it
 * behind its tenant's requests already there (limits.tenant_workers). */
static void conn_queue(srv_conn_t *c)
{
    c->state = SRV_CONN_DISPATCH;
    if (!srv_tenant_acquire(c)) {
        atomic_fetch_add(&c->loop->srv->n_tenant_waits, 1);
        srv_wait_start(c, SRV_WAIT_TENANT);
        return;
    }
    c->work.data = c;
    if (uv_queue_work(&c->loop->loop, &c->work, work_cb, after_work_cb) != 0) {
        srv_tenant_release(c);
        c->rc = KMS_ERR_BUSY;
        conn_finish(c); /* closes */
        return;
    }
    c->on_worker = true;
    c->refs++; /* released by after_work_cb */
}

/* Writer or replication thread: hand the connection back to its loop
 * (srv_conn_commits_done). */
static void conn_hand_back(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    c->commit_next = NULL;
    pthread_mutex_lock(&l->commit_mu);
    if (l->commit_tail)
        l->commit_tail->commit_next = c;
    else
        l->commit_head = c;
    l->commit_tail = c;
    pthread_mutex_unlock(&l->commit_mu);
    uv_async_send(&l->commit_async); /* coalesced: one wake-up per batch */
}

/* Writer thread: a deferred commit finished; queue it for its loop. */
static void conn_commit_cb(store_write_t *w, int result, void *arg)
{
    srv_conn_t *c = arg;
    (void)w;
    c->commit_result = result;
    conn_hand_back(c);
}

/* ----------------------------------------------------------- sync acks */
/* Replication thread: the peers acknowledged (or the wait ended). */
static void conn_acks_cb(int result, void *arg)
{
    srv_conn_t *c = arg;
    c->acks_result = result;
    conn_hand_back(c);
}

/* Loop thread: the request's answer once the acknowledgements are in or
 * the wait ended. With on_sync_timeout fail, the items that wrote are
 * answered Operation Failed saying that the change is committed here and
 * will replicate; with degrade (repl_wait answers 0 then, and logs), the
 * normal answer. */
static void conn_acks_done(srv_conn_t *c, int result)
{
    const struct conf_replication *rp = &c->loop->srv->conf->replication;
    bool fail = rp->on_sync_timeout != CONF_SYNC_TIMEOUT_DEGRADE;
    if (result != 0 && fail) {
        char msg[256];
        if (result == KMS_ERR_TIMEOUT)
            snprintf(msg, sizeof msg,
                     "replication: %u peer acknowledgements not received within %u ms; the "
                     "change is committed on this node and will replicate",
                     rp->sync_acks, rp->sync_timeout_ms);
        else
            snprintf(msg, sizeof msg,
                     "replication: stopped before %u peer acknowledgements were received; the "
                     "change is committed on this node and will replicate",
                     rp->sync_acks);
        kmip_request_unconfirmed(c->req, msg);
    }
    conn_answer(c);
    srv_conn_resume(c);
}

/* Loop thread, state DISPATCH, after the request's writes committed: ask
 * replication to call back once sync_acks peers have its last change.
 * The connection holds a reference until the verdict is handed back. */
static void conn_wait_acks(srv_conn_t *c)
{
    c->acks_wait = true;
    c->refs++; /* released by srv_conn_commits_done */
    int rc = repl_wait(c->loop->srv->repl, kmip_request_last_seq(c->req), conn_acks_cb, c);
    if (rc == 0)
        return;
    /* Replication is not running (stopping): no peer will acknowledge. */
    c->acks_wait = false;
    c->refs--;
    conn_acks_done(c, KMS_ERR_UNAVAIL);
}

/* Loop thread: answer every connection whose commit finished (after its
 * peer acknowledgements, with sync_acks), or run its request again on a
 * worker when another writer got there first. */
void srv_conn_commits_done(uv_async_t *a)
{
    srv_loop_t *l = a->data;
    pthread_mutex_lock(&l->commit_mu);
    srv_conn_t *c = l->commit_head;
    l->commit_head = l->commit_tail = NULL;
    pthread_mutex_unlock(&l->commit_mu);
    while (c) {
        srv_conn_t *next = c->commit_next;
        if (c->acks_wait) {
            c->acks_wait = false;
            conn_acks_done(c, c->acks_result);
            conn_unref(c); /* the wait's reference */
            c = next;
            continue;
        }
        srv_metrics_commit(l, kms_mono_ns() - c->commit_t0_ns);
        int rc = kmip_request_commit_done(c->req, c->commit_result);
        if (rc == KMS_ERR_AGAIN && c->state != SRV_CONN_CLOSING) {
            kms_log(KMS_LOG_DEBUG, SRV_LOG, "conn %llu deferred commit conflicted: run again",
                    (unsigned long long)c->id);
            conn_queue(c);
        } else if (rc == 0 && c->state != SRV_CONN_CLOSING && conn_needs_acks(c)) {
            conn_wait_acks(c);
        } else {
            if (rc == 0) {
                conn_answer(c);
            } else {
                c->rc = KMS_ERR_UNAVAIL; /* closing: not run again */
                conn_finish(c);
            }
            srv_conn_resume(c);
        }
        conn_unref(c); /* the commit's reference */
        c = next;
    }
}

/* Run the complete request in c->in: decode it once (and wipe the bytes:
 * a Register carries key material), then execute it here when kmip allows
 * it, else on a worker. true: answered, go on reading; false: it runs on a
 * worker or waits for its commit (state DISPATCH), or the connection
 * closes. */
static bool conn_run(srv_conn_t *c);

bool srv_conn_dispatch(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    kmip_peer_t peer = conn_peer(c);
    c->t0_ns = kms_mono_ns();
    c->rc = kmip_request_decode(srv->kmip, &peer, c->in.data, c->in.len, &c->req);
    kms_wipe(c->in.data, c->in.len);
    c->in.len = 0;
    c->need = 0;
    if (c->in.cap > SRV_READ_CHUNK) {
        /* A large request's buffer is not kept for the next one: only the
         * budget's reservation (held until the answer) stands for it. */
        kms_buf_dispose(&c->in);
        kms_buf_init(&c->in, srv->limits.max_message);
    }
    srv_timer_set(c, SRV_TIMER_NONE, false); /* a request answered: the idle time restarts */
    if (!c->req) {
        conn_finish(c); /* closes */
        return false;
    }
    return conn_run(c);
}

/* Run the decoded request c->req (state READ): here, on a worker, or not
 * yet (audit.on_full: block with a full backlog). Returns as
 * conn_dispatch. */
static bool conn_run(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    if (srv->conf->audit.on_full == CONF_AUDIT_FULL_BLOCK && srv_audit_full()) {
        c->state = SRV_CONN_DISPATCH;
        srv_wait_start(c, SRV_WAIT_AUDIT);
        return false;
    }
    if (!kmip_request_can_run_inline(c->req)) {
        conn_queue(c);
        return false;
    }
    conn_prepare(c);
    int rc = kmip_request_execute(c->req, KMIP_RUN_LOOP);
    if (rc == KMS_ERR_AGAIN) {
        conn_queue(c); /* it needs a worker after all; nothing was stored */
        return false;
    }
    store_write_t *w = kmip_request_pending_write(c->req);
    if (rc == 0 && w) {
        c->state = SRV_CONN_DISPATCH;
        c->refs++; /* released by srv_conn_commits_done */
        c->commit_t0_ns = kms_mono_ns();
        rc = store_commit_async(srv->store, w, conn_commit_cb, c);
        if (rc == 0)
            return false;
        /* Not queued (closing, read-only): nothing is stored, and the
         * answer says so. */
        c->refs--;
        c->state = SRV_CONN_READ;
        rc = kmip_request_commit_done(c->req, rc);
    }
    if (rc) {
        c->rc = rc;
        conn_finish(c);
    } else {
        conn_answer(c);
    }
    return c->state == SRV_CONN_READ;
}

/* ------------------------------------------------------------ reading */
static bool conn_partial(const srv_conn_t *c)
{
    return c->in.len > 0 || BIO_ctrl_pending(c->rbio) > 0 || SSL_has_pending(c->ssl) ||
           (c->http && srv_http_partial(c));
}

static void conn_read_on(srv_conn_t *c, bool on);

/* A fresh, empty memory BIO (OpenSSL's mem BIOs never shrink). */
static BIO *mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty = "want more", not EOF */
    return b;
}

static bool bio_oversized(BIO *b)
{
    BUF_MEM *bm = NULL;
    return BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &bm) == 1 && bm &&
           bm->max > SRV_BIO_KEEP;
}

/* Entering idle: give back what the handshake or a big message left behind,
 * so thousands of idle connections cost little memory. */
static void conn_shrink(srv_conn_t *c)
{
    BIO *b;
    if (bio_oversized(c->rbio) && (b = mem_bio()) != NULL) {
        SSL_set0_rbio(c->ssl, b); /* frees the old one */
        c->rbio = b;
    }
    if (bio_oversized(c->wbio) && (b = mem_bio()) != NULL) {
        SSL_set0_wbio(c->ssl, b);
        c->wbio = b;
    }
    if (c->in.len == 0 && c->in.cap > 0) {
        kms_buf_dispose(&c->in);
        kms_buf_init(&c->in, c->loop->srv->limits.max_message);
    }
    if (c->resp.cap > 0) {
        kms_buf_dispose_wipe(&c->resp);
        kms_buf_init(&c->resp, c->loop->srv->limits.max_response);
    }
    ERR_clear_error();
}

/* After any progress: pick the timer and whether to read from the socket. */
static void conn_settle(srv_conn_t *c)
{
    switch (c->state) {
    case SRV_CONN_HANDSHAKE:
        /* While its certificate is looked up, only a little is buffered. */
        conn_read_on(c, !c->admitting || BIO_ctrl_pending(c->rbio) < SRV_RBIO_PREAUTH);
        break;
    case SRV_CONN_READ:
        if (conn_partial(c)) {
            srv_timer_set(c, SRV_TIMER_MESSAGE, false);
        } else if (c->draining) {
            srv_conn_close(c, c->drain_why ? c->drain_why : "server shutting down");
            return;
        } else {
            if (c->timer_kind != SRV_TIMER_IDLE)
                conn_shrink(c);
            srv_timer_set(c, SRV_TIMER_IDLE, false);
        }
        /* A request waiting for memory is not read further (TCP pushes
         * back); its message timer keeps running. */
        conn_read_on(c, c->wait != SRV_WAIT_MEMORY);
        break;
    case SRV_CONN_DISPATCH:
        conn_read_on(c, BIO_ctrl_pending(c->rbio) < SRV_RBIO_HIGH);
        break;
    case SRV_CONN_WRITE:
        conn_read_on(c, false);
        srv_timer_set(c, SRV_TIMER_WRITE, false);
        break;
    case SRV_CONN_CLOSING:
        break;
    }
}

/* The TLS line of a connection, once it is known whether its certificate
 * is registered (unregistered ones are rate-limited: a flood is made of
 * them). */
static void log_tls(const srv_conn_t *c, const char *verdict)
{
    const char *fmt = "conn %llu %s tls %s %s%s cn=%s sha256=%.16s%s%s";
    bool has = c->fp[0] != '\0';
    if (c->authenticated)
        kms_log(KMS_LOG_INFO, SRV_LOG, fmt, (unsigned long long)c->id, c->addr,
                SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
                SSL_session_reused(c->ssl) ? " resumed" : "", c->cn[0] ? c->cn : "-",
                has ? c->fp : "-", has ? "..." : "", verdict);
    else
        srv_log_limited(SRV_LOGC_PREAUTH, KMS_LOG_INFO, fmt, (unsigned long long)c->id, c->addr,
                        SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
                        SSL_session_reused(c->ssl) ? " resumed" : "", c->cn[0] ? c->cn : "-",
                        has ? c->fp : "-", has ? "..." : "", verdict);
}

/* The handshake is done: a certificate is looked up by the admission
 * thread (srv_conn_admitted continues); without one (client_auth
 * optional) the client stays unauthenticated until a Credential of its
 * verifies. */
static void handshake_done(srv_conn_t *c)
{
    c->handshake_done = true;
    srv_metrics_tls(c->loop, c->http != NULL,
                    SSL_session_reused(c->ssl) ? SRV_M_TLS_RESUMED : SRV_M_TLS_FULL);
    bool has = srv_tls_peer(c->ssl, c->fp, c->cn, sizeof c->cn);
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert && certs_has_peer_role(cert)) {
        /* A node certificate authenticates replication links only; as a
         * KMIP client it would act with whatever identity its CN or
         * fingerprint happens to match. */
        kms_log(KMS_LOG_WARN, SRV_LOG,
                "conn %llu %s refused: certificate cn=%s carries the kmsd peer role (a node "
                "certificate opens replication links, never a KMIP session)",
                (unsigned long long)c->id, c->addr, c->cn[0] ? c->cn : "-");
        ERR_clear_error();
        srv_conn_close(c, "node certificate on the KMIP port");
        return;
    }
    ERR_clear_error();
    if (has) {
        srv_admit_post(c);
        return;
    }
    log_tls(c, " (no certificate)");
    c->state = SRV_CONN_READ;
}

int srv_conn_tls_read(srv_conn_t *c, uint8_t *buf, size_t len)
{
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        (void)conn_flush(c);
        srv_conn_close(c, "client closed (close_notify)");
        return -1;
    }
    conn_tls_fail(c, e, "read");
    return -1;
}

void srv_conn_admitted(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    if (c->state == SRV_CONN_HANDSHAKE) {
        bool ok = c->admit_rc == 0;
        if (ok)
            conn_authenticated(c, 'c', c->fp[0] ? c->fp : c->cn, c->admit_id.tenant);
        log_tls(c, ok ? "" : " (not registered or disabled)");
        if (!ok && srv->conf->tls.require_registered) {
            char why[256];
            snprintf(why, sizeof why,
                     c->admit_rc == KMS_ERR_PERM
                         ? "client certificate not registered or disabled "
                           "(tls.require_registered; register it with: kmsctl client add "
                           "--tenant TENANT --cert FILE, or: kmsctl client enable NAME)"
                         : "cannot check the client certificate: %s",
                     kms_strerror(c->admit_rc));
            srv_conn_close(c, why);
        } else {
            c->state = SRV_CONN_READ;
            conn_pump(c); /* what arrived meanwhile */
        }
    }
    conn_unref(c); /* srv_admit_post's reference */
}

int srv_conn_admit_bytes(srv_conn_t *c, size_t need, char *why, size_t whylen)
{
    srv_t *srv = c->loop->srv;
    if (!c->authenticated) {
        if (need <= srv->limits.max_message_unauthenticated)
            return 0;
        snprintf(why, whylen,
                 "message of %zu bytes before authentication exceeds "
                 "limits.max_message_unauthenticated",
                 need);
        return KMS_ERR_LIMIT;
    }
    if (c->reserved)
        return 0;
    int r = srv_budget_reserve(c, need, why, whylen);
    if (r == KMS_ERR_AGAIN) {
        if (!c->mem_waited) /* counted once per request, not per retry */
            atomic_fetch_add(&srv->n_mem_waits, 1);
        c->mem_waited = true;
        srv_wait_start(c, SRV_WAIT_MEMORY);
    } else if (r == 0) {
        c->mem_waited = false;
    }
    return r;
}

/* May the request whose size c->need the header declared be read? true:
 * go on; false: it waits for memory, or the connection is closing. */
static bool conn_admit_request(srv_conn_t *c)
{
    char why[160];
    int r = srv_conn_admit_bytes(c, c->need, why, sizeof why);
    if (r != 0 && r != KMS_ERR_AGAIN)
        srv_conn_close(c, why);
    return r == 0;
}

void srv_conn_wake(srv_conn_t *c, enum srv_wait was)
{
    if (c->state == SRV_CONN_CLOSING)
        return;
    switch (was) {
    case SRV_WAIT_MEMORY:
        if (c->state == SRV_CONN_READ)
            conn_pump(c); /* reserves, or waits again */
        break;
    case SRV_WAIT_AUDIT:
        c->state = SRV_CONN_READ;
        if (conn_run(c))
            srv_conn_resume(c);
        break;
    case SRV_WAIT_TENANT:
        conn_queue(c);
        break;
    case SRV_WAIT_DURABLE:
        if (srv_audit_durable() < c->audit_ticket) {
            srv_wait_start(c, SRV_WAIT_DURABLE);
            break;
        }
        c->state = SRV_CONN_READ;
        conn_send(c);
        srv_conn_resume(c);
        break;
    case SRV_WAIT_NONE:
        break;
    }
}

static void conn_pump(srv_conn_t *c)
{
    srv_t *srv = c->loop->srv;
    int n, e;

    if (c->state == SRV_CONN_HANDSHAKE) {
        if (c->admitting) {
            conn_settle(c); /* its bytes wait in the read BIO */
            return;
        }
        ERR_clear_error();
        n = SSL_do_handshake(c->ssl);
        if (n != 1) {
            e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ) {
                if (conn_flush(c) != 0)
                    srv_conn_close(c, "write failed");
                else
                    conn_settle(c);
                return;
            }
            conn_tls_fail(c, e, "handshake");
            return;
        }
        handshake_done(c);
        if (c->state == SRV_CONN_CLOSING)
            return;
        if (c->admitting) {
            if (conn_flush(c) != 0) /* the handshake's last flight, tickets */
                srv_conn_close(c, "write failed");
            else
                conn_settle(c);
            return;
        }
    }
    while (c->state == SRV_CONN_READ) {
        if (c->pending_out + BIO_ctrl_pending(c->wbio) > srv->limits.max_pending_output) {
            if (conn_flush(c) != 0) {
                srv_conn_close(c, "write failed");
                return;
            }
            c->state = SRV_CONN_WRITE;
            break;
        }
        if (c->pending_out > srv->limits.max_pending_output) {
            c->state = SRV_CONN_WRITE;
            break;
        }
        if (c->http) {
            if (srv_http_step(c))
                continue;
            break;
        }
        if (c->need == 0 && c->in.len >= 8) {
            size_t total = 0;
            int r = ttlv_frame_need(c->in.data, c->in.len, srv->limits.max_message, &total);
            if (r == KMS_ERR_LIMIT) {
                char why[128];
                snprintf(why, sizeof why, "message of %llu bytes exceeds limits.max_message",
                         (unsigned long long)(8 + (uint64_t)kms_be32(c->in.data + 4)));
                srv_conn_close(c, why);
                return;
            }
            if (r != 0) {
                srv_conn_close(c, "not a KMIP message (bad TTLV header)");
                return;
            }
            c->need = total;
            c->in.max = total; /* the buffer never grows past this request */
        }
        if (c->need && !conn_admit_request(c)) {
            if (c->state == SRV_CONN_CLOSING)
                return;
            break; /* waits for memory: reading stops (conn_settle) */
        }
        if (c->need && c->in.len == c->need) {
            if (srv_conn_dispatch(c))
                continue; /* answered inline: the next pipelined request */
            break;
        }
        size_t want = (c->need ? c->need : 8) - c->in.len;
        if (want > SRV_READ_CHUNK)
            want = SRV_READ_CHUNK;
        if (kms_buf_reserve(&c->in, want) != 0) {
            srv_conn_close(c, "out of memory");
            return;
        }
        n = srv_conn_tls_read(c, c->in.data + c->in.len, want);
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        if (n < 0)
            return;
        break;
    }
    if (c->state == SRV_CONN_CLOSING)
        return;
    /* SSL_read/handshake may have produced output (tickets, alerts). */
    if (conn_flush(c) != 0) {
        srv_conn_close(c, "write failed");
        return;
    }
    conn_settle(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    srv_conn_t *c = h->data;
    (void)suggested;
    /* One buffer per loop: read_cb feeds it to OpenSSL before the next read.
     * A connection without a memory reservation (not authenticated yet,
     * between requests, or waiting for the budget) reads one TLS record's
     * worth at a time: what it leaves in its read BIO stays small. */
    buf->base = (char *)c->loop->readbuf;
    buf->len = c->reserved ? sizeof c->loop->readbuf : SRV_READ_CHUNK + 64;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    srv_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (c->state == SRV_CONN_CLOSING)
        return;
    if (nread > 0)
        c->spoke = true;
    if (nread < 0) {
        char why[96];
        if (nread == UV_EOF)
            snprintf(why, sizeof why, "client closed the connection");
        else
            snprintf(why, sizeof why, "read error: %s", uv_strerror((int)nread));
        c->tls_failed = true; /* no close_notify to a socket that is gone */
        /* Most KMIP clients just close the socket. KMIP framing, not TLS
         * close_notify, tells a complete request from a cut one, so a
         * plain EOF after the handshake is an orderly end: mark the TLS
         * state shut down so SSL_free keeps the session resumable (it drops
         * the sessions of connections that were not shut down). */
        if (nread == UV_EOF && c->handshake_done && c->ssl)
            SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        srv_conn_close(c, why);
        return;
    }
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        srv_conn_close(c, "out of memory");
        return;
    }
    if (c->state == SRV_CONN_HANDSHAKE || c->state == SRV_CONN_READ)
        conn_pump(c);
    else
        conn_settle(c);
}

static void conn_read_on(srv_conn_t *c, bool on)
{
    if (on == c->reading || c->handles_closing)
        return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ------------------------------------------------------------- accept */
static void peer_name(uv_tcp_t *t, char *out, size_t outlen, char *ip, size_t iplen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[64] = "?";
    snprintf(out, outlen, "?");
    kms_strlcpy(ip, "?", iplen);
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(a->sin6_port));
        kms_strlcpy(ip, host, iplen);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(a->sin_port));
        kms_strlcpy(ip, host, iplen);
    }
}

void srv_conn_accept(uv_stream_t *server, int status)
{
    srv_loop_t *l = server->data;
    srv_t *srv = l->srv;
    srv_conn_t *c = NULL;
    /* Which listener: its place in the loop's array is its address's. */
    size_t li = (size_t)((uv_tcp_t *)server - l->listeners);
    bool http = li < srv->n_addrs && srv->addrs[li].http;

    if (status < 0) {
        kms_log(KMS_LOG_WARN, SRV_LOG, "accept failed: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "accept: out of memory");
        return;
    }
    c->loop = l;
    c->tcp.data = c;
    c->timer.data = c;
    kms_buf_init(&c->in, srv->limits.max_message);
    kms_buf_init(&c->resp, srv->limits.max_response);
    atomic_fetch_add(&srv->n_conns, 1); /* released in conn_unref */
    if (uv_tcp_init(&l->loop, &c->tcp) != 0) {
        atomic_fetch_sub(&srv->n_conns, 1);
        free(c);
        return;
    }
    c->refs = 1;
    c->state = SRV_CONN_CLOSING; /* until set up: a close needs no TLS */
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        srv_conn_close_now(c);
        return;
    }
    c->id = atomic_fetch_add(&srv->next_conn_id, 1) + 1;
    l->n_conns++;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    peer_name(&c->tcp, c->addr, sizeof c->addr, c->ip, sizeof c->ip);

    unsigned open = atomic_load(&srv->n_conns);
    if (l->stopping || !srv_admit_room(l)) {
        srv_log_limited(SRV_LOGC_REFUSED, KMS_LOG_WARN,
                        "conn %llu %s refused: %s (%llu refused since start)",
                        (unsigned long long)c->id, c->addr,
                        l->stopping ? "shutting down"
                                    : "limits.max_connections reached, all of them authenticated",
                        (unsigned long long)atomic_load(&srv->n_refused));
        srv_metrics_conn(l, http, l->stopping ? SRV_M_REFUSED_SHUTDOWN : SRV_M_REFUSED_LIMIT);
        srv_conn_close_now(c);
        return;
    }
    srv_metrics_conn(l, http, SRV_M_ACCEPTED);
    if (http && srv_http_new(c) != 0) {
        srv_conn_close_now(c);
        return;
    }
    srv_preauth_enter(c);
    if (uv_timer_init(&l->loop, &c->timer) != 0) {
        srv_conn_close_now(c);
        return;
    }
    c->timer_init = true;
    c->refs++;
    c->ssl = srv_tls_new_ssl(srv);
    c->rbio = mem_bio();
    c->wbio = mem_bio();
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        kms_log(KMS_LOG_ERROR, SRV_LOG, "conn %llu: cannot create TLS state", (unsigned long long)c->id);
        ERR_clear_error();
        srv_conn_close_now(c);
        return;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    if (http) {
        /* Health checks come without a client certificate: request one,
         * verify it when sent, require it per route (http.c). A separate
         * session context keeps these sessions from resuming on the KMIP
         * port, which may require a certificate. */
        static const unsigned char sid[] = "kmsd-http";
        SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        (void)SSL_set_session_id_context(c->ssl, sid, sizeof sid - 1);
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);

    srv_log_limited(SRV_LOGC_PREAUTH, KMS_LOG_INFO, "conn %llu accept %s%s (loop %u, %u open)",
                    (unsigned long long)c->id, c->addr, http ? " https" : "", l->index, open);
    c->state = SRV_CONN_HANDSHAKE;
    srv_timer_set(c, SRV_TIMER_HANDSHAKE, true);
    conn_read_on(c, true);
    if (!c->reading)
        srv_conn_close(c, "cannot start reading");
}

/* ------------------------------------------------------------ shutdown */
void srv_conn_drain(srv_conn_t *c, bool force, const char *why)
{
    if (c->state == SRV_CONN_CLOSING) {
        if (force)
            srv_conn_close_now(c);
        return;
    }
    c->draining = true;
    c->drain_why = why;
    if (force) {
        srv_conn_close(c, c->req ? "shutdown timeout (request still running)"
                                 : "shutdown timeout");
        return;
    }
    switch (c->state) {
    case SRV_CONN_HANDSHAKE:
        srv_conn_close(c, why);
        break;
    case SRV_CONN_READ:
        if (!conn_partial(c))
            srv_conn_close(c, why);
        break;
    default:
        break; /* closes once its response is written (conn_settle) */
    }
}
