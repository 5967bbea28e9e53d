/*
 * crypto/split.c: the Split Key Methods of KMIP 1.2+ (Create Split Key,
 * Join Split Key).
 *
 *   XOR                 every part is needed: N-1 random parts, the last
 *                       is the key XOR all of them.
 *   Polynomial Sharing  Shamir's scheme: a random polynomial of degree
 *     GF(2^8)           threshold-1 whose constant term is the secret,
 *     GF(2^16)          evaluated at x = Key Part Identifier (1..N), byte
 *     Prime Field       by byte over GF(2^8) (the AES field, x^8 + x^4 +
 *                       x^3 + x + 1), 16-bit word by word over GF(2^16)
 *                       (x^16 + x^12 + x^3 + x + 1) or as one integer
 *                       modulo the Prime Field Size.
 * Joining interpolates at x = 0 from any `threshold` parts. The field
 * arithmetic on secret values is branch- and table-free (no cache-timing
 * leak); only the public x coordinates are inverted with a loop that
 * depends on them. Random coefficients come from RAND_priv_bytes. It does
 * not decide who may split what, or store parts: kmip/op_split.c does.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "crypto/crypto_int.h"

#define GF8_POLY 0x11Bu
#define GF16_POLY 0x1100Bu
#define PRIME_MAX_BITS 4096

/* a * b in GF(2^w), w = 8 or 16, without data-dependent branches. */
static uint32_t gf_mul(uint32_t a, uint32_t b, unsigned w, uint32_t poly)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < w; i++) {
        r ^= a & (0u - (b & 1u));
        b >>= 1;
        uint32_t hi = 0u - ((a >> (w - 1)) & 1u);
        a = ((a << 1) ^ (poly & hi)) & ((1u << w) - 1u);
    }
    return r;
}

/* a^-1 in GF(2^w) (a != 0), as a^(2^w - 2). Public values only. */
static uint32_t gf_inv(uint32_t a, unsigned w, uint32_t poly)
{
    uint32_t r = 1, e = (1u << w) - 2u;
    while (e) {
        if (e & 1u)
            r = gf_mul(r, a, w, poly);
        a = gf_mul(a, a, w, poly);
        e >>= 1;
    }
    return r;
}

static int bad(kms_error_t *err, const char *msg)
{
    return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD, "%s", msg);
}

void crypto_shares_free(kms_secret_t **shares, size_t n)
{
    if (!shares)
        return;
    for (size_t i = 0; i < n; i++)
        kms_secret_free(shares[i]);
    OPENSSL_free(shares);
}

/* The prime of the Prime Field method: an odd prime of at most
 * PRIME_MAX_BITS bits from a positive big-endian Big Integer. */
static int prime_load(const uint8_t *p, size_t n, BIGNUM **out, kms_error_t *err)
{
    BIGNUM *bn = NULL;
    BN_CTX *bctx = NULL;
    int rc;

    *out = NULL;
    if (!p || n == 0)
        return bad(err, "Polynomial Sharing Prime Field needs a Prime Field Size");
    if ((p[0] & 0x80) || n > PRIME_MAX_BITS / 8 + 8)
        return bad(err, "Prime Field Size must be a positive prime of at most 4096 bits");
    if (!(bn = BN_bin2bn(p, (int)n, NULL)) || !(bctx = BN_CTX_new())) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if (BN_num_bits(bn) > PRIME_MAX_BITS || BN_num_bits(bn) < 9 ||
        BN_check_prime(bn, bctx, NULL) != 1) {
        rc = bad(err, "Prime Field Size is not a prime of 9 to 4096 bits");
        goto out;
    }
    *out = bn;
    bn = NULL;
    rc = 0;
out:
    BN_free(bn);
    BN_CTX_free(bctx);
    return rc;
}

int crypto_split_check(uint32_t method, uint32_t parts, uint32_t threshold, size_t key_len,
                       kms_error_t *err)
{
    if (parts < 2 || parts > CRYPTO_SPLIT_MAX_PARTS)
        return bad(err, "Split Key Parts must be 2 to 255");
    if (threshold < 2 || threshold > parts)
        return bad(err, "Split Key Threshold must be 2 to Split Key Parts");
    switch (method) {
    case KMIP_SPLIT_KEY_METHOD_XOR:
        if (threshold != parts)
            return bad(err, "the XOR method needs every part: Split Key Threshold must equal "
                            "Split Key Parts");
        return 0;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16:
        if (key_len % 2)
            return bad(err, "Polynomial Sharing GF (2^16) splits keys of an even byte length");
        return 0;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8:
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD:
        return 0;
    default:
        return bad(err, "unknown Split Key Method");
    }
}

/* Shamir over GF(2^w) of every w-bit word of key. */
static int split_gf(const uint8_t *key, size_t len, uint32_t parts, uint32_t threshold, unsigned w,
                    uint32_t poly, kms_secret_t **shares)
{
    size_t words = len / (w / 8);
    kms_secret_t *coef = kms_secret_new(((size_t)threshold - 1) * 2);
    if (!coef)
        return KMS_ERR_NOMEM;
    for (size_t k = 0; k < words; k++) {
        uint32_t s = w == 8 ? key[k] : ((uint32_t)key[2 * k] << 8) | key[2 * k + 1];
        if (RAND_priv_bytes(coef->data, (int)coef->len) != 1) {
            kms_secret_free(coef);
            return KMS_ERR_CRYPTO;
        }
        for (uint32_t i = 0; i < parts; i++) {
            uint32_t x = i + 1, y = 0;
            /* Horner: ((a_{t-1} x + a_{t-2}) x + ...) x + s */
            for (uint32_t j = threshold - 1; j >= 1; j--) {
                uint32_t a = w == 8 ? coef->data[j - 1]
                                    : ((uint32_t)coef->data[2 * (j - 1)] << 8) |
                                          coef->data[2 * (j - 1) + 1];
                y = gf_mul(y ^ a, x, w, poly);
            }
            y ^= s;
            if (w == 8) {
                shares[i]->data[k] = (uint8_t)y;
            } else {
                shares[i]->data[2 * k] = (uint8_t)(y >> 8);
                shares[i]->data[2 * k + 1] = (uint8_t)y;
            }
        }
    }
    kms_secret_free(coef);
    return 0;
}

static int split_prime(const uint8_t *key, size_t len, uint32_t parts, uint32_t threshold,
                       const BIGNUM *p, kms_secret_t **shares, kms_error_t *err)
{
    BN_CTX *bctx = BN_CTX_secure_new();
    BIGNUM *s = BN_secure_new(), *y = BN_secure_new(), *x = BN_new();
    BIGNUM **a = OPENSSL_zalloc(sizeof(BIGNUM *) * threshold);
    int plen = BN_num_bytes(p), rc = KMS_ERR_CRYPTO;

    if (!bctx || !s || !y || !x || !a) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    if (!BN_bin2bn(key, (int)len, s))
        goto out;
    if (BN_cmp(s, p) >= 0) {
        rc = bad(err, "the key is not smaller than the Prime Field Size");
        goto out;
    }
    for (uint32_t j = 1; j < threshold; j++)
        if (!(a[j] = BN_secure_new()) || !BN_priv_rand_range(a[j], p))
            goto out;
    for (uint32_t i = 0; i < parts; i++) {
        if (!BN_set_word(x, i + 1))
            goto out;
        BN_zero(y);
        for (uint32_t j = threshold - 1; j >= 1; j--)
            if (!BN_mod_add(y, y, a[j], p, bctx) || !BN_mod_mul(y, y, x, p, bctx))
                goto out;
        if (!BN_mod_add(y, y, s, p, bctx) || BN_bn2binpad(y, shares[i]->data, plen) != plen)
            goto out;
    }
    rc = 0;
out:
    for (uint32_t j = 0; a && j < threshold; j++)
        BN_clear_free(a[j]);
    OPENSSL_free(a);
    BN_clear_free(s);
    BN_clear_free(y);
    BN_free(x);
    BN_CTX_free(bctx);
    return rc;
}

int crypto_split(uint32_t method, const uint8_t *key, size_t len, uint32_t parts,
                 uint32_t threshold, const uint8_t *prime, size_t prime_len,
                 kms_secret_t ***shares_out, kms_error_t *err)
{
    kms_secret_t **shares = NULL;
    BIGNUM *p = NULL;
    size_t share_len = len;
    int rc;

    *shares_out = NULL;
    if (len == 0)
        return bad(err, "nothing to split");
    if ((rc = crypto_split_check(method, parts, threshold, len, err)) < 0)
        return rc;
    if (method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD) {
        if ((rc = prime_load(prime, prime_len, &p, err)) < 0)
            return rc;
        share_len = (size_t)BN_num_bytes(p);
    }
    if (!(shares = OPENSSL_zalloc(sizeof(*shares) * parts))) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < parts; i++)
        if (!(shares[i] = kms_secret_new(share_len))) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
    switch (method) {
    case KMIP_SPLIT_KEY_METHOD_XOR:
        memcpy(shares[parts - 1]->data, key, len);
        for (uint32_t i = 0; i + 1 < parts; i++) {
            if (RAND_priv_bytes(shares[i]->data, (int)len) != 1) {
                rc = KMS_ERR_CRYPTO;
                goto out;
            }
            for (size_t k = 0; k < len; k++)
                shares[parts - 1]->data[k] ^= shares[i]->data[k];
        }
        rc = 0;
        break;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8:
        rc = split_gf(key, len, parts, threshold, 8, GF8_POLY, shares);
        break;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16:
        rc = split_gf(key, len, parts, threshold, 16, GF16_POLY, shares);
        break;
    default:
        rc = split_prime(key, len, parts, threshold, p, shares, err);
        break;
    }
out:
    BN_free(p);
    if (rc < 0) {
        crypto_shares_free(shares, parts);
        return crypto_error_ensure(err, rc);
    }
    *shares_out = shares;
    return 0;
}

/* The Lagrange basis at 0 for point j of xs[0..t): prod x_m / (x_m - x_j)
 * in GF(2^w) (where minus is XOR). */
static uint32_t gf_basis(const crypto_share_t *sh, size_t t, size_t j, unsigned w, uint32_t poly)
{
    uint32_t num = 1, den = 1;
    for (size_t m = 0; m < t; m++) {
        if (m == j)
            continue;
        num = gf_mul(num, sh[m].id, w, poly);
        den = gf_mul(den, sh[m].id ^ sh[j].id, w, poly);
    }
    return gf_mul(num, gf_inv(den, w, poly), w, poly);
}

static int join_gf(const crypto_share_t *sh, size_t t, size_t len, unsigned w, uint32_t poly,
                   uint8_t *out)
{
    size_t words = len / (w / 8);
    uint32_t basis[CRYPTO_SPLIT_MAX_PARTS];
    for (size_t j = 0; j < t; j++)
        basis[j] = gf_basis(sh, t, j, w, poly);
    for (size_t k = 0; k < words; k++) {
        uint32_t s = 0;
        for (size_t j = 0; j < t; j++) {
            uint32_t y = w == 8 ? sh[j].p[k]
                                : ((uint32_t)sh[j].p[2 * k] << 8) | sh[j].p[2 * k + 1];
            s ^= gf_mul(y, basis[j], w, poly);
        }
        if (w == 8) {
            out[k] = (uint8_t)s;
        } else {
            out[2 * k] = (uint8_t)(s >> 8);
            out[2 * k + 1] = (uint8_t)s;
        }
    }
    return 0;
}

static int join_prime(const crypto_share_t *sh, size_t t, const BIGNUM *p, size_t key_len,
                      uint8_t *out, kms_error_t *err)
{
    /* s: the secret, y: a share's term (both secret); the rest public. */
    enum { S, Y, NUM, DEN, XM, XJ, D, N_BN };
    BIGNUM *bn[N_BN] = {0};
    BN_CTX *bctx = BN_CTX_secure_new();
    int rc = bctx ? KMS_ERR_CRYPTO : KMS_ERR_NOMEM;

    for (int i = 0; i < N_BN && bctx; i++)
        if (!(bn[i] = i <= Y ? BN_secure_new() : BN_new()))
            rc = KMS_ERR_NOMEM;
    if (rc == KMS_ERR_NOMEM)
        goto out;
    BN_zero(bn[S]);
    for (size_t j = 0; j < t; j++) {
        if (!BN_one(bn[NUM]) || !BN_one(bn[DEN]) || !BN_set_word(bn[XJ], sh[j].id))
            goto out;
        for (size_t m = 0; m < t; m++) {
            if (m == j)
                continue;
            if (!BN_set_word(bn[XM], sh[m].id) || !BN_mod_mul(bn[NUM], bn[NUM], bn[XM], p, bctx) ||
                !BN_mod_sub(bn[D], bn[XM], bn[XJ], p, bctx) ||
                !BN_mod_mul(bn[DEN], bn[DEN], bn[D], p, bctx))
                goto out;
        }
        if (!BN_mod_inverse(bn[DEN], bn[DEN], p, bctx) ||
            !BN_mod_mul(bn[NUM], bn[NUM], bn[DEN], p, bctx) ||
            !BN_bin2bn(sh[j].p, (int)sh[j].len, bn[Y]) ||
            !BN_mod_mul(bn[Y], bn[Y], bn[NUM], p, bctx) || !BN_mod_add(bn[S], bn[S], bn[Y], p, bctx))
            goto out;
    }
    if (BN_num_bytes(bn[S]) > (int)key_len) {
        rc = kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                  "the parts do not join into a key of %zu bytes", key_len);
        goto out;
    }
    if (BN_bn2binpad(bn[S], out, (int)key_len) == (int)key_len)
        rc = 0;
out:
    for (int i = 0; i < N_BN; i++)
        BN_clear_free(bn[i]);
    BN_CTX_free(bctx);
    return rc;
}

int crypto_join(uint32_t method, const crypto_share_t *shares, size_t n, uint32_t threshold,
                const uint8_t *prime, size_t prime_len, size_t key_len, kms_secret_t **key_out,
                kms_error_t *err)
{
    kms_secret_t *key = NULL;
    BIGNUM *p = NULL;
    size_t t = method == KMIP_SPLIT_KEY_METHOD_XOR ? n : threshold;
    int rc = 0;

    *key_out = NULL;
    if (threshold < 2 || threshold > CRYPTO_SPLIT_MAX_PARTS || n < threshold)
        return bad(err, "fewer parts than the Split Key Threshold");
    for (size_t i = 0; i < n; i++) {
        if (shares[i].id < 1 || shares[i].id > CRYPTO_SPLIT_MAX_PARTS || shares[i].len == 0 ||
            shares[i].len != shares[0].len)
            return bad(err, "the parts differ in length or have a Key Part Identifier out of "
                            "range");
        for (size_t j = 0; j < i; j++)
            if (shares[j].id == shares[i].id)
                return bad(err, "a Key Part Identifier appears twice");
    }
    if (method != KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD)
        key_len = shares[0].len;
    if (key_len == 0 ||
        (method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16 && key_len % 2))
        return bad(err, "the parts cannot hold a key of this length");
    if (!(key = kms_secret_new(key_len)))
        return KMS_ERR_NOMEM;
    switch (method) {
    case KMIP_SPLIT_KEY_METHOD_XOR:
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < key_len; k++)
                key->data[k] ^= shares[i].p[k];
        break;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8:
        rc = join_gf(shares, t, key_len, 8, GF8_POLY, key->data);
        break;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16:
        rc = join_gf(shares, t, key_len, 16, GF16_POLY, key->data);
        break;
    case KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD:
        if ((rc = prime_load(prime, prime_len, &p, err)) == 0)
            rc = join_prime(shares, t, p, key_len, key->data, err);
        break;
    default:
        rc = bad(err, "unknown Split Key Method");
        break;
    }
    BN_free(p);
    if (rc < 0) {
        kms_secret_free(key);
        return crypto_error_ensure(err, rc);
    }
    *key_out = key;
    return 0;
}
