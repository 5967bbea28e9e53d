/*
 * hsm/provider_file.c: the `file` master-key provider for hosts without an
 * HSM. The master key is 32 raw bytes in a regular file that must be mode
 * 0600 (or stricter) and owned by the effective uid; it is read once into
 * a kms_secret_t. Wrapping is RFC 5649 AES key wrap with padding
 * (EVP_aes_256_wrap_pad); blobs in the GCM form are also accepted.
 *
 * It deliberately does not create parent directories, follow symlinks or
 * fix permissions: an operator mistake is refused with one clear line.
 */
#include "hsm/hsm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

typedef struct file_prov {
    kms_secret_t *key;
} file_prov_t;

/* RFC 5649 with OpenSSL's wrap-mode cipher. enc: 32 -> 40 bytes. */
static int kwp(int enc, const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out,
               size_t *outlen)
{
    int rc = KMS_ERR_CRYPTO, n = 0, m = 0;
    EVP_CIPHER_CTX *c = NULL;

    if (len > INT_MAX - 16)
        return KMS_ERR_LIMIT;
    if (!(c = EVP_CIPHER_CTX_new()))
        return KMS_ERR_NOMEM;
    /* Wrap mode must be allowed explicitly on the context. */
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, key, NULL, enc) != 1)
        goto out;
    if (EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + n, &m) != 1)
        goto out;
    *outlen = (size_t)n + (size_t)m;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

static int file_wrap(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *out)
{
    file_prov_t *f = h->impl;
    uint8_t buf[2 + 64 + 16];
    size_t n = 0;
    int rc;

    buf[0] = HSM_WRAP_FORMAT;
    buf[1] = HSM_ALG_KWP;
    if ((rc = kwp(1, f->key->data, dsk->data, dsk->len, buf + 2, &n)) == 0)
        rc = kms_buf_append(out, buf, 2 + n);
    return rc;
}

static int file_unwrap(hsm_t *h, const uint8_t *w, size_t len, kms_secret_t **out)
{
    file_prov_t *f = h->impl;
    kms_secret_t *s = NULL;
    size_t n = 0;
    int rc = KMS_ERR_CRYPTO;

    if (w[1] == HSM_ALG_KWP) {
        if (len < 2 + 16 || (len - 2) % 8)
            return KMS_ERR_CRYPTO;
        kms_secret_t *tmp = kms_secret_new(len - 2); /* unwrap may write the padded size */
        if (!tmp)
            return KMS_ERR_NOMEM;
        rc = kwp(0, f->key->data, w + 2, len - 2, tmp->data, &n);
        if (rc == 0 && !(s = kms_secret_dup(tmp->data, n)))
            rc = KMS_ERR_NOMEM;
        kms_secret_free(tmp);
        if (rc)
            goto out;
    } else if (w[1] == HSM_ALG_GCM) {
        uint8_t aad[32];
        size_t aadlen = hsm_wrap_aad(HSM_ALG_GCM, aad);
        if (len < 2 + HSM_GCM_IV_LEN + HSM_GCM_TAG_LEN + 1)
            return KMS_ERR_CRYPTO;
        n = len - 2 - HSM_GCM_IV_LEN - HSM_GCM_TAG_LEN;
        if (!(s = kms_secret_new(n)))
            return KMS_ERR_NOMEM;
        rc = hsm_gcm_decrypt(f->key->data, w + 2, aad, aadlen, w + 2 + HSM_GCM_IV_LEN,
                             len - 2 - HSM_GCM_IV_LEN, s->data);
        if (rc)
            goto out;
    } else {
        return KMS_ERR_CRYPTO;
    }
    *out = s;
    s = NULL;
out:
    kms_secret_free(s);
    return rc;
}

static int file_health(hsm_t *h)
{
    (void)h;
    return 0; /* the key is in memory; the file is not re-read */
}

static void file_close(hsm_t *h)
{
    file_prov_t *f = h->impl;
    if (f) {
        kms_secret_free(f->key);
        free(f);
    }
    free(h);
}

static const struct hsm_ops file_ops = {
    .name = "file",
    .wrap = file_wrap,
    .unwrap = file_unwrap,
    .health = file_health,
    .close = file_close,
};

/* Open path refusing symlinks, non-regular files, foreign owners and any
 * group/other permission bit. Returns the fd or a negative KMS_ERR_*. */
static int open_key_file(const char *path, struct stat *st, kms_error_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return kms_error_set(err, KMS_ERR_PERM,
                            "key file %s: is a symlink; point hsm.key_file at the file itself",
                            path);
        if (e == ENOENT)
            return kms_error_set(err, KMS_ERR_CONFIG,
                            "key file %s: does not exist (create it with 'kmsctl hsm init --file %s')",
                            path, path);
        return kms_error_set(err, e == EACCES ? KMS_ERR_PERM : KMS_ERR_IO, "key file %s: %s",
                        path, strerror(e));
    }
    int rc = 0;
    if (fstat(fd, st) != 0)
        rc = kms_error_set(err, KMS_ERR_IO, "key file %s: %s", path, strerror(errno));
    else if (!S_ISREG(st->st_mode))
        rc = kms_error_set(err, KMS_ERR_PERM, "key file %s: not a regular file", path);
    else if (st->st_uid != geteuid())
        rc = kms_error_set(err, KMS_ERR_PERM,
                      "key file %s: owned by uid %u, must be owned by the service user (uid %u)",
                      path, (unsigned)st->st_uid, (unsigned)geteuid());
    else if (st->st_mode & 077)
        rc = kms_error_set(err, KMS_ERR_PERM, "key file %s: mode %04o, must be 0600 (chmod 600 %s)",
                      path, (unsigned)(st->st_mode & 07777), path);
    else if (st->st_size != HSM_MASTER_LEN)
        rc = kms_error_set(err, KMS_ERR_CONFIG, "key file %s: %lld bytes, must be exactly %d",
                      path, (long long)st->st_size, HSM_MASTER_LEN);
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

int hsm_file_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err)
{
    hsm_t *h = NULL;
    file_prov_t *f = NULL;
    struct stat st;
    int fd = -1, rc;
    size_t got = 0;

    if (!cfg->key_file || !cfg->key_file[0])
        return kms_error_set(err, KMS_ERR_CONFIG, "hsm: provider file needs hsm.key_file");
    if ((fd = open_key_file(cfg->key_file, &st, err)) < 0)
        return fd;
    rc = KMS_ERR_NOMEM;
    if (!(h = calloc(1, sizeof(*h))) || !(f = calloc(1, sizeof(*f))) ||
        !(f->key = kms_secret_new(HSM_MASTER_LEN)))
        goto out;
    while (got < HSM_MASTER_LEN) {
        ssize_t r = read(fd, f->key->data + got, HSM_MASTER_LEN - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = kms_error_set(err, KMS_ERR_IO, "key file %s: short read", cfg->key_file);
            goto out;
        }
        got += (size_t)r;
    }
    h->ops = &file_ops;
    h->impl = f;
    snprintf(h->desc, sizeof(h->desc), "file %s", cfg->key_file);
    *out = h;
    h = NULL;
    f = NULL;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (f) {
        kms_secret_free(f->key);
        free(f);
    }
    free(h);
    return rc;
}

/* fsync the directory holding path; 0 or -errno. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (n == 0)
        snprintf(dir, sizeof(dir), "/");
    else if (n < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
    else
        return -ENAMETOOLONG;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int hsm_file_init(const char *path, kms_error_t *err)
{
    uint8_t key[HSM_MASTER_LEN];
    int fd = -1, rc = 0;

    if (!path || !path[0])
        return kms_error_set(err, KMS_ERR_CONFIG, "hsm: provider file needs a key file path");
    if (RAND_priv_bytes(key, sizeof(key)) != 1)
        return kms_error_set(err, KMS_ERR_CRYPTO, "key file %s: no randomness", path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        rc = kms_error_set(err, e == EEXIST ? KMS_ERR_EXISTS : KMS_ERR_IO,
                      "key file %s: %s%s", path, strerror(e),
                      e == EEXIST ? " (refusing to overwrite a master key)" : "");
        goto out;
    }
    /* The umask cannot widen 0600, but make sure nothing narrower is lost. */
    if (fchmod(fd, 0600) != 0)
        goto io;
    if (kms_write_all(fd, key, sizeof(key)) != 0)
        goto io;
    if (fsync(fd) != 0)
        goto io;
    if (close(fd) != 0) {
        fd = -1;
        goto io;
    }
    fd = -1;
    /* Make the new directory entry durable too: DSKs wrapped under this key
     * may be committed right after, and must never outlive their key. */
    if ((rc = fsync_parent(path)) != 0) {
        rc = kms_error_set(err, KMS_ERR_IO, "key file %s: fsync of its directory: %s", path,
                      strerror(-rc));
        unlink(path);
    }
    goto out;
io:
    rc = kms_error_set(err, KMS_ERR_IO, "key file %s: %s", path, strerror(errno));
    unlink(path); /* we created it (O_EXCL): do not leave a partial key */
out:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}
