/*
 * tests/fuzz/fuzz_admin.c: libFuzzer target for kmsd's admin-socket
 * request path, minus the socket: the bytes go through
 * admin_decode_request() (admin/proto.c, the code admin/socket.c runs on
 * what it reads) and, when they decode, admin_execute() (admin/cmds.c)
 * against a real SQLite store, real Argon2id password hashes (with a tiny
 * cost so password commands stay fast), a real file keyring and a real
 * audit log, all in a temporary directory made once per process (on
 * /dev/shm when present) and removed at exit.
 *
 * Checked per input: decoding returns 0, KMS_ERR_PROTO or KMS_ERR_LIMIT;
 * execution always yields an ADMIN_RESPONSE whose STATUS is 0 or a
 * negative KMS_ERR_*, that encodes within ADMIN_MAX_MESSAGE and decodes
 * again. The arena is reset per input (as admin/socket.c does per request).
 *
 * It deliberately passes no file descriptor (backup.create/restore are
 * refused before any I/O; their file format has its own tests) and leaves
 * key rotation off (rotate.* answers "not available"). The store and the
 * audit log are recreated every REOPEN_EVERY inputs so they stay small.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "common/kms.h"
#include "hsm/hsm.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

#define REOPEN_EVERY 5000

static char g_dir[256];
static char g_db[512];
static char g_audit[512];
static store_t *g_store;
static audit_t *g_au;
static hsm_t *g_hsm;
static hsm_keyring_t *g_kr;
static kms_arena_t *g_arena;
static admin_options_t g_opt;
static unsigned long g_runs;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_admin setup: %s\n", what);
    abort();
}

static void rm_glob(const char *prefix)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -f '%s'*", prefix);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s*\n", prefix);
}

static void env_close(void)
{
    audit_close(g_au);
    g_au = NULL;
    store_close(g_store);
    g_store = NULL;
}

static void env_open(void)
{
    rm_glob(g_db);
    rm_glob(g_audit);
    store_options_t so = {.path = g_db};
    if (store_open(&so, &g_store))
        die("store_open");
    audit_options_t uo = {.path = g_audit, .rotate_size = 0, .fsync = false};
    if (audit_open(&uo, &g_au))
        die("audit_open");
    memset(&g_opt, 0, sizeof(g_opt));
    g_opt.socket_path = "/nonexistent/admin.sock";
    g_opt.mode = 0600;
    g_opt.store = g_store;
    /* Argon2id at the smallest cost. */
    g_opt.password_cost = (kmip_password_cost_t){.t_cost = 1, .m_kib = 8, .parallelism = 1};
    g_opt.audit = g_au;
    g_opt.client_ca = NULL; /* any parseable certificate may be registered */
    g_opt.keyring = g_kr;
    g_opt.store_path = g_db;
    g_opt.version = "fuzz";
}

static void env_teardown(void)
{
    char cmd[320];
    env_close();
    hsm_keyring_free(g_kr);
    hsm_close(g_hsm);
    kms_arena_free(g_arena);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kms_error_t err = {0};
    char path[512];
    struct stat st;
    kms_log_set_level(KMS_LOG_ERROR);
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof(g_dir), "%s/kmsd-fuzz-admin.XXXXXX", base);
    if (!mkdtemp(g_dir))
        die("mkdtemp");
    snprintf(g_db, sizeof(g_db), "%s/kmsd.db", g_dir);
    snprintf(g_audit, sizeof(g_audit), "%s/audit.log", g_dir);
    snprintf(path, sizeof(path), "%s/master.key", g_dir);
    hsm_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = path;
    hc.slot = -1;
    if (hsm_init_master(&hc, NULL, &err) || hsm_open(&hc, &g_hsm, &err) ||
        hsm_keyring_new(g_hsm, &g_kr))
        die(err.msg);
    kms_buf_t w;
    kms_buf_init(&w, 0);
    int rc = hsm_keyring_generate(g_kr, 1, &w);
    kms_buf_dispose(&w);
    if (rc || hsm_keyring_set_current(g_kr, 1))
        die("keyring");
    /* admin.c's arena: 8 messages' worth. */
    g_arena = kms_arena_new(8 * ADMIN_MAX_MESSAGE);
    if (!g_arena)
        die("arena");
    env_open();
    atexit(env_teardown);
    return 0;
}

static void check_response(const ttlv_item_t *resp)
{
    if (!resp) {
        fprintf(stderr, "admin_execute returned no response\n");
        abort();
    }
    const ttlv_item_t *st = ttlv_find(resp, ADMIN_TAG_STATUS);
    const ttlv_item_t *ver = ttlv_find(resp, ADMIN_TAG_PROTOCOL_VERSION);
    const ttlv_item_t *msg = ttlv_find(resp, ADMIN_TAG_MESSAGE);
    if (resp->tag != ADMIN_TAG_RESPONSE || !st || st->type != TTLV_INTEGER || st->v.i32 > 0 ||
        !ver || ver->v.i32 != ADMIN_PROTOCOL_VERSION || !msg || msg->type != TTLV_TEXT_STRING) {
        fprintf(stderr, "malformed ADMIN_RESPONSE\n");
        abort();
    }
    kms_buf_t out;
    kms_buf_init(&out, ADMIN_MAX_MESSAGE);
    int rc = ttlv_encode(resp, &out);
    if (rc == 0) {
        kms_arena_t *a = kms_arena_new(0);
        ttlv_item_t *back = NULL;
        kms_error_t terr;
        if (!a || ttlv_decode(out.data, out.len, NULL, a, &back, &terr) != 0) {
            fprintf(stderr, "the response does not decode again\n");
            abort();
        }
        kms_arena_free(a);
    } else if (rc != KMS_ERR_LIMIT) {
        fprintf(stderr, "ttlv_encode of the response: %d\n", rc);
        abort();
    }
    kms_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ADMIN_MAX_MESSAGE)
        return 0;
    if (++g_runs % REOPEN_EVERY == 0) {
        env_close();
        env_open();
    }
    /* The header check alone, as admin.c runs it before reading the body. */
    uint32_t blen = 0;
    if (size >= 8 && admin_check_header(data, &blen) == 0 &&
        (blen > ADMIN_MAX_MESSAGE - 8 || blen % 8 != 0))
        abort();
    ttlv_item_t *req = NULL;
    kms_error_t terr;
    int rc = admin_decode_request(data, size, g_arena, &req, &terr);
    if (rc == 0) {
        if (!req || size < 8)
            abort();
        ttlv_item_t *resp = admin_execute(&g_opt, kms_now_us(), "fuzz", req, -1, -1, g_arena);
        check_response(resp);
    } else if (rc != KMS_ERR_PROTO && rc != KMS_ERR_LIMIT) {
        fprintf(stderr, "admin_decode_request returned %d\n", rc);
        abort();
    }
    kms_arena_reset(g_arena);
    return 0;
}
