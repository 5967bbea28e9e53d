/*
 * kmip/op_crypto_derive.c: the Derive Key operation (KMIP 1.2 section
 * 4.6).
 *
 * The base object (the first Unique Identifier, or the ID Placeholder) is a
 * Symmetric Key or Secret Data with Derive Key in its usage mask, used
 * under the same State and date rules as any key that applies protection
 * (deriving is one, KMIP 1.4 section 3.22). A second Unique Identifier may
 * name Secret Data that supplies the Derivation Data when the request has
 * none. The bytes come from crypto_derive; the new Symmetric Key or Secret
 * Data gets the Template-Attribute's attributes (Cryptographic Length is
 * required, and Cryptographic Algorithm for a key), a Derivation Base
 * Object Link to its base(s), and each base gets a Derived Key Link to it.
 * Always on a worker thread: PBKDF2 is slow on purpose, and it makes more
 * than one write.
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define T(x) (1u << KMIP_OBJECT_TYPE_##x)
#define MAX_BASES 8

static int derived_link_cb(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    (void)unchanged_out;
    ttlv_item_t *v = kmip_link_value(ctx, KMIP_LINK_TYPE_DERIVED_KEY_LINK, arg);
    return v ? kmip_attr_add(ctx, o, "Link", v, NULL) : KMS_ERR_NOMEM;
}

/* Derivation Parameters -> crypto_derive_t. */
static int read_params(kmip_ctx_t *ctx, const ttlv_item_t *dp, crypto_derive_t *d)
{
    int rc;
    kms_error_t err;
    if (!dp || dp->type != TTLV_STRUCTURE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Derivation Parameters missing");
    if (crypto_params_parse(ttlv_find(dp, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS), &d->params, &err))
        return kmip_fail(ctx, err.reason ? err.reason : KMIP_RESULT_REASON_INVALID_FIELD, "%s",
                         kms_error_msg(&err));
    if ((rc = kmip_req_bytes(ctx, dp, KMIP_TAG_INITIALIZATION_VECTOR, &d->iv, &d->iv_len)) ||
        (rc = kmip_req_bytes(ctx, dp, KMIP_TAG_DERIVATION_DATA, &d->data, &d->data_len)) ||
        (rc = kmip_req_bytes(ctx, dp, KMIP_TAG_SALT, &d->salt, &d->salt_len)))
        return rc;
    const ttlv_item_t *ic = ttlv_find(dp, KMIP_TAG_ITERATION_COUNT);
    if (ic) {
        if (ic->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Iteration Count is not an Integer");
        d->iterations = ic->v.i32;
    }
    return 0;
}

int kmip_op_derive_key(kmip_ctx_t *ctx)
{
    const char *ids[MAX_BASES];
    size_t n_ids = 0;
    crypto_derive_t d;
    crypto_key_t base, extra;
    kmip_obj_t *bo = NULL, *xo = NULL, *n = NULL;
    kms_secret_t *out = NULL;
    kms_error_t err;
    int rc;

    memset(&d, 0, sizeof(d));
    memset(&base, 0, sizeof(base));
    memset(&extra, 0, sizeof(extra));
    if (ctx->inline_only) {
        ctx->need_worker = true;
        return KMS_ERR_AGAIN;
    }
    const ttlv_item_t *ot = ttlv_find(ctx->payload, KMIP_TAG_OBJECT_TYPE);
    if (!ot || ot->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Object Type missing");
    uint32_t type = ttlv_u32(ot);
    if (type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY && type != KMIP_OBJECT_TYPE_SECRET_DATA)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Derive Key makes a Symmetric Key or Secret Data");
    for (const ttlv_item_t *u = ttlv_find(ctx->payload, KMIP_TAG_UNIQUE_IDENTIFIER); u;
         u = ttlv_find_next(u, KMIP_TAG_UNIQUE_IDENTIFIER)) {
        if (u->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier is not a Text String");
        if (n_ids == MAX_BASES)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "at most %d Unique Identifiers",
                             MAX_BASES);
        ids[n_ids++] = ttlv_text(u);
    }
    if (n_ids == 0) {
        if (!(ids[0] = kmip_req_uid(ctx)))
            return KMS_ERR_INVAL;
        n_ids = 1;
    }
    if (n_ids > 2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "one base object, and at most one Secret Data for the Derivation Data");
    const ttlv_item_t *dm = ttlv_find(ctx->payload, KMIP_TAG_DERIVATION_METHOD);
    if (!dm || dm->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Derivation Method missing");
    d.method = ttlv_u32(dm);
    if ((rc = read_params(ctx, ttlv_find(ctx->payload, KMIP_TAG_DERIVATION_PARAMETERS), &d)))
        return rc;
    const ttlv_item_t *ta = ttlv_find(ctx->payload, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    if (!ta)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Template-Attribute missing");

    if ((rc = kmip_crypto_key_load(ctx, ids[0], T(SYMMETRIC_KEY) | T(SECRET_DATA),
                                   KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY, true, &bo, &base)))
        goto out;
    if (n_ids == 2) {
        if (d.data) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                           "Derivation Data given twice (in the parameters and as an object)");
            goto out;
        }
        if ((rc = kmip_crypto_key_load(ctx, ids[1], T(SECRET_DATA),
                                       KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY, true, &xo, &extra)))
            goto out;
        d.data = extra.raw;
        d.data_len = extra.raw_len;
    }

    if ((rc = kmip_obj_new(ctx, type, &n)) || (rc = kmip_attrs_apply_template(ctx, n, ta)))
        goto out;
    uint32_t alg = 0;
    int32_t bits = 0;
    size_t bytes = 0;
    if (kmip_attr_get_int(n, "Cryptographic Length", &bits) || bits <= 0 || bits % 8) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                       "Cryptographic Length (a positive multiple of 8) missing in the "
                       "Template-Attribute");
        goto out;
    }
    if (type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY) {
        if (kmip_attr_get_enum(n, "Cryptographic Algorithm", &alg)) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                           "Cryptographic Algorithm missing in the Template-Attribute");
            goto out;
        }
        if ((rc = crypto_sym_check(alg, bits, &bytes, &err))) {
            rc = kmip_fail(ctx, err.reason ? err.reason : KMIP_RESULT_REASON_INVALID_FIELD, "%s",
                           kms_error_msg(&err));
            goto out;
        }
    } else {
        bytes = (size_t)bits / 8;
        kmip_attr_remove_all(n, "Cryptographic Length"); /* Secret Data has none */
    }
    if ((rc = crypto_derive(&base, &d, bytes, &out, &err))) {
        rc = kmip_fail(ctx, err.reason ? err.reason : kmip_reason_of(rc), "%s", kms_error_msg(&err));
        goto out;
    }
    if (!kmip_attr_get(n, "Cryptographic Usage Mask", 0) &&
        (rc = kmip_attr_set_int(ctx, n, "Cryptographic Usage Mask",
                                type == KMIP_OBJECT_TYPE_SECRET_DATA
                                    ? KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY
                                    : KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT |
                                          KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT)))
        goto out;
    crypto_material_t desc = {
        .object_type = type,
        .stored_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
        .registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW,
        .alg = alg,
        .bits = type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ? bits : 0,
        .sub_type = type == KMIP_OBJECT_TYPE_SECRET_DATA ? KMIP_SECRET_DATA_TYPE_SEED : 0,
    };
    rc = kmip_obj_set_material(ctx, n, out, &desc);
    out = NULL; /* the context owns it now */
    if (rc)
        goto out;
    for (size_t i = 0; i < n_ids; i++) {
        ttlv_item_t *v = kmip_link_value(ctx, KMIP_LINK_TYPE_DERIVATION_BASE_OBJECT_LINK, ids[i]);
        if (!v) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        if ((rc = kmip_attr_add(ctx, n, "Link", v, NULL)))
            goto out;
    }
    kmip_obj_eval_dates(ctx, n);
    if ((rc = kmip_obj_save(ctx, n)))
        goto out;
    for (size_t i = 0; i < n_ids; i++)
        if ((rc = kmip_obj_update(ctx, ids[i], derived_link_cb, n->id, NULL)))
            goto out;
    kmip_set_created(ctx, n->id);
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, n->id))
        rc = KMS_ERR_NOMEM;
out:
    kms_secret_free(out);
    kmip_crypto_key_dispose(&base);
    kmip_crypto_key_dispose(&extra);
    return rc;
}
