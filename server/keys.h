/*
 * server/keys.h: key rotation and HSM availability inside kmsd
 * (server/keys_rotate.c, server/keys_reencrypt.c, server/keys_health.c).
 *
 * - Master-key rotation and data-store-key (DSK) rotation, run on the admin
 *   thread; the re-encryption of objects onto the new DSK runs on its own
 *   background thread, never on a loop thread.
 * - The HSM health monitor: its own thread calls hsm_health() every 250 ms;
 *   while the master key is unreachable, key operations fail at once (the
 *   kmip gate) and the listeners stop accepting (loop.c), until it returns.
 *
 * Store meta used (see docs/key-protection.md):
 *   "master.current"    label (pkcs11) or path (file) of the master key that
 *                       wraps every "dsk.<id>"; preferred over the config
 *   "master.previous"   the one it replaced (kept, never destroyed by kmsd)
 *   "master.generation" n of the last "<key_label>-<n>" / "<key_file>.<n>"
 *
 * It deliberately never sees DSK plaintext (hsm/ keeps it) and never
 * deletes a master key or a DSK.
 */
#ifndef KMS_SERVER_KEYS_H
#define KMS_SERVER_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "ttlv/ttlv.h"

typedef struct srv srv_t;

#define SRV_META_MASTER_CURRENT "master.current"
#define SRV_META_MASTER_PREVIOUS "master.previous"
#define SRV_META_MASTER_GENERATION "master.generation"
#define SRV_META_DSK_CURRENT "dsk.current"

/* Main thread, after the loops started: the health monitor thread and the
 * re-encryption thread (which resumes by itself when objects still use an
 * old DSK). 0 or KMS_ERR_*. */
int srv_keys_start(srv_t *srv);
/* Main thread, first step of shutdown (before the loops stop): stops both
 * threads and closes master-key providers retired by rotations. Safe when
 * srv_keys_start was not called. */
void srv_keys_stop(srv_t *srv);

/* The kmip_config_t gate: KMS_ERR_UNAVAIL for operations that need key
 * material or the HSM while the HSM is down (worker threads). */
int srv_keys_gate(void *arg, uint32_t operation);
#define SRV_KEYS_GATE_MSG "HSM unavailable"

/* The master-key provider in use now (rotation replaces it). Any thread;
 * a replaced provider stays open until srv_keys_stop(). */
hsm_t *srv_keys_hsm(srv_t *srv);

/* Admin socket commands "rotate.master", "rotate.store-key",
 * "rotate.status": add RECORDs to `resp` (allocated in `a`) or return an
 * error with `msg` set. Admin thread only. */
int srv_keys_admin(const char *cmd, const ttlv_item_t *req, kms_arena_t *a, ttlv_item_t *resp,
                   char *msg, size_t msglen);

/* ---- internal to keys_*.c ---- */
/* Wake (or start) the re-encryption pass. */
void srv_keys_reencrypt_kick(void);
typedef struct srv_keys_progress {
    const char *state;          /* "idle", "counting", "running", "done", "stopped" */
    uint32_t target;            /* DSK the objects move to */
    int64_t total, done, failed;
    int64_t started_us, finished_us;
} srv_keys_progress_t;
void srv_keys_reencrypt_progress(srv_keys_progress_t *out);
bool srv_keys_reencrypt_busy(void);
int srv_keys_reencrypt_start(srv_t *srv);
void srv_keys_reencrypt_stop(void);
int srv_keys_health_start(srv_t *srv);
void srv_keys_health_stop(void);

#endif /* KMS_SERVER_KEYS_H */
