/*
 * certs/issue.c: key generation and certificate issuance: the CA, server,
 * client and cluster node certificates, signing a client's CSR, and the
 * CSRs and their signing with which a node joins a cluster (a node CSR
 * named by the node id, a server CSR whose DNS/IP names are copied).
 *
 * Every certificate gets a random 128-bit serial, a notBefore one hour in
 * the past (clients with a slow clock still accept it), SHA-256 signature,
 * subject/authority key identifiers, and extensions fixed here rather than
 * copied from a request. It does not support intermediate CAs or policies.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

#define BACKDATE_SECONDS 3600

int certs_key_new(enum certs_key_type type, EVP_PKEY **key_out)
{
    EVP_PKEY *k = NULL;
    if (key_out == NULL)
        return KMS_ERR_INVAL;
    switch (type) {
    case CERTS_KEY_EC_P256:
        k = EVP_EC_gen("P-256");
        break;
    case CERTS_KEY_RSA_3072:
        k = EVP_RSA_gen(3072);
        break;
    default:
        return KMS_ERR_INVAL;
    }
    ERR_clear_error();
    if (k == NULL)
        return KMS_ERR_CRYPTO;
    *key_out = k;
    return 0;
}

static int set_random_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int rc = KMS_ERR_CRYPTO;
    /* 128 random bits, top bit set so the serial is always 16 significant
     * bytes (positive: DER adds a leading zero, 17 bytes <= RFC 5280's 20). */
    if (bn && BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
        rc = 0;
    BN_free(bn);
    return rc;
}

static int name_with_cn(X509_NAME **out, const char *cn)
{
    X509_NAME *n = X509_NAME_new();
    if (n == NULL)
        return KMS_ERR_NOMEM;
    if (X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                   -1, -1, 0) != 1) {
        X509_NAME_free(n);
        return KMS_ERR_INVAL; /* e.g. longer than the 64 characters X.520 allows */
    }
    *out = n;
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return KMS_ERR_CRYPTO;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : KMS_ERR_CRYPTO;
}

static int valid_days(int days, int dflt)
{
    if (days == 0)
        return dflt;
    if (days < 1 || days > CERTS_MAX_DAYS)
        return -1;
    return days;
}

static int is_rsa(EVP_PKEY *k)
{
    return EVP_PKEY_is_a(k, "RSA");
}

/*
 * The part every certificate shares: version 3, serial, validity, subject,
 * issuer, public key, SKI and AKI. `issuer` NULL = self-signed.
 */
static int cert_base(X509 **out, X509_NAME *subject, EVP_PKEY *pub, X509 *issuer, int days,
                     X509V3_CTX *ctx)
{
    X509 *x = X509_new();
    int rc = KMS_ERR_CRYPTO;
    if (x == NULL)
        return KMS_ERR_NOMEM;
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_random_serial(x) != 0)
        goto out;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL)
        goto out;
    if (X509_set_subject_name(x, subject) != 1 ||
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
        X509_set_pubkey(x, pub) != 1)
        goto out;
    X509V3_set_ctx(ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    if (add_ext(x, ctx, NID_subject_key_identifier, "hash") != 0)
        goto out;
    if (add_ext(x, ctx, NID_authority_key_identifier, issuer ? "keyid:always" : "keyid") != 0)
        goto out;
    *out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    return rc;
}

static int sign(X509 *x, EVP_PKEY *key)
{
    /* Ed25519/Ed448 take no digest; every other key signs with SHA-256. */
    const EVP_MD *md = (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
                           ? NULL : EVP_sha256();
    return X509_sign(x, key, md) > 0 ? 0 : KMS_ERR_CRYPTO;
}

int certs_create_ca(EVP_PKEY *key, const char *cn, int days, X509 **cert_out)
{
    X509_NAME *name = NULL;
    X509 *x = NULL;
    X509V3_CTX ctx;
    int rc;

    if (key == NULL || cn == NULL || cn[0] == '\0' || cert_out == NULL ||
        (days = valid_days(days, CERTS_CA_DAYS)) < 0)
        return KMS_ERR_INVAL;
    if ((rc = name_with_cn(&name, cn)) != 0)
        goto out;
    if ((rc = cert_base(&x, name, key, NULL, days, &ctx)) != 0)
        goto out;
    rc = KMS_ERR_CRYPTO;
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        sign(x, key) != 0)
        goto out;
    *cert_out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    X509_NAME_free(name);
    ERR_clear_error();
    return rc;
}

/* Leaf extensions: CA:FALSE, key usage for the key type, the EKU list. */
static int leaf_exts(X509 *x, X509V3_CTX *ctx, EVP_PKEY *pub, const char *eku)
{
    if (add_ext(x, ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, ctx, NID_key_usage,
                is_rsa(pub) ? "critical,digitalSignature,keyEncipherment"
                            : "critical,digitalSignature") != 0 ||
        add_ext(x, ctx, NID_ext_key_usage, eku) != 0)
        return KMS_ERR_CRYPTO;
    return 0;
}

/* CA key must match the CA certificate, or we would issue unverifiable certs. */
static int ca_ok(X509 *ca, EVP_PKEY *ca_key)
{
    return ca && ca_key && X509_check_private_key(ca, ca_key) == 1;
}

static int host_is_dns_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && !(c == '*' && i == 0))
            return 0;
    }
    return 1;
}

/* Append one SAN (IP literal or DNS name) unless an equal one is present. */
static int san_add(GENERAL_NAMES *gens, const char *host)
{
    GENERAL_NAME *g = NULL;
    char unbracketed[64];
    size_t hl = strlen(host);
    /* "[fd00::1]" as written in listen addresses: the IPv6 literal inside. */
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(unbracketed)) {
        memcpy(unbracketed, host + 1, hl - 2);
        unbracketed[hl - 2] = '\0';
        host = unbracketed;
    }
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    ERR_clear_error();
    if (ip != NULL) {
        g = GENERAL_NAME_new();
        if (g == NULL) {
            ASN1_OCTET_STRING_free(ip);
            return KMS_ERR_NOMEM;
        }
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        if (!host_is_dns_name(host))
            return KMS_ERR_INVAL;
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        g = GENERAL_NAME_new();
        if (s == NULL || g == NULL || ASN1_STRING_set(s, host, (int)strlen(host)) != 1) {
            ASN1_IA5STRING_free(s);
            GENERAL_NAME_free(g);
            return KMS_ERR_NOMEM;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++)
        if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(gens, i), g) == 0) {
            GENERAL_NAME_free(g);
            return 0;
        }
    if (sk_GENERAL_NAME_push(gens, g) <= 0) {
        GENERAL_NAME_free(g);
        return KMS_ERR_NOMEM;
    }
    return 0;
}

/*
 * A leaf for `pub` signed by (ca, ca_key): subject `subj`, CA:FALSE, key
 * usage for the key type, extended key usage `eku`, and the SANs `gens`
 * when not NULL.
 */
static int issue_leaf(X509 *ca, EVP_PKEY *ca_key, X509_NAME *subj, EVP_PKEY *pub, int days,
                      const char *eku, GENERAL_NAMES *gens, X509 **cert_out)
{
    X509 *x = NULL;
    X509V3_CTX ctx;
    int rc = cert_base(&x, subj, pub, ca, days, &ctx);
    if (rc != 0)
        return rc;
    rc = KMS_ERR_CRYPTO;
    if (leaf_exts(x, &ctx, pub, eku) != 0 ||
        (gens && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) ||
        sign(x, ca_key) != 0)
        goto out;
    *cert_out = x;
    x = NULL;
    rc = 0;
out:
    X509_free(x);
    return rc;
}

/* The SANs of a server certificate: `hosts` and the local names. */
static int server_sans(const char *const *hosts, size_t n_hosts, GENERAL_NAMES **out)
{
    static const char *const always[] = {"localhost", "127.0.0.1", "::1"};
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rc = 0;
    if (gens == NULL)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < n_hosts && rc == 0; i++)
        rc = san_add(gens, hosts[i]);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(always) && rc == 0; i++)
        rc = san_add(gens, always[i]);
    if (rc != 0) {
        sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
        return rc;
    }
    *out = gens;
    return 0;
}

int certs_issue_server(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *cn,
                       const char *const *hosts, size_t n_hosts, int days, X509 **cert_out)
{
    X509_NAME *name = NULL;
    GENERAL_NAMES *gens = NULL;
    int rc;

    if (!ca_ok(ca, ca_key) || key == NULL || cn == NULL || cn[0] == '\0' || cert_out == NULL ||
        (hosts == NULL && n_hosts > 0) || (days = valid_days(days, CERTS_LEAF_DAYS)) < 0) {
        rc = KMS_ERR_INVAL;
        goto out;
    }
    if ((rc = server_sans(hosts, n_hosts, &gens)) != 0 || (rc = name_with_cn(&name, cn)) != 0)
        goto out;
    rc = issue_leaf(ca, ca_key, name, key, days, "serverAuth,clientAuth", gens, cert_out);
out:
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_NAME_free(name);
    ERR_clear_error();
    return rc;
}

/* A client (EKU clientAuth) or node (NODE_EKU) certificate named `name`. */
static int issue_named(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name, int days,
                       const char *eku, X509 **cert_out)
{
    X509_NAME *subj = NULL;
    int rc;

    if (!ca_ok(ca, ca_key) || key == NULL || name == NULL || name[0] == '\0' ||
        cert_out == NULL || (days = valid_days(days, CERTS_LEAF_DAYS)) < 0)
        return KMS_ERR_INVAL;
    if ((rc = name_with_cn(&subj, name)) == 0)
        rc = issue_leaf(ca, ca_key, subj, key, days, eku, NULL, cert_out);
    X509_NAME_free(subj);
    ERR_clear_error();
    return rc;
}

int certs_issue_client(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name, int days,
                       X509 **cert_out)
{
    return issue_named(ca, ca_key, key, name, days, "clientAuth", cert_out);
}

/* Node certificates: both TLS roles (each node connects and accepts) and
 * the peer role that the peer listener requires. */
#define NODE_EKU "serverAuth,clientAuth," CERTS_PEER_ROLE_OID

int certs_issue_node(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *node_id, int days,
                     X509 **cert_out)
{
    return issue_named(ca, ca_key, key, node_id, days, NODE_EKU, cert_out);
}

/* Keys we are willing to certify. */
static int csr_key_ok(EVP_PKEY *pub, char *why, size_t n)
{
    if (EVP_PKEY_is_a(pub, "RSA")) {
        if (EVP_PKEY_get_bits(pub) < 2048) {
            snprintf(why, n, "RSA key of %d bits; at least 2048 required", EVP_PKEY_get_bits(pub));
            return 0;
        }
        return 1;
    }
    if (EVP_PKEY_is_a(pub, "EC")) {
        char curve[64] = "";
        size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                           &len) != 1 ||
            (strcmp(curve, "prime256v1") != 0 && strcmp(curve, "secp384r1") != 0 &&
             strcmp(curve, "secp521r1") != 0)) {
            snprintf(why, n, "EC key on curve '%s'; P-256, P-384 or P-521 required", curve);
            return 0;
        }
        return 1;
    }
    if (EVP_PKEY_is_a(pub, "ED25519"))
        return 1;
    snprintf(why, n, "unsupported key type %s", EVP_PKEY_get0_type_name(pub));
    return 0;
}

/*
 * The checks every CSR passes before we sign it: arguments, a readable
 * public key whose own signature over the CSR verifies, a key we certify,
 * and a usable subject CN (into cn). *days_io: 0 -> the leaf default.
 */
static int csr_checked(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, int *days_io, EVP_PKEY **pub_out,
                       char *cn, size_t cnlen, kms_error_t *err)
{
    char why[160] = "";
    EVP_PKEY *pub;
    int rc;

    if (!ca_ok(ca, ca_key) || csr == NULL || (*days_io = valid_days(*days_io, CERTS_LEAF_DAYS)) < 0)
        return kms_error_set(err, KMS_ERR_INVAL,
                             "invalid arguments (CA key does not match the CA certificate?)");
    if ((pub = X509_REQ_get0_pubkey(csr)) == NULL)
        return kms_error_set(err, KMS_ERR_PROTO, "the CSR holds no readable public key");
    if (X509_REQ_verify(csr, pub) != 1)
        return kms_error_set(err, KMS_ERR_CRYPTO,
                             "the CSR signature does not verify with its own public key");
    if (!csr_key_ok(pub, why, sizeof(why)))
        return kms_error_set(err, KMS_ERR_INVAL, "%s", why);
    rc = certs_csr_cn(csr, cn, cnlen);
    if (rc == KMS_ERR_NOTFOUND)
        return kms_error_set(err, KMS_ERR_INVAL, "the CSR subject has no CN");
    if (rc != 0)
        return kms_error_set(err, KMS_ERR_INVAL, "the CSR subject CN is empty or not valid text");
    *pub_out = pub;
    return 0;
}

int certs_sign_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, int days, X509 **cert_out,
                   kms_error_t *err)
{
    EVP_PKEY *pub = NULL; /* borrowed from the CSR */
    char cn[256];
    int rc;

    if (cert_out == NULL)
        return kms_error_set(err, KMS_ERR_INVAL, "invalid arguments");
    if ((rc = csr_checked(ca, ca_key, csr, &days, &pub, cn, sizeof(cn), err)) == 0 &&
        (rc = issue_leaf(ca, ca_key, X509_REQ_get_subject_name(csr), pub, days, "clientAuth", NULL,
                         cert_out)) != 0)
        kms_error_set(err, rc, "signing failed");
    ERR_clear_error();
    return rc;
}

int certs_sign_node_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, const char *node_id, int days,
                        X509 **cert_out, kms_error_t *err)
{
    EVP_PKEY *pub = NULL;
    X509_NAME *subj = NULL;
    char cn[256];
    int rc;

    if (cert_out == NULL || node_id == NULL || node_id[0] == '\0')
        return kms_error_set(err, KMS_ERR_INVAL, "invalid arguments");
    if ((rc = csr_checked(ca, ca_key, csr, &days, &pub, cn, sizeof(cn), err)) != 0)
        goto out;
    /* The CN is the identity the peer links check (HELLO's node id). */
    if (strcmp(cn, node_id) != 0) {
        rc = kms_error_set(err, KMS_ERR_INVAL, "the node CSR's CN '%s' is not the node id '%s'",
                           cn, node_id);
        goto out;
    }
    if ((rc = name_with_cn(&subj, node_id)) != 0 ||
        (rc = issue_leaf(ca, ca_key, subj, pub, days, NODE_EKU, NULL, cert_out)) != 0)
        kms_error_set(err, rc, "cannot issue the node certificate");
out:
    X509_NAME_free(subj);
    ERR_clear_error();
    return rc;
}

/* Most SANs a server CSR may ask for. */
#define CSR_MAX_SANS 64

/* The DNS and IP SANs a CSR asks for, checked, with the local names. */
static int csr_sans(X509_REQ *csr, GENERAL_NAMES **out, kms_error_t *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *want = NULL, *gens = NULL;
    int rc = server_sans(NULL, 0, &gens);

    ERR_clear_error();
    if (rc != 0)
        goto out;
    want = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    if (want && sk_GENERAL_NAME_num(want) > CSR_MAX_SANS) {
        rc = kms_error_set(err, KMS_ERR_LIMIT, "the CSR asks for %d names; at most %d",
                           sk_GENERAL_NAME_num(want), CSR_MAX_SANS);
        goto out;
    }
    for (int i = 0; want && i < sk_GENERAL_NAME_num(want); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(want, i);
        int type = 0;
        void *v = GENERAL_NAME_get0_value(g, &type);
        if (type == GEN_DNS) {
            const ASN1_STRING *s = v;
            char name[254];
            int len = ASN1_STRING_length(s);
            if (len <= 0 || (size_t)len >= sizeof(name)) {
                rc = kms_error_set(err, KMS_ERR_INVAL, "the CSR asks for an over-long DNS name");
                goto out;
            }
            memcpy(name, ASN1_STRING_get0_data(s), (size_t)len);
            name[len] = '\0';
            if (strlen(name) != (size_t)len || !host_is_dns_name(name)) {
                rc = kms_error_set(err, KMS_ERR_INVAL, "the CSR asks for an invalid DNS name");
                goto out;
            }
        } else if (type == GEN_IPADD) {
            int len = ASN1_STRING_length(v);
            if (len != 4 && len != 16) {
                rc = kms_error_set(err, KMS_ERR_INVAL, "the CSR asks for an invalid IP address");
                goto out;
            }
        } else {
            rc = kms_error_set(err, KMS_ERR_INVAL,
                               "the CSR asks for a name that is neither DNS nor IP");
            goto out;
        }
        bool dup = false;
        for (int j = 0; j < sk_GENERAL_NAME_num(gens) && !dup; j++)
            dup = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(gens, j), g) == 0;
        GENERAL_NAME *copy = dup ? NULL : GENERAL_NAME_dup(g);
        if (!dup && (copy == NULL || sk_GENERAL_NAME_push(gens, copy) <= 0)) {
            GENERAL_NAME_free(copy);
            rc = kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    *out = gens;
    gens = NULL;
out:
    sk_GENERAL_NAME_pop_free(want, GENERAL_NAME_free);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return rc;
}

int certs_sign_server_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, int days, X509 **cert_out,
                          kms_error_t *err)
{
    EVP_PKEY *pub = NULL;
    X509_NAME *subj = NULL;
    GENERAL_NAMES *gens = NULL;
    char cn[256];
    int rc;

    if (cert_out == NULL)
        return kms_error_set(err, KMS_ERR_INVAL, "invalid arguments");
    if ((rc = csr_checked(ca, ca_key, csr, &days, &pub, cn, sizeof(cn), err)) != 0 ||
        (rc = csr_sans(csr, &gens, err)) != 0)
        goto out;
    if ((rc = name_with_cn(&subj, cn)) != 0) {
        kms_error_set(err, rc, "the CSR's CN '%s' cannot be a certificate's CN", cn);
        goto out;
    }
    if ((rc = issue_leaf(ca, ca_key, subj, pub, days, "serverAuth,clientAuth", gens, cert_out)))
        kms_error_set(err, rc, "cannot issue the server certificate");
out:
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_NAME_free(subj);
    ERR_clear_error();
    return rc;
}

int certs_csr_new(EVP_PKEY *key, const char *cn, const char *const *hosts, size_t n_hosts,
                  X509_REQ **csr_out)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *subj = NULL;
    GENERAL_NAMES *gens = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509_EXTENSION *ext = NULL;
    int rc = KMS_ERR_NOMEM;

    if (req == NULL)
        goto out;
    if (key == NULL || cn == NULL || csr_out == NULL || (hosts == NULL && n_hosts > 0)) {
        rc = KMS_ERR_INVAL;
        goto out;
    }
    if ((rc = name_with_cn(&subj, cn)) != 0)
        goto out;
    if (n_hosts > 0) {
        if ((gens = sk_GENERAL_NAME_new_null()) == NULL || (exts = sk_X509_EXTENSION_new_null()) == NULL) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < n_hosts; i++)
            if ((rc = san_add(gens, hosts[i])) != 0)
                goto out;
        rc = KMS_ERR_CRYPTO;
        if ((ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
            sk_X509_EXTENSION_push(exts, ext) <= 0)
            goto out;
        ext = NULL; /* owned by exts */
        if (X509_REQ_add_extensions(req, exts) != 1)
            goto out;
    }
    rc = KMS_ERR_CRYPTO;
    if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_subject_name(req, subj) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
        X509_REQ_sign(req, key, (EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256())) <= 0)
        goto out;
    *csr_out = req;
    req = NULL;
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_NAME_free(subj);
    X509_REQ_free(req);
    ERR_clear_error();
    return rc;
}
