/*
 * tests/unit/test_kmip_crypto_ops.c: the cryptographic operations through
 * kmip_handle() with a real store and keyring (test_kmip_env.h): known
 * answers through KMIP requests (SP 800-38A CBC, GCM test case 4, RFC 4231
 * HMAC, FIPS 180 SHA-256, RFC 6979 ECDSA verification, RFC 6070 PBKDF2 via
 * Derive Key), server-made IVs, the State / usage mask / date / Usage
 * Limits rules with their Result Reasons, streaming across requests (and
 * another identity's Correlation Value), stream limits and expiry, RNG
 * Retrieve / Seed, Derive Key links, and Query's operation list.
 */
#include "test_kmip_env.h"

#include "crypto/crypto.h"

#define AES KMIP_CRYPTOGRAPHIC_ALGORITHM_AES
#define U_ENC KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT
#define U_DEC KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT

static uint8_t *hx(kenv_t *e, const char *s, size_t *n)
{
    uint8_t *p = NULL;
    size_t len = 0;
    assert_int_equal(kms_hex_decode(s, strlen(s), &p, &len), 0);
    uint8_t *q = kms_arena_memdup(e->a, p, len ? len : 1);
    free(p);
    *n = len;
    return q;
}

static void assert_bytes_hex(const ttlv_item_t *it, const char *want)
{
    assert_non_null(it);
    char h[1024];
    assert_true(it->v.bytes.len * 2 < sizeof(h));
    kms_hex_encode(it->v.bytes.ptr, it->v.bytes.len, h);
    if (strcasecmp(h, want) != 0)
        fail_msg("got %s\nwant %s", h, want);
}

/* Register a key block object (Raw material) with a usage mask; Active
 * unless `preactive`. */
static char *reg(kenv_t *e, uint32_t type, uint32_t alg, int32_t bits, const char *khex,
                 int32_t mask, bool preactive, ttlv_item_t **ta_out)
{
    size_t n;
    uint8_t *km = hx(e, khex, &n);
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, type);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_int(e, ta, "Cryptographic Usage Mask", mask);
    if (!preactive)
        rq_attr_date(e, ta, "Activation Date", kms_now_us() / 1000000 - 60);
    if (ta_out)
        *ta_out = ta;
    ttlv_item_t *obj = ttlv_new_struct(e->a, p, crypto_object_tag(type));
    if (type == KMIP_OBJECT_TYPE_SECRET_DATA)
        ttlv_new_enum(e->a, obj, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_PASSWORD);
    ttlv_item_t *kb = ttlv_new_struct(e->a, obj, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(e->a, kb, KMIP_TAG_KEY_FORMAT_TYPE,
                  type == KMIP_OBJECT_TYPE_PUBLIC_KEY ? KMIP_KEY_FORMAT_TYPE_X_509
                                                      : KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_item_t *kv = ttlv_new_struct(e->a, kb, KMIP_TAG_KEY_VALUE);
    ttlv_new_bytes(e->a, kv, KMIP_TAG_KEY_MATERIAL, km, n);
    if (alg) {
        ttlv_new_enum(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg);
        ttlv_new_int(e->a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, bits);
    }
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    return kms_arena_strdup(e->a, rs_uid(bi));
}

/* A request of `op` on key `id` (NULL: none); returns its payload. */
static ttlv_item_t *op_req(kenv_t *e, ttlv_item_t **msg, uint32_t op, const char *id)
{
    *msg = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, *msg, op);
    if (id)
        rq_uid(e, p, id);
    return p;
}

static ttlv_item_t *params(kenv_t *e, ttlv_item_t *p, uint32_t mode, uint32_t padding)
{
    ttlv_item_t *cp = ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    if (mode)
        ttlv_new_enum(e->a, cp, KMIP_TAG_BLOCK_CIPHER_MODE, mode);
    if (padding)
        ttlv_new_enum(e->a, cp, KMIP_TAG_PADDING_METHOD, padding);
    return cp;
}

static void data(kenv_t *e, ttlv_item_t *p, uint32_t tag, const char *h)
{
    size_t n;
    uint8_t *b = hx(e, h, &n);
    ttlv_new_bytes(e->a, p, tag, b, n);
}

static ttlv_item_t *field(ttlv_item_t *bi, uint32_t tag)
{
    return ttlv_find(rs_payload(bi), tag);
}

/* Create Key Pair of `alg`/`bits`, Active, private key Sign and public
 * key Verify; the ids in *sk / *pk (arena). */
static void key_pair(kenv_t *e, uint32_t alg, int32_t bits, char **sk, char **pk)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE_KEY_PAIR);
    ttlv_item_t *common = ttlv_new_struct(e->a, p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, common, "Cryptographic Algorithm", alg);
    rq_attr_int(e, common, "Cryptographic Length", bits);
    rq_attr_date(e, common, "Activation Date", kms_now_us() / 1000000 - 5);
    rq_attr_int(e, ttlv_new_struct(e->a, p, KMIP_TAG_PRIVATE_KEY_TEMPLATE_ATTRIBUTE),
                "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN);
    rq_attr_int(e, ttlv_new_struct(e->a, p, KMIP_TAG_PUBLIC_KEY_TEMPLATE_ATTRIBUTE),
                "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    *sk = kms_arena_strdup(e->a, ttlv_text(field(bi, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER)));
    *pk = kms_arena_strdup(e->a, ttlv_text(field(bi, KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER)));
}

#define K128 "2b7e151628aed2a6abf7158809cf4f3c"
#define PT38A "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
#define CT38A "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"

/* Encrypt (the SP 800-38A plaintext) or Decrypt (its ciphertext) in one
 * CBC request on `id`; returns the batch item. */
static ttlv_item_t *cbc(kenv_t *e, uint32_t op, const char *id)
{
    ttlv_item_t *m, *p = op_req(e, &m, op, id);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_NONE);
    data(e, p, KMIP_TAG_DATA, op == KMIP_OPERATION_ENCRYPT ? PT38A : CT38A);
    data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "000102030405060708090a0b0c0d0e0f");
    return rs_item(kenv_call(e, m), 0);
}
#define encrypt_cbc(e, id) cbc(e, KMIP_OPERATION_ENCRYPT, id)
#define decrypt_cbc(e, id) cbc(e, KMIP_OPERATION_DECRYPT, id)

static void test_encrypt_decrypt_kat(void **state)
{
    kenv_t *e = *state;
    char *id = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    ttlv_item_t *bi = encrypt_cbc(e, id);
    assert_ok(bi);
    assert_string_equal(rs_uid(bi), id);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), CT38A);
    assert_null(field(bi, KMIP_TAG_IV_COUNTER_NONCE)); /* the client's IV is not echoed */
    bi = decrypt_cbc(e, id);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), PT38A);

    /* GCM test case 4 with Authenticated Encryption Additional Data. */
    char *g = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, "feffe9928665731c6d6a8f9467308308",
                  U_ENC | U_DEC, false, NULL);
    const char *P = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    const char *C = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091";
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, g);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_GCM, 0);
    data(e, p, KMIP_TAG_DATA, P);
    data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "cafebabefacedbaddecaf888");
    data(e, p, KMIP_TAG_AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), C);
    assert_bytes_hex(field(bi, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG), "5bc94fbc3221a5db94fae95ae7121a47");
    for (int bad = 0; bad < 2; bad++) {
        p = op_req(e, &m, KMIP_OPERATION_DECRYPT, g);
        params(e, p, KMIP_BLOCK_CIPHER_MODE_GCM, 0);
        data(e, p, KMIP_TAG_DATA, C);
        data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "cafebabefacedbaddecaf888");
        data(e, p, KMIP_TAG_AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
        data(e, p, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG,
             bad ? "5bc94fbc3221a5db94fae95ae7121a48" : "5bc94fbc3221a5db94fae95ae7121a47");
        bi = rs_item(kenv_call(e, m), 0);
        if (bad) {
            assert_fail(bi, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);
        } else {
            assert_ok(bi);
            assert_bytes_hex(field(bi, KMIP_TAG_DATA), P);
        }
    }
}

/* No IV from the client: the server makes one and returns it; the key's
 * Cryptographic Parameters attribute stands in for the request's. */
static void test_server_iv_and_key_params(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *ta;
    size_t n;
    uint8_t *k = hx(e, K128, &n);
    (void)k;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ta, "Cryptographic Algorithm", AES);
    rq_attr_int(e, ta, "Cryptographic Length", 256);
    rq_attr_int(e, ta, "Cryptographic Usage Mask", U_ENC | U_DEC);
    rq_attr_date(e, ta, "Activation Date", kms_now_us() / 1000000 - 5);
    ttlv_item_t *cpv = ttlv_new_struct(e->a, rq_attr(e, ta, "Cryptographic Parameters"),
                                       KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_enum(e->a, cpv, KMIP_TAG_BLOCK_CIPHER_MODE, KMIP_BLOCK_CIPHER_MODE_GCM);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));

    p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, id);
    data(e, p, KMIP_TAG_DATA, "00112233445566778899");
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *iv = field(bi, KMIP_TAG_IV_COUNTER_NONCE), *ct = field(bi, KMIP_TAG_DATA),
                *tag = field(bi, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG);
    assert_non_null(iv);
    assert_int_equal(iv->v.bytes.len, 12);
    assert_non_null(tag);
    assert_int_equal(ct->v.bytes.len, 10);

    p = op_req(e, &m, KMIP_OPERATION_DECRYPT, id);
    ttlv_append(p, ttlv_clone(e->a, ct));
    ttlv_append(p, ttlv_clone(e->a, iv));
    ttlv_append(p, ttlv_clone(e->a, tag));
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), "00112233445566778899");

    /* Missing Data; Decrypt without the IV: Invalid Field. */
    p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, id);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    p = op_req(e, &m, KMIP_OPERATION_DECRYPT, id);
    ttlv_append(p, ttlv_clone(e->a, ct));
    ttlv_append(p, ttlv_clone(e->a, tag));
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* Create + Encrypt in one batch through the ID Placeholder. */
    m = rq_msg(e, 1, 4);
    rq_create(e, m, AES, 128, U_ENC | U_DEC, NULL);
    rq_item(e, m, KMIP_OPERATION_ACTIVATE);
    p = rq_item(e, m, KMIP_OPERATION_ENCRYPT);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_CTR, 0);
    data(e, p, KMIP_TAG_DATA, "00");
    ttlv_item_t *r = kenv_call(e, m);
    assert_ok(rs_item(r, 2));
    assert_int_equal(field(rs_item(r, 2), KMIP_TAG_IV_COUNTER_NONCE)->v.bytes.len, 16);
}

static void revoke_reason(kenv_t *e, const char *id, uint32_t code)
{
    assert_ok(k_revoke(e, id, code));
}

static void test_state_rules(void **state)
{
    kenv_t *e = *state;
    /* Pre-Active: nothing. */
    char *pre = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, true, NULL);
    assert_fail(encrypt_cbc(e, pre), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_fail(decrypt_cbc(e, pre), KMIP_RESULT_REASON_PERMISSION_DENIED);
    /* Deactivated: Decrypt yes, Encrypt no. */
    char *de = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    revoke_reason(e, de, KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION);
    assert_int_equal(k_state(e, de), KMIP_STATE_DEACTIVATED);
    assert_fail(encrypt_cbc(e, de), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(decrypt_cbc(e, de));
    /* Compromised: the same. */
    char *co = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    revoke_reason(e, co, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE);
    assert_int_equal(k_state(e, co), KMIP_STATE_COMPROMISED);
    assert_fail(encrypt_cbc(e, co), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(decrypt_cbc(e, co));
    /* Destroyed: no material. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_DESTROY, de));
    assert_fail(decrypt_cbc(e, de), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Usage mask without Encrypt. */
    char *dec_only = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_DEC, false, NULL);
    assert_fail(encrypt_cbc(e, dec_only), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(decrypt_cbc(e, dec_only));
    /* Protect Stop Date passed: no Encrypt, Decrypt still. Process Start
     * Date ahead: no Decrypt. */
    ttlv_item_t *ta;
    (void)ta;
    char *ps = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ADD_ATTRIBUTE, ps);
    ttlv_new_datetime(e->a, rq_attr(e, p, "Protect Stop Date"), KMIP_TAG_ATTRIBUTE_VALUE,
                      kms_now_us() / 1000000 - 1);
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_fail(encrypt_cbc(e, ps), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(decrypt_cbc(e, ps));
    char *st = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    p = op_req(e, &m, KMIP_OPERATION_ADD_ATTRIBUTE, st);
    ttlv_new_datetime(e->a, rq_attr(e, p, "Process Start Date"), KMIP_TAG_ATTRIBUTE_VALUE,
                      kms_now_us() / 1000000 + 3600);
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_fail(decrypt_cbc(e, st), KMIP_RESULT_REASON_PERMISSION_DENIED);
    assert_ok(encrypt_cbc(e, st));
    /* Wrong object type: Illegal Operation; unknown id: Item Not Found. */
    char *sd = reg(e, KMIP_OBJECT_TYPE_SECRET_DATA, 0, 0, "70617373776f7264", U_ENC, false, NULL);
    assert_fail(encrypt_cbc(e, sd), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    assert_fail(encrypt_cbc(e, "no-such-key"), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
}

static void test_usage_limits(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *ta;
    char *id = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, &ta);
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ADD_ATTRIBUTE, id);
    ttlv_item_t *ul = ttlv_new_struct(e->a, rq_attr(e, p, "Usage Limits"), KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_long(e->a, ul, KMIP_TAG_USAGE_LIMITS_TOTAL, 2);
    ttlv_new_enum(e->a, ul, KMIP_TAG_USAGE_LIMITS_UNIT, KMIP_USAGE_LIMITS_UNIT_OBJECT);
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_ok(encrypt_cbc(e, id));
    assert_ok(decrypt_cbc(e, id));
    assert_fail(encrypt_cbc(e, id), KMIP_RESULT_REASON_PERMISSION_DENIED);
    ttlv_item_t *v = k_attr(e, id, "Usage Limits");
    assert_int_equal(ttlv_find(v, KMIP_TAG_USAGE_LIMITS_COUNT)->v.i64, 0);
}

/* Encrypt CBC in three parts: the same ciphertext as in one. */
static void test_stream_encrypt(void **state)
{
    kenv_t *e = *state;
    char *id = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    const char *parts[] = {"6bc1bee22e409f96e9", "3d7e117393172aae2d8a571e03ac9c9e",
                           "b76fac45af8e51"};
    char got[256] = "";
    ttlv_item_t *corr = NULL;
    for (int i = 0; i < 3; i++) {
        ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, i == 0 ? id : NULL);
        if (i == 0) {
            params(e, p, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_NONE);
            data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "000102030405060708090a0b0c0d0e0f");
            ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
        } else {
            ttlv_append(p, ttlv_clone(e->a, corr));
        }
        data(e, p, KMIP_TAG_DATA, parts[i]);
        if (i == 2)
            ttlv_new_bool(e->a, p, KMIP_TAG_FINAL_INDICATOR, true);
        ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        ttlv_item_t *d = field(bi, KMIP_TAG_DATA);
        assert_non_null(d);
        kms_hex_encode(d->v.bytes.ptr, d->v.bytes.len, got + strlen(got));
        if (i < 2) {
            corr = field(bi, KMIP_TAG_CORRELATION_VALUE);
            assert_non_null(corr);
            corr = ttlv_clone(e->a, corr);
        } else {
            assert_null(field(bi, KMIP_TAG_CORRELATION_VALUE));
        }
    }
    assert_string_equal(got, CT38A);
    /* The stream is gone after the final part. */
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, NULL);
    ttlv_append(p, ttlv_clone(e->a, corr));
    data(e, p, KMIP_TAG_DATA, "00");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* A non-streamable mechanism refuses Init. */
    p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, id);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP, 0);
    ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
    data(e, p, KMIP_TAG_DATA, "00112233445566778899aabbccddeeff");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
}

/* One streamed operation over `n` parts of hex data; the first part gets
 * `first` (parameters...) appended, the last `last`. Returns the final
 * batch item. */
static ttlv_item_t *stream(kenv_t *e, uint32_t op, const char *id, const char **parts, int n,
                           ttlv_item_t *last)
{
    ttlv_item_t *corr = NULL, *bi = NULL;
    for (int i = 0; i < n; i++) {
        ttlv_item_t *m, *p = op_req(e, &m, op, i == 0 ? id : NULL);
        if (i == 0)
            ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
        else
            ttlv_append(p, ttlv_clone(e->a, corr));
        data(e, p, KMIP_TAG_DATA, parts[i]);
        if (i == n - 1) {
            if (last)
                ttlv_append(p, ttlv_clone(e->a, last));
            ttlv_new_bool(e->a, p, KMIP_TAG_FINAL_INDICATOR, true);
        }
        bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        if (i < n - 1)
            corr = ttlv_clone(e->a, field(bi, KMIP_TAG_CORRELATION_VALUE));
    }
    return bi;
}

/* Sign, Signature Verify and MAC Verify streamed: the signature of three
 * parts verifies in two; the streamed MAC is RFC 4231's. */
static void test_stream_sign_mac(void **state)
{
    kenv_t *e = *state;
    char *sk, *pk;
    key_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 384, &sk, &pk);
    ttlv_item_t *bi;
    const char *three[] = {"0102", "030405", "06"}, *two[] = {"01020304", "0506"},
               *other[] = {"01020304", "0507"};
    bi = stream(e, KMIP_OPERATION_SIGN, sk, three, 3, NULL);
    ttlv_item_t *sig = ttlv_clone(e->a, field(bi, KMIP_TAG_SIGNATURE_DATA));
    assert_non_null(sig);
    bi = stream(e, KMIP_OPERATION_SIGNATURE_VERIFY, pk, two, 2, sig);
    assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)), KMIP_VALIDITY_INDICATOR_VALID);
    bi = stream(e, KMIP_OPERATION_SIGNATURE_VERIFY, pk, other, 2, sig);
    assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)), KMIP_VALIDITY_INDICATOR_INVALID);

    char *hk = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 160,
                   "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                   KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_GENERATE | KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_VERIFY,
                   false, NULL);
    const char *hi[] = {"4869", "20546865", "7265"}; /* "Hi There" */
    bi = stream(e, KMIP_OPERATION_MAC, hk, hi, 3, NULL);
    assert_bytes_hex(field(bi, KMIP_TAG_MAC_DATA),
                     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    ttlv_item_t *mac = ttlv_clone(e->a, field(bi, KMIP_TAG_MAC_DATA));
    bi = stream(e, KMIP_OPERATION_MAC_VERIFY, hk, hi, 3, mac);
    assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)), KMIP_VALIDITY_INDICATOR_VALID);
}

/* Hash and MAC streamed; a Correlation Value of another identity is Item
 * Not Found; the per-identity limit. */
static void test_stream_identity_and_limits(void **state)
{
    kenv_t *e = *state;
    kmip_peer_t alice = {.cert_cn = "alice"}, bob = {.cert_cn = "bob"};
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256);
    data(e, p, KMIP_TAG_DATA, "61");
    ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, &alice, m), 0);
    assert_ok(bi);
    ttlv_item_t *corr = ttlv_clone(e->a, field(bi, KMIP_TAG_CORRELATION_VALUE));
    assert_null(field(bi, KMIP_TAG_DATA));
    /* Bob cannot use it, and does not learn that it exists. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_append(p, ttlv_clone(e->a, corr));
    data(e, p, KMIP_TAG_DATA, "6263");
    ttlv_new_bool(e->a, p, KMIP_TAG_FINAL_INDICATOR, true);
    assert_fail(rs_item(kenv_call_peer(e, &bob, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Alice finishes it: SHA-256("abc"). */
    bi = rs_item(kenv_call_peer(e, &alice, m), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* 16 open streams per identity; the 17th is refused. */
    for (int i = 0; i <= 16; i++) {
        m = rq_msg(e, 1, 4);
        p = rq_item(e, m, KMIP_OPERATION_HASH);
        ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                      KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_1);
        ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
        bi = rs_item(kenv_call_peer(e, &bob, m), 0);
        if (i < 16)
            assert_ok(bi);
        else
            assert_fail(bi, KMIP_RESULT_REASON_PERMISSION_DENIED);
    }
    /* Alice is not affected by Bob's streams. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_1);
    ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
    assert_ok(rs_item(kenv_call_peer(e, &alice, m), 0));
}

/* The streams of one tenant's identities together are bounded: Bob, of
 * Alice's tenant, is refused once the tenant holds its 3, below his own 2. */
static void test_stream_tenant_limit(void **state)
{
    kenv_t *e = *state;
    kmip_server_t *orig = e->srv, *s = NULL;
    kmip_peer_t alice = {.cert_cn = "alice"}, bob = {.cert_cn = "bob"};
    kmip_config_t c = {.store = e->store, .keyring = e->kr, .access = KMIP_ACCESS_OPEN,
                       .crypto_streams_per_identity = 2, .crypto_streams_per_tenant = 3};
    assert_int_equal(kmip_server_new(&c, &s), 0);
    e->srv = s;
    kmip_peer_t *who[] = {&alice, &alice, &bob, &bob};
    for (size_t i = 0; i < 4; i++) {
        ttlv_item_t *m = rq_msg(e, 1, 4);
        ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_HASH);
        ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                      KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256);
        ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
        ttlv_item_t *bi = rs_item(kenv_call_peer(e, who[i], m), 0);
        if (i < 3)
            assert_ok(bi);
        else
            assert_fail(bi, KMIP_RESULT_REASON_PERMISSION_DENIED);
    }
    e->srv = orig;
    kmip_server_free(s);
}

/* Idle streams expire (a server with a 1-second idle time). */
static void test_stream_expiry(void **state)
{
    kenv_t *e = *state;
    kmip_server_t *orig = e->srv, *s = NULL;
    kmip_config_t c = {.store = e->store, .keyring = e->kr, .access = KMIP_ACCESS_OPEN,
                       .crypto_stream_idle_s = 1,
                       .crypto_streams_per_identity = 2};
    assert_int_equal(kmip_server_new(&c, &s), 0);
    e->srv = s;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_256);
    ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    ttlv_item_t *corr = ttlv_clone(e->a, field(bi, KMIP_TAG_CORRELATION_VALUE));
    assert_ok(rs_item(kenv_call(e, m), 0));
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED); /* 2 max */
    usleep(2100 * 1000);
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_append(p, corr);
    ttlv_new_bool(e->a, p, KMIP_TAG_FINAL_INDICATOR, true);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    e->srv = orig;
    kmip_server_free(s);
}

static void test_mac_hash_kat(void **state)
{
    kenv_t *e = *state;
    char *id = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA256, 160,
                   "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                   KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_GENERATE | KMIP_CRYPTOGRAPHIC_USAGE_MASK_MAC_VERIFY,
                   false, NULL);
    const char *want = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_MAC, id);
    data(e, p, KMIP_TAG_DATA, "4869205468657265"); /* "Hi There" */
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_MAC_DATA), want);
    for (int bad = 0; bad < 2; bad++) {
        p = op_req(e, &m, KMIP_OPERATION_MAC_VERIFY, id);
        data(e, p, KMIP_TAG_DATA, bad ? "4869205468657266" : "4869205468657265");
        data(e, p, KMIP_TAG_MAC_DATA, want);
        bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)),
                         bad ? KMIP_VALIDITY_INDICATOR_INVALID : KMIP_VALIDITY_INDICATOR_VALID);
    }
    /* MAC Verify without MAC Data: Invalid Field. */
    p = op_req(e, &m, KMIP_OPERATION_MAC_VERIFY, id);
    data(e, p, KMIP_TAG_DATA, "00");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* Hash of "abc" with SHA-1; no Hashing Algorithm: Invalid Field. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_HASH);
    ttlv_new_enum(e->a, ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_1);
    data(e, p, KMIP_TAG_DATA, "616263");
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), "a9993e364706816aba3e25717850c26c9cd0d89d");
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_HASH);
    data(e, p, KMIP_TAG_DATA, "616263");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_sign_verify(void **state)
{
    kenv_t *e = *state;
    /* RFC 6979 A.2.5 public key, registered; its published signature. */
    char *pub = reg(e, KMIP_OBJECT_TYPE_PUBLIC_KEY, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256,
                    "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
                    "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
                    "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
                    KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY, false, NULL);
    const char *sig = "3046022100EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                      "022100F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8";
    for (int bad = 0; bad < 2; bad++) {
        ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_SIGNATURE_VERIFY, pub);
        ttlv_item_t *cp = ttlv_new_struct(e->a, p, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
        ttlv_new_enum(e->a, cp, KMIP_TAG_DIGITAL_SIGNATURE_ALGORITHM,
                      KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256);
        data(e, p, KMIP_TAG_DATA, bad ? "73616d706c66" : "73616d706c65"); /* "sample" */
        data(e, p, KMIP_TAG_SIGNATURE_DATA, sig);
        ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)),
                         bad ? KMIP_VALIDITY_INDICATOR_INVALID : KMIP_VALIDITY_INDICATOR_VALID);
    }
    /* A key pair made here: Sign (Data and Digested Data), Verify both. */
    char *sk, *pk;
    key_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, &sk, &pk);
    ttlv_item_t *m, *p, *bi;
    uint8_t dg[32];
    crypto_sha256((const uint8_t *)"sample", 6, dg);
    char dgh[65];
    kms_hex_encode(dg, 32, dgh);
    for (int pre = 0; pre < 2; pre++) {
        p = op_req(e, &m, KMIP_OPERATION_SIGN, sk);
        data(e, p, pre ? KMIP_TAG_DIGESTED_DATA : KMIP_TAG_DATA, pre ? dgh : "73616d706c65");
        bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        ttlv_item_t *s = ttlv_clone(e->a, field(bi, KMIP_TAG_SIGNATURE_DATA));
        assert_non_null(s);
        p = op_req(e, &m, KMIP_OPERATION_SIGNATURE_VERIFY, pk);
        data(e, p, KMIP_TAG_DATA, "73616d706c65");
        ttlv_append(p, s);
        bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        assert_int_equal(ttlv_u32(field(bi, KMIP_TAG_VALIDITY_INDICATOR)), KMIP_VALIDITY_INDICATOR_VALID);
    }
    /* The public key does not sign; the private key lacks Verify. */
    p = op_req(e, &m, KMIP_OPERATION_SIGN, pk);
    data(e, p, KMIP_TAG_DATA, "00");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    /* Revoked (Deactivated) private key: no Sign; public key still verifies. */
    revoke_reason(e, sk, KMIP_REVOCATION_REASON_CODE_SUPERSEDED);
    p = op_req(e, &m, KMIP_OPERATION_SIGN, sk);
    data(e, p, KMIP_TAG_DATA, "00");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

static void test_rng(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_RNG_RETRIEVE);
    ttlv_new_int(e->a, p, KMIP_TAG_DATA_LENGTH, 48);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_int_equal(field(bi, KMIP_TAG_DATA)->v.bytes.len, 48);
    ttlv_find(p, KMIP_TAG_DATA_LENGTH)->v.i32 = 0;
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    ttlv_find(p, KMIP_TAG_DATA_LENGTH)->v.i32 = (2 << 20);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_RNG_SEED);
    data(e, p, KMIP_TAG_DATA, "0102030405060708");
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_int_equal(field(bi, KMIP_TAG_DATA_LENGTH)->v.i32, 8);
}

/* Derive Key, PBKDF2 from a Password (RFC 6070, c = 4096): the derived
 * key's bytes, attributes and links. */
static void test_derive_pbkdf2(void **state)
{
    kenv_t *e = *state;
    char *pw = reg(e, KMIP_OBJECT_TYPE_SECRET_DATA, 0, 0, "70617373776f7264",
                   KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY, false, NULL);
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_DERIVE_KEY, pw);
    ttlv_new_enum(e->a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_new_enum(e->a, p, KMIP_TAG_DERIVATION_METHOD, KMIP_DERIVATION_METHOD_PBKDF2);
    ttlv_item_t *dp = ttlv_new_struct(e->a, p, KMIP_TAG_DERIVATION_PARAMETERS);
    ttlv_new_enum(e->a, ttlv_new_struct(e->a, dp, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS),
                  KMIP_TAG_HASHING_ALGORITHM, KMIP_HASHING_ALGORITHM_SHA_1);
    ttlv_new_bytes(e->a, dp, KMIP_TAG_SALT, "salt", 4);
    ttlv_new_int(e->a, dp, KMIP_TAG_ITERATION_COUNT, 4096);
    ttlv_item_t *ta = ttlv_new_struct(e->a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    rq_attr_enum(e, ta, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_HMAC_SHA1);
    rq_attr_int(e, ta, "Cryptographic Length", 160);
    rq_attr_name(e, ta, "derived-1");
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    /* The log line and audit record name the derived key; the base is an input. */
    assert_string_equal(e->sum.object_id, id);
    ttlv_item_t *g = rs_item(kenv_call(e, ({
        ttlv_item_t *gm, *gp = op_req(e, &gm, KMIP_OPERATION_GET, id);
        (void)gp;
        gm;
    })), 0);
    assert_ok(g);
    ttlv_item_t *km = ttlv_find(ttlv_find(ttlv_find(ttlv_find(rs_payload(g), KMIP_TAG_SYMMETRIC_KEY),
                                                    KMIP_TAG_KEY_BLOCK), KMIP_TAG_KEY_VALUE),
                                KMIP_TAG_KEY_MATERIAL);
    assert_bytes_hex(km, "4b007901b765489abead49d926f721d065a429c1");
    ttlv_item_t *l = k_attr(e, id, "Link");
    assert_int_equal(ttlv_u32(ttlv_find(l, KMIP_TAG_LINK_TYPE)), KMIP_LINK_TYPE_DERIVATION_BASE_OBJECT_LINK);
    assert_string_equal(ttlv_text(ttlv_find(l, KMIP_TAG_LINKED_OBJECT_IDENTIFIER)), pw);
    l = k_attr(e, pw, "Link");
    assert_int_equal(ttlv_u32(ttlv_find(l, KMIP_TAG_LINK_TYPE)), KMIP_LINK_TYPE_DERIVED_KEY_LINK);
    assert_string_equal(ttlv_text(ttlv_find(l, KMIP_TAG_LINKED_OBJECT_IDENTIFIER)), id);
    assert_string_equal(ttlv_text(ttlv_find(k_attr(e, id, "Name"), KMIP_TAG_NAME_VALUE)), "derived-1");
    /* Without Salt: Invalid Field; a base without Derive Key: Permission Denied. */
    ttlv_remove(ttlv_find(dp, KMIP_TAG_SALT));
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    char *nd = reg(e, KMIP_OBJECT_TYPE_SECRET_DATA, 0, 0, "70617373776f7264", U_ENC, false, NULL);
    ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER)->v.bytes.ptr = (const uint8_t *)nd;
    ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER)->v.bytes.len = strlen(nd);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

/* On an event loop (KMIP_RUN_LOOP): a small AES operation runs there; an
 * RSA private-key operation and every stream ask for a worker before they
 * change anything; Usage Limits make the one write the loop may defer;
 * Derive Key never runs inline. */
static void test_where_they_run(void **state)
{
    kenv_t *e = *state;
    char *id = reg(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, AES, 128, K128, U_ENC | U_DEC, false, NULL);
    ttlv_item_t *m, *p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, id);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_NONE);
    data(e, p, KMIP_TAG_DATA, PT38A);
    data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "000102030405060708090a0b0c0d0e0f");
    kmip_request_t *r = kenv_request(e, NULL, m);
    assert_true(kmip_request_can_run_inline(r));
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_LOOP), 0);
    assert_null(kmip_request_pending_write(r));
    ttlv_item_t *bi = rs_item(kenv_answer(e, r), 0);
    assert_ok(bi);
    assert_bytes_hex(field(bi, KMIP_TAG_DATA), CT38A);
    kmip_request_free(r);

    /* A stream: a worker, and the stream opens only there. */
    ttlv_new_bool(e->a, p, KMIP_TAG_INIT_INDICATOR, true);
    r = kenv_request(e, NULL, m);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_LOOP), KMS_ERR_AGAIN);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    bi = rs_item(kenv_answer(e, r), 0);
    assert_ok(bi);
    assert_non_null(field(bi, KMIP_TAG_CORRELATION_VALUE));
    kmip_request_free(r);

    /* RSA-2048 Sign: a worker. */
    char *sk, *pk;
    key_pair(e, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, &sk, &pk);
    p = op_req(e, &m, KMIP_OPERATION_SIGN, sk);
    data(e, p, KMIP_TAG_DATA, "00");
    r = kenv_request(e, NULL, m);
    assert_true(kmip_request_can_run_inline(r));
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_LOOP), KMS_ERR_AGAIN);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    assert_ok(rs_item(kenv_answer(e, r), 0));
    kmip_request_free(r);

    /* Usage Limits: the count is the loop's one deferred write. */
    p = op_req(e, &m, KMIP_OPERATION_ADD_ATTRIBUTE, id);
    ttlv_item_t *ul = ttlv_new_struct(e->a, rq_attr(e, p, "Usage Limits"), KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_long(e->a, ul, KMIP_TAG_USAGE_LIMITS_TOTAL, 5);
    ttlv_new_enum(e->a, ul, KMIP_TAG_USAGE_LIMITS_UNIT, KMIP_USAGE_LIMITS_UNIT_OBJECT);
    assert_ok(rs_item(kenv_call(e, m), 0));
    p = op_req(e, &m, KMIP_OPERATION_ENCRYPT, id);
    params(e, p, KMIP_BLOCK_CIPHER_MODE_CBC, KMIP_PADDING_METHOD_NONE);
    data(e, p, KMIP_TAG_DATA, PT38A);
    data(e, p, KMIP_TAG_IV_COUNTER_NONCE, "000102030405060708090a0b0c0d0e0f");
    r = kenv_request(e, NULL, m);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_LOOP), 0);
    store_write_t *w = kmip_request_pending_write(r);
    assert_non_null(w);
    assert_int_equal(kmip_request_commit_done(r, store_commit(e->store, w, NULL, 0)), 0);
    assert_ok(rs_item(kenv_answer(e, r), 0));
    kmip_request_free(r);
    assert_int_equal(ttlv_find(k_attr(e, id, "Usage Limits"), KMIP_TAG_USAGE_LIMITS_COUNT)->v.i64, 4);

    /* Derive Key is never run inline. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_DERIVE_KEY);
    r = kenv_request(e, NULL, m);
    assert_false(kmip_request_can_run_inline(r));
    kmip_request_free(r);
}

static void test_query_lists_operations(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(e->a, p, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_OPERATIONS);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    uint32_t want[] = {KMIP_OPERATION_ENCRYPT, KMIP_OPERATION_DECRYPT, KMIP_OPERATION_SIGN,
                       KMIP_OPERATION_SIGNATURE_VERIFY, KMIP_OPERATION_MAC, KMIP_OPERATION_MAC_VERIFY,
                       KMIP_OPERATION_HASH, KMIP_OPERATION_RNG_RETRIEVE, KMIP_OPERATION_RNG_SEED,
                       KMIP_OPERATION_DERIVE_KEY};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(want); i++) {
        bool found = false;
        for (ttlv_item_t *o = field(bi, KMIP_TAG_OPERATION); o; o = ttlv_find_next(o, KMIP_TAG_OPERATION))
            found |= ttlv_u32(o) == want[i];
        assert_true(found);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, kenv_plain_setup, kenv_plain_teardown)
#define TT(f) cmocka_unit_test_setup_teardown(f, kenv_tenants_setup, kenv_tenants_teardown)
    const struct CMUnitTest tests[] = {
        T(test_encrypt_decrypt_kat),  T(test_server_iv_and_key_params), T(test_state_rules),
        T(test_usage_limits),         T(test_stream_encrypt),           TT(test_stream_identity_and_limits),
        T(test_stream_expiry), T(test_stream_tenant_limit),        T(test_mac_hash_kat),             T(test_sign_verify),
        T(test_rng),                  T(test_derive_pbkdf2),            T(test_query_lists_operations),
        T(test_where_they_run),       T(test_stream_sign_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
