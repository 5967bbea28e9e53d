/*
 * certs/identity.c: the facts the server and kmsctl match a certificate
 * on (SHA-256 fingerprint of the DER, subject CN, the kmsd peer role) and
 * chain verification against one CA.
 *
 * It does not decide who a certificate belongs to: the store's client table
 * and the server's auth code do.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

int certs_fingerprint_sha256(X509 *cert, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (cert == NULL || out == NULL)
        return KMS_ERR_INVAL;
    if (X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32) {
        ERR_clear_error();
        return KMS_ERR_CRYPTO;
    }
    kms_hex_encode(md, 32, out);
    return 0;
}

bool certs_has_peer_role(X509 *cert)
{
    bool found = false;
    if (cert == NULL)
        return false;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    ASN1_OBJECT *want = eku ? OBJ_txt2obj(CERTS_PEER_ROLE_OID, 1) : NULL;
    for (int i = 0; want && i < sk_ASN1_OBJECT_num(eku); i++)
        if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0)
            found = true;
    ASN1_OBJECT_free(want);
    EXTENDED_KEY_USAGE_free(eku);
    ERR_clear_error();
    return found;
}

/* The last CN of a name, as certs_subject_cn describes. */
static int name_cn(const X509_NAME *n, char *out, size_t outlen)
{
    unsigned char *utf8 = NULL;
    int rc;

    if (out == NULL || outlen == 0)
        return KMS_ERR_INVAL;
    int idx = -1, last = -1;
    while (n && (idx = X509_NAME_get_index_by_NID(n, NID_commonName, idx)) >= 0)
        last = idx;
    if (last < 0)
        return KMS_ERR_NOTFOUND;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, last));
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    if (len < 0) {
        rc = KMS_ERR_PROTO;
        goto out;
    }
    if (len == 0) {
        rc = KMS_ERR_NOTFOUND;
        goto out;
    }
    if (memchr(utf8, '\0', (size_t)len) != NULL) {
        rc = KMS_ERR_PROTO; /* "admin\0.evil": never let a NUL cut a name short */
        goto out;
    }
    if ((size_t)len >= outlen) {
        rc = KMS_ERR_LIMIT;
        goto out;
    }
    memcpy(out, utf8, (size_t)len);
    out[len] = '\0';
    rc = 0;
out:
    OPENSSL_free(utf8);
    ERR_clear_error();
    return rc;
}

int certs_subject_cn(X509 *cert, char *out, size_t outlen)
{
    if (cert == NULL)
        return KMS_ERR_INVAL;
    return name_cn(X509_get_subject_name(cert), out, outlen);
}

int certs_csr_cn(X509_REQ *csr, char *out, size_t outlen)
{
    if (csr == NULL)
        return KMS_ERR_INVAL;
    return name_cn(X509_REQ_get_subject_name(csr), out, outlen);
}

/* Verify `leaf` against the trust anchors in `st` (consumed). */
static int verify_in(X509_STORE *st, X509 *leaf, int purpose, kms_error_t *err)
{
    X509_STORE_CTX *ctx = NULL;
    int rc = KMS_ERR_CRYPTO;

    if ((ctx = X509_STORE_CTX_new()) == NULL || X509_STORE_CTX_init(ctx, st, leaf, NULL) != 1) {
        kms_error_set(err, rc, "cannot set up verification");
        goto out;
    }
    if (purpose != 0 && X509_STORE_CTX_set_purpose(ctx, purpose) != 1) {
        rc = KMS_ERR_INVAL;
        goto out;
    }
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
    } else {
        kms_error_set(err, rc, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    }
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    ERR_clear_error();
    return rc;
}

int certs_verify(X509 *ca, X509 *leaf, int purpose, kms_error_t *err)
{
    if (ca == NULL || leaf == NULL)
        return KMS_ERR_INVAL;
    X509_STORE *st = X509_STORE_new();
    if (st == NULL || X509_STORE_add_cert(st, ca) != 1) {
        X509_STORE_free(st);
        ERR_clear_error();
        return kms_error_set(err, KMS_ERR_CRYPTO, "cannot set up verification");
    }
    return verify_in(st, leaf, purpose, err);
}

int certs_verify_file(const char *ca_path, X509 *leaf, int purpose, kms_error_t *err)
{
    if (ca_path == NULL || leaf == NULL)
        return KMS_ERR_INVAL;
    X509_STORE *st = X509_STORE_new();
    if (st == NULL) {
        ERR_clear_error();
        return kms_error_set(err, KMS_ERR_NOMEM, "cannot set up verification");
    }
    /* Every certificate of the bundle becomes a trust anchor, as
     * SSL_CTX_load_verify_locations does for the handshake. */
    if (X509_STORE_load_file(st, ca_path) != 1) {
        X509_STORE_free(st);
        ERR_clear_error();
        return kms_error_set(err, KMS_ERR_IO, "cannot read the CA bundle %s", ca_path);
    }
    return verify_in(st, leaf, purpose, err);
}
