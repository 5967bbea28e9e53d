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
 * admin), less the objects whose operation policy hides them from the
 * requester (policy.c). Asked for the next member of the server's default
 * group (Object Group "default" with an Object Group Member, nothing else)
 * when it has none, Locate makes one: a fresh AES-256 key. Results are
 * newest first (oldest first with an Object Group Member, the group's next
 * object), clipped by Offset Items / Maximum Items; the first result
 * becomes the ID Placeholder.
 *
 * Four steps: parse the payload into a query, plan what the store is asked,
 * run it, answer (post-filter, clip, Located Items). A Locate over a large
 * store can be long: the store's scan and the post-filter loop both stop
 * once the request is cancelled (its client went away) or its work budget
 * (limits.request_time) is spent, and the item answers Operation Failed
 * saying which.
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

/* What the request asks for: store conditions, post-filters and clipping. */
typedef struct locate_query {
    store_cond_t conds[MAX_CONDS];
    size_t nc;
    post_t posts[MAX_POST];
    size_t np;
    size_t max_items, offset;  /* 0 = no Maximum Items */
    bool want_online, want_archived;
    bool group_member;         /* Object Group Member given: the group's next object */
    bool default_member;       /* ... the group's default one, round-robin */
    size_t n_attrs;            /* Attributes in the request */
    bool default_group;        /* one of them is Object Group = KMIP_DEFAULT_GROUP */
} locate_query_t;

/* Maximum Items, Offset Items, Storage Status Mask, Object Group Member. */
static int parse_options(kmip_ctx_t *ctx, locate_query_t *q)
{
    const ttlv_item_t *mi = ttlv_find(ctx->payload, KMIP_TAG_MAXIMUM_ITEMS);
    if (mi) {
        if (mi->type != TTLV_INTEGER || mi->v.i32 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Maximum Items");
        q->max_items = (size_t)mi->v.i32;
    }
    const ttlv_item_t *oi = ttlv_find(ctx->payload, KMIP_TAG_OFFSET_ITEMS);
    if (oi) {
        if (oi->type != TTLV_INTEGER || oi->v.i32 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Offset Items");
        q->offset = (size_t)oi->v.i32;
    }
    const ttlv_item_t *ssm = ttlv_find(ctx->payload, KMIP_TAG_STORAGE_STATUS_MASK);
    if (ssm) {
        if (ssm->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Storage Status Mask");
        q->want_online = ssm->v.i32 & KMIP_STORAGE_STATUS_MASK_ONLINE_STORAGE;
        q->want_archived = ssm->v.i32 & KMIP_STORAGE_STATUS_MASK_ARCHIVAL_STORAGE;
    }
    if (!q->want_online && !q->want_archived)
        q->want_online = true;
    const ttlv_item_t *ogm = ttlv_find(ctx->payload, KMIP_TAG_OBJECT_GROUP_MEMBER);
    if (ogm) {
        if (ogm->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Object Group Member");
        q->group_member = true;
        q->default_member = ttlv_u32(ogm) == KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_DEFAULT;
        if (ttlv_u32(ogm) == KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_FRESH)
            q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = "Fresh", .lo = 1};
    }
    return 0;
}

/* A date: equality, or with a second instance of the same attribute the
 * range between the two. */
static void add_date(locate_query_t *q, const char *name, const ttlv_item_t *v)
{
    for (size_t i = 0; i < q->nc; i++) {
        store_cond_t *c = &q->conds[i];
        if (c->kind == STORE_COND_NKEY_EQ && strcmp(c->name, name) == 0 && c->hi == c->lo) {
            int64_t a = c->lo, b = v->v.i64;
            c->kind = STORE_COND_NKEY_RANGE;
            c->lo = a < b ? a : b;
            c->hi = a < b ? b : a;
            return;
        }
    }
    q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = name, .lo = v->v.i64,
                                       .hi = v->v.i64,
                                       .indexed = kmip_attr_nkey_indexed(name, v->type)};
}

/* One Attribute of the request as store conditions and post-filters. */
static int parse_attribute(kmip_ctx_t *ctx, locate_query_t *q, const ttlv_item_t *at)
{
    const char *name;
    uint32_t idx;
    ttlv_item_t *v;
    int rc = kmip_attr_parse(ctx, at, &name, &idx, NULL, &v);
    if (rc)
        return rc;
    q->n_attrs++;
    if (strcmp(name, "Object Group") == 0 && v && v->type == TTLV_TEXT_STRING &&
        strcmp(ttlv_text(v), KMIP_DEFAULT_GROUP) == 0)
        q->default_group = true;
    const kmip_attr_rule_t *r = kmip_attr_rule(name);
    if (!r || (r->flags & KMIP_ATTR_HIDDEN))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown attribute '%s'", name);
    if ((rc = kmip_attr_check_value(ctx, name, r, v)))
        return rc;
    /* Room for two conditions (skey + nkey) and one post-filter, plus the
     * liveness condition plan() may add. */
    if (q->nc + 3 > MAX_CONDS || q->np + 1 > MAX_POST)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "too many Locate attributes");
    if (strcmp(name, "State") == 0) {
        /* The stored state can lag behind dates (Pre-Active -> Active ->
         * Deactivated) until the object is next read, so the store narrows
         * to the states that can still become the asked one and the
         * post-filter decides on the evaluated state. */
        uint32_t st = ttlv_u32(v);
        int64_t lo = st <= KMIP_STATE_DEACTIVATED ? KMIP_STATE_PRE_ACTIVE : st;
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_STATE_RANGE, .lo = lo, .hi = st};
        q->posts[q->np++] = (post_t){.name = name, .state = true, .state_v = st};
        return 0;
    }
    if (is_date_attr(name, v)) {
        add_date(q, name, v);
        return 0;
    }
    if (strcmp(name, "Object Type") == 0) {
        /* The objects column (in the order index), not an attribute row. */
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_TYPE_EQ, .lo = ttlv_u32(v)};
        return 0;
    }
    if (strcmp(name, "Cryptographic Usage Mask") == 0) {
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_NKEY_MASK, .name = name,
                                           .lo = (uint32_t)v->v.i32};
        return 0;
    }
    const char *skey;
    int64_t nkey;
    bool has_n;
    kmip_attr_search_keys(ctx->arena, name, v, &skey, &nkey, &has_n);
    if (skey)
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_SKEY_EQ, .name = name, .s = skey};
    if (v->type != TTLV_STRUCTURE && has_n)
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = name, .lo = nkey,
                                           .hi = nkey,
                                           .indexed = kmip_attr_nkey_indexed(name, v->type)};
    if (v->type == TTLV_STRUCTURE || (!skey && !has_n))
        q->posts[q->np++] = (post_t){.name = name, .value = v};
    return 0;
}

/* Step 1: the request payload as a query. */
static int parse_query(kmip_ctx_t *ctx, locate_query_t *q)
{
    int rc = parse_options(ctx, q);
    for (const ttlv_item_t *at = ttlv_find(ctx->payload, KMIP_TAG_ATTRIBUTE); at && rc == 0;
         at = ttlv_find_next(at, KMIP_TAG_ATTRIBUTE))
        rc = parse_attribute(ctx, q, at);
    return rc;
}

/* Step 2: what the store is asked. Destroyed objects are not located,
 * unless the client asks for a State (then the post-filter decides). The
 * store clips (Offset/Maximum Items) only when nothing is post-filtered
 * and the order is its own (newest first), and no object is hidden by
 * its operation policy (`may_clip`). */
static bool plan(kmip_ctx_t *ctx, locate_query_t *q, store_query_t *sq, bool may_clip)
{
    bool want_state = false;
    for (size_t j = 0; j < q->np; j++)
        want_state |= q->posts[j].state;
    if (!want_state)
        q->conds[q->nc++] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = "_kmsd.live",
                                           .lo = 1, .hi = 1};
    bool clip_in_store = may_clip && q->np == 0 && !q->group_member;
    *sq = (store_query_t){
        .tenant = ctx->tenant_filter,
        .conds = q->conds,
        .n_conds = q->nc,
        .want_online = q->want_online,
        .want_archived = q->want_archived,
        .max_items = clip_in_store ? q->max_items : 0,
        .offset = clip_in_store ? q->offset : 0,
        .cancel = ctx->cancelled,
        .deadline_ns = ctx->deadline_ns,
    };
    if (sq->max_items == 0)
        sq->max_items = STORE_LOCATE_MAX;
    return clip_in_store;
}

/* Objects of the requester's view that their operation policy hides from
 * it (policy.c's _kmsd.private marker names their creator): every marked
 * one less those the requester made. Usually none. */
static int hidden_ids(kmip_ctx_t *ctx, char ***ids_out, size_t *n_out)
{
    char me[256];
    char **all = NULL, **mine = NULL;
    size_t n_all = 0, n_mine = 0;
    *ids_out = NULL;
    *n_out = 0;
    int rc = kmip_policy_creator(ctx, me, sizeof(me));
    store_cond_t has = {.kind = STORE_COND_SKEY_ANY, .name = "_kmsd.private"};
    store_query_t q = {.tenant = ctx->tenant_filter, .conds = &has, .n_conds = 1,
                       .want_online = true, .want_archived = true,
                       .max_items = STORE_LOCATE_MAX};
    if (rc || (rc = store_locate(ctx->reader, &q, ctx->arena, &all, &n_all)) || n_all == 0)
        return rc;
    store_cond_t own = {.kind = STORE_COND_SKEY_EQ, .name = "_kmsd.private", .s = me};
    q.conds = &own;
    if ((rc = store_locate(ctx->reader, &q, ctx->arena, &mine, &n_mine)))
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < n_all; i++) {
        bool ok = false;
        for (size_t j = 0; j < n_mine && !ok; j++)
            ok = strcmp(all[i], mine[j]) == 0;
        if (!ok)
            all[k++] = all[i];
    }
    *ids_out = all;
    *n_out = k;
    return 0;
}

static bool is_hidden(char **hidden, size_t n_hidden, const char *id)
{
    for (size_t i = 0; i < n_hidden; i++)
        if (strcmp(hidden[i], id) == 0)
            return true;
    return false;
}

/* Step 3: the store's candidates, in answer order. Object Group Member
 * asks for the group's next object: oldest first (a queue of fresh keys,
 * KMIP 1.1 test case 15.2). */
static int run_query(kmip_ctx_t *ctx, const locate_query_t *q, const store_query_t *sq,
                     char ***ids_out, size_t *n_out)
{
    int rc = store_locate(ctx->reader, sq, ctx->arena, ids_out, n_out);
    if (rc == KMS_ERR_TIMEOUT)
        return kmip_ctx_budget(ctx, "Locate") ? KMS_ERR_TIMEOUT : rc;
    if (rc || !q->group_member)
        return rc;
    char **ids = *ids_out;
    for (size_t i = 0, j = *n_out ? *n_out - 1 : 0; i < j; i++, j--) {
        char *t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    return 0;
}

/* Load candidate `id` and apply the post-filters: *match, and for a
 * match its _kmsd.served count (0 when never served). The object itself
 * is released: a Locate may evaluate every object of a tenant, and kept
 * in the request's arena they would exhaust it (a batch of ten Locates
 * over 3 000 keys would), so the arena is rewound to before the load.
 * Not when the load left something behind that points into the arena (a
 * date-driven state write on the batch's undo log, or a deferred commit). */
static int post_filter(kmip_ctx_t *ctx, const locate_query_t *q, const char *id, bool *match,
                       int64_t *served)
{
    kmip_obj_t *o = NULL;
    *match = false;
    *served = 0;
    int rc = kmip_ctx_budget(ctx, "Locate");
    if (rc)
        return rc;
    kms_arena_mark_t mark = kms_arena_mark(ctx->arena);
    const struct kmip_undo *undo = ctx->undo;
    const store_write_t *deferred = ctx->deferred;
    rc = kmip_obj_load(ctx, id, &o);
    if (rc == KMS_ERR_NOTFOUND || rc == KMS_ERR_PERM) {
        /* Deleted meanwhile, or its operation policy hides it. */
        kmip_fail_clear(ctx);
        rc = 0;
    } else if (rc == 0) {
        *match = true;
        for (size_t j = 0; j < q->np && *match; j++)
            *match = q->posts[j].state ? o->state == q->posts[j].state_v
                                       : has_value(o, q->posts[j].name, q->posts[j].value);
        kmip_attr_t *sv = *match ? kmip_attr_get(o, "_kmsd.served", 0) : NULL;
        if (sv && sv->value->type == TTLV_LONG_INTEGER)
            *served = sv->value->v.i64;
    }
    if (ctx->undo == undo && ctx->deferred == deferred)
        kms_arena_rewind(ctx->arena, mark);
    return rc;
}

/* Step 4, Object Group Member Default: the group's default object, served
 * round-robin: the member least recently handed out by Get (never served
 * first, then the oldest). It becomes the ID Placeholder, and a Get of it
 * advances the pointer. */
static int answer_default_member(kmip_ctx_t *ctx, const locate_query_t *q, char **ids, size_t n)
{
    const char *best = NULL;
    int64_t best_served = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        bool match = false;
        int64_t served = 0;
        int rc = post_filter(ctx, q, ids[i], &match, &served);
        if (rc)
            return rc;
        if (!match)
            continue;
        if (served < best_served) {
            best_served = served;
            best = ids[i];
        }
    }
    if (!best)
        return 0;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, best))
        return KMS_ERR_NOMEM;
    kmip_set_placeholder(ctx, best);
    ctx->default_member_pending = true;
    return 0;
}

/* Located Items (KMIP 1.3+) comes first in the payload. */
static int prepend_located(kmip_ctx_t *ctx, size_t located)
{
    ttlv_item_t *li = ttlv_new_int(ctx->arena, NULL, KMIP_TAG_LOCATED_ITEMS, (int32_t)located);
    if (!li)
        return KMS_ERR_NOMEM;
    li->parent = ctx->resp_payload;
    li->next = ctx->resp_payload->first;
    ctx->resp_payload->first = li;
    if (!ctx->resp_payload->last)
        ctx->resp_payload->last = li;
    return 0;
}

/* Step 4: the identifiers that match, clipped by Offset / Maximum Items
 * here unless the store did it; the first becomes the ID Placeholder. */
static int answer_list(kmip_ctx_t *ctx, const locate_query_t *q, bool clipped_in_store,
                       char **ids, size_t n, char **hidden, size_t n_hidden)
{
    size_t skipped = 0, out = 0, located = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_hidden(hidden, n_hidden, ids[i]))
            continue;
        if (!clipped_in_store) {
            bool match = true;
            int64_t served;
            int rc = q->np ? post_filter(ctx, q, ids[i], &match, &served) : 0;
            if (rc)
                return rc;
            if (!match)
                continue;
            located++;
            if (skipped < q->offset) {
                skipped++;
                continue;
            }
            if (q->max_items && out >= q->max_items)
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
    return kmip_ver_at_least(ctx, 1, 3) ? prepend_located(ctx, located) : 0;
}

int kmip_op_locate(kmip_ctx_t *ctx)
{
    locate_query_t q;
    store_query_t sq;
    char **ids = NULL;
    size_t n = 0;
    memset(&q, 0, sizeof(q));
    int rc = parse_query(ctx, &q);
    if (rc)
        return rc;
    char **hidden = NULL;
    size_t n_hidden = 0;
    if ((rc = hidden_ids(ctx, &hidden, &n_hidden)))
        return rc;
    bool clipped_in_store = plan(ctx, &q, &sq, n_hidden == 0);
    if ((rc = run_query(ctx, &q, &sq, &ids, &n)))
        return rc;
    if (n == 0 && q.group_member && q.default_group && q.n_attrs == 1) {
        /* The server's default group never runs dry: a member asked for
         * from it (KMIP 1.1 test case 15.1) is made on the spot, a fresh
         * AES-256 key of the requester's. */
        kmip_obj_t *o = NULL;
        if ((rc = kmip_create_group_key(ctx, KMIP_DEFAULT_GROUP, &o)))
            return rc;
        ids = kms_arena_alloc(ctx->arena, sizeof(*ids));
        if (!ids || !(ids[0] = kms_arena_strdup(ctx->arena, o->id)))
            return KMS_ERR_NOMEM;
        n = 1;
    }
    /* Found nothing: the ID Placeholder is left empty, so that a later
     * item of the batch that relies on it answers Item Not Found instead
     * of working on an object an earlier item named. */
    kmip_set_placeholder(ctx, NULL);
    if (q.default_member)
        return answer_default_member(ctx, &q, ids, n);
    return answer_list(ctx, &q, clipped_in_store, ids, n, hidden, n_hidden);
}
