/* tests/unit/util/tmpdir.c: scratch directories for unit tests. */
#include "tests/unit/util/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kms_test_tmpdir(char *dir, size_t n, const char *tag, const char *file, char *path, size_t pn)
{
    int w = snprintf(dir, n, "/tmp/kmsd-%s-XXXXXX", tag);
    if (w < 0 || (size_t)w >= n || !mkdtemp(dir))
        return -1;
    if (file) {
        w = snprintf(path, pn, "%s/%s", dir, file);
        if (w < 0 || (size_t)w >= pn)
            return -1;
    }
    return 0;
}

int kms_test_rmdir(const char *dir)
{
    char cmd[512];
    if (!dir[0] || strchr(dir, '\'') || snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) >= (int)sizeof(cmd))
        return -1;
    return system(cmd) == 0 ? 0 : -1;
}
