/*
 * hsm/keyring.c: the data-store keys (DSKs) and envelope sealing.
 *
 * A DSK is a 32-byte AES-256 key, plaintext only in a kms_secret_t, stored
 * by the caller only in its wrapped form (hsm_wrap under the master key).
 * hsm_row_seal encrypts the key material of an object row with AES-256-GCM
 * under the current DSK:
 *   blob = nonce(12) || ciphertext || tag(16)
 *   AAD  = "kmsd seal v2" || 0x00 || be32(dsk_id) || be32(len(owner)) ||
 *          owner || be32(len(obj_id)) || obj_id || be64(gen)
 * so a blob moved to another object, another owner tenant (a row
 * re-assigned in the database), another DSK id or another seal generation
 * fails to open. The generation is 1 for new material and grows by one at
 * each re-seal; it is not the row's version, so writes that leave the
 * material alone need no seal and rows open on every node whatever their
 * local version. Nonces are random (96 bits); with one DSK per 2^32 seals
 * the collision risk stays far below NIST SP 800-38D's bound. Rotating the
 * DSK (a new id) is the caller's policy; this file does not count.
 *
 * A read-write lock guards the table: seal/open take it shared, load and
 * generate exclusive. Entries are never removed before hsm_keyring_free.
 */
#include "hsm/hsm_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define SEAL_DOMAIN "kmsd seal v2"
#define SEAL_OVERHEAD (HSM_GCM_IV_LEN + HSM_GCM_TAG_LEN)
#define SEAL_MAX_PLAIN (64u * 1024 * 1024) /* sealed objects are keys, not bulk data */
#define OBJ_ID_MAX 1024
#define OWNER_MAX 256
#define SEAL_AAD_MAX (sizeof(SEAL_DOMAIN) + 20 + OWNER_MAX + OBJ_ID_MAX)

typedef struct dsk {
    uint32_t id;
    kms_secret_t *key;
} dsk_t;

struct hsm_keyring {
    hsm_t *h;
    pthread_rwlock_t lock;
    dsk_t *v;
    size_t n, cap;
    uint32_t current; /* 0 = none */
};

int hsm_keyring_new(hsm_t *h, hsm_keyring_t **out)
{
    hsm_keyring_t *kr;
    if (!h || !out)
        return KMS_ERR_INVAL;
    if (!(kr = calloc(1, sizeof(*kr))))
        return KMS_ERR_NOMEM;
    if (pthread_rwlock_init(&kr->lock, NULL) != 0) {
        free(kr);
        return KMS_ERR_NOMEM;
    }
    kr->h = h;
    *out = kr;
    return 0;
}

void hsm_keyring_free(hsm_keyring_t *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++)
        kms_secret_free(kr->v[i].key);
    free(kr->v);
    pthread_rwlock_destroy(&kr->lock);
    free(kr);
}

/* The master-key provider (hsm_keyring_set_master may change it). */
static hsm_t *master_of(hsm_keyring_t *kr)
{
    pthread_rwlock_rdlock(&kr->lock);
    hsm_t *h = kr->h;
    pthread_rwlock_unlock(&kr->lock);
    return h;
}

/* Caller holds the lock (either mode). */
static const dsk_t *find(const hsm_keyring_t *kr, uint32_t id)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->v[i].id == id)
            return &kr->v[i];
    return NULL;
}

/* Insert under the write lock; takes ownership of key on success.
 * Loading the same id twice with the same key is a no-op (restart, replay). */
static int insert(hsm_keyring_t *kr, uint32_t id, kms_secret_t *key, int *dup_out)
{
    int rc = 0;
    *dup_out = 0;
    pthread_rwlock_wrlock(&kr->lock);
    const dsk_t *d = find(kr, id);
    if (d) {
        if (d->key->len == key->len && kms_ct_memcmp(d->key->data, key->data, key->len) == 0)
            *dup_out = 1;
        else
            rc = KMS_ERR_EXISTS;
        goto out;
    }
    if (kr->n == kr->cap) {
        size_t ncap = kr->cap ? kr->cap * 2 : 4;
        dsk_t *nv = ncap <= SIZE_MAX / sizeof(*nv) ? realloc(kr->v, ncap * sizeof(*nv)) : NULL;
        if (!nv) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        kr->v = nv;
        kr->cap = ncap;
    }
    kr->v[kr->n].id = id;
    kr->v[kr->n].key = key;
    kr->n++;
out:
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int hsm_keyring_load(hsm_keyring_t *kr, uint32_t dsk_id, const uint8_t *wrapped, size_t len)
{
    kms_secret_t *key = NULL;
    int rc, dup = 0;

    if (!kr || !wrapped || dsk_id == 0)
        return KMS_ERR_INVAL;
    if ((rc = hsm_unwrap(master_of(kr), wrapped, len, &key)) != 0)
        return rc;
    if (key->len != HSM_DSK_LEN) {
        kms_secret_free(key);
        return KMS_ERR_CRYPTO;
    }
    rc = insert(kr, dsk_id, key, &dup);
    if (rc || dup)
        kms_secret_free(key);
    return rc;
}

int hsm_keyring_generate(hsm_keyring_t *kr, uint32_t dsk_id, kms_buf_t *wrapped_out)
{
    kms_secret_t *key = NULL;
    size_t mark;
    int rc, dup = 0;

    if (!kr || !wrapped_out || dsk_id == 0)
        return KMS_ERR_INVAL;
    pthread_rwlock_rdlock(&kr->lock);
    rc = find(kr, dsk_id) ? KMS_ERR_EXISTS : 0;
    pthread_rwlock_unlock(&kr->lock);
    if (rc)
        return rc;
    if (!(key = kms_secret_new(HSM_DSK_LEN)))
        return KMS_ERR_NOMEM;
    if (RAND_priv_bytes(key->data, HSM_DSK_LEN) != 1) {
        rc = KMS_ERR_CRYPTO;
        goto fail;
    }
    mark = wrapped_out->len;
    if ((rc = hsm_wrap(master_of(kr), key, wrapped_out)) != 0)
        goto fail;
    if ((rc = insert(kr, dsk_id, key, &dup)) != 0 || dup) {
        wrapped_out->len = mark; /* raced with another generate of the same id */
        rc = rc ? rc : KMS_ERR_EXISTS;
        goto fail;
    }
    return 0;
fail:
    kms_secret_free(key);
    return rc;
}

int hsm_keyring_export(hsm_keyring_t *kr, uint32_t dsk_id, kms_secret_t **key_out)
{
    int rc;
    if (!kr || !key_out)
        return KMS_ERR_INVAL;
    *key_out = NULL;
    pthread_rwlock_rdlock(&kr->lock);
    const dsk_t *d = find(kr, dsk_id);
    if (!d)
        rc = KMS_ERR_NOTFOUND;
    else if (!(*key_out = kms_secret_dup(d->key->data, d->key->len)))
        rc = KMS_ERR_NOMEM;
    else
        rc = 0;
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int hsm_keyring_import(hsm_keyring_t *kr, uint32_t dsk_id, const kms_secret_t *key,
                       kms_buf_t *wrapped_out)
{
    kms_secret_t *copy = NULL;
    size_t mark;
    int rc, dup = 0;

    if (!kr || !key || !wrapped_out || dsk_id == 0 || key->len != HSM_DSK_LEN)
        return KMS_ERR_INVAL;
    if (!(copy = kms_secret_dup(key->data, key->len)))
        return KMS_ERR_NOMEM;
    mark = wrapped_out->len;
    if ((rc = hsm_wrap(master_of(kr), copy, wrapped_out)) != 0)
        goto fail;
    if ((rc = insert(kr, dsk_id, copy, &dup)) != 0) {
        wrapped_out->len = mark; /* another key under this id: nothing changes */
        goto fail;
    }
    if (dup)
        kms_secret_free(copy); /* already loaded with these bytes */
    return 0;
fail:
    kms_secret_free(copy);
    return rc;
}

int hsm_keyring_set_current(hsm_keyring_t *kr, uint32_t dsk_id)
{
    int rc = 0;
    if (!kr)
        return KMS_ERR_INVAL;
    pthread_rwlock_wrlock(&kr->lock);
    if (find(kr, dsk_id))
        kr->current = dsk_id;
    else
        rc = KMS_ERR_NOTFOUND;
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

uint32_t hsm_keyring_current(hsm_keyring_t *kr)
{
    uint32_t id;
    if (!kr)
        return 0;
    pthread_rwlock_rdlock(&kr->lock);
    id = kr->current;
    pthread_rwlock_unlock(&kr->lock);
    return id;
}

int hsm_keyring_set_master(hsm_keyring_t *kr, hsm_t *h)
{
    if (!kr || !h)
        return KMS_ERR_INVAL;
    pthread_rwlock_wrlock(&kr->lock);
    kr->h = h;
    pthread_rwlock_unlock(&kr->lock);
    return 0;
}

int hsm_keyring_rewrap(hsm_keyring_t *kr, uint32_t dsk_id, hsm_t *h2, kms_buf_t *wrapped_out)
{
    int rc;
    if (!kr || !h2 || !wrapped_out)
        return KMS_ERR_INVAL;
    pthread_rwlock_rdlock(&kr->lock);
    const dsk_t *d = find(kr, dsk_id);
    rc = d ? hsm_wrap(h2, d->key, wrapped_out) : KMS_ERR_NOTFOUND;
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

/* The associated data of a row's seal: (dsk_id, owner, obj_id, gen).
 * Returns its length, or 0 when a field is too long. The layout (and the
 * domain string) is the one blobs sealed before seal generations used,
 * with the row's version where the generation is now: schema migration 6
 * sets the generation of such rows to their version, so they open as they
 * are. */
static size_t seal_aad(uint8_t *aad, size_t cap, uint32_t dsk_id, const char *owner,
                       const char *obj_id, int64_t gen)
{
    size_t olen = strlen(owner), idlen = strlen(obj_id);
    size_t n = sizeof(SEAL_DOMAIN); /* includes the NUL separator */
    if (idlen > OBJ_ID_MAX || olen > OWNER_MAX || n + 4 + 4 + olen + 4 + idlen + 8 > cap)
        return 0;
    memcpy(aad, SEAL_DOMAIN, n);
    kms_put_be32(aad + n, dsk_id);
    n += 4;
    kms_put_be32(aad + n, (uint32_t)olen);
    memcpy(aad + n + 4, owner, olen);
    n += 4 + olen;
    kms_put_be32(aad + n, (uint32_t)idlen);
    memcpy(aad + n + 4, obj_id, idlen);
    n += 4 + idlen;
    kms_put_be64(aad + n, (uint64_t)gen);
    return n + 8;
}

int hsm_row_seal(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                 const kms_sealed_t *prev, const uint8_t *plain, size_t len, kms_arena_t *arena,
                 kms_sealed_t *sealed_out)
{
    uint8_t aad[SEAL_AAD_MAX];
    size_t aadlen;
    uint8_t *blob;
    int64_t gen = 1;
    uint32_t id;
    int rc;

    if (!kr || !owner || !obj_id || (!plain && len) || !arena || !sealed_out)
        return KMS_ERR_INVAL;
    if (len > SEAL_MAX_PLAIN)
        return KMS_ERR_LIMIT;
    if (prev) {
        if (prev->gen < 0 || prev->gen == INT64_MAX)
            return KMS_ERR_INVAL; /* not a generation this code wrote */
        gen = prev->gen + 1;
    }
    if (!(blob = kms_arena_alloc(arena, len + SEAL_OVERHEAD)))
        return KMS_ERR_NOMEM;
    pthread_rwlock_rdlock(&kr->lock);
    id = kr->current;
    const dsk_t *d = id ? find(kr, id) : NULL;
    if (!d) {
        rc = KMS_ERR_STATE; /* no current DSK: caller must generate/set one */
        goto out;
    }
    if (!(aadlen = seal_aad(aad, sizeof(aad), id, owner, obj_id, gen))) {
        rc = KMS_ERR_LIMIT;
        goto out;
    }
    if (RAND_bytes(blob, HSM_GCM_IV_LEN) != 1) {
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    rc = hsm_gcm_encrypt(d->key->data, blob, aad, aadlen, plain, len, blob + HSM_GCM_IV_LEN);
out:
    pthread_rwlock_unlock(&kr->lock);
    if (rc == 0)
        *sealed_out = (kms_sealed_t){.dsk_id = id, .gen = gen, .blob = blob,
                                     .len = len + SEAL_OVERHEAD};
    return rc;
}

int hsm_row_open(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                 const kms_sealed_t *sealed, kms_secret_t **plain_out)
{
    uint8_t aad[SEAL_AAD_MAX];
    size_t aadlen, len;
    kms_secret_t *s = NULL;
    int rc;

    if (!kr || !owner || !obj_id || !sealed || !plain_out)
        return KMS_ERR_INVAL;
    *plain_out = NULL;
    if (sealed->dsk_id == 0)
        return KMS_ERR_NOTFOUND; /* the row holds no material */
    len = sealed->len;
    if (!sealed->blob || len < SEAL_OVERHEAD || len - SEAL_OVERHEAD > SEAL_MAX_PLAIN ||
        sealed->gen < 1)
        return KMS_ERR_CRYPTO; /* truncated or not ours: same answer as a bad tag */
    if (!(aadlen = seal_aad(aad, sizeof(aad), sealed->dsk_id, owner, obj_id, sealed->gen)))
        return KMS_ERR_CRYPTO;
    if (!(s = kms_secret_new(len - SEAL_OVERHEAD)))
        return KMS_ERR_NOMEM;
    pthread_rwlock_rdlock(&kr->lock);
    const dsk_t *d = find(kr, sealed->dsk_id);
    rc = d ? hsm_gcm_decrypt(d->key->data, sealed->blob, aad, aadlen,
                             sealed->blob + HSM_GCM_IV_LEN, len - HSM_GCM_IV_LEN, s->data)
           : KMS_ERR_NOTFOUND;
    pthread_rwlock_unlock(&kr->lock);
    if (rc) {
        kms_secret_free(s);
        return rc;
    }
    *plain_out = s;
    return 0;
}

int hsm_row_reseal(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                   const kms_sealed_t *cur, kms_arena_t *arena, kms_sealed_t *sealed_out)
{
    kms_secret_t *plain = NULL;
    int rc = hsm_row_open(kr, owner, obj_id, cur, &plain);
    if (rc == 0)
        rc = hsm_row_seal(kr, owner, obj_id, cur, plain->data, plain->len, arena, sealed_out);
    kms_secret_free(plain);
    return rc;
}
