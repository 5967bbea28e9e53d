/*
 * replication/state.c: conversions between the store's rows and the
 * protocol's entities, and deep copies of objects the store lends only
 * for the duration of a callback.
 *
 * The entity carries the store's view unchanged: attributes with their
 * search keys, the sealed blob as stored, per-name clocks and the identity
 * of the last change. It deliberately does no I/O.
 */
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

static int keyref_cmp(const void *x, const void *y)
{
    const repl_keyref_t *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    int c = strcmp(a->key, b->key);
    if (c)
        return c;
    return (a->i > b->i) - (a->i < b->i);
}

/* Lists of up to MARK_HASHED entries (a CHANGES frame has at most 512)
 * are checked through a hash table on the stack: one hash and a probe or
 * two per entry instead of a sort. */
#define MARK_HASHED 2048
#define MARK_SLOTS (2 * MARK_HASHED)

static uint32_t keyref_hash(const repl_keyref_t *r)
{
    /* Eight bytes at a time (keys are mostly 36-byte UUIDs), then mixed. */
    size_t n = strlen(r->key);
    uint64_t h = 0x9e3779b97f4a7c15ull * (r->kind + n);
    const char *p = r->key;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return (uint32_t)(h ^ (h >> 29) ^ (h >> 47));
}

static void mark_hashed(const repl_keyref_t *refs, size_t n, bool keep_last, bool *dup_out,
                        size_t n_dup)
{
    uint16_t slot[MARK_SLOTS]; /* 1 + the index in refs of the entry kept, 0: free */
    size_t mask = MARK_SLOTS - 1;
    while (mask / 2 >= n && mask >= 64)
        mask /= 2; /* a table twice the list's size at least */
    memset(slot, 0, (mask + 1) * sizeof *slot);
    for (size_t k = 0; k < n; k++) {
        const repl_keyref_t *r = &refs[k];
        size_t h = keyref_hash(r) & mask;
        while (slot[h]) {
            const repl_keyref_t *q = &refs[slot[h] - 1];
            if (q->kind == r->kind && strcmp(q->key, r->key) == 0)
                break;
            h = (h + 1) & mask;
        }
        if (!slot[h]) {
            slot[h] = (uint16_t)(k + 1);
            continue;
        }
        /* A repeat: of the two, the one of lower index (or higher) stays. */
        const repl_keyref_t *q = &refs[slot[h] - 1];
        bool later = r->i > q->i;
        const repl_keyref_t *drop = later == keep_last ? q : r;
        if (drop == q)
            slot[h] = (uint16_t)(k + 1);
        if (drop->i < n_dup)
            dup_out[drop->i] = true;
    }
}

void repl_mark_repeats(repl_keyref_t *refs, size_t n, bool keep_last, bool *dup_out,
                       size_t n_dup)
{
    if (n_dup)
        memset(dup_out, 0, n_dup * sizeof *dup_out);
    if (n < 2)
        return;
    if (n <= MARK_HASHED) {
        mark_hashed(refs, n, keep_last, dup_out, n_dup);
        return;
    }
    qsort(refs, n, sizeof *refs, keyref_cmp);
    for (size_t k = 1; k < n; k++) {
        if (refs[k].kind != refs[k - 1].kind || strcmp(refs[k].key, refs[k - 1].key) != 0)
            continue;
        /* Equal keys are in index order: the earlier one, or the later. */
        size_t i = keep_last ? refs[k - 1].i : refs[k].i;
        if (i < n_dup)
            dup_out[i] = true;
    }
}

void repl_entity_from_object(repl_entity_t *e, const store_object_t *o)
{
    memset(e, 0, sizeof *e);
    e->kind = REPL_KIND_OBJECT;
    e->key = o->id;
    e->obj = *o;
    e->obj.touched = NULL;
    e->obj.n_touched = 0;
    e->clocks = o->clocks;
    e->n_clocks = o->n_clocks;
    e->hlc = o->change.hlc;
    e->origin = o->change.origin;
    e->origin_seq = o->change.origin_seq;
}

void repl_object_from_entity(store_object_t *o, const repl_entity_t *e)
{
    *o = e->obj;
    kms_strlcpy(o->id, e->key, sizeof o->id);
    o->clocks = e->clocks;
    o->n_clocks = e->n_clocks;
    o->touched = NULL;
    o->n_touched = 0;
    memset(&o->change, 0, sizeof o->change);
    o->change.hlc = e->hlc;
    kms_strlcpy(o->change.origin, e->origin ? e->origin : "", sizeof o->change.origin);
    o->change.origin_seq = e->origin_seq;
}

store_object_t *repl_object_copy(kms_arena_t *a, const store_object_t *src)
{
    store_object_t *o = kms_arena_memdup(a, src, sizeof *src);
    if (!o)
        return NULL;
    if (src->sealed.len && !(o->sealed.blob = kms_arena_memdup(a, src->sealed.blob, src->sealed.len)))
        return NULL;
    if (src->n_attrs) {
        store_attr_t *v = kms_arena_alloc(a, src->n_attrs * sizeof *v);
        if (!v)
            return NULL;
        for (size_t i = 0; i < src->n_attrs; i++) {
            v[i] = src->attrs[i];
            v[i].name = kms_arena_strdup(a, src->attrs[i].name);
            v[i].value = kms_arena_memdup(a, src->attrs[i].value, src->attrs[i].value_len ? src->attrs[i].value_len : 1);
            v[i].skey = src->attrs[i].skey ? kms_arena_strdup(a, src->attrs[i].skey) : NULL;
            if (!v[i].name || !v[i].value || (src->attrs[i].skey && !v[i].skey))
                return NULL;
        }
        o->attrs = v;
    }
    if (src->n_clocks) {
        store_clock_t *c = kms_arena_alloc(a, src->n_clocks * sizeof *c);
        if (!c)
            return NULL;
        for (size_t i = 0; i < src->n_clocks; i++) {
            c[i].hlc = src->clocks[i].hlc;
            c[i].name = kms_arena_strdup(a, src->clocks[i].name);
            c[i].node = kms_arena_strdup(a, src->clocks[i].node);
            if (!c[i].name || !c[i].node)
                return NULL;
        }
        o->clocks = c;
    }
    o->touched = NULL;
    o->n_touched = 0;
    return o;
}

void repl_entity_from_node(repl_entity_t *e, const store_node_t *n)
{
    memset(e, 0, sizeof *e);
    e->kind = REPL_KIND_NODE;
    e->key = n->node_id;
    kms_strlcpy(e->node.node_id, n->node_id, sizeof e->node.node_id);
    kms_strlcpy(e->node.peer_addr, n->peer_addr, sizeof e->node.peer_addr);
    kms_strlcpy(e->node.kmip_addr, n->kmip_addr, sizeof e->node.kmip_addr);
    kms_strlcpy(e->node.cert_sha256, n->cert_sha256, sizeof e->node.cert_sha256);
    e->node.added_hlc = n->added_hlc;
    e->node.removed = n->removed;
    e->hlc = n->change.hlc;
    e->origin = n->change.origin;
    e->origin_seq = n->change.origin_seq;
}

void repl_node_from_entity(store_node_t *n, const repl_entity_t *e)
{
    memset(n, 0, sizeof *n);
    kms_strlcpy(n->node_id, e->key, sizeof n->node_id);
    kms_strlcpy(n->peer_addr, e->node.peer_addr, sizeof n->peer_addr);
    kms_strlcpy(n->kmip_addr, e->node.kmip_addr, sizeof n->kmip_addr);
    kms_strlcpy(n->cert_sha256, e->node.cert_sha256, sizeof n->cert_sha256);
    n->added_hlc = e->node.added_hlc;
    n->removed = e->node.removed;
}
