/*
 * tests/fuzz/fuzz_admin_env.h: the environment admin_execute() runs in for
 * the admin fuzz targets (fuzz_admin, fuzz_backup): a real SQLite store, a
 * real file keyring (master key file, one data-store key) and a real audit
 * log in a temporary directory made once per process (on /dev/shm when
 * present) and removed at exit. fuzz_env_reopen() recreates the store and
 * the audit log empty, so a target can keep them small or start a restore
 * on an empty server.
 *
 * Included by one .c file per target (static state); it deliberately sets
 * up nothing a target does not share: no key rotation, no cluster.
 */
#ifndef FUZZ_ADMIN_ENV_H
#define FUZZ_ADMIN_ENV_H

#include <glob.h>
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
#include "tests/fuzz/fuzz_keyring.h"

static char g_dir[256];
static char g_db[512];
static char g_audit[512];
static store_t *g_store;
static audit_t *g_au;
static hsm_t *g_hsm;
static hsm_keyring_t *g_kr;
static kms_arena_t *g_arena;
static admin_options_t g_opt;

/* Remove every file whose name starts with `prefix` (the database and its
 * -wal / -shm, the audit log), without a shell: a fork per reopen is most
 * of a reopen's cost in a sanitized process. */
static void rm_glob(const char *prefix)
{
    char pat[700];
    glob_t g;
    snprintf(pat, sizeof(pat), "%s*", prefix);
    if (glob(pat, GLOB_NOSORT, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++)
        if (unlink(g.gl_pathv[i]) != 0)
            fprintf(stderr, "cannot remove %s\n", g.gl_pathv[i]);
    globfree(&g);
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

/* An empty store and audit log in place of the current ones. */
static void fuzz_env_reopen(void)
{
    env_close();
    env_open();
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

/* Directory "kmsd-fuzz-<name>.XXXXXX", keyring, arena, store and audit log;
 * removed at exit. Aborts when any of it cannot be made. */
static void fuzz_env_init(const char *name)
{
    kms_log_set_level(KMS_LOG_ERROR);
    fuzz_dir_and_keyring(name, g_dir, sizeof(g_dir), &g_hsm, &g_kr);
    snprintf(g_db, sizeof(g_db), "%s/kmsd.db", g_dir);
    snprintf(g_audit, sizeof(g_audit), "%s/audit.log", g_dir);
    /* admin.c's arena: 8 messages' worth. */
    g_arena = kms_arena_new(8 * ADMIN_MAX_MESSAGE);
    if (!g_arena)
        die("arena");
    env_open();
    atexit(env_teardown);
}

/* What every ADMIN_RESPONSE must be: STATUS 0 or negative, the protocol
 * version, a MESSAGE; it encodes (or is too large: KMS_ERR_LIMIT) and what
 * it encodes to decodes again. Aborts otherwise. */
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

#endif /* FUZZ_ADMIN_ENV_H */
