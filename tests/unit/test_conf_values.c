/* tests/unit/test_conf_values.c: the scalar parsers of conf/: durations,
 * sizes and listen addresses, including overflow and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "conf/conf.h"

static void test_durations(void **state)
{
    (void)state;
    static const struct { const char *in; uint64_t ms; } ok[] = {
        {"10s", 10000}, {"500ms", 500}, {"2m", 120000}, {"1h", 3600000}, {"30", 30000},
        {"0", 0}, {"1.5s", 1500}, {"0.25m", 15000}, {"10 s", 10000}, {"0ms", 0}, {"1.5", 1500},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t ms = 12345;
        assert_int_equal(conf_parse_duration_ms(ok[i].in, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {
        "", "s", "-1s", "10x", "10 ", "1.s", ".5s", "10sec", "1e3", "10S",
        "99999999999999999999", "18446744073709551615h", "1.2345s", " 10s", "10ms5", "0.5ms",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 777;
        assert_int_equal(conf_parse_duration_ms(bad[i], &ms), KMS_ERR_CONFIG);
        assert_int_equal(ms, 777); /* untouched on error */
    }
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct { const char *in; uint64_t b; } ok[] = {
        {"1MiB", 1048576}, {"64KiB", 65536}, {"4096", 4096}, {"1GiB", 1ULL << 30},
        {"1MB", 1000000}, {"10kB", 10000}, {"2TiB", 2ULL << 40}, {"0.5KiB", 512},
        {"100B", 100}, {"16 MiB", 16ULL << 20},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t b = 1;
        assert_int_equal(conf_parse_size(ok[i].in, &b), 0);
        assert_int_equal(b, ok[i].b);
    }
    static const char *const bad[] = {
        "", "MiB", "1mib", "1 Mi", "-1", "1.5", "1.5B", "1QiB", "20000000TiB",
        "18446744073709551616", "64 ",
    };
    uint64_t b;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(conf_parse_size(bad[i], &b), KMS_ERR_CONFIG);
    /* Largest value that fits, and one past it. */
    assert_int_equal(conf_parse_size("18446744073709551615", &b), 0);
    assert_true(b == UINT64_MAX);
    assert_int_equal(conf_parse_size("16777216TiB", &b), KMS_ERR_CONFIG);
}

static void test_hostport(void **state)
{
    (void)state;
    char host[64];
    uint16_t port = 0;
    assert_int_equal(conf_parse_hostport("127.0.0.1:5696", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5696);
    assert_int_equal(conf_parse_hostport("[::]:5696", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::");
    assert_int_equal(conf_parse_hostport("[fe80::1%eth0]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 1);
    assert_int_equal(conf_parse_hostport("kms.example.com:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "kms.example.com");
    assert_int_equal(port, 65535);

    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:5696",
        "[::1]5696", "[::1", ":5696", "host:56a6", "[zz::1]:5696", "ho st:1",
        "127.0.0.1:123456", "[]:1", "a:-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(conf_parse_hostport(bad[i], host, sizeof(host), &port), KMS_ERR_CONFIG);
    /* Host longer than the caller's buffer is an error, not a truncation. */
    char small[4];
    assert_int_equal(conf_parse_hostport("abcd:1", small, sizeof(small), &port), KMS_ERR_CONFIG);
    assert_int_equal(conf_parse_hostport("abc:1", small, sizeof(small), &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
