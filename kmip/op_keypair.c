/*
 * kmip/op_keypair.c: the Create Key Pair operation.
 *
 * Generates an RSA (2048/3072/4096, e = 65537) or EC (P-256/P-384/P-521)
 * key pair on the calling worker thread, makes a Private Key and a Public
 * Key object from the Common / Private Key / Public Key Template-Attributes
 * (a specific template's attribute overrides the common one of the same
 * name), and links them to each other (Public Key Link on the private key,
 * Private Key Link on the public key). The ID Placeholder becomes the
 * private key's id. RSA keys answer Get in PKCS#1 by default, EC keys in
 * PKCS#8 / X.509. DSA and DH key pairs are not supported.
 */
#include <string.h>

#include "kmip/kmip_crypto.h"
#include "kmip/kmip_int.h"

/* Name of an Attribute structure, or NULL. */
static const char *attr_name(const ttlv_item_t *a)
{
    const ttlv_item_t *n = a->tag == KMIP_TAG_ATTRIBUTE ? ttlv_find(a, KMIP_TAG_ATTRIBUTE_NAME) : NULL;
    return n && n->type == TTLV_TEXT_STRING ? ttlv_text(n) : NULL;
}

static bool names_attr(const ttlv_item_t *tmpl, const char *name)
{
    if (!tmpl || !name)
        return false;
    for (const ttlv_item_t *c = tmpl->first; c; c = c->next) {
        const char *n = attr_name(c);
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* One Template-Attribute from the common one and a specific one. Template
 * references (Name) of both come first; common attributes that the
 * specific template also sets are dropped, except multi-valued ones. */
static int merge(kmip_ctx_t *ctx, const ttlv_item_t *common, const ttlv_item_t *specific,
                 ttlv_item_t **out)
{
    ttlv_item_t *m = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    const ttlv_item_t *src[2] = {common, specific};

    if (!m)
        return KMS_ERR_NOMEM;
    for (int pass = 0; pass < 2; pass++) /* pass 0: Names; pass 1: Attributes */
        for (int s = 0; s < 2; s++) {
            if (!src[s])
                continue;
            if (src[s]->type != TTLV_STRUCTURE)
                return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                                 "Template-Attribute must be a Structure");
            for (const ttlv_item_t *c = src[s]->first; c; c = c->next) {
                ttlv_item_t *cl;
                if ((pass == 0) != (c->tag == KMIP_TAG_NAME))
                    continue;
                if (pass == 1 && s == 0) {
                    const char *n = attr_name(c);
                    const kmip_attr_rule_t *r = kmip_attr_rule(n);
                    if (n && names_attr(specific, n) && !(r && (r->flags & KMIP_ATTR_MULTI)))
                        continue;
                }
                cl = ttlv_clone(ctx->arena, c);
                if (!cl)
                    return KMS_ERR_NOMEM;
                ttlv_append(m, cl);
            }
        }
    *out = m;
    return 0;
}

static int add_link(kmip_ctx_t *ctx, kmip_obj_t *o, uint32_t type, const char *id)
{
    ttlv_item_t *v = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!v || !ttlv_new_enum(ctx->arena, v, KMIP_TAG_LINK_TYPE, type) ||
        !ttlv_new_textz(ctx->arena, v, KMIP_TAG_LINKED_OBJECT_IDENTIFIER, id))
        return KMS_ERR_NOMEM;
    return kmip_attr_add(ctx, o, "Link", v, NULL);
}

/* Recommended Curve from a Cryptographic Domain Parameters attribute. */
static uint32_t curve_of(const kmip_obj_t *o)
{
    const kmip_attr_t *a = kmip_attr_get(o, "Cryptographic Domain Parameters", 0);
    const ttlv_item_t *c = a && a->value ? ttlv_find(a->value, KMIP_TAG_RECOMMENDED_CURVE) : NULL;
    return c && c->type == TTLV_ENUMERATION ? ttlv_u32(c) : 0;
}

int kmip_op_create_key_pair(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *common = ttlv_find(p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *tpriv = NULL, *tpub = NULL;
    kmip_obj_t *priv = NULL, *pub = NULL;
    kms_secret_t *sk = NULL, *pk = NULL;
    kmip_material_t dpriv, dpub;
    kmip_cerr_t e = {0};
    uint32_t alg = 0, alg2 = 0, curve, curve2, rcurve = 0;
    int32_t bits = 0, bits2 = 0, rbits = 0;
    int rc;

    if ((rc = merge(ctx, common, ttlv_find(p, KMIP_TAG_PRIVATE_KEY_TEMPLATE_ATTRIBUTE), &tpriv)) ||
        (rc = merge(ctx, common, ttlv_find(p, KMIP_TAG_PUBLIC_KEY_TEMPLATE_ATTRIBUTE), &tpub)))
        return rc;
    if ((rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_PRIVATE_KEY, &priv)) ||
        (rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_PUBLIC_KEY, &pub)))
        return rc;
    if ((rc = kmip_attrs_apply_template(ctx, priv, tpriv)) ||
        (rc = kmip_attrs_apply_template(ctx, pub, tpub)))
        return rc;

    /* Algorithm and size: from either object; both must agree. */
    bool a1 = kmip_attr_get_enum(priv, "Cryptographic Algorithm", &alg) == 0;
    bool a2 = kmip_attr_get_enum(pub, "Cryptographic Algorithm", &alg2) == 0;
    if (!a1 && !a2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Create Key Pair needs a Cryptographic Algorithm");
    if (a1 && a2 && alg != alg2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "private and public Cryptographic Algorithm differ");
    if (!a1)
        alg = alg2;
    bool l1 = kmip_attr_get_int(priv, "Cryptographic Length", &bits) == 0;
    bool l2 = kmip_attr_get_int(pub, "Cryptographic Length", &bits2) == 0;
    if (l1 && l2 && bits != bits2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "private and public Cryptographic Length differ");
    if (!l1)
        bits = l2 ? bits2 : 0;
    curve = curve_of(priv);
    curve2 = curve_of(pub);
    if (curve && curve2 && curve != curve2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "private and public Recommended Curve differ");
    if (!curve)
        curve = curve2;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA && !l1 && !l2)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "an RSA key pair needs a Cryptographic Length");
    rc = kmip_crypto_keypair_check(alg, bits, curve, &rcurve, &rbits, &e);
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "%s", e.msg);

    rc = kmip_crypto_keypair_generate(alg, rbits, rcurve, &sk, &pk, &e);
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "%s", e.msg);
    memset(&dpriv, 0, sizeof(dpriv));
    dpriv.object_type = KMIP_OBJECT_TYPE_PRIVATE_KEY;
    dpriv.stored_fmt = KMIP_KEY_FORMAT_TYPE_PKCS_8;
    dpriv.registered_fmt = alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA ? KMIP_KEY_FORMAT_TYPE_PKCS_1
                                                                   : KMIP_KEY_FORMAT_TYPE_PKCS_8;
    dpriv.alg = alg;
    dpriv.bits = rbits;
    dpriv.curve = rcurve;
    dpub = dpriv;
    dpub.object_type = KMIP_OBJECT_TYPE_PUBLIC_KEY;
    dpub.stored_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
    dpub.registered_fmt = alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA ? KMIP_KEY_FORMAT_TYPE_PKCS_1
                                                                  : KMIP_KEY_FORMAT_TYPE_X_509;
    /* set_material takes ownership of each secret, also on failure. */
    rc = kmip_obj_set_material(ctx, priv, sk, &dpriv);
    if (rc < 0) {
        kms_secret_free(pk);
        return rc;
    }
    if ((rc = kmip_obj_set_material(ctx, pub, pk, &dpub)))
        return rc;
    if ((rc = add_link(ctx, priv, KMIP_LINK_TYPE_PUBLIC_KEY_LINK, pub->id)) ||
        (rc = add_link(ctx, pub, KMIP_LINK_TYPE_PRIVATE_KEY_LINK, priv->id)))
        return rc;
    kmip_obj_eval_dates(ctx, priv);
    kmip_obj_eval_dates(ctx, pub);
    /* Public first: a private key never exists without its public half. */
    if ((rc = kmip_obj_save(ctx, pub)) || (rc = kmip_obj_save(ctx, priv)))
        return rc;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER,
                        priv->id) ||
        !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER,
                        pub->id))
        return KMS_ERR_NOMEM;
    kmip_set_placeholder(ctx, priv->id);
    return 0;
}
