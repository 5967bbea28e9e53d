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
 * backup.restore: copies the file into a private unnamed file next to the
 * database (O_TMPFILE, gone with the process), verifies the whole copy
 * first (key check value, HMAC-SHA256 over every byte), then re-seals each
 * object under this server's current data-store key and writes tenants,
 * clients and objects, read from that same copy: whoever can write the
 * operator's file cannot change it between the check and the apply. Only
 * onto a server that holds no objects yet.
 *
 * The file format (header, item framing, MAC, encryption of key material)
 * is backup_format.c's; this file decides what goes in it. Object versions
 * restart at 1 (blobs are bound to (id, version), and a restore creates
 * each object anew).
 * It deliberately does not back up the change log or node identity, and
 * keeps the target's own clients when a name exists on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin/admin_int.h"
#include "kmip/kmip.h"

#define BK_COMMIT_BATCH 128 /* restored objects per store commit */

/* Tell the caller how far we got (progress may be NULL). */
static void report(admin_progress_cb progress, void *arg, const char *phase, const char *unit,
                   int64_t done, int64_t total)
{
    if (progress)
        progress(arg, phase, unit, done, total);
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
                        const ttlv_item_t *rawkey, admin_progress_cb progress,
                        void *progress_arg, int64_t *count_out, kms_error_t *err)
{
    char tmp[4200];
    store_t *copy = NULL;
    store_reader_t *rd = NULL;
    kms_arena_t *a = NULL, *oa = NULL;
    uint8_t salt[16];
    bk_keys_t keys;
    bk_out_t o = {.fd = fd};
    kms_buf_init(&o.buf, BK_MAX_ITEM);
    kms_buf_t sealed;
    kms_buf_init(&sealed, BK_MAX_ITEM);
    int64_t count = 0;
    int rc;
    if (fd < 0 || !opt->keyring || !opt->store_path) {
        kms_error_set(err, KMS_ERR_INVAL, "no output file descriptor or keyring");
        return KMS_ERR_INVAL;
    }
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return KMS_ERR_CRYPTO;
    rc = admin_bk_derive(pass, rawkey, salt, sizeof(salt), BK_ARGON_T, BK_ARGON_M, BK_ARGON_P, &keys);
    if (rc) {
        kms_error_set(err, rc, "a passphrase or a 32-byte key is required");
        return rc;
    }
    o.mac = admin_bk_mac_new(keys.mac);
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
        kms_error_set(err, rc, "snapshot failed: %s", kms_strerror(rc));
        goto out;
    }
    store_options_t so = {.path = tmp, .read_only = true};
    rc = store_open(&so, &copy);
    if (!rc)
        rc = store_reader_new(copy, &rd);
    if (rc) {
        kms_error_set(err, rc, "cannot open the snapshot: %s", kms_strerror(rc));
        goto out;
    }
    /* 2. Header with the KDF parameters and a key check value. */
    rc = admin_bk_write_header(&o, &keys, rawkey != NULL, salt, sizeof(salt),
                               store_node_id(opt->store), a);
    if (rc)
        goto out;
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
            admin_bk_put(&o, t, true);
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
        const store_device_t *d = &c->device;
        const char *dev[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
        for (int f = 0; f < 5 && !o.err && strcmp(c->kind, "device") == 0; f++)
            if (!ttlv_new_textz(oa, t, BK_DEVICE_SERIAL + (uint32_t)f, dev[f]))
                o.err = KMS_ERR_NOMEM;
        /* Only a disabled client has these: absent = enabled. */
        if (!o.err && c->disabled &&
            (!ttlv_new_long(oa, t, BK_DISABLED_US, c->disabled_us) ||
             !ttlv_new_textz(oa, t, BK_DISABLED_REASON, c->disabled_reason)))
            o.err = KMS_ERR_NOMEM;
        if (!o.err)
            admin_bk_put(&o, t, true);
    }
    /* 4. Objects, in id order, a page of ids at a time. */
    scan_ids_t s = {.a = a};
    for (;;) {
        size_t before = s.n;
        rc = store_scan(rd, s.last, 1024, collect_id, &s);
        if (rc || s.n == before)
            break;
    }
    report(progress, progress_arg, "backing up", "objects", 0, (int64_t)s.n);
    for (size_t i = 0; i < s.n && !rc && !o.err; i++) {
        kms_arena_reset(oa);
        store_object_t *obj = NULL;
        rc = store_get(rd, oa, s.ids[i], NULL, &obj);
        if (rc) {
            kms_error_set(err, rc, "reading %s: %s", s.ids[i], kms_strerror(rc));
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
        if (obj->sealed.dsk_id) {
            kms_secret_t *plain = NULL;
            rc = hsm_row_open(opt->keyring, obj->tenant, obj->id, &obj->sealed, &plain);
            if (rc) {
                kms_error_set(err, rc, "cannot unseal %s: %s", obj->id, kms_strerror(rc));
                break;
            }
            kms_buf_reset(&sealed);
            rc = admin_bk_gcm(true, keys.enc, obj->id, plain->data, plain->len, &sealed);
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
            admin_bk_put(&o, t, true);
            count++;
            report(progress, progress_arg, "backing up", "objects", count, (int64_t)s.n);
        }
    }
    if (!rc && o.err)
        rc = o.err;
    if (rc)
        goto out;
    /* 5. Trailer: count and the MAC of everything before it. */
    kms_arena_reset(oa);
    rc = admin_bk_write_trailer(&o, count, oa);
    if (!rc && fsync(fd) != 0 && errno != EINVAL)
        rc = KMS_ERR_IO;
    if (!rc)
        *count_out = count;
out:
    if (rc && (!err || !err->msg[0]))
        kms_error_set(err, rc, "backup failed: %s", kms_strerror(rc));
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
/* A device client's identifiers from its BK_CLIENT item into *c: the
 * BK_DEVICE_* fields, or, in a backup of a version that packed them into
 * BK_CERT, those (store_device_unpack); cert_sha256 then "". A field that
 * does not fit leaves the identifiers empty, which store_write_client
 * refuses. */
static void restore_device(const ttlv_item_t *it, store_client_t *c)
{
    const char *packed = admin_bk_text(it, BK_CERT);
    store_device_t *d = &c->device;
    memset(d, 0, sizeof *d);
    c->cert_sha256[0] = '\0';
    if (!ttlv_find(it, BK_DEVICE_SERIAL) && packed && *packed) {
        (void)store_device_unpack(packed, d);
        return;
    }
    char *dev[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    for (int f = 0; f < 5; f++) {
        const char *v = admin_bk_text(it, BK_DEVICE_SERIAL + (uint32_t)f);
        if (v && strlen(v) > STORE_DEVICE_FIELD_MAX) {
            memset(d, 0, sizeof *d);
            return;
        }
        snprintf(dev[f], STORE_DEVICE_FIELD_MAX + 1, "%s", v ? v : "");
    }
}

static int apply_object(const admin_options_t *opt, const bk_keys_t *keys, kms_arena_t *a,
                        const ttlv_item_t *t, store_write_t *w, kms_error_t *err)
{
    store_object_t o;
    memset(&o, 0, sizeof(o));
    const char *id = admin_bk_text(t, BK_ID), *tenant = admin_bk_text(t, BK_TENANT_NAME);
    if (!id || !tenant || strlen(id) >= sizeof(o.id) || strlen(tenant) >= sizeof(o.tenant))
        return KMS_ERR_PROTO;
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.tenant, sizeof(o.tenant), "%s", tenant);
    o.object_type = (uint32_t)admin_bk_num(t, BK_TYPE, 0);
    o.state = (uint32_t)admin_bk_num(t, BK_STATE, 0);
    o.archived = admin_bk_num(t, BK_ARCHIVED, 0) != 0;
    size_t n = ttlv_count(t, BK_ATTR);
    o.attrs = n ? kms_arena_alloc(a, n * sizeof(store_attr_t)) : NULL;
    if (n && !o.attrs)
        return KMS_ERR_NOMEM;
    for (const ttlv_item_t *ai = ttlv_find(t, BK_ATTR); ai; ai = ttlv_find_next(ai, BK_ATTR)) {
        store_attr_t *at = &o.attrs[o.n_attrs++];
        const ttlv_item_t *v = ttlv_find(ai, BK_VALUE);
        at->name = admin_bk_text(ai, BK_NAME);
        if (!at->name || !v || v->type != TTLV_BYTE_STRING)
            return KMS_ERR_PROTO;
        at->index = (uint32_t)admin_bk_num(ai, BK_INDEX, 0);
        at->value = v->v.bytes.ptr;
        at->value_len = v->v.bytes.len;
        at->skey = admin_bk_text(ai, BK_SKEY);
        at->has_nkey = ttlv_find(ai, BK_NKEY) != NULL;
        at->nkey = admin_bk_num(ai, BK_NKEY, 0);
        /* The stored value is a TTLV item: its 4th byte is the type. */
        at->index_nkey = at->has_nkey && kmip_attr_nkey_indexed(at->name, at->value_len >= 4
                                                                    ? at->value[3] : -1);
    }
    const ttlv_item_t *blob = ttlv_find(t, BK_BLOB);
    kms_buf_t plain;
    kms_buf_init(&plain, BK_MAX_ITEM);
    int rc = 0;
    if (blob) {
        if (blob->type != TTLV_BYTE_STRING)
            rc = KMS_ERR_PROTO;
        if (!rc)
            rc = admin_bk_gcm(false, keys->enc, o.id, blob->v.bytes.ptr, blob->v.bytes.len, &plain);
        if (rc) {
            kms_error_set(err, rc, "key material of %s does not decrypt", o.id);
            goto out;
        }
        /* A new object in this store: its material's first seal here. */
        rc = hsm_row_seal(opt->keyring, o.tenant, o.id, NULL, plain.data, plain.len, a, &o.sealed);
        if (rc) {
            kms_error_set(err, rc, "cannot seal %s: %s", o.id, kms_strerror(rc));
            goto out;
        }
    }
    rc = store_write_put(w, &o, STORE_VERSION_NEW);
out:
    kms_buf_dispose_wipe(&plain);
    return rc;
}

/* A private copy of the backup file `fd` (read from offset 0) in an unnamed
 * file (O_TMPFILE) in the database's folder: readable and writable only
 * by this process, removed by the kernel when closed, even after a crash.
 * Restore verifies and applies the copy, so the file the operator named
 * cannot change between the two passes. The copy's descriptor in
 * *fd_out. */
static int private_copy(const admin_options_t *opt, int fd, admin_progress_cb progress,
                        void *progress_arg, int *fd_out, kms_error_t *err)
{
    char dir[4096];
    int out = -1, rc = 0;
    uint8_t *buf = NULL;
    snprintf(dir, sizeof dir, "%s", opt->store_path && opt->store_path[0] ? opt->store_path : ".");
    const char *d = dirname(dir);
    struct stat st;
    int64_t size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    out = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = KMS_ERR_IO;
        kms_error_set(err, rc, "cannot make a private copy of the backup in %s: %s", d, strerror(errno));
        goto out;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        rc = KMS_ERR_INVAL;
        kms_error_set(err, rc, "the backup file cannot be read from its start (not a regular file?)");
        goto out;
    }
    enum { CHUNK = 1 << 20 };
    buf = malloc(CHUNK);
    if (!buf) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    int64_t done = 0;
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = KMS_ERR_IO;
            kms_error_set(err, rc, "cannot read the backup file: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        for (ssize_t off = 0; off < r;) {
            ssize_t wr = write(out, buf + off, (size_t)(r - off));
            if (wr < 0 && errno == EINTR)
                continue;
            if (wr < 0) {
                rc = errno == ENOSPC ? KMS_ERR_NOSPC : KMS_ERR_IO;
                kms_error_set(err, rc, "cannot copy the backup next to the database (%s): %s "
                              "(restore needs free space for one copy of the file there)",
                              d, strerror(errno));
                goto out;
            }
            off += wr;
        }
        done += r;
        report(progress, progress_arg, "copying", "bytes", done, size);
    }
    *fd_out = out;
    out = -1;
out:
    free(buf);
    if (out >= 0)
        close(out);
    return rc;
}

int admin_backup_restore(const admin_options_t *opt, int fd, const char *pass,
                         const ttlv_item_t *rawkey, admin_progress_cb progress,
                         void *progress_arg, int64_t *count_out, kms_error_t *err)
{
    bk_keys_t keys;
    EVP_MAC_CTX *mac = NULL;
    kms_arena_t *a = kms_arena_new(0), *ia = kms_arena_new(0);
    store_reader_t *rd = NULL;
    store_write_t *w = NULL;
    int rc = KMS_ERR_NOMEM, copy = -1;
    int64_t count = 0, expected = -1;
    if (!a || !ia)
        goto out;
    if (fd < 0 || !opt->keyring) {
        rc = KMS_ERR_INVAL;
        kms_error_set(err, KMS_ERR_INVAL, "no input file descriptor or keyring");
        goto out;
    }
    rc = store_reader_new(opt->store, &rd);
    if (rc)
        goto out;
    if (store_count_objects(rd) != 0) {
        rc = KMS_ERR_STATE;
        kms_error_set(err, KMS_ERR_STATE, "this server already holds objects: restore only onto an empty server");
        goto out;
    }
    rc = private_copy(opt, fd, progress, progress_arg, &copy, err);
    if (rc)
        goto out;
    fd = copy;
    /* Pass 1: verify every byte before changing anything. */
    rc = admin_bk_open(fd, pass, rawkey, a, &keys, &mac, err);
    if (rc)
        goto out;
    bk_in_t in = {.fd = fd, .mac = mac};
    struct stat st;
    int64_t size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    for (;;) {
        kms_arena_reset(ia);
        ttlv_item_t *it = NULL;
        rc = admin_bk_get(&in, ia, &it);
        if (rc) {
            kms_error_set(err, rc, "the backup file is truncated or damaged");
            goto out;
        }
        off_t pos = lseek(fd, 0, SEEK_CUR);
        report(progress, progress_arg, "verifying", "bytes", pos < 0 ? 0 : (int64_t)pos, size);
        if (it->tag == BK_END) {
            if (admin_bk_check_trailer(mac, it, &expected) != 0) {
                rc = KMS_ERR_CRYPTO;
                kms_error_set(err, KMS_ERR_CRYPTO, "the backup file was modified (MAC mismatch)");
                goto out;
            }
            break;
        }
        if (it->tag == BK_OBJECT)
            count++;
    }
    if (count != expected) {
        rc = KMS_ERR_PROTO;
        kms_error_set(err, KMS_ERR_PROTO, "object count mismatch");
        goto out;
    }
    /* Pass 2: apply. Tenants, then clients (the target's own win), then
     * objects, committed in batches. */
    EVP_MAC_CTX_free(mac);
    mac = NULL;
    kms_arena_reset(a);
    rc = admin_bk_open(fd, pass, rawkey, a, &keys, &mac, err);
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
    report(progress, progress_arg, "restoring", "objects", 0, expected);
    for (;;) {
        kms_arena_reset(ia);
        ttlv_item_t *it = NULL;
        rc = w ? admin_bk_get(&in, ia, &it) : KMS_ERR_NOMEM;
        if (rc || it->tag == BK_END)
            break;
        if (it->tag == BK_TENANT) {
            const char *t = admin_bk_text(it, BK_NAME);
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
            snprintf(c.name, sizeof(c.name), "%s", admin_bk_text(it, BK_NAME) ? admin_bk_text(it, BK_NAME) : "");
            snprintf(c.tenant, sizeof(c.tenant), "%s", admin_bk_text(it, BK_TENANT_NAME) ? admin_bk_text(it, BK_TENANT_NAME) : "");
            snprintf(c.role, sizeof(c.role), "%s", admin_bk_text(it, BK_ROLE) ? admin_bk_text(it, BK_ROLE) : "");
            snprintf(c.kind, sizeof(c.kind), "%s", admin_bk_text(it, BK_KIND) ? admin_bk_text(it, BK_KIND) : "");
            snprintf(c.cert_sha256, sizeof(c.cert_sha256), "%s", admin_bk_text(it, BK_CERT) ? admin_bk_text(it, BK_CERT) : "");
            snprintf(c.password_hash, sizeof(c.password_hash), "%s", admin_bk_text(it, BK_PWHASH) ? admin_bk_text(it, BK_PWHASH) : "");
            c.created_us = admin_bk_num(it, BK_TIME, 0);
            if (strcmp(c.kind, "device") == 0)
                restore_device(it, &c);
            /* Disabled stays disabled; a backup without the field (or of
             * a version before) restores the client enabled. */
            if (ttlv_find(it, BK_DISABLED_US)) {
                const char *why = admin_bk_text(it, BK_DISABLED_REASON);
                c.disabled = true;
                c.disabled_us = admin_bk_num(it, BK_DISABLED_US, 0);
                snprintf(c.disabled_reason, sizeof(c.disabled_reason), "%s", why ? why : "");
            }
            store_device_t dev;
            bool clash = store_client_by_name(rd, c.name, &existing) == 0 ||
                         (c.cert_sha256[0] && store_client_by_cert(rd, c.cert_sha256, &existing) == 0) ||
                         (store_client_device(&c, &dev) == 0 &&
                          store_client_by_device(rd, dev.serial, &existing) == 0);
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
            rc = apply_object(opt, &keys, wa, it, w, err);
            if (!rc && ++pending >= BK_COMMIT_BATCH) {
                rc = store_commit(opt->store, w, NULL, 0);
                store_write_free(w);
                w = store_write_new();
                kms_arena_reset(wa);
                done += (int64_t)pending;
                pending = 0;
                report(progress, progress_arg, "restoring", "objects", done, expected);
            }
        }
        if (rc)
            break;
    }
    if (!rc && pending) {
        rc = store_commit(opt->store, w, NULL, 0);
        done += (int64_t)pending;
    }
    if (!rc)
        report(progress, progress_arg, "restoring", "objects", done, expected);
    kms_arena_free(wa);
    if (rc && (!err || !err->msg[0]))
        kms_error_set(err, rc, "restore stopped after %lld objects: %s", (long long)done, kms_strerror(rc));
    if (!rc)
        *count_out = done;
out:
    if (rc && (!err || !err->msg[0]))
        kms_error_set(err, rc, "%s", kms_strerror(rc));
    store_write_free(w);
    store_reader_free(rd);
    EVP_MAC_CTX_free(mac);
    kms_arena_free(ia);
    kms_arena_free(a);
    OPENSSL_cleanse(&keys, sizeof(keys));
    if (copy >= 0)
        close(copy);
    return rc;
}
