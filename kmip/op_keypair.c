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
 * PKCS#8 / X.509. Re-key Key Pair is here too (end of file). DSA and DH
 * key pairs are not supported.
 */
#include <string.h>

#include "crypto/crypto.h"
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

/* Asked during an RSA generation: stop once the request's budget
 * (limits.request_time) is spent or its client has gone; the reason is
 * recorded in ctx->err. */
static bool keygen_stop(void *arg)
{
    return kmip_ctx_budget(arg, "key pair generation") != 0;
}

int kmip_op_create_key_pair(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *common = ttlv_find(p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *tpriv = NULL, *tpub = NULL;
    kmip_obj_t *priv = NULL, *pub = NULL;
    kms_secret_t *sk = NULL, *pk = NULL;
    crypto_material_t dpriv, dpub;
    kms_error_t e = {0};
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
    rc = crypto_keypair_check(alg, bits, curve, &rcurve, &rbits, &e);
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "%s", e.msg);
    if ((rc = kmip_key_policy_check(ctx, alg, rbits, rcurve)))
        return rc;

    rc = crypto_keypair_generate_until(alg, rbits, rcurve, keygen_stop, ctx, &sk, &pk, &e);
    if (rc == KMS_ERR_TIMEOUT)
        return rc; /* kmip_ctx_budget recorded why */
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
    kmip_set_created(ctx, priv->id);
    return 0;
}

/* The Linked Object Identifier of the first Link of `type`, or NULL. */
static const char *linked_id(const kmip_obj_t *o, uint32_t type)
{
    for (const kmip_attr_t *a = o->attrs; a; a = a->next) {
        const ttlv_item_t *t, *id;
        if (strcmp(a->name, "Link") != 0 || !a->value)
            continue;
        t = ttlv_find(a->value, KMIP_TAG_LINK_TYPE);
        id = ttlv_find(a->value, KMIP_TAG_LINKED_OBJECT_IDENTIFIER);
        if (t && id && t->type == TTLV_ENUMERATION && ttlv_u32(t) == type &&
            id->type == TTLV_TEXT_STRING)
            return ttlv_text(id);
    }
    return NULL;
}

/*
 * Re-key Key Pair (KMIP 1.1): a new key pair of the same algorithm, size
 * and curve replaces the private key named in the request and the public
 * key it links to, with the Re-key rules for attributes, dates and names
 * applied to each half (kmip_rekey_derive), Replaced/Replacement Object
 * Links between old and new of each half, and the new halves linked to
 * each other. Writes: new public, new private, then the two old keys.
 */
int kmip_op_rekey_key_pair(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *u = ttlv_find(p, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER);
    const ttlv_item_t *off = ttlv_find(p, KMIP_TAG_OFFSET);
    const ttlv_item_t *common = ttlv_find(p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    const char *uid, *pub_id;
    ttlv_item_t *tpriv = NULL, *tpub = NULL;
    kmip_obj_t *opriv = NULL, *opub = NULL, *npriv = NULL, *npub = NULL;
    kms_secret_t *sk = NULL, *pk = NULL;
    crypto_material_t dpriv, dpub;
    kms_error_t e = {0};
    uint32_t curve = 0;
    int32_t bits = 0;
    int rc;

    if (u && u->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Private Key Unique Identifier must be a Text String");
    uid = u ? ttlv_text(u) : (ctx->id_placeholder[0] ? ctx->id_placeholder : NULL);
    if (!uid)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "no Private Key Unique Identifier and no ID Placeholder");
    if ((rc = kmip_obj_load(ctx, uid, &opriv)))
        return rc;
    if (opriv->object_type != KMIP_OBJECT_TYPE_PRIVATE_KEY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Re-key Key Pair needs a Private Key");
    pub_id = linked_id(opriv, KMIP_LINK_TYPE_PUBLIC_KEY_LINK);
    if (!pub_id)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "the private key has no Public Key Link");
    if ((rc = kmip_obj_load(ctx, pub_id, &opub)))
        return rc;
    if (opub->object_type != KMIP_OBJECT_TYPE_PUBLIC_KEY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "the private key's Public Key Link does not name a Public Key");

    if ((rc = merge(ctx, common, ttlv_find(p, KMIP_TAG_PRIVATE_KEY_TEMPLATE_ATTRIBUTE), &tpriv)) ||
        (rc = merge(ctx, common, ttlv_find(p, KMIP_TAG_PUBLIC_KEY_TEMPLATE_ATTRIBUTE), &tpub)))
        return rc;
    if ((rc = kmip_rekey_derive(ctx, opriv, tpriv, off, &npriv)) ||
        (rc = kmip_rekey_derive(ctx, opub, tpub, off, &npub)))
        return rc;

    kmip_obj_material_desc(opriv, &dpriv);
    kmip_obj_material_desc(opub, &dpub);
    rc = crypto_keypair_check(dpriv.alg, dpriv.bits, dpriv.curve, &curve, &bits, &e);
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "cannot re-key this key pair: %s", e.msg);
    if ((rc = kmip_key_policy_check(ctx, dpriv.alg, bits, curve)))
        return rc;
    rc = crypto_keypair_generate_until(dpriv.alg, bits, curve, keygen_stop, ctx, &sk, &pk, &e);
    if (rc == KMS_ERR_TIMEOUT)
        return rc;
    if (rc < 0)
        return kmip_fail(ctx, e.reason, "%s", e.msg);
    dpriv.stored_fmt = KMIP_KEY_FORMAT_TYPE_PKCS_8;
    dpriv.bits = bits;
    dpriv.curve = curve;
    dpub.stored_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
    dpub.alg = dpriv.alg;
    dpub.bits = bits;
    dpub.curve = curve;
    rc = kmip_obj_set_material(ctx, npriv, sk, &dpriv);
    if (rc < 0) {
        kms_secret_free(pk);
        return rc;
    }
    if ((rc = kmip_obj_set_material(ctx, npub, pk, &dpub)))
        return rc;
    /* Link order as in KMIP 1.1 test case 13.3: the pair link first (index
     * 0), then the Replaced Object Link that kmip_rekey_derive added. */
    kmip_attr_remove_all(npriv, "Link");
    kmip_attr_remove_all(npub, "Link");
    if ((rc = add_link(ctx, npriv, KMIP_LINK_TYPE_PUBLIC_KEY_LINK, npub->id)) ||
        (rc = add_link(ctx, npriv, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK, opriv->id)) ||
        (rc = add_link(ctx, npub, KMIP_LINK_TYPE_PRIVATE_KEY_LINK, npriv->id)) ||
        (rc = add_link(ctx, npub, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK, opub->id)))
        return rc;
    kmip_obj_eval_dates(ctx, npriv);
    kmip_obj_eval_dates(ctx, npub);
    if ((rc = kmip_obj_save(ctx, npub)) || (rc = kmip_obj_save(ctx, npriv)) ||
        (rc = kmip_rekey_retire(ctx, opriv->id, npriv->id)) ||
        (rc = kmip_rekey_retire(ctx, opub->id, npub->id)))
        return rc;
    if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER,
                        npriv->id) ||
        !ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER,
                        npub->id))
        return KMS_ERR_NOMEM;
    kmip_set_created(ctx, npriv->id);
    return 0;
}
