/* tests/unit/test_ttlv_build.c: builders and the encoder (hard cap,
 * nothing half-written), tree helpers (find/count/remove/append/clone/
 * equal), the tag/enum/attribute tables, and the printed-form parser
 * (names instead of hex, quoting, errors with offsets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

static ttlv_item_t *sample(kms_arena_t *a)
{
    ttlv_item_t *m = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *h = ttlv_new_struct(a, m, KMIP_TAG_REQUEST_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION);
    ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
    ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, 4);
    ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, 2);
    for (int i = 0; i < 2; i++) {
        ttlv_item_t *bi = ttlv_new_struct(a, m, KMIP_TAG_BATCH_ITEM);
        ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
        ttlv_new_bytes(a, bi, KMIP_TAG_UNIQUE_BATCH_ITEM_ID, i ? "\x02" : "\x01", 1);
        ttlv_item_t *p = ttlv_new_struct(a, bi, KMIP_TAG_REQUEST_PAYLOAD);
        ttlv_new_textz(a, p, KMIP_TAG_UNIQUE_IDENTIFIER, i ? "key-2" : "key-1");
    }
    return m;
}

static void test_builders_and_encode(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *m = sample(a);
    assert_int_equal(ttlv_count(m, KMIP_TAG_BATCH_ITEM), 2);
    kms_buf_t b;
    kms_buf_init(&b, 0);
    assert_int_equal(ttlv_encode(m, &b), 0);
    assert_int_equal(b.len, ttlv_encoded_size(m));
    /* every Structure length was back-patched: the message decodes to the same tree */
    ttlv_item_t *d;
    kms_error_t err;
    assert_int_equal(ttlv_decode(b.data, b.len, NULL, a, &d, &err), 0);
    assert_true(ttlv_equal(m, d));
    assert_int_equal(kms_be32(b.data + 4), b.len - 8);
    /* appending a second encoding after the first leaves the first alone */
    size_t first = b.len;
    assert_int_equal(ttlv_encode(m, &b), 0);
    assert_int_equal(b.len, 2 * first);
    assert_memory_equal(b.data, b.data + first, first);
    kms_buf_dispose(&b);

    /* empty values */
    ttlv_item_t *s = ttlv_new_struct(a, NULL, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_new_text(a, s, KMIP_TAG_NAME_VALUE, "", 0);
    ttlv_new_bytes(a, s, KMIP_TAG_NONCE_ID, NULL, 0);
    ttlv_new_struct(a, s, KMIP_TAG_NAME);
    kms_buf_init(&b, 0);
    assert_int_equal(ttlv_encode(s, &b), 0);
    assert_int_equal(b.len, 8 + 8 + 8 + 8);
    assert_memory_equal(b.data, "\x42\x00\x91\x01\x00\x00\x00\x18"
                                "\x42\x00\x55\x07\x00\x00\x00\x00"
                                "\x42\x00\xC9\x08\x00\x00\x00\x00"
                                "\x42\x00\x53\x01\x00\x00\x00\x00", 32);
    kms_buf_dispose(&b);
    kms_arena_free(a);
}

static void test_encode_cap(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *m = sample(a);
    size_t need = ttlv_encoded_size(m);
    kms_buf_t b;
    /* one byte short, at every structure boundary and in the middle of values */
    for (size_t cap = 1; cap < need; cap += 5) {
        kms_buf_init(&b, cap);
        assert_int_equal(ttlv_encode(m, &b), KMS_ERR_LIMIT);
        assert_int_equal(b.len, 0); /* nothing half-written */
        kms_buf_dispose(&b);
    }
    kms_buf_init(&b, need - 1);
    assert_int_equal(ttlv_encode(m, &b), KMS_ERR_LIMIT);
    kms_buf_dispose(&b);
    kms_buf_init(&b, need);
    assert_int_equal(ttlv_encode(m, &b), 0);
    assert_int_equal(b.len, need);
    kms_buf_dispose(&b);
    /* previous content survives a failed append */
    kms_buf_init(&b, need + 5); /* 6 bytes of prefix leave one byte too few */
    assert_int_equal(kms_buf_append(&b, "prefix", 6), 0);
    assert_int_equal(ttlv_encode(m, &b), KMS_ERR_LIMIT);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "prefix", 6);
    kms_buf_dispose(&b);
    kms_arena_free(a);
}

static void test_encode_invalid(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t b;
    kms_buf_init(&b, 0);
    /* Big Integer of 5 bytes: not encodable */
    ttlv_item_t *bi = ttlv_new_bigint(a, NULL, KMIP_TAG_MODULUS, "\x01\x02\x03\x04\x05", 5);
    assert_int_equal(ttlv_encode(bi, &b), KMS_ERR_INVAL);
    /* TTLV_ANY is a table wildcard, never an item */
    ttlv_item_t *s = ttlv_new_struct(a, NULL, KMIP_TAG_ATTRIBUTE);
    ttlv_item_t *x = ttlv_new_int(a, s, KMIP_TAG_ATTRIBUTE_VALUE, 1);
    x->type = TTLV_ANY;
    assert_int_equal(ttlv_encode(s, &b), KMS_ERR_INVAL);
    assert_int_equal(b.len, 0);
    /* a tag wider than 24 bits */
    ttlv_item_t *w = ttlv_new_int(a, NULL, 0x01420001, 1);
    assert_int_equal(ttlv_encode(w, &b), KMS_ERR_INVAL);
    assert_int_equal(ttlv_encode(NULL, &b), KMS_ERR_INVAL);
    kms_buf_dispose(&b);
    kms_arena_free(a);
}

static void test_builders_nomem(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(sizeof(ttlv_item_t) + 32);
    ttlv_item_t *s = ttlv_new_struct(a, NULL, KMIP_TAG_NAME);
    assert_non_null(s);
    char big[256];
    memset(big, 'x', sizeof(big));
    assert_null(ttlv_new_text(a, s, KMIP_TAG_NAME_VALUE, big, sizeof(big)));
    assert_null(s->first); /* a failed builder leaves the parent as it was */
    assert_null(ttlv_new_textz(a, s, KMIP_TAG_NAME_VALUE, NULL));
    kms_arena_free(a);
}

static void test_find_count_remove(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *m = sample(a);
    ttlv_item_t *b1 = ttlv_find(m, KMIP_TAG_BATCH_ITEM);
    ttlv_item_t *b2 = ttlv_find_next(b1, KMIP_TAG_BATCH_ITEM);
    assert_non_null(b2);
    assert_null(ttlv_find_next(b2, KMIP_TAG_BATCH_ITEM));
    assert_null(ttlv_find(m, KMIP_TAG_OPERATION)); /* children only, not descendants */
    assert_null(ttlv_find(NULL, KMIP_TAG_OPERATION));
    assert_int_equal(ttlv_count(m, KMIP_TAG_BATCH_ITEM), 2);
    assert_int_equal(ttlv_count(NULL, KMIP_TAG_BATCH_ITEM), 0);
    assert_string_equal(ttlv_text(ttlv_find(ttlv_find(b2, KMIP_TAG_REQUEST_PAYLOAD), KMIP_TAG_UNIQUE_IDENTIFIER)),
                        "key-2");

    /* remove middle, first, last */
    ttlv_item_t *h = ttlv_find(m, KMIP_TAG_REQUEST_HEADER);
    ttlv_remove(b1);
    assert_null(b1->parent);
    assert_ptr_equal(m->first, h);
    assert_ptr_equal(h->next, b2);
    assert_ptr_equal(m->last, b2);
    ttlv_remove(h);
    assert_ptr_equal(m->first, b2);
    ttlv_remove(b2);
    assert_null(m->first);
    assert_null(m->last);
    ttlv_remove(b2); /* already detached: no-op */
    /* append re-links, and moving an item detaches it from its old parent */
    ttlv_append(m, h);
    ttlv_append(m, b1);
    ttlv_append(m, b2);
    assert_int_equal(ttlv_count(m, KMIP_TAG_BATCH_ITEM), 2);
    ttlv_item_t *other = ttlv_new_struct(a, NULL, KMIP_TAG_RESPONSE_MESSAGE);
    ttlv_append(other, b1);
    assert_int_equal(ttlv_count(m, KMIP_TAG_BATCH_ITEM), 1);
    assert_ptr_equal(b1->parent, other);
    assert_ptr_equal(ttlv_find(m, KMIP_TAG_BATCH_ITEM), b2);
    assert_ptr_equal(m->last, b2);
    kms_arena_free(a);
}

static void test_clone_equal(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0), *b = kms_arena_new(0);
    ttlv_item_t *m = sample(a);
    ttlv_item_t *c = ttlv_clone(b, m);
    assert_non_null(c);
    assert_null(c->parent);
    assert_true(ttlv_equal(m, c));
    /* the clone owns its values: freeing the source arena leaves it intact */
    kms_buf_t e1, e2;
    kms_buf_init(&e1, 0);
    kms_buf_init(&e2, 0);
    assert_int_equal(ttlv_encode(m, &e1), 0);
    kms_arena_free(a);
    assert_int_equal(ttlv_encode(c, &e2), 0);
    assert_int_equal(e1.len, e2.len);
    assert_memory_equal(e1.data, e2.data, e1.len);
    kms_buf_dispose(&e1);
    kms_buf_dispose(&e2);

    /* every kind of difference is seen */
    a = kms_arena_new(0);
    ttlv_item_t *x = ttlv_clone(a, c);
    ttlv_item_t *uid = ttlv_find(ttlv_find(ttlv_find(x, KMIP_TAG_BATCH_ITEM), KMIP_TAG_REQUEST_PAYLOAD),
                                 KMIP_TAG_UNIQUE_IDENTIFIER);
    ((uint8_t *)uid->v.bytes.ptr)[4] = '9'; /* value */
    assert_false(ttlv_equal(x, c));
    ((uint8_t *)uid->v.bytes.ptr)[4] = '1';
    assert_true(ttlv_equal(x, c));
    uid->v.bytes.len = 4; /* length */
    assert_false(ttlv_equal(x, c));
    uid->v.bytes.len = 5;
    uid->tag = KMIP_TAG_NAME_VALUE; /* tag */
    assert_false(ttlv_equal(x, c));
    uid->tag = KMIP_TAG_UNIQUE_IDENTIFIER;
    ttlv_item_t *op = ttlv_find(ttlv_find(x, KMIP_TAG_BATCH_ITEM), KMIP_TAG_OPERATION);
    op->type = TTLV_INTEGER; /* type, same bits */
    assert_false(ttlv_equal(x, c));
    op->type = TTLV_ENUMERATION;
    assert_true(ttlv_equal(x, c));
    ttlv_item_t *extra = ttlv_new_int(a, x, KMIP_TAG_BATCH_COUNT, 1); /* one more child */
    assert_false(ttlv_equal(x, c));
    assert_false(ttlv_equal(c, x));
    ttlv_remove(extra);
    assert_true(ttlv_equal(x, c));
    /* child order matters */
    ttlv_item_t *h = ttlv_find(x, KMIP_TAG_REQUEST_HEADER);
    ttlv_remove(h);
    ttlv_append(x, h);
    assert_false(ttlv_equal(x, c));
    assert_false(ttlv_equal(x, NULL));
    assert_true(ttlv_equal(NULL, NULL));
    kms_arena_free(a);
    kms_arena_free(b);
}

static void test_tag_table(void **state)
{
    (void)state;
    uint32_t t;
    assert_string_equal(ttlv_tag_name(KMIP_TAG_TEMPLATE_ATTRIBUTE), "Template-Attribute");
    assert_string_equal(ttlv_tag_name(KMIP_TAG_X_509_CERTIFICATE_IDENTIFIER), "X.509 Certificate Identifier");
    assert_string_equal(ttlv_tag_name(KMIP_TAG_UNIQUE_BATCH_ITEM_ID), "Unique Batch Item ID");
    assert_string_equal(ttlv_tag_name(KMIP_TAG_EXTENSION_TYPE), "Extension Type");
    assert_string_equal(ttlv_tag_name(KMIP_TAG_IV_COUNTER_NONCE), "IV/Counter/Nonce");
    assert_string_equal(ttlv_tag_name(KMIP_TAG_PKCS12_FRIENDLY_NAME), "PKCS#12 Friendly Name");
    assert_string_equal(ttlv_tag_name(0x42000F), "Batch Item"); /* first of the names sharing 0x42000F */
    assert_null(ttlv_tag_name(0x540001));
    assert_null(ttlv_tag_name(0x420125));
    assert_int_equal(ttlv_tag_by_name("Request Batch Item", &t), 0);
    assert_int_equal(t, 0x42000F);
    assert_int_equal(ttlv_tag_by_name("Common Template-Attribute", &t), 0);
    assert_int_equal(t, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    assert_int_equal(ttlv_tag_by_name("No Such Tag", &t), KMS_ERR_NOTFOUND);

    /* types: the document's and the specification's */
    assert_int_equal(ttlv_tag_type(KMIP_TAG_UNIQUE_IDENTIFIER), TTLV_TEXT_STRING);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK), TTLV_INTEGER);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_USAGE_LIMITS_COUNT), TTLV_LONG_INTEGER);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_MODULUS), TTLV_BIG_INTEGER);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_OPERATION), TTLV_ENUMERATION);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_FRESH), TTLV_BOOLEAN);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_UNIQUE_BATCH_ITEM_ID), TTLV_BYTE_STRING);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_ACTIVATION_DATE), TTLV_DATE_TIME);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_LEASE_TIME), TTLV_INTERVAL);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_BATCH_ITEM), TTLV_STRUCTURE);
    assert_int_equal(ttlv_tag_type(KMIP_TAG_ATTRIBUTE_VALUE), TTLV_ANY);
    assert_int_equal(ttlv_tag_type(0x54FFFF), TTLV_ANY);

    /* every KMIP 1.0-1.4 tag is known and typed, ANY only where the spec varies */
    size_t any = 0;
    for (uint32_t tag = 0x420001; tag <= 0x420124; tag++) {
        const char *name = ttlv_tag_name(tag);
        if (!name)
            fail_msg("tag 0x%06X has no name", tag);
        if (ttlv_tag_type(tag) == TTLV_ANY)
            any++;
        assert_int_equal(ttlv_tag_by_name(name, &t), 0);
        assert_int_equal(t, tag);
    }
    assert_int_equal(any, 4); /* Attribute Value, Custom Attribute, Key Material, Key Value */

    /* type names */
    enum ttlv_type ty;
    assert_string_equal(ttlv_type_name(TTLV_DATE_TIME), "Date-Time");
    assert_null(ttlv_type_name(TTLV_ANY));
    assert_null(ttlv_type_name((enum ttlv_type)11));
    assert_int_equal(ttlv_type_by_name("Long Integer", &ty), 0);
    assert_int_equal(ty, TTLV_LONG_INTEGER);
    assert_int_equal(ttlv_type_by_name("Float", &ty), KMS_ERR_NOTFOUND);
}

static void test_enum_table(void **state)
{
    (void)state;
    uint32_t v;
    assert_string_equal(ttlv_enum_name(KMIP_TAG_OPERATION, KMIP_OPERATION_CREATE), "Create");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_OPERATION, 0x04), "Re-key");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY), "Symmetric Key");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES), "AES");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, 2), "3DES");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_STATE, KMIP_STATE_PRE_ACTIVE), "Pre-Active");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_RESULT_STATUS, 0), "Success");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_RESULT_REASON, KMIP_RESULT_REASON_ITEM_NOT_FOUND), "Item Not Found");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_KEY_FORMAT_TYPE, 3), "PKCS#1");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_PADDING_METHOD, 8), "PKCS1 v1.5");
    assert_string_equal(ttlv_enum_name(KMIP_TAG_MASK_GENERATOR_HASHING_ALGORITHM, 6), "SHA-256");
    assert_null(ttlv_enum_name(KMIP_TAG_OPERATION, 0xFFFF));
    assert_null(ttlv_enum_name(KMIP_TAG_UNIQUE_IDENTIFIER, 1)); /* not an Enumeration tag */
    assert_int_equal(ttlv_enum_by_name(KMIP_TAG_OPERATION, "Get", &v), 0);
    assert_int_equal(v, KMIP_OPERATION_GET);
    assert_int_equal(ttlv_enum_by_name(KMIP_TAG_LINK_TYPE, "Replacement Object Link", &v), 0);
    assert_int_equal(v, 0x106);
    assert_int_equal(ttlv_enum_by_name(KMIP_TAG_OPERATION, "get", &v), KMS_ERR_NOTFOUND);
    assert_int_equal(ttlv_enum_by_name(KMIP_TAG_NAME, "Get", &v), KMS_ERR_NOTFOUND);

    /* every Enumeration-typed tag has its set, but Profile Name (whose set
     * is a profile document's, not the specification's) */
    for (uint32_t tag = 0x420001; tag <= 0x420124; tag++) {
        if (ttlv_tag_type(tag) != TTLV_ENUMERATION)
            continue;
        bool named = false;
        for (uint32_t val = 0; val < 0x200 && !named; val++)
            named = ttlv_enum_name(tag, val) != NULL;
        named = named || ttlv_enum_name(tag, 0x80000000) != NULL;
        if (!named && tag != KMIP_TAG_PROFILE_NAME)
            fail_msg("Enumeration tag 0x%06X (%s) has no enumeration set", tag, ttlv_tag_name(tag));
    }
}

static void test_attr_table(void **state)
{
    (void)state;
    static const char *const attrs[] = {
        "Unique Identifier", "Name", "Object Type", "Cryptographic Algorithm", "Cryptographic Length",
        "Cryptographic Parameters", "Cryptographic Domain Parameters", "Certificate Type", "Certificate Length",
        "X.509 Certificate Identifier", "X.509 Certificate Subject", "X.509 Certificate Issuer",
        "Certificate Identifier", "Certificate Subject", "Certificate Issuer", "Digital Signature Algorithm",
        "Digest", "Operation Policy Name", "Cryptographic Usage Mask", "Lease Time", "Usage Limits", "State",
        "Initial Date", "Activation Date", "Process Start Date", "Protect Stop Date", "Deactivation Date",
        "Destroy Date", "Compromise Occurrence Date", "Compromise Date", "Revocation Reason", "Archive Date",
        "Object Group", "Fresh", "Link", "Application Specific Information", "Contact Information",
        "Last Change Date", "Alternative Name", "Key Value Present", "Key Value Location",
        "Original Creation Date", "Random Number Generator", "PKCS#12 Friendly Name", "Description", "Comment",
        "Sensitive", "Always Sensitive", "Extractable", "Never Extractable",
    };
    uint32_t t;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(attrs); i++) {
        if (ttlv_attr_tag_by_name(attrs[i], &t) != 0)
            fail_msg("attribute '%s' unknown", attrs[i]);
        /* an attribute's value tag has the attribute's own name and a type */
        assert_string_equal(ttlv_tag_name(t), attrs[i]);
        assert_int_not_equal(ttlv_tag_type(t), TTLV_ANY);
    }
    assert_int_equal(ttlv_attr_tag_by_name("Cryptographic Algorithm", &t), 0);
    assert_int_equal(t, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM);
    assert_int_equal(ttlv_tag_type(t), TTLV_ENUMERATION);
    assert_int_equal(ttlv_attr_tag_by_name("Activation Date", &t), 0);
    assert_int_equal(ttlv_tag_type(t), TTLV_DATE_TIME);
    assert_int_equal(ttlv_attr_tag_by_name("x-Purpose", &t), KMS_ERR_NOTFOUND);
    assert_int_equal(ttlv_attr_tag_by_name("cryptographic algorithm", &t), KMS_ERR_NOTFOUND);
    assert_int_equal(ttlv_attr_tag_by_name(NULL, &t), KMS_ERR_INVAL);
}

static ttlv_item_t *parse_ok(kms_arena_t *a, const char *text)
{
    ttlv_item_t *root = NULL;
    kms_error_t err;
    int rc = ttlv_parse_text(text, strlen(text), a, &root, &err);
    if (rc)
        fail_msg("parse failed at %zu: %s", err.offset, err.msg);
    return root;
}

static void parse_bad(const char *text, size_t want_off, const char *want_msg)
{
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root = (ttlv_item_t *)(uintptr_t)1;
    kms_error_t err;
    int rc = ttlv_parse_text(text, strlen(text), a, &root, &err);
    if (rc != KMS_ERR_PROTO || err.code != rc || err.offset != want_off || !strstr(err.msg, want_msg))
        fail_msg("'%s': rc %d offset %zu (want %zu) msg '%s' (want '%s')", text, rc, err.offset, want_off,
                 err.msg, want_msg);
    assert_null(root);
    kms_arena_free(a);
}

static void test_parse_text(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    /* by name, no hex; decimal and bare enumeration names; comments and blank lines */
    ttlv_item_t *r = parse_ok(a, "# a Create request payload\n"
                                 "Tag: Request Payload, Type: Structure, Data:\n"
                                 "\n"
                                 "  Tag: Object Type, Type: Enumeration, Data: Symmetric Key\n"
                                 "  Tag: Template-Attribute, Type: Structure, Data:\r\n"
                                 "    Tag: Attribute, Type: Structure, Data:\n"
                                 "      Tag: Attribute Name, Type: Text String, Data: Cryptographic Algorithm\n"
                                 "      Tag: Attribute Value, Type: Enumeration, Data: AES\n"
                                 "    Tag: Attribute (0x420008), Type: Structure (0x01), Data:\n"
                                 "      Tag: Attribute Name, Type: Text String, Data: Cryptographic Length\n"
                                 "      Tag: Attribute Value, Type: Integer, Data: 256\n"
                                 "  Tag: Unknown tag (0x540001), Type: Long Integer (0x03), Data: -5\n"
                                 "  Tag: Fresh, Type: Boolean, Data: true\n"
                                 "  Tag: Modulus, Type: Big Integer, Data: 010001 (65537)\n"
                                 "  Tag: Nonce ID, Type: Byte String, Data:\n"
                                 "  Tag: Name Value, Type: Text String, Data: \"\"\n"
                                 "  Tag: Description, Type: Text String, Data: \"two\\nlines\\t\\\"q\\\" \\\\ \\x01 \"\n");
    assert_int_equal(r->tag, KMIP_TAG_REQUEST_PAYLOAD);
    assert_int_equal(ttlv_u32(ttlv_find(r, KMIP_TAG_OBJECT_TYPE)), KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_find(r, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    assert_int_equal(ttlv_count(ta, KMIP_TAG_ATTRIBUTE), 2);
    ttlv_item_t *av = ttlv_find(ttlv_find(ta, KMIP_TAG_ATTRIBUTE), KMIP_TAG_ATTRIBUTE_VALUE);
    assert_int_equal(av->type, TTLV_ENUMERATION);
    assert_int_equal(ttlv_u32(av), KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    assert_true(ttlv_find(r, 0x540001)->v.i64 == -5);
    assert_true(ttlv_find(r, KMIP_TAG_FRESH)->v.b);
    ttlv_item_t *mod = ttlv_find(r, KMIP_TAG_MODULUS); /* sign-extended to 8 bytes */
    assert_int_equal(mod->v.bytes.len, 8);
    assert_memory_equal(mod->v.bytes.ptr, "\x00\x00\x00\x00\x00\x01\x00\x01", 8);
    assert_int_equal(ttlv_find(r, KMIP_TAG_NONCE_ID)->v.bytes.len, 0);
    assert_int_equal(ttlv_find(r, KMIP_TAG_NAME_VALUE)->v.bytes.len, 0);
    ttlv_item_t *d = ttlv_find(r, KMIP_TAG_DESCRIPTION);
    assert_int_equal(d->v.bytes.len, 18);
    assert_memory_equal(d->v.bytes.ptr, "two\nlines\t\"q\" \\ \x01 ", 18);

    /* print -> parse -> equal, including the quoted and empty values */
    kms_buf_t p;
    kms_buf_init(&p, 0);
    assert_int_equal(ttlv_print(r, false, &p), 0);
    ttlv_item_t *back;
    kms_error_t err;
    assert_int_equal(ttlv_parse_text((char *)p.data, p.len, a, &back, &err), 0);
    assert_true(ttlv_equal(r, back));
    assert_int_equal(kms_buf_append_byte(&p, 0), 0);
    assert_non_null(strstr((char *)p.data, "Data: 0x00000003 (AES)\n"));
    assert_non_null(strstr((char *)p.data, "Data: 0x00000100 (256)\n"));
    assert_non_null(strstr((char *)p.data, "Tag: Unknown tag (0x540001), Type: Long Integer (0x03), "
                                           "Data: 0xFFFFFFFFFFFFFFFB (-5)\n"));
    assert_non_null(strstr((char *)p.data, "Data: \"two\\nlines\\t\\\"q\\\" \\\\ \\x01 \"\n"));
    kms_buf_dispose(&p);

    /* a mask prints by bit names (the document's "(Encrypt, Decrypt)"), unknown bits in hex */
    kms_buf_init(&p, 0);
    ttlv_item_t *mask = ttlv_new_int(a, NULL, KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, 0x0C | 0x40000000);
    assert_int_equal(ttlv_print(mask, false, &p), 0);
    assert_int_equal(kms_buf_append_byte(&p, 0), 0);
    assert_string_equal((char *)p.data, "Tag: Cryptographic Usage Mask (0x42002C), Type: Integer (0x02), "
                                        "Data: 0x4000000C (Encrypt, Decrypt, 0x40000000)\n");
    kms_buf_dispose(&p);
    kms_arena_free(a);

    /* errors name the offset of the offending field */
    parse_bad("", 0, "no item");
    parse_bad("Tag: Operation, Type: Enumeration, Data: Bogus\n", 41, "enumeration name");
    parse_bad("Tag: Batch Count (0x42000D), Type: Integer (0x02), Data: 0x1G\n", 57, "bad Integer");
    parse_bad("Tag: No Such Tag, Type: Integer, Data: 1\n", 5, "unknown tag name");
    parse_bad("Tag: Batch Count, Type: Float, Data: 1\n", 24, "unknown type");
    parse_bad("Tag: Batch Count, Type: Integer (0x0C), Data: 1\n", 24, "unknown item type");
    parse_bad("Tag: Batch Count, Type: Integer, Data: 4294967296\n", 39, "bad Integer");
    parse_bad("Tag: Batch Count Type: Integer, Data: 1\n", 5, "Type");
    parse_bad("Tag: Request Payload, Type: Structure, Data:\n   Tag: Fresh, Type: Boolean, Data: TRUE\n", 48,
              "two spaces");
    parse_bad("Tag: Request Payload, Type: Structure, Data:\n    Tag: Fresh, Type: Boolean, Data: TRUE\n", 49,
              "does not follow");
    parse_bad("Tag: Fresh, Type: Boolean, Data: TRUE\n  Tag: Fresh, Type: Boolean, Data: TRUE\n", 40,
              "does not follow");
    parse_bad("Tag: Fresh, Type: Boolean, Data: TRUE\nTag: Fresh, Type: Boolean, Data: TRUE\n", 38,
              "more than one");
    parse_bad("Tag: Fresh, Type: Boolean, Data: yes\n", 33, "Boolean");
    parse_bad("Tag: Nonce ID, Type: Byte String, Data: 0102F\n", 40, "hex");
    parse_bad("Tag: Name Value, Type: Text String, Data: \"open\n", 42, "quoted");
    parse_bad("Tag: Name Value, Type: Text String, Data: \"bad \\q\"\n", 42, "quoted");
    parse_bad("Tag: Name Value, Type: Text String, Data: \"\\xC3\\x28\"\n", 42, "UTF-8");
    parse_bad("Tag: Name Value, Type: Text String, Data: \"nul\\x00\"\n", 42, "UTF-8");
    parse_bad("Tag: Key Material, Type: Byte String, Data: <redacted>\n", 44, "redacted");
    parse_bad("Tag: Name, Type: Structure, Data: 12\n", 34, "Structure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders_and_encode),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_builders_nomem),
        cmocka_unit_test(test_find_count_remove),
        cmocka_unit_test(test_clone_equal),
        cmocka_unit_test(test_tag_table),
        cmocka_unit_test(test_enum_table),
        cmocka_unit_test(test_attr_table),
        cmocka_unit_test(test_parse_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
