/*
 * replication/join.c: admitting a node into the cluster, on the inviter's
 * side (docs/cluster.md, "Forming a cluster").
 *
 * Invites: `kmsctl cluster invite` asks kmsd (admin socket) for one; it
 * gets a random id and a random 32-byte secret, and the store keeps
 * (SHA-256(secret), expiry, state) in meta "invite.<id>", never the
 * secret itself. The token (token.c) carries the secret to the operator.
 *
 * Admitting (repl_join_answer, on a worker thread): a JOIN_REQ that
 * arrived on the peer listener without a client certificate is checked
 * against its invite, the node's CSRs are signed with the cluster CA key,
 * the answer is prepared, and only then is the invite marked used and the
 * node added to the replicated node list (a refusal for a file or key the
 * inviter cannot read leaves the invite open); the answer is JOIN_RESP
 * with the certificates, the node list,
 * every data-store key and, when this node has one, KMIP Certify's issuing
 * CA with its key (keys in plaintext: the link's TLS is what protects
 * them, as for the data-store keys; they are held in kms_secret_t, wiped
 * with the frame, never logged), or ERROR saying why not.
 *
 * It deliberately does no socket I/O: the link code (conn.c, link.c)
 * frames the connection and hands the JOIN_REQ here.
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

bool repl_node_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > REPL_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

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

/* ============================================================ admitting */
/*
 * A JOIN_REQ is answered by repl_join_answer() on a worker thread (it
 * reads and writes the store, signs with the CA key and exports the
 * data-store keys, which may be a PKCS#11 call): the invite is checked
 * (known, the secret's SHA-256 matches in constant time, open, not
 * expired) and the node id must be new; then the CSRs are signed, and
 * only when both are good is the invite marked used and the node added
 * to the replicated node list, in one commit. A refusal is an ERROR frame
 * whose message the joining operator sees, and a WARN line here.
 *
 * Checking and consuming an invite must not interleave between two
 * joins: one mutex for the whole process serialises them (joins are
 * rare; a second one waits a moment).
 */
static pthread_mutex_t g_join_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct invite_rec {
    char hash[65];
    int64_t expires_ms;
    char state[80];              /* "open" or "used:<node id>" */
} invite_rec_t;

static int invite_read(store_reader_t *rd, const char *id, invite_rec_t *out)
{
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    char key[64], text[200];
    int version = 0, rc;
    long long exp = 0;

    if (!a)
        return KMS_ERR_NOMEM;
    snprintf(key, sizeof key, INVITE_META_PREFIX "%s", id);
    rc = store_meta_get(rd, a, key, &v, &len);
    if (rc == 0 && (len == 0 || len >= sizeof text))
        rc = KMS_ERR_PROTO;
    if (rc == 0) {
        memcpy(text, v, len);
        text[len] = '\0';
        if (sscanf(text, "%d %64s %lld %79s", &version, out->hash, &exp, out->state) != 4 ||
            version != INVITE_RECORD_VERSION || strlen(out->hash) != 64)
            rc = KMS_ERR_PROTO;
        out->expires_ms = exp;
    }
    kms_arena_free(a);
    return rc;
}

/* The invite is known, the secret is its own, it is open and current.
 * KMS_ERR_PERM with why otherwise. */
static int invite_check(store_reader_t *rd, const repl_frame_t *req, kms_error_t *why)
{
    const char *id = req->u.join_req.invite_id;
    const kms_secret_t *sec = req->u.join_req.secret;
    invite_rec_t rec;
    char hash[65];

    int rc = invite_read(rd, id, &rec);
    if (rc == KMS_ERR_NOTFOUND)
        return kms_error_set(why, KMS_ERR_PERM, "unknown invite %s (made on another node?)", id);
    if (rc)
        return kms_error_set(why, KMS_ERR_INTERNAL, "cannot read invite %s: %s", id,
                             kms_strerror(rc));
    if (!sec || sha256_hex(sec->data, sec->len, hash) != 0 ||
        CRYPTO_memcmp(hash, rec.hash, 64) != 0)
        return kms_error_set(why, KMS_ERR_PERM, "wrong secret for invite %s", id);
    if (strncmp(rec.state, "used:", 5) == 0)
        return kms_error_set(why, KMS_ERR_PERM, "invite %s was already used (by node %s)", id,
                             rec.state + 5);
    if (strcmp(rec.state, "open") != 0)
        return kms_error_set(why, KMS_ERR_PERM, "invite %s is %s", id, rec.state);
    if (kms_now_us() / 1000 > rec.expires_ms)
        return kms_error_set(why, KMS_ERR_PERM,
                             "invite %s expired %lld s ago (make a new one: kmsctl cluster invite)",
                             id, (long long)(kms_now_us() / 1000 - rec.expires_ms) / 1000);
    return 0;
}

/* The certificates of the joining node, signed with the cluster CA. */
typedef struct issued {
    X509 *node, *server;
    char node_fp[65];
} issued_t;

static int sign_csrs(const repl_options_t *o, const repl_frame_t *req, issued_t *out,
                     kms_error_t *why)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *ncsr = NULL, *scsr = NULL;
    kms_error_t e;
    int rc;

    kms_error_clear(&e);
    if (!o->ca_key || !o->ca_key[0])
        return kms_error_set(why, KMS_ERR_STATE,
                             "this node holds no cluster CA key (replication.ca_key)");
    if ((rc = certs_load_ca(o->ca, o->ca_key, &ca, &ca_key, &e)) != 0) {
        kms_log(KMS_LOG_ERROR, REPL_LOG, "join: cannot load the cluster CA: %s", kms_error_msg(&e));
        return kms_error_set(why, KMS_ERR_INTERNAL, "the inviter cannot use its CA key");
    }
    if (certs_csr_parse(req->u.join_req.node_csr.p, req->u.join_req.node_csr.len, &ncsr) != 0 ||
        certs_csr_parse(req->u.join_req.server_csr.p, req->u.join_req.server_csr.len, &scsr) != 0) {
        rc = kms_error_set(why, KMS_ERR_PROTO, "a CSR of the request is not readable");
        goto out;
    }
    if ((rc = certs_sign_node_csr(ca, ca_key, ncsr, req->u.join_req.node_id, 0, &out->node, &e)) != 0) {
        rc = kms_error_set(why, rc, "node CSR refused: %s", kms_error_msg(&e));
        goto out;
    }
    if ((rc = certs_sign_server_csr(ca, ca_key, scsr, 0, &out->server, &e)) != 0) {
        rc = kms_error_set(why, rc, "server CSR refused: %s", kms_error_msg(&e));
        goto out;
    }
    rc = certs_fingerprint_sha256(out->node, out->node_fp);
out:
    X509_REQ_free(ncsr);
    X509_REQ_free(scsr);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

/* Mark the invite used and add the node, in one commit. */
static int admit(const repl_options_t *o, const repl_frame_t *req, const issued_t *is,
                 store_reader_t *rd, kms_error_t *why)
{
    invite_rec_t rec;
    char key[64], text[200];
    store_node_t n;
    store_write_t *w = NULL;
    int rc = invite_read(rd, req->u.join_req.invite_id, &rec);
    if (rc)
        return kms_error_set(why, KMS_ERR_INTERNAL, "cannot read the invite");
    snprintf(key, sizeof key, INVITE_META_PREFIX "%s", req->u.join_req.invite_id);
    snprintf(text, sizeof text, "%d %s %" PRId64 " used:%s", INVITE_RECORD_VERSION, rec.hash,
             rec.expires_ms, req->u.join_req.node_id);
    memset(&n, 0, sizeof n);
    kms_strlcpy(n.node_id, req->u.join_req.node_id, sizeof n.node_id);
    kms_strlcpy(n.peer_addr, req->u.join_req.peer_addr, sizeof n.peer_addr);
    kms_strlcpy(n.kmip_addr, req->u.join_req.kmip_addr, sizeof n.kmip_addr);
    kms_strlcpy(n.cert_sha256, is->node_fp, sizeof n.cert_sha256);
    n.added_hlc = (kms_now_us() / 1000) << 16;
    if (!(w = store_write_new()))
        return kms_error_set(why, KMS_ERR_NOMEM, "out of memory");
    if ((rc = store_write_meta(w, key, text, strlen(text))) != 0 ||
        (rc = store_write_node(w, &n)) != 0 || (rc = store_commit(o->store, w, NULL, 0)) != 0)
        kms_error_set(why, KMS_ERR_INTERNAL, "cannot record the new node: %s", kms_strerror(rc));
    store_write_free(w);
    return rc;
}

/* A file's bytes into the frame's arena (certificates: small). */
static int file_bytes(kms_arena_t *a, const char *path, repl_bytes_t *out)
{
    FILE *f = path && path[0] ? fopen(path, "rb") : NULL;
    uint8_t buf[64 * 1024];
    size_t n;
    out->p = NULL;
    out->len = 0;
    if (!f)
        return path && path[0] ? KMS_ERR_IO : 0;
    n = fread(buf, 1, sizeof buf, f);
    int rc = ferror(f) || !feof(f) ? KMS_ERR_IO : 0;
    fclose(f);
    if (rc == 0 && n && !(out->p = kms_arena_memdup(a, buf, n)))
        rc = KMS_ERR_NOMEM;
    out->len = rc ? 0 : n;
    return rc;
}

static int cert_bytes(kms_arena_t *a, X509 *x, repl_bytes_t *out)
{
    kms_buf_t b;
    kms_buf_init(&b, 64 * 1024);
    int rc = certs_cert_pem(x, &b);
    if (rc == 0 && !(out->p = kms_arena_memdup(a, b.data, b.len)))
        rc = KMS_ERR_NOMEM;
    out->len = rc ? 0 : b.len;
    kms_buf_dispose(&b);
    return rc;
}

/* The issuing CA's key file as a secret (wiped when freed): at most 64 KiB
 * of PEM. */
static int secret_file(const char *path, kms_secret_t **out)
{
    uint8_t buf[64 * 1024];
    FILE *f = fopen(path, "rb");
    size_t n;
    int rc;

    *out = NULL;
    if (!f)
        return KMS_ERR_IO;
    n = fread(buf, 1, sizeof buf, f);
    rc = ferror(f) || !feof(f) || n == 0 ? KMS_ERR_IO : 0;
    fclose(f);
    if (rc == 0 && !(*out = kms_secret_dup(buf, n)))
        rc = KMS_ERR_NOMEM;
    kms_wipe(buf, n);
    return rc;
}

/* KMIP Certify's issuing CA, so that every node answers Certify alike;
 * nothing when this node has none. */
static int certify_ca(const repl_options_t *o, repl_frame_t *f, kms_error_t *why)
{
    int rc;
    if (!o->certify_ca || !o->certify_ca[0] || !o->certify_ca_key || !o->certify_ca_key[0])
        return 0;
    if ((rc = file_bytes(f->arena, o->certify_ca, &f->u.join_resp.certify_ca)) != 0 ||
        (rc = secret_file(o->certify_ca_key, &f->u.join_resp.certify_ca_key)) != 0 ||
        f->u.join_resp.certify_ca.len == 0) {
        kms_log(KMS_LOG_ERROR, REPL_LOG, "join: cannot read the issuing CA %s / %s: %s",
                o->certify_ca, o->certify_ca_key, kms_strerror(rc ? rc : KMS_ERR_IO));
        return kms_error_set(why, KMS_ERR_INTERNAL, "the inviter cannot read its issuing CA "
                                                    "(certify.ca)");
    }
    return 0;
}

/* A row's change identity; rows written before replication have none:
 * they are this node's, at the beginning of time. */
static void entity_change(repl_entity_t *e, const store_change_id_t *c, const char *self,
                          kms_arena_t *a)
{
    bool none = c->origin[0] == '\0';
    e->origin = kms_arena_strdup(a, none ? self : c->origin);
    e->origin_seq = none ? 0 : c->origin_seq;
    e->hlc = none ? 1 : c->hlc;
}

/* The settings a joining node copies into its replication section, as
 * kmsd.yaml writes them. */
static int cluster_settings(const repl_options_t *o, repl_frame_t *f, kms_error_t *why)
{
    static const char *const names[] = {"sync_acks", "sync_timeout_ms", "on_sync_timeout",
                                        "max_clock_skew", "max_lag", "max_frame"};
    char v[KMS_ARRAY_SIZE(names)][32];
    repl_setting_t *s = kms_arena_alloc(f->arena, KMS_ARRAY_SIZE(names) * sizeof *s);
    if (!s)
        return kms_error_set(why, KMS_ERR_NOMEM, "out of memory");
    snprintf(v[0], sizeof v[0], "%u", o->sync_acks);
    snprintf(v[1], sizeof v[1], "%u", o->sync_timeout_ms ? o->sync_timeout_ms : 2000);
    snprintf(v[2], sizeof v[2], "%s", o->sync_degrade ? "degrade" : "fail");
    snprintf(v[3], sizeof v[3], "%" PRIu64 "ms", o->max_clock_skew_ms ? o->max_clock_skew_ms : 5000);
    snprintf(v[4], sizeof v[4], "%" PRIu64 "ms",
             o->max_lag_ms ? o->max_lag_ms : (uint64_t)24 * 3600 * 1000);
    snprintf(v[5], sizeof v[5], "%zuB", o->max_frame ? o->max_frame : REPL_MAX_FRAME_DEFAULT);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(names); i++) {
        s[i].name = names[i];
        if (!(s[i].value = kms_arena_strdup(f->arena, v[i])))
            return kms_error_set(why, KMS_ERR_NOMEM, "out of memory");
    }
    f->u.join_resp.settings = s;
    f->u.join_resp.n_settings = KMS_ARRAY_SIZE(names);
    return 0;
}

/* JOIN_RESP without its node list: certificates, every data-store key
 * (the frame owns the exported secrets and wipes them when freed), the
 * cluster settings, the issuing CA. Everything that can fail for want of
 * a file or a key is here, before the node is admitted: a refusal then
 * leaves the invite open for another try. */
static int build_resp(const repl_options_t *o, store_reader_t *rd, const issued_t *is,
                      repl_frame_t *f, kms_error_t *why)
{
    kms_arena_t *a = f->arena;
    store_dsk_t *dsks = NULL;
    size_t nd = 0;
    uint32_t current = 0;
    int rc;

    f->u.join_resp.cluster_id = o->cluster_id;
    if ((rc = file_bytes(a, o->ca, &f->u.join_resp.ca_cert)) != 0 ||
        (rc = file_bytes(a, o->client_ca, &f->u.join_resp.client_ca)) != 0 ||
        (rc = cert_bytes(a, is->node, &f->u.join_resp.node_cert)) != 0 ||
        (rc = cert_bytes(a, is->server, &f->u.join_resp.server_cert)) != 0)
        return kms_error_set(why, KMS_ERR_INTERNAL, "cannot read the CA certificates: %s",
                             kms_strerror(rc));
    if ((rc = store_list_dsks(rd, a, &dsks, &nd)) != 0 ||
        (rc = store_dsk_current(rd, &current, NULL)) != 0)
        return kms_error_set(why, KMS_ERR_INTERNAL, "cannot read the cluster state: %s",
                             kms_strerror(rc));
    repl_entity_t *dv = nd ? kms_arena_alloc(a, nd * sizeof *dv) : NULL;
    if (nd && !dv)
        return kms_error_set(why, KMS_ERR_NOMEM, "out of memory");
    f->owns_secrets_ = true; /* the DSKs below are ours to wipe with the frame */
    f->u.join_resp.dsks = dv;
    for (size_t i = 0; i < nd; i++) {
        repl_entity_t *e = &dv[i];
        char key[16];
        e->kind = REPL_KIND_DSK;
        snprintf(key, sizeof key, "%" PRIu32, dsks[i].id);
        e->key = kms_arena_strdup(a, key);
        entity_change(e, &dsks[i].change, o->node_id, a);
        e->dsk_id = dsks[i].id;
        e->dsk_current = dsks[i].id == current;
        if ((rc = hsm_keyring_export(o->keyring, dsks[i].id, &e->dsk)) != 0)
            return kms_error_set(why, KMS_ERR_INTERNAL, "cannot export data-store key %" PRIu32
                                 ": %s", dsks[i].id, kms_strerror(rc));
        f->u.join_resp.n_dsks = i + 1;
    }
    f->u.join_resp.current_dsk = current;
    if ((rc = cluster_settings(o, f, why)) != 0)
        return rc;
    return certify_ca(o, f, why);
}

/* The node list, read once the new node is in it. */
static int add_nodes(const repl_options_t *o, store_reader_t *rd, repl_frame_t *f,
                     kms_error_t *why)
{
    kms_arena_t *a = f->arena;
    store_node_t *nodes = NULL;
    size_t nn = 0;
    int rc = store_list_nodes(rd, a, &nodes, &nn);
    if (rc != 0)
        return kms_error_set(why, KMS_ERR_INTERNAL, "cannot read the cluster state: %s",
                             kms_strerror(rc));
    repl_entity_t *ev = nn ? kms_arena_alloc(a, nn * sizeof *ev) : NULL;
    if (nn && !ev)
        return kms_error_set(why, KMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nn; i++) {
        repl_entity_t *e = &ev[i];
        e->kind = REPL_KIND_NODE;
        e->key = kms_arena_strdup(a, nodes[i].node_id);
        entity_change(e, &nodes[i].change, o->node_id, a);
        kms_strlcpy(e->node.node_id, nodes[i].node_id, sizeof e->node.node_id);
        kms_strlcpy(e->node.peer_addr, nodes[i].peer_addr, sizeof e->node.peer_addr);
        kms_strlcpy(e->node.kmip_addr, nodes[i].kmip_addr, sizeof e->node.kmip_addr);
        kms_strlcpy(e->node.cert_sha256, nodes[i].cert_sha256, sizeof e->node.cert_sha256);
        e->node.added_hlc = nodes[i].added_hlc;
        e->node.removed = nodes[i].removed;
    }
    f->u.join_resp.nodes = ev;
    f->u.join_resp.n_nodes = nn;
    return 0;
}

int repl_join_answer(const repl_options_t *o, const char *remote, const repl_frame_t *req,
                     repl_frame_t **resp_out)
{
    store_reader_t *rd = NULL;
    repl_frame_t *f = NULL;
    issued_t is = {NULL, NULL, ""};
    kms_error_t why;
    const char *node = req->u.join_req.node_id;
    int rc;

    *resp_out = NULL;
    kms_error_clear(&why);
    pthread_mutex_lock(&g_join_mu);
    if (!repl_node_id_ok(node) || !strchr(req->u.join_req.peer_addr, ':')) {
        rc = kms_error_set(&why, KMS_ERR_INVAL, "a node id of 1-63 letters, digits, '-', '_' "
                                                "or '.' and a peer address HOST:PORT are needed");
        goto out;
    }
    if (!o->keyring || !o->cluster_id[0]) {
        rc = kms_error_set(&why, KMS_ERR_STATE, "this node cannot admit nodes");
        goto out;
    }
    if ((rc = store_reader_new(o->store, &rd)) != 0) {
        kms_error_set(&why, KMS_ERR_INTERNAL, "store unavailable");
        goto out;
    }
    if ((rc = invite_check(rd, req, &why)) != 0)
        goto out;
    store_node_t existing;
    if (strcmp(node, o->node_id) == 0 || store_node_get(rd, node, &existing) == 0) {
        rc = kms_error_set(&why, KMS_ERR_EXISTS,
                           "node id %s is already a cluster member%s; join with another --node-id",
                           node, strcmp(node, o->node_id) != 0 && existing.removed
                                     ? " (removed: its id is not reused)" : "");
        goto out;
    }
    if ((rc = sign_csrs(o, req, &is, &why)) != 0)
        goto out;
    if (!(f = repl_frame_new(REPL_FRAME_JOIN_RESP))) {
        rc = kms_error_set(&why, KMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Admitted only once the answer is ready but for the node list, which
     * must hold the new node. */
    if ((rc = build_resp(o, rd, &is, f, &why)) != 0 || (rc = admit(o, req, &is, rd, &why)) != 0)
        goto out;
    rc = add_nodes(o, rd, f, &why);
out:
    pthread_mutex_unlock(&g_join_mu);
    store_reader_free(rd);
    X509_free(is.node);
    X509_free(is.server);
    if (rc == 0) {
        kms_log(KMS_LOG_INFO, REPL_LOG, "join: node %s (%s, peer %s) admitted with invite %s",
                node, remote, req->u.join_req.peer_addr, req->u.join_req.invite_id);
        *resp_out = f;
        return 0;
    }
    repl_frame_free(f);
    kms_log(KMS_LOG_WARN, REPL_LOG, "join refused for node '%s' from %s: %s", node, remote,
            kms_error_msg(&why));
    if (!(f = repl_frame_new(REPL_FRAME_ERROR)))
        return KMS_ERR_NOMEM;
    f->u.error.code = rc == KMS_ERR_INTERNAL || rc == KMS_ERR_NOMEM ? REPL_ERROR_INTERNAL
                                                                     : REPL_ERROR_DENIED;
    f->u.error.message = kms_arena_strdup(f->arena, kms_error_msg(&why));
    *resp_out = f;
    return f->u.error.message ? 0 : KMS_ERR_NOMEM;
}

/* ------------------------------------------------- on the peer listener */
/* A connection without a client certificate may send one JOIN_REQ (link.c
 * hands it here): it is answered on libuv's threadpool, then the
 * connection is closed. Nothing else is read from it meanwhile. */
typedef struct join_work {
    uv_work_t work;
    repl_t *r;
    repl_conn_t *c;              /* NULL once the connection closed */
    repl_frame_t *req;
    repl_frame_t *resp;
    int rc;
    char remote[64];
} join_work_t;

static void join_run(uv_work_t *wk)
{
    join_work_t *x = wk->data;
    x->rc = repl_join_answer(&x->r->opt, x->remote, x->req, &x->resp);
}

static void join_done(uv_work_t *wk, int status)
{
    join_work_t *x = wk->data;
    repl_conn_t *c = x->c;
    if (c && c->joining == x) {
        c->joining = NULL;
        c->busy = false;
        if (status || x->rc || !x->resp) {
            repl_conn_fail(c, REPL_ERROR_INTERNAL, "cannot answer the join request");
        } else if (repl_conn_send(c, x->resp) == 0) {
            repl_conn_close(c, x->resp->type == REPL_FRAME_JOIN_RESP ? "node admitted"
                                                                       : "join refused");
        }
    }
    if (x->resp && x->resp->type == REPL_FRAME_JOIN_RESP && !atomic_load(&x->r->stopping)) {
        /* The node list has the new node: push to it from now on. */
        repl_load_nodes(x->r);
    }
    repl_frame_free(x->req);  /* wipes the secret */
    repl_frame_free(x->resp); /* wipes the data-store keys */
    free(x);
}

void repl_join_frame(repl_conn_t *c, repl_frame_t *f)
{
    join_work_t *x = NULL;
    if (c->joining || !(x = calloc(1, sizeof *x))) {
        repl_frame_free(f);
        repl_conn_fail(c, REPL_ERROR_PROTO, c->joining ? "one JOIN_REQ per connection"
                                                       : "out of memory");
        return;
    }
    x->r = c->r;
    x->c = c;
    x->req = f;
    x->work.data = x;
    kms_strlcpy(x->remote, c->addr, sizeof x->remote);
    c->joining = x;
    c->busy = true; /* read nothing more from it */
    if (uv_queue_work(&c->r->loop, &x->work, join_run, join_done) != 0) {
        c->joining = NULL;
        c->busy = false;
        repl_frame_free(f);
        free(x);
        repl_conn_fail(c, REPL_ERROR_INTERNAL, "cannot queue work");
    }
}

void repl_join_link_closed(repl_conn_t *c)
{
    /* The work item finishes on its own and finds no connection. */
    if (c->joining) {
        ((join_work_t *)c->joining)->c = NULL;
        c->joining = NULL;
    }
}
