/*
 * kmip/op_rekey.c: the Re-key operation (and the derivation shared with Re-key Key Pair).
 *
 * Makes a replacement key of the same algorithm and length with fresh
 * material, following KMIP 1.1 section 4.4: client attributes of the old
 * key are copied (the request's Template-Attribute wins), the Name moves
 * from the old key to the new one, the new key gets a Replaced Object Link
 * and the old key a Replacement Object Link, Initial Date / Last Change
 * Date / Digest / Lease Time are new, Destroy / Compromise / Revocation
 * data and Usage Limits are not carried over. With an Offset the new
 * Activation Date is now + Offset and the Process Start, Protect Stop and
 * Deactivation Dates keep their distance to it; without one the four
 * dates are copied. The old key is otherwise unchanged.
 *
 * The two objects are written in two commits, new key first: a failure
 * between them leaves the new key with the name and no back link on the
 * old one, never a key that lost its name. kmip_rekey_derive() and
 * kmip_rekey_retire() are shared with Re-key Key Pair (op_keypair.c).
 */
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

static const char *const date_names[] = {"Activation Date", "Process Start Date",
                                         "Protect Stop Date", "Deactivation Date"};

/* Attributes never copied to the replacement key. */
static bool not_copied(const char *name)
{
    static const char *const skip[] = {
        "Link", "Usage Limits", "Activation Date", "Process Start Date", "Protect Stop Date",
        "Deactivation Date",
    };
    const kmip_attr_rule_t *r = kmip_attr_rule(name);
    if (!r || (r->flags & KMIP_ATTR_HIDDEN) || !(r->flags & KMIP_ATTR_CLIENT_INIT))
        return true; /* server-managed: the new object has its own */
    for (size_t i = 0; i < KMS_ARRAY_SIZE(skip); i++)
        if (strcmp(name, skip[i]) == 0)
            return true;
    return false;
}

ttlv_item_t *kmip_link_value(kmip_ctx_t *ctx, uint32_t type, const char *id)
{
    ttlv_item_t *v = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!v || !ttlv_new_enum(ctx->arena, v, KMIP_TAG_LINK_TYPE, type) ||
        !ttlv_new_textz(ctx->arena, v, KMIP_TAG_LINKED_OBJECT_IDENTIFIER, id))
        return NULL;
    return v;
}

struct old_update {
    const char *new_id;
};

/* On the old key: drop its Names, add the Replacement Object Link. */
static int update_old(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    struct old_update *u = arg;
    ttlv_item_t *v = NULL;

    kmip_attr_remove_all(o, "Name");
    if (!(v = kmip_link_value(ctx, KMIP_LINK_TYPE_REPLACEMENT_OBJECT_LINK, u->new_id)))
        return KMS_ERR_NOMEM;
    return kmip_attr_add(ctx, o, "Link", v, NULL);
}

int kmip_rekey_derive(kmip_ctx_t *ctx, kmip_obj_t *old, const ttlv_item_t *tmpl,
                      const ttlv_item_t *off, kmip_obj_t **new_out)
{
    kmip_obj_t *n = NULL;
    uint32_t alg = 0;
    int32_t bits = 0;
    ttlv_item_t *v;
    int rc;

    *new_out = NULL;
    if (off && off->type != TTLV_INTERVAL)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Offset must be an Interval");
    if (old->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "the key %s is archived",
                         old->id);
    if (kmip_attr_get_enum(old, "Cryptographic Algorithm", &alg) ||
        kmip_attr_get_int(old, "Cryptographic Length", &bits))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "the key has no Cryptographic Algorithm/Length to re-key with");
    if ((rc = kmip_obj_new(ctx, old->object_type, &n)))
        return rc;
    /* The replacement belongs to the old key's owner, also when an admin
     * (who sees every tenant) re-keys it: otherwise the owner would be
     * left with a Replacement Object Link it cannot follow. */
    snprintf(n->tenant, sizeof(n->tenant), "%s", old->tenant);
    if ((rc = kmip_attrs_apply_template(ctx, n, tmpl)))
        return rc;
    /* The template may not change what the key is. */
    {
        uint32_t a2;
        int32_t b2;
        if ((kmip_attr_get_enum(n, "Cryptographic Algorithm", &a2) == 0 && a2 != alg) ||
            (kmip_attr_get_int(n, "Cryptographic Length", &b2) == 0 && b2 != bits))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Re-key cannot change the Cryptographic Algorithm or Length");
    }
    /* Copy client attributes the template did not set. Attributes are
     * appended, so what kmip_obj_new and the template set is the prefix
     * of the list up to `initial_end`. */
    {
        kmip_attr_t *initial_end = n->attrs;
        while (initial_end && initial_end->next)
            initial_end = initial_end->next;
        for (kmip_attr_t *a = old->attrs; a; a = a->next) {
            bool set_already = false;
            if (not_copied(a->name))
                continue;
            for (kmip_attr_t *b = n->attrs; b; b = b->next) {
                if (strcmp(b->name, a->name) == 0)
                    set_already = true;
                if (b == initial_end)
                    break;
            }
            if (set_already)
                continue;
            v = ttlv_clone(ctx->arena, a->value);
            if (!v)
                return KMS_ERR_NOMEM;
            if ((rc = kmip_attr_set(ctx, n, a->name, a->index, v)))
                return rc;
        }
    }
    /* Dates. */
    {
        int64_t at1 = 0, d;
        bool has_at1 = kmip_attr_get_date(old, "Activation Date", &at1) == 0;
        bool template_dates = false;
        for (size_t i = 0; i < KMS_ARRAY_SIZE(date_names); i++)
            if (kmip_attr_get(n, date_names[i], 0))
                template_dates = true;
        if (template_dates) {
            /* Explicit dates in the request win over both rules. */
        } else if (off) {
            int64_t at2 = ctx->now + (int64_t)ttlv_u32(off);
            if ((rc = kmip_attr_set_date(ctx, n, "Activation Date", at2)))
                return rc;
            for (size_t i = 1; i < KMS_ARRAY_SIZE(date_names); i++)
                if (has_at1 && kmip_attr_get_date(old, date_names[i], &d) == 0 &&
                    (rc = kmip_attr_set_date(ctx, n, date_names[i], d + (at2 - at1))))
                    return rc;
        } else {
            for (size_t i = 0; i < KMS_ARRAY_SIZE(date_names); i++)
                if (kmip_attr_get_date(old, date_names[i], &d) == 0 &&
                    (rc = kmip_attr_set_date(ctx, n, date_names[i], d)))
                    return rc;
        }
    }
    if (!(v = kmip_link_value(ctx, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK, old->id)))
        return KMS_ERR_NOMEM;
    if ((rc = kmip_attr_add(ctx, n, "Link", v, NULL)))
        return rc;
    *new_out = n;
    return 0;
}

int kmip_rekey_retire(kmip_ctx_t *ctx, const char *old_id, const char *new_id)
{
    struct old_update u = {.new_id = new_id};
    return kmip_obj_update(ctx, old_id, update_old, &u, NULL);
}

int kmip_op_rekey(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const char *uid = kmip_req_uid(ctx);
    kmip_obj_t *old = NULL, *n = NULL;
    kms_secret_t *key = NULL;
    crypto_material_t desc;
    kms_error_t e = {0};
    uint32_t alg = 0;
    int32_t bits = 0;
    int rc;

    if (!uid)
        return KMS_ERR_INVAL;
    if ((rc = kmip_obj_load(ctx, uid, &old)))
        return rc;
    if (old->object_type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Re-key applies to Symmetric Keys only (Re-key Key Pair for key pairs)");
    if ((rc = kmip_rekey_derive(ctx, old, ttlv_find(p, KMIP_TAG_TEMPLATE_ATTRIBUTE),
                                ttlv_find(p, KMIP_TAG_OFFSET), &n)))
        return rc;
    (void)kmip_attr_get_enum(n, "Cryptographic Algorithm", &alg);
    (void)kmip_attr_get_int(n, "Cryptographic Length", &bits);
    if ((rc = kmip_key_policy_check(ctx, alg, bits, 0)))
        return rc;
    rc = crypto_sym_generate(alg, bits, &key, &e);
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "%s", e.msg);
    memset(&desc, 0, sizeof(desc));
    desc.object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY;
    desc.stored_fmt = KMIP_KEY_FORMAT_TYPE_RAW;
    desc.registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW;
    desc.alg = alg;
    desc.bits = bits;
    if ((rc = kmip_obj_set_material(ctx, n, key, &desc)))
        return rc;
    kmip_obj_eval_dates(ctx, n);
    if ((rc = kmip_obj_save(ctx, n)) || (rc = kmip_rekey_retire(ctx, old->id, n->id)))
        return rc;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, n->id))
        return KMS_ERR_NOMEM;
    kmip_set_created(ctx, n->id);
    return 0;
}
