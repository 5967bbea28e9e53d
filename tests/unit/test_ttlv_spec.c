/* tests/unit/test_ttlv_spec.c: the encoding examples of the KMIP 1.1
 * specification, section 9.1.2, byte-exact in both directions: decode the
 * bytes and check the value, build the value and check the bytes; and how
 * each prints and parses back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

struct fixture {
    kms_arena_t *a;
    uint8_t want[256];
    size_t want_len;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->a = kms_arena_new(0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kms_arena_free(f->a);
    free(f);
    return 0;
}

/* Decode the spec bytes (must succeed, single item), return the item. */
static ttlv_item_t *dec(struct fixture *f, const char *hex)
{
    ttlv_item_t *it = NULL;
    kms_error_t err;
    f->want_len = unhex(hex, f->want, sizeof(f->want));
    int rc = ttlv_decode(f->want, f->want_len, NULL, f->a, &it, &err);
    if (rc)
        print_error("decode: %s at %zu\n", err.msg, err.offset);
    assert_int_equal(rc, 0);
    assert_int_equal(it->tag, 0x420020);
    assert_int_equal(it->offset, 0);
    return it;
}

/* Encode `built`, compare with the spec bytes, and check print -> parse -> encode. */
static void enc_check(struct fixture *f, const ttlv_item_t *built, const char *want_line)
{
    kms_buf_t b, p;
    kms_buf_init(&b, 0);
    kms_buf_init(&p, 0);
    assert_int_equal(ttlv_encode(built, &b), 0);
    assert_int_equal(b.len, f->want_len);
    assert_memory_equal(b.data, f->want, f->want_len);
    assert_int_equal(ttlv_encoded_size(built), f->want_len);
    assert_int_equal(ttlv_print(built, false, &p), 0);
    assert_int_equal(kms_buf_append_byte(&p, 0), 0);
    if (want_line && strcmp((char *)p.data, want_line) != 0) {
        print_error("printed:\n%s\nwanted:\n%s\n", (char *)p.data, want_line);
        fail();
    }
    ttlv_item_t *back;
    kms_error_t err;
    assert_int_equal(ttlv_parse_text((char *)p.data, p.len - 1, f->a, &back, &err), 0);
    assert_true(ttlv_equal(back, built));
    kms_buf_reset(&b);
    assert_int_equal(ttlv_encode(back, &b), 0);
    assert_memory_equal(b.data, f->want, f->want_len);
    kms_buf_dispose(&b);
    kms_buf_dispose(&p);
}

/* 0x420020 is Compromise Date in the tables; the examples reuse it for every
 * type, so the printed name is that and the type comes from the wire. */
#define T "Tag: Compromise Date (0x420020), "

static void test_integer(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it = dec(f, "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00");
    assert_int_equal(it->type, TTLV_INTEGER);
    assert_int_equal(it->v.i32, 8);
    enc_check(f, ttlv_new_int(f->a, NULL, 0x420020, 8), T "Type: Integer (0x02), Data: 0x00000008 (8)\n");
}

static void test_long_integer(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it = dec(f, "42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00");
    assert_int_equal(it->type, TTLV_LONG_INTEGER);
    assert_true(it->v.i64 == 123456789000000000LL);
    enc_check(f, ttlv_new_long(f->a, NULL, 0x420020, 123456789000000000LL),
              T "Type: Long Integer (0x03), Data: 0x01B69B4BA5749200 (123456789000000000)\n");
}

static void test_big_integer(void **state)
{
    struct fixture *f = *state;
    static const uint8_t v[16] = {0x00, 0x00, 0x00, 0x00, 0x03, 0xFD, 0x35, 0xEB,
                                  0x6B, 0xC2, 0xDF, 0x46, 0x18, 0x08, 0x00, 0x00};
    ttlv_item_t *it = dec(f, "42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00");
    assert_int_equal(it->type, TTLV_BIG_INTEGER);
    assert_int_equal(it->v.bytes.len, 16);
    assert_memory_equal(it->v.bytes.ptr, v, 16);
    enc_check(f, ttlv_new_bigint(f->a, NULL, 0x420020, v, 16),
              T "Type: Big Integer (0x04), Data: 0000000003FD35EB6BC2DF4618080000 "
                "(1234567890000000000000000000)\n");
}

static void test_big_integer_negative(void **state)
{
    struct fixture *f = *state;
    /* -1234567890000000000000000000 in 16 bytes of two's complement */
    dec(f, "42 00 20 | 04 | 00 00 00 10 | FF FF FF FF FC 02 CA 14 94 3D 20 B9 E7 F8 00 00");
    uint8_t v[16];
    memcpy(v, f->want + 8, 16);
    enc_check(f, ttlv_new_bigint(f->a, NULL, 0x420020, v, 16),
              T "Type: Big Integer (0x04), Data: FFFFFFFFFC02CA14943D20B9E7F80000 "
                "(-1234567890000000000000000000)\n");
    /* -1 and the most negative 64-bit value print right too */
    dec(f, "42 00 20 | 04 | 00 00 00 08 | FF FF FF FF FF FF FF FF");
    memcpy(v, f->want + 8, 8);
    enc_check(f, ttlv_new_bigint(f->a, NULL, 0x420020, v, 8),
              T "Type: Big Integer (0x04), Data: FFFFFFFFFFFFFFFF (-1)\n");
    dec(f, "42 00 20 | 04 | 00 00 00 08 | 80 00 00 00 00 00 00 00");
    memcpy(v, f->want + 8, 8);
    enc_check(f, ttlv_new_bigint(f->a, NULL, 0x420020, v, 8),
              T "Type: Big Integer (0x04), Data: 8000000000000000 (-9223372036854775808)\n");
}

static void test_enumeration(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it = dec(f, "42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00");
    assert_int_equal(it->type, TTLV_ENUMERATION);
    assert_int_equal(ttlv_u32(it), 255);
    /* no enumeration set for this tag: the value prints without a name */
    enc_check(f, ttlv_new_enum(f->a, NULL, 0x420020, 255), T "Type: Enumeration (0x05), Data: 0x000000FF\n");
}

static void test_boolean(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it = dec(f, "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01");
    assert_int_equal(it->type, TTLV_BOOLEAN);
    assert_true(it->v.b);
    enc_check(f, ttlv_new_bool(f->a, NULL, 0x420020, true), T "Type: Boolean (0x06), Data: TRUE\n");
}

static void test_text_string(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it =
        dec(f, "42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00");
    assert_int_equal(it->type, TTLV_TEXT_STRING);
    assert_int_equal(it->v.bytes.len, 11);
    assert_string_equal(ttlv_text(it), "Hello World"); /* NUL-terminated copy */
    enc_check(f, ttlv_new_textz(f->a, NULL, 0x420020, "Hello World"),
              T "Type: Text String (0x07), Data: Hello World\n");
}

static void test_byte_string(void **state)
{
    struct fixture *f = *state;
    ttlv_item_t *it = dec(f, "42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00");
    assert_int_equal(it->type, TTLV_BYTE_STRING);
    assert_int_equal(it->v.bytes.len, 3);
    assert_memory_equal(it->v.bytes.ptr, "\x01\x02\x03", 3);
    enc_check(f, ttlv_new_bytes(f->a, NULL, 0x420020, "\x01\x02\x03", 3),
              T "Type: Byte String (0x08), Data: 010203\n");
}

static void test_date_time(void **state)
{
    struct fixture *f = *state;
    /* Friday, March 14, 2008, 11:56:40 GMT */
    ttlv_item_t *it = dec(f, "42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8");
    assert_int_equal(it->type, TTLV_DATE_TIME);
    assert_true(it->v.i64 == 1205495800);
    enc_check(f, ttlv_new_datetime(f->a, NULL, 0x420020, 1205495800),
              T "Type: Date-Time (0x09), Data: 0x0000000047DA67F8 (Fri Mar 14 11:56:40 UTC 2008)\n");
}

static void test_interval(void **state)
{
    struct fixture *f = *state;
    /* 10 days */
    ttlv_item_t *it = dec(f, "42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00");
    assert_int_equal(it->type, TTLV_INTERVAL);
    assert_int_equal(ttlv_u32(it), 10 * 24 * 3600);
    enc_check(f, ttlv_new_interval(f->a, NULL, 0x420020, 10 * 24 * 3600),
              T "Type: Interval (0x0A), Data: 0x000D2F00\n");
}

static void test_structure(void **state)
{
    struct fixture *f = *state;
    /* an Enumeration 254 and an Integer 255, tags 420004 and 420005 */
    ttlv_item_t *it = dec(f, "42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 | "
                             "42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00");
    assert_int_equal(it->type, TTLV_STRUCTURE);
    ttlv_item_t *e = it->first;
    assert_non_null(e);
    assert_int_equal(e->tag, 0x420004);
    assert_int_equal(e->type, TTLV_ENUMERATION);
    assert_int_equal(ttlv_u32(e), 254);
    assert_int_equal(e->offset, 8);
    assert_ptr_equal(e->parent, it);
    ttlv_item_t *i = e->next;
    assert_non_null(i);
    assert_int_equal(i->tag, 0x420005);
    assert_int_equal(i->type, TTLV_INTEGER);
    assert_int_equal(i->v.i32, 255);
    assert_int_equal(i->offset, 24);
    assert_null(i->next);
    assert_ptr_equal(it->last, i);

    ttlv_item_t *s = ttlv_new_struct(f->a, NULL, 0x420020);
    ttlv_new_enum(f->a, s, 0x420004, 254);
    ttlv_new_int(f->a, s, 0x420005, 255);
    enc_check(f, s,
              T "Type: Structure (0x01), Data:\n"
                "  Tag: Application Specific Information (0x420004), Type: Enumeration (0x05), Data: 0x000000FE\n"
                "  Tag: Archive Date (0x420005), Type: Integer (0x02), Data: 0x000000FF (255)\n");
    assert_true(ttlv_equal(s, it));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_integer_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enumeration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boolean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_date_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
