/*
 * kmip/message.c: the KMIP message layer (kmip_handle).
 *
 * Decodes one Request Message, checks its header (Protocol Version 1.0-1.4,
 * Maximum Response Size, Credential, Asynchronous Indicator, Batch Error
 * Continuation Option, Batch Count), resolves the identity through the
 * auth callback, runs each Batch Item through the dispatch table, and
 * encodes the Response Message (Response Header echoing the request's
 * Protocol Version; per item Operation, Unique Batch Item ID, Result
 * Status/Reason/Message and Response Payload).
 *
 * Batch Error Continuation: Stop (default) answers the items up to the
 * failed one and no more; Continue runs every item; Undo reverts the
 * writes of the earlier items (compensating writes, see kmip_undo_run) and
 * marks them Operation Undone. Asynchronous operations are not offered.
 * It does not know any operation's semantics (op_*.c do).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip_int.h"

/* ------------------------------------------------------------- request */
typedef struct item_result {
    uint32_t operation;          /* 0 = absent */
    const ttlv_item_t *batch_id; /* Unique Batch Item ID to echo */
    uint32_t status;
    uint32_t reason;
    const char *msg;
    ttlv_item_t *payload;        /* NULL = none */
    bool wrote;
} item_result_t;

typedef struct req {
    int maj, min;
    bool have_version;
    int64_t max_resp;            /* 0 = none */
    const char *username, *password;
    bool async;
    uint32_t bec;                /* batch error continuation */
} req_t;

static const ttlv_item_t *child(const ttlv_item_t *p, uint32_t tag, enum ttlv_type t)
{
    const ttlv_item_t *c = ttlv_find(p, tag);
    return c && c->type == t ? c : NULL;
}

/* Parse the Request Header; returns a message for Invalid Message or NULL. */
static const char *parse_header(const ttlv_item_t *h, req_t *rq, size_t *batch_count_out)
{
    if (!h || h->type != TTLV_STRUCTURE)
        return "Request Header missing";
    const ttlv_item_t *pv = child(h, KMIP_TAG_PROTOCOL_VERSION, TTLV_STRUCTURE);
    if (!pv)
        return "Protocol Version missing";
    const ttlv_item_t *ma = child(pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, TTLV_INTEGER);
    const ttlv_item_t *mi = child(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, TTLV_INTEGER);
    if (!ma || !mi)
        return "Protocol Version incomplete";
    rq->maj = ma->v.i32;
    rq->min = mi->v.i32;
    rq->have_version = true;
    const ttlv_item_t *bc = child(h, KMIP_TAG_BATCH_COUNT, TTLV_INTEGER);
    if (!bc || bc->v.i32 < 0)
        return "Batch Count missing";
    *batch_count_out = (size_t)bc->v.i32;
    const ttlv_item_t *mrs = ttlv_find(h, KMIP_TAG_MAXIMUM_RESPONSE_SIZE);
    if (mrs) {
        if (mrs->type != TTLV_INTEGER || mrs->v.i32 <= 0)
            return "bad Maximum Response Size";
        rq->max_resp = mrs->v.i32;
    }
    const ttlv_item_t *ai = ttlv_find(h, KMIP_TAG_ASYNCHRONOUS_INDICATOR);
    if (ai) {
        if (ai->type != TTLV_BOOLEAN)
            return "bad Asynchronous Indicator";
        rq->async = ai->v.b;
    }
    rq->bec = KMIP_BATCH_ERROR_CONTINUATION_OPTION_STOP;
    const ttlv_item_t *be = ttlv_find(h, KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION);
    if (be) {
        if (be->type != TTLV_ENUMERATION || ttlv_u32(be) < 1 || ttlv_u32(be) > 3)
            return "bad Batch Error Continuation Option";
        rq->bec = ttlv_u32(be);
    }
    const ttlv_item_t *bo = ttlv_find(h, KMIP_TAG_BATCH_ORDER_OPTION);
    if (bo && bo->type != TTLV_BOOLEAN)
        return "bad Batch Order Option";
    const ttlv_item_t *ts = ttlv_find(h, KMIP_TAG_TIME_STAMP);
    if (ts && ts->type != TTLV_DATE_TIME)
        return "bad Time Stamp";
    const ttlv_item_t *au = ttlv_find(h, KMIP_TAG_AUTHENTICATION);
    if (au) {
        const ttlv_item_t *cr = child(au, KMIP_TAG_CREDENTIAL, TTLV_STRUCTURE);
        if (!cr)
            return "Authentication without Credential";
        const ttlv_item_t *ct = child(cr, KMIP_TAG_CREDENTIAL_TYPE, TTLV_ENUMERATION);
        const ttlv_item_t *cv = child(cr, KMIP_TAG_CREDENTIAL_VALUE, TTLV_STRUCTURE);
        if (!ct)
            return "Credential Type missing";
        if (ttlv_u32(ct) == KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD) {
            const ttlv_item_t *u = cv ? child(cv, KMIP_TAG_USERNAME, TTLV_TEXT_STRING) : NULL;
            const ttlv_item_t *p = cv ? child(cv, KMIP_TAG_PASSWORD, TTLV_TEXT_STRING) : NULL;
            if (!u)
                return "Username missing in Credential";
            rq->username = ttlv_text(u);
            rq->password = p ? ttlv_text(p) : NULL;
        }
        /* Other credential types (Device, Attestation) carry nothing we
         * check: identity then comes from the TLS client certificate. */
    }
    return NULL;
}

static ttlv_item_t *build_response(kms_arena_t *a, const req_t *rq, int64_t now,
                                   item_result_t *items, size_t n)
{
    ttlv_item_t *root = ttlv_new_struct(a, NULL, KMIP_TAG_RESPONSE_MESSAGE);
    ttlv_item_t *h = ttlv_new_struct(a, root, KMIP_TAG_RESPONSE_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION);
    if (!root || !h || !pv)
        return NULL;
    int maj = rq->have_version ? rq->maj : 1, min = rq->have_version ? rq->min : 0;
    if (!ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, maj) ||
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, min) ||
        !ttlv_new_datetime(a, h, KMIP_TAG_TIME_STAMP, now) ||
        !ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, (int32_t)n))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        item_result_t *r = &items[i];
        ttlv_item_t *bi = ttlv_new_struct(a, root, KMIP_TAG_BATCH_ITEM);
        if (!bi)
            return NULL;
        if (r->operation && !ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, r->operation))
            return NULL;
        if (r->batch_id) {
            ttlv_item_t *c = ttlv_clone(a, r->batch_id);
            if (!c)
                return NULL;
            ttlv_append(bi, c);
        }
        if (!ttlv_new_enum(a, bi, KMIP_TAG_RESULT_STATUS, r->status))
            return NULL;
        if (r->status == KMIP_RESULT_STATUS_OPERATION_FAILED) {
            if (!ttlv_new_enum(a, bi, KMIP_TAG_RESULT_REASON, r->reason))
                return NULL;
            if (r->msg && *r->msg && !ttlv_new_textz(a, bi, KMIP_TAG_RESULT_MESSAGE, r->msg))
                return NULL;
        }
        if (r->status == KMIP_RESULT_STATUS_SUCCESS && r->payload)
            ttlv_append(bi, r->payload);
    }
    return root;
}

static void set_fail(item_result_t *r, uint32_t reason, const char *msg)
{
    r->status = KMIP_RESULT_STATUS_OPERATION_FAILED;
    r->reason = reason;
    r->msg = msg;
    r->payload = NULL;
}

/* Encode; on overflow of the client's or our limit, turn the items with a
 * payload into Response Too Large failures and encode again. */
static int encode_response(kms_arena_t *a, const req_t *rq, int64_t now, item_result_t *items,
                           size_t n, size_t hard_max, kms_buf_t *resp)
{
    size_t limit = hard_max;
    if (rq->max_resp > 0 && (size_t)rq->max_resp < limit)
        limit = (size_t)rq->max_resp;
    for (int pass = 0; pass < 2; pass++) {
        ttlv_item_t *root = build_response(a, rq, now, items, n);
        if (!root)
            return KMS_ERR_NOMEM;
        size_t sz = ttlv_encoded_size(root);
        if (sz <= limit || pass == 1) {
            kms_buf_reset(resp);
            return ttlv_encode(root, resp);
        }
        for (size_t i = 0; i < n; i++)
            if (items[i].payload) {
                /* As the KMIP 1.1 test case 12.1 answers: no Operation. */
                items[i].operation = 0;
                set_fail(&items[i], KMIP_RESULT_REASON_RESPONSE_TOO_LARGE,
                         "response exceeds the Maximum Response Size");
            }
    }
    return KMS_ERR_INTERNAL;
}

static int invalid_message(kms_arena_t *a, const req_t *rq, int64_t now, const char *msg,
                           size_t hard_max, kms_buf_t *resp, kmip_summary_t *sum)
{
    item_result_t it = {0};
    set_fail(&it, KMIP_RESULT_REASON_INVALID_MESSAGE, msg);
    if (sum) {
        sum->result_status = KMIP_RESULT_STATUS_OPERATION_FAILED;
        sum->result_reason = KMIP_RESULT_REASON_INVALID_MESSAGE;
        sum->batch_count = 1;
    }
    return encode_response(a, rq, now, &it, 1, hard_max, resp);
}

static bool version_ok(const req_t *rq)
{
    return rq->maj == 1 && rq->min >= 0 && rq->min <= 4;
}

static void free_owned(kmip_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n_owned; i++)
        kms_secret_free(ctx->owned[i]);
    ctx->n_owned = 0;
    if (ctx->owned && ctx->owned != ctx->owned_inline)
        free(ctx->owned);
    ctx->owned = NULL;
    ctx->cap_owned = 0;
}

/* Run one batch item; fills r. */
static void run_item(kmip_ctx_t *ctx, const ttlv_item_t *bi, item_result_t *r, bool async)
{
    r->status = KMIP_RESULT_STATUS_SUCCESS;
    if (bi->type != TTLV_STRUCTURE) {
        set_fail(r, KMIP_RESULT_REASON_INVALID_MESSAGE, "Batch Item is not a structure");
        return;
    }
    const ttlv_item_t *op = ttlv_find(bi, KMIP_TAG_OPERATION);
    r->batch_id = ttlv_find(bi, KMIP_TAG_UNIQUE_BATCH_ITEM_ID);
    if (r->batch_id && r->batch_id->type != TTLV_BYTE_STRING) {
        r->batch_id = NULL;
        set_fail(r, KMIP_RESULT_REASON_INVALID_MESSAGE, "bad Unique Batch Item ID");
        return;
    }
    if (!op || op->type != TTLV_ENUMERATION) {
        set_fail(r, KMIP_RESULT_REASON_INVALID_MESSAGE, "Operation missing in Batch Item");
        return;
    }
    r->operation = ttlv_u32(op);
    for (const ttlv_item_t *x = ttlv_find(bi, KMIP_TAG_MESSAGE_EXTENSION); x;
         x = ttlv_find_next(x, KMIP_TAG_MESSAGE_EXTENSION)) {
        const ttlv_item_t *ci = ttlv_find(x, KMIP_TAG_CRITICALITY_INDICATOR);
        if (x->type != TTLV_STRUCTURE || !ci || ci->type != TTLV_BOOLEAN) {
            set_fail(r, KMIP_RESULT_REASON_INVALID_MESSAGE, "malformed Message Extension");
            return;
        }
        if (ci->v.b) {
            set_fail(r, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                     "critical Message Extension not supported");
            return;
        }
    }
    const kmip_op_entry_t *e = kmip_op_lookup(r->operation);
    if (!e || !e->fn) {
        set_fail(r, KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED, "operation not supported");
        return;
    }
    if (ctx->srv->cfg.gate && ctx->srv->cfg.gate(ctx->srv->cfg.gate_arg, r->operation) != 0) {
        set_fail(r, KMIP_RESULT_REASON_GENERAL_FAILURE,
                 ctx->srv->cfg.gate_msg ? ctx->srv->cfg.gate_msg : "unavailable");
        return;
    }
    if (async) {
        set_fail(r, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                 "asynchronous operations are not supported");
        return;
    }
    const ttlv_item_t *pl = ttlv_find(bi, KMIP_TAG_REQUEST_PAYLOAD);
    if (pl && pl->type != TTLV_STRUCTURE) {
        set_fail(r, KMIP_RESULT_REASON_INVALID_MESSAGE, "Request Payload is not a structure");
        return;
    }
    if (!pl)
        pl = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_REQUEST_PAYLOAD);
    ctx->operation = r->operation;
    ctx->payload = pl;
    ctx->resp_payload = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
    ctx->reason = 0;
    ctx->msg[0] = 0;
    if (!ctx->payload || !ctx->resp_payload) {
        set_fail(r, KMIP_RESULT_REASON_GENERAL_FAILURE, "out of memory");
        return;
    }
    int rc = e->fn(ctx);
    free_owned(ctx);
    if (rc) {
        uint32_t reason = ctx->reason ? ctx->reason : kmip_reason_of(rc);
        const char *m = ctx->msg[0] ? kms_arena_strdup(ctx->arena, ctx->msg) : kms_strerror(rc);
        set_fail(r, reason, m);
        if (!ctx->reason)
            kms_log(KMS_LOG_WARN, "kmip", "operation 0x%x failed: %s", r->operation, kms_strerror(rc));
        return;
    }
    r->payload = ctx->resp_payload;
    r->wrote = e->writes;
}

/* Reads an event-loop thread may run itself (kmip_handle_inline): no store
 * write, no HSM call, bounded work. An operation without a handler
 * is answered at once, so it is inline too. */
static bool op_inline(uint32_t operation)
{
    switch (operation) {
    case KMIP_OPERATION_GET:
    case KMIP_OPERATION_GET_ATTRIBUTES:
    case KMIP_OPERATION_GET_ATTRIBUTE_LIST:
    case KMIP_OPERATION_CHECK:
    case KMIP_OPERATION_QUERY:
    case KMIP_OPERATION_DISCOVER_VERSIONS:
        return true;
    default: {
        const kmip_op_entry_t *e = kmip_op_lookup(operation);
        return !e || !e->fn;
    }
    }
}

/* Operations that make at most one store write of bounded cost, so that
 * kmip_handle_inline() may run them with the write deferred. Not: Locate
 * (scan), Create Key Pair and Re-key Key Pair (RSA generation), Re-key
 * (two writes), Register of a template... anything not listed. */
static bool op_deferrable(uint32_t operation)
{
    switch (operation) {
    case KMIP_OPERATION_CREATE:
    case KMIP_OPERATION_REGISTER:
    case KMIP_OPERATION_ACTIVATE:
    case KMIP_OPERATION_REVOKE:
    case KMIP_OPERATION_DESTROY:
    case KMIP_OPERATION_ADD_ATTRIBUTE:
    case KMIP_OPERATION_MODIFY_ATTRIBUTE:
    case KMIP_OPERATION_DELETE_ATTRIBUTE:
    case KMIP_OPERATION_ARCHIVE:
    case KMIP_OPERATION_RECOVER:
        return true;
    default:
        return false;
    }
}

/* True when every batch item of a well-formed request may run inline. */
static bool request_inline(const ttlv_item_t *root, const req_t *rq)
{
    if (rq->username || rq->password)
        return false; /* the auth callback hashes the password */
    for (const ttlv_item_t *bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM); bi;
         bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM)) {
        const ttlv_item_t *op = bi->type == TTLV_STRUCTURE ? ttlv_find(bi, KMIP_TAG_OPERATION) : NULL;
        if (op && op->type == TTLV_ENUMERATION && !op_inline(ttlv_u32(op)) &&
            !op_deferrable(ttlv_u32(op)))
            return false;
    }
    return true;
}

/* deferred_out NULL: kmip_handle (a worker); else kmip_handle_inline. */
static int handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                  kms_buf_t *resp, kmip_summary_t *summary_out, store_write_t **deferred_out);

int kmip_handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                kms_buf_t *resp, kmip_summary_t *summary_out)
{
    return handle(s, peer, req, len, resp, summary_out, NULL);
}

int kmip_handle_inline(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                       kms_buf_t *resp, kmip_summary_t *summary_out, store_write_t **deferred_out)
{
    if (!deferred_out)
        return KMS_ERR_INVAL;
    *deferred_out = NULL;
    return handle(s, peer, req, len, resp, summary_out, deferred_out);
}

static int handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                  kms_buf_t *resp, kmip_summary_t *summary_out, store_write_t **deferred_out)
{
    int rc = 0;
    kms_arena_t *a = NULL;
    kmip_summary_t sum;
    memset(&sum, 0, sizeof(sum));
    req_t rq;
    memset(&rq, 0, sizeof(rq));
    int64_t now = s && s->cfg.clock ? s->cfg.clock(s->cfg.clock_arg) : kms_now_us() / 1000000;
    static const kmip_peer_t nopeer = {0};
    if (!peer)
        peer = &nopeer;

    if (!s || !req || !resp)
        return KMS_ERR_INVAL;
    kms_buf_reset(resp);
    a = kms_arena_new(s->cfg.arena_limit);
    if (!a)
        return KMS_ERR_NOMEM;

    ttlv_item_t *root = NULL;
    kms_error_t terr;
    ttlv_limits_t lim = {.max_depth = s->cfg.max_depth, .max_items = s->cfg.max_items};
    rc = ttlv_decode(req, len, &lim, a, &root, &terr);
    if (rc == KMS_ERR_PROTO) {
        /* Not TTLV: answer Invalid Message (as 1.0) if we can, and tell the
         * caller to close the connection. */
        kms_log(KMS_LOG_INFO, "kmip", "%s: undecodable request: %s",
                peer->address ? peer->address : "-", terr.msg);
        (void)invalid_message(a, &rq, now, "request is not a valid TTLV message",
                              s->cfg.max_response, resp, &sum);
        rc = KMS_ERR_PROTO;
        goto out;
    }
    if (rc) {
        rc = invalid_message(a, &rq, now, rc == KMS_ERR_LIMIT ? "request too complex" : "request too large",
                             s->cfg.max_response, resp, &sum);
        goto out;
    }
    if (root->tag != KMIP_TAG_REQUEST_MESSAGE || root->type != TTLV_STRUCTURE) {
        rc = invalid_message(a, &rq, now, "not a Request Message", s->cfg.max_response, resp, &sum);
        goto out;
    }
    size_t batch_count = 0;
    const char *herr = parse_header(ttlv_find(root, KMIP_TAG_REQUEST_HEADER), &rq, &batch_count);
    if (!herr && !version_ok(&rq))
        herr = "protocol version not supported (1.0-1.4)";
    size_t n_items = ttlv_count(root, KMIP_TAG_BATCH_ITEM);
    if (!herr && n_items == 0)
        herr = "no Batch Item";
    if (!herr && n_items != batch_count)
        herr = "Batch Count does not match the Batch Items";
    if (!herr && n_items > s->cfg.max_batch_items)
        herr = "too many Batch Items";
    if (herr) {
        rc = invalid_message(a, &rq, now, herr, s->cfg.max_response, resp, &sum);
        goto out;
    }
    if (deferred_out && !request_inline(root, &rq)) {
        kms_arena_free(a);
        return KMS_ERR_AGAIN; /* nothing done: the caller retries on a worker */
    }

    /* Identity. */
    kmip_identity_t ident;
    memset(&ident, 0, sizeof(ident));
    bool denied = false;
    if (s->cfg.auth) {
        int arc = s->cfg.auth(s->cfg.auth_arg, peer, rq.username, rq.password, &ident);
        if (arc)
            denied = true;
    } else {
        snprintf(ident.name, sizeof(ident.name), "%s", peer->cert_cn ? peer->cert_cn : "anonymous");
        snprintf(ident.tenant, sizeof(ident.tenant), "default");
        ident.role = KMIP_ROLE_ADMIN;
    }
    if (!denied && ident.role == KMIP_ROLE_NONE)
        denied = true;
    kms_strlcpy(sum.identity, ident.name, sizeof(sum.identity));
    kms_strlcpy(sum.tenant, ident.tenant, sizeof(sum.tenant));

    item_result_t *items = kms_arena_alloc(a, n_items * sizeof(*items));
    if (!items) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    kmip_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.srv = s;
    ctx.arena = a;
    ctx.ident = &ident;
    ctx.tenant_filter = ident.role == KMIP_ROLE_ADMIN ? NULL : ident.tenant;
    ctx.ver_major = rq.maj;
    ctx.ver_minor = rq.min;
    ctx.now = now;
    ctx.undo_enabled = rq.bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO;
    ctx.inline_only = deferred_out != NULL;
    if (!denied) {
        ctx.reader = kmip_thread_reader(s);
        if (!ctx.reader)
            kms_log(KMS_LOG_ERROR, "kmip", "no store reader for this thread");
    }

    size_t n_out = 0;
    bool failed = false;
    const ttlv_item_t *bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM);
    for (size_t i = 0; i < n_items && bi; i++, bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM)) {
        item_result_t *r = &items[n_out++];
        memset(r, 0, sizeof(*r));
        if (denied) {
            const ttlv_item_t *op = ttlv_find(bi, KMIP_TAG_OPERATION);
            r->operation = op && op->type == TTLV_ENUMERATION ? ttlv_u32(op) : 0;
            r->batch_id = ttlv_find(bi, KMIP_TAG_UNIQUE_BATCH_ITEM_ID);
            set_fail(r, KMIP_RESULT_REASON_PERMISSION_DENIED, "not authorised");
            continue;
        }
        if (!ctx.reader) {
            set_fail(r, KMIP_RESULT_REASON_GENERAL_FAILURE, "store unavailable");
        } else {
            run_item(&ctx, bi, r, rq.async);
        }
        if (ctx.need_worker) {
            /* A read wanted to write (or a second write, or a read after
             * the deferred one): nothing was written; start over on a
             * worker thread (see kmip_ctx_t.inline_only). */
            free_owned(&ctx);
            store_write_free(ctx.deferred);
            kms_arena_free(a);
            return KMS_ERR_AGAIN;
        }
        if (i == 0)
            sum.operation = r->operation;
        if (r->status == KMIP_RESULT_STATUS_OPERATION_FAILED) {
            failed = true;
            if (!sum.result_reason) {
                sum.result_reason = r->reason;
            }
            if (rq.bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_STOP)
                break;
            if (rq.bec == KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO) {
                int urc = kmip_undo_run(&ctx);
                for (size_t j = 0; j + 1 < n_out; j++) {
                    if (items[j].status == KMIP_RESULT_STATUS_SUCCESS) {
                        items[j].status = urc == 0 ? KMIP_RESULT_STATUS_OPERATION_UNDONE
                                                   : KMIP_RESULT_STATUS_OPERATION_FAILED;
                        items[j].reason = KMIP_RESULT_REASON_GENERAL_FAILURE;
                        items[j].msg = "undo failed";
                        items[j].payload = NULL;
                    }
                }
                break;
            }
        }
    }
    if (denied) {
        failed = true;
        sum.result_reason = KMIP_RESULT_REASON_PERMISSION_DENIED;
        const ttlv_item_t *op0 = ttlv_find(ttlv_find(root, KMIP_TAG_BATCH_ITEM), KMIP_TAG_OPERATION);
        sum.operation = op0 && op0->type == TTLV_ENUMERATION ? ttlv_u32(op0) : 0;
    }
    free_owned(&ctx);
    sum.result_status = failed ? KMIP_RESULT_STATUS_OPERATION_FAILED : KMIP_RESULT_STATUS_SUCCESS;
    sum.batch_count = n_out;
    kms_strlcpy(sum.object_id, ctx.first_object_id, sizeof(sum.object_id));
    rc = encode_response(a, &rq, now, items, n_out, s->cfg.max_response, resp);
    if (rc == 0) {
        /* A Response Too Large rewrite changes the outcome. */
        for (size_t j = 0; j < n_out; j++)
            if (items[j].status == KMIP_RESULT_STATUS_OPERATION_FAILED && !sum.result_reason) {
                sum.result_status = KMIP_RESULT_STATUS_OPERATION_FAILED;
                sum.result_reason = items[j].reason;
            }
    }
    if (ctx.deferred) {
        /* The answer stands only once this write commits (caller's job). */
        if (rc == 0)
            *deferred_out = ctx.deferred; /* deferred only when inline */
        else
            store_write_free(ctx.deferred);
        ctx.deferred = NULL;
    }
out:
    if (summary_out)
        *summary_out = sum;
    kms_arena_free(a);
    return rc;
}
