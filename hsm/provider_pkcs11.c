/*
 * hsm/provider_pkcs11.c: the `pkcs11` master-key provider. The master key
 * is an AES-256 secret key inside a PKCS#11 token (found by CKA_LABEL) and
 * never leaves it: DSKs are wrapped with CKM_AES_KEY_WRAP_PAD when the
 * token offers it, else encrypted with CKM_AES_GCM under a random IV.
 * This file holds the hsm_ops (wrap, unwrap, health, close), hsm_open and
 * hsm_init_master for PKCS#11; finding the token and key is p11_token.c,
 * the shared session pool and recovery after a token reset p11_pool.c.
 *
 * It does not interrupt a Cryptoki call that hangs inside the module
 * (PKCS#11 has no timeouts); such a call holds one session, and others
 * give up waiting for a session after HSM_P11_WAIT_MS.
 * Token-level management (init token, set PIN) is left to the vendor tools.
 */
#include "hsm/p11_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

/* ---------------------------------------------------- wrap / unwrap */

static int wrap_once(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *out)
{
    p11_t *p = h->impl;
    uint8_t blob[2 + HSM_GCM_IV_LEN + 64 + HSM_GCM_TAG_LEN + 16];
    CK_ULONG wlen = 0;
    CK_RV rv = CKR_OK;
    int idx, rc;

    if ((rc = hsm_p11_sess_get(p, &idx, HSM_P11_WAIT_MS)) != 0)
        return rc;
    CK_SESSION_HANDLE s = p->sess[idx];
    blob[0] = HSM_WRAP_FORMAT;
    if (p->mech == CKM_AES_KEY_WRAP_PAD) {
        /* C_WrapKey wraps key objects: import the DSK as a short-lived
         * session object, wrap it, destroy it. */
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_AES;
        CK_BBOOL f = CK_FALSE, t = CK_TRUE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &f, sizeof(f)},       {CKA_PRIVATE, &t, sizeof(t)},
            {CKA_SENSITIVE, &f, sizeof(f)},   {CKA_EXTRACTABLE, &t, sizeof(t)},
            {CKA_VALUE, dsk->data, (CK_ULONG)dsk->len},
        };
        CK_OBJECT_HANDLE tmp = CK_INVALID_HANDLE;
        CK_MECHANISM m = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
        blob[1] = HSM_ALG_KWP;
        rv = p->fl->C_CreateObject(s, tmpl, KMS_ARRAY_SIZE(tmpl), &tmp);
        if (rv == CKR_OK) {
            wlen = sizeof(blob) - 2;
            rv = p->fl->C_WrapKey(s, &m, p->key, tmp, blob + 2, &wlen);
            p->fl->C_DestroyObject(s, tmp);
        }
    } else {
        uint8_t aad[32];
        CK_GCM_PARAMS gp;
        CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
        blob[1] = HSM_ALG_GCM;
        memset(&gp, 0, sizeof(gp));
        if (RAND_bytes(blob + 2, HSM_GCM_IV_LEN) != 1) {
            hsm_p11_sess_put(p, idx, CKR_OK);
            return KMS_ERR_CRYPTO;
        }
        gp.pIv = blob + 2;
        gp.ulIvLen = HSM_GCM_IV_LEN;
        gp.ulIvBits = HSM_GCM_IV_LEN * 8;
        gp.pAAD = aad;
        gp.ulAADLen = (CK_ULONG)hsm_wrap_aad(HSM_ALG_GCM, aad);
        gp.ulTagBits = HSM_GCM_TAG_LEN * 8;
        rv = p->fl->C_EncryptInit(s, &m, p->key);
        if (rv == CKR_OK) {
            wlen = sizeof(blob) - 2 - HSM_GCM_IV_LEN;
            rv = p->fl->C_Encrypt(s, dsk->data, (CK_ULONG)dsk->len, blob + 2 + HSM_GCM_IV_LEN,
                                  &wlen);
            wlen += HSM_GCM_IV_LEN;
        }
    }
    if ((rc = hsm_p11_sess_put(p, idx, rv)) != 0)
        return rc;
    if (rv != CKR_OK) {
        kms_log(KMS_LOG_ERROR, "hsm", "pkcs11: wrapping a DSK failed (%s)", hsm_p11_rv_name(rv));
        return KMS_ERR_CRYPTO;
    }
    return kms_buf_append(out, blob, 2 + (size_t)wlen);
}

static int unwrap_once(hsm_t *h, const uint8_t *w, size_t len, kms_secret_t **out)
{
    p11_t *p = h->impl;
    kms_secret_t *s = NULL;
    CK_RV rv = CKR_OK;
    int idx, rc, bad_input = 0;

    if (w[1] == HSM_ALG_KWP) {
        if (len < 2 + 16 || (len - 2) % 8)
            return KMS_ERR_CRYPTO;
    } else if (w[1] == HSM_ALG_GCM) {
        if (len < 2 + HSM_GCM_IV_LEN + HSM_GCM_TAG_LEN + 8)
            return KMS_ERR_CRYPTO;
    } else {
        return KMS_ERR_CRYPTO;
    }
    if (!(s = kms_secret_new(64)))
        return KMS_ERR_NOMEM;
    if ((rc = hsm_p11_sess_get(p, &idx, HSM_P11_WAIT_MS)) != 0)
        goto out;
    CK_SESSION_HANDLE se = p->sess[idx];
    CK_ULONG got = 0;
    if (w[1] == HSM_ALG_KWP) {
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_AES;
        CK_BBOOL f = CK_FALSE, t = CK_TRUE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &f, sizeof(f)},     {CKA_PRIVATE, &t, sizeof(t)},
            {CKA_SENSITIVE, &f, sizeof(f)}, {CKA_EXTRACTABLE, &t, sizeof(t)},
        };
        CK_OBJECT_HANDLE tmp = CK_INVALID_HANDLE;
        CK_MECHANISM m = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
        rv = p->fl->C_UnwrapKey(se, &m, p->key, (CK_BYTE *)w + 2, (CK_ULONG)(len - 2), tmpl,
                                KMS_ARRAY_SIZE(tmpl), &tmp);
        if (rv == CKR_OK) {
            CK_ATTRIBUTE v = {CKA_VALUE, s->data, (CK_ULONG)s->len};
            rv = p->fl->C_GetAttributeValue(se, tmp, &v, 1);
            got = v.ulValueLen;
            p->fl->C_DestroyObject(se, tmp);
        } else if (!hsm_p11_rv_is_gone(rv)) {
            bad_input = 1;
        }
    } else {
        uint8_t aad[32];
        CK_GCM_PARAMS gp;
        CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
        memset(&gp, 0, sizeof(gp));
        gp.pIv = (CK_BYTE *)w + 2;
        gp.ulIvLen = HSM_GCM_IV_LEN;
        gp.ulIvBits = HSM_GCM_IV_LEN * 8;
        gp.pAAD = aad;
        gp.ulAADLen = (CK_ULONG)hsm_wrap_aad(HSM_ALG_GCM, aad);
        gp.ulTagBits = HSM_GCM_TAG_LEN * 8;
        rv = p->fl->C_DecryptInit(se, &m, p->key);
        if (rv == CKR_OK) {
            got = (CK_ULONG)s->len;
            rv = p->fl->C_Decrypt(se, (CK_BYTE *)w + 2 + HSM_GCM_IV_LEN,
                                  (CK_ULONG)(len - 2 - HSM_GCM_IV_LEN), s->data, &got);
            if (rv != CKR_OK && !hsm_p11_rv_is_gone(rv))
                bad_input = 1;
        }
    }
    /* A blob that does not authenticate is the blob's fault, not the
     * token's: GENERAL_ERROR from an unwrap of garbage must not take the
     * provider down. The key probe tells the two apart. */
    if (bad_input || rv == CKR_GENERAL_ERROR) {
        CK_BBOOL probe = CK_FALSE;
        CK_ATTRIBUTE a = {CKA_TOKEN, &probe, sizeof(probe)};
        CK_RV prv = p->fl->C_GetAttributeValue(se, p->key, &a, 1);
        if (prv == CKR_OK) {
            bad_input = 1;
            rv = CKR_ENCRYPTED_DATA_INVALID;
        } else {
            rv = prv;
        }
    }
    if ((rc = hsm_p11_sess_put(p, idx, rv)) != 0)
        goto out;
    if (rv != CKR_OK || got == 0 || got > 64 || got % 8) {
        if (!bad_input)
            kms_log(KMS_LOG_ERROR, "hsm", "pkcs11: unwrapping a DSK failed (%s)",
                    hsm_p11_rv_name(rv));
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    if (!(*out = kms_secret_dup(s->data, got)))
        rc = KMS_ERR_NOMEM;
out:
    kms_secret_free(s);
    return rc;
}

/* Every session held by a call that has been inside the module for longer
 * than HSM_P11_WAIT_MS: the token is not answering. */

static int health_once(hsm_t *h)
{
    p11_t *p = h->impl;
    CK_BBOOL tok = CK_FALSE;
    CK_ATTRIBUTE a = {CKA_TOKEN, &tok, sizeof(tok)};
    int idx, rc;

    /* A real probe: SoftHSM2 and some HSMs only notice a vanished token
     * when the key is touched. hsm_p11_sess_get also drives the reconnect. */
    if ((rc = hsm_p11_sess_get(p, &idx, 0)) == KMS_ERR_BUSY)
        return hsm_p11_all_stuck(p) ? KMS_ERR_UNAVAIL : 0; /* every session in use: alive unless stuck */
    if (rc != 0)
        return rc;
    CK_RV rv = p->fl->C_GetAttributeValue(p->sess[idx], p->key, &a, 1);
    if ((rc = hsm_p11_sess_put(p, idx, rv)) != 0)
        return rc;
    return rv == CKR_OK ? 0 : KMS_ERR_UNAVAIL;
}

static void p11_free(p11_t *p)
{
    if (!p)
        return;
    if (p->mod) {
        hsm_p11_mod_enter(p->mod);
        if (p->mod->gen == p->mod_gen)
            hsm_p11_close_sessions(p);
        hsm_p11_mod_leave(p->mod);
        hsm_p11_mod_put(p->mod);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    kms_secret_free(p->pin);
    free(p->pin_file);
    free(p->pin_env);
    free(p->module_path);
    free(p->token_label);
    free(p->key_label);
    free(p);
}

static void p11_close(hsm_t *h)
{
    p11_free(h->impl);
    free(h);
}

/*
 * Each operation gets one retry when the first attempt found the token
 * gone: the retry reconnects (rate limits permitting), so a session loss
 * after an HSM reboot or fail-over costs the caller a reconnect, not an
 * error. While the token stays away the retry answers at once.
 */
static int p11_wrap(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *out)
{
    int rc = wrap_once(h, dsk, out);
    return rc == KMS_ERR_UNAVAIL ? wrap_once(h, dsk, out) : rc;
}

static int p11_unwrap(hsm_t *h, const uint8_t *w, size_t len, kms_secret_t **out)
{
    int rc = unwrap_once(h, w, len, out);
    return rc == KMS_ERR_UNAVAIL ? unwrap_once(h, w, len, out) : rc;
}

static int p11_health(hsm_t *h)
{
    int rc = health_once(h);
    return rc == KMS_ERR_UNAVAIL ? health_once(h) : rc;
}

static const struct hsm_ops p11_ops = {
    .name = "pkcs11",
    .wrap = p11_wrap,
    .unwrap = p11_unwrap,
    .health = p11_health,
    .close = p11_close,
};

/* Common part of open and init: config, PIN, module. */
static int p11_new(const hsm_config_t *cfg, const char *key_label, p11_t **out, kms_error_t *err)
{
    p11_t *p = NULL;
    pthread_condattr_t ca;
    int rc = KMS_ERR_NOMEM;

    if (!cfg->module || !cfg->module[0])
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: hsm.module is not set");
    if ((!cfg->token_label || !cfg->token_label[0]) && cfg->slot < 0)
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: set hsm.token_label or hsm.slot");
    if (cfg->token_label && strlen(cfg->token_label) > 32)
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: token label longer than 32 bytes");
    if (!key_label || !key_label[0])
        key_label = "kmsd-master";
    if (!(p = calloc(1, sizeof(*p))))
        return KMS_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->slot_cfg = -1;
    if (!(p->module_path = strdup(cfg->module)) || !(p->key_label = strdup(key_label)))
        goto fail;
    if (cfg->token_label && cfg->token_label[0]) {
        if (!(p->token_label = strdup(cfg->token_label)))
            goto fail;
    } else {
        p->slot_cfg = cfg->slot;
    }
    if ((rc = hsm_p11_read_pin(cfg, &p->pin, err)) != 0)
        goto fail;
    rc = KMS_ERR_NOMEM;
    if (cfg->pin_file && cfg->pin_file[0]) {
        if (!(p->pin_file = strdup(cfg->pin_file)))
            goto fail;
    } else if (!(p->pin_env = strdup(cfg->pin_env))) {
        goto fail;
    }
    if ((rc = hsm_p11_mod_get(cfg->module, &p->mod, err)) != 0)
        goto fail;
    p->fl = p->mod->fl;
    p->mod_gen = p->mod->gen;
    *out = p;
    return 0;
fail:
    p11_free(p);
    return rc;
}

int hsm_p11_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err)
{
    p11_t *p = NULL;
    hsm_t *h = NULL;
    char tn[80];
    int rc;

    if ((rc = p11_new(cfg, cfg->key_label, &p, err)) != 0)
        return rc;
    hsm_p11_mod_enter(p->mod);
    p->mod_gen = p->mod->gen;
    rc = hsm_p11_connect(p, err);
    hsm_p11_mod_leave(p->mod);
    if (rc)
        goto fail;
    if (!(h = calloc(1, sizeof(*h)))) {
        rc = KMS_ERR_NOMEM;
        goto fail;
    }
    h->ops = &p11_ops;
    h->impl = p;
    snprintf(h->desc, sizeof(h->desc), "pkcs11 %s key '%s' (%s, %s)", hsm_p11_token_name(p, tn, sizeof(tn)),
             p->key_label, p->mech == CKM_AES_KEY_WRAP_PAD ? "CKM_AES_KEY_WRAP_PAD" : "CKM_AES_GCM",
             p->module_path);
    *out = h;
    return 0;
fail:
    p11_free(p);
    return rc;
}

int hsm_p11_init(const hsm_config_t *cfg, const char *label, kms_error_t *err)
{
    p11_t *p = NULL;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    CK_ULONG nkeys = 0;
    CK_RV rv;
    char tn[80];
    int rc, entered = 0;

    if ((rc = p11_new(cfg, label, &p, err)) != 0)
        return rc;
    hsm_p11_token_name(p, tn, sizeof(tn));
    hsm_p11_mod_enter(p->mod);
    entered = 1;
    if ((rc = hsm_p11_find_slot(p, &p->slot, 1, err)) != 0)
        goto out;
    rv = p->fl->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) {
        rc = kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s: C_OpenSession failed (%s)", tn,
                      hsm_p11_rv_name(rv));
        goto out;
    }
    if ((rc = hsm_p11_login(p, s, err)) != 0)
        goto out;
    rv = hsm_p11_find_keys(p->fl, s, p->key_label, &k, &nkeys);
    if (rv != CKR_OK) {
        rc = kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s: searching for key '%s' failed (%s)",
                      tn, p->key_label, hsm_p11_rv_name(rv));
        goto out;
    }
    if (nkeys > 0) {
        rc = kms_error_set(err, KMS_ERR_EXISTS,
                      "pkcs11: a key labelled '%s' already exists on %s; refusing to create another",
                      p->key_label, tn);
        goto out;
    }
    /* Prefer key wrap; a token without it gets a key usable for GCM. */
    CK_BBOOL use_kwp = hsm_p11_mech_usable(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP) ? CK_TRUE : CK_FALSE;
    CK_BBOOL use_gcm = use_kwp ? CK_FALSE : CK_TRUE;
    if (!use_kwp && !hsm_p11_mech_usable(p, CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT)) {
        rc = kms_error_set(err, KMS_ERR_NOTSUP,
                      "pkcs11: %s offers neither CKM_AES_KEY_WRAP_PAD nor CKM_AES_GCM", tn);
        goto out;
    }
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG vlen = 32;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
        {CKA_LABEL, p->key_label, (CK_ULONG)strlen(p->key_label)},
        {CKA_TOKEN, &t, sizeof(t)},
        {CKA_PRIVATE, &t, sizeof(t)},
        {CKA_SENSITIVE, &t, sizeof(t)},
        {CKA_EXTRACTABLE, &f, sizeof(f)},
        {CKA_MODIFIABLE, &f, sizeof(f)},
        {CKA_WRAP, &use_kwp, sizeof(use_kwp)},
        {CKA_UNWRAP, &use_kwp, sizeof(use_kwp)},
        {CKA_ENCRYPT, &use_gcm, sizeof(use_gcm)},
        {CKA_DECRYPT, &use_gcm, sizeof(use_gcm)},
        {CKA_SIGN, &f, sizeof(f)},
        {CKA_VERIFY, &f, sizeof(f)},
        {CKA_DERIVE, &f, sizeof(f)},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    rv = p->fl->C_GenerateKey(s, &gen, tmpl, KMS_ARRAY_SIZE(tmpl), &k);
    if (rv != CKR_OK) {
        rc = kms_error_set(err, KMS_ERR_CRYPTO, "pkcs11: %s: generating key '%s' failed (%s)", tn,
                      p->key_label, hsm_p11_rv_name(rv));
        goto out;
    }
    kms_log(KMS_LOG_INFO, "hsm", "pkcs11: generated AES-256 master key '%s' on %s (for %s)",
            p->key_label, tn, use_kwp ? "CKM_AES_KEY_WRAP_PAD" : "CKM_AES_GCM");
out:
    if (s != CK_INVALID_HANDLE)
        p->fl->C_CloseSession(s);
    if (entered)
        hsm_p11_mod_leave(p->mod);
    p11_free(p);
    return rc;
}
