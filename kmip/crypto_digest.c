/*
 * kmip/crypto_digest.c: the value of the Digest attribute.
 *
 * KMIP 1.1 section 3.17: a SHA-256 Digest Value of the key material, with
 * the Key Format Type of the material that was hashed. We hash the key in
 * the format a Get without Key Format Type returns (the registered one)
 * when that format is a byte string (Raw, Opaque, PKCS#1, PKCS#8, X.509,
 * EC Private Key), and the canonical stored bytes otherwise (Transparent
 * formats have no byte form of their own). Certificates, Opaque Objects
 * and Templates are hashed as stored, without a Key Format Type.
 */
#include <string.h>

#include <openssl/evp.h>

#include "kmip/kmip_crypto.h"

static bool is_key(uint32_t object_type)
{
    return object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
           object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY ||
           object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY ||
           object_type == KMIP_OBJECT_TYPE_SECRET_DATA;
}

int kmip_crypto_digest_value(kms_arena_t *a, const kmip_material_t *d, const kms_secret_t *stored,
                             ttlv_item_t **out)
{
    const uint8_t *p = stored->data;
    size_t n = stored->len;
    uint32_t fmt = d->stored_fmt;
    kms_secret_t *conv = NULL;
    EVP_PKEY *pk = NULL;
    uint8_t dg[32];
    ttlv_item_t *v;
    int rc = 0;

    *out = NULL;
    if ((d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY ||
         d->object_type == KMIP_OBJECT_TYPE_PUBLIC_KEY) &&
        d->registered_fmt && d->registered_fmt != d->stored_fmt &&
        !kmip_crypto_fmt_is_transparent_priv(d->registered_fmt) &&
        !kmip_crypto_fmt_is_transparent_pub(d->registered_fmt)) {
        bool priv = d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY;
        rc = kmip_crypto_pkey_load(d->stored_fmt, priv, stored->data, stored->len, &pk, NULL);
        if (rc == 0)
            rc = kmip_crypto_pkey_export(pk, d->registered_fmt, priv, &conv, NULL);
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
    rc = kmip_crypto_sha256(p, n, dg);
    kms_secret_free(conv);
    if (rc < 0)
        return rc;
    v = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!v || !ttlv_new_enum(a, v, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) ||
        !ttlv_new_bytes(a, v, KMIP_TAG_DIGEST_VALUE, dg, sizeof(dg)) ||
        (is_key(d->object_type) && fmt && !ttlv_new_enum(a, v, KMIP_TAG_KEY_FORMAT_TYPE, fmt)))
        return KMS_ERR_NOMEM;
    *out = v;
    return 0;
}
