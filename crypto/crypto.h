/*
 * crypto/crypto.h: key generation, key formats, key wrapping and digests
 * for kmsd, on OpenSSL 3 EVP. The one public header of crypto/.
 *
 * The module knows the KMIP enumerations (algorithms, key format types,
 * curves, Result Reasons) and the shapes of the Key Block / Key Value /
 * Key Wrapping Data structures (from ttlv/), but nothing about requests,
 * the store, attributes, tenants or policy: kmip/ loads objects, decides
 * who may do what and calls in here with bytes and TTLV items. It depends
 * only on common/, ttlv/ and libcrypto.
 *
 * Plaintext key material only ever lives in kms_secret_t (wiped on free),
 * in BIGNUMs cleared when freed (BN_secure_new, BN_clear_free) or in arena
 * memory (arenas are wiped when freed). Nothing here logs.
 *
 * Files, one concern each:
 *   sym.c             symmetric key parameters and generation
 *   pkey.c            RSA/EC key pairs: generation, DER load/export, curves
 *   transparent.c     the Transparent RSA/EC Key Material structures
 *   cert.c            X.509 certificates: well-formedness, derived attributes
 *   digest.c          SHA-256 and the Digest attribute's value
 *   keywrap.c         AES Key Wrap (RFC 3394) and with padding (RFC 5649)
 *   keyformat_parse.c a Register object structure -> canonical stored bytes
 *   keyformat_build.c canonical stored bytes -> a Get object structure
 * The cryptographic services (Encrypt/Decrypt, Sign/Verify, MAC, Hash,
 * RNG, Derive Key) belong here too, one file per service, taking keys in
 * their canonical stored form (crypto_pkey_load for asymmetric ones) and
 * reporting through kms_error_t like everything below.
 *
 * Canonical stored forms (what kmip/ seals in the blob):
 *   Symmetric Key, Secret Data:        raw bytes           (fmt RAW)
 *   Private Key:                       PKCS#8 DER          (fmt PKCS_8)
 *   Public Key:                        X.509 SPKI DER      (fmt X_509)
 *   Certificate:                       X.509 DER           (fmt X_509)
 *   Opaque Object:                     the bytes           (fmt OPAQUE)
 *   Template:                          TTLV of the Template structure (fmt OPAQUE)
 * The format a client registered with is kept separately ("registered
 * format") so that a Get without Key Format Type returns what was sent.
 *
 * Errors: functions return 0 or a negative KMS_ERR_*. Those that can fail
 * because of what a client sent take `kms_error_t *err` last (NULL
 * allowed) and record there the KMIP Result Reason for the response
 * (err->reason, a KMIP_RESULT_REASON_*) and a short message.
 * Thread-safety: every function is reentrant; EVP_PKEY values passed in
 * are only read.
 */
#ifndef KMS_CRYPTO_H
#define KMS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/kms.h"
#include "ttlv/ttlv.h"

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
int crypto_sym_check(uint32_t alg, int32_t bits, size_t *bytes_out, kms_error_t *err);

/* Generate a symmetric key with the DRBG (RAND_priv_bytes). Triple DES keys
 * get odd parity in every byte. *key_out is the caller's to free. */
int crypto_sym_generate(uint32_t alg, int32_t bits, kms_secret_t **key_out, kms_error_t *err);

/* The Cryptographic Length in bits of `len` bytes of material for `alg`
 * (Triple DES: 168 for 24 bytes, 112 for 16; others len*8; -1 when
 * len*8 does not fit an int32). */
int32_t crypto_sym_bits(uint32_t alg, size_t len);

/* ------------------------------------------------------------ key pairs */
/*
 * Check the parameters of Create Key Pair. RSA: bits 2048, 3072 or 4096
 * (e = 65537). ECDSA/ECDH/ECMQV/EC: curve P-256, P-384 or P-521
 * (Recommended Curve); a length of 0 is allowed and set from the curve; a
 * length that disagrees with the curve is Invalid Field. When `curve` is
 * 0 for EC, it is derived from the length (256 -> P-256, ...).
 * On success *curve_out and *bits_out hold the resolved values.
 */
int crypto_keypair_check(uint32_t alg, int32_t bits, uint32_t curve, uint32_t *curve_out,
                         int32_t *bits_out, kms_error_t *err);

/* Generate a key pair: private key as PKCS#8 DER, public key as X.509
 * SubjectPublicKeyInfo DER (both in secrets; the caller frees). Slow for
 * RSA-4096 (seconds): call only from a worker thread. */
int crypto_keypair_generate(uint32_t alg, int32_t bits, uint32_t curve, kms_secret_t **priv_out,
                            kms_secret_t **pub_out, kms_error_t *err);

/* ----------------------------------------------------- asymmetric forms */
/*
 * Load DER of key format `fmt` into an EVP_PKEY (the caller frees it).
 * Private formats: PKCS_1 (RSAPrivateKey), PKCS_8 (PrivateKeyInfo),
 * EC_PRIVATE_KEY (RFC 5915). Public formats: PKCS_1 (RSAPublicKey), X_509
 * (SubjectPublicKeyInfo). `is_private` selects which. The DER must be
 * consumed exactly. KMS_ERR_PROTO (Invalid Field) when OpenSSL cannot
 * parse the bytes, KMS_ERR_NOTSUP when they hold a key other than RSA or
 * EC, or the format does not apply (Key Format Type Not Supported).
 * The key is parsed, not validated: see crypto_object_parse for that.
 */
int crypto_pkey_load(uint32_t fmt, bool is_private, const uint8_t *der, size_t len,
                     EVP_PKEY **pkey_out, kms_error_t *err);

/* Export an EVP_PKEY as DER of format `fmt` (as above). PKCS_1 only for
 * RSA; EC_PRIVATE_KEY only for EC. KMS_ERR_NOTSUP with reason Key Format
 * Type Not Supported otherwise. */
int crypto_pkey_export(EVP_PKEY *pkey, uint32_t fmt, bool is_private, kms_secret_t **der_out,
                       kms_error_t *err);

/* KMIP algorithm (RSA or ECDSA), length in bits and Recommended Curve (0
 * for RSA) of a key. EC keys on curves other than P-192/224/256/384/521
 * are KMS_ERR_NOTSUP. */
int crypto_pkey_params(EVP_PKEY *pkey, uint32_t *alg_out, int32_t *bits_out, uint32_t *curve_out,
                       kms_error_t *err);

/*
 * Transparent key formats as TTLV Key Material structures:
 *   Transparent RSA Private Key: Modulus, Private Exponent, Public Exponent,
 *     P, Q, Prime Exponent P, Prime Exponent Q, CRT Coefficient (Big Integers)
 *   Transparent RSA Public Key: Modulus, Public Exponent
 *   Transparent EC/ECDSA/ECDH/ECMQV Private Key: Recommended Curve, D
 *   Transparent EC/ECDSA/ECDH/ECMQV Public Key: Recommended Curve, Q String
 * _build appends a Key Material structure to `parent` (arena `a`, which
 * is wiped when freed: private values are in it); _parse reads one back
 * into an EVP_PKEY, checked by OpenSSL (pairwise for private keys, point
 * on the curve for public ones). RSA moduli of 1024..8192 bits only.
 */
int crypto_transparent_build(kms_arena_t *a, ttlv_item_t *parent, EVP_PKEY *pkey, uint32_t fmt,
                             kms_error_t *err);
int crypto_transparent_parse(const ttlv_item_t *key_material, uint32_t fmt, EVP_PKEY **pkey_out,
                             kms_error_t *err);

/* True when `fmt` is a Transparent private / public asymmetric format. */
bool crypto_fmt_is_transparent_priv(uint32_t fmt);
bool crypto_fmt_is_transparent_pub(uint32_t fmt);

/* Curves: KMIP Recommended Curve <-> OpenSSL group name ("prime256v1")
 * and field size in bits. Unknown: NULL / 0. */
const char *crypto_curve_group(uint32_t curve, int32_t *bits_out);
uint32_t crypto_curve_by_group(const char *group, int32_t *bits_out);
/* ECDSA, ECDH, ECMQV or EC (1.3+). */
bool crypto_alg_is_ec(uint32_t alg);

/* --------------------------------------------------------- certificates */
/* Parse an X.509 certificate in DER; KMS_ERR_PROTO (Invalid Field) when it
 * does not parse or has trailing bytes. No chain or trust decisions. */
int crypto_cert_check(const uint8_t *der, size_t len, kms_error_t *err);

/* Attribute Value items (tag Attribute Value) derived from a DER X.509
 * certificate, allocated in `a`: KMIP 1.1 X.509 Certificate Identifier /
 * Subject / Issuer, the 1.0 text forms Certificate Identifier / Subject /
 * Issuer, and the Digital Signature Algorithm (0 when not in KMIP's list).
 * KMS_ERR_PROTO when the bytes are not one certificate; on any failure
 * *attrs_out is all zero. */
typedef struct crypto_cert_attrs {
    ttlv_item_t *x509_identifier, *x509_subject, *x509_issuer;
    ttlv_item_t *identifier, *subject, *issuer;
    uint32_t sig_alg;
} crypto_cert_attrs_t;
int crypto_cert_attrs(kms_arena_t *a, const uint8_t *der, size_t len,
                      crypto_cert_attrs_t *attrs_out);

/* -------------------------------------------------------------- digests */
/* SHA-256 of `len` bytes into digest_out[32]. */
int crypto_sha256(const uint8_t *p, size_t len, uint8_t digest_out[32]);

/* -------------------------------------------------------- key wrapping */
/*
 * AES Key Wrap (RFC 3394, NIST SP 800-38F KW) and with padding (RFC 5649,
 * KWP) using EVP_aes_*_wrap(_pad). kek is 16, 24 or 32 bytes, else
 * KMS_ERR_INVAL. For KW the plaintext must be a multiple of 8 bytes and
 * at least 16 (KMS_ERR_INVAL otherwise). The wrapped bytes are appended to
 * `wrapped_out`; the unwrapped ones are a new secret. Unwrap failures
 * (integrity check, bad length) are KMS_ERR_CRYPTO with reason
 * Cryptographic Failure.
 */
int crypto_aes_wrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                    size_t in_len, kms_buf_t *wrapped_out, kms_error_t *err);
int crypto_aes_unwrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                      size_t in_len, kms_secret_t **plain_out, kms_error_t *err);

/* ---------------------------------------------------------- key blocks */
/* Description of one object's stored material (not secret). */
typedef struct crypto_material {
    uint32_t object_type;    /* KMIP_OBJECT_TYPE_* */
    uint32_t stored_fmt;     /* canonical stored format (see the top of this file) */
    uint32_t registered_fmt; /* format to answer a Get without Key Format Type */
    uint32_t alg;            /* Cryptographic Algorithm, 0 if none */
    int32_t bits;            /* Cryptographic Length, 0 if none */
    uint32_t curve;          /* Recommended Curve for EC keys, else 0 */
    uint32_t sub_type;       /* Secret Data Type / Opaque Data Type / Certificate Type */
} crypto_material_t;

/* How Get wants the key wrapped (already resolved by the caller: the
 * wrapping key is loaded and its state and usage mask checked). */
typedef struct crypto_wrap {
    const char *key_id;          /* Unique Identifier of the wrapping key */
    const kms_secret_t *kek;     /* its plaintext AES key */
    uint32_t block_mode;         /* NIST_KEY_WRAP (RFC 3394) or AES_KEY_WRAP_PADDING (RFC 5649) */
    uint32_t encoding;           /* 0 (default: TTLV Encoding, not echoed), NO_ENCODING
                                    or TTLV_ENCODING (echoed in Key Wrapping Data) */
    ttlv_item_t *const *attrs;   /* Attribute structures to wrap with the key material */
    size_t n_attrs;              /* (Key Wrapping Specification's Attribute Names);
                                    only with TTLV encoding */
} crypto_wrap_t;

/*
 * Resolves the Unique Identifier named in a wrapped Key Block's Encryption
 * Key Information to the plaintext of an AES key allowed to unwrap it
 * (the caller's checks: visibility, state, usage mask). *kek_out is then
 * owned by crypto_object_parse, which frees it. On refusal returns a
 * negative code with the Result Reason in err.
 */
typedef int (*crypto_kek_lookup_cb)(void *arg, const char *key_id, kms_secret_t **kek_out,
                                    kms_error_t *err);

/*
 * Parse the object structure of a Register request (Symmetric Key, Public
 * Key, Private Key, Secret Data: a Key Block; Certificate: Certificate
 * Type + Value; Opaque Object: Opaque Data Type + Value; Template: its
 * Attributes) into canonical stored bytes (*stored_out, the caller's) and
 * a description. The material is validated: a key of the stated algorithm
 * and length, an RSA/EC key OpenSSL loads and checks, a certificate that
 * parses. A wrapped Key Block (Key Wrapping Data present) is refused with
 * Feature Not Supported unless `unwrap_cb` (may be NULL) resolves the
 * wrapping key. `obj` is the object structure itself (e.g. the Symmetric
 * Key item). Never writes to `obj`.
 */
int crypto_object_parse(const ttlv_item_t *obj, uint32_t object_type,
                        crypto_kek_lookup_cb unwrap_cb, void *unwrap_arg,
                        kms_secret_t **stored_out, crypto_material_t *desc_out, kms_error_t *err);

/*
 * Build the object structure for a Get response and append it to
 * `parent`: the Key Block in `want_fmt` (0 = the registered format), with
 * Key Material converted from the stored form, Cryptographic Algorithm and
 * Length, optionally wrapped as `wrap` says (NULL = not wrapped). A format
 * that cannot be produced is KMS_ERR_NOTSUP with reason Key Format Type
 * Not Supported. Secret values are written only into arena `a`.
 */
int crypto_object_build(kms_arena_t *a, ttlv_item_t *parent, const crypto_material_t *desc,
                        const kms_secret_t *stored, uint32_t want_fmt, const crypto_wrap_t *wrap,
                        kms_error_t *err);

/* The TTLV tag of the object structure for an Object Type (Symmetric Key ->
 * KMIP_TAG_SYMMETRIC_KEY...), 0 when the type has none we support. */
uint32_t crypto_object_tag(uint32_t object_type);

/*
 * The Digest attribute's value (an Attribute Value structure in `a`):
 * Hashing Algorithm SHA-256, Digest Value, and for keys the Key Format
 * Type of the hashed material, which is the key as a Get without Key
 * Format Type returns it when that is a byte string (e.g. PKCS#1 for a
 * created RSA key), else the canonical stored form.
 */
int crypto_digest_value(kms_arena_t *a, const crypto_material_t *desc, const kms_secret_t *stored,
                        ttlv_item_t **value_out);

#endif /* KMS_CRYPTO_H */
