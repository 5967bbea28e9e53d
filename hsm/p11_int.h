/*
 * hsm/p11_int.h: private to the PKCS#11 provider (provider_pkcs11.c,
 * p11_token.c, p11_pool.c): the provider state and the helpers the three
 * files share.
 */
#ifndef KMS_HSM_P11_INT_H
#define KMS_HSM_P11_INT_H

#include "hsm/hsm_int.h"

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

/* p11_token.c */
/* The token, its login or the master key went away (not: bad input). */
int hsm_p11_rv_is_gone(CK_RV rv);
/* The user PIN from cfg->pin_file (trailing newline trimmed) or the
 * environment variable cfg->pin_env. */
int hsm_p11_read_pin(const hsm_config_t *cfg, kms_secret_t **out, kms_error_t *err);
/* "token 'kmsd'" or "slot 3" for messages. */
const char *hsm_p11_token_name(const p11_t *p, char *buf, size_t len);
int hsm_p11_find_slot(p11_t *p, CK_SLOT_ID *out, int need_login, kms_error_t *err);
/* KMS_ERR_PERM only when the token refused the PIN (wrong, locked, expired). */
int hsm_p11_login(p11_t *p, CK_SESSION_HANDLE s, kms_error_t *err);
CK_RV hsm_p11_find_keys(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s, const char *label,
                        CK_OBJECT_HANDLE *key_out, CK_ULONG *n_out);
int hsm_p11_mech_usable(p11_t *p, CK_MECHANISM_TYPE m, CK_FLAGS need);
/* Slot, pool, login, key, mechanism. Caller is inside enter/leave and no
 * session of p is in use. */
int hsm_p11_connect(p11_t *p, kms_error_t *err);
void hsm_p11_close_sessions(p11_t *p);

/* p11_pool.c */
/* Take a session (waiting up to wait_ms for a free one: KMS_ERR_BUSY);
 * KMS_ERR_UNAVAIL while the token is gone. On success the caller is
 * inside hsm_p11_mod_enter and must call hsm_p11_sess_put. */
int hsm_p11_sess_get(p11_t *p, int *idx_out, unsigned wait_ms);
/* Give it back with the CK_RV of the last call; KMS_ERR_UNAVAIL (and the
 * provider marked broken) when rv says the token went away, else 0. */
int hsm_p11_sess_put(p11_t *p, int idx, CK_RV rv);
/* Every session held by a call stuck in the module for > HSM_P11_WAIT_MS. */
int hsm_p11_all_stuck(p11_t *p);

#endif /* KMS_HSM_P11_INT_H */
