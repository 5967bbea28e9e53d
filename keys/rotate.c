/*
 * keys/rotate.c: online master-key and data-store-key rotation, called by
 * the admin socket's "rotate.master", "rotate.store-key" and
 * "rotate.status" (admin/cmds.c formats the answers), plus the start/stop
 * of the key threads.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys_int.h"

#define MASTER_NAME_MAX 512

static struct {
    keys_options_t opt;      /* as given to keys_start */
    const keys_options_t *k; /* &opt while started, NULL otherwise; under mu */
    pthread_mutex_t mu;      /* one admin command at a time vs. stop */
    _Atomic(hsm_t *) hsm;   /* current master-key provider */
    hsm_t **retired;         /* replaced providers, closed at stop */
    size_t n_retired;
    char master[MASTER_NAME_MAX];   /* label or path of the current master key */
    char previous[MASTER_NAME_MAX];
    int64_t rotated_us;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

hsm_t *keys_hsm(void)
{
    return atomic_load(&g.hsm);
}

/* ---------------------------------------------------------------- meta */
static const char *config_master(const keys_options_t *k)
{
    const struct conf_hsm *h = &k->conf->hsm;
    if (h->provider == CONF_HSM_FILE)
        return h->key_file;
    return h->key_label[0] ? h->key_label : "kmsd-master";
}

static bool is_file_provider(const keys_options_t *k)
{
    return k->conf->hsm.provider == CONF_HSM_FILE;
}

/* -------------------------------------------------------- rotate.master */
static int rotate_master(const keys_options_t *k, keys_master_rotation_t *out, kms_error_t *err)
{
    store_reader_t *rd = NULL;
    store_write_t *w = NULL;
    hsm_t *h2 = NULL;
    kms_buf_t wrapped;
    kms_error_t herr;
    char gen_txt[32] = "", newname[MASTER_NAME_MAX] = "", key[32];
    int64_t gen = 1;
    int rc, n_dsk = 0;
    kms_buf_init(&wrapped, 4096);

    if ((rc = store_reader_new(k->store, &rd)) != 0) {
        kms_error_set(err, rc, "cannot read the store: %s", kms_strerror(rc));
        goto out;
    }
    if (keys_meta_text(rd, KEYS_META_MASTER_GENERATION, gen_txt, sizeof gen_txt) == 0)
        gen = strtoll(gen_txt, NULL, 10);
    if (gen < 1)
        gen = 1;
    /* The new key: the next free "<base>-<n>" (a rotation cut short may
     * have left one behind: it is never used, so skip it). */
    hsm_config_t hc, hc2;
    if ((rc = keys_hsm_config(k->conf, g.master, &hc, err)) != 0)
        goto out;
    const char *base = config_master(k);
    rc = KMS_ERR_EXISTS;
    for (int tries = 0; tries < 32 && rc == KMS_ERR_EXISTS; tries++) {
        gen++;
        snprintf(newname, sizeof newname, is_file_provider(k) ? "%s.%" PRId64 : "%s-%" PRId64,
                 base, gen);
        kms_error_clear(&herr);
        rc = hsm_init_master(&hc, newname, &herr);
    }
    if (rc) {
        kms_error_set(err, rc, "cannot create the new master key '%s': %s", newname,
                      herr.msg[0] ? herr.msg : kms_strerror(rc));
        goto out;
    }
    if ((rc = keys_hsm_config(k->conf, newname, &hc2, err)) != 0)
        goto out;
    kms_error_clear(&herr);
    if ((rc = hsm_open(&hc2, &h2, &herr)) != 0) {
        kms_error_set(err, rc, "cannot open the new master key '%s': %s", newname,
                      herr.msg[0] ? herr.msg : kms_strerror(rc));
        goto out;
    }
    /* Every DSK the store knows, re-wrapped and checked under the new key. */
    w = store_write_new();
    if (!w) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    uint32_t cur = hsm_keyring_current(k->keyring);
    for (uint64_t id = 1; id <= (uint64_t)cur + KEYS_DSK_PROBE_AHEAD && id <= UINT32_MAX; id++) {
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
            rc = hsm_keyring_rewrap(k->keyring, (uint32_t)id, h2, &wrapped);
        if (rc == 0)
            rc = hsm_unwrap(h2, wrapped.data, wrapped.len, &check);
        kms_secret_free(check);
        if (rc == 0)
            rc = store_write_meta(w, key, wrapped.data, wrapped.len);
        if (rc) {
            kms_error_set(err, rc, "cannot re-wrap %s under '%s': %s (nothing changed)", key,
                          newname, kms_strerror(rc));
            goto out;
        }
        n_dsk++;
    }
    snprintf(gen_txt, sizeof gen_txt, "%" PRId64, gen);
    if ((rc = store_write_meta(w, KEYS_META_MASTER_CURRENT, newname, strlen(newname))) != 0 ||
        (rc = store_write_meta(w, KEYS_META_MASTER_PREVIOUS, g.master, strlen(g.master))) != 0 ||
        (rc = store_write_meta(w, KEYS_META_MASTER_GENERATION, gen_txt, strlen(gen_txt))) != 0 ||
        (rc = store_commit(k->store, w, NULL, 0)) != 0) {
        kms_error_set(err, rc, "cannot persist the re-wrapped keys: %s (nothing changed; the "
                      "unused key '%s' may be removed)", kms_strerror(rc), newname);
        goto out;
    }
    /* Durable: the new key is the master from now on. */
    hsm_t **r = realloc(g.retired, (g.n_retired + 1) * sizeof *r);
    if (r) {
        g.retired = r;
    }
    hsm_t *old = keys_hsm();
    hsm_keyring_set_master(k->keyring, h2);
    atomic_store(&g.hsm, h2);
    if (r)
        g.retired[g.n_retired++] = old; /* monitor/status may still hold it: close at stop */
    /* (On realloc failure the old provider leaks: harmless, never freed twice.) */
    h2 = NULL;
    snprintf(g.previous, sizeof g.previous, "%s", g.master);
    snprintf(g.master, sizeof g.master, "%s", newname);
    g.rotated_us = kms_now_us();
    kms_log(KMS_LOG_INFO, KEYS_LOG,
            "rotate: master key is now '%s' (%d data-store keys re-wrapped); the previous key "
            "'%s' is kept: remove it after a backup",
            g.master, n_dsk, g.previous);
    snprintf(out->master, sizeof out->master, "%s", g.master);
    snprintf(out->previous, sizeof out->previous, "%s", g.previous);
    out->dsks_rewrapped = n_dsk;
out:
    hsm_close(h2);
    store_write_free(w);
    store_reader_free(rd);
    kms_buf_dispose(&wrapped);
    return rc;
}

/* ----------------------------------------------------- rotate.store-key */
static int rotate_store_key(const keys_options_t *k, uint32_t *dsk_out, uint32_t *previous_out,
                            kms_error_t *err)
{
    kms_buf_t wrapped;
    store_write_t *w = NULL;
    int rc;
    kms_buf_init(&wrapped, 4096);
    if (keys_reencrypt_busy()) {
        keys_progress_t p;
        keys_reencrypt_progress(&p);
        return kms_error_set(err, KMS_ERR_BUSY,
                             "a re-encryption onto data-store key %u is still running (%" PRId64
                             "/%" PRId64 "); wait for it (kmsctl rotate status)",
                             p.target, p.done, p.total);
    }
    uint32_t old = hsm_keyring_current(k->keyring), id = 0;
    rc = KMS_ERR_EXISTS;
    /* Ids above current may be loaded from a rotation cut short: skip them. */
    for (uint32_t cand = old + 1; cand != 0 && cand <= old + 16 && rc == KMS_ERR_EXISTS; cand++) {
        wrapped.len = 0;
        rc = hsm_keyring_generate(k->keyring, cand, &wrapped);
        id = cand;
    }
    if (rc) {
        kms_error_set(err, rc, "cannot generate a new data-store key: %s", kms_strerror(rc));
        goto out;
    }
    w = store_write_new();
    /* A new data-store key and the current one: change-log rows (kind
     * dsk) that replication ships; the wrapped bytes stay in meta. */
    if (!w || (rc = store_write_dsk(w, id, wrapped.data, wrapped.len)) != 0 ||
        (rc = store_write_dsk_current(w, id)) != 0 ||
        (rc = store_commit(k->store, w, NULL, 0)) != 0) {
        rc = rc ? rc : KMS_ERR_NOMEM;
        kms_error_set(err, rc, "cannot persist data-store key %u: %s", id, kms_strerror(rc));
        goto out;
    }
    if ((rc = hsm_keyring_set_current(k->keyring, id)) != 0) {
        kms_error_set(err, rc, "cannot select data-store key %u: %s", id, kms_strerror(rc));
        goto out;
    }
    kms_log(KMS_LOG_INFO, KEYS_LOG,
            "rotate: data-store key %u is current (was %u); re-encrypting objects in the background",
            id, old);
    keys_reencrypt_kick();
    *dsk_out = id;
    *previous_out = old;
out:
    store_write_free(w);
    kms_buf_dispose(&wrapped);
    return rc;
}

/* -------------------------------------------------------- rotate.status */
static void rotate_status(const keys_options_t *k, keys_status_t *out)
{
    keys_progress_t p;
    keys_reencrypt_progress(&p);
    int64_t now = kms_now_us();
    *out = (keys_status_t){
        .state = p.state,
        .dsk = hsm_keyring_current(k->keyring),
        .target = p.target,
        .total = p.total,
        .done = p.done,
        .failed = p.failed,
        .elapsed_ms = p.started_us ? ((p.finished_us ? p.finished_us : now) - p.started_us) / 1000 : 0,
        .hsm_down = keys_hsm_down(),
    };
    snprintf(out->master, sizeof out->master, "%s", g.master);
    snprintf(out->previous, sizeof out->previous, "%s", g.previous);
}

/* Under g.mu: started, and (for a rotation) the HSM reachable. */
static int ready(bool need_hsm, kms_error_t *err)
{
    if (!g.k)
        return kms_error_set(err, KMS_ERR_UNAVAIL, "kmsd is starting or stopping");
    if (need_hsm && keys_hsm_down())
        return kms_error_set(err, KMS_ERR_UNAVAIL, "the HSM is unavailable: rotation needs it");
    return 0;
}

int keys_rotate_master(keys_master_rotation_t *out, kms_error_t *err)
{
    pthread_mutex_lock(&g.mu);
    int rc = ready(true, err);
    if (rc == 0)
        rc = rotate_master(g.k, out, err);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int keys_rotate_store_key(uint32_t *dsk_out, uint32_t *previous_out, kms_error_t *err)
{
    pthread_mutex_lock(&g.mu);
    int rc = ready(true, err);
    if (rc == 0)
        rc = rotate_store_key(g.k, dsk_out, previous_out, err);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int keys_rotate_status(keys_status_t *out, kms_error_t *err)
{
    pthread_mutex_lock(&g.mu);
    int rc = ready(false, err);
    if (rc == 0)
        rotate_status(g.k, out);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

/* ---------------------------------------------------------- lifecycle */
int keys_start(const keys_options_t *opt)
{
    store_reader_t *rd = NULL;
    g.opt = *opt;
    int rc = store_reader_new(g.opt.store, &rd);
    if (rc) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keys: %s", kms_strerror(rc));
        return rc;
    }
    if (keys_meta_text(rd, KEYS_META_MASTER_CURRENT, g.master, sizeof g.master) != 0)
        snprintf(g.master, sizeof g.master, "%s", config_master(&g.opt));
    if (keys_meta_text(rd, KEYS_META_MASTER_PREVIOUS, g.previous, sizeof g.previous) != 0)
        g.previous[0] = '\0';
    store_reader_free(rd);
    atomic_store(&g.hsm, g.opt.hsm);
    pthread_mutex_lock(&g.mu);
    g.k = &g.opt;
    pthread_mutex_unlock(&g.mu);
    if ((rc = keys_health_start(&g.opt)) != 0)
        return rc;
    return keys_reencrypt_start(&g.opt);
}

void keys_stop(void)
{
    pthread_mutex_lock(&g.mu); /* waits for a rotation in progress */
    g.k = NULL;
    pthread_mutex_unlock(&g.mu);
    keys_health_stop();
    keys_reencrypt_stop();
    /* The current provider (keys_hsm()) is closed by the caller. */
    for (size_t i = 0; i < g.n_retired; i++)
        hsm_close(g.retired[i]);
    free(g.retired);
    g.retired = NULL;
    g.n_retired = 0;
}
