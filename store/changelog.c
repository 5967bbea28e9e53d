/*
 * store/changelog.c: the hybrid logical clock and change-log reads.
 *
 * Every put and delete appends (obj_id, version, hlc, node_id, deleted) to
 * change_log in the same transaction as the change itself (apply.c), so the
 * log never names a change that did not commit and never misses one that
 * did. Replication reads it here by sequence number. The clock packs
 * wall-clock milliseconds above a 16-bit logical counter and never goes
 * backwards, even when the wall clock does. Trimming the log is not done
 * here: it belongs to replication, which knows what peers have seen.
 */
#include "store/store_int.h"

#include <string.h>

int64_t store_hlc_next(int64_t last, int64_t wall_ms)
{
    if (wall_ms < 0)
        wall_ms = 0;
    if (wall_ms > (INT64_MAX >> 16))
        wall_ms = INT64_MAX >> 16;
    int64_t phys = wall_ms << 16;
    if (phys > last)
        return phys;
    /* Same millisecond or the clock went back: count logically. A counter
     * overflow carries into the millisecond field, which stays monotonic. */
    return last < INT64_MAX ? last + 1 : last;
}

int store_changes_since(store_reader_t *r, int64_t after, size_t limit, store_change_cb cb,
                        void *arg)
{
    sqlite3_stmt *st;
    if (!r || !cb)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_CHANGES, &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, limit && limit <= INT64_MAX ? (int64_t)limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_change_t c;
        memset(&c, 0, sizeof(c));
        c.seq = sqlite3_column_int64(st, 0);
        if (store_col_text(st, 1, c.obj_id, sizeof(c.obj_id)) != 0 ||
            store_col_text(st, 4, c.node_id, sizeof(c.node_id)) != 0) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "change log row %lld is malformed",
                    (long long)c.seq);
            err = KMS_ERR_IO;
            break;
        }
        c.version = sqlite3_column_int64(st, 2);
        c.hlc = sqlite3_column_int64(st, 3);
        c.deleted = sqlite3_column_int(st, 5) != 0;
        if (cb(&c, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!err && rc != SQLITE_DONE)
        err = store_sqlerr(r->db, rc, "change log");
    sqlite3_reset(st);
    return err;
}

int64_t store_last_seq(store_reader_t *r)
{
    sqlite3_stmt *st;
    if (!r)
        return KMS_ERR_INVAL;
    int err = store_rstmt(r, RS_LAST_SEQ, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0)
                                 : store_sqlerr(r->db, rc, "last seq");
    sqlite3_reset(st);
    return v;
}
