/*
 * tests/fuzz/fuzz_ttlv_form.h: the body shared by fuzz_ttlv_json and
 * fuzz_ttlv_xml, which differ only in the encoding they feed first.
 *
 * The input is read as a message in `form` with small limits. Rejections
 * must carry PROTO / LIMIT / NOMEM, the same code in err, a message, and an
 * offset inside the input (or none). An accepted message must:
 *  - write back in the same form and read again to an equal tree, and that
 *    second writing must be the same text (the output is canonical);
 *  - encode as TTLV that the binary decoder accepts under the same limits
 *    (both read with the same rules) to an equal tree;
 *  - go through the other text form to an equal tree, except that XML may
 *    refuse, as documented, a Text String XML 1.0 cannot carry.
 * Any disagreement aborts. Everything is freed with the arena.
 */
#ifndef FUZZ_TTLV_FORM_H
#define FUZZ_TTLV_FORM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "ttlv/ttlv.h"


typedef int (*form_to_cb)(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err);
typedef int (*form_from_cb)(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                            ttlv_item_t **root_out, kms_error_t *err);

struct fuzz_form {
    form_to_cb to;
    form_from_cb from;
};

static const struct fuzz_form fuzz_json = {ttlv_to_json, ttlv_from_json};
static const struct fuzz_form fuzz_xml = {ttlv_to_xml, ttlv_from_xml};

static const ttlv_limits_t fuzz_lim = {.max_depth = 8, .max_items = 512, .max_size = 1 << 20};

/* Writes root in form f (flags alternate with the input's first byte), reads
 * it back: equal tree, or for XML the documented NOTSUP. */
static void through(const struct fuzz_form *f, const ttlv_item_t *root, unsigned flags, kms_arena_t *a,
                    kms_buf_t *txt, kms_buf_t *again)
{
    ttlv_item_t *back = NULL;
    kms_error_t err;
    kms_buf_reset(txt);
    int rc = f->to(root, flags, txt, &err);
    if (rc == KMS_ERR_NOTSUP && f == &fuzz_xml)
        return;
    CHECK(rc == 0);
    rc = f->from((const char *)txt->data, txt->len, NULL, a, &back, &err);
    if (rc == KMS_ERR_NOMEM)
        return; /* arena cap */
    if (rc)
        fprintf(stderr, "fuzz_ttlv_form: own output refused: %s\n%.*s\n", kms_error_msg(&err), (int)txt->len,
                (const char *)txt->data);
    CHECK(rc == 0);
    CHECK(ttlv_equal(root, back));
    kms_buf_reset(again);
    CHECK(f->to(back, flags, again, &err) == 0);
    CHECK(again->len == txt->len && memcmp(again->data, txt->data, txt->len) == 0);
}

static void fuzz_form_one(const struct fuzz_form *form, const struct fuzz_form *other, const uint8_t *data,
                          size_t size)
{
    kms_arena_t *a = kms_arena_new(4 << 20);
    kms_buf_t enc, txt, again;
    ttlv_item_t *root = NULL, *dec = NULL;
    kms_error_t err;
    unsigned flags = size && (data[0] & 1) ? TTLV_FORM_PRETTY : 0;
    kms_buf_init(&enc, 4 << 20);
    kms_buf_init(&txt, 16 << 20);
    kms_buf_init(&again, 16 << 20);
    CHECK(a);
    int rc = form->from((const char *)data, size, &fuzz_lim, a, &root, &err);
    if (rc) {
        CHECK(rc == KMS_ERR_PROTO || rc == KMS_ERR_LIMIT || rc == KMS_ERR_NOMEM);
        CHECK(err.code == rc);
        CHECK(root == NULL);
        CHECK(err.offset == KMS_ERROR_NO_OFFSET || err.offset <= size);
        CHECK(err.msg[0] != 0);
        goto out;
    }
    CHECK(root != NULL);
    through(form, root, flags, a, &txt, &again);
    through(other, root, flags, a, &txt, &again);
    CHECK(ttlv_encode(root, &enc) == 0);
    CHECK(enc.len == ttlv_encoded_size(root));
    rc = ttlv_decode(enc.data, enc.len, &fuzz_lim, a, &dec, &err);
    CHECK(rc == 0 || rc == KMS_ERR_NOMEM);
    if (rc == 0)
        CHECK(ttlv_equal(root, dec));
out:
    kms_buf_dispose_wipe(&enc);
    kms_buf_dispose_wipe(&txt);
    kms_buf_dispose_wipe(&again);
    kms_arena_free(a);
}

#endif /* FUZZ_TTLV_FORM_H */
