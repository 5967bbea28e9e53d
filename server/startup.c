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
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certs/certs.h"
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

/* The directory part of path into out ("." when none). */
static void dir_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* A backup's temporary copy (admin/backup.c: "<store>.backup-<pid>-<time>.db"
 * and its -wal, -shm, -journal) is removed when the backup ends; a crash
 * during a backup leaves it, as large as the database and holding keys
 * destroyed since. Nothing else can be using it when kmsd starts. */
static void remove_backup_leftovers(const char *store_path)
{
    char dir[4096], prefix[512];
    const char *slash = strrchr(store_path, '/');
    const char *base = slash ? slash + 1 : store_path;
    dir_of(store_path, dir, sizeof dir);
    snprintf(prefix, sizeof prefix, "%s.backup-", base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || !strstr(e->d_name, ".db"))
            continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
        if (unlink(path) == 0)
            kms_log(KMS_LOG_WARN, SRV_LOG,
                    "removed %s (%lld bytes): a backup's temporary copy left by a crash", path,
                    size);
        else
            kms_log(KMS_LOG_ERROR, SRV_LOG, "cannot remove a backup's temporary copy %s: %s",
                    path, strerror(errno));
    }
    closedir(d);
}

int srv_open_store(srv_t *srv)
{
    remove_backup_leftovers(srv->conf->store.path);
    store_options_t so = {
        .path = srv->conf->store.path,
        .node_id = srv->conf->node_id[0] ? srv->conf->node_id : NULL,
        .max_batch = srv->conf->store.max_batch,
        .cache_bytes = srv->conf->store.cache_size,
        .no_cache = srv->conf->store.cache_size == 0,
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

/* certify.ca with its key, for Certify / Re-certify. Refused when a CA
 * kmsd trusts for its own clients or peers would accept what it signs:
 * then any KMIP client could obtain a kmsd credential (docs/security.md). */
int srv_certify_ca_trusted(const srv_t *srv, const conf_t *c)
{
    const char *trusts[] = {c->tls.client_ca, c->replication.ca};
    const char *keys[] = {"tls.client_ca", "replication.ca"};

    for (size_t i = 0; srv->certify_ca && i < KMS_ARRAY_SIZE(trusts); i++) {
        kms_error_t verr = {0};
        if (!trusts[i][0] || certs_verify_file(trusts[i], srv->certify_ca, 0, &verr) != 0)
            continue;
        kms_log(KMS_LOG_ERROR, SRV_LOG,
                "certify.ca %s is trusted by %s (%s): certificates it issues to KMIP clients "
                "would be kmsd credentials; give Certify a CA of its own",
                srv->conf->certify.ca, keys[i], trusts[i]);
        return KMS_ERR_CONFIG;
    }
    return 0;
}

static int open_certify_ca(srv_t *srv)
{
    const struct conf_certify *cc = &srv->conf->certify;
    kms_error_t err = {0};
    int rc;

    if (!cc->ca[0]) {
        kms_log(KMS_LOG_INFO, SRV_LOG, "certify: off (no certify.ca): Certify and Re-certify "
                                       "answer Operation Not Supported");
        return 0;
    }
    if (!cc->ca_key[0]) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "certify.ca is set but certify.ca_key is not");
        return KMS_ERR_CONFIG;
    }
    rc = certs_load_ca(cc->ca, cc->ca_key, &srv->certify_ca, &srv->certify_ca_key, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "certify: %s", kms_error_msg(&err));
        return rc;
    }
    if ((rc = srv_certify_ca_trusted(srv, srv->conf)) != 0)
        return rc;
    kms_log(KMS_LOG_INFO, SRV_LOG, "certify: issuing CA %s (%u days)", cc->ca, cc->days);
    return 0;
}

int srv_open_kmip(srv_t *srv)
{
    int rc = open_certify_ca(srv);
    if (rc != 0)
        return rc;

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
        .crypto_streams_per_tenant = srv->limits.crypto_streams_per_tenant,
        .crypto_stream_idle_s = (uint32_t)((srv->limits.crypto_stream_idle_ms + 999) / 1000),
        .request_time_ms = srv->limits.request_time_ms > UINT32_MAX
                               ? UINT32_MAX
                               : (uint32_t)srv->limits.request_time_ms,
        .vendor = "kmsd",
        .version = SRV_VERSION,
        .key_policy = srv->conf->kmip.key_policy == CONF_KEY_POLICY_NIST ? KMIP_KEY_POLICY_NIST
                                                                          : KMIP_KEY_POLICY_INTEROP,
        .certify_ca = srv->certify_ca,
        .certify_ca_key = srv->certify_ca_key,
        .certify_days = srv->conf->certify.days,
    };
    rc = kmip_server_new(&kc, &srv->kmip);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "kmip: %s", kms_strerror(rc));
        return rc;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "kmip: engine ready (max response %zu, max batch %u)",
            srv->limits.max_response, srv->limits.max_batch_items);
    return 0;
}

static void pool_noop(uv_work_t *w)
{
    (void)w;
}

static void pool_noop_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

int srv_start_threadpool(srv_t *srv)
{
    /* libuv reads UV_THREADPOOL_SIZE once, when the first work item of the
     * process is queued, and creates all its threads then. Whichever
     * thread queues first fixes the size: the replication thread applies
     * a snapshot as soon as its peer link is up, so the pool is started
     * here, before any other thread exists. The threads are created by
     * this thread and inherit its name, which is set to "kmsd-pool" for
     * the moment (profiles and `ps -L` tell them from the loops). */
    unsigned n = srv->conf->threads;
    if (n > 1024) {
        kms_log(KMS_LOG_WARN, SRV_LOG, "threads: %u clipped to libuv's maximum 1024", n);
        n = 1024;
    }
    char v[16], name[16] = "kmsd";
    snprintf(v, sizeof v, "%u", n ? n : 1);
    setenv("UV_THREADPOOL_SIZE", v, 1);
    (void)pthread_getname_np(pthread_self(), name, sizeof name);
    (void)pthread_setname_np(pthread_self(), "kmsd-pool");
    uv_loop_t loop;
    uv_work_t w;
    int r = uv_loop_init(&loop);
    if (r == 0) {
        r = uv_queue_work(&loop, &w, pool_noop, pool_noop_done);
        if (r == 0)
            r = uv_run(&loop, UV_RUN_DEFAULT) < 0 ? UV_EINVAL : 0;
        (void)uv_loop_close(&loop);
    }
    (void)pthread_setname_np(pthread_self(), name);
    if (r != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "worker threads: %s", uv_strerror(r));
        return KMS_ERR_INTERNAL;
    }
    return 0;
}

/* After dropping to run_as: can this user use path (mode: access(2)
 * bits)? Missing optional files are fine. */
static int check_one(const char *user, const char *what, const char *path, int mode,
                     bool optional)
{
    if (access(path, mode) == 0 || (optional && errno == ENOENT))
        return 0;
    int e = errno;
    struct stat st;
    char own[96] = "";
    if (stat(path, &st) == 0)
        snprintf(own, sizeof own, " (owner uid %u gid %u, mode %04o)", (unsigned)st.st_uid,
                 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
    kms_log(KMS_LOG_ERROR, SRV_LOG,
            "run_as '%s': cannot %s %s%s: %s; give it to that user (chown %s)", user, what, path,
            own, strerror(e), user);
    return KMS_ERR_CONFIG;
}

static int check_access(srv_t *srv, const char *user)
{
    const conf_t *c = srv->conf;
    char dir[4096], side[4200];
    int rc = 0;
    dir_of(c->store.path, dir, sizeof dir);
    rc |= check_one(user, "create files in", dir, W_OK | X_OK, false);
    rc |= check_one(user, "read and write", c->store.path, R_OK | W_OK, false);
    snprintf(side, sizeof side, "%s-wal", c->store.path);
    rc |= check_one(user, "read and write", side, R_OK | W_OK, true);
    snprintf(side, sizeof side, "%s-shm", c->store.path);
    rc |= check_one(user, "read and write", side, R_OK | W_OK, true);
    /* The audit file itself stays open from before the drop; rotation
     * creates the next one in its directory. */
    if (c->audit.path[0]) {
        dir_of(c->audit.path, dir, sizeof dir);
        rc |= check_one(user, "create files in", dir, W_OK | X_OK, false);
    }
    return rc ? KMS_ERR_CONFIG : 0;
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
    /* Files opened as root stay open, but workers open the database again
     * and rotations create files: say now, plainly, if the user cannot. */
    int rc = check_access(srv, user);
    if (rc)
        return rc;
    kms_log(KMS_LOG_INFO, SRV_LOG, "privileges dropped to %s (uid %u)", user,
            (unsigned)pw->pw_uid);
    return 0;
}
