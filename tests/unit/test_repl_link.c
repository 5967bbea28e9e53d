/* tests/unit/test_repl_link.c: replication links between module instances
 * in one process, over loopback with real TLS 1.3 and real SQLite stores
 * in a temp dir, and a raw TLS client playing a misbehaving peer. Links
 * come up both ways and come back after a restart; refused on the peer
 * port: a certificate without the peer role (a KMIP client certificate),
 * a certificate from another CA, a connection without a certificate that
 * sends anything but JOIN_REQ, another cluster, a clock off by more than
 * max_clock_skew (on both sides, visible in status), garbage, a frame
 * above max_frame (from its header alone), another protocol version; a
 * peer that goes silent is dropped after 5 keepalive periods. Verify:
 * digests asked of a peer over its link match the local ones for the same
 * objects and name the one object that differs. */
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "replication/repl.h"
#include "store/store.h"
#include "tests/unit/util/peerpki.h"
#include "tests/unit/util/tmpdir.h"

#define CLUSTER "c0ffee00c0ffee00c0ffee00c0ffee00"

static char g_dir[128];

typedef struct node {
    char name[32];
    int port;
    store_t *store;
    repl_t *repl;
} node_t;

static int free_port(void)
{
    int port = kms_test_free_port();
    assert_true(port > 0);
    return port;
}


typedef struct node_opts {
    const char *cert_dir;    /* NULL = g_dir */
    const char *ca;          /* CA name (file stem), NULL = "ca" */
    const char *cluster;     /* NULL = CLUSTER */
    int64_t clock_offset_ms;
    unsigned keepalive_ms;
} node_opts_t;

static void node_start(node_t *n, const char *name, int port, const int *peer_ports, size_t np,
                       const node_opts_t *o)
{
    char path[256], cert[256], key[256], ca[256], listen[32];
    char peerbuf[8][32];
    const char *peers[8];
    node_opts_t dflt = {0};
    kms_error_t err;
    if (!o)
        o = &dflt;
    const char *cd = o->cert_dir ? o->cert_dir : g_dir;
    snprintf(n->name, sizeof n->name, "%s", name);
    n->port = port;
    snprintf(path, sizeof path, "%s/%s.db", g_dir, name);
    snprintf(cert, sizeof cert, "%s/%s.crt", cd, name);
    snprintf(key, sizeof key, "%s/%s.key", cd, name);
    snprintf(ca, sizeof ca, "%s/%s.crt", cd, o->ca ? o->ca : "ca");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    for (size_t i = 0; i < np; i++) {
        snprintf(peerbuf[i], sizeof peerbuf[i], "127.0.0.1:%d", peer_ports[i]);
        peers[i] = peerbuf[i];
    }
    if (!n->store) {
        store_options_t so = {.path = path, .node_id = name};
        assert_int_equal(store_open(&so, &n->store), 0);
    }
    repl_options_t ro = {
        .store = n->store, .node_id = name, .cluster_id = o->cluster ? o->cluster : CLUSTER,
        .listen = listen, .peers = peers, .n_peers = np, .cert = cert, .key = key, .ca = ca,
        .clock_offset_ms = o->clock_offset_ms, .keepalive_ms = o->keepalive_ms ? o->keepalive_ms : 300,
        .handshake_ms = 2000,
    };
    int rc = repl_open(&ro, &n->repl, &err);
    if (rc)
        fail_msg("repl_open %s: %s", name, kms_error_msg(&err));
    rc = repl_start(n->repl, &err);
    if (rc)
        fail_msg("repl_start %s: %s", name, kms_error_msg(&err));
}

static void node_stop(node_t *n, bool keep_store)
{
    repl_close(n->repl);
    n->repl = NULL;
    if (!keep_store) {
        store_close(n->store);
        n->store = NULL;
    }
}

/* n's status entry for `peer` (copied), or false. */
static bool peer_status(node_t *n, const char *peer, repl_peer_status_t *out)
{
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *v = NULL;
    size_t k = 0;
    bool found = false;
    assert_int_equal(repl_status(n->repl, a, &v, &k), 0);
    for (size_t i = 0; i < k; i++)
        if (strcmp(v[i].node_id, peer) == 0) {
            *out = v[i];
            found = true;
        }
    kms_arena_free(a);
    return found;
}

static bool linked(node_t *n, const char *peer, bool out, bool in)
{
    repl_peer_status_t st;
    return peer_status(n, peer, &st) && (!out || st.connected_out) && (!in || st.connected_in);
}

#define WAIT_FOR(cond, ms)                                         \
    do {                                                           \
        int waited_ = 0;                                           \
        while (!(cond) && waited_ < (ms)) {                        \
            kms_test_sleep_ms(20);                                          \
            waited_ += 20;                                         \
        }                                                          \
        if (!(cond))                                               \
            fail_msg("timed out after %d ms waiting for %s", (ms), #cond); \
    } while (0)

static int setup(void **state)
{
    (void)state;
    if (kms_test_tmpdir(g_dir, sizeof g_dir, "repl-link", NULL, NULL, 0) != 0)
        return -1;
    char other[200];
    snprintf(other, sizeof other, "%s/other", g_dir);
    if (kms_test_pki_ca(g_dir, "ca") || kms_test_pki_node(g_dir, "ca", "n1", true) ||
        kms_test_pki_node(g_dir, "ca", "n2", true) || kms_test_pki_node(g_dir, "ca", "n3", true) ||
        kms_test_pki_node(g_dir, "ca", "client1", false))
        return -1;
    /* Another cluster's CA issuing a certificate for the same node name. */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", other);
    if (system(cmd) != 0 || kms_test_pki_ca(other, "ca") || kms_test_pki_node(other, "ca", "n2", true))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return kms_test_rmdir(g_dir);
}

/* ------------------------------------------------------- raw client */
typedef struct raw {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} raw_t;

/* A TLS 1.3 client to the peer port with node `cert` ("" = none) from
 * `dir`. Returns the handshake result (1 ok). */
static int raw_connect(raw_t *c, int port, const char *dir, const char *cert)
{
    char crt[256], key[256], ca[256];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    if (cert[0]) {
        snprintf(crt, sizeof crt, "%s/%s.crt", dir, cert);
        snprintf(key, sizeof key, "%s/%s.key", dir, cert);
        assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, crt, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    int rc = SSL_connect(c->ssl);
    ERR_clear_error();
    return rc;
}

static void raw_close(raw_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    ERR_clear_error();
}

static bool raw_write(raw_t *c, const void *p, size_t n)
{
    bool ok = SSL_write(c->ssl, p, (int)n) == (int)n;
    ERR_clear_error();
    return ok;
}

static bool raw_send(raw_t *c, const repl_frame_t *f)
{
    kms_buf_t b;
    kms_error_t err;
    kms_buf_init(&b, 1 << 20);
    assert_int_equal(repl_frame_encode(f, 0, &b, &err), 0);
    bool ok = raw_write(c, b.data, b.len);
    kms_buf_dispose(&b);
    return ok;
}

static bool read_exact(raw_t *c, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int k = SSL_read(c->ssl, p + got, (int)(n - got));
        if (k <= 0) {
            ERR_clear_error();
            return false;
        }
        got += (size_t)k;
    }
    return true;
}

/* The next frame from the peer, or NULL when the connection ended. */
static repl_frame_t *raw_recv(raw_t *c)
{
    uint8_t h[8];
    if (!read_exact(c, h, 8))
        return NULL;
    size_t total = 0;
    int type = 0;
    assert_int_equal(repl_frame_header(h, 8, 0, &type, &total), 0);
    uint8_t *buf = malloc(total);
    memcpy(buf, h, 8);
    repl_frame_t *f = NULL;
    kms_error_t err;
    if (read_exact(c, buf + 8, total - 8))
        assert_int_equal(repl_frame_decode(buf, total, NULL, &f, &err), 0);
    free(buf);
    return f;
}

/* Expect an ERROR frame with `code`, then the end of the connection. */
static void expect_error_close(raw_t *c, int code, const char *part)
{
    repl_frame_t *f = raw_recv(c);
    assert_non_null(f);
    if (f->type != REPL_FRAME_ERROR || f->u.error.code != code ||
        (part && !strstr(f->u.error.message, part)))
        fail_msg("wanted ERROR %d '%s', got %s %d '%s'", code, part ? part : "",
                 repl_frame_type_name(f->type), f->type == REPL_FRAME_ERROR ? f->u.error.code : 0,
                 f->type == REPL_FRAME_ERROR ? f->u.error.message : "");
    repl_frame_free(f);
    assert_null(raw_recv(c));
}

static void raw_hello(raw_t *c, const char *node, const char *cluster, int64_t wall)
{
    repl_frame_t *f = repl_frame_new(REPL_FRAME_HELLO);
    f->u.hello.version = REPL_PROTO_VERSION;
    f->u.hello.cluster_id = cluster;
    f->u.hello.node_id = node;
    f->u.hello.wall_ms = wall ? wall : kms_now_us() / 1000;
    f->u.hello.peer_addr = "";
    f->u.hello.kmip_addr = "";
    assert_true(raw_send(c, f));
    repl_frame_free(f);
}

/* n1 alone on a free port (no peers of its own); returns the port. */
static int start_lone(node_t *a)
{
    int port = free_port();
    node_start(a, "n1", port, NULL, 0, NULL);
    return port;
}

/* ------------------------------------------------------------- tests */
static void test_links_up_and_back(void **state)
{
    (void)state;
    node_t a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    node_start(&a, "n1", pa, &pb, 1, NULL);
    node_start(&b, "n2", pb, &pa, 1, NULL);
    WAIT_FOR(linked(&a, "n2", true, true) && linked(&b, "n1", true, true), 5000);
    repl_peer_status_t st;
    assert_true(peer_status(&a, "n2", &st));
    assert_string_equal(st.state, "ok");
    assert_true(st.last_contact_ms > 0);
    assert_true(st.clock_offset_ms > -1000 && st.clock_offset_ms < 1000);
    /* b restarts (same store): a's push link comes back by itself. */
    node_stop(&b, true);
    WAIT_FOR(!linked(&a, "n2", true, false), 5000);
    assert_true(peer_status(&a, "n2", &st));
    assert_true(st.last_error[0] != '\0');
    node_start(&b, "n2", pb, &pa, 1, NULL);
    WAIT_FOR(linked(&a, "n2", true, true) && linked(&b, "n1", true, true), 8000);
    node_stop(&a, false);
    node_stop(&b, false);
}

static void test_refused_certificates(void **state)
{
    (void)state;
    node_t a = {0};
    int pa = start_lone(&a);
    raw_t c;
    /* A KMIP client certificate (chains to the CA, no peer role). */
    assert_int_equal(raw_connect(&c, pa, g_dir, "client1"), 1);
    expect_error_close(&c, REPL_ERROR_DENIED, "no kmsd peer role");
    raw_close(&c);
    /* A node certificate from another cluster's CA: no TLS session. */
    char other[200];
    snprintf(other, sizeof other, "%s/other", g_dir);
    if (raw_connect(&c, pa, other, "n2") == 1)
        assert_null(raw_recv(&c)); /* TLS 1.3: the alert arrives after the client's finish */
    raw_close(&c);
    /* No certificate: only JOIN_REQ may follow, HELLO is refused. */
    assert_int_equal(raw_connect(&c, pa, g_dir, ""), 1);
    raw_hello(&c, "n2", CLUSTER, 0);
    expect_error_close(&c, REPL_ERROR_DENIED, "only send JOIN_REQ");
    raw_close(&c);
    /* A HELLO naming another node than the certificate. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n2"), 1);
    raw_hello(&c, "n3", CLUSTER, 0);
    expect_error_close(&c, REPL_ERROR_DENIED, "not the certificate's");
    raw_close(&c);
    /* Another cluster. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n2"), 1);
    raw_hello(&c, "n2", "another", 0);
    expect_error_close(&c, REPL_ERROR_CLUSTER, NULL);
    raw_close(&c);
    /* A whole instance with the other CA never links. */
    node_t x = {0};
    node_opts_t o = {.cert_dir = other};
    int px = free_port();
    node_start(&x, "n2", px, &pa, 1, &o);
    kms_test_sleep_ms(1500);
    assert_false(linked(&a, "n2", false, true));
    assert_false(linked(&x, "n1", true, false));
    node_stop(&x, false);
    /* The accepting node still serves a good peer afterwards. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    raw_hello(&c, "n3", CLUSTER, 0);
    repl_frame_t *f = raw_recv(&c);
    assert_non_null(f);
    assert_int_equal(f->type, REPL_FRAME_HELLO_ACK);
    assert_string_equal(f->u.hello_ack.node_id, "n1");
    repl_frame_free(f);
    raw_close(&c);
    node_stop(&a, false);
}

static void test_bad_frames(void **state)
{
    (void)state;
    node_t a = {0};
    int pa = start_lone(&a);
    raw_t c;
    /* Garbage instead of a frame. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    assert_true(raw_write(&c, "GET / HTTP/1.1\r\n\r\n", 18));
    expect_error_close(&c, REPL_ERROR_PROTO, NULL);
    raw_close(&c);
    /* A header announcing 1 GiB: refused from the header alone. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    uint8_t h[8] = {'K', 'R', 1, REPL_FRAME_HELLO, 0x40, 0, 0, 0};
    assert_true(raw_write(&c, h, 8));
    expect_error_close(&c, REPL_ERROR_LIMIT, "max_frame");
    raw_close(&c);
    /* Another protocol version. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    h[2] = 2;
    h[4] = 0;
    h[7] = 16;
    assert_true(raw_write(&c, h, 8));
    expect_error_close(&c, REPL_ERROR_VERSION, NULL);
    raw_close(&c);
    /* A well-formed frame body that is not a valid HELLO. */
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    uint8_t bad[24] = {'K', 'R', 1, REPL_FRAME_HELLO, 0, 0, 0, 16,
                       0x54, 0x55, 0x01, 0x01, 0, 0, 0, 8,
                       0x54, 0x55, 0x09, 0x03, 0, 0, 0, 0};
    assert_true(raw_write(&c, bad, sizeof bad));
    expect_error_close(&c, REPL_ERROR_PROTO, NULL);
    raw_close(&c);
    node_stop(&a, false);
}

static void test_clock_skew(void **state)
{
    (void)state;
    node_t a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    node_opts_t off = {.clock_offset_ms = 60000};
    node_start(&a, "n1", pa, &pb, 1, NULL);
    node_start(&b, "n2", pb, &pa, 1, &off);
    repl_peer_status_t st;
    WAIT_FOR(peer_status(&a, "n2", &st) && strcmp(st.state, "skew") == 0, 5000);
    assert_true(st.clock_offset_ms > 55000 && st.clock_offset_ms < 65000);
    assert_non_null(strstr(st.last_error, "clock skew"));
    WAIT_FOR(peer_status(&b, "n1", &st) && strcmp(st.state, "skew") == 0, 5000);
    kms_test_sleep_ms(500);
    assert_false(linked(&a, "n2", true, false));
    assert_false(linked(&a, "n2", false, true));
    node_stop(&a, false);
    node_stop(&b, false);
}

/* A peer that completes HELLO and then says nothing is dropped after 5
 * keepalive periods (300 ms here): a hung peer holds nothing. */
static void test_silent_peer_dropped(void **state)
{
    (void)state;
    node_t a = {0};
    int pa = start_lone(&a);
    raw_t c;
    assert_int_equal(raw_connect(&c, pa, g_dir, "n3"), 1);
    raw_hello(&c, "n3", CLUSTER, 0);
    repl_frame_t *f = raw_recv(&c);
    assert_non_null(f);
    assert_int_equal(f->type, REPL_FRAME_HELLO_ACK);
    repl_frame_free(f);
    WAIT_FOR(linked(&a, "n3", false, true), 2000);
    uint64_t t0 = kms_mono_ns();
    /* PINGs arrive meanwhile; never answered. */
    int pings = 0;
    while ((f = raw_recv(&c)) != NULL) {
        pings += f->type == REPL_FRAME_PING;
        repl_frame_free(f);
    }
    uint64_t ms = (kms_mono_ns() - t0) / 1000000;
    assert_true(pings >= 2);
    assert_true(ms >= 1000 && ms < 4000);
    WAIT_FOR(!linked(&a, "n3", false, true), 2000);
    raw_close(&c);
    node_stop(&a, false);
}

/* The same object (bytes) in a store, `note` as its x-note value. n1
 * ships its objects to n2 meanwhile, so on n2 the object may already be
 * there: then this is an update of the version found (retried when an
 * apply of n1's change committed in between). */
static void put_same(store_t *s, const char *id, const char *note)
{
    static const uint8_t blob[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                                   19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29};
    store_attr_t at = {.name = "x-note", .value = (const uint8_t *)note, .value_len = strlen(note)};
    store_object_t o = {.object_type = 2, .state = 2, .attrs = &at, .n_attrs = 1,
                        .sealed = {.dsk_id = 7, .gen = 1, .blob = blob, .len = sizeof blob}};
    kms_strlcpy(o.id, id, sizeof o.id);
    kms_strlcpy(o.tenant, "acme", sizeof o.tenant);
    int rc = KMS_ERR_CONFLICT;
    for (int attempt = 0; attempt < 20 && rc == KMS_ERR_CONFLICT; attempt++) {
        store_reader_t *rd = NULL;
        kms_arena_t *a = kms_arena_new(0);
        store_object_t *cur = NULL;
        assert_int_equal(store_reader_new(s, &rd), 0);
        int64_t version = store_get(rd, a, id, NULL, &cur) == 0 ? cur->version : STORE_VERSION_NEW;
        store_reader_free(rd);
        kms_arena_free(a);
        store_write_t *w = store_write_new();
        assert_int_equal(store_write_put(w, &o, version), 0);
        rc = store_commit(s, w, NULL, 0);
        store_write_free(w);
    }
    assert_int_equal(rc, 0);
}

typedef struct verified {
    _Atomic int done;
    int result;
    char node[64];
    kms_arena_t *a;
    repl_digest_t *v;
    size_t n;
} verified_t;

static void on_verified(const char *node_id, int result, const repl_digest_t *v, size_t n, void *arg)
{
    verified_t *x = arg;
    if (!node_id) {
        atomic_store(&x->done, 1);
        return;
    }
    snprintf(x->node, sizeof x->node, "%s", node_id);
    x->result = result;
    x->n = n;
    x->v = n ? kms_arena_memdup(x->a, v, n * sizeof *v) : NULL;
    for (size_t i = 0; i < n; i++) {
        x->v[i].tenant = kms_arena_strdup(x->a, v[i].tenant);
        x->v[i].id = kms_arena_strdup(x->a, v[i].id);
    }
}

static const repl_digest_t *find_digest(const repl_digest_t *v, size_t n, int kind, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if ((int)v[i].kind == kind && strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

static void test_verify_digests(void **state)
{
    (void)state;
    node_t a = {0}, b = {0};
    int pa = free_port(), pb = free_port();
    node_start(&a, "n1", pa, &pb, 1, NULL);
    node_start(&b, "n2", pb, NULL, 0, NULL);
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "obj-%02d", i);
        put_same(a.store, id, "same");
        put_same(b.store, id, i == 13 ? "differs" : "same");
    }
    WAIT_FOR(linked(&a, "n2", true, false), 5000);
    verified_t x = {.a = kms_arena_new(0)};
    assert_int_equal(repl_verify(a.repl, "", true, on_verified, &x), 0);
    WAIT_FOR(atomic_load(&x.done), 10000);
    assert_string_equal(x.node, "n2");
    assert_int_equal(x.result, 0);
    assert_int_equal(x.n, 21); /* one tenant, 20 objects */
    store_reader_t *rd = NULL;
    repl_digest_t *mine = NULL;
    size_t nm = 0;
    assert_int_equal(store_reader_new(a.store, &rd), 0);
    assert_int_equal(repl_verify_local(rd, "", true, x.a, &mine, &nm), 0);
    assert_int_equal(nm, 21);
    const repl_digest_t *ta = find_digest(mine, nm, REPL_DIGEST_TENANT, "");
    const repl_digest_t *tb = find_digest(x.v, x.n, REPL_DIGEST_TENANT, "");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_int_equal(ta->count, 20);
    assert_true(memcmp(ta->sha256, tb->sha256, 32) != 0);
    int differing = 0;
    for (size_t i = 0; i < nm; i++) {
        if (mine[i].kind != REPL_DIGEST_OBJECT)
            continue;
        const repl_digest_t *o = find_digest(x.v, x.n, REPL_DIGEST_OBJECT, mine[i].id);
        assert_non_null(o);
        if (memcmp(o->sha256, mine[i].sha256, 32) != 0) {
            assert_string_equal(mine[i].id, "obj-13");
            differing++;
        }
    }
    assert_int_equal(differing, 1);
    /* Per tenant only, and a tenant filter. */
    assert_int_equal(repl_verify_local(rd, "other", false, x.a, &mine, &nm), 0);
    assert_int_equal(nm, 0);
    assert_int_equal(repl_verify_local(rd, "acme", false, x.a, &mine, &nm), 0);
    assert_int_equal(nm, 1);
    assert_memory_equal(mine[0].sha256, ta->sha256, 32);
    store_reader_free(rd);
    kms_arena_free(x.a);
    node_stop(&a, false);
    node_stop(&b, false);
}

int main(void)
{
    /* Writes to a peer that closed must not kill the process (kmsd ignores
     * SIGPIPE at start; libuv leaves it to the application). */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links_up_and_back),
        cmocka_unit_test(test_refused_certificates),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_silent_peer_dropped),
        cmocka_unit_test(test_verify_digests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
