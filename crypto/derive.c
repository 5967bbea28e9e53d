/*
 * crypto/derive.c: the key derivation methods of Derive Key (KMIP 1.2
 * section 4.6) on OpenSSL's EVP_KDF and EVP_MAC: PBKDF2 (PKCS#5 v2.1),
 * HASH, HMAC, ENCRYPT and the NIST SP 800-108 KDFs in counter and feedback
 * mode (OpenSSL's KBKDF).
 *
 * Only the bytes: the new object, its attributes and its links are made by
 * kmip/. Double-pipeline SP 800-108 and asymmetric derivation are Feature
 * Not Supported.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#include "crypto/crypto_int.h"

static int run_kdf(const char *name, OSSL_PARAM *ps, uint8_t *out, size_t out_len, kms_error_t *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int rc = 0;
    if (!ctx)
        rc = crypto_unsupported(err, "%s is not available in this OpenSSL", name);
    else if (EVP_KDF_derive(ctx, out, out_len, ps) != 1)
        rc = crypto_invalid(err, "%s refused the parameters", name);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return rc;
}

static int derive_pbkdf2(const crypto_key_t *base, const crypto_derive_t *d, uint8_t *out,
                         size_t out_len, kms_error_t *err)
{
    if (!d->salt)
        return crypto_invalid(err, "PBKDF2 needs a Salt");
    if (d->iterations <= 0)
        return crypto_invalid(err, "PBKDF2 needs an Iteration Count above 0");
    if (d->iterations > CRYPTO_PBKDF2_MAX_ITERATIONS)
        return crypto_invalid(err, "Iteration Count above %d", CRYPTO_PBKDF2_MAX_ITERATIONS);
    const EVP_MD *md = crypto_md_get(d->params.hash ? d->params.hash : KMIP_HASHING_ALGORITHM_SHA_1);
    if (!md)
        return crypto_unsupported(err, "PBKDF2 hash not supported");
    uint64_t iter = (uint64_t)d->iterations;
    int pkcs5 = 1; /* PKCS#5 rules, not SP 800-132's minimums: RFC 6070 salts are 4 bytes */
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)base->raw, base->raw_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)d->salt, d->salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &pkcs5),
        OSSL_PARAM_construct_end(),
    };
    return run_kdf("PBKDF2", ps, out, out_len, err);
}

static int derive_kbkdf(const crypto_key_t *base, const crypto_derive_t *d, bool feedback,
                        uint8_t *out, size_t out_len, kms_error_t *err)
{
    OSSL_PARAM ps[10];
    size_t n = 0;
    int zero = 0;
    const char *cipher = NULL;
    const EVP_MD *md = NULL;
    bool cmac = d->params.alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_AES;
    if (cmac) {
        cipher = base->raw_len == 16 ? "AES-128-CBC" : base->raw_len == 24 ? "AES-192-CBC"
                 : base->raw_len == 32 ? "AES-256-CBC" : NULL;
        if (!cipher)
            return crypto_invalid(err, "CMAC PRF needs a 128-, 192- or 256-bit key");
    } else {
        uint32_t h = d->params.hash ? d->params.hash : crypto_hmac_hash(base->alg);
        md = crypto_md_get(h ? h : KMIP_HASHING_ALGORITHM_SHA_256);
        if (!md)
            return crypto_unsupported(err, "KBKDF hash not supported");
    }
    ps[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE,
                                               feedback ? "FEEDBACK" : "COUNTER", 0);
    ps[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, cmac ? "CMAC" : "HMAC", 0);
    ps[n++] = cmac ? OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER, (char *)cipher, 0)
                   : OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                      (char *)EVP_MD_get0_name(md), 0);
    ps[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)base->raw, base->raw_len);
    if (d->data)
        ps[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)d->data, d->data_len);
    if (feedback && d->iv)
        ps[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)d->iv, d->iv_len);
    /* The Derivation Data is the whole fixed input: no label separator, no
     * [L] field appended by OpenSSL. */
    ps[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &zero);
    ps[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &zero);
    ps[n++] = OSSL_PARAM_construct_end();
    return run_kdf("KBKDF", ps, out, out_len, err);
}

/* HASH and HMAC: one digest-sized block. */
static int derive_digest(const crypto_key_t *base, const crypto_derive_t *d, bool hmac,
                         uint8_t *out, size_t out_len, kms_error_t *err)
{
    uint8_t md_out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t mlen = 0;
    int rc = 0;
    uint32_t h = d->params.hash;
    if (hmac && crypto_hmac_hash(base->alg)) {
        if (h && h != crypto_hmac_hash(base->alg))
            return crypto_invalid(err, "HMAC derivation uses the key's own hash");
        h = crypto_hmac_hash(base->alg);
    }
    const EVP_MD *md = crypto_md_get(h ? h : KMIP_HASHING_ALGORITHM_SHA_256);
    if (!md)
        return crypto_unsupported(err, "hash not supported");
    if (hmac) {
        if (!d->data)
            return crypto_invalid(err, "HMAC derivation needs Derivation Data");
        crypto_params_t mp = {.alg = 0};
        crypto_key_t k = *base;
        crypto_op_t *op = NULL;
        kms_buf_t b;
        kms_buf_init(&b, EVP_MAX_MD_SIZE);
        k.alg = 0; /* the hash chosen here, whatever the key's algorithm */
        mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256;
        switch (EVP_MD_get_type(md)) {
        case NID_sha1: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1; break;
        case NID_sha224: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224; break;
        case NID_sha384: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384; break;
        case NID_sha512: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512; break;
        case NID_sha3_224: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_224; break;
        case NID_sha3_256: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_256; break;
        case NID_sha3_384: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_384; break;
        case NID_sha3_512: mp.alg = KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_512; break;
        default: break;
        }
        crypto_final_t fin = {0};
        if (!(rc = crypto_mac_start(CRYPTO_SVC_MAC, &k, &mp, &op, err)) &&
            !(rc = crypto_op_update(op, d->data, d->data_len, &b, err)) &&
            !(rc = crypto_op_final(op, &b, &fin, err))) {
            mlen = b.len;
            memcpy(md_out, b.data, b.len);
        }
        crypto_op_free(op);
        kms_buf_dispose_wipe(&b);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
            EVP_DigestUpdate(ctx, base->raw, base->raw_len) != 1 ||
            (d->data && EVP_DigestUpdate(ctx, d->data, d->data_len) != 1) ||
            EVP_DigestFinal_ex(ctx, md_out, &n) != 1)
            rc = crypto_failed(err, "hashing failed");
        EVP_MD_CTX_free(ctx);
        mlen = n;
    }
    if (!rc && out_len > mlen)
        rc = crypto_invalid(err, "%s gives %zu bytes, %zu asked for", hmac ? "HMAC" : "HASH",
                            mlen, out_len);
    if (!rc)
        memcpy(out, md_out, out_len);
    OPENSSL_cleanse(md_out, sizeof(md_out));
    return rc;
}

static int derive_encrypt(const crypto_key_t *base, const crypto_derive_t *d, uint8_t *out,
                          size_t out_len, kms_error_t *err)
{
    crypto_op_t *op = NULL;
    crypto_start_t in = {.iv = d->iv, .iv_len = d->iv_len};
    crypto_final_t fin = {0};
    uint8_t iv[64];
    size_t iv_len = 0;
    kms_buf_t b;
    int rc;
    if (!d->data)
        return crypto_invalid(err, "ENCRYPT derivation needs Derivation Data");
    kms_buf_init(&b, d->data_len + 64);
    if (!(rc = kms_buf_reserve(&b, d->data_len + 64)) &&
        !(rc = crypto_cipher_start(CRYPTO_SVC_ENCRYPT, base, &d->params, &in, &op, iv, &iv_len, err)) &&
        !(rc = crypto_op_update(op, d->data, d->data_len, &b, err)) &&
        !(rc = crypto_op_final(op, &b, &fin, err))) {
        if (iv_len)
            rc = crypto_invalid(err, "ENCRYPT derivation needs the Initialization Vector "
                                     "(a generated one could not be given back)");
        else if (b.len < out_len)
            rc = crypto_invalid(err, "the encryption gives %zu bytes, %zu asked for", b.len,
                                out_len);
        else
            memcpy(out, b.data, out_len);
    }
    crypto_op_free(op);
    kms_buf_dispose_wipe(&b);
    return rc;
}

int crypto_derive(const crypto_key_t *base, const crypto_derive_t *d, size_t out_len,
                  kms_secret_t **out, kms_error_t *err)
{
    int rc;
    kms_error_clear(err);
    *out = NULL;
    if (!base || !base->raw || !d)
        return kms_error_set(err, KMS_ERR_INVAL, "bad arguments");
    if (out_len == 0 || out_len > 1024)
        return crypto_invalid(err, "derived length %zu bytes (1..1024)", out_len);
    kms_secret_t *s = kms_secret_new(out_len);
    if (!s)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    switch (d->method) {
    case KMIP_DERIVATION_METHOD_PBKDF2:
        rc = derive_pbkdf2(base, d, s->data, out_len, err);
        break;
    case KMIP_DERIVATION_METHOD_HASH:
        rc = derive_digest(base, d, false, s->data, out_len, err);
        break;
    case KMIP_DERIVATION_METHOD_HMAC:
        rc = derive_digest(base, d, true, s->data, out_len, err);
        break;
    case KMIP_DERIVATION_METHOD_ENCRYPT:
        rc = derive_encrypt(base, d, s->data, out_len, err);
        break;
    case KMIP_DERIVATION_METHOD_NIST800_108_C:
        rc = derive_kbkdf(base, d, false, s->data, out_len, err);
        break;
    case KMIP_DERIVATION_METHOD_NIST800_108_F:
        rc = derive_kbkdf(base, d, true, s->data, out_len, err);
        break;
    default:
        rc = crypto_unsupported(err, "Derivation Method %s is not supported",
                                crypto_enum_name(KMIP_TAG_DERIVATION_METHOD, d->method));
    }
    if (rc) {
        kms_secret_free(s);
        return crypto_error_ensure(err, rc);
    }
    *out = s;
    return 0;
}
