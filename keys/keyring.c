/*
 * keys/keyring.c: the data-store keyring at start-up. Every DSK the store
 * holds is unwrapped with the master key (hsm/ keeps the plaintext) and
 * "dsk.current" is selected; on a first start DSK 1 is generated and
 * persisted, wrapped, before it becomes current. Also reads the master key
 * a rotation recorded in store meta, which wins over the configuration,
 * and maps the configuration's hsm section onto hsm/'s config.
 *
 * Keyring layout in store meta: "dsk.current" holds the current DSK id as
 * decimal text; "dsk.<id>" holds DSK <id> wrapped by the master key.
 *
 * It deliberately does not rotate keys (keys/rotate.c does) and never
 * sees an unwrapped DSK.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys_int.h"

static const char *nz(const char *s)
{
    return s && s[0] ? s : NULL;
}

int keys_hsm_config(const conf_t *c, const char *master, hsm_config_t *out, kms_error_t *err)
{
    const struct conf_hsm *h = &c->hsm;
    *out = (hsm_config_t){
        .key_file = nz(h->key_file),
        .module = nz(h->module),
        .token_label = nz(h->token_label),
        .slot = h->slot,
        .pin_file = nz(h->pin_file),
        .pin_env = nz(h->pin_env),
        .key_label = nz(h->key_label),
    };
    switch (h->provider) {
    case CONF_HSM_FILE:
        out->provider = HSM_PROVIDER_FILE;
        if (nz(master))
            out->key_file = master;
        return 0;
    case CONF_HSM_PKCS11:
        out->provider = HSM_PROVIDER_PKCS11;
        if (nz(master))
            out->key_label = master;
        return 0;
    }
    return kms_error_set(err, KMS_ERR_CONFIG, "hsm: unknown provider %d", (int)h->provider);
}

/* Text value of a meta key into out; KMS_ERR_NOTFOUND when absent. */
int keys_meta_text(store_reader_t *rd, const char *key, char *out, size_t outlen)
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

int keys_master_from_meta(store_t *store, char *out, size_t outlen)
{
    store_reader_t *rd = NULL;
    int rc = store_reader_new(store, &rd);
    if (rc == 0)
        rc = keys_meta_text(rd, KEYS_META_MASTER_CURRENT, out, outlen);
    store_reader_free(rd);
    return rc;
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
static int keyring_first_run(hsm_keyring_t *kr, store_t *store, store_reader_t *rd)
{
    int rc;
    kms_buf_t wrapped;
    store_write_t *w = NULL;
    kms_buf_init(&wrapped, 4096);

    int64_t nobj = store_count_objects(rd);
    if (nobj < 0) {
        rc = (int)nobj;
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot count objects: %s", kms_strerror(rc));
        goto out;
    }
    if (nobj != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG,
                "keyring: the store holds %" PRId64 " objects but no '" KEYS_META_DSK_CURRENT
                "': refusing to start with a new key (restore the database's meta table)",
                nobj);
        rc = KMS_ERR_STATE;
        goto out;
    }
    rc = hsm_keyring_generate(kr, 1, &wrapped);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot generate DSK 1: %s", kms_strerror(rc));
        goto out;
    }
    w = store_write_new();
    if (!w) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if ((rc = store_write_dsk(w, 1, wrapped.data, wrapped.len)) != 0 ||
        (rc = store_write_dsk_current(w, 1)) != 0 ||
        (rc = store_commit(store, w, NULL, 0)) != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot persist DSK 1: %s", kms_strerror(rc));
        goto out;
    }
    rc = hsm_keyring_set_current(kr, 1);
    if (rc == 0)
        kms_log(KMS_LOG_INFO, KEYS_LOG, "keyring: first start, generated data-store key 1");
out:
    store_write_free(w);
    kms_buf_dispose(&wrapped); /* wrapped form only: no secret */
    return rc;
}

int keys_setup_keyring(hsm_t *hsm, store_t *store, hsm_keyring_t **out)
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = NULL;
    uint8_t *val = NULL;
    size_t len = 0;
    uint32_t cur = 0, loaded = 0;
    int rc;

    rc = hsm_keyring_new(hsm, out);
    hsm_keyring_t *kr = *out;
    if (rc == 0)
        rc = store_reader_new(store, &rd);
    a = kms_arena_new(1 << 20);
    if (rc == 0 && !a)
        rc = KMS_ERR_NOMEM;
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: %s", kms_strerror(rc));
        goto out;
    }
    rc = store_meta_get(rd, a, KEYS_META_DSK_CURRENT, &val, &len);
    if (rc == KMS_ERR_NOTFOUND) {
        rc = keyring_first_run(kr, store, rd);
        goto out;
    }
    if (rc == 0)
        rc = parse_dsk_id(val, len, &cur);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot read '" KEYS_META_DSK_CURRENT "': %s",
                kms_strerror(rc));
        goto out;
    }
    /* Every DSK 1..current (retired ones may be gone) and a few past it. */
    uint64_t last = (uint64_t)cur + KEYS_DSK_PROBE_AHEAD;
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
            rc = hsm_keyring_load(kr, (uint32_t)id, val, len);
        if (rc != 0) {
            kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot load %s: %s%s", key, kms_strerror(rc),
                    rc == KMS_ERR_CRYPTO ? " (wrong master key?)" : "");
            goto out;
        }
        loaded++;
    }
    rc = hsm_keyring_set_current(kr, cur);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, KEYS_LOG, "keyring: cannot select DSK %u: %s", cur, kms_strerror(rc));
        goto out;
    }
    kms_log(KMS_LOG_INFO, KEYS_LOG, "keyring: %u data-store keys loaded, current %u", loaded, cur);
out:
    kms_arena_free(a);
    store_reader_free(rd);
    return rc;
}
