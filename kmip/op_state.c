/*
 * kmip/op_state.c: life-cycle operations: Activate, Revoke, Destroy,
 * Archive, Recover, and the usage operations Check, Obtain Lease and Get
 * Usage Allocation.
 *
 * The state machine is the KMIP 1.1 one (section 3.22):
 *   Pre-Active -> Active (Activate, or Activation Date reached)
 *   Pre-Active / Active -> Compromised (Revoke, compromise)
 *   Active -> Deactivated (Revoke, other reason; Deactivation Date reached)
 *   Pre-Active / Deactivated -> Destroyed (Destroy)
 *   Compromised -> Destroyed Compromised (Destroy)
 *   Destroyed -> Destroyed Compromised (Revoke, compromise)
 * Destroy of an Active object is Permission Denied (revoke it first);
 * Destroy wipes the key material and keeps the metadata. Every write uses
 * kmip_obj_update (optimistic concurrency with retries).
 */
#include <string.h>

#include "kmip/kmip_int.h"


static bool destroyed(uint32_t st)
{
    return st == KMIP_STATE_DESTROYED || st == KMIP_STATE_DESTROYED_COMPROMISED;
}

static int answer_uid(kmip_ctx_t *ctx, const kmip_obj_t *o)
{
    return ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id)
               ? 0
               : KMS_ERR_NOMEM;
}

/* Run cb on the object named by the request and answer its id. */
static int simple_update(kmip_ctx_t *ctx, kmip_mutate_cb cb, void *arg)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_update(ctx, id, cb, arg, &o);
    if (rc)
        return rc;
    return answer_uid(ctx, o);
}

/* ------------------------------------------------------------ Activate */
static int activate_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    (void)arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (o->object_type == KMIP_OBJECT_TYPE_TEMPLATE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION, "a Template has no state");
    if (o->state != KMIP_STATE_PRE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "object is not in the Pre-Active state");
    int rc = kmip_obj_set_state(ctx, o, KMIP_STATE_ACTIVE);
    if (rc == 0)
        rc = kmip_attr_set_date(ctx, o, "Activation Date", ctx->now);
    return rc;
}

int kmip_op_activate(kmip_ctx_t *ctx)
{
    return simple_update(ctx, activate_cb, NULL);
}

/* -------------------------------------------------------------- Revoke */
typedef struct revoke_args {
    const ttlv_item_t *reason;   /* Revocation Reason structure */
    uint32_t code;
    bool has_cod;
    int64_t cod;                 /* Compromise Occurrence Date */
} revoke_args_t;

static int revoke_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    revoke_args_t *ra = arg;
    int rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (o->object_type == KMIP_OBJECT_TYPE_TEMPLATE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION, "a Template has no state");
    bool compromise = ra->code == KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE ||
                      ra->code == KMIP_REVOCATION_REASON_CODE_CA_COMPROMISE;
    if (compromise) {
        uint32_t to;
        switch (o->state) {
        case KMIP_STATE_PRE_ACTIVE:
        case KMIP_STATE_ACTIVE:
        case KMIP_STATE_DEACTIVATED:
        case KMIP_STATE_COMPROMISED: to = KMIP_STATE_COMPROMISED; break;
        default: to = KMIP_STATE_DESTROYED_COMPROMISED; break;
        }
        if ((rc = kmip_obj_set_state(ctx, o, to)) ||
            (rc = kmip_attr_set_date(ctx, o, "Compromise Date", ctx->now)) ||
            (rc = kmip_attr_set_date(ctx, o, "Compromise Occurrence Date",
                                     ra->has_cod ? ra->cod : ctx->now)))
            return rc;
    } else {
        if (destroyed(o->state))
            return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
        if (o->state != KMIP_STATE_ACTIVE)
            return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                             "only an Active object can be revoked for this reason");
        if ((rc = kmip_obj_set_state(ctx, o, KMIP_STATE_DEACTIVATED)) ||
            (rc = kmip_attr_set_date(ctx, o, "Deactivation Date", ctx->now)))
            return rc;
    }
    ttlv_item_t *rr = ttlv_clone(ctx->arena, ra->reason);
    if (!rr)
        return KMS_ERR_NOMEM;
    return kmip_attr_set(ctx, o, "Revocation Reason", 0, rr);
}

int kmip_op_revoke(kmip_ctx_t *ctx)
{
    revoke_args_t ra = {0};
    ra.reason = ttlv_find(ctx->payload, KMIP_TAG_REVOCATION_REASON);
    const ttlv_item_t *code = ra.reason ? ttlv_find(ra.reason, KMIP_TAG_REVOCATION_REASON_CODE) : NULL;
    if (!ra.reason || ra.reason->type != TTLV_STRUCTURE || !code || code->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Revocation Reason missing");
    ra.code = ttlv_u32(code);
    if (ra.code < KMIP_REVOCATION_REASON_CODE_UNSPECIFIED || ra.code > 8)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "unknown Revocation Reason Code");
    const ttlv_item_t *cod = ttlv_find(ctx->payload, KMIP_TAG_COMPROMISE_OCCURRENCE_DATE);
    if (cod) {
        if (cod->type != TTLV_DATE_TIME)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Compromise Occurrence Date");
        ra.has_cod = true;
        ra.cod = cod->v.i64;
    }
    return simple_update(ctx, revoke_cb, &ra);
}

/* ------------------------------------------------------------- Destroy */
static int destroy_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    (void)arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (destroyed(o->state))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    if (o->state == KMIP_STATE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "an Active object cannot be destroyed; revoke it first");
    int rc = 0;
    if (o->object_type != KMIP_OBJECT_TYPE_TEMPLATE)
        rc = kmip_obj_set_state(ctx, o, o->state == KMIP_STATE_COMPROMISED
                                            ? KMIP_STATE_DESTROYED_COMPROMISED
                                            : KMIP_STATE_DESTROYED);
    if (rc == 0)
        rc = kmip_attr_set_date(ctx, o, "Destroy Date", ctx->now);
    if (rc == 0) {
        kmip_attr_remove_all(o, "Fresh");
        kmip_obj_drop_material(o);
    }
    return rc;
}

int kmip_op_destroy(kmip_ctx_t *ctx)
{
    return simple_update(ctx, destroy_cb, NULL);
}

/* ---------------------------------------------------- Archive, Recover */
static int archive_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)arg;
    if (o->archived) {
        *unchanged_out = true; /* already archived: nothing to do */
        return 0;
    }
    o->archived = true;
    return kmip_attr_set_date(ctx, o, "Archive Date", ctx->now);
}

static int recover_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)ctx;
    (void)arg;
    if (!o->archived) {
        *unchanged_out = true;
        return 0;
    }
    o->archived = false;
    o->dirty = true;
    return 0;
}

int kmip_op_archive(kmip_ctx_t *ctx)
{
    return simple_update(ctx, archive_cb, NULL);
}

int kmip_op_recover(kmip_ctx_t *ctx)
{
    return simple_update(ctx, recover_cb, NULL);
}

/* -------------------------------------------------- usage: Check & co */
/* Remaining count of the Usage Limits attribute; false when none. */
static bool usage_remaining(const kmip_obj_t *o, int64_t *count_out)
{
    kmip_attr_t *a = kmip_attr_get(o, "Usage Limits", 0);
    const ttlv_item_t *c = a ? ttlv_find(a->value, KMIP_TAG_USAGE_LIMITS_COUNT) : NULL;
    if (!c || c->type != TTLV_LONG_INTEGER)
        return false;
    *count_out = c->v.i64;
    return true;
}

static bool protect_stopped(kmip_ctx_t *ctx, const kmip_obj_t *o)
{
    int64_t t;
    return kmip_attr_get_date(o, "Protect Stop Date", &t) == 0 && t <= ctx->now;
}

int kmip_op_check(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (destroyed(o->state))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    const ttlv_item_t *ulc = ttlv_find(ctx->payload, KMIP_TAG_USAGE_LIMITS_COUNT);
    const ttlv_item_t *cum = ttlv_find(ctx->payload, KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK);
    const ttlv_item_t *lt = ttlv_find(ctx->payload, KMIP_TAG_LEASE_TIME);
    if (ulc) {
        int64_t left;
        if (ulc->type != TTLV_LONG_INTEGER || ulc->v.i64 < 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Usage Limits Count");
        if (usage_remaining(o, &left) && ulc->v.i64 > left)
            return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                             "usage limit would be exceeded");
    }
    if (cum) {
        int32_t mask = 0;
        if (cum->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Cryptographic Usage Mask");
        (void)kmip_attr_get_int(o, "Cryptographic Usage Mask", &mask);
        if (((uint32_t)cum->v.i32 & ~(uint32_t)mask) != 0)
            return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                             "the object's usage mask does not allow this use");
    }
    if (lt) {
        if (lt->type != TTLV_INTERVAL)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Lease Time");
        if (o->state != KMIP_STATE_ACTIVE)
            return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED, "object is not Active");
    }
    if ((rc = answer_uid(ctx, o)))
        return rc;
    return 0;
}

int kmip_op_obtain_lease(kmip_ctx_t *ctx)
{
    const char *id = kmip_req_uid(ctx);
    if (!id)
        return KMS_ERR_INVAL;
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_load(ctx, id, &o);
    if (rc)
        return rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (destroyed(o->state))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    if (o->state != KMIP_STATE_ACTIVE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "object is not Active, no lease given");
    uint32_t lease = KMIP_DEFAULT_LEASE_SECONDS;
    kmip_attr_t *la = kmip_attr_get(o, "Lease Time", 0);
    if (la && la->value->type == TTLV_INTERVAL)
        lease = ttlv_u32(la->value);
    int64_t lcd = ctx->now;
    (void)kmip_attr_get_date(o, "Last Change Date", &lcd);
    if ((rc = answer_uid(ctx, o)))
        return rc;
    if (!ttlv_new_interval(ctx->arena, ctx->resp_payload, KMIP_TAG_LEASE_TIME, lease) ||
        !ttlv_new_datetime(ctx->arena, ctx->resp_payload, KMIP_TAG_LAST_CHANGE_DATE, lcd))
        return KMS_ERR_NOMEM;
    return 0;
}

static int allocate_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    int64_t want = *(int64_t *)arg;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "object is archived");
    if (destroyed(o->state))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the object has been destroyed");
    if (o->state != KMIP_STATE_ACTIVE || protect_stopped(ctx, o))
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "object may not be used for protection now");
    kmip_attr_t *a = kmip_attr_get(o, "Usage Limits", 0);
    ttlv_item_t *c = a ? ttlv_find(a->value, KMIP_TAG_USAGE_LIMITS_COUNT) : NULL;
    if (!c || c->type != TTLV_LONG_INTEGER)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the object has no Usage Limits");
    if (want > c->v.i64)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "Unable to allocate requested amount");
    c->v.i64 -= want;
    o->dirty = true;
    return 0;
}

int kmip_op_get_usage_allocation(kmip_ctx_t *ctx)
{
    const ttlv_item_t *ulc = ttlv_find(ctx->payload, KMIP_TAG_USAGE_LIMITS_COUNT);
    if (!ulc || ulc->type != TTLV_LONG_INTEGER || ulc->v.i64 <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Usage Limits Count missing");
    int64_t want = ulc->v.i64;
    return simple_update(ctx, allocate_cb, &want);
}
