/*
 * tests/unit/test_kmip_policy.c: Operation Policy Name through
 * kmip_handle() with identities from the store's clients table: alice
 * (certificate) and carol (user name and password) share tenant ta, root
 * is an administrator. Under "default" (KMIP 1.1 section 3.18.2) a secret
 * object is its creator's alone (Get, Get Attributes, Get Attribute List,
 * changes, Destroy answer Permission Denied to anyone else, Locate does
 * not show it), certificates and public keys are readable by all; under
 * "public", or without a name, the tenant shares the object; unknown
 * names are Invalid Field; the policy can be changed by whom it allows.
 */
#include "tests/unit/test_kmip_env.h"

static const kmip_peer_t ALICE = {.cert_cn = "alice", .address = "127.0.0.1:1"};
static const kmip_peer_t ROOT = {.cert_cn = "root", .address = "127.0.0.1:3"};
static const kmip_peer_t NO_CERT = {.address = "127.0.0.1:5"};

/* A request whose header carries carol's Credential. */
static ttlv_item_t *carol_msg(kenv_t *e)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *au = ttlv_new_struct(e->a, rq_header(m), KMIP_TAG_AUTHENTICATION);
    ttlv_item_t *cr = ttlv_new_struct(e->a, au, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(e->a, cr, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD);
    ttlv_item_t *cv = ttlv_new_struct(e->a, cr, KMIP_TAG_CREDENTIAL_VALUE);
    ttlv_new_textz(e->a, cv, KMIP_TAG_USERNAME, "carol");
    ttlv_new_textz(e->a, cv, KMIP_TAG_PASSWORD, "secret");
    return m;
}

/* op on id as `who` (NULL = carol). */
static ttlv_item_t *op_as(kenv_t *e, const kmip_peer_t *who, uint32_t op, const char *id)
{
    ttlv_item_t *m = who ? rq_msg(e, 1, 1) : carol_msg(e);
    ttlv_item_t *p = rq_item(e, m, op);
    rq_uid(e, p, id);
    if (op == KMIP_OPERATION_ADD_ATTRIBUTE)
        rq_attr_text(e, p, "x-note", "n");
    return rs_item(kenv_call_peer(e, who ? who : &NO_CERT, m), 0);
}

static char *create_as(kenv_t *e, const kmip_peer_t *who, const char *name, const char *policy)
{
    ttlv_item_t *m = who ? rq_msg(e, 1, 1) : carol_msg(e);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, name);
    if (policy)
        rq_attr_text(e, ta, "Operation Policy Name", policy);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who ? who : &NO_CERT, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

static size_t locate_n(kenv_t *e, const kmip_peer_t *who, const char *name)
{
    ttlv_item_t *m = who ? rq_msg(e, 1, 1) : carol_msg(e);
    rq_attr_name(e, rq_item(e, m, KMIP_OPERATION_LOCATE), name);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who ? who : &NO_CERT, m), 0);
    assert_ok(bi);
    return ttlv_count(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER);
}

static void test_default_policy_secret_object(void **state)
{
    kenv_t *e = *state;
    char *id = create_as(e, &ALICE, "pol-secret", "default");
    /* The creator does everything. */
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, id));
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET_ATTRIBUTES, id));
    assert_int_equal(locate_n(e, &ALICE, "pol-secret"), 1);
    /* Another identity of the same tenant: Permission Denied (KMIP 1.1
     * test case 11.1), and Locate does not show it. */
    static const uint32_t ops[] = {KMIP_OPERATION_GET, KMIP_OPERATION_GET_ATTRIBUTES,
                                   KMIP_OPERATION_GET_ATTRIBUTE_LIST, KMIP_OPERATION_ADD_ATTRIBUTE,
                                   KMIP_OPERATION_ACTIVATE, KMIP_OPERATION_DESTROY,
                                   KMIP_OPERATION_CHECK, KMIP_OPERATION_ARCHIVE};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ops); i++)
        assert_fail(op_as(e, NULL, ops[i], id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_int_equal(locate_n(e, NULL, "pol-secret"), 0);
    /* The policy binds administrators too. */
    assert_fail(op_as(e, &ROOT, KMIP_OPERATION_GET, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_int_equal(locate_n(e, &ROOT, "pol-secret"), 0);
    /* carol's own "default" key is hers, and alice's is hidden from her
     * even when both match. */
    char *cid = create_as(e, NULL, "pol-secret", "default");
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET, cid));
    assert_int_equal(locate_n(e, NULL, "pol-secret"), 1);
    assert_int_equal(locate_n(e, &ALICE, "pol-secret"), 1);
    /* The creator opens it to the tenant: "public". */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_MODIFY_ATTRIBUTE);
    rq_uid(e, p, id);
    rq_attr_text(e, p, "Operation Policy Name", "public");
    assert_ok(rs_item(kenv_call_peer(e, &ALICE, m), 0));
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET, id));
    assert_int_equal(locate_n(e, NULL, "pol-secret"), 2);
}

static void test_default_policy_public_objects(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ct = rq_create_pair(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, 0);
    rq_attr_text(e, ct, "Operation Policy Name", "default");
    rq_attr_name(e, ct, "pol-pair");
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &ALICE, m), 0);
    assert_ok(bi);
    const char *priv =
        ttlv_text(ttlv_find(rs_payload(bi), KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER));
    const char *pub = ttlv_text(ttlv_find(rs_payload(bi), KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER));
    /* The public key: anyone reads, only the creator changes. */
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET, pub));
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET_ATTRIBUTES, pub));
    assert_fail(op_as(e, NULL, KMIP_OPERATION_ADD_ATTRIBUTE, pub),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(op_as(e, NULL, KMIP_OPERATION_DESTROY, pub), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* The private key: nothing. Locate by the shared name finds only the
     * public half. */
    assert_fail(op_as(e, NULL, KMIP_OPERATION_GET, priv), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_int_equal(locate_n(e, NULL, "pol-pair"), 1);
    assert_int_equal(locate_n(e, &ALICE, "pol-pair"), 2);
}

static void test_tenant_default_and_names(void **state)
{
    kenv_t *e = *state;
    /* No policy name, or "public": the tenant shares the object. */
    char *a = create_as(e, &ALICE, "pol-none", NULL);
    char *b = create_as(e, &ALICE, "pol-public", "public");
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET, a));
    assert_ok(op_as(e, NULL, KMIP_OPERATION_GET, b));
    assert_ok(op_as(e, NULL, KMIP_OPERATION_ADD_ATTRIBUTE, b));
    /* A name the server does not know: Invalid Field, at creation and on
     * Add / Modify. */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    rq_attr_text(e, ta, "Operation Policy Name", "gold");
    assert_fail(rs_item(kenv_call_peer(e, &ALICE, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, a);
    rq_attr_text(e, p, "Operation Policy Name", "gold");
    assert_fail(rs_item(kenv_call_peer(e, &ALICE, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* carol, who shares the tenant object, may put it under "default"... */
    m = carol_msg(e);
    p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, a);
    rq_attr_text(e, p, "Operation Policy Name", "default");
    assert_ok(rs_item(kenv_call_peer(e, &NO_CERT, m), 0));
    /* ...which makes it its creator's (alice's), whoever set the name. */
    assert_ok(op_as(e, &ALICE, KMIP_OPERATION_GET, a));
    assert_fail(op_as(e, NULL, KMIP_OPERATION_GET, a), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_policy_secret_object, kenv_tenants_setup,
                                        kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_default_policy_public_objects, kenv_tenants_setup,
                                        kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_default_and_names, kenv_tenants_setup,
                                        kenv_tenants_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
