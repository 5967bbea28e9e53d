/*
 * replication/join.c: admitting a node into the cluster, on the inviter's
 * side (docs/cluster.md, "Forming a cluster").
 *
 * Invites: `kmsctl cluster invite` asks kmsd (admin socket) for one; it
 * gets a random id and a random 32-byte secret, and the store keeps
 * (SHA-256(secret), expiry, state) in meta "invite.<id>", never the
 * secret itself. The token (token.c) carries the secret to the operator.
 *
 * It deliberately does not talk to the joining node itself: the peer
 * links carry the JOIN_REQ and JOIN_RESP frames.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "replication/repl_int.h"

/* Store meta: "invite.<id>" -> "1 <sha256(secret) hex> <expires_ms> <state>",
 * state "open" or "used:<node id>". */
#define INVITE_META_PREFIX "invite."
#define INVITE_RECORD_VERSION 1

/* SHA-256 of p[0..n) as lower-case hex. */
static int sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[32];
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != sizeof md)
        return KMS_ERR_CRYPTO;
    kms_hex_encode(md, sizeof md, out);
    return 0;
}

/* SHA-256 of the DER of the CA certificate in `path`. */
static int ca_digest(const char *path, uint8_t out[32], kms_error_t *err)
{
    X509 *ca = NULL;
    unsigned int len = 0;
    int rc = certs_load_cert_pem(path, &ca);
    if (rc)
        return kms_error_set(err, KMS_ERR_CONFIG, "cannot read the cluster CA certificate %s: %s",
                             path, kms_strerror(rc));
    if (X509_digest(ca, EVP_sha256(), out, &len) != 1 || len != 32)
        rc = kms_error_set(err, KMS_ERR_CRYPTO, "cannot hash the cluster CA certificate");
    X509_free(ca);
    return rc;
}

int repl_invite_new(const repl_invite_options_t *o, kms_buf_t *token_out, char id_out[17],
                    int64_t *expires_out, kms_error_t *err)
{
    repl_token_t t;
    uint8_t idb[REPL_INVITE_ID_LEN / 2];
    char hash[65], rec[160], key[64];
    store_write_t *w = NULL;
    int rc;

    memset(&t, 0, sizeof t);
    if (!o || !o->store || !o->ca_cert || !token_out || o->ttl_ms <= 0)
        return kms_error_set(err, KMS_ERR_INVAL, "invite: invalid arguments");
    if (!o->cluster_id || !o->cluster_id[0] || strlen(o->cluster_id) >= sizeof t.cluster_id)
        return kms_error_set(err, KMS_ERR_CONFIG,
                             "this node has no cluster id (was it set up with kmsctl init "
                             "--peer-listen?)");
    if (o->n_addrs == 0 || o->n_addrs > REPL_TOKEN_ADDRS_MAX)
        return kms_error_set(err, KMS_ERR_INVAL, "invite: 1 to %d peer addresses",
                             REPL_TOKEN_ADDRS_MAX);
    kms_strlcpy(t.cluster_id, o->cluster_id, sizeof t.cluster_id);
    for (size_t i = 0; i < o->n_addrs; i++) {
        if (strlen(o->addrs[i]) >= sizeof t.addrs[0])
            return kms_error_set(err, KMS_ERR_INVAL, "invite: address too long");
        kms_strlcpy(t.addrs[i], o->addrs[i], sizeof t.addrs[0]);
    }
    t.n_addrs = o->n_addrs;
    if ((rc = ca_digest(o->ca_cert, t.ca_sha256, err)) != 0)
        return rc;
    if (!(t.secret = kms_secret_new(REPL_JOIN_SECRET_LEN)))
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    if (RAND_bytes(idb, sizeof idb) != 1 || RAND_bytes(t.secret->data, (int)t.secret->len) != 1 ||
        sha256_hex(t.secret->data, t.secret->len, hash) != 0) {
        rc = kms_error_set(err, KMS_ERR_CRYPTO, "no randomness");
        goto out;
    }
    kms_hex_encode(idb, sizeof idb, t.invite_id);
    t.expires_ms = kms_now_us() / 1000 + o->ttl_ms;
    snprintf(key, sizeof key, INVITE_META_PREFIX "%s", t.invite_id);
    snprintf(rec, sizeof rec, "%d %s %" PRId64 " open", INVITE_RECORD_VERSION, hash, t.expires_ms);
    if (!(w = store_write_new())) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = store_write_meta(w, key, rec, strlen(rec))) != 0 ||
        (rc = store_commit(o->store, w, NULL, 0)) != 0) {
        kms_error_set(err, rc, "cannot record the invite: %s", kms_strerror(rc));
        goto out;
    }
    if ((rc = repl_token_encode(&t, token_out, err)) != 0)
        goto out;
    if (id_out)
        memcpy(id_out, t.invite_id, sizeof t.invite_id);
    if (expires_out)
        *expires_out = t.expires_ms;
    kms_log(KMS_LOG_INFO, REPL_LOG, "invite %s made, valid until %" PRId64 " (Unix ms)",
            t.invite_id, t.expires_ms);
out:
    store_write_free(w);
    repl_token_dispose(&t);
    return rc;
}
