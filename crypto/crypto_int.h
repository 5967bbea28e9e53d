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

/* Append the Key Material item of a key object (Symmetric, Private,
 * Public Key, Secret Data) in format `fmt`, converted from its stored
 * form, to the Key Value structure `kv` (arena `a`: secret values go
 * there only). KMS_ERR_NOTSUP with Key Format Type Not Supported when the
 * format cannot be produced. keyformat_build.c. */
int crypto_key_material_add(kms_arena_t *a, ttlv_item_t *kv, const crypto_material_t *d,
                            const kms_secret_t *stored, uint32_t fmt, kms_error_t *err);

/* SHA-256 of a Key Material item as the Digest attribute hashes it: the
 * bytes of a Byte String, the TTLV encoding of a Structure (Transparent
 * formats). digest.c. */
int crypto_digest_key_material(const ttlv_item_t *km, uint8_t digest_out[32]);

/* Exactly one DER X.509 certificate (no trailing bytes) parsed, or NULL;
 * leaves OpenSSL's error queue empty. The caller frees with X509_free.
 * cert.c. */
X509 *crypto_cert_d2i(const uint8_t *der, size_t len);

/* ------------------------------------------------ cryptographic services */
/*
 * The operation object behind crypto_op_t. Each service embeds it as the
 * first member of its own state (cipher.c, sign.c, mac.c, hash.c) and sets
 * the three functions. For operations that cannot stream, op.c keeps the
 * input in `held` (wiped) and hands it to `final` as one part.
 */
struct crypto_op {
    enum crypto_svc svc;
    bool streamable;
    int (*update)(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                  kms_error_t *err);
    int (*final)(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                 crypto_final_t *fin, kms_error_t *err);
    void (*dispose)(crypto_op_t *op);
    kms_buf_t held;
};

/* Most input a non-streamable operation keeps (RSA, key wrap, XTS). */
#define CRYPTO_HELD_MAX (16u << 20)

static inline void crypto_op_init(crypto_op_t *op, enum crypto_svc svc, bool streamable)
{
    op->svc = svc;
    op->streamable = streamable;
    kms_buf_init(&op->held, CRYPTO_HELD_MAX);
}

/* Fetched once per process (params.c): the EVP_MD of a KMIP Hashing
 * Algorithm, NULL when unsupported; and an EVP_CIPHER by OpenSSL name
 * ("AES-256-GCM"), NULL when absent. Never freed. */
const EVP_MD *crypto_md_get(uint32_t hash);
const EVP_CIPHER *crypto_cipher_get(const char *name);

/* kms_error_set_reason with KMIP_RESULT_REASON_INVALID_FIELD / FEATURE_NOT_
 * SUPPORTED / CRYPTOGRAPHIC_FAILURE; returns the code. */
#define crypto_invalid(err, ...) \
    kms_error_set_reason((err), KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD, __VA_ARGS__)
#define crypto_unsupported(err, ...) \
    kms_error_set_reason((err), KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED, __VA_ARGS__)
#define crypto_failed(err, ...) \
    kms_error_set_reason((err), KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, __VA_ARGS__)

/* Append room for `n` more bytes to `b` and return where they start, or
 * NULL (KMS_ERR_LIMIT / NOMEM recorded in err). The caller then adds the
 * bytes it wrote to b->len. */
uint8_t *crypto_buf_room(kms_buf_t *b, size_t n, kms_error_t *err);

/* The digest name for EVP_MD_get0_name-style parameters ("SHA2-256"). */
static inline const char *crypto_md_name(const EVP_MD *md)
{
    return md ? EVP_MD_get0_name(md) : NULL;
}

/* A CRMF Certificate Request (crmf.c) as an unsigned X509_REQ carrying
 * its CertTemplate's subject, public key and extensions; *pop_out true
 * when a signature proof of possession verified. Invalid Field when it
 * does not parse, holds other than one message or no public key;
 * Cryptographic Failure when its signature POP does not verify. */
int crypto_crmf_parse(const uint8_t *p, size_t n, X509_REQ **req_out, bool *pop_out,
                      kms_error_t *err);

#endif /* KMS_CRYPTO_INT_H */
