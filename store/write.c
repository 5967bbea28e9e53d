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

store_op_t *store_write_add_op(store_write_t *w, enum store_op_kind kind)
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

/* The touched names of a local put: non-empty, bounded, copied. */
static int copy_touched(kms_arena_t *a, const store_object_t *src, store_object_t *dst)
{
    dst->touched = NULL;
    dst->n_touched = 0;
    if (!src->touched)
        return 0;
    if (src->n_touched > STORE_CLOCKS_MAX)
        return KMS_ERR_LIMIT;
    const char **t = kms_arena_alloc(a, (src->n_touched + 1) * sizeof(*t));
    if (!t)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < src->n_touched; i++) {
        const char *n = src->touched[i];
        if (!n || !n[0] || strlen(n) > STORE_CLOCK_NAME_MAX)
            return KMS_ERR_INVAL;
        if (!(t[i] = kms_arena_strdup(a, n)))
            return KMS_ERR_NOMEM;
    }
    dst->touched = t;
    dst->n_touched = src->n_touched;
    return 0;
}

/* The clocks of an applied put: checked by encoding them once (names
 * unique and bounded, node ids valid), then copied. */
static int copy_clocks(kms_arena_t *a, const store_object_t *src, store_object_t *dst)
{
    dst->clocks = NULL;
    dst->n_clocks = 0;
    if (!src->n_clocks)
        return 0;
    if (!src->clocks)
        return KMS_ERR_INVAL;
    kms_buf_t b;
    kms_buf_init(&b, SIZE_MAX);
    int err = store_clocks_encode(src->clocks, src->n_clocks, &b);
    kms_buf_dispose(&b);
    if (err)
        return err;
    store_clock_t *c = kms_arena_alloc(a, src->n_clocks * sizeof(*c));
    if (!c)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < src->n_clocks; i++) {
        c[i].hlc = src->clocks[i].hlc;
        c[i].name = kms_arena_strdup(a, src->clocks[i].name);
        c[i].node = kms_arena_strdup(a, src->clocks[i].node);
        if (!c[i].name || !c[i].node)
            return KMS_ERR_NOMEM;
    }
    dst->clocks = c;
    dst->n_clocks = src->n_clocks;
    return 0;
}

static bool change_id_ok(const store_change_id_t *id)
{
    return id && id->hlc >= 0 && id->origin_seq >= 0 && field_ok(id->origin, sizeof(id->origin));
}

int store_write_put(store_write_t *w, const store_object_t *obj, int64_t expect_version)
{
    if (!w || !obj || expect_version < STORE_VERSION_ANY)
        return KMS_ERR_INVAL;
    if (!field_ok(obj->id, sizeof(obj->id)) || !field_ok(obj->tenant, sizeof(obj->tenant)))
        return KMS_ERR_INVAL;
    size_t mark = w->n_ops;
    store_op_t *op = store_write_add_op(w, STORE_OP_PUT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    int err = copy_object(w->arena, obj, &op->obj);
    if (!err)
        err = copy_touched(w->arena, obj, &op->obj);
    if (err)
        return err; /* op not counted: n_ops unchanged */
    op->obj.clocks = NULL;
    op->obj.n_clocks = 0;
    w->n_ops = mark + 1;
    return 0;
}

int store_write_put_repl(store_write_t *w, const store_object_t *obj, int64_t expect_version,
                         const store_change_id_t *id)
{
    if (!w || !obj || expect_version < STORE_VERSION_ANY || !change_id_ok(id))
        return KMS_ERR_INVAL;
    if (!field_ok(obj->id, sizeof(obj->id)) || !field_ok(obj->tenant, sizeof(obj->tenant)))
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_PUT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    op->repl = true;
    op->id = *id;
    int err = copy_object(w->arena, obj, &op->obj);
    if (!err)
        err = copy_clocks(w->arena, obj, &op->obj);
    if (err)
        return err;
    op->obj.touched = NULL;
    op->obj.n_touched = 0;
    w->n_ops++;
    return 0;
}

int store_write_delete(store_write_t *w, const char *id, int64_t expect_version)
{
    if (!w || !id || !id[0] || strlen(id) >= 64 || expect_version < STORE_VERSION_ANY ||
        expect_version == STORE_VERSION_NEW)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_DELETE);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    op->key = kms_arena_strdup(w->arena, id);
    if (!op->key)
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

int store_write_delete_repl(store_write_t *w, enum store_kind kind, const char *key,
                            int64_t expect_version, const store_change_id_t *id)
{
    size_t cap = kind == STORE_KIND_CLIENT ? sizeof(((store_client_t *)0)->name) : 64;
    if (!w || !key || !key[0] || strlen(key) >= cap || !change_id_ok(id) ||
        expect_version < STORE_VERSION_ANY)
        return KMS_ERR_INVAL;
    if (kind != STORE_KIND_OBJECT && (kind != STORE_KIND_TENANT && kind != STORE_KIND_CLIENT))
        return KMS_ERR_INVAL;
    if (kind != STORE_KIND_OBJECT && expect_version != STORE_VERSION_ANY)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, kind == STORE_KIND_OBJECT ? STORE_OP_DELETE
                               : kind == STORE_KIND_TENANT ? STORE_OP_TENANT
                                                           : STORE_OP_CLIENT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->expect = expect_version;
    op->repl = true;
    op->remove = true;
    op->id = *id;
    if (kind == STORE_KIND_CLIENT) {
        memcpy(op->client.name, key, strlen(key) + 1);
    } else if (!(op->key = kms_arena_strdup(w->arena, key))) {
        return KMS_ERR_NOMEM;
    }
    w->n_ops++;
    return 0;
}

int store_write_meta(store_write_t *w, const char *key, const void *val, size_t len)
{
    if (!w || !key || !key[0] || (len && !val) || len > INT32_MAX)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_META);
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
    store_op_t *op = store_write_add_op(w, STORE_OP_TENANT);
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

/* A client record as it may be stored. */
static bool client_ok(const store_client_t *c)
{
    if (!field_ok(c->tenant, sizeof(c->tenant)))
        return false;
    if (strcmp(c->role, "client") != 0 && strcmp(c->role, "admin") != 0)
        return false;
    if (strcmp(c->kind, "cert") == 0) {
        /* Pinned by fingerprint, or (empty) by subject CN alone. */
        if (c->cert_sha256[0] != 0 && !is_lower_hex(c->cert_sha256, 64))
            return false;
    } else if (strcmp(c->kind, "password") == 0) {
        if (!field_ok(c->password_hash, sizeof(c->password_hash)))
            return false;
    } else if (strcmp(c->kind, "device") == 0) {
        store_device_t d;
        if (!field_ok(c->password_hash, sizeof(c->password_hash)) ||
            store_client_device(c, &d) != 0 || c->cert_sha256[0] != '\0')
            return false;
    } else {
        return false;
    }
    return strnlen(c->cert_sha256, sizeof(c->cert_sha256)) < sizeof(c->cert_sha256) &&
           strnlen(c->password_hash, sizeof(c->password_hash)) < sizeof(c->password_hash) &&
           strnlen(c->disabled_reason, sizeof(c->disabled_reason)) < sizeof(c->disabled_reason);
}

static int add_client(store_write_t *w, const store_client_t *c, bool remove,
                      const store_change_id_t *id)
{
    if (!w || !c || !field_ok(c->name, sizeof(c->name)) || (!remove && !client_ok(c)))
        return KMS_ERR_INVAL;
    if (id && !change_id_ok(id))
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_CLIENT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->remove = remove;
    op->client = *c;
    if (id) {
        op->repl = true;
        op->id = *id;
    }
    w->n_ops++;
    return 0;
}

int store_write_client(store_write_t *w, const store_client_t *c, bool remove)
{
    return add_client(w, c, remove, NULL);
}

int store_write_client_repl(store_write_t *w, const store_client_t *c, const store_change_id_t *id)
{
    return id ? add_client(w, c, false, id) : KMS_ERR_INVAL;
}

int store_write_tenant_repl(store_write_t *w, const store_tenant_t *t, const store_change_id_t *id)
{
    if (!w || !t || !field_ok(t->name, sizeof(t->name)) || !change_id_ok(id))
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_TENANT);
    if (!op)
        return KMS_ERR_NOMEM;
    op->repl = true;
    op->id = *id;
    op->created_us = t->created_us;
    if (!(op->key = kms_arena_strdup(w->arena, t->name)))
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

static int add_node(store_write_t *w, const store_node_t *n, const store_change_id_t *id)
{
    if (!w || !n || !field_ok(n->node_id, sizeof(n->node_id)) || (id && !change_id_ok(id)))
        return KMS_ERR_INVAL;
    if (strnlen(n->peer_addr, sizeof(n->peer_addr)) >= sizeof(n->peer_addr) ||
        strnlen(n->kmip_addr, sizeof(n->kmip_addr)) >= sizeof(n->kmip_addr) ||
        (n->cert_sha256[0] && !is_lower_hex(n->cert_sha256, 64)) || n->added_hlc < 0)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_NODE);
    if (!op)
        return KMS_ERR_NOMEM;
    if (!(op->node = kms_arena_memdup(w->arena, n, sizeof(*n))))
        return KMS_ERR_NOMEM;
    if (id) {
        op->repl = true;
        op->id = *id;
    }
    w->n_ops++;
    return 0;
}

int store_write_node(store_write_t *w, const store_node_t *n)
{
    return add_node(w, n, NULL);
}

int store_write_node_repl(store_write_t *w, const store_node_t *n, const store_change_id_t *id)
{
    return id ? add_node(w, n, id) : KMS_ERR_INVAL;
}

static int add_dsk(store_write_t *w, enum store_op_kind kind, uint32_t dsk_id, const void *wrapped,
                   size_t len, const store_change_id_t *id)
{
    if (!w || dsk_id == 0 || (id && !change_id_ok(id)))
        return KMS_ERR_INVAL;
    if (kind == STORE_OP_DSK && (!wrapped || !len || len > INT32_MAX))
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, kind);
    if (!op)
        return KMS_ERR_NOMEM;
    op->dsk_id = dsk_id;
    if (kind == STORE_OP_DSK) {
        if (!(op->val = kms_arena_memdup(w->arena, wrapped, len)))
            return KMS_ERR_NOMEM;
        op->val_len = len;
    }
    if (id) {
        op->repl = true;
        op->id = *id;
    }
    w->n_ops++;
    return 0;
}

int store_write_dsk(store_write_t *w, uint32_t dsk_id, const void *wrapped, size_t len)
{
    return add_dsk(w, STORE_OP_DSK, dsk_id, wrapped, len, NULL);
}

int store_write_dsk_repl(store_write_t *w, uint32_t dsk_id, const void *wrapped, size_t len,
                         const store_change_id_t *id)
{
    return id ? add_dsk(w, STORE_OP_DSK, dsk_id, wrapped, len, id) : KMS_ERR_INVAL;
}

int store_write_dsk_current(store_write_t *w, uint32_t dsk_id)
{
    return add_dsk(w, STORE_OP_DSK_CURRENT, dsk_id, NULL, 0, NULL);
}

int store_write_dsk_current_repl(store_write_t *w, uint32_t dsk_id, const store_change_id_t *id)
{
    return id ? add_dsk(w, STORE_OP_DSK_CURRENT, dsk_id, NULL, 0, id) : KMS_ERR_INVAL;
}

static int add_repl_state(store_write_t *w, enum store_op_kind kind, const char *node, int64_t hwm,
                          int64_t pos)
{
    if (!w || !node || !node[0] || strlen(node) >= 64 || hwm < STORE_KEEP || pos < STORE_KEEP)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, kind);
    if (!op)
        return KMS_ERR_NOMEM;
    op->hwm = hwm;
    op->pos = pos;
    if (!(op->key = kms_arena_strdup(w->arena, node)))
        return KMS_ERR_NOMEM;
    w->n_ops++;
    return 0;
}

int store_write_repl_state(store_write_t *w, const char *node, int64_t origin_hwm, int64_t link_pos)
{
    return add_repl_state(w, STORE_OP_REPL_STATE, node, origin_hwm, link_pos);
}

int store_write_repl_state_drop(store_write_t *w, const char *node)
{
    return add_repl_state(w, STORE_OP_REPL_STATE_DROP, node, 0, 0);
}

int store_write_trim(store_write_t *w, int64_t up_to_seq)
{
    if (!w || up_to_seq < 0)
        return KMS_ERR_INVAL;
    store_op_t *op = store_write_add_op(w, STORE_OP_TRIM);
    if (!op)
        return KMS_ERR_NOMEM;
    op->pos = up_to_seq;
    w->n_ops++;
    return 0;
}

void store_write_no_log(store_write_t *w)
{
    if (w)
        w->no_log = true;
}

int64_t store_write_last_seq(const store_write_t *w)
{
    return w ? w->last_seq : 0;
}
