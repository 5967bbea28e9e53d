/*
 * tests/unit/test_admin_socket.c: the admin socket end to end, in process:
 * admin/ listening on a real Unix socket over a real SQLite store, driven
 * by kmsctl's own command functions (kmsctl/cmd_*.c, from libkmsctl)
 * through a real kmsd.yaml, with identities then checked by kmip_identify
 * (libserver) and every
 * command found in a verified audit chain. Also the protocol's refusals:
 * another version, garbage, oversized frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "certs/certs.h"
#include "kmsctl/admin_client.h"
#include "kmip/kmip.h"
#include "kmsctl/kmsctl.h"

/* kmsctl's commands (kmsctl/main.c is not in libkmsctl). */
int cmd_status(int argc, char **argv);
int cmd_tenant(int argc, char **argv);
int cmd_client(int argc, char **argv);
int cmd_audit(int argc, char **argv);

kmsctl_globals_t kmsctl_g = {.config_path = NULL, .json = 0};

/* Cheap Argon2id for tests; production defaults are t=2, m=19 MiB. */
static const kmip_password_cost_t COST = {.t_cost = 1, .m_kib = 256, .parallelism = 1};

typedef struct fx {
    char dir[64];
    char path[256];
    char sock[160], conf[160], audit[160], db[160], ca[160], cakey[160];
    store_t *store;
    kmip_server_t *kmip;
    audit_t *au;
    admin_t *ad;
    X509 *ca_cert;
    EVP_PKEY *ca_key;
} fx_t;

static void writef(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int run(int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    if (strcmp(argv[0], "tenant") == 0)
        return cmd_tenant(argc, argv);
    if (strcmp(argv[0], "client") == 0)
        return cmd_client(argc, argv);
    if (strcmp(argv[0], "status") == 0)
        return cmd_status(argc, argv);
    return cmd_audit(argc, argv);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/kmsd-admin-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/admin.sock", f->dir);
    snprintf(f->conf, sizeof(f->conf), "%s/kmsd.yaml", f->dir);
    snprintf(f->audit, sizeof(f->audit), "%s/audit.log", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/kms.db", f->dir);
    snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", f->dir);
    snprintf(f->cakey, sizeof(f->cakey), "%s/ca.key", f->dir);
    /* A real CA on disk, as kmsctl init makes it. */
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &f->ca_key), 0);
    assert_int_equal(certs_create_ca(f->ca_key, "test CA", 0, &f->ca_cert), 0);
    assert_int_equal(certs_write_cert_pem(f->ca, f->ca_cert, false), 0);
    assert_int_equal(certs_write_key_pem(f->cakey, f->ca_key, false), 0);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "tls:\n  client_ca: %s\nadmin:\n  socket: %s\n  mode: 0600\nstore:\n  path: %s\n"
             "audit:\n  path: %s\n",
             f->ca, f->sock, f->db, f->audit);
    writef(f->conf, yaml);
    kmsctl_g.config_path = f->conf;
    kmsctl_g.json = 0;

    store_options_t so = {.path = f->db};
    assert_int_equal(store_open(&so, &f->store), 0);
    kmip_config_t kc = {.store = f->store, .access = KMIP_ACCESS_CLIENTS, .password_cost = COST};
    assert_int_equal(kmip_server_new(&kc, &f->kmip), 0);
    audit_options_t uo = {.path = f->audit, .fsync = true};
    assert_int_equal(audit_open(&uo, &f->au), 0);
    admin_options_t o = {.socket_path = f->sock, .mode = 0600, .store = f->store,
                         .password_cost = COST, .audit = f->au, .client_ca = f->ca, .version = "test"};
    assert_int_equal(admin_start(&o, &f->ad), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    admin_stop(f->ad);
    audit_close(f->au);
    kmip_server_free(f->kmip);
    store_close(f->store);
    X509_free(f->ca_cert);
    EVP_PKEY_free(f->ca_key);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Issue a client certificate with the CA (or another CA) to a PEM file. */
static void issue_cert(fx_t *f, const char *cn, const char *path, bool foreign_ca, char fp[65])
{
    EVP_PKEY *key = NULL, *cakey = f->ca_key;
    X509 *cert = NULL, *ca = f->ca_cert;
    if (foreign_ca) {
        assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &cakey), 0);
        assert_int_equal(certs_create_ca(cakey, "other CA", 0, &ca), 0);
    }
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &key), 0);
    assert_int_equal(certs_issue_client(ca, cakey, key, cn, 0, &cert), 0);
    assert_int_equal(certs_write_cert_pem(path, cert, false), 0);
    assert_int_equal(certs_fingerprint_sha256(cert, fp), 0);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (foreign_ca) {
        X509_free(ca);
        EVP_PKEY_free(cakey);
    }
}

static void test_status_and_tenants(void **state)
{
    fx_t *f = *state;
    struct stat st;
    assert_int_equal(stat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(run(1, "status"), 0);
    assert_int_equal(run(3, "tenant", "add", "acme"), 0);
    assert_int_equal(run(3, "tenant", "add", "acme"), KMSCTL_EXIT_FAIL);
    assert_int_equal(run(2, "tenant", "add"), KMSCTL_EXIT_USAGE);
    assert_int_equal(run(2, "tenant", "list"), 0);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(f->store, &r), 0);
    assert_int_equal(store_tenant_exists(r, "acme"), 0);
    assert_int_equal(run(3, "tenant", "remove", "acme"), 0);
    assert_int_equal(store_tenant_exists(r, "acme"), KMS_ERR_NOTFOUND);
    assert_int_equal(run(3, "tenant", "remove", "acme"), KMSCTL_EXIT_FAIL);
    store_reader_free(r);
}

static void test_status_fields(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, "status");
    assert_int_equal(kmsctl_admin_call(a, req, &resp), 0);
    const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
    assert_non_null(rec);
    bool saw_version = false, saw_health = false, saw_objects = false;
    for (const ttlv_item_t *fl = ttlv_find(rec, ADMIN_TAG_FIELD); fl;
         fl = ttlv_find_next(fl, ADMIN_TAG_FIELD)) {
        const char *n = admin_field_name(fl);
        const ttlv_item_t *v = admin_field_value(fl);
        if (strcmp(n, "version") == 0)
            saw_version = strcmp(ttlv_text(v), "test") == 0;
        if (strcmp(n, "health") == 0)
            saw_health = strcmp(ttlv_text(v), "ok") == 0;
        if (strcmp(n, "objects") == 0)
            saw_objects = v->v.i64 == 0;
    }
    assert_true(saw_version && saw_health && saw_objects);
    kms_arena_free(a);
}

static void test_clients_cert_password_csr(void **state)
{
    fx_t *f = *state;
    char crt[200], other[200], pwf[200], csr[200], out[200], fp[65], fp_other[65];
    snprintf(crt, sizeof(crt), "%s/host1.crt", f->dir);
    snprintf(other, sizeof(other), "%s/other.crt", f->dir);
    snprintf(pwf, sizeof(pwf), "%s/pw.txt", f->dir);
    snprintf(csr, sizeof(csr), "%s/vc.csr", f->dir);
    snprintf(out, sizeof(out), "%s/vc.crt", f->dir);
    issue_cert(f, "host1", crt, false, fp);
    issue_cert(f, "intruder", other, true, fp_other);
    assert_int_equal(run(3, "tenant", "add", "acme"), 0);
    assert_int_equal(run(3, "tenant", "add", "globex"), 0);

    /* Certificate. */
    assert_int_equal(run(6, "client", "add", "--tenant", "nosuch", "--cert", crt), KMSCTL_EXIT_FAIL);
    assert_int_equal(run(6, "client", "add", "--tenant", "acme", "--cert", crt), 0);
    assert_int_equal(run(6, "client", "add", "--tenant", "globex", "--cert", crt), KMSCTL_EXIT_FAIL);
    assert_int_equal(run(6, "client", "add", "--tenant", "acme", "--cert", other), KMSCTL_EXIT_USAGE);
    kmip_identity_t id;
    kmip_peer_t p = {.cert_sha256 = fp, .cert_cn = "host1", .address = "t"};
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), 0);
    assert_string_equal(id.tenant, "acme");
    kmip_peer_t q = {.cert_sha256 = fp_other, .cert_cn = "intruder", .address = "t"};
    assert_int_equal(kmip_identify(f->kmip, &q, NULL, NULL, &id), KMS_ERR_PERM);

    /* Password. */
    writef(pwf, "s3cret pass\n");
    assert_int_equal(run(8, "client", "add", "--tenant", "globex", "--user", "bob",
                         "--password-file", pwf), 0);
    kmip_peer_t n = {.address = "t"};
    assert_int_equal(kmip_identify(f->kmip, &n, "bob", "s3cret pass", &id), 0);
    assert_string_equal(id.tenant, "globex");
    assert_int_equal(kmip_identify(f->kmip, &n, "bob", "s3cret pass\n", &id), KMS_ERR_PERM);
    /* Same name twice is refused, not overwritten. */
    assert_int_equal(run(8, "client", "add", "--tenant", "acme", "--user", "bob",
                         "--password-file", pwf), KMSCTL_EXIT_FAIL);
    assert_int_equal(kmip_identify(f->kmip, &n, "bob", "s3cret pass", &id), 0);
    assert_string_equal(id.tenant, "globex");

    /* CSR: signed with the CA next to client_ca, written out, registered. */
    EVP_PKEY *key = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &key), 0);
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_pubkey(req, key);
    X509_NAME *nm = X509_REQ_get_subject_name(req);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"vcenter01", -1, -1, 0);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    FILE *fc = fopen(csr, "w");
    PEM_write_X509_REQ(fc, req);
    fclose(fc);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    assert_int_equal(run(8, "client", "add", "--tenant", "acme", "--csr", csr, "--out", out), 0);
    X509 *signed_cert = NULL;
    assert_int_equal(certs_load_cert_pem(out, &signed_cert), 0);
    char fp_vc[65];
    assert_int_equal(certs_fingerprint_sha256(signed_cert, fp_vc), 0);
    X509_free(signed_cert);
    kmip_peer_t v = {.cert_sha256 = fp_vc, .cert_cn = "vcenter01", .address = "t"};
    assert_int_equal(kmip_identify(f->kmip, &v, NULL, NULL, &id), 0);
    assert_string_equal(id.name, "vcenter01");

    /* Listing, then removal takes effect on the next request. */
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *resp = NULL;
    ttlv_item_t *lr = admin_request_new(a, "client.list");
    ttlv_new_textz(a, lr, ADMIN_TAG_ARG_TENANT, "acme");
    assert_int_equal(kmsctl_admin_call(a, lr, &resp), 0);
    assert_int_equal(ttlv_count(resp, ADMIN_TAG_RECORD), 2);
    kms_arena_free(a);
    assert_int_equal(run(3, "client", "remove", "host1"), 0);
    assert_int_equal(kmip_identify(f->kmip, &p, NULL, NULL, &id), KMS_ERR_PERM);
    assert_int_equal(run(3, "client", "remove", "host1"), KMSCTL_EXIT_FAIL);

    /* A tenant with clients is kept unless forced. */
    assert_int_equal(run(3, "tenant", "remove", "globex"), KMSCTL_EXIT_FAIL);
    assert_int_equal(kmip_identify(f->kmip, &n, "bob", "s3cret pass", &id), 0);
    assert_int_equal(run(4, "tenant", "remove", "globex", "--force"), 0);
    assert_int_equal(kmip_identify(f->kmip, &n, "bob", "s3cret pass", &id), KMS_ERR_PERM);

    /* Every command is in the audit chain, without the password. */
    assert_int_equal(audit_flush(f->au), 0);
    kms_error_t where;
    uint64_t lines = 0;
    char *files[1] = {f->audit};
    assert_int_equal(kmsctl_audit_verify_files(files, 1, false, &lines, NULL, &where), 0);
    assert_true(lines >= 14);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(kmsctl_read_file(f->audit, 1 << 20, &text, &len), 0);
    assert_null(strstr(text, "s3cret"));
    assert_null(strstr(text, "argon2"));
    assert_non_null(strstr(text, "\"operation\":\"client.add\""));
    assert_non_null(strstr(text, "\"operation\":\"tenant.remove\""));
    assert_non_null(strstr(text, "\"kind\":\"admin\",\"identity\":\"uid="));
    free(text);
}

/* Raw frames: another protocol version, garbage, an oversized header. */
static int raw_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static int32_t raw_status(int fd)
{
    uint8_t buf[4096];
    ssize_t n = 0, r;
    while ((r = read(fd, buf + n, sizeof(buf) - (size_t)n)) > 0) {
        n += r;
        if (n >= 8 && (size_t)n >= 8 + kms_be32(buf + 4))
            break;
    }
    if (n < 8)
        return 1; /* closed without an answer */
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root = NULL;
    kms_error_t e;
    assert_int_equal(ttlv_decode(buf, (size_t)n, NULL, a, &root, &e), 0);
    ttlv_item_t *st = ttlv_find(root, ADMIN_TAG_STATUS);
    int32_t v = st ? st->v.i32 : 2;
    kms_arena_free(a);
    return v;
}

static void test_protocol_refusals(void **state)
{
    fx_t *f = *state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *r = ttlv_new_struct(a, NULL, ADMIN_TAG_REQUEST);
    ttlv_new_int(a, r, ADMIN_TAG_PROTOCOL_VERSION, 99);
    ttlv_new_textz(a, r, ADMIN_TAG_COMMAND, "status");
    kms_buf_t b;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(ttlv_encode(r, &b), 0);
    int fd = raw_connect(f->sock);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    assert_int_equal(raw_status(fd), KMS_ERR_NOTSUP);
    close(fd);
    kms_buf_dispose(&b);

    /* A KMIP request on the admin socket: refused, connection closed. */
    static const uint8_t kmip[] = {0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0};
    fd = raw_connect(f->sock);
    assert_int_equal(write(fd, kmip, sizeof(kmip)), (ssize_t)sizeof(kmip));
    assert_int_equal(raw_status(fd), KMS_ERR_PROTO);
    close(fd);

    /* An admin header claiming 512 MiB. */
    static const uint8_t big[] = {0x54, 0x00, 0x01, 0x01, 0x20, 0, 0, 0};
    fd = raw_connect(f->sock);
    assert_int_equal(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
    assert_int_equal(raw_status(fd), KMS_ERR_PROTO);
    close(fd);

    /* Unknown command: NOTSUP, and the server still answers afterwards. */
    ttlv_item_t *u = admin_request_new(a, "key.exfiltrate");
    ttlv_item_t *resp = NULL;
    assert_int_equal(kmsctl_admin_call(a, u, &resp), KMSCTL_EXIT_UNREACHABLE);
    assert_int_equal(run(1, "status"), 0);
    kms_arena_free(a);
}

static void test_second_server_refused_and_stale_socket_replaced(void **state)
{
    fx_t *f = *state;
    admin_options_t o = {.socket_path = f->sock, .mode = 0600, .store = f->store,
                         .password_cost = COST};
    admin_t *ad2 = NULL;
    assert_int_equal(admin_start(&o, &ad2), KMS_ERR_EXISTS);
    assert_null(ad2);
    /* Stop: the socket goes away; kmsctl then says unreachable. */
    admin_stop(f->ad);
    f->ad = NULL;
    assert_int_equal(access(f->sock, F_OK), -1);
    assert_int_equal(run(1, "status"), KMSCTL_EXIT_UNREACHABLE);
    assert_int_equal(admin_start(&o, &f->ad), 0);
    assert_int_equal(run(1, "status"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_and_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients_cert_password_csr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_server_refused_and_stale_socket_replaced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
