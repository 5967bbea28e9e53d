/* tests/unit/test_store_identity.c: tenants and clients on a real SQLite
 * file: create, read, update, delete; lookups by name and by certificate
 * fingerprint; the rules that keep identities consistent (a client needs
 * its tenant, a tenant with clients or objects cannot be removed, one
 * certificate maps to one client); validation; persistence across reopen;
 * device clients (their identifiers packed into the record and back,
 * lookup by serial number, one serial number per device client, and the
 * schema v8 -> v9 upgrade that admits them). */
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

    /* packing: every field round-trips, absent ones stay absent */
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
    strcpy(badc.cert_sha256, "serNum123456"); /* no separators */
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    badc = c;
    strcpy(badc.cert_sha256, "\x1f\x1f\x1f\x1f"); /* no serial number */
    assert_int_equal(store_write_client(w, &badc, false), KMS_ERR_INVAL);
    store_write_free(w);

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
                     "CREATE INDEX clients_tenant ON clients(tenant);"
                     "DELETE FROM schema_version WHERE version = 9; COMMIT;",
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

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_upgrade, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
