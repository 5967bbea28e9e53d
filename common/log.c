/*
 * common/log.c: one-line log records to stderr.
 *
 * Each record is formatted into a local buffer and written with a single
 * write(2), so lines from different threads never interleave; control
 * characters in the message become '?', so one call is always exactly one
 * line. Callers must never pass key material; this module cannot tell.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/kms.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = KMS_LOG_INFO;

void kms_log_set_level(enum kms_log_level lvl) { atomic_store(&log_level, (int)lvl); }
enum kms_log_level kms_log_get_level(void) { return (enum kms_log_level)atomic_load(&log_level); }

int kms_log_level_parse(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int64_t kms_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t kms_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void kms_vlog(enum kms_log_level lvl, const char *component, const char *fmt, va_list ap)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (!KMS_LOG_ENABLED(lvl))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[lvl], component ? component : "kmsd");
    if (n < 0)
        return;
    int head = n;
    if ((size_t)n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    /* Values in messages come from peers (user names, certificate CNs,
     * object ids): a control character must not start a forged record. */
    for (int i = head; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void kms_log(enum kms_log_level lvl, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kms_vlog(lvl, component, fmt, ap);
    va_end(ap);
}
