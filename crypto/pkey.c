/*
 * crypto/pkey.c: RSA and EC key pairs in their DER forms.
 *
 * Generation (RSA 1024..4096 with e = 65537; EC on every KMIP Recommended
 * Curve this OpenSSL offers: NIST prime and binary curves, SEC 2 (secp256k1
 * ...), X9.62, Brainpool), loading and exporting PKCS#1, PKCS#8, RFC 5915 EC Private Key,
 * X.509 SubjectPublicKeyInfo, the KMIP parameters of a key, and the table
 * of Recommended Curves. Every DER input must be consumed exactly (no
 * trailing bytes). Loading parses; it does not check the key's
 * consistency (keyformat_parse.c does, before a key is stored). The
 * Transparent (TTLV) forms are in transparent.c.
 */
#include <limits.h>
#include <stdbool.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "crypto/crypto_int.h"

/* Every Recommended Curve of KMIP 1.0-1.4 with its OpenSSL short name and
 * field size in bits (the Cryptographic Length of its keys). Which of them
 * OpenSSL can compute with is asked at run time (curve_nid): a build
 * without binary curves simply lacks those. */
static const struct curve_map {
    uint32_t kmip;
    const char *group;
    int32_t bits;
} curves[] = {
    {KMIP_RECOMMENDED_CURVE_P_192, "prime192v1", 192},
    {KMIP_RECOMMENDED_CURVE_K_163, "sect163k1", 163},
    {KMIP_RECOMMENDED_CURVE_B_163, "sect163r2", 163},
    {KMIP_RECOMMENDED_CURVE_P_224, "secp224r1", 224},
    {KMIP_RECOMMENDED_CURVE_K_233, "sect233k1", 233},
    {KMIP_RECOMMENDED_CURVE_B_233, "sect233r1", 233},
    {KMIP_RECOMMENDED_CURVE_P_256, "prime256v1", 256},
    {KMIP_RECOMMENDED_CURVE_K_283, "sect283k1", 283},
    {KMIP_RECOMMENDED_CURVE_B_283, "sect283r1", 283},
    {KMIP_RECOMMENDED_CURVE_P_384, "secp384r1", 384},
    {KMIP_RECOMMENDED_CURVE_K_409, "sect409k1", 409},
    {KMIP_RECOMMENDED_CURVE_B_409, "sect409r1", 409},
    {KMIP_RECOMMENDED_CURVE_P_521, "secp521r1", 521},
    {KMIP_RECOMMENDED_CURVE_K_571, "sect571k1", 571},
    {KMIP_RECOMMENDED_CURVE_B_571, "sect571r1", 571},
    {KMIP_RECOMMENDED_CURVE_SECP112R1, "secp112r1", 112},
    {KMIP_RECOMMENDED_CURVE_SECP112R2, "secp112r2", 112},
    {KMIP_RECOMMENDED_CURVE_SECP128R1, "secp128r1", 128},
    {KMIP_RECOMMENDED_CURVE_SECP128R2, "secp128r2", 128},
    {KMIP_RECOMMENDED_CURVE_SECP160K1, "secp160k1", 160},
    {KMIP_RECOMMENDED_CURVE_SECP160R1, "secp160r1", 160},
    {KMIP_RECOMMENDED_CURVE_SECP160R2, "secp160r2", 160},
    {KMIP_RECOMMENDED_CURVE_SECP191K1, "secp192k1", 192},
    {KMIP_RECOMMENDED_CURVE_SECP224K1, "secp224k1", 224},
    {KMIP_RECOMMENDED_CURVE_SECP256K1, "secp256k1", 256},
    {KMIP_RECOMMENDED_CURVE_SECT113R1, "sect113r1", 113},
    {KMIP_RECOMMENDED_CURVE_SECT113R2, "sect113r2", 113},
    {KMIP_RECOMMENDED_CURVE_SECT131R1, "sect131r1", 131},
    {KMIP_RECOMMENDED_CURVE_SECT131R2, "sect131r2", 131},
    {KMIP_RECOMMENDED_CURVE_SECT163R1, "sect163r1", 163},
    {KMIP_RECOMMENDED_CURVE_SECT193R1, "sect193r1", 193},
    {KMIP_RECOMMENDED_CURVE_SECT193R2, "sect193r2", 193},
    {KMIP_RECOMMENDED_CURVE_SECT239K1, "sect239k1", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9P192V2, "prime192v2", 192},
    {KMIP_RECOMMENDED_CURVE_ANSIX9P192V3, "prime192v3", 192},
    {KMIP_RECOMMENDED_CURVE_ANSIX9P239V1, "prime239v1", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9P239V2, "prime239v2", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9P239V3, "prime239v3", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB163V1, "c2pnb163v1", 163},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB163V2, "c2pnb163v2", 163},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB163V3, "c2pnb163v3", 163},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB176V1, "c2pnb176v1", 176},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB191V1, "c2tnb191v1", 191},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB191V2, "c2tnb191v2", 191},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB191V3, "c2tnb191v3", 191},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB208W1, "c2pnb208w1", 208},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB239V1, "c2tnb239v1", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB239V2, "c2tnb239v2", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB239V3, "c2tnb239v3", 239},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB272W1, "c2pnb272w1", 272},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB304W1, "c2pnb304w1", 304},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB359V1, "c2tnb359v1", 359},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2PNB368W1, "c2pnb368w1", 368},
    {KMIP_RECOMMENDED_CURVE_ANSIX9C2TNB431R1, "c2tnb431r1", 431},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP160R1, "brainpoolP160r1", 160},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP160T1, "brainpoolP160t1", 160},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP192R1, "brainpoolP192r1", 192},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP192T1, "brainpoolP192t1", 192},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP224R1, "brainpoolP224r1", 224},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP224T1, "brainpoolP224t1", 224},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP256R1, "brainpoolP256r1", 256},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP256T1, "brainpoolP256t1", 256},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP320R1, "brainpoolP320r1", 320},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP320T1, "brainpoolP320t1", 320},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP384R1, "brainpoolP384r1", 384},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP384T1, "brainpoolP384t1", 384},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP512R1, "brainpoolP512r1", 512},
    {KMIP_RECOMMENDED_CURVE_BRAINPOOLP512T1, "brainpoolP512t1", 512},
};

/* NID of an entry, or NID_undef when this OpenSSL does not offer it. */
static int curve_nid(const struct curve_map *c)
{
    int nid = OBJ_sn2nid(c->group);
    EC_GROUP *g = nid != NID_undef ? EC_GROUP_new_by_curve_name(nid) : NULL;
    EC_GROUP_free(g);
    ERR_clear_error();
    return g ? nid : NID_undef;
}

static const struct curve_map *curve_entry(uint32_t curve)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++)
        if (curves[i].kmip == curve)
            return &curves[i];
    return NULL;
}

const char *crypto_curve_group(uint32_t curve, int32_t *bits_out)
{
    const struct curve_map *c = curve_entry(curve);
    if (!c || curve_nid(c) == NID_undef)
        return NULL;
    if (bits_out)
        *bits_out = c->bits;
    return c->group;
}

uint32_t crypto_curve_by_group(const char *group, int32_t *bits_out)
{
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = OBJ_txt2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    if (nid == NID_undef)
        return 0;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++)
        if (OBJ_sn2nid(curves[i].group) == nid) {
            if (bits_out)
                *bits_out = curves[i].bits;
            return curves[i].kmip;
        }
    return 0;
}

size_t crypto_curves(uint32_t *curves_out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves) && n < max; i++)
        if (curve_nid(&curves[i]) != NID_undef)
            curves_out[n++] = curves[i].kmip;
    return n;
}

bool crypto_alg_is_ec(uint32_t alg)
{
    return alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDH ||
           alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECMQV || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_EC;
}

int crypto_keypair_check(uint32_t alg, int32_t bits, uint32_t curve, uint32_t *curve_out,
                         int32_t *bits_out, kms_error_t *err)
{
    const struct curve_map *c;

    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA) {
        if (bits < 1024 || bits > 4096 || bits % 8 != 0)
            return kms_error_set_reason(
                err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                "RSA Cryptographic Length must be a multiple of 8 from 1024 to 4096 (got %d)",
                (int)bits);
        if (curve != 0)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "Recommended Curve given for an RSA key pair");
        *curve_out = 0;
        *bits_out = bits;
        return 0;
    }
    if (!crypto_alg_is_ec(alg))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Cryptographic Algorithm not supported for key pairs "
                                    "(RSA, ECDSA, ECDH, ECMQV, EC are)");
    if (curve == 0) {
        /* A length alone names the NIST prime curve of that size. */
        static const uint32_t by_len[] = {KMIP_RECOMMENDED_CURVE_P_192, KMIP_RECOMMENDED_CURVE_P_224,
                                          KMIP_RECOMMENDED_CURVE_P_256, KMIP_RECOMMENDED_CURVE_P_384,
                                          KMIP_RECOMMENDED_CURVE_P_521};
        for (size_t i = 0; i < KMS_ARRAY_SIZE(by_len); i++)
            if (curve_entry(by_len[i])->bits == bits)
                curve = by_len[i];
        if (curve == 0)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "EC key pair needs a Recommended Curve (Cryptographic "
                                        "Domain Parameters) or a Cryptographic Length of 192, "
                                        "224, 256, 384 or 521");
    }
    c = curve_entry(curve);
    if (!c || curve_nid(c) == NID_undef)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Recommended Curve %s is not offered by this server's OpenSSL",
                                    crypto_enum_name(KMIP_TAG_RECOMMENDED_CURVE, curve));
    if (bits != 0 && bits != c->bits)
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Cryptographic Length %d does not match the curve (%d)",
                                    (int)bits, (int)c->bits);
    *curve_out = curve;
    *bits_out = c->bits;
    return 0;
}

/* DER of any i2d function into a new secret. */
#define I2D_SECRET(fn, obj, dst)                                           \
    do {                                                                   \
        int n_ = fn(obj, NULL);                                            \
        unsigned char *p_;                                                 \
        if (n_ <= 0) {                                                     \
            rc = KMS_ERR_CRYPTO;                                           \
            goto out;                                                      \
        }                                                                  \
        (dst) = kms_secret_new((size_t)n_);                                \
        if (!(dst)) {                                                      \
            rc = KMS_ERR_NOMEM;                                            \
            goto out;                                                      \
        }                                                                  \
        p_ = (dst)->data;                                                  \
        if (fn(obj, &p_) != n_) {                                          \
            rc = KMS_ERR_CRYPTO;                                           \
            goto out;                                                      \
        }                                                                  \
    } while (0)

int crypto_pkey_export(EVP_PKEY *pkey, uint32_t fmt, bool is_private, kms_secret_t **der_out,
                       kms_error_t *err)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    kms_secret_t *s = NULL;
    int id = EVP_PKEY_get_base_id(pkey);
    int rc = 0;

    *der_out = NULL;
    if (is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_8) {
        p8 = EVP_PKEY2PKCS8(pkey);
        if (!p8) {
            rc = KMS_ERR_CRYPTO;
            goto out;
        }
        I2D_SECRET(i2d_PKCS8_PRIV_KEY_INFO, p8, s);
    } else if (is_private && ((fmt == KMIP_KEY_FORMAT_TYPE_PKCS_1 && id == EVP_PKEY_RSA) ||
                              (fmt == KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY && id == EVP_PKEY_EC))) {
        /* i2d_PrivateKey writes the type-specific form: RSAPrivateKey
         * (PKCS#1) or ECPrivateKey (RFC 5915). */
        I2D_SECRET(i2d_PrivateKey, pkey, s);
    } else if (!is_private && fmt == KMIP_KEY_FORMAT_TYPE_X_509) {
        I2D_SECRET(i2d_PUBKEY, pkey, s);
    } else if (!is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_1 && id == EVP_PKEY_RSA) {
        I2D_SECRET(i2d_PublicKey, pkey, s);
    } else {
        rc = kms_error_set_reason(
            err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "Key Format Type %s not available for this %s key",
            crypto_enum_name(KMIP_TAG_KEY_FORMAT_TYPE, fmt), is_private ? "private" : "public");
        goto out;
    }
    *der_out = s;
    s = NULL;
out:
    if (rc == KMS_ERR_CRYPTO)
        kms_error_set_reason(err, rc, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                             "key encoding failed");
    else if (rc == KMS_ERR_NOMEM)
        kms_error_set(err, rc, NULL);
    PKCS8_PRIV_KEY_INFO_free(p8);
    kms_secret_free(s);
    ERR_clear_error();
    return rc;
}

/* RFC 8017 A.1.2: an RSAPrivateKey's version is 0 for two primes and 1
 * when otherPrimeInfos (its tenth element) follows. OpenSSL loads any
 * other INTEGER there for two primes and writes 0 back, so a key sent
 * with another value would be stored and served as other bytes than its
 * own Transparent form: refused instead. Read with OpenSSL's generic ASN.1
 * decoder. */
static bool rsa_version_ok(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    bool ok = false;
    ASN1_SEQUENCE_ANY *seq = len <= LONG_MAX ? d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len) : NULL;
    if (seq && sk_ASN1_TYPE_num(seq) >= 9) {
        const ASN1_TYPE *v = sk_ASN1_TYPE_value(seq, 0);
        int64_t ver = -1;
        if (v->type == V_ASN1_INTEGER && ASN1_INTEGER_get_int64(&ver, v->value.integer) == 1)
            ok = ver == (sk_ASN1_TYPE_num(seq) > 9 ? 1 : 0);
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return ok;
}

/* The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (true for other keys). */
static bool p8_rsa_version_ok(const PKCS8_PRIV_KEY_INFO *p8, const EVP_PKEY *pk)
{
    const unsigned char *inner = NULL;
    int inner_len = 0;
    if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
        return true;
    if (PKCS8_pkey_get0(NULL, &inner, &inner_len, NULL, p8) != 1 || inner_len <= 0)
        return false;
    return rsa_version_ok(inner, (size_t)inner_len);
}

int crypto_pkey_load(uint32_t fmt, bool is_private, const uint8_t *der, size_t len,
                     EVP_PKEY **pkey_out, kms_error_t *err)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    EVP_PKEY *pk = NULL;
    int rc = 0;

    *pkey_out = NULL;
    if (len == 0 || len > LONG_MAX)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "empty Key Material");
    if (is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_8) {
        p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
        if (p8)
            pk = EVP_PKCS82PKEY(p8);
    } else if (is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_1) {
        pk = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len);
    } else if (is_private && fmt == KMIP_KEY_FORMAT_TYPE_EC_PRIVATE_KEY) {
        pk = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)len);
    } else if (!is_private && fmt == KMIP_KEY_FORMAT_TYPE_X_509) {
        pk = d2i_PUBKEY(NULL, &p, (long)len);
    } else if (!is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_1) {
        pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
    } else {
        rc = kms_error_set_reason(
            err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "Key Format Type not supported for a %s key", is_private ? "private" : "public");
        goto out;
    }
    if (!pk || p != der + len) {
        rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "Key Material is not a valid %s %s key",
                                  crypto_enum_name(KMIP_TAG_KEY_FORMAT_TYPE, fmt),
                                  is_private ? "private" : "public");
        goto out;
    }
    if ((is_private && fmt == KMIP_KEY_FORMAT_TYPE_PKCS_1 && !rsa_version_ok(der, len)) ||
        (p8 && !p8_rsa_version_ok(p8, pk))) {
        rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "Key Material is not a valid RSA private key: its version "
                                  "must be 0 (two primes) or 1 (more primes, RFC 8017)");
        goto out;
    }
    {
        int id = EVP_PKEY_get_base_id(pk);
        if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
            rc = kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                      "only RSA and EC keys are supported");
            goto out;
        }
    }
    *pkey_out = pk;
    pk = NULL;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

int crypto_pkey_params(EVP_PKEY *pkey, uint32_t *alg_out, int32_t *bits_out, uint32_t *curve_out,
                       kms_error_t *err)
{
    int id = EVP_PKEY_get_base_id(pkey);

    if (id == EVP_PKEY_RSA) {
        *alg_out = KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA;
        *bits_out = EVP_PKEY_get_bits(pkey);
        *curve_out = 0;
        return 0;
    }
    if (id == EVP_PKEY_EC) {
        char group[64];
        size_t glen = 0;
        uint32_t c;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof(group), &glen))
            return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "EC key without a named curve");
        c = crypto_curve_by_group(group, bits_out);
        if (c == 0)
            return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "EC curve %s not supported", group);
        *alg_out = KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA;
        *curve_out = c;
        return 0;
    }
    return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                "only RSA and EC keys are supported");
}

/* What the OpenSSL generation callback asks: the caller's stop function
 * and whether it answered "stop". */
typedef struct keygen_stop {
    crypto_stop_cb stop;
    void *arg;
    bool stopped;
} keygen_stop_t;

/* Called by OpenSSL during RSA generation (per prime candidate and test
 * round); returning 0 aborts the generation. */
static int keygen_cb(EVP_PKEY_CTX *pctx)
{
    keygen_stop_t *s = EVP_PKEY_CTX_get_app_data(pctx);
    if (!s->stopped && s->stop(s->arg))
        s->stopped = true; /* OpenSSL may call again while it unwinds */
    return !s->stopped;
}

/* RSA of `bits` (e = 65537), asking `stop` while it runs; NULL when it
 * failed or was stopped (*stopped_out says which). */
static EVP_PKEY *rsa_generate(int32_t bits, crypto_stop_cb stop, void *stop_arg, bool *stopped_out)
{
    keygen_stop_t s = {.stop = stop, .arg = stop_arg};
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!pctx || EVP_PKEY_keygen_init(pctx) <= 0 || EVP_PKEY_CTX_set_rsa_keygen_bits(pctx, bits) <= 0)
        goto out;
    if (stop) {
        EVP_PKEY_CTX_set_app_data(pctx, &s);
        EVP_PKEY_CTX_set_cb(pctx, keygen_cb);
    }
    if (EVP_PKEY_generate(pctx, &pk) <= 0) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
out:
    EVP_PKEY_CTX_free(pctx);
    *stopped_out = s.stopped;
    return pk;
}

int crypto_keypair_generate(uint32_t alg, int32_t bits, uint32_t curve, kms_secret_t **priv_out,
                            kms_secret_t **pub_out, kms_error_t *err)
{
    return crypto_keypair_generate_until(alg, bits, curve, NULL, NULL, priv_out, pub_out, err);
}

int crypto_keypair_generate_until(uint32_t alg, int32_t bits, uint32_t curve, crypto_stop_cb stop,
                                  void *stop_arg, kms_secret_t **priv_out, kms_secret_t **pub_out,
                                  kms_error_t *err)
{
    EVP_PKEY *pk = NULL;
    uint32_t c = 0;
    int32_t b = 0;
    bool stopped = false;
    int rc;

    *priv_out = NULL;
    *pub_out = NULL;
    rc = crypto_keypair_check(alg, bits, curve, &c, &b, err);
    if (rc < 0)
        return rc;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA)
        pk = rsa_generate(b, stop, stop_arg, &stopped);
    else /* milliseconds: not worth interrupting */
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", crypto_curve_group(c, NULL));
    if (!pk) {
        ERR_clear_error();
        if (stopped)
            return kms_error_set_reason(err, KMS_ERR_TIMEOUT, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                        "key pair generation stopped");
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "key pair generation failed");
    }
    rc = crypto_pkey_export(pk, KMIP_KEY_FORMAT_TYPE_PKCS_8, true, priv_out, err);
    if (rc == 0)
        rc = crypto_pkey_export(pk, KMIP_KEY_FORMAT_TYPE_X_509, false, pub_out, err);
    if (rc < 0) {
        kms_secret_free(*priv_out);
        *priv_out = NULL;
    }
    EVP_PKEY_free(pk);
    return rc;
}
