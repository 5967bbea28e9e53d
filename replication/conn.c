/*
 * replication/conn.c: one peer connection: TLS through memory BIOs and
 * frame boundaries.
 *
 * libuv owns the socket; bytes read go into OpenSSL's read BIO, what
 * OpenSSL writes to its write BIO goes to uv_write (as server/conn.c).
 * Plaintext is read exactly up to the end of the current frame: the
 * 8-byte header first, checked against max_frame before the frame buffer
 * grows, then the body. While c->busy no further frame is read (apply.c
 * sets it while a snapshot frame is applied or its queue of frames read
 * ahead is full), and socket reads stop once REPL_RBIO_HIGH bytes wait
 * in the read BIO, so a peer can make us hold a bounded number of frames
 * and a bounded amount of TLS input. Above REPL_OUT_HIGH unsent bytes the
 * sender stops producing (link.c asks repl_conn_can_send).
 *
 * Closing: SSL_shutdown, flush, then uv_close of the socket and the timer
 * once the writes are done (at most REPL_CLOSE_MS); the connection is
 * freed in the last close callback. It deliberately knows nothing of what
 * frames mean (link.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "replication/repl_int.h"

#define REPL_RBIO_HIGH (256 * 1024)
#define REPL_CLOSE_MS 1000

typedef struct wreq {
    uv_write_t req;
    repl_conn_t *c;
    size_t len;
    uint8_t data[];
} wreq_t;

static void conn_pump(repl_conn_t *c);
static void on_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* ------------------------------------------------------------ lifetime */
static void on_closed(uv_handle_t *h)
{
    repl_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    repl_t *r = c->r;
    for (repl_conn_t **pp = &r->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    SSL_free(c->ssl); /* frees both BIOs */
    kms_buf_dispose_wipe(&c->in);
    free(c);
}

repl_conn_t *repl_conn_new(repl_t *r, bool outbound)
{
    repl_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->r = r;
    c->outbound = outbound;
    c->state = outbound ? RC_CONNECTING : RC_HANDSHAKE;
    kms_buf_init(&c->in, (r->opt.max_frame ? r->opt.max_frame : REPL_MAX_FRAME_DEFAULT) +
                             REPL_FRAME_HEADER);
    c->ssl = SSL_new(outbound ? r->cctx : r->sctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio || uv_tcp_init(&r->loop, &c->tcp) != 0) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        ERR_clear_error();
        free(c);
        return NULL;
    }
    c->handles = 1;
    c->tcp.data = c;
    if (uv_timer_init(&r->loop, &c->timer) == 0) {
        c->timer.data = c;
        c->handles++;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (outbound)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    c->next = r->conns;
    r->conns = c;
    return c;
}

static void close_handles(repl_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (c->handles > 1 && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_closed);
}

/* ------------------------------------------------------------ writing */
static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    repl_conn_t *c = w->c;
    c->pending_out -= w->len;
    c->writes--;
    free(w);
    if (c->state == RC_CLOSING) {
        if (c->writes == 0)
            close_handles(c);
        return;
    }
    if (status < 0) {
        char why[96];
        snprintf(why, sizeof why, "write error: %s", uv_strerror(status));
        repl_conn_close(c, why);
        return;
    }
    if (c->state == RC_OPEN)
        repl_link_writable(c);
}

/* Hand everything OpenSSL wrote to libuv. 0 or a negative libuv error. */
static int conn_flush(repl_conn_t *c)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return 0;
    wreq_t *w = malloc(sizeof *w + n);
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
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->pending_out += n;
    c->writes++;
    return 0;
}

int repl_conn_send_bytes(repl_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == RC_CLOSING)
        return KMS_ERR_STATE;
    ERR_clear_error();
    if (SSL_write(c->ssl, p, (int)n) <= 0) {
        ERR_clear_error();
        repl_conn_close(c, "TLS write failed");
        return KMS_ERR_IO;
    }
    int rc = conn_flush(c);
    if (rc != 0) {
        char why[96];
        snprintf(why, sizeof why, "write error: %s", uv_strerror(rc));
        repl_conn_close(c, why);
        return KMS_ERR_IO;
    }
    return 0;
}

int repl_conn_send(repl_conn_t *c, const repl_frame_t *f)
{
    kms_buf_t b;
    kms_error_t err;
    size_t max = c->r->opt.max_frame ? c->r->opt.max_frame : REPL_MAX_FRAME_DEFAULT;
    if (c->state == RC_CLOSING)
        return KMS_ERR_STATE;
    kms_buf_init(&b, max + REPL_FRAME_HEADER);
    int rc = repl_frame_encode(f, max, &b, &err);
    if (rc) {
        kms_log(KMS_LOG_ERROR, REPL_LOG, "link %s: cannot encode %s: %s", c->addr,
                repl_frame_type_name((int)f->type), kms_error_msg(&err));
        kms_buf_dispose_wipe(&b);
        repl_conn_close(c, "internal error encoding a frame");
        return rc;
    }
    ERR_clear_error();
    int w = SSL_write(c->ssl, b.data, (int)b.len);
    /* The plaintext may hold data-store keys: wipe it now. */
    kms_buf_dispose_wipe(&b);
    if (w <= 0) {
        ERR_clear_error();
        repl_conn_close(c, "TLS write failed");
        return KMS_ERR_IO;
    }
    if ((rc = conn_flush(c)) != 0) {
        char why[96];
        snprintf(why, sizeof why, "write error: %s", uv_strerror(rc));
        repl_conn_close(c, why);
        return KMS_ERR_IO;
    }
    return 0;
}

bool repl_conn_can_send(const repl_conn_t *c, size_t high)
{
    return c->state == RC_OPEN && c->pending_out <= high;
}

/* ------------------------------------------------------------ closing */
void repl_conn_close(repl_conn_t *c, const char *why)
{
    if (c->state == RC_CLOSING)
        return;
    enum repl_conn_state was = c->state;
    c->state = RC_CLOSING;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    repl_link_closed(c, why, was);
    if (SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    (void)conn_flush(c); /* close_notify, or a failed handshake's alert */
    if (c->writes == 0 || was == RC_CONNECTING) {
        close_handles(c);
        return;
    }
    if (c->handles > 1)
        uv_timer_start(&c->timer, on_timer, REPL_CLOSE_MS, 0);
}

void repl_conn_fail(repl_conn_t *c, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->state != RC_CLOSING && SSL_is_init_finished(c->ssl)) {
        repl_frame_t *f = repl_frame_new(REPL_FRAME_ERROR);
        if (f) {
            f->u.error.code = code;
            f->u.error.message = msg;
            (void)repl_conn_send(c, f);
            repl_frame_free(f);
        }
    }
    repl_conn_close(c, msg);
}

/* ------------------------------------------------------------ timers */
static void on_timer(uv_timer_t *t)
{
    repl_conn_t *c = t->data;
    if (c->state == RC_CLOSING) {
        close_handles(c); /* writes did not drain in time */
        return;
    }
    if (c->state != RC_OPEN) {
        repl_conn_close(c, c->state == RC_HELLO ? "no HELLO in time" : "TLS handshake timed out");
        return;
    }
    repl_conn_keepalive(c);
}

void repl_conn_keepalive(repl_conn_t *c)
{
    unsigned ka = c->r->opt.keepalive_ms ? c->r->opt.keepalive_ms : 2000;
    if (c->busy)
        c->last_rx_ms = repl_mono_ms(); /* we are not reading: its PINGs wait in TLS */
    uint64_t silent = repl_mono_ms() - c->last_rx_ms;
    if (silent >= 5ULL * ka) {
        char why[80];
        snprintf(why, sizeof why, "peer silent for %llu ms", (unsigned long long)silent);
        repl_conn_close(c, why);
        return;
    }
    if (silent >= ka) {
        repl_frame_t *f = repl_frame_new(REPL_FRAME_PING);
        if (f) {
            f->u.ping.nonce = (int64_t)repl_mono_ms();
            f->u.ping.wall_ms = repl_wall_ms(c->r);
            (void)repl_conn_send(c, f);
            repl_frame_free(f);
        }
    }
    if (c->state == RC_OPEN)
        uv_timer_start(&c->timer, on_timer, ka, 0);
}

/* ------------------------------------------------------------ reading */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    repl_conn_t *c = h->data;
    (void)suggested;
    buf->base = (char *)c->r->rdbuf; /* one loop thread: read_cb consumes it at once */
    buf->len = sizeof c->r->rdbuf;
}

static void read_control(repl_conn_t *c)
{
    bool want = c->state != RC_CLOSING && BIO_ctrl_pending(c->rbio) < REPL_RBIO_HIGH;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    repl_conn_t *c = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        repl_conn_close(c, n == UV_EOF ? "closed by peer" : uv_strerror((int)n));
        return;
    }
    if (BIO_write(c->rbio, buf->base, (int)n) != (int)n) {
        repl_conn_close(c, "out of memory");
        return;
    }
    conn_pump(c);
}

/* The TLS handshake step; true once it is done and checked. */
static bool handshake(repl_conn_t *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        char why[160];
        if (repl_tls_check_peer(c, why, sizeof why) != 0) {
            kms_log(KMS_LOG_WARN, REPL_LOG, "link %s refused: %s", c->addr, why);
            repl_conn_fail(c, REPL_ERROR_DENIED, "%s", why);
            return false;
        }
        (void)conn_flush(c);
        c->state = RC_HELLO;
        c->last_rx_ms = repl_mono_ms();
        repl_link_ready(c);
        return c->state == RC_HELLO || c->state == RC_OPEN;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        (void)conn_flush(c);
        return false;
    }
    unsigned long le = ERR_peek_last_error();
    char why[200];
    snprintf(why, sizeof why, "TLS handshake failed: %s",
             le ? ERR_reason_error_string(le) : "connection error");
    ERR_clear_error();
    kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: %s", c->addr, why);
    repl_conn_close(c, why);
    return false;
}

/* Read plaintext into c->in up to `want` bytes in total. 1 when there,
 * 0 when more bytes are needed, -1 when the connection closed. */
static int read_upto(repl_conn_t *c, size_t want)
{
    while (c->in.len < want) {
        if (kms_buf_reserve(&c->in, want - c->in.len) != 0) {
            repl_conn_close(c, "out of memory");
            return -1;
        }
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in.data + c->in.len, (int)(want - c->in.len));
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        ERR_clear_error();
        repl_conn_close(c, e == SSL_ERROR_ZERO_RETURN ? "closed by peer" : "TLS read failed");
        return -1;
    }
    return 1;
}

/* One frame, if complete: header checks, decode, hand to link.c. */
static int next_frame(repl_conn_t *c)
{
    size_t max = c->r->opt.max_frame ? c->r->opt.max_frame : REPL_MAX_FRAME_DEFAULT;
    int rc = read_upto(c, REPL_FRAME_HEADER);
    if (rc <= 0)
        return rc;
    if (c->need == 0) {
        int type = 0;
        size_t total = 0;
        int hr = repl_frame_header(c->in.data, c->in.len, max, &type, &total);
        /* Logged here: a connection refused before HELLO has no node, and
         * closing it logs nothing (repl_link_closed). */
        if (hr == KMS_ERR_NOTSUP) {
            kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: bad frame: protocol version %u", c->addr,
                    c->in.data[2]);
            repl_conn_fail(c, REPL_ERROR_VERSION, "protocol version %u is not %d", c->in.data[2],
                           REPL_PROTO_VERSION);
            return -1;
        }
        if (hr == KMS_ERR_LIMIT) {
            kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: bad frame: %u bytes above max_frame %zu",
                    c->addr, (unsigned)kms_be32(c->in.data + 4), max);
            repl_conn_fail(c, REPL_ERROR_LIMIT, "frame of %u bytes above max_frame %zu",
                           (unsigned)kms_be32(c->in.data + 4), max);
            return -1;
        }
        if (hr != 0) {
            kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: bad frame: not a replication frame header",
                    c->addr);
            repl_conn_fail(c, REPL_ERROR_PROTO, "not a replication frame header");
            return -1;
        }
        c->need = total;
    }
    if ((rc = read_upto(c, c->need)) <= 0)
        return rc;
    repl_frame_t *f = NULL;
    kms_error_t err;
    repl_frame_limits_t lim = {.max_frame = max};
    c->frame_len = c->in.len;
    int dr = repl_frame_decode(c->in.data, c->in.len, &lim, &f, &err);
    /* The buffer may hold a DSK in plaintext: wipe before reuse. */
    kms_wipe(c->in.data, c->in.len);
    kms_buf_reset(&c->in);
    c->need = 0;
    if (dr) {
        kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: bad frame: %s (byte %zu)", c->addr,
                kms_error_msg(&err), err.offset);
        repl_conn_fail(c, dr == KMS_ERR_LIMIT ? REPL_ERROR_LIMIT : REPL_ERROR_PROTO, "%s",
                       kms_error_msg(&err));
        return -1;
    }
    c->last_rx_ms = repl_mono_ms();
    repl_link_frame(c, f);
    return c->state == RC_CLOSING ? -1 : 1;
}

static void conn_pump(repl_conn_t *c)
{
    if (c->state == RC_HANDSHAKE && !handshake(c)) {
        if (c->state != RC_CLOSING)
            read_control(c);
        return;
    }
    while (c->state == RC_HELLO || c->state == RC_OPEN) {
        if (c->busy)
            break;
        if (next_frame(c) <= 0)
            break;
    }
    if (c->state != RC_CLOSING) {
        (void)conn_flush(c);
        read_control(c);
    }
}

void repl_conn_resume(repl_conn_t *c)
{
    c->busy = false;
    if (c->state != RC_CLOSING)
        conn_pump(c);
}

void repl_conn_start(repl_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[48] = "?";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
        snprintf(c->addr, sizeof c->addr, "%s:%u", host,
                 ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                               : ((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = RC_HANDSHAKE;
    unsigned hs = c->r->opt.handshake_ms ? c->r->opt.handshake_ms : 10000;
    if (c->handles > 1)
        uv_timer_start(&c->timer, on_timer, hs, 0);
    conn_pump(c); /* the connecting side speaks first */
}
