/*
 * crypto/transparent.c: the Transparent RSA and EC key formats.
 *
 * Converts between an EVP_PKEY and the KMIP Key Material structures whose
 * fields are Big Integers (RSA Modulus, exponents, primes; EC private
 * value D) or a Byte String (EC public point Q String, uncompressed).
 * Keys read back are validated by OpenSSL (EVP_PKEY_check and friends).
 * It does not handle DSA or DH transparent forms, nor multi-prime RSA
 * keys, which the Transparent RSA Private Key cannot hold (Key Format
 * Type Not Supported).
 */
#include <limits.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include "crypto/crypto_int.h"

bool crypto_fmt_is_transparent_priv(uint32_t fmt)
{
    return fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PRIVATE_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PRIVATE_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECMQV_PRIVATE_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PRIVATE_KEY;
}

bool crypto_fmt_is_transparent_pub(uint32_t fmt)
{
    return fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDH_PUBLIC_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECMQV_PUBLIC_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_EC_PUBLIC_KEY;
}

static bool fmt_is_rsa(uint32_t fmt)
{
    return fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY ||
           fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PUBLIC_KEY;
}

/* A Big Integer item holding a non-negative BIGNUM: big-endian two's
 * complement, a multiple of 8 bytes long, with a zero sign bit. */
static int add_bigint(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const BIGNUM *bn)
{
    size_t n = (size_t)BN_num_bits(bn) / 8 + 1; /* room for the sign bit */
    uint8_t *buf;
    ttlv_item_t *it;

    n = (n + 7) & ~(size_t)7;
    buf = kms_arena_alloc(a, n);
    if (!buf)
        return KMS_ERR_NOMEM;
    if (BN_bn2binpad(bn, buf, (int)n) != (int)n)
        return KMS_ERR_CRYPTO;
    it = ttlv_new_bigint(a, parent, tag, buf, n);
    kms_wipe(buf, n); /* the item holds its own copy */
    return it ? 0 : KMS_ERR_NOMEM;
}

static int add_pkey_bn(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, EVP_PKEY *pk,
                       const char *param)
{
    BIGNUM *bn = NULL;
    int rc;
    if (!EVP_PKEY_get_bn_param(pk, param, &bn))
        return KMS_ERR_CRYPTO;
    rc = add_bigint(a, parent, tag, bn);
    BN_clear_free(bn);
    return rc;
}

/* An RSA key of more than two primes (RFC 8017 multi-prime): OpenSSL
 * has a third factor for it. */
static bool rsa_is_multi_prime(const EVP_PKEY *pk)
{
    BIGNUM *f3 = NULL;
    bool multi = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR3, &f3) == 1;
    BN_clear_free(f3);
    ERR_clear_error();
    return multi;
}

int crypto_transparent_build(kms_arena_t *a, ttlv_item_t *parent, EVP_PKEY *pkey, uint32_t fmt,
                             kms_error_t *err)
{
    bool priv = crypto_fmt_is_transparent_priv(fmt);
    int id = EVP_PKEY_get_base_id(pkey);
    ttlv_item_t *km;
    int rc = 0;

    if (!priv && !crypto_fmt_is_transparent_pub(fmt))
        return kms_error_set_reason(err, KMS_ERR_INVAL,
                                    KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                    "not a Transparent key format");
    if ((id == EVP_PKEY_RSA) != fmt_is_rsa(fmt) || (id != EVP_PKEY_RSA && id != EVP_PKEY_EC))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                    "Key Format Type does not match the key's algorithm");
    if (priv && id == EVP_PKEY_RSA && rsa_is_multi_prime(pkey))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                    "a multi-prime RSA key has no Transparent RSA Private Key "
                                    "form (it holds only P and Q)");
    km = ttlv_new_struct(a, parent, KMIP_TAG_KEY_MATERIAL);
    if (!km)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    if (id == EVP_PKEY_RSA) {
        rc = add_pkey_bn(a, km, KMIP_TAG_MODULUS, pkey, OSSL_PKEY_PARAM_RSA_N);
        if (rc == 0 && priv)
            rc = add_pkey_bn(a, km, KMIP_TAG_PRIVATE_EXPONENT, pkey, OSSL_PKEY_PARAM_RSA_D);
        if (rc == 0)
            rc = add_pkey_bn(a, km, KMIP_TAG_PUBLIC_EXPONENT, pkey, OSSL_PKEY_PARAM_RSA_E);
        if (rc == 0 && priv) {
            static const struct { uint32_t tag; const char *param; } crt[] = {
                {KMIP_TAG_P, OSSL_PKEY_PARAM_RSA_FACTOR1},
                {KMIP_TAG_Q, OSSL_PKEY_PARAM_RSA_FACTOR2},
                {KMIP_TAG_PRIME_EXPONENT_P, OSSL_PKEY_PARAM_RSA_EXPONENT1},
                {KMIP_TAG_PRIME_EXPONENT_Q, OSSL_PKEY_PARAM_RSA_EXPONENT2},
                {KMIP_TAG_CRT_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
            };
            for (size_t i = 0; i < KMS_ARRAY_SIZE(crt) && rc == 0; i++)
                rc = add_pkey_bn(a, km, crt[i].tag, pkey, crt[i].param);
        }
    } else {
        uint32_t alg, curve;
        int32_t bits;
        rc = crypto_pkey_params(pkey, &alg, &bits, &curve, err);
        if (rc < 0)
            return rc;
        if (!ttlv_new_enum(a, km, KMIP_TAG_RECOMMENDED_CURVE, curve))
            return kms_error_set(err, KMS_ERR_NOMEM, NULL);
        if (priv) {
            rc = add_pkey_bn(a, km, KMIP_TAG_D, pkey, OSSL_PKEY_PARAM_PRIV_KEY);
        } else {
            uint8_t q[256];
            size_t qlen = 0;
            /* Uncompressed point (0x04 || X || Y), the default encoding. */
            if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, q,
                                                 sizeof(q), &qlen))
                rc = KMS_ERR_CRYPTO;
            else if (!ttlv_new_bytes(a, km, KMIP_TAG_Q_STRING, q, qlen))
                rc = KMS_ERR_NOMEM;
        }
    }
    ERR_clear_error();
    if (rc == KMS_ERR_CRYPTO)
        kms_error_set_reason(err, rc, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                             "cannot read the key's components");
    else if (rc < 0)
        kms_error_set(err, rc, NULL);
    return rc;
}

/* A non-negative BIGNUM from a Big Integer child `tag` of km (NULL when absent). */
static int get_bn(const ttlv_item_t *km, uint32_t tag, bool required, BIGNUM **out,
                  kms_error_t *err)
{
    const ttlv_item_t *it = ttlv_find(km, tag);
    *out = NULL;
    if (!it) {
        if (!required)
            return 0;
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Key Material lacks %s", ttlv_tag_name(tag));
    }
    if (it->type != TTLV_BIG_INTEGER || it->v.bytes.len == 0 || it->v.bytes.len > INT_MAX)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "%s must be a Big Integer", ttlv_tag_name(tag));
    /* Negative values make no sense for key components; some clients
     * encode the unsigned magnitude without a sign byte, so read the
     * bytes as unsigned. */
    *out = BN_secure_new();
    if (!*out || !BN_bin2bn(it->v.bytes.ptr, (int)it->v.bytes.len, *out)) {
        BN_clear_free(*out);
        *out = NULL;
        return KMS_ERR_NOMEM;
    }
    return 0;
}

static int rsa_from_km(const ttlv_item_t *km, bool priv, EVP_PKEY **out, kms_error_t *err)
{
    enum { N, E, D, P, Q, DP, DQ, QI, NB };
    static const uint32_t tags[NB] = {KMIP_TAG_MODULUS, KMIP_TAG_PUBLIC_EXPONENT,
                                      KMIP_TAG_PRIVATE_EXPONENT, KMIP_TAG_P, KMIP_TAG_Q,
                                      KMIP_TAG_PRIME_EXPONENT_P, KMIP_TAG_PRIME_EXPONENT_Q,
                                      KMIP_TAG_CRT_COEFFICIENT};
    static const char *params[NB] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E,
                                     OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
                                     OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
                                     OSSL_PKEY_PARAM_RSA_EXPONENT2,
                                     OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    BIGNUM *bn[NB] = {0};
    BN_CTX *ctx = NULL;
    BIGNUM *t = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *prm = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pk = NULL;
    size_t n = priv ? NB : 2;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = get_bn(km, tags[i], i <= Q, &bn[i], err);
    if (rc < 0)
        goto out;
    /* Bound the work the checks below can be made to do. */
    if (BN_num_bits(bn[N]) < 1024 || BN_num_bits(bn[N]) > 8192) {
        rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "RSA modulus of %d bits not accepted (1024..8192)",
                                  BN_num_bits(bn[N]));
        goto out;
    }
    if (priv && (!bn[DP] || !bn[DQ] || !bn[QI])) {
        /* Derive the CRT values the client left out. */
        ctx = BN_CTX_secure_new();
        t = BN_secure_new();
        if (!ctx || !t) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        for (int i = DP; i <= QI; i++) {
            if (bn[i])
                continue;
            bn[i] = BN_secure_new();
            if (!bn[i]) {
                rc = KMS_ERR_NOMEM;
                goto out;
            }
            if (i == QI) {
                if (!BN_mod_inverse(bn[i], bn[Q], bn[P], ctx))
                    rc = KMS_ERR_CRYPTO;
            } else if (!BN_sub(t, bn[i == DP ? P : Q], BN_value_one()) ||
                       !BN_mod(bn[i], bn[D], t, ctx)) {
                rc = KMS_ERR_CRYPTO;
            }
            if (rc < 0)
                goto bad;
        }
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!OSSL_PARAM_BLD_push_BN(bld, params[i], bn[i])) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
    prm = OSSL_PARAM_BLD_to_param(bld);
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!prm || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, prm) <= 0)
        goto bad;
    EVP_PKEY_CTX_free(pctx);
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!pctx || (priv ? EVP_PKEY_pairwise_check(pctx) : EVP_PKEY_public_check(pctx)) != 1)
        goto bad;
    *out = pk;
    pk = NULL;
    goto out;
bad:
    rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                              "Transparent RSA key components do not form a valid key");
out:
    for (size_t i = 0; i < NB; i++)
        BN_clear_free(bn[i]);
    BN_clear_free(t);
    BN_CTX_free(ctx);
    OSSL_PARAM_free(prm);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

static int ec_from_km(const ttlv_item_t *km, bool priv, EVP_PKEY **out, kms_error_t *err)
{
    const ttlv_item_t *c = ttlv_find(km, KMIP_TAG_RECOMMENDED_CURVE);
    const char *group;
    EC_GROUP *grp = NULL;
    EC_POINT *pt = NULL;
    BIGNUM *d = NULL;
    uint8_t qbuf[256];
    const uint8_t *q = NULL;
    size_t qlen = 0;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *prm = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pk = NULL;
    int rc = 0;

    if (!c || c->type != TTLV_ENUMERATION)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Transparent EC key lacks Recommended Curve");
    group = crypto_curve_group(ttlv_u32(c), NULL);
    if (!group)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Recommended Curve not supported");
    if (priv) {
        rc = get_bn(km, KMIP_TAG_D, true, &d, err);
        if (rc < 0)
            goto out;
        /* Derive the public point: OpenSSL's import does not. */
        grp = EC_GROUP_new_by_curve_name(OBJ_sn2nid(group));
        pt = grp ? EC_POINT_new(grp) : NULL;
        if (!pt || BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(grp)) >= 0 ||
            !EC_POINT_mul(grp, pt, d, NULL, NULL, NULL))
            goto bad;
        qlen = EC_POINT_point2oct(grp, pt, POINT_CONVERSION_UNCOMPRESSED, qbuf, sizeof(qbuf),
                                  NULL);
        if (qlen == 0)
            goto bad;
        q = qbuf;
    } else {
        const ttlv_item_t *qs = ttlv_find(km, KMIP_TAG_Q_STRING);
        if (!qs || qs->type != TTLV_BYTE_STRING || qs->v.bytes.len == 0)
            return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "Transparent EC public key lacks Q String");
        q = qs->v.bytes.ptr;
        qlen = qs->v.bytes.len;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) ||
        (priv && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    prm = OSSL_PARAM_BLD_to_param(bld);
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!prm || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, prm) <= 0)
        goto bad;
    EVP_PKEY_CTX_free(pctx);
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!pctx || (priv ? EVP_PKEY_check(pctx) : EVP_PKEY_public_check(pctx)) != 1)
        goto bad;
    *out = pk;
    pk = NULL;
    goto out;
bad:
    rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                              "Transparent EC key components do not form a valid key");
out:
    BN_clear_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(grp);
    OSSL_PARAM_free(prm);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

int crypto_transparent_parse(const ttlv_item_t *km, uint32_t fmt, EVP_PKEY **pkey_out,
                             kms_error_t *err)
{
    bool priv = crypto_fmt_is_transparent_priv(fmt);

    *pkey_out = NULL;
    kms_error_clear(err);
    if (!priv && !crypto_fmt_is_transparent_pub(fmt))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                    "Key Format Type not supported");
    if (!km || km->type != TTLV_STRUCTURE)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Transparent Key Material must be a Structure");
    return crypto_error_ensure(err, fmt_is_rsa(fmt) ? rsa_from_km(km, priv, pkey_out, err)
                                                    : ec_from_km(km, priv, pkey_out, err));
}
