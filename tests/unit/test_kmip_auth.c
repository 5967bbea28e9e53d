/*
 * tests/unit/test_kmip_auth.c: kmip/auth.c (kmip_identify,
 * kmip_cert_registered, kmip_password_hash) against a real SQLite store:
 * certificate identities (fingerprint, CN-only registration), password
 * identities (Argon2id), the both-present tenant rule, refusal of
 * unknown/removed clients with no stale cache, the require_registered
 * check, and the same verdicts through a request's authenticate step;
 * device identities (KMIP Device credentials): every refusal, the
 * certificate rules, removal, the cost of an unknown device, and the
 * Device credential as a request carries it; disabled clients (refused
 * from their next request on through the certificate and verification
 * caches, with the bytes an unknown one gets, and the same identity again
 * once enabled).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>

#include "kmip/kmip.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_X "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

typedef struct fx {
    char dir[64];
    char db[128];
    store_t *store;
    kmip_server_t *kmip;
} fx_t;

/* Cheap Argon2id for tests; production defaults are t=2, m=19 MiB. */
static const kmip_password_cost_t COST = {.t_cost = 1, .m_kib = 256, .parallelism = 1};

/* Write client *c (a device's when `d` is given), with an Argon2id hash of
 * `password` at `cost` when given. */
static int put_client(fx_t *f, store_client_t *c, const store_device_t *d, const char *password,
                      const kmip_password_cost_t *cost, bool remove)
{
    if (d)
        assert_int_equal(store_client_set_device(c, d), 0);
    if (password)
        assert_int_equal(kmip_password_hash(cost, password, c->password_hash,
                                            sizeof(c->password_hash)), 0);
    c->created_us = kms_now_us();
    store_write_t *w = store_write_new();
    assert_non_null(w);
    int rc = store_write_client(w, c, remove);
    if (rc == 0)
        rc = store_commit(f->store, w, NULL, 0);
    store_write_free(w);
    return rc;
}

static int try_add_client(fx_t *f, const char *name, const char *tenant, const char *kind,
                          const char *fp, const char *password, const char *role, bool remove)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
    snprintf(c.kind, sizeof(c.kind), "%s", kind);
    snprintf(c.role, sizeof(c.role), "%s", role);
    if (fp)
        snprintf(c.cert_sha256, sizeof(c.cert_sha256), "%s", fp);
    return put_client(f, &c, NULL, password, &COST, remove);
}

static void add_client(fx_t *f, const char *name, const char *tenant, const char *kind,
                       const char *fp, const char *password, const char *role, bool remove)
{
    assert_int_equal(try_add_client(f, name, tenant, kind, fp, password, role, remove), 0);
}

static void add_tenant(fx_t *f, const char *t)
{
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_tenant(w, t, false), 0);
    assert_int_equal(store_commit(f->store, w, NULL, 0), 0);
    store_write_free(w);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/kmsd-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/kms.db", f->dir);
    store_options_t so = {.path = f->db};
    assert_int_equal(store_open(&so, &f->store), 0);
    kmip_config_t kc = {.store = f->store, .access = KMIP_ACCESS_CLIENTS, .password_cost = COST};
    assert_int_equal(kmip_server_new(&kc, &f->kmip), 0);
    add_tenant(f, "acme");
    add_tenant(f, "globex");
    add_client(f, "alice-host", "acme", "cert", FP_A, NULL, "client", false);
    add_client(f, "bob-host", "globex", "cert", FP_B, NULL, "admin", false);
    add_client(f, "alice", "acme", "password", NULL, "correct horse", "client", false);
    add_client(f, "bob", "globex", "password", NULL, "battery staple", "client", false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    kmip_server_free(f->kmip);
    store_close(f->store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void test_cert_by_fingerprint(void **state)
{
    fx_t *f = *state;
    kmip_peer_t p = {.cert_sha256 = FP_A, .cert_cn = "whatever", .address = "127.0.0.1:1"};
    kmip_identity_t id;
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), 0);
    assert_string_equal(id.name, "alice-host");
    assert_string_equal(id.tenant, "acme");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT);
    p.cert_sha256 = FP_B;
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), 0);
    assert_string_equal(id.tenant, "globex");
    assert_int_equal(id.role, KMIP_ROLE_ADMIN);
}

static void test_cert_by_cn_only_when_unpinned(void **state)
{
    fx_t *f = *state;
    kmip_identity_t id;
    /* CN-only registration needs a clients row without a fingerprint; a
     * store that refuses one cannot hold such clients: skip, do not pass. */
    int rc = try_add_client(f, "vcenter-cn", "acme", "cert", "", NULL, "client", false);
    if (rc == KMS_ERR_INVAL)
        skip();
    assert_int_equal(rc, 0);
    kmip_peer_t p = {.cert_sha256 = FP_X, .cert_cn = "vcenter-cn", .address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), 0);
    assert_string_equal(id.name, "vcenter-cn");
    assert_string_equal(id.tenant, "acme");
    /* alice-host is pinned to FP_A: another certificate with its CN is refused. */
    p.cert_cn = "alice-host";
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
    /* A CN that is a password client's name is not a certificate identity. */
    p.cert_cn = "alice";
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
}

static void test_unregistered_cert_refused(void **state)
{
    fx_t *f = *state;
    kmip_identity_t id;
    kmip_peer_t p = {.cert_sha256 = FP_X, .cert_cn = "stranger", .address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
    assert_string_equal(id.tenant, "");
    /* Even with a valid password: the certificate itself is unknown. */
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "correct horse", &id), KMS_ERR_PERM);
    assert_int_equal(kmip_cert_registered(f->kmip, FP_X, "stranger"), KMS_ERR_PERM);
    assert_int_equal(kmip_cert_registered(f->kmip, FP_A, NULL), 0);
}

static void test_password_identity(void **state)
{
    fx_t *f = *state;
    kmip_identity_t id;
    kmip_peer_t p = {.address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "correct horse", &id), 0);
    assert_string_equal(id.name, "alice");
    assert_string_equal(id.tenant, "acme");
    /* Cached path gives the same answer. */
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "correct horse", &id), 0);
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "correct horsE", &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "", &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", NULL, &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, &p, "nobody", "correct horse", &id), KMS_ERR_PERM);
    /* A certificate client's name with a password is no identity. */
    assert_int_equal(kmip_identify(f->kmip, &p, "alice-host", "x", &id), KMS_ERR_PERM);
    /* Nothing at all. */
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, NULL, NULL, NULL, &id), KMS_ERR_PERM);
}

static void test_cert_and_credential_same_tenant(void **state)
{
    fx_t *f = *state;
    kmip_identity_t id;
    kmip_peer_t p = {.cert_sha256 = FP_A, .cert_cn = "alice-host", .address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &p, "alice", "correct horse", &id), 0);
    assert_string_equal(id.name, "alice");
    assert_string_equal(id.tenant, "acme");
    /* Tenant B's credential over tenant A's certificate. */
    assert_int_equal(kmip_identify(f->kmip, &p, "bob", "battery staple", &id), KMS_ERR_PERM);
    /* Admin certificate + client credential of the same tenant: client role. */
    add_client(f, "bob2", "globex", "password", NULL, "pw2", "admin", false);
    p.cert_sha256 = FP_B;
    assert_int_equal(kmip_identify(f->kmip, &p, "bob", "battery staple", &id), 0);
    assert_int_equal(id.role, KMIP_ROLE_CLIENT);
    assert_int_equal(kmip_identify(f->kmip, &p, "bob2", "pw2", &id), 0);
    assert_int_equal(id.role, KMIP_ROLE_ADMIN);
}

static void test_removed_client_refused_next_request(void **state)
{
    fx_t *f = *state;
    kmip_identity_t id;
    kmip_peer_t p = {.cert_sha256 = FP_A, .address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), 0);
    add_client(f, "alice-host", "acme", "cert", FP_A, NULL, "client", true);
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
    /* The password cache must not outlive the client either. */
    kmip_peer_t q = {.address = "a"};
    assert_int_equal(kmip_identify(f->kmip, &q, "alice", "correct horse", &id), 0);
    add_client(f, "alice", "acme", "password", NULL, NULL, "client", true);
    assert_int_equal(kmip_identify(f->kmip, &q, "alice", "correct horse", &id), KMS_ERR_PERM);
    /* Re-registered with a new password: the old one no longer works. */
    add_client(f, "alice", "acme", "password", NULL, "new secret", "client", false);
    assert_int_equal(kmip_identify(f->kmip, &q, "alice", "correct horse", &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, &q, "alice", "new secret", &id), 0);
}

static void test_hash_format(void **state)
{
    (void)state;
    char h[160], h2[160];
    assert_int_equal(kmip_password_hash(&COST, "pw", h, sizeof(h)), 0);
    assert_int_equal(kmip_password_hash(&COST, "pw", h2, sizeof(h2)), 0);
    assert_true(strncmp(h, "$argon2id$v=19$m=256,t=1,p=1$", 29) == 0);
    assert_string_not_equal(h, h2); /* random salt */
    assert_int_equal(argon2id_verify(h, "pw", 2), ARGON2_OK);
    assert_int_equal(kmip_password_hash(&COST, "", h, sizeof(h)), KMS_ERR_INVAL);
    assert_int_equal(kmip_password_hash(&COST, "pw", h, 20), KMS_ERR_LIMIT);
    /* NULL cost: the defaults (OWASP: m=19 MiB, t=2, p=1). */
    assert_int_equal(kmip_password_hash(NULL, "pw", h, sizeof(h)), 0);
    assert_true(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
}

/* A Query request from peer p, decoded and authenticated (*auth_rc); its
 * header carries the Credential add_cred adds (none when NULL). */
typedef void (*cred_cb)(kms_arena_t *a, ttlv_item_t *authentication, const void *arg);

static kmip_request_t *auth_request(fx_t *f, const kmip_peer_t *p, cred_cb add_cred,
                                    const void *arg, int *auth_rc)
{
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    ttlv_item_t *m = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_MESSAGE);
    ttlv_item_t *h = ttlv_new_struct(a, m, KMIP_TAG_REQUEST_HEADER);
    ttlv_item_t *pv = ttlv_new_struct(a, h, KMIP_TAG_PROTOCOL_VERSION);
    ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
    ttlv_new_int(a, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, 1);
    if (add_cred)
        add_cred(a, ttlv_new_struct(a, h, KMIP_TAG_AUTHENTICATION), arg);
    ttlv_new_int(a, h, KMIP_TAG_BATCH_COUNT, 1);
    ttlv_item_t *bi = ttlv_new_struct(a, m, KMIP_TAG_BATCH_ITEM);
    ttlv_new_enum(a, bi, KMIP_TAG_OPERATION, KMIP_OPERATION_QUERY);
    kms_buf_t b;
    kms_buf_init(&b, 0);
    assert_int_equal(ttlv_encode(m, &b), 0);
    kmip_request_t *r = NULL;
    assert_int_equal(kmip_request_decode(f->kmip, p, b.data, b.len, &r), 0);
    kms_buf_dispose(&b);
    kms_arena_free(a);
    *auth_rc = kmip_request_authenticate(r);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    return r;
}

static void add_user_cred(kms_arena_t *a, ttlv_item_t *au, const void *arg)
{
    const char *const *up = arg;
    ttlv_item_t *cr = ttlv_new_struct(a, au, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(a, cr, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD);
    ttlv_item_t *cv = ttlv_new_struct(a, cr, KMIP_TAG_CREDENTIAL_VALUE);
    ttlv_new_textz(a, cv, KMIP_TAG_USERNAME, up[0]);
    ttlv_new_textz(a, cv, KMIP_TAG_PASSWORD, up[1]);
}

/* A Query request from peer p, with a Username/Password Credential when
 * user is given, decoded and authenticated. */
static kmip_request_t *query_request(fx_t *f, const kmip_peer_t *p, const char *user,
                                     const char *pass, int *auth_rc)
{
    const char *up[2] = {user, pass};
    kmip_request_t *r = auth_request(f, p, user ? add_user_cred : NULL, up, auth_rc);
    assert_false(kmip_request_can_run_inline(r) && user); /* a password: a worker's job */
    return r;
}

static void test_request_authenticate(void **state)
{
    fx_t *f = *state;
    kmip_summary_t sum;
    int rc;
    kmip_peer_t none = {.address = "a"};
    kmip_request_t *r = query_request(f, &none, "alice", "correct horse", &rc);
    assert_int_equal(rc, 0);
    kmip_request_summary(r, &sum);
    assert_string_equal(sum.identity, "alice");
    assert_string_equal(sum.tenant, "acme");
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
    kmip_request_free(r);
    r = query_request(f, &none, "alice", "wrong", &rc);
    assert_int_equal(rc, KMS_ERR_PERM);
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_string_equal(sum.identity, "");
    kmip_request_free(r);
    kmip_peer_t cert = {.cert_sha256 = FP_B, .cert_cn = "bob-host", .address = "a"};
    r = query_request(f, &cert, NULL, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_true(kmip_request_can_run_inline(r));
    kmip_request_summary(r, &sum);
    assert_string_equal(sum.identity, "bob-host");
    kmip_request_free(r);
}

/* ------------------------------------------------------------ devices */
static int try_add_device(fx_t *f, const char *name, const char *tenant, const char *role,
                          const store_device_t *d, const char *password,
                          const kmip_password_cost_t *cost, bool remove)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
    snprintf(c.role, sizeof(c.role), "%s", role);
    return put_client(f, &c, d, password, cost, remove);
}

/* The test case document's first device (KMIP 1.1 test case 11.2),
 * registered without its Machine and Media Identifiers. */
static const store_device_t DEV1 = {.serial = "serNum123456", .device_id = "devID2233",
                                    .network_id = "netID9000"};
#define DEV1_CRED                                                                         \
    {.serial = "serNum123456", .password = "secret", .device_id = "devID2233",          \
     .network_id = "netID9000", .machine_id = "machineID1", .media_id = "mediaID313"}

/* DEV1 as "tape-1" of tenant acme, password "secret". */
static void add_dev1(fx_t *f, const char *role)
{
    assert_int_equal(try_add_device(f, "tape-1", "acme", role, &DEV1, "secret", &COST, false), 0);
}

static void test_device_identity(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "client");
    kmip_identity_t id;
    kmip_peer_t p = {.address = "a"};
    kmip_device_cred_t d = DEV1_CRED;
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);
    assert_string_equal(id.name, "tape-1");
    assert_string_equal(id.tenant, "acme");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT);
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0); /* cached */
    /* Identifiers it did not register are not compared. */
    d.machine_id = d.media_id = NULL;
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);
    d.machine_id = "another machine";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);

    /* Every refusal leaves the identity empty. */
    const kmip_device_cred_t refused[] = {
        {.serial = "serNum123456", .password = "secreT", .device_id = "devID2233",
         .network_id = "netID9000"},                                    /* wrong password */
        {.serial = "serNum123456", .password = "", .device_id = "devID2233",
         .network_id = "netID9000"},                                    /* empty password */
        {.serial = "serNum123456", .device_id = "devID2233", .network_id = "netID9000"},
        {.serial = "serNum123456", .password = "secret", .device_id = "devID2233"},
        {.serial = "serNum123456", .password = "secret", .device_id = "devID2233",
         .network_id = "netID9001"},                                    /* network differs */
        {.serial = "serNum123456", .password = "secret", .device_id = "devID4444",
         .network_id = "netID9000"},                                    /* device id differs */
        {.serial = "serNum101010", .password = "secret", .device_id = "devID2233",
         .network_id = "netID9000"},                                    /* unknown serial */
        {.password = "secret", .device_id = "devID2233", .network_id = "netID9000"},
        {.serial = "", .password = "secret"},
        {.serial = "alice", .password = "correct horse"},               /* a user is no device */
        {.serial = "serNum", .password = "secret", .device_id = "devID2233",
         .network_id = "netID9000"},                                    /* a prefix */
        {0},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        memset(&id, 0x55, sizeof(id));
        assert_int_equal(kmip_identify_device(f->kmip, &p, &refused[i], &id), KMS_ERR_PERM);
        assert_string_equal(id.name, "");
        assert_int_equal(id.role, KMIP_ROLE_NONE);
    }
    assert_int_equal(kmip_identify_device(f->kmip, &p, NULL, &id), KMS_ERR_PERM);
    /* A device's serial number is no user name, nor its name. */
    assert_int_equal(kmip_identify(f->kmip, &p, "serNum123456", "secret", &id), KMS_ERR_PERM);
    assert_int_equal(kmip_identify(f->kmip, &p, "tape-1", "secret", &id), KMS_ERR_PERM);
    /* Registered with its serial number alone: nothing else is compared. */
    store_device_t only = {.serial = "SN-ONLY"};
    assert_int_equal(try_add_device(f, "tape-2", "globex", "admin", &only, "pw", &COST, false), 0);
    kmip_device_cred_t o = {.serial = "SN-ONLY", .password = "pw", .network_id = "anything"};
    assert_int_equal(kmip_identify_device(f->kmip, &p, &o, &id), 0);
    assert_string_equal(id.name, "tape-2");
    assert_string_equal(id.tenant, "globex");
    assert_int_equal(id.role, KMIP_ROLE_ADMIN);
}

static void test_device_and_cert(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "admin");
    kmip_identity_t id;
    kmip_device_cred_t d = DEV1_CRED;
    /* The same tenant: the device is the identity, with the lesser role
     * (alice-host is a client). */
    kmip_peer_t p = {.cert_sha256 = FP_A, .cert_cn = "alice-host", .address = "a"};
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);
    assert_string_equal(id.name, "tape-1");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT);
    /* Another tenant's certificate (bob-host, an admin of globex). */
    p.cert_sha256 = FP_B;
    p.cert_cn = "bob-host";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), KMS_ERR_PERM);
    assert_string_equal(id.name, "");
    /* An unregistered certificate refuses even a good device credential. */
    p.cert_sha256 = FP_X;
    p.cert_cn = "stranger";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), KMS_ERR_PERM);
    /* A registered certificate does not rescue a wrong device password. */
    p.cert_sha256 = FP_A;
    p.cert_cn = "alice-host";
    d.password = "wrong";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), KMS_ERR_PERM);
    /* Admin device over an admin certificate of its tenant: admin. */
    add_client(f, "acme-admin-host", "acme", "cert", FP_X, NULL, "admin", false);
    p.cert_sha256 = FP_X;
    d.password = "secret";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);
    assert_int_equal(id.role, KMIP_ROLE_ADMIN);
}

static void test_device_removed_refused_next_request(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "client");
    kmip_identity_t id;
    kmip_peer_t p = {.address = "a"};
    kmip_device_cred_t d = DEV1_CRED;
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0); /* now cached */
    assert_int_equal(try_add_device(f, "tape-1", "acme", "client", &DEV1, NULL, &COST, true), 0);
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), KMS_ERR_PERM);
    /* Registered again with a new password: only that one works. */
    assert_int_equal(try_add_device(f, "tape-1", "acme", "client", &DEV1, "new", &COST, false),
                     0);
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), KMS_ERR_PERM);
    d.password = "new";
    assert_int_equal(kmip_identify_device(f->kmip, &p, &d, &id), 0);
}

static double refusal_ms(kmip_server_t *k, const kmip_device_cred_t *d)
{
    kmip_peer_t p = {.address = "a"};
    kmip_identity_t id;
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        int64_t t0 = kms_now_us();
        assert_int_equal(kmip_identify_device(k, &p, d, &id), KMS_ERR_PERM);
        double ms = (double)(kms_now_us() - t0) / 1000.0;
        best = ms < best ? ms : best;
    }
    return best;
}

/* An unknown serial number or a device whose identifiers do not match
 * costs an Argon2id verification like a wrong password, so devices cannot
 * be probed by timing. Compared as ratios of the fastest of three. */
static void test_device_refusal_cost(void **state)
{
    fx_t *f = *state;
    const kmip_password_cost_t slow = {.t_cost = 3, .m_kib = 8192, .parallelism = 1};
    kmip_config_t kc = {.store = f->store, .access = KMIP_ACCESS_CLIENTS, .password_cost = slow};
    kmip_server_t *k = NULL;
    assert_int_equal(kmip_server_new(&kc, &k), 0);
    assert_int_equal(try_add_device(f, "tape-1", "acme", "client", &DEV1, "secret", &slow, false),
                     0);
    kmip_device_cred_t wrong = DEV1_CRED;
    wrong.password = "wrong";
    kmip_device_cred_t unknown = DEV1_CRED;
    unknown.serial = "serNum999999";
    kmip_device_cred_t mismatch = DEV1_CRED;
    mismatch.network_id = "netID1";
    double t_wrong = refusal_ms(k, &wrong);
    assert_true(t_wrong > 1.0); /* the test's premise: Argon2id dominates */
    double t_unknown = refusal_ms(k, &unknown), t_mismatch = refusal_ms(k, &mismatch);
    assert_true(t_unknown > 0.3 * t_wrong);
    assert_true(t_mismatch > 0.3 * t_wrong);
    kmip_server_free(k);
}

/* A Device credential's fields as device_request sends them. */
typedef struct dev_arg {
    const kmip_device_cred_t *d;
    bool bad_type;             /* add a Media Identifier that is an Integer */
} dev_arg_t;

static void add_device_cred(kms_arena_t *a, ttlv_item_t *au, const void *arg)
{
    const dev_arg_t *x = arg;
    const kmip_device_cred_t *d = x->d;
    ttlv_item_t *cr = ttlv_new_struct(a, au, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(a, cr, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_DEVICE);
    ttlv_item_t *cv = ttlv_new_struct(a, cr, KMIP_TAG_CREDENTIAL_VALUE);
    const struct {
        uint32_t tag;
        const char *v;
    } fl[] = {{KMIP_TAG_DEVICE_SERIAL_NUMBER, d->serial}, {KMIP_TAG_PASSWORD, d->password},
              {KMIP_TAG_DEVICE_IDENTIFIER, d->device_id},
              {KMIP_TAG_NETWORK_IDENTIFIER, d->network_id},
              {KMIP_TAG_MACHINE_IDENTIFIER, d->machine_id},
              {KMIP_TAG_MEDIA_IDENTIFIER, d->media_id}};
    for (size_t i = 0; i < 6; i++)
        if (fl[i].v)
            ttlv_new_textz(a, cv, fl[i].tag, fl[i].v);
    if (x->bad_type)
        ttlv_new_int(a, cv, KMIP_TAG_MEDIA_IDENTIFIER, 7);
}

/* A Query request whose header carries Device credential `d`, decoded and
 * authenticated; *auth_rc the verdict. */
static kmip_request_t *device_request(fx_t *f, const kmip_peer_t *p, const kmip_device_cred_t *d,
                                      bool bad_type, int *auth_rc)
{
    dev_arg_t x = {d, bad_type};
    kmip_request_t *r = auth_request(f, p, add_device_cred, &x, auth_rc);
    if (!bad_type)
        assert_false(kmip_request_can_run_inline(r)); /* a password: a worker's job */
    return r;
}

static void test_request_authenticate_device(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "client");
    kmip_summary_t sum;
    int rc;
    kmip_peer_t none = {.address = "a"};
    kmip_device_cred_t d = DEV1_CRED;
    kmip_request_t *r = device_request(f, &none, &d, false, &rc);
    assert_int_equal(rc, 0);
    kmip_request_summary(r, &sum);
    assert_string_equal(sum.identity, "tape-1");
    assert_string_equal(sum.tenant, "acme");
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
    kmip_request_free(r);
    /* A Device credential is checked even over a registered certificate. */
    kmip_peer_t cert = {.cert_sha256 = FP_A, .cert_cn = "alice-host", .address = "a"};
    d.network_id = "netID9001";
    r = device_request(f, &cert, &d, false, &rc);
    assert_int_equal(rc, KMS_ERR_PERM);
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    assert_string_equal(sum.identity, "");
    kmip_request_free(r);
    /* ... including one with no fields at all. */
    kmip_device_cred_t empty = {0};
    r = device_request(f, &cert, &empty, false, &rc);
    assert_int_equal(rc, KMS_ERR_PERM);
    kmip_request_free(r);
    /* A field of the wrong type: Invalid Message, nothing runs. */
    d = (kmip_device_cred_t)DEV1_CRED;
    d.media_id = NULL;
    r = device_request(f, &none, &d, true, &rc);
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_INVALID_MESSAGE);
    kmip_request_free(r);
}

/* Several Credentials (KMIP 1.2+): every one must authenticate, all name
 * one tenant (the certificate's too), the first names the identity, the
 * lesser role applies, and the order does not matter. */
static void test_several_credentials(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "client");
    add_client(f, "root", "acme", "password", NULL, "root pass", "admin", false);
    add_client(f, "root2", "acme", "password", NULL, "root2 pass", "admin", false);
    const kmip_credential_t alice = {.username = "alice", .password = "correct horse"};
    const kmip_credential_t root = {.username = "root", .password = "root pass"};
    const kmip_credential_t root2 = {.username = "root2", .password = "root2 pass"};
    const kmip_credential_t bob = {.username = "bob", .password = "battery staple"};
    const kmip_credential_t wrong = {.username = "root", .password = "not root"};
    const kmip_credential_t tape = {.device = true, .dev = DEV1_CRED};
    kmip_peer_t none = {.address = "a"};
    kmip_peer_t cert_a = {.cert_sha256 = FP_A, .cert_cn = "alice-host", .address = "a"};
    kmip_identity_t id;
    kmip_credential_t v[KMIP_MAX_CREDENTIALS + 1];

    v[0] = root, v[1] = root2;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), 0);
    assert_string_equal(id.name, "root");
    assert_int_equal(id.role, KMIP_ROLE_ADMIN); /* admins both */
    v[0] = root, v[1] = alice;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), 0);
    assert_string_equal(id.name, "root");
    assert_string_equal(id.tenant, "acme");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT); /* the lesser */
    v[0] = tape, v[1] = root;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), 0);
    assert_string_equal(id.name, "tape-1");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT);
    v[0] = root, v[1] = root2;
    assert_int_equal(kmip_identify_all(f->kmip, &cert_a, v, 2, &id), 0);
    assert_string_equal(id.name, "root");
    assert_int_equal(id.role, KMIP_ROLE_CLIENT); /* alice-host is a client */

    /* One that does not authenticate, in any place, refuses them all. */
    v[0] = root, v[1] = wrong;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), KMS_ERR_PERM);
    assert_string_equal(id.name, "");
    assert_int_equal(id.role, KMIP_ROLE_NONE);
    v[0] = wrong, v[1] = root;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), KMS_ERR_PERM);
    /* Another tenant's, even with its right password, and even first. */
    v[0] = alice, v[1] = bob;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), KMS_ERR_PERM);
    v[0] = bob, v[1] = alice;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 2, &id), KMS_ERR_PERM);
    v[0] = root, v[1] = alice, v[2] = bob;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, 3, &id), KMS_ERR_PERM);
    /* Over the certificate of acme: bob's is still another tenant's. */
    v[0] = bob;
    assert_int_equal(kmip_identify_all(f->kmip, &cert_a, v, 1, &id), KMS_ERR_PERM);
    /* The bound. */
    for (size_t i = 0; i <= KMIP_MAX_CREDENTIALS; i++)
        v[i] = alice;
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, KMIP_MAX_CREDENTIALS, &id), 0);
    assert_int_equal(kmip_identify_all(f->kmip, &none, v, KMIP_MAX_CREDENTIALS + 1, &id),
                     KMS_ERR_PERM);
}

static void add_creds(kms_arena_t *a, ttlv_item_t *au, const void *arg)
{
    const size_t *n = arg;
    const char *up[2] = {"alice", "correct horse"};
    for (size_t i = 0; i < *n; i++)
        add_user_cred(a, au, up);
    /* An Attestation credential is read and not verified. */
    ttlv_item_t *cr = ttlv_new_struct(a, au, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(a, cr, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_ATTESTATION);
    ttlv_new_struct(a, cr, KMIP_TAG_CREDENTIAL_VALUE);
}

/* Several Credentials as a request carries them: all read, up to
 * KMIP_MAX_CREDENTIALS (Attestation ones counted); more is Invalid
 * Message and nothing is verified. */
static void test_request_several_credentials(void **state)
{
    fx_t *f = *state;
    kmip_peer_t none = {.address = "a"};
    kmip_summary_t sum;
    int rc;
    size_t n = KMIP_MAX_CREDENTIALS - 1;
    kmip_request_t *r = auth_request(f, &none, add_creds, &n, &rc);
    assert_int_equal(rc, 0);
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
    assert_string_equal(sum.identity, "alice");
    kmip_request_free(r);
    n = KMIP_MAX_CREDENTIALS;
    r = auth_request(f, &none, add_creds, &n, &rc);
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_INVALID_MESSAGE);
    assert_string_equal(sum.identity, "");
    kmip_request_free(r);
}

/* The encoded Batch Item of request r's answer, into *out. *//* The encoded Batch Item of request r's answer, into *out. */
static void answer_item(kmip_request_t *r, kms_buf_t *out)
{
    kms_buf_t resp;
    kms_buf_init(&resp, 0);
    assert_int_equal(kmip_request_encode(r, &resp), 0);
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    ttlv_item_t *root = NULL;
    assert_int_equal(ttlv_decode(resp.data, resp.len, NULL, a, &root, NULL), 0);
    ttlv_item_t *bi = ttlv_find(root, KMIP_TAG_BATCH_ITEM);
    assert_non_null(bi);
    ttlv_item_t *reason = ttlv_find(bi, KMIP_TAG_RESULT_REASON);
    assert_non_null(reason);
    assert_int_equal(ttlv_u32(reason), KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
    kms_buf_init(out, 0);
    assert_int_equal(ttlv_encode(bi, out), 0);
    kms_buf_dispose(&resp);
    kms_arena_free(a);
}

/* Every credential or certificate that does not authenticate is answered
 * Authentication Not Successful, and the answers are the same bytes: an
 * unknown user, an unknown device, a mismatched identifier, a wrong
 * password, another tenant's credential, an unregistered certificate and
 * nothing at all cannot be told apart. An identity that authenticated and
 * then acts outside its rights is Permission Denied (test_kmip_policy.c,
 * test_tenants.py). */
/* Every one of the n requests was refused (rc PERM, Authentication Not
 * Successful, no identity) with the same Batch Item bytes; frees them. */
static void assert_answered_alike(kmip_request_t **rs, const int *rc, size_t n)
{
    kms_buf_t first;
    answer_item(rs[0], &first);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rc[i], KMS_ERR_PERM);
        kmip_summary_t sum;
        kmip_request_summary(rs[i], &sum);
        assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL);
        assert_string_equal(sum.identity, "");
        kms_buf_t b;
        answer_item(rs[i], &b);
        assert_int_equal(b.len, first.len);
        assert_memory_equal(b.data, first.data, first.len);
        kms_buf_dispose(&b);
        kmip_request_free(rs[i]);
    }
    kms_buf_dispose(&first);
}

static void test_refusals_answer_alike(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "client");
    kmip_peer_t none = {.address = "a"};
    kmip_peer_t cert_b = {.cert_sha256 = FP_B, .cert_cn = "bob-host", .address = "a"};
    kmip_peer_t stranger = {.cert_sha256 = FP_X, .cert_cn = "stranger", .address = "a"};
    kmip_device_cred_t dev_wrong = DEV1_CRED, dev_unknown = DEV1_CRED, dev_mismatch = DEV1_CRED;
    dev_wrong.password = "not-secret";
    dev_unknown.serial = "serNum000000";
    dev_mismatch.device_id = "devID0000";
    kmip_request_t *rs[8];
    int rc[8];
    rs[0] = query_request(f, &none, "alice", "wrong", &rc[0]);
    rs[1] = query_request(f, &none, "mallory", "correct horse", &rc[1]);
    rs[2] = query_request(f, &cert_b, "alice", "correct horse", &rc[2]);
    rs[3] = query_request(f, &stranger, NULL, NULL, &rc[3]);
    rs[4] = query_request(f, &none, NULL, NULL, &rc[4]);
    rs[5] = device_request(f, &none, &dev_wrong, false, &rc[5]);
    rs[6] = device_request(f, &none, &dev_unknown, false, &rc[6]);
    rs[7] = device_request(f, &none, &dev_mismatch, false, &rc[7]);
    assert_answered_alike(rs, rc, 8);
}

/* Disable (or enable) client `name` as kmsctl does: the whole record
 * again with the flag. */
static void set_disabled(fx_t *f, const char *name, bool disabled)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(f->store, &r), 0);
    store_client_t c;
    assert_int_equal(store_client_by_name(r, name, &c), 0);
    store_reader_free(r);
    c.disabled = disabled;
    c.disabled_us = disabled ? kms_now_us() : 0;
    strcpy(c.disabled_reason, disabled ? "suspected stolen" : "");
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(store_commit(f->store, w, NULL, 0), 0);
    store_write_free(w);
}

/* A disabled client's certificate, password and device credential are
 * refused at their next request although each was just accepted (and
 * cached), answered with the bytes an unknown credential gets; the
 * handshake check refuses the certificate too. Enabled again, each is
 * the same identity as before. */
static void test_disabled_refused_next_request(void **state)
{
    fx_t *f = *state;
    add_dev1(f, "admin");
    kmip_peer_t cert = {.cert_sha256 = FP_B, .cert_cn = "bob-host", .address = "a"};
    kmip_peer_t none = {.address = "a"};
    kmip_device_cred_t dev = DEV1_CRED;
    kmip_identity_t id;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(kmip_identify(f->kmip, &cert, NULL, NULL, &id), 0);
        assert_string_equal(id.name, "bob-host");
        assert_int_equal(id.role, KMIP_ROLE_ADMIN);
        assert_int_equal(kmip_cert_registered(f->kmip, FP_B, "bob-host"), 0);
        assert_int_equal(kmip_identify(f->kmip, &none, "alice", "correct horse", &id), 0);
        assert_string_equal(id.tenant, "acme");
        assert_int_equal(kmip_identify_device(f->kmip, &none, &dev, &id), 0);
        assert_string_equal(id.name, "tape-1");
        assert_int_equal(id.role, KMIP_ROLE_ADMIN);
        if (round == 1)
            break;
        set_disabled(f, "bob-host", true);
        set_disabled(f, "alice", true);
        set_disabled(f, "tape-1", true);
        assert_int_equal(kmip_identify(f->kmip, &cert, NULL, NULL, &id), KMS_ERR_PERM);
        assert_string_equal(id.name, "");
        assert_int_equal(kmip_identify_cert(f->kmip, &cert, &id), KMS_ERR_PERM);
        assert_int_equal(kmip_cert_registered(f->kmip, FP_B, "bob-host"), KMS_ERR_PERM);
        assert_int_equal(kmip_identify(f->kmip, &none, "alice", "correct horse", &id),
                         KMS_ERR_PERM);
        assert_int_equal(kmip_identify_device(f->kmip, &none, &dev, &id), KMS_ERR_PERM);
        /* The answers: the same bytes as an unknown user's. */
        kmip_request_t *rs[4];
        int rc[4];
        rs[0] = query_request(f, &none, "mallory", "correct horse", &rc[0]);
        rs[1] = query_request(f, &none, "alice", "correct horse", &rc[1]);
        rs[2] = query_request(f, &cert, NULL, NULL, &rc[2]);
        rs[3] = device_request(f, &none, &dev, false, &rc[3]);
        assert_answered_alike(rs, rc, 4);
        set_disabled(f, "bob-host", false);
        set_disabled(f, "alice", false);
        set_disabled(f, "tape-1", false);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cert_by_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_by_cn_only_when_unpinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unregistered_cert_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_and_credential_same_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_client_refused_next_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_authenticate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_and_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_removed_refused_next_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_refusal_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_answer_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_several_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_authenticate_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_refused_next_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
