/*
 * hsm/gcm.c: one-shot AES-256-GCM on OpenSSL EVP, used for DSK sealing and
 * for the file provider's GCM unwrap. It does not choose nonces: callers
 * pass a fresh random 96-bit IV for every encryption.
 */
#include "hsm/hsm_int.h"

#include <limits.h>
#include <pthread.h>

#include <openssl/evp.h>

/* The cipher, fetched once: with OpenSSL 3 a legacy EVP_aes_256_gcm() makes
 * every EVP_CipherInit_ex fetch it again from the provider store (a lock
 * and a hash look-up), on every Get. Kept for the process's lifetime. */
static EVP_CIPHER *g_gcm;
static pthread_once_t g_gcm_once = PTHREAD_ONCE_INIT;
static void gcm_fetch(void)
{
    g_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}
static const EVP_CIPHER *gcm_cipher(void)
{
    pthread_once(&g_gcm_once, gcm_fetch);
    return g_gcm ? g_gcm : EVP_aes_256_gcm();
}

static int gcm(int enc, const uint8_t key[32], const uint8_t iv[HSM_GCM_IV_LEN], const uint8_t *aad,
               size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    int rc = KMS_ERR_CRYPTO, n = 0;
    size_t body = enc ? len : len - HSM_GCM_TAG_LEN;
    EVP_CIPHER_CTX *c = NULL;

    if (!enc && len < HSM_GCM_TAG_LEN)
        return KMS_ERR_CRYPTO;
    if (body > INT_MAX || aadlen > INT_MAX)
        return KMS_ERR_LIMIT;
    if (!(c = EVP_CIPHER_CTX_new()))
        return KMS_ERR_NOMEM;
    if (EVP_CipherInit_ex(c, gcm_cipher(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, HSM_GCM_IV_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) != 1)
        goto out;
    if (aadlen && EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1)
        goto out;
    if (body && EVP_CipherUpdate(c, out, &n, in, (int)body) != 1)
        goto out;
    if (enc) {
        if (EVP_CipherFinal_ex(c, out + body, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, HSM_GCM_TAG_LEN, out + body) != 1)
            goto out;
    } else {
        if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, HSM_GCM_TAG_LEN, (void *)(in + body)) != 1)
            goto out;
        if (EVP_CipherFinal_ex(c, out + body, &n) != 1) {
            kms_wipe(out, body); /* never hand out unauthenticated plaintext */
            goto out;
        }
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int hsm_gcm_encrypt(const uint8_t key[32], const uint8_t iv[HSM_GCM_IV_LEN], const uint8_t *aad,
                    size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    return gcm(1, key, iv, aad, aadlen, in, len, out);
}

int hsm_gcm_decrypt(const uint8_t key[32], const uint8_t iv[HSM_GCM_IV_LEN], const uint8_t *aad,
                    size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    return gcm(0, key, iv, aad, aadlen, in, len, out);
}
