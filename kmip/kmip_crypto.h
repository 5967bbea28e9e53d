/*
 * kmip/kmip_crypto.h: key generation, key formats and key wrapping for
 * the KMIP operations (private to kmip/).
 *
 * Everything here is OpenSSL 3 EVP. Plaintext key material only ever lives
 * in kms_secret_t (wiped on free) or in arena memory (wiped with the
 * arena). The functions know the KMIP enumerations (algorithms, key format
 * types, curves) and the shapes of the Key Block / Key Value / Key Wrapping
 * Data structures, but nothing about the store, attributes or policy: the
 * operation files (op_register.c, op_keypair.c, op_rekey.c, and Get in the
 * core) load objects and decide who may do what.
 *
 * Canonical stored forms (what the core seals in the blob):
 *   Symmetric Key, Secret Data:        raw bytes           (fmt RAW)
 *   Private Key:                       PKCS#8 DER          (fmt PKCS_8)
 *   Public Key:                        X.509 SPKI DER      (fmt X_509)
 *   Certificate:                       X.509 DER           (fmt X_509)
 *   Opaque Object:                     the bytes           (fmt OPAQUE)
 *   Template:                          TTLV of the Template structure (fmt OPAQUE)
 * The format a client registered with is kept separately ("registered
 * format") so that a Get without Key Format Type returns what was sent.
 *
 * Errors: functions return 0 or a negative KMS_ERR_*. Functions that can
 * fail because of what the client sent also fill a kmip_cerr_t with the
 * KMIP Result Reason and a short message for the response.
 * Thread-safety: all functions are reentrant.
 */
#ifndef KMS_KMIP_CRYPTO_H
#define KMS_KMIP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/kms.h"
#include "ttlv/ttlv.h"

/* Why a client-caused failure happened: KMIP Result Reason + message. */
typedef struct kmip_cerr {
    uint32_t reason;  /* KMIP_RESULT_REASON_*; 0 when not set */
    char msg[160];
} kmip_cerr_t;

/* Set e (may be NULL) and return rc. */
int kmip_cerr_set(kmip_cerr_t *e, int rc, uint32_t reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------- symmetric keys */
/*
 * Check an (algorithm, length in bits) pair for Create / Register of a
 * Symmetric Key. AES: 128/192/256. Triple DES: 168 or 192 (three keys,
 * 24 bytes with parity) and 112 or 128 (two keys, 16 bytes). HMAC-SHA1/
 * 224/256/384/512: 8..4096 bits in whole bytes. Returns 0, or
 * KMS_ERR_INVAL (reason Invalid Field) / KMS_ERR_NOTSUP (Cryptographic
 * Algorithm not supported: Invalid Field too, as the spec has no better one).
 * *bytes_out (may be NULL) receives the key material size in bytes.
 */
int kmip_crypto_sym_check(uint32_t alg, int32_t bits, size_t *bytes_out, kmip_cerr_t *e);

/* Generate a symmetric key with the DRBG (RAND_priv_bytes). Triple DES keys
 * get odd parity in every byte. */
int kmip_crypto_sym_generate(uint32_t alg, int32_t bits, kms_secret_t **key_out,
                             kmip_cerr_t *e);

/* The Cryptographic Length in bits of `len` bytes of material for `alg`
 * (Triple DES: 168 for 24 bytes, 112 for 16; others len*8). */
int32_t kmip_crypto_sym_bits(uint32_t alg, size_t len);

/* ------------------------------------------------------------ key pairs */
/*
 * Check the parameters of Create Key Pair. RSA: bits 2048, 3072 or 4096
 * (e = 65537). ECDSA/ECDH/EC: curve P-256 or P-384 (Recommended Curve); a
 * length of 0 is allowed and set from the curve; a length that disagrees
 * with the curve is Invalid Field. When `curve` is 0 for EC, it is derived
 * from the length (256 -> P-256, 384 -> P-384).
 * On success *curve_out and *bits_out hold the resolved values.
 */
int kmip_crypto_keypair_check(uint32_t alg, int32_t bits, uint32_t curve, uint32_t *curve_out,
                              int32_t *bits_out, kmip_cerr_t *e);

/* Generate a key pair: private key as PKCS#8 DER, public key as X.509
 * SubjectPublicKeyInfo DER (both in secrets; the caller frees). Slow for
 * RSA-4096 (seconds): call only from a worker thread. */
int kmip_crypto_keypair_generate(uint32_t alg, int32_t bits, uint32_t curve,
                                 kms_secret_t **priv_out, kms_secret_t **pub_out, kmip_cerr_t *e);

/* ----------------------------------------------------- asymmetric forms */
/*
 * Load DER of key format `fmt` into an EVP_PKEY. Private formats: PKCS_1
 * (RSAPrivateKey), PKCS_8 (PrivateKeyInfo), EC_PRIVATE_KEY (RFC 5915).
 * Public formats: PKCS_1 (RSAPublicKey), X_509 (SubjectPublicKeyInfo).
 * `is_private` selects which. Returns KMS_ERR_PROTO (Invalid Field) when
 * OpenSSL cannot parse the bytes or they hold the wrong kind of key.
 */
int kmip_crypto_pkey_load(uint32_t fmt, bool is_private, const uint8_t *der, size_t len,
                          EVP_PKEY **pkey_out, kmip_cerr_t *e);

/* Export an EVP_PKEY as DER of format `fmt` (as above). PKCS_1 only for
 * RSA; EC_PRIVATE_KEY only for EC. KMS_ERR_NOTSUP with reason Key Format
 * Type Not Supported otherwise. */
int kmip_crypto_pkey_export(EVP_PKEY *pkey, uint32_t fmt, bool is_private, kms_secret_t **der_out,
                            kmip_cerr_t *e);

/* KMIP algorithm (RSA or ECDSA), length in bits and Recommended Curve (0
 * for RSA) of a key. EC keys on curves other than P-192/224/256/384/521
 * are KMS_ERR_NOTSUP. */
int kmip_crypto_pkey_params(EVP_PKEY *pkey, uint32_t *alg_out, int32_t *bits_out,
                            uint32_t *curve_out, kmip_cerr_t *e);

/*
 * Transparent key formats as TTLV Key Material structures:
 *   Transparent RSA Private Key: Modulus, Private Exponent, Public Exponent,
 *     P, Q, Prime Exponent P, Prime Exponent Q, CRT Coefficient (Big Integers)
 *   Transparent RSA Public Key: Modulus, Public Exponent
 *   Transparent EC/ECDSA/ECDH/ECMQV Private Key: Recommended Curve, D
 *   Transparent EC/ECDSA/ECDH/ECMQV Public Key: Recommended Curve, Q String
 * _build appends a Key Material structure to `parent` (arena `a`, which
 * is wiped when freed: private values are in it); _parse reads one back
 * into an EVP_PKEY (validated by OpenSSL).
 */
int kmip_crypto_transparent_build(kms_arena_t *a, ttlv_item_t *parent, EVP_PKEY *pkey,
                                  uint32_t fmt, kmip_cerr_t *e);
int kmip_crypto_transparent_parse(const ttlv_item_t *key_material, uint32_t fmt,
                                  EVP_PKEY **pkey_out, kmip_cerr_t *e);

/* True when `fmt` is a Transparent private / public asymmetric format. */
bool kmip_crypto_fmt_is_transparent_priv(uint32_t fmt);
bool kmip_crypto_fmt_is_transparent_pub(uint32_t fmt);

/* Curves: KMIP Recommended Curve <-> OpenSSL group name ("prime256v1")
 * and field size in bits. Unknown: NULL / 0. */
const char *kmip_crypto_curve_group(uint32_t curve, int32_t *bits_out);
uint32_t kmip_crypto_curve_by_group(const char *group, int32_t *bits_out);
/* ECDSA, ECDH, ECMQV or EC (1.3+). */
bool kmip_crypto_alg_is_ec(uint32_t alg);

/* Parse an X.509 certificate in DER; KMS_ERR_PROTO when it does not parse
 * or has trailing bytes. */
int kmip_crypto_cert_check(const uint8_t *der, size_t len, kmip_cerr_t *e);

/* Attribute Value items (tag Attribute Value) derived from a DER X.509
 * certificate, allocated in `a`: KMIP 1.1 X.509 Certificate Identifier /
 * Subject / Issuer, the 1.0 text forms Certificate Identifier / Subject /
 * Issuer, and the Digital Signature Algorithm (0 when not in KMIP's list).
 * KMS_ERR_PROTO when the bytes are not one certificate. */
typedef struct kmip_cert_attrs {
    ttlv_item_t *x509_identifier, *x509_subject, *x509_issuer;
    ttlv_item_t *identifier, *subject, *issuer;
    uint32_t sig_alg;
} kmip_cert_attrs_t;
int kmip_crypto_cert_attrs(kms_arena_t *a, const uint8_t *der, size_t len, kmip_cert_attrs_t *out);

/* SHA-256 of `len` bytes into out[32] (the Digest attribute's Digest Value,
 * with Hashing Algorithm SHA-256, taken over the key material as stored). */
int kmip_crypto_sha256(const uint8_t *p, size_t len, uint8_t out[32]);

/* -------------------------------------------------------- key wrapping */
/*
 * AES Key Wrap (RFC 3394, NIST SP 800-38F KW) and with padding (RFC 5649,
 * KWP) using EVP_aes_*_wrap(_pad). kek is 16, 24 or 32 bytes. For KW the
 * plaintext must be a multiple of 8 bytes and >= 16. Unwrap failures
 * (integrity check) are KMS_ERR_CRYPTO. The output of unwrap is a secret.
 */
int kmip_crypto_aes_wrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                         size_t in_len, kms_buf_t *out);
int kmip_crypto_aes_unwrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                           size_t in_len, kms_secret_t **out);

/* ---------------------------------------------------------- key blocks */
/* Description of one object's stored material (not secret). */
typedef struct kmip_material {
    uint32_t object_type;    /* KMIP_OBJECT_TYPE_* */
    uint32_t stored_fmt;     /* canonical stored format (see the top of this file) */
    uint32_t registered_fmt; /* format to answer a Get without Key Format Type */
    uint32_t alg;            /* Cryptographic Algorithm, 0 if none */
    int32_t bits;            /* Cryptographic Length, 0 if none */
    uint32_t curve;          /* Recommended Curve for EC keys, else 0 */
    uint32_t sub_type;       /* Secret Data Type / Opaque Data Type / Certificate Type */
} kmip_material_t;

/* How Get wants the key wrapped (already resolved by the caller: the
 * wrapping key is loaded and checked with kmip_crypto_kek_load). */
typedef struct kmip_wrap {
    const char *key_id;          /* Unique Identifier of the wrapping key */
    const kms_secret_t *kek;     /* its plaintext AES key */
    uint32_t block_mode;         /* NIST_KEY_WRAP (RFC 3394) or AES_KEY_WRAP_PADDING (RFC 5649) */
    uint32_t encoding;           /* 0 (default: TTLV Encoding, not echoed), NO_ENCODING
                                    or TTLV_ENCODING (echoed in Key Wrapping Data) */
    ttlv_item_t *const *attrs;   /* Attribute structures to wrap with the key material */
    size_t n_attrs;              /* (Key Wrapping Specification's Attribute Names);
                                    only with TTLV encoding */
} kmip_wrap_t;

/*
 * Parse the object structure of a Register request (Symmetric Key, Public
 * Key, Private Key, Secret Data: a Key Block; Certificate: Certificate
 * Type + Value; Opaque Object: Opaque Data Type + Value; Template: its
 * Attributes) into canonical stored bytes and a description. The material
 * is validated: a key of the stated algorithm and length, an RSA/EC key
 * OpenSSL loads, a certificate that parses. A wrapped Key Block (Key
 * Wrapping Data present) is refused with Feature Not Supported unless
 * `unwrap_cb` can resolve the wrapping key (see below).
 * `obj` is the object structure itself (e.g. the Symmetric Key item).
 */
typedef int (*kmip_kek_lookup_cb)(void *arg, const char *key_id, kms_secret_t **kek_out,
                                  kmip_cerr_t *e);
int kmip_crypto_object_parse(const ttlv_item_t *obj, uint32_t object_type,
                             kmip_kek_lookup_cb unwrap_cb, void *unwrap_arg,
                             kms_secret_t **stored_out, kmip_material_t *desc_out, kmip_cerr_t *e);

/*
 * Build the object structure for a Get response and append it to
 * `parent`: the Key Block in `want_fmt` (0 = the registered format), with
 * Key Material converted from the stored form, Cryptographic Algorithm and
 * Length, optionally wrapped as `wrap` says (NULL = not wrapped). A format
 * that cannot be produced is KMS_ERR_NOTSUP with reason Key Format Type
 * Not Supported. `want_compression` non-zero is Key Compression Type Not
 * Supported. Secret values are written only into arena `a`.
 */
int kmip_crypto_object_build(kms_arena_t *a, ttlv_item_t *parent, const kmip_material_t *desc,
                             const kms_secret_t *stored, uint32_t want_fmt,
                             const kmip_wrap_t *wrap, kmip_cerr_t *e);

/* The TTLV tag of the object structure for an Object Type (Symmetric Key ->
 * KMIP_TAG_SYMMETRIC_KEY...), 0 when the type has none we support. */
uint32_t kmip_crypto_object_tag(uint32_t object_type);

/*
 * The Digest attribute's value (an Attribute Value structure in `a`):
 * Hashing Algorithm SHA-256, Digest Value, and for keys the Key Format
 * Type of the hashed material, which is the key as a Get without Key
 * Format Type returns it when that is a byte string (e.g. PKCS#1 for a
 * created RSA key), else the canonical stored form. crypto_digest.c.
 */
int kmip_crypto_digest_value(kms_arena_t *a, const kmip_material_t *d, const kms_secret_t *stored,
                             ttlv_item_t **out);

/* ------------------------------------------- glue with the object model */
/* These use kmip_int.h (ctx, objects); failures are recorded with
 * kmip_fail() on the context. Implemented in keywrap_keys.c. */
struct kmip_ctx;
struct kmip_obj;

/*
 * Load the managed key `key_id` for use as a key-encryption key and return
 * its plaintext (owned by the caller). It must be visible to the
 * requester, a Symmetric Key with Cryptographic Algorithm AES, in State
 * Active, with the usage bit `usage` (Wrap Key for Get, Unwrap Key for
 * Register) in its Cryptographic Usage Mask. *mode_out (may be NULL) gets
 * the Block Cipher Mode of its Cryptographic Parameters, or 0.
 */
int kmip_crypto_kek_load(struct kmip_ctx *ctx, const char *key_id, uint32_t usage,
                         kms_secret_t **kek_out, uint32_t *mode_out);

/*
 * Everything Get needs to answer with object `o`: opens its material,
 * applies Key Format Type (`want_fmt`, 0 = as registered), Key
 * Compression Type (`want_compression`, 0 = none; anything else is Key
 * Compression Type Not Supported) and the Key Wrapping Specification
 * (`kws`, NULL = not wrapped), and appends the object structure
 * (Symmetric Key, Private Key, ...) to `parent`.
 */
int kmip_crypto_get_object(struct kmip_ctx *ctx, struct kmip_obj *o, uint32_t want_fmt,
                           uint32_t want_compression, const ttlv_item_t *kws,
                           ttlv_item_t *parent);

/*
 * Re-key helpers (op_rekey.c), used by Re-key and Re-key Key Pair:
 * kmip_rekey_derive() makes the (unsaved, material-less) replacement of
 * `old` per KMIP 1.1 section 4.4: same type, template `tmpl` applied
 * (may be NULL; it cannot change algorithm or length), client attributes
 * copied, dates copied or shifted by `offset` (an Interval item or NULL),
 * Replaced Object Link to the old object. kmip_rekey_retire() then moves
 * the old object's Names away and gives it the Replacement Object Link.
 */
int kmip_rekey_derive(struct kmip_ctx *ctx, struct kmip_obj *old, const ttlv_item_t *tmpl,
                      const ttlv_item_t *offset, struct kmip_obj **new_out);
int kmip_rekey_retire(struct kmip_ctx *ctx, const char *old_id, const char *new_id);

/* Re-key Key Pair (op_keypair.c); a KMIP 1.1 operation beyond the core's
 * list in kmip_int.h. */
int kmip_op_rekey_key_pair(struct kmip_ctx *ctx);

#endif /* KMS_KMIP_CRYPTO_H */
