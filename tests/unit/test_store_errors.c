/* tests/unit/test_store_errors.c: the store when the disk refuses writes.
 * A child process runs with RLIMIT_FSIZE just above the database's size
 * and commits until the file system says no: the failing commit must
 * return KMS_ERR_IO (not crash, not claim success), reads must keep
 * working, and after reopening without the limit every acknowledged write
 * is there, the file passes an integrity check and accepts writes again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/sqlcheck.h"
#include "tests/unit/util/tmpdir.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    return kms_test_tmpdir(g_dir, sizeof(g_dir), "storeerr", "kms.db", g_path, sizeof(g_path));
}

static int teardown(void **state)
{
    (void)state;
    return kms_test_rmdir(g_dir);
}

static uint8_t g_blob[6000];

static int put_big(store_t *s, const char *id)
{
    store_object_t o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    strcpy(o.tenant, "t");
    o.sealed.dsk_id = 1;
    o.sealed.gen = 1;
    o.sealed.blob = g_blob;
    o.sealed.len = sizeof(g_blob);
    store_attr_t at = {.name = "Name", .value = (const uint8_t *)id, .value_len = strlen(id),
                       .skey = id};
    o.attrs = &at;
    o.n_attrs = 1;
    store_write_t *w = store_write_new();
    int err = store_write_put(w, &o, STORE_VERSION_NEW);
    if (!err)
        err = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return err;
}

/* Child: commit until refused; report acknowledged ids, then the error. */
static void child(int fd, rlim_t limit)
{
    signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(10);
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    if (store_open(&o, &s) != 0)
        _exit(11);
    int err = 0;
    for (int i = 0; i < 5000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "full-%05d", i);
        err = put_big(s, id);
        if (err)
            break;
        dprintf(fd, "%s\n", id);
    }
    dprintf(fd, "ERR %d\n", err);
    /* reads still work */
    store_reader_t *r = NULL;
    int rerr = store_reader_new(s, &r);
    int64_t n = rerr ? rerr : store_count_objects(r);
    dprintf(fd, "COUNT %lld\n", (long long)n);
    store_reader_free(r);
    store_close(s);
    _exit(0);
}

static void test_disk_full(void **state)
{
    (void)state;
    memset(g_blob, 0xa5, sizeof(g_blob));
    store_options_t o = {.path = g_path};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    assert_int_equal(put_big(s, "before"), 0);
    store_close(s);
    struct stat sb;
    assert_int_equal(stat(g_path, &sb), 0);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        child(pfd[1], (rlim_t)sb.st_size + 256 * 1024);
    }
    close(pfd[1]);
    static char buf[1 << 20];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pfd[0]);
    buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    char *e = strstr(buf, "ERR ");
    assert_non_null(e);
    int err = atoi(e + 4);
    char *c = strstr(buf, "COUNT ");
    assert_non_null(c);
    long long counted = atoll(c + 6);
    print_message("disk full after some commits: error %d (%s), %lld objects readable\n", err,
                  kms_strerror(err), counted);
    assert_int_equal(err, KMS_ERR_IO);
    assert_true(counted >= 1);

    /* Reopen without the limit: every acknowledged id is present. */
    assert_int_equal(store_open(&o, &s), 0);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    int acked = 0;
    *e = '\0';
    for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok;
         tok = strtok_r(NULL, "\n", &save)) {
        store_object_t *g;
        assert_int_equal(store_get(r, a, tok, "t", &g), 0);
        assert_int_equal(g->sealed.len, sizeof(g_blob));
        assert_memory_equal(g->sealed.blob, g_blob, sizeof(g_blob));
        kms_arena_reset(a);
        acked++;
    }
    assert_true(acked > 0);
    assert_true(store_count_objects(r) >= acked + 1);
    /* and the store takes writes again */
    assert_int_equal(put_big(s, "after"), 0);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);

    assert_string_equal(test_sql_integrity(g_path), "ok");
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
