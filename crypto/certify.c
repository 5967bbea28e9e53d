/*
 * crypto/certify.c: certificates issued for KMIP Certify and Re-certify.
 *
 * Reads a client's certificate request (PKCS#10 in DER, or the same in
 * PEM; CRMF in crmf.c), checks its self-signature and key, and issues an X.509 v3
 * certificate for a public key under a CA the caller holds: subject from
 * the request (or the caller's name, or the certificate being renewed),
 * validity as the caller says, a random 128-bit serial, SHA-256 (no digest
 * for an Ed25519 CA). The extensions are chosen here, never copied
 * blindly: basicConstraints CA:FALSE (critical), subject and authority key
 * identifiers, the requested subjectAltName, keyUsage without the CA bits
 * and extendedKeyUsage without kmsd's cluster peer role. It deliberately
 * does not pick the CA, decide who may ask, or store anything: kmip/ does.
 * PGP requests are not read (Feature Not Supported): an OpenPGP
 * certification is not an X.509 certificate, and kmsd has no OpenPGP
 * certifying key (docs/kmip.md).
 */
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto_int.h"

/* kmsd's cluster peer role (certs/certs.h CERTS_PEER_ROLE_OID): a
 * certificate kmsd issues to a KMIP client never carries it. */
#define PEER_ROLE_OID "2.25.328670954439281658831151738066534397793"

/* A PKCS#10 request from DER (exactly) or PEM, unverified; NULL when the
 * bytes hold none. */
static X509_REQ *csr_read(bool pem, const uint8_t *p, size_t n)
{
    X509_REQ *csr = NULL;
    if (!pem) {
        const unsigned char *q = p;
        csr = d2i_X509_REQ(NULL, &q, (long)n);
        if (csr && q != p + n) {
            X509_REQ_free(csr);
            csr = NULL;
        }
    } else {
        BIO *bio = BIO_new_mem_buf(p, (int)n);
        csr = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    }
    ERR_clear_error();
    return csr;
}

int crypto_csr_parse(uint32_t req_type, const uint8_t *p, size_t n, X509_REQ **csr_out,
                     bool *pop_out, kms_error_t *err)
{
    bool pem = req_type == KMIP_CERTIFICATE_REQUEST_TYPE_PEM;
    X509_REQ *csr;
    EVP_PKEY *pk;

    *csr_out = NULL;
    *pop_out = false;
    if (req_type == KMIP_CERTIFICATE_REQUEST_TYPE_PGP)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "PGP certificate requests are not supported: kmsd issues "
                                    "X.509 certificates only (PKCS#10, PEM or CRMF requests)");
    if (req_type != KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10 && !pem &&
        req_type != KMIP_CERTIFICATE_REQUEST_TYPE_CRMF)
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "unknown Certificate Request Type %u", req_type);
    if (n == 0 || n > (1u << 20))
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Certificate Request of %zu bytes", n);
    if (req_type == KMIP_CERTIFICATE_REQUEST_TYPE_CRMF)
        return crypto_crmf_parse(p, n, csr_out, pop_out, err);
    if (!(csr = csr_read(pem, p, n)))
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "the Certificate Request is not a %s certificate request",
                                    pem ? "PEM" : "DER PKCS#10");
    pk = X509_REQ_get0_pubkey(csr);
    if (!pk || X509_REQ_verify(csr, pk) != 1) {
        X509_REQ_free(csr);
        ERR_clear_error();
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "the Certificate Request's signature does not verify");
    }
    *csr_out = csr;
    *pop_out = true;
    return 0;
}

/* "CN=a, O=b" (RFC 2253 order, most significant last) as a name; escapes
 * and multi-valued RDNs are refused rather than guessed at. NULL when the
 * text is not such a name. */
static X509_NAME *name_from_text(const char *text)
{
    size_t n = strlen(text);
    char *copy = NULL, *save = NULL;
    X509_NAME *nm = NULL;
    bool ok = n > 0 && n <= 1024 && !strpbrk(text, "\\+\"#;<>") &&
              (copy = OPENSSL_strdup(text)) && (nm = X509_NAME_new());

    for (char *rdn = ok ? strtok_r(copy, ",", &save) : NULL; rdn && ok;
         rdn = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(rdn, '=');
        while (*rdn == ' ')
            rdn++;
        ok = eq && eq > rdn && eq[1];
        if (ok) {
            *eq = '\0';
            ok = X509_NAME_add_entry_by_txt(nm, rdn, MBSTRING_UTF8, (const unsigned char *)eq + 1,
                                            -1, 0, 0) == 1;
        }
    }
    OPENSSL_free(copy);
    ERR_clear_error();
    if (!ok) {
        X509_NAME_free(nm);
        return NULL;
    }
    return nm;
}

int crypto_name_parse(const uint8_t *der, size_t der_len, const char *text, X509_NAME **name_out,
                      kms_error_t *err)
{
    X509_NAME *nm = NULL;

    *name_out = NULL;
    if (der) {
        const unsigned char *q = der;
        nm = d2i_X509_NAME(NULL, &q, (long)der_len);
        if (nm && q != der + der_len) {
            X509_NAME_free(nm);
            nm = NULL;
        }
        ERR_clear_error();
    } else {
        nm = name_from_text(text);
    }
    if (!nm || X509_NAME_entry_count(nm) == 0) {
        X509_NAME_free(nm);
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    der ? "Subject Distinguished Name is not a DER Name"
                                        : "Certificate Subject Distinguished Name must be plain "
                                          "'KEY=value, ...' text");
    }
    *name_out = nm;
    return 0;
}

/* RSA of at least 2048 bits, EC on a named curve kmsd knows, Ed25519. */
static int key_acceptable(EVP_PKEY *pk, kms_error_t *err)
{
    uint32_t alg = 0, curve = 0;
    int32_t bits = 0;
    kms_error_t e = {0};

    if (EVP_PKEY_get_id(pk) == EVP_PKEY_ED25519)
        return 0;
    if (crypto_pkey_params(pk, &alg, &bits, &curve, &e) < 0 ||
        (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA && bits < 2048)) {
        kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                             "the key to certify must be RSA of 2048 bits or more, EC on a "
                             "named curve, or Ed25519");
        return KMS_ERR_INVAL;
    }
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ex = X509V3_EXT_nconf_nid(NULL, v3, nid, value);
    int ok = ex && X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : KMS_ERR_CRYPTO;
}

/* keyUsage as requested minus keyCertSign and cRLSign; a default from the
 * key type when nothing was requested. */
static int set_key_usage(X509 *x, X509V3_CTX *v3, const ASN1_BIT_STRING *req, EVP_PKEY *pk)
{
    static const struct { int bit; const char *name; } bits[] = {
        {0, "digitalSignature"}, {1, "nonRepudiation"}, {2, "keyEncipherment"},
        {3, "dataEncipherment"}, {4, "keyAgreement"},   {7, "encipherOnly"},
        {8, "decipherOnly"},
    };
    char buf[160] = "critical";
    size_t used = strlen(buf);
    bool any = false;

    if (req) {
        for (size_t i = 0; i < KMS_ARRAY_SIZE(bits); i++) {
            if (!ASN1_BIT_STRING_get_bit(req, bits[i].bit))
                continue;
            int n = snprintf(buf + used, sizeof buf - used, ",%s", bits[i].name);
            if (n < 0 || (size_t)n >= sizeof buf - used)
                return KMS_ERR_LIMIT;
            used += (size_t)n;
            any = true;
        }
    }
    if (!any)
        snprintf(buf, sizeof buf, "critical,digitalSignature%s",
                 EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA ? ",keyEncipherment" : "");
    return add_ext(x, v3, NID_key_usage, buf);
}

/* extendedKeyUsage as requested, without kmsd's peer role. */
static int set_eku(X509 *x, EXTENDED_KEY_USAGE *req)
{
    EXTENDED_KEY_USAGE *out = NULL;
    int rc = 0;

    if (!req || sk_ASN1_OBJECT_num(req) == 0)
        return 0;
    if (!(out = sk_ASN1_OBJECT_new_null()))
        return KMS_ERR_NOMEM;
    for (int i = 0; i < sk_ASN1_OBJECT_num(req); i++) {
        ASN1_OBJECT *o = sk_ASN1_OBJECT_value(req, i);
        char txt[128];
        if (OBJ_obj2txt(txt, sizeof txt, o, 1) > 0 && strcmp(txt, PEER_ROLE_OID) == 0)
            continue;
        ASN1_OBJECT *d = OBJ_dup(o);
        if (!d || !sk_ASN1_OBJECT_push(out, d)) {
            ASN1_OBJECT_free(d);
            rc = KMS_ERR_NOMEM;
            goto out;
        }
    }
    if (sk_ASN1_OBJECT_num(out) > 0 && !X509_add1_ext_i2d(x, NID_ext_key_usage, out, 0, 0))
        rc = KMS_ERR_CRYPTO;
out:
    sk_ASN1_OBJECT_pop_free(out, ASN1_OBJECT_free);
    return rc;
}

/* Extension `nid` (decoded) of the request or of the previous certificate. */
static void *wanted_ext(const crypto_issue_t *in, STACK_OF(X509_EXTENSION) *req_exts, int nid)
{
    if (req_exts)
        return X509V3_get_d2i(req_exts, nid, NULL, NULL);
    if (in->previous)
        return X509_get_ext_d2i(in->previous, nid, NULL, NULL);
    return NULL;
}

static int set_serial(X509 *x)
{
    unsigned char r[16];
    BIGNUM *bn = NULL;
    int rc = KMS_ERR_CRYPTO;

    if (RAND_bytes(r, sizeof r) != 1)
        return rc;
    r[0] &= 0x7f; /* positive */
    r[0] |= 0x40; /* and exactly 16 bytes long */
    if ((bn = BN_bin2bn(r, sizeof r, NULL)) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        rc = 0;
    BN_free(bn);
    return rc;
}

int crypto_cert_issue(const crypto_issue_t *in, kms_secret_t **der_out, kms_error_t *err)
{
    STACK_OF(X509_EXTENSION) *req_exts = NULL;
    ASN1_BIT_STRING *ku = NULL;
    EXTENDED_KEY_USAGE *eku = NULL;
    GENERAL_NAMES *san = NULL;
    const X509_NAME *subject = in->subject;
    X509 *x = NULL;
    X509V3_CTX v3;
    unsigned char *der = NULL;
    int len, rc;

    *der_out = NULL;
    if (!in->ca || !in->ca_key || !in->pubkey) {
        rc = KMS_ERR_INVAL;
        goto out;
    }
    if ((rc = key_acceptable(in->pubkey, err)) < 0)
        goto out;
    if (in->not_after <= in->not_before) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "the certificate would end before it starts");
        goto out;
    }
    if (in->csr) {
        /* The request's subject, unless it names none (a CRMF
         * CertTemplate may leave it to the CA): then the caller's. */
        if (X509_NAME_entry_count(X509_REQ_get_subject_name(in->csr)) > 0 || !subject)
            subject = X509_REQ_get_subject_name(in->csr);
        req_exts = X509_REQ_get_extensions(in->csr);
    } else if (!subject && in->previous) {
        subject = X509_get_subject_name(in->previous);
    }
    if (!subject || X509_NAME_entry_count(subject) == 0) {
        rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                  "the certificate needs a subject: a Certificate Request or a "
                                  "Certificate Subject / X.509 Certificate Subject attribute");
        goto out;
    }
    rc = KMS_ERR_CRYPTO;
    ERR_clear_error();
    if (!(x = X509_new()) || !X509_set_version(x, 2) || set_serial(x) != 0 ||
        !X509_set_subject_name(x, subject) ||
        !X509_set_issuer_name(x, X509_get_subject_name(in->ca)) ||
        !X509_set_pubkey(x, in->pubkey) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)in->not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)in->not_after))
        goto out;
    X509V3_set_ctx(&v3, in->ca, x, NULL, NULL, 0);
    if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
        goto out;
    ku = wanted_ext(in, req_exts, NID_key_usage);
    eku = wanted_ext(in, req_exts, NID_ext_key_usage);
    san = wanted_ext(in, req_exts, NID_subject_alt_name);
    if (set_key_usage(x, &v3, ku, in->pubkey) || set_eku(x, eku) ||
        (san && !X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, 0)))
        goto out;
    if (!X509_sign(x, in->ca_key,
                   EVP_PKEY_get_id(in->ca_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()))
        goto out;
    if ((len = i2d_X509(x, &der)) <= 0)
        goto out;
    if (!(*der_out = kms_secret_dup(der, (size_t)len))) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    rc = 0;
out:
    if (rc == KMS_ERR_CRYPTO && err && err->code == 0)
        kms_error_set_reason(err, rc, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                             "the certificate could not be made");
    ERR_clear_error();
    OPENSSL_free(der);
    GENERAL_NAMES_free(san);
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_BIT_STRING_free(ku);
    sk_X509_EXTENSION_pop_free(req_exts, X509_EXTENSION_free);
    X509_free(x);
    return rc;
}

int crypto_cert_validity(const uint8_t *der, size_t len, int64_t *not_before_out,
                         int64_t *not_after_out)
{
    X509 *x = crypto_cert_d2i(der, len);
    struct tm tb, ta;
    int rc = KMS_ERR_PROTO;

    if (x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tb) &&
        ASN1_TIME_to_tm(X509_get0_notAfter(x), &ta)) {
        *not_before_out = (int64_t)timegm(&tb);
        *not_after_out = (int64_t)timegm(&ta);
        rc = 0;
    }
    X509_free(x);
    return rc;
}
