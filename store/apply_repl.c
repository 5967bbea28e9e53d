/*
 * store/apply_repl.c: the writer's side of replication.
 *
 * Tombstones, the clocks column of a put, applied remote rows of tenants,
 * clients and nodes (last writer wins by (hlc, origin) against the row and
 * its tombstone), data-store key rows, the current-key register, per-peer
 * progress and trimming. Runs on the writer thread inside the group
 * transaction, like apply.c, whose row helpers it shares. It does not
 * merge objects: replication's merge rule does, and puts the result with
 * store_write_put_repl (apply.c).
 */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool newer(const store_change_id_t *a, const store_change_id_t *b)
{
    return store_clock_cmp(a->hlc, a->origin, b->hlc, b->origin) > 0;
}

/* --------------------------------------------------------- tombstones */
int store_tomb_read(store_t *s, enum store_kind kind, const char *key, store_change_id_t *out)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_TOMB_GET, &st);
    if (err)
        return err;
    sqlite3_bind_int(st, 1, (int)kind);
    store_bind_text(st, 2, key);
    int rc = sqlite3_step(st);
    int has = 0;
    if (rc == SQLITE_ROW)
        has = (err = store_row_change_id(st, 0, out)) != 0 ? err : 1;
    else if (rc != SQLITE_DONE)
        has = store_sqlerr(s->wdb, rc, "tombstone");
    sqlite3_reset(st);
    return has;
}

/* The local log position of the current op's change: its own row, or
 * (no-log writes) the last seq so far, so that a trim past this point
 * drops the tombstone with everything before it. */
static int op_seq(store_t *s, int64_t *out)
{
    if (s->log_seq) {
        *out = s->log_seq;
        return 0;
    }
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_LAST_SEQ, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(s->wdb, rc, "last seq");
}

int store_tomb_write(store_t *s, enum store_kind kind, const char *key, const store_change_id_t *id)
{
    sqlite3_stmt *st;
    int64_t seq;
    int err = op_seq(s, &seq);
    if (!err)
        err = store_wstmt(s, WS_TOMB_PUT, &st);
    if (err)
        return err;
    sqlite3_bind_int(st, 1, (int)kind);
    store_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, id->hlc);
    store_bind_text(st, 4, id->origin);
    sqlite3_bind_int64(st, 5, id->origin_seq);
    sqlite3_bind_int64(st, 6, seq);
    return store_wrun(s, st, "tombstone");
}

int store_tomb_remove(store_t *s, enum store_kind kind, const char *key)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_TOMB_DELETE, &st);
    if (err)
        return err;
    sqlite3_bind_int(st, 1, (int)kind);
    store_bind_text(st, 2, key);
    return store_wrun(s, st, "tombstone");
}

/* ------------------------------------------------------------- clocks */
static int bind_encoded(store_t *s, sqlite3_stmt *st, int col, const store_clock_t *c, size_t n)
{
    kms_buf_reset(&s->wbuf);
    int err = store_clocks_encode(c, n, &s->wbuf);
    if (err)
        return err;
    s->wclocks_bound = true;
    /* s->wbuf stays untouched until the statement has run. */
    return sqlite3_bind_blob(st, col, s->wbuf.data, (int)s->wbuf.len, SQLITE_STATIC) == SQLITE_OK
               ? 0
               : KMS_ERR_INTERNAL;
}

int store_bind_clocks(store_t *s, sqlite3_stmt *st, int col, const store_op_t *op,
                      const store_change_id_t *id, const uint8_t *old, size_t old_len,
                      const store_change_id_t *old_id)
{
    const store_object_t *o = &op->obj;
    s->wclocks_bound = false;
    if (op->repl) {
        /* Exactly as given; the one-entry list "every name at this
         * change" is the NULL column (what a create stores). */
        if (o->n_clocks == 1 && o->clocks[0].name[0] == '\0' && o->clocks[0].hlc == id->hlc &&
            strcmp(o->clocks[0].node, id->origin) == 0)
            return 0;
        return bind_encoded(s, st, col, o->clocks, o->n_clocks);
    }
    /* A create, or a put that rewrote every name: all at this change. */
    if (!old_id || !o->touched)
        return 0;
    store_clock_t *c = NULL;
    size_t n = 0;
    if (old && store_clocks_decode(old, old_len, s->wscratch, &c, &n) != 0) {
        /* Not ours to lose the object over: start again from the row's
         * last change, which is no older than any name's clock. */
        kms_log(KMS_LOG_ERROR, STORE_LOG, "object %s: stored clocks do not decode; reset",
                o->id);
        c = NULL;
        n = 0;
        old = NULL;
    }
    if (n + o->n_touched + 1 > STORE_CLOCKS_MAX)
        return KMS_ERR_LIMIT;
    store_clock_t *v = kms_arena_alloc(s->wscratch, (n + o->n_touched + 1) * sizeof(*v));
    if (!v)
        return KMS_ERR_NOMEM;
    if (n)
        memcpy(v, c, n * sizeof(*v));
    else if (!old) /* NULL column: the default is the old change's clock */
        v[n++] = (store_clock_t){.name = STORE_CLOCK_DEFAULT, .hlc = old_id->hlc,
                                 .node = old_id->origin[0] ? old_id->origin : s->node_id};
    for (size_t t = 0; t < o->n_touched; t++) {
        size_t k = 0;
        while (k < n && strcmp(v[k].name, o->touched[t]) != 0)
            k++;
        if (k == n)
            v[n++].name = o->touched[t];
        v[k].hlc = id->hlc;
        v[k].node = s->node_id;
    }
    return bind_encoded(s, st, col, v, n);
}

/* ------------------------------------------------------ LWW registers */
/* The row's change identity (and `removed` for nodes): 1, or 0 when there
 * is no row. */
static int row_clock(store_t *s, enum store_wstmt which, const char *key, store_change_id_t *id,
                     bool *removed)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, which, &st);
    if (err)
        return err;
    if (key)
        store_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    int has = 0;
    if (rc == SQLITE_ROW) {
        has = (err = store_row_change_id(st, 0, id)) != 0 ? err : 1;
        if (removed)
            *removed = which == WS_ROW_CLOCK_NODE && sqlite3_column_int(st, 3) != 0;
    } else if (rc != SQLITE_DONE) {
        has = store_sqlerr(s->wdb, rc, "row clock");
    }
    sqlite3_reset(st);
    return has;
}

/* Is change op->id newer than the row `key` (statement `which`) and its
 * tombstone? 1 yes, 0 no, <0 error. *tomb_out: a tombstone exists. */
static int fresh(store_t *s, const store_op_t *op, enum store_kind kind, enum store_wstmt which,
                 const char *key, bool *tomb_out)
{
    store_change_id_t row, t;
    int has = row_clock(s, which, key, &row, NULL);
    if (has < 0)
        return has;
    if (has && !newer(&op->id, &row))
        return 0;
    int tomb = store_tomb_read(s, kind, key, &t);
    if (tomb < 0)
        return tomb;
    *tomb_out = tomb == 1;
    return !tomb || newer(&op->id, &t);
}

static int tenant_or_client_put(store_t *s, store_op_t *op, int64_t now_us)
{
    bool tenant = op->kind == STORE_OP_TENANT;
    enum store_kind kind = tenant ? STORE_KIND_TENANT : STORE_KIND_CLIENT;
    const char *key = tenant ? op->key : op->client.name;
    store_change_id_t id;
    bool tomb = false;
    int ok = fresh(s, op, kind, tenant ? WS_ROW_CLOCK_TENANT : WS_ROW_CLOCK_CLIENT, key, &tomb);
    if (ok <= 0)
        return ok; /* older than what is here: skipped, not relayed */
    int err = store_log_change(s, op, kind, key, 0, false, now_us, &id);
    if (!err && tenant)
        err = store_tenant_put_row(s, key, op->created_us ? op->created_us : now_us, &id, true);
    else if (!err)
        err = store_client_put_row(s, &op->client,
                                   op->client.created_us ? op->client.created_us : now_us, &id,
                                   true);
    if (!err && tomb)
        err = store_tomb_remove(s, kind, key);
    return err;
}

static int tenant_or_client_remove(store_t *s, store_op_t *op, int64_t now_us)
{
    bool tenant = op->kind == STORE_OP_TENANT;
    enum store_kind kind = tenant ? STORE_KIND_TENANT : STORE_KIND_CLIENT;
    const char *key = tenant ? op->key : op->client.name;
    store_change_id_t row, t, id;
    int has = row_clock(s, tenant ? WS_ROW_CLOCK_TENANT : WS_ROW_CLOCK_CLIENT, key, &row, NULL);
    if (has < 0)
        return has;
    int tomb = store_tomb_read(s, kind, key, &t);
    if (tomb < 0)
        return tomb;
    bool drop_row = has && newer(&op->id, &row);
    bool new_tomb = !tomb || newer(&op->id, &t);
    if (!drop_row && !new_tomb)
        return 0;
    int err = 0;
    if (drop_row)
        err = tenant ? store_tenant_remove(s, key) : store_client_remove(s, key);
    if (!err)
        err = store_log_change(s, op, kind, key, 0, true, now_us, &id);
    if (!err && new_tomb)
        err = store_tomb_write(s, kind, key, &id);
    return err;
}

static int node_put(store_t *s, store_op_t *op, int64_t now_us)
{
    const store_node_t *n = op->node;
    store_change_id_t row, id;
    bool removed = false;
    sqlite3_stmt *st;
    int err;
    if (op->repl) {
        int has = row_clock(s, WS_ROW_CLOCK_NODE, n->node_id, &row, &removed);
        if (has < 0)
            return has;
        if (has && !newer(&op->id, &row)) {
            /* Older than the row: only `removed` may still change. It is
             * sticky whatever the clocks, so that a removal concurrent
             * with an update of the node wins on every node. */
            if (!n->removed || removed)
                return 0;
            err = store_log_change(s, op, STORE_KIND_NODE, n->node_id, 0, false, now_us, &id);
            if (!err)
                err = store_wstmt(s, WS_NODE_REMOVE, &st);
            if (err)
                return err;
            store_bind_text(st, 1, n->node_id);
            return store_wrun(s, st, "node");
        }
    }
    err = store_log_change(s, op, STORE_KIND_NODE, n->node_id, 0, false, now_us, &id);
    if (!err)
        err = store_wstmt(s, WS_NODE_UPSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, n->node_id);
    store_bind_text(st, 2, n->peer_addr);
    store_bind_text(st, 3, n->kmip_addr);
    store_bind_text(st, 4, n->cert_sha256);
    sqlite3_bind_int64(st, 5, n->added_hlc);
    sqlite3_bind_int(st, 6, n->removed ? 1 : 0);
    sqlite3_bind_int64(st, 7, id.hlc);
    store_bind_text(st, 8, id.origin);
    sqlite3_bind_int64(st, 9, id.origin_seq);
    return store_wrun(s, st, "node");
}

/* ---------------------------------------------------- data-store keys */
static int meta_put(store_t *s, const char *key, const void *val, size_t len)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_META_PUT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, key);
    sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
    return store_wrun(s, st, "meta");
}

static int put_change_row(store_t *s, enum store_wstmt which, int64_t id_col,
                          const store_change_id_t *id)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, which, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, id_col);
    sqlite3_bind_int64(st, 2, id->hlc);
    store_bind_text(st, 3, id->origin);
    sqlite3_bind_int64(st, 4, id->origin_seq);
    return store_wrun(s, st, "dsk");
}

static int dsk_put(store_t *s, store_op_t *op, int64_t now_us)
{
    char meta_key[32], key[16];
    snprintf(meta_key, sizeof(meta_key), "dsk.%" PRIu32, op->dsk_id);
    snprintf(key, sizeof(key), "%" PRIu32, op->dsk_id);
    sqlite3_stmt *st;
    store_change_id_t id;
    int err = store_wstmt(s, WS_DSK_EXISTS, &st);
    if (err)
        return err;
    store_bind_text(st, 1, meta_key);
    int rc = sqlite3_step(st);
    bool exists = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return store_sqlerr(s->wdb, rc, "dsk");
    /* Ids are never reused: a local one must be new; an applied one that
     * is here already is the same key (replication compared the bytes). */
    if (exists)
        return op->repl ? 0 : KMS_ERR_EXISTS;
    err = store_log_change(s, op, STORE_KIND_DSK, key, 0, false, now_us, &id);
    if (!err)
        err = meta_put(s, meta_key, op->val, op->val_len);
    if (!err)
        err = put_change_row(s, WS_DSK_PUT, op->dsk_id, &id);
    return err;
}

static int dsk_current_put(store_t *s, store_op_t *op, int64_t now_us)
{
    char val[16];
    store_change_id_t row, id;
    if (op->repl) {
        int has = row_clock(s, WS_DSK_CURRENT_GET, NULL, &row, NULL);
        if (has < 0)
            return has;
        if (has && !newer(&op->id, &row))
            return 0;
    }
    int n = snprintf(val, sizeof(val), "%" PRIu32, op->dsk_id);
    int err = store_log_change(s, op, STORE_KIND_DSK, STORE_DSK_CURRENT_KEY, 0, false, now_us,
                               &id);
    if (!err)
        err = meta_put(s, "dsk.current", val, (size_t)n);
    if (!err)
        err = put_change_row(s, WS_DSK_CURRENT_PUT, op->dsk_id, &id);
    return err;
}

/* ------------------------------------------------- progress and trim */
static int repl_state_put(store_t *s, store_op_t *op, int64_t now_us)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, op->kind == STORE_OP_REPL_STATE ? WS_REPL_STATE_PUT
                                                             : WS_REPL_STATE_DROP, &st);
    if (err)
        return err;
    store_bind_text(st, 1, op->key);
    if (op->kind == STORE_OP_REPL_STATE) {
        sqlite3_bind_int64(st, 2, op->hwm);
        sqlite3_bind_int64(st, 3, op->pos);
        sqlite3_bind_int64(st, 4, now_us);
    }
    return store_wrun(s, st, "repl state");
}

static int trim(store_t *s, store_op_t *op)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_TRIM_LOG, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, op->pos);
    if ((err = store_wrun(s, st, "trim")) != 0 || (err = store_wstmt(s, WS_TRIM_TOMBS, &st)) != 0)
        return err;
    sqlite3_bind_int64(st, 1, op->pos);
    /* The rows that showed the clock's high-water mark may be gone. */
    s->hlc_floor_dirty = true;
    return store_wrun(s, st, "trim");
}

int store_hlc_floor_save(store_t *s)
{
    char val[24];
    int n = snprintf(val, sizeof(val), "%" PRId64, s->last_hlc);
    return meta_put(s, STORE_META_HLC_FLOOR, val, (size_t)n);
}

int store_apply_repl(store_t *s, store_op_t *op, int64_t now_us)
{
    switch (op->kind) {
    case STORE_OP_TENANT:
    case STORE_OP_CLIENT:
        return op->remove ? tenant_or_client_remove(s, op, now_us)
                          : tenant_or_client_put(s, op, now_us);
    case STORE_OP_NODE: return node_put(s, op, now_us);
    case STORE_OP_DSK: return dsk_put(s, op, now_us);
    case STORE_OP_DSK_CURRENT: return dsk_current_put(s, op, now_us);
    case STORE_OP_REPL_STATE:
    case STORE_OP_REPL_STATE_DROP: return repl_state_put(s, op, now_us);
    case STORE_OP_TRIM: return trim(s, op);
    default: return KMS_ERR_INTERNAL;
    }
}
