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
 *   certify.c         certificates issued for Certify / Re-certify, PKCS#10 requests
 *   crmf.c            CRMF certificate requests (RFC 4211)
 *   chain.c           certificate chain validation (Validate)
 *   split.c           Split Key Methods: XOR, polynomial sharing (GF(2^8), GF(2^16), prime)
 *   keyobj.c          Split Key and PGP Key objects: checked, stored and served as TTLV
 *   digest.c          SHA-256 and the Digest attribute's value
 *   keywrap.c         AES Key Wrap (RFC 3394) and with padding (RFC 5649)
 *   keyformat_parse.c a Register object structure -> canonical stored bytes
 *   keyformat_build.c canonical stored bytes -> a Get object structure
 * The cryptographic services (the KMIP 1.2+ operations), one file each:
 *   params.c          Cryptographic Parameters; KMIP enums -> OpenSSL algorithms
 *   op.c              the streaming operation object (crypto_op_t)
 *   cipher.c          Encrypt/Decrypt: AES and Triple DES modes, RSA
 *   sign.c            Sign/Signature Verify: RSA PKCS#1 v1.5 and PSS, ECDSA
 *   mac.c             MAC/MAC Verify: HMAC, CMAC
 *   hash.c            Hash
 *   rng.c             RNG Retrieve, RNG Seed
 *   derive.c          Derive Key: PBKDF2, HASH, HMAC, ENCRYPT, SP 800-108
 *   pkeycache.c       parsed asymmetric keys kept between requests
 * They take keys as crypto_key_t (raw bytes or an EVP_PKEY) and report
 * through kms_error_t like everything below.
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
#include <openssl/x509.h>

#include "common/kms.h"
#include "ttlv/ttlv.h"

/* ------------------------------------------------------- symmetric keys */
/*
 * Check an (algorithm, length in bits) pair for Create of a Symmetric Key:
 * the lengths the algorithm defines, whether or not OpenSSL computes with
 * it. AES: 128/192/256 and 512 (the AES-256-XTS double key). Triple DES:
 * 168 or 192 (three keys, 24 bytes with parity) and 112 or 128 (two keys,
 * 16 bytes). DES 56/64, Blowfish 32..448, Camellia and Twofish 128/192/256,
 * CAST5 40..128, IDEA 128, MARS 128..448, RC2 8..1024, RC4 40..2048, RC5
 * 8..2040, SKIPJACK 80, ChaCha20 / Poly1305 256; HMAC (SHA-1, SHA-2, SHA-3,
 * MD5): 8..4096 bits in whole bytes. Returns 0, or KMS_ERR_INVAL (reason
 * Invalid Field) / KMS_ERR_NOTSUP (not a symmetric algorithm: Invalid
 * Field too, as the spec has no better one). *bytes_out (may be NULL)
 * receives the key material size in bytes.
 */
int crypto_sym_check(uint32_t alg, int32_t bits, size_t *bytes_out, kms_error_t *err);

/* True when `alg` is a symmetric key algorithm crypto_sym_check knows. */
bool crypto_sym_known(uint32_t alg);
/* True for the HMAC algorithms (HMAC-SHA1/2/3, HMAC-MD5). */
bool crypto_alg_is_hmac(uint32_t alg);

/* Generate a symmetric key with the DRBG (RAND_priv_bytes). Triple DES keys
 * get odd parity in every byte. *key_out is the caller's to free. */
int crypto_sym_generate(uint32_t alg, int32_t bits, kms_secret_t **key_out, kms_error_t *err);

/* The Cryptographic Length in bits of `len` bytes of material for `alg`
 * (Triple DES: 168 for 24 bytes, 112 for 16; DES: 56 for 8; others
 * len*8; -1 when len*8 does not fit an int32). */
int32_t crypto_sym_bits(uint32_t alg, size_t len);

/* ------------------------------------------------------------ key pairs */
/*
 * Check the parameters of Create Key Pair. RSA: a multiple of 8 bits from
 * 1024 to 4096 (e = 65537). ECDSA/ECDH/ECMQV/EC: any Recommended Curve
 * this OpenSSL offers (crypto_curves); a length of 0 is allowed and set
 * from the curve; a length that disagrees with the curve is Invalid Field.
 * When `curve` is 0 for EC, it is derived from the length (192 -> P-192,
 * 224, 256, 384, 521 likewise). Which sizes an operator allows is kmip/'s
 * key policy, not this. On success *curve_out and *bits_out hold the
 * resolved values.
 */
int crypto_keypair_check(uint32_t alg, int32_t bits, uint32_t curve, uint32_t *curve_out,
                         int32_t *bits_out, kms_error_t *err);

/* Generate a key pair: private key as PKCS#8 DER, public key as X.509
 * SubjectPublicKeyInfo DER (both in secrets; the caller frees). Slow for
 * RSA-4096 (seconds): call only from a worker thread. */
int crypto_keypair_generate(uint32_t alg, int32_t bits, uint32_t curve, kms_secret_t **priv_out,
                            kms_secret_t **pub_out, kms_error_t *err);
/* Asked while a long generation runs (from the generating thread, about
 * every prime candidate: milliseconds apart); true stops it. */
typedef bool (*crypto_stop_cb)(void *arg);
/* crypto_keypair_generate that asks `stop(stop_arg)` (NULL: never) during
 * an RSA generation and gives up when it answers true: KMS_ERR_TIMEOUT,
 * "key pair generation stopped", nothing allocated. EC generation is not
 * interrupted (milliseconds). */
int crypto_keypair_generate_until(uint32_t alg, int32_t bits, uint32_t curve, crypto_stop_cb stop,
                                  void *stop_arg, kms_secret_t **priv_out, kms_secret_t **pub_out,
                                  kms_error_t *err);

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
 * for RSA) of a key. EC keys on a curve KMIP has no Recommended Curve for
 * (or with explicit parameters) are KMS_ERR_NOTSUP. */
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
 * and field size in bits. Unknown, or not offered by this OpenSSL: NULL /
 * 0. crypto_curves lists the Recommended Curves this OpenSSL offers (at
 * most `max`), in the enumeration's order; returns how many. */
const char *crypto_curve_group(uint32_t curve, int32_t *bits_out);
uint32_t crypto_curve_by_group(const char *group, int32_t *bits_out);
size_t crypto_curves(uint32_t *curves_out, size_t max);
/* ECDSA, ECDH, ECMQV or EC (1.3+). */
bool crypto_alg_is_ec(uint32_t alg);

/* --------------------------------------------------------- certificates */
/* Parse an X.509 certificate in DER; KMS_ERR_PROTO (Invalid Field) when it
 * does not parse or has trailing bytes. No chain or trust decisions. */
int crypto_cert_check(const uint8_t *der, size_t len, kms_error_t *err);

/* The Certificate Value of a Certificate object structure (Certificate
 * Type and Certificate Value), borrowed from it: Missing Data without
 * them, Feature Not Supported for a Certificate Type other than X.509.
 * The bytes are not parsed. */
int crypto_cert_object_value(const ttlv_item_t *obj, const uint8_t **der_out, size_t *len_out,
                             kms_error_t *err);

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
    bool no_key_value;       /* crypto_object_parse: a Key Block without Key Value (KMIP
                                1.2 Key Value Present false); no material */
    bool has_digest;         /* crypto_object_parse: `digest` is the SHA-256 of the Key
                                Material exactly as the client registered it */
    uint8_t digest[32];
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
 * parses. A Key Block without a Key Value (KMIP 1.2: a key registered
 * without its value, whose Key Value Location may say where it is) returns
 * 0 with *stored_out NULL and desc->no_key_value set.
 * A wrapped Key Block (Key Wrapping Data present) is refused with
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
 * Type of the hashed material (KMIP 1.1 section 3.17, test cases 18.1 and
 * 18.2). A key is hashed in the format it was registered in: a Byte String
 * Key Material (Raw, Opaque, PKCS#1, PKCS#8, X.509, EC Private Key) as its
 * bytes, a Structure (the Transparent formats) as its TTLV encoding. A
 * registered key uses desc->digest, taken from the request itself; a key
 * the server made is hashed in the format a Get without Key Format Type
 * returns (Raw for symmetric keys, PKCS#1 for RSA, PKCS#8 / X.509 for EC).
 * Certificates, Opaque Objects and Templates are hashed as stored, without
 * a Key Format Type.
 */
int crypto_digest_value(kms_arena_t *a, const crypto_material_t *desc, const kms_secret_t *stored,
                        ttlv_item_t **value_out);

/* ------------------------------------------------ cryptographic services */
/*
 * Cryptographic Parameters (KMIP 1.4 section 3.6) as plain values; 0 means
 * "not given" for every enumeration and length. Parsed from the request's
 * structure or from the key's Cryptographic Parameters attribute.
 */
typedef struct crypto_params {
    uint32_t alg;            /* Cryptographic Algorithm */
    uint32_t mode;           /* Block Cipher Mode */
    uint32_t padding;        /* Padding Method */
    uint32_t hash;           /* Hashing Algorithm */
    uint32_t sig_alg;        /* Digital Signature Algorithm */
    uint32_t mgf;            /* Mask Generator (MGF1 only) */
    uint32_t mgf_hash;       /* Mask Generator Hashing Algorithm */
    bool has_random_iv;
    bool random_iv;          /* Random IV */
    int32_t iv_len_bits;     /* IV Length, bits */
    int32_t tag_len;         /* Tag Length, bytes */
    bool has_salt_len;
    int32_t salt_len;        /* Salt Length (PSS), bytes */
    const uint8_t *p_source; /* P Source (OAEP label), or NULL */
    size_t p_source_len;
    int32_t counter_len;     /* Counter Length, bits (CTR) */
    bool has_initial_counter;
    int32_t initial_counter; /* Initial Counter Value (CTR without an IV) */
} crypto_params_t;

/* Read a Cryptographic Parameters structure (NULL = all zero). A field of
 * the wrong type or a negative length is KMS_ERR_INVAL, Invalid Field. */
int crypto_params_parse(const ttlv_item_t *cp, crypto_params_t *out, kms_error_t *err);

/* Digest size in bytes of a KMIP Hashing Algorithm, 0 when unsupported.
 * Supported: MD5, SHA-1, SHA-224/256/384/512, SHA-512/224, SHA-512/256,
 * SHA3-224/256/384/512, RIPEMD-160 (when OpenSSL offers it). */
size_t crypto_hash_size(uint32_t hash);
/* The Hashing Algorithm of an HMAC key algorithm (HMAC-SHA256 ->
 * SHA-256), 0 for anything else. */
uint32_t crypto_hmac_hash(uint32_t alg);

/* The key an operation uses. Exactly one of raw / pkey is set. */
typedef struct crypto_key {
    uint32_t object_type;    /* KMIP_OBJECT_TYPE_* */
    uint32_t alg;            /* its Cryptographic Algorithm (0: unknown) */
    const uint8_t *raw;      /* Symmetric Key / Secret Data bytes */
    size_t raw_len;
    EVP_PKEY *pkey;          /* Public/Private Key, the key of a Certificate */
} crypto_key_t;

/* The operations a crypto_op_t performs. */
enum crypto_svc {
    CRYPTO_SVC_ENCRYPT = 1,
    CRYPTO_SVC_DECRYPT,
    CRYPTO_SVC_SIGN,
    CRYPTO_SVC_VERIFY,
    CRYPTO_SVC_MAC,
    CRYPTO_SVC_MAC_VERIFY,
    CRYPTO_SVC_HASH,
};

/*
 * One cryptographic operation, possibly fed in several parts (KMIP 1.3
 * streaming). Created by crypto_cipher_start, crypto_sign_start,
 * crypto_mac_start or crypto_hash_start; fed with crypto_op_update;
 * finished with crypto_op_final; freed (key schedules wiped) with
 * crypto_op_free. Not thread-safe: one thread at a time may use it (a
 * stream moves between threads with its request; the caller serialises).
 */
typedef struct crypto_op crypto_op_t;

/* What the start functions need besides key and parameters. */
typedef struct crypto_start {
    const uint8_t *iv;       /* IV/Counter/Nonce from the request, or NULL */
    size_t iv_len;
    const uint8_t *aad;      /* Authenticated Encryption Additional Data, or NULL */
    size_t aad_len;
    bool prehashed;          /* Sign/Verify: the input is Digested Data */
} crypto_start_t;

/*
 * Encrypt or Decrypt (`svc`) with `key` under `p`:
 *   AES (16/24/32-byte keys): CBC, ECB, CFB, OFB, CTR, GCM, XTS (a 32- or
 *     64-byte key: AES-128/256-XTS), NIST Key Wrap (RFC 3394) and AES Key
 *     Wrap with Padding (RFC 5649).
 *   Triple DES (16 or 24 bytes): CBC, ECB.
 *   CBC and ECB: Padding Method None, PKCS5 (default), ANSI X9.23 or ISO
 *     10126 (these two take their input in one part).
 *   RSA: Padding Method OAEP (Hashing Algorithm, default SHA-1; Mask
 *     Generator Hashing Algorithm, default the OAEP hash; P Source label)
 *     or PKCS1 v1.5. Encrypt with a public (or private) key, Decrypt with
 *     a private key.
 * When the mode needs an IV/nonce and Encrypt got none, one is generated
 * (IV Length bits, else 12 bytes for GCM, the block size otherwise) and
 * copied to *iv_out (room: 64 bytes; *iv_len_out 0 when none was made);
 * Random IV true with an IV given is Invalid Field. Decrypt needs the IV.
 * A combination that cannot work is Invalid Field; a KMIP mechanism kmsd
 * does not implement is Feature Not Supported.
 */
int crypto_cipher_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                        const crypto_start_t *in, crypto_op_t **op_out, uint8_t iv_out[64],
                        size_t *iv_len_out, kms_error_t *err);

/*
 * Sign (CRYPTO_SVC_SIGN, private key) or Signature Verify
 * (CRYPTO_SVC_VERIFY, public/private key): RSA with Padding Method PKCS1
 * v1.5 (default) or PSS (Salt Length, default the hash size; MGF1 with the
 * Mask Generator Hashing Algorithm, default the hash), or ECDSA on the
 * key's curve (DER signature). The hash is the Hashing Algorithm, else the
 * one the Digital Signature Algorithm names, else SHA-256. `in->prehashed`:
 * the data is the digest (Digested Data), its size must be the hash's.
 */
int crypto_sign_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                      const crypto_start_t *in, crypto_op_t **op_out, kms_error_t *err);

/*
 * MAC or MAC Verify: HMAC for HMAC-SHA1/224/256/384/512 (and SHA3) keys,
 * or for Secret Data with the Cryptographic Algorithm of `p`; CMAC for
 * AES and Triple DES keys. The parameters' algorithm, when given, must
 * agree with the key's.
 */
int crypto_mac_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                     crypto_op_t **op_out, kms_error_t *err);

/* Hash with p->hash (required: Invalid Field without it). */
int crypto_hash_start(const crypto_params_t *p, crypto_op_t **op_out, kms_error_t *err);

/* Whether the operation can take its input in several parts (AES-KW/KWP,
 * XTS, RSA encryption and pre-hashed signing cannot). */
bool crypto_op_streamable(const crypto_op_t *op);
enum crypto_svc crypto_op_svc(const crypto_op_t *op);

/* Feed `len` bytes; output produced so far (Encrypt/Decrypt) is appended
 * to `out`. Non-streamable operations keep the input until the final
 * (at most `out->max` bytes in total). */
int crypto_op_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                     kms_error_t *err);

/* What the final step takes and gives besides output bytes. */
typedef struct crypto_final {
    const uint8_t *tag;      /* Decrypt (GCM): Authenticated Encryption Tag */
    size_t tag_len;
    const uint8_t *check;    /* Verify: Signature Data; MAC Verify: MAC Data */
    size_t check_len;
    uint8_t tag_out[16];     /* Encrypt (GCM): the tag */
    size_t tag_out_len;
    bool valid;              /* Verify / MAC Verify: the Validity Indicator */
} crypto_final_t;

/*
 * Finish: the rest of the output (ciphertext, plaintext, signature, MAC,
 * digest) is appended to `out`; `fin` carries the tag/signature to check
 * and receives the tag or the verdict. A failed authentication on Decrypt
 * (tag, padding, key wrap integrity) is KMS_ERR_CRYPTO, Cryptographic
 * Failure; a signature or MAC that does not verify is not an error
 * (fin->valid false). The op may not be used afterwards except to free.
 */
int crypto_op_final(crypto_op_t *op, kms_buf_t *out, crypto_final_t *fin, kms_error_t *err);

/* Free (NULL ok); key schedules and buffered input are wiped. */
void crypto_op_free(crypto_op_t *op);

/* RNG Retrieve: `len` bytes from OpenSSL's public DRBG. */
int crypto_rng_bytes(uint8_t *out, size_t len, kms_error_t *err);
/* RNG Seed: mix `len` bytes into the DRBG as additional input credited
 * with no entropy (OpenSSL's RAND_add with 0), so client data can never
 * weaken it; at most CRYPTO_RNG_SEED_MAX bytes are taken. *accepted_out
 * is the number of bytes used. */
#define CRYPTO_RNG_SEED_MAX 4096
int crypto_rng_seed(const uint8_t *data, size_t len, size_t *accepted_out, kms_error_t *err);

/* Derive Key parameters (Derivation Parameters, KMIP 1.4 section 4.6). */
typedef struct crypto_derive {
    uint32_t method;         /* KMIP_DERIVATION_METHOD_* */
    crypto_params_t params;  /* its Cryptographic Parameters */
    const uint8_t *iv;       /* Initialization Vector (ENCRYPT), or NULL */
    size_t iv_len;
    const uint8_t *data;     /* Derivation Data, or NULL */
    size_t data_len;
    const uint8_t *salt;     /* Salt (PBKDF2) */
    size_t salt_len;
    int32_t iterations;      /* Iteration Count (PBKDF2) */
} crypto_derive_t;

/* The most PBKDF2 iterations one request may ask for. */
#define CRYPTO_PBKDF2_MAX_ITERATIONS 10000000

/*
 * Derive `out_len` bytes from `base`:
 *   PBKDF2 (PKCS#5 v2.1): password = the base object's bytes, Salt and
 *     Iteration Count required, PRF HMAC with the Hashing Algorithm
 *     (default SHA-1).
 *   HASH: the hash of the Derivation Data (or, without it, of the key).
 *   HMAC: HMAC(base key, Derivation Data) with the base key's hash (or the
 *     Hashing Algorithm for a Secret Data base); at most one hash size.
 *   ENCRYPT: the Derivation Data encrypted with the base key under the
 *     Cryptographic Parameters (and Initialization Vector).
 *   NIST800-108-C: SP 800-108 KDF in counter mode (OpenSSL KBKDF): a
 *     32-bit counter before the fixed input data, which is the Derivation
 *     Data; PRF HMAC with the Hashing Algorithm (default SHA-256), or CMAC
 *     when the parameters name AES.
 * The result is a new secret (*out). Output shorter than asked is Invalid
 * Field; other methods Feature Not Supported. PBKDF2 is slow on purpose:
 * call it from a worker thread.
 */
int crypto_derive(const crypto_key_t *base, const crypto_derive_t *d, size_t out_len,
                  kms_secret_t **out, kms_error_t *err);

/*
 * A bounded, thread-safe cache of parsed asymmetric keys (pkeycache.c),
 * for the services: OpenSSL 3.0 parses a PKCS#8 key in about 1 ms. Looked
 * up by the SHA-256 of (format, DER); at most `max` entries, each dropped
 * after `idle_s` seconds unused (0: 60). crypto_pkey_cache_load returns a
 * reference the caller frees with EVP_PKEY_free; with a NULL cache it is
 * crypto_pkey_load. Free the cache once no thread uses it.
 */
typedef struct crypto_pkey_cache crypto_pkey_cache_t;
int crypto_pkey_cache_new(size_t max, uint32_t idle_s, crypto_pkey_cache_t **out);
void crypto_pkey_cache_free(crypto_pkey_cache_t *c);
int crypto_pkey_cache_load(crypto_pkey_cache_t *c, uint32_t fmt, bool is_private,
                           const uint8_t *der, size_t len, EVP_PKEY **pkey_out, kms_error_t *err);

/* Load the public key of a DER X.509 certificate. */
int crypto_cert_pubkey(const uint8_t *der, size_t len, EVP_PKEY **pkey_out, kms_error_t *err);

/* ----------------------------------------------- certificate issuance */
/*
 * Certify / Re-certify (certify.c, crmf.c). crypto_csr_parse reads a
 * Certificate Request of KMIP Certificate Request Type PKCS#10 (DER), PEM
 * or CRMF (DER CertReqMessages with one message) into an X509_REQ holding
 * the subject, public key and extensions asked for. PKCS#10/PEM: the
 * self-signature must verify. CRMF: a signature proof of possession must
 * verify; other proofs, or none, are read with *pop_out false (possession
 * not shown: the caller decides). Refusals: a signature that does not
 * verify is Cryptographic Failure, PGP Feature Not Supported, a request
 * that does not parse Invalid Field. The caller frees *csr_out with
 * X509_REQ_free.
 */
int crypto_csr_parse(uint32_t req_type, const uint8_t *p, size_t n, X509_REQ **csr_out,
                     bool *pop_out, kms_error_t *err);

/* A subject name from DER (`der` non-NULL) or from plain "CN=a, O=b"
 * text (no escapes). Invalid Field when neither parses or it is empty.
 * The caller frees *name_out with X509_NAME_free. */
int crypto_name_parse(const uint8_t *der, size_t der_len, const char *text, X509_NAME **name_out,
                      kms_error_t *err);

/* What a new certificate is made of. Everything is borrowed. */
typedef struct crypto_issue {
    X509 *ca;                /* the issuing CA certificate */
    EVP_PKEY *ca_key;        /* and its private key */
    EVP_PKEY *pubkey;        /* the key to certify: RSA >= 2048, EC, Ed25519 */
    X509_REQ *csr;           /* subject (unless empty), subjectAltName, keyUsage, EKU from
                                here, or NULL */
    const X509_NAME *subject;/* without a CSR: the subject (NULL: the previous one's) */
    X509 *previous;          /* Re-certify without a CSR: its subject and extensions */
    int64_t not_before;      /* validity, seconds since the epoch */
    int64_t not_after;
} crypto_issue_t;

/*
 * Issue the certificate as DER (*der_out, the caller's). The extensions
 * are always basicConstraints critical CA:FALSE and the key identifiers;
 * subjectAltName is copied from the CSR (or the previous certificate);
 * keyUsage likewise without keyCertSign/cRLSign (default digitalSignature,
 * +keyEncipherment for RSA); extendedKeyUsage likewise without kmsd's
 * cluster peer role. Nothing else is copied. Refusals (weak key, no
 * subject, empty validity) are Invalid Field in err.
 */
int crypto_cert_issue(const crypto_issue_t *in, kms_secret_t **der_out, kms_error_t *err);

/* notBefore / notAfter of a DER certificate, seconds. KMS_ERR_PROTO. */
int crypto_cert_validity(const uint8_t *der, size_t len, int64_t *not_before_out,
                         int64_t *not_after_out);

/* ------------------------------------------------- chain validation */
/*
 * Validate (chain.c). One certificate of the chain to check: DER, and
 * whether it may end the path as a trust anchor (only a self-signed one
 * does). At most CRYPTO_CHAIN_MAX certificates.
 */
#define CRYPTO_CHAIN_MAX 32
typedef struct crypto_chain_cert {
    const uint8_t *der;
    size_t len;
    bool anchor;
} crypto_chain_cert_t;

/*
 * Validate the chain made of `certs` (any order; the same certificate twice
 * counts once) at time `at` (seconds since the epoch), with `anchor` (may
 * be NULL) as a further trust anchor. *indicator_out is a
 * KMIP_VALIDITY_INDICATOR_*: Invalid when a signature, a validity period,
 * a CA constraint, key usage or path length fails, or the certificates are
 * not one chain; else Unknown when the path reaches no trust anchor; else
 * Valid. Returns 0 with a verdict; Invalid Field when a certificate does
 * not parse or there are none or too many; KMS_ERR_CRYPTO when OpenSSL
 * fails.
 */
int crypto_chain_validate(const crypto_chain_cert_t *certs, size_t n, X509 *anchor, int64_t at,
                          uint32_t *indicator_out, kms_error_t *err);

/* ------------------------------------------------------------ split keys */
/*
 * Create Split Key / Join Split Key (split.c). Methods: XOR (threshold =
 * parts), Polynomial Sharing over GF(2^8) (x^8+x^4+x^3+x+1), GF(2^16)
 * (x^16+x^12+x^3+x+1; even key lengths) and a prime field (the Prime
 * Field Size: a prime of 9..4096 bits, larger than the key as a
 * big-endian integer). Part i (0-based) has Key Part Identifier i + 1 and,
 * for the polynomial methods, is the polynomial at x = i + 1. 2..255
 * parts, threshold 2..parts. Wrong parameters are Invalid Field.
 */
#define CRYPTO_SPLIT_MAX_PARTS 255

/* Check the parameters before anything is generated. */
int crypto_split_check(uint32_t method, uint32_t parts, uint32_t threshold, size_t key_len,
                       kms_error_t *err);

/* Split key[0..len) into `parts` secrets (*shares_out: an array the
 * caller frees with crypto_shares_free). Prime field shares are as long as
 * the prime, the others as the key. */
int crypto_split(uint32_t method, const uint8_t *key, size_t len, uint32_t parts,
                 uint32_t threshold, const uint8_t *prime, size_t prime_len,
                 kms_secret_t ***shares_out, kms_error_t *err);
void crypto_shares_free(kms_secret_t **shares, size_t n);

/* One part to join: its Key Part Identifier and bytes. */
typedef struct crypto_share {
    uint32_t id;
    const uint8_t *p;
    size_t len;
} crypto_share_t;

/* Join n parts (n >= threshold; XOR uses all of them, the polynomial
 * methods the first `threshold`) into the key (*key_out, the caller's).
 * key_len is the key's length for the prime field (leading zero bytes),
 * else ignored (the parts' length). Duplicate or out-of-range identifiers
 * are Invalid Field. */
int crypto_join(uint32_t method, const crypto_share_t *shares, size_t n, uint32_t threshold,
                const uint8_t *prime, size_t prime_len, size_t key_len, kms_secret_t **key_out,
                kms_error_t *err);

/*
 * Split Key and PGP Key objects (keyobj.c). Stored as the TTLV of their
 * canonical structure (crypto_keyobj_encode); crypto_keyobj_read checks a
 * Register's object structure (Split Key: the fields agree with
 * crypto_split_check, Key Part Identifier <= parts, Prime Field Size iff
 * the prime method; a Raw or Opaque Key Block; PGP Key: a PGP Key Version
 * and Byte String Key Material in any format; neither wrapped) and points
 * into it; crypto_keyobj_decode reads a stored form back (into arena `a`,
 * *tree_out: the structure for a Get). Refusals carry their Result Reason.
 */
typedef struct crypto_keyobj {
    uint32_t object_type;    /* KMIP_OBJECT_TYPE_SPLIT_KEY or _PGP_KEY */
    uint32_t parts, part_id, threshold, method; /* Split Key */
    const uint8_t *prime;    /* Prime Field Size (Big Integer bytes), or NULL */
    size_t prime_len;
    uint32_t pgp_version;    /* PGP Key */
    uint32_t fmt;            /* Key Format Type of the Key Block */
    uint32_t alg;            /* its Cryptographic Algorithm, 0 if none */
    int32_t bits;            /* its Cryptographic Length, 0 if none */
    const uint8_t *material; /* Key Material bytes */
    size_t len;
} crypto_keyobj_t;

int crypto_keyobj_read(const ttlv_item_t *obj, uint32_t object_type, crypto_keyobj_t *k,
                       kms_error_t *err);
int crypto_keyobj_encode(const crypto_keyobj_t *k, kms_secret_t **stored_out);
int crypto_keyobj_decode(kms_arena_t *a, const kms_secret_t *stored, uint32_t object_type,
                         crypto_keyobj_t *k, ttlv_item_t **tree_out, kms_error_t *err);

#endif /* KMS_CRYPTO_H */
