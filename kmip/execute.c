/*
 * kmip/execute.c: running a decoded request's Batch Items
 * (kmip_request_execute), settling the outcome of a deferred commit
 * (kmip_request_commit_done), and what the caller learns of its writes
 * afterwards (kmip_request_last_seq, kmip_request_unconfirmed).
 *
 * Each item runs through the dispatch table with a fresh handler context;
 * Batch Error Continuation decides what a failure does to the rest: Stop
 * (default) answers the items up to the failed one and no more; Continue
 * runs every item; Undo reverts the writes of the earlier items
 * (compensating writes, kmip_undo_run) and marks them Operation Undone.
 *
 * It does not decode (request.c), encode (message.c) or know any
 * operation's semantics (op_*.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip_int.h"

void kmip_item_fail(kmip_item_t *it, uint32_t reason, const char *msg)
{
    it->status = KMIP_RESULT_STATUS_OPERATION_FAILED;
    it->reason = reason;
    it->msg = msg;
    it->resp_payload = NULL;
}

void kmip_ctx_release(kmip_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n_owned; i++)
        kms_secret_free(ctx->owned[i]);
    ctx->n_owned = 0;
    if (ctx->owned && ctx->owned != ctx->owned_inline)
        free(ctx->owned);
    ctx->owned = NULL;
    ctx->cap_owned = 0;
}

void kmip_item_run(kmip_ctx_t *ctx, kmip_item_t *it)
{
    ctx->operation = it->operation;
    ctx->payload = it->payload;
    ctx->resp_payload = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
    kms_error_clear(&ctx->err);
    if (!ctx->resp_payload) {
        kmip_item_fail(it, KMIP_RESULT_REASON_GENERAL_FAILURE, "out of memory");
        return;
    }
    ctx->async_corr = NULL;
    ctx->answer_op = 0;
    int rc = it->op->fn(ctx);
    kmip_ctx_release(ctx);
    it->answer_op = ctx->answer_op;
    if (rc == 0 && ctx->async_corr) {
        it->status = KMIP_RESULT_STATUS_OPERATION_PENDING;
        it->async_corr = ctx->async_corr;
        it->async_corr_len = ctx->async_corr_len;
        ctx->async_corr = NULL;
        return;
    }
    if (rc == 0) {
        it->resp_payload = ctx->resp_payload;
        return;
    }
    bool recorded = ctx->err.code != 0;
    if ((rc == KMS_ERR_NOMEM || ctx->err.code == KMS_ERR_NOMEM) &&
        kms_arena_used(ctx->arena) >= ctx->srv->cfg.max_response) {
        /* The request's memory holds its answers: what ran out is room
         * for a response larger than any it may send. */
        kmip_item_fail(it, KMIP_RESULT_REASON_RESPONSE_TOO_LARGE,
                       "the response would exceed the Maximum Response Size");
        return;
    }
    kmip_item_fail(it, recorded && ctx->err.reason ? ctx->err.reason : kmip_reason_of(rc),
                   recorded ? kms_arena_strdup(ctx->arena, kms_error_msg(&ctx->err))
                            : kms_strerror(rc));
    /* KMS_ERR_AGAIN is no failure: an item on the event loop needs a
     * worker, and the whole request runs again there. */
    if (!recorded && rc != KMS_ERR_AGAIN)
        kms_log(KMS_LOG_WARN, "kmip", "operation 0x%x failed: %s", it->operation, kms_strerror(rc));
}

/* Item `i` failed: apply the Batch Error Continuation Option. Under Undo
 * the earlier successes become Operation Undone (or failed, when undoing
 * them failed: undo_rc). True when the batch ends here. */
static bool continuation(kmip_request_t *r, size_t i, int undo_rc)
{
    if (!r->fail_reason)
        r->fail_reason = r->items[i].reason;
    if (r->bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE)
        return false;
    if (r->bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO) {
        for (size_t j = 0; j < i; j++) {
            kmip_item_t *e = &r->items[j];
            if (e->status != KMIP_RESULT_STATUS_SUCCESS)
                continue;
            kmip_item_fail(e, KMIP_RESULT_REASON_GENERAL_FAILURE, "undo failed");
            if (undo_rc == 0)
                e->status = KMIP_RESULT_STATUS_OPERATION_UNDONE;
        }
    }
    r->n_out = i + 1;
    return true;
}

/* Every item refused: the identity was not established. A credential or
 * certificate that did not authenticate (or none at all) is Authentication
 * Not Successful, with one text whatever was wrong, so that the answer
 * never tells an unknown name from a wrong password; a clients table that
 * cannot be read is General Failure. */
static void deny_all(kmip_request_t *r)
{
    bool unavail = r->auth_rc == KMS_ERR_UNAVAIL;
    uint32_t reason = unavail ? KMIP_RESULT_REASON_GENERAL_FAILURE
                              : KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL;
    const char *msg = unavail ? KMIP_ID_UNAVAIL_MSG : KMIP_DENIED_MSG;
    for (size_t i = 0; i < r->n_items; i++)
        kmip_item_fail(&r->items[i], reason, msg);
    r->n_out = r->n_items;
    r->fail_reason = reason;
}

/* Reset what a previous execution left. */
static void reset_answers(kmip_request_t *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        kmip_item_t *it = &r->items[i];
        it->status = KMIP_RESULT_STATUS_SUCCESS;
        it->reason = 0;
        it->msg = NULL;
        it->resp_payload = NULL;
        it->wrote = false;
        it->async_corr = NULL;
        it->async_corr_len = 0;
        it->answer_op = 0;
    }
    r->n_out = 0;
    r->fail_reason = 0;
    r->first_object_id[0] = '\0';
    store_write_free(r->deferred);
    r->deferred = NULL;
    r->last_seq = 0;
    r->deferred_optional = false;
}

/* The batch loop. KMS_ERR_AGAIN: an inline run needs a worker. */
static int run_batch(kmip_request_t *r, kmip_ctx_t *ctx)
{
    for (size_t i = 0; i < r->n_items; i++) {
        kmip_item_t *it = &r->items[i];
        r->n_out = i + 1;
        bool had_write = ctx->deferred != NULL;
        size_t commits = ctx->n_commits;
        if (i > 0 && kmip_ctx_budget(ctx, "the batch") != 0) {
            /* Cancelled or out of time: this item and the rest are not
             * run; the items before it keep their answers. */
            const char *why = kms_arena_strdup(ctx->arena, ctx->err.msg);
            for (size_t j = i; j < r->n_items; j++)
                kmip_item_fail(&r->items[j], KMIP_RESULT_REASON_GENERAL_FAILURE,
                               why ? why : "request stopped");
            r->n_out = r->n_items;
            if (!r->fail_reason)
                r->fail_reason = KMIP_RESULT_REASON_GENERAL_FAILURE;
            break;
        }
        if (!it->op)
            kmip_item_fail(it, it->refuse_reason, it->refuse_msg);
        else if (!ctx->reader)
            kmip_item_fail(it, KMIP_RESULT_REASON_GENERAL_FAILURE, "store unavailable");
        else if (!(it->async && kmip_async_start(ctx, it)))
            kmip_item_run(ctx, it);
        if (ctx->need_worker)
            return KMS_ERR_AGAIN;
        if (!had_write && ctx->deferred)
            r->deferred_item = i;
        it->wrote = ctx->n_commits > commits || (!had_write && ctx->deferred);
        if (it->status != KMIP_RESULT_STATUS_OPERATION_FAILED)
            continue;
        int urc = 0;
        if (r->bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO) {
            urc = kmip_undo_run(ctx);
            if (ctx->need_worker)
                return KMS_ERR_AGAIN;
        }
        if (continuation(r, i, urc))
            break;
    }
    return 0;
}

int kmip_request_execute(kmip_request_t *r, enum kmip_run where)
{
    if (!r || (!r->authenticated && !r->invalid))
        return KMS_ERR_INVAL;
    reset_answers(r);
    if (r->invalid)
        return 0; /* answered Invalid Message as a whole */
    if (r->denied) {
        deny_all(r);
        return 0;
    }
    kmip_server_t *s = r->srv;
    r->now = kmip_now(s);
    kmip_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.srv = s;
    ctx.arena = r->arena;
    ctx.ident = &r->ident;
    ctx.tenant_filter = r->ident.role == KMIP_ROLE_ADMIN ? NULL : r->ident.tenant;
    ctx.ver_major = r->ver_major;
    ctx.ver_minor = r->ver_minor;
    ctx.now = r->now;
    ctx.max_response = s->cfg.max_response;
    if (r->max_resp > 0 && (size_t)r->max_resp < ctx.max_response)
        ctx.max_response = (size_t)r->max_resp;
    ctx.undo_enabled = r->bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO;
    ctx.inline_only = where == KMIP_RUN_LOOP;
    ctx.cancelled = &r->cancelled;
    ctx.deadline_ns = s->cfg.request_time_ms
                          ? kms_mono_ns() + (uint64_t)s->cfg.request_time_ms * 1000000ULL
                          : 0;
    ctx.reader = kmip_thread_reader(s);
    if (!ctx.reader)
        kms_log(KMS_LOG_ERROR, "kmip", "no store reader for this thread");
    int rc = run_batch(r, &ctx);
    kmip_ctx_release(&ctx);
    if (rc) {
        /* Nothing was written: the caller runs it again on a worker. */
        store_write_free(ctx.deferred);
        r->n_out = 0;
        return rc;
    }
    r->deferred = ctx.deferred;
    r->last_seq = ctx.last_seq;
    r->deferred_optional = ctx.deferred && ctx.deferred_optional;
    kms_strlcpy(r->first_object_id, ctx.first_created_id[0] ? ctx.first_created_id : ctx.first_object_id,
                sizeof(r->first_object_id));
    return 0;
}

int kmip_request_commit_done(kmip_request_t *r, int result)
{
    if (!r || !r->deferred)
        return KMS_ERR_INVAL;
    if (result == 0 && store_write_last_seq(r->deferred) > r->last_seq)
        r->last_seq = store_write_last_seq(r->deferred);
    store_write_free(r->deferred);
    r->deferred = NULL;
    if (result == 0)
        return 0;
    if (result == KMS_ERR_CONFLICT)
        return KMS_ERR_AGAIN;
    if (r->deferred_optional) {
        /* Bookkeeping of a read (Fresh, the served marker): the read's
         * answer stands; the marker is written by a later Get. */
        kms_log(KMS_LOG_WARN, "kmip", "%s: served marker not stored: %s",
                r->peer.address ? r->peer.address : "-", kms_strerror(result));
        return 0;
    }
    /* Nothing of the write was stored: the item that made it failed, and
     * the batch goes on as its Batch Error Continuation Option says. The
     * items before it only read (one write per inline run), so under Undo
     * there is nothing to revert. */
    size_t i = r->deferred_item;
    kmip_item_t *it = &r->items[i];
    char text[128];
    snprintf(text, sizeof(text), "the change was not stored: store: %s", kms_strerror(result));
    kms_log(KMS_LOG_WARN, "kmip", "%s: operation 0x%x: %s", r->peer.address ? r->peer.address : "-",
            it->operation, text);
    const char *msg = kms_arena_strdup(r->arena, text);
    kmip_item_fail(it, KMIP_RESULT_REASON_GENERAL_FAILURE, msg ? msg : "the change was not stored");
    r->fail_reason = 0;
    for (size_t j = 0; j < i; j++)
        if (r->items[j].status == KMIP_RESULT_STATUS_OPERATION_FAILED && !r->fail_reason)
            r->fail_reason = r->items[j].reason;
    continuation(r, i, 0);
    return 0;
}

int64_t kmip_request_last_seq(const kmip_request_t *r)
{
    return r ? r->last_seq : 0;
}

void kmip_request_unconfirmed(kmip_request_t *r, const char *msg)
{
    if (!r || r->invalid)
        return;
    const char *m = msg ? kms_arena_strdup(r->arena, msg) : NULL;
    for (size_t i = 0; i < r->n_out; i++) {
        kmip_item_t *it = &r->items[i];
        if (!it->wrote || it->status != KMIP_RESULT_STATUS_SUCCESS)
            continue;
        kmip_item_fail(it, KMIP_RESULT_REASON_GENERAL_FAILURE, m ? m : "not confirmed");
        if (!r->fail_reason)
            r->fail_reason = KMIP_RESULT_REASON_GENERAL_FAILURE;
    }
}
