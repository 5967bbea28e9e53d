/*
 * crypto/sym.c: symmetric key parameters and generation.
 *
 * A key store does not need a cipher to hold a key: for every symmetric
 * Cryptographic Algorithm KMIP names, this file knows the key lengths the
 * algorithm itself defines (AES 128/192/256 and the 512-bit AES-256-XTS
 * double key, Triple DES with or without parity bits, Blowfish 32..448,
 * SKIPJACK 80, ...), so Create can make a random key of the right size
 * whether or not OpenSSL computes with it. Randomness comes from OpenSSL's
 * private DRBG only. It does not decide policy (which sizes an operator
 * allows: kmip/ does that); it knows what the algorithms allow.
 */
#include <stdint.h>
#include <stdio.h>

#include <openssl/rand.h>

#include "crypto/crypto_int.h"

/* Lengths in bits: either a list of fixed sizes, or lo..hi in steps. */
static const struct sym_alg {
    uint32_t alg;
    int32_t fixed[5]; /* 0-terminated; empty: use the range */
    int32_t lo, hi, step;
} sym_algs[] = {
    /* FIPS 197; 512 is the two AES-256 keys of XTS (IEEE 1619). */
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, {128, 192, 256, 512}, 0, 0, 0},
    /* Lengths count effective key bits (168/112) or the material with its
     * parity bits (192/128); both name the same key. */
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES, {112, 128, 168, 192}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_DES, {56, 64}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_BLOWFISH, {0}, 32, 448, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_CAMELLIA, {128, 192, 256}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_CAST5, {0}, 40, 128, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_IDEA, {128}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_MARS, {0}, 128, 448, 32},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_RC2, {0}, 8, 1024, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_RC4, {0}, 40, 2048, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_RC5, {0}, 8, 2040, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_SKIPJACK, {80}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_TWOFISH, {128, 192, 256}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_CHACHA20, {256}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_POLY1305, {256}, 0, 0, 0},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_CHACHA20_POLY1305, {256}, 0, 0, 0},
    /* HMAC keys: any whole number of bytes (RFC 2104), up to 4096 bits. */
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_MD5, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_224, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_256, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_384, {0}, 8, 4096, 8},
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_512, {0}, 8, 4096, 8},
    /* A one-time pad is as long as what it protects. */
    {KMIP_CRYPTOGRAPHIC_ALGORITHM_ONE_TIME_PAD, {0}, 8, 65536, 8},
};

static const struct sym_alg *sym_alg(uint32_t alg)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(sym_algs); i++)
        if (sym_algs[i].alg == alg)
            return &sym_algs[i];
    return NULL;
}

bool crypto_sym_known(uint32_t alg)
{
    return sym_alg(alg) != NULL;
}

bool crypto_alg_is_hmac(uint32_t alg)
{
    const struct sym_alg *s = sym_alg(alg);
    return s && s->hi == 4096;
}

int crypto_sym_check(uint32_t alg, int32_t bits, size_t *bytes_out, kms_error_t *err)
{
    const struct sym_alg *s = sym_alg(alg);
    bool ok = false;

    if (!s)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "Cryptographic Algorithm %s is not a symmetric key algorithm",
                                    crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg));
    if (s->fixed[0]) {
        for (size_t i = 0; i < KMS_ARRAY_SIZE(s->fixed) && s->fixed[i]; i++)
            ok |= s->fixed[i] == bits;
        if (!ok) {
            char list[64];
            size_t off = 0;
            for (size_t i = 0; i < KMS_ARRAY_SIZE(s->fixed) && s->fixed[i]; i++)
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d", i ? ", " : "",
                                        (int)s->fixed[i]);
            return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                        "%s Cryptographic Length must be one of %s (got %d)",
                                        crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg),
                                        list, (int)bits);
        }
    } else if (bits < s->lo || bits > s->hi || bits % s->step != 0) {
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "%s Cryptographic Length must be a multiple of %d between %d "
                                    "and %d (got %d)",
                                    crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg),
                                    (int)s->step, (int)s->lo, (int)s->hi, (int)bits);
    }
    if (bytes_out) {
        if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES)
            *bytes_out = bits == 112 || bits == 128 ? 16 : 24;
        else if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DES)
            *bytes_out = 8;
        else
            *bytes_out = (size_t)bits / 8;
    }
    return 0;
}

int32_t crypto_sym_bits(uint32_t alg, size_t len)
{
    if (len > INT32_MAX / 8)
        return -1;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES)
        return len == 24 ? 168 : len == 16 ? 112 : (int32_t)(len * 7);
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DES && len == 8)
        return 56;
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
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DES)
        des_set_odd_parity(k->data, bytes);
    *key_out = k;
    return 0;
}
