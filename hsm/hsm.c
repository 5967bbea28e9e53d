/*
 * hsm/hsm.c: the provider-neutral front of hsm.h. Picks the provider from
 * the config, checks arguments, and forwards wrap/unwrap/health/describe.
 * It holds no key material and does no cryptography itself.
 */
#include "hsm/hsm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t hsm_wrap_aad(uint8_t alg, uint8_t *aad_out)
{
    size_t n = sizeof(HSM_WRAP_AAD) - 1;
    memcpy(aad_out, HSM_WRAP_AAD, n);
    aad_out[n] = HSM_WRAP_FORMAT;
    aad_out[n + 1] = alg;
    return n + 2;
}

int hsm_open(const hsm_config_t *cfg, hsm_t **out, kms_error_t *err)
{
    kms_error_clear(err);
    if (!cfg || !out)
        return kms_error_set(err, KMS_ERR_INVAL, "hsm: no configuration");
    *out = NULL;
    switch (cfg->provider) {
    case HSM_PROVIDER_FILE:
        return hsm_file_open(cfg, out, err);
    case HSM_PROVIDER_PKCS11:
        return hsm_p11_open(cfg, out, err);
    }
    return kms_error_set(err, KMS_ERR_CONFIG, "hsm: unknown provider %d", (int)cfg->provider);
}

void hsm_close(hsm_t *h)
{
    if (h)
        h->ops->close(h);
}

int hsm_init_master(const hsm_config_t *cfg, const char *new_label, kms_error_t *err)
{
    kms_error_clear(err);
    if (!cfg)
        return kms_error_set(err, KMS_ERR_INVAL, "hsm: no configuration");
    switch (cfg->provider) {
    case HSM_PROVIDER_FILE: {
        /* For the file provider the "label" of a new master key is its path. */
        const char *path = new_label ? new_label : cfg->key_file;
        return hsm_file_init(path, err);
    }
    case HSM_PROVIDER_PKCS11:
        return hsm_p11_init(cfg, new_label ? new_label : cfg->key_label, err);
    }
    return kms_error_set(err, KMS_ERR_CONFIG, "hsm: unknown provider %d", (int)cfg->provider);
}

int hsm_wrap(hsm_t *h, const kms_secret_t *dsk, kms_buf_t *wrapped_out)
{
    if (!h || !dsk || !dsk->data || !wrapped_out)
        return KMS_ERR_INVAL;
    if (dsk->len == 0 || dsk->len > 64 || dsk->len % 8)
        return KMS_ERR_INVAL; /* only AES keys are wrapped here */
    return h->ops->wrap(h, dsk, wrapped_out);
}

int hsm_unwrap(hsm_t *h, const uint8_t *wrapped, size_t len, kms_secret_t **dsk_out)
{
    if (!h || !wrapped || !dsk_out)
        return KMS_ERR_INVAL;
    *dsk_out = NULL;
    if (len < 2 || len > HSM_WRAPPED_MAX || wrapped[0] != HSM_WRAP_FORMAT)
        return KMS_ERR_CRYPTO;
    return h->ops->unwrap(h, wrapped, len, dsk_out);
}

int hsm_health(hsm_t *h)
{
    if (!h)
        return KMS_ERR_INVAL;
    return h->ops->health(h);
}

const char *hsm_describe(hsm_t *h)
{
    return h ? h->desc : "none";
}
