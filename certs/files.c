/*
 * certs/files.c: PEM files in and out. Writing goes through a temporary
 * sibling created O_EXCL with its final mode and then linked or renamed
 * into place, so a reader never sees a half-written file and a private key
 * is never, even for a moment, readable by anyone but the owner.
 *
 * The same PEM (and a CSR's DER) to and from memory, for certificates and
 * requests that travel in a cluster's join frames.
 *
 * It does not create directories or choose where files go (kmsctl does).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(dir))
            return KMS_ERR_IO;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return KMS_ERR_IO;
    int rc = fsync(fd) == 0 ? 0 : KMS_ERR_IO;
    close(fd);
    return rc;
}

int certs_write_file(const char *path, const void *data, size_t len, unsigned mode,
                            bool overwrite)
{
    char tmp[PATH_MAX];
    unsigned char rnd[6];
    char rhex[13];
    int fd = -1, rc = KMS_ERR_IO, created = 0;

    if (path == NULL || path[0] == '\0' || (data == NULL && len > 0))
        return KMS_ERR_INVAL;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KMS_ERR_CRYPTO;
    kms_hex_encode(rnd, sizeof(rnd), rhex);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, rhex) >= sizeof(tmp))
        return KMS_ERR_INVAL;

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        goto out;
    created = 1;
    if (kms_write_all(fd, data, len) != 0)
        goto out;
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (overwrite) {
        if (rename(tmp, path) != 0)
            goto out;
    } else {
        if (link(tmp, path) != 0) {
            rc = errno == EEXIST ? KMS_ERR_EXISTS : KMS_ERR_IO;
            goto out;
        }
        unlink(tmp);
    }
    created = 0;
    rc = fsync_parent(path);
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    return rc;
}

int certs_write_key_pem(const char *path, EVP_PKEY *key, bool overwrite)
{
    BIO *b = NULL;
    char *data = NULL;
    long len;
    int rc = KMS_ERR_CRYPTO;

    if (key == NULL)
        return KMS_ERR_INVAL;
    /* Secure-heap memory BIO: wiped when freed. */
    if ((b = BIO_new(BIO_s_secmem())) == NULL)
        goto out;
    if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    len = BIO_get_mem_data(b, &data);
    if (len <= 0 || data == NULL)
        goto out;
    rc = certs_write_file(path, data, (size_t)len, 0600, overwrite);
out:
    BIO_free(b);
    ERR_clear_error();
    return rc;
}

int certs_write_cert_pem(const char *path, X509 *cert, bool overwrite)
{
    BIO *b = NULL;
    char *data = NULL;
    long len;
    int rc = KMS_ERR_CRYPTO;

    if (cert == NULL)
        return KMS_ERR_INVAL;
    if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(b, cert) != 1)
        goto out;
    len = BIO_get_mem_data(b, &data);
    if (len <= 0 || data == NULL)
        goto out;
    rc = certs_write_file(path, data, (size_t)len, 0644, overwrite);
out:
    BIO_free(b);
    ERR_clear_error();
    return rc;
}

int certs_print_cert_pem(X509 *cert, FILE *f)
{
    if (cert == NULL || f == NULL)
        return KMS_ERR_INVAL;
    int ok = PEM_write_X509(f, cert) == 1 && fflush(f) == 0;
    ERR_clear_error();
    return ok ? 0 : KMS_ERR_IO;
}

static BIO *open_read(const char *path, int *rc)
{
    BIO *b = path ? BIO_new_file(path, "rb") : NULL;
    *rc = b ? 0 : KMS_ERR_IO;
    ERR_clear_error();
    return b;
}

int certs_load_key_pem(const char *path, EVP_PKEY **key_out)
{
    int rc;
    BIO *b = open_read(path, &rc);
    if (b == NULL)
        return rc;
    /* An empty passphrase callback result: encrypted keys fail cleanly. */
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
    BIO_free(b);
    ERR_clear_error();
    if (k == NULL)
        return KMS_ERR_PROTO;
    *key_out = k;
    return 0;
}

int certs_load_cert_pem(const char *path, X509 **cert_out)
{
    int rc;
    BIO *b = open_read(path, &rc);
    if (b == NULL)
        return rc;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    if (x == NULL)
        return KMS_ERR_PROTO;
    *cert_out = x;
    return 0;
}

int certs_load_csr(const char *path, X509_REQ **csr_out)
{
    int rc;
    BIO *b = open_read(path, &rc);
    if (b == NULL)
        return rc;
    X509_REQ *r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    if (r == NULL) {
        /* Not PEM: try DER from the start. */
        ERR_clear_error();
        if (BIO_reset(b) == 0)
            r = d2i_X509_REQ_bio(b, NULL);
    }
    BIO_free(b);
    ERR_clear_error();
    if (r == NULL)
        return KMS_ERR_PROTO;
    *csr_out = r;
    return 0;
}

/* A read-only memory BIO over p[0..n). */
static BIO *mem_read(const void *p, size_t n)
{
    BIO *b = p && n <= INT_MAX ? BIO_new_mem_buf(p, (int)n) : NULL;
    ERR_clear_error();
    return b;
}

int certs_csr_parse(const void *p, size_t n, X509_REQ **csr_out)
{
    BIO *b = mem_read(p, n);
    if (b == NULL)
        return p ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
    X509_REQ *r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    if (r == NULL) {
        const unsigned char *der = p; /* not PEM: DER */
        ERR_clear_error();
        r = n <= LONG_MAX ? d2i_X509_REQ(NULL, &der, (long)n) : NULL;
    }
    ERR_clear_error();
    if (r == NULL)
        return KMS_ERR_PROTO;
    *csr_out = r;
    return 0;
}

int certs_cert_parse(const void *p, size_t n, X509 **cert_out)
{
    BIO *b = mem_read(p, n);
    if (b == NULL)
        return p ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    if (x == NULL)
        return KMS_ERR_PROTO;
    *cert_out = x;
    return 0;
}

/* Append what the PEM writer put into a memory BIO to out. */
static int bio_to_buf(BIO *b, int written, kms_buf_t *out)
{
    char *data = NULL;
    long len = written == 1 ? BIO_get_mem_data(b, &data) : -1;
    int rc = len > 0 ? kms_buf_append(out, data, (size_t)len) : KMS_ERR_CRYPTO;
    BIO_free(b);
    ERR_clear_error();
    return rc;
}

int certs_cert_pem(X509 *cert, kms_buf_t *out)
{
    BIO *b = cert && out ? BIO_new(BIO_s_mem()) : NULL;
    if (b == NULL)
        return cert && out ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
    return bio_to_buf(b, PEM_write_bio_X509(b, cert), out);
}

int certs_csr_pem(X509_REQ *csr, kms_buf_t *out)
{
    BIO *b = csr && out ? BIO_new(BIO_s_mem()) : NULL;
    if (b == NULL)
        return csr && out ? KMS_ERR_NOMEM : KMS_ERR_INVAL;
    return bio_to_buf(b, PEM_write_bio_X509_REQ(b, csr), out);
}

int certs_load_ca(const char *cert_path, const char *key_path, X509 **ca_out,
                  EVP_PKEY **key_out, kms_error_t *err)
{
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    struct stat st;
    int rc;

    if (cert_path == NULL || key_path == NULL || ca_out == NULL || key_out == NULL)
        return KMS_ERR_INVAL;
    if ((rc = certs_load_cert_pem(cert_path, &ca)) != 0) {
        kms_error_set(err, rc, "%s: %s", cert_path,
                      rc == KMS_ERR_IO ? strerror(errno) : "not a PEM certificate");
        goto out;
    }
    if (stat(key_path, &st) != 0) {
        rc = kms_error_set(err, KMS_ERR_IO, "%s: %s", key_path, strerror(errno));
        goto out;
    }
    if (st.st_mode & 077) {
        rc = kms_error_set(err, KMS_ERR_PERM, "%s: mode %04o, must not be readable by group or others",
                           key_path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if ((rc = certs_load_key_pem(key_path, &key)) != 0) {
        kms_error_set(err, rc, "%s: %s", key_path,
                      rc == KMS_ERR_IO ? strerror(errno) : "not an unencrypted PEM private key");
        goto out;
    }
    if (X509_check_private_key(ca, key) != 1 || X509_check_ca(ca) < 1) {
        rc = kms_error_set(err, KMS_ERR_INVAL, "%s does not match the CA certificate %s", key_path,
                           cert_path);
        goto out;
    }
    *ca_out = ca;
    *key_out = key;
    ca = NULL;
    key = NULL;
    rc = 0;
out:
    ERR_clear_error();
    X509_free(ca);
    EVP_PKEY_free(key);
    return rc;
}
