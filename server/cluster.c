/*
 * server/cluster.c: kmsd's replication module (replication/), started
 * when replication.listen is set: its options from the configuration and
 * the store (node id, the cluster id `kmsctl init` / `cluster join`
 * recorded), started after the store and the keyring are open and before
 * the admin socket (whose cluster commands use it), stopped after the
 * loops and before the store closes. server/ready.c gates the KMIP
 * listener on repl_ready, and server/conn.c waits for peer
 * acknowledgements (repl_wait) when replication.sync_acks is set.
 */
#include <stdio.h>
#include <string.h>

#include "replication/repl.h"
#include "server/server_int.h"

#define META_CLUSTER_ID "cluster_id"

/* The cluster id from store meta; KMS_ERR_NOTFOUND when there is none. */
static int cluster_id(store_t *s, char out[64])
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    int rc = a ? store_reader_new(s, &rd) : KMS_ERR_NOMEM;
    if (rc == 0)
        rc = store_meta_get(rd, a, META_CLUSTER_ID, &v, &len);
    if (rc == 0 && (len == 0 || len >= 64 || memchr(v, 0, len)))
        rc = KMS_ERR_PROTO;
    if (rc == 0) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
    store_reader_free(rd);
    kms_arena_free(a);
    return rc;
}

int srv_repl_start(srv_t *srv)
{
    const conf_t *c = srv->conf;
    const struct conf_replication *rp = &c->replication;
    char cid[64];
    kms_error_t err;
    int rc;

    if (!rp->listen[0])
        return 0;
    kms_error_clear(&err);
    if ((rc = cluster_id(srv->store, cid)) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG,
                "replication: the database has no cluster id (%s); set nodes up with `kmsctl init "
                "--peer-listen` or `kmsctl cluster join`", kms_strerror(rc));
        return KMS_ERR_CONFIG;
    }
    repl_options_t o = {
        .store = srv->store,
        .keyring = srv->keyring,
        .node_id = store_node_id(srv->store),
        .cluster_id = cid,
        .listen = rp->listen,
        .kmip_addr = c->n_listen ? c->listen[0] : "",
        .peers = rp->peers,
        .n_peers = rp->n_peers,
        .cert = rp->cert,
        .key = rp->key,
        .ca = rp->ca,
        .sync_acks = rp->sync_acks,
        .sync_timeout_ms = rp->sync_timeout_ms,
        .sync_degrade = rp->on_sync_timeout == CONF_SYNC_TIMEOUT_DEGRADE,
        .max_clock_skew_ms = rp->max_clock_skew_ms,
        .max_lag_ms = rp->max_lag_ms,
        .startup_wait_ms = rp->startup_wait_ms,
        .max_frame = rp->max_frame,
        .ca_key = rp->ca_key,
        .client_ca = c->tls.client_ca,
        .certify_ca = c->certify.ca,
        .certify_ca_key = c->certify.ca_key,
    };
    if ((rc = repl_open(&o, &srv->repl, &err)) != 0 || (rc = repl_start(srv->repl, &err)) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "replication: %s", kms_error_msg(&err));
        repl_close(srv->repl);
        srv->repl = NULL;
        return rc;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "replication: cluster %s, node %s, peer listener %s", cid,
            o.node_id, rp->listen);
    return 0;
}

void srv_repl_stop(srv_t *srv)
{
    repl_close(srv->repl); /* stops it first */
    srv->repl = NULL;
}
