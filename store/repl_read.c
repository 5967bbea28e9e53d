/*
 * store/repl_read.c: what replication reads, without SQL.
 *
 * Objects with their clocks and change identity (any tenant, never from
 * the object cache), tombstones, tenants, nodes, per-peer progress and
 * data-store keys, and snapshots: one explicit read transaction on a
 * reader, inside which every read of that reader sees the same state
 * while the writer goes on committing (WAL). It writes nothing and knows
 * nothing of peers or frames; replication/ does.
 */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int text_field(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
    if (store_col_text(st, col, buf, cap) != 0) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "a stored replication row is malformed");
        return KMS_ERR_IO;
    }
    return 0;
}

/* --------------------------------------------------------------- rows */
static int row_tomb(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    (void)a;
    store_tombstone_t *t = dst;
    memset(t, 0, sizeof(*t));
    t->kind = (enum store_kind)sqlite3_column_int(st, 0);
    t->seq = sqlite3_column_int64(st, 5);
    int err = text_field(st, 1, t->key, sizeof(t->key));
    return err ? err : store_row_change_id(st, 2, &t->id);
}

static int row_tenant(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    (void)a;
    store_tenant_t *t = dst;
    memset(t, 0, sizeof(*t));
    t->created_us = sqlite3_column_int64(st, 1);
    int err = text_field(st, 0, t->name, sizeof(t->name));
    return err ? err : store_row_change_id(st, 2, &t->change);
}

static int row_node(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    (void)a;
    store_node_t *n = dst;
    memset(n, 0, sizeof(*n));
    int err = text_field(st, 0, n->node_id, sizeof(n->node_id));
    if (!err)
        err = text_field(st, 1, n->peer_addr, sizeof(n->peer_addr));
    if (!err)
        err = text_field(st, 2, n->kmip_addr, sizeof(n->kmip_addr));
    if (!err)
        err = text_field(st, 3, n->cert_sha256, sizeof(n->cert_sha256));
    n->added_hlc = sqlite3_column_int64(st, 4);
    n->removed = sqlite3_column_int(st, 5) != 0;
    return err ? err : store_row_change_id(st, 6, &n->change);
}

static int row_repl_state(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    (void)a;
    store_repl_state_t *p = dst;
    memset(p, 0, sizeof(*p));
    p->origin_hwm = sqlite3_column_int64(st, 1);
    p->link_pos = sqlite3_column_int64(st, 2);
    p->updated_us = sqlite3_column_int64(st, 3);
    return text_field(st, 0, p->node_id, sizeof(p->node_id));
}

/* A data-store key never replicated (made here before the cluster, or by
 * the first start) has no identity row: it reads as this node's, at
 * clock 0, so that it loses against any replicated change. */
static int row_change_or_local(store_reader_t *r, sqlite3_stmt *st, int col,
                               store_change_id_t *out)
{
    int err = store_row_change_id(st, col, out);
    if (!err && !out->origin[0])
        memcpy(out->origin, r->store->node_id, sizeof(out->origin));
    return err;
}

static int row_dsk(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)a;
    store_dsk_t *d = dst;
    memset(d, 0, sizeof(*d));
    int64_t id = sqlite3_column_int64(st, 0);
    if (id <= 0 || id > UINT32_MAX) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "a data-store key id in meta is out of range");
        return KMS_ERR_IO;
    }
    d->id = (uint32_t)id;
    return row_change_or_local(r, st, 1, &d->change);
}

/* ------------------------------------------------------------- reads */
int store_tombstone_get(store_reader_t *r, enum store_kind kind, const char *key,
                        store_tombstone_t *out)
{
    return key ? store_row_one(r, RS_TOMB_GET, (int)kind, key, row_tomb, out) : KMS_ERR_INVAL;
}

int store_each_tombstone(store_reader_t *r, store_tombstone_cb cb, void *arg)
{
    sqlite3_stmt *st;
    if (!r || !cb)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_TOMB_LIST, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_tombstone_t t;
        if ((err = row_tomb(r, st, NULL, &t)) != 0)
            break;
        if (cb(&t, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!err && rc != SQLITE_DONE)
        err = store_sqlerr(r->db, rc, "tombstones");
    sqlite3_reset(st);
    return err;
}

int store_tenant_get(store_reader_t *r, const char *name, store_tenant_t *out)
{
    return name ? store_row_one(r, RS_TENANT_GET, -1, name, row_tenant, out) : KMS_ERR_INVAL;
}

int store_list_tenants_repl(store_reader_t *r, kms_arena_t *a, store_tenant_t **out,
                            size_t *n_out)
{
    return store_rows_all(r, RS_TENANT_LIST_REPL, a, sizeof(**out), row_tenant, (void **)out, n_out);
}

int store_node_get(store_reader_t *r, const char *node_id, store_node_t *out)
{
    return node_id ? store_row_one(r, RS_NODE_GET, -1, node_id, row_node, out) : KMS_ERR_INVAL;
}

int store_list_nodes(store_reader_t *r, kms_arena_t *a, store_node_t **out, size_t *n_out)
{
    return store_rows_all(r, RS_NODE_LIST, a, sizeof(**out), row_node, (void **)out, n_out);
}

int store_repl_state(store_reader_t *r, const char *node_id, store_repl_state_t *out)
{
    return node_id ? store_row_one(r, RS_REPL_STATE_GET, -1, node_id, row_repl_state, out)
                   : KMS_ERR_INVAL;
}

int store_list_repl_state(store_reader_t *r, kms_arena_t *a, store_repl_state_t **out,
                          size_t *n_out)
{
    return store_rows_all(r, RS_REPL_STATE_LIST, a, sizeof(**out), row_repl_state, (void **)out,
                    n_out);
}

int store_list_dsks(store_reader_t *r, kms_arena_t *a, store_dsk_t **out, size_t *n_out)
{
    return store_rows_all(r, RS_DSK_LIST, a, sizeof(**out), row_dsk, (void **)out, n_out);
}

int store_dsk_get(store_reader_t *r, uint32_t id, store_dsk_t *out)
{
    char key[16];
    if (id == 0)
        return KMS_ERR_NOTFOUND;
    snprintf(key, sizeof(key), "%" PRIu32, id);
    return store_row_one(r, RS_DSK_GET, -1, key, row_dsk, out);
}

static int row_dsk_current(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    store_dsk_t *d = dst;
    int err = row_dsk(r, st, a, d);
    if (err == KMS_ERR_IO)
        kms_log(KMS_LOG_ERROR, STORE_LOG, "meta dsk.current is malformed");
    return err;
}

int store_dsk_current(store_reader_t *r, uint32_t *id_out, store_change_id_t *change_out)
{
    store_dsk_t d;
    if (!id_out)
        return KMS_ERR_INVAL;
    int err = store_row_one(r, RS_DSK_CURRENT, -1, NULL, row_dsk_current, &d);
    if (err)
        return err;
    *id_out = d.id;
    if (change_out)
        *change_out = d.change;
    return 0;
}

/* ---------------------------------------------------- transactions */
static int txn(store_reader_t *r, enum store_rstmt which)
{
    sqlite3_stmt *st;
    int err = store_rstmt(r, which, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(r->db, rc, "read transaction");
}

int store_get_repl(store_reader_t *r, kms_arena_t *arena, const char *id, store_object_t **obj_out,
                   store_tombstone_t *tomb_out)
{
    sqlite3_stmt *st;
    store_tombstone_t t;
    if (!r || !arena || !id || !obj_out)
        return KMS_ERR_INVAL;
    *obj_out = NULL;
    if (tomb_out)
        memset(tomb_out, 0, sizeof(*tomb_out));
    if (!id[0] || strlen(id) >= sizeof((*obj_out)->id))
        return KMS_ERR_NOTFOUND;
    /* Object and tombstone from one snapshot. */
    bool own = !r->in_snapshot;
    int err = own ? txn(r, RS_BEGIN) : 0;
    if (err)
        return err;
    err = store_rstmt(r, RS_OBJ_GET_REPL, &st);
    if (!err) {
        store_bind_text(st, 1, id);
        err = store_read_object(r, st, arena, id, true, obj_out);
    }
    int terr = err && err != KMS_ERR_NOTFOUND
                   ? err
                   : store_row_one(r, RS_TOMB_GET, STORE_KIND_OBJECT, id, row_tomb, &t);
    if (own) {
        int cerr = txn(r, RS_COMMIT);
        if (!err)
            err = cerr;
    }
    if (err && err != KMS_ERR_NOTFOUND)
        return err;
    if (terr && terr != KMS_ERR_NOTFOUND)
        return terr;
    if (terr == 0 && tomb_out)
        *tomb_out = t;
    return *obj_out || terr == 0 ? 0 : KMS_ERR_NOTFOUND;
}

int store_snapshot_begin(store_reader_t *r, int64_t *seq_out)
{
    if (!r)
        return KMS_ERR_INVAL;
    if (r->in_snapshot)
        return KMS_ERR_STATE;
    int err = txn(r, RS_BEGIN);
    if (err)
        return err;
    /* The first read starts the read transaction: the snapshot is now. */
    int64_t seq = store_last_seq(r);
    if (seq < 0) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return (int)seq;
    }
    r->in_snapshot = true;
    r->snapshot_seq = seq;
    if (seq_out)
        *seq_out = seq;
    return 0;
}

int64_t store_snapshot_seq(const store_reader_t *r)
{
    return r && r->in_snapshot ? r->snapshot_seq : KMS_ERR_STATE;
}

int store_snapshot_end(store_reader_t *r)
{
    if (!r || !r->in_snapshot)
        return KMS_ERR_STATE;
    r->in_snapshot = false;
    int err = txn(r, RS_COMMIT);
    if (err)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

int store_snapshot_objects(store_reader_t *r, const char *after_id, size_t limit,
                           store_object_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    store_attrs_t acc;
    store_object_t o;
    kms_arena_t *a = NULL;
    bool have = false;
    int rc, err;
    if (!r || !cb)
        return KMS_ERR_INVAL;
    store_attrs_init(&acc);
    if (!(a = kms_arena_new(0)))
        return KMS_ERR_NOMEM;
    if ((err = store_rstmt(r, RS_SNAP_OBJECTS, &st)) != 0)
        goto out;
    store_bind_text(st, 1, after_id ? after_id : "");
    sqlite3_bind_int64(st, 2, limit && limit <= INT64_MAX ? (int64_t)limit : -1);
    /* Rows come grouped by object (id order), attributes in (name,
     * index) order; an object is handed over when the next one starts. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, STORE_REPL_COL + 4);
        if (!id)
            continue;
        if (!have || strcmp(id, o.id) != 0) {
            if (have) {
                if ((err = store_attrs_finish(&acc, a, &o)) != 0)
                    goto out;
                if (cb(&o, arg) != 0)
                    goto out;
                kms_arena_reset(a);
            }
            memset(&o, 0, sizeof(o));
            if ((err = text_field(st, STORE_REPL_COL + 4, o.id, sizeof(o.id))) != 0 ||
                (err = store_row_object(a, st, true, &o)) != 0)
                goto out;
            have = true;
        }
        if (sqlite3_column_type(st, STORE_ATTR_COL) != SQLITE_NULL &&
            (err = store_attrs_add(&acc, a, st)))
            goto out;
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "snapshot");
        goto out;
    }
    if (have && (err = store_attrs_finish(&acc, a, &o)) == 0)
        (void)cb(&o, arg);
out:
    if (st)
        sqlite3_reset(st);
    store_attrs_dispose(&acc);
    kms_arena_free(a);
    return err;
}
