/* tests/unit/test_store_repl.c: what the store gives replication, on a
 * real SQLite file: migration of a v5 database with keys to the change
 * identities, per-name clocks set only for touched names, applied remote
 * puts stored and logged exactly, tombstones against older puts, repl
 * state atomic with its batch, snapshots that a concurrent writer does not
 * change, trim, HLC observation, store_write_last_seq and the commit
 * notification, tenants/clients/nodes/data-store keys as LWW rows, and the
 * bulk (no-log) apply rate of a joining node. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/sqlcheck.h"
#include "tests/unit/util/tmpdir.h"

#define SELF "node-a"
#define PEER "node-b"

static char g_dir[64];
static char g_path[128];

static store_t *open_store(const char *node)
{
    store_options_t opt = {.path = g_path, .node_id = node};
    store_t *s = NULL;
    assert_int_equal(store_open(&opt, &s), 0);
    return s;
}

/* Each test: a fresh directory; most also a store of node SELF with a
 * reader and an arena (the migration test opens its own file). */
typedef struct fx {
    store_t *s;
    store_reader_t *r;
    kms_arena_t *a;
} fx_t;

#define FX_LOCALS                  \
    fx_t *f = *state;              \
    store_t *s = f->s;             \
    store_reader_t *r = f->r;      \
    kms_arena_t *a = f->a;         \
    (void)a

static void fx_close(fx_t *f)
{
    store_reader_free(f->r);
    store_close(f->s);
    f->r = NULL;
    f->s = NULL;
}

static void fx_reopen(fx_t *f)
{
    fx_close(f);
    f->s = open_store(SELF);
    assert_int_equal(store_reader_new(f->s, &f->r), 0);
}

static int fx_init(void **state, bool open)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (!f || kms_test_tmpdir(g_dir, sizeof(g_dir), "repl", "kms.db", g_path, sizeof(g_path)))
        return -1;
    f->a = kms_arena_new(0);
    if (open)
        fx_reopen(f);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_init(state, true);
}

static int fx_setup_empty(void **state)
{
    return fx_init(state, false);
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    fx_close(f);
    kms_arena_free(f->a);
    free(f);
    return kms_test_rmdir(g_dir);
}

static const uint8_t V_NAME[] = {0x42, 0x00, 0x0b, 0x07, 0, 0, 0, 1, 'n', 0, 0, 0, 0, 0, 0, 0};
static const uint8_t V_STATE1[] = {0x42, 0x00, 0x0b, 0x05, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0};
static const uint8_t V_STATE2[] = {0x42, 0x00, 0x0b, 0x05, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0};
static const uint8_t BLOB[] = {0xde, 0xad, 0x00, 0xbe, 0xef};

/* An object with a Name (n_attrs >= 1) and a State (n_attrs >= 2). */
static void mk_obj(store_object_t *o, store_attr_t *at, const char *id, size_t n_attrs)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", id);
    strcpy(o->tenant, "t");
    o->object_type = 2;
    o->state = 1;
    o->sealed = (kms_sealed_t){.dsk_id = 1, .gen = 1, .blob = BLOB, .len = sizeof(BLOB)};
    at[0] = (store_attr_t){.name = "Name", .value = V_NAME, .value_len = sizeof(V_NAME),
                           .skey = "n"};
    at[1] = (store_attr_t){.name = "State", .value = V_STATE1, .value_len = sizeof(V_STATE1),
                           .nkey = 1, .has_nkey = true};
    o->attrs = at;
    o->n_attrs = n_attrs;
}

static int commit(store_t *s, store_write_t *w, int64_t *ver)
{
    int err = store_commit(s, w, ver, ver ? 1 : 0);
    store_write_free(w);
    return err;
}

static int put_local(store_t *s, const store_object_t *o, int64_t expect)
{
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put(w, o, expect), 0);
    return commit(s, w, NULL);
}

/* Version 1 of o (made by mk_obj) moved to State 2, touching only State. */
static int put_state2(store_t *s, store_object_t *o, store_attr_t *at)
{
    static const char *const touched[] = {"State"};
    at[1].value = V_STATE2;
    o->state = 2;
    o->touched = touched;
    o->n_touched = 1;
    return put_local(s, o, 1);
}

static store_change_id_t cid(int64_t hlc, const char *origin, int64_t origin_seq)
{
    store_change_id_t id = {.hlc = hlc, .origin_seq = origin_seq};
    snprintf(id.origin, sizeof(id.origin), "%s", origin);
    return id;
}

static const store_clock_t *clock_of(const store_object_t *o, const char *name)
{
    for (size_t i = 0; i < o->n_clocks; i++)
        if (strcmp(o->clocks[i].name, name) == 0)
            return &o->clocks[i];
    return NULL;
}

static int64_t sql_int(const char *sql)
{
    return test_sql_int(g_path, sql);
}

struct changes {
    store_change_t c[64];
    size_t n;
};

static int collect(const store_change_t *c, void *arg)
{
    struct changes *k = arg;
    if (k->n < 64)
        k->c[k->n++] = *c;
    return 0;
}

static void changes_after(store_reader_t *r, int64_t after, struct changes *k)
{
    k->n = 0;
    assert_int_equal(store_changes_since(r, after, 0, collect, k), 0);
}

/* ------------------------------------------------------- migration */
/* A v5 database as kmsd wrote it (schema from a real v5 file), with two
 * keys (one whose log rows are gone), a tenant, a client and a DSK. */
static const char V5_SQL[] =
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_us INTEGER NOT NULL);"
    "PRAGMA application_id=1263358788;"
    "CREATE TABLE objects (oid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " object_type INTEGER NOT NULL, state INTEGER NOT NULL, tenant TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK (version > 0), created_us INTEGER NOT NULL,"
    " updated_us INTEGER NOT NULL, archived INTEGER NOT NULL DEFAULT 0,"
    " dsk_id INTEGER NOT NULL DEFAULT 0, blob BLOB);"
    "CREATE TABLE attributes (obj_id INTEGER NOT NULL, name TEXT NOT NULL, idx INTEGER NOT NULL,"
    " value BLOB NOT NULL, skey TEXT, nkey INTEGER, ikey INTEGER,"
    " PRIMARY KEY (obj_id, name, idx)) WITHOUT ROWID;"
    "CREATE INDEX attributes_skey ON attributes(name, skey) WHERE skey IS NOT NULL;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE change_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, obj_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, hlc INTEGER NOT NULL, node_id TEXT NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE tenants (name TEXT PRIMARY KEY NOT NULL, created_us INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE clients (name TEXT PRIMARY KEY NOT NULL,"
    " tenant TEXT NOT NULL REFERENCES tenants(name),"
    " role TEXT NOT NULL CHECK (role IN ('client', 'admin')),"
    " kind TEXT NOT NULL CHECK (kind IN ('cert', 'password')),"
    " cert_sha256 TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL DEFAULT '',"
    " created_us INTEGER NOT NULL);"
    "CREATE INDEX clients_tenant ON clients(tenant);"
    "CREATE UNIQUE INDEX clients_cert ON clients(cert_sha256)"
    " WHERE kind = 'cert' AND cert_sha256 <> '';"
    "CREATE INDEX attributes_ikey ON attributes(name, ikey) WHERE ikey IS NOT NULL;"
    "CREATE INDEX objects_tenant_order ON objects(tenant, archived, created_us DESC, id,"
    " object_type, state);"
    "CREATE INDEX objects_order ON objects(created_us DESC, id, archived, object_type, state);"
    "INSERT INTO schema_version VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5);"
    "INSERT INTO meta VALUES ('node_id', CAST('feedfacefeedfacefeedfacefeedface' AS BLOB));"
    "INSERT INTO meta VALUES ('dsk.1', x'0102030405');"
    "INSERT INTO meta VALUES ('dsk.current', CAST('1' AS BLOB));"
    "INSERT INTO tenants VALUES ('default', 1796560648518397);"
    "INSERT INTO clients VALUES ('admin', 'default', 'admin', 'cert', '', '', 1796560648000000);"
    "INSERT INTO objects VALUES (1, 'k-1', 2, 1, 'default', 2, 1796560653000000,"
    " 1796560654000000, 0, 1, x'c0ffee');"
    "INSERT INTO attributes VALUES (1, 'Name', 0, x'42000b07000000016e00000000000000', 'n',"
    " NULL, NULL);"
    "INSERT INTO attributes VALUES (1, 'State', 0, x'42000b05000000040000000100000000', NULL,"
    " 1, NULL);"
    "INSERT INTO objects VALUES (2, 'k-2', 2, 1, 'default', 1, 1796560655000000,"
    " 1796560656000000, 0, 1, x'c0ffee');"
    "INSERT INTO change_log(obj_id, version, hlc, node_id) VALUES"
    " ('k-1', 1, 117739398972899328, 'feedfacefeedfacefeedfacefeedface'),"
    " ('gone', 1, 117739398972964864, 'feedfacefeedfacefeedfacefeedface'),"
    " ('k-1', 2, 117739398972964865, 'feedfacefeedfacefeedfacefeedface');";

#define V5_NODE "feedfacefeedfacefeedfacefeedface"

static void test_migrate_v5(void **state)
{
    fx_t *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, V5_SQL, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    store_t *s = f->s = open_store(NULL);
    assert_int_equal(store_schema_version(s), 12);
    assert_string_equal(store_node_id(s), V5_NODE);
    assert_int_equal(store_reader_new(s, &f->r), 0);
    store_reader_t *r = f->r;
    kms_arena_t *a = f->a;

    /* the log rows: kind object, origin this node, origin_seq = seq */
    struct changes k;
    changes_after(r, 0, &k);
    assert_int_equal(k.n, 3);
    for (size_t i = 0; i < k.n; i++) {
        assert_int_equal(k.c[i].kind, STORE_KIND_OBJECT);
        assert_string_equal(k.c[i].id.origin, V5_NODE);
        assert_int_equal(k.c[i].id.origin_seq, k.c[i].seq);
        assert_false(k.c[i].deleted);
    }
    assert_string_equal(k.c[1].key, "gone");
    assert_int_equal(k.c[2].id.hlc, 117739398972964865);

    /* objects: the identity of their newest log row, or their time */
    store_object_t *o = NULL;
    store_tombstone_t t;
    assert_int_equal(store_get_repl(r, a, "k-1", &o, &t), 0);
    assert_non_null(o);
    assert_int_equal(t.id.hlc, 0);
    assert_int_equal(o->change.hlc, 117739398972964865);
    assert_string_equal(o->change.origin, V5_NODE);
    assert_int_equal(o->change.origin_seq, 3);
    assert_int_equal(o->n_clocks, 1);
    assert_string_equal(o->clocks[0].name, "");
    assert_int_equal(o->clocks[0].hlc, o->change.hlc);
    assert_string_equal(o->clocks[0].node, V5_NODE);
    assert_int_equal(o->n_attrs, 2);
    assert_int_equal(o->version, 2);
    assert_int_equal(o->sealed.len, 3);
    assert_int_equal(o->sealed.gen, 2); /* step 6: the version it was sealed for */
    assert_int_equal(store_get_repl(r, a, "k-2", &o, NULL), 0);
    assert_int_equal(o->change.hlc, (int64_t)(1796560656000000 / 1000) << 16);
    assert_int_equal(o->change.origin_seq, 0);
    assert_string_equal(o->change.origin, V5_NODE);

    /* tenants and clients: LWW identity from their creation */
    store_tenant_t tn;
    assert_int_equal(store_tenant_get(r, "default", &tn), 0);
    assert_int_equal(tn.created_us, 1796560648518397);
    assert_int_equal(tn.change.hlc, (int64_t)(1796560648518397 / 1000) << 16);
    assert_string_equal(tn.change.origin, V5_NODE);
    store_client_t c;
    assert_int_equal(store_client_by_name(r, "admin", &c), 0);
    assert_int_equal(c.change.hlc, (int64_t)1796560648000 << 16);
    assert_string_equal(c.change.origin, V5_NODE);

    /* the DSK is listed, never replicated (clock 0), current = 1 */
    store_dsk_t *d;
    size_t nd;
    assert_int_equal(store_list_dsks(r, a, &d, &nd), 0);
    assert_int_equal(nd, 1);
    assert_int_equal(d[0].id, 1);
    assert_int_equal(d[0].change.hlc, 0);
    assert_string_equal(d[0].change.origin, V5_NODE);
    uint32_t cur = 0;
    assert_int_equal(store_dsk_current(r, &cur, NULL), 0);
    assert_int_equal(cur, 1);

    /* the new tables are there and empty */
    store_node_t *nodes;
    store_repl_state_t *rs;
    size_t n;
    assert_int_equal(store_list_nodes(r, a, &nodes, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_list_repl_state(r, a, &rs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_tombstone_get(r, STORE_KIND_OBJECT, "gone", &t), KMS_ERR_NOTFOUND);

    /* a put touching State keeps the migrated default for the rest */
    store_object_t po;
    store_attr_t pa[2];
    mk_obj(&po, pa, "k-1", 2);
    strcpy(po.tenant, "default");
    const char *touched[] = {"State"};
    po.touched = touched;
    po.n_touched = 1;
    assert_int_equal(put_local(s, &po, 2), 0);
    assert_int_equal(store_get_repl(r, a, "k-1", &o, NULL), 0);
    assert_int_equal(o->n_clocks, 2);
    assert_int_equal(clock_of(o, "")->hlc, 117739398972964865);
    assert_true(clock_of(o, "State")->hlc > 117739398972964865);
    assert_int_equal(o->change.origin_seq, 4);
    assert_int_equal(store_last_seq(r), 4);

    fx_close(f);
    assert_string_equal(test_sql_integrity(g_path), "ok");
    assert_int_equal(sql_int("SELECT count(*) FROM schema_version"), 12);
}

/* ------------------------------------------------------- local clocks */
static void test_clocks_local(void **state)
{
    FX_LOCALS;
    store_object_t o, *g = NULL;
    store_attr_t at[2];

    /* a create writes no clock column at all: one default entry */
    mk_obj(&o, at, "c-1", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_get_repl(r, a, "c-1", &g, NULL), 0);
    int64_t h0 = g->change.hlc;
    assert_string_equal(g->change.origin, SELF);
    assert_int_equal(g->change.origin_seq, 1);
    assert_int_equal(g->n_clocks, 1);
    assert_string_equal(g->clocks[0].name, STORE_CLOCK_DEFAULT);
    assert_int_equal(g->clocks[0].hlc, h0);
    assert_string_equal(g->clocks[0].node, SELF);

    /* touched = {State}: only State moves */
    assert_int_equal(put_state2(s, &o, at), 0);
    assert_int_equal(store_get_repl(r, a, "c-1", &g, NULL), 0);
    int64_t h1 = g->change.hlc;
    assert_true(h1 > h0);
    assert_int_equal(g->change.origin_seq, 2);
    assert_int_equal(g->n_clocks, 2);
    assert_int_equal(clock_of(g, "")->hlc, h0);
    assert_int_equal(clock_of(g, "State")->hlc, h1);
    assert_null(clock_of(g, "Name"));

    /* the last Name removed: its clock stays, with no instance */
    o.attrs = &at[1];
    o.n_attrs = 1;
    const char *t2[] = {"Name", "Name", STORE_CLOCK_MATERIAL};
    o.touched = t2;
    o.n_touched = 3;
    assert_int_equal(put_local(s, &o, 2), 0);
    assert_int_equal(store_get_repl(r, a, "c-1", &g, NULL), 0);
    int64_t h2 = g->change.hlc;
    assert_int_equal(g->n_clocks, 4);
    assert_int_equal(clock_of(g, "")->hlc, h0);
    assert_int_equal(clock_of(g, "State")->hlc, h1);
    assert_int_equal(clock_of(g, "Name")->hlc, h2);
    assert_int_equal(clock_of(g, STORE_CLOCK_MATERIAL)->hlc, h2);
    for (size_t i = 0; i < g->n_attrs; i++)
        assert_string_not_equal(g->attrs[i].name, "Name");

    /* an empty list: nothing touched, the clocks stay (version moves) */
    o.n_touched = 0;
    assert_int_equal(put_local(s, &o, 3), 0);
    assert_int_equal(store_get_repl(r, a, "c-1", &g, NULL), 0);
    assert_int_equal(g->version, 4);
    assert_int_equal(g->n_clocks, 4);
    assert_int_equal(clock_of(g, "Name")->hlc, h2);

    /* touched NULL = every name: back to one default entry */
    o.touched = NULL;
    assert_int_equal(put_local(s, &o, 4), 0);
    assert_int_equal(store_get_repl(r, a, "c-1", &g, NULL), 0);
    assert_int_equal(g->n_clocks, 1);
    assert_int_equal(g->clocks[0].hlc, g->change.hlc);
    assert_true(g->change.hlc > h2);

    /* bad touched lists are refused when the write is built */
    store_write_t *w = store_write_new();
    const char *bad[] = {""};
    o.touched = bad;
    o.n_touched = 1;
    assert_int_equal(store_write_put(w, &o, 5), KMS_ERR_INVAL);
    store_write_free(w);

    fx_close(f);
    /* the create stored NULL, the later puts an encoded list */
    assert_int_equal(sql_int("SELECT count(*) FROM objects WHERE clocks IS NULL"), 1);
}

/* ----------------------------------------------------- applied puts */
static void test_put_repl(void **state)
{
    FX_LOCALS;
    store_object_t o, *g = NULL;
    store_attr_t at[2];
    mk_obj(&o, at, "r-1", 2);
    o.created_us = 1111;
    o.archived = true;
    store_clock_t clk[] = {
        {.name = "Name", .hlc = (int64_t)200 << 16, .node = "node-c"},
        {.name = "", .hlc = (int64_t)100 << 16, .node = PEER},
    };
    o.clocks = clk;
    o.n_clocks = 2;
    store_change_id_t id = cid((int64_t)200 << 16, PEER, 7);
    int64_t ver = -1;
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &id), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(store_get_repl(r, a, "r-1", &g, NULL), 0);
    assert_int_equal(g->change.hlc, id.hlc);
    assert_string_equal(g->change.origin, PEER);
    assert_int_equal(g->change.origin_seq, 7);
    assert_int_equal(g->created_us, 1111);
    assert_true(g->archived);
    assert_int_equal(g->n_clocks, 2);
    assert_string_equal(g->clocks[0].name, ""); /* sorted */
    assert_string_equal(g->clocks[0].node, PEER);
    assert_string_equal(g->clocks[1].name, "Name");
    assert_string_equal(g->clocks[1].node, "node-c");
    assert_int_equal(g->n_attrs, 2);
    assert_memory_equal(g->sealed.blob, BLOB, sizeof(BLOB));
    assert_int_equal(g->sealed.gen, 1);
    /* logged as the peer's change, to be relayed */
    struct changes k;
    changes_after(r, 0, &k);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.c[0].key, "r-1");
    assert_string_equal(k.c[0].id.origin, PEER);
    assert_int_equal(k.c[0].id.origin_seq, 7);
    assert_int_equal(k.c[0].id.hlc, id.hlc);
    assert_int_equal(k.c[0].version, 1);

    /* optimistic concurrency as for local puts */
    id = cid((int64_t)300 << 16, PEER, 8);
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, 5, &id), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_CONFLICT);
    /* the default clock of this very change is stored as the NULL column */
    store_clock_t dflt = {.name = "", .hlc = id.hlc, .node = PEER};
    o.clocks = &dflt;
    o.n_clocks = 1;
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, 1, &id), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 2);
    assert_int_equal(store_get_repl(r, a, "r-1", &g, NULL), 0);
    assert_int_equal(g->n_clocks, 1);
    assert_int_equal(g->clocks[0].hlc, id.hlc);

    /* malformed clocks and identities are refused at once */
    store_clock_t twice[] = {{.name = "x", .hlc = 1, .node = PEER}, {.name = "x", .hlc = 2, .node = PEER}};
    o.clocks = twice;
    o.n_clocks = 2;
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, 2, &id), KMS_ERR_INVAL);
    o.n_clocks = 0;
    store_change_id_t noorigin = cid(1, "", 1);
    assert_int_equal(store_write_put_repl(w, &o, 2, &noorigin), KMS_ERR_INVAL);
    assert_int_equal(store_write_put_repl(w, &o, 2, NULL), KMS_ERR_INVAL);
    store_write_free(w);

    fx_close(f);
    assert_int_equal(sql_int("SELECT count(*) FROM objects WHERE clocks IS NULL"), 1);
}

/* ------------------------------------------------------- tombstones */
static int count_tomb(const store_tombstone_t *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
    return 0;
}

static void test_tombstones(void **state)
{
    FX_LOCALS;
    store_object_t o, *g = NULL;
    store_attr_t at[2];
    store_tombstone_t t;
    mk_obj(&o, at, "d-1", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_delete(w, "d-1", 1), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_get_repl(r, a, "d-1", &g, &t), 0);
    assert_null(g);
    assert_int_equal(t.kind, STORE_KIND_OBJECT);
    assert_string_equal(t.key, "d-1");
    assert_string_equal(t.id.origin, SELF);
    assert_int_equal(t.id.origin_seq, 2);
    assert_int_equal(t.seq, 2);
    int64_t th = t.id.hlc;
    struct changes k;
    changes_after(r, 1, &k);
    assert_int_equal(k.n, 1);
    assert_true(k.c[0].deleted);
    assert_int_equal(k.c[0].id.hlc, th);

    /* an older put arriving late is dropped: not stored, not logged */
    store_change_id_t old = cid(th - 1, PEER, 3);
    int64_t ver = -1;
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &old), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 0);
    assert_int_equal(store_get_repl(r, a, "d-1", &g, &t), 0);
    assert_null(g);
    assert_int_equal(store_last_seq(r), 2);
    /* a tie on hlc goes to the larger node id: "node-a" > "node-" */
    store_change_id_t tie = cid(th, "node-", 4);
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &tie), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 0);
    /* a newer one wins and voids the tombstone */
    store_change_id_t later = cid(th + 5, PEER, 5);
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &later), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(store_get_repl(r, a, "d-1", &g, &t), 0);
    assert_non_null(g);
    assert_int_equal(t.id.hlc, 0);
    assert_int_equal(store_tombstone_get(r, STORE_KIND_OBJECT, "d-1", &t), KMS_ERR_NOTFOUND);

    /* an applied delete older than the object keeps it, records the
     * tombstone (void while the object is newer) and relays it */
    store_change_id_t dold = cid(th + 2, PEER, 6);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "d-1", STORE_VERSION_ANY, &dold), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_get_repl(r, a, "d-1", &g, &t), 0);
    assert_non_null(g);
    assert_int_equal(t.id.hlc, th + 2);
    /* the same again: nothing new, nothing logged */
    int64_t seq = store_last_seq(r);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "d-1", STORE_VERSION_ANY, &dold), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_last_seq(r), seq);
    /* version checks of an applied delete */
    store_change_id_t dnew = cid(th + 9, PEER, 7);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "d-1", STORE_VERSION_NEW, &dnew), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_CONFLICT);
    /* a newer one removes it */
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "d-1", 1, &dnew), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_get_repl(r, a, "d-1", &g, &t), 0);
    assert_null(g);
    assert_int_equal(t.id.hlc, th + 9);
    assert_string_equal(t.id.origin, PEER);
    /* a tombstone of an object never seen here is kept too */
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "never", STORE_VERSION_ANY, &dnew), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_get_repl(r, a, "never", &g, &t), 0);
    assert_null(g);
    assert_int_equal(store_get_repl(r, a, "nothing", &g, &t), KMS_ERR_NOTFOUND);
    int count = 0;
    assert_int_equal(store_each_tombstone(r, count_tomb, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(store_each_tombstone(r, NULL, NULL), KMS_ERR_INVAL);

    fx_close(f);
}

/* A hard delete removes every incarnation created at or before it, also
 * one edited after it (replication's merge rule): when the merge passes
 * the object's version, the store removes the row whatever its last
 * change, keeps the tombstone and relays the delete. */
static void test_delete_decided(void **state)
{
    FX_LOCALS;
    store_object_t o, *g = NULL;
    store_attr_t at[2];
    store_tombstone_t t;
    int64_t ver = -1;
    mk_obj(&o, at, "e-1", 2);
    /* created at 1000, last edited at 3000 (both by the peer) */
    store_change_id_t created = cid(1000 << 16, PEER, 1), edited = cid(3000 << 16, PEER, 2);
    store_clock_t ck[] = {{.name = "", .hlc = created.hlc, .node = PEER},
                          {.name = "Name", .hlc = edited.hlc, .node = PEER}};
    o.clocks = ck;
    o.n_clocks = 2;
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &edited), 0);
    assert_int_equal(commit(s, w, &ver), 0);
    assert_int_equal(ver, 1);
    int64_t seq = store_last_seq(r);
    /* deleted at 2000 on another node that had not seen the edit */
    store_change_id_t del = cid(2000 << 16, "node-c", 7);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "e-1", 1, &del), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_get_repl(r, a, "e-1", &g, &t), 0);
    assert_null(g);
    assert_int_equal(t.id.hlc, del.hlc);
    assert_string_equal(t.id.origin, "node-c");
    struct changes k;
    changes_after(r, seq, &k);
    assert_int_equal(k.n, 1);
    assert_true(k.c[0].deleted);
    assert_int_equal(k.c[0].id.hlc, del.hlc);
    assert_int_equal(k.c[0].id.origin_seq, 7);
    assert_int_equal(sql_int("SELECT count(*) FROM objects WHERE id = 'e-1'"), 0);

    fx_close(f);
}

/* ------------------------------------------------- atomic repl state */
static void test_repl_state_atomic(void **state)
{
    FX_LOCALS;
    store_object_t o;
    store_attr_t at[2];
    store_repl_state_t rs;
    mk_obj(&o, at, "x-1", 2);
    store_change_id_t id1 = cid(1000, PEER, 1), id2 = cid(1001, PEER, 2);
    /* a failing op rolls back the batch and its progress */
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &id1), 0);
    strcpy(o.id, "x-2");
    assert_int_equal(store_write_put_repl(w, &o, 3, &id2), 0); /* x-2 is not at 3 */
    assert_int_equal(store_write_repl_state(w, PEER, 2, 20), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_CONFLICT);
    assert_int_equal(store_repl_state(r, PEER, &rs), KMS_ERR_NOTFOUND);
    assert_int_equal(store_count_objects(r), 0);
    assert_int_equal(store_last_seq(r), 0);
    /* without it both commit */
    w = store_write_new();
    strcpy(o.id, "x-1");
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &id1), 0);
    assert_int_equal(store_write_repl_state(w, PEER, 2, 20), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_repl_state(r, PEER, &rs), 0);
    assert_int_equal(rs.origin_hwm, 2);
    assert_int_equal(rs.link_pos, 20);
    assert_true(rs.updated_us > 0);
    /* origin_hwm only grows; link_pos is set; STORE_KEEP keeps */
    w = store_write_new();
    assert_int_equal(store_write_repl_state(w, PEER, 1, 3), 0);
    assert_int_equal(store_write_repl_state(w, "node-c", STORE_KEEP, 9), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_repl_state(r, PEER, &rs), 0);
    assert_int_equal(rs.origin_hwm, 2);
    assert_int_equal(rs.link_pos, 3);
    w = store_write_new();
    assert_int_equal(store_write_repl_state(w, PEER, 5, STORE_KEEP), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_repl_state(r, PEER, &rs), 0);
    assert_int_equal(rs.origin_hwm, 5);
    assert_int_equal(rs.link_pos, 3);
    store_repl_state_t *all;
    size_t n;
    assert_int_equal(store_list_repl_state(r, a, &all, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].node_id, PEER);
    assert_int_equal(all[1].origin_hwm, 0);
    assert_int_equal(all[1].link_pos, 9);
    w = store_write_new();
    assert_int_equal(store_write_repl_state_drop(w, "node-c"), 0);
    assert_int_equal(store_write_repl_state(w, "", 1, 1), KMS_ERR_INVAL);
    assert_int_equal(store_write_repl_state(w, PEER, -2, 1), KMS_ERR_INVAL);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_repl_state(r, "node-c", &rs), KMS_ERR_NOTFOUND);
    fx_close(f);
}

/* --------------------------------------------------------- snapshots */
struct writer_arg {
    store_t *s;
    int from, to;
};

/* New objects, an update of each of the first ten and a new tenant. */
static void *concurrent_writer(void *p)
{
    struct writer_arg *wa = p;
    for (int i = wa->from; i < wa->to; i++) {
        store_object_t o;
        store_attr_t at[2];
        char id[32];
        snprintf(id, sizeof(id), "s-%04d", i);
        mk_obj(&o, at, id, 2);
        if (put_local(wa->s, &o, STORE_VERSION_NEW) != 0)
            return (void *)1;
        if (i - wa->from < 10) {
            snprintf(id, sizeof(id), "s-%04d", i - wa->from);
            mk_obj(&o, at, id, 1);
            if (put_local(wa->s, &o, 1) != 0)
                return (void *)1;
        }
    }
    store_write_t *w = store_write_new();
    store_write_tenant(w, "later", false);
    return commit(wa->s, w, NULL) ? (void *)1 : NULL;
}

struct seen {
    int n;
    char last[64];
    bool bad;
};

static int seen_cb(const store_object_t *o, void *arg)
{
    struct seen *sn = arg;
    sn->n++;
    /* as of the snapshot: version 1, both attributes, clocks present */
    if (o->version != 1 || o->n_attrs != 2 || o->n_clocks != 1 || strcmp(o->tenant, "t") != 0 ||
        o->sealed.len != sizeof(BLOB) || strcmp(o->id, sn->last) <= 0)
        sn->bad = true;
    strcpy(sn->last, o->id);
    return 0;
}

static void test_snapshot(void **state)
{
    FX_LOCALS;
    for (int i = 0; i < 200; i++) {
        store_object_t o;
        store_attr_t at[2];
        char id[32];
        snprintf(id, sizeof(id), "s-%04d", i);
        mk_obj(&o, at, id, 2);
        assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    }
    int64_t seq = 0;
    assert_int_equal(store_snapshot_begin(r, &seq), 0);
    assert_int_equal(seq, 200);
    assert_int_equal(store_snapshot_seq(r), seq);
    assert_int_equal(store_snapshot_begin(r, &seq), KMS_ERR_STATE);
    /* a store_get through the cache before the writer runs */
    store_object_t *g;
    assert_int_equal(store_get(r, a, "s-0000", NULL, &g), 0);

    pthread_t th;
    struct writer_arg wa = {.s = s, .from = 200, .to = 400};
    assert_int_equal(pthread_create(&th, NULL, concurrent_writer, &wa), 0);
    /* objects in chunks of 37 while the writer goes on */
    struct seen sn = {0};
    int chunks = 0;
    for (;;) {
        int before = sn.n;
        assert_int_equal(store_snapshot_objects(r, sn.last, 37, seen_cb, &sn), 0);
        if (sn.n == before)
            break;
        chunks++;
        if (chunks == 2) {
            void *res;
            pthread_join(th, &res); /* everything committed from here on */
            assert_null(res);
        }
    }
    assert_int_equal(sn.n, 200);
    assert_false(sn.bad);
    /* the rest of the snapshot: still as it was */
    char **tenants;
    size_t nt;
    assert_int_equal(store_list_tenants(r, a, &tenants, &nt), 0);
    assert_int_equal(nt, 0);
    assert_int_equal(store_count_objects(r), 200);
    assert_int_equal(store_last_seq(r), seq);
    struct changes k;
    changes_after(r, seq - 3, &k);
    assert_int_equal(k.n, 3);
    /* store_get too, although the cache holds the newer version */
    assert_int_equal(store_get(r, a, "s-0000", NULL, &g), 0);
    assert_int_equal(g->n_attrs, 2);
    assert_int_equal(store_get_repl(r, a, "s-0001", &g, NULL), 0);
    assert_int_equal(g->version, 1);
    assert_int_equal(store_snapshot_end(r), 0);
    assert_int_equal(store_snapshot_end(r), KMS_ERR_STATE);
    assert_int_equal(store_snapshot_seq(r), KMS_ERR_STATE);
    /* after it: the writer's state */
    assert_int_equal(store_count_objects(r), 400);
    assert_int_equal(store_get(r, a, "s-0000", NULL, &g), 0);
    assert_int_equal(g->n_attrs, 1);
    assert_int_equal(store_last_seq(r), 411); /* 200 creates, 10 updates, the tenant */
    assert_int_equal(store_list_tenants(r, a, &tenants, &nt), 0);
    assert_int_equal(nt, 1);
    /* outside a snapshot: limit and after */
    sn = (struct seen){0};
    strcpy(sn.last, "s-0397");
    assert_int_equal(store_snapshot_objects(r, sn.last, 0, seen_cb, &sn), 0);
    assert_int_equal(sn.n, 2);
    assert_string_equal(sn.last, "s-0399");
    fx_close(f);
}

/* --------------------------------------------------------------- trim */
static void test_trim(void **state)
{
    FX_LOCALS;
    store_object_t o;
    store_attr_t at[2];
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "t-%d", i);
        mk_obj(&o, at, id, 2);
        assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    }
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_delete(w, "t-0", 1), 0); /* seq 7 */
    assert_int_equal(commit(s, w, NULL), 0);
    store_change_id_t rid = cid(5, PEER, 1);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_OBJECT, "t-9", STORE_VERSION_ANY, &rid), 0);
    assert_int_equal(commit(s, w, NULL), 0); /* seq 8 */
    struct changes k;
    w = store_write_new();
    assert_int_equal(store_write_trim(w, 7), 0);
    assert_int_equal(store_write_trim(w, -1), KMS_ERR_INVAL);
    assert_int_equal(commit(s, w, NULL), 0);
    changes_after(r, 0, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.c[0].seq, 8);
    store_tombstone_t t;
    assert_int_equal(store_tombstone_get(r, STORE_KIND_OBJECT, "t-0", &t), KMS_ERR_NOTFOUND);
    assert_int_equal(store_tombstone_get(r, STORE_KIND_OBJECT, "t-9", &t), 0);
    assert_int_equal(t.seq, 8);
    /* everything: the sequence still counts on */
    w = store_write_new();
    assert_int_equal(store_write_trim(w, 8), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    changes_after(r, 0, &k);
    assert_int_equal(k.n, 0);
    assert_int_equal(store_last_seq(r), 8);

    /* reopened with an empty log, the clock and the seq go on */
    fx_reopen(f);
    s = f->s;
    r = f->r;
    mk_obj(&o, at, "t-new", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    changes_after(r, 0, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.c[0].seq, 9);
    assert_true(k.c[0].id.hlc > sql_int("SELECT max(hlc) FROM objects WHERE id <> 't-new'"));
    fx_close(f);
}

/* --------------------------------------------------------------- clock */
static void test_hlc_observe(void **state)
{
    FX_LOCALS;
    store_object_t o, *g;
    store_attr_t at[2];
    int64_t ahead = ((kms_now_us() / 1000) + 60000) << 16; /* a peer a minute ahead */
    store_hlc_observe(s, ahead);
    store_hlc_observe(s, ahead - 100); /* an older observation changes nothing */
    mk_obj(&o, at, "h-1", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_get_repl(r, a, "h-1", &g, NULL), 0);
    assert_true(g->change.hlc > ahead);
    /* applying a remote change observes its clock by itself; also when
     * nothing is logged, and across a restart */
    store_change_id_t far = cid(ahead + ((int64_t)60000 << 16), PEER, 1);
    mk_obj(&o, at, "h-2", 2);
    store_write_t *w = store_write_new();
    store_write_no_log(w);
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &far), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    fx_reopen(f);
    s = f->s;
    r = f->r;
    mk_obj(&o, at, "h-3", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_get_repl(r, a, "h-3", &g, NULL), 0);
    assert_true(g->change.hlc > far.hlc);
    fx_close(f);
}

/* ------------------------------------------- last seq, notification */
struct notified {
    atomic_int calls;
    _Atomic int64_t seq;
};

static void on_change(int64_t seq, void *arg)
{
    struct notified *nt = arg;
    atomic_store(&nt->seq, seq);
    atomic_fetch_add(&nt->calls, 1);
}

static void test_last_seq_notify(void **state)
{
    FX_LOCALS;
    struct notified nt = {0};
    store_set_notify(s, on_change, &nt);
    store_object_t o;
    store_attr_t at[2];
    store_write_t *w = store_write_new();
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n-%d", i);
        mk_obj(&o, at, id, 2);
        assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    }
    assert_int_equal(store_write_last_seq(w), 0); /* not committed yet */
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    assert_int_equal(store_write_last_seq(w), 3);
    assert_int_equal(store_last_seq(r), 3);
    assert_int_equal(atomic_load(&nt.calls), 1);
    assert_int_equal(atomic_load(&nt.seq), 3);
    store_write_free(w);
    /* meta and progress append no row: no call, last seq 0 */
    w = store_write_new();
    assert_int_equal(store_write_meta(w, "k", "v", 1), 0);
    assert_int_equal(store_write_repl_state(w, PEER, 1, 1), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    assert_int_equal(store_write_last_seq(w), 0);
    assert_int_equal(atomic_load(&nt.calls), 1);
    store_write_free(w);
    /* a failed write: 0 */
    w = store_write_new();
    mk_obj(&o, at, "n-0", 2);
    assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), KMS_ERR_CONFLICT);
    assert_int_equal(store_write_last_seq(w), 0);
    store_write_free(w);
    /* tenants are logged too; the callback sees it */
    w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    assert_int_equal(store_write_last_seq(w), 4);
    assert_int_equal(atomic_load(&nt.seq), 4);
    store_write_free(w);
    store_set_notify(s, NULL, NULL);
    fx_close(f);
}

/* ------------------------------------------- the log's rows in memory */
static void assert_same_object(const store_object_t *x, const store_object_t *y)
{
    assert_string_equal(x->id, y->id);
    assert_int_equal(x->object_type, y->object_type);
    assert_int_equal(x->state, y->state);
    assert_string_equal(x->tenant, y->tenant);
    assert_int_equal(x->version, y->version);
    assert_int_equal(x->created_us, y->created_us);
    assert_int_equal(x->updated_us, y->updated_us);
    assert_int_equal(x->archived, y->archived);
    assert_int_equal(x->sealed.dsk_id, y->sealed.dsk_id);
    assert_int_equal(x->sealed.gen, y->sealed.gen);
    assert_int_equal(x->sealed.len, y->sealed.len);
    if (x->sealed.len)
        assert_memory_equal(x->sealed.blob, y->sealed.blob, x->sealed.len);
    assert_int_equal(x->n_attrs, y->n_attrs);
    for (size_t i = 0; i < x->n_attrs; i++) {
        const store_attr_t *p = &x->attrs[i], *q = &y->attrs[i];
        assert_string_equal(p->name, q->name);
        assert_int_equal(p->index, q->index);
        assert_int_equal(p->value_len, q->value_len);
        assert_memory_equal(p->value, q->value, p->value_len);
        assert_int_equal(p->value[p->value_len], 0);
        assert_int_equal(!p->skey, !q->skey);
        if (p->skey)
            assert_string_equal(p->skey, q->skey);
        assert_int_equal(p->has_nkey, q->has_nkey);
        if (p->has_nkey)
            assert_int_equal(p->nkey, q->nkey);
        assert_int_equal(p->index_nkey, q->index_nkey);
    }
    assert_int_equal(x->change.hlc, y->change.hlc);
    assert_string_equal(x->change.origin, y->change.origin);
    assert_int_equal(x->change.origin_seq, y->change.origin_seq);
    assert_int_equal(x->n_clocks, y->n_clocks);
    for (size_t i = 0; i < x->n_clocks; i++) {
        assert_string_equal(x->clocks[i].name, y->clocks[i].name);
        assert_int_equal(x->clocks[i].hlc, y->clocks[i].hlc);
        assert_string_equal(x->clocks[i].node, y->clocks[i].node);
    }
}

/* The rows in memory after `after` equal the log's, and the newest row's
 * object (when it is a put) equals what the store reads now. Returns the
 * number of rows. */
static size_t check_tail(store_t *s, store_reader_t *r, kms_arena_t *a, int64_t after)
{
    static store_logged_t v[64];
    store_tail_ref_t *ref = NULL;
    size_t n = 0;
    struct changes k;
    assert_int_equal(store_log_tail(s, after, 64, v, &n, &ref), 0);
    changes_after(r, after, &k);
    assert_int_equal(n, k.n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].row.seq, k.c[i].seq);
        assert_int_equal(v[i].row.kind, k.c[i].kind);
        assert_string_equal(v[i].row.key, k.c[i].key);
        assert_int_equal(v[i].row.version, k.c[i].version);
        assert_int_equal(v[i].row.deleted, k.c[i].deleted);
        assert_int_equal(v[i].row.id.hlc, k.c[i].id.hlc);
        assert_string_equal(v[i].row.id.origin, k.c[i].id.origin);
        assert_int_equal(v[i].row.id.origin_seq, k.c[i].id.origin_seq);
        /* objects only for puts of objects */
        assert_int_equal(v[i].obj != NULL, v[i].row.kind == STORE_KIND_OBJECT && !v[i].row.deleted);
    }
    if (n && v[n - 1].obj) {
        store_object_t *g = NULL;
        assert_int_equal(store_get_repl(r, a, v[n - 1].row.key, &g, NULL), 0);
        assert_non_null(g);
        assert_same_object(v[n - 1].obj, g);
    }
    store_log_tail_release(ref);
    return n;
}

typedef struct async_done {
    atomic_int left;
    int result[4];
    store_write_t *w[4];
} async_done_t;

static void on_async_done(store_write_t *w, int result, void *arg)
{
    async_done_t *d = arg;
    (void)w;
    for (int i = 0; i < 4; i++)
        if (d->w[i] == w)
            d->result[i] = result;
    atomic_fetch_sub(&d->left, 1);
}

static void test_log_tail(void **state)
{
    FX_LOCALS;
    store_object_t o;
    store_attr_t at[2], rev[2];
    store_logged_t v[8];
    store_tail_ref_t *ref = NULL;
    size_t n = 9;
    int64_t floor = 0;

    /* off: every caller reads the store */
    assert_int_equal(store_log_tail(s, 0, 8, v, &n, &ref), KMS_ERR_NOTFOUND);
    assert_int_equal(n, 0);
    assert_null(ref);
    mk_obj(&o, at, "t-0", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_log_tail_enable(s, 1 << 20), 0);
    assert_int_equal(store_log_tail_enable(s, 1 << 20), KMS_ERR_STATE);
    /* the row committed before is not held: below the floor */
    mk_obj(&o, at, "t-1", 2);
    rev[0] = at[1]; /* given State before Name: held in (name, index) order */
    rev[1] = at[0];
    o.attrs = rev;
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    store_log_tail_stats(s, &floor, NULL);
    assert_int_equal(floor, 1);
    assert_int_equal(store_log_tail(s, 0, 8, v, &n, &ref), KMS_ERR_NOTFOUND);
    assert_int_equal(check_tail(s, r, a, 1), 1);
    /* nothing after the newest row: 0 rows, no reference */
    assert_int_equal(store_log_tail(s, 2, 8, v, &n, &ref), 0);
    assert_int_equal(n, 0);
    assert_null(ref);

    /* a local put touching one name: encoded clocks */
    mk_obj(&o, at, "t-1", 2);
    assert_int_equal(put_state2(s, &o, at), 0);
    assert_int_equal(check_tail(s, r, a, 1), 2);
    /* applied puts: clocks as given, and the default clock (NULL column) */
    mk_obj(&o, at, "t-2", 2);
    o.created_us = 4242;
    o.archived = true;
    store_clock_t clk[] = {{.name = "", .hlc = (int64_t)100 << 16, .node = PEER},
                           {.name = "Name", .hlc = (int64_t)200 << 16, .node = "node-c"}};
    o.clocks = clk;
    o.n_clocks = 2;
    store_change_id_t id = cid((int64_t)200 << 16, PEER, 7);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &id), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(check_tail(s, r, a, 1), 3);
    id = cid((int64_t)300 << 16, PEER, 8);
    store_clock_t dflt = {.name = "", .hlc = id.hlc, .node = PEER};
    o.clocks = &dflt;
    o.n_clocks = 1;
    w = store_write_new();
    assert_int_equal(store_write_put_repl(w, &o, 1, &id), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(check_tail(s, r, a, 1), 4);
    /* a failed write leaves nothing; removals and tenants are rows only */
    mk_obj(&o, at, "t-0", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), KMS_ERR_CONFLICT);
    w = store_write_new();
    assert_int_equal(store_write_delete(w, "t-0", STORE_VERSION_ANY), 0);
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(check_tail(s, r, a, 1), 6);

    /* A batch where one write fails: only the others' rows. Queued
     * behind a larger write, so that the writer usually takes the three
     * in one batch (undoing the failed one by its savepoint); whatever it
     * grouped, each write's rows are there exactly when it committed. */
    store_write_t *ws[4];
    async_done_t done = {.left = 4};
    ws[0] = store_write_new();
    for (int i = 0; i < 100; i++) {
        char oid[16];
        snprintf(oid, sizeof oid, "big-%d", i);
        mk_obj(&o, at, oid, 2);
        assert_int_equal(store_write_put(ws[0], &o, STORE_VERSION_NEW), 0);
    }
    for (int i = 1; i < 4; i++) {
        char oid[16];
        snprintf(oid, sizeof oid, "b-%d", i);
        mk_obj(&o, at, i == 2 ? "t-1" : oid, 2); /* t-1 exists: NEW conflicts */
        ws[i] = store_write_new();
        assert_int_equal(store_write_put(ws[i], &o, STORE_VERSION_NEW), 0);
    }
    memcpy(done.w, ws, sizeof ws);
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_commit_async(s, ws[i], on_async_done, &done), 0);
    while (atomic_load(&done.left) > 0)
        usleep(1000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(done.result[i], i == 2 ? KMS_ERR_CONFLICT : 0);
        store_write_free(ws[i]);
    }
    int64_t top = store_last_seq(r);
    assert_int_equal(top, 109);
    assert_int_equal(check_tail(s, r, a, top - 2), 2);
    assert_int_equal(store_log_tail(s, top - 2, 8, v, &n, &ref), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].row.key, "b-1");
    assert_string_equal(v[1].row.key, "b-3");
    store_log_tail_release(ref);

    /* A reference keeps its rows' objects while later batches push them
     * out of a small budget (ASan: no use after free). */
    assert_int_equal(store_log_tail(s, 1, 8, v, &n, &ref), 0);
    assert_int_equal(n, 8);
    assert_non_null(v[0].obj);
    fx_close(f);
    store_log_tail_release(ref);
    f->s = open_store(SELF);
    s = f->s;
    assert_int_equal(store_reader_new(s, &f->r), 0);
    r = f->r;
    assert_int_equal(store_log_tail_enable(s, 64 << 10), 0);
    mk_obj(&o, at, "s-0", 2);
    assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    int64_t first = 0;
    store_log_tail_stats(s, &first, NULL);
    assert_int_equal(first, top);
    assert_int_equal(store_log_tail(s, first, 8, v, &n, &ref), 0);
    assert_int_equal(n, 1);
    const store_object_t *held = v[0].obj;
    int64_t last = top + 1;
    for (int i = 1; i < 200; i++, last++) {
        char oid[16];
        snprintf(oid, sizeof oid, "s-%d", i);
        mk_obj(&o, at, oid, 2);
        assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    }
    assert_string_equal(held->id, "s-0");
    assert_memory_equal(held->sealed.blob, BLOB, sizeof(BLOB));
    store_log_tail_release(ref);
    size_t bytes = 0;
    store_log_tail_stats(s, &floor, &bytes);
    assert_true(floor > first);       /* the oldest were dropped */
    assert_true(floor < last);        /* the newest are held */
    assert_true(bytes <= 64 << 10);
    assert_int_equal(store_log_tail(s, first, 8, v, &n, &ref), KMS_ERR_NOTFOUND);
    assert_int_equal(check_tail(s, r, a, last - 3), 3);
    /* Every position the tail holds, across segments of one row and of
     * many (a batch of 40 puts): the rows after it, no more, no fewer. */
    w = store_write_new();
    for (int i = 0; i < 40; i++) {
        char oid[16];
        snprintf(oid, sizeof oid, "m-%d", i);
        mk_obj(&o, at, oid, 2);
        assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    }
    assert_int_equal(commit(s, w, NULL), 0);
    for (int i = 0; i < 5; i++, last++) {
        char oid[16];
        snprintf(oid, sizeof oid, "e-%d", i);
        mk_obj(&o, at, oid, 2);
        assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
    }
    last += 40;
    store_log_tail_stats(s, &floor, NULL);
    assert_true(floor < last - 45); /* single-row segments before the batch too */
    for (int64_t after = floor; after <= last; after++)
        assert_int_equal(check_tail(s, r, a, after), last - after < 64 ? last - after : 64);
    assert_int_equal(store_log_tail(s, floor - 1, 8, v, &n, &ref), KMS_ERR_NOTFOUND);
    /* Objects whose attributes come in shuffled order (names and indexes;
     * a short list and one past the insertion sort's 64) are held in the
     * order a read gives. */
    static char names[96][16];
    store_attr_t many[96];
    uint32_t seed = 7;
    for (size_t want = 30; want <= 96; want += 66) {
        for (size_t k = 0; k < want; k++) {
            snprintf(names[k], sizeof names[k], "x-%02zu", k / 3);
            many[k] = (store_attr_t){.name = names[k], .index = (uint32_t)(2 - k % 3),
                                     .value = V_NAME, .value_len = sizeof(V_NAME)};
        }
        for (size_t k = want; k > 1; k--) {
            seed = seed * 1103515245u + 12345u;
            size_t j = (seed >> 8) % k;
            store_attr_t x = many[k - 1];
            many[k - 1] = many[j];
            many[j] = x;
        }
        char oid[16];
        snprintf(oid, sizeof oid, "sa-%zu", want);
        mk_obj(&o, at, oid, 2);
        o.attrs = many;
        o.n_attrs = want;
        assert_int_equal(put_local(s, &o, STORE_VERSION_NEW), 0);
        assert_int_equal(check_tail(s, r, a, store_last_seq(r) - 1), 1);
    }
    fx_close(f);
}

/* ----------------------------------- tenants, clients, nodes, dsks */
static int64_t last_kind(store_reader_t *r, enum store_kind *kind, char *key)
{
    struct changes k;
    changes_after(r, 0, &k);
    assert_true(k.n > 0);
    *kind = k.c[k.n - 1].kind;
    strcpy(key, k.c[k.n - 1].key);
    return k.c[k.n - 1].seq;
}

static void test_tenants_clients(void **state)
{
    FX_LOCALS;
    enum store_kind kind;
    char key[STORE_KEY_MAX];
    store_tenant_t tn;
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(last_kind(r, &kind, key), 1);
    assert_int_equal(kind, STORE_KIND_TENANT);
    assert_string_equal(key, "acme");
    assert_int_equal(store_tenant_get(r, "acme", &tn), 0);
    int64_t h = tn.change.hlc;
    assert_int_equal(tn.change.origin_seq, 1);
    /* older remote row: skipped and not logged; newer: applied as given */
    store_tenant_t rt = {.name = "acme", .created_us = 42};
    store_change_id_t old = cid(h - 1, PEER, 1), newer = cid(h + 1, PEER, 2);
    w = store_write_new();
    assert_int_equal(store_write_tenant_repl(w, &rt, &old), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_last_seq(r), 1);
    w = store_write_new();
    assert_int_equal(store_write_tenant_repl(w, &rt, &newer), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_tenant_get(r, "acme", &tn), 0);
    assert_int_equal(tn.created_us, 42);
    assert_string_equal(tn.change.origin, PEER);
    assert_int_equal(store_last_seq(r), 2);

    /* clients: local, remote LWW, removal tombstones */
    store_client_t c = {.name = "vc", .tenant = "acme", .role = "client", .kind = "cert"};
    w = store_write_new();
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    store_client_t got;
    assert_int_equal(store_client_by_name(r, "vc", &got), 0);
    assert_string_equal(got.change.origin, SELF);
    assert_int_equal(got.change.origin_seq, 3);
    int64_t ch = got.change.hlc;
    w = store_write_new();
    assert_int_equal(store_write_client(w, &c, true), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    store_tombstone_t t;
    assert_int_equal(store_tombstone_get(r, STORE_KIND_CLIENT, "vc", &t), 0);
    assert_true(t.id.hlc > ch);
    store_client_t rc = c;
    strcpy(rc.role, "admin");
    rc.created_us = 77;
    store_change_id_t cold = cid(t.id.hlc - 1, PEER, 3), cnew = cid(t.id.hlc + 1, PEER, 4);
    w = store_write_new();
    assert_int_equal(store_write_client_repl(w, &rc, &cold), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_client_by_name(r, "vc", &got), KMS_ERR_NOTFOUND);
    w = store_write_new();
    assert_int_equal(store_write_client_repl(w, &rc, &cnew), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_client_by_name(r, "vc", &got), 0);
    assert_string_equal(got.role, "admin");
    assert_int_equal(got.created_us, 77);
    assert_int_equal(store_tombstone_get(r, STORE_KIND_CLIENT, "vc", &t), KMS_ERR_NOTFOUND);
    /* a client of a tenant this node lacks: KMS_ERR_NOTFOUND */
    strcpy(rc.name, "orphan");
    strcpy(rc.tenant, "nope");
    w = store_write_new();
    assert_int_equal(store_write_client_repl(w, &rc, &cnew), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_NOTFOUND);
    /* removing a tenant that owns a client: KMS_ERR_STATE */
    store_change_id_t tdel = cid(cnew.hlc + 10, PEER, 5);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_TENANT, "acme", STORE_VERSION_ANY, &tdel), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_STATE);
    w = store_write_new();
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_CLIENT, "vc", STORE_VERSION_ANY, &tdel), 0);
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_TENANT, "acme", STORE_VERSION_ANY, &tdel), 0);
    assert_int_equal(store_write_delete_repl(w, STORE_KIND_NODE, "x", STORE_VERSION_ANY, &tdel), KMS_ERR_INVAL);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_tenant_exists(r, "acme"), KMS_ERR_NOTFOUND);
    assert_int_equal(store_tombstone_get(r, STORE_KIND_TENANT, "acme", &t), 0);
    assert_int_equal(last_kind(r, &kind, key), store_last_seq(r));
    assert_int_equal(kind, STORE_KIND_TENANT);
    store_tenant_t *all;
    size_t n;
    assert_int_equal(store_list_tenants_repl(r, f->a, &all, &n), 0);
    assert_int_equal(n, 0);
    fx_close(f);
}

static void test_nodes_dsks(void **state)
{
    FX_LOCALS;
    enum store_kind kind;
    char key[STORE_KEY_MAX];
    store_node_t n = {.node_id = PEER, .peer_addr = "10.0.0.2:5697", .kmip_addr = "10.0.0.2:5696",
                      .added_hlc = 5};
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_node(w, &n), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    last_kind(r, &kind, key);
    assert_int_equal(kind, STORE_KIND_NODE);
    assert_string_equal(key, PEER);
    store_node_t g;
    assert_int_equal(store_node_get(r, PEER, &g), 0);
    assert_string_equal(g.peer_addr, "10.0.0.2:5697");
    int64_t h = g.change.hlc;
    /* an older removal still removes (sticky); a newer update keeps it removed */
    store_node_t rm = n;
    rm.removed = true;
    store_change_id_t old = cid(h - 1, "node-c", 1), newer = cid(h + 1, "node-c", 2);
    w = store_write_new();
    assert_int_equal(store_write_node_repl(w, &rm, &old), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_node_get(r, PEER, &g), 0);
    assert_true(g.removed);
    assert_int_equal(g.change.hlc, h);
    store_node_t upd = n;
    strcpy(upd.peer_addr, "10.0.0.9:5697");
    w = store_write_new();
    assert_int_equal(store_write_node_repl(w, &upd, &newer), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_node_get(r, PEER, &g), 0);
    assert_true(g.removed);
    assert_string_equal(g.peer_addr, "10.0.0.9:5697");
    assert_int_equal(g.change.hlc, h + 1);
    /* an older update without removal: nothing */
    int64_t seq = store_last_seq(r);
    w = store_write_new();
    assert_int_equal(store_write_node_repl(w, &n, &old), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_last_seq(r), seq);
    store_node_t *nodes;
    size_t nn;
    assert_int_equal(store_list_nodes(r, a, &nodes, &nn), 0);
    assert_int_equal(nn, 1);
    strcpy(upd.cert_sha256, "XYZ");
    w = store_write_new();
    assert_int_equal(store_write_node(w, &upd), KMS_ERR_INVAL);
    store_write_free(w);

    /* data-store keys: wrapped bytes in meta, the id in the log */
    static const uint8_t wrapped[] = {9, 8, 7};
    w = store_write_new();
    assert_int_equal(store_write_dsk(w, 7, wrapped, sizeof(wrapped)), 0);
    assert_int_equal(store_write_dsk_current(w, 7), 0);
    assert_int_equal(store_write_dsk(w, 0, wrapped, 3), KMS_ERR_INVAL);
    assert_int_equal(commit(s, w, NULL), 0);
    struct changes k;
    changes_after(r, seq, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.c[0].kind, STORE_KIND_DSK);
    assert_string_equal(k.c[0].key, "7");
    assert_string_equal(k.c[1].key, STORE_DSK_CURRENT_KEY);
    uint8_t *v;
    size_t vlen;
    assert_int_equal(store_meta_get(r, a, "dsk.7", &v, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(v, wrapped, 3);
    store_dsk_t d;
    assert_int_equal(store_dsk_get(r, 7, &d), 0);
    assert_int_equal(d.change.origin_seq, k.c[0].seq);
    uint32_t cur;
    store_change_id_t cc;
    assert_int_equal(store_dsk_current(r, &cur, &cc), 0);
    assert_int_equal(cur, 7);
    assert_int_equal(cc.origin_seq, k.c[1].seq);
    /* a local id again: refused; an applied one that exists: left alone */
    w = store_write_new();
    assert_int_equal(store_write_dsk(w, 7, wrapped, 3), 0);
    assert_int_equal(commit(s, w, NULL), KMS_ERR_EXISTS);
    store_change_id_t did = cid(cc.hlc + 5, PEER, 9);
    w = store_write_new();
    assert_int_equal(store_write_dsk_repl(w, 7, "zz", 2, &did), 0);
    assert_int_equal(store_write_dsk_repl(w, 9, "new", 3, &did), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_meta_get(r, a, "dsk.7", &v, &vlen), 0);
    assert_int_equal(vlen, 3);
    store_dsk_t *ds;
    size_t nd;
    assert_int_equal(store_list_dsks(r, a, &ds, &nd), 0);
    assert_int_equal(nd, 2);
    assert_int_equal(ds[1].id, 9);
    assert_string_equal(ds[1].change.origin, PEER);
    /* the current key: LWW register */
    store_change_id_t cold = cid(cc.hlc - 1, PEER, 10), cnew = cid(cc.hlc + 1, PEER, 11);
    w = store_write_new();
    assert_int_equal(store_write_dsk_current_repl(w, 9, &cold), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_dsk_current(r, &cur, NULL), 0);
    assert_int_equal(cur, 7);
    w = store_write_new();
    assert_int_equal(store_write_dsk_current_repl(w, 9, &cnew), 0);
    assert_int_equal(commit(s, w, NULL), 0);
    assert_int_equal(store_dsk_current(r, &cur, &cc), 0);
    assert_int_equal(cur, 9);
    assert_string_equal(cc.origin, PEER);
    assert_int_equal(store_meta_get(r, a, "dsk.current", &v, &vlen), 0);
    assert_string_equal((char *)v, "9");
    fx_close(f);
}

/* ------------------------------------------------- bulk (catch-up) */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* In-flight writes of the bulk apply: the caller builds the next write
 * while the writer commits the previous ones (store_commit_async). */
struct window {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    int failed;
};

static void bulk_done(store_write_t *w, int result, void *arg)
{
    struct window *win = arg;
    store_write_free(w); /* the writer is done with it */
    pthread_mutex_lock(&win->mu);
    win->in_flight--;
    if (result)
        win->failed = result;
    pthread_cond_signal(&win->cv);
    pthread_mutex_unlock(&win->mu);
}

static void window_wait(struct window *win, int most)
{
    pthread_mutex_lock(&win->mu);
    while (win->in_flight > most)
        pthread_cond_wait(&win->cv, &win->mu);
    pthread_mutex_unlock(&win->mu);
}

/* A joining node applies a snapshot into an empty store: objects with
 * ~12 attributes and one clock, 500 per write, no log rows, progress in the
 * last write, up to 4 writes in flight (what replication's catch-up does:
 * the next chunk is decoded while the writer commits). */
static void test_bulk_apply(void **state)
{
    fx_t *f = *state;
    const char *env = getenv("KMS_BULK_N");
    int total = env ? atoi(env) : 10000;
    store_t *s = f->s;
    store_reader_t *r = f->r;
    static uint8_t vals[12][40];
    store_attr_t at[12];
    const char *names[12] = {"Name", "State", "Object Type", "Cryptographic Algorithm",
                             "Cryptographic Length", "Cryptographic Usage Mask", "Digest",
                             "Initial Date", "Last Change Date", "Lease Time",
                             "Unique Identifier", "Fresh"};
    for (int i = 0; i < 12; i++) {
        memset(vals[i], i, sizeof(vals[i]));
        at[i] = (store_attr_t){.name = names[i], .value = vals[i], .value_len = 16 + i * 2,
                               .nkey = i, .has_nkey = i != 0 && i != 6 && i != 10,
                               .index_nkey = i == 7 || i == 8};
    }
    uint8_t blob[80];
    memset(blob, 0xab, sizeof(blob));
    char name[64], uid[64];
    struct window win = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    uint64_t t0 = kms_mono_ns();
    double cpu0 = cpu_seconds();
    int64_t base = (kms_now_us() / 1000) << 16;
    for (int done = 0; done < total;) {
        store_write_t *w = store_write_new();
        store_write_no_log(w);
        for (int j = 0; j < 500 && done < total; j++, done++) {
            store_object_t o;
            memset(&o, 0, sizeof(o));
            /* ids in the order a snapshot sends them (UUIDv7-like) */
            snprintf(o.id, sizeof(o.id), "0199a000-%04x-7000-8000-%012x", done >> 16, done);
            strcpy(o.tenant, "default");
            snprintf(name, sizeof(name), "key-%d", done);
            snprintf(uid, sizeof(uid), "%s", o.id);
            at[0].skey = name;
            at[10].skey = uid;
            o.object_type = 2;
            o.state = 2;
            o.sealed = (kms_sealed_t){.dsk_id = 1, .gen = 1, .blob = blob, .len = sizeof(blob)};
            o.created_us = 1700000000000000 + done;
            o.attrs = at;
            o.n_attrs = 12;
            store_change_id_t id = cid(base + done, PEER, done + 1);
            store_clock_t clk = {.name = "", .hlc = id.hlc - 1, .node = PEER};
            o.clocks = &clk;
            o.n_clocks = 1;
            assert_int_equal(store_write_put_repl(w, &o, STORE_VERSION_NEW, &id), 0);
        }
        if (done == total)
            assert_int_equal(store_write_repl_state(w, PEER, total, total), 0);
        window_wait(&win, 3);
        pthread_mutex_lock(&win.mu);
        win.in_flight++;
        pthread_mutex_unlock(&win.mu);
        assert_int_equal(store_commit_async(s, w, bulk_done, &win), 0);
    }
    window_wait(&win, 0);
    assert_int_equal(win.failed, 0);
    double secs = (double)(kms_mono_ns() - t0) / 1e9, cpu = cpu_seconds() - cpu0;
    /* The machine is shared: CPU time says what the apply itself costs. */
    print_message("bulk apply: %d objects in %.2f s: %.0f objects/s; process CPU %.2f s: "
                  "%.1f us per object (%.0f objects per CPU second)\n",
                  total, secs, total / secs, cpu, cpu * 1e6 / total, total / cpu);
    assert_int_equal(store_count_objects(r), total);
    assert_int_equal(store_last_seq(r), 0); /* nothing to relay */
    store_repl_state_t rs;
    assert_int_equal(store_repl_state(r, PEER, &rs), 0);
    assert_int_equal(rs.link_pos, total);
    store_object_t *g;
    assert_int_equal(store_get_repl(r, f->a, "0199a000-0000-7000-8000-000000000007", &g, NULL), 0);
    assert_int_equal(g->n_attrs, 12);
    assert_int_equal(g->change.origin_seq, 8);
    assert_int_equal(g->created_us, 1700000000000007);
    assert_int_equal(g->n_clocks, 1);
    assert_int_equal(g->clocks[0].hlc, g->change.hlc - 1);
    fx_close(f);
    assert_string_equal(test_sql_integrity(g_path), "ok");
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_v5, fx_setup_empty, fx_teardown),
        cmocka_unit_test_setup_teardown(test_clocks_local, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_put_repl, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_decided, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_repl_state_atomic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_trim, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hlc_observe, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_last_seq_notify, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_log_tail, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenants_clients, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_dsks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bulk_apply, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
