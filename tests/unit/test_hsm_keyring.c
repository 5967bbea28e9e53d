/* tests/unit/test_hsm_keyring.c: DSK keyring and the sealing of object
 * rows with a real file master key and a real SoftHSM2 token: round trip,
 * seal generations, every way a blob can be misplaced or tampered with,
 * unknown DSK, re-seal, a blob sealed by the code before generations,
 * reload after a restart, master-key rotation (rewrap), concurrent
 * seal/open, and a DSK moved to another node's keyring (export, import
 * under another master key) that opens the first node's blobs. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "hsm/hsm.h"
#include "tests/unit/util/softhsm.h"


static char dir[64], keypath[128];
static hsm_t *h;
static hsm_keyring_t *kr;

static hsm_config_t file_cfg(const char *path)
{
    hsm_config_t c;
    memset(&c, 0, sizeof(c));
    c.provider = HSM_PROVIDER_FILE;
    c.key_file = path;
    c.slot = -1;
    return c;
}

static int setup(void **state)
{
    (void)state;
    kms_error_t err = {0};
    snprintf(dir, sizeof(dir), "/tmp/kmsd-keyring.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/master.key", dir);
    hsm_config_t c = file_cfg(keypath);
    if (hsm_init_master(&c, NULL, &err) || hsm_open(&c, &h, &err) ||
        hsm_keyring_new(h, &kr))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    hsm_keyring_free(kr);
    kr = NULL;
    hsm_close(h);
    h = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const uint8_t plain[] = "0123456789abcdef0123456789ABCDEF"; /* a 32-byte "key" */

/* hsm_row_open of `sl` for (owner, id); KMS_ERR_* or 0, and on 0 the
 * plaintext must be `plain`. */
static int row_open_is_plain(const char *owner, const char *id, const kms_sealed_t *sl)
{
    kms_secret_t *out = NULL;
    int rc = hsm_row_open(kr, owner, id, sl, &out);
    if (rc == 0 && (out->len != 32 || memcmp(out->data, plain, 32) != 0))
        rc = -999;
    if (rc)
        assert_null(out);
    kms_secret_free(out);
    return rc;
}

static void test_seal_open(void **state)
{
    (void)state;
    kms_buf_t wrapped, w2;
    kms_arena_t *a = kms_arena_new(0);
    kms_sealed_t sl, sl2, other, bad;
    kms_secret_t *out = NULL;

    kms_buf_init(&wrapped, 0);
    kms_buf_init(&w2, 0);
    assert_int_equal(hsm_keyring_current(kr), 0);
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", NULL, plain, 32, a, &sl), KMS_ERR_STATE);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), 0);
    assert_true(wrapped.len > 32);
    assert_int_equal(hsm_keyring_set_current(kr, 2), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    assert_int_equal(hsm_keyring_current(kr), 1);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), KMS_ERR_EXISTS);

    /* new material: generation 1 under the current DSK */
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", NULL, plain, 32, a, &sl), 0);
    assert_int_equal(sl.dsk_id, 1);
    assert_int_equal(sl.gen, 1);
    assert_int_equal(sl.len, 12 + 32 + 16);
    assert_null(memmem(sl.blob, sl.len, plain, 8)); /* not in the clear */
    assert_int_equal(row_open_is_plain("t1", "obj-1", &sl), 0);

    /* sealed again over a stored row: the next generation, another nonce */
    kms_sealed_t prev = {.dsk_id = 1, .gen = 4};
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", &prev, plain, 32, a, &sl2), 0);
    assert_int_equal(sl2.gen, 5);
    assert_memory_not_equal(sl.blob, sl2.blob, sl.len);
    assert_int_equal(row_open_is_plain("t1", "obj-1", &sl2), 0);
    prev.gen = INT64_MAX; /* no wrap-around to a used generation */
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", &prev, plain, 32, a, &bad), KMS_ERR_INVAL);
    prev.gen = -1;
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", &prev, plain, 32, a, &bad), KMS_ERR_INVAL);

    /* another object, another tenant (the row re-assigned), another
     * generation (an older blob with a newer row's generation), a prefix
     * of the id: none opens */
    assert_int_equal(row_open_is_plain("t1", "obj-2", &sl), KMS_ERR_CRYPTO);
    assert_int_equal(row_open_is_plain("t2", "obj-1", &sl), KMS_ERR_CRYPTO);
    assert_int_equal(row_open_is_plain("t1", "obj-", &sl), KMS_ERR_CRYPTO);
    static const int64_t wrong_gen[] = {2, 0, -1, INT64_MAX};
    for (size_t i = 0; i < sizeof(wrong_gen) / sizeof(wrong_gen[0]); i++) {
        bad = sl;
        bad.gen = wrong_gen[i];
        assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);
    }
    bad = sl2;
    bad.gen = 1; /* generation 5's blob presented as generation 1 */
    assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);
    /* an unknown DSK, and a row without material */
    static const uint32_t no_dsk[] = {7, 0};
    for (size_t i = 0; i < sizeof(no_dsk) / sizeof(no_dsk[0]); i++) {
        bad = sl;
        bad.dsk_id = no_dsk[i];
        assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_NOTFOUND);
    }

    /* a blob swapped onto another row: obj-2's blob read as obj-1 */
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-2", NULL, plain, 32, a, &other), 0);
    assert_int_equal(row_open_is_plain("t1", "obj-1", &other), KMS_ERR_CRYPTO);
    assert_int_equal(row_open_is_plain("t1", "obj-2", &other), 0);

    /* the same blob under another loaded DSK id fails: dsk id is in the AAD */
    assert_int_equal(hsm_keyring_generate(kr, 2, &w2), 0);
    bad = sl;
    bad.dsk_id = 2;
    assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);

    /* re-seal (store-key rotation): the current DSK, the next generation;
     * the old blob still opens as what it was */
    assert_int_equal(hsm_keyring_set_current(kr, 2), 0);
    assert_int_equal(hsm_row_reseal(kr, "t1", "obj-1", &sl2, a, &bad), 0);
    assert_int_equal(bad.dsk_id, 2);
    assert_int_equal(bad.gen, 6);
    assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), 0);
    assert_int_equal(row_open_is_plain("t1", "obj-1", &sl2), 0);
    kms_sealed_t in_place = sl2;
    assert_int_equal(hsm_row_reseal(kr, "t1", "obj-1", &in_place, a, &in_place), 0);
    assert_int_equal(in_place.gen, 6);
    assert_int_equal(row_open_is_plain("t1", "obj-1", &in_place), 0);
    assert_int_equal(hsm_row_reseal(kr, "t2", "obj-1", &sl2, a, &bad), KMS_ERR_CRYPTO);

    /* every bit flip of the blob */
    uint8_t *blob = kms_arena_memdup(a, sl.blob, sl.len);
    bad = sl;
    bad.blob = blob;
    for (size_t i = 0; i < sl.len * 8; i++) {
        blob[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);
        blob[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* truncations */
    for (size_t n = 0; n < sl.len; n++) {
        bad.len = n;
        assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);
    }
    bad.blob = NULL;
    bad.len = sl.len;
    assert_int_equal(row_open_is_plain("t1", "obj-1", &bad), KMS_ERR_CRYPTO);

    /* empty plaintext seals and opens too */
    kms_sealed_t e;
    assert_int_equal(hsm_row_seal(kr, "t1", "empty", NULL, plain, 0, a, &e), 0);
    assert_int_equal(e.len, 28);
    assert_int_equal(hsm_row_open(kr, "t1", "empty", &e, &out), 0);
    assert_int_equal(out->len, 0);
    kms_secret_free(out);

    kms_buf_dispose(&w2);
    kms_buf_dispose(&wrapped);
    kms_arena_free(a);
}

/* A blob sealed by kmsd before seal generations existed (the AAD bound the
 * row's version; tests/vectors/store-v5-sealed.sql, first key, version 2)
 * opens as generation 2: the AAD layout did not change. The master key
 * and wrapped DSK are that database's. */
static void test_open_pre_generation_blob(void **state)
{
    (void)state;
    static const char master_hex[] =
        "13abc397a6202fd7e39fb14535af6b75f9ce8ce437a1a8e0565c83b8bf4786d6";
    static const char dsk_hex[] = "0101345181d4a293b66a40d83ae08c97d64d94e0406027df2724e08988a9fc"
                                  "dfaef72995e1c0055cb522";
    static const char blob_hex[] = "286b5759f2164f2630977edd14bd6043a84725b0d324ed537862250bbe51b6"
                                   "70b35f2e052ad8a47aaae73efc2fd30d2ddb4ce5e604483dd12bbb51fc";
    static const char id[] = "01a24b4e-d93e-7659-b4e0-3496ae85ded2";
    uint8_t *master = NULL, *dsk = NULL, *blob = NULL, want[32];
    size_t mn = 0, dn = 0, bn = 0;
    char path[160];
    kms_error_t err = {0};
    hsm_t *h2 = NULL;
    hsm_keyring_t *kr2 = NULL;
    kms_secret_t *out = NULL;

    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)i;
    assert_int_equal(kms_hex_decode(master_hex, strlen(master_hex), &master, &mn), 0);
    assert_int_equal(kms_hex_decode(dsk_hex, strlen(dsk_hex), &dsk, &dn), 0);
    assert_int_equal(kms_hex_decode(blob_hex, strlen(blob_hex), &blob, &bn), 0);
    snprintf(path, sizeof(path), "%s/old.key", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(master, 1, mn, f), 32);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0600), 0);
    hsm_config_t c = file_cfg(path);
    assert_int_equal(hsm_open(&c, &h2, &err), 0);
    assert_int_equal(hsm_keyring_new(h2, &kr2), 0);
    assert_int_equal(hsm_keyring_load(kr2, 1, dsk, dn), 0);
    kms_sealed_t sl = {.dsk_id = 1, .gen = 2, .blob = blob, .len = bn};
    assert_int_equal(hsm_row_open(kr2, "default", id, &sl, &out), 0);
    assert_int_equal(out->len, 32);
    assert_memory_equal(out->data, want, 32);
    kms_secret_free(out);
    out = NULL;
    sl.gen = 1;
    assert_int_equal(hsm_row_open(kr2, "default", id, &sl, &out), KMS_ERR_CRYPTO);
    hsm_keyring_free(kr2);
    hsm_close(h2);
    free(master);
    free(dsk);
    free(blob);
}

/* Restart: a new keyring loads the wrapped DSK and opens old blobs. */
static void test_reload(void **state)
{
    (void)state;
    kms_buf_t wrapped;
    kms_arena_t *a = kms_arena_new(0);
    kms_sealed_t sl, prev = {.gen = 41};
    kms_secret_t *out = NULL;
    hsm_keyring_t *kr2 = NULL;

    kms_buf_init(&wrapped, 0);
    assert_int_equal(hsm_keyring_generate(kr, 5, &wrapped), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 5), 0);
    assert_int_equal(hsm_row_seal(kr, "t1", "k", &prev, plain, 32, a, &sl), 0);

    assert_int_equal(hsm_keyring_new(h, &kr2), 0);
    assert_int_equal(hsm_row_open(kr2, "t1", "k", &sl, &out), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_load(kr2, 5, wrapped.data, wrapped.len), 0);
    assert_int_equal(hsm_keyring_load(kr2, 5, wrapped.data, wrapped.len), 0); /* idempotent */
    assert_int_equal(hsm_row_open(kr2, "t1", "k", &sl, &out), 0);
    assert_memory_equal(out->data, plain, 32);
    kms_secret_free(out);
    /* the same id with a different key is refused */
    kms_buf_t w6;
    kms_buf_init(&w6, 0);
    assert_int_equal(hsm_keyring_generate(kr, 6, &w6), 0);
    assert_int_equal(hsm_keyring_load(kr2, 5, w6.data, w6.len), KMS_ERR_EXISTS);
    /* a corrupt wrapped DSK is refused */
    w6.data[w6.len - 1] ^= 1;
    assert_int_equal(hsm_keyring_load(kr2, 6, w6.data, w6.len), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_keyring_load(kr2, 0, wrapped.data, wrapped.len), KMS_ERR_INVAL);
    hsm_keyring_free(kr2);
    hsm_keyring_free(NULL);
    kms_buf_dispose(&w6);
    kms_buf_dispose(&wrapped);
    kms_arena_free(a);
}

/* Master-key rotation: file master key -> PKCS#11 token key. The DSK is
 * rewrapped under the new master; blobs sealed before open after loading
 * the rewrapped DSK with only the new provider. */
static void test_rewrap_to_pkcs11(void **state)
{
    (void)state;
    softhsm_token_t tok;
    kms_error_t err = {0};
    kms_buf_t wrapped, rewrapped;
    kms_arena_t *a = kms_arena_new(0);
    kms_sealed_t sl;
    kms_secret_t *out = NULL;
    hsm_t *h2 = NULL, *h3 = NULL;
    hsm_keyring_t *kr2 = NULL;

    assert_int_equal(softhsm_token_create(&tok, "kmsd", "1234", "5678"), 0);
    hsm_config_t c;
    memset(&c, 0, sizeof(c));
    c.provider = HSM_PROVIDER_PKCS11;
    c.module = SOFTHSM_MODULE;
    c.token_label = "kmsd";
    c.slot = -1;
    c.pin_file = tok.pin_file;
    c.key_label = "kmsd-master";
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h2, &err), 0);

    kms_buf_init(&wrapped, 0);
    kms_buf_init(&rewrapped, 0);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    assert_int_equal(hsm_row_seal(kr, "t1", "obj", NULL, plain, 32, a, &sl), 0);
    assert_int_equal(hsm_keyring_rewrap(kr, 9, h2, &rewrapped), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_rewrap(kr, 1, h2, &rewrapped), 0);
    assert_memory_not_equal(wrapped.data, rewrapped.data,
                            wrapped.len < rewrapped.len ? wrapped.len : rewrapped.len);
    hsm_close(h2);

    /* "restart" with the new master key only */
    assert_int_equal(hsm_open(&c, &h3, &err), 0);
    assert_int_equal(hsm_keyring_new(h3, &kr2), 0);
    assert_int_equal(hsm_keyring_load(kr2, 1, wrapped.data, wrapped.len), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_keyring_load(kr2, 1, rewrapped.data, rewrapped.len), 0);
    assert_int_equal(hsm_row_open(kr2, "t1", "obj", &sl, &out), 0);
    assert_memory_equal(out->data, plain, 32);
    kms_secret_free(out);
    hsm_keyring_free(kr2);
    hsm_close(h3);
    kms_buf_dispose(&wrapped);
    kms_buf_dispose(&rewrapped);
    kms_arena_free(a);
    softhsm_token_destroy(&tok);
}

struct worker {
    int idx;
    int fails;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char id[32];
    for (int i = 0; i < 200; i++) {
        kms_arena_t *a = kms_arena_new(0);
        kms_sealed_t sl = {0}, prev = {.gen = i};
        kms_secret_t *out = NULL;
        uint8_t msg[40];
        snprintf(id, sizeof(id), "t%d-o%d", w->idx, i);
        memset(msg, w->idx * 31 + i, sizeof(msg));
        if (!a || hsm_row_seal(kr, "t1", id, &prev, msg, sizeof(msg), a, &sl) != 0 ||
            hsm_row_open(kr, "t1", id, &sl, &out) != 0 || out->len != sizeof(msg) ||
            memcmp(out->data, msg, sizeof(msg)) != 0)
            w->fails++;
        kms_secret_free(out);
        out = NULL;
        sl.gen++;
        if (hsm_row_open(kr, "t1", id, &sl, &out) != KMS_ERR_CRYPTO || out)
            w->fails++;
        kms_arena_free(a);
        if (w->idx == 0 && i % 50 == 0) {
            /* rotate the current DSK while the others seal */
            kms_buf_t wr;
            kms_buf_init(&wr, 0);
            if (hsm_keyring_generate(kr, (uint32_t)(100 + i), &wr) != 0 ||
                hsm_keyring_set_current(kr, (uint32_t)(100 + i)) != 0)
                w->fails++;
            kms_buf_dispose(&wr);
        }
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    kms_buf_t wr;
    pthread_t t[6];
    struct worker w[6];
    kms_buf_init(&wr, 0);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wr), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    for (int i = 0; i < 6; i++) {
        w[i].idx = i;
        w[i].fails = 0;
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].fails, 0);
    }
    assert_int_equal(hsm_keyring_current(kr), 250);
    kms_buf_dispose(&wr);
}

/* A DSK exported from one keyring and imported into another node's (its
 * own master key): blobs sealed on the first open on the second, the
 * wrapped form loads back under the second master only, and an id that
 * exists with other bytes is refused. */
static void test_export_import(void **state)
{
    (void)state;
    char key2[160];
    kms_buf_t w1, w2;
    kms_sealed_t sealed;
    kms_arena_t *a = kms_arena_new(0);
    hsm_t *h2 = NULL;
    hsm_keyring_t *kr2 = NULL, *kr3 = NULL;
    kms_secret_t *k = NULL, *out = NULL;
    kms_buf_init(&w1, 4096);
    kms_buf_init(&w2, 4096);
    assert_int_equal(hsm_keyring_generate(kr, 0x5eed, &w1), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 0x5eed), 0);
    assert_int_equal(hsm_row_seal(kr, "t", "obj-1", NULL, (const uint8_t *)"material", 8, a,
                                  &sealed), 0);
    assert_int_equal(hsm_keyring_export(kr, 0x5eed, &k), 0);
    assert_int_equal(k->len, 32);
    assert_int_equal(hsm_keyring_export(kr, 0x5eee, &out), KMS_ERR_NOTFOUND);
    assert_null(out);

    snprintf(key2, sizeof key2, "%s/master2.key", dir);
    hsm_config_t c2 = file_cfg(key2);
    assert_int_equal(hsm_init_master(&c2, NULL, NULL), 0);
    assert_int_equal(hsm_open(&c2, &h2, NULL), 0);
    assert_int_equal(hsm_keyring_new(h2, &kr2), 0);
    assert_int_equal(hsm_keyring_import(kr2, 0x5eed, k, &w2), 0);
    assert_true(w2.len > 0);
    /* Wrapped under the second master: not the first node's wrapped form. */
    assert_false(w1.len == w2.len && memcmp(w1.data, w2.data, w1.len) == 0);
    assert_int_equal(hsm_row_open(kr2, "t", "obj-1", &sealed, &out), 0);
    assert_memory_equal(out->data, "material", 8);
    kms_secret_free(out);
    /* The persisted wrap loads back on the second node, not the first. */
    assert_int_equal(hsm_keyring_new(h2, &kr3), 0);
    assert_int_equal(hsm_keyring_load(kr3, 0x5eed, w2.data, w2.len), 0);
    hsm_keyring_free(kr3);
    assert_int_equal(hsm_keyring_new(h, &kr3), 0);
    assert_int_equal(hsm_keyring_load(kr3, 0x5eed, w2.data, w2.len), KMS_ERR_CRYPTO);
    hsm_keyring_free(kr3);
    /* Again with the same bytes: fine. Other bytes under the id: refused. */
    size_t before = w2.len;
    assert_int_equal(hsm_keyring_import(kr2, 0x5eed, k, &w2), 0);
    k->data[0] ^= 1;
    assert_int_equal(hsm_keyring_import(kr2, 0x5eed, k, &w2), KMS_ERR_EXISTS);
    assert_true(w2.len > before); /* only the first re-import appended */
    kms_secret_t *short_key = kms_secret_new(16);
    assert_int_equal(hsm_keyring_import(kr2, 0x77, short_key, &w2), KMS_ERR_INVAL);
    kms_secret_free(short_key);
    kms_secret_free(k);
    hsm_keyring_free(kr2);
    hsm_close(h2);
    kms_buf_dispose(&w1);
    kms_buf_dispose(&w2);
    kms_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_pre_generation_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_to_pkcs11, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
