/*
 * crypto/params.c: the Cryptographic Parameters structure read into
 * crypto_params_t, and the KMIP enumerations of the cryptographic services
 * mapped to OpenSSL algorithms, fetched once per process.
 *
 * OpenSSL 3 fetches an implementation again on every EVP_sha256() /
 * EVP_aes_256_gcm() use; the services run per request, so the digests and
 * ciphers they use are fetched at the first use and kept for the life of
 * the process. It decides nothing about which key may do what (kmip/).
 */
#include <pthread.h>
#include <string.h>

#include <openssl/err.h>

#include "crypto/crypto_int.h"

/* ------------------------------------------------------------ parameters */
static int get_enum(const ttlv_item_t *cp, uint32_t tag, uint32_t *out, kms_error_t *err)
{
    const ttlv_item_t *it = ttlv_find(cp, tag);
    if (!it)
        return 0;
    if (it->type != TTLV_ENUMERATION)
        return crypto_invalid(err, "%s is not an Enumeration", ttlv_tag_name(tag));
    *out = ttlv_u32(it);
    return 0;
}

static int get_int(const ttlv_item_t *cp, uint32_t tag, int32_t *out, bool *has_out,
                   kms_error_t *err)
{
    const ttlv_item_t *it = ttlv_find(cp, tag);
    if (!it)
        return 0;
    if (it->type != TTLV_INTEGER || it->v.i32 < 0)
        return crypto_invalid(err, "%s is not a non-negative Integer", ttlv_tag_name(tag));
    *out = it->v.i32;
    if (has_out)
        *has_out = true;
    return 0;
}

int crypto_params_parse(const ttlv_item_t *cp, crypto_params_t *out, kms_error_t *err)
{
    kms_error_clear(err);
    memset(out, 0, sizeof(*out));
    if (!cp)
        return 0;
    if (cp->type != TTLV_STRUCTURE)
        return crypto_invalid(err, "Cryptographic Parameters is not a Structure");
    int rc;
    if ((rc = get_enum(cp, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, &out->alg, err)) ||
        (rc = get_enum(cp, KMIP_TAG_BLOCK_CIPHER_MODE, &out->mode, err)) ||
        (rc = get_enum(cp, KMIP_TAG_PADDING_METHOD, &out->padding, err)) ||
        (rc = get_enum(cp, KMIP_TAG_HASHING_ALGORITHM, &out->hash, err)) ||
        (rc = get_enum(cp, KMIP_TAG_DIGITAL_SIGNATURE_ALGORITHM, &out->sig_alg, err)) ||
        (rc = get_enum(cp, KMIP_TAG_MASK_GENERATOR, &out->mgf, err)) ||
        (rc = get_enum(cp, KMIP_TAG_MASK_GENERATOR_HASHING_ALGORITHM, &out->mgf_hash, err)) ||
        (rc = get_int(cp, KMIP_TAG_IV_LENGTH, &out->iv_len_bits, NULL, err)) ||
        (rc = get_int(cp, KMIP_TAG_TAG_LENGTH, &out->tag_len, NULL, err)) ||
        (rc = get_int(cp, KMIP_TAG_SALT_LENGTH, &out->salt_len, &out->has_salt_len, err)) ||
        (rc = get_int(cp, KMIP_TAG_COUNTER_LENGTH, &out->counter_len, NULL, err)) ||
        (rc = get_int(cp, KMIP_TAG_INITIAL_COUNTER_VALUE, &out->initial_counter,
                      &out->has_initial_counter, err)))
        return rc;
    const ttlv_item_t *riv = ttlv_find(cp, KMIP_TAG_RANDOM_IV);
    if (riv) {
        if (riv->type != TTLV_BOOLEAN)
            return crypto_invalid(err, "Random IV is not a Boolean");
        out->has_random_iv = true;
        out->random_iv = riv->v.b;
    }
    const ttlv_item_t *ps = ttlv_find(cp, KMIP_TAG_P_SOURCE);
    if (ps) {
        if (ps->type != TTLV_BYTE_STRING)
            return crypto_invalid(err, "P Source is not a Byte String");
        out->p_source = ps->v.bytes.ptr;
        out->p_source_len = ps->v.bytes.len;
    }
    if (out->mgf && out->mgf != KMIP_MASK_GENERATOR_MGF1)
        return crypto_unsupported(err, "Mask Generator %s is not supported (MGF1 only)",
                                  crypto_enum_name(KMIP_TAG_MASK_GENERATOR, out->mgf));
    return 0;
}

/* -------------------------------------------------------------- digests */
static const struct {
    uint32_t hash;
    const char *name;
    size_t size;
} md_table[] = {
    {KMIP_HASHING_ALGORITHM_MD5, "MD5", 16},
    {KMIP_HASHING_ALGORITHM_SHA_1, "SHA1", 20},
    {KMIP_HASHING_ALGORITHM_SHA_224, "SHA2-224", 28},
    {KMIP_HASHING_ALGORITHM_SHA_256, "SHA2-256", 32},
    {KMIP_HASHING_ALGORITHM_SHA_384, "SHA2-384", 48},
    {KMIP_HASHING_ALGORITHM_SHA_512, "SHA2-512", 64},
    {KMIP_HASHING_ALGORITHM_SHA_512_224, "SHA2-512/224", 28},
    {KMIP_HASHING_ALGORITHM_SHA_512_256, "SHA2-512/256", 32},
    {KMIP_HASHING_ALGORITHM_SHA3_224, "SHA3-224", 28},
    {KMIP_HASHING_ALGORITHM_SHA3_256, "SHA3-256", 32},
    {KMIP_HASHING_ALGORITHM_SHA3_384, "SHA3-384", 48},
    {KMIP_HASHING_ALGORITHM_SHA3_512, "SHA3-512", 64},
    {KMIP_HASHING_ALGORITHM_RIPEMD_160, "RIPEMD-160", 20},
};

static const char *const cipher_names[] = {
    "AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "AES-128-ECB", "AES-192-ECB", "AES-256-ECB",
    "AES-128-CFB", "AES-192-CFB", "AES-256-CFB", "AES-128-OFB", "AES-192-OFB", "AES-256-OFB",
    "AES-128-CTR", "AES-192-CTR", "AES-256-CTR", "AES-128-GCM", "AES-192-GCM", "AES-256-GCM",
    "AES-128-XTS", "AES-256-XTS", "AES-128-WRAP", "AES-192-WRAP", "AES-256-WRAP",
    "AES-128-WRAP-PAD", "AES-192-WRAP-PAD", "AES-256-WRAP-PAD", "DES-EDE3-CBC", "DES-EDE3-ECB",
    "DES-EDE-CBC", "DES-EDE-ECB",
};

static EVP_MD *g_md[KMS_ARRAY_SIZE(md_table)];
static EVP_CIPHER *g_cipher[KMS_ARRAY_SIZE(cipher_names)];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fetch_all(void)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(md_table); i++)
        g_md[i] = EVP_MD_fetch(NULL, md_table[i].name, NULL);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cipher_names); i++)
        g_cipher[i] = EVP_CIPHER_fetch(NULL, cipher_names[i], NULL);
    ERR_clear_error(); /* a digest this OpenSSL lacks (RIPEMD-160) is just absent */
}

const EVP_MD *crypto_md_get(uint32_t hash)
{
    pthread_once(&g_once, fetch_all);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(md_table); i++)
        if (md_table[i].hash == hash)
            return g_md[i];
    return NULL;
}

const EVP_CIPHER *crypto_cipher_get(const char *name)
{
    pthread_once(&g_once, fetch_all);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cipher_names); i++)
        if (strcmp(cipher_names[i], name) == 0)
            return g_cipher[i];
    return NULL;
}

size_t crypto_hash_size(uint32_t hash)
{
    const EVP_MD *md = crypto_md_get(hash);
    return md ? (size_t)EVP_MD_get_size(md) : 0;
}

uint32_t crypto_hmac_hash(uint32_t alg)
{
    switch (alg) {
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1: return KMIP_HASHING_ALGORITHM_SHA_1;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA224: return KMIP_HASHING_ALGORITHM_SHA_224;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256: return KMIP_HASHING_ALGORITHM_SHA_256;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA384: return KMIP_HASHING_ALGORITHM_SHA_384;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA512: return KMIP_HASHING_ALGORITHM_SHA_512;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_MD5: return KMIP_HASHING_ALGORITHM_MD5;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_224: return KMIP_HASHING_ALGORITHM_SHA3_224;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_256: return KMIP_HASHING_ALGORITHM_SHA3_256;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_384: return KMIP_HASHING_ALGORITHM_SHA3_384;
    case KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA3_512: return KMIP_HASHING_ALGORITHM_SHA3_512;
    default: return 0;
    }
}

uint8_t *crypto_buf_room(kms_buf_t *b, size_t n, kms_error_t *err)
{
    int rc = kms_buf_reserve(b, n);
    if (rc) {
        kms_error_set_reason(err, rc,
                             rc == KMS_ERR_LIMIT ? KMIP_RESULT_REASON_RESPONSE_TOO_LARGE
                                                 : KMIP_RESULT_REASON_GENERAL_FAILURE,
                             "output too large");
        return NULL;
    }
    return b->data + b->len;
}
