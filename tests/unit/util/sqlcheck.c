/* tests/unit/util/sqlcheck.c: see sqlcheck.h. */
#include "tests/unit/util/sqlcheck.h"

#include <stdio.h>
#include <sqlite3.h>

const char *test_sql_integrity(const char *path)
{
    static char out[256];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *r = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
        r = out;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

int64_t test_sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}
