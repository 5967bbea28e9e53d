/*
 * admin/cluster.c: the admin socket's cluster commands, run in kmsd by
 * calling replication/.
 *
 * cluster.invite: a one-time join token (replication/join.c records the
 * invite and makes the token) for `kmsctl cluster invite`. The token is
 * returned in the response only: it never goes to the log or the audit
 * record (which name the invite id).
 * cluster.status: one record per node (this one, every node of the node
 * list, and peers heard from that the list does not have yet): links,
 * last contact, lag in changes and ms, clock offset, state.
 * cluster.verify: this node's digests (repl_verify_local) against every
 * connected peer's (repl_verify), per tenant, then per object for the
 * tenants that differ; records name the nodes that were compared or not,
 * the tenants and objects that differ, and a summary (identical,
 * different, incomplete when a node of the list did not answer).
 * cluster.remove: repl_node_remove.
 *
 * It deliberately holds no cluster state: the store and the replication
 * module do.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* ------------------------------------------------------------ status */
static const repl_peer_status_t *status_of(const repl_peer_status_t *v, size_t n,
                                           const char *node_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].node_id, node_id) == 0)
            return &v[i];
    return NULL;
}

static const char *links(const repl_peer_status_t *s)
{
    return s->connected_in && s->connected_out ? "in+out"
           : s->connected_out                  ? "out"
           : s->connected_in                   ? "in"
                                               : "no";
}

/* One node's record: what repl_status knows of it (s may be NULL: never
 * heard from since this kmsd started) and what the node list says. */
static int status_record(admin_req_t *r, const char *node_id, const store_node_t *row,
                         const repl_peer_status_t *s, bool self)
{
    const char *state = self ? "ok" : s ? s->state : row && row->removed ? "removed" : "unknown";
    if (row && row->removed)
        state = "removed";
    int64_t now_ms = kms_now_us() / 1000;
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "node", node_id) ||
        admin_field_text(r, rec, "peer_addr", s && s->addr[0] ? s->addr
                                              : row ? row->peer_addr
                                                    : self ? r->opt->peer_listen : "") ||
        admin_field_text(r, rec, "kmip_addr", row ? row->kmip_addr : "") ||
        admin_field_bool(r, rec, "self", self) ||
        admin_field_text(r, rec, "links", self ? "self" : s ? links(s) : "no") ||
        admin_field_long(r, rec, "last_contact_ms", s ? s->last_contact_ms : 0) ||
        admin_field_long(r, rec, "last_contact_age_ms",
                         s && s->last_contact_ms ? now_ms - s->last_contact_ms : -1) ||
        admin_field_long(r, rec, "lag_changes", s ? s->lag_changes : 0) ||
        admin_field_long(r, rec, "lag_ms", s ? s->lag_ms : 0) ||
        admin_field_long(r, rec, "clock_offset_ms", s ? s->clock_offset_ms : 0) ||
        admin_field_text(r, rec, "state", state) ||
        admin_field_text(r, rec, "error", s ? s->last_error : "") ||
        admin_field_long(r, rec, "catchup_total", s ? s->catchup_total : 0) ||
        admin_field_long(r, rec, "catchup_done", s ? s->catchup_done : 0) ||
        (self && admin_field_bool(r, rec, "ready", repl_ready(r->opt->repl))))
        return KMS_ERR_NOMEM;
    return 0;
}

int admin_cluster_status(admin_req_t *r, store_reader_t *rd)
{
    const admin_options_t *o = r->opt;
    repl_peer_status_t *v = NULL;
    store_node_t *nodes = NULL;
    size_t n = 0, nn = 0;
    const char *self = store_node_id(o->store);
    int rc;

    if (!o->repl)
        return admin_refuse(r, KMS_ERR_STATE, "replication is not running on this node (no "
                                              "replication.listen)");
    if ((rc = repl_status(o->repl, r->a, &v, &n)) != 0 ||
        (rc = store_list_nodes(rd, r->a, &nodes, &nn)) != 0)
        return admin_refuse(r, rc, "cannot read the cluster's state: %s", kms_strerror(rc));
    const store_node_t *own = NULL;
    for (size_t i = 0; i < nn; i++)
        if (strcmp(nodes[i].node_id, self) == 0)
            own = &nodes[i];
    if ((rc = status_record(r, self, own, NULL, true)) != 0)
        return rc;
    /* Every node of the node list, connected or not... */
    for (size_t i = 0; i < nn && rc == 0; i++)
        if (&nodes[i] != own)
            rc = status_record(r, nodes[i].node_id, &nodes[i], status_of(v, n, nodes[i].node_id),
                               false);
    /* ...and what the links know that the list does not (yet): a node
     * heard from, a configured address no node answered from. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool listed = false;
        for (size_t j = 0; j < nn && !listed; j++)
            listed = v[i].node_id[0] && strcmp(nodes[j].node_id, v[i].node_id) == 0;
        if (!listed)
            rc = status_record(r, v[i].node_id, NULL, &v[i], false);
    }
    return rc;
}

/* ------------------------------------------------------------ verify */
#define VERIFY_WAIT_MS 120000

/* The peers' digests, filled on the replication thread. Shared by the
 * admin thread (which may stop waiting) and the callback (which always
 * ends with node_id NULL): whoever lets go last frees it. */
typedef struct peer_digests {
    char node[64];
    int result;
    repl_digest_t *v;
    size_t n;
} peer_digests_t;

typedef struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    kms_arena_t *a;
    peer_digests_t peers[64];
    size_t n_peers;
} collect_t;

static void collect_release(collect_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    kms_arena_free(c->a);
    free(c);
}

static void collect_cb(const char *node_id, int result, const repl_digest_t *v, size_t n, void *arg)
{
    collect_t *c = arg;
    pthread_mutex_lock(&c->mu);
    if (!node_id) {
        c->done = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        collect_release(c);
        return;
    }
    if (c->n_peers < KMS_ARRAY_SIZE(c->peers)) {
        peer_digests_t *p = &c->peers[c->n_peers++];
        kms_strlcpy(p->node, node_id, sizeof p->node);
        p->result = result;
        p->v = n ? kms_arena_alloc(c->a, n * sizeof *v) : NULL;
        for (size_t i = 0; p->v && i < n; i++) {
            p->v[i] = v[i];
            p->v[i].tenant = kms_arena_strdup(c->a, v[i].tenant);
            p->v[i].id = kms_arena_strdup(c->a, v[i].id);
            if (!p->v[i].tenant || !p->v[i].id)
                p->v = NULL;
        }
        p->n = p->v ? n : 0;
        if (n && !p->v)
            p->result = KMS_ERR_NOMEM;
    }
    pthread_mutex_unlock(&c->mu);
}

/* Ask every connected peer; NULL on NOMEM or when replication is not
 * running (*rc_out says). Waits at most VERIFY_WAIT_MS. */
static collect_t *ask_peers(admin_req_t *r, const char *tenant, bool per_object, int *rc_out)
{
    collect_t *c = calloc(1, sizeof *c);
    if (!c || !(c->a = kms_arena_new(0))) {
        free(c);
        *rc_out = KMS_ERR_NOMEM;
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->refs = 2;
    int rc = repl_verify(r->opt->repl, tenant, per_object, collect_cb, c);
    if (rc) {
        c->refs = 1; /* the callback will not run */
        collect_release(c);
        *rc_out = rc;
        return NULL;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += VERIFY_WAIT_MS / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->done && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&c->mu);
    *rc_out = 0;
    return c;
}

static const repl_digest_t *find_digest(const repl_digest_t *v, size_t n, enum repl_digest_kind k,
                                        const char *tenant, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == k && strcmp(v[i].tenant, tenant) == 0 && strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

static bool same(const repl_digest_t *a, const repl_digest_t *b)
{
    return a && b && a->count == b->count && memcmp(a->sha256, b->sha256, 32) == 0;
}

static int verify_record(admin_req_t *r, const char *kind, const char *node, const char *tenant,
                         const char *object, const char *result)
{
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "kind", kind) || admin_field_text(r, rec, "node", node) ||
        admin_field_text(r, rec, "tenant", tenant) || admin_field_text(r, rec, "object", object) ||
        admin_field_text(r, rec, "result", result))
        return KMS_ERR_NOMEM;
    return 0;
}

/*
 * Compare digests of kind k (tenants, or the objects of one tenant) of
 * this node (mine) and the peers that answered: one "differs" record per
 * entry some node does not hold identically, naming the nodes. *diff_out
 * counts them.
 */
static int compare(admin_req_t *r, enum repl_digest_kind k, const char *self,
                   const repl_digest_t *mine, size_t n_mine, const collect_t *c, size_t *diff_out,
                   const char ***differing_out, size_t *n_differing_out)
{
    /* Every entry any node has, once. */
    size_t cap = n_mine;
    for (size_t p = 0; p < c->n_peers; p++)
        cap += c->peers[p].result == 0 ? c->peers[p].n : 0;
    const repl_digest_t **all = cap ? kms_arena_alloc(r->a, cap * sizeof *all) : NULL;
    const char **differing = cap ? kms_arena_alloc(r->a, cap * sizeof *differing) : NULL;
    size_t n_all = 0, nd = 0;
    if (cap && (!all || !differing))
        return KMS_ERR_NOMEM;
    for (size_t p = 0; p <= c->n_peers; p++) {
        const repl_digest_t *v = p == 0 ? mine : c->peers[p - 1].v;
        size_t n = p == 0 ? n_mine : c->peers[p - 1].result == 0 ? c->peers[p - 1].n : 0;
        for (size_t i = 0; i < n; i++) {
            bool seen = v[i].kind != k;
            for (size_t j = 0; j < n_all && !seen; j++)
                seen = strcmp(all[j]->tenant, v[i].tenant) == 0 && strcmp(all[j]->id, v[i].id) == 0;
            if (!seen)
                all[n_all++] = &v[i];
        }
    }
    for (size_t i = 0; i < n_all; i++) {
        const repl_digest_t *ref = find_digest(mine, n_mine, k, all[i]->tenant, all[i]->id);
        char who[512] = "";
        size_t len = 0;
        bool differs = false;
        if (!ref) {
            differs = true;
            len += (size_t)snprintf(who + len, sizeof who - len, "missing on %s", self);
        }
        for (size_t p = 0; p < c->n_peers; p++) {
            const peer_digests_t *pd = &c->peers[p];
            if (pd->result != 0)
                continue;
            const repl_digest_t *d = find_digest(pd->v, pd->n, k, all[i]->tenant, all[i]->id);
            const repl_digest_t *cmp = ref ? ref : all[i];
            if (same(d, cmp))
                continue;
            differs = true;
            if (len < sizeof who)
                len += (size_t)snprintf(who + len, sizeof who - len, "%s%s on %s", len ? ", " : "",
                                        d ? "differs" : "missing", pd->node);
        }
        if (!differs)
            continue;
        differing[nd++] = all[i]->tenant;
        int rc = verify_record(r, k == REPL_DIGEST_TENANT ? "tenant" : "object", "",
                               all[i]->tenant, all[i]->id, who);
        if (rc)
            return rc;
    }
    *diff_out += nd;
    if (differing_out) {
        *differing_out = differing;
        *n_differing_out = nd;
    }
    return 0;
}

int admin_cluster_verify(admin_req_t *r, store_reader_t *rd)
{
    const admin_options_t *o = r->opt;
    const char *self = store_node_id(o->store);
    repl_digest_t *mine = NULL;
    size_t n_mine = 0, diffs = 0, unchecked = 0;
    store_node_t *nodes = NULL;
    size_t nn = 0;
    const char **tenants = NULL;
    size_t nt = 0;
    collect_t *c = NULL;
    int rc;

    if (!o->repl)
        return admin_refuse(r, KMS_ERR_STATE, "replication is not running on this node (no "
                                              "replication.listen)");
    if ((rc = store_list_nodes(rd, r->a, &nodes, &nn)) != 0 ||
        (rc = repl_verify_local(rd, "", false, r->a, &mine, &n_mine)) != 0)
        return admin_refuse(r, rc, "cannot read this node's objects: %s", kms_strerror(rc));
    if (!(c = ask_peers(r, "", false, &rc)))
        return admin_refuse(r, rc, "cannot ask the peers: %s", kms_strerror(rc));
    /* Every node of the cluster must have answered, or nothing is proven. */
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < nn && rc == 0; i++) {
        if (nodes[i].removed || strcmp(nodes[i].node_id, self) == 0)
            continue;
        const peer_digests_t *pd = NULL;
        for (size_t p = 0; p < c->n_peers; p++)
            if (strcmp(c->peers[p].node, nodes[i].node_id) == 0)
                pd = &c->peers[p];
        const char *why = !pd ? (c->done ? "not connected" : "no answer in time")
                          : pd->result ? kms_strerror(pd->result) : NULL;
        if (why) {
            unchecked++;
            rc = verify_record(r, "node", nodes[i].node_id, "", "", why);
        } else {
            rc = verify_record(r, "node", nodes[i].node_id, "", "", "compared");
        }
    }
    if (rc == 0)
        rc = verify_record(r, "node", self, "", "", "compared");
    if (rc == 0)
        rc = compare(r, REPL_DIGEST_TENANT, self, mine, n_mine, c, &diffs, &tenants, &nt);
    pthread_mutex_unlock(&c->mu);
    collect_release(c);
    /* Name the objects of each tenant that differs. */
    for (size_t t = 0; t < nt && rc == 0; t++) {
        repl_digest_t *objs = NULL;
        size_t no = 0;
        if ((rc = repl_verify_local(rd, tenants[t], true, r->a, &objs, &no)) != 0 ||
            !(c = ask_peers(r, tenants[t], true, &rc)))
            return admin_refuse(r, rc, "cannot compare tenant %s: %s", tenants[t], kms_strerror(rc));
        pthread_mutex_lock(&c->mu);
        rc = compare(r, REPL_DIGEST_OBJECT, self, objs, no, c, &diffs, NULL, NULL);
        pthread_mutex_unlock(&c->mu);
        collect_release(c);
    }
    if (rc)
        return rc;
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "kind", "summary") ||
        admin_field_text(r, rec, "node", self) || admin_field_text(r, rec, "tenant", "") ||
        admin_field_text(r, rec, "object", "") ||
        admin_field_text(r, rec, "result", diffs == 0 && unchecked == 0 ? "identical"
                                           : diffs ? "different" : "incomplete"))
        return KMS_ERR_NOMEM;
    return 0;
}

/* ------------------------------------------------------------ remove */
int admin_cluster_remove(admin_req_t *r, store_reader_t *rd)
{
    const admin_options_t *o = r->opt;
    const char *node = admin_arg_text(r, ADMIN_TAG_ARG_NODE);
    kms_error_t err;
    (void)rd;
    r->target = node;
    if (!node || !node[0])
        return admin_refuse(r, KMS_ERR_INVAL, "the node id to remove is required");
    if (!o->repl)
        return admin_refuse(r, KMS_ERR_STATE, "replication is not running on this node (no "
                                              "replication.listen)");
    if (strcmp(node, store_node_id(o->store)) == 0)
        return admin_refuse(r, KMS_ERR_INVAL, "a node does not remove itself: run `kmsctl cluster "
                                              "remove %s` on another node", node);
    kms_error_clear(&err);
    int rc = repl_node_remove(o->repl, node, &err);
    if (rc)
        return admin_refuse(r, rc, "%s", kms_error_msg(&err));
    kms_log(KMS_LOG_WARN, "admin", "%s removed node %s from the cluster", r->who, node);
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "node", node) || admin_field_bool(r, rec, "removed", true))
        return KMS_ERR_NOMEM;
    return 0;
}
