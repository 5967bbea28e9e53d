/*
 * crypto/chain.c: certificate chain validation for the KMIP Validate
 * operation (KMIP 1.4 section 4.24), on OpenSSL's X509_verify_cert.
 *
 * The caller hands over the certificates of one chain in any order, says
 * which of them it accepts as trust anchors (kmip/ marks the managed
 * certificates of the requester's tenant), and may add one more anchor
 * (the server's issuing CA). The end-entity certificate is the one that
 * issued none of the others. OpenSSL builds the path from it and checks
 * every signature (the root's self-signature included), every validity
 * period at the given time, the CA constraints, key usages and path
 * lengths. The verdict is KMIP's Validity Indicator:
 *   Invalid  a check failed, or the certificates are not one chain (two
 *            end entities, a certificate the path does not use);
 *   Unknown  every check that could be made passed, but the path does not
 *            reach a trust anchor (a missing issuer, a root that is not an
 *            anchor);
 *   Valid    the path reaches a trust anchor and every check passed.
 * Invalid outranks Unknown: the verify callback notes every error and lets
 * OpenSSL go on, so a bad signature below an unknown root is Invalid.
 * It deliberately does not fetch CRLs or OCSP answers (kmsd makes no
 * outbound connections) nor decide what kmsd knows of revocation: kmip/
 * does, from the objects' State.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "crypto/crypto_int.h"

/* What the verify callback saw. */
typedef struct chain_verdict {
    bool invalid;
    bool unanchored;
} chain_verdict_t;

static int verdict_idx = -1;
static CRYPTO_ONCE verdict_once = CRYPTO_ONCE_STATIC_INIT;

static void verdict_idx_init(void)
{
    verdict_idx = X509_STORE_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Errors that say only that the path does not end at a trust anchor. */
static bool anchor_error(int e)
{
    switch (e) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        return true;
    default:
        return false;
    }
}

/* Record the error and go on, so that every check is made. */
static int verify_cb(int ok, X509_STORE_CTX *sc)
{
    chain_verdict_t *v = X509_STORE_CTX_get_ex_data(sc, verdict_idx);
    if (!ok && v) {
        if (anchor_error(X509_STORE_CTX_get_error(sc)))
            v->unanchored = true;
        else
            v->invalid = true;
    }
    return 1;
}

/* The member of the first `n` of `set` equal to `x`, or NULL. */
static X509 *in_set(X509 *x, X509 *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (X509_cmp(x, set[i]) == 0)
            return set[i];
    return NULL;
}

int crypto_chain_validate(const crypto_chain_cert_t *certs, size_t n, X509 *anchor, int64_t at,
                          uint32_t *indicator_out, kms_error_t *err)
{
    X509 *x[CRYPTO_CHAIN_MAX];
    size_t nx = 0, leaves = 0, leaf = 0;
    X509_STORE *store = NULL;
    X509_STORE_CTX *sc = NULL;
    STACK_OF(X509) *untrusted = NULL;
    STACK_OF(X509) *path;
    chain_verdict_t v = {false, false};
    int rc = KMS_ERR_CRYPTO;

    kms_error_clear(err);
    *indicator_out = KMIP_VALIDITY_INDICATOR_INVALID;
    if (n == 0 || n > CRYPTO_CHAIN_MAX)
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "a chain of %zu certificates (1 to %d)", n, CRYPTO_CHAIN_MAX);
    if (CRYPTO_THREAD_run_once(&verdict_once, verdict_idx_init) != 1 || verdict_idx < 0)
        return crypto_error_ensure(err, KMS_ERR_CRYPTO);
    if (!(store = X509_STORE_new()) || !(untrusted = sk_X509_new_null()))
        goto out;
    for (size_t i = 0; i < n; i++) {
        X509 *c = crypto_cert_d2i(certs[i].der, certs[i].len);
        if (!c) {
            rc = kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                      "certificate %zu of the chain is not a DER X.509 "
                                      "certificate", i + 1);
            goto out;
        }
        X509 *seen = in_set(c, x, nx);
        if (seen) { /* the same certificate twice (by value and by id): once */
            X509_free(c);
            if (certs[i].anchor && X509_self_signed(seen, 0) == 1 &&
                !X509_STORE_add_cert(store, seen))
                goto out;
            continue;
        }
        x[nx++] = c;
        if (certs[i].anchor && X509_self_signed(c, 0) == 1) {
            if (!X509_STORE_add_cert(store, c))
                goto out;
        } else if (!sk_X509_push(untrusted, c)) {
            goto out;
        }
    }
    if (anchor && !X509_STORE_add_cert(store, anchor))
        goto out;
    /* The end entity issued none of the others; one chain has one. */
    for (size_t i = 0; i < nx; i++) {
        bool issuer = false;
        for (size_t j = 0; j < nx && !issuer; j++)
            issuer = j != i && X509_check_issued(x[i], x[j]) == X509_V_OK;
        if (!issuer) {
            leaf = i;
            leaves++;
        }
    }
    if (leaves != 1) {
        rc = 0; /* two end entities, or a loop: not one chain */
        goto out;
    }
    if (!(sc = X509_STORE_CTX_new()) || !X509_STORE_CTX_init(sc, store, x[leaf], untrusted) ||
        !X509_STORE_CTX_set_ex_data(sc, verdict_idx, &v))
        goto out;
    X509_STORE_CTX_set_verify_cb(sc, verify_cb);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(sc);
    X509_VERIFY_PARAM_set_time(param, (time_t)at);
    X509_VERIFY_PARAM_set_depth(param, CRYPTO_CHAIN_MAX);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CHECK_SS_SIGNATURE);
    if (X509_verify_cert(sc) < 0)
        goto out;
    /* Every certificate given must be on the path. */
    path = X509_STORE_CTX_get0_chain(sc);
    for (size_t i = 0; i < nx && !v.invalid; i++) {
        bool on_path = false;
        for (int k = 0; path && k < sk_X509_num(path) && !on_path; k++)
            on_path = X509_cmp(x[i], sk_X509_value(path, k)) == 0;
        v.invalid = !on_path;
    }
    *indicator_out = v.invalid      ? KMIP_VALIDITY_INDICATOR_INVALID
                     : v.unanchored ? KMIP_VALIDITY_INDICATOR_UNKNOWN
                                    : KMIP_VALIDITY_INDICATOR_VALID;
    rc = 0;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(sc);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    for (size_t i = 0; i < nx; i++)
        X509_free(x[i]);
    return crypto_error_ensure(err, rc);
}
