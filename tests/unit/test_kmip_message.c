/*
 * tests/unit/test_kmip_message.c: the message layer (kmip_handle() and
 * the request value's steps): header checks (versions, Batch Count,
 * Maximum Response Size, Asynchronous Indicator), Invalid Message /
 * Operation Not Supported / Feature Not Supported, Batch Error
 * Continuation (Stop, Continue, Undo), the ID Placeholder, Unique Batch
 * Item ID echo, Query and Discover Versions, the gate, and the summary, on
 * a real store and keyring.
 */
#include "tests/unit/test_kmip_env.h"


static int resp_version(const ttlv_item_t *resp, int *min)
{
    ttlv_item_t *h = ttlv_find(resp, KMIP_TAG_RESPONSE_HEADER);
    ttlv_item_t *pv = ttlv_find(h, KMIP_TAG_PROTOCOL_VERSION);
    *min = ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR)->v.i32;
    return ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR)->v.i32;
}

static void test_not_ttlv(void **state)
{
    kenv_t *e = *state;
    static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
    kenv_call_raw(e, NULL, junk, sizeof(junk) - 1);
    assert_int_equal(e->last_rc, KMS_ERR_PROTO);
    /* Truncated TTLV. */
    static const uint8_t trunc[] = {0x42, 0x00, 0x78, 0x01, 0x00, 0x00, 0x00, 0x20, 0x42};
    kenv_call_raw(e, NULL, trunc, sizeof(trunc));
    assert_int_equal(e->last_rc, KMS_ERR_PROTO);
}

static void test_invalid_message(void **state)
{
    kenv_t *e = *state;
    /* Valid TTLV, but not a Request Message. */
    ttlv_item_t *x = ttlv_new_int(e->a, NULL, KMIP_TAG_BATCH_COUNT, 1);
    kms_buf_t b;
    kms_buf_init(&b, 0);
    assert_int_equal(ttlv_encode(x, &b), 0);
    ttlv_item_t *r = kenv_call_raw(e, NULL, b.data, b.len);
    kms_buf_dispose(&b);
    assert_int_equal(e->last_rc, 0);
    assert_non_null(r);
    assert_int_equal(r->tag, KMIP_TAG_RESPONSE_MESSAGE);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* No header. */
    ttlv_item_t *m = ttlv_new_struct(e->a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *bi = ttlv_new_struct(e->a, m, KMIP_TAG_BATCH_ITEM);
    ttlv_new_enum(e->a, bi, KMIP_TAG_OPERATION, KMIP_OPERATION_QUERY);
    kms_buf_init(&b, 0);
    assert_int_equal(ttlv_encode(m, &b), 0);
    r = kenv_call_raw(e, NULL, b.data, b.len);
    kms_buf_dispose(&b);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* Batch Count that does not match. */
    m = rq_msg(e, 1, 1);
    rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    ttlv_new_int(e->a, rq_header(m), KMIP_TAG_BATCH_COUNT, 1);
    kms_buf_init(&b, 0);
    ttlv_find(rq_header(m), KMIP_TAG_BATCH_COUNT)->v.i32 = 3;
    assert_int_equal(ttlv_encode(m, &b), 0);
    r = kenv_call_raw(e, NULL, b.data, b.len);
    kms_buf_dispose(&b);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* Batch Item without an Operation. */
    m = rq_msg(e, 1, 1);
    ttlv_new_struct(e->a, m, KMIP_TAG_BATCH_ITEM);
    r = kenv_call(e, m);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    assert_int_equal(e->sum.result_status, KMIP_RESULT_STATUS_OPERATION_FAILED);
}

/* Nesting deeper than the configured limit is Invalid Message, not a
 * crash or a closed connection. */
static void test_ttlv_limits(void **state)
{
    kenv_t *e = *state;
    kmip_config_t c = {.store = e->store, .keyring = e->kr, .max_depth = 4, .max_items = 40,
                       .access = KMIP_ACCESS_OPEN};
    kmip_server_t *small = NULL;
    assert_int_equal(kmip_server_new(&c, &small), 0);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_name(e, p, "deep"); /* Message/Item/Payload/Attribute/Value/Name Value: depth 6 */
    ttlv_new_int(e->a, rq_header(m), KMIP_TAG_BATCH_COUNT, 1);
    kms_buf_t b, out;
    kms_buf_init(&b, 0);
    kms_buf_init(&out, 0);
    assert_int_equal(ttlv_encode(m, &b), 0);
    kmip_summary_t sum;
    assert_int_equal(kmip_handle(small, NULL, b.data, b.len, &out, &sum), 0);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* the default server answers the same request */
    assert_ok(rs_item(kenv_call_raw(e, NULL, b.data, b.len), 0));
    kms_buf_dispose(&b);
    kms_buf_dispose(&out);
    kmip_server_free(small);
}

static void test_versions(void **state)
{
    kenv_t *e = *state;
    for (int min = 0; min <= 4; min++) {
        ttlv_item_t *m = rq_msg(e, 1, min);
        rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
        ttlv_item_t *r = kenv_call(e, m);
        assert_ok(rs_item(r, 0));
        int rmin;
        assert_int_equal(resp_version(r, &rmin), 1);
        assert_int_equal(rmin, min);
    }
    ttlv_item_t *m = rq_msg(e, 2, 0);
    rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    m = rq_msg(e, 1, 5);
    rq_item(e, m, KMIP_OPERATION_QUERY);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
}

static void test_discover_versions(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    ttlv_item_t *p = rs_payload(rs_item(kenv_call(e, m), 0));
    assert_int_equal(ttlv_count(p, KMIP_TAG_PROTOCOL_VERSION), 5);
    ttlv_item_t *pv = ttlv_find(p, KMIP_TAG_PROTOCOL_VERSION);
    assert_int_equal(ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR)->v.i32, 4);
    /* Client list 1.1, 2.0, 1.3: answer 1.1, 1.3 in the client's order. */
    m = rq_msg(e, 1, 1);
    ttlv_item_t *rp = rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    int l[][2] = {{1, 1}, {2, 0}, {1, 3}};
    for (int i = 0; i < 3; i++) {
        ttlv_item_t *v = ttlv_new_struct(e->a, rp, KMIP_TAG_PROTOCOL_VERSION);
        ttlv_new_int(e->a, v, KMIP_TAG_PROTOCOL_VERSION_MAJOR, l[i][0]);
        ttlv_new_int(e->a, v, KMIP_TAG_PROTOCOL_VERSION_MINOR, l[i][1]);
    }
    p = rs_payload(rs_item(kenv_call(e, m), 0));
    assert_int_equal(ttlv_count(p, KMIP_TAG_PROTOCOL_VERSION), 2);
    pv = ttlv_find(p, KMIP_TAG_PROTOCOL_VERSION);
    assert_int_equal(ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR)->v.i32, 1);
    pv = ttlv_find_next(pv, KMIP_TAG_PROTOCOL_VERSION);
    assert_int_equal(ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR)->v.i32, 3);
    /* Only unknown versions: empty list. */
    m = rq_msg(e, 1, 1);
    rp = rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    ttlv_item_t *v = ttlv_new_struct(e->a, rp, KMIP_TAG_PROTOCOL_VERSION);
    ttlv_new_int(e->a, v, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 3);
    ttlv_new_int(e->a, v, KMIP_TAG_PROTOCOL_VERSION_MINOR, 0);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_int_equal(ttlv_count(rs_payload(bi), KMIP_TAG_PROTOCOL_VERSION), 0);
}

static void test_query(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    for (uint32_t f = 1; f <= 6; f++)
        ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, f);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *pl = rs_payload(bi);
    bool has_create = false, has_poll = false;
    for (ttlv_item_t *o = ttlv_find(pl, KMIP_TAG_OPERATION); o; o = ttlv_find_next(o, KMIP_TAG_OPERATION)) {
        has_create |= ttlv_u32(o) == KMIP_OPERATION_CREATE;
        has_poll |= ttlv_u32(o) == KMIP_OPERATION_POLL;
    }
    assert_true(has_create);
    assert_true(has_poll);
    assert_true(ttlv_count(pl, KMIP_TAG_OBJECT_TYPE) >= 1);
    ttlv_item_t *vid = ttlv_find(pl, KMIP_TAG_VENDOR_IDENTIFICATION);
    assert_non_null(vid);
    assert_string_equal(ttlv_text(vid), "kmsd test");
    assert_int_equal(ttlv_count(pl, KMIP_TAG_APPLICATION_NAMESPACE), 0);
}

static void test_not_supported(void **state)
{
    kenv_t *e = *state;
    /* Certify without an issuing CA; Notify and Put are server-to-client. */
    uint32_t ops[] = {KMIP_OPERATION_CERTIFY, KMIP_OPERATION_NOTIFY, KMIP_OPERATION_PUT, 0x77};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ops); i++) {
        ttlv_item_t *m = rq_msg(e, 1, 1);
        rq_item(e, m, ops[i]);
        ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
        assert_fail(bi, KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED);
        assert_int_equal(ttlv_u32(ttlv_find(bi, KMIP_TAG_OPERATION)), ops[i]);
    }
}

static void add_extension(kenv_t *e, ttlv_item_t *msg, bool critical)
{
    ttlv_item_t *bi = ttlv_find(msg, KMIP_TAG_BATCH_ITEM);
    ttlv_item_t *x = ttlv_new_struct(e->a, bi, KMIP_TAG_MESSAGE_EXTENSION);
    ttlv_new_textz(e->a, x, KMIP_TAG_VENDOR_IDENTIFICATION, "ExampleVendor");
    ttlv_new_bool(e->a, x, KMIP_TAG_CRITICALITY_INDICATOR, critical);
    ttlv_new_struct(e->a, x, KMIP_TAG_VENDOR_EXTENSION);
}

static void test_extensions_async(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, 1);
    add_extension(e, m, false);
    assert_ok(rs_item(kenv_call(e, m), 0));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_QUERY);
    add_extension(e, m, true);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    m = rq_msg(e, 1, 1);
    ttlv_new_bool(e->a, rq_header(m), KMIP_TAG_ASYNCHRONOUS_INDICATOR, true);
    rq_item(e, m, KMIP_OPERATION_LOCATE);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_PENDING);
    assert_non_null(ttlv_find(bi, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE));
}

static void test_max_response_size(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_new_int(e->a, rq_header(m), KMIP_TAG_MAXIMUM_RESPONSE_SIZE, 256);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, 1);
    ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, 2);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_fail(bi, KMIP_RESULT_REASON_RESPONSE_TOO_LARGE);
    assert_null(rs_payload(bi));
    /* A large enough limit answers normally. */
    ttlv_find(rq_header(m), KMIP_TAG_MAXIMUM_RESPONSE_SIZE)->v.i32 = 100000;
    assert_ok(rs_item(kenv_call(e, m), 0));
}

static void test_id_placeholder_batch(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "ph");
    rq_item(e, m, KMIP_OPERATION_ACTIVATE);
    rq_item(e, m, KMIP_OPERATION_GET);
    /* echo of the Unique Batch Item ID */
    ttlv_item_t *bi2 = rs_item(m, 2);
    ttlv_item_t *pl = ttlv_find(bi2, KMIP_TAG_REQUEST_PAYLOAD);
    ttlv_remove(pl);
    ttlv_new_bytes(e->a, bi2, KMIP_TAG_UNIQUE_BATCH_ITEM_ID, "\x01\x02\x03", 3);
    ttlv_append(bi2, pl);
    ttlv_item_t *r = kenv_call(e, m);
    assert_int_equal(ttlv_find(ttlv_find(r, KMIP_TAG_RESPONSE_HEADER), KMIP_TAG_BATCH_COUNT)->v.i32, 3);
    const char *id = rs_uid(rs_item(r, 0));
    assert_non_null(id);
    assert_ok(rs_item(r, 1));
    assert_string_equal(rs_uid(rs_item(r, 1)), id);
    assert_ok(rs_item(r, 2));
    assert_string_equal(rs_uid(rs_item(r, 2)), id);
    ttlv_item_t *ubi = ttlv_find(rs_item(r, 2), KMIP_TAG_UNIQUE_BATCH_ITEM_ID);
    assert_non_null(ubi);
    assert_memory_equal(ubi->v.bytes.ptr, "\x01\x02\x03", 3);
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);
    assert_int_equal(e->sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
    /* Without a placeholder: Invalid Field. */
    m = rq_msg(e, 1, 1);
    rq_item(e, m, KMIP_OPERATION_GET);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
}

static ttlv_item_t *failing_batch(kenv_t *e, uint32_t bec)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    if (bec)
        ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION, bec);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "batch");
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET);
    rq_uid(e, p, "does-not-exist");
    p = rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, 3);
    return kenv_call(e, m);
}

static void test_batch_error_continuation(void **state)
{
    kenv_t *e = *state;
    /* Stop (default): the failed item is the last answered. */
    ttlv_item_t *r = failing_batch(e, 0);
    assert_int_equal(ttlv_count(r, KMIP_TAG_BATCH_ITEM), 2);
    assert_ok(rs_item(r, 0));
    assert_fail(rs_item(r, 1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Continue: all three. */
    r = failing_batch(e, KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE);
    assert_int_equal(ttlv_count(r, KMIP_TAG_BATCH_ITEM), 3);
    assert_ok(rs_item(r, 0));
    assert_fail(rs_item(r, 1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_ok(rs_item(r, 2));
    /* Undo: the Create is rolled back. */
    r = failing_batch(e, KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO);
    assert_int_equal(ttlv_count(r, KMIP_TAG_BATCH_ITEM), 2);
    assert_int_equal(rs_status(rs_item(r, 0)), KMIP_RESULT_STATUS_OPERATION_UNDONE);
    assert_fail(rs_item(r, 1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Exactly two "batch" keys exist (from Stop and Continue). */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_name(e, p, "batch");
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_int_equal(ttlv_count(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER), 2);
}

static void test_undo_modification(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                  KMIP_BATCH_ERROR_CONTINUATION_OPTION_UNDO);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_ACTIVATE);
    rq_uid(e, p, id);
    p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, id);
    rq_attr_text(e, p, "x-undo", "v");
    p = rq_item(e, m, KMIP_OPERATION_DESTROY); /* Active: refused */
    rq_uid(e, p, id);
    ttlv_item_t *r = kenv_call(e, m);
    assert_int_equal(rs_status(rs_item(r, 0)), KMIP_RESULT_STATUS_OPERATION_UNDONE);
    assert_int_equal(rs_status(rs_item(r, 1)), KMIP_RESULT_STATUS_OPERATION_UNDONE);
    assert_fail(rs_item(r, 2), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_int_equal(k_state(e, id), KMIP_STATE_PRE_ACTIVE);
    /* the key material still opens: the earlier row went back as it was */
    ttlv_item_t *bi = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    assert_null(rs_attr(rs_payload(rs_item(kenv_call(e, m), 0)), "x-undo"));
}

/* The request value's steps one by one, with the gate closed for key
 * material (the server passes the HSM's health as data): the Get and the
 * Create are answered General Failure with the server's reason, the Get
 * Attributes runs; with the gate open everything runs. */
static ttlv_item_t *gated_batch(kenv_t *e, const char *id, bool keys_unavailable,
                                kmip_summary_t *sum)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                  KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES), id);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    kmip_request_t *r = kenv_request(e, NULL, m);
    kmip_gate_t g = {.keys_unavailable = keys_unavailable, .keys_reason = "HSM unavailable"};
    kmip_request_gate(r, &g);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    ttlv_item_t *resp = kenv_answer(e, r);
    kmip_request_summary(r, sum);
    kmip_request_free(r);
    return resp;
}

static void test_gate(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    kmip_summary_t sum;
    ttlv_item_t *r = gated_batch(e, id, true, &sum);
    assert_int_equal(ttlv_count(r, KMIP_TAG_BATCH_ITEM), 3);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_string_equal(ttlv_text(ttlv_find(rs_item(r, 0), KMIP_TAG_RESULT_MESSAGE)),
                        "HSM unavailable");
    assert_ok(rs_item(r, 1));
    assert_fail(rs_item(r, 2), KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_GENERAL_FAILURE);
    r = gated_batch(e, id, false, &sum);
    assert_ok(rs_item(r, 0));
    assert_ok(rs_item(r, 1));
    assert_ok(rs_item(r, 2));
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_ttlv, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_message, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_ttlv_limits, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_versions, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_discover_versions, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_query, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_not_supported, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_extensions_async, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_max_response_size, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_id_placeholder_batch, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_batch_error_continuation, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_undo_modification, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_gate, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
