/*
 * tests/unit/test_repl_join.c: the inviter's side of a join
 * (replication/join.c, repl_join_answer) over a real SQLite store, a real
 * file master key and keyring, and a real CA on disk: an admitted node gets
 * certificates for its own keys, the node list with itself in it and the
 * data-store keys in plaintext; the invite is used up and the node listed.
 * Refusals (unknown invite, wrong secret, expired, used, a member's node
 * id, a bad CSR) are ERROR frames, and the ones that are the joining
 * node's mistake leave the invite open. KMIP Certify's issuing CA goes
 * with its key when the inviter has one, through an encode and decode.
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

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "hsm/hsm.h"
#include "replication/repl_int.h"
#include "tests/unit/util/tmpdir.h"

#define CLUSTER_ID "c0ffee00c0ffee00c0ffee00c0ffee00"

typedef struct fx {
    char dir[64], db[160], ca[160], cakey[160], mk[160];
    store_t *store;
    hsm_t *h;
    hsm_keyring_t *kr;
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    repl_options_t opt;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    kms_error_t err;
    kms_buf_t wrapped;
    assert_non_null(f);
    assert_int_equal(kms_test_tmpdir(f->dir, sizeof f->dir, "join", "kms.db", f->db, sizeof f->db), 0);
    snprintf(f->ca, sizeof f->ca, "%s/ca.crt", f->dir);
    snprintf(f->cakey, sizeof f->cakey, "%s/ca.key", f->dir);
    snprintf(f->mk, sizeof f->mk, "%s/master.key", f->dir);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &f->ca_key), 0);
    assert_int_equal(certs_create_ca(f->ca_key, "join CA", 0, &f->ca_cert), 0);
    assert_int_equal(certs_write_cert_pem(f->ca, f->ca_cert, false), 0);
    assert_int_equal(certs_write_key_pem(f->cakey, f->ca_key, false), 0);
    hsm_config_t hc = {.provider = HSM_PROVIDER_FILE, .key_file = f->mk, .slot = -1};
    assert_int_equal(hsm_init_master(&hc, NULL, &err), 0);
    assert_int_equal(hsm_open(&hc, &f->h, &err), 0);
    assert_int_equal(hsm_keyring_new(f->h, &f->kr), 0);
    store_options_t so = {.path = f->db, .node_id = "inviter"};
    assert_int_equal(store_open(&so, &f->store), 0);
    /* The inviter's own state, as kmsctl init and its first start leave it. */
    kms_buf_init(&wrapped, 4096);
    assert_int_equal(hsm_keyring_generate(f->kr, 7, &wrapped), 0);
    assert_int_equal(hsm_keyring_set_current(f->kr, 7), 0);
    store_write_t *w = store_write_new();
    store_node_t self = {.node_id = "inviter", .peer_addr = "127.0.0.1:7000",
                         .kmip_addr = "127.0.0.1:5696"};
    assert_int_equal(store_write_dsk(w, 7, wrapped.data, wrapped.len), 0);
    assert_int_equal(store_write_dsk_current(w, 7), 0);
    assert_int_equal(store_write_node(w, &self), 0);
    assert_int_equal(store_write_meta(w, "cluster_id", CLUSTER_ID, strlen(CLUSTER_ID)), 0);
    assert_int_equal(store_commit(f->store, w, NULL, 0), 0);
    store_write_free(w);
    kms_buf_dispose(&wrapped);
    f->opt = (repl_options_t){.store = f->store, .keyring = f->kr, .node_id = "inviter",
                              .cluster_id = CLUSTER_ID, .ca = f->ca, .ca_key = f->cakey,
                              .client_ca = f->ca, .sync_acks = 1, .max_frame = 1 << 20};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->store);
    hsm_keyring_free(f->kr);
    hsm_close(f->h);
    X509_free(f->ca_cert);
    EVP_PKEY_free(f->ca_key);
    assert_int_equal(kms_test_rmdir(f->dir), 0);
    free(f);
    return 0;
}

static void invite(fx_t *f, int64_t ttl_ms, repl_token_t *t)
{
    const char *addrs[] = {"127.0.0.1:7000"};
    repl_invite_options_t io = {.store = f->store, .cluster_id = CLUSTER_ID, .addrs = addrs,
                                .n_addrs = 1, .ca_cert = f->ca, .ttl_ms = ttl_ms};
    kms_buf_t tok;
    kms_error_t err;
    kms_buf_init(&tok, 1 << 16);
    assert_int_equal(repl_invite_new(&io, &tok, NULL, NULL, &err), 0);
    assert_int_equal(repl_token_decode((const char *)tok.data, t, &err), 0);
    kms_buf_dispose_wipe(&tok);
}

/* A joining node's request: its keys (kept for the checks) and CSRs. */
typedef struct joiner {
    EVP_PKEY *node_key, *srv_key;
    kms_buf_t node_csr, srv_csr;
    repl_frame_t *req;
} joiner_t;

static void joiner_new(joiner_t *j, const repl_token_t *t, const char *node_id, const char *csr_cn)
{
    X509_REQ *n = NULL, *s = NULL;
    const char *hosts[] = {"kms-new.example"};
    memset(j, 0, sizeof *j);
    kms_buf_init(&j->node_csr, 1 << 16);
    kms_buf_init(&j->srv_csr, 1 << 16);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &j->node_key), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &j->srv_key), 0);
    assert_int_equal(certs_csr_new(j->node_key, csr_cn ? csr_cn : node_id, NULL, 0, &n), 0);
    assert_int_equal(certs_csr_new(j->srv_key, "kms-new.example", hosts, 1, &s), 0);
    assert_int_equal(certs_csr_pem(n, &j->node_csr), 0);
    assert_int_equal(certs_csr_pem(s, &j->srv_csr), 0);
    X509_REQ_free(n);
    X509_REQ_free(s);
    j->req = repl_frame_new(REPL_FRAME_JOIN_REQ);
    j->req->u.join_req.invite_id = t->invite_id;
    j->req->u.join_req.secret = t->secret;
    j->req->u.join_req.node_id = node_id;
    j->req->u.join_req.peer_addr = "127.0.0.1:7001";
    j->req->u.join_req.kmip_addr = "127.0.0.1:5697";
    j->req->u.join_req.node_csr = (repl_bytes_t){j->node_csr.data, j->node_csr.len};
    j->req->u.join_req.server_csr = (repl_bytes_t){j->srv_csr.data, j->srv_csr.len};
}

static void joiner_free(joiner_t *j)
{
    repl_frame_free(j->req);
    EVP_PKEY_free(j->node_key);
    EVP_PKEY_free(j->srv_key);
    kms_buf_dispose(&j->node_csr);
    kms_buf_dispose(&j->srv_csr);
}

/* The answer's ERROR message, or NULL when it is a JOIN_RESP. */
static const char *refusal(fx_t *f, joiner_t *j, repl_frame_t **resp)
{
    assert_int_equal(repl_join_answer(&f->opt, "test", j->req, resp), 0);
    assert_non_null(*resp);
    if ((*resp)->type == REPL_FRAME_JOIN_RESP)
        return NULL;
    assert_int_equal((*resp)->type, REPL_FRAME_ERROR);
    return (*resp)->u.error.message;
}

static char *invite_state(fx_t *f, const char *id, char *out, size_t n)
{
    store_reader_t *rd = NULL;
    kms_arena_t *a = kms_arena_new(0);
    uint8_t *v = NULL;
    size_t len = 0;
    char key[64];
    snprintf(key, sizeof key, "invite.%s", id);
    assert_int_equal(store_reader_new(f->store, &rd), 0);
    assert_int_equal(store_meta_get(rd, a, key, &v, &len), 0);
    const char *last = memrchr(v, ' ', len);
    snprintf(out, n, "%.*s", (int)(len - (size_t)(last + 1 - (const char *)v)), last + 1);
    store_reader_free(rd);
    kms_arena_free(a);
    return out;
}

static void test_admitted(void **state)
{
    fx_t *f = *state;
    repl_token_t t;
    joiner_t j;
    repl_frame_t *resp = NULL;
    X509 *node = NULL, *srv = NULL;
    kms_error_t err;
    char st[80];

    invite(f, 60000, &t);
    joiner_new(&j, &t, "kms-new", NULL);
    assert_null(refusal(f, &j, &resp));
    /* Certificates for the joining node's own keys, by the cluster CA. */
    assert_string_equal(resp->u.join_resp.cluster_id, CLUSTER_ID);
    assert_int_equal(certs_cert_parse(resp->u.join_resp.node_cert.p, resp->u.join_resp.node_cert.len,
                                      &node), 0);
    assert_int_equal(certs_cert_parse(resp->u.join_resp.server_cert.p,
                                      resp->u.join_resp.server_cert.len, &srv), 0);
    assert_int_equal(certs_verify(f->ca_cert, node, X509_PURPOSE_SSL_CLIENT, &err), 0);
    assert_int_equal(certs_verify(f->ca_cert, srv, X509_PURPOSE_SSL_SERVER, &err), 0);
    assert_true(certs_has_peer_role(node));
    assert_false(certs_has_peer_role(srv));
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(node), j.node_key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(srv), j.srv_key), 1);
    assert_int_equal(X509_check_host(srv, "kms-new.example", 0, 0, NULL), 1);
    /* The CA as the inviter has it, byte for byte. */
    FILE *fp = fopen(f->ca, "rb");
    char ca_pem[8192];
    size_t ca_len = fread(ca_pem, 1, sizeof ca_pem, fp);
    fclose(fp);
    assert_int_equal(resp->u.join_resp.ca_cert.len, ca_len);
    assert_memory_equal(resp->u.join_resp.ca_cert.p, ca_pem, ca_len);
    /* Every data-store key in plaintext (the link's TLS protects it): the
     * same bytes the inviter holds. */
    assert_int_equal(resp->u.join_resp.n_dsks, 1);
    assert_int_equal(resp->u.join_resp.current_dsk, 7);
    const repl_entity_t *d = &resp->u.join_resp.dsks[0];
    kms_secret_t *mine = NULL;
    assert_int_equal(hsm_keyring_export(f->kr, 7, &mine), 0);
    assert_int_equal(d->dsk_id, 7);
    assert_true(d->dsk_current);
    assert_int_equal(d->dsk->len, mine->len);
    assert_memory_equal(d->dsk->data, mine->data, mine->len);
    kms_secret_free(mine);
    /* The node list: the inviter and the new node (with its fingerprint). */
    assert_int_equal(resp->u.join_resp.n_nodes, 2);
    char fp_hex[65];
    assert_int_equal(certs_fingerprint_sha256(node, fp_hex), 0);
    bool found = false;
    for (size_t i = 0; i < resp->u.join_resp.n_nodes; i++) {
        const repl_node_info_t *n = &resp->u.join_resp.nodes[i].node;
        if (strcmp(n->node_id, "kms-new") == 0) {
            found = true;
            assert_string_equal(n->peer_addr, "127.0.0.1:7001");
            assert_string_equal(n->cert_sha256, fp_hex);
            assert_false(n->removed);
        }
    }
    assert_true(found);
    /* The cluster's settings, for the new node's kmsd.yaml. */
    assert_int_equal(resp->u.join_resp.n_settings, 6);
    assert_string_equal(resp->u.join_resp.settings[0].name, "sync_acks");
    assert_string_equal(resp->u.join_resp.settings[0].value, "1");
    assert_string_equal(resp->u.join_resp.settings[5].name, "max_frame");
    assert_string_equal(resp->u.join_resp.settings[5].value, "1048576B");
    /* It encodes (the link sends it) and the invite is used up. */
    kms_buf_t b;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(resp, 0, &b, &err), 0);
    kms_buf_dispose_wipe(&b);
    assert_string_equal(invite_state(f, t.invite_id, st, sizeof st), "used:kms-new");
    repl_frame_free(resp);

    /* The same token again, for another node. */
    joiner_t j2;
    joiner_new(&j2, &t, "kms-other", NULL);
    const char *why = refusal(f, &j2, &resp);
    assert_non_null(why);
    assert_non_null(strstr(why, "already used (by node kms-new)"));
    repl_frame_free(resp);
    joiner_free(&j2);
    X509_free(node);
    X509_free(srv);
    joiner_free(&j);
    repl_token_dispose(&t);
}

/* One join with the options as they are; the decoded JOIN_RESP (encoded
 * and decoded again, as the joining node receives it). */
static repl_frame_t *join_roundtrip(fx_t *f, const char *node_id)
{
    repl_token_t t;
    joiner_t j;
    repl_frame_t *resp = NULL, *got = NULL;
    kms_error_t err;
    kms_buf_t b;

    invite(f, 60000, &t);
    joiner_new(&j, &t, node_id, NULL);
    assert_null(refusal(f, &j, &resp));
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(resp, 0, &b, &err), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, NULL, &got, &err), 0);
    kms_buf_dispose_wipe(&b);
    repl_frame_free(resp);
    joiner_free(&j);
    repl_token_dispose(&t);
    return got;
}

/* KMIP Certify's issuing CA goes to the joining node with its key, byte
 * for byte; an inviter without one sends none. */
static void test_issuing_ca(void **state)
{
    fx_t *f = *state;
    char crt[200], key[200], pem[8192];
    EVP_PKEY *k = NULL;
    X509 *ca = NULL;

    repl_frame_t *got = join_roundtrip(f, "kms-plain");
    assert_int_equal(got->u.join_resp.certify_ca.len, 0);
    assert_null(got->u.join_resp.certify_ca_key);
    repl_frame_free(got);

    snprintf(crt, sizeof crt, "%s/certify-ca.crt", f->dir);
    snprintf(key, sizeof key, "%s/certify-ca.key", f->dir);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &k), 0);
    assert_int_equal(certs_create_ca(k, "issuing CA", 0, &ca), 0);
    assert_int_equal(certs_write_cert_pem(crt, ca, false), 0);
    assert_int_equal(certs_write_key_pem(key, k, false), 0);
    f->opt.certify_ca = crt;
    f->opt.certify_ca_key = key;
    got = join_roundtrip(f, "kms-certify");
    FILE *fp = fopen(crt, "rb");
    size_t n = fread(pem, 1, sizeof pem, fp);
    fclose(fp);
    assert_int_equal(got->u.join_resp.certify_ca.len, n);
    assert_memory_equal(got->u.join_resp.certify_ca.p, pem, n);
    fp = fopen(key, "rb");
    n = fread(pem, 1, sizeof pem, fp);
    fclose(fp);
    assert_non_null(got->u.join_resp.certify_ca_key);
    assert_int_equal(got->u.join_resp.certify_ca_key->len, n);
    assert_memory_equal(got->u.join_resp.certify_ca_key->data, pem, n);
    kms_wipe(pem, sizeof pem);
    repl_frame_free(got);

    /* An issuing CA the inviter cannot read: the join is refused rather
     * than the new node left without it. */
    f->opt.certify_ca_key = "/nonexistent/certify-ca.key";
    repl_token_t t;
    joiner_t j;
    repl_frame_t *resp = NULL;
    invite(f, 60000, &t);
    joiner_new(&j, &t, "kms-broken", NULL);
    const char *why = refusal(f, &j, &resp);
    assert_non_null(why);
    assert_non_null(strstr(why, "issuing CA"));
    repl_frame_free(resp);
    /* Nothing was spent: the invite is still open and the node is no
     * member, so the same token works once the inviter is fixed. */
    char st[80];
    store_reader_t *rd = NULL;
    store_node_t none;
    assert_string_equal(invite_state(f, t.invite_id, st, sizeof st), "open");
    assert_int_equal(store_reader_new(f->store, &rd), 0);
    assert_int_equal(store_node_get(rd, "kms-broken", &none), KMS_ERR_NOTFOUND);
    store_reader_free(rd);
    f->opt.certify_ca_key = key;
    assert_null(refusal(f, &j, &resp));
    assert_non_null(resp->u.join_resp.certify_ca_key);
    assert_string_equal(invite_state(f, t.invite_id, st, sizeof st), "used:kms-broken");
    repl_frame_free(resp);
    joiner_free(&j);
    repl_token_dispose(&t);
    X509_free(ca);
    EVP_PKEY_free(k);
}

static void test_refusals(void **state)
{
    fx_t *f = *state;
    repl_token_t t, t2;
    joiner_t j;
    repl_frame_t *resp = NULL;
    const char *why;
    char st[80];

    invite(f, 60000, &t);
    /* A node CSR that does not name the node: refused, invite still open. */
    joiner_new(&j, &t, "kms-x", "kms-y");
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "node CSR refused"));
    assert_int_equal(resp->u.error.code, REPL_ERROR_DENIED);
    repl_frame_free(resp);
    joiner_free(&j);
    assert_string_equal(invite_state(f, t.invite_id, st, sizeof st), "open");
    /* A member's node id (the inviter's own here): refused, still open. */
    joiner_new(&j, &t, "inviter", NULL);
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "already a cluster member"));
    repl_frame_free(resp);
    joiner_free(&j);
    /* A node id peers would refuse. */
    joiner_new(&j, &t, "bad id", NULL);
    assert_non_null(why = refusal(f, &j, &resp));
    repl_frame_free(resp);
    joiner_free(&j);
    /* The wrong secret. */
    joiner_new(&j, &t, "kms-x", NULL);
    kms_secret_t *other = kms_secret_dup(t.secret->data, t.secret->len);
    other->data[0] ^= 1;
    j.req->u.join_req.secret = other;
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "wrong secret"));
    repl_frame_free(resp);
    kms_secret_free(other);
    /* An unknown invite. */
    j.req->u.join_req.secret = t.secret;
    j.req->u.join_req.invite_id = "0000000000000000";
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "unknown invite"));
    repl_frame_free(resp);
    joiner_free(&j);
    assert_string_equal(invite_state(f, t.invite_id, st, sizeof st), "open");
    /* An expired one. */
    invite(f, 1, &t2);
    usleep(5000);
    joiner_new(&j, &t2, "kms-x", NULL);
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "expired"));
    repl_frame_free(resp);
    joiner_free(&j);
    /* After all that, the first invite still admits a correct request. */
    joiner_new(&j, &t, "kms-x", NULL);
    assert_null(refusal(f, &j, &resp));
    repl_frame_free(resp);
    joiner_free(&j);
    /* A node that holds no CA key admits nobody. */
    repl_token_dispose(&t2);
    invite(f, 60000, &t2);
    f->opt.ca_key = "";
    joiner_new(&j, &t2, "kms-z", NULL);
    assert_non_null(why = refusal(f, &j, &resp));
    assert_non_null(strstr(why, "no cluster CA key"));
    repl_frame_free(resp);
    joiner_free(&j);
    repl_token_dispose(&t);
    repl_token_dispose(&t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuing_ca, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
