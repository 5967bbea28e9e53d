/*
 * tests/unit/test_repl_client_entity.c: a client entity on the peer
 * protocol (replication/entity.c) in both of its forms: a device client
 * with its identifiers in DEVICE, and the packed form a node of the
 * previous version sends (the identifiers in CERT_SHA256, 0x1f between
 * them, no DEVICE), which is read into the same record, re-encodes to the
 * bytes it came in, and is stored by the store like any client (the
 * identifiers in their columns). Malformed client entities are refused
 * with PROTO. The cluster test (test_repl_cluster.c) carries a device
 * client between real nodes.
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

/* CHANGES{LAST_SEQ 1, ENTITY{client `name`: tenant acme, role client,
 * `kind`, CERT_SHA256 `cert`, a hash, CREATED_US 77}} as raw frame bytes;
 * `device` adds a DEVICE with a serial number. */
static void client_frame(const char *kind, const char *cert, bool device, kms_buf_t *b)
{
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    ttlv_item_t *r = ttlv_new_struct(a, NULL, REPL_TAG_FRAME);
    ttlv_new_long(a, r, REPL_TAG_LAST_SEQ, 1);
    ttlv_item_t *e = ttlv_new_struct(a, r, REPL_TAG_ENTITY);
    ttlv_new_enum(a, e, REPL_TAG_KIND, REPL_KIND_CLIENT);
    ttlv_new_long(a, e, REPL_TAG_SEQ, 1);
    ttlv_new_textz(a, e, REPL_TAG_KEY, "tape-1");
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
    if (device) {
        ttlv_item_t *d = ttlv_new_struct(a, e, REPL_TAG_DEVICE);
        ttlv_new_textz(a, d, REPL_TAG_DEVICE_SERIAL, "serNum123456");
        ttlv_new_textz(a, d, REPL_TAG_DEVICE_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_NETWORK_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_MACHINE_IDENTIFIER, "");
        ttlv_new_textz(a, d, REPL_TAG_MEDIA_IDENTIFIER, "");
    }
    uint8_t h[8] = {'K', 'R', REPL_PROTO_VERSION, REPL_FRAME_CHANGES, 0, 0, 0, 0};
    kms_buf_init(b, 1 << 20);
    kms_put_be32(h + 4, (uint32_t)ttlv_encoded_size(r));
    assert_int_equal(kms_buf_append(b, h, 8), 0);
    assert_int_equal(ttlv_encode(r, b), 0);
    kms_arena_free(a);
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
    repl_frame_t *f = repl_frame_new(REPL_FRAME_CHANGES);
    assert_non_null(f);
    repl_entity_t x;
    memset(&x, 0, sizeof x);
    x.kind = REPL_KIND_CLIENT;
    x.seq = 3;
    x.key = c.name;
    x.origin = "node-a";
    x.origin_seq = 3;
    x.hlc = 65537;
    x.client = c;
    f->u.changes.last_seq = 3;
    f->u.changes.v = &x;
    f->u.changes.n = 1;
    kms_buf_t b;
    kms_error_t err;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), 0);
    f->u.changes.v = NULL;
    f->u.changes.n = 0;
    repl_frame_free(f);
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
    char dir[64], path[128];
    assert_int_equal(kms_test_tmpdir(dir, sizeof dir, "replcl", "kms.db", path, sizeof path), 0);
    store_options_t o = {.path = path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
    w = store_write_new();
    store_change_id_t id = {.hlc = y->hlc, .origin_seq = y->origin_seq};
    strcpy(id.origin, y->origin);
    assert_int_equal(store_write_client_repl(w, &y->client, &id), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
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

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_client_round_trip),
        cmocka_unit_test(test_packed_form_from_an_older_node),
        cmocka_unit_test(test_malformed_client_entities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
