/* tests/unit/test_hsm_keyring.c: DSK keyring and envelope sealing with a
 * real file master key and a real SoftHSM2 token: round trip, every way a
 * blob can be misplaced or tampered with, unknown DSK, reload after a
 * restart, master-key rotation (rewrap), concurrent seal/open. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    char err[256];
    snprintf(dir, sizeof(dir), "/tmp/kmsd-keyring.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/master.key", dir);
    hsm_config_t c = file_cfg(keypath);
    if (hsm_init_master(&c, NULL, err, sizeof(err)) || hsm_open(&c, &h, err, sizeof(err)) ||
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

static void test_seal_open(void **state)
{
    (void)state;
    kms_buf_t wrapped, blob, blob2;
    kms_secret_t *out = NULL;
    uint32_t id = 0;

    kms_buf_init(&wrapped, 0);
    kms_buf_init(&blob, 0);
    kms_buf_init(&blob2, 0);
    assert_int_equal(hsm_keyring_current(kr), 0);
    assert_int_equal(hsm_seal(kr, "t1", "obj-1", 1, plain, 32, &blob, &id), KMS_ERR_STATE);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), 0);
    assert_true(wrapped.len > 32);
    assert_int_equal(hsm_keyring_set_current(kr, 2), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    assert_int_equal(hsm_keyring_current(kr), 1);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), KMS_ERR_EXISTS);

    assert_int_equal(hsm_seal(kr, "t1", "obj-1", 1, plain, 32, &blob, &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(blob.len, 12 + 32 + 16);
    assert_null(memmem(blob.data, blob.len, plain, 8)); /* not in the clear */
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", 1, blob.data, blob.len, &out), 0);
    assert_int_equal(out->len, 32);
    assert_memory_equal(out->data, plain, 32);
    kms_secret_free(out);
    out = NULL;

    /* same input twice: different nonce, different blob */
    assert_int_equal(hsm_seal(kr, "t1", "obj-1", 1, plain, 32, &blob2, &id), 0);
    assert_memory_not_equal(blob.data, blob2.data, blob.len);

    /* wrong object id, wrong version, wrong DSK id (not loaded) */
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-2", 1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
    /* The same row re-assigned to another tenant does not open. */
    assert_int_equal(hsm_open_blob(kr, 1, "t2", "obj-1", 1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", 2, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-", 1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", -1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_open_blob(kr, 7, "t1", "obj-1", 1, blob.data, blob.len, &out), KMS_ERR_NOTFOUND);
    assert_null(out);

    /* a blob swapped onto another row: obj-2's blob read as obj-1 */
    kms_buf_t other;
    kms_buf_init(&other, 0);
    assert_int_equal(hsm_seal(kr, "t1", "obj-2", 1, plain, 32, &other, &id), 0);
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", 1, other.data, other.len, &out), KMS_ERR_CRYPTO);

    /* the same blob under another loaded DSK id fails: dsk id is in the AAD */
    kms_buf_t w2;
    kms_buf_init(&w2, 0);
    assert_int_equal(hsm_keyring_generate(kr, 2, &w2), 0);
    assert_int_equal(hsm_open_blob(kr, 2, "t1", "obj-1", 1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);

    /* every bit flip of the blob */
    for (size_t i = 0; i < blob.len * 8; i++) {
        blob.data[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", 1, blob.data, blob.len, &out), KMS_ERR_CRYPTO);
        assert_null(out);
        blob.data[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* truncations */
    for (size_t n = 0; n < blob.len; n++)
        assert_int_equal(hsm_open_blob(kr, 1, "t1", "obj-1", 1, blob.data, n, &out), KMS_ERR_CRYPTO);

    /* empty plaintext seals and opens too */
    kms_buf_t e;
    kms_buf_init(&e, 0);
    assert_int_equal(hsm_seal(kr, "t1", "empty", 3, plain, 0, &e, &id), 0);
    assert_int_equal(e.len, 28);
    assert_int_equal(hsm_open_blob(kr, 1, "t1", "empty", 3, e.data, e.len, &out), 0);
    assert_int_equal(out->len, 0);
    kms_secret_free(out);

    kms_buf_dispose(&e);
    kms_buf_dispose(&w2);
    kms_buf_dispose(&other);
    kms_buf_dispose(&blob2);
    kms_buf_dispose(&blob);
    kms_buf_dispose(&wrapped);
}

/* Restart: a new keyring loads the wrapped DSK and opens old blobs. */
static void test_reload(void **state)
{
    (void)state;
    kms_buf_t wrapped, blob;
    kms_secret_t *out = NULL;
    uint32_t id;
    hsm_keyring_t *kr2 = NULL;

    kms_buf_init(&wrapped, 0);
    kms_buf_init(&blob, 0);
    assert_int_equal(hsm_keyring_generate(kr, 5, &wrapped), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 5), 0);
    assert_int_equal(hsm_seal(kr, "t1", "k", 42, plain, 32, &blob, &id), 0);

    assert_int_equal(hsm_keyring_new(h, &kr2), 0);
    assert_int_equal(hsm_open_blob(kr2, 5, "t1", "k", 42, blob.data, blob.len, &out), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_load(kr2, 5, wrapped.data, wrapped.len), 0);
    assert_int_equal(hsm_keyring_load(kr2, 5, wrapped.data, wrapped.len), 0); /* idempotent */
    assert_int_equal(hsm_open_blob(kr2, 5, "t1", "k", 42, blob.data, blob.len, &out), 0);
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
    kms_buf_dispose(&blob);
}

/* Master-key rotation: file master key -> PKCS#11 token key. The DSK is
 * rewrapped under the new master; blobs sealed before open after loading
 * the rewrapped DSK with only the new provider. */
static void test_rewrap_to_pkcs11(void **state)
{
    (void)state;
    softhsm_token_t tok;
    char err[256];
    kms_buf_t wrapped, rewrapped, blob;
    kms_secret_t *out = NULL;
    uint32_t id;
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
    assert_int_equal(hsm_init_master(&c, NULL, err, sizeof(err)), 0);
    assert_int_equal(hsm_open(&c, &h2, err, sizeof(err)), 0);

    kms_buf_init(&wrapped, 0);
    kms_buf_init(&rewrapped, 0);
    kms_buf_init(&blob, 0);
    assert_int_equal(hsm_keyring_generate(kr, 1, &wrapped), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    assert_int_equal(hsm_seal(kr, "t1", "obj", 1, plain, 32, &blob, &id), 0);
    assert_int_equal(hsm_keyring_rewrap(kr, 9, h2, &rewrapped), KMS_ERR_NOTFOUND);
    assert_int_equal(hsm_keyring_rewrap(kr, 1, h2, &rewrapped), 0);
    assert_memory_not_equal(wrapped.data, rewrapped.data,
                            wrapped.len < rewrapped.len ? wrapped.len : rewrapped.len);
    hsm_close(h2);

    /* "restart" with the new master key only */
    assert_int_equal(hsm_open(&c, &h3, err, sizeof(err)), 0);
    assert_int_equal(hsm_keyring_new(h3, &kr2), 0);
    assert_int_equal(hsm_keyring_load(kr2, 1, wrapped.data, wrapped.len), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_keyring_load(kr2, 1, rewrapped.data, rewrapped.len), 0);
    assert_int_equal(hsm_open_blob(kr2, 1, "t1", "obj", 1, blob.data, blob.len, &out), 0);
    assert_memory_equal(out->data, plain, 32);
    kms_secret_free(out);
    hsm_keyring_free(kr2);
    hsm_close(h3);
    kms_buf_dispose(&wrapped);
    kms_buf_dispose(&rewrapped);
    kms_buf_dispose(&blob);
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
        kms_buf_t b;
        kms_secret_t *out = NULL;
        uint32_t dsk = 0;
        uint8_t msg[40];
        snprintf(id, sizeof(id), "t%d-o%d", w->idx, i);
        memset(msg, w->idx * 31 + i, sizeof(msg));
        kms_buf_init(&b, 0);
        if (hsm_seal(kr, "t1", id, i, msg, sizeof(msg), &b, &dsk) != 0 ||
            hsm_open_blob(kr, dsk, "t1", id, i, b.data, b.len, &out) != 0 || out->len != sizeof(msg) ||
            memcmp(out->data, msg, sizeof(msg)) != 0)
            w->fails++;
        kms_secret_free(out);
        out = NULL;
        if (hsm_open_blob(kr, dsk, "t1", id, i + 1, b.data, b.len, &out) != KMS_ERR_CRYPTO || out)
            w->fails++;
        kms_buf_dispose(&b);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_to_pkcs11, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
