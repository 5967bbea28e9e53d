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
/* Column of the first attribute field in RS_OBJ_GET's rows. */
#define ATTR_COL 11
#define CLIENT_COLS "name, tenant, role, kind, cert_sha256, password_hash, created_us"

static const char *const rsql[RS__COUNT] = {
    [RS_OBJ_GET] = "SELECT " OBJ_COLS ", NULL, NULL, NULL, NULL, NULL, NULL FROM objects o"
                   " WHERE o.id = ?1 AND (?2 IS NULL OR o.tenant = ?2)"
                   " UNION ALL"
                   " SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                   " a.name, a.idx, a.value, a.skey, a.nkey, a.ikey IS NOT NULL FROM attributes a"
                   " WHERE a.obj_id = (SELECT oid FROM objects WHERE id = ?1"
                   " AND (?2 IS NULL OR tenant = ?2))",
    [RS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [RS_CHANGES] = "SELECT seq, obj_id, version, hlc, node_id, deleted FROM change_log"
                   " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [RS_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM change_log",
    [RS_SCAN] = "SELECT id, dsk_id FROM objects WHERE id > ?1 ORDER BY id LIMIT ?2",
    [RS_COUNT] = "SELECT count(*) FROM objects",
    [RS_TENANT_EXISTS] = "SELECT 1 FROM tenants WHERE name = ?1",
    [RS_TENANT_LIST] = "SELECT name FROM tenants ORDER BY name",
    [RS_CLIENT_BY_NAME] = "SELECT " CLIENT_COLS " FROM clients WHERE name = ?1",
    [RS_CLIENT_BY_CERT] = "SELECT " CLIENT_COLS " FROM clients"
                          " WHERE kind = 'cert' AND cert_sha256 = ?1",
    [RS_CLIENT_LIST] = "SELECT " CLIENT_COLS " FROM clients ORDER BY name",
    [RS_NKEY_COUNT] = "SELECT count(*) FROM (SELECT 1 FROM attributes WHERE name = ?1"
                      " AND ikey IS NOT NULL AND ikey BETWEEN ?2 AND ?3 LIMIT ?4)",
    [RS_OID_SPAN] = "SELECT coalesce((SELECT max(oid) FROM objects) -"
                    " (SELECT min(oid) FROM objects) + 1, 0)",
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

/* Append the attribute of the current row (columns ATTR_COL..ATTR_COL+5:
 * name, index, value, skey, nkey, ikey present). */
static int row_attr(kms_arena_t *a, sqlite3_stmt *st, store_attr_t *at)
{
    const uint8_t *p;
    int err;
    memset(at, 0, sizeof(*at));
    if ((err = col_dup(a, st, ATTR_COL, &p, NULL)) != 0)
        return err;
    at->name = (const char *)p;
    at->index = (uint32_t)sqlite3_column_int64(st, ATTR_COL + 1);
    if ((err = col_dup(a, st, ATTR_COL + 2, &at->value, &at->value_len)) != 0)
        return err;
    if (sqlite3_column_type(st, ATTR_COL + 3) != SQLITE_NULL) {
        if ((err = col_dup(a, st, ATTR_COL + 3, &p, NULL)) != 0)
            return err;
        at->skey = (const char *)p;
    }
    if (sqlite3_column_type(st, ATTR_COL + 4) != SQLITE_NULL) {
        at->nkey = sqlite3_column_int64(st, ATTR_COL + 4);
        at->has_nkey = true;
        at->index_nkey = sqlite3_column_int(st, ATTR_COL + 5) != 0;
    }
    return 0;
}

/* One statement (the object joined with its attributes) is one implicit
 * read transaction: row and attributes come from the same snapshot, and
 * a Get costs one VM run. */
int store_get(store_reader_t *r, kms_arena_t *arena, const char *id, const char *tenant,
              store_object_t **out)
{
    sqlite3_stmt *st = NULL;
    store_object_t *o = NULL;
    store_attr_t local[32], *at = local, *heap = NULL;
    size_t n = 0, cap = KMS_ARRAY_SIZE(local);
    if (!r || !arena || !id || !out)
        return KMS_ERR_INVAL;
    *out = NULL;
    if (!id[0] || strlen(id) >= sizeof(o->id))
        return KMS_ERR_NOTFOUND; /* cannot exist: ids are stored < 64 bytes */
    store_cache_t *cache = r->store->cache;
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
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = KMS_ERR_NOTFOUND; /* missing, or another tenant's: same answer */
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = store_sqlerr(r->db, rc, "get");
        goto out;
    }
    o = kms_arena_alloc(arena, sizeof(*o));
    if (!o) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    strcpy(o->id, id);
    o->object_type = (uint32_t)sqlite3_column_int64(st, 1);
    o->state = (uint32_t)sqlite3_column_int64(st, 2);
    if ((err = store_col_text(st, 3, o->tenant, sizeof(o->tenant))) != 0)
        goto out;
    o->version = sqlite3_column_int64(st, 4);
    o->created_us = sqlite3_column_int64(st, 5);
    o->updated_us = sqlite3_column_int64(st, 6);
    o->archived = sqlite3_column_int(st, 7) != 0;
    o->sealed.dsk_id = (uint32_t)sqlite3_column_int64(st, 8);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL &&
        (err = col_dup(arena, st, 9, &o->sealed.blob, &o->sealed.len)) != 0)
        goto out;
    o->sealed.gen = sqlite3_column_int64(st, 10);
    /* The object row, then one row per attribute in (name, index) order. */
    for (rc = sqlite3_step(st); rc == SQLITE_ROW && sqlite3_column_type(st, ATTR_COL) != SQLITE_NULL;
         rc = sqlite3_step(st)) {
        if (n == cap) {
            size_t nc = cap * 2;
            store_attr_t *t = nc <= SIZE_MAX / sizeof(*t) ? realloc(heap, nc * sizeof(*t)) : NULL;
            if (!t) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
            if (!heap)
                memcpy(t, local, sizeof(local));
            heap = at = t;
            cap = nc;
        }
        if ((err = row_attr(arena, st, &at[n])) != 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "get");
        goto out;
    }
    if (n && !(o->attrs = kms_arena_memdup(arena, at, n * sizeof(*at)))) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    o->n_attrs = n;
    *out = o;
    if (cache)
        store_cache_fill(cache, o, gen);
out:
    sqlite3_reset(st);
    free(heap);
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
