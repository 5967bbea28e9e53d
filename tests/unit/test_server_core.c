/*
 * tests/unit/test_server_core.c: kmsd's TLS context builder and listen
 * sockets (server/tls.c, server/listen.c), against real OpenSSL objects,
 * real PEM files and real sockets, linked from libserver (all of server/
 * but main.c). The connection state machine itself is tested
 * end to end in tests/interop/test_server_*.py against a running kmsd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "certs/certs.h"
#include "server/server_int.h"

typedef struct pki {
    char dir[64];
    char yaml[4096];
} pki_t;

static void write_pki(pki_t *p)
{
    EVP_PKEY *cak = NULL, *sk = NULL, *ok = NULL;
    X509 *ca = NULL, *srv = NULL, *other = NULL;
    char path[128];
    const char *hosts[] = {"localhost"};

    snprintf(p->dir, sizeof p->dir, "/tmp/kmsd-srvtest-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &cak), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &sk), 0);
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &ok), 0);
    assert_int_equal(certs_create_ca(cak, "test CA", 10, &ca), 0);
    assert_int_equal(certs_issue_server(ca, cak, sk, "kmsd", hosts, 1, 10, &srv), 0);
    assert_int_equal(certs_issue_server(ca, cak, ok, "other", hosts, 1, 10, &other), 0);
    snprintf(path, sizeof path, "%s/ca.crt", p->dir);
    assert_int_equal(certs_write_cert_pem(path, ca, true), 0);
    snprintf(path, sizeof path, "%s/server.crt", p->dir);
    assert_int_equal(certs_write_cert_pem(path, srv, true), 0);
    snprintf(path, sizeof path, "%s/server.key", p->dir);
    assert_int_equal(certs_write_key_pem(path, sk, true), 0);
    snprintf(path, sizeof path, "%s/other.key", p->dir);
    assert_int_equal(certs_write_key_pem(path, ok, true), 0);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(sk);
    EVP_PKEY_free(ok);
    X509_free(ca);
    X509_free(srv);
    X509_free(other);
}

static void rm_pki(pki_t *p)
{
    const char *names[] = {"ca.crt", "server.crt", "server.key", "other.key"};
    char path[128];
    for (size_t i = 0; i < KMS_ARRAY_SIZE(names); i++) {
        snprintf(path, sizeof path, "%s/%s", p->dir, names[i]);
        unlink(path);
    }
    rmdir(p->dir);
}

/* Build a context from the tls section `extra` (YAML lines, indented 2). */
static int ctx_from(pki_t *p, const char *extra, SSL_CTX **ctx, kms_error_t *err)
{
    conf_t *c = NULL;
    kms_error_t cerr = {0};
    snprintf(p->yaml, sizeof p->yaml,
             "tls:\n  cert: server.crt\n  key: server.key\n  client_ca: ca.crt\n%s", extra);
    int rc = conf_load_buffer("t.yaml", p->dir, p->yaml, strlen(p->yaml), &c, &cerr);
    if (rc != 0) {
        print_error("conf: %s\n", cerr.msg);
        return rc;
    }
    rc = srv_tls_ctx_new(c, ctx, err);
    conf_free(c);
    return rc;
}

static void test_tls_defaults(void **state)
{
    (void)state;
    pki_t p;
    SSL_CTX *ctx = NULL;
    kms_error_t err = {0};
    write_pki(&p);
    assert_int_equal(ctx_from(&p, "", &ctx, &err), 0);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    uint64_t o = SSL_CTX_get_options(ctx);
    assert_true(o & SSL_OP_NO_RENEGOTIATION);
    assert_true(o & SSL_OP_NO_COMPRESSION);
    /* Resumption is stateful: tickets name a session in the server's cache
     * (SSL_OP_NO_TICKET under TLS 1.3), one per handshake. */
    assert_true(o & SSL_OP_NO_TICKET);
    assert_int_equal(SSL_CTX_get_num_tickets(ctx), 1);
    assert_int_equal(SSL_CTX_sess_get_cache_size(ctx), 1024);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_SERVER);
    /* Only forward-secret AEAD suites are enabled for TLS 1.2. */
    SSL *s = SSL_new(ctx);
    STACK_OF(SSL_CIPHER) *cs = SSL_get1_supported_ciphers(s);
    assert_non_null(cs);
    for (int i = 0; i < sk_SSL_CIPHER_num(cs); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(cs, i);
        assert_true(SSL_CIPHER_is_aead(ci));
        int kx = SSL_CIPHER_get_kx_nid(ci);
        assert_true(kx == NID_kx_ecdhe || kx == NID_kx_dhe || kx == NID_kx_any);
    }
    sk_SSL_CIPHER_free(cs);
    SSL_free(s);
    SSL_CTX_free(ctx);
    rm_pki(&p);
}

static void test_tls_options(void **state)
{
    (void)state;
    pki_t p;
    SSL_CTX *ctx = NULL;
    kms_error_t err = {0};
    write_pki(&p);
    assert_int_equal(ctx_from(&p, "  min_version: \"1.3\"\n  client_auth: optional\n"
                                  "  session_resumption: false\n",
                              &ctx, &err),
                     0);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET);
    assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
    assert_int_equal(SSL_CTX_get_num_tickets(ctx), 0);
    SSL_CTX_free(ctx);
    rm_pki(&p);
}

static void test_tls_errors_name_the_setting(void **state)
{
    (void)state;
    pki_t p;
    SSL_CTX *ctx = NULL;
    kms_error_t err = {0};
    write_pki(&p);

    assert_int_equal(ctx_from(&p, "  ciphers: \"NOT-A-CIPHER\"\n", &ctx, &err),
                     KMS_ERR_CONFIG);
    assert_null(ctx);
    assert_non_null(strstr(err.msg, "tls.ciphers"));

    /* The key of another certificate. */
    snprintf(p.yaml, sizeof p.yaml, "x");
    conf_t *c = NULL;
    kms_error_t cerr = {0};
    char y[512];
    snprintf(y, sizeof y, "tls:\n  cert: server.crt\n  key: other.key\n  client_ca: ca.crt\n");
    assert_int_equal(conf_load_buffer("t.yaml", p.dir, y, strlen(y), &c, &cerr), 0);
    assert_int_equal(srv_tls_ctx_new(c, &ctx, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "does not match"));
    conf_free(c);

    snprintf(y, sizeof y, "tls:\n  cert: missing.crt\n  key: server.key\n  client_ca: ca.crt\n");
    assert_int_equal(conf_load_buffer("t.yaml", p.dir, y, strlen(y), &c, &cerr), 0);
    assert_int_equal(srv_tls_ctx_new(c, &ctx, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "tls.cert"));
    assert_non_null(strstr(err.msg, "missing.crt"));
    conf_free(c);

    snprintf(y, sizeof y, "tls:\n  cert: server.crt\n  key: server.key\n  client_ca: none.crt\n");
    assert_int_equal(conf_load_buffer("t.yaml", p.dir, y, strlen(y), &c, &cerr), 0);
    assert_int_equal(srv_tls_ctx_new(c, &ctx, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "tls.client_ca"));
    conf_free(c);
    assert_int_equal(ERR_peek_error(), 0); /* nothing left on the error queue */
    rm_pki(&p);
}

/* A swap never frees a context that an open connection still uses. */
static void test_tls_swap_keeps_old_for_open_connections(void **state)
{
    (void)state;
    pki_t p;
    srv_t srv;
    SSL_CTX *a = NULL, *b = NULL;
    kms_error_t err = {0};
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.tls_lock, NULL);
    write_pki(&p);
    assert_int_equal(ctx_from(&p, "", &a, &err), 0);
    assert_int_equal(ctx_from(&p, "", &b, &err), 0);
    srv_tls_swap(&srv, a);
    SSL *old = srv_tls_new_ssl(&srv);
    assert_ptr_equal(SSL_get_SSL_CTX(old), a);
    srv_tls_swap(&srv, b); /* drops the server's reference to a */
    SSL *nw = srv_tls_new_ssl(&srv);
    assert_ptr_equal(SSL_get_SSL_CTX(nw), b);
    /* `a` is still alive through `old` (ASan would flag a use after free). */
    assert_int_equal(SSL_CTX_get_min_proto_version(SSL_get_SSL_CTX(old)), TLS1_2_VERSION);
    SSL_free(old);
    SSL_free(nw);
    srv_tls_swap(&srv, NULL);
    pthread_mutex_destroy(&srv.tls_lock);
    rm_pki(&p);
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void resolve(srv_t *srv, conf_t **c, const char *listen_yaml)
{
    char y[256];
    kms_error_t err = {0};
    snprintf(y, sizeof y, "listen: %s\n", listen_yaml);
    assert_int_equal(conf_load_buffer("t.yaml", "/tmp", y, strlen(y), c, &err), 0);
    memset(srv, 0, sizeof *srv);
    srv->conf = *c;
    assert_int_equal(srv_listen_resolve(srv, &err), 0);
}

static void test_listen_reuseport_and_probe(void **state)
{
    (void)state;
    srv_t srv;
    conf_t *c = NULL;
    kms_error_t err = {0};
    char y[64];
    uint16_t port = free_port();
    snprintf(y, sizeof y, "[\"127.0.0.1:%u\"]", port);
    resolve(&srv, &c, y);
    assert_int_equal(srv.n_addrs, 1);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    assert_string_equal(srv.addrs[0].text, want);

    assert_int_equal(srv_listen_probe(&srv.addrs[0], &err), 0);
    int a = srv_listen_socket(&srv.addrs[0], &err);
    int b = srv_listen_socket(&srv.addrs[0], &err); /* one per loop */
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(listen(a, 8), 0);
    assert_int_equal(listen(b, 8), 0);
    /* Another process (no SO_REUSEPORT) cannot take it, and the probe says so. */
    assert_int_equal(srv_listen_probe(&srv.addrs[0], &err), KMS_ERR_IO);
    assert_non_null(strstr(err.msg, "in use"));
    close(a);
    close(b);
    assert_int_equal(srv_listen_probe(&srv.addrs[0], &err), 0);
    free(srv.addrs);
    conf_free(c);
}

/* A port free on both IPv4 and IPv6: bound dual-stack ("[::]:0", so the
 * kernel picks one free in both families), then released. -1 without
 * IPv6. */
static int free_port_dual(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0), off = 0, port = -1;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    socklen_t l = sizeof a;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0 &&
        bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin6_port);
    close(fd);
    return port;
}

/* Whether this sandbox has an IPv6 loopback at all. */
static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void test_listen_ipv6_only_unless_any(void **state)
{
    (void)state;
    kms_error_t err = {0};
    if (!have_ipv6_loopback())
        skip();
    /* Ports chosen free can be taken by another process (tests run in
     * parallel) before we bind them: a bind that fails is retried with new
     * ports, a few times; the socket options are what is checked. */
    for (int attempt = 0; attempt < 10; attempt++) {
        srv_t srv;
        conf_t *c = NULL;
        char y[96];
        int p1 = free_port_dual(), p2 = free_port_dual();
        assert_true(p1 > 0 && p2 > 0);
        if (p1 == p2)
            continue;
        snprintf(y, sizeof y, "[\"[::1]:%d\", \"[::]:%d\"]", p1, p2);
        resolve(&srv, &c, y);
        assert_int_equal(srv.n_addrs, 2);
        int a = srv_listen_socket(&srv.addrs[0], &err);
        int b = a >= 0 ? srv_listen_socket(&srv.addrs[1], &err) : -1;
        if (a >= 0 && b >= 0) {
            int v = -1;
            socklen_t l = sizeof v;
            assert_int_equal(getsockopt(a, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l), 0);
            assert_int_equal(v, 1);
            assert_int_equal(getsockopt(b, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l), 0);
            assert_int_equal(v, 0); /* "[::]" is dual-stack */
        }
        if (a >= 0)
            close(a);
        if (b >= 0)
            close(b);
        free(srv.addrs);
        conf_free(c);
        if (a >= 0 && b >= 0)
            return;
        print_message("ports %d/%d taken meanwhile (%s); again\n", p1, p2, err.msg);
    }
    fail_msg("could not bind two fresh IPv6 ports in 10 attempts: %s", err.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_defaults),
        cmocka_unit_test(test_tls_options),
        cmocka_unit_test(test_tls_errors_name_the_setting),
        cmocka_unit_test(test_tls_swap_keeps_old_for_open_connections),
        cmocka_unit_test(test_listen_reuseport_and_probe),
        cmocka_unit_test(test_listen_ipv6_only_unless_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
