/*
 * replication/members.c: changes of the cluster's membership made here:
 * removing a node (`kmsctl cluster remove NODE`), and a push link to a
 * node that joined after this node started.
 *
 * A removal is a change of the replicated node list: the node's row gets
 * `removed`, which is sticky (never cleared, whatever the clocks), so every
 * node learns it by replication. What each node then does with a removed
 * node (closing its links, refusing it at HELLO by node id and by its
 * certificate's fingerprint) is repl_load_nodes' and repl_node_removed's
 * (sync.c); a removal made here asks for that at once instead of at the
 * next periodic look at the list.
 *
 * The configured peers (replication.peers) are only where a node starts:
 * every node of the node list gets a push link (repl_push_to_node, called
 * for each node whenever the list is looked at).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

int repl_node_remove(repl_t *r, const char *node_id, kms_error_t *err)
{
    store_reader_t *rd = NULL;
    store_write_t *w = NULL;
    store_node_t n;
    int rc;

    if (!r || !node_id || !node_id[0])
        return kms_error_set(err, KMS_ERR_INVAL, "no node id");
    if ((rc = store_reader_new(r->opt.store, &rd)) != 0)
        return kms_error_set(err, rc, "store unavailable: %s", kms_strerror(rc));
    rc = store_node_get(rd, node_id, &n);
    store_reader_free(rd);
    if (rc == KMS_ERR_NOTFOUND)
        return kms_error_set(err, rc, "no node '%s' in the cluster (kmsctl cluster status lists them)",
                             node_id);
    if (rc)
        return kms_error_set(err, rc, "cannot read node %s: %s", node_id, kms_strerror(rc));
    if (n.removed)
        return 0; /* removing twice is removing */
    n.removed = true;
    if (!(w = store_write_new()))
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    if ((rc = store_write_node(w, &n)) != 0 || (rc = store_commit(r->opt.store, w, NULL, 0)) != 0)
        kms_error_set(err, rc, "cannot record the removal: %s", kms_strerror(rc));
    store_write_free(w);
    if (rc)
        return rc;
    kms_log(KMS_LOG_WARN, REPL_LOG, "node %s (certificate %.16s...) removed from the cluster",
            node_id, n.cert_sha256);
    /* Close its links now (the loop looks at the list again). */
    atomic_store(&r->nodes_changed, true);
    if (r->started)
        uv_async_send(&r->wake);
    return 0;
}

void repl_push_to_node(repl_t *r, const store_node_t *n)
{
    char host[256], port[8];
    if (n->removed || !n->peer_addr[0] || strcmp(n->node_id, r->opt.node_id) == 0 ||
        atomic_load(&r->stopping) || repl_split_hostport(n->peer_addr, host, sizeof host, port) != 0)
        return;
    for (repl_peer_t *p = r->peers; p; p = p->next)
        if (strcmp(p->addr, n->peer_addr) == 0 ||
            (p->conn && p->conn->node && strcmp(p->conn->node->st.node_id, n->node_id) == 0))
            return;
    for (repl_conn_t *c = r->conns; c; c = c->next)
        if (c->outbound && c->node && strcmp(c->node->st.node_id, n->node_id) == 0)
            return;
    repl_peer_t *p = calloc(1, sizeof *p);
    if (!p || uv_timer_init(&r->loop, &p->retry) != 0) {
        free(p);
        return;
    }
    p->r = r;
    p->retry.data = p;
    kms_strlcpy(p->addr, n->peer_addr, sizeof p->addr);
    kms_strlcpy(p->host, host, sizeof p->host);
    memcpy(p->port, port, sizeof p->port);
    p->backoff_ms = REPL_BACKOFF_MIN_MS;
    pthread_mutex_lock(&r->mu);
    p->next = r->peers;
    r->peers = p;
    pthread_mutex_unlock(&r->mu);
    kms_log(KMS_LOG_INFO, REPL_LOG, "node %s (%s) is in the node list: pushing to it", n->node_id,
            n->peer_addr);
    repl_peer_schedule(p);
}
