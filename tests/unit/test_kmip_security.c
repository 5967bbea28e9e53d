/*
 * tests/unit/test_kmip_security.c: regression tests of the security review
 * (docs/security.md) against a real store: an admin's Re-key leaves the
 * replacement with the old key's owner (the owner can Get it); another
 * tenant's key can be neither named as a Get's wrapping key nor used to
 * unwrap a Register, and answers exactly like a missing id; a batch that
 * mixes the caller's and another tenant's ids reaches only the caller's;
 * the KMIP 1.4 export policy (Extractable false: never released; Sensitive
 * true: released only wrapped) holds on Get and can only be tightened.
 *
 * It does not repeat the per-operation isolation sweep of
 * test_kmip_locate.c.
 */
#include "tests/unit/test_kmip_env.h"

static const kmip_peer_t ALICE = {.cert_cn = "alice", .address = "127.0.0.1:1"};
static const kmip_peer_t BOB = {.cert_cn = "bob", .address = "127.0.0.1:2"};
static const kmip_peer_t ROOT = {.cert_cn = "root", .address = "127.0.0.1:3"};

static char *create_as(kenv_t *e, const kmip_peer_t *who, int32_t mask)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, mask, NULL);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

static ttlv_item_t *op_as(kenv_t *e, const kmip_peer_t *who, uint32_t op, const char *id)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, op), id);
    return rs_item(kenv_call_peer(e, who, m), 0);
}

/* Finding S1: Re-key by an admin put the replacement into the admin's
 * tenant; the owner was left with a Replacement Object Link it could not
 * follow (its rotated key unreachable). */
static void test_admin_rekey_keeps_owner(void **state)
{
    kenv_t *e = *state;
    char *ka = create_as(e, &ALICE, 12);
    ttlv_item_t *bi = op_as(e, &ROOT, KMIP_OPERATION_REKEY, ka);
    assert_ok(bi);
    char *kn = kms_arena_strdup(e->a, rs_uid(bi));
    assert_string_not_equal(kn, ka);
    assert_string_equal(e->sum.tenant, "admins");
    /* The owner reaches the replacement; another tenant does not. */
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, kn));
    assert_fail(op_as(e, &BOB, KMIP_OPERATION_GET, kn), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* A client's own Re-key stays in its tenant too. */
    bi = op_as(e, &ALICE, KMIP_OPERATION_REKEY, kn);
    assert_ok(bi);
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, rs_uid(bi)));
}

static ttlv_item_t *get_wrapped_as(kenv_t *e, const kmip_peer_t *who, const char *id,
                                   const char *kek)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET);
    rq_uid(e, p, id);
    ttlv_item_t *kws = ttlv_new_struct(e->a, p, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);
    ttlv_new_enum(e->a, kws, KMIP_TAG_WRAPPING_METHOD, KMIP_WRAPPING_METHOD_ENCRYPT);
    ttlv_item_t *eki = ttlv_new_struct(e->a, kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
    rq_uid(e, eki, kek);
    return rs_item(kenv_call_peer(e, who, m), 0);
}

/* Another tenant's Active wrapping key cannot wrap my key, and the answer
 * is the one a missing id gets (no existence oracle). */
static void test_foreign_wrapping_key(void **state)
{
    kenv_t *e = *state;
    char *kek = create_as(e, &ALICE, 0x10 | 0x20);
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_ACTIVATE, kek));
    assert_ok(get_wrapped_as(e, &ALICE, create_as(e, &ALICE, 12), kek));
    char *kb = create_as(e, &BOB, 12);
    ttlv_item_t *bi = get_wrapped_as(e, &BOB, kb, kek);
    assert_fail(bi, KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    ttlv_item_t *missing =
        get_wrapped_as(e, &BOB, kb, "00000000-0000-4000-8000-000000000000");
    assert_fail(missing, KMIP_RESULT_REASON_ITEM_NOT_FOUND);
}

/* One batch: Bob's own key, then Alice's, then the ID Placeholder. Only
 * Bob's key is touched; Alice's answers Item Not Found and stays as it
 * was. */
static void test_batch_mixing_ids(void **state)
{
    kenv_t *e = *state;
    char *ka = create_as(e, &ALICE, 12);
    char *kb = create_as(e, &BOB, 12);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                  KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ACTIVATE), kb);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ACTIVATE), ka);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_DESTROY), ka);
    ttlv_item_t *r = kenv_call_peer(e, &BOB, m);
    assert_ok(rs_item(r, 0));
    assert_fail(rs_item(r, 1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_fail(rs_item(r, 2), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    ttlv_item_t *bi = op_as(e, &ALICE, KMIP_OPERATION_GET, ka);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
}

static char *create_flagged(kenv_t *e, const char *flag, bool v)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    ttlv_new_bool(e->a, rq_attr(e, ta, flag), KMIP_TAG_ATTRIBUTE_VALUE, v);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &ALICE, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

/* Finding S5: Extractable and Sensitive were accepted and stored, but Get
 * released the plaintext value anyway. */
static void test_export_policy(void **state)
{
    kenv_t *e = *state;
    char *kek = create_as(e, &ALICE, 0x10 | 0x20);
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_ACTIVATE, kek));

    char *nx = create_flagged(e, "Extractable", false);
    ttlv_item_t *bi = op_as(e, &ALICE, KMIP_OPERATION_GET, nx);
    assert_fail(bi, KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    assert_fail(get_wrapped_as(e, &ALICE, nx, kek), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* Nor for an admin. */
    assert_fail(op_as(e, &ROOT, KMIP_OPERATION_GET, nx), KMIP_RESULT_REASON_PERMISSION_DENIED);

    char *sens = create_flagged(e, "Sensitive", true);
    assert_fail(op_as(e, &ALICE, KMIP_OPERATION_GET, sens), KMIP_RESULT_REASON_PERMISSION_DENIED);
    bi = get_wrapped_as(e, &ALICE, sens, kek);
    assert_ok(bi);
    ttlv_item_t *kb = ttlv_find(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY), KMIP_TAG_KEY_BLOCK);
    assert_non_null(ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA));

    /* The explicit opposite values change nothing. */
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, create_flagged(e, "Extractable", true)));
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, create_flagged(e, "Sensitive", false)));
}

static ttlv_item_t *modify_bool(kenv_t *e, const char *id, const char *name, bool v)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_MODIFY_ATTRIBUTE);
    rq_uid(e, p, id);
    ttlv_new_bool(e->a, rq_attr(e, p, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
    return rs_item(kenv_call_peer(e, &ALICE, m), 0);
}

/* Finding O8 (fixed): the owner could Modify the export policy back
 * (Extractable false -> true), then Get the plaintext. It only tightens. */
static void test_export_policy_only_tightens(void **state)
{
    kenv_t *e = *state;
    char *nx = create_flagged(e, "Extractable", false);
    assert_fail(modify_bool(e, nx, "Extractable", true), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(op_as(e, &ALICE, KMIP_OPERATION_GET, nx), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(modify_bool(e, nx, "Extractable", false)); /* no change: fine */

    char *sens = create_flagged(e, "Sensitive", true);
    assert_fail(modify_bool(e, sens, "Sensitive", false), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(op_as(e, &ALICE, KMIP_OPERATION_GET, sens), KMIP_RESULT_REASON_PERMISSION_DENIED);

    /* Tightening works, and takes effect. */
    char *k = create_flagged(e, "Extractable", true);
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, k));
    assert_ok(modify_bool(e, k, "Extractable", false));
    assert_fail(op_as(e, &ALICE, KMIP_OPERATION_GET, k), KMIP_RESULT_REASON_PERMISSION_DENIED);
    k = create_flagged(e, "Sensitive", false);
    assert_ok(modify_bool(e, k, "Sensitive", true));
    assert_fail(op_as(e, &ALICE, KMIP_OPERATION_GET, k), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_rekey_keeps_owner, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_wrapping_key, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_batch_mixing_ids, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_export_policy, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_export_policy_only_tightens, kenv_tenants_setup, kenv_tenants_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
