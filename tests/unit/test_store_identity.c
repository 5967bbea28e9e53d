/* tests/unit/test_store_identity.c: tenants and clients on a real SQLite
 * file: create, read, update, delete; lookups by name and by certificate
 * fingerprint; the rules that keep identities consistent (a client needs
 * its tenant, a tenant with clients or objects cannot be removed, one
 * certificate maps to one client); validation; persistence across reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

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

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
