/*
 * kmip/op_create.c: the Create operation (Symmetric Key only).
 *
 * Applies the Template-Attribute (and templates referenced by Name),
 * validates algorithm, length (what the algorithm defines, and the
 * operator's key policy) and usage mask, generates the key with the
 * DRBG through crypto_sym_generate (RAND_priv_bytes), sets the
 * server attributes (Digest, dates, State: Active when the Activation Date
 * is now or in the past) and stores the object. Create of other object
 * types is Invalid Field, as the specification asks (Create Key Pair and
 * Register make the others). kmip_create_group_key makes the fresh
 * AES-256 keys of the server's default object group that Locate hands out
 * (op_locate.c).
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

static uint32_t default_mask(uint32_t alg)
{
    switch (alg) {
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512:
        return KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_GENERATE | KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_VERIFY;
    default:
        return KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT;
    }
}

/* The key of the new symmetric key object `o` (its attributes applied):
 * algorithm and length checked, the operator's key policy, the default
 * usage mask, the material and its Digest; then stored. */
static int generate_and_save(kmip_ctx_t *ctx, kmip_obj_t *o)
{
    int rc;
    uint32_t alg = 0;
    int32_t bits = 0;
    if (kmip_attr_get_enum(o, "Cryptographic Algorithm", &alg))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Cryptographic Algorithm missing");
    if (kmip_attr_get_int(o, "Cryptographic Length", &bits))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Cryptographic Length missing");
    kms_error_t e = {0};
    kms_secret_t *key = NULL;
    size_t bytes = 0;
    if ((rc = crypto_sym_check(alg, bits, &bytes, &e))) {
        if (e.reason)
            return kmip_fail(ctx, e.reason, "%s", e.msg);
        return rc;
    }
    /* Effective bits: Triple DES 192 is 168, DES 64 is 56. */
    if ((rc = kmip_key_policy_check(ctx, alg, crypto_sym_bits(alg, bytes), 0)))
        return rc;
    if ((rc = crypto_sym_generate(alg, bits, &key, &e))) {
        if (e.reason)
            return kmip_fail(ctx, e.reason, "%s", e.msg);
        return rc;
    }
    uint32_t mask;
    int32_t m32;
    if (kmip_attr_get_int(o, "Cryptographic Usage Mask", &m32) == 0) {
        mask = (uint32_t)m32;
    } else {
        mask = default_mask(alg);
        if ((rc = kmip_attr_set_int(ctx, o, "Cryptographic Usage Mask", (int32_t)mask))) {
            kms_secret_free(key);
            return rc;
        }
    }
    crypto_material_t desc = {
        .object_type = KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
        .stored_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
        .registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
        .alg = alg,
        .bits = bits,
    };
    if ((rc = kmip_obj_set_material(ctx, o, key, &desc)))
        return rc;
    kmip_obj_eval_dates(ctx, o);
    if ((rc = kmip_obj_save(ctx, o)))
        return rc;
    return 0;
}

int kmip_op_create(kmip_ctx_t *ctx)
{
    const ttlv_item_t *ot = ttlv_find(ctx->payload, KMIP_TAG_OBJECT_TYPE);
    if (!ot || ot->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Object Type missing");
    if (ttlv_u32(ot) != KMIP_OBJECT_TYPE_SYMMETRIC_KEY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Create makes Symmetric Keys only (use Create Key Pair or Register)");
    const ttlv_item_t *ta = ttlv_find(ctx->payload, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, &o);
    if (rc)
        return rc;
    if ((rc = kmip_attrs_apply_template(ctx, o, ta)))
        return rc;

    if ((rc = generate_and_save(ctx, o)))
        return rc;
    kmip_set_created(ctx, o->id);
    if (!ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_OBJECT_TYPE, o->object_type) ||
        !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
        return KMS_ERR_NOMEM;
    return 0;
}

int kmip_create_group_key(kmip_ctx_t *ctx, const char *group, kmip_obj_t **out)
{
    kmip_obj_t *o = NULL;
    int rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, &o);
    if (rc ||
        (rc = kmip_attr_set_enum(ctx, o, "Cryptographic Algorithm",
                                 KMIP_CRYPTOGRAPHIC_ALGORITHM_AES)) ||
        (rc = kmip_attr_set_int(ctx, o, "Cryptographic Length", 256)) ||
        (rc = kmip_attr_add(ctx, o, "Object Group",
                            ttlv_new_textz(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE, group), NULL)) ||
        (rc = generate_and_save(ctx, o)))
        return rc;
    *out = o;
    return 0;
}
