/*
 * kmip/ctx.c: small helpers on the per-item request context: recording a
 * failure (Result Reason + message, in ctx->err), the ID Placeholder, and
 * secrets that live until the item ends.
 *
 * It does not build responses (message.c) or touch objects (object.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip_int.h"

int kmip_fail(kmip_ctx_t *ctx, uint32_t reason, const char *fmt, ...)
{
    char msg[sizeof(ctx->err.msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kms_error_set_reason(&ctx->err, KMS_ERR_INVAL, reason, "%s", msg);
}

void kmip_fail_clear(kmip_ctx_t *ctx)
{
    kms_error_clear(&ctx->err);
}

int kmip_ctx_budget(kmip_ctx_t *ctx, const char *what)
{
    if (ctx->cancelled && atomic_load_explicit(ctx->cancelled, memory_order_relaxed))
        return kms_error_set_reason(&ctx->err, KMS_ERR_TIMEOUT, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                    "%s cancelled: the client closed the connection", what);
    if (ctx->deadline_ns && kms_mono_ns() >= ctx->deadline_ns)
        return kms_error_set_reason(&ctx->err, KMS_ERR_TIMEOUT, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                    "%s stopped after %u ms: the work budget of a request "
                                    "(limits.request_time) is spent; narrow the request",
                                    what, ctx->srv->cfg.request_time_ms);
    return 0;
}

uint32_t kmip_reason_of(int rc)
{
    switch (rc) {
    case KMS_ERR_NOTFOUND: return KMIP_RESULT_REASON_ITEM_NOT_FOUND;
    case KMS_ERR_PERM: return KMIP_RESULT_REASON_PERMISSION_DENIED;
    case KMS_ERR_NOTSUP: return KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED;
    case KMS_ERR_CRYPTO: return KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE;
    case KMS_ERR_LIMIT: return KMIP_RESULT_REASON_RESPONSE_TOO_LARGE;
    case KMS_ERR_INVAL:
    case KMS_ERR_PROTO: return KMIP_RESULT_REASON_INVALID_FIELD;
    default: return KMIP_RESULT_REASON_GENERAL_FAILURE;
    }
}

kms_secret_t *kmip_ctx_own_secret(kmip_ctx_t *ctx, kms_secret_t *s)
{
    if (!s)
        return NULL;
    if (!ctx->owned) {
        ctx->owned = ctx->owned_inline;
        ctx->cap_owned = KMIP_MAX_OWNED_SECRETS;
    }
    if (ctx->n_owned == ctx->cap_owned) {
        size_t cap = ctx->cap_owned * 2;
        kms_secret_t **n = malloc(cap * sizeof(*n));
        if (!n) {
            /* Cannot track it: keep it alive rather than free memory that
             * is still in use (it is mlock'ed; the process is short of
             * memory anyway). */
            kms_log(KMS_LOG_ERROR, "kmip", "out of memory tracking a secret");
            return s;
        }
        memcpy(n, ctx->owned, ctx->n_owned * sizeof(*n));
        if (ctx->owned != ctx->owned_inline)
            free(ctx->owned);
        ctx->owned = n;
        ctx->cap_owned = cap;
    }
    ctx->owned[ctx->n_owned++] = s;
    return s;
}

const char *kmip_req_uid(kmip_ctx_t *ctx)
{
    const ttlv_item_t *u = ctx->payload ? ttlv_find(ctx->payload, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
    if (u) {
        if (u->type != TTLV_TEXT_STRING) {
            kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier is not a Text String");
            return NULL;
        }
        return ttlv_text(u);
    }
    if (ctx->id_placeholder[0])
        return ctx->id_placeholder;
    /* Invalid Field in both cases, as KMIP 1.1 test case 15.2 answers the
     * Get after a Locate that found nothing ("Unique Identifier is not
     * defined"). */
    if (ctx->placeholder_set)
        kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                  "Unique Identifier is not defined: no Unique Identifier, and the ID "
                  "Placeholder is empty (the Locate before found nothing)");
    else
        kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                  "Unique Identifier is not defined: no Unique Identifier and no ID Placeholder "
                  "from an earlier batch item");
    return NULL;
}

void kmip_set_placeholder(kmip_ctx_t *ctx, const char *id)
{
    snprintf(ctx->id_placeholder, sizeof(ctx->id_placeholder), "%s", id ? id : "");
    ctx->placeholder_set = true;
    if (id && !ctx->first_object_id[0])
        snprintf(ctx->first_object_id, sizeof(ctx->first_object_id), "%s", id);
}

void kmip_set_created(kmip_ctx_t *ctx, const char *id)
{
    kmip_set_placeholder(ctx, id);
    if (id && !ctx->first_created_id[0])
        kms_strlcpy(ctx->first_created_id, id, sizeof(ctx->first_created_id));
}

int kmip_answer_id(kmip_ctx_t *ctx, const char *id)
{
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, id))
        return KMS_ERR_NOMEM;
    kmip_set_created(ctx, id);
    return 0;
}
