/*
 * kmip/op_register.c: the Register operation.
 *
 * Accepts Symmetric Key, Private Key, Public Key, Secret Data, Certificate
 * (X.509), Opaque Object, Template, Split Key and PGP Key objects. The material is validated
 * and converted to its canonical stored form (crypto/keyformat_parse.c); the
 * format the client used is remembered so Get answers in it by default. A
 * wrapped Key Block is unwrapped with a managed AES key that is Active and
 * has Unwrap Key in its usage mask. Attributes of the Template-Attribute
 * must agree with what the material says (algorithm, length).
 * Certificates get the attributes derived from them (X.509 Certificate
 * Identifier/Subject/Issuer, the KMIP 1.0 text forms, Digital Signature
 * Algorithm, Certificate Type/Length).
 * A Key Block without a Key Value registers the key's metadata only (KMIP
 * 1.2 Key Value Present false; Key Value Location may say where the value
 * lives). Split Keys and PGP Keys are kept as their structure
 * (crypto/keyobj.c).
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

static int unwrap_lookup(void *arg, const char *key_id, kms_secret_t **kek_out, kms_error_t *e)
{
    kmip_ctx_t *ctx = arg;
    int rc = kmip_kek_load(ctx, key_id, KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY, kek_out, NULL);
    if (rc < 0 && ctx->err.reason)
        kms_error_set_reason(e, rc, ctx->err.reason, "%s", ctx->err.msg);
    return rc;
}

/* Reconcile the Template-Attribute's algorithm/length with the material. */
static int reconcile(kmip_ctx_t *ctx, kmip_obj_t *o, crypto_material_t *d, size_t material_len)
{
    uint32_t alg_t = 0;
    int32_t len_t = 0;
    bool has_alg = kmip_attr_get_enum(o, "Cryptographic Algorithm", &alg_t) == 0;
    bool has_len = kmip_attr_get_int(o, "Cryptographic Length", &len_t) == 0;

    switch (d->object_type) {
    case KMIP_OBJECT_TYPE_SYMMETRIC_KEY:
        if (d->alg == 0) {
            if (!has_alg)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Cryptographic Algorithm is required for a Symmetric Key");
            if (d->bits && d->bits != crypto_sym_bits(alg_t, material_len) &&
                (size_t)d->bits != material_len * 8)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Key Block Cryptographic Length %d does not match the Key "
                                 "Material", (int)d->bits);
            d->alg = alg_t;
            d->bits = crypto_sym_bits(alg_t, material_len);
            if (has_len && len_t != d->bits && (size_t)len_t != material_len * 8)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Cryptographic Length %d does not match the Key Material (%d)",
                                 (int)len_t, (int)d->bits);
            return 0;
        }
        if (has_alg && alg_t != d->alg)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Cryptographic Algorithm differs between the Key Block and the "
                             "Template-Attribute");
        if (has_len && len_t != d->bits && (size_t)len_t != material_len * 8)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Cryptographic Length differs between the Key Block and the "
                             "Template-Attribute");
        return 0;
    case KMIP_OBJECT_TYPE_PRIVATE_KEY:
    case KMIP_OBJECT_TYPE_PUBLIC_KEY:
        if (has_alg) {
            bool ok = d->alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA ? alg_t == d->alg
                                                                 : crypto_alg_is_ec(alg_t);
            if (!ok)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Cryptographic Algorithm does not match the key material");
            d->alg = alg_t;
        }
        if (has_len && len_t != d->bits)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Cryptographic Length %d does not match the key (%d bits)",
                             (int)len_t, (int)d->bits);
        return 0;
    case KMIP_OBJECT_TYPE_CERTIFICATE:
        /* Algorithm and length of the certified public key. */
        if (d->alg && has_alg &&
            !(alg_t == d->alg || (crypto_alg_is_ec(alg_t) && crypto_alg_is_ec(d->alg))))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Cryptographic Algorithm does not match the certified key");
        if (d->alg && has_alg)
            d->alg = alg_t;
        if (d->bits && has_len && len_t != d->bits)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Cryptographic Length does not match the certified key");
        return 0;
    default:
        /* Secret Data, Opaque Objects, Templates carry no algorithm of
         * their own; one stated by the client is kept. */
        return 0;
    }
}

/* Name attributes found inside a Template become the template object's. */
static int template_names(kmip_ctx_t *ctx, kmip_obj_t *o, const ttlv_item_t *tmpl)
{
    for (const ttlv_item_t *c = tmpl->first; c; c = c->next) {
        const char *name = NULL;
        uint32_t index = 0;
        ttlv_item_t *v = NULL;
        int rc = kmip_attr_parse(ctx, c, &name, &index, NULL, &v);
        if (rc < 0)
            return rc;
        if (strcmp(name, "Name") != 0)
            continue;
        if (!v || v->type != TTLV_STRUCTURE || !ttlv_find(v, KMIP_TAG_NAME_VALUE))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "a Template's Name needs a Name Value");
        if ((rc = kmip_attr_add(ctx, o, "Name", v, NULL)))
            return rc;
    }
    return 0;
}

int kmip_cert_set_attrs(kmip_ctx_t *ctx, kmip_obj_t *o, const kms_secret_t *der, size_t mlen)
{
    crypto_cert_attrs_t ca;
    int rc;

    if ((rc = kmip_attr_set_enum(ctx, o, "Certificate Type", KMIP_CERTIFICATE_TYPE_X_509)) ||
        (mlen <= INT32_MAX &&
         (rc = kmip_attr_set_int(ctx, o, "Certificate Length", (int32_t)mlen))))
        return rc;
    rc = crypto_cert_attrs(ctx->arena, der->data, der->len, &ca);
    if (rc < 0)
        return rc == KMS_ERR_PROTO ? kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                               "Certificate Value does not parse")
                                   : rc;
    if ((rc = kmip_attr_set(ctx, o, "X.509 Certificate Identifier", 0, ca.x509_identifier)) ||
        (rc = kmip_attr_set(ctx, o, "X.509 Certificate Subject", 0, ca.x509_subject)) ||
        (rc = kmip_attr_set(ctx, o, "X.509 Certificate Issuer", 0, ca.x509_issuer)) ||
        (rc = kmip_attr_set(ctx, o, "Certificate Identifier", 0, ca.identifier)) ||
        (rc = kmip_attr_set(ctx, o, "Certificate Subject", 0, ca.subject)) ||
        (rc = kmip_attr_set(ctx, o, "Certificate Issuer", 0, ca.issuer)))
        return rc;
    if (ca.sig_alg &&
        (rc = kmip_attr_set_enum(ctx, o, "Digital Signature Algorithm", ca.sig_alg)))
        return rc;
    return 0;
}

/* A key registered without its Key Value (KMIP 1.2): Key Value Present
 * false; the Key Block's algorithm and length become its attributes
 * unless the Template-Attribute states them. Get answers Key Value Not
 * Present. */
static int register_without_value(kmip_ctx_t *ctx, kmip_obj_t *o, const crypto_material_t *d)
{
    uint32_t alg;
    int32_t bits;
    int rc;

    if (d->alg && kmip_attr_get_enum(o, "Cryptographic Algorithm", &alg) != 0 &&
        (rc = kmip_attr_set_enum(ctx, o, "Cryptographic Algorithm", d->alg)))
        return rc;
    if (d->bits > 0 && kmip_attr_get_int(o, "Cryptographic Length", &bits) != 0 &&
        (rc = kmip_attr_set_int(ctx, o, "Cryptographic Length", d->bits)))
        return rc;
    if ((rc = kmip_attr_set_bool(ctx, o, "Key Value Present", false)) ||
        (rc = kmip_attr_set_int(ctx, o, "_kmsd.fmt", (int32_t)d->registered_fmt)))
        return rc;
    kmip_attr_remove_all(o, "Fresh");
    kmip_obj_eval_dates(ctx, o);
    if ((rc = kmip_obj_save(ctx, o)))
        return rc;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
        return KMS_ERR_NOMEM;
    kmip_set_created(ctx, o->id);
    return 0;
}

int kmip_op_register(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *ot = ttlv_find(p, KMIP_TAG_OBJECT_TYPE);
    const ttlv_item_t *obj;
    kms_secret_t *stored = NULL;
    crypto_material_t desc;
    kms_error_t e = {0};
    kmip_obj_t *o = NULL;
    uint32_t type, tag;
    size_t mlen;
    int rc;

    if (!ot || ot->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Register needs an Object Type");
    type = ttlv_u32(ot);
    tag = crypto_object_tag(type);
    if (tag == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "Object Type %s cannot be registered",
                         ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, type)
                             ? ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, type) : "(unknown)");
    obj = ttlv_find(p, tag);
    if (!obj)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Register payload lacks the %s object", ttlv_tag_name(tag));
    kmip_fail_clear(ctx);
    rc = crypto_object_parse(obj, type, unwrap_lookup, ctx, &stored, &desc, &e);
    if (rc < 0) {
        if (e.reason)
            return kmip_fail(ctx, e.reason, "%s", e.msg);
        return ctx->err.reason ? KMS_ERR_INVAL : rc;
    }
    kmip_ctx_own_secret(ctx, stored); /* NULL without a Key Value */
    rc = kmip_obj_new(ctx, type, &o);
    if (rc < 0)
        return rc;
    rc = kmip_attrs_apply_template(ctx, o, ttlv_find(p, KMIP_TAG_TEMPLATE_ATTRIBUTE));
    if (rc < 0)
        return rc;
    if (desc.no_key_value)
        return register_without_value(ctx, o, &desc);
    mlen = stored->len;
    if (type == KMIP_OBJECT_TYPE_TEMPLATE) {
        /* A Template's own Name travels inside it (KMIP 1.1 test case
         * 3.1.2): it names the template object for later Name references. */
        rc = template_names(ctx, o, obj);
        if (rc < 0)
            return rc;
    }
    rc = reconcile(ctx, o, &desc, mlen);
    if (rc < 0)
        return rc;
    if ((type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY || type == KMIP_OBJECT_TYPE_PRIVATE_KEY ||
         type == KMIP_OBJECT_TYPE_PUBLIC_KEY) &&
        (rc = kmip_key_policy_check(ctx, desc.alg, desc.bits, desc.curve)))
        return rc;
    /* The context already owns `stored`; set_material takes it again
     * (owning twice would double free), so hand it a copy. */
    {
        kms_secret_t *copy = kms_secret_dup(stored->data, stored->len);
        if (!copy)
            return KMS_ERR_NOMEM;
        rc = kmip_obj_set_material(ctx, o, copy, &desc);
        if (rc < 0)
            return rc;
    }
    if (type == KMIP_OBJECT_TYPE_CERTIFICATE) {
        rc = kmip_cert_set_attrs(ctx, o, stored, mlen);
        if (rc < 0)
            return rc;
    }
    if (type != KMIP_OBJECT_TYPE_TEMPLATE)
        kmip_obj_eval_dates(ctx, o);
    rc = kmip_obj_save(ctx, o);
    if (rc < 0)
        return rc;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, o->id))
        return KMS_ERR_NOMEM;
    kmip_set_created(ctx, o->id);
    return 0;
}
