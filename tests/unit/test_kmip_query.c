/*
 * tests/unit/test_kmip_query.c: Query as KMIP 1.0-1.4 define it, through
 * kmip_handle() on a real store: the payload order, operations limited to
 * those with a handler and defined by the request's version (in numeric
 * order), an empty Server Information structure, no Extension
 * Information, RNG Parameters, Profile Information and Capability
 * Information for 1.3+ requests only, and the Maximum Response Size:
 * informational lists trimmed to fit, Response Too Large only when the
 * operations and object types themselves do not fit.
 */
#include "tests/unit/test_kmip_env.h"

static ttlv_item_t *query(kenv_t *e, int minor, int32_t max_size, const uint32_t *fns, size_t n)
{
    ttlv_item_t *m = rq_msg(e, 1, minor);
    if (max_size)
        ttlv_new_int(e->a, rq_header(m), KMIP_TAG_MAXIMUM_RESPONSE_SIZE, max_size);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    for (size_t i = 0; i < n; i++)
        ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, fns[i]);
    return rs_item(kenv_call(e, m), 0);
}

static const uint32_t ALL[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* The tags of the payload's children, in order, are one of the spec's
 * sequence (each tag at most once as a run). */
static void assert_spec_order(const ttlv_item_t *pl)
{
    static const uint32_t order[] = {
        KMIP_TAG_OPERATION,          KMIP_TAG_OBJECT_TYPE,
        KMIP_TAG_VENDOR_IDENTIFICATION, KMIP_TAG_SERVER_INFORMATION,
        KMIP_TAG_APPLICATION_NAMESPACE, KMIP_TAG_EXTENSION_INFORMATION,
        KMIP_TAG_ATTESTATION_TYPE,   KMIP_TAG_RNG_PARAMETERS,
        KMIP_TAG_PROFILE_INFORMATION, KMIP_TAG_VALIDATION_INFORMATION,
        KMIP_TAG_CAPABILITY_INFORMATION, KMIP_TAG_CLIENT_REGISTRATION_METHOD,
    };
    size_t pos = 0;
    for (const ttlv_item_t *c = pl->first; c; c = c->next) {
        while (pos < KMS_ARRAY_SIZE(order) && order[pos] != c->tag)
            pos++;
        assert_true(pos < KMS_ARRAY_SIZE(order));
    }
}

static void test_query_14(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *bi = query(e, 4, 0, ALL, KMS_ARRAY_SIZE(ALL));
    assert_ok(bi);
    ttlv_item_t *pl = rs_payload(bi);
    assert_spec_order(pl);
    /* Operations: ascending, each with a handler. */
    uint32_t last = 0;
    bool create = false, query_op = false;
    for (ttlv_item_t *o = ttlv_find(pl, KMIP_TAG_OPERATION); o;
         o = ttlv_find_next(o, KMIP_TAG_OPERATION)) {
        assert_true(ttlv_u32(o) > last);
        last = ttlv_u32(o);
        create |= last == KMIP_OPERATION_CREATE;
        query_op |= last == KMIP_OPERATION_QUERY;
        /* Every operation it names answers something other than
         * Operation Not Supported. */
        ttlv_item_t *m = rq_msg(e, 1, 4);
        rq_item(e, m, last);
        assert_int_not_equal(rs_reason(rs_item(kenv_call(e, m), 0)),
                             KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED);
    }
    assert_true(create && query_op);
    /* Object types ascending. */
    last = 0;
    for (ttlv_item_t *o = ttlv_find(pl, KMIP_TAG_OBJECT_TYPE); o;
         o = ttlv_find_next(o, KMIP_TAG_OBJECT_TYPE)) {
        assert_true(ttlv_u32(o) > last);
        last = ttlv_u32(o);
    }
    /* Server Information: a structure, present though empty. */
    ttlv_item_t *si = ttlv_find(pl, KMIP_TAG_SERVER_INFORMATION);
    assert_non_null(si);
    assert_int_equal(si->type, TTLV_STRUCTURE);
    assert_string_equal(ttlv_text(ttlv_find(pl, KMIP_TAG_VENDOR_IDENTIFICATION)), "kmsd test");
    /* No vendor tags, no attestation, no validation claimed. */
    assert_null(ttlv_find(pl, KMIP_TAG_EXTENSION_INFORMATION));
    assert_null(ttlv_find(pl, KMIP_TAG_ATTESTATION_TYPE));
    assert_null(ttlv_find(pl, KMIP_TAG_VALIDATION_INFORMATION));
    /* RNG Parameters: OpenSSL's CTR-DRBG. */
    ttlv_item_t *rng = ttlv_find(pl, KMIP_TAG_RNG_PARAMETERS);
    assert_non_null(rng);
    assert_int_equal(ttlv_u32(ttlv_find(rng, KMIP_TAG_RNG_ALGORITHM)), KMIP_RNG_ALGORITHM_DRBG);
    assert_int_equal(ttlv_u32(ttlv_find(rng, KMIP_TAG_DRBG_ALGORITHM)), KMIP_DRBG_ALGORITHM_CTR);
    /* Profiles: the Symmetric Key Lifecycle Server in each version, the
     * Baseline Server from 1.2 (0x01, 0x55, 0x79). */
    bool skl10 = false, skl14 = false, base12 = false, base14 = false;
    for (ttlv_item_t *pi = ttlv_find(pl, KMIP_TAG_PROFILE_INFORMATION); pi;
         pi = ttlv_find_next(pi, KMIP_TAG_PROFILE_INFORMATION)) {
        uint32_t n = ttlv_u32(ttlv_find(pi, KMIP_TAG_PROFILE_NAME));
        skl10 |= n == 0x10;
        skl14 |= n == 0x82;
        base12 |= n == 0x01;
        base14 |= n == 0x79;
    }
    assert_true(skl10 && skl14 && base12 && base14);
    ttlv_item_t *cap = ttlv_find(pl, KMIP_TAG_CAPABILITY_INFORMATION);
    assert_non_null(cap);
    assert_true(ttlv_find(cap, KMIP_TAG_BATCH_UNDO_CAPABILITY)->v.b);
    assert_true(ttlv_find(cap, KMIP_TAG_BATCH_CONTINUE_CAPABILITY)->v.b);
    assert_int_equal(ttlv_u32(ttlv_find(cap, KMIP_TAG_DESTROY_ACTION)),
                     KMIP_DESTROY_ACTION_KEY_MATERIAL_DELETED);
}

/* A 1.1 client gets nothing KMIP 1.1 does not define. */
static void test_query_by_version(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *pl = rs_payload(query(e, 1, 0, ALL, KMS_ARRAY_SIZE(ALL)));
    for (ttlv_item_t *o = ttlv_find(pl, KMIP_TAG_OPERATION); o;
         o = ttlv_find_next(o, KMIP_TAG_OPERATION))
        assert_true(ttlv_u32(o) <= KMIP_OPERATION_DISCOVER_VERSIONS);
    assert_null(ttlv_find(pl, KMIP_TAG_PROFILE_INFORMATION));
    assert_null(ttlv_find(pl, KMIP_TAG_RNG_PARAMETERS));
    assert_null(ttlv_find(pl, KMIP_TAG_CAPABILITY_INFORMATION));
    /* 1.0: no Re-key Key Pair (0x1D), no Discover Versions (0x1E). */
    pl = rs_payload(query(e, 0, 0, ALL, 1));
    for (ttlv_item_t *o = ttlv_find(pl, KMIP_TAG_OPERATION); o;
         o = ttlv_find_next(o, KMIP_TAG_OPERATION))
        assert_true(ttlv_u32(o) < KMIP_OPERATION_REKEY_KEY_PAIR);
    /* 1.3: profile versions up to 1.3 only. */
    pl = rs_payload(query(e, 3, 0, (const uint32_t[]){10}, 1));
    assert_non_null(ttlv_find(pl, KMIP_TAG_PROFILE_INFORMATION));
    for (ttlv_item_t *pi = ttlv_find(pl, KMIP_TAG_PROFILE_INFORMATION); pi;
         pi = ttlv_find_next(pi, KMIP_TAG_PROFILE_INFORMATION))
        assert_true(ttlv_u32(ttlv_find(pi, KMIP_TAG_PROFILE_NAME)) <= 0x78);
}

/* Maximum Response Size: informational lists are trimmed to fit; only a
 * limit the required part cannot meet is Response Too Large. */
static void test_query_max_response(void **state)
{
    kenv_t *e = *state;
    kms_buf_t b;
    ttlv_item_t *full = query(e, 4, 0, ALL, KMS_ARRAY_SIZE(ALL));
    size_t n_full = ttlv_count(rs_payload(full), KMIP_TAG_PROFILE_INFORMATION);
    assert_true(n_full > 4);
    /* The required part alone: Operations, Object Types, Vendor
     * Identification, Server Information. */
    ttlv_item_t *req = rs_payload(query(e, 4, 0, ALL, 3));
    size_t required = ttlv_encoded_size(req);
    /* A limit 300 bytes above the required answer: it succeeds, fits, and
     * some profiles were left out. */
    int32_t lim = (int32_t)(required + 160 + 300);
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_new_int(e->a, rq_header(m), KMIP_TAG_MAXIMUM_RESPONSE_SIZE, lim);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ALL); i++)
        ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, ALL[i]);
    kenv_encode(e, m, &b);
    kms_buf_t out;
    kms_buf_init(&out, 1 << 20);
    assert_int_equal(kmip_handle(e->srv, NULL, b.data, b.len, &out, NULL), 0);
    assert_true(out.len <= (size_t)lim);
    ttlv_item_t *root = NULL;
    kms_error_t err;
    assert_int_equal(ttlv_decode(out.data, out.len, NULL, e->a, &root, &err), 0);
    kms_buf_dispose(&out);
    kms_buf_dispose(&b);
    ttlv_item_t *bi = rs_item(root, 0);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_OPERATION));
    assert_true(ttlv_count(rs_payload(bi), KMIP_TAG_PROFILE_INFORMATION) < n_full);
    assert_spec_order(rs_payload(bi));
    /* Below the required part: Response Too Large (KMIP 1.1 test case
     * 12.1). */
    assert_fail(query(e, 4, (int32_t)required, ALL, KMS_ARRAY_SIZE(ALL)),
                KMIP_RESULT_REASON_RESPONSE_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_query_14, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_query_by_version, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_query_max_response, kenv_plain_setup,
                                        kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
