/* tests/unit/test_repl_frame.c: the replication frame codec. Every frame
 * type round-trips (fields checked, bytes re-encode identically); the
 * decoder refuses bad magic, another version, a body above max_frame
 * (from the 8 header bytes alone, before any allocation), truncation at
 * every length, wrong item types, unknown, missing, extra and misordered
 * fields, NULs and oversize text, and nesting beyond its depth limit.
 * With REPL_CORPUS_DIR set it writes each sample frame there as a seed for
 * the fuzz target (tests/fuzz/corpus/repl_frame). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "replication/repl_int.h"

static const uint8_t V_ALG[] = {0x42, 0x00, 0x28, 0x05, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0};
static const uint8_t V_NAME[] = {0x42, 0x00, 0x55, 0x07, 0, 0, 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0};
static const uint8_t BLOB[] = {0x00, 0xff, 0x10, 0x00, 0x80};
static const uint8_t DSK_BYTES[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static store_attr_t g_attrs[2];
static repl_clock_t g_clocks[2];
static repl_entity_t g_ents[6];
static kms_secret_t *g_dsk;

static void sample_entities(void)
{
    memset(g_ents, 0, sizeof g_ents);
    g_attrs[0] = (store_attr_t){.name = "Cryptographic Algorithm", .index = 0, .value = V_ALG,
                                .value_len = sizeof V_ALG, .nkey = 3, .has_nkey = true};
    g_attrs[1] = (store_attr_t){.name = "Name", .index = 1, .value = V_NAME,
                                .value_len = sizeof V_NAME, .skey = "k", .nkey = 0,
                                .has_nkey = false};
    g_clocks[0] = (repl_clock_t){.name = "", .hlc = 1000 << 16, .node = "a"};
    g_clocks[1] = (repl_clock_t){.name = "Name", .hlc = (1001 << 16) | 3, .node = "b"};
    repl_entity_t *o = &g_ents[0];
    o->kind = REPL_KIND_OBJECT;
    o->seq = 17;
    o->key = "6f1c0e0a-0000-4000-8000-000000000001";
    o->origin = "a";
    o->origin_seq = 12;
    o->hlc = (1001 << 16) | 3;
    o->obj.object_type = 2;
    o->obj.state = 2;
    strcpy(o->obj.tenant, "default");
    o->obj.created_us = 1700000000000000;
    o->obj.updated_us = 1700000000000100;
    o->obj.archived = true;
    o->obj.sealed.dsk_id = 0xfffffff0u;
    o->obj.sealed.blob = BLOB;
    o->obj.sealed.len = sizeof BLOB;
    o->obj.attrs = g_attrs;
    o->obj.n_attrs = 2;
    o->obj.sealed.gen = 4;
    o->clocks = g_clocks;
    o->n_clocks = 2;
    repl_entity_t *t = &g_ents[1];
    t->kind = REPL_KIND_TENANT;
    t->seq = 18;
    t->key = "acme";
    t->origin = "b";
    t->origin_seq = 3;
    t->hlc = 5;
    t->tenant_created_us = 1234;
    repl_entity_t *c = &g_ents[2];
    c->kind = REPL_KIND_CLIENT;
    c->seq = 19;
    c->key = "vcenter-1";
    c->origin = "a";
    c->origin_seq = 13;
    c->hlc = 6;
    strcpy(c->client.tenant, "acme");
    strcpy(c->client.role, "client");
    strcpy(c->client.kind, "cert");
    memset(c->client.cert_sha256, 'a', 64);
    c->client.created_us = 99;
    repl_entity_t *d = &g_ents[3];
    d->kind = REPL_KIND_DSK;
    d->seq = 20;
    d->key = "3735928559";
    d->origin = "a";
    d->origin_seq = 14;
    d->hlc = 7;
    d->dsk_id = 3735928559u;
    d->dsk = g_dsk;
    d->dsk_current = true;
    repl_entity_t *n = &g_ents[4];
    n->kind = REPL_KIND_NODE;
    n->seq = 21;
    n->key = "node-c";
    n->origin = "a";
    n->origin_seq = 15;
    n->hlc = 8;
    strcpy(n->node.peer_addr, "10.0.0.3:5697");
    strcpy(n->node.kmip_addr, "10.0.0.3:5696");
    memset(n->node.cert_sha256, 'f', 64);
    n->node.added_hlc = 8;
    n->node.removed = true;
    repl_entity_t *x = &g_ents[5];
    x->kind = REPL_KIND_OBJECT;
    x->seq = 22;
    x->key = "gone";
    x->origin = "b";
    x->origin_seq = 4;
    x->hlc = 9;
    x->deleted = true;
}

static repl_hwm_t g_hwm[2] = {{"a", 15, false}, {"b", 4, false}};
static repl_hwm_t g_progress[2] = {{"node-a", 977, true}, {"node-c", 12, false}};
static repl_setting_t g_settings[1] = {{"sync_acks", "1"}};
static repl_digest_t g_digests[2];
static uint8_t g_secret_bytes[16] = "0123456789abcdef";

/* A fully populated frame of each type (borrowing the globals). */
static repl_frame_t *sample(enum repl_frame_type t)
{
    repl_frame_t *f = repl_frame_new(t);
    assert_non_null(f);
    switch (t) {
    case REPL_FRAME_HELLO:
        f->u.hello.version = REPL_PROTO_VERSION;
        f->u.hello.cluster_id = "00112233445566778899aabbccddeeff";
        f->u.hello.node_id = "node-a";
        f->u.hello.wall_ms = 1700000000123;
        f->u.hello.peer_addr = "127.0.0.1:5697";
        f->u.hello.kmip_addr = "127.0.0.1:5696";
        f->u.hello.log_head = 977;
        break;
    case REPL_FRAME_HELLO_ACK:
        f->u.hello_ack.cluster_id = "00112233445566778899aabbccddeeff";
        f->u.hello_ack.node_id = "node-b";
        f->u.hello_ack.wall_ms = 1700000000456;
        f->u.hello_ack.link_pos = 4242;
        f->u.hello_ack.log_head = 5150;
        f->u.hello_ack.hwm = g_progress;
        f->u.hello_ack.n_hwm = 2;
        break;
    case REPL_FRAME_CHANGES:
        f->u.changes.last_seq = 22;
        f->u.changes.v = g_ents;
        f->u.changes.n = 6;
        break;
    case REPL_FRAME_ACK:
        f->u.ack.seq = 22;
        f->u.ack.hwm = g_progress;
        f->u.ack.n_hwm = 2;
        break;
    case REPL_FRAME_SNAPSHOT_BEGIN:
        f->u.snap_begin.snapshot_seq = 100;
        f->u.snap_begin.objects = 100000;
        f->u.snap_begin.hwm = g_hwm;
        f->u.snap_begin.n_hwm = 2;
        break;
    case REPL_FRAME_SNAPSHOT_CHUNK:
        f->u.snap_chunk.v = g_ents;
        f->u.snap_chunk.n = 2;
        break;
    case REPL_FRAME_SNAPSHOT_END:
        f->u.snap_end.snapshot_seq = 100;
        f->u.snap_end.count = 100004;
        break;
    case REPL_FRAME_PING:
    case REPL_FRAME_PONG:
        f->u.ping.nonce = -5;
        f->u.ping.wall_ms = 1700000000789;
        break;
    case REPL_FRAME_JOIN_REQ:
        f->u.join_req.invite_id = "inv-1";
        f->u.join_req.secret = kms_secret_dup(g_secret_bytes, sizeof g_secret_bytes);
        f->u.join_req.node_id = "node-d";
        f->u.join_req.peer_addr = "h:1";
        f->u.join_req.kmip_addr = "h:2";
        f->u.join_req.node_csr = (repl_bytes_t){(const uint8_t *)"CSR1", 4};
        f->u.join_req.server_csr = (repl_bytes_t){(const uint8_t *)"CSR22", 5};
        break;
    case REPL_FRAME_JOIN_RESP:
        f->u.join_resp.cluster_id = "c1";
        f->u.join_resp.ca_cert = (repl_bytes_t){(const uint8_t *)"CA", 2};
        f->u.join_resp.client_ca = (repl_bytes_t){(const uint8_t *)"CCA", 3};
        f->u.join_resp.node_cert = (repl_bytes_t){(const uint8_t *)"NC", 2};
        f->u.join_resp.server_cert = (repl_bytes_t){NULL, 0};
        f->u.join_resp.current_dsk = 3735928559u;
        f->u.join_resp.nodes = &g_ents[4];
        f->u.join_resp.n_nodes = 1;
        f->u.join_resp.dsks = &g_ents[3];
        f->u.join_resp.n_dsks = 1;
        f->u.join_resp.settings = g_settings;
        f->u.join_resp.n_settings = 1;
        f->u.join_resp.certify_ca = (repl_bytes_t){(const uint8_t *)"ICA", 3};
        f->u.join_resp.certify_ca_key = kms_secret_dup(DSK_BYTES, 32);
        break;
    case REPL_FRAME_VERIFY_REQ:
        f->u.verify_req.tenant = "acme";
        f->u.verify_req.per_object = true;
        break;
    case REPL_FRAME_VERIFY_RESP:
        g_digests[0] = (repl_digest_t){.kind = REPL_DIGEST_TENANT, .tenant = "acme", .id = "",
                                       .count = 3};
        g_digests[1] = (repl_digest_t){.kind = REPL_DIGEST_OBJECT, .tenant = "acme", .id = "o1",
                                       .count = 1};
        memset(g_digests[0].sha256, 0xab, 32);
        memset(g_digests[1].sha256, 0xcd, 32);
        f->u.verify_resp.v = g_digests;
        f->u.verify_resp.n = 2;
        break;
    case REPL_FRAME_ERROR:
        f->u.error.code = REPL_ERROR_SKEW;
        f->u.error.message = "clock skew 7000 ms";
        break;
    }
    return f;
}

static void free_sample(repl_frame_t *f)
{
    if (f->type == REPL_FRAME_JOIN_REQ)
        kms_secret_free(f->u.join_req.secret); /* built frames borrow: the test owns it */
    if (f->type == REPL_FRAME_JOIN_RESP)
        kms_secret_free(f->u.join_resp.certify_ca_key);
    repl_frame_free(f);
}

static void encode(const repl_frame_t *f, kms_buf_t *b)
{
    kms_error_t err;
    kms_buf_init(b, 1 << 24);
    int rc = repl_frame_encode(f, 0, b, &err);
    if (rc)
        fail_msg("encode %s: %s", repl_frame_type_name(f->type), kms_error_msg(&err));
}

static int decode(const uint8_t *p, size_t n, repl_frame_t **f, kms_error_t *err)
{
    repl_frame_limits_t lim = {.max_frame = 1 << 20};
    kms_error_clear(err);
    return repl_frame_decode(p, n, &lim, f, err);
}

static int setup(void **state)
{
    (void)state;
    g_dsk = kms_secret_dup(DSK_BYTES, sizeof DSK_BYTES);
    sample_entities();
    return g_dsk ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kms_secret_free(g_dsk);
    return 0;
}

static void write_seed(const char *name, const kms_buf_t *b)
{
    const char *dir = getenv("REPL_CORPUS_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b->data, 1, b->len, fp), b->len);
    fclose(fp);
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
#define XX(v, name)                                                                   \
    do {                                                                              \
        repl_frame_t *f = sample(REPL_FRAME_##name), *g = NULL;                      \
        kms_buf_t b1, b2;                                                             \
        kms_error_t err;                                                              \
        encode(f, &b1);                                                               \
        assert_int_equal(b1.data[0], 'K');                                            \
        assert_int_equal(b1.data[1], 'R');                                            \
        assert_int_equal(b1.data[2], 1);                                              \
        assert_int_equal(b1.data[3], v);                                              \
        assert_int_equal(kms_be32(b1.data + 4), b1.len - 8);                          \
        int rc = decode(b1.data, b1.len, &g, &err);                                   \
        if (rc)                                                                       \
            fail_msg("decode " #name ": %s at %zu", kms_error_msg(&err), err.offset); \
        assert_int_equal(g->type, v);                                                 \
        encode(g, &b2);                                                               \
        assert_int_equal(b1.len, b2.len);                                             \
        assert_memory_equal(b1.data, b2.data, b1.len);                                \
        write_seed(#name, &b1);                                                       \
        repl_frame_free(g);                                                           \
        free_sample(f);                                                               \
        kms_buf_dispose_wipe(&b1);                                                    \
        kms_buf_dispose_wipe(&b2);                                                    \
    } while (0);
    REPL_FRAME_TYPES(XX)
#undef XX
}

/* Decode a sample of type t and hand it over. */
static repl_frame_t *through_wire(enum repl_frame_type t)
{
    repl_frame_t *f = sample(t), *g = NULL;
    kms_buf_t b;
    kms_error_t err;
    encode(f, &b);
    assert_int_equal(decode(b.data, b.len, &g, &err), 0);
    kms_buf_dispose_wipe(&b);
    free_sample(f);
    return g;
}

static void test_fields_survive(void **state)
{
    (void)state;
    repl_frame_t *g = through_wire(REPL_FRAME_HELLO);
    assert_string_equal(g->u.hello.cluster_id, "00112233445566778899aabbccddeeff");
    assert_string_equal(g->u.hello.node_id, "node-a");
    assert_int_equal(g->u.hello.wall_ms, 1700000000123);
    assert_string_equal(g->u.hello.kmip_addr, "127.0.0.1:5696");
    assert_int_equal(g->u.hello.log_head, 977);
    repl_frame_free(g);
    g = through_wire(REPL_FRAME_HELLO_ACK);
    assert_int_equal(g->u.hello_ack.link_pos, 4242);
    assert_int_equal(g->u.hello_ack.log_head, 5150);
    assert_int_equal(g->u.hello_ack.n_hwm, 2);
    assert_string_equal(g->u.hello_ack.hwm[0].node_id, "node-a");
    assert_int_equal(g->u.hello_ack.hwm[0].seq, 977);
    assert_true(g->u.hello_ack.hwm[0].linked);
    assert_false(g->u.hello_ack.hwm[1].linked);
    repl_frame_free(g);
    g = through_wire(REPL_FRAME_ACK);
    assert_int_equal(g->u.ack.seq, 22);
    assert_int_equal(g->u.ack.n_hwm, 2);
    assert_string_equal(g->u.ack.hwm[1].node_id, "node-c");
    assert_int_equal(g->u.ack.hwm[1].seq, 12);
    assert_false(g->u.ack.hwm[1].linked);
    repl_frame_free(g);

    g = through_wire(REPL_FRAME_CHANGES);
    assert_int_equal(g->u.changes.last_seq, 22);
    assert_int_equal(g->u.changes.n, 6);
    const repl_entity_t *o = &g->u.changes.v[0];
    assert_int_equal(o->kind, REPL_KIND_OBJECT);
    assert_string_equal(o->obj.id, "6f1c0e0a-0000-4000-8000-000000000001");
    assert_string_equal(o->obj.tenant, "default");
    assert_int_equal(o->obj.sealed.dsk_id, 0xfffffff0u);
    assert_true(o->obj.archived);
    assert_int_equal(o->obj.sealed.len, sizeof BLOB);
    assert_memory_equal(o->obj.sealed.blob, BLOB, sizeof BLOB);
    assert_int_equal(o->obj.n_attrs, 2);
    assert_string_equal(o->obj.attrs[0].name, "Cryptographic Algorithm");
    assert_true(o->obj.attrs[0].has_nkey);
    assert_null(o->obj.attrs[0].skey);
    assert_int_equal(o->obj.attrs[0].nkey, 3);
    assert_memory_equal(o->obj.attrs[1].value, V_NAME, sizeof V_NAME);
    assert_string_equal(o->obj.attrs[1].skey, "k");
    assert_int_equal(o->obj.attrs[1].index, 1);
    assert_int_equal(o->obj.sealed.gen, 4);
    assert_int_equal(o->n_clocks, 2);
    assert_string_equal(o->clocks[1].name, "Name");
    assert_int_equal(o->clocks[1].hlc, (1001 << 16) | 3);
    assert_string_equal(o->clocks[1].node, "b");
    assert_int_equal(o->obj.version, 0);
    const repl_entity_t *c = &g->u.changes.v[2];
    assert_string_equal(c->client.name, "vcenter-1");
    assert_string_equal(c->client.tenant, "acme");
    assert_int_equal(strlen(c->client.cert_sha256), 64);
    const repl_entity_t *d = &g->u.changes.v[3];
    assert_int_equal(d->dsk_id, 3735928559u);
    assert_non_null(d->dsk);
    assert_int_equal(d->dsk->len, 32);
    assert_memory_equal(d->dsk->data, DSK_BYTES, 32);
    assert_true(d->dsk_current);
    const repl_entity_t *n = &g->u.changes.v[4];
    assert_string_equal(n->node.node_id, "node-c");
    assert_true(n->node.removed);
    const repl_entity_t *x = &g->u.changes.v[5];
    assert_true(x->deleted);
    assert_string_equal(x->key, "gone");
    repl_frame_free(g);

    g = through_wire(REPL_FRAME_JOIN_RESP);
    assert_int_equal(g->u.join_resp.n_nodes, 1);
    assert_int_equal(g->u.join_resp.n_dsks, 1);
    assert_memory_equal(g->u.join_resp.dsks[0].dsk->data, DSK_BYTES, 32);
    assert_int_equal(g->u.join_resp.server_cert.len, 0);
    assert_string_equal(g->u.join_resp.settings[0].value, "1");
    assert_memory_equal(g->u.join_resp.certify_ca.p, "ICA", 3);
    assert_memory_equal(g->u.join_resp.certify_ca_key->data, DSK_BYTES, 32);
    repl_frame_free(g);

    g = through_wire(REPL_FRAME_JOIN_REQ);
    assert_int_equal(g->u.join_req.secret->len, 16);
    assert_memory_equal(g->u.join_req.secret->data, g_secret_bytes, 16);
    repl_frame_free(g);

    g = through_wire(REPL_FRAME_SNAPSHOT_BEGIN);
    assert_int_equal(g->u.snap_begin.n_hwm, 2);
    assert_string_equal(g->u.snap_begin.hwm[1].node_id, "b");
    assert_int_equal(g->u.snap_begin.hwm[1].seq, 4);
    repl_frame_free(g);

    g = through_wire(REPL_FRAME_VERIFY_RESP);
    assert_int_equal(g->u.verify_resp.v[1].kind, REPL_DIGEST_OBJECT);
    assert_string_equal(g->u.verify_resp.v[1].id, "o1");
    assert_int_equal(g->u.verify_resp.v[0].sha256[31], 0xab);
    repl_frame_free(g);
}

static void test_header_rejections(void **state)
{
    (void)state;
    uint8_t h[8] = {'K', 'R', 1, REPL_FRAME_ACK, 0, 0, 0, 16};
    int type = 0;
    size_t total = 0;
    assert_int_equal(repl_frame_header(h, 7, 1 << 20, &type, &total), KMS_ERR_PARTIAL);
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), 0);
    assert_int_equal(type, REPL_FRAME_ACK);
    assert_int_equal(total, 24);
    h[0] = 'X';
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_PROTO);
    h[0] = 'K';
    h[2] = 2;
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_NOTSUP);
    h[2] = 1;
    h[3] = 0;
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_PROTO);
    h[3] = 15;
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_PROTO);
    h[3] = REPL_FRAME_ACK;
    h[7] = 12; /* not a multiple of 8 */
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_PROTO);

    /* Oversize: the 8 header bytes alone (no body follows in memory) are
     * refused by both the header check and the decoder, so nothing is
     * allocated or read for the 1 GiB the header announces. */
    kms_put_be32(h + 4, 1u << 30);
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_LIMIT);
    repl_frame_t *f = NULL;
    kms_error_t err;
    assert_int_equal(decode(h, 8, &f, &err), KMS_ERR_LIMIT);
    assert_null(f);
    assert_int_equal(err.offset, 4);
    assert_non_null(strstr(err.msg, "max_frame"));
    kms_put_be32(h + 4, (1u << 20) + 8);
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), KMS_ERR_LIMIT);
    kms_put_be32(h + 4, 1u << 20);
    assert_int_equal(repl_frame_header(h, 8, 1 << 20, &type, &total), 0);

    /* Another version: decode says so (the link answers ERROR VERSION). */
    h[2] = 9;
    assert_int_equal(decode(h, 8, &f, &err), KMS_ERR_NOTSUP);
    assert_non_null(strstr(err.msg, "version 9"));
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    repl_frame_t *f = sample(REPL_FRAME_CHANGES), *g = NULL;
    kms_buf_t b;
    kms_error_t err;
    encode(f, &b);
    for (size_t n = 0; n < b.len; n++) {
        int rc = decode(b.data, n, &g, &err);
        if (rc != KMS_ERR_PROTO)
            fail_msg("truncated to %zu of %zu: rc %d", n, b.len, rc);
        assert_null(g);
        assert_true(err.offset <= n);
    }
    /* Trailing bytes after the frame are not part of it either. */
    uint8_t *big = malloc(b.len + 8);
    memcpy(big, b.data, b.len);
    memset(big + b.len, 0, 8);
    assert_int_equal(decode(big, b.len + 8, &g, &err), KMS_ERR_PROTO);
    /* A body whose header claims less than the TTLV structure inside. */
    kms_put_be32(big + 4, (uint32_t)(b.len - 8 - 8));
    assert_int_equal(decode(big, b.len - 8, &g, &err), KMS_ERR_PROTO);
    free(big);
    free_sample(f);
    kms_buf_dispose_wipe(&b);
}

/* Frame of `type` whose body is the tree `root`, encoded raw. */
static void raw_frame(int type, const ttlv_item_t *root, kms_buf_t *b)
{
    uint8_t h[8] = {'K', 'R', 1, (uint8_t)type, 0, 0, 0, 0};
    kms_buf_init(b, 1 << 20);
    kms_put_be32(h + 4, (uint32_t)ttlv_encoded_size(root));
    assert_int_equal(kms_buf_append(b, h, 8), 0);
    assert_int_equal(ttlv_encode(root, b), 0);
}

static void expect_reject(int type, const ttlv_item_t *root, int code, const char *msg_part)
{
    kms_buf_t b;
    repl_frame_t *g = NULL;
    kms_error_t err;
    raw_frame(type, root, &b);
    int rc = decode(b.data, b.len, &g, &err);
    if (rc != code || !strstr(err.msg, msg_part))
        fail_msg("wanted %d '%s', got %d '%s'", code, msg_part, rc, err.msg);
    assert_null(g);
    assert_true(err.offset == KMS_ERROR_NO_OFFSET || err.offset < b.len);
    kms_buf_dispose(&b);
}

static ttlv_item_t *hello_body(kms_arena_t *a, uint32_t node_tag, bool node_as_int)
{
    ttlv_item_t *r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_int(a, r, REPL_TAG_PROTOCOL_VERSION, 1);
    ttlv_new_textz(a, r, REPL_TAG_CLUSTER_ID, "c");
    if (node_as_int)
        ttlv_new_int(a, r, node_tag, 7);
    else
        ttlv_new_textz(a, r, node_tag, "n");
    ttlv_new_long(a, r, REPL_TAG_WALL_MS, 1);
    ttlv_new_textz(a, r, REPL_TAG_PEER_ADDR, "p:1");
    ttlv_new_textz(a, r, REPL_TAG_KMIP_ADDR, "k:1");
    ttlv_new_long(a, r, REPL_TAG_LAST_SEQ, 0);
    return r;
}

static void test_body_rejections(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    /* The sane body is accepted, so each rejection below is its own. */
    {
        kms_buf_t b;
        repl_frame_t *g = NULL;
        kms_error_t err;
        raw_frame(REPL_FRAME_HELLO, hello_body(a, REPL_TAG_NODE_ID, false), &b);
        assert_int_equal(decode(b.data, b.len, &g, &err), 0);
        repl_frame_free(g);
        kms_buf_dispose(&b);
    }
    expect_reject(REPL_FRAME_HELLO, hello_body(a, REPL_TAG_NODE_ID, true), KMS_ERR_PROTO,
                  "NODE_ID: wrong item type Integer");
    expect_reject(REPL_FRAME_HELLO, hello_body(a, REPL_TAG_PEER_ADDR, false), KMS_ERR_PROTO,
                  "expected NODE_ID");
    /* The body of another frame type. */
    expect_reject(REPL_FRAME_ACK, hello_body(a, REPL_TAG_NODE_ID, false), KMS_ERR_PROTO,
                  "expected SEQ");
    /* Missing trailing field. */
    ttlv_item_t *r = hello_body(a, REPL_TAG_NODE_ID, false);
    ttlv_remove(r->last);
    expect_reject(REPL_FRAME_HELLO, r, KMS_ERR_PROTO, "missing LAST_SEQ");
    /* Extra field. */
    r = hello_body(a, REPL_TAG_NODE_ID, false);
    ttlv_new_long(a, r, REPL_TAG_SEQ, 1);
    expect_reject(REPL_FRAME_HELLO, r, KMS_ERR_PROTO, "unexpected SEQ");
    /* A tag of the extension range that is not ours. */
    r = hello_body(a, REPL_TAG_NODE_ID, false);
    ttlv_new_long(a, r, 0x5455ff, 1);
    expect_reject(REPL_FRAME_HELLO, r, KMS_ERR_PROTO, "unexpected ?");
    /* A KMIP tag as the root. */
    r = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_new_long(a, r, REPL_TAG_SEQ, 1);
    expect_reject(REPL_FRAME_ACK, r, KMS_ERR_PROTO, "not a FRAME");
    /* NUL inside a text (the TTLV decoder refuses it), and text above its size. */
    r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_int(a, r, REPL_TAG_ERROR_CODE, 1);
    ttlv_new_text(a, r, REPL_TAG_MESSAGE, "a\0b", 3);
    expect_reject(REPL_FRAME_ERROR, r, KMS_ERR_PROTO, "invalid UTF-8 (byte 0x00)");
    char longid[80];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    r = hello_body(a, REPL_TAG_NODE_ID, false);
    ttlv_remove(r->first->next->next);
    ttlv_item_t *id = ttlv_new_textz(a, NULL, REPL_TAG_NODE_ID, longid);
    /* rebuild in order: version, cluster, NODE_ID(long), ... */
    r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_int(a, r, REPL_TAG_PROTOCOL_VERSION, 1);
    ttlv_new_textz(a, r, REPL_TAG_CLUSTER_ID, "c");
    ttlv_append(r, id);
    ttlv_new_long(a, r, REPL_TAG_WALL_MS, 1);
    ttlv_new_textz(a, r, REPL_TAG_PEER_ADDR, "p:1");
    ttlv_new_textz(a, r, REPL_TAG_KMIP_ADDR, "k:1");
    expect_reject(REPL_FRAME_HELLO, r, KMS_ERR_PROTO, "NODE_ID: longer than 63 bytes");
    /* Negative sequence numbers. */
    r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_long(a, r, REPL_TAG_SEQ, -1);
    expect_reject(REPL_FRAME_ACK, r, KMS_ERR_PROTO, "SEQ: -1 out of range");
    /* An entity of an unknown kind, and a DSK with no key bytes. */
    r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_long(a, r, REPL_TAG_LAST_SEQ, 1);
    ttlv_item_t *e = ttlv_new_struct(a, r, REPL_TAG_ENTITY);
    ttlv_new_enum(a, e, REPL_TAG_KIND, 9);
    ttlv_new_long(a, e, REPL_TAG_SEQ, 1);
    ttlv_new_textz(a, e, REPL_TAG_KEY, "k");
    ttlv_new_textz(a, e, REPL_TAG_ORIGIN, "a");
    ttlv_new_long(a, e, REPL_TAG_ORIGIN_SEQ, 1);
    ttlv_new_long(a, e, REPL_TAG_HLC, 1);
    ttlv_new_bool(a, e, REPL_TAG_DELETED, true);
    expect_reject(REPL_FRAME_CHANGES, r, KMS_ERR_PROTO, "unknown kind 9");
    e->first->v.i32 = REPL_KIND_DSK;
    e->last->v.b = false;
    ttlv_new_long(a, e, REPL_TAG_DSK_ID, 5);
    ttlv_new_bytes(a, e, REPL_TAG_KEY_BYTES, "", 0);
    ttlv_new_bool(a, e, REPL_TAG_CURRENT, false);
    expect_reject(REPL_FRAME_CHANGES, r, KMS_ERR_PROTO, "KEY_BYTES: must be 1 to 64 bytes");
    kms_arena_free(a);
}

/* A well-formed TTLV nest deeper than the decoder's limit: refused by the
 * TTLV decoder (LIMIT), never recursed into without bound. */
static void test_too_deep(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME), *p = r;
    for (int i = 0; i < 12; i++)
        p = ttlv_new_struct(a, p, REPL_TAG_ENTITY);
    expect_reject(REPL_FRAME_CHANGES, r, KMS_ERR_LIMIT, "nesting deeper");
    kms_arena_free(a);
}

/* Secrets: a decoded DSK is in a kms_secret_t and the decoder's tree copy
 * is wiped; encoding refuses a DSK entity without a key. */
static void test_secrets(void **state)
{
    (void)state;
    repl_frame_t *f = repl_frame_new(REPL_FRAME_CHANGES);
    repl_entity_t e = g_ents[3];
    e.dsk = NULL;
    f->u.changes.v = &e;
    f->u.changes.n = 1;
    kms_buf_t b;
    kms_error_t err;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), KMS_ERR_INVAL);
    assert_int_equal(b.len, 0);
    e.dsk = g_dsk;
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), 0);
    repl_frame_t *g = NULL;
    assert_int_equal(decode(b.data, b.len, &g, &err), 0);
    /* The key arrives in the secret type, byte for byte. */
    assert_memory_equal(g->u.changes.v[0].dsk->data, DSK_BYTES, 32);
    repl_frame_free(g);
    repl_frame_free(f);
    kms_buf_dispose_wipe(&b);
}

static void test_encode_limits(void **state)
{
    (void)state;
    repl_frame_t *f = sample(REPL_FRAME_CHANGES);
    kms_buf_t b;
    kms_error_t err;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 64, &b, &err), KMS_ERR_LIMIT);
    assert_int_equal(b.len, 0);
    kms_buf_dispose(&b);
    kms_buf_init(&b, 100); /* the output buffer's own cap */
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), KMS_ERR_LIMIT);
    assert_int_equal(b.len, 0);
    kms_buf_dispose(&b);
    /* A frame that decodes under one max_frame is refused under a smaller. */
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), 0);
    repl_frame_t *g = NULL;
    repl_frame_limits_t lim = {.max_frame = b.len - 8 - 8};
    assert_int_equal(repl_frame_decode(b.data, b.len, &lim, &g, &err), KMS_ERR_LIMIT);
    kms_buf_dispose(&b);
    free_sample(f);
}

/* Entities encoded one by one (and shared by links through the cache of
 * encoded entities) make the same CHANGES frame as encoding it whole. */
static void test_changes_from_encoded_entities(void **state)
{
    (void)state;
    repl_frame_t *f = sample(REPL_FRAME_CHANGES);
    kms_buf_t whole, ents, built;
    kms_error_t err;
    encode(f, &whole);
    kms_buf_init(&ents, 1 << 20);
    kms_buf_init(&built, 1 << 20);
    repl_encache_t *c = repl_encache_new(1 << 20);
    assert_true(f->u.changes.n > 2);
    for (size_t i = 0; i < f->u.changes.n; i++) {
        size_t at = ents.len;
        assert_int_equal(repl_entity_encode(&f->u.changes.v[i], &ents, &err), 0);
        repl_encache_put(c, f->u.changes.v[i].seq, ents.data + at, ents.len - at);
    }
    assert_int_equal(repl_frame_encode_changes(f->u.changes.last_seq, ents.data, ents.len, 0,
                                               &built, &err), 0);
    assert_int_equal(built.len, whole.len);
    assert_memory_equal(built.data, whole.data, whole.len);
    /* the same from the cache, in the same order */
    kms_buf_t again;
    kms_buf_init(&again, 1 << 20);
    for (size_t i = 0; i < f->u.changes.n; i++)
        assert_int_equal(repl_encache_get(c, f->u.changes.v[i].seq, &again), 0);
    assert_int_equal(again.len, ents.len);
    assert_memory_equal(again.data, ents.data, ents.len);
    assert_int_equal(repl_encache_get(c, 999999, &again), KMS_ERR_NOTFOUND);
    /* an empty frame and the limits */
    kms_buf_reset(&built);
    assert_int_equal(repl_frame_encode_changes(5, NULL, 0, 0, &built, &err), 0);
    repl_frame_t *g = NULL;
    assert_int_equal(decode(built.data, built.len, &g, &err), 0);
    assert_int_equal(g->u.changes.last_seq, 5);
    assert_int_equal(g->u.changes.n, 0);
    repl_frame_free(g);
    kms_buf_reset(&built);
    assert_int_equal(repl_frame_encode_changes(5, ents.data, ents.len, ents.len, &built, &err),
                     KMS_ERR_LIMIT);
    assert_int_equal(built.len, 0);
    /* the cache keeps to its bytes, oldest dropped first */
    repl_encache_t *small = repl_encache_new(4096);
    uint8_t blob[512];
    memset(blob, 7, sizeof blob);
    for (int64_t seq = 1; seq <= 64; seq++)
        repl_encache_put(small, seq, blob, sizeof blob);
    kms_buf_reset(&again);
    assert_int_equal(repl_encache_get(small, 1, &again), KMS_ERR_NOTFOUND);
    assert_int_equal(repl_encache_get(small, 64, &again), 0);
    assert_int_equal(again.len, sizeof blob);
    repl_encache_free(small);
    repl_encache_free(c);
    kms_buf_dispose_wipe(&again);
    kms_buf_dispose_wipe(&built);
    kms_buf_dispose_wipe(&ents);
    kms_buf_dispose_wipe(&whole);
    free_sample(f);
}

/* An entity that cannot be encoded leaves the buffer as it was (no half
 * entity: it may hold a data-store key), whatever field fails. */
static void test_entity_encode_errors(void **state)
{
    (void)state;
    kms_buf_t b;
    kms_error_t err;
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(kms_buf_append(&b, "prefix!!", 8), 0);
    repl_entity_t e = g_ents[0];
    store_attr_t at[2] = {g_attrs[0], g_attrs[1]};
    e.obj.attrs = at;
    at[1].name = longname; /* the second attribute: bytes were written before */
    assert_int_equal(repl_entity_encode(&e, &b, &err), KMS_ERR_INVAL);
    assert_non_null(strstr(kms_error_msg(&err), "NAME: longer than 255 bytes"));
    assert_int_equal(b.len, 8);
    at[1] = g_attrs[1];
    at[1].index = (uint32_t)INT32_MAX + 1;
    assert_int_equal(repl_entity_encode(&e, &b, &err), KMS_ERR_INVAL);
    assert_int_equal(b.len, 8);
    e = g_ents[3];
    e.dsk = NULL;
    assert_int_equal(repl_entity_encode(&e, &b, &err), KMS_ERR_INVAL);
    assert_int_equal(b.len, 8);
    e.kind = (enum repl_kind)9;
    assert_int_equal(repl_entity_encode(&e, &b, &err), KMS_ERR_INVAL);
    assert_int_equal(b.len, 8);
    /* the buffer's own cap, reached halfway through the entity */
    e = g_ents[0];
    kms_buf_t small;
    kms_buf_init(&small, 200);
    assert_int_equal(repl_entity_encode(&e, &small, &err), KMS_ERR_LIMIT);
    assert_int_equal(small.len, 0);
    kms_buf_dispose_wipe(&small);
    /* and a good one after the failures appends after the prefix */
    assert_int_equal(repl_entity_encode(&e, &b, &err), 0);
    assert_memory_equal(b.data, "prefix!!", 8);
    assert_true(b.len > 8);
    kms_buf_dispose_wipe(&b);
}

/* ------------------------------------------------- varied entities */
/* A deterministic generator of entities of every kind with random field
 * sizes and values (attributes with and without search keys, empty and
 * long blobs, clocks, tombstones), for comparing encoders byte for byte. */
static uint64_t g_rng;

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Text of 0..max letters (NUL-terminated), in the arena. */
static char *rnd_text(kms_arena_t *a, size_t min, size_t max)
{
    size_t n = min + rnd_below(max - min + 1);
    char *s = kms_arena_alloc(a, n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(' ' + rnd_below(95));
    s[n] = '\0';
    return s;
}

static void rnd_into(char *buf, size_t cap)
{
    size_t n = rnd_below(cap);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + rnd_below(26));
    buf[n] = '\0';
}

static uint8_t *rnd_bytes(kms_arena_t *a, size_t n)
{
    uint8_t *p = kms_arena_alloc(a, n + 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
    return p;
}

static void rnd_entity(kms_arena_t *a, repl_entity_t *e, int64_t seq)
{
    static const enum repl_kind kinds[] = {REPL_KIND_OBJECT, REPL_KIND_OBJECT, REPL_KIND_OBJECT,
                                           REPL_KIND_OBJECT, REPL_KIND_OBJECT, REPL_KIND_TENANT,
                                           REPL_KIND_CLIENT, REPL_KIND_DSK, REPL_KIND_NODE};
    memset(e, 0, sizeof *e);
    e->kind = kinds[rnd_below(KMS_ARRAY_SIZE(kinds))];
    e->seq = seq;
    e->key = rnd_text(a, 1, e->kind == REPL_KIND_OBJECT ? REPL_ID_MAX : 60);
    e->origin = rnd_text(a, 0, REPL_ID_MAX);
    e->origin_seq = (int64_t)(rnd() >> 1);
    e->hlc = (int64_t)rnd();
    e->deleted = rnd_below(10) == 0 && e->kind != REPL_KIND_DSK && e->kind != REPL_KIND_NODE;
    switch (e->kind) {
    case REPL_KIND_OBJECT: {
        store_object_t *o = &e->obj;
        o->object_type = (uint32_t)rnd();
        o->state = (uint32_t)rnd_below(8);
        rnd_into(o->tenant, sizeof o->tenant);
        o->created_us = (int64_t)rnd();
        o->updated_us = (int64_t)rnd();
        o->archived = rnd() & 1;
        o->sealed.dsk_id = (uint32_t)rnd();
        o->sealed.gen = (int64_t)rnd();
        o->sealed.len = rnd_below(3) ? 1 + rnd_below(300) : 0;
        o->sealed.blob = rnd_bytes(a, o->sealed.len);
        o->n_attrs = rnd_below(25);
        o->attrs = kms_arena_alloc(a, (o->n_attrs + 1) * sizeof *o->attrs);
        assert_non_null(o->attrs);
        for (size_t i = 0; i < o->n_attrs; i++) {
            store_attr_t *at = &o->attrs[i];
            at->name = rnd_text(a, 0, rnd_below(20) ? 40 : 255);
            at->index = rnd_below(10) ? (uint32_t)rnd_below(4) : (uint32_t)rnd_below(INT32_MAX);
            at->value_len = rnd_below(130);
            at->value = rnd_bytes(a, at->value_len);
            at->skey = rnd_below(2) ? rnd_text(a, 0, 80) : NULL;
            at->nkey = (int64_t)rnd();
            at->has_nkey = rnd() & 1;
            at->index_nkey = rnd() & 1;
        }
        e->n_clocks = rnd_below(7);
        e->clocks = kms_arena_alloc(a, (e->n_clocks + 1) * sizeof *e->clocks);
        assert_non_null(e->clocks);
        for (size_t i = 0; i < e->n_clocks; i++)
            e->clocks[i] = (repl_clock_t){.name = rnd_text(a, 0, 30), .hlc = (int64_t)rnd(),
                                          .node = rnd_text(a, 1, REPL_ID_MAX)};
        break;
    }
    case REPL_KIND_TENANT:
        e->tenant_created_us = (int64_t)rnd();
        break;
    case REPL_KIND_CLIENT:
        rnd_into(e->client.tenant, sizeof e->client.tenant);
        rnd_into(e->client.role, sizeof e->client.role);
        rnd_into(e->client.kind, sizeof e->client.kind);
        rnd_into(e->client.cert_sha256, sizeof e->client.cert_sha256);
        rnd_into(e->client.password_hash, sizeof e->client.password_hash);
        e->client.created_us = (int64_t)rnd();
        break;
    case REPL_KIND_DSK: {
        size_t n = 1 + rnd_below(REPL_DSK_MAX);
        e->dsk_id = 1 + (uint32_t)rnd_below(UINT32_MAX - 1);
        e->dsk = kms_secret_dup(rnd_bytes(a, n), n);
        assert_non_null(e->dsk);
        e->dsk_current = rnd() & 1;
        break;
    }
    case REPL_KIND_NODE:
        rnd_into(e->node.peer_addr, sizeof e->node.peer_addr);
        rnd_into(e->node.kmip_addr, sizeof e->node.kmip_addr);
        rnd_into(e->node.cert_sha256, sizeof e->node.cert_sha256);
        e->node.added_hlc = (int64_t)rnd();
        e->node.removed = rnd() & 1;
        break;
    }
}

/* 3 000 varied entities: each encoded on its own (the push links' path)
 * gives the bytes it has inside a whole CHANGES frame, decodes, and
 * re-encodes from the decoded entity to the same bytes; and all of them
 * together are the very bytes the TTLV tree encoder of the protocol's
 * first version produced (their SHA-256, recorded from it). */
#define VARIED_N 3000
#define ENCODE_ENTITY(e, out) assert_int_equal(repl_entity_encode((e), (out), &err), 0)
/* Recorded from the tree encoder with store_client_t's cert_sha256[65]
 * (the generator fills each text field to a random length below its size,
 * so the field's size is part of the input). */
#define VARIED_SHA256 "8ee348e14946eccb8d2468fcd92df905aa8aee2d55872f085a069e1bcb583b6b"

static void test_varied_entities_encode_identically(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t one, whole, again;
    kms_error_t err;
    unsigned char md[32];
    char hex[65];
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    assert_non_null(sha);
    assert_int_equal(EVP_DigestInit_ex(sha, EVP_sha256(), NULL), 1);
    kms_buf_init(&one, 1 << 20);
    kms_buf_init(&again, 1 << 20);
    g_rng = 0x9e3779b97f4a7c15ull;
    size_t kinds[6] = {0};
    for (int64_t i = 1; i <= VARIED_N; i++) {
        repl_entity_t e;
        rnd_entity(a, &e, i);
        kinds[e.kind]++;
        kms_buf_reset(&one);
        ENCODE_ENTITY(&e, &one);
        assert_int_equal(EVP_DigestUpdate(sha, one.data, one.len), 1);
        /* inside a whole frame, after its LAST_SEQ item (16 bytes) */
        repl_frame_t f = {.type = REPL_FRAME_CHANGES};
        f.u.changes.last_seq = i;
        f.u.changes.v = &e;
        f.u.changes.n = 1;
        encode(&f, &whole);
        assert_int_equal(whole.len, REPL_FRAME_HEADER + 8 + 16 + one.len);
        assert_memory_equal(whole.data + REPL_FRAME_HEADER + 8 + 16, one.data, one.len);
        /* decoded and encoded again */
        repl_frame_t *g = NULL;
        assert_int_equal(decode(whole.data, whole.len, &g, &err), 0);
        assert_int_equal(g->u.changes.n, 1);
        kms_buf_reset(&again);
        ENCODE_ENTITY(&g->u.changes.v[0], &again);
        assert_int_equal(again.len, one.len);
        assert_memory_equal(again.data, one.data, one.len);
        repl_frame_free(g);
        kms_buf_dispose_wipe(&whole);
        repl_entity_dispose(&e);
        kms_arena_reset(a);
    }
    for (int k = REPL_KIND_OBJECT; k <= REPL_KIND_NODE; k++)
        assert_true(kinds[k] > 100); /* every kind, many times */
    assert_int_equal(EVP_DigestFinal_ex(sha, md, NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    print_message("varied entities: SHA-256 %s\n", hex);
    assert_string_equal(hex, VARIED_SHA256);
    EVP_MD_CTX_free(sha);
    kms_buf_dispose_wipe(&one);
    kms_buf_dispose_wipe(&again);
    kms_arena_free(a);
}

/* repl_mark_repeats against the definition, entry by entry: lists of 0
 * to 3 000 entries (hashed up to 2 048, sorted above) drawn from a small
 * pool of keys of two kinds, in shuffled order, keeping the first or the
 * last of each key. */
static void test_mark_repeats(void **state)
{
    (void)state;
    static const char *pool[] = {"a", "b", "c", "0f3e", "0f3e-x", "", "k1", "k2", "k3", "k4",
                                 "6f1c0e0a-0000-4000-8000-000000000001",
                                 "6f1c0e0a-0000-4000-8000-000000000002"};
    enum { MAXN = 3000 };
    repl_keyref_t *refs = calloc(MAXN, sizeof *refs), *orig = calloc(MAXN, sizeof *orig);
    bool *dup = calloc(MAXN, sizeof *dup);
    char (*keys)[24] = calloc(MAXN, sizeof *keys);
    assert_true(refs && orig && dup && keys);
    g_rng = 12345;
    static const size_t sizes[] = {0, 1, 2, 3, 17, 512, 2048, 2049, 3000};
    for (size_t t = 0; t < 2 * KMS_ARRAY_SIZE(sizes); t++) {
        size_t n = sizes[t / 2];
        bool keep_last = t % 2;
        size_t distinct = 0;
        for (size_t i = 0; i < n; i++) {
            /* mostly pool keys (repeats), some unique ones */
            const char *k = pool[rnd_below(KMS_ARRAY_SIZE(pool))];
            if (rnd_below(4) == 0) {
                snprintf(keys[i], sizeof keys[i], "u%zu", i);
                k = keys[i];
            }
            orig[i] = (repl_keyref_t){(uint32_t)(1 + rnd_below(2)), k, i};
        }
        for (size_t i = n; i > 1; i--) { /* shuffled: the index, not the position, decides */
            size_t j = rnd_below(i);
            repl_keyref_t x = orig[i - 1];
            orig[i - 1] = orig[j];
            orig[j] = x;
        }
        memcpy(refs, orig, n * sizeof *refs);
        memset(dup, 0xff, MAXN * sizeof *dup);
        repl_mark_repeats(refs, n, keep_last, dup, n);
        for (size_t a = 0; a < n; a++) {
            bool want = false;
            for (size_t b = 0; b < n && !want; b++)
                want = orig[b].kind == orig[a].kind && strcmp(orig[b].key, orig[a].key) == 0 &&
                       (keep_last ? orig[b].i > orig[a].i : orig[b].i < orig[a].i);
            if (dup[orig[a].i] != want)
                fail_msg("n %zu keep_last %d: entry %zu (%u, %s) marked %d", n, keep_last,
                         orig[a].i, orig[a].kind, orig[a].key, dup[orig[a].i]);
            distinct += !want;
        }
        if (n > 100)
            assert_true(distinct < n); /* repeats were there to find */
    }
    free(keys);
    free(dup);
    free(orig);
    free(refs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_fields_survive),
        cmocka_unit_test(test_header_rejections),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_body_rejections),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_changes_from_encoded_entities),
        cmocka_unit_test(test_varied_entities_encode_identically),
        cmocka_unit_test(test_entity_encode_errors),
        cmocka_unit_test(test_mark_repeats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
