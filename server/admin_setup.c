/*
 * server/admin_setup.c: wires access control into a running kmsd.
 *
 * srv_access_start() builds the identity checker (auth.c), installs it as
 * kmip's auth callback and as the post-handshake certificate check when
 * tls.require_registered is set, opens the audit log and starts the admin
 * socket with a status callback that reads the server's own counters.
 * srv_access_stop() tears them down in reverse order. One server per
 * process, so the handles live in file-scope statics.
 *
 * It deliberately adds no behaviour of its own: everything it starts is
 * described in server/access.h.
 */
#include <stdio.h>
#include <string.h>

#include "server/access.h"
#include "server/keys.h"
#include "server/server_int.h"

static srv_access_t *g_access;
static srv_audit_t *g_audit_log;
static srv_admin_t *g_admin;

static int cert_check(void *arg, const char *sha256_hex, const char *cn)
{
    return srv_access_cert_registered(arg, sha256_hex, cn);
}

/* Admin thread: what the core knows about itself. */
static void status_cb(void *arg, srv_admin_status_t *st)
{
    srv_t *srv = arg;
    static char listen[256];
    st->connections = (int64_t)atomic_load(&srv->n_conns);
    st->requests = (int64_t)atomic_load(&srv->n_requests);
    st->hsm = srv->hsm ? hsm_describe(srv->hsm) : NULL;
    st->hsm_health = srv->hsm ? hsm_health(srv->hsm) : 1;
    /* Only the admin thread calls this, so a static buffer is safe. */
    size_t off = 0;
    listen[0] = '\0';
    for (size_t i = 0; i < srv->conf->n_listen && off < sizeof(listen); i++) {
        int n = snprintf(listen + off, sizeof(listen) - off, "%s%s", i ? " " : "",
                         srv->conf->listen[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    st->listen = listen;
}

int srv_access_start(srv_t *srv)
{
    const conf_t *c = srv->conf;
    srv_access_options_t ao = {.store = srv->store};
    int rc = srv_access_new(&ao, &g_access);
    if (rc) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "access control: %s", kms_strerror(rc));
        return rc;
    }
    srv->auth = srv_access_auth_cb;
    srv->auth_arg = g_access;
    if (c->tls.require_registered) {
        srv->cert_check = cert_check;
        srv->cert_check_arg = g_access;
    }
    if (c->audit.path[0]) {
        srv_audit_options_t uo = {.path = c->audit.path, .rotate_size = c->audit.rotate_size,
                                  .fsync = c->audit.fsync};
        rc = srv_audit_open(&uo, &g_audit_log);
        if (rc) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "audit log %s: %s", c->audit.path, kms_strerror(rc));
            goto fail;
        }
        srv_audit_set_global(g_audit_log);
    } else {
        kms_log(KMS_LOG_WARN, SRV_LOG, "audit log off (audit.path is empty)");
    }
    if (c->admin.socket[0]) {
        srv_admin_options_t o = {.socket_path = c->admin.socket, .mode = c->admin.mode,
                                 .group = c->admin.group, .store = srv->store,
                                 .access = g_access, .client_ca = c->tls.client_ca,
                                 .keyring = srv->keyring, .store_path = c->store.path,
                                 .version = SRV_VERSION, .status_cb = status_cb,
                                 .status_arg = srv, .rotate_cmd = srv_keys_admin};
        rc = srv_admin_start(&o, &g_admin);
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

void srv_access_stop(srv_t *srv)
{
    srv_admin_stop(g_admin);
    g_admin = NULL;
    srv_audit_set_global(NULL);
    srv_audit_close(g_audit_log);
    g_audit_log = NULL;
    if (srv && srv->auth_arg == g_access) {
        srv->auth = NULL;
        srv->auth_arg = NULL;
        srv->cert_check = NULL;
        srv->cert_check_arg = NULL;
    }
    srv_access_free(g_access);
    g_access = NULL;
}
