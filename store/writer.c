/*
 * store/writer.c: the writer thread and group commit.
 *
 * store_commit() queues a write and sleeps on the write's own condition
 * variable. The writer takes every write queued at that moment (up to
 * max_batch), opens one BEGIN IMMEDIATE transaction, applies each write
 * inside its own SAVEPOINT (so one write's conflict undoes only that
 * write), COMMITs once (one WAL fsync under synchronous=FULL for the whole
 * group) and only then wakes each waiter with its own result. A write is
 * therefore acknowledged only after it is durable. store_commit_async()
 * queues the same way without a waiting thread: after the COMMIT the
 * writer calls the write's callback (an event loop's hand-over) instead of
 * waking anyone. It deliberately does not retry failed transactions: the
 * caller sees KMS_ERR_IO and decides. With log.level debug each group
 * commit is logged with its size, its wait for a checkpoint and its wall
 * and CPU time (a commit slow in wall time only waited for the disk or a
 * core).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <time.h>

static int step_ctl(store_t *s, enum store_wstmt which, const char *what)
{
    sqlite3_stmt *st;
    int err = store_wstmt(s, which, &st);
    if (err)
        return err;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(s->wdb, rc, what);
}

/* A failure that leaves no usable transaction fails every write of the
 * batch that has no error of its own yet. */
static void fail_batch(store_t *s, store_write_t **b, size_t n, int err)
{
    if (!sqlite3_get_autocommit(s->wdb))
        sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        if (b[i]->result == 0)
            b[i]->result = err;
}

static bool is_fatal(int err)
{
    return err == KMS_ERR_IO || err == KMS_ERR_NOSPC || err == KMS_ERR_NOMEM || err == KMS_ERR_BUSY ||
           err == KMS_ERR_INTERNAL;
}

/* Safe path: each write in its own SAVEPOINT, so a failing write is
 * undone alone and the others commit. */
static void run_batch_isolated(store_t *s, store_write_t **b, size_t n, int64_t now_us)
{
    int err;
restart:
    store_tail_reset(s);
    err = step_ctl(s, WS_BEGIN, "begin");
    if (err) {
        fail_batch(s, b, n, err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        err = step_ctl(s, WS_SAVEPOINT, "savepoint");
        if (err)
            goto fatal;
        size_t mark = store_tail_mark(s);
        int r = store_apply(s, b[i], now_us);
        if (r == 0) {
            err = step_ctl(s, WS_RELEASE, "release");
            if (err)
                goto fatal;
            continue;
        }
        b[i]->result = r;
        if (sqlite3_get_autocommit(s->wdb)) {
            /* SQLite rolled the whole transaction back. */
            if (is_fatal(r)) {
                err = r;
                goto fatal;
            }
            /* One write's own failure took the transaction with it: run the
             * writes that have not failed again, without it. */
            size_t k = 0;
            for (size_t j = 0; j < n; j++) {
                if (b[j]->result == 0) { /* swap: the caller still owns every entry */
                    store_write_t *t = b[k];
                    b[k++] = b[j];
                    b[j] = t;
                }
            }
            n = k;
            goto restart;
        }
        store_tail_truncate(s, mark); /* undone with the savepoint */
        err = step_ctl(s, WS_ROLLBACK_TO, "rollback to");
        if (!err)
            err = step_ctl(s, WS_RELEASE, "release");
        if (err)
            goto fatal;
    }
    err = step_ctl(s, WS_COMMIT, "commit");
    if (err)
        goto fatal;
    return;
fatal:
    /* Nothing of this batch is durable: even writes that applied cleanly
     * are reported failed, because their transaction did not commit. */
    for (size_t i = 0; i < n; i++)
        if (b[i]->result == 0 || is_fatal(b[i]->result))
            b[i]->result = err;
    fail_batch(s, b, n, err);
}

/* Fast path: the whole batch without savepoints. A savepoint copies every
 * page a write touches into an undo journal first; profiling showed that
 * to be about a third of the writer's work. Writes rarely fail, so the
 * batch is first tried plainly; if any write fails, the transaction is
 * rolled back (nothing of it was visible) and the batch re-run on the safe
 * path. Returns false when the safe path must run. */
static bool run_batch_fast(store_t *s, store_write_t **b, size_t n, int64_t now_us)
{
    if (step_ctl(s, WS_BEGIN, "begin") != 0) {
        if (!sqlite3_get_autocommit(s->wdb))
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int r = store_apply(s, b[i], now_us);
        if (r != 0) {
            store_tail_reset(s); /* rolled back */
            if (!sqlite3_get_autocommit(s->wdb))
                step_ctl(s, WS_ROLLBACK, "rollback");
            if (n == 1) {
                b[0]->result = r; /* the rollback undid exactly this write */
                return true;
            }
            return false;
        }
        b[i]->result = 0;
    }
    int err = step_ctl(s, WS_COMMIT, "commit");
    if (err) {
        fail_batch(s, b, n, err);
        return true; /* not retried: the failure is the disk's, not a write's */
    }
    return true;
}

/* Cached copies of the objects a batch changes are dropped, and their
 * shards kept from refilling, from before BEGIN until after COMMIT (see
 * cache.c), so no reader is served a version older than the database's. */
static void cache_mark(store_t *s, store_write_t **b, size_t n, bool begin)
{
    if (!s->cache)
        return;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < b[i]->n_ops; j++) {
            const store_op_t *op = &b[i]->ops[j];
            const char *id = op->kind == STORE_OP_PUT      ? op->obj.id
                             : op->kind == STORE_OP_DELETE ? op->key
                                                           : NULL;
            if (id && begin)
                store_cache_begin(s->cache, id);
            else if (id)
                store_cache_end(s->cache, id);
        }
}

static void run_batch(store_t *s, store_write_t **b, size_t n)
{
    int64_t now_us = kms_now_us();
    for (size_t i = 0; i < n; i++)
        b[i]->result = 0;
    /* (The isolated path may reorder b[]; the set stays the same.) */
    store_tail_batch_start(s);
    cache_mark(s, b, n, true);
    if (!run_batch_fast(s, b, n, now_us)) {
        s->retries++;
        run_batch_isolated(s, b, n, now_us);
    }
    cache_mark(s, b, n, false);
    s->hlc_floor_dirty = false; /* saved by the batch's writes, or moot if they failed */
    int64_t top_seq = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->result != 0)
            b[i]->last_seq = 0;
        else if (b[i]->last_seq > top_seq)
            top_seq = b[i]->last_seq;
    }
    /* The committed rows in memory for replication, before any waiter is
     * answered and before its notification; what failed is not there. */
    if (top_seq)
        store_tail_publish(s, top_seq);
    else
        store_tail_reset(s);
    /* Identity caches (kmip/auth.c) must not outlive a client or tenant
     * change: bump before any waiter (kmsctl client remove) is answered. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < b[i]->n_ops; j++)
            if (b[i]->ops[j].kind == STORE_OP_CLIENT || b[i]->ops[j].kind == STORE_OP_TENANT) {
                atomic_fetch_add(&s->clients_gen, 1);
                return;
            }
}

void store_set_notify(store_t *s, store_notify_cb cb, void *arg)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->notify = cb;
    s->notify_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

uint64_t store_clients_generation(store_t *s)
{
    return s ? atomic_load(&s->clients_gen) : 0;
}

/* CPU time of the calling thread (DEBUG timings: a commit slow in wall
 * time but not in CPU time waited for the disk or for a core). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *writer_main(void *arg)
{
    store_t *s = arg;
    pthread_setname_np(pthread_self(), "kmsd-store-wr");
    /* Allocated by store_writer_start and owned by the store, not by this
     * thread's stack, so it is reachable from the store while it exists. */
    store_write_t **batch = s->wbatch;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->q_head && !s->stopping)
            pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->q_head)
            break; /* stopping and drained */
        size_t n = 0;
        while (s->q_head && n < s->max_batch && batch) {
            batch[n++] = s->q_head;
            s->q_head = s->q_head->next;
        }
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->mu);

        bool timed = KMS_LOG_ENABLED(KMS_LOG_DEBUG);
        uint64_t t0 = timed ? kms_mono_ns() : 0;
        store_ckpt_yield_wait(s);
        uint64_t t1 = timed ? kms_mono_ns() : 0, c1 = timed ? thread_cpu_ns() : 0;
        if (batch)
            run_batch(s, batch, n);
        if (timed) /* where a commit's time goes, to match replication lag */
            kms_log(KMS_LOG_DEBUG, STORE_LOG,
                    "batch of %zu writes: waited %.2f ms for a checkpoint, committed in %.2f ms "
                    "(%.2f ms of CPU)", n, (double)(t1 - t0) / 1e6,
                    (double)(kms_mono_ns() - t1) / 1e6, (double)(thread_cpu_ns() - c1) / 1e6);
        /* Replication's wake-up, before any writer of the batch is
         * answered: whoever sees a commit return knows it was sent. */
        int64_t top_seq = 0;
        for (size_t i = 0; batch && i < n; i++)
            if (batch[i]->result == 0 && batch[i]->last_seq > top_seq)
                top_seq = batch[i]->last_seq;
        if (top_seq) {
            pthread_mutex_lock(&s->mu);
            store_notify_cb notify = s->notify;
            void *notify_arg = s->notify_arg;
            pthread_mutex_unlock(&s->mu);
            if (notify)
                notify(top_seq, notify_arg);
        }

        pthread_mutex_lock(&s->mu);
        if (!batch) {
            /* Could not even allocate the batch array: fail the queue. */
            for (store_write_t *w = s->q_head; w; w = s->q_head) {
                s->q_head = w->next;
                w->result = KMS_ERR_NOMEM;
                if (w->done_cb) {
                    store_commit_cb cb = w->done_cb;
                    w->done_cb = NULL;
                    pthread_mutex_unlock(&s->mu);
                    cb(w, KMS_ERR_NOMEM, w->done_arg);
                    pthread_mutex_lock(&s->mu);
                    continue;
                }
                w->done = true;
                pthread_cond_signal(&w->cv);
            }
            s->q_tail = NULL;
            continue;
        }
        bool committed = false;
        size_t n_async = 0;
        for (size_t i = 0; i < n; i++) {
            int r = batch[i]->result;
            if (r == 0) {
                s->stats.commits++;
                committed = true;
            } else if (r == KMS_ERR_CONFLICT) {
                s->stats.conflicts++;
            } else {
                s->stats.failures++;
            }
            if (batch[i]->done_cb) {
                batch[n_async++] = batch[i]; /* called below, without the lock */
                continue;
            }
            batch[i]->done = true;
            pthread_cond_signal(&batch[i]->cv);
            /* batch[i] may be freed by its owner once we unlock. */
        }
        if (committed)
            s->stats.transactions++;
        if (n > s->stats.max_batch)
            s->stats.max_batch = n;
        s->stats.retried = s->retries;
        if (n_async) {
            pthread_mutex_unlock(&s->mu);
            for (size_t i = 0; i < n_async; i++) {
                store_write_t *w = batch[i];
                store_commit_cb cb = w->done_cb;
                void *cb_arg = w->done_arg;
                w->done_cb = NULL;
                cb(w, w->result, cb_arg); /* w is the caller's again */
            }
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int store_writer_start(store_t *s)
{
    s->wbatch = malloc(s->max_batch * sizeof(*s->wbatch)); /* NULL: writer_main fails writes */
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        free(s->wbatch);
        s->wbatch = NULL;
        kms_log(KMS_LOG_ERROR, STORE_LOG, "cannot start the writer thread");
        return KMS_ERR_NOMEM;
    }
    s->thread_started = true;
    return 0;
}

void store_writer_stop(store_t *s)
{
    if (!s->thread_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
    free(s->wbatch);
    s->wbatch = NULL;
}

/* Append w to the writer's queue and wake it. Called with s->mu held;
 * KMS_ERR_UNAVAIL (nothing queued) when the store is closing. */
static int enqueue_locked(store_t *s, store_write_t *w, store_commit_cb cb, void *arg)
{
    if (s->stopping || !s->thread_started)
        return KMS_ERR_UNAVAIL;
    w->done = false;
    w->result = 0;
    w->next = NULL;
    w->done_cb = cb;
    w->done_arg = arg;
    if (s->q_tail)
        s->q_tail->next = w;
    else
        s->q_head = w;
    s->q_tail = w;
    pthread_cond_signal(&s->cv_work);
    return 0;
}

int store_commit_async(store_t *s, store_write_t *w, store_commit_cb cb, void *arg)
{
    if (!s || !w || !cb || w->n_ops == 0)
        return KMS_ERR_INVAL;
    if (s->read_only)
        return KMS_ERR_PERM;
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, w, cb, arg);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_commit(store_t *s, store_write_t *w, int64_t *versions_out, size_t n_versions)
{
    if (!s || !w)
        return KMS_ERR_INVAL;
    if (s->read_only)
        return KMS_ERR_PERM;
    if (s->thread_started && pthread_equal(pthread_self(), s->thread))
        return KMS_ERR_INTERNAL; /* would wait for itself */
    if (w->n_ops == 0)
        return 0;
    pthread_mutex_lock(&s->mu);
    if (enqueue_locked(s, w, NULL, NULL) != 0) {
        pthread_mutex_unlock(&s->mu);
        return KMS_ERR_UNAVAIL;
    }
    while (!w->done)
        pthread_cond_wait(&w->cv, &s->mu);
    int r = w->result;
    pthread_mutex_unlock(&s->mu);
    if (r == 0 && versions_out) {
        size_t j = 0;
        for (size_t i = 0; i < w->n_ops && j < n_versions; i++)
            if (w->ops[i].kind == STORE_OP_PUT)
                versions_out[j++] = w->ops[i].new_version;
    }
    return r;
}
