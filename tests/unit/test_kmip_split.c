/*
 * tests/unit/test_kmip_split.c: Split Key Methods (crypto/split.c) and the
 * Create Split Key / Join Split Key operations, registering and getting
 * Split Key and PGP Key objects, against a real store.
 *
 * The methods are checked by splitting and joining: every subset of
 * `threshold` parts gives the key back, fewer do not; parameters out of
 * range are refused. The operations are checked end to end: the joined key
 * has the bytes of the key that was split (read with Get), and the export
 * policy (Sensitive, Extractable) survives splitting and joining.
 */
#include "tests/unit/test_kmip_env.h"

#include <openssl/bn.h>
#include <openssl/rand.h>

#include "crypto/crypto.h"

#define A (e->a)

static void attr_bool(kenv_t *e, ttlv_item_t *parent, const char *name, bool v)
{
    ttlv_new_bool(A, rq_attr(e, parent, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}

/* Get of `id` in Key Format Type `fmt`. */
static ttlv_item_t *get_fmt(kenv_t *e, const char *id, uint32_t fmt)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_GET);
    rq_uid(e, p, id);
    ttlv_new_enum(A, p, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    return rs_item(kenv_call(e, m), 0);
}

/* 2^521 - 1, a Mersenne prime, as a KMIP Big Integer (72 bytes). */
static void m521(uint8_t out[72])
{
    memset(out, 0, 72);
    out[6] = 0x01;
    memset(out + 7, 0xff, 65);
}

static void join_subset(uint32_t method, kms_secret_t **sh, const uint32_t *ids, size_t n,
                        uint32_t t, const uint8_t *prime, size_t plen, const uint8_t *key,
                        size_t len, bool expect_equal)
{
    crypto_share_t s[8];
    for (size_t i = 0; i < n; i++) {
        s[i].id = ids[i];
        s[i].p = sh[ids[i] - 1]->data;
        s[i].len = sh[ids[i] - 1]->len;
    }
    kms_secret_t *out = NULL;
    kms_error_t err = {0};
    int rc = crypto_join(method, s, n, t, prime, plen, len, &out, &err);
    if (!expect_equal && rc < 0)
        return;
    assert_int_equal(rc, 0);
    assert_int_equal(out->len, len);
    if (expect_equal)
        assert_memory_equal(out->data, key, len);
    else
        assert_memory_not_equal(out->data, key, len);
    kms_secret_free(out);
}

static void test_methods_round_trip(void **state)
{
    (void)state;
    uint8_t key[32], prime[72];
    RAND_bytes(key, sizeof key);
    key[0] |= 0x80; /* a full-length integer for the prime field */
    m521(prime);
    const struct {
        uint32_t method;
        uint32_t parts, t;
    } cases[] = {
        {KMIP_SPLIT_KEY_METHOD_XOR, 3, 3},
        {KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, 5, 3},
        {KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16, 5, 3},
        {KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD, 5, 3},
        {KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, 2, 2},
    };
    for (size_t c = 0; c < KMS_ARRAY_SIZE(cases); c++) {
        kms_secret_t **sh = NULL;
        kms_error_t err = {0};
        bool prime_m = cases[c].method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD;
        assert_int_equal(crypto_split(cases[c].method, key, sizeof key, cases[c].parts,
                                      cases[c].t, prime_m ? prime : NULL, prime_m ? 72 : 0, &sh,
                                      &err),
                         0);
        assert_int_equal(sh[0]->len, prime_m ? 66u : sizeof key);
        /* No single part is the key. */
        for (uint32_t i = 0; i < cases[c].parts; i++)
            assert_memory_not_equal(sh[i]->data + (prime_m ? 34 : 0), key, sizeof key);
        /* Every subset of t parts (in any order) joins to the key. */
        for (uint32_t mask = 0; mask < (1u << cases[c].parts); mask++) {
            uint32_t ids[8];
            size_t n = 0;
            for (uint32_t i = 0; i < cases[c].parts; i++)
                if (mask & (1u << i))
                    ids[n++] = cases[c].parts - i; /* descending: order does not matter */
            if (n == cases[c].t)
                join_subset(cases[c].method, sh, ids, n, cases[c].t, prime, 72, key, sizeof key,
                            true);
            else if (n == cases[c].t - 1 && n > 0 &&
                     cases[c].method != KMIP_SPLIT_KEY_METHOD_XOR)
                /* t-1 parts posing as a full set: not the key. */
                join_subset(cases[c].method, sh, ids, n, (uint32_t)n, prime, 72, key,
                            sizeof key, false);
        }
        crypto_shares_free(sh, cases[c].parts);
    }
}

static void test_methods_refusals(void **state)
{
    (void)state;
    uint8_t key[33] = {1}, prime[72];
    kms_secret_t **sh = NULL;
    kms_error_t err = {0};
    m521(prime);
#define REFUSED(call)                                                                  \
    do {                                                                               \
        memset(&err, 0, sizeof err);                                                   \
        assert_true((call) < 0);                                                       \
        assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);                \
        assert_null(sh);                                                               \
    } while (0)
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_XOR, key, 32, 3, 2, NULL, 0, &sh, &err));
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, key, 32, 3, 4, NULL, 0,
                         &sh, &err));
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, key, 32, 1, 1, NULL, 0,
                         &sh, &err));
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, key, 32, 256, 2, NULL,
                         0, &sh, &err));
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16, key, 33, 3, 2, NULL,
                         0, &sh, &err));
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD, key, 32, 3, 2,
                         NULL, 0, &sh, &err));
    REFUSED(crypto_split(0x99, key, 32, 3, 2, NULL, 0, &sh, &err));
    /* 2^521 - 2 is not prime; a key wider than the prime does not fit. */
    prime[71] = 0xfe;
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD, key, 32, 3, 2,
                         prime, 72, &sh, &err));
    m521(prime);
    uint8_t big[70];
    memset(big, 0xff, sizeof big);
    REFUSED(crypto_split(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD, big, sizeof big, 3,
                         2, prime, 72, &sh, &err));
    /* Join: a duplicate part, too few parts. */
    uint8_t a[32] = {0};
    crypto_share_t s[3] = {{1, a, 32}, {1, a, 32}, {2, a, 32}};
    kms_secret_t *out = NULL;
    memset(&err, 0, sizeof err);
    assert_true(crypto_join(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, s, 2, 2, NULL, 0, 0,
                            &out, &err) < 0);
    assert_int_equal(err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    memset(&err, 0, sizeof err);
    assert_true(crypto_join(KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8, s + 1, 2, 3, NULL, 0,
                            0, &out, &err) < 0);
    assert_null(out);
}

/* --------------------------------------------------------- operations */
static ttlv_item_t *create_split(kenv_t *e, const char *uid, uint32_t type, uint32_t parts,
                                 uint32_t t, uint32_t method, ttlv_item_t **tmpl_out)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_CREATE_SPLIT_KEY);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, type);
    if (uid)
        rq_uid(e, p, uid);
    ttlv_new_int(A, p, KMIP_TAG_SPLIT_KEY_PARTS, (int32_t)parts);
    ttlv_new_int(A, p, KMIP_TAG_SPLIT_KEY_THRESHOLD, (int32_t)t);
    ttlv_new_enum(A, p, KMIP_TAG_SPLIT_KEY_METHOD, method);
    if (method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD) {
        uint8_t prime[72];
        m521(prime);
        ttlv_new_bigint(A, p, KMIP_TAG_PRIME_FIELD_SIZE, prime, sizeof prime);
    }
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    if (tmpl_out)
        *tmpl_out = ta;
    return m;
}

static const char **uids_of(kenv_t *e, ttlv_item_t *bi, size_t *n_out)
{
    size_t n = ttlv_count(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER);
    const char **ids = kms_arena_alloc(A, sizeof(char *) * (n + 1));
    size_t i = 0;
    for (ttlv_item_t *u = ttlv_find(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER); u;
         u = ttlv_find_next(u, KMIP_TAG_UNIQUE_IDENTIFIER))
        ids[i++] = kms_arena_strdup(A, ttlv_text(u));
    *n_out = n;
    return ids;
}

static ttlv_item_t *join(kenv_t *e, uint32_t type, const char *const *ids, size_t n)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_JOIN_SPLIT_KEY);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, type);
    if (type == KMIP_OBJECT_TYPE_SECRET_DATA)
        ttlv_new_enum(A, p, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_PASSWORD);
    for (size_t i = 0; i < n; i++)
        rq_uid(e, p, ids[i]);
    return rs_item(kenv_call(e, m), 0);
}

/* The Key Material bytes Get returns for `id` (asserted). */
static ttlv_item_t *material(kenv_t *e, const char *id)
{
    ttlv_item_t *bi = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    ttlv_item_t *km = NULL;
    for (ttlv_item_t *o = rs_payload(bi)->first; o && !km; o = o->next) {
        ttlv_item_t *kb = ttlv_find(o, KMIP_TAG_KEY_BLOCK);
        ttlv_item_t *kv = kb ? ttlv_find(kb, KMIP_TAG_KEY_VALUE) : NULL;
        km = kv ? ttlv_find(kv, KMIP_TAG_KEY_MATERIAL) : NULL;
    }
    assert_non_null(km);
    return km;
}

static void test_split_and_join_a_key(void **state)
{
    kenv_t *e = *state;
    const char *key = k_create_aes(e, "to-split");
    ttlv_item_t *km = material(e, key);

    ttlv_item_t *bi = rs_item(kenv_call(e, create_split(e, key, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 5,
                                                        3, KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8,
                                                        NULL)),
                              0);
    assert_ok(bi);
    size_t n = 0;
    const char **ids = uids_of(e, bi, &n);
    assert_int_equal(n, 5);

    /* A part: a Split Key object with its fields, linked to the key. */
    ttlv_item_t *g = k_op_uid(e, KMIP_OPERATION_GET, ids[1]);
    assert_ok(g);
    assert_int_equal(ttlv_u32(ttlv_find(rs_payload(g), KMIP_TAG_OBJECT_TYPE)),
                     KMIP_OBJECT_TYPE_SPLIT_KEY);
    ttlv_item_t *sk = ttlv_find(rs_payload(g), KMIP_TAG_SPLIT_KEY);
    assert_non_null(sk);
    assert_int_equal(ttlv_find(sk, KMIP_TAG_SPLIT_KEY_PARTS)->v.i32, 5);
    assert_int_equal(ttlv_find(sk, KMIP_TAG_KEY_PART_IDENTIFIER)->v.i32, 2);
    assert_int_equal(ttlv_find(sk, KMIP_TAG_SPLIT_KEY_THRESHOLD)->v.i32, 3);
    assert_int_equal(ttlv_u32(ttlv_find(sk, KMIP_TAG_SPLIT_KEY_METHOD)),
                     KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8);
    assert_int_equal(ttlv_u32(k_attr(e, ids[1], "Cryptographic Algorithm")),
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    ttlv_item_t *lnk = k_attr(e, ids[1], "Link");
    assert_int_equal(ttlv_u32(ttlv_find(lnk, KMIP_TAG_LINK_TYPE)), KMIP_LINK_TYPE_PARENT_LINK);
    assert_string_equal(ttlv_text(ttlv_find(lnk, KMIP_TAG_LINKED_OBJECT_IDENTIFIER)), key);

    /* Parts 5, 1, 3 join to the same bytes. */
    const char *pick[] = {ids[4], ids[0], ids[2]};
    bi = join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, pick, 3);
    assert_ok(bi);
    const char *joined = kms_arena_strdup(A, rs_uid(bi));
    ttlv_item_t *km2 = material(e, joined);
    assert_int_equal(km2->v.bytes.len, km->v.bytes.len);
    assert_memory_equal(km2->v.bytes.ptr, km->v.bytes.ptr, km->v.bytes.len);
    assert_int_equal(k_attr(e, joined, "Cryptographic Length")->v.i32, 256);

    /* Two parts are not enough; a part twice is refused. */
    assert_fail(join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, pick, 2), KMIP_RESULT_REASON_INVALID_FIELD);
    const char *dup[] = {ids[0], ids[0], ids[1]};
    assert_fail(join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, dup, 3), KMIP_RESULT_REASON_INVALID_FIELD);
    /* A key is not a part. */
    const char *notpart[] = {ids[0], ids[1], key};
    assert_fail(join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, notpart, 3),
                KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_split_new_keys_every_method(void **state)
{
    kenv_t *e = *state;
    const uint32_t methods[] = {KMIP_SPLIT_KEY_METHOD_XOR,
                                KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16,
                                KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(methods); i++) {
        ttlv_item_t *ta = NULL;
        ttlv_item_t *m = create_split(e, NULL, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 3, 3, methods[i], &ta);
        rq_attr_enum(e, ta, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
        rq_attr_int(e, ta, "Cryptographic Length", 128);
        rq_attr_text(e, ta, "x-custodian", "vault-A");
        ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
        assert_ok(bi);
        size_t n = 0;
        const char **ids = uids_of(e, bi, &n);
        assert_int_equal(n, 3);
        assert_string_equal(ttlv_text(k_attr(e, ids[2], "x-custodian")), "vault-A");
        bi = join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, ids, 3);
        assert_ok(bi);
        const char *k = kms_arena_strdup(A, rs_uid(bi));
        assert_int_equal(material(e, k)->v.bytes.len, 16);
        /* The joined key works as an AES key. */
        assert_int_equal(k_attr(e, k, "Cryptographic Length")->v.i32, 128);
    }
    /* Secret Data, split and joined. */
    ttlv_item_t *ta = NULL;
    ttlv_item_t *m = create_split(e, NULL, KMIP_OBJECT_TYPE_SECRET_DATA, 2, 2,
                                  KMIP_SPLIT_KEY_METHOD_XOR, &ta);
    rq_attr_int(e, ta, "Cryptographic Length", 160);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    size_t n = 0;
    const char **ids = uids_of(e, bi, &n);
    assert_ok(join(e, KMIP_OBJECT_TYPE_SECRET_DATA, ids, 2));
}

static void test_split_refusals(void **state)
{
    kenv_t *e = *state;
    const char *key = k_create_aes(e, NULL);
#define CS(uid, type, parts, t, method) \
    rs_item(kenv_call(e, create_split(e, uid, type, parts, t, method, NULL)), 0)
    assert_fail(CS(key, KMIP_OBJECT_TYPE_PRIVATE_KEY, 3, 2,
                   KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8),
                KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    assert_fail(CS(key, KMIP_OBJECT_TYPE_SECRET_DATA, 3, 2,
                   KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(CS(key, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 3, 4,
                   KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(CS(key, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 3, 2, KMIP_SPLIT_KEY_METHOD_XOR),
                KMIP_RESULT_REASON_INVALID_FIELD);
    assert_fail(CS("nope", KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 3, 2,
                   KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* A new key without a length. */
    assert_fail(CS(NULL, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 3, 2,
                   KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8),
                KMIP_RESULT_REASON_INVALID_FIELD);
    /* Nothing was stored by the refusals. */
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_LOCATE);
    rq_attr_enum(e, p, "Object Type", KMIP_OBJECT_TYPE_SPLIT_KEY);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    assert_null(ttlv_find(rs_payload(bi), KMIP_TAG_UNIQUE_IDENTIFIER));
}

static void test_split_keeps_the_export_policy(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *ta = rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    attr_bool(e, ta, "Sensitive", true);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    const char *key = kms_arena_strdup(A, rs_uid(bi));
    bi = CS(key, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, 2, 2, KMIP_SPLIT_KEY_METHOD_XOR);
    assert_ok(bi);
    size_t n = 0;
    const char **ids = uids_of(e, bi, &n);
    /* A part of a Sensitive key is Sensitive: no plain Get. */
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, ids[0]), KMIP_RESULT_REASON_PERMISSION_DENIED);
    bi = join(e, KMIP_OBJECT_TYPE_SYMMETRIC_KEY, ids, 2);
    assert_ok(bi);
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, rs_uid(bi)), KMIP_RESULT_REASON_PERMISSION_DENIED);
}

/* Register a Split Key and a PGP Key; Get gives them back. */
static void test_register_split_and_pgp(void **state)
{
    kenv_t *e = *state;
    uint8_t part[32];
    RAND_bytes(part, sizeof part);
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SPLIT_KEY);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *sk = ttlv_new_struct(A, p, KMIP_TAG_SPLIT_KEY);
    ttlv_new_int(A, sk, KMIP_TAG_SPLIT_KEY_PARTS, 3);
    ttlv_new_int(A, sk, KMIP_TAG_KEY_PART_IDENTIFIER, 2);
    ttlv_new_int(A, sk, KMIP_TAG_SPLIT_KEY_THRESHOLD, 2);
    ttlv_new_enum(A, sk, KMIP_TAG_SPLIT_KEY_METHOD, KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_8);
    ttlv_item_t *kb = ttlv_new_struct(A, sk, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_new_bytes(A, ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL, part,
                   sizeof part);
    ttlv_new_enum(A, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    ttlv_new_int(A, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    const char *id = kms_arena_strdup(A, rs_uid(bi));
    ttlv_item_t *g = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(g);
    ttlv_item_t *got = ttlv_find(rs_payload(g), KMIP_TAG_SPLIT_KEY);
    assert_non_null(got);
    assert_true(ttlv_equal(got, sk));
    /* Its Digest is the SHA-256 of the Key Material (the part's bytes). */
    {
        uint8_t want[32];
        assert_int_equal(crypto_sha256(part, sizeof part, want), 0);
        ttlv_item_t *dv = ttlv_find(k_attr(e, id, "Digest"), KMIP_TAG_DIGEST_VALUE);
        assert_int_equal(dv->v.bytes.len, 32);
        assert_memory_equal(dv->v.bytes.ptr, want, 32);
    }

    /* A Key Part Identifier beyond the parts is refused. */
    ttlv_find(sk, KMIP_TAG_KEY_PART_IDENTIFIER)->v.i32 = 4;
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);

    /* PGP Key: version and bytes, as sent. */
    uint8_t pgp[] = {0x99, 0x01, 0x0d, 0x04, 0x5a, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00};
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_PGP_KEY);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *pk = ttlv_new_struct(A, p, KMIP_TAG_PGP_KEY);
    ttlv_new_int(A, pk, KMIP_TAG_PGP_KEY_VERSION, 4);
    kb = ttlv_new_struct(A, pk, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_OPAQUE);
    ttlv_new_bytes(A, ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL, pgp,
                   sizeof pgp);
    bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    id = kms_arena_strdup(A, rs_uid(bi));
    g = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(g);
    assert_true(ttlv_equal(ttlv_find(rs_payload(g), KMIP_TAG_PGP_KEY), pk));
    assert_int_equal(ttlv_u32(k_attr(e, id, "Object Type")), KMIP_OBJECT_TYPE_PGP_KEY);
    /* Only as registered. */
    assert_fail(get_fmt(e, id, KMIP_KEY_FORMAT_TYPE_RAW),
                KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_round_trip),
        cmocka_unit_test(test_methods_refusals),
        cmocka_unit_test_setup_teardown(test_split_and_join_a_key, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_split_new_keys_every_method, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_split_refusals, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_split_keeps_the_export_policy, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_register_split_and_pgp, kenv_plain_setup,
                                        kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
