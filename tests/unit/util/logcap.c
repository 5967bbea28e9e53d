/* tests/unit/util/logcap.c: stderr captured into a temp file (logcap.h). */
#include "tests/unit/util/logcap.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int kms_test_logcap_begin(kms_test_logcap_t *c)
{
    char path[] = "/tmp/kms-test-logcap-XXXXXX";
    c->fd = mkstemp(path);
    if (c->fd < 0)
        return -1;
    unlink(path);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    if (c->saved < 0 || dup2(c->fd, STDERR_FILENO) < 0) {
        if (c->saved >= 0)
            close(c->saved);
        close(c->fd);
        return -1;
    }
    return 0;
}

char *kms_test_logcap_end(kms_test_logcap_t *c)
{
    char *out = NULL;
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    off_t len = lseek(c->fd, 0, SEEK_END);
    if (len >= 0 && (out = calloc(1, (size_t)len + 1)) != NULL &&
        pread(c->fd, out, (size_t)len, 0) != len) {
        free(out);
        out = NULL;
    }
    close(c->fd);
    return out;
}
