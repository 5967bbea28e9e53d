/*
 * crypto/pkeycache.c: a bounded cache of parsed asymmetric keys.
 *
 * OpenSSL 3.0 parses a PKCS#8 or SubjectPublicKeyInfo DER through its
 * decoder framework, which costs 0.7 ms for a P-256 key and 1 ms for
 * RSA-2048 here: twenty times an ECDSA signature. The cryptographic
 * services therefore keep the EVP_PKEY of recently used keys, looked up by
 * the SHA-256 of the DER (so the same bytes always give the same key and
 * a changed key can never be served stale). Entries unused for `idle_s`
 * are dropped whenever the cache is touched; past `max` entries the least
 * recently used goes. An EVP_PKEY may be used by several threads at once
 * (OpenSSL 3 keys are read-only once made); references are counted, so an
 * evicted key lives until its last user frees it. Private keys in here are
 * in OpenSSL's memory (cleared when freed), not in kms_secret_t: the price
 * of not parsing them on every request, bounded by size and idle time.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto/crypto_int.h"

typedef struct pk_entry {
    uint8_t id[32];          /* SHA-256 of (is_private, fmt, DER) */
    EVP_PKEY *pkey;
    uint64_t last_ns;
} pk_entry_t;

struct crypto_pkey_cache {
    pthread_mutex_t mu;
    pk_entry_t *e;
    size_t n, max;
    uint64_t idle_ns;
};

int crypto_pkey_cache_new(size_t max, uint32_t idle_s, crypto_pkey_cache_t **out)
{
    crypto_pkey_cache_t *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c || !(c->e = calloc(max ? max : 1, sizeof(*c->e))) || pthread_mutex_init(&c->mu, NULL)) {
        if (c)
            free(c->e);
        free(c);
        return KMS_ERR_NOMEM;
    }
    c->max = max ? max : 1;
    c->idle_ns = (uint64_t)(idle_s ? idle_s : 60) * 1000000000ull;
    *out = c;
    return 0;
}

void crypto_pkey_cache_free(crypto_pkey_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        EVP_PKEY_free(c->e[i].pkey);
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c);
}

/* Drop idle entries (lock held); their keys go to `drop` for freeing
 * outside the lock. Returns how many. */
static size_t sweep_locked(crypto_pkey_cache_t *c, uint64_t now, EVP_PKEY **drop, size_t room)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n && k < room;) {
        if (now - c->e[i].last_ns > c->idle_ns) {
            drop[k++] = c->e[i].pkey;
            c->e[i] = c->e[--c->n];
        } else {
            i++;
        }
    }
    return k;
}

int crypto_pkey_cache_load(crypto_pkey_cache_t *c, uint32_t fmt, bool is_private,
                           const uint8_t *der, size_t len, EVP_PKEY **pkey_out, kms_error_t *err)
{
    uint8_t id[32], hdr[5] = {is_private, (uint8_t)(fmt >> 24), (uint8_t)(fmt >> 16),
                              (uint8_t)(fmt >> 8), (uint8_t)fmt};
    EVP_PKEY *drop[8], *pk = NULL;
    size_t ndrop;
    int rc;
    *pkey_out = NULL;
    if (!c)
        return crypto_pkey_load(fmt, is_private, der, len, pkey_out, err);
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    const EVP_MD *sha = crypto_md_get(KMIP_HASHING_ALGORITHM_SHA_256);
    unsigned int hn = 0;
    bool ok = h && sha && EVP_DigestInit_ex(h, sha, NULL) == 1 &&
              EVP_DigestUpdate(h, hdr, sizeof(hdr)) == 1 && EVP_DigestUpdate(h, der, len) == 1 &&
              EVP_DigestFinal_ex(h, id, &hn) == 1;
    EVP_MD_CTX_free(h);
    if (!ok)
        return crypto_pkey_load(fmt, is_private, der, len, pkey_out, err);
    uint64_t now = kms_mono_ns();
    pthread_mutex_lock(&c->mu);
    ndrop = sweep_locked(c, now, drop, KMS_ARRAY_SIZE(drop));
    for (size_t i = 0; i < c->n; i++)
        if (CRYPTO_memcmp(c->e[i].id, id, sizeof(id)) == 0 && EVP_PKEY_up_ref(c->e[i].pkey) == 1) {
            pk = c->e[i].pkey;
            c->e[i].last_ns = now;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < ndrop; i++)
        EVP_PKEY_free(drop[i]);
    if (pk) {
        *pkey_out = pk;
        return 0;
    }
    if ((rc = crypto_pkey_load(fmt, is_private, der, len, &pk, err)))
        return rc;
    EVP_PKEY *evicted = NULL;
    pthread_mutex_lock(&c->mu);
    size_t slot = c->n;
    if (c->n == c->max) { /* the least recently used goes */
        slot = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->e[i].last_ns < c->e[slot].last_ns)
                slot = i;
        evicted = c->e[slot].pkey;
    } else {
        c->n++;
    }
    if (EVP_PKEY_up_ref(pk) == 1) {
        memcpy(c->e[slot].id, id, sizeof(id));
        c->e[slot].pkey = pk;
        c->e[slot].last_ns = now;
    } else {
        c->e[slot] = c->e[--c->n];
    }
    pthread_mutex_unlock(&c->mu);
    EVP_PKEY_free(evicted);
    *pkey_out = pk;
    return 0;
}
