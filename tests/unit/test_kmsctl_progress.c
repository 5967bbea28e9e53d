/* tests/unit/test_kmsctl_progress.c: kmsctl's progress bar (kmsctl/progress.c):
 * ETA rounding, amounts, the line fitted to every width from 1 to 200
 * columns, a zero and an unknown total, and the drawing itself into a real
 * file: at most ten draws a second, a cleared line at the end, nothing at
 * all when disabled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "kmsctl/progress.h"

static void eta(double s, const char *want)
{
    char out[24];
    kmsctl_progress_eta(s, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_eta_rounds_up(void **state)
{
    (void)state;
    eta(0.0, "0:00");
    eta(0.2, "0:01"); /* never "0:00" while work is left */
    eta(1.0, "0:01");
    eta(59.01, "1:00");
    eta(61.0, "1:01");
    eta(3599.5, "1:00:00");
    eta(3723.0, "1:02:03");
    eta(-1.0, "--:--");
    eta(0.0 / 0.0, "--:--");
    eta(100.0 * 3600, ">99h");
}

static void test_amounts(void **state)
{
    (void)state;
    char out[32];
    kmsctl_progress_amount(1234, "objects", out, sizeof out);
    assert_string_equal(out, "1234");
    kmsctl_progress_amount(512, "bytes", out, sizeof out);
    assert_string_equal(out, "512 B");
    kmsctl_progress_amount(1536, "bytes", out, sizeof out);
    assert_string_equal(out, "1.5 KiB");
    kmsctl_progress_amount(4 * 1024 * 1024, "bytes", out, sizeof out);
    assert_string_equal(out, "4.0 MiB");
    kmsctl_progress_amount(3LL << 30, "bytes", out, sizeof out);
    assert_string_equal(out, "3.0 GiB");
}

static void test_full_line(void **state)
{
    (void)state;
    char out[256];
    size_t n = kmsctl_progress_format(out, sizeof out, 80, "backup", "objects", 250, 1000, 50.0);
    assert_int_equal(n, strlen(out));
    assert_true(n <= 79);
    /* 750 left at 50/s: 15 s */
    assert_non_null(strstr(out, "250/1000 objects"));
    assert_non_null(strstr(out, "50/s"));
    assert_non_null(strstr(out, "ETA 0:15"));
    assert_memory_equal(out, "backup [", 8);
    /* a quarter of the bar filled */
    const char *b = strchr(out, '['), *e = strchr(out, ']');
    size_t width = (size_t)(e - b - 1), fill = 0;
    for (const char *c = b + 1; c < e; c++)
        fill += *c == '#';
    assert_int_equal(fill, width / 4);
}

static void test_every_width_fits(void **state)
{
    (void)state;
    char out[512];
    for (int w = 1; w <= 200; w++) {
        size_t n = kmsctl_progress_format(out, sizeof out, w, "re-encrypting", "objects", 123456,
                                          999999, 12345.6);
        assert_int_equal(n, strlen(out));
        assert_true(n <= (size_t)(w > 1 ? w - 1 : 0));
        if (w >= 40) /* the count survives whenever it can */
            assert_non_null(strstr(out, "123456/999999"));
        if (w >= 100) {
            assert_non_null(strchr(out, '['));
            assert_non_null(strstr(out, "ETA "));
        }
    }
    /* Narrow: the bar goes first, then rate, then ETA, the label last. */
    kmsctl_progress_format(out, sizeof out, 40, "backup", "objects", 1, 2, 1.0);
    assert_null(strchr(out, '['));
}

static void test_zero_and_unknown_total(void **state)
{
    (void)state;
    char out[256];
    kmsctl_progress_format(out, sizeof out, 80, "backup", "objects", 0, 0, 0.0);
    assert_non_null(strstr(out, "0/0 objects"));
    assert_non_null(strstr(out, "ETA 0:00"));
    assert_null(strchr(out, '.')); /* full bar */
    kmsctl_progress_format(out, sizeof out, 80, "waiting", "objects", 17, -1, 3.0);
    assert_string_equal(out, "waiting 17 objects  3/s");
    /* No rate yet: ETA unknown */
    kmsctl_progress_format(out, sizeof out, 80, "backup", "objects", 0, 10, 0.0);
    assert_non_null(strstr(out, "ETA --:--"));
    kmsctl_progress_format(out, sizeof out, 80, "verifying", "bytes", 1536, 4096, 2048.0);
    assert_non_null(strstr(out, "1.5 KiB/4.0 KiB"));
    assert_non_null(strstr(out, "2.0 KiB/s"));
    assert_non_null(strstr(out, "ETA 0:02"));
}

static char *slurp(FILE *f, size_t *len)
{
    fflush(f);
    long n = ftell(f);
    char *s = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    *len = (size_t)n;
    return s;
}

static void test_draws_limited_and_line_cleared(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    kmsctl_progress_t *p = kmsctl_progress_new(f, "backup", true);
    assert_non_null(p);
    struct timespec t0, t1, ms = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i <= 350; i++) {
        kmsctl_progress_update(p, NULL, "objects", i, 350);
        nanosleep(&ms, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    unsigned draws = kmsctl_progress_draws(p);
    assert_true(draws >= 2);
    /* One per 100 ms, the first, and the last count (350 of 350) however
     * soon it comes. */
    assert_true(draws <= (unsigned)(el * 10) + 2);
    kmsctl_progress_end(p);
    size_t len;
    char *s = slurp(f, &len);
    /* The last line (after the last '\r' but one) is blank and the text
     * ends with '\r': a clean line. */
    assert_true(len > 2 && s[len - 1] == '\r');
    const char *prev = s + len - 2;
    while (prev > s && *prev != '\r')
        prev--;
    for (const char *c = prev + 1; c < s + len - 1; c++)
        assert_int_equal(*c, ' ');
    assert_non_null(strstr(s, "/350 objects"));
    assert_null(strchr(s, '\n'));
    free(s);
    fclose(f);
}

static void test_disabled_writes_nothing(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    kmsctl_progress_t *p = kmsctl_progress_new(f, "backup", false);
    kmsctl_progress_update(p, "backing up", "objects", 5, 10);
    assert_int_equal(kmsctl_progress_draws(p), 0);
    kmsctl_progress_end(p);
    kmsctl_progress_update(NULL, NULL, "objects", 1, 2); /* NULL is a no-op */
    kmsctl_progress_end(NULL);
    fflush(f);
    assert_int_equal(ftell(f), 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eta_rounds_up),
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_full_line),
        cmocka_unit_test(test_every_width_fits),
        cmocka_unit_test(test_zero_and_unknown_total),
        cmocka_unit_test(test_draws_limited_and_line_cleared),
        cmocka_unit_test(test_disabled_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
