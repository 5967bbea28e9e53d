/*
 * crypto/pkey.c: RSA and EC key pairs in their DER forms.
 *
 * Generation (RSA 2048/3072/4096 with e = 65537; EC on the NIST prime
 * curves), loading and exporting PKCS#1, PKCS#8, RFC 5915 EC Private Key,
 * X.509 SubjectPublicKeyInfo, the KMIP parameters of a key, and the table
 * of Recommended Curves. Every DER input must be consumed exactly (no
 * trailing bytes). Loading parses; it does not check the key's
 * consistency (keyformat_parse.c does, before a key is stored). The
 * Transparent (TTLV) forms are in transparent.c.
 */
#include <limits.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "crypto/crypto_int.h"

static const struct curve_map {
    uint32_t kmip;
    int nid;
    const char *group;
    int32_t bits;
    bool generate; /* allowed for Create Key Pair */
} curves[] = {
    {KMIP_RECOMMENDED_CURVE_P_192, NID_X9_62_prime192v1, "prime192v1", 192, false},
    {KMIP_RECOMMENDED_CURVE_P_224, NID_secp224r1, "secp224r1", 224, false},
    {KMIP_RECOMMENDED_CURVE_P_256, NID_X9_62_prime256v1, "prime256v1", 256, true},
    {KMIP_RECOMMENDED_CURVE_P_384, NID_secp384r1, "secp384r1", 384, true},
    {KMIP_RECOMMENDED_CURVE_P_521, NID_secp521r1, "secp521r1", 521, true},
};

const char *crypto_curve_group(uint32_t curve, int32_t *bits_out)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++)
        if (curves[i].kmip == curve) {
            if (bits_out)
                *bits_out = curves[i].bits;
            return curves[i].group;
        }
    return NULL;
}

uint32_t crypto_curve_by_group(const char *group, int32_t *bits_out)
{
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = OBJ_txt2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++)
        if (curves[i].nid == nid) {
            if (bits_out)
                *bits_out = curves[i].bits;
            return curves[i].kmip;
        }
    return 0;
}

bool crypto_alg_is_ec(uint32_t alg)
{
    return alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDH ||
           alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_ECMQV || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_EC;
}

int crypto_keypair_check(uint32_t alg, int32_t bits, uint32_t curve, uint32_t *curve_out,
                         int32_t *bits_out, kms_error_t *err)
{
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA) {
        if (bits != 2048 && bits != 3072 && bits != 4096)
            return kms_error_set_reason(
                err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                "RSA Cryptographic Length must be 2048, 3072 or 4096 (got %d)", (int)bits);
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
                                    "(RSA, ECDSA, ECDH, EC are)");
    if (curve == 0) {
        for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++)
            if (curves[i].generate && curves[i].bits == bits)
                curve = curves[i].kmip;
        if (curve == 0)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "EC key pair needs Recommended Curve (P-256, P-384, P-521) "
                                        "or a Cryptographic Length of 256, 384 or 521");
    }
    for (size_t i = 0; i < KMS_ARRAY_SIZE(curves); i++) {
        if (curves[i].kmip != curve)
            continue;
        if (!curves[i].generate)
            break;
        if (bits != 0 && bits != curves[i].bits)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "Cryptographic Length %d does not match the curve (%d)",
                                        (int)bits, (int)curves[i].bits);
        *curve_out = curve;
        *bits_out = curves[i].bits;
        return 0;
    }
    return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                "Recommended Curve not supported (P-256, P-384, P-521 are)");
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

int crypto_keypair_generate(uint32_t alg, int32_t bits, uint32_t curve, kms_secret_t **priv_out,
                            kms_secret_t **pub_out, kms_error_t *err)
{
    EVP_PKEY *pk = NULL;
    uint32_t c = 0;
    int32_t b = 0;
    int rc;

    *priv_out = NULL;
    *pub_out = NULL;
    rc = crypto_keypair_check(alg, bits, curve, &c, &b, err);
    if (rc < 0)
        return rc;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)b); /* e = 65537 */
    else
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", crypto_curve_group(c, NULL));
    if (!pk) {
        ERR_clear_error();
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
