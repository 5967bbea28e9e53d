/*
 * tests/fuzz/fuzz_kmip.c: libFuzzer target for the whole KMIP request path,
 * kmip_handle() on arbitrary bytes, against the real thing: a SQLite store
 * and a file-provider master key with a DSK keyring, created once per
 * process in a temporary directory (on /dev/shm when it exists, so the
 * store's fsyncs stay cheap) and removed at exit.
 *
 * Identity: the real lookup (kmip/auth.c) against clients registered in
 * the store: an input of even length comes from the certificate of "fuzz"
 * (administrator of tenant "default"), an odd one from "fuzz-client" (plain
 * client of tenant "t1"), so inputs reach both the admin paths and the
 * cross-tenant ownership checks; a Credential is verified for real (the
 * password client "fuzz-user" has password "fuzz", Argon2id at the
 * smallest cost; the device client "fuzz-device" of tenant "default" is
 * the first device of KMIP 1.1 test case 11.2, whose requests are in the
 * corpus: serial number "serNum123456", Device Identifier "devID2233",
 * password "secret").
 *
 * Checked per input: kmip_handle() returns 0 or KMS_ERR_PROTO; on 0 the
 * response is non-empty, decodes as TTLV and is a Response Message; the
 * response never exceeds the configured cap. Memory is per request (the
 * library's arena), so LeakSanitizer catches anything kept per input.
 *
 * It deliberately does not test TLS or the event loop (the interop tests
 * do), and the store grows over a run: it is reopened empty every
 * REOPEN_EVERY inputs so Locate stays fast.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_keyring.h"
#include "ttlv/ttlv.h"

#define REOPEN_EVERY 5000
#define FUZZ_MAX_INPUT (256 * 1024)
#define MAX_RESPONSE (4u << 20)

static char g_dir[256];
static store_t *g_store;
static hsm_t *g_hsm;
static hsm_keyring_t *g_kr;
static kmip_server_t *g_srv;
static unsigned long g_runs;
static const kmip_password_cost_t COST = {.t_cost = 1, .m_kib = 8, .parallelism = 1};

static void env_close(void)
{
    kmip_server_free(g_srv);
    g_srv = NULL;
    store_close(g_store);
    g_store = NULL;
}

/* Register a tenant or client; setup fails loudly. */
static void commit(store_write_t *w, int rc, const char *what)
{
    if (rc == 0)
        rc = store_commit(g_store, w, NULL, 0);
    store_write_free(w);
    if (rc)
        die(what);
}

/* A client: a device's when `device` is given (with `password`), else a
 * password client's when `password` is, else a certificate client's. */
static void add_client(const char *name, const char *tenant, const char *role,
                       const char *password, const store_device_t *device)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
    snprintf(c.role, sizeof(c.role), "%s", role);
    snprintf(c.kind, sizeof(c.kind), "%s", password ? "password" : "cert");
    if (device && store_client_set_device(&c, device))
        die("store_client_set_device");
    if (password && kmip_password_hash(&COST, password, c.password_hash, sizeof(c.password_hash)))
        die("kmip_password_hash");
    store_write_t *w = store_write_new();
    commit(w, w ? store_write_client(w, &c, false) : KMS_ERR_NOMEM, name);
}

static void env_open_store(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/kmsd.db", g_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/kmsd.db-wal", g_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/kmsd.db-shm", g_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/kmsd.db", g_dir);
    store_options_t so = {.path = path};
    if (store_open(&so, &g_store))
        die("store_open");
    for (const char *t = "default"; t; t = strcmp(t, "default") == 0 ? "t1" : NULL) {
        store_write_t *w = store_write_new();
        commit(w, w ? store_write_tenant(w, t, false) : KMS_ERR_NOMEM, t);
    }
    add_client("fuzz", "default", "admin", NULL, NULL);
    add_client("fuzz-client", "t1", "client", NULL, NULL);
    add_client("fuzz-user", "t1", "client", "fuzz", NULL);
    const store_device_t dev = {.serial = "serNum123456", .device_id = "devID2233"};
    add_client("fuzz-device", "default", "client", "secret", &dev);
    kmip_config_t c = {
        .store = g_store,
        .keyring = g_kr,
        .access = KMIP_ACCESS_CLIENTS,
        .password_cost = COST,
        .max_response = MAX_RESPONSE,
        .max_batch_items = 64,
        .arena_limit = 16u << 20,
        .vendor = "kmsd",
        .version = "fuzz",
    };
    if (kmip_server_new(&c, &g_srv))
        die("kmip_server_new");
}

static void env_teardown(void)
{
    char cmd[320];
    env_close();
    hsm_keyring_free(g_kr);
    hsm_close(g_hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kms_log_set_level(KMS_LOG_ERROR);
    fuzz_dir_and_keyring("kmip", g_dir, sizeof(g_dir), &g_hsm, &g_kr);
    env_open_store();
    atexit(env_teardown);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (++g_runs % REOPEN_EVERY == 0) {
        env_close();
        env_open_store();
    }
    kmip_peer_t peer = {.cert_sha256 = NULL, .cert_cn = size % 2 ? "fuzz-client" : "fuzz",
                        .address = "fuzz:0"};
    kmip_summary_t sum;
    kms_buf_t resp;
    kms_buf_init(&resp, 0);
    int rc = kmip_handle(g_srv, &peer, data, size, &resp, &sum);
    if (rc != 0 && rc != KMS_ERR_PROTO) {
        fprintf(stderr, "kmip_handle returned %d (%s)\n", rc, kms_strerror(rc));
        abort();
    }
    if (rc == 0 && resp.len == 0) {
        fprintf(stderr, "kmip_handle answered 0 with an empty response\n");
        abort();
    }
    if (resp.len > MAX_RESPONSE) {
        fprintf(stderr, "response of %zu bytes exceeds the cap\n", resp.len);
        abort();
    }
    if (resp.len > 0) {
        kms_arena_t *a = kms_arena_new(0);
        ttlv_item_t *root = NULL;
        kms_error_t terr;
        if (!a)
            abort();
        if (ttlv_decode(resp.data, resp.len, NULL, a, &root, &terr) != 0) {
            fprintf(stderr, "response does not decode: %s at %zu\n", terr.msg, terr.offset);
            abort();
        }
        if (root->tag != KMIP_TAG_RESPONSE_MESSAGE || root->type != TTLV_STRUCTURE) {
            fprintf(stderr, "response is not a Response Message (tag %06x)\n", root->tag);
            abort();
        }
        kms_arena_free(a);
    }
    kms_buf_dispose(&resp);
    return 0;
}
