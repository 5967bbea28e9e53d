/*
 * kmip/op_get.c: the Get operation.
 *
 * Loads the object, refuses archived (Object Archived) and destroyed
 * (Item Not Found, as the KMIP 1.1 test cases show) objects, resolves the
 * Key Wrapping Specification's wrapping key (an AES Symmetric Key of the
 * same tenant, Active, with Wrap Key in its usage mask) and has
 * kmip_crypto_object_build produce the object in the requested Key Format
 * Type. Key conversion and wrapping themselves live in kmip_crypto.h.
 * Wrapping with MAC/sign, and returning attributes inside a wrapped key
 * (Attribute Name in the specification) are Feature Not Supported.
 */
#include <string.h>

#include "kmip/kmip_crypto.h"
#include "kmip/kmip_int.h"

static bool is_destroyed(uint32_t st)
{
    return st == KMIP_STATE_DESTROYED || st == KMIP_STATE_DESTROYED_COMPROMISED;
}

/* Resolve the Key Wrapping Specification into w; fail recorded on error. */
static int resolve_wrap(kmip_ctx_t *ctx, const ttlv_item_t *kws, kmip_wrap_t *w)
{
    const ttlv_item_t *wm = ttlv_find(kws, KMIP_TAG_WRAPPING_METHOD);
    if (!wm || wm->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Wrapping Method missing");
    if (ttlv_u32(wm) != KMIP_WRAPPING_METHOD_ENCRYPT)
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "only the Encrypt wrapping method is supported");
    if (ttlv_find(kws, KMIP_TAG_MAC_SIGNATURE_KEY_INFORMATION))
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "MAC/Signature Key Information is not supported");
    if (ttlv_find(kws, KMIP_TAG_ATTRIBUTE_NAME))
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "attributes inside a wrapped key are not supported");
    const ttlv_item_t *eki = ttlv_find(kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
    const ttlv_item_t *uid = eki ? ttlv_find(eki, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
    if (!uid || uid->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Encryption Key Information needs a Unique Identifier");
    w->block_mode = KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP;
    const ttlv_item_t *cp = ttlv_find(eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    const ttlv_item_t *bm = cp ? ttlv_find(cp, KMIP_TAG_BLOCK_CIPHER_MODE) : NULL;
    if (bm) {
        if (bm->type != TTLV_ENUMERATION ||
            (ttlv_u32(bm) != KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP &&
             ttlv_u32(bm) != KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING))
            return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                             "wrapping block cipher mode not supported (NIST Key Wrap, AES Key Wrap with Padding)");
        w->block_mode = ttlv_u32(bm);
    }
    w->encoding = KMIP_ENCODING_OPTION_NO_ENCODING;
    const ttlv_item_t *eo = ttlv_find(kws, KMIP_TAG_ENCODING_OPTION);
    if (eo) {
        if (eo->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Encoding Option");
        if (ttlv_u32(eo) != KMIP_ENCODING_OPTION_NO_ENCODING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_ENCODING_OPTION_ERROR,
                             "only No Encoding is supported");
        w->encoding = ttlv_u32(eo);
    }
    kmip_obj_t *k = NULL;
    int rc = kmip_obj_load(ctx, ttlv_text(uid), &k);
    if (rc)
        return rc;
    uint32_t alg = 0;
    int32_t mask = 0;
    (void)kmip_attr_get_enum(k, "Cryptographic Algorithm", &alg);
    (void)kmip_attr_get_int(k, "Cryptographic Usage Mask", &mask);
    if (k->object_type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY || alg != KMIP_CRYPTOGRAPHIC_ALGORITHM_AES)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "the wrapping key is not an AES key");
    if (k->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "the wrapping key is archived");
    if (k->state != KMIP_STATE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED, "the wrapping key is not Active");
    if (!((uint32_t)mask & KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the wrapping key's usage mask does not allow Wrap Key");
    const kms_secret_t *kek = NULL;
    if ((rc = kmip_obj_open_material(ctx, k, &kek)))
        return rc;
    w->key_id = kms_arena_strdup(ctx->arena, k->id);
    w->kek = kek;
    return w->key_id ? 0 : KMS_ERR_NOMEM;
}

static int unfresh_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg)
{
    (void)arg;
    kmip_attr_t *f = kmip_attr_get(o, "Fresh", 0);
    if (!f || f->value->type != TTLV_BOOLEAN || !f->value->v.b)
        return 1;
    return kmip_attr_set_bool(ctx, o, "Fresh", false);
}

static int served_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg)
{
    (void)arg;
    int rc = kmip_attr_set(ctx, o, "_kmsd.served", 0,
                           ttlv_new_long(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, kms_now_us()));
    if (rc)
        return rc;
    kmip_attr_t *f = kmip_attr_get(o, "Fresh", 0);
    if (f && f->value->type == TTLV_BOOLEAN && f->value->v.b)
        rc = kmip_attr_set_bool(ctx, o, "Fresh", false);
    return rc;
}

/* Fresh becomes false once the object has been served to a client
 * (KMIP 1.1 section 3.34): written once, at the first Get. A Get of the
 * object a Locate picked as its group's default member also advances the
 * group's round-robin pointer. */
static int mark_served(kmip_ctx_t *ctx, kmip_obj_t *o)
{
    if (ctx->default_member_pending && strcmp(ctx->id_placeholder, o->id) == 0) {
        ctx->default_member_pending = false;
        return kmip_obj_update(ctx, o->id, served_cb, NULL, NULL);
    }
    kmip_attr_t *f = kmip_attr_get(o, "Fresh", 0);
    if (!f || f->value->type != TTLV_BOOLEAN || !f->value->v.b)
        return 0;
    return kmip_obj_update(ctx, o->id, unfresh_cb, NULL, NULL);
}

int kmip_op_get(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    uint32_t want_fmt = 0;
    const ttlv_item_t *kft = ttlv_find(ctx->payload, KMIP_TAG_KEY_FORMAT_TYPE);
    if (kft) {
        if (kft->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Key Format Type");
        want_fmt = ttlv_u32(kft);
    }
    const ttlv_item_t *kct = ttlv_find(ctx->payload, KMIP_TAG_KEY_COMPRESSION_TYPE);
    if (kct)
        return kmip_fail(ctx, KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
                         "key compression is not supported");
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived; Recover it first");
    if (is_destroyed(o->state) || kmip_attr_get(o, "Destroy Date", 0))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    if (o->object_type == KMIP_OBJECT_TYPE_TEMPLATE && !kmip_crypto_object_tag(o->object_type)) {
        /* Templates are returned as their attributes. */
        const kms_secret_t *m = NULL;
        if ((rc = kmip_obj_open_material(ctx, o, &m)))
            return rc;
        ttlv_item_t *t = NULL;
        ttlv_error_t err;
        if (ttlv_decode(m->data, m->len, NULL, ctx->arena, &t, &err))
            return kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE, "stored template is corrupt");
        if (!ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_OBJECT_TYPE, o->object_type) ||
            !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
            return KMS_ERR_NOMEM;
        ttlv_append(ctx->resp_payload, t);
        return 0;
    }
    kmip_wrap_t w = {0};
    const ttlv_item_t *kws = ttlv_find(ctx->payload, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);
    if (kws && (rc = resolve_wrap(ctx, kws, &w)))
        return rc;
    const kms_secret_t *m = NULL;
    if ((rc = kmip_obj_open_material(ctx, o, &m)))
        return rc;
    kmip_material_t d;
    kmip_obj_material_desc(o, &d);
    if (!ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_OBJECT_TYPE, o->object_type) ||
        !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
        return KMS_ERR_NOMEM;
    if ((rc = mark_served(ctx, o)))
        return rc;
    kmip_cerr_t e = {0};
    rc = kmip_crypto_object_build(ctx->arena, ctx->resp_payload, &d, m, want_fmt, kws ? &w : NULL, &e);
    if (rc) {
        if (e.reason)
            return kmip_fail(ctx, e.reason, "%s", e.msg);
        return rc;
    }
    return 0;
}
