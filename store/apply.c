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

#define OBJ_ID_COLS "hlc, origin, origin_seq"

static const char *const wsql[WS__COUNT] = {
    [WS_BEGIN] = "BEGIN IMMEDIATE",
    [WS_COMMIT] = "COMMIT",
    [WS_ROLLBACK] = "ROLLBACK",
    [WS_SAVEPOINT] = "SAVEPOINT w",
    [WS_RELEASE] = "RELEASE w",
    [WS_ROLLBACK_TO] = "ROLLBACK TO w",
    [WS_OBJ_VERSION] = "SELECT oid, version, created_us, " OBJ_ID_COLS ", clocks"
                       " FROM objects WHERE id = ?1",
    [WS_OBJ_INSERT] = "INSERT INTO objects(id, object_type, state, tenant, version, created_us,"
                      " updated_us, archived, dsk_id, blob, seal_gen, " OBJ_ID_COLS ", clocks)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?16, ?12, ?13, ?14, ?15)",
    [WS_OBJ_UPDATE] = "UPDATE objects SET object_type = ?2, state = ?3, tenant = ?4,"
                      " version = ?5, created_us = ?6, updated_us = ?7, archived = ?8,"
                      " dsk_id = ?9, blob = ?10, seal_gen = ?16, hlc = ?12, origin = ?13,"
                      " origin_seq = ?14, clocks = ?15 WHERE oid = ?11 AND id = ?1",
    [WS_OBJ_DELETE] = "DELETE FROM objects WHERE oid = ?1",
    [WS_ATTR_DELETE] = "DELETE FROM attributes WHERE obj_id = ?1",
    [WS_LOG_INSERT] = "INSERT INTO change_log(kind, key, version, hlc, origin, origin_seq, deleted)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [WS_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [WS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [WS_TENANT_INSERT] = "INSERT INTO tenants(name, created_us, " OBJ_ID_COLS ")"
                         " VALUES (?1, ?2, ?3, ?4, ?5)",
    [WS_TENANT_DELETE] = "DELETE FROM tenants WHERE name = ?1",
    [WS_TENANT_OBJECTS] = "SELECT EXISTS (SELECT 1 FROM objects WHERE tenant = ?1)",
    [WS_CLIENT_UPSERT] = "INSERT INTO clients(name, tenant, role, kind, cert_sha256,"
                         " password_hash, created_us, " OBJ_ID_COLS ", device_serial,"
                         " device_id, network_id, machine_id, media_id, disabled, disabled_us,"
                         " disabled_reason)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?13, ?14,"
                         " ?15, ?16, ?17, ?18, ?19)"
                         " ON CONFLICT(name) DO UPDATE SET tenant = excluded.tenant,"
                         " role = excluded.role, kind = excluded.kind,"
                         " cert_sha256 = excluded.cert_sha256,"
                         " password_hash = excluded.password_hash, hlc = excluded.hlc,"
                         " origin = excluded.origin, origin_seq = excluded.origin_seq,"
                         " device_serial = excluded.device_serial,"
                         " device_id = excluded.device_id, network_id = excluded.network_id,"
                         " machine_id = excluded.machine_id, media_id = excluded.media_id,"
                         " disabled = excluded.disabled, disabled_us = excluded.disabled_us,"
                         " disabled_reason = excluded.disabled_reason,"
                         " created_us = CASE WHEN ?11 THEN excluded.created_us"
                         " ELSE created_us END",
    [WS_CLIENT_DELETE] = "DELETE FROM clients WHERE name = ?1",
    [WS_TOMB_GET] = "SELECT " OBJ_ID_COLS " FROM tombstones WHERE kind = ?1 AND key = ?2",
    [WS_TOMB_PUT] = "INSERT INTO tombstones(kind, key, " OBJ_ID_COLS ", seq)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(kind, key) DO UPDATE SET"
                    " hlc = excluded.hlc, origin = excluded.origin,"
                    " origin_seq = excluded.origin_seq, seq = excluded.seq",
    [WS_TOMB_DELETE] = "DELETE FROM tombstones WHERE kind = ?1 AND key = ?2",
    [WS_ROW_CLOCK_TENANT] = "SELECT " OBJ_ID_COLS " FROM tenants WHERE name = ?1",
    [WS_ROW_CLOCK_CLIENT] = "SELECT " OBJ_ID_COLS " FROM clients WHERE name = ?1",
    [WS_ROW_CLOCK_NODE] = "SELECT " OBJ_ID_COLS ", removed FROM nodes WHERE node_id = ?1",
    [WS_TENANT_UPSERT] = "INSERT INTO tenants(name, created_us, " OBJ_ID_COLS ")"
                         " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET"
                         " created_us = excluded.created_us, hlc = excluded.hlc,"
                         " origin = excluded.origin, origin_seq = excluded.origin_seq",
    [WS_NODE_UPSERT] = "INSERT INTO nodes(node_id, peer_addr, kmip_addr, cert_sha256,"
                       " added_hlc, removed, " OBJ_ID_COLS ")"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                       " ON CONFLICT(node_id) DO UPDATE SET peer_addr = excluded.peer_addr,"
                       " kmip_addr = excluded.kmip_addr, cert_sha256 = excluded.cert_sha256,"
                       " added_hlc = excluded.added_hlc,"
                       " removed = max(removed, excluded.removed), hlc = excluded.hlc,"
                       " origin = excluded.origin, origin_seq = excluded.origin_seq",
    [WS_NODE_REMOVE] = "UPDATE nodes SET removed = 1 WHERE node_id = ?1",
    [WS_DSK_EXISTS] = "SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1)",
    [WS_DSK_PUT] = "INSERT OR REPLACE INTO dsks(id, " OBJ_ID_COLS ") VALUES (?1, ?2, ?3, ?4)",
    [WS_DSK_CURRENT_GET] = "SELECT " OBJ_ID_COLS " FROM dsk_current WHERE one = 1",
    [WS_DSK_CURRENT_PUT] = "INSERT OR REPLACE INTO dsk_current(one, id, " OBJ_ID_COLS ")"
                           " VALUES (1, ?1, ?2, ?3, ?4)",
    [WS_REPL_STATE_PUT] = "INSERT INTO repl_state(node_id, origin_hwm, link_pos, updated_us)"
                          " VALUES (?1, max(?2, 0), max(?3, 0), ?4)"
                          " ON CONFLICT(node_id) DO UPDATE SET"
                          " origin_hwm = CASE WHEN ?2 < 0 THEN origin_hwm"
                          " ELSE max(origin_hwm, ?2) END,"
                          " link_pos = CASE WHEN ?3 < 0 THEN link_pos ELSE ?3 END,"
                          " updated_us = ?4",
    [WS_REPL_STATE_DROP] = "DELETE FROM repl_state WHERE node_id = ?1",
    [WS_TRIM_LOG] = "DELETE FROM change_log WHERE seq <= ?1",
    [WS_TRIM_TOMBS] = "DELETE FROM tombstones WHERE seq <= ?1",
    [WS_LAST_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence"
                    " WHERE name = 'change_log'), 0)",
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
 * The text is fixed per n (placeholders only). Each row with a search
 * key (skey, or an indexed ikey) carries its object's tenant, which leads
 * the key indexes (schema v11); the others carry '' (no index entry, no
 * bytes). Every path that stores attributes (KMIP writes, replication,
 * restore, re-encryption) comes through here with the object it stores. OR ROLLBACK: a multi-row
 * statement that could fail half-way with ABORT would make SQLite keep a
 * statement journal (a copy of every page it touches); with ROLLBACK it
 * need not. The only constraint that could fire is a repeated (name,
 * index), which store_write_put() already refuses. */
static int attr_insert_stmt(store_t *s, size_t n, sqlite3_stmt **out)
{
    if (!s->attr_ins[n]) {
        char sql[64 + STORE_ATTR_ROWS * 24];
        size_t len = (size_t)snprintf(sql, sizeof(sql), "INSERT OR ROLLBACK INTO attributes(obj_id, name,"
                                                        " idx, value, skey, nkey, ikey, tenant)"
                                                        " VALUES ");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s(?,?,?,?,?,?,?,?)",
                                    i ? "," : "");
        if (len >= sizeof(sql))
            return KMS_ERR_INTERNAL;
        return store_stmt(s->wdb, &s->attr_ins[n], sql, out);
    }
    return store_stmt(s->wdb, &s->attr_ins[n], NULL, out);
}

static int insert_attrs(store_t *s, int64_t oid, const char *tenant, const store_attr_t *attrs,
                        size_t n_attrs)
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
            int p = (int)i * 8;
            sqlite3_bind_int64(st, p + 1, oid);
            store_bind_text(st, p + 2, a->name);
            sqlite3_bind_int64(st, p + 3, a->index);
            sqlite3_bind_blob(st, p + 4, a->value, (int)a->value_len, SQLITE_STATIC);
            store_bind_text(st, p + 5, a->skey);
            if (a->has_nkey)
                sqlite3_bind_int64(st, p + 6, a->nkey);
            if (a->has_nkey && a->index_nkey)
                sqlite3_bind_int64(st, p + 7, a->nkey);
            /* only a row with an index entry needs its tenant */
            store_bind_text(st, p + 8, a->skey || (a->has_nkey && a->index_nkey) ? tenant : "");
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
int store_wrun(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, what);
}

static bool is_constraint(store_t *s, int ext)
{
    return sqlite3_extended_errcode(s->wdb) == ext;
}

int store_row_change_id(sqlite3_stmt *st, int col, store_change_id_t *out)
{
    memset(out, 0, sizeof(*out));
    out->hlc = sqlite3_column_int64(st, col);
    out->origin_seq = sqlite3_column_int64(st, col + 2);
    if (store_col_text(st, col + 1, out->origin, sizeof(out->origin)) != 0) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "a stored origin is malformed");
        return KMS_ERR_IO;
    }
    return 0;
}

int store_log_change(store_t *s, store_op_t *op, enum store_kind kind, const char *key,
                     int64_t version, bool deleted, int64_t now_us, store_change_id_t *id_out)
{
    if (op->repl) {
        *id_out = op->id;
        if (op->id.hlc > s->last_hlc)
            s->last_hlc = op->id.hlc;
        if (s->applying->no_log) {
            s->hlc_floor_dirty = true; /* no log row carries this clock */
            s->log_seq = 0;
            return 0;
        }
    } else {
        int64_t seen = atomic_load(&s->hlc_seen);
        if (seen > s->last_hlc)
            s->last_hlc = seen;
        s->last_hlc = store_hlc_next(s->last_hlc, now_us / 1000);
        id_out->hlc = s->last_hlc;
        memcpy(id_out->origin, s->node_id, sizeof(id_out->origin));
        id_out->origin_seq = 0;
    }
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_LOG_INSERT, &st);
    if (err)
        return err;
    sqlite3_bind_int(st, 1, (int)kind);
    store_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_int64(st, 4, id_out->hlc);
    store_bind_text(st, 5, id_out->origin);
    /* A change made here stores origin_seq NULL: it is the row's own seq
     * (known only once the row is in), and NULL costs no bytes. */
    if (op->repl)
        sqlite3_bind_int64(st, 6, op->id.origin_seq);
    sqlite3_bind_int(st, 7, deleted ? 1 : 0);
    if ((err = store_wrun(s, st, "change log")) != 0)
        return err;
    int64_t seq = sqlite3_last_insert_rowid(s->wdb);
    if (!op->repl)
        id_out->origin_seq = seq;
    store_tail_add_row(s, kind, key, version, deleted, id_out, seq);
    if (seq > s->applying->last_seq)
        s->applying->last_seq = seq;
    s->log_seq = seq;
    return 0;
}

/* The stored row of `id`: *ver 0 when absent; else its internal key,
 * creation time, change identity and (need_clocks) a copy of its clocks
 * column in the writer's scratch arena. */
typedef struct {
    int64_t ver, oid, created;
    store_change_id_t id;
    const uint8_t *clocks;
    size_t clocks_len;
} cur_row_t;

static int current_row(store_t *s, const char *id, bool need_clocks, cur_row_t *c)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_OBJ_VERSION, &st);
    if (err)
        return err;
    store_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    c->ver = 0;
    c->clocks = NULL;
    c->clocks_len = 0;
    if (rc == SQLITE_ROW) {
        c->oid = sqlite3_column_int64(st, 0);
        c->ver = sqlite3_column_int64(st, 1);
        c->created = sqlite3_column_int64(st, 2);
        err = store_row_change_id(st, 3, &c->id);
        if (!err && need_clocks && sqlite3_column_type(st, 6) != SQLITE_NULL) {
            c->clocks_len = (size_t)sqlite3_column_bytes(st, 6);
            c->clocks = kms_arena_memdup(s->wscratch, sqlite3_column_blob(st, 6),
                                         c->clocks_len ? c->clocks_len : 1);
            if (!c->clocks)
                err = KMS_ERR_NOMEM;
        }
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    if (err)
        return err;
    return rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, "read version");
}

static int version_ok(int64_t expect, int64_t cur)
{
    if (expect == STORE_VERSION_ANY)
        return 0;
    return expect == cur ? 0 : KMS_ERR_CONFLICT; /* NEW (0) means "absent" */
}

static int delete_rows(store_t *s, int64_t oid, const char *what)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_ATTR_DELETE, &st);
    if (!err) {
        sqlite3_bind_int64(st, 1, oid);
        err = store_wrun(s, st, what);
    }
    if (!err)
        err = store_wstmt(s, WS_OBJ_DELETE, &st);
    if (!err) {
        sqlite3_bind_int64(st, 1, oid);
        err = store_wrun(s, st, what);
    }
    return err;
}

static int apply_put(store_t *s, store_op_t *op, int64_t now_us)
{
    const store_object_t *o = &op->obj;
    cur_row_t c = {.created = now_us};
    store_change_id_t id;
    sqlite3_stmt *st;
    int err = 0;
    if (op->repl) {
        /* A put older than the object's tombstone is dropped; a newer
         * one voids the tombstone. */
        store_change_id_t t;
        int has = store_tomb_read(s, STORE_KIND_OBJECT, o->id, &t);
        if (has < 0)
            return has;
        if (has && store_clock_cmp(t.hlc, t.origin, op->id.hlc, op->id.origin) > 0) {
            op->new_version = 0;
            return 0;
        }
        if (has && (err = store_tomb_remove(s, STORE_KIND_OBJECT, o->id)) != 0)
            return err;
    }
    /* A create needs no read: the UNIQUE id refuses an existing object. */
    if (op->expect != STORE_VERSION_NEW) {
        err = current_row(s, o->id, !op->repl && o->touched, &c);
        if (!err)
            err = version_ok(op->expect, c.ver);
        if (err)
            return err;
    }
    if (op->repl && o->created_us > 0)
        c.created = o->created_us;
    int64_t ver = c.ver + 1;
    if ((err = store_log_change(s, op, STORE_KIND_OBJECT, o->id, ver, false, now_us, &id)) != 0)
        return err;
    if (c.ver) {
        err = store_wstmt(s, WS_ATTR_DELETE, &st);
        if (err)
            return err;
        sqlite3_bind_int64(st, 1, c.oid);
        err = store_wrun(s, st, "put");
        if (err)
            return err;
    }
    err = store_wstmt(s, c.ver ? WS_OBJ_UPDATE : WS_OBJ_INSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, o->id);
    sqlite3_bind_int64(st, 2, o->object_type);
    sqlite3_bind_int64(st, 3, o->state);
    store_bind_text(st, 4, o->tenant);
    sqlite3_bind_int64(st, 5, ver);
    sqlite3_bind_int64(st, 6, c.created);
    sqlite3_bind_int64(st, 7, now_us);
    sqlite3_bind_int(st, 8, o->archived ? 1 : 0);
    sqlite3_bind_int64(st, 9, o->sealed.dsk_id);
    if (o->sealed.blob)
        sqlite3_bind_blob(st, 10, o->sealed.blob, (int)o->sealed.len, SQLITE_STATIC);
    if (c.ver)
        sqlite3_bind_int64(st, 11, c.oid);
    sqlite3_bind_int64(st, 12, id.hlc);
    store_bind_text(st, 13, id.origin);
    sqlite3_bind_int64(st, 14, id.origin_seq);
    sqlite3_bind_int64(st, 16, o->sealed.gen);
    err = store_bind_clocks(s, st, 15, op, &id, c.clocks, c.clocks_len, c.ver ? &c.id : NULL);
    if (!err)
        err = store_wrun(s, st, "put");
    if (err == KMS_ERR_EXISTS && !c.ver && is_constraint(s, SQLITE_CONSTRAINT_UNIQUE))
        return KMS_ERR_CONFLICT; /* created meanwhile: the caller expected NEW */
    if (err)
        return err;
    int64_t oid = c.ver ? c.oid : sqlite3_last_insert_rowid(s->wdb);
    err = insert_attrs(s, oid, o->tenant, o->attrs, o->n_attrs);
    if (err)
        return err;
    op->new_version = ver;
    if (s->log_seq) /* the object as stored, for replication (logtail.c) */
        store_tail_add_object(s, o, ver, c.created, now_us, &id, s->log_seq, s->wbuf.data,
                              s->wbuf.len, s->wclocks_bound);
    return 0;
}

/* Objects: a local delete (version check, then row, log and tombstone),
 * or an applied one (LWW against the row and the tombstone there). */
static int apply_delete(store_t *s, store_op_t *op, int64_t now_us)
{
    cur_row_t c = {0};
    store_change_id_t id, t;
    int err = current_row(s, op->key, false, &c);
    if (err)
        return err;
    if (!op->repl) {
        if (!c.ver)
            return op->expect == STORE_VERSION_ANY ? KMS_ERR_NOTFOUND : KMS_ERR_CONFLICT;
        if ((err = version_ok(op->expect, c.ver)) != 0)
            return err;
    } else if (op->expect != STORE_VERSION_ANY && op->expect != c.ver) {
        return KMS_ERR_CONFLICT; /* NEW: must be absent; a version: must be that one */
    }
    bool drop_row = c.ver != 0, new_tomb = true;
    if (op->repl) {
        /* With a version the caller's merge has decided that this object
         * goes (a hard delete removes every incarnation created at or
         * before it, however recent its last edit): drop it. Without one
         * (STORE_VERSION_ANY) the row's last change decides. */
        drop_row = c.ver && (op->expect != STORE_VERSION_ANY ||
                             store_clock_cmp(op->id.hlc, op->id.origin, c.id.hlc, c.id.origin) > 0);
        int has = store_tomb_read(s, STORE_KIND_OBJECT, op->key, &t);
        if (has < 0)
            return has;
        new_tomb = !has || store_clock_cmp(op->id.hlc, op->id.origin, t.hlc, t.origin) > 0;
        if (!drop_row && !new_tomb)
            return 0; /* this node has seen newer: nothing to do or relay */
    }
    /* The log row carries the next version so that a reader orders it
     * after every put of the object. */
    err = store_log_change(s, op, STORE_KIND_OBJECT, op->key, c.ver + 1, true, now_us, &id);
    if (!err && drop_row)
        err = delete_rows(s, c.oid, "delete");
    if (!err && new_tomb)
        err = store_tomb_write(s, STORE_KIND_OBJECT, op->key, &id);
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
    return store_wrun(s, st, "meta");
}

/* Remove the tenant row `name`: KMS_ERR_STATE while it owns objects (its
 * keys would become reachable by whoever creates the name again) or
 * clients; KMS_ERR_NOTFOUND when absent. */
int store_tenant_remove(store_t *s, const char *name)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_TENANT_OBJECTS, &st);
    if (err)
        return err;
    store_bind_text(st, 1, name);
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
    store_bind_text(st, 1, name);
    err = store_wrun(s, st, "tenant");
    if (err == KMS_ERR_EXISTS && is_constraint(s, SQLITE_CONSTRAINT_FOREIGNKEY))
        return KMS_ERR_STATE; /* clients still belong to it */
    if (!err && sqlite3_changes(s->wdb) == 0)
        return KMS_ERR_NOTFOUND;
    return err;
}

int store_client_remove(store_t *s, const char *name)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_CLIENT_DELETE, &st);
    if (err)
        return err;
    store_bind_text(st, 1, name);
    err = store_wrun(s, st, "client");
    if (!err && sqlite3_changes(s->wdb) == 0)
        return KMS_ERR_NOTFOUND;
    return err;
}

int store_tenant_put_row(store_t *s, const char *name, int64_t created_us,
                         const store_change_id_t *id, bool upsert)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, upsert ? WS_TENANT_UPSERT : WS_TENANT_INSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, created_us);
    sqlite3_bind_int64(st, 3, id->hlc);
    store_bind_text(st, 4, id->origin);
    sqlite3_bind_int64(st, 5, id->origin_seq);
    return store_wrun(s, st, "tenant"); /* KMS_ERR_EXISTS when present (insert) */
}

int store_client_put_row(store_t *s, const store_client_t *c, int64_t created_us,
                         const store_change_id_t *id, bool set_created)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, WS_CLIENT_UPSERT, &st);
    if (err)
        return err;
    store_bind_text(st, 1, c->name);
    store_bind_text(st, 2, c->tenant);
    store_bind_text(st, 3, c->role);
    store_bind_text(st, 4, c->kind);
    bool device = strcmp(c->kind, "device") == 0;
    store_bind_text(st, 5, strcmp(c->kind, "cert") == 0 ? c->cert_sha256 : "");
    store_bind_text(st, 6, device || strcmp(c->kind, "password") == 0 ? c->password_hash : "");
    sqlite3_bind_int64(st, 7, created_us);
    sqlite3_bind_int64(st, 8, id->hlc);
    store_bind_text(st, 9, id->origin);
    sqlite3_bind_int64(st, 10, id->origin_seq);
    sqlite3_bind_int(st, 11, set_created ? 1 : 0);
    const store_device_t *d = &c->device;
    const char *dev[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    for (int i = 0; i < 5; i++)
        store_bind_text(st, 12 + i, device ? dev[i] : "");
    /* When and why only while disabled: an enabled row carries neither. */
    sqlite3_bind_int(st, 17, c->disabled ? 1 : 0);
    sqlite3_bind_int64(st, 18, c->disabled ? c->disabled_us : 0);
    store_bind_text(st, 19, c->disabled ? c->disabled_reason : "");
    err = store_wrun(s, st, "client");
    if (err == KMS_ERR_EXISTS && is_constraint(s, SQLITE_CONSTRAINT_FOREIGNKEY))
        return KMS_ERR_NOTFOUND; /* no such tenant */
    return err; /* KMS_ERR_EXISTS: certificate or device serial bound to another client */
}

/* Local tenant and client changes: the row, its log row, and its
 * tombstone (written by a removal, void after an add). */
static int apply_identity(store_t *s, store_op_t *op, int64_t now_us)
{
    bool tenant = op->kind == STORE_OP_TENANT;
    enum store_kind kind = tenant ? STORE_KIND_TENANT : STORE_KIND_CLIENT;
    const char *key = tenant ? op->key : op->client.name;
    store_change_id_t id;
    int err = 0;
    if (op->remove)
        err = tenant ? store_tenant_remove(s, key) : store_client_remove(s, key);
    if (!err)
        err = store_log_change(s, op, kind, key, 0, op->remove, now_us, &id);
    if (!err && op->remove)
        return store_tomb_write(s, kind, key, &id);
    if (!err && tenant)
        err = store_tenant_put_row(s, key, now_us, &id, false);
    else if (!err)
        err = store_client_put_row(s, &op->client,
                                   op->client.created_us ? op->client.created_us : now_us, &id,
                                   false);
    if (!err)
        err = store_tomb_remove(s, kind, key);
    return err;
}

int store_apply(store_t *s, store_write_t *w, int64_t now_us)
{
    int err = 0;
    s->applying = w;
    w->last_seq = 0;
    for (size_t i = 0; i < w->n_ops && !err; i++) {
        store_op_t *op = &w->ops[i];
        kms_arena_reset(s->wscratch);
        s->log_seq = 0;
        if (op->repl && op->kind != STORE_OP_PUT && op->kind != STORE_OP_DELETE) {
            err = store_apply_repl(s, op, now_us);
            continue;
        }
        switch (op->kind) {
        case STORE_OP_PUT: err = apply_put(s, op, now_us); break;
        case STORE_OP_DELETE: err = apply_delete(s, op, now_us); break;
        case STORE_OP_META: err = apply_meta(s, op); break;
        case STORE_OP_ASYNC:
        case STORE_OP_ASYNC_DELETE: err = store_apply_async(s, op); break;
        case STORE_OP_TENANT:
        case STORE_OP_CLIENT: err = apply_identity(s, op, now_us); break;
        default: err = store_apply_repl(s, op, now_us); break;
        }
    }
    /* The clock moved without a log row to show it (no-log applies, a
     * trim): keep its high-water mark where open seeds the clock from. */
    if (!err && s->hlc_floor_dirty)
        err = store_hlc_floor_save(s);
    s->applying = NULL;
    return err;
}
