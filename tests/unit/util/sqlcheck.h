/* tests/unit/util/sqlcheck.h: checks on a closed store's SQLite file. */
#ifndef KMS_TEST_SQLCHECK_H
#define KMS_TEST_SQLCHECK_H

#include <stdint.h>

/* "ok" when PRAGMA integrity_check passes, else its first line (static
 * buffer); NULL when the file cannot be opened. */
const char *test_sql_integrity(const char *path);
/* The first column of the first row of `sql` as an integer (-1 on error). */
int64_t test_sql_int(const char *path, const char *sql);

#endif
