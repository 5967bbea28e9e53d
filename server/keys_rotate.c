/*
 * server/keys_rotate.c: online master-key and data-store-key rotation,
 * driven from the admin socket ("rotate.master", "rotate.store-key",
 * "rotate.status"), plus the start/stop of the key threads.
 *
 * rotate.master: a new master key is created (pkcs11: generated inside the
 * token as "<hsm.key_label>-<n>"; file: "<hsm.key_file>.<n>", 0600, next to
 * the old one), opened, every DSK found in store meta is re-wrapped under
 * it (and checked to unwrap), and the new wrapped forms plus
 * "master.current" = the new key are written in ONE store commit. Only then
 * does the new provider become the keyring's master. Crash-safety: before
 * the commit the store names the old key and holds DSKs wrapped by it;
 * after it, the new key (which already exists) and DSKs wrapped by it.
 * Start-up prefers "master.current" over hsm.key_label / hsm.key_file. The
 * old key is kept and named in the answer; removing it is the operator's
 * call, after a backup. Cost: one wrap per DSK, independent of the objects.
 *
 * rotate.store-key: DSK <current+1> is generated (needs the HSM), written
 * wrapped together with "dsk.current" in one commit, made current, and the
 * background re-encryption (keys_reencrypt.c) moves every object onto it.
 *
 * It deliberately never destroys a key, and runs only on the admin thread
 * (one command at a time), so two rotations never interleave.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/access.h" /* SRV_TAG_ADMIN_* */
#include "server/keys.h"
#include "server/server_int.h"

#define MASTER_NAME_MAX 512
#define DSK_SCAN_AHEAD 4 /* as srv_setup_keyring probes */

static struct {
    srv_t *srv;              /* set by srv_keys_start, cleared by stop; under mu */
    pthread_mutex_t mu;      /* one admin command at a time vs. stop */
    _Atomic(hsm_t *) hsm;   /* current master-key provider */
    hsm_t **retired;         /* replaced providers, closed at stop */
    size_t n_retired;
    char master[MASTER_NAME_MAX];   /* label or path of the current master key */
    char previous[MASTER_NAME_MAX];
    int64_t rotated_us;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

hsm_t *srv_keys_hsm(srv_t *srv)
{
    hsm_t *h = atomic_load(&g.hsm);
    return h ? h : (srv ? srv->hsm : NULL);
}

/* ---------------------------------------------------------------- meta */
/* Text value of a meta key into out; KMS_ERR_NOTFOUND when absent. */
static int meta_text(store_reader_t *rd, const char *key, char *out, size_t outlen)
{
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    int rc = a ? store_meta_get(rd, a, key, &v, &len) : KMS_ERR_NOMEM;
    if (rc == 0 && (len == 0 || len >= outlen || memchr(v, 0, len)))
        rc = KMS_ERR_PROTO;
    if (rc == 0) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
    kms_arena_free(a);
    return rc;
}

static const char *config_master(const srv_t *srv)
{
    const struct conf_hsm *h = &srv->conf->hsm;
    if ((int)h->provider == HSM_PROVIDER_FILE)
        return h->key_file;
    return h->key_label[0] ? h->key_label : "kmsd-master";
}

static bool is_file_provider(const srv_t *srv)
{
    return (int)srv->conf->hsm.provider == HSM_PROVIDER_FILE;
}

static void hsm_cfg(const srv_t *srv, const char *master, hsm_config_t *hc)
{
    const struct conf_hsm *h = &srv->conf->hsm;
    *hc = (hsm_config_t){
        .provider = (enum hsm_provider)h->provider,
        .key_file = h->key_file[0] ? h->key_file : NULL,
        .module = h->module[0] ? h->module : NULL,
        .token_label = h->token_label[0] ? h->token_label : NULL,
        .slot = h->slot,
        .pin_file = h->pin_file[0] ? h->pin_file : NULL,
        .pin_env = h->pin_env[0] ? h->pin_env : NULL,
        .key_label = h->key_label[0] ? h->key_label : NULL,
    };
    if (master && *master) {
        if (hc->provider == HSM_PROVIDER_FILE)
            hc->key_file = master;
        else
            hc->key_label = master;
    }
}

/* ------------------------------------------------------------- records */
static ttlv_item_t *rec_new(kms_arena_t *a, ttlv_item_t *resp)
{
    return ttlv_new_struct(a, resp, SRV_TAG_ADMIN_RECORD);
}

static int f_text(kms_arena_t *a, ttlv_item_t *rec, const char *name, const char *v)
{
    ttlv_item_t *f = ttlv_new_struct(a, rec, SRV_TAG_ADMIN_FIELD);
    return f && ttlv_new_textz(a, f, SRV_TAG_ADMIN_FIELD_NAME, name) &&
                   ttlv_new_textz(a, f, SRV_TAG_ADMIN_FIELD_TEXT, v ? v : "")
               ? 0
               : KMS_ERR_NOMEM;
}

static int f_long(kms_arena_t *a, ttlv_item_t *rec, const char *name, int64_t v)
{
    ttlv_item_t *f = ttlv_new_struct(a, rec, SRV_TAG_ADMIN_FIELD);
    return f && ttlv_new_textz(a, f, SRV_TAG_ADMIN_FIELD_NAME, name) &&
                   ttlv_new_long(a, f, SRV_TAG_ADMIN_FIELD_LONG, v)
               ? 0
               : KMS_ERR_NOMEM;
}

/* -------------------------------------------------------- rotate.master */
static int rotate_master(kms_arena_t *a, ttlv_item_t *resp, char *msg, size_t msglen)
{
    srv_t *srv = g.srv;
    store_reader_t *rd = NULL;
    store_write_t *w = NULL;
    hsm_t *h2 = NULL;
    kms_buf_t wrapped;
    char err[512] = "", gen_txt[32] = "", newname[MASTER_NAME_MAX] = "", key[32];
    int64_t gen = 1;
    int rc, n_dsk = 0;
    kms_buf_init(&wrapped, 4096);

    if ((rc = store_reader_new(srv->store, &rd)) != 0) {
        snprintf(msg, msglen, "cannot read the store: %s", kms_strerror(rc));
        goto out;
    }
    if (meta_text(rd, SRV_META_MASTER_GENERATION, gen_txt, sizeof gen_txt) == 0)
        gen = strtoll(gen_txt, NULL, 10);
    if (gen < 1)
        gen = 1;
    /* The new key: the next free "<base>-<n>" (a rotation cut short may
     * have left one behind: it is never used, so skip it). */
    hsm_config_t hc;
    hsm_cfg(srv, g.master, &hc);
    const char *base = config_master(srv);
    rc = KMS_ERR_EXISTS;
    for (int tries = 0; tries < 32 && rc == KMS_ERR_EXISTS; tries++) {
        gen++;
        snprintf(newname, sizeof newname, is_file_provider(srv) ? "%s.%" PRId64 : "%s-%" PRId64,
                 base, gen);
        err[0] = '\0';
        rc = hsm_init_master(&hc, newname, err, sizeof err);
    }
    if (rc) {
        snprintf(msg, msglen, "cannot create the new master key '%s': %s", newname,
                 err[0] ? err : kms_strerror(rc));
        goto out;
    }
    hsm_config_t hc2;
    hsm_cfg(srv, newname, &hc2);
    if ((rc = hsm_open(&hc2, &h2, err, sizeof err)) != 0) {
        snprintf(msg, msglen, "cannot open the new master key '%s': %s", newname,
                 err[0] ? err : kms_strerror(rc));
        goto out;
    }
    /* Every DSK the store knows, re-wrapped and checked under the new key. */
    w = store_write_new();
    if (!w) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    uint32_t cur = hsm_keyring_current(srv->keyring);
    for (uint64_t id = 1; id <= (uint64_t)cur + DSK_SCAN_AHEAD && id <= UINT32_MAX; id++) {
        kms_arena_t *ma = kms_arena_new(0);
        uint8_t *v = NULL;
        size_t len = 0;
        snprintf(key, sizeof key, "dsk.%" PRIu64, id);
        rc = ma ? store_meta_get(rd, ma, key, &v, &len) : KMS_ERR_NOMEM;
        kms_arena_free(ma);
        if (rc == KMS_ERR_NOTFOUND)
            continue;
        wrapped.len = 0;
        kms_secret_t *check = NULL;
        if (rc == 0)
            rc = hsm_keyring_rewrap(srv->keyring, (uint32_t)id, h2, &wrapped);
        if (rc == 0)
            rc = hsm_unwrap(h2, wrapped.data, wrapped.len, &check);
        kms_secret_free(check);
        if (rc == 0)
            rc = store_write_meta(w, key, wrapped.data, wrapped.len);
        if (rc) {
            snprintf(msg, msglen, "cannot re-wrap %s under '%s': %s (nothing changed)", key,
                     newname, kms_strerror(rc));
            goto out;
        }
        n_dsk++;
    }
    snprintf(gen_txt, sizeof gen_txt, "%" PRId64, gen);
    if ((rc = store_write_meta(w, SRV_META_MASTER_CURRENT, newname, strlen(newname))) != 0 ||
        (rc = store_write_meta(w, SRV_META_MASTER_PREVIOUS, g.master, strlen(g.master))) != 0 ||
        (rc = store_write_meta(w, SRV_META_MASTER_GENERATION, gen_txt, strlen(gen_txt))) != 0 ||
        (rc = store_commit(srv->store, w, NULL, 0)) != 0) {
        snprintf(msg, msglen, "cannot persist the re-wrapped keys: %s (nothing changed; the "
                 "unused key '%s' may be removed)", kms_strerror(rc), newname);
        goto out;
    }
    /* Durable: the new key is the master from now on. */
    hsm_t **r = realloc(g.retired, (g.n_retired + 1) * sizeof *r);
    if (r) {
        g.retired = r;
    }
    hsm_t *old = srv_keys_hsm(srv);
    hsm_keyring_set_master(srv->keyring, h2);
    atomic_store(&g.hsm, h2);
    srv->hsm = h2;
    if (r)
        g.retired[g.n_retired++] = old; /* monitor/status may still hold it: close at stop */
    /* (On realloc failure the old provider leaks: harmless, never freed twice.) */
    h2 = NULL;
    snprintf(g.previous, sizeof g.previous, "%s", g.master);
    snprintf(g.master, sizeof g.master, "%s", newname);
    g.rotated_us = kms_now_us();
    kms_log(KMS_LOG_INFO, SRV_LOG,
            "rotate: master key is now '%s' (%d data-store keys re-wrapped); the previous key "
            "'%s' is kept: remove it after a backup",
            g.master, n_dsk, g.previous);
    ttlv_item_t *rec = rec_new(a, resp);
    if (!rec || f_text(a, rec, "master", g.master) || f_text(a, rec, "previous", g.previous) ||
        f_long(a, rec, "dsks_rewrapped", n_dsk) ||
        f_text(a, rec, "note", "the previous master key was kept; remove it after a backup"))
        rc = KMS_ERR_NOMEM;
out:
    hsm_close(h2);
    store_write_free(w);
    store_reader_free(rd);
    kms_buf_dispose(&wrapped);
    return rc;
}

/* ----------------------------------------------------- rotate.store-key */
static int rotate_store_key(kms_arena_t *a, ttlv_item_t *resp, char *msg, size_t msglen)
{
    srv_t *srv = g.srv;
    kms_buf_t wrapped;
    store_write_t *w = NULL;
    char key[32], cur_txt[16];
    int rc;
    kms_buf_init(&wrapped, 4096);
    if (srv_keys_reencrypt_busy()) {
        srv_keys_progress_t p;
        srv_keys_reencrypt_progress(&p);
        snprintf(msg, msglen,
                 "a re-encryption onto data-store key %u is still running (%" PRId64 "/%" PRId64
                 "); wait for it (kmsctl rotate status)",
                 p.target, p.done, p.total);
        return KMS_ERR_BUSY;
    }
    uint32_t old = hsm_keyring_current(srv->keyring), id = 0;
    rc = KMS_ERR_EXISTS;
    /* Ids above current may be loaded from a rotation cut short: skip them. */
    for (uint32_t cand = old + 1; cand != 0 && cand <= old + 16 && rc == KMS_ERR_EXISTS; cand++) {
        wrapped.len = 0;
        rc = hsm_keyring_generate(srv->keyring, cand, &wrapped);
        id = cand;
    }
    if (rc) {
        snprintf(msg, msglen, "cannot generate a new data-store key: %s", kms_strerror(rc));
        goto out;
    }
    snprintf(key, sizeof key, "dsk.%u", id);
    snprintf(cur_txt, sizeof cur_txt, "%u", id);
    w = store_write_new();
    if (!w || (rc = store_write_meta(w, key, wrapped.data, wrapped.len)) != 0 ||
        (rc = store_write_meta(w, SRV_META_DSK_CURRENT, cur_txt, strlen(cur_txt))) != 0 ||
        (rc = store_commit(srv->store, w, NULL, 0)) != 0) {
        rc = rc ? rc : KMS_ERR_NOMEM;
        snprintf(msg, msglen, "cannot persist data-store key %u: %s", id, kms_strerror(rc));
        goto out;
    }
    if ((rc = hsm_keyring_set_current(srv->keyring, id)) != 0) {
        snprintf(msg, msglen, "cannot select data-store key %u: %s", id, kms_strerror(rc));
        goto out;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG,
            "rotate: data-store key %u is current (was %u); re-encrypting objects in the background",
            id, old);
    srv_keys_reencrypt_kick();
    ttlv_item_t *rec = rec_new(a, resp);
    if (!rec || f_long(a, rec, "dsk", id) || f_long(a, rec, "previous_dsk", old) ||
        f_text(a, rec, "state", "started"))
        rc = KMS_ERR_NOMEM;
out:
    store_write_free(w);
    kms_buf_dispose(&wrapped);
    return rc;
}

/* -------------------------------------------------------- rotate.status */
static int rotate_status(kms_arena_t *a, ttlv_item_t *resp)
{
    srv_t *srv = g.srv;
    srv_keys_progress_t p;
    srv_keys_reencrypt_progress(&p);
    int64_t now = kms_now_us();
    int64_t elapsed = p.started_us ? ((p.finished_us ? p.finished_us : now) - p.started_us) / 1000 : 0;
    ttlv_item_t *rec = rec_new(a, resp);
    if (!rec || f_text(a, rec, "state", p.state) ||
        f_long(a, rec, "dsk", hsm_keyring_current(srv->keyring)) ||
        f_long(a, rec, "target_dsk", p.target) || f_long(a, rec, "total", p.total) ||
        f_long(a, rec, "done", p.done) || f_long(a, rec, "failed", p.failed) ||
        f_long(a, rec, "elapsed_ms", elapsed) || f_text(a, rec, "master", g.master) ||
        f_text(a, rec, "previous_master", g.previous) ||
        f_text(a, rec, "hsm", atomic_load(&srv->hsm_down) ? "unavailable" : "ok"))
        return KMS_ERR_NOMEM;
    return 0;
}

static int admin_locked(const char *cmd, kms_arena_t *a, ttlv_item_t *resp, char *msg,
                        size_t msglen)
{
    if (!g.srv) {
        snprintf(msg, msglen, "kmsd is starting or stopping");
        return KMS_ERR_UNAVAIL;
    }
    if (strcmp(cmd, "rotate.status") == 0)
        return rotate_status(a, resp);
    if (atomic_load(&g.srv->hsm_down)) {
        snprintf(msg, msglen, "the HSM is unavailable: rotation needs it");
        return KMS_ERR_UNAVAIL;
    }
    if (strcmp(cmd, "rotate.master") == 0)
        return rotate_master(a, resp, msg, msglen);
    if (strcmp(cmd, "rotate.store-key") == 0)
        return rotate_store_key(a, resp, msg, msglen);
    snprintf(msg, msglen, "unknown rotate command '%s'", cmd);
    return KMS_ERR_NOTSUP;
}

int srv_keys_admin(const char *cmd, const ttlv_item_t *req, kms_arena_t *a, ttlv_item_t *resp,
                   char *msg, size_t msglen)
{
    (void)req;
    pthread_mutex_lock(&g.mu);
    int rc = admin_locked(cmd, a, resp, msg, msglen);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

/* ---------------------------------------------------------- lifecycle */
int srv_keys_start(srv_t *srv)
{
    store_reader_t *rd = NULL;
    int rc = store_reader_new(srv->store, &rd);
    if (rc) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "keys: %s", kms_strerror(rc));
        return rc;
    }
    if (meta_text(rd, SRV_META_MASTER_CURRENT, g.master, sizeof g.master) != 0)
        snprintf(g.master, sizeof g.master, "%s", config_master(srv));
    if (meta_text(rd, SRV_META_MASTER_PREVIOUS, g.previous, sizeof g.previous) != 0)
        g.previous[0] = '\0';
    store_reader_free(rd);
    atomic_store(&g.hsm, srv->hsm);
    pthread_mutex_lock(&g.mu);
    g.srv = srv;
    pthread_mutex_unlock(&g.mu);
    if ((rc = srv_keys_health_start(srv)) != 0)
        return rc;
    return srv_keys_reencrypt_start(srv);
}

void srv_keys_stop(srv_t *srv)
{
    (void)srv;
    pthread_mutex_lock(&g.mu); /* waits for a rotation in progress */
    g.srv = NULL;
    pthread_mutex_unlock(&g.mu);
    srv_keys_health_stop();
    srv_keys_reencrypt_stop();
    /* srv->hsm (the current provider) is closed by main.c. */
    for (size_t i = 0; i < g.n_retired; i++)
        hsm_close(g.retired[i]);
    free(g.retired);
    g.retired = NULL;
    g.n_retired = 0;
}
