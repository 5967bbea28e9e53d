/*
 * store/apply.c: applying one write's mutations on the writer connection.
 *
 * Runs on the writer thread only, inside the group transaction and inside
 * the write's own SAVEPOINT (writer.c rolls the savepoint back when this
 * returns an error, so a failed write leaves nothing behind, including no
 * change-log row). Statements are prepared once per connection. It
 * deliberately does no validation of shapes (write.c did that) and no
 * waiting or batching (writer.c).
 */
#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

static const char *const wsql[WS__COUNT] = {
    [WS_BEGIN] = "BEGIN IMMEDIATE",
    [WS_COMMIT] = "COMMIT",
    [WS_ROLLBACK] = "ROLLBACK",
    [WS_SAVEPOINT] = "SAVEPOINT w",
    [WS_RELEASE] = "RELEASE w",
    [WS_ROLLBACK_TO] = "ROLLBACK TO w",
    [WS_OBJ_VERSION] = "SELECT oid, version, created_us FROM objects WHERE id = ?1",
    [WS_OBJ_INSERT] = "INSERT INTO objects(id, object_type, state, tenant, version, created_us,"
                      " updated_us, archived, dsk_id, blob, seal_gen)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12)",
    [WS_OBJ_UPDATE] = "UPDATE objects SET object_type = ?2, state = ?3, tenant = ?4,"
                      " version = ?5, created_us = ?6, updated_us = ?7, archived = ?8,"
                      " dsk_id = ?9, blob = ?10, seal_gen = ?12 WHERE oid = ?11 AND id = ?1",
    [WS_OBJ_DELETE] = "DELETE FROM objects WHERE oid = ?1",
    [WS_ATTR_DELETE] = "DELETE FROM attributes WHERE obj_id = ?1",
    [WS_LOG_INSERT] = "INSERT INTO change_log(obj_id, version, hlc, node_id, deleted)"
                      " VALUES (?1, ?2, ?3, ?4, ?5)",
    [WS_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [WS_TENANT_INSERT] = "INSERT INTO tenants(name, created_us) VALUES (?1, ?2)",
    [WS_TENANT_DELETE] = "DELETE FROM tenants WHERE name = ?1",
    [WS_TENANT_OBJECTS] = "SELECT EXISTS (SELECT 1 FROM objects WHERE tenant = ?1)",
    [WS_CLIENT_UPSERT] = "INSERT INTO clients(name, tenant, role, kind, cert_sha256,"
                         " password_hash, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                         " ON CONFLICT(name) DO UPDATE SET tenant = excluded.tenant,"
                         " role = excluded.role, kind = excluded.kind,"
                         " cert_sha256 = excluded.cert_sha256,"
                         " password_hash = excluded.password_hash",
    [WS_CLIENT_DELETE] = "DELETE FROM clients WHERE name = ?1",
};

int store_wstmt(store_t *s, enum store_wstmt which, sqlite3_stmt **out)
{
    return store_stmt(s->wdb, &s->ws[which], wsql[which], out);
}

void store_wstmt_finalize(store_t *s)
{
    for (int i = 0; i < WS__COUNT; i++) {
        sqlite3_finalize(s->ws[i]);
        s->ws[i] = NULL;
    }
    for (int i = 0; i <= STORE_ATTR_ROWS; i++) {
        sqlite3_finalize(s->attr_ins[i]);
        s->attr_ins[i] = NULL;
    }
}

/* INSERT of n attribute rows in one statement: one VM run instead of n.
 * The text is fixed per n (placeholders only). OR ROLLBACK: a multi-row
 * statement that could fail half-way with ABORT would make SQLite keep a
 * statement journal (a copy of every page it touches); with ROLLBACK it
 * need not. The only constraint that could fire is a repeated (name,
 * index), which store_write_put() already refuses. */
static int attr_insert_stmt(store_t *s, size_t n, sqlite3_stmt **out)
{
    if (!s->attr_ins[n]) {
        char sql[64 + STORE_ATTR_ROWS * 24];
        size_t len = (size_t)snprintf(sql, sizeof(sql), "INSERT OR ROLLBACK INTO attributes(obj_id, name,"
                                                        " idx, value, skey, nkey, ikey) VALUES ");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s(?,?,?,?,?,?,?)",
                                    i ? "," : "");
        if (len >= sizeof(sql))
            return KMS_ERR_INTERNAL;
        return store_stmt(s->wdb, &s->attr_ins[n], sql, out);
    }
    return store_stmt(s->wdb, &s->attr_ins[n], NULL, out);
}

static int insert_attrs(store_t *s, int64_t oid, const store_attr_t *attrs, size_t n_attrs)
{
    for (size_t done = 0; done < n_attrs;) {
        size_t n = n_attrs - done;
        if (n > STORE_ATTR_ROWS)
            n = STORE_ATTR_ROWS;
        sqlite3_stmt *st;
        int err = attr_insert_stmt(s, n, &st);
        if (err)
            return err;
        for (size_t i = 0; i < n; i++) {
            const store_attr_t *a = &attrs[done + i];
            int p = (int)i * 7;
            sqlite3_bind_int64(st, p + 1, oid);
            store_bind_text(st, p + 2, a->name);
            sqlite3_bind_int64(st, p + 3, a->index);
            sqlite3_bind_blob(st, p + 4, a->value, (int)a->value_len, SQLITE_STATIC);
            store_bind_text(st, p + 5, a->skey);
            if (a->has_nkey)
                sqlite3_bind_int64(st, p + 6, a->nkey);
            if (a->has_nkey && a->index_nkey)
                sqlite3_bind_int64(st, p + 7, a->nkey);
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            if ((rc & 0xff) == SQLITE_CONSTRAINT)
                return KMS_ERR_INVAL; /* the same (name, index) twice in one object */
            return store_sqlerr(s->wdb, rc, "put attributes");
        }
        done += n;
    }
    return 0;
}

/* Step a statement that returns no rows; reset it either way. */
static int run(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, what);
}

static bool is_constraint(store_t *s, int ext)
{
    return sqlite3_extended_errcode(s->wdb) == ext;
}

static int append_log(store_t *s, const char *id, int64_t version, bool deleted, int64_t now_us)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_LOG_INSERT, &st);
    if (err)
        return err;
    s->last_hlc = store_hlc_next(s->last_hlc, now_us / 1000);
    store_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_int64(st, 3, s->last_hlc);
    store_bind_text(st, 4, s->node_id);
    sqlite3_bind_int(st, 5, deleted ? 1 : 0);
    return run(s, st, "change log");
}

/* Current version of `id` (0 when absent), its internal key and its
 * creation time. */
static int current_version(store_t *s, const char *id, int64_t *ver, int64_t *oid,
                           int64_t *created)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_OBJ_VERSION, &st);
    if (err)
        return err;
    store_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    *ver = 0;
    if (rc == SQLITE_ROW) {
        *oid = sqlite3_column_int64(st, 0);
        *ver = sqlite3_column_int64(st, 1);
        *created = sqlite3_column_int64(st, 2);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, "read version");
}

static int version_ok(int64_t expect, int64_t cur)
{
    if (expect == STORE_VERSION_ANY)
        return 0;
    return expect == cur ? 0 : KMS_ERR_CONFLICT; /* NEW (0) means "absent" */
}

static int apply_put(store_t *s, store_op_t *op, int64_t now_us)
{
    const store_object_t *o = &op->obj;
    int64_t cur = 0, oid = 0, created = now_us;
    sqlite3_stmt *st;
    int err = 0;
    /* A create needs no read: the UNIQUE id refuses an existing object. */
    if (op->expect != STORE_VERSION_NEW) {
        err = current_version(s, o->id, &cur, &oid, &created);
        if (!err)
            err = version_ok(op->expect, cur);
        if (err)
            return err;
    }
    int64_t ver = cur + 1;
    if (cur) {
        err = store_wstmt(s, WS_ATTR_DELETE, &st);
        if (err)
            return err;
        sqlite3_bind_int64(st, 1, oid);
        err = run(s, st, "put");
        if (err)
            return err;
    }
    err = store_wstmt(s, cur ? WS_OBJ_UPDATE : WS_OBJ_INSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, o->id);
    sqlite3_bind_int64(st, 2, o->object_type);
    sqlite3_bind_int64(st, 3, o->state);
    store_bind_text(st, 4, o->tenant);
    sqlite3_bind_int64(st, 5, ver);
    sqlite3_bind_int64(st, 6, created);
    sqlite3_bind_int64(st, 7, now_us);
    sqlite3_bind_int(st, 8, o->archived ? 1 : 0);
    sqlite3_bind_int64(st, 9, o->sealed.dsk_id);
    if (o->sealed.blob)
        sqlite3_bind_blob(st, 10, o->sealed.blob, (int)o->sealed.len, SQLITE_STATIC);
    if (cur)
        sqlite3_bind_int64(st, 11, oid);
    sqlite3_bind_int64(st, 12, o->sealed.gen);
    err = run(s, st, "put");
    if (err == KMS_ERR_EXISTS && !cur && is_constraint(s, SQLITE_CONSTRAINT_UNIQUE))
        return KMS_ERR_CONFLICT; /* created meanwhile: the caller expected NEW */
    if (err)
        return err;
    if (!cur)
        oid = sqlite3_last_insert_rowid(s->wdb);
    err = insert_attrs(s, oid, o->attrs, o->n_attrs);
    if (err)
        return err;
    err = append_log(s, o->id, ver, false, now_us);
    if (!err)
        op->new_version = ver;
    return err;
}

static int apply_delete(store_t *s, store_op_t *op, int64_t now_us)
{
    int64_t cur = 0, oid = 0, created = 0;
    sqlite3_stmt *st;
    int err = current_version(s, op->key, &cur, &oid, &created);
    if (err)
        return err;
    if (!cur)
        return op->expect == STORE_VERSION_ANY ? KMS_ERR_NOTFOUND : KMS_ERR_CONFLICT;
    err = version_ok(op->expect, cur);
    if (err)
        return err;
    err = store_wstmt(s, WS_ATTR_DELETE, &st);
    if (!err) {
        sqlite3_bind_int64(st, 1, oid);
        err = run(s, st, "delete");
    }
    if (!err)
        err = store_wstmt(s, WS_OBJ_DELETE, &st);
    if (!err) {
        sqlite3_bind_int64(st, 1, oid);
        err = run(s, st, "delete");
    }
    /* The tombstone carries the next version so that replicas order it
     * after every put of the object. */
    if (!err)
        err = append_log(s, op->key, cur + 1, true, now_us);
    return err;
}

static int apply_meta(store_t *s, store_op_t *op)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_META_PUT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, op->key);
    sqlite3_bind_blob(st, 2, op->val, (int)op->val_len, SQLITE_STATIC);
    return run(s, st, "meta");
}

static int apply_tenant(store_t *s, store_op_t *op, int64_t now_us)
{
    sqlite3_stmt *st;
    int err;
    if (!op->remove) {
        err = store_wstmt(s, WS_TENANT_INSERT, &st);
        if (err)
            return err;
        store_bind_text(st, 1, op->key);
        sqlite3_bind_int64(st, 2, now_us);
        return run(s, st, "tenant"); /* KMS_ERR_EXISTS when present */
    }
    /* A tenant that still owns objects cannot go: its keys would become
     * reachable by whoever creates the name again. */
    err = store_wstmt(s, WS_TENANT_OBJECTS, &st);
    if (err)
        return err;
    store_bind_text(st, 1, op->key);
    int rc = sqlite3_step(st);
    bool owns = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return store_sqlerr(s->wdb, rc, "tenant");
    if (owns)
        return KMS_ERR_STATE;
    err = store_wstmt(s, WS_TENANT_DELETE, &st);
    if (err)
        return err;
    store_bind_text(st, 1, op->key);
    err = run(s, st, "tenant");
    if (err == KMS_ERR_EXISTS && is_constraint(s, SQLITE_CONSTRAINT_FOREIGNKEY))
        return KMS_ERR_STATE; /* clients still belong to it */
    if (!err && sqlite3_changes(s->wdb) == 0)
        return KMS_ERR_NOTFOUND;
    return err;
}

static int apply_client(store_t *s, store_op_t *op, int64_t now_us)
{
    const store_client_t *c = &op->client;
    sqlite3_stmt *st;
    int err;
    if (op->remove) {
        err = store_wstmt(s, WS_CLIENT_DELETE, &st);
        if (err)
            return err;
        store_bind_text(st, 1, c->name);
        err = run(s, st, "client");
        if (!err && sqlite3_changes(s->wdb) == 0)
            return KMS_ERR_NOTFOUND;
        return err;
    }
    err = store_wstmt(s, WS_CLIENT_UPSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, c->name);
    store_bind_text(st, 2, c->tenant);
    store_bind_text(st, 3, c->role);
    store_bind_text(st, 4, c->kind);
    store_bind_text(st, 5, strcmp(c->kind, "cert") == 0 ? c->cert_sha256 : "");
    store_bind_text(st, 6, strcmp(c->kind, "password") == 0 ? c->password_hash : "");
    sqlite3_bind_int64(st, 7, c->created_us ? c->created_us : now_us);
    err = run(s, st, "client");
    if (err == KMS_ERR_EXISTS && is_constraint(s, SQLITE_CONSTRAINT_FOREIGNKEY))
        return KMS_ERR_NOTFOUND; /* no such tenant */
    return err; /* KMS_ERR_EXISTS: certificate already bound to another client */
}

int store_apply(store_t *s, store_write_t *w, int64_t now_us)
{
    int err = 0;
    for (size_t i = 0; i < w->n_ops && !err; i++) {
        store_op_t *op = &w->ops[i];
        switch (op->kind) {
        case STORE_OP_PUT: err = apply_put(s, op, now_us); break;
        case STORE_OP_DELETE: err = apply_delete(s, op, now_us); break;
        case STORE_OP_META: err = apply_meta(s, op); break;
        case STORE_OP_TENANT: err = apply_tenant(s, op, now_us); break;
        case STORE_OP_CLIENT: err = apply_client(s, op, now_us); break;
        default: err = KMS_ERR_INTERNAL; break;
        }
    }
    return err;
}
