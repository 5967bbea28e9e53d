/*
 * tests/unit/test_audit_chain.c: the audit log writer (audit/audit.c) and
 * the independent verifier (kmsctl/cmd_audit.c, linked from libkmsctl)
 * against real files. Checks: a clean log verifies; an
 * edited, inserted or removed line is found with the right FILE:LINE;
 * reopening continues the chain; rotation by size keeps the chain across
 * files; many threads writing at once give one unbroken chain; no record
 * field can break the JSON line (quotes, newlines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit_int.h" /* the writer's counters */
#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

kmsctl_globals_t kmsctl_g = {.config_path = "/nonexistent", .json = 0};

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/kmsd-audit-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/audit.log", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    DIR *d = opendir(fx->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", fx->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_records(const char *path, size_t rotate, int n, int start)
{
    audit_options_t o = {.path = path, .rotate_size = rotate, .fsync = true};
    audit_t *au = NULL;
    assert_int_equal(audit_open(&o, &au), 0);
    for (int i = 0; i < n; i++) {
        char obj[32];
        snprintf(obj, sizeof(obj), "obj-%d", start + i);
        audit_rec_t r = {.kind = "kmip", .identity = "alice", .tenant = "acme",
                             .address = "127.0.0.1:4000", .operation = "Get", .object_id = obj,
                             .result = "Success", .reason = "", .batch_count = 1};
        assert_int_equal(audit_write(au, &r), 0);
    }
    assert_int_equal(audit_flush(au), 0);
    audit_close(au);
}

static int verify1(const char *path, kms_error_t *where, uint64_t *lines)
{
    char *files[1] = {(char *)path};
    return kmsctl_audit_verify_files(files, 1, false, lines, NULL, where);
}

/* Read all lines of a file into a NULL-terminated array. */
static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char **v = calloc(1024, sizeof(char *));
    size_t cap = 0, k = 0;
    char *line = NULL;
    while (getline(&line, &cap, f) >= 0 && k < 1023)
        v[k++] = strdup(line);
    free(line);
    fclose(f);
    *n = k;
    return v;
}

static void write_lines(const char *path, char **v, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        if (v[i])
            fputs(v[i], f);
    fclose(f);
}

static void free_lines(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void test_clean_log_verifies(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 20, 0);
    kms_error_t where;
    uint64_t lines = 0;
    assert_int_equal(verify1(fx->path, &where, &lines), 0);
    assert_int_equal(lines, 20);
    size_t n;
    char **v = read_lines(fx->path, &n);
    assert_int_equal(n, 20);
    assert_non_null(strstr(v[0], "{\"seq\":1,"));
    assert_non_null(strstr(v[0], "\"prev\":\"" AUDIT_GENESIS "\"}"));
    assert_non_null(strstr(v[19], "\"seq\":20,"));
    assert_non_null(strstr(v[5], "\"identity\":\"alice\""));
    assert_non_null(strstr(v[5], "\"object\":\"obj-5\""));
    free_lines(v, n);
}

static void test_edit_detected(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 10, 0);
    size_t n;
    char **v = read_lines(fx->path, &n);
    char *p = strstr(v[4], "obj-4"); /* line 5 */
    assert_non_null(p);
    p[4] = '9';
    write_lines(fx->path, v, n);
    free_lines(v, n);
    kms_error_t where;
    char expect[256];
    uint64_t lines = 0;
    assert_int_equal(verify1(fx->path, &where, &lines), KMS_ERR_PROTO);
    snprintf(expect, sizeof(expect), "%s:5: record edited", fx->path);
    assert_non_null(strstr(where.msg, expect));
    assert_int_equal(lines, 5); /* line 5 itself chains fine; line 6 exposes it */
}

static void test_delete_detected(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 10, 0);
    size_t n;
    char **v = read_lines(fx->path, &n);
    free(v[6]); /* remove line 7: line 8 moves to line 7 */
    v[6] = NULL;
    write_lines(fx->path, v, n);
    free_lines(v, n);
    kms_error_t where;
    char expect[256];
    assert_int_equal(verify1(fx->path, &where, NULL), KMS_ERR_PROTO);
    snprintf(expect, sizeof(expect), "%s:7: sequence 8 where 7", fx->path);
    assert_non_null(strstr(where.msg, expect));
}

static void test_delete_first_and_last_lines(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 5, 0);
    size_t n;
    char **v = read_lines(fx->path, &n);
    free(v[0]);
    v[0] = NULL;
    write_lines(fx->path, v, n);
    kms_error_t where;
    char expect[256];
    assert_int_equal(verify1(fx->path, &where, NULL), KMS_ERR_PROTO);
    snprintf(expect, sizeof(expect), "%s:1: sequence 2 where 1", fx->path);
    assert_non_null(strstr(where.msg, expect));
    /* --continue accepts a file that starts mid-chain. */
    char *files[1] = {fx->path};
    assert_int_equal(kmsctl_audit_verify_files(files, 1, true, NULL, NULL, &where), 0);
    free_lines(v, n);
}

static void test_insert_detected(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 6, 0);
    size_t n;
    char **v = read_lines(fx->path, &n);
    /* Insert a copy of line 3 after line 3 (a replayed record). */
    char **w = calloc(n + 1, sizeof(char *));
    for (size_t i = 0, j = 0; i < n; i++) {
        w[j++] = strdup(v[i]);
        if (i == 2)
            w[j++] = strdup(v[i]);
    }
    write_lines(fx->path, w, n + 1);
    kms_error_t where;
    char expect[256];
    assert_int_equal(verify1(fx->path, &where, NULL), KMS_ERR_PROTO);
    snprintf(expect, sizeof(expect), "%s:4: sequence 3 where 4", fx->path);
    assert_non_null(strstr(where.msg, expect));
    /* A forged line with the right seq but made-up content and prev. */
    free(w[3]);
    w[3] = strdup("{\"seq\":4,\"time\":\"x\",\"prev\":\"" AUDIT_GENESIS "\"}\n");
    write_lines(fx->path, w, n + 1);
    assert_int_equal(verify1(fx->path, &where, NULL), KMS_ERR_PROTO);
    snprintf(expect, sizeof(expect), "%s:3: record edited", fx->path);
    assert_non_null(strstr(where.msg, expect));
    free_lines(v, n);
    free_lines(w, n + 1);
}

static void test_reopen_continues_chain(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 0, 3, 0);
    write_records(fx->path, 0, 4, 3);
    kms_error_t where;
    uint64_t lines = 0;
    assert_int_equal(verify1(fx->path, &where, &lines), 0);
    assert_int_equal(lines, 7);
    /* A crash mid-line: the partial tail is cut on reopen and the chain holds. */
    FILE *f = fopen(fx->path, "a");
    fputs("{\"seq\":8,\"time\":\"partial", f);
    fclose(f);
    assert_int_equal(verify1(fx->path, &where, NULL), KMS_ERR_PROTO);
    assert_non_null(strstr(where.msg, ":8: incomplete last line"));
    write_records(fx->path, 0, 2, 7);
    assert_int_equal(verify1(fx->path, &where, &lines), 0);
    assert_int_equal(lines, 9);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_rotation_keeps_chain(void **state)
{
    fixture_t *fx = *state;
    write_records(fx->path, 1200, 25, 0); /* ~300 bytes a line: several files */
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    char *files[64];
    size_t nf = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nf < 63) {
        if (strncmp(e->d_name, "audit.log.", 10) != 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", fx->dir, e->d_name);
        files[nf++] = strdup(p);
    }
    closedir(d);
    assert_true(nf >= 3);
    /* Rotated names sort chronologically (time, then zero-padded seq). */
    qsort(files, nf, sizeof(char *), cmp_str);
    files[nf++] = strdup(fx->path);
    for (size_t i = 0; i < nf; i++) {
        FILE *f = fopen(files[i], "r");
        fseek(f, 0, SEEK_END);
        assert_true(ftell(f) <= 1200);
        fclose(f);
    }
    kms_error_t where;
    uint64_t lines = 0;
    assert_int_equal(kmsctl_audit_verify_files(files, nf, false, &lines, NULL, &where), 0);
    assert_int_equal(lines, 25);
    /* Leaving out a middle file breaks the chain at the next file's line 1. */
    char *gap[64];
    size_t ng = 0;
    for (size_t i = 0; i < nf; i++)
        if (i != 1)
            gap[ng++] = files[i];
    assert_int_equal(kmsctl_audit_verify_files(gap, ng, false, NULL, NULL, &where), KMS_ERR_PROTO);
    char expect[600];
    snprintf(expect, sizeof(expect), "%s:1: sequence", files[2]);
    assert_non_null(strstr(where.msg, expect));
    /* The newest file alone verifies only with --continue. */
    assert_int_equal(kmsctl_audit_verify_files(&files[nf - 1], 1, false, NULL, NULL, &where), KMS_ERR_PROTO);
    assert_int_equal(kmsctl_audit_verify_files(&files[nf - 1], 1, true, NULL, NULL, &where), 0);
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
}

typedef struct thr_arg {
    audit_t *au;
    int id;
} thr_arg_t;

static void *writer_thread(void *p)
{
    thr_arg_t *t = p;
    for (int i = 0; i < 200; i++) {
        char obj[32];
        snprintf(obj, sizeof(obj), "t%d-%d", t->id, i);
        audit_rec_t r = {.kind = "kmip", .identity = "bob", .operation = "Create",
                             .object_id = obj, .result = "Success", .batch_count = -1};
        if (audit_write(t->au, &r) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    fixture_t *fx = *state;
    audit_options_t o = {.path = fx->path, .fsync = false, .max_queue = 16};
    audit_t *au = NULL;
    assert_int_equal(audit_open(&o, &au), 0);
    pthread_t th[4];
    thr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg_t){au, i};
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    audit_status_t st;
    assert_int_equal(audit_get_status(au, &st), 0);
    assert_int_equal(st.last_seq, 800);
    assert_int_equal(st.errors, 0);
    audit_close(au);
    kms_error_t where;
    char last[65];
    uint64_t lines = 0;
    char *files[1] = {fx->path};
    assert_int_equal(kmsctl_audit_verify_files(files, 1, false, &lines, last, &where), 0);
    assert_int_equal(lines, 800);
    assert_string_equal(last, st.last_hash);
}

static void test_hostile_fields_stay_one_line(void **state)
{
    fixture_t *fx = *state;
    audit_options_t o = {.path = fx->path};
    audit_t *au = NULL;
    assert_int_equal(audit_open(&o, &au), 0);
    audit_rec_t r = {.kind = "kmip", .identity = "evil\",\"prev\":\"x\n{\"seq\":99",
                         .tenant = "t\\", .operation = "Get", .batch_count = -1};
    assert_int_equal(audit_write(au, &r), 0);
    audit_rec_t r2 = {.kind = "kmip", .identity = "ok", .batch_count = -1};
    assert_int_equal(audit_write(au, &r2), 0);
    audit_close(au);
    size_t n;
    char **v = read_lines(fx->path, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(v[0], "\"identity\":\"evil\\\",\\\"prev\\\":\\\"x\\u000a{\\\"seq\\\":99\""));
    free_lines(v, n);
    kms_error_t where;
    assert_int_equal(verify1(fx->path, &where, NULL), 0);
}

/* Read a whole file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A disk that refuses writes (RLIMIT_FSIZE stands in for ENOSPC): the
 * writer fills what room there is, keeps the rest and retries, and once
 * writes work again it goes on from the byte where it stopped: what was on
 * disk during the failure is a prefix of the final file, and the chain is
 * complete and unbroken. The backlog counts every record not on disk, and
 * a ticket's wait answers at once while the disk refuses. */
static void test_write_failure_keeps_records(void **state)
{
    fixture_t *fx = *state;
    signal(SIGXFSZ, SIG_IGN);
    audit_options_t o = {.path = fx->path, .fsync = false, .max_queue = 4};
    audit_t *au = NULL;
    assert_int_equal(audit_open(&o, &au), 0);
    audit_rec_t r = {.kind = "kmip", .identity = "carol", .operation = "Get",
                         .result = "Success", .batch_count = 1};
    assert_int_equal(audit_write(au, &r), 0);
    assert_int_equal(audit_write(au, &r), 0);
    assert_int_equal(audit_flush(au), 0);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    off_t base = st.st_size;

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)base + 300; /* room for about one more line */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    /* Nothing below may write to a file until the limit is restored. */
    int wrc = 0;
    uint64_t ticket = 0;
    for (int i = 0; i < 6; i++)
        wrc |= audit_write_ticket(au, &r, &ticket);
    usleep(600 * 1000);
    int waitrc = audit_wait(au, ticket, 5000); /* the disk refuses: at once */
    bool full = audit_backlog_full(au);
    audit_status_t mid_st;
    int strc = audit_get_status(au, &mid_st); /* must not wait for the disk */
    struct stat mid;
    int src = stat(fx->path, &mid);
    int fd = open(fx->path, O_RDONLY);
    char *prefix = fd >= 0 ? malloc((size_t)mid.st_size + 1) : NULL;
    ssize_t got = prefix ? read(fd, prefix, (size_t)mid.st_size) : -1;
    if (fd >= 0)
        close(fd);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

    assert_int_equal(wrc, 0);
    assert_int_equal(waitrc, KMS_ERR_IO);
    assert_true(full); /* 6 records wait, max_queue 4 */
    assert_int_equal(strc, 0);
    assert_true(mid_st.failing);
    assert_int_equal(mid_st.backlog, 6);
    assert_int_equal(mid_st.last_seq, 2); /* what is durable */
    assert_non_null(strstr(mid_st.last_error, "write"));
    assert_true(mid_st.errors > 0);
    assert_int_equal(src, 0);
    /* The writer used the room there was, up to the limit. */
    assert_int_equal(mid.st_size, base + 300);
    assert_int_equal(got, mid.st_size);

    assert_int_equal(audit_flush(au), 0); /* resumed within a second */
    assert_int_equal(audit_wait(au, ticket, 5000), 0);
    assert_false(audit_backlog_full(au));
    audit_close(au);
    size_t flen = 0;
    char *final = slurp(fx->path, &flen);
    assert_true(flen > (size_t)mid.st_size);
    assert_memory_equal(final, prefix, (size_t)mid.st_size); /* nothing rewritten */
    free(final);
    free(prefix);
    kms_error_t where;
    uint64_t lines = 0;
    assert_int_equal(verify1(fx->path, &where, &lines), 0);
    assert_int_equal(lines, 8);
}

/* Tickets: a record is durable once audit_durable_ticket() reaches its
 * ticket, and the notify callback says when that moves. */
static atomic_int g_notified;
static void count_notify(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_notified, 1);
}

static void test_tickets_and_notify(void **state)
{
    fixture_t *fx = *state;
    audit_options_t o = {.path = fx->path, .fsync = true};
    audit_t *au = NULL;
    assert_int_equal(audit_open(&o, &au), 0);
    audit_set_notify(au, count_notify, NULL);
    audit_rec_t r = {.kind = "kmip", .identity = "dave", .operation = "Create",
                     .result = "Success", .batch_count = 1};
    uint64_t t1 = 0, t2 = 0;
    assert_int_equal(audit_write_ticket(au, &r, &t1), 0);
    assert_int_equal(audit_write_ticket(au, &r, &t2), 0);
    assert_int_equal(t2, t1 + 1);
    assert_int_equal(audit_wait(au, t2, 5000), 0);
    assert_true(audit_durable_ticket(au) >= t2);
    for (int i = 0; i < 100 && atomic_load(&g_notified) == 0; i++)
        usleep(10 * 1000); /* called right after the waiters are woken */
    assert_true(atomic_load(&g_notified) >= 1);
    /* Both lines are in the file when the wait returns. */
    size_t n = 0;
    char **v = read_lines(fx->path, &n);
    assert_int_equal(n, 2);
    free_lines(v, n);
    audit_close(au);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_log_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_first_and_last_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_fields_stay_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_keeps_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tickets_and_notify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
