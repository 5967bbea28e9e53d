/*
 * audit/audit.c: the append-only, hash-chained audit log.
 *
 * Producers (event loops, worker threads, the admin threads) format a
 * record's fields into a queue, never waiting; one writer thread gives
 * each record the next sequence number and the SHA-256 of the previous
 * line, appends a batch of lines in pieces of at most AUDIT_CHUNK bytes,
 * fsyncs once per batch and rotates by size. With fsync on, a batch starts
 * at least AUDIT_SYNC_GAP_US after the previous fsync (records queue
 * meanwhile), so under load one fsync carries many records instead of the
 * disk's flush rate setting the CPU spent. A record reaches the file
 * within about one gap plus one fsync; a producer that must know it did
 * keeps its ticket and waits (audit_wait, or audit_durable_ticket after
 * the notify callback). When the disk refuses a write or an fsync, the
 * batch is kept and retried (100 ms, doubling to 1 s) from the byte where
 * it stopped, and records queue up in the bounded backlog. A line is
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
/* Largest single write(): a backlog goes down in pieces, so a disk with a
 * little room takes what fits and the rest follows as space returns. */
#define AUDIT_CHUNK 65536
/* Most records encoded for one write + fsync. */
#define AUDIT_BATCH 4096
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
    /* Not O_APPEND: the writer places every piece at its own offset, so a
     * region whose fsync failed can be written again where it belongs. */
    au->fd = open(au->path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
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
    snprintf(dst, n, "%s.%s.%012llu", au->path, stamp, (unsigned long long)au->durable_seq);
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
    au->synced_size = 0;
    pthread_mutex_lock(&au->mu);
    au->rotations++;
    pthread_mutex_unlock(&au->mu);
    kms_log(KMS_LOG_INFO, AUDIT_COMPONENT, "rotated to %s (chain continues at seq %llu)", dst,
            (unsigned long long)au->durable_seq + 1);
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

/* ------------------------------------------------------------- writer */
/*
 * The writer owns `out`: the encoded lines since the last point known to
 * be on disk (au->synced_size). They are written at au->file_size with
 * pwrite in pieces of at most AUDIT_CHUNK; a piece the disk refuses is
 * retried from the byte where it stopped (the file is always a prefix of
 * what it will be; a crash leaves at most one partial last line, which
 * audit_open cuts off). A failed fsync rewinds file_size to synced_size:
 * after a failed fsync the kernel may have dropped those pages, so they
 * are written again before the next fsync. Only then are the lines' items
 * counted durable. Its state (writer_t, audit_int.h) lives in the audit_t.
 */

static void set_failing(audit_t *au, const char *what, int e)
{
    bool first = false;
    pthread_mutex_lock(&au->mu);
    au->errors++;
    first = !au->failing;
    au->failing = true;
    snprintf(au->last_error, sizeof(au->last_error), "%s: %s", what, strerror(e));
    pthread_cond_broadcast(&au->cv_space); /* audit_wait() answers at once now */
    pthread_mutex_unlock(&au->mu);
    /* One line when the disk starts refusing, not one per retry. */
    if (first)
        kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "%s %s: %s (records are kept and retried)", what,
                au->path, strerror(e));
}

/* Encode items (carry first, then `batch`) into w->out, chaining each line,
 * up to the rotation point; what does not fit before it is left in
 * w->carry and w->rotate_due set. Items encoded are freed. */
static void encode_items(audit_t *au, writer_t *w, audit_item_t *batch)
{
    audit_item_t *it = w->carry ? w->carry : batch;
    if (w->carry) {
        audit_item_t *t = w->carry;
        while (t->next)
            t = t->next;
        t->next = batch;
        w->carry = NULL;
    }
    while (it) {
        size_t start = w->out.len;
        uint64_t seq = w->out_seq + 1;
        int err = kms_buf_append(&w->out, "{\"seq\":", 7);
        if (!err) err = append_dec(&w->out, seq);
        if (!err) err = kms_buf_append_byte(&w->out, ',');
        if (!err) err = kms_buf_append(&w->out, it->body, it->len);
        if (!err) err = kms_buf_append(&w->out, ",\"prev\":\"", 9);
        if (!err) err = kms_buf_append(&w->out, w->out_hash, strlen(w->out_hash));
        if (!err) err = kms_buf_append(&w->out, "\"}", 2);
        if (!err) err = kms_buf_append_byte(&w->out, '\n');
        if (err) {
            /* Out of memory: encode it with the next batch. */
            w->out.len = start;
            w->carry = it;
            return;
        }
        size_t llen = w->out.len - start; /* with the newline */
        if (au->rotate_size && au->file_size + start > 0 &&
            au->file_size + w->out.len > au->rotate_size) {
            /* This line goes into the next file. */
            w->out.len = start;
            w->carry = it;
            w->rotate_due = true;
            return;
        }
        hash_line((const char *)w->out.data + start, llen - 1, w->out_hash);
        w->out_seq = seq;
        w->out_items++;
        audit_item_t *next = it->next;
        free(it);
        it = next;
    }
}

/* Write what of w->out is not in the file yet, then fsync. 0 when all of
 * it is durable; KMS_ERR_IO (set_failing called) to retry later. */
static int write_out(audit_t *au, writer_t *w)
{
    while (au->file_size - au->synced_size < w->out.len) {
        size_t done = au->file_size - au->synced_size;
        size_t n = w->out.len - done;
        if (n > AUDIT_CHUNK)
            n = AUDIT_CHUNK;
        ssize_t k = pwrite(au->fd, w->out.data + done, n, (off_t)au->file_size);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            set_failing(au, "write", k < 0 ? errno : ENOSPC);
            return KMS_ERR_IO;
        }
        au->file_size += (size_t)k;
    }
    if (au->do_fsync && w->out.len > 0 && fdatasync(au->fd) != 0) {
        int e = errno;
        au->file_size = au->synced_size; /* written again before the next fsync */
        set_failing(au, "fsync", e);
        return KMS_ERR_IO;
    }
    return 0;
}

/* w->out is on disk: count its records durable and wake who waits. */
static void out_done(audit_t *au, writer_t *w)
{
    bool recovered;
    au->synced_size = au->file_size;
    pthread_mutex_lock(&au->mu);
    recovered = au->failing;
    au->failing = false;
    au->last_error[0] = '\0';
    au->queued -= (size_t)w->out_items;
    au->written += w->out_items;
    au->done_total += w->out_items;
    atomic_fetch_add(&au->durable_total, w->out_items);
    au->durable_seq = w->out_seq;
    memcpy(au->durable_hash, w->out_hash, sizeof(au->durable_hash));
    audit_notify_cb cb = au->notify;
    void *arg = au->notify_arg;
    pthread_cond_broadcast(&au->cv_space);
    pthread_mutex_unlock(&au->mu);
    if (recovered)
        kms_log(KMS_LOG_WARN, AUDIT_COMPONENT, "%s: writing again (chain at seq %llu)", au->path,
                (unsigned long long)w->out_seq);
    /* Copies leave only once the lines are on disk: a piece that is
     * written again is never exported twice. */
    audit_export_lines(au->exp, (const char *)w->out.data, w->out.len);
    w->out.len = 0;
    w->out_items = 0;
    w->backoff_ms = 0;
    if (cb)
        cb(arg);
}

/* Records that can never be written (closing while the disk refuses):
 * counted done so that flushers return, never durable. */
static void give_up(audit_t *au, writer_t *w)
{
    uint64_t lost = w->out_items;
    for (audit_item_t *it = w->carry; it;) {
        audit_item_t *next = it->next;
        free(it);
        it = next;
        lost++;
    }
    w->carry = NULL;
    pthread_mutex_lock(&au->mu);
    for (audit_item_t *it = au->head; it;) {
        audit_item_t *next = it->next;
        free(it);
        it = next;
        lost++;
    }
    au->head = au->tail = NULL;
    au->queued = 0;
    au->done_total = au->enqueued_total;
    pthread_cond_broadcast(&au->cv_space);
    pthread_mutex_unlock(&au->mu);
    w->out.len = 0;
    w->out_items = 0;
    kms_log(KMS_LOG_ERROR, AUDIT_COMPONENT, "%llu audit records could not be written to %s",
            (unsigned long long)lost, au->path);
}

static void *writer_main(void *arg)
{
    audit_t *au = arg;
    /* The writer's state lives in `au`, not on this thread's stack: its
     * buffer is reachable from the audit log for as long as it exists (a
     * leak checker that scans heap and globals finds it even while this
     * thread is being started or stopped). */
    writer_t *w = &au->w;
    *w = (writer_t){.out_seq = au->seq};
    memcpy(w->out_hash, au->last_hash, sizeof(w->out_hash));
    kms_buf_init(&w->out, SIZE_MAX);
    /* A background batch writer: SCHED_BATCH keeps its fair share of CPU
     * but its wake-ups (every batch) do not preempt the event loops, whose
     * latency is the clients'. Best effort. */
    struct sched_param sp = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    pthread_setname_np(pthread_self(), "kmsd-audit");
    uint64_t last_sync_ns = 0;
    unsigned stop_tries = 0;
    pthread_mutex_lock(&au->mu);
    for (;;) {
        while (!au->head && !w->out.len && !w->carry && !au->stopping) {
            au->writer_idle = true;
            pthread_cond_wait(&au->cv_work, &au->mu);
        }
        au->writer_idle = false;
        if (!au->head && !w->out.len && !w->carry && au->stopping)
            break;
        audit_item_t *batch = NULL;
        if (!w->out.len) {
            uint64_t since = kms_mono_ns() - last_sync_ns;
            if (au->do_fsync && !au->stopping && since < AUDIT_SYNC_GAP_US * 1000ULL) {
                /* Let the batch grow; producers do not signal a busy writer. */
                pthread_mutex_unlock(&au->mu);
                struct timespec gap = {0, (long)(AUDIT_SYNC_GAP_US * 1000ULL - since)};
                nanosleep(&gap, NULL);
                pthread_mutex_lock(&au->mu);
            }
            /* At most AUDIT_BATCH records per write: `out` stays small. */
            batch = au->head;
            audit_item_t *last = NULL;
            size_t n = 0;
            for (audit_item_t *it = batch; it && n < AUDIT_BATCH; it = it->next, n++)
                last = it;
            au->head = last ? last->next : au->head;
            if (!au->head)
                au->tail = NULL;
            if (last)
                last->next = NULL;
        }
        pthread_mutex_unlock(&au->mu);

        if (!w->out.len && w->rotate_due) {
            w->rotate_due = false;
            if (au->file_size > 0 && rotate(au) != 0) {
                pthread_mutex_lock(&au->mu);
                au->errors++; /* keep appending to the old file */
                pthread_mutex_unlock(&au->mu);
            }
        }
        if (!w->out.len)
            encode_items(au, w, batch);
        int rc = write_out(au, w);
        last_sync_ns = kms_mono_ns();
        if (rc == 0) {
            out_done(au, w);
            stop_tries = 0;
            pthread_mutex_lock(&au->mu);
            continue;
        }
        /* The disk refuses: wait (100 ms, doubling to 1 s, or until stop)
         * and go on from where the write stopped. */
        pthread_mutex_lock(&au->mu);
        if (au->stopping && ++stop_tries >= 3) {
            pthread_mutex_unlock(&au->mu);
            give_up(au, w);
            pthread_mutex_lock(&au->mu);
            break;
        }
        w->backoff_ms = w->backoff_ms ? (w->backoff_ms * 2 > 1000 ? 1000 : w->backoff_ms * 2) : 100;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(w->backoff_ms % 1000) * 1000000L;
        ts.tv_sec += w->backoff_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!au->stopping)
            pthread_cond_timedwait(&au->cv_work, &au->mu, &ts);
    }
    pthread_mutex_unlock(&au->mu);
    kms_buf_dispose(&w->out);
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
    atomic_init(&au->durable_total, 0);
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
    au->synced_size = au->file_size;
    au->durable_seq = au->seq;
    memcpy(au->durable_hash, au->last_hash, sizeof(au->durable_hash));
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

int audit_write_ticket(audit_t *au, const audit_rec_t *rec, uint64_t *ticket_out)
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
    uint64_t ticket = ++au->enqueued_total;
    if (au->writer_idle) {
        au->writer_idle = false; /* one wake-up is enough */
        pthread_cond_signal(&au->cv_work);
    }
    pthread_mutex_unlock(&au->mu);
    if (ticket_out)
        *ticket_out = ticket;
    return 0;
}

int audit_write(audit_t *au, const audit_rec_t *rec)
{
    return audit_write_ticket(au, rec, NULL);
}

uint64_t audit_durable_ticket(audit_t *au)
{
    return au ? atomic_load(&au->durable_total) : 0;
}

bool audit_backlog_full(audit_t *au)
{
    if (!au)
        return false;
    pthread_mutex_lock(&au->mu);
    bool full = au->queued >= au->max_queue;
    pthread_mutex_unlock(&au->mu);
    return full;
}

void audit_set_notify(audit_t *au, audit_notify_cb cb, void *arg)
{
    if (!au)
        return;
    pthread_mutex_lock(&au->mu);
    au->notify = cb;
    au->notify_arg = arg;
    pthread_mutex_unlock(&au->mu);
}

/* Wait on cv_space until `done(au, arg)` or the deadline; under au->mu. */
static int wait_until(audit_t *au, const struct timespec *deadline, uint64_t target,
                      bool durable, bool stop_on_failure)
{
    int wr = 0;
    for (;;) {
        uint64_t have = durable ? atomic_load(&au->durable_total) : au->done_total;
        if (have >= target)
            return 0;
        if (au->stopping && (!durable || au->done_total >= target))
            return KMS_ERR_STATE; /* closing, or given up */
        if (stop_on_failure && au->failing)
            return KMS_ERR_IO;
        if (wr == ETIMEDOUT)
            return au->stopping ? KMS_ERR_STATE : KMS_ERR_TIMEOUT;
        wr = pthread_cond_timedwait(&au->cv_space, &au->mu, deadline);
    }
}

static struct timespec deadline_in(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

int audit_wait(audit_t *au, uint64_t ticket, unsigned timeout_ms)
{
    if (!au)
        return KMS_ERR_INVAL;
    struct timespec ts = deadline_in(timeout_ms);
    pthread_mutex_lock(&au->mu);
    int rc = wait_until(au, &ts, ticket, true, true);
    pthread_mutex_unlock(&au->mu);
    return rc;
}

int audit_flush(audit_t *au)
{
    if (!au)
        return KMS_ERR_INVAL;
    /* At most 10 s: a stuck disk must not hang the caller forever. */
    struct timespec ts = deadline_in(10000);
    pthread_mutex_lock(&au->mu);
    int rc = wait_until(au, &ts, au->enqueued_total, false, false);
    pthread_mutex_unlock(&au->mu);
    return rc;
}

int audit_get_status(audit_t *au, audit_status_t *out)
{
    if (!au || !out)
        return KMS_ERR_INVAL;
    /* Flush first so the numbers describe what is on disk, but stop as
     * soon as the disk refuses writes (waiting would only run out the
     * timeout): then the numbers say what is on disk and what waits. */
    struct timespec ts = deadline_in(10000);
    pthread_mutex_lock(&au->mu);
    int rc = wait_until(au, &ts, au->enqueued_total, false, true);
    if (rc == KMS_ERR_IO)
        rc = 0;
    out->last_seq = au->durable_seq;
    memcpy(out->last_hash, au->durable_hash, sizeof(out->last_hash));
    out->written = au->written;
    out->rotations = au->rotations;
    out->errors = au->errors;
    out->backlog = au->queued;
    out->failing = au->failing;
    memcpy(out->last_error, au->last_error, sizeof(out->last_error));
    pthread_mutex_unlock(&au->mu);
    return rc;
}

void audit_get_counters(audit_t *au, audit_counters_t *out)
{
    memset(out, 0, sizeof *out);
    if (!au)
        return;
    pthread_mutex_lock(&au->mu);
    out->queued = au->queued;
    out->written = au->written;
    out->errors = au->errors;
    out->failing = au->failing;
    pthread_mutex_unlock(&au->mu);
    audit_export_counters(au->exp, out);
}
