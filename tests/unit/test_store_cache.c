/* tests/unit/test_store_cache.c: the store_get object cache on a real
 * SQLite file: hits return exactly what the database holds; a commit is
 * visible to the next Get (no stale entry after put or delete); the tenant
 * rule holds on a hit; the byte budget holds under many objects; and under
 * a writer updating objects while readers Get them, every answer is a
 * whole, committed version, never older than one already seen or
 * acknowledged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/kms.h"
#include "store/store.h"
#include "tests/unit/util/tmpdir.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    (void)state;
    return kms_test_tmpdir(g_dir, sizeof(g_dir), "storecache", "kms.db", g_path, sizeof(g_path));
}

static int teardown(void **state)
{
    (void)state;
    return kms_test_rmdir(g_dir);
}

static store_t *open_store(size_t cache_bytes, bool no_cache)
{
    store_options_t o = {.path = g_path, .cache_bytes = cache_bytes, .no_cache = no_cache};
    store_t *s = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    return s;
}

/* Object `id` at "generation" g: every field and attribute carries g, so a
 * reader can tell a torn or mixed answer from a whole one. */
static int put_gen(store_t *s, const char *id, const char *tenant, int64_t g, int64_t expect,
                   int64_t *ver)
{
    store_object_t o;
    store_attr_t at[4];
    char vals[4][32], name[48];
    uint8_t blob[40];
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.tenant, sizeof(o.tenant), "%s", tenant);
    o.object_type = 2;
    o.state = (uint32_t)g;
    o.sealed.dsk_id = (uint32_t)g;
    o.sealed.gen = g;
    memset(blob, (int)(g & 0xff), sizeof(blob));
    o.sealed.blob = blob;
    o.sealed.len = sizeof(blob);
    snprintf(name, sizeof(name), "%s-name", id);
    for (int i = 0; i < 4; i++) {
        snprintf(vals[i], sizeof(vals[i]), "g=%lld/%d", (long long)g, i);
        at[i] = (store_attr_t){.name = i == 0 ? "Name" : i == 1 ? "Gen" : i == 2 ? "x-a" : "x-b",
                               .value = (const uint8_t *)vals[i], .value_len = strlen(vals[i]),
                               .skey = i == 0 ? name : NULL, .nkey = g, .has_nkey = i == 1};
    }
    o.attrs = at;
    o.n_attrs = 4;
    store_write_t *w = store_write_new();
    int err = store_write_put(w, &o, expect);
    if (!err)
        err = store_commit(s, w, ver, ver ? 1 : 0);
    store_write_free(w);
    return err;
}

/* The answer is one whole generation; returns it. */
static int64_t check_whole(const store_object_t *g)
{
    int64_t gen = g->state;
    assert_int_equal(g->sealed.dsk_id, (uint32_t)gen);
    assert_int_equal(g->sealed.gen, gen);
    assert_int_equal(g->sealed.len, 40);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(g->sealed.blob[i], (uint8_t)(gen & 0xff));
    assert_int_equal(g->n_attrs, 4);
    for (size_t i = 0; i < g->n_attrs; i++) {
        char want[32];
        long long gv = -1;
        int idx = -1;
        assert_int_equal(sscanf((const char *)g->attrs[i].value, "g=%lld/%d", &gv, &idx), 2);
        assert_int_equal(gv, gen);
        snprintf(want, sizeof(want), "g=%lld/%d", (long long)gen, idx);
        assert_int_equal(g->attrs[i].value_len, strlen(want));
        assert_int_equal(g->attrs[i].value[g->attrs[i].value_len], 0); /* NUL-terminated */
    }
    return gen;
}

static void test_hits_and_invalidation(void **state)
{
    (void)state;
    store_t *s = open_store(0, false);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    int64_t ver;
    assert_int_equal(put_gen(s, "c-1", "acme", 1, STORE_VERSION_NEW, &ver), 0);
    store_stats_t st0, st1;
    store_stats(s, &st0);
    store_object_t *g1, *g2;
    assert_int_equal(store_get(r, a, "c-1", "acme", &g1), 0); /* miss, fills */
    assert_int_equal(store_get(r, a, "c-1", "acme", &g2), 0); /* hit */
    store_stats(s, &st1);
    assert_int_equal(st1.cache_misses - st0.cache_misses, 1);
    assert_int_equal(st1.cache_hits - st0.cache_hits, 1);
    assert_true(st1.cache_bytes > 0);
    /* the hit is exactly the database's answer */
    assert_string_equal(g2->id, g1->id);
    assert_string_equal(g2->tenant, g1->tenant);
    assert_int_equal(g2->version, g1->version);
    assert_int_equal(g2->created_us, g1->created_us);
    assert_int_equal(g2->updated_us, g1->updated_us);
    assert_int_equal(g2->sealed.len, g1->sealed.len);
    assert_memory_equal(g2->sealed.blob, g1->sealed.blob, g1->sealed.len);
    assert_int_equal(g2->n_attrs, g1->n_attrs);
    for (size_t i = 0; i < g1->n_attrs; i++) {
        assert_string_equal(g2->attrs[i].name, g1->attrs[i].name);
        assert_int_equal(g2->attrs[i].index, g1->attrs[i].index);
        assert_int_equal(g2->attrs[i].value_len, g1->attrs[i].value_len);
        assert_memory_equal(g2->attrs[i].value, g1->attrs[i].value, g1->attrs[i].value_len);
        assert_int_equal(g2->attrs[i].has_nkey, g1->attrs[i].has_nkey);
        assert_int_equal(g2->attrs[i].nkey, g1->attrs[i].nkey);
        if (g1->attrs[i].skey)
            assert_string_equal(g2->attrs[i].skey, g1->attrs[i].skey);
        else
            assert_null(g2->attrs[i].skey);
    }
    check_whole(g2);

    /* tenant rule on a hit */
    assert_int_equal(store_get(r, a, "c-1", "other", &g2), KMS_ERR_NOTFOUND);
    assert_int_equal(store_get(r, a, "c-1", NULL, &g2), 0);

    /* a commit is visible to the very next Get */
    for (int64_t gen = 2; gen < 20; gen++) {
        assert_int_equal(put_gen(s, "c-1", "acme", gen, gen - 1, &ver), 0);
        assert_int_equal(store_get(r, a, "c-1", "acme", &g2), 0);
        assert_int_equal(g2->version, gen);
        assert_int_equal(check_whole(g2), gen);
        assert_int_equal(store_get(r, a, "c-1", "acme", &g2), 0); /* and from the cache */
        assert_int_equal(g2->version, gen);
    }
    /* delete: gone at once */
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_delete(w, "c-1", 19), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
    assert_int_equal(store_get(r, a, "c-1", NULL, &g2), KMS_ERR_NOTFOUND);
    /* a refused write leaves the cached entry right */
    assert_int_equal(put_gen(s, "c-2", "acme", 1, STORE_VERSION_NEW, NULL), 0);
    assert_int_equal(store_get(r, a, "c-2", NULL, &g2), 0);
    assert_int_equal(put_gen(s, "c-2", "acme", 99, 5, NULL), KMS_ERR_CONFLICT);
    assert_int_equal(store_get(r, a, "c-2", NULL, &g2), 0);
    assert_int_equal(check_whole(g2), 1);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);

    /* disabled: never a hit */
    s = open_store(0, true);
    assert_int_equal(store_reader_new(s, &r), 0);
    a = kms_arena_new(0);
    assert_int_equal(store_get(r, a, "c-2", NULL, &g2), 0);
    assert_int_equal(store_get(r, a, "c-2", NULL, &g2), 0);
    store_stats(s, &st1);
    assert_int_equal(st1.cache_hits, 0);
    assert_int_equal(st1.cache_bytes, 0);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

static void test_budget(void **state)
{
    (void)state;
    const size_t budget = 1024 * 1024;
    store_t *s = open_store(budget, false);
    enum { N = 1500 };
    for (int i = 0; i < N; i += 50) {
        store_write_t *w = store_write_new();
        for (int j = i; j < i + 50; j++) {
            char id[32];
            snprintf(id, sizeof(id), "b-%05d", j);
            store_object_t o;
            uint8_t blob[2000];
            memset(&o, 0, sizeof(o));
            strcpy(o.id, id);
            strcpy(o.tenant, "t");
            memset(blob, j & 0xff, sizeof(blob));
            o.sealed.dsk_id = 1;
            o.sealed.gen = 1;
            o.sealed.blob = blob;
            o.sealed.len = sizeof(blob);
            o.state = (uint32_t)j;
            assert_int_equal(store_write_put(w, &o, STORE_VERSION_NEW), 0);
        }
        assert_int_equal(store_commit(s, w, NULL, 0), 0);
        store_write_free(w);
    }
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    for (int round = 0; round < 2; round++)
        for (int j = 0; j < N; j++) {
            char id[32];
            snprintf(id, sizeof(id), "b-%05d", j);
            store_object_t *g;
            assert_int_equal(store_get(r, a, id, "t", &g), 0);
            assert_int_equal(g->state, (uint32_t)j);
            assert_int_equal(g->sealed.blob[1999], (uint8_t)(j & 0xff));
            kms_arena_reset(a);
        }
    store_stats_t st;
    store_stats(s, &st);
    print_message("budget %zu: holding %llu bytes, %llu hits, %llu misses\n", budget,
                  (unsigned long long)st.cache_bytes, (unsigned long long)st.cache_hits,
                  (unsigned long long)st.cache_misses);
    assert_true(st.cache_bytes <= budget);
    assert_true(st.cache_bytes > budget / 4);
    assert_true(st.cache_misses > N); /* 1500 objects do not fit: evictions happened */
    /* the most recently used stay: the last 100 hit */
    uint64_t hits0 = st.cache_hits;
    for (int j = N - 1; j >= N - 100; j--) {
        char id[32];
        snprintf(id, sizeof(id), "b-%05d", j);
        store_object_t *g;
        assert_int_equal(store_get(r, a, id, "t", &g), 0);
        assert_int_equal(g->state, (uint32_t)j);
        kms_arena_reset(a);
    }
    store_stats(s, &st);
    assert_true(st.cache_hits - hits0 >= 90);
    kms_arena_free(a);
    store_reader_free(r);
    store_close(s);
}

/* ---------------------------------------------------- under concurrency */
#define K 6
struct shared {
    store_t *s;
    int stop; /* atomic */
    int64_t acked[K]; /* highest generation acknowledged per object */
    pthread_mutex_t mu;
};

static void *updater(void *arg)
{
    struct shared *sh = arg;
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(sh->s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    for (int64_t gen = 2; gen < 60; gen++) {
        for (int k = 0; k < K; k++) {
            char id[16];
            snprintf(id, sizeof(id), "cc-%d", k);
            int64_t ver;
            assert_int_equal(put_gen(sh->s, id, "t", gen, gen - 1, &ver), 0);
            pthread_mutex_lock(&sh->mu);
            sh->acked[k] = gen;
            pthread_mutex_unlock(&sh->mu);
            /* read your own write */
            store_object_t *g;
            assert_int_equal(store_get(r, a, id, "t", &g), 0);
            assert_true(check_whole(g) >= gen);
            kms_arena_reset(a);
        }
    }
    kms_arena_free(a);
    store_reader_free(r);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *getter(void *arg)
{
    struct shared *sh = arg;
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(sh->s, &r), 0);
    kms_arena_t *a = kms_arena_new(0);
    int64_t seen[K] = {0};
    unsigned n = 0;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
        int k = (int)(n++ % K);
        char id[16];
        snprintf(id, sizeof(id), "cc-%d", k);
        pthread_mutex_lock(&sh->mu);
        int64_t floor = sh->acked[k]; /* acknowledged before this Get started */
        pthread_mutex_unlock(&sh->mu);
        store_object_t *g;
        assert_int_equal(store_get(r, a, id, "t", &g), 0);
        int64_t gen = check_whole(g);
        assert_int_equal(g->version, gen);
        assert_true(gen >= floor);    /* never older than an acknowledged write */
        assert_true(gen >= seen[k]);  /* never goes back */
        seen[k] = gen;
        kms_arena_reset(a);
    }
    kms_arena_free(a);
    store_reader_free(r);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    store_t *s = open_store(0, false);
    struct shared sh = {.s = s};
    pthread_mutex_init(&sh.mu, NULL);
    for (int k = 0; k < K; k++) {
        char id[16];
        snprintf(id, sizeof(id), "cc-%d", k);
        assert_int_equal(put_gen(s, id, "t", 1, STORE_VERSION_NEW, NULL), 0);
        sh.acked[k] = 1;
    }
    enum { G = 4 };
    pthread_t up, gt[G];
    for (int i = 0; i < G; i++)
        assert_int_equal(pthread_create(&gt[i], NULL, getter, &sh), 0);
    assert_int_equal(pthread_create(&up, NULL, updater, &sh), 0);
    pthread_join(up, NULL);
    for (int i = 0; i < G; i++)
        pthread_join(gt[i], NULL);
    store_stats_t st;
    store_stats(s, &st);
    print_message("concurrent: %llu hits, %llu misses\n", (unsigned long long)st.cache_hits,
                  (unsigned long long)st.cache_misses);
    assert_true(st.cache_hits > 0);
    pthread_mutex_destroy(&sh.mu);
    store_close(s);
}

int main(void)
{
    kms_log_set_level(KMS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hits_and_invalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
