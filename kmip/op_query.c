/*
 * kmip/op_query.c: Query and Discover Versions.
 *
 * Query answers Query Operations (every operation with a handler),
 * Query Objects (the object types this build can hold), Query Server
 * Information (Vendor Identification "kmsd <version>"), Query Application
 * Namespaces and Query Extension List/Map (none: both empty). Other query
 * functions (1.3+ profiles, capabilities...) add nothing to the answer.
 * Discover Versions offers 1.4, 1.3, 1.2, 1.1, 1.0, or the intersection
 * with the client's list in the client's order.
 */
#include <stdio.h>
#include <string.h>

#include "kmip/kmip_int.h"

static bool op_supported(uint32_t op)
{
    const kmip_op_entry_t *e = kmip_op_lookup(op);
    return e && e->fn;
}

int kmip_op_query(kmip_ctx_t *ctx)
{
    bool q_ops = false, q_objs = false, q_info = false;
    for (const ttlv_item_t *f = ttlv_find(ctx->payload, KMIP_TAG_QUERY_FUNCTION); f;
         f = ttlv_find_next(f, KMIP_TAG_QUERY_FUNCTION)) {
        if (f->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Query Function");
        switch (ttlv_u32(f)) {
        case KMIP_QUERY_FUNCTION_QUERY_OPERATIONS: q_ops = true; break;
        case KMIP_QUERY_FUNCTION_QUERY_OBJECTS: q_objs = true; break;
        case KMIP_QUERY_FUNCTION_QUERY_SERVER_INFORMATION: q_info = true; break;
        default: break; /* namespaces, extensions...: we have none */
        }
    }
    kms_arena_t *a = ctx->arena;
    ttlv_item_t *p = ctx->resp_payload;
    if (q_ops) {
        uint32_t ops[64];
        size_t n = kmip_op_supported(ops, KMS_ARRAY_SIZE(ops));
        for (size_t i = 0; i < n; i++)
            if (!ttlv_new_enum(a, p, KMIP_TAG_OPERATION, ops[i]))
                return KMS_ERR_NOMEM;
    }
    if (q_objs) {
        uint32_t types[8];
        size_t n = 0;
        types[n++] = KMIP_OBJECT_TYPE_SYMMETRIC_KEY;
        if (op_supported(KMIP_OPERATION_CREATE_KEY_PAIR) || op_supported(KMIP_OPERATION_REGISTER)) {
            types[n++] = KMIP_OBJECT_TYPE_PUBLIC_KEY;
            types[n++] = KMIP_OBJECT_TYPE_PRIVATE_KEY;
        }
        if (op_supported(KMIP_OPERATION_REGISTER)) {
            types[n++] = KMIP_OBJECT_TYPE_CERTIFICATE;
            types[n++] = KMIP_OBJECT_TYPE_SECRET_DATA;
            types[n++] = KMIP_OBJECT_TYPE_OPAQUE_DATA;
            types[n++] = KMIP_OBJECT_TYPE_TEMPLATE;
        }
        for (size_t i = 0; i < n; i++)
            if (!ttlv_new_enum(a, p, KMIP_TAG_OBJECT_TYPE, types[i]))
                return KMS_ERR_NOMEM;
    }
    if (q_info) {
        char vid[160];
        snprintf(vid, sizeof(vid), "%s %s", ctx->srv->vendor, ctx->srv->version);
        if (!ttlv_new_textz(a, p, KMIP_TAG_VENDOR_IDENTIFICATION, vid))
            return KMS_ERR_NOMEM;
    }
    return 0;
}

static const int versions[][2] = {{1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}};

static int add_version(kmip_ctx_t *ctx, int maj, int min)
{
    ttlv_item_t *pv = ttlv_new_struct(ctx->arena, ctx->resp_payload, KMIP_TAG_PROTOCOL_VERSION);
    if (!pv || !ttlv_new_int(ctx->arena, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, maj) ||
        !ttlv_new_int(ctx->arena, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, min))
        return KMS_ERR_NOMEM;
    return 0;
}

int kmip_op_discover_versions(kmip_ctx_t *ctx)
{
    const ttlv_item_t *first = ttlv_find(ctx->payload, KMIP_TAG_PROTOCOL_VERSION);
    int rc;
    if (!first) {
        for (size_t i = 0; i < KMS_ARRAY_SIZE(versions); i++)
            if ((rc = add_version(ctx, versions[i][0], versions[i][1])))
                return rc;
        return 0;
    }
    for (const ttlv_item_t *pv = first; pv; pv = ttlv_find_next(pv, KMIP_TAG_PROTOCOL_VERSION)) {
        const ttlv_item_t *ma = ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR);
        const ttlv_item_t *mi = ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR);
        if (!ma || !mi || ma->type != TTLV_INTEGER || mi->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Protocol Version");
        for (size_t i = 0; i < KMS_ARRAY_SIZE(versions); i++)
            if (versions[i][0] == ma->v.i32 && versions[i][1] == mi->v.i32 &&
                (rc = add_version(ctx, ma->v.i32, mi->v.i32)))
                return rc;
    }
    return 0;
}
