/* tests/unit/test_store_clocks.c: the stored encoding of an object's
 * per-name clocks (store/clocks.c): exact bytes of a known list, round
 * trips, canonical form (sorted entries, node table in order of first
 * use, minimal varints), and refusal of every malformed input the decoder
 * could meet: truncation, trailing bytes, unsorted or repeated names,
 * repeated or unused nodes, bad indexes, NUL bytes, oversized counts and
 * lengths, non-minimal and overlong varints; plus store_clock_cmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/kms.h"
#include "store/store.h"

static int decode(const uint8_t *p, size_t n, store_clock_t **c, size_t *nc, kms_arena_t *a)
{
    return store_clocks_decode(p, n, a, c, nc);
}

static void test_known_bytes(void **state)
{
    (void)state;
    store_clock_t c[] = {
        {.name = "State", .hlc = 300, .node = "b"},
        {.name = "", .hlc = 1, .node = "a"},
        {.name = "Name", .hlc = 2, .node = "b"},
    };
    kms_buf_t b;
    kms_buf_init(&b, 4096);
    assert_int_equal(store_clocks_encode(c, 3, &b), 0);
    /* format 1; nodes "a" then "b" (first use in name order: "", Name,
     * State); entries: "" 1 @0, "Name" 2 @1, "State" 300 (0xac 0x02) @1 */
    static const uint8_t want[] = {1, 2, 1, 'a', 1, 'b', 3,
                                   0, 1, 0,
                                   4, 'N', 'a', 'm', 'e', 2, 1,
                                   5, 'S', 't', 'a', 't', 'e', 0xac, 0x02, 1};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    kms_arena_t *a = kms_arena_new(0);
    store_clock_t *d;
    size_t n;
    assert_int_equal(decode(b.data, b.len, &d, &n, a), 0);
    assert_int_equal(n, 3);
    assert_string_equal(d[0].name, "");
    assert_string_equal(d[0].node, "a");
    assert_int_equal(d[0].hlc, 1);
    assert_string_equal(d[2].name, "State");
    assert_int_equal(d[2].hlc, 300);
    assert_string_equal(d[2].node, "b");
    /* re-encoding the decoded list gives the same bytes */
    kms_buf_t b2;
    kms_buf_init(&b2, 4096);
    assert_int_equal(store_clocks_encode(d, n, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    /* the empty list */
    kms_buf_reset(&b);
    assert_int_equal(store_clocks_encode(NULL, 0, &b), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(decode(b.data, b.len, &d, &n, a), 0);
    assert_int_equal(n, 0);
    kms_buf_dispose(&b);
    kms_buf_dispose(&b2);
    kms_arena_free(a);
}

static void test_roundtrip_large(void **state)
{
    (void)state;
    static store_clock_t c[STORE_CLOCKS_MAX];
    static char names[STORE_CLOCKS_MAX][16];
    const char *nodes[] = {"n0", "n1", "n2", "n3"};
    for (int i = 0; i < STORE_CLOCKS_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%05d", (i * 7919) % STORE_CLOCKS_MAX);
        c[i] = (store_clock_t){.name = names[i], .hlc = INT64_MAX - i, .node = nodes[i % 4]};
    }
    kms_buf_t b;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(store_clocks_encode(c, STORE_CLOCKS_MAX, &b), 0);
    kms_arena_t *a = kms_arena_new(0);
    store_clock_t *d;
    size_t n;
    assert_int_equal(decode(b.data, b.len, &d, &n, a), 0);
    assert_int_equal(n, STORE_CLOCKS_MAX);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(d[i - 1].name, d[i].name) < 0);
    /* one more entry is refused */
    kms_buf_reset(&b);
    static store_clock_t more[STORE_CLOCKS_MAX + 1];
    memcpy(more, c, sizeof(c));
    more[STORE_CLOCKS_MAX] = (store_clock_t){.name = "y", .hlc = 1, .node = "n0"};
    assert_int_equal(store_clocks_encode(more, STORE_CLOCKS_MAX + 1, &b), KMS_ERR_LIMIT);
    assert_int_equal(b.len, 0);
    kms_buf_dispose(&b);
    kms_arena_free(a);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    kms_buf_t b;
    kms_buf_init(&b, 4096);
    store_clock_t dup[] = {{.name = "a", .hlc = 1, .node = "n"}, {.name = "a", .hlc = 2, .node = "n"}};
    assert_int_equal(store_clocks_encode(dup, 2, &b), KMS_ERR_INVAL);
    store_clock_t neg = {.name = "a", .hlc = -1, .node = "n"};
    assert_int_equal(store_clocks_encode(&neg, 1, &b), KMS_ERR_INVAL);
    store_clock_t nonode = {.name = "a", .hlc = 1, .node = ""};
    assert_int_equal(store_clocks_encode(&nonode, 1, &b), KMS_ERR_INVAL);
    store_clock_t nullname = {.name = NULL, .hlc = 1, .node = "n"};
    assert_int_equal(store_clocks_encode(&nullname, 1, &b), KMS_ERR_INVAL);
    char longnode[70];
    memset(longnode, 'n', 64);
    longnode[64] = 0;
    store_clock_t ln = {.name = "a", .hlc = 1, .node = longnode};
    assert_int_equal(store_clocks_encode(&ln, 1, &b), KMS_ERR_INVAL);
    static char longname[STORE_CLOCK_NAME_MAX + 2];
    memset(longname, 'x', STORE_CLOCK_NAME_MAX + 1);
    store_clock_t lname = {.name = longname, .hlc = 1, .node = "n"};
    assert_int_equal(store_clocks_encode(&lname, 1, &b), KMS_ERR_LIMIT);
    longname[STORE_CLOCK_NAME_MAX] = 0; /* exactly the limit: fine */
    assert_int_equal(store_clocks_encode(&lname, 1, &b), 0);
    assert_int_equal(b.len > STORE_CLOCK_NAME_MAX, 1);
    /* the output buffer's cap: refused, buffer as it was */
    kms_buf_t small;
    kms_buf_init(&small, 8);
    store_clock_t one = {.name = "abcdef", .hlc = 1, .node = "n"};
    assert_int_equal(store_clocks_encode(&one, 1, &small), KMS_ERR_LIMIT);
    assert_int_equal(small.len, 0);
    kms_buf_dispose(&small);
    kms_buf_dispose(&b);
}

/* Each input is wrong in exactly one way. */
static void test_decode_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *why;
        uint8_t b[24];
        size_t n;
    } bad[] = {
        {"empty", {0}, 0},
        {"format", {2, 0, 0}, 3},
        {"truncated node", {1, 1, 2, 'a'}, 4},
        {"no entries count", {1, 0}, 2},
        {"trailing byte", {1, 0, 0, 0}, 4},
        {"nodes but no entries", {1, 1, 1, 'a', 0}, 5},
        {"entries but no nodes", {1, 0, 1, 0, 1, 0}, 6},
        {"node id empty", {1, 1, 0, 1, 0, 1, 0}, 7},
        {"node with NUL", {1, 1, 1, 0, 1, 0, 1, 0}, 8},
        {"node repeated", {1, 2, 1, 'a', 1, 'a', 2, 0, 1, 0, 1, 'b', 1, 1}, 14},
        {"node unused", {1, 2, 1, 'a', 1, 'b', 1, 0, 1, 0}, 10},
        {"node index out of range", {1, 1, 1, 'a', 1, 0, 1, 1}, 8},
        {"second node used first", {1, 2, 1, 'a', 1, 'b', 2, 0, 1, 1, 1, 'x', 1, 0}, 14},
        {"names unsorted", {1, 1, 1, 'a', 2, 1, 'b', 1, 0, 1, 'a', 1, 0}, 13},
        {"name repeated", {1, 1, 1, 'a', 2, 1, 'b', 1, 0, 1, 'b', 1, 0}, 13},
        {"name with NUL", {1, 1, 1, 'a', 1, 2, 'b', 0, 1, 0}, 10},
        {"name truncated", {1, 1, 1, 'a', 1, 5, 'b', 1, 0}, 9},
        {"varint not minimal", {1, 1, 1, 'a', 1, 0, 0x81, 0x00, 0}, 9},
        {"hlc beyond int64", {1, 1, 1, 'a', 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, 17},
        {"varint too long", {1, 1, 1, 'a', 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0}, 18},
        {"count beyond input", {1, 1, 1, 'a', 0x80, 0x20, 0, 1, 0}, 9},
        {"too many nodes", {1, 0x81, 0x02}, 3},
        {"name too long", {1, 1, 1, 'a', 1, 0x81, 0x08, 'x', 'x'}, 9},
    };
    kms_arena_t *a = kms_arena_new(0);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(bad); i++) {
        store_clock_t *c = (store_clock_t *)1;
        size_t n = 99;
        int rc = decode(bad[i].n ? bad[i].b : NULL, bad[i].n, &c, &n, a);
        if (rc != KMS_ERR_PROTO)
            fail_msg("%s: %d", bad[i].why, rc);
        assert_null(c);
        assert_int_equal(n, 0);
    }
    /* the largest hlc is fine */
    static const uint8_t ok[] = {1, 1, 1, 'a', 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0};
    store_clock_t *c;
    size_t n;
    assert_int_equal(decode(ok, sizeof(ok), &c, &n, a), 0);
    assert_int_equal(c[0].hlc, INT64_MAX);
    assert_int_equal(store_clocks_decode(ok, sizeof(ok), NULL, &c, &n), KMS_ERR_INVAL);
    kms_arena_free(a);
}

static void test_cmp(void **state)
{
    (void)state;
    assert_true(store_clock_cmp(1, "b", 2, "a") < 0);
    assert_true(store_clock_cmp(2, "a", 1, "b") > 0);
    assert_true(store_clock_cmp(2, "a", 2, "b") < 0);
    assert_true(store_clock_cmp(2, "b", 2, "a") > 0);
    assert_int_equal(store_clock_cmp(2, "a", 2, "a"), 0);
    assert_int_equal(store_clock_cmp(0, NULL, 0, ""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_roundtrip_large),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_cmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
