/*
 * keys/health.c: fail closed, fail fast when the HSM or the database goes
 * away.
 *
 * One monitor thread probes, every 250 ms, the current master-key provider
 * (hsm_health) and the database (one indexed read of store meta through
 * its own reader; with backoff up to 4 s while it fails, each failure
 * being logged by the store), never on a loop thread: a PKCS#11 call or a
 * failing disk may block. On each transition it logs one line and sets a flag:
 * keys_hsm_down() (kmsd reads it once per request and passes it to
 * kmip_request_gate, which answers key operations at once with Operation
 * Failed / General Failure "HSM unavailable") and keys_store_down(). After
 * every probe it tells the caller's keys_health_cb what it found: kmsd
 * closes its KMIP listener and its idle connections while either is down,
 * so that clients fail over to another server, and re-opens when both are
 * back (server/ready.c). Which operations need key material is kmip/'s
 * knowledge (its operation table: Create, Create Key Pair, Register,
 * Re-key, Re-key Key Pair, Get); requests already running are answered.
 *
 * It deliberately does not touch the listeners: the callback only learns
 * the state (server/ wakes its loops, which apply it on their own threads).
 * A database that cannot be written (disk full) but still read is not
 * "down": the store answers writes with their own errors.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keys/keys_int.h"

#define HEALTH_PERIOD_MS 250

static atomic_bool g_hsm_down, g_store_down;

static struct {
    const keys_options_t *k;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

bool keys_hsm_down(void)
{
    return atomic_load(&g_hsm_down);
}

bool keys_store_down(void)
{
    return atomic_load(&g_store_down);
}

/* One cheap read of the database: 0 when it answers (a missing key is an
 * answer), else why not. A reader that failed is opened again, so a
 * database that comes back is seen. */
static int store_probe(const keys_options_t *k, store_reader_t **rd, kms_arena_t *a)
{
    uint8_t *v = NULL;
    size_t len = 0;
    int rc = *rd ? 0 : store_reader_new(k->store, rd);
    if (rc == 0) {
        kms_arena_reset(a);
        rc = store_meta_get(*rd, a, KEYS_META_DSK_CURRENT, &v, &len);
    }
    if (rc == KMS_ERR_NOTFOUND)
        rc = 0;
    if (rc != 0 && *rd) {
        store_reader_free(*rd);
        *rd = NULL;
    }
    return rc;
}

/* Log a probe's transition once ("<what>: <gone> (why): <effect>", then
 * "<what>: available again (<back>)"); returns the new state. */
static bool transition(const char *what, const char *gone, const char *effect, bool was, int rc,
                       const char *back)
{
    bool down = rc != 0;
    if (down == was)
        return was;
    if (down)
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "%s: %s (%s): %s", what, gone, kms_strerror(rc), effect);
    else
        kms_log(KMS_LOG_INFO, KEYS_LOG, "%s: available again (%s)", what, back);
    return down;
}

static void *monitor_main(void *arg)
{
    const keys_options_t *k = arg;
    keys_health_t h = {0};
    (void)pthread_setname_np(pthread_self(), "kmsd-health");
    int last_rc = 0;
    uint64_t store_next_ms = 0, store_backoff = 0;
    store_reader_t *rd = NULL;
    kms_arena_t *a = kms_arena_new(0);
    pthread_mutex_lock(&g.mu);
    while (!g.stop) {
        pthread_mutex_unlock(&g.mu);
        hsm_t *hs = keys_hsm();
        uint64_t t0 = kms_mono_ns();
        int rc = hs ? hsm_health(hs) : KMS_ERR_UNAVAIL;
        uint64_t ms = (kms_mono_ns() - t0) / 1000000;
        h.hsm_down = transition("hsm", "unavailable",
                                "key operations refused, KMIP listener closed until it returns",
                                h.hsm_down, rc, hs ? hsm_describe(hs) : "?");
        h.hsm_rc = rc;
        atomic_store(&g_hsm_down, h.hsm_down);
        if (h.hsm_down && rc != last_rc)
            kms_log(KMS_LOG_DEBUG, KEYS_LOG, "hsm: still unavailable (%s)", kms_strerror(rc));
        if (ms > 1000)
            kms_log(KMS_LOG_WARN, KEYS_LOG, "hsm: health probe took %llu ms",
                    (unsigned long long)ms);
        last_rc = rc;
        /* A store that does not answer is probed with backoff (0.25 .. 4
         * s): each failed read is logged by the store itself. */
        uint64_t now_ms = kms_mono_ns() / 1000000;
        if (k->store && a && now_ms >= store_next_ms) {
            int src = store_probe(k, &rd, a);
            h.store_down = transition("store", "unreadable",
                                      "KMIP listener closed until it can be read again",
                                      h.store_down, src, "reads answer");
            h.store_rc = src;
            atomic_store(&g_store_down, h.store_down);
            store_backoff = !h.store_down ? 0
                            : store_backoff ? (store_backoff * 2 > 4000 ? 4000 : store_backoff * 2)
                                            : HEALTH_PERIOD_MS;
            store_next_ms = now_ms + store_backoff;
        }
        if (k->health_cb)
            k->health_cb(k->health_arg, &h);
        pthread_mutex_lock(&g.mu);
        if (g.stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HEALTH_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!g.stop && pthread_cond_timedwait(&g.cv, &g.mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&g.mu);
    store_reader_free(rd);
    kms_arena_free(a);
    return NULL;
}

int keys_health_start(const keys_options_t *k)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e = pthread_cond_init(&g.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e != 0)
        return KMS_ERR_NOMEM;
    g.k = k;
    g.stop = false;
    if (pthread_create(&g.thread, NULL, monitor_main, (void *)k) != 0) {
        pthread_cond_destroy(&g.cv);
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "hsm: cannot start the health monitor");
        return KMS_ERR_INTERNAL;
    }
    g.started = true;
    kms_log(KMS_LOG_INFO, KEYS_LOG, "hsm: health monitor every %d ms", HEALTH_PERIOD_MS);
    return 0;
}

void keys_health_stop(void)
{
    if (!g.started)
        return;
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(g.thread, NULL);
    pthread_cond_destroy(&g.cv);
    g.started = false;
}
