/* tests/unit/test_store_identity.c: tenants and clients on a real SQLite
 * file: create, read, update, delete; lookups by name and by certificate
 * fingerprint; the rules that keep identities consistent (a client needs
 * its tenant, a tenant with clients or objects cannot be removed, one
 * certificate maps to one client); validation; persistence across reopen;
 * device clients (their identifiers in columns of their own and back,
 * lookup by serial number, one serial number per device client, the
 * schema v8 -> v9 upgrade that admits them, the v9 -> v10 upgrade that
 * unpacks their identifiers out of cert_sha256, and the reading of that
 * packed form for what older versions send); disabled clients (schema
 * v12: the flag, when and why, read and written whole, cleared when
 * enabled; the v11 -> v12 upgrade leaves every client enabled). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/tmpdir.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    return kms_test_tmpdir(g_dir, sizeof(g_dir), "storeid", "kms.db", g_path, sizeof(g_path));
}

static int teardown(void **state)
{
    (void)state;
    return kms_test_rmdir(g_dir);
}

/* Undo schema v11 (the attributes' tenant column and the indexes it
 * leads), for the tests that take a new store back to an older version. */
#define UNDO_V11 "DROP INDEX attributes_tenant_skey; DROP INDEX attributes_tenant_ikey;"          \
                 "ALTER TABLE attributes DROP COLUMN tenant;"                                      \
                 "CREATE INDEX attributes_skey ON attributes(name, skey) WHERE skey IS NOT NULL;" \
                 "CREATE INDEX attributes_ikey ON attributes(name, ikey) WHERE ikey IS NOT NULL;"

/* Undo schema v12 (the clients' disabled state). */
#define UNDO_V12 "ALTER TABLE clients DROP COLUMN disabled;"    \
                 "ALTER TABLE clients DROP COLUMN disabled_us;" \
                 "ALTER TABLE clients DROP COLUMN disabled_reason;"

static store_t *open_store(void)
{
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    return s;
}

static int tenant_op(store_t *s, const char *t, bool remove)
{
    store_write_t *w = store_write_new();
    int err = store_write_tenant(w, t, remove);
    if (!err)
        err = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return err;
}

static int client_op(store_t *s, const store_client_t *c, bool remove)
{
    store_write_t *w = store_write_new();
    int err = store_write_client(w, c, remove);
    if (!err)
        err = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return err;
}

#define FP_A "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define FP_B "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"

static store_client_t cert_client(const char *name, const char *tenant, const char *fp)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
    strcpy(c.role, "client");
    strcpy(c.kind, "cert");
    snprintf(c.cert_sha256, sizeof(c.cert_sha256), "%s", fp);
    return c;
}

static void test_tenants(void **state)
{
    (void)state;
    store_t *s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    char **names;
    size_t n;
    assert_int_equal(store_list_tenants(r, a, &names, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_tenant_exists(r, "acme"), KMS_ERR_NOTFOUND);
    assert_int_equal(tenant_op(s, "acme", false), 0);
    assert_int_equal(tenant_op(s, "globex", false), 0);
    assert_int_equal(tenant_op(s, "acme", false), KMS_ERR_EXISTS);
    assert_int_equal(store_tenant_exists(r, "acme"), 0);
    assert_int_equal(store_tenant_exists(r, "ACME"), KMS_ERR_NOTFOUND); /* exact */
    assert_int_equal(store_list_tenants(r, a, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "acme");
    assert_string_equal(names[1], "globex");
    assert_int_equal(tenant_op(s, "globex", true), 0);
    assert_int_equal(tenant_op(s, "globex", true), KMS_ERR_NOTFOUND);
    assert_int_equal(store_tenant_exists(r, "globex"), KMS_ERR_NOTFOUND);

    /* a tenant that owns objects cannot be removed */
    store_object_t o;
    memset(&o, 0, sizeof(o));
    strcpy(o.id, "obj-1");
    strcpy(o.tenant, "acme");
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
    assert_int_equal(tenant_op(s, "acme", true), KMS_ERR_STATE);
    assert_int_equal(store_tenant_exists(r, "acme"), 0);

    /* validation */
    w = store_write_new();
    assert_int_equal(store_write_tenant(w, "", false), KMS_ERR_INVAL);
    assert_int_equal(store_write_tenant(w, NULL, false), KMS_ERR_INVAL);
    char longname[80];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(store_write_tenant(w, longname, false), KMS_ERR_INVAL);
    store_write_free(w);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

static void test_clients(void **state)
{
    (void)state;
    store_t *s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(tenant_op(s, "acme", false), 0);
    assert_int_equal(tenant_op(s, "globex", false), 0);

    /* client of a missing tenant */
    store_client_t c = cert_client("vcenter-1", "nope", FP_A);
    assert_int_equal(client_op(s, &c, false), KMS_ERR_NOTFOUND);
    c = cert_client("vcenter-1", "acme", FP_A);
    int64_t t0 = kms_now_us();
    assert_int_equal(client_op(s, &c, false), 0);

    store_client_t got;
    assert_int_equal(store_client_by_name(r, "vcenter-1", &got), 0);
    assert_string_equal(got.tenant, "acme");
    assert_string_equal(got.role, "client");
    assert_string_equal(got.kind, "cert");
    assert_string_equal(got.cert_sha256, FP_A);
    assert_string_equal(got.password_hash, "");
    assert_true(got.created_us >= t0);
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_client_by_cert(r, FP_A, &got), 0);
    assert_string_equal(got.name, "vcenter-1");
    assert_int_equal(store_client_by_cert(r, FP_B, &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_name(r, "vcenter-2", &got), KMS_ERR_NOTFOUND);

    /* one certificate, one client */
    store_client_t c2 = cert_client("vcenter-2", "globex", FP_A);
    assert_int_equal(client_op(s, &c2, false), KMS_ERR_EXISTS);
    assert_int_equal(store_client_by_cert(r, FP_A, &got), 0);
    assert_string_equal(got.tenant, "acme"); /* unchanged */

    /* update in place: new fingerprint and role, created_us kept */
    int64_t created = got.created_us;
    c.created_us = 0;
    strcpy(c.role, "admin");
    strcpy(c.cert_sha256, FP_B);
    assert_int_equal(client_op(s, &c, false), 0);
    assert_int_equal(store_client_by_name(r, "vcenter-1", &got), 0);
    assert_string_equal(got.role, "admin");
    assert_int_equal(got.created_us, created);
    assert_int_equal(store_client_by_cert(r, FP_A, &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_cert(r, FP_B, &got), 0);

    /* password client: never found by a (empty) certificate fingerprint */
    store_client_t p;
    memset(&p, 0, sizeof(p));
    strcpy(p.name, "alice");
    strcpy(p.tenant, "globex");
    strcpy(p.role, "client");
    strcpy(p.kind, "password");
    strcpy(p.password_hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
    assert_int_equal(client_op(s, &p, false), 0);
    assert_int_equal(store_client_by_cert(r, "", &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_name(r, "alice", &got), 0);
    assert_string_equal(got.password_hash, p.password_hash);
    assert_string_equal(got.cert_sha256, "");

    /* list, ordered by name */
    kms_arena_t *a = kms_arena_new(0);
    store_client_t *list;
    size_t n;
    assert_int_equal(store_list_clients(r, a, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "vcenter-1");

    /* a tenant with clients cannot be removed */
    assert_int_equal(tenant_op(s, "globex", true), KMS_ERR_STATE);
    assert_int_equal(client_op(s, &p, true), 0);
    assert_int_equal(client_op(s, &p, true), KMS_ERR_NOTFOUND);
    assert_int_equal(tenant_op(s, "globex", true), 0);

    /* validation before the writer */
    store_write_t *w = store_write_new();
    store_client_t bad = c;
    strcpy(bad.role, "root");
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    bad = c;
    strcpy(bad.kind, "token");
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    bad = c;
    strcpy(bad.cert_sha256, "ABCDEF"); /* short, upper case */
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    memcpy(bad.cert_sha256, FP_A, 64);
    bad.cert_sha256[10] = 'G';
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    bad = p;
    bad.password_hash[0] = '\0';
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    bad = c;
    bad.tenant[0] = '\0';
    assert_int_equal(store_write_client(w, &bad, false), KMS_ERR_INVAL);
    store_write_free(w);

    /* a write mixing a tenant and its first client is atomic */
    w = store_write_new();
    assert_int_equal(store_write_tenant(w, "initech", false), 0);
    store_client_t c3 = cert_client("peter", "initech", FP_A);
    assert_int_equal(store_write_client(w, &c3, false), 0);
    store_client_t c4 = cert_client("bill", "initech", FP_B); /* FP_B taken */
    assert_int_equal(store_write_client(w, &c4, false), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), KMS_ERR_EXISTS);
    store_write_free(w);
    assert_int_equal(store_tenant_exists(r, "initech"), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_name(r, "peter", &got), KMS_ERR_NOTFOUND);

    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);

    /* everything persists */
    s = open_store();
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_client_by_cert(r, FP_B, &got), 0);
    assert_string_equal(got.name, "vcenter-1");
    assert_string_equal(got.role, "admin");
    assert_int_equal(store_tenant_exists(r, "acme"), 0);
    assert_int_equal(store_tenant_exists(r, "globex"), KMS_ERR_NOTFOUND);
    store_reader_free(r);
    store_close(s);
}

static store_client_t device_client(const char *name, const char *tenant, const char *serial,
                                    const char *network)
{
    store_client_t c = cert_client(name, tenant, "");
    strcpy(c.password_hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
    store_device_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.serial, sizeof(d.serial), "%s", serial);
    snprintf(d.network_id, sizeof(d.network_id), "%s", network);
    assert_int_equal(store_client_set_device(&c, &d), 0);
    return c;
}

static void test_device_clients(void **state)
{
    (void)state;
    store_t *s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(tenant_op(s, "acme", false), 0);

    /* every field round-trips, absent ones stay absent */
    store_device_t d, back;
    memset(&d, 0, sizeof(d));
    strcpy(d.serial, "serNum123456");
    strcpy(d.device_id, "devID2233");
    strcpy(d.media_id, "mediaID313");
    store_client_t c = device_client("tape-1", "acme", "x", "");
    assert_int_equal(store_client_set_device(&c, &d), 0);
    assert_string_equal(c.kind, "device");
    assert_int_equal(store_client_device(&c, &back), 0);
    assert_memory_equal(&d, &back, sizeof(d));
    /* refused identifiers leave the record alone */
    store_device_t bad = d;
    bad.serial[0] = '\0';
    assert_int_equal(store_client_set_device(&c, &bad), KMS_ERR_INVAL);
    bad = d;
    strcpy(bad.network_id, "a\x1f" "b");
    assert_int_equal(store_client_set_device(&c, &bad), KMS_ERR_INVAL);
    bad = d;
    memset(bad.machine_id, 'm', STORE_DEVICE_FIELD_MAX + 1); /* no terminator */
    assert_int_equal(store_client_set_device(&c, &bad), KMS_ERR_INVAL);
    assert_int_equal(store_client_device(&c, &back), 0);
    assert_string_equal(back.serial, "serNum123456");
    /* a record that is not a device's has no identifiers */
    store_client_t notdev = cert_client("x", "acme", FP_A);
    assert_int_equal(store_client_device(&notdev, &back), KMS_ERR_INVAL);
    assert_string_equal(back.serial, "");

    /* stored, found by serial number, never by name of a field or by cert */
    int64_t t0 = kms_now_us();
    assert_int_equal(client_op(s, &c, false), 0);
    store_client_t got;
    assert_int_equal(store_client_by_device(r, "serNum123456", &got), 0);
    assert_string_equal(got.name, "tape-1");
    assert_string_equal(got.kind, "device");
    assert_string_equal(got.password_hash, c.password_hash);
    assert_true(got.created_us >= t0);
    assert_int_equal(store_client_device(&got, &back), 0);
    assert_memory_equal(&d, &back, sizeof(d));
    assert_int_equal(store_client_by_device(r, "serNum", &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_device(r, "devID2233", &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_device(r, "", &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_cert(r, c.cert_sha256, &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_client_by_device(r, NULL, &got), KMS_ERR_INVAL);

    /* one serial number, one device client; other identifiers may repeat */
    store_client_t c2 = device_client("tape-2", "acme", "serNum123456", "net9");
    assert_int_equal(client_op(s, &c2, false), KMS_ERR_EXISTS);
    c2 = device_client("tape-2", "acme", "serNum101010", "");
    assert_int_equal(store_client_set_device(&c2, &(store_device_t){.serial = "serNum101010",
                                                                  .device_id = "devID2233"}),
                     0);
    assert_int_equal(client_op(s, &c2, false), 0);
    assert_int_equal(store_client_by_device(r, "serNum101010", &got), 0);
    assert_string_equal(got.name, "tape-2");

    /* validation before the writer: a hash and well-formed identifiers */
    store_write_t *w = store_write_new();
    store_client_t badc = c;
    badc.password_hash[0] = '\0';
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    badc = c;
    strcpy(badc.cert_sha256, FP_A); /* a device has no fingerprint */
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    badc = c;
    badc.device.serial[0] = '\0'; /* no serial number */
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    badc = c;
    strcpy(badc.device.media_id, "a\nb"); /* a control character */
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    store_write_free(w);

    /* the columns: identifiers in their own, cert_sha256 empty; a client of
     * another kind stores no identifiers, whatever its record carries */
    store_client_t pc = cert_client("pw-1", "acme", "");
    strcpy(pc.kind, "password");
    strcpy(pc.password_hash, c.password_hash);
    strcpy(pc.device.serial, "ignored");
    assert_int_equal(client_op(s, &pc, false), 0);
    assert_int_equal(store_client_by_name(r, "pw-1", &got), 0);
    assert_string_equal(got.device.serial, "");
    assert_int_equal(store_client_by_device(r, "ignored", &got), KMS_ERR_NOTFOUND);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT cert_sha256, device_serial, device_id, network_id,"
                                        " machine_id, media_id FROM clients WHERE name = 'tape-1'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *want[6] = {"", "serNum123456", "devID2233", "", "", "mediaID313"};
    for (int i = 0; i < 6; i++)
        assert_string_equal((const char *)sqlite3_column_text(st, i), want[i]);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* removal frees the serial number */
    assert_int_equal(client_op(s, &c, true), 0);
    assert_int_equal(store_client_by_device(r, "serNum123456", &got), KMS_ERR_NOTFOUND);
    store_reader_free(r);
    store_close(s);
}

/* A v8 database (kind limited to cert and password) is upgraded to v9 with
 * its clients kept, and then takes device clients. */
static void test_device_upgrade(void **state)
{
    (void)state;
    store_t *s = open_store();
    assert_int_equal(tenant_op(s, "acme", false), 0);
    store_client_t c = cert_client("vcenter-1", "acme", FP_A);
    assert_int_equal(client_op(s, &c, false), 0);
    store_close(s);
    /* Back to v8: the clients table as v8 made it, the v9 record gone. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "BEGIN;"
                     "CREATE TABLE c8 (name TEXT PRIMARY KEY NOT NULL,"
                     " tenant TEXT NOT NULL REFERENCES tenants(name),"
                     " role TEXT NOT NULL CHECK (role IN ('client', 'admin')),"
                     " kind TEXT NOT NULL CHECK (kind IN ('cert', 'password')),"
                     " cert_sha256 TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL DEFAULT '',"
                     " created_us INTEGER NOT NULL, hlc INTEGER NOT NULL DEFAULT 0,"
                     " origin TEXT NOT NULL DEFAULT '', origin_seq INTEGER NOT NULL DEFAULT 0);"
                     "INSERT INTO c8 SELECT name, tenant, role, kind, cert_sha256, password_hash,"
                     " created_us, hlc, origin, origin_seq FROM clients;"
                     "DROP TABLE clients; ALTER TABLE c8 RENAME TO clients;"
                     "CREATE UNIQUE INDEX clients_cert ON clients(cert_sha256)"
                     " WHERE kind = 'cert' AND cert_sha256 <> '';"
                     "CREATE INDEX clients_tenant ON clients(tenant);" UNDO_V11
                     "DELETE FROM schema_version WHERE version >= 9; COMMIT;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    /* a v8 table refuses a device client */
    assert_int_not_equal(sqlite3_exec(db, "INSERT INTO clients(name, tenant, role, kind, created_us)"
                                          " VALUES ('d', 'acme', 'client', 'device', 1)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
    s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    store_client_t got;
    assert_int_equal(store_client_by_cert(r, FP_A, &got), 0);
    assert_string_equal(got.name, "vcenter-1");
    c = device_client("tape-1", "acme", "serNum123456", "");
    assert_int_equal(client_op(s, &c, false), 0);
    assert_int_equal(store_client_by_device(r, "serNum123456", &got), 0);
    store_reader_free(r);
    store_close(s);
}

/* The packed form of schema v9 (and of the entities and backups of the
 * versions that used it) reads back into the fields; anything else is
 * refused with nothing filled in. */
static void test_device_unpack(void **state)
{
    (void)state;
    store_device_t d;
    assert_int_equal(store_device_unpack("serNum123456\x1f" "devID2233\x1f\x1f\x1f" "mediaID313",
                                         &d),
                     0);
    assert_string_equal(d.serial, "serNum123456");
    assert_string_equal(d.device_id, "devID2233");
    assert_string_equal(d.network_id, "");
    assert_string_equal(d.machine_id, "");
    assert_string_equal(d.media_id, "mediaID313");
    char longest[STORE_DEVICE_PACKED_MAX + 2];
    memset(longest, 'x', STORE_DEVICE_PACKED_MAX);
    for (int i = 1; i <= 4; i++)
        longest[i * (STORE_DEVICE_FIELD_MAX + 1) - 1] = '\x1f';
    longest[STORE_DEVICE_PACKED_MAX] = '\0';
    assert_int_equal(store_device_unpack(longest, &d), 0);
    assert_int_equal(strlen(d.media_id), STORE_DEVICE_FIELD_MAX);
    const char *bad[] = {
        "",                                       /* nothing */
        "serNum123456",                           /* no separators */
        "serNum123456\x1f\x1f\x1f",               /* three */
        "serNum123456\x1f\x1f\x1f\x1f\x1f",         /* five */
        "\x1f" "devID2233\x1f\x1f\x1f",             /* no serial number */
        "serNum123456\x1f\x1f\x1f\x1f" "a\nb",      /* a control character */
        "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", /* a fingerprint */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 'z', sizeof d);
        assert_int_equal(store_device_unpack(bad[i], &d), KMS_ERR_INVAL);
        assert_string_equal(d.serial, "");
        assert_string_equal(d.media_id, "");
    }
    memset(longest, 'x', STORE_DEVICE_PACKED_MAX + 1); /* a field too long */
    longest[STORE_DEVICE_PACKED_MAX + 1] = '\0';
    for (int i = 1; i <= 4; i++)
        longest[i * (STORE_DEVICE_FIELD_MAX + 1) - 1] = '\x1f';
    assert_int_equal(store_device_unpack(longest, &d), KMS_ERR_INVAL);
    assert_int_equal(store_device_unpack(NULL, &d), KMS_ERR_INVAL);
}

/* Every field of a client row, as the store reads it. */
static void assert_client(const store_client_t *got, const store_client_t *want)
{
    assert_string_equal(got->name, want->name);
    assert_string_equal(got->tenant, want->tenant);
    assert_string_equal(got->role, want->role);
    assert_string_equal(got->kind, want->kind);
    assert_string_equal(got->cert_sha256, want->cert_sha256);
    assert_string_equal(got->password_hash, want->password_hash);
    assert_int_equal(got->created_us, want->created_us);
    assert_int_equal(got->change.hlc, want->change.hlc);
    assert_string_equal(got->change.origin, want->change.origin);
    assert_int_equal(got->change.origin_seq, want->change.origin_seq);
    assert_memory_equal(&got->device, &want->device, sizeof want->device);
}

#define HASH_1 "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQxMjM0NTY$aGFzaDE"
#define HASH_2 "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ2NTQzMjE$aGFzaDI"
#define HASH_3 "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRhYmNkZWY$aGFzaDM"

/* A database file as schema v9 left it (the clients table with a device's
 * identifiers packed into cert_sha256 and the v9 clients_device index on
 * the first packed field), holding certificate, password and device
 * clients, is upgraded to v10 in place: every field of every client is
 * kept, the identifiers are in their columns, cert_sha256 is a
 * fingerprint or empty, and the serial number stays unique. */
static void test_device_upgrade_v10(void **state)
{
    (void)state;
    store_t *s = open_store();
    assert_int_equal(tenant_op(s, "acme", false), 0);
    assert_int_equal(tenant_op(s, "globex", false), 0);
    store_close(s);
    /* The v9 clients table and its rows, written as v9's store wrote them. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "BEGIN;"
            "DROP INDEX clients_device;"
            "ALTER TABLE clients DROP COLUMN device_serial;"
            "ALTER TABLE clients DROP COLUMN device_id;"
            "ALTER TABLE clients DROP COLUMN network_id;"
            "ALTER TABLE clients DROP COLUMN machine_id;"
            "ALTER TABLE clients DROP COLUMN media_id;"
            "CREATE UNIQUE INDEX clients_device ON clients(substr(cert_sha256, 1,"
            " instr(cert_sha256, char(31)) - 1)) WHERE kind = 'device';"
            "INSERT INTO clients(name, tenant, role, kind, cert_sha256, password_hash,"
            " created_us, hlc, origin, origin_seq) VALUES"
            " ('vcenter-1', 'acme', 'admin', 'cert', '" FP_A "', '', 1000, 65536001,"
            " 'node-a', 3),"
            " ('by-cn', 'acme', 'client', 'cert', '', '', 1001, 65536002, 'node-a', 4),"
            " ('alice', 'globex', 'client', 'password', '', '" HASH_1 "', 1002, 65536003,"
            " 'node-b', 5),"
            " ('tape-1', 'acme', 'client', 'device', 'serNum123456' || char(31) || 'devID2233'"
            " || char(31) || 'netID9000' || char(31) || char(31), '" HASH_2 "', 1003, 65536004,"
            " 'node-a', 6),"
            " ('tape-2', 'globex', 'admin', 'device', 'serNum101010' || char(31) || char(31)"
            " || char(31) || 'machineID1' || char(31) || 'mediaID313', '" HASH_3 "', 1004,"
            " 65536005, 'node-b', 7);"
            UNDO_V11 UNDO_V12 "DELETE FROM schema_version WHERE version >= 10; COMMIT;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info('clients')"
                                            " WHERE name = 'device_serial'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0); /* a v9 table */
    sqlite3_finalize(st);
    sqlite3_close(db);

    s = open_store();
    assert_int_equal(store_schema_version(s), 12);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    store_client_t want[5];
    memset(want, 0, sizeof want);
    const struct {
        const char *name, *tenant, *role, *kind, *fp, *hash, *origin;
    } rows[5] = {{"vcenter-1", "acme", "admin", "cert", FP_A, "", "node-a"},
                 {"by-cn", "acme", "client", "cert", "", "", "node-a"},
                 {"alice", "globex", "client", "password", "", HASH_1, "node-b"},
                 {"tape-1", "acme", "client", "device", "", HASH_2, "node-a"},
                 {"tape-2", "globex", "admin", "device", "", HASH_3, "node-b"}};
    for (int i = 0; i < 5; i++) {
        store_client_t *w = &want[i];
        strcpy(w->name, rows[i].name);
        strcpy(w->tenant, rows[i].tenant);
        strcpy(w->role, rows[i].role);
        strcpy(w->kind, rows[i].kind);
        strcpy(w->cert_sha256, rows[i].fp);
        strcpy(w->password_hash, rows[i].hash);
        w->created_us = 1000 + i;
        w->change.hlc = 65536001 + i;
        strcpy(w->change.origin, rows[i].origin);
        w->change.origin_seq = 3 + i;
    }
    strcpy(want[3].device.serial, "serNum123456");
    strcpy(want[3].device.device_id, "devID2233");
    strcpy(want[3].device.network_id, "netID9000");
    strcpy(want[4].device.serial, "serNum101010");
    strcpy(want[4].device.machine_id, "machineID1");
    strcpy(want[4].device.media_id, "mediaID313");
    kms_arena_t *a = kms_arena_new(0);
    store_client_t *all = NULL;
    size_t n = 0;
    assert_int_equal(store_list_clients(r, a, &all, &n), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        store_client_t got;
        assert_int_equal(store_client_by_name(r, want[i].name, &got), 0);
        assert_client(&got, &want[i]);
    }
    store_client_t got;
    assert_int_equal(store_client_by_cert(r, FP_A, &got), 0);
    assert_client(&got, &want[0]);
    assert_int_equal(store_client_by_device(r, "serNum123456", &got), 0);
    assert_client(&got, &want[3]);
    assert_int_equal(store_client_by_device(r, "serNum101010", &got), 0);
    assert_client(&got, &want[4]);
    /* the serial number is still one device's */
    store_client_t dup = want[3];
    strcpy(dup.name, "tape-3");
    assert_int_equal(client_op(s, &dup, false), KMS_ERR_EXISTS);
    strcpy(dup.device.serial, "serNum000000");
    assert_int_equal(client_op(s, &dup, false), 0);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

/* Schema v12: a v11 store's clients come through the upgrade enabled;
 * disabling writes the flag, when and why with the rest of the record
 * unchanged, moves the clients generation (kmip/ re-reads), and enabling
 * clears all three. */
static void test_client_disabled(void **state)
{
    (void)state;
    store_t *s = open_store();
    assert_int_equal(tenant_op(s, "acme", false), 0);
    store_client_t c = cert_client("vcenter-1", "acme", FP_A);
    c.created_us = 4242;
    assert_int_equal(client_op(s, &c, false), 0);
    store_client_t p = cert_client("alice", "acme", "");
    strcpy(p.kind, "password");
    strcpy(p.role, "admin");
    strcpy(p.password_hash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    assert_int_equal(client_op(s, &p, false), 0);
    store_close(s);
    /* Back to v11: the three columns gone, the v12 record gone. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(g_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN;" UNDO_V12
                                      "DELETE FROM schema_version WHERE version >= 12; COMMIT;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    s = open_store();
    assert_int_equal(store_schema_version(s), 12);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    store_client_t got;
    assert_int_equal(store_client_by_cert(r, FP_A, &got), 0);
    assert_false(got.disabled);
    assert_int_equal(got.disabled_us, 0);
    assert_string_equal(got.disabled_reason, "");
    assert_int_equal(got.created_us, 4242);

    /* Disable: the whole record again, with the flag. */
    uint64_t gen = store_clients_generation(s);
    got.disabled = true;
    got.disabled_us = 1700000000123456;
    strcpy(got.disabled_reason, "credential suspected stolen (INC-42)");
    assert_int_equal(client_op(s, &got, false), 0);
    assert_true(store_clients_generation(s) > gen);
    store_client_t d;
    assert_int_equal(store_client_by_name(r, "vcenter-1", &d), 0);
    assert_true(d.disabled);
    assert_int_equal(d.disabled_us, 1700000000123456);
    assert_string_equal(d.disabled_reason, "credential suspected stolen (INC-42)");
    assert_string_equal(d.cert_sha256, FP_A); /* registration kept */
    assert_string_equal(d.role, "client");
    assert_int_equal(d.created_us, 4242);
    assert_int_equal(store_client_by_cert(r, FP_A, &d), 0); /* still found: auth refuses it */
    assert_true(d.disabled);
    kms_arena_t *a = kms_arena_new(0);
    store_client_t *all = NULL;
    size_t n = 0;
    assert_int_equal(store_list_clients(r, a, &all, &n), 0);
    assert_int_equal(n, 2);
    assert_false(all[0].disabled); /* alice */
    assert_true(all[1].disabled);  /* vcenter-1 */

    /* A reason that does not fit is refused before the writer. */
    store_client_t big = d;
    memset(big.disabled_reason, 'x', sizeof big.disabled_reason);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_client(w, &big, false), KMS_ERR_INVAL);
    store_write_free(w);

    /* Kept across a reopen. */
    store_reader_free(r);
    store_close(s);
    s = open_store();
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_client_by_name(r, "vcenter-1", &d), 0);
    assert_true(d.disabled);

    /* Enable: when and why go with the flag, whatever the record says. */
    d.disabled = false;
    assert_int_equal(client_op(s, &d, false), 0);
    assert_int_equal(store_client_by_name(r, "vcenter-1", &d), 0);
    assert_false(d.disabled);
    assert_int_equal(d.disabled_us, 0);
    assert_string_equal(d.disabled_reason, "");
    assert_string_equal(d.cert_sha256, FP_A);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_unpack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_upgrade_v10, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disabled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
