/*
 * kmip/op_get.c: the Get operation.
 *
 * Loads the object (tenant-scoped), refuses archived (Object Archived) and
 * destroyed (Item Not Found, as the KMIP 1.1 test cases show) objects, and
 * has kmip_get_object (keywrap_keys.c) produce the object in the
 * requested Key Format Type, wrapped as the Key Wrapping Specification
 * asks (an Active AES key of the same tenant with Wrap Key). It also keeps
 * Fresh and the group round-robin pointer (see mark_served). The KMIP 1.4
 * export policy is enforced: Extractable false never releases the value,
 * Sensitive true releases it only wrapped (Permission Denied otherwise).
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

static bool is_destroyed(uint32_t st)
{
    return st == KMIP_STATE_DESTROYED || st == KMIP_STATE_DESTROYED_COMPROMISED;
}

/* Boolean attribute `name` (instance 0); `dflt` when absent or not a Boolean. */
static bool attr_bool(const kmip_obj_t *o, const char *name, bool dflt)
{
    const kmip_attr_t *a = kmip_attr_get(o, name, 0);
    return a && a->value && a->value->type == TTLV_BOOLEAN ? a->value->v.b : dflt;
}

static int unfresh_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)arg;
    kmip_attr_t *f = kmip_attr_get(o, "Fresh", 0);
    if (!f || f->value->type != TTLV_BOOLEAN || !f->value->v.b) {
        *unchanged_out = true; /* another Get cleared it meanwhile */
        return 0;
    }
    return kmip_attr_set_bool(ctx, o, "Fresh", false);
}

static int served_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
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
    int rc = 0;
    bool had_write = ctx->deferred != NULL;
    if (ctx->default_member_pending && strcmp(ctx->id_placeholder, o->id) == 0) {
        ctx->default_member_pending = false;
        rc = kmip_obj_update(ctx, o->id, served_cb, NULL, NULL);
    } else {
        kmip_attr_t *f = kmip_attr_get(o, "Fresh", 0);
        if (!f || f->value->type != TTLV_BOOLEAN || !f->value->v.b)
            return 0;
        rc = kmip_obj_update(ctx, o->id, unfresh_cb, NULL, NULL);
    }
    if (rc == 0 && !had_write && ctx->deferred)
        ctx->deferred_optional = true; /* its commit may fail without failing the Get */
    if (rc && !ctx->need_worker) {
        /* Bookkeeping only: a Get must not fail because of it. */
        kms_log(KMS_LOG_WARN, "kmip", "object %s: served marker not stored: %s", o->id,
                kms_strerror(rc));
        kmip_fail_clear(ctx);
    }
    return 0;
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
    uint32_t want_comp = 0;
    const ttlv_item_t *kct = ttlv_find(ctx->payload, KMIP_TAG_KEY_COMPRESSION_TYPE);
    if (kct) {
        if (kct->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Key Compression Type");
        want_comp = ttlv_u32(kct);
    }
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived; Recover it first");
    if (is_destroyed(o->state) || kmip_attr_get(o, "Destroy Date", 0))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    if (o->object_type == KMIP_OBJECT_TYPE_TEMPLATE && !crypto_object_tag(o->object_type)) {
        /* Templates are returned as their attributes. */
        const kms_secret_t *m = NULL;
        if ((rc = kmip_obj_open_material(ctx, o, &m)))
            return rc;
        ttlv_item_t *t = NULL;
        kms_error_t err;
        if (ttlv_decode(m->data, m->len, NULL, ctx->arena, &t, &err))
            return kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE, "stored template is corrupt");
        if (!ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_OBJECT_TYPE, o->object_type) ||
            !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
            return KMS_ERR_NOMEM;
        ttlv_append(ctx->resp_payload, t);
        return 0;
    }
    const ttlv_item_t *kws = ttlv_find(ctx->payload, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);
    if (!attr_bool(o, "Extractable", true))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the object is not Extractable: its value is never released");
    if (attr_bool(o, "Sensitive", false) && !kws)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the object is Sensitive: Get it with a Key Wrapping Specification");
    if (!ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_OBJECT_TYPE, o->object_type) ||
        !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
        return KMS_ERR_NOMEM;
    /* Format conversion and wrapping: the crypto side (keywrap_keys.c). */
    if ((rc = kmip_get_object(ctx, o, want_fmt, want_comp, kws, ctx->resp_payload)))
        return rc;
    if ((rc = mark_served(ctx, o)))
        return rc;
    return 0;
}
