/*
 * replication/entity.c: one replicated entity to and from its ENTITY
 * structure.
 *
 * Layout (fixed order, every field present unless marked optional):
 *   KIND, SEQ, KEY, ORIGIN, ORIGIN_SEQ, HLC, DELETED, then unless DELETED:
 *   object: OBJECT_TYPE, STATE, TENANT, CREATED_US, UPDATED_US, ARCHIVED,
 *           DSK_ID, SEAL_GEN, BLOB (only when non-empty),
 *           ATTRIBUTE* (NAME, INDEX, VALUE, SKEY (optional), NKEY, FLAGS),
 *           CLOCK* (NAME, HLC, NODE_ID)
 *   tenant: CREATED_US
 *   client: TENANT, ROLE, CLIENT_KIND, CERT_SHA256, PASSWORD_HASH, CREATED_US
 *   dsk:    DSK_ID, KEY_BYTES, CURRENT
 *   node:   PEER_ADDR, KMIP_ADDR, CERT_SHA256, ADDED_HLC, REMOVED
 * The KEY names the entity: it is the object's id, the client's name, the
 * node's id (copied into those fields when decoded). Attribute values are
 * opaque TTLV bytes, shipped with the search keys kmip/ derived for them,
 * so the receiver stores them without interpreting KMIP.
 *
 * It deliberately checks shapes and sizes only: whether a state or a clock
 * makes sense is the merge's business (merge.c).
 */
#include <string.h>

#include "replication/repl_int.h"

#define ATTR_NAME_MAX 255

static void build_attr(repl_wr_t *w, ttlv_item_t *e, const store_attr_t *a)
{
    ttlv_item_t *s = repl_wr_struct(w, e, REPL_TAG_ATTRIBUTE);
    if (a->index > INT32_MAX) {
        repl_wr_fail(w, KMS_ERR_INVAL, "attribute %s: index %u out of range", a->name, a->index);
        return;
    }
    repl_wr_text(w, s, REPL_TAG_NAME, a->name, ATTR_NAME_MAX);
    repl_wr_int(w, s, REPL_TAG_INDEX, (int32_t)a->index);
    repl_wr_bytes(w, s, REPL_TAG_VALUE, a->value, a->value_len);
    if (a->skey)
        repl_wr_text(w, s, REPL_TAG_SKEY, a->skey, REPL_TEXT_MAX);
    repl_wr_long(w, s, REPL_TAG_NKEY, a->nkey);
    repl_wr_int(w, s, REPL_TAG_FLAGS,
                (int32_t)((a->has_nkey ? REPL_ATTR_FLAG_NKEY : 0) |
                          (a->index_nkey ? REPL_ATTR_FLAG_INDEX : 0)));
}

static void build_object(repl_wr_t *w, ttlv_item_t *e, const repl_entity_t *x)
{
    const store_object_t *o = &x->obj;
    repl_wr_enum(w, e, REPL_TAG_OBJECT_TYPE, o->object_type);
    repl_wr_enum(w, e, REPL_TAG_STATE, o->state);
    repl_wr_text(w, e, REPL_TAG_TENANT, o->tenant, REPL_ID_MAX);
    repl_wr_long(w, e, REPL_TAG_CREATED_US, o->created_us);
    repl_wr_long(w, e, REPL_TAG_UPDATED_US, o->updated_us);
    repl_wr_bool(w, e, REPL_TAG_ARCHIVED, o->archived);
    repl_wr_long(w, e, REPL_TAG_DSK_ID, o->sealed.dsk_id);
    repl_wr_long(w, e, REPL_TAG_SEAL_GEN, o->sealed.gen);
    if (o->sealed.len)
        repl_wr_bytes(w, e, REPL_TAG_BLOB, o->sealed.blob, o->sealed.len);
    for (size_t i = 0; i < o->n_attrs && w->rc == 0; i++)
        build_attr(w, e, &o->attrs[i]);
    for (size_t i = 0; i < x->n_clocks && w->rc == 0; i++) {
        ttlv_item_t *c = repl_wr_struct(w, e, REPL_TAG_CLOCK);
        repl_wr_text(w, c, REPL_TAG_NAME, x->clocks[i].name, ATTR_NAME_MAX);
        repl_wr_long(w, c, REPL_TAG_HLC, x->clocks[i].hlc);
        repl_wr_text(w, c, REPL_TAG_NODE_ID, x->clocks[i].node, REPL_ID_MAX);
    }
}

void repl_entity_build(repl_wr_t *w, ttlv_item_t *parent, const repl_entity_t *x)
{
    if (w->rc)
        return;
    if (x->kind < REPL_KIND_OBJECT || x->kind > REPL_KIND_NODE) {
        repl_wr_fail(w, KMS_ERR_INVAL, "entity %s: unknown kind %d", x->key ? x->key : "",
                     (int)x->kind);
        return;
    }
    ttlv_item_t *e = repl_wr_struct(w, parent, REPL_TAG_ENTITY);
    repl_wr_enum(w, e, REPL_TAG_KIND, (uint32_t)x->kind);
    repl_wr_long(w, e, REPL_TAG_SEQ, x->seq);
    repl_wr_text(w, e, REPL_TAG_KEY, x->key, 127);
    repl_wr_text(w, e, REPL_TAG_ORIGIN, x->origin, REPL_ID_MAX);
    repl_wr_long(w, e, REPL_TAG_ORIGIN_SEQ, x->origin_seq);
    repl_wr_long(w, e, REPL_TAG_HLC, x->hlc);
    repl_wr_bool(w, e, REPL_TAG_DELETED, x->deleted);
    if (x->deleted)
        return;
    switch (x->kind) {
    case REPL_KIND_OBJECT:
        build_object(w, e, x);
        break;
    case REPL_KIND_TENANT:
        repl_wr_long(w, e, REPL_TAG_CREATED_US, x->tenant_created_us);
        break;
    case REPL_KIND_CLIENT:
        repl_wr_text(w, e, REPL_TAG_TENANT, x->client.tenant, sizeof x->client.tenant - 1);
        repl_wr_text(w, e, REPL_TAG_ROLE, x->client.role, sizeof x->client.role - 1);
        repl_wr_text(w, e, REPL_TAG_CLIENT_KIND, x->client.kind, sizeof x->client.kind - 1);
        repl_wr_text(w, e, REPL_TAG_CERT_SHA256, x->client.cert_sha256,
                     sizeof x->client.cert_sha256 - 1);
        repl_wr_text(w, e, REPL_TAG_PASSWORD_HASH, x->client.password_hash,
                     sizeof x->client.password_hash - 1);
        repl_wr_long(w, e, REPL_TAG_CREATED_US, x->client.created_us);
        break;
    case REPL_KIND_DSK:
        if (!x->dsk || x->dsk->len == 0 || x->dsk->len > REPL_DSK_MAX || x->dsk_id == 0) {
            repl_wr_fail(w, KMS_ERR_INVAL, "data-store key %u: no key or no id", x->dsk_id);
            return;
        }
        repl_wr_long(w, e, REPL_TAG_DSK_ID, x->dsk_id);
        repl_wr_bytes(w, e, REPL_TAG_KEY_BYTES, x->dsk->data, x->dsk->len);
        repl_wr_bool(w, e, REPL_TAG_CURRENT, x->dsk_current);
        break;
    case REPL_KIND_NODE:
        repl_wr_text(w, e, REPL_TAG_PEER_ADDR, x->node.peer_addr, sizeof x->node.peer_addr - 1);
        repl_wr_text(w, e, REPL_TAG_KMIP_ADDR, x->node.kmip_addr, sizeof x->node.kmip_addr - 1);
        repl_wr_text(w, e, REPL_TAG_CERT_SHA256, x->node.cert_sha256,
                     sizeof x->node.cert_sha256 - 1);
        repl_wr_long(w, e, REPL_TAG_ADDED_HLC, x->node.added_hlc);
        repl_wr_bool(w, e, REPL_TAG_REMOVED, x->node.removed);
        break;
    }
}

/* ------------------------------------------------------------ reading */
static void read_attr(repl_rd_t *r, const ttlv_item_t *it, store_attr_t *a)
{
    repl_rd_t s;
    repl_rd_init(&s, it, r->arena, r->err);
    a->name = repl_rd_text(&s, REPL_TAG_NAME, ATTR_NAME_MAX);
    a->index = (uint32_t)repl_rd_long_range(&s, REPL_TAG_INDEX, 0, INT32_MAX);
    repl_bytes_t v = repl_rd_bytes(&s, REPL_TAG_VALUE, SIZE_MAX);
    a->value = v.p;
    a->value_len = v.len;
    a->skey = repl_rd_peek(&s, REPL_TAG_SKEY) ? repl_rd_text(&s, REPL_TAG_SKEY, REPL_TEXT_MAX)
                                              : NULL;
    a->nkey = repl_rd_long(&s, REPL_TAG_NKEY);
    const ttlv_item_t *fl = s.next;
    uint32_t flags = (uint32_t)repl_rd_int(&s, REPL_TAG_FLAGS);
    if (flags & ~(REPL_ATTR_FLAG_NKEY | REPL_ATTR_FLAG_INDEX))
        repl_rd_fail(&s, fl, KMS_ERR_PROTO, "ATTRIBUTE: unknown flags 0x%x", flags);
    a->has_nkey = flags & REPL_ATTR_FLAG_NKEY;
    a->index_nkey = flags & REPL_ATTR_FLAG_INDEX;
    repl_rd_end(&s);
    r->rc = s.rc;
}

static size_t count_tag(const repl_rd_t *r, uint32_t tag)
{
    size_t n = 0;
    for (const ttlv_item_t *it = r->next; it && it->tag == tag; it = it->next)
        n++;
    return n;
}

static void read_object(repl_rd_t *r, const ttlv_item_t *ent, repl_entity_t *x)
{
    store_object_t *o = &x->obj;
    if (strlen(x->key) > REPL_ID_MAX || !x->key[0]) {
        repl_rd_fail(r, ent, KMS_ERR_PROTO, "ENTITY: object id must be 1 to %d bytes",
                     REPL_ID_MAX);
        return;
    }
    memcpy(o->id, x->key, strlen(x->key) + 1);
    o->object_type = repl_rd_enum(r, REPL_TAG_OBJECT_TYPE);
    o->state = repl_rd_enum(r, REPL_TAG_STATE);
    repl_rd_text_into(r, REPL_TAG_TENANT, o->tenant, sizeof o->tenant);
    o->created_us = repl_rd_long(r, REPL_TAG_CREATED_US);
    o->updated_us = repl_rd_long(r, REPL_TAG_UPDATED_US);
    o->archived = repl_rd_bool(r, REPL_TAG_ARCHIVED);
    o->sealed.dsk_id = (uint32_t)repl_rd_long_range(r, REPL_TAG_DSK_ID, 0, UINT32_MAX);
    o->sealed.gen = repl_rd_long(r, REPL_TAG_SEAL_GEN);
    if (repl_rd_peek(r, REPL_TAG_BLOB)) {
        const ttlv_item_t *b = r->next;
        repl_bytes_t v = repl_rd_bytes(r, REPL_TAG_BLOB, SIZE_MAX);
        if (r->rc == 0 && v.len == 0)
            repl_rd_fail(r, b, KMS_ERR_PROTO, "ENTITY: an empty BLOB is sent as none");
        o->sealed.blob = v.p;
        o->sealed.len = v.len;
    }
    size_t na = count_tag(r, REPL_TAG_ATTRIBUTE);
    o->attrs = repl_rd_array(r, na, sizeof *o->attrs);
    for (size_t i = 0; i < na && r->rc == 0; i++)
        read_attr(r, repl_rd_item(r, REPL_TAG_ATTRIBUTE), &o->attrs[i]);
    o->n_attrs = r->rc ? 0 : na;
    size_t nc = count_tag(r, REPL_TAG_CLOCK);
    x->clocks = repl_rd_array(r, nc, sizeof *x->clocks);
    for (size_t i = 0; i < nc && r->rc == 0; i++) {
        repl_rd_t s;
        repl_rd_init(&s, repl_rd_item(r, REPL_TAG_CLOCK), r->arena, r->err);
        x->clocks[i].name = repl_rd_text(&s, REPL_TAG_NAME, ATTR_NAME_MAX);
        x->clocks[i].hlc = repl_rd_long(&s, REPL_TAG_HLC);
        x->clocks[i].node = repl_rd_text(&s, REPL_TAG_NODE_ID, REPL_ID_MAX);
        repl_rd_end(&s);
        r->rc = s.rc;
    }
    x->n_clocks = r->rc ? 0 : nc;
}

void repl_entity_read(repl_rd_t *r, const ttlv_item_t *ent, repl_entity_t *x)
{
    repl_rd_t s;
    memset(x, 0, sizeof *x);
    if (r->rc)
        return;
    repl_rd_init(&s, ent, r->arena, r->err);
    const ttlv_item_t *kind_at = s.next;
    uint32_t kind = repl_rd_enum(&s, REPL_TAG_KIND);
    x->seq = repl_rd_long_range(&s, REPL_TAG_SEQ, 0, INT64_MAX);
    x->key = repl_rd_text(&s, REPL_TAG_KEY, 127);
    x->origin = repl_rd_text(&s, REPL_TAG_ORIGIN, REPL_ID_MAX);
    x->origin_seq = repl_rd_long_range(&s, REPL_TAG_ORIGIN_SEQ, 0, INT64_MAX);
    x->hlc = repl_rd_long(&s, REPL_TAG_HLC);
    x->deleted = repl_rd_bool(&s, REPL_TAG_DELETED);
    if (s.rc == 0 && (kind < REPL_KIND_OBJECT || kind > REPL_KIND_NODE))
        repl_rd_fail(&s, kind_at, KMS_ERR_PROTO, "ENTITY: unknown kind %u", kind);
    x->kind = (enum repl_kind)kind;
    if (s.rc == 0 && !x->deleted) {
        switch (x->kind) {
        case REPL_KIND_OBJECT:
            read_object(&s, ent, x);
            break;
        case REPL_KIND_TENANT:
            x->tenant_created_us = repl_rd_long(&s, REPL_TAG_CREATED_US);
            break;
        case REPL_KIND_CLIENT:
            if (strlen(x->key) >= sizeof x->client.name) {
                repl_rd_fail(&s, ent, KMS_ERR_PROTO, "ENTITY: client name too long");
                break;
            }
            memcpy(x->client.name, x->key, strlen(x->key) + 1);
            repl_rd_text_into(&s, REPL_TAG_TENANT, x->client.tenant, sizeof x->client.tenant);
            repl_rd_text_into(&s, REPL_TAG_ROLE, x->client.role, sizeof x->client.role);
            repl_rd_text_into(&s, REPL_TAG_CLIENT_KIND, x->client.kind, sizeof x->client.kind);
            repl_rd_text_into(&s, REPL_TAG_CERT_SHA256, x->client.cert_sha256,
                              sizeof x->client.cert_sha256);
            repl_rd_text_into(&s, REPL_TAG_PASSWORD_HASH, x->client.password_hash,
                              sizeof x->client.password_hash);
            x->client.created_us = repl_rd_long(&s, REPL_TAG_CREATED_US);
            break;
        case REPL_KIND_DSK:
            x->dsk_id = (uint32_t)repl_rd_long_range(&s, REPL_TAG_DSK_ID, 1, UINT32_MAX);
            x->dsk = repl_rd_secret(&s, REPL_TAG_KEY_BYTES, REPL_DSK_MAX);
            x->dsk_current = repl_rd_bool(&s, REPL_TAG_CURRENT);
            break;
        case REPL_KIND_NODE:
            if (strlen(x->key) >= sizeof x->node.node_id) {
                repl_rd_fail(&s, ent, KMS_ERR_PROTO, "ENTITY: node id too long");
                break;
            }
            memcpy(x->node.node_id, x->key, strlen(x->key) + 1);
            repl_rd_text_into(&s, REPL_TAG_PEER_ADDR, x->node.peer_addr, sizeof x->node.peer_addr);
            repl_rd_text_into(&s, REPL_TAG_KMIP_ADDR, x->node.kmip_addr, sizeof x->node.kmip_addr);
            repl_rd_text_into(&s, REPL_TAG_CERT_SHA256, x->node.cert_sha256,
                              sizeof x->node.cert_sha256);
            x->node.added_hlc = repl_rd_long(&s, REPL_TAG_ADDED_HLC);
            x->node.removed = repl_rd_bool(&s, REPL_TAG_REMOVED);
            break;
        }
    }
    repl_rd_end(&s);
    r->rc = s.rc;
}

void repl_entity_dispose(repl_entity_t *x)
{
    kms_secret_free(x->dsk);
    x->dsk = NULL;
}
