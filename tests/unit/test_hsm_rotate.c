/* tests/unit/test_hsm_rotate.c: the hsm side of kmsd's master-key
 * rotation (keys/rotate.c) on a real SoftHSM2 token and a real key
 * file: a new master key under "<label>-2", every DSK re-wrapped under it,
 * hsm_keyring_set_master() switching the keyring, the old key still
 * present and still opening the old wrapped forms (crash before the meta
 * commit), the new wrapped forms refused by the old key, and DSKs generated
 * after the switch wrapped by the new key only. Sealed blobs keep opening
 * throughout: master rotation never touches objects. */
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

#define PIN "1234"

static softhsm_token_t tok;

static hsm_config_t p11_cfg(const char *label)
{
    hsm_config_t c;
    memset(&c, 0, sizeof(c));
    c.provider = HSM_PROVIDER_PKCS11;
    c.module = SOFTHSM_MODULE;
    c.token_label = "rot";
    c.slot = -1;
    c.pin_file = tok.pin_file;
    c.key_label = label;
    return c;
}

static hsm_config_t file_cfg(const char *path)
{
    hsm_config_t c;
    memset(&c, 0, sizeof(c));
    c.provider = HSM_PROVIDER_FILE;
    c.key_file = path;
    c.slot = -1;
    return c;
}

/* The whole rotation sequence against providers made from cfg1 / cfg2. */
static void rotate_flow(hsm_config_t *cfg1, hsm_config_t *cfg2, const char *new_name)
{
    kms_error_t err = {0};
    hsm_t *h1 = NULL, *h2 = NULL;
    hsm_keyring_t *kr = NULL, *kr2 = NULL, *kr_old = NULL;
    kms_buf_t w1, w1_new, w2;
    kms_arena_t *a = kms_arena_new(0);
    kms_sealed_t sl;
    kms_secret_t *plain = NULL;
    const uint8_t msg[32] = "thirty-two bytes of key material";
    kms_buf_init(&w1, 4096);
    kms_buf_init(&w1_new, 4096);
    kms_buf_init(&w2, 4096);

    assert_int_equal(hsm_init_master(cfg1, NULL, &err), 0);
    assert_int_equal(hsm_open(cfg1, &h1, &err), 0);
    assert_int_equal(hsm_keyring_new(h1, &kr), 0);
    assert_int_equal(hsm_keyring_generate(kr, 1, &w1), 0);
    assert_int_equal(hsm_keyring_set_current(kr, 1), 0);
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-1", NULL, msg, sizeof msg, a, &sl), 0);
    assert_int_equal(sl.dsk_id, 1);

    /* New master key: refuses to overwrite, then is created and opened. */
    assert_int_equal(hsm_init_master(cfg1, NULL, &err), KMS_ERR_EXISTS);
    assert_int_equal(hsm_init_master(cfg1, new_name, &err), 0);
    assert_int_equal(hsm_init_master(cfg1, new_name, &err), KMS_ERR_EXISTS);
    assert_int_equal(hsm_open(cfg2, &h2, &err), 0);

    /* Re-wrap DSK 1 under it. The two wrapped forms differ, each opens
     * only under its own master key. */
    assert_int_equal(hsm_keyring_rewrap(kr, 1, h2, &w1_new), 0);
    assert_false(w1.len == w1_new.len && memcmp(w1.data, w1_new.data, w1.len) == 0);
    kms_secret_t *x = NULL;
    assert_int_equal(hsm_unwrap(h1, w1_new.data, w1_new.len, &x), KMS_ERR_CRYPTO);
    assert_null(x);
    assert_int_equal(hsm_unwrap(h2, w1.data, w1.len, &x), KMS_ERR_CRYPTO);

    /* A restart after the commit: keyring on the new key, old blob opens. */
    assert_int_equal(hsm_keyring_new(h2, &kr2), 0);
    assert_int_equal(hsm_keyring_load(kr2, 1, w1_new.data, w1_new.len), 0);
    assert_int_equal(hsm_row_open(kr2, "t1", "obj-1", &sl, &plain), 0);
    assert_memory_equal(plain->data, msg, sizeof msg);
    kms_secret_free(plain);
    plain = NULL;
    /* A restart before the commit (crash): the old key still opens the old form. */
    assert_int_equal(hsm_keyring_new(h1, &kr_old), 0);
    assert_int_equal(hsm_keyring_load(kr_old, 1, w1.data, w1.len), 0);

    /* The live keyring switches; new DSKs are wrapped by the new key only. */
    assert_int_equal(hsm_keyring_set_master(kr, h2), 0);
    assert_int_equal(hsm_keyring_set_master(NULL, h2), KMS_ERR_INVAL);
    assert_int_equal(hsm_keyring_set_master(kr, NULL), KMS_ERR_INVAL);
    assert_int_equal(hsm_keyring_generate(kr, 2, &w2), 0);
    assert_int_equal(hsm_keyring_load(kr2, 2, w2.data, w2.len), 0);
    assert_int_equal(hsm_keyring_load(kr_old, 2, w2.data, w2.len), KMS_ERR_CRYPTO);
    /* Sealing goes on with the in-memory DSKs. */
    assert_int_equal(hsm_keyring_set_current(kr, 2), 0);
    assert_int_equal(hsm_row_seal(kr, "t1", "obj-2", NULL, msg, sizeof msg, a, &sl), 0);
    assert_int_equal(sl.dsk_id, 2);
    assert_int_equal(hsm_row_open(kr2, "t1", "obj-2", &sl, &plain), 0);
    assert_memory_equal(plain->data, msg, sizeof msg);
    kms_secret_free(plain);

    hsm_keyring_free(kr);
    hsm_keyring_free(kr2);
    hsm_keyring_free(kr_old);
    hsm_close(h2);
    hsm_close(h1);
    kms_buf_dispose(&w1);
    kms_buf_dispose(&w1_new);
    kms_buf_dispose(&w2);
    kms_arena_free(a);
}

static void test_rotate_pkcs11(void **state)
{
    (void)state;
    hsm_config_t c1 = p11_cfg("kmsd-master"), c2 = p11_cfg("kmsd-master-2");
    rotate_flow(&c1, &c2, "kmsd-master-2");
}

static void test_rotate_file(void **state)
{
    (void)state;
    char p1[400], p2[400];
    snprintf(p1, sizeof p1, "%s/master.key", tok.dir);
    snprintf(p2, sizeof p2, "%s/master.key.2", tok.dir);
    hsm_config_t c1 = file_cfg(p1), c2 = file_cfg(p2);
    rotate_flow(&c1, &c2, p2);
    assert_int_equal(access(p1, F_OK), 0); /* the old key is kept */
}

static int setup(void **state)
{
    (void)state;
    return softhsm_token_create(&tok, "rot", PIN, "87654321");
}

static int teardown(void **state)
{
    (void)state;
    softhsm_token_destroy(&tok);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotate_pkcs11),
        cmocka_unit_test(test_rotate_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
