/* tests/unit/test_repl_merge.c: the merge rule (replication/merge.c).
 * The state lattice for every pair and triple; destroy dominance (key
 * material never comes back); per-name last-writer-wins with the node id
 * breaking ties; attribute tombstones; object tombstones against puts and
 * re-creations; immutables; whole-row LWW and sticky node removal; and
 * generated histories of three replicas editing and syncing at random,
 * whose every state is then delivered to three fresh replicas in random
 * orders with duplicates: all converge, and the rule is commutative,
 * associative and idempotent on every sample. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "replication/repl_int.h"

enum { PA = 1, AC = 2, DE = 3, CO = 4, DS = 5, DC = 6 };

static kms_arena_t *A;

static int setup(void **state)
{
    (void)state;
    A = kms_arena_new(0);
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kms_arena_free(A);
    return 0;
}

/* ------------------------------------------------------------ builders */
static repl_entity_t *obj(const char *id, int64_t created_hlc, const char *node)
{
    repl_entity_t *e = kms_arena_alloc(A, sizeof *e);
    e->kind = REPL_KIND_OBJECT;
    e->key = id;
    kms_strlcpy(e->obj.id, id, sizeof e->obj.id);
    kms_strlcpy(e->obj.tenant, "t", sizeof e->obj.tenant);
    e->obj.object_type = 2;
    e->obj.state = PA;
    e->obj.created_us = 1;
    e->origin = node;
    e->hlc = created_hlc;
    e->origin_seq = 1;
    e->clocks = kms_arena_alloc(A, 64 * sizeof *e->clocks);
    e->obj.attrs = kms_arena_alloc(A, 64 * sizeof *e->obj.attrs);
    e->clocks[0] = (repl_clock_t){"", created_hlc, node};
    e->n_clocks = 1;
    return e;
}

/* Deep enough copy to edit without touching the original. */
static repl_entity_t *ent_clone(const repl_entity_t *s)
{
    repl_entity_t *e = kms_arena_alloc(A, sizeof *e);
    *e = *s;
    e->clocks = kms_arena_alloc(A, 64 * sizeof *e->clocks);
    e->obj.attrs = kms_arena_alloc(A, 64 * sizeof *e->obj.attrs);
    assert_true(s->n_clocks <= 64 && s->obj.n_attrs <= 64);
    if (s->n_clocks)
        memcpy(e->clocks, s->clocks, s->n_clocks * sizeof *e->clocks);
    if (s->obj.n_attrs)
        memcpy(e->obj.attrs, s->obj.attrs, s->obj.n_attrs * sizeof *e->obj.attrs);
    return e;
}

static void set_clock(repl_entity_t *e, const char *name, int64_t hlc, const char *node)
{
    for (size_t i = 0; i < e->n_clocks; i++)
        if (strcmp(e->clocks[i].name, name) == 0) {
            e->clocks[i].hlc = hlc;
            e->clocks[i].node = node;
            return;
        }
    e->clocks[e->n_clocks++] = (repl_clock_t){name, hlc, node};
}

static const uint8_t *val(const char *s)
{
    return (const uint8_t *)kms_arena_strdup(A, s);
}

/* Replace the instances of `name` with n values v[0..n), written at hlc. */
static void set_attr(repl_entity_t *e, const char *name, const char *const *v, size_t n,
                     int64_t hlc, const char *node)
{
    size_t k = 0;
    for (size_t i = 0; i < e->obj.n_attrs; i++)
        if (strcmp(e->obj.attrs[i].name, name) != 0)
            e->obj.attrs[k++] = e->obj.attrs[i];
    e->obj.n_attrs = k;
    for (size_t i = 0; i < n; i++)
        e->obj.attrs[e->obj.n_attrs++] = (store_attr_t){
            .name = name, .index = (uint32_t)i, .value = val(v[i]), .value_len = strlen(v[i])};
    set_clock(e, name, hlc, node);
    e->hlc = hlc;
    e->origin = node;
}

static void set_state(repl_entity_t *e, uint32_t s, int64_t hlc, const char *node)
{
    uint8_t *v = kms_arena_alloc(A, 16);
    v[0] = 0x42, v[1] = 0x00, v[2] = 0x0B, v[3] = 0x05; /* Attribute Value, as kmip/ stores it */
    kms_put_be32(v + 4, 4);
    kms_put_be32(v + 8, s);
    size_t k = 0;
    for (size_t i = 0; i < e->obj.n_attrs; i++)
        if (strcmp(e->obj.attrs[i].name, "State") != 0)
            e->obj.attrs[k++] = e->obj.attrs[i];
    e->obj.n_attrs = k;
    e->obj.attrs[e->obj.n_attrs++] =
        (store_attr_t){.name = "State", .value = v, .value_len = 16, .nkey = s, .has_nkey = true};
    e->obj.state = s;
    set_clock(e, "State", hlc, node);
    if (repl_state_destroyed(s)) {
        e->obj.sealed.blob = NULL;
        e->obj.sealed.len = 0;
        e->obj.sealed.dsk_id = 0;
        set_clock(e, "#material", hlc, node);
    }
    e->hlc = hlc;
    e->origin = node;
}

static void set_material(repl_entity_t *e, const char *blob, uint32_t dsk, int64_t hlc,
                         const char *node)
{
    e->obj.sealed.blob = val(blob);
    e->obj.sealed.len = strlen(blob);
    e->obj.sealed.dsk_id = dsk;
    e->obj.sealed.gen++;
    set_clock(e, "#material", hlc, node);
    e->hlc = hlc;
    e->origin = node;
}

static repl_entity_t *merge(const repl_entity_t *a, const repl_entity_t *b)
{
    repl_entity_t *r = kms_arena_alloc(A, sizeof *r);
    assert_int_equal(repl_merge_object(a, b, A, r), 0);
    return r;
}

static const store_attr_t *attr(const repl_entity_t *e, const char *name, uint32_t idx)
{
    for (size_t i = 0; i < e->obj.n_attrs; i++)
        if (strcmp(e->obj.attrs[i].name, name) == 0 && e->obj.attrs[i].index == idx)
            return &e->obj.attrs[i];
    return NULL;
}

static size_t count_attr(const repl_entity_t *e, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < e->obj.n_attrs; i++)
        n += strcmp(e->obj.attrs[i].name, name) == 0;
    return n;
}

/* --------------------------------------------------------------- lattice */
static void test_state_lattice(void **state)
{
    (void)state;
    /* Expected join for every pair of the six KMIP states. */
    static const uint32_t want[7][7] = {
        [PA] = {0, PA, AC, DE, CO, DS, DC},
        [AC] = {0, AC, AC, DE, CO, DS, DC},
        [DE] = {0, DE, DE, DE, CO, DS, DC},
        [CO] = {0, CO, CO, CO, CO, DC, DC},
        [DS] = {0, DS, DS, DS, DC, DS, DC},
        [DC] = {0, DC, DC, DC, DC, DC, DC},
    };
    for (uint32_t a = PA; a <= DC; a++)
        for (uint32_t b = PA; b <= DC; b++) {
            if (repl_state_join(a, b) != want[a][b])
                fail_msg("join(%u, %u) = %u, want %u", a, b, repl_state_join(a, b), want[a][b]);
            for (uint32_t c = PA; c <= DC; c++)
                assert_int_equal(repl_state_join(repl_state_join(a, b), c),
                                 repl_state_join(a, repl_state_join(b, c)));
        }
    /* An unknown state (a newer peer's) ranks below Pre-Active. */
    assert_int_equal(repl_state_join(99, PA), PA);
    assert_int_equal(repl_state_join(99, 98), 99);
    assert_true(repl_state_destroyed(DS) && repl_state_destroyed(DC) && !repl_state_destroyed(CO));
}

/* The merged object's state and State attribute follow the lattice even
 * when the later clock says otherwise. */
static void test_state_attribute_rewritten(void **state)
{
    (void)state;
    repl_entity_t *base = obj("o", 100, "a");
    set_state(base, AC, 101, "a");
    repl_entity_t *l = ent_clone(base), *r = ent_clone(base);
    set_state(l, CO, 200, "a");  /* revoked as compromised on a */
    set_state(r, DS, 300, "b");  /* destroyed later on b */
    repl_entity_t *m = merge(l, r);
    assert_int_equal(m->obj.state, DC);
    const store_attr_t *s = attr(m, "State", 0);
    assert_non_null(s);
    assert_int_equal(kms_be32(s->value + 8), DC);
    assert_int_equal(s->nkey, DC);
    assert_int_equal(count_attr(m, "State"), 1);
    /* A later "activation" cannot move Deactivated back. */
    repl_entity_t *d = ent_clone(base), *x = ent_clone(base);
    set_state(d, DE, 150, "a");
    set_state(x, AC, 999, "b");
    assert_int_equal(merge(d, x)->obj.state, DE);
    assert_int_equal(merge(x, d)->obj.state, DE);
}

/* ------------------------------------------------------------- material */
static void test_destroy_dominance(void **state)
{
    (void)state;
    repl_entity_t *base = obj("k", 100, "a");
    set_state(base, AC, 101, "a");
    set_material(base, "sealed-v1", 7, 101, "a");
    repl_entity_t *dest = ent_clone(base), *rot = ent_clone(base);
    set_state(dest, DS, 200, "a");
    /* Re-encrypted under a new DSK on b much later, without having seen
     * the destroy: its material clock is newer. */
    set_material(rot, "sealed-v2", 8, 900, "b");
    for (int order = 0; order < 2; order++) {
        repl_entity_t *m = order ? merge(rot, dest) : merge(dest, rot);
        assert_int_equal(m->obj.state, DS);
        assert_null(m->obj.sealed.blob);
        assert_int_equal(m->obj.sealed.len, 0);
        assert_int_equal(m->obj.sealed.dsk_id, 0);
        /* ...and it stays gone when the old state arrives again. */
        repl_entity_t *again = merge(merge(m, base), rot);
        assert_null(again->obj.sealed.blob);
        assert_int_equal(again->obj.state, DS);
    }
    /* Without a destroy, the later material wins (both seal-openable). */
    repl_entity_t *m = merge(base, rot);
    assert_int_equal(m->obj.sealed.len, strlen("sealed-v2"));
    assert_int_equal(m->obj.sealed.dsk_id, 8);
    assert_memory_equal(m->obj.sealed.blob, "sealed-v2", 9);
}

/* ------------------------------------------------------------ LWW names */
static void test_lww_and_tie_break(void **state)
{
    (void)state;
    repl_entity_t *base = obj("o", 100, "a");
    const char *one[] = {"from-a"}, *two[] = {"from-b-0", "from-b-1"};
    repl_entity_t *l = ent_clone(base), *r = ent_clone(base);
    set_attr(l, "x-color", one, 1, 500, "a");
    set_attr(r, "x-color", two, 2, 400, "b");
    repl_entity_t *m = merge(l, r);
    assert_int_equal(count_attr(m, "x-color"), 1);
    assert_memory_equal(attr(m, "x-color", 0)->value, "from-a", 6);
    /* Same HLC: the larger node id wins, in both orders. */
    set_attr(r, "x-color", two, 2, 500, "b");
    m = merge(l, r);
    assert_int_equal(count_attr(m, "x-color"), 2);
    assert_memory_equal(attr(m, "x-color", 1)->value, "from-b-1", 8);
    m = merge(r, l);
    assert_int_equal(count_attr(m, "x-color"), 2);
    /* Names are independent: a newer Name on a does not drag an older
     * x-color from a along. */
    const char *nm[] = {"key-1"};
    set_attr(l, "Name", nm, 1, 600, "a");
    m = merge(l, r);
    assert_int_equal(count_attr(m, "Name"), 1);
    assert_int_equal(count_attr(m, "x-color"), 2);
    /* The identity of the merged object is its last change. */
    assert_int_equal(m->hlc, 600);
    assert_string_equal(m->origin, "a");
    /* Canonical order: attributes by (name, index). */
    for (size_t i = 1; i < m->obj.n_attrs; i++)
        assert_true(strcmp(m->obj.attrs[i - 1].name, m->obj.attrs[i].name) <= 0);
}

static void test_attribute_tombstone(void **state)
{
    (void)state;
    repl_entity_t *base = obj("o", 100, "a");
    const char *v[] = {"grp-1"};
    set_attr(base, "Object Group", v, 1, 110, "a");
    repl_entity_t *del = ent_clone(base), *add = ent_clone(base);
    set_attr(del, "Object Group", NULL, 0, 300, "a"); /* deleted on a */
    const char *v2[] = {"grp-1", "grp-2"};
    set_attr(add, "Object Group", v2, 2, 200, "b"); /* an older add on b */
    for (int order = 0; order < 2; order++) {
        repl_entity_t *m = order ? merge(add, del) : merge(del, add);
        assert_int_equal(count_attr(m, "Object Group"), 0);
        /* The tombstone is kept as a clock entry with no instances. */
        bool found = false;
        for (size_t i = 0; i < m->n_clocks; i++)
            if (strcmp(m->clocks[i].name, "Object Group") == 0 && m->clocks[i].hlc == 300)
                found = true;
        assert_true(found);
        /* An even older add arriving later changes nothing. */
        assert_int_equal(count_attr(merge(m, base), "Object Group"), 0);
    }
    /* A newer add after the delete brings it back. */
    repl_entity_t *readd = ent_clone(del);
    set_attr(readd, "Object Group", v, 1, 400, "b");
    assert_int_equal(count_attr(merge(del, readd), "Object Group"), 1);
}

/* -------------------------------------------------------- tombstones */
static repl_entity_t *tomb(const char *id, int64_t hlc, const char *node)
{
    repl_entity_t *t = kms_arena_alloc(A, sizeof *t);
    t->kind = REPL_KIND_OBJECT;
    t->key = id;
    t->deleted = true;
    t->hlc = hlc;
    t->origin = node;
    t->origin_seq = 9;
    return t;
}

static void test_object_tombstones(void **state)
{
    (void)state;
    repl_entity_t *p = obj("o", 100, "a");
    const char *v[] = {"late"};
    repl_entity_t *edited = ent_clone(p);
    set_attr(edited, "x-note", v, 1, 500, "b"); /* edited on b after a deleted it */
    repl_entity_t *t = tomb("o", 300, "a");
    for (int order = 0; order < 2; order++) {
        repl_entity_t *m = order ? merge(edited, t) : merge(t, edited);
        assert_true(m->deleted);
        assert_int_equal(m->hlc, 300);
    }
    /* A new incarnation created after the delete survives it. */
    repl_entity_t *re = obj("o", 400, "b");
    assert_false(merge(t, re)->deleted);
    assert_false(merge(re, t)->deleted);
    /* Of two incarnations the later is taken whole. */
    repl_entity_t *m = merge(edited, re);
    assert_int_equal(count_attr(m, "x-note"), 0);
    assert_int_equal(m->clocks[0].hlc, 400);
    /* Two tombstones: the later. Absent + tombstone: the tombstone. */
    assert_int_equal(merge(t, tomb("o", 350, "b"))->hlc, 350);
    assert_true(merge(NULL, t)->deleted);
    repl_entity_t out;
    assert_int_equal(repl_merge_object(NULL, NULL, A, &out), KMS_ERR_INVAL);
}

static void test_immutables(void **state)
{
    (void)state;
    repl_entity_t *a = obj("o", 100, "a"), *b = ent_clone(a);
    kms_strlcpy(b->obj.tenant, "s", sizeof b->obj.tenant);
    b->obj.object_type = 1;
    assert_int_equal(merge(a, b)->obj.object_type, 1);
    assert_string_equal(merge(a, b)->obj.tenant, "s");
    assert_string_equal(merge(b, a)->obj.tenant, "s");
}

static void test_rows_lww(void **state)
{
    (void)state;
    repl_entity_t t1 = {.kind = REPL_KIND_TENANT, .key = "acme", .origin = "a", .hlc = 10};
    repl_entity_t t2 = {.kind = REPL_KIND_TENANT, .key = "acme", .origin = "b", .hlc = 10};
    repl_entity_t rm = {.kind = REPL_KIND_TENANT, .key = "acme", .origin = "a", .hlc = 10,
                        .deleted = true};
    assert_ptr_equal(repl_merge_lww(&t1, &t2), &t2);
    assert_ptr_equal(repl_merge_lww(&t2, &t1), &t2);
    assert_ptr_equal(repl_merge_lww(&t1, &rm), &rm);
    assert_ptr_equal(repl_merge_lww(&rm, &t1), &rm);
    assert_ptr_equal(repl_merge_lww(NULL, &t1), &t1);
    repl_entity_t n1 = {.kind = REPL_KIND_NODE, .key = "c", .origin = "a", .hlc = 5};
    repl_entity_t n2 = n1;
    n1.node.removed = true;
    n2.hlc = 50; /* a later address change by a node that did not see the removal */
    repl_entity_t out;
    repl_merge_node(&n1, &n2, &out);
    assert_true(out.node.removed);
    assert_int_equal(out.hlc, 50);
    repl_merge_node(&n2, &n1, &out);
    assert_true(out.node.removed);
}

/* ------------------------------------------------------------ histories */
static const char *const NODES[] = {"n1", "n2", "n3"};
static const char *const NAMES[] = {"Name", "x-a", "x-b", "Object Group", "Contact Information"};
static const char *const VALS[] = {"v0", "v1", "v2", "v3", "v4", "v5"};

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct sim {
    repl_entity_t *rep[3];   /* NULL: has never seen the object */
    int64_t hlc[3];
    int64_t seq[3];
    repl_entity_t *seen[4096];
    size_t n_seen;
} sim_t;

static int64_t tick(sim_t *s, int i)
{
    return ++s->hlc[i];
}

static void observe(sim_t *s, int i, const repl_entity_t *e)
{
    /* A node's clock moves past everything it has merged (HLC observe). */
    if (e && e->hlc > s->hlc[i])
        s->hlc[i] = e->hlc;
    for (size_t k = 0; e && !e->deleted && k < e->n_clocks; k++)
        if (e->clocks[k].hlc > s->hlc[i])
            s->hlc[i] = e->clocks[k].hlc;
}

static void record(sim_t *s, repl_entity_t *e)
{
    if (e && s->n_seen < KMS_ARRAY_SIZE(s->seen))
        s->seen[s->n_seen++] = e;
}

/* One random local operation on replica i. */
static void local_op(sim_t *s, int i)
{
    const char *node = NODES[i];
    repl_entity_t *cur = s->rep[i], *e;
    int64_t h;
    if (!cur || cur->deleted) {
        if (rnd(3) != 0)
            return;
        h = tick(s, i);
        e = obj("obj", h, node); /* (re)creation: a new incarnation */
        set_state(e, PA, h, node);
    } else {
        e = ent_clone(cur);
        h = tick(s, i);
        switch (rnd(7)) {
        case 0: case 1: {
            const char *v[3];
            size_t n = rnd(3);
            for (size_t k = 0; k < n; k++)
                v[k] = VALS[rnd(6)];
            set_attr(e, NAMES[rnd(5)], v, n, h, node);
            break;
        }
        case 2: case 3:
            set_state(e, 1 + rnd(6), h, node);
            break;
        case 4:
            if (!repl_state_destroyed(e->obj.state))
                set_material(e, VALS[rnd(6)], 1 + rnd(3), h, node);
            break;
        case 5:
            e->obj.archived = !e->obj.archived;
            set_clock(e, "#archived", h, node);
            e->hlc = h;
            e->origin = node;
            break;
        case 6:
            if (rnd(4) == 0)
                e = tomb("obj", h, node);
            break;
        }
    }
    if (!e->deleted) {
        e->hlc = h; /* every logged change has its own clock, no-ops included */
        e->origin = node;
    }
    e->origin_seq = ++s->seq[i];
    s->rep[i] = e;
    record(s, e);
}

static void sync_op(sim_t *s, int i, int j)
{
    if (!s->rep[j])
        return;
    repl_entity_t *m = merge(s->rep[i], s->rep[j]);
    observe(s, i, s->rep[j]);
    s->rep[i] = m;
    record(s, m);
}

static void shuffle(repl_entity_t **v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd((uint32_t)i);
        repl_entity_t *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static repl_entity_t *fold(repl_entity_t **v, size_t n)
{
    repl_entity_t *acc = NULL;
    for (size_t i = 0; i < n; i++)
        acc = merge(acc, v[i]);
    return acc;
}

static void test_generated_histories(void **state)
{
    (void)state;
    size_t checked = 0;
    for (int run = 0; run < 200; run++) {
        kms_arena_reset(A);
        sim_t *s = kms_arena_alloc(A, sizeof *s);
        size_t steps = 10 + rnd(60);
        for (size_t k = 0; k < steps; k++) {
            int i = (int)rnd(3);
            if (rnd(3) == 0)
                sync_op(s, i, (int)((i + 1 + rnd(2)) % 3));
            else
                local_op(s, i);
        }
        if (s->n_seen == 0)
            continue;
        /* Every state ever held, delivered to three fresh replicas in
         * different orders, with some states twice. */
        size_t n = s->n_seen;
        repl_entity_t **v = kms_arena_alloc(A, 2 * n * sizeof *v);
        memcpy(v, s->seen, n * sizeof *v);
        repl_entity_t *want = fold(v, n);
        for (int r = 0; r < 3; r++) {
            size_t m = n;
            memcpy(v, s->seen, n * sizeof *v);
            for (size_t d = rnd((uint32_t)n + 1); d > 0; d--)
                v[m++] = s->seen[rnd((uint32_t)n)];
            shuffle(v, m);
            repl_entity_t *got = fold(v, m);
            if (!repl_object_equal(got, want))
                fail_msg("run %d replica %d: %zu states in another order did not converge", run, r,
                         n);
        }
        /* Algebra on random samples. */
        for (int k = 0; k < 30; k++) {
            repl_entity_t *a = merge(NULL, s->seen[rnd((uint32_t)n)]);
            repl_entity_t *b = merge(NULL, s->seen[rnd((uint32_t)n)]);
            repl_entity_t *c = merge(NULL, s->seen[rnd((uint32_t)n)]);
            assert_true(repl_object_equal(merge(a, a), a));
            assert_true(repl_object_equal(merge(a, b), merge(b, a)));
            assert_true(repl_object_equal(merge(merge(a, b), c), merge(a, merge(b, c))));
            /* Destroyed never resurrects: once a state is destroyed, any
             * join that keeps the incarnation has no key material. */
            repl_entity_t *ab = merge(a, b);
            if (!ab->deleted && repl_state_destroyed(ab->obj.state))
                assert_null(ab->obj.sealed.blob);
            checked++;
        }
    }
    assert_true(checked > 3000);
}

/* A partial partition: a-c cut, both see b. Changes relayed through b
 * converge with direct delivery. */
static void test_three_node_partition(void **state)
{
    (void)state;
    kms_arena_reset(A);
    repl_entity_t *base = obj("k", 10, "a");
    set_state(base, AC, 11, "a");
    set_material(base, "m1", 1, 11, "a");
    repl_entity_t *a = ent_clone(base), *b = ent_clone(base), *c = ent_clone(base);
    const char *v1[] = {"from-a"}, *v3[] = {"from-c"};
    set_attr(a, "x-a", v1, 1, 20, "a");
    set_state(a, DE, 21, "a");
    set_attr(c, "x-a", v3, 1, 25, "c");
    set_state(c, CO, 26, "c");
    repl_entity_t *b1 = merge(b, a), *b2 = merge(b1, c);
    repl_entity_t *a2 = merge(a, b2), *c2 = merge(c, b2);
    assert_true(repl_object_equal(a2, c2));
    assert_true(repl_object_equal(a2, merge(merge(NULL, b2), b2)));
    assert_int_equal(a2->obj.state, CO);
    assert_memory_equal(attr(a2, "x-a", 0)->value, "from-c", 6);
    assert_non_null(a2->obj.sealed.blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_lattice),
        cmocka_unit_test(test_state_attribute_rewritten),
        cmocka_unit_test(test_destroy_dominance),
        cmocka_unit_test(test_lww_and_tie_break),
        cmocka_unit_test(test_attribute_tombstone),
        cmocka_unit_test(test_object_tombstones),
        cmocka_unit_test(test_immutables),
        cmocka_unit_test(test_rows_lww),
        cmocka_unit_test(test_generated_histories),
        cmocka_unit_test(test_three_node_partition),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
