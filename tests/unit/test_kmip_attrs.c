/*
 * tests/unit/test_kmip_attrs.c: Get Attributes, Get Attribute List, Add,
 * Modify and Delete Attribute on a real store: read-only and server-only
 * attributes, single- and multi-valued attributes, Attribute Index rules,
 * custom x- attributes of several types, and each Result Reason; the KMIP
 * 1.2-1.4 attributes (Alternative Name, Description, Comment, Key Value
 * Present / Location, Original Creation Date, Sensitive, Extractable and
 * the server's Always Sensitive / Never Extractable with their effect on
 * Get), which attributes each protocol version is shown, and Invalid
 * Message for malformed Attribute structures.
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
    /* A value of another TTLV type is a malformed message. */
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Contact Information", -1,
                     ttlv_new_int(e->a, NULL, 0, 1)),
                KMIP_RESULT_REASON_INVALID_MESSAGE);
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
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-b", -1, NULL),
                KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* On an archived object: Object Archived. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_ARCHIVE, id));
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-c", -1, text(e, "x")),
                KMIP_RESULT_REASON_OBJECT_ARCHIVED);
    /* Last Change Date moves on changes */
}

static ttlv_item_t *boolean(kenv_t *e, bool v)
{
    return ttlv_new_bool(e->a, NULL, KMIP_TAG_ATTRIBUTE_VALUE, v);
}

/* Get of a key, optionally wrapped by `kek`; returns the batch item. */
static ttlv_item_t *get_key(kenv_t *e, const char *id, const char *kek)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET);
    rq_uid(e, p, id);
    if (kek) {
        ttlv_item_t *kws = ttlv_new_struct(e->a, p, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);
        ttlv_new_enum(e->a, kws, KMIP_TAG_WRAPPING_METHOD, KMIP_WRAPPING_METHOD_ENCRYPT);
        ttlv_item_t *eki = ttlv_new_struct(e->a, kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
        ttlv_new_textz(e->a, eki, KMIP_TAG_UNIQUE_IDENTIFIER, kek);
        ttlv_item_t *cp = ttlv_new_struct(e->a, eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
        ttlv_new_enum(e->a, cp, KMIP_TAG_BLOCK_CIPHER_MODE, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP);
    }
    return rs_item(kenv_call(e, m), 0);
}

/* An AES-128 key created with the Boolean attribute `name` = v; its id. */
static char *create_with_bool(kenv_t *e, const char *name, bool v)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    ttlv_new_bool(e->a, rq_attr(e, ta, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

/* KMIP 1.4 Sensitive / Extractable and the server's Always Sensitive /
 * Never Extractable, with their effect on Get. */
static void test_sensitive_extractable(void **state)
{
    kenv_t *e = *state;
    /* A wrapping key: Active, Wrap Key. */
    ttlv_item_t *ta;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                   KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY | KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY,
                   NULL);
    rq_attr_date(e, ta, "Activation Date", 1);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *kek = kms_arena_strdup(e->a, rs_uid(bi));

    /* Created Sensitive: Always Sensitive; only wrapped Gets. */
    char *sid = create_with_bool(e, "Sensitive", true);
    assert_true(k_attr(e, sid, "Always Sensitive")->v.b);
    assert_fail(get_key(e, sid, NULL), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(get_key(e, sid, kek));
    /* Sensitive can be tightened only: true -> false is refused. */
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, sid, "Sensitive", -1, boolean(e, false)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* The server keeps Always Sensitive / Never Extractable: not client-set. */
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, sid, "Always Sensitive", -1,
                     boolean(e, false)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);

    /* A plain key made Sensitive later was not always sensitive. */
    char *pid = k_create_aes(e, NULL);
    assert_ok(get_key(e, pid, NULL));
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, pid, "Sensitive", -1, boolean(e, true)));
    assert_false(k_attr(e, pid, "Always Sensitive")->v.b);
    assert_fail(get_key(e, pid, NULL), KMIP_RESULT_REASON_PERMISSION_DENIED);

    /* Extractable false: never released, not even wrapped. */
    char *nid = create_with_bool(e, "Extractable", false);
    assert_true(k_attr(e, nid, "Never Extractable")->v.b);
    assert_fail(get_key(e, nid, NULL), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(get_key(e, nid, kek), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, nid, "Extractable", -1, boolean(e, true)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* Made non-extractable later: Never Extractable is false. */
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, pid, "Extractable", -1, boolean(e, false)));
    assert_false(k_attr(e, pid, "Never Extractable")->v.b);
    /* Objects that use neither carry neither (absent: Sensitive false,
     * Extractable true). */
    char *plain = k_create_aes(e, NULL);
    ttlv_item_t *p = rs_payload(get_attrs(e, plain, NULL, NULL));
    assert_null(rs_attr(p, "Always Sensitive"));
    assert_null(rs_attr(p, "Never Extractable"));
}

/* Get Attributes without names and Get Attribute List show the attributes
 * the request's KMIP version defines; named ones are always answered. */
static void test_version_visibility(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "vis");
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Description", -1, text(e, "a key")));
    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Comment", -1, text(e, "note")));
    ttlv_item_t *an = ttlv_new_struct(e->a, NULL, 0);
    ttlv_new_textz(e->a, an, KMIP_TAG_ALTERNATIVE_NAME_VALUE, "alias-1");
    ttlv_new_enum(e->a, an, KMIP_TAG_ALTERNATIVE_NAME_TYPE,
                  KMIP_ALTERNATIVE_NAME_TYPE_UNINTERPRETED_TEXT_STRING);
    ttlv_item_t *bi = edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Alternative Name", -1, an);
    assert_ok(bi);
    for (int minor = 0; minor <= 4; minor++) {
        ttlv_item_t *m = rq_msg(e, 1, minor);
        rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTE_LIST), id);
        ttlv_item_t *p = rs_payload(rs_item(kenv_call(e, m), 0));
        bool desc = false, alt = false, fresh = false;
        for (ttlv_item_t *n = ttlv_find(p, KMIP_TAG_ATTRIBUTE_NAME); n;
             n = ttlv_find_next(n, KMIP_TAG_ATTRIBUTE_NAME)) {
            desc |= strcmp(ttlv_text(n), "Description") == 0;
            alt |= strcmp(ttlv_text(n), "Alternative Name") == 0;
            fresh |= strcmp(ttlv_text(n), "Fresh") == 0;
        }
        assert_int_equal(desc, minor >= 4);
        assert_int_equal(alt, minor >= 2);
        assert_int_equal(fresh, minor >= 1);
        m = rq_msg(e, 1, minor);
        rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES), id);
        p = rs_payload(rs_item(kenv_call(e, m), 0));
        assert_int_equal(rs_attr(p, "Comment") != NULL, minor >= 4);
    }
    /* Asked for by name: answered whatever the version. */
    ttlv_item_t *m = rq_msg(e, 1, 0);
    ttlv_item_t *pl = rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES);
    rq_uid(e, pl, id);
    ttlv_new_textz(e->a, pl, KMIP_TAG_ATTRIBUTE_NAME, "Description");
    assert_string_equal(ttlv_text(rs_attr(rs_payload(rs_item(kenv_call(e, m), 0)), "Description")),
                        "a key");
    /* Modify / Delete them. */
    assert_ok(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "Description", -1, text(e, "b")));
    assert_string_equal(ttlv_text(k_attr(e, id, "Description")), "b");
    assert_ok(del(e, id, "Comment", -1));
    assert_ok(del(e, id, "Alternative Name", 0));
}

/* KMIP 1.2: a key registered without its Key Value. */
static void test_key_value_present(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 2);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_int(e, ta, "Cryptographic Usage Mask", 12);
    ttlv_item_t *kvl = ttlv_new_struct(e->a, rq_attr(e, ta, "Key Value Location"),
                                       KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_textz(e->a, kvl, KMIP_TAG_KEY_VALUE_LOCATION_VALUE, "hsm://vault/slot7");
    ttlv_new_enum(e->a, kvl, KMIP_TAG_KEY_VALUE_LOCATION_TYPE,
                  KMIP_KEY_VALUE_LOCATION_TYPE_UNINTERPRETED_TEXT_STRING);
    rq_attr_date(e, ta, "Original Creation Date", 1000000000);
    ttlv_item_t *kb = ttlv_new_struct(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_SYMMETRIC_KEY),
                                      KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(e->a, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_new_enum(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    ttlv_new_int(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    assert_false(k_attr(e, id, "Key Value Present")->v.b);
    assert_int_equal(k_attr(e, id, "Cryptographic Length")->v.i32, 256);
    assert_int_equal(k_attr(e, id, "Original Creation Date")->v.i64, 1000000000);
    ttlv_item_t *loc = k_attr(e, id, "Key Value Location");
    assert_string_equal(ttlv_text(ttlv_find(loc, KMIP_TAG_KEY_VALUE_LOCATION_VALUE)),
                        "hsm://vault/slot7");
    assert_fail(get_key(e, id, NULL), KMIP_RESULT_REASON_KEY_VALUE_NOT_PRESENT);
    /* Server-set and read-only afterwards. */
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "Key Value Present", -1,
                     boolean(e, true)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(edit(e, KMIP_OPERATION_MODIFY_ATTRIBUTE, id, "Original Creation Date", -1,
                     ttlv_new_datetime(e->a, NULL, 0, 5)),
                KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* A key registered with its value has no Key Value Present (true). */
    char *k = k_create_aes(e, NULL);
    m = rq_msg(e, 1, 2);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET_ATTRIBUTES), k);
    assert_null(rs_attr(rs_payload(rs_item(kenv_call(e, m), 0)), "Key Value Present"));
}

/* Malformed Attribute structures are Invalid Message; well-formed values
 * the attribute does not allow are Invalid Field. */
static void test_malformed_attribute(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    /* Attribute without a name. */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_ADD_ATTRIBUTE);
    rq_uid(e, p, id);
    ttlv_new_textz(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_ATTRIBUTE), KMIP_TAG_ATTRIBUTE_VALUE, "x");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* In a Create's Template-Attribute: a Name without Name Type. */
    m = rq_msg(e, 1, 1);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    ttlv_new_textz(e->a, ttlv_new_struct(e->a, rq_attr(e, ta, "Name"), KMIP_TAG_ATTRIBUTE_VALUE),
                   KMIP_TAG_NAME_VALUE, "half");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* Cryptographic Length as a Text String. */
    m = rq_msg(e, 1, 1);
    ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    rq_attr_text(e, ta, "Activation Date", "tomorrow");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_MESSAGE);
    /* Well-formed but not allowed: unknown mask bits, an unknown name. */
    m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 0x40000000, NULL);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "Colour", -1, text(e, "x")),
                KMIP_RESULT_REASON_INVALID_FIELD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_attributes, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_custom_multi, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_rules, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_sensitive_extractable, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_version_visibility, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_key_value_present, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_attribute, kenv_plain_setup,
                                        kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
