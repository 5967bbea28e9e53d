/*
 * tests/fuzz/fuzz_repl_frame.c: libFuzzer target for the replication frame
 * codec (replication/frame.c, entity.c).
 *
 * The input is one frame (header + body). Decode with a 1 MiB max_frame;
 * a rejection must be one of the documented codes with an offset inside
 * the input. An accepted frame must re-encode to the very same bytes (the
 * encoding is canonical), decode again, and re-encode once more to the
 * same bytes. The header check alone must agree with the decoder on the
 * frame's size. Everything is freed (secrets wiped) each time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl.h"

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_repl_frame: check failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define MAX_FRAME (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    repl_frame_limits_t lim = {.max_frame = MAX_FRAME, .max_depth = 0};
    repl_frame_t *f = NULL, *g = NULL;
    kms_error_t err;
    kms_buf_t enc, enc2;
    kms_buf_init(&enc, 2 * MAX_FRAME);
    kms_buf_init(&enc2, 2 * MAX_FRAME);
    kms_error_clear(&err);

    int type = 0;
    size_t total = 0;
    int hrc = repl_frame_header(data, size, MAX_FRAME, &type, &total);
    int rc = repl_frame_decode(data, size, &lim, &f, &err);
    if (rc) {
        CHECK(rc == KMS_ERR_PROTO || rc == KMS_ERR_LIMIT || rc == KMS_ERR_NOTSUP ||
              rc == KMS_ERR_NOMEM);
        CHECK(f == NULL);
        CHECK(err.code == rc && err.msg[0]);
        CHECK(err.offset == KMS_ERROR_NO_OFFSET || err.offset <= size);
        goto out;
    }
    CHECK(hrc == 0 && total == size && type == (int)f->type);
    CHECK(repl_frame_encode(f, MAX_FRAME, &enc, &err) == 0);
    CHECK(enc.len == size && memcmp(enc.data, data, size) == 0);
    CHECK(repl_frame_decode(enc.data, enc.len, &lim, &g, &err) == 0);
    CHECK(g->type == f->type);
    CHECK(repl_frame_encode(g, MAX_FRAME, &enc2, &err) == 0);
    CHECK(enc2.len == size && memcmp(enc2.data, data, size) == 0);
out:
    repl_frame_free(f);
    repl_frame_free(g);
    kms_buf_dispose_wipe(&enc);
    kms_buf_dispose_wipe(&enc2);
    return 0;
}
