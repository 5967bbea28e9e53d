/*
 * tests/unit/test_kmip_certify.c: Certify and Re-certify against a real
 * store and a real issuing CA made here with certs/.
 *
 * Checks the issued certificates with OpenSSL (signature by the CA,
 * subject, extensions: CA:FALSE, no peer role whatever the request asked),
 * PKCS#10, PEM and CRMF requests (signature proofs of possession, forged
 * ones, requests without one, for a managed key or alone),
 * the links between key, certificate and replacement, Re-certify's Offset,
 * every refusal's Result Reason, and Validate of an issued certificate
 * (the issuing CA is a trust anchor).
 */
#include "tests/unit/test_kmip_env.h"

#include <openssl/crmf.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

typedef struct cenv {
    kenv_t e;
    X509 *ca;
    EVP_PKEY *ca_key;
} cenv_t;

#define A (ce->e.a)

static int start_server(cenv_t *ce, bool with_ca)
{
    kmip_config_t c = {
        .store = ce->e.store,
        .keyring = ce->e.kr,
        .access = KMIP_ACCESS_OPEN,
        .vendor = "kmsd",
        .version = "test",
        .certify_ca = with_ca ? ce->ca : NULL,
        .certify_ca_key = with_ca ? ce->ca_key : NULL,
        .certify_days = 30,
    };
    kmip_server_free(ce->e.srv);
    ce->e.srv = NULL;
    return kmip_server_new(&c, &ce->e.srv);
}

static int setup(void **state)
{
    cenv_t *ce = calloc(1, sizeof *ce);
    if (!ce || kenv_setup(&ce->e, KMIP_ACCESS_OPEN) ||
        certs_key_new(CERTS_KEY_EC_P256, &ce->ca_key) ||
        certs_create_ca(ce->ca_key, "kmsd issuing CA (test)", 0, &ce->ca) ||
        start_server(ce, true))
        return -1;
    *state = ce;
    return 0;
}

static int teardown(void **state)
{
    cenv_t *ce = *state;
    kenv_teardown(&ce->e);
    X509_free(ce->ca);
    EVP_PKEY_free(ce->ca_key);
    free(ce);
    return 0;
}

/* Create Key Pair (EC P-256) named `name`; the public key's id. */
static const char *make_pair(cenv_t *ce, const char *name, const char **priv_out)
{
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_CREATE_KEY_PAIR);
    ttlv_item_t *ct = ttlv_new_struct(A, p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(&ce->e, ct, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA);
    rq_attr_int(&ce->e, ct, "Cryptographic Length", 256);
    ttlv_item_t *pt = ttlv_new_struct(A, p, KMIP_TAG_PUBLIC_KEY_TEMPLATE_ATTRIBUTE);
    if (name)
        rq_attr_name(&ce->e, pt, name);
    ttlv_item_t *bi = rs_item(kenv_call(&ce->e, m), 0);
    assert_ok(bi);
    ttlv_item_t *pub = ttlv_find(rs_payload(bi), KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER);
    if (priv_out)
        *priv_out = ttlv_text(ttlv_find(rs_payload(bi), KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER));
    return ttlv_text(pub);
}

/* A PKCS#10 request for `key`, CN=`cn`, asking for the peer role, CA:TRUE
 * and a DNS name. */
static unsigned char *make_csr(EVP_PKEY *key, const char *cn, bool break_sig, int *len_out)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *nm = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_REQ_set_subject_name(req, nm);
    X509_REQ_set_pubkey(req, key);
    sk_X509_EXTENSION_push(exts, X509V3_EXT_nconf_nid(NULL, &v3, NID_ext_key_usage,
                                                      "clientAuth," CERTS_PEER_ROLE_OID));
    sk_X509_EXTENSION_push(exts, X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints,
                                                      "critical,CA:TRUE"));
    sk_X509_EXTENSION_push(exts, X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name,
                                                      "DNS:app.example.com"));
    X509_REQ_add_extensions(req, exts);
    X509_REQ_sign(req, key, EVP_sha256());
    if (break_sig) {
        const ASN1_BIT_STRING *sig = NULL;
        X509_REQ_get0_signature(req, &sig, NULL);
        ((ASN1_BIT_STRING *)sig)->data[4] ^= 0x55;
    }
    unsigned char *der = NULL;
    *len_out = i2d_X509_REQ(req, &der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(nm);
    X509_REQ_free(req);
    return der;
}

static ttlv_item_t *certify(cenv_t *ce, const char *uid, uint32_t crt, const void *csr,
                            size_t csr_len, const char *subject_dn, const char *name)
{
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_CERTIFY);
    if (uid)
        rq_uid(&ce->e, p, uid);
    if (crt)
        ttlv_new_enum(A, p, KMIP_TAG_CERTIFICATE_REQUEST_TYPE, crt);
    if (csr)
        ttlv_new_bytes(A, p, KMIP_TAG_CERTIFICATE_REQUEST, csr, csr_len);
    if (subject_dn || name) {
        ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
        if (subject_dn) {
            ttlv_item_t *v = ttlv_new_struct(A, rq_attr(&ce->e, ta, "Certificate Subject"),
                                             KMIP_TAG_ATTRIBUTE_VALUE);
            ttlv_new_textz(A, v, KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME, subject_dn);
        }
        if (name)
            rq_attr_name(&ce->e, ta, name);
    }
    return rs_item(kenv_call(&ce->e, m), 0);
}

/* Get of a certificate: its X509 (asserted). */
static X509 *get_cert(cenv_t *ce, const char *id)
{
    ttlv_item_t *bi = k_op_uid(&ce->e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    ttlv_item_t *c = ttlv_find(rs_payload(bi), KMIP_TAG_CERTIFICATE);
    assert_non_null(c);
    ttlv_item_t *v = ttlv_find(c, KMIP_TAG_CERTIFICATE_VALUE);
    assert_non_null(v);
    const unsigned char *q = v->v.bytes.ptr;
    X509 *x = d2i_X509(NULL, &q, (long)v->v.bytes.len);
    assert_non_null(x);
    return x;
}

/* The id a Link of `type` of object `id` points at, or NULL. */
static const char *link_to(cenv_t *ce, const char *id, uint32_t type)
{
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(&ce->e, p, id);
    ttlv_new_textz(A, p, KMIP_TAG_ATTRIBUTE_NAME, "Link");
    ttlv_item_t *bi = rs_item(kenv_call(&ce->e, m), 0);
    assert_ok(bi);
    for (ttlv_item_t *a = ttlv_find(rs_payload(bi), KMIP_TAG_ATTRIBUTE); a;
         a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE)) {
        ttlv_item_t *v = ttlv_find(a, KMIP_TAG_ATTRIBUTE_VALUE);
        if (ttlv_u32(ttlv_find(v, KMIP_TAG_LINK_TYPE)) == type)
            return ttlv_text(ttlv_find(v, KMIP_TAG_LINKED_OBJECT_IDENTIFIER));
    }
    return NULL;
}

static bool has_peer_role(X509 *x)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
        char t[128];
        OBJ_obj2txt(t, sizeof t, sk_ASN1_OBJECT_value(eku, i), 1);
        found |= strcmp(t, CERTS_PEER_ROLE_OID) == 0;
    }
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

static void test_certify_public_key(void **state)
{
    cenv_t *ce = *state;
    const char *pub = make_pair(ce, "app-key", NULL);
    ttlv_item_t *bi = certify(ce, pub, 0, NULL, 0, "CN=app.example.com, O=Example", "app-cert");
    assert_ok(bi);
    const char *cert = kms_arena_strdup(A, rs_uid(bi));
    assert_string_equal(ce->e.sum.object_id, cert); /* the new certificate, not the key */

    X509 *x = get_cert(ce, cert);
    EVP_PKEY *cap = X509_get0_pubkey(ce->ca);
    assert_int_equal(X509_verify(x, cap), 1);
    char cn[128];
    assert_int_equal(certs_subject_cn(x, cn, sizeof cn), 0);
    assert_string_equal(cn, "app.example.com");
    assert_int_equal(X509_check_ca(x), 0);
    assert_false(has_peer_role(x));
    X509_free(x);

    /* Links both ways; the certificate is Pre-Active (no Activation Date
     * asked for) and can be destroyed as such. */
    assert_string_equal(link_to(ce, cert, KMIP_LINK_TYPE_PUBLIC_KEY_LINK), pub);
    assert_string_equal(link_to(ce, pub, KMIP_LINK_TYPE_CERTIFICATE_LINK), cert);
    assert_int_equal(k_state(&ce->e, cert), KMIP_STATE_PRE_ACTIVE);
    assert_int_equal(ttlv_u32(k_attr(&ce->e, cert, "Certificate Type")),
                     KMIP_CERTIFICATE_TYPE_X_509);
    assert_non_null(k_attr(&ce->e, cert, "X.509 Certificate Issuer"));
    /* The validity is the configured 30 days from now. */
    x = get_cert(ce, cert);
    int days = -1, secs = -1;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
                                    X509_get0_notAfter(x)), 1);
    assert_int_equal(days, 30);
    assert_int_equal(secs, 0);
    assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(x)), -1);
    X509_free(x);
    assert_ok(k_op_uid(&ce->e, KMIP_OPERATION_DESTROY, cert));

    /* Dates in the template: the certificate is Active now, and valid
     * until its Deactivation Date. */
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_CERTIFY);
    rq_uid(&ce->e, p, pub);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    int64_t now = (int64_t)time(NULL);
    rq_attr_date(&ce->e, ta, "Activation Date", now - 10);
    rq_attr_date(&ce->e, ta, "Deactivation Date", now + 7 * 86400);
    bi = rs_item(kenv_call(&ce->e, m), 0);
    assert_ok(bi);
    cert = kms_arena_strdup(A, rs_uid(bi));
    assert_int_equal(k_state(&ce->e, cert), KMIP_STATE_ACTIVE);
    x = get_cert(ce, cert);
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(x), &(time_t){now + 7 * 86400 - 1}), 1);
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(x), &(time_t){now + 7 * 86400 + 1}), -1);
    X509_free(x);
}

/* Validate of a certificate from Certify: the issuing CA is a trust
 * anchor (Valid); a server without it cannot tell (Unknown). */
static void test_validate_certified(void **state)
{
    cenv_t *ce = *state;
    const char *pub = make_pair(ce, "app-key", NULL);
    ttlv_item_t *bi = certify(ce, pub, 0, NULL, 0, "CN=app.example.com", NULL);
    assert_ok(bi);
    const char *cert = kms_arena_strdup(A, rs_uid(bi));
    uint32_t want[] = {KMIP_VALIDITY_INDICATOR_VALID, KMIP_VALIDITY_INDICATOR_UNKNOWN};

    for (int with_ca = 1; with_ca >= 0; with_ca--) {
        assert_int_equal(start_server(ce, with_ca), 0);
        ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
        rq_uid(&ce->e, rq_item(&ce->e, m, KMIP_OPERATION_VALIDATE), cert);
        bi = rs_item(kenv_call(&ce->e, m), 0);
        assert_ok(bi);
        assert_int_equal(ttlv_u32(ttlv_find(rs_payload(bi), KMIP_TAG_VALIDITY_INDICATOR)),
                         want[1 - with_ca]);
    }
}

static void test_certify_name_as_subject(void **state)
{
    cenv_t *ce = *state;
    const char *pub = make_pair(ce, "named-key", NULL);
    ttlv_item_t *bi = certify(ce, pub, 0, NULL, 0, NULL, NULL);
    assert_ok(bi);
    X509 *x = get_cert(ce, rs_uid(bi));
    char cn[128];
    assert_int_equal(certs_subject_cn(x, cn, sizeof cn), 0);
    assert_string_equal(cn, "named-key");
    X509_free(x);
    /* Without a Name and without a subject there is nothing to certify as. */
    pub = make_pair(ce, NULL, NULL);
    assert_fail(certify(ce, pub, 0, NULL, 0, NULL, NULL), KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_certify_csr(void **state)
{
    cenv_t *ce = *state;
    EVP_PKEY *k = NULL;
    int len = 0;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    unsigned char *der = make_csr(k, "csr-client", false, &len);

    /* No Unique Identifier, no placeholder: the request's key. */
    ttlv_item_t *bi = certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10, der, (size_t)len,
                              "CN=ignored", NULL);
    assert_ok(bi);
    const char *cert = kms_arena_strdup(A, rs_uid(bi));
    X509 *x = get_cert(ce, cert);
    char cn[128];
    assert_int_equal(certs_subject_cn(x, cn, sizeof cn), 0);
    assert_string_equal(cn, "csr-client"); /* the request's subject wins */
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(ce->ca)), 1);
    /* Asked for CA:TRUE and the peer role: got neither. clientAuth and
     * the DNS name stay. */
    assert_int_equal(X509_check_ca(x), 0);
    assert_false(has_peer_role(x));
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_equal(X509_check_host(x, "app.example.com", 0, 0, NULL), 1);
    assert_null(link_to(ce, cert, KMIP_LINK_TYPE_PUBLIC_KEY_LINK));
    X509_free(x);

    /* The same request as PEM. */
    {
        const unsigned char *q = der;
        X509_REQ *req = d2i_X509_REQ(NULL, &q, len);
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509_REQ(b, req);
        char *pem = NULL;
        long n = BIO_get_mem_data(b, &pem);
        assert_ok(certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_PEM, pem, (size_t)n, NULL,
                          NULL));
        /* PEM bytes declared as DER PKCS#10: Invalid Field. */
        assert_fail(certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10, pem, (size_t)n, NULL,
                            NULL),
                    KMIP_RESULT_REASON_INVALID_FIELD);
        BIO_free(b);
        X509_REQ_free(req);
    }

    /* A request for another key than the named Public Key. */
    const char *pub = make_pair(ce, "other", NULL);
    assert_fail(certify(ce, pub, KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10, der, (size_t)len, NULL,
                        NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    OPENSSL_free(der);

    /* A request whose signature does not verify. */
    der = make_csr(k, "forged", true, &len);
    assert_fail(certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10, der, (size_t)len, NULL,
                        NULL),
                KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    /* PGP is not read; a PKCS#10 request declared as CRMF does not parse. */
    assert_fail(certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_PGP, der, (size_t)len, NULL,
                        NULL),
                KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    assert_fail(certify(ce, NULL, KMIP_CERTIFICATE_REQUEST_TYPE_CRMF, der, (size_t)len, NULL,
                        NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* A request without its type. */
    assert_fail(certify(ce, NULL, 0, der, (size_t)len, NULL, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

enum crmf_pop { POP_SIGNATURE, POP_NONE, POP_RA_VERIFIED, POP_FORGED };

/* A CRMF request (CertReqMessages of `n_msgs` copies of one message) for
 * `key` with subject CN=`cn` (none when NULL), asking for a DNS name and
 * the peer role, with proof of possession `pop` made with `signer`. */
static unsigned char *make_crmf(EVP_PKEY *key, EVP_PKEY *signer, const char *cn,
                                enum crmf_pop pop, int n_msgs, int *len_out)
{
    OSSL_CRMF_MSG *m = OSSL_CRMF_MSG_new();
    OSSL_CRMF_MSGS *msgs = sk_OSSL_CRMF_MSG_new_null();
    X509_NAME *nm = NULL;
    X509_EXTENSIONS *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX v3;
    unsigned char *der = NULL;

    X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
    if (cn) {
        nm = X509_NAME_new();
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    }
    assert_int_equal(OSSL_CRMF_MSG_set_certReqId(m, 0), 1);
    assert_int_equal(OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(m), key, nm, NULL, NULL),
                     1);
    sk_X509_EXTENSION_push(exts, X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name,
                                                      "DNS:crmf.example.com"));
    sk_X509_EXTENSION_push(exts, X509V3_EXT_nconf_nid(NULL, &v3, NID_ext_key_usage,
                                                      "clientAuth," CERTS_PEER_ROLE_OID));
    assert_int_equal(OSSL_CRMF_MSG_set0_extensions(m, exts), 1);
    if (pop == POP_SIGNATURE || pop == POP_FORGED)
        assert_int_equal(OSSL_CRMF_MSG_create_popo(OSSL_CRMF_POPO_SIGNATURE, m, signer,
                                                   EVP_sha256(), NULL, NULL),
                         1);
    else if (pop == POP_RA_VERIFIED)
        assert_int_equal(OSSL_CRMF_MSG_create_popo(OSSL_CRMF_POPO_RAVERIFIED, m, NULL, NULL,
                                                   NULL, NULL),
                         1);
    for (int i = 0; i < n_msgs; i++)
        sk_OSSL_CRMF_MSG_push(msgs, i == 0 ? m : OSSL_CRMF_MSG_dup(m));
    *len_out = i2d_OSSL_CRMF_MSGS(msgs, &der);
    assert_true(*len_out > 0);
    sk_OSSL_CRMF_MSG_pop_free(msgs, OSSL_CRMF_MSG_free);
    X509_NAME_free(nm);
    return der;
}

/* The managed Public Key `id` (Get in X.509 form) as an EVP_PKEY. */
static EVP_PKEY *get_pubkey(cenv_t *ce, const char *id)
{
    ttlv_item_t *bi = k_get(&ce->e, id, KMIP_KEY_FORMAT_TYPE_X_509);
    assert_ok(bi);
    ttlv_item_t *km = ttlv_find(ttlv_find(ttlv_find(ttlv_find(rs_payload(bi),
                                                              KMIP_TAG_PUBLIC_KEY),
                                                    KMIP_TAG_KEY_BLOCK),
                                          KMIP_TAG_KEY_VALUE),
                                KMIP_TAG_KEY_MATERIAL);
    assert_non_null(km);
    const unsigned char *q = km->v.bytes.ptr;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &q, (long)km->v.bytes.len);
    assert_non_null(pk);
    return pk;
}

/* The certificate `id`: signed by the issuing CA, subject CN=`cn`, for
 * `key`; returned for more checks. */
static X509 *issued_for(cenv_t *ce, const char *id, const char *cn, EVP_PKEY *key)
{
    X509 *x = get_cert(ce, id);
    char got[128];
    assert_int_equal(certs_subject_cn(x, got, sizeof got), 0);
    assert_string_equal(got, cn);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), key), 1);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(ce->ca)), 1);
    return x;
}

static void test_certify_crmf(void **state)
{
    cenv_t *ce = *state;
    const uint32_t CRMF = KMIP_CERTIFICATE_REQUEST_TYPE_CRMF;
    EVP_PKEY *k = NULL, *other = NULL;
    int len = 0;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &other), 0);

    /* A request alone with a signature proof of possession: certified as
     * a PKCS#10 request is (subject, DNS name, no peer role). */
    unsigned char *der = make_crmf(k, k, "crmf-client", POP_SIGNATURE, 1, &len);
    ttlv_item_t *bi = certify(ce, NULL, CRMF, der, (size_t)len, "CN=ignored", NULL);
    assert_ok(bi);
    X509 *x = issued_for(ce, rs_uid(bi), "crmf-client", k);
    assert_int_equal(X509_check_host(x, "crmf.example.com", 0, 0, NULL), 1);
    assert_false(has_peer_role(x));
    assert_int_equal(X509_check_ca(x), 0);
    X509_free(x);
    OPENSSL_free(der);

    /* The proof signed with another key: Cryptographic Failure. */
    der = make_crmf(k, other, "crmf-client", POP_FORGED, 1, &len);
    assert_fail(certify(ce, NULL, CRMF, der, (size_t)len, NULL, NULL),
                KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
    OPENSSL_free(der);

    /* Possession not shown (no POP, raVerified): not for a request alone,
     * but for the managed key it names; the template's subject when the
     * request has none. */
    const char *pub = make_pair(ce, "crmf-key", NULL);
    EVP_PKEY *managed = get_pubkey(ce, pub);
    enum crmf_pop weak[] = {POP_NONE, POP_RA_VERIFIED};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(weak); i++) {
        der = make_crmf(managed, NULL, i == 0 ? NULL : "crmf-managed", weak[i], 1, &len);
        assert_fail(certify(ce, NULL, CRMF, der, (size_t)len, "CN=from-template", NULL),
                    KMIP_RESULT_REASON_INVALID_FIELD);
        bi = certify(ce, pub, CRMF, der, (size_t)len, "CN=from-template", NULL);
        assert_ok(bi);
        X509_free(issued_for(ce, rs_uid(bi), i == 0 ? "from-template" : "crmf-managed", managed));
        OPENSSL_free(der);
    }
    /* A request for another key than the named one. */
    der = make_crmf(k, k, "crmf-client", POP_SIGNATURE, 1, &len);
    assert_fail(certify(ce, pub, CRMF, der, (size_t)len, NULL, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Re-certify with a CRMF request for the certificate's own key. */
    bi = certify(ce, NULL, CRMF, der, (size_t)len, NULL, NULL);
    assert_ok(bi);
    const char *cert = kms_arena_strdup(A, rs_uid(bi));
    {
        ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
        ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_RECERTIFY);
        rq_uid(&ce->e, p, cert);
        ttlv_new_enum(A, p, KMIP_TAG_CERTIFICATE_REQUEST_TYPE, CRMF);
        ttlv_new_bytes(A, p, KMIP_TAG_CERTIFICATE_REQUEST, der, (size_t)len);
        bi = rs_item(kenv_call(&ce->e, m), 0);
        assert_ok(bi);
        X509_free(issued_for(ce, rs_uid(bi), "crmf-client", k));
    }
    OPENSSL_free(der);
    /* Two messages; bytes that are not CRMF; a truncated request. */
    der = make_crmf(k, k, "crmf-client", POP_SIGNATURE, 2, &len);
    assert_fail(certify(ce, NULL, CRMF, der, (size_t)len, NULL, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    OPENSSL_free(der);
    der = make_crmf(k, k, "crmf-client", POP_SIGNATURE, 1, &len);
    assert_fail(certify(ce, NULL, CRMF, der, (size_t)len - 3, NULL, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(certify(ce, NULL, CRMF, "\x30\x00", 2, NULL, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* A bare CertReqMsg (without the CertReqMessages around it) is read. */
    {
        const unsigned char *q = der;
        OSSL_CRMF_MSGS *msgs = d2i_OSSL_CRMF_MSGS(NULL, &q, len);
        unsigned char *one = NULL;
        int one_len = i2d_OSSL_CRMF_MSG(sk_OSSL_CRMF_MSG_value(msgs, 0), &one);
        assert_ok(certify(ce, NULL, CRMF, one, (size_t)one_len, NULL, NULL));
        OPENSSL_free(one);
        sk_OSSL_CRMF_MSG_pop_free(msgs, OSSL_CRMF_MSG_free);
    }
    OPENSSL_free(der);
    EVP_PKEY_free(managed);
    EVP_PKEY_free(other);
    EVP_PKEY_free(k);
}

/* Whether Query Operations lists `op`. */
static bool query_lists(cenv_t *ce, uint32_t op)
{
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(A, p, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_OPERATIONS);
    ttlv_item_t *bi = rs_item(kenv_call(&ce->e, m), 0);
    assert_ok(bi);
    for (ttlv_item_t *o = ttlv_find(rs_payload(bi), KMIP_TAG_OPERATION); o;
         o = ttlv_find_next(o, KMIP_TAG_OPERATION))
        if (ttlv_u32(o) == op)
            return true;
    return false;
}

static void test_certify_refusals(void **state)
{
    cenv_t *ce = *state;
    /* Nothing to certify. */
    assert_fail(certify(ce, NULL, 0, NULL, 0, "CN=x", NULL), KMIP_RESULT_REASON_MISSING_DATA);
    /* Not a public key. */
    const char *priv = NULL;
    make_pair(ce, "pair", &priv);
    assert_fail(certify(ce, priv, 0, NULL, 0, "CN=x", NULL),
                KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    const char *sym = k_create_aes(&ce->e, NULL);
    assert_fail(certify(ce, sym, 0, NULL, 0, "CN=x", NULL), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    /* Unknown key. */
    assert_fail(certify(ce, "no-such-key", 0, NULL, 0, "CN=x", NULL),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* A subject that is not a name. */
    const char *pub = make_pair(ce, NULL, NULL);
    assert_fail(certify(ce, pub, 0, NULL, 0, "no equals sign", NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Only X.509. */
    {
        ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
        ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_CERTIFY);
        rq_uid(&ce->e, p, pub);
        ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
        rq_attr_enum(&ce->e, ta, "Certificate Type", KMIP_CERTIFICATE_TYPE_PGP);
        assert_fail(rs_item(kenv_call(&ce->e, m), 0), KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    }
    /* A compromised key is not certified. */
    assert_ok(k_revoke(&ce->e, pub, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE));
    assert_fail(certify(ce, pub, 0, NULL, 0, "CN=x", NULL), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* Without an issuing CA both operations are not offered, and Query
     * does not list them. */
    assert_true(query_lists(ce, KMIP_OPERATION_CERTIFY));
    assert_true(query_lists(ce, KMIP_OPERATION_RECERTIFY));
    assert_int_equal(start_server(ce, false), 0);
    assert_false(query_lists(ce, KMIP_OPERATION_CERTIFY));
    assert_false(query_lists(ce, KMIP_OPERATION_RECERTIFY));
    assert_true(query_lists(ce, KMIP_OPERATION_GET));
    pub = make_pair(ce, "k", NULL);
    assert_fail(certify(ce, pub, 0, NULL, 0, "CN=x", NULL),
                KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED);
    assert_fail(k_op_uid(&ce->e, KMIP_OPERATION_RECERTIFY, pub),
                KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED);
    assert_int_equal(start_server(ce, true), 0);
}

static void test_certify_placeholder_batch(void **state)
{
    cenv_t *ce = *state;
    /* Locate the public key by Name (the placeholder), Certify it, Get
     * the certificate by the placeholder Certify set. */
    const char *pub = make_pair(ce, "batch", NULL);
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    rq_attr_name(&ce->e, rq_item(&ce->e, m, KMIP_OPERATION_LOCATE), "batch");
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_CERTIFY);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *v = ttlv_new_struct(A, rq_attr(&ce->e, ta, "Certificate Subject"),
                                     KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_textz(A, v, KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME, "CN=batch");
    rq_item(&ce->e, m, KMIP_OPERATION_GET);
    ttlv_item_t *r = kenv_call(&ce->e, m);
    assert_ok(rs_item(r, 0));
    assert_ok(rs_item(r, 1));
    assert_ok(rs_item(r, 2));
    assert_non_null(ttlv_find(rs_payload(rs_item(r, 2)), KMIP_TAG_CERTIFICATE));
    assert_string_equal(link_to(ce, rs_uid(rs_item(r, 1)), KMIP_LINK_TYPE_PUBLIC_KEY_LINK), pub);
}

static ttlv_item_t *recertify(cenv_t *ce, const char *id, int64_t offset)
{
    ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
    ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_RECERTIFY);
    rq_uid(&ce->e, p, id);
    if (offset >= 0)
        ttlv_new_interval(A, p, KMIP_TAG_OFFSET, (uint32_t)offset);
    return rs_item(kenv_call(&ce->e, m), 0);
}

static void test_recertify(void **state)
{
    cenv_t *ce = *state;
    const char *pub = make_pair(ce, "renew-key", NULL);
    ttlv_item_t *bi = certify(ce, pub, 0, NULL, 0, "CN=renew.example.com", "renew-cert");
    assert_ok(bi);
    const char *old = kms_arena_strdup(A, rs_uid(bi));

    bi = recertify(ce, old, 3600);
    assert_ok(bi);
    const char *neu = kms_arena_strdup(A, rs_uid(bi));
    assert_string_not_equal(old, neu);

    /* Links: replacement both ways; the key now points at the new one. */
    assert_string_equal(link_to(ce, old, KMIP_LINK_TYPE_REPLACEMENT_OBJECT_LINK), neu);
    assert_string_equal(link_to(ce, neu, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK), old);
    assert_string_equal(link_to(ce, neu, KMIP_LINK_TYPE_PUBLIC_KEY_LINK), pub);
    assert_string_equal(link_to(ce, pub, KMIP_LINK_TYPE_CERTIFICATE_LINK), neu);
    /* The Name moved; the new one's Activation Date is in an hour (the
     * Offset), so it waits. */
    assert_string_equal(ttlv_text(ttlv_find(k_attr(&ce->e, neu, "Name"), KMIP_TAG_NAME_VALUE)),
                        "renew-cert");
    assert_int_equal(k_state(&ce->e, neu), KMIP_STATE_PRE_ACTIVE);
    int64_t now = (int64_t)time(NULL);
    int64_t act = k_attr(&ce->e, neu, "Activation Date")->v.i64;
    assert_true(act >= now + 3600 - 60 && act <= now + 3600);

    /* Same key, same subject, the validity of the dates. */
    X509 *xo = get_cert(ce, old), *xn = get_cert(ce, neu);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(xo), X509_get0_pubkey(xn)), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(xo), X509_get_subject_name(xn)), 0);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(xo),
                                          X509_get0_serialNumber(xn)), 0);
    assert_int_equal(X509_cmp_time(X509_get0_notBefore(xn), &(time_t){act - 1}), 1);
    X509_free(xo);
    X509_free(xn);

    /* Re-certify without an Offset: the dates are copied, the X.509
     * validity starts now. */
    bi = recertify(ce, neu, -1);
    assert_ok(bi);
    assert_int_equal(k_attr(&ce->e, rs_uid(bi), "Activation Date")->v.i64, act);
    xn = get_cert(ce, rs_uid(bi));
    assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(xn)), -1);
    X509_free(xn);

    /* Refusals: not a certificate; a request for another key. */
    assert_fail(recertify(ce, pub, -1), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    assert_fail(recertify(ce, "nope", -1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    {
        EVP_PKEY *k = NULL;
        int len = 0;
        assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
        unsigned char *der = make_csr(k, "x", false, &len);
        ttlv_item_t *m = rq_msg(&ce->e, 1, 4);
        ttlv_item_t *p = rq_item(&ce->e, m, KMIP_OPERATION_RECERTIFY);
        rq_uid(&ce->e, p, neu);
        ttlv_new_enum(A, p, KMIP_TAG_CERTIFICATE_REQUEST_TYPE,
                      KMIP_CERTIFICATE_REQUEST_TYPE_PKCS10);
        ttlv_new_bytes(A, p, KMIP_TAG_CERTIFICATE_REQUEST, der, (size_t)len);
        assert_fail(rs_item(kenv_call(&ce->e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
        OPENSSL_free(der);
        EVP_PKEY_free(k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_certify_public_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_certified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certify_name_as_subject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certify_csr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certify_crmf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certify_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certify_placeholder_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recertify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
