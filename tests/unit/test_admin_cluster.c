/*
 * tests/unit/test_admin_cluster.c: the cluster commands of the admin
 * socket over a real SQLite store and a real CA on disk: join tokens
 * (round trip, every kind of damage refused), cluster.invite's refusals
 * and what it records (only SHA-256 of the secret, never the secret), and
 * `kmsctl cluster invite` through a real admin socket printing the token
 * as its last line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "admin/admin.h"
#include "certs/certs.h"
#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"
#include "replication/repl.h"
#include "tests/unit/util/tmpdir.h"

int cmd_cluster(int argc, char **argv);
kmsctl_globals_t kmsctl_g = {.config_path = NULL, .json = 0};

#define CLUSTER_ID "00112233445566778899aabbccddeeff"

typedef struct fx {
    char dir[64];
    char db[160], ca[160], cakey[160], sock[160], conf[160];
    store_t *store;
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    admin_options_t opt;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(kms_test_tmpdir(f->dir, sizeof f->dir, "admcl", "kms.db", f->db, sizeof f->db), 0);
    snprintf(f->ca, sizeof f->ca, "%s/ca.crt", f->dir);
    snprintf(f->cakey, sizeof f->cakey, "%s/ca.key", f->dir);
    snprintf(f->sock, sizeof f->sock, "%s/admin.sock", f->dir);
    snprintf(f->conf, sizeof f->conf, "%s/kmsd.yaml", f->dir);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &f->ca_key), 0);
    assert_int_equal(certs_create_ca(f->ca_key, "cluster CA", 0, &f->ca_cert), 0);
    assert_int_equal(certs_write_cert_pem(f->ca, f->ca_cert, false), 0);
    assert_int_equal(certs_write_key_pem(f->cakey, f->ca_key, false), 0);
    store_options_t so = {.path = f->db};
    assert_int_equal(store_open(&so, &f->store), 0);
    f->opt = (admin_options_t){.socket_path = f->sock, .mode = 0600, .store = f->store,
                               .client_ca = f->ca, .version = "test",
                               .peer_listen = "127.0.0.1:17000", .cluster_ca = f->ca,
                               .cluster_ca_key = f->cakey};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->store);
    X509_free(f->ca_cert);
    EVP_PKEY_free(f->ca_key);
    assert_int_equal(kms_test_rmdir(f->dir), 0);
    free(f);
    return 0;
}

static void set_cluster_id(fx_t *f, const char *id)
{
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_meta(w, "cluster_id", id, strlen(id)), 0);
    assert_int_equal(store_commit(f->store, w, NULL, 0), 0);
    store_write_free(w);
}

/* Run one admin command in process; returns its STATUS, resp in *out. */
static int exec_cmd(fx_t *f, kms_arena_t *a, const char *cmd, ttlv_item_t **out,
                    void (*args)(kms_arena_t *, ttlv_item_t *, void *), void *arg)
{
    ttlv_item_t *req = admin_request_new(a, cmd);
    assert_non_null(req);
    if (args)
        args(a, req, arg);
    ttlv_item_t *resp = admin_execute(&f->opt, kms_now_us(), "test", req, -1, -1, a);
    assert_non_null(resp);
    *out = resp;
    return admin_response_status(resp, NULL);
}

static const char *field_text(const ttlv_item_t *resp, const char *name)
{
    const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
    for (const ttlv_item_t *fl = rec ? ttlv_find(rec, ADMIN_TAG_FIELD) : NULL; fl;
         fl = ttlv_find_next(fl, ADMIN_TAG_FIELD))
        if (strcmp(admin_field_name(fl), name) == 0)
            return ttlv_text(admin_field_value(fl));
    return NULL;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    kms_hex_encode(md, 32, out);
}

/* ------------------------------------------------------------- tokens */
static repl_token_t sample_token(size_t n_addrs)
{
    repl_token_t t;
    memset(&t, 0, sizeof t);
    strcpy(t.cluster_id, CLUSTER_ID);
    for (size_t i = 0; i < n_addrs && i < REPL_TOKEN_ADDRS_MAX; i++)
        snprintf(t.addrs[i], sizeof t.addrs[i], "node-%zu.example:%zu", i, 7000 + i);
    t.n_addrs = n_addrs;
    for (int i = 0; i < 32; i++)
        t.ca_sha256[i] = (uint8_t)(0xA0 + i);
    strcpy(t.invite_id, "0123456789abcdef");
    t.secret = kms_secret_new(REPL_JOIN_SECRET_LEN);
    for (size_t i = 0; i < t.secret->len; i++)
        t.secret->data[i] = (uint8_t)(i * 7 + 1);
    t.expires_ms = 1893456000000LL;
    return t;
}

static void test_token_round_trip(void **state)
{
    (void)state;
    repl_token_t t = sample_token(REPL_TOKEN_ADDRS_MAX), back;
    kms_buf_t b;
    kms_error_t err;
    kms_buf_init(&b, 1 << 16);
    assert_int_equal(repl_token_encode(&t, &b, &err), 0);
    const char *text = (const char *)b.data;
    assert_int_equal(strncmp(text, REPL_TOKEN_PREFIX, strlen(REPL_TOKEN_PREFIX)), 0);
    /* base64url, unpadded: safe to paste into a shell. */
    assert_int_equal(strspn(text + strlen(REPL_TOKEN_PREFIX),
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     strlen(text) - strlen(REPL_TOKEN_PREFIX));
    assert_int_equal(repl_token_decode(text, &back, &err), 0);
    assert_string_equal(back.cluster_id, CLUSTER_ID);
    assert_int_equal(back.n_addrs, REPL_TOKEN_ADDRS_MAX);
    assert_string_equal(back.addrs[7], "node-7.example:7007");
    assert_memory_equal(back.ca_sha256, t.ca_sha256, 32);
    assert_string_equal(back.invite_id, "0123456789abcdef");
    assert_int_equal(back.secret->len, REPL_JOIN_SECRET_LEN);
    assert_memory_equal(back.secret->data, t.secret->data, REPL_JOIN_SECRET_LEN);
    assert_int_equal(back.expires_ms, t.expires_ms);
    repl_token_dispose(&back);

    /* Pasted with a newline: still the token. */
    char *copy = malloc(b.len + 3);
    snprintf(copy, b.len + 3, "%s\r\n", text);
    assert_int_equal(repl_token_decode(copy, &back, &err), 0);
    repl_token_dispose(&back);

    /* Every short form of damage is refused, never a crash. */
    size_t len = strlen(text);
    for (size_t cut = strlen(REPL_TOKEN_PREFIX); cut < len; cut += 7) {
        snprintf(copy, cut + 1, "%s", text);
        assert_int_equal(repl_token_decode(copy, &back, &err), KMS_ERR_PROTO);
        repl_token_dispose(&back);
    }
    snprintf(copy, b.len + 3, "%s", text);
    copy[strlen(REPL_TOKEN_PREFIX) + 5] = '*';
    assert_int_equal(repl_token_decode(copy, &back, &err), KMS_ERR_PROTO);
    assert_non_null(strstr(kms_error_msg(&err), "damaged"));
    repl_token_dispose(&back);
    snprintf(copy, b.len + 3, "kmsd-join-v2.%s", text + strlen(REPL_TOKEN_PREFIX));
    assert_int_equal(repl_token_decode(copy, &back, &err), KMS_ERR_PROTO);
    assert_int_equal(repl_token_decode(NULL, &back, &err), KMS_ERR_PROTO);
    /* A valid base64url body that is not a TOKEN. */
    assert_int_equal(repl_token_decode(REPL_TOKEN_PREFIX "QUJDREVGR0g", &back, &err), KMS_ERR_PROTO);
    free(copy);
    kms_buf_dispose_wipe(&b);
    repl_token_dispose(&t);

    /* What cannot be sent is refused at encoding. */
    kms_buf_init(&b, 1 << 16);
    repl_token_t none = sample_token(0);
    assert_int_equal(repl_token_encode(&none, &b, &err), KMS_ERR_INVAL);
    repl_token_dispose(&none);
    repl_token_t nine = sample_token(REPL_TOKEN_ADDRS_MAX);
    nine.n_addrs = REPL_TOKEN_ADDRS_MAX + 1;
    assert_int_equal(repl_token_encode(&nine, &b, &err), KMS_ERR_INVAL);
    repl_token_dispose(&nine);
    assert_int_equal(b.len, 0);
    kms_buf_dispose(&b);
}

/* ------------------------------------------------------------- invites */
static void arg_ttl(kms_arena_t *a, ttlv_item_t *req, void *arg)
{
    assert_non_null(ttlv_new_long(a, req, ADMIN_TAG_ARG_TTL_MS, *(int64_t *)arg));
}

static void arg_addr(kms_arena_t *a, ttlv_item_t *req, void *arg)
{
    assert_non_null(ttlv_new_textz(a, req, ADMIN_TAG_ARG_ADDR, arg));
}

static void test_invite_refusals(void **state)
{
    fx_t *f = *state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *resp = NULL;
    const char *m = NULL;

    /* No cluster id yet. */
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, NULL, NULL), KMS_ERR_STATE);
    admin_response_status(resp, &m);
    assert_non_null(strstr(m, "cluster id"));
    set_cluster_id(f, CLUSTER_ID);
    /* Not a cluster node. */
    f->opt.peer_listen = "";
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, NULL, NULL), KMS_ERR_STATE);
    admin_response_status(resp, &m);
    assert_non_null(strstr(m, "not a cluster node"));
    f->opt.peer_listen = "127.0.0.1:17000";
    /* A node without the CA key admits nobody. */
    f->opt.cluster_ca_key = "";
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, NULL, NULL), KMS_ERR_STATE);
    admin_response_status(resp, &m);
    assert_non_null(strstr(m, "replication.ca_key"));
    f->opt.cluster_ca_key = f->cakey;
    /* Lifetimes out of range, addresses that are not HOST:PORT. */
    int64_t ttl = 999;
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, arg_ttl, &ttl), KMS_ERR_INVAL);
    ttl = 8LL * 24 * 3600 * 1000;
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, arg_ttl, &ttl), KMS_ERR_INVAL);
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, arg_addr, "no-port"), KMS_ERR_INVAL);
    /* An unreadable CA certificate. */
    f->opt.cluster_ca = "/nonexistent/ca.crt";
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, NULL, NULL), KMS_ERR_CONFIG);
    f->opt.cluster_ca = f->ca;
    assert_null(ttlv_find(resp, ADMIN_TAG_RECORD));
    kms_arena_free(a);
}

/* The invite record kept in store meta. */
static void invite_record(fx_t *f, const char *id, char *out, size_t n)
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    char key[64];
    snprintf(key, sizeof key, "invite.%s", id);
    assert_int_equal(store_reader_new(f->store, &rd), 0);
    assert_int_equal(store_meta_get(rd, a, key, &v, &len), 0);
    assert_true(len < n);
    memcpy(out, v, len);
    out[len] = '\0';
    store_reader_free(rd);
    kms_arena_free(a);
}

static void test_invite_records_hash_only(void **state)
{
    fx_t *f = *state;
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *resp = NULL;
    repl_token_t t;
    kms_error_t err;
    char rec[256], want[256], hash[65];

    set_cluster_id(f, CLUSTER_ID);
    int64_t ttl = 90 * 1000;
    int64_t before = kms_now_us() / 1000;
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp, arg_ttl, &ttl), 0);
    const char *token = field_text(resp, "token");
    const char *id = field_text(resp, "invite");
    assert_non_null(token);
    assert_int_equal(repl_token_decode(token, &t, &err), 0);
    assert_string_equal(t.invite_id, id);
    assert_string_equal(t.cluster_id, CLUSTER_ID);
    assert_int_equal(t.n_addrs, 1);
    assert_string_equal(t.addrs[0], "127.0.0.1:17000");
    assert_true(t.expires_ms >= before + ttl && t.expires_ms <= kms_now_us() / 1000 + ttl);
    /* The CA the joining node will pin is the cluster CA. */
    uint8_t md[32];
    unsigned int mdlen = 0;
    assert_int_equal(X509_digest(f->ca_cert, EVP_sha256(), md, &mdlen), 1);
    assert_memory_equal(t.ca_sha256, md, 32);
    /* The store has SHA-256 of the secret, the expiry, "open"; not the secret. */
    invite_record(f, id, rec, sizeof rec);
    sha256_hex(t.secret->data, t.secret->len, hash);
    snprintf(want, sizeof want, "1 %s %lld open", hash, (long long)t.expires_ms);
    assert_string_equal(rec, want);
    store_close(f->store);
    f->store = NULL;
    FILE *db = fopen(f->db, "rb");
    static uint8_t content[1 << 20];
    size_t n = fread(content, 1, sizeof content, db);
    fclose(db);
    char shex[65];
    kms_hex_encode(t.secret->data, 32, shex);
    assert_null(memmem(content, n, t.secret->data, 32));
    assert_null(memmem(content, n, shex, 64));
    assert_non_null(memmem(content, n, hash, 64)); /* the check can see the database */
    store_options_t so = {.path = f->db};
    assert_int_equal(store_open(&so, &f->store), 0);
    f->opt.store = f->store;
    repl_token_dispose(&t);

    /* Every invite is new. */
    ttlv_item_t *resp2 = NULL;
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp2, NULL, NULL), 0);
    assert_string_not_equal(field_text(resp2, "invite"), id);
    assert_string_not_equal(field_text(resp2, "token"), token);
    /* Addresses given win; a wildcard listener is named by the host name. */
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp2, arg_addr, "kms-a.example:7443"), 0);
    assert_string_equal(field_text(resp2, "peer_addr"), "kms-a.example:7443");
    f->opt.peer_listen = "0.0.0.0:17001";
    char host[256], expect[300];
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(expect, sizeof expect, "%s:17001", host);
    assert_int_equal(exec_cmd(f, a, "cluster.invite", &resp2, NULL, NULL), 0);
    assert_string_equal(field_text(resp2, "peer_addr"), expect);
    kms_arena_free(a);
}

/* `kmsctl cluster invite` through a real admin socket: the token is the
 * last line of stdout. */
static void test_kmsctl_invite(void **state)
{
    fx_t *f = *state;
    admin_t *ad = NULL;
    char out[200], yaml[1024];
    set_cluster_id(f, CLUSTER_ID);
    snprintf(yaml, sizeof yaml, "tls:\n  client_ca: %s\nadmin:\n  socket: %s\nstore:\n  path: %s\n",
             f->ca, f->sock, f->db);
    FILE *c = fopen(f->conf, "w");
    fputs(yaml, c);
    fclose(c);
    kmsctl_g.config_path = f->conf;
    assert_int_equal(admin_start(&f->opt, &ad), 0);

    snprintf(out, sizeof out, "%s/stdout", f->dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    close(fd);
    char *argv[] = {"cluster", "invite", "--ttl", "30m", NULL};
    int ec = cmd_cluster(4, argv);
    char *bad[] = {"cluster", "invite", "--ttl", "soon", NULL};
    int ec_bad = cmd_cluster(4, bad);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    admin_stop(ad);
    assert_int_equal(ec, 0);
    assert_int_equal(ec_bad, KMSCTL_EXIT_USAGE);

    char line[4096], last[4096] = "";
    FILE *o = fopen(out, "r");
    int lines = 0;
    while (fgets(line, sizeof line, o)) {
        strcpy(last, line);
        lines++;
    }
    fclose(o);
    assert_true(lines >= 2);
    repl_token_t t;
    kms_error_t err;
    assert_int_equal(strncmp(last, REPL_TOKEN_PREFIX, strlen(REPL_TOKEN_PREFIX)), 0);
    assert_int_equal(repl_token_decode(last, &t, &err), 0);
    int64_t left = t.expires_ms - kms_now_us() / 1000;
    assert_true(left > 29 * 60 * 1000 && left <= 30 * 60 * 1000);
    repl_token_dispose(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test_setup_teardown(test_invite_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_records_hash_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kmsctl_invite, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
