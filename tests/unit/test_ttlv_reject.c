/* tests/unit/test_ttlv_reject.c: the strict decoder refuses every malformed
 * input with the right error kind AND the byte offset of the offending
 * field; ttlv_frame_need's framing rules; the decoder never writes to its
 * input (decoded from a read-only page). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

/* Hex with any separators ("42 00 20 | 02 | ...") into a static buffer. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
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
    assert_int_equal(hi, -1);
    return n;
}

/* Decodes hex with limits; asserts the result code, and the offset when failing. */
static void expect(const char *hex, const ttlv_limits_t *lim, int want_rc, size_t want_off,
                   const char *want_in_msg)
{
    uint8_t buf[4096];
    size_t n = unhex(hex, buf, sizeof(buf));
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root = (ttlv_item_t *)(uintptr_t)1;
    kms_error_t err;
    int rc = ttlv_decode(buf, n, lim, a, &root, &err);
    if (rc != want_rc || (rc && err.offset != want_off))
        print_error("input %s: rc %d (want %d), offset %zu (want %zu): %s\n", hex, rc, want_rc,
                    err.offset, want_off, err.msg);
    assert_int_equal(rc, want_rc);
    if (rc) {
        assert_null(root);
        assert_int_equal(err.offset, want_off);
        assert_int_equal(err.code, rc);
        assert_true(err.msg[0] != 0);
        if (want_in_msg && !strstr(err.msg, want_in_msg)) {
            print_error("message '%s' lacks '%s'\n", err.msg, want_in_msg);
            fail();
        }
    } else {
        assert_non_null(root);
        assert_int_equal(err.code, 0);
        assert_int_equal(err.offset, KMS_ERROR_NO_OFFSET);
    }
    kms_arena_free(a);
}

static void test_unknown_type(void **state)
{
    (void)state;
    expect("42 00 20 | 0B | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 3, "unknown item type");
    expect("42 00 20 | 00 | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 3, "unknown item type");
    /* nested: the child's type byte is at 8 + 3 */
    expect("42 00 20 | 01 | 00 00 00 10 | 42 00 04 | FF | 00 00 00 04 | 00 00 00 01 00 00 00 00", NULL,
           KMS_ERR_PROTO, 11, "0xFF");
}

static void test_wrong_fixed_lengths(void **state)
{
    (void)state;
    /* the length field is at offset 4 */
    expect("42 00 20 | 02 | 00 00 00 08 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Integer");
    expect("42 00 20 | 03 | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Long Integer");
    expect("42 00 20 | 05 | 00 00 00 08 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Enumeration");
    expect("42 00 20 | 06 | 00 00 00 04 | 00 00 00 01 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Boolean");
    expect("42 00 20 | 09 | 00 00 00 04 | 47 DA 67 F8 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Date-Time");
    expect("42 00 20 | 0A | 00 00 00 08 | 00 0D 2F 00 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "Interval");
    /* Big Integer: a multiple of 8 */
    expect("42 00 20 | 04 | 00 00 00 0C | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 00 00 00 00", NULL,
           KMS_ERR_PROTO, 4, "multiple of 8");
    /* Structure: a multiple of 8 (children are padded) */
    expect("42 00 20 | 01 | 00 00 00 04 | 00 00 00 00 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "multiple of 8");
    /* a zero-length Integer inside a structure: length field at 8 + 4 */
    expect("42 00 20 | 01 | 00 00 00 08 | 42 00 04 | 02 | 00 00 00 00", NULL, KMS_ERR_PROTO, 12, "must be 4");
}

static void test_nonzero_padding(void **state)
{
    (void)state;
    /* Integer: pad bytes 12..15 */
    expect("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 01 00", NULL, KMS_ERR_PROTO, 14, "padding");
    expect("42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 80 00 00 00", NULL, KMS_ERR_PROTO, 12, "padding");
    expect("42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 01", NULL, KMS_ERR_PROTO, 15, "padding");
    /* Text String "Hello World": 11 bytes at 8..18, padding 19..23 */
    expect("42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 20 00 00", NULL, KMS_ERR_PROTO,
           21, "Text String");
    /* Byte String 01 02 03: padding 11..15 */
    expect("42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 FF", NULL, KMS_ERR_PROTO, 15, "Byte String");
}

static void test_boolean_values(void **state)
{
    (void)state;
    expect("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01", NULL, 0, 0, NULL);
    expect("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 00", NULL, 0, 0, NULL);
    expect("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 02", NULL, KMS_ERR_PROTO, 8, "Boolean");
    expect("42 00 20 | 06 | 00 00 00 08 | 01 00 00 00 00 00 00 01", NULL, KMS_ERR_PROTO, 8, "Boolean");
}

static void test_length_past_buffer(void **state)
{
    (void)state;
    /* Text of 100 bytes in a 16-byte input */
    expect("42 00 20 | 07 | 00 00 00 64 | 48 65 6C 6C 6F 00 00 00", NULL, KMS_ERR_PROTO, 4, "past the input");
    /* the top Structure claims more than there is */
    expect("42 00 20 | 01 | 00 00 00 18 | 42 00 04 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00", NULL,
           KMS_ERR_PROTO, 4, "past the input");
    /* a huge length (0xFFFFFFF8) must not wrap anything */
    expect("42 00 20 | 08 | FF FF FF F8 | 00 00 00 00 00 00 00 00", NULL, KMS_ERR_PROTO, 4, "past the input");
    /* too short for a header at all */
    expect("42 00 20 | 02 | 00 00", NULL, KMS_ERR_PROTO, 0, "truncated");
    expect("", NULL, KMS_ERR_PROTO, 0, "truncated");
}

static void test_child_overruns_parent(void **state)
{
    (void)state;
    /* parent length 16; child Text of 11 needs 8 + 16 bytes: its length field at 12 */
    expect("42 00 20 | 01 | 00 00 00 10 | 42 00 04 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F "
           "72 6C 64 00 00 00 00 00",
           NULL, KMS_ERR_PROTO, 12, "overruns its parent");
    /* second child does not fit in what is left of the parent: header at 24 is cut short */
    expect("42 00 20 | 01 | 00 00 00 14 | 42 00 04 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00 | "
           "42 00 05 | 02 | 00 00 00 04 | 00 00 00 02 00 00 00 00",
           NULL, KMS_ERR_PROTO, 4, "multiple of 8");
    expect("42 00 20 | 01 | 00 00 00 18 | 42 00 04 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00 | "
           "42 00 05 | 02 | 00 00 00 04 | 00 00 00 02 00 00 00 00",
           NULL, KMS_ERR_PROTO, 28, "overruns its parent");
    /* a nested structure whose child overruns it, although the outer one has room */
    expect("42 00 20 | 01 | 00 00 00 20 | 42 00 21 | 01 | 00 00 00 08 | 42 00 04 | 02 | 00 00 00 04 | "
           "00 00 00 01 00 00 00 00 | 00 00 00 00 00 00 00 00",
           NULL, KMS_ERR_PROTO, 20, "overruns its parent");
}

/* n nested empty-then-leaf Structures: 42 00 20 | 01 | len ... */
static size_t nested(uint8_t *buf, size_t depth)
{
    size_t total = 8 * depth + 16; /* depth structure headers and one Integer */
    for (size_t i = 0; i < depth; i++) {
        uint8_t *h = buf + 8 * i;
        h[0] = 0x42, h[1] = 0x00, h[2] = 0x20, h[3] = TTLV_STRUCTURE;
        kms_put_be32(h + 4, (uint32_t)(total - 8 * (i + 1)));
    }
    uint8_t *leaf = buf + 8 * depth;
    memcpy(leaf, "\x42\x00\x04\x02\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00", 16);
    return total;
}

static void test_depth_limit(void **state)
{
    (void)state;
    static uint8_t buf[8 * 300 + 16];
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root;
    kms_error_t err;
    /* 31 structures + the Integer = 32 levels: accepted with the default */
    size_t n = nested(buf, 31);
    assert_int_equal(ttlv_decode(buf, n, NULL, a, &root, &err), 0);
    /* 32 structures + the Integer = 33 levels: refused at the Integer (offset 32*8) */
    n = nested(buf, 32);
    assert_int_equal(ttlv_decode(buf, n, NULL, a, &root, &err), KMS_ERR_LIMIT);
    assert_int_equal(err.offset, 256);
    assert_non_null(strstr(err.msg, "deeper"));
    /* a caller's smaller limit */
    ttlv_limits_t lim = {.max_depth = 3, .max_items = 0};
    n = nested(buf, 3);
    assert_int_equal(ttlv_decode(buf, n, &lim, a, &root, &err), KMS_ERR_LIMIT);
    assert_int_equal(err.offset, 24);
    n = nested(buf, 2);
    assert_int_equal(ttlv_decode(buf, n, &lim, a, &root, &err), 0);
    /* a limit above the hard cap is clipped: 300 levels never recurse that deep */
    lim.max_depth = 100000;
    n = nested(buf, 300);
    assert_int_equal(ttlv_decode(buf, n, &lim, a, &root, &err), KMS_ERR_LIMIT);
    kms_arena_free(a);
}

static void test_item_limit(void **state)
{
    (void)state;
    const char *three = "42 00 20 | 01 | 00 00 00 30 | 42 00 04 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00 | "
                        "42 00 05 | 02 | 00 00 00 04 | 00 00 00 02 00 00 00 00 | "
                        "42 00 06 | 02 | 00 00 00 04 | 00 00 00 03 00 00 00 00";
    ttlv_limits_t lim = {.max_depth = 0, .max_items = 4};
    expect(three, &lim, 0, 0, NULL);
    lim.max_items = 3; /* the fourth item (third child) at offset 40 */
    expect(three, &lim, KMS_ERR_LIMIT, 40, "more than 3 items");
    lim.max_items = 1;
    expect(three, &lim, KMS_ERR_LIMIT, 8, "items");
}

/* max_size bounds the input before anything is read. */
static void test_size_limit(void **state)
{
    (void)state;
    const char *one = "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00";
    ttlv_limits_t lim = {.max_size = 16};
    expect(one, &lim, 0, 0, NULL);
    lim.max_size = 15;
    expect(one, &lim, KMS_ERR_LIMIT, 15, "TTLV message of 16 bytes is over 15");
}

static void test_tag_first_byte(void **state)
{
    (void)state;
    expect("43 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 0, "0x430020");
    expect("00 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, KMS_ERR_PROTO, 0, "neither");
    /* 0x54xxxx (extensions) is allowed */
    expect("54 00 01 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00", NULL, 0, 0, NULL);
    /* nested bad tag at 8 */
    expect("42 00 20 | 01 | 00 00 00 10 | 01 42 42 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00", NULL,
           KMS_ERR_PROTO, 8, "0x014242");
    /* ... but inside a Vendor Extension anything goes (KMIP 1.1 test cases 7.1/7.2) */
    expect("42 00 9C | 01 | 00 00 00 10 | 01 42 42 | 07 | 00 00 00 02 | 6E 61 00 00 00 00 00 00", NULL, 0, 0,
           NULL);
    /* the other rules still apply inside it */
    expect("42 00 9C | 01 | 00 00 00 10 | 01 42 42 | 07 | 00 00 00 02 | 6E 61 00 00 00 00 00 01", NULL,
           KMS_ERR_PROTO, 23, "padding");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    /* value starts at 8; the offset names the first bad byte */
    expect("42 00 20 | 07 | 00 00 00 02 | C3 28 00 00 00 00 00 00", NULL, KMS_ERR_PROTO, 9, "UTF-8");
    expect("42 00 20 | 07 | 00 00 00 03 | 41 C0 AF 00 00 00 00 00", NULL, KMS_ERR_PROTO, 9, "UTF-8"); /* overlong */
    expect("42 00 20 | 07 | 00 00 00 03 | ED A0 80 00 00 00 00 00", NULL, KMS_ERR_PROTO, 8, "UTF-8"); /* surrogate */
    expect("42 00 20 | 07 | 00 00 00 04 | F4 90 80 80 00 00 00 00", NULL, KMS_ERR_PROTO, 8, "UTF-8"); /* > U+10FFFF */
    expect("42 00 20 | 07 | 00 00 00 02 | 41 FF 00 00 00 00 00 00", NULL, KMS_ERR_PROTO, 9, "UTF-8");
    expect("42 00 20 | 07 | 00 00 00 03 | 41 42 E2 00 00 00 00 00", NULL, KMS_ERR_PROTO, 10, "UTF-8"); /* cut */
    expect("42 00 20 | 07 | 00 00 00 03 | 41 00 42 00 00 00 00 00", NULL, KMS_ERR_PROTO, 9, "UTF-8"); /* NUL */
    /* valid multi-byte text is fine: "é€😀" */
    expect("42 00 20 | 07 | 00 00 00 09 | C3 A9 E2 82 AC F0 9F 98 80 00 00 00 00 00 00 00", NULL, 0, 0, NULL);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    expect("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00 | 00", NULL, KMS_ERR_PROTO, 16, "trailing");
    expect("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00 | 42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 "
           "00 00 00 00",
           NULL, KMS_ERR_PROTO, 16, "trailing");
}

static void test_arena_limit(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = unhex("42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 | "
                     "42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00",
                     buf, sizeof(buf));
    kms_arena_t *a = kms_arena_new(2 * sizeof(ttlv_item_t));
    ttlv_item_t *root;
    kms_error_t err;
    assert_int_equal(ttlv_decode(buf, n, NULL, a, &root, &err), KMS_ERR_NOMEM);
    kms_arena_free(a);
    a = kms_arena_new(0);
    assert_int_equal(ttlv_decode(buf, n, NULL, a, &root, &err), 0);
    assert_int_equal(ttlv_decode(NULL, 8, NULL, a, &root, &err), KMS_ERR_INVAL);
    assert_int_equal(ttlv_decode(buf, n, NULL, NULL, &root, &err), KMS_ERR_INVAL);
    kms_arena_free(a);
}

/* The decoder takes const input: prove it on a page the process cannot write. */
static void test_input_read_only(void **state)
{
    (void)state;
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *page = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    const char *msg = "42 00 78 | 01 | 00 00 00 28 | 42 00 94 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C "
                      "64 00 00 00 00 00 | 42 00 06 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00";
    size_t n = unhex(msg, page, (size_t)pg);
    /* place the message at the very end of the page so any over-read faults too */
    memmove(page + pg - n, page, n);
    memset(page, 0xEE, (size_t)pg - n);
    assert_int_equal(mprotect(page, (size_t)pg, PROT_READ), 0);
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root;
    kms_error_t err;
    assert_int_equal(ttlv_decode(page + pg - n, n, NULL, a, &root, &err), 0);
    assert_string_equal(ttlv_text(ttlv_find(root, KMIP_TAG_UNIQUE_IDENTIFIER)), "Hello World");
    /* the tree holds copies, not pointers into the input */
    ttlv_item_t *bs = ttlv_find(root, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    assert_non_null(bs);
    assert_true(bs->v.bytes.ptr < page || bs->v.bytes.ptr >= page + pg);
    /* every truncation of it fails cleanly without touching beyond the end */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_not_equal(ttlv_decode(page + pg - n, cut, NULL, a, &root, &err), 0);
    kms_arena_free(a);
    munmap(page, (size_t)pg);
}

static void test_frame_need(void **state)
{
    (void)state;
    uint8_t h[16];
    size_t total = 12345;
    unhex("42 00 78 | 01 | 00 00 01 20", h, sizeof(h));
    for (size_t have = 0; have < 8; have++)
        assert_int_equal(ttlv_frame_need(h, have, 1 << 20, &total), KMS_ERR_PARTIAL);
    assert_int_equal(total, 12345); /* untouched */
    assert_int_equal(ttlv_frame_need(h, 8, 1 << 20, &total), 0);
    assert_int_equal(total, 8 + 0x120);
    assert_int_equal(ttlv_frame_need(h, 16, 1 << 20, &total), 0); /* more than the header is fine */
    assert_int_equal(total, 8 + 0x120);
    /* exact sizes at the limit */
    assert_int_equal(ttlv_frame_need(h, 8, 8 + 0x120, &total), 0);
    assert_int_equal(ttlv_frame_need(h, 8, 8 + 0x11F, &total), KMS_ERR_LIMIT);
    /* declared 1 GiB with a 1 MiB max */
    unhex("42 00 78 | 01 | 40 00 00 00", h, sizeof(h));
    assert_int_equal(ttlv_frame_need(h, 8, 1 << 20, &total), KMS_ERR_LIMIT);
    /* the largest length there is, with SIZE_MAX allowed: no overflow */
    unhex("42 00 78 | 01 | FF FF FF FF", h, sizeof(h));
    assert_int_equal(ttlv_frame_need(h, 8, SIZE_MAX, &total), 0);
    assert_true(total == (size_t)0xFFFFFFFFu + 8);
    /* not a Structure */
    unhex("42 00 78 | 02 | 00 00 00 04", h, sizeof(h));
    assert_int_equal(ttlv_frame_need(h, 8, 1 << 20, &total), KMS_ERR_PROTO);
    /* not a 0x42 tag (0x54 extensions cannot open a message either) */
    unhex("54 00 78 | 01 | 00 00 00 08", h, sizeof(h));
    assert_int_equal(ttlv_frame_need(h, 8, 1 << 20, &total), KMS_ERR_PROTO);
    unhex("16 03 01 | 02 | 00 01 00 00", h, sizeof(h)); /* a TLS record sent in clear */
    assert_int_equal(ttlv_frame_need(h, 8, 1 << 20, &total), KMS_ERR_PROTO);
    assert_int_equal(ttlv_frame_need(NULL, 8, 1 << 20, &total), KMS_ERR_PARTIAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_wrong_fixed_lengths),
        cmocka_unit_test(test_nonzero_padding),
        cmocka_unit_test(test_boolean_values),
        cmocka_unit_test(test_length_past_buffer),
        cmocka_unit_test(test_child_overruns_parent),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_item_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_tag_first_byte),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test(test_input_read_only),
        cmocka_unit_test(test_frame_need),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
