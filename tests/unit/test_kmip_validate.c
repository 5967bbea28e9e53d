/*
 * tests/unit/test_kmip_validate.c: the Validate operation against a real
 * store, with certificate chains made here with OpenSSL (a root, an
 * intermediate CA, an end entity; expired, not-yet-valid, forged and
 * malformed variants).
 *
 * Checks the Validity Indicator for each case (Valid only up to a trust
 * anchor: a root the tenant manages, or the issuing CA, which
 * test_kmip_certify.c covers; Unknown for a root sent by value or none;
 * Invalid for any failed check, outranking Unknown), revocation through
 * the objects' State, tenant isolation, and every refusal's Result Reason.
 */
#include "tests/unit/test_kmip_env.h"

#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

#define A (e->a)
#define DAY 86400

static const kmip_peer_t ALICE = {.cert_cn = "alice", .address = "127.0.0.1:1"};
static const kmip_peer_t BOB = {.cert_cn = "bob", .address = "127.0.0.1:2"};

/* The chain of one test: root -> inter -> leaf, each with its own key. */
typedef struct chain {
    EVP_PKEY *k_root, *k_inter, *k_leaf;
    X509 *root, *inter, *leaf;
} chain_t;

/* A certificate for `key` named `cn`, issued by `issuer` with `issuer_key`
 * (self-signed when issuer is NULL), valid [now + nb, now + na]. */
static X509 *mk_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                     int64_t nb, int64_t na)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    X509V3_CTX v3;
    X509_EXTENSION *ex;

    assert_non_null(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_set_subject_name(x, nm);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm);
    X509_set_pubkey(x, key);
    ASN1_TIME_set(X509_getm_notBefore(x), time(NULL) + nb);
    ASN1_TIME_set(X509_getm_notAfter(x), time(NULL) + na);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ex = X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    if (ca) {
        ex = X509V3_EXT_nconf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ex, -1);
        X509_EXTENSION_free(ex);
    }
    assert_true(X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0);
    X509_NAME_free(nm);
    return x;
}

static void chain_make(chain_t *c, int64_t leaf_nb, int64_t leaf_na, bool inter_ca)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &c->k_root), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &c->k_inter), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &c->k_leaf), 0);
    c->root = mk_cert("Test Root", c->k_root, NULL, NULL, true, -DAY, 3650 * DAY);
    c->inter = mk_cert("Test Intermediate", c->k_inter, c->root, c->k_root, inter_ca, -DAY,
                       1000 * DAY);
    c->leaf = mk_cert("app.example.com", c->k_leaf, c->inter, c->k_inter, false, leaf_nb, leaf_na);
}

static void chain_free(chain_t *c)
{
    X509_free(c->root);
    X509_free(c->inter);
    X509_free(c->leaf);
    EVP_PKEY_free(c->k_root);
    EVP_PKEY_free(c->k_inter);
    EVP_PKEY_free(c->k_leaf);
}

/* A Certificate structure holding x under `parent`. */
static void add_cert(kenv_t *e, ttlv_item_t *parent, X509 *x, uint32_t type)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    ttlv_item_t *c = ttlv_new_struct(A, parent, KMIP_TAG_CERTIFICATE);
    ttlv_new_enum(A, c, KMIP_TAG_CERTIFICATE_TYPE, type);
    ttlv_new_bytes(A, c, KMIP_TAG_CERTIFICATE_VALUE, der, (size_t)len);
    OPENSSL_free(der);
}

/* Register x as `who` (NULL: the open server's admin); its id. */
static const char *register_cert(kenv_t *e, const kmip_peer_t *who, X509 *x)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_REGISTER);
    ttlv_new_enum(A, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_CERTIFICATE);
    ttlv_new_struct(A, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    add_cert(e, p, x, KMIP_CERTIFICATE_TYPE_X_509);
    ttlv_item_t *bi = rs_item(kenv_call_peer(e, who, m), 0);
    assert_ok(bi);
    return rs_uid(bi);
}

/* Validate with certificates by value (NULL-terminated) and by id
 * (NULL-terminated) at `when` (0: no Validity Date); the batch item. */
static ttlv_item_t *validate_as(kenv_t *e, const kmip_peer_t *who, X509 *const *by_value,
                                const char *const *ids, int64_t when)
{
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    for (size_t i = 0; by_value && by_value[i]; i++)
        add_cert(e, p, by_value[i], KMIP_CERTIFICATE_TYPE_X_509);
    for (size_t i = 0; ids && ids[i]; i++)
        rq_uid(e, p, ids[i]);
    if (when)
        ttlv_new_datetime(A, p, KMIP_TAG_VALIDITY_DATE, when);
    return rs_item(kenv_call_peer(e, who, m), 0);
}

static ttlv_item_t *validate(kenv_t *e, X509 *const *by_value, const char *const *ids,
                             int64_t when)
{
    return validate_as(e, NULL, by_value, ids, when);
}

static uint32_t indicator(const ttlv_item_t *bi)
{
    assert_ok(bi);
    ttlv_item_t *v = ttlv_find(rs_payload(bi), KMIP_TAG_VALIDITY_INDICATOR);
    assert_non_null(v);
    return ttlv_u32(v);
}

#define VALID KMIP_VALIDITY_INDICATOR_VALID
#define INVALID KMIP_VALIDITY_INDICATOR_INVALID
#define UNKNOWN KMIP_VALIDITY_INDICATOR_UNKNOWN

/* A managed root anchors the chain; a root sent by value or none does not. */
static void test_validate_anchors(void **state)
{
    kenv_t *e = *state;
    chain_t c;
    chain_make(&c, -DAY, 365 * DAY, true);
    const char *root = register_cert(e, NULL, c.root);
    const char *leaf = register_cert(e, NULL, c.leaf);

    /* Order does not matter; by value and by id mix. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, NULL},
                                        (const char *[]){root, NULL}, 0)), VALID);
    assert_int_equal(indicator(validate(e, (X509 *[]){c.inter, NULL},
                                        (const char *[]){root, leaf, NULL}, 0)), VALID);
    /* The same root by value and by id counts once, as an anchor. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.root, c.leaf, c.inter, NULL},
                                        (const char *[]){root, NULL}, 0)), VALID);
    /* The root by value only: checked, but it anchors nothing. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, c.root, NULL}, NULL, 0)),
                     UNKNOWN);
    /* No root at all. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, NULL}, NULL, 0)), UNKNOWN);
    /* The managed root alone is a chain of one trust anchor. */
    assert_int_equal(indicator(validate(e, NULL, (const char *[]){root, NULL}, 0)), VALID);
    /* A chain with a gap (no intermediate) does not reach the root. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, NULL}, (const char *[]){root, NULL},
                                        0)),
                     INVALID);
    chain_free(&c);
}

/* The Validity Date against every certificate's validity period. */
static void test_validate_dates(void **state)
{
    kenv_t *e = *state;
    chain_t c;
    chain_make(&c, 10 * DAY, 20 * DAY, true);
    const char *root = register_cert(e, NULL, c.root);
    X509 *const vals[] = {c.leaf, c.inter, NULL};
    const char *const ids[] = {root, NULL};
    int64_t now = time(NULL);

    assert_int_equal(indicator(validate(e, vals, ids, 0)), INVALID); /* not yet valid */
    assert_int_equal(indicator(validate(e, vals, ids, now + 15 * DAY)), VALID);
    assert_int_equal(indicator(validate(e, vals, ids, now + 25 * DAY)), INVALID); /* expired */
    /* The root's own period counts too: it ends in ten years. */
    assert_int_equal(indicator(validate(e, NULL, ids, now + 3651 * DAY)), INVALID);
    /* An expired leaf under an unknown root is Invalid, not Unknown. */
    assert_int_equal(indicator(validate(e, vals, NULL, now + 25 * DAY)), INVALID);
    chain_free(&c);
}

/* Forged signatures, a non-CA intermediate, two chains in one request. */
static void test_validate_invalid(void **state)
{
    kenv_t *e = *state;
    chain_t c, d, noca;
    chain_make(&c, -DAY, 365 * DAY, true);
    chain_make(&d, -DAY, 365 * DAY, true);
    chain_make(&noca, -DAY, 365 * DAY, false);
    const char *root = register_cert(e, NULL, c.root);
    const char *noca_root = register_cert(e, NULL, noca.root);

    /* The leaf signed by a key other than its issuer's. */
    X509 *forged = mk_cert("app.example.com", c.k_leaf, c.inter, d.k_inter, false, -DAY, DAY);
    assert_int_equal(indicator(validate(e, (X509 *[]){forged, c.inter, NULL},
                                        (const char *[]){root, NULL}, 0)), INVALID);
    /* ... also when the chain has no anchor (Invalid outranks Unknown). */
    assert_int_equal(indicator(validate(e, (X509 *[]){forged, c.inter, NULL}, NULL, 0)), INVALID);
    /* A self-signed root whose self-signature is broken. */
    X509 *bad_root = X509_dup(c.root);
    const ASN1_BIT_STRING *sig = NULL;
    X509_get0_signature(&sig, NULL, bad_root);
    ((ASN1_BIT_STRING *)sig)->data[10] ^= 0x55;
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, bad_root, NULL}, NULL, 0)),
                     INVALID);
    /* The intermediate is not a CA. */
    assert_int_equal(indicator(validate(e, (X509 *[]){noca.leaf, noca.inter, NULL},
                                        (const char *[]){noca_root, NULL}, 0)), INVALID);
    /* Two chains: two end entities. */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, d.leaf, NULL},
                                        (const char *[]){root, NULL}, 0)), INVALID);
    /* A certificate the path does not use (another root). */
    assert_int_equal(indicator(validate(e, (X509 *[]){c.leaf, c.inter, d.root, NULL},
                                        (const char *[]){root, NULL}, 0)), INVALID);
    X509_free(forged);
    X509_free(bad_root);
    chain_free(&c);
    chain_free(&d);
    chain_free(&noca);
}

/* A revoked managed certificate makes the chain Invalid. */
static void test_validate_revoked(void **state)
{
    kenv_t *e = *state;
    chain_t c;
    chain_make(&c, -DAY, 365 * DAY, true);
    const char *root = register_cert(e, NULL, c.root);
    const char *inter = register_cert(e, NULL, c.inter);
    X509 *const vals[] = {c.leaf, NULL};
    const char *const ids[] = {root, inter, NULL};

    assert_int_equal(indicator(validate(e, vals, ids, 0)), VALID);
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, inter));
    assert_ok(k_revoke(e, inter, KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION));
    assert_int_equal(indicator(validate(e, vals, ids, 0)), INVALID);
    /* A compromised root (Pre-Active: Revoke with a compromise reason). */
    chain_t d;
    chain_make(&d, -DAY, 365 * DAY, true);
    const char *root2 = register_cert(e, NULL, d.root);
    assert_ok(k_revoke(e, root2, KMIP_REVOCATION_REASON_CODE_CA_COMPROMISE));
    assert_int_equal(indicator(validate(e, (X509 *[]){d.leaf, d.inter, NULL},
                                        (const char *[]){root2, NULL}, 0)), INVALID);
    chain_free(&c);
    chain_free(&d);
}

static void test_validate_refusals(void **state)
{
    kenv_t *e = *state;
    chain_t c;
    chain_make(&c, -DAY, 365 * DAY, true);
    const char *root = register_cert(e, NULL, c.root);
    char *key = k_create_aes(e, "not-a-certificate");

    assert_fail(validate(e, NULL, NULL, 0), KMIP_RESULT_REASON_MISSING_DATA);
    assert_fail(validate(e, NULL, (const char *[]){key, NULL}, 0),
                KMIP_RESULT_REASON_ILLEGAL_OPERATION);
    assert_fail(validate(e, NULL, (const char *[]){"no-such-id", NULL}, 0),
                KMIP_RESULT_REASON_ITEM_NOT_FOUND);

    /* A Certificate Value that is not DER; a PGP certificate; no value. */
    ttlv_item_t *m = rq_msg(e, 1, 4);
    ttlv_item_t *p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    ttlv_item_t *ce = ttlv_new_struct(A, p, KMIP_TAG_CERTIFICATE);
    ttlv_new_enum(A, ce, KMIP_TAG_CERTIFICATE_TYPE, KMIP_CERTIFICATE_TYPE_X_509);
    ttlv_new_bytes(A, ce, KMIP_TAG_CERTIFICATE_VALUE, "\x30\x03\x02\x01\x01", 5);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    add_cert(e, p, c.leaf, KMIP_CERTIFICATE_TYPE_PGP);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED);
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    ce = ttlv_new_struct(A, p, KMIP_TAG_CERTIFICATE);
    ttlv_new_enum(A, ce, KMIP_TAG_CERTIFICATE_TYPE, KMIP_CERTIFICATE_TYPE_X_509);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_MISSING_DATA);
    /* A Validity Date that is not a Date-Time. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    rq_uid(e, p, root);
    ttlv_new_textz(A, p, KMIP_TAG_VALIDITY_DATE, "tomorrow");
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* More certificates than any chain has. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_VALIDATE);
    for (int i = 0; i < 33; i++)
        rq_uid(e, p, root);
    assert_fail(rs_item(kenv_call(e, m), 0), KMIP_RESULT_REASON_INVALID_FIELD);
    /* Query lists Validate once it is there, Operation Not Supported is gone. */
    m = rq_msg(e, 1, 4);
    p = rq_item(e, m, KMIP_OPERATION_QUERY);
    ttlv_new_enum(A, p, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_OPERATIONS);
    ttlv_item_t *bi = rs_item(kenv_call(e, m), 0);
    assert_ok(bi);
    size_t listed = 0;
    for (ttlv_item_t *o = ttlv_find(rs_payload(bi), KMIP_TAG_OPERATION); o;
         o = ttlv_find_next(o, KMIP_TAG_OPERATION))
        listed += ttlv_u32(o) == KMIP_OPERATION_VALIDATE;
    assert_int_equal(listed, 1);
    chain_free(&c);
}

/* Another tenant's certificate is Item Not Found, as everywhere. */
static void test_validate_tenants(void **state)
{
    kenv_t *e = *state;
    chain_t c;
    chain_make(&c, -DAY, 365 * DAY, true);
    const char *root = register_cert(e, &ALICE, c.root);
    X509 *const vals[] = {c.leaf, c.inter, NULL};
    const char *const ids[] = {root, NULL};

    assert_int_equal(indicator(validate_as(e, &ALICE, vals, ids, 0)), VALID);
    assert_fail(validate_as(e, &BOB, vals, ids, 0), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    /* Bob's own copy of the root is Bob's anchor. */
    const char *bobs = register_cert(e, &BOB, c.root);
    assert_int_equal(indicator(validate_as(e, &BOB, vals, (const char *[]){bobs, NULL}, 0)),
                     VALID);
    chain_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validate_anchors, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_validate_dates, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_validate_invalid, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_validate_revoked, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_validate_refusals, kenv_plain_setup,
                                        kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_validate_tenants, kenv_tenants_setup,
                                        kenv_tenants_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
