/* tests/unit/test_store_faults.c: the store when its disk fails, through
 * the writer VFS's fault injection (store_fault_inject): EIO and ENOSPC on
 * a write and on an fsync. For each, on a real database file: the commit
 * that meets the fault fails with the error that names it
 * (KMS_ERR_NOSPC for ENOSPC, KMS_ERR_IO for EIO) and is never reported
 * committed; reads keep working meanwhile; the next commit after the fault
 * succeeds by itself (no reopen); and after closing and reopening, every
 * acknowledged write is there, no failed one is, and the file passes
 * integrity_check. Both the blocking and the asynchronous commit paths. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/sqlcheck.h"
#include "tests/unit/util/tmpdir.h"

static char g_dir[64];
static char g_path[128];
static uint8_t g_blob[3000];

static int setup(void **state)
{
    (void)state;
    memset(g_blob, 0x5a, sizeof(g_blob));
    return kms_test_tmpdir(g_dir, sizeof(g_dir), "storefault", "kms.db", g_path, sizeof(g_path));
}

static int teardown(void **state)
{
    (void)state;
    store_fault_inject(STORE_FAULT_WRITE, 0, 0);
    store_fault_inject(STORE_FAULT_SYNC, 0, 0);
    return kms_test_rmdir(g_dir);
}

static store_write_t *put(const char *id)
{
    store_object_t o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    strcpy(o.tenant, "t");
    o.sealed.dsk_id = 1;
    o.sealed.gen = 1;
    o.sealed.blob = g_blob;
    o.sealed.len = sizeof(g_blob);
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    return w;
}

static int commit_sync(store_t *s, const char *id)
{
    store_write_t *w = put(id);
    int rc = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return rc;
}

/* store_commit_async, waited for. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int result;
} waiter_t;

static void async_done(store_write_t *w, int result, void *arg)
{
    (void)w;
    waiter_t *wt = arg;
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    wt->result = result;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

static int commit_async(store_t *s, const char *id)
{
    waiter_t wt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    store_write_t *w = put(id);
    int rc = store_commit_async(s, w, async_done, &wt);
    if (rc == 0) {
        pthread_mutex_lock(&wt.mu);
        while (!wt.done)
            pthread_cond_wait(&wt.cv, &wt.mu);
        pthread_mutex_unlock(&wt.mu);
        rc = wt.result;
    }
    store_write_free(w);
    return rc;
}

static bool present(store_t *s, const char *id)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *g = NULL;
    int rc = store_get(r, a, id, "t", &g);
    assert_true(rc == 0 || rc == KMS_ERR_NOTFOUND);
    if (rc == 0)
        assert_memory_equal(g->sealed.blob, g_blob, sizeof(g_blob));
    kms_arena_free(a);
    store_reader_free(r);
    return rc == 0;
}

static void run_faults(int (*commit)(store_t *, const char *), const char *tag)
{
    static const struct {
        enum store_fault what;
        int err;
        int expect;
    } cases[] = {
        {STORE_FAULT_WRITE, EIO, KMS_ERR_IO},
        {STORE_FAULT_WRITE, ENOSPC, KMS_ERR_NOSPC},
        {STORE_FAULT_SYNC, EIO, KMS_ERR_IO},
        {STORE_FAULT_SYNC, ENOSPC, KMS_ERR_NOSPC},
    };
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    char id[64];
    char acked[16][64], failed[16][64];
    size_t n_acked = 0, n_failed = 0;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cases); i++) {
        snprintf(id, sizeof id, "%s-ok-before-%zu", tag, i);
        assert_int_equal(commit(s, id), 0);
        snprintf(acked[n_acked++], sizeof acked[0], "%s", id);

        store_fault_inject(cases[i].what, cases[i].err, 1);
        snprintf(id, sizeof id, "%s-fault-%zu", tag, i);
        int rc = commit(s, id);
        store_fault_inject(cases[i].what, 0, 0);
        print_message("%s: %s %s -> %s\n", tag,
                      cases[i].what == STORE_FAULT_WRITE ? "write" : "fsync",
                      cases[i].err == EIO ? "EIO" : "ENOSPC", kms_strerror(rc));
        assert_int_equal(rc, cases[i].expect);
        snprintf(failed[n_failed++], sizeof failed[0], "%s", id);
        /* reads keep working, and the failed write is not visible */
        assert_true(present(s, acked[0]));
        assert_false(present(s, id));

        /* the next commit works again by itself */
        snprintf(id, sizeof id, "%s-ok-after-%zu", tag, i);
        assert_int_equal(commit(s, id), 0);
        snprintf(acked[n_acked++], sizeof acked[0], "%s", id);
    }
    store_close(s);

    assert_string_equal(test_sql_integrity(g_path), "ok");
    assert_int_equal(store_open(&o, &s), 0);
    for (size_t i = 0; i < n_acked; i++)
        assert_true(present(s, acked[i]));
    for (size_t i = 0; i < n_failed; i++)
        assert_false(present(s, failed[i]));
    store_close(s);
}

static void test_faults_blocking_commit(void **state)
{
    (void)state;
    run_faults(commit_sync, "sync");
}

static void test_faults_async_commit(void **state)
{
    (void)state;
    run_faults(commit_async, "async");
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults_blocking_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_async_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
