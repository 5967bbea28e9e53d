/*
 * bench/tls.c: the client TLS context and a blocking client for setup.
 *
 * Mutual TLS: the server chain is verified against --ca (and the host name
 * when --servername is given); our certificate and key come from --cert and
 * --key. TLS 1.2 and 1.3 only. The blocking client is used only in the
 * untimed setup phase (creating the keys that Get and Locate read); the
 * timed phase uses loop.c.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/bench.h"

SSL_CTX *bench_tls_ctx(const bench_tlscfg_t *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    int minv = c->tls_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int maxv = c->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, minv) || !SSL_CTX_set_max_proto_version(ctx, maxv))
        goto bad;
    if (c->ca && SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1) {
        fprintf(stderr, "kmipbench: cannot load CA %s\n", c->ca);
        goto bad;
    }
    if (c->cert && SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        fprintf(stderr, "kmipbench: cannot load certificate %s\n", c->cert);
        goto bad;
    }
    if (c->key && SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "kmipbench: cannot load key %s\n", c->key);
        goto bad;
    }
    SSL_CTX_set_verify(ctx, c->ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* Sessions are kept per connection slot by loop.c, not in a shared cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
bad:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
}

struct bench_sync {
    int fd;
    SSL *ssl;
    kms_buf_t in;
};

bench_sync_t *bench_sync_open(SSL_CTX *ctx, const struct sockaddr *sa, socklen_t salen, const char *sni)
{
    bench_sync_t *s = calloc(1, sizeof(*s));
    int one = 1;

    if (!s)
        return NULL;
    s->fd = -1;
    kms_buf_init(&s->in, 64u << 20);
    if ((s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(s->fd, sa, salen) < 0) {
        perror("kmipbench: connect");
        goto bad;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!(s->ssl = SSL_new(ctx)) || !SSL_set_fd(s->ssl, s->fd))
        goto bad;
    if (sni) {
        SSL_set_tlsext_host_name(s->ssl, sni);
        SSL_set1_host(s->ssl, sni);
    }
    if (SSL_connect(s->ssl) != 1) {
        fprintf(stderr, "kmipbench: TLS handshake failed\n");
        ERR_print_errors_fp(stderr);
        goto bad;
    }
    return s;
bad:
    bench_sync_close(s);
    return NULL;
}

int bench_sync_call(bench_sync_t *s, const kms_buf_t *req, kms_arena_t *a, bench_result_t *res)
{
    size_t total = 0;
    int rc;

    ERR_clear_error();
    if (SSL_write(s->ssl, req->data, (int)req->len) != (int)req->len)
        return KMS_ERR_IO;
    kms_buf_reset(&s->in);
    for (;;) {
        if (s->in.len >= 8 && total == 0) {
            rc = ttlv_frame_need(s->in.data, s->in.len, s->in.max, &total);
            if (rc < 0)
                return rc;
        }
        if (total && s->in.len >= total)
            break;
        if ((rc = kms_buf_reserve(&s->in, 16384)) < 0)
            return rc;
        int n = SSL_read(s->ssl, s->in.data + s->in.len, 16384);
        if (n <= 0)
            return KMS_ERR_IO;
        s->in.len += (size_t)n;
    }
    return bench_parse(s->in.data, total, a, res);
}

void bench_sync_close(bench_sync_t *s)
{
    if (!s)
        return;
    if (s->ssl) {
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
    }
    if (s->fd >= 0)
        close(s->fd);
    kms_buf_dispose(&s->in);
    free(s);
}
