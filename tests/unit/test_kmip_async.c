/*
 * tests/unit/test_kmip_async.c: asynchronous operations (Asynchronous
 * Indicator, Operation Pending, Poll, Cancel) against a real store, with
 * identities from the clients table.
 *
 * Slow operations are PBKDF2 Derive Keys with a large iteration count, so
 * that two of them keep both threads busy and a third waits in the queue
 * (which Cancel can take back). The count comes from this machine's
 * PBKDF2 rate (OpenSSL's, as the server's), for about DERIVE_NS each:
 * with a fixed count, a fast enough machine finished the first one before
 * the test's Cancel of it. A restart is a new kmip_server_t on the same
 * store: what was answered survives, what was pending answers a clear
 * failure.
 */
#include "tests/unit/test_kmip_env.h"

#include <time.h>

#include <openssl/evp.h>

#include "crypto/crypto.h"

#define DERIVE_NS 1000000000LL

#define A (e->a)

static const kmip_peer_t alice = {.cert_cn = "alice", .address = "t"};
static const kmip_peer_t bob = {.cert_cn = "bob", .address = "t"};

static int restart(kenv_t *e, uint32_t per_identity, uint32_t lifetime_s)
{
    kmip_server_free(e->srv);
    e->srv = NULL;
    kmip_config_t c = {
        .store = e->store,
        .keyring = e->kr,
        .access = KMIP_ACCESS_CLIENTS,
        .password_cost = KENV_PASSWORD_COST,
        .async_per_identity = per_identity,
        .async_lifetime_s = lifetime_s,
    };
    return kmip_server_new(&c, &e->srv);
}

static int setup(void **state)
{
    kenv_t *e = calloc(1, sizeof *e);
    if (!e || kenv_setup(e, KMIP_ACCESS_CLIENTS) || kenv_commit_tenant(e, "ta") ||
        kenv_commit_client(e, "alice", "ta", "client", NULL) ||
        kenv_commit_client(e, "bob", "ta", "client", NULL) || restart(e, 4, 0))
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    kenv_t *e = *state;
    kenv_teardown(e);
    free(e);
    return 0;
}

/* A request message whose header says Asynchronous Indicator true. */
static ttlv_item_t *async_msg(kenv_t *e)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_new_bool(A, rq_header(m), KMIP_TAG_ASYNCHRONOUS_INDICATOR, true);
    return m;
}

/* Send m (alice); its item must be Operation Pending: the value. */
static ttlv_item_t *pending_corr(kenv_t *e, ttlv_item_t *m)
{
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &alice, m), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_PENDING);
    assert_null(rs_payload(bi));
    ttlv_item_t *c = ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    assert_non_null(c);
    assert_int_equal(c->v.bytes.len, 16);
    return c;
}

/* A Secret Data password usable for Derive Key (alice's). */
static const char *password(kenv_t *e)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SECRET_DATA);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_int(e, ta, "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY);
    rq_attr_date(e, ta, "Activation Date", kms_now_us() / 1000000 - 60);
    ttlv_item_t *sd = ttlv_new_struct(A, p, KMIP_TAG_SECRET_DATA);
    ttlv_new_enum(A, sd, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_PASSWORD);
    ttlv_item_t *kb = ttlv_new_struct(A, sd, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_OPAQUE);
    ttlv_new_bytes(A, ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL,
                   "password", 8);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &alice, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(A, rs_uid(bi));
}

/* A PBKDF2 Derive Key item of `iterations` in m. */
static void derive_item(kenv_t *e, ttlv_item_t *m, const char *pw, int32_t iterations)
{
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_DERIVE_KEY);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    rq_uid(e, p, pw);
    ttlv_new_enum(A, p, KMIP_TAG_DERIVATION_METHOD, KMIP_DERIVATION_METHOD_PBKDF2);
    ttlv_item_t *dp = ttlv_new_struct(A, p, KMIP_TAG_DERIVATION_PARAMETERS);
    ttlv_new_enum(A, ttlv_new_struct(A, dp, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256);
    ttlv_new_bytes(A, dp, KMIP_TAG_SALT, "salt", 4);
    ttlv_new_int(A, dp, KMIP_TAG_ITERATION_COUNT, iterations);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ta, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    rq_attr_int(e, ta, "Cryptographic Length", 256);
}

/* PBKDF2-SHA-256 iterations lasting about DERIVE_NS here (at least 100 000,
 * at most what Derive Key accepts). */
static int32_t derive_iterations(void)
{
    const int n = 100000;
    uint8_t out[32];
    uint64_t t0 = kms_mono_ns();
    assert_int_equal(PKCS5_PBKDF2_HMAC("password", 8, (const unsigned char *)"salt", 4, n,
                                       EVP_sha256(), sizeof out, out), 1);
    uint64_t ns = kms_mono_ns() - t0;
    double want = (double)n * (double)DERIVE_NS / (double)(ns ? ns : 1);
    if (want > CRYPTO_PBKDF2_MAX_ITERATIONS)
        want = CRYPTO_PBKDF2_MAX_ITERATIONS;
    return want < n ? n : (int32_t)want;
}

/* Start an asynchronous Derive Key: its correlation value (asserted
 * pending). */
static ttlv_item_t *start_derive(kenv_t *e, const char *pw, int32_t iterations)
{
    ttlv_item_t *m = async_msg(e);
    derive_item(e, m, pw, iterations);
    return pending_corr(e, m);
}

static ttlv_item_t *with_corr(kenv_t *e, const kmip_peer_t *who, uint32_t op,
                              const ttlv_item_t *corr)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, op);
    ttlv_new_bytes(A, p, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE, corr->v.bytes.ptr,
                   corr->v.bytes.len);
    return rs_item(kenv_call_peer(e, who, m), 0);
}

/* Poll until the answer is no longer pending (at most ~60 s). */
static ttlv_item_t *poll_done(kenv_t *e, const ttlv_item_t *corr)
{
    for (int i = 0; i < 6000; i++) {
        ttlv_item_t *bi = with_corr(e, &alice, KMIP_OPERATION_POLL, corr);
        if (rs_status(bi) != KMIP_RESULT_STATUS_OPERATION_PENDING)
            return bi;
        assert_non_null(ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE));
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("the operation never finished");
    return NULL;
}

static uint32_t cancel_result(ttlv_item_t *bi)
{
    assert_ok(bi);
    return ttlv_u32(ttlv_find(rs_payload(bi), KMIP_TAG_CANCELLATION_RESULT));
}

static void test_pending_then_poll(void **state)
{
    kenv_t *e = *state;
    /* Create Key Pair, asynchronously. */
    ttlv_item_t *m = async_msg(e);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE_KEY_PAIR);
    ttlv_item_t *ct = ttlv_new_struct(A, p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ct, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA);
    rq_attr_int(e, ct, "Cryptographic Length", 256);
    ttlv_item_t *corr = pending_corr(e, m);
    ttlv_item_t *bi;

    /* Another identity of the same tenant does not see it. */
    assert_fail(with_corr(e, &bob, KMIP_OPERATION_POLL, corr), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_fail(with_corr(e, &bob, KMIP_OPERATION_CANCEL, corr),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);

    bi = poll_done(e, corr);
    assert_ok(bi);
    ttlv_item_t *priv = ttlv_find(rs_payload(bi), KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER);
    ttlv_item_t *pub = ttlv_find(rs_payload(bi), KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER);
    assert_non_null(priv);
    assert_non_null(pub);
    /* The keys exist, and are alice's. */
    ttlv_item_t *gm = rq_msg(e, 1, 4);
    rq_uid(e, rq_item(e, gm, KMIP_OPERATION_GET_ATTRIBUTES), ttlv_text(pub));
    assert_ok(rs_item(kenv_call_peer(e, &alice, gm), 0));
    /* Poll again (a lost answer): the same answer. Cancel: Completed. */
    assert_ok(with_corr(e, &alice, KMIP_OPERATION_POLL, corr));
    assert_int_equal(cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, corr)),
                     KMIP_CANCELLATION_RESULT_COMPLETED);
    /* An unknown value. */
    uint8_t junk[16] = {1, 2, 3};
    ttlv_item_t *jv = ttlv_new_bytes(A, NULL, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE, junk, 16);
    assert_fail(with_corr(e, &alice, KMIP_OPERATION_POLL, jv), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Poll without a value. */
    m = rq_msg(e, 1, 4);
    rq_item(e, m, KMIP_OPERATION_POLL);
    assert_fail(rs_item(kenv_call_peer(e, &alice, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_failure_is_answered_by_poll(void **state)
{
    kenv_t *e = *state;
    /* Locate is asynchronous too; a Create of nonsense fails later. */
    ttlv_item_t *m = async_msg(e);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ta, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    rq_attr_int(e, ta, "Cryptographic Length", 100);
    ttlv_item_t *corr = pending_corr(e, m);
    ttlv_item_t *bi = poll_done(e, corr);
    assert_fail(bi, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_int_equal(cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, corr)),
                     KMIP_CANCELLATION_RESULT_FAILED);

    /* Operations that are quick or answer with key material run at once. */
    m = async_msg(e);
    rq_item(e, m, KMIP_OPERATION_QUERY);
    assert_ok(rs_item(kenv_call_peer(e, &alice, m), 0));
}

static void test_cancel_and_restart(void **state)
{
    kenv_t *e = *state;
    const char *pw = password(e);
    /* Two slow ones occupy both threads; the third waits. */
    int32_t iterations = derive_iterations();
    uint64_t t0 = kms_mono_ns();
    ttlv_item_t *c1 = start_derive(e, pw, iterations);
    ttlv_item_t *c2 = start_derive(e, pw, iterations);
    ttlv_item_t *c3 = start_derive(e, pw, iterations);
    ttlv_item_t *c4 = start_derive(e, pw, iterations);
    uint32_t got = cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, c3));
    if (got != KMIP_CANCELLATION_RESULT_CANCELED)
        fail_msg("the third Derive Key was not queued any more (cancellation result %u, "
                 "%.2f s after the first of %d iterations): test too small", got,
                 (double)(kms_mono_ns() - t0) / 1e9, iterations);
    assert_int_equal(cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, c3)),
                     KMIP_CANCELLATION_RESULT_CANCELED);
    assert_fail(with_corr(e, &alice, KMIP_OPERATION_POLL, c3),
                KMIP_RESULT_REASON_OPERATION_CANCELED_BY_REQUESTER);
    /* A running one cannot be canceled (50 ms for a worker to take it up on
     * a loaded machine; it runs for about a second). */
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    got = cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, c1));
    if (got == KMIP_CANCELLATION_RESULT_COMPLETED)
        fail_msg("the first Derive Key ended within %.2f s: test too small",
                 (double)(kms_mono_ns() - t0) / 1e9);
    assert_int_equal(got, KMIP_CANCELLATION_RESULT_UNABLE_TO_CANCEL);
    /* At the limit (4 records) the next one answers synchronously. */
    ttlv_item_t *m = async_msg(e);
    derive_item(e, m, pw, 1000);
    assert_ok(rs_item(kenv_call_peer(e, &alice, m), 0));

    /* Restart while c4 is still queued: c1 and c2 finish first (the old
     * server waits for running operations), c4 was interrupted. */
    assert_int_equal(restart(e, 4, 0), 0);
    assert_ok(with_corr(e, &alice, KMIP_OPERATION_POLL, c1));
    assert_ok(with_corr(e, &alice, KMIP_OPERATION_POLL, c2));
    {
        ttlv_item_t *bi = with_corr(e, &alice, KMIP_OPERATION_POLL, c4);
        assert_fail(bi, KMIP_RESULT_REASON_GENERAL_FAILURE);
        assert_non_null(strstr(ttlv_text(ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE)), "restart"));
    }
    assert_int_equal(cancel_result(with_corr(e, &alice, KMIP_OPERATION_CANCEL, c4)),
                     KMIP_CANCELLATION_RESULT_FAILED);
    assert_fail(with_corr(e, &alice, KMIP_OPERATION_POLL, c3),
                KMIP_RESULT_REASON_OPERATION_CANCELED_BY_REQUESTER);
}

static void test_records_expire(void **state)
{
    kenv_t *e = *state;
    assert_int_equal(restart(e, 4, 1), 0);
    ttlv_item_t *m = async_msg(e);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "Object Type", KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *corr = pending_corr(e, m);
    assert_ok(poll_done(e, corr));
    nanosleep(&(struct timespec){2, 0}, NULL);
    assert_fail(with_corr(e, &alice, KMIP_OPERATION_POLL, corr),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);
}

static void set_client(kenv_t *e, const char *name, const char *tenant, const char *role,
                       bool remove)
{
    store_client_t c;
    memset(&c, 0, sizeof c);
    kms_strlcpy(c.name, name, sizeof c.name);
    kms_strlcpy(c.tenant, tenant, sizeof c.tenant);
    kms_strlcpy(c.role, role, sizeof c.role);
    kms_strlcpy(c.kind, "cert", sizeof c.kind);
    c.created_us = kms_now_us();
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_client(w, &c, remove), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
}

/* Disable (or enable) cert client `name` of tenant ta, role client. */
static void set_disabled(kenv_t *e, const char *name, bool disabled)
{
    store_client_t c;
    memset(&c, 0, sizeof c);
    kms_strlcpy(c.name, name, sizeof c.name);
    kms_strlcpy(c.tenant, "ta", sizeof c.tenant);
    kms_strlcpy(c.role, "client", sizeof c.role);
    kms_strlcpy(c.kind, "cert", sizeof c.kind);
    c.disabled = disabled;
    c.disabled_us = disabled ? kms_now_us() : 0;
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
}

/* Wait until the record of corr is no longer pending (at most ~60 s). */
static void record_done(kenv_t *e, const ttlv_item_t *corr)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    for (int i = 0; i < 6000; i++) {
        store_async_t got;
        assert_int_equal(store_async_get(r, A, corr->v.bytes.ptr, corr->v.bytes.len, &got), 0);
        if (got.state != STORE_ASYNC_PENDING) {
            store_reader_free(r);
            return;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("the operation never finished");
}

/* A queued operation runs as its client is when it starts, not as it was
 * queued: carol, removed while her Create waited behind two slow Derive
 * Keys, gets the answer her next request gets and no key is made (and so
 * does frank, disabled meanwhile); dave,
 * an admin demoted to client meanwhile, has his Locate confined to his
 * tenant (erin's key in tb is not in it). */
static void test_queued_runs_as_the_client_is(void **state)
{
    kenv_t *e = *state;
    static const kmip_peer_t carol = {.cert_cn = "carol", .address = "t"};
    static const kmip_peer_t dave = {.cert_cn = "dave", .address = "t"};
    static const kmip_peer_t erin = {.cert_cn = "erin", .address = "t"};
    static const kmip_peer_t frank = {.cert_cn = "frank", .address = "t"};
    assert_int_equal(kenv_commit_client(e, "carol", "ta", "client", NULL), 0);
    assert_int_equal(kenv_commit_client(e, "frank", "ta", "client", NULL), 0);
    assert_int_equal(kenv_commit_client(e, "dave", "ta", "admin", NULL), 0);
    assert_int_equal(kenv_commit_tenant(e, "tb"), 0);
    assert_int_equal(kenv_commit_client(e, "erin", "tb", "client", NULL), 0);
    ttlv_item_t *m = rq_msg(e, 1, 4);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "erin-key");
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &erin, m), 0);
    assert_ok(bi);
    const char *erin_key = kms_arena_strdup(A, rs_uid(bi));
    const char *pw = password(e);

    int32_t iterations = derive_iterations();
    uint64_t t0 = kms_mono_ns();
    ttlv_item_t *c1 = start_derive(e, pw, iterations);
    ttlv_item_t *c2 = start_derive(e, pw, iterations);
    m = async_msg(e);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "carol-key");
    bi = rs_item(kenv_call_peer(e, &carol, m), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_PENDING);
    ttlv_item_t *cc = ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    m = async_msg(e);
    rq_item(e, m, KMIP_OPERATION_LOCATE);
    bi = rs_item(kenv_call_peer(e, &dave, m), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_PENDING);
    ttlv_item_t *cd = ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    m = async_msg(e);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "frank-key");
    bi = rs_item(kenv_call_peer(e, &frank, m), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_PENDING);
    ttlv_item_t *cf = ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    assert_non_null(cc);
    assert_non_null(cd);
    assert_non_null(cf);
    set_client(e, "carol", "ta", "client", true);
    set_disabled(e, "frank", true);
    set_client(e, "dave", "ta", "client", false);
    /* Both threads still busy: carol's and dave's operations have not started. */
    if (rs_status(with_corr(e, &alice, KMIP_OPERATION_POLL, c1)) !=
            KMIP_RESULT_STATUS_OPERATION_PENDING ||
        rs_status(with_corr(e, &alice, KMIP_OPERATION_POLL, c2)) !=
            KMIP_RESULT_STATUS_OPERATION_PENDING)
        fail_msg("a Derive Key of %d iterations ended within %.2f s: test too small", iterations,
                 (double)(kms_mono_ns() - t0) / 1e9);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    assert_ok(poll_done(e, c1));
    assert_ok(poll_done(e, c2));
    record_done(e, cc);
    record_done(e, cd);
    record_done(e, cf);
    int64_t objects = store_count_objects(r);

    /* What carol's next request gets... */
    m = rq_msg(e, 1, 4);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    ttlv_item_t *refused = rs_item(kenv_call_peer(e, &carol, m), 0);
    assert_fail(refused, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    /* ...is what her queued Create answers (Poll once she is back), and it
     * made nothing. */
    set_client(e, "carol", "ta", "client", false);
    bi = with_corr(e, &carol, KMIP_OPERATION_POLL, cc);
    assert_fail(bi, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_string_equal(ttlv_text(ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE)),
                        ttlv_text(ttlv_find(refused, KMIP_TAG_RESULT_MESSAGE)));
    set_disabled(e, "frank", false);
    bi = with_corr(e, &frank, KMIP_OPERATION_POLL, cf);
    assert_fail(bi, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_string_equal(ttlv_text(ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE)),
                        ttlv_text(ttlv_find(refused, KMIP_TAG_RESULT_MESSAGE)));
    assert_int_equal(store_count_objects(r), objects);
    store_reader_free(r);
    /* dave's Locate ran as a client of ta: erin's key is not in it */
    bi = with_corr(e, &dave, KMIP_OPERATION_POLL, cd);
    assert_ok(bi);
    bool has_pw = false;
    for (ttlv_item_t *c = rs_payload(bi)->first; c; c = c->next)
        if (c->tag == KMIP_TAG_UNIQUE_IDENTIFIER) {
            has_pw |= strcmp(ttlv_text(c), pw) == 0;
            assert_string_not_equal(ttlv_text(c), erin_key);
        }
    assert_true(has_pw); /* ta's objects are in it */
}

/* The records are node-local: no change-log row, so replication never
 * ships them; a record reads back as written. */
static void test_records_are_node_local(void **state)
{
    kenv_t *e = *state;
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    int64_t before = store_last_seq(r);
    uint8_t corr[16] = {9, 9, 9};
    store_async_t a = {.corr = corr, .corr_len = sizeof corr, .identity = "alice",
                       .tenant = "ta", .operation = KMIP_OPERATION_LOCATE,
                       .state = STORE_ASYNC_DONE, .epoch = 7, .created_us = 1,
                       .expires_us = kms_now_us() + 60000000, .result = (const uint8_t *)"xyz",
                       .result_len = 3};
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_async(w, &a), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    assert_int_equal(store_last_seq(r), before);
    store_async_t got;
    assert_int_equal(store_async_get(r, A, corr, sizeof corr, &got), 0);
    assert_string_equal(got.identity, "alice");
    assert_int_equal(got.state, STORE_ASYNC_DONE);
    assert_int_equal(got.epoch, 7);
    assert_int_equal(got.result_len, 3);
    assert_memory_equal(got.result, "xyz", 3);
    size_t n = 0;
    assert_int_equal(store_async_count(r, "alice", "ta", kms_now_us(), &n), 0);
    assert_int_equal(n, 1);
    /* The sweep removes what expired, and only that. */
    w = store_write_new();
    assert_int_equal(store_write_async_delete(w, NULL, 0, kms_now_us() + 120000000), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    assert_int_equal(store_async_get(r, A, corr, sizeof corr, &got), KMS_ERR_NOTFOUND);
    assert_int_equal(store_last_seq(r), before);
    store_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_then_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_is_answered_by_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_are_node_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_runs_as_the_client_is, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
