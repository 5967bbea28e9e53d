/*
 * admin/backup.c: portable, encrypted backups over the admin socket.
 *
 * backup.create: an online, consistent snapshot (store_backup() into a
 * temporary copy next to the database, opened read-only), streamed into the
 * file descriptor kmsctl passed with the request (SCM_RIGHTS), in which every
 * key blob is unsealed with this server's keyring and re-encrypted
 * (AES-256-GCM, AAD = object id) under a backup key: Argon2id of a
 * passphrase (salt and cost in the file header) or a 32-byte key file. So it
 * restores on another server with another master key.
 * backup.restore: verifies the whole file first (key check value, HMAC-SHA256
 * over every byte), then re-seals each object under this server's current
 * data-store key and writes tenants, clients and objects. Only onto a server
 * that holds no objects yet.
 *
 * File: "KMSDBAK1", then TTLV items with tags 0x5401xx: BK_HEADER, BK_TENANT*,
 * BK_CLIENT*, BK_OBJECT*, BK_END{count, mac}. Object versions restart at 1
 * (blobs are bound to (id, version), and a restore creates each object anew).
 * It deliberately does not back up the change log or node identity, and
 * keeps the target's own clients when a name exists on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
#include "kmip/kmip.h"

#define BK_MAGIC "KMSDBAK1"
#define BK_FORMAT 1
#define BK_MAX_ITEM (64u << 20)
#define BK_ARGON_T 3
#define BK_ARGON_M (64 * 1024)
#define BK_ARGON_P 1
#define BK_COMMIT_BATCH 128

enum {
    BK_HEADER = 0x540100, BK_FORMAT_TAG, BK_KDF, BK_SALT, BK_T, BK_M, BK_P, BK_CREATED, BK_NODE,
    BK_CHECK,
    BK_TENANT = 0x540110, BK_CLIENT, BK_OBJECT, BK_ATTR,
    BK_NAME = 0x540120, BK_TENANT_NAME, BK_ROLE, BK_KIND, BK_CERT, BK_PWHASH, BK_TIME,
    BK_ID, BK_TYPE, BK_STATE, BK_ARCHIVED, BK_BLOB, BK_INDEX, BK_VALUE, BK_SKEY, BK_NKEY,
    BK_END = 0x54011F, BK_COUNT = 0x540140, BK_MAC,
};

typedef struct bk_keys {
    uint8_t enc[32];
    uint8_t mac[32];
} bk_keys_t;

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

/* ------------------------------------------------------- MAC'd output */
typedef struct bk_out {
    int fd;
    EVP_MAC_CTX *mac;
    kms_buf_t buf;
    int err;
} bk_out_t;

static EVP_MAC_CTX *mac_new(const uint8_t key[32])
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

static int bk_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KMS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Encode an item, MAC it (unless it is the trailer), write it. */
static void out_item(bk_out_t *o, const ttlv_item_t *it, bool mac)
{
    if (o->err)
        return;
    kms_buf_reset(&o->buf);
    o->err = ttlv_encode(it, &o->buf);
    if (!o->err && mac && !EVP_MAC_update(o->mac, o->buf.data, o->buf.len))
        o->err = KMS_ERR_CRYPTO;
    if (!o->err)
        o->err = bk_write_all(o->fd, o->buf.data, o->buf.len);
}

static int gcm(bool enc, const uint8_t key[32], const char *id, const uint8_t *in, size_t len,
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

/* ---------------------------------------------------------------- create */
typedef struct scan_ids {
    kms_arena_t *a;
    char **ids;
    size_t n, cap;
    char last[64];
} scan_ids_t;

static int collect_id(const char *id, uint32_t dsk_id, void *arg)
{
    (void)dsk_id;
    scan_ids_t *s = arg;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        char **v = kms_arena_alloc(s->a, nc * sizeof(char *));
        if (!v)
            return KMS_ERR_NOMEM;
        if (s->n)
            memcpy(v, s->ids, s->n * sizeof(char *));
        s->ids = v;
        s->cap = nc;
    }
    s->ids[s->n] = kms_arena_strdup(s->a, id);
    if (!s->ids[s->n])
        return KMS_ERR_NOMEM;
    s->n++;
    snprintf(s->last, sizeof(s->last), "%s", id);
    return 0;
}

int admin_backup_create(const admin_options_t *opt, int fd, const char *pass,
                            const ttlv_item_t *rawkey, char *msg, size_t msglen,
                            int64_t *count_out)
{
    char tmp[4200];
    store_t *copy = NULL;
    store_reader_t *rd = NULL;
    kms_arena_t *a = NULL, *oa = NULL;
    uint8_t master[32], salt[16];
    bk_keys_t keys;
    bk_out_t o = {.fd = fd};
    kms_buf_init(&o.buf, BK_MAX_ITEM);
    kms_buf_t sealed;
    kms_buf_init(&sealed, BK_MAX_ITEM);
    int64_t count = 0;
    int rc;
    if (fd < 0 || !opt->keyring || !opt->store_path) {
        snprintf(msg, msglen, "no output file descriptor or keyring");
        return KMS_ERR_INVAL;
    }
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return KMS_ERR_CRYPTO;
    rc = master_key(pass, rawkey, salt, sizeof(salt), BK_ARGON_T, BK_ARGON_M, BK_ARGON_P, master);
    if (rc == 0)
        rc = derive_keys(master, &keys);
    OPENSSL_cleanse(master, sizeof(master));
    if (rc) {
        snprintf(msg, msglen, "a passphrase or a 32-byte key is required");
        return rc;
    }
    o.mac = mac_new(keys.mac);
    a = kms_arena_new(0);
    oa = kms_arena_new(0);
    if (!o.mac || !a || !oa) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    /* 1. A consistent snapshot next to the database (same filesystem, same
     *    protection), opened read-only. */
    snprintf(tmp, sizeof(tmp), "%s.backup-%d-%lld.db", opt->store_path, (int)getpid(),
             (long long)kms_now_us());
    rc = store_backup(opt->store, tmp, NULL, NULL);
    if (rc) {
        snprintf(msg, msglen, "snapshot failed: %s", kms_strerror(rc));
        goto out;
    }
    store_options_t so = {.path = tmp, .read_only = true};
    rc = store_open(&so, &copy);
    if (!rc)
        rc = store_reader_new(copy, &rd);
    if (rc) {
        snprintf(msg, msglen, "cannot open the snapshot: %s", kms_strerror(rc));
        goto out;
    }
    /* 2. Header with the KDF parameters and a key check value. */
    if (bk_write_all(fd, (const uint8_t *)BK_MAGIC, 8) != 0 ||
        !EVP_MAC_update(o.mac, (const uint8_t *)BK_MAGIC, 8)) {
        rc = KMS_ERR_IO;
        goto out;
    }
    uint8_t check[32];
    unsigned int cl = 0;
    HMAC(EVP_sha256(), keys.mac, 32, (const uint8_t *)"kmsd-backup-check", 17, check, &cl);
    ttlv_item_t *h = ttlv_new_struct(a, NULL, BK_HEADER);
    ttlv_new_int(a, h, BK_FORMAT_TAG, BK_FORMAT);
    ttlv_new_textz(a, h, BK_KDF, rawkey ? "key" : "argon2id");
    ttlv_new_bytes(a, h, BK_SALT, salt, sizeof(salt));
    ttlv_new_int(a, h, BK_T, BK_ARGON_T);
    ttlv_new_int(a, h, BK_M, BK_ARGON_M);
    ttlv_new_int(a, h, BK_P, BK_ARGON_P);
    ttlv_new_long(a, h, BK_CREATED, kms_now_us() / 1000000);
    ttlv_new_textz(a, h, BK_NODE, store_node_id(opt->store));
    if (!ttlv_new_bytes(a, h, BK_CHECK, check, sizeof(check))) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    out_item(&o, h, true);
    /* 3. Tenants and clients. */
    char **tenants = NULL;
    size_t nt = 0, nc = 0;
    store_client_t *clients = NULL;
    rc = store_list_tenants(rd, a, &tenants, &nt);
    if (!rc)
        rc = store_list_clients(rd, a, &clients, &nc);
    if (rc)
        goto out;
    for (size_t i = 0; i < nt && !o.err; i++) {
        kms_arena_reset(oa);
        ttlv_item_t *t = ttlv_new_struct(oa, NULL, BK_TENANT);
        if (!t || !ttlv_new_textz(oa, t, BK_NAME, tenants[i]))
            o.err = KMS_ERR_NOMEM;
        else
            out_item(&o, t, true);
    }
    for (size_t i = 0; i < nc && !o.err; i++) {
        const store_client_t *c = &clients[i];
        kms_arena_reset(oa);
        ttlv_item_t *t = ttlv_new_struct(oa, NULL, BK_CLIENT);
        if (!t || !ttlv_new_textz(oa, t, BK_NAME, c->name) ||
            !ttlv_new_textz(oa, t, BK_TENANT_NAME, c->tenant) ||
            !ttlv_new_textz(oa, t, BK_ROLE, c->role) || !ttlv_new_textz(oa, t, BK_KIND, c->kind) ||
            !ttlv_new_textz(oa, t, BK_CERT, c->cert_sha256) ||
            !ttlv_new_textz(oa, t, BK_PWHASH, c->password_hash) ||
            !ttlv_new_long(oa, t, BK_TIME, c->created_us))
            o.err = KMS_ERR_NOMEM;
        else
            out_item(&o, t, true);
    }
    /* 4. Objects, in id order, a page of ids at a time. */
    scan_ids_t s = {.a = a};
    for (;;) {
        size_t before = s.n;
        rc = store_scan(rd, s.last, 1024, collect_id, &s);
        if (rc || s.n == before)
            break;
    }
    for (size_t i = 0; i < s.n && !rc && !o.err; i++) {
        kms_arena_reset(oa);
        store_object_t *obj = NULL;
        rc = store_get(rd, oa, s.ids[i], NULL, &obj);
        if (rc) {
            snprintf(msg, msglen, "reading %s: %s", s.ids[i], kms_strerror(rc));
            break;
        }
        ttlv_item_t *t = ttlv_new_struct(oa, NULL, BK_OBJECT);
        if (!t || !ttlv_new_textz(oa, t, BK_ID, obj->id) ||
            !ttlv_new_int(oa, t, BK_TYPE, (int32_t)obj->object_type) ||
            !ttlv_new_int(oa, t, BK_STATE, (int32_t)obj->state) ||
            !ttlv_new_textz(oa, t, BK_TENANT_NAME, obj->tenant) ||
            !ttlv_new_bool(oa, t, BK_ARCHIVED, obj->archived) ||
            !ttlv_new_long(oa, t, BK_TIME, obj->created_us)) {
            rc = KMS_ERR_NOMEM;
            break;
        }
        if (obj->blob && obj->blob_len) {
            kms_secret_t *plain = NULL;
            rc = hsm_open_blob(opt->keyring, obj->dsk_id, obj->tenant, obj->id, obj->version, obj->blob,
                               obj->blob_len, &plain);
            if (rc) {
                snprintf(msg, msglen, "cannot unseal %s: %s", obj->id, kms_strerror(rc));
                break;
            }
            kms_buf_reset(&sealed);
            rc = gcm(true, keys.enc, obj->id, plain->data, plain->len, &sealed);
            kms_secret_free(plain);
            if (rc || !ttlv_new_bytes(oa, t, BK_BLOB, sealed.data, sealed.len)) {
                rc = rc ? rc : KMS_ERR_NOMEM;
                break;
            }
        }
        for (size_t j = 0; j < obj->n_attrs; j++) {
            const store_attr_t *at = &obj->attrs[j];
            ttlv_item_t *ai = ttlv_new_struct(oa, t, BK_ATTR);
            if (!ai || !ttlv_new_textz(oa, ai, BK_NAME, at->name) ||
                !ttlv_new_int(oa, ai, BK_INDEX, (int32_t)at->index) ||
                !ttlv_new_bytes(oa, ai, BK_VALUE, at->value, at->value_len) ||
                (at->skey && !ttlv_new_textz(oa, ai, BK_SKEY, at->skey)) ||
                (at->has_nkey && !ttlv_new_long(oa, ai, BK_NKEY, at->nkey))) {
                rc = KMS_ERR_NOMEM;
                break;
            }
        }
        if (!rc) {
            out_item(&o, t, true);
            count++;
        }
    }
    if (!rc && o.err)
        rc = o.err;
    if (rc)
        goto out;
    /* 5. Trailer: count and the MAC of everything before it. */
    uint8_t mac[32];
    size_t ml = 0;
    if (!EVP_MAC_final(o.mac, mac, &ml, sizeof(mac))) {
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    kms_arena_reset(oa);
    ttlv_item_t *e = ttlv_new_struct(oa, NULL, BK_END);
    if (!e || !ttlv_new_long(oa, e, BK_COUNT, count) || !ttlv_new_bytes(oa, e, BK_MAC, mac, ml)) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    out_item(&o, e, false);
    rc = o.err;
    if (!rc && fsync(fd) != 0 && errno != EINVAL)
        rc = KMS_ERR_IO;
    if (!rc)
        *count_out = count;
out:
    if (rc && !msg[0])
        snprintf(msg, msglen, "backup failed: %s", kms_strerror(rc));
    store_reader_free(rd);
    store_close(copy);
    unlink(tmp);
    char side[4300];
    snprintf(side, sizeof(side), "%s-wal", tmp);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", tmp);
    unlink(side);
    EVP_MAC_CTX_free(o.mac);
    kms_buf_dispose(&o.buf);
    kms_buf_dispose_wipe(&sealed);
    kms_arena_free(oa);
    kms_arena_free(a);
    OPENSSL_cleanse(&keys, sizeof(keys));
    return rc;
}

/* --------------------------------------------------------------- restore */
typedef struct bk_in {
    int fd;
    EVP_MAC_CTX *mac; /* NULL: not MAC'ing */
} bk_in_t;

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
static int in_item(bk_in_t *in, kms_arena_t *a, ttlv_item_t **out)
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

static const char *txt(const ttlv_item_t *p, uint32_t tag)
{
    const ttlv_item_t *t = ttlv_find(p, tag);
    return t && t->type == TTLV_TEXT_STRING ? ttlv_text(t) : NULL;
}

static int64_t num(const ttlv_item_t *p, uint32_t tag, int64_t dflt)
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
static int open_backup(int fd, const char *pass, const ttlv_item_t *rawkey, kms_arena_t *a,
                       bk_keys_t *keys, EVP_MAC_CTX **mac_out, char *msg, size_t msglen)
{
    uint8_t magic[8];
    if (lseek(fd, 0, SEEK_SET) != 0 || bk_read_all(fd, magic, 8) != 0 ||
        memcmp(magic, BK_MAGIC, 8) != 0) {
        snprintf(msg, msglen, "not a kmsd backup file");
        return KMS_ERR_PROTO;
    }
    bk_in_t in = {.fd = fd};
    ttlv_item_t *h = NULL;
    int rc = in_item(&in, a, &h);
    if (rc || h->tag != BK_HEADER || num(h, BK_FORMAT_TAG, 0) != BK_FORMAT) {
        snprintf(msg, msglen, "unsupported backup format");
        return KMS_ERR_NOTSUP;
    }
    const ttlv_item_t *salt = ttlv_find(h, BK_SALT);
    const ttlv_item_t *check = ttlv_find(h, BK_CHECK);
    const char *kdf = txt(h, BK_KDF);
    if (!salt || salt->type != TTLV_BYTE_STRING || !check || check->type != TTLV_BYTE_STRING ||
        check->v.bytes.len != 32 || !kdf) {
        snprintf(msg, msglen, "malformed backup header");
        return KMS_ERR_PROTO;
    }
    if ((strcmp(kdf, "key") == 0) != (rawkey != NULL)) {
        snprintf(msg, msglen, "this backup was made with a %s", strcmp(kdf, "key") == 0 ? "key file" : "passphrase");
        return KMS_ERR_PERM;
    }
    uint8_t master[32];
    rc = master_key(pass, rawkey, salt->v.bytes.ptr, salt->v.bytes.len,
                    (uint32_t)num(h, BK_T, 0), (uint32_t)num(h, BK_M, 0), (uint32_t)num(h, BK_P, 0),
                    master);
    if (!rc)
        rc = derive_keys(master, keys);
    OPENSSL_cleanse(master, sizeof(master));
    if (rc) {
        snprintf(msg, msglen, "cannot derive the backup key");
        return rc;
    }
    uint8_t want[32];
    unsigned int wl = 0;
    HMAC(EVP_sha256(), keys->mac, 32, (const uint8_t *)"kmsd-backup-check", 17, want, &wl);
    if (CRYPTO_memcmp(want, check->v.bytes.ptr, 32) != 0) {
        snprintf(msg, msglen, "wrong passphrase or key for this backup");
        return KMS_ERR_PERM;
    }
    /* MAC from the start: magic + header, as written. */
    EVP_MAC_CTX *mac = mac_new(keys->mac);
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

static int apply_object(const admin_options_t *opt, const bk_keys_t *keys, kms_arena_t *a,
                        const ttlv_item_t *t, store_write_t *w, char *msg, size_t msglen)
{
    store_object_t o;
    memset(&o, 0, sizeof(o));
    const char *id = txt(t, BK_ID), *tenant = txt(t, BK_TENANT_NAME);
    if (!id || !tenant || strlen(id) >= sizeof(o.id) || strlen(tenant) >= sizeof(o.tenant))
        return KMS_ERR_PROTO;
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.tenant, sizeof(o.tenant), "%s", tenant);
    o.object_type = (uint32_t)num(t, BK_TYPE, 0);
    o.state = (uint32_t)num(t, BK_STATE, 0);
    o.archived = num(t, BK_ARCHIVED, 0) != 0;
    size_t n = ttlv_count(t, BK_ATTR);
    o.attrs = n ? kms_arena_alloc(a, n * sizeof(store_attr_t)) : NULL;
    if (n && !o.attrs)
        return KMS_ERR_NOMEM;
    for (const ttlv_item_t *ai = ttlv_find(t, BK_ATTR); ai; ai = ttlv_find_next(ai, BK_ATTR)) {
        store_attr_t *at = &o.attrs[o.n_attrs++];
        const ttlv_item_t *v = ttlv_find(ai, BK_VALUE);
        at->name = txt(ai, BK_NAME);
        if (!at->name || !v || v->type != TTLV_BYTE_STRING)
            return KMS_ERR_PROTO;
        at->index = (uint32_t)num(ai, BK_INDEX, 0);
        at->value = v->v.bytes.ptr;
        at->value_len = v->v.bytes.len;
        at->skey = txt(ai, BK_SKEY);
        at->has_nkey = ttlv_find(ai, BK_NKEY) != NULL;
        at->nkey = num(ai, BK_NKEY, 0);
        /* The stored value is a TTLV item: its 4th byte is the type. */
        at->index_nkey = at->has_nkey && kmip_attr_nkey_indexed(at->name, at->value_len >= 4
                                                                    ? at->value[3] : -1);
    }
    const ttlv_item_t *blob = ttlv_find(t, BK_BLOB);
    kms_buf_t plain, sealed;
    kms_buf_init(&plain, BK_MAX_ITEM);
    kms_buf_init(&sealed, BK_MAX_ITEM);
    int rc = 0;
    if (blob) {
        if (blob->type != TTLV_BYTE_STRING)
            rc = KMS_ERR_PROTO;
        if (!rc)
            rc = gcm(false, keys->enc, o.id, blob->v.bytes.ptr, blob->v.bytes.len, &plain);
        if (rc) {
            snprintf(msg, msglen, "key material of %s does not decrypt", o.id);
            goto out;
        }
        /* A new object in this store: version 1. */
        rc = hsm_seal(opt->keyring, o.tenant, o.id, 1, plain.data, plain.len, &sealed, &o.dsk_id);
        if (rc) {
            snprintf(msg, msglen, "cannot seal %s: %s", o.id, kms_strerror(rc));
            goto out;
        }
        o.blob = kms_arena_memdup(a, sealed.data, sealed.len);
        o.blob_len = sealed.len;
        if (!o.blob) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
    }
    rc = store_write_put(w, &o, STORE_VERSION_NEW);
out:
    kms_buf_dispose_wipe(&plain);
    kms_buf_dispose(&sealed);
    return rc;
}

int admin_backup_restore(const admin_options_t *opt, int fd, const char *pass,
                             const ttlv_item_t *rawkey, char *msg, size_t msglen,
                             int64_t *count_out)
{
    bk_keys_t keys;
    EVP_MAC_CTX *mac = NULL;
    kms_arena_t *a = kms_arena_new(0), *ia = kms_arena_new(0);
    store_reader_t *rd = NULL;
    store_write_t *w = NULL;
    int rc = KMS_ERR_NOMEM;
    int64_t count = 0, expected = -1;
    if (!a || !ia)
        goto out;
    if (fd < 0 || !opt->keyring) {
        rc = KMS_ERR_INVAL;
        snprintf(msg, msglen, "no input file descriptor or keyring");
        goto out;
    }
    rc = store_reader_new(opt->store, &rd);
    if (rc)
        goto out;
    if (store_count_objects(rd) != 0) {
        rc = KMS_ERR_STATE;
        snprintf(msg, msglen, "this server already holds objects: restore only onto an empty server");
        goto out;
    }
    /* Pass 1: verify every byte before changing anything. */
    rc = open_backup(fd, pass, rawkey, a, &keys, &mac, msg, msglen);
    if (rc)
        goto out;
    bk_in_t in = {.fd = fd, .mac = mac};
    for (;;) {
        kms_arena_reset(ia);
        ttlv_item_t *it = NULL;
        rc = in_item(&in, ia, &it);
        if (rc) {
            snprintf(msg, msglen, "the backup file is truncated or damaged");
            goto out;
        }
        if (it->tag == BK_END) {
            uint8_t got[32];
            size_t gl = 0;
            const ttlv_item_t *m = ttlv_find(it, BK_MAC);
            expected = num(it, BK_COUNT, -1);
            if (!EVP_MAC_final(mac, got, &gl, sizeof(got)) || !m || m->type != TTLV_BYTE_STRING ||
                m->v.bytes.len != gl || CRYPTO_memcmp(got, m->v.bytes.ptr, gl) != 0) {
                rc = KMS_ERR_CRYPTO;
                snprintf(msg, msglen, "the backup file was modified (MAC mismatch)");
                goto out;
            }
            break;
        }
        if (it->tag == BK_OBJECT)
            count++;
    }
    if (count != expected) {
        rc = KMS_ERR_PROTO;
        snprintf(msg, msglen, "object count mismatch");
        goto out;
    }
    /* Pass 2: apply. Tenants, then clients (the target's own win), then
     * objects, committed in batches. */
    EVP_MAC_CTX_free(mac);
    mac = NULL;
    kms_arena_reset(a);
    rc = open_backup(fd, pass, rawkey, a, &keys, &mac, msg, msglen);
    if (rc)
        goto out;
    in.mac = NULL;
    size_t pending = 0;
    int64_t done = 0;
    kms_arena_t *wa = kms_arena_new(0); /* objects of the pending batch */
    if (!wa) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    w = store_write_new();
    for (;;) {
        kms_arena_reset(ia);
        ttlv_item_t *it = NULL;
        rc = w ? in_item(&in, ia, &it) : KMS_ERR_NOMEM;
        if (rc || it->tag == BK_END)
            break;
        if (it->tag == BK_TENANT) {
            const char *t = txt(it, BK_NAME);
            if (t && store_tenant_exists(rd, t) == KMS_ERR_NOTFOUND) {
                store_write_t *tw = store_write_new();
                rc = tw ? store_write_tenant(tw, t, false) : KMS_ERR_NOMEM;
                if (!rc)
                    rc = store_commit(opt->store, tw, NULL, 0);
                store_write_free(tw);
            }
        } else if (it->tag == BK_CLIENT) {
            store_client_t c, existing;
            memset(&c, 0, sizeof(c));
            snprintf(c.name, sizeof(c.name), "%s", txt(it, BK_NAME) ? txt(it, BK_NAME) : "");
            snprintf(c.tenant, sizeof(c.tenant), "%s", txt(it, BK_TENANT_NAME) ? txt(it, BK_TENANT_NAME) : "");
            snprintf(c.role, sizeof(c.role), "%s", txt(it, BK_ROLE) ? txt(it, BK_ROLE) : "");
            snprintf(c.kind, sizeof(c.kind), "%s", txt(it, BK_KIND) ? txt(it, BK_KIND) : "");
            snprintf(c.cert_sha256, sizeof(c.cert_sha256), "%s", txt(it, BK_CERT) ? txt(it, BK_CERT) : "");
            snprintf(c.password_hash, sizeof(c.password_hash), "%s", txt(it, BK_PWHASH) ? txt(it, BK_PWHASH) : "");
            c.created_us = num(it, BK_TIME, 0);
            bool clash = store_client_by_name(rd, c.name, &existing) == 0 ||
                         (c.cert_sha256[0] && store_client_by_cert(rd, c.cert_sha256, &existing) == 0);
            if (!clash) {
                store_write_t *cw = store_write_new();
                rc = cw ? store_write_client(cw, &c, false) : KMS_ERR_NOMEM;
                if (!rc)
                    rc = store_commit(opt->store, cw, NULL, 0);
                store_write_free(cw);
            } else {
                kms_log(KMS_LOG_WARN, "admin", "restore: client '%s' exists here; kept this server's", c.name);
            }
            kms_wipe(c.password_hash, sizeof(c.password_hash));
        } else if (it->tag == BK_OBJECT) {
            rc = apply_object(opt, &keys, wa, it, w, msg, msglen);
            if (!rc && ++pending >= BK_COMMIT_BATCH) {
                rc = store_commit(opt->store, w, NULL, 0);
                store_write_free(w);
                w = store_write_new();
                kms_arena_reset(wa);
                done += (int64_t)pending;
                pending = 0;
            }
        }
        if (rc)
            break;
    }
    if (!rc && pending) {
        rc = store_commit(opt->store, w, NULL, 0);
        done += (int64_t)pending;
    }
    kms_arena_free(wa);
    if (rc && !msg[0])
        snprintf(msg, msglen, "restore stopped after %lld objects: %s", (long long)done, kms_strerror(rc));
    if (!rc)
        *count_out = done;
out:
    if (rc && !msg[0])
        snprintf(msg, msglen, "%s", kms_strerror(rc));
    store_write_free(w);
    store_reader_free(rd);
    EVP_MAC_CTX_free(mac);
    kms_arena_free(ia);
    kms_arena_free(a);
    OPENSSL_cleanse(&keys, sizeof(keys));
    return rc;
}
