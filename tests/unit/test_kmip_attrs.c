/*
 * tests/unit/test_kmip_attrs.c: Get Attributes, Get Attribute List, Add,
 * Modify and Delete Attribute on a real store: read-only and server-only
 * attributes, single- and multi-valued attributes, Attribute Index rules,
 * custom x- attributes of several types, and each Result Reason.
 */
#include "tests/unit/test_kmip_env.h"


/* Add/Modify with an Attribute built by `fill`. */
static ttlv_item_t *edit(kenv_t *e, uint32_t op, const char *id, const char *name, int index,
                         ttlv_item_t *value)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, op);
    rq_uid(e, p, id);
    ttlv_item_t *at = ttlv_new_struct(e->a, p, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(e->a, at, KMIP_TAG_ATTRIBUTE_NAME, name);
    if (index >= 0)
        ttlv_new_int(e->a, at, KMIP_TAG_ATTRIBUTE_INDEX, index);
    if (value) {
        value->tag = KMIP_TAG_ATTRIBUTE_VALUE;
        ttlv_append(at, value);
    }
    return rs_item(kenv_call(e, m), 0);
}

static ttlv_item_t *text(kenv_t *e, const char *s)
{
    return ttlv_new_textz(e->a, NULL, KMIP_TAG_ATTRIBUTE_VALUE, s);
}

static ttlv_item_t *del(kenv_t *e, const char *id, const char *name, int index)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_DELETE_ATTRIBUTE);
    rq_uid(e, p, id);
    ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, name);
    if (index >= 0)
        ttlv_new_int(e->a, p, KMIP_TAG_ATTRIBUTE_INDEX, index);
    return rs_item(kenv_call(e, m), 0);
}

static ttlv_item_t *get_attrs(kenv_t *e, const char *id, const char *n1, const char *n2)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, p, id);
    if (n1)
        ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, n1);
    if (n2)
        ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, n2);
    return rs_item(kenv_call(e, m), 0);
}

static int attr_index(const ttlv_item_t *bi)
{
    ttlv_item_t *at = ttlv_find(rs_payload(bi), KMIP_TAG_ATTRIBUTE);
    ttlv_item_t *ix = at ? ttlv_find(at, KMIP_TAG_ATTRIBUTE_INDEX) : NULL;
    return ix ? ix->v.i32 : 0;
}

static void test_get_attributes(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "ga");
    ttlv_item_t *bi = get_attrs(e, id, NULL, NULL);
    assert_ok(bi);
    ttlv_item_t *p = rs_payload(bi);
    assert_string_equal(rs_uid(bi), id);
    const char *must[] = {"Unique Identifier", "Object Type", "Cryptographic Algorithm",
                          "Cryptographic Length", "Cryptographic Usage Mask", "State",
                          "Initial Date", "Last Change Date", "Digest", "Name", "Fresh"};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(must); i++)
        assert_non_null(rs_attr(p, must[i]));
    /* private bookkeeping is never shown */
    for (ttlv_item_t *a = ttlv_find(p, KMIP_TAG_ATTRIBUTE); a; a = ttlv_find_next(a, KMIP_TAG_ATTRIBUTE))
        assert_true(ttlv_text(ttlv_find(a, KMIP_TAG_ATTRIBUTE_NAME))[0] != '_');
    /* Only what was asked; unknown names are skipped. */
    bi = get_attrs(e, id, "State", "x-none");
    assert_ok(bi);
    assert_int_equal(ttlv_count(rs_payload(bi), KMIP_TAG_ATTRIBUTE), 1);
    /* A name twice is Invalid Field (KMIP 1.1 test case 17.1). */
    assert_fail(get_attrs(e, id, "State", "State"), KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(get_attrs(e, "nope", NULL, NULL), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Get Attribute List: each name once. */
    bi = k_op_uid(e, KMIP_OPERATION_GET_ATTRIBUTE_LIST, id);
    assert_ok(bi);
    size_t n = ttlv_count(rs_payload(bi), KMIP_TAG_ATTRIBUTE_NAME);
    assert_true(n >= KMS_ARRAY_SIZE(must));
    assert_int_equal(n, ttlv_count(p, KMIP_TAG_ATTRIBUTE)); /* one instance of each here */
}

static void test_custom_multi(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    ttlv_item_t *bi = edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-Vendor-Key-Id", -1, text(e, "a"));
    assert_ok(bi);
    assert_int_equal(attr_index(bi), 0);
    bi = edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-Vendor-Key-Id", -1, text(e, "b"));
    assert_ok(bi);
    assert_int_equal(attr_index(bi), 1);
    /* other types */
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-int", -1,
                   ttlv_new_int(e->a, NULL, 0, 42)));
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-bytes", -1,
                   ttlv_new_bytes(e->a, NULL, 0, "\x00\x01", 2)));
    ttlv_item_t *s = ttlv_new_struct(e->a, NULL, 0);
    ttlv_new_textz(e->a, s, KMIP_TAG_NAME_VALUE, "inner");
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "y-struct", -1, s));
    ttlv_item_t *p = rs_payload(get_attrs(e, id, "x-Vendor-Key-Id", "x-int"));
    assert_int_equal(ttlv_count(p, KMIP_TAG_ATTRIBUTE), 3);
    assert_int_equal(rs_attr(p, "x-int")->v.i32, 42);
    /* Modify by index. */
    bi = edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "x-Vendor-Key-Id", 1, text(e, "B"));
    assert_ok(bi);
    assert_int_equal(attr_index(bi), 1);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "x-Vendor-Key-Id", 7, text(e, "z")),
                KMIP_RESULT_REASON_INDEX_OUT_OF_BOUNDS);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "x-missing", -1, text(e, "z")),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Delete index 0; index 1 stays with its value. */
    assert_ok(del(e, id, "x-Vendor-Key-Id", 0));
    assert_fail(del(e, id, "x-Vendor-Key-Id", 0), KMIP_RESULT_REASON_INDEX_OUT_OF_BOUNDS);
    p = rs_payload(get_attrs(e, id, "x-Vendor-Key-Id", NULL));
    assert_int_equal(ttlv_count(p, KMIP_TAG_ATTRIBUTE), 1);
    assert_string_equal(ttlv_text(rs_attr(p, "x-Vendor-Key-Id")), "B");
    assert_ok(del(e, id, "x-Vendor-Key-Id", 1));
    assert_fail(del(e, id, "x-Vendor-Key-Id", -1), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_ok(del(e, id, "y-struct", -1));
}

static void test_rules(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "rules");
    /* read-only / server-set attributes */
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Unique Identifier", -1, text(e, "x")),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "State", -1,
                     ttlv_new_enum(e->a, NULL, 0, KMIP_STATE_ACTIVE)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "Cryptographic Length", -1,
                     ttlv_new_int(e->a, NULL, 0, 128)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(del(e, id, "Object Type", -1), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(del(e, id, "Initial Date", -1), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* unknown names and wrong types */
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Frobnication", -1, text(e, "x")),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "_kmsd.fmt", -1,
                     ttlv_new_int(e->a, NULL, 0, 1)),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Contact Information", -1,
                     ttlv_new_int(e->a, NULL, 0, 1)),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* single-valued: second Add is Illegal Operation, Modify works */
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Contact Information", -1, text(e, "Joe")));
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Contact Information", -1, text(e, "Ann")),
                KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    assert_ok(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "Contact Information", -1, text(e, "Ann")));
    /* an Attribute Index on Add */
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-a", 0, text(e, "x")),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Name is multi-valued and may be added/deleted */
    ttlv_item_t *nv = ttlv_new_struct(e->a, NULL, 0);
    ttlv_new_textz(e->a, nv, KMIP_TAG_NAME_VALUE, "second-name");
    ttlv_new_enum(e->a, nv, KMIP_TAG_NAME_TYPE, 1);
    ttlv_item_t *bi = edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Name", -1, nv);
    assert_ok(bi);
    assert_int_equal(attr_index(bi), 1);
    assert_ok(del(e, id, "Name", 0));
    /* Object Group multi-valued */
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Object Group", -1, text(e, "g1")));
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Object Group", -1, text(e, "g2")));
    assert_int_equal(ttlv_count(rs_payload(get_attrs(e, id, "Object Group", NULL)), KMIP_TAG_ATTRIBUTE), 2);
    /* missing Attribute Value */
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-b", -1, NULL), KMIP_RESULT_REASON_INVALID_FIELD);
    /* On an archived object: Object Archived. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_ARCHIVE, id));
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-c", -1, text(e, "x")),
                KMIP_RESULT_REASON_OBJECT_ARCHIVED);
    /* Last Change Date moves on changes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_attributes, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_custom_multi, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_rules, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
