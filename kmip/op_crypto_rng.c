/*
 * kmip/op_crypto_rng.c: RNG Retrieve and RNG Seed (KMIP 1.3 sections
 * 4.35, 4.36) on crypto/rng.c.
 *
 * Retrieve answers Data Length random bytes (at most KMIP_RNG_MAX per
 * request; an event loop serves up to 64 KiB itself). Seed mixes the
 * client's Data into the DRBG as additional input credited with no
 * entropy and answers how many bytes it used (at most
 * CRYPTO_RNG_SEED_MAX). Neither touches a managed object.
 */
#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define KMIP_RNG_MAX (1u << 20)
#define KMIP_RNG_INLINE_MAX (64u << 10)

int kmip_op_rng_retrieve(kmip_ctx_t *ctx)
{
    const ttlv_item_t *dl = ttlv_find(ctx->payload, KMIP_TAG_DATA_LENGTH);
    if (!dl || dl->type != TTLV_INTEGER || dl->v.i32 <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Data Length missing or not a positive Integer");
    if ((uint32_t)dl->v.i32 > KMIP_RNG_MAX)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Data Length %d above the %u bytes one request may ask for", dl->v.i32,
                         KMIP_RNG_MAX);
    size_t n = (size_t)dl->v.i32;
    if (ctx->inline_only && n > KMIP_RNG_INLINE_MAX) {
        ctx->need_worker = true;
        return KMS_ERR_AGAIN;
    }
    ttlv_item_t *d = ttlv_new_bytes(ctx->arena, ctx->resp_payload, KMIP_TAG_DATA, NULL, 0);
    uint8_t *p = d ? kms_arena_alloc(ctx->arena, n) : NULL;
    if (!p)
        return KMS_ERR_NOMEM;
    kms_error_t err;
    if (crypto_rng_bytes(p, n, &err))
        return kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, "%s", kms_error_msg(&err));
    d->v.bytes.ptr = p;
    d->v.bytes.len = n;
    return 0;
}

int kmip_op_rng_seed(kmip_ctx_t *ctx)
{
    const ttlv_item_t *d = ttlv_find(ctx->payload, KMIP_TAG_DATA);
    if (!d || d->type != TTLV_BYTE_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Data missing");
    size_t used = 0;
    kms_error_t err;
    if (crypto_rng_seed(d->v.bytes.ptr, d->v.bytes.len, &used, &err))
        return kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, "%s", kms_error_msg(&err));
    if (!ttlv_new_int(ctx->arena, ctx->resp_payload, KMIP_TAG_DATA_LENGTH, (int32_t)used))
        return KMS_ERR_NOMEM;
    return 0;
}
