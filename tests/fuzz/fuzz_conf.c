/*
 * tests/fuzz/fuzz_conf.c: libFuzzer target for the YAML configuration
 * loader. Loads the input; when accepted, dumps the effective config,
 * loads the dump again and checks the second dump is identical (the dump
 * is the canonical form). Relative paths resolve against /nonexistent so
 * nothing on disk is read or written.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static char *dump(const conf_t *c, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        abort();
    if (conf_dump(c, f) != 0)
        abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    conf_t *c = NULL, *c2 = NULL;
    kms_error_t err = {0};
    if (size > 64 * 1024)
        return 0;
    if (conf_load_buffer("fuzz.yaml", "/nonexistent", data, size, &c, &err) != 0) {
        if (c)
            abort(); /* a failed load must not hand out a config */
        return 0;
    }
    size_t n1 = 0, n2 = 0;
    char *d1 = dump(c, &n1);
    if (conf_load_buffer("dump.yaml", "/nonexistent", d1, n1, &c2, &err) != 0) {
        fprintf(stderr, "dump does not reload: %s\n%s\n", err.msg, d1);
        abort();
    }
    char *d2 = dump(c2, &n2);
    if (n1 != n2 || memcmp(d1, d2, n1) != 0) {
        fprintf(stderr, "dump not stable:\n%s\n---\n%s\n", d1, d2);
        abort();
    }
    free(d1);
    free(d2);
    conf_free(c);
    conf_free(c2);
    return 0;
}
