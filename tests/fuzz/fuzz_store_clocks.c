/*
 * tests/fuzz/fuzz_store_clocks.c: libFuzzer target for the stored clock
 * list of an object (store/clocks.c).
 *
 * The input is decoded as a `clocks` column. If accepted, the list must be
 * sorted by name with bounded names and node ids, and encoding it must give
 * back the input byte for byte (the decoder accepts only the canonical
 * form), which must decode again to an equal list. A rejection must be
 * KMS_ERR_PROTO (or KMS_ERR_NOMEM, which the arena's cap makes possible).
 * Any disagreement aborts. Links store/clocks.c and common/ only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_store_clocks: check failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kms_arena_t *a = kms_arena_new(4 << 20);
    kms_buf_t enc;
    store_clock_t *c = NULL, *again = NULL;
    size_t n = 0, n2 = 0;
    kms_buf_init(&enc, 1 << 24);
    CHECK(a);
    int rc = store_clocks_decode(data, size, a, &c, &n);
    if (rc != 0) {
        CHECK(rc == KMS_ERR_PROTO || rc == KMS_ERR_NOMEM);
        CHECK(c == NULL && n == 0);
        goto out;
    }
    CHECK(n <= STORE_CLOCKS_MAX);
    for (size_t i = 0; i < n; i++) {
        CHECK(c[i].name && c[i].node && c[i].hlc >= 0);
        CHECK(strlen(c[i].name) <= STORE_CLOCK_NAME_MAX);
        CHECK(c[i].node[0] && strlen(c[i].node) < 64);
        CHECK(i == 0 || strcmp(c[i - 1].name, c[i].name) < 0);
    }
    CHECK(store_clocks_encode(c, n, &enc) == 0);
    CHECK(enc.len == size && memcmp(enc.data, data, size) == 0);
    CHECK(store_clocks_decode(enc.data, enc.len, a, &again, &n2) == 0 && n2 == n);
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(c[i].name, again[i].name) == 0 && strcmp(c[i].node, again[i].node) == 0 &&
              c[i].hlc == again[i].hlc);
out:
    kms_buf_dispose(&enc);
    kms_arena_free(a);
    return 0;
}
