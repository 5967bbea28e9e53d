/*
 * bench/sqlfloor.c: the floor that group commit must beat.
 *
 * One INSERT per transaction into a fresh SQLite file in WAL mode with
 * synchronous=FULL: every commit waits for its own fsync, which is what a
 * store that does not batch commits pays per durable Create. It measures
 * the disk, not kmsd; the row (64-byte blob + short text) is about the size
 * of a wrapped key record.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench/bench.h"

int bench_sqlite_floor(const char *path, int n, double *rate_out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint8_t blob[64];
    int rc = KMS_ERR_IO;

    unlink(path);
    memset(blob, 0xA5, sizeof(blob));
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE k(id INTEGER PRIMARY KEY, uid TEXT UNIQUE, blob BLOB);",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO k(uid, blob) VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "kmipbench: sqlite: %s\n", db ? sqlite3_errmsg(db) : "open failed");
        goto out;
    }
    uint64_t t0 = kms_mono_ns();
    for (int i = 0; i < n; i++) {
        char uid[48];
        snprintf(uid, sizeof(uid), "%08x-floor-%d", (unsigned)i * 2654435761u, i);
        sqlite3_bind_text(st, 1, uid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, blob, sizeof(blob), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) { /* autocommit: one commit per insert */
            fprintf(stderr, "kmipbench: sqlite insert: %s\n", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(st);
    }
    *rate_out = (double)n / ((double)(kms_mono_ns() - t0) / 1e9);
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
