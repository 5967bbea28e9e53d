/* tests/unit/test_crypto_cert.c: certificates through crypto/crypto.h:
 * crypto_cert_check refusals (empty, truncated, trailing bytes), the
 * attributes crypto_cert_attrs derives from a certificate made here with
 * OpenSSL (serial number bytes and decimal text, DER and RFC 2253 names,
 * alternative names, Digital Signature Algorithm), and alternative names
 * that cannot be Text Strings (a NUL inside, bytes above 0x7F): kept as
 * DER, left out of the text form, so that every derived attribute encodes
 * as TTLV that decodes again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"

/* A self-signed P-256 certificate: serial 0x0102030405060708090A, subject
 * C=DE, O=Example, CN=kmsd test, and the given DNS names (raw bytes, so
 * that malformed ones can be made). DER, OPENSSL_malloc'ed. */
static int make_cert(const char *const *dns, const size_t *dns_len, size_t n, unsigned char **der)
{
    static const uint8_t serial[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    int len;

    assert_non_null(k);
    assert_non_null(gens);
    assert_true(ASN1_STRING_set(sn, serial, sizeof(serial)));
    assert_true(X509_set_serialNumber(x, sn));
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const unsigned char *)"DE", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Example", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"kmsd test", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, k);
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        assert_true(ASN1_STRING_set(s, dns[i], (int)dns_len[i]));
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, g);
    }
    if (n)
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT),
                         1);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    *der = NULL;
    len = i2d_X509(x, der);
    assert_true(len > 0);
    GENERAL_NAMES_free(gens);
    ASN1_INTEGER_free(sn);
    X509_free(x);
    EVP_PKEY_free(k);
    return len;
}

/* An Attribute Value encodes, decodes and is equal to itself after. */
static void assert_wire_clean(kms_arena_t *a, const ttlv_item_t *v)
{
    kms_buf_t b;
    ttlv_item_t *back = NULL;
    kms_error_t e = {0};
    assert_non_null(v);
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(ttlv_encode(v, &b), 0);
    assert_int_equal(ttlv_decode(b.data, b.len, NULL, a, &back, &e), 0);
    assert_true(ttlv_equal(v, back));
    kms_buf_dispose(&b);
}

static void test_cert_check(void **state)
{
    (void)state;
    unsigned char *der = NULL;
    kms_arena_t *a = kms_arena_new(0);
    crypto_cert_attrs_t ca;
    kms_error_t e = {0};
    int len = make_cert(NULL, NULL, 0, &der);
    uint8_t *longer = malloc((size_t)len + 1);

    assert_int_equal(crypto_cert_check(der, (size_t)len, &e), 0);
    assert_int_equal(crypto_cert_check(der, 0, &e), KMS_ERR_PROTO);
    assert_int_equal(e.code, KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    kms_error_clear(&e);
    assert_int_equal(crypto_cert_check(der, (size_t)len - 1, &e), KMS_ERR_PROTO);
    assert_int_equal(e.code, KMS_ERR_PROTO);
    assert_int_equal(e.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* One certificate and nothing after it. */
    memcpy(longer, der, (size_t)len);
    longer[len] = 0;
    assert_int_equal(crypto_cert_check(longer, (size_t)len + 1, &e), KMS_ERR_PROTO);
    assert_int_equal(crypto_cert_attrs(a, longer, (size_t)len + 1, &ca), KMS_ERR_PROTO);
    assert_null(ca.x509_identifier);
    assert_null(ca.subject);
    assert_int_equal(ca.sig_alg, 0);
    free(longer);
    OPENSSL_free(der);
    kms_arena_free(a);
}

static void test_cert_attrs(void **state)
{
    (void)state;
    static const char *const dns[] = {"kms.example.org", "backup.example.org"};
    static const size_t dns_len[] = {15, 18};
    unsigned char *der = NULL;
    kms_arena_t *a = kms_arena_new(0);
    crypto_cert_attrs_t ca;
    int len = make_cert(dns, dns_len, 2, &der);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, len);
    const unsigned char *nder = NULL;
    size_t nlen = 0;
    ttlv_item_t *it;

    assert_non_null(x);
    assert_int_equal(crypto_cert_attrs(a, der, (size_t)len, &ca), 0);
    /* KMIP 1.1 X.509 Certificate Identifier: issuer DER and serial bytes. */
    it = ttlv_find(ca.x509_identifier, KMIP_TAG_CERTIFICATE_SERIAL_NUMBER);
    assert_non_null(it);
    assert_int_equal(it->v.bytes.len, 10);
    assert_int_equal(it->v.bytes.ptr[0], 1);
    assert_int_equal(it->v.bytes.ptr[9], 10);
    assert_true(X509_NAME_get0_der(X509_get_issuer_name(x), &nder, &nlen));
    it = ttlv_find(ca.x509_identifier, KMIP_TAG_ISSUER_DISTINGUISHED_NAME);
    assert_int_equal(it->v.bytes.len, nlen);
    assert_memory_equal(it->v.bytes.ptr, nder, nlen);
    /* KMIP 1.0 text forms: RFC 2253 names (most specific first), decimal
     * serial. */
    assert_string_equal(ttlv_text(ttlv_find(ca.identifier, KMIP_TAG_SERIAL_NUMBER)),
                        "4759477275222530853130");
    assert_string_equal(ttlv_text(ttlv_find(ca.identifier, KMIP_TAG_ISSUER)),
                        "CN=kmsd test,O=Example,C=DE");
    assert_string_equal(
        ttlv_text(ttlv_find(ca.subject, KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME)),
        "CN=kmsd test,O=Example,C=DE");
    it = ttlv_find(ca.subject, KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME);
    assert_string_equal(ttlv_text(it), "kms.example.org");
    it = ttlv_find_next(it, KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME);
    assert_string_equal(ttlv_text(it), "backup.example.org");
    assert_int_equal(ttlv_count(ca.x509_subject, KMIP_TAG_SUBJECT_ALTERNATIVE_NAME), 2);
    assert_int_equal(ca.sig_alg, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256);
    const ttlv_item_t *all[] = {ca.x509_identifier, ca.x509_subject, ca.x509_issuer,
                                ca.identifier,      ca.subject,      ca.issuer};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(all); i++)
        assert_wire_clean(a, all[i]);
    X509_free(x);
    OPENSSL_free(der);
    kms_arena_free(a);
}

/* DNS names that are not text: one with a NUL inside (the old
 * "www.bank.example\0.attacker.example" trick) and one with a byte above
 * 0x7F. Both stay in the DER form of the KMIP 1.1 attribute; neither
 * becomes a Text String of the 1.0 one, which no TTLV decoder would take. */
static void test_cert_alt_names_not_text(void **state)
{
    (void)state;
    static const char *const dns[] = {"good.example", "bank.example\0.evil.example",
                                      "caf\xe9.example"};
    static const size_t dns_len[] = {12, 26, 12};
    unsigned char *der = NULL;
    kms_arena_t *a = kms_arena_new(0);
    crypto_cert_attrs_t ca;
    int len = make_cert(dns, dns_len, 3, &der);

    assert_int_equal(crypto_cert_attrs(a, der, (size_t)len, &ca), 0);
    assert_int_equal(ttlv_count(ca.x509_subject, KMIP_TAG_SUBJECT_ALTERNATIVE_NAME), 3);
    assert_int_equal(ttlv_count(ca.subject, KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME), 1);
    assert_string_equal(
        ttlv_text(ttlv_find(ca.subject, KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME)),
        "good.example");
    assert_wire_clean(a, ca.subject);
    assert_wire_clean(a, ca.x509_subject);
    OPENSSL_free(der);
    kms_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_check),
        cmocka_unit_test(test_cert_attrs),
        cmocka_unit_test(test_cert_alt_names_not_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
