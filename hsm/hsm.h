/*
 * hsm/hsm.h: protection of key material at rest.
 *
 * Two layers:
 * 1. A master-key provider (`pkcs11`: a key that never leaves a PKCS#11
 *    token; `file`: a 32-byte key in a 0600 file) that only wraps and
 *    unwraps data-store keys (DSKs).
 * 2. A keyring of DSKs (plaintext only in mlock'ed memory) that seals the
 *    key material of every object row with AES-256-GCM, associated data
 *    binding the owner tenant, object id and seal generation, so a blob
 *    copied onto another object's row fails to open.
 *
 * hsm/ never includes store/: callers persist the wrapped DSKs (e.g. in
 * store meta) and hand them to the keyring. All functions are thread-safe
 * unless stated; PKCS#11 calls may block, so never call them on a loop thread.
 */
#ifndef KMS_HSM_H
#define KMS_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"

typedef struct hsm hsm_t;
typedef struct hsm_keyring hsm_keyring_t;

enum hsm_provider { HSM_PROVIDER_FILE = 0, HSM_PROVIDER_PKCS11 = 1 };

typedef struct hsm_config {
    enum hsm_provider provider;
    /* file */
    const char *key_file;        /* 32 raw bytes, mode 0600, owned by the service user */
    /* pkcs11 */
    const char *module;          /* e.g. /usr/lib/softhsm/libsofthsm2.so */
    const char *token_label;     /* token by label, or */
    int slot;                    /* slot id when token_label is NULL; -1 = unset */
    const char *pin_file;        /* user PIN read from this file, or */
    const char *pin_env;         /* from this environment variable */
    const char *key_label;       /* CKA_LABEL of the master key (default "kmsd-master") */
} hsm_config_t;

/* Open the provider and find the master key. On failure records one clear
 * line in err (NULL ok: "token 'kmsd' not found", "wrong PIN", "key file
 * mode 0644, must be 0600") and returns KMS_ERR_CONFIG / KMS_ERR_UNAVAIL /
 * KMS_ERR_PERM. */
int hsm_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err);
void hsm_close(hsm_t *h); /* NULL ok */

/* Create a new master key: generated inside the token (CKA_SENSITIVE,
 * !CKA_EXTRACTABLE, CKA_TOKEN) or written to the key file (0600). The new
 * key gets the label `new_label` (NULL = cfg->key_label). Refuses to
 * overwrite an existing key with the same label/file (KMS_ERR_EXISTS).
 * For the file provider `new_label` is the path of the new key file
 * (NULL = cfg->key_file). Detail in err (NULL ok). */
int hsm_init_master(const hsm_config_t *cfg, const char *new_label, kms_error_t *err);

/* Wrap / unwrap a data-store key with the master key. hsm_wrap appends
 * the wrapped form to *wrapped_out (kms_buf_init'ed by the caller).
 * KMS_ERR_CRYPTO: the blob does not unwrap under this master key;
 * KMS_ERR_UNAVAIL: the token is unreachable right now. */
int hsm_wrap(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *wrapped_out);
int hsm_unwrap(hsm_t *h, const uint8_t *wrapped, size_t len, kms_secret_t **dsk_out);

/* 0 when the master key is usable now; KMS_ERR_UNAVAIL when the token is
 * gone (the provider re-logs-in by itself when it comes back). Fast: one
 * probe of the key, plus at most one reconnect attempt per second. */
int hsm_health(hsm_t *h);
const char *hsm_describe(hsm_t *h); /* "pkcs11 token 'kmsd' key 'kmsd-master'" */

/* ------------------------------------------------------------- keyring */
int hsm_keyring_new(hsm_t *h, hsm_keyring_t **out);
void hsm_keyring_free(hsm_keyring_t *kr); /* wipes every DSK; NULL ok */

/* Add a DSK known by its wrapped form (from the store) under `dsk_id`. */
int hsm_keyring_load(hsm_keyring_t *kr, uint32_t dsk_id, const uint8_t *wrapped, size_t len);
/* Generate a new DSK with id `dsk_id`; its wrapped form goes to *wrapped_out
 * for the caller to persist. It becomes the current DSK only after
 * hsm_keyring_set_current(). */
int hsm_keyring_generate(hsm_keyring_t *kr, uint32_t dsk_id, kms_buf_t *wrapped_out);
int hsm_keyring_set_current(hsm_keyring_t *kr, uint32_t dsk_id);
uint32_t hsm_keyring_current(hsm_keyring_t *kr); /* 0 = none yet; DSK ids are >= 1 */
/*
 * Cluster replication: a DSK travels between nodes in plaintext, only
 * inside the peer link's TLS, because every node wraps it under its OWN
 * master key (nodes never share one).
 * hsm_keyring_export: a copy of DSK `dsk_id` in a new secret (*key_out,
 * free with kms_secret_free); KMS_ERR_NOTFOUND when not loaded.
 * hsm_keyring_import: wrap `key` under this keyring's master key (the
 * wrapped form is appended to *wrapped_out for the caller to persist, as
 * hsm_keyring_generate does) and load it under `dsk_id`. The same id with
 * the same bytes is accepted again (wrapped_out still gets the wrap); the
 * same id with other bytes is KMS_ERR_EXISTS and changes nothing; a key
 * that is not a DSK (32 bytes) is KMS_ERR_INVAL. May block (PKCS#11).
 */
int hsm_keyring_export(hsm_keyring_t *kr, uint32_t dsk_id, kms_secret_t **key_out);
int hsm_keyring_import(hsm_keyring_t *kr, uint32_t dsk_id, const kms_secret_t *key,
                       kms_buf_t *wrapped_out);

/* Re-wrap a loaded DSK under the (new) master key of `h2` (master rotation). */
int hsm_keyring_rewrap(hsm_keyring_t *kr, uint32_t dsk_id, hsm_t *h2, kms_buf_t *wrapped_out);
/* After a master rotation: later hsm_keyring_load/generate use `h` (which
 * must outlive the keyring; the previous provider is no longer used by it,
 * but the caller keeps it open until no generate/load that started before
 * this call can still be running). */
int hsm_keyring_set_master(hsm_keyring_t *kr, hsm_t *h);

/* ------------------------------------------------------------ sealed rows
 * The one owner of the key material of an object row (kms_sealed_t): every
 * path that seals material for a row or opens a row's material (KMIP
 * operations, undo, backup and restore, store-key rotation, replication)
 * calls these. A blob is AES-256-GCM under a DSK, nonce(12) || ciphertext
 * || tag(16); its associated data binds the DSK id, the owner tenant, the
 * object id and the seal generation (keyring.c has the exact bytes), and
 * nothing else of the row: a write that changes only attributes, state or
 * the row's version keeps the sealed fields as they are, and a row opens
 * on any node holding the DSK, whatever version the row has there. */

/* Seal plaintext material of object `obj_id` owned by tenant `owner` under
 * the current DSK. `prev` is the row's sealed material before this seal
 * (NULL for an object never stored): the generation becomes prev->gen + 1,
 * or 1. The blob is allocated from `arena`; *sealed_out is set only on
 * success. KMS_ERR_STATE when no DSK is current; KMS_ERR_LIMIT when the
 * material, owner or id is too long. */
int hsm_row_seal(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                 const kms_sealed_t *prev, const uint8_t *plain, size_t len, kms_arena_t *arena,
                 kms_sealed_t *sealed_out);
/* Open the sealed material of object `obj_id` owned by `owner`.
 * KMS_ERR_CRYPTO when it does not authenticate (another object's or
 * tenant's blob, another generation, tampering); KMS_ERR_NOTFOUND when its
 * DSK is not loaded (or dsk_id is 0: the row has no material). */
int hsm_row_open(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                 const kms_sealed_t *sealed, kms_secret_t **plain_out);
/* Open `cur` and seal its material again under the current DSK with the
 * next generation (store-key rotation). The plaintext stays inside hsm/.
 * The errors of hsm_row_open and hsm_row_seal. sealed_out may be cur. */
int hsm_row_reseal(hsm_keyring_t *kr, const char *owner, const char *obj_id,
                   const kms_sealed_t *cur, kms_arena_t *arena, kms_sealed_t *sealed_out);

#endif /* KMS_HSM_H */
