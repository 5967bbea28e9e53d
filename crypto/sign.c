/*
 * crypto/sign.c: Sign and Signature Verify (KMIP 1.2 sections 4.31,
 * 4.32).
 *
 * RSA with PKCS#1 v1.5 or PSS padding, ECDSA on whatever curve the key is
 * on (signatures DER-encoded, as X9.62 and every TLS/X.509 stack write
 * them). The data is hashed here, in parts when the client streams it, or
 * arrives already hashed (Digested Data, KMIP 1.4), then signed as is.
 * Verification never fails as an error because a signature is wrong: the
 * verdict is the Validity Indicator. DSA and EdDSA keys are not signed
 * with (Invalid Field); which key may sign is kmip/'s decision.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "crypto/crypto_int.h"

typedef struct sign_op {
    crypto_op_t base;
    EVP_MD_CTX *mctx;        /* hashing here */
    EVP_PKEY_CTX *pctx;      /* Digested Data */
    bool verify;
    size_t md_size;
} sign_op_t;

static int sign_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                       kms_error_t *err);
static int sign_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                      crypto_final_t *fin, kms_error_t *err);

static void sign_dispose(crypto_op_t *op)
{
    sign_op_t *s = (sign_op_t *)op;
    EVP_MD_CTX_free(s->mctx);  /* frees the EVP_PKEY_CTX it made, too */
    EVP_PKEY_CTX_free(s->pctx);
    free(s);
}

/* The hash a Digital Signature Algorithm names, and whether it is RSA
 * (1), RSA-PSS (2) or ECDSA (3); 0 when unknown. */
static int sig_alg_parts(uint32_t sa, uint32_t *hash_out)
{
    static const struct {
        uint32_t sa, hash;
        int kind;
    } t[] = {
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_MD5_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_MD5, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA1_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA_1, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA224_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA_224, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA256_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA_256, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA384_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA_384, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA512_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA_512, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA3_256_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA3_256, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA3_384_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA3_384, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA3_512_WITH_RSA_ENCRYPTION, KMIP_HASHING_ALGORITHM_SHA3_512, 1},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_RSASSA_PSS, 0, 2},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA1, KMIP_HASHING_ALGORITHM_SHA_1, 3},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA224, KMIP_HASHING_ALGORITHM_SHA_224, 3},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256, KMIP_HASHING_ALGORITHM_SHA_256, 3},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA384, KMIP_HASHING_ALGORITHM_SHA_384, 3},
        {KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA512, KMIP_HASHING_ALGORITHM_SHA_512, 3},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(t); i++)
        if (t[i].sa == sa) {
            *hash_out = t[i].hash;
            return t[i].kind;
        }
    return 0;
}

/* Padding and PSS parameters on the key context. */
static int set_rsa_padding(EVP_PKEY_CTX *pctx, bool pss, const EVP_MD *md,
                           const crypto_params_t *p, kms_error_t *err)
{
    if (!pss)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1
                   ? 0
                   : crypto_failed(err, "padding refused");
    const EVP_MD *mgf = p->mgf_hash ? crypto_md_get(p->mgf_hash) : md;
    if (!mgf)
        return crypto_unsupported(err, "Mask Generator Hashing Algorithm not supported");
    int salt = p->has_salt_len ? p->salt_len : RSA_PSS_SALTLEN_DIGEST;
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1)
        return crypto_invalid(err, "PSS parameters refused (Salt Length %d)", salt);
    return 0;
}

int crypto_sign_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                      const crypto_start_t *in, crypto_op_t **op_out, kms_error_t *err)
{
    int rc = 0;
    kms_error_clear(err);
    *op_out = NULL;
    if (!key || !key->pkey || !p || (svc != CRYPTO_SVC_SIGN && svc != CRYPTO_SVC_VERIFY))
        return kms_error_set(err, KMS_ERR_INVAL, "bad arguments");
    bool prehashed = in && in->prehashed;
    int base = EVP_PKEY_get_base_id(key->pkey);
    bool rsa = base == EVP_PKEY_RSA;
    if (!rsa && base != EVP_PKEY_EC)
        return crypto_invalid(err, "only RSA and EC keys sign");
    if (in && (in->iv || in->aad))
        return crypto_invalid(err, "signatures take no IV/Counter/Nonce or additional data");
    uint32_t hash = p->hash, sa_hash = 0;
    bool pss = p->padding == KMIP_PADDING_METHOD_PSS;
    if (p->sig_alg) {
        int kind = sig_alg_parts(p->sig_alg, &sa_hash);
        if (!kind || (kind == 3) == rsa)
            return crypto_invalid(err, "Digital Signature Algorithm %s does not fit a%s key",
                                  crypto_enum_name(KMIP_TAG_DIGITAL_SIGNATURE_ALGORITHM, p->sig_alg),
                                  rsa ? "n RSA" : "n EC");
        if (kind == 2)
            pss = true;
        if (hash && sa_hash && hash != sa_hash)
            return crypto_invalid(err, "Hashing Algorithm and Digital Signature Algorithm disagree");
        if (!hash)
            hash = sa_hash;
    }
    if (p->alg && (rsa ? p->alg != KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA : !crypto_alg_is_ec(p->alg)))
        return crypto_invalid(err, "the parameters name %s for a%s key",
                              crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, p->alg),
                              rsa ? "n RSA" : "n EC");
    if (rsa && p->padding && p->padding != KMIP_PADDING_METHOD_PKCS1_V1_5 && !pss)
        return crypto_invalid(err, "Padding Method %s does not sign (PKCS1 v1.5, PSS)",
                              crypto_enum_name(KMIP_TAG_PADDING_METHOD, p->padding));
    if (!rsa && p->padding && p->padding != KMIP_PADDING_METHOD_NONE)
        return crypto_invalid(err, "ECDSA takes no Padding Method");
    if (p->mode)
        return crypto_invalid(err, "signatures take no Block Cipher Mode");
    if (!hash)
        hash = KMIP_HASHING_ALGORITHM_SHA_256;
    const EVP_MD *md = crypto_md_get(hash);
    if (!md)
        return crypto_unsupported(err, "Hashing Algorithm %s not supported",
                                  crypto_enum_name(KMIP_TAG_HASHING_ALGORITHM, hash));
    sign_op_t *s = calloc(1, sizeof(*s));
    if (!s)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    crypto_op_init(&s->base, svc, !prehashed);
    s->base.dispose = sign_dispose;
    s->base.update = sign_update;
    s->base.final = sign_final;
    s->verify = svc == CRYPTO_SVC_VERIFY;
    s->md_size = (size_t)EVP_MD_get_size(md);
    EVP_PKEY_CTX *pctx = NULL;
    if (prehashed) {
        s->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        if (!s->pctx) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        pctx = s->pctx;
        if ((s->verify ? EVP_PKEY_verify_init(pctx) : EVP_PKEY_sign_init(pctx)) != 1 ||
            EVP_PKEY_CTX_set_signature_md(pctx, md) != 1) {
            rc = crypto_invalid(err, "this key cannot %s", s->verify ? "verify" : "sign");
            goto out;
        }
    } else {
        s->mctx = EVP_MD_CTX_new();
        if (!s->mctx) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        int ok = s->verify ? EVP_DigestVerifyInit(s->mctx, &pctx, md, NULL, key->pkey)
                           : EVP_DigestSignInit(s->mctx, &pctx, md, NULL, key->pkey);
        if (ok != 1) {
            rc = crypto_invalid(err, "this key cannot %s with %s", s->verify ? "verify" : "sign",
                                crypto_enum_name(KMIP_TAG_HASHING_ALGORITHM, hash));
            goto out;
        }
    }
    if (rsa && (rc = set_rsa_padding(pctx, pss, md, p, err)))
        goto out;
out:
    if (rc) {
        ERR_clear_error();
        crypto_op_free(&s->base);
        return crypto_error_ensure(err, rc);
    }
    *op_out = &s->base;
    return 0;
}

/* ------------------------------------------------------------ the steps */
static int sign_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                       kms_error_t *err)
{
    (void)out;
    sign_op_t *s = (sign_op_t *)op;
    int ok = s->verify ? EVP_DigestVerifyUpdate(s->mctx, data, len)
                       : EVP_DigestSignUpdate(s->mctx, data, len);
    return ok == 1 ? 0 : crypto_failed(err, "hashing failed");
}

static int sign_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                      crypto_final_t *fin, kms_error_t *err)
{
    sign_op_t *s = (sign_op_t *)op;
    size_t n = 0;
    if (s->pctx && held_len != s->md_size)
        return crypto_invalid(err, "Digested Data of %zu bytes, the hash gives %zu", held_len,
                              s->md_size);
    if (s->verify) {
        if (!fin->check)
            return crypto_invalid(err, "Signature Data missing");
        int v = s->pctx ? EVP_PKEY_verify(s->pctx, fin->check, fin->check_len, held, held_len)
                        : EVP_DigestVerifyFinal(s->mctx, fin->check, fin->check_len);
        ERR_clear_error(); /* a malformed signature is just invalid */
        fin->valid = v == 1;
        return 0;
    }
    int ok = s->pctx ? EVP_PKEY_sign(s->pctx, NULL, &n, held, held_len)
                     : EVP_DigestSignFinal(s->mctx, NULL, &n);
    uint8_t *dst = ok == 1 ? crypto_buf_room(out, n, err) : NULL;
    if (ok == 1 && !dst)
        return err ? err->code : KMS_ERR_LIMIT;
    if (ok == 1)
        ok = s->pctx ? EVP_PKEY_sign(s->pctx, dst, &n, held, held_len)
                     : EVP_DigestSignFinal(s->mctx, dst, &n);
    if (ok != 1) {
        ERR_clear_error();
        return crypto_failed(err, "signing failed");
    }
    out->len += n;
    return 0;
}

int crypto_cert_pubkey(const uint8_t *der, size_t len, EVP_PKEY **pkey_out, kms_error_t *err)
{
    kms_error_clear(err);
    *pkey_out = NULL;
    X509 *x = crypto_cert_d2i(der, len);
    if (!x)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "the certificate does not parse");
    *pkey_out = X509_get_pubkey(x);
    X509_free(x);
    ERR_clear_error();
    return *pkey_out ? 0 : crypto_failed(err, "no public key in the certificate");
}
