/*
 * kmip/attr.c: attribute instances on a managed object, and the rule table
 * of the standard KMIP 1.0-1.4 attributes.
 *
 * An object's attributes are a list of (name, index, value item). This file
 * gets, sets, adds and removes instances and knows, per standard attribute,
 * its value type, who may set, modify or delete it (KMIP 1.1 section 3
 * tables) and the KMIP 1.x minor version that introduced it. It does not validate values against the object's state or type
 * beyond that, and does not touch the store (object.c does).
 */
#include <string.h>

#include "kmip/kmip_int.h"

#define M KMIP_ATTR_MULTI
#define I KMIP_ATTR_CLIENT_INIT
#define D KMIP_ATTR_CLIENT_DEL
#define A KMIP_ATTR_CLIENT_ADD
#define C KMIP_ATTR_CLIENT_MOD
#define P KMIP_ATTR_MOD_PREACTIVE
#define H KMIP_ATTR_HIDDEN
#define S TTLV_STRUCTURE

static const kmip_attr_rule_t rules[] = {
    {"Unique Identifier", KMIP_TAG_UNIQUE_IDENTIFIER, TTLV_TEXT_STRING, 0, 0},
    {"Name", KMIP_TAG_NAME, S, M | I | A | C | D, 0},
    {"Object Type", KMIP_TAG_OBJECT_TYPE, TTLV_ENUMERATION, 0, 0},
    {"Cryptographic Algorithm", KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, TTLV_ENUMERATION, I, 0},
    {"Cryptographic Length", KMIP_TAG_CRYPTOGRAPHIC_LENGTH, TTLV_INTEGER, I, 0},
    {"Cryptographic Parameters", KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS, S, M | I | A | C | D, 0},
    {"Cryptographic Domain Parameters", KMIP_TAG_CRYPTOGRAPHIC_DOMAIN_PARAMETERS, S, I, 0},
    {"Certificate Type", KMIP_TAG_CERTIFICATE_TYPE, TTLV_ENUMERATION, 0, 0},
    {"Certificate Length", KMIP_TAG_CERTIFICATE_LENGTH, TTLV_INTEGER, 0, 1},
    {"X.509 Certificate Identifier", KMIP_TAG_X_509_CERTIFICATE_IDENTIFIER, S, 0, 1},
    {"X.509 Certificate Subject", KMIP_TAG_X_509_CERTIFICATE_SUBJECT, S, 0, 1},
    {"X.509 Certificate Issuer", KMIP_TAG_X_509_CERTIFICATE_ISSUER, S, 0, 1},
    {"Certificate Identifier", KMIP_TAG_CERTIFICATE_IDENTIFIER, S, 0, 0},
    {"Certificate Subject", KMIP_TAG_CERTIFICATE_SUBJECT, S, 0, 0},
    {"Certificate Issuer", KMIP_TAG_CERTIFICATE_ISSUER, S, 0, 0},
    {"Digital Signature Algorithm", KMIP_TAG_DIGITAL_SIGNATURE_ALGORITHM, TTLV_ENUMERATION, 0, 1},
    {"Digest", KMIP_TAG_DIGEST, S, M, 0},
    {"Operation Policy Name", KMIP_TAG_OPERATION_POLICY_NAME, TTLV_TEXT_STRING, I | A | C | D, 0},
    {"Cryptographic Usage Mask", KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, TTLV_INTEGER, I, 0},
    {"Lease Time", KMIP_TAG_LEASE_TIME, TTLV_INTERVAL, 0, 0},
    {"Usage Limits", KMIP_TAG_USAGE_LIMITS, S, I | A | C, 0},
    {"State", KMIP_TAG_STATE, TTLV_ENUMERATION, 0, 0},
    {"Initial Date", KMIP_TAG_INITIAL_DATE, TTLV_DATE_TIME, 0, 0},
    {"Activation Date", KMIP_TAG_ACTIVATION_DATE, TTLV_DATE_TIME, I | A | C | P, 0},
    {"Process Start Date", KMIP_TAG_PROCESS_START_DATE, TTLV_DATE_TIME, I | A | C | P, 0},
    {"Protect Stop Date", KMIP_TAG_PROTECT_STOP_DATE, TTLV_DATE_TIME, I | A | C | P, 0},
    {"Deactivation Date", KMIP_TAG_DEACTIVATION_DATE, TTLV_DATE_TIME, I | A | C, 0},
    {"Destroy Date", KMIP_TAG_DESTROY_DATE, TTLV_DATE_TIME, 0, 0},
    {"Compromise Occurrence Date", KMIP_TAG_COMPROMISE_OCCURRENCE_DATE, TTLV_DATE_TIME, 0, 0},
    {"Compromise Date", KMIP_TAG_COMPROMISE_DATE, TTLV_DATE_TIME, 0, 0},
    {"Revocation Reason", KMIP_TAG_REVOCATION_REASON, S, 0, 0},
    {"Archive Date", KMIP_TAG_ARCHIVE_DATE, TTLV_DATE_TIME, 0, 0},
    {"Object Group", KMIP_TAG_OBJECT_GROUP, TTLV_TEXT_STRING, M | I | A | C | D, 0},
    {"Fresh", KMIP_TAG_FRESH, TTLV_BOOLEAN, I, 1},
    {"Link", KMIP_TAG_LINK, S, M | I | A | C | D, 0},
    {"Application Specific Information", KMIP_TAG_APPLICATION_SPECIFIC_INFORMATION, S,
     M | I | A | C | D, 0},
    {"Contact Information", KMIP_TAG_CONTACT_INFORMATION, TTLV_TEXT_STRING, I | A | C | D, 0},
    {"Last Change Date", KMIP_TAG_LAST_CHANGE_DATE, TTLV_DATE_TIME, 0, 0},
    {"Alternative Name", KMIP_TAG_ALTERNATIVE_NAME, S, M | I | A | C | D, 2},
    {"Key Value Present", KMIP_TAG_KEY_VALUE_PRESENT, TTLV_BOOLEAN, 0, 2},
    {"Key Value Location", KMIP_TAG_KEY_VALUE_LOCATION, S, M | I | A | C | D, 2},
    {"Original Creation Date", KMIP_TAG_ORIGINAL_CREATION_DATE, TTLV_DATE_TIME, I, 2},
    {"Random Number Generator", KMIP_TAG_RANDOM_NUMBER_GENERATOR, S, 0, 3},
    {"Description", KMIP_TAG_DESCRIPTION, TTLV_TEXT_STRING, I | A | C | D, 4},
    {"Comment", KMIP_TAG_COMMENT, TTLV_TEXT_STRING, I | A | C | D, 4},
    {"Sensitive", KMIP_TAG_SENSITIVE, TTLV_BOOLEAN, I | A | C, 4},
    {"Extractable", KMIP_TAG_EXTRACTABLE, TTLV_BOOLEAN, I | A | C, 4},
    {"Always Sensitive", KMIP_TAG_ALWAYS_SENSITIVE, TTLV_BOOLEAN, 0, 4},
    {"Never Extractable", KMIP_TAG_NEVER_EXTRACTABLE, TTLV_BOOLEAN, 0, 4},
    /* Private bookkeeping of the material (crypto_material_t). The leading
     * underscore can never be a client attribute name. */
    {"_kmsd.fmt", 0, TTLV_INTEGER, H, 0},
    {"_kmsd.curve", 0, TTLV_INTEGER, H, 0},
    {"_kmsd.subtype", 0, TTLV_INTEGER, H, 0},
    {"_kmsd.live", 0, TTLV_INTEGER, H, 0}, /* 1 until Destroy: Locate skips destroyed objects */
    {"_kmsd.served", 0, TTLV_LONG_INTEGER, H, 0}, /* last Get after a default-member Locate */
    {"_kmsd.creator", 0, TTLV_TEXT_STRING, H, 0}, /* "tenant/identity" that made it (policy.c) */
    {"_kmsd.private", 0, TTLV_TEXT_STRING, H, 0}, /* the creator, when Locate hides it (policy.c) */
};

static const kmip_attr_rule_t custom_rule = {"x-", 0, TTLV_ANY, M | I | A | C | D, 0};

bool kmip_attr_is_custom(const char *name)
{
    return name && (strncmp(name, "x-", 2) == 0 || strncmp(name, "y-", 2) == 0) && name[2];
}

const kmip_attr_rule_t *kmip_attr_rule(const char *name)
{
    if (!name)
        return NULL;
    if (kmip_attr_is_custom(name))
        return &custom_rule;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(rules); i++)
        if (strcmp(rules[i].name, name) == 0)
            return &rules[i];
    return NULL;
}

kmip_attr_t *kmip_attr_get(const kmip_obj_t *o, const char *name, uint32_t index)
{
    /* First byte before strcmp: most names differ there, and this runs a
     * dozen times per request over a dozen attributes. */
    for (kmip_attr_t *a = o->attrs; a; a = a->next)
        if (a->index == index && a->name[0] == name[0] && strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

size_t kmip_attr_count(const kmip_obj_t *o, const char *name)
{
    size_t n = 0;
    for (kmip_attr_t *a = o->attrs; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            n++;
    return n;
}

int kmip_attr_set(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t index,
                  ttlv_item_t *value)
{
    if (!value)
        return KMS_ERR_NOMEM;
    value->tag = KMIP_TAG_ATTRIBUTE_VALUE;
    value->parent = NULL;
    value->next = NULL;
    o->dirty = true;
    kmip_attr_t *a = kmip_attr_get(o, name, index);
    if (a) {
        a->value = value;
        return 0;
    }
    a = kms_arena_alloc(ctx->arena, sizeof(*a));
    if (!a)
        return KMS_ERR_NOMEM;
    a->name = kms_arena_strdup(ctx->arena, name);
    if (!a->name)
        return KMS_ERR_NOMEM;
    a->index = index;
    a->value = value;
    /* keep insertion order: append */
    kmip_attr_t **pp = &o->attrs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = a;
    return 0;
}

int kmip_attr_add(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, ttlv_item_t *value,
                  uint32_t *index_out)
{
    uint32_t idx = 0;
    bool any = false;
    for (kmip_attr_t *a = o->attrs; a; a = a->next)
        if (strcmp(a->name, name) == 0) {
            if (!any || a->index >= idx)
                idx = a->index + 1;
            any = true;
        }
    int rc = kmip_attr_set(ctx, o, name, idx, value);
    if (rc == 0 && index_out)
        *index_out = idx;
    return rc;
}

int kmip_attr_remove(kmip_obj_t *o, const char *name, uint32_t index)
{
    for (kmip_attr_t **pp = &o->attrs; *pp; pp = &(*pp)->next) {
        if ((*pp)->index == index && strcmp((*pp)->name, name) == 0) {
            *pp = (*pp)->next;
            o->dirty = true;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

void kmip_attr_remove_all(kmip_obj_t *o, const char *name)
{
    kmip_attr_t **pp = &o->attrs;
    while (*pp) {
        if (strcmp((*pp)->name, name) == 0) {
            *pp = (*pp)->next;
            o->dirty = true;
        } else {
            pp = &(*pp)->next;
        }
    }
}

int kmip_attr_set_enum(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t v)
{
    return kmip_attr_set(ctx, o, name, 0, ttlv_new_enum(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, v));
}

int kmip_attr_set_int(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, int32_t v)
{
    return kmip_attr_set(ctx, o, name, 0, ttlv_new_int(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, v));
}

int kmip_attr_set_date(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, int64_t secs)
{
    return kmip_attr_set(ctx, o, name, 0,
                         ttlv_new_datetime(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, secs));
}

int kmip_attr_set_text(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, const char *s)
{
    return kmip_attr_set(ctx, o, name, 0, ttlv_new_textz(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, s));
}

int kmip_attr_set_bool(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, bool v)
{
    return kmip_attr_set(ctx, o, name, 0, ttlv_new_bool(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, v));
}

int kmip_attr_set_interval(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t v)
{
    return kmip_attr_set(ctx, o, name, 0,
                         ttlv_new_interval(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, v));
}

static const ttlv_item_t *get0(const kmip_obj_t *o, const char *name, enum ttlv_type t, int *rc)
{
    kmip_attr_t *a = kmip_attr_get(o, name, 0);
    if (!a) {
        *rc = KMS_ERR_NOTFOUND;
        return NULL;
    }
    if (a->value->type != t) {
        *rc = KMS_ERR_PROTO;
        return NULL;
    }
    *rc = 0;
    return a->value;
}

int kmip_attr_get_enum(const kmip_obj_t *o, const char *name, uint32_t *out)
{
    int rc;
    const ttlv_item_t *v = get0(o, name, TTLV_ENUMERATION, &rc);
    if (v)
        *out = ttlv_u32(v);
    return rc;
}

int kmip_attr_get_int(const kmip_obj_t *o, const char *name, int32_t *out)
{
    int rc;
    const ttlv_item_t *v = get0(o, name, TTLV_INTEGER, &rc);
    if (v)
        *out = v->v.i32;
    return rc;
}

int kmip_attr_get_date(const kmip_obj_t *o, const char *name, int64_t *out)
{
    int rc;
    const ttlv_item_t *v = get0(o, name, TTLV_DATE_TIME, &rc);
    if (v)
        *out = v->v.i64;
    return rc;
}

const char *kmip_attr_get_text(const kmip_obj_t *o, const char *name)
{
    int rc;
    const ttlv_item_t *v = get0(o, name, TTLV_TEXT_STRING, &rc);
    return v ? ttlv_text(v) : NULL;
}

static bool bool_attr(const kmip_obj_t *o, const char *name, bool *v_out)
{
    const kmip_attr_t *a = kmip_attr_get(o, name, 0);
    if (!a || !a->value || a->value->type != TTLV_BOOLEAN)
        return false;
    *v_out = a->value->v.b;
    return true;
}

int kmip_attr_export_history(kmip_ctx_t *ctx, kmip_obj_t *o, bool creation)
{
    bool v, was;
    int rc;
    /* Absent Sensitive is false, absent Extractable true (KMIP 1.4): an
     * object that gets either only later was not "always" so. */
    if (bool_attr(o, "Sensitive", &v)) {
        if (!creation)
            v = v && bool_attr(o, "Always Sensitive", &was) && was;
        if ((rc = kmip_attr_set_bool(ctx, o, "Always Sensitive", v)))
            return rc;
    }
    if (bool_attr(o, "Extractable", &v)) {
        bool never = !v;
        if (!creation)
            never = never && bool_attr(o, "Never Extractable", &was) && was;
        if ((rc = kmip_attr_set_bool(ctx, o, "Never Extractable", never)))
            return rc;
    }
    return 0;
}

bool kmip_attr_shown(const kmip_ctx_t *ctx, const char *name)
{
    const kmip_attr_rule_t *r = kmip_attr_rule(name);
    if (r && (r->flags & KMIP_ATTR_HIDDEN))
        return false;
    return !r || ctx->ver_major > 1 || r->since_minor <= ctx->ver_minor;
}

ttlv_item_t *kmip_attr_to_ttlv(kmip_ctx_t *ctx, ttlv_item_t *parent, const kmip_attr_t *a)
{
    ttlv_item_t *s = ttlv_new_struct(ctx->arena, parent, KMIP_TAG_ATTRIBUTE);
    if (!s)
        return NULL;
    if (!ttlv_new_textz(ctx->arena, s, KMIP_TAG_ATTRIBUTE_NAME, a->name))
        return NULL;
    if (a->index > 0 && !ttlv_new_int(ctx->arena, s, KMIP_TAG_ATTRIBUTE_INDEX, (int32_t)a->index))
        return NULL;
    ttlv_item_t *v = ttlv_clone(ctx->arena, a->value);
    if (!v)
        return NULL;
    v->tag = KMIP_TAG_ATTRIBUTE_VALUE;
    ttlv_append(s, v);
    return s;
}
