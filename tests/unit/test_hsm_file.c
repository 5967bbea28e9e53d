/* tests/unit/test_hsm_file.c: the file master-key provider against real
 * files: init, round trip, and every refusal (mode, owner is the euid here,
 * short file, symlink, directory, overwrite). */
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

#include <openssl/evp.h>

#include "hsm/hsm.h"

static char dir[64];
static char keypath[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/kmsd-hsmfile.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(keypath, sizeof(keypath), "%s/master.key", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
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

static void test_init_creates_0600_and_refuses_overwrite(void **state)
{
    (void)state;
    kms_error_t err = {0};
    struct stat st;
    hsm_config_t c = file_cfg(keypath);
    mode_t old = umask(0); /* a permissive umask must not widen the mode */
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    umask(old);
    assert_int_equal(stat(keypath, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(st.st_uid, geteuid());

    uint8_t before[32], after[32];
    FILE *f = fopen(keypath, "rb");
    assert_non_null(f);
    assert_int_equal(fread(before, 1, 32, f), 32);
    fclose(f);
    assert_int_equal(hsm_init_master(&c, NULL, &err), KMS_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "refusing to overwrite"));
    f = fopen(keypath, "rb");
    assert_non_null(f);
    assert_int_equal(fread(after, 1, 32, f), 32);
    fclose(f);
    assert_memory_equal(before, after, 32);
    /* two fresh keys differ (RAND_priv_bytes, not a constant) */
    char p2[160];
    snprintf(p2, sizeof(p2), "%s/second.key", dir);
    assert_int_equal(hsm_init_master(&c, p2, &err), 0);
    f = fopen(p2, "rb");
    assert_non_null(f);
    assert_int_equal(fread(after, 1, 32, f), 32);
    fclose(f);
    assert_memory_not_equal(before, after, 32);
}

static void test_round_trip(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    kms_buf_t w;
    kms_secret_t *dsk = kms_secret_new(32), *back = NULL;
    hsm_config_t c = file_cfg(keypath);

    for (int i = 0; i < 32; i++)
        dsk->data[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    assert_int_equal(hsm_health(h), 0);
    assert_non_null(strstr(hsm_describe(h), keypath));
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, dsk, &w), 0);
    assert_int_equal(w.len, 2 + 40); /* header + RFC 5649 output for 32 bytes */
    assert_memory_not_equal(w.data + 2, dsk->data, 32);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0);
    assert_int_equal(back->len, 32);
    assert_memory_equal(back->data, dsk->data, 32);
    kms_secret_free(back);
    back = NULL;

    /* every single-bit flip is refused, never crashes */
    for (size_t i = 1; i < w.len; i++) {
        w.data[i] ^= 0x01;
        int rc = hsm_unwrap(h, w.data, w.len, &back);
        assert_int_equal(rc, KMS_ERR_CRYPTO);
        assert_null(back);
        w.data[i] ^= 0x01;
    }
    /* truncated / empty / unknown format */
    assert_int_equal(hsm_unwrap(h, w.data, w.len - 1, &back), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_unwrap(h, w.data, 1, &back), KMS_ERR_CRYPTO);
    w.data[0] = 9;
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_CRYPTO);
    w.data[0] = 1;

    /* a different master key cannot unwrap it */
    char p2[160];
    hsm_t *h2 = NULL;
    snprintf(p2, sizeof(p2), "%s/other.key", dir);
    hsm_config_t c2 = file_cfg(p2);
    assert_int_equal(hsm_init_master(&c2, NULL, &err), 0);
    assert_int_equal(hsm_open(&c2, &h2, &err), 0);
    assert_int_equal(hsm_unwrap(h2, w.data, w.len, &back), KMS_ERR_CRYPTO);
    /* restart: a second provider on the same file unwraps it */
    hsm_t *h3 = NULL;
    assert_int_equal(hsm_open(&c, &h3, &err), 0);
    assert_int_equal(hsm_unwrap(h3, w.data, w.len, &back), 0);
    assert_memory_equal(back->data, dsk->data, 32);
    kms_secret_free(back);
    hsm_close(h3);
    hsm_close(h2);
    hsm_close(h);
    hsm_close(NULL);
    kms_buf_dispose(&w);
    kms_secret_free(dsk);
}

static void write_file(const char *path, size_t n, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)i, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    kms_error_t err = {0};
    char p[200];
    hsm_t *h = NULL;
    hsm_config_t c = file_cfg(keypath);

    /* missing */
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_null(h);

    /* mode 0644 */
    write_file(keypath, 32, 0644);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
    assert_non_null(strstr(err.msg, "mode 0644, must be 0600"));
    assert_null(strchr(err.msg, '\n'));
    /* group-readable 0640, other-executable 0601 */
    chmod(keypath, 0640);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
    chmod(keypath, 0601);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
    /* 0400 is stricter than 0600: accepted */
    chmod(keypath, 0400);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    hsm_close(h);
    h = NULL;
    unlink(keypath);

    /* short and long files */
    write_file(keypath, 31, 0600);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "31 bytes, must be exactly 32"));
    unlink(keypath);
    write_file(keypath, 33, 0600);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_CONFIG);
    unlink(keypath);

    /* symlink to a good key file */
    snprintf(p, sizeof(p), "%s/real.key", dir);
    write_file(p, 32, 0600);
    assert_int_equal(symlink(p, keypath), 0);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
    assert_non_null(strstr(err.msg, "symlink"));
    /* init through a symlink (even a dangling one) is refused too */
    unlink(p);
    assert_int_not_equal(hsm_init_master(&c, NULL, &err), 0);
    unlink(keypath);

    /* a directory */
    assert_int_equal(mkdir(keypath, 0700), 0);
    assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
    assert_non_null(strstr(err.msg, "not a regular file"));
    rmdir(keypath);

    /* foreign owner: only testable as root (chown to nobody) */
    if (geteuid() == 0) {
        write_file(keypath, 32, 0600);
        assert_int_equal(chown(keypath, 65534, 65534), 0);
        assert_int_equal(hsm_open(&c, &h, &err), KMS_ERR_PERM);
        assert_non_null(strstr(err.msg, "owned by uid 65534"));
        unlink(keypath);
    }
    assert_null(h);

    /* no path configured */
    hsm_config_t none = file_cfg(NULL);
    assert_int_equal(hsm_open(&none, &h, &err), KMS_ERR_CONFIG);
}

static void test_bad_args(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    kms_buf_t w;
    kms_secret_t *odd = kms_secret_new(7), *back = NULL;
    hsm_config_t c = file_cfg(keypath);
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, odd, &w), KMS_ERR_INVAL);
    assert_int_equal(hsm_wrap(NULL, odd, &w), KMS_ERR_INVAL);
    assert_int_equal(hsm_unwrap(h, NULL, 0, &back), KMS_ERR_INVAL);
    assert_int_equal(hsm_health(NULL), KMS_ERR_INVAL);
    /* a capped output buffer reports the cap, not corruption */
    kms_secret_t *dsk = kms_secret_new(32);
    kms_buf_t small;
    kms_buf_init(&small, 10);
    assert_int_equal(hsm_wrap(h, dsk, &small), KMS_ERR_LIMIT);
    kms_buf_dispose(&small);
    kms_secret_free(dsk);
    kms_secret_free(odd);
    kms_buf_dispose(&w);
    hsm_close(h);
}

/* The GCM form of a wrapped DSK, built here with OpenSSL from the format
 * documented in hsm_int.h / docs/key-protection.md, unwraps with the file
 * provider (a token without key wrap produces this form). */
static void test_gcm_form_documented(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = file_cfg(keypath);
    uint8_t mk[32], dsk[32], blob[2 + 12 + 32 + 16], aad[18];
    int n = 0;
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    FILE *f = fopen(keypath, "rb");
    assert_non_null(f);
    assert_int_equal(fread(mk, 1, 32, f), 32);
    fclose(f);
    for (int i = 0; i < 32; i++)
        dsk[i] = (uint8_t)(0xA0 + i);
    blob[0] = 1;
    blob[1] = 2;
    memset(blob + 2, 0x11, 12);
    memcpy(aad, "kmsd dsk wrap v1", 16);
    aad[16] = 1;
    aad[17] = 2;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, mk, blob + 2), 1);
    assert_int_equal(EVP_EncryptUpdate(x, NULL, &n, aad, sizeof(aad)), 1);
    assert_int_equal(EVP_EncryptUpdate(x, blob + 14, &n, dsk, 32), 1);
    assert_int_equal(EVP_EncryptFinal_ex(x, blob + 46, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, blob + 46), 1);
    EVP_CIPHER_CTX_free(x);

    kms_secret_t *back = NULL;
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    assert_int_equal(hsm_unwrap(h, blob, sizeof(blob), &back), 0);
    assert_int_equal(back->len, 32);
    assert_memory_equal(back->data, dsk, 32);
    kms_secret_free(back);
    back = NULL;
    blob[1] = 1; /* relabelled as KWP it fails */
    assert_int_equal(hsm_unwrap(h, blob, sizeof(blob) - 2, &back), KMS_ERR_CRYPTO);
    blob[1] = 2;
    blob[20] ^= 1;
    assert_int_equal(hsm_unwrap(h, blob, sizeof(blob), &back), KMS_ERR_CRYPTO);
    assert_null(back);
    OPENSSL_cleanse(mk, sizeof(mk));
    hsm_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_creates_0600_and_refuses_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gcm_form_documented, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
