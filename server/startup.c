/*
 * server/startup.c: the start-up steps main.c runs in order, one function
 * each: process hardening, the HSM, the store, the KMIP engine, the worker
 * pool size and the privilege drop. Each logs one line on success and one
 * clear error line on failure, and returns 0 or a negative KMS_ERR_*.
 *
 * It deliberately does not load or rotate data-store keys (keys/ does) and
 * never sees an unwrapped key (hsm/ keeps them).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/keys.h"
#include "server/server_int.h"

int srv_harden(void)
{
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "harden: setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
        return KMS_ERR_INTERNAL;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "harden: prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
        return KMS_ERR_INTERNAL;
    }
    umask(077);
    kms_log(KMS_LOG_INFO, SRV_LOG, "hardened: no core dumps, not dumpable, umask 077");
    return 0;
}

int srv_open_hsm(srv_t *srv)
{
    kms_error_t err;
    hsm_config_t hc;
    kms_error_clear(&err);
    /* A master rotation names the key in store meta (keys/keys.h); it
     * wins over hsm.key_label / hsm.key_file. */
    char master[512];
    bool rotated = srv->store && keys_master_from_meta(srv->store, master, sizeof master) == 0;
    int rc = keys_hsm_config(srv->conf, rotated ? master : NULL, &hc, &err);
    if (rc == 0 && rotated)
        kms_log(KMS_LOG_INFO, SRV_LOG, "hsm: master key '%s' (store meta '%s', set by rotation)",
                master, KEYS_META_MASTER_CURRENT);
    if (rc == 0)
        rc = hsm_open(&hc, &srv->hsm, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "hsm: %s", err.msg[0] ? err.msg : kms_strerror(rc));
        return rc;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "hsm: %s", hsm_describe(srv->hsm));
    return 0;
}

int srv_open_store(srv_t *srv)
{
    store_options_t so = {
        .path = srv->conf->store.path,
        .node_id = srv->conf->node_id[0] ? srv->conf->node_id : NULL,
        .max_batch = srv->conf->store.max_batch,
    };
    int rc = store_open(&so, &srv->store);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "store: cannot open %s: %s", so.path, kms_strerror(rc));
        return rc;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "store: %s (schema %d, node %s)", so.path,
            store_schema_version(srv->store), store_node_id(srv->store));
    return 0;
}

int srv_open_kmip(srv_t *srv)
{
    kmip_config_t kc = {
        .store = srv->store,
        .keyring = srv->keyring,
        .access = KMIP_ACCESS_CLIENTS, /* identities from the clients table */
        .max_response = srv->limits.max_response,
        .max_batch_items = srv->limits.max_batch_items,
        .max_depth = srv->limits.max_depth,
        .max_items = srv->limits.max_items,
        .crypto_streams_max = srv->limits.crypto_streams,
        .crypto_streams_per_identity = srv->limits.crypto_streams_per_client,
        .crypto_stream_idle_s = (uint32_t)((srv->limits.crypto_stream_idle_ms + 999) / 1000),
        .request_time_ms = srv->limits.request_time_ms > UINT32_MAX
                               ? UINT32_MAX
                               : (uint32_t)srv->limits.request_time_ms,
        .vendor = "kmsd",
        .version = SRV_VERSION,
        .key_policy = srv->conf->kmip.key_policy == CONF_KEY_POLICY_NIST ? KMIP_KEY_POLICY_NIST
                                                                          : KMIP_KEY_POLICY_INTEROP,
    };
    int rc = kmip_server_new(&kc, &srv->kmip);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "kmip: %s", kms_strerror(rc));
        return rc;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "kmip: engine ready (max response %zu, max batch %u)",
            srv->limits.max_response, srv->limits.max_batch_items);
    return 0;
}

void srv_set_threadpool(srv_t *srv)
{
    /* libuv reads this once, when the first work item is queued. */
    unsigned n = srv->conf->threads;
    if (n > 1024) {
        kms_log(KMS_LOG_WARN, SRV_LOG, "threads: %u clipped to libuv's maximum 1024", n);
        n = 1024;
    }
    char v[16];
    snprintf(v, sizeof v, "%u", n ? n : 1);
    setenv("UV_THREADPOOL_SIZE", v, 1);
}

int srv_drop_privileges(srv_t *srv)
{
    const char *user = srv->conf->run_as;
    if (geteuid() != 0) {
        if (user[0])
            kms_log(KMS_LOG_INFO, SRV_LOG, "run_as '%s' ignored: not started as root", user);
        return 0;
    }
    if (!user[0]) {
        kms_log(KMS_LOG_WARN, SRV_LOG, "running as root: set run_as to drop privileges");
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "run_as: no user '%s'", user);
        return KMS_ERR_CONFIG;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "run_as '%s': %s", user, strerror(errno));
        return KMS_ERR_PERM;
    }
    if (setuid(0) == 0 || geteuid() != pw->pw_uid) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "run_as '%s': could regain root, refusing", user);
        return KMS_ERR_PERM;
    }
    /* A credential change resets the dumpable flag: clear it again. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    kms_log(KMS_LOG_INFO, SRV_LOG, "privileges dropped to %s (uid %u)", user,
            (unsigned)pw->pw_uid);
    return 0;
}
