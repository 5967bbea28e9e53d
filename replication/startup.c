/*
 * replication/startup.c: a restarted node takes in what its peers wrote
 * while it was away before it serves keys.
 *
 * Serving at once would answer Item Not Found for a key made elsewhere
 * that has not arrived yet, and a client such as vCenter takes that answer
 * instead of asking the next server. So at start-up repl_ready stays false
 * (the server keeps its KMIP listener closed) until every node of the node
 * list that is not removed has delivered what it held when it connected:
 * HELLO (its push link to us) and HELLO_ACK (our push link to it) carry
 * the sender's change-log head, and a node is caught up once our applied
 * position of its log (link_pos, apply.c) reaches the highest head it
 * named. A node that does not connect and deliver within
 * replication.startup_wait is not waited for any longer: there is no
 * quorum, and a node whose peers are down serves what it has.
 *
 * It deliberately gates only the start: once ready, a node stays ready
 * whatever its peers' lag (during a partition both sides serve;
 * docs/cluster.md). Snapshot catch-up (a joining node, a node past
 * max_lag) is gated by sync.c (seeded, catching_up).
 */
#include <stdio.h>
#include <string.h>

#include "replication/repl_int.h"

#define STARTUP_WAIT_DEFAULT_MS 15000

static void finish(repl_t *r, const char *why)
{
    if (atomic_load(&r->startup_done))
        return;
    atomic_store(&r->startup_done, true);
    if (r->startup_timer_init && !uv_is_closing((uv_handle_t *)&r->startup_timer))
        uv_timer_stop(&r->startup_timer);
    kms_log(KMS_LOG_INFO, REPL_LOG, "start-up catch-up done after %llu ms: %s",
            (unsigned long long)(repl_mono_ms() - r->startup_t0_ms), why);
}

/* Done once no expected node is still owed. */
static void check(repl_t *r)
{
    if (atomic_load(&r->startup_done))
        return;
    for (repl_node_t *n = r->nodes; n; n = n->next)
        if (n->startup_expected && !n->startup_caught_up && strcmp(n->st.state, "removed") != 0)
            return;
    finish(r, "every peer's changes up to its log head when it connected are applied");
}

static void on_timer(uv_timer_t *t)
{
    repl_t *r = t->data;
    char late[256];
    size_t off = 0;
    late[0] = '\0';
    for (repl_node_t *n = r->nodes; n && off < sizeof late; n = n->next)
        if (n->startup_expected && !n->startup_caught_up) {
            int k = snprintf(late + off, sizeof late - off, "%s%s", off ? ", " : "",
                             n->st.node_id);
            off += k > 0 ? (size_t)k : 0;
        }
    kms_log(KMS_LOG_WARN, REPL_LOG,
            "start-up: replication.startup_wait passed without everything from %s (down or "
            "unreachable?): serving what this node has; their changes arrive when they connect",
            late[0] ? late : "no node");
    finish(r, "startup_wait passed");
}

void repl_startup_init(repl_t *r)
{
    bool any = false;
    r->startup_t0_ms = repl_mono_ms();
    for (repl_node_t *n = r->nodes; n; n = n->next) {
        n->startup_target = -1;
        n->startup_caught_up = false;
        n->startup_expected = strcmp(n->st.state, "removed") != 0;
        any = any || n->startup_expected;
    }
    /* A node that was never seeded waits for its snapshot instead (sync.c). */
    if (!any || !atomic_load(&r->seeded)) {
        atomic_store(&r->startup_done, true);
        return;
    }
    uint64_t wait = r->opt.startup_wait_ms ? r->opt.startup_wait_ms : STARTUP_WAIT_DEFAULT_MS;
    if (uv_timer_init(&r->loop, &r->startup_timer) != 0) {
        atomic_store(&r->startup_done, true);
        return;
    }
    r->startup_timer_init = true;
    r->startup_timer.data = r;
    uv_timer_start(&r->startup_timer, on_timer, wait, 0);
    kms_log(KMS_LOG_INFO, REPL_LOG,
            "start-up: the KMIP listener opens once the peers' changes made while this node was "
            "away are applied (at most replication.startup_wait, %llu ms)",
            (unsigned long long)wait);
}

void repl_startup_head(repl_t *r, repl_node_t *n, int64_t head)
{
    if (atomic_load(&r->startup_done) || !n || !n->startup_expected || n->startup_caught_up)
        return;
    if (head > n->startup_target)
        n->startup_target = head;
    repl_startup_progress(r, n->st.node_id, repl_apply_link_pos(r, n->st.node_id));
}

void repl_startup_progress(repl_t *r, const char *node_id, int64_t link_pos)
{
    if (atomic_load(&r->startup_done))
        return;
    for (repl_node_t *n = r->nodes; n; n = n->next) {
        if (strcmp(n->st.node_id, node_id) != 0)
            continue;
        if (n->startup_expected && n->startup_target >= 0 && link_pos >= n->startup_target &&
            !n->startup_caught_up) {
            n->startup_caught_up = true;
            kms_log(KMS_LOG_INFO, REPL_LOG, "start-up: caught up with node %s (its log up to %lld)",
                    node_id, (long long)n->startup_target);
        }
        break;
    }
    check(r);
}

void repl_startup_stop(repl_t *r)
{
    if (r->startup_timer_init && !uv_is_closing((uv_handle_t *)&r->startup_timer))
        uv_close((uv_handle_t *)&r->startup_timer, NULL);
}
