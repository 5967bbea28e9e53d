/*
 * bench/msg.c: the few KMIP requests kmipbench sends, and response parsing.
 *
 * Requests are standard KMIP 1.x so any server answers them: Create of an
 * AES-256 Symmetric Key (Cryptographic Algorithm, Length and Usage Mask as
 * Template-Attribute attributes, optionally a Name), Activate / Get / Get
 * Attributes / Destroy by Unique Identifier, Locate by Name; and for the crypto
 * workloads Register of an HMAC-SHA256 key and of a PKCS#8 private key,
 * Encrypt, Sign and MAC with full Cryptographic Parameters (PyKMIP's server
 * needs the algorithm named in them). Parsing reads only the
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

static const uint8_t g_data[4096]; /* what Encrypt, Sign and MAC send: zeros */

static ttlv_item_t *attr_int(kms_arena_t *a, ttlv_item_t *ta, const char *name, int32_t v)
{
    ttlv_item_t *at = attr(a, ta, name);
    return at ? ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE, v) : NULL;
}

/* Register of a PKCS#8 private key (ECDSA P-256 or RSA-2048), mask Sign. */
static int build_register(const bench_msgcfg_t *cfg, bool ec, kms_arena_t *a, ttlv_item_t *pl)
{
    ttlv_item_t *ta, *obj, *kb, *kv;
    if (!(ec ? cfg->ec_der : cfg->rsa_der))
        return KMS_ERR_INVAL;
    if (!ttlv_new_enum(a, pl, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_PRIVATE_KEY) ||
        !(ta = ttlv_new_struct(a, pl, KMIP_TAG_TEMPLATE_ATTRIBUTE)) ||
        !attr_int(a, ta, "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN) ||
        !(obj = ttlv_new_struct(a, pl, KMIP_TAG_PRIVATE_KEY)) ||
        !(kb = ttlv_new_struct(a, obj, KMIP_TAG_KEY_BLOCK)) ||
        !ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_PKCS_8) ||
        !(kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE)) ||
        !ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, ec ? cfg->ec_der : cfg->rsa_der,
                        ec ? cfg->ec_len : cfg->rsa_len) ||
        !ttlv_new_enum(a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM,
                       ec ? KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA : KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA) ||
        !ttlv_new_int(a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, ec ? 256 : 2048))
        return KMS_ERR_NOMEM;
    return 0;
}

/* Encrypt / Sign / MAC on key `uid`. */
static int build_crypto(enum bench_step step, const char *uid, kms_arena_t *a, ttlv_item_t *pl)
{
    ttlv_item_t *cp;
    if (!uid || !ttlv_new_textz(a, pl, KMIP_TAG_UNIQUE_IDENTIFIER, uid) ||
        !(cp = ttlv_new_struct(a, pl, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS)))
        return uid ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
    bool ok = true;
    switch (step) {
    case STEP_ENCRYPT:
        /* In the specification's order (PyKMIP's decoder needs it); PyKMIP's
         * server also needs the Tag Length. */
        ok = ttlv_new_enum(a, cp, KMIP_TAG_BLOCK_CIPHER_MODE, KMIP_BLOCK_CIPHER_MODE_GCM) &&
             ttlv_new_enum(a, cp, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES) &&
             ttlv_new_int(a, cp, KMIP_TAG_TAG_LENGTH, 16);
        break;
    case STEP_SIGN_RSA:
        ok = ttlv_new_enum(a, cp, KMIP_TAG_PADDING_METHOD, KMIP_PADDING_METHOD_PKCS1_V1_5) &&
             ttlv_new_enum(a, cp, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) &&
             ttlv_new_enum(a, cp, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA);
        break;
    case STEP_SIGN_EC:
        ok = ttlv_new_enum(a, cp, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) &&
             ttlv_new_enum(a, cp, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA);
        break;
    default: /* STEP_MAC */
        ok = ttlv_new_enum(a, cp, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM,
                           KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256);
    }
    if (!ok || !ttlv_new_bytes(a, pl, KMIP_TAG_DATA, g_data, step == STEP_ENCRYPT ? 4096 : 64))
        return KMS_ERR_NOMEM;
    return 0;
}

enum bench_step bench_op_step(enum bench_op op)
{
    switch (op) {
    case OP_GET: return STEP_GET;
    case OP_LOCATE: return STEP_LOCATE;
    case OP_GETATTRS: return STEP_GETATTRS;
    case OP_ENCRYPT: return STEP_ENCRYPT;
    case OP_SIGN_ECDSA: return STEP_SIGN_EC;
    case OP_SIGN_RSA: return STEP_SIGN_RSA;
    case OP_MAC: return STEP_MAC;
    default: return STEP_CREATE;
    }
}

enum bench_step bench_op_setup_step(enum bench_op op)
{
    switch (op) {
    case OP_SIGN_ECDSA: return STEP_REGISTER_EC;
    case OP_SIGN_RSA: return STEP_REGISTER_RSA;
    case OP_MAC: return STEP_REGISTER_HMAC;
    default: return STEP_CREATE;
    }
}

static int build_payload(const bench_msgcfg_t *cfg, enum bench_step step, const char *uid,
                         const char *name, kms_arena_t *a, ttlv_item_t *pl)
{
    switch (step) {
    case STEP_REGISTER_HMAC: {
        ttlv_item_t *ta, *obj, *kb, *kv;
        if (!cfg->hmac_key)
            return KMS_ERR_INVAL;
        if (!ttlv_new_enum(a, pl, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY) ||
            !(ta = ttlv_new_struct(a, pl, KMIP_TAG_TEMPLATE_ATTRIBUTE)) ||
            !attr_int(a, ta, "Cryptographic Usage Mask",
                      KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_GENERATE | KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_VERIFY) ||
            !(obj = ttlv_new_struct(a, pl, KMIP_TAG_SYMMETRIC_KEY)) ||
            !(kb = ttlv_new_struct(a, obj, KMIP_TAG_KEY_BLOCK)) ||
            !ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW) ||
            !(kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE)) ||
            !ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, cfg->hmac_key, cfg->hmac_len) ||
            !ttlv_new_enum(a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256) ||
            !ttlv_new_int(a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, (int32_t)cfg->hmac_len * 8))
            return KMS_ERR_NOMEM;
        return 0;
    }
    case STEP_REGISTER_EC:
    case STEP_REGISTER_RSA:
        return build_register(cfg, step == STEP_REGISTER_EC, a, pl);
    case STEP_ENCRYPT:
    case STEP_SIGN_EC:
    case STEP_SIGN_RSA:
    case STEP_MAC:
        return build_crypto(step, uid, a, pl);
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
    case STEP_DESTROY:
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
    [STEP_DESTROY] = KMIP_OPERATION_DESTROY,
    [STEP_REGISTER_HMAC] = KMIP_OPERATION_REGISTER,
    [STEP_REGISTER_EC] = KMIP_OPERATION_REGISTER,
    [STEP_REGISTER_RSA] = KMIP_OPERATION_REGISTER,
    [STEP_ENCRYPT] = KMIP_OPERATION_ENCRYPT,
    [STEP_SIGN_EC] = KMIP_OPERATION_SIGN,
    [STEP_SIGN_RSA] = KMIP_OPERATION_SIGN,
    [STEP_MAC] = KMIP_OPERATION_MAC,
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
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR,
                      step >= STEP_REGISTER_HMAC && cfg->major == 1 && cfg->minor < 2 ? 2 : cfg->minor) ||
        !ttlv_new_int(a, hdr, KMIP_TAG_BATCH_COUNT, 1) ||
        !(bi = ttlv_new_struct(a, msg, KMIP_TAG_BATCH_ITEM)) ||
        !ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, step_op[step]) ||
        !(pl = ttlv_new_struct(a, bi, KMIP_TAG_REQUEST_PAYLOAD)))
        return KMS_ERR_NOMEM;
    if ((rc = build_payload(cfg, step, uid, name, a, pl)) < 0)
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
