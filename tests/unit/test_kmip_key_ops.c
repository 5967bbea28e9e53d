/* tests/unit/test_kmip_key_ops.c: Register, Create Key Pair, Re-key and
 * Get-side conversion/wrapping through kmip_handle(), against a real
 * SQLite store in a temp directory and a real file-provider keyring.
 * Requests are built with the ttlv builders and encoded to bytes; answers
 * are decoded and checked field by field (and key material through
 * OpenSSL). Stored attributes (links, names) are read back from the store
 * directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "kmip/kmip_int.h" /* a request context for kmip_get_object */
#include "store/store.h"
#include "ttlv/ttlv.h"

static char dir[64];
static store_t *st;
static hsm_t *h;
static hsm_keyring_t *kr;
static kmip_server_t *srv;
static kms_arena_t *A; /* per test */

static int setup(void **state)
{
    (void)state;
    char path[128];
    kms_error_t err = {0};
    kms_buf_t w;
    snprintf(dir, sizeof(dir), "/tmp/kmsd-cops.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/master.key", dir);
    hsm_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = path;
    hc.slot = -1;
    if (hsm_init_master(&hc, NULL, &err) || hsm_open(&hc, &h, &err) ||
        hsm_keyring_new(h, &kr))
        return -1;
    kms_buf_init(&w, 0);
    if (hsm_keyring_generate(kr, 1, &w) || hsm_keyring_set_current(kr, 1))
        return -1;
    kms_buf_dispose(&w);
    snprintf(path, sizeof(path), "%s/kmsd.db", dir);
    store_options_t so = {.path = path};
    if (store_open(&so, &st))
        return -1;
    kmip_config_t kc = {.store = st, .keyring = kr, .vendor = "kmsd", .version = "test",
                        .access = KMIP_ACCESS_OPEN};
    return kmip_server_new(&kc, &srv);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    kmip_server_free(srv);
    store_close(st);
    hsm_keyring_free(kr);
    hsm_close(h);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int each_setup(void **state)
{
    (void)state;
    A = kms_arena_new(0);
    return A ? 0 : -1;
}

static int each_teardown(void **state)
{
    (void)state;
    kms_arena_free(A);
    A = NULL;
    return 0;
}

/* ------------------------------------------------------------ requests */
static ttlv_item_t *request(uint32_t op, ttlv_item_t **payload)
{
    ttlv_item_t *m = ttlv_new_struct(A, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *hd = ttlv_new_struct(A, m, KMIP_TAG_REQUEST_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(A, hd, KMIP_TAG_PROTOCOL_VERSION);
    ttlv_new_int(A, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
    ttlv_new_int(A, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, 1);
    ttlv_new_int(A, hd, KMIP_TAG_BATCH_COUNT, 1);
    ttlv_item_t *bi = ttlv_new_struct(A, m, KMIP_TAG_BATCH_ITEM);
    ttlv_new_enum(A, bi, KMIP_TAG_OPERATION, op);
    *payload = ttlv_new_struct(A, bi, KMIP_TAG_REQUEST_PAYLOAD);
    return m;
}

/* Send; returns the Result Status, *payload_out the Response Payload,
 * *reason_out the Result Reason (0 on success). */
/* The summary (what the log line and the audit record say) of the last
 * send_req. */
static kmip_summary_t g_sum;

static uint32_t send_req(ttlv_item_t *msg, ttlv_item_t **payload_out, uint32_t *reason_out)
{
    kms_buf_t req, resp;
    ttlv_item_t *root = NULL, *bi, *rs, *rr;
    kms_error_t terr;
    kmip_summary_t sum;
    kms_buf_init(&req, 1 << 24);
    kms_buf_init(&resp, 1 << 24);
    assert_int_equal(ttlv_encode(msg, &req), 0);
    assert_int_equal(kmip_handle(srv, NULL, req.data, req.len, &resp, &sum), 0);
    g_sum = sum;
    assert_int_equal(ttlv_decode(resp.data, resp.len, NULL, A, &root, &terr), 0);
    kms_buf_dispose_wipe(&req);
    kms_buf_dispose_wipe(&resp);
    bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM);
    assert_non_null(bi);
    rs = ttlv_find(bi, KMIP_TAG_RESULT_STATUS);
    rr = ttlv_find(bi, KMIP_TAG_RESULT_REASON);
    assert_non_null(rs);
    if (payload_out)
        *payload_out = ttlv_find(bi, KMIP_TAG_RESPONSE_PAYLOAD);
    if (reason_out)
        *reason_out = rr ? ttlv_u32(rr) : 0;
    if (ttlv_u32(rs) != KMIP_RESULT_STATUS_SUCCESS) {
        ttlv_item_t *msgi = ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE);
        if (msgi)
            fprintf(stderr, "  (server said: %s)\n", ttlv_text(msgi));
    }
    return ttlv_u32(rs);
}

static ttlv_item_t *attr(ttlv_item_t *parent, const char *name)
{
    ttlv_item_t *a = ttlv_new_struct(A, parent, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(A, a, KMIP_TAG_ATTRIBUTE_NAME, name);
    return a;
}

static void attr_enum(ttlv_item_t *ta, const char *name, uint32_t v)
{
    ttlv_new_enum(A, attr(ta, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}

static void attr_int(ttlv_item_t *ta, const char *name, int32_t v)
{
    ttlv_new_int(A, attr(ta, name), KMIP_TAG_ATTRIBUTE_VALUE, v);
}

static void attr_name(ttlv_item_t *ta, const char *v)
{
    ttlv_item_t *val = ttlv_new_struct(A, attr(ta, "Name"), KMIP_TAG_ATTRIBUTE_VALUE);
    ttlv_new_textz(A, val, KMIP_TAG_NAME_VALUE, v);
    ttlv_new_enum(A, val, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING);
}

static void attr_active(ttlv_item_t *ta)
{
    ttlv_new_datetime(A, attr(ta, "Activation Date"), KMIP_TAG_ATTRIBUTE_VALUE,
                      kms_now_us() / 1000000 - 60);
}

/* Register a key block object; returns the new id (arena) or NULL. */
static const char *register_keyblock(uint32_t type, uint32_t fmt, const uint8_t *km, size_t kmlen,
                                     uint32_t alg, int32_t bits, uint32_t mask, bool active,
                                     const char *name, uint32_t *status_out, uint32_t *reason_out)
{
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, type);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    if (mask)
        attr_int(ta, "Cryptographic Usage Mask", (int32_t)mask);
    if (active)
        attr_active(ta);
    if (name)
        attr_name(ta, name);
    ttlv_item_t *obj = ttlv_new_struct(A, p, crypto_object_tag(type));
    if (type == KMIP_OBJECT_TYPE_SECRET_DATA)
        ttlv_new_enum(A, obj, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_PASSWORD);
    ttlv_item_t *kb = ttlv_new_struct(A, obj, KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    ttlv_item_t *kv = ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE);
    ttlv_new_bytes(A, kv, KMIP_TAG_KEY_MATERIAL, km, kmlen);
    if (alg) {
        ttlv_new_enum(A, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg);
        ttlv_new_int(A, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, bits);
    }
    uint32_t reason = 0, status = send_req(m, &resp, &reason);
    if (status_out)
        *status_out = status;
    if (reason_out)
        *reason_out = reason;
    if (status != KMIP_RESULT_STATUS_SUCCESS)
        return NULL;
    ttlv_item_t *u = ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER);
    assert_non_null(u);
    return ttlv_text(u);
}

/* Get; returns the object structure (Symmetric Key...) or NULL on failure. */
static ttlv_item_t *get(const char *id, uint32_t fmt, ttlv_item_t *kws, uint32_t *reason_out)
{
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_GET, &p);
    ttlv_new_textz(A, p, KMIP_TAG_UNIQUE_IDENTIFIER, id);
    if (fmt)
        ttlv_new_enum(A, p, KMIP_TAG_KEY_FORMAT_TYPE, fmt);
    if (kws)
        ttlv_append(p, kws);
    uint32_t reason = 0;
    if (send_req(m, &resp, &reason) != KMIP_RESULT_STATUS_SUCCESS) {
        if (reason_out)
            *reason_out = reason;
        return NULL;
    }
    ttlv_item_t *ot = ttlv_find(resp, KMIP_TAG_OBJECT_TYPE);
    assert_non_null(ot);
    return ttlv_find(resp, crypto_object_tag(ttlv_u32(ot)));
}

static ttlv_item_t *key_block(ttlv_item_t *obj)
{
    assert_non_null(obj);
    ttlv_item_t *kb = ttlv_find(obj, KMIP_TAG_KEY_BLOCK);
    assert_non_null(kb);
    return kb;
}

static uint32_t kb_fmt(ttlv_item_t *obj)
{
    return ttlv_u32(ttlv_find(key_block(obj), KMIP_TAG_KEY_FORMAT_TYPE));
}

static ttlv_item_t *kb_material(ttlv_item_t *obj)
{
    ttlv_item_t *kv = ttlv_find(key_block(obj), KMIP_TAG_KEY_VALUE);
    assert_non_null(kv);
    ttlv_item_t *km = ttlv_find(kv, KMIP_TAG_KEY_MATERIAL);
    assert_non_null(km);
    return km;
}

/* Stored attribute values of `name` on object id, decoded. */
static size_t stored_attrs(const char *id, const char *name, ttlv_item_t **vals, size_t max)
{
    store_reader_t *r = NULL;
    store_object_t *o = NULL;
    size_t n = 0;
    assert_int_equal(store_reader_new(st, &r), 0);
    assert_int_equal(store_get(r, A, id, NULL, &o), 0);
    for (size_t i = 0; i < o->n_attrs; i++) {
        kms_error_t terr;
        if (strcmp(o->attrs[i].name, name) != 0 || n == max)
            continue;
        assert_int_equal(ttlv_decode(o->attrs[i].value, o->attrs[i].value_len, NULL, A, &vals[n], &terr), 0);
        n++;
    }
    store_reader_free(r);
    return n;
}

static const char *link_of(const char *id, uint32_t type)
{
    ttlv_item_t *v[8];
    size_t n = stored_attrs(id, "Link", v, 8);
    for (size_t i = 0; i < n; i++)
        if (ttlv_u32(ttlv_find(v[i], KMIP_TAG_LINK_TYPE)) == type)
            return ttlv_text(ttlv_find(v[i], KMIP_TAG_LINKED_OBJECT_IDENTIFIER));
    return NULL;
}

static uint32_t stored_state(const char *id)
{
    ttlv_item_t *v[1];
    assert_int_equal(stored_attrs(id, "State", v, 1), 1);
    return ttlv_u32(v[0]);
}

/* --------------------------------------------------------------- tests */
static const uint8_t aes256[32] = {
    0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1, 0x00,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

static void test_register_symmetric(void **state)
{
    (void)state;
    const char *id = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, aes256,
                                       32, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                                       KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, false, NULL, NULL, NULL);
    assert_non_null(id);
    ttlv_item_t *o = get(id, 0, NULL, NULL);
    assert_int_equal(kb_fmt(o), KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_item_t *km = kb_material(o);
    assert_int_equal(km->v.bytes.len, 32);
    assert_memory_equal(km->v.bytes.ptr, aes256, 32);
    assert_int_equal(ttlv_u32(ttlv_find(key_block(o), KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM)),
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    assert_int_equal(ttlv_find(key_block(o), KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32, 256);
    /* Transparent Symmetric Key on request. */
    o = get(id, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY, NULL, NULL);
    assert_int_equal(kb_fmt(o), KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY);
    ttlv_item_t *k = ttlv_find(kb_material(o), KMIP_TAG_KEY);
    assert_non_null(k);
    assert_memory_equal(k->v.bytes.ptr, aes256, 32);
    /* A symmetric key has no PKCS#8 form. */
    uint32_t reason = 0;
    assert_null(get(id, KMIP_KEY_FORMAT_TYPE_PKCS_8, NULL, &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
    /* Digest: SHA-256 of the key. */
    ttlv_item_t *dv[2];
    assert_int_equal(stored_attrs(id, "Digest", dv, 2), 1);
    uint8_t want[32];
    crypto_sha256(aes256, 32, want);
    ttlv_item_t *d = ttlv_find(dv[0], KMIP_TAG_DIGEST_VALUE);
    assert_non_null(d);
    assert_memory_equal(d->v.bytes.ptr, want, 32);
}

static void test_register_invalid(void **state)
{
    (void)state;
    uint32_t status = 0, reason = 0;
    /* Empty Key Material is no key. */
    assert_null(register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, aes256, 0,
                                  KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 0, 0, false, NULL, &status,
                                  &reason));
    assert_int_equal(status, KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* A stated length that disagrees with the material. */
    assert_null(register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, aes256, 32,
                                  KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 0, false, NULL, &status,
                                  &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* Garbage that claims to be a PKCS#8 private key. */
    assert_null(register_keyblock(KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_8, aes256, 32,
                                  KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, false, NULL, &status,
                                  &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
    /* A symmetric key in a private key format. */
    assert_null(register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_1, aes256,
                                  32, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0, false, NULL, &status,
                                  &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
}

/* Algorithm only in the Template-Attribute, length (maybe) in the Key Block. */
static uint32_t register_alg_in_template(int32_t kb_bits, uint32_t *reason, const char **id)
{
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_item_t *ta = ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    attr_enum(ta, "Cryptographic Algorithm", KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    ttlv_item_t *kb = ttlv_new_struct(A, ttlv_new_struct(A, p, KMIP_TAG_SYMMETRIC_KEY), KMIP_TAG_KEY_BLOCK);
    ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
    ttlv_new_bytes(A, ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL, aes256, 32);
    if (kb_bits)
        ttlv_new_int(A, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, kb_bits);
    uint32_t st_ = send_req(m, &resp, reason);
    if (st_ == KMIP_RESULT_STATUS_SUCCESS)
        *id = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
    return st_;
}

static void test_register_alg_from_template(void **state)
{
    (void)state;
    uint32_t reason = 0;
    const char *id = NULL;
    assert_int_equal(register_alg_in_template(0, &reason, &id), KMIP_RESULT_STATUS_SUCCESS);
    ttlv_item_t *o = get(id, 0, NULL, NULL);
    assert_int_equal(ttlv_u32(ttlv_find(key_block(o), KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM)),
                     KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    assert_int_equal(ttlv_find(key_block(o), KMIP_TAG_CRYPTOGRAPHIC_LENGTH)->v.i32, 256);
    assert_int_equal(register_alg_in_template(128, &reason, &id), KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
}

static EVP_PKEY *load_priv_der(uint32_t fmt, const ttlv_item_t *km)
{
    EVP_PKEY *k = NULL;
    kms_error_t e = {0};
    assert_int_equal(km->type, TTLV_BYTE_STRING);
    assert_int_equal(crypto_pkey_load(fmt, true, km->v.bytes.ptr, km->v.bytes.len, &k, &e), 0);
    return k;
}

static void test_register_rsa_private_formats(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    kms_secret_t *pkcs1 = NULL;
    kms_error_t e = {0};
    assert_non_null(k);
    assert_int_equal(crypto_pkey_export(k, KMIP_KEY_FORMAT_TYPE_PKCS_1, true, &pkcs1, &e), 0);
    const char *id = register_keyblock(KMIP_OBJECT_TYPE_PRIVATE_KEY, KMIP_KEY_FORMAT_TYPE_PKCS_1,
                                       pkcs1->data, pkcs1->len, KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048,
                                       KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN, false, NULL, NULL, NULL);
    assert_non_null(id);
    /* Default: the registered format, byte for byte. */
    ttlv_item_t *o = get(id, 0, NULL, NULL);
    assert_int_equal(kb_fmt(o), KMIP_KEY_FORMAT_TYPE_PKCS_1);
    assert_int_equal(kb_material(o)->v.bytes.len, pkcs1->len);
    assert_memory_equal(kb_material(o)->v.bytes.ptr, pkcs1->data, pkcs1->len);
    /* PKCS#8 on request: the same key for OpenSSL. */
    o = get(id, KMIP_KEY_FORMAT_TYPE_PKCS_8, NULL, NULL);
    assert_int_equal(kb_fmt(o), KMIP_KEY_FORMAT_TYPE_PKCS_8);
    EVP_PKEY *k8 = load_priv_der(KMIP_KEY_FORMAT_TYPE_PKCS_8, kb_material(o));
    assert_int_equal(EVP_PKEY_eq(k, k8), 1);
    /* Transparent RSA Private Key. */
    o = get(id, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, NULL, NULL);
    EVP_PKEY *kt = NULL;
    assert_int_equal(crypto_transparent_parse(
                         kb_material(o), KMIP_KEY_FORMAT_TYPE_TRANSPARENT_RSA_PRIVATE_KEY, &kt, &e),
                     0);
    assert_int_equal(EVP_PKEY_eq(k, kt), 1);
    /* A private key has no X.509 form. */
    uint32_t reason = 0;
    assert_null(get(id, KMIP_KEY_FORMAT_TYPE_X_509, NULL, &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k8);
    EVP_PKEY_free(kt);
    kms_secret_free(pkcs1);
}

/* A self-signed certificate for key k: serial 42, CN=kmsd test, one DNS
 * alternative name given as raw bytes (so that malformed ones can be made). */
static X509 *self_signed(EVP_PKEY *k, const char *dns, size_t dns_len)
{
    X509 *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"kmsd test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    assert_true(ASN1_STRING_set(ia5, dns, (int)dns_len));
    GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(gens, g);
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(gens);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    return x;
}

/* A new P-256 key's self-signed certificate (as self_signed) and its DER
 * in *der_out (OPENSSL_free) of *len_out bytes. */
static X509 *new_cert(const char *dns, size_t dns_len, unsigned char **der_out, int *len_out)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
    assert_non_null(k);
    X509 *x = self_signed(k, dns, dns_len);
    EVP_PKEY_free(k);
    *der_out = NULL;
    *len_out = i2d_X509(x, der_out);
    assert_true(*len_out > 0);
    return x;
}

/* Register a certificate; its id, or NULL with *reason_out (may be NULL). */
static const char *register_cert(const unsigned char *der, size_t len, uint32_t *reason_out)
{
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_CERTIFICATE);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *c = ttlv_new_struct(A, p, KMIP_TAG_CERTIFICATE);
    ttlv_new_enum(A, c, KMIP_TAG_CERTIFICATE_TYPE, KMIP_CERTIFICATE_TYPE_X_509);
    ttlv_new_bytes(A, c, KMIP_TAG_CERTIFICATE_VALUE, der, len);
    if (send_req(m, &resp, reason_out) != KMIP_RESULT_STATUS_SUCCESS)
        return NULL;
    return ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
}

static void test_register_other_objects(void **state)
{
    (void)state;
    ttlv_item_t *p, *resp;
    /* Secret Data. */
    static const uint8_t pw[] = "correct horse battery staple";
    const char *sid = register_keyblock(KMIP_OBJECT_TYPE_SECRET_DATA, KMIP_KEY_FORMAT_TYPE_OPAQUE, pw,
                                        sizeof(pw) - 1, 0, 0, KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY,
                                        false, NULL, NULL, NULL);
    assert_non_null(sid);
    ttlv_item_t *o = get(sid, 0, NULL, NULL);
    assert_int_equal(ttlv_u32(ttlv_find(o, KMIP_TAG_SECRET_DATA_TYPE)), KMIP_SECRET_DATA_TYPE_PASSWORD);
    assert_int_equal(kb_fmt(o), KMIP_KEY_FORMAT_TYPE_OPAQUE);
    assert_int_equal(kb_material(o)->v.bytes.len, sizeof(pw) - 1);
    assert_memory_equal(kb_material(o)->v.bytes.ptr, pw, sizeof(pw) - 1);

    /* Opaque Object. */
    static const uint8_t blob[] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01};
    ttlv_item_t *m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_OPAQUE_DATA);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *oo = ttlv_new_struct(A, p, KMIP_TAG_OPAQUE_OBJECT);
    ttlv_new_enum(A, oo, KMIP_TAG_OPAQUE_DATA_TYPE, KMIP_OPAQUE_DATA_TYPE_NONE);
    ttlv_new_bytes(A, oo, KMIP_TAG_OPAQUE_DATA_VALUE, blob, sizeof(blob));
    assert_int_equal(send_req(m, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
    const char *oid = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
    o = get(oid, 0, NULL, NULL);
    assert_non_null(o);
    ttlv_item_t *ov = ttlv_find(o, KMIP_TAG_OPAQUE_DATA_VALUE);
    assert_int_equal(ov->v.bytes.len, sizeof(blob));
    assert_memory_equal(ov->v.bytes.ptr, blob, sizeof(blob));

    /* Certificate: a self-signed one made here with OpenSSL. */
    unsigned char *der = NULL;
    int dlen = 0;
    X509 *x = new_cert("kms.example.org", 15, &der, &dlen);
    const char *cid = register_cert(der, (size_t)dlen, NULL);
    assert_non_null(cid);
    o = get(cid, 0, NULL, NULL);
    assert_non_null(o);
    ttlv_item_t *cv = ttlv_find(o, KMIP_TAG_CERTIFICATE_VALUE);
    assert_int_equal(cv->v.bytes.len, (size_t)dlen);
    assert_memory_equal(cv->v.bytes.ptr, der, (size_t)dlen);
    /* Attributes derived from the certificate. */
    ttlv_item_t *v[2];
    assert_int_equal(stored_attrs(cid, "X.509 Certificate Subject", v, 2), 1);
    const unsigned char *nder = NULL;
    size_t nlen = 0;
    X509_NAME_get0_der(X509_get_subject_name(x), &nder, &nlen);
    ttlv_item_t *sdn = ttlv_find(v[0], KMIP_TAG_SUBJECT_DISTINGUISHED_NAME);
    assert_non_null(sdn);
    assert_int_equal(sdn->v.bytes.len, nlen);
    assert_memory_equal(sdn->v.bytes.ptr, nder, nlen);
    assert_non_null(ttlv_find(v[0], KMIP_TAG_SUBJECT_ALTERNATIVE_NAME));
    assert_int_equal(stored_attrs(cid, "X.509 Certificate Identifier", v, 2), 1);
    ttlv_item_t *sn = ttlv_find(v[0], KMIP_TAG_CERTIFICATE_SERIAL_NUMBER);
    assert_int_equal(sn->v.bytes.len, 1);
    assert_int_equal(sn->v.bytes.ptr[0], 42);
    assert_int_equal(stored_attrs(cid, "Certificate Subject", v, 2), 1);
    assert_string_equal(ttlv_text(ttlv_find(v[0], KMIP_TAG_CERTIFICATE_SUBJECT_DISTINGUISHED_NAME)),
                        "CN=kmsd test");
    assert_string_equal(ttlv_text(ttlv_find(v[0], KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME)),
                        "kms.example.org");
    assert_int_equal(stored_attrs(cid, "Digital Signature Algorithm", v, 2), 1);
    assert_int_equal(ttlv_u32(v[0]), KMIP_DIGITAL_SIGNATURE_ALGORITHM_ECDSA_WITH_SHA256);
    assert_int_equal(stored_attrs(cid, "Certificate Length", v, 2), 1);
    assert_int_equal(v[0]->v.i32, dlen);
    /* A truncated certificate is refused. */
    uint32_t reason = 0;
    assert_null(register_cert(der, (size_t)dlen - 10, &reason));
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
    OPENSSL_free(der);
    X509_free(x);
}

/* A certificate whose DNS name holds a NUL registers, and the object can
 * be read again afterwards: the name is kept as DER, not turned into a
 * Certificate Subject Text String that the object's own load would refuse
 * to decode. */
static void test_register_cert_name_not_text(void **state)
{
    (void)state;
    unsigned char *der = NULL;
    int dlen = 0;
    X509 *x = new_cert("bank.example\0.evil.example", 26, &der, &dlen);
    const char *cid = register_cert(der, (size_t)dlen, NULL);
    assert_non_null(cid);
    ttlv_item_t *o = get(cid, 0, NULL, NULL);
    assert_non_null(o);
    ttlv_item_t *v[2];
    assert_int_equal(stored_attrs(cid, "X.509 Certificate Subject", v, 2), 1);
    assert_non_null(ttlv_find(v[0], KMIP_TAG_SUBJECT_ALTERNATIVE_NAME));
    assert_int_equal(stored_attrs(cid, "Certificate Subject", v, 2), 1);
    assert_null(ttlv_find(v[0], KMIP_TAG_CERTIFICATE_SUBJECT_ALTERNATIVE_NAME));
    OPENSSL_free(der);
    X509_free(x);
}

/* Create Key Pair; returns status; ids in *priv, *pub. */
static uint32_t create_key_pair(uint32_t alg, int32_t bits, uint32_t curve, const char **priv,
                                const char **pub, uint32_t *reason)
{
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_CREATE_KEY_PAIR, &p);
    ttlv_item_t *common = ttlv_new_struct(A, p, KMIP_TAG_COMMON_TEMPLATE_ATTRIBUTE);
    attr_enum(common, "Cryptographic Algorithm", alg);
    if (bits)
        attr_int(common, "Cryptographic Length", bits);
    if (curve) {
        ttlv_item_t *v = ttlv_new_struct(A, attr(common, "Cryptographic Domain Parameters"),
                                         KMIP_TAG_ATTRIBUTE_VALUE);
        ttlv_new_enum(A, v, KMIP_TAG_RECOMMENDED_CURVE, curve);
    }
    ttlv_item_t *tp = ttlv_new_struct(A, p, KMIP_TAG_PRIVATE_KEY_TEMPLATE_ATTRIBUTE);
    attr_int(tp, "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN);
    ttlv_item_t *tq = ttlv_new_struct(A, p, KMIP_TAG_PUBLIC_KEY_TEMPLATE_ATTRIBUTE);
    attr_int(tq, "Cryptographic Usage Mask", KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY);
    uint32_t st_ = send_req(m, &resp, reason);
    if (st_ == KMIP_RESULT_STATUS_SUCCESS) {
        *priv = ttlv_text(ttlv_find(resp, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER));
        *pub = ttlv_text(ttlv_find(resp, KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER));
        assert_non_null(*priv);
        assert_non_null(*pub);
    }
    return st_;
}

static void sign_verify(EVP_PKEY *priv, EVP_PKEY *pub)
{
    uint8_t sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, priv), 1);
    assert_int_equal(EVP_DigestSign(m, sig, &siglen, (const uint8_t *)"msg", 3), 1);
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(m, sig, siglen, (const uint8_t *)"msg", 3), 1);
    EVP_MD_CTX_free(m);
}

static void check_pair(const char *priv, const char *pub, uint32_t priv_fmt, uint32_t pub_fmt,
                       int bits)
{
    kms_error_t e = {0};
    ttlv_item_t *o = get(priv, 0, NULL, NULL);
    assert_int_equal(kb_fmt(o), priv_fmt);
    EVP_PKEY *k = load_priv_der(priv_fmt, kb_material(o));
    assert_int_equal(EVP_PKEY_get_bits(k), bits);
    o = get(pub, 0, NULL, NULL);
    assert_int_equal(kb_fmt(o), pub_fmt);
    EVP_PKEY *q = NULL;
    ttlv_item_t *km = kb_material(o);
    assert_int_equal(crypto_pkey_load(pub_fmt, false, km->v.bytes.ptr, km->v.bytes.len, &q, &e), 0);
    sign_verify(k, q);
    /* Linked both ways. */
    const char *l = link_of(priv, KMIP_LINK_TYPE_PUBLIC_KEY_LINK);
    assert_non_null(l);
    assert_string_equal(l, pub);
    l = link_of(pub, KMIP_LINK_TYPE_PRIVATE_KEY_LINK);
    assert_non_null(l);
    assert_string_equal(l, priv);
    EVP_PKEY_free(k);
    EVP_PKEY_free(q);
}

static void test_create_key_pair_rsa(void **state)
{
    (void)state;
    const char *priv = NULL, *pub = NULL;
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 2048, 0, &priv, &pub, NULL),
                     KMIP_RESULT_STATUS_SUCCESS);
    check_pair(priv, pub, KMIP_KEY_FORMAT_TYPE_PKCS_1, KMIP_KEY_FORMAT_TYPE_PKCS_1, 2048);
    /* PKCS#8 of the same private key on request. */
    ttlv_item_t *o = get(priv, KMIP_KEY_FORMAT_TYPE_PKCS_8, NULL, NULL);
    EVP_PKEY *k = load_priv_der(KMIP_KEY_FORMAT_TYPE_PKCS_8, kb_material(o));
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    EVP_PKEY_free(k);
}

static void test_create_key_pair_ec(void **state)
{
    (void)state;
    const char *priv = NULL, *pub = NULL;
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, KMIP_RECOMMENDED_CURVE_P_256,
                                     &priv, &pub, NULL),
                     KMIP_RESULT_STATUS_SUCCESS);
    check_pair(priv, pub, KMIP_KEY_FORMAT_TYPE_PKCS_8, KMIP_KEY_FORMAT_TYPE_X_509, 256);
    /* Transparent ECDSA public key: curve + uncompressed point. */
    ttlv_item_t *o = get(pub, KMIP_KEY_FORMAT_TYPE_TRANSPARENT_ECDSA_PUBLIC_KEY, NULL, NULL);
    ttlv_item_t *km = kb_material(o);
    assert_int_equal(ttlv_u32(ttlv_find(km, KMIP_TAG_RECOMMENDED_CURVE)), KMIP_RECOMMENDED_CURVE_P_256);
    ttlv_item_t *q = ttlv_find(km, KMIP_TAG_Q_STRING);
    assert_int_equal(q->v.bytes.len, 65);
    assert_int_equal(q->v.bytes.ptr[0], 0x04);
}

static void test_create_key_pair_invalid(void **state)
{
    (void)state;
    const char *priv = NULL, *pub = NULL;
    uint32_t reason = 0;
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA, 512, 0, &priv, &pub, &reason),
                     KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 0, &priv, &pub, &reason),
                     KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_rekey(void **state)
{
    (void)state;
    const char *old = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW,
                                        aes256, 32, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT |
                                            KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT,
                                        true, "rekey-me", NULL, NULL);
    assert_non_null(old);
    assert_int_equal(stored_state(old), KMIP_STATE_ACTIVE);
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REKEY, &p);
    ttlv_new_textz(A, p, KMIP_TAG_UNIQUE_IDENTIFIER, old);
    ttlv_new_interval(A, p, KMIP_TAG_OFFSET, 0);
    assert_int_equal(send_req(m, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
    const char *nid = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
    assert_non_null(nid);
    assert_string_not_equal(nid, old);
    assert_string_equal(g_sum.object_id, nid); /* the log and audit name the new key */
    /* New material of the same kind. */
    ttlv_item_t *o = get(nid, 0, NULL, NULL);
    ttlv_item_t *km = kb_material(o);
    assert_int_equal(km->v.bytes.len, 32);
    assert_memory_not_equal(km->v.bytes.ptr, aes256, 32);
    /* Old key material unchanged. */
    o = get(old, 0, NULL, NULL);
    assert_memory_equal(kb_material(o)->v.bytes.ptr, aes256, 32);
    /* Links, name moved, usage mask copied, new key Active (Offset 0). */
    assert_string_equal(link_of(nid, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK), old);
    assert_string_equal(link_of(old, KMIP_LINK_TYPE_REPLACEMENT_OBJECT_LINK), nid);
    ttlv_item_t *v[4];
    assert_int_equal(stored_attrs(old, "Name", v, 4), 0);
    assert_int_equal(stored_attrs(nid, "Name", v, 4), 1);
    assert_string_equal(ttlv_text(ttlv_find(v[0], KMIP_TAG_NAME_VALUE)), "rekey-me");
    assert_int_equal(stored_attrs(nid, "Cryptographic Usage Mask", v, 4), 1);
    assert_int_equal(v[0]->v.i32, KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT);
    assert_int_equal(stored_state(nid), KMIP_STATE_ACTIVE);
    assert_int_equal(stored_state(old), KMIP_STATE_ACTIVE);
    /* Without an Offset the dates are copied: re-key the new key again. */
    int64_t at_new;
    assert_int_equal(stored_attrs(nid, "Activation Date", v, 4), 1);
    at_new = v[0]->v.i64;
    m = request(KMIP_OPERATION_REKEY, &p);
    ttlv_new_textz(A, p, KMIP_TAG_UNIQUE_IDENTIFIER, nid);
    assert_int_equal(send_req(m, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
    const char *third = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
    assert_int_equal(stored_attrs(third, "Activation Date", v, 4), 1);
    assert_int_equal(v[0]->v.i64, at_new);
    /* With an Offset the dates move with the new Activation Date. */
    {
        int64_t now = kms_now_us() / 1000000;
        ttlv_item_t *pp, *m2 = request(KMIP_OPERATION_REGISTER, &pp);
        ttlv_new_enum(A, pp, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
        ttlv_item_t *ta = ttlv_new_struct(A, pp, KMIP_TAG_TEMPLATE_ATTRIBUTE);
        ttlv_new_datetime(A, attr(ta, "Activation Date"), KMIP_TAG_ATTRIBUTE_VALUE, now - 60);
        ttlv_new_datetime(A, attr(ta, "Deactivation Date"), KMIP_TAG_ATTRIBUTE_VALUE, now + 3600);
        ttlv_item_t *sk = ttlv_new_struct(A, pp, KMIP_TAG_SYMMETRIC_KEY);
        ttlv_item_t *kb = ttlv_new_struct(A, sk, KMIP_TAG_KEY_BLOCK);
        ttlv_new_enum(A, kb, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
        ttlv_new_bytes(A, ttlv_new_struct(A, kb, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL, aes256, 16);
        ttlv_new_enum(A, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
        ttlv_new_int(A, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 128);
        assert_int_equal(send_req(m2, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
        const char *k1 = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
        m2 = request(KMIP_OPERATION_REKEY, &pp);
        ttlv_new_textz(A, pp, KMIP_TAG_UNIQUE_IDENTIFIER, k1);
        ttlv_new_interval(A, pp, KMIP_TAG_OFFSET, 1000);
        assert_int_equal(send_req(m2, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
        const char *k2 = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
        assert_int_equal(stored_attrs(k2, "Activation Date", v, 4), 1);
        int64_t at2 = v[0]->v.i64;
        assert_true(at2 >= now + 1000 && at2 <= now + 1000 + 30);
        assert_int_equal(stored_attrs(k2, "Deactivation Date", v, 4), 1);
        assert_int_equal(v[0]->v.i64, at2 + 3660);
        assert_int_equal(stored_state(k2), KMIP_STATE_PRE_ACTIVE);
        assert_int_equal(stored_attrs(k2, "Cryptographic Length", v, 4), 1);
        assert_int_equal(v[0]->v.i32, 128);
    }
    /* Re-key of something that is not a symmetric key. */
    static const uint8_t pw[] = "pw";
    const char *sid = register_keyblock(KMIP_OBJECT_TYPE_SECRET_DATA, KMIP_KEY_FORMAT_TYPE_OPAQUE, pw, 2,
                                        0, 0, 0, false, NULL, NULL, NULL);
    uint32_t reason = 0;
    m = request(KMIP_OPERATION_REKEY, &p);
    ttlv_new_textz(A, p, KMIP_TAG_UNIQUE_IDENTIFIER, sid);
    assert_int_equal(send_req(m, &resp, &reason), KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
}

static void test_rekey_key_pair(void **state)
{
    (void)state;
    const char *priv = NULL, *pub = NULL;
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 0, KMIP_RECOMMENDED_CURVE_P_384,
                                     &priv, &pub, NULL),
                     KMIP_RESULT_STATUS_SUCCESS);
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REKEY_KEY_PAIR, &p);
    ttlv_new_textz(A, p, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER, priv);
    assert_int_equal(send_req(m, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
    const char *npriv = ttlv_text(ttlv_find(resp, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER));
    const char *npub = ttlv_text(ttlv_find(resp, KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER));
    assert_non_null(npriv);
    assert_non_null(npub);
    assert_string_equal(g_sum.object_id, npriv);
    assert_string_not_equal(npriv, priv);
    assert_string_not_equal(npub, pub);
    /* A working pair on the same curve, linked to each other... */
    check_pair(npriv, npub, KMIP_KEY_FORMAT_TYPE_PKCS_8, KMIP_KEY_FORMAT_TYPE_X_509, 384);
    /* ...and to the halves they replace; usage masks carried over. */
    assert_string_equal(link_of(npriv, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK), priv);
    assert_string_equal(link_of(npub, KMIP_LINK_TYPE_REPLACED_OBJECT_LINK), pub);
    assert_string_equal(link_of(priv, KMIP_LINK_TYPE_REPLACEMENT_OBJECT_LINK), npriv);
    assert_string_equal(link_of(pub, KMIP_LINK_TYPE_REPLACEMENT_OBJECT_LINK), npub);
    ttlv_item_t *v[2];
    assert_int_equal(stored_attrs(npriv, "Cryptographic Usage Mask", v, 2), 1);
    assert_int_equal(v[0]->v.i32, KMIP_CRYPTOGRAPHIC_USAGE_MASK_SIGN);
    assert_int_equal(stored_attrs(npub, "Cryptographic Usage Mask", v, 2), 1);
    assert_int_equal(v[0]->v.i32, KMIP_CRYPTOGRAPHIC_USAGE_MASK_VERIFY);
    /* The new private key differs from the old. */
    ttlv_item_t *o1 = get(priv, 0, NULL, NULL), *o2 = get(npriv, 0, NULL, NULL);
    ttlv_item_t *k1 = kb_material(o1), *k2 = kb_material(o2);
    assert_false(k1->v.bytes.len == k2->v.bytes.len &&
                 memcmp(k1->v.bytes.ptr, k2->v.bytes.ptr, k1->v.bytes.len) == 0);
    /* A public key is not something to re-key as a pair. */
    uint32_t reason = 0;
    m = request(KMIP_OPERATION_REKEY_KEY_PAIR, &p);
    ttlv_new_textz(A, p, KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER, npub);
    assert_int_equal(send_req(m, &resp, &reason), KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_INVALID_FIELD);
}

/* KMIP 1.1 test case 14.1: AES key wrap of a 128-bit key, No Encoding.
 * Uses the RFC 3394 4.1 key and KEK, so the wrapped bytes are known. */
static ttlv_item_t *kws_new(const char *kek_id, uint32_t mode, uint32_t enc)
{
    ttlv_item_t *kws = ttlv_new_struct(A, NULL, KMIP_TAG_KEY_WRAPPING_SPECIFICATION);
    ttlv_new_enum(A, kws, KMIP_TAG_WRAPPING_METHOD, KMIP_WRAPPING_METHOD_ENCRYPT);
    ttlv_item_t *eki = ttlv_new_struct(A, kws, KMIP_TAG_ENCRYPTION_KEY_INFORMATION);
    ttlv_new_textz(A, eki, KMIP_TAG_UNIQUE_IDENTIFIER, kek_id);
    ttlv_item_t *cp = ttlv_new_struct(A, eki, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
    ttlv_new_enum(A, cp, KMIP_TAG_BLOCK_CIPHER_MODE, mode);
    if (enc)
        ttlv_new_enum(A, kws, KMIP_TAG_ENCODING_OPTION, enc);
    return kws;
}

static void test_get_wrapped(void **state)
{
    (void)state;
    static const uint8_t kek[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t data[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                     0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    static const uint8_t want[24] = {0x1F, 0xA6, 0x8B, 0x0A, 0x81, 0x12, 0xB4, 0x47,
                                     0xAE, 0xF3, 0x4B, 0xD8, 0xFB, 0x5A, 0x7B, 0x82,
                                     0x9D, 0x3E, 0x86, 0x23, 0x71, 0xD2, 0xCF, 0xE5};
    const char *kid = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, kek, 16,
                                        KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY |
                                            KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY,
                                        true, NULL, NULL, NULL);
    const char *did = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, data, 16,
                                        KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, false, NULL, NULL, NULL);
    assert_non_null(kid);
    assert_non_null(did);
    ttlv_item_t *o = get(did, 0, kws_new(kid, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP,
                                         KMIP_ENCODING_OPTION_NO_ENCODING), NULL);
    assert_non_null(o);
    assert_string_equal(g_sum.object_id, did); /* the key got, not the wrapping key */
    ttlv_item_t *kb = key_block(o);
    ttlv_item_t *kv = ttlv_find(kb, KMIP_TAG_KEY_VALUE);
    assert_int_equal(kv->type, TTLV_BYTE_STRING);
    assert_int_equal(kv->v.bytes.len, 24);
    assert_memory_equal(kv->v.bytes.ptr, want, 24);
    ttlv_item_t *kwd = ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA);
    assert_non_null(kwd);
    assert_int_equal(ttlv_u32(ttlv_find(kwd, KMIP_TAG_WRAPPING_METHOD)), KMIP_WRAPPING_METHOD_ENCRYPT);
    assert_string_equal(ttlv_text(ttlv_find(ttlv_find(kwd, KMIP_TAG_ENCRYPTION_KEY_INFORMATION),
                                            KMIP_TAG_UNIQUE_IDENTIFIER)), kid);

    /* Register the wrapped key block: unwrapped with the KEK on the way in. */
    ttlv_item_t *p, *resp = NULL;
    ttlv_item_t *m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *sk = ttlv_new_struct(A, p, KMIP_TAG_SYMMETRIC_KEY);
    ttlv_append(sk, ttlv_clone(A, kb));
    assert_int_equal(send_req(m, &resp, NULL), KMIP_RESULT_STATUS_SUCCESS);
    const char *rid = ttlv_text(ttlv_find(resp, KMIP_TAG_UNIQUE_IDENTIFIER));
    /* the log and the audit name the new object, not the key that unwrapped it */
    assert_string_equal(g_sum.object_id, rid);
    o = get(rid, 0, NULL, NULL);
    assert_memory_equal(kb_material(o)->v.bytes.ptr, data, 16);

    /* A wrapped Register whose bytes were tampered with fails. */
    m = request(KMIP_OPERATION_REGISTER, &p);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
    sk = ttlv_new_struct(A, p, KMIP_TAG_SYMMETRIC_KEY);
    ttlv_item_t *kb2 = ttlv_clone(A, kb);
    ttlv_item_t *kv2 = ttlv_find(kb2, KMIP_TAG_KEY_VALUE);
    ((uint8_t *)kv2->v.bytes.ptr)[3] ^= 1;
    ttlv_append(sk, kb2);
    uint32_t reason = 0;
    assert_int_equal(send_req(m, &resp, &reason), KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(reason, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE);

    /* A KEK without Wrap Key in its usage mask is refused. */
    const char *weak = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, kek, 16,
                                         KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128,
                                         KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, true, NULL, NULL, NULL);
    reason = 0;
    assert_null(get(did, 0, kws_new(weak, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP,
                                    KMIP_ENCODING_OPTION_NO_ENCODING), &reason));
    assert_int_not_equal(reason, 0);
    /* A Pre-Active KEK is refused too. */
    const char *pre = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, kek, 16,
                                        KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY, false, NULL, NULL, NULL);
    reason = 0;
    assert_null(get(did, 0, kws_new(pre, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP,
                                    KMIP_ENCODING_OPTION_NO_ENCODING), &reason));
    assert_int_not_equal(reason, 0);

    /* RFC 5649 (padding) wraps a PKCS#1 private key, which NIST KW cannot. */
    const char *priv = NULL, *pub = NULL;
    assert_int_equal(create_key_pair(KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA, 256, 0, &priv, &pub, NULL),
                     KMIP_RESULT_STATUS_SUCCESS);
    o = get(priv, 0, kws_new(kid, KMIP_BLOCK_CIPHER_MODE_AES_KEY_WRAP_PADDING,
                             KMIP_ENCODING_OPTION_NO_ENCODING), NULL);
    assert_non_null(o);
    kv = ttlv_find(key_block(o), KMIP_TAG_KEY_VALUE);
    kms_secret_t *plain = NULL;
    assert_int_equal(
        crypto_aes_unwrap(kek, 16, true, kv->v.bytes.ptr, kv->v.bytes.len, &plain, NULL), 0);
    EVP_PKEY *k = NULL;
    kms_error_t e = {0};
    assert_int_equal(
        crypto_pkey_load(KMIP_KEY_FORMAT_TYPE_PKCS_8, true, plain->data, plain->len, &k, &e), 0);
    EVP_PKEY_free(k);
    kms_secret_free(plain);
}

/* kmip_get_object: the default (TTLV) encoding with an attribute
 * inside the wrapped Key Value, as in KMIP 1.1 test case 14.2. Called
 * with a request context of our own, on objects made through kmip_handle. */
static void test_get_object_ttlv_wrap(void **state)
{
    (void)state;
    static const uint8_t kek[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
    const char *kid = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, kek, 32,
                                        KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY, true, NULL, NULL, NULL);
    const char *did = register_keyblock(KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_KEY_FORMAT_TYPE_RAW, aes256,
                                        32, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256,
                                        KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, false, NULL, NULL, NULL);
    assert_non_null(kid);
    assert_non_null(did);
    kmip_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.srv = srv;
    ctx.arena = A;
    ctx.reader = kmip_thread_reader(srv);
    ctx.now = kms_now_us() / 1000000;
    assert_non_null(ctx.reader);
    kmip_obj_t *o = NULL;
    assert_int_equal(kmip_obj_load(&ctx, did, &o), 0);
    ttlv_item_t *kws = kws_new(kid, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP, 0);
    ttlv_new_textz(A, kws, KMIP_TAG_ATTRIBUTE_NAME, "Cryptographic Usage Mask");
    ttlv_item_t *parent = ttlv_new_struct(A, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
    assert_int_equal(kmip_get_object(&ctx, o, 0, 0, kws, parent), 0);
    ttlv_item_t *kb = ttlv_find(ttlv_find(parent, KMIP_TAG_SYMMETRIC_KEY), KMIP_TAG_KEY_BLOCK);
    ttlv_item_t *kv = ttlv_find(kb, KMIP_TAG_KEY_VALUE);
    assert_int_equal(kv->type, TTLV_BYTE_STRING);
    kms_secret_t *plain = NULL;
    assert_int_equal(
        crypto_aes_unwrap(kek, 32, false, kv->v.bytes.ptr, kv->v.bytes.len, &plain, NULL), 0);
    ttlv_item_t *dec = NULL;
    kms_error_t terr;
    assert_int_equal(ttlv_decode(plain->data, plain->len, NULL, A, &dec, &terr), 0);
    kms_secret_free(plain);
    assert_int_equal(dec->tag, KMIP_TAG_KEY_VALUE);
    assert_memory_equal(ttlv_find(dec, KMIP_TAG_KEY_MATERIAL)->v.bytes.ptr, aes256, 32);
    ttlv_item_t *at = ttlv_find(dec, KMIP_TAG_ATTRIBUTE);
    assert_non_null(at);
    assert_string_equal(ttlv_text(ttlv_find(at, KMIP_TAG_ATTRIBUTE_NAME)), "Cryptographic Usage Mask");
    assert_int_equal(ttlv_find(at, KMIP_TAG_ATTRIBUTE_VALUE)->v.i32, KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT);
    /* Compression is refused with its own reason. */
    parent = ttlv_new_struct(A, NULL, KMIP_TAG_RESPONSE_PAYLOAD);
    assert_true(kmip_get_object(&ctx, o, 0, 1, NULL, parent) < 0);
    assert_int_equal(ctx.err.reason, KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED);
    /* A key cannot wrap itself. */
    kmip_fail_clear(&ctx);
    kmip_obj_t *k = NULL;
    assert_int_equal(kmip_obj_load(&ctx, kid, &k), 0);
    assert_true(kmip_get_object(&ctx, k, 0, 0,
                                kws_new(kid, KMIP_BLOCK_CIPHER_MODE_NIST_KEY_WRAP, 0), parent) < 0);
    assert_int_equal(ctx.err.reason, KMIP_RESULT_REASON_INVALID_FIELD);
    for (size_t i = 0; i < ctx.n_owned; i++)
        kms_secret_free(ctx.owned[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_symmetric, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_register_invalid, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_register_alg_from_template, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_register_rsa_private_formats, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_register_other_objects, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_register_cert_name_not_text, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_create_key_pair_rsa, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_create_key_pair_ec, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_create_key_pair_invalid, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_rekey, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_rekey_key_pair, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_get_wrapped, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_get_object_ttlv_wrap, each_setup, each_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
