/*
 * tests/fuzz/fuzz_admin.c: libFuzzer target for kmsd's admin-socket
 * request path, minus the socket: the bytes go through
 * admin_decode_request() (admin/proto.c, the code admin/socket.c runs on
 * what it reads) and, when they decode, admin_execute() (admin/cmds.c)
 * against a real SQLite store, real Argon2id password hashes (with a tiny
 * cost so password commands stay fast), a real file keyring and a real
 * audit log, all in a temporary directory made once per process (on
 * /dev/shm when present) and removed at exit (fuzz_admin_env.h, shared
 * with fuzz_backup).
 *
 * Checked per input: decoding returns 0, KMS_ERR_PROTO or KMS_ERR_LIMIT;
 * execution always yields an ADMIN_RESPONSE whose STATUS is 0 or a
 * negative KMS_ERR_*, that encodes within ADMIN_MAX_MESSAGE and decodes
 * again. The arena is reset per input (as admin/socket.c does per request).
 *
 * It deliberately passes no file descriptor (backup.create/restore are
 * refused before any I/O; fuzz_backup feeds backup files) and leaves
 * key rotation off (rotate.* answers "not available"). The store and the
 * audit log are recreated every REOPEN_EVERY inputs so they stay small.
 */
#include <stdint.h>

#include "tests/fuzz/fuzz_admin_env.h"
#include "ttlv/ttlv.h"

#define REOPEN_EVERY 5000

static unsigned long g_runs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env_init("admin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ADMIN_MAX_MESSAGE)
        return 0;
    if (++g_runs % REOPEN_EVERY == 0) {
        fuzz_env_reopen();
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
