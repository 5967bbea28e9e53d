/*
 * tests/unit/test_store_erase.c: a sealed key blob that the store no
 * longer holds (Destroy drops it from the row; a deleted object takes it
 * along; every re-seal replaces it) leaves no copy in the database file
 * (security review finding S4: without PRAGMA secure_delete, SQLite leaves
 * the old cell bytes in the page's free space, so a "destroyed" key stayed
 * recoverable by anyone holding the file and the master key). Real SQLite
 * file, closed and read back byte by byte.
 *
 * It does not cover copies outside the database: backups, the WAL of a
 * running server before its next checkpoint, filesystem snapshots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "common/kms.h"
#include "store/store.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/kmsd-erase-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_path, sizeof(g_path), "%s/kms.db", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int put(store_t *s, const char *id, const uint8_t *blob, size_t len, int64_t expect)
{
    store_object_t o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.tenant, sizeof(o.tenant), "t");
    o.object_type = 2;
    o.state = 1;
    o.sealed.dsk_id = blob ? 1 : 0;
    o.sealed.gen = blob ? 1 : 0;
    o.sealed.blob = blob;
    o.sealed.len = len;
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_put(w, &o, expect), 0);
    int rc = store_commit(s, w, NULL, 0);
    store_write_free(w);
    return rc;
}

static bool file_contains(const char *path, const uint8_t *pat, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    assert_non_null(b);
    size_t got = fread(b, 1, (size_t)sz, f);
    fclose(f);
    bool hit = got >= n && memmem(b, got, pat, n) != NULL;
    free(b);
    return hit;
}

static bool anywhere(const uint8_t *pat, size_t n)
{
    char p[160];
    bool hit = file_contains(g_path, pat, n);
    snprintf(p, sizeof(p), "%s-wal", g_path);
    hit |= file_contains(p, pat, n);
    return hit;
}

static void test_dropped_blobs_leave_no_trace(void **state)
{
    (void)state;
    /* Small (in-page) and large (overflow pages) sealed blobs. */
    static uint8_t kept[60], dropped[60], deleted[60], resealed[60], big[9000];
    assert_int_equal(RAND_bytes(kept, sizeof(kept)), 1);
    assert_int_equal(RAND_bytes(dropped, sizeof(dropped)), 1);
    assert_int_equal(RAND_bytes(deleted, sizeof(deleted)), 1);
    assert_int_equal(RAND_bytes(resealed, sizeof(resealed)), 1);
    assert_int_equal(RAND_bytes(big, sizeof(big)), 1);

    store_options_t opt = {.path = g_path};
    store_t *s = NULL;
    assert_int_equal(store_open(&opt, &s), 0);
    assert_int_equal(put(s, "kept", kept, sizeof(kept), STORE_VERSION_NEW), 0);
    assert_int_equal(put(s, "dropped", dropped, sizeof(dropped), STORE_VERSION_NEW), 0);
    assert_int_equal(put(s, "deleted", deleted, sizeof(deleted), STORE_VERSION_NEW), 0);
    assert_int_equal(put(s, "resealed", resealed, sizeof(resealed), STORE_VERSION_NEW), 0);
    assert_int_equal(put(s, "big", big, sizeof(big), STORE_VERSION_NEW), 0);
    store_close(s);
    /* The patterns are findable: the scan works. */
    assert_true(anywhere(kept, sizeof(kept)));
    assert_true(anywhere(dropped, sizeof(dropped)));
    assert_true(anywhere(big + 5000, 64));

    s = NULL;
    assert_int_equal(store_open(&opt, &s), 0);
    /* Destroy: the row stays, the material goes. */
    assert_int_equal(put(s, "dropped", NULL, 0, 1), 0);
    assert_int_equal(put(s, "big", NULL, 0, 1), 0);
    /* A new version re-sealed (same length, other bytes). */
    uint8_t other[60];
    assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
    assert_int_equal(put(s, "resealed", other, sizeof(other), 1), 0);
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_delete(w, "deleted", 1), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
    store_close(s);

    assert_true(anywhere(kept, sizeof(kept)));
    assert_true(anywhere(other, sizeof(other)));
    assert_false(anywhere(dropped, sizeof(dropped)));
    assert_false(anywhere(deleted, sizeof(deleted)));
    assert_false(anywhere(resealed, sizeof(resealed)));
    assert_false(anywhere(big + 5000, 64));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dropped_blobs_leave_no_trace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
