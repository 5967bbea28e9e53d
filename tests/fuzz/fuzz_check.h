/* tests/fuzz/fuzz_check.h: CHECK(cond) for the ttlv fuzz targets: a
 * failed invariant prints where and aborts, so libFuzzer keeps the input. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);       \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif /* FUZZ_CHECK_H */
