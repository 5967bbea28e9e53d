/*
 * kmip/op_crypto.c: the cryptographic services on managed keys: Encrypt,
 * Decrypt, Sign, Signature Verify, MAC, MAC Verify and Hash (KMIP 1.2
 * sections 4.29-4.34, 1.4 section 4.40), single-part or streamed across
 * requests (KMIP 1.3: Init Indicator, Correlation Value, Final Indicator).
 *
 * One driver runs all seven: read the request, load the key and check that
 * this use is allowed (kmip_crypto_key_load: type, State, Cryptographic
 * Usage Mask, Process Start / Protect Stop Date), count the use against
 * Usage Limits, resolve the Cryptographic Parameters (the request's, else
 * the key's attribute), then let crypto/ compute. A continued stream loads
 * and checks its key again at every part, so a key revoked or destroyed
 * mid-stream stops the stream.
 *
 * Where it runs: on an event loop only single-part operations with at most
 * KMIP_CRYPTO_INLINE_MAX bytes and no private-key RSA; anything else (and
 * every stream) asks for a worker (need_worker) before it changes
 * anything, so the request can run again from the start.
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

/* Largest input a loop thread computes on itself. */
#define KMIP_CRYPTO_INLINE_MAX (64u << 10)

#define T(x) (1u << KMIP_OBJECT_TYPE_##x)

static bool destroyed(uint32_t st)
{
    return st == KMIP_STATE_DESTROYED || st == KMIP_STATE_DESTROYED_COMPROMISED;
}

static const char *state_name(uint32_t st)
{
    const char *n = ttlv_enum_name(KMIP_TAG_STATE, st);
    return n ? n : "unknown";
}

/* ------------------------------------------------------------- the key */
int kmip_crypto_key_load(kmip_ctx_t *ctx, const char *id, uint32_t types, uint32_t usage,
                         bool protect, kmip_obj_t **o_out, crypto_key_t *key)
{
    kmip_obj_t *o = NULL;
    const kms_secret_t *m = NULL;
    int32_t mask = 0;
    int64_t t = 0;
    int rc;
    memset(key, 0, sizeof(*key));
    *o_out = NULL;
    if ((rc = kmip_obj_load(ctx, id, &o)))
        return rc;
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "the key is archived; Recover it first");
    if (destroyed(o->state))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "the key has been destroyed");
    if (o->object_type >= 32 || !(types & (1u << o->object_type)))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION, "a %s cannot be used for this",
                         ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, o->object_type)
                             ? ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, o->object_type)
                             : "object of this type");
    bool state_ok = o->state == KMIP_STATE_ACTIVE ||
                    (!protect && (o->state == KMIP_STATE_DEACTIVATED ||
                                  o->state == KMIP_STATE_COMPROMISED));
    if (!state_ok)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "a key in State %s may not be used to %s", state_name(o->state),
                         protect ? "apply protection (only Active keys do)"
                                 : "process protected data (Active, Deactivated or Compromised "
                                   "keys do)");
    if (protect && kmip_attr_get_date(o, "Protect Stop Date", &t) == 0 && t <= ctx->now)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the key's Protect Stop Date has passed");
    if (!protect && kmip_attr_get_date(o, "Process Start Date", &t) == 0 && t > ctx->now)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the key's Process Start Date has not come yet");
    (void)kmip_attr_get_int(o, "Cryptographic Usage Mask", &mask);
    if (((uint32_t)mask & usage) != usage)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the key's Cryptographic Usage Mask lacks %s",
                         ttlv_enum_name(KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, usage)
                             ? ttlv_enum_name(KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, usage)
                             : "this use");
    if ((rc = kmip_obj_open_material(ctx, o, &m)))
        return rc;
    key->object_type = o->object_type;
    (void)kmip_attr_get_enum(o, "Cryptographic Algorithm", &key->alg);
    kms_error_t err;
    kms_error_clear(&err);
    switch (o->object_type) {
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY:
    case KMIP_OBJECT_TYPE_SECRET_DATA:
        key->raw = m->data;
        key->raw_len = m->len;
        break;
    case KMIP_OBJECT_TYPE_PRIVATE_KEY:
        rc = crypto_pkey_cache_load(ctx->srv->pkeys, KMIP_KEY_FORMAT_TYPE_PKCS_8, true, m->data,
                                    m->len, &key->pkey, &err);
        break;
    case KMIP_OBJECT_TYPE_PUBLIC_KEY:
        rc = crypto_pkey_cache_load(ctx->srv->pkeys, KMIP_KEY_FORMAT_TYPE_X_509, false, m->data,
                                    m->len, &key->pkey, &err);
        break;
    case KMIP_OBJECT_TYPE_CERTIFICATE:
        rc = crypto_cert_pubkey(m->data, m->len, &key->pkey, &err);
        break;
    default:
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION, "not a key");
    }
    if (rc && err.code)
        return kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                         "the stored key does not load: %s", kms_error_msg(&err));
    if (rc)
        return rc;
    *o_out = o;
    return 0;
}

void kmip_crypto_key_dispose(crypto_key_t *key)
{
    if (key && key->pkey) {
        EVP_PKEY_free(key->pkey);
        key->pkey = NULL;
    }
}

static int use_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    int64_t bytes = *(int64_t *)arg;
    bool later_part = bytes < 0;
    if (later_part)
        bytes = -bytes - 1;
    kmip_attr_t *a = kmip_attr_get(o, "Usage Limits", 0);
    ttlv_item_t *c = a ? ttlv_find(a->value, KMIP_TAG_USAGE_LIMITS_COUNT) : NULL;
    ttlv_item_t *u = a ? ttlv_find(a->value, KMIP_TAG_USAGE_LIMITS_UNIT) : NULL;
    if (!c || c->type != TTLV_LONG_INTEGER) {
        *unchanged_out = true;
        return 0;
    }
    bool by_byte = u && u->type == TTLV_ENUMERATION && ttlv_u32(u) == KMIP_USAGE_LIMITS_UNIT_BYTE;
    int64_t want = by_byte ? bytes : later_part ? 0 : 1;
    if (want > c->v.i64)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the key's Usage Limits are used up (%lld left, %lld needed)",
                         (long long)c->v.i64, (long long)want);
    if (want == 0) {
        *unchanged_out = true;
        return 0;
    }
    c->v.i64 -= want;
    o->dirty = true;
    return 0;
}

int kmip_crypto_use(kmip_ctx_t *ctx, kmip_obj_t *o, int64_t bytes, bool new_use)
{
    if (!new_use)
        bytes = -bytes - 1; /* use_cb: a later part counts its bytes, not a use */
    kmip_attr_t *a = kmip_attr_get(o, "Usage Limits", 0);
    if (!a || !ttlv_find(a->value, KMIP_TAG_USAGE_LIMITS_COUNT))
        return 0;
    return kmip_obj_update(ctx, o->id, use_cb, &bytes, NULL);
}

/* ----------------------------------------------------------- the request */
typedef struct req_bytes {
    const uint8_t *p;
    size_t len;
    bool present;
} req_bytes_t;

int kmip_req_bytes(kmip_ctx_t *ctx, const ttlv_item_t *parent, uint32_t tag, const uint8_t **p_out,
                   size_t *len_out)
{
    const ttlv_item_t *it = ttlv_find(parent, tag);
    *p_out = NULL;
    *len_out = 0;
    if (!it)
        return 0;
    if (it->type != TTLV_BYTE_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s is not a Byte String",
                         ttlv_tag_name(tag));
    *p_out = it->v.bytes.ptr ? it->v.bytes.ptr : (const uint8_t *)"";
    *len_out = it->v.bytes.len;
    return 0;
}

static int get_bytes(kmip_ctx_t *ctx, uint32_t tag, req_bytes_t *out)
{
    int rc = kmip_req_bytes(ctx, ctx->payload, tag, &out->p, &out->len);
    out->present = out->p != NULL;
    return rc;
}

static int get_bool(kmip_ctx_t *ctx, uint32_t tag, bool *out)
{
    const ttlv_item_t *it = ttlv_find(ctx->payload, tag);
    *out = false;
    if (!it)
        return 0;
    if (it->type != TTLV_BOOLEAN)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s is not a Boolean",
                         ttlv_tag_name(tag));
    *out = it->v.b;
    return 0;
}

/* What differs between the seven operations. */
typedef struct svc_spec {
    uint32_t operation;
    enum crypto_svc svc;
    uint32_t types;          /* object types allowed; 0 = no key (Hash) */
    uint32_t usage;          /* Cryptographic Usage Mask bit */
    bool protect;            /* applies protection (Active only) */
    uint32_t check_tag;      /* Signature Data / MAC Data to verify, or 0 */
} svc_spec_t;

typedef struct svc_req {
    const char *uid;
    const ttlv_item_t *params;
    req_bytes_t data, digested, iv, aad, tag, check, corr;
    bool init, final;
} svc_req_t;

static int parse_req(kmip_ctx_t *ctx, const svc_spec_t *sp, svc_req_t *r)
{
    int rc;
    memset(r, 0, sizeof(*r));
    const ttlv_item_t *u = ttlv_find(ctx->payload, KMIP_TAG_UNIQUE_IDENTIFIER);
    if (u && u->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier is not a Text String");
    r->uid = u ? ttlv_text(u) : NULL;
    r->params = ttlv_find(ctx->payload, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    if ((rc = get_bytes(ctx, KMIP_TAG_DATA, &r->data)) ||
        (rc = get_bytes(ctx, KMIP_TAG_DIGESTED_DATA, &r->digested)) ||
        (rc = get_bytes(ctx, KMIP_TAG_IV_COUNTER_NONCE, &r->iv)) ||
        (rc = get_bytes(ctx, KMIP_TAG_AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, &r->aad)) ||
        (rc = get_bytes(ctx, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG, &r->tag)) ||
        (rc = get_bytes(ctx, KMIP_TAG_CORRELATION_VALUE, &r->corr)) ||
        (sp->check_tag && (rc = get_bytes(ctx, sp->check_tag, &r->check))) ||
        (rc = get_bool(ctx, KMIP_TAG_INIT_INDICATOR, &r->init)) ||
        (rc = get_bool(ctx, KMIP_TAG_FINAL_INDICATOR, &r->final)))
        return rc;
    if (r->digested.present && sp->svc != CRYPTO_SVC_SIGN && sp->svc != CRYPTO_SVC_VERIFY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Digested Data applies to signatures");
    if (r->digested.present && r->data.present)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Data and Digested Data both given");
    if (r->corr.present && r->init)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Init Indicator with a Correlation Value: a stream is opened once");
    if (r->final && !r->init && !r->corr.present)
        r->init = true; /* Final alone: a single-part operation */
    bool single = !r->corr.present && (!r->init || r->final);
    if (single && !r->data.present && !r->digested.present)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s missing",
                         sp->svc == CRYPTO_SVC_SIGN || sp->svc == CRYPTO_SVC_VERIFY
                             ? "Data or Digested Data"
                             : "Data");
    return 0;
}

/* The parameters: the request's structure, else the key's attribute. */
static int resolve_params(kmip_ctx_t *ctx, const svc_req_t *r, const kmip_obj_t *o,
                          crypto_params_t *p)
{
    const ttlv_item_t *cp = r->params;
    if (!cp && o) {
        kmip_attr_t *a = kmip_attr_get(o, "Cryptographic Parameters", 0);
        cp = a ? a->value : NULL;
    }
    kms_error_t err;
    if (crypto_params_parse(cp, p, &err))
        return kmip_fail(ctx, err.reason ? err.reason : KMIP_RESULT_REASON_INVALID_FIELD, "%s",
                         kms_error_msg(&err));
    return 0;
}

static int crypto_err(kmip_ctx_t *ctx, int rc, const kms_error_t *err)
{
    uint32_t reason = err->reason ? err->reason : kmip_reason_of(rc);
    kmip_fail(ctx, reason, "%s", kms_error_msg(err));
    return rc < 0 ? rc : KMS_ERR_INVAL;
}

/* Would this run be too heavy for an event loop? */
static bool heavy(const svc_spec_t *sp, const crypto_key_t *key, size_t in_len)
{
    if (in_len > KMIP_CRYPTO_INLINE_MAX)
        return true;
    if (!key->pkey)
        return false;
    if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_RSA)
        return EVP_PKEY_get_bits(key->pkey) > 256; /* ECDSA beyond P-256 */
    return sp->svc == CRYPTO_SVC_DECRYPT || sp->svc == CRYPTO_SVC_SIGN; /* private-key RSA */
}

/* Append the answer of a finished or partial run. */
static int answer(kmip_ctx_t *ctx, const svc_spec_t *sp, const char *uid, const kms_buf_t *out,
                  const uint8_t *iv, size_t iv_len, const uint8_t *corr, bool finished,
                  const crypto_final_t *fin)
{
    kms_arena_t *a = ctx->arena;
    ttlv_item_t *rp = ctx->resp_payload;
    if (uid && !ttlv_new_textz(a, rp, KMIP_TAG_UNIQUE_IDENTIFIER, uid))
        return KMS_ERR_NOMEM;
    bool verify = sp->svc == CRYPTO_SVC_VERIFY || sp->svc == CRYPTO_SVC_MAC_VERIFY;
    if (verify && finished &&
        !ttlv_new_enum(a, rp, KMIP_TAG_VALIDITY_INDICATOR,
                       fin->valid ? KMIP_VALIDITY_INDICATOR_VALID : KMIP_VALIDITY_INDICATOR_INVALID))
        return KMS_ERR_NOMEM;
    uint32_t out_tag = sp->svc == CRYPTO_SVC_SIGN ? KMIP_TAG_SIGNATURE_DATA
                       : sp->svc == CRYPTO_SVC_MAC ? KMIP_TAG_MAC_DATA
                                                   : KMIP_TAG_DATA;
    bool has_out = sp->svc == CRYPTO_SVC_ENCRYPT || sp->svc == CRYPTO_SVC_DECRYPT ||
                   (finished && !verify);
    if (has_out && !ttlv_new_bytes(a, rp, out_tag, out->data ? out->data : (const uint8_t *)"",
                                   out->len))
        return KMS_ERR_NOMEM;
    if (iv_len && !ttlv_new_bytes(a, rp, KMIP_TAG_IV_COUNTER_NONCE, iv, iv_len))
        return KMS_ERR_NOMEM;
    if (!finished && !ttlv_new_bytes(a, rp, KMIP_TAG_CORRELATION_VALUE, corr, KMIP_CORRELATION_LEN))
        return KMS_ERR_NOMEM;
    if (finished && fin->tag_out_len &&
        !ttlv_new_bytes(a, rp, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG, fin->tag_out, fin->tag_out_len))
        return KMS_ERR_NOMEM;
    return 0;
}

/* Feed this request's input to `op`, and finish it when asked. */
static int feed(kmip_ctx_t *ctx, const svc_spec_t *sp, crypto_op_t *op, const svc_req_t *r,
                bool finish, kms_buf_t *out, crypto_final_t *fin)
{
    kms_error_t err;
    const req_bytes_t *in = r->digested.present ? &r->digested : &r->data;
    int rc = kms_buf_reserve(out, in->len + 64);
    if (rc)
        return kmip_fail(ctx, KMIP_RESULT_REASON_RESPONSE_TOO_LARGE, "the output would be too large");
    if (in->present && (rc = crypto_op_update(op, in->p, in->len, out, &err)))
        return crypto_err(ctx, rc, &err);
    if (!finish)
        return 0;
    if (sp->check_tag && !r->check.present)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s missing",
                         ttlv_tag_name(sp->check_tag));
    fin->check = r->check.p;
    fin->check_len = r->check.len;
    fin->tag = r->tag.present ? r->tag.p : NULL;
    fin->tag_len = r->tag.len;
    if ((rc = crypto_op_final(op, out, fin, &err)))
        return crypto_err(ctx, rc, &err);
    return 0;
}

static int start_op(kmip_ctx_t *ctx, const svc_spec_t *sp, const svc_req_t *r,
                    const crypto_key_t *key, const crypto_params_t *p, crypto_op_t **op,
                    uint8_t iv[64], size_t *iv_len)
{
    kms_error_t err;
    crypto_start_t st = {
        .iv = r->iv.present ? r->iv.p : NULL,
        .iv_len = r->iv.len,
        .aad = r->aad.present ? r->aad.p : NULL,
        .aad_len = r->aad.len,
        .prehashed = r->digested.present,
    };
    int rc;
    *iv_len = 0;
    if (sp->svc != CRYPTO_SVC_ENCRYPT && sp->svc != CRYPTO_SVC_DECRYPT &&
        (st.aad || r->tag.present))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "authenticated-encryption fields apply to Encrypt and Decrypt");
    if (sp->svc != CRYPTO_SVC_DECRYPT && r->tag.present)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Authenticated Encryption Tag applies to Decrypt");
    switch (sp->svc) {
    case CRYPTO_SVC_ENCRYPT:
    case CRYPTO_SVC_DECRYPT:
        rc = crypto_cipher_start(sp->svc, key, p, &st, op, iv, iv_len, &err);
        break;
    case CRYPTO_SVC_SIGN:
    case CRYPTO_SVC_VERIFY:
        rc = crypto_sign_start(sp->svc, key, p, &st, op, &err);
        break;
    case CRYPTO_SVC_MAC:
    case CRYPTO_SVC_MAC_VERIFY:
        if (st.iv)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "a MAC takes no IV/Counter/Nonce");
        rc = crypto_mac_start(sp->svc, key, p, op, &err);
        break;
    default:
        if (st.iv)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Hash takes no IV/Counter/Nonce");
        rc = crypto_hash_start(p, op, &err);
    }
    return rc ? crypto_err(ctx, rc, &err) : 0;
}

static int run(kmip_ctx_t *ctx, const svc_spec_t *sp)
{
    svc_req_t r;
    kmip_obj_t *o = NULL;
    crypto_key_t key;
    crypto_params_t p;
    crypto_op_t *op = NULL;
    crypto_final_t fin;
    kms_buf_t out;
    uint8_t iv[64], corr[KMIP_CORRELATION_LEN];
    size_t iv_len = 0;
    char stream_key[64] = "";
    const char *uid = NULL;
    bool taken = false;
    int rc;

    memset(&key, 0, sizeof(key));
    memset(&fin, 0, sizeof(fin));
    kms_buf_init(&out, ctx->srv->cfg.max_response);
    if ((rc = parse_req(ctx, sp, &r)))
        goto out;
    bool streaming = r.corr.present || (r.init && !r.final);
    if (streaming && ctx->inline_only) {
        ctx->need_worker = true; /* streams change state that a re-run cannot undo */
        rc = KMS_ERR_AGAIN;
        goto out;
    }
    if (r.corr.present) {
        if ((rc = kmip_stream_peek(ctx, r.corr.p, r.corr.len, sp->operation, stream_key)))
            goto out;
        if (r.uid && strcmp(r.uid, stream_key) != 0) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                           "the Unique Identifier is not the stream's key");
            goto out;
        }
        uid = stream_key[0] ? stream_key : NULL;
    } else if (sp->types) {
        uid = r.uid ? r.uid : kmip_req_uid(ctx);
        if (!uid) {
            rc = KMS_ERR_INVAL;
            goto out;
        }
    }
    if (uid && (rc = kmip_crypto_key_load(ctx, uid, sp->types, sp->usage, sp->protect, &o, &key)))
        goto out;
    size_t in_len = r.digested.present ? r.digested.len : r.data.len;
    if (ctx->inline_only && heavy(sp, &key, in_len)) {
        ctx->need_worker = true;
        rc = KMS_ERR_AGAIN;
        goto out;
    }
    if (o && (rc = kmip_crypto_use(ctx, o, (int64_t)in_len, !r.corr.present)))
        goto out;
    if (r.corr.present) {
        /* Nothing below may ask for a worker: the stream is ours now. */
        if ((rc = kmip_stream_take(ctx, r.corr.p, r.corr.len, sp->operation, &op)))
            goto out;
        taken = true;
        memcpy(corr, r.corr.p, sizeof(corr));
        if (r.params || r.iv.present || r.aad.present || r.digested.present) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                           "parameters, IV, additional data and Digested Data belong to the "
                           "first part of a stream");
            goto out;
        }
    } else {
        if ((rc = resolve_params(ctx, &r, o, &p)) ||
            (rc = start_op(ctx, sp, &r, &key, &p, &op, iv, &iv_len)))
            goto out;
        if (streaming && !crypto_op_streamable(op)) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                           "this mechanism takes its input in one part only");
            goto out;
        }
    }
    bool finish = !streaming || r.final;
    if ((rc = feed(ctx, sp, op, &r, finish, &out, &fin)))
        goto out;
    if (!finish && !taken) {
        rc = kmip_stream_put(ctx, sp->operation, uid, op, corr);
        op = NULL; /* the table has it, or freed it */
        if (rc)
            goto out;
    } else if (!finish) {
        kmip_stream_return(ctx, corr, sp->operation, uid, op);
        op = NULL;
        taken = false;
    }
    rc = answer(ctx, sp, uid, &out, iv, iv_len, corr, finish, &fin);
out:
    if (taken)
        kmip_stream_return(ctx, corr, sp->operation, NULL, NULL); /* ends the stream */
    crypto_op_free(op);
    kmip_crypto_key_dispose(&key);
    kms_buf_dispose_wipe(&out);
    kms_wipe(&fin, sizeof(fin));
    return rc;
}

/* ------------------------------------------------------------- handlers */
int kmip_op_encrypt(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_ENCRYPT, CRYPTO_SVC_ENCRYPT,
                                  T(SYMMETRIC_KEY) | T(PUBLIC_KEY),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, true, 0};
    return run(ctx, &sp);
}

int kmip_op_decrypt(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_DECRYPT, CRYPTO_SVC_DECRYPT,
                                  T(SYMMETRIC_KEY) | T(PRIVATE_KEY),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT, false, 0};
    return run(ctx, &sp);
}

int kmip_op_sign(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_SIGN, CRYPTO_SVC_SIGN, T(PRIVATE_KEY),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN, true, 0};
    return run(ctx, &sp);
}

int kmip_op_signature_verify(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_SIGNATURE_VERIFY, CRYPTO_SVC_VERIFY,
                                  T(PUBLIC_KEY) | T(CERTIFICATE),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY, false,
                                  KMIP_TAG_SIGNATURE_DATA};
    return run(ctx, &sp);
}

int kmip_op_mac(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_MAC, CRYPTO_SVC_MAC,
                                  T(SYMMETRIC_KEY) | T(SECRET_DATA),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_GENERATE, true, 0};
    return run(ctx, &sp);
}

int kmip_op_mac_verify(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_MAC_VERIFY, CRYPTO_SVC_MAC_VERIFY,
                                  T(SYMMETRIC_KEY) | T(SECRET_DATA),
                                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_VERIFY, false,
                                  KMIP_TAG_MAC_DATA};
    return run(ctx, &sp);
}

int kmip_op_hash(kmip_ctx_t *ctx)
{
    static const svc_spec_t sp = {KMIP_OPERATION_HASH, CRYPTO_SVC_HASH, 0, 0, false, 0};
    return run(ctx, &sp);
}
