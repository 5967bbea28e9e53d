/*
 * common/log.c: one-line log records to stderr, as text or as JSON.
 *
 * Each record is formatted into a local buffer and written with a single
 * write(2), so lines from different threads never interleave. In the text
 * format control characters in the message become '?'; in the JSON format
 * they are escaped (\u00XX), so one call is always exactly one line and a
 * value from a peer (a user name, a certificate CN) cannot forge a second
 * record. A record longer than the buffer is cut, and a cut JSON record is
 * still closed as a valid object. Callers must never pass key material;
 * this module cannot tell. It deliberately knows no destination other
 * than stderr (journald or the container runtime collects it).
 */
#define _POSIX_C_SOURCE 200809L
#include "common/kms.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One record, at most; a longer one is cut. */
#define LOG_LINE_MAX 2048
/* Room kept at the end of a JSON record for the fields' closing bytes. */
#define LOG_JSON_TAIL 4

static _Atomic int log_level = KMS_LOG_INFO;
static _Atomic int log_format = KMS_LOG_TEXT;

void kms_log_set_level(enum kms_log_level lvl) { atomic_store(&log_level, (int)lvl); }
enum kms_log_level kms_log_get_level(void) { return (enum kms_log_level)atomic_load(&log_level); }
void kms_log_set_format(enum kms_log_format f) { atomic_store(&log_format, (int)f); }
enum kms_log_format kms_log_get_format(void) { return (enum kms_log_format)atomic_load(&log_format); }

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

/* A bounded line: appends stop at `max` (the rest is cut). */
typedef struct line {
    char *p;
    size_t len, max;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (n > l->max - l->len)
        n = l->max - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* s as the inside of a JSON string: '"', '\' and control characters
 * escaped; an escape is never cut in half. */
static void put_json_text(line_t *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];
        size_t k = 0;
        if (ch == '"' || ch == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            k = 6;
        } else {
            esc[k++] = (char)ch;
        }
        if (k > l->max - l->len)
            break;
        put(l, esc, k);
    }
}

/* ,"key":"value" -- whole, or with the value cut, or (no room for the
 * key) not at all: the record stays valid JSON when it is cut. */
static void put_json_str(line_t *l, const char *key, const char *val, size_t n)
{
    size_t klen = strlen(key);
    if (l->max - l->len < klen + 7)
        return;
    put(l, ",\"", 2);
    put(l, key, klen);
    put(l, "\":\"", 3);
    l->max--; /* room for the closing quote */
    put_json_text(l, val, n);
    l->max++;
    put(l, "\"", 1);
}

static void vrecord(enum kms_log_level lvl, const char *component, const kms_log_field_t *fields,
                    size_t n_fields, const char *fmt, va_list ap)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!KMS_LOG_ENABLED(lvl))
        return;
    char msg[LOG_LINE_MAX], ts[96], out[LOG_LINE_MAX + 8];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    const char *comp = component ? component : "kmsd";
    line_t l = {out, 0, LOG_LINE_MAX - 1};

    if (kms_log_get_format() == KMS_LOG_JSON) {
        l.max -= LOG_JSON_TAIL; /* "}" is always written */
        put(&l, "{\"ts\":\"", 7);
        puts_(&l, ts);
        put(&l, "\",\"level\":\"", 11);
        puts_(&l, names[lvl]);
        put(&l, "\"", 1);
        put_json_str(&l, "component", comp, strlen(comp));
        put_json_str(&l, "msg", msg, mlen);
        for (size_t i = 0; i < n_fields; i++) {
            const kms_log_field_t *f = &fields[i];
            if (f->str) {
                put_json_str(&l, f->key, f->str, strlen(f->str));
            } else {
                char num[40];
                int k = snprintf(num, sizeof(num), ",\"%.16s\":%lld", f->key, (long long)f->num);
                if (k > 0 && (size_t)k < sizeof(num) && (size_t)k <= l.max - l.len)
                    put(&l, num, (size_t)k);
            }
        }
        l.max += LOG_JSON_TAIL;
        put(&l, "}", 1);
    } else {
        put(&l, ts, strlen(ts));
        put(&l, " ", 1);
        puts_(&l, tags[lvl]);
        put(&l, " ", 1);
        puts_(&l, comp);
        put(&l, ": ", 2);
        size_t head = l.len;
        put(&l, msg, mlen);
        /* Values in messages come from peers (user names, certificate
         * CNs, object ids): a control character must not start a forged
         * record. */
        for (size_t i = head; i < l.len; i++)
            if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
                out[i] = '?';
    }
    out[l.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, out, l.len);
    (void)w;
}

void kms_vlog(enum kms_log_level lvl, const char *component, const char *fmt, va_list ap)
{
    vrecord(lvl, component, NULL, 0, fmt, ap);
}

void kms_log(enum kms_log_level lvl, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(lvl, component, NULL, 0, fmt, ap);
    va_end(ap);
}

void kms_log_fields(enum kms_log_level lvl, const char *component, const kms_log_field_t *fields,
                    size_t n_fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(lvl, component, fields, n_fields, fmt, ap);
    va_end(ap);
}
