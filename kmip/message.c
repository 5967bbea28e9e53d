/*
 * kmip/message.c: the Response Message of a request (kmip_request_encode)
 * and kmip_handle(), every step of a request in one call.
 *
 * The Response Header echoes the request's Protocol Version (1.0 when it
 * had none); each answered Batch Item carries its Operation, Unique Batch
 * Item ID, Result Status/Reason/Message and, on success, its Response
 * Payload. An answer over the client's Maximum Response Size or the
 * configured cap turns the items with a payload into Response Too Large
 * failures. It does not run anything (execute.c) or decode (request.c).
 */
#include <string.h>

#include "kmip/kmip_int.h"

static ttlv_item_t *response_header(kms_arena_t *a, ttlv_item_t *root, const kmip_request_t *r,
                                    size_t n)
{
    ttlv_item_t *h = ttlv_new_struct(a, root, KMIP_TAG_RESPONSE_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION);
    if (!h || !pv)
        return NULL;
    int maj = r->have_version ? r->ver_major : 1, min = r->have_version ? r->ver_minor : 0;
    if (!ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, maj) ||
        !ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, min) ||
        !ttlv_new_datetime(a, h, KMIP_TAG_TIME_STAMP, r->now) ||
        !ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, (int32_t)n))
        return NULL;
    return h;
}

static ttlv_item_t *batch_item(kms_arena_t *a, ttlv_item_t *root, const kmip_item_t *it)
{
    ttlv_item_t *bi = ttlv_new_struct(a, root, KMIP_TAG_BATCH_ITEM);
    if (!bi)
        return NULL;
    if (it->echo_operation &&
        !ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, it->answer_op ? it->answer_op : it->operation))
        return NULL;
    if (it->batch_id) {
        ttlv_item_t *c = ttlv_clone(a, it->batch_id);
        if (!c)
            return NULL;
        ttlv_append(bi, c);
    }
    if (!ttlv_new_enum(a, bi, KMIP_TAG_RESULT_STATUS, it->status))
        return NULL;
    if (it->status == KMIP_RESULT_STATUS_OPERATION_FAILED) {
        if (!ttlv_new_enum(a, bi, KMIP_TAG_RESULT_REASON, it->reason))
            return NULL;
        if (it->msg && *it->msg && !ttlv_new_textz(a, bi, KMIP_TAG_RESULT_MESSAGE, it->msg))
            return NULL;
    }
    if (it->status == KMIP_RESULT_STATUS_OPERATION_PENDING && it->async_corr &&
        !ttlv_new_bytes(a, bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE, it->async_corr,
                        it->async_corr_len))
        return NULL;
    if (it->status == KMIP_RESULT_STATUS_SUCCESS && it->resp_payload)
        ttlv_append(bi, it->resp_payload);
    return bi;
}

static ttlv_item_t *build_response(kms_arena_t *a, const kmip_request_t *r,
                                   const kmip_item_t *items, size_t n)
{
    ttlv_item_t *root = ttlv_new_struct(a, NULL, KMIP_TAG_RESPONSE_MESSAGE);
    if (!root || !response_header(a, root, r, n))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!batch_item(a, root, &items[i]))
            return NULL;
    return root;
}

/* Encode; on overflow of the client's or our limit, turn the items with a
 * payload into Response Too Large failures and encode again. */
static int encode_items(kmip_request_t *r, kmip_item_t *items, size_t n, kms_buf_t *resp)
{
    size_t limit = r->srv->cfg.max_response;
    if (r->max_resp > 0 && (size_t)r->max_resp < limit)
        limit = (size_t)r->max_resp;
    for (int pass = 0; pass < 2; pass++) {
        ttlv_item_t *root = build_response(r->arena, r, items, n);
        if (!root)
            return KMS_ERR_NOMEM;
        if (ttlv_encoded_size(root) <= limit || pass == 1) {
            kms_buf_reset(resp);
            return ttlv_encode(root, resp);
        }
        for (size_t i = 0; i < n; i++)
            if (items[i].resp_payload) {
                /* As the KMIP 1.1 test case 12.1 answers: no Operation. */
                items[i].echo_operation = false;
                kmip_item_fail(&items[i], KMIP_RESULT_REASON_RESPONSE_TOO_LARGE,
                               "response exceeds the Maximum Response Size");
            }
    }
    return KMS_ERR_INTERNAL;
}

int kmip_request_encode(kmip_request_t *r, kms_buf_t *resp)
{
    if (!r || !resp)
        return KMS_ERR_INVAL;
    kms_buf_reset(resp);
    if (r->deferred)
        return KMS_ERR_STATE; /* never an answer before its write is settled */
    if (r->invalid) {
        kmip_item_t it;
        memset(&it, 0, sizeof(it));
        kmip_item_fail(&it, KMIP_RESULT_REASON_INVALID_MESSAGE, r->invalid);
        return encode_items(r, &it, 1, resp);
    }
    return encode_items(r, r->items, r->n_out, resp);
}

int kmip_handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                kms_buf_t *resp, kmip_summary_t *summary_out)
{
    kmip_request_t *r = NULL;
    if (summary_out)
        memset(summary_out, 0, sizeof(*summary_out));
    if (!resp)
        return KMS_ERR_INVAL;
    kms_buf_reset(resp);
    int rc = kmip_request_decode(s, peer, req, len, &r);
    if (!r)
        return rc;
    (void)kmip_request_authenticate(r); /* a refusal is answered */
    int erc = kmip_request_execute(r, KMIP_RUN_WORKER);
    if (erc == 0)
        erc = kmip_request_encode(r, resp);
    if (erc)
        rc = erc;
    kmip_request_summary(r, summary_out);
    kmip_request_free(r);
    return rc;
}
