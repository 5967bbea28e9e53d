/*
 * hsm/p11_pool.c: the PKCS#11 session pool shared by all threads, and
 * recovery. A call that fails with a "gone" code marks the provider
 * broken; while broken, callers get KMS_ERR_UNAVAIL at once, and at most
 * once per second one of them reconnects (new sessions, login, find the
 * key; failing that, a restart of the module). A PIN the token refused is
 * never retried: the provider waits for the PIN source to change.
 *
 * Lock order: p->mu is never held across a Cryptoki call; a session
 * holder is inside hsm_p11_mod_enter/leave.
 */
#include "hsm/p11_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

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
    memset(&c, 0, sizeof(c));
    c.pin_file = p->pin_file;
    c.pin_env = p->pin_env;
    if (hsm_p11_read_pin(&c, &np, NULL) != 0)
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

static void note_pin_rejected(p11_t *p, const kms_error_t *err)
{
    p->pin_rejected = 1;
    kms_log(KMS_LOG_ERROR, "hsm",
            "%s; not retrying this PIN (that could lock it): put the right PIN in %s", kms_error_msg(err),
            p->pin_file ? p->pin_file : p->pin_env);
}

/* The token-facing half of a reconnect (p->mu not held, p->reconnecting
 * set so nobody else touches the pool). *gen_out: module generation the
 * new sessions belong to. */
static int reconnect_unlocked(p11_t *p, unsigned *gen_out, kms_error_t *err)
{
    int rc;
    if (p->pin_rejected && !pin_changed(p))
        return kms_error_set(err, KMS_ERR_PERM, "pkcs11: waiting for a new PIN");
    hsm_p11_mod_enter(p->mod);
    unsigned gen = p->mod->gen;
    if (gen != p->mod_gen) {
        /* Another provider restarted the module: our handles are stale. */
        p->n_sess = 0;
    }
    rc = hsm_p11_connect(p, err);
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
            rc = hsm_p11_connect(p, err);
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
    kms_error_t err;
    int rc;

    kms_error_clear(&err);
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
    rc = reconnect_unlocked(p, &gen, &err);

    pthread_mutex_lock(&p->mu);
    p->reconnecting = 0;
    if (rc == 0) {
        p->mod_gen = gen;
        p->broken = 0;
        kms_log(KMS_LOG_INFO, "hsm", "pkcs11: token back, sessions reopened and logged in");
        pthread_cond_broadcast(&p->cv);
    } else {
        kms_log(KMS_LOG_DEBUG, "hsm", "pkcs11: reconnect failed: %s", kms_error_msg(&err));
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
int hsm_p11_sess_get(p11_t *p, int *idx_out, unsigned wait_ms)
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
int hsm_p11_sess_put(p11_t *p, int idx, CK_RV rv)
{
    int gone = hsm_p11_rv_is_gone(rv);
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

int hsm_p11_all_stuck(p11_t *p)
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
