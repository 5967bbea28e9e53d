/*
 * tests/unit/test_kmip_env.h: the environment of the kmip unit tests.
 *
 * A real SQLite store in a temporary directory, a real file master key and
 * DSK keyring, and a kmip_server_t on top; helpers to build Request
 * Messages with the TTLV builder, run them through kmip_handle() and read
 * the decoded Response Message. Header-only (static functions) so each
 * test_kmip_*.c binary includes it; nothing is mocked.
 */
#ifndef KMS_TEST_KMIP_ENV_H
#define KMS_TEST_KMIP_ENV_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

typedef struct kenv {
    char dir[256];
    store_t *store;
    hsm_t *hsm;
    hsm_keyring_t *kr;
    kmip_server_t *srv;
    kms_arena_t *a;     /* requests and decoded responses of one test */
    kmip_summary_t sum; /* of the last call */
    int last_rc;        /* kmip_handle's return of the last call */
} kenv_t;

/* Cheap Argon2id for tests; production defaults are t=2, m=19 MiB. */
#define KENV_PASSWORD_COST {.t_cost = 1, .m_kib = 64, .parallelism = 1}

/* access: KMIP_ACCESS_OPEN (every caller is admin of "default") or
 * KMIP_ACCESS_CLIENTS (the store's clients table; see kenv_tenants_setup). */
static inline int kenv_setup_arena(kenv_t *e, enum kmip_access access, size_t arena_limit)
{
    kms_error_t err = {0};
    char path[512];
    memset(e, 0, sizeof(*e));
    kms_log_set_level(KMS_LOG_WARN);
    snprintf(e->dir, sizeof(e->dir), "/tmp/kmsd-kmip-test.XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(path, sizeof(path), "%s/kmsd.db", e->dir);
    store_options_t so = {.path = path};
    if (store_open(&so, &e->store)) {
        fprintf(stderr, "store_open failed\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/master.key", e->dir);
    hsm_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = path;
    hc.slot = -1;
    if (hsm_init_master(&hc, NULL, &err) || hsm_open(&hc, &e->hsm, &err) ||
        hsm_keyring_new(e->hsm, &e->kr)) {
        fprintf(stderr, "hsm: %s\n", err.msg);
        return -1;
    }
    kms_buf_t w;
    kms_buf_init(&w, 0);
    int rc = hsm_keyring_generate(e->kr, 1, &w);
    kms_buf_dispose(&w);
    if (rc || hsm_keyring_set_current(e->kr, 1))
        return -1;
    kmip_config_t c = {
        .store = e->store,
        .keyring = e->kr,
        .access = access,
        .password_cost = KENV_PASSWORD_COST,
        .vendor = "kmsd",
        .version = "test",
        .arena_limit = arena_limit,
    };
    if (kmip_server_new(&c, &e->srv))
        return -1;
    e->a = kms_arena_new(0);
    return e->a ? 0 : -1;
}

/* The server's per-request arena at its default limit (64 MiB). */
static inline int kenv_setup(kenv_t *e, enum kmip_access access)
{
    return kenv_setup_arena(e, access, 0);
}

static inline void kenv_teardown(kenv_t *e)
{
    char cmd[320];
    kmip_server_free(e->srv);
    store_close(e->store);
    hsm_keyring_free(e->kr);
    hsm_close(e->hsm);
    kms_arena_free(e->a);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", e->dir);
}

/* ------------------------------------------------------ request builder */
/* A Request Message with a header for version maj.min; Batch Count is
 * filled in by kenv_call from the number of Batch Items. */
static inline ttlv_item_t *rq_msg(kenv_t *e, int maj, int min)
{
    ttlv_item_t *m = ttlv_new_struct(e->a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *h = ttlv_new_struct(e->a, m, KMIP_TAG_REQUEST_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(e->a, h, KMIP_TAG_PROTOCOL_VERSION);
    ttlv_new_int(e->a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, maj);
    ttlv_new_int(e->a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, min);
    return m;
}

static inline ttlv_item_t *rq_header(ttlv_item_t *msg)
{
    return ttlv_find(msg, KMIP_TAG_REQUEST_HEADER);
}

/* Append a Batch Item with `op`; returns its Request Payload. */
static inline ttlv_item_t *rq_item(kenv_t *e, ttlv_item_t *msg, uint32_t op)
{
    ttlv_item_t *bi = ttlv_new_struct(e->a, msg, KMIP_TAG_BATCH_ITEM);
    ttlv_new_enum(e->a, bi, KMIP_TAG_OPERATION, op);
    return ttlv_new_struct(e->a, bi, KMIP_TAG_REQUEST_PAYLOAD);
}

static inline ttlv_item_t *rq_attr(kenv_t *e, ttlv_item_t *parent, const char *name)
{
    ttlv_item_t *at = ttlv_new_struct(e->a, parent, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(e->a, at, KMIP_TAG_ATTRIBUTE_NAME, name);
    return at;
}
static inline void rq_attr_enum(kenv_t *e, ttlv_item_t *p, const char *name, uint32_t v)
{
    ttlv_new_enum(e->a, rq_attr(e, p, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}
static inline void rq_attr_int(kenv_t *e, ttlv_item_t *p, const char *name, int32_t v)
{
    ttlv_new_int(e->a, rq_attr(e, p, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}
static inline void rq_attr_text(kenv_t *e, ttlv_item_t *p, const char *name, const char *v)
{
    ttlv_new_textz(e->a, rq_attr(e, p, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}
static inline void rq_attr_date(kenv_t *e, ttlv_item_t *p, const char *name, int64_t v)
{
    ttlv_new_datetime(e->a, rq_attr(e, p, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}
static inline void rq_attr_name(kenv_t *e, ttlv_item_t *p, const char *v)
{
    ttlv_item_t *val = ttlv_new_struct(e->a, rq_attr(e, p, "Name"), KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_textz(e->a, val, KMIP_TAG_NAME_VALUE, v);
    ttlv_new_enum(e->a, val, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING);
}
static inline void rq_uid(kenv_t *e, ttlv_item_t *payload, const char *id)
{
    ttlv_new_textz(e->a, payload, KMIP_TAG_UNIQUE_IDENTIFIER, id);
}

/* A Create payload for a symmetric key of alg/bits (mask 0 = none). */
static inline ttlv_item_t *rq_create(kenv_t *e, ttlv_item_t *msg, uint32_t alg, int32_t bits,
                              int32_t mask, const char *name)
{
    ttlv_item_t *p = rq_item(e, msg, KMIP_OPERATION_CREATE);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ta, "Cryptographic Algorithm", alg);
    rq_attr_int(e, ta, "Cryptographic Length", bits);
    if (mask)
        rq_attr_int(e, ta, "Cryptographic Usage Mask", mask);
    if (name)
        rq_attr_name(e, ta, name);
    return ta;
}

/* ------------------------------------------------------------- calling */
static inline ttlv_item_t *kenv_call_raw(kenv_t *e, const kmip_peer_t *peer, const uint8_t *req,
                                  size_t len)
{
    kms_buf_t out;
    kms_buf_init(&out, 64u << 20);
    e->last_rc = kmip_handle(e->srv, peer, req, len, &out, &e->sum);
    ttlv_item_t *root = NULL;
    kms_error_t err;
    if (out.len && ttlv_decode(out.data, out.len, NULL, e->a, &root, &err) != 0)
        root = NULL;
    kms_buf_dispose(&out);
    return root;
}

/* msg encoded into b (initialised here), its Batch Count filled in. */
static inline void kenv_encode(kenv_t *e, ttlv_item_t *msg, kms_buf_t *b)
{
    ttlv_item_t *h = rq_header(msg);
    ttlv_item_t *bc = ttlv_find(h, KMIP_TAG_BATCH_COUNT);
    if (!bc)
        bc = ttlv_new_int(e->a, h, KMIP_TAG_BATCH_COUNT, 0);
    bc->v.i32 = (int32_t)ttlv_count(msg, KMIP_TAG_BATCH_ITEM);
    kms_buf_init(b, 64u << 20);
    assert_int_equal(ttlv_encode(msg, b), 0);
}

static inline ttlv_item_t *kenv_call_peer(kenv_t *e, const kmip_peer_t *peer, ttlv_item_t *msg)
{
    kms_buf_t b;
    kenv_encode(e, msg, &b);
    ttlv_item_t *r = kenv_call_raw(e, peer, b.data, b.len);
    kms_buf_dispose(&b);
    return r;
}

/* The request value's steps one at a time. kenv_request: msg encoded,
 * then decoded into a request value of e's server and authenticated; the
 * bytes are scribbled over and freed first, so the value must not refer
 * to them. kenv_answer: the request's Response Message, decoded. */
static inline kmip_request_t *kenv_request(kenv_t *e, const kmip_peer_t *peer, ttlv_item_t *msg)
{
    kms_buf_t b;
    kenv_encode(e, msg, &b);
    kmip_request_t *r = NULL;
    assert_int_equal(kmip_request_decode(e->srv, peer, b.data, b.len, &r), 0);
    memset(b.data, 0xA5, b.len);
    kms_buf_dispose(&b);
    assert_non_null(r);
    assert_int_equal(kmip_request_authenticate(r), 0);
    return r;
}

static inline ttlv_item_t *kenv_answer(kenv_t *e, kmip_request_t *r)
{
    kms_buf_t out;
    kms_buf_init(&out, 64u << 20);
    assert_int_equal(kmip_request_encode(r, &out), 0);
    ttlv_item_t *root = NULL;
    kms_error_t err;
    assert_int_equal(ttlv_decode(out.data, out.len, NULL, e->a, &root, &err), 0);
    kms_buf_dispose(&out);
    return root;
}

static inline ttlv_item_t *kenv_call(kenv_t *e, ttlv_item_t *msg)
{
    return kenv_call_peer(e, NULL, msg);
}

/* ------------------------------------------------------ response access */
static inline ttlv_item_t *rs_item(const ttlv_item_t *resp, size_t i)
{
    if (!resp)
        return NULL;
    ttlv_item_t *bi = ttlv_find(resp, KMIP_TAG_BATCH_ITEM);
    while (bi && i--)
        bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM);
    return bi;
}
static inline uint32_t rs_status(const ttlv_item_t *bi)
{
    ttlv_item_t *s = bi ? ttlv_find(bi, KMIP_TAG_RESULT_STATUS) : NULL;
    return s ? ttlv_u32(s) : 0xFFFFFFFFu;
}
static inline uint32_t rs_reason(const ttlv_item_t *bi)
{
    ttlv_item_t *s = bi ? ttlv_find(bi, KMIP_TAG_RESULT_REASON) : NULL;
    return s ? ttlv_u32(s) : 0;
}
static inline ttlv_item_t *rs_payload(const ttlv_item_t *bi)
{
    return bi ? ttlv_find(bi, KMIP_TAG_RESPONSE_PAYLOAD) : NULL;
}
static inline const char *rs_uid(const ttlv_item_t *bi)
{
    ttlv_item_t *p = rs_payload(bi);
    ttlv_item_t *u = p ? ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
    return u ? ttlv_text(u) : NULL;
}
/* The value item of the first attribute `name` in a payload, or NULL. */
static inline ttlv_item_t *rs_attr(const ttlv_item_t *payload, const char *name)
{
    for (ttlv_item_t *a = payload ? ttlv_find(payload, KMIP_TAG_ATTRIBUTE) : NULL; a;
         a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE)) {
        ttlv_item_t *n = ttlv_find(a, KMIP_TAG_ATTRIBUTE_NAME);
        if (n && strcmp(ttlv_text(n), name) == 0)
            return ttlv_find(a, KMIP_TAG_ATTRIBUTE_VALUE);
    }
    return NULL;
}

/* Assert one-item success / failure with reason. */
#define assert_ok(bi) assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_SUCCESS)
#define assert_fail(bi, reason)                                                    \
    do {                                                                           \
        assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_FAILED);      \
        assert_int_equal(rs_reason(bi), (reason));                                 \
    } while (0)

/* One-shot helpers: run a single operation and return its batch item. */
static inline ttlv_item_t *k_create(kenv_t *e, uint32_t alg, int32_t bits, int32_t mask, const char *name)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, alg, bits, mask, name);
    return rs_item(kenv_call(e, m), 0);
}

static inline char *k_create_aes(kenv_t *e, const char *name)
{
    ttlv_item_t *bi = k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, name);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

static inline ttlv_item_t *k_op_uid(kenv_t *e, uint32_t op, const char *id)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, op);
    if (id)
        rq_uid(e, p, id);
    return rs_item(kenv_call(e, m), 0);
}

/* Get of `id` in Key Format Type `fmt` (0 = as registered); the batch item. */
static inline ttlv_item_t *k_get(kenv_t *e, const char *id, uint32_t fmt)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET);
    rq_uid(e, p, id);
    if (fmt)
        ttlv_new_enum(e->a, p, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    return rs_item(kenv_call(e, m), 0);
}

/* A Create Key Pair item of `alg` with `bits` and Recommended Curve
 * `curve` (0 = leave out) in msg; returns its Common Template-Attribute. */
static inline ttlv_item_t *rq_create_pair(kenv_t *e, ttlv_item_t *msg, uint32_t alg, int32_t bits,
                                          uint32_t curve)
{
    ttlv_item_t *ct = ttlv_new_struct(e->a, rq_item(e, msg, KMIP_OPERATION_CREATE_KEY_PAIR),
                                      KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ct, "Cryptographic Algorithm", alg);
    if (bits)
        rq_attr_int(e, ct, "Cryptographic Length", bits);
    if (curve) {
        ttlv_item_t *dp = ttlv_new_struct(e->a, rq_attr(e, ct, "Cryptographic Domain Parameters"),
                                          KMIP_TAG_ATTRIBUTE_VALUE);
        ttlv_new_enum(e->a, dp, KMIP_TAG_RECOMMENDED_CURVE, curve);
    }
    return ct;
}

/* The value of attribute `name` of object `id` (Get Attributes; asserted
 * to succeed and to hold it). */
static inline ttlv_item_t *k_attr(kenv_t *e, const char *id, const char *name)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, name);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *v = rs_attr(rs_payload(bi), name);
    assert_non_null(v);
    return v;
}

static inline uint32_t k_state(kenv_t *e, const char *id)
{
    return ttlv_u32(k_attr(e, id, "State"));
}

static inline ttlv_item_t *k_revoke(kenv_t *e, const char *id, uint32_t code)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REVOKE);
    rq_uid(e, p, id);
    ttlv_item_t *rr = ttlv_new_struct(e->a, p, KMIP_TAG_REVOCATION_REASON);
    ttlv_new_enum(e->a, rr, KMIP_TAG_REVOCATION_REASON_CODE, code);
    return rs_item(kenv_call(e, m), 0);
}

/* cmocka setup/teardown of a plain environment (no access control: every
 * caller is admin of "default"); *state is the kenv_t. */
static inline int kenv_plain_setup(void **state)
{
    kenv_t *e = calloc(1, sizeof(*e));
    if (!e || kenv_setup(e, KMIP_ACCESS_OPEN)) {
        free(e);
        return -1;
    }
    *state = e;
    return 0;
}

static inline int kenv_plain_teardown(void **state)
{
    kenv_t *e = *state;
    kenv_teardown(e);
    free(e);
    return 0;
}

/* Commit one tenant or client row; 0 or the store's error. */
static inline int kenv_commit_tenant(kenv_t *e, const char *tenant)
{
    store_write_t *w = store_write_new();
    int rc = w ? store_write_tenant(w, tenant, false) : KMS_ERR_NOMEM;
    if (rc == 0)
        rc = store_commit(e->store, w, NULL, 0);
    store_write_free(w);
    return rc;
}

/* A client registered by certificate CN (no fingerprint), or with a
 * password when `password` is given. */
static inline int kenv_commit_client(kenv_t *e, const char *name, const char *tenant,
                                     const char *role, const char *password)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    kms_strlcpy(c.name, name, sizeof(c.name));
    kms_strlcpy(c.tenant, tenant, sizeof(c.tenant));
    kms_strlcpy(c.role, role, sizeof(c.role));
    kms_strlcpy(c.kind, password ? "password" : "cert", sizeof(c.kind));
    c.created_us = kms_now_us();
    kmip_password_cost_t cost = KENV_PASSWORD_COST;
    int rc = password ? kmip_password_hash(&cost, password, c.password_hash,
                                           sizeof(c.password_hash))
                      : 0;
    store_write_t *w = rc ? NULL : store_write_new();
    if (!rc)
        rc = w ? store_write_client(w, &c, false) : KMS_ERR_NOMEM;
    if (rc == 0)
        rc = store_commit(e->store, w, NULL, 0);
    store_write_free(w);
    return rc;
}

/*
 * Two client tenants and an admin, for access-control tests, registered in
 * the store's clients table as kmsd would have them: certificate clients
 * by CN "alice" (tenant ta), "bob" (tb) and "root" (admin of "admins"),
 * and the password client "carol" (tenant ta, password "secret"). Anyone
 * else is refused. Use kenv_tenants_setup/teardown as cmocka
 * setup/teardown; *state is the kenv_t.
 */
static inline int kenv_tenants_setup(void **state)
{
    kenv_t *e = calloc(1, sizeof(*e));
    if (!e || kenv_setup(e, KMIP_ACCESS_CLIENTS) || kenv_commit_tenant(e, "ta") ||
        kenv_commit_tenant(e, "tb") || kenv_commit_tenant(e, "admins") ||
        kenv_commit_client(e, "alice", "ta", "client", NULL) ||
        kenv_commit_client(e, "bob", "tb", "client", NULL) ||
        kenv_commit_client(e, "root", "admins", "admin", NULL) ||
        kenv_commit_client(e, "carol", "ta", "client", "secret"))
        return -1;
    *state = e;
    return 0;
}

static inline int kenv_tenants_teardown(void **state)
{
    kenv_t *e = *state;
    kenv_teardown(e);
    free(e);
    return 0;
}

#endif /* KMS_TEST_KMIP_ENV_H */
