/*
 * crypto/rng.c: RNG Retrieve and RNG Seed (KMIP 1.3 sections 4.35, 4.36)
 * on OpenSSL's DRBGs.
 *
 * Retrieve reads the public DRBG (RAND_bytes: CTR-DRBG with AES-256,
 * seeded from the operating system). Seed hands the client's bytes to
 * RAND_add, which OpenSSL 3 passes to a reseed of the primary DRBG as
 * additional input next to fresh entropy from the operating system: the
 * client's data is mixed in but credited with no entropy, so a client can
 * neither predict nor weaken what other clients get. That is all the
 * specification asks ("the server MAY use the seed"); the count of bytes
 * used is answered.
 */
#include <limits.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "crypto/crypto_int.h"

int crypto_rng_bytes(uint8_t *out, size_t len, kms_error_t *err)
{
    kms_error_clear(err);
    if (len > INT_MAX)
        return crypto_invalid(err, "too many random bytes asked for");
    if (RAND_bytes(out, (int)len) != 1) {
        ERR_clear_error();
        return crypto_failed(err, "the DRBG failed");
    }
    return 0;
}

int crypto_rng_seed(const uint8_t *data, size_t len, size_t *accepted_out, kms_error_t *err)
{
    kms_error_clear(err);
    *accepted_out = 0;
    if (len > CRYPTO_RNG_SEED_MAX)
        len = CRYPTO_RNG_SEED_MAX;
    if (len == 0)
        return 0;
    RAND_add(data, (int)len, 0.0);
    ERR_clear_error();
    *accepted_out = len;
    return 0;
}
