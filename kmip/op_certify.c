/*
 * kmip/op_certify.c: the Certify and Re-certify operations (KMIP 1.4
 * sections 4.7 and 4.8).
 *
 * Certify makes a Certificate object for a managed Public Key (Unique
 * Identifier or ID Placeholder) and/or a client's PKCS#10 or CRMF request
 * (a CRMF request without a signature proof of possession only for a
 * managed key), signed by the server's issuing CA
 * (kmip_config_t.certify_ca, a CA kmsd does not trust for its own
 * clients: docs/security.md). The request's subject wins
 * over the Template-Attribute's Certificate Subject / X.509 Certificate
 * Subject; the X.509 validity runs from the template's Activation Date
 * (default now) to its Deactivation Date (default certify_days later). The
 * certificate object starts Pre-Active unless the template gives it an
 * Activation Date, as any new object (and as the KMIP 1.1 test case 13.4
 * expects: it is destroyed without being revoked). Links: Public Key Link
 * on the certificate, a Certificate Link on the key.
 *
 * Re-certify renews a certificate for the same key: the new one takes the
 * old one's subject and extensions (or the new request's, whose key must
 * be the same), its client attributes and Name (kmip_rekey_derive /
 * kmip_rekey_retire, as Re-key does, with its date rules), Replaced /
 * Replacement Object Links, and the key's Certificate Link moves to it.
 * The X.509 validity starts at now + Offset (now without one) unless the
 * template names an Activation Date, and lasts as long as the old one's.
 *
 * Each operation writes the new certificate first and then the other
 * objects' links (separate commits): a failure in between leaves a valid
 * certificate whose back links are missing, never a link to nothing.
 * It does not implement PGP requests (kmsd issues X.509 only), or
 * certificates for keys the server does not accept (RSA below 2048 bits).
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define CERTIFY_DEFAULT_DAYS 365

/* What the request says besides the Template-Attribute's plain attributes. */
typedef struct certify_req {
    X509_REQ *csr;               /* parsed Certificate Request, or NULL */
    bool pop;                    /* ... whose key's possession it proved */
    X509_NAME *subject;          /* Certificate Subject from the template, or NULL */
    ttlv_item_t *tmpl;           /* the Template-Attribute without the above, or NULL */
    bool tmpl_activation;        /* the template names an Activation Date */
    bool tmpl_deactivation;      /* ... a Deactivation Date */
} certify_req_t;

static void certify_req_dispose(certify_req_t *r)
{
    X509_REQ_free(r->csr);
    X509_NAME_free(r->subject);
}

static int fail_from(kmip_ctx_t *ctx, int rc, const kms_error_t *e)
{
    if (e->reason)
        return kmip_fail(ctx, e->reason, "%s", e->msg);
    return rc;
}

static int certify_ca(kmip_ctx_t *ctx)
{
    if (!ctx->srv->cfg.certify_ca || !ctx->srv->cfg.certify_ca_key)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED,
                         "this server has no issuing CA (certify.ca in kmsd.yaml)");
    return 0;
}

/* The subject named by a Certificate Subject (text) or X.509 Certificate
 * Subject (DER) attribute value. */
static int template_subject(kmip_ctx_t *ctx, const char *name, const ttlv_item_t *v,
                            X509_NAME **out)
{
    kms_error_t e = {0};
    const ttlv_item_t *dn;
    int rc;

    if (strcmp(name, "X.509 Certificate Subject") == 0) {
        dn = v && v->type == TTLV_STRUCTURE ? ttlv_find(v, KMIP_TAG_SUBJECT_DISTINGUISHED_NAME)
                                            : NULL;
        if (!dn || dn->type != TTLV_BYTE_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "X.509 Certificate Subject needs a Subject Distinguished Name");
        rc = crypto_name_parse(dn->v.bytes.ptr, dn->v.bytes.len, NULL, out, &e);
    } else {
        dn = v && v->type == TTLV_STRUCTURE
                 ? ttlv_find(v, KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME)
                 : NULL;
        if (!dn || dn->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Certificate Subject needs a Certificate Subject Distinguished "
                             "Name");
        rc = crypto_name_parse(NULL, 0, ttlv_text(dn), out, &e);
    }
    return rc < 0 ? fail_from(ctx, rc, &e) : 0;
}

/* Parse the request fields both operations share. */
static int certify_req_read(kmip_ctx_t *ctx, certify_req_t *r)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *crt = ttlv_find(p, KMIP_TAG_CERTIFICATE_REQUEST_TYPE);
    const ttlv_item_t *crq = ttlv_find(p, KMIP_TAG_CERTIFICATE_REQUEST);
    const ttlv_item_t *ta = ttlv_find(p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    kms_error_t e = {0};
    int rc;

    memset(r, 0, sizeof *r);
    if (crq) {
        if (crq->type != TTLV_BYTE_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Certificate Request must be a Byte String");
        if (!crt || crt->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "a Certificate Request needs its Certificate Request Type");
        rc = crypto_csr_parse(ttlv_u32(crt), crq->v.bytes.ptr, crq->v.bytes.len, &r->csr,
                              &r->pop, &e);
        if (rc < 0)
            return fail_from(ctx, rc, &e);
    } else if (crt) {
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Certificate Request Type without a Certificate Request");
    }
    if (!ta)
        return 0;
    if (!(r->tmpl = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_TEMPLATE_ATTRIBUTE)))
        return KMS_ERR_NOMEM;
    for (const ttlv_item_t *c = ta->first; c; c = c->next) {
        const ttlv_item_t *n = c->tag == KMIP_TAG_ATTRIBUTE ? ttlv_find(c, KMIP_TAG_ATTRIBUTE_NAME)
                                                             : NULL;
        const char *name = n && n->type == TTLV_TEXT_STRING ? ttlv_text(n) : "";
        const ttlv_item_t *v = c->tag == KMIP_TAG_ATTRIBUTE
                                   ? ttlv_find(c, KMIP_TAG_ATTRIBUTE_VALUE) : NULL;
        ttlv_item_t *copy;

        if (strcmp(name, "Certificate Subject") == 0 ||
            strcmp(name, "X.509 Certificate Subject") == 0) {
            X509_NAME_free(r->subject);
            r->subject = NULL;
            if ((rc = template_subject(ctx, name, v, &r->subject)))
                return rc;
            continue;
        }
        if (strcmp(name, "Certificate Type") == 0) {
            if (!v || v->type != TTLV_ENUMERATION ||
                ttlv_u32(v) != KMIP_CERTIFICATE_TYPE_X_509)
                return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                 "kmsd issues X.509 certificates only");
            continue;
        }
        r->tmpl_activation |= strcmp(name, "Activation Date") == 0;
        r->tmpl_deactivation |= strcmp(name, "Deactivation Date") == 0;
        if (!(copy = ttlv_clone(ctx->arena, c)))
            return KMS_ERR_NOMEM;
        ttlv_append(r->tmpl, copy);
    }
    return 0;
}

/* The Linked Object Identifier of o's first Link of `type`, or NULL. */
static const char *link_of(const kmip_obj_t *o, uint32_t type, kmip_attr_t **attr_out)
{
    for (kmip_attr_t *a = o->attrs; a; a = a->next) {
        const ttlv_item_t *t, *id;
        if (strcmp(a->name, "Link") != 0 || !a->value || a->value->type != TTLV_STRUCTURE)
            continue;
        t = ttlv_find(a->value, KMIP_TAG_LINK_TYPE);
        id = ttlv_find(a->value, KMIP_TAG_LINKED_OBJECT_IDENTIFIER);
        if (t && id && ttlv_u32(t) == type && id->type == TTLV_TEXT_STRING) {
            if (attr_out)
                *attr_out = a;
            return ttlv_text(id);
        }
    }
    return NULL;
}

struct key_link {
    const char *old_cert;        /* the Certificate Link to move, or NULL: add one */
    const char *new_cert;
};

/* On the public key: point a Certificate Link at the new certificate. */
static int update_key(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out)
{
    struct key_link *u = arg;
    ttlv_item_t *v = kmip_link_value(ctx, KMIP_LINK_TYPE_CERTIFICATE_LINK, u->new_cert);
    (void)unchanged_out;

    if (!v)
        return KMS_ERR_NOMEM;
    if (u->old_cert) {
        for (kmip_attr_t *a = o->attrs; a; a = a->next) {
            const ttlv_item_t *t, *id;
            if (strcmp(a->name, "Link") != 0 || a->value->type != TTLV_STRUCTURE)
                continue;
            t = ttlv_find(a->value, KMIP_TAG_LINK_TYPE);
            id = ttlv_find(a->value, KMIP_TAG_LINKED_OBJECT_IDENTIFIER);
            if (t && id && ttlv_u32(t) == KMIP_LINK_TYPE_CERTIFICATE_LINK &&
                id->type == TTLV_TEXT_STRING && strcmp(ttlv_text(id), u->old_cert) == 0)
                return kmip_attr_set(ctx, o, "Link", a->index, v);
        }
    }
    return kmip_attr_add(ctx, o, "Link", v, NULL);
}

/* A key that may be certified: a Public Key, not archived, with material,
 * not compromised. */
static int load_public_key(kmip_ctx_t *ctx, const char *id, kmip_obj_t **o_out,
                           EVP_PKEY **pkey_out)
{
    const kms_secret_t *m = NULL;
    kms_error_t e = {0};
    kmip_obj_t *o = NULL;
    int rc;

    if ((rc = kmip_obj_load(ctx, id, &o)))
        return rc;
    if (o->object_type != KMIP_OBJECT_TYPE_PUBLIC_KEY)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                         "Certify certifies a Public Key; %s is a %s", id,
                         ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, o->object_type)
                             ? ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, o->object_type) : "?");
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "the key %s is archived", id);
    if (o->state == KMIP_STATE_COMPROMISED || o->state == KMIP_STATE_DESTROYED_COMPROMISED)
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "the key %s is compromised", id);
    if ((rc = kmip_obj_open_material(ctx, o, &m)))
        return rc;
    rc = crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_X_509, false, m->data, m->len, pkey_out, &e);
    if (rc < 0)
        return fail_from(ctx, rc, &e);
    *o_out = o;
    return 0;
}

/* Issue the certificate into the new object `n` and save it. */
static int issue_into(kmip_ctx_t *ctx, kmip_obj_t *n, crypto_issue_t *is, const char *key_id)
{
    crypto_material_t desc;
    kms_secret_t *der = NULL;
    kms_error_t e = {0};
    ttlv_item_t *v;
    int rc;

    memset(&desc, 0, sizeof desc);
    is->ca = ctx->srv->cfg.certify_ca;
    is->ca_key = ctx->srv->cfg.certify_ca_key;
    if ((rc = crypto_cert_issue(is, &der, &e)) < 0)
        return fail_from(ctx, rc, &e);
    desc.object_type = KMIP_OBJECT_TYPE_CERTIFICATE;
    desc.stored_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
    desc.registered_fmt = KMIP_KEY_FORMAT_TYPE_X_509;
    desc.sub_type = KMIP_CERTIFICATE_TYPE_X_509;
    (void)crypto_pkey_params(is->pubkey, &desc.alg, &desc.bits, &desc.curve, NULL);
    kmip_attr_remove_all(n, "Cryptographic Algorithm");
    kmip_attr_remove_all(n, "Cryptographic Length");
    if ((rc = kmip_obj_set_material(ctx, n, der, &desc)))
        return rc;
    if ((rc = kmip_cert_set_attrs(ctx, n, n->material, n->material->len)))
        return rc;
    if (key_id) {
        kmip_attr_t *a = NULL;
        if (!(v = kmip_link_value(ctx, KMIP_LINK_TYPE_PUBLIC_KEY_LINK, key_id)))
            return KMS_ERR_NOMEM;
        if (link_of(n, KMIP_LINK_TYPE_PUBLIC_KEY_LINK, &a) && a)
            rc = kmip_attr_set(ctx, n, "Link", a->index, v);
        else
            rc = kmip_attr_add(ctx, n, "Link", v, NULL);
        if (rc)
            return rc;
    }
    kmip_obj_eval_dates(ctx, n);
    return kmip_obj_save(ctx, n);
}

static int64_t validity_days(const kmip_ctx_t *ctx)
{
    uint32_t d = ctx->srv->cfg.certify_days;
    return (int64_t)(d ? d : CERTIFY_DEFAULT_DAYS) * 86400;
}

int kmip_op_certify(kmip_ctx_t *ctx)
{
    const ttlv_item_t *uid = ttlv_find(ctx->payload, KMIP_TAG_UNIQUE_IDENTIFIER);
    const char *key_id = NULL;
    certify_req_t r;
    crypto_issue_t is;
    kmip_obj_t *key = NULL, *n = NULL;
    EVP_PKEY *pkey = NULL;
    int64_t t;
    int rc;

    memset(&is, 0, sizeof is);
    if ((rc = certify_ca(ctx)))
        return rc;
    if ((rc = certify_req_read(ctx, &r)))
        goto out;
    if (uid && uid->type != TTLV_TEXT_STRING) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier must be text");
        goto out;
    }
    key_id = uid ? ttlv_text(uid) : (ctx->id_placeholder[0] ? ctx->id_placeholder : NULL);
    if (!key_id && !r.csr) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_MISSING_DATA,
                       "Certify needs the Public Key's Unique Identifier or a Certificate "
                       "Request");
        goto out;
    }
    if (!key_id && !r.pop) {
        /* A managed key is the tenant's already; a request alone must
         * show that its sender holds the private key. */
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                       "a CRMF request without a signature proof of possession is certified "
                       "only with the Unique Identifier of the Public Key it is for");
        goto out;
    }
    if (key_id) {
        if ((rc = load_public_key(ctx, key_id, &key, &pkey)))
            goto out;
        if (r.csr && EVP_PKEY_eq(X509_REQ_get0_pubkey(r.csr), pkey) != 1) {
            rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                           "the Certificate Request is for another key than %s", key_id);
            goto out;
        }
        key_id = key->id;
    }
    if ((rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_CERTIFICATE, &n)))
        goto out;
    if (key) /* the certificate belongs with the key, also when an admin asks */
        memcpy(n->tenant, key->tenant, sizeof n->tenant);
    if ((rc = kmip_attrs_apply_template(ctx, n, r.tmpl)))
        goto out;
    is.pubkey = pkey ? pkey : X509_REQ_get0_pubkey(r.csr);
    is.csr = r.csr;
    is.subject = r.subject;
    is.not_before = kmip_attr_get_date(n, "Activation Date", &t) == 0 ? t : ctx->now;
    is.not_after = kmip_attr_get_date(n, "Deactivation Date", &t) == 0
                       ? t : is.not_before + validity_days(ctx);
    if (!r.csr && !r.subject) {
        /* No subject given: the key's Name, as a CN. */
        const kmip_attr_t *nm = key ? kmip_attr_get(key, "Name", 0) : NULL;
        const ttlv_item_t *nv = nm ? ttlv_find(nm->value, KMIP_TAG_NAME_VALUE) : NULL;
        if (nv && nv->type == TTLV_TEXT_STRING) {
            r.subject = X509_NAME_new();
            if (!r.subject ||
                !X509_NAME_add_entry_by_txt(r.subject, "CN", MBSTRING_UTF8,
                                            (const unsigned char *)ttlv_text(nv), -1, -1, 0)) {
                rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                               "the key's Name cannot be a certificate subject");
                goto out;
            }
            is.subject = r.subject;
        }
    }
    if ((rc = issue_into(ctx, n, &is, key_id)))
        goto out;
    if (key) {
        struct key_link u = {.old_cert = NULL, .new_cert = n->id};
        if ((rc = kmip_obj_update(ctx, key_id, update_key, &u, NULL)))
            goto out;
    }
    rc = kmip_answer_id(ctx, n->id);
out:
    EVP_PKEY_free(pkey);
    certify_req_dispose(&r);
    return rc;
}

int kmip_op_recertify(kmip_ctx_t *ctx)
{
    const ttlv_item_t *off = ttlv_find(ctx->payload, KMIP_TAG_OFFSET);
    const kms_secret_t *m = NULL;
    const char *uid, *key_id;
    certify_req_t r;
    crypto_issue_t is;
    kmip_obj_t *old = NULL, *n = NULL;
    X509 *prev = NULL;
    EVP_PKEY *pkey = NULL;
    int64_t nb0 = 0, na0 = 0, t;
    int rc;

    memset(&is, 0, sizeof is);
    memset(&r, 0, sizeof r);
    if ((rc = certify_ca(ctx)))
        return rc;
    if (!(uid = kmip_req_uid(ctx)))
        return KMS_ERR_INVAL;
    if ((rc = certify_req_read(ctx, &r)))
        goto out;
    if ((rc = kmip_obj_load(ctx, uid, &old)))
        goto out;
    if (old->object_type != KMIP_OBJECT_TYPE_CERTIFICATE) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_ILLEGAL_OPERATION,
                       "Re-certify renews a Certificate; %s is not one", uid);
        goto out;
    }
    if (old->state == KMIP_STATE_COMPROMISED || old->state == KMIP_STATE_DESTROYED_COMPROMISED) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                       "the certificate %s is compromised", uid);
        goto out;
    }
    if ((rc = kmip_obj_open_material(ctx, old, &m)))
        goto out;
    {
        const unsigned char *q = m->data;
        prev = d2i_X509(NULL, &q, (long)m->len);
    }
    if (!prev || !(pkey = X509_get_pubkey(prev)) ||
        crypto_cert_validity(m->data, m->len, &nb0, &na0) < 0) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                       "the stored certificate %s does not parse", uid);
        goto out;
    }
    if (r.csr && EVP_PKEY_eq(X509_REQ_get0_pubkey(r.csr), pkey) != 1) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                       "Re-certify renews the certificate of the same key; the Certificate "
                       "Request is for another key");
        goto out;
    }
    if ((rc = kmip_rekey_derive(ctx, old, r.tmpl, off, &n)))
        goto out;
    is.pubkey = pkey;
    is.csr = r.csr;
    is.subject = r.subject;
    is.previous = prev;
    if (r.tmpl_activation && kmip_attr_get_date(n, "Activation Date", &t) == 0)
        is.not_before = t;
    else
        is.not_before = ctx->now + (off ? (int64_t)ttlv_u32(off) : 0);
    if (r.tmpl_deactivation && kmip_attr_get_date(n, "Deactivation Date", &t) == 0)
        is.not_after = t;
    else
        is.not_after = is.not_before + (na0 > nb0 ? na0 - nb0 : validity_days(ctx));
    key_id = link_of(old, KMIP_LINK_TYPE_PUBLIC_KEY_LINK, NULL);
    if ((rc = issue_into(ctx, n, &is, key_id)) || (rc = kmip_rekey_retire(ctx, old->id, n->id)))
        goto out;
    if (key_id) {
        struct key_link u = {.old_cert = old->id, .new_cert = n->id};
        rc = kmip_obj_update(ctx, key_id, update_key, &u, NULL);
        if (rc == KMS_ERR_NOTFOUND) {
            /* The key is gone (destroyed and erased): the certificate
             * still stands on its own. */
            kmip_fail_clear(ctx);
            rc = 0;
        }
        if (rc)
            goto out;
    }
    rc = kmip_answer_id(ctx, n->id);
out:
    X509_free(prev);
    EVP_PKEY_free(pkey);
    certify_req_dispose(&r);
    return rc;
}
