/*
 * kmip/op_validate.c: the Validate operation (KMIP 1.4 section 4.24):
 * is one certificate chain valid, at the Validity Date or now?
 *
 * The chain is the request's Certificate structures (X.509, by value) and
 * the managed Certificates its Unique Identifiers name, in any order. The
 * specification leaves the trust anchors to the server; kmsd's are the
 * self-signed certificates among the named managed objects (the
 * requester's tenant registered them: its own trust decision) and the
 * server's issuing CA (certify.ca), so that certificates from Certify
 * validate. A root that comes only by value is checked but anchors
 * nothing: such a chain is at best Unknown. The checks themselves are
 * OpenSSL's (crypto/chain.c). What kmsd knows of revocation is the
 * objects' own: a named certificate that was revoked (a Revocation
 * Reason, or State Compromised) makes the chain Invalid.
 *
 * Names follow the tenant and operation-policy rules of every operation:
 * another tenant's id is Item Not Found. It does not fetch CRLs or ask
 * OCSP responders (kmsd makes no outbound connections), nor use the
 * Validity Date for anything but the X.509 validity periods.
 */
#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

/* A named certificate's DER, after the object checks. */
static int named_certificate(kmip_ctx_t *ctx, const ttlv_item_t *uid, crypto_chain_cert_t *c,
                             bool *revoked_out)
{
    const kms_secret_t *m = NULL;
    kmip_obj_t *o = NULL;
    int rc;

    if (uid->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier must be text");
    if ((rc = kmip_obj_load(ctx, ttlv_text(uid), &o)))
        return rc;
    if (o->object_type != KMIP_OBJECT_TYPE_CERTIFICATE)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                         "Validate checks Certificates; %s is not one", o->id);
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED,
                         "the certificate %s is archived", o->id);
    if (o->state == KMIP_STATE_DESTROYED)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                         "the certificate %s has been destroyed", o->id);
    if ((rc = kmip_obj_open_material(ctx, o, &m)))
        return rc;
    c->der = m->data;
    c->len = m->len;
    c->anchor = true;
    if (o->state == KMIP_STATE_COMPROMISED || o->state == KMIP_STATE_DESTROYED_COMPROMISED ||
        kmip_attr_get(o, "Revocation Reason", 0))
        *revoked_out = true;
    return 0;
}

int kmip_op_validate(kmip_ctx_t *ctx)
{
    crypto_chain_cert_t certs[CRYPTO_CHAIN_MAX];
    const ttlv_item_t *vd = ttlv_find(ctx->payload, KMIP_TAG_VALIDITY_DATE);
    uint32_t indicator = KMIP_VALIDITY_INDICATOR_INVALID;
    bool revoked = false;
    size_t n = 0;
    kms_error_t e = {0};
    int rc;

    if (vd && vd->type != TTLV_DATE_TIME)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Validity Date must be a Date-Time");
    for (const ttlv_item_t *c = ctx->payload->first; c; c = c->next) {
        if (c->tag != KMIP_TAG_CERTIFICATE && c->tag != KMIP_TAG_UNIQUE_IDENTIFIER)
            continue;
        if (n == CRYPTO_CHAIN_MAX)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "a chain of more than %d certificates", CRYPTO_CHAIN_MAX);
        if (c->tag == KMIP_TAG_UNIQUE_IDENTIFIER) {
            if ((rc = named_certificate(ctx, c, &certs[n], &revoked)))
                return rc;
        } else {
            if (crypto_cert_object_value(c, &certs[n].der, &certs[n].len, &e) < 0)
                return kmip_fail(ctx, e.reason, "%s", kms_error_msg(&e));
            certs[n].anchor = false;
        }
        n++;
    }
    if (n == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_MISSING_DATA,
                         "Validate needs the chain: Certificates and/or Unique Identifiers of "
                         "Certificate objects");
    rc = crypto_chain_validate(certs, n, ctx->srv->cfg.certify_ca, vd ? vd->v.i64 : ctx->now,
                               &indicator, &e);
    if (rc < 0)
        return e.reason ? kmip_fail(ctx, e.reason, "%s", kms_error_msg(&e)) : rc;
    if (revoked)
        indicator = KMIP_VALIDITY_INDICATOR_INVALID;
    return ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_VALIDITY_INDICATOR, indicator)
               ? 0
               : KMS_ERR_NOMEM;
}
