/*
 * store/changelog.c: the hybrid logical clock and change-log reads.
 *
 * Every change (objects, tenants, clients, data-store keys, nodes) appends
 * (kind, key, version, hlc, origin, origin_seq, deleted) to change_log in
 * the same transaction as the change itself (apply.c), so the log never
 * names a change that did not commit and never misses one that did.
 * Replication reads it here by sequence number. A change made here stores
 * origin_seq NULL, read back as its own seq. The clock packs wall-clock
 * milliseconds above a 16-bit logical counter and never goes backwards,
 * even when the wall clock does; remote clocks it observes move it on.
 * Deciding what to trim is not done here: replication knows what peers
 * have seen and asks for it with store_write_trim.
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

void store_hlc_observe(store_t *s, int64_t hlc)
{
    if (!s)
        return;
    int64_t cur = atomic_load(&s->hlc_seen);
    while (hlc > cur && !atomic_compare_exchange_weak(&s->hlc_seen, &cur, hlc))
        ;
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
        c.kind = (enum store_kind)sqlite3_column_int(st, 1);
        if (store_col_text(st, 2, c.key, sizeof(c.key)) != 0 ||
            store_row_change_id(st, 4, &c.id) != 0) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "change log row %lld is malformed",
                    (long long)c.seq);
            err = KMS_ERR_IO;
            break;
        }
        c.version = sqlite3_column_int64(st, 3);
        c.deleted = sqlite3_column_int(st, 7) != 0;
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
