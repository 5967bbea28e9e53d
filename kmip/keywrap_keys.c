/*
 * kmip/keywrap_keys.c: managed keys used as key-encryption keys, and the
 * Get-side assembly of an object (format conversion + key wrapping).
 *
 * kmip_kek_load() enforces what the specification asks of a
 * wrapping key: visible to the requester, an AES Symmetric Key, Active,
 * with Wrap Key (or Unwrap Key) in its Cryptographic Usage Mask.
 * kmip_get_object() reads a Get's Key Format Type / Key Compression
 * Type / Key Wrapping Specification and builds the object structure.
 * Access control on the object being fetched is the caller's job.
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

int kmip_kek_load(kmip_ctx_t *ctx, const char *key_id, uint32_t usage, kms_secret_t **kek_out,
                  uint32_t *mode_out)
{
    kmip_obj_t *k = NULL;
    const kms_secret_t *m = NULL;
    uint32_t alg = 0, mask = 0;
    int32_t imask = 0;
    int rc;

    *kek_out = NULL;
    if (mode_out)
        *mode_out = 0;
    /* The key-encryption key is an input: the request's log line and
     * audit record (kmip_summary_t.object_id, the first object loaded)
     * name the object it works on, the key a Register unwraps included,
     * never this key. */
    char first[sizeof ctx->first_object_id];
    kms_strlcpy(first, ctx->first_object_id, sizeof first);
    rc = kmip_obj_load(ctx, key_id, &k);
    kms_strlcpy(ctx->first_object_id, first, sizeof ctx->first_object_id);
    if (rc < 0) {
        if (rc == KMS_ERR_NOTFOUND)
            kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "wrapping key %s not found", key_id);
        return rc;
    }
    if (k->object_type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
        kmip_attr_get_enum(k, "Cryptographic Algorithm", &alg) != 0 ||
        alg != KMIP_CRYPTOGRAPHIC_ALGORITHM_AES)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "wrapping key %s is not an AES symmetric key", key_id);
    if (k->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "wrapping key %s is archived",
                         key_id);
    if (k->state != KMIP_STATE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                         "wrapping key %s is not in the Active state", key_id);
    if (kmip_attr_get_int(k, "Cryptographic Usage Mask", &imask) == 0)
        mask = (uint32_t)imask;
    if ((mask & usage) == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                         "wrapping key %s lacks %s in its Cryptographic Usage Mask", key_id,
                         usage == KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY ? "Wrap Key"
                                                                         : "Unwrap Key");
    rc = kmip_obj_open_material(ctx, k, &m);
    if (rc < 0)
        return rc;
    if (m->len != 16 && m->len != 24 && m->len != 32)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "wrapping key %s has an invalid AES length", key_id);
    if (mode_out) {
        /* The first Cryptographic Parameters instance naming a mode. */
        for (kmip_attr_t *a = k->attrs; a; a = a->next) {
            const ttlv_item_t *b;
            if (strcmp(a->name, "Cryptographic Parameters") != 0 || !a->value)
                continue;
            b = ttlv_find(a->value, KMIP_TAG_BLOCK_CIPHER_MODE);
            if (b && b->type == TTLV_ENUMERATION) {
                *mode_out = ttlv_u32(b);
                break;
            }
        }
    }
    *kek_out = kms_secret_dup(m->data, m->len);
    return *kek_out ? 0 : KMS_ERR_NOMEM;
}

/* Read the Key Wrapping Specification into `w` (kek owned by the ctx). */
static int resolve_wrap(kmip_ctx_t *ctx, kmip_obj_t *o, const ttlv_item_t *kws, crypto_wrap_t *w)
{
    const ttlv_item_t *wm, *eki, *uid, *cp, *bcm, *enc;
    kms_secret_t *kek = NULL;
    uint32_t kek_mode = 0;
    size_t n_names = 0, n = 0;
    ttlv_item_t **attrs;
    int rc;

    memset(w, 0, sizeof(*w));
    if (kws->type != TTLV_STRUCTURE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Key Wrapping Specification must be a Structure");
    wm = ttlv_find(kws, KMIP_TAG_WRAPPING_METHOD);
    if (!wm || wm->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Key Wrapping Specification lacks Wrapping Method");
    if (ttlv_u32(wm) != KMIP_WRAPPING_METHOD_ENCRYPT)
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "only Wrapping Method Encrypt is supported");
    if (ttlv_find(kws, KMIP_TAG_MAC_SIGNATURE_KEY_INFORMATION))
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "MAC/Signature Key Information is not supported");
    eki = ttlv_find(kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
    uid = eki && eki->type == TTLV_STRUCTURE ? ttlv_find(eki, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
    if (!uid || uid->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Wrapping Method Encrypt needs Encryption Key Information with a "
                         "Unique Identifier");
    if (strcmp(ttlv_text(uid), o->id) == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "a key cannot wrap itself");
    rc = kmip_kek_load(ctx, ttlv_text(uid), KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY, &kek,
                       &kek_mode);
    if (rc < 0)
        return rc;
    kmip_ctx_own_secret(ctx, kek);
    w->kek = kek;
    w->key_id = ttlv_text(uid);
    cp = ttlv_find(eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    bcm = cp && cp->type == TTLV_STRUCTURE ? ttlv_find(cp, KMIP_TAG_BLOCK_CIPHER_MODE) : NULL;
    if (bcm && bcm->type == TTLV_ENUMERATION)
        w->block_mode = ttlv_u32(bcm);
    else if (kek_mode != 0)
        w->block_mode = kek_mode;
    else
        w->block_mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP;
    enc = ttlv_find(kws, KMIP_TAG_ENCODING_OPTION);
    if (enc) {
        if (enc->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Encoding Option must be an Enumeration");
        w->encoding = ttlv_u32(enc);
    }
    /* Attribute Names: every instance of each named attribute goes into
     * the wrapped Key Value. */
    for (const ttlv_item_t *c = kws->first; c; c = c->next)
        if (c->tag == KMIP_TAG_ATTRIBUTE_NAME && c->type == TTLV_TEXT_STRING)
            for (kmip_attr_t *a = o->attrs; a; a = a->next)
                if (strcmp(a->name, ttlv_text(c)) == 0)
                    n_names++;
    if (n_names == 0)
        return 0;
    attrs = kms_arena_alloc(ctx->arena, n_names * sizeof(*attrs));
    if (!attrs)
        return KMS_ERR_NOMEM;
    for (const ttlv_item_t *c = kws->first; c; c = c->next) {
        if (c->tag != KMIP_TAG_ATTRIBUTE_NAME || c->type != TTLV_TEXT_STRING)
            continue;
        for (kmip_attr_t *a = o->attrs; a; a = a->next) {
            const kmip_attr_rule_t *r;
            if (strcmp(a->name, ttlv_text(c)) != 0)
                continue;
            r = kmip_attr_rule(a->name);
            if (r && (r->flags & KMIP_ATTR_HIDDEN))
                continue;
            attrs[n] = kmip_attr_to_ttlv(ctx, NULL, a);
            if (!attrs[n])
                return KMS_ERR_NOMEM;
            n++;
        }
    }
    w->attrs = attrs;
    w->n_attrs = n;
    return 0;
}

int kmip_get_object(kmip_ctx_t *ctx, kmip_obj_t *o, uint32_t want_fmt, uint32_t want_compression,
                    const ttlv_item_t *kws, ttlv_item_t *parent)
{
    const kms_secret_t *m = NULL;
    crypto_material_t desc;
    crypto_wrap_t w;
    kms_error_t e = {0};
    int rc;

    if (want_compression != 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
                         "Key Compression Type is not supported");
    rc = kmip_obj_open_material(ctx, o, &m);
    if (rc < 0)
        return rc;
    rc = kmip_obj_material_desc(o, &desc);
    if (rc < 0)
        return rc;
    if (kws) {
        rc = resolve_wrap(ctx, o, kws, &w);
        if (rc < 0)
            return rc;
    }
    rc = crypto_object_build(ctx->arena, parent, &desc, m, want_fmt, kws ? &w : NULL, &e);
    if (rc < 0 && e.reason)
        return kmip_fail(ctx, e.reason, "%s", e.msg);
    return rc;
}
