/*
 * kmip/request.c: the request value (kmip_request_t): decoding a Request
 * Message once, the header checks, each Batch Item's fixed part, the gate,
 * the inline decision, the summary and freeing.
 *
 * Decoding checks the Request Header (Protocol Version 1.0-1.4, Maximum
 * Response Size, Credential, Asynchronous Indicator, Batch Error
 * Continuation Option, Batch Order Option, Time Stamp, Batch Count against
 * the items) and decides for every Batch Item what can be decided without
 * running it: malformed items, critical Message Extensions, unknown
 * operations and asynchronous requests are answered without a handler.
 * What an operation means is op_*.c's business; running the items is
 * execute.c's, the Response Message message.c's.
 */
#include <stdio.h>
#include <string.h>

#include "kmip/kmip_int.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const ttlv_item_t *child(const ttlv_item_t *p, uint32_t tag, enum ttlv_type t)
{
    const ttlv_item_t *c = ttlv_find(p, tag);
    return c && c->type == t ? c : NULL;
}

/* One Credential into *c; a message for Invalid Message, or NULL. *used
 * is false for a Credential that carries nothing kmsd verifies. */
static const char *parse_credential(const ttlv_item_t *cr, kmip_credential_t *c, bool *used)
{
    *used = false;
    if (cr->type != TTLV_STRUCTURE)
        return "Credential is not a structure";
    const ttlv_item_t *ct = child(cr, KMIP_TAG_CREDENTIAL_TYPE, TTLV_ENUMERATION);
    const ttlv_item_t *cv = child(cr, KMIP_TAG_CREDENTIAL_VALUE, TTLV_STRUCTURE);
    if (!ct)
        return "Credential Type missing";
    if (ttlv_u32(ct) == KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD) {
        const ttlv_item_t *u = cv ? child(cv, KMIP_TAG_USERNAME, TTLV_TEXT_STRING) : NULL;
        const ttlv_item_t *p = cv ? child(cv, KMIP_TAG_PASSWORD, TTLV_TEXT_STRING) : NULL;
        if (!u)
            return "Username missing in Credential";
        c->username = ttlv_text(u);
        c->password = p ? ttlv_text(p) : NULL;
        *used = true;
    }
    if (ttlv_u32(ct) == KMIP_CREDENTIAL_TYPE_DEVICE) {
        /* Every field is optional in the structure; what a device client
         * must send is kmip_identify_all's business. */
        static const uint32_t tags[6] = {KMIP_TAG_DEVICE_SERIAL_NUMBER, KMIP_TAG_PASSWORD,
                                         KMIP_TAG_DEVICE_IDENTIFIER, KMIP_TAG_NETWORK_IDENTIFIER,
                                         KMIP_TAG_MACHINE_IDENTIFIER, KMIP_TAG_MEDIA_IDENTIFIER};
        const char **dst[6] = {&c->dev.serial,     &c->dev.password,   &c->dev.device_id,
                               &c->dev.network_id, &c->dev.machine_id, &c->dev.media_id};
        for (size_t i = 0; i < 6; i++) {
            const ttlv_item_t *f = cv ? ttlv_find(cv, tags[i]) : NULL;
            if (f && f->type != TTLV_TEXT_STRING)
                return "malformed Device credential";
            *dst[i] = f ? ttlv_text(f) : NULL;
        }
        c->device = true;
        *used = true;
    }
    /* Attestation credentials carry nothing kmsd verifies: identity comes
     * from the TLS client certificate and the other Credentials. */
    return NULL;
}

/* The Credentials of an Authentication structure (one or more, KMIP 1.2
 * section 6.6; at most KMIP_MAX_CREDENTIALS, counting those not used); a
 * message for Invalid Message, or NULL. */
static const char *parse_authentication(const ttlv_item_t *au, kmip_request_t *r)
{
    if (au->type != TTLV_STRUCTURE)
        return "Authentication is not a structure";
    size_t seen = 0;
    for (const ttlv_item_t *cr = ttlv_find(au, KMIP_TAG_CREDENTIAL); cr;
         cr = ttlv_find_next(cr, KMIP_TAG_CREDENTIAL)) {
        if (++seen > KMIP_MAX_CREDENTIALS)
            return "more than " STR(KMIP_MAX_CREDENTIALS) " Credentials in Authentication";
        bool used = false;
        const char *bad = parse_credential(cr, &r->creds[r->n_creds], &used);
        if (bad)
            return bad;
        if (used)
            r->n_creds++;
    }
    return seen ? NULL : "Authentication without Credential";
}

/* Parse the Request Header; a message for Invalid Message, or NULL. */
static const char *parse_header(const ttlv_item_t *h, kmip_request_t *r, size_t *batch_count_out)
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
    r->ver_major = ma->v.i32;
    r->ver_minor = mi->v.i32;
    r->have_version = true;
    const ttlv_item_t *bc = child(h, KMIP_TAG_BATCH_COUNT, TTLV_INTEGER);
    if (!bc || bc->v.i32 < 0)
        return "Batch Count missing";
    *batch_count_out = (size_t)bc->v.i32;
    const ttlv_item_t *mrs = ttlv_find(h, KMIP_TAG_MAXIMUM_RESPONSE_SIZE);
    if (mrs) {
        if (mrs->type != TTLV_INTEGER || mrs->v.i32 <= 0)
            return "bad Maximum Response Size";
        r->max_resp = mrs->v.i32;
    }
    const ttlv_item_t *ai = ttlv_find(h, KMIP_TAG_ASYNCHRONOUS_INDICATOR);
    if (ai && ai->type != TTLV_BOOLEAN)
        return "bad Asynchronous Indicator";
    r->bec = KMIP_BATCH_ERROR_CONTINUATION_OPTION_STOP;
    const ttlv_item_t *be = ttlv_find(h, KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION);
    if (be) {
        if (be->type != TTLV_ENUMERATION || ttlv_u32(be) < 1 || ttlv_u32(be) > 3)
            return "bad Batch Error Continuation Option";
        r->bec = ttlv_u32(be);
    }
    const ttlv_item_t *bo = ttlv_find(h, KMIP_TAG_BATCH_ORDER_OPTION);
    if (bo && bo->type != TTLV_BOOLEAN)
        return "bad Batch Order Option";
    const ttlv_item_t *ts = ttlv_find(h, KMIP_TAG_TIME_STAMP);
    if (ts && ts->type != TTLV_DATE_TIME)
        return "bad Time Stamp";
    const ttlv_item_t *au = ttlv_find(h, KMIP_TAG_AUTHENTICATION);
    return au ? parse_authentication(au, r) : NULL;
}

static void refuse(kmip_item_t *it, uint32_t reason, const char *msg)
{
    it->op = NULL;
    it->refuse_reason = reason;
    it->refuse_msg = msg;
}

/* The fixed part of one Batch Item: what it asks for, and whatever can be
 * answered without running it. `async`: the header asked for asynchronous
 * operations, which are not offered. */
static void parse_item(kms_arena_t *a, const ttlv_item_t *bi, bool async, kmip_item_t *it)
{
    if (bi->type != TTLV_STRUCTURE) {
        refuse(it, KMIP_RESULT_REASON_INVALID_MESSAGE, "Batch Item is not a structure");
        return;
    }
    const ttlv_item_t *op = ttlv_find(bi, KMIP_TAG_OPERATION);
    if (op && op->type == TTLV_ENUMERATION)
        it->operation = ttlv_u32(op);
    const ttlv_item_t *id = ttlv_find(bi, KMIP_TAG_UNIQUE_BATCH_ITEM_ID);
    if (id && id->type != TTLV_BYTE_STRING) {
        refuse(it, KMIP_RESULT_REASON_INVALID_MESSAGE, "bad Unique Batch Item ID");
        return;
    }
    it->batch_id = id;
    if (!it->operation) {
        refuse(it, KMIP_RESULT_REASON_INVALID_MESSAGE, "Operation missing in Batch Item");
        return;
    }
    it->echo_operation = true;
    for (const ttlv_item_t *x = ttlv_find(bi, KMIP_TAG_MESSAGE_EXTENSION); x;
         x = ttlv_find_next(x, KMIP_TAG_MESSAGE_EXTENSION)) {
        const ttlv_item_t *ci = ttlv_find(x, KMIP_TAG_CRITICALITY_INDICATOR);
        if (x->type != TTLV_STRUCTURE || !ci || ci->type != TTLV_BOOLEAN) {
            refuse(it, KMIP_RESULT_REASON_INVALID_MESSAGE, "malformed Message Extension");
            return;
        }
        if (ci->v.b) {
            refuse(it, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                   "critical Message Extension not supported");
            return;
        }
    }
    it->op = kmip_op_lookup(it->operation);
    if (!it->op || !it->op->fn) {
        refuse(it, KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED, "operation not supported");
        return;
    }
    /* Operations that cannot take long (or answer with key material)
     * run synchronously, which the Asynchronous Indicator allows. */
    it->async = async && (it->op->flags & KMIP_OP_ASYNC);
    it->payload = ttlv_find(bi, KMIP_TAG_REQUEST_PAYLOAD);
    if (it->payload && it->payload->type != TTLV_STRUCTURE) {
        refuse(it, KMIP_RESULT_REASON_INVALID_MESSAGE, "Request Payload is not a structure");
        return;
    }
    if (!it->payload)
        it->payload = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_PAYLOAD);
    if (!it->payload)
        refuse(it, KMIP_RESULT_REASON_GENERAL_FAILURE, "out of memory");
}

/* A decoded Request Message: header, then the items. A message for
 * Invalid Message, or NULL. */
static const char *parse_message(kmip_request_t *r, const ttlv_item_t *root)
{
    kmip_server_t *s = r->srv;
    if (root->tag != KMIP_TAG_REQUEST_MESSAGE || root->type != TTLV_STRUCTURE)
        return "not a Request Message";
    size_t batch_count = 0;
    const ttlv_item_t *h = ttlv_find(root, KMIP_TAG_REQUEST_HEADER);
    const char *herr = parse_header(h, r, &batch_count);
    if (herr)
        return herr;
    if (r->ver_major != 1 || r->ver_minor < 0 || r->ver_minor > 4)
        return "protocol version not supported (1.0-1.4)";
    size_t n = ttlv_count(root, KMIP_TAG_BATCH_ITEM);
    if (n == 0)
        return "no Batch Item";
    if (n != batch_count)
        return "Batch Count does not match the Batch Items";
    if (n > s->cfg.max_batch_items)
        return "too many Batch Items";
    r->items = kms_arena_alloc(r->arena, n * sizeof(*r->items));
    if (!r->items)
        return "request too large";
    const ttlv_item_t *ai = ttlv_find(h, KMIP_TAG_ASYNCHRONOUS_INDICATOR);
    bool async = ai && ai->v.b;
    const ttlv_item_t *bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM);
    for (size_t i = 0; i < n && bi; i++, bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM))
        parse_item(r->arena, bi, async, &r->items[i]);
    r->n_items = n;
    return NULL;
}

int64_t kmip_now(const kmip_server_t *s)
{
    return s->cfg.clock ? s->cfg.clock(s->cfg.clock_arg) : kms_now_us() / 1000000;
}

int kmip_request_decode(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *msg, size_t len,
                        kmip_request_t **req_out)
{
    if (!req_out)
        return KMS_ERR_INVAL;
    *req_out = NULL;
    if (!s || !msg)
        return KMS_ERR_INVAL;
    kms_arena_t *a = kms_arena_new(s->cfg.arena_limit);
    kmip_request_t *r = a ? kms_arena_alloc(a, sizeof(*r)) : NULL;
    if (!r) {
        kms_arena_free(a);
        return KMS_ERR_NOMEM;
    }
    r->srv = s;
    r->arena = a;
    atomic_init(&r->cancelled, false);
    r->now = kmip_now(s);
    if (peer)
        r->peer = *peer;
    ttlv_item_t *root = NULL;
    kms_error_t terr;
    ttlv_limits_t lim = {.max_depth = s->cfg.max_depth, .max_items = s->cfg.max_items};
    int rc = ttlv_decode(msg, len, &lim, a, &root, &terr);
    *req_out = r;
    if (rc == KMS_ERR_PROTO) {
        /* Not TTLV: answered Invalid Message (as 1.0) if we can; the caller
         * closes the connection. */
        kms_log(KMS_LOG_INFO, "kmip", "%s: undecodable request: %s",
                r->peer.address ? r->peer.address : "-", kms_error_msg(&terr));
        r->invalid = "request is not a valid TTLV message";
        r->not_ttlv = true;
        return KMS_ERR_PROTO;
    }
    if (rc)
        r->invalid = rc == KMS_ERR_LIMIT ? "request too complex" : "request too large";
    else
        r->invalid = parse_message(r, root);
    return 0;
}

bool kmip_request_can_run_inline(const kmip_request_t *r)
{
    if (!r)
        return false;
    if (r->invalid)
        return true; /* answered at once */
    if (r->n_creds)
        return false; /* the password is hashed */
    for (size_t i = 0; i < r->n_items; i++) {
        const kmip_item_t *it = &r->items[i];
        if (it->op && !(it->op->flags & (KMIP_OP_READ | KMIP_OP_ONE_WRITE)))
            return false;
    }
    return true;
}

void kmip_request_gate(kmip_request_t *r, const kmip_gate_t *g)
{
    if (!r || !g)
        return;
    if (g->refuse_all) {
        const char *why = kms_arena_strdup(r->arena, g->refuse_all);
        for (size_t i = 0; i < r->n_items; i++)
            refuse(&r->items[i], KMIP_RESULT_REASON_GENERAL_FAILURE, why ? why : "unavailable");
        return;
    }
    if (!g->keys_unavailable)
        return;
    const char *why = g->keys_reason ? kms_arena_strdup(r->arena, g->keys_reason) : NULL;
    for (size_t i = 0; i < r->n_items; i++) {
        kmip_item_t *it = &r->items[i];
        if (it->op && (it->op->flags & KMIP_OP_NEEDS_KEYS))
            refuse(it, KMIP_RESULT_REASON_GENERAL_FAILURE, why ? why : "unavailable");
    }
}

int kmip_request_authenticate(kmip_request_t *r)
{
    if (!r)
        return KMS_ERR_INVAL;
    if (r->authenticated || r->invalid)
        return r->denied ? KMS_ERR_PERM : 0;
    r->authenticated = true;
    kmip_server_t *s = r->srv;
    kmip_identity_t *id = &r->ident;
    if (s->cfg.access == KMIP_ACCESS_OPEN) {
        /* Unverified, as everything in this mode: the Credential's user
         * name or device, else the certificate CN, names the identity (the
         * creator an operation policy compares with). */
        const kmip_credential_t *c = r->n_creds ? &r->creds[0] : NULL;
        const char *dev = c && c->device ? (c->dev.serial ? c->dev.serial : c->dev.device_id)
                                         : NULL;
        const char *who = c && !c->device ? c->username
                          : dev           ? dev
                          : r->peer.cert_cn ? r->peer.cert_cn
                                            : "anonymous";
        kms_strlcpy(id->name, who, sizeof(id->name));
        kms_strlcpy(id->tenant, "default", sizeof(id->tenant));
        id->role = KMIP_ROLE_ADMIN;
    } else {
        /* *id is zeroed if refused */
        int rc = kmip_identify_all(s, &r->peer, r->creds, r->n_creds, id);
        r->auth_rc = rc == KMS_ERR_UNAVAIL ? rc : KMS_ERR_PERM;
    }
    r->denied = id->role == KMIP_ROLE_NONE;
    return r->denied ? KMS_ERR_PERM : 0;
}

store_write_t *kmip_request_pending_write(const kmip_request_t *r)
{
    return r ? r->deferred : NULL;
}

void kmip_request_summary(const kmip_request_t *r, kmip_summary_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!r)
        return;
    if (r->invalid) {
        out->result_status = KMIP_RESULT_STATUS_OPERATION_FAILED;
        out->result_reason = KMIP_RESULT_REASON_INVALID_MESSAGE;
        out->batch_count = 1;
        return;
    }
    kms_strlcpy(out->identity, r->ident.name, sizeof(out->identity));
    kms_strlcpy(out->tenant, r->ident.tenant, sizeof(out->tenant));
    kms_strlcpy(out->object_id, r->first_object_id, sizeof(out->object_id));
    out->operation = r->n_items ? r->items[0].operation : 0;
    out->batch_count = r->n_out;
    out->result_status = KMIP_RESULT_STATUS_SUCCESS;
    out->result_reason = r->fail_reason;
    for (size_t i = 0; i < r->n_out; i++) {
        if (r->items[i].status != KMIP_RESULT_STATUS_OPERATION_FAILED)
            continue;
        out->result_status = KMIP_RESULT_STATUS_OPERATION_FAILED;
        if (!out->result_reason)
            out->result_reason = r->items[i].reason; /* a Response Too Large rewrite */
    }
    if (out->result_reason)
        out->result_status = KMIP_RESULT_STATUS_OPERATION_FAILED;
}

void kmip_request_cancel(kmip_request_t *r)
{
    if (r)
        atomic_store(&r->cancelled, true);
}

void kmip_request_free(kmip_request_t *r)
{
    if (!r)
        return;
    store_write_free(r->deferred);
    kms_arena_free(r->arena); /* r lives in it */
}
