/*
 * keys/keys.h: the key lifecycle of a running kmsd: loading the data-store
 * keyring at start-up (keys/keyring.c), master-key and data-store-key (DSK)
 * rotation (keys/rotate.c), the background re-encryption of objects onto a
 * new DSK (keys/reencrypt.c) and the HSM health monitor (keys/health.c).
 *
 * - Rotations are called from the admin thread (one at a time); the
 *   re-encryption runs on its own thread, never on a loop thread.
 * - The health monitor's thread calls hsm_health() and reads the store
 *   every 250 ms; while the master key is unreachable keys_hsm_down() is
 *   true (kmsd passes it to each request's kmip_request_gate, so key
 *   operations fail at once), while the database cannot be read
 *   keys_store_down() is, and the caller is told through keys_health_cb
 *   after every probe (kmsd closes its KMIP listener while either is).
 *
 * Store meta used (see docs/key-protection.md):
 *   "master.current"    label (pkcs11) or path (file) of the master key that
 *                       wraps every "dsk.<id>"; preferred over the config
 *   "master.previous"   the one it replaced (kept, never destroyed by kmsd)
 *   "master.generation" n of the last "<key_label>-<n>" / "<key_file>.<n>"
 *   "dsk.current"       the current DSK id, decimal text
 *   "dsk.<id>"          DSK <id> wrapped by the master key
 *
 * It deliberately never sees DSK plaintext (hsm/ keeps it), never deletes a
 * master key or a DSK, and knows nothing of the admin protocol or of the
 * server's loops: admin/ formats the results, server/ wires the callbacks.
 * One key lifecycle per process: the state is process-wide.
 */
#ifndef KMS_KEYS_H
#define KMS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "conf/conf.h"
#include "hsm/hsm.h"
#include "store/store.h"

#define KEYS_META_MASTER_CURRENT "master.current"
#define KEYS_META_MASTER_PREVIOUS "master.previous"
#define KEYS_META_MASTER_GENERATION "master.generation"
#define KEYS_META_DSK_CURRENT "dsk.current"

/* ------------------------------------------------------------- start-up */
/*
 * The hsm_config_t for the configuration's hsm section: the one mapping
 * from conf/ to hsm/, used by kmsd and kmsctl. Strings point into `c`
 * ("" becomes NULL). `master` (NULL or "" = the configured one) names the
 * master key instead: its CKA_LABEL (pkcs11) or key file path (file).
 * 0, or KMS_ERR_CONFIG with err saying why (a provider hsm/ does not know).
 */
int keys_hsm_config(const conf_t *c, const char *master, hsm_config_t *out, kms_error_t *err);

/*
 * The master key named by store meta "master.current" (set by a rotation)
 * into out (NUL-terminated). 0, KMS_ERR_NOTFOUND (no rotation yet),
 * KMS_ERR_PROTO (empty, too long for out, or holding a NUL), or another
 * KMS_ERR_* from the store. Main thread.
 */
int keys_master_from_meta(store_t *store, char *out, size_t outlen);

/*
 * Create the data-store keyring on `hsm` and load every DSK the store
 * holds ("dsk.1" .. "dsk.<current>" and a few past it, left by a rotation
 * cut short), then select "dsk.current". On a first start (no
 * "dsk.current" and no objects) DSK 1 is generated and persisted, wrapped,
 * before it becomes current. Logs one line on success and one clear error
 * on failure. 0 or KMS_ERR_*; *out is set (and must be freed by the caller
 * with hsm_keyring_free) even on failure. Main thread.
 */
int keys_setup_keyring(hsm_t *hsm, store_t *store, hsm_keyring_t **out);

/* ------------------------------------------------------------ lifecycle */
/* What the health monitor found at its last probe. */
typedef struct keys_health {
    bool hsm_down;               /* the master key cannot be reached */
    int hsm_rc;                  /* hsm_health's last result (0 = fine) */
    bool store_down;             /* the database cannot be read */
    int store_rc;                /* the probe read's last result (0 = fine) */
} keys_health_t;

/* Called by the health monitor after every probe (monitor thread; must
 * not block). `h` is valid during the call. */
typedef void (*keys_health_cb)(void *arg, const keys_health_t *h);

typedef struct keys_options {
    const conf_t *conf;          /* hsm section: where new master keys go */
    store_t *store;
    hsm_keyring_t *keyring;
    hsm_t *hsm;                  /* the master-key provider opened at start-up */
    keys_health_cb health_cb;    /* may be NULL */
    void *health_arg;
} keys_options_t;

/* Main thread, after the loops started: the health monitor thread and the
 * re-encryption thread (which resumes by itself when objects still use an
 * old DSK). `opt` is copied; what it points to must outlive keys_stop().
 * 0 or KMS_ERR_*. */
int keys_start(const keys_options_t *opt);
/* Main thread, first step of shutdown: stops both threads and closes the
 * master-key providers retired by rotations (not the current one: see
 * keys_hsm()). Safe when keys_start was not called. */
void keys_stop(void);

/* The master-key provider in use now (a rotation replaces the one given to
 * keys_start), or NULL before keys_start. It stays open after keys_stop:
 * the caller closes it. Any thread. */
hsm_t *keys_hsm(void);
/* True while the health monitor finds the HSM unavailable. Any thread. */
bool keys_hsm_down(void);
/* True while the health monitor cannot read the store. Any thread. */
bool keys_store_down(void);

/* ------------------------------------------------------------- rotation */
typedef struct keys_master_rotation {
    char master[512];            /* the new master key (label or path) */
    char previous[512];          /* the one it replaced, kept */
    int64_t dsks_rewrapped;
} keys_master_rotation_t;

/*
 * Master-key rotation: create the next master key in the HSM (pkcs11:
 * "<hsm.key_label>-<n>", file: "<hsm.key_file>.<n>"), re-wrap every DSK
 * under it and persist them with "master.current" in one commit, then make
 * it the keyring's master. 0 with *out filled, or KMS_ERR_* with err
 * saying why (nothing changed). Admin thread.
 */
int keys_rotate_master(keys_master_rotation_t *out, kms_error_t *err);
/*
 * Data-store-key rotation: generate DSK <current+1>, persist it wrapped
 * with "dsk.current" in one commit, make it current and wake the
 * re-encryption. 0 with *dsk_out / *previous_out, or KMS_ERR_* (BUSY while
 * a re-encryption runs) with err saying why. Admin thread.
 */
int keys_rotate_store_key(uint32_t *dsk_out, uint32_t *previous_out, kms_error_t *err);

typedef struct keys_status {
    const char *state;           /* re-encryption: "idle", "starting", "counting", "running", "done", "stopped" */
    uint32_t dsk;                /* current DSK */
    uint32_t target;             /* DSK the objects move to */
    int64_t total, done, failed;
    int64_t elapsed_ms;
    char master[512];
    char previous[512];
    bool hsm_down;
} keys_status_t;
/* Rotation and re-encryption state. 0, or KMS_ERR_UNAVAIL before
 * keys_start / after keys_stop (err says so). Admin thread. */
int keys_rotate_status(keys_status_t *out, kms_error_t *err);

#endif /* KMS_KEYS_H */
