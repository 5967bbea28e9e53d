/*
 * replication/frame.c: the peer protocol's frames to and from bytes.
 *
 * Header: 'K' 'R' | version | type | u32 BE body length; body: one TTLV
 * Structure decoded by ttlv/'s strict decoder with limits derived from the
 * body length (so memory is bounded by max_frame, which the header check
 * enforces before anything is allocated), then read field by field in a
 * fixed order with the tag table's types (repl_int.h). The encoding is
 * canonical: a frame that decodes re-encodes to the same bytes (the fuzz
 * target checks it). Entities (objects, tenants, clients, DSKs, nodes) are
 * in entity.c.
 *
 * It deliberately does no I/O and keeps no state: the links (link.c)
 * frame their byte streams with repl_frame_header() and hand complete
 * frames here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "replication/repl_int.h"

/* Nesting a frame needs: FRAME > ENTITY > ATTRIBUTE > field. */
#define REPL_DEFAULT_DEPTH 8
/* Items one frame may hold (each is at least 8 bytes, so max_frame bounds
 * them too; this caps the tree of a large frame). */
#define REPL_MAX_ITEMS (1u << 20)

/* ------------------------------------------------------------- tables */
const char *repl_frame_type_name(int type)
{
    switch (type) {
#define XX(v, name) case v: return #name;
        REPL_FRAME_TYPES(XX)
#undef XX
    default:
        return NULL;
    }
}

const char *repl_error_text(int code)
{
    switch (code) {
#define XX(v, name, text) case v: return text;
        REPL_ERRORS(XX)
#undef XX
    default:
        return "unknown error";
    }
}

enum ttlv_type repl_tag_type(uint32_t tag)
{
    switch (tag) {
#define XX(v, name, type) case v: return TTLV_##type;
        REPL_TAGS(XX)
#undef XX
    default:
        return TTLV_ANY;
    }
}

const char *repl_tag_name(uint32_t tag)
{
    switch (tag) {
#define XX(v, name, type) case v: return #name;
        REPL_TAGS(XX)
#undef XX
    default:
        return "?";
    }
}

/* ------------------------------------------------------------- reading */
void repl_rd_init(repl_rd_t *r, const ttlv_item_t *parent, kms_arena_t *a, kms_error_t *err)
{
    r->parent = parent;
    r->next = parent ? parent->first : NULL;
    r->arena = a;
    r->err = err;
    /* A NULL parent is an item the caller failed to read: that failure is
     * already recorded, this cursor only stays failed. */
    r->rc = parent ? 0 : KMS_ERR_PROTO;
}

void repl_rd_fail(repl_rd_t *r, const ttlv_item_t *at, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    if (r->rc)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->rc = code;
    if (at)
        kms_error_set_at(r->err, code, REPL_FRAME_HEADER + at->offset, "%s", msg);
    else
        kms_error_set(r->err, code, "%s", msg);
}

bool repl_rd_peek(const repl_rd_t *r, uint32_t tag)
{
    return r->rc == 0 && r->next && r->next->tag == tag;
}

const ttlv_item_t *repl_rd_item(repl_rd_t *r, uint32_t tag)
{
    if (r->rc)
        return NULL;
    const ttlv_item_t *it = r->next;
    if (!it) {
        repl_rd_fail(r, r->parent, KMS_ERR_PROTO, "%s: missing %s", repl_tag_name(r->parent->tag),
                     repl_tag_name(tag));
        return NULL;
    }
    if (it->tag != tag) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: expected %s, got tag 0x%06X",
                     repl_tag_name(r->parent->tag), repl_tag_name(tag), (unsigned)it->tag);
        return NULL;
    }
    if (it->type != repl_tag_type(tag)) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: wrong item type %s", repl_tag_name(tag),
                     ttlv_type_name(it->type));
        return NULL;
    }
    r->next = it->next;
    return it;
}

const char *repl_rd_text(repl_rd_t *r, uint32_t tag, size_t max)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    if (!it)
        return "";
    const char *s = ttlv_text(it);
    if (it->v.bytes.len > max) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: longer than %zu bytes", repl_tag_name(tag), max);
        return "";
    }
    if (it->v.bytes.len && (!s || strlen(s) != it->v.bytes.len)) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: contains a NUL byte", repl_tag_name(tag));
        return "";
    }
    return s ? s : "";
}

void repl_rd_text_into(repl_rd_t *r, uint32_t tag, char *buf, size_t cap)
{
    const char *s = repl_rd_text(r, tag, cap - 1);
    if (r->rc == 0)
        memcpy(buf, s, strlen(s) + 1);
}

int64_t repl_rd_long(repl_rd_t *r, uint32_t tag)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    return it ? it->v.i64 : 0;
}

int64_t repl_rd_long_range(repl_rd_t *r, uint32_t tag, int64_t lo, int64_t hi)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    if (!it)
        return 0;
    if (it->v.i64 < lo || it->v.i64 > hi) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: %lld out of range", repl_tag_name(tag),
                     (long long)it->v.i64);
        return 0;
    }
    return it->v.i64;
}

int32_t repl_rd_int(repl_rd_t *r, uint32_t tag)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    return it ? it->v.i32 : 0;
}

uint32_t repl_rd_enum(repl_rd_t *r, uint32_t tag)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    return it ? ttlv_u32(it) : 0;
}

bool repl_rd_bool(repl_rd_t *r, uint32_t tag)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    return it ? it->v.b : false;
}

repl_bytes_t repl_rd_bytes(repl_rd_t *r, uint32_t tag, size_t max)
{
    repl_bytes_t b = {NULL, 0};
    const ttlv_item_t *it = repl_rd_item(r, tag);
    if (!it)
        return b;
    if (it->v.bytes.len > max) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: longer than %zu bytes", repl_tag_name(tag), max);
        return b;
    }
    b.p = it->v.bytes.ptr;
    b.len = it->v.bytes.len;
    return b;
}

kms_secret_t *repl_rd_secret(repl_rd_t *r, uint32_t tag, size_t max)
{
    const ttlv_item_t *it = repl_rd_item(r, tag);
    if (!it)
        return NULL;
    size_t n = it->v.bytes.len;
    if (n == 0 || n > max) {
        repl_rd_fail(r, it, KMS_ERR_PROTO, "%s: must be 1 to %zu bytes", repl_tag_name(tag), max);
        return NULL;
    }
    kms_secret_t *s = kms_secret_dup(it->v.bytes.ptr, n);
    /* The tree's copy is ours (the decoder copied the input into the
     * arena): wipe it now rather than when the arena goes. */
    kms_wipe((void *)it->v.bytes.ptr, n);
    if (!s)
        repl_rd_fail(r, it, KMS_ERR_NOMEM, "out of memory");
    return s;
}

void repl_rd_end(repl_rd_t *r)
{
    if (r->rc == 0 && r->next)
        repl_rd_fail(r, r->next, KMS_ERR_PROTO, "%s: unexpected %s (tag 0x%06X)",
                     repl_tag_name(r->parent->tag), repl_tag_name(r->next->tag),
                     (unsigned)r->next->tag);
}

void *repl_rd_array(repl_rd_t *r, size_t n, size_t sz)
{
    if (r->rc || n == 0)
        return NULL;
    if (n > SIZE_MAX / sz) {
        repl_rd_fail(r, NULL, KMS_ERR_LIMIT, "too many items");
        return NULL;
    }
    void *p = kms_arena_alloc(r->arena, n * sz);
    if (!p)
        repl_rd_fail(r, NULL, KMS_ERR_NOMEM, "out of memory");
    return p;
}

/* Items with `tag` from the cursor on, consecutive. */
static size_t rd_count(const repl_rd_t *r, uint32_t tag)
{
    size_t n = 0;
    for (const ttlv_item_t *it = r->next; it && it->tag == tag; it = it->next)
        n++;
    return n;
}

/* A list of HWM structures (node id, seq and, with `linked`, the LINKED
 * flag); NULL with *n_out 0 when there is none. */
static repl_hwm_t *read_hwms(repl_rd_t *r, bool linked, size_t *n_out)
{
    size_t n = rd_count(r, REPL_TAG_HWM);
    repl_hwm_t *v = n ? repl_rd_array(r, n, sizeof *v) : NULL;
    for (size_t i = 0; i < n && r->rc == 0; i++) {
        repl_rd_t sub;
        repl_rd_init(&sub, repl_rd_item(r, REPL_TAG_HWM), r->arena, r->err);
        v[i].node_id = repl_rd_text(&sub, REPL_TAG_NODE_ID, REPL_ID_MAX);
        v[i].seq = repl_rd_long_range(&sub, REPL_TAG_SEQ, 0, INT64_MAX);
        v[i].linked = linked && repl_rd_bool(&sub, REPL_TAG_LINKED);
        repl_rd_end(&sub);
        r->rc = sub.rc;
    }
    *n_out = r->rc ? 0 : n;
    return r->rc ? NULL : v;
}

/* ------------------------------------------------------------- writing */
void repl_wr_fail(repl_wr_t *w, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    if (w->rc)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->rc = code;
    kms_error_set(w->err, code, "%s", msg);
}

static bool wr_ok(repl_wr_t *w, const ttlv_item_t *parent, const void *made)
{
    if (w->rc || !parent)
        return false;
    if (!made) {
        repl_wr_fail(w, KMS_ERR_NOMEM, "out of memory");
        return false;
    }
    return true;
}

ttlv_item_t *repl_wr_struct(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag)
{
    if (w->rc || !parent)
        return NULL;
    ttlv_item_t *it = ttlv_new_struct(w->arena, parent, tag);
    return wr_ok(w, parent, it) ? it : NULL;
}

void repl_wr_text(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, const char *s, size_t max)
{
    if (w->rc || !parent)
        return;
    if (!s)
        s = "";
    size_t n = strlen(s);
    if (n > max) {
        repl_wr_fail(w, KMS_ERR_INVAL, "%s: longer than %zu bytes", repl_tag_name(tag), max);
        return;
    }
    wr_ok(w, parent, ttlv_new_text(w->arena, parent, tag, s, n));
}

void repl_wr_long(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, int64_t v)
{
    if (!w->rc && parent)
        wr_ok(w, parent, ttlv_new_long(w->arena, parent, tag, v));
}

void repl_wr_int(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, int32_t v)
{
    if (!w->rc && parent)
        wr_ok(w, parent, ttlv_new_int(w->arena, parent, tag, v));
}

void repl_wr_enum(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, uint32_t v)
{
    if (!w->rc && parent)
        wr_ok(w, parent, ttlv_new_enum(w->arena, parent, tag, v));
}

void repl_wr_bool(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, bool v)
{
    if (!w->rc && parent)
        wr_ok(w, parent, ttlv_new_bool(w->arena, parent, tag, v));
}

void repl_wr_bytes(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n)
{
    if (!w->rc && parent)
        wr_ok(w, parent, ttlv_new_bytes(w->arena, parent, tag, n ? p : "", n));
}

/* ------------------------------------------------------------- header */
int repl_frame_header(const uint8_t *hdr, size_t have, size_t max_frame, int *type_out,
                      size_t *total_out)
{
    if (have < REPL_FRAME_HEADER)
        return KMS_ERR_PARTIAL;
    if (max_frame == 0)
        max_frame = REPL_MAX_FRAME_DEFAULT;
    if (hdr[0] != REPL_MAGIC0 || hdr[1] != REPL_MAGIC1)
        return KMS_ERR_PROTO;
    if (hdr[2] != REPL_PROTO_VERSION)
        return KMS_ERR_NOTSUP;
    if (!repl_frame_type_name(hdr[3]))
        return KMS_ERR_PROTO;
    uint32_t len = kms_be32(hdr + 4);
    if (len > max_frame)
        return KMS_ERR_LIMIT;
    if (len < 8 || len % 8 != 0)
        return KMS_ERR_PROTO; /* one TTLV Structure: a header and padded items */
    if (type_out)
        *type_out = hdr[3];
    if (total_out)
        *total_out = REPL_FRAME_HEADER + (size_t)len;
    return 0;
}

/* -------------------------------------------------------- frame bodies */
static void dispose_entities(repl_entity_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        repl_entity_dispose(&v[i]);
}

/* The ENTITY items from the cursor on. On failure the secrets of those
 * read so far are freed here and nothing is returned. */
static repl_entity_t *read_entities(repl_rd_t *r, size_t *n_out)
{
    size_t n = rd_count(r, REPL_TAG_ENTITY);
    repl_entity_t *v = repl_rd_array(r, n, sizeof *v);
    for (size_t i = 0; i < n && r->rc == 0; i++)
        repl_entity_read(r, repl_rd_item(r, REPL_TAG_ENTITY), &v[i]);
    if (r->rc) {
        dispose_entities(v, n); /* zeroed by the arena where not read */
        *n_out = 0;
        return NULL;
    }
    *n_out = n;
    return v;
}

/* JOIN_RESP: the entity list holds every NODE, then every DSK. */
static void read_join_entities(repl_rd_t *r, repl_frame_t *f)
{
    size_t n = 0;
    const ttlv_item_t *first = r->next;
    repl_entity_t *v = read_entities(r, &n);
    size_t i = 0;
    while (i < n && v[i].kind == REPL_KIND_NODE)
        i++;
    f->u.join_resp.nodes = i ? v : NULL;
    f->u.join_resp.n_nodes = i;
    f->u.join_resp.dsks = i < n ? v + i : NULL;
    f->u.join_resp.n_dsks = n - i;
    for (; i < n; i++)
        if (v[i].kind != REPL_KIND_DSK)
            repl_rd_fail(r, first, KMS_ERR_PROTO,
                         "JOIN_RESP: entities must be nodes then data-store keys");
}

static void read_body(repl_rd_t *r, repl_frame_t *f)
{
    switch (f->type) {
    case REPL_FRAME_HELLO:
        f->u.hello.version = repl_rd_int(r, REPL_TAG_PROTOCOL_VERSION);
        f->u.hello.cluster_id = repl_rd_text(r, REPL_TAG_CLUSTER_ID, REPL_ID_MAX);
        f->u.hello.node_id = repl_rd_text(r, REPL_TAG_NODE_ID, REPL_ID_MAX);
        f->u.hello.wall_ms = repl_rd_long(r, REPL_TAG_WALL_MS);
        f->u.hello.peer_addr = repl_rd_text(r, REPL_TAG_PEER_ADDR, 255);
        f->u.hello.kmip_addr = repl_rd_text(r, REPL_TAG_KMIP_ADDR, 255);
        f->u.hello.log_head = repl_rd_long_range(r, REPL_TAG_LAST_SEQ, 0, INT64_MAX);
        break;
    case REPL_FRAME_HELLO_ACK:
        f->u.hello_ack.cluster_id = repl_rd_text(r, REPL_TAG_CLUSTER_ID, REPL_ID_MAX);
        f->u.hello_ack.node_id = repl_rd_text(r, REPL_TAG_NODE_ID, REPL_ID_MAX);
        f->u.hello_ack.wall_ms = repl_rd_long(r, REPL_TAG_WALL_MS);
        f->u.hello_ack.link_pos = repl_rd_long_range(r, REPL_TAG_LINK_POS, 0, INT64_MAX);
        f->u.hello_ack.log_head = repl_rd_long_range(r, REPL_TAG_LAST_SEQ, 0, INT64_MAX);
        f->u.hello_ack.hwm = read_hwms(r, true, &f->u.hello_ack.n_hwm);
        break;
    case REPL_FRAME_CHANGES:
        f->u.changes.last_seq = repl_rd_long_range(r, REPL_TAG_LAST_SEQ, 0, INT64_MAX);
        f->u.changes.v = read_entities(r, &f->u.changes.n);
        break;
    case REPL_FRAME_ACK:
        f->u.ack.seq = repl_rd_long_range(r, REPL_TAG_SEQ, 0, INT64_MAX);
        f->u.ack.hwm = read_hwms(r, true, &f->u.ack.n_hwm);
        break;
    case REPL_FRAME_SNAPSHOT_BEGIN: {
        f->u.snap_begin.snapshot_seq = repl_rd_long_range(r, REPL_TAG_SNAPSHOT_SEQ, 0, INT64_MAX);
        f->u.snap_begin.objects = repl_rd_long_range(r, REPL_TAG_COUNT, 0, INT64_MAX);
        f->u.snap_begin.hwm = read_hwms(r, false, &f->u.snap_begin.n_hwm);
        break;
    }
    case REPL_FRAME_SNAPSHOT_CHUNK:
        f->u.snap_chunk.v = read_entities(r, &f->u.snap_chunk.n);
        break;
    case REPL_FRAME_SNAPSHOT_END:
        f->u.snap_end.snapshot_seq = repl_rd_long_range(r, REPL_TAG_SNAPSHOT_SEQ, 0, INT64_MAX);
        f->u.snap_end.count = repl_rd_long_range(r, REPL_TAG_COUNT, 0, INT64_MAX);
        break;
    case REPL_FRAME_PING:
    case REPL_FRAME_PONG:
        f->u.ping.nonce = repl_rd_long(r, REPL_TAG_NONCE);
        f->u.ping.wall_ms = repl_rd_long(r, REPL_TAG_WALL_MS);
        break;
    case REPL_FRAME_JOIN_REQ:
        f->u.join_req.invite_id = repl_rd_text(r, REPL_TAG_INVITE_ID, REPL_ID_MAX);
        f->u.join_req.secret = repl_rd_secret(r, REPL_TAG_SECRET, REPL_SECRET_MAX);
        f->u.join_req.node_id = repl_rd_text(r, REPL_TAG_NODE_ID, REPL_ID_MAX);
        f->u.join_req.peer_addr = repl_rd_text(r, REPL_TAG_PEER_ADDR, 255);
        f->u.join_req.kmip_addr = repl_rd_text(r, REPL_TAG_KMIP_ADDR, 255);
        f->u.join_req.node_csr = repl_rd_bytes(r, REPL_TAG_NODE_CSR, 64 * 1024);
        f->u.join_req.server_csr = repl_rd_bytes(r, REPL_TAG_SERVER_CSR, 64 * 1024);
        break;
    case REPL_FRAME_JOIN_RESP: {
        f->u.join_resp.cluster_id = repl_rd_text(r, REPL_TAG_CLUSTER_ID, REPL_ID_MAX);
        f->u.join_resp.ca_cert = repl_rd_bytes(r, REPL_TAG_CA_CERT, 64 * 1024);
        f->u.join_resp.client_ca = repl_rd_bytes(r, REPL_TAG_CLIENT_CA, 64 * 1024);
        f->u.join_resp.node_cert = repl_rd_bytes(r, REPL_TAG_NODE_CERT, 64 * 1024);
        f->u.join_resp.server_cert = repl_rd_bytes(r, REPL_TAG_SERVER_CERT, 64 * 1024);
        f->u.join_resp.current_dsk =
            (uint32_t)repl_rd_long_range(r, REPL_TAG_CURRENT_DSK, 0, UINT32_MAX);
        read_join_entities(r, f);
        size_t n = rd_count(r, REPL_TAG_SETTING);
        repl_setting_t *v = repl_rd_array(r, n, sizeof *v);
        for (size_t i = 0; i < n && r->rc == 0; i++) {
            repl_rd_t sub;
            repl_rd_init(&sub, repl_rd_item(r, REPL_TAG_SETTING), r->arena, r->err);
            v[i].name = repl_rd_text(&sub, REPL_TAG_NAME, 255);
            v[i].value = repl_rd_text(&sub, REPL_TAG_TEXT_VALUE, REPL_TEXT_MAX);
            repl_rd_end(&sub);
            r->rc = sub.rc;
        }
        f->u.join_resp.settings = v;
        f->u.join_resp.n_settings = r->rc ? 0 : n;
        /* The issuing CA comes with its key, or not at all. */
        if (repl_rd_peek(r, REPL_TAG_CERTIFY_CA)) {
            f->u.join_resp.certify_ca = repl_rd_bytes(r, REPL_TAG_CERTIFY_CA, 64 * 1024);
            f->u.join_resp.certify_ca_key = repl_rd_secret(r, REPL_TAG_CERTIFY_CA_KEY, 64 * 1024);
            if (r->rc == 0 && f->u.join_resp.certify_ca.len == 0)
                repl_rd_fail(r, NULL, KMS_ERR_PROTO, "JOIN_RESP: empty CERTIFY_CA");
        }
        break;
    }
    case REPL_FRAME_VERIFY_REQ:
        f->u.verify_req.tenant = repl_rd_text(r, REPL_TAG_TENANT, REPL_ID_MAX);
        f->u.verify_req.per_object = repl_rd_bool(r, REPL_TAG_PER_OBJECT);
        break;
    case REPL_FRAME_VERIFY_RESP: {
        size_t n = rd_count(r, REPL_TAG_DIGEST);
        repl_digest_t *v = repl_rd_array(r, n, sizeof *v);
        for (size_t i = 0; i < n && r->rc == 0; i++) {
            repl_rd_t sub;
            const ttlv_item_t *it = repl_rd_item(r, REPL_TAG_DIGEST);
            repl_rd_init(&sub, it, r->arena, r->err);
            uint32_t k = repl_rd_enum(&sub, REPL_TAG_DIGEST_KIND);
            v[i].kind = (enum repl_digest_kind)k;
            v[i].tenant = repl_rd_text(&sub, REPL_TAG_TENANT, REPL_ID_MAX);
            v[i].id = repl_rd_text(&sub, REPL_TAG_KEY, REPL_ID_MAX);
            v[i].count = repl_rd_long_range(&sub, REPL_TAG_COUNT, 0, INT64_MAX);
            repl_bytes_t h = repl_rd_bytes(&sub, REPL_TAG_SHA256, 32);
            if (sub.rc == 0 && h.len != 32)
                repl_rd_fail(&sub, it, KMS_ERR_PROTO, "DIGEST: SHA256 must be 32 bytes");
            if (sub.rc == 0 && k != REPL_DIGEST_TENANT && k != REPL_DIGEST_OBJECT)
                repl_rd_fail(&sub, it, KMS_ERR_PROTO, "DIGEST: unknown kind %u", k);
            if (sub.rc == 0)
                memcpy(v[i].sha256, h.p, 32);
            repl_rd_end(&sub);
            r->rc = sub.rc;
        }
        f->u.verify_resp.v = v;
        f->u.verify_resp.n = r->rc ? 0 : n;
        break;
    }
    case REPL_FRAME_ERROR:
        f->u.error.code = repl_rd_int(r, REPL_TAG_ERROR_CODE);
        f->u.error.message = repl_rd_text(r, REPL_TAG_MESSAGE, REPL_TEXT_MAX);
        break;
    }
    repl_rd_end(r);
}

/* Entities v[0..n) encoded one after another (entity.c) at the end of
 * out; with `kind`, every one must be of that kind. */
static int encode_entities(const repl_entity_t *v, size_t n, int kind, kms_buf_t *out,
                           kms_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (kind && (int)v[i].kind != kind)
            return kms_error_set(err, KMS_ERR_INVAL, "entity %zu: wrong kind for this list", i);
        int rc = repl_entity_encode(&v[i], out, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Entities inside a body with items after them (JOIN_RESP, small): each
 * encoded, then decoded into the tree, which encodes it to the same
 * bytes. CHANGES and SNAPSHOT_CHUNK, which end with their entities, take
 * the encoded bytes as they are (repl_frame_encode). */
static void build_entities(repl_wr_t *w, ttlv_item_t *root, const repl_entity_t *v, size_t n,
                           int kind)
{
    kms_buf_t b;
    kms_buf_init(&b, REPL_MAX_FRAME_DEFAULT);
    for (size_t i = 0; i < n && w->rc == 0; i++) {
        ttlv_limits_t lim = {.max_depth = REPL_DEFAULT_DEPTH, .max_items = REPL_MAX_ITEMS};
        ttlv_item_t *it = NULL;
        kms_buf_reset(&b);
        int rc = encode_entities(&v[i], 1, kind, &b, w->err);
        if (rc == 0 && (rc = ttlv_decode(b.data, b.len, &lim, w->arena, &it, NULL)) != 0)
            kms_error_set(w->err, rc, "entity %zu: cannot be framed", i);
        if (rc)
            w->rc = rc;
        else
            ttlv_append(root, it);
        kms_wipe(b.data, b.len); /* it may hold a data-store key */
    }
    kms_buf_dispose_wipe(&b);
}

static void build_hwms(repl_wr_t *w, ttlv_item_t *b, const repl_hwm_t *v, size_t n, bool linked)
{
    for (size_t i = 0; i < n; i++) {
        ttlv_item_t *h = repl_wr_struct(w, b, REPL_TAG_HWM);
        repl_wr_text(w, h, REPL_TAG_NODE_ID, v[i].node_id, REPL_ID_MAX);
        repl_wr_long(w, h, REPL_TAG_SEQ, v[i].seq);
        if (linked)
            repl_wr_bool(w, h, REPL_TAG_LINKED, v[i].linked);
    }
}

static void build_body(repl_wr_t *w, ttlv_item_t *b, const repl_frame_t *f)
{
    switch (f->type) {
    case REPL_FRAME_HELLO:
        repl_wr_int(w, b, REPL_TAG_PROTOCOL_VERSION, f->u.hello.version);
        repl_wr_text(w, b, REPL_TAG_CLUSTER_ID, f->u.hello.cluster_id, REPL_ID_MAX);
        repl_wr_text(w, b, REPL_TAG_NODE_ID, f->u.hello.node_id, REPL_ID_MAX);
        repl_wr_long(w, b, REPL_TAG_WALL_MS, f->u.hello.wall_ms);
        repl_wr_text(w, b, REPL_TAG_PEER_ADDR, f->u.hello.peer_addr, 255);
        repl_wr_text(w, b, REPL_TAG_KMIP_ADDR, f->u.hello.kmip_addr, 255);
        repl_wr_long(w, b, REPL_TAG_LAST_SEQ, f->u.hello.log_head);
        break;
    case REPL_FRAME_HELLO_ACK:
        repl_wr_text(w, b, REPL_TAG_CLUSTER_ID, f->u.hello_ack.cluster_id, REPL_ID_MAX);
        repl_wr_text(w, b, REPL_TAG_NODE_ID, f->u.hello_ack.node_id, REPL_ID_MAX);
        repl_wr_long(w, b, REPL_TAG_WALL_MS, f->u.hello_ack.wall_ms);
        repl_wr_long(w, b, REPL_TAG_LINK_POS, f->u.hello_ack.link_pos);
        repl_wr_long(w, b, REPL_TAG_LAST_SEQ, f->u.hello_ack.log_head);
        build_hwms(w, b, f->u.hello_ack.hwm, f->u.hello_ack.n_hwm, true);
        break;
    case REPL_FRAME_CHANGES:
        repl_wr_long(w, b, REPL_TAG_LAST_SEQ, f->u.changes.last_seq);
        build_entities(w, b, f->u.changes.v, f->u.changes.n, 0);
        break;
    case REPL_FRAME_ACK:
        repl_wr_long(w, b, REPL_TAG_SEQ, f->u.ack.seq);
        build_hwms(w, b, f->u.ack.hwm, f->u.ack.n_hwm, true);
        break;
    case REPL_FRAME_SNAPSHOT_BEGIN:
        repl_wr_long(w, b, REPL_TAG_SNAPSHOT_SEQ, f->u.snap_begin.snapshot_seq);
        repl_wr_long(w, b, REPL_TAG_COUNT, f->u.snap_begin.objects);
        build_hwms(w, b, f->u.snap_begin.hwm, f->u.snap_begin.n_hwm, false);
        break;
    case REPL_FRAME_SNAPSHOT_CHUNK:
        build_entities(w, b, f->u.snap_chunk.v, f->u.snap_chunk.n, 0);
        break;
    case REPL_FRAME_SNAPSHOT_END:
        repl_wr_long(w, b, REPL_TAG_SNAPSHOT_SEQ, f->u.snap_end.snapshot_seq);
        repl_wr_long(w, b, REPL_TAG_COUNT, f->u.snap_end.count);
        break;
    case REPL_FRAME_PING:
    case REPL_FRAME_PONG:
        repl_wr_long(w, b, REPL_TAG_NONCE, f->u.ping.nonce);
        repl_wr_long(w, b, REPL_TAG_WALL_MS, f->u.ping.wall_ms);
        break;
    case REPL_FRAME_JOIN_REQ: {
        const kms_secret_t *s = f->u.join_req.secret;
        if (!s || s->len == 0 || s->len > REPL_SECRET_MAX) {
            repl_wr_fail(w, KMS_ERR_INVAL, "JOIN_REQ: the secret must be 1 to %d bytes",
                         REPL_SECRET_MAX);
            break;
        }
        repl_wr_text(w, b, REPL_TAG_INVITE_ID, f->u.join_req.invite_id, REPL_ID_MAX);
        repl_wr_bytes(w, b, REPL_TAG_SECRET, s->data, s->len);
        repl_wr_text(w, b, REPL_TAG_NODE_ID, f->u.join_req.node_id, REPL_ID_MAX);
        repl_wr_text(w, b, REPL_TAG_PEER_ADDR, f->u.join_req.peer_addr, 255);
        repl_wr_text(w, b, REPL_TAG_KMIP_ADDR, f->u.join_req.kmip_addr, 255);
        repl_wr_bytes(w, b, REPL_TAG_NODE_CSR, f->u.join_req.node_csr.p, f->u.join_req.node_csr.len);
        repl_wr_bytes(w, b, REPL_TAG_SERVER_CSR, f->u.join_req.server_csr.p,
                      f->u.join_req.server_csr.len);
        break;
    }
    case REPL_FRAME_JOIN_RESP:
        repl_wr_text(w, b, REPL_TAG_CLUSTER_ID, f->u.join_resp.cluster_id, REPL_ID_MAX);
        repl_wr_bytes(w, b, REPL_TAG_CA_CERT, f->u.join_resp.ca_cert.p, f->u.join_resp.ca_cert.len);
        repl_wr_bytes(w, b, REPL_TAG_CLIENT_CA, f->u.join_resp.client_ca.p,
                      f->u.join_resp.client_ca.len);
        repl_wr_bytes(w, b, REPL_TAG_NODE_CERT, f->u.join_resp.node_cert.p,
                      f->u.join_resp.node_cert.len);
        repl_wr_bytes(w, b, REPL_TAG_SERVER_CERT, f->u.join_resp.server_cert.p,
                      f->u.join_resp.server_cert.len);
        repl_wr_long(w, b, REPL_TAG_CURRENT_DSK, f->u.join_resp.current_dsk);
        build_entities(w, b, f->u.join_resp.nodes, f->u.join_resp.n_nodes, REPL_KIND_NODE);
        build_entities(w, b, f->u.join_resp.dsks, f->u.join_resp.n_dsks, REPL_KIND_DSK);
        for (size_t i = 0; i < f->u.join_resp.n_settings; i++) {
            ttlv_item_t *s = repl_wr_struct(w, b, REPL_TAG_SETTING);
            repl_wr_text(w, s, REPL_TAG_NAME, f->u.join_resp.settings[i].name, 255);
            repl_wr_text(w, s, REPL_TAG_TEXT_VALUE, f->u.join_resp.settings[i].value,
                         REPL_TEXT_MAX);
        }
        if (f->u.join_resp.certify_ca.len && f->u.join_resp.certify_ca_key) {
            const kms_secret_t *k = f->u.join_resp.certify_ca_key;
            repl_wr_bytes(w, b, REPL_TAG_CERTIFY_CA, f->u.join_resp.certify_ca.p,
                          f->u.join_resp.certify_ca.len);
            repl_wr_bytes(w, b, REPL_TAG_CERTIFY_CA_KEY, k->data, k->len);
        }
        break;
    case REPL_FRAME_VERIFY_REQ:
        repl_wr_text(w, b, REPL_TAG_TENANT, f->u.verify_req.tenant, REPL_ID_MAX);
        repl_wr_bool(w, b, REPL_TAG_PER_OBJECT, f->u.verify_req.per_object);
        break;
    case REPL_FRAME_VERIFY_RESP:
        for (size_t i = 0; i < f->u.verify_resp.n; i++) {
            const repl_digest_t *d = &f->u.verify_resp.v[i];
            ttlv_item_t *s = repl_wr_struct(w, b, REPL_TAG_DIGEST);
            repl_wr_enum(w, s, REPL_TAG_DIGEST_KIND, (uint32_t)d->kind);
            repl_wr_text(w, s, REPL_TAG_TENANT, d->tenant, REPL_ID_MAX);
            repl_wr_text(w, s, REPL_TAG_KEY, d->id, REPL_ID_MAX);
            repl_wr_long(w, s, REPL_TAG_COUNT, d->count);
            repl_wr_bytes(w, s, REPL_TAG_SHA256, d->sha256, 32);
        }
        break;
    case REPL_FRAME_ERROR:
        repl_wr_int(w, b, REPL_TAG_ERROR_CODE, f->u.error.code);
        repl_wr_text(w, b, REPL_TAG_MESSAGE, f->u.error.message, REPL_TEXT_MAX);
        break;
    default:
        repl_wr_fail(w, KMS_ERR_INVAL, "unknown frame type %d", (int)f->type);
    }
}

/* ------------------------------------------------------------- public */
repl_frame_t *repl_frame_new(enum repl_frame_type type)
{
    kms_arena_t *a = kms_arena_new(0);
    repl_frame_t *f = a ? kms_arena_alloc(a, sizeof *f) : NULL;
    if (!f) {
        kms_arena_free(a);
        return NULL;
    }
    f->type = type;
    f->arena = a;
    return f;
}

void repl_frame_free(repl_frame_t *f)
{
    if (!f)
        return;
    if (f->owns_secrets_) {
        switch (f->type) {
        case REPL_FRAME_CHANGES:
            dispose_entities(f->u.changes.v, f->u.changes.n);
            break;
        case REPL_FRAME_SNAPSHOT_CHUNK:
            dispose_entities(f->u.snap_chunk.v, f->u.snap_chunk.n);
            break;
        case REPL_FRAME_JOIN_RESP:
            dispose_entities(f->u.join_resp.dsks, f->u.join_resp.n_dsks);
            kms_secret_free(f->u.join_resp.certify_ca_key);
            break;
        case REPL_FRAME_JOIN_REQ:
            kms_secret_free(f->u.join_req.secret);
            break;
        default:
            break;
        }
    }
    kms_arena_free(f->arena); /* f itself lives in it */
}

int repl_frame_decode(const uint8_t *buf, size_t len, const repl_frame_limits_t *lim,
                      repl_frame_t **out, kms_error_t *err)
{
    size_t max_frame = lim && lim->max_frame ? lim->max_frame : REPL_MAX_FRAME_DEFAULT;
    size_t depth = lim && lim->max_depth ? lim->max_depth : REPL_DEFAULT_DEPTH;
    size_t total = 0;
    int type = 0;
    ttlv_item_t *root = NULL;
    repl_frame_t *f = NULL;
    kms_arena_t *a = NULL;
    int rc;

    *out = NULL;
    if (!buf)
        return kms_error_set(err, KMS_ERR_INVAL, "no frame");
    rc = repl_frame_header(buf, len, max_frame, &type, &total);
    if (rc == KMS_ERR_PARTIAL)
        return kms_error_set_at(err, KMS_ERR_PROTO, len, "truncated frame header");
    if (rc == KMS_ERR_NOTSUP)
        return kms_error_set_at(err, rc, 2, "protocol version %u (this node speaks %d)", buf[2],
                                REPL_PROTO_VERSION);
    if (rc == KMS_ERR_LIMIT)
        return kms_error_set_at(err, rc, 4, "frame body of %u bytes is above max_frame (%zu)",
                                (unsigned)kms_be32(buf + 4), max_frame);
    if (rc)
        return kms_error_set_at(err, rc, 0, "not a replication frame header");
    if (len != total)
        return kms_error_set_at(err, KMS_ERR_PROTO, len < total ? len : total,
                                "frame is %zu bytes, its header says %zu", len, total);

    size_t body = total - REPL_FRAME_HEADER;
    size_t items = body / 8 < REPL_MAX_ITEMS ? body / 8 : REPL_MAX_ITEMS;
    /* The tree: a copy of the values plus one node per item. */
    a = kms_arena_new(2 * body + items * (sizeof(ttlv_item_t) + 16) + 65536);
    if (!a)
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    ttlv_limits_t tl = {.max_depth = depth, .max_items = items};
    kms_error_t te;
    kms_error_clear(&te);
    rc = ttlv_decode(buf + REPL_FRAME_HEADER, body, &tl, a, &root, &te);
    if (rc) {
        if (rc == KMS_ERR_NOMEM)
            kms_error_set(err, rc, "frame needs more memory than its size allows");
        else if (te.offset == KMS_ERROR_NO_OFFSET)
            kms_error_set(err, rc, "%s", kms_error_msg(&te));
        else
            kms_error_set_at(err, rc, REPL_FRAME_HEADER + te.offset, "%s", kms_error_msg(&te));
        goto out;
    }
    if (root->tag != REPL_TAG_FRAME || root->type != TTLV_STRUCTURE) {
        rc = kms_error_set_at(err, KMS_ERR_PROTO, REPL_FRAME_HEADER,
                              "body is not a FRAME structure (tag 0x%06X)", (unsigned)root->tag);
        goto out;
    }
    f = kms_arena_alloc(a, sizeof *f);
    if (!f) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    f->type = (enum repl_frame_type)type;
    f->arena = a;
    f->owns_secrets_ = true;
    repl_rd_t r;
    repl_rd_init(&r, root, a, err);
    read_body(&r, f);
    if ((rc = r.rc) != 0) {
        repl_frame_free(f); /* frees the secrets read so far and the arena */
        return rc;
    }
    *out = f;
    return 0;
out:
    kms_arena_free(a);
    return rc;
}

/* The frame `f` with `more` (len bytes of encoded items) appended inside
 * its FRAME structure, after what f itself holds. */
static int encode_frame(const repl_frame_t *f, const uint8_t *more, size_t more_len,
                        size_t max_frame, kms_buf_t *out, kms_error_t *err)
{
    if (!f || !out)
        return kms_error_set(err, KMS_ERR_INVAL, "no frame");
    if (!repl_frame_type_name((int)f->type))
        return kms_error_set(err, KMS_ERR_INVAL, "unknown frame type %d", (int)f->type);
    if (max_frame == 0)
        max_frame = REPL_MAX_FRAME_DEFAULT;
    size_t mark = out->len;
    repl_wr_t w = {.arena = kms_arena_new(0), .err = err, .rc = 0};
    if (!w.arena)
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    ttlv_item_t *root = ttlv_new_struct(w.arena, NULL, REPL_TAG_FRAME);
    if (!root)
        repl_wr_fail(&w, KMS_ERR_NOMEM, "out of memory");
    build_body(&w, root, f);
    int rc = w.rc;
    if (rc)
        goto out;
    size_t body = ttlv_encoded_size(root);
    if (more_len > max_frame || body > max_frame - more_len || body + more_len > UINT32_MAX) {
        rc = kms_error_set(err, KMS_ERR_LIMIT, "%s frame of %zu bytes is above max_frame (%zu)",
                           repl_frame_type_name((int)f->type), body + more_len, max_frame);
        goto out;
    }
    body += more_len;
    uint8_t hdr[REPL_FRAME_HEADER] = {REPL_MAGIC0, REPL_MAGIC1, REPL_PROTO_VERSION,
                                      (uint8_t)f->type, 0, 0, 0, 0};
    kms_put_be32(hdr + 4, (uint32_t)body);
    if ((rc = kms_buf_append(out, hdr, sizeof hdr)) == 0)
        rc = ttlv_encode(root, out);
    if (rc == 0 && more_len) {
        /* FRAME's length (its header follows the frame header) covers them. */
        kms_put_be32(out->data + mark + REPL_FRAME_HEADER + 4, (uint32_t)(body - 8));
        rc = kms_buf_append(out, more, more_len);
    }
    if (rc) {
        kms_wipe(out->data + mark, out->len - mark);
        out->len = mark;
        kms_error_set(err, rc, "%s frame does not fit the output buffer",
                      repl_frame_type_name((int)f->type));
    }
out:
    kms_arena_free(w.arena); /* wiped: it may have held DSKs */
    return rc;
}

int repl_frame_encode(const repl_frame_t *f, size_t max_frame, kms_buf_t *out, kms_error_t *err)
{
    const repl_entity_t *v = NULL;
    size_t n = 0;
    if (f && f->type == REPL_FRAME_CHANGES) {
        v = f->u.changes.v;
        n = f->u.changes.n;
    } else if (f && f->type == REPL_FRAME_SNAPSHOT_CHUNK) {
        v = f->u.snap_chunk.v;
        n = f->u.snap_chunk.n;
    }
    if (n == 0)
        return encode_frame(f, NULL, 0, max_frame, out, err);
    /* The entities end the body: encoded straight into bytes, after the
     * frame's other items. */
    repl_frame_t g = *f;
    kms_buf_t ents;
    kms_buf_init(&ents, max_frame ? max_frame : REPL_MAX_FRAME_DEFAULT);
    if (g.type == REPL_FRAME_CHANGES)
        g.u.changes.n = 0;
    else
        g.u.snap_chunk.n = 0;
    int rc = encode_entities(v, n, 0, &ents, err);
    if (rc == 0)
        rc = encode_frame(&g, ents.data, ents.len, max_frame, out, err);
    kms_buf_dispose_wipe(&ents);
    return rc;
}

int repl_frame_encode_changes(int64_t last_seq, const uint8_t *ents, size_t len, size_t max_frame,
                              kms_buf_t *out, kms_error_t *err)
{
    repl_frame_t f = {.type = REPL_FRAME_CHANGES};
    f.u.changes.last_seq = last_seq;
    return encode_frame(&f, ents, len, max_frame, out, err);
}
