/*
 * server/hooks.c: wires access control, the audit log, the admin socket
 * and the key lifecycle into a running kmsd.
 *
 * srv_access_start() opens the audit log (audit/) and starts the admin
 * socket (admin/) with a status callback that reads the server's own
 * counters. srv_access_stop() tears them down in reverse order. Who a
 * client is, is kmip/'s business (kmip_identify); conn.c asks it directly
 * after a handshake when tls.require_registered is set.
 * srv_audit_record() turns each KMIP request's summary into an audit
 * record. srv_keys_start() starts keys/ with the listeners following the
 * node's readiness (HSM, store, replication: ready.c). One server per process, so the handles live in file-scope
 * statics.
 *
 * It deliberately adds no behaviour of its own: everything it starts is
 * described in the modules' headers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "keys/keys.h"
#include "server/server_int.h"
#include "ttlv/ttlv.h"

static _Atomic(audit_t *) g_audit_log; /* read by the loop threads (srv_audit_record) */
static admin_t *g_admin;
static bool g_audit_durable;           /* audit.durable */
/* The audit writer's wake-ups reach the loops only while this is set
 * (srv_audit_detach clears it before the loops are freed). */
static pthread_mutex_t g_notify_mu = PTHREAD_MUTEX_INITIALIZER;
static srv_t *g_notify_srv;
static char g_listen[256];             /* status: the listen addresses */

/* Audit writer thread: records became durable; wake the loops that hold
 * answers for them. */
static void audit_notify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_notify_mu);
    srv_t *srv = g_notify_srv;
    for (unsigned i = 0; srv && srv->loops && i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        if (l->started && atomic_load(&l->n_durable_waits))
            srv_loop_events_send(l);
    }
    pthread_mutex_unlock(&g_notify_mu);
}

/* Admin threads (several at once): what the core knows about itself. */
static void status_cb(void *arg, admin_status_t *st)
{
    srv_t *srv = arg;
    st->connections = (int64_t)atomic_load(&srv->n_conns);
    st->requests = (int64_t)atomic_load(&srv->n_requests);
    st->unauthenticated = (int64_t)atomic_load(&srv->n_preauth);
    st->refused = (int64_t)atomic_load(&srv->n_refused);
    st->evicted = (int64_t)atomic_load(&srv->n_evicted);
    st->memory_waits = (int64_t)atomic_load(&srv->n_mem_waits);
    st->cancelled = (int64_t)atomic_load(&srv->n_cancelled);
    st->tenant_waits = (int64_t)atomic_load(&srv->n_tenant_waits);
    st->audit_refused = (int64_t)atomic_load(&srv->n_audit_refused);
    st->request_memory = (int64_t)srv_budget_used(srv);
    hsm_t *h = keys_hsm(); /* a rotation replaces srv->hsm */
    if (!h)
        h = srv->hsm;
    st->hsm = h ? hsm_describe(h) : NULL;
    st->hsm_health = h ? hsm_health(h) : 1;
    st->listen = g_listen; /* written once, before the admin socket starts */
}

int srv_access_start(srv_t *srv)
{
    const conf_t *c = srv->conf;
    int rc = 0;
    size_t off = 0;
    g_listen[0] = '\0';
    for (size_t i = 0; i < c->n_listen && off < sizeof(g_listen); i++) {
        int n = snprintf(g_listen + off, sizeof(g_listen) - off, "%s%s", i ? " " : "",
                         c->listen[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (c->audit.path[0]) {
        audit_options_t uo = {.path = c->audit.path, .rotate_size = c->audit.rotate_size,
                              .fsync = c->audit.fsync, .max_queue = c->audit.max_backlog,
                              .syslog = c->audit.syslog,
                              .syslog_facility = c->audit.syslog_facility,
                              .json_lines = c->audit.json_lines};
        audit_t *au = NULL;
        rc = audit_open(&uo, &au);
        if (rc) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "audit log %s: %s", c->audit.path, kms_strerror(rc));
            goto fail;
        }
        g_audit_durable = c->audit.durable;
        pthread_mutex_lock(&g_notify_mu);
        g_notify_srv = srv;
        pthread_mutex_unlock(&g_notify_mu);
        audit_set_notify(au, audit_notify, NULL);
        atomic_store(&g_audit_log, au);
    } else {
        kms_log(KMS_LOG_WARN, SRV_LOG, "audit log off (audit.path is empty)");
    }
    if (c->admin.socket[0]) {
        if (c->admin.mode & 0007)
            kms_log(KMS_LOG_WARN, SRV_LOG,
                    "admin.mode %04o lets every local user reach the admin socket (and so "
                    "every key, through a backup); use 0600, or 0660 with admin.group",
                    (unsigned)c->admin.mode);
        admin_options_t o = {.socket_path = c->admin.socket, .mode = c->admin.mode,
                             .group = c->admin.group, .store = srv->store,
                             .audit = atomic_load(&g_audit_log),
                             .client_ca = c->tls.client_ca, .keyring = srv->keyring,
                             .store_path = c->store.path, .version = SRV_VERSION,
                             .status_cb = status_cb, .status_arg = srv, .key_rotation = true,
                             .peer_listen = c->replication.listen,
                             .cluster_ca = c->replication.ca,
                             .cluster_ca_key = c->replication.ca_key,
                             .repl = srv->repl};
        rc = admin_start(&o, &g_admin);
        if (rc) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "admin socket %s: %s", c->admin.socket,
                    kms_strerror(rc));
            goto fail;
        }
    }
    return 0;
fail:
    srv_access_stop(srv);
    return rc;
}

void srv_audit_detach(srv_t *srv)
{
    (void)srv;
    pthread_mutex_lock(&g_notify_mu);
    g_notify_srv = NULL;
    pthread_mutex_unlock(&g_notify_mu);
}

bool srv_audit_full(void)
{
    return audit_backlog_full(atomic_load(&g_audit_log));
}

uint64_t srv_audit_durable(void)
{
    return audit_durable_ticket(atomic_load(&g_audit_log));
}

void srv_access_stop(srv_t *srv)
{
    srv_audit_detach(srv);
    admin_stop(g_admin);
    g_admin = NULL;
    audit_close(atomic_exchange(&g_audit_log, NULL));
}

audit_t *srv_audit_log(void)
{
    return atomic_load(&g_audit_log);
}

void srv_audit_record(const kmip_summary_t *sum, const kmip_peer_t *peer, uint64_t *ticket_out)
{
    audit_t *au = atomic_load(&g_audit_log);
    if (ticket_out)
        *ticket_out = 0;
    if (!au || !sum)
        return;
    char opbuf[24], stbuf[24], rsbuf[24];
    const char *op = sum->operation ? ttlv_enum_name(KMIP_TAG_OPERATION, sum->operation) : "none";
    if (!op) {
        snprintf(opbuf, sizeof(opbuf), "0x%08x", sum->operation);
        op = opbuf;
    }
    const char *st = ttlv_enum_name(KMIP_TAG_RESULT_STATUS, sum->result_status);
    if (!st) {
        snprintf(stbuf, sizeof(stbuf), "0x%08x", sum->result_status);
        st = stbuf;
    }
    const char *rs = "";
    if (sum->result_reason) {
        rs = ttlv_enum_name(KMIP_TAG_RESULT_REASON, sum->result_reason);
        if (!rs) {
            snprintf(rsbuf, sizeof(rsbuf), "0x%08x", sum->result_reason);
            rs = rsbuf;
        }
    }
    audit_rec_t rec = {
        .kind = "kmip",
        .identity = sum->identity[0] ? sum->identity : (peer && peer->cert_cn ? peer->cert_cn : ""),
        .tenant = sum->tenant,
        .address = peer ? peer->address : "",
        .operation = op,
        .object_id = sum->object_id,
        .result = st,
        .reason = rs,
        .batch_count = (long)sum->batch_count,
    };
    if (audit_write_ticket(au, &rec, g_audit_durable ? ticket_out : NULL) != 0)
        kms_log(KMS_LOG_ERROR, "audit", "could not queue an audit record");
}

/* keys/' health monitor, after every probe: readiness (HSM, store,
 * replication) is evaluated again and the listeners follow it (ready.c). */
static void health_cb(void *arg, const keys_health_t *h)
{
    (void)h; /* ready.c reads the same state through keys_hsm_down/keys_store_down */
    srv_ready_update(arg);
}

int srv_keys_start(srv_t *srv)
{
    keys_options_t ko = {.conf = srv->conf, .store = srv->store, .keyring = srv->keyring,
                         .hsm = srv->hsm, .health_cb = health_cb, .health_arg = srv};
    return keys_start(&ko);
}
