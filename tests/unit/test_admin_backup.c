/*
 * tests/unit/test_admin_backup.c: restore reads what it verified.
 *
 * admin_backup_restore() checks a backup's MAC in a first pass and applies
 * its items in a second. Both passes read kmsd's private copy of the file,
 * so a file changed on disk after the check (by anyone who can write where
 * the operator keeps backups) cannot slip unverified items into the store.
 * The backups are real `kmsctl backup` files from tests/fuzz/corpus/backup
 * (made with the key file 0x00..0x1f by tests/fuzz/make-backup-corpus.py);
 * the store and file keyring are real, in a temporary directory.
 *
 * Restored objects' attribute rows with a search key carry their
 * object's tenant (store schema v11), which a tenant's Locate relies on.
 *
 * Device clients come back from a backup in either form: their identifiers
 * in fields of their own, or packed into the certificate field as the
 * versions before store schema v10 wrote them (a file written here with
 * the format's own functions).
 *
 * A disabled client stays disabled through backup.create and
 * backup.restore (with when and why); clients of a backup without the
 * field (of a version before store schema v12) come back enabled.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "admin/admin_int.h"
#include "hsm/hsm.h"
#include "store/store.h"
#include "tests/unit/util/tmpdir.h"
#include "ttlv/ttlv.h"

#define CORPUS "tests/fuzz/corpus/backup"

typedef struct env {
    char dir[256];
    char db[300];
    hsm_t *hsm;
    hsm_keyring_t *kr;
    store_t *store;
    admin_options_t opt;
} env_t;

static void env_open(env_t *e, const char *name)
{
    kms_error_t err = {0};
    char key[300];
    memset(e, 0, sizeof *e);
    assert_int_equal(kms_test_tmpdir(e->dir, sizeof e->dir, name, "kms.db", e->db, sizeof e->db), 0);
    snprintf(key, sizeof key, "%s/master.key", e->dir);
    hsm_config_t hc;
    memset(&hc, 0, sizeof hc);
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = key;
    hc.slot = -1;
    assert_int_equal(hsm_init_master(&hc, NULL, &err), 0);
    assert_int_equal(hsm_open(&hc, &e->hsm, &err), 0);
    assert_int_equal(hsm_keyring_new(e->hsm, &e->kr), 0);
    kms_buf_t w;
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_keyring_generate(e->kr, 1, &w), 0);
    kms_buf_dispose(&w);
    assert_int_equal(hsm_keyring_set_current(e->kr, 1), 0);
    store_options_t so = {.path = e->db};
    assert_int_equal(store_open(&so, &e->store), 0);
    e->opt.store = e->store;
    e->opt.keyring = e->kr;
    e->opt.store_path = e->db;
}

static void env_close(env_t *e)
{
    store_close(e->store);
    hsm_keyring_free(e->kr);
    hsm_close(e->hsm);
    assert_int_equal(kms_test_rmdir(e->dir), 0);
}

/* A memfd holding the corpus file `name`. */
static int load(const char *name, size_t *len_out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CORPUS, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int fd = memfd_create("backup", MFD_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t buf[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        total += n;
    }
    fclose(f);
    *len_out = total;
    return fd;
}

typedef struct tamper {
    int fd;
    size_t len;
    bool done;
} tamper_t;

/* Progress callback: once the MAC pass has begun, overwrite the whole
 * file the operator gave (zeros after its first 8 bytes). */
static void tamper_cb(void *arg, const char *phase, const char *unit, int64_t done, int64_t total)
{
    tamper_t *t = arg;
    (void)unit;
    (void)done;
    (void)total;
    if (t->done || strcmp(phase, "verifying") != 0)
        return;
    uint8_t *z = calloc(1, t->len);
    assert_non_null(z);
    assert_int_equal(pwrite(t->fd, z + 8, t->len - 8, 8), (ssize_t)(t->len - 8));
    free(z);
    t->done = true;
}

/* Attribute rows with a search key in e's database: all of them, and
 * those whose tenant is their object's. */
static void attr_tenants(env_t *e, int64_t *all_out, int64_t *same_out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(e->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(o.tenant = a.tenant),"
                                            " 0) FROM attributes a LEFT JOIN objects o"
                                            " ON o.oid = a.obj_id WHERE a.skey IS NOT NULL"
                                            " OR a.ikey IS NOT NULL",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *all_out = sqlite3_column_int64(st, 0);
    *same_out = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t restore(const char *name, bool tamper, int *rc_out)
{
    env_t e;
    env_open(&e, "backup");
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    ttlv_item_t *rawkey = ttlv_new_bytes(a, NULL, ADMIN_TAG_ARG_KEY, key, 32);
    assert_non_null(rawkey);
    size_t len = 0;
    int fd = load(name, &len);
    tamper_t t = {.fd = fd, .len = len};
    kms_error_t err = {0};
    int64_t count = -1;
    *rc_out = admin_backup_restore(&e.opt, fd, NULL, rawkey, tamper ? tamper_cb : NULL, &t,
                                   &count, &err);
    if (tamper)
        assert_true(t.done);
    store_reader_t *rd = NULL;
    assert_int_equal(store_reader_new(e.store, &rd), 0);
    int64_t stored = store_count_objects(rd);
    store_reader_free(rd);
    if (*rc_out == 0)
        assert_int_equal(stored, count);
    if (*rc_out == 0 && !tamper && stored > 0) {
        int64_t all = 0, same = 0;
        attr_tenants(&e, &all, &same);
        assert_true(all > 0);
        assert_int_equal(same, all);
    }
    close(fd);
    kms_arena_free(a);
    env_close(&e);
    return stored;
}

/* Every corpus backup that restores with objects restores the same way
 * when the file is overwritten while its MAC is being checked. */
static void test_restore_reads_what_it_verified(void **state)
{
    (void)state;
    DIR *d = opendir(CORPUS);
    assert_non_null(d);
    struct dirent *de;
    int tried = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int rc = 0;
        int64_t n = restore(de->d_name, false, &rc);
        if (rc != 0 || n == 0)
            continue; /* a fuzzer find or the empty store: nothing to compare */
        int rc2 = 0;
        int64_t n2 = restore(de->d_name, true, &rc2);
        if (rc2 != 0 || n2 != n)
            fail_msg("%s: %lld objects restored, but %lld (status %d) when the file changed "
                     "after its check",
                     de->d_name, (long long)n, (long long)n2, rc2);
        tried++;
        if (tried == 3)
            break;
    }
    closedir(d);
    assert_true(tried > 0);
}

/* A BK_CLIENT item of device client `name` (tenant tapes): its
 * identifiers packed into BK_CERT when `packed`, else in BK_DEVICE_*. */
static ttlv_item_t *device_item(kms_arena_t *a, const char *name, const char *packed,
                                const char *const ids[5])
{
    ttlv_item_t *t = ttlv_new_struct(a, NULL, BK_CLIENT);
    ttlv_new_textz(a, t, BK_NAME, name);
    ttlv_new_textz(a, t, BK_TENANT_NAME, "tapes");
    ttlv_new_textz(a, t, BK_ROLE, "client");
    ttlv_new_textz(a, t, BK_KIND, "device");
    ttlv_new_textz(a, t, BK_CERT, packed ? packed : "");
    ttlv_new_textz(a, t, BK_PWHASH, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQxMjM0NTY$aGFzaDE");
    ttlv_new_long(a, t, BK_TIME, 1000);
    for (uint32_t f = 0; !packed && f < 5; f++)
        ttlv_new_textz(a, t, BK_DEVICE_SERIAL + f, ids[f]);
    return t;
}

static void test_device_clients_of_both_forms(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    assert_non_null(a);
    uint8_t key[32], salt[16] = {1, 2, 3};
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    ttlv_item_t *rawkey = ttlv_new_bytes(a, NULL, ADMIN_TAG_ARG_KEY, key, 32);
    bk_keys_t keys;
    assert_int_equal(admin_bk_derive(NULL, rawkey, salt, sizeof salt, BK_ARGON_T, BK_ARGON_M,
                                     BK_ARGON_P, &keys),
                     0);
    int fd = memfd_create("backup", MFD_CLOEXEC);
    assert_true(fd >= 0);
    bk_out_t o = {.fd = fd, .mac = admin_bk_mac_new(keys.mac)};
    assert_non_null(o.mac);
    kms_buf_init(&o.buf, BK_MAX_ITEM);
    assert_int_equal(admin_bk_write_header(&o, &keys, true, salt, sizeof salt, "node-old", a), 0);
    ttlv_item_t *t = ttlv_new_struct(a, NULL, BK_TENANT);
    ttlv_new_textz(a, t, BK_NAME, "tapes");
    admin_bk_put(&o, t, true);
    static const char *const ids[5] = {"serNum101010", "devID4444", "", "machineID9", ""};
    admin_bk_put(&o, device_item(a, "tape-new", NULL, ids), true);
    admin_bk_put(&o,
                 device_item(a, "tape-old",
                             "serNum123456\x1f" "devID2233\x1f" "netID9000\x1f\x1f" "mediaID313",
                             NULL),
                 true);
    assert_int_equal(o.err, 0);
    assert_int_equal(admin_bk_write_trailer(&o, 0, a), 0);
    EVP_MAC_CTX_free(o.mac);
    kms_buf_dispose(&o.buf);

    env_t e;
    env_open(&e, "bkdev");
    kms_error_t err = {0};
    int64_t count = -1;
    assert_int_equal(admin_backup_restore(&e.opt, fd, NULL, rawkey, NULL, NULL, &count, &err), 0);
    store_reader_t *rd = NULL;
    assert_int_equal(store_reader_new(e.store, &rd), 0);
    store_client_t c;
    assert_int_equal(store_client_by_device(rd, "serNum101010", &c), 0);
    assert_string_equal(c.name, "tape-new");
    assert_string_equal(c.device.device_id, "devID4444");
    assert_string_equal(c.device.machine_id, "machineID9");
    assert_string_equal(c.device.network_id, "");
    assert_string_equal(c.cert_sha256, "");
    assert_int_equal(store_client_by_device(rd, "serNum123456", &c), 0);
    assert_string_equal(c.name, "tape-old");
    assert_string_equal(c.device.device_id, "devID2233");
    assert_string_equal(c.device.network_id, "netID9000");
    assert_string_equal(c.device.machine_id, "");
    assert_string_equal(c.device.media_id, "mediaID313");
    assert_string_equal(c.cert_sha256, "");
    assert_false(c.disabled); /* no BK_DISABLED_US: enabled */
    store_reader_free(rd);
    close(fd);
    env_close(&e);
    kms_arena_free(a);
}

static void test_disabled_client_round_trip(void **state)
{
    (void)state;
    env_t src, dst;
    env_open(&src, "bkdis1");
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "acme", false), 0);
    store_client_t c = {.name = "on", .tenant = "acme", .role = "client", .kind = "password",
                        .password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQxMjM0NTY"
                                         "$aGFzaDE"};
    assert_int_equal(store_write_client(w, &c, false), 0);
    strcpy(c.name, "off");
    c.disabled = true;
    c.disabled_us = 1700000000000001;
    strcpy(c.disabled_reason, "vCenter decommissioned");
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(store_commit(src.store, w, NULL, 0), 0);
    store_write_free(w);

    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x40 + i);
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *rawkey = ttlv_new_bytes(a, NULL, ADMIN_TAG_ARG_KEY, key, 32);
    int fd = memfd_create("backup", MFD_CLOEXEC);
    assert_true(fd >= 0);
    kms_error_t err = {0};
    int64_t count = -1;
    assert_int_equal(admin_backup_create(&src.opt, fd, NULL, rawkey, NULL, NULL, &count, &err), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    env_open(&dst, "bkdis2");
    assert_int_equal(admin_backup_restore(&dst.opt, fd, NULL, rawkey, NULL, NULL, &count, &err), 0);
    store_reader_t *rd = NULL;
    assert_int_equal(store_reader_new(dst.store, &rd), 0);
    store_client_t got;
    assert_int_equal(store_client_by_name(rd, "off", &got), 0);
    assert_true(got.disabled);
    assert_int_equal(got.disabled_us, 1700000000000001);
    assert_string_equal(got.disabled_reason, "vCenter decommissioned");
    assert_int_equal(store_client_by_name(rd, "on", &got), 0);
    assert_false(got.disabled);
    assert_string_equal(got.disabled_reason, "");
    store_reader_free(rd);
    close(fd);
    env_close(&dst);
    env_close(&src);
    kms_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restore_reads_what_it_verified),
        cmocka_unit_test(test_device_clients_of_both_forms),
        cmocka_unit_test(test_disabled_client_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
