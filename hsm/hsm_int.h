/*
 * hsm/hsm_int.h: private to hsm/. The provider interface behind hsm_t, the
 * wrapped-DSK blob format shared by both providers, and small helpers.
 *
 * Wrapped DSK blob (what the store keeps):
 *   byte 0  HSM_WRAP_FORMAT (1)
 *   byte 1  algorithm: HSM_ALG_KWP  -> RFC 5649 AES key wrap with padding
 *                      HSM_ALG_GCM  -> iv(12) || ciphertext || tag(16),
 *                                      AAD = HSM_WRAP_AAD || bytes 0..1
 *   then the algorithm's output.
 * The header lets a token that lost (or gained) CKM_AES_KEY_WRAP_PAD still
 * unwrap old blobs, and lets the file provider read either form.
 */
#ifndef KMS_HSM_INT_H
#define KMS_HSM_INT_H

#include <stdarg.h>

#include "hsm/hsm.h"

#define HSM_DSK_LEN 32
#define HSM_MASTER_LEN 32
#define HSM_WRAP_FORMAT 1
#define HSM_ALG_KWP 1
#define HSM_ALG_GCM 2
#define HSM_GCM_IV_LEN 12
#define HSM_GCM_TAG_LEN 16
#define HSM_WRAP_AAD "kmsd dsk wrap v1"
#define HSM_WRAPPED_MAX 256 /* no wrapped 32-byte key comes near this */

struct hsm_ops {
    const char *name;
    int (*wrap)(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *out);
    int (*unwrap)(hsm_t *h, const uint8_t *w, size_t len, kms_secret_t **out);
    int (*health)(hsm_t *h);
    void (*close)(hsm_t *h);
};

struct hsm {
    const struct hsm_ops *ops;
    char desc[256];
    void *impl;
};

/* Providers (provider_file.c, provider_pkcs11.c). */
int hsm_file_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err);
int hsm_file_init(const char *path, kms_error_t *err);
int hsm_p11_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err);
int hsm_p11_init(const hsm_config_t *cfg, const char *label, kms_error_t *err);

/* AES-256-GCM in software (OpenSSL). enc: out gets len + 16 bytes
 * (ciphertext || tag). dec: in is ciphertext || tag, out gets len - 16.
 * Decryption failure (tag) returns KMS_ERR_CRYPTO. */
int hsm_gcm_encrypt(const uint8_t key[32], const uint8_t iv[HSM_GCM_IV_LEN], const uint8_t *aad,
                    size_t aadlen, const uint8_t *in, size_t len, uint8_t *out);
int hsm_gcm_decrypt(const uint8_t key[32], const uint8_t iv[HSM_GCM_IV_LEN], const uint8_t *aad,
                    size_t aadlen, const uint8_t *in, size_t len, uint8_t *out);

/* The AAD of a GCM-wrapped DSK: HSM_WRAP_AAD || hdr[2]; aad_out >= 18 bytes. */
size_t hsm_wrap_aad(uint8_t alg, uint8_t *aad_out);

/* ------------------------------------------------ PKCS#11 module registry */
/*
 * One entry per module path per process: dlopen'ed and C_Initialize'd once
 * (CKF_OS_LOCKING_OK), shared by every provider using that module, finalized
 * and closed when the last one goes. Every Cryptoki call runs between
 * hsm_p11_mod_enter/leave (a read lock) so that a reinitialisation
 * (C_Finalize + C_Initialize, write lock) never races a call in flight.
 */
#include <pthread.h>

#include "hsm/pkcs11_min.h"

typedef struct hsm_p11_mod {
    char *path;
    void *dl;
    CK_FUNCTION_LIST *fl;
    int refs;                /* under the registry lock */
    int owns_init;           /* we called C_Initialize (not someone else in the process) */
    pthread_rwlock_t calls;  /* read: a call in flight; write: reinit */
    unsigned gen;            /* bumped by every reinit (atomic builtins) */
    struct hsm_p11_mod *next;
} hsm_p11_mod_t;

int hsm_p11_mod_get(const char *path, hsm_p11_mod_t **out, kms_error_t *err);
void hsm_p11_mod_put(hsm_p11_mod_t *m); /* NULL ok */
void hsm_p11_mod_enter(hsm_p11_mod_t *m);
void hsm_p11_mod_leave(hsm_p11_mod_t *m);
/* C_Finalize + C_Initialize unless another provider already did so since
 * generation `seen_gen`. Caller must not be inside enter/leave. */
CK_RV hsm_p11_mod_reinit(hsm_p11_mod_t *m, unsigned seen_gen);
/* "CKR_PIN_INCORRECT" or "CKR_0x1234" (static or thread-local buffer). */
const char *hsm_p11_rv_name(CK_RV rv);

#endif /* KMS_HSM_INT_H */
