/*
 * bench/msg.c: the few KMIP requests kmipbench sends, and response parsing.
 *
 * Requests are standard KMIP 1.x so any server answers them: Create of an
 * AES-256 Symmetric Key (Cryptographic Algorithm, Length and Usage Mask as
 * Template-Attribute attributes, optionally a Name), Activate / Get / Get
 * Attributes by Unique Identifier, Locate by Name. Parsing reads only the
 * first batch item's Result Status, Result Reason and Unique Identifier;
 * it does not validate the rest of the response.
 */
#include <string.h>

#include "bench/bench.h"

static ttlv_item_t *attr(kms_arena_t *a, ttlv_item_t *ta, const char *name)
{
    ttlv_item_t *at = ttlv_new_struct(a, ta, KMIP_TAG_ATTRIBUTE);
    if (!at || !ttlv_new_textz(a, at, KMIP_TAG_ATTRIBUTE_NAME, name))
        return NULL;
    return at;
}

static int add_name(kms_arena_t *a, ttlv_item_t *parent, const char *name)
{
    ttlv_item_t *at = attr(a, parent, "Name");
    ttlv_item_t *v = at ? ttlv_new_struct(a, at, KMIP_TAG_ATTRIBUTE_VALUE) : NULL;
    if (!v || !ttlv_new_textz(a, v, KMIP_TAG_NAME_VALUE, name) ||
        !ttlv_new_enum(a, v, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING))
        return KMS_ERR_NOMEM;
    return 0;
}

static int build_payload(enum bench_step step, const char *uid, const char *name,
                         kms_arena_t *a, ttlv_item_t *pl)
{
    switch (step) {
    case STEP_CREATE: {
        ttlv_item_t *ta, *at;
        if (!ttlv_new_enum(a, pl, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY))
            return KMS_ERR_NOMEM;
        if (!(ta = ttlv_new_struct(a, pl, KMIP_TAG_TEMPLATE_ATTRIBUTE)))
            return KMS_ERR_NOMEM;
        if (!(at = attr(a, ta, "Cryptographic Algorithm")) ||
            !ttlv_new_enum(a, at, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES))
            return KMS_ERR_NOMEM;
        if (!(at = attr(a, ta, "Cryptographic Length")) ||
            !ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE, 256))
            return KMS_ERR_NOMEM;
        if (!(at = attr(a, ta, "Cryptographic Usage Mask")) ||
            !ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE,
                          KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT))
            return KMS_ERR_NOMEM;
        return name ? add_name(a, ta, name) : 0;
    }
    case STEP_ACTIVATE:
    case STEP_GET:
    case STEP_GETATTRS:
        if (!uid || !ttlv_new_textz(a, pl, KMIP_TAG_UNIQUE_IDENTIFIER, uid))
            return uid ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
        return 0;
    case STEP_LOCATE:
        return name ? add_name(a, pl, name) : KMS_ERR_INVAL;
    }
    return KMS_ERR_INVAL;
}

static const uint32_t step_op[] = {
    [STEP_CREATE] = KMIP_OPERATION_CREATE,
    [STEP_ACTIVATE] = KMIP_OPERATION_ACTIVATE,
    [STEP_GET] = KMIP_OPERATION_GET,
    [STEP_GETATTRS] = KMIP_OPERATION_GET_ATTRIBUTES,
    [STEP_LOCATE] = KMIP_OPERATION_LOCATE,
};

int bench_build(const bench_msgcfg_t *cfg, enum bench_step step, const char *uid,
                const char *name, kms_arena_t *a, kms_buf_t *out)
{
    ttlv_item_t *msg, *hdr, *pv, *bi, *pl;
    int rc;

    kms_arena_reset(a);
    kms_buf_reset(out);
    if (!(msg = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE)) ||
        !(hdr = ttlv_new_struct(a, msg, KMIP_TAG_REQUEST_HEADER)) ||
        !(pv = ttlv_new_struct(a, hdr, KMIP_TAG_PROTOCOL_VERSION)) ||
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, cfg->major) ||
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, cfg->minor) ||
        !ttlv_new_int(a, hdr, KMIP_TAG_BATCH_COUNT, 1) ||
        !(bi = ttlv_new_struct(a, msg, KMIP_TAG_BATCH_ITEM)) ||
        !ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, step_op[step]) ||
        !(pl = ttlv_new_struct(a, bi, KMIP_TAG_REQUEST_PAYLOAD)))
        return KMS_ERR_NOMEM;
    if ((rc = build_payload(step, uid, name, a, pl)) < 0)
        return rc;
    return ttlv_encode(msg, out);
}

int bench_parse(const uint8_t *p, size_t n, kms_arena_t *a, bench_result_t *res)
{
    ttlv_item_t *root = NULL, *bi, *it, *pl;
    kms_error_t err;

    memset(res, 0, sizeof(*res));
    kms_arena_reset(a);
    if (ttlv_decode(p, n, NULL, a, &root, &err) < 0 || root->tag != KMIP_TAG_RESPONSE_MESSAGE ||
        !(bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM)) ||
        !(it = ttlv_find(bi, KMIP_TAG_RESULT_STATUS)) || it->type != TTLV_ENUMERATION) {
        res->status = -1;
        return KMS_ERR_PROTO;
    }
    res->status = (int)ttlv_u32(it);
    if ((it = ttlv_find(bi, KMIP_TAG_RESULT_REASON)) && it->type == TTLV_ENUMERATION)
        res->reason = (int)ttlv_u32(it);
    if ((pl = ttlv_find(bi, KMIP_TAG_RESPONSE_PAYLOAD)) &&
        (it = ttlv_find(pl, KMIP_TAG_UNIQUE_IDENTIFIER)) && it->type == TTLV_TEXT_STRING &&
        it->v.bytes.len < sizeof(res->uid))
        memcpy(res->uid, it->v.bytes.ptr, it->v.bytes.len);
    return 0;
}

const char *bench_err_name(int cls)
{
    switch (cls) {
    case ERR_CONNECT: return "connect";
    case ERR_TLS: return "tls_handshake";
    case ERR_CLOSED: return "connection_closed";
    case ERR_MALFORMED: return "malformed_response";
    case ERR_TIMEOUT: return "no_response_5s_after_end";
    case 0: return "failed_without_reason";
    default: break;
    }
    const char *n = (cls > 0 && cls < BENCH_REASONS)
                        ? ttlv_enum_name(KMIP_TAG_RESULT_REASON, (uint32_t)cls) : NULL;
    return n ? n : "other_reason";
}
