/*
 * store/backup.c: an online, consistent copy of the database.
 *
 * Uses the SQLite backup API from a private read connection that holds one
 * read transaction for the whole copy: in WAL mode that pins a snapshot,
 * so the copy is consistent as of its start while the writer keeps
 * committing (writes are not blocked; the WAL just grows until the copy
 * ends). Pages are copied in steps with progress reports. The copy is
 * written to "<dest>.partial", checked, synced and renamed over <dest>, so
 * a crash never leaves a half-written file under the final name. It does
 * not encrypt: objects are already sealed by hsm/, but the file still
 * holds wrapped keys and should be protected like the database.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKUP_PAGES_PER_STEP 64

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return KMS_ERR_IO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : KMS_ERR_IO;
}

static int check_copy(sqlite3 *dst)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &st, NULL);
    int err = 0;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        err = store_sqlerr(dst, rc, "backup check");
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "backup copy failed its integrity check");
        err = KMS_ERR_IO;
    }
    sqlite3_finalize(st);
    return err;
}

int store_backup(store_t *s, const char *dest_path, store_progress_cb progress, void *arg)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    char *tmp = NULL, *dircopy = NULL;
    int err;
    if (!s || !dest_path || !dest_path[0])
        return KMS_ERR_INVAL;
    if (strcmp(dest_path, s->path) == 0)
        return KMS_ERR_INVAL;
    if (asprintf(&tmp, "%s.partial", dest_path) < 0) {
        tmp = NULL;
        return KMS_ERR_NOMEM;
    }
    unlink(tmp);
    err = store_db_open(s->path, true, false, &src);
    if (err)
        goto out;
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "backup: cannot create %s", tmp);
        err = KMS_ERR_IO;
        goto out;
    }
    if ((err = store_exec(dst, "PRAGMA synchronous=FULL", "backup")) != 0)
        goto out;
    /* Pin one snapshot for the whole copy. */
    if ((err = store_exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema;", "backup")) != 0)
        goto out;
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) {
        err = store_sqlerr(dst, sqlite3_errcode(dst), "backup init");
        goto out;
    }
    for (;;) {
        rc = sqlite3_backup_step(bk, BACKUP_PAGES_PER_STEP);
        int total = sqlite3_backup_pagecount(bk);
        if (progress)
            progress(total - sqlite3_backup_remaining(bk), total, arg);
        if (rc == SQLITE_DONE)
            break;
        if (rc == SQLITE_OK)
            continue;
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        err = store_sqlerr(dst, rc, "backup step");
        goto out;
    }
    rc = sqlite3_backup_finish(bk);
    bk = NULL;
    if (rc != SQLITE_OK) {
        err = store_sqlerr(dst, rc, "backup finish");
        goto out;
    }
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    if ((err = check_copy(dst)) != 0)
        goto out;
    rc = sqlite3_close(dst);
    dst = NULL;
    if (rc != SQLITE_OK) {
        err = KMS_ERR_IO;
        goto out;
    }
    if ((err = fsync_path(tmp, false)) != 0)
        goto out;
    if (rename(tmp, dest_path) != 0) {
        kms_log(KMS_LOG_ERROR, STORE_LOG, "backup: rename to %s: %s", dest_path,
                strerror(errno));
        err = KMS_ERR_IO;
        goto out;
    }
    dircopy = strdup(dest_path);
    if (!dircopy || (err = fsync_path(dirname(dircopy), true)) != 0) {
        err = dircopy ? err : KMS_ERR_NOMEM;
        goto out;
    }
    kms_log(KMS_LOG_INFO, STORE_LOG, "backup written to %s", dest_path);
out:
    if (bk)
        sqlite3_backup_finish(bk);
    if (dst)
        sqlite3_close_v2(dst);
    if (src)
        sqlite3_close_v2(src);
    if (err && tmp) {
        unlink(tmp);
        kms_log(KMS_LOG_ERROR, STORE_LOG, "backup to %s failed: %s", dest_path,
                kms_strerror(err));
    }
    free(dircopy);
    free(tmp);
    return err;
}
