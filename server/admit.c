/*
 * server/admit.c: who gets a connection, and who is authenticated.
 *
 * The pre-auth pool. Every accepted connection is unauthenticated until
 * its certificate is found registered (looked up right after the
 * handshake) or a request's Credential verified. Unauthenticated
 * connections sit in their loop's pre-auth list, oldest first; together
 * they may number limits.max_unauthenticated (each loop its even share).
 * A new connection that finds the pool, or max_connections, full evicts
 * the oldest unauthenticated one, on its own loop or, when that has none,
 * on another loop (asked through its events handle); it is refused only
 * when every open connection is authenticated. So floods of bare TCP
 * connections or half-done handshakes churn among themselves and a
 * registered client always gets in and stays in.
 *
 * The admission thread. The certificate lookup may read SQLite (the
 * clients table, behind a per-thread cache), which an event loop must not
 * do, and must not queue behind a saturated worker pool (a Locate storm
 * would then lock out every new login). One dedicated thread does it and
 * hands the verdict back to the loop through the loop's events handle.
 *
 * Rate-limited logging: lines that a flood can produce (accepts, closes
 * before a completed handshake, refusals) go through srv_log_limited():
 * a few per second per kind, the rest counted and summarised.
 *
 * It deliberately decides nothing about what an identity may do (kmip/
 * does) and never touches a connection's TLS state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

/* Lines per second and kind before srv_log_limited() only counts. */
#define SRV_LOG_BURST 10

struct srv_admit {
    srv_t *srv;
    pthread_t thread;
    bool started, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_conn_t *head, *tail;
};

/* ------------------------------------------------------------- logging */
static struct {
    atomic_uint_fast64_t window; /* second of kms_mono_ns() */
    atomic_uint n;               /* lines in this window */
    atomic_uint suppressed;
} g_rate[SRV_LOGC_N];

static const char *const g_rate_what[SRV_LOGC_N] = {
    [SRV_LOGC_PREAUTH] = "connection lines (accepts, closes before authentication)",
    [SRV_LOGC_REFUSED] = "refusals",
};

void srv_log_limited(enum srv_logclass cls, enum kms_log_level lvl, const char *fmt, ...)
{
    if (!KMS_LOG_ENABLED(lvl) || (unsigned)cls >= SRV_LOGC_N)
        return;
    uint64_t now = kms_mono_ns() / 1000000000ULL;
    uint64_t w = atomic_load(&g_rate[cls].window);
    if (w != now && atomic_compare_exchange_strong(&g_rate[cls].window, &w, now)) {
        atomic_store(&g_rate[cls].n, 0);
        unsigned sup = atomic_exchange(&g_rate[cls].suppressed, 0);
        if (sup)
            kms_log(KMS_LOG_WARN, SRV_LOG, "%u more %s suppressed in the last %llu s", sup,
                    g_rate_what[cls], (unsigned long long)(now - w));
    }
    if (atomic_fetch_add(&g_rate[cls].n, 1) >= SRV_LOG_BURST) {
        atomic_fetch_add(&g_rate[cls].suppressed, 1);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    kms_vlog(lvl, SRV_LOG, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ the pool */
static unsigned loop_share(const srv_t *srv)
{
    unsigned n = srv->limits.max_unauthenticated / (srv->n_loops ? srv->n_loops : 1);
    return n ? n : 1;
}

void srv_preauth_enter(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    if (c->preauth)
        return;
    c->preauth = true;
    c->pa_next = NULL;
    c->pa_prev = l->pa_tail;
    if (l->pa_tail)
        l->pa_tail->pa_next = c;
    else
        l->pa_head = c;
    l->pa_tail = c;
    atomic_fetch_add(&l->n_preauth, 1);
    atomic_fetch_add(&l->srv->n_preauth, 1);
}

void srv_preauth_leave(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    if (!c->preauth)
        return;
    c->preauth = false;
    if (c->pa_prev)
        c->pa_prev->pa_next = c->pa_next;
    else
        l->pa_head = c->pa_next;
    if (c->pa_next)
        c->pa_next->pa_prev = c->pa_prev;
    else
        l->pa_tail = c->pa_prev;
    c->pa_prev = c->pa_next = NULL;
    atomic_fetch_sub(&l->n_preauth, 1);
    atomic_fetch_sub(&l->srv->n_preauth, 1);
}

/* Close this loop's oldest unauthenticated connection. */
static bool evict_oldest(srv_loop_t *l, const char *why)
{
    srv_conn_t *c = l->pa_head;
    while (c && c->state == SRV_CONN_CLOSING)
        c = c->pa_next;
    if (!c)
        return false;
    atomic_fetch_add(&l->srv->n_evicted, 1);
    srv_preauth_leave(c);
    c->tls_failed = true; /* no close_notify, no alert: it is simply dropped */
    srv_conn_close(c, why);
    return true;
}

/* Ask the loop holding the most unauthenticated connections (not `self`)
 * to evict its oldest. False when none holds any. */
static bool evict_elsewhere(srv_loop_t *self)
{
    srv_t *srv = self->srv;
    srv_loop_t *best = NULL;
    unsigned most = 0;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        unsigned n = atomic_load(&l->n_preauth);
        unsigned asked = atomic_load(&l->evict_req);
        if (l != self && l->started && n > asked && n - asked > most) {
            most = n - asked;
            best = l;
        }
    }
    if (!best)
        return false;
    atomic_fetch_add(&best->evict_req, 1);
    srv_loop_events_send(best);
    return true;
}

bool srv_admit_room(srv_loop_t *l)
{
    srv_t *srv = l->srv;
    static const char full_conns[] =
        "evicted: oldest unauthenticated connection, to admit a new one at limits.max_connections";
    static const char full_pool[] =
        "evicted: oldest unauthenticated connection, to admit a new one at limits.max_unauthenticated";
    /* n_conns already counts the new connection, which is not yet in the pool. */
    if (atomic_load(&srv->n_conns) > srv->limits.max_connections) {
        if (!evict_oldest(l, full_conns) && !evict_elsewhere(l)) {
            atomic_fetch_add(&srv->n_refused, 1);
            return false;
        }
    }
    if (atomic_load(&l->n_preauth) >= loop_share(srv) ||
        atomic_load(&srv->n_preauth) >= srv->limits.max_unauthenticated) {
        if (!evict_oldest(l, full_pool))
            (void)evict_elsewhere(l);
    }
    return true;
}

/* ---------------------------------------------------- admission thread */
static void *admit_main(void *arg)
{
    struct srv_admit *ad = arg;
    srv_t *srv = ad->srv;
    pthread_setname_np(pthread_self(), "kmsd-admit");
    pthread_mutex_lock(&ad->mu);
    for (;;) {
        while (!ad->head && !ad->stopping)
            pthread_cond_wait(&ad->cv, &ad->mu);
        if (!ad->head)
            break;
        srv_conn_t *c = ad->head;
        ad->head = c->admit_next;
        if (!ad->head)
            ad->tail = NULL;
        pthread_mutex_unlock(&ad->mu);

        /* c->fp, c->cn and c->addr were set before the post and do not
         * change; the loop reads admit_rc / admit_id only after the
         * hand-back below. */
        kmip_peer_t peer = {.cert_sha256 = c->fp[0] ? c->fp : NULL,
                            .cert_cn = c->cn[0] ? c->cn : NULL,
                            .address = c->addr};
        c->admit_rc = kmip_identify_cert(srv->kmip, &peer, &c->admit_id);

        srv_loop_t *l = c->loop;
        pthread_mutex_lock(&l->events_mu);
        c->admit_next = NULL;
        if (l->admitted_tail)
            l->admitted_tail->admit_next = c;
        else
            l->admitted_head = c;
        l->admitted_tail = c;
        if (!l->events_closed)
            uv_async_send(&l->events);
        pthread_mutex_unlock(&l->events_mu);
        pthread_mutex_lock(&ad->mu);
    }
    pthread_mutex_unlock(&ad->mu);
    return NULL;
}

int srv_admit_start(srv_t *srv)
{
    struct srv_admit *ad = calloc(1, sizeof *ad);
    if (!ad)
        return KMS_ERR_NOMEM;
    ad->srv = srv;
    pthread_mutex_init(&ad->mu, NULL);
    pthread_cond_init(&ad->cv, NULL);
    if (pthread_create(&ad->thread, NULL, admit_main, ad) != 0) {
        pthread_mutex_destroy(&ad->mu);
        pthread_cond_destroy(&ad->cv);
        free(ad);
        kms_log(KMS_LOG_ERROR, SRV_LOG, "cannot start the admission thread");
        return KMS_ERR_INTERNAL;
    }
    ad->started = true;
    srv->admit = ad;
    return 0;
}

void srv_admit_stop(srv_t *srv)
{
    struct srv_admit *ad = srv->admit;
    if (!ad)
        return;
    pthread_mutex_lock(&ad->mu);
    ad->stopping = true;
    pthread_cond_signal(&ad->cv);
    pthread_mutex_unlock(&ad->mu);
    pthread_join(ad->thread, NULL);
    pthread_mutex_destroy(&ad->mu);
    pthread_cond_destroy(&ad->cv);
    free(ad);
    srv->admit = NULL;
}

void srv_admit_post(srv_conn_t *c)
{
    struct srv_admit *ad = c->loop->srv->admit;
    c->admitting = true;
    c->refs++; /* released by the events handler */
    c->admit_next = NULL;
    pthread_mutex_lock(&ad->mu);
    if (ad->tail)
        ad->tail->admit_next = c;
    else
        ad->head = c;
    ad->tail = c;
    pthread_cond_signal(&ad->cv);
    pthread_mutex_unlock(&ad->mu);
}

/* ---------------------------------------------------------- loop events */
static void on_events(uv_async_t *a)
{
    srv_loop_t *l = a->data;
    pthread_mutex_lock(&l->events_mu);
    srv_conn_t *c = l->admitted_head;
    l->admitted_head = l->admitted_tail = NULL;
    pthread_mutex_unlock(&l->events_mu);
    while (c) {
        srv_conn_t *next = c->admit_next;
        c->admit_next = NULL;
        c->admitting = false;
        srv_conn_admitted(c); /* drops the reference srv_admit_post took */
        c = next;
    }
    for (unsigned n = atomic_exchange(&l->evict_req, 0); n > 0; n--)
        if (!evict_oldest(l, "evicted: oldest unauthenticated connection, to admit a new one "
                             "on another loop"))
            break;
    if (atomic_load(&l->n_durable_waits))
        srv_wait_wake(l, SRV_WAIT_DURABLE);
}

int srv_loop_events_init(srv_loop_t *l)
{
    if (pthread_mutex_init(&l->events_mu, NULL) != 0)
        return UV_ENOMEM;
    int r = uv_async_init(&l->loop, &l->events, on_events);
    if (r != 0) {
        pthread_mutex_destroy(&l->events_mu);
        return r;
    }
    l->events.data = l;
    return 0;
}

void srv_loop_events_close(srv_loop_t *l)
{
    pthread_mutex_lock(&l->events_mu);
    bool was = l->events_closed;
    l->events_closed = true;
    pthread_mutex_unlock(&l->events_mu);
    if (!was && !uv_is_closing((uv_handle_t *)&l->events))
        uv_close((uv_handle_t *)&l->events, NULL);
}

void srv_loop_events_send(srv_loop_t *l)
{
    pthread_mutex_lock(&l->events_mu);
    if (!l->events_closed)
        uv_async_send(&l->events);
    pthread_mutex_unlock(&l->events_mu);
}
