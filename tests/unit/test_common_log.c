/*
 * tests/unit/test_common_log.c: kms_log() writes exactly one line per call
 * to the real stderr (captured in a temporary file), whatever a peer put
 * in the values: a user name or certificate CN holding a newline cannot
 * forge a second log record (security review finding S2). Also the level
 * filter, and the JSON format (log.format: json): one object per line that
 * libjansson parses, with the stable members and a record's fields, control
 * characters escaped, a record cut at the line limit still a valid object.
 *
 * It does not test the timestamp format beyond its shape.
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
#include <jansson.h>

#include "common/kms.h"

/* Run kms_log (or kms_log_fields when fields is set) with stderr redirected
 * to a file; returns what was written. */
static char *capture_fields(enum kms_log_level lvl, const kms_log_field_t *fields, size_t n,
                            const char *fmt, const char *arg)
{
    char path[] = "/tmp/kms-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    if (fields)
        kms_log_fields(lvl, "test", fields, n, fmt, arg);
    else
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

static char *capture(enum kms_log_level lvl, const char *fmt, const char *arg)
{
    return capture_fields(lvl, NULL, 0, fmt, arg);
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

/* Parse one JSON log line: exactly one object, ending in one newline. */
static json_t *parse_line(const char *out)
{
    assert_int_equal(count_char(out, '\n'), 1);
    assert_true(out[strlen(out) - 1] == '\n');
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, out);
    assert_true(json_is_object(j));
    return j;
}

static void test_json_format(void **state)
{
    (void)state;
    kms_log_set_format(KMS_LOG_JSON);
    const char *evil = "bob\"}\n{\"level\":\"error\"\r\x1b\\";
    kms_log_field_t f[] = {
        {.key = "identity", .str = evil},
        {.key = "batch", .num = 3},
        {.key = "us", .num = -1},
    };
    char *out = capture_fields(KMS_LOG_WARN, f, KMS_ARRAY_SIZE(f), "refused: user '%s'", evil);
    json_t *j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "component")), "test");
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[10] == 'T' && ts[23] == 'Z');
    char want[256];
    snprintf(want, sizeof want, "refused: user '%s'", evil);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), want);
    assert_string_equal(json_string_value(json_object_get(j, "identity")), evil);
    assert_int_equal(json_integer_value(json_object_get(j, "batch")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "us")), -1);
    /* The stable members come first, in this order. */
    assert_true(strncmp(out, "{\"ts\":", 6) == 0);
    assert_true(strstr(out, "\"level\"") < strstr(out, "\"component\""));
    assert_true(strstr(out, "\"component\"") < strstr(out, "\"msg\""));
    json_decref(j);
    free(out);

    /* A record far over the line limit is cut, and still one object. */
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, '"', 9999);
    big[9999] = '\0';
    out = capture(KMS_LOG_ERROR, "%s", big);
    assert_true(strlen(out) <= 2049);
    j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    json_decref(j);
    free(out);
    free(big);

    /* Plain kms_log records are JSON too; text fields go back to text. */
    out = capture(KMS_LOG_INFO, "plain %s", "x");
    j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "plain x");
    json_decref(j);
    free(out);
    kms_log_set_format(KMS_LOG_TEXT);
    out = capture_fields(KMS_LOG_INFO, f, 1, "text %s", "line");
    assert_non_null(strstr(out, "INFO test: text line\n"));
    assert_null(strchr(out, '{'));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_record),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_json_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
