/*
 * store/locate.c: Locate as one SQL query.
 *
 * The query's text depends only on the shape of the request (which
 * condition kinds, whether a tenant or storage-status filter applies);
 * every value is a bound parameter, so prepared statements are cached per
 * reader keyed by that text. A text equality (Name, group, id) drives the
 * query through the (tenant, name, skey) index, so a Locate by Name
 * touches the matching rows of the caller's tenant only, never another
 * tenant's (its time says nothing of them); other conditions are checked
 * per candidate on the attributes primary key (see build_sql). Results
 * are newest first (created_us DESC, then id), clipped to
 * STORE_LOCATE_MAX. It knows nothing of KMIP attribute semantics: kmip/
 * turns a Locate request into conditions.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define LOCATE_MAX_CONDS 64

static int cached_stmt(store_reader_t *r, const char *sql, sqlite3_stmt **out)
{
    int victim = 0;
    for (int i = 0; i < STORE_LOCATE_CACHE; i++) {
        if (r->lc[i].sql && strcmp(r->lc[i].sql, sql) == 0) {
            r->lc[i].used = ++r->lc_tick;
            sqlite3_reset(r->lc[i].st);
            sqlite3_clear_bindings(r->lc[i].st);
            *out = r->lc[i].st;
            return 0;
        }
        if (r->lc[i].used < r->lc[victim].used)
            victim = i;
    }
    char *copy = strdup(sql);
    if (!copy)
        return KMS_ERR_NOMEM;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        free(copy);
        return store_sqlerr(r->db, rc, "locate prepare");
    }
    sqlite3_finalize(r->lc[victim].st);
    free(r->lc[victim].sql);
    r->lc[victim].sql = copy;
    r->lc[victim].st = st;
    r->lc[victim].used = ++r->lc_tick;
    *out = st;
    return 0;
}

#define DRIVE_CAP 1000 /* most rows a numeric condition may match to drive */

/* One row, one integer column; the statement's VM steps are added to the
 * reader's count of the Locate in progress. */
static int64_t one_int(store_reader_t *r, sqlite3_stmt *st, int *err)
{
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW)
        *err = store_sqlerr(r->db, rc, "locate estimate");
    r->locate_steps += sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
    sqlite3_reset(st);
    return v;
}

/* The driving condition, or SIZE_MAX for none (walk the order index).
 * A text equality (a name, an id, a group: few rows) always drives; else
 * a text presence (SKEY_ANY: a marker few objects carry) does.
 * Otherwise an indexed numeric equality or range (a date, a custom
 * attribute) drives only if it is rare: its matches are counted in the
 * (tenant, name, ikey) index, stopping at DRIVE_CAP, and the rarest is
 * compared with the number of objects the walk would read: the tenant's
 * (counted up to 4 times the matches, all the comparison needs), or over
 * all tenants the span of oids. Within a tenant both counts read that
 * tenant's rows only, so the choice, and the time it takes, owe nothing
 * to other tenants' objects. Numeric keys that are not indexed (Object
 * Type, State, algorithm, length) never drive: walking the objects
 * newest first and stopping at the limit serves their common values.
 * Mask and presence tests never drive. SQLite has no statistics here to
 * choose by itself. */
static int pick_driver(store_reader_t *r, const store_query_t *q, size_t *out)
{
    *out = SIZE_MAX;
    for (size_t i = 0; i < q->n_conds; i++)
        if (q->conds[i].kind == STORE_COND_SKEY_EQ) {
            *out = i;
            return 0;
        }
    for (size_t i = 0; i < q->n_conds; i++)
        if (q->conds[i].kind == STORE_COND_SKEY_ANY) {
            *out = i;
            return 0;
        }
    int64_t best = DRIVE_CAP;
    size_t pick = SIZE_MAX;
    int err = 0;
    for (size_t i = 0; i < q->n_conds && !err; i++) {
        const store_cond_t *c = &q->conds[i];
        if ((c->kind != STORE_COND_NKEY_EQ && c->kind != STORE_COND_NKEY_RANGE) || !c->indexed)
            continue;
        sqlite3_stmt *st;
        if ((err = store_rstmt(r, q->tenant ? RS_NKEY_COUNT : RS_NKEY_COUNT_ALL, &st)) != 0)
            break;
        store_bind_text(st, 1, c->name);
        sqlite3_bind_int64(st, 2, c->lo);
        sqlite3_bind_int64(st, 3, c->kind == STORE_COND_NKEY_EQ ? c->lo : c->hi);
        sqlite3_bind_int64(st, 4, DRIVE_CAP);
        if (q->tenant)
            store_bind_text(st, 5, q->tenant);
        int64_t n = one_int(r, st, &err);
        if (!err && n < best) {
            best = n;
            pick = i;
        }
    }
    if (err || pick == SIZE_MAX)
        return err;
    sqlite3_stmt *st;
    if ((err = store_rstmt(r, q->tenant ? RS_TENANT_OBJECTS_UPTO : RS_OID_SPAN, &st)) != 0)
        return err;
    if (q->tenant) {
        store_bind_text(st, 1, q->tenant);
        sqlite3_bind_int64(st, 2, best * 4 + 1);
    }
    int64_t objects = one_int(r, st, &err);
    if (!err && best * 4 < objects)
        *out = pick;
    return err;
}

static bool on_object(const store_cond_t *c)
{
    return c->kind == STORE_COND_TYPE_EQ || c->kind == STORE_COND_STATE_RANGE;
}

/* Conditions in SQL order: the driver, then the tests on the objects
 * columns (answered from the order index, which carries object_type and
 * state: no row or attribute read for an object they reject), then the
 * per-candidate attribute seeks. Build and bind both walk this order, so
 * parameter numbers agree. */
static void cond_order(const store_query_t *q, size_t d, size_t *order)
{
    size_t k = 0;
    if (d != SIZE_MAX)
        order[k++] = d;
    for (size_t i = 0; i < q->n_conds; i++)
        if (i != d && on_object(&q->conds[i]))
            order[k++] = i;
    for (size_t i = 0; i < q->n_conds; i++)
        if (i != d && !on_object(&q->conds[i]))
            order[k++] = i;
}

/* The predicate on one attribute row. `n` prefixes the name column, `k`
 * the key columns: in a correlated EXISTS the key columns get a unary +
 * so the only usable index is the primary key (obj_id, name): one seek
 * per candidate, never a walk over a value range. A driving numeric
 * condition reads the indexed copy `ikey`; a per-candidate check reads
 * `nkey`, which every row with a numeric key has. */
static int cond_sql(kms_buf_t *b, const store_cond_t *c, const char *n, const char *k, bool drive,
                    int *p)
{
    const char *nk = drive ? "ikey" : "nkey";
    int err = kms_buf_printf(b, "%sname = ?%d", n, ++*p);
    switch (c->kind) {
    case STORE_COND_SKEY_EQ:
        err |= kms_buf_printf(b, " AND %sskey IS NOT NULL AND %sskey = ?%d", k, k, ++*p);
        break;
    case STORE_COND_NKEY_EQ:
        err |= kms_buf_printf(b, " AND %s%s IS NOT NULL AND %s%s = ?%d", k, nk, k, nk, ++*p);
        break;
    case STORE_COND_NKEY_RANGE:
        *p += 2;
        err |= kms_buf_printf(b, " AND %s%s IS NOT NULL AND %s%s BETWEEN ?%d AND ?%d", k, nk, k,
                              nk, *p - 1, *p);
        break;
    case STORE_COND_NKEY_MASK:
        ++*p;
        err |= kms_buf_printf(b, " AND %snkey IS NOT NULL AND (%snkey & ?%d) = ?%d", k, k, *p,
                              *p);
        break;
    case STORE_COND_SKEY_ANY:
        err |= kms_buf_printf(b, " AND %sskey IS NOT NULL", k);
        break;
    case STORE_COND_HAS:
        break;
    default:
        return KMS_ERR_INVAL;
    }
    return err ? KMS_ERR_NOMEM : 0;
}

/* The SQL text for the query's shape. Parameters are numbered in the
 * order bind_query() binds them.
 *
 * Plan: with a driving text equality, `o.oid IN (SELECT obj_id ...)` reads
 * the few matching rows of the caller's tenant from the (tenant, name,
 * skey) index (over all tenants: those of each tenant in turn) and
 * fetches objects by oid; every other condition is a correlated EXISTS
 * answered from the attributes primary key (obj_id, name). Without statistics SQLite would
 * rather walk the tenant's order index to skip the final sort, reading
 * every object of the tenant; the unary + takes tenant and status out of
 * index selection to prevent that. Without a driver the tenant's order
 * index is the plan: newest first, filtered, stopping at the limit. */
static int build_sql(const store_query_t *q, size_t driver, kms_buf_t *b)
{
    size_t order[LOCATE_MAX_CONDS];
    int p = 0, err = 0;
    bool driven = driver != SIZE_MAX;
    const char *plus = driven ? "+" : "";
    cond_order(q, driver, order);
    err |= kms_buf_printf(b, "SELECT o.id FROM objects o WHERE 1");
    if (q->tenant)
        err |= kms_buf_printf(b, " AND %so.tenant = ?%d", plus, ++p);
    if (q->want_archived && !q->want_online)
        err |= kms_buf_printf(b, " AND %so.archived = 1", plus);
    else if (!q->want_archived)
        err |= kms_buf_printf(b, " AND %so.archived = 0", plus);
    for (size_t k = 0; k < q->n_conds && !err; k++) {
        const store_cond_t *c = &q->conds[order[k]];
        if (c->kind == STORE_COND_TYPE_EQ) {
            err |= kms_buf_printf(b, " AND o.object_type = ?%d", ++p);
        } else if (c->kind == STORE_COND_STATE_RANGE) {
            p += 2;
            err |= kms_buf_printf(b, " AND o.state BETWEEN ?%d AND ?%d", p - 1, p);
        } else if (k == 0 && driven && q->tenant) {
            /* the tenant's own entries of the (tenant, name, key) index;
             * ?1 is the tenant */
            err |= kms_buf_printf(b, " AND o.oid IN (SELECT obj_id FROM attributes"
                                     " WHERE tenant = ?1 AND ");
            err |= cond_sql(b, c, "", "", true, &p);
            err |= kms_buf_printf(b, ")");
        } else if (k == 0 && driven) {
            bool text = c->kind == STORE_COND_SKEY_EQ || c->kind == STORE_COND_SKEY_ANY;
            err |= kms_buf_printf(b, " AND o.oid IN (%sSELECT a.obj_id FROM kt, attributes a"
                                     " WHERE a.tenant = kt.t AND ",
                                  text ? STORE_KEY_TENANTS("skey") : STORE_KEY_TENANTS("ikey"));
            err |= cond_sql(b, c, "a.", "a.", true, &p);
            err |= kms_buf_printf(b, ")");
        } else {
            err |= kms_buf_printf(b, " AND EXISTS (SELECT 1 FROM attributes a"
                                     " WHERE a.obj_id = o.oid AND ");
            err |= cond_sql(b, c, "a.", "+a.", false, &p);
            err |= kms_buf_printf(b, ")");
        }
    }
    p += 2;
    err |= kms_buf_printf(b, " ORDER BY o.created_us DESC, o.id LIMIT ?%d OFFSET ?%d", p - 1, p);
    err |= kms_buf_append_byte(b, 0);
    return err ? KMS_ERR_NOMEM : 0;
}

static void bind_query(sqlite3_stmt *st, const store_query_t *q, size_t driver, int64_t limit,
                       int64_t offset)
{
    size_t order[LOCATE_MAX_CONDS];
    int p = 0;
    cond_order(q, driver, order);
    if (q->tenant)
        store_bind_text(st, ++p, q->tenant);
    for (size_t k = 0; k < q->n_conds; k++) {
        const store_cond_t *c = &q->conds[order[k]];
        if (c->kind == STORE_COND_TYPE_EQ) {
            sqlite3_bind_int64(st, ++p, c->lo);
            continue;
        }
        if (c->kind == STORE_COND_STATE_RANGE) {
            sqlite3_bind_int64(st, ++p, c->lo);
            sqlite3_bind_int64(st, ++p, c->hi);
            continue;
        }
        store_bind_text(st, ++p, c->name);
        switch (c->kind) {
        case STORE_COND_SKEY_EQ: store_bind_text(st, ++p, c->s); break;
        case STORE_COND_NKEY_EQ:
        case STORE_COND_NKEY_MASK: sqlite3_bind_int64(st, ++p, c->lo); break;
        case STORE_COND_NKEY_RANGE:
            sqlite3_bind_int64(st, ++p, c->lo);
            sqlite3_bind_int64(st, ++p, c->hi);
            break;
        case STORE_COND_HAS:
        case STORE_COND_SKEY_ANY:
        case STORE_COND_TYPE_EQ:
        case STORE_COND_STATE_RANGE: break;
        }
    }
    sqlite3_bind_int64(st, ++p, limit);
    sqlite3_bind_int64(st, ++p, offset);
}

static int check_query(const store_query_t *q)
{
    if (q->n_conds > LOCATE_MAX_CONDS)
        return KMS_ERR_LIMIT;
    if (q->n_conds && !q->conds)
        return KMS_ERR_INVAL;
    for (size_t i = 0; i < q->n_conds; i++) {
        const store_cond_t *c = &q->conds[i];
        if ((unsigned)c->kind > STORE_COND_STATE_RANGE)
            return KMS_ERR_INVAL;
        if ((!c->name && !on_object(c)) || (c->kind == STORE_COND_SKEY_EQ && !c->s))
            return KMS_ERR_INVAL;
    }
    return 0;
}

/* SQLite's progress callback while a query with a cancel flag or a
 * deadline runs: non-zero interrupts the statement (SQLITE_INTERRUPT). */
static int stop_check(void *arg)
{
    const store_query_t *q = arg;
    if (q->cancel && atomic_load_explicit(q->cancel, memory_order_relaxed))
        return 1;
    return q->deadline_ns && kms_mono_ns() >= q->deadline_ns;
}

/* Virtual-machine steps between two stop_check() calls: a few
 * microseconds of work. */
#define LOCATE_CHECK_STEPS 4096

int store_locate(store_reader_t *r, const store_query_t *q, kms_arena_t *arena, char ***ids_out,
                 size_t *n_out)
{
    kms_buf_t sql;
    sqlite3_stmt *st = NULL;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    if (!r || !q || !arena || !ids_out || !n_out)
        return KMS_ERR_INVAL;
    *ids_out = NULL;
    *n_out = 0;
    int err = check_query(q);
    if (err)
        return err;
    size_t limit = q->max_items && q->max_items < STORE_LOCATE_MAX ? q->max_items
                                                                    : STORE_LOCATE_MAX;
    int64_t offset = q->offset > (size_t)INT64_MAX ? INT64_MAX : (int64_t)q->offset;
    size_t driver;
    bool watched = q->cancel || q->deadline_ns;
    if (watched) {
        if (stop_check((void *)q))
            return KMS_ERR_TIMEOUT;
        sqlite3_progress_handler(r->db, LOCATE_CHECK_STEPS, stop_check, (void *)q);
    }
    kms_buf_init(&sql, 64 * 1024);
    r->locate_steps = 0;
    err = pick_driver(r, q, &driver);
    if (!err)
        err = build_sql(q, driver, &sql);
    if (!err)
        err = cached_stmt(r, (const char *)sql.data, &st);
    if (err)
        goto out;
    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
    bind_query(st, q, driver, (int64_t)limit, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **t = realloc(ids, nc * sizeof(*t));
            if (!t) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
            ids = t;
            cap = nc;
        }
        ids[n] = kms_arena_strndup(arena, (const char *)sqlite3_column_text(st, 0),
                                   (size_t)sqlite3_column_bytes(st, 0));
        if (!ids[n]) {
            err = KMS_ERR_NOMEM;
            goto out;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "locate");
        goto out;
    }
    if (n) {
        *ids_out = kms_arena_memdup(arena, ids, n * sizeof(*ids));
        if (!*ids_out) {
            err = KMS_ERR_NOMEM;
            goto out;
        }
    }
    *n_out = n;
out:
    if (st) {
        r->locate_steps += sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
        sqlite3_reset(st);
    }
    if (watched)
        sqlite3_progress_handler(r->db, 0, NULL, NULL);
    free(ids);
    kms_buf_dispose(&sql);
    return err;
}

int store_locate_explain(store_reader_t *r, const store_query_t *q, kms_arena_t *arena,
                         char **plan_out)
{
    kms_buf_t sql, plan;
    sqlite3_stmt *st = NULL;
    if (!r || !q || !arena || !plan_out)
        return KMS_ERR_INVAL;
    int err = check_query(q);
    if (err)
        return err;
    kms_buf_init(&sql, 64 * 1024);
    kms_buf_init(&plan, 64 * 1024);
    size_t driver;
    err = pick_driver(r, q, &driver);
    if (!err)
        err = kms_buf_printf(&sql, "EXPLAIN QUERY PLAN ");
    if (!err)
        err = build_sql(q, driver, &sql);
    if (err)
        goto out;
    int rc = sqlite3_prepare_v2(r->db, (const char *)sql.data, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        err = store_sqlerr(r->db, rc, "explain");
        goto out;
    }
    bind_query(st, q, driver, 1, 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((err = kms_buf_printf(&plan, "%s\n", sqlite3_column_text(st, 3))) != 0)
            goto out;
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "explain");
        goto out;
    }
    *plan_out = kms_arena_strndup(arena, plan.len ? (const char *)plan.data : "", plan.len);
    err = *plan_out ? 0 : KMS_ERR_NOMEM;
out:
    sqlite3_finalize(st);
    kms_buf_dispose(&plan);
    kms_buf_dispose(&sql);
    return err;
}

int64_t store_locate_steps(const store_reader_t *r)
{
    return r ? r->locate_steps : 0;
}
