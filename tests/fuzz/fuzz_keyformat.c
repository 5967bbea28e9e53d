/*
 * tests/fuzz/fuzz_keyformat.c: libFuzzer target for the key-format parsers
 * of crypto/ (crypto/crypto.h only).
 *
 * The first input byte picks what the rest is:
 *   0..4  DER of a key: PKCS#1 RSA private, PKCS#1 RSA public, PKCS#8,
 *         SEC1 (RFC 5915) EC private, X.509 SubjectPublicKeyInfo;
 *   5     DER of an X.509 certificate;
 *   6     TTLV of a Register object structure (Symmetric Key, Private Key,
 *         Public Key, Secret Data, Certificate, Opaque Object, Template),
 *         possibly wrapped with the test KEK below;
 *   7     a format byte, then TTLV of a Transparent Key Material structure;
 *   8     an algorithm byte, then the raw bytes of a symmetric key (or,
 *         with the high bit set, of Secret Data);
 *   9     a KEK byte, then AES key wrap output to unwrap.
 * What parses must round-trip: DER re-exports to the same bytes after one
 * normalisation; a parsed object is built for Get in every Key Format Type
 * that applies (and wrapped with the KEK, RFC 3394 and 5649, TTLV and No
 * Encoding), parsed again as a Register would, and must give the same
 * canonical stored bytes and description; unwrapped data wraps back to
 * the input. Every refusal must carry its code in the kms_error_t, and
 * everything is freed (secrets wiped) each time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/crypto.h"

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_keyformat: check failed: %s (line %d)\n", #c, __LINE__);  \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* A refusal recorded its own code (the kms_error_t convention). */
#define CHECK_REFUSAL(rc, err) CHECK((rc) < 0 && (err).code == (rc))

/* The key-encryption key a wrapped Key Block names as "kek" (32 bytes) or
 * "kek16" (its first 16 bytes). The corpus script wraps with the same. */
static const uint8_t KEK[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static int kek_lookup(void *arg, const char *key_id, kms_secret_t **kek_out, kms_error_t *err)
{
    size_t n = strcmp(key_id, "kek") == 0 ? 32 : strcmp(key_id, "kek16") == 0 ? 16 : 0;
    (void)arg;
    if (n == 0)
        return kms_error_set_reason(err, KMS_ERR_NOTFOUND, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                                    "no key %s", key_id);
    *kek_out = kms_secret_dup(KEK, n);
    return *kek_out ? 0 : kms_error_set(err, KMS_ERR_NOMEM, NULL);
}

static const uint32_t transparent_fmts[] = {
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PRIVATE_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PUBLIC_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECMQV_PRIVATE_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECMQV_PUBLIC_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY,
    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PUBLIC_KEY,
};

/* Key Format Types a Get may ask for, per Object Type (0 = as registered). */
static size_t formats_for(uint32_t type, const uint32_t **out)
{
    static const uint32_t sym[] = {0, KMIP_KEY_FORMAT_TYPE_RAW, KMIP_KEY_FORMAT_TYPE_OPAQUE,
                                   KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY,
                                   KMIP_KEY_FORMAT_TYPE_PKCS_8};
    static const uint32_t secret[] = {0, KMIP_KEY_FORMAT_TYPE_OPAQUE, KMIP_KEY_FORMAT_TYPE_RAW};
    static const uint32_t priv[] = {0,
                                    KMIP_KEY_FORMAT_TYPE_PKCS_1,
                                    KMIP_KEY_FORMAT_TYPE_PKCS_8,
                                    KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY,
                                    KMIP_KEY_FORMAT_TYPE_X_509,
                                    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY,
                                    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY,
                                    KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY};
    static const uint32_t pub[] = {0,
                                   KMIP_KEY_FORMAT_TYPE_PKCS_1,
                                   KMIP_KEY_FORMAT_TYPE_X_509,
                                   KMIP_KEY_FORMAT_TYPE_PKCS_8,
                                   KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY,
                                   KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PUBLIC_KEY,
                                   KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PUBLIC_KEY};
    static const uint32_t cert[] = {0, KMIP_KEY_FORMAT_TYPE_X_509, KMIP_KEY_FORMAT_TYPE_RAW};
    static const uint32_t other[] = {0, KMIP_KEY_FORMAT_TYPE_OPAQUE};
    switch (type) {
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY: *out = sym; return sizeof(sym) / sizeof(sym[0]);
    case KMIP_OBJECT_TYPE_SECRET_DATA: *out = secret; return sizeof(secret) / sizeof(secret[0]);
    case KMIP_OBJECT_TYPE_PRIVATE_KEY: *out = priv; return sizeof(priv) / sizeof(priv[0]);
    case KMIP_OBJECT_TYPE_PUBLIC_KEY: *out = pub; return sizeof(pub) / sizeof(pub[0]);
    case KMIP_OBJECT_TYPE_CERTIFICATE: *out = cert; return sizeof(cert) / sizeof(cert[0]);
    default: *out = other; return sizeof(other) / sizeof(other[0]);
    }
}

static bool has_key_block(uint32_t type)
{
    return type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY || type == KMIP_OBJECT_TYPE_SECRET_DATA ||
           type == KMIP_OBJECT_TYPE_PRIVATE_KEY || type == KMIP_OBJECT_TYPE_PUBLIC_KEY;
}

/* The same canonical material. Byte-equal, except for EC keys that went
 * through a Transparent form: the point comes back uncompressed (a private
 * key's is recomputed from D) where the client may have sent it
 * compressed. Then the keys must be equal, and so must private values. */
static void check_same_material(const crypto_material_t *d, const kms_secret_t *a,
                                const kms_secret_t *b, uint32_t via_fmt)
{
    bool priv = d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY;
    EVP_PKEY *ka = NULL, *kb = NULL;
    BIGNUM *pa = NULL, *pb = NULL;

    if (a->len == b->len && memcmp(a->data, b->data, a->len) == 0)
        return;
    if (!((priv || d->object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY) && crypto_alg_is_ec(d->alg) &&
          (crypto_fmt_is_transparent_priv(via_fmt) || crypto_fmt_is_transparent_pub(via_fmt)))) {
        fprintf(stderr, "fuzz_keyformat: stored material differs after a round trip through "
                        "format %u (object type %u, %zu vs %zu bytes)\n",
                (unsigned)via_fmt, (unsigned)d->object_type, a->len, b->len);
        abort();
    }
    CHECK(crypto_pkey_load(d->stored_fmt, priv, a->data, a->len, &ka, NULL) == 0);
    CHECK(crypto_pkey_load(d->stored_fmt, priv, b->data, b->len, &kb, NULL) == 0);
    CHECK(EVP_PKEY_eq(ka, kb) == 1);
    if (priv) {
        CHECK(EVP_PKEY_get_bn_param(ka, OSSL_PKEY_PARAM_PRIV_KEY, &pa) == 1);
        CHECK(EVP_PKEY_get_bn_param(kb, OSSL_PKEY_PARAM_PRIV_KEY, &pb) == 1);
        CHECK(BN_cmp(pa, pb) == 0);
    }
    BN_clear_free(pa);
    BN_clear_free(pb);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
}

/* OpenSSL's check of an RSA public key (SP 800-56B: the modulus is
 * composite and not a prime power) runs Miller-Rabin with random bases; a
 * modulus without small factors can pass once and, when a base happens to
 * reveal a factor, fail the next time. So a second parse of an RSA public
 * key may be refused as inconsistent where the first was accepted. */
static bool rsa_public_check_flaky(bool is_rsa_public, int rc, const kms_error_t *err)
{
    return is_rsa_public && rc == KMS_ERR_PROTO && err->code == rc &&
           err->reason == KMIP_RESULT_REASON_INVALID_FIELD;
}

/* Parse `obj` as Register would and compare with the first parse. */
static void reparse(const ttlv_item_t *obj, const crypto_material_t *d, const kms_secret_t *stored,
                    uint32_t via_fmt)
{
    crypto_material_t d2;
    kms_secret_t *s2 = NULL;
    kms_error_t err = {0};
    int rc = crypto_object_parse(obj, d->object_type, kek_lookup, NULL, &s2, &d2, &err);

    if (rc < 0 && rsa_public_check_flaky(d->object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY &&
                                             d->alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA,
                                         rc, &err))
        return;
    if (rc < 0)
        fprintf(stderr, "fuzz_keyformat: built object does not parse back (format %u): %s\n",
                (unsigned)via_fmt, kms_error_msg(&err));
    CHECK(rc == 0 && s2);
    CHECK(d2.object_type == d->object_type);
    /* Secret Data is stored as sent; its stored format names the format it
     * was last parsed from. */
    CHECK(d2.stored_fmt == d->stored_fmt || d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA);
    /* A Key Block answers Cryptographic Length only with an algorithm. */
    CHECK(d2.alg == d->alg && d2.bits == (d->alg ? d->bits : 0) && d2.curve == d->curve);
    CHECK(d->sub_type == 0 || d2.sub_type == d->sub_type);
    CHECK(d2.registered_fmt == (via_fmt ? via_fmt : d->registered_fmt));
    check_same_material(d, stored, s2, via_fmt);
    kms_secret_free(s2);
}

/* Everything a Get can make of a parsed object must parse back to it. */
static void roundtrip(kms_arena_t *a, const crypto_material_t *d, const kms_secret_t *stored)
{
    static const uint32_t modes[] = {KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP,
                                     KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING};
    static const uint32_t encodings[] = {0, KMIP_ENCODING_OPTION_TTLV_ENCODING,
                                         KMIP_ENCODING_OPTION_NO_ENCODING};
    const uint32_t *fmts;
    size_t n = formats_for(d->object_type, &fmts);
    kms_secret_t kek = {.data = (uint8_t *)KEK, .len = sizeof(KEK)};
    ttlv_item_t *v = NULL;
    kms_error_t err;
    int rc;

    for (size_t i = 0; i < n; i++) {
        ttlv_item_t *parent = ttlv_new_struct(a, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
        CHECK(parent);
        rc = crypto_object_build(a, parent, d, stored, fmts[i], NULL, &err);
        if (rc < 0) {
            CHECK_REFUSAL(rc, err);
            CHECK(rc == KMS_ERR_NOTSUP || rc == KMS_ERR_INVAL);
            continue;
        }
        CHECK(parent->first && parent->first->tag == crypto_object_tag(d->object_type));
        reparse(parent->first, d, stored, fmts[i]);
    }
    for (size_t m = 0; has_key_block(d->object_type) && m < 2; m++)
        for (size_t e = 0; e < 3; e++) {
            crypto_wrap_t w = {.key_id = "kek", .kek = &kek, .block_mode = modes[m],
                               .encoding = encodings[e]};
            ttlv_item_t *parent = ttlv_new_struct(a, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
            CHECK(parent);
            rc = crypto_object_build(a, parent, d, stored, 0, &w, &err);
            if (rc < 0) {
                CHECK_REFUSAL(rc, err);
                continue;
            }
            reparse(parent->first, d, stored, 0);
        }
    rc = crypto_digest_value(a, d, stored, &v);
    CHECK(rc == 0 && v);
}

/* A Register object around DER key material. */
static ttlv_item_t *key_object(kms_arena_t *a, uint32_t type, uint32_t fmt, const uint8_t *p,
                               size_t n)
{
    ttlv_item_t *o = ttlv_new_struct(a, NULL, crypto_object_tag(type));
    ttlv_item_t *kb = ttlv_new_struct(a, o, KMIP_TAG_KEY_BLOCK);
    ttlv_item_t *kv;
    CHECK(kb && ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt));
    kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE);
    CHECK(kv && ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, p, n));
    return o;
}

/* Parse a Register object and, when it is accepted, round-trip it.
 * Returns what the parse returned. */
static int object(kms_arena_t *a, const ttlv_item_t *obj, uint32_t type)
{
    crypto_material_t d;
    kms_secret_t *stored = NULL;
    kms_error_t err;
    int rc = crypto_object_parse(obj, type, kek_lookup, NULL, &stored, &d, &err);

    if (rc < 0) {
        CHECK_REFUSAL(rc, err);
        CHECK(stored == NULL);
        return rc;
    }
    CHECK(d.object_type == type);
    /* A Key Block without a Key Value (KMIP 1.2) registers metadata only. */
    CHECK(d.no_key_value ? stored == NULL : stored != NULL);
    if (!stored)
        return 0;
    roundtrip(a, &d, stored);
    kms_secret_free(stored);
    return 0;
}

static void der_key(kms_arena_t *a, uint32_t fmt, bool priv, const uint8_t *p, size_t n)
{
    uint32_t type = priv ? KMIP_OBJECT_TYPE_PRIVATE_KEY : KMIP_OBJECT_TYPE_PUBLIC_KEY;
    EVP_PKEY *k = NULL, *k2 = NULL;
    kms_secret_t *der = NULL, *der2 = NULL;
    bool exportable = false;
    kms_error_t err;
    uint32_t alg, curve;
    int32_t bits;
    int rc = crypto_pkey_load(fmt, priv, p, n, &k, &err);

    if (rc < 0) {
        CHECK_REFUSAL(rc, err);
        CHECK(k == NULL && (rc == KMS_ERR_PROTO || rc == KMS_ERR_NOTSUP));
    } else {
        /* Loading parses without validating, so an inconsistent key (a
         * private value longer than the curve's order...) may not encode
         * again; then Register must refuse it (below). What does encode is
         * a normal form: it loads to the same key and encodes to the same
         * bytes again. */
        rc = crypto_pkey_export(k, fmt, priv, &der, &err);
        if (rc < 0) {
            CHECK_REFUSAL(rc, err);
        } else {
            exportable = true;
            CHECK(crypto_pkey_load(fmt, priv, der->data, der->len, &k2, &err) == 0);
            CHECK(EVP_PKEY_eq(k, k2) == 1);
            CHECK(crypto_pkey_export(k2, fmt, priv, &der2, &err) == 0);
            CHECK(der->len == der2->len && memcmp(der->data, der2->data, der->len) == 0);
        }
        rc = crypto_pkey_params(k, &alg, &bits, &curve, &err);
        if (rc < 0)
            CHECK_REFUSAL(rc, err);
        for (size_t i = 0; i < sizeof(transparent_fmts) / sizeof(transparent_fmts[0]); i++) {
            ttlv_item_t *parent = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_VALUE);
            CHECK(parent);
            rc = crypto_transparent_build(a, parent, k, transparent_fmts[i], &err);
            if (rc < 0)
                CHECK_REFUSAL(rc, err);
        }
        kms_secret_free(der);
        kms_secret_free(der2);
        EVP_PKEY_free(k);
        EVP_PKEY_free(k2);
    }
    rc = object(a, key_object(a, type, fmt, p, n), type);
    CHECK(rc < 0 || exportable);
}

/* Every Attribute Value derived from a certificate encodes as TTLV that
 * decodes again (Text Strings must be UTF-8 for the client to read them). */
static void check_encodes(kms_arena_t *a, const ttlv_item_t *v)
{
    kms_buf_t b;
    ttlv_item_t *back = NULL;
    if (!v)
        return;
    kms_buf_init(&b, 1u << 20);
    CHECK(ttlv_encode(v, &b) == 0);
    CHECK(ttlv_decode(b.data, b.len, NULL, a, &back, NULL) == 0);
    CHECK(ttlv_equal(v, back));
    kms_buf_dispose(&b);
}

static void certificate(kms_arena_t *a, const uint8_t *p, size_t n)
{
    crypto_cert_attrs_t ca;
    kms_error_t err;
    ttlv_item_t *o;
    int rc = crypto_cert_check(p, n, &err);

    if (rc < 0) {
        CHECK_REFUSAL(rc, err);
        CHECK(crypto_cert_attrs(a, p, n, &ca) == KMS_ERR_PROTO);
    } else {
        rc = crypto_cert_attrs(a, p, n, &ca);
        CHECK(rc == 0 || rc == KMS_ERR_CRYPTO);
        if (rc == 0) {
            check_encodes(a, ca.x509_identifier);
            check_encodes(a, ca.x509_subject);
            check_encodes(a, ca.x509_issuer);
            check_encodes(a, ca.identifier);
            check_encodes(a, ca.subject);
            check_encodes(a, ca.issuer);
        }
    }
    o = ttlv_new_struct(a, NULL, KMIP_TAG_CERTIFICATE);
    CHECK(o && ttlv_new_enum(a, o, KMIP_TAG_CERTIFICATE_TYPE, KMIP_CERTIFICATE_TYPE_X_509) &&
          ttlv_new_bytes(a, o, KMIP_TAG_CERTIFICATE_VALUE, p, n));
    object(a, o, KMIP_OBJECT_TYPE_CERTIFICATE);
}

static void register_object(kms_arena_t *a, const uint8_t *p, size_t n)
{
    static const uint32_t types[] = {
        KMIP_OBJECT_TYPE_CERTIFICATE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
        KMIP_OBJECT_TYPE_PUBLIC_KEY,  KMIP_OBJECT_TYPE_PRIVATE_KEY,
        KMIP_OBJECT_TYPE_TEMPLATE,    KMIP_OBJECT_TYPE_SECRET_DATA,
        KMIP_OBJECT_TYPE_OPAQUE_DATA,
    };
    ttlv_item_t *root = NULL;
    if (ttlv_decode(p, n, NULL, a, &root, NULL) < 0)
        return;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (crypto_object_tag(types[i]) == root->tag) {
            object(a, root, types[i]);
            return;
        }
    /* Any other structure: the parser must refuse it for every type. */
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        crypto_material_t d;
        kms_secret_t *s = NULL;
        kms_error_t err;
        int rc = crypto_object_parse(root, types[i], kek_lookup, NULL, &s, &d, &err);
        CHECK_REFUSAL(rc, err);
        CHECK(s == NULL);
    }
}

static void transparent(kms_arena_t *a, uint8_t sel, const uint8_t *p, size_t n)
{
    uint32_t fmt = transparent_fmts[sel % (sizeof(transparent_fmts) / sizeof(transparent_fmts[0]))];
    bool priv = crypto_fmt_is_transparent_priv(fmt);
    ttlv_item_t *km = NULL, *kv, *o, *kb;
    EVP_PKEY *k = NULL, *k2 = NULL;
    kms_error_t err;
    int rc;

    if (ttlv_decode(p, n, NULL, a, &km, NULL) < 0)
        return;
    rc = crypto_transparent_parse(km, fmt, &k, &err);
    if (rc < 0) {
        CHECK_REFUSAL(rc, err);
        CHECK(k == NULL);
    } else {
        kv = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_VALUE);
        CHECK(kv && crypto_transparent_build(a, kv, k, fmt, &err) == 0);
        rc = crypto_transparent_parse(ttlv_find(kv, KMIP_TAG_KEY_MATERIAL), fmt, &k2, &err);
        CHECK(rc == 0 || rsa_public_check_flaky(
                             fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY, rc, &err));
        CHECK(rc < 0 || EVP_PKEY_eq(k, k2) == 1);
        EVP_PKEY_free(k);
        EVP_PKEY_free(k2);
    }
    /* The same Key Material in a Register object. */
    o = ttlv_new_struct(a, NULL, priv ? KMIP_TAG_PRIVATE_KEY : KMIP_TAG_PUBLIC_KEY);
    kb = ttlv_new_struct(a, o, KMIP_TAG_KEY_BLOCK);
    CHECK(kb && ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt));
    kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE);
    CHECK(kv);
    km->tag = KMIP_TAG_KEY_MATERIAL;
    ttlv_append(kv, km);
    object(a, o, priv ? KMIP_OBJECT_TYPE_PRIVATE_KEY : KMIP_OBJECT_TYPE_PUBLIC_KEY);
}

static void raw_symmetric(kms_arena_t *a, uint8_t sel, const uint8_t *p, size_t n)
{
    static const uint32_t algs[] = {0,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_AES,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH,
                                    KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA};
    bool secret = sel & 0x80;
    uint32_t type = secret ? KMIP_OBJECT_TYPE_SECRET_DATA : KMIP_OBJECT_TYPE_SYMMETRIC_KEY;
    ttlv_item_t *o = ttlv_new_struct(a, NULL, crypto_object_tag(type));
    ttlv_item_t *kb, *kv;
    uint32_t alg = algs[(sel & 0x7f) % (sizeof(algs) / sizeof(algs[0]))];

    CHECK(o);
    if (secret)
        CHECK(ttlv_new_enum(a, o, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_PASSWORD));
    kb = ttlv_new_struct(a, o, KMIP_TAG_KEY_BLOCK);
    CHECK(kb && ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW));
    kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE);
    CHECK(kv && ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, p, n));
    if (alg)
        CHECK(ttlv_new_enum(a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg));
    object(a, o, type);
}

static void unwrap(uint8_t sel, const uint8_t *p, size_t n)
{
    static const size_t kek_lens[] = {16, 24, 32, 15};
    size_t kl = kek_lens[sel % 4];
    bool pad = sel & 0x10;
    kms_secret_t *plain = NULL;
    kms_buf_t again;
    kms_error_t err;
    int rc = crypto_aes_unwrap(KEK, kl, pad, p, n, &plain, &err);

    if (rc < 0) {
        CHECK_REFUSAL(rc, err);
        CHECK(plain == NULL);
        return;
    }
    /* Key wrap is deterministic: wrapping the plaintext gives the input. */
    kms_buf_init(&again, n + 64);
    CHECK(crypto_aes_wrap(KEK, kl, pad, plain->data, plain->len, &again, &err) == 0);
    CHECK(again.len == n && memcmp(again.data, p, n) == 0);
    kms_buf_dispose(&again);
    kms_secret_free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        uint32_t fmt;
        bool priv;
    } der[] = {
        {KMIP_KEY_FORMAT_TYPE_PKCS_1, true},          {KMIP_KEY_FORMAT_TYPE_PKCS_1, false},
        {KMIP_KEY_FORMAT_TYPE_PKCS_8, true},          {KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY, true},
        {KMIP_KEY_FORMAT_TYPE_X_509, false},
    };
    kms_arena_t *a;
    uint8_t mode;

    if (size < 2 || size > 64 * 1024)
        return 0;
    a = kms_arena_new(64u << 20);
    CHECK(a);
    mode = data[0] % 10;
    data++;
    size--;
    if (mode < 5)
        der_key(a, der[mode].fmt, der[mode].priv, data, size);
    else if (mode == 5)
        certificate(a, data, size);
    else if (mode == 6)
        register_object(a, data, size);
    else if (mode == 7)
        transparent(a, data[0], data + 1, size - 1);
    else if (mode == 8)
        raw_symmetric(a, data[0], data + 1, size - 1);
    else
        unwrap(data[0], data + 1, size - 1);
    kms_arena_free(a);
    CHECK(ERR_peek_error() == 0);
    return 0;
}
