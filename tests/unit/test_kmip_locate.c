/*
 * tests/unit/test_kmip_locate.c: Locate on a real store (by Name, Object
 * Type, State, algorithm/length, Object Group, custom attributes, date
 * ranges, usage mask, Maximum Items, Storage Status Mask, newest first)
 * and tenant isolation: identities from the store's clients table, another
 * tenant's object answers Item Not Found exactly like a missing one,
 * Locate never returns it, admins see every tenant, Permission Denied for
 * a refused credential.
 */
#include "tests/unit/test_kmip_env.h"

#include <time.h>

static const kmip_peer_t ALICE = {.cert_cn = "alice", .address = "127.0.0.1:1"};
static const kmip_peer_t BOB = {.cert_cn = "bob", .address = "127.0.0.1:2"};
static const kmip_peer_t ROOT = {.cert_cn = "root", .address = "127.0.0.1:3"};
static const kmip_peer_t NOBODY = {.cert_cn = "mallory", .address = "127.0.0.1:4"};

static char *create_as(kenv_t *e, const kmip_peer_t *who, const char *name, const char *group)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, name);
    if (group)
        rq_attr_text(e, ta, "Object Group", group);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

static ttlv_item_t *locate(kenv_t *e, const kmip_peer_t *who, ttlv_item_t *m)
{
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who, m), 0);
    assert_ok(bi);
    return rs_payload(bi);
}

static bool has_id(const ttlv_item_t *p, const char *id)
{
    for (ttlv_item_t *u = ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER); u;
         u = ttlv_find_next(u, KMIP_TAG_UNIQUE_IDENTIFIER))
        if (strcmp(ttlv_text(u), id) == 0)
            return true;
    return false;
}

static void test_locate_filters(void **state)
{
    kenv_t *e = *state;
    char *k1 = create_as(e, &ALICE, "k1", "g1");
    char *k2 = create_as(e, &ALICE, "k2", "g1");
    char *k3 = create_as(e, &ALICE, "k3", "g2");
    ttlv_item_t *m, *p, *r;
    /* by Name */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_name(e, p, "k2");
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_true(has_id(r, k2));
    /* by Object Group, newest first */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_text(e, p, "Object Group", "g1");
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 2);
    assert_string_equal(ttlv_text(ttlv_find(r, KMIP_TAG_UNIQUE_IDENTIFIER)), k2);
    /* Maximum Items */
    ttlv_new_int(e->a, p, KMIP_TAG_MAXIMUM_ITEMS, 1);
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    /* Object Type + algorithm + length; everything of alice */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "Object Type", KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    rq_attr_enum(e, p, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    rq_attr_int(e, p, "Cryptographic Length", 256);
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 3);
    rq_attr_int(e, p, "Cryptographic Length", 128); /* AND: none */
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    /* State (after an Activate) */
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ACTIVATE), k3);
    assert_ok(rs_item(kenv_call_peer(e, &ALICE, m), 0));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "State", KMIP_STATE_ACTIVE);
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_true(has_id(r, k3));
    /* usage mask containment */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_int(e, p, "Cryptographic Usage Mask", 4);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 3);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_int(e, p, "Cryptographic Usage Mask", 1);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    /* custom attribute */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, k1);
    rq_attr_text(e, p, "x-Vendor-Key-Id", "vk-1");
    assert_ok(rs_item(kenv_call_peer(e, &ALICE, m), 0));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_text(e, p, "x-Vendor-Key-Id", "vk-1");
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_true(has_id(r, k1));
    /* date range on Initial Date: two instances */
    int64_t now = kms_now_us() / 1000000;
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_date(e, p, "Initial Date", now - 3600);
    rq_attr_date(e, p, "Initial Date", now + 3600);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 3);
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_date(e, p, "Initial Date", now - 7200);
    rq_attr_date(e, p, "Initial Date", now - 3600);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    /* archived objects only with the Storage Status Mask */
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ARCHIVE), k2);
    assert_ok(rs_item(kenv_call_peer(e, &ALICE, m), 0));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_text(e, p, "Object Group", "g1");
    r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_false(has_id(r, k2));
    ttlv_new_int(e->a, p, KMIP_TAG_STORAGE_STATUS_MASK, 3);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 2);
    /* unknown attribute name */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_text(e, p, "Bogus", "x");
    assert_fail(rs_item(kenv_call_peer(e, &ALICE, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* Locate + Get through the ID Placeholder in one batch */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_name(e, p, "k1");
    rq_item(e, m, KMIP_OPERATION_GET);
    ttlv_item_t *resp = kenv_call_peer(e, &ALICE, m);
    assert_ok(rs_item(resp, 1));
    assert_string_equal(rs_uid(rs_item(resp, 1)), k1);
    /* 1.3 adds Located Items */
    m = rq_msg(e, 1, 3);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_text(e, p, "Object Group", "g1");
    ttlv_new_int(e->a, p, KMIP_TAG_STORAGE_STATUS_MASK, 3);
    r = locate(e, &ALICE, m);
    assert_non_null(ttlv_find(r, KMIP_TAG_LOCATED_ITEMS));
    assert_int_equal(ttlv_find(r, KMIP_TAG_LOCATED_ITEMS)->v.i32, 2);
}

/* The stored state lags behind an Activation Date until the object is
 * read; Locate by State still finds it. */
static void test_locate_state_by_date(void **state)
{
    kenv_t *e = *state;
    /* At least one whole second ahead (now + 1 may be a millisecond away),
     * so the Create and the first Locate come before it. */
    int64_t activation = kms_now_us() / 1000000 + 2;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "soon");
    rq_attr_date(e, ta, "Activation Date", activation);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &ALICE, m), 0);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "State", KMIP_STATE_ACTIVE);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    while (kms_now_us() / 1000000 < activation)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    ttlv_item_t *r = locate(e, &ALICE, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_true(has_id(r, id));
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "State", KMIP_STATE_PRE_ACTIVE);
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
}

static void test_tenancy(void **state)
{
    kenv_t *e = *state;
    char *ka = create_as(e, &ALICE, "shared-name", NULL);
    char *kb = create_as(e, &BOB, "shared-name", NULL);
    assert_string_equal(e->sum.tenant, "tb");
    assert_string_equal(e->sum.object_id, kb);
    /* Bob cannot see, change or destroy Alice's key: Item Not Found. */
    uint32_t ops[] = {KMIP_OPERATION_GET, KMIP_OPERATION_GET_ATTRIBUTES,
                      KMIP_OPERATION_GET_ATTRIBUTE_LIST, KMIP_OPERATION_ACTIVATE,
                      KMIP_OPERATION_DESTROY, KMIP_OPERATION_ARCHIVE};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ops); i++) {
        ttlv_item_t *m = rq_msg(e, 1, 1);
        rq_uid(e, rq_item(e, m, ops[i]), ka);
        assert_fail(rs_item(kenv_call_peer(e, &BOB, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    }
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_name(e, p, "shared-name");
    ttlv_item_t *r = locate(e, &BOB, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 1);
    assert_true(has_id(r, kb));
    /* Admin sees both; what the admin creates is the admin's tenant. */
    r = locate(e, &ROOT, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_UNIQUE_IDENTIFIER), 2);
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), ka);
    assert_ok(rs_item(kenv_call_peer(e, &ROOT, m), 0));
    char *kr = create_as(e, &ROOT, "root-key", NULL);
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), kr);
    assert_fail(rs_item(kenv_call_peer(e, &ALICE, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Alice's key is untouched by Bob's attempts. */
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), ka);
    assert_ok(rs_item(kenv_call_peer(e, &ALICE, m), 0));
}

/* An unregistered peer: nothing runs, every item Authentication Not
 * Successful. */
static void test_unidentified_refused(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, "denied");
    rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_item_t *r = kenv_call_peer(e, &NOBODY, m);
    assert_int_equal(ttlv_count(r, KMIP_TAG_BATCH_ITEM), 2);
    assert_fail(rs_item(r, 0), KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_fail(rs_item(r, 1), KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_int_equal(e->sum.result_reason, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    /* nothing was created */
    m = rq_msg(e, 1, 1);
    rq_attr_name(e, rq_item(e, m, KMIP_OPERATION_LOCATE), "denied");
    assert_int_equal(ttlv_count(locate(e, &ROOT, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    /* A Username/Password credential is checked against the clients table. */
    m = rq_msg(e, 1, 1);
    ttlv_item_t *au = ttlv_new_struct(e->a, rq_header(m), KMIP_TAG_AUTHENTICATION);
    ttlv_item_t *cr = ttlv_new_struct(e->a, au, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(e->a, cr, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD);
    ttlv_item_t *cv = ttlv_new_struct(e->a, cr, KMIP_TAG_CREDENTIAL_VALUE);
    ttlv_new_textz(e->a, cv, KMIP_TAG_USERNAME, "carol");
    ttlv_item_t *pw = ttlv_new_textz(e->a, cv, KMIP_TAG_PASSWORD, "wrong");
    rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    static const kmip_peer_t NO_CERT = {.address = "127.0.0.1:5"};
    assert_fail(rs_item(kenv_call_peer(e, &NO_CERT, m), 0),
                KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    ttlv_remove(pw);
    ttlv_new_textz(e->a, cv, KMIP_TAG_PASSWORD, "secret");
    assert_ok(rs_item(kenv_call_peer(e, &NO_CERT, m), 0));
    assert_string_equal(e->sum.identity, "carol");
    assert_string_equal(e->sum.tenant, "ta");
    /* The right password over an unregistered certificate is refused. */
    assert_fail(rs_item(kenv_call_peer(e, &NOBODY, m), 0),
                KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
}

/* A Locate that finds nothing empties the ID Placeholder: the next item
 * that relies on it fails (Invalid Field, "Unique Identifier is not
 * defined", as KMIP 1.1 test case 15.2 answers), never working on the
 * object an earlier item named. */
static void test_placeholder_after_empty_locate(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_new_enum(e->a, rq_header(m), KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                  KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, "ph-created");
    rq_attr_name(e, rq_item(e, m, KMIP_OPERATION_LOCATE), "ph-nothing-has-this-name");
    rq_item(e, m, KMIP_OPERATION_GET);
    rq_attr_name(e, rq_item(e, m, KMIP_OPERATION_LOCATE), "ph-created");
    rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    ttlv_item_t *r = kenv_call_peer(e, &ALICE, m);
    assert_ok(rs_item(r, 0));
    assert_ok(rs_item(r, 1));
    assert_int_equal(ttlv_count(rs_payload(rs_item(r, 1)), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    assert_fail(rs_item(r, 2), KMIP_RESULT_REASON_INVALID_FIELD);
    assert_ok(rs_item(r, 3));
    assert_ok(rs_item(r, 4));
    assert_string_equal(rs_uid(rs_item(r, 4)), rs_uid(rs_item(r, 0)));
    /* No earlier item set one at all: Invalid Field. */
    m = rq_msg(e, 1, 1);
    rq_item(e, m, KMIP_OPERATION_GET);
    assert_fail(rs_item(kenv_call_peer(e, &ALICE, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
}

/* The server's default group (KMIP 1.1 test case 15.1): a fresh member
 * asked for when it has none is made, an AES-256 key, fresh until its
 * first Get. Other groups never get keys made up. */
static void test_default_group(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    ttlv_new_int(e->a, p, KMIP_TAG_MAXIMUM_ITEMS, 1);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_GROUP_MEMBER, KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_FRESH);
    rq_attr_text(e, p, "Object Group", "default");
    p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, "Fresh");
    rq_item(e, m, KMIP_OPERATION_GET);
    ttlv_item_t *r = kenv_call_peer(e, &ALICE, m);
    assert_ok(rs_item(r, 0));
    const char *id = rs_uid(rs_item(r, 0));
    assert_non_null(id);
    assert_true(rs_attr(rs_payload(rs_item(r, 1)), "Fresh")->v.b);
    assert_ok(rs_item(r, 2));
    ttlv_item_t *kb = ttlv_find(ttlv_find(rs_payload(rs_item(r, 2)), KMIP_TAG_SYMMETRIC_KEY),
                                KMIP_TAG_KEY_BLOCK);
    assert_int_equal(ttlv_u32(ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM)),
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    assert_int_equal(ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32, 256);
    /* It is alice's, in the group, and no longer fresh. */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    ttlv_item_t *pl = rs_payload(rs_item(kenv_call_peer(e, &ALICE, m), 0));
    assert_false(rs_attr(pl, "Fresh")->v.b);
    assert_string_equal(ttlv_text(rs_attr(pl, "Object Group")), "default");
    m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
    assert_fail(rs_item(kenv_call_peer(e, &BOB, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Another group: nothing is made up. */
    m = rq_msg(e, 1, 1);
    p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_GROUP_MEMBER, KMIP_OBJECT_GROUP_MEMBER_GROUP_MEMBER_FRESH);
    rq_attr_text(e, p, "Object Group", "somewhere-else");
    assert_int_equal(ttlv_count(locate(e, &ALICE, m), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
}

/* A Locate whose post-filter evaluates every object (State Deactivated:
 * each Pre-Active key is loaded to evaluate its dates) and a batch of such
 * Locates run in the request's arena: the candidates are released one by
 * one, so 400 keys against a 256 KiB arena answer, and keep answering in
 * a batch of 8. Kept in the arena, the objects would fill it after ~100
 * and the request would fail with out of memory. */
static int small_arena_setup(void **state)
{
    kenv_t *e = calloc(1, sizeof(*e));
    if (!e || kenv_setup_arena(e, KMIP_ACCESS_OPEN, 256 * 1024))
        return -1;
    *state = e;
    return 0;
}

static int small_arena_teardown(void **state)
{
    kenv_teardown(*state);
    free(*state);
    return 0;
}

static void test_locate_post_filter_memory(void **state)
{
    kenv_t *e = *state;
    for (int b = 0; b < 40; b++) {
        ttlv_item_t *m = rq_msg(e, 1, 1);
        for (int i = 0; i < 10; i++) {
            char name[32];
            snprintf(name, sizeof(name), "k%d-%d", b, i);
            ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, name);
            rq_attr_text(e, ta, "Contact Information", "a few attribute bytes to load");
        }
        ttlv_item_t *r = kenv_call(e, m);
        for (int i = 0; i < 10; i++)
            assert_ok(rs_item(r, i));
    }
    ttlv_item_t *m = rq_msg(e, 1, 1);
    for (int i = 0; i < 8; i++) {
        ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
        rq_attr_enum(e, p, "State", KMIP_STATE_DEACTIVATED);
    }
    ttlv_item_t *r = kenv_call(e, m);
    assert_int_equal(e->last_rc, 0);
    for (int i = 0; i < 8; i++) {
        ttlv_item_t *bi = rs_item(r, i);
        assert_ok(bi);
        assert_int_equal(ttlv_count(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER), 0);
    }
    /* The matches themselves are still answered. */
    m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "State", KMIP_STATE_PRE_ACTIVE);
    rq_attr_text(e, p, "Contact Information", "a few attribute bytes to load");
    r = kenv_call(e, m);
    assert_ok(rs_item(r, 0));
    assert_int_equal(ttlv_count(rs_payload(rs_item(r, 0)), KMIP_TAG_UNIQUE_IDENTIFIER), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_locate_filters, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_locate_state_by_date, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_tenancy, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_unidentified_refused, kenv_tenants_setup, kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_placeholder_after_empty_locate, kenv_tenants_setup,
                                        kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_default_group, kenv_tenants_setup,
                                        kenv_tenants_teardown),
        cmocka_unit_test_setup_teardown(test_locate_post_filter_memory, small_arena_setup,
                                        small_arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
