/*
 * admin/backup_format.c: the portable backup file format, apart from what
 * backup.c puts in it.
 *
 * File: "KMSDBAK1", then TTLV items with tags 0x5401xx: BK_HEADER, BK_TENANT*,
 * BK_CLIENT*, BK_OBJECT*, BK_END{count, mac}. The header names the key
 * derivation (Argon2id of a passphrase, with its salt and cost, or a
 * 32-byte key file) and carries a key check value; an HMAC-SHA256 under
 * the derived MAC key covers every byte before the trailer, and each
 * object's key material is AES-256-GCM under the derived encryption key
 * with the object id in the AAD. Items are read one at a time, bounded by
 * BK_MAX_ITEM.
 *
 * It deliberately knows nothing about the store or the keyring: backup.c
 * reads the objects and unseals / re-seals their key material.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "admin/admin_int.h"

/* enc/mac keys from the 32-byte backup master (HMAC-SHA256 as PRF). */
static int derive_keys(const uint8_t master[32], bk_keys_t *k)
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), master, 32, (const uint8_t *)"kmsd-backup-enc", 15, k->enc, &n) ||
        !HMAC(EVP_sha256(), master, 32, (const uint8_t *)"kmsd-backup-mac", 15, k->mac, &n))
        return KMS_ERR_CRYPTO;
    return 0;
}

/* The backup master from the request: a passphrase (Argon2id with salt/cost)
 * or a raw 32-byte key. */
static int master_key(const char *pass, const ttlv_item_t *rawkey, const uint8_t *salt,
                      size_t saltlen, uint32_t t, uint32_t m, uint32_t p, uint8_t out[32])
{
    if (rawkey) {
        if (rawkey->type != TTLV_BYTE_STRING || rawkey->v.bytes.len != 32)
            return KMS_ERR_INVAL;
        memcpy(out, rawkey->v.bytes.ptr, 32);
        return 0;
    }
    if (!pass || !*pass)
        return KMS_ERR_INVAL;
    if (t < 1 || t > 16 || m < 8 * 1024 || m > 4 * 1024 * 1024 || p < 1 || p > 16)
        return KMS_ERR_INVAL; /* do not let a file make us spend unbounded memory */
    int rc = argon2id_hash_raw(t, m, p, pass, strlen(pass), salt, saltlen, out, 32);
    return rc == ARGON2_OK ? 0 : KMS_ERR_CRYPTO;
}

int admin_bk_derive(const char *pass, const ttlv_item_t *rawkey, const uint8_t *salt, size_t saltlen,
                    uint32_t t, uint32_t m, uint32_t p, bk_keys_t *keys)
{
    uint8_t master[32];
    int rc = master_key(pass, rawkey, salt, saltlen, t, m, p, master);
    if (rc == 0)
        rc = derive_keys(master, keys);
    OPENSSL_cleanse(master, sizeof(master));
    return rc;
}

/* The key check value in the header: proves the right passphrase or key
 * before anything is decrypted. */
static void check_value(const bk_keys_t *keys, uint8_t out[32])
{
    unsigned int n = 0;
    HMAC(EVP_sha256(), keys->mac, 32, (const uint8_t *)"kmsd-backup-check", 17, out, &n);
}

/* ------------------------------------------------------- MAC'd output */

EVP_MAC_CTX *admin_bk_mac_new(const uint8_t key[32])
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    EVP_MAC_free(m);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (c && !EVP_MAC_init(c, key, 32, params)) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* Encode an item, MAC it (unless it is the trailer), write it. */
void admin_bk_put(bk_out_t *o, const ttlv_item_t *it, bool mac)
{
    if (o->err)
        return;
    kms_buf_reset(&o->buf);
    o->err = ttlv_encode(it, &o->buf);
    if (!o->err && mac && !EVP_MAC_update(o->mac, o->buf.data, o->buf.len))
        o->err = KMS_ERR_CRYPTO;
    if (!o->err)
        o->err = kms_write_all(o->fd, o->buf.data, o->buf.len);
}

int admin_bk_gcm(bool enc, const uint8_t key[32], const char *id, const uint8_t *in, size_t len,
                 kms_buf_t *out)
{
    /* enc: out = nonce(12) || ct || tag(16); dec: in is that, out = plain. */
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int rc = KMS_ERR_CRYPTO, n = 0;
    uint8_t nonce[12], tag[16];
    if (!c || len > INT32_MAX)
        goto out;
    if (enc) {
        if (RAND_bytes(nonce, 12) != 1)
            goto out;
    } else {
        if (len < 28)
            goto out;
        memcpy(nonce, in, 12);
        memcpy(tag, in + len - 16, 16);
        in += 12;
        len -= 28;
    }
    if (kms_buf_reserve(out, len + 28) != 0) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if (!EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) ||
        !EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)"kmsd-backup-v1:", 15) ||
        !EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)id, (int)strlen(id)))
        goto out;
    if (enc)
        kms_buf_append(out, nonce, 12);
    if (!EVP_CipherUpdate(c, out->data + out->len, &n, in, (int)len))
        goto out;
    out->len += (size_t)n;
    if (!enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag))
        goto out;
    if (!EVP_CipherFinal_ex(c, out->data + out->len, &n))
        goto out;
    out->len += (size_t)n;
    if (enc) {
        if (!EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag))
            goto out;
        kms_buf_append(out, tag, 16);
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int admin_bk_write_header(bk_out_t *o, const bk_keys_t *keys, bool rawkey, const uint8_t *salt,
                          size_t saltlen, const char *node, kms_arena_t *a)
{
    if (kms_write_all(o->fd, BK_MAGIC, 8) != 0 ||
        !EVP_MAC_update(o->mac, (const uint8_t *)BK_MAGIC, 8))
        return KMS_ERR_IO;
    uint8_t check[32];
    check_value(keys, check);
    ttlv_item_t *h = ttlv_new_struct(a, NULL, BK_HEADER);
    ttlv_new_int(a, h, BK_FORMAT_TAG, BK_FORMAT);
    ttlv_new_textz(a, h, BK_KDF, rawkey ? "key" : "argon2id");
    ttlv_new_bytes(a, h, BK_SALT, salt, saltlen);
    ttlv_new_int(a, h, BK_T, BK_ARGON_T);
    ttlv_new_int(a, h, BK_M, BK_ARGON_M);
    ttlv_new_int(a, h, BK_P, BK_ARGON_P);
    ttlv_new_long(a, h, BK_CREATED, kms_now_us() / 1000000);
    ttlv_new_textz(a, h, BK_NODE, node);
    if (!ttlv_new_bytes(a, h, BK_CHECK, check, sizeof(check)))
        return KMS_ERR_NOMEM;
    admin_bk_put(o, h, true);
    return 0;
}

int admin_bk_write_trailer(bk_out_t *o, int64_t count, kms_arena_t *a)
{
    uint8_t mac[32];
    size_t ml = 0;
    if (!EVP_MAC_final(o->mac, mac, &ml, sizeof(mac)))
        return KMS_ERR_CRYPTO;
    ttlv_item_t *e = ttlv_new_struct(a, NULL, BK_END);
    if (!e || !ttlv_new_long(a, e, BK_COUNT, count) || !ttlv_new_bytes(a, e, BK_MAC, mac, ml))
        return KMS_ERR_NOMEM;
    admin_bk_put(o, e, false);
    return o->err;
}

/* --------------------------------------------------------------- input */

static int bk_read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return KMS_ERR_PROTO; /* truncated */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Next item into `a`; the trailer is returned but never MAC'd. */
int admin_bk_get(bk_in_t *in, kms_arena_t *a, ttlv_item_t **out)
{
    uint8_t hdr[8];
    int rc = bk_read_all(in->fd, hdr, 8);
    if (rc)
        return rc;
    uint32_t len = kms_be32(hdr + 4);
    if (hdr[0] != 0x54 || hdr[3] != TTLV_STRUCTURE || len > BK_MAX_ITEM)
        return KMS_ERR_PROTO;
    uint8_t *buf = malloc((size_t)len + 8);
    if (!buf)
        return KMS_ERR_NOMEM;
    memcpy(buf, hdr, 8);
    rc = bk_read_all(in->fd, buf + 8, len);
    kms_error_t e;
    if (!rc && ttlv_decode(buf, (size_t)len + 8, NULL, a, out, &e) != 0)
        rc = KMS_ERR_PROTO;
    if (!rc && in->mac && (*out)->tag != BK_END && !EVP_MAC_update(in->mac, buf, (size_t)len + 8))
        rc = KMS_ERR_CRYPTO;
    free(buf);
    return rc;
}

const char *admin_bk_text(const ttlv_item_t *p, uint32_t tag)
{
    const ttlv_item_t *t = ttlv_find(p, tag);
    return t && t->type == TTLV_TEXT_STRING ? ttlv_text(t) : NULL;
}

int64_t admin_bk_num(const ttlv_item_t *p, uint32_t tag, int64_t dflt)
{
    const ttlv_item_t *t = ttlv_find(p, tag);
    if (!t)
        return dflt;
    if (t->type == TTLV_INTEGER)
        return t->v.i32;
    if (t->type == TTLV_LONG_INTEGER)
        return t->v.i64;
    if (t->type == TTLV_BOOLEAN)
        return t->v.b;
    return dflt;
}

/* Open the file, check magic and key; leaves the fd after the header. */
int admin_bk_open(int fd, const char *pass, const ttlv_item_t *rawkey, kms_arena_t *a,
                  bk_keys_t *keys, EVP_MAC_CTX **mac_out, kms_error_t *err)
{
    uint8_t magic[8];
    if (lseek(fd, 0, SEEK_SET) != 0 || bk_read_all(fd, magic, 8) != 0 ||
        memcmp(magic, BK_MAGIC, 8) != 0) {
        kms_error_set(err, KMS_ERR_PROTO, "not a kmsd backup file");
        return KMS_ERR_PROTO;
    }
    bk_in_t in = {.fd = fd};
    ttlv_item_t *h = NULL;
    int rc = admin_bk_get(&in, a, &h);
    if (rc || h->tag != BK_HEADER || admin_bk_num(h, BK_FORMAT_TAG, 0) != BK_FORMAT) {
        kms_error_set(err, KMS_ERR_NOTSUP, "unsupported backup format");
        return KMS_ERR_NOTSUP;
    }
    const ttlv_item_t *salt = ttlv_find(h, BK_SALT);
    const ttlv_item_t *check = ttlv_find(h, BK_CHECK);
    const char *kdf = admin_bk_text(h, BK_KDF);
    if (!salt || salt->type != TTLV_BYTE_STRING || !check || check->type != TTLV_BYTE_STRING ||
        check->v.bytes.len != 32 || !kdf) {
        kms_error_set(err, KMS_ERR_PROTO, "malformed backup header");
        return KMS_ERR_PROTO;
    }
    if ((strcmp(kdf, "key") == 0) != (rawkey != NULL)) {
        kms_error_set(err, KMS_ERR_PERM, "this backup was made with a %s", strcmp(kdf, "key") == 0 ? "key file" : "passphrase");
        return KMS_ERR_PERM;
    }
    rc = admin_bk_derive(pass, rawkey, salt->v.bytes.ptr, salt->v.bytes.len,
                         (uint32_t)admin_bk_num(h, BK_T, 0), (uint32_t)admin_bk_num(h, BK_M, 0),
                         (uint32_t)admin_bk_num(h, BK_P, 0), keys);
    if (rc) {
        kms_error_set(err, rc, "cannot derive the backup key");
        return rc;
    }
    uint8_t want[32];
    check_value(keys, want);
    if (CRYPTO_memcmp(want, check->v.bytes.ptr, 32) != 0) {
        kms_error_set(err, KMS_ERR_PERM, "wrong passphrase or key for this backup");
        return KMS_ERR_PERM;
    }
    /* MAC from the start: magic + header, as written. */
    EVP_MAC_CTX *mac = admin_bk_mac_new(keys->mac);
    kms_buf_t hb;
    kms_buf_init(&hb, BK_MAX_ITEM);
    if (!mac || ttlv_encode(h, &hb) != 0 || !EVP_MAC_update(mac, (const uint8_t *)BK_MAGIC, 8) ||
        !EVP_MAC_update(mac, hb.data, hb.len)) {
        EVP_MAC_CTX_free(mac);
        kms_buf_dispose(&hb);
        return KMS_ERR_CRYPTO;
    }
    kms_buf_dispose(&hb);
    *mac_out = mac;
    return 0;
}

int admin_bk_check_trailer(EVP_MAC_CTX *mac, const ttlv_item_t *end, int64_t *count_out)
{
    uint8_t got[32];
    size_t gl = 0;
    const ttlv_item_t *m = ttlv_find(end, BK_MAC);
    *count_out = admin_bk_num(end, BK_COUNT, -1);
    if (!EVP_MAC_final(mac, got, &gl, sizeof(got)) || !m || m->type != TTLV_BYTE_STRING ||
        m->v.bytes.len != gl || CRYPTO_memcmp(got, m->v.bytes.ptr, gl) != 0)
        return KMS_ERR_CRYPTO;
    return 0;
}
