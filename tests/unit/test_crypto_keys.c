/* tests/unit/test_crypto_keys.c: crypto/ through crypto/crypto.h:
 * symmetric parameters and generation, key pair generation (and stopping
 * an RSA generation midway), RSA/EC format conversions (checked by
 * signing with one form and verifying with another through OpenSSL), AES
 * key wrap against RFC 3394 / RFC 5649 vectors, and the SHA-256 digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "crypto/crypto.h"

static uint8_t *hex(const char *s, size_t *n)
{
    uint8_t *p = NULL;
    assert_int_equal(kms_hex_decode(s, strlen(s), &p, n), 0);
    return p;
}

/* ------------------------------------------------------------ symmetric */
static void test_sym_check(void **state)
{
    (void)state;
    kms_error_t e = {0};
    size_t n = 0;
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, &n, &e), 0);
    assert_int_equal(n, 16);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 192, &n, &e), 0);
    assert_int_equal(n, 24);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, &n, &e), 0);
    assert_int_equal(n, 32);
    /* AES-256-XTS: two AES-256 keys. */
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 512, &n, &e), 0);
    assert_int_equal(n, 64);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 384, &n, &e),
                     KMS_ERR_INVAL);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_non_null(strstr(e.msg, "AES"));
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 0, &n, &e), KMS_ERR_INVAL);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 168, &n, &e), 0);
    assert_int_equal(n, 24);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 192, &n, &e), 0);
    assert_int_equal(n, 24);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 112, &n, &e), 0);
    assert_int_equal(n, 16);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 64, &n, &e),
                     KMS_ERR_INVAL);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 256, &n, &e), 0);
    assert_int_equal(n, 32);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512, 12, &n, &e),
                     KMS_ERR_INVAL);
    assert_int_equal(crypto_sym_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, &n, &e),
                     KMS_ERR_NOTSUP);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_int_equal(crypto_sym_bits(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 24), 168);
    assert_int_equal(crypto_sym_bits(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 32), 256);
    assert_int_equal(crypto_sym_bits(KMIP_CRYPTOGRAPHIC_ALGORITHM_DES, 8), 56);
}

/* Algorithms OpenSSL need not compute with still have their key sizes. */
static void test_sym_other_algorithms(void **state)
{
    (void)state;
    static const struct { uint32_t alg; int32_t ok, bad; size_t bytes; } cases[] = {
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_SKIPJACK, 80, 128, 10},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH, 448, 456, 56},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH, 32, 24, 4},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_CAMELLIA, 192, 160, 24},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_TWOFISH, 256, 512, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_IDEA, 128, 64, 16},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_CAST5, 128, 136, 16},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_RC4, 40, 32, 5},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_DES, 64, 128, 8},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_CHACHA20, 256, 128, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_256, 256, 252, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_MD5, 128, 0, 16},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cases); i++) {
        kms_error_t e = {0};
        kms_secret_t *k = NULL;
        size_t n = 0;
        assert_true(crypto_sym_known(cases[i].alg));
        assert_int_equal(crypto_sym_check(cases[i].alg, cases[i].ok, &n, &e), 0);
        assert_int_equal(n, cases[i].bytes);
        assert_int_equal(crypto_sym_check(cases[i].alg, cases[i].bad, &n, &e), KMS_ERR_INVAL);
        assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
        assert_int_equal(crypto_sym_generate(cases[i].alg, cases[i].ok, &k, &e), 0);
        assert_int_equal(k->len, cases[i].bytes);
        kms_secret_free(k);
    }
    assert_false(crypto_sym_known(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA));
    assert_true(crypto_alg_is_hmac(KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_512));
    assert_false(crypto_alg_is_hmac(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES));
}

/* Every KMIP Recommended Curve OpenSSL offers: the table's field size is
 * OpenSSL's, a key pair is generated and its parameters read back. */
static void test_all_curves(void **state)
{
    (void)state;
    uint32_t cs[128];
    size_t n = crypto_curves(cs, KMS_ARRAY_SIZE(cs));
    bool k1 = false, bp = false;
    assert_true(n >= 40); /* the prime, SEC 2 and Brainpool curves at least */
    for (size_t i = 0; i < n; i++) {
        kms_error_t e = {0};
        int32_t bits = 0, b2 = 0;
        uint32_t c2 = 0, alg = 0;
        const char *g = crypto_curve_group(cs[i], &bits);
        assert_non_null(g);
        EC_GROUP *grp = EC_GROUP_new_by_curve_name(OBJ_sn2nid(g));
        assert_non_null(grp);
        assert_int_equal(EC_GROUP_get_degree(grp), bits);
        EC_GROUP_free(grp);
        k1 |= cs[i] == KMIP_RECOMMENDED_CURVE_SECP256K1;
        bp |= cs[i] == KMIP_RECOMMENDED_CURVE_BRAINPOOLP512T1;
        kms_secret_t *priv = NULL, *pub = NULL;
        assert_int_equal(crypto_keypair_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, cs[i], &priv,
                                                 &pub, &e),
                         0);
        EVP_PKEY *k = NULL;
        assert_int_equal(
            crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, priv->data, priv->len, &k, &e), 0);
        assert_int_equal(crypto_pkey_params(k, &alg, &b2, &c2, &e), 0);
        assert_int_equal(c2, cs[i]);
        assert_int_equal(b2, bits);
        EVP_PKEY_free(k);
        kms_secret_free(priv);
        kms_secret_free(pub);
    }
    assert_true(k1);
    assert_true(bp);
}

static int popcount8(uint8_t b)
{
    int c = 0;
    for (; b; b >>= 1)
        c += b & 1;
    return c;
}

static void test_sym_generate(void **state)
{
    (void)state;
    kms_secret_t *a = NULL, *b = NULL, *d = NULL;
    kms_error_t e = {0};
    assert_int_equal(crypto_sym_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, &a, &e), 0);
    assert_int_equal(crypto_sym_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, &b, &e), 0);
    assert_int_equal(a->len, 32);
    assert_memory_not_equal(a->data, b->data, 32);
    assert_int_equal(crypto_sym_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 168, &d, &e), 0);
    assert_int_equal(d->len, 24);
    for (size_t i = 0; i < d->len; i++)
        assert_int_equal(popcount8(d->data[i]) % 2, 1); /* odd parity */
    /* The key works as a 3DES key in OpenSSL. */
    {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        assert_int_equal(EVP_EncryptInit_ex(c, EVP_des_ede3_ecb(), NULL, d->data, NULL), 1);
        EVP_CIPHER_CTX_free(c);
    }
    kms_secret_free(a);
    kms_secret_free(b);
    kms_secret_free(d);
    a = (kms_secret_t *)1;
    assert_int_equal(crypto_sym_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 100, &a, &e),
                     KMS_ERR_INVAL);
    assert_null(a);
}

/* ------------------------------------------------------------ key pairs */
static void sign_verify(EVP_PKEY *priv, EVP_PKEY *pub)
{
    const char msg[] = "kmsd sign/verify across key formats";
    uint8_t sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, priv), 1);
    assert_int_equal(EVP_DigestSign(m, sig, &siglen, (const uint8_t *)msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(m, sig, siglen, (const uint8_t *)msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(m);
    /* And a wrong message does not verify. */
    m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_not_equal(EVP_DigestVerify(m, sig, siglen, (const uint8_t *)"x", 1), 1);
    EVP_MD_CTX_free(m);
}

static void test_keypair_check(void **state)
{
    (void)state;
    kms_error_t e = {0};
    uint32_t c = 0;
    int32_t b = 0;
    /* Sizes: what the algorithm allows; the operator's policy is kmip/'s. */
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 1024, 0, &c, &b, &e),
                     0);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 512, 0, &c, &b, &e),
                     KMS_ERR_INVAL);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 3072, 0, &c, &b, &e),
                     0);
    assert_int_equal(b, 3072);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                                          KMIP_RECOMMENDED_CURVE_P_384, &c, &b, &e),
                     0);
    assert_int_equal(b, 384);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, 0, &c, &b, &e),
                     0);
    assert_int_equal(c, KMIP_RECOMMENDED_CURVE_P_256);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 384,
                                          KMIP_RECOMMENDED_CURVE_P_256, &c, &b, &e),
                     KMS_ERR_INVAL);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                                          KMIP_RECOMMENDED_CURVE_BRAINPOOLP256R1, &c, &b, &e),
                     0);
    assert_int_equal(b, 256);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, 0x7fff, &c, &b, &e),
                     KMS_ERR_NOTSUP);
    assert_int_equal(crypto_keypair_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0, &c, &b, &e),
                     KMS_ERR_NOTSUP);
}

static void gen_and_check(uint32_t alg, int32_t bits, uint32_t curve, int want_id, int want_bits)
{
    kms_secret_t *priv = NULL, *pub = NULL;
    EVP_PKEY *k = NULL, *p = NULL;
    kms_error_t e = {0};
    uint32_t a2, c2;
    int32_t b2;
    const unsigned char *q;

    assert_int_equal(crypto_keypair_generate(alg, bits, curve, &priv, &pub, &e), 0);
    /* Independent parse of the outputs with OpenSSL directly. */
    q = priv->data;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)priv->len);
    assert_non_null(p8);
    assert_ptr_equal(q, priv->data + priv->len);
    k = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    q = pub->data;
    p = d2i_PUBKEY(NULL, &q, (long)pub->len);
    assert_non_null(k);
    assert_non_null(p);
    assert_int_equal(EVP_PKEY_get_base_id(k), want_id);
    assert_int_equal(EVP_PKEY_get_bits(k), want_bits);
    assert_int_equal(EVP_PKEY_eq(k, p), 1);
    if (want_id == EVP_PKEY_RSA) {
        BIGNUM *ex = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(k, "e", &ex), 1);
        assert_true(BN_is_word(ex, 65537));
        BN_free(ex);
    }
    assert_int_equal(crypto_pkey_params(k, &a2, &b2, &c2, &e), 0);
    assert_int_equal(b2, want_bits);
    sign_verify(k, p);
    EVP_PKEY_free(k);
    EVP_PKEY_free(p);
    kms_secret_free(priv);
    kms_secret_free(pub);
}

static void test_keypair_generate(void **state)
{
    (void)state;
    gen_and_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, EVP_PKEY_RSA, 2048);
    gen_and_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, KMIP_RECOMMENDED_CURVE_P_256, EVP_PKEY_EC, 256);
    gen_and_check(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDH, 384, 0, EVP_PKEY_EC, 384);
}

/* --------------------------------------------------------- conversions */
/* Load, export in `fmt`, load that back. */
static EVP_PKEY *via(EVP_PKEY *k, uint32_t fmt, bool priv)
{
    kms_secret_t *der = NULL;
    EVP_PKEY *out = NULL;
    kms_error_t e = {0};
    assert_int_equal(crypto_pkey_export(k, fmt, priv, &der, &e), 0);
    assert_int_equal(crypto_pkey_load(fmt, priv, der->data, der->len, &out, &e), 0);
    kms_secret_free(der);
    return out;
}

static EVP_PKEY *via_transparent(EVP_PKEY *k, uint32_t fmt)
{
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_VALUE);
    kms_error_t e = {0};
    EVP_PKEY *out = NULL;
    kms_buf_t b;
    ttlv_item_t *dec = NULL;
    kms_error_t terr;

    assert_int_equal(crypto_transparent_build(a, root, k, fmt, &e), 0);
    /* Through the wire encoding and back, as a client would see it. */
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(ttlv_encode(root, &b), 0);
    assert_int_equal(ttlv_decode(b.data, b.len, NULL, a, &dec, &terr), 0);
    kms_buf_dispose_wipe(&b);
    /* Big Integers are multiples of 8 bytes with a clear sign bit. */
    for (ttlv_item_t *c = ttlv_find(dec, KMIP_TAG_KEY_MATERIAL)->first; c; c = c->next)
        if (c->type == TTLV_BIG_INTEGER) {
            assert_int_equal(c->v.bytes.len % 8, 0);
            assert_int_equal(c->v.bytes.ptr[0] & 0x80, 0);
        }
    assert_int_equal(crypto_transparent_parse(ttlv_find(dec, KMIP_TAG_KEY_MATERIAL), fmt, &out, &e),
                     0);
    kms_arena_free(a);
    return out;
}

/* The stop question of crypto_keypair_generate_until: answers "stop" from
 * its `after`th call on, and counts the calls. */
struct stopper {
    int calls, after;
};

static bool stop_after(void *arg)
{
    struct stopper *s = arg;
    return ++s->calls >= s->after;
}

static void test_keypair_generate_stops(void **state)
{
    (void)state;
    kms_secret_t *priv = NULL, *pub = NULL;
    kms_error_t e = {0};
    /* Asked at once (the first prime candidate), and stopped. */
    struct stopper s = {.after = 1};
    assert_int_equal(crypto_keypair_generate_until(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 4096, 0,
                                                   stop_after, &s, &priv, &pub, &e),
                     KMS_ERR_TIMEOUT);
    assert_null(priv);
    assert_null(pub);
    assert_int_equal(s.calls, 1);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_non_null(strstr(e.msg, "stopped"));
    /* A few candidates in: still stopped where it was asked. */
    s = (struct stopper){.after = 5};
    assert_int_equal(crypto_keypair_generate_until(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0,
                                                   stop_after, &s, &priv, &pub, &e),
                     KMS_ERR_TIMEOUT);
    assert_int_equal(s.calls, 5);
    /* Never stopping: a normal key pair, the question asked along the way. */
    s = (struct stopper){.after = 1 << 30};
    assert_int_equal(crypto_keypair_generate_until(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0,
                                                   stop_after, &s, &priv, &pub, &e),
                     0);
    assert_true(s.calls > 1);
    assert_non_null(priv);
    assert_non_null(pub);
    kms_secret_free(priv);
    kms_secret_free(pub);
    /* EC is not interrupted (milliseconds): the callback is not used. */
    s = (struct stopper){.after = 1};
    assert_int_equal(crypto_keypair_generate_until(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, 0,
                                                   stop_after, &s, &priv, &pub, &e),
                     0);
    assert_int_equal(s.calls, 0);
    kms_secret_free(priv);
    kms_secret_free(pub);
}

static void test_rsa_conversions(void **state)
{
    (void)state;
    kms_secret_t *priv = NULL, *pub = NULL;
    EVP_PKEY *k8 = NULL, *pub509 = NULL;
    kms_error_t e = {0};

    assert_int_equal(
        crypto_keypair_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, &priv, &pub, &e), 0);
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, priv->data, priv->len, &k8, &e), 0);
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_X_509, false, pub->data, pub->len, &pub509, &e), 0);
    /* PKCS#8 -> PKCS#1 -> Transparent -> PKCS#8, then sign. */
    EVP_PKEY *k1 = via(k8, KMIP_KEY_FORMAT_TYPE_PKCS_1, true);
    EVP_PKEY *kt = via_transparent(k1, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY);
    EVP_PKEY *k8b = via(kt, KMIP_KEY_FORMAT_TYPE_PKCS_8, true);
    /* Public: X.509 -> PKCS#1 -> Transparent -> X.509, then verify. */
    EVP_PKEY *p1 = via(pub509, KMIP_KEY_FORMAT_TYPE_PKCS_1, false);
    EVP_PKEY *pt = via_transparent(p1, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY);
    EVP_PKEY *p509b = via(pt, KMIP_KEY_FORMAT_TYPE_X_509, false);
    sign_verify(k8b, p509b);
    sign_verify(kt, pt);
    assert_int_equal(EVP_PKEY_eq(k8b, k8), 1);
    /* The re-exported PKCS#8 is byte-identical to the generated one. */
    {
        kms_secret_t *again = NULL;
        assert_int_equal(crypto_pkey_export(k8b, KMIP_KEY_FORMAT_TYPE_PKCS_8, true, &again, &e), 0);
        assert_int_equal(again->len, priv->len);
        assert_memory_equal(again->data, priv->data, priv->len);
        kms_secret_free(again);
    }
    /* The private key's public half is the public key. */
    {
        kms_secret_t *spki = NULL;
        assert_int_equal(crypto_pkey_export(k1, KMIP_KEY_FORMAT_TYPE_X_509, false, &spki, &e), 0);
        assert_int_equal(spki->len, pub->len);
        assert_memory_equal(spki->data, pub->data, pub->len);
        kms_secret_free(spki);
    }
    /* RSA has no EC Private Key form. */
    {
        kms_secret_t *x = NULL;
        assert_int_equal(crypto_pkey_export(k8, KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY, true, &x, &e),
                         KMS_ERR_NOTSUP);
        assert_int_equal(e.reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
    }
    EVP_PKEY *all[] = {k8, pub509, k1, kt, k8b, p1, pt, p509b};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(all); i++)
        EVP_PKEY_free(all[i]);
    kms_secret_free(priv);
    kms_secret_free(pub);
}

static void test_ec_conversions(void **state)
{
    (void)state;
    kms_secret_t *priv = NULL, *pub = NULL;
    EVP_PKEY *k8 = NULL, *p = NULL;
    kms_error_t e = {0};
    uint32_t alg, curve;
    int32_t bits;

    assert_int_equal(crypto_keypair_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0,
                                             KMIP_RECOMMENDED_CURVE_P_384, &priv, &pub, &e),
                     0);
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, priv->data, priv->len, &k8, &e), 0);
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_X_509, false, pub->data, pub->len, &p, &e), 0);
    assert_int_equal(crypto_pkey_params(k8, &alg, &bits, &curve, &e), 0);
    assert_int_equal(curve, KMIP_RECOMMENDED_CURVE_P_384);
    EVP_PKEY *kec = via(k8, KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY, true);
    EVP_PKEY *kt = via_transparent(kec, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY);
    EVP_PKEY *kt13 = via_transparent(k8, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY);
    EVP_PKEY *pt = via_transparent(p, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY);
    EVP_PKEY *pback = via(pt, KMIP_KEY_FORMAT_TYPE_X_509, false);
    sign_verify(kt, pback);
    sign_verify(kt13, pt);
    assert_int_equal(EVP_PKEY_eq(kt, k8), 1);
    /* PKCS#1 does not exist for EC. */
    {
        kms_secret_t *x = NULL;
        assert_int_equal(crypto_pkey_export(p, KMIP_KEY_FORMAT_TYPE_PKCS_1, false, &x, &e),
                         KMS_ERR_NOTSUP);
    }
    EVP_PKEY *all[] = {k8, p, kec, kt, kt13, pt, pback};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(all); i++)
        EVP_PKEY_free(all[i]);
    kms_secret_free(priv);
    kms_secret_free(pub);
}

static void test_transparent_invalid(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_error_t e = {0};
    EVP_PKEY *k = NULL;
    static const uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    /* An EC private key whose D is 0 is not a key. */
    ttlv_item_t *km = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_MATERIAL);
    ttlv_new_enum(a, km, KMIP_TAG_RECOMMENDED_CURVE, KMIP_RECOMMENDED_CURVE_P_256);
    static const uint8_t zero[8] = {0};
    ttlv_new_bigint(a, km, KMIP_TAG_D, zero, 8);
    assert_int_equal(
        crypto_transparent_parse(km, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY, &k, &e),
        KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* An RSA public key with a 64-bit "modulus". */
    km = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_MATERIAL);
    static const uint8_t n64[8] = {0x7f, 1, 2, 3, 4, 5, 6, 7};
    ttlv_new_bigint(a, km, KMIP_TAG_MODULUS, n64, 8);
    ttlv_new_bigint(a, km, KMIP_TAG_PUBLIC_EXPONENT, one, 8);
    assert_int_equal(
        crypto_transparent_parse(km, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY, &k, &e),
        KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_non_null(strstr(e.msg, "modulus"));
    assert_null(k);
    /* Missing components. */
    km = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_MATERIAL);
    assert_int_equal(
        crypto_transparent_parse(km, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, &k, &e),
        KMS_ERR_PROTO);
    assert_non_null(strstr(e.msg, "Modulus"));
    kms_arena_free(a);
}

static void test_pkey_load_invalid(void **state)
{
    (void)state;
    kms_secret_t *priv = NULL, *pub = NULL;
    kms_error_t e = {0};
    EVP_PKEY *k = NULL;
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, junk, sizeof(junk), &k, &e),
        KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_int_equal(
        crypto_keypair_generate(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, 0, &priv, &pub, &e), 0);
    /* Trailing garbage is refused. */
    uint8_t *longer = malloc(priv->len + 1);
    memcpy(longer, priv->data, priv->len);
    longer[priv->len] = 0;
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, longer, priv->len + 1, &k, &e),
        KMS_ERR_PROTO);
    /* A public key is not a private key. */
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, pub->data, pub->len, &k, &e),
        KMS_ERR_PROTO);
    /* EC has no PKCS#1 form. */
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_1, true, priv->data, priv->len, &k, &e),
        KMS_ERR_PROTO);
    assert_int_equal(crypto_cert_check(junk, sizeof(junk), &e), KMS_ERR_PROTO);
    free(longer);
    kms_secret_free(priv);
    kms_secret_free(pub);
}

/* ------------------------------------------------------------- key wrap */
static void wrap_vector(const char *kek_hex, const char *key_hex, const char *ct_hex, bool pad)
{
    size_t kl, pl, cl;
    uint8_t *kek = hex(kek_hex, &kl), *pt = hex(key_hex, &pl), *ct = hex(ct_hex, &cl);
    kms_buf_t out;
    kms_secret_t *back = NULL;

    kms_buf_init(&out, 4096);
    assert_int_equal(crypto_aes_wrap(kek, kl, pad, pt, pl, &out, NULL), 0);
    assert_int_equal(out.len, cl);
    assert_memory_equal(out.data, ct, cl);
    assert_int_equal(crypto_aes_unwrap(kek, kl, pad, ct, cl, &back, NULL), 0);
    assert_int_equal(back->len, pl);
    assert_memory_equal(back->data, pt, pl);
    kms_secret_free(back);
    /* One flipped bit fails the integrity check. */
    ct[cl / 2] ^= 0x01;
    back = NULL;
    assert_int_equal(crypto_aes_unwrap(kek, kl, pad, ct, cl, &back, NULL), KMS_ERR_CRYPTO);
    assert_null(back);
    kms_buf_dispose(&out);
    free(kek);
    free(pt);
    free(ct);
}

static void test_rfc3394(void **state)
{
    (void)state;
    /* RFC 3394 4.1: 128-bit KEK, 128-bit key data. */
    wrap_vector("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
                "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5", false);
    /* RFC 3394 4.3: 256-bit KEK, 128-bit key data. */
    wrap_vector("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
                "00112233445566778899AABBCCDDEEFF",
                "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7", false);
    /* RFC 3394 4.6: 256-bit KEK, 256-bit key data. */
    wrap_vector("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
                "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
                "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43B"
                "FB988B9B7A02DD21", false);
}

static void test_rfc5649(void **state)
{
    (void)state;
    /* RFC 5649 section 6: 192-bit KEK, 20 and 7 octets of key data. */
    wrap_vector("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", true);
    wrap_vector("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "466f7250617369",
                "afbeb0f07dfbf5419200f2ccb50bb24f", true);
}

static void test_wrap_invalid(void **state)
{
    (void)state;
    uint8_t kek[16] = {0}, data[20] = {0};
    kms_buf_t out;
    kms_buf_init(&out, 4096);
    /* KW needs multiples of 8 bytes, at least 16. */
    assert_int_equal(crypto_aes_wrap(kek, 16, false, data, 20, &out, NULL), KMS_ERR_INVAL);
    assert_int_equal(crypto_aes_wrap(kek, 16, false, data, 8, &out, NULL), KMS_ERR_INVAL);
    /* KEK sizes other than AES's are refused. */
    assert_int_equal(crypto_aes_wrap(kek, 15, true, data, 20, &out, NULL), KMS_ERR_INVAL);
    assert_int_equal(out.len, 0);
    kms_buf_dispose(&out);
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[32];
    size_t n;
    uint8_t *want = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &n);
    assert_int_equal(crypto_sha256((const uint8_t *)"abc", 3, d), 0);
    assert_memory_equal(d, want, 32);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sym_check),
        cmocka_unit_test(test_sym_other_algorithms),
        cmocka_unit_test(test_all_curves),
        cmocka_unit_test(test_sym_generate),
        cmocka_unit_test(test_keypair_check),
        cmocka_unit_test(test_keypair_generate),
        cmocka_unit_test(test_keypair_generate_stops),
        cmocka_unit_test(test_rsa_conversions),
        cmocka_unit_test(test_ec_conversions),
        cmocka_unit_test(test_transparent_invalid),
        cmocka_unit_test(test_pkey_load_invalid),
        cmocka_unit_test(test_rfc3394),
        cmocka_unit_test(test_rfc5649),
        cmocka_unit_test(test_wrap_invalid),
        cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
