/*
 * server/budget.c: what authenticated clients may hold, and the queue of
 * connections waiting for it.
 *
 * Memory. A request's declared size (its 8-byte header) is reserved in
 * limits.request_memory, and in its identity's share of it
 * (limits.request_memory_per_client), before its body is read; the
 * reservation is held until the request is answered (its decoded form
 * lives that long) and released then or when the connection goes. A
 * quarter of the budget only takes requests of at most SRV_SMALL_REQUEST
 * bytes, so clients uploading large objects can never stall ordinary
 * requests. A request that does not fit now waits (its connection stops
 * reading; limits.message_timeout still runs); one that could never fit
 * is refused. Unauthenticated connections reserve nothing: they are
 * limited to limits.max_message_unauthenticated each, and their number by
 * the pre-auth pool (admit.c).
 *
 * Waiting. A loop keeps its waiting connections in one FIFO list; a
 * 25 ms timer retries them while any wait, and releases wake the ones
 * they concern at once. What waking means is the connection's business
 * (srv_conn_wake in conn.c).
 *
 * Tenant slots. At most limits.tenant_workers requests of one tenant are
 * on worker threads at once (each loop has its even share, so no lock is
 * needed); the rest wait in the list above, in order. Unauthenticated
 * clients share the quota of tenant "".
 *
 * It deliberately does not count OpenSSL's own per-connection memory or
 * responses (limits.max_connections and limits.max_response bound those).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

/* Requests up to this size may use the quarter of request_memory that
 * larger ones cannot. */
#define SRV_SMALL_REQUEST 16384
/* Retry period of waiting connections. */
#define SRV_WAIT_RETRY_MS 25

struct srv_share {
    struct srv_share *next;
    size_t used;
    char key[160];
};

struct srv_tenant_slot {
    char tenant[64];
    unsigned running;
};

/* --------------------------------------------------------------- memory */
static struct srv_share *share_get(srv_t *srv, const char *key, bool create)
{
    for (struct srv_share *s = srv->shares; s; s = s->next)
        if (strcmp(s->key, key) == 0)
            return s;
    if (!create)
        return NULL;
    struct srv_share *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    kms_strlcpy(s->key, key, sizeof s->key);
    s->next = srv->shares;
    srv->shares = s;
    return s;
}

static void share_drop(srv_t *srv, struct srv_share *s)
{
    for (struct srv_share **p = &srv->shares; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            free(s);
            return;
        }
}

int srv_budget_reserve(srv_conn_t *c, size_t need, char *why, size_t whylen)
{
    srv_t *srv = c->loop->srv;
    const struct conf_limits *lim = &srv->limits;
    bool large = need > SRV_SMALL_REQUEST;
    size_t large_cap = lim->request_memory - lim->request_memory / 4;
    if (need > lim->request_memory_per_client || (large && need > large_cap)) {
        snprintf(why, whylen, "request of %zu bytes exceeds %s", need,
                 need > lim->request_memory_per_client ? "limits.request_memory_per_client"
                                                       : "three quarters of limits.request_memory");
        return KMS_ERR_LIMIT;
    }
    int rc = KMS_ERR_AGAIN;
    pthread_mutex_lock(&srv->budget_mu);
    struct srv_share *s = share_get(srv, c->ident, true);
    if (s && srv->mem_used + need <= lim->request_memory &&
        (!large || srv->mem_large + need <= large_cap) &&
        s->used + need <= lim->request_memory_per_client) {
        srv->mem_used += need;
        if (large)
            srv->mem_large += need;
        s->used += need;
        c->reserved = need;
        c->share = s;
        rc = 0;
    } else if (s && s->used == 0) {
        share_drop(srv, s); /* made for this attempt only */
    }
    pthread_mutex_unlock(&srv->budget_mu);
    if (rc == KMS_ERR_AGAIN && !s) {
        snprintf(why, whylen, "out of memory");
        rc = KMS_ERR_NOMEM;
    }
    return rc;
}

void srv_budget_release(srv_conn_t *c)
{
    if (!c->reserved)
        return;
    srv_t *srv = c->loop->srv;
    size_t n = c->reserved;
    pthread_mutex_lock(&srv->budget_mu);
    srv->mem_used -= n;
    if (n > SRV_SMALL_REQUEST)
        srv->mem_large -= n;
    c->share->used -= n;
    if (c->share->used == 0)
        share_drop(srv, c->share);
    pthread_mutex_unlock(&srv->budget_mu);
    c->reserved = 0;
    c->share = NULL;
    /* Room for this loop's waiters now; other loops retry on their timer. */
    srv_wait_wake(c->loop, SRV_WAIT_MEMORY);
}

size_t srv_budget_used(srv_t *srv)
{
    pthread_mutex_lock(&srv->budget_mu);
    size_t n = srv->mem_used;
    pthread_mutex_unlock(&srv->budget_mu);
    return n;
}

/* -------------------------------------------------------------- waiting */
static void on_wait_timer(uv_timer_t *t)
{
    srv_loop_t *l = t->data;
    srv_wait_wake(l, SRV_WAIT_NONE);
    if (!l->w_head && l->wait_timer_on) {
        uv_timer_stop(&l->wait_timer);
        l->wait_timer_on = false;
    }
}

int srv_wait_init(srv_loop_t *l)
{
    int r = uv_timer_init(&l->loop, &l->wait_timer);
    if (r == 0)
        l->wait_timer.data = l;
    return r;
}

void srv_wait_close(srv_loop_t *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->wait_timer))
        uv_close((uv_handle_t *)&l->wait_timer, NULL);
    l->wait_timer_on = false;
}

void srv_wait_start(srv_conn_t *c, enum srv_wait kind)
{
    srv_loop_t *l = c->loop;
    if (c->wait != SRV_WAIT_NONE || kind == SRV_WAIT_NONE)
        return;
    c->wait = kind;
    c->w_next = NULL;
    c->w_prev = l->w_tail;
    if (l->w_tail)
        l->w_tail->w_next = c;
    else
        l->w_head = c;
    l->w_tail = c;
    if (kind == SRV_WAIT_DURABLE)
        atomic_fetch_add(&l->n_durable_waits, 1);
    if (!l->wait_timer_on && !uv_is_closing((uv_handle_t *)&l->wait_timer)) {
        uv_timer_start(&l->wait_timer, on_wait_timer, SRV_WAIT_RETRY_MS, SRV_WAIT_RETRY_MS);
        l->wait_timer_on = true;
    }
}

void srv_wait_end(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    if (c->wait == SRV_WAIT_NONE)
        return;
    if (c->wait == SRV_WAIT_DURABLE)
        atomic_fetch_sub(&l->n_durable_waits, 1);
    c->wait = SRV_WAIT_NONE;
    if (c->w_prev)
        c->w_prev->w_next = c->w_next;
    else
        l->w_head = c->w_next;
    if (c->w_next)
        c->w_next->w_prev = c->w_prev;
    else
        l->w_tail = c->w_prev;
    c->w_prev = c->w_next = NULL;
}

void srv_wait_wake(srv_loop_t *l, enum srv_wait kind)
{
    /* The waiters of that kind are first taken out, in order, into a
     * private list, then woken one by one; one that cannot go on puts
     * itself back at the tail, so the order holds. Waking may wake again
     * (an answer sent releases memory): a nested call only sees who is
     * still in the loop's list. Connections are freed only in libuv's
     * close callbacks, never while this runs. */
    srv_conn_t *head = NULL, **tail = &head;
    for (srv_conn_t *c = l->w_head, *next; c; c = next) {
        next = c->w_next;
        if (kind != SRV_WAIT_NONE && c->wait != kind)
            continue;
        enum srv_wait was = c->wait;
        srv_wait_end(c);
        c->wk_was = was;
        c->wk_next = NULL;
        *tail = c;
        tail = &c->wk_next;
    }
    for (srv_conn_t *c = head, *next; c; c = next) {
        next = c->wk_next;
        c->wk_next = NULL;
        srv_conn_wake(c, c->wk_was);
    }
}

/* --------------------------------------------------------- tenant slots */
static unsigned tenant_limit(const srv_t *srv)
{
    unsigned n = srv->n_loops ? srv->n_loops : 1;
    unsigned per = (srv->limits.tenant_workers + n - 1) / n;
    return per ? per : 1;
}

static struct srv_tenant_slot *slot_of(srv_loop_t *l, const char *tenant, bool create)
{
    struct srv_tenant_slot *free_slot = NULL;
    for (size_t i = 0; i < l->n_tslots; i++) {
        if (strcmp(l->tslots[i].tenant, tenant) == 0)
            return &l->tslots[i];
        if (!free_slot && l->tslots[i].running == 0)
            free_slot = &l->tslots[i];
    }
    if (!create)
        return NULL;
    if (!free_slot) {
        if (l->n_tslots == l->cap_tslots) {
            size_t cap = l->cap_tslots ? l->cap_tslots * 2 : 16;
            struct srv_tenant_slot *t = realloc(l->tslots, cap * sizeof *t);
            if (!t)
                return NULL;
            l->tslots = t;
            l->cap_tslots = cap;
        }
        free_slot = &l->tslots[l->n_tslots++];
    }
    kms_strlcpy(free_slot->tenant, tenant, sizeof free_slot->tenant);
    free_slot->running = 0;
    return free_slot;
}

bool srv_tenant_acquire(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    if (c->tenant_slot)
        return true;
    struct srv_tenant_slot *s = slot_of(l, c->tenant, true);
    if (!s)
        return true; /* cannot track it: do not hold the request back */
    if (s->running >= tenant_limit(l->srv))
        return false;
    s->running++;
    c->tenant_slot = true;
    return true;
}

void srv_tenant_release(srv_conn_t *c)
{
    srv_loop_t *l = c->loop;
    if (!c->tenant_slot)
        return;
    c->tenant_slot = false;
    struct srv_tenant_slot *s = slot_of(l, c->tenant, false);
    if (s && s->running > 0)
        s->running--;
    /* The first waiter of this tenant gets the slot. */
    for (srv_conn_t *w = l->w_head; w; w = w->w_next)
        if (w->wait == SRV_WAIT_TENANT && strcmp(w->tenant, c->tenant) == 0) {
            srv_wait_end(w);
            srv_conn_wake(w, SRV_WAIT_TENANT);
            break;
        }
}

void srv_tenant_free(srv_loop_t *l)
{
    free(l->tslots);
    l->tslots = NULL;
    l->n_tslots = l->cap_tslots = 0;
}
