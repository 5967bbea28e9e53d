/*
 * crypto/hash.c: the Hash operation (KMIP 1.4 section 4.40): a digest of
 * the data, in parts when streamed, with the Hashing Algorithm of the
 * request's Cryptographic Parameters. No key, so nothing to check but the
 * algorithm.
 */
#include <stdlib.h>

#include <openssl/err.h>

#include "crypto/crypto_int.h"

typedef struct hash_op {
    crypto_op_t base;
    EVP_MD_CTX *ctx;
} hash_op_t;

static void hash_dispose(crypto_op_t *op)
{
    hash_op_t *h = (hash_op_t *)op;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

static int hash_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                       kms_error_t *err)
{
    (void)out;
    hash_op_t *h = (hash_op_t *)op;
    return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : crypto_failed(err, "hashing failed");
}

static int hash_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                      crypto_final_t *fin, kms_error_t *err)
{
    (void)held;
    (void)held_len;
    (void)fin;
    hash_op_t *h = (hash_op_t *)op;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1)
        return crypto_failed(err, "hashing failed");
    int rc = kms_buf_append(out, md, n);
    return rc ? kms_error_set(err, rc, "output too large") : 0;
}

int crypto_hash_start(const crypto_params_t *p, crypto_op_t **op_out, kms_error_t *err)
{
    kms_error_clear(err);
    *op_out = NULL;
    if (!p || !p->hash)
        return crypto_invalid(err, "Hashing Algorithm missing in the Cryptographic Parameters");
    const EVP_MD *md = crypto_md_get(p->hash);
    if (!md)
        return crypto_unsupported(err, "Hashing Algorithm %s not supported",
                                  crypto_enum_name(KMIP_TAG_HASHING_ALGORITHM, p->hash));
    hash_op_t *h = calloc(1, sizeof(*h));
    if (!h)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    crypto_op_init(&h->base, CRYPTO_SVC_HASH, true);
    h->base.update = hash_update;
    h->base.final = hash_final;
    h->base.dispose = hash_dispose;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
        ERR_clear_error();
        crypto_op_free(&h->base);
        return crypto_failed(err, "hash set-up failed");
    }
    *op_out = &h->base;
    return 0;
}
