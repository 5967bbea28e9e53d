/*
 * store/write.c: building a write (a list of mutations) before commit.
 *
 * Every mutation is deep-copied into the write's own arena, so callers may
 * free their objects as soon as store_write_put() returns; the arena is
 * wiped on free. Validation of sizes and required fields happens here, in
 * the caller's thread, so the writer thread only applies. Applying is in
 * apply.c; submitting and waiting in writer.c.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

store_write_t *store_write_new(void)
{
    store_write_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->arena = kms_arena_new(0);
    if (!w->arena || pthread_cond_init(&w->cv, NULL) != 0) {
        kms_arena_free(w->arena);
        free(w);
        return NULL;
    }
    return w;
}

void store_write_free(store_write_t *w)
{
    if (!w)
        return;
    kms_arena_free(w->arena);
    free(w->ops);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static store_op_t *add_op(store_write_t *w, enum store_op_kind kind)
{
    if (w->n_ops == w->cap_ops) {
        size_t cap = w->cap_ops ? w->cap_ops * 2 : 4;
        if (cap > SIZE_MAX / sizeof(store_op_t))
            return NULL;
        store_op_t *ops = realloc(w->ops, cap * sizeof(*ops));
        if (!ops)
            return NULL;
        w->ops = ops;
        w->cap_ops = cap;
    }
    store_op_t *op = &w->ops[w->n_ops];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    return op;
}

/* A fixed-size text field must be non-empty and NUL-terminated inside it. */
static bool field_ok(const char *f, size_t cap)
{
    size_t n = strnlen(f, cap);
    return n > 0 && n < cap;
}

static int copy_object(kms_arena_t *a, const store_object_t *src, store_object_t *dst)
{
    const kms_sealed_t *sl = &src->sealed;
    *dst = *src;
    dst->sealed.blob = NULL;
    dst->attrs = NULL;
    if (sl->len) {
        /* Material is named by its data-store key and seal generation
         * (both bound by the seal): without them it could never open. */
        if (!sl->blob || sl->dsk_id == 0 || sl->gen < 1)
            return KMS_ERR_INVAL;
        if (sl->len > INT32_MAX)
            return KMS_ERR_LIMIT;
        dst->sealed.blob = kms_arena_memdup(a, sl->blob, sl->len);
        if (!dst->sealed.blob)
            return KMS_ERR_NOMEM;
    }
    if (src->n_attrs) {
        if (!src->attrs || src->n_attrs > SIZE_MAX / sizeof(store_attr_t))
            return KMS_ERR_INVAL;
        store_attr_t *at = kms_arena_alloc(a, src->n_attrs * sizeof(*at));
        if (!at)
            return KMS_ERR_NOMEM;
        for (size_t i = 0; i < src->n_attrs; i++) {
            const store_attr_t *s = &src->attrs[i];
            if (!s->name || !s->name[0] || (s->value_len && !s->value) ||
                s->value_len > INT32_MAX)
                return KMS_ERR_INVAL;
            at[i] = *s;
            at[i].name = kms_arena_strdup(a, s->name);
            /* A zero-length value is stored as an empty blob, never NULL. */
            at[i].value = kms_arena_memdup(a, s->value ? s->value : (const uint8_t *)"",
                                           s->value_len);
            at[i].skey = s->skey ? kms_arena_strdup(a, s->skey) : NULL;
            if (!at[i].name || !at[i].value || (s->skey && !at[i].skey))
                return KMS_ERR_NOMEM;
        }
        /* (name, index) identifies an instance: a repeat is a caller bug
         * and must not reach the writer (see apply.c insert_attrs). */
        for (size_t i = 0; i < src->n_attrs; i++)
            for (size_t j = i + 1; j < src->n_attrs; j++)
                if (at[i].index == at[j].index && strcmp(at[i].name, at[j].name) == 0)
                    return KMS_ERR_INVAL;
        dst->attrs = at;
    }
    return 0;
}

int store_write_put(store_write_t *w, const store_object_t *obj, int64_t expect_version)
{
    if (!w || !obj || expect_version < STORE_VERSION_ANY)
        return KMS_ERR_INVAL;
    if (!field_ok(obj->id, sizeof(obj->id)) || !field_ok(obj->tenant, sizeof(obj->tenant)))
        return KMS_ERR_INVAL;
    size_t mark = w->n_ops;
    store_op_t *op = add_op(w, STORE_OP_PUT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    int err = copy_object(w->arena, obj, &op->obj);
    if (err)
        return err; /* op not counted: n_ops unchanged */
    w->n_ops = mark + 1;
    return 0;
}

int store_write_delete(store_write_t *w, const char *id, int64_t expect_version)
{
    if (!w || !id || !id[0] || strlen(id) >= 64 || expect_version < STORE_VERSION_ANY ||
        expect_version == STORE_VERSION_NEW)
        return KMS_ERR_INVAL;
    store_op_t *op = add_op(w, STORE_OP_DELETE);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    op->key = kms_arena_strdup(w->arena, id);
    if (!op->key)
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

int store_write_meta(store_write_t *w, const char *key, const void *val, size_t len)
{
    if (!w || !key || !key[0] || (len && !val) || len > INT32_MAX)
        return KMS_ERR_INVAL;
    store_op_t *op = add_op(w, STORE_OP_META);
    if (!op)
        return KMS_ERR_NOMEM;
    op->key = kms_arena_strdup(w->arena, key);
    op->val = kms_arena_memdup(w->arena, val ? val : "", len);
    op->val_len = len;
    if (!op->key || !op->val)
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

int store_write_tenant(store_write_t *w, const char *tenant, bool remove)
{
    if (!w || !tenant || !tenant[0] || strlen(tenant) >= 64)
        return KMS_ERR_INVAL;
    store_op_t *op = add_op(w, STORE_OP_TENANT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->remove = remove;
    op->key = kms_arena_strdup(w->arena, tenant);
    if (!op->key)
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

int store_write_client(store_write_t *w, const store_client_t *c, bool remove)
{
    if (!w || !c || !field_ok(c->name, sizeof(c->name)))
        return KMS_ERR_INVAL;
    if (!remove) {
        if (!field_ok(c->tenant, sizeof(c->tenant)))
            return KMS_ERR_INVAL;
        if (strcmp(c->role, "client") != 0 && strcmp(c->role, "admin") != 0)
            return KMS_ERR_INVAL;
        if (strcmp(c->kind, "cert") == 0) {
            /* Pinned by fingerprint, or (empty) by subject CN alone. */
            if (c->cert_sha256[0] != 0 && !is_lower_hex(c->cert_sha256, 64))
                return KMS_ERR_INVAL;
        } else if (strcmp(c->kind, "password") == 0) {
            if (!field_ok(c->password_hash, sizeof(c->password_hash)))
                return KMS_ERR_INVAL;
        } else {
            return KMS_ERR_INVAL;
        }
        if (strnlen(c->cert_sha256, sizeof(c->cert_sha256)) >= sizeof(c->cert_sha256) ||
            strnlen(c->password_hash, sizeof(c->password_hash)) >= sizeof(c->password_hash))
            return KMS_ERR_INVAL;
    }
    store_op_t *op = add_op(w, STORE_OP_CLIENT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->remove = remove;
    op->client = *c;
    w->n_ops++;
    return 0;
}
