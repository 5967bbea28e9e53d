/*
 * replication/apply.c: the receiving side of an inbound link.
 *
 * Each CHANGES frame is merged in ONE store write: for every entity, read
 * the local state, merge (merge.c), and put the result with the version
 * that was read (a KMIP write racing on the same object makes the commit
 * fail with a conflict: the whole batch is re-read and re-merged); an
 * entity whose merge changes nothing is not written, so a change that
 * comes back by another path stops there. The same write records the
 * link's progress (repl_state: link_pos = the frame's last seq; the
 * sender's own changes up to there are all applied, so its origin_hwm
 * moves with it). Only after the commit is the frame ACKed: an ACK means
 * durable. Data-store keys are wrapped under this node's master key
 * (hsm_keyring_import) and stored wrapped; a received id that exists with
 * other key bytes is refused and logged as an alarm.
 *
 * Snapshots: SNAPSHOT_BEGIN marks the node as catching up (repl_ready is
 * false), chunks are applied without logging (relaying a whole database
 * to every peer would be pointless: they have it), and a local object
 * absent from the snapshot is deleted only if the sender had seen its
 * last change (origin_seq <= the sender's origin_hwm of its origin);
 * objects arrive in id order, so absent ones are found chunk by chunk.
 * SNAPSHOT_END sets link_pos to the snapshot seq and raises origin_hwm.
 *
 * Reads, merges and the blocking commit run on libuv's threadpool, one
 * work item at a time per link. While CHANGES are being applied the link
 * keeps reading: CHANGES frames that arrive meanwhile wait in a queue
 * (at most APPLY_AHEAD_FRAMES frames and APPLY_AHEAD_BYTES bytes; then
 * the connection reads nothing more) and are applied together, in one
 * commit, once the commit in progress is durable. So a receiver commits
 * as often as its disk allows whatever arrived during the last commit,
 * the way the group commit does for clients, and a frame does not wait
 * a whole commit behind each frame before it (with `sync_acks`, one more
 * commit in every acknowledged request's time). Each
 * frame is still acknowledged by its own ACK, in order, and only once
 * the commit holding it is durable. Frames of other kinds (snapshots)
 * are applied one at a time, and none is read while one is in progress.
 * A queued frame holding anything but objects (tenants, clients, nodes,
 * data-store keys) is applied in a commit of its own: those are rare and
 * their order matters.
 *
 * With log.level debug, each commit of CHANGES is logged with its size
 * (entities and frames), the age of its oldest change when its work
 * began and once durable, and where its time went (threadpool queue,
 * apply lock, merge, commit), so that a lag spike can be matched with
 * what this node was doing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

#define APPLY_TRIES 5
/* Frames read ahead while a commit is in progress (per link). The
 * sender holds at most REPL_SHIP_WINDOW bytes in flight, so a peer that
 * follows the protocol never reaches the byte bound. */
#define APPLY_AHEAD_FRAMES 32
#define APPLY_AHEAD_BYTES REPL_SHIP_WINDOW

struct repl_apply {
    repl_conn_t *c;          /* NULL once the link closed */
    repl_t *r;
    store_reader_t *rd;
    char peer[64];
    repl_frame_t *f;         /* the frame being applied (the first, for a batch) */
    repl_frame_t *batch[APPLY_AHEAD_FRAMES]; /* CHANGES frames applied in one commit */
    size_t n_batch;          /* 1 for a single frame */
    repl_frame_t *queue[APPLY_AHEAD_FRAMES]; /* read while working, in order (a ring) */
    size_t q_len[APPLY_AHEAD_FRAMES]; /* their sizes on the wire */
    size_t q_head, q_n, q_bytes;
    size_t q_other;          /* queued frames that are not CHANGES */
    bool working;
    uv_work_t work;
    int rc;
    int64_t ack_seq;
    int64_t link_pos;
    /* snapshot in progress */
    bool snapshot;
    bool gating;             /* it counts in catching_up: the node was not seeded before it */
    int64_t snap_seq;
    repl_hwm_t *hwm;         /* copy, own memory */
    size_t n_hwm;
    kms_arena_t *snap_arena;
    char last_id[64];        /* objects up to here were compared */
    bool empty;              /* the store held no object at SNAPSHOT_BEGIN: nothing to compare */
    bool raced;              /* ...but another link or a client wrote since: read before writing */
    uint64_t snap_t0;
    int64_t snap_objects;    /* announced by SNAPSHOT_BEGIN */
    int64_t snap_applied;    /* objects of the chunks applied so far */
    uint64_t persisted_ms;   /* when link_pos was last committed */
    /* DEBUG timing of the frame being applied (monotonic ns) */
    uint64_t t_queued, t_run, t_locked, t_built, t_committed;
};

/* An empty CHANGES frame (every row in it skipped by the sender: its own
 * rows we have, or a third node's that reach us directly) is acknowledged
 * at once without a store commit; its position is committed with the next
 * frame that holds changes, or by an empty one at most this often, so
 * that a restart or a reconnect resumes near it. */
#define APPLY_PERSIST_MS 1000

/* ------------------------------------------------------------ helpers */
static void to_change(store_change_id_t *id, const repl_entity_t *e)
{
    memset(id, 0, sizeof *id);
    id->hlc = e->hlc;
    kms_strlcpy(id->origin, e->origin ? e->origin : "", sizeof id->origin);
    id->origin_seq = e->origin_seq;
}

static int64_t hwm_of(const repl_apply_t *a, const char *origin)
{
    for (size_t i = 0; i < a->n_hwm; i++)
        if (strcmp(a->hwm[i].node_id, origin) == 0)
            return a->hwm[i].seq;
    return 0;
}

/* ------------------------------------------------------------ entities */
typedef struct ctx {
    repl_apply_t *a;
    kms_arena_t *arena;
    store_write_t *w;
    bool no_log;
    uint32_t current_dsk;    /* a "current" register was written: its id */
    bool removed_nodes;
} ctx_t;

static int apply_object(ctx_t *x, const repl_entity_t *e)
{
    repl_apply_t *a = x->a;
    store_object_t *o = NULL;
    store_tombstone_t t;
    repl_entity_t local, merged, canon;
    const repl_entity_t *lp = NULL;
    store_change_id_t id;
    /* Seeding an empty store: the snapshot holds each object once and
     * nothing is here to merge with (the bulk path: no read per object),
     * until a commit of this snapshot conflicts: then another link (a
     * second snapshot, a peer's changes) or a client wrote meanwhile, and
     * every object is read and merged from there on. */
    int rc = x->no_log && a->empty && !a->raced ? KMS_ERR_NOTFOUND
                                   : store_get_repl(a->rd, x->arena, e->key, &o, &t);
    if (rc && rc != KMS_ERR_NOTFOUND)
        return rc;
    if (rc == 0) {
        memset(&local, 0, sizeof local);
        if (o) {
            repl_entity_from_object(&local, o);
        } else {
            local.kind = REPL_KIND_OBJECT;
            local.key = e->key;
            local.deleted = true;
            local.hlc = t.id.hlc;
            local.origin = kms_arena_strdup(x->arena, t.id.origin);
            local.origin_seq = t.id.origin_seq;
        }
        lp = &local;
    }
    if ((rc = repl_merge_object(lp, e, x->arena, &merged)) != 0)
        return rc;
    if (lp) {
        if ((rc = repl_merge_object(lp, NULL, x->arena, &canon)) != 0)
            return rc;
        if (repl_object_equal(&canon, &merged))
            return 0; /* nothing new here */
    }
    to_change(&id, &merged);
    if (merged.deleted)
        return store_write_delete_repl(x->w, STORE_KIND_OBJECT, e->key,
                                       o ? o->version : STORE_VERSION_NEW, &id);
    store_object_t put;
    repl_object_from_entity(&put, &merged);
    return store_write_put_repl(x->w, &put, o ? o->version : STORE_VERSION_NEW, &id);
}

static int apply_dsk(ctx_t *x, const repl_entity_t *e)
{
    repl_t *r = x->a->r;
    store_change_id_t id;
    kms_secret_t *have = NULL;
    kms_buf_t wrapped;
    int rc;
    if (!r->opt.keyring || !e->dsk)
        return 0;
    to_change(&id, e);
    rc = hsm_keyring_export(r->opt.keyring, e->dsk_id, &have);
    if (rc == 0) {
        bool same = have->len == e->dsk->len &&
                    kms_ct_memcmp(have->data, e->dsk->data, have->len) == 0;
        kms_secret_free(have);
        if (!same) {
            kms_log(KMS_LOG_ERROR, REPL_LOG,
                    "ALARM: node %s sent data-store key %u with other key bytes than this "
                    "node holds under that id; refused (objects sealed under it on either "
                    "node will not open on the other)", x->a->peer, e->dsk_id);
            return 0;
        }
    } else if (rc == KMS_ERR_NOTFOUND) {
        kms_buf_init(&wrapped, 4096);
        rc = hsm_keyring_import(r->opt.keyring, e->dsk_id, e->dsk, &wrapped);
        if (rc == 0)
            rc = store_write_dsk_repl(x->w, e->dsk_id, wrapped.data, wrapped.len, &id);
        kms_buf_dispose(&wrapped);
        if (rc)
            return rc;
    } else {
        return rc;
    }
    if (e->dsk_current) {
        x->current_dsk = e->dsk_id;
        return store_write_dsk_current_repl(x->w, e->dsk_id, &id);
    }
    return 0;
}

static int apply_entity(ctx_t *x, const repl_entity_t *e)
{
    store_change_id_t id;
    to_change(&id, e);
    switch (e->kind) {
    case REPL_KIND_OBJECT:
        return apply_object(x, e);
    case REPL_KIND_TENANT:
        if (e->deleted)
            return store_write_delete_repl(x->w, STORE_KIND_TENANT, e->key, 0, &id);
        store_tenant_t t = {.created_us = e->tenant_created_us};
        kms_strlcpy(t.name, e->key, sizeof t.name);
        return store_write_tenant_repl(x->w, &t, &id);
    case REPL_KIND_CLIENT:
        if (e->deleted)
            return store_write_delete_repl(x->w, STORE_KIND_CLIENT, e->key, 0, &id);
        return store_write_client_repl(x->w, &e->client, &id);
    case REPL_KIND_NODE: {
        store_node_t n;
        repl_node_from_entity(&n, e);
        x->removed_nodes |= n.removed;
        return store_write_node_repl(x->w, &n, &id);
    }
    case REPL_KIND_DSK:
        return apply_dsk(x, e);
    }
    return KMS_ERR_INVAL;
}

static int apply_list(ctx_t *x, const repl_entity_t *v, size_t n)
{
    repl_keyref_t *refs = n ? kms_arena_alloc(x->arena, n * sizeof *refs) : NULL;
    bool *dup = n ? kms_arena_alloc(x->arena, n * sizeof *dup) : NULL;
    if (n && (!refs || !dup))
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        refs[i] = (repl_keyref_t){v[i].kind, v[i].key, i};
    repl_mark_repeats(refs, n, false, dup, n);
    for (size_t i = 0; i < n; i++) {
        if (dup[i])
            continue; /* the same entity twice in a frame: one put */
        int rc = apply_entity(x, &v[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------ snapshot rule */
#define SCAN_IDS 256

typedef struct idlist {
    char id[SCAN_IDS][64];
    size_t n;
} idlist_t;

static int collect_id(const char *id, uint32_t dsk_id, void *arg)
{
    idlist_t *l = arg;
    (void)dsk_id;
    kms_strlcpy(l->id[l->n++], id, sizeof l->id[0]);
    return 0;
}

static bool in_list(const repl_entity_t *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == REPL_KIND_OBJECT && strcmp(v[i].key, id) == 0)
            return true;
    return false;
}

/* A local object the snapshot does not hold: deleted if the sender saw
 * its last change (and so no longer has it), else kept (made here
 * meanwhile). */
static int maybe_delete(ctx_t *x, const char *id, size_t *deleted)
{
    store_object_t *o = NULL;
    store_tombstone_t t;
    int rc = store_get_repl(x->a->rd, x->arena, id, &o, &t);
    if (rc == KMS_ERR_NOTFOUND || (rc == 0 && !o))
        return 0;
    if (rc)
        return rc;
    if (o->change.origin_seq > hwm_of(x->a, o->change.origin))
        return 0;
    store_change_id_t cid = o->change;
    (*deleted)++;
    return store_write_delete_repl(x->w, STORE_KIND_OBJECT, o->id, o->version, &cid);
}

/* Local objects after last_id and up to `upto` ("" = to the end) that
 * are not among v[0..n). Moves last_id. */
static int delete_absent(ctx_t *x, const repl_entity_t *v, size_t n, const char *upto)
{
    idlist_t *l = kms_arena_alloc(x->arena, sizeof *l);
    size_t deleted = 0;
    int rc = 0;
    if (!l)
        return KMS_ERR_NOMEM;
    for (;;) {
        l->n = 0;
        if ((rc = store_scan(x->a->rd, x->a->last_id, SCAN_IDS, collect_id, l)) != 0)
            break;
        size_t i = 0;
        for (; i < l->n; i++) {
            if (upto[0] && strcmp(l->id[i], upto) > 0)
                break;
            if (!in_list(v, n, l->id[i]) && (rc = maybe_delete(x, l->id[i], &deleted)) != 0)
                break;
            kms_strlcpy(x->a->last_id, l->id[i], sizeof x->a->last_id);
        }
        if (rc || i < l->n || l->n < SCAN_IDS)
            break;
    }
    if (upto[0] && rc == 0)
        kms_strlcpy(x->a->last_id, upto, sizeof x->a->last_id);
    if (deleted)
        kms_log(KMS_LOG_INFO, REPL_LOG, "snapshot from %s: %zu local objects deleted there",
                x->a->peer, deleted);
    return rc;
}

/* The highest object id of a chunk ("" when it holds none). */
static const char *last_object(const repl_entity_t *v, size_t n)
{
    const char *m = "";
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == REPL_KIND_OBJECT && strcmp(v[i].key, m) > 0)
            m = v[i].key;
    return m;
}

/* ------------------------------------------------------------ progress */
static void prog_raise(repl_t *r, const char *node_id, int64_t hwm)
{
    size_t i = 0;
    while (i < r->n_prog && strcmp(r->prog[i].node_id, node_id) != 0)
        i++;
    if (i == r->n_prog) {
        if (i == KMS_ARRAY_SIZE(r->prog))
            return; /* not reported: peers relay that node's changes to us */
        kms_strlcpy(r->prog[i].node_id, node_id, sizeof r->prog[i].node_id);
        r->prog[i].hwm = 0;
        r->n_prog++;
    }
    if (hwm > r->prog[i].hwm)
        r->prog[i].hwm = hwm;
}

void repl_progress_load(repl_t *r)
{
    kms_arena_t *a = kms_arena_new(0);
    store_repl_state_t *st = NULL;
    size_t n = 0;
    if (a && store_list_repl_state(r->rd, a, &st, &n) == 0)
        for (size_t i = 0; i < n; i++)
            prog_raise(r, st[i].node_id, st[i].origin_hwm);
    kms_arena_free(a);
}

size_t repl_progress_fill(repl_t *r, repl_hwm_t *v, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_prog && n < cap; i++) {
        bool linked = false;
        for (repl_conn_t *c = r->conns; c && !linked; c = c->next)
            linked = !c->outbound && c->state == RC_OPEN && c->node &&
                     strcmp(c->node->st.node_id, r->prog[i].node_id) == 0;
        v[n++] = (repl_hwm_t){r->prog[i].node_id, r->prog[i].hwm, linked};
    }
    return n;
}

/* Send ACK(seq) with this node's progress. 0 or an error (closed). */
static int send_ack(repl_conn_t *c, int64_t seq)
{
    repl_hwm_t v[KMS_ARRAY_SIZE(c->r->prog)];
    repl_frame_t *ack = repl_frame_new(REPL_FRAME_ACK);
    if (!ack) {
        repl_conn_close(c, "out of memory");
        return KMS_ERR_NOMEM;
    }
    ack->u.ack.seq = seq;
    ack->u.ack.hwm = v;
    ack->u.ack.n_hwm = repl_progress_fill(c->r, v, KMS_ARRAY_SIZE(v));
    int rc = repl_conn_send(c, ack);
    repl_frame_free(ack);
    return rc;
}

/* ------------------------------------------------------------ batches */
/* Only CHANGES frames that hold nothing but objects are applied with
 * others in one commit: the merge of objects does not depend on their
 * order, while tenants, clients, nodes and data-store keys are applied
 * as rows in the order they came. */
static bool objects_only(const repl_frame_t *f)
{
    if (f->type != REPL_FRAME_CHANGES)
        return false;
    for (size_t i = 0; i < f->u.changes.n; i++)
        if (f->u.changes.v[i].kind != REPL_KIND_OBJECT)
            return false;
    return true;
}

static int cmp_key_index(const void *x, const void *y)
{
    const repl_keyref_t *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->i > b->i) - (a->i < b->i);
}

/* The entities of the batch, in order. An object that comes in several of
 * its frames (changed again before the first frame was applied) comes
 * out once, at its last place, as the merge of its occurrences: the merge
 * is a join, so merging the local state with that is merging it with
 * each in turn, and one store write holds one put per object. */
static int batch_entities(repl_apply_t *a, kms_arena_t *arena, const repl_entity_t **v_out,
                          size_t *n_out)
{
    size_t n = 0, m = 0;
    bool any = false;
    if (a->n_batch == 1) {
        *v_out = a->f->u.changes.v;
        *n_out = a->f->u.changes.n;
        return 0;
    }
    for (size_t b = 0; b < a->n_batch; b++)
        n += a->batch[b]->u.changes.n;
    *v_out = NULL;
    *n_out = 0;
    if (n == 0)
        return 0;
    repl_entity_t *v = kms_arena_alloc(arena, n * sizeof *v);
    repl_keyref_t *refs = kms_arena_alloc(arena, n * sizeof *refs);
    bool *dup = kms_arena_alloc(arena, n * sizeof *dup);
    if (!v || !refs || !dup)
        return KMS_ERR_NOMEM;
    for (size_t b = 0; b < a->n_batch; b++) {
        const repl_frame_t *f = a->batch[b];
        if (f->u.changes.n == 0)
            continue; /* an empty CHANGES has no array (v NULL) */
        memcpy(v + m, f->u.changes.v, f->u.changes.n * sizeof *v);
        m += f->u.changes.n;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (repl_keyref_t){v[i].kind, v[i].key, i};
    repl_mark_repeats(refs, n, true, dup, n);
    for (size_t i = 0; i < n && !any; i++)
        any = dup[i];
    if (any) {
        for (size_t i = 0; i < n; i++)
            refs[i] = (repl_keyref_t){v[i].kind, v[i].key, i};
        qsort(refs, n, sizeof *refs, cmp_key_index);
        for (size_t k = 1; k < n; k++) {
            if (strcmp(refs[k].key, refs[k - 1].key) != 0)
                continue;
            repl_entity_t joined;
            int rc = repl_merge_object(&v[refs[k - 1].i], &v[refs[k].i], arena, &joined);
            if (rc)
                return rc;
            v[refs[k].i] = joined;
        }
        m = 0;
        for (size_t i = 0; i < n; i++)
            if (!dup[i])
                v[m++] = v[i];
        n = m;
    }
    *v_out = v;
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------ frames */
static int build(repl_apply_t *a, kms_arena_t *arena, store_write_t *w, ctx_t *x)
{
    const repl_frame_t *f = a->f;
    int rc = 0;
    memset(x, 0, sizeof *x);
    x->a = a;
    x->arena = arena;
    x->w = w;
    switch (f->type) {
    case REPL_FRAME_CHANGES: {
        const repl_entity_t *v = NULL;
        size_t n = 0;
        if ((rc = batch_entities(a, arena, &v, &n)) != 0)
            return rc;
        /* The local states of the batch's entities from one read
         * transaction, instead of one per entity. */
        bool one_txn = n > 1 && store_snapshot_begin(a->rd, NULL) == 0;
        rc = apply_list(x, v, n);
        if (one_txn)
            (void)store_snapshot_end(a->rd);
        if (rc)
            return rc;
        a->link_pos = a->batch[a->n_batch - 1]->u.changes.last_seq;
        a->ack_seq = a->link_pos;
        return store_write_repl_state(w, a->peer, a->link_pos, a->link_pos);
    }
    case REPL_FRAME_SNAPSHOT_BEGIN:
        a->ack_seq = a->link_pos;
        return 0;
    case REPL_FRAME_SNAPSHOT_CHUNK: {
        store_write_no_log(w);
        x->no_log = true;
        const char *upto = last_object(f->u.snap_chunk.v, f->u.snap_chunk.n);
        if (!a->empty && upto[0] &&
            (rc = delete_absent(x, f->u.snap_chunk.v, f->u.snap_chunk.n, upto)) != 0)
            return rc;
        a->ack_seq = a->link_pos;
        return apply_list(x, f->u.snap_chunk.v, f->u.snap_chunk.n);
    }
    case REPL_FRAME_SNAPSHOT_END:
        store_write_no_log(w);
        if (!a->empty && (rc = delete_absent(x, NULL, 0, "")) != 0)
            return rc;
        /* The snapshot holds every change of each node up to the sender's
         * high-water mark of it, and with it everything in that node's log
         * up to there (the sender applied that log up to it): a push link
         * of that node that opens later starts from there instead of
         * sending a second snapshot. */
        for (size_t i = 0; i < a->n_hwm; i++) {
            const char *node = a->hwm[i].node_id;
            int64_t link = STORE_KEEP;
            store_repl_state_t st;
            if (strcmp(node, a->r->opt.node_id) == 0)
                continue;
            if (strcmp(node, a->peer) == 0)
                link = f->u.snap_end.snapshot_seq;
            else if (store_repl_state(a->rd, node, &st) != 0 || st.link_pos < a->hwm[i].seq)
                link = a->hwm[i].seq;
            if ((rc = store_write_repl_state(w, node, a->hwm[i].seq, link)) != 0)
                return rc;
        }
        a->link_pos = f->u.snap_end.snapshot_seq;
        a->ack_seq = a->link_pos;
        return store_write_repl_state(w, a->peer, a->link_pos, a->link_pos);
    default:
        return KMS_ERR_INVAL;
    }
}

static void work_run(uv_work_t *wk)
{
    repl_apply_t *a = wk->data;
    int rc = 0;
    ctx_t x;
    if (a->f->type == REPL_FRAME_SNAPSHOT_BEGIN) {
        a->rc = 0;
        a->ack_seq = a->link_pos;
        return;
    }
    /* One commit at a time across links: with three nodes every change
     * arrives twice (from its origin and relayed by the third node), and
     * two links applying the same objects at once made each other's
     * commits conflict batch after batch (APPLY_TRIES exhausted, the link
     * dropped, the peer falling further behind). Serialised, the second
     * copy finds the origin's high-water mark raised and is skipped
     * without a write. A KMIP write racing an apply still conflicts and
     * is retried below. */
    a->t_run = kms_mono_ns();
    pthread_mutex_lock(&a->r->apply_mu);
    a->t_locked = kms_mono_ns();
    for (int attempt = 0; attempt < APPLY_TRIES; attempt++) {
        kms_arena_t *arena = kms_arena_new(0);
        store_write_t *w = store_write_new();
        char last_id[64];
        kms_strlcpy(last_id, a->last_id, sizeof last_id);
        rc = arena && w ? build(a, arena, w, &x) : KMS_ERR_NOMEM;
        a->t_built = kms_mono_ns();
        if (rc == 0)
            rc = store_commit(a->r->opt.store, w, NULL, 0);
        a->t_committed = kms_mono_ns();
        store_write_free(w);
        kms_arena_free(arena);
        if (rc == 0 && x.current_dsk)
            repl_adopt_current_dsk(a->r, a->rd);
        if (rc == 0 && x.removed_nodes)
            atomic_store(&a->r->nodes_changed, true);
        if (rc != KMS_ERR_CONFLICT)
            break;
        kms_strlcpy(a->last_id, last_id, sizeof a->last_id); /* re-read, re-merge */
        a->raced = true; /* the store is no longer the empty one the snapshot began on */
    }
    pthread_mutex_unlock(&a->r->apply_mu);
    a->rc = rc;
}

static void batch_free(repl_apply_t *a)
{
    for (size_t i = 0; i < a->n_batch; i++)
        repl_frame_free(a->batch[i]);
    a->n_batch = 0;
    a->f = NULL;
}

static repl_frame_t *dequeue(repl_apply_t *a)
{
    repl_frame_t *f = a->queue[a->q_head];
    a->q_bytes -= a->q_len[a->q_head];
    a->q_other -= f->type != REPL_FRAME_CHANGES;
    a->queue[a->q_head] = NULL;
    a->q_head = (a->q_head + 1) % APPLY_AHEAD_FRAMES;
    a->q_n--;
    atomic_fetch_sub(&a->r->apply_waiting, 1);
    return f;
}

static void apply_free(repl_apply_t *a)
{
    batch_free(a);
    while (a->q_n)
        repl_frame_free(dequeue(a));
    if (a->rd)
        store_reader_free(a->rd);
    kms_arena_free(a->snap_arena);
    free(a);
}

/* Whether the link may read another frame now: always when nothing is
 * being applied; while CHANGES are, until the queue is full; never while
 * a snapshot frame is, or once a frame that is not CHANGES waits. */
static bool may_read(const repl_apply_t *a)
{
    if (a->q_other || a->q_n >= APPLY_AHEAD_FRAMES || a->q_bytes >= APPLY_AHEAD_BYTES)
        return false;
    return !a->working || (a->f && a->f->type == REPL_FRAME_CHANGES);
}

static void snapshot_state(repl_apply_t *a, bool on)
{
    if (a->snapshot == on)
        return;
    a->snapshot = on;
    /* Only a node that holds nothing yet stops serving for a snapshot: a
     * seeded node serving keys keeps serving while a peer that had never
     * reached it (or one back after max_lag) sends it one, as it served
     * during the partition. After a restart startup.c holds the listener
     * until the snapshot is applied. */
    if (on)
        a->gating = !atomic_load(&a->r->seeded);
    if (a->gating)
        atomic_fetch_add(&a->r->catching_up, on ? 1 : -1);
    if (!on)
        a->gating = false;
    repl_set_node_state(a->r, a->c ? a->c->node : NULL, on ? "catching-up" : "ok");
}

/* DEBUG: where an applied CHANGES batch's time went (queued on the
 * threadpool, waiting for the apply lock, merging, the store commit,
 * back to the loop), how old its oldest change was when it arrived and
 * when it was durable (wall clock minus the change's HLC), and how many
 * frames the commit held. */
static void log_timing(const repl_apply_t *a)
{
    if (!KMS_LOG_ENABLED(KMS_LOG_DEBUG) || a->f->type != REPL_FRAME_CHANGES)
        return;
    int64_t oldest = 0;
    size_t n = 0;
    for (size_t b = 0; b < a->n_batch; b++) {
        const repl_frame_t *f = a->batch[b];
        n += f->u.changes.n;
        for (size_t i = 0; i < f->u.changes.n; i++)
            if (!oldest || f->u.changes.v[i].hlc < oldest)
                oldest = f->u.changes.v[i].hlc;
    }
    uint64_t now = kms_mono_ns();
    int64_t now_ms = kms_now_us() / 1000;
    int64_t age = oldest ? now_ms - (oldest >> 16) : 0;
#define MS(x, y) ((double)((y) - (x)) / 1e6)
    kms_log(KMS_LOG_DEBUG, REPL_LOG,
            "applied from %s: %zu entities up to seq %lld; oldest change %lld ms old at arrival, "
            "%lld ms when durable; queued %.2f, lock %.2f, merge %.2f, commit %.2f, back %.2f ms; "
            "%zu frame(s) in the commit",
            a->peer, n, (long long)a->link_pos,
            (long long)(oldest ? age - (int64_t)(MS(a->t_queued, now)) : 0), (long long)age,
            MS(a->t_queued, a->t_run), MS(a->t_run, a->t_locked), MS(a->t_locked, a->t_built),
            MS(a->t_built, a->t_committed), MS(a->t_committed, now), a->n_batch);
#undef MS
}

static void dispatch(repl_apply_t *a, repl_frame_t *f);
static void work_done(uv_work_t *wk, int status);

/* Queue the batch (a->batch) on the threadpool. The link may have been
 * closed (and `a` freed) on return: callers check c->apply. */
static void start(repl_apply_t *a)
{
    repl_conn_t *c = a->c;
    a->f = a->batch[0];
    a->working = true;
    a->t_queued = kms_mono_ns();
    a->work.data = a;
    if (uv_queue_work(&a->r->loop, &a->work, work_run, work_done) != 0) {
        a->working = false;
        batch_free(a);
        repl_conn_close(c, "cannot queue work");
        return;
    }
    c->busy = !may_read(a);
}

/* After a work item: apply what was read meanwhile (consecutive CHANGES
 * frames of objects together), then read on if there is room. */
static void next(repl_apply_t *a)
{
    repl_conn_t *c = a->c;
    for (;;) {
        if (a->working || !a->q_n)
            break;
        repl_frame_t *f = dequeue(a);
        if (!a->snapshot && objects_only(f) && a->q_n && objects_only(a->queue[a->q_head])) {
            a->batch[0] = f;
            a->n_batch = 1;
            while (a->q_n && a->n_batch < APPLY_AHEAD_FRAMES && objects_only(a->queue[a->q_head]))
                a->batch[a->n_batch++] = dequeue(a);
            start(a);
        } else {
            dispatch(a, f);
        }
        if (c->apply != a)
            return; /* the link closed */
    }
    c->busy = !may_read(a);
    if (!c->busy)
        repl_conn_resume(c);
}

static void work_done(uv_work_t *wk, int status)
{
    repl_apply_t *a = wk->data;
    repl_conn_t *c = a->c;
    repl_frame_t *f = a->f;
    int64_t acks[APPLY_AHEAD_FRAMES];
    size_t n_acks = 0;
    a->working = false;
    if (status == 0 && a->rc == 0)
        log_timing(a);
    if (!c) {
        if (a->snapshot && a->gating)
            atomic_fetch_sub(&a->r->catching_up, 1);
        apply_free(a);
        return;
    }
    if (status != 0 || a->rc != 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot apply %s from %s: %s", repl_frame_type_name(f->type),
                 a->peer, kms_strerror(status ? KMS_ERR_INTERNAL : a->rc));
        kms_log(KMS_LOG_ERROR, REPL_LOG, "%s", why);
        batch_free(a);
        repl_conn_fail(c, REPL_ERROR_INTERNAL, "%s", why);
        return;
    }
    if (f->type == REPL_FRAME_SNAPSHOT_CHUNK) {
        for (size_t i = 0; i < f->u.snap_chunk.n; i++)
            a->snap_applied += f->u.snap_chunk.v[i].kind == REPL_KIND_OBJECT;
        repl_set_node_catchup(a->r, c->node, a->snap_objects, a->snap_applied);
    }
    if (f->type == REPL_FRAME_CHANGES) {
        prog_raise(a->r, a->peer, a->link_pos);
        a->persisted_ms = repl_mono_ms();
        atomic_fetch_add(&a->r->apply_commits, 1);
        atomic_fetch_add(&a->r->apply_frames, a->n_batch);
    }
    if (f->type == REPL_FRAME_SNAPSHOT_END) {
        double s = (double)(repl_mono_ms() - a->snap_t0) / 1000.0;
        for (size_t i = 0; i < a->n_hwm; i++)
            if (strcmp(a->hwm[i].node_id, a->r->opt.node_id) != 0)
                prog_raise(a->r, a->hwm[i].node_id, a->hwm[i].seq);
        prog_raise(a->r, a->peer, a->link_pos);
        kms_log(KMS_LOG_INFO, REPL_LOG,
                "snapshot from %s applied: %lld entities up to seq %lld in %.1f s", a->peer,
                (long long)f->u.snap_end.count, (long long)f->u.snap_end.snapshot_seq, s);
        snapshot_state(a, false);
        atomic_store(&a->r->seeded, true);
        repl_link_answer_deferred(a->r);
    }
    if (f->type == REPL_FRAME_CHANGES || f->type == REPL_FRAME_SNAPSHOT_END)
        repl_startup_progress(a->r, a->peer, a->link_pos); /* durable now */
    /* One ACK per frame, in order (the sender releases one frame per ACK),
     * each naming that frame's last seq. */
    if (f->type == REPL_FRAME_CHANGES)
        for (size_t i = 0; i < a->n_batch; i++)
            acks[n_acks++] = a->batch[i]->u.changes.last_seq;
    else
        acks[n_acks++] = a->ack_seq;
    batch_free(a);
    for (size_t i = 0; i < n_acks; i++)
        if (send_ack(c, acks[i]) != 0 || c->apply != a)
            return; /* the link closed */
    next(a);
}

/* Apply one frame (or acknowledge an empty CHANGES frame at once), in
 * link order: nothing of this link is being applied. The link may have
 * been closed (and `a` freed) on return. */
static void dispatch(repl_apply_t *a, repl_frame_t *f)
{
    repl_conn_t *c = a->c;
    repl_t *r = a->r;
    if (f->type == REPL_FRAME_SNAPSHOT_BEGIN) {
        kms_arena_free(a->snap_arena);
        a->snap_arena = kms_arena_new(0);
        a->n_hwm = 0;
        a->hwm = a->snap_arena && f->u.snap_begin.n_hwm
                     ? kms_arena_alloc(a->snap_arena, f->u.snap_begin.n_hwm * sizeof *a->hwm)
                     : NULL;
        for (size_t i = 0; a->hwm && i < f->u.snap_begin.n_hwm; i++) {
            a->hwm[i].node_id = kms_arena_strdup(a->snap_arena, f->u.snap_begin.hwm[i].node_id);
            a->hwm[i].seq = f->u.snap_begin.hwm[i].seq;
            a->n_hwm++;
        }
        a->last_id[0] = '\0';
        a->snap_t0 = repl_mono_ms();
        a->snap_objects = f->u.snap_begin.objects;
        a->snap_applied = 0;
        repl_set_node_catchup(r, c->node, a->snap_objects, 0);
        a->empty = store_count_objects(a->rd) == 0;
        a->raced = false;
        snapshot_state(a, true);
        kms_log(KMS_LOG_INFO, REPL_LOG, "catching up from %s: snapshot at seq %lld, %lld objects%s",
                a->peer, (long long)f->u.snap_begin.snapshot_seq,
                (long long)f->u.snap_begin.objects, a->empty ? " (empty store)" : "");
    } else if (!a->snapshot && (f->type == REPL_FRAME_SNAPSHOT_CHUNK ||
                                f->type == REPL_FRAME_SNAPSHOT_END)) {
        repl_frame_free(f);
        repl_conn_fail(c, REPL_ERROR_PROTO, "snapshot frame without SNAPSHOT_BEGIN");
        return;
    } else if (a->snapshot && f->type == REPL_FRAME_CHANGES) {
        repl_frame_free(f);
        repl_conn_fail(c, REPL_ERROR_PROTO, "CHANGES inside a snapshot");
        return;
    }
    if (f->type == REPL_FRAME_CHANGES && f->u.changes.n == 0 && !a->snapshot &&
        repl_mono_ms() - a->persisted_ms < APPLY_PERSIST_MS) {
        /* Nothing to merge: acknowledge without a commit (frames of a link
         * are applied in order, so every earlier frame is durable). */
        if (f->u.changes.last_seq > a->link_pos)
            a->link_pos = f->u.changes.last_seq;
        repl_frame_free(f);
        repl_startup_progress(r, a->peer, a->link_pos);
        (void)send_ack(c, a->link_pos);
        return;
    }
    a->batch[0] = f;
    a->n_batch = 1;
    start(a);
}


/* ------------------------------------------------------------ public */
int64_t repl_apply_link_pos(repl_t *r, const char *node_id)
{
    store_repl_state_t st;
    if (!r->rd || store_repl_state(r->rd, node_id, &st) != 0)
        return 0;
    return st.link_pos;
}

void repl_apply_frame(repl_conn_t *c, repl_frame_t *f)
{
    repl_t *r = c->r;
    repl_apply_t *a = c->apply;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a || store_reader_new(r->opt.store, &a->rd) != 0) {
            free(a);
            repl_frame_free(f);
            repl_conn_close(c, "cannot open a store reader");
            return;
        }
        a->c = c;
        a->r = r;
        kms_strlcpy(a->peer, c->node->st.node_id, sizeof a->peer);
        a->link_pos = repl_apply_link_pos(r, a->peer);
        c->apply = a;
    }
    if (a->working || a->q_n) {
        /* Read while a commit is in progress: applied after it, in order. */
        size_t at = (a->q_head + a->q_n) % APPLY_AHEAD_FRAMES;
        if (a->q_n == APPLY_AHEAD_FRAMES) {
            repl_frame_free(f);
            repl_conn_fail(c, REPL_ERROR_PROTO, "frame read past the apply queue");
            return;
        }
        a->queue[at] = f;
        a->q_len[at] = c->frame_len;
        a->q_n++;
        a->q_bytes += c->frame_len;
        a->q_other += f->type != REPL_FRAME_CHANGES;
        atomic_fetch_add(&r->apply_waiting, 1);
        c->busy = !may_read(a);
        return;
    }
    dispatch(a, f);
}

void repl_apply_stop(repl_conn_t *c)
{
    repl_apply_t *a = c->apply;
    if (!a)
        return;
    c->apply = NULL;
    a->c = NULL;
    if (!a->working) {
        if (a->snapshot && a->gating)
            atomic_fetch_sub(&a->r->catching_up, 1);
        apply_free(a);
    }
}
