/*
 * kmip/object.c: the managed-object model against store/ and hsm/.
 *
 * Converts store_object_t rows (attribute values as TTLV bytes, sealed
 * material) to kmip_obj_t (decoded attribute items) and back, applies
 * date-driven state changes, retries optimistic-concurrency conflicts, and
 * keeps the batch's undo log. Material is sealed (hsm_row_seal) only when
 * it is new; every other write carries the row's sealed fields over
 * untouched, so reading a key (first Get clearing Fresh), attribute edits
 * and state changes never unseal and re-seal it.
 *
 * It does not decide who may do what (the operation files do) and never
 * logs or copies plaintext outside kms_secret_t.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define ATTR_VALUE_MAX (1u << 20)
#define UPDATE_RETRIES 32

struct kmip_undo {
    char id[64];
    const store_object_t *prev; /* NULL: created by this batch */
    int64_t new_version;
    struct kmip_undo *next;
};

/* A new Unique Identifier: a UUID version 7 (RFC 9562): 48 bits of Unix
 * time in milliseconds, then 74 random bits. Identifiers of objects created
 * close together sort together, so their entries in the store's id indexes
 * land on the same few b-tree pages instead of one random page each: a
 * group commit of 64 Creates then writes a few dozen pages, not ~200 (the
 * WAL bytes and fsync time a Create costs). The time it reveals is the
 * object's Initial Date, an attribute anyone who may see the id may read. */
static int uuid7(char out[64])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return KMS_ERR_CRYPTO;
    uint64_t ms = (uint64_t)(kms_now_us() / 1000);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x70);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 64,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

static const char *owner_tenant(const kmip_ctx_t *ctx)
{
    return ctx->ident && ctx->ident->tenant[0] ? ctx->ident->tenant : "default";
}

int kmip_obj_new(kmip_ctx_t *ctx, uint32_t object_type, kmip_obj_t **out)
{
    kmip_obj_t *o = kms_arena_alloc(ctx->arena, sizeof(*o));
    if (!o)
        return KMS_ERR_NOMEM;
    int rc = uuid7(o->id);
    if (rc)
        return rc;
    o->object_type = object_type;
    o->state = KMIP_STATE_PRE_ACTIVE;
    snprintf(o->tenant, sizeof(o->tenant), "%s", owner_tenant(ctx));
    char creator[256];
    if ((rc = kmip_policy_creator(ctx, creator, sizeof(creator))) ||
        (rc = kmip_attr_set_text(ctx, o, "_kmsd.creator", creator)) ||
        (rc = kmip_attr_set_text(ctx, o, "Unique Identifier", o->id)) ||
        (rc = kmip_attr_set_enum(ctx, o, "Object Type", object_type)) ||
        (rc = kmip_attr_set_date(ctx, o, "Initial Date", ctx->now)) ||
        (rc = kmip_attr_set_date(ctx, o, "Last Change Date", ctx->now)) ||
        (rc = kmip_attr_set_int(ctx, o, "_kmsd.live", 1)))
        return rc;
    /* State applies to cryptographic objects, not Templates / Opaque. */
    if (object_type != KMIP_OBJECT_TYPE_TEMPLATE &&
        ((rc = kmip_attr_set_enum(ctx, o, "State", KMIP_STATE_PRE_ACTIVE)) ||
         (rc = kmip_attr_set_interval(ctx, o, "Lease Time", KMIP_DEFAULT_LEASE_SECONDS))))
        return rc;
    if ((object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
         object_type == KMIP_OBJECT_TYPE_PRIVATE_KEY || object_type == KMIP_OBJECT_TYPE_SECRET_DATA ||
         object_type == KMIP_OBJECT_TYPE_SPLIT_KEY) &&
        (rc = kmip_attr_set_bool(ctx, o, "Fresh", true)))
        return rc;
    o->dirty = true;
    *out = o;
    return 0;
}

int kmip_obj_set_state(kmip_ctx_t *ctx, kmip_obj_t *o, uint32_t state)
{
    o->state = state;
    return kmip_attr_set_enum(ctx, o, "State", state);
}

bool kmip_obj_eval_dates(kmip_ctx_t *ctx, kmip_obj_t *o)
{
    int64_t t;
    bool changed = false;
    if (o->state == KMIP_STATE_PRE_ACTIVE && kmip_attr_get_date(o, "Activation Date", &t) == 0 &&
        t <= ctx->now) {
        kmip_obj_set_state(ctx, o, KMIP_STATE_ACTIVE);
        changed = true;
    }
    if ((o->state == KMIP_STATE_ACTIVE || o->state == KMIP_STATE_PRE_ACTIVE) &&
        kmip_attr_get_date(o, "Deactivation Date", &t) == 0 && t <= ctx->now) {
        kmip_obj_set_state(ctx, o, KMIP_STATE_DEACTIVATED);
        changed = true;
    }
    return changed;
}

static int from_store(kmip_ctx_t *ctx, const store_object_t *so, kmip_obj_t **out)
{
    kmip_obj_t *o = kms_arena_alloc(ctx->arena, sizeof(*o));
    if (!o)
        return KMS_ERR_NOMEM;
    kms_strlcpy(o->id, so->id, sizeof(o->id));
    kms_strlcpy(o->tenant, so->tenant, sizeof(o->tenant));
    o->object_type = so->object_type;
    o->state = so->state;
    o->version = so->version;
    o->created_us = so->created_us;
    o->archived = so->archived;
    o->sealed = so->sealed;
    kms_strlcpy(o->sealed_owner, so->tenant, sizeof(o->sealed_owner));
    o->has_material = so->sealed.dsk_id != 0 && so->sealed.blob && so->sealed.len > 0;
    o->loaded = so;
    /* The store's (name, index) pairs are unique (its primary key) and its
     * strings live in the same arena, so the instances are appended in
     * order without kmip_attr_set's search and copy (that search was
     * quadratic in the attribute count, and this runs for every Get). */
    kmip_attr_t **tail = &o->attrs;
    for (size_t i = 0; i < so->n_attrs; i++) {
        const store_attr_t *sa = &so->attrs[i];
        ttlv_item_t *v = NULL;
        kms_error_t err;
        int rc = ttlv_decode(sa->value, sa->value_len, NULL, ctx->arena, &v, &err);
        if (rc) {
            kms_log(KMS_LOG_ERROR, "kmip", "object %s: attribute %s does not decode: %s", so->id,
                    sa->name, err.msg);
            return KMS_ERR_INTERNAL;
        }
        kmip_attr_t *a = kms_arena_alloc(ctx->arena, sizeof(*a));
        if (!a)
            return KMS_ERR_NOMEM;
        v->tag = KMIP_TAG_ATTRIBUTE_VALUE;
        v->parent = NULL;
        v->next = NULL;
        a->name = sa->name;
        a->index = sa->index;
        a->value = v;
        a->next = NULL;
        *tail = a;
        tail = &a->next;
    }
    o->dirty = false;
    *out = o;
    return 0;
}

int kmip_obj_load(kmip_ctx_t *ctx, const char *id, kmip_obj_t **out)
{
    store_object_t *so = NULL;
    if (ctx->deferred) {
        ctx->need_worker = true; /* it would not see the uncommitted write */
        return KMS_ERR_AGAIN;
    }
    if (!id || !*id)
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "no such object");
    int rc = store_get(ctx->reader, ctx->arena, id, ctx->tenant_filter, &so);
    if (rc == KMS_ERR_NOTFOUND) {
        kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND, "no object with this Unique Identifier");
        return KMS_ERR_NOTFOUND;
    }
    if (rc)
        return rc;
    if ((rc = from_store(ctx, so, out)))
        return rc;
    if ((rc = kmip_policy_check(ctx, *out))) {
        *out = NULL;
        return rc;
    }
    if (kmip_obj_eval_dates(ctx, *out)) {
        /* A date was reached since the last write: persist the new state
         * so the row (Locate, kmsctl, replicas) agrees. Best effort: on a
         * conflict the next writer stores it. */
        int src = kmip_obj_save(ctx, *out);
        if (src && !ctx->need_worker) {
            kms_log(KMS_LOG_DEBUG, "kmip", "object %s: date-driven state not stored: %s", id,
                    kms_strerror(src));
            kmip_fail_clear(ctx);
        }
    }
    if (!ctx->first_object_id[0])
        kms_strlcpy(ctx->first_object_id, id, sizeof(ctx->first_object_id));
    return 0;
}

int kmip_obj_set_material(kmip_ctx_t *ctx, kmip_obj_t *o, kms_secret_t *stored,
                          const struct crypto_material *desc)
{
    int rc;
    kmip_ctx_own_secret(ctx, stored);
    o->material = stored;
    o->has_material = true;
    o->material_new = true;
    o->dirty = true;
    ttlv_item_t *d = NULL;
    if (desc) {
        /* The crypto side knows which form of the key the Digest covers. */
        if ((rc = crypto_digest_value(ctx->arena, desc, stored, &d)))
            return rc;
    } else {
        uint8_t dg[32];
        if ((rc = crypto_sha256(stored->data, stored->len, dg)))
            return rc;
        d = ttlv_new_struct(ctx->arena, NULL, KMIP_TAG_ATTRIBUTE_VALUE);
        if (!d ||
            !ttlv_new_enum(ctx->arena, d, KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256) ||
            !ttlv_new_bytes(ctx->arena, d, KMIP_TAG_DIGEST_VALUE, dg, sizeof(dg)))
            return KMS_ERR_NOMEM;
    }
    kmip_attr_remove_all(o, "Digest");
    if ((rc = kmip_attr_set(ctx, o, "Digest", 0, d)))
        return rc;
    if (o->object_type == KMIP_OBJECT_TYPE_TEMPLATE) {
        /* A Template's own Names (inside the Template structure) name the
         * managed object, so Create can find it by Name. */
        ttlv_item_t *t = NULL;
        kms_error_t err;
        if (ttlv_decode(stored->data, stored->len, NULL, ctx->arena, &t, &err) == 0) {
            for (ttlv_item_t *a = ttlv_find(t, KMIP_TAG_ATTRIBUTE); a;
                 a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE)) {
                const ttlv_item_t *n = ttlv_find(a, KMIP_TAG_ATTRIBUTE_NAME);
                ttlv_item_t *v = ttlv_find(a, KMIP_TAG_ATTRIBUTE_VALUE);
                if (n && n->type == TTLV_TEXT_STRING && strcmp(ttlv_text(n), "Name") == 0 && v &&
                    v->type == TTLV_STRUCTURE &&
                    (rc = kmip_attr_add(ctx, o, "Name", ttlv_clone(ctx->arena, v), NULL)))
                    return rc;
            }
        }
    }
    if (!desc)
        return 0;
    if (desc->alg && (rc = kmip_attr_set_enum(ctx, o, "Cryptographic Algorithm", desc->alg)))
        return rc;
    if (desc->bits && (rc = kmip_attr_set_int(ctx, o, "Cryptographic Length", desc->bits)))
        return rc;
    if ((rc = kmip_attr_set_int(ctx, o, "_kmsd.fmt", (int32_t)desc->registered_fmt)))
        return rc;
    if (desc->curve && (rc = kmip_attr_set_int(ctx, o, "_kmsd.curve", (int32_t)desc->curve)))
        return rc;
    if (desc->sub_type && (rc = kmip_attr_set_int(ctx, o, "_kmsd.subtype", (int32_t)desc->sub_type)))
        return rc;
    return 0;
}

static uint32_t stored_fmt_of(uint32_t object_type)
{
    switch (object_type) {
    case KMIP_OBJECT_TYPE_PRIVATE_KEY: return KMIP_KEY_FORMAT_TYPE_PKCS_8;
    case KMIP_OBJECT_TYPE_PUBLIC_KEY: return KMIP_KEY_FORMAT_TYPE_X_509;
    case KMIP_OBJECT_TYPE_CERTIFICATE: return KMIP_KEY_FORMAT_TYPE_X_509;
    case KMIP_OBJECT_TYPE_OPAQUE_DATA:
    case KMIP_OBJECT_TYPE_TEMPLATE: return KMIP_KEY_FORMAT_TYPE_OPAQUE;
    default: return KMIP_KEY_FORMAT_TYPE_RAW;
    }
}

int kmip_obj_material_desc(const kmip_obj_t *o, struct crypto_material *d)
{
    memset(d, 0, sizeof(*d));
    d->object_type = o->object_type;
    d->stored_fmt = stored_fmt_of(o->object_type);
    int32_t v = 0;
    d->registered_fmt = kmip_attr_get_int(o, "_kmsd.fmt", &v) == 0 && v ? (uint32_t)v : d->stored_fmt;
    (void)kmip_attr_get_enum(o, "Cryptographic Algorithm", &d->alg);
    (void)kmip_attr_get_int(o, "Cryptographic Length", &d->bits);
    if (kmip_attr_get_int(o, "_kmsd.curve", &v) == 0)
        d->curve = (uint32_t)v;
    if (kmip_attr_get_int(o, "_kmsd.subtype", &v) == 0)
        d->sub_type = (uint32_t)v;
    return 0;
}

int kmip_obj_open_material(kmip_ctx_t *ctx, kmip_obj_t *o, const kms_secret_t **out)
{
    if (o->material) {
        *out = o->material;
        return 0;
    }
    if (!o->has_material) {
        kmip_fail(ctx, KMIP_RESULT_REASON_KEY_VALUE_NOT_PRESENT, "the object has no key value");
        return KMS_ERR_NOTFOUND;
    }
    kms_secret_t *p = NULL;
    int rc = hsm_row_open(ctx->srv->cfg.keyring, o->sealed_owner, o->id, &o->sealed, &p);
    if (rc) {
        kms_log(KMS_LOG_ERROR, "kmip", "object %s: sealed material does not open: %s", o->id,
                kms_strerror(rc));
        kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, "stored key material cannot be opened");
        return KMS_ERR_CRYPTO;
    }
    o->material = kmip_ctx_own_secret(ctx, p);
    *out = p;
    return 0;
}

void kmip_obj_drop_material(kmip_obj_t *o)
{
    kmip_attr_remove_all(o, "_kmsd.live");
    if (o->material)
        kms_wipe(o->material->data, o->material->len);
    o->material = NULL;
    o->has_material = false;
    o->material_new = false;
    /* The generation stays with the row, so material sealed for it later
     * could not reuse one of the removed blob's generations. */
    o->sealed = (kms_sealed_t){.gen = o->sealed.gen};
    o->dirty = true;
}

bool kmip_attr_nkey_indexed(const char *name, int ttlv_type)
{
    return ttlv_type == TTLV_DATE_TIME || kmip_attr_is_custom(name);
}

void kmip_attr_search_keys(kms_arena_t *a, const char *name, const ttlv_item_t *v,
                           const char **skey_out, int64_t *nkey_out, bool *has_nkey_out)
{
    (void)a;
    *skey_out = NULL;
    *nkey_out = 0;
    *has_nkey_out = false;
    switch (v->type) {
    case TTLV_TEXT_STRING: *skey_out = ttlv_text(v); break;
    case TTLV_INTEGER: *nkey_out = v->v.i32; *has_nkey_out = true; break;
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL: *nkey_out = ttlv_u32(v); *has_nkey_out = true; break;
    case TTLV_LONG_INTEGER:
    case TTLV_DATE_TIME: *nkey_out = v->v.i64; *has_nkey_out = true; break;
    case TTLV_BOOLEAN: *nkey_out = v->v.b; *has_nkey_out = true; break;
    case TTLV_STRUCTURE: {
        const ttlv_item_t *k = NULL;
        if (strcmp(name, "Name") == 0)
            k = ttlv_find(v, KMIP_TAG_NAME_VALUE);
        else if (strcmp(name, "Link") == 0)
            k = ttlv_find(v, KMIP_TAG_LINKED_OBJECT_IDENTIFIER);
        else if (strcmp(name, "Alternative Name") == 0)
            k = ttlv_find(v, KMIP_TAG_ALTERNATIVE_NAME_VALUE);
        else if (strcmp(name, "Application Specific Information") == 0)
            k = ttlv_find(v, KMIP_TAG_APPLICATION_NAMESPACE);
        if (k && k->type == TTLV_TEXT_STRING)
            *skey_out = ttlv_text(k);
        if (strcmp(name, "Link") == 0 && (k = ttlv_find(v, KMIP_TAG_LINK_TYPE))) {
            *nkey_out = ttlv_u32(k);
            *has_nkey_out = true;
        }
        break;
    }
    default: break;
    }
}

/* The sealed material of the row `o` is written to. The stored one as it
 * is when the material is not new and was sealed for this owner: that is
 * every write of a stored key except its first. Otherwise seal it, as the
 * next generation of the row's (the first for an object never stored). */
static int row_sealed(kmip_ctx_t *ctx, kmip_obj_t *o, kms_sealed_t *out)
{
    if (!o->material_new && o->sealed.dsk_id && strcmp(o->sealed_owner, o->tenant) == 0) {
        *out = o->sealed;
        return 0;
    }
    const kms_secret_t *m = NULL;
    int rc = kmip_obj_open_material(ctx, o, &m);
    if (rc)
        return rc;
    rc = hsm_row_seal(ctx->srv->cfg.keyring, o->tenant, o->id, o->version ? &o->sealed : NULL,
                      m->data, m->len, ctx->arena, out);
    if (rc && !ctx->err.code)
        kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, "cannot seal key material");
    return rc;
}

/* Build the store row for `o`. */
static int to_store(kmip_ctx_t *ctx, kmip_obj_t *o, store_object_t *so)
{
    int rc = 0;
    kms_buf_t b;
    kms_buf_init(&b, ATTR_VALUE_MAX);
    memset(so, 0, sizeof(*so));
    kms_strlcpy(so->id, o->id, sizeof(so->id));
    kms_strlcpy(so->tenant, o->tenant, sizeof(so->tenant));
    so->object_type = o->object_type;
    so->state = o->state;
    so->archived = o->archived;
    size_t n = 0;
    for (kmip_attr_t *a = o->attrs; a; a = a->next)
        n++;
    so->attrs = n ? kms_arena_alloc(ctx->arena, n * sizeof(*so->attrs)) : NULL;
    if (n && !so->attrs) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    size_t i = 0;
    for (kmip_attr_t *a = o->attrs; a; a = a->next, i++) {
        store_attr_t *sa = &so->attrs[i];
        kms_buf_reset(&b);
        if ((rc = ttlv_encode(a->value, &b)))
            goto out;
        sa->name = a->name;
        sa->index = a->index;
        sa->value = kms_arena_memdup(ctx->arena, b.data, b.len);
        sa->value_len = b.len;
        if (!sa->value) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        kmip_attr_search_keys(ctx->arena, a->name, a->value, &sa->skey, &sa->nkey, &sa->has_nkey);
        sa->index_nkey = sa->has_nkey && kmip_attr_nkey_indexed(a->name, a->value->type);
    }
    so->n_attrs = n;
    if (o->has_material)
        rc = row_sealed(ctx, o, &so->sealed);
    else
        so->sealed.gen = o->sealed.gen;
out:
    kms_buf_dispose(&b);
    return rc;
}

/* Does `old` hold the instance `a` (same name, index and value bytes)? */
static bool has_instance(const store_object_t *old, const store_attr_t *a, bool same_value)
{
    for (size_t i = 0; i < old->n_attrs; i++) {
        const store_attr_t *b = &old->attrs[i];
        if (b->index == a->index && strcmp(b->name, a->name) == 0)
            return !same_value || (b->value_len == a->value_len &&
                                   memcmp(b->value, a->value, a->value_len) == 0);
    }
    return false;
}

static void add_name(const char **t, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(t[i], name) == 0)
            return;
    t[(*n)++] = name;
}

/* The names whose instances this put changes against the row `o` was
 * loaded from (plus the store's pseudo-names for the material and the
 * storage status): the store moves only their clocks, so that another
 * node's concurrent change of another attribute survives the merge.
 * NULL (every name) for a new object. */
static int touched_names(kmip_ctx_t *ctx, const kmip_obj_t *o, store_object_t *so)
{
    const store_object_t *old = o->loaded;
    so->touched = NULL;
    so->n_touched = 0;
    if (!old)
        return 0;
    const char **t = kms_arena_alloc(ctx->arena, (so->n_attrs + old->n_attrs + 2) * sizeof(*t));
    if (!t)
        return KMS_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < so->n_attrs; i++)
        if (!has_instance(old, &so->attrs[i], true))
            add_name(t, &n, so->attrs[i].name); /* added or changed */
    for (size_t i = 0; i < old->n_attrs; i++)
        if (!has_instance(so, &old->attrs[i], false))
            add_name(t, &n, old->attrs[i].name); /* removed */
    if (so->sealed.dsk_id != old->sealed.dsk_id || so->sealed.gen != old->sealed.gen ||
        so->sealed.len != old->sealed.len ||
        (so->sealed.len && memcmp(so->sealed.blob, old->sealed.blob, so->sealed.len) != 0))
        add_name(t, &n, STORE_CLOCK_MATERIAL);
    if (so->archived != old->archived)
        add_name(t, &n, STORE_CLOCK_ARCHIVED);
    so->touched = t;
    so->n_touched = n;
    return 0;
}

static int commit_one(kmip_ctx_t *ctx, const store_object_t *so, int64_t expect, bool del,
                      int64_t *version_out)
{
    if (ctx->inline_only && ctx->deferred) {
        ctx->need_worker = true; /* an event loop never waits for a commit */
        return KMS_ERR_AGAIN;
    }
    store_write_t *w = store_write_new();
    if (!w)
        return KMS_ERR_NOMEM;
    int rc = del ? store_write_delete(w, so->id, expect) : store_write_put(w, so, expect);
    if (rc == 0 && ctx->inline_only) {
        /* Deferred: the caller commits it before the answer leaves. A put
         * that commits gets version expect + 1 (store_write_put). */
        ctx->deferred = w;
        if (version_out)
            *version_out = expect + 1;
        return 0;
    }
    int64_t v = 0;
    if (rc == 0) {
        rc = store_commit(ctx->srv->cfg.store, w, del ? NULL : &v, del ? 0 : 1);
        /* The store's own failure (a full disk, an I/O error, closing),
         * named as such: nothing of the write was stored. */
        if (rc && rc != KMS_ERR_CONFLICT && rc != KMS_ERR_EXISTS && rc != KMS_ERR_NOTFOUND &&
            rc != KMS_ERR_STATE)
            kms_error_set_reason(&ctx->err, rc, KMIP_RESULT_REASON_GENERAL_FAILURE,
                                 "the change was not stored: store: %s", kms_strerror(rc));
    }
    if (rc == 0) {
        int64_t seq = store_write_last_seq(w);
        ctx->n_commits++;
        if (seq > ctx->last_seq)
            ctx->last_seq = seq;
    }
    store_write_free(w);
    if (rc == 0 && version_out)
        *version_out = v ? v : expect + 1;
    return rc;
}

int kmip_obj_save(kmip_ctx_t *ctx, kmip_obj_t *o)
{
    store_object_t so;
    int rc;
    if ((rc = kmip_attr_set_date(ctx, o, "Last Change Date", ctx->now)))
        return rc;
    int64_t expect = o->version; /* 0 == STORE_VERSION_NEW for a new object */
    if ((rc = to_store(ctx, o, &so)) || (rc = touched_names(ctx, o, &so)))
        return rc;
    int64_t nv = 0;
    rc = commit_one(ctx, &so, expect, false, &nv);
    if (rc)
        return rc;
    if (ctx->undo_enabled) {
        struct kmip_undo *u = kms_arena_alloc(ctx->arena, sizeof(*u));
        if (u) {
            snprintf(u->id, sizeof(u->id), "%s", o->id);
            u->prev = o->loaded;
            u->new_version = nv;
            u->next = ctx->undo;
            ctx->undo = u;
        }
    }
    o->version = nv;
    o->sealed = so.sealed;
    kms_strlcpy(o->sealed_owner, so.tenant, sizeof(o->sealed_owner));
    o->material_new = false;
    o->dirty = false;
    if (!ctx->first_object_id[0])
        kms_strlcpy(ctx->first_object_id, o->id, sizeof(ctx->first_object_id));
    return 0;
}

int kmip_obj_update(kmip_ctx_t *ctx, const char *id, kmip_mutate_cb cb, void *arg,
                    kmip_obj_t **out)
{
    int rc = KMS_ERR_CONFLICT;
    for (int attempt = 0; attempt < UPDATE_RETRIES && rc == KMS_ERR_CONFLICT; attempt++) {
        if (attempt > 0) {
            /* Back off a little, with jitter, so that writers of one hot
             * object do not keep colliding. */
            uint8_t r = 0;
            (void)RAND_bytes(&r, 1);
            int ms = attempt < 8 ? attempt : 8;
            struct timespec ts = {0, ((long)ms * 1000000L) + (long)r * 8000L};
            nanosleep(&ts, NULL);
        }
        kmip_obj_t *o = NULL;
        bool unchanged = false;
        if ((rc = kmip_obj_load(ctx, id, &o)))
            return rc;
        if ((rc = cb(ctx, o, arg, &unchanged)))
            return rc;
        if (unchanged) {
            if (out)
                *out = o;
            return 0;
        }
        rc = kmip_obj_save(ctx, o);
        if (rc == 0 && out)
            *out = o;
    }
    if (rc == KMS_ERR_CONFLICT)
        kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE, "object changed concurrently; retry");
    return rc;
}

int kmip_undo_run(kmip_ctx_t *ctx)
{
    int first_rc = 0;
    for (struct kmip_undo *u = ctx->undo; u; u = u->next) {
        /* One object may have been written by several items: restore the
         * row from before the first write, expecting the last version. */
        bool older_exists = false;
        for (struct kmip_undo *v = u->next; v; v = v->next)
            if (strcmp(v->id, u->id) == 0)
                older_exists = true;
        if (older_exists)
            continue;
        int64_t latest = u->new_version;
        for (struct kmip_undo *v = ctx->undo; v != u; v = v->next)
            if (strcmp(v->id, u->id) == 0) {
                latest = v->new_version;
                break;
            }
        int rc;
        if (!u->prev) {
            store_object_t so;
            memset(&so, 0, sizeof(so));
            snprintf(so.id, sizeof(so.id), "%s", u->id);
            rc = commit_one(ctx, &so, latest, true, NULL);
        } else {
            /* Put the earlier row back as it was, sealed material included:
             * the seal does not bind the row's version. */
            rc = commit_one(ctx, u->prev, latest, false, NULL);
        }
        if (rc) {
            kms_log(KMS_LOG_ERROR, "kmip", "undo of %s failed: %s", u->id, kms_strerror(rc));
            if (!first_rc)
                first_rc = rc;
        }
    }
    ctx->undo = NULL;
    return first_rc;
}
