/*
 * server/startup.c: the start-up steps main.c runs in order, one function
 * each: process hardening, the HSM, the store, the data-store keyring (and
 * first-run generation of DSK 1), the KMIP engine, the worker pool size and
 * the privilege drop. Each logs one line on success and one clear error
 * line on failure, and returns 0 or a negative KMS_ERR_*.
 *
 * Keyring layout in store meta: "dsk.current" holds the current DSK id as
 * decimal text; "dsk.<id>" holds DSK <id> wrapped by the master key.
 *
 * It deliberately does not rotate DSKs or master keys (kmsctl and the admin
 * socket do) and never sees an unwrapped DSK (hsm/ keeps them).
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/keys.h"
#include "server/server_int.h"

#define DSK_CURRENT "dsk.current"
/* Highest DSK id we probe past the current one (a rotation cut short). */
#define DSK_PROBE_AHEAD 4

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

/* "master.current" from store meta into out: true when present. */
static bool srv_master_from_meta(srv_t *srv, char *out, size_t outlen)
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    bool ok = a && store_reader_new(srv->store, &rd) == 0 &&
              store_meta_get(rd, a, SRV_META_MASTER_CURRENT, &v, &len) == 0 && len > 0 &&
              len < outlen && !memchr(v, 0, len);
    if (ok) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
    store_reader_free(rd);
    kms_arena_free(a);
    return ok;
}

int srv_open_hsm(srv_t *srv)
{
    const struct conf_hsm *h = &srv->conf->hsm;
    char err[512] = "";
    hsm_config_t hc = {
        .provider = (enum hsm_provider)h->provider,
        .key_file = h->key_file[0] ? h->key_file : NULL,
        .module = h->module[0] ? h->module : NULL,
        .token_label = h->token_label[0] ? h->token_label : NULL,
        .slot = h->slot,
        .pin_file = h->pin_file[0] ? h->pin_file : NULL,
        .pin_env = h->pin_env[0] ? h->pin_env : NULL,
        .key_label = h->key_label[0] ? h->key_label : NULL,
    };
    /* A master rotation names the key in store meta (server/keys.h); it
     * wins over hsm.key_label / hsm.key_file. */
    char master[512];
    if (srv->store && srv_master_from_meta(srv, master, sizeof master)) {
        if (hc.provider == HSM_PROVIDER_FILE)
            hc.key_file = master;
        else
            hc.key_label = master;
        kms_log(KMS_LOG_INFO, SRV_LOG, "hsm: master key '%s' (store meta '%s', set by rotation)",
                master, SRV_META_MASTER_CURRENT);
    }
    int rc = hsm_open(&hc, &srv->hsm, err, sizeof err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "hsm: %s", err[0] ? err : kms_strerror(rc));
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

/* Parse "dsk.current": decimal 1..UINT32_MAX. */
static int parse_dsk_id(const uint8_t *v, size_t len, uint32_t *out)
{
    char tmp[16];
    if (len == 0 || len >= sizeof tmp)
        return KMS_ERR_PROTO;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(tmp, &end, 10);
    if (errno || *end || x == 0 || x > UINT32_MAX || tmp[0] < '1' || tmp[0] > '9')
        return KMS_ERR_PROTO;
    *out = (uint32_t)x;
    return 0;
}

/* First start: DSK 1, persisted (wrapped) before it is made current. */
static int keyring_first_run(srv_t *srv, store_reader_t *rd)
{
    int rc;
    kms_buf_t wrapped;
    store_write_t *w = NULL;
    kms_buf_init(&wrapped, 4096);

    int64_t nobj = store_count_objects(rd);
    if (nobj < 0) {
        rc = (int)nobj;
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot count objects: %s", kms_strerror(rc));
        goto out;
    }
    if (nobj != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG,
                "keyring: the store holds %" PRId64 " objects but no '" DSK_CURRENT
                "': refusing to start with a new key (restore the database's meta table)",
                nobj);
        rc = KMS_ERR_STATE;
        goto out;
    }
    rc = hsm_keyring_generate(srv->keyring, 1, &wrapped);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot generate DSK 1: %s", kms_strerror(rc));
        goto out;
    }
    w = store_write_new();
    if (!w) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if ((rc = store_write_meta(w, "dsk.1", wrapped.data, wrapped.len)) != 0 ||
        (rc = store_write_meta(w, DSK_CURRENT, "1", 1)) != 0 ||
        (rc = store_commit(srv->store, w, NULL, 0)) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot persist DSK 1: %s", kms_strerror(rc));
        goto out;
    }
    rc = hsm_keyring_set_current(srv->keyring, 1);
    if (rc == 0)
        kms_log(KMS_LOG_INFO, SRV_LOG, "keyring: first start, generated data-store key 1");
out:
    store_write_free(w);
    kms_buf_dispose(&wrapped); /* wrapped form only: no secret */
    return rc;
}

int srv_setup_keyring(srv_t *srv)
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = NULL;
    uint8_t *val = NULL;
    size_t len = 0;
    uint32_t cur = 0, loaded = 0;
    int rc;

    rc = hsm_keyring_new(srv->hsm, &srv->keyring);
    if (rc == 0)
        rc = store_reader_new(srv->store, &rd);
    a = kms_arena_new(1 << 20);
    if (rc == 0 && !a)
        rc = KMS_ERR_NOMEM;
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: %s", kms_strerror(rc));
        goto out;
    }
    rc = store_meta_get(rd, a, DSK_CURRENT, &val, &len);
    if (rc == KMS_ERR_NOTFOUND) {
        rc = keyring_first_run(srv, rd);
        goto out;
    }
    if (rc == 0)
        rc = parse_dsk_id(val, len, &cur);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot read '" DSK_CURRENT "': %s",
                kms_strerror(rc));
        goto out;
    }
    /* Every DSK 1..current (retired ones may be gone) and a few past it. */
    uint64_t last = (uint64_t)cur + DSK_PROBE_AHEAD;
    for (uint64_t id = 1; id <= last && id <= UINT32_MAX; id++) {
        char key[32];
        snprintf(key, sizeof key, "dsk.%" PRIu64, id);
        kms_arena_reset(a);
        rc = store_meta_get(rd, a, key, &val, &len);
        if (rc == KMS_ERR_NOTFOUND && id != cur) {
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = hsm_keyring_load(srv->keyring, (uint32_t)id, val, len);
        if (rc != 0) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot load %s: %s%s", key, kms_strerror(rc),
                    rc == KMS_ERR_CRYPTO ? " (wrong master key?)" : "");
            goto out;
        }
        loaded++;
    }
    rc = hsm_keyring_set_current(srv->keyring, cur);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keyring: cannot select DSK %u: %s", cur, kms_strerror(rc));
        goto out;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "keyring: %u data-store keys loaded, current %u", loaded, cur);
out:
    kms_arena_free(a);
    store_reader_free(rd);
    return rc;
}

int srv_open_kmip(srv_t *srv)
{
    kmip_config_t kc = {
        .store = srv->store,
        .keyring = srv->keyring,
        .auth = srv->auth,
        .auth_arg = srv->auth_arg,
        .max_response = srv->limits.max_response,
        .max_batch_items = srv->limits.max_batch_items,
        .max_depth = srv->limits.max_depth,
        .max_items = srv->limits.max_items,
        .vendor = "kmsd",
        .version = SRV_VERSION,
        .gate = srv_keys_gate, /* HSM down: key operations fail at once */
        .gate_arg = srv,
        .gate_msg = SRV_KEYS_GATE_MSG,
    };
    int rc = kmip_server_new(&kc, &srv->kmip);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "kmip: %s", kms_strerror(rc));
        return rc;
    }
    if (!srv->auth)
        kms_log(KMS_LOG_WARN, SRV_LOG,
                "kmip: no access control hook installed: every client is admin of 'default'");
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
