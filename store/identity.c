/*
 * store/identity.c: reading tenants and client identities.
 *
 * Tenants name the owners of objects; clients map a certificate
 * fingerprint, a user name or a device serial number to a tenant and a
 * role. A device client's five identifiers are columns of their own
 * (schema v10), the serial number unique among device clients
 * (clients_device); their checks and the packed form of schema v9 are
 * store/device.c's. A disabled client (schema v12) is read like any other,
 * with its flag: refusing it is kmip/auth.c's business. Writes go
 * through the writer like every other mutation (store_write_tenant /
 * store_write_client, applied in apply.c). This file does not
 * authenticate anyone: it only looks records up; checking passwords,
 * certificates and device credentials is kmip/auth.c's job.
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
    store_device_t *d = &c->device;
    char *dev[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    for (int i = 0; i < 5 && !err; i++)
        err = store_col_text(st, 10 + i, dev[i], STORE_DEVICE_FIELD_MAX + 1);
    c->disabled = sqlite3_column_int(st, 15) != 0;
    c->disabled_us = sqlite3_column_int64(st, 16);
    if (!err)
        err = store_col_text(st, 17, c->disabled_reason, sizeof(c->disabled_reason));
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

int store_list_clients(store_reader_t *r, kms_arena_t *a, store_client_t **out, size_t *n_out)
{
    return store_rows_all(r, RS_CLIENT_LIST, a, sizeof(**out), row_client, (void **)out, n_out);
}
