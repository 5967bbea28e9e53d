/*
 * store/sql.c: small SQLite helpers shared by the store's files.
 *
 * Opening a connection with the pragmas every connection needs, mapping
 * SQLite result codes to KMS_ERR_* with one log line, and the prepared
 * statement cache. It deliberately holds no SQL of the schema itself.
 */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

int store_sqlerr(sqlite3 *db, int rc, const char *what)
{
    int prim = rc & 0xff;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    /* A full disk is its own answer ("no space left on device"), whether
     * SQLite saw it as SQLITE_FULL (a write) or as an I/O error whose
     * errno says so (a sync, a file extension). */
    int sys = db ? sqlite3_system_errno(db) : 0;
    if (prim == SQLITE_FULL || (prim == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT))) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "%s: no space left on device (%s)", what, msg);
        return KMS_ERR_NOSPC;
    }
    switch (prim) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        kms_log(KMS_LOG_ERROR, STORE_LOG, "%s: out of memory", what);
        return KMS_ERR_NOMEM;
    case SQLITE_INTERRUPT:
        /* A query stopped on purpose (a cancelled or timed-out Locate). */
        kms_log(KMS_LOG_DEBUG, STORE_LOG, "%s: interrupted", what);
        return KMS_ERR_TIMEOUT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        kms_log(KMS_LOG_WARN, STORE_LOG, "%s: database busy (%s)", what, msg);
        return KMS_ERR_BUSY;
    case SQLITE_CONSTRAINT:
        /* Callers that expect a constraint map it themselves; messages name
         * the column, never the value. */
        kms_log(KMS_LOG_DEBUG, STORE_LOG, "%s: %s", what, msg);
        return KMS_ERR_EXISTS;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        kms_log(KMS_LOG_ERROR, STORE_LOG,
                "%s: the database file is corrupt or not a kmsd database (%s); "
                "restore it from a backup", what, msg);
        return KMS_ERR_IO;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_ERROR:
        kms_log(KMS_LOG_ERROR, STORE_LOG, "%s: %s (code %d)", what, msg, rc);
        return KMS_ERR_INTERNAL;
    default: /* IOERR, CANTOPEN, READONLY, PERM, PROTOCOL, ... */
        kms_log(KMS_LOG_ERROR, STORE_LOG, "%s: I/O error: %s (code %d%s%s)", what, msg, rc,
                sys ? ", " : "", sys ? strerror(sys) : "");
        return KMS_ERR_IO;
    }
}

int store_exec(sqlite3 *db, const char *sql, const char *what)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_sqlerr(db, rc, what);
}

/* Process-wide SQLite settings, before its first use. Memory statistics
 * take a global mutex on every allocation; nothing here reads them. If
 * SQLite was already initialised (another user in the process), the calls
 * fail harmlessly and the defaults stay. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

static int db_open(const char *path, bool read_only, bool create, bool writer, sqlite3 **out)
{
    pthread_once(&g_once, global_init);
    sqlite3 *db = NULL;
    const char *vfs = NULL;
    if (writer && !(vfs = store_vfs_writer()))
        kms_log(KMS_LOG_WARN, STORE_LOG, "writer VFS unavailable; WAL frames written one by one");
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
    int err;
    *out = NULL;
    if (read_only)
        flags |= SQLITE_OPEN_READONLY;
    else
        flags |= SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, vfs);
    if (rc != SQLITE_OK) {
        if (!db) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "open: out of memory");
            return KMS_ERR_NOMEM;
        }
        if ((rc & 0xff) == SQLITE_CANTOPEN)
            kms_log(KMS_LOG_ERROR, STORE_LOG, "cannot open database %s: %s", path,
                    sqlite3_errmsg(db));
        err = (rc & 0xff) == SQLITE_CANTOPEN ? KMS_ERR_IO : store_sqlerr(db, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_MS);
    /* foreign_keys first: it is a no-op inside a transaction. Reading the
     * schema here is the first real access, so a file that is not a
     * database fails here with a clear message. secure_delete: a sealed
     * blob that a Destroy, a delete or a re-seal replaced is zeroed in the
     * file, not left in free space (Debian's SQLite has it on by default;
     * other builds do not). cache_size: every worker and loop thread has a
     * reader connection (up to `threads` + loops of them), each with a
     * private page cache; 1 MiB each keeps that bounded, and a page
     * missing there is a pread from the kernel's page cache (hot objects
     * come from store/cache.c anyway). The writer raises its own. */
    err = store_exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;"
                         " PRAGMA trusted_schema=OFF; PRAGMA cache_size=-1024;"
                         " PRAGMA secure_delete=ON;"
                         " SELECT count(*) FROM sqlite_schema;",
                     "open");
    if (err)
        goto out;
    if (!read_only) {
        /* WAL: readers never wait for the writer; one fsync per commit. */
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        bool wal = rc == SQLITE_ROW &&
                   strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW) {
            err = store_sqlerr(db, rc, "journal_mode=WAL");
            goto out;
        }
        if (!wal) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "%s: cannot switch to WAL mode", path);
            err = KMS_ERR_IO;
            goto out;
        }
    }
    *out = db;
    db = NULL;
    err = 0;
out:
    if (db)
        sqlite3_close_v2(db);
    return err;
}

int store_db_open(const char *path, bool read_only, bool create, sqlite3 **out)
{
    return db_open(path, read_only, create, false, out);
}

int store_db_open_writer(const char *path, sqlite3 **out)
{
    return db_open(path, false, true, true, out);
}

int store_stmt(sqlite3 *db, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out)
{
    if (!*slot) {
        int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK) {
            *slot = NULL;
            return store_sqlerr(db, rc, "prepare");
        }
    } else {
        sqlite3_reset(*slot);
        sqlite3_clear_bindings(*slot);
    }
    *out = *slot;
    return 0;
}

int store_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : KMS_ERR_INTERNAL;
}

int store_col_text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!t) {
        buf[0] = '\0';
        return 0;
    }
    if (n >= cap) {
        buf[0] = '\0';
        return KMS_ERR_LIMIT;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    return 0;
}
