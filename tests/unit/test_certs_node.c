/* tests/unit/test_certs_node.c: cluster node certificates against real
 * OpenSSL: the peer role is in node certificates and in no other kind,
 * node and server CSRs made by a joining node are signed by the inviter's
 * CA (the CN must be the node id; the server's DNS/IP names are copied
 * and nothing else), broken or greedy CSRs are refused, and certificates
 * and CSRs survive the PEM/DER round trip of the join frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

static EVP_PKEY *ca_key;
static X509 *ca;

static int setup(void **state)
{
    (void)state;
    if (certs_key_new(CERTS_KEY_EC_P256, &ca_key) != 0)
        return -1;
    return certs_create_ca(ca_key, "kmsd cluster test CA", 0, &ca);
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* X509_verify_cert against `ca` alone for the TLS purpose. */
static int chains(X509 *anchor, X509 *leaf, int purpose)
{
    kms_error_t err;
    return certs_verify(anchor, leaf, purpose, &err);
}

static int san_count(X509 *x, int type, const char *text)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = 0;
    for (int i = 0; g && i < sk_GENERAL_NAME_num(g); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, i);
        int t = 0;
        void *v = GENERAL_NAME_get0_value(gn, &t);
        if (t != type)
            continue;
        if (!text) {
            n++;
            continue;
        }
        if (t == GEN_DNS && strcmp((const char *)ASN1_STRING_get0_data(v), text) == 0)
            n++;
        if (t == GEN_IPADD) {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(text);
            if (ip && ASN1_STRING_cmp(ip, v) == 0)
                n++;
            ASN1_OCTET_STRING_free(ip);
        }
    }
    GENERAL_NAMES_free(g);
    return n;
}

static void test_node_cert_has_peer_role(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL, *k2 = NULL, *k3 = NULL;
    X509 *node = NULL, *srv = NULL, *cli = NULL;
    char cn[64];
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_issue_node(ca, ca_key, k, "node-a", 0, &node), 0);
    assert_true(certs_has_peer_role(node));
    assert_int_equal(certs_subject_cn(node, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "node-a");
    /* Both TLS roles: each node connects and accepts. */
    uint32_t xku = X509_get_extended_key_usage(node);
    assert_true(xku & XKU_SSL_SERVER);
    assert_true(xku & XKU_SSL_CLIENT);
    assert_int_equal(chains(ca, node, X509_PURPOSE_SSL_SERVER), 0);
    assert_int_equal(chains(ca, node, X509_PURPOSE_SSL_CLIENT), 0);
    assert_int_equal(X509_check_ca(node), 0);
    /* No other kind carries the role: a KMIP client or server certificate
     * never opens a peer link. */
    const char *hosts[] = {"kms.example"};
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k2), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k3), 0);
    assert_int_equal(certs_issue_server(ca, ca_key, k2, "kms.example", hosts, 1, 0, &srv), 0);
    assert_int_equal(certs_issue_client(ca, ca_key, k3, "vcenter", 0, &cli), 0);
    assert_false(certs_has_peer_role(srv));
    assert_false(certs_has_peer_role(cli));
    assert_false(certs_has_peer_role(ca));
    assert_false(certs_has_peer_role(NULL));
    /* Refusals. */
    X509 *x = NULL;
    assert_int_equal(certs_issue_node(ca, ca_key, k, "", 0, &x), KMS_ERR_INVAL);
    assert_int_equal(certs_issue_node(ca, k, k, "n", 0, &x), KMS_ERR_INVAL); /* key is not the CA's */
    assert_null(x);
    X509_free(node);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
}

static void test_node_csr(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509_REQ *csr = NULL;
    X509 *x = NULL;
    kms_error_t err;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_csr_new(k, "node-b", NULL, 0, &csr), 0);
    char cn[64];
    assert_int_equal(certs_csr_cn(csr, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "node-b");
    /* The CN must be the node id the joining node announces. */
    kms_error_clear(&err);
    assert_int_equal(certs_sign_node_csr(ca, ca_key, csr, "node-c", 0, &x, &err), KMS_ERR_INVAL);
    assert_null(x);
    assert_non_null(strstr(kms_error_msg(&err), "node-b"));
    assert_int_equal(certs_sign_node_csr(ca, ca_key, csr, "node-b", 30, &x, &err), 0);
    assert_true(certs_has_peer_role(x));
    assert_int_equal(chains(ca, x, X509_PURPOSE_SSL_CLIENT), 0);
    /* The certificate certifies the CSR's key. */
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    X509_free(x);
    X509_REQ_free(csr);
    EVP_PKEY_free(k);
}

static void test_server_csr_names(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509_REQ *csr = NULL;
    X509 *x = NULL;
    kms_error_t err;
    const char *hosts[] = {"kms-b.example", "10.0.0.2", "[fd00::2]", "kms-b.example"};
    assert_int_equal(certs_key_new(CERTS_KEY_RSA_3072, &k), 0);
    assert_int_equal(certs_csr_new(k, "kms-b.example", hosts, 4, &csr), 0);
    kms_error_clear(&err);
    assert_int_equal(certs_sign_server_csr(ca, ca_key, csr, 0, &x, &err), 0);
    char cn[64];
    assert_int_equal(certs_subject_cn(x, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "kms-b.example");
    assert_int_equal(san_count(x, GEN_DNS, "kms-b.example"), 1); /* asked twice, once */
    assert_int_equal(san_count(x, GEN_IPADD, "10.0.0.2"), 1);
    assert_int_equal(san_count(x, GEN_IPADD, "fd00::2"), 1);
    assert_int_equal(san_count(x, GEN_DNS, "localhost"), 1);
    assert_int_equal(san_count(x, GEN_IPADD, "127.0.0.1"), 1);
    assert_int_equal(san_count(x, GEN_IPADD, "::1"), 1);
    assert_int_equal(san_count(x, GEN_DNS, NULL) + san_count(x, GEN_IPADD, NULL), 6);
    assert_false(certs_has_peer_role(x));
    assert_int_equal(chains(ca, x, X509_PURPOSE_SSL_SERVER), 0);
    assert_int_equal(X509_check_host(x, "kms-b.example", 0, 0, NULL), 1);
    /* RSA: keyEncipherment too. */
    assert_true(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT);
    X509_free(x);
    X509_REQ_free(csr);
    /* A bad host name never makes it into a CSR. */
    const char *bad[] = {"kms b"};
    assert_int_equal(certs_csr_new(k, "kms", bad, 1, &csr), KMS_ERR_INVAL);
    EVP_PKEY_free(k);
}

/* A CSR asking for `n` SANs of GENERAL_NAME type `type` ("x%d" DNS names,
 * or email addresses). */
static X509_REQ *csr_asking(EVP_PKEY *k, int type, int n)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    assert_non_null(req);
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)"greedy",
                               -1, -1, 0);
    for (int i = 0; i < n; i++) {
        char s[32];
        snprintf(s, sizeof(s), type == GEN_EMAIL ? "x%d@example.com" : "x%d.example", i);
        ASN1_IA5STRING *v = ASN1_IA5STRING_new();
        ASN1_STRING_set(v, s, -1);
        GENERAL_NAME *g = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(g, type, v);
        sk_GENERAL_NAME_push(gens, g);
    }
    sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens));
    X509_REQ_add_extensions(req, exts);
    X509_REQ_set_subject_name(req, name);
    X509_REQ_set_pubkey(req, k);
    assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_NAME_free(name);
    return req;
}

static void test_server_csr_refusals(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    kms_error_t err;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);

    X509_REQ *mail = csr_asking(k, GEN_EMAIL, 1);
    assert_int_equal(certs_sign_server_csr(ca, ca_key, mail, 0, &x, &err), KMS_ERR_INVAL);
    assert_non_null(strstr(kms_error_msg(&err), "neither DNS nor IP"));
    X509_REQ_free(mail);

    X509_REQ *many = csr_asking(k, GEN_DNS, 65);
    assert_int_equal(certs_sign_server_csr(ca, ca_key, many, 0, &x, &err), KMS_ERR_LIMIT);
    X509_REQ_free(many);
    X509_REQ *enough = csr_asking(k, GEN_DNS, 64);
    assert_int_equal(certs_sign_server_csr(ca, ca_key, enough, 0, &x, &err), 0);
    assert_int_equal(san_count(x, GEN_DNS, "x63.example"), 1);
    X509_free(x);
    x = NULL;
    X509_REQ_free(enough);

    /* A CSR whose signature does not verify (subject changed after signing). */
    X509_REQ *csr = NULL;
    assert_int_equal(certs_csr_new(k, "node-x", NULL, 0, &csr), 0);
    X509_NAME *other = X509_NAME_new();
    X509_NAME_add_entry_by_NID(other, NID_commonName, MBSTRING_UTF8, (const unsigned char *)"node-y",
                               -1, -1, 0);
    X509_REQ_set_subject_name(csr, other);
    X509_NAME_free(other);
    assert_int_equal(certs_sign_node_csr(ca, ca_key, csr, "node-y", 0, &x, &err), KMS_ERR_CRYPTO);
    assert_int_equal(certs_sign_server_csr(ca, ca_key, csr, 0, &x, &err), KMS_ERR_CRYPTO);
    assert_null(x);
    X509_REQ_free(csr);

    /* A weak key. */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    assert_non_null(weak);
    assert_int_equal(certs_csr_new(weak, "node-w", NULL, 0, &csr), 0);
    assert_int_equal(certs_sign_node_csr(ca, ca_key, csr, "node-w", 0, &x, &err), KMS_ERR_INVAL);
    assert_non_null(strstr(kms_error_msg(&err), "2048"));
    X509_REQ_free(csr);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(k);
}

static void test_pem_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *node = NULL, *back = NULL;
    X509_REQ *csr = NULL, *csr2 = NULL, *csr3 = NULL;
    kms_buf_t b;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_issue_node(ca, ca_key, k, "node-p", 0, &node), 0);
    kms_buf_init(&b, 1 << 16);
    assert_int_equal(certs_cert_pem(node, &b), 0);
    assert_non_null(memmem(b.data, b.len, "BEGIN CERTIFICATE", 17));
    assert_int_equal(certs_cert_parse(b.data, b.len, &back), 0);
    assert_int_equal(X509_cmp(node, back), 0);
    assert_true(certs_has_peer_role(back));
    kms_buf_reset(&b);

    const char *hosts[] = {"kms-p.example"};
    assert_int_equal(certs_csr_new(k, "kms-p.example", hosts, 1, &csr), 0);
    assert_int_equal(certs_csr_pem(csr, &b), 0);
    assert_int_equal(certs_csr_parse(b.data, b.len, &csr2), 0);
    assert_int_equal(X509_REQ_verify(csr2, k), 1);
    /* DER is accepted too. */
    unsigned char *der = NULL;
    int dl = i2d_X509_REQ(csr, &der);
    assert_true(dl > 0);
    assert_int_equal(certs_csr_parse(der, (size_t)dl, &csr3), 0);
    assert_int_equal(X509_REQ_verify(csr3, k), 1);
    OPENSSL_free(der);
    /* Garbage is not. */
    X509 *none = NULL;
    X509_REQ *none2 = NULL;
    assert_int_equal(certs_cert_parse("garbage", 7, &none), KMS_ERR_PROTO);
    assert_int_equal(certs_csr_parse("garbage", 7, &none2), KMS_ERR_PROTO);
    assert_int_equal(certs_cert_parse(b.data, b.len, &none), KMS_ERR_PROTO); /* a CSR */
    /* A cap on the output is honoured. */
    kms_buf_t small;
    kms_buf_init(&small, 16);
    assert_int_equal(certs_cert_pem(node, &small), KMS_ERR_LIMIT);
    kms_buf_dispose(&small);
    kms_buf_dispose(&b);
    X509_REQ_free(csr);
    X509_REQ_free(csr2);
    X509_REQ_free(csr3);
    X509_free(node);
    X509_free(back);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_cert_has_peer_role),
        cmocka_unit_test(test_node_csr),
        cmocka_unit_test(test_server_csr_names),
        cmocka_unit_test(test_server_csr_refusals),
        cmocka_unit_test(test_pem_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
