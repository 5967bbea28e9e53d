/* tests/unit/test_store_concurrency.c: the writer under load, on a real
 * SQLite file: group commit with 32 concurrent committers (everything
 * present, batching observed), the change log (monotonic seq and HLC, one
 * row per change, none for a refused write), the HLC under a clock that
 * goes back, an online backup while 8 threads write (the copy opens and
 * every object in it is complete), durability of acknowledged writes across
 * SIGKILL of a committing child process, and a small throughput benchmark
 * (64 committers vs one transaction per insert). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/tmpdir.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    return kms_test_tmpdir(g_dir, sizeof(g_dir), "storecc", "kms.db", g_path, sizeof(g_path));
}

static int teardown(void **state)
{
    (void)state;
    return kms_test_rmdir(g_dir);
}

static store_t *open_store(void)
{
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    return s;
}

#define N_ATTRS 6
static const char *const ATTR_NAMES[N_ATTRS] = {
    "Name", "Object Group", "Cryptographic Algorithm", "Cryptographic Length",
    "Cryptographic Usage Mask", "Initial Date"};

/* A realistic object: 6 attributes, a 60-byte blob derived from its id,
 * so a reader can check completeness from the id alone. */
static void fill_blob(const char *id, uint8_t *blob, size_t n)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (size_t i = 0; i < n; i++) {
        h = h * 1103515245u + 12345u;
        blob[i] = (uint8_t)(h >> 16);
    }
}

static int put_new(store_t *s, const char *id, const char *tenant)
{
    store_object_t o;
    store_attr_t at[N_ATTRS];
    uint8_t blob[60];
    memset(&o, 0, sizeof(o));
    memset(at, 0, sizeof(at));
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.tenant, sizeof(o.tenant), "%s", tenant);
    o.object_type = 2;
    o.state = 1;
    o.sealed.dsk_id = 1;
    o.sealed.gen = 1;
    fill_blob(id, blob, sizeof(blob));
    o.sealed.blob = blob;
    o.sealed.len = sizeof(blob);
    for (int i = 0; i < N_ATTRS; i++) {
        at[i].name = ATTR_NAMES[i];
        at[i].value = blob + i;
        at[i].value_len = 16;
        if (i < 2)
            at[i].skey = id;
        else {
            at[i].nkey = i;
            at[i].has_nkey = true;
        }
    }
    o.attrs = at;
    o.n_attrs = N_ATTRS;
    store_write_t *w = store_write_new();
    if (!w)
        return KMS_ERR_NOMEM;
    int err = store_write_put(w, &o, STORE_VERSION_NEW);
    if (!err)
        err = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return err;
}

/* The object is complete: all attributes, the right blob. */
static void assert_complete(store_reader_t *r, kms_arena_t *a, const char *id)
{
    store_object_t *g = NULL;
    assert_int_equal(store_get(r, a, id, NULL, &g), 0);
    uint8_t blob[60];
    fill_blob(id, blob, sizeof(blob));
    assert_int_equal(g->sealed.len, sizeof(blob));
    assert_memory_equal(g->sealed.blob, blob, sizeof(blob));
    assert_int_equal(g->n_attrs, N_ATTRS);
    for (size_t i = 0; i < g->n_attrs; i++)
        assert_int_equal(g->attrs[i].value_len, 16);
}

/* ------------------------------------------------------- group commit */
struct worker {
    store_t *s;
    int tid;
    int count;
    int errors;
    const char *prefix;
    int *stop;            /* optional: run until set (atomic) */
    int done;
};

static void *committer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; w->stop ? !__atomic_load_n(w->stop, __ATOMIC_ACQUIRE) : i < w->count; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s-%02d-%05d", w->prefix, w->tid, i);
        if (put_new(w->s, id, w->tid % 2 ? "odd" : "even") != 0)
            w->errors++;
        else
            w->done++;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    store_t *s = open_store();
    enum { T = 32, PER = 50 };
    pthread_t th[T];
    struct worker wk[T];
    for (int t = 0; t < T; t++) {
        wk[t] = (struct worker){.s = s, .tid = t, .count = PER, .prefix = "gc"};
        assert_int_equal(pthread_create(&th[t], NULL, committer, &wk[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(wk[t].errors, 0);
    }
    store_stats_t st;
    store_stats(s, &st);
    print_message("group commit: %llu commits in %llu transactions (max batch %llu)\n",
                  (unsigned long long)st.commits, (unsigned long long)st.transactions,
                  (unsigned long long)st.max_batch);
    assert_int_equal(st.commits, T * PER);
    assert_true(st.transactions < st.commits);
    assert_true(st.max_batch > 1);
    assert_int_equal(st.failures, 0);

    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_count_objects(r), T * PER);
    kms_arena_t *a = kms_arena_new(0);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < PER; i += 7) {
            char id[64];
            snprintf(id, sizeof(id), "gc-%02d-%05d", t, i);
            assert_complete(r, a, id);
            kms_arena_reset(a);
        }
    assert_int_equal(store_last_seq(r), T * PER);
    kms_arena_free(a);
    store_reader_free(r);

    /* The background checkpointer copied the WAL into the database file
     * while the store is open (the writer never checkpoints inline, so
     * without it the main file would hold little more than the schema). */
    struct stat sb = {0};
    for (int i = 0; i < 500; i++) { /* up to 10 s: a loaded machine's disk */
        assert_int_equal(stat(g_path, &sb), 0);
        if (sb.st_size > 512 * 1024)
            break;
        usleep(20 * 1000);
    }
    print_message("database file while open: %lld bytes\n", (long long)sb.st_size);
    assert_true(sb.st_size > 512 * 1024);
    store_close(s);

    /* all still there after reopen */
    s = open_store();
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_count_objects(r), T * PER);
    store_reader_free(r);
    store_close(s);
}

/* A conflicting write inside a busy batch fails alone: the batch is re-run
 * write by write and every other write commits. */
struct dup_worker {
    store_t *s;
    int n, conflicts, other;
};

static void *dup_committer(void *arg)
{
    struct dup_worker *d = arg;
    for (int i = 0; i < d->n; i++) {
        int err = put_new(d->s, "dup-target", "t");
        if (err == KMS_ERR_CONFLICT)
            d->conflicts++;
        else
            d->other++;
    }
    return NULL;
}

static void test_mixed_batch(void **state)
{
    (void)state;
    store_t *s = open_store();
    assert_int_equal(put_new(s, "dup-target", "t"), 0);
    enum { T = 16, D = 8, PER = 40 };
    pthread_t th[T + D];
    struct worker wk[T];
    struct dup_worker dw[D];
    for (int t = 0; t < T; t++) {
        wk[t] = (struct worker){.s = s, .tid = t, .count = PER, .prefix = "mx"};
        assert_int_equal(pthread_create(&th[t], NULL, committer, &wk[t]), 0);
    }
    for (int d = 0; d < D; d++) {
        dw[d] = (struct dup_worker){.s = s, .n = PER};
        assert_int_equal(pthread_create(&th[T + d], NULL, dup_committer, &dw[d]), 0);
    }
    for (int t = 0; t < T + D; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++)
        assert_int_equal(wk[t].errors, 0);
    for (int d = 0; d < D; d++) {
        assert_int_equal(dw[d].conflicts, PER);
        assert_int_equal(dw[d].other, 0);
    }
    store_stats_t st;
    store_stats(s, &st);
    print_message("mixed: %llu commits, %llu conflicts, %llu batches re-run isolated\n",
                  (unsigned long long)st.commits, (unsigned long long)st.conflicts,
                  (unsigned long long)st.retried);
    assert_int_equal(st.commits, 1 + T * PER);
    assert_int_equal(st.conflicts, D * PER);
    assert_true(st.retried > 0);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_count_objects(r), 1 + T * PER);
    assert_int_equal(store_last_seq(r), 1 + T * PER); /* no log row for a refused write */
    kms_arena_t *a = kms_arena_new(0);
    assert_complete(r, a, "dup-target");
    store_object_t *g;
    assert_int_equal(store_get(r, a, "dup-target", NULL, &g), 0);
    assert_int_equal(g->version, 1);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

/* --------------------------------------------------------- change log */
struct collect {
    store_change_t c[64];
    size_t n;
};

static int collect_cb(const store_change_t *c, void *arg)
{
    struct collect *k = arg;
    if (k->n < 64)
        k->c[k->n++] = *c;
    return 0;
}

static int stop_after_two(const store_change_t *c, void *arg)
{
    (void)c;
    return ++*(int *)arg >= 2;
}

static void test_changelog(void **state)
{
    (void)state;
    store_t *s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_int_equal(store_last_seq(r), 0);
    assert_int_equal(put_new(s, "cl-a", "t"), 0);
    assert_int_equal(put_new(s, "cl-b", "t"), 0);
    /* refused write: no row */
    assert_int_equal(put_new(s, "cl-a", "t"), KMS_ERR_CONFLICT);
    assert_int_equal(store_last_seq(r), 2);
    /* a write with a good put and a conflicting one adds nothing */
    store_object_t o;
    memset(&o, 0, sizeof(o));
    strcpy(o.tenant, "t");
    strcpy(o.id, "cl-c");
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    strcpy(o.id, "cl-b");
    assert_int_equal(store_write_put(w, &o, 7), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), KMS_ERR_CONFLICT);
    store_write_free(w);
    assert_int_equal(store_last_seq(r), 2);
    /* update and delete */
    w = store_write_new();
    strcpy(o.id, "cl-a");
    assert_int_equal(store_write_put(w, &o, 1), 0);
    assert_int_equal(store_write_delete(w, "cl-b", 1), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);

    struct collect k = {.n = 0};
    assert_int_equal(store_changes_since(r, 0, 0, collect_cb, &k), 0);
    assert_int_equal(k.n, 4);
    const char *ids[4] = {"cl-a", "cl-b", "cl-a", "cl-b"};
    const int64_t vers[4] = {1, 1, 2, 2};
    const bool del[4] = {false, false, false, true};
    for (size_t i = 0; i < k.n; i++) {
        assert_int_equal(k.c[i].seq, (int64_t)i + 1);
        assert_int_equal(k.c[i].kind, STORE_KIND_OBJECT);
        assert_string_equal(k.c[i].key, ids[i]);
        assert_int_equal(k.c[i].version, vers[i]);
        assert_int_equal(k.c[i].deleted, del[i]);
        assert_string_equal(k.c[i].id.origin, store_node_id(s));
        assert_int_equal(k.c[i].id.origin_seq, k.c[i].seq); /* made here */
        if (i)
            assert_true(k.c[i].id.hlc > k.c[i - 1].id.hlc);
        /* physical part is about now (ms) */
        int64_t ms = k.c[i].id.hlc >> 16;
        assert_true(llabs(ms - kms_now_us() / 1000) < 60000);
    }
    /* since/limit/early stop */
    k.n = 0;
    assert_int_equal(store_changes_since(r, 2, 1, collect_cb, &k), 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.c[0].seq, 3);
    int cnt = 0;
    assert_int_equal(store_changes_since(r, 0, 0, stop_after_two, &cnt), 0);
    assert_int_equal(cnt, 2);
    store_reader_free(r);
    int64_t last_hlc = k.c[0].id.hlc;
    store_close(s);

    /* After reopen the clock continues above the log. */
    s = open_store();
    assert_int_equal(put_new(s, "cl-d", "t"), 0);
    assert_int_equal(store_reader_new(s, &r), 0);
    k.n = 0;
    assert_int_equal(store_changes_since(r, 4, 0, collect_cb, &k), 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.c[0].seq, 5);
    assert_true(k.c[0].id.hlc > last_hlc);
    store_reader_free(r);
    store_close(s);
}

static void test_hlc(void **state)
{
    (void)state;
    int64_t h = store_hlc_next(0, 1000);
    assert_int_equal(h, (int64_t)1000 << 16);
    int64_t h2 = store_hlc_next(h, 1000); /* same ms: logical +1 */
    assert_int_equal(h2, h + 1);
    int64_t h3 = store_hlc_next(h2, 990); /* clock went back */
    assert_int_equal(h3, h2 + 1);
    assert_int_equal(h3 >> 16, 1000);
    int64_t h4 = store_hlc_next(h3, 1001); /* clock moves on */
    assert_int_equal(h4, (int64_t)1001 << 16);
    /* logical overflow carries into the millisecond field, still increasing */
    int64_t x = ((int64_t)5000 << 16) | 0xffff;
    assert_int_equal(store_hlc_next(x, 5000), (int64_t)5001 << 16);
    int64_t prev = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t wall = 7000 - (i % 50); /* a clock that keeps jumping back */
        int64_t n = store_hlc_next(prev, wall);
        assert_true(n > prev);
        prev = n;
    }
}

/* -------------------------------------------------------------- backup */
struct prog {
    int calls, last_done, total, backwards;
};

static void on_progress(int done, int total, void *arg)
{
    struct prog *p = arg;
    if (done < p->last_done)
        p->backwards++;
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static int check_obj(const char *id, uint32_t dsk, void *arg)
{
    (void)dsk;
    void **ctx = arg;
    assert_complete(ctx[0], ctx[1], id);
    kms_arena_reset(ctx[1]);
    (*(int *)ctx[2])++;
    return 0;
}

static void test_backup_under_load(void **state)
{
    (void)state;
    store_t *s = open_store();
    /* some pages to copy first */
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof(id), "pre-%04d", i);
        assert_int_equal(put_new(s, id, "t"), 0);
    }
    enum { T = 8 };
    int stop = 0;
    pthread_t th[T];
    struct worker wk[T];
    for (int t = 0; t < T; t++) {
        wk[t] = (struct worker){.s = s, .tid = t, .prefix = "bk", .stop = &stop};
        assert_int_equal(pthread_create(&th[t], NULL, committer, &wk[t]), 0);
    }
    /* Writes under way, and enough of them (with the 300 above, well past
     * one 64-page backup step) however slowly this machine writes: the 300
     * alone are about 60 pages. */
    usleep(100 * 1000);
    for (int waited = 0, n = 0; n < 300; waited++) {
        assert_true(waited < 3000); /* 30 s */
        n = 0;
        for (int t = 0; t < T; t++)
            n += __atomic_load_n(&wk[t].done, __ATOMIC_RELAXED);
        usleep(10 * 1000);
    }
    char dest[160];
    snprintf(dest, sizeof(dest), "%s/backup.db", g_dir);
    struct prog p = {0};
    assert_int_equal(store_backup(s, dest, on_progress, &p), 0);
    usleep(50 * 1000);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    int written = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(wk[t].errors, 0);
        written += wk[t].done;
    }
    print_message("backup: %d progress calls, %d pages; %d writes during the test\n", p.calls,
                  p.total, written);
    assert_true(p.total > 64); /* more than one step to copy */
    assert_true(p.calls >= 2); /* copied in steps */
    assert_int_equal(p.last_done, p.total);
    assert_int_equal(p.backwards, 0);
    assert_true(written > 0);
    char partial[200];
    snprintf(partial, sizeof(partial), "%s.partial", dest);
    assert_int_equal(access(partial, F_OK), -1);

    /* The copy opens as a store and every object in it is complete; its
     * change log names exactly its objects. */
    store_options_t bo = {.path = dest};
    store_t *b = NULL;
    assert_int_equal(store_open(&bo, &b), 0);
    assert_string_equal(store_node_id(b), store_node_id(s));
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(b, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    int n = 0;
    void *ctx[3] = {r, a, &n};
    assert_int_equal(store_scan(r, "", 0, check_obj, ctx), 0);
    int64_t count = store_count_objects(r);
    assert_int_equal(n, count);
    assert_true(count >= 300);
    assert_int_equal(store_last_seq(r), count); /* one log row per object, no more */
    store_reader_free(r);
    kms_arena_free(a);
    store_close(b);

    /* the source has at least as much */
    assert_int_equal(store_reader_new(s, &r), 0);
    assert_true(store_count_objects(r) >= count);
    assert_int_equal(store_count_objects(r), 300 + written);
    store_reader_free(r);

    /* refused: onto itself, and into a missing directory (no partial left) */
    assert_int_equal(store_backup(s, g_path, NULL, NULL), KMS_ERR_INVAL);
    assert_int_equal(store_backup(s, "/nonexistent-kmsd/x.db", NULL, NULL), KMS_ERR_IO);
    store_close(s);
}

/* ------------------------------------------------- SIGKILL durability */
static void child_loop(int fd)
{
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    if (store_open(&o, &s) != 0)
        _exit(2);
    for (int i = 0;; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "kill-%06d\n", i);
        line[n - 1] = '\0';
        if (put_new(s, line, "t") != 0)
            _exit(3);
        line[n - 1] = '\n';
        /* Only acknowledged (durable) ids reach the parent. */
        if (write(fd, line, (size_t)n) != n)
            _exit(4);
    }
}

static void test_sigkill_durability(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        child_loop(pfd[1]);
    }
    close(pfd[1]);
    /* read acknowledgements until we have enough, then kill mid-stream */
    char buf[65536];
    size_t len = 0;
    int lines = 0;
    while (lines < 150) {
        ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            lines += buf[len + (size_t)i] == '\n';
        len += (size_t)n;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    /* drain what was acknowledged before death */
    for (;;) {
        ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pfd[0]);
    buf[len] = '\0';

    store_t *s = open_store();
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    int acked = 0;
    for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok;
         tok = strtok_r(NULL, "\n", &save)) {
        if (strlen(tok) != 11)
            continue; /* a line cut by the kill was never acknowledged in full */
        assert_complete(r, a, tok);
        kms_arena_reset(a);
        acked++;
    }
    int64_t stored = store_count_objects(r);
    print_message("SIGKILL: %d acknowledged ids all present (%lld stored)\n", acked,
                  (long long)stored);
    assert_true(acked >= 150);
    assert_true(stored >= acked);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

/* ----------------------------------------------------------- benchmark */
static double now_s(void)
{
    return (double)kms_mono_ns() / 1e9;
}

/* One round: SEQ inserts one transaction each, then 64 committers of PER
 * inserts each; their rates and the mean number of commits per
 * transaction (fsync) of the grouped part. */
static void bench_round(store_t *s, int round, double *seq_out, double *grp_out, double *batch_out)
{
    enum { SEQ = 300, T = 64, PER = 100 };
    char prefix[32];
    double t0 = now_s();
    for (int i = 0; i < SEQ; i++) {
        char id[48];
        snprintf(id, sizeof(id), "seq-%d-%05d", round, i);
        assert_int_equal(put_new(s, id, "t"), 0);
    }
    *seq_out = SEQ / (now_s() - t0);

    pthread_t th[T];
    struct worker wk[T];
    store_stats_t before, after;
    snprintf(prefix, sizeof(prefix), "bench%d", round);
    store_stats(s, &before);
    t0 = now_s();
    for (int t = 0; t < T; t++) {
        wk[t] = (struct worker){.s = s, .tid = t, .count = PER, .prefix = prefix};
        assert_int_equal(pthread_create(&th[t], NULL, committer, &wk[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(wk[t].errors, 0);
    }
    *grp_out = T * PER / (now_s() - t0);
    store_stats(s, &after);
    *batch_out = (double)(after.commits - before.commits) /
                 (double)(after.transactions - before.transactions);
}

static void test_bench(void **state)
{
    (void)state;
    store_t *s = open_store();
    /* Grouping must pay: >= 3x a one-commit-per-insert loop. Under the
     * sanitizers every write costs several times more CPU while an fsync
     * costs the same, so only a clear gain is required there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    const double want = 1.5;
#else
    const double want = 3;
#endif
    /* The ratio of two wall-clock rates moves with the machine's load
     * (other tests, builds): up to three rounds, one meeting it passes. What
     * it comes from does not move with load: 64 committers share each
     * fsync, so every round must average at least 4 commits per
     * transaction (without grouping it is 1). */
    double seq = 0, grp = 0, batch = 0, best = 0;
    for (int round = 0; round < 3 && best < want; round++) {
        bench_round(s, round, &seq, &grp, &batch);
        print_message("bench: 1 committer %.0f commits/s; 64 committers %.0f commits/s "
                      "(%.1fx; mean batch %.1f)\n", seq, grp, grp / seq, batch);
        assert_true(batch >= 4);
        if (grp / seq > best)
            best = grp / seq;
    }
    assert_true(best >= want);
    store_close(s);
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changelog, setup, teardown),
        cmocka_unit_test(test_hlc),
        cmocka_unit_test_setup_teardown(test_backup_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
