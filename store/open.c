/*
 * store/open.c: opening and closing the store.
 *
 * Open creates or migrates the schema on the write connection, settles the
 * node id (from the options, else created once and kept in meta), seeds the
 * hybrid logical clock from the change log and starts the writer and
 * checkpoint threads.
 * Close drains the writer, checkpoints the WAL into the main file and
 * closes. Reads and writes themselves live in read.c and writer.c.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define META_NODE_ID "node_id"

static int new_node_id(char *out, size_t cap)
{
    uint8_t r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0)
            return KMS_ERR_IO;
        got += (size_t)n;
    }
    if (cap < 2 * sizeof(r) + 1)
        return KMS_ERR_INTERNAL;
    kms_hex_encode(r, sizeof(r), out);
    return 0;
}

/* Node id from meta; if absent and `create`, generate and store it. */
static int settle_node_id(sqlite3 *db, bool create, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int err = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlerr(db, rc, "node id");
    sqlite3_bind_text(st, 1, META_NODE_ID, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        if (n <= 0 || (size_t)n >= cap) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "meta node_id is malformed");
            err = KMS_ERR_IO;
            goto out;
        }
        memcpy(out, sqlite3_column_blob(st, 0), (size_t)n);
        out[n] = '\0';
        goto out;
    }
    if (rc != SQLITE_DONE) {
        err = store_sqlerr(db, rc, "node id");
        goto out;
    }
    if (!create) {
        out[0] = '\0';
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    err = new_node_id(out, cap);
    if (err)
        goto out;
    rc = sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES (?1, ?2)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, META_NODE_ID, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, out, (int)strlen(out), SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        err = store_sqlerr(db, rc, "node id");
    else
        kms_log(KMS_LOG_INFO, STORE_LOG, "new node id %s", out);
out:
    sqlite3_finalize(st);
    return err;
}

static int seed_hlc(sqlite3 *db, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    /* The newest rows carry the largest values (the clock only grows and
     * seq follows commit order); looking at the last few thousand keeps
     * start-up independent of the log's length. Where no row shows the
     * clock (the log trimmed, changes applied without logging), the
     * writer kept its high-water mark in meta. */
    int rc = sqlite3_prepare_v2(db, "SELECT max(coalesce((SELECT max(hlc) FROM (SELECT hlc FROM"
                                    " change_log ORDER BY seq DESC LIMIT 4096)), 0),"
                                    " coalesce((SELECT CAST(CAST(value AS TEXT) AS INTEGER)"
                                    " FROM meta WHERE key = '" STORE_META_HLC_FLOOR "'), 0))",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(db, rc, "hlc");
}

/* kmsd_node_id(): this node's id, for migrations that fill in the
 * origin of rows made before replication existed (schema.c). */
static void sql_node_id(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    sqlite3_result_text(ctx, sqlite3_user_data(ctx), -1, SQLITE_TRANSIENT);
}

/* Migrate the writer's connection. An existing database settles its node
 * id first: steps from 6 on record it as the origin of existing rows. */
static int migrate(store_t *s, sqlite3 *db)
{
    int v = 0;
    int err = store_schema_read(db, &v);
    if (!err && v > 0 && !s->node_id[0])
        err = settle_node_id(db, true, s->node_id, sizeof(s->node_id));
    if (err)
        return err;
    int rc = sqlite3_create_function_v2(db, "kmsd_node_id", 0, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                        s->node_id, sql_node_id, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_sqlerr(db, rc, "open");
    return store_migrate(db, &s->schema_version);
}

int store_open(const store_options_t *opt, store_t **out)
{
    store_t *s = NULL;
    sqlite3 *db = NULL;
    int err;
    if (!opt || !opt->path || !opt->path[0] || !out)
        return KMS_ERR_INVAL;
    *out = NULL;
    if (opt->node_id && (!opt->node_id[0] || strlen(opt->node_id) >= sizeof(s->node_id)))
        return KMS_ERR_INVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return KMS_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    pthread_cond_init(&s->ckpt_yield_cv, NULL);
    s->read_only = opt->read_only;
    s->ckpt_every = opt->ckpt_frames > 0 ? opt->ckpt_frames : STORE_CKPT_FRAMES;
    s->max_batch = opt->max_batch ? opt->max_batch : STORE_DEFAULT_BATCH;
    if (s->max_batch > STORE_MAX_BATCH)
        s->max_batch = STORE_MAX_BATCH;
    s->path = strdup(opt->path);
    s->wscratch = kms_arena_new(0);
    kms_buf_init(&s->wbuf, (size_t)64 << 20);
    if (!s->path || !s->wscratch) {
        err = KMS_ERR_NOMEM;
        goto out;
    }
    err = s->read_only ? store_db_open(s->path, true, true, &db)
                       : store_db_open_writer(s->path, &db);
    if (err)
        goto out;
    if (s->read_only) {
        err = store_schema_read(db, &s->schema_version);
        if (!err && s->schema_version != store_schema_current) {
            kms_log(KMS_LOG_ERROR, STORE_LOG,
                    "%s: schema v%d, this build needs v%d; open it read-write once to migrate",
                    s->path, s->schema_version, store_schema_current);
            err = KMS_ERR_CONFIG;
        }
    } else {
        if (opt->node_id)
            strcpy(s->node_id, opt->node_id);
        err = migrate(s, db);
    }
    if (err)
        goto out;
    if (opt->node_id)
        strcpy(s->node_id, opt->node_id);
    else if (!s->node_id[0])
        err = settle_node_id(db, !s->read_only, s->node_id, sizeof(s->node_id));
    if (err)
        goto out;
    if (s->read_only) {
        sqlite3_close_v2(db);
        db = NULL;
    } else {
        /* The writer walks index pages of every table; a large cache keeps
         * them resident so a commit reads nothing. */
        /* temp_store=MEMORY: each write runs inside a SAVEPOINT, whose
         * undo (sub-journal) would otherwise be a temp file written page by
         * page; in memory it costs a copy. It holds only pages the open
         * transaction touched, so it is bounded by the batch. */
        /* journal_size_limit: after a burst the WAL is cut back to 64 MiB
         * when it restarts, instead of keeping its peak size. */
        err = store_exec(db, "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
                             " PRAGMA journal_size_limit=67108864", "open");
        if (!err)
            err = seed_hlc(db, &s->last_hlc);
        if (err)
            goto out;
        s->wdb = db;
        db = NULL;
        if (!opt->no_cache) {
            s->cache = store_cache_new(opt->cache_bytes ? opt->cache_bytes : STORE_CACHE_DEFAULT);
            if (!s->cache) {
                err = KMS_ERR_NOMEM;
                goto out;
            }
        }
        err = store_ckpt_start(s);
        if (!err)
            err = store_writer_start(s);
        if (err)
            goto out;
    }
    *out = s;
    s = NULL;
out:
    if (db)
        sqlite3_close_v2(db);
    if (s)
        store_close(s);
    return err;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    store_writer_stop(s);
    store_log_tail_free(s);
    store_ckpt_stop(s);
    store_wstmt_finalize(s);
    store_cache_free(s->cache);
    s->cache = NULL;
    if (s->wdb) {
        /* Fold the WAL into the main file so the database is one file at
         * rest. Busy when a reader is still open: the WAL stays, which is
         * safe; the next open replays it. */
        sqlite3_busy_timeout(s->wdb, 1000); /* do not hang shutdown on a lingering reader */
        int rc = sqlite3_wal_checkpoint_v2(s->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        if (rc != SQLITE_OK)
            kms_log(KMS_LOG_WARN, STORE_LOG, "close: WAL checkpoint incomplete (%s)",
                    sqlite3_errmsg(s->wdb));
        if (sqlite3_close(s->wdb) != SQLITE_OK) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "close: %s", sqlite3_errmsg(s->wdb));
            sqlite3_close_v2(s->wdb);
        }
        s->wdb = NULL;
    }
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_cond_destroy(&s->ckpt_yield_cv);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_mutex_destroy(&s->mu);
    kms_arena_free(s->wscratch);
    kms_buf_dispose(&s->wbuf);
    free(s->path);
    free(s);
}

int store_schema_version(store_t *s)
{
    return s ? s->schema_version : KMS_ERR_INVAL;
}

const char *store_node_id(store_t *s)
{
    return s ? s->node_id : "";
}

void store_stats(store_t *s, store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
    store_cache_stats(s->cache, out);
}
