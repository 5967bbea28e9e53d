/*
 * kmip/op_locate.c: the Locate operation.
 *
 * Turns the request's attributes into store conditions (text keys for
 * Name / Object Group / Unique Identifier / Link / custom text, numeric
 * keys for enumerations, integers and booleans, a range for two instances
 * of a date attribute, mask containment for the Cryptographic Usage Mask)
 * and post-filters what the store cannot express (State, which can change
 * with dates when an object is read; structure attributes compared by
 * value). Results are the requester's tenant only (all tenants for an
 * admin), newest first (oldest first with an Object Group Member, the group's
 * next object), clipped by Offset Items / Maximum Items; the first
 * result becomes the ID Placeholder.
 */
#include <string.h>

#include "kmip/kmip_int.h"

#define MAX_CONDS 64
#define MAX_POST 32

typedef struct post {
    const char *name;
    const ttlv_item_t *value; /* compared with ttlv_equal on the value */
    bool state;               /* State: compare with o->state after date evaluation */
    uint32_t state_v;
} post_t;

static bool is_date_attr(const char *name, const ttlv_item_t *v)
{
    (void)name;
    return v->type == TTLV_DATE_TIME;
}

/* Does object o have an instance of name whose value equals v? */
static bool has_value(const kmip_obj_t *o, const char *name, const ttlv_item_t *v)
{
    for (kmip_attr_t *a = o->attrs; a; a = a->next) {
        if (strcmp(a->name, name) != 0)
            continue;
        ttlv_item_t tmp = *a->value;
        tmp.tag = v->tag;
        if (ttlv_equal(&tmp, v))
            return true;
        /* Name: match on Name Value only (Name Type is not a filter). */
        if (strcmp(name, "Name") == 0) {
            const ttlv_item_t *x = ttlv_find(a->value, KMIP_TAG_NAME_VALUE);
            const ttlv_item_t *y = ttlv_find(v, KMIP_TAG_NAME_VALUE);
            if (x && y && x->type == TTLV_TEXT_STRING && y->type == TTLV_TEXT_STRING &&
                strcmp(ttlv_text(x), ttlv_text(y)) == 0)
                return true;
        }
    }
    return false;
}

int kmip_op_locate(kmip_ctx_t *ctx)
{
    store_cond_t conds[MAX_CONDS];
    post_t posts[MAX_POST];
    size_t nc = 0, np = 0;
    store_query_t q = {.tenant = ctx->tenant_filter};
    size_t max_items = 0, offset = 0;

    const ttlv_item_t *mi = ttlv_find(ctx->payload, KMIP_TAG_MAXIMUM_ITEMS);
    if (mi) {
        if (mi->type != TTLV_INTEGER || mi->v.i32 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Maximum Items");
        max_items = (size_t)mi->v.i32;
    }
    const ttlv_item_t *oi = ttlv_find(ctx->payload, KMIP_TAG_OFFSET_ITEMS);
    if (oi) {
        if (oi->type != TTLV_INTEGER || oi->v.i32 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Offset Items");
        offset = (size_t)oi->v.i32;
    }
    const ttlv_item_t *ssm = ttlv_find(ctx->payload, KMIP_TAG_STORAGE_STATUS_MASK);
    if (ssm) {
        if (ssm->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Storage Status Mask");
        q.want_online = ssm->v.i32 & KMIP_STORAGE_STATUS_MASK_ONLINE_STORAGE;
        q.want_archived = ssm->v.i32 & KMIP_STORAGE_STATUS_MASK_ARCHIVAL_STORAGE;
        if (!q.want_online && !q.want_archived)
            q.want_online = true;
    } else {
        q.want_online = true;
    }
    const ttlv_item_t *ogm = ttlv_find(ctx->payload, KMIP_TAG_OBJECT_GROUP_MEMBER);
    if (ogm) {
        if (ogm->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Object Group Member");
        if (ttlv_u32(ogm) == KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_FRESH)
            conds[nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = "Fresh", .lo = 1};
    }

    for (const ttlv_item_t *at = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE); at;
         at = ttlv_find_next(at, KMIP_TAG_ATTRIBUTE)) {
        const char *name;
        uint32_t idx;
        ttlv_item_t *v;
        int rc = kmip_attr_parse(ctx, at, &name, &idx, NULL, &v);
        if (rc)
            return rc;
        const kmip_attr_rule_t *r = kmip_attr_rule(name);
        if (!r || (r->flags & KMIP_ATTR_HIDDEN))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown attribute '%s'", name);
        if (!v)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "attribute '%s' has no value", name);
        if ((rc = kmip_attr_check_value(ctx, name, r, v)))
            return rc;
        if (nc + 2 > MAX_CONDS || np + 1 > MAX_POST)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "too many Locate attributes");
        if (strcmp(name, "State") == 0) {
            /* The stored state can lag behind dates (Pre-Active -> Active ->
             * Deactivated) until the object is next read, so the store
             * narrows to the states that can still become the asked one
             * and the post-filter decides on the evaluated state. */
            uint32_t st = ttlv_u32(v);
            int64_t lo = st <= KMIP_STATE_DEACTIVATED ? KMIP_STATE_PRE_ACTIVE : st;
            conds[nc++] = (store_cond_t){.kind = STORE_COND_STATE_RANGE, .lo = lo, .hi = st};
            posts[np++] = (post_t){.name = name, .state = true, .state_v = st};
            continue;
        }
        if (is_date_attr(name, v)) {
            /* A second instance of the same date attribute closes a range. */
            bool merged = false;
            for (size_t i = 0; i < nc; i++) {
                if (conds[i].kind == STORE_COND_NKEY_EQ && strcmp(conds[i].name, name) == 0 &&
                    conds[i].hi == conds[i].lo) {
                    int64_t a = conds[i].lo, b = v->v.i64;
                    conds[i].kind = STORE_COND_NKEY_RANGE;
                    conds[i].lo = a < b ? a : b;
                    conds[i].hi = a < b ? b : a;
                    merged = true;
                    break;
                }
            }
            if (!merged)
                conds[nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = name,
                                             .lo = v->v.i64, .hi = v->v.i64,
                                             .indexed = kmip_attr_nkey_indexed(name, v->type)};
            continue;
        }
        if (strcmp(name, "Object Type") == 0) {
            /* The objects column (in the order index), not an attribute row. */
            conds[nc++] = (store_cond_t){.kind = STORE_COND_TYPE_EQ, .lo = ttlv_u32(v)};
            continue;
        }
        if (strcmp(name, "Cryptographic Usage Mask") == 0) {
            conds[nc++] = (store_cond_t){.kind = STORE_COND_NKEY_MASK, .name = name,
                                         .lo = (uint32_t)v->v.i32};
            continue;
        }
        const char *skey;
        int64_t nkey;
        bool has_n;
        kmip_attr_search_keys(ctx->arena, name, v, &skey, &nkey, &has_n);
        if (skey)
            conds[nc++] = (store_cond_t){.kind = STORE_COND_SKEY_EQ, .name = name, .s = skey};
        if (v->type != TTLV_STRUCTURE && has_n)
            conds[nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = name, .lo = nkey,
                                         .hi = nkey,
                                         .indexed = kmip_attr_nkey_indexed(name, v->type)};
        if (v->type == TTLV_STRUCTURE || (!skey && !has_n))
            posts[np++] = (post_t){.name = name, .value = v};
    }
    /* Destroyed objects are not located, unless the client asks for a
     * State (then the post-filter decides). */
    bool want_state = false;
    for (size_t j = 0; j < np; j++)
        want_state |= posts[j].state;
    if (!want_state)
        conds[nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = "_kmsd.live", .lo = 1, .hi = 1};
    q.conds = conds;
    q.n_conds = nc;
    /* Object Group Member asks for the group's next object: oldest first
     * (a queue of fresh keys, KMIP 1.1 test case 15.2). */
    bool oldest_first = ogm != NULL;
    bool default_member = ogm && ttlv_u32(ogm) == KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_DEFAULT;
    bool clip_in_store = np == 0 && !oldest_first;
    q.max_items = clip_in_store ? max_items : 0;
    q.offset = clip_in_store ? offset : 0;
    if (q.max_items == 0)
        q.max_items = STORE_LOCATE_MAX;

    char **ids = NULL;
    size_t n = 0;
    int rc = store_locate(ctx->reader, &q, ctx->arena, &ids, &n);
    if (rc)
        return rc;
    if (oldest_first)
        for (size_t i = 0, j = n ? n - 1 : 0; i < j; i++, j--) {
            char *t = ids[i];
            ids[i] = ids[j];
            ids[j] = t;
        }
    if (default_member) {
        /* The group's default object, served round-robin: the member
         * least recently handed out by Get (never served first, then the
         * oldest). */
        const char *best = NULL;
        int64_t best_served = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            kmip_obj_t *o = NULL;
            rc = kmip_obj_load(ctx, ids[i], &o);
            if (rc == KMS_ERR_NOTFOUND) {
                ctx->reason = 0;
                ctx->msg[0] = 0;
                continue;
            }
            if (rc)
                return rc;
            bool ok = true;
            for (size_t j = 0; j < np && ok; j++)
                ok = posts[j].state ? o->state == posts[j].state_v
                                    : has_value(o, posts[j].name, posts[j].value);
            if (!ok)
                continue;
            kmip_attr_t *sv = kmip_attr_get(o, "_kmsd.served", 0);
            int64_t served = sv && sv->value->type == TTLV_LONG_INTEGER ? sv->value->v.i64 : 0;
            if (served < best_served) {
                best_served = served;
                best = ids[i];
            }
        }
        if (best) {
            if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, best))
                return KMS_ERR_NOMEM;
            kmip_set_placeholder(ctx, best);
            ctx->default_member_pending = true;
        }
        return 0;
    }
    size_t skipped = 0, out = 0, located = 0;
    for (size_t i = 0; i < n; i++) {
        if (!clip_in_store) {
            kmip_obj_t *o = NULL;
            rc = np ? kmip_obj_load(ctx, ids[i], &o) : 0;
            if (rc == KMS_ERR_NOTFOUND) { /* deleted meanwhile */
                ctx->reason = 0;
                ctx->msg[0] = 0;
                continue;
            }
            if (rc)
                return rc;
            bool ok = true;
            for (size_t j = 0; j < np && ok && o; j++)
                ok = posts[j].state ? o->state == posts[j].state_v
                                    : has_value(o, posts[j].name, posts[j].value);
            if (!ok)
                continue;
            located++;
            if (skipped < offset) {
                skipped++;
                continue;
            }
            if (max_items && out >= max_items)
                continue;
        } else {
            located++;
        }
        if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, ids[i]))
            return KMS_ERR_NOMEM;
        if (out == 0)
            kmip_set_placeholder(ctx, ids[i]);
        out++;
    }
    if (kmip_ver_at_least(ctx, 1, 3)) {
        ttlv_item_t *li = ttlv_new_int(ctx->arena, NULL, KMIP_TAG_LOCATED_ITEMS, (int32_t)located);
        if (!li)
            return KMS_ERR_NOMEM;
        /* Located Items comes first in the payload. */
        li->parent = ctx->resp_payload;
        li->next = ctx->resp_payload->first;
        ctx->resp_payload->first = li;
        if (!ctx->resp_payload->last)
            ctx->resp_payload->last = li;
    }
    return 0;
}
