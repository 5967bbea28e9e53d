/* tests/unit/test_certs_issue.c: certs/ against real OpenSSL: a CA, server
 * and client certificates that chain (X509_verify_cert), their SANs, EKUs,
 * serials and validity; signing a real CSR and refusing broken ones;
 * fingerprint and CN; key files created 0600 with O_EXCL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

static char tmpdir[256];

/* One EC CA for most tests (key generation is the slow part). */
static EVP_PKEY *ca_key;
static X509 *ca;

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kmsd-certs-test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if (certs_key_new(CERTS_KEY_EC_P256, &ca_key) != 0)
        return -1;
    return certs_create_ca(ca_key, "kmsd test CA", 0, &ca);
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Seconds from now until the certificate's notAfter. */
static long long seconds_left(X509 *x)
{
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    return (long long)days * 86400 + secs;
}

static uint32_t xku(X509 *x)
{
    return X509_get_extended_key_usage(x);
}

static void test_ca(void **state)
{
    (void)state;
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    assert_int_equal(X509_verify(ca, pub), 1);
    /* keyCertSign + cRLSign, nothing else. */
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_int_equal(X509_get_pathlen(ca), 0);
    /* 10 years by default (allow a minute of slack). */
    long long left = seconds_left(ca);
    assert_true(left > 3650LL * 86400 - 60 && left <= 3650LL * 86400);
    /* notBefore is in the past. */
    assert_true(X509_cmp_current_time(X509_get0_notBefore(ca)) < 0);
    char cn[64];
    assert_int_equal(certs_subject_cn(ca, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "kmsd test CA");
    /* CA verifies as its own trust anchor. */
    kms_error_t err = {0};
    assert_int_equal(certs_verify(ca, ca, 0, &err), 0);
}

static void test_serials(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *a = NULL, *b = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_issue_client(ca, ca_key, k, "a", 0, &a), 0);
    assert_int_equal(certs_issue_client(ca, ca_key, k, "a", 0, &b), 0);
    BIGNUM *sa = ASN1_INTEGER_to_BN(X509_get0_serialNumber(a), NULL);
    BIGNUM *sb = ASN1_INTEGER_to_BN(X509_get0_serialNumber(b), NULL);
    assert_int_equal(BN_num_bits(sa), 128);
    assert_int_equal(BN_num_bits(sb), 128);
    assert_false(BN_is_negative(sa));
    assert_int_not_equal(BN_cmp(sa, sb), 0);
    BN_free(sa);
    BN_free(sb);
    /* Same key and name, different certificates: fingerprints differ. */
    char fa[65], fb[65];
    assert_int_equal(certs_fingerprint_sha256(a, fa), 0);
    assert_int_equal(certs_fingerprint_sha256(b, fb), 0);
    assert_string_not_equal(fa, fb);
    X509_free(a);
    X509_free(b);
    EVP_PKEY_free(k);
}

static void test_server_cert(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    kms_error_t err = {0};
    const char *hosts[] = {"kms.example.com", "10.1.2.3", "[fd00::5]", "localhost", "127.0.0.1"};
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_issue_server(ca, ca_key, k, "kms.example.com", hosts, 5, 0, &x), 0);

    /* Chains to the CA, usable both as a TLS server and a TLS client. */
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_SERVER, &err), 0);
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_CLIENT, &err), 0);
    assert_int_equal(xku(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);

    /* Raw X509_verify_cert too, with the SSL server purpose and host check. */
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(st, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, st, x, NULL), 1);
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    assert_int_equal(X509_VERIFY_PARAM_set1_host(vp, "kms.example.com", 0), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);

    /* SANs: every host given plus localhost, 127.0.0.1, ::1, each once. */
    assert_int_equal(X509_check_host(x, "kms.example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example.com", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "fd00::5", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.4", 0), 0);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    /* 5 given (localhost and 127.0.0.1 among them) + the 3 always added, each once. */
    assert_int_equal(sk_GENERAL_NAME_num(gens), 6);
    int n_localhost = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS && strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), "localhost") == 0)
            n_localhost++;
    }
    assert_int_equal(n_localhost, 1);
    GENERAL_NAMES_free(gens);

    /* 825 days by default. */
    long long left = seconds_left(x);
    assert_true(left > 825LL * 86400 - 60 && left <= 825LL * 86400);
    X509_free(x);

    /* Custom validity; no hosts at all still gives the loopback names. */
    assert_int_equal(certs_issue_server(ca, ca_key, k, "kmsd", NULL, 0, 30, &x), 0);
    left = seconds_left(x);
    assert_true(left > 30LL * 86400 - 60 && left <= 30LL * 86400);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    X509_free(x);

    /* A host that is neither an IP nor a DNS name is refused. */
    const char *bad[] = {"evil,DNS:x"};
    x = NULL;
    assert_int_equal(certs_issue_server(ca, ca_key, k, "kmsd", bad, 1, 0, &x), KMS_ERR_INVAL);
    assert_null(x);
    assert_int_equal(certs_issue_server(ca, ca_key, k, "kmsd", NULL, 0, -1, &x), KMS_ERR_INVAL);
    assert_int_equal(certs_issue_server(ca, ca_key, k, "kmsd", NULL, 0, CERTS_MAX_DAYS + 1, &x),
                     KMS_ERR_INVAL);
    /* The CA key must belong to the CA certificate. */
    assert_int_equal(certs_issue_server(ca, k, k, "kmsd", NULL, 0, 0, &x), KMS_ERR_INVAL);
    assert_null(x);
    EVP_PKEY_free(k);
}

static void test_client_cert(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    kms_error_t err = {0};
    char cn[64], fp[65];
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_issue_client(ca, ca_key, k, "admin", 0, &x), 0);
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_CLIENT, &err), 0);
    /* clientAuth only: refused as a server certificate. */
    assert_int_equal(xku(x), XKU_SSL_CLIENT);
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_SERVER, &err), KMS_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "purpose"));
    assert_int_equal(certs_subject_cn(x, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "admin");
    /* CN into a too-small buffer is an error, not a truncation. */
    assert_int_equal(certs_subject_cn(x, cn, 5), KMS_ERR_LIMIT);

    /* Fingerprint = lower-case hex SHA-256 of the DER. */
    assert_int_equal(certs_fingerprint_sha256(x, fp), 0);
    unsigned char *der = NULL, md[32];
    int dl = i2d_X509(x, &der);
    assert_true(dl > 0);
    assert_int_equal(EVP_Digest(der, (size_t)dl, md, NULL, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
    char want[65];
    kms_hex_encode(md, 32, want);
    assert_string_equal(fp, want);
    assert_int_equal(strlen(fp), 64);
    for (size_t i = 0; i < 64; i++)
        assert_true((fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'a' && fp[i] <= 'f'));
    X509_free(x);

    /* A certificate of another CA does not verify against ours. */
    EVP_PKEY *k2 = NULL;
    X509 *ca2 = NULL, *x2 = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k2), 0);
    assert_int_equal(certs_create_ca(k2, "other CA", 0, &ca2), 0);
    assert_int_equal(certs_issue_client(ca2, k2, k, "admin", 0, &x2), 0);
    assert_int_equal(certs_verify(ca, x2, X509_PURPOSE_SSL_CLIENT, &err), KMS_ERR_CRYPTO);
    assert_int_equal(certs_verify(ca2, x2, X509_PURPOSE_SSL_CLIENT, &err), 0);
    X509_free(x2);
    X509_free(ca2);
    EVP_PKEY_free(k2);
    /* A name longer than X.520's 64 characters is refused. */
    char longname[80];
    memset(longname, 'a', 79);
    longname[79] = '\0';
    x = NULL;
    assert_int_equal(certs_issue_client(ca, ca_key, k, longname, 0, &x), KMS_ERR_INVAL);
    assert_null(x);
    EVP_PKEY_free(k);
}

static void test_rsa_chain(void **state)
{
    (void)state;
    EVP_PKEY *rk = NULL, *sk = NULL;
    X509 *rca = NULL, *srv = NULL;
    kms_error_t err = {0};
    assert_int_equal(certs_key_new(CERTS_KEY_RSA_3072, &rk), 0);
    assert_true(EVP_PKEY_is_a(rk, "RSA"));
    assert_int_equal(EVP_PKEY_get_bits(rk), 3072);
    assert_int_equal(certs_create_ca(rk, "kmsd RSA CA", 0, &rca), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_RSA_3072, &sk), 0);
    const char *hosts[] = {"kms"};
    assert_int_equal(certs_issue_server(rca, rk, sk, "kms", hosts, 1, 0, &srv), 0);
    assert_int_equal(certs_verify(rca, srv, X509_PURPOSE_SSL_SERVER, &err), 0);
    assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_signature_nid(srv), NID_sha256WithRSAEncryption);
    X509_free(srv);
    X509_free(rca);
    EVP_PKEY_free(sk);
    EVP_PKEY_free(rk);
    assert_int_equal(certs_key_new((enum certs_key_type)7, &rk), KMS_ERR_INVAL);
}

/* A CSR as a client (vCenter) would make it, optionally asking for CA:TRUE. */
static X509_REQ *make_csr(EVP_PKEY *k, const char *cn, int ask_for_ca)
{
    X509_REQ *r = X509_REQ_new();
    assert_non_null(r);
    X509_NAME *n = X509_REQ_get_subject_name(r);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"VMware", -1, -1, 0), 1);
    if (cn)
        assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
    assert_int_equal(X509_REQ_set_pubkey(r, k), 1);
    if (ask_for_ca) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
        assert_non_null(e);
        sk_X509_EXTENSION_push(exts, e);
        assert_int_equal(X509_REQ_add_extensions(r, exts), 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    assert_true(X509_REQ_sign(r, k, EVP_sha256()) > 0);
    return r;
}

static void test_sign_csr(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    kms_error_t err = {0};
    char cn[64];
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    X509_REQ *r = make_csr(k, "vcenter.example.com", 1);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 0, &x, &err), 0);
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_CLIENT, &err), 0);
    /* Our extensions, not the CSR's: CA:FALSE, clientAuth only. */
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(xku(x), XKU_SSL_CLIENT);
    /* Subject and key copied. */
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_REQ_get_subject_name(r)), 0);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    assert_int_equal(certs_subject_cn(x, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "vcenter.example.com");
    long long left = seconds_left(x);
    assert_true(left > 825LL * 86400 - 60 && left <= 825LL * 86400);
    X509_free(x);
    x = NULL;

    /* Broken signature: flip a bit of the CSR's signature. */
    const ASN1_BIT_STRING *sig = NULL;
    X509_REQ_get0_signature(r, &sig, NULL);
    assert_non_null(sig);
    ((ASN1_BIT_STRING *)sig)->data[sig->length / 2] ^= 0x01;
    kms_error_clear(&err);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 0, &x, &err), KMS_ERR_CRYPTO);
    assert_null(x);
    assert_non_null(strstr(err.msg, "signature"));
    X509_REQ_free(r);

    /* A CSR whose key was swapped after signing (not its own signature). */
    EVP_PKEY *k2 = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k2), 0);
    r = make_csr(k, "swap", 0);
    assert_int_equal(X509_REQ_set_pubkey(r, k2), 1);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 0, &x, &err), KMS_ERR_CRYPTO);
    assert_null(x);
    X509_REQ_free(r);

    /* No CN. */
    r = make_csr(k, NULL, 0);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 0, &x, &err), KMS_ERR_INVAL);
    assert_non_null(strstr(err.msg, "CN"));
    X509_REQ_free(r);

    /* A weak RSA key. */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    assert_non_null(weak);
    r = make_csr(weak, "weak", 0);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 0, &x, &err), KMS_ERR_INVAL);
    assert_non_null(strstr(err.msg, "2048"));
    X509_REQ_free(r);
    EVP_PKEY_free(weak);

    /* An RSA 2048 CSR is fine and gets keyEncipherment too. */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    r = make_csr(rsa, "rsa-client", 0);
    assert_int_equal(certs_sign_csr(ca, ca_key, r, 90, &x, &err), 0);
    assert_int_equal(certs_verify(ca, x, X509_PURPOSE_SSL_CLIENT, &err), 0);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    X509_free(x);
    X509_REQ_free(r);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k);
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_files(void **state)
{
    (void)state;
    char dir[300], kp[400], cp[400], rp[400], dp[400];
    snprintf(dir, sizeof(dir), "%s/files", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(kp, sizeof(kp), "%s/a.key", dir);
    snprintf(cp, sizeof(cp), "%s/a.crt", dir);
    EVP_PKEY *k = NULL, *k2 = NULL, *back = NULL;
    X509 *x = NULL, *xb = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k2), 0);
    mode_t old = umask(022);
    assert_int_equal(certs_write_key_pem(kp, k, false), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* Refuses to replace an existing key unless asked; the old one stays. */
    assert_int_equal(certs_write_key_pem(kp, k2, false), KMS_ERR_EXISTS);
    assert_int_equal(certs_load_key_pem(kp, &back), 0);
    assert_int_equal(EVP_PKEY_eq(back, k), 1);
    EVP_PKEY_free(back);
    assert_int_equal(certs_write_key_pem(kp, k2, true), 0);
    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(certs_load_key_pem(kp, &back), 0);
    assert_int_equal(EVP_PKEY_eq(back, k2), 1);
    EVP_PKEY_free(back);
    /* The file is PKCS#8 PEM. */
    FILE *f = fopen(kp, "r");
    char line[64] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");

    assert_int_equal(certs_issue_client(ca, ca_key, k, "files", 0, &x), 0);
    old = umask(022);
    assert_int_equal(certs_write_cert_pem(cp, x, false), 0);
    umask(old);
    assert_int_equal(stat(cp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(certs_write_cert_pem(cp, x, false), KMS_ERR_EXISTS);
    assert_int_equal(certs_load_cert_pem(cp, &xb), 0);
    assert_int_equal(X509_cmp(x, xb), 0);
    X509_free(xb);
    /* No temporary files left behind. */
    assert_int_equal(count_entries(dir), 2);

    /* Loading garbage or a missing file fails cleanly. */
    assert_int_equal(certs_load_cert_pem(kp, &xb), KMS_ERR_PROTO);
    snprintf(rp, sizeof(rp), "%s/missing", dir);
    assert_int_equal(certs_load_cert_pem(rp, &xb), KMS_ERR_IO);
    assert_int_equal(certs_load_key_pem(cp, &back), KMS_ERR_PROTO);
    /* Writing into a missing directory fails with IO and leaves nothing. */
    snprintf(rp, sizeof(rp), "%s/nodir/x.key", dir);
    assert_int_equal(certs_write_key_pem(rp, k, false), KMS_ERR_IO);

    /* CSR files, PEM and DER. */
    X509_REQ *r = make_csr(k, "csr-file", 0), *rb = NULL;
    snprintf(rp, sizeof(rp), "%s/r.pem", dir);
    snprintf(dp, sizeof(dp), "%s/r.der", dir);
    f = fopen(rp, "w");
    assert_int_equal(PEM_write_X509_REQ(f, r), 1);
    fclose(f);
    f = fopen(dp, "wb");
    assert_int_equal(i2d_X509_REQ_fp(f, r), 1);
    fclose(f);
    assert_int_equal(certs_load_csr(rp, &rb), 0);
    assert_int_equal(X509_NAME_cmp(X509_REQ_get_subject_name(rb), X509_REQ_get_subject_name(r)), 0);
    X509_REQ_free(rb);
    assert_int_equal(certs_load_csr(dp, &rb), 0);
    X509_REQ_free(rb);
    assert_int_equal(certs_load_csr(cp, &rb), KMS_ERR_PROTO);
    X509_REQ_free(r);

    /* PEM to a stream. */
    char *buf = NULL;
    size_t blen = 0;
    FILE *ms = open_memstream(&buf, &blen);
    assert_int_equal(certs_print_cert_pem(x, ms), 0);
    fclose(ms);
    assert_non_null(strstr(buf, "-----BEGIN CERTIFICATE-----"));
    free(buf);

    /* certs_load_ca: a matching pair loads; a group-readable key, a key of
     * another certificate, or a non-CA certificate does not. */
    char cak[400], cac[400];
    kms_error_t e2 = {0};
    X509 *lca = NULL;
    EVP_PKEY *lkey = NULL;
    snprintf(cak, sizeof(cak), "%s/ca.key", dir);
    snprintf(cac, sizeof(cac), "%s/ca.crt", dir);
    assert_int_equal(certs_write_key_pem(cak, ca_key, false), 0);
    assert_int_equal(certs_write_cert_pem(cac, ca, false), 0);
    assert_int_equal(certs_load_ca(cac, cak, &lca, &lkey, &e2), 0);
    assert_int_equal(X509_cmp(lca, ca), 0);
    assert_int_equal(EVP_PKEY_eq(lkey, ca_key), 1);
    X509_free(lca);
    EVP_PKEY_free(lkey);
    assert_int_equal(certs_load_ca(cac, kp, &lca, &lkey, &e2), KMS_ERR_INVAL);
    assert_non_null(strstr(e2.msg, "does not match"));
    assert_int_equal(certs_load_ca(cp, kp, &lca, &lkey, &e2), KMS_ERR_INVAL);
    assert_int_equal(chmod(cak, 0640), 0);
    assert_int_equal(certs_load_ca(cac, cak, &lca, &lkey, &e2), KMS_ERR_PERM);
    assert_non_null(strstr(e2.msg, "0640"));
    assert_int_equal(certs_load_ca(rp, cak, &lca, &lkey, &e2), KMS_ERR_PROTO);

    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca),
        cmocka_unit_test(test_serials),
        cmocka_unit_test(test_server_cert),
        cmocka_unit_test(test_client_cert),
        cmocka_unit_test(test_rsa_chain),
        cmocka_unit_test(test_sign_csr),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
