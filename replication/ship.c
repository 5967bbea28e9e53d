/*
 * replication/ship.c: the sending side of a push link.
 *
 * After HELLO_ACK the link knows where the peer's copy of our log stands
 * (link_pos). If that is below the oldest row still in our log (trimmed
 * away) or 0 while we have changes (a joining node), the peer is seeded
 * with a snapshot first: SNAPSHOT_BEGIN (snapshot seq, our origin_hwm
 * vector), chunks of data-store keys, tenants, nodes, clients, objects in
 * id order and tombstones, all from one read transaction, then
 * SNAPSHOT_END; the log follows from the snapshot seq. Otherwise the log
 * is shipped from link_pos: rows in batches (<= 512 rows, about 1 MiB),
 * each row replaced by its entity's CURRENT state (so repeated changes
 * coalesce and re-delivery is harmless), rows whose origin is the peer
 * skipped (it has them), one CHANGES frame per batch naming the last row
 * it covers. Frames in flight are bounded by REPL_SHIP_WINDOW bytes; each
 * is released by one ACK.
 *
 * Store reads and frame encoding run on libuv's threadpool, one work item
 * at a time per link, with a reader that only that link uses; the loop
 * thread only writes the encoded bytes. It deliberately never writes to
 * the store: trimming (trim.c) and applying (apply.c) do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

#define SHIP_ROWS 512
#define SHIP_BYTES (1u << 20)
#define SHIP_SNAP_OBJECTS 256
/* A batch of at most this many new rows, all held in memory with their
 * objects, is encoded on the loop thread at once instead of on libuv's
 * threadpool: a few entities take microseconds, while the hand-over to a
 * worker thread and back (shared with the KMIP server's work) cost two
 * thread wake-ups per frame and its queueing delay. Larger batches, and
 * any that needs the store, go to the pool as before. */
#define SHIP_INLINE_ROWS 64
/* CHANGES frames in flight per link. Every commit's rows leave at once
 * in a frame of their own while fewer than this many are unacknowledged;
 * the receiver applies the frames that arrive during one of its commits
 * together in its next (apply.c), so its commits follow its disk, not
 * the sender's commit rate. Past this many, rows wait and leave together
 * in the next frame: the bound keeps the per-frame costs (a TLS record,
 * an ACK) from growing without limit when the receiver is slow. */
#define SHIP_LOG_FRAMES 8
/* Relaying. A row of a third node O's change is not shipped to a peer
 * whose own link with O is open (the peer's ACKs say so): O sends it
 * directly (shipped by both, every change would cross the cluster twice). The row is
 * kept as pending until the peer's progress shows it holds O's change;
 * it is relayed after all (the link position goes back to it) when the
 * peer reports its link with O closed, or when it is still unconfirmed
 * after SHIP_RELAY_GRACE_MS (a link that is up but cut or lagging).
 * Rows of changes the peer already holds (its progress says so) are not
 * shipped either. A peer that reports no progress gets every row. */
#define SHIP_RELAY_GRACE_MS 1000
#define SHIP_PROBE_MS 20          /* pending rows, nothing in flight: ask for an ACK */
#define SHIP_DURABLE_PROBE_MS 1100 /* > apply.c's APPLY_PERSIST_MS */
#define SHIP_RELAY_TICK_MS 20
/* A batch of rows of which none is shipped (on a node applying another's
 * changes, every batch: they are the peer's own) still moves the peer's
 * copy of our log, which an empty CHANGES frame tells it: one per batch
 * cost the peer (the node its clients write to) a frame, a TLS record
 * and an ACK per frame it sent us. Such a position goes in the next frame
 * that leaves, or in an empty one at most every SHIP_EMPTY_MS. */
#define SHIP_EMPTY_MS 100
#define SHIP_ORIGINS 64
#define SHIP_PENDING_MAX (1u << 18)

enum ship_phase { PH_LOG, PH_BEGIN, PH_DSKS, PH_TENANTS, PH_NODES, PH_CLIENTS, PH_OBJECTS,
                  PH_TOMBSTONES, PH_END };

/* What the peer reported of one origin, and how this link treats its rows. */
typedef struct origin {
    char node_id[64];
    int64_t hwm;             /* the peer holds this origin's changes up to here */
    bool linked;             /* this origin's push link to the peer is open */
    int64_t relay_until;     /* rows up to this seq are shipped even while linked */
} origin_t;

/* A row not shipped because the peer gets it directly, until confirmed. */
typedef struct pending {
    int64_t seq;             /* our log's seq */
    int64_t origin_seq;
    uint64_t t_ms;           /* when it was skipped (monotonic) */
    uint32_t org;            /* index in org[] */
} pending_t;

typedef struct inflight {
    int64_t last_seq;
    size_t bytes;
    int64_t first_hlc;       /* oldest change in it (lag), 0 for snapshot frames */
    struct inflight *next;
} inflight_t;

struct repl_ship {
    repl_conn_t *c;          /* NULL once the link closed (freed after the work item) */
    repl_t *r;
    store_reader_t *rd;
    char peer[64];
    enum ship_phase phase;
    int64_t sent_seq;        /* rows up to here are in frames */
    int64_t acked_seq;
    char after_id[64];       /* snapshot: objects cursor */
    int64_t snap_seq, snap_count;
    size_t tombs_sent;       /* snapshot: tombstones sent so far */
    inflight_t *head, *tail;
    size_t inflight_bytes;
    size_t inflight_frames;
    bool working;
    uv_work_t work;
    /* the work item's result */
    kms_buf_t out;
    kms_buf_t ents;          /* the encoded entities of a CHANGES frame */
    int out_rc;
    int64_t out_last_seq, out_first_hlc;
    bool out_frame;          /* a frame was produced */
    bool out_more;           /* the log had a full batch: look again at once */
    bool out_held;           /* nothing to ship: the position waits (SHIP_EMPTY_MS) */
    /* relaying (loop thread, except w* and out_pend: the work item's) */
    origin_t org[SHIP_ORIGINS]; /* append-only, so indices stay valid */
    size_t n_org;
    bool reports;            /* the peer sends its progress */
    pending_t *pend;         /* in seq order */
    size_t n_pend, cap_pend;
    int64_t high_seq;        /* highest last_seq sent: frames never name less */
    bool rewound;            /* the position went back while a work item ran */
    uint64_t last_send_ms;
    origin_t worg[SHIP_ORIGINS]; /* the work item's copy of org */
    size_t n_worg;
    int64_t whigh;
    bool whold;              /* an empty frame went out less than SHIP_EMPTY_MS ago */
    int64_t held_seq;        /* rows up to here were read, not yet named in a frame */
    size_t wpend;            /* pending rows the work item may add */
    pending_t *out_pend;
    size_t n_out_pend;
    store_logged_t *rows;    /* the work item's rows (SHIP_ROWS) */
};

/* ------------------------------------------------------- entity loads */
static void from_change(repl_entity_t *e, const store_change_id_t *id)
{
    e->hlc = id->hlc;
    e->origin = id->origin;
    e->origin_seq = id->origin_seq;
}

/* The entity named by (kind, key) as it is now, into e (memory from a).
 * KMS_ERR_NOTFOUND when it is gone without a tombstone (trimmed). */
int repl_load_entity(repl_t *r, store_reader_t *rd, kms_arena_t *a, enum store_kind kind,
                     const char *key, repl_entity_t *e)
{
    store_tombstone_t *t = kms_arena_alloc(a, sizeof *t);
    int rc = KMS_ERR_NOTFOUND;
    if (!t)
        return KMS_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    e->key = kms_arena_strdup(a, key);
    if (!e->key)
        return KMS_ERR_NOMEM;
    switch (kind) {
    case STORE_KIND_OBJECT: {
        store_object_t *o = NULL;
        e->kind = REPL_KIND_OBJECT;
        if ((rc = store_get_repl(rd, a, key, &o, t)) != 0)
            return rc;
        if (!o) {
            e->deleted = true;
            from_change(e, &t->id);
            return 0;
        }
        repl_entity_from_object(e, o);
        return 0;
    }
    case STORE_KIND_TENANT: {
        store_tenant_t *tn = kms_arena_alloc(a, sizeof *tn);
        e->kind = REPL_KIND_TENANT;
        if (!tn)
            return KMS_ERR_NOMEM;
        if ((rc = store_tenant_get(rd, key, tn)) == 0) {
            e->tenant_created_us = tn->created_us;
            from_change(e, &tn->change);
            return 0;
        }
        break;
    }
    case STORE_KIND_CLIENT:
        e->kind = REPL_KIND_CLIENT;
        if ((rc = store_client_by_name(rd, key, &e->client)) == 0) {
            from_change(e, &e->client.change);
            return 0;
        }
        break;
    case STORE_KIND_NODE: {
        store_node_t *n = kms_arena_alloc(a, sizeof *n);
        e->kind = REPL_KIND_NODE;
        if (!n)
            return KMS_ERR_NOMEM;
        if ((rc = store_node_get(rd, key, n)) != 0)
            return rc;
        repl_entity_from_node(e, n);
        return 0;
    }
    case STORE_KIND_DSK: {
        store_dsk_t d;
        store_change_id_t *cid = kms_arena_alloc(a, sizeof *cid);
        uint32_t id = 0;
        e->kind = REPL_KIND_DSK;
        if (!cid)
            return KMS_ERR_NOMEM;
        if (strcmp(key, STORE_DSK_CURRENT_KEY) == 0) {
            if ((rc = store_dsk_current(rd, &id, cid)) != 0)
                return rc;
            e->dsk_current = true;
        } else {
            char *end = NULL;
            unsigned long v = strtoul(key, &end, 10);
            if (!end || *end || v == 0 || v > UINT32_MAX)
                return KMS_ERR_NOTFOUND;
            id = (uint32_t)v;
            if ((rc = store_dsk_get(rd, id, &d)) != 0)
                return rc;
            *cid = d.change;
        }
        from_change(e, cid);
        e->dsk_id = id;
        if (!r->opt.keyring)
            return KMS_ERR_NOTFOUND;
        return hsm_keyring_export(r->opt.keyring, id, &e->dsk);
    }
    }
    if (rc != KMS_ERR_NOTFOUND)
        return rc;
    /* Removed: its tombstone. */
    if ((rc = store_tombstone_get(rd, kind, key, t)) != 0)
        return rc;
    e->deleted = true;
    from_change(e, &t->id);
    return 0;
}

static void dispose(repl_entity_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        repl_entity_dispose(&v[i]);
}

/* ------------------------------------------------------ the log phase */
typedef struct rows {
    store_logged_t *v;       /* the link's buffer of SHIP_ROWS */
    size_t n;
    int64_t upto;            /* from the store: rows up to here (memory holds the rest) */
    bool cut;                /* stopped there: read again at once */
} rows_t;

static int collect_row(const store_change_t *c, void *arg)
{
    rows_t *r = arg;
    if (c->seq > r->upto && r->n) { /* (at least one row: the trim check needs it) */
        r->cut = true;
        return 1;
    }
    r->v[r->n].row = *c;
    r->v[r->n++].obj = NULL;
    return 0;
}

static int encode(repl_ship_t *s, repl_frame_t *f)
{
    kms_error_t err;
    size_t max = s->r->opt.max_frame ? s->r->opt.max_frame : REPL_MAX_FRAME_DEFAULT;
    int rc = repl_frame_encode(f, max, &s->out, &err);
    if (rc)
        kms_log(KMS_LOG_ERROR, REPL_LOG, "to %s: %s: %s", s->peer, repl_frame_type_name(f->type),
                kms_error_msg(&err));
    s->out_frame = rc == 0;
    return rc;
}

/* One entity's ENTITY structure appended to s->ents. */
static int encode_entity(repl_ship_t *s, const repl_entity_t *e)
{
    kms_error_t err;
    int rc = repl_entity_encode(e, &s->ents, &err);
    if (rc)
        kms_log(KMS_LOG_ERROR, REPL_LOG, "to %s: entity %s: %s", s->peer, e->key,
                kms_error_msg(&err));
    return rc;
}

/* The entity of row `seq` from memory (the object it committed): its
 * bytes from the cache shared by the links, or encoded and left there. */
static int encode_held(repl_ship_t *s, int64_t seq, const store_object_t *o)
{
    if (repl_encache_get(s->r->encache, seq, &s->ents) == 0)
        return 0;
    repl_entity_t e;
    size_t at = s->ents.len;
    repl_entity_from_object(&e, o); /* points into memory the caller holds */
    e.seq = seq;
    int rc = encode_entity(s, &e);
    if (rc == 0)
        repl_encache_put(s->r->encache, seq, s->ents.data + at, s->ents.len - at);
    return rc;
}

/* The CHANGES frame around the entities in s->ents, into s->out. */
static int encode_changes(repl_ship_t *s, int64_t last_seq)
{
    kms_error_t err;
    size_t max = s->r->opt.max_frame ? s->r->opt.max_frame : REPL_MAX_FRAME_DEFAULT;
    int rc = repl_frame_encode_changes(last_seq, s->ents.data, s->ents.len, max, &s->out, &err);
    if (rc)
        kms_log(KMS_LOG_ERROR, REPL_LOG, "to %s: CHANGES: %s", s->peer, kms_error_msg(&err));
    s->out_frame = rc == 0;
    return rc;
}

static size_t org_find(const origin_t *v, size_t n, const char *node_id)
{
    size_t i = 0;
    while (i < n && strcmp(v[i].node_id, node_id) != 0)
        i++;
    return i;
}

/* Whether a row of another node than the peer goes into the frame (the
 * work item, on its copy of the peer's progress). */
static bool must_ship(repl_ship_t *s, const store_change_t *row)
{
    size_t i = org_find(s->worg, s->n_worg, row->id.origin);
    bool own = strcmp(row->id.origin, s->r->opt.node_id) == 0;
    if (i == s->n_worg)
        goto ship; /* nothing reported of that origin */
    const origin_t *o = &s->worg[i];
    if (row->id.origin_seq <= o->hwm)
        return false; /* the peer holds it */
    if (own || !o->linked || row->seq <= o->relay_until || s->n_out_pend >= s->wpend)
        goto ship;
    s->out_pend[s->n_out_pend++] = (pending_t){row->seq, row->id.origin_seq, repl_mono_ms(),
                                               (uint32_t)i};
    atomic_fetch_add(&s->r->relay_skipped, 1);
    return false;
ship:
    if (!own)
        atomic_fetch_add(&s->r->relayed, 1);
    return true;
}

/* The rows after the link's position: from memory when it holds them all
 * (each object put with the object it committed: nothing is read back),
 * else from the store. *ref_out holds the objects until released. */
static int read_rows(repl_ship_t *s, bool on_loop, rows_t *rows, bool *mem_out,
                     store_tail_ref_t **ref_out)
{
    int64_t floor = -1;
    size_t limit = on_loop ? SHIP_INLINE_ROWS + 1 : SHIP_ROWS;
    int rc = store_log_tail(s->r->opt.store, s->sent_seq, limit, rows->v, &rows->n, ref_out);
    *mem_out = rc == 0;
    if (on_loop && (rc == KMS_ERR_NOTFOUND || (rc == 0 && rows->n > SHIP_INLINE_ROWS)))
        return KMS_ERR_AGAIN;
    for (size_t i = 0; on_loop && rc == 0 && i < rows->n; i++)
        if (!rows->v[i].obj)
            return KMS_ERR_AGAIN; /* a row whose state is read from the store */
    if (rc != KMS_ERR_NOTFOUND)
        return rc;
    /* Behind what memory holds (a link that starts, or lagged): the store
     * up to memory's floor, then memory again. */
    store_log_tail_stats(s->r->opt.store, &floor, NULL);
    rows->n = 0;
    rows->upto = floor > s->sent_seq ? floor : INT64_MAX;
    return store_changes_since(s->rd, s->sent_seq, SHIP_ROWS, collect_row, rows);
}

/* One CHANGES frame of the rows after the link's position into s->out.
 * `on_loop`: only when memory holds them all, at most SHIP_INLINE_ROWS,
 * each with its object (KMS_ERR_AGAIN otherwise, nothing changed). */
static int ship_log(repl_ship_t *s, kms_arena_t *a, bool on_loop)
{
    rows_t rows = {.v = s->rows};
    store_tail_ref_t *ref = NULL;
    size_t n = 0;
    bool mem = false;
    int rc = read_rows(s, on_loop, &rows, &mem, &ref);
    if (rc || rows.n == 0)
        goto out;
    if (!mem && rows.v[0].row.seq > s->sent_seq + 1 && s->sent_seq < repl_log_floor(s->r)) {
        /* Trimmed while this link started: what the peer lacks is gone
         * from the log, so it gets a snapshot instead. */
        s->phase = PH_BEGIN;
        s->out_more = true;
        goto out;
    }
    s->out_more = rows.n == SHIP_ROWS || rows.cut;
    /* Which rows go: not the peer's own changes nor what it holds or gets
     * directly; of several rows of one entity only the last (a row from
     * memory carries the state it committed, which covers the earlier
     * rows; one from the store loads the current state, which covers them
     * all). */
    bool *keep = kms_arena_alloc(a, rows.n * sizeof *keep);
    bool *dup = kms_arena_alloc(a, rows.n * sizeof *dup);
    repl_keyref_t *refs = kms_arena_alloc(a, rows.n * sizeof *refs);
    size_t nref = 0;
    if (!keep || !dup || !refs) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < rows.n; i++) {
        const store_change_t *row = &rows.v[i].row;
        keep[i] = strcmp(row->id.origin, s->peer) != 0 && must_ship(s, row);
        if (keep[i])
            refs[nref++] = (repl_keyref_t){(uint32_t)row->kind, row->key, i};
    }
    repl_mark_repeats(refs, nref, true, dup, rows.n);
    /* Each entity is encoded as soon as it is loaded (one entity's memory
     * at a time); one from memory is encoded once for every link: the
     * first leaves its bytes in the shared cache, the others copy them. */
    int64_t last = s->sent_seq;
    size_t from_mem = 0;
    kms_buf_reset(&s->ents);
    for (size_t i = 0; i < rows.n; i++) {
        const store_change_t *row = &rows.v[i].row;
        if (s->ents.len >= SHIP_BYTES) {
            s->out_more = true;
            /* The rows after this one are read again by the next batch. */
            while (s->n_out_pend && s->out_pend[s->n_out_pend - 1].seq > last)
                s->n_out_pend--;
            break;
        }
        last = row->seq;
        if (!keep[i])
            continue;
        if (!s->out_first_hlc || row->id.hlc < s->out_first_hlc)
            s->out_first_hlc = row->id.hlc; /* the oldest change in the frame (lag) */
        if (dup[i])
            continue;
        if (rows.v[i].obj) {
            from_mem++;
            if ((rc = encode_held(s, row->seq, rows.v[i].obj)) != 0)
                goto out;
        } else {
            repl_entity_t e;
            rc = repl_load_entity(s->r, s->rd, a, row->kind, row->key, &e);
            if (rc == KMS_ERR_NOTFOUND) {
                rc = 0;
                continue; /* gone and its tombstone trimmed: nothing to say */
            }
            e.seq = row->seq;
            if (rc == 0)
                rc = encode_entity(s, &e);
            repl_entity_dispose(&e);
            if (rc)
                goto out;
        }
        n++;
    }
    s->out_last_seq = last;
    atomic_fetch_add(&s->r->shipped_mem, from_mem);
    atomic_fetch_add(&s->r->shipped_store, n - from_mem);
    if (n == 0 && last <= s->whigh)
        goto out; /* re-reading rows the peer was sent or holds: nothing to say */
    if (n == 0 && s->whold) {
        s->out_held = true; /* named by the next frame, or by relay_tick */
        atomic_fetch_add(&s->r->positions_held, 1);
        goto out;
    }
    if (n == 0)
        atomic_fetch_add(&s->r->position_frames, 1);
    rc = encode_changes(s, last > s->whigh ? last : s->whigh);
out:
    kms_wipe(s->ents.data, s->ents.len); /* it may hold a data-store key */
    kms_buf_reset(&s->ents);
    store_log_tail_release(ref);
    return rc;
}

/* --------------------------------------------------- the snapshot phase */
typedef struct snap_cb {
    repl_ship_t *s;
    kms_arena_t *a;
    repl_entity_t *v;
    size_t n, cap;
    size_t skip;             /* tombstones: already sent in earlier chunks */
    int rc;
} snap_cb_t;

static int snap_object(const store_object_t *o, void *arg)
{
    snap_cb_t *x = arg;
    repl_entity_t *e = &x->v[x->n];
    /* The object is valid during the call only: copy what the entity
     * points at into the arena. */
    store_object_t *copy = repl_object_copy(x->a, o);
    if (!copy) {
        x->rc = KMS_ERR_NOMEM;
        return 1;
    }
    repl_entity_from_object(e, copy);
    kms_strlcpy(x->s->after_id, o->id, sizeof x->s->after_id);
    x->n++;
    return x->n >= x->cap;
}

static int snap_tomb(const store_tombstone_t *t, void *arg)
{
    snap_cb_t *x = arg;
    if (x->skip > 0) {
        x->skip--;
        return 0;
    }
    if (x->n >= x->cap)
        return 1;
    repl_entity_t *e = &x->v[x->n];
    memset(e, 0, sizeof *e);
    switch (t->kind) {
    case STORE_KIND_OBJECT: e->kind = REPL_KIND_OBJECT; break;
    case STORE_KIND_TENANT: e->kind = REPL_KIND_TENANT; break;
    case STORE_KIND_CLIENT: e->kind = REPL_KIND_CLIENT; break;
    default: return 0;
    }
    e->key = kms_arena_strdup(x->a, t->key);
    store_change_id_t *id = kms_arena_memdup(x->a, &t->id, sizeof t->id);
    if (!e->key || !id) {
        x->rc = KMS_ERR_NOMEM;
        return 1;
    }
    e->deleted = true;
    from_change(e, id);
    x->n++;
    return 0;
}

/* Room for n entities in x (a list of any length: one frame). */
static int room_for(snap_cb_t *x, size_t n)
{
    if (n > x->cap && !(x->v = kms_arena_alloc(x->a, n * sizeof *x->v)))
        return KMS_ERR_NOMEM;
    return 0;
}

/* One frame of the snapshot per work item, phase by phase. */
static int ship_snapshot(repl_ship_t *s, kms_arena_t *a)
{
    repl_t *r = s->r;
    repl_frame_t f = {.type = REPL_FRAME_SNAPSHOT_CHUNK};
    snap_cb_t x = {.s = s, .a = a, .cap = SHIP_SNAP_OBJECTS};
    int rc = 0;
    x.v = kms_arena_alloc(a, 4096 * sizeof *x.v); /* objects, DSKs, tombstones */
    if (!x.v)
        return KMS_ERR_NOMEM;
    switch (s->phase) {
    case PH_BEGIN: {
        store_repl_state_t *st = NULL;
        size_t n = 0;
        if ((rc = store_snapshot_begin(s->rd, &s->snap_seq)) != 0)
            return rc;
        if ((rc = store_list_repl_state(s->rd, a, &st, &n)) != 0)
            return rc;
        repl_hwm_t *h = kms_arena_alloc(a, (n + 1) * sizeof *h);
        if (!h)
            return KMS_ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            h[i] = (repl_hwm_t){st[i].node_id, st[i].origin_hwm, false};
        h[n] = (repl_hwm_t){r->opt.node_id, s->snap_seq, false}; /* our own changes: all of them */
        f.type = REPL_FRAME_SNAPSHOT_BEGIN;
        f.u.snap_begin.snapshot_seq = s->snap_seq;
        f.u.snap_begin.objects = store_count_objects(s->rd);
        f.u.snap_begin.hwm = h;
        f.u.snap_begin.n_hwm = n + 1;
        s->snap_count = 0;
        s->tombs_sent = 0;
        s->after_id[0] = '\0';
        kms_log(KMS_LOG_INFO, REPL_LOG, "to %s: snapshot at seq %lld, %lld objects", s->peer,
                (long long)s->snap_seq, (long long)f.u.snap_begin.objects);
        s->phase = PH_DSKS;
        return encode(s, &f);
    }
    case PH_DSKS: {
        store_dsk_t *d = NULL;
        size_t n = 0;
        if ((rc = store_list_dsks(s->rd, a, &d, &n)) != 0)
            return rc;
        for (size_t i = 0; i < n && i < 4096; i++) {
            char key[16];
            snprintf(key, sizeof key, "%u", d[i].id);
            if (repl_load_entity(r, s->rd, a, STORE_KIND_DSK, key, &x.v[x.n]) == 0)
                x.n++;
        }
        if (repl_load_entity(r, s->rd, a, STORE_KIND_DSK, STORE_DSK_CURRENT_KEY, &x.v[x.n]) == 0)
            x.n++;
        s->phase = PH_TENANTS;
        break;
    }
    case PH_TENANTS: {
        store_tenant_t *t = NULL;
        size_t n = 0;
        if ((rc = store_list_tenants_repl(s->rd, a, &t, &n)) != 0)
            return rc;
        if ((rc = room_for(&x, n)) != 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            repl_entity_t *e = &x.v[x.n++];
            memset(e, 0, sizeof *e);
            e->kind = REPL_KIND_TENANT;
            e->key = t[i].name;
            e->tenant_created_us = t[i].created_us;
            from_change(e, &t[i].change);
        }
        s->phase = PH_NODES;
        break;
    }
    case PH_NODES: {
        store_node_t *nd = NULL;
        size_t n = 0;
        if ((rc = store_list_nodes(s->rd, a, &nd, &n)) != 0)
            return rc;
        if ((rc = room_for(&x, n)) != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            repl_entity_from_node(&x.v[x.n++], &nd[i]);
        s->phase = PH_CLIENTS;
        break;
    }
    case PH_CLIENTS: {
        store_client_t *cl = NULL;
        size_t n = 0;
        if ((rc = store_list_clients(s->rd, a, &cl, &n)) != 0)
            return rc;
        if ((rc = room_for(&x, n)) != 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            repl_entity_t *e = &x.v[x.n++];
            memset(e, 0, sizeof *e);
            e->kind = REPL_KIND_CLIENT;
            e->key = cl[i].name;
            e->client = cl[i];
            from_change(e, &cl[i].change);
        }
        s->phase = PH_OBJECTS;
        break;
    }
    case PH_OBJECTS: {
        size_t before = x.n;
        rc = store_snapshot_objects(s->rd, s->after_id, SHIP_SNAP_OBJECTS, snap_object, &x);
        if (rc == 0)
            rc = x.rc;
        if (rc)
            return rc;
        if (x.n == before)
            s->phase = PH_TOMBSTONES;
        break;
    }
    case PH_TOMBSTONES:
        /* In chunks of 4096; store_each_tombstone has no cursor, so each
         * chunk skips what the earlier ones sent (same snapshot). */
        x.cap = 4096;
        x.skip = s->tombs_sent;
        if ((rc = store_each_tombstone(s->rd, snap_tomb, &x)) != 0 || (rc = x.rc) != 0)
            return rc;
        s->tombs_sent += x.n;
        if (x.n < x.cap)
            s->phase = PH_END;
        break;
    case PH_END:
        (void)store_snapshot_end(s->rd);
        f.type = REPL_FRAME_SNAPSHOT_END;
        f.u.snap_end.snapshot_seq = s->snap_seq;
        f.u.snap_end.count = s->snap_count;
        s->sent_seq = s->snap_seq;
        s->out_last_seq = s->snap_seq;
        s->phase = PH_LOG;
        s->out_more = true;
        return encode(s, &f);
    case PH_LOG:
        return KMS_ERR_INTERNAL;
    }
    if (x.n) {
        f.u.snap_chunk.v = x.v;
        f.u.snap_chunk.n = x.n;
        s->snap_count += (int64_t)x.n;
        rc = encode(s, &f);
        dispose(x.v, x.n);
    }
    s->out_more = true;
    return rc;
}

/* ------------------------------------------------------- work items */
/* One batch (a frame, or nothing to send) into the out_* fields. */
static void run_batch(repl_ship_t *s, bool on_loop)
{
    kms_arena_t *a = kms_arena_new(0);
    s->out_rc = 0;
    s->out_frame = s->out_more = s->out_held = false;
    s->out_first_hlc = 0;
    s->out_last_seq = s->sent_seq;
    kms_buf_reset(&s->out);
    if (!a) {
        s->out_rc = KMS_ERR_NOMEM;
        return;
    }
    s->out_rc = s->phase == PH_LOG ? ship_log(s, a, on_loop) : ship_snapshot(s, a);
    kms_arena_free(a); /* wiped: DSKs passed through it */
}

static void work_run(uv_work_t *w)
{
    run_batch(w->data, false);
}

static void ship_free(repl_ship_t *s)
{
    while (s->head) {
        inflight_t *i = s->head;
        s->head = i->next;
        free(i);
    }
    if (s->rd) {
        (void)store_snapshot_end(s->rd);
        store_reader_free(s->rd);
    }
    kms_buf_dispose_wipe(&s->out);
    kms_buf_dispose_wipe(&s->ents);
    free(s->pend);
    free(s->out_pend);
    free(s->rows);
    free(s);
}

static void schedule(repl_ship_t *s);

/* ------------------------------------------------------------ relaying */
/* The trim bound for this peer: rows it acknowledged, minus the skipped
 * rows it has not confirmed, the rows being read again, and what it has
 * not made durable of our own (its HELLO_ACK must not name a position
 * below our log's floor after a restart). */
/* Our own changes' position the peer has committed (its progress). */
static int64_t peer_durable(const repl_ship_t *s)
{
    size_t i = org_find(s->org, s->n_org, s->r->opt.node_id);
    return i < s->n_org ? s->org[i].hwm : 0;
}

static bool durable_lag(const repl_ship_t *s)
{
    return s->reports && s->phase == PH_LOG && peer_durable(s) < s->acked_seq;
}

static void relay_timer_arm(repl_t *r);

static void report(repl_ship_t *s)
{
    int64_t covered = s->acked_seq;
    if (s->n_pend && s->pend[0].seq - 1 < covered)
        covered = s->pend[0].seq - 1;
    if (s->phase == PH_LOG && s->sent_seq < covered)
        covered = s->sent_seq;
    if (s->reports && peer_durable(s) < covered)
        covered = peer_durable(s);
    if (durable_lag(s))
        relay_timer_arm(s->r);
    pthread_mutex_lock(&s->r->mu);
    s->c->node->covered = covered;
    pthread_mutex_unlock(&s->r->mu);
}

static void on_relay_timer(uv_timer_t *t);

static void relay_timer_arm(repl_t *r)
{
    if (!r->relay_timer_on && r->hooks_init && !atomic_load(&r->stopping)) {
        r->relay_timer_on = true;
        uv_timer_start(&r->relay_timer, on_relay_timer, SHIP_RELAY_TICK_MS, SHIP_RELAY_TICK_MS);
    }
}

/* The work item's skipped rows join the pending list. */
static void pend_take(repl_ship_t *s)
{
    if (!s->n_out_pend)
        return;
    if (s->n_pend + s->n_out_pend > s->cap_pend) {
        size_t cap = s->cap_pend ? s->cap_pend : 1024;
        while (cap < s->n_pend + s->n_out_pend)
            cap *= 2;
        pending_t *p = realloc(s->pend, cap * sizeof *p);
        if (!p) {
            /* Ship them instead: back to the first of them. */
            s->sent_seq = s->out_pend[0].seq - 1;
            for (size_t i = 0; i < s->n_out_pend; i++)
                if (s->org[s->out_pend[i].org].relay_until < s->out_last_seq)
                    s->org[s->out_pend[i].org].relay_until = s->out_last_seq;
            s->n_out_pend = 0;
            return;
        }
        s->pend = p;
        s->cap_pend = cap;
    }
    memcpy(s->pend + s->n_pend, s->out_pend, s->n_out_pend * sizeof *s->pend);
    s->n_pend += s->n_out_pend;
    s->n_out_pend = 0;
    relay_timer_arm(s->r);
}

/* Relay origin o's pending rows: the position goes back to the first of
 * them, and o's rows up to the current head are shipped on the way. */
static void rewind_origin(repl_ship_t *s, uint32_t o, const char *why)
{
    int64_t first = INT64_MAX;
    size_t k = 0, n = 0;
    for (size_t i = 0; i < s->n_pend; i++) {
        if (s->pend[i].org == o) {
            if (s->pend[i].seq < first)
                first = s->pend[i].seq;
            n++;
        } else {
            s->pend[k++] = s->pend[i];
        }
    }
    s->n_pend = k;
    if (first == INT64_MAX)
        return;
    int64_t head = atomic_load(&s->r->last_seq);
    if (s->org[o].relay_until < head)
        s->org[o].relay_until = head;
    if (first - 1 < s->sent_seq) {
        s->sent_seq = first - 1;
        s->rewound = s->working;
    }
    kms_log(KMS_LOG_DEBUG, REPL_LOG, "to %s: relaying %zu changes of node %s from seq %lld (%s)",
            s->peer, n, s->org[o].node_id, (long long)first, why);
}

/* The peer's progress (ACK, HELLO_ACK): confirm pending rows, relay those
 * of an origin whose link with the peer is no longer open. */
static void take_progress(repl_ship_t *s, const repl_hwm_t *v, size_t n)
{
    if (!n)
        return;
    s->reports = true;
    for (size_t i = 0; i < s->n_org; i++)
        s->org[i].linked = false; /* an origin the report leaves out is not linked */
    for (size_t i = 0; i < n; i++) {
        size_t k = org_find(s->org, s->n_org, v[i].node_id);
        if (k == s->n_org) {
            if (k == SHIP_ORIGINS)
                continue;
            memset(&s->org[k], 0, sizeof s->org[k]);
            kms_strlcpy(s->org[k].node_id, v[i].node_id, sizeof s->org[k].node_id);
            s->n_org++;
        }
        if (v[i].seq > s->org[k].hwm)
            s->org[k].hwm = v[i].seq;
        s->org[k].linked = v[i].linked;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n_pend; i++)
        if (s->pend[i].origin_seq > s->org[s->pend[i].org].hwm)
            s->pend[k++] = s->pend[i];
    s->n_pend = k;
    for (uint32_t o = 0; o < s->n_org; o++)
        if (!s->org[o].linked)
            rewind_origin(s, o, "its link with that node is down");
}

/* Send the encoded frame in s->out, counted in flight until its ACK, and
 * wipe it. 0, or an error (the connection is closed). */
static int send_out(repl_ship_t *s, int64_t last_seq, int64_t first_hlc)
{
    inflight_t *i = calloc(1, sizeof *i);
    if (!i) {
        repl_conn_close(s->c, "out of memory");
        return KMS_ERR_NOMEM;
    }
    i->last_seq = last_seq;
    i->bytes = s->out.len;
    i->first_hlc = first_hlc;
    if (s->tail)
        s->tail->next = i;
    else
        s->head = i;
    s->tail = i;
    s->inflight_bytes += s->out.len;
    s->inflight_frames++;
    int rc = repl_conn_send_bytes(s->c, s->out.data, s->out.len);
    if (rc == 0)
        kms_wipe(s->out.data, s->out.len);
    return rc;
}

/* An empty CHANGES frame, to have the peer's progress in its ACK, naming
 * the position of the rows read since the last frame (`held`: sent for
 * that position). */
static void probe(repl_ship_t *s, bool held)
{
    repl_frame_t f = {.type = REPL_FRAME_CHANGES};
    int64_t seq = s->held_seq > s->high_seq ? s->held_seq : s->high_seq;
    f.u.changes.last_seq = seq;
    kms_buf_reset(&s->out);
    if (encode(s, &f) == 0 && send_out(s, seq, 0) == 0) {
        s->last_send_ms = repl_mono_ms();
        s->high_seq = seq;
        if (held)
            atomic_fetch_add(&s->r->position_frames, 1);
    }
    kms_buf_reset(&s->out);
}

/* Per link: relay rows unconfirmed for too long, or ask for progress. */
static bool relay_tick(repl_ship_t *s)
{
    uint64_t now = repl_mono_ms();
    bool lag = durable_lag(s);
    bool held = s->held_seq > s->high_seq;
    if (!s->n_pend && !lag && !held)
        return false;
    for (size_t i = 0; i < s->n_pend;)
        if (now - s->pend[i].t_ms >= SHIP_RELAY_GRACE_MS)
            rewind_origin(s, s->pend[i].org, "not confirmed in time");
        else
            i++;
    /* A probe also once the link is quiet while the peer has committed
     * less of our log than it acknowledged (its empty frames are
     * committed at most once a second): the log is trimmed only up to
     * what it made durable. */
    uint64_t quiet = s->n_pend ? SHIP_PROBE_MS : SHIP_DURABLE_PROBE_MS;
    bool idle = !s->working && s->phase == PH_LOG && repl_conn_can_send(s->c, REPL_SHIP_WINDOW);
    if (held && idle && s->inflight_frames < SHIP_LOG_FRAMES &&
        now - s->last_send_ms >= SHIP_EMPTY_MS)
        probe(s, true); /* a held position, once no frame named it for SHIP_EMPTY_MS */
    else if ((s->n_pend || lag) && idle && s->inflight_frames == 0 &&
             now - s->last_send_ms >= quiet)
        probe(s, false);
    report(s);
    repl_conn_t *c = s->c;
    schedule(s); /* may free s: the link closed */
    if (c->ship != s)
        return false;
    return s->n_pend > 0 || durable_lag(s) || s->held_seq > s->high_seq;
}

static void on_relay_timer(uv_timer_t *t)
{
    repl_t *r = t->data;
    bool any = false;
    for (repl_conn_t *c = r->conns; c; c = c->next)
        if (c->outbound && c->state == RC_OPEN && c->ship)
            any |= relay_tick(c->ship);
    if (!any) {
        uv_timer_stop(&r->relay_timer);
        r->relay_timer_on = false;
    }
}

static void work_done(uv_work_t *w, int status)
{
    repl_ship_t *s = w->data;
    repl_conn_t *c = s->c;
    s->working = false;
    if (!c) {
        ship_free(s); /* the link closed meanwhile */
        return;
    }
    if (status != 0 || s->out_rc != 0) {
        char why[120];
        snprintf(why, sizeof why, "cannot read the change log: %s",
                 kms_strerror(s->out_rc ? s->out_rc : KMS_ERR_INTERNAL));
        repl_conn_close(c, why);
        return;
    }
    if (s->out_frame && send_out(s, s->out_last_seq, s->out_first_hlc) != 0)
        return;
    if (s->phase == PH_LOG && !s->rewound) {
        if (s->out_last_seq > s->sent_seq)
            s->sent_seq = s->out_last_seq;
        pend_take(s);
        if (s->out_held && s->out_last_seq > s->held_seq) {
            s->held_seq = s->out_last_seq;
            relay_timer_arm(s->r);
        }
    }
    if (s->out_frame && s->out_last_seq > s->high_seq)
        s->high_seq = s->out_last_seq;
    if (s->out_frame)
        s->last_send_ms = repl_mono_ms();
    s->rewound = false;
    report(s);
    if (s->out_more)
        schedule(s);
}

static void schedule(repl_ship_t *s)
{
    repl_conn_t *c = s->c;
    if (!c || s->working || c->state != RC_OPEN)
        return;
    if (s->inflight_bytes >= REPL_SHIP_WINDOW || !repl_conn_can_send(c, REPL_SHIP_WINDOW) ||
        (s->phase == PH_LOG && s->inflight_frames >= SHIP_LOG_FRAMES))
        return; /* an ACK or a drained write calls again */
    if (s->phase == PH_LOG && s->sent_seq >= atomic_load(&s->r->last_seq))
        return; /* nothing new: the commit notification calls again */
    memcpy(s->worg, s->org, s->n_org * sizeof *s->org);
    s->n_worg = s->n_org;
    s->whigh = s->high_seq;
    s->whold = repl_mono_ms() - s->last_send_ms < SHIP_EMPTY_MS;
    s->n_out_pend = 0;
    s->wpend = s->n_pend < SHIP_PENDING_MAX ? SHIP_PENDING_MAX - s->n_pend : 0;
    if (s->wpend > SHIP_ROWS)
        s->wpend = SHIP_ROWS;
    s->working = true;
    s->work.data = s;
    if (s->phase == PH_LOG) {
        /* A few rows held in memory: encoded here, sent at once. */
        run_batch(s, true);
        if (s->out_rc != KMS_ERR_AGAIN) {
            atomic_fetch_add(&s->r->ship_inline, 1);
            work_done(&s->work, 0); /* may free s (the link closed) */
            return;
        }
        s->n_out_pend = 0;
        atomic_fetch_add(&s->r->ship_queued, 1);
    }
    if (uv_queue_work(&s->r->loop, &s->work, work_run, work_done) != 0) {
        s->working = false;
        repl_conn_close(c, "cannot queue work");
    }
}

/* ------------------------------------------------------------ public */
void repl_ship_start(repl_conn_t *c, int64_t link_pos, const repl_hwm_t *hwm, size_t n_hwm)
{
    repl_t *r = c->r;
    repl_ship_t *s = calloc(1, sizeof *s);
    if (!s || store_reader_new(r->opt.store, &s->rd) != 0) {
        free(s);
        repl_conn_close(c, "cannot open a store reader");
        return;
    }
    s->c = c;
    s->r = r;
    kms_strlcpy(s->peer, c->node->st.node_id, sizeof s->peer);
    kms_buf_init(&s->out, (r->opt.max_frame ? r->opt.max_frame : REPL_MAX_FRAME_DEFAULT) +
                              REPL_FRAME_HEADER);
    kms_buf_init(&s->ents, r->opt.max_frame ? r->opt.max_frame : REPL_MAX_FRAME_DEFAULT);
    s->out_pend = malloc(SHIP_ROWS * sizeof *s->out_pend);
    s->rows = malloc(SHIP_ROWS * sizeof *s->rows);
    if (!s->out_pend || !s->rows) {
        free(s->out_pend);
        free(s->rows);
        store_reader_free(s->rd);
        free(s);
        repl_conn_close(c, "out of memory");
        return;
    }
    s->sent_seq = s->acked_seq = s->high_seq = link_pos;
    c->ship = s;
    take_progress(s, hwm, n_hwm);
    bool seeded = false;
    for (size_t i = 0; i < n_hwm; i++)
        seeded |= hwm[i].seq > 0;
    /* Seed by snapshot when the log no longer holds what the peer lacks:
     * it was trimmed past link_pos, or the peer has nothing and we have
     * something (a peer seeded by another node's snapshot names the
     * positions it covered). */
    int64_t floor = repl_log_floor(r);
    int64_t last = atomic_load(&r->last_seq);
    if ((link_pos < floor) || (link_pos == 0 && last > 0 && !seeded)) {
        s->phase = PH_BEGIN;
    } else {
        s->phase = PH_LOG;
        /* Rows after the floor that this link or an earlier one skipped
         * (the peer was to get them directly) may still be missing there:
         * read them again; the peer's progress filters what it holds. */
        if (s->reports && floor < link_pos)
            s->sent_seq = floor;
    }
    repl_node_acked(r, c->node, link_pos, 0);
    report(s);
    schedule(s);
}

void repl_ship_acked(repl_conn_t *c, int64_t seq, const repl_hwm_t *hwm, size_t n_hwm)
{
    repl_ship_t *s = c->ship;
    if (!s)
        return;
    inflight_t *i = s->head;
    if (!i) {
        repl_conn_fail(c, REPL_ERROR_PROTO, "ACK with nothing in flight");
        return;
    }
    s->head = i->next;
    if (!s->head)
        s->tail = NULL;
    s->inflight_bytes -= i->bytes;
    s->inflight_frames--;
    free(i);
    if (seq > s->acked_seq)
        s->acked_seq = seq;
    take_progress(s, hwm, n_hwm);
    repl_node_acked(c->r, c->node, s->acked_seq, s->head ? s->head->first_hlc : 0);
    report(s);
    schedule(s);
}

void repl_ship_more(repl_conn_t *c)
{
    if (c->ship)
        schedule(c->ship);
}

void repl_ship_stop(repl_conn_t *c)
{
    repl_ship_t *s = c->ship;
    if (!s)
        return;
    c->ship = NULL;
    s->c = NULL;
    if (!s->working)
        ship_free(s);
}
