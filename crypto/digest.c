/*
 * crypto/digest.c: SHA-256, and the value of the Digest attribute.
 *
 * KMIP 1.1 section 3.17: a SHA-256 Digest Value of the key material in the
 * Key Format Type the client registered it in, with that Key Format Type:
 * a Byte String Key Material is hashed as its bytes, a Structure (the
 * Transparent formats) as its TTLV encoding (test cases 18.1, 18.2). Keys
 * the server makes are hashed in the format a Get without Key Format Type
 * returns. Certificates, Opaque Objects and Templates are hashed as
 * stored, without a Key Format Type. Only SHA-256: the server computes
 * no further Digest instances.
 */
#include <pthread.h>
#include <string.h>

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

int crypto_digest_key_material(const ttlv_item_t *km, uint8_t digest_out[32])
{
    kms_buf_t b;
    int rc;

    if (km->type == TTLV_BYTE_STRING)
        return crypto_sha256(km->v.bytes.ptr, km->v.bytes.len, digest_out);
    kms_buf_init(&b, 64u << 20);
    rc = ttlv_encode(km, &b);
    if (rc == 0)
        rc = crypto_sha256(b.data, b.len, digest_out);
    kms_buf_dispose_wipe(&b); /* a Transparent key's private values */
    return rc;
}

/* The digest of a key the server made (or re-keyed): its Key Material
 * built in `fmt`, hashed as crypto_digest_key_material does. */
static int digest_built(const crypto_material_t *d, const kms_secret_t *stored, uint32_t fmt,
                        uint8_t dg[32])
{
    kms_arena_t *tmp = kms_arena_new(0);
    ttlv_item_t *kv = tmp ? ttlv_new_struct(tmp, NULL, KMIP_TAG_KEY_VALUE) : NULL;
    const ttlv_item_t *km;
    int rc = KMS_ERR_NOMEM;

    if (kv) {
        rc = crypto_key_material_add(tmp, kv, d, stored, fmt, NULL);
        km = rc == 0 ? ttlv_find(kv, KMIP_TAG_KEY_MATERIAL) : NULL;
        if (rc == 0)
            rc = km ? crypto_digest_key_material(km, dg) : KMS_ERR_INTERNAL;
    }
    kms_arena_free(tmp); /* wiped */
    return rc;
}

int crypto_digest_value(kms_arena_t *a, const crypto_material_t *d, const kms_secret_t *stored,
                        ttlv_item_t **value_out)
{
    uint32_t fmt = 0;
    uint8_t dg[32];
    ttlv_item_t *v;
    int rc;

    *value_out = NULL;
    if (d->object_type == KMIP_OBJECT_TYPE_SPLIT_KEY || d->object_type == KMIP_OBJECT_TYPE_PGP_KEY) {
        /* Stored as their structure: the digest is of the Key Material
         * (a byte string), in the Key Block's format. */
        crypto_keyobj_t k;
        if ((rc = crypto_keyobj_decode(a, stored, d->object_type, &k, NULL, NULL)) < 0)
            return rc;
        fmt = k.fmt;
        rc = crypto_sha256(k.material, k.len, dg);
    } else if (!is_key(d->object_type)) {
        rc = crypto_sha256(stored->data, stored->len, dg);
    } else {
        fmt = d->registered_fmt ? d->registered_fmt : d->stored_fmt;
        if (d->has_digest) {
            memcpy(dg, d->digest, sizeof(dg));
            rc = 0;
        } else {
            rc = digest_built(d, stored, fmt, dg);
            if (rc == KMS_ERR_NOTSUP && fmt != d->stored_fmt) {
                fmt = d->stored_fmt;
                rc = crypto_sha256(stored->data, stored->len, dg);
            }
        }
    }
    if (rc < 0)
        return rc;
    v = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!v || !ttlv_new_enum(a, v, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) ||
        !ttlv_new_bytes(a, v, KMIP_TAG_DIGEST_VALUE, dg, sizeof(dg)) ||
        (fmt && !ttlv_new_enum(a, v, KMIP_TAG_KEY_FORMAT_TYPE, fmt)))
        return KMS_ERR_NOMEM;
    *value_out = v;
    return 0;
}
