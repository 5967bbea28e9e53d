/*
 * replication/tls.c: the peer links' TLS contexts and the peer check.
 *
 * TLS 1.3 only, both directions mutual: each node presents its node
 * certificate (issued by the cluster CA, extended key usage with the kmsd
 * peer role, CN = node id) and verifies the other's against the cluster CA
 * alone. The accepting side also lets a connection without a client
 * certificate finish the handshake, because a joining node has none yet:
 * such a connection may only send JOIN_REQ (link.c). A certificate that
 * does not chain to the CA fails the handshake; one that chains but lacks
 * the peer role (a KMIP client or server certificate) is refused right
 * after it. Renegotiation, compression and session tickets are off (links
 * are long-lived; a reconnect makes a full handshake).
 *
 * It does no socket I/O: conn.c drives OpenSSL through memory BIOs.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "replication/repl_int.h"

static int ctx_fail(kms_error_t *err, int code, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char reason[200] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return kms_error_set(err, code, "replication: %s %s%s%s", what, path ? path : "", e ? ": " : "",
                         reason);
}

static int ctx_new(const repl_t *r, bool server, SSL_CTX **out, kms_error_t *err)
{
    const repl_options_t *o = &r->opt;
    EVP_PKEY *pkey = NULL;
    int rc = KMS_ERR_CONFIG;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    *out = NULL;
    if (!ctx)
        return ctx_fail(err, KMS_ERR_NOMEM, "SSL_CTX_new failed", NULL);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        rc = ctx_fail(err, KMS_ERR_CONFIG, "TLS 1.3 unavailable", NULL);
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server)
        SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
        rc = ctx_fail(err, KMS_ERR_CONFIG, "cannot load the node certificate", o->cert);
        goto out;
    }
    if (certs_load_key_pem(o->key, &pkey) != 0) {
        rc = ctx_fail(err, KMS_ERR_CONFIG, "cannot load the node key", o->key);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        rc = ctx_fail(err, KMS_ERR_CONFIG, "the node key does not match the certificate", o->key);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
        rc = ctx_fail(err, KMS_ERR_CONFIG, "cannot load the cluster CA", o->ca);
        goto out;
    }
    /* Only the cluster CA: no system trust store, no chain deeper than
     * CA -> node. The server side accepts a connection without a client
     * certificate (a joining node); one that is presented must verify. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 2);
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return rc;
}

int repl_tls_init(repl_t *r, kms_error_t *err)
{
    X509 *own = NULL;
    char cn[64] = "";
    int rc = ctx_new(r, true, &r->sctx, err);
    if (rc == 0)
        rc = ctx_new(r, false, &r->cctx, err);
    if (rc)
        return rc;
    /* Our own certificate must say who we are and carry the peer role,
     * or every peer would refuse us: say so at start instead. */
    own = SSL_CTX_get0_certificate(r->sctx);
    if (!own || !certs_has_peer_role(own))
        return kms_error_set(err, KMS_ERR_CONFIG,
                             "replication.cert %s: no kmsd peer role in its extended key usage "
                             "(issue node certificates with kmsctl)", r->opt.cert);
    if (certs_subject_cn(own, cn, sizeof cn) != 0 || strcmp(cn, r->opt.node_id) != 0)
        return kms_error_set(err, KMS_ERR_CONFIG,
                             "replication.cert %s: subject CN '%s' is not this node's id '%s'",
                             r->opt.cert, cn, r->opt.node_id);
    return 0;
}

void repl_tls_free(repl_t *r)
{
    SSL_CTX_free(r->sctx);
    SSL_CTX_free(r->cctx);
    r->sctx = r->cctx = NULL;
}

int repl_tls_check_peer(repl_conn_t *c, char *why, size_t whylen)
{
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    c->has_cert = false;
    c->cn[0] = c->fp[0] = '\0';
    if (!cert) {
        if (c->outbound) {
            snprintf(why, whylen, "the peer presented no certificate");
            return KMS_ERR_PERM;
        }
        return 0; /* a joining node: JOIN_REQ only */
    }
    if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
        snprintf(why, whylen, "certificate not issued by the cluster CA");
        return KMS_ERR_PERM;
    }
    if (certs_fingerprint_sha256(cert, c->fp) != 0 ||
        certs_subject_cn(cert, c->cn, sizeof c->cn) != 0) {
        snprintf(why, whylen, "certificate without a usable subject CN");
        ERR_clear_error();
        return KMS_ERR_PERM;
    }
    if (!certs_has_peer_role(cert)) {
        snprintf(why, whylen, "certificate '%s' has no kmsd peer role (a KMIP certificate?)",
                 c->cn);
        return KMS_ERR_PERM;
    }
    c->has_cert = true;
    return 0;
}
