/*
 * store/identity.c: reading tenants and client identities, and the form a
 * device client's identifiers take in its record.
 *
 * Tenants name the owners of objects; clients map a certificate
 * fingerprint, a user name or a device serial number to a tenant and a
 * role. A device client's five identifiers are packed into its
 * cert_sha256 field, in a fixed order separated by 0x1f (which no
 * identifier may contain), the serial number first: the clients_device
 * index (schema v9) is on that first part. Writes go through the writer
 * like every other mutation (store_write_tenant / store_write_client,
 * applied in apply.c). This file does not authenticate anyone: it only
 * looks records up; checking passwords, certificates and device
 * credentials is kmip/auth.c's job.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_tenant_exists(store_reader_t *r, const char *tenant)
{
    sqlite3_stmt *st;
    if (!r || !tenant)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_TENANT_EXISTS, &st);
    if (err)
        return err;
    store_bind_text(st, 1, tenant);
    int rc = sqlite3_step(st);
    err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? KMS_ERR_NOTFOUND
                                                   : store_sqlerr(r->db, rc, "tenant");
    sqlite3_reset(st);
    return err;
}

static int row_tenant_name(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    char **name = dst;
    *name = kms_arena_strndup(a, (const char *)sqlite3_column_text(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0));
    return *name ? 0 : KMS_ERR_NOMEM;
}

int store_list_tenants(store_reader_t *r, kms_arena_t *a, char ***out, size_t *n_out)
{
    return store_rows_all(r, RS_TENANT_LIST, a, sizeof(**out), row_tenant_name, (void **)out,
                          n_out);
}

static int row_client(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst)
{
    (void)r;
    (void)a;
    store_client_t *c = dst;
    memset(c, 0, sizeof(*c));
    int err = store_col_text(st, 0, c->name, sizeof(c->name));
    if (!err)
        err = store_col_text(st, 1, c->tenant, sizeof(c->tenant));
    if (!err)
        err = store_col_text(st, 2, c->role, sizeof(c->role));
    if (!err)
        err = store_col_text(st, 3, c->kind, sizeof(c->kind));
    if (!err)
        err = store_col_text(st, 4, c->cert_sha256, sizeof(c->cert_sha256));
    if (!err)
        err = store_col_text(st, 5, c->password_hash, sizeof(c->password_hash));
    c->created_us = sqlite3_column_int64(st, 6);
    if (!err)
        err = store_row_change_id(st, 7, &c->change);
    if (err) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "a client row is malformed");
        return KMS_ERR_IO;
    }
    return 0;
}

int store_client_by_name(store_reader_t *r, const char *name, store_client_t *out)
{
    return name ? store_row_one(r, RS_CLIENT_BY_NAME, -1, name, row_client, out) : KMS_ERR_INVAL;
}

int store_client_by_cert(store_reader_t *r, const char *sha256_hex, store_client_t *out)
{
    return sha256_hex ? store_row_one(r, RS_CLIENT_BY_CERT, -1, sha256_hex, row_client, out)
                      : KMS_ERR_INVAL;
}

int store_client_by_device(store_reader_t *r, const char *serial, store_client_t *out)
{
    return serial ? store_row_one(r, RS_CLIENT_BY_DEVICE, -1, serial, row_client, out)
                  : KMS_ERR_INVAL;
}

#define DEVICE_SEP '\x1f'

/* The identifier fields in their packed order. */
static char *device_field(store_device_t *d, int i)
{
    char *f[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    return f[i];
}

static bool device_text_ok(const char *v)
{
    size_t n = strnlen(v, STORE_DEVICE_FIELD_MAX + 1);
    if (n > STORE_DEVICE_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

int store_client_set_device(store_client_t *c, const store_device_t *d)
{
    if (!c || !d || !d->serial[0])
        return KMS_ERR_INVAL;
    store_device_t tmp = *d;
    char packed[sizeof c->cert_sha256];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        const char *v = device_field(&tmp, i);
        if (!device_text_ok(v))
            return KMS_ERR_INVAL;
        size_t len = strlen(v);
        memcpy(packed + n, v, len); /* 5 * 64 + 4 separators + NUL fit */
        n += len;
        if (i < 4)
            packed[n++] = DEVICE_SEP;
    }
    packed[n] = '\0';
    memcpy(c->cert_sha256, packed, n + 1);
    snprintf(c->kind, sizeof c->kind, "device");
    return 0;
}

int store_client_device(const store_client_t *c, store_device_t *out)
{
    if (!out)
        return KMS_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (!c || strcmp(c->kind, "device") != 0 ||
        strnlen(c->cert_sha256, sizeof c->cert_sha256) == sizeof c->cert_sha256)
        return KMS_ERR_INVAL;
    const char *p = c->cert_sha256;
    for (int i = 0; i < 5; i++) {
        const char *end = i < 4 ? strchr(p, DEVICE_SEP) : p + strlen(p);
        if (!end || (size_t)(end - p) > STORE_DEVICE_FIELD_MAX)
            goto bad;
        char *f = device_field(out, i);
        memcpy(f, p, (size_t)(end - p));
        f[end - p] = '\0';
        if (!device_text_ok(f))
            goto bad;
        p = end + 1;
    }
    if (out->serial[0])
        return 0;
bad:
    memset(out, 0, sizeof(*out));
    return KMS_ERR_INVAL;
}

int store_list_clients(store_reader_t *r, kms_arena_t *a, store_client_t **out, size_t *n_out)
{
    return store_rows_all(r, RS_CLIENT_LIST, a, sizeof(**out), row_client, (void **)out, n_out);
}
