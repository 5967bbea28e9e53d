/*
 * store/async.c: the records of KMIP asynchronous operations (table
 * async_ops, schema v8): who started which operation under which
 * Asynchronous Correlation Value, whether it is pending, done or
 * canceled, and its answer once done.
 *
 * The table is node-local: its writes go through the writer and its group
 * commit like everything else, but they never reach the change log, so
 * replication does not ship them and a peer never sees another node's
 * pending operations (a client polls the node it asked). What it holds is
 * bounded by the caller (kmip/op_async.c: lifetime and count per identity)
 * and never key material: only the operations whose answers carry none are
 * run asynchronously. It does not interpret the answer bytes.
 */
#include <string.h>

#include "store/store_int.h"

static int copy_corr(store_op_t *op, store_write_t *w, const uint8_t *corr, size_t len)
{
    if (!corr || len == 0 || len > STORE_ASYNC_CORR_MAX)
        return KMS_ERR_INVAL;
    op->val = kms_arena_memdup(w->arena, corr, len);
    op->val_len = len;
    return op->val ? 0 : KMS_ERR_NOMEM;
}

int store_write_async(store_write_t *w, const store_async_t *a)
{
    store_op_t *op;
    int rc;

    if (!w || !a || !a->identity || !a->tenant || (a->result_len && !a->result))
        return KMS_ERR_INVAL;
    if (!(op = store_write_add_op(w, STORE_OP_ASYNC)))
        return KMS_ERR_NOMEM;
    if ((rc = copy_corr(op, w, a->corr, a->corr_len)))
        return rc;
    if (!(op->async = kms_arena_memdup(w->arena, a, sizeof *a)) ||
        !(op->async->identity = kms_arena_strdup(w->arena, a->identity)) ||
        !(op->async->tenant = kms_arena_strdup(w->arena, a->tenant)) ||
        (a->result_len &&
         !(op->async->result = kms_arena_memdup(w->arena, a->result, a->result_len))))
        return KMS_ERR_NOMEM;
    op->async->corr = op->val;
    w->n_ops++;
    return 0;
}

int store_write_async_delete(store_write_t *w, const uint8_t *corr, size_t len, int64_t before_us)
{
    store_op_t *op;
    int rc;

    if (!w || (!corr && before_us <= 0))
        return KMS_ERR_INVAL;
    if (!(op = store_write_add_op(w, STORE_OP_ASYNC_DELETE)))
        return KMS_ERR_NOMEM;
    if (corr && (rc = copy_corr(op, w, corr, len)))
        return rc;
    op->hwm = before_us;
    w->n_ops++;
    return 0;
}

int store_apply_async(store_t *s, store_op_t *op)
{
    static const char *const put_sql =
        "INSERT OR REPLACE INTO async_ops (corr, identity, tenant, operation, state, epoch,"
        " created_us, expires_us, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    static const char *const del_sql = "DELETE FROM async_ops WHERE corr = ?1";
    static const char *const sweep_sql = "DELETE FROM async_ops WHERE expires_us < ?1";
    const store_async_t *a = op->async;
    const char *sql = op->kind == STORE_OP_ASYNC ? put_sql : op->val ? del_sql : sweep_sql;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->wdb, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return store_sqlerr(s->wdb, rc, "async");
    if (op->kind == STORE_OP_ASYNC) {
        sqlite3_bind_blob(st, 1, a->corr, (int)a->corr_len, SQLITE_STATIC);
        store_bind_text(st, 2, a->identity);
        store_bind_text(st, 3, a->tenant);
        sqlite3_bind_int64(st, 4, a->operation);
        sqlite3_bind_int64(st, 5, a->state);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)a->epoch);
        sqlite3_bind_int64(st, 7, a->created_us);
        sqlite3_bind_int64(st, 8, a->expires_us);
        sqlite3_bind_blob(st, 9, a->result ? (const void *)a->result : "", (int)a->result_len,
                          SQLITE_STATIC);
    } else if (op->val) {
        sqlite3_bind_blob(st, 1, op->val, (int)op->val_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 1, op->hwm);
    }
    rc = sqlite3_step(st);
    int err = rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, "async");
    sqlite3_finalize(st);
    return err;
}

int store_async_get(store_reader_t *r, kms_arena_t *arena, const uint8_t *corr, size_t len,
                    store_async_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, err;

    if (!r || !arena || !corr || !out || len == 0 || len > STORE_ASYNC_CORR_MAX)
        return KMS_ERR_INVAL;
    memset(out, 0, sizeof *out);
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT identity, tenant, operation, state, epoch, created_us,"
                            " expires_us, result FROM async_ops WHERE corr = ?1",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlerr(r->db, rc, "async");
    sqlite3_bind_blob(st, 1, corr, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *res = sqlite3_column_blob(st, 7);
        int rlen = sqlite3_column_bytes(st, 7);
        out->corr = kms_arena_memdup(arena, corr, len);
        out->corr_len = len;
        out->identity = kms_arena_strdup(arena, (const char *)sqlite3_column_text(st, 0));
        out->tenant = kms_arena_strdup(arena, (const char *)sqlite3_column_text(st, 1));
        out->operation = (uint32_t)sqlite3_column_int64(st, 2);
        out->state = (int)sqlite3_column_int64(st, 3);
        out->epoch = (uint64_t)sqlite3_column_int64(st, 4);
        out->created_us = sqlite3_column_int64(st, 5);
        out->expires_us = sqlite3_column_int64(st, 6);
        out->result_len = rlen > 0 ? (size_t)rlen : 0;
        out->result = rlen > 0 ? kms_arena_memdup(arena, res, (size_t)rlen) : NULL;
        err = out->corr && out->identity && out->tenant && (rlen <= 0 || out->result)
                  ? 0 : KMS_ERR_NOMEM;
    } else {
        err = rc == SQLITE_DONE ? KMS_ERR_NOTFOUND : store_sqlerr(r->db, rc, "async");
    }
    sqlite3_finalize(st);
    return err;
}

int store_async_count(store_reader_t *r, const char *identity, const char *tenant,
                      int64_t now_us, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc, err;

    if (!r || !identity || !tenant || !n_out)
        return KMS_ERR_INVAL;
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT count(*) FROM async_ops WHERE identity = ?1 AND tenant = ?2"
                            " AND expires_us >= ?3",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlerr(r->db, rc, "async");
    store_bind_text(st, 1, identity);
    store_bind_text(st, 2, tenant);
    sqlite3_bind_int64(st, 3, now_us);
    rc = sqlite3_step(st);
    err = rc == SQLITE_ROW ? 0 : store_sqlerr(r->db, rc, "async");
    if (!err)
        *n_out = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return err;
}
