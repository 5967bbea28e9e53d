/*
 * tests/unit/test_kmip_formats.c: key formats, algorithms and digests
 * through kmip_handle() on a real store and keyring: the Digest of a key in
 * the format the client registered it in (the values of KMIP 1.1 test case
 * 18.1, byte for byte), symmetric algorithms kmsd does not compute with
 * (created and registered, served back), a 512-bit key registered under
 * AES, EC keys on secp256k1 and Brainpool curves in PKCS#8 and SEC1 (RFC
 * 5915) form, a certificate with an EC key and its serial number bytes,
 * and the operator's key policy (interop / nist).
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/crypto.h"
#include "tests/unit/test_kmip_env.h"

/* Register a key block; returns the batch item. */
static ttlv_item_t *reg_key(kenv_t *e, uint32_t type, uint32_t fmt, ttlv_item_t *km, uint32_t alg,
                            int32_t bits)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, type);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_int(e, ta, "Cryptographic Usage Mask",
                type == KMIP_OBJECT_TYPE_PRIVATE_KEY ? KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN : 12);
    ttlv_item_t *obj = ttlv_new_struct(e->a, p, crypto_object_tag(type));
    ttlv_item_t *kb = ttlv_new_struct(e->a, obj, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(e->a, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    ttlv_item_t *kv = ttlv_new_struct(e->a, kb, KMIP_TAG_KEY_VALUE);
    ttlv_append(kv, km);
    if (alg)
        ttlv_new_enum(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg);
    if (bits)
        ttlv_new_int(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, bits);
    return rs_item(kenv_call(e, m), 0);
}

static ttlv_item_t *km_bytes(kenv_t *e, const uint8_t *p, size_t n)
{
    return ttlv_new_bytes(e->a, NULL, KMIP_TAG_KEY_MATERIAL, p, n);
}

/* The Key Block of a successful Get of `id` in `fmt` (0 = as registered). */
static ttlv_item_t *get_kb(kenv_t *e, const char *id, uint32_t fmt)
{
    ttlv_item_t *bi = k_get(e, id, fmt);
    assert_ok(bi);
    ttlv_item_t *pl = rs_payload(bi);
    for (ttlv_item_t *c = pl->first; c; c = c->next)
        if (c->type == TTLV_STRUCTURE && ttlv_find(c, KMIP_TAG_KEY_BLOCK))
            return ttlv_find(c, KMIP_TAG_KEY_BLOCK);
    fail_msg("no Key Block in Get of %s", id);
    return NULL;
}

static void digest_is(kenv_t *e, const char *id, const char *hex, uint32_t fmt)
{
    ttlv_item_t *d = k_attr(e, id, "Digest");
    ttlv_item_t *dv = ttlv_find(d, KMIP_TAG_DIGEST_VALUE);
    uint8_t *want = NULL;
    size_t n = 0;
    assert_int_equal(kms_hex_decode(hex, strlen(hex), &want, &n), 0);
    assert_int_equal(dv->v.bytes.len, n);
    assert_memory_equal(dv->v.bytes.ptr, want, n);
    free(want);
    assert_int_equal(ttlv_u32(ttlv_find(d, KMIP_TAG_HASHING_ALGORITHM)),
                     KMIP_HASHING_ALGORITHM_SHA_256);
    assert_int_equal(ttlv_u32(ttlv_find(d, KMIP_TAG_KEY_FORMAT_TYPE)), fmt);
}

/* KMIP 1.1 test case 18.1: the same AES key registered Raw and as a
 * Transparent Symmetric Key; the document's Digest Values. */
static void test_digest_registered_format(void **state)
{
    kenv_t *e = *state;
    static const char *hex = "0000111122223333444455556666777788889999AAAABBBBCCCCDDDDEEEEFFFF";
    uint8_t *k = NULL;
    size_t n = 0;
    assert_int_equal(kms_hex_decode(hex, strlen(hex), &k, &n), 0);
    ttlv_item_t *bi = reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                              km_bytes(e, k, n), KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256);
    assert_ok(bi);
    digest_is(e, rs_uid(bi), "6C064FE051ADD11EDC07727B594EB48711DF843E08445BBA2CD786BC16BC58E8",
              KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_item_t *km = ttlv_new_struct(e->a, NULL, KMIP_TAG_KEY_MATERIAL);
    ttlv_new_bytes(e->a, km, KMIP_TAG_KEY, k, n);
    bi = reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
                 KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY, km,
                 KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256);
    assert_ok(bi);
    const char *tid = kms_arena_strdup(e->a, rs_uid(bi));
    digest_is(e, tid, "499CE96FF6F5E19FE9FE7A2FE4C3E92B88DB0001A4E8DF28D9966856B6C4B87C",
              KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY);
    /* Get without a Key Format Type answers in the registered format. */
    ttlv_item_t *kb = get_kb(e, tid, 0);
    assert_int_equal(ttlv_u32(ttlv_find(kb, KMIP_TAG_KEY_FORMAT_TYPE)),
                     KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY);
    free(k);
    /* A created key: the Raw bytes (the format Get answers in). */
    bi = k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    assert_ok(bi);
    const char *cid = kms_arena_strdup(e->a, rs_uid(bi));
    kb = get_kb(e, cid, 0);
    ttlv_item_t *raw = ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL);
    uint8_t dg[32];
    char dhex[65];
    crypto_sha256(raw->v.bytes.ptr, raw->v.bytes.len, dg);
    for (int i = 0; i < 32; i++)
        snprintf(dhex + 2 * i, 3, "%02X", dg[i]);
    digest_is(e, cid, dhex, KMIP_KEY_FORMAT_TYPE_RAW);
}

/* A key store holds keys of ciphers it does not run. */
static void test_other_symmetric_algorithms(void **state)
{
    kenv_t *e = *state;
    static const struct { uint32_t alg; int32_t bits; size_t bytes; } ok[] = {
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_SKIPJACK, 80, 10},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH, 128, 16},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_CAMELLIA, 256, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_TWOFISH, 192, 24},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_IDEA, 128, 16},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_CHACHA20, 256, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 512, 64}, /* AES-256-XTS */
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ok); i++) {
        ttlv_item_t *bi = k_create(e, ok[i].alg, ok[i].bits, 12, NULL);
        assert_ok(bi);
        ttlv_item_t *kb = get_kb(e, rs_uid(bi), 0);
        assert_int_equal(ttlv_u32(ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM)), ok[i].alg);
        assert_int_equal(ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32, ok[i].bits);
        assert_int_equal(
            ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL)->v.bytes.len,
            ok[i].bytes);
    }
    /* Lengths the algorithm does not define are Invalid Field. */
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_SKIPJACK, 128, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 384, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Register: the material is the key (PyKMIP's server accepts the same):
     * a 512-bit HMAC or derivation key under AES, a Blowfish key of 56
     * bytes; a Cryptographic Length that contradicts it is refused. */
    uint8_t k[64];
    for (size_t i = 0; i < sizeof(k); i++)
        k[i] = (uint8_t)(i * 7 + 1);
    ttlv_item_t *bi = reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                              km_bytes(e, k, 64), KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 512);
    assert_ok(bi);
    ttlv_item_t *kb = get_kb(e, rs_uid(bi), 0);
    ttlv_item_t *got = ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(got->v.bytes.len, 64);
    assert_memory_equal(got->v.bytes.ptr, k, 64);
    assert_int_equal(ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32, 512);
    assert_ok(reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                      km_bytes(e, k, 56), KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH, 448));
    assert_fail(reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                        km_bytes(e, k, 64), KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256),
                KMIP_RESULT_REASON_INVALID_FIELD);
}

/* DER of `pk` as `fmt` (PKCS#8, EC Private Key or X.509) into the arena. */
static ttlv_item_t *km_pkey(kenv_t *e, EVP_PKEY *pk, uint32_t fmt, bool priv)
{
    kms_secret_t *der = NULL;
    kms_error_t err = {0};
    assert_int_equal(crypto_pkey_export(pk, fmt, priv, &der, &err), 0);
    ttlv_item_t *km = km_bytes(e, der->data, der->len);
    kms_secret_free(der);
    return km;
}

/* EC keys beyond the NIST curves, in PKCS#8 and SEC1 form. */
static void test_ec_curves_and_formats(void **state)
{
    kenv_t *e = *state;
    static const struct { const char *group; uint32_t curve; int32_t bits; } cs[] = {
        {"secp256k1", KMIP_RECOMMENDED_CURVE_SECP256K1, 256},
        {"brainpoolP384r1", KMIP_RECOMMENDED_CURVE_BRAINPOOLP384R1, 384},
        {"brainpoolP256t1", KMIP_RECOMMENDED_CURVE_BRAINPOOLP256T1, 256},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cs); i++) {
        EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", cs[i].group);
        assert_non_null(pk);
        static const uint32_t fmts[] = {KMIP_KEY_FORMAT_TYPE_PKCS_8,
                                        KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY};
        for (size_t f = 0; f < KMS_ARRAY_SIZE(fmts); f++) {
            ttlv_item_t *bi = reg_key(e, KMIP_OBJECT_TYPE_PRIVATE_KEY, fmts[f],
                                      km_pkey(e, pk, fmts[f], true),
                                      KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0);
            assert_ok(bi);
            const char *id = kms_arena_strdup(e->a, rs_uid(bi));
            assert_int_equal(k_attr(e, id, "Cryptographic Length")->v.i32, cs[i].bits);
            ttlv_item_t *kb = get_kb(e, id, 0);
            assert_int_equal(ttlv_u32(ttlv_find(kb, KMIP_TAG_KEY_FORMAT_TYPE)), fmts[f]);
            /* ...and in the other form, and transparent with its curve. */
            kb = get_kb(e, id, fmts[1 - f]);
            assert_int_equal(ttlv_u32(ttlv_find(kb, KMIP_TAG_KEY_FORMAT_TYPE)), fmts[1 - f]);
            kb = get_kb(e, id, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY);
            ttlv_item_t *km = ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL);
            assert_int_equal(ttlv_u32(ttlv_find(km, KMIP_TAG_RECOMMENDED_CURVE)), cs[i].curve);
        }
        EVP_PKEY_free(pk);
    }
    /* Create Key Pair on secp256k1 (Cryptographic Domain Parameters). */
    ttlv_item_t *m = rq_msg(e, 1, 2);
    rq_create_pair(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, KMIP_RECOMMENDED_CURVE_SECP256K1);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *pub = ttlv_find(rs_payload(bi), KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER);
    ttlv_item_t *kb = get_kb(e, ttlv_text(pub), KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY);
    ttlv_item_t *km = ttlv_find(ttlv_find(kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(ttlv_u32(ttlv_find(km, KMIP_TAG_RECOMMENDED_CURVE)),
                     KMIP_RECOMMENDED_CURVE_SECP256K1);
}

/* A self-signed certificate for an EC key with serial number `serial`. */
static int cert_der(EVP_PKEY *pk, const uint8_t *serial, size_t slen, uint8_t **der_out)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_bin2bn(serial, (int)slen, NULL);
    X509_NAME *n = X509_NAME_new();
    X509_set_version(x, 2);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"ec test", -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    int len = i2d_X509(x, der_out);
    X509_NAME_free(n);
    BN_free(bn);
    X509_free(x);
    return len;
}

static void test_ec_certificate(void **state)
{
    kenv_t *e = *state;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "brainpoolP256r1");
    static const uint8_t serial[] = {0x80, 0x01, 0x02}; /* top bit set: DER adds a 00 */
    uint8_t *der = NULL;
    int len = cert_der(pk, serial, sizeof(serial), &der);
    assert_true(len > 0);
    ttlv_item_t *m = rq_msg(e, 1, 2);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_CERTIFICATE);
    ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *c = ttlv_new_struct(e->a, p, KMIP_TAG_CERTIFICATE);
    ttlv_new_enum(e->a, c, KMIP_TAG_CERTIFICATE_TYPE, KMIP_CERTIFICATE_TYPE_X_509);
    ttlv_new_bytes(e->a, c, KMIP_TAG_CERTIFICATE_VALUE, der, (size_t)len);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    const char *id = kms_arena_strdup(e->a, rs_uid(bi));
    assert_int_equal(ttlv_u32(k_attr(e, id, "Cryptographic Algorithm")),
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA);
    assert_int_equal(k_attr(e, id, "Cryptographic Length")->v.i32, 256);
    assert_int_equal(ttlv_u32(k_attr(e, id, "Digital Signature Algorithm")),
                     KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256);
    ttlv_item_t *xi = k_attr(e, id, "X.509 Certificate Identifier");
    ttlv_item_t *sn = ttlv_find(xi, KMIP_TAG_CERTIFICATE_SERIAL_NUMBER);
    static const uint8_t want[] = {0x00, 0x80, 0x01, 0x02};
    assert_int_equal(sn->v.bytes.len, sizeof(want));
    assert_memory_equal(sn->v.bytes.ptr, want, sizeof(want));
    /* The KMIP 1.0 text form keeps the decimal the 1.1 test cases show. */
    ttlv_item_t *ci = k_attr(e, id, "Certificate Identifier");
    assert_string_equal(ttlv_text(ttlv_find(ci, KMIP_TAG_SERIAL_NUMBER)), "8388866");
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
}

/* The operator's key policy: "interop" (default) takes RSA-1024 and
 * two-key Triple DES, which standard clients and the KMIP test cases use;
 * "nist" refuses them at Create, Create Key Pair and Register, with a
 * message naming the policy. */
static ttlv_item_t *create_pair(kenv_t *e, uint32_t alg, int32_t bits, uint32_t curve)
{
    ttlv_item_t *m = rq_msg(e, 1, 2);
    rq_create_pair(e, m, alg, bits, curve);
    return rs_item(kenv_call(e, m), 0);
}

static void test_key_policy(void **state)
{
    kenv_t *e = *state;
    uint8_t k16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    /* interop (the default) */
    assert_ok(create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 1024, 0));
    assert_ok(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 112, 12, NULL));
    assert_ok(create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                          KMIP_RECOMMENDED_CURVE_SECP160R1));
    /* nist */
    kmip_server_free(e->srv);
    kmip_config_t kc = {.store = e->store, .keyring = e->kr, .access = KMIP_ACCESS_OPEN,
                        .vendor = "kmsd", .version = "test",
                        .key_policy = KMIP_KEY_POLICY_NIST};
    assert_int_equal(kmip_server_new(&kc, &e->srv), 0);
    ttlv_item_t *bi = create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 1024, 0);
    assert_fail(bi, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_non_null(strstr(ttlv_text(ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE)), "kmip.key_policy"));
    assert_ok(create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0));
    assert_fail(create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                            KMIP_RECOMMENDED_CURVE_SECP160R1),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_ok(create_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                          KMIP_RECOMMENDED_CURVE_BRAINPOOLP256R1));
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 112, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 128, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_ok(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 192, 12, NULL));
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_SKIPJACK, 80, 12, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_ok(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL));
    /* Register follows the same policy: a two-key 3DES key is refused. */
    assert_fail(reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                        km_bytes(e, k16, 16), KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 0),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_ok(reg_key(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                      km_bytes(e, k16, 16), KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_digest_registered_format, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_other_symmetric_algorithms, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_ec_curves_and_formats, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_ec_certificate, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_key_policy, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
