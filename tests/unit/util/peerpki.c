/* tests/unit/util/peerpki.c: see peerpki.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "tests/unit/util/peerpki.h"

static void paths(const char *dir, const char *name, char *crt, char *key, size_t n)
{
    snprintf(crt, n, "%s/%s.crt", dir, name);
    snprintf(key, n, "%s/%s.key", dir, name);
}

int kms_test_pki_ca(const char *dir, const char *name)
{
    char crt[512], key[512];
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    int rc = -1;
    paths(dir, name, crt, key, sizeof crt);
    if (certs_key_new(CERTS_KEY_EC_P256, &k) == 0 && certs_create_ca(k, name, 0, &x) == 0 &&
        certs_write_key_pem(key, k, true) == 0 && certs_write_cert_pem(crt, x, true) == 0)
        rc = 0;
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static int ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

int kms_test_pki_node(const char *dir, const char *ca, const char *node, bool peer_role)
{
    char crt[512], key[512], cacrt[512], cakey[512], eku[128];
    EVP_PKEY *k = NULL, *cak = NULL;
    X509 *cax = NULL, *x = NULL;
    X509_NAME *nm = NULL;
    int rc = -1;
    paths(dir, node, crt, key, sizeof crt);
    paths(dir, ca, cacrt, cakey, sizeof cacrt);
    snprintf(eku, sizeof eku, peer_role ? "serverAuth,clientAuth,%s" : "clientAuth",
             CERTS_PEER_ROLE_OID);
    if (certs_load_ca(cacrt, cakey, &cax, &cak, NULL) != 0 ||
        certs_key_new(CERTS_KEY_EC_P256, &k) != 0 || !(x = X509_new()) || !(nm = X509_NAME_new()))
        goto out;
    BIGNUM *bn = BN_new();
    if (!bn || BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
        BN_free(bn);
        goto out;
    }
    BN_free(bn);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 30, 0, NULL) ||
        X509_NAME_add_entry_by_NID(nm, NID_commonName, MBSTRING_UTF8, (const unsigned char *)node,
                                   -1, -1, 0) != 1 ||
        X509_set_subject_name(x, nm) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(cax)) != 1 || X509_set_pubkey(x, k) != 1)
        goto out;
    if (ext(x, cax, NID_basic_constraints, "critical,CA:FALSE") ||
        ext(x, cax, NID_key_usage, "critical,digitalSignature") ||
        ext(x, cax, NID_ext_key_usage, eku) || X509_sign(x, cak, EVP_sha256()) <= 0)
        goto out;
    if (certs_write_key_pem(key, k, true) == 0 && certs_write_cert_pem(crt, x, true) == 0)
        rc = 0;
out:
    ERR_clear_error();
    X509_NAME_free(nm);
    X509_free(x);
    X509_free(cax);
    EVP_PKEY_free(k);
    EVP_PKEY_free(cak);
    return rc;
}

int kms_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

void kms_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}
