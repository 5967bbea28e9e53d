/*
 * crypto/mac.c: MAC and MAC Verify (KMIP 1.2 sections 4.33, 4.34).
 *
 * HMAC with the hash of the key's algorithm (HMAC-SHA1 ... HMAC-SHA512,
 * HMAC-SHA3), and CMAC (NIST SP 800-38B) for AES and Triple DES keys, both
 * through EVP_MAC. A Secret Data object has no algorithm of its own: the
 * request's Cryptographic Parameters name the HMAC. Verification compares
 * in constant time and answers a verdict, not an error.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "crypto/crypto_int.h"

typedef struct mac_op {
    crypto_op_t base;
    EVP_MAC_CTX *ctx;
    bool verify;
    size_t size;
} mac_op_t;

static EVP_MAC *g_hmac, *g_cmac;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void mac_fetch(void)
{
    g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    g_cmac = EVP_MAC_fetch(NULL, "CMAC", NULL);
}

static void mac_dispose(crypto_op_t *op)
{
    mac_op_t *m = (mac_op_t *)op;
    EVP_MAC_CTX_free(m->ctx);
    free(m);
}

static int mac_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                      kms_error_t *err)
{
    (void)out;
    mac_op_t *m = (mac_op_t *)op;
    return EVP_MAC_update(m->ctx, data, len) == 1 ? 0 : crypto_failed(err, "MAC failed");
}

static int mac_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                     crypto_final_t *fin, kms_error_t *err)
{
    (void)held;
    (void)held_len;
    mac_op_t *m = (mac_op_t *)op;
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t n = 0;
    if (m->verify && !fin->check)
        return crypto_invalid(err, "MAC Data missing");
    if (EVP_MAC_final(m->ctx, mac, &n, sizeof(mac)) != 1)
        return crypto_failed(err, "MAC failed");
    if (m->verify) {
        fin->valid = fin->check_len == n && CRYPTO_memcmp(mac, fin->check, n) == 0;
        OPENSSL_cleanse(mac, sizeof(mac));
        return 0;
    }
    int rc = kms_buf_append(out, mac, n);
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc ? kms_error_set(err, rc, "output too large") : 0;
}

/* Which MAC: *hash_out for HMAC, or *cipher_out for CMAC. */
static int mac_choose(const crypto_key_t *key, const crypto_params_t *p, uint32_t *hash_out,
                      const char **cipher_out, kms_error_t *err)
{
    uint32_t kh = crypto_hmac_hash(key->alg), ph = crypto_hmac_hash(p->alg);
    *hash_out = 0;
    *cipher_out = NULL;
    if (p->alg && key->alg && p->alg != key->alg)
        return crypto_invalid(err, "the parameters name %s, the key is %s",
                              crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, p->alg),
                              crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, key->alg));
    if (kh || (!key->alg && ph)) {
        *hash_out = kh ? kh : ph;
        if (p->hash && p->hash != *hash_out)
            return crypto_invalid(err, "Hashing Algorithm %s does not fit %s",
                                  crypto_enum_name(KMIP_TAG_HASHING_ALGORITHM, p->hash),
                                  crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM,
                                                   kh ? key->alg : p->alg));
        return 0;
    }
    if (p->mode && p->mode != KMIP_BLOCK_CIPHER_MODE_CMAC)
        return crypto_invalid(err, "Block Cipher Mode %s is not a MAC here (CMAC)",
                              crypto_enum_name(KMIP_TAG_BLOCK_CIPHER_MODE, p->mode));
    if (key->alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_AES) {
        switch (key->raw_len) {
        case 16: *cipher_out = "AES-128-CBC"; return 0;
        case 24: *cipher_out = "AES-192-CBC"; return 0;
        case 32: *cipher_out = "AES-256-CBC"; return 0;
        default: return crypto_invalid(err, "an AES key of %zu bytes", key->raw_len);
        }
    }
    if (key->alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES) {
        if (key->raw_len != 16 && key->raw_len != 24)
            return crypto_invalid(err, "a Triple DES key of %zu bytes", key->raw_len);
        *cipher_out = key->raw_len == 24 ? "DES-EDE3-CBC" : "DES-EDE-CBC";
        return 0;
    }
    if (!key->alg)
        return crypto_invalid(err, "name the HMAC in the Cryptographic Parameters' "
                                   "Cryptographic Algorithm");
    return crypto_invalid(err, "%s keys do not MAC",
                          crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, key->alg));
}

int crypto_mac_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                     crypto_op_t **op_out, kms_error_t *err)
{
    uint32_t hash = 0;
    const char *cipher = NULL;
    int rc;
    kms_error_clear(err);
    *op_out = NULL;
    if (!key || !key->raw || !p || (svc != CRYPTO_SVC_MAC && svc != CRYPTO_SVC_MAC_VERIFY))
        return kms_error_set(err, KMS_ERR_INVAL, "bad arguments");
    if ((rc = mac_choose(key, p, &hash, &cipher, err)))
        return rc;
    pthread_once(&g_once, mac_fetch);
    const EVP_MD *md = hash ? crypto_md_get(hash) : NULL;
    if (hash ? !md || !g_hmac : !g_cmac)
        return crypto_unsupported(err, "this MAC is not available in this OpenSSL");
    mac_op_t *m = calloc(1, sizeof(*m));
    if (!m)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    crypto_op_init(&m->base, svc, true);
    m->base.update = mac_update;
    m->base.final = mac_final;
    m->base.dispose = mac_dispose;
    m->verify = svc == CRYPTO_SVC_MAC_VERIFY;
    m->ctx = EVP_MAC_CTX_new(hash ? g_hmac : g_cmac);
    OSSL_PARAM ps[2];
    ps[0] = hash ? OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                    (char *)EVP_MD_get0_name(md), 0)
                 : OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)cipher, 0);
    ps[1] = OSSL_PARAM_construct_end();
    if (!m->ctx)
        rc = kms_error_set(err, KMS_ERR_NOMEM, NULL);
    else if (EVP_MAC_init(m->ctx, key->raw, key->raw_len, ps) != 1)
        rc = crypto_invalid(err, "the MAC refused this key");
    if (rc) {
        ERR_clear_error();
        crypto_op_free(&m->base);
        return rc;
    }
    m->size = EVP_MAC_CTX_get_mac_size(m->ctx);
    *op_out = &m->base;
    return 0;
}
