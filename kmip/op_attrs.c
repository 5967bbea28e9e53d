/*
 * kmip/op_attrs.c: Get Attributes, Get Attribute List, Add Attribute,
 * Modify Attribute and Delete Attribute.
 *
 * Rules (KMIP 1.1 sections 3 and 4.11-4.15, reasons from section 11): a
 * malformed Attribute (no name, an Attribute Value of another type than
 * the attribute's) is Invalid Message; unknown attribute names are
 * Invalid Field; attributes the client may not
 * add/modify/delete (server-set ones: Unique Identifier, State, dates...)
 * are Permission Denied; adding a second instance of a single-valued
 * attribute is Illegal Operation; an Attribute Index on Add is Invalid
 * Field; modifying/deleting a missing attribute or instance is Item Not
 * Found, and a missing index of a present attribute is Index Out Of
 * Bounds; a change to an archived object is Object Archived. Private
 * bookkeeping attributes (_kmsd.*) are never shown.
 */
#include <string.h>

#include "kmip/kmip_int.h"

static int put_uid(kmip_ctx_t *ctx, const char *id)
{
    return ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, id) ? 0
                                                                                      : KMS_ERR_NOMEM;
}

static bool hidden(const char *name)
{
    const kmip_attr_rule_t *r = kmip_attr_rule(name);
    return r && (r->flags & KMIP_ATTR_HIDDEN);
}

/* After a client changed an attribute the server derives others from:
 * Always Sensitive / Never Extractable stay true only while Sensitive /
 * Extractable held since creation; the Operation Policy Name decides
 * whether Locate hides the object from other identities. */
static int export_changed(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name)
{
    if (strcmp(name, "Operation Policy Name") == 0)
        return kmip_policy_refresh(ctx, o);
    if (strcmp(name, "Sensitive") != 0 && strcmp(name, "Extractable") != 0)
        return 0;
    return kmip_attr_export_history(ctx, o, false);
}

int kmip_op_get_attributes(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    /* Duplicate names are Invalid Field (KMIP 1.1 test case 17.1). */
    for (const ttlv_item_t *n = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE_NAME); n;
         n = ttlv_find_next(n, KMIP_TAG_ATTRIBUTE_NAME)) {
        if (n->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "Attribute Name is not text");
        for (const ttlv_item_t *m = ttlv_find_next(n, KMIP_TAG_ATTRIBUTE_NAME); m;
             m = ttlv_find_next(m, KMIP_TAG_ATTRIBUTE_NAME))
            if (m->type == TTLV_TEXT_STRING && strcmp(ttlv_text(m), ttlv_text(n)) == 0)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Attribute Name specified more than once: %s", ttlv_text(n));
    }
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if ((rc = put_uid(ctx, o->id)))
        return rc;
    const ttlv_item_t *first = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE_NAME);
    if (!first) {
        for (kmip_attr_t *a = o->attrs; a; a = a->next)
            if (kmip_attr_shown(ctx, a->name) && !kmip_attr_to_ttlv(ctx, ctx->resp_payload, a))
                return KMS_ERR_NOMEM;
        return 0;
    }
    for (const ttlv_item_t *n = first; n; n = ttlv_find_next(n, KMIP_TAG_ATTRIBUTE_NAME)) {
        const char *name = ttlv_text(n);
        if (hidden(name))
            continue;
        for (kmip_attr_t *a = o->attrs; a; a = a->next)
            if (strcmp(a->name, name) == 0 && !kmip_attr_to_ttlv(ctx, ctx->resp_payload, a))
                return KMS_ERR_NOMEM;
    }
    return 0;
}

int kmip_op_get_attribute_list(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if ((rc = put_uid(ctx, o->id)))
        return rc;
    for (kmip_attr_t *a = o->attrs; a; a = a->next) {
        if (!kmip_attr_shown(ctx, a->name))
            continue;
        bool dup = false;
        for (kmip_attr_t *b = o->attrs; b != a; b = b->next)
            if (strcmp(b->name, a->name) == 0)
                dup = true;
        if (!dup && !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_ATTRIBUTE_NAME, a->name))
            return KMS_ERR_NOMEM;
    }
    return 0;
}

/* The request's Attribute, parsed and checked against its rule. */
typedef struct edit {
    const char *name;
    uint32_t index;
    bool has_index;
    ttlv_item_t *value;
    const kmip_attr_rule_t *rule;
    uint32_t out_index;
    kmip_attr_t *result;
} edit_t;

static int parse_edit(kmip_ctx_t *ctx, edit_t *e, bool need_value)
{
    const ttlv_item_t *at = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE);
    if (!at)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "Attribute missing");
    int rc = kmip_attr_parse(ctx, at, &e->name, &e->index, &e->has_index, &e->value);
    if (rc)
        return rc;
    e->rule = kmip_attr_rule(e->name);
    if (!e->rule || (e->rule->flags & KMIP_ATTR_HIDDEN))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown attribute '%s'", e->name);
    if (need_value) {
        if (!e->value)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "Attribute Value missing");
        int rc2 = kmip_attr_check_value(ctx, e->name, e->rule, e->value);
        if (rc2)
            return rc2;
        if (strcmp(e->name, "Operation Policy Name") == 0 &&
            (rc2 = kmip_policy_check_name(ctx, ttlv_text(e->value))))
            return rc2;
    }
    return 0;
}

static int add_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    edit_t *e = arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (!(e->rule->flags & KMIP_ATTR_CLIENT_ADD))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "attribute '%s' cannot be added by a client", e->name);
    bool multi = e->rule->flags & KMIP_ATTR_MULTI;
    if (!multi && kmip_attr_count(o, e->name) > 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                         "attribute '%s' is single-valued and already present", e->name);
    ttlv_item_t *v = ttlv_clone(ctx->arena, e->value);
    if (!v)
        return KMS_ERR_NOMEM;
    if (strcmp(e->name, "Usage Limits") == 0) {
        /* The server keeps the remaining count; it starts at the total. */
        const ttlv_item_t *tot = ttlv_find(v, KMIP_TAG_USAGE_LIMITS_TOTAL);
        if (!tot || tot->type != TTLV_LONG_INTEGER || tot->v.i64 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Usage Limits Total missing");
        ttlv_item_t *cnt = ttlv_find(v, KMIP_TAG_USAGE_LIMITS_COUNT);
        if (cnt)
            ttlv_remove(cnt);
        ttlv_item_t *unit = ttlv_find(v, KMIP_TAG_USAGE_LIMITS_UNIT);
        if (unit)
            ttlv_remove(unit);
        if (!ttlv_new_long(ctx->arena, v, KMIP_TAG_USAGE_LIMITS_COUNT, tot->v.i64))
            return KMS_ERR_NOMEM;
        if (unit)
            ttlv_append(v, unit);
    }
    int rc = kmip_attr_add(ctx, o, e->name, v, &e->out_index);
    if (rc || (rc = export_changed(ctx, o, e->name)))
        return rc;
    e->result = kmip_attr_get(o, e->name, e->out_index);
    kmip_obj_eval_dates(ctx, o);
    return 0;
}

int kmip_op_add_attribute(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    edit_t e = {0};
    int rc = parse_edit(ctx, &e, true);
    if (rc)
        return rc;
    if (e.has_index)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Add Attribute takes no Attribute Index");
    kmip_obj_t *o = NULL;
    if ((rc = kmip_obj_update(ctx, id, add_cb, &e, &o)))
        return rc;
    if ((rc = put_uid(ctx, o->id)))
        return rc;
    return kmip_attr_to_ttlv(ctx, ctx->resp_payload, e.result) ? 0 : KMS_ERR_NOMEM;
}

static int modify_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    edit_t *e = arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (!(e->rule->flags & KMIP_ATTR_CLIENT_MOD))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "attribute '%s' is read-only for clients", e->name);
    size_t n = kmip_attr_count(o, e->name);
    if (n == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                         "the object has no attribute '%s'", e->name);
    if (!kmip_attr_get(o, e->name, e->index))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INDEX_OUT_OF_BOUNDS,
                         "attribute '%s' has no instance %u", e->name, e->index);
    if ((e->rule->flags & KMIP_ATTR_MOD_PREACTIVE) && o->state != KMIP_STATE_PRE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "attribute '%s' can be changed only in the Pre-Active state", e->name);
    if (strcmp(e->name, "Deactivation Date") == 0 && o->state != KMIP_STATE_PRE_ACTIVE &&
        o->state != KMIP_STATE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "Deactivation Date can be changed only in Pre-Active or Active state");
    /* The export policy only tightens: Extractable true -> false and
     * Sensitive false -> true, never back (as PKCS#11 does). */
    if ((strcmp(e->name, "Extractable") == 0 || strcmp(e->name, "Sensitive") == 0) &&
        e->value->type == TTLV_BOOLEAN) {
        bool tighten_is_true = strcmp(e->name, "Sensitive") == 0;
        const kmip_attr_t *cur = kmip_attr_get(o, e->name, e->index);
        bool was = cur && cur->value && cur->value->type == TTLV_BOOLEAN && cur->value->v.b;
        if (was == tighten_is_true && e->value->v.b != was)
            return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                             "%s can only be changed to %s", e->name,
                             tighten_is_true ? "true" : "false");
    }
    ttlv_item_t *v = ttlv_clone(ctx->arena, e->value);
    int rc = kmip_attr_set(ctx, o, e->name, e->index, v);
    if (rc || (rc = export_changed(ctx, o, e->name)))
        return rc;
    e->result = kmip_attr_get(o, e->name, e->index);
    kmip_obj_eval_dates(ctx, o);
    return 0;
}

int kmip_op_modify_attribute(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    edit_t e = {0};
    int rc = parse_edit(ctx, &e, true);
    if (rc)
        return rc;
    kmip_obj_t *o = NULL;
    if ((rc = kmip_obj_update(ctx, id, modify_cb, &e, &o)))
        return rc;
    if ((rc = put_uid(ctx, o->id)))
        return rc;
    return kmip_attr_to_ttlv(ctx, ctx->resp_payload, e.result) ? 0 : KMS_ERR_NOMEM;
}

static int delete_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    edit_t *e = arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (!(e->rule->flags & KMIP_ATTR_CLIENT_DEL))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "attribute '%s' cannot be deleted by a client", e->name);
    if (kmip_attr_count(o, e->name) == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                         "the object has no attribute '%s'", e->name);
    kmip_attr_t *a = kmip_attr_get(o, e->name, e->index);
    if (!a)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INDEX_OUT_OF_BOUNDS,
                         "attribute '%s' has no instance %u", e->name, e->index);
    /* keep a copy for the response */
    kmip_attr_t *copy = kms_arena_alloc(ctx->arena, sizeof(*copy));
    if (!copy)
        return KMS_ERR_NOMEM;
    *copy = *a;
    copy->next = NULL;
    e->result = copy;
    int rc = kmip_attr_remove(o, e->name, e->index);
    return rc ? rc : export_changed(ctx, o, e->name);
}

int kmip_op_delete_attribute(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    edit_t e = {0};
    /* Delete Attribute carries Attribute Name and Attribute Index directly
     * in the payload (KMIP 1.x), not an Attribute structure. */
    const ttlv_item_t *n = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE_NAME);
    const ttlv_item_t *ix = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE_INDEX);
    if (!n) {
        int rc = parse_edit(ctx, &e, false); /* tolerate an Attribute structure */
        if (rc)
            return rc;
    } else {
        if (n->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "Attribute Name is not text");
        if (ix && (ix->type != TTLV_INTEGER || ix->v.i32 < 0))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "bad Attribute Index");
        e.name = ttlv_text(n);
        e.index = ix ? (uint32_t)ix->v.i32 : 0;
        e.rule = kmip_attr_rule(e.name);
        if (!e.rule || (e.rule->flags & KMIP_ATTR_HIDDEN))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown attribute '%s'", e.name);
    }
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_update(ctx, id, delete_cb, &e, &o);
    if (rc)
        return rc;
    if ((rc = put_uid(ctx, o->id)))
        return rc;
    return kmip_attr_to_ttlv(ctx, ctx->resp_payload, e.result) ? 0 : KMS_ERR_NOMEM;
}
