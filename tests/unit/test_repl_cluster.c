/* tests/unit/test_repl_cluster.c: replication of data between two and
 * three module instances in one process, over loopback TLS 1.3, each with
 * its own real SQLite store and file master key in a temp dir (no kmsd).
 * Objects (exact sealed bytes and attributes, openable with the
 * receiver's own keyring), tenants, clients (device clients with their
 * identifiers too) and data-store keys arrive;
 * concurrent conflicting updates on two cut-off nodes converge by the
 * merge rule; a node stopped and restarted (also mid-stream) resumes from
 * its link position with nothing lost and nothing applied twice; a new
 * node is seeded by snapshot (rate printed); the log is trimmed once every
 * peer acknowledged it; sync-ack waits succeed, fail or degrade; a removed
 * node is refused; a stream of small commits reaches three nodes in
 * batches, without falling behind; frames that arrive while the receiver
 * commits are applied together once that commit is durable, and
 * acknowledged only then. REPL_BIG=N sets the snapshot size (default 20000). */
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
#include <sqlite3.h>

#include "hsm/hsm.h"
#include "replication/repl.h"
#include "store/store.h"
#include "tests/unit/util/logcap.h"
#include "tests/unit/util/peerpki.h"
#include "tests/unit/util/tmpdir.h"

#define CLUSTER "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e"
#define MAXN 3

static char g_dir[128];

typedef struct node {
    char name[16];
    int port;
    store_t *store;
    hsm_t *hsm;
    hsm_keyring_t *kr;
    repl_t *repl;
    store_reader_t *rd;
} node_t;

static node_t N[MAXN];
static int ports[MAXN];
static sqlite3 *g_locker;    /* a test's own connection to a node's database */

static int free_port(void)
{
    int port = kms_test_free_port();
    assert_true(port > 0);
    return port;
}


static uint64_t now_ms(void)
{
    return kms_mono_ns() / 1000000;
}

/* Wait for cond, at most 3 x ms: the deadlines are what a quiet machine
 * needs with room to spare, and three nodes with TLS under ASan on a
 * machine busy with other work took longer than 5 s to link. The wait
 * ends as soon as cond holds, so a longer bound costs nothing. */
#define WAIT_FOR(cond, ms)                                                  \
    do {                                                                    \
        uint64_t t0_ = now_ms();                                            \
        bool ok_ = false;                                                   \
        while (!(ok_ = (cond)) && now_ms() - t0_ < 3 * (uint64_t)(ms))      \
            kms_test_sleep_ms(10);                                          \
        if (!ok_)                                                           \
            fail_msg("timed out after %d ms waiting for %s", 3 * (ms), #cond); \
    } while (0)

/* Open node i's store and keyring (created on first use). */
static void node_open_data(int i)
{
    node_t *n = &N[i];
    char path[256], key[256];
    snprintf(n->name, sizeof n->name, "n%d", i + 1);
    snprintf(path, sizeof path, "%s/%s.db", g_dir, n->name);
    snprintf(key, sizeof key, "%s/%s.master", g_dir, n->name);
    hsm_config_t hc = {.provider = HSM_PROVIDER_FILE, .key_file = key, .slot = -1};
    if (access(key, F_OK) != 0)
        assert_int_equal(hsm_init_master(&hc, NULL, NULL), 0);
    assert_int_equal(hsm_open(&hc, &n->hsm, NULL), 0);
    assert_int_equal(hsm_keyring_new(n->hsm, &n->kr), 0);
    store_options_t so = {.path = path, .node_id = n->name};
    assert_int_equal(store_open(&so, &n->store), 0);
    assert_int_equal(store_reader_new(n->store, &n->rd), 0);
    /* Load the DSKs this node holds (wrapped under its own master). */
    kms_arena_t *a = kms_arena_new(0);
    store_dsk_t *d = NULL;
    size_t nd = 0;
    assert_int_equal(store_list_dsks(n->rd, a, &d, &nd), 0);
    for (size_t k = 0; k < nd; k++) {
        char mk[32];
        uint8_t *w = NULL;
        size_t wl = 0;
        snprintf(mk, sizeof mk, "dsk.%u", d[k].id);
        assert_int_equal(store_meta_get(n->rd, a, mk, &w, &wl), 0);
        assert_int_equal(hsm_keyring_load(n->kr, d[k].id, w, wl), 0);
    }
    uint32_t cur = 0;
    store_change_id_t cid;
    if (store_dsk_current(n->rd, &cur, &cid) == 0)
        assert_int_equal(hsm_keyring_set_current(n->kr, cur), 0);
    kms_arena_free(a);
}

typedef struct opts {
    unsigned sync_acks;
    unsigned sync_timeout_ms;
    bool degrade;
    uint64_t startup_wait_ms;
    unsigned unlinked;       /* bit j: node j is not among the configured peers */
    size_t log_tail_bytes;
} opts_t;

static void node_start(int i, const opts_t *o)
{
    node_t *n = &N[i];
    char cert[256], key[256], ca[256], listen[32], pb[MAXN][32];
    const char *peers[MAXN];
    size_t np = 0;
    kms_error_t err;
    opts_t dflt = {0};
    if (!o)
        o = &dflt;
    if (!n->store)
        node_open_data(i);
    snprintf(cert, sizeof cert, "%s/%s.crt", g_dir, n->name);
    snprintf(key, sizeof key, "%s/%s.key", g_dir, n->name);
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ports[i]);
    for (int j = 0; j < MAXN; j++)
        if (j != i && !(o->unlinked & (1u << j))) {
            snprintf(pb[np], sizeof pb[np], "127.0.0.1:%d", ports[j]);
            peers[np] = pb[np];
            np++;
        }
    repl_options_t ro = {
        .store = n->store, .keyring = n->kr, .node_id = n->name, .cluster_id = CLUSTER,
        .listen = listen, .peers = peers, .n_peers = np, .cert = cert, .key = key, .ca = ca,
        .keepalive_ms = 500, .handshake_ms = 2000, .sync_acks = o->sync_acks,
        .sync_timeout_ms = o->sync_timeout_ms, .sync_degrade = o->degrade, .trim_every_ms = 200,
        .startup_wait_ms = o->startup_wait_ms, .log_tail_bytes = o->log_tail_bytes,
    };
    if (repl_open(&ro, &n->repl, &err) != 0 || repl_start(n->repl, &err) != 0)
        fail_msg("%s: %s", n->name, kms_error_msg(&err));
}

static void node_stop(int i, bool close_data)
{
    node_t *n = &N[i];
    repl_close(n->repl);
    n->repl = NULL;
    if (close_data) {
        store_reader_free(n->rd);
        store_close(n->store);
        hsm_keyring_free(n->kr);
        hsm_close(n->hsm);
        n->rd = NULL;
        n->store = NULL;
        n->kr = NULL;
        n->hsm = NULL;
    }
}

static int setup(void **state)
{
    (void)state;
    memset(N, 0, sizeof N);
    if (kms_test_tmpdir(g_dir, sizeof g_dir, "repl-cluster", NULL, NULL, 0) != 0 ||
        kms_test_pki_ca(g_dir, "ca"))
        return -1;
    for (int i = 0; i < MAXN; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "n%d", i + 1);
        if (kms_test_pki_node(g_dir, "ca", nm, true))
            return -1;
        ports[i] = free_port();
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_locker) {
        sqlite3_close(g_locker); /* rolls back: the node's writer goes on */
        g_locker = NULL;
    }
    for (int i = 0; i < MAXN; i++)
        if (N[i].repl || N[i].store)
            node_stop(i, true);
    return kms_test_rmdir(g_dir);
}

/* ------------------------------------------------------------ writes */
static void commit(int i, store_write_t *w)
{
    int rc = store_commit(N[i].store, w, NULL, 0);
    if (rc)
        fail_msg("commit on %s: %s", N[i].name, kms_strerror(rc));
    store_write_free(w);
}

/* A new DSK on node i, made current. */
static uint32_t new_dsk(int i, uint32_t id)
{
    kms_buf_t wr;
    kms_buf_init(&wr, 4096);
    assert_int_equal(hsm_keyring_generate(N[i].kr, id, &wr), 0);
    assert_int_equal(hsm_keyring_set_current(N[i].kr, id), 0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_dsk(w, id, wr.data, wr.len), 0);
    assert_int_equal(store_write_dsk_current(w, id), 0);
    commit(i, w);
    kms_buf_dispose(&wr);
    return id;
}

static const uint8_t V_ALG[] = {0x42, 0x00, 0x28, 0x05, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0};

/* Object `id` on node i (tenant "default"), with sealed material and a
 * text attribute x-note = note. */
static void put_obj(int i, store_write_t *w, const char *id, const char *note, uint32_t state)
{
    kms_arena_t *sa = kms_arena_new(0);
    kms_sealed_t sealed;
    assert_int_equal(hsm_row_seal(N[i].kr, "default", id, NULL, (const uint8_t *)id, strlen(id), sa,
                                  &sealed), 0);
    uint8_t nv[64];
    size_t nl = strlen(note);
    memset(nv, 0, sizeof nv);
    nv[0] = 0x54; nv[1] = 0x00; nv[2] = 0x01; nv[3] = 0x07;
    kms_put_be32(nv + 4, (uint32_t)nl);
    memcpy(nv + 8, note, nl);
    store_attr_t at[2] = {
        {.name = "Cryptographic Algorithm", .value = V_ALG, .value_len = sizeof V_ALG, .nkey = 3,
         .has_nkey = true},
        {.name = "x-note", .value = nv, .value_len = 8 + ((nl + 7) / 8) * 8, .skey = note},
    };
    store_object_t o = {.object_type = 2, .state = state, .sealed = sealed, .attrs = at,
                        .n_attrs = 2};
    kms_strlcpy(o.id, id, sizeof o.id);
    kms_strlcpy(o.tenant, "default", sizeof o.tenant);
    assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
    kms_arena_free(sa);
}

static void create_objects(int i, const char *prefix, int count, int per_commit)
{
    for (int k = 0; k < count;) {
        store_write_t *w = store_write_new();
        for (int j = 0; j < per_commit && k < count; j++, k++) {
            char id[64];
            snprintf(id, sizeof id, "%s-%08d", prefix, k);
            put_obj(i, w, id, "created", 1);
        }
        commit(i, w);
    }
}

static int64_t count(int i)
{
    return store_count_objects(N[i].rd);
}

/* Change one attribute of `id` on node i (touched: that name only). */
static void set_note(int i, const char *id, const char *note, uint32_t state)
{
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *o = NULL;
    assert_int_equal(store_get(N[i].rd, a, id, NULL, &o), 0);
    uint8_t *nv = kms_arena_alloc(a, 64);
    size_t nl = strlen(note);
    nv[0] = 0x54; nv[1] = 0x00; nv[2] = 0x01; nv[3] = 0x07;
    kms_put_be32(nv + 4, (uint32_t)nl);
    memcpy(nv + 8, note, nl);
    const char *touched[2] = {"x-note", "State"};
    for (size_t k = 0; k < o->n_attrs; k++)
        if (strcmp(o->attrs[k].name, "x-note") == 0) {
            o->attrs[k].value = nv;
            o->attrs[k].value_len = 8 + ((nl + 7) / 8) * 8;
            o->attrs[k].skey = note;
        }
    o->touched = touched;
    o->n_touched = state ? 2 : 1;
    if (state)
        o->state = state;
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_put(w, o, o->version), 0);
    commit(i, w);
    kms_arena_free(a);
}

static bool note_is(int i, const char *id, const char *note)
{
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *o = NULL;
    bool ok = false;
    if (store_get(N[i].rd, a, id, NULL, &o) == 0)
        for (size_t k = 0; k < o->n_attrs; k++)
            if (strcmp(o->attrs[k].name, "x-note") == 0 && o->attrs[k].skey &&
                strcmp(o->attrs[k].skey, note) == 0)
                ok = true;
    kms_arena_free(a);
    return ok;
}

/* Objects equal on nodes i and j: state, blob bytes, every attribute. */
static bool same_object(int i, int j, const char *id)
{
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *x = NULL, *y = NULL;
    bool ok = store_get(N[i].rd, a, id, NULL, &x) == 0 && store_get(N[j].rd, a, id, NULL, &y) == 0 &&
              x->state == y->state && x->object_type == y->object_type &&
              strcmp(x->tenant, y->tenant) == 0 && x->sealed.len == y->sealed.len &&
              (x->sealed.len == 0 || memcmp(x->sealed.blob, y->sealed.blob, x->sealed.len) == 0) &&
              x->sealed.dsk_id == y->sealed.dsk_id && x->sealed.gen == y->sealed.gen &&
              x->n_attrs == y->n_attrs;
    for (size_t k = 0; ok && k < x->n_attrs; k++)
        ok = strcmp(x->attrs[k].name, y->attrs[k].name) == 0 &&
             x->attrs[k].index == y->attrs[k].index &&
             x->attrs[k].value_len == y->attrs[k].value_len &&
             memcmp(x->attrs[k].value, y->attrs[k].value, x->attrs[k].value_len) == 0;
    kms_arena_free(a);
    return ok;
}

static bool connected(int i, int j)
{
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *v = NULL;
    size_t n = 0;
    bool ok = false;
    assert_int_equal(repl_status(N[i].repl, a, &v, &n), 0);
    for (size_t k = 0; k < n; k++)
        if (strcmp(v[k].node_id, N[j].name) == 0 && v[k].connected_out && v[k].connected_in)
            ok = true;
    kms_arena_free(a);
    return ok;
}

typedef struct rows_ctx {
    const char *origin;
    int64_t n;
} rows_ctx_t;

static int count_row(const store_change_t *ch, void *arg)
{
    rows_ctx_t *c = arg;
    c->n += strcmp(ch->id.origin, c->origin) == 0;
    return 0;
}

/* Change-log rows on node i whose origin is `origin`. */
static int64_t rows_from(int i, const char *origin)
{
    rows_ctx_t c = {origin, 0};
    assert_int_equal(store_changes_since(N[i].rd, 0, 0, count_row, &c), 0);
    return c.n;
}

/* ------------------------------------------------------------- tests */

/* Objects, tenants, clients and DSKs made on n1 reach n2 and n3 with
 * identical bytes; n2 opens n1's sealed material with its own keyring
 * (the DSK arrived over TLS and was wrapped under n2's master key). */
static void test_replicates_everything(void **state)
{
    (void)state;
    node_open_data(0);
    uint32_t dsk = new_dsk(0, 0x1234abcd);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    commit(0, w);
    w = store_write_new();
    store_client_t cl = {.created_us = 5};
    kms_strlcpy(cl.name, "vcenter-1", sizeof cl.name);
    kms_strlcpy(cl.tenant, "acme", sizeof cl.tenant);
    kms_strlcpy(cl.role, "client", sizeof cl.role);
    kms_strlcpy(cl.kind, "cert", sizeof cl.kind);
    memset(cl.cert_sha256, 'a', 64);
    assert_int_equal(store_write_client(w, &cl, false), 0);
    /* A device client: its identifiers and hash travel with the record. */
    store_client_t dc = {.created_us = 6};
    kms_strlcpy(dc.name, "tape-1", sizeof dc.name);
    kms_strlcpy(dc.tenant, "acme", sizeof dc.tenant);
    kms_strlcpy(dc.role, "client", sizeof dc.role);
    kms_strlcpy(dc.password_hash, "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                sizeof dc.password_hash);
    const store_device_t dev = {.serial = "serNum123456", .device_id = "devID2233",
                                .media_id = "mediaID313"};
    assert_int_equal(store_client_set_device(&dc, &dev), 0);
    assert_int_equal(store_write_client(w, &dc, false), 0);
    commit(0, w);
    create_objects(0, "obj", 50, 10);
    for (int i = 0; i < 3; i++)
        if (!N[i].repl)
            node_start(i, NULL);
    WAIT_FOR(count(1) == 50 && count(2) == 50, 10000);
    for (int k = 0; k < 50; k += 7) {
        char id[64];
        snprintf(id, sizeof id, "obj-%08d", k);
        assert_true(same_object(0, 1, id));
        assert_true(same_object(0, 2, id));
    }
    /* Tenants and clients. */
    WAIT_FOR(store_tenant_exists(N[1].rd, "acme") == 0 && store_tenant_exists(N[2].rd, "acme") == 0,
             5000);
    store_client_t got;
    WAIT_FOR(store_client_by_name(N[2].rd, "vcenter-1", &got) == 0, 5000);
    assert_string_equal(got.tenant, "acme");
    assert_string_equal(got.cert_sha256, cl.cert_sha256);
    WAIT_FOR(store_client_by_device(N[2].rd, "serNum123456", &got) == 0, 5000);
    store_device_t got_dev;
    assert_string_equal(got.name, "tape-1");
    assert_string_equal(got.password_hash, dc.password_hash);
    assert_int_equal(store_client_device(&got, &got_dev), 0);
    assert_memory_equal(&got_dev, &dev, sizeof dev);
    assert_int_equal(store_client_by_device(N[1].rd, "serNum123456", &got), 0);
    /* The DSK: same bytes, wrapped under n2's own master, current there. */
    kms_secret_t *k1 = NULL, *k2 = NULL;
    WAIT_FOR(hsm_keyring_export(N[1].kr, dsk, &k2) == 0, 5000);
    assert_int_equal(hsm_keyring_export(N[0].kr, dsk, &k1), 0);
    assert_memory_equal(k1->data, k2->data, 32);
    kms_secret_free(k1);
    kms_secret_free(k2);
    WAIT_FOR(hsm_keyring_current(N[1].kr) == dsk, 5000);
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *o = NULL;
    kms_secret_t *plain = NULL;
    assert_int_equal(store_get(N[1].rd, a, "obj-00000003", NULL, &o), 0);
    assert_int_equal(hsm_row_open(N[1].kr, "default", o->id, &o->sealed, &plain), 0);
    assert_memory_equal(plain->data, "obj-00000003", 12);
    kms_secret_free(plain);
    kms_arena_free(a);
    /* Nothing came back to n1 as a change of its own made elsewhere. */
    assert_int_equal(rows_from(0, "n2"), 0);
    assert_int_equal(rows_from(0, "n3"), 0);
}

/* Two nodes cut off from each other update the same keys differently;
 * after they meet, both hold the merged state: per-name last writer,
 * and the lifecycle join for the state. */
static void test_conflicts_converge(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 7);
    create_objects(0, "k", 4, 4);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(count(1) == 4, 10000);
    node_stop(0, false);
    node_stop(1, false); /* cut */
    /* Cut off, the two clocks do not observe each other: writes a few
     * ms apart order by wall time (within one ms the node id decides). */
    set_note(0, "k-00000000", "from-n1", 2);   /* n1 activates and notes */
    kms_test_sleep_ms(3);
    set_note(1, "k-00000000", "from-n2", 0);   /* n2 notes later */
    set_note(1, "k-00000001", "n2-only", 3);   /* n2 deactivates */
    kms_test_sleep_ms(3);
    set_note(0, "k-00000001", "n1-later", 0);  /* ... n1 notes later */
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(note_is(0, "k-00000000", "from-n2") && note_is(1, "k-00000001", "n1-later"), 10000);
    WAIT_FOR(same_object(0, 1, "k-00000000") && same_object(0, 1, "k-00000001"), 5000);
    kms_arena_t *a = kms_arena_new(0);
    store_object_t *o = NULL;
    assert_int_equal(store_get(N[0].rd, a, "k-00000000", NULL, &o), 0);
    assert_int_equal(o->state, 2); /* Active from n1 survives n2's later note */
    assert_int_equal(store_get(N[1].rd, a, "k-00000001", NULL, &o), 0);
    assert_int_equal(o->state, 3);
    kms_arena_free(a);
}

/* n2 (seeded) stopped while n1 writes, then restarted: everything
 * arrives once; stopped again in the middle of the stream, store closed,
 * and restarted: the rest arrives from its link position, nothing
 * applied twice (one logged row per change of n1). */
/* Enough objects that n2, stopped once it has 500, is still far from all
 * of them on a fast machine (it applies ~10 000 per second here). */
#define RESUME_N 10000

static void test_resume_no_loss_no_dup(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 9);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl), 5000);
    node_stop(1, false);
    create_objects(0, "r", RESUME_N, 500);
    uint64_t t0 = now_ms();
    node_start(1, NULL);
    WAIT_FOR(count(1) >= 500, 20000);
    int64_t first = count(1);
    uint64_t t1 = now_ms();
    node_stop(1, true); /* mid-stream, store closed too: a restart */
    int64_t partial = 0;
    node_open_data(1);
    partial = count(1);
    assert_true(partial >= 500);
    if (partial >= RESUME_N)
        fail_msg("n2 had all %d objects before its restart: test too small", RESUME_N);
    uint64_t t2 = now_ms();
    node_start(1, NULL);
    WAIT_FOR(count(1) == RESUME_N, 30000);
    uint64_t t3 = now_ms();
    printf("log catch-up (CHANGES frames): %lld objects in %llu ms, then after a restart %lld in "
           "%llu ms (%.0f objects/s)\n", (long long)first, (unsigned long long)(t1 - t0),
           (long long)(RESUME_N - partial), (unsigned long long)(t3 - t2),
           (RESUME_N - partial) * 1000.0 / (double)(t3 - t2 ? t3 - t2 : 1));
    /* Each change applied once: n2 logged one row per object of n1 (and
     * the DSK rows), whatever was re-sent after the restart. */
    int64_t rows = rows_from(1, "n1");
    if (rows != RESUME_N)
        fail_msg("n2 logged %lld rows of n1's changes, want %d", (long long)rows, RESUME_N);
}

/* A third node joins empty: not ready until seeded by snapshot, then
 * the tail follows; the snapshot is not relayed (no log rows). */
static void test_snapshot_catch_up(void **state)
{
    (void)state;
    const char *big = getenv("REPL_BIG");
    int nbig = big ? atoi(big) : 20000;
    node_open_data(0);
    new_dsk(0, 11);
    create_objects(0, "s", nbig, 1000);
    node_open_data(2);
    assert_int_equal(count(2), 0);
    node_start(0, NULL);
    uint64_t t0 = now_ms();
    node_start(2, NULL);
    assert_false(repl_ready(N[2].repl)); /* a joining node: not before its snapshot */
    WAIT_FOR(count(2) == nbig, 600000);
    uint64_t ms = now_ms() - t0;
    WAIT_FOR(repl_ready(N[2].repl), 5000);
    printf("snapshot catch-up: %d objects in %llu ms = %.0f objects/s\n", nbig,
           (unsigned long long)ms, ms ? nbig * 1000.0 / ms : 0.0);
    assert_true(same_object(0, 2, "s-00000000"));
    /* The tail after the snapshot. */
    create_objects(0, "t", 10, 10);
    WAIT_FOR(count(2) == nbig + 10, 10000);
    /* n3 was seeded without relaying: its log has none of n1's rows. */
    assert_int_equal(rows_from(2, "n1"), 10);
}

static int count_any(const store_change_t *ch, void *arg)
{
    (void)ch;
    (*(int64_t *)arg)++;
    return 0;
}

static int64_t log_rows(int i)
{
    int64_t n = 0;
    assert_int_equal(store_changes_since(N[i].rd, 0, 0, count_any, &n), 0);
    return n;
}

/* Three nodes up: once every peer acknowledged everything, every log is
 * trimmed to nothing (the next change still replicates). */
static void test_trim_when_all_acked(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        node_open_data(i);
    new_dsk(0, 13);
    for (int i = 0; i < 3; i++)
        node_start(i, NULL);
    create_objects(0, "q", 200, 50);
    WAIT_FOR(count(1) == 200 && count(2) == 200, 20000);
    assert_true(log_rows(0) > 0);
    WAIT_FOR(log_rows(0) == 0 && log_rows(1) == 0 && log_rows(2) == 0, 20000);
    create_objects(1, "after", 1, 1);
    WAIT_FOR(count(0) == 201 && count(2) == 201, 10000);
}

/* sync_acks 1: a change waits for n2's ack; with n2 gone the wait fails
 * after sync_timeout_ms (fail) or answers with a warning (degrade). */
typedef struct waitres {
    _Atomic int done;
    _Atomic int result;
} waitres_t;

static void on_wait(int result, void *arg)
{
    waitres_t *w = arg;
    atomic_store(&w->result, result);
    atomic_store(&w->done, 1);
}

static int64_t last_seq(int i)
{
    return store_last_seq(N[i].rd);
}

/* n1 (options o, data-store key dsk) linked to n2. */
static void start_pair(const opts_t *o, uint32_t dsk)
{
    node_open_data(0);
    new_dsk(0, dsk);
    node_start(0, o);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1), 5000);
}

/* One object made on n1, and a wait for its acks: the wait's result. */
static int create_and_wait(const char *prefix)
{
    waitres_t w = {0};
    create_objects(0, prefix, 1, 1);
    assert_int_equal(repl_wait(N[0].repl, last_seq(0), on_wait, &w), 0);
    WAIT_FOR(atomic_load(&w.done), 15000);
    return atomic_load(&w.result);
}

static repl_sync_stats_t sync_stats(int i)
{
    repl_sync_stats_t st;
    repl_sync_stats(N[i].repl, &st);
    return st;
}

/* The receiver keeps reading while it commits: n2's commit of n1's first
 * frame is held (another connection holds its database's write lock),
 * n1 commits six more times meanwhile (new objects, and an object
 * changed in four of them), and n2 holds those frames. None is
 * acknowledged while the first commit waits (a sync-ack wait on n1 stays
 * open). Released, the six are applied in ONE commit, the object ends
 * with its last change, and the wait is answered. */
static void test_read_ahead_applied_together(void **state)
{
    (void)state;
    enum { K = 7 };
    opts_t patient = {.sync_acks = 1, .sync_timeout_ms = 30000};
    start_pair(&patient, 41);
    create_objects(0, "ra-x", 1, 1);
    /* n2 seeded (its snapshot ended) and holding the object: from here on
     * n1 sends it CHANGES only. */
    WAIT_FOR(repl_ready(N[1].repl) && count(1) == 1, 5000);
    int64_t have = count(1);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.db", g_dir, N[1].name);
    assert_int_equal(sqlite3_open(path, &g_locker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(g_locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    repl_sync_stats_t before = sync_stats(1);
    /* K commits on n1, each its own frame: notes v1..v4 on ra-x-00000000
     * in the 1st, 3rd, 5th and 7th, a new object in the others. */
    for (int k = 0; k < K; k++) {
        char note[8], prefix[16];
        if (k % 2 == 0) {
            snprintf(note, sizeof note, "v%d", k / 2 + 1);
            set_note(0, "ra-x-00000000", note, 0);
        } else {
            snprintf(prefix, sizeof prefix, "ra-n%d", k);
            create_objects(0, prefix, 1, 1);
        }
    }
    waitres_t w = {0};
    assert_int_equal(repl_wait(N[0].repl, last_seq(0), on_wait, &w), 0);
    /* The first frame is being applied; the other six wait on n2. */
    WAIT_FOR(sync_stats(1).apply_waiting == K - 1, 5000);
    assert_false(atomic_load(&w.done)); /* nothing acknowledged: not durable on n2 */
    assert_int_equal(count(1), have);
    assert_int_equal(sqlite3_exec(g_locker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(g_locker);
    g_locker = NULL;
    WAIT_FOR(atomic_load(&w.done), 10000);
    assert_int_equal(atomic_load(&w.result), 0);
    assert_int_equal(count(1), have + K / 2);
    assert_true(note_is(1, "ra-x-00000000", "v4"));
    assert_true(same_object(0, 1, "ra-x-00000000"));
    repl_sync_stats_t after = sync_stats(1);
    print_message("%llu frames in %llu commits\n",
                  (unsigned long long)(after.apply_frames - before.apply_frames),
                  (unsigned long long)(after.apply_commits - before.apply_commits));
    assert_int_equal(after.apply_waiting, 0);
    assert_true(after.apply_frames - before.apply_frames >= K);
    assert_int_equal(after.apply_commits - before.apply_commits, 2);
}

static void test_sync_acks(void **state)
{
    (void)state;
    opts_t patient = {.sync_acks = 1, .sync_timeout_ms = 10000};
    opts_t fail = {.sync_acks = 1, .sync_timeout_ms = 300};
    opts_t degrade = {.sync_acks = 1, .sync_timeout_ms = 200, .degrade = true};
    start_pair(&patient, 17);
    assert_int_equal(create_and_wait("w"), 0);
    assert_int_equal(count(1), 1); /* acked means durable there */
    node_stop(1, false);
    node_stop(0, false);
    node_start(0, &fail);
    uint64_t t0 = now_ms();
    assert_int_equal(create_and_wait("x"), KMS_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 280);
    node_stop(0, false);
    node_start(0, &degrade);
    assert_int_equal(create_and_wait("y"), 0);
}

/* sync_acks 2 on three nodes: a change waits for both peers. With one
 * peer up the wait times out; with both, 40 waiters at successive
 * positions, all waiting at once, are each answered, and only once both
 * peers hold their change. */
static void test_sync_acks_two(void **state)
{
    (void)state;
    enum { W = 40 };
    opts_t two = {.sync_acks = 2, .sync_timeout_ms = 10000};
    opts_t two_short = {.sync_acks = 2, .sync_timeout_ms = 300};
    start_pair(&two_short, 37);
    assert_int_equal(create_and_wait("s2a"), KMS_ERR_TIMEOUT); /* one ack of two */
    WAIT_FOR(count(1) == 1, 5000);
    node_stop(0, false);
    node_start(0, &two);
    node_start(2, NULL);
    WAIT_FOR(connected(0, 1) && connected(0, 2) && repl_ready(N[2].repl), 5000);
    waitres_t rs[W];
    memset(rs, 0, sizeof rs);
    for (int k = 0; k < W; k++) {
        char p[16];
        snprintf(p, sizeof p, "s2b%d", k);
        create_objects(0, p, 1, 1);
        assert_int_equal(repl_wait(N[0].repl, last_seq(0), on_wait, &rs[k]), 0);
    }
    for (int k = 0; k < W; k++) {
        WAIT_FOR(atomic_load(&rs[k].done), 10000);
        assert_int_equal(atomic_load(&rs[k].result), 0);
    }
    /* the last answer came once both peers had every change durably */
    assert_int_equal(count(1), 1 + W);
    assert_int_equal(count(2), 1 + W);
}

/* A node marked removed (replicated node row) is refused everywhere. */
static void test_removed_node_refused(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 19);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1), 5000);
    store_node_t nd = {.removed = true};
    kms_strlcpy(nd.node_id, "n2", sizeof nd.node_id);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_node(w, &nd), 0);
    commit(0, w);
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *v = NULL;
    size_t n = 0;
    bool removed = false;
    for (int t = 0; t < 500 && !removed; t++) {
        kms_arena_reset(a);
        assert_int_equal(repl_status(N[0].repl, a, &v, &n), 0);
        for (size_t k = 0; k < n; k++)
            if (strcmp(v[k].node_id, "n2") == 0 && strcmp(v[k].state, "removed") == 0 &&
                !v[k].connected_in && !v[k].connected_out)
                removed = true;
        kms_test_sleep_ms(10);
    }
    kms_arena_free(a);
    assert_true(removed);
    kms_test_sleep_ms(1000); /* n2 keeps trying; n1 keeps refusing */
    assert_false(connected(0, 1));
}

/* Nodes 1..k in node i's node list (as `kmsctl init` / `cluster join`
 * record them; replicated to the others). */
static void list_nodes(int i, int k)
{
    store_write_t *w = store_write_new();
    for (int j = 0; j < k; j++) {
        store_node_t nd = {.removed = false};
        snprintf(nd.node_id, sizeof nd.node_id, "n%d", j + 1);
        snprintf(nd.peer_addr, sizeof nd.peer_addr, "127.0.0.1:%d", ports[j]);
        assert_int_equal(store_write_node(w, &nd), 0);
    }
    commit(i, w);
}

/* A restarted node serves only once it has what its peers wrote while it
 * was away: not ready (KMIP listener closed) until then, and when ready
 * every object is there. With its peer down it serves after startup_wait
 * (no quorum), not before. */
static void test_restart_waits_for_peers(void **state)
{
    (void)state;
    opts_t wait_long = {.startup_wait_ms = 60000}, wait_short = {.startup_wait_ms = 600};
    node_open_data(0);
    new_dsk(0, 29);
    list_nodes(0, 2);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl) && count(1) == 0, 5000);
    node_stop(1, true);
    create_objects(0, "w", 3000, 100);
    node_open_data(1);
    assert_int_equal(count(1), 0);
    node_start(1, &wait_long);
    assert_false(repl_ready(N[1].repl));
    uint64_t t0 = now_ms();
    WAIT_FOR(repl_ready(N[1].repl), 30000);
    assert_int_equal(count(1), 3000);
    printf("restart catch-up: ready after %llu ms with 3000 objects\n",
           (unsigned long long)(now_ms() - t0));

    /* Its peer down: ready after startup_wait, not before. */
    node_stop(0, false);
    node_stop(1, false);
    t0 = now_ms();
    node_start(1, &wait_short);
    WAIT_FOR(repl_ready(N[1].repl), 5000);
    uint64_t waited = now_ms() - t0;
    if (waited < 550)
        fail_msg("ready after %llu ms with its only peer down; startup_wait is 600 ms",
                 (unsigned long long)waited);
}

/* A serving node keeps serving while a peer that never reached it sends
 * it a snapshot (the first contact of a node with changes of its own):
 * only a node that holds nothing stops serving for a snapshot. */
static void test_seeded_node_serves_during_snapshot(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 31);
    create_objects(0, "p", 100, 100);
    node_open_data(2);
    new_dsk(2, 33);
    create_objects(2, "q", 5000, 1000); /* n3's own changes, never sent */
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(repl_ready(N[1].repl) && count(1) == 100, 10000);
    node_start(2, NULL);
    uint64_t t0 = now_ms();
    int not_ready = 0;
    while (count(1) < 5100 && now_ms() - t0 < 60000) {
        if (!repl_ready(N[1].repl))
            not_ready++;
        kms_test_sleep_ms(1);
    }
    assert_int_equal(count(1), 5100);
    if (not_ready)
        fail_msg("n2 stopped serving %d times while n3's snapshot was applied", not_ready);
}

/* A node joining two nodes that hold 3 000 objects is seeded by one
 * snapshot: the other node's push link starts where that snapshot left
 * off instead of sending a second one. */
static void test_join_one_snapshot(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 41);
    create_objects(0, "j", 3000, 500);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(count(1) == 3000, 20000);
    create_objects(1, "k", 10, 10);
    WAIT_FOR(count(0) == 3010, 10000);
    node_start(2, NULL);
    WAIT_FOR(connected(2, 0) && connected(2, 1) && repl_ready(N[2].repl) && count(2) == 3010,
             30000);
    create_objects(1, "l", 10, 10); /* the tail still flows from both */
    create_objects(0, "m", 10, 10);
    WAIT_FOR(count(2) == 3030, 10000);
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *v = NULL;
    size_t n = 0, snapshots = 0;
    assert_int_equal(repl_status(N[2].repl, a, &v, &n), 0);
    for (size_t k = 0; k < n; k++)
        snapshots += v[k].catchup_total > 0;
    kms_arena_free(a);
    assert_int_equal(snapshots, 1);
}

/* Replication lag at a steady write rate: n1 commits 10 objects every
 * 10 ms (1000/s) for 3 s; every 10 ms the test samples how far n2 is
 * behind (objects) and the lag n1 reports (ms). Prints p50/p99. */
static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void test_steady_lag(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 23);
    node_open_data(1);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl), 5000);
    int64_t behind[400], lagms[400];
    size_t ns = 0;
    int made = 0;
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 3000 && ns < 400) {
        store_write_t *w = store_write_new();
        for (int j = 0; j < 10; j++, made++) {
            char id[64];
            snprintf(id, sizeof id, "lag-%08d", made);
            put_obj(0, w, id, "steady", 1);
        }
        commit(0, w);
        kms_test_sleep_ms(10);
        behind[ns] = made - count(1);
        kms_arena_t *a = kms_arena_new(0);
        repl_peer_status_t *v = NULL;
        size_t n = 0;
        assert_int_equal(repl_status(N[0].repl, a, &v, &n), 0);
        lagms[ns] = 0;
        for (size_t k = 0; k < n; k++)
            if (strcmp(v[k].node_id, "n2") == 0)
                lagms[ns] = v[k].lag_ms;
        kms_arena_free(a);
        ns++;
    }
    uint64_t t_end = now_ms();
    WAIT_FOR(count(1) == made, 10000);
    uint64_t drain = now_ms() - t_end;
    qsort(behind, ns, sizeof behind[0], cmp_i64);
    qsort(lagms, ns, sizeof lagms[0], cmp_i64);
    printf("steady %d objects in %llu ms (%.0f/s): n2 behind p50 %lld p99 %lld objects; reported lag "
           "p50 %lld ms p99 %lld ms; caught up %llu ms after the last commit\n",
           made, (unsigned long long)(t_end - t0), made * 1000.0 / (double)(t_end - t0),
           (long long)behind[ns / 2], (long long)behind[ns * 99 / 100], (long long)lagms[ns / 2],
           (long long)lagms[ns * 99 / 100], (unsigned long long)drain);
    /* 3x a quiet machine's bound, as WAIT_FOR: a backlog that grew for as
     * long as the stream lasted would take far longer. */
    assert_true(drain < 3 * 5000);
}

/* Three nodes, a stream of one-object commits on n1 for 2 s: every change
 * reaches n2 and n3 (from n1, or relayed by the other), each commit of n1
 * in a frame of its own. Unless frames that arrive during a receiver's
 * commit are applied together (or the sender batched rows while frames
 * were in flight), the receivers commit as often as the writer, behind
 * it, and fall further behind for as long as the stream lasts; and two
 * copies of a change must not be applied at once (they would conflict,
 * batch after batch). */
static void test_three_nodes_small_commits(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 29);
    for (int i = 0; i < 3; i++)
        node_start(i, NULL);
    WAIT_FOR(connected(0, 1) && connected(0, 2) && connected(1, 2) && repl_ready(N[1].repl) &&
                 repl_ready(N[2].repl), 5000);
    int made = 0;
    int64_t worst = 0;
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 2000) {
        char id[64];
        snprintf(id, sizeof id, "small-%08d", made++);
        store_write_t *w = store_write_new();
        put_obj(0, w, id, "small", 1);
        commit(0, w);
        if (made % 50 == 0) {
            int64_t behind = made - (count(1) < count(2) ? count(1) : count(2));
            if (behind > worst)
                worst = behind;
        }
    }
    uint64_t t_end = now_ms();
    WAIT_FOR(count(1) == made && count(2) == made, 20000);
    uint64_t drain = now_ms() - t_end;
    store_stats_t s2, s3;
    store_stats(N[1].store, &s2);
    store_stats(N[2].store, &s3);
    printf("%d one-object commits in %llu ms: n2/n3 at most %lld objects behind, caught up %llu ms "
           "after the last; applies %llu/%llu, conflicting %llu/%llu\n", made,
           (unsigned long long)(t_end - t0), (long long)worst, (unsigned long long)drain,
           (unsigned long long)s2.commits, (unsigned long long)s3.commits,
           (unsigned long long)s2.conflicts, (unsigned long long)s3.conflicts);
    repl_sync_stats_t r2 = sync_stats(1), r3 = sync_stats(2);
    printf("n2/n3 relayed %llu/%llu rows of n1's, skipped %llu/%llu (n1 sends them directly)\n",
           (unsigned long long)r2.relayed, (unsigned long long)r3.relayed,
           (unsigned long long)r2.relay_skipped, (unsigned long long)r3.relay_skipped);
    assert_true(r2.relayed + r3.relayed < (uint64_t)made / 2);
    /* n1's two links ship the same rows from memory: each is encoded
     * once, the other link takes the bytes. */
    repl_sync_stats_t r1 = sync_stats(0);
    printf("n1: %llu entities from memory, %llu from the store; encoded %llu, shared %llu\n",
           (unsigned long long)r1.shipped_from_memory, (unsigned long long)r1.shipped_from_store,
           (unsigned long long)r1.encoded, (unsigned long long)r1.encoded_shared);
    assert_true(r1.shipped_from_memory >= 2 * (uint64_t)made);
    assert_true(r1.encoded_shared >= (uint64_t)made / 2);
    /* n2 and n3 apply n1's changes frame after frame, and each applied
     * frame is a batch of their log with nothing to ship back (n1's own
     * rows) or to the other (it gets them from n1): its position waits for
     * a frame that goes anyway, or goes alone at most every 100 ms per
     * link, instead of one empty frame per applied frame. */
    uint64_t secs = (now_ms() - t0 + 999) / 1000;
    printf("n2/n3 empty CHANGES frames %llu/%llu, positions held %llu/%llu over %llu s\n",
           (unsigned long long)r2.position_frames, (unsigned long long)r3.position_frames,
           (unsigned long long)r2.positions_held, (unsigned long long)r3.positions_held,
           (unsigned long long)secs);
    assert_true(s2.commits > 100 && s3.commits > 100); /* many applied frames: a real test */
    assert_true(r2.position_frames <= 2 * (10 * secs + 3));
    assert_true(r3.position_frames <= 2 * (10 * secs + 3));
    assert_true(r2.positions_held > 0 && r3.positions_held > 0);
    /* and the positions held reach n1: its log of them is trimmed */
    WAIT_FOR(log_rows(1) == 0 && log_rows(2) == 0, 10000);
    assert_true(drain < 3 * 1000); /* 3x a quiet machine's bound, as WAIT_FOR */
    /* The two links into a node apply one commit at a time: the relayed copy
     * never races the direct one (nothing else writes here). */
    assert_int_equal(s2.conflicts + s3.conflicts, 0);
}

/* Push links ship what the writer committed from memory (the change
 * log's newest rows, each object put with the object it stored) instead
 * of reading it back from the store; a link behind those rows reads the
 * store. Several changes of one object in one frame: the last change's
 * state goes (from memory, each row carries its own state), so the peer
 * ends with the newest. */
static void test_ship_from_memory(void **state)
{
    (void)state;
    opts_t o = {.log_tail_bytes = 1 << 20};
    node_open_data(0);
    new_dsk(0, 31);
    node_start(0, &o);
    node_start(1, &o);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl), 5000);
    create_objects(0, "m", 300, 10);
    WAIT_FOR(count(1) == 300, 10000);
    repl_sync_stats_t st = sync_stats(0);
    printf("300 objects: %llu entities shipped from memory, %llu read from the store\n",
           (unsigned long long)st.shipped_from_memory, (unsigned long long)st.shipped_from_store);
    assert_true(st.shipped_from_memory >= 300);
    /* commits of 10 rows held in memory: encoded on the replication thread */
    printf("log batches: %llu on the replication thread, %llu on the threadpool\n",
           (unsigned long long)st.batches_inline, (unsigned long long)st.batches_pool);
    assert_true(st.batches_inline > 0);

    /* n2 away: 50 objects made and each changed twice on n1; all 150 rows
     * leave in one frame when it returns. */
    node_stop(1, false);
    create_objects(0, "e", 50, 50);
    for (int k = 0; k < 50; k++) {
        char id[64];
        snprintf(id, sizeof id, "e-%08d", k);
        set_note(0, id, "one", 0);
        set_note(0, id, "two", 2);
    }
    node_start(1, &o);
    WAIT_FOR(count(1) == 350, 10000);
    for (int k = 0; k < 50; k++) {
        char id[64];
        snprintf(id, sizeof id, "e-%08d", k);
        WAIT_FOR(note_is(1, id, "two"), 5000);
        assert_true(same_object(0, 1, id));
    }
    repl_sync_stats_t st2 = sync_stats(0);
    int64_t fl = 0;
    store_log_tail_stats(N[0].store, &fl, NULL);
    printf("150 rows: %llu entities from memory, %llu from the store; floor %lld\n",
           (unsigned long long)(st2.shipped_from_memory - st.shipped_from_memory),
           (unsigned long long)(st2.shipped_from_store - st.shipped_from_store), (long long)fl);
    /* more rows than the replication thread encodes itself: the pool */
    assert_true(st2.batches_pool > st.batches_pool);
    assert_true(st2.shipped_from_memory - st.shipped_from_memory >= 50);

    /* n2 away while n1 writes more than the memory holds: the link reads
     * the store from its position, then memory again. */
    node_stop(1, false);
    create_objects(0, "f", 1500, 10);
    int64_t floor = 0;
    store_log_tail_stats(N[0].store, &floor, NULL);
    assert_true(floor > 350); /* test too small: everything still in memory */
    node_start(1, &o);
    WAIT_FOR(count(1) == 1850, 20000);
    create_objects(0, "g", 50, 10);
    WAIT_FOR(count(1) == 1900, 10000);
    repl_sync_stats_t st3 = sync_stats(0);
    printf("after a gap: %llu entities from memory, %llu from the store\n",
           (unsigned long long)(st3.shipped_from_memory - st2.shipped_from_memory),
           (unsigned long long)(st3.shipped_from_store - st2.shipped_from_store));
    assert_true(st3.shipped_from_store - st2.shipped_from_store > 0);
    assert_true(st3.shipped_from_memory - st2.shipped_from_memory >= 50);
    assert_true(same_object(0, 1, "f-00000000") && same_object(0, 1, "g-00000049"));
}

/* A node that starts empty while two seeded peers each send it a snapshot
 * (or one sends a snapshot and the other its changes): the first commit
 * of the bulk "empty store" path that meets an object another link wrote
 * meanwhile conflicts; from there the snapshot reads and merges every
 * object instead of failing each retry and dropping the link. */
static void test_empty_node_two_links_at_once(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 37);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl), 5000);
    create_objects(0, "e", 6000, 500); /* n2 gets them as changes, logged and relayed */
    WAIT_FOR(count(1) == 6000, 60000);
    node_start(2, NULL);
    WAIT_FOR(count(2) == 6000 && repl_ready(N[2].repl), 120000);
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *st = NULL;
    size_t n = 0;
    assert_int_equal(repl_status(N[2].repl, a, &st, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strstr(st[i].last_error, "cannot apply"))
            fail_msg("n3's link from %s failed: %s", st[i].node_id, st[i].last_error);
    kms_arena_free(a);
    assert_true(same_object(0, 2, "e-00005999"));
}

/* A partial partition: n1 and n2 have no link with each other, n3 links
 * both. Every change still reaches every node (n3 relays it: the peer
 * reports it has no link with the change's origin), in both directions,
 * including an edit of the other side's object. */
static void test_partial_partition_relays(void **state)
{
    (void)state;
    opts_t o1 = {.unlinked = 1u << 1}, o2 = {.unlinked = 1u << 0};
    node_open_data(0);
    new_dsk(0, 31);
    node_open_data(1);
    new_dsk(1, 32); /* n2's own, for its writes: it reaches n1 through n3 */
    node_start(0, &o1);
    node_start(1, &o2);
    node_start(2, NULL);
    /* n2 is seeded by the first snapshot n3 has to send: after n1's writes. */
    WAIT_FOR(connected(0, 2) && connected(1, 2) && repl_ready(N[2].repl), 5000);
    assert_false(connected(0, 1));
    create_objects(0, "pp1", 300, 25);
    WAIT_FOR(count(1) == 300 && count(2) == 300, 10000);
    assert_true(same_object(0, 1, "pp1-00000123"));
    create_objects(1, "pp2", 200, 20);
    set_note(1, "pp1-00000007", "edited on n2", 0);
    WAIT_FOR(count(0) == 500 && note_is(0, "pp1-00000007", "edited on n2"), 10000);
    assert_true(same_object(0, 1, "pp2-00000199"));
    assert_true(same_object(0, 2, "pp1-00000007"));
    repl_sync_stats_t st = sync_stats(2);
    printf("partial partition: n3 relayed %llu rows, skipped %llu\n",
           (unsigned long long)st.relayed, (unsigned long long)st.relay_skipped);
    assert_true(st.relayed >= 500);
}

/* Fully linked, then n1 and n2 restart without their link (the cut
 * happens while n3 holds rows it skipped for them): what each writes
 * afterwards and what they had skipped still reaches the other. */
static void test_cut_after_linked(void **state)
{
    (void)state;
    opts_t o1 = {.unlinked = 1u << 1}, o2 = {.unlinked = 1u << 0};
    node_open_data(0);
    new_dsk(0, 37);
    for (int i = 0; i < 3; i++)
        node_start(i, NULL);
    WAIT_FOR(connected(0, 1) && connected(0, 2) && connected(1, 2) && repl_ready(N[1].repl) &&
                 repl_ready(N[2].repl), 5000);
    create_objects(0, "cut1", 200, 10);
    WAIT_FOR(count(1) == 200 && count(2) == 200, 10000);
    /* With every link up, n3 did not ship n1's changes to n2. */
    repl_sync_stats_t st = sync_stats(2);
    printf("linked: n3 relayed %llu rows, skipped %llu\n", (unsigned long long)st.relayed,
           (unsigned long long)st.relay_skipped);
    assert_true(st.relay_skipped > 0);
    node_stop(1, false);
    create_objects(0, "cut2", 100, 10); /* n2 is down: n3 keeps them for it */
    WAIT_FOR(count(2) == 300, 10000);
    node_stop(0, false);
    node_start(1, &o2);
    node_start(0, &o1);
    WAIT_FOR(connected(0, 2) && connected(1, 2), 5000);
    WAIT_FOR(count(1) == 300, 10000);
    create_objects(1, "cut3", 50, 10);
    WAIT_FOR(count(0) == 350 && count(2) == 350, 10000);
    assert_false(connected(0, 1));
    assert_true(same_object(0, 1, "cut2-00000099"));
    assert_true(same_object(0, 1, "cut3-00000049"));
}

/* With log.level debug, the receiver says for every CHANGES frame it
 * applied how many entities it held, how old its oldest change was on
 * arrival and once durable, and where the time went (threadpool queue,
 * apply lock, merge, store commit); its store writer says how long each
 * group commit took, in wall and CPU time. The lines a lag spike is
 * matched against (docs/performance.md, "Cluster"). */
static void test_apply_timings_logged(void **state)
{
    (void)state;
    node_open_data(0);
    new_dsk(0, 31);
    node_open_data(1);
    node_start(0, NULL);
    node_start(1, NULL);
    WAIT_FOR(connected(0, 1) && repl_ready(N[1].repl), 5000);
    enum kms_log_level was = kms_log_get_level();
    kms_test_logcap_t cap;
    assert_int_equal(kms_test_logcap_begin(&cap), 0);
    kms_log_set_level(KMS_LOG_DEBUG);
    create_objects(0, "dbg", 40, 8);
    WAIT_FOR(count(1) == 40, 10000);
    kms_log_set_level(was);
    char *out = kms_test_logcap_end(&cap);
    assert_non_null(out);
    long entities = 0, lines = 0;
    for (const char *p = out; (p = strstr(p, "applied from n1: ")) != NULL; p++) {
        long n = 0;
        long long seq = 0, arrival = 0, durable = 0;
        double q = -1, lk = -1, merge = -1, commit = -1, back = -1;
        int got = sscanf(p, "applied from n1: %ld entities up to seq %lld; oldest change %lld ms old "
                            "at arrival, %lld ms when durable; queued %lf, lock %lf, merge %lf, "
                            "commit %lf, back %lf ms",
                         &n, &seq, &arrival, &durable, &q, &lk, &merge, &commit, &back);
        assert_int_equal(got, 9);
        assert_true(seq > 0);
        assert_true(durable >= 0 && durable < 60000);
        assert_true(q >= 0 && lk >= 0 && merge >= 0 && commit > 0 && back >= 0);
        entities += n;
        lines++;
    }
    print_message("%ld CHANGES frames applied, %ld entities\n", lines, entities);
    assert_true(lines >= 1);
    assert_true(entities >= 40); /* the objects, and the DSK */
    const char *b = strstr(out, "batch of ");
    assert_non_null(b);
    size_t nw = 0;
    double waited = -1, wall = -1, cpu = -1;
    assert_int_equal(sscanf(b, "batch of %zu writes: waited %lf ms for a checkpoint, committed in "
                               "%lf ms (%lf ms of CPU)", &nw, &waited, &wall, &cpu), 4);
    assert_true(nw >= 1 && waited >= 0 && wall > 0 && cpu >= 0);
    free(out);
}

int main(void)
{
    /* Writes to a peer that closed must not kill the process (kmsd ignores
     * SIGPIPE at start; libuv leaves it to the application). */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replicates_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicts_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_no_loss_no_dup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_when_all_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_ahead_applied_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_acks_two, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_node_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steady_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_waits_for_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seeded_node_serves_during_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_one_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_nodes_small_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_node_two_links_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_partition_relays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_after_linked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_timings_logged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
