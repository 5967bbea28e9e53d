/*
 * admin/cluster.c: the admin socket's cluster commands, run in kmsd by
 * calling replication/.
 *
 * cluster.invite: a one-time join token (replication/join.c records the
 * invite and makes the token) for `kmsctl cluster invite`. The token is
 * returned in the response only: it never goes to the log or the audit
 * record (which name the invite id).
 *
 * It deliberately holds no cluster state: the store and the replication
 * module do.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "replication/repl.h"

#define INVITE_TTL_DEFAULT_MS (3600 * 1000)
#define INVITE_TTL_MIN_MS 1000
#define INVITE_TTL_MAX_MS (7LL * 24 * 3600 * 1000)
#define META_CLUSTER_ID "cluster_id"

/* The cluster id kmsctl init (or join) stored; "" when there is none. */
static int cluster_id(admin_req_t *r, store_reader_t *rd, char out[64])
{
    uint8_t *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    int rc = store_meta_get(rd, r->a, META_CLUSTER_ID, &v, &len);
    if (rc == KMS_ERR_NOTFOUND)
        return 0;
    if (rc == 0 && (len == 0 || len >= 64 || memchr(v, 0, len)))
        rc = KMS_ERR_PROTO;
    if (rc)
        return admin_refuse(r, rc, "cannot read the cluster id: %s", kms_strerror(rc));
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

/* "host:port" others reach this node's peer listener at: the listen
 * address, with this machine's name when it listens on every address. */
static int own_peer_addr(admin_req_t *r, char *out, size_t n)
{
    const char *l = r->opt->peer_listen;
    const char *colon = strrchr(l, ':');
    char host[256];
    if (!colon || colon == l)
        return admin_refuse(r, KMS_ERR_CONFIG, "replication.listen '%s' is not ADDR:PORT", l);
    size_t hl = (size_t)(colon - l);
    if (strncmp(l, "0.0.0.0", hl) == 0 || strncmp(l, "[::]", hl) == 0) {
        if (gethostname(host, sizeof host) != 0 || !host[0])
            return admin_refuse(r, KMS_ERR_CONFIG,
                                "replication.listen %s names no host and this machine has no "
                                "name: give --peer-addr HOST:PORT", l);
        host[sizeof host - 1] = '\0';
        snprintf(out, n, "%s%s", host, colon);
        return 0;
    }
    kms_strlcpy(out, l, n);
    return 0;
}

int admin_cluster_invite(admin_req_t *r, store_reader_t *rd)
{
    const admin_options_t *o = r->opt;
    const char *addrs[REPL_TOKEN_ADDRS_MAX];
    char own[300], cid[64], id[17] = "";
    size_t n_addrs = 0;
    int64_t ttl = INVITE_TTL_DEFAULT_MS, expires = 0;
    kms_buf_t token;
    kms_error_t err;
    int rc;

    if (!o->peer_listen || !o->peer_listen[0])
        return admin_refuse(r, KMS_ERR_STATE,
                            "this node is not a cluster node (no replication.listen; set it up "
                            "with kmsctl init --peer-listen)");
    if (!o->cluster_ca_key || !o->cluster_ca_key[0])
        return admin_refuse(r, KMS_ERR_STATE,
                            "this node cannot admit nodes: replication.ca_key is not set (invite "
                            "from the node that holds the cluster CA key)");
    if ((rc = cluster_id(r, rd, cid)) != 0)
        return rc;
    if (!cid[0])
        return admin_refuse(r, KMS_ERR_STATE, "this node has no cluster id (kmsctl init "
                                              "--peer-listen makes one)");
    const ttlv_item_t *t = ttlv_find(r->req, ADMIN_TAG_ARG_TTL_MS);
    if (t) {
        if (t->type != TTLV_LONG_INTEGER || t->v.i64 < INVITE_TTL_MIN_MS ||
            t->v.i64 > INVITE_TTL_MAX_MS)
            return admin_refuse(r, KMS_ERR_INVAL, "the invite's lifetime must be 1 s to 7 days");
        ttl = t->v.i64;
    }
    for (const ttlv_item_t *it = r->req->first; it; it = it->next) {
        if (it->tag != ADMIN_TAG_ARG_ADDR)
            continue;
        if (it->type != TTLV_TEXT_STRING || n_addrs == REPL_TOKEN_ADDRS_MAX ||
            it->v.bytes.len == 0 || it->v.bytes.len > 255 || !strchr(ttlv_text(it), ':'))
            return admin_refuse(r, KMS_ERR_INVAL, "peer addresses: 1 to %d HOST:PORT",
                                REPL_TOKEN_ADDRS_MAX);
        addrs[n_addrs++] = ttlv_text(it);
    }
    if (n_addrs == 0) {
        if ((rc = own_peer_addr(r, own, sizeof own)) != 0)
            return rc;
        addrs[n_addrs++] = own;
    }
    repl_invite_options_t io = {.store = o->store, .cluster_id = cid, .addrs = addrs,
                                .n_addrs = n_addrs, .ca_cert = o->cluster_ca, .ttl_ms = ttl};
    kms_buf_init(&token, 1 << 16);
    kms_error_clear(&err);
    rc = repl_invite_new(&io, &token, id, &expires, &err);
    if (rc) {
        kms_buf_dispose_wipe(&token);
        return admin_refuse(r, rc, "%s", kms_error_msg(&err));
    }
    snprintf(r->target_buf, sizeof r->target_buf, "invite %s", id);
    r->target = r->target_buf;
    ttlv_item_t *rec = admin_rec_new(r);
    rc = !rec || admin_field_text(r, rec, "invite", id) ||
                 admin_field_text(r, rec, "cluster_id", cid) ||
                 admin_field_text(r, rec, "peer_addr", addrs[0]) ||
                 admin_field_long(r, rec, "expires_ms", expires) ||
                 admin_field_text(r, rec, "token", (const char *)token.data)
             ? KMS_ERR_NOMEM
             : 0;
    kms_buf_dispose_wipe(&token);
    return rc;
}
