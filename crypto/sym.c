/*
 * crypto/sym.c: symmetric key parameters and generation.
 *
 * Randomness comes from OpenSSL's private DRBG only. This file does not
 * decide policy (which lengths a tenant may use); it knows what the
 * algorithms themselves allow.
 */
#include <stdint.h>

#include <openssl/rand.h>

#include "crypto/crypto_int.h"

static int hmac_max_bits(uint32_t alg)
{
    switch (alg) {
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384:
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512:
        return 4096;
    default:
        return 0;
    }
}

int crypto_sym_check(uint32_t alg, int32_t bits, size_t *bytes_out, kms_error_t *err)
{
    size_t bytes = 0;

    switch (alg) {
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_AES:
        if (bits != 128 && bits != 192 && bits != 256)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "AES Cryptographic Length must be 128, 192 or 256 (got %d)",
                                        (int)bits);
        bytes = (size_t)bits / 8;
        break;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES:
        /* Lengths count effective key bits (168/112) or the material with
         * its parity bits (192/128); both name the same key. */
        if (bits == 168 || bits == 192)
            bytes = 24;
        else if (bits == 112 || bits == 128)
            bytes = 16;
        else
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "Triple DES Cryptographic Length must be 168 or 112 "
                                        "(192/128 with parity), got %d",
                                        (int)bits);
        break;
    default:
        if (hmac_max_bits(alg) == 0)
            return kms_error_set_reason(
                err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                "Cryptographic Algorithm %s not supported for symmetric keys",
                crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg));
        if (bits < 8 || bits > hmac_max_bits(alg) || bits % 8 != 0)
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "HMAC key Cryptographic Length must be a multiple of 8 "
                                        "between 8 and %d (got %d)",
                                        hmac_max_bits(alg), (int)bits);
        bytes = (size_t)bits / 8;
        break;
    }
    if (bytes_out)
        *bytes_out = bytes;
    return 0;
}

int32_t crypto_sym_bits(uint32_t alg, size_t len)
{
    if (len > INT32_MAX / 8)
        return -1;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES)
        return len == 24 ? 168 : len == 16 ? 112 : (int32_t)(len * 7);
    return (int32_t)(len * 8);
}

/* Odd parity in the low bit of every byte (FIPS 46-3). */
static void des_set_odd_parity(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i] & 0xFE;
        uint8_t x = b;
        x ^= x >> 4;
        x ^= x >> 2;
        x ^= x >> 1;
        p[i] = (uint8_t)(b | ((x & 1) ^ 1));
    }
}

int crypto_sym_generate(uint32_t alg, int32_t bits, kms_secret_t **key_out, kms_error_t *err)
{
    size_t bytes = 0;
    kms_secret_t *k = NULL;
    int rc;

    *key_out = NULL;
    rc = crypto_sym_check(alg, bits, &bytes, err);
    if (rc < 0)
        return rc;
    k = kms_secret_new(bytes);
    if (!k)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    if (RAND_priv_bytes(k->data, (int)bytes) != 1) {
        kms_secret_free(k);
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "random generator failure");
    }
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES)
        des_set_odd_parity(k->data, bytes);
    *key_out = k;
    return 0;
}
