/* tests/unit/util/tmpdir.h: a scratch directory per test (real files on
 * disk: the store tests need a real SQLite file, not a mock). */
#ifndef KMS_TEST_TMPDIR_H
#define KMS_TEST_TMPDIR_H

#include <stddef.h>

/* Create /tmp/kmsd-<tag>-XXXXXX in dir (size n) and put "<dir>/<file>" in
 * path (size pn) when file is not NULL. 0 or -1. */
int kms_test_tmpdir(char *dir, size_t n, const char *tag, const char *file, char *path, size_t pn);
/* Remove the directory and everything in it. 0 or -1. */
int kms_test_rmdir(const char *dir);

#endif
