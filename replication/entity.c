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
 *   client: TENANT, ROLE, CLIENT_KIND, CERT_SHA256, PASSWORD_HASH, CREATED_US,
 *           for a device client DEVICE (DEVICE_SERIAL, DEVICE_IDENTIFIER,
 *           NETWORK_IDENTIFIER, MACHINE_IDENTIFIER, MEDIA_IDENTIFIER),
 *           for a disabled client DISABLED (DISABLED_US, DISABLED_REASON)
 *   dsk:    DSK_ID, KEY_BYTES, CURRENT
 *   node:   PEER_ADDR, KMIP_ADDR, CERT_SHA256, ADDED_HLC, REMOVED
 * The KEY names the entity: it is the object's id, the client's name, the
 * node's id (copied into those fields when decoded). Attribute values are
 * opaque TTLV bytes, shipped with the search keys kmip/ derived for them,
 * so the receiver stores them without interpreting KMIP. A device client
 * from a node of the version before DEVICE has no DEVICE and its
 * identifiers packed into CERT_SHA256 (store_device_unpack): it is read
 * as well, into the same record, and re-encodes as it came. DISABLED is
 * there only when the client is disabled (absent = enabled), so clients
 * that were never disabled encode as they did before store schema v12.
 *
 * Entities are written straight into a byte buffer (no TTLV item tree:
 * every object a client creates passes through here once); frames that
 * carry entities take those bytes (frame.c). Reading goes through the
 * strict TTLV decoder's tree like every frame.
 *
 * It deliberately checks shapes and sizes only: whether a state or a clock
 * makes sense is the merge's business (merge.c).
 */
#include <string.h>

#include "replication/repl_int.h"

#define ATTR_NAME_MAX 255

/* ------------------------------------------------------------ writing */
/* The writer appends TTLV items straight to the output buffer, with no
 * item tree in between (this is the push links' hot path: every object a
 * client creates is encoded here once). A Structure's header is written
 * with a zero length and back-patched when it closes, as ttlv_encode
 * does, so the bytes are the ones ttlv_encode makes of the same items.
 * Errors are sticky (w.rc); the caller rewinds the buffer on failure. */
typedef struct ewr {
    repl_wr_t w;             /* err and the sticky rc; no arena */
    kms_buf_t *out;
} ewr_t;

/* Room for n more bytes at the end of the output, counted in; NULL after
 * an error. */
static uint8_t *ew_room(ewr_t *e, size_t n)
{
    if (e->w.rc)
        return NULL;
    int rc = kms_buf_reserve(e->out, n);
    if (rc) {
        repl_wr_fail(&e->w, rc, "entity does not fit the output buffer");
        return NULL;
    }
    uint8_t *p = e->out->data + e->out->len;
    e->out->len += n;
    return p;
}

static void ew_head(uint8_t *p, uint32_t tag, uint32_t len)
{
    p[0] = (uint8_t)(tag >> 16);
    p[1] = (uint8_t)(tag >> 8);
    p[2] = (uint8_t)tag;
    p[3] = (uint8_t)repl_tag_type(tag);
    kms_put_be32(p + 4, len);
}

/* A 16-byte item: Integer and Enumeration (len 4: 4 bytes and 4 of
 * padding), Long Integer and Boolean (len 8). */
static void ew_num(ewr_t *e, uint32_t tag, uint64_t v, uint32_t len)
{
    uint8_t *p = ew_room(e, 16);
    if (!p)
        return;
    ew_head(p, tag, len);
    if (len == 4) {
        kms_put_be32(p + 8, (uint32_t)v);
        memset(p + 12, 0, 4);
    } else {
        kms_put_be64(p + 8, v);
    }
}

static void ew_u32(ewr_t *e, uint32_t tag, uint32_t v)
{
    ew_num(e, tag, v, 4);
}

static void ew_long(ewr_t *e, uint32_t tag, int64_t v)
{
    ew_num(e, tag, (uint64_t)v, 8);
}

static void ew_bool(ewr_t *e, uint32_t tag, bool v)
{
    ew_num(e, tag, v ? 1 : 0, 8);
}

/* Text String, Byte String: n bytes, zero-padded to a multiple of 8. */
static void ew_bytes(ewr_t *e, uint32_t tag, const void *v, size_t n)
{
    if (e->w.rc)
        return;
    if (n && !v) {
        repl_wr_fail(&e->w, KMS_ERR_NOMEM, "out of memory"); /* as the tree builder's */
        return;
    }
    if (n > UINT32_MAX - 7) {
        repl_wr_fail(&e->w, KMS_ERR_INVAL, "%s: too long", repl_tag_name(tag));
        return;
    }
    size_t padded = (n + 7) & ~(size_t)7;
    uint8_t *p = ew_room(e, 8 + padded);
    if (!p)
        return;
    ew_head(p, tag, (uint32_t)n);
    if (n)
        memcpy(p + 8, v, n);
    memset(p + 8 + n, 0, padded - n);
}

static void ew_text(ewr_t *e, uint32_t tag, const char *s, size_t max)
{
    if (e->w.rc)
        return;
    if (!s)
        s = "";
    size_t n = strlen(s);
    if (n > max) {
        repl_wr_fail(&e->w, KMS_ERR_INVAL, "%s: longer than %zu bytes", repl_tag_name(tag), max);
        return;
    }
    ew_bytes(e, tag, s, n);
}

/* A Structure: opened (its offset), then closed once its items are out. */
static size_t ew_open(ewr_t *e, uint32_t tag)
{
    size_t at = e->out->len;
    uint8_t *p = ew_room(e, 8);
    if (p)
        ew_head(p, tag, 0);
    return at;
}

static void ew_close(ewr_t *e, size_t at)
{
    if (e->w.rc)
        return;
    size_t body = e->out->len - at - 8;
    if (body > UINT32_MAX) {
        repl_wr_fail(&e->w, KMS_ERR_LIMIT, "%s: too long", repl_tag_name(REPL_TAG_ENTITY));
        return;
    }
    kms_put_be32(e->out->data + at + 4, (uint32_t)body);
}

static void write_attr(ewr_t *w, const store_attr_t *a)
{
    if (a->index > INT32_MAX) {
        repl_wr_fail(&w->w, KMS_ERR_INVAL, "attribute %s: index %u out of range", a->name,
                     a->index);
        return;
    }
    size_t at = ew_open(w, REPL_TAG_ATTRIBUTE);
    ew_text(w, REPL_TAG_NAME, a->name, ATTR_NAME_MAX);
    ew_u32(w, REPL_TAG_INDEX, a->index);
    ew_bytes(w, REPL_TAG_VALUE, a->value, a->value_len);
    if (a->skey)
        ew_text(w, REPL_TAG_SKEY, a->skey, REPL_TEXT_MAX);
    ew_long(w, REPL_TAG_NKEY, a->nkey);
    ew_u32(w, REPL_TAG_FLAGS,
           (a->has_nkey ? REPL_ATTR_FLAG_NKEY : 0) | (a->index_nkey ? REPL_ATTR_FLAG_INDEX : 0));
    ew_close(w, at);
}

static void write_object(ewr_t *w, const repl_entity_t *x)
{
    const store_object_t *o = &x->obj;
    ew_u32(w, REPL_TAG_OBJECT_TYPE, o->object_type);
    ew_u32(w, REPL_TAG_STATE, o->state);
    ew_text(w, REPL_TAG_TENANT, o->tenant, REPL_ID_MAX);
    ew_long(w, REPL_TAG_CREATED_US, o->created_us);
    ew_long(w, REPL_TAG_UPDATED_US, o->updated_us);
    ew_bool(w, REPL_TAG_ARCHIVED, o->archived);
    ew_long(w, REPL_TAG_DSK_ID, o->sealed.dsk_id);
    ew_long(w, REPL_TAG_SEAL_GEN, o->sealed.gen);
    if (o->sealed.len)
        ew_bytes(w, REPL_TAG_BLOB, o->sealed.blob, o->sealed.len);
    for (size_t i = 0; i < o->n_attrs && w->w.rc == 0; i++)
        write_attr(w, &o->attrs[i]);
    for (size_t i = 0; i < x->n_clocks && w->w.rc == 0; i++) {
        size_t at = ew_open(w, REPL_TAG_CLOCK);
        ew_text(w, REPL_TAG_NAME, x->clocks[i].name, ATTR_NAME_MAX);
        ew_long(w, REPL_TAG_HLC, x->clocks[i].hlc);
        ew_text(w, REPL_TAG_NODE_ID, x->clocks[i].node, REPL_ID_MAX);
        ew_close(w, at);
    }
}

/* A client; `packed`: a device client's identifiers in the packed form it
 * was decoded from (x->client_packed), sent as they came. */
static void write_client(ewr_t *w, const store_client_t *c, const char *packed)
{
    ew_text(w, REPL_TAG_TENANT, c->tenant, sizeof c->tenant - 1);
    ew_text(w, REPL_TAG_ROLE, c->role, sizeof c->role - 1);
    ew_text(w, REPL_TAG_CLIENT_KIND, c->kind, sizeof c->kind - 1);
    if (packed)
        ew_text(w, REPL_TAG_CERT_SHA256, packed, STORE_DEVICE_PACKED_MAX);
    else
        ew_text(w, REPL_TAG_CERT_SHA256, c->cert_sha256, sizeof c->cert_sha256 - 1);
    ew_text(w, REPL_TAG_PASSWORD_HASH, c->password_hash, sizeof c->password_hash - 1);
    ew_long(w, REPL_TAG_CREATED_US, c->created_us);
    if (!packed && strcmp(c->kind, "device") == 0) {
        const store_device_t *d = &c->device;
        size_t at = ew_open(w, REPL_TAG_DEVICE);
        ew_text(w, REPL_TAG_DEVICE_SERIAL, d->serial, STORE_DEVICE_FIELD_MAX);
        ew_text(w, REPL_TAG_DEVICE_IDENTIFIER, d->device_id, STORE_DEVICE_FIELD_MAX);
        ew_text(w, REPL_TAG_NETWORK_IDENTIFIER, d->network_id, STORE_DEVICE_FIELD_MAX);
        ew_text(w, REPL_TAG_MACHINE_IDENTIFIER, d->machine_id, STORE_DEVICE_FIELD_MAX);
        ew_text(w, REPL_TAG_MEDIA_IDENTIFIER, d->media_id, STORE_DEVICE_FIELD_MAX);
        ew_close(w, at);
    }
    if (c->disabled) {
        size_t at = ew_open(w, REPL_TAG_DISABLED);
        ew_long(w, REPL_TAG_DISABLED_US, c->disabled_us);
        ew_text(w, REPL_TAG_DISABLED_REASON, c->disabled_reason, STORE_CLIENT_REASON_MAX);
        ew_close(w, at);
    }
}

static void write_entity(ewr_t *w, const repl_entity_t *x)
{
    if (x->kind < REPL_KIND_OBJECT || x->kind > REPL_KIND_NODE) {
        repl_wr_fail(&w->w, KMS_ERR_INVAL, "entity %s: unknown kind %d", x->key ? x->key : "",
                     (int)x->kind);
        return;
    }
    size_t at = ew_open(w, REPL_TAG_ENTITY);
    ew_u32(w, REPL_TAG_KIND, (uint32_t)x->kind);
    ew_long(w, REPL_TAG_SEQ, x->seq);
    ew_text(w, REPL_TAG_KEY, x->key, 127);
    ew_text(w, REPL_TAG_ORIGIN, x->origin, REPL_ID_MAX);
    ew_long(w, REPL_TAG_ORIGIN_SEQ, x->origin_seq);
    ew_long(w, REPL_TAG_HLC, x->hlc);
    ew_bool(w, REPL_TAG_DELETED, x->deleted);
    if (!x->deleted) {
        switch (x->kind) {
        case REPL_KIND_OBJECT:
            write_object(w, x);
            break;
        case REPL_KIND_TENANT:
            ew_long(w, REPL_TAG_CREATED_US, x->tenant_created_us);
            break;
        case REPL_KIND_CLIENT:
            write_client(w, &x->client, x->client_packed);
            break;
        case REPL_KIND_DSK:
            if (!x->dsk || x->dsk->len == 0 || x->dsk->len > REPL_DSK_MAX || x->dsk_id == 0) {
                repl_wr_fail(&w->w, KMS_ERR_INVAL, "data-store key %u: no key or no id",
                             x->dsk_id);
                break;
            }
            ew_long(w, REPL_TAG_DSK_ID, x->dsk_id);
            ew_bytes(w, REPL_TAG_KEY_BYTES, x->dsk->data, x->dsk->len);
            ew_bool(w, REPL_TAG_CURRENT, x->dsk_current);
            break;
        case REPL_KIND_NODE:
            ew_text(w, REPL_TAG_PEER_ADDR, x->node.peer_addr, sizeof x->node.peer_addr - 1);
            ew_text(w, REPL_TAG_KMIP_ADDR, x->node.kmip_addr, sizeof x->node.kmip_addr - 1);
            ew_text(w, REPL_TAG_CERT_SHA256, x->node.cert_sha256,
                    sizeof x->node.cert_sha256 - 1);
            ew_long(w, REPL_TAG_ADDED_HLC, x->node.added_hlc);
            ew_bool(w, REPL_TAG_REMOVED, x->node.removed);
            break;
        }
    }
    ew_close(w, at);
}

int repl_entity_encode(const repl_entity_t *e, kms_buf_t *out, kms_error_t *err)
{
    ewr_t w = {.w = {.arena = NULL, .err = err, .rc = 0}, .out = out};
    size_t mark = out->len;
    write_entity(&w, e);
    if (w.w.rc && out->len > mark) {
        /* No half entity (it may hold a data-store key). */
        kms_wipe(out->data + mark, out->len - mark);
        out->len = mark;
    }
    return w.w.rc;
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

/* The optional DISABLED that ends a client: present = disabled. */
static void read_disabled(repl_rd_t *r, store_client_t *c)
{
    if (r->rc || !repl_rd_peek(r, REPL_TAG_DISABLED))
        return;
    repl_rd_t s;
    repl_rd_init(&s, repl_rd_item(r, REPL_TAG_DISABLED), r->arena, r->err);
    c->disabled = true;
    c->disabled_us = repl_rd_long(&s, REPL_TAG_DISABLED_US);
    repl_rd_text_into(&s, REPL_TAG_DISABLED_REASON, c->disabled_reason,
                      sizeof c->disabled_reason);
    repl_rd_end(&s);
    r->rc = s.rc;
}

/* A client's fields into x->client (its name set). DEVICE comes with a
 * device client and only with one; a device client without it is of the
 * packed form (x->client_packed). DISABLED comes with a disabled client
 * only. So every decoded client re-encodes to the bytes it came in. */
static void read_client(repl_rd_t *r, const ttlv_item_t *ent, repl_entity_t *x)
{
    store_client_t *c = &x->client;
    repl_rd_text_into(r, REPL_TAG_TENANT, c->tenant, sizeof c->tenant);
    repl_rd_text_into(r, REPL_TAG_ROLE, c->role, sizeof c->role);
    repl_rd_text_into(r, REPL_TAG_CLIENT_KIND, c->kind, sizeof c->kind);
    const ttlv_item_t *cert_at = r->next;
    const char *cert = repl_rd_text(r, REPL_TAG_CERT_SHA256, STORE_DEVICE_PACKED_MAX);
    repl_rd_text_into(r, REPL_TAG_PASSWORD_HASH, c->password_hash, sizeof c->password_hash);
    c->created_us = repl_rd_long(r, REPL_TAG_CREATED_US);
    if (r->rc)
        return;
    bool device = strcmp(c->kind, "device") == 0;
    bool has_device = repl_rd_peek(r, REPL_TAG_DEVICE);
    if (has_device && !device) {
        repl_rd_fail(r, ent, KMS_ERR_PROTO, "ENTITY: DEVICE in a client of kind '%s'", c->kind);
        return;
    }
    if (device && !has_device) {
        if (store_device_unpack(cert, &c->device) != 0)
            repl_rd_fail(r, cert_at, KMS_ERR_PROTO, "ENTITY: a device client without DEVICE or "
                                                    "packed identifiers");
        x->client_packed = cert;
        read_disabled(r, c);
        return; /* cert_sha256 stays "" */
    }
    if (device) {
        repl_rd_t s;
        store_device_t *d = &c->device;
        repl_rd_init(&s, repl_rd_item(r, REPL_TAG_DEVICE), r->arena, r->err);
        repl_rd_text_into(&s, REPL_TAG_DEVICE_SERIAL, d->serial, sizeof d->serial);
        repl_rd_text_into(&s, REPL_TAG_DEVICE_IDENTIFIER, d->device_id, sizeof d->device_id);
        repl_rd_text_into(&s, REPL_TAG_NETWORK_IDENTIFIER, d->network_id, sizeof d->network_id);
        repl_rd_text_into(&s, REPL_TAG_MACHINE_IDENTIFIER, d->machine_id, sizeof d->machine_id);
        repl_rd_text_into(&s, REPL_TAG_MEDIA_IDENTIFIER, d->media_id, sizeof d->media_id);
        repl_rd_end(&s);
        r->rc = s.rc;
    }
    if (r->rc == 0 && strlen(cert) >= sizeof c->cert_sha256)
        repl_rd_fail(r, cert_at, KMS_ERR_PROTO, "CERT_SHA256: longer than %zu bytes",
                     sizeof c->cert_sha256 - 1);
    else if (r->rc == 0)
        memcpy(c->cert_sha256, cert, strlen(cert) + 1);
    read_disabled(r, c);
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
            read_client(&s, ent, x);
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
