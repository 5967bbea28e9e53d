/*
 * kmip/template.c: client-supplied attributes on a new object.
 *
 * Parses Attribute structures, resolves Template objects referenced by
 * Name inside a Template-Attribute, and applies the attributes to a new
 * object after checking each against its rule (known name or x-/y- custom,
 * value type, may the client set it, single-valued). Explicit attributes
 * override those of a referenced template.
 *
 * It does not check algorithm/length/mask combinations (op_create.c and
 * crypto/ do) nor persist anything.
 */
#include <string.h>

#include "kmip/kmip_int.h"

int kmip_attr_parse(kmip_ctx_t *ctx, const ttlv_item_t *attr, const char **name_out,
                    uint32_t *index_out, bool *has_index_out, ttlv_item_t **value_out)
{
    /* A structure that is not a well-formed Attribute does not decode into
     * the message KMIP defines: Invalid Message (KMIP 1.x section 11). */
    if (!attr || attr->type != TTLV_STRUCTURE || attr->tag != KMIP_TAG_ATTRIBUTE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "expected an Attribute structure");
    const ttlv_item_t *n = ttlv_find(attr, KMIP_TAG_ATTRIBUTE_NAME);
    const ttlv_item_t *ix = ttlv_find(attr, KMIP_TAG_ATTRIBUTE_INDEX);
    const ttlv_item_t *v = ttlv_find(attr, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!n || n->type != TTLV_TEXT_STRING || n->v.bytes.len == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                         "Attribute without an Attribute Name");
    if (ix && (ix->type != TTLV_INTEGER || ix->v.i32 < 0))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                         "Attribute Index is not a non-negative Integer");
    for (const ttlv_item_t *c = attr->first; c; c = c->next)
        if (c->tag != KMIP_TAG_ATTRIBUTE_NAME && c->tag != KMIP_TAG_ATTRIBUTE_INDEX &&
            c->tag != KMIP_TAG_ATTRIBUTE_VALUE)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                             "unexpected item in an Attribute structure");
    *name_out = ttlv_text(n);
    *index_out = ix ? (uint32_t)ix->v.i32 : 0;
    if (has_index_out)
        *has_index_out = ix != NULL;
    if (value_out) {
        *value_out = NULL;
        if (v) {
            *value_out = ttlv_clone(ctx->arena, v);
            if (!*value_out)
                return KMS_ERR_NOMEM;
        }
    }
    return 0;
}

int kmip_attr_check_value(kmip_ctx_t *ctx, const char *name, const kmip_attr_rule_t *r,
                          const ttlv_item_t *v)
{
    /* A value missing or of another TTLV type than the attribute's is a
     * malformed message; a well-formed value the attribute does not allow
     * is Invalid Field. */
    if (!v)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE, "attribute '%s' has no value", name);
    if (r->type != TTLV_ANY && v->type != r->type)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                         "attribute '%s' has the wrong type (%s, not %s)", name,
                         ttlv_type_name(v->type), ttlv_type_name(r->type));
    if (strcmp(name, "Name") == 0) {
        const ttlv_item_t *nv = ttlv_find(v, KMIP_TAG_NAME_VALUE);
        const ttlv_item_t *nt = ttlv_find(v, KMIP_TAG_NAME_TYPE);
        if (!nv || nv->type != TTLV_TEXT_STRING || !nt || nt->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                             "Name needs Name Value and Name Type");
    }
    if (strcmp(name, "Link") == 0) {
        const ttlv_item_t *lt = ttlv_find(v, KMIP_TAG_LINK_TYPE);
        const ttlv_item_t *li = ttlv_find(v, KMIP_TAG_LINKED_OBJECT_IDENTIFIER);
        if (!lt || lt->type != TTLV_ENUMERATION || !li || li->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                             "Link needs Link Type and Linked Object Identifier");
    }
    if (strcmp(name, "Usage Limits") == 0) {
        const ttlv_item_t *t = ttlv_find(v, KMIP_TAG_USAGE_LIMITS_TOTAL);
        const ttlv_item_t *u = ttlv_find(v, KMIP_TAG_USAGE_LIMITS_UNIT);
        if (!t || t->type != TTLV_LONG_INTEGER || t->v.i64 < 0 || !u || u->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Usage Limits needs Usage Limits Total and Unit");
    }
    if (strcmp(name, "Cryptographic Usage Mask") == 0 && (v->v.i32 & ~0x001FFFFF))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown Cryptographic Usage Mask bits");
    if (strcmp(name, "Cryptographic Length") == 0 && v->v.i32 <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Cryptographic Length must be positive");
    return 0;
}

/* Apply one client attribute to a new object. `from_template` attributes
 * are overridden by explicit ones later. */
static int apply_one(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, ttlv_item_t *v,
                     bool from_template, bool *seen_single)
{
    const kmip_attr_rule_t *r = kmip_attr_rule(name);
    if (!r || (r->flags & KMIP_ATTR_HIDDEN))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown attribute '%s'", name);
    if (!(r->flags & KMIP_ATTR_CLIENT_INIT))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "attribute '%s' is set by the server only", name);
    int rc = kmip_attr_check_value(ctx, name, r, v);
    if (rc)
        return rc;
    if (strcmp(name, "Operation Policy Name") == 0 && (rc = kmip_policy_check_name(ctx, ttlv_text(v))))
        return rc;
    if (r->flags & KMIP_ATTR_MULTI)
        return kmip_attr_add(ctx, o, name, v, NULL);
    if (!from_template && *seen_single)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "single-valued attribute '%s' given more than once", name);
    if (!from_template)
        *seen_single = true;
    return kmip_attr_set(ctx, o, name, 0, v);
}

/* Attributes of the Template object named `name` (Item Not Found if none). */
static int template_attrs(kmip_ctx_t *ctx, const char *name, const ttlv_item_t **tmpl_out)
{
    store_cond_t c[2] = {
        {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = name},
        {.kind = STORE_COND_TYPE_EQ, .lo = KMIP_OBJECT_TYPE_TEMPLATE},
    };
    store_query_t q = {.tenant = ctx->tenant_filter, .conds = c, .n_conds = 2, .max_items = 1};
    char **ids = NULL;
    size_t n = 0;
    if (ctx->deferred) {
        ctx->need_worker = true; /* it would not see the uncommitted write */
        return KMS_ERR_AGAIN;
    }
    int rc = store_locate(ctx->reader, &q, ctx->arena, &ids, &n);
    if (rc)
        return rc;
    if (n == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "no template named '%s'", name);
    kmip_obj_t *t = NULL;
    if ((rc = kmip_obj_load(ctx, ids[0], &t)))
        return rc;
    const kms_secret_t *m = NULL;
    if ((rc = kmip_obj_open_material(ctx, t, &m)))
        return rc;
    ttlv_item_t *root = NULL;
    kms_error_t err;
    if (ttlv_decode(m->data, m->len, NULL, ctx->arena, &root, &err))
        return kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE, "stored template is corrupt");
    *tmpl_out = root;
    return 0;
}

#define MAX_SINGLES 64

int kmip_attrs_apply_template(kmip_ctx_t *ctx, kmip_obj_t *o, const ttlv_item_t *tmpl)
{
    if (!tmpl)
        return 0;
    if (tmpl->type != TTLV_STRUCTURE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Template-Attribute is not a structure");
    int rc;
    bool dummy = false;
    /* 1. referenced templates */
    for (const ttlv_item_t *n = ttlv_find(tmpl, KMIP_TAG_NAME); n; n = ttlv_find_next(n, KMIP_TAG_NAME)) {
        const ttlv_item_t *nv = ttlv_find(n, KMIP_TAG_NAME_VALUE);
        if (!nv || nv->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "template Name without Name Value");
        const ttlv_item_t *t = NULL;
        if ((rc = template_attrs(ctx, ttlv_text(nv), &t)))
            return rc;
        for (const ttlv_item_t *a = ttlv_find(t, KMIP_TAG_ATTRIBUTE); a;
             a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE)) {
            const char *name;
            uint32_t idx;
            ttlv_item_t *v;
            if ((rc = kmip_attr_parse(ctx, a, &name, &idx, NULL, &v)))
                return rc;
            /* A template's own Name is not inherited. */
            if (strcmp(name, "Name") == 0)
                continue;
            if ((rc = apply_one(ctx, o, name, v, true, &dummy)))
                return rc;
        }
    }
    /* 2. explicit attributes */
    const char *singles[MAX_SINGLES];
    size_t n_singles = 0;
    for (const ttlv_item_t *a = ttlv_find(tmpl, KMIP_TAG_ATTRIBUTE); a;
         a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE)) {
        const char *name;
        uint32_t idx;
        ttlv_item_t *v;
        if ((rc = kmip_attr_parse(ctx, a, &name, &idx, NULL, &v)))
            return rc;
        bool seen = false;
        for (size_t i = 0; i < n_singles; i++)
            if (strcmp(singles[i], name) == 0)
                seen = true;
        const kmip_attr_rule_t *r = kmip_attr_rule(name);
        if (r && !(r->flags & KMIP_ATTR_MULTI) && !seen) {
            /* explicit value replaces a template's one */
            kmip_attr_remove_all(o, name);
            if (n_singles < MAX_SINGLES)
                singles[n_singles++] = name;
        }
        if ((rc = apply_one(ctx, o, name, v, false, &seen)))
            return rc;
    }
    if ((rc = kmip_attr_export_history(ctx, o, true)))
        return rc;
    return kmip_policy_refresh(ctx, o);
}
