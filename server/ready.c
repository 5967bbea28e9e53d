/*
 * server/ready.c: whether this node serves keys now, the KMIP listeners
 * following it, and the verdict behind GET /readyz and the kmsd_ready
 * metric (load balancers take a node out of rotation while it is false).
 *
 * A node serves keys while its master key answers (keys_hsm_down), its
 * database can be read (keys_store_down) and replication is not catching
 * up (repl_ready: a joining node before its first snapshot, a node still
 * taking in what its peers wrote while it was away). While any of them
 * fails, every loop closes its KMIP listen sockets (connect is refused at
 * once) and its connections once their request in flight is answered, so
 * that clients fail over to another node instead of being answered
 * "not found" or waiting; when all hold again the listeners re-open. Each
 * change of the verdict is logged once. keys/' health monitor calls
 * srv_ready_update after every probe (250 ms), and main once before the
 * loops start: a node that is not ready at start-up never opens its
 * listener until it is.
 *
 * It deliberately judges nothing itself: keys/ probes the HSM and the
 * store, replication/ knows whether it caught up.
 */
#include <stdio.h>
#include <string.h>

#include "keys/keys.h"
#include "replication/repl.h"
#include "server/server_int.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_evaluated;      /* guarded by g_mu */

static const struct {
    unsigned bit;
    const char *text; /* the log's reason */
    const char *http; /* /readyz's reason */
} REASONS[] = {
    {SRV_UNREADY_HSM, "HSM unavailable", "hsm: master key unreachable"},
    {SRV_UNREADY_STORE, "store unreadable", "store: database unreadable"},
    {SRV_UNREADY_REPL, "replication catching up", "replication: catching up"},
};

static void reasons_text(unsigned bits, char *out, size_t n)
{
    size_t off = 0;
    if (!n)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < KMS_ARRAY_SIZE(REASONS); i++) {
        if (!(bits & REASONS[i].bit) || off >= n)
            continue;
        int k = snprintf(out + off, n - off, "%s%s", off ? ", " : "", REASONS[i].text);
        off += k > 0 ? (size_t)k : 0;
    }
}

static unsigned evaluate(srv_t *srv)
{
    unsigned bits = 0;
    if (keys_hsm_down())
        bits |= SRV_UNREADY_HSM;
    if (keys_store_down())
        bits |= SRV_UNREADY_STORE;
    if (srv->repl && !repl_ready(srv->repl))
        bits |= SRV_UNREADY_REPL;
    return bits;
}

unsigned srv_ready_update(srv_t *srv)
{
    char why[128];
    pthread_mutex_lock(&g_mu);
    unsigned bits = evaluate(srv);
    unsigned was = atomic_exchange(&srv->unready, bits);
    bool first = !g_evaluated;
    g_evaluated = true;
    if (bits != was || first) {
        reasons_text(bits, why, sizeof why);
        if (first && bits)
            kms_log(KMS_LOG_WARN, SRV_LOG,
                    "not ready: %s: the KMIP listener stays closed until this node can serve keys",
                    why);
        else if (bits && !was)
            kms_log(KMS_LOG_WARN, SRV_LOG,
                    "not ready: %s: KMIP listener closed, connections closed once answered "
                    "(clients fail over to another node)",
                    why);
        else if (bits)
            kms_log(KMS_LOG_WARN, SRV_LOG, "still not ready: %s", why);
        else if (!first)
            kms_log(KMS_LOG_INFO, SRV_LOG, "ready: serving keys again, KMIP listener open");
    }
    atomic_store(&srv->listen_paused, bits != 0);
    pthread_mutex_unlock(&g_mu);
    if (atomic_load(&srv->stopping) || !srv->loops)
        return bits;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        if (l->started && atomic_load(&l->paused) != (bits != 0))
            uv_async_send(&l->wake);
    }
    return bits;
}

unsigned srv_ready_state(srv_t *srv, char *why, size_t whylen)
{
    unsigned bits = atomic_load(&srv->unready);
    if (why)
        reasons_text(bits, why, whylen);
    return bits;
}

bool srv_ready(srv_t *srv, char *why, size_t whylen)
{
    const char *reason = NULL;
    audit_counters_t ac;
    unsigned bits = atomic_load(&srv->unready);
    if (atomic_load(&srv->stopping))
        reason = "shutting down";
    else if (!srv->store || !srv->kmip)
        reason = "store: not open";
    for (size_t i = 0; !reason && i < KMS_ARRAY_SIZE(REASONS); i++)
        if (bits & REASONS[i].bit)
            reason = REASONS[i].http;
    /* A failing audit writer stalls answers once its queue fills: out of
     * rotation, though the KMIP listener stays open (its answers say why). */
    if (!reason) {
        audit_get_counters(srv_audit_log(), &ac);
        if (ac.failing)
            reason = "audit: records cannot be written";
    }
    if (whylen)
        snprintf(why, whylen, "%s", reason ? reason : "ready");
    return reason == NULL;
}
