/*
 * store/identity.c: reading tenants and client identities.
 *
 * Tenants name the owners of objects; clients map a certificate fingerprint
 * or a user name to a tenant and a role. Writes go through the writer like
 * every other mutation (store_write_tenant / store_write_client, applied in
 * apply.c). This file does not authenticate anyone: it only looks records
 * up; checking passwords and certificates is server/'s job.
 */
#include "store/store_int.h"

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

int store_list_tenants(store_reader_t *r, kms_arena_t *a, char ***out, size_t *n_out)
{
    sqlite3_stmt *st;
    char **v = NULL;
    size_t n = 0, cap = 0;
    if (!r || !a || !out || !n_out)
        return KMS_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    int err = store_rstmt(r, RS_TENANT_LIST, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **t = realloc(v, nc * sizeof(*t));
            if (!t) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
            v = t;
            cap = nc;
        }
        v[n] = kms_arena_strndup(a, (const char *)sqlite3_column_text(st, 0),
                                 (size_t)sqlite3_column_bytes(st, 0));
        if (!v[n++]) {
            err = KMS_ERR_NOMEM;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "list tenants");
        goto out;
    }
    if (n && !(*out = kms_arena_memdup(a, v, n * sizeof(*v)))) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    *n_out = n;
out:
    sqlite3_reset(st);
    free(v);
    return err;
}

static int row_client(sqlite3_stmt *st, store_client_t *c)
{
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
    if (err) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "a client row is malformed");
        return KMS_ERR_IO;
    }
    return 0;
}

static int client_one(store_reader_t *r, enum store_rstmt which, const char *key,
                      store_client_t *out)
{
    sqlite3_stmt *st;
    if (!r || !key || !out)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, which, &st);
    if (err)
        return err;
    store_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = row_client(st, out);
    else
        err = rc == SQLITE_DONE ? KMS_ERR_NOTFOUND : store_sqlerr(r->db, rc, "client");
    sqlite3_reset(st);
    return err;
}

int store_client_by_name(store_reader_t *r, const char *name, store_client_t *out)
{
    return client_one(r, RS_CLIENT_BY_NAME, name, out);
}

int store_client_by_cert(store_reader_t *r, const char *sha256_hex, store_client_t *out)
{
    return client_one(r, RS_CLIENT_BY_CERT, sha256_hex, out);
}

int store_list_clients(store_reader_t *r, kms_arena_t *a, store_client_t **out, size_t *n_out)
{
    sqlite3_stmt *st;
    store_client_t *v = NULL;
    size_t n = 0, cap = 0;
    if (!r || !a || !out || !n_out)
        return KMS_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    int err = store_rstmt(r, RS_CLIENT_LIST, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            store_client_t *t = realloc(v, nc * sizeof(*t));
            if (!t) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
            v = t;
            cap = nc;
        }
        if ((err = row_client(st, &v[n++])) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(r->db, rc, "list clients");
        goto out;
    }
    if (n && !(*out = kms_arena_memdup(a, v, n * sizeof(*v)))) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    *n_out = n;
out:
    sqlite3_reset(st);
    if (v)
        kms_wipe(v, cap * sizeof(*v));
    free(v);
    return err;
}
