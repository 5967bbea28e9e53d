/*
 * tests/unit/test_kmip_lifecycle.c: Create, Get, Activate, Revoke,
 * Destroy, Archive/Recover and the usage operations through kmip_handle()
 * on a real store and keyring: the KMIP 1.1 state machine, date-driven
 * transitions, material wiping, digests and the Result Reasons of misuse.
 */
#include "tests/unit/test_kmip_env.h"

#include <pthread.h>

#include <openssl/sha.h>



static const ttlv_item_t *key_bytes(const ttlv_item_t *bi)
{
    ttlv_item_t *sk = ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY);
    ttlv_item_t *kb = sk ? ttlv_find(sk, KMIP_TAG_KEY_BLOCK) : NULL;
    ttlv_item_t *kv = kb ? ttlv_find(kb, KMIP_TAG_KEY_VALUE) : NULL;
    ttlv_item_t *km = kv ? ttlv_find(kv, KMIP_TAG_KEY_MATERIAL) : NULL;
    return km && km->type == TTLV_BYTE_STRING ? km : NULL;
}

static void test_create_get_aes256(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "vcenter-key-1");
    assert_int_equal(strlen(id), 36);
    assert_int_equal(k_state(e, id), KMIP_STATE_PRE_ACTIVE);
    ttlv_item_t *bi = k_get(e, id, 0);
    assert_ok(bi);
    const ttlv_item_t *km = key_bytes(bi);
    assert_non_null(km);
    assert_int_equal(km->v.bytes.len, 32);
    /* Digest attribute = SHA-256 of the key bytes. */
    uint8_t d[32];
    SHA256(km->v.bytes.ptr, km->v.bytes.len, d);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, "Digest");
    ttlv_item_t *dg = rs_attr(rs_payload(rs_item(kenv_call(e, m), 0)), "Digest");
    assert_non_null(dg);
    ttlv_item_t *dv = ttlv_find(dg, KMIP_TAG_DIGEST_VALUE);
    assert_non_null(dv);
    assert_memory_equal(dv->v.bytes.ptr, d, 32);
    /* Two keys differ. */
    char *id2 = k_create_aes(e, NULL);
    const ttlv_item_t *km2 = key_bytes(k_get(e, id2, 0));
    assert_non_null(km2);
    assert_memory_not_equal(km->v.bytes.ptr, km2->v.bytes.ptr, 32);
    /* Transparent Symmetric Key format. */
    bi = k_get(e, id, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY);
    assert_ok(bi);
    /* An unknown format is refused with the right reason. */
    bi = k_get(e, id, KMIP_KEY_FORMAT_TYPE_PKCS_1);
    assert_fail(bi, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
}

static void test_create_algorithms(void **state)
{
    kenv_t *e = *state;
    struct { uint32_t alg; int32_t bits; size_t bytes; } ok[] = {
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 16},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 192, 24},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 168, 24},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, 192, 24},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 256, 32},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384, 384, 48},
        {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512, 512, 64},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ok); i++) {
        ttlv_item_t *bi = k_create(e, ok[i].alg, ok[i].bits, 0, NULL);
        assert_ok(bi);
        const char *id = kms_arena_strdup(e->a, rs_uid(bi));
        const ttlv_item_t *km = key_bytes(k_get(e, id, 0));
        assert_non_null(km);
        assert_int_equal(km->v.bytes.len, ok[i].bytes);
    }
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 100, 0, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Unknown usage mask bits. */
    assert_fail(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0x40000000, NULL),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Missing algorithm; wrong object type; server-only attribute. */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_int(e, ta, "Cryptographic Length", 256);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_CREATE);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_PRIVATE_KEY);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    m = rq_msg(e, 1, 1);
    ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0, NULL);
    rq_attr_enum(e, ta, "State", KMIP_STATE_ACTIVE);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* A single-valued attribute twice. */
    m = rq_msg(e, 1, 1);
    ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0, NULL);
    rq_attr_int(e, ta, "Cryptographic Length", 128);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_state_machine(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    /* Pre-Active: Get works, Obtain Lease does not. */
    assert_fail(k_op_uid(e, KMIP_OPERATION_OBTAIN_LEASE, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);
    assert_fail(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(k_op_uid(e, KMIP_OPERATION_OBTAIN_LEASE, id));
    /* Active keys are not destroyed. */
    assert_fail(k_op_uid(e, KMIP_OPERATION_DESTROY, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(k_revoke(e, id, KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION));
    assert_int_equal(k_state(e, id), KMIP_STATE_DEACTIVATED);
    /* Deactivated: another non-compromise revoke is refused. */
    assert_fail(k_revoke(e, id, KMIP_REVOCATION_REASON_CODE_SUPERSEDED),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(k_op_uid(e, KMIP_OPERATION_DESTROY, id));
    assert_int_equal(k_state(e, id), KMIP_STATE_DESTROYED);
    /* Destroyed: Get is Item Not Found, metadata stays readable. */
    assert_fail(k_get(e, id, 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_fail(k_op_uid(e, KMIP_OPERATION_DESTROY, id), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_ok(k_op_uid(e, KMIP_OPERATION_GET_ATTRIBUTE_LIST, id));
    /* The sealed material is gone from the store row. */
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    store_object_t *so = NULL;
    assert_int_equal(store_get(r, e->a, id, NULL, &so), 0);
    assert_null(so->sealed.blob);
    assert_int_equal(so->sealed.dsk_id, 0);
    assert_int_equal(so->state, KMIP_STATE_DESTROYED);
    store_reader_free(r);
    /* Destroyed -> Destroyed Compromised. */
    assert_ok(k_revoke(e, id, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE));
    assert_int_equal(k_state(e, id), KMIP_STATE_DESTROYED_COMPROMISED);
}

static void test_compromise(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REVOKE);
    rq_uid(e, p, id);
    ttlv_item_t *rr = ttlv_new_struct(e->a, p, KMIP_TAG_REVOCATION_REASON);
    ttlv_new_enum(e->a, rr, KMIP_TAG_REVOCATION_REASON_CODE, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE);
    ttlv_new_datetime(e->a, p, KMIP_TAG_COMPROMISE_OCCURRENCE_DATE, 6);
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_int_equal(k_state(e, id), KMIP_STATE_COMPROMISED);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    ttlv_item_t *pl = rs_payload(rs_item(kenv_call(e, m), 0));
    ttlv_item_t *cod = rs_attr(pl, "Compromise Occurrence Date");
    assert_non_null(cod);
    assert_int_equal(cod->v.i64, 6);
    assert_non_null(rs_attr(pl, "Compromise Date"));
    assert_non_null(rs_attr(pl, "Revocation Reason"));
    /* Compromised keys can still be fetched (KMIP 1.1 test case 4.1). */
    assert_ok(k_get(e, id, 0));
    assert_fail(k_op_uid(e, KMIP_OPERATION_OBTAIN_LEASE, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(k_op_uid(e, KMIP_OPERATION_DESTROY, id));
    assert_int_equal(k_state(e, id), KMIP_STATE_DESTROYED_COMPROMISED);
    /* Revoke without a reason. */
    char *id2 = k_create_aes(e, NULL);
    assert_fail(k_op_uid(e, KMIP_OPERATION_REVOKE, id2), KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_activation_dates(void **state)
{
    kenv_t *e = *state;
    int64_t now = kms_now_us() / 1000000;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    rq_attr_date(e, ta, "Activation Date", now - 10);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);

    m = rq_msg(e, 1, 1);
    ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    rq_attr_date(e, ta, "Activation Date", now + 2);
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *id2 = kms_arena_strdup(e->a, rs_uid(bi));
    assert_int_equal(k_state(e, id2), KMIP_STATE_PRE_ACTIVE);
    sleep(3);
    /* evaluated when read, and stored */
    assert_int_equal(k_state(e, id2), KMIP_STATE_ACTIVE);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    store_object_t *so = NULL;
    assert_int_equal(store_get(r, e->a, id2, NULL, &so), 0);
    assert_int_equal(so->state, KMIP_STATE_ACTIVE);
    store_reader_free(r);

    /* Deactivation Date in the past on an active key. */
    m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, id);
    rq_attr_date(e, p, "Deactivation Date", now - 1);
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_int_equal(k_state(e, id), KMIP_STATE_DEACTIVATED);
    /* Activation Date can no longer be modified once active. */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_MODIFY_ATTRIBUTE);
    rq_uid(e, p, id2);
    rq_attr_date(e, p, "Activation Date", now + 100);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

static void test_archive_recover(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "arch");
    assert_ok(k_op_uid(e, KMIP_OPERATION_ARCHIVE, id));
    assert_fail(k_get(e, id, 0), KMIP_RESULT_REASON_OBJECT_ARCHIVED);
    assert_fail(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id), KMIP_RESULT_REASON_OBJECT_ARCHIVED);
    assert_ok(k_op_uid(e, KMIP_OPERATION_RECOVER, id));
    assert_ok(k_get(e, id, 0));
    assert_fail(k_op_uid(e, KMIP_OPERATION_ARCHIVE, "no-such-id"), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
}

static void test_usage_allocation(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, id);
    ttlv_item_t *v = ttlv_new_struct(e->a, rq_attr(e, p, "Usage Limits"), KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_long(e->a, v, KMIP_TAG_USAGE_LIMITS_TOTAL, 1000);
    ttlv_new_enum(e->a, v, KMIP_TAG_USAGE_LIMITS_UNIT, 1);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *ul = rs_attr(rs_payload(bi), "Usage Limits");
    assert_non_null(ul);
    assert_int_equal(ttlv_find(ul, KMIP_TAG_USAGE_LIMITS_COUNT)->v.i64, 1000);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    for (int i = 0; i < 3; i++) {
        m = rq_msg(e, 1, 1);
        p = rq_item(e, m, KMIP_OPERATION_GET_USAGE_ALLOCATION);
        rq_uid(e, p, id);
        ttlv_new_long(e->a, p, KMIP_TAG_USAGE_LIMITS_COUNT, 500);
        bi = rs_item(kenv_call(e, m), 0);
        if (i < 2)
            assert_ok(bi);
        else
            assert_fail(bi, KMIP_RESULT_REASON_PERMISSION_DENIED);
    }
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_CHECK);
    rq_uid(e, p, id);
    ttlv_new_long(e->a, p, KMIP_TAG_USAGE_LIMITS_COUNT, 1);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_CHECK);
    rq_uid(e, p, id);
    ttlv_new_int(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, 4);
    assert_ok(rs_item(kenv_call(e, m), 0));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_CHECK);
    rq_uid(e, p, id);
    ttlv_new_int(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, 1); /* Sign */
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

static void test_key_wrapping(void **state)
{
    kenv_t *e = *state;
    char *kek = kms_arena_strdup(e->a, rs_uid(k_create(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                                                       0x10 | 0x20, NULL)));
    char *id = k_create_aes(e, NULL);
    ttlv_item_t *m, *p, *kws, *eki;
#define WRAP_REQ()                                                                    \
    m = rq_msg(e, 1, 1);                                                              \
    p = rq_item(e, m, KMIP_OPERATION_GET);                                            \
    rq_uid(e, p, id);                                                                 \
    kws = ttlv_new_struct(e->a, p, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);              \
    ttlv_new_enum(e->a, kws, KMIP_TAG_WRAPPING_METHOD, KMIP_WRAPPING_METHOD_ENCRYPT); \
    eki = ttlv_new_struct(e->a, kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);            \
    rq_uid(e, eki, kek);
    WRAP_REQ();
    /* The KEK is not active yet (the crypto side answers Illegal Operation). */
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, kek));
    WRAP_REQ();
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *kb = ttlv_find(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY), KMIP_TAG_KEY_BLOCK);
    assert_non_null(kb);
    assert_non_null(ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA));
    /* A KEK without Wrap Key in its mask. */
    kek = k_create_aes(e, NULL);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, kek));
    WRAP_REQ();
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
#undef WRAP_REQ
}

/* Several threads change one object at once through kmip_handle(): each
 * thread gets its own store reader, and optimistic-concurrency conflicts
 * are retried, so no update is lost. */
#define CONC_THREADS 4
#define CONC_ADDS 8

typedef struct conc_arg {
    kenv_t *e;
    const char *id;
    int t;
    int ok;
} conc_arg_t;

static void *conc_worker(void *p)
{
    conc_arg_t *c = p;
    kms_arena_t *a = kms_arena_new(0);
    for (int i = 0; i < CONC_ADDS; i++) {
        ttlv_item_t *m = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE);
        ttlv_item_t *h = ttlv_new_struct(a, m, KMIP_TAG_REQUEST_HEADER);
        ttlv_item_t *pv = ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION);
        ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
        ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, 1);
        ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, 1);
        ttlv_item_t *bi = ttlv_new_struct(a, m, KMIP_TAG_BATCH_ITEM);
        ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, KMIP_OPERATION_ADD_ATTRIBUTE);
        ttlv_item_t *pl = ttlv_new_struct(a, bi, KMIP_TAG_REQUEST_PAYLOAD);
        ttlv_new_textz(a, pl, KMIP_TAG_UNIQUE_IDENTIFIER, c->id);
        ttlv_item_t *at = ttlv_new_struct(a, pl, KMIP_TAG_ATTRIBUTE);
        ttlv_new_textz(a, at, KMIP_TAG_ATTRIBUTE_NAME, "x-concurrent");
        ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE, c->t * 100 + i);
        kms_buf_t b, out;
        kms_buf_init(&b, 0);
        kms_buf_init(&out, 0);
        ttlv_encode(m, &b);
        kmip_summary_t sum;
        if (kmip_handle(c->e->srv, NULL, b.data, b.len, &out, &sum) == 0 &&
            sum.result_status == KMIP_RESULT_STATUS_SUCCESS)
            c->ok++;
        kms_buf_dispose(&b);
        kms_buf_dispose(&out);
        kms_arena_reset(a);
    }
    kms_arena_free(a);
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    pthread_t th[CONC_THREADS];
    conc_arg_t args[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        args[t] = (conc_arg_t){.e = e, .id = id, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, conc_worker, &args[t]), 0);
    }
    int ok = 0;
    for (int t = 0; t < CONC_THREADS; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].ok;
    }
    assert_int_equal(ok, CONC_THREADS * CONC_ADDS);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, "x-concurrent");
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_int_equal(ttlv_count(rs_payload(bi), KMIP_TAG_ATTRIBUTE), CONC_THREADS * CONC_ADDS);
    /* the key material still opens after all those re-seals */
    assert_ok(k_get(e, id, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_aes256, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_create_algorithms, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_state_machine, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_compromise, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_activation_dates, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_archive_recover, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_usage_allocation, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_key_wrapping, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_updates, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
