/*
 * hsm/p11_token.c: talking to one PKCS#11 token: the PIN source, finding
 * the slot by label (or id), C_Login with clear messages, finding the
 * master key by CKA_LABEL, choosing the wrapping mechanism, and opening
 * the session pool (hsm_p11_connect). Which CK_RV codes mean "the token
 * is gone" is decided here too.
 *
 * It does not decide when to reconnect (p11_pool.c) or wrap anything
 * (provider_pkcs11.c).
 */
#include "hsm/p11_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Errors that mean "the token, its login or the master key went away",
 * not "this input is bad". */
int hsm_p11_rv_is_gone(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_GENERAL_ERROR:
    case CKR_SLOT_ID_INVALID:
    case CKR_OBJECT_HANDLE_INVALID: /* SoftHSM2 when the token directory vanished */
    case CKR_KEY_HANDLE_INVALID:
    case CKR_WRAPPING_KEY_HANDLE_INVALID:
    case CKR_UNWRAPPING_KEY_HANDLE_INVALID:
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ config */

int hsm_p11_read_pin(const hsm_config_t *cfg, kms_secret_t **out, kms_error_t *err)
{
    uint8_t buf[HSM_P11_PIN_MAX + 2];
    size_t n = 0;
    int rc = 0;

    if (cfg->pin_file && cfg->pin_file[0]) {
        int fd = open(cfg->pin_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0)
            return kms_error_set(err, errno == EACCES ? KMS_ERR_PERM : KMS_ERR_CONFIG,
                            "pkcs11: PIN file %s: %s", cfg->pin_file, strerror(errno));
        if (fstat(fd, &st) == 0 && (st.st_mode & 077))
            kms_log(KMS_LOG_WARN, "hsm", "PIN file %s is mode %04o; 0600 is recommended",
                    cfg->pin_file, (unsigned)(st.st_mode & 07777));
        while (n < sizeof(buf)) {
            ssize_t r = read(fd, buf + n, sizeof(buf) - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = kms_error_set(err, KMS_ERR_IO, "pkcs11: PIN file %s: %s", cfg->pin_file,
                              strerror(errno));
                break;
            }
            if (r == 0)
                break;
            n += (size_t)r;
        }
        close(fd);
        if (rc)
            goto out;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (n > HSM_P11_PIN_MAX) {
            rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: PIN file %s: longer than %d bytes",
                          cfg->pin_file, HSM_P11_PIN_MAX);
            goto out;
        }
        if (n == 0) {
            rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: PIN file %s is empty", cfg->pin_file);
            goto out;
        }
    } else if (cfg->pin_env && cfg->pin_env[0]) {
        const char *v = getenv(cfg->pin_env);
        if (!v || !v[0])
            return kms_error_set(err, KMS_ERR_CONFIG,
                            "pkcs11: environment variable %s (hsm.pin_env) is not set", cfg->pin_env);
        n = strlen(v);
        if (n > HSM_P11_PIN_MAX)
            return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: PIN in %s is longer than %d bytes",
                            cfg->pin_env, HSM_P11_PIN_MAX);
        memcpy(buf, v, n);
    } else {
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: set hsm.pin_file or hsm.pin_env");
    }
    if (!(*out = kms_secret_dup(buf, n)))
        rc = KMS_ERR_NOMEM;
out:
    kms_wipe(buf, sizeof(buf));
    return rc;
}

/* "kmsd" -> 32 bytes blank-padded, as CK_TOKEN_INFO.label holds it. */
static int label_matches(const CK_UTF8CHAR field[32], const char *want)
{
    size_t n = strlen(want);
    if (n > 32 || memcmp(field, want, n) != 0)
        return 0;
    for (size_t i = n; i < 32; i++)
        if (field[i] != ' ' && field[i] != '\0')
            return 0;
    return 1;
}

const char *hsm_p11_token_name(const p11_t *p, char *buf, size_t len)
{
    if (p->token_label)
        snprintf(buf, len, "token '%s'", p->token_label);
    else
        snprintf(buf, len, "slot %ld", p->slot_cfg);
    return buf;
}

/* ------------------------------------------------- finding things */

int hsm_p11_find_slot(p11_t *p, CK_SLOT_ID *out, int need_login, kms_error_t *err)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_TOKEN_INFO ti;
    CK_RV rv;
    int rc = 0, found = 0;
    char tn[80];

    hsm_p11_token_name(p, tn, sizeof(tn));
    if (!p->token_label) {
        memset(&ti, 0, sizeof(ti));
        rv = p->fl->C_GetTokenInfo((CK_SLOT_ID)p->slot_cfg, &ti);
        if (rv != CKR_OK)
            return kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s: no token in %s (%s)", tn,
                            p->module_path, hsm_p11_rv_name(rv));
        *out = (CK_SLOT_ID)p->slot_cfg;
        found = 1;
    } else {
        rv = p->fl->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv == CKR_OK && n > 0) {
            if (!(slots = calloc(n, sizeof(*slots))))
                return KMS_ERR_NOMEM;
            rv = p->fl->C_GetSlotList(CK_TRUE, slots, &n);
        }
        if (rv != CKR_OK) {
            rc = kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s: C_GetSlotList failed (%s)",
                          p->module_path, hsm_p11_rv_name(rv));
            goto out;
        }
        for (CK_ULONG i = 0; i < n && !found; i++) {
            memset(&ti, 0, sizeof(ti));
            if (p->fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
                continue;
            if (label_matches(ti.label, p->token_label)) {
                *out = slots[i];
                found = 1;
            }
        }
        if (!found) {
            rc = kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s not found in %s", tn,
                          p->module_path);
            goto out;
        }
    }
    if (!(ti.flags & CKF_TOKEN_INITIALIZED))
        rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: %s is not initialised", tn);
    else if (need_login && !(ti.flags & CKF_USER_PIN_INITIALIZED))
        rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: %s has no user PIN set", tn);
out:
    free(slots);
    return rc;
}

int hsm_p11_login(p11_t *p, CK_SESSION_HANDLE s, kms_error_t *err)
{
    CK_RV rv = p->fl->C_Login(s, CKU_USER, p->pin->data, (CK_ULONG)p->pin->len);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) /* login is per token, per process */
        return 0;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        return kms_error_set(err, KMS_ERR_PERM, "pkcs11: login failed: wrong PIN (%s)",
                        hsm_p11_rv_name(rv));
    if (rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED)
        return kms_error_set(err, KMS_ERR_PERM,
                        "pkcs11: login failed: PIN locked or expired (%s)",
                        hsm_p11_rv_name(rv));
    /* KMS_ERR_PERM means "the PIN was refused" (see note_pin_rejected);
     * anything else may pass, so it stays retryable. */
    return kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: login failed (%s)", hsm_p11_rv_name(rv));
}

/* Find AES secret keys labelled `label`: *n_out = how many (0, 1 or 2+). */
CK_RV hsm_p11_find_keys(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s, const char *label,
                       CK_OBJECT_HANDLE *key_out, CK_ULONG *n_out)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)},
    };
    CK_OBJECT_HANDLE h[2] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE};
    CK_RV rv = fl->C_FindObjectsInit(s, tmpl, KMS_ARRAY_SIZE(tmpl));
    if (rv != CKR_OK)
        return rv;
    *n_out = 0;
    rv = fl->C_FindObjects(s, h, 2, n_out);
    CK_RV rv2 = fl->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = rv2;
    *key_out = h[0];
    return rv;
}

int hsm_p11_mech_usable(p11_t *p, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
    CK_MECHANISM_INFO mi;
    /* Zero first: some modules (Debian's SoftHSM2) OR bits into flags. */
    memset(&mi, 0, sizeof(mi));
    if (p->fl->C_GetMechanismInfo(p->slot, m, &mi) != CKR_OK)
        return 0;
    return (mi.flags & need) == need && (mi.ulMaxKeySize >= 32 || mi.ulMaxKeySize == 0);
}

/* Pick the wrapping mechanism for this token and key. */
static int choose_mech(p11_t *p, CK_SESSION_HANDLE s, kms_error_t *err)
{
    CK_BBOOL w = CK_FALSE, u = CK_FALSE, e = CK_FALSE, d = CK_FALSE;
    CK_ULONG vlen = 0;
    CK_ATTRIBUTE a[] = {
        {CKA_WRAP, &w, sizeof(w)},       {CKA_UNWRAP, &u, sizeof(u)},
        {CKA_ENCRYPT, &e, sizeof(e)},    {CKA_DECRYPT, &d, sizeof(d)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
    };
    CK_RV rv = p->fl->C_GetAttributeValue(s, p->key, a, KMS_ARRAY_SIZE(a));
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE)
        return kms_error_set(err, hsm_p11_rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                        "pkcs11: key '%s': cannot read attributes (%s)", p->key_label,
                        hsm_p11_rv_name(rv));
    if (a[4].ulValueLen == sizeof(vlen) && vlen != 32)
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: key '%s' is AES-%lu, need AES-256",
                        p->key_label, vlen * 8);
    if (w && u && hsm_p11_mech_usable(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP)) {
        p->mech = CKM_AES_KEY_WRAP_PAD;
        return 0;
    }
    if (e && d && hsm_p11_mech_usable(p, CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT)) {
        p->mech = CKM_AES_GCM;
        return 0;
    }
    return kms_error_set(err, KMS_ERR_CONFIG,
                    "pkcs11: key '%s': token offers neither CKM_AES_KEY_WRAP_PAD (key needs "
                    "CKA_WRAP/CKA_UNWRAP) nor CKM_AES_GCM (key needs CKA_ENCRYPT/CKA_DECRYPT)",
                    p->key_label);
}

void hsm_p11_close_sessions(p11_t *p)
{
    for (int i = 0; i < p->n_sess; i++)
        p->fl->C_CloseSession(p->sess[i]);
    p->n_sess = 0;
}

/*
 * Find the slot, open the pool, log in, find the key, choose the mechanism.
 * Caller is inside enter/leave and owns the pool (no session in use).
 */
int hsm_p11_connect(p11_t *p, kms_error_t *err)
{
    CK_ULONG nkeys = 0;
    CK_RV rv;
    int rc;
    char tn[80];

    hsm_p11_token_name(p, tn, sizeof(tn));
    hsm_p11_close_sessions(p);
    if ((rc = hsm_p11_find_slot(p, &p->slot, 1, err)) != 0)
        return rc;
    for (int i = 0; i < HSM_P11_POOL; i++) {
        rv = p->fl->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, &p->sess[i]);
        if (rv != CKR_OK) {
            if (i > 0 && rv == CKR_SESSION_COUNT)
                break; /* a token with few sessions: work with what we got */
            rc = kms_error_set(err, hsm_p11_rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                          "pkcs11: %s: C_OpenSession failed (%s)", tn, hsm_p11_rv_name(rv));
            goto fail;
        }
        p->n_sess = i + 1;
    }
    if ((rc = hsm_p11_login(p, p->sess[0], err)) != 0)
        goto fail;
    rv = hsm_p11_find_keys(p->fl, p->sess[0], p->key_label, &p->key, &nkeys);
    if (rv != CKR_OK) {
        rc = kms_error_set(err, hsm_p11_rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                      "pkcs11: %s: searching for key '%s' failed (%s)", tn, p->key_label,
                      hsm_p11_rv_name(rv));
        goto fail;
    }
    if (nkeys == 0) {
        rc = kms_error_set(err, KMS_ERR_CONFIG,
                      "pkcs11: AES key '%s' not found on %s (create it with 'kmsctl hsm init --pkcs11 ...')",
                      p->key_label, tn);
        goto fail;
    }
    if (nkeys > 1) {
        rc = kms_error_set(err, KMS_ERR_CONFIG,
                      "pkcs11: several AES keys labelled '%s' on %s; refusing to guess", p->key_label,
                      tn);
        goto fail;
    }
    if ((rc = choose_mech(p, p->sess[0], err)) != 0)
        goto fail;
    memset(p->busy, 0, sizeof(p->busy));
    return 0;
fail:
    hsm_p11_close_sessions(p);
    return rc;
}
