/*
 * replication/sync.c: what the module tells the rest of kmsd, and the
 * housekeeping of the replication thread.
 *
 * - Commit notifications: the store's writer calls notify_cb after each
 *   commit that appended change-log rows; it records the last seq and
 *   wakes the loop (uv_async_send), which lets every push link ship.
 * - Sync-ack waiters (repl_wait): a changing request's last seq waits
 *   until sync_acks peers have acknowledged a link position at or past
 *   it, or until sync_timeout_ms: then fail (KMS_ERR_TIMEOUT) or degrade
 *   (0, one rate-limited WARN, a counter). Callbacks run on the
 *   replication thread and must only hand over.
 * - Trimming: every few seconds the log is trimmed up to the lowest
 *   position acknowledged by every non-removed peer heard from within
 *   max_lag; a peer past max_lag no longer holds it back (it is re-seeded
 *   by snapshot when it returns).
 * - Readiness, status lag, removed nodes, the current data-store key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replication/repl_int.h"

#define TRIM_EVERY_MS 5000

struct repl_waiter {
    int64_t seq;
    uint64_t deadline_ms;    /* monotonic */
    repl_wait_cb cb;
    void *arg;
    struct repl_waiter *next;
};

/* ------------------------------------------------------------ notify */
static void notify_cb(int64_t last_seq, void *arg)
{
    repl_t *r = arg;
    int64_t cur = atomic_load(&r->last_seq);
    while (last_seq > cur && !atomic_compare_exchange_weak(&r->last_seq, &cur, last_seq))
        ;
    uv_async_send(&r->wake);
}

static void on_trim_timer(uv_timer_t *t);
static void on_wait_timer(uv_timer_t *t);

static int first_row(const store_change_t *c, void *arg)
{
    *(store_change_t *)arg = *c;
    return 1;
}

int repl_hooks_init(repl_t *r, kms_error_t *err)
{
    store_repl_state_t *st = NULL;
    size_t n = 0;
    kms_arena_t *a = kms_arena_new(0);
    int rc = store_reader_new(r->opt.store, &r->rd);
    if (rc || !a) {
        kms_arena_free(a);
        return kms_error_set(err, rc ? rc : KMS_ERR_NOMEM, "replication: cannot open a store reader");
    }
    int64_t last = store_last_seq(r->rd);
    atomic_store(&r->last_seq, last > 0 ? last : 0);
    /* Where the log starts: a peer below it needs a snapshot. */
    store_change_t first;
    memset(&first, 0, sizeof first);
    (void)store_changes_since(r->rd, 0, 1, first_row, &first);
    atomic_store(&r->trimmed_to, first.seq > 0 ? first.seq - 1 : (last > 0 ? last : 0));
    /* Ready at once unless this node was never seeded: a node with peers
     * and neither peer progress nor objects is a joining node. */
    bool seeded = !r->peers || store_count_objects(r->rd) > 0 ||
                  (store_list_repl_state(r->rd, a, &st, &n) == 0 && n > 0);
    kms_arena_free(a);
    atomic_store(&r->seeded, seeded);
    uv_timer_init(&r->loop, &r->trim_timer);
    r->trim_timer.data = r;
    uv_timer_init(&r->loop, &r->wait_timer);
    r->wait_timer.data = r;
    unsigned every = r->opt.trim_every_ms ? r->opt.trim_every_ms : TRIM_EVERY_MS;
    uv_timer_start(&r->trim_timer, on_trim_timer, every, every);
    uv_timer_init(&r->loop, &r->relay_timer);
    r->relay_timer.data = r;
    /* The newest rows in memory, each object put with the object as it was
     * committed: push links ship what the writer just committed without
     * reading it back (ship.c). Already on: a store this module ran on
     * before (tests restart it). */
    rc = store_log_tail_enable(r->opt.store, r->opt.log_tail_bytes ? r->opt.log_tail_bytes
                                                                   : REPL_LOG_TAIL_BYTES);
    if (rc && rc != KMS_ERR_STATE)
        kms_log(KMS_LOG_WARN, REPL_LOG, "change log in memory off (%s): links read the store",
                kms_strerror(rc));
    r->encache = repl_encache_new(REPL_ENCACHE_BYTES); /* NULL: each link encodes */
    store_set_notify(r->opt.store, notify_cb, r);
    r->hooks_init = true;
    repl_progress_load(r);
    repl_load_nodes(r);
    repl_startup_init(r);
    return 0;
}

/* ------------------------------------------------------------ waiters */
/* The highest seq that at least `sync_acks` non-removed peers have
 * acknowledged (INT64_MIN when fewer peers than that are known): every
 * waiter at or below it has its acks. One pass under the mutex per check
 * rather than one per waiter (with 64 clients waiting, each ACK looked at
 * the peers 64 times). */
static int64_t acked_by_enough(repl_t *r)
{
    unsigned need = r->opt.sync_acks;
    int64_t best = INT64_MIN;
    if (need == 0)
        return INT64_MAX;
    pthread_mutex_lock(&r->mu);
    for (repl_node_t *n = r->nodes; n; n = n->next) {
        if (strcmp(n->st.state, "removed") == 0 || n->st.acked_seq <= best)
            continue;
        unsigned k = 0; /* peers at or past this one's position */
        for (repl_node_t *m = r->nodes; m; m = m->next)
            k += strcmp(m->st.state, "removed") != 0 && m->st.acked_seq >= n->st.acked_seq;
        if (k >= need)
            best = n->st.acked_seq;
    }
    pthread_mutex_unlock(&r->mu);
    return best;
}

static void rearm_wait_timer(repl_t *r)
{
    uint64_t first = UINT64_MAX;
    for (repl_waiter_t *w = r->waiters; w; w = w->next)
        if (w->deadline_ms < first)
            first = w->deadline_ms;
    if (first == UINT64_MAX) {
        uv_timer_stop(&r->wait_timer);
        return;
    }
    uint64_t now = repl_mono_ms();
    uv_timer_start(&r->wait_timer, on_wait_timer, first > now ? first - now : 0, 0);
}

static void timed_out(repl_t *r, repl_waiter_t *w)
{
    unsigned ms = r->opt.sync_timeout_ms ? r->opt.sync_timeout_ms : 2000;
    if (!r->opt.sync_degrade) {
        atomic_fetch_add(&r->sync_failed, 1);
        w->cb(KMS_ERR_TIMEOUT, w->arg);
        return;
    }
    uint64_t n = atomic_fetch_add(&r->sync_degraded, 1) + 1;
    uint64_t now = repl_mono_ms();
    if (now - r->degrade_logged_ms >= 10000 || r->degrade_logged_ms == 0) {
        r->degrade_logged_ms = now;
        kms_log(KMS_LOG_WARN, REPL_LOG,
                "replication: %u peer acknowledgements not received within %u ms; answered "
                "anyway (on_sync_timeout: degrade; %llu such answers so far)",
                r->opt.sync_acks, ms, (unsigned long long)n);
    }
    w->cb(0, w->arg);
}

/* Call back every waiter that has its acks or ran out of time. */
static void check_waiters(repl_t *r)
{
    uint64_t now = repl_mono_ms();
    int64_t upto = r->waiters ? acked_by_enough(r) : INT64_MIN;
    repl_waiter_t **pp = &r->waiters;
    while (*pp) {
        repl_waiter_t *w = *pp;
        bool acked = w->seq <= upto;
        if (!acked && w->deadline_ms > now) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (acked)
            w->cb(0, w->arg);
        else
            timed_out(r, w);
        free(w);
    }
    rearm_wait_timer(r);
}

static void on_wait_timer(uv_timer_t *t)
{
    check_waiters(t->data);
}

int repl_wait(repl_t *r, int64_t seq, repl_wait_cb cb, void *arg)
{
    if (!r || !cb)
        return KMS_ERR_INVAL;
    if (!r->started || atomic_load(&r->stopping))
        return KMS_ERR_STATE;
    repl_waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return KMS_ERR_NOMEM;
    w->seq = seq;
    w->deadline_ms = repl_mono_ms() + (r->opt.sync_timeout_ms ? r->opt.sync_timeout_ms : 2000);
    w->cb = cb;
    w->arg = arg;
    atomic_fetch_add(&r->sync_waits, 1);
    pthread_mutex_lock(&r->wq_mu);
    w->next = r->wq_new;
    r->wq_new = w;
    pthread_mutex_unlock(&r->wq_mu);
    uv_async_send(&r->wake);
    return 0;
}

unsigned repl_sync_acks(const repl_t *r)
{
    return r ? r->opt.sync_acks : 0;
}

void repl_sync_stats(repl_t *r, repl_sync_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    out->waits = atomic_load(&r->sync_waits);
    out->failed = atomic_load(&r->sync_failed);
    out->degraded = atomic_load(&r->sync_degraded);
    out->relayed = atomic_load(&r->relayed);
    out->relay_skipped = atomic_load(&r->relay_skipped);
    out->shipped_from_memory = atomic_load(&r->shipped_mem);
    out->shipped_from_store = atomic_load(&r->shipped_store);
    out->batches_inline = atomic_load(&r->ship_inline);
    out->batches_pool = atomic_load(&r->ship_queued);
    out->position_frames = atomic_load(&r->position_frames);
    out->positions_held = atomic_load(&r->positions_held);
    out->apply_commits = atomic_load(&r->apply_commits);
    out->apply_frames = atomic_load(&r->apply_frames);
    out->apply_waiting = atomic_load(&r->apply_waiting);
    repl_encache_stats(r->encache, &out->encoded_shared, &out->encoded);
}

void repl_set_node_state(repl_t *r, repl_node_t *n, const char *state)
{
    if (!n)
        return;
    pthread_mutex_lock(&r->mu);
    kms_strlcpy(n->st.state, state, sizeof n->st.state);
    pthread_mutex_unlock(&r->mu);
}

void repl_set_node_catchup(repl_t *r, repl_node_t *n, int64_t total, int64_t done)
{
    if (!n)
        return;
    pthread_mutex_lock(&r->mu);
    n->st.catchup_total = total;
    n->st.catchup_done = done;
    pthread_mutex_unlock(&r->mu);
}

void repl_node_acked(repl_t *r, repl_node_t *n, int64_t acked, int64_t oldest_hlc)
{
    if (!n)
        return;
    pthread_mutex_lock(&r->mu);
    if (acked > n->st.acked_seq)
        n->st.acked_seq = acked;
    n->acked_known = true;
    n->oldest_unacked_hlc = oldest_hlc;
    pthread_mutex_unlock(&r->mu);
    if (r->waiters)
        check_waiters(r);
}

/* ------------------------------------------------------------ nodes */
bool repl_node_removed(repl_t *r, const char *node_id, const char *fp)
{
    store_node_t n;
    if (r->rd && store_node_get(r->rd, node_id, &n) == 0 && n.removed)
        return true;
    for (size_t i = 0; i < r->n_removed_fp; i++)
        if (fp && fp[0] && strcmp(r->removed_fp[i], fp) == 0)
            return true;
    return false;
}

void repl_load_nodes(repl_t *r)
{
    kms_arena_t *a = kms_arena_new(0);
    store_node_t *v = NULL;
    size_t n = 0;
    if (!a || store_list_nodes(r->rd, a, &v, &n) != 0) {
        kms_arena_free(a);
        return;
    }
    r->n_removed_fp = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].node_id, r->opt.node_id) == 0)
            continue;
        repl_node_t *x = repl_node_get(r, v[i].node_id);
        if (!x)
            continue;
        pthread_mutex_lock(&r->mu);
        if (!x->st.addr[0])
            kms_strlcpy(x->st.addr, v[i].peer_addr, sizeof x->st.addr);
        if (v[i].removed)
            kms_strlcpy(x->st.state, "removed", sizeof x->st.state);
        pthread_mutex_unlock(&r->mu);
        if (v[i].removed && v[i].cert_sha256[0] && r->n_removed_fp < KMS_ARRAY_SIZE(r->removed_fp))
            kms_strlcpy(r->removed_fp[r->n_removed_fp++], v[i].cert_sha256, 65);
        if (v[i].removed)
            for (repl_conn_t *c = r->conns; c; c = c->next)
                if (c->node == x && c->state != RC_CLOSING)
                    repl_conn_fail(c, REPL_ERROR_REMOVED, "node %s was removed from the cluster",
                                   v[i].node_id);
        repl_push_to_node(r, &v[i]); /* members.c: a node that joined later */
    }
    kms_arena_free(a);
}

void repl_adopt_current_dsk(repl_t *r, store_reader_t *rd)
{
    uint32_t id = 0;
    store_change_id_t cid;
    if (r->opt.keyring && store_dsk_current(rd, &id, &cid) == 0 && id)
        (void)hsm_keyring_set_current(r->opt.keyring, id);
}

/* ------------------------------------------------------------ trim */
static void trim_done(store_write_t *w, int result, void *arg)
{
    repl_t *r = arg;
    (void)w;
    atomic_store(&r->trim_result, result ? result : 1);
    uv_async_send(&r->wake);
    atomic_store(&r->trim_cb_done, true); /* last: repl_close may free r after it */
}

static void on_trim_timer(uv_timer_t *t)
{
    repl_t *r = t->data;
    /* Node rows change by admin commands here as well as by replication:
     * look at the (small) table on every tick. */
    repl_load_nodes(r);
    if (r->trim_w)
        return; /* the last one is still committing */
    int64_t last = atomic_load(&r->last_seq);
    int64_t up_to = last;
    uint64_t max_lag = r->opt.max_lag_ms ? r->opt.max_lag_ms : 24ULL * 3600 * 1000;
    int64_t now = repl_wall_ms(r);
    kms_arena_t *a = kms_arena_new(0);
    store_repl_state_t *st = NULL;
    size_t nst = 0;
    if (!a)
        return;
    (void)store_list_repl_state(r->rd, a, &st, &nst);
    /* A configured address whose node never answered may need anything. */
    pthread_mutex_lock(&r->mu);
    for (repl_peer_t *p = r->peers; p; p = p->next)
        if (!p->is_self && !p->known)
            up_to = 0;
    for (repl_node_t *n = r->nodes; n && up_to > 0; n = n->next) {
        if (strcmp(n->st.state, "removed") == 0)
            continue;
        int64_t contact = n->st.last_contact_ms;
        for (size_t i = 0; i < nst; i++)
            if (strcmp(st[i].node_id, n->st.node_id) == 0 && st[i].updated_us / 1000 > contact)
                contact = st[i].updated_us / 1000;
        if (contact && now - contact > (int64_t)max_lag) {
            kms_strlcpy(n->st.state, "past-max-lag", sizeof n->st.state);
            continue; /* re-seeded when it returns */
        }
        if (!n->acked_known) {
            up_to = 0; /* not heard since start: keep everything for now */
            break;
        }
        /* covered: a push link that skipped a third node's rows (the
         * peer gets them directly) keeps them until the peer confirms
         * them, so that it can still relay them (ship.c). */
        int64_t have = n->covered >= 0 && n->covered < n->st.acked_seq ? n->covered
                                                                         : n->st.acked_seq;
        if (have < up_to)
            up_to = have;
    }
    pthread_mutex_unlock(&r->mu);
    kms_arena_free(a);
    if (up_to <= atomic_load(&r->trimmed_to))
        return;
    store_write_t *w = store_write_new();
    if (!w)
        return;
    atomic_store(&r->trim_cb_done, false);
    if (store_write_trim(w, up_to) != 0 ||
        store_commit_async(r->opt.store, w, trim_done, r) != 0) {
        store_write_free(w);
        return;
    }
    r->trim_w = w;
    r->trim_to = up_to;
}

int64_t repl_log_floor(repl_t *r)
{
    return atomic_load(&r->trimmed_to);
}

/* ------------------------------------------------------------ loop */
/* Move the waiters repl_wait queued (any thread) to the loop's list. */
static void take_new_waiters(repl_t *r)
{
    pthread_mutex_lock(&r->wq_mu);
    repl_waiter_t *nw = r->wq_new;
    r->wq_new = NULL;
    pthread_mutex_unlock(&r->wq_mu);
    while (nw) {
        repl_waiter_t *w = nw;
        nw = w->next;
        w->next = r->waiters;
        r->waiters = w;
    }
}

void repl_hooks_wake(repl_t *r)
{
    int tr = atomic_exchange(&r->trim_result, 0);
    if (tr && r->trim_w) {
        store_write_free(r->trim_w);
        r->trim_w = NULL;
        if (tr == 1) {
            atomic_store(&r->trimmed_to, r->trim_to);
            kms_log(KMS_LOG_DEBUG, REPL_LOG, "change log trimmed up to seq %lld",
                    (long long)r->trim_to);
        }
    }
    if (atomic_exchange(&r->nodes_changed, false))
        repl_load_nodes(r);
    take_new_waiters(r);
    for (repl_conn_t *c = r->conns; c; c = c->next)
        if (c->outbound && c->state == RC_OPEN)
            repl_ship_more(c);
    check_waiters(r);
}

void repl_hooks_stop(repl_t *r)
{
    if (!r->hooks_init)
        return;
    r->hooks_init = false;
    store_set_notify(r->opt.store, NULL, NULL);
    uv_close((uv_handle_t *)&r->trim_timer, NULL);
    uv_close((uv_handle_t *)&r->wait_timer, NULL);
    uv_close((uv_handle_t *)&r->relay_timer, NULL);
    repl_startup_stop(r);
    /* Waiters still queued get their answer now: nobody will ack. */
    take_new_waiters(r);
    while (r->waiters) {
        repl_waiter_t *w = r->waiters;
        r->waiters = w->next;
        w->cb(KMS_ERR_UNAVAIL, w->arg);
        free(w);
    }
}

void repl_hooks_wait_trim(repl_t *r)
{
    /* A trim still committing calls back into r (the store can outlive
     * the module: a caller that closes replication alone). */
    for (int i = 0; r->trim_w && !atomic_load(&r->trim_cb_done) && i < 30000; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void repl_hooks_free(repl_t *r)
{
    if (r->trim_w) {
        /* The trim commit finished before store_close, which the caller
         * runs after repl_close; its write is ours to free. */
        store_write_free(r->trim_w);
        r->trim_w = NULL;
    }
    store_reader_free(r->rd);
    r->rd = NULL;
    repl_encache_free(r->encache);
    r->encache = NULL;
}

/* ------------------------------------------------------------ public */
bool repl_ready(repl_t *r)
{
    return r && r->started && !atomic_load(&r->stopping) && atomic_load(&r->seeded) &&
           atomic_load(&r->catching_up) == 0 && atomic_load(&r->startup_done);
}

void repl_status_fill(repl_t *r, repl_peer_status_t *v, size_t n)
{
    int64_t last = atomic_load(&r->last_seq);
    int64_t now = kms_now_us() / 1000;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        if (!v[i].node_id[0])
            continue;
        bool known = false;
        v[i].lag_changes = last > v[i].acked_seq ? last - v[i].acked_seq : 0;
        for (repl_node_t *x = r->nodes; x; x = x->next)
            if (strcmp(x->st.node_id, v[i].node_id) == 0) {
                known = x->acked_known;
                if (x->oldest_unacked_hlc)
                    v[i].lag_ms = now - (x->oldest_unacked_hlc >> 16);
            }
        if (v[i].lag_changes == 0)
            v[i].lag_ms = 0;
        if (!known)
            v[i].lag_changes = v[i].lag_ms = -1; /* not heard from since start */
    }
    pthread_mutex_unlock(&r->mu);
}
