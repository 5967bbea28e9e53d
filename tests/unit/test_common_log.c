/*
 * tests/unit/test_common_log.c: kms_log() writes exactly one line per call
 * to the real stderr (captured in a temporary file), whatever a peer put
 * in the values: a user name or certificate CN holding a newline cannot
 * forge a second log record (security review finding S2). Also the level
 * filter.
 *
 * It does not test the timestamp format.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kms.h"

/* Run kms_log with stderr redirected to a file; returns what was written. */
static char *capture(enum kms_log_level lvl, const char *fmt, const char *arg)
{
    char path[] = "/tmp/kms-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    kms_log(lvl, "test", fmt, arg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len >= 0);
    char *out = calloc(1, (size_t)len + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_one_line_per_record(void **state)
{
    (void)state;
    const char *evil = "bob\n2026-01-01T00:00:00.000Z INFO auth: user 'root' authenticated\r\x1b[2J";
    char *out = capture(KMS_LOG_WARN, "refused: user '%s'", evil);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_true(out[strlen(out) - 1] == '\n');
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\x1b'));
    /* The value is still there, readable, on the one line. */
    assert_non_null(strstr(out, "refused: user 'bob?2026-01-01T00:00:00.000Z INFO auth"));
    free(out);
}

static void test_level_filter(void **state)
{
    (void)state;
    enum kms_log_level old = kms_log_get_level();
    kms_log_set_level(KMS_LOG_WARN);
    char *out = capture(KMS_LOG_DEBUG, "hidden %s", "x");
    assert_string_equal(out, "");
    free(out);
    out = capture(KMS_LOG_ERROR, "shown %s", "x");
    assert_non_null(strstr(out, "ERROR test: shown x\n"));
    free(out);
    kms_log_set_level(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_record),
        cmocka_unit_test(test_level_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
