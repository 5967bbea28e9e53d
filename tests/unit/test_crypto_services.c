/*
 * tests/unit/test_crypto_services.c: known-answer tests of the
 * cryptographic services in crypto/ (crypto.h), mechanism by mechanism.
 *
 * Vectors come from the documents that define the mechanisms:
 *   AES ECB/CBC/CFB/OFB/CTR   NIST SP 800-38A appendix F
 *   AES-GCM                   NIST GCM specification test cases 3 and 4
 *                             (the SP 800-38D validation examples)
 *   AES key wrap              RFC 3394 section 4.1, RFC 5649 section 6
 *   HMAC-SHA1                 RFC 2202; HMAC-SHA224..512 RFC 4231
 *   AES-CMAC                  NIST SP 800-38B appendix D.1 (RFC 4493)
 *   SHA-1/256/512             FIPS 180 examples ("abc")
 *   PBKDF2-HMAC-SHA1          RFC 6070
 *   ECDSA P-256 verification  RFC 6979 appendix A.2.5 (SHA-256, "sample")
 *   AES-XTS                   IEEE 1619-2007 appendix B, vectors 2 and 3
 * and, where no short published vector exists here (Triple DES, RSA
 * PKCS#1 v1.5 / PSS / OAEP, SP 800-108 KBKDF), from the `openssl` command
 * line run by the test: an independent path through OpenSSL's apps, in
 * both directions where the mechanism is randomised. Misuse is checked for
 * its Result Reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "crypto/crypto.h"

#define TMP "/tmp/kmsd-crypto-kat"

static uint8_t *hex(const char *s, size_t *n)
{
    uint8_t *p = NULL;
    size_t len = 0;
    assert_int_equal(kms_hex_decode(s, strlen(s), &p, &len), 0);
    if (n)
        *n = len;
    return p;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
    char *h = malloc(2 * n + 1);
    kms_hex_encode(p, n, h);
    if (strcasecmp(h, want) != 0)
        fail_msg("got %s\nwant %s", h, want);
    free(h);
}

static crypto_key_t sym_key(uint32_t alg, const char *khex)
{
    crypto_key_t k = {.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY, .alg = alg};
    k.raw = hex(khex, &k.raw_len);
    return k;
}

/* One single-part cipher run; returns the output in *out (caller disposes). */
static int cipher(enum crypto_svc svc, const crypto_key_t *k, const crypto_params_t *p,
                  const crypto_start_t *st, const uint8_t *in, size_t in_len, kms_buf_t *out,
                  crypto_final_t *fin, kms_error_t *err)
{
    crypto_op_t *op = NULL;
    uint8_t iv[64];
    size_t iv_len = 0;
    kms_buf_init(out, 1 << 20);
    int rc = crypto_cipher_start(svc, k, p, st, &op, iv, &iv_len, err);
    if (!rc)
        rc = crypto_op_update(op, in, in_len, out, err);
    if (!rc)
        rc = crypto_op_final(op, out, fin, err);
    crypto_op_free(op);
    return rc;
}

/* Encrypt and decrypt one vector, whole and in uneven parts. */
static void sym_kat(uint32_t alg, uint32_t mode, uint32_t padding, const char *khex,
                    const char *ivhex, const char *pthex, const char *cthex)
{
    crypto_key_t k = sym_key(alg, khex);
    crypto_params_t p = {.mode = mode, .padding = padding};
    size_t iv_len = 0, pt_len = 0;
    uint8_t *iv = ivhex ? hex(ivhex, &iv_len) : NULL;
    uint8_t *pt = hex(pthex, &pt_len);
    size_t ct_len = 0;
    uint8_t *ct = hex(cthex, &ct_len);
    crypto_start_t st = {.iv = iv, .iv_len = iv_len};
    kms_buf_t out;
    crypto_final_t fin = {0};
    kms_error_t err;
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st, pt, pt_len, &out, &fin, &err), 0);
    assert_hex(out.data, out.len, cthex);
    kms_buf_dispose(&out);
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err), 0);
    assert_hex(out.data, out.len, pthex);
    kms_buf_dispose(&out);
    /* In parts of 7, 1, 16 ... bytes: the same ciphertext. */
    crypto_op_t *op = NULL;
    uint8_t giv[64];
    size_t giv_len;
    assert_int_equal(crypto_cipher_start(CRYPTO_SVC_ENCRYPT, &k, &p, &st, &op, giv, &giv_len, &err), 0);
    if (crypto_op_streamable(op)) {
        kms_buf_init(&out, 1 << 20);
        size_t off = 0, steps[] = {7, 1, 16, 5};
        for (int i = 0; off < pt_len; i++) {
            size_t n = steps[i % 4] < pt_len - off ? steps[i % 4] : pt_len - off;
            assert_int_equal(crypto_op_update(op, pt + off, n, &out, &err), 0);
            off += n;
        }
        assert_int_equal(crypto_op_final(op, &out, &fin, &err), 0);
        assert_hex(out.data, out.len, cthex);
        kms_buf_dispose(&out);
    }
    crypto_op_free(op);
    free((void *)k.raw);
    free(iv);
    free(pt);
    free(ct);
}

/* --------------------------------------------------------- SP 800-38A */
#define PT38A "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" \
              "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
#define K128 "2b7e151628aed2a6abf7158809cf4f3c"
#define K256 "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
#define IV38A "000102030405060708090a0b0c0d0e0f"

static void test_aes_sp800_38a(void **state)
{
    (void)state;
    uint32_t aes = KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, none = KMIP_PADDING_METHOD_NONE;
    /* F.1.1 ECB-AES128 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_ECB, none, K128, NULL, PT38A,
            "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"
            "43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4");
    /* F.2.1 CBC-AES128, F.2.5 CBC-AES256 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_CBC, none, K128, IV38A, PT38A,
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
            "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_CBC, none, K256, IV38A, PT38A,
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
            "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b");
    /* F.3.13 CFB128-AES128 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_CFB, 0, K128, IV38A, PT38A,
            "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b"
            "26751f67a3cbb140b1808cf187a4f4dfc04b05357c5d1c0eeac4c66f9ff7f2e6");
    /* F.4.1 OFB-AES128 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_OFB, 0, K128, IV38A, PT38A,
            "3b3fd92eb72dad20333449f8e83cfb4a7789508d16918f03f53c52dac54ed825"
            "9740051e9c5fecf64344f7a82260edcc304c6528f659c77866a510d9c1d6ae5e");
    /* F.5.1 CTR-AES128 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_CTR, 0, K128, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", PT38A,
            "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
            "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
}

/* ---------------------------------------------------------------- GCM */
#define GCM_K "feffe9928665731c6d6a8f9467308308"
#define GCM_IV "cafebabefacedbaddecaf888"
#define GCM_P "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
              "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define GCM_C "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" \
              "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"

static void test_aes_gcm(void **state)
{
    (void)state;
    crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, GCM_K);
    crypto_params_t p = {.mode = KMIP_BLOCK_CIPHER_MODE_GCM};
    size_t iv_len, pt_len, aad_len, ct_len, tag_len;
    uint8_t *iv = hex(GCM_IV, &iv_len);
    uint8_t *pt = hex(GCM_P, &pt_len);
    uint8_t *aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", &aad_len);
    uint8_t *ct = hex(GCM_C, &ct_len);
    uint8_t *tag = hex("5bc94fbc3221a5db94fae95ae7121a47", &tag_len);
    crypto_start_t st = {.iv = iv, .iv_len = iv_len, .aad = aad, .aad_len = aad_len};
    kms_buf_t out;
    crypto_final_t fin = {0};
    kms_error_t err;
    /* Test case 4: with additional data. */
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st, pt, pt_len, &out, &fin, &err), 0);
    assert_hex(out.data, out.len, GCM_C);
    assert_hex(fin.tag_out, fin.tag_out_len, "5bc94fbc3221a5db94fae95ae7121a47");
    kms_buf_dispose(&out);
    fin.tag = tag;
    fin.tag_len = tag_len;
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err), 0);
    assert_hex(out.data, out.len, GCM_P);
    kms_buf_dispose(&out);
    /* A changed tag, a changed byte of additional data: Cryptographic Failure. */
    tag[0] ^= 1;
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err),
                     KMS_ERR_CRYPTO);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    kms_buf_dispose(&out);
    tag[0] ^= 1;
    aad[0] ^= 1;
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err),
                     KMS_ERR_CRYPTO);
    kms_buf_dispose(&out);
    /* Decrypt without the tag: Invalid Field. */
    fin.tag = NULL;
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err),
                     KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    kms_buf_dispose(&out);
    /* Test case 3 (no additional data, 64 bytes): tag 4d5c2af3... and a
     * 12-byte Tag Length gives the first 12 bytes of it. */
    uint8_t *pt3 = hex(GCM_P "b16aedf5aa0de657ba637b391aafd255", &pt_len);
    pt_len = 64;
    memcpy(pt3 + 60, (uint8_t[]){0x1a, 0xaf, 0xd2, 0x55}, 4);
    crypto_start_t st3 = {.iv = iv, .iv_len = iv_len};
    memset(&fin, 0, sizeof(fin));
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st3, pt3, pt_len, &out, &fin, &err), 0);
    assert_hex(fin.tag_out, fin.tag_out_len, "4d5c2af327cd64a62cf35abd2ba6fab4");
    kms_buf_dispose(&out);
    p.tag_len = 12;
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st3, pt3, pt_len, &out, &fin, &err), 0);
    assert_hex(fin.tag_out, fin.tag_out_len, "4d5c2af327cd64a62cf35abd");
    kms_buf_dispose(&out);
    p.tag_len = 3;
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st3, pt3, pt_len, &out, &fin, &err),
                     KMS_ERR_INVAL);
    kms_buf_dispose(&out);
    free(pt3);
    free((void *)k.raw);
    free(iv);
    free(pt);
    free(aad);
    free(ct);
    free(tag);
}

/* Encrypt without an IV: the server makes one, and it decrypts. */
static void test_generated_iv(void **state)
{
    (void)state;
    crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K256);
    uint32_t modes[] = {KMIP_BLOCK_CIPHER_MODE_GCM, KMIP_BLOCK_CIPHER_MODE_CBC,
                        KMIP_BLOCK_CIPHER_MODE_CTR};
    size_t want[] = {12, 16, 16};
    const uint8_t msg[] = "a message of thirty-three bytes!";
    for (size_t i = 0; i < 3; i++) {
        crypto_params_t p = {.mode = modes[i]};
        crypto_op_t *op = NULL;
        uint8_t iv[64], iv2[64];
        size_t iv_len = 0, iv2_len = 0;
        kms_error_t err;
        kms_buf_t ct, pt;
        crypto_final_t fin = {0};
        kms_buf_init(&ct, 4096);
        kms_buf_init(&pt, 4096);
        assert_int_equal(crypto_cipher_start(CRYPTO_SVC_ENCRYPT, &k, &p, NULL, &op, iv, &iv_len, &err), 0);
        assert_int_equal(iv_len, want[i]);
        assert_int_equal(crypto_op_update(op, msg, sizeof(msg), &ct, &err), 0);
        assert_int_equal(crypto_op_final(op, &ct, &fin, &err), 0);
        crypto_op_free(op);
        crypto_start_t st = {.iv = iv, .iv_len = iv_len};
        assert_int_equal(crypto_cipher_start(CRYPTO_SVC_DECRYPT, &k, &p, &st, &op, iv2, &iv2_len, &err), 0);
        assert_int_equal(iv2_len, 0);
        assert_int_equal(crypto_op_update(op, ct.data, ct.len, &pt, &err), 0);
        fin.tag = fin.tag_out;
        fin.tag_len = fin.tag_out_len;
        assert_int_equal(crypto_op_final(op, &pt, &fin, &err), 0);
        assert_int_equal(pt.len, sizeof(msg));
        assert_memory_equal(pt.data, msg, sizeof(msg));
        crypto_op_free(op);
        /* Decrypt needs the IV. */
        assert_int_equal(crypto_cipher_start(CRYPTO_SVC_DECRYPT, &k, &p, NULL, &op, iv2, &iv2_len, &err),
                         KMS_ERR_INVAL);
        assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
        /* Random IV true and an IV given: Invalid Field. */
        p.has_random_iv = p.random_iv = true;
        assert_int_equal(crypto_cipher_start(CRYPTO_SVC_ENCRYPT, &k, &p, &st, &op, iv2, &iv2_len, &err),
                         KMS_ERR_INVAL);
        kms_buf_dispose(&ct);
        kms_buf_dispose(&pt);
    }
    free((void *)k.raw);
}

/* ------------------------------------------------------------ key wrap */
static void test_aes_key_wrap(void **state)
{
    (void)state;
    uint32_t aes = KMIP_CRYPTOGRAPHIC_ALGORITHM_AES;
    /* RFC 3394 4.1 */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP, 0, "000102030405060708090A0B0C0D0E0F", NULL,
            "00112233445566778899AABBCCDDEEFF",
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
    /* RFC 5649 section 6, both examples */
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING, 0,
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", NULL,
            "c37b7e6492584340bed12207808941155068f738",
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
    sym_kat(aes, KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING, 0,
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", NULL, "466f7250617369",
            "afbeb0f07dfbf5419200f2ccb50bb24f");
    /* A damaged wrap: Cryptographic Failure; KW of 12 bytes: Invalid Field. */
    crypto_key_t k = sym_key(aes, "000102030405060708090A0B0C0D0E0F");
    crypto_params_t p = {.mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP};
    size_t n;
    uint8_t *ct = hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE6", &n);
    kms_buf_t out;
    crypto_final_t fin = {0};
    kms_error_t err;
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, NULL, ct, n, &out, &fin, &err), KMS_ERR_CRYPTO);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    kms_buf_dispose(&out);
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, NULL, ct, 12, &out, &fin, &err), KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    kms_buf_dispose(&out);
    free(ct);
    free((void *)k.raw);
}

/* ------------------------------------------------ the openssl command */
static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *p = malloc(1 << 16);
    *n = fread(p, 1, 1 << 16, f);
    fclose(f);
    return p;
}

static void sh(const char *cmd)
{
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* `openssl enc` of TMP/in.bin under a cipher, key and IV: the KAT. */
static char *openssl_enc(const char *name, const char *khex, const char *ivhex, bool nopad)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "openssl enc -%s -K %s %s%s %s -in " TMP "/in.bin -out " TMP "/out.bin",
             name, khex, ivhex ? "-iv " : "", ivhex ? ivhex : "", nopad ? "-nopad" : "");
    sh(cmd);
    size_t n;
    uint8_t *p = read_file(TMP "/out.bin", &n);
    char *h = malloc(2 * n + 1);
    kms_hex_encode(p, n, h);
    free(p);
    return h;
}

static void test_3des_xts(void **state)
{
    (void)state;
    const char *pt = "4e6f77206973207468652074696d6520666f7220616c6c20676f6f64206d656e21";
    size_t n;
    uint8_t *ptb = hex(pt, &n);
    write_file(TMP "/in.bin", ptb, n);
    const char *k3 = "0123456789abcdeffedcba987654321089abcdef01234567";
    const char *k2 = "0123456789abcdeffedcba9876543210";
    char *c;
    c = openssl_enc("des-ede3-cbc", k3, "1234567890abcdef", false);
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, KMIP_BLOCK_CIPHER_MODE_CBC,
            KMIP_PADDING_METHOD_PKCS5, k3, "1234567890abcdef", pt, c);
    free(c);
    c = openssl_enc("des-ede3-ecb", k3, NULL, false);
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, KMIP_BLOCK_CIPHER_MODE_ECB, 0, k3, NULL, pt, c);
    free(c);
    c = openssl_enc("des-ede-cbc", k2, "1234567890abcdef", false);
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, KMIP_BLOCK_CIPHER_MODE_CBC, 0, k2,
            "1234567890abcdef", pt, c);
    free(c);
    /* AES-256 CBC with PKCS5 padding (33 bytes -> 48). */
    c = openssl_enc("aes-256-cbc", K256, IV38A, false);
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_PKCS5,
            K256, IV38A, pt, c);
    free(c);
    /* ANSI X9.23 and ISO 10126 (padding done here, the cipher unpadded):
     * the 33 bytes padded by hand per the standard, encrypted by openssl. */
    uint8_t padded[48];
    memcpy(padded, ptb, n);
    memset(padded + n, 0, sizeof(padded) - n);
    padded[47] = (uint8_t)(48 - n);
    write_file(TMP "/in.bin", padded, sizeof(padded));
    c = openssl_enc("aes-256-cbc", K256, IV38A, true);
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_ANSI_X923,
            K256, IV38A, pt, c);
    free(c);
    for (size_t i = n; i < 47; i++)
        padded[i] = (uint8_t)(0x5a + i); /* ISO 10126: any bytes before the count */
    write_file(TMP "/in.bin", padded, sizeof(padded));
    c = openssl_enc("aes-256-cbc", K256, IV38A, true);
    {
        crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K256);
        crypto_params_t p = {.mode = KMIP_BLOCK_CIPHER_MODE_CBC, .padding = KMIP_PADDING_METHOD_ISO_10126};
        size_t iv_len, ct_len;
        uint8_t *iv = hex(IV38A, &iv_len), *ct = hex(c, &ct_len);
        crypto_start_t st = {.iv = iv, .iv_len = iv_len};
        kms_buf_t out;
        crypto_final_t fin = {0};
        kms_error_t err;
        assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err), 0);
        assert_hex(out.data, out.len, pt);
        kms_buf_dispose(&out);
        /* Our ISO 10126 encryption decrypts to the same; X9.23 refuses its padding. */
        assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, &st, ptb, n, &out, &fin, &err), 0);
        assert_int_equal(out.len, 48);
        kms_buf_t back;
        assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, out.data, out.len, &back, &fin, &err), 0);
        assert_int_equal(back.len, n);
        assert_memory_equal(back.data, ptb, n);
        kms_buf_dispose(&back);
        kms_buf_dispose(&out);
        p.padding = KMIP_PADDING_METHOD_ANSI_X923;
        assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, &st, ct, ct_len, &out, &fin, &err),
                         KMS_ERR_CRYPTO);
        kms_buf_dispose(&out);
        free(iv);
        free(ct);
        free((void *)k.raw);
    }
    free(c);
    free(ptb);
    /* XTS (openssl enc has none): IEEE 1619 vectors 2 and 3; a 256-bit
     * KMIP key is AES-128-XTS (two 128-bit keys). */
    const char *x44 = "4444444444444444444444444444444444444444444444444444444444444444";
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_BLOCK_CIPHER_MODE_XTS, 0,
            "1111111111111111111111111111111122222222222222222222222222222222",
            "33333333330000000000000000000000", x44,
            "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0");
    sym_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_BLOCK_CIPHER_MODE_XTS, 0,
            "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f022222222222222222222222222222222",
            "33333333330000000000000000000000", x44,
            "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89");
}

static void test_cipher_misuse(void **state)
{
    (void)state;
    crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K128);
    crypto_op_t *op = NULL;
    uint8_t iv[64];
    size_t iv_len;
    kms_error_t err;
    struct {
        crypto_params_t p;
        int rc;
        uint32_t reason;
    } cases[] = {
        {{.mode = 0}, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CCM}, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CMAC}, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_XTS}, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CBC, .padding = KMIP_PADDING_METHOD_ZEROS}, KMS_ERR_NOTSUP,
         KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CTR, .padding = KMIP_PADDING_METHOD_PKCS5}, KMS_ERR_INVAL,
         KMIP_RESULT_REASON_INVALID_FIELD},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CBC, .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES},
         KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD},
        {{.mode = KMIP_BLOCK_CIPHER_MODE_CBC, .iv_len_bits = 64}, KMS_ERR_INVAL,
         KMIP_RESULT_REASON_INVALID_FIELD},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cases); i++) {
        assert_int_equal(crypto_cipher_start(CRYPTO_SVC_ENCRYPT, &k, &cases[i].p, NULL, &op, iv,
                                             &iv_len, &err),
                         cases[i].rc);
        assert_int_equal(err.reason, cases[i].reason);
        assert_null(op);
    }
    /* Padding None and a partial block: Invalid Field at the end. */
    crypto_params_t p = {.mode = KMIP_BLOCK_CIPHER_MODE_ECB, .padding = KMIP_PADDING_METHOD_NONE};
    kms_buf_t out;
    crypto_final_t fin = {0};
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &k, &p, NULL, (const uint8_t *)"short", 5, &out,
                            &fin, &err),
                     KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    kms_buf_dispose(&out);
    /* A bad PKCS5 padding on Decrypt: Cryptographic Failure. */
    p.padding = KMIP_PADDING_METHOD_PKCS5;
    uint8_t junk[16] = {1, 2, 3};
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &k, &p, NULL, junk, 16, &out, &fin, &err),
                     KMS_ERR_CRYPTO);
    kms_buf_dispose(&out);
    /* HMAC keys do not encrypt. */
    crypto_key_t hk = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, K256);
    crypto_params_t pc = {.mode = KMIP_BLOCK_CIPHER_MODE_CBC};
    assert_int_equal(crypto_cipher_start(CRYPTO_SVC_ENCRYPT, &hk, &pc, NULL, &op, iv, &iv_len, &err),
                     KMS_ERR_INVAL);
    free((void *)hk.raw);
    free((void *)k.raw);
}

/* ---------------------------------------------------------------- MACs */
static void mac_kat(uint32_t alg, const char *khex, const void *msg, size_t n, const char *want)
{
    crypto_key_t k = sym_key(alg, khex);
    crypto_params_t p = {0};
    crypto_op_t *op = NULL;
    kms_buf_t out;
    crypto_final_t fin = {0};
    kms_error_t err;
    kms_buf_init(&out, 256);
    assert_int_equal(crypto_mac_start(CRYPTO_SVC_MAC, &k, &p, &op, &err), 0);
    /* in two parts */
    assert_int_equal(crypto_op_update(op, msg, n / 2, &out, &err), 0);
    assert_int_equal(crypto_op_update(op, (const uint8_t *)msg + n / 2, n - n / 2, &out, &err), 0);
    assert_int_equal(crypto_op_final(op, &out, &fin, &err), 0);
    assert_hex(out.data, out.len, want);
    crypto_op_free(op);
    /* MAC Verify: valid, then invalid with one bit changed. */
    size_t mlen;
    uint8_t *mac = hex(want, &mlen);
    for (int bad = 0; bad < 2; bad++) {
        mac[0] ^= (uint8_t)bad;
        assert_int_equal(crypto_mac_start(CRYPTO_SVC_MAC_VERIFY, &k, &p, &op, &err), 0);
        assert_int_equal(crypto_op_update(op, msg, n, &out, &err), 0);
        fin.check = mac;
        fin.check_len = mlen;
        assert_int_equal(crypto_op_final(op, &out, &fin, &err), 0);
        assert_int_equal(fin.valid, !bad);
        crypto_op_free(op);
    }
    free(mac);
    kms_buf_dispose(&out);
    free((void *)k.raw);
}

static void test_hmac_cmac(void **state)
{
    (void)state;
    const char *k0b = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";
    /* RFC 2202 test case 1 (HMAC-SHA1), RFC 4231 test case 1 and 2 */
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1, k0b, "Hi There", 8,
            "b617318655057264e28bc0b6fb378c8ef146be00");
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224, k0b, "Hi There", 8,
            "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22");
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, k0b, "Hi There", 8,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384, k0b, "Hi There", 8,
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
            "faea9ea9076ede7f4af152e8b2fa9cb6");
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512, k0b, "Hi There", 8,
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, "4a656665", "what do ya want for nothing?", 28,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* SP 800-38B D.1 / RFC 4493: AES-128 CMAC of 16 bytes */
    size_t n;
    uint8_t *m = hex("6bc1bee22e409f96e93d7e117393172a", &n);
    mac_kat(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K128, m, n, "070a16b46b4d4144f79bdd9dd04a287c");
    free(m);
    /* An AES key asked for HMAC: Invalid Field. */
    crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K128);
    crypto_params_t p = {.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256};
    crypto_op_t *op = NULL;
    kms_error_t err;
    assert_int_equal(crypto_mac_start(CRYPTO_SVC_MAC, &k, &p, &op, &err), KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    free((void *)k.raw);
}

/* -------------------------------------------------------------- hashes */
static void test_hash(void **state)
{
    (void)state;
    struct {
        uint32_t h;
        const char *want;
    } v[] = {
        {KMIP_HASHING_ALGORITHM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {KMIP_HASHING_ALGORITHM_SHA_256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {KMIP_HASHING_ALGORITHM_SHA_512,
         "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
         "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
    };
    kms_error_t err;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(v); i++) {
        crypto_params_t p = {.hash = v[i].h};
        crypto_op_t *op = NULL;
        kms_buf_t out;
        crypto_final_t fin = {0};
        kms_buf_init(&out, 128);
        assert_int_equal(crypto_hash_start(&p, &op, &err), 0);
        assert_int_equal(crypto_op_update(op, (const uint8_t *)"a", 1, &out, &err), 0);
        assert_int_equal(crypto_op_update(op, (const uint8_t *)"bc", 2, &out, &err), 0);
        assert_int_equal(crypto_op_final(op, &out, &fin, &err), 0);
        assert_hex(out.data, out.len, v[i].want);
        crypto_op_free(op);
        kms_buf_dispose(&out);
    }
    crypto_params_t none = {0};
    crypto_op_t *op = NULL;
    assert_int_equal(crypto_hash_start(&none, &op, &err), KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    crypto_params_t tiger = {.hash = KMIP_HASHING_ALGORITHM_TIGER};
    assert_int_equal(crypto_hash_start(&tiger, &op, &err), KMS_ERR_NOTSUP);
}

/* ---------------------------------------------------------- signatures */
static int sign_verify(enum crypto_svc svc, const crypto_key_t *k, const crypto_params_t *p,
                       bool prehashed, const uint8_t *msg, size_t n, kms_buf_t *sig,
                       const uint8_t *check, size_t check_len, bool *valid, kms_error_t *err)
{
    crypto_op_t *op = NULL;
    crypto_start_t st = {.prehashed = prehashed};
    crypto_final_t fin = {.check = check, .check_len = check_len};
    int rc = crypto_sign_start(svc, k, p, &st, &op, err);
    if (!rc)
        rc = crypto_op_update(op, msg, n, sig, err);
    if (!rc)
        rc = crypto_op_final(op, sig, &fin, err);
    if (valid)
        *valid = fin.valid;
    crypto_op_free(op);
    return rc;
}

static void test_ecdsa_rfc6979(void **state)
{
    (void)state;
    /* RFC 6979 A.2.5: P-256 public key U, and the SHA-256 signature of
     * "sample" (r, s), DER-encoded here. */
    size_t n;
    uint8_t *spki = hex("3059301306072a8648ce3d020106082a8648ce3d03010703420004"
                        "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
                        "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299", &n);
    crypto_key_t k = {.object_type = KMIP_OBJECT_TYPE_PUBLIC_KEY, .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA};
    kms_error_t err;
    assert_int_equal(crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_X_509, false, spki, n, &k.pkey, &err), 0);
    size_t slen;
    uint8_t *sig = hex("3046022100EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                       "022100F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8", &slen);
    crypto_params_t p = {.hash = KMIP_HASHING_ALGORITHM_SHA_256};
    kms_buf_t out;
    kms_buf_init(&out, 1024);
    bool valid = false;
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &p, false, (const uint8_t *)"sample", 6,
                                 &out, sig, slen, &valid, &err), 0);
    assert_true(valid);
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &p, false, (const uint8_t *)"samplf", 6,
                                 &out, sig, slen, &valid, &err), 0);
    assert_false(valid);
    /* The same over Digested Data (SHA-256 of "sample"). */
    uint8_t dg[32];
    assert_int_equal(crypto_sha256((const uint8_t *)"sample", 6, dg), 0);
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &p, true, dg, 32, &out, sig, slen, &valid, &err), 0);
    assert_true(valid);
    /* A digest of the wrong size: Invalid Field. */
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &p, true, dg, 20, &out, sig, slen, &valid, &err),
                     KMS_ERR_INVAL);
    /* Garbage as a signature is just invalid. */
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &p, false, (const uint8_t *)"sample", 6,
                                 &out, (const uint8_t *)"xx", 2, &valid, &err), 0);
    assert_false(valid);
    /* RSA parameters for an EC key: Invalid Field. */
    crypto_params_t pr = {.sig_alg = KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA256_WITH_RSA_ENCRYPTION};
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &k, &pr, false, (const uint8_t *)"sample", 6,
                                 &out, sig, slen, &valid, &err), KMS_ERR_INVAL);
    EVP_PKEY_free(k.pkey);
    kms_buf_dispose(&out);
    free(spki);
    free(sig);
}

static crypto_key_t load_pem(const char *path, bool priv)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "openssl %s -in %s -outform DER -out " TMP "/key.der %s",
             priv ? "pkcs8 -topk8 -nocrypt" : "pkey -pubin", path, "2>/dev/null");
    sh(cmd);
    size_t n;
    uint8_t *der = read_file(TMP "/key.der", &n);
    crypto_key_t k = {.object_type = priv ? KMIP_OBJECT_TYPE_PRIVATE_KEY : KMIP_OBJECT_TYPE_PUBLIC_KEY};
    kms_error_t err;
    assert_int_equal(crypto_pkey_load(priv ? KMIP_KEY_FORMAT_TYPE_PKCS_8 : KMIP_KEY_FORMAT_TYPE_X_509,
                                      priv, der, n, &k.pkey, &err), 0);
    free(der);
    return k;
}

static void test_rsa_openssl_cli(void **state)
{
    (void)state;
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " TMP "/rsa.pem 2>/dev/null");
    sh("openssl pkey -in " TMP "/rsa.pem -pubout -out " TMP "/rsa.pub");
    crypto_key_t sk = load_pem(TMP "/rsa.pem", true), pk = load_pem(TMP "/rsa.pub", false);
    const char *msg = "the quick brown fox jumps over the lazy dog";
    write_file(TMP "/msg.bin", msg, strlen(msg));
    kms_buf_t sig;
    kms_buf_init(&sig, 4096);
    kms_error_t err;
    bool valid;
    size_t n;
    uint8_t *p;

    /* PKCS#1 v1.5 with SHA-256 is deterministic: byte-identical to openssl dgst. */
    crypto_params_t p15 = {.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, .padding = KMIP_PADDING_METHOD_PKCS1_V1_5,
                           .hash = KMIP_HASHING_ALGORITHM_SHA_256};
    assert_int_equal(sign_verify(CRYPTO_SVC_SIGN, &sk, &p15, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, NULL, 0, NULL, &err), 0);
    sh("openssl dgst -sha256 -sign " TMP "/rsa.pem -out " TMP "/sig.bin " TMP "/msg.bin");
    p = read_file(TMP "/sig.bin", &n);
    assert_int_equal(n, sig.len);
    assert_memory_equal(p, sig.data, n);
    free(p);
    /* Digested Data gives the same signature. */
    uint8_t dg[32];
    crypto_sha256((const uint8_t *)msg, strlen(msg), dg);
    kms_buf_t sig2;
    kms_buf_init(&sig2, 4096);
    assert_int_equal(sign_verify(CRYPTO_SVC_SIGN, &sk, &p15, true, dg, 32, &sig2, NULL, 0, NULL, &err), 0);
    assert_int_equal(sig2.len, sig.len);
    assert_memory_equal(sig2.data, sig.data, sig.len);
    kms_buf_dispose(&sig2);

    /* PSS is randomised: ours verifies with openssl, openssl's with ours. */
    crypto_params_t pss = {.padding = KMIP_PADDING_METHOD_PSS, .hash = KMIP_HASHING_ALGORITHM_SHA_256,
                           .has_salt_len = true, .salt_len = 32};
    sig.len = 0;
    assert_int_equal(sign_verify(CRYPTO_SVC_SIGN, &sk, &pss, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, NULL, 0, NULL, &err), 0);
    write_file(TMP "/sig.bin", sig.data, sig.len);
    sh("openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify "
       TMP "/rsa.pub -signature " TMP "/sig.bin " TMP "/msg.bin >/dev/null");
    sh("openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sign "
       TMP "/rsa.pem -out " TMP "/sig2.bin " TMP "/msg.bin");
    p = read_file(TMP "/sig2.bin", &n);
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &pk, &pss, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, p, n, &valid, &err), 0);
    assert_true(valid);
    /* A PKCS#1 v1.5 signature does not verify as PSS. */
    sh("openssl dgst -sha256 -sign " TMP "/rsa.pem -out " TMP "/sig.bin " TMP "/msg.bin");
    free(p);
    p = read_file(TMP "/sig.bin", &n);
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &pk, &pss, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, p, n, &valid, &err), 0);
    assert_false(valid);
    free(p);

    /* OAEP (SHA-256, MGF1-SHA-256): both directions with openssl pkeyutl. */
    crypto_params_t oaep = {.padding = KMIP_PADDING_METHOD_OAEP, .hash = KMIP_HASHING_ALGORITHM_SHA_256};
    kms_buf_t ct;
    crypto_final_t fin = {0};
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &pk, &oaep, NULL, (const uint8_t *)msg, strlen(msg),
                            &ct, &fin, &err), 0);
    assert_int_equal(ct.len, 256);
    write_file(TMP "/ct.bin", ct.data, ct.len);
    kms_buf_dispose(&ct);
    sh("openssl pkeyutl -decrypt -inkey " TMP "/rsa.pem -pkeyopt rsa_padding_mode:oaep "
       "-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in " TMP "/ct.bin -out " TMP "/pt.bin");
    p = read_file(TMP "/pt.bin", &n);
    assert_int_equal(n, strlen(msg));
    assert_memory_equal(p, msg, n);
    free(p);
    sh("openssl pkeyutl -encrypt -pubin -inkey " TMP "/rsa.pub -pkeyopt rsa_padding_mode:oaep "
       "-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in " TMP "/msg.bin -out " TMP "/ct.bin");
    p = read_file(TMP "/ct.bin", &n);
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &sk, &oaep, NULL, p, n, &ct, &fin, &err), 0);
    assert_int_equal(ct.len, strlen(msg));
    assert_memory_equal(ct.data, msg, ct.len);
    kms_buf_dispose(&ct);
    /* The same ciphertext under PKCS#1 v1.5: Cryptographic Failure. */
    crypto_params_t pk15 = {.padding = KMIP_PADDING_METHOD_PKCS1_V1_5};
    assert_int_equal(cipher(CRYPTO_SVC_DECRYPT, &sk, &pk15, NULL, p, n, &ct, &fin, &err), KMS_ERR_CRYPTO);
    kms_buf_dispose(&ct);
    free(p);
    /* PKCS#1 v1.5 encryption with openssl decrypting it. */
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &pk, &pk15, NULL, (const uint8_t *)msg, strlen(msg),
                            &ct, &fin, &err), 0);
    write_file(TMP "/ct.bin", ct.data, ct.len);
    kms_buf_dispose(&ct);
    sh("openssl pkeyutl -decrypt -inkey " TMP "/rsa.pem -in " TMP "/ct.bin -out " TMP "/pt.bin");
    p = read_file(TMP "/pt.bin", &n);
    assert_memory_equal(p, msg, n);
    free(p);
    /* No padding named / too much data: Invalid Field. */
    crypto_params_t none = {0};
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &pk, &none, NULL, (const uint8_t *)msg, 4, &ct, &fin, &err),
                     KMS_ERR_INVAL);
    kms_buf_dispose(&ct);
    uint8_t big[300] = {0};
    assert_int_equal(cipher(CRYPTO_SVC_ENCRYPT, &pk, &oaep, NULL, big, sizeof(big), &ct, &fin, &err),
                     KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    kms_buf_dispose(&ct);

    /* ECDSA P-384 with openssl: ours verifies there, theirs here. */
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " TMP "/ec.pem");
    sh("openssl pkey -in " TMP "/ec.pem -pubout -out " TMP "/ec.pub");
    crypto_key_t ek = load_pem(TMP "/ec.pem", true), epk = load_pem(TMP "/ec.pub", false);
    crypto_params_t es = {.sig_alg = KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA384};
    sig.len = 0;
    assert_int_equal(sign_verify(CRYPTO_SVC_SIGN, &ek, &es, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, NULL, 0, NULL, &err), 0);
    write_file(TMP "/sig.bin", sig.data, sig.len);
    sh("openssl dgst -sha384 -verify " TMP "/ec.pub -signature " TMP "/sig.bin " TMP "/msg.bin >/dev/null");
    sh("openssl dgst -sha384 -sign " TMP "/ec.pem -out " TMP "/sig.bin " TMP "/msg.bin");
    p = read_file(TMP "/sig.bin", &n);
    assert_int_equal(sign_verify(CRYPTO_SVC_VERIFY, &epk, &es, false, (const uint8_t *)msg, strlen(msg),
                                 &sig, p, n, &valid, &err), 0);
    assert_true(valid);
    free(p);
    EVP_PKEY_free(ek.pkey);
    EVP_PKEY_free(epk.pkey);
    EVP_PKEY_free(sk.pkey);
    EVP_PKEY_free(pk.pkey);
    kms_buf_dispose(&sig);
}

/* ---------------------------------------------------------- derivation */
static void test_pbkdf2_rfc6070(void **state)
{
    (void)state;
    crypto_key_t pw = {.object_type = KMIP_OBJECT_TYPE_SECRET_DATA,
                       .raw = (const uint8_t *)"password", .raw_len = 8};
    struct {
        int32_t c;
        const char *want;
    } v[] = {{1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
             {2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
             {4096, "4b007901b765489abead49d926f721d065a429c1"}};
    kms_error_t err;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(v); i++) {
        crypto_derive_t d = {.method = KMIP_DERIVATION_METHOD_PBKDF2,
                             .salt = (const uint8_t *)"salt", .salt_len = 4, .iterations = v[i].c};
        kms_secret_t *out = NULL;
        assert_int_equal(crypto_derive(&pw, &d, 20, &out, &err), 0);
        assert_hex(out->data, out->len, v[i].want);
        kms_secret_free(out);
    }
    crypto_derive_t nosalt = {.method = KMIP_DERIVATION_METHOD_PBKDF2, .iterations = 1};
    kms_secret_t *out = NULL;
    assert_int_equal(crypto_derive(&pw, &nosalt, 20, &out, &err), KMS_ERR_INVAL);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    crypto_derive_t dpi = {.method = KMIP_DERIVATION_METHOD_NIST800_108_DPI};
    assert_int_equal(crypto_derive(&pw, &dpi, 20, &out, &err), KMS_ERR_NOTSUP);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
}

static void test_derive_kbkdf_hmac_encrypt(void **state)
{
    (void)state;
    crypto_key_t k = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, K256);
    size_t dl;
    uint8_t *data = hex("6b6d73642d746573742d6669786564", &dl);
    kms_error_t err;
    kms_secret_t *out = NULL;
    /* SP 800-108 counter mode: the openssl kdf command with the same
     * options (32-bit counter before the fixed data, no [L], no label). */
    crypto_derive_t d = {.method = KMIP_DERIVATION_METHOD_NIST800_108_C, .data = data, .data_len = dl,
                         .params = {.hash = KMIP_HASHING_ALGORITHM_SHA_256}};
    assert_int_equal(crypto_derive(&k, &d, 48, &out, &err), 0);
    sh("openssl kdf -keylen 48 -kdfopt mode:COUNTER -kdfopt mac:HMAC -kdfopt digest:SHA2-256 "
       "-kdfopt hexkey:" K256 " -kdfopt hexinfo:6b6d73642d746573742d6669786564 "
       "-kdfopt use-l:0 -kdfopt use-separator:0 -out " TMP "/kdf.bin -binary KBKDF");
    size_t n;
    uint8_t *p = read_file(TMP "/kdf.bin", &n);
    assert_int_equal(n, 48);
    assert_memory_equal(p, out->data, 48);
    free(p);
    kms_secret_free(out);
    /* HMAC: one HMAC-SHA256 block (RFC 4231 case 2 key and data). */
    crypto_key_t jefe = {.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
                         .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256,
                         .raw = (const uint8_t *)"Jefe", .raw_len = 4};
    crypto_derive_t h = {.method = KMIP_DERIVATION_METHOD_HMAC,
                         .data = (const uint8_t *)"what do ya want for nothing?", .data_len = 28};
    assert_int_equal(crypto_derive(&jefe, &h, 32, &out, &err), 0);
    assert_hex(out->data, out->len, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    kms_secret_free(out);
    assert_int_equal(crypto_derive(&jefe, &h, 33, &out, &err), KMS_ERR_INVAL);
    /* ENCRYPT: AES-128-ECB of the SP 800-38A block. */
    crypto_key_t ak = sym_key(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, K128);
    size_t bl;
    uint8_t *blk = hex("6bc1bee22e409f96e93d7e117393172a", &bl);
    crypto_derive_t e = {.method = KMIP_DERIVATION_METHOD_ENCRYPT, .data = blk, .data_len = bl,
                         .params = {.mode = KMIP_BLOCK_CIPHER_MODE_ECB, .padding = KMIP_PADDING_METHOD_NONE}};
    assert_int_equal(crypto_derive(&ak, &e, 16, &out, &err), 0);
    assert_hex(out->data, out->len, "3ad77bb40d7a3660a89ecaf32466ef97");
    kms_secret_free(out);
    /* HASH: SHA-256 of key || data. */
    crypto_key_t abk = {.object_type = KMIP_OBJECT_TYPE_SECRET_DATA, .raw = (const uint8_t *)"a", .raw_len = 1};
    crypto_derive_t hs = {.method = KMIP_DERIVATION_METHOD_HASH, .data = (const uint8_t *)"bc", .data_len = 2,
                          .params = {.hash = KMIP_HASHING_ALGORITHM_SHA_256}};
    assert_int_equal(crypto_derive(&abk, &hs, 32, &out, &err), 0);
    assert_hex(out->data, out->len, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    kms_secret_free(out);
    free(blk);
    free((void *)ak.raw);
    free(data);
    free((void *)k.raw);
}

static void test_rng(void **state)
{
    (void)state;
    uint8_t a[64] = {0}, b[64] = {0}, zero[64] = {0};
    kms_error_t err;
    size_t used = 0;
    assert_int_equal(crypto_rng_bytes(a, sizeof(a), &err), 0);
    assert_int_equal(crypto_rng_seed((const uint8_t *)"seed", 4, &used, &err), 0);
    assert_int_equal(used, 4);
    assert_int_equal(crypto_rng_bytes(b, sizeof(b), &err), 0);
    assert_memory_not_equal(a, zero, 64);
    assert_memory_not_equal(a, b, 64);
    uint8_t big[CRYPTO_RNG_SEED_MAX + 10] = {0};
    assert_int_equal(crypto_rng_seed(big, sizeof(big), &used, &err), 0);
    assert_int_equal(used, CRYPTO_RNG_SEED_MAX);
}

static int setup(void **state)
{
    (void)state;
    return system("mkdir -p " TMP) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return system("rm -rf " TMP) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes_sp800_38a),
        cmocka_unit_test(test_aes_gcm),
        cmocka_unit_test(test_generated_iv),
        cmocka_unit_test(test_aes_key_wrap),
        cmocka_unit_test(test_3des_xts),
        cmocka_unit_test(test_cipher_misuse),
        cmocka_unit_test(test_hmac_cmac),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_ecdsa_rfc6979),
        cmocka_unit_test(test_rsa_openssl_cli),
        cmocka_unit_test(test_pbkdf2_rfc6070),
        cmocka_unit_test(test_derive_kbkdf_hmac_encrypt),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
