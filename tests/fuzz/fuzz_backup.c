/*
 * tests/fuzz/fuzz_backup.c: libFuzzer target for the backup file reader.
 * The input is a backup file: it is put in a memfd and passed, as kmsctl
 * passes the file it opened, with a "backup.restore" request to
 * admin_execute() (admin/cmds.c -> admin_backup_restore, admin_bk_open,
 * admin_bk_get in admin/backup.c and backup_format.c) on an empty store
 * (fuzz_admin_env.h: real SQLite store, file keyring, audit log).
 *
 * The key is always the key file FUZZ_KEY (bytes 0x00..0x1f), as the seeds
 * were made with (make-backup-corpus.py); a file made with a passphrase is
 * refused before Argon2id runs, so no input costs 64 MiB of Argon2id.
 *
 * Each input is restored twice:
 *  1. as given. The items before the trailer are read (and decoded) before
 *     their HMAC is known to be right: hostile bytes for an attacker without
 *     the key. Checked: when the trailer does not carry the HMAC of what
 *     precedes it (computed here from the key), the restore fails and the
 *     store still holds no object: nothing of an unauthenticated file is
 *     applied.
 *  2. re-sealed: everything before the trailer (or before the first
 *     incomplete item) followed by a trailer with the right count and
 *     HMAC, as the holder of the key could write it. This reaches the
 *     second pass (tenants, clients, objects, key material decrypted and
 *     re-sealed into the store). Checked: a restore that succeeds leaves
 *     exactly as many objects in the store as the file has object items.
 * Both answers must be well-formed ADMIN_RESPONSEs (check_response). The
 * store is recreated whenever a restore left anything in it.
 *
 * It deliberately does not fuzz backup.create (its input is our own store)
 * nor the passphrase derivation (Argon2id's cost bounds are unit-tested).
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include "tests/fuzz/fuzz_admin_env.h"
#include "ttlv/ttlv.h"

/* The file format's tags this harness needs (admin/backup_format.c). */
#define BK_OBJECT 0x540112u
#define BK_END 0x54011Fu
#define BK_COUNT 0x540140u
#define BK_MAC 0x540141u
#define BK_MAGIC_LEN 8

#define MAX_FILE (4u << 20)

static uint8_t g_key[32];
static uint8_t g_mac_key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int i = 0; i < 32; i++)
        g_key[i] = (uint8_t)i;
    /* The MAC key the backup format derives from a 32-byte key file. */
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), g_key, 32, (const uint8_t *)"kmsd-backup-mac", 15, g_mac_key, &n))
        die("HMAC");
    fuzz_env_init("backup");
    return 0;
}

/* Where the file's items end: the offset of its trailer (or of the end of
 * its last complete item when there is none), the number of object items
 * before it, and the trailer's MAC value (NULL when there is no trailer
 * or it has no 32-byte MAC). The walk reads only item headers. */
typedef struct layout {
    size_t end;
    int64_t objects;
    const uint8_t *mac;
} layout_t;

static layout_t walk(const uint8_t *d, size_t n)
{
    layout_t l = {.end = n < BK_MAGIC_LEN ? n : BK_MAGIC_LEN};
    size_t off = l.end;
    while (n - off >= 8) {
        uint32_t tag = kms_be32(d + off) >> 8, len = kms_be32(d + off + 4);
        if (len > n - off - 8)
            break;
        if (tag == BK_END) {
            /* The MAC item inside the trailer: tag, type 0x08, length 32. */
            for (size_t p = off + 8; p + 8 + 32 <= off + 8 + len; p += 8) {
                if ((kms_be32(d + p) >> 8) == BK_MAC && d[p + 3] == TTLV_BYTE_STRING &&
                    kms_be32(d + p + 4) == 32) {
                    l.mac = d + p + 8;
                    break;
                }
            }
            break;
        }
        l.objects += tag == BK_OBJECT;
        off += 8 + (size_t)len;
        l.end = off;
    }
    return l;
}

/* HMAC-SHA256 of d[0..n) under the file's MAC key. */
static void file_mac(const uint8_t *d, size_t n, uint8_t out[32])
{
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), g_mac_key, 32, d, n, out, &ml))
        die("HMAC");
}

static int64_t stored_objects(void)
{
    store_reader_t *rd = NULL;
    if (store_reader_new(g_store, &rd))
        die("store_reader_new");
    int64_t n = store_count_objects(rd);
    store_reader_free(rd);
    return n;
}

/* Restore `d` through admin_execute; returns the response's STATUS. */
static int restore(const uint8_t *d, size_t n)
{
    int fd = memfd_create("fuzz-backup", MFD_CLOEXEC);
    if (fd < 0 || (n && write(fd, d, n) != (ssize_t)n))
        die("memfd");
    ttlv_item_t *req = admin_request_new(g_arena, "backup.restore");
    if (!req || !ttlv_new_bytes(g_arena, req, ADMIN_TAG_ARG_KEY, g_key, 32))
        die("request");
    ttlv_item_t *resp = admin_execute(&g_opt, kms_now_us(), "fuzz", req, fd, -1, g_arena);
    close(fd);
    check_response(resp);
    int st = ttlv_find(resp, ADMIN_TAG_STATUS)->v.i32;
    kms_arena_reset(g_arena);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_FILE)
        return 0;
    layout_t l = walk(data, size);
    uint8_t mac[32];
    file_mac(data, l.end, mac);

    /* 1. As given: a file whose MAC is wrong is never applied. */
    int st = restore(data, size);
    int64_t left = stored_objects();
    bool authentic = l.mac && memcmp(l.mac, mac, 32) == 0;
    if (!authentic && (st == 0 || left != 0)) {
        fprintf(stderr, "a backup with a wrong MAC was %s (%lld objects in the store)\n",
                st == 0 ? "restored" : "partly applied", (long long)left);
        abort();
    }
    if (st == 0 || left)
        fuzz_env_reopen();

    /* 2. Re-sealed with the right trailer: the authenticated path. */
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t b;
    kms_buf_init(&b, MAX_FILE + 4096);
    ttlv_item_t *end = a ? ttlv_new_struct(a, NULL, BK_END) : NULL;
    if (!end || !ttlv_new_long(a, end, BK_COUNT, l.objects) || !ttlv_new_bytes(a, end, BK_MAC, mac, 32) ||
        kms_buf_append(&b, data, l.end) != 0 || ttlv_encode(end, &b) != 0)
        die("re-seal");
    st = restore(b.data, b.len);
    left = stored_objects();
    if (st == 0 && left != l.objects) {
        fprintf(stderr, "a restore of %lld object items left %lld objects\n", (long long)l.objects,
                (long long)left);
        abort();
    }
    if (st == 0 || left)
        fuzz_env_reopen();
    kms_buf_dispose(&b);
    kms_arena_free(a);
    return 0;
}
