/*
 * store/checkpoint.c: WAL checkpoints on a thread of their own.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses the
 * threshold, on the committing connection: the writer would stop taking
 * writes while it copies WAL frames into the database file and fsyncs it.
 * Instead the writer's WAL hook (called after each commit with the WAL
 * size) wakes this thread, which runs a PASSIVE checkpoint on its own
 * connection while the writer keeps appending. When a checkpoint has
 * copied every frame and no reader still needs them, SQLite restarts the
 * WAL from its beginning at the next write, so the file stays bounded.
 * A checkpoint runs once STORE_CKPT_FRAMES frames (store_options_t.ckpt_frames) were appended since the
 * previous one (and after every commit while the WAL is past the RESTART
 * size), not after every commit past a WAL size: every group
 * commit rewrites the same few hot pages (the right edges of the tables
 * and indexes), and one checkpoint over many commits copies each of them
 * once and fsyncs the database file once, instead of once per commit.
 * PASSIVE never blocks readers or the writer; a reader that holds an old
 * snapshot for long just delays the copy (and the WAL grows meanwhile).
 * Under a steady stream of commits PASSIVE never catches up with the
 * writer, so the WAL would never restart and would grow without end
 * (every commit then extends the file: new page-cache pages, block
 * allocation, a metadata write in each fsync). So once the WAL passes
 * STORE_CKPT_RESTART_FACTOR checkpoint intervals, a RESTART checkpoint
 * follows the PASSIVE one:
 * it holds the write lock for the few frames PASSIVE left and until the
 * readers have moved to the database file (short: readers are point
 * reads), at most STORE_CKPT_RESTART_MS, and the next commit starts the
 * WAL from its beginning. If it cannot get the locks in time it gives up
 * and PASSIVE continues as before.
 * A busy writer commits back to back and holds the write lock nearly all
 * the time; SQLite's busy handler, sleeping milliseconds between tries,
 * would never see the gaps. So the checkpointer raises ckpt_yield first:
 * the writer finishes its current batch and parks before the next
 * (store_ckpt_yield_wait), the RESTART's own busy handler polls every
 * 50 us, and the writer goes on as soon as the rewind is done (one
 * commit's delay every STORE_CKPT_RESTART_FACTOR intervals). With
 * log.level debug each checkpoint is logged with its frames and time.
 */
#include "store/store_int.h"

#include <time.h>
#include <unistd.h>

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    store_t *s = arg;
    (void)db;
    (void)name;
    int seen = atomic_load(&s->ckpt_seen);
    if (frames < seen) { /* the WAL restarted from its beginning */
        seen = 0;
        atomic_store(&s->ckpt_seen, 0);
    }
    /* Past the restart size, every commit retries the RESTART. */
    if (frames - seen >= s->ckpt_every || frames >= STORE_CKPT_RESTART_FACTOR * s->ckpt_every) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_frames = frames;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->ckpt_mu);
    }
    return SQLITE_OK;
}

/* RESTART's busy handler: poll briefly, give up after STORE_CKPT_RESTART_MS. */
static int restart_busy(void *arg, int tries)
{
    (void)arg;
    if ((int64_t)tries * 50 >= STORE_CKPT_RESTART_MS * 1000)
        return 0;
    usleep(50);
    return 1;
}

static void yield_set(store_t *s, bool on)
{
    pthread_mutex_lock(&s->ckpt_mu);
    atomic_store(&s->ckpt_yield, on);
    if (!on)
        pthread_cond_broadcast(&s->ckpt_yield_cv);
    pthread_mutex_unlock(&s->ckpt_mu);
}

void store_ckpt_yield_wait(store_t *s)
{
    if (!atomic_load(&s->ckpt_yield))
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 4L * STORE_CKPT_RESTART_MS * 1000000L; /* then go on regardless */
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->ckpt_mu);
    while (atomic_load(&s->ckpt_yield))
        if (pthread_cond_timedwait(&s->ckpt_yield_cv, &s->ckpt_mu, &until) != 0)
            break;
    pthread_mutex_unlock(&s->ckpt_mu);
}

static void *ckpt_main(void *arg)
{
    store_t *s = arg;
    int warned_at = 0;
    pthread_setname_np(pthread_self(), "kmsd-store-ckpt");
    /* Background copying: its fair share, but no wake-up preemption of the
     * event loops or the writer (SCHED_BATCH). Best effort. */
    struct sched_param sp = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    pthread_mutex_lock(&s->ckpt_mu);
    for (;;) {
        while (!s->ckpt_frames && !s->ckpt_stop)
            pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
        if (s->ckpt_stop)
            break;
        s->ckpt_frames = 0;
        pthread_mutex_unlock(&s->ckpt_mu);

        int log = 0, done = 0;
        uint64_t t0 = kms_mono_ns();
        int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        kms_log(KMS_LOG_DEBUG, STORE_LOG, "checkpoint (passive): %d of %d frames in %.2f ms, rc %d",
                done, log, (double)(kms_mono_ns() - t0) / 1e6, rc);
        if (rc == SQLITE_OK)
            atomic_store(&s->ckpt_seen, log);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            store_sqlerr(s->cdb, rc, "checkpoint");
        if (rc == SQLITE_OK && log >= STORE_CKPT_RESTART_FACTOR * s->ckpt_every) {
            yield_set(s, true);
            sqlite3_busy_handler(s->cdb, restart_busy, NULL);
            int log2 = 0, done2 = 0;
            t0 = kms_mono_ns();
            int r2 = sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_RESTART, &log2, &done2);
            kms_log(KMS_LOG_DEBUG, STORE_LOG, "checkpoint (restart): %d frames in %.2f ms, rc %d",
                    log2, (double)(kms_mono_ns() - t0) / 1e6, r2);
            sqlite3_busy_timeout(s->cdb, STORE_BUSY_MS);
            yield_set(s, false);
            if (r2 == SQLITE_OK) {
                log = done = 0; /* the next commit rewinds the WAL */
                atomic_store(&s->ckpt_seen, 0);
            } else if ((r2 & 0xff) != SQLITE_BUSY) {
                store_sqlerr(s->cdb, r2, "checkpoint (restart)");
            }
        }
        /* A WAL ten times the threshold means some reader pins an old
         * snapshot; say so once per tenfold growth. */
        if (log > 10 * s->ckpt_every && log > 2 * warned_at && done < log) {
            kms_log(KMS_LOG_WARN, STORE_LOG,
                    "WAL has %d frames, %d checkpointed: a long-running reader delays it", log,
                    done);
            warned_at = log;
        } else if (log < s->ckpt_every) {
            warned_at = 0;
        }
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

int store_ckpt_start(store_t *s)
{
    int err = store_db_open(s->path, false, false, &s->cdb);
    if (err)
        return err;
    /* Our hook replaces SQLite's automatic checkpoint on the writer. */
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
        sqlite3_wal_autocheckpoint(s->wdb, 1000); /* fall back to inline */
        sqlite3_close_v2(s->cdb);
        s->cdb = NULL;
        kms_log(KMS_LOG_WARN, STORE_LOG, "no checkpoint thread; checkpointing inline");
        return 0;
    }
    s->ckpt_started = true;
    return 0;
}

void store_ckpt_stop(store_t *s)
{
    if (s->ckpt_started) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->ckpt_mu);
        pthread_join(s->ckpt_thread, NULL);
        s->ckpt_started = false;
    }
    if (s->wdb)
        sqlite3_wal_hook(s->wdb, NULL, NULL);
    if (s->cdb) {
        sqlite3_close_v2(s->cdb);
        s->cdb = NULL;
    }
}
