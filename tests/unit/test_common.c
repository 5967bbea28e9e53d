/* tests/unit/test_common.c: the common/ foundation: capped buffers, bounded
 * readers, the arena (limit, reset), secrets, hex, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/kms.h"

static void test_buf_cap(void **state)
{
    (void)state;
    kms_buf_t b;
    kms_buf_init(&b, 10);
    assert_int_equal(kms_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(kms_buf_append_byte(&b, 'x'), KMS_ERR_LIMIT);
    assert_int_equal(b.len, 10); /* unchanged on failure */
    kms_buf_consume(&b, 4);
    assert_memory_equal(b.data, "456789", 6);
    assert_int_equal(kms_buf_append_u32be(&b, 0x01020304), 0);
    assert_memory_equal(b.data + 6, "\x01\x02\x03\x04", 4);
    assert_int_equal(kms_buf_printf(&b, "y"), KMS_ERR_LIMIT);
    kms_buf_dispose_wipe(&b);
    assert_null(b.data);
}

static void test_buf_overflow_arith(void **state)
{
    (void)state;
    kms_buf_t b;
    kms_buf_init(&b, 0); /* "no cap" still has a sane maximum */
    assert_int_equal(kms_buf_append(&b, "ab", 2), 0);
    assert_int_equal(kms_buf_reserve(&b, SIZE_MAX), KMS_ERR_LIMIT);
    assert_int_equal(kms_buf_reserve(&b, SIZE_MAX - 1), KMS_ERR_LIMIT);
    size_t n;
    uint8_t *p = kms_buf_take(&b, &n);
    assert_int_equal(n, 2);
    assert_null(b.data);
    free(p);
}

static void test_reader_bounds(void **state)
{
    (void)state;
    const uint8_t data[] = {0x42, 0x00, 0x01, 0x02, 0, 0, 0, 3, 9, 9, 9};
    kms_reader_t r, sub;
    uint32_t v;
    uint64_t w;
    kms_reader_init(&r, data, sizeof(data));
    assert_int_equal(kms_reader_u32be(&r, &v), 0);
    assert_int_equal(v, 0x42000102);
    assert_int_equal(kms_reader_u32be(&r, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(kms_reader_sub(&r, 2, &sub), 0);
    assert_int_equal(sub.base, 8);
    assert_int_equal(kms_reader_offset(&sub), 8);
    assert_int_equal(kms_reader_u32be(&sub, &v), KMS_ERR_PROTO); /* clipped to 2 bytes */
    assert_int_equal(kms_reader_left(&sub), 2);                  /* nothing consumed */
    assert_int_equal(kms_reader_u64be(&r, &w), KMS_ERR_PROTO);
    assert_int_equal(kms_reader_sub(&r, 2, &sub), KMS_ERR_PROTO);
    assert_int_equal(kms_reader_skip(&r, 1), 0);
    assert_int_equal(kms_reader_left(&r), 0);
}

static void test_arena_limit_and_reset(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(64 * 1024);
    assert_non_null(a);
    char *s = kms_arena_strdup(a, "secret");
    assert_string_equal(s, "secret");
    void *big = kms_arena_alloc(a, 20000); /* larger than one block */
    assert_non_null(big);
    assert_null(kms_arena_alloc(a, 60000)); /* past the limit */
    assert_true(kms_arena_used(a) > 20000);
    kms_arena_reset(a);
    assert_int_equal(kms_arena_used(a), 0);
    uint8_t *z = kms_arena_alloc(a, 32);
    for (int i = 0; i < 32; i++)
        assert_int_equal(z[i], 0); /* zeroed after reuse */
    assert_null(kms_arena_alloc(a, SIZE_MAX));
    kms_arena_free(a);
    kms_arena_free(NULL);
}

/* A loop that rewinds to its mark after each step stays within a limit
 * that the steps together would pass; what came before the mark stays,
 * and the released bytes are wiped. */
static void test_arena_mark_rewind(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(64 * 1024);
    assert_non_null(a);
    char *keep = kms_arena_strdup(a, "kept before the mark");
    kms_arena_mark_t m = kms_arena_mark(a);
    size_t used = kms_arena_used(a);
    for (int i = 0; i < 100; i++) {
        /* 100 x 24 KiB: 2.4 MiB against a 64 KiB limit */
        uint8_t *p = kms_arena_alloc(a, 4 * 1024);  /* in the marked block */
        uint8_t *q = kms_arena_alloc(a, 20 * 1024); /* a block of its own */
        assert_non_null(p);
        assert_non_null(q);
        memset(p, 0xAA, 4 * 1024);
        memset(q, 0xBB, 20 * 1024);
        kms_arena_rewind(a, m);
        assert_int_equal(kms_arena_used(a), used);
    }
    assert_string_equal(keep, "kept before the mark");
    /* The bytes after the mark in the marked block were wiped: a small
     * allocation lands there again and reads zero even before its memset
     * (kms_arena_alloc zeroes too, so check the tail past it instead). */
    uint8_t *z = kms_arena_alloc(a, 16);
    assert_non_null(z);
    for (int i = 16; i < 64; i++)
        assert_int_equal(z[i], 0);
    /* A mark on an empty arena releases every block. */
    kms_arena_t *e = kms_arena_new(0);
    kms_arena_mark_t m0 = kms_arena_mark(e);
    assert_non_null(kms_arena_alloc(e, 100000));
    kms_arena_rewind(e, m0);
    assert_int_equal(kms_arena_used(e), 0);
    assert_non_null(kms_arena_alloc(e, 10));
    kms_arena_free(e);
    kms_arena_free(a);
}

static void test_secret_and_ct(void **state)
{
    (void)state;
    kms_secret_t *s = kms_secret_dup("0123456789abcdef", 16);
    assert_non_null(s);
    assert_int_equal(s->len, 16);
    assert_int_equal(kms_ct_memcmp(s->data, "0123456789abcdef", 16), 0);
    assert_int_not_equal(kms_ct_memcmp(s->data, "0123456789abcdeF", 16), 0);
    kms_secret_free(s);
    kms_secret_free(NULL);
}

/* The locked pool: blocks are reused wiped, sizes around class edges and
 * above the largest class work, many threads allocate concurrently. */
static void *pool_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i % 700) * 7 + 1;
        kms_secret_t *s = kms_secret_new(n);
        if (!s)
            return (void *)1;
        for (size_t j = 0; j < n; j++)
            if (s->data[j] != 0)
                return (void *)2; /* not zeroed: a previous owner's bytes */
        memset(s->data, 0xA5, n);
        kms_secret_free(s);
    }
    return NULL;
}

static void test_secret_pool(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 31, 32, 33, 64, 4095, 4096, 4097, 100000};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(sizes); i++) {
        kms_secret_t *s = kms_secret_new(sizes[i]);
        assert_non_null(s);
        assert_int_equal(s->len, sizes[i]);
        assert_int_equal(s->pool_ >= 0, sizes[i] <= 4096);
        memset(s->data, 0x5A, sizes[i]); /* exactly len bytes: ASan poisons the rest */
        kms_secret_free(s);
    }
    /* A freed block comes back wiped to the next owner of its class. */
    kms_secret_t *a = kms_secret_dup("top secret key!!", 16);
    uint8_t *where = a->data;
    kms_secret_free(a);
    kms_secret_t *b = kms_secret_new(20);
    assert_ptr_equal(b->data, where); /* LIFO free list */
    for (int i = 0; i < 20; i++)
        assert_int_equal(b->data[i], 0);
    kms_secret_free(b);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, pool_worker, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *rv = (void *)9;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t *out = NULL;
    size_t n = 0;
    char txt[9];
    assert_int_equal(kms_hex_decode("42 00 7A\n0f", 11, &out, &n), 0);
    assert_int_equal(n, 4);
    kms_hex_encode(out, n, txt);
    assert_string_equal(txt, "42007a0f");
    free(out);
    assert_int_equal(kms_hex_decode("abc", 3, &out, &n), KMS_ERR_PROTO);
    assert_int_equal(kms_hex_decode("zz", 2, &out, &n), KMS_ERR_PROTO);
}

static void test_errors_and_levels(void **state)
{
    (void)state;
    assert_string_equal(kms_strerror(0), "ok");
    assert_string_equal(kms_strerror(KMS_ERR_LIMIT), "limit exceeded");
    assert_string_equal(kms_strerror(12345), "unknown error");
    assert_int_equal(kms_log_level_parse("debug"), KMS_LOG_DEBUG);
    assert_int_equal(kms_log_level_parse("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),           cmocka_unit_test(test_buf_overflow_arith),
        cmocka_unit_test(test_reader_bounds),     cmocka_unit_test(test_arena_limit_and_reset),
        cmocka_unit_test(test_arena_mark_rewind),
        cmocka_unit_test(test_secret_and_ct),     cmocka_unit_test(test_secret_pool),     cmocka_unit_test(test_hex),
        cmocka_unit_test(test_errors_and_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
