/*
 * hsm/provider_pkcs11.c: the `pkcs11` master-key provider. The master key
 * is an AES-256 secret key inside a PKCS#11 token (found by CKA_LABEL) and
 * never leaves it: DSKs are wrapped with CKM_AES_KEY_WRAP_PAD when the
 * token offers it, else encrypted with CKM_AES_GCM under a random IV.
 *
 * Sessions: a small pool shared by all threads. When a call fails in a way
 * that means the token, the login or the key went away, the provider turns
 * "broken": calls and hsm_health() answer KMS_ERR_UNAVAIL at once, and at
 * most once per second one caller reconnects (new sessions, C_Login, find
 * the key; if that fails, C_Finalize + C_Initialize the module), so the
 * service resumes by itself when the token is back.
 *
 * It does not interrupt a Cryptoki call that hangs inside the module
 * (PKCS#11 has no timeouts); such a call holds one session, and others
 * give up waiting for a session after HSM_P11_WAIT_MS.
 * Token-level management (init token, set PIN) is left to the vendor tools.
 */
#include "hsm/hsm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#define HSM_P11_POOL 4
#define HSM_P11_RETRY_NS 1000000000ull /* reconnect at most once per second */
#define HSM_P11_WAIT_MS 2000           /* longest wait for a free session */
#define HSM_P11_PIN_MAX 256

typedef struct p11 {
    hsm_p11_mod_t *mod;
    CK_FUNCTION_LIST *fl;
    char *module_path;
    char *token_label;  /* NULL when configured by slot */
    long slot_cfg;      /* -1 when configured by label */
    char *key_label;
    kms_secret_t *pin;  /* kept for re-login after a token reset */
    char *pin_file;     /* where it came from, re-read after a rejection */
    char *pin_env;
    int pin_rejected;   /* a re-login was refused: never retry the same PIN */

    /* Set by connect(); read by calls that hold a session. */
    CK_SLOT_ID slot;
    CK_OBJECT_HANDLE key;
    CK_MECHANISM_TYPE mech; /* CKM_AES_KEY_WRAP_PAD or CKM_AES_GCM */
    unsigned mod_gen;       /* module generation the sessions belong to */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    CK_SESSION_HANDLE sess[HSM_P11_POOL];
    int n_sess;
    int busy[HSM_P11_POOL];
    uint64_t busy_since[HSM_P11_POOL]; /* mono ns; finds calls stuck in the module */
    int in_use;
    int broken;       /* sessions/login/key are gone */
    int reconnecting; /* one thread is reconnecting (mu released meanwhile) */
    uint64_t last_try_ns;
} p11_t;

/* Errors that mean "the token, its login or the master key went away",
 * not "this input is bad". */
static int rv_is_gone(CK_RV rv)
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

static int read_pin(const hsm_config_t *cfg, kms_secret_t **out, char *err, size_t errlen)
{
    uint8_t buf[HSM_P11_PIN_MAX + 2];
    size_t n = 0;
    int rc = 0;

    if (cfg->pin_file && cfg->pin_file[0]) {
        int fd = open(cfg->pin_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0)
            return hsm_errf(err, errlen, errno == EACCES ? KMS_ERR_PERM : KMS_ERR_CONFIG,
                            "pkcs11: PIN file %s: %s", cfg->pin_file, strerror(errno));
        if (fstat(fd, &st) == 0 && (st.st_mode & 077))
            kms_log(KMS_LOG_WARN, "hsm", "PIN file %s is mode %04o; 0600 is recommended",
                    cfg->pin_file, (unsigned)(st.st_mode & 07777));
        while (n < sizeof(buf)) {
            ssize_t r = read(fd, buf + n, sizeof(buf) - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = hsm_errf(err, errlen, KMS_ERR_IO, "pkcs11: PIN file %s: %s", cfg->pin_file,
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
            rc = hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: PIN file %s: longer than %d bytes",
                          cfg->pin_file, HSM_P11_PIN_MAX);
            goto out;
        }
        if (n == 0) {
            rc = hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: PIN file %s is empty", cfg->pin_file);
            goto out;
        }
    } else if (cfg->pin_env && cfg->pin_env[0]) {
        const char *v = getenv(cfg->pin_env);
        if (!v || !v[0])
            return hsm_errf(err, errlen, KMS_ERR_CONFIG,
                            "pkcs11: environment variable %s (hsm.pin_env) is not set", cfg->pin_env);
        n = strlen(v);
        if (n > HSM_P11_PIN_MAX)
            return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: PIN in %s is longer than %d bytes",
                            cfg->pin_env, HSM_P11_PIN_MAX);
        memcpy(buf, v, n);
    } else {
        return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: set hsm.pin_file or hsm.pin_env");
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

static const char *token_name(const p11_t *p, char *buf, size_t len)
{
    if (p->token_label)
        snprintf(buf, len, "token '%s'", p->token_label);
    else
        snprintf(buf, len, "slot %ld", p->slot_cfg);
    return buf;
}

/* ------------------------------------------------- finding things */

static int find_slot(p11_t *p, CK_SLOT_ID *out, int need_login, char *err, size_t errlen)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_TOKEN_INFO ti;
    CK_RV rv;
    int rc = 0, found = 0;
    char tn[80];

    token_name(p, tn, sizeof(tn));
    if (!p->token_label) {
        memset(&ti, 0, sizeof(ti));
        rv = p->fl->C_GetTokenInfo((CK_SLOT_ID)p->slot_cfg, &ti);
        if (rv != CKR_OK)
            return hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: %s: no token in %s (%s)", tn,
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
            rc = hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: %s: C_GetSlotList failed (%s)",
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
            rc = hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: %s not found in %s", tn,
                          p->module_path);
            goto out;
        }
    }
    if (!(ti.flags & CKF_TOKEN_INITIALIZED))
        rc = hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: %s is not initialised", tn);
    else if (need_login && !(ti.flags & CKF_USER_PIN_INITIALIZED))
        rc = hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: %s has no user PIN set", tn);
out:
    free(slots);
    return rc;
}

static int login(p11_t *p, CK_SESSION_HANDLE s, char *err, size_t errlen)
{
    CK_RV rv = p->fl->C_Login(s, CKU_USER, p->pin->data, (CK_ULONG)p->pin->len);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) /* login is per token, per process */
        return 0;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        return hsm_errf(err, errlen, KMS_ERR_PERM, "pkcs11: login failed: wrong PIN (%s)",
                        hsm_p11_rv_name(rv));
    if (rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED)
        return hsm_errf(err, errlen, KMS_ERR_PERM,
                        "pkcs11: login failed: PIN locked or expired (%s)",
                        hsm_p11_rv_name(rv));
    /* KMS_ERR_PERM means "the PIN was refused" (see note_pin_rejected);
     * anything else may pass, so it stays retryable. */
    return hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: login failed (%s)", hsm_p11_rv_name(rv));
}

/* Find AES secret keys labelled `label`: *n_out = how many (0, 1 or 2+). */
static CK_RV find_keys(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s, const char *label,
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

static int mech_usable(p11_t *p, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
    CK_MECHANISM_INFO mi;
    /* Zero first: some modules (Debian's SoftHSM2) OR bits into flags. */
    memset(&mi, 0, sizeof(mi));
    if (p->fl->C_GetMechanismInfo(p->slot, m, &mi) != CKR_OK)
        return 0;
    return (mi.flags & need) == need && (mi.ulMaxKeySize >= 32 || mi.ulMaxKeySize == 0);
}

/* Pick the wrapping mechanism for this token and key. */
static int choose_mech(p11_t *p, CK_SESSION_HANDLE s, char *err, size_t errlen)
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
        return hsm_errf(err, errlen, rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                        "pkcs11: key '%s': cannot read attributes (%s)", p->key_label,
                        hsm_p11_rv_name(rv));
    if (a[4].ulValueLen == sizeof(vlen) && vlen != 32)
        return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: key '%s' is AES-%lu, need AES-256",
                        p->key_label, vlen * 8);
    if (w && u && mech_usable(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP)) {
        p->mech = CKM_AES_KEY_WRAP_PAD;
        return 0;
    }
    if (e && d && mech_usable(p, CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT)) {
        p->mech = CKM_AES_GCM;
        return 0;
    }
    return hsm_errf(err, errlen, KMS_ERR_CONFIG,
                    "pkcs11: key '%s': token offers neither CKM_AES_KEY_WRAP_PAD (key needs "
                    "CKA_WRAP/CKA_UNWRAP) nor CKM_AES_GCM (key needs CKA_ENCRYPT/CKA_DECRYPT)",
                    p->key_label);
}

static void close_sessions(p11_t *p)
{
    for (int i = 0; i < p->n_sess; i++)
        p->fl->C_CloseSession(p->sess[i]);
    p->n_sess = 0;
}

/*
 * Find the slot, open the pool, log in, find the key, choose the mechanism.
 * Caller is inside enter/leave and owns the pool (no session in use).
 */
static int connect_token(p11_t *p, char *err, size_t errlen)
{
    CK_ULONG nkeys = 0;
    CK_RV rv;
    int rc;
    char tn[80];

    token_name(p, tn, sizeof(tn));
    close_sessions(p);
    if ((rc = find_slot(p, &p->slot, 1, err, errlen)) != 0)
        return rc;
    for (int i = 0; i < HSM_P11_POOL; i++) {
        rv = p->fl->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, &p->sess[i]);
        if (rv != CKR_OK) {
            if (i > 0 && rv == CKR_SESSION_COUNT)
                break; /* a token with few sessions: work with what we got */
            rc = hsm_errf(err, errlen, rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                          "pkcs11: %s: C_OpenSession failed (%s)", tn, hsm_p11_rv_name(rv));
            goto fail;
        }
        p->n_sess = i + 1;
    }
    if ((rc = login(p, p->sess[0], err, errlen)) != 0)
        goto fail;
    rv = find_keys(p->fl, p->sess[0], p->key_label, &p->key, &nkeys);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, rv_is_gone(rv) ? KMS_ERR_UNAVAIL : KMS_ERR_CONFIG,
                      "pkcs11: %s: searching for key '%s' failed (%s)", tn, p->key_label,
                      hsm_p11_rv_name(rv));
        goto fail;
    }
    if (nkeys == 0) {
        rc = hsm_errf(err, errlen, KMS_ERR_CONFIG,
                      "pkcs11: AES key '%s' not found on %s (create it with 'kmsctl hsm init --pkcs11 ...')",
                      p->key_label, tn);
        goto fail;
    }
    if (nkeys > 1) {
        rc = hsm_errf(err, errlen, KMS_ERR_CONFIG,
                      "pkcs11: several AES keys labelled '%s' on %s; refusing to guess", p->key_label,
                      tn);
        goto fail;
    }
    if ((rc = choose_mech(p, p->sess[0], err, errlen)) != 0)
        goto fail;
    memset(p->busy, 0, sizeof(p->busy));
    return 0;
fail:
    close_sessions(p);
    return rc;
}

/* ------------------------------------------------------ session pool */

static void deadline_ts(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Has the PIN source changed since the token rejected the PIN? Loads the
 * new PIN when it has. Retrying a rejected PIN once a second would lock
 * the token's user PIN on a real HSM. */
static int pin_changed(p11_t *p)
{
    hsm_config_t c;
    kms_secret_t *np = NULL;
    char e[256];
    memset(&c, 0, sizeof(c));
    c.pin_file = p->pin_file;
    c.pin_env = p->pin_env;
    if (read_pin(&c, &np, e, sizeof(e)) != 0)
        return 0;
    if (np->len == p->pin->len && kms_ct_memcmp(np->data, p->pin->data, np->len) == 0) {
        kms_secret_free(np);
        return 0;
    }
    kms_secret_free(p->pin);
    p->pin = np;
    p->pin_rejected = 0;
    kms_log(KMS_LOG_INFO, "hsm", "pkcs11: PIN changed in %s; trying to log in again",
            p->pin_file ? p->pin_file : p->pin_env);
    return 1;
}

static void note_pin_rejected(p11_t *p, const char *err)
{
    p->pin_rejected = 1;
    kms_log(KMS_LOG_ERROR, "hsm",
            "%s; not retrying this PIN (that could lock it): put the right PIN in %s", err,
            p->pin_file ? p->pin_file : p->pin_env);
}

/* The token-facing half of a reconnect (p->mu not held, p->reconnecting
 * set so nobody else touches the pool). *gen_out: module generation the
 * new sessions belong to. */
static int reconnect_unlocked(p11_t *p, unsigned *gen_out, char *err, size_t errlen)
{
    int rc;
    if (p->pin_rejected && !pin_changed(p))
        return hsm_errf(err, errlen, KMS_ERR_PERM, "pkcs11: waiting for a new PIN");
    hsm_p11_mod_enter(p->mod);
    unsigned gen = p->mod->gen;
    if (gen != p->mod_gen) {
        /* Another provider restarted the module: our handles are stale. */
        p->n_sess = 0;
    }
    rc = connect_token(p, err, errlen);
    hsm_p11_mod_leave(p->mod);
    if (rc == KMS_ERR_PERM) {
        note_pin_rejected(p, err);
    } else if (rc != 0) {
        /* Some modules (SoftHSM2) only see a returned token after a
         * restart of the library: finalize and initialize, then retry. */
        CK_RV rv = hsm_p11_mod_reinit(p->mod, gen);
        if (rv == CKR_OK) {
            hsm_p11_mod_enter(p->mod);
            p->n_sess = 0; /* C_Finalize closed every session */
            gen = p->mod->gen;
            rc = connect_token(p, err, errlen);
            hsm_p11_mod_leave(p->mod);
            if (rc == KMS_ERR_PERM)
                note_pin_rejected(p, err);
        }
    }
    *gen_out = gen;
    return rc;
}

/*
 * Reconnect with p->mu held and p->broken set; releases mu while talking
 * to the token. Rate limited by the caller. Returns 0 when healthy again.
 */
static int reconnect_locked(p11_t *p)
{
    struct timespec dl;
    char err[256];
    int rc;

    p->reconnecting = 1;
    p->last_try_ns = kms_mono_ns();
    /* Sessions still out are from before the failure; they come back fast
     * (a dead token fails calls at once). Do not close them under a caller. */
    deadline_ts(&dl, HSM_P11_WAIT_MS);
    while (p->in_use > 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
            break;
    if (p->in_use > 0) {
        p->reconnecting = 0;
        return KMS_ERR_UNAVAIL;
    }
    pthread_mutex_unlock(&p->mu);

    unsigned gen = 0;
    rc = reconnect_unlocked(p, &gen, err, sizeof(err));

    pthread_mutex_lock(&p->mu);
    p->reconnecting = 0;
    if (rc == 0) {
        p->mod_gen = gen;
        p->broken = 0;
        kms_log(KMS_LOG_INFO, "hsm", "pkcs11: token back, sessions reopened and logged in");
        pthread_cond_broadcast(&p->cv);
    } else {
        kms_log(KMS_LOG_DEBUG, "hsm", "pkcs11: reconnect failed: %s", err);
    }
    return rc == 0 ? 0 : KMS_ERR_UNAVAIL;
}

static void mark_broken_locked(p11_t *p, CK_RV rv)
{
    if (!p->broken)
        kms_log(KMS_LOG_ERROR, "hsm",
                "pkcs11: token '%s' unavailable (%s); key wrapping suspended, retrying every second",
                p->token_label ? p->token_label : "(by slot)", hsm_p11_rv_name(rv));
    p->broken = 1;
}

/* Take a session; on success the caller is inside enter/leave. */
static int sess_get(p11_t *p, int *idx_out, unsigned wait_ms)
{
    struct timespec dl;
    int rc = 0, waited = 0;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!p->broken && __atomic_load_n(&p->mod->gen, __ATOMIC_ACQUIRE) != p->mod_gen)
            p->broken = 1; /* another provider restarted the module */
        if (p->broken) {
            if (p->reconnecting || kms_mono_ns() - p->last_try_ns < HSM_P11_RETRY_NS ||
                reconnect_locked(p) != 0) {
                rc = KMS_ERR_UNAVAIL;
                break;
            }
        }
        int i;
        for (i = 0; i < p->n_sess && p->busy[i]; i++)
            ;
        if (i < p->n_sess) {
            p->busy[i] = 1;
            p->busy_since[i] = kms_mono_ns();
            p->in_use++;
            *idx_out = i;
            break;
        }
        if (wait_ms == 0) {
            rc = KMS_ERR_BUSY;
            break;
        }
        if (!waited) {
            deadline_ts(&dl, wait_ms);
            waited = 1;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) {
            rc = KMS_ERR_BUSY;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        hsm_p11_mod_enter(p->mod);
    return rc;
}

/* Give the session back; rv is the outcome of the last call on it.
 * Returns KMS_ERR_UNAVAIL when rv says the token went away, else 0. */
static int sess_put(p11_t *p, int idx, CK_RV rv)
{
    int gone = rv_is_gone(rv);
    hsm_p11_mod_leave(p->mod);
    pthread_mutex_lock(&p->mu);
    p->busy[idx] = 0;
    p->in_use--;
    if (gone)
        mark_broken_locked(p, rv);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return gone ? KMS_ERR_UNAVAIL : 0;
}

/* ---------------------------------------------------- wrap / unwrap */

static int p11_wrap(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *out)
{
    p11_t *p = h->impl;
    uint8_t blob[2 + HSM_GCM_IV_LEN + 64 + HSM_GCM_TAG_LEN + 16];
    CK_ULONG wlen = 0;
    CK_RV rv = CKR_OK;
    int idx, rc;

    if ((rc = sess_get(p, &idx, HSM_P11_WAIT_MS)) != 0)
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
            sess_put(p, idx, CKR_OK);
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
    if ((rc = sess_put(p, idx, rv)) != 0)
        return rc;
    if (rv != CKR_OK) {
        kms_log(KMS_LOG_ERROR, "hsm", "pkcs11: wrapping a DSK failed (%s)", hsm_p11_rv_name(rv));
        return KMS_ERR_CRYPTO;
    }
    return kms_buf_append(out, blob, 2 + (size_t)wlen);
}

static int p11_unwrap(hsm_t *h, const uint8_t *w, size_t len, kms_secret_t **out)
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
    if ((rc = sess_get(p, &idx, HSM_P11_WAIT_MS)) != 0)
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
        } else if (!rv_is_gone(rv)) {
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
            if (rv != CKR_OK && !rv_is_gone(rv))
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
    if ((rc = sess_put(p, idx, rv)) != 0)
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
static int all_stuck(p11_t *p)
{
    uint64_t now = kms_mono_ns(), limit = (uint64_t)HSM_P11_WAIT_MS * 1000000u;
    pthread_mutex_lock(&p->mu);
    int stuck = p->n_sess > 0;
    for (int i = 0; i < p->n_sess; i++)
        if (!p->busy[i] || now - p->busy_since[i] < limit)
            stuck = 0;
    pthread_mutex_unlock(&p->mu);
    return stuck;
}

static int p11_health(hsm_t *h)
{
    p11_t *p = h->impl;
    CK_BBOOL tok = CK_FALSE;
    CK_ATTRIBUTE a = {CKA_TOKEN, &tok, sizeof(tok)};
    int idx, rc;

    /* A real probe: SoftHSM2 and some HSMs only notice a vanished token
     * when the key is touched. sess_get also drives the reconnect. */
    if ((rc = sess_get(p, &idx, 0)) == KMS_ERR_BUSY)
        return all_stuck(p) ? KMS_ERR_UNAVAIL : 0; /* every session in use: alive unless stuck */
    if (rc != 0)
        return rc;
    CK_RV rv = p->fl->C_GetAttributeValue(p->sess[idx], p->key, &a, 1);
    if ((rc = sess_put(p, idx, rv)) != 0)
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
            close_sessions(p);
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

static const struct hsm_ops p11_ops = {
    .name = "pkcs11",
    .wrap = p11_wrap,
    .unwrap = p11_unwrap,
    .health = p11_health,
    .close = p11_close,
};

/* Common part of open and init: config, PIN, module. */
static int p11_new(const hsm_config_t *cfg, const char *key_label, p11_t **out, char *err,
                   size_t errlen)
{
    p11_t *p = NULL;
    pthread_condattr_t ca;
    int rc = KMS_ERR_NOMEM;

    if (!cfg->module || !cfg->module[0])
        return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: hsm.module is not set");
    if ((!cfg->token_label || !cfg->token_label[0]) && cfg->slot < 0)
        return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: set hsm.token_label or hsm.slot");
    if (cfg->token_label && strlen(cfg->token_label) > 32)
        return hsm_errf(err, errlen, KMS_ERR_CONFIG, "pkcs11: token label longer than 32 bytes");
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
    if ((rc = read_pin(cfg, &p->pin, err, errlen)) != 0)
        goto fail;
    rc = KMS_ERR_NOMEM;
    if (cfg->pin_file && cfg->pin_file[0]) {
        if (!(p->pin_file = strdup(cfg->pin_file)))
            goto fail;
    } else if (!(p->pin_env = strdup(cfg->pin_env))) {
        goto fail;
    }
    if ((rc = hsm_p11_mod_get(cfg->module, &p->mod, err, errlen)) != 0)
        goto fail;
    p->fl = p->mod->fl;
    p->mod_gen = p->mod->gen;
    *out = p;
    return 0;
fail:
    p11_free(p);
    return rc;
}

int hsm_p11_open(const hsm_config_t *cfg, hsm_t **out, char *err, size_t errlen)
{
    p11_t *p = NULL;
    hsm_t *h = NULL;
    char tn[80];
    int rc;

    if ((rc = p11_new(cfg, cfg->key_label, &p, err, errlen)) != 0)
        return rc;
    hsm_p11_mod_enter(p->mod);
    p->mod_gen = p->mod->gen;
    rc = connect_token(p, err, errlen);
    hsm_p11_mod_leave(p->mod);
    if (rc)
        goto fail;
    if (!(h = calloc(1, sizeof(*h)))) {
        rc = KMS_ERR_NOMEM;
        goto fail;
    }
    h->ops = &p11_ops;
    h->impl = p;
    snprintf(h->desc, sizeof(h->desc), "pkcs11 %s key '%s' (%s, %s)", token_name(p, tn, sizeof(tn)),
             p->key_label, p->mech == CKM_AES_KEY_WRAP_PAD ? "CKM_AES_KEY_WRAP_PAD" : "CKM_AES_GCM",
             p->module_path);
    *out = h;
    return 0;
fail:
    p11_free(p);
    return rc;
}

int hsm_p11_init(const hsm_config_t *cfg, const char *label, char *err, size_t errlen)
{
    p11_t *p = NULL;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    CK_ULONG nkeys = 0;
    CK_RV rv;
    char tn[80];
    int rc, entered = 0;

    if ((rc = p11_new(cfg, label, &p, err, errlen)) != 0)
        return rc;
    token_name(p, tn, sizeof(tn));
    hsm_p11_mod_enter(p->mod);
    entered = 1;
    if ((rc = find_slot(p, &p->slot, 1, err, errlen)) != 0)
        goto out;
    rv = p->fl->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: %s: C_OpenSession failed (%s)", tn,
                      hsm_p11_rv_name(rv));
        goto out;
    }
    if ((rc = login(p, s, err, errlen)) != 0)
        goto out;
    rv = find_keys(p->fl, s, p->key_label, &k, &nkeys);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, KMS_ERR_UNAVAIL, "pkcs11: %s: searching for key '%s' failed (%s)",
                      tn, p->key_label, hsm_p11_rv_name(rv));
        goto out;
    }
    if (nkeys > 0) {
        rc = hsm_errf(err, errlen, KMS_ERR_EXISTS,
                      "pkcs11: a key labelled '%s' already exists on %s; refusing to create another",
                      p->key_label, tn);
        goto out;
    }
    /* Prefer key wrap; a token without it gets a key usable for GCM. */
    CK_BBOOL use_kwp = mech_usable(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP) ? CK_TRUE : CK_FALSE;
    CK_BBOOL use_gcm = use_kwp ? CK_FALSE : CK_TRUE;
    if (!use_kwp && !mech_usable(p, CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT)) {
        rc = hsm_errf(err, errlen, KMS_ERR_NOTSUP,
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
        rc = hsm_errf(err, errlen, KMS_ERR_CRYPTO, "pkcs11: %s: generating key '%s' failed (%s)", tn,
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
