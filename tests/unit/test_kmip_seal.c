/*
 * tests/unit/test_kmip_seal.c: the sealed material of object rows, through
 * kmip_handle() on a real store and keyring.
 *
 * - Writes that change only attributes or state (a date-driven transition,
 *   first Get clearing Fresh, Add / Modify / Delete Attribute, Archive /
 *   Recover, undo, Activate, Revoke) advance the row's version but leave its
 *   sealed blob byte for byte as it was, and the key still reads back.
 * - A blob moved onto another object's row, or onto a row of another
 *   tenant, does not open (Cryptographic Failure), with or without its
 *   seal generation.
 * - A row put into another store (another node, another version history)
 *   opens there with the same data-store keys.
 * - A database written by the code before seal generations (schema v5,
 *   tests/vectors/store-v5-sealed.sql) is migrated and its keys read back.
 */
#include "tests/unit/test_kmip_env.h"

#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

/* The stored row of `id` (from a fresh reader: the committed state). */
static store_object_t *row_of(kenv_t *e, const char *id)
{
    store_reader_t *r = NULL;
    store_object_t *so = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    assert_int_equal(store_get(r, e->a, id, NULL, &so), 0);
    store_reader_free(r);
    return so;
}

/* The Key Material bytes of a Get of `id`; asserted to succeed. */
static const ttlv_item_t *get_material(kenv_t *e, const char *id)
{
    ttlv_item_t *bi = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    ttlv_item_t *sk = ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY);
    ttlv_item_t *kb = sk ? ttlv_find(sk, KMIP_TAG_KEY_BLOCK) : NULL;
    ttlv_item_t *kv = kb ? ttlv_find(kb, KMIP_TAG_KEY_VALUE) : NULL;
    ttlv_item_t *km = kv ? ttlv_find(kv, KMIP_TAG_KEY_MATERIAL) : NULL;
    assert_non_null(km);
    assert_int_equal(km->type, TTLV_BYTE_STRING);
    return km;
}

/* A Batch Item of operation `op` on object `id` in message m; its payload. */
static ttlv_item_t *uid_item(kenv_t *e, ttlv_item_t *m, uint32_t op, const char *id)
{
    ttlv_item_t *p = rq_item(e, m, op);
    rq_uid(e, p, id);
    return p;
}

/* Add / Modify Attribute `name` = text, or (text NULL) Delete Attribute
 * `name`, on `id`; asserted to succeed. */
static void attr_write(kenv_t *e, uint32_t op, const char *id, const char *name, const char *text)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = uid_item(e, m, op, id);
    if (text)
        rq_attr_text(e, p, name, text);
    else
        ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, name);
    assert_ok(rs_item(kenv_call(e, m), 0));
}

/* The row's version moved past `*ver` (which becomes the new one), and
 * its sealed material is exactly `before`'s. */
static void assert_version_up_same_blob(kenv_t *e, const char *id, const store_object_t *before,
                                        int64_t *ver)
{
    store_object_t *now = row_of(e, id);
    assert_true(now->version > *ver);
    *ver = now->version;
    assert_int_equal(now->sealed.dsk_id, before->sealed.dsk_id);
    assert_int_equal(now->sealed.gen, before->sealed.gen);
    assert_int_equal(now->sealed.len, before->sealed.len);
    assert_memory_equal(now->sealed.blob, before->sealed.blob, before->sealed.len);
}

static void test_attribute_writes_keep_blob(void **state)
{
    kenv_t *e = *state;
    /* Activation Date ahead (at least one whole second, so the Create
     * itself cannot reach it): reaching it later is a date-driven write. */
    int64_t activation = (int64_t)time(NULL) + 2;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "sealed-once");
    rq_attr_date(e, ta, "Activation Date", activation);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    const char *id = kms_arena_strdup(e->a, rs_uid(bi));
    const store_object_t *created = row_of(e, id);
    assert_int_equal(created->version, 1);
    assert_int_equal(created->state, KMIP_STATE_PRE_ACTIVE);
    assert_int_equal(created->sealed.gen, 1);
    assert_true(created->sealed.dsk_id != 0 && created->sealed.len == 12 + 32 + 16);
    int64_t ver = created->version;

    /* The Activation Date is reached: the next load stores State Active. */
    while ((int64_t)time(NULL) < activation) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);
    assert_int_equal(row_of(e, id)->state, KMIP_STATE_ACTIVE);
    assert_version_up_same_blob(e, id, created, &ver);

    /* First Get: returns the key and clears Fresh (a write). */
    assert_true(k_attr(e, id, "Fresh")->v.b);
    const ttlv_item_t *km = get_material(e, id);
    uint8_t key[32];
    assert_int_equal(km->v.bytes.len, 32);
    memcpy(key, km->v.bytes.ptr, 32);
    assert_false(k_attr(e, id, "Fresh")->v.b);
    assert_version_up_same_blob(e, id, created, &ver);

    /* A second Get writes nothing. */
    get_material(e, id);
    assert_int_equal(row_of(e, id)->version, ver);

    /* Add, Modify, Delete Attribute. */
    attr_write(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-owner", "ops");
    assert_version_up_same_blob(e, id, created, &ver);
    attr_write(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "x-owner", "security");
    assert_version_up_same_blob(e, id, created, &ver);
    attr_write(e, KMIP_OPERATION_DELETE_ATTRIBUTE, id, "x-owner", NULL);
    assert_version_up_same_blob(e, id, created, &ver);

    /* Archive, Archive again (nothing to do: no write), Recover. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_ARCHIVE, id));
    assert_version_up_same_blob(e, id, created, &ver);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ARCHIVE, id));
    assert_int_equal(row_of(e, id)->version, ver);
    assert_ok(k_op_uid(e, KMIP_OPERATION_RECOVER, id));
    assert_version_up_same_blob(e, id, created, &ver);
    assert_ok(k_op_uid(e, KMIP_OPERATION_RECOVER, id));
    assert_int_equal(row_of(e, id)->version, ver);

    /* Undo puts the earlier row back as it was: blob untouched too. */
    m = rq_msg(e, 1, 1);
    ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                  KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO);
    rq_attr_text(e, uid_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE, id), "x-undone", "v");
    uid_item(e, m, KMIP_OPERATION_DESTROY, id); /* Active: refused */
    ttlv_item_t *r = kenv_call(e, m);
    assert_int_equal(rs_status(rs_item(r, 0)), KMIP_RESULT_STATUS_OPERATION_UNDONE);
    assert_version_up_same_blob(e, id, created, &ver);

    /* Through all of it the key reads back unchanged. */
    km = get_material(e, id);
    assert_int_equal(km->v.bytes.len, 32);
    assert_memory_equal(km->v.bytes.ptr, key, 32);

    /* Activate and Revoke (another key: this one is Active already). */
    char *id2 = k_create_aes(e, NULL);
    const store_object_t *c2 = row_of(e, id2);
    int64_t v2 = c2->version;
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id2));
    assert_version_up_same_blob(e, id2, c2, &v2);
    assert_ok(k_revoke(e, id2, KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION));
    assert_version_up_same_blob(e, id2, c2, &v2);
    get_material(e, id2);
}

/* Replace the sealed material of row `id` by `sealed` (and its tenant by
 * `tenant` when not NULL), through the store as a database writer would. */
static void put_row(kenv_t *e, const char *id, const kms_sealed_t *sealed, const char *tenant)
{
    store_object_t so = *row_of(e, id);
    so.sealed = *sealed;
    if (tenant)
        snprintf(so.tenant, sizeof(so.tenant), "%s", tenant);
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_put(w, &so, so.version), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
}

static void test_moved_blob_does_not_open(void **state)
{
    kenv_t *e = *state;
    char *a = k_create_aes(e, "a");
    char *b = k_create_aes(e, "b");
    kms_sealed_t sa = row_of(e, a)->sealed, sb = row_of(e, b)->sealed;
    assert_int_equal(sa.gen, sb.gen); /* both generation 1: only the id tells them apart */

    /* a's blob on b's row, with a's DSK id and generation */
    put_row(e, b, &sa, NULL);
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, b), KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    /* ... and with another generation */
    kms_sealed_t moved = sa;
    moved.gen = 7;
    put_row(e, b, &moved, NULL);
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, b), KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    /* b's own blob back: it opens again */
    put_row(e, b, &sb, NULL);
    get_material(e, b);

    /* a's row given to another tenant: the blob does not open there (the
     * plain environment's caller is an admin and sees every tenant) */
    put_row(e, a, &sa, "other");
    assert_string_equal(row_of(e, a)->tenant, "other");
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, a), KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    put_row(e, a, &sa, "default");
    get_material(e, a);
}

/* A replicated row opens on another node: the same row (owner, id, DSK
 * id, seal generation, blob) put into a second store, where the object has
 * another version history, reads back the same key through that store,
 * with only the shared data-store keys. */
static void test_row_opens_in_another_store(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    const ttlv_item_t *km = get_material(e, id); /* version 2 here */
    uint8_t key[32];
    assert_int_equal(km->v.bytes.len, 32);
    memcpy(key, km->v.bytes.ptr, 32);
    store_object_t *row = row_of(e, id);
    assert_int_equal(row->version, 2);

    char path[320];
    snprintf(path, sizeof(path), "%s/node2.db", e->dir);
    store_options_t so = {.path = path};
    store_t *s2 = NULL;
    assert_int_equal(store_open(&so, &s2), 0);
    int64_t ver = 0;
    for (int i = 0; i < 4; i++) { /* versions 1..4 there */
        store_write_t *w = store_write_new();
        assert_int_equal(store_write_put(w, row, ver), 0);
        assert_int_equal(store_commit(s2, w, &ver, 1), 0);
        store_write_free(w);
    }
    assert_int_equal(ver, 4);

    kmip_config_t c = {.store = s2, .keyring = e->kr, .vendor = "kmsd", .version = "test",
                       .access = KMIP_ACCESS_OPEN};
    kmip_server_t *srv1 = e->srv;
    assert_int_equal(kmip_server_new(&c, &e->srv), 0);
    km = get_material(e, id);
    assert_int_equal(km->v.bytes.len, 32);
    assert_memory_equal(km->v.bytes.ptr, key, 32);
    kmip_server_free(e->srv);
    e->srv = srv1;
    store_close(s2);
}

/* ---------------------------------------------- a database from before */
#define V5_FIXTURE "tests/vectors/store-v5-sealed.sql"
#define V5_MASTER "13abc397a6202fd7e39fb14535af6b75f9ce8ce437a1a8e0565c83b8bf4786d6"
#define V5_K1 "01a24b4e-d93e-7659-b4e0-3496ae85ded2"
#define V5_K2 "01a24b4e-d948-75b4-9d25-aaa8247d9da7"
#define V5_K2_BYTES "596d3d3d97c646f7258d8ef189ab06850d2131898421048b7925ee2c7d8c14d4"
#define V5_K3 "01a24b4e-d951-7791-8d0c-db85100f186b"

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Load the hex `hex` into a malloc'ed buffer of *len bytes. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    uint8_t *p = NULL;
    assert_int_equal(kms_hex_decode(hex, strlen(hex), &p, len), 0);
    return p;
}

/* The environment on the fixture: its database (made by SQL from the old
 * code's dump), its master key file, and the DSKs its meta names. */
static int v5_setup(void **state)
{
    kenv_t *e = calloc(1, sizeof(*e));
    char path[512];
    kms_error_t err = {0};
    if (!e)
        return -1;
    *state = e;
    kms_log_set_level(KMS_LOG_WARN);
    snprintf(e->dir, sizeof(e->dir), "/tmp/kmsd-seal-test.XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(path, sizeof(path), "%s/kmsd.db", e->dir);
    sqlite3 *db = NULL;
    char *sql = read_text(V5_FIXTURE);
    int rc = sqlite3_open(path, &db) == SQLITE_OK &&
                     sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    sqlite3_close(db);
    free(sql);
    if (rc)
        return -1;
    store_options_t so = {.path = path};
    if (store_open(&so, &e->store))
        return -1;

    size_t n = 0;
    uint8_t *master = unhex(V5_MASTER, &n);
    snprintf(path, sizeof(path), "%s/master.key", e->dir);
    FILE *f = fopen(path, "wb");
    rc = f && fwrite(master, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(master);
    if (rc || chmod(path, 0600) != 0)
        return -1;
    hsm_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = path;
    hc.slot = -1;
    if (hsm_open(&hc, &e->hsm, &err) || hsm_keyring_new(e->hsm, &e->kr))
        return -1;
    store_reader_t *r = NULL;
    uint8_t *v = NULL;
    size_t vlen = 0;
    e->a = kms_arena_new(0);
    if (!e->a || store_reader_new(e->store, &r) ||
        store_meta_get(r, e->a, "dsk.1", &v, &vlen) || hsm_keyring_load(e->kr, 1, v, vlen) ||
        hsm_keyring_set_current(e->kr, 1)) {
        store_reader_free(r);
        return -1;
    }
    store_reader_free(r);
    kmip_config_t c = {.store = e->store, .keyring = e->kr, .vendor = "kmsd", .version = "test",
                       .access = KMIP_ACCESS_OPEN};
    return kmip_server_new(&c, &e->srv) ? -1 : 0;
}

static void test_v5_database_keys_open(void **state)
{
    kenv_t *e = *state;
    assert_true(store_schema_version(e->store) >= 6); /* later steps may follow */
    /* Migration 6 gave each blob its row's version as seal generation. */
    store_object_t *k1 = row_of(e, V5_K1), *k2 = row_of(e, V5_K2), *k3 = row_of(e, V5_K3);
    assert_int_equal(k1->version, 2);
    assert_int_equal(k1->sealed.gen, 2);
    assert_int_equal(k2->version, 3);
    assert_int_equal(k2->sealed.gen, 3);
    assert_int_equal(k3->sealed.dsk_id, 0);
    assert_null(k3->sealed.blob);

    /* The registered key: bytes 00 .. 1f. Its first Get clears Fresh, a
     * write that keeps the old blob as it is. */
    uint8_t want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)i;
    const ttlv_item_t *km = get_material(e, V5_K1);
    assert_int_equal(km->v.bytes.len, 32);
    assert_memory_equal(km->v.bytes.ptr, want, 32);
    int64_t ver = k1->version;
    assert_version_up_same_blob(e, V5_K1, k1, &ver);
    km = get_material(e, V5_K1);
    assert_memory_equal(km->v.bytes.ptr, want, 32);

    /* The created key: the bytes its Get returned before. */
    size_t n = 0;
    uint8_t *k2_bytes = unhex(V5_K2_BYTES, &n);
    km = get_material(e, V5_K2);
    assert_int_equal(km->v.bytes.len, n);
    assert_memory_equal(km->v.bytes.ptr, k2_bytes, n);
    free(k2_bytes);
    /* An attribute write on it keeps the old blob too. */
    attr_write(e, KMIP_OPERATION_ADD_ATTRIBUTE, V5_K2, "x-migrated", "yes");
    ver = k2->version;
    assert_version_up_same_blob(e, V5_K2, k2, &ver);
    get_material(e, V5_K2);

    /* The destroyed key has no material. */
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, V5_K3), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_int_equal(k_state(e, V5_K3), KMIP_STATE_DESTROYED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attribute_writes_keep_blob, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_moved_blob_does_not_open, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_row_opens_in_another_store, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_v5_database_keys_open, v5_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
