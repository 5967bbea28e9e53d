/*
 * crypto/cert.c: X.509 certificates as KMIP sees them.
 *
 * Checks that a Certificate Value is one DER certificate, and derives the
 * attributes KMIP takes from it on Register: X.509 Certificate Identifier
 * / Subject / Issuer (KMIP 1.1: DER names, serial number bytes,
 * subject/issuer alternative names), their KMIP 1.0 text forms
 * Certificate Identifier / Subject / Issuer (RFC 2253 names, decimal
 * serial), and the Digital Signature Algorithm. Parsing only: no chain
 * building or trust decisions.
 */
#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto_int.h"

static const struct { int nid; uint32_t kmip; } sig_algs[] = {
    {NID_md2WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_MD2_WITH_RSA_ENCRYPTION},
    {NID_md5WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_MD5_WITH_RSA_ENCRYPTION},
    {NID_sha1WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA1_WITH_RSA_ENCRYPTION},
    {NID_sha224WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA224_WITH_RSA_ENCRYPTION},
    {NID_sha256WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA256_WITH_RSA_ENCRYPTION},
    {NID_sha384WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA384_WITH_RSA_ENCRYPTION},
    {NID_sha512WithRSAEncryption, KMIP_DIGITAL_SIGNATURE_ALGORITHM_SHA512_WITH_RSA_ENCRYPTION},
    {NID_rsassaPss, KMIP_DIGITAL_SIGNATURE_ALGORITHM_RSASSA_PSS},
    {NID_dsaWithSHA1, KMIP_DIGITAL_SIGNATURE_ALGORITHM_DSA_WITH_SHA1},
    {NID_dsa_with_SHA224, KMIP_DIGITAL_SIGNATURE_ALGORITHM_DSA_WITH_SHA224},
    {NID_dsa_with_SHA256, KMIP_DIGITAL_SIGNATURE_ALGORITHM_DSA_WITH_SHA256},
    {NID_ecdsa_with_SHA1, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA1},
    {NID_ecdsa_with_SHA224, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA224},
    {NID_ecdsa_with_SHA256, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256},
    {NID_ecdsa_with_SHA384, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA384},
    {NID_ecdsa_with_SHA512, KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA512},
};

X509 *crypto_cert_d2i(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x;

    if (len == 0 || len > LONG_MAX)
        return NULL;
    x = d2i_X509(NULL, &p, (long)len);
    if (x && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    ERR_clear_error();
    return x;
}

int crypto_cert_check(const uint8_t *der, size_t len, kms_error_t *err)
{
    X509 *x;

    if (len == 0)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "empty Certificate Value");
    x = crypto_cert_d2i(der, len);
    if (!x)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Certificate Value is not a DER X.509 certificate");
    X509_free(x);
    return 0;
}

int crypto_cert_object_value(const ttlv_item_t *obj, const uint8_t **der_out, size_t *len_out,
                             kms_error_t *err)
{
    const ttlv_item_t *t = crypto_find_typed(obj, KMIP_TAG_CERTIFICATE_TYPE, TTLV_ENUMERATION);
    const ttlv_item_t *v = crypto_find_typed(obj, KMIP_TAG_CERTIFICATE_VALUE, TTLV_BYTE_STRING);

    *der_out = NULL;
    *len_out = 0;
    if (!t || !v)
        return kms_error_set_reason(err, KMS_ERR_PROTO, KMIP_RESULT_REASON_MISSING_DATA,
                                    "Certificate needs Certificate Type and Certificate Value");
    if (ttlv_u32(t) != KMIP_CERTIFICATE_TYPE_X_509)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "only X.509 certificates are supported");
    *der_out = v->v.bytes.ptr;
    *len_out = v->v.bytes.len;
    return 0;
}

/* DER of an X509_NAME as a Byte String child. */
static int add_name_der(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const X509_NAME *n)
{
    const unsigned char *der = NULL;
    size_t len = 0;
    if (!X509_NAME_get0_der(n, &der, &len))
        return KMS_ERR_CRYPTO;
    return ttlv_new_bytes(a, parent, tag, der, len) ? 0 : KMS_ERR_NOMEM;
}

/* RFC 2253 text of an X509_NAME as a Text String child. */
static int add_name_text(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    long len;
    int rc = KMS_ERR_NOMEM;
    if (!b)
        return KMS_ERR_NOMEM;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) < 0) {
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    len = BIO_get_mem_data(b, &p);
    if (len >= 0 && ttlv_new_text(a, parent, tag, p ? p : "", (size_t)len))
        rc = 0;
out:
    BIO_free(b);
    return rc;
}

/* A DNS name, e-mail address or URI (IA5String) that can be a Text String:
 * ASCII without NUL. IA5 allows nothing else but parsers accept more, and
 * a NUL inside a name is an old forgery trick. Anything else would give
 * the object an attribute that no TTLV decoder (ours included, when the
 * object is loaded again) accepts. */
static bool ia5_is_text(const ASN1_STRING *s)
{
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    for (int i = 0; i < n; i++)
        if (p[i] == 0 || p[i] > 0x7F)
            return false;
    return true;
}

/* Alternative names (GENERAL_NAMES) of extension `nid`: DER of each as a
 * Byte String under `bytes_tag` and, for DNS names, e-mail addresses and
 * URIs that are plain ASCII, its text under `text_tag` (either parent may
 * be NULL). */
static int add_alt_names(kms_arena_t *a, X509 *x, int nid, ttlv_item_t *bparent, uint32_t bytes_tag,
                         ttlv_item_t *tparent, uint32_t text_tag)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, nid, NULL, NULL);
    int rc = 0;
    if (!gens)
        return 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        unsigned char *der = NULL;
        int dlen = i2d_GENERAL_NAME(g, &der);
        if (dlen > 0 && bparent && !ttlv_new_bytes(a, bparent, bytes_tag, der, (size_t)dlen))
            rc = KMS_ERR_NOMEM;
        OPENSSL_free(der);
        if (rc == 0 && tparent) {
            int type = 0;
            ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
            if ((type == GEN_DNS || type == GEN_EMAIL || type == GEN_URI) && s &&
                ia5_is_text(s) &&
                !ttlv_new_text(a, tparent, text_tag, (const char *)ASN1_STRING_get0_data(s),
                               (size_t)ASN1_STRING_length(s)))
                rc = KMS_ERR_NOMEM;
        }
    }
    GENERAL_NAMES_free(gens);
    return rc;
}

int crypto_cert_attrs(kms_arena_t *a, const uint8_t *der, size_t len,
                      crypto_cert_attrs_t *attrs_out)
{
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL;
    uint8_t *serial = NULL;
    unsigned char *der_serial = NULL;
    int der_serial_len;
    crypto_cert_attrs_t r = {0};
    int rc = KMS_ERR_NOMEM, n;

    memset(attrs_out, 0, sizeof(*attrs_out));
    x = crypto_cert_d2i(der, len);
    if (!x)
        return KMS_ERR_PROTO;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (!bn)
        goto out;
    hex = BN_bn2dec(bn); /* the 1.0 text form: decimal, as in the KMIP 1.1 test cases */
    /* The 1.1+ Certificate Serial Number: the bytes of the DER INTEGER's
     * value (two's complement, big-endian: a leading 00 when the top bit
     * is set), exactly as the certificate carries them. */
    der_serial_len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der_serial);
    if (!hex || der_serial_len < 3)
        goto out;
    {
        /* Skip the INTEGER's tag and length octets (short or long form). */
        size_t hdr = der_serial[1] < 0x80 ? 2 : 2 + (size_t)(der_serial[1] & 0x7f);
        if (hdr >= (size_t)der_serial_len)
            goto out;
        n = (int)((size_t)der_serial_len - hdr);
        serial = kms_arena_memdup(a, der_serial + hdr, (size_t)n);
        if (!serial)
            goto out;
    }

    r.x509_identifier = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    r.x509_subject = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    r.x509_issuer = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    r.identifier = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    r.subject = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    r.issuer = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
    if (!r.x509_identifier || !r.x509_subject || !r.x509_issuer || !r.identifier || !r.subject ||
        !r.issuer)
        goto out;
    if ((rc = add_name_der(a, r.x509_identifier, KMIP_TAG_ISSUER_DISTINGUISHED_NAME,
                           X509_get_issuer_name(x))))
        goto out;
    rc = KMS_ERR_NOMEM;
    if (!ttlv_new_bytes(a, r.x509_identifier, KMIP_TAG_CERTIFICATE_SERIAL_NUMBER, serial,
                        n > 0 ? (size_t)n : 0))
        goto out;
    if ((rc = add_name_der(a, r.x509_subject, KMIP_TAG_SUBJECT_DISTINGUISHED_NAME,
                           X509_get_subject_name(x))) ||
        (rc = add_name_der(a, r.x509_issuer, KMIP_TAG_ISSUER_DISTINGUISHED_NAME,
                           X509_get_issuer_name(x))) ||
        (rc = add_name_text(a, r.identifier, KMIP_TAG_ISSUER, X509_get_issuer_name(x))))
        goto out;
    rc = KMS_ERR_NOMEM;
    if (!ttlv_new_textz(a, r.identifier, KMIP_TAG_SERIAL_NUMBER, hex))
        goto out;
    if ((rc = add_name_text(a, r.subject, KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME,
                            X509_get_subject_name(x))) ||
        (rc = add_name_text(a, r.issuer, KMIP_TAG_CERTIFICATE_ISSUER_DISTINGUISHED_NAME,
                            X509_get_issuer_name(x))) ||
        (rc = add_alt_names(a, x, NID_subject_alt_name, r.x509_subject,
                            KMIP_TAG_SUBJECT_ALTERNATIVE_NAME, r.subject,
                            KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME)) ||
        (rc = add_alt_names(a, x, NID_issuer_alt_name, r.x509_issuer,
                            KMIP_TAG_ISSUER_ALTERNATIVE_NAME, r.issuer,
                            KMIP_TAG_CERTIFICATE_ISSUER_ALTERNATIVE_NAME)))
        goto out;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(sig_algs); i++)
        if (sig_algs[i].nid == X509_get_signature_nid(x))
            r.sig_alg = sig_algs[i].kmip;
    *attrs_out = r;
    rc = 0;
out:
    OPENSSL_free(der_serial);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    ERR_clear_error();
    return rc;
}
