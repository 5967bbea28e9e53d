/*
 * keys/keys_int.h: private to keys/ (and its unit tests): what the files
 * of the key lifecycle share. keys/rotate.c owns the options given to
 * keys_start(); health.c and reencrypt.c run one thread each.
 *
 * It deliberately declares nothing a caller outside keys/ needs.
 */
#ifndef KMS_KEYS_INT_H
#define KMS_KEYS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "keys/keys.h"

/* Log component: the lines read as kmsd's own. */
#define KEYS_LOG "kmsd"
/* DSK ids probed past the current one (a rotation cut short). */
#define KEYS_DSK_PROBE_AHEAD 4

/* Text value of a store meta key into out (keyring.c): 0, KMS_ERR_NOTFOUND
 * when absent, KMS_ERR_PROTO when empty, too long or holding a NUL. */
int keys_meta_text(store_reader_t *rd, const char *key, char *out, size_t outlen);

/* The re-encryption pass (reencrypt.c). */
typedef struct keys_progress {
    const char *state;          /* "idle", "counting", "running", "done", "stopped" */
    uint32_t target;            /* DSK the objects move to */
    int64_t total, done, failed;
    int64_t started_us, finished_us;
} keys_progress_t;
/* Wake (or start) the re-encryption pass. */
void keys_reencrypt_kick(void);
void keys_reencrypt_progress(keys_progress_t *out);
bool keys_reencrypt_busy(void);
int keys_reencrypt_start(const keys_options_t *k);
void keys_reencrypt_stop(void);

/* The health monitor (health.c). */
int keys_health_start(const keys_options_t *k);
void keys_health_stop(void);

#endif /* KMS_KEYS_INT_H */
