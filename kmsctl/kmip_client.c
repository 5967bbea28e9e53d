/*
 * kmsctl/kmip_client.c: a small blocking KMIP client over mutual TLS.
 *
 * Connects to kmsd as a KMIP client would (TLS 1.2+, the server
 * certificate verified against the CA and the host name or IP we dialled,
 * our client certificate presented), sends one Request Message with one
 * batch item and reads one Response Message, bounded at 16 MiB. kmsd then
 * applies its own access control to us like to any client: this is the
 * admin identity's path to objects, not a back door.
 *
 * It deliberately has no batching, no async, no retries and never prints
 * key material (kmsctl key never asks for it).
 */
#include <errno.h>
#include <libgen.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kmsctl/kmip_client.h"

#define KMIP_CLIENT_MAX_RESPONSE (16u << 20)

struct kmsctl_kmip {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

/* Record `what` and OpenSSL's first queued reason in err; returns rc. */
static int ssl_err(kms_error_t *err, int rc, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    return kms_error_set(err, rc, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int dial(const char *host, uint16_t port, int *fd_out, kms_error_t *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int gr = getaddrinfo(host, ps, &hints, &res);
    if (gr != 0) {
        return kms_error_set(err, KMS_ERR_IO, "%s: %s", host, gai_strerror(gr));
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return kms_error_set(err, KMS_ERR_IO, "cannot connect to %s:%u: %s", host, port,
                             strerror(errno));
    }
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    *fd_out = fd;
    return 0;
}

int kmsctl_kmip_open(const conf_t *c, const kmsctl_kmip_options_t *o, kmsctl_kmip_t **out,
                     kms_error_t *err)
{
    *out = NULL;
    char host[256];
    uint16_t port = 0;
    const char *server = o && o->server ? o->server : (c->n_listen ? c->listen[0] : "");
    if (conf_parse_hostport(server, host, sizeof(host), &port) != 0) {
        return kms_error_set(err, KMS_ERR_CONFIG, "bad server address '%s'", server);
    }
    /* A wildcard listen address is reached on the loopback. */
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "::1");
    char dir[4096], cert[4200], key[4200];
    snprintf(dir, sizeof(dir), "%s", c->path);
    char *d = dirname(dir);
    snprintf(cert, sizeof(cert), "%s/pki/client.crt", d);
    snprintf(key, sizeof(key), "%s/pki/client.key", d);
    const char *certp = o && o->cert ? o->cert : cert;
    const char *keyp = o && o->key ? o->key : key;
    const char *cap = o && o->ca ? o->ca : c->tls.client_ca;

    kmsctl_kmip_t *k = calloc(1, sizeof(*k));
    if (!k)
        return KMS_ERR_NOMEM;
    k->fd = -1;
    int rc = KMS_ERR_CRYPTO;
    ERR_clear_error();
    k->ctx = SSL_CTX_new(TLS_client_method());
    if (!k->ctx || !SSL_CTX_set_min_proto_version(k->ctx, TLS1_2_VERSION)) {
        ssl_err(err, rc, "TLS context");
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(k->ctx, cap, NULL) != 1) {
        rc = ssl_err(err, KMS_ERR_CONFIG, cap);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(k->ctx, certp) != 1 ||
        SSL_CTX_use_PrivateKey_file(k->ctx, keyp, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(k->ctx) != 1) {
        rc = ssl_err(err, KMS_ERR_CONFIG, certp);
        goto fail;
    }
    SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER, NULL);
    rc = dial(host, port, &k->fd, err);
    if (rc)
        goto fail;
    rc = KMS_ERR_CRYPTO;
    k->ssl = SSL_new(k->ctx);
    if (!k->ssl || SSL_set_fd(k->ssl, k->fd) != 1)
        goto fail;
    unsigned char ipbuf[16];
    bool is_ip = inet_pton(AF_INET, host, ipbuf) == 1 || inet_pton(AF_INET6, host, ipbuf) == 1;
    if (is_ip) {
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), host))
            goto fail;
    } else {
        if (!SSL_set1_host(k->ssl, host) || !SSL_set_tlsext_host_name(k->ssl, host))
            goto fail;
    }
    if (SSL_connect(k->ssl) != 1) {
        long vr = SSL_get_verify_result(k->ssl);
        if (vr != X509_V_OK)
            kms_error_set(err, rc, "TLS handshake with %s:%u: %s", host, port,
                          X509_verify_cert_error_string(vr));
        else
            ssl_err(err, rc, "TLS handshake");
        goto fail;
    }
    *out = k;
    return 0;
fail:
    kmsctl_kmip_close(k);
    return rc;
}

void kmsctl_kmip_close(kmsctl_kmip_t *k)
{
    if (!k)
        return;
    if (k->ssl) {
        (void)SSL_shutdown(k->ssl);
        SSL_free(k->ssl);
    }
    SSL_CTX_free(k->ctx);
    if (k->fd >= 0)
        close(k->fd);
    free(k);
}

static int ssl_read_n(SSL *s, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t r = 0;
        ERR_clear_error();
        if (SSL_read_ex(s, p + got, n - got, &r) != 1)
            return KMS_ERR_IO;
        got += r;
    }
    return 0;
}

int kmsctl_kmip_call(kmsctl_kmip_t *k, kms_arena_t *a, uint32_t op, ttlv_item_t *payload,
                     kmsctl_kmip_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->message = "";
    ttlv_item_t *m = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *h = m ? ttlv_new_struct(a, m, KMIP_TAG_REQUEST_HEADER) : NULL;
    ttlv_item_t *pv = h ? ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION) : NULL;
    if (!pv || !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1) ||
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, 2) ||
        !ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, 1))
        return KMS_ERR_NOMEM;
    ttlv_item_t *bi = ttlv_new_struct(a, m, KMIP_TAG_BATCH_ITEM);
    if (!bi || !ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, op))
        return KMS_ERR_NOMEM;
    if (!payload)
        payload = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_PAYLOAD);
    if (!payload)
        return KMS_ERR_NOMEM;
    ttlv_append(bi, payload);
    kms_buf_t out;
    kms_buf_init(&out, 16u << 20);
    int rc = ttlv_encode(m, &out);
    if (rc == 0) {
        size_t w = 0;
        ERR_clear_error();
        if (SSL_write_ex(k->ssl, out.data, out.len, &w) != 1 || w != out.len)
            rc = KMS_ERR_IO;
    }
    kms_buf_dispose(&out);
    if (rc)
        return rc;
    uint8_t hdr[8];
    if (ssl_read_n(k->ssl, hdr, 8) != 0)
        return KMS_ERR_IO;
    size_t total = 0;
    rc = ttlv_frame_need(hdr, 8, KMIP_CLIENT_MAX_RESPONSE, &total);
    if (rc)
        return KMS_ERR_PROTO;
    uint8_t *buf = malloc(total);
    if (!buf)
        return KMS_ERR_NOMEM;
    memcpy(buf, hdr, 8);
    rc = ssl_read_n(k->ssl, buf + 8, total - 8);
    ttlv_item_t *root = NULL;
    kms_error_t terr;
    if (rc == 0 && ttlv_decode(buf, total, NULL, a, &root, &terr) != 0)
        rc = KMS_ERR_PROTO;
    /* The answer may hold key material (not for the operations kmsctl uses,
     * but never leave it lying around). */
    kms_wipe(buf, total);
    free(buf);
    if (rc)
        return rc;
    ttlv_item_t *rbi = root->tag == KMIP_TAG_RESPONSE_MESSAGE ? ttlv_find(root, KMIP_TAG_BATCH_ITEM) : NULL;
    ttlv_item_t *st = rbi ? ttlv_find(rbi, KMIP_TAG_RESULT_STATUS) : NULL;
    if (!st || st->type != TTLV_ENUMERATION)
        return KMS_ERR_PROTO;
    res->status = ttlv_u32(st);
    ttlv_item_t *rs = ttlv_find(rbi, KMIP_TAG_RESULT_REASON);
    if (rs && rs->type == TTLV_ENUMERATION)
        res->reason = ttlv_u32(rs);
    ttlv_item_t *msg = ttlv_find(rbi, KMIP_TAG_RESULT_MESSAGE);
    if (msg && msg->type == TTLV_TEXT_STRING)
        res->message = ttlv_text(msg);
    res->payload = ttlv_find(rbi, KMIP_TAG_RESPONSE_PAYLOAD);
    return 0;
}
