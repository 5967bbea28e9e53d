/*
 * audit/export.c: copies of the audit log for a log collector or a SIEM.
 *
 * After the writer thread has put a batch of records in the file, each
 * record (the exact line that was chained, seq and prev included, so the
 * receiver can verify the chain too) is copied to:
 *   - syslog, as an RFC 5424 message
 *       <PRI>1 TIMESTAMP HOST kmsd PID audit [kmsd@32473 seq="N"] BOM{...}
 *     over a local datagram socket ("local" = /dev/log, or "unix:/PATH"),
 *     UDP (RFC 5426: one datagram per record) or TCP (RFC 6587 octet
 *     counting: "LEN SP MSG"). 32473 is the example enterprise number of
 *     RFC 5612, the SD-ID a private one until kmsd has its own;
 *   - a JSON-lines file or FIFO (one record per line, appended).
 * Every send is non-blocking: a target that is down, full or slow loses
 * copies (counted as dropped, logged at most once a minute), never holds up
 * the log, whose file stays the record of truth. A TCP target or a FIFO
 * without a reader is retried at most once a second.
 *
 * It deliberately does not change, re-format or re-order records: the
 * hash chain is the file's (audit.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_int.h"

#define EXPORT_RETRY_MS 1000
#define EXPORT_WARN_MS 60000
/* RFC 5424 severity of an audit record: informational. */
#define SYSLOG_SEVERITY 6

enum exp_transport { EXP_DGRAM_UNIX, EXP_UDP, EXP_TCP };

struct audit_export {
    /* syslog */
    bool syslog_on;
    enum exp_transport transport;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int sock;                 /* -1 = not connected */
    int facility;
    char host[256];
    int pid;
    uint64_t syslog_retry_ms;
    /* JSON lines */
    char *json_path;
    int json_fd;
    uint64_t json_retry_ms;
    /* counters, read by other threads */
    atomic_uint_fast64_t syslog_sent, syslog_dropped, json_sent, json_dropped;
    uint64_t syslog_warn_ms, json_warn_ms;
};

static uint64_t mono_ms(void)
{
    return kms_mono_ns() / 1000000;
}

/* A drop is logged at most once a minute per exporter. */
static void note_drop(uint64_t *warned_ms, const char *what, const char *why)
{
    uint64_t now = mono_ms();
    if (*warned_ms && now - *warned_ms < EXPORT_WARN_MS)
        return;
    *warned_ms = now;
    kms_log(KMS_LOG_WARN, "audit", "%s: dropping audit copies: %s (the audit file keeps them)",
            what, why);
}

/* "HOST:PORT" or "[V6ADDR]:PORT" (conf/ checked the form already; audit/
 * depends on common/ only, so the split is redone here). */
static int split_hostport(const char *s, char *host, size_t hostlen, char port[8])
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || strlen(colon + 1) == 0 || strlen(colon + 1) > 5)
        return KMS_ERR_INVAL;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return KMS_ERR_INVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

static int parse_target(audit_export_t *x, const char *t)
{
    if (strcmp(t, "local") == 0 || strncmp(t, "unix:", 5) == 0) {
        const char *path = t[0] == 'l' ? "/dev/log" : t + 5;
        struct sockaddr_un *un = (struct sockaddr_un *)&x->addr;
        if (strlen(path) >= sizeof un->sun_path || path[0] != '/')
            return KMS_ERR_INVAL;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        x->addr_len = sizeof *un;
        x->transport = EXP_DGRAM_UNIX;
        return 0;
    }
    bool udp = strncmp(t, "udp:", 4) == 0;
    if (!udp && strncmp(t, "tcp:", 4) != 0)
        return KMS_ERR_INVAL;
    char host[256], port[8];
    if (split_hostport(t + 4, host, sizeof host, port) != 0)
        return KMS_ERR_INVAL;
    struct addrinfo hints = {.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
        kms_log(KMS_LOG_ERROR, "audit", "audit.syslog: cannot resolve %s", t + 4);
        return KMS_ERR_INVAL;
    }
    memcpy(&x->addr, res->ai_addr, res->ai_addrlen);
    x->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    x->transport = udp ? EXP_UDP : EXP_TCP;
    return 0;
}

int audit_export_new(const audit_options_t *opt, audit_export_t **out)
{
    *out = NULL;
    bool want_syslog = opt->syslog && opt->syslog[0];
    bool want_json = opt->json_lines && opt->json_lines[0];
    if (!want_syslog && !want_json)
        return 0;
    audit_export_t *x = calloc(1, sizeof *x);
    if (!x)
        return KMS_ERR_NOMEM;
    x->sock = -1;
    x->json_fd = -1;
    if (want_syslog) {
        if (parse_target(x, opt->syslog) != 0) {
            free(x);
            return KMS_ERR_INVAL;
        }
        x->syslog_on = true;
        x->facility = opt->syslog_facility > 0 && opt->syslog_facility < 24 ? opt->syslog_facility
                                                                            : 10;
        if (gethostname(x->host, sizeof x->host - 1) != 0 || !x->host[0])
            snprintf(x->host, sizeof x->host, "-");
        /* HOSTNAME is PRINTUSASCII without spaces (RFC 5424 6.2.4). */
        for (char *h = x->host; *h; h++)
            if (*h <= 32 || *h >= 127)
                *h = '-';
        x->pid = (int)getpid();
    }
    if (want_json && !(x->json_path = strdup(opt->json_lines))) {
        free(x);
        return KMS_ERR_NOMEM;
    }
    kms_log(KMS_LOG_INFO, "audit", "audit copies to%s%s%s%s", want_syslog ? " syslog " : "",
            want_syslog ? opt->syslog : "", want_json ? " json_lines " : "",
            want_json ? opt->json_lines : "");
    *out = x;
    return 0;
}

void audit_export_free(audit_export_t *x)
{
    if (!x)
        return;
    if (x->sock >= 0)
        close(x->sock);
    if (x->json_fd >= 0)
        close(x->json_fd);
    free(x->json_path);
    free(x);
}

/* A socket to the syslog target, or -1 (retried after EXPORT_RETRY_MS). */
static int syslog_socket(audit_export_t *x)
{
    if (x->sock >= 0)
        return x->sock;
    uint64_t now = mono_ms();
    if (x->syslog_retry_ms && now < x->syslog_retry_ms)
        return -1;
    x->syslog_retry_ms = now + EXPORT_RETRY_MS;
    int type = x->transport == EXP_TCP ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(x->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A non-blocking TCP connect completes in the background; sends fail
     * with EAGAIN until it has, and those copies are dropped. */
    if (connect(fd, (struct sockaddr *)&x->addr, x->addr_len) != 0 && errno != EINPROGRESS) {
        note_drop(&x->syslog_warn_ms, "audit.syslog", strerror(errno));
        close(fd);
        return -1;
    }
    x->sock = fd;
    return fd;
}

static void syslog_send(audit_export_t *x, const char *line, size_t len)
{
    char head[512], ts[64];
    unsigned long long seq = 0;
    (void)sscanf(line, "{\"seq\":%llu,", &seq);
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
    /* MSG is UTF-8 and says so with a BOM (RFC 5424 6.4). */
    int hn = snprintf(head, sizeof head, "<%d>1 %s %s kmsd %d audit [kmsd@32473 seq=\"%llu\"] \xEF\xBB\xBF",
                      x->facility * 8 + SYSLOG_SEVERITY, ts, x->host, x->pid, seq);
    if (hn <= 0 || (size_t)hn >= sizeof head)
        return;
    char frame[24] = "";
    int fn = 0;
    if (x->transport == EXP_TCP)
        fn = snprintf(frame, sizeof frame, "%zu ", (size_t)hn + len);
    struct iovec iov[3] = {{frame, (size_t)fn}, {head, (size_t)hn}, {(void *)line, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
    int fd = syslog_socket(x);
    ssize_t want = fn + hn + (ssize_t)len;
    ssize_t n = fd >= 0 ? sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
    if (n == want) {
        atomic_fetch_add(&x->syslog_sent, 1);
        return;
    }
    atomic_fetch_add(&x->syslog_dropped, 1);
    if (fd < 0)
        return;
    note_drop(&x->syslog_warn_ms, "audit.syslog", n < 0 ? strerror(errno) : "short write");
    /* A stream cut inside a frame cannot be resumed; a datagram socket
     * whose peer is gone (ECONNREFUSED) is re-made too. */
    if (x->transport == EXP_TCP || (n < 0 && errno != EAGAIN && errno != ENOBUFS)) {
        close(x->sock);
        x->sock = -1;
    }
}

static void json_send(audit_export_t *x, const char *line, size_t len)
{
    if (x->json_fd < 0) {
        uint64_t now = mono_ms();
        if (!x->json_retry_ms || now >= x->json_retry_ms) {
            x->json_retry_ms = now + EXPORT_RETRY_MS;
            /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
             * blocking the writer; retried later. */
            x->json_fd = open(x->json_path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC,
                              0640);
            if (x->json_fd < 0)
                note_drop(&x->json_warn_ms, "audit.json_lines", strerror(errno));
        }
    }
    if (x->json_fd >= 0) {
        struct iovec iov[2] = {{(void *)line, len}, {"\n", 1}};
        ssize_t n = writev(x->json_fd, iov, 2);
        if (n == (ssize_t)len + 1) {
            atomic_fetch_add(&x->json_sent, 1);
            return;
        }
        note_drop(&x->json_warn_ms, "audit.json_lines", n < 0 ? strerror(errno) : "short write");
        if (n < 0 && errno != EAGAIN) {
            close(x->json_fd);
            x->json_fd = -1;
        }
    }
    atomic_fetch_add(&x->json_dropped, 1);
}

void audit_export_lines(audit_export_t *x, const char *lines, size_t len)
{
    if (!x)
        return;
    while (len > 0) {
        const char *nl = memchr(lines, '\n', len);
        size_t n = nl ? (size_t)(nl - lines) : len;
        if (n > 0) {
            if (x->syslog_on)
                syslog_send(x, lines, n);
            if (x->json_path)
                json_send(x, lines, n);
        }
        if (!nl)
            break;
        lines += n + 1;
        len -= n + 1;
    }
}

void audit_export_counters(audit_export_t *x, audit_counters_t *out)
{
    if (!x)
        return;
    out->syslog_sent = atomic_load(&x->syslog_sent);
    out->syslog_dropped = atomic_load(&x->syslog_dropped);
    out->json_sent = atomic_load(&x->json_sent);
    out->json_dropped = atomic_load(&x->json_dropped);
}
