/*
 * server/admit.c: who gets a connection, and who is authenticated.
 *
 * The pre-auth pool. Every accepted connection is unauthenticated until
 * its certificate is found registered (looked up right after the
 * handshake) or a request's Credential verified. Unauthenticated
 * connections sit in their loop's pre-auth list, oldest first; together
 * they may number limits.max_unauthenticated (each loop its even share).
 * A new connection that finds the pool, or max_connections, full evicts
 * an unauthenticated one, on its own loop or, when that has none, on
 * another loop (asked through its events handle); it is refused only when
 * every open connection is authenticated. The one evicted is the oldest
 * of the source address holding the most unauthenticated connections,
 * preferring one that has sent nothing yet. So floods of bare TCP
 * connections or half-done handshakes churn among themselves and a
 * registered client gets in and stays in, unless the flood comes from its
 * own address and outpaces its handshake (then it competes as the
 * oldest-first rule says).
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

/* ------------------------------------------------ addresses in the pool */
/* Per loop: how many of its unauthenticated connections each source
 * address holds (open addressing, linear probing, deletion by backward
 * shift). Eviction takes from the address holding the most. */
struct srv_ipcount {
    char ip[48];              /* "" = free */
    unsigned n;
};

static size_t ip_hash(const char *ip, size_t cap)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = ip; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 31)) & (cap - 1);
}

static struct srv_ipcount *ip_find(srv_loop_t *l, const char *ip)
{
    if (!l->ips_cap)
        return NULL;
    for (size_t i = ip_hash(ip, l->ips_cap);; i = (i + 1) & (l->ips_cap - 1)) {
        struct srv_ipcount *e = &l->ips[i];
        if (!e->ip[0])
            return NULL;
        if (strcmp(e->ip, ip) == 0)
            return e;
    }
}

static unsigned ip_count(srv_loop_t *l, const char *ip)
{
    struct srv_ipcount *e = ip_find(l, ip);
    return e ? e->n : 0;
}

/* Grow to twice the capacity (or 64). false: out of memory. */
static bool ip_grow(srv_loop_t *l)
{
    size_t cap = l->ips_cap ? l->ips_cap * 2 : 64;
    struct srv_ipcount *t = calloc(cap, sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < l->ips_cap; i++) {
        if (!l->ips[i].ip[0])
            continue;
        size_t j = ip_hash(l->ips[i].ip, cap);
        while (t[j].ip[0])
            j = (j + 1) & (cap - 1);
        t[j] = l->ips[i];
    }
    free(l->ips);
    l->ips = t;
    l->ips_cap = cap;
    return true;
}

static void ip_add(srv_loop_t *l, const char *ip)
{
    struct srv_ipcount *e = ip_find(l, ip);
    if (e) {
        e->n++;
        return;
    }
    if ((l->ips_used + 1) * 2 > l->ips_cap && !ip_grow(l))
        return; /* not counted: eviction falls back to the oldest */
    size_t i = ip_hash(ip, l->ips_cap);
    while (l->ips[i].ip[0])
        i = (i + 1) & (l->ips_cap - 1);
    kms_strlcpy(l->ips[i].ip, ip, sizeof l->ips[i].ip);
    l->ips[i].n = 1;
    l->ips_used++;
}

static void ip_del(srv_loop_t *l, const char *ip)
{
    struct srv_ipcount *e = ip_find(l, ip);
    if (!e || --e->n > 0)
        return;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    size_t mask = l->ips_cap - 1, i = (size_t)(e - l->ips);
    for (size_t j = (i + 1) & mask; l->ips[j].ip[0]; j = (j + 1) & mask) {
        size_t home = ip_hash(l->ips[j].ip, l->ips_cap);
        /* Move j into the hole at i when its home is not in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            l->ips[i] = l->ips[j];
            i = j;
        }
    }
    l->ips[i].ip[0] = '\0';
    l->ips[i].n = 0;
    l->ips_used--;
}

void srv_preauth_free(srv_loop_t *l)
{
    free(l->ips);
    l->ips = NULL;
    l->ips_cap = l->ips_used = 0;
}

/* ------------------------------------------------------------ the pool */
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
    ip_add(l, c->ip);
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
    ip_del(l, c->ip);
    atomic_fetch_sub(&l->n_preauth, 1);
    atomic_fetch_sub(&l->srv->n_preauth, 1);
}

/* Close one of this loop's unauthenticated connections: from the source
 * address that holds the most of them, the oldest that has sent nothing
 * yet, else the oldest. A flood from a few addresses then only ever
 * evicts its own connections, and a bare TCP flood never evicts a client
 * that is in the middle of its handshake. false: the loop has none. */
static bool evict_oldest(srv_loop_t *l, const char *why)
{
    unsigned most = 0;
    for (srv_conn_t *c = l->pa_head; c; c = c->pa_next) {
        unsigned n = c->state == SRV_CONN_CLOSING ? 0 : ip_count(l, c->ip);
        if (n > most)
            most = n;
    }
    srv_conn_t *victim = NULL, *silent = NULL;
    for (srv_conn_t *c = l->pa_head; c && !silent; c = c->pa_next) {
        if (c->state == SRV_CONN_CLOSING || ip_count(l, c->ip) != most)
            continue;
        if (!victim)
            victim = c;
        if (!c->spoke)
            silent = c;
    }
    if (silent)
        victim = silent;
    if (!victim)
        return false;
    atomic_fetch_add(&l->srv->n_evicted, 1);
    srv_preauth_leave(victim);
    victim->tls_failed = true; /* no close_notify, no alert: it is simply dropped */
    srv_conn_close(victim, why);
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
        "evicted: unauthenticated, to admit a new connection at limits.max_connections";
    static const char full_pool[] =
        "evicted: unauthenticated, to admit a new connection at limits.max_unauthenticated";
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
        if (!evict_oldest(l, "evicted: unauthenticated, to admit a new connection on another "
                             "loop"))
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
