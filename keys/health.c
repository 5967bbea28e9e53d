/*
 * keys/health.c: fail closed, fail fast when the HSM goes away.
 *
 * One monitor thread calls hsm_health() on the current master-key provider
 * every 250 ms (never on a loop thread: a PKCS#11 call may block). On the
 * transition to "unavailable" it logs one error and sets the down flag
 * (keys_hsm_down(): kmsd reads it once per request and passes it to
 * kmip_request_gate, which answers key operations at once with Operation
 * Failed / General Failure "HSM unavailable"); after every probe it tells
 * the caller's keys_health_cb (kmsd's loops stop accepting while down, so
 * that clients fail over to another server). When hsm_health() is 0 again
 * it logs once and clears the flag. Connections that are already open stay
 * open; their metadata operations keep working. Which operations need key
 * material is kmip/'s knowledge (its operation table: Create, Create Key
 * Pair, Register, Re-key, Re-key Key Pair, Get); everything else (Locate,
 * Get Attributes, Query, Activate, Revoke, Destroy, ...) is served.
 *
 * It deliberately does not touch the listeners: the callback only learns
 * the wanted state (server/ wakes its loops, which apply it on their own
 * threads).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keys/keys_int.h"

#define HEALTH_PERIOD_MS 250

static atomic_bool g_hsm_down;

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

static void *monitor_main(void *arg)
{
    const keys_options_t *k = arg;
    bool down = false;
    int last_rc = 0;
    pthread_mutex_lock(&g.mu);
    while (!g.stop) {
        pthread_mutex_unlock(&g.mu);
        hsm_t *h = keys_hsm();
        uint64_t t0 = kms_mono_ns();
        int rc = h ? hsm_health(h) : KMS_ERR_UNAVAIL;
        uint64_t ms = (kms_mono_ns() - t0) / 1000000;
        if ((rc != 0) != down) {
            down = rc != 0;
            atomic_store(&g_hsm_down, down);
            if (down)
                kms_log(KMS_LOG_ERROR, KEYS_LOG,
                        "hsm: unavailable (%s): key operations refused, listeners closed until "
                        "it returns",
                        kms_strerror(rc));
            else
                kms_log(KMS_LOG_INFO, KEYS_LOG, "hsm: available again (%s): service resumed",
                        h ? hsm_describe(h) : "?");
        } else if (down && rc != last_rc) {
            kms_log(KMS_LOG_DEBUG, KEYS_LOG, "hsm: still unavailable (%s)", kms_strerror(rc));
        }
        if (ms > 1000)
            kms_log(KMS_LOG_WARN, KEYS_LOG, "hsm: health probe took %llu ms",
                    (unsigned long long)ms);
        last_rc = rc;
        if (k->health_cb)
            k->health_cb(k->health_arg, down);
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
