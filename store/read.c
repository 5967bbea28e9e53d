/*
 * store/read.c: reader connections and point reads.
 *
 * A reader is one read-only SQLite connection with its own prepared
 * statements, used by one thread. In WAL mode it reads a snapshot and
 * never waits for the writer. store_get reads the object row and its
 * attributes in one statement, so they belong to the same version. Every statement is reset after use so no reader pins an old
 * snapshot (which would stop WAL checkpoints). Locate is in locate.c, the
 * change log in changelog.c, identities in identity.c.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define OBJ_COLS "o.oid, o.object_type, o.state, o.tenant, o.version, o.created_us," \
                 " o.updated_us, o.archived, o.dsk_id, o.blob, o.seal_gen"
#define CLIENT_COLS "name, tenant, role, kind, cert_sha256, password_hash, created_us," \
                    " hlc, origin, origin_seq, device_serial, device_id, network_id," \
                    " machine_id, media_id, disabled, disabled_us, disabled_reason"

#define NODE_COLS "node_id, peer_addr, kmip_addr, cert_sha256, added_hlc, removed, hlc, origin," \
                  " origin_seq"
#define DSK_SELECT "CAST(substr(m.key, 5) AS INTEGER), coalesce(d.hlc, 0)," \
                   " coalesce(d.origin, ''), coalesce(d.origin_seq, 0) FROM meta m" \
                   " LEFT JOIN dsks d ON d.id = CAST(substr(m.key, 5) AS INTEGER)" \
                   " WHERE m.key GLOB 'dsk.[1-9]*' AND substr(m.key, 5) NOT GLOB '*[^0-9]*'"

static const char *const rsql[RS__COUNT] = {
    [RS_OBJ_GET] = "SELECT " OBJ_COLS ", NULL, NULL, NULL, NULL, NULL, NULL FROM objects o"
                   " WHERE o.id = ?1 AND (?2 IS NULL OR o.tenant = ?2)"
                   " UNION ALL"
                   " SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                   " a.name, a.idx, a.value, a.skey, a.nkey, a.ikey IS NOT NULL FROM attributes a"
                   " WHERE a.obj_id = (SELECT oid FROM objects WHERE id = ?1"
                   " AND (?2 IS NULL OR tenant = ?2))",
    [RS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    /* hlc, origin, origin_seq at 4..6 (store_row_change_id) */
    [RS_CHANGES] = "SELECT seq, kind, key, version, hlc, origin, coalesce(origin_seq, seq),"
                   " deleted FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    /* AUTOINCREMENT's counter: the last seq ever given, also after a trim */
    [RS_LAST_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence"
                    " WHERE name = 'change_log'), 0)",
    [RS_SCAN] = "SELECT id, dsk_id FROM objects WHERE id > ?1 ORDER BY id LIMIT ?2",
    [RS_COUNT] = "SELECT count(*) FROM objects",
    [RS_COUNT_KINDS] = "SELECT object_type, state, count(*) FROM objects GROUP BY object_type, state",
    [RS_COUNT_TENANT] = "SELECT count(*) FROM objects WHERE tenant = ?1",
    [RS_TENANT_EXISTS] = "SELECT 1 FROM tenants WHERE name = ?1",
    [RS_TENANT_LIST] = "SELECT name FROM tenants ORDER BY name",
    [RS_CLIENT_BY_NAME] = "SELECT " CLIENT_COLS " FROM clients WHERE name = ?1",
    [RS_CLIENT_BY_CERT] = "SELECT " CLIENT_COLS " FROM clients"
                          " WHERE kind = 'cert' AND cert_sha256 = ?1",
    /* Through the clients_device index (schema v10). */
    [RS_CLIENT_BY_DEVICE] = "SELECT " CLIENT_COLS " FROM clients WHERE kind = 'device'"
                            " AND device_serial = ?1",
    [RS_CLIENT_LIST] = "SELECT " CLIENT_COLS " FROM clients ORDER BY name",
    /* Locate's estimate of a numeric condition (locate.c pick_driver):
     * within the tenant ?5 through its own index entries; over every
     * tenant (admin) one seek per tenant. */
    [RS_NKEY_COUNT] = "SELECT count(*) FROM (SELECT 1 FROM attributes WHERE tenant = ?5"
                      " AND name = ?1 AND ikey IS NOT NULL AND ikey BETWEEN ?2 AND ?3 LIMIT ?4)",
    [RS_NKEY_COUNT_ALL] = "SELECT count(*) FROM (" STORE_KEY_TENANTS("ikey")
                          "SELECT 1 FROM kt, attributes a WHERE a.tenant = kt.t AND a.name = ?1"
                          " AND a.ikey IS NOT NULL AND a.ikey BETWEEN ?2 AND ?3 LIMIT ?4)",
    [RS_TENANT_OBJECTS_UPTO] = "SELECT count(*) FROM (SELECT 1 FROM objects WHERE tenant = ?1"
                               " LIMIT ?2)",
    [RS_OID_SPAN] = "SELECT coalesce((SELECT max(oid) FROM objects) -"
                    " (SELECT min(oid) FROM objects) + 1, 0)",
    [RS_BEGIN] = "BEGIN",
    [RS_COMMIT] = "COMMIT",
    /* RS_OBJ_GET with the change identity and clocks (STORE_REPL_COL) */
    [RS_OBJ_GET_REPL] = "SELECT " OBJ_COLS ", NULL, NULL, NULL, NULL, NULL, NULL,"
                        " o.hlc, o.origin, o.origin_seq, o.clocks FROM objects o WHERE o.id = ?1"
                        " UNION ALL"
                        " SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                        " NULL, a.name, a.idx, a.value, a.skey, a.nkey, a.ikey IS NOT NULL,"
                        " NULL, NULL, NULL, NULL FROM attributes a"
                        " WHERE a.obj_id = (SELECT oid FROM objects WHERE id = ?1)",
    /* A chunk of objects in id order, each row one attribute (or none),
     * with the layout above plus the id at STORE_REPL_COL + 4. */
    [RS_SNAP_OBJECTS] = "SELECT " OBJ_COLS ", a.name, a.idx, a.value, a.skey, a.nkey,"
                        " a.ikey IS NOT NULL, o.hlc, o.origin, o.origin_seq, o.clocks, o.id"
                        " FROM (SELECT * FROM objects WHERE id > ?1 ORDER BY id LIMIT ?2) o"
                        " LEFT JOIN attributes a ON a.obj_id = o.oid"
                        " ORDER BY o.id, a.name, a.idx",
    [RS_TOMB_GET] = "SELECT kind, key, hlc, origin, origin_seq, seq FROM tombstones"
                    " WHERE kind = ?1 AND key = ?2",
    [RS_TOMB_LIST] = "SELECT kind, key, hlc, origin, origin_seq, seq FROM tombstones"
                     " ORDER BY kind, key",
    [RS_TENANT_GET] = "SELECT name, created_us, hlc, origin, origin_seq FROM tenants"
                      " WHERE name = ?1",
    [RS_TENANT_LIST_REPL] = "SELECT name, created_us, hlc, origin, origin_seq FROM tenants"
                            " ORDER BY name",
    [RS_NODE_GET] = "SELECT " NODE_COLS " FROM nodes WHERE node_id = ?1",
    [RS_NODE_LIST] = "SELECT " NODE_COLS " FROM nodes ORDER BY node_id",
    [RS_REPL_STATE_GET] = "SELECT node_id, origin_hwm, link_pos, updated_us FROM repl_state"
                          " WHERE node_id = ?1",
    [RS_REPL_STATE_LIST] = "SELECT node_id, origin_hwm, link_pos, updated_us FROM repl_state"
                           " ORDER BY node_id",
    /* Data-store keys are the meta rows "dsk.<id>" (what the keyring
     * loads); dsks holds the identity of those that were replicated. */
    [RS_DSK_LIST] = "SELECT " DSK_SELECT " ORDER BY 1",
    [RS_DSK_GET] = "SELECT " DSK_SELECT " AND m.key = 'dsk.' || ?1",
    [RS_DSK_CURRENT] = "SELECT CAST(CAST(m.value AS TEXT) AS INTEGER), coalesce(c.hlc, 0),"
                       " coalesce(c.origin, ''), coalesce(c.origin_seq, 0) FROM meta m"
                       " LEFT JOIN dsk_current c ON c.one = 1 WHERE m.key = 'dsk.current'",
};

int store_reader_new(store_t *s, store_reader_t **out)
{
    if (!s || !out)
        return KMS_ERR_INVAL;
    *out = NULL;
    store_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        return KMS_ERR_NOMEM;
    int err = store_db_open(s->path, true, false, &r->db);
    if (err) {
        free(r);
        return err;
    }
    r->store = s;
    *out = r;
    return 0;
}

void store_reader_free(store_reader_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < RS__COUNT; i++)
        sqlite3_finalize(r->rs[i]);
    for (int i = 0; i < STORE_LOCATE_CACHE; i++) {
        sqlite3_finalize(r->lc[i].st);
        free(r->lc[i].sql);
    }
    sqlite3_close_v2(r->db);
    free(r);
}

int store_rstmt(store_reader_t *r, enum store_rstmt which, sqlite3_stmt **out)
{
    return store_stmt(r->db, &r->rs[which], rsql[which], out);
}

/* Copy column `col` (text or blob) into the arena, NUL-terminated. */
static int col_dup(kms_arena_t *a, sqlite3_stmt *st, int col, const uint8_t **p, size_t *n)
{
    const void *src = sqlite3_column_blob(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    uint8_t *d = kms_arena_alloc(a, len + 1); /* zeroed: terminator included */
    if (!d)
        return KMS_ERR_NOMEM;
    if (len)
        memcpy(d, src, len);
    *p = d;
    if (n)
        *n = len;
    return 0;
}

/* Append the attribute of the current row (columns STORE_ATTR_COL ..
 * + 5: name, index, value, skey, nkey, ikey present). */
static int row_attr(kms_arena_t *a, sqlite3_stmt *st, store_attr_t *at)
{
    const int c = STORE_ATTR_COL;
    const uint8_t *p;
    int err;
    memset(at, 0, sizeof(*at));
    if ((err = col_dup(a, st, c, &p, NULL)) != 0)
        return err;
    at->name = (const char *)p;
    at->index = (uint32_t)sqlite3_column_int64(st, c + 1);
    if ((err = col_dup(a, st, c + 2, &at->value, &at->value_len)) != 0)
        return err;
    if (sqlite3_column_type(st, c + 3) != SQLITE_NULL) {
        if ((err = col_dup(a, st, c + 3, &p, NULL)) != 0)
            return err;
        at->skey = (const char *)p;
    }
    if (sqlite3_column_type(st, c + 4) != SQLITE_NULL) {
        at->nkey = sqlite3_column_int64(st, c + 4);
        at->has_nkey = true;
        at->index_nkey = sqlite3_column_int(st, c + 5) != 0;
    }
    return 0;
}

void store_attrs_init(store_attrs_t *acc)
{
    acc->v = acc->local;
    acc->n = 0;
    acc->cap = KMS_ARRAY_SIZE(acc->local);
}

void store_attrs_dispose(store_attrs_t *acc)
{
    if (acc->v != acc->local)
        free(acc->v);
    store_attrs_init(acc);
}

int store_attrs_add(store_attrs_t *acc, kms_arena_t *a, sqlite3_stmt *st)
{
    if (acc->n == acc->cap) {
        size_t nc = acc->cap * 2;
        store_attr_t *t = nc <= SIZE_MAX / sizeof(*t)
                              ? realloc(acc->v == acc->local ? NULL : acc->v, nc * sizeof(*t))
                              : NULL;
        if (!t)
            return KMS_ERR_NOMEM;
        if (acc->v == acc->local)
            memcpy(t, acc->local, sizeof(acc->local));
        acc->v = t;
        acc->cap = nc;
    }
    int err = row_attr(a, st, &acc->v[acc->n]);
    if (!err)
        acc->n++;
    return err;
}

int store_attrs_finish(store_attrs_t *acc, kms_arena_t *a, store_object_t *o)
{
    o->attrs = NULL;
    o->n_attrs = acc->n;
    if (acc->n && !(o->attrs = kms_arena_memdup(a, acc->v, acc->n * sizeof(*acc->v))))
        return KMS_ERR_NOMEM;
    acc->n = 0;
    return 0;
}

int store_row_object(kms_arena_t *a, sqlite3_stmt *st, bool repl, store_object_t *o)
{
    int err;
    o->object_type = (uint32_t)sqlite3_column_int64(st, 1);
    o->state = (uint32_t)sqlite3_column_int64(st, 2);
    if ((err = store_col_text(st, 3, o->tenant, sizeof(o->tenant))) != 0)
        return err;
    o->version = sqlite3_column_int64(st, 4);
    o->created_us = sqlite3_column_int64(st, 5);
    o->updated_us = sqlite3_column_int64(st, 6);
    o->archived = sqlite3_column_int(st, 7) != 0;
    o->sealed.dsk_id = (uint32_t)sqlite3_column_int64(st, 8);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL &&
        (err = col_dup(a, st, 9, &o->sealed.blob, &o->sealed.len)) != 0)
        return err;
    o->sealed.gen = sqlite3_column_int64(st, 10);
    if (!repl)
        return 0;
    if ((err = store_row_change_id(st, STORE_REPL_COL, &o->change)) != 0)
        return err;
    if (sqlite3_column_type(st, STORE_REPL_COL + 3) == SQLITE_NULL) {
        /* NULL: every name at the last change's clock */
        store_clock_t *c = kms_arena_alloc(a, sizeof(*c));
        char *node = kms_arena_strdup(a, o->change.origin);
        if (!c || !node)
            return KMS_ERR_NOMEM;
        *c = (store_clock_t){.name = STORE_CLOCK_DEFAULT, .hlc = o->change.hlc, .node = node};
        o->clocks = c;
        o->n_clocks = 1;
        return 0;
    }
    err = store_clocks_decode(sqlite3_column_blob(st, STORE_REPL_COL + 3),
                              (size_t)sqlite3_column_bytes(st, STORE_REPL_COL + 3), a, &o->clocks,
                              &o->n_clocks);
    if (err == KMS_ERR_PROTO) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "object %s: stored clocks do not decode", o->id);
        err = KMS_ERR_IO;
    }
    return err;
}

int store_read_object(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *arena, const char *id,
                      bool repl, store_object_t **out)
{
    store_attrs_t acc;
    store_object_t *o = NULL;
    int err = 0;
    store_attrs_init(&acc);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = KMS_ERR_NOTFOUND; /* missing, or another tenant's: same answer */
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = store_sqlerr(r->db, rc, "get");
        goto out;
    }
    if (!(o = kms_arena_alloc(arena, sizeof(*o)))) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    strcpy(o->id, id);
    if ((err = store_row_object(arena, st, repl, o)) != 0)
        goto out;
    /* The object row, then one row per attribute in (name, index) order. */
    for (rc = sqlite3_step(st);
         rc == SQLITE_ROW && sqlite3_column_type(st, STORE_ATTR_COL) != SQLITE_NULL;
         rc = sqlite3_step(st))
        if ((err = store_attrs_add(&acc, arena, st)) != 0)
            goto out;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "get");
        goto out;
    }
    if ((err = store_attrs_finish(&acc, arena, o)) != 0)
        goto out;
    *out = o;
out:
    sqlite3_reset(st);
    store_attrs_dispose(&acc);
    return err;
}

/* One statement (the object joined with its attributes) is one implicit
 * read transaction: row and attributes come from the same snapshot, and
 * a Get costs one VM run. */
int store_get(store_reader_t *r, kms_arena_t *arena, const char *id, const char *tenant,
              store_object_t **out)
{
    sqlite3_stmt *st = NULL;
    if (!r || !arena || !id || !out)
        return KMS_ERR_INVAL;
    *out = NULL;
    if (!id[0] || strlen(id) >= sizeof((*out)->id))
        return KMS_ERR_NOTFOUND; /* cannot exist: ids are stored < 64 bytes */
    /* Inside a snapshot the cache (the latest versions) would be wrong. */
    store_cache_t *cache = r->in_snapshot ? NULL : r->store->cache;
    uint64_t gen = UINT64_MAX;
    if (cache) {
        int hit = store_cache_get(cache, id, tenant, arena, out, &gen);
        if (hit != 1)
            return hit;
    }
    int err = store_rstmt(r, RS_OBJ_GET, &st);
    if (err)
        return err;
    store_bind_text(st, 1, id);
    store_bind_text(st, 2, tenant);
    err = store_read_object(r, st, arena, id, false, out);
    if (!err && cache)
        store_cache_fill(cache, *out, gen);
    return err;
}

int store_row_one(store_reader_t *r, enum store_rstmt which, int kind, const char *key,
                  store_row_fn fn, void *dst)
{
    sqlite3_stmt *st;
    if (!r || !dst)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, which, &st);
    if (err)
        return err;
    int p = 1;
    if (kind >= 0)
        sqlite3_bind_int(st, p++, kind);
    if (key)
        store_bind_text(st, p, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = fn(r, st, NULL, dst);
    else
        err = rc == SQLITE_DONE ? KMS_ERR_NOTFOUND : store_sqlerr(r->db, rc, "read");
    sqlite3_reset(st);
    return err;
}

int store_rows_all(store_reader_t *r, enum store_rstmt which, kms_arena_t *a, size_t size,
                   store_row_fn fn, void **out, size_t *n_out)
{
    sqlite3_stmt *st;
    uint8_t *v = NULL;
    size_t n = 0, cap = 0;
    if (!r || !a || !out || !n_out)
        return KMS_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    int err = store_rstmt(r, which, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint8_t *t = nc <= SIZE_MAX / size ? realloc(v, nc * size) : NULL;
            if (!t) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
            v = t;
            cap = nc;
        }
        memset(v + n * size, 0, size);
        if ((err = fn(r, st, a, v + n * size)) != 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "list");
        goto out;
    }
    if (n && !(*out = kms_arena_memdup(a, v, n * size))) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    *n_out = n;
out:
    sqlite3_reset(st);
    if (v) /* client rows hold password hashes */
        kms_wipe(v, cap * size);
    free(v);
    return err;
}

int store_meta_get(store_reader_t *r, kms_arena_t *arena, const char *key, uint8_t **val_out,
                   size_t *len_out)
{
    sqlite3_stmt *st;
    if (!r || !arena || !key || !val_out || !len_out)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_META_GET, &st);
    if (err)
        return err;
    store_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const uint8_t *p;
        err = col_dup(arena, st, 0, &p, len_out);
        if (!err)
            *val_out = (uint8_t *)p;
    } else {
        err = rc == SQLITE_DONE ? KMS_ERR_NOTFOUND : store_sqlerr(r->db, rc, "meta");
    }
    sqlite3_reset(st);
    return err;
}

int store_scan(store_reader_t *r, const char *after_id, size_t limit, store_scan_cb cb, void *arg)
{
    sqlite3_stmt *st;
    if (!r || !cb)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_SCAN, &st);
    if (err)
        return err;
    store_bind_text(st, 1, after_id ? after_id : "");
    sqlite3_bind_int64(st, 2, limit && limit <= INT64_MAX ? (int64_t)limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (!id)
            continue;
        if (cb(id, (uint32_t)sqlite3_column_int64(st, 1), arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        err = store_sqlerr(r->db, rc, "scan");
    sqlite3_reset(st);
    return err;
}

int store_count_by_type_state(store_reader_t *r, store_count_cb cb, void *arg)
{
    sqlite3_stmt *st;
    if (!r || !cb)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_COUNT_KINDS, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb((uint32_t)sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), arg);
    err = rc == SQLITE_DONE ? 0 : store_sqlerr(r->db, rc, "count by type and state");
    sqlite3_reset(st);
    return err;
}

int64_t store_count_tenant_objects(store_reader_t *r, const char *tenant)
{
    sqlite3_stmt *st;
    if (!r || !tenant)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_COUNT_TENANT, &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0)
                                 : store_sqlerr(r->db, rc, "count tenant objects");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return n;
}

int64_t store_count_objects(store_reader_t *r)
{
    sqlite3_stmt *st;
    if (!r)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_COUNT, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : store_sqlerr(r->db, rc, "count");
    sqlite3_reset(st);
    return n;
}
