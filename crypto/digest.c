/*
 * crypto/digest.c: SHA-256, and the value of the Digest attribute.
 *
 * KMIP 1.1 section 3.17: a SHA-256 Digest Value of the key material, with
 * the Key Format Type of the material that was hashed. We hash the key in
 * the format a Get without Key Format Type returns (the registered one)
 * when that format is a byte string (Raw, Opaque, PKCS#1, PKCS#8, X.509,
 * EC Private Key), and the canonical stored bytes otherwise (Transparent
 * formats have no byte form of their own). Certificates, Opaque Objects
 * and Templates are hashed as stored, without a Key Format Type.
 */
#include <pthread.h>

#include <openssl/evp.h>

#include "crypto/crypto_int.h"

/* Fetched once: OpenSSL 3 fetches a legacy EVP_sha256() again per call. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int crypto_sha256(const uint8_t *p, size_t len, uint8_t digest_out[32])
{
    unsigned int n = 0;
    pthread_once(&g_sha256_once, sha256_fetch);
    if (EVP_Digest(p, len, digest_out, &n, g_sha256 ? g_sha256 : EVP_sha256(), NULL) != 1 ||
        n != 32)
        return KMS_ERR_CRYPTO;
    return 0;
}

static bool is_key(uint32_t object_type)
{
    return object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
           object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY ||
           object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY ||
           object_type == KMIP_OBJECT_TYPE_SECRET_DATA;
}

int crypto_digest_value(kms_arena_t *a, const crypto_material_t *d, const kms_secret_t *stored,
                        ttlv_item_t **value_out)
{
    const uint8_t *p = stored->data;
    size_t n = stored->len;
    uint32_t fmt = d->stored_fmt;
    kms_secret_t *conv = NULL;
    EVP_PKEY *pk = NULL;
    uint8_t dg[32];
    ttlv_item_t *v;
    int rc = 0;

    *value_out = NULL;
    if ((d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY ||
         d->object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY) &&
        d->registered_fmt && d->registered_fmt != d->stored_fmt &&
        !crypto_fmt_is_transparent_priv(d->registered_fmt) &&
        !crypto_fmt_is_transparent_pub(d->registered_fmt)) {
        bool priv = d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY;
        rc = crypto_pkey_load(d->stored_fmt, priv, stored->data, stored->len, &pk, NULL);
        if (rc == 0)
            rc = crypto_pkey_export(pk, d->registered_fmt, priv, &conv, NULL);
        EVP_PKEY_free(pk);
        if (rc < 0)
            return rc;
        p = conv->data;
        n = conv->len;
        fmt = d->registered_fmt;
    } else if (d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA ||
               (d->object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY &&
                d->registered_fmt == KMIP_KEY_FORMAT_TYPE_OPAQUE)) {
        fmt = d->registered_fmt ? d->registered_fmt : d->stored_fmt; /* same bytes */
    }
    rc = crypto_sha256(p, n, dg);
    kms_secret_free(conv);
    if (rc < 0)
        return rc;
    v = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!v || !ttlv_new_enum(a, v, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) ||
        !ttlv_new_bytes(a, v, KMIP_TAG_DIGEST_VALUE, dg, sizeof(dg)) ||
        (is_key(d->object_type) && fmt && !ttlv_new_enum(a, v, KMIP_TAG_KEY_FORMAT_TYPE, fmt)))
        return KMS_ERR_NOMEM;
    *value_out = v;
    return 0;
}
