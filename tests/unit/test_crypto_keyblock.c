/* tests/unit/test_crypto_keyblock.c: the object structures of
 * Register and Get (crypto_object_parse / _build) without a server:
 * every supported Key Format Type in and out, Triple DES and HMAC keys,
 * Transparent RSA/EC registration, the TTLV-encoded wrapping path (with
 * attributes inside the wrapped Key Value) and its unwrapping on Register,
 * and the refusals (wrong format for the object, compression, no key
 * value, No Encoding with a structured Key Material, a wrapped Key Block
 * that does not unwrap), multi-prime RSA keys, and EC private keys with a
 * compressed point, no public point or explicit curve parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "crypto/crypto.h"

static kms_arena_t *A;

static int each_setup(void **state)
{
    (void)state;
    A = kms_arena_new(0);
    return A ? 0 : -1;
}

static int each_teardown(void **state)
{
    (void)state;
    kms_arena_free(A);
    return 0;
}

/* A Register-style object with a Key Block around `km` (NULL: caller adds). */
static ttlv_item_t *keyblock_obj(uint32_t type, uint32_t fmt, const void *km, size_t n, uint32_t alg,
                                 int32_t bits, ttlv_item_t **kv_out)
{
    ttlv_item_t *o = ttlv_new_struct(A, NULL, crypto_object_tag(type));
    if (type == KMIP_OBJECT_TYPE_SECRET_DATA)
        ttlv_new_enum(A, o, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_SEED);
    ttlv_item_t *kb = ttlv_new_struct(A, o, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    ttlv_item_t *kv = ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE);
    if (km)
        ttlv_new_bytes(A, kv, KMIP_TAG_KEY_MATERIAL, km, n);
    if (alg)
        ttlv_new_enum(A, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg);
    if (bits)
        ttlv_new_int(A, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, bits);
    if (kv_out)
        *kv_out = kv;
    return o;
}

/* The Key Material of Key Value `kv` read as Transparent format `fmt` is
 * the key `want`. */
static void assert_transparent_is(const ttlv_item_t *kv, uint32_t fmt, EVP_PKEY *want)
{
    EVP_PKEY *k = NULL;
    kms_error_t e = {0};
    assert_int_equal(crypto_transparent_parse(ttlv_find(kv, KMIP_TAG_KEY_MATERIAL), fmt, &k, &e), 0);
    assert_int_equal(EVP_PKEY_eq(want, k), 1);
    EVP_PKEY_free(k);
}

/* Build for Get, encode, decode: what a client would receive. */
static ttlv_item_t *build(const crypto_material_t *d, const kms_secret_t *s, uint32_t fmt,
                          const crypto_wrap_t *w, int want_rc, kms_error_t *e)
{
    ttlv_item_t *parent = ttlv_new_struct(A, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
    int rc = crypto_object_build(A, parent, d, s, fmt, w, e);
    assert_int_equal(rc, want_rc);
    if (rc < 0)
        return NULL;
    kms_buf_t b;
    ttlv_item_t *root = NULL;
    kms_error_t terr;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(ttlv_encode(parent, &b), 0);
    assert_int_equal(ttlv_decode(b.data, b.len, NULL, A, &root, &terr), 0);
    kms_buf_dispose_wipe(&b);
    return root->first;
}

static void test_symmetric_formats(void **state)
{
    (void)state;
    static const uint8_t k[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                  13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};
    kms_secret_t *s = NULL;
    crypto_material_t d;
    kms_error_t e = {0};
    /* AES-192 as Transparent Symmetric Key in, Raw out. */
    ttlv_item_t *kv;
    ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
                                  KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY, NULL, 0,
                                  KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 192, &kv);
    ttlv_item_t *km = ttlv_new_struct(A, kv, KMIP_TAG_KEY_MATERIAL);
    ttlv_new_bytes(A, km, KMIP_TAG_KEY, k, 24);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s, &d, &e),
                     0);
    assert_int_equal(s->len, 24);
    assert_memory_equal(s->data, k, 24);
    assert_int_equal(d.registered_fmt, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY);
    assert_int_equal(d.stored_fmt, KMIP_KEY_FORMAT_TYPE_RAW);
    assert_int_equal(d.bits, 192);
    ttlv_item_t *g = build(&d, s, KMIP_KEY_FORMAT_TYPE_RAW, NULL, 0, &e);
    assert_int_equal(g->tag, KMIP_TAG_SYMMETRIC_KEY);
    ttlv_item_t *gm = ttlv_find(ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE),
                                KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(gm->type, TTLV_BYTE_STRING);
    assert_memory_equal(gm->v.bytes.ptr, k, 24);
    /* Default: as registered (Transparent). */
    g = build(&d, s, 0, NULL, 0, &e);
    gm = ttlv_find(ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(gm->type, TTLV_STRUCTURE);
    kms_secret_free(s);

    /* Triple DES, 24 bytes stated as 192: stored, length normalised to 168. */
    o = keyblock_obj(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, k, 24,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 192, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s, &d, &e),
                     0);
    assert_int_equal(d.bits, 168);
    kms_secret_free(s);
    /* HMAC-SHA256 with a 20-byte key is fine; a stated length that lies is not. */
    o = keyblock_obj(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, k, 20,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 160, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s, &d, &e),
                     0);
    kms_secret_free(s);
    o = keyblock_obj(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, k, 20,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 256, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s, &d, &e),
                     KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_null(s);
    /* Key Compression Type is refused. */
    o = keyblock_obj(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, k, 16,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, NULL);
    ttlv_new_enum(A, ttlv_find(o, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_COMPRESSION_TYPE, 1);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s, &d, &e),
                     KMS_ERR_NOTSUP);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED);
    /* The object must match the Object Type. */
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     KMS_ERR_PROTO);
    /* Get with no material: Key Value Not Present. */
    d.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY;
    assert_null(build(&d, NULL, 0, NULL, KMS_ERR_STATE, &e));
    assert_int_equal(e.reason, KMIP_RESULT_REASON_KEY_VALUE_NOT_PRESENT);
}

static void test_transparent_register(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    kms_error_t e = {0};
    kms_secret_t *s = NULL;
    crypto_material_t d;
    ttlv_item_t *kv;
    ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_PRIVATE_KEY,
                                  KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, NULL, 0,
                                  KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, &kv);
    assert_int_equal(
        crypto_transparent_build(A, kv, k, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, &e),
        0);
    /* Drop the CRT values: the server derives them. */
    ttlv_item_t *km = ttlv_find(kv, KMIP_TAG_KEY_MATERIAL);
    ttlv_remove(ttlv_find(km, KMIP_TAG_PRIME_EXPONENT_P));
    ttlv_remove(ttlv_find(km, KMIP_TAG_PRIME_EXPONENT_Q));
    ttlv_remove(ttlv_find(km, KMIP_TAG_CRT_COEFFICIENT));
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     0);
    assert_int_equal(d.stored_fmt, KMIP_KEY_FORMAT_TYPE_PKCS_8);
    assert_int_equal(d.alg, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA);
    assert_int_equal(d.bits, 2048);
    EVP_PKEY *back = NULL;
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, s->data, s->len, &back, &e), 0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    /* Public half as X.509 from the private key's own export. */
    kms_secret_free(s);
    s = NULL;
    /* A stated length that lies about the key. */
    ttlv_find(ttlv_find(o, KMIP_TAG_KEY_BLOCK), KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32 = 4096;
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     KMS_ERR_PROTO);
    EVP_PKEY_free(k);

    /* EC public key as Transparent ECDH: algorithm kept as stated. */
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
    o = keyblock_obj(KMIP_OBJECT_TYPE_PUBLIC_KEY, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PUBLIC_KEY, NULL, 0,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDH, 384, &kv);
    assert_int_equal(
        crypto_transparent_build(A, kv, k, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PUBLIC_KEY, &e),
        0);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PUBLIC_KEY, NULL, NULL, &s, &d, &e),
                     0);
    assert_int_equal(d.alg, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDH);
    assert_int_equal(d.curve, KMIP_RECOMMENDED_CURVE_P_384);
    assert_int_equal(d.stored_fmt, KMIP_KEY_FORMAT_TYPE_X_509);
    /* Get as registered gives the same Q String back. */
    ttlv_item_t *g = build(&d, s, 0, NULL, 0, &e);
    ttlv_item_t *q = ttlv_find(ttlv_find(ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE),
                                         KMIP_TAG_KEY_MATERIAL), KMIP_TAG_Q_STRING);
    ttlv_item_t *q0 = ttlv_find(ttlv_find(kv, KMIP_TAG_KEY_MATERIAL), KMIP_TAG_Q_STRING);
    assert_int_equal(q->v.bytes.len, q0->v.bytes.len);
    assert_memory_equal(q->v.bytes.ptr, q0->v.bytes.ptr, q0->v.bytes.len);
    /* RSA's transparent form of an EC key: Key Format Type Not Supported. */
    assert_null(build(&d, s, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY, NULL, KMS_ERR_NOTSUP, &e));
    assert_int_equal(e.reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
    kms_secret_free(s);
    EVP_PKEY_free(k);
}

/* A PKCS#1 RSA private key whose private exponent does not match: loads
 * in OpenSSL, fails the pairwise check, so Register refuses it. */
static void test_inconsistent_rsa_refused(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), *bad = NULL;
    const char *names[] = {"n", "e", "d", "rsa-factor1", "rsa-factor2", "rsa-exponent1",
                           "rsa-exponent2", "rsa-coefficient1"};
    BIGNUM *bn[8] = {0};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    for (int i = 0; i < 8; i++) {
        assert_int_equal(EVP_PKEY_get_bn_param(k, names[i], &bn[i]), 1);
        if (i == 2)
            BN_add_word(bn[i], 2); /* d + 2 */
        OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]);
    }
    OSSL_PARAM *prm = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
    assert_int_equal(EVP_PKEY_fromdata(c, &bad, EVP_PKEY_KEYPAIR, prm), 1);
    kms_secret_t *der = NULL, *s = NULL;
    kms_error_t e = {0};
    crypto_material_t d;
    assert_int_equal(crypto_pkey_export(bad, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &der, &e), 0);
    ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_1, der->data,
                                  der->len, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_null(s);
    /* The genuine key passes. */
    kms_secret_free(der);
    assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &der, &e), 0);
    o = keyblock_obj(KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_1, der->data, der->len,
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     0);
    kms_secret_free(s);
    kms_secret_free(der);
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    OSSL_PARAM_free(prm);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(bad);
    EVP_PKEY_free(k);
}

static void test_digest_value(void **state)
{
    (void)state;
    kms_secret_t *priv = NULL, *pub = NULL, *pkcs1 = NULL;
    kms_error_t e = {0};
    EVP_PKEY *k = NULL;
    uint8_t want[32];
    ttlv_item_t *v = NULL;
    assert_int_equal(
        crypto_keypair_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, &priv, &pub, &e), 0);
    /* A created RSA private key answers Get in PKCS#1: the digest is of that. */
    crypto_material_t d = {.object_type = KMIP_OBJECT_TYPE_PRIVATE_KEY,
                           .stored_fmt = KMIP_KEY_FORMAT_TYPE_PKCS_8,
                           .registered_fmt = KMIP_KEY_FORMAT_TYPE_PKCS_1,
                           .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA,
                           .bits = 2048};
    assert_int_equal(crypto_digest_value(A, &d, priv, &v), 0);
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, priv->data, priv->len, &k, &e), 0);
    assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &pkcs1, &e), 0);
    crypto_sha256(pkcs1->data, pkcs1->len, want);
    assert_int_equal(ttlv_u32(ttlv_find(v, KMIP_TAG_HASHING_ALGORITHM)), KMIP_HASHING_ALGORITHM_SHA_256);
    assert_memory_equal(ttlv_find(v, KMIP_TAG_DIGEST_VALUE)->v.bytes.ptr, want, 32);
    assert_int_equal(ttlv_u32(ttlv_find(v, KMIP_TAG_KEY_FORMAT_TYPE)), KMIP_KEY_FORMAT_TYPE_PKCS_1);
    /* Transparent: the TTLV encoding of the Key Material structure. */
    d.registered_fmt = KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY;
    assert_int_equal(crypto_digest_value(A, &d, priv, &v), 0);
    {
        ttlv_item_t *kv = ttlv_new_struct(A, NULL, KMIP_TAG_KEY_VALUE);
        kms_buf_t b;
        assert_int_equal(crypto_transparent_build(A, kv, k, d.registered_fmt, &e), 0);
        kms_buf_init(&b, 0);
        assert_int_equal(ttlv_encode(ttlv_find(kv, KMIP_TAG_KEY_MATERIAL), &b), 0);
        crypto_sha256(b.data, b.len, want);
        kms_buf_dispose_wipe(&b);
    }
    assert_memory_equal(ttlv_find(v, KMIP_TAG_DIGEST_VALUE)->v.bytes.ptr, want, 32);
    assert_int_equal(ttlv_u32(ttlv_find(v, KMIP_TAG_KEY_FORMAT_TYPE)),
                     KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY);
    /* A registered key's digest is the one crypto_object_parse took. */
    memset(d.digest, 0x5a, sizeof(d.digest));
    d.has_digest = true;
    assert_int_equal(crypto_digest_value(A, &d, priv, &v), 0);
    assert_memory_equal(ttlv_find(v, KMIP_TAG_DIGEST_VALUE)->v.bytes.ptr, d.digest, 32);
    d.has_digest = false;
    /* A certificate has no Key Format Type in its digest. */
    d.object_type = KMIP_OBJECT_TYPE_CERTIFICATE;
    d.stored_fmt = d.registered_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
    assert_int_equal(crypto_digest_value(A, &d, pub, &v), 0);
    assert_null(ttlv_find(v, KMIP_TAG_KEY_FORMAT_TYPE));
    EVP_PKEY_free(k);
    kms_secret_free(priv);
    kms_secret_free(pub);
    kms_secret_free(pkcs1);
}

static const uint8_t KEK[32] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                                0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5,
                                0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};

static int kek_cb(void *arg, const char *id, kms_secret_t **out, kms_error_t *e)
{
    (void)e;
    assert_string_equal(id, (const char *)arg);
    *out = kms_secret_dup(KEK, sizeof(KEK));
    return 0;
}

static void test_wrap_ttlv_encoding(void **state)
{
    (void)state;
    static const uint8_t k[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
    kms_secret_t *s = kms_secret_dup(k, 16), *plain = NULL, *s2 = NULL;
    crypto_material_t d = {.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
                           .stored_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
                           .registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
                           .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_AES,
                           .bits = 128};
    kms_error_t e = {0};
    /* One attribute travels inside the wrapped Key Value. */
    ttlv_item_t *at = ttlv_new_struct(A, NULL, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(A, at, KMIP_TAG_ATTRIBUTE_NAME, "Cryptographic Usage Mask");
    ttlv_new_int(A, at, KMIP_TAG_ATTRIBUTE_VALUE, 12);
    kms_secret_t kek = {.data = (uint8_t *)KEK, .len = sizeof(KEK)};
    crypto_wrap_t w = {.key_id = "kek-1",
                       .kek = &kek,
                       .block_mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP,
                       .encoding = 0,
                       .attrs = &at,
                       .n_attrs = 1};
    ttlv_item_t *g = build(&d, s, 0, &w, 0, &e);
    ttlv_item_t *kb = ttlv_find(g, KMIP_TAG_KEY_BLOCK);
    /* Key Block order: Format, Key Value, Algorithm, Length, Wrapping Data. */
    uint32_t want[] = {KMIP_TAG_KEY_FORMAT_TYPE, KMIP_TAG_KEY_VALUE, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM,
                       KMIP_TAG_CRYPTOGRAPHIC_LENGTH, KMIP_TAG_KEY_WRAPPING_DATA};
    size_t i = 0;
    for (ttlv_item_t *c = kb->first; c; c = c->next, i++) {
        assert_true(i < 5);
        assert_int_equal(c->tag, want[i]);
    }
    assert_int_equal(i, 5);
    ttlv_item_t *kv = ttlv_find(kb, KMIP_TAG_KEY_VALUE);
    assert_int_equal(kv->type, TTLV_BYTE_STRING);
    /* Default encoding is not echoed. */
    assert_null(ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA), KMIP_TAG_ENCODING_OPTION));
    assert_int_equal(
        crypto_aes_unwrap(KEK, 32, false, kv->v.bytes.ptr, kv->v.bytes.len, &plain, NULL), 0);
    ttlv_item_t *dec = NULL;
    kms_error_t terr;
    assert_int_equal(ttlv_decode(plain->data, plain->len, NULL, A, &dec, &terr), 0);
    assert_int_equal(dec->tag, KMIP_TAG_KEY_VALUE);
    ttlv_item_t *km = ttlv_find(dec, KMIP_TAG_KEY_MATERIAL);
    assert_memory_equal(km->v.bytes.ptr, k, 16);
    ttlv_item_t *a2 = ttlv_find(dec, KMIP_TAG_ATTRIBUTE);
    assert_non_null(a2);
    assert_int_equal(ttlv_find(a2, KMIP_TAG_ATTRIBUTE_VALUE)->v.i32, 12);
    kms_secret_free(plain);

    /* Register of that wrapped Symmetric Key unwraps through the callback. */
    crypto_material_t d2;
    assert_int_equal(crypto_object_parse(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, kek_cb, (void *)"kek-1",
                                         &s2, &d2, &e),
                     0);
    assert_int_equal(s2->len, 16);
    assert_memory_equal(s2->data, k, 16);
    kms_secret_free(s2);
    s2 = NULL;
    /* Without a way to resolve the KEK: Feature Not Supported. */
    assert_int_equal(
        crypto_object_parse(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, NULL, NULL, &s2, &d2, &e),
        KMS_ERR_NOTSUP);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);

    /* No Encoding with attributes, or with a structured Key Material, is an
     * Encoding Option Error. */
    w.encoding = KMIP_ENCODING_OPTION_NO_ENCODING;
    assert_null(build(&d, s, 0, &w, KMS_ERR_INVAL, &e));
    assert_int_equal(e.reason, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR);
    w.n_attrs = 0;
    assert_null(build(&d, s, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY, &w, KMS_ERR_INVAL, &e));
    assert_int_equal(e.reason, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR);
    /* An unsupported block cipher mode. */
    w.block_mode = KMIP_BLOCK_CIPHER_MODE_GCM;
    assert_null(build(&d, s, 0, &w, KMS_ERR_NOTSUP, &e));
    assert_int_equal(e.reason, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    /* Certificates have no Key Block to wrap. */
    d.object_type = KMIP_OBJECT_TYPE_CERTIFICATE;
    w.block_mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP;
    assert_null(build(&d, s, 0, &w, KMS_ERR_INVAL, &e));
    kms_secret_free(s);
}

static void test_secret_and_template(void **state)
{
    (void)state;
    kms_secret_t *s = NULL;
    crypto_material_t d;
    kms_error_t e = {0};
    ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_SECRET_DATA, KMIP_KEY_FORMAT_TYPE_OPAQUE, "seed!", 5,
                                  0, 0, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SECRET_DATA, NULL, NULL, &s, &d, &e),
                     0);
    assert_int_equal(d.sub_type, KMIP_SECRET_DATA_TYPE_SEED);
    ttlv_item_t *g = build(&d, s, 0, NULL, 0, &e);
    assert_int_equal(ttlv_u32(ttlv_find(g, KMIP_TAG_SECRET_DATA_TYPE)), KMIP_SECRET_DATA_TYPE_SEED);
    /* Secret Data has no algorithm in its Key Block. */
    assert_null(ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM));
    kms_secret_free(s);
    s = NULL;
    /* Secret Data in PKCS#8 is refused. */
    o = keyblock_obj(KMIP_OBJECT_TYPE_SECRET_DATA, KMIP_KEY_FORMAT_TYPE_PKCS_8, "seed!", 5, 0, 0, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_SECRET_DATA, NULL, NULL, &s, &d, &e),
                     KMS_ERR_NOTSUP);
    /* Template: stored as its TTLV and given back equal. */
    ttlv_item_t *t = ttlv_new_struct(A, NULL, KMIP_TAG_TEMPLATE);
    ttlv_item_t *at = ttlv_new_struct(A, t, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(A, at, KMIP_TAG_ATTRIBUTE_NAME, "Cryptographic Algorithm");
    ttlv_new_enum(A, at, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    assert_int_equal(crypto_object_parse(t, KMIP_OBJECT_TYPE_TEMPLATE, NULL, NULL, &s, &d, &e), 0);
    g = build(&d, s, 0, NULL, 0, &e);
    assert_true(ttlv_equal(g, t));
    kms_secret_free(s);
    s = NULL;
    /* A Template holding something other than Attributes. */
    ttlv_new_int(A, t, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 5);
    assert_int_equal(crypto_object_parse(t, KMIP_OBJECT_TYPE_TEMPLATE, NULL, NULL, &s, &d, &e),
                     KMS_ERR_PROTO);
}

/* Mutated Register objects (bit flips and truncations of the encoded
 * TTLV of valid ones) are either refused with a reason or accepted as a
 * valid key; never a crash (run under ASan/UBSan), never success without
 * material. Deterministic (fixed seed). */
static void test_parse_mutations(void **state)
{
    (void)state;
    kms_error_t e = {0};
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
    kms_secret_t *d1 = NULL;
    assert_int_equal(crypto_pkey_export(rsa, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &d1, &e), 0);
    ttlv_item_t *kv;
    ttlv_item_t *objs[4];
    uint32_t types[4] = {KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_OBJECT_TYPE_PUBLIC_KEY,
                         KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_OBJECT_TYPE_PRIVATE_KEY};
    objs[0] = keyblock_obj(types[0], KMIP_KEY_FORMAT_TYPE_PKCS_1, d1->data, d1->len,
                           KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, NULL);
    objs[1] = keyblock_obj(types[1], KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY, NULL, 0,
                           KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, &kv);
    assert_int_equal(
        crypto_transparent_build(A, kv, ec, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY, &e),
        0);
    static const uint8_t k16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    objs[2] = keyblock_obj(types[2], KMIP_KEY_FORMAT_TYPE_RAW, k16, 16, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES,
                           128, NULL);
    objs[3] = keyblock_obj(types[3], KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY, NULL, 0,
                           KMIP_CRYPTOGRAPHIC_ALGORITHM_EC, 256, &kv);
    assert_int_equal(
        crypto_transparent_build(A, kv, ec, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY, &e),
        0);
    uint32_t seed = 12345;
    size_t accepted = 0, refused = 0;
    for (int o = 0; o < 4; o++) {
        kms_buf_t b;
        kms_buf_init(&b, 1 << 20);
        assert_int_equal(ttlv_encode(objs[o], &b), 0);
        for (int it = 0; it < 120; it++) {
            uint8_t *m = malloc(b.len);
            size_t len = b.len;
            memcpy(m, b.data, b.len);
            int flips = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
            for (int f = 0; f < flips; f++) {
                seed = seed * 1103515245u + 12345u;
                size_t pos = (seed >> 8) % len;
                m[pos] ^= (uint8_t)(1u << ((seed >> 4) & 7));
            }
            if (((seed >> 20) & 7) == 0)
                len = (seed >> 3) % len; /* sometimes truncated */
            kms_arena_t *ma = kms_arena_new(0);
            ttlv_item_t *t = NULL;
            kms_error_t terr;
            if (ttlv_decode(m, len, NULL, ma, &t, &terr) == 0) {
                kms_secret_t *s = NULL;
                crypto_material_t d;
                kms_error_t e2 = {0};
                int rc = crypto_object_parse(t, types[o], NULL, NULL, &s, &d, &e2);
                if (rc == 0 && d.no_key_value) {
                    assert_null(s); /* a Key Block that lost its Key Value */
                    accepted++;
                } else if (rc == 0) {
                    assert_non_null(s);
                    assert_true(s->len > 0);
                    accepted++;
                } else {
                    assert_null(s);
                    assert_int_not_equal(e2.reason, 0);
                    refused++;
                }
                kms_secret_free(s);
            }
            kms_arena_free(ma);
            free(m);
        }
        kms_buf_dispose(&b);
    }
    /* Both outcomes occur: the mutations reach the validation. */
    assert_true(refused > 20);
    assert_true(accepted > 0);
    kms_secret_free(d1);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

/* An RSAPrivateKey whose version is not the one RFC 8017 gives its number
 * of primes (0 for two, 1 for more) is refused, as PKCS#1 and inside
 * PKCS#8: OpenSSL loaded it and re-encoded version 0, so the stored key
 * and its Transparent form were other bytes (fuzz_keyformat's find,
 * tests/fuzz/regressions/keyformat-rsa-version). */
static void expect_version_refused(uint32_t fmt, kms_secret_t *der, size_t at, uint8_t v)
{
    EVP_PKEY *back = NULL;
    kms_error_t e = {0};
    uint8_t keep = der->data[at];
    der->data[at] = v;
    assert_int_equal(crypto_pkey_load(fmt, true, der->data, der->len, &back, &e), KMS_ERR_PROTO);
    assert_null(back);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* OpenSSL itself refuses version 1 without more primes; the rest is
     * kmsd's check. */
    if (v > 1 && !strstr(e.msg, "version"))
        fail_msg("fmt %u version 0x%02x: %s", fmt, v, e.msg);
    der->data[at] = keep;
    assert_int_equal(crypto_pkey_load(fmt, true, der->data, der->len, &back, &e), 0);
    EVP_PKEY_free(back);
}

static size_t version_at(const kms_secret_t *outer, const kms_secret_t *pkcs1)
{
    /* PKCS#1: SEQUENCE (30 82 LL LL), then INTEGER version (02 01 VV). */
    for (size_t i = 0; i + pkcs1->len <= outer->len; i++)
        if (memcmp(outer->data + i, pkcs1->data, pkcs1->len) == 0) {
            assert_memory_equal(outer->data + i + 4, "\x02\x01", 2);
            return i + 6;
        }
    fail_msg("no RSAPrivateKey inside");
    return 0;
}

static void test_rsa_private_key_version(void **state)
{
    (void)state;
    for (int primes = 2; primes <= 3; primes++) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        EVP_PKEY *k = NULL;
        kms_secret_t *p1 = NULL, *p8 = NULL;
        kms_error_t e = {0};
        assert_non_null(c);
        assert_int_equal(EVP_PKEY_keygen_init(c), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(c, 2048), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_primes(c, primes), 1);
        assert_int_equal(EVP_PKEY_keygen(c, &k), 1);
        assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &p1, &e), 0);
        assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_8, true, &p8, &e), 0);
        uint8_t right = primes == 2 ? 0 : 1;
        size_t at1 = version_at(p1, p1), at8 = version_at(p8, p1);
        assert_int_equal(p1->data[at1], right);
        expect_version_refused(KMIP_KEY_FORMAT_TYPE_PKCS_1, p1, at1, 0xb1);
        expect_version_refused(KMIP_KEY_FORMAT_TYPE_PKCS_1, p1, at1, (uint8_t)(1 - right));
        expect_version_refused(KMIP_KEY_FORMAT_TYPE_PKCS_8, p8, at8, 0xb1);
        expect_version_refused(KMIP_KEY_FORMAT_TYPE_PKCS_8, p8, at8, (uint8_t)(1 - right));
        kms_secret_free(p1);
        kms_secret_free(p8);
        EVP_PKEY_free(k);
        EVP_PKEY_CTX_free(c);
    }
}

/* A key RFC 8017 allows with more than two primes loads and is stored,
 * but the Transparent RSA Private Key holds only P and Q: Get in that
 * format is Key Format Type Not Supported rather than components that do
 * not form the key. The DER forms still work. */
static void test_multi_prime_rsa(void **state)
{
    (void)state;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *k = NULL, *back = NULL;
    kms_secret_t *der = NULL, *s = NULL;
    crypto_material_t d;
    kms_error_t e = {0};

    assert_non_null(c);
    assert_int_equal(EVP_PKEY_keygen_init(c), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(c, 2048), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_primes(c, 3), 1);
    assert_int_equal(EVP_PKEY_keygen(c, &k), 1);
    assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_8, true, &der, &e), 0);
    ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_8,
                                  der->data, der->len, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, NULL);
    assert_int_equal(crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e),
                     0);
    assert_null(build(&d, s, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, NULL, KMS_ERR_NOTSUP,
                      &e));
    assert_int_equal(e.code, KMS_ERR_NOTSUP);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
    assert_non_null(strstr(e.msg, "multi-prime"));
    ttlv_item_t *g = build(&d, s, KMIP_KEY_FORMAT_TYPE_PKCS_1, NULL, 0, &e);
    ttlv_item_t *km = ttlv_find(ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE),
                                KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_1, true, km->v.bytes.ptr,
                                      km->v.bytes.len, &back, &e),
                     0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    /* Its public half has a Transparent form: only n and e. */
    EVP_PKEY_free(back);
    ttlv_item_t *kv = ttlv_new_struct(A, NULL, KMIP_TAG_KEY_VALUE);
    assert_int_equal(
        crypto_transparent_build(A, kv, k, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY, &e), 0);
    assert_transparent_is(kv, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY, k);
    kms_secret_free(s);
    kms_secret_free(der);
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(c);
}

/* The kek_cb of the refusals below: "kek-1" is KEK, "other" another key,
 * anything else is not found (the reason the caller gives is kept). */
static int kek_lookup(void *arg, const char *id, kms_secret_t **out, kms_error_t *e)
{
    static const uint8_t other[32] = {1};
    (void)arg;
    if (strcmp(id, "kek-1") == 0)
        *out = kms_secret_dup(KEK, sizeof(KEK));
    else if (strcmp(id, "other") == 0)
        *out = kms_secret_dup(other, sizeof(other));
    else
        return kms_error_set_reason(e, KMS_ERR_NOTFOUND, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                                    "wrapping key %s not found", id);
    return 0;
}

/* Register of `obj` is refused with `rc` and `reason`, the code recorded
 * in the error too, and no material handed out. */
static void assert_refused(const ttlv_item_t *obj, uint32_t type, int rc, uint32_t reason)
{
    kms_secret_t *s = NULL;
    crypto_material_t d;
    kms_error_t e = {0};
    assert_int_equal(crypto_object_parse(obj, type, kek_lookup, NULL, &s, &d, &e), rc);
    assert_int_equal(e.code, rc);
    assert_int_equal(e.reason, reason);
    assert_null(s);
}

/* Register of a wrapped Key Block: what unwraps, and every refusal with
 * its Result Reason and the code recorded with it. */
static void test_unwrap_register(void **state)
{
    (void)state;
    static const uint8_t k[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    kms_secret_t *s = kms_secret_dup(k, sizeof(k)), *s2 = NULL;
    crypto_material_t d = {.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
                           .stored_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
                           .registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
                           .alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1,
                           .bits = 160};
    crypto_material_t d2;
    kms_error_t e = {0};
    kms_secret_t kek = {.data = (uint8_t *)KEK, .len = sizeof(KEK)};
    crypto_wrap_t w = {.key_id = "kek-1",
                       .kek = &kek,
                       .block_mode = KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING,
                       .encoding = KMIP_ENCODING_OPTION_NO_ENCODING};
    /* RFC 5649 with No Encoding: the 20 raw bytes are what is wrapped. */
    ttlv_item_t *g = build(&d, s, 0, &w, 0, &e);
    ttlv_item_t *kb = ttlv_find(g, KMIP_TAG_KEY_BLOCK);
    ttlv_item_t *kwd = ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA);
    assert_int_equal(ttlv_u32(ttlv_find(kwd, KMIP_TAG_ENCODING_OPTION)),
                     KMIP_ENCODING_OPTION_NO_ENCODING);
    assert_int_equal(ttlv_find(kb, KMIP_TAG_KEY_VALUE)->v.bytes.len, 32); /* 24 padded + 8 */
    assert_int_equal(
        crypto_object_parse(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, kek_lookup, NULL, &s2, &d2, &e), 0);
    assert_int_equal(s2->len, sizeof(k));
    assert_memory_equal(s2->data, k, sizeof(k));
    assert_int_equal(d2.alg, KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1);
    kms_secret_free(s2);

    /* The caller's refusal (and its reason) comes back as it was given. */
    ttlv_item_t *uid = ttlv_find(ttlv_find(kwd, KMIP_TAG_ENCRYPTION_KEY_INFORMATION),
                                 KMIP_TAG_UNIQUE_IDENTIFIER);
    uid->v.bytes.ptr = (const uint8_t *)"missing";
    uid->v.bytes.len = 7;
    assert_refused(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMS_ERR_NOTFOUND,
                   KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Another key fails the integrity check: Cryptographic Failure. */
    uid->v.bytes.ptr = (const uint8_t *)"other";
    uid->v.bytes.len = 5;
    assert_refused(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMS_ERR_CRYPTO,
                   KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    /* Only AES key wrap modes are read. */
    uid->v.bytes.ptr = (const uint8_t *)"kek-1";
    ttlv_item_t *bcm = ttlv_find(ttlv_find(ttlv_find(kwd, KMIP_TAG_ENCRYPTION_KEY_INFORMATION),
                                           KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                                 KMIP_TAG_BLOCK_CIPHER_MODE);
    bcm->v.i32 = KMIP_BLOCK_CIPHER_MODE_CBC;
    assert_refused(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMS_ERR_NOTSUP,
                   KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    bcm->v.i32 = KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING;
    /* MAC/sign wrapping is not implemented. */
    ttlv_item_t *mac = ttlv_new_struct(A, kwd, KMIP_TAG_MAC_SIGNATURE_KEY_INFORMATION);
    assert_refused(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMS_ERR_NOTSUP,
                   KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    ttlv_remove(mac);
    /* Key Wrapping Data around a Key Value that is not a Byte String. */
    ttlv_item_t *kv = ttlv_find(kb, KMIP_TAG_KEY_VALUE);
    ttlv_remove(kv);
    ttlv_item_t *plain_kv = ttlv_new_struct(A, NULL, KMIP_TAG_KEY_VALUE);
    ttlv_new_bytes(A, plain_kv, KMIP_TAG_KEY_MATERIAL, k, sizeof(k));
    ttlv_append(kb, plain_kv);
    assert_refused(g, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMS_ERR_PROTO,
                   KMIP_RESULT_REASON_INVALID_FIELD);
    kms_secret_free(s);
}

/* EC private keys as clients send them: compressed public point, no
 * public point at all, explicit curve parameters. Each is accepted as the
 * named curve, and the Transparent form gives back the same key. */
static void test_ec_key_forms(void **state)
{
    (void)state;
    static const struct {
        const char *param, *value;
    } forms[] = {
        {OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"},
        {OSSL_PKEY_PARAM_EC_ENCODING, "explicit"},
        {NULL, NULL}, /* without the public key */
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(forms); i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
        kms_secret_t *der = NULL, *s = NULL;
        crypto_material_t d;
        kms_error_t e = {0};
        ttlv_item_t *kv;
        assert_non_null(k);
        if (forms[i].param)
            assert_int_equal(
                EVP_PKEY_set_utf8_string_param(k, forms[i].param, forms[i].value), 1);
        else
            assert_int_equal(EVP_PKEY_set_int_param(k, OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, 0), 1);
        assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY, true, &der, &e),
                         0);
        ttlv_item_t *o = keyblock_obj(KMIP_OBJECT_TYPE_PRIVATE_KEY,
                                      KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY, der->data, der->len, 0,
                                      0, NULL);
        assert_int_equal(
            crypto_object_parse(o, KMIP_OBJECT_TYPE_PRIVATE_KEY, NULL, NULL, &s, &d, &e), 0);
        assert_int_equal(d.curve, KMIP_RECOMMENDED_CURVE_P_256);
        assert_int_equal(d.bits, 256);
        assert_int_equal(d.alg, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA);
        ttlv_item_t *g = build(&d, s, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY, NULL, 0,
                               &e);
        kv = ttlv_find(ttlv_find(g, KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE);
        assert_transparent_is(kv, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY, k);
        kms_secret_free(s);
        kms_secret_free(der);
        EVP_PKEY_free(k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_symmetric_formats, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_transparent_register, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_inconsistent_rsa_refused, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_digest_value, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_wrap_ttlv_encoding, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_secret_and_template, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_parse_mutations, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_multi_prime_rsa, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_rsa_private_key_version, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_unwrap_register, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_ec_key_forms, each_setup, each_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
