/*
 * crypto/keyformat_build.c: the object structure of a Get response.
 *
 * From an object's canonical stored bytes (crypto.h) builds Symmetric
 * Key / Private Key / Public Key / Secret Data (a Key Block), Certificate,
 * Opaque Object or Template, converting the key to the Key Format Type the
 * client asked for and, when asked, wrapping the Key Value with another
 * AES key (RFC 3394 / RFC 5649) and describing it in Key Wrapping Data.
 * It does not load the wrapping key or check its state and usage mask:
 * the Get operation does that (kmip/keywrap_keys.c) before calling.
 */
#include <string.h>

#include <openssl/evp.h>

#include "crypto/crypto_int.h"

uint32_t crypto_object_tag(uint32_t object_type)
{
    switch (object_type) {
    case KMIP_OBJECT_TYPE_CERTIFICATE: return KMIP_TAG_CERTIFICATE;
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY: return KMIP_TAG_SYMMETRIC_KEY;
    case KMIP_OBJECT_TYPE_PUBLIC_KEY: return KMIP_TAG_PUBLIC_KEY;
    case KMIP_OBJECT_TYPE_PRIVATE_KEY: return KMIP_TAG_PRIVATE_KEY;
    case KMIP_OBJECT_TYPE_TEMPLATE: return KMIP_TAG_TEMPLATE;
    case KMIP_OBJECT_TYPE_SECRET_DATA: return KMIP_TAG_SECRET_DATA;
    case KMIP_OBJECT_TYPE_OPAQUE_DATA: return KMIP_TAG_OPAQUE_OBJECT;
    case KMIP_OBJECT_TYPE_SPLIT_KEY: return KMIP_TAG_SPLIT_KEY;
    case KMIP_OBJECT_TYPE_PGP_KEY: return KMIP_TAG_PGP_KEY;
    default: return 0;
    }
}

static int fmt_unsupported(kms_error_t *err, uint32_t fmt, const char *what)
{
    return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                "Key Format Type %s not supported for %s",
                                crypto_enum_name(KMIP_TAG_KEY_FORMAT_TYPE, fmt), what);
}

int crypto_key_material_add(kms_arena_t *a, ttlv_item_t *kv, const crypto_material_t *d,
                            const kms_secret_t *stored, uint32_t fmt, kms_error_t *err)
{
    EVP_PKEY *pk = NULL;
    kms_secret_t *der = NULL;
    bool priv = d->object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY;
    int rc = 0;

    switch (d->object_type) {
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY:
        if (fmt == KMIP_KEY_FORMAT_TYPE_RAW || fmt == KMIP_KEY_FORMAT_TYPE_OPAQUE) {
            if (!ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, stored->data, stored->len))
                return KMS_ERR_NOMEM;
        } else if (fmt == KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY) {
            ttlv_item_t *km = ttlv_new_struct(a, kv, KMIP_TAG_KEY_MATERIAL);
            if (!km || !ttlv_new_bytes(a, km, KMIP_TAG_KEY, stored->data, stored->len))
                return KMS_ERR_NOMEM;
        } else {
            return fmt_unsupported(err, fmt, "a Symmetric Key");
        }
        return 0;
    case KMIP_OBJECT_TYPE_SECRET_DATA:
        if (fmt != KMIP_KEY_FORMAT_TYPE_OPAQUE && fmt != KMIP_KEY_FORMAT_TYPE_RAW)
            return fmt_unsupported(err, fmt, "Secret Data");
        return ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, stored->data, stored->len)
                   ? 0 : KMS_ERR_NOMEM;
    case KMIP_OBJECT_TYPE_PRIVATE_KEY:
    case KMIP_OBJECT_TYPE_PUBLIC_KEY:
        if (fmt == d->stored_fmt)
            return ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, stored->data, stored->len)
                       ? 0 : KMS_ERR_NOMEM;
        rc = crypto_pkey_load(d->stored_fmt, priv, stored->data, stored->len, &pk, err);
        if (rc < 0) {
            /* Stored bytes were validated on the way in: this is our fault. */
            kms_error_set_reason(err, KMS_ERR_INTERNAL, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                 "stored key does not load");
            return KMS_ERR_INTERNAL;
        }
        if ((priv && crypto_fmt_is_transparent_priv(fmt)) ||
            (!priv && crypto_fmt_is_transparent_pub(fmt))) {
            rc = crypto_transparent_build(a, kv, pk, fmt, err);
        } else {
            rc = crypto_pkey_export(pk, fmt, priv, &der, err);
            if (rc == 0 && !ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, der->data, der->len))
                rc = KMS_ERR_NOMEM;
        }
        kms_secret_free(der);
        EVP_PKEY_free(pk);
        return rc;
    default:
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "object type has no Key Block");
    }
}

/* Replace the Key Value structure `kv` in `kb` by its wrapped Byte String
 * and append Key Wrapping Data. */
static int wrap_key_value(kms_arena_t *a, ttlv_item_t *kb, ttlv_item_t *kv, const crypto_wrap_t *w,
                          kms_error_t *err)
{
    kms_buf_t plain, ct;
    ttlv_item_t *km = ttlv_find(kv, KMIP_TAG_KEY_MATERIAL);
    ttlv_item_t *kwd, *eki, *cp, *wrapped;
    bool pad = w->block_mode == KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING;
    int rc = 0;

    kms_buf_init(&plain, 64u << 20);
    kms_buf_init(&ct, 64u << 20);
    if (w->block_mode != KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP && !pad) {
        rc = kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                  "Block Cipher Mode for wrapping must be NIST Key Wrap or "
                                  "AES Key Wrap Padding");
        goto out;
    }
    if (w->encoding == KMIP_ENCODING_OPTION_NO_ENCODING) {
        if (!km || km->type != TTLV_BYTE_STRING) {
            rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR,
                                      "No Encoding needs a Key Format Type whose Key Material is "
                                      "a Byte String");
            goto out;
        }
        if (w->n_attrs > 0) {
            rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR,
                                      "No Encoding cannot carry attributes");
            goto out;
        }
        rc = kms_buf_append(&plain, km->v.bytes.ptr, km->v.bytes.len);
    } else if (w->encoding == 0 || w->encoding == KMIP_ENCODING_OPTION_TTLV_ENCODING) {
        rc = ttlv_encode(kv, &plain);
    } else {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR,
                                  "unknown Encoding Option");
        goto out;
    }
    if (rc < 0)
        goto out;
    if (!pad && (plain.len < 16 || plain.len % 8 != 0)) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "NIST Key Wrap needs a multiple of 8 bytes (at least 16); this "
                                  "key is %zu bytes: use AES Key Wrap Padding",
                                  plain.len);
        goto out;
    }
    rc = crypto_aes_wrap(w->kek->data, w->kek->len, pad, plain.data, plain.len, &ct, err);
    if (rc < 0)
        goto out;
    /* Swap the plaintext Key Value for the wrapped bytes, in place. */
    wrapped = ttlv_new_bytes(a, NULL, KMIP_TAG_KEY_VALUE, ct.data, ct.len);
    if (!wrapped) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    wrapped->parent = kb;
    wrapped->next = kv->next;
    for (ttlv_item_t **pp = &kb->first; *pp; pp = &(*pp)->next)
        if (*pp == kv) {
            *pp = wrapped;
            break;
        }
    if (kb->last == kv)
        kb->last = wrapped;
    kv->parent = NULL;
    kv->next = NULL;

    kwd = ttlv_new_struct(a, kb, KMIP_TAG_KEY_WRAPPING_DATA);
    if (!kwd || !ttlv_new_enum(a, kwd, KMIP_TAG_WRAPPING_METHOD, KMIP_WRAPPING_METHOD_ENCRYPT)) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    eki = ttlv_new_struct(a, kwd, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
    if (!eki || !ttlv_new_textz(a, eki, KMIP_TAG_UNIQUE_IDENTIFIER, w->key_id)) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    cp = ttlv_new_struct(a, eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    if (!cp || !ttlv_new_enum(a, cp, KMIP_TAG_BLOCK_CIPHER_MODE, w->block_mode)) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if (w->encoding != 0 && !ttlv_new_enum(a, kwd, KMIP_TAG_ENCODING_OPTION, w->encoding))
        rc = KMS_ERR_NOMEM;
out:
    kms_buf_dispose_wipe(&plain);
    kms_buf_dispose(&ct);
    return rc;
}

static int build_key_block(kms_arena_t *a, ttlv_item_t *parent, const crypto_material_t *d,
                           const kms_secret_t *stored, uint32_t fmt, const crypto_wrap_t *w,
                           kms_error_t *err)
{
    ttlv_item_t *kb, *kv;
    int rc;

    kb = ttlv_new_struct(a, parent, KMIP_TAG_KEY_BLOCK);
    if (!kb || !ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt))
        return KMS_ERR_NOMEM;
    kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE);
    if (!kv)
        return KMS_ERR_NOMEM;
    rc = crypto_key_material_add(a, kv, d, stored, fmt, err);
    if (rc < 0)
        return rc;
    if (w) {
        for (size_t i = 0; i < w->n_attrs; i++) {
            ttlv_item_t *c = ttlv_clone(a, w->attrs[i]);
            if (!c)
                return KMS_ERR_NOMEM;
            ttlv_append(kv, c);
        }
    }
    /* Secret Data has no algorithm; the spec leaves both fields out then. */
    if (d->alg != 0) {
        if (!ttlv_new_enum(a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, d->alg))
            return KMS_ERR_NOMEM;
        if (d->bits > 0 && !ttlv_new_int(a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, d->bits))
            return KMS_ERR_NOMEM;
    }
    if (w)
        return wrap_key_value(a, kb, kv, w, err);
    return 0;
}

static int object_build(kms_arena_t *a, ttlv_item_t *parent, const crypto_material_t *d,
                        const kms_secret_t *stored, uint32_t want_fmt, const crypto_wrap_t *wrap,
                        kms_error_t *err)
{
    uint32_t tag = crypto_object_tag(d->object_type);
    uint32_t fmt = want_fmt ? want_fmt : d->registered_fmt;
    ttlv_item_t *obj;

    if (tag == 0)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "object type not supported");
    if (!stored)
        return kms_error_set_reason(err, KMS_ERR_STATE, KMIP_RESULT_REASON_KEY_VALUE_NOT_PRESENT,
                                    "the object has no key value");
    if (wrap && d->object_type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY &&
        d->object_type != KMIP_OBJECT_TYPE_PRIVATE_KEY &&
        d->object_type != KMIP_OBJECT_TYPE_PUBLIC_KEY &&
        d->object_type != KMIP_OBJECT_TYPE_SECRET_DATA)
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "only objects with a Key Block can be wrapped");
    switch (d->object_type) {
    case KMIP_OBJECT_TYPE_CERTIFICATE:
        if (want_fmt != 0 && want_fmt != KMIP_KEY_FORMAT_TYPE_X_509)
            return fmt_unsupported(err, want_fmt, "a Certificate");
        obj = ttlv_new_struct(a, parent, tag);
        if (!obj ||
            !ttlv_new_enum(a, obj, KMIP_TAG_CERTIFICATE_TYPE,
                           d->sub_type ? d->sub_type : KMIP_CERTIFICATE_TYPE_X_509) ||
            !ttlv_new_bytes(a, obj, KMIP_TAG_CERTIFICATE_VALUE, stored->data, stored->len))
            return KMS_ERR_NOMEM;
        return 0;
    case KMIP_OBJECT_TYPE_SPLIT_KEY:
    case KMIP_OBJECT_TYPE_PGP_KEY: {
        /* Served as registered: their stored form is the structure. */
        crypto_keyobj_t k;
        ttlv_item_t *tree = NULL;
        int rc;
        if (wrap)
            return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                        KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                        "Split Keys and PGP Keys are not served wrapped");
        if ((rc = crypto_keyobj_decode(a, stored, d->object_type, &k, &tree, err)) < 0)
            return rc;
        if (want_fmt != 0 && want_fmt != k.fmt)
            return fmt_unsupported(err, want_fmt, "a Split Key or PGP Key");
        ttlv_append(parent, tree);
        return 0;
    }
    case KMIP_OBJECT_TYPE_OPAQUE_DATA:
        if (want_fmt != 0 && want_fmt != KMIP_KEY_FORMAT_TYPE_OPAQUE)
            return fmt_unsupported(err, want_fmt, "an Opaque Object");
        obj = ttlv_new_struct(a, parent, tag);
        if (!obj || !ttlv_new_enum(a, obj, KMIP_TAG_OPAQUE_DATA_TYPE, d->sub_type) ||
            !ttlv_new_bytes(a, obj, KMIP_TAG_OPAQUE_DATA_VALUE, stored->data, stored->len))
            return KMS_ERR_NOMEM;
        return 0;
    case KMIP_OBJECT_TYPE_TEMPLATE: {
        ttlv_item_t *t = NULL;
        if (want_fmt != 0)
            return fmt_unsupported(err, want_fmt, "a Template");
        if (ttlv_decode(stored->data, stored->len, NULL, a, &t, NULL) < 0 ||
            t->tag != KMIP_TAG_TEMPLATE)
            return kms_error_set_reason(err, KMS_ERR_INTERNAL, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                        "stored template does not decode");
        ttlv_append(parent, t);
        return 0;
    }
    default:
        break;
    }
    obj = ttlv_new_struct(a, parent, tag);
    if (!obj)
        return KMS_ERR_NOMEM;
    if (d->object_type == KMIP_OBJECT_TYPE_SECRET_DATA &&
        !ttlv_new_enum(a, obj, KMIP_TAG_SECRET_DATA_TYPE,
                       d->sub_type ? d->sub_type : KMIP_SECRET_DATA_TYPE_PASSWORD))
        return KMS_ERR_NOMEM;
    return build_key_block(a, obj, d, stored, fmt, wrap, err);
}

int crypto_object_build(kms_arena_t *a, ttlv_item_t *parent, const crypto_material_t *desc,
                        const kms_secret_t *stored, uint32_t want_fmt, const crypto_wrap_t *wrap,
                        kms_error_t *err)
{
    kms_error_clear(err);
    return crypto_error_ensure(err, object_build(a, parent, desc, stored, want_fmt, wrap, err));
}
