/*
 * server/tls.c: the OpenSSL server context and the peer's identity.
 *
 * Builds one SSL_CTX from the tls section of the configuration: TLS 1.2/1.3
 * only, forward-secret AEAD suites from tls.ciphers / tls.ciphersuites,
 * compression and renegotiation off, mutual TLS against tls.client_ca,
 * session cache + tickets per tls.session_resumption. The context in use is
 * swapped atomically on SIGHUP; every SSL holds its own reference (taken by
 * SSL_new), so connections opened before a reload keep the old context.
 *
 * It deliberately does no socket I/O (conn.c drives OpenSSL through memory
 * BIOs) and does not decide who may do what (kmip/ does).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "server/server_int.h"

/* Sessions kept for resumption. Each holds the parsed client certificate,
 * about 20 kB with OpenSSL 3.0 (measured: 4096 cached sessions kept 80 MB
 * after their connections closed); the oldest are dropped beyond this and
 * their clients make a full handshake. A KMS has tens to hundreds of
 * clients (vCenter keeps a few connections), not thousands. */
#define SRV_TLS_SESSION_CACHE 1024

/* Session id context: resumption is tied to this service. */
static const unsigned char SID_CTX[] = "kmsd-kmip";

/* Record `what` (and `path`, and OpenSSL's last reason) in err; returns rc. */
static int ssl_err(kms_error_t *err, int rc, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char reason[200] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    kms_error_set(err, rc, "%s%s%s%s%s", what, path ? " " : "", path ? path : "", e ? ": " : "",
                  reason);
    ERR_clear_error();
    return rc;
}

/* Warn about TLS 1.2 suites in the list that are not AEAD (CBC with
 * HMAC: padding oracles, Lucky13): allowed when configured, never
 * silently. */
static void warn_weak_suites(SSL_CTX *ctx)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    char names[512] = "";
    size_t off = 0;
    for (int i = 0; sk && i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        if (SSL_CIPHER_is_aead(ci) || off >= sizeof names)
            continue;
        int n = snprintf(names + off, sizeof names - off, "%s%s", off ? " " : "",
                         SSL_CIPHER_get_name(ci));
        off += n > 0 ? (size_t)n : 0;
    }
    if (off)
        kms_log(KMS_LOG_WARN, SRV_LOG,
                "tls.ciphers allows suites without AEAD (CBC): %s; keep to ECDHE with "
                "AES-GCM or ChaCha20-Poly1305",
                names);
}

/* Warn when the private key file can be read by others than its owner. */
static void warn_key_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        kms_log(KMS_LOG_WARN, SRV_LOG,
                "tls.key %s is mode %04o: readable beyond its owner; chmod 600 %s", path,
                (unsigned)(st.st_mode & 07777), path);
}

int srv_tls_ctx_new(const conf_t *c, SSL_CTX **out, kms_error_t *err)
{
    int rc = KMS_ERR_CONFIG;
    SSL_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    const struct conf_tls *t = &c->tls;

    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        rc = ssl_err(err, KMS_ERR_NOMEM, "SSL_CTX_new failed", NULL);
        goto out;
    }
    int minv = t->min_version >= TLS1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, minv) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        ssl_err(err, rc, "tls.min_version", NULL);
        goto out;
    }
    /* CLEANSE_PLAINTEXT: the record buffers released between reads
     * (RELEASE_BUFFERS below) held decrypted requests and responses, a Get's
     * key bytes among them; OpenSSL wipes them before freeing. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_CLEANSE_PLAINTEXT);
    /* Small idle footprint: OpenSSL frees its record buffers between reads. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (t->ciphers[0] && !SSL_CTX_set_cipher_list(ctx, t->ciphers)) {
        ssl_err(err, rc, "tls.ciphers: no usable cipher in", t->ciphers);
        goto out;
    }
    if (t->ciphersuites[0] && !SSL_CTX_set_ciphersuites(ctx, t->ciphersuites)) {
        ssl_err(err, rc, "tls.ciphersuites: invalid list", t->ciphersuites);
        goto out;
    }
    warn_weak_suites(ctx);
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
        ssl_err(err, rc, "tls.cert: cannot load", t->cert);
        goto out;
    }
    if (certs_load_key_pem(t->key, &pkey) != 0) {
        ssl_err(err, rc, "tls.key: cannot load", t->key);
        goto out;
    }
    warn_key_mode(t->key);
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, rc, "tls.key does not match tls.cert", t->key);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(ctx, t->client_ca, NULL) != 1) {
        ssl_err(err, rc, "tls.client_ca: cannot load", t->client_ca);
        goto out;
    }
    /* Tell clients which CAs we accept (helps clients with several certs). */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->client_ca);
    if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
    ERR_clear_error();

    int mode = SSL_VERIFY_PEER;
    if (t->client_auth == CONF_CLIENT_AUTH_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);

    SSL_CTX_set_session_id_context(ctx, SID_CTX, sizeof SID_CTX - 1);
    if (t->session_resumption) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, SRV_TLS_SESSION_CACHE);
        SSL_CTX_set_timeout(ctx, 3600);
        /* Stateful resumption: TLS 1.3 tickets that only name a session in
         * this process's cache, TLS 1.2 session ids (SSL_OP_NO_TICKET).
         * A stateless ticket costs every full handshake a serialisation
         * of the session and an encryption, and every resumption a
         * decryption and a re-parse of the client certificate (OpenSSL
         * 3.0's decoders are the most expensive part of a handshake); a
         * cached session is a hash look-up. Tickets could not be shared
         * between kmsd processes anyway (per-process ticket keys). One
         * TLS 1.3 ticket per handshake (OpenSSL sends two by default). */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return rc;
}

SSL *srv_tls_new_ssl(srv_t *srv)
{
    SSL *ssl;
    pthread_mutex_lock(&srv->tls_lock);
    ssl = SSL_new(srv->tls_ctx);
    pthread_mutex_unlock(&srv->tls_lock);
    return ssl;
}

void srv_tls_swap(srv_t *srv, SSL_CTX *ctx)
{
    SSL_CTX *old;
    pthread_mutex_lock(&srv->tls_lock);
    old = srv->tls_ctx;
    srv->tls_ctx = ctx;
    pthread_mutex_unlock(&srv->tls_lock);
    SSL_CTX_free(old); /* drops our reference; open SSLs hold their own */
}

bool srv_tls_peer(SSL *ssl, char fp[65], char *cn, size_t cnlen)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    fp[0] = '\0';
    if (cnlen)
        cn[0] = '\0';
    if (!cert)
        return false;
    if (certs_fingerprint_sha256(cert, fp) != 0)
        fp[0] = '\0';
    if (certs_subject_cn(cert, cn, cnlen) != 0 && cnlen)
        cn[0] = '\0';
    ERR_clear_error();
    return fp[0] != '\0';
}
