/*
 * keys/reencrypt.c: moves every sealed object onto the current
 * data-store key (DSK), on one background thread.
 *
 * A pass counts the objects whose dsk_id is neither 0 (no key material) nor
 * the current DSK, then walks them in id order in batches: load, open the
 * blob with its old DSK, seal it with the current DSK as the next seal
 * generation (hsm_row_reseal), and store_write_put with expect_version (one commit per
 * batch; on KMS_ERR_CONFLICT, because a client changed an object meanwhile,
 * the batch is redone object by object, re-reading each). KMIP requests are
 * served throughout: objects are only ever replaced by complete, newer
 * versions. A crash loses nothing: objects carry the id of the DSK that
 * seals them, and start-up runs a pass, which finds what is left.
 *
 * A blob that does not open (tampered, moved to another row) is counted as
 * failed and left as it is; its old DSK then stays needed. Old DSKs are
 * never removed (they stay wrapped in store meta and are re-wrapped by each
 * master rotation).
 *
 * Tuning (environment, read at start): KMSD_REENCRYPT_BATCH (objects per
 * commit, default 64) and KMSD_REENCRYPT_THROTTLE_MS (pause after each
 * batch, default 0; tests use it so that a kill lands mid-way).
 *
 * States (kmsctl rotate status): idle (nothing to move), starting,
 * counting, running, done, stopped (kmsd stopping, or a store error).
 *
 * It deliberately does not generate DSKs (keys/rotate.c does).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys/keys_int.h"

#define SCAN_CHUNK 1000
#define CONFLICT_RETRIES 8
#define MAX_WARNINGS 10

static struct {
    const keys_options_t *k;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop, kick;
    size_t batch;
    unsigned throttle_ms;
    /* progress, under mu */
    const char *state;
    uint32_t target;
    int64_t total, done, failed, started_us, finished_us;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .state = "idle"};

static bool stopping(void)
{
    pthread_mutex_lock(&g.mu);
    bool s = g.stop;
    pthread_mutex_unlock(&g.mu);
    return s;
}

static void set_state(const char *st)
{
    pthread_mutex_lock(&g.mu);
    g.state = st;
    if (strcmp(st, "done") == 0 || strcmp(st, "stopped") == 0)
        g.finished_us = kms_now_us();
    pthread_mutex_unlock(&g.mu);
}

/* ------------------------------------------------------------ scanning */
typedef struct scan_ctx {
    uint32_t target;
    int64_t count;       /* counting pass */
    char (*ids)[64];     /* work pass: collected ids */
    size_t n, cap;
    char last[64];       /* last id seen */
    size_t seen;
} scan_ctx_t;

static int scan_cb(const char *id, uint32_t dsk_id, void *arg)
{
    scan_ctx_t *c = arg;
    snprintf(c->last, sizeof c->last, "%s", id);
    c->seen++;
    if (dsk_id == 0 || dsk_id == c->target)
        return 0;
    c->count++;
    if (c->ids && c->n < c->cap)
        snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
    return 0;
}

/* ------------------------------------------------------------ re-sealing */
/* Load `id` and queue its re-sealed version into w. 1 = nothing to do
 * (gone, no blob, already current), 0 = queued, <0 error. */
static int prepare(store_reader_t *rd, kms_arena_t *a, hsm_keyring_t *kr, uint32_t target,
                   const char *id, store_write_t *w)
{
    store_object_t *obj = NULL;
    int rc = store_get(rd, a, id, NULL, &obj);
    if (rc == KMS_ERR_NOTFOUND)
        return 1;
    if (rc)
        return rc;
    if (!obj->sealed.blob || obj->sealed.dsk_id == 0 || obj->sealed.dsk_id == target)
        return 1;
    /* Under the current DSK, as the row's next seal generation. */
    if ((rc = hsm_row_reseal(kr, obj->tenant, obj->id, &obj->sealed, a, &obj->sealed)) != 0)
        return rc;
    return store_write_put(w, obj, obj->version);
}

static void note_failure(const char *id, int rc)
{
    pthread_mutex_lock(&g.mu);
    int64_t f = ++g.failed;
    pthread_mutex_unlock(&g.mu);
    if (f <= MAX_WARNINGS)
        kms_log(KMS_LOG_WARN, KEYS_LOG, "re-encrypt: object %s: %s; left under its old key%s", id,
                kms_strerror(rc), f == MAX_WARNINGS ? " (further failures not logged)" : "");
}

static void add_done(int64_t n)
{
    pthread_mutex_lock(&g.mu);
    g.done += n;
    pthread_mutex_unlock(&g.mu);
}

/* One object alone, retrying version conflicts with fresh reads. */
static void one_by_one(store_reader_t *rd, hsm_keyring_t *kr, uint32_t target, const char *id)
{
    int rc = 0;
    for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
        kms_arena_t *a = kms_arena_new(0);
        store_write_t *w = store_write_new();
        rc = a && w ? prepare(rd, a, kr, target, id, w) : KMS_ERR_NOMEM;
        if (rc == 0)
            rc = store_commit(g.k->store, w, NULL, 0);
        store_write_free(w);
        kms_arena_free(a);
        if (rc != KMS_ERR_CONFLICT)
            break;
    }
    if (rc < 0)
        note_failure(id, rc);
    else
        add_done(1);
}

static void do_batch(store_reader_t *rd, hsm_keyring_t *kr, uint32_t target, char (*ids)[64],
                     size_t n)
{
    kms_arena_t *a = kms_arena_new(0);
    store_write_t *w = store_write_new();
    int rc = a && w ? 0 : KMS_ERR_NOMEM;
    size_t skipped = 0;
    bool *bad = calloc(n ? n : 1, sizeof *bad);
    if (!bad)
        rc = KMS_ERR_NOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int r = prepare(rd, a, kr, target, ids[i], w);
        if (r == 1) {
            skipped++;
        } else if (r == KMS_ERR_CRYPTO || r == KMS_ERR_NOTFOUND) {
            bad[i] = true; /* the blob's fault: report it, keep going */
            note_failure(ids[i], r);
        } else if (r < 0) {
            rc = r;
        }
    }
    if (rc == 0)
        rc = store_commit(g.k->store, w, NULL, 0);
    store_write_free(w);
    kms_arena_free(a);
    if (rc == 0) {
        size_t nbad = 0;
        for (size_t i = 0; i < n; i++)
            nbad += bad[i];
        add_done((int64_t)(n - nbad));
    } else {
        /* A client changed one of them (or a transient failure): each alone. */
        for (size_t i = 0; i < n && !stopping(); i++)
            if (!bad || !bad[i])
                one_by_one(rd, kr, target, ids[i]);
    }
    free(bad);
    (void)skipped;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One pass. Returns false when it was interrupted (stop, or a newer DSK). */
static bool run_pass(void)
{
    const keys_options_t *k = g.k;
    hsm_keyring_t *kr = k->keyring;
    uint32_t target = hsm_keyring_current(kr);
    store_reader_t *rd = NULL;
    scan_ctx_t sc = {.target = target};
    bool complete = false;
    int rc = store_reader_new(k->store, &rd);
    if (rc) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "re-encrypt: no store reader: %s", kms_strerror(rc));
        return true;
    }
    pthread_mutex_lock(&g.mu);
    g.state = "counting";
    g.target = target;
    g.total = g.done = g.failed = 0;
    g.started_us = kms_now_us();
    g.finished_us = 0;
    pthread_mutex_unlock(&g.mu);

    /* Count (ids only, in chunks, so no long read transaction). */
    do {
        sc.seen = 0;
        char after[64];
        snprintf(after, sizeof after, "%s", sc.last);
        if ((rc = store_scan(rd, after, SCAN_CHUNK, scan_cb, &sc)) != 0)
            goto out;
    } while (sc.seen == SCAN_CHUNK && !stopping());
    if (sc.count == 0) {
        complete = true;
        set_state("idle");
        goto out;
    }
    pthread_mutex_lock(&g.mu);
    g.total = sc.count;
    g.state = "running";
    pthread_mutex_unlock(&g.mu);
    kms_log(KMS_LOG_INFO, KEYS_LOG, "re-encrypt: %" PRId64 " objects to move onto data-store key %u",
            sc.count, target);

    /* Work: batches of ids that still need it. */
    scan_ctx_t wc = {.target = target, .cap = g.batch};
    wc.ids = calloc(g.batch, sizeof *wc.ids);
    if (!wc.ids) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (stopping() || hsm_keyring_current(kr) != target)
            break;
        wc.n = 0;
        wc.seen = 0;
        bool ended = false;
        /* Scan until the batch is full or the table ends; never more rows
         * than still fit, so no id is skipped. */
        while (wc.n < wc.cap) {
            size_t before = wc.seen, want = wc.cap - wc.n;
            char from[64];
            snprintf(from, sizeof from, "%s", wc.last);
            rc = store_scan(rd, from, want, scan_cb, &wc);
            if (rc)
                break;
            if (wc.seen - before < want) {
                ended = true;
                break;
            }
        }
        if (rc)
            break;
        if (wc.n)
            do_batch(rd, kr, target, wc.ids, wc.n);
        if (ended) {
            complete = true;
            break;
        }
        if (g.throttle_ms)
            sleep_ms(g.throttle_ms);
    }
    free(wc.ids);
out:
    if (rc)
        kms_log(KMS_LOG_ERROR, KEYS_LOG,
                "re-encrypt: %s; stopped (resumes at the next start-up or store-key rotation)",
                kms_strerror(rc));
    store_reader_free(rd);
    if (sc.count && complete) {
        pthread_mutex_lock(&g.mu);
        int64_t done = g.done, failed = g.failed;
        pthread_mutex_unlock(&g.mu);
        set_state("done");
        if (failed)
            kms_log(KMS_LOG_WARN, KEYS_LOG,
                    "re-encrypt: done: %" PRId64 " objects moved onto data-store key %u, %" PRId64
                    " could not be opened (left under their old key)",
                    done, target, failed);
        else
            kms_log(KMS_LOG_INFO, KEYS_LOG,
                    "re-encrypt: done: %" PRId64 " objects moved onto data-store key %u", done,
                    target);
    } else if (!complete) {
        /* interrupted by stop or an error ("stopped"), or by a newer DSK
         * (the caller starts over: still "running") */
        set_state(stopping() || rc ? "stopped" : "running");
    }
    return complete || rc != 0;
}

static void *thread_main(void *arg)
{
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "kmsd-reencrypt");
    for (;;) {
        pthread_mutex_lock(&g.mu);
        while (!g.stop && !g.kick)
            pthread_cond_wait(&g.cv, &g.mu);
        bool stop = g.stop;
        g.kick = false;
        pthread_mutex_unlock(&g.mu);
        if (stop)
            break;
        if (!run_pass() && !stopping()) {
            /* A newer DSK became current mid-pass: start over onto it. */
            keys_reencrypt_kick();
        }
    }
    return NULL;
}

static size_t env_size(const char *name, size_t def, size_t lo, size_t hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || x < lo || x > hi) {
        kms_log(KMS_LOG_WARN, KEYS_LOG, "%s=%s ignored (allowed %zu..%zu)", name, v, lo, hi);
        return def;
    }
    return (size_t)x;
}

int keys_reencrypt_start(const keys_options_t *k)
{
    g.k = k;
    g.batch = env_size("KMSD_REENCRYPT_BATCH", 64, 1, 4096);
    g.throttle_ms = (unsigned)env_size("KMSD_REENCRYPT_THROTTLE_MS", 0, 0, 60000);
    g.stop = false;
    g.kick = true; /* a start-up pass finds objects left by a crash */
    if (pthread_create(&g.thread, NULL, thread_main, NULL) != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "re-encrypt: cannot start its thread");
        return KMS_ERR_INTERNAL;
    }
    g.started = true;
    return 0;
}

void keys_reencrypt_stop(void)
{
    if (!g.started)
        return;
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(g.thread, NULL);
    g.started = false;
}

void keys_reencrypt_kick(void)
{
    pthread_mutex_lock(&g.mu);
    g.kick = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

bool keys_reencrypt_busy(void)
{
    pthread_mutex_lock(&g.mu);
    bool busy = g.kick || strcmp(g.state, "counting") == 0 || strcmp(g.state, "running") == 0;
    pthread_mutex_unlock(&g.mu);
    return busy;
}

void keys_reencrypt_progress(keys_progress_t *out)
{
    pthread_mutex_lock(&g.mu);
    out->state = g.kick && strcmp(g.state, "running") != 0 ? "starting" : g.state;
    out->target = g.target;
    out->total = g.total;
    out->done = g.done;
    out->failed = g.failed;
    out->started_us = g.started_us;
    out->finished_us = g.finished_us;
    pthread_mutex_unlock(&g.mu);
}
