/*
 * audit/audit.c: the append-only, hash-chained audit log.
 *
 * Producers (worker threads, the admin thread) format a record's fields
 * into a queue; one writer thread gives each record the next sequence
 * number and the SHA-256 of the previous line, appends a batch of lines
 * with one write(), fsyncs once per batch and rotates by size. With fsync
 * on, a batch starts at least AUDIT_SYNC_GAP_US after the previous fsync
 * (records queue meanwhile), so under load one fsync carries many records
 * instead of the disk's flush rate setting the CPU spent. Producers never
 * wait for the disk: a record is queued when its operation is answered and
 * reaches the file within about one gap plus one fsync. A line is
 *   {"seq":N,"time":"...","kind":"kmip",...,"prev":"<64 hex>"}
 * and "prev" is always the last field, the hash of the previous line's
 * bytes without its newline. The first line ever chains to
 * AUDIT_GENESIS; after rotation the new file's first line chains to
 * the old file's last, so `kmsctl audit verify OLD NEW` checks across files.
 *
 * It deliberately never records key material or passwords (the record type
 * has no field for them), and does not verify: kmsctl/cmd_audit.c does,
 * independently of this code.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "audit/audit_int.h"

#define AUDIT_COMPONENT "audit"
#define AUDIT_MAX_LINE 4096
/* Least time from one fsync to the next batch (see the top comment). */
#define AUDIT_SYNC_GAP_US 10000

/* ------------------------------------------------------------ JSON text */
/* ,"key":"escaped value" (runs of plain characters are appended at once:
 * this is on the request path of every operation). */
static int json_str(kms_buf_t *b, const char *key, const char *s)
{
    int rc = kms_buf_append(b, ",\"", 2);
    if (!rc) rc = kms_buf_append(b, key, strlen(key));
    if (!rc) rc = kms_buf_append(b, "\":\"", 3);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && !rc) {
        const unsigned char *q = p;
        while (*q && *q != '"' && *q != '\\' && *q >= 0x20 && *q != 0x7f)
            q++;
        if (q > p) {
            rc = kms_buf_append(b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (*p == '"' || *p == '\\')
            rc = kms_buf_printf(b, "\\%c", *p);
        else
            rc = kms_buf_printf(b, "\\u%04x", *p);
        p++;
    }
    return rc ? rc : kms_buf_append_byte(b, '"');
}

/* SHA-256 fetched once (a legacy EVP_sha256() is fetched again per call). */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void hash_line(const char *line, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int mdlen = 0;
    pthread_once(&g_sha256_once, sha256_fetch);
    if (!EVP_Digest(line, len, md, &mdlen, g_sha256 ? g_sha256 : EVP_sha256(), NULL) ||
        mdlen != sizeof(md)) {
        /* Cannot happen with the default provider; never chain to garbage. */
        memset(out, 'x', 64);
        out[64] = '\0';
        return;
    }
    kms_hex_encode(md, sizeof(md), out);
}

/* ----------------------------------------------------------- file state */
/* Read the last complete line of an open file into the chain state. A
 * trailing partial line (crash mid-write) is cut off. */
static int load_tail(audit_t *au)
{
    struct stat st;
    if (fstat(au->fd, &st) != 0)
        return KMS_ERR_IO;
    size_t size = (size_t)st.st_size;
    au->file_size = size;
    if (size == 0)
        return 0;
    size_t want = size < 2 * AUDIT_MAX_LINE ? size : 2 * AUDIT_MAX_LINE;
    char *buf = malloc(want + 1);
    if (!buf)
        return KMS_ERR_NOMEM;
    int rc = 0;
    ssize_t n = pread(au->fd, buf, want, (off_t)(size - want));
    if (n != (ssize_t)want) {
        rc = KMS_ERR_IO;
        goto out;
    }
    buf[want] = '\0';
    size_t end = want;
    if (buf[end - 1] != '\n') {
        char *nl = memrchr(buf, '\n', end);
        size_t keep = nl ? (size_t)(nl - buf) + 1 : 0;
        if (!nl && want < size) {
            rc = KMS_ERR_IO; /* a single line longer than we ever write */
            goto out;
        }
        size_t newsize = size - (want - keep);
        kms_log(KMS_LOG_WARN, AUDIT_COMPONENT, "%s: cutting a partial last line (%zu bytes)",
                au->path, want - keep);
        if (ftruncate(au->fd, (off_t)newsize) != 0) {
            rc = KMS_ERR_IO;
            goto out;
        }
        au->file_size = newsize;
        end = keep;
        if (end == 0)
            goto out;
    }
    /* buf[0..end) ends with '\n'; find the start of the last line. */
    size_t ls = end - 1;
    while (ls > 0 && buf[ls - 1] != '\n')
        ls--;
    if (ls == 0 && want < size) {
        rc = KMS_ERR_IO;
        goto out;
    }
    size_t llen = end - 1 - ls;
    buf[end - 1] = '\0';
    const char *line = buf + ls;
    unsigned long long seq = 0;
    if (sscanf(line, "{\"seq\":%llu,", &seq) != 1) {
        kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "%s: last line is not an audit record", au->path);
        rc = KMS_ERR_IO;
        goto out;
    }
    au->seq = seq;
    hash_line(line, llen, au->last_hash);
out:
    free(buf);
    return rc;
}

static int open_current(audit_t *au)
{
    au->fd = open(au->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (au->fd < 0) {
        kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "cannot open %s: %s", au->path, strerror(errno));
        return KMS_ERR_IO;
    }
    return 0;
}

/* Rename the current file aside and start a new one. The chain state
 * (seq, last_hash) carries over untouched. */
static int rotate(audit_t *au)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    size_t n = strlen(au->path) + 64;
    char *dst = malloc(n);
    if (!dst)
        return KMS_ERR_NOMEM;
    /* The zero-padded sequence number of the last line makes the name
     * unique and keeps name order chronological. */
    snprintf(dst, n, "%s.%s.%012llu", au->path, stamp, (unsigned long long)au->seq);
    int rc = 0;
    if (au->do_fsync)
        (void)fsync(au->fd);
    if (rename(au->path, dst) != 0) {
        kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "rotate %s: %s", au->path, strerror(errno));
        rc = KMS_ERR_IO;
        goto out;
    }
    close(au->fd);
    au->fd = -1;
    rc = open_current(au);
    if (rc)
        goto out;
    au->file_size = 0;
    au->rotations++;
    kms_log(KMS_LOG_INFO, AUDIT_COMPONENT, "rotated to %s (chain continues at seq %llu)", dst,
            (unsigned long long)au->seq + 1);
out:
    free(dst);
    return rc;
}

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (28 bytes with the NUL); the calendar part
 * is formatted once per second per thread (this runs for every operation). */
static void utc_now(char *out, size_t n)
{
    static __thread time_t t_secs = -1;
    static __thread char t_base[24];
    int64_t us = kms_now_us();
    time_t secs = (time_t)(us / 1000000);
    if (secs != t_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        if (strftime(t_base, sizeof(t_base), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
            snprintf(t_base, sizeof(t_base), "1970-01-01T00:00:00");
        t_secs = secs;
    }
    if (n < 28) {
        if (n)
            out[0] = '\0';
        return;
    }
    memcpy(out, t_base, 19);
    out[19] = '.';
    unsigned frac = (unsigned)(us % 1000000);
    for (int i = 25; i >= 20; i--, frac /= 10)
        out[i] = (char)('0' + frac % 10);
    out[26] = 'Z';
    out[27] = '\0';
}

/* Decimal text of v, without printf (it runs for every record). */
static int append_dec(kms_buf_t *b, uint64_t v)
{
    char d[24];
    int i = (int)sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return kms_buf_append(b, d + i, sizeof(d) - (size_t)i);
}

/* Append n bytes, all or nothing: on failure the file is cut back to its
 * previous size so it never ends in a partial line. */
static int flush_bytes(audit_t *au, const uint8_t *p, size_t n)
{
    if (kms_write_all(au->fd, p, n) != 0) {
        kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "write %s: %s (will retry)", au->path,
                strerror(errno));
        if (ftruncate(au->fd, (off_t)au->file_size) != 0)
            kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "cannot cut %s back after a failed write",
                    au->path);
        au->errors++;
        return KMS_ERR_IO;
    }
    au->file_size += n;
    return 0;
}

/*
 * Write one batch: chain each record, rotate between lines when needed.
 * Returns NULL when every item is on disk, else the first item that is not:
 * the chain state is rolled back to just before it, so the caller can queue
 * it and the rest again and nothing is lost or chained to a missing line.
 */
static audit_item_t *write_batch(audit_t *au, audit_item_t *items)
{
    kms_buf_t out;
    kms_buf_init(&out, SIZE_MAX);
    /* Chain state before the first line in `out`, to roll back to. */
    audit_item_t *buf_first = items;
    uint64_t seq0 = au->seq, written0 = au->written;
    char hash0[65];
    memcpy(hash0, au->last_hash, sizeof(hash0));
    audit_item_t *failed = NULL;
    for (audit_item_t *it = items; it; it = it->next) {
        size_t start = out.len;
        uint64_t seq = au->seq + 1;
        int err = kms_buf_append(&out, "{\"seq\":", 7);
        if (!err) err = append_dec(&out, seq);
        if (!err) err = kms_buf_append_byte(&out, ',');
        if (!err) err = kms_buf_append(&out, it->body, it->len);
        if (!err) err = kms_buf_append(&out, ",\"prev\":\"", 9);
        if (!err) err = kms_buf_append(&out, au->last_hash, strlen(au->last_hash));
        if (!err) err = kms_buf_append(&out, "\"}", 2);
        if (err) {
            au->errors++; /* out of memory: this record cannot be written */
            out.len = start;
            continue;
        }
        size_t llen = out.len - start;
        if (au->rotate_size && au->file_size + start > 0 &&
            au->file_size + out.len + 1 > au->rotate_size) {
            /* Flush what precedes this line into the old file, then rotate. */
            if (start > 0) {
                if (flush_bytes(au, out.data, start) != 0) {
                    failed = buf_first;
                    break;
                }
                audit_export_lines(au->exp, (const char *)out.data, start);
                kms_buf_consume(&out, start);
                start = 0;
            }
            buf_first = it;
            seq0 = au->seq;
            written0 = au->written;
            memcpy(hash0, au->last_hash, sizeof(hash0));
            if (au->file_size > 0 && rotate(au) != 0)
                au->errors++; /* keep appending to the old file */
        }
        hash_line((const char *)out.data + start, llen, au->last_hash);
        if (kms_buf_append_byte(&out, '\n')) {
            au->errors++; /* out of memory: retry the whole buffer later */
            failed = buf_first;
            break;
        }
        au->seq = seq;
        au->written++;
    }
    if (!failed && out.len && flush_bytes(au, out.data, out.len) != 0)
        failed = buf_first;
    if (failed) {
        au->seq = seq0;
        au->written = written0;
        memcpy(au->last_hash, hash0, sizeof(hash0));
    } else {
        if (au->do_fsync && fsync(au->fd) != 0) {
            kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "fsync %s: %s", au->path, strerror(errno));
            au->errors++;
        }
        /* Copies leave only once the lines are in the file: a batch that
         * is retried is never exported twice. */
        audit_export_lines(au->exp, (const char *)out.data, out.len);
    }
    kms_buf_dispose(&out);
    return failed;
}

static void *writer_main(void *arg)
{
    audit_t *au = arg;
    /* A background batch writer: SCHED_BATCH keeps its fair share of CPU
     * but its wake-ups (every batch) do not preempt the event loops, whose
     * latency is the clients'. Best effort. */
    struct sched_param sp = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    pthread_setname_np(pthread_self(), "kmsd-audit");
    uint64_t last_sync_ns = 0;
    pthread_mutex_lock(&au->mu);
    for (;;) {
        while (!au->head && !au->stopping) {
            au->writer_idle = true;
            pthread_cond_wait(&au->cv_work, &au->mu);
        }
        au->writer_idle = false;
        if (!au->head && au->stopping)
            break;
        uint64_t since = kms_mono_ns() - last_sync_ns;
        if (au->do_fsync && !au->stopping && since < AUDIT_SYNC_GAP_US * 1000ULL) {
            /* Let the batch grow; producers do not signal a busy writer. */
            pthread_mutex_unlock(&au->mu);
            struct timespec gap = {0, (long)(AUDIT_SYNC_GAP_US * 1000ULL - since)};
            nanosleep(&gap, NULL);
            pthread_mutex_lock(&au->mu);
        }
        audit_item_t *batch = au->head;
        au->head = au->tail = NULL;
        au->queued = 0;
        pthread_cond_broadcast(&au->cv_space);
        pthread_mutex_unlock(&au->mu);

        audit_item_t *rest = write_batch(au, batch);
        last_sync_ns = kms_mono_ns();
        uint64_t n = 0;
        while (batch != rest) {
            audit_item_t *next = batch->next;
            free(batch);
            batch = next;
            n++;
        }

        pthread_mutex_lock(&au->mu);
        au->done_total += n;
        au->failing = rest != NULL;
        if (rest) {
            /* Put the unwritten records back in front, then wait a second
             * (or until stop) before retrying: a full disk must not spin. */
            audit_item_t *t = rest;
            size_t k = 1;
            while (t->next) {
                t = t->next;
                k++;
            }
            if (au->stopping) {
                kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "%zu audit records could not be written",
                        k + au->queued);
                while (rest) {
                    audit_item_t *next = rest->next;
                    free(rest);
                    rest = next;
                }
                au->done_total = au->enqueued_total;
                pthread_cond_broadcast(&au->cv_space);
                continue;
            }
            t->next = au->head;
            if (!au->head)
                au->tail = t;
            au->head = rest;
            au->queued += k;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&au->cv_work, &au->mu, &ts);
        }
        pthread_cond_broadcast(&au->cv_space);
    }
    pthread_mutex_unlock(&au->mu);
    return NULL;
}

/* --------------------------------------------------------------- public */
int audit_open(const audit_options_t *opt, audit_t **out)
{
    *out = NULL;
    if (!opt || !opt->path || !*opt->path)
        return KMS_ERR_INVAL;
    audit_t *au = calloc(1, sizeof(*au));
    if (!au)
        return KMS_ERR_NOMEM;
    int rc = KMS_ERR_NOMEM;
    au->fd = -1;
    au->path = strdup(opt->path);
    if (!au->path)
        goto fail;
    au->rotate_size = opt->rotate_size;
    au->do_fsync = opt->fsync;
    au->max_queue = opt->max_queue ? opt->max_queue : 65536;
    memcpy(au->last_hash, AUDIT_GENESIS, 65);
    pthread_mutex_init(&au->mu, NULL);
    pthread_cond_init(&au->cv_work, NULL);
    pthread_cond_init(&au->cv_space, NULL);
    rc = audit_export_new(opt, &au->exp);
    if (rc)
        goto fail;
    rc = open_current(au);
    if (rc)
        goto fail;
    rc = load_tail(au);
    if (rc)
        goto fail;
    if (pthread_create(&au->thread, NULL, writer_main, au) != 0) {
        rc = KMS_ERR_INTERNAL;
        goto fail;
    }
    au->started = true;
    kms_log(KMS_LOG_INFO, AUDIT_COMPONENT, "audit log %s (continuing at seq %llu)", au->path,
            (unsigned long long)au->seq + 1);
    *out = au;
    return 0;
fail:
    audit_close(au);
    return rc;
}

void audit_close(audit_t *au)
{
    if (!au)
        return;
    if (au->started) {
        pthread_mutex_lock(&au->mu);
        au->stopping = true;
        pthread_cond_broadcast(&au->cv_work);
        pthread_cond_broadcast(&au->cv_space);
        pthread_mutex_unlock(&au->mu);
        pthread_join(au->thread, NULL);
        pthread_mutex_destroy(&au->mu);
        pthread_cond_destroy(&au->cv_work);
        pthread_cond_destroy(&au->cv_space);
    }
    while (au->head) {
        audit_item_t *next = au->head->next;
        free(au->head);
        au->head = next;
    }
    if (au->fd >= 0) {
        if (au->do_fsync)
            (void)fsync(au->fd);
        close(au->fd);
    }
    audit_export_free(au->exp);
    free(au->path);
    free(au);
}

int audit_write(audit_t *au, const audit_rec_t *rec)
{
    if (!au || !rec)
        return KMS_ERR_INVAL;
    char tbuf[48];
    utc_now(tbuf, sizeof(tbuf));
    kms_buf_t b;
    kms_buf_init(&b, AUDIT_MAX_LINE - 128); /* room for seq and prev */
    int rc = kms_buf_append(&b, "\"time\":\"", 8);
    if (!rc) rc = kms_buf_append(&b, tbuf, strlen(tbuf));
    if (!rc) rc = kms_buf_append_byte(&b, '"');
    if (!rc) rc = json_str(&b, "kind", rec->kind);
    if (!rc) rc = json_str(&b, "identity", rec->identity);
    if (!rc) rc = json_str(&b, "tenant", rec->tenant);
    if (!rc) rc = json_str(&b, "address", rec->address);
    if (!rc) rc = json_str(&b, "operation", rec->operation);
    if (!rc) rc = json_str(&b, "object", rec->object_id);
    if (!rc) rc = json_str(&b, "result", rec->result);
    if (!rc) rc = json_str(&b, "reason", rec->reason);
    if (!rc && rec->batch_count >= 0) {
        rc = kms_buf_append(&b, ",\"batch\":", 9);
        if (!rc) rc = append_dec(&b, (uint64_t)rec->batch_count);
    }
    if (rc) {
        kms_buf_dispose(&b);
        return rc == KMS_ERR_LIMIT ? KMS_ERR_INVAL : rc;
    }
    audit_item_t *it = malloc(sizeof(*it) + b.len);
    if (!it) {
        kms_buf_dispose(&b);
        return KMS_ERR_NOMEM;
    }
    it->next = NULL;
    it->len = b.len;
    memcpy(it->body, b.data, b.len);
    kms_buf_dispose(&b);

    pthread_mutex_lock(&au->mu);
    while (au->queued >= au->max_queue && !au->stopping)
        pthread_cond_wait(&au->cv_space, &au->mu);
    if (au->stopping) {
        pthread_mutex_unlock(&au->mu);
        free(it);
        return KMS_ERR_STATE;
    }
    if (au->tail)
        au->tail->next = it;
    else
        au->head = it;
    au->tail = it;
    au->queued++;
    au->enqueued_total++;
    if (au->writer_idle) {
        au->writer_idle = false; /* one wake-up is enough */
        pthread_cond_signal(&au->cv_work);
    }
    pthread_mutex_unlock(&au->mu);
    return 0;
}

int audit_flush(audit_t *au)
{
    if (!au)
        return KMS_ERR_INVAL;
    /* At most 10 s: a stuck disk must not hang "kmsctl status" forever. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&au->mu);
    uint64_t target = au->enqueued_total;
    int wr = 0;
    while (au->done_total < target && !au->stopping && wr != ETIMEDOUT)
        wr = pthread_cond_timedwait(&au->cv_space, &au->mu, &ts);
    int rc = au->done_total >= target ? 0 : wr == ETIMEDOUT ? KMS_ERR_TIMEOUT : KMS_ERR_STATE;
    pthread_mutex_unlock(&au->mu);
    return rc;
}

int audit_get_status(audit_t *au, audit_status_t *out)
{
    if (!au || !out)
        return KMS_ERR_INVAL;
    /* Flush first so the numbers describe what is on disk. */
    int rc = audit_flush(au);
    pthread_mutex_lock(&au->mu);
    out->last_seq = au->seq;
    memcpy(out->last_hash, au->last_hash, sizeof(out->last_hash));
    out->written = au->written;
    out->rotations = au->rotations;
    out->errors = au->errors;
    pthread_mutex_unlock(&au->mu);
    return rc;
}

void audit_get_counters(audit_t *au, audit_counters_t *out)
{
    memset(out, 0, sizeof *out);
    if (!au)
        return;
    pthread_mutex_lock(&au->mu);
    out->queued = au->enqueued_total - au->done_total;
    out->written = au->written;
    out->errors = au->errors;
    out->failing = au->failing;
    pthread_mutex_unlock(&au->mu);
    audit_export_counters(au->exp, out);
}
