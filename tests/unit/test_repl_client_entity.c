/*
 * tests/unit/test_repl_client_entity.c: a client entity on the peer
 * protocol (replication/entity.c) in both of its forms: a device client
 * with its identifiers in DEVICE, and the packed form a node of the
 * previous version sends (the identifiers in CERT_SHA256, 0x1f between
 * them, no DEVICE), which is read into the same record, re-encodes to the
 * bytes it came in, and is stored by the store like any client (the
 * identifiers in their columns). Malformed client entities are refused
 * with PROTO. A disabled client carries DISABLED (when, why), an enabled
 * one nothing more than before store schema v12; the flag goes through
 * the store's last-writer-wins like the rest of the record. The cluster
 * test (test_repl_cluster.c) carries a device client between real nodes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "replication/repl_int.h"
#include "store/store.h"
#include "tests/unit/util/tmpdir.h"

#define HASH "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQxMjM0NTY$aGFzaDE"
#define PACKED "serNum123456\x1f" "devID2233\x1f" "netID9000\x1f\x1f" "mediaID313"

static int decode(const kms_buf_t *b, repl_frame_t **f, kms_error_t *err)
{
    repl_frame_limits_t lim = {.max_frame = 1 << 20};
    kms_error_clear(err);
    return repl_frame_decode(b->data, b->len, &lim, f, err);
}

/* FRAME{LAST_SEQ 1, ENTITY{client `key`: tenant acme, role client,
 * `kind`, CERT_SHA256 `cert`, a hash, CREATED_US 77}} in arena `a`; *e_out
 * is the ENTITY, for more fields. */
static ttlv_item_t *client_tree(kms_arena_t *a, const char *key, const char *kind,
                                const char *cert, ttlv_item_t **e_out)
{
    ttlv_item_t *r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_long(a, r, REPL_TAG_LAST_SEQ, 1);
    ttlv_item_t *e = ttlv_new_struct(a, r, REPL_TAG_ENTITY);
    ttlv_new_enum(a, e, REPL_TAG_KIND, REPL_KIND_CLIENT);
    ttlv_new_long(a, e, REPL_TAG_SEQ, 1);
    ttlv_new_textz(a, e, REPL_TAG_KEY, key);
    ttlv_new_textz(a, e, REPL_TAG_ORIGIN, "node-old");
    ttlv_new_long(a, e, REPL_TAG_ORIGIN_SEQ, 5);
    ttlv_new_long(a, e, REPL_TAG_HLC, 65536);
    ttlv_new_bool(a, e, REPL_TAG_DELETED, false);
    ttlv_new_textz(a, e, REPL_TAG_TENANT, "acme");
    ttlv_new_textz(a, e, REPL_TAG_ROLE, "client");
    ttlv_new_textz(a, e, REPL_TAG_CLIENT_KIND, kind);
    ttlv_new_textz(a, e, REPL_TAG_CERT_SHA256, cert);
    ttlv_new_textz(a, e, REPL_TAG_PASSWORD_HASH, HASH);
    ttlv_new_long(a, e, REPL_TAG_CREATED_US, 77);
    *e_out = e;
    return r;
}

/* Tree `r` as the raw bytes of a CHANGES frame into *b; frees `a`. */
static void frame_bytes(kms_arena_t *a, const ttlv_item_t *r, kms_buf_t *b)
{
    uint8_t h[8] = {'K', 'R', REPL_PROTO_VERSION, REPL_FRAME_CHANGES, 0, 0, 0, 0};
    kms_buf_init(b, 1 << 20);
    kms_put_be32(h + 4, (uint32_t)ttlv_encoded_size(r));
    assert_int_equal(kms_buf_append(b, h, 8), 0);
    assert_int_equal(ttlv_encode(r, b), 0);
    kms_arena_free(a);
}

/* client_tree's frame of client tape-1 as raw bytes; `device` adds a
 * DEVICE with a serial number. */
static void client_frame(const char *kind, const char *cert, bool device, kms_buf_t *b)
{
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    ttlv_item_t *e = NULL;
    ttlv_item_t *r = client_tree(a, "tape-1", kind, cert, &e);
    if (device) {
        ttlv_item_t *d = ttlv_new_struct(a, e, REPL_TAG_DEVICE);
        ttlv_new_textz(a, d, REPL_TAG_DEVICE_SERIAL, "serNum123456");
        ttlv_new_textz(a, d, REPL_TAG_DEVICE_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_NETWORK_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_MACHINE_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_MEDIA_IDENTIFIER, "");
    }
    frame_bytes(a, r, b);
}

/* A new store in a new temporary directory (its path into dir[64]),
 * holding tenant acme. */
static store_t *store_with_acme(const char *prefix, char *dir)
{
    char path[128];
    assert_int_equal(kms_test_tmpdir(dir, 64, prefix, "kms.db", path, sizeof path), 0);
    store_options_t o = {.path = path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
    return s;
}

/* One client entity `c` at `hlc` encoded as a CHANGES frame into *b. */
static void encode_client(const store_client_t *c, int64_t hlc, kms_buf_t *b)
{
    repl_frame_t *f = repl_frame_new(REPL_FRAME_CHANGES);
    assert_non_null(f);
    repl_entity_t x;
    memset(&x, 0, sizeof x);
    x.kind = REPL_KIND_CLIENT;
    x.seq = 1;
    x.key = c->name;
    x.origin = "node-a";
    x.origin_seq = hlc;
    x.hlc = hlc;
    x.client = *c;
    f->u.changes.last_seq = 1;
    f->u.changes.v = &x;
    f->u.changes.n = 1;
    kms_error_t err;
    kms_buf_init(b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 0, b, &err), 0);
    f->u.changes.v = NULL;
    f->u.changes.n = 0;
    repl_frame_free(f);
}

static bool has_tag(const kms_buf_t *b, uint32_t tag)
{
    for (size_t i = 0; i + 3 <= b->len; i++)
        if (b->data[i] == (uint8_t)(tag >> 16) && b->data[i + 1] == (uint8_t)(tag >> 8) &&
            b->data[i + 2] == (uint8_t)tag)
            return true;
    return false;
}

/* Apply decoded entity `y` to store `s` (LWW by its hlc). */
static void apply_client(store_t *s, const repl_entity_t *y)
{
    store_write_t *w = store_write_new();
    store_change_id_t id = {.hlc = y->hlc, .origin_seq = y->origin_seq};
    strcpy(id.origin, y->origin);
    assert_int_equal(store_write_client_repl(w, &y->client, &id), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
}

static bool has_byte(const kms_buf_t *b, uint8_t c)
{
    return memchr(b->data, c, b->len) != NULL;
}

/* A device client from the store: DEVICE on the wire, no packed text,
 * every identifier back in its field. */
static void test_device_client_round_trip(void **state)
{
    (void)state;
    store_client_t c;
    memset(&c, 0, sizeof c);
    strcpy(c.name, "tape-1");
    strcpy(c.tenant, "acme");
    strcpy(c.role, "admin");
    strcpy(c.password_hash, HASH);
    c.created_us = 99;
    const store_device_t d = {.serial = "serNum123456", .device_id = "devID2233",
                              .machine_id = "machineID1", .media_id = "mediaID313"};
    assert_int_equal(store_client_set_device(&c, &d), 0);
    kms_buf_t b;
    kms_error_t err;
    encode_client(&c, 65537, &b);
    assert_false(has_byte(&b, 0x1f)); /* nothing packed */
    repl_frame_t *g = NULL;
    assert_int_equal(decode(&b, &g, &err), 0);
    assert_int_equal(g->u.changes.n, 1);
    const repl_entity_t *y = &g->u.changes.v[0];
    assert_string_equal(y->client.name, "tape-1");
    assert_string_equal(y->client.kind, "device");
    assert_string_equal(y->client.role, "admin");
    assert_string_equal(y->client.cert_sha256, "");
    assert_string_equal(y->client.password_hash, HASH);
    assert_int_equal(y->client.created_us, 99);
    assert_memory_equal(&y->client.device, &d, sizeof d);
    assert_null(y->client_packed);
    repl_frame_free(g);
    kms_buf_dispose(&b);
}

/* The packed form: read into the fields, re-encoded as it came, and
 * stored with the identifiers in their columns. */
static void test_packed_form_from_an_older_node(void **state)
{
    (void)state;
    kms_buf_t b, again;
    kms_error_t err;
    client_frame("device", PACKED, false, &b);
    repl_frame_t *g = NULL;
    assert_int_equal(decode(&b, &g, &err), 0);
    const repl_entity_t *y = &g->u.changes.v[0];
    assert_string_equal(y->client.cert_sha256, "");
    assert_string_equal(y->client.device.serial, "serNum123456");
    assert_string_equal(y->client.device.device_id, "devID2233");
    assert_string_equal(y->client.device.network_id, "netID9000");
    assert_string_equal(y->client.device.machine_id, "");
    assert_string_equal(y->client.device.media_id, "mediaID313");
    assert_string_equal(y->client_packed, PACKED);
    kms_buf_init(&again, 1 << 20);
    assert_int_equal(repl_frame_encode(g, 0, &again, &err), 0);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);

    /* The store takes it as a device client. */
    char dir[64];
    store_t *s = store_with_acme("replcl", dir);
    apply_client(s, y);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    store_client_t got;
    assert_int_equal(store_client_by_device(r, "serNum123456", &got), 0);
    assert_string_equal(got.name, "tape-1");
    assert_string_equal(got.cert_sha256, "");
    assert_memory_equal(&got.device, &y->client.device, sizeof got.device);
    store_reader_free(r);
    store_close(s);
    assert_int_equal(kms_test_rmdir(dir), 0);
    repl_frame_free(g);
    kms_buf_dispose(&b);
    kms_buf_dispose(&again);
}

static void expect_proto(const char *kind, const char *cert, bool device, const char *msg_part)
{
    kms_buf_t b;
    kms_error_t err;
    repl_frame_t *g = NULL;
    client_frame(kind, cert, device, &b);
    int rc = decode(&b, &g, &err);
    if (rc != KMS_ERR_PROTO || !strstr(err.msg, msg_part))
        fail_msg("%s/%s: wanted PROTO '%s', got %d '%s'", kind, cert, msg_part, rc, err.msg);
    assert_null(g);
    kms_buf_dispose(&b);
}

static void test_malformed_client_entities(void **state)
{
    (void)state;
    /* A device client with neither DEVICE nor packed identifiers. */
    expect_proto("device", "", false, "without DEVICE or packed identifiers");
    /* Packed text that is not the packed form. */
    expect_proto("device", "serNum123456", false, "without DEVICE or packed identifiers");
    expect_proto("device", "\x1f\x1f\x1f\x1f", false, "without DEVICE or packed identifiers");
    /* DEVICE with a client of another kind. */
    expect_proto("cert", "", true, "DEVICE in a client of kind 'cert'");
    expect_proto("password", "", true, "DEVICE in a client of kind 'password'");
    /* A fingerprint field longer than a fingerprint. */
    char fp[66];
    memset(fp, 'a', 65);
    fp[65] = '\0';
    expect_proto("cert", fp, false, "CERT_SHA256: longer than 64 bytes");
}

static void test_disabled_client(void **state)
{
    (void)state;
    store_client_t c = {.name = "vcenter-1", .tenant = "acme", .role = "client",
                        .kind = "cert", .created_us = 99};
    memset(c.cert_sha256, 'a', 64);
    /* Enabled: no DISABLED, the bytes of a client before schema v12 (the
     * frame client_frame builds from the tree has the same fields). */
    kms_buf_t on, off, again, old;
    encode_client(&c, 65536, &on);
    assert_false(has_tag(&on, REPL_TAG_DISABLED));
    client_frame("cert", c.cert_sha256, false, &old);
    assert_false(has_tag(&old, REPL_TAG_DISABLED));

    store_client_t d = c;
    d.disabled = true;
    d.disabled_us = 1700000000123456;
    strcpy(d.disabled_reason, "decommissioned");
    encode_client(&d, 65537, &off);
    assert_true(has_tag(&off, REPL_TAG_DISABLED));
    repl_frame_t *g = NULL, *h = NULL;
    kms_error_t err;
    assert_int_equal(decode(&off, &g, &err), 0);
    const repl_entity_t *y = &g->u.changes.v[0];
    assert_true(y->client.disabled);
    assert_int_equal(y->client.disabled_us, 1700000000123456);
    assert_string_equal(y->client.disabled_reason, "decommissioned");
    assert_string_equal(y->client.cert_sha256, c.cert_sha256);
    kms_buf_init(&again, 1 << 20);
    assert_int_equal(repl_frame_encode(g, 0, &again, &err), 0);
    assert_int_equal(again.len, off.len);
    assert_memory_equal(again.data, off.data, off.len);
    assert_int_equal(decode(&on, &h, &err), 0);
    assert_false(h->u.changes.v[0].client.disabled);

    /* The store: disabled at 65537 wins over enabled at 65536, whatever
     * the order they arrive in; a later enable wins over both. */
    char dir[64];
    store_t *s = store_with_acme("repldis", dir);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    apply_client(s, y);
    apply_client(s, &h->u.changes.v[0]); /* older: skipped */
    store_client_t got;
    assert_int_equal(store_client_by_name(r, "vcenter-1", &got), 0);
    assert_true(got.disabled);
    assert_string_equal(got.disabled_reason, "decommissioned");
    h->u.changes.v[0].hlc = 65538;
    apply_client(s, &h->u.changes.v[0]);
    assert_int_equal(store_client_by_name(r, "vcenter-1", &got), 0);
    assert_false(got.disabled);
    assert_string_equal(got.disabled_reason, "");
    store_reader_free(r);
    store_close(s);
    assert_int_equal(kms_test_rmdir(dir), 0);
    repl_frame_free(g);
    repl_frame_free(h);
    kms_buf_dispose(&on);
    kms_buf_dispose(&off);
    kms_buf_dispose(&again);
    kms_buf_dispose(&old);
}

/* DISABLED must hold DISABLED_US then DISABLED_REASON, once. */
static void test_malformed_disabled(void **state)
{
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        kms_arena_t *a = kms_arena_new(0);
        ttlv_item_t *e = NULL;
        ttlv_item_t *r = client_tree(a, "alice", "password", "", &e);
        for (int k = 0; k < (variant == 2 ? 2 : 1); k++) {
            ttlv_item_t *d = ttlv_new_struct(a, e, REPL_TAG_DISABLED);
            ttlv_new_long(a, d, REPL_TAG_DISABLED_US, 1);
            if (variant != 0)
                ttlv_new_textz(a, d, REPL_TAG_DISABLED_REASON,
                               variant == 1 ? "a reason that is longer than two hundred bytes "
                                              "a reason that is longer than two hundred bytes "
                                              "a reason that is longer than two hundred bytes "
                                              "a reason that is longer than two hundred bytes "
                                              "a reason that is longer than two hundred bytes"
                                            : "");
        }
        kms_buf_t b;
        frame_bytes(a, r, &b);
        repl_frame_t *g = NULL;
        kms_error_t err;
        if (decode(&b, &g, &err) != KMS_ERR_PROTO)
            fail_msg("variant %d decoded", variant);
        assert_null(g);
        kms_buf_dispose(&b);
    }
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_client_round_trip),
        cmocka_unit_test(test_packed_form_from_an_older_node),
        cmocka_unit_test(test_malformed_client_entities),
        cmocka_unit_test(test_disabled_client),
        cmocka_unit_test(test_malformed_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
