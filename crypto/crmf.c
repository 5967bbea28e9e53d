/*
 * crypto/crmf.c: CRMF certificate requests (RFC 4211) for KMIP Certify and
 * Re-certify, on OpenSSL's CRMF code.
 *
 * A KMIP Certificate Request of type CRMF is DER: CertReqMessages holding
 * exactly one CertReqMsg (a bare CertReqMsg is read too). OpenSSL parses
 * it (d2i_OSSL_CRMF_MSGS) and checks the proof of possession
 * (OSSL_CRMF_MSGS_verify_popo): a signature POP (POPOSigningKey) must
 * verify, and is then as good as a PKCS#10 self-signature. A message that
 * proves possession otherwise (raVerified, keyEncipherment, keyAgreement)
 * or not at all is read, with *pop_out false: kmip/ accepts it only for a
 * managed Public Key the requester names (the key is already the
 * tenant's; nobody is proving anything by a request alone).
 *
 * The result is an X509_REQ carrying the CertTemplate's subject, public
 * key and extensions (unsigned: a carrier for certify.c, which takes the
 * same fields from a PKCS#10 request). The template's other fields
 * (serialNumber, signingAlg, issuer, validity, unique ids) are the CA's to
 * choose and are ignored, as a CA does.
 *
 * OpenSSL 3.0 has no getter for the CertTemplate's publicKey
 * (OSSL_CRMF_CERTTEMPLATE_get0_publicKey came with 3.2), so the template
 * OpenSSL parsed is encoded again and read with an ASN.1 template of our
 * own that mirrors RFC 4211's CertTemplate; nothing is decoded by hand.
 */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "crypto/crypto_int.h"

/* RFC 4211 OptionalValidity and CertTemplate (IMPLICIT TAGS; Name and
 * Time are CHOICEs, hence explicit), as OpenSSL's crmf_asn.c declares
 * them. */
typedef struct crmf_validity_view {
    ASN1_TIME *not_before;
    ASN1_TIME *not_after;
} CRMF_VALIDITY_VIEW;

typedef struct crmf_template_view {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    X509_ALGOR *signing_alg;
    X509_NAME *issuer;
    CRMF_VALIDITY_VIEW *validity;
    X509_NAME *subject;
    X509_PUBKEY *public_key;
    ASN1_BIT_STRING *issuer_uid;
    ASN1_BIT_STRING *subject_uid;
    STACK_OF(X509_EXTENSION) *extensions;
} CRMF_TEMPLATE_VIEW;

ASN1_SEQUENCE(CRMF_VALIDITY_VIEW) = {
    ASN1_EXP_OPT(CRMF_VALIDITY_VIEW, not_before, ASN1_TIME, 0),
    ASN1_EXP_OPT(CRMF_VALIDITY_VIEW, not_after, ASN1_TIME, 1),
} static_ASN1_SEQUENCE_END(CRMF_VALIDITY_VIEW)

ASN1_SEQUENCE(CRMF_TEMPLATE_VIEW) = {
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, version, ASN1_INTEGER, 0),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, serial, ASN1_INTEGER, 1),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, signing_alg, X509_ALGOR, 2),
    ASN1_EXP_OPT(CRMF_TEMPLATE_VIEW, issuer, X509_NAME, 3),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, validity, CRMF_VALIDITY_VIEW, 4),
    ASN1_EXP_OPT(CRMF_TEMPLATE_VIEW, subject, X509_NAME, 5),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, public_key, X509_PUBKEY, 6),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, issuer_uid, ASN1_BIT_STRING, 7),
    ASN1_IMP_OPT(CRMF_TEMPLATE_VIEW, subject_uid, ASN1_BIT_STRING, 8),
    ASN1_IMP_SEQUENCE_OF_OPT(CRMF_TEMPLATE_VIEW, extensions, X509_EXTENSION, 9),
} static_ASN1_SEQUENCE_END(CRMF_TEMPLATE_VIEW)

/* The public key of a CertTemplate, or NULL when it has none. */
static EVP_PKEY *template_pubkey(const OSSL_CRMF_CERTTEMPLATE *tmpl)
{
    unsigned char *der = NULL;
    const unsigned char *q;
    CRMF_TEMPLATE_VIEW *view = NULL;
    EVP_PKEY *pk = NULL;
    int len = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der);

    if (len > 0) {
        q = der;
        view = (CRMF_TEMPLATE_VIEW *)ASN1_item_d2i(NULL, &q, len,
                                                   ASN1_ITEM_rptr(CRMF_TEMPLATE_VIEW));
    }
    if (view && view->public_key)
        pk = X509_PUBKEY_get(view->public_key);
    ASN1_item_free((ASN1_VALUE *)view, ASN1_ITEM_rptr(CRMF_TEMPLATE_VIEW));
    OPENSSL_free(der);
    return pk;
}

/* CertReqMessages, or one bare CertReqMsg, filling all of p[0..n). */
static OSSL_CRMF_MSGS *msgs_read(const uint8_t *p, size_t n)
{
    const unsigned char *q = p;
    OSSL_CRMF_MSGS *msgs = d2i_OSSL_CRMF_MSGS(NULL, &q, (long)n);
    OSSL_CRMF_MSG *one;

    if (msgs && q == p + n)
        return msgs;
    sk_OSSL_CRMF_MSG_pop_free(msgs, OSSL_CRMF_MSG_free);
    q = p;
    one = d2i_OSSL_CRMF_MSG(NULL, &q, (long)n);
    if (!one || q != p + n || !(msgs = sk_OSSL_CRMF_MSG_new_null()) ||
        !sk_OSSL_CRMF_MSG_push(msgs, one)) {
        OSSL_CRMF_MSG_free(one);
        sk_OSSL_CRMF_MSG_free(msgs);
        return NULL;
    }
    return msgs;
}

/* Whether the message's proof of possession is a verified signature (1),
 * absent or of a kind that proves nothing here (0), or a signature that
 * does not verify (-1). */
static int popo_check(const OSSL_CRMF_MSGS *msgs)
{
    unsigned long e;

    ERR_clear_error();
    /* OpenSSL 3.0 takes the index of the message in the sequence. */
    if (OSSL_CRMF_MSGS_verify_popo(msgs, 0, 0, NULL, NULL) == 1)
        return 1;
    e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_CRMF &&
        (ERR_GET_REASON(e) == CRMF_R_POPO_MISSING ||
         ERR_GET_REASON(e) == CRMF_R_POPO_RAVERIFIED_NOT_ACCEPTED ||
         ERR_GET_REASON(e) == CRMF_R_UNSUPPORTED_POPO_METHOD))
        return 0;
    return -1;
}

int crypto_crmf_parse(const uint8_t *p, size_t n, X509_REQ **req_out, bool *pop_out,
                      kms_error_t *err)
{
    OSSL_CRMF_MSGS *msgs = NULL;
    const OSSL_CRMF_CERTTEMPLATE *tmpl;
    const X509_NAME *subject;
    X509_EXTENSIONS *exts;
    EVP_PKEY *pk = NULL;
    X509_REQ *req = NULL;
    int pop, rc = KMS_ERR_NOMEM;

    *req_out = NULL;
    *pop_out = false;
    if (!(msgs = msgs_read(p, n))) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "the Certificate Request is not a DER CRMF request "
                                  "(CertReqMessages)");
        goto out;
    }
    if (sk_OSSL_CRMF_MSG_num(msgs) != 1) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "the CRMF request holds %d messages; Certify takes one",
                                  sk_OSSL_CRMF_MSG_num(msgs));
        goto out;
    }
    tmpl = OSSL_CRMF_MSG_get0_tmpl(sk_OSSL_CRMF_MSG_value(msgs, 0));
    if (!tmpl || !(pk = template_pubkey(tmpl))) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "the CRMF request's CertTemplate has no public key");
        goto out;
    }
    if ((pop = popo_check(msgs)) < 0) {
        rc = kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                  "the CRMF request's proof of possession (signature) does "
                                  "not verify");
        goto out;
    }
    subject = OSSL_CRMF_CERTTEMPLATE_get0_subject(tmpl);
    exts = OSSL_CRMF_CERTTEMPLATE_get0_extensions(tmpl);
    if (!(req = X509_REQ_new()) || !X509_REQ_set_pubkey(req, pk) ||
        (subject && !X509_REQ_set_subject_name(req, subject)) ||
        (exts && sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(req, exts)))
        goto out;
    *req_out = req;
    *pop_out = pop == 1;
    req = NULL;
    rc = 0;
out:
    ERR_clear_error();
    X509_REQ_free(req);
    EVP_PKEY_free(pk);
    sk_OSSL_CRMF_MSG_pop_free(msgs, OSSL_CRMF_MSG_free);
    return crypto_error_ensure(err, rc);
}
