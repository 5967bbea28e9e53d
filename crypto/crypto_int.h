/*
 * crypto/crypto_int.h: helpers shared by the files of crypto/; no other
 * folder includes it. Lookups in TTLV structures that check the item's
 * type, printable names of KMIP enumerations for messages, and the one
 * DER certificate parser.
 */
#ifndef KMS_CRYPTO_INT_H
#define KMS_CRYPTO_INT_H

#include <openssl/x509.h>

#include "crypto/crypto.h"

/* The first child of `parent` with `tag` when it has type `t`, else NULL
 * (also when `parent` is NULL or not a Structure). */
static inline const ttlv_item_t *crypto_find_typed(const ttlv_item_t *parent, uint32_t tag,
                                                   enum ttlv_type t)
{
    const ttlv_item_t *it = ttlv_find(parent, tag);
    return it && it->type == t ? it : NULL;
}

/* The name of value `v` of the enumeration field `tag` ("PKCS_8"...), or
 * "(unknown)"; never NULL. For error messages. */
static inline const char *crypto_enum_name(uint32_t tag, uint32_t v)
{
    const char *n = ttlv_enum_name(tag, v);
    return n ? n : "(unknown)";
}

/* The exit of a public function that takes `err` and called
 * kms_error_clear(err) on entry: a failure that nothing recorded on the
 * way (an allocation deep down) is recorded as `rc` with no Result
 * Reason, so that err->code always matches a negative return. Returns rc. */
static inline int crypto_error_ensure(kms_error_t *err, int rc)
{
    if (rc < 0 && err && err->code == 0)
        kms_error_set(err, rc, NULL);
    return rc;
}

/* Exactly one DER X.509 certificate (no trailing bytes) parsed, or NULL;
 * leaves OpenSSL's error queue empty. The caller frees with X509_free.
 * cert.c. */
X509 *crypto_cert_d2i(const uint8_t *der, size_t len);

#endif /* KMS_CRYPTO_INT_H */
