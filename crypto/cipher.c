/*
 * crypto/cipher.c: Encrypt and Decrypt (KMIP 1.2 sections 4.29, 4.30).
 *
 * Symmetric: AES in CBC, ECB, CFB, OFB, CTR, GCM, XTS, NIST Key Wrap (RFC
 * 3394) and AES Key Wrap with Padding (RFC 5649); Triple DES (two- and
 * three-key) in CBC and ECB. Asymmetric: RSA with OAEP or PKCS#1 v1.5.
 * Everything runs through OpenSSL's EVP interfaces. The modes that are a
 * stream of blocks (CBC, ECB, CFB, OFB, CTR, GCM) take their input in
 * parts; XTS, the key wraps and RSA see it whole (op.c keeps it).
 *
 * CBC and ECB pad with PKCS5 (OpenSSL's own), or ANSI X9.23 / ISO 10126
 * (zeros / random bytes, then the count; done here around an unpadded
 * cipher, so these see their input whole).
 *
 * What is not here: CCM, PCBC, the X9.102 wraps, ECIES, the Zeros and SSL3
 * padding methods (Feature Not Supported); which key may be used (kmip/
 * checks state, usage mask and dates first).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "crypto/crypto_int.h"

typedef struct cipher_op {
    crypto_op_t base;
    EVP_CIPHER_CTX *ctx;     /* symmetric */
    EVP_PKEY_CTX *pctx;      /* RSA */
    bool enc;
    bool aead;               /* GCM: a tag at the end */
    bool no_padding;         /* CBC/ECB with Padding Method None */
    uint32_t own_padding;    /* ANSI X9.23 or ISO 10126, added / checked here */
    size_t block;
    size_t tag_len;
    uint32_t mode;
    size_t max_in;           /* RSA: largest plaintext (Encrypt) */
} cipher_op_t;

static void cipher_dispose(crypto_op_t *op)
{
    cipher_op_t *c = (cipher_op_t *)op;
    EVP_CIPHER_CTX_free(c->ctx);
    EVP_PKEY_CTX_free(c->pctx);
    free(c);
}

/* ------------------------------------------------------------ symmetric */
/* OpenSSL name of (algorithm, key size, mode); NULL with err set. */
static const char *sym_name(uint32_t alg, size_t klen, uint32_t mode, kms_error_t *err)
{
    static const struct {
        uint32_t mode;
        const char *n128, *n192, *n256;
    } aes[] = {
        {KMIP_BLOCK_CIPHER_MODE_CBC, "AES-128-CBC", "AES-192-CBC", "AES-256-CBC"},
        {KMIP_BLOCK_CIPHER_MODE_ECB, "AES-128-ECB", "AES-192-ECB", "AES-256-ECB"},
        {KMIP_BLOCK_CIPHER_MODE_CFB, "AES-128-CFB", "AES-192-CFB", "AES-256-CFB"},
        {KMIP_BLOCK_CIPHER_MODE_OFB, "AES-128-OFB", "AES-192-OFB", "AES-256-OFB"},
        {KMIP_BLOCK_CIPHER_MODE_CTR, "AES-128-CTR", "AES-192-CTR", "AES-256-CTR"},
        {KMIP_BLOCK_CIPHER_MODE_GCM, "AES-128-GCM", "AES-192-GCM", "AES-256-GCM"},
        {KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP, "AES-128-WRAP", "AES-192-WRAP", "AES-256-WRAP"},
        {KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING, "AES-128-WRAP-PAD", "AES-192-WRAP-PAD",
         "AES-256-WRAP-PAD"},
    };
    const char *mname = crypto_enum_name(KMIP_TAG_BLOCK_CIPHER_MODE, mode);
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_AES) {
        if (mode == KMIP_BLOCK_CIPHER_MODE_XTS) {
            /* XTS takes two AES keys: a 256-bit KMIP key is AES-128-XTS. */
            if (klen == 32)
                return "AES-128-XTS";
            if (klen == 64)
                return "AES-256-XTS";
            crypto_invalid(err, "XTS needs a 256- or 512-bit key (two AES keys)");
            return NULL;
        }
        for (size_t i = 0; i < KMS_ARRAY_SIZE(aes); i++)
            if (aes[i].mode == mode) {
                if (klen == 16)
                    return aes[i].n128;
                if (klen == 24)
                    return aes[i].n192;
                if (klen == 32)
                    return aes[i].n256;
                crypto_invalid(err, "an AES key of %zu bytes", klen);
                return NULL;
            }
    } else if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES) {
        if (klen != 16 && klen != 24) {
            crypto_invalid(err, "a Triple DES key of %zu bytes", klen);
            return NULL;
        }
        if (mode == KMIP_BLOCK_CIPHER_MODE_CBC)
            return klen == 24 ? "DES-EDE3-CBC" : "DES-EDE-CBC";
        if (mode == KMIP_BLOCK_CIPHER_MODE_ECB)
            return klen == 24 ? "DES-EDE3-ECB" : "DES-EDE-ECB";
    } else {
        crypto_invalid(err, "%s keys do not encrypt",
                       crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg));
        return NULL;
    }
    switch (mode) {
    case 0:
        crypto_invalid(err, "Block Cipher Mode missing (in the request and in the key's "
                            "Cryptographic Parameters)");
        break;
    case KMIP_BLOCK_CIPHER_MODE_CMAC:
    case KMIP_BLOCK_CIPHER_MODE_CBC_MAC:
        crypto_invalid(err, "%s is a MAC, not an encryption mode", mname);
        break;
    default:
        crypto_unsupported(err, "Block Cipher Mode %s is not supported with %s", mname,
                           crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg));
    }
    return NULL;
}

/* The IV length the mode wants (0 = none) and may generate. */
static int sym_iv_len(cipher_op_t *c, const crypto_params_t *p, const crypto_start_t *in,
                      size_t *want_out, kms_error_t *err)
{
    size_t want = 0;
    switch (c->mode) {
    case KMIP_BLOCK_CIPHER_MODE_ECB:
    case KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP:
    case KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING:
        if (in->iv)
            return crypto_invalid(err, "%s takes no IV/Counter/Nonce",
                                  crypto_enum_name(KMIP_TAG_BLOCK_CIPHER_MODE, c->mode));
        *want_out = 0;
        return 0;
    case KMIP_BLOCK_CIPHER_MODE_GCM:
        want = 12;
        break;
    case KMIP_BLOCK_CIPHER_MODE_XTS:
        want = 16;
        break;
    default:
        want = c->block;
    }
    if (p->iv_len_bits) {
        if (p->iv_len_bits % 8)
            return crypto_invalid(err, "IV Length %d is not a whole number of bytes", p->iv_len_bits);
        size_t b = (size_t)p->iv_len_bits / 8;
        if (c->mode == KMIP_BLOCK_CIPHER_MODE_GCM ? (b < 8 || b > 64) : b != want)
            return crypto_invalid(err, "IV Length %d does not fit the mode", p->iv_len_bits);
        want = b;
    }
    if (in->iv) {
        bool ok = c->mode == KMIP_BLOCK_CIPHER_MODE_GCM ? in->iv_len >= 1 && in->iv_len <= 64
                                                        : in->iv_len == want;
        if (!ok || (p->iv_len_bits && in->iv_len != want))
            return crypto_invalid(err, "IV/Counter/Nonce of %zu bytes does not fit the mode",
                                  in->iv_len);
        want = in->iv_len;
    }
    *want_out = want;
    return 0;
}

static int sym_start(cipher_op_t *c, const crypto_key_t *key, const crypto_params_t *p,
                     const crypto_start_t *in, uint8_t iv_out[64], size_t *iv_len_out,
                     kms_error_t *err)
{
    uint8_t iv[64];
    size_t iv_len = 0;
    int rc;
    c->mode = p->mode;
    const char *name = sym_name(key->alg, key->raw_len, p->mode, err);
    if (!name)
        return err ? err->code : KMS_ERR_INVAL;
    const EVP_CIPHER *ciph = crypto_cipher_get(name);
    if (!ciph)
        return crypto_unsupported(err, "%s is not available in this OpenSSL", name);
    c->block = (size_t)EVP_CIPHER_get_block_size(ciph);
    if (c->block < 8)
        c->block = key->alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_AES ? 16 : 8;
    c->aead = p->mode == KMIP_BLOCK_CIPHER_MODE_GCM;
    bool padded_mode = p->mode == KMIP_BLOCK_CIPHER_MODE_CBC || p->mode == KMIP_BLOCK_CIPHER_MODE_ECB;
    if (p->padding && p->padding != KMIP_PADDING_METHOD_NONE) {
        if (!padded_mode)
            return crypto_invalid(err, "Padding Method %s does not apply to %s",
                                  crypto_enum_name(KMIP_TAG_PADDING_METHOD, p->padding),
                                  crypto_enum_name(KMIP_TAG_BLOCK_CIPHER_MODE, p->mode));
        if (p->padding == KMIP_PADDING_METHOD_ANSI_X923 || p->padding == KMIP_PADDING_METHOD_ISO_10126)
            c->own_padding = p->padding;
        else if (p->padding != KMIP_PADDING_METHOD_PKCS5)
            return crypto_unsupported(err, "Padding Method %s is not supported (None, PKCS5, "
                                           "ANSI X9.23, ISO 10126)",
                                      crypto_enum_name(KMIP_TAG_PADDING_METHOD, p->padding));
    }
    c->no_padding = padded_mode && (p->padding == KMIP_PADDING_METHOD_NONE || c->own_padding);
    if (!c->aead && (in->aad || p->tag_len))
        return crypto_invalid(err, "Authenticated Encryption Additional Data and Tag Length "
                                   "apply to GCM only");
    if (c->aead) {
        c->tag_len = p->tag_len ? (size_t)p->tag_len : 16;
        if (!(c->tag_len == 4 || c->tag_len == 8 || (c->tag_len >= 12 && c->tag_len <= 16)))
            return crypto_invalid(err, "Tag Length %zu (GCM: 4, 8 or 12..16 bytes)", c->tag_len);
    }
    if ((rc = sym_iv_len(c, p, in, &iv_len, err)))
        return rc;
    if (in->iv && p->has_random_iv && p->random_iv)
        return crypto_invalid(err, "Random IV is true but an IV/Counter/Nonce was given");
    if (iv_len && in->iv) {
        memcpy(iv, in->iv, iv_len);
    } else if (iv_len) {
        if (!c->enc)
            return crypto_invalid(err, "IV/Counter/Nonce missing");
        if (RAND_bytes(iv, (int)iv_len) != 1)
            return crypto_failed(err, "the DRBG failed");
        memcpy(iv_out, iv, iv_len);
        *iv_len_out = iv_len;
    }
    c->ctx = EVP_CIPHER_CTX_new();
    if (!c->ctx)
        return KMS_ERR_NOMEM;
    if (p->mode == KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP ||
        p->mode == KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING)
        EVP_CIPHER_CTX_set_flags(c->ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex2(c->ctx, ciph, NULL, NULL, c->enc, NULL) != 1)
        return crypto_failed(err, "cipher set-up failed");
    if (c->aead && iv_len != 12) {
        OSSL_PARAM ps[] = {OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &iv_len),
                           OSSL_PARAM_construct_end()};
        if (EVP_CIPHER_CTX_set_params(c->ctx, ps) != 1)
            return crypto_invalid(err, "GCM nonce of %zu bytes refused", iv_len);
    }
    if (EVP_CipherInit_ex2(c->ctx, NULL, key->raw, iv_len ? iv : NULL, c->enc, NULL) != 1)
        return crypto_failed(err, "key set-up failed (e.g. XTS with two equal halves)");
    if (c->no_padding)
        EVP_CIPHER_CTX_set_padding(c->ctx, 0);
    if (c->own_padding)
        c->base.streamable = false; /* the last block is padded / checked here */
    if (in->aad && in->aad_len) {
        int n = 0;
        if (in->aad_len > INT32_MAX ||
            EVP_CipherUpdate(c->ctx, NULL, &n, in->aad, (int)in->aad_len) != 1)
            return crypto_failed(err, "additional data refused");
    }
    return 0;
}

static int sym_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                      kms_error_t *err)
{
    cipher_op_t *c = (cipher_op_t *)op;
    int n = 0;
    if (len > INT32_MAX - 64)
        return crypto_invalid(err, "input too large");
    uint8_t *dst = crypto_buf_room(out, len + c->block + 16, err);
    if (!dst)
        return err ? err->code : KMS_ERR_LIMIT;
    if (EVP_CipherUpdate(c->ctx, dst, &n, data, (int)len) != 1 || n < 0) {
        ERR_clear_error();
        if (c->mode == KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP ||
            c->mode == KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING) {
            if (c->enc)
                return crypto_invalid(err, "NIST Key Wrap input must be 16 bytes or more, in "
                                           "multiples of 8");
            return crypto_failed(err, "key unwrap failed: integrity check");
        }
        if (c->mode == KMIP_BLOCK_CIPHER_MODE_XTS)
            return crypto_invalid(err, "XTS input must be 16 bytes or more");
        return crypto_failed(err, "cipher failed");
    }
    out->len += (size_t)n;
    return 0;
}

/* ANSI X9.23 / ISO 10126 on Encrypt: the pad block's tail through the
 * cipher (zeros or random bytes, then the pad length). */
static int own_pad(cipher_op_t *c, size_t in_len, kms_buf_t *out, kms_error_t *err)
{
    uint8_t pad[32];
    size_t n = c->block - in_len % c->block;
    memset(pad, 0, sizeof(pad));
    if (c->own_padding == KMIP_PADDING_METHOD_ISO_10126 && n > 1 && RAND_bytes(pad, (int)n - 1) != 1)
        return crypto_failed(err, "the DRBG failed");
    pad[n - 1] = (uint8_t)n;
    return sym_update(&c->base, pad, n, out, err);
}

/* ... and on Decrypt: the count in the last byte (X9.23: zeros before it),
 * removed from `out`, whose last `total` bytes are this operation's. */
static int own_unpad(cipher_op_t *c, size_t total, kms_buf_t *out, kms_error_t *err)
{
    size_t n = total ? out->data[out->len - 1] : 0;
    bool ok = total && n >= 1 && n <= c->block && n <= total;
    for (size_t i = 2; ok && c->own_padding == KMIP_PADDING_METHOD_ANSI_X923 && i <= n; i++)
        ok = out->data[out->len - i] == 0;
    if (!ok)
        return crypto_failed(err, "decryption failed (bad padding or wrong key)");
    kms_wipe(out->data + out->len - n, n);
    out->len -= n;
    return 0;
}

static int sym_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                     crypto_final_t *fin, kms_error_t *err)
{
    cipher_op_t *c = (cipher_op_t *)op;
    int rc, n = 0;
    size_t start = out->len;
    if (held_len && (rc = sym_update(op, held, held_len, out, err)))
        return rc;
    if (c->own_padding && c->enc && (rc = own_pad(c, held_len, out, err)))
        return rc;
    if (c->aead && !c->enc) {
        if (!fin->tag)
            return crypto_invalid(err, "Authenticated Encryption Tag missing");
        if (fin->tag_len != c->tag_len)
            return crypto_failed(err, "Authenticated Encryption Tag of %zu bytes, expected %zu",
                                 fin->tag_len, c->tag_len);
        if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_TAG, (int)fin->tag_len,
                                (void *)fin->tag) != 1)
            return crypto_failed(err, "tag refused");
    }
    uint8_t *dst = crypto_buf_room(out, c->block + 16, err);
    if (!dst)
        return err ? err->code : KMS_ERR_LIMIT;
    if (EVP_CipherFinal_ex(c->ctx, dst, &n) != 1 || n < 0) {
        ERR_clear_error();
        if (c->no_padding)
            return crypto_invalid(err, "the data must be a multiple of %zu bytes (Padding "
                                       "Method None, or a ciphertext to unpad)", c->block);
        if (c->aead)
            return crypto_failed(err, "authentication failed: the tag does not match");
        if (!c->enc)
            return crypto_failed(err, "decryption failed (bad padding or wrong key)");
        return crypto_failed(err, "cipher failed");
    }
    out->len += (size_t)n;
    if (c->own_padding && !c->enc && (rc = own_unpad(c, out->len - start, out, err)))
        return rc;
    if (c->aead && c->enc) {
        if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_GET_TAG, (int)c->tag_len, fin->tag_out) != 1)
            return crypto_failed(err, "no tag");
        fin->tag_out_len = c->tag_len;
    }
    return 0;
}

/* ------------------------------------------------------------------ RSA */
static int rsa_start(cipher_op_t *c, const crypto_key_t *key, const crypto_params_t *p,
                     const crypto_start_t *in, kms_error_t *err)
{
    if (p->mode)
        return crypto_invalid(err, "RSA takes no Block Cipher Mode");
    if (in->iv || in->aad)
        return crypto_invalid(err, "RSA takes no IV/Counter/Nonce or additional data");
    size_t k = (size_t)EVP_PKEY_get_size(key->pkey);
    c->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (!c->pctx)
        return KMS_ERR_NOMEM;
    if ((c->enc ? EVP_PKEY_encrypt_init(c->pctx) : EVP_PKEY_decrypt_init(c->pctx)) != 1)
        return crypto_invalid(err, "this key cannot %s", c->enc ? "encrypt" : "decrypt");
    if (p->padding == KMIP_PADDING_METHOD_PKCS1_V1_5) {
        if (EVP_PKEY_CTX_set_rsa_padding(c->pctx, RSA_PKCS1_PADDING) != 1)
            return crypto_failed(err, "padding refused");
        c->max_in = k > 11 ? k - 11 : 0;
        return 0;
    }
    if (p->padding != KMIP_PADDING_METHOD_OAEP)
        return p->padding ? crypto_invalid(err, "Padding Method %s does not apply to RSA "
                                                "encryption (OAEP, PKCS1 v1.5)",
                                           crypto_enum_name(KMIP_TAG_PADDING_METHOD, p->padding))
                          : crypto_invalid(err, "Padding Method missing for RSA (OAEP or "
                                                "PKCS1 v1.5)");
    const EVP_MD *md = crypto_md_get(p->hash ? p->hash : KMIP_HASHING_ALGORITHM_SHA_1);
    const EVP_MD *mgf = crypto_md_get(p->mgf_hash ? p->mgf_hash
                                                  : (p->hash ? p->hash : KMIP_HASHING_ALGORITHM_SHA_1));
    if (!md || !mgf)
        return crypto_unsupported(err, "OAEP hash not supported");
    if (EVP_PKEY_CTX_set_rsa_padding(c->pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c->pctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c->pctx, mgf) != 1)
        return crypto_failed(err, "OAEP set-up failed");
    if (p->p_source && p->p_source_len) {
        void *label = OPENSSL_memdup(p->p_source, p->p_source_len);
        if (!label || EVP_PKEY_CTX_set0_rsa_oaep_label(c->pctx, label, (int)p->p_source_len) != 1) {
            OPENSSL_free(label);
            return crypto_failed(err, "OAEP label refused");
        }
    }
    size_t h = (size_t)EVP_MD_get_size(md);
    c->max_in = k > 2 * h + 2 ? k - 2 * h - 2 : 0;
    return 0;
}

static int rsa_final(crypto_op_t *op, const uint8_t *held, size_t held_len, kms_buf_t *out,
                     crypto_final_t *fin, kms_error_t *err)
{
    (void)fin;
    cipher_op_t *c = (cipher_op_t *)op;
    size_t n = 0;
    if (c->enc && held_len > c->max_in)
        return crypto_invalid(err, "at most %zu bytes fit this key and padding", c->max_in);
    int ok = c->enc ? EVP_PKEY_encrypt(c->pctx, NULL, &n, held, held_len)
                    : EVP_PKEY_decrypt(c->pctx, NULL, &n, held, held_len);
    if (ok != 1) {
        ERR_clear_error();
        return crypto_failed(err, "RSA %s failed", c->enc ? "encryption" : "decryption");
    }
    uint8_t *dst = crypto_buf_room(out, n, err);
    if (!dst)
        return err ? err->code : KMS_ERR_LIMIT;
    ok = c->enc ? EVP_PKEY_encrypt(c->pctx, dst, &n, held, held_len)
                : EVP_PKEY_decrypt(c->pctx, dst, &n, held, held_len);
    if (ok != 1) {
        ERR_clear_error();
        return crypto_failed(err, "RSA %s failed", c->enc ? "encryption" : "decryption");
    }
    out->len += n;
    return 0;
}

/* ---------------------------------------------------------------- entry */
int crypto_cipher_start(enum crypto_svc svc, const crypto_key_t *key, const crypto_params_t *p,
                        const crypto_start_t *in, crypto_op_t **op_out, uint8_t iv_out[64],
                        size_t *iv_len_out, kms_error_t *err)
{
    static const crypto_start_t none = {0};
    int rc;
    kms_error_clear(err);
    *op_out = NULL;
    *iv_len_out = 0;
    if (!key || !p || (svc != CRYPTO_SVC_ENCRYPT && svc != CRYPTO_SVC_DECRYPT))
        return kms_error_set(err, KMS_ERR_INVAL, "bad arguments");
    if (!in)
        in = &none;
    if (p->alg && key->alg && p->alg != key->alg)
        return crypto_invalid(err, "the parameters name %s, the key is %s",
                              crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, p->alg),
                              crypto_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, key->alg));
    cipher_op_t *c = calloc(1, sizeof(*c));
    if (!c)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    c->enc = svc == CRYPTO_SVC_ENCRYPT;
    c->base.dispose = cipher_dispose;
    if (key->pkey) {
        crypto_op_init(&c->base, svc, false);
        c->base.final = rsa_final;
        if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_RSA)
            rc = crypto_invalid(err, "only RSA key pairs encrypt");
        else
            rc = rsa_start(c, key, p, in, err);
    } else {
        bool stream = p->mode != KMIP_BLOCK_CIPHER_MODE_XTS &&
                      p->mode != KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP &&
                      p->mode != KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING;
        crypto_op_init(&c->base, svc, stream);
        c->base.update = sym_update;
        c->base.final = sym_final;
        rc = sym_start(c, key, p, in, iv_out, iv_len_out, err);
    }
    if (rc) {
        ERR_clear_error();
        crypto_op_free(&c->base);
        *iv_len_out = 0;
        return crypto_error_ensure(err, rc);
    }
    *op_out = &c->base;
    return 0;
}
