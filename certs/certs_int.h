/*
 * certs/certs_int.h: private to certs/.
 */
#ifndef KMS_CERTS_INT_H
#define KMS_CERTS_INT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Create `path` with exactly `data` and permission `mode` (before umask):
 * a temporary sibling is opened O_CREAT|O_EXCL|O_NOFOLLOW with `mode`,
 * written and fsync'ed, then link()ed (no overwrite: KMS_ERR_EXISTS if
 * `path` exists) or rename()d into place; the directory is fsync'ed.
 */
int certs_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode,
                            bool overwrite);

#endif
