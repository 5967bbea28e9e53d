/*
 * tests/fuzz/fuzz_ttlv.c: libFuzzer target for the TTLV codec.
 *
 * The input is tried two ways:
 *  1. as wire bytes: decode with small limits; if accepted, the encoding
 *     must reproduce the input byte for byte (the strict decoder accepts
 *     only canonical encodings), decode again to an equal tree, frame_need
 *     must agree with the size, and print -> parse_text must give back an
 *     equal tree that encodes to the same bytes (also with redaction on,
 *     which must not crash). Rejections must name an offset inside the input.
 *  2. as printed text: parse_text; if accepted, print it, parse that again
 *     to an equal tree, and whatever encodes must decode (when the decoder's
 *     rules allow) to an equal tree.
 * Any disagreement aborts. Everything is freed with the arena.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "ttlv/ttlv.h"


static const ttlv_limits_t lim = {.max_depth = 8, .max_items = 512};

static void as_wire(const uint8_t *data, size_t size)
{
    kms_arena_t *a = kms_arena_new(1 << 20);
    kms_buf_t enc, txt;
    ttlv_item_t *root = NULL, *again = NULL, *back = NULL;
    kms_error_t err;
    kms_buf_init(&enc, 1 << 20);
    kms_buf_init(&txt, 8 << 20);
    CHECK(a);
    int rc = ttlv_decode(data, size, &lim, a, &root, &err);
    if (rc) {
        CHECK(rc == KMS_ERR_PROTO || rc == KMS_ERR_LIMIT || rc == KMS_ERR_NOMEM);
        CHECK(root == NULL);
        CHECK(err.offset <= size);
        CHECK(err.msg[0] != 0);
        goto out;
    }
    CHECK(ttlv_encoded_size(root) == size);
    CHECK(ttlv_encode(root, &enc) == 0);
    CHECK(enc.len == size && memcmp(enc.data, data, size) == 0);
    if (data[0] == 0x42 && data[3] == TTLV_STRUCTURE) {
        size_t total = 0;
        CHECK(ttlv_frame_need(data, size, size, &total) == 0 && total == size);
    }
    CHECK(ttlv_decode(enc.data, enc.len, &lim, a, &again, &err) == 0);
    CHECK(ttlv_equal(root, again));

    rc = ttlv_print(root, false, &txt);
    if (rc == 0) {
        rc = ttlv_parse_text((const char *)txt.data, txt.len, a, &back, &err);
        if (rc != KMS_ERR_NOMEM) {
            if (rc)
                fprintf(stderr, "fuzz_ttlv: parse_text(print) failed at %zu: %s\n", err.offset, err.msg);
            CHECK(rc == 0);
            CHECK(ttlv_equal(root, back));
            kms_buf_reset(&enc);
            CHECK(ttlv_encode(back, &enc) == 0);
            CHECK(enc.len == size && memcmp(enc.data, data, size) == 0);
        }
    } else {
        CHECK(rc == KMS_ERR_LIMIT);
    }
    kms_buf_reset(&txt);
    rc = ttlv_print(root, true, &txt);
    CHECK(rc == 0 || rc == KMS_ERR_LIMIT);
out:
    kms_buf_dispose(&enc);
    kms_buf_dispose(&txt);
    kms_arena_free(a);
}

static void as_text(const uint8_t *data, size_t size)
{
    kms_arena_t *a = kms_arena_new(1 << 20);
    kms_buf_t enc, txt;
    ttlv_item_t *root = NULL, *back = NULL, *dec = NULL;
    kms_error_t err;
    kms_buf_init(&enc, 1 << 20);
    kms_buf_init(&txt, 8 << 20);
    CHECK(a);
    int rc = ttlv_parse_text((const char *)data, size, a, &root, &err);
    if (rc) {
        CHECK(rc == KMS_ERR_PROTO || rc == KMS_ERR_NOMEM);
        CHECK(root == NULL);
        CHECK(err.offset <= size);
        goto out;
    }
    if (ttlv_print(root, false, &txt) == 0) {
        rc = ttlv_parse_text((const char *)txt.data, txt.len, a, &back, &err);
        CHECK(rc == 0 || rc == KMS_ERR_NOMEM);
        if (rc == 0)
            CHECK(ttlv_equal(root, back));
    }
    if (ttlv_encode(root, &enc) == 0) {
        CHECK(enc.len == ttlv_encoded_size(root));
        rc = ttlv_decode(enc.data, enc.len, NULL, a, &dec, &err);
        /* the text may use tags outside 0x42/0x54 or nest deeper than the
         * decoder allows; anything the decoder does accept must match */
        if (rc == 0)
            CHECK(ttlv_equal(root, dec));
    }
out:
    kms_buf_dispose(&enc);
    kms_buf_dispose(&txt);
    kms_arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_wire(data, size);
    as_text(data, size);
    return 0;
}
