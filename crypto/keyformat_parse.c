/*
 * crypto/keyformat_parse.c: the object structure of a Register request.
 *
 * Turns a Symmetric Key / Private Key / Public Key / Secret Data (Key
 * Block), Certificate, Opaque Object or Template into canonical stored
 * bytes and a crypto_material_t, validating the material on the way: a
 * symmetric key whose size agrees with its stated length, an RSA/EC key
 * OpenSSL loads and checks, a certificate that parses. A wrapped Key Block is unwrapped with
 * a key the caller resolves (AES Key Wrap / with padding only). It does
 * not look at the Template-Attribute of the request: kmip/op_register.c
 * reconciles stated attributes with what is learnt here.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/crypto_int.h"

static int bad(kms_error_t *err, const char *msg)
{
    return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD, "%s", msg);
}

/* Unwrap a wrapped Key Value (Byte String) into a decoded Key Value
 * structure allocated in arena `a`. */
static int unwrap_key_value(kms_arena_t *a, const ttlv_item_t *kb, const ttlv_item_t *kv,
                            crypto_kek_lookup_cb cb, void *arg, ttlv_item_t **kv_out,
                            kms_error_t *err)
{
    const ttlv_item_t *kwd = ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA);
    const ttlv_item_t *wm, *eki, *uid, *cp, *bcm, *enc;
    kms_secret_t *kek = NULL, *plain = NULL;
    uint32_t mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP;
    int rc;

    if (!cb)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "wrapped key blocks are not accepted here");
    wm = crypto_find_typed(kwd, KMIP_TAG_WRAPPING_METHOD, TTLV_ENUMERATION);
    if (!wm || ttlv_u32(wm) != KMIP_WRAPPING_METHOD_ENCRYPT)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "only Wrapping Method Encrypt is supported");
    if (ttlv_find(kwd, KMIP_TAG_MAC_SIGNATURE_KEY_INFORMATION) ||
        ttlv_find(kwd, KMIP_TAG_MAC_SIGNATURE))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "MAC/signature wrapping is not supported");
    eki = crypto_find_typed(kwd, KMIP_TAG_ENCRYPTION_KEY_INFORMATION, TTLV_STRUCTURE);
    uid = eki ? crypto_find_typed(eki, KMIP_TAG_UNIQUE_IDENTIFIER, TTLV_TEXT_STRING) : NULL;
    if (!uid)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                    "Key Wrapping Data lacks Encryption Key Information");
    cp = crypto_find_typed(eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS, TTLV_STRUCTURE);
    bcm = cp ? crypto_find_typed(cp, KMIP_TAG_BLOCK_CIPHER_MODE, TTLV_ENUMERATION) : NULL;
    if (bcm)
        mode = ttlv_u32(bcm);
    if (mode != KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP &&
        mode != KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "only NIST Key Wrap and AES Key Wrap Padding are supported");
    rc = cb(arg, ttlv_text(uid), &kek, err);
    if (rc < 0)
        return rc;
    rc = crypto_aes_unwrap(kek->data, kek->len, mode == KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING,
                           kv->v.bytes.ptr, kv->v.bytes.len, &plain, NULL);
    kms_secret_free(kek);
    if (rc < 0)
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "unwrapping the Key Value failed (wrong key or corrupted)");
    enc = crypto_find_typed(kwd, KMIP_TAG_ENCODING_OPTION, TTLV_ENUMERATION);
    if (enc && ttlv_u32(enc) == KMIP_ENCODING_OPTION_NO_ENCODING) {
        ttlv_item_t *s = ttlv_new_struct(a, NULL, KMIP_TAG_KEY_VALUE);
        rc = s && ttlv_new_bytes(a, s, KMIP_TAG_KEY_MATERIAL, plain->data, plain->len)
                 ? 0 : KMS_ERR_NOMEM;
        *kv_out = s;
    } else {
        rc = ttlv_decode(plain->data, plain->len, NULL, a, kv_out, NULL);
        if (rc < 0 || (*kv_out)->tag != KMIP_TAG_KEY_VALUE || (*kv_out)->type != TTLV_STRUCTURE)
            rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR,
                                      "unwrapped data is not a TTLV Key Value");
    }
    kms_secret_free(plain);
    return rc;
}

/* Symmetric Key and Secret Data material. */
static int parse_sym(const ttlv_item_t *km, uint32_t fmt, const ttlv_item_t *kb,
                     crypto_material_t *d, kms_secret_t **out, kms_error_t *err)
{
    const ttlv_item_t *alg =
        crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, TTLV_ENUMERATION);
    const ttlv_item_t *len = crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, TTLV_INTEGER);
    const uint8_t *p;
    size_t n;

    if (d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA) {
        if (fmt != KMIP_KEY_FORMAT_TYPE_OPAQUE && fmt != KMIP_KEY_FORMAT_TYPE_RAW)
            return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                        KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                        "Secret Data must be Opaque or Raw");
    } else if (fmt != KMIP_KEY_FORMAT_TYPE_RAW && fmt != KMIP_KEY_FORMAT_TYPE_OPAQUE &&
               fmt != KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY) {
        return kms_error_set_reason(
            err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "a Symmetric Key must be Raw, Opaque or Transparent Symmetric Key");
    }
    if (fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY) {
        const ttlv_item_t *k = km->type == TTLV_STRUCTURE
                                   ? crypto_find_typed(km, KMIP_TAG_KEY, TTLV_BYTE_STRING)
                                   : NULL;
        if (!k)
            return bad(err, "Transparent Symmetric Key needs a Key Byte String");
        p = k->v.bytes.ptr;
        n = k->v.bytes.len;
    } else {
        if (km->type != TTLV_BYTE_STRING)
            return bad(err, "Key Material must be a Byte String for this Key Format Type");
        p = km->v.bytes.ptr;
        n = km->v.bytes.len;
    }
    if (n == 0)
        return bad(err, "empty Key Material");
    d->stored_fmt = d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA ? fmt : KMIP_KEY_FORMAT_TYPE_RAW;
    d->alg = alg ? ttlv_u32(alg) : 0;
    d->bits = len ? len->v.i32 : 0;
    if (d->object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY && d->alg != 0) {
        /* The Key Material is the key, whatever its size: a 512-bit HMAC
         * or XTS key registered under AES is a real use, and a store does
         * not need the cipher. Only a Cryptographic Length that
         * contradicts the material is refused. */
        int32_t have = crypto_sym_bits(d->alg, n);
        if (have < 0)
            return bad(err, "Key Material too large");
        if (d->bits != 0 && d->bits != have && (size_t)d->bits != n * 8)
            return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "Key Material is %zu bytes but Cryptographic Length is %d",
                                        n, (int)d->bits);
        d->bits = have; /* Triple DES: 192 -> 168, 128 -> 112 */
    } else if (d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA) {
        d->alg = 0;
        d->bits = 0;
    }
    *out = kms_secret_dup(p, n);
    return *out ? 0 : KMS_ERR_NOMEM;
}

/* What OpenSSL loaded is also a consistent key of a size we serve: RSA of
 * 1024..8192 bits (bounded so that a client cannot make the checks slow;
 * the pairwise check proves n = pq and that d matches e), EC points on
 * the curve and private values in range. */
static int check_pkey(EVP_PKEY *pk, bool priv, uint32_t alg, int32_t bits, kms_error_t *err)
{
    EVP_PKEY_CTX *c;
    int ok;

    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA && (bits < 1024 || bits > 8192))
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "RSA keys of %d bits are not accepted (1024..8192)", (int)bits);
    c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!c)
        return KMS_ERR_NOMEM;
    ok = priv ? (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA ? EVP_PKEY_pairwise_check(c)
                                                         : EVP_PKEY_check(c))
              : EVP_PKEY_public_check(c);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    if (ok != 1)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "the %s key does not pass OpenSSL's consistency check",
                                    priv ? "private" : "public");
    return 0;
}

/* Private and Public Key material: canonical PKCS#8 / SPKI. */
static int parse_asym(const ttlv_item_t *km, uint32_t fmt, const ttlv_item_t *kb,
                      crypto_material_t *d, kms_secret_t **out, kms_error_t *err)
{
    bool priv = d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY;
    const ttlv_item_t *alg =
        crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, TTLV_ENUMERATION);
    const ttlv_item_t *len = crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, TTLV_INTEGER);
    EVP_PKEY *pk = NULL;
    uint32_t kalg = 0, curve = 0;
    int32_t bits = 0;
    int rc;

    if ((priv && crypto_fmt_is_transparent_priv(fmt)) ||
        (!priv && crypto_fmt_is_transparent_pub(fmt))) {
        rc = crypto_transparent_parse(km, fmt, &pk, err);
    } else {
        if (km->type != TTLV_BYTE_STRING)
            return bad(err, "Key Material must be a Byte String for this Key Format Type");
        rc = crypto_pkey_load(fmt, priv, km->v.bytes.ptr, km->v.bytes.len, &pk, err);
    }
    if (rc < 0)
        return rc;
    rc = crypto_pkey_params(pk, &kalg, &bits, &curve, err);
    if (rc < 0)
        goto out;
    rc = check_pkey(pk, priv, kalg, bits, err);
    if (rc < 0)
        goto out;
    if (alg) {
        uint32_t a = ttlv_u32(alg);
        bool ok = kalg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA ? a == kalg : crypto_alg_is_ec(a);
        if (!ok) {
            rc = bad(err, "Cryptographic Algorithm does not match the key material");
            goto out;
        }
        kalg = a; /* keep ECDH/ECMQV/EC as stated */
    }
    if (len && len->v.i32 != bits) {
        rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "Cryptographic Length %d does not match the key (%d bits)",
                                  (int)len->v.i32, (int)bits);
        goto out;
    }
    d->alg = kalg;
    d->bits = bits;
    d->curve = curve;
    d->stored_fmt = priv ? KMIP_KEY_FORMAT_TYPE_PKCS_8 : KMIP_KEY_FORMAT_TYPE_X_509;
    rc = crypto_pkey_export(pk, d->stored_fmt, priv, out, err);
out:
    EVP_PKEY_free(pk);
    return rc;
}

static int parse_key_block(const ttlv_item_t *obj, crypto_kek_lookup_cb cb, void *arg,
                           kms_secret_t **out, crypto_material_t *d, kms_error_t *err)
{
    const ttlv_item_t *kb = crypto_find_typed(obj, KMIP_TAG_KEY_BLOCK, TTLV_STRUCTURE);
    const ttlv_item_t *kft, *kct, *kv, *km;
    ttlv_item_t *unwrapped = NULL;
    kms_arena_t *a = NULL;
    uint32_t fmt;
    int rc;

    if (!kb)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                    "object lacks a Key Block");
    kft = crypto_find_typed(kb, KMIP_TAG_KEY_FORMAT_TYPE, TTLV_ENUMERATION);
    if (!kft)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                    "Key Block lacks Key Format Type");
    fmt = ttlv_u32(kft);
    kct = ttlv_find(kb, KMIP_TAG_KEY_COMPRESSION_TYPE);
    if (kct)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
                                    "Key Compression Type is not supported");
    kv = ttlv_find(kb, KMIP_TAG_KEY_VALUE);
    if (!kv) {
        /* Registered without its value (KMIP 1.2 Key Value Present). */
        const ttlv_item_t *alg =
            crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, TTLV_ENUMERATION);
        const ttlv_item_t *len = crypto_find_typed(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, TTLV_INTEGER);
        if (ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA))
            return bad(err, "Key Wrapping Data without a Key Value");
        d->alg = alg ? ttlv_u32(alg) : 0;
        d->bits = len ? len->v.i32 : 0;
        d->registered_fmt = fmt;
        d->no_key_value = true;
        *out = NULL;
        return 0;
    }
    if (ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA)) {
        if (kv->type != TTLV_BYTE_STRING)
            return bad(err, "a wrapped Key Value must be a Byte String");
        a = kms_arena_new(0);
        if (!a)
            return KMS_ERR_NOMEM;
        rc = unwrap_key_value(a, kb, kv, cb, arg, &unwrapped, err);
        if (rc < 0)
            goto out;
        kv = unwrapped;
    } else if (kv->type != TTLV_STRUCTURE) {
        return bad(err, "Key Value must be a Structure (or Key Wrapping Data is missing)");
    }
    km = ttlv_find(kv, KMIP_TAG_KEY_MATERIAL);
    if (!km) {
        rc = kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_KEY_VALUE_NOT_PRESENT,
                                  "Key Value lacks Key Material");
        goto out;
    }
    d->registered_fmt = fmt;
    /* The Digest is over the Key Material as the client sent it. */
    rc = crypto_digest_key_material(km, d->digest);
    if (rc < 0)
        goto out;
    d->has_digest = true;
    if (d->object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
        d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA)
        rc = parse_sym(km, fmt, kb, d, out, err);
    else
        rc = parse_asym(km, fmt, kb, d, out, err);
out:
    kms_arena_free(a); /* wipes the unwrapped plaintext */
    return rc;
}

/* Algorithm and length of a certificate's public key (Cryptographic
 * Algorithm / Length apply to certificates too); left 0 for key types
 * KMIP names no parameters for here. */
static void cert_key_params(const uint8_t *der, size_t len, crypto_material_t *d)
{
    X509 *x = crypto_cert_d2i(der, len);
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
    uint32_t alg = 0, curve = 0;
    int32_t bits = 0;
    if (pk && crypto_pkey_params(pk, &alg, &bits, &curve, NULL) == 0) {
        d->alg = alg;
        d->bits = bits;
    }
    X509_free(x);
    ERR_clear_error();
}

static int object_parse(const ttlv_item_t *obj, uint32_t object_type,
                        crypto_kek_lookup_cb unwrap_cb, void *unwrap_arg, kms_secret_t **stored_out,
                        crypto_material_t *d, kms_error_t *err)
{
    const ttlv_item_t *t, *v;
    int rc;

    *stored_out = NULL;
    memset(d, 0, sizeof(*d));
    d->object_type = object_type;
    if (!obj || obj->type != TTLV_STRUCTURE || obj->tag != crypto_object_tag(object_type))
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "the object does not match the Object Type");
    switch (object_type) {
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY:
    case KMIP_OBJECT_TYPE_PRIVATE_KEY:
    case KMIP_OBJECT_TYPE_PUBLIC_KEY:
        return parse_key_block(obj, unwrap_cb, unwrap_arg, stored_out, d, err);
    case KMIP_OBJECT_TYPE_SECRET_DATA:
        t = crypto_find_typed(obj, KMIP_TAG_SECRET_DATA_TYPE, TTLV_ENUMERATION);
        if (!t)
            return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                        "Secret Data lacks Secret Data Type");
        d->sub_type = ttlv_u32(t);
        return parse_key_block(obj, unwrap_cb, unwrap_arg, stored_out, d, err);
    case KMIP_OBJECT_TYPE_CERTIFICATE: {
        const uint8_t *der;
        size_t der_len;
        if ((rc = crypto_cert_object_value(obj, &der, &der_len, err)) < 0 ||
            (rc = crypto_cert_check(der, der_len, err)) < 0)
            return rc;
        cert_key_params(der, der_len, d);
        d->sub_type = KMIP_CERTIFICATE_TYPE_X_509;
        d->stored_fmt = d->registered_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
        *stored_out = kms_secret_dup(der, der_len);
        return *stored_out ? 0 : KMS_ERR_NOMEM;
    }
    case KMIP_OBJECT_TYPE_OPAQUE_DATA:
        t = crypto_find_typed(obj, KMIP_TAG_OPAQUE_DATA_TYPE, TTLV_ENUMERATION);
        v = crypto_find_typed(obj, KMIP_TAG_OPAQUE_DATA_VALUE, TTLV_BYTE_STRING);
        if (!t || !v)
            return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                        "Opaque Object needs Opaque Data Type and Value");
        d->sub_type = ttlv_u32(t);
        d->stored_fmt = d->registered_fmt = KMIP_KEY_FORMAT_TYPE_OPAQUE;
        *stored_out = kms_secret_dup(v->v.bytes.ptr, v->v.bytes.len);
        return *stored_out ? 0 : KMS_ERR_NOMEM;
    case KMIP_OBJECT_TYPE_SPLIT_KEY:
    case KMIP_OBJECT_TYPE_PGP_KEY: {
        crypto_keyobj_t k;
        if ((rc = crypto_keyobj_read(obj, object_type, &k, err)) < 0)
            return rc;
        d->stored_fmt = d->registered_fmt = k.fmt;
        d->alg = k.alg;
        d->bits = k.bits;
        return crypto_keyobj_encode(&k, stored_out);
    }
    case KMIP_OBJECT_TYPE_TEMPLATE: {
        kms_buf_t b;
        for (const ttlv_item_t *c = obj->first; c; c = c->next)
            if (c->tag != KMIP_TAG_ATTRIBUTE || c->type != TTLV_STRUCTURE)
                return bad(err, "a Template holds only Attribute structures");
        kms_buf_init(&b, 16u << 20);
        rc = ttlv_encode(obj, &b);
        if (rc == 0)
            *stored_out = kms_secret_dup(b.data, b.len);
        kms_buf_dispose(&b);
        if (rc < 0)
            return rc;
        d->stored_fmt = d->registered_fmt = KMIP_KEY_FORMAT_TYPE_OPAQUE;
        return *stored_out ? 0 : KMS_ERR_NOMEM;
    }
    default:
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "Object Type not supported for Register");
    }
}

int crypto_object_parse(const ttlv_item_t *obj, uint32_t object_type,
                        crypto_kek_lookup_cb unwrap_cb, void *unwrap_arg, kms_secret_t **stored_out,
                        crypto_material_t *desc_out, kms_error_t *err)
{
    int rc;

    kms_error_clear(err);
    rc = object_parse(obj, object_type, unwrap_cb, unwrap_arg, stored_out, desc_out, err);
    if (rc < 0) {
        kms_secret_free(*stored_out);
        *stored_out = NULL;
    }
    return crypto_error_ensure(err, rc);
}
