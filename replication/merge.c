/*
 * replication/merge.c: the one merge rule, as pure functions.
 *
 * Given two states of one object (either may be a tombstone), the merged
 * state is their join, so that every node that has seen the same set of
 * changes holds the same object whatever the order in which they arrived
 * (commutative, associative, idempotent; tests/unit/test_repl_merge.c
 * checks it over generated histories). The rule (docs/cluster.md):
 *
 * - Incarnation: an object's creation clock (its "" clock entry) names its
 *   incarnation. A tombstone (hard delete at clock T) removes every
 *   incarnation created at or before T; a put whose creation clock is
 *   later survives it. Of two puts of different incarnations the later
 *   one is taken whole. So a delete is never undone by an edit made on a
 *   node that had not seen it yet.
 * - State: the join in the lifecycle lattice Pre-Active < Active <
 *   Deactivated < {Compromised, Destroyed} < Destroyed Compromised; the
 *   State attribute is rewritten to it.
 * - Key material ("#material": blob, DSK id, seal generation): none when
 *   the joined state is Destroyed or Destroyed Compromised, whatever the
 *   clocks say; otherwise last writer wins.
 * - Every other attribute name, and "#archived": last writer wins by
 *   (hlc, node id) on its clock, taking the winner's whole instance list
 *   for that name (possibly empty: an attribute tombstone). A name with
 *   no clock entry carries the creation clock.
 * - Equal clocks (which two real writes never share) are broken by the
 *   content itself, so the rule stays a join for any input.
 * - Immutables (Object Type, tenant, creation time) never differ for one
 *   incarnation; if they do, the smallest (type, tenant, created) wins
 *   deterministically and it is logged.
 *
 * The result is canonical: attributes sorted by (name, index), clocks by
 * name, no clock entry equal to the creation clock. It points into the
 * inputs' memory and into `arena`. Versions are node-local: the caller
 * stores the result at its own version + 1. It deliberately does no I/O
 * (apply.c reads and writes the store).
 */
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

#define NAME_MATERIAL "#material"
#define NAME_ARCHIVED "#archived"
#define NAME_STATE "State"

typedef struct clk {
    int64_t hlc;
    const char *node;
} clk_t;

static int clk_cmp(clk_t a, clk_t b)
{
    if (a.hlc != b.hlc)
        return a.hlc < b.hlc ? -1 : 1;
    int c = strcmp(a.node ? a.node : "", b.node ? b.node : "");
    return (c > 0) - (c < 0);
}

int repl_clock_cmp(int64_t hlc_a, const char *node_a, int64_t hlc_b, const char *node_b)
{
    return clk_cmp((clk_t){hlc_a, node_a}, (clk_t){hlc_b, node_b});
}

/* ------------------------------------------------------------ state */
/* Rank in the lattice; Compromised and Destroyed share a rank and join
 * to Destroyed Compromised. Values outside KMIP's six rank below
 * Pre-Active (a newer peer's state this node does not know). */
static int state_rank(uint32_t s)
{
    switch (s) {
    case KMIP_STATE_PRE_ACTIVE: return 1;
    case KMIP_STATE_ACTIVE: return 2;
    case KMIP_STATE_DEACTIVATED: return 3;
    case KMIP_STATE_COMPROMISED:
    case KMIP_STATE_DESTROYED: return 4;
    case KMIP_STATE_DESTROYED_COMPROMISED: return 5;
    default: return 0;
    }
}

uint32_t repl_state_join(uint32_t a, uint32_t b)
{
    int ra = state_rank(a), rb = state_rank(b);
    if (ra != rb)
        return ra > rb ? a : b;
    if (ra == 4 && a != b)
        return KMIP_STATE_DESTROYED_COMPROMISED;
    return a > b ? a : b;
}

bool repl_state_destroyed(uint32_t s)
{
    return s == KMIP_STATE_DESTROYED || s == KMIP_STATE_DESTROYED_COMPROMISED;
}

/* ------------------------------------------------------------ clocks */
static bool find_clock(const repl_entity_t *e, const char *name, clk_t *out)
{
    for (size_t i = 0; i < e->n_clocks; i++)
        if (strcmp(e->clocks[i].name, name) == 0) {
            out->hlc = e->clocks[i].hlc;
            out->node = e->clocks[i].node;
            return true;
        }
    return false;
}

/* Order of two changes' identities: (hlc, origin), then origin_seq (two
 * real changes never share (hlc, origin); this keeps the rule a join for
 * any input). */
static int ident_cmp(const repl_entity_t *a, const repl_entity_t *b)
{
    int c = clk_cmp((clk_t){a->hlc, a->origin}, (clk_t){b->hlc, b->origin});
    if (c == 0)
        c = (a->origin_seq > b->origin_seq) - (a->origin_seq < b->origin_seq);
    return c;
}

static clk_t creation_clock(const repl_entity_t *e)
{
    clk_t c = {0, ""};
    (void)find_clock(e, "", &c);
    return c;
}

static clk_t eff_clock(const repl_entity_t *e, const char *name)
{
    clk_t c;
    return find_clock(e, name, &c) ? c : creation_clock(e);
}

/* ------------------------------------------------------ attribute runs */
static int attr_ptr_cmp(const void *x, const void *y)
{
    const store_attr_t *a = *(const store_attr_t *const *)x, *b = *(const store_attr_t *const *)y;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    return (a->index > b->index) - (a->index < b->index);
}

static int str_ptr_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The object's attributes as pointers sorted by (name, index). */
static const store_attr_t **sorted_attrs(const repl_entity_t *e, kms_arena_t *a, int *rc)
{
    size_t n = e->obj.n_attrs;
    if (n == 0)
        return NULL;
    const store_attr_t **v = kms_arena_alloc(a, n * sizeof *v);
    if (!v) {
        *rc = KMS_ERR_NOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = &e->obj.attrs[i];
    qsort(v, n, sizeof *v, attr_ptr_cmp);
    return v;
}

typedef struct run {
    const store_attr_t **v;
    size_t n;
} run_t;

/* The instances of `name` in a sorted array (a run, possibly empty). */
static run_t find_run(const store_attr_t **v, size_t n, const char *name)
{
    run_t r = {NULL, 0};
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    r.v = v ? v + lo : NULL;
    while (lo + r.n < n && strcmp(v[lo + r.n]->name, name) == 0)
        r.n++;
    return r;
}

static int bytes_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return (c > 0) - (c < 0);
    return (na > nb) - (na < nb);
}

/* A total order on instance lists, only to break ties of equal clocks. */
static int run_cmp(run_t a, run_t b)
{
    if (a.n != b.n)
        return a.n > b.n ? 1 : -1;
    for (size_t i = 0; i < a.n; i++) {
        const store_attr_t *x = a.v[i], *y = b.v[i];
        if (x->index != y->index)
            return x->index > y->index ? 1 : -1;
        int c = bytes_cmp(x->value, x->value_len, y->value, y->value_len);
        if (c)
            return c;
    }
    return 0;
}

static int material_cmp(const kms_sealed_t *a, const kms_sealed_t *b)
{
    int c = bytes_cmp(a->blob, a->len, b->blob, b->len);
    if (c)
        return c;
    if (a->dsk_id != b->dsk_id)
        return a->dsk_id > b->dsk_id ? 1 : -1;
    return (a->gen > b->gen) - (a->gen < b->gen);
}

/* ------------------------------------------------------------ output */
typedef struct out {
    kms_arena_t *arena;
    repl_entity_t *e;
    size_t cap_attrs, cap_clocks;
    clk_t creation;
    int rc;
} out_t;

static void put_clock(out_t *o, const char *name, clk_t c)
{
    if (strcmp(name, "") != 0 && clk_cmp(c, o->creation) == 0)
        return; /* implied by the creation clock */
    if (o->e->n_clocks >= o->cap_clocks) {
        o->rc = KMS_ERR_INTERNAL;
        return;
    }
    repl_clock_t *k = &o->e->clocks[o->e->n_clocks++];
    k->name = name;
    k->hlc = c.hlc;
    k->node = c.node ? c.node : "";
}

static void put_run(out_t *o, run_t r)
{
    for (size_t i = 0; i < r.n; i++) {
        if (o->e->obj.n_attrs >= o->cap_attrs) {
            o->rc = KMS_ERR_INTERNAL;
            return;
        }
        o->e->obj.attrs[o->e->obj.n_attrs++] = *r.v[i];
    }
}

/* The State attribute for state s, encoded as kmip/ stores every attribute
 * value: an Enumeration tagged Attribute Value (0x42000B), so the merged
 * row holds the same bytes as the row the state was set on. */
static void put_state_attr(out_t *o, uint32_t s)
{
    uint8_t *v = kms_arena_alloc(o->arena, 16);
    if (!v) {
        o->rc = KMS_ERR_NOMEM;
        return;
    }
    v[0] = (uint8_t)(KMIP_TAG_ATTRIBUTE_VALUE >> 16);
    v[1] = (uint8_t)(KMIP_TAG_ATTRIBUTE_VALUE >> 8);
    v[2] = (uint8_t)KMIP_TAG_ATTRIBUTE_VALUE;
    v[3] = TTLV_ENUMERATION;
    kms_put_be32(v + 4, 4);
    kms_put_be32(v + 8, s);
    store_attr_t a = {.name = NAME_STATE, .index = 0, .value = v, .value_len = 16, .nkey = s,
                      .has_nkey = true};
    const store_attr_t *p = &a;
    run_t r = {&p, 1};
    put_run(o, r);
}

static bool is_pseudo(const char *name)
{
    return name[0] == '\0' || strcmp(name, NAME_MATERIAL) == 0 || strcmp(name, NAME_ARCHIVED) == 0;
}

/* Every attribute and clock name of a and b except the pseudo-names,
 * sorted, each once. */
static const char **name_union(const repl_entity_t *a, const repl_entity_t *b, kms_arena_t *ar,
                               size_t *n_out, int *rc)
{
    size_t cap = a->obj.n_attrs + b->obj.n_attrs + a->n_clocks + b->n_clocks, n = 0;
    *n_out = 0;
    if (cap == 0)
        return NULL;
    const char **v = kms_arena_alloc(ar, cap * sizeof *v);
    if (!v) {
        *rc = KMS_ERR_NOMEM;
        return NULL;
    }
    const repl_entity_t *src[2] = {a, b};
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < src[s]->obj.n_attrs; i++)
            if (!is_pseudo(src[s]->obj.attrs[i].name))
                v[n++] = src[s]->obj.attrs[i].name;
        for (size_t i = 0; i < src[s]->n_clocks; i++)
            if (!is_pseudo(src[s]->clocks[i].name))
                v[n++] = src[s]->clocks[i].name;
    }
    qsort(v, n, sizeof *v, str_ptr_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
            v[u++] = v[i];
    *n_out = u;
    return v;
}

static void log_immutable_mismatch(const repl_entity_t *a, const repl_entity_t *b)
{
    kms_log(KMS_LOG_WARN, REPL_LOG,
            "object %s: immutable fields differ between replicas (type %u/%u, tenant %s/%s, "
            "created %lld/%lld); the smaller is kept on every node",
            a->obj.id, a->obj.object_type, b->obj.object_type, a->obj.tenant, b->obj.tenant,
            (long long)a->obj.created_us, (long long)b->obj.created_us);
}

static int immut_cmp(const store_object_t *a, const store_object_t *b)
{
    if (a->object_type != b->object_type)
        return a->object_type > b->object_type ? 1 : -1;
    int c = strcmp(a->tenant, b->tenant);
    if (c)
        return (c > 0) - (c < 0);
    return (a->created_us > b->created_us) - (a->created_us < b->created_us);
}

/* Join of two puts of the same incarnation (a == b gives the canonical
 * form of a). */
static int join_puts(const repl_entity_t *a, const repl_entity_t *b, kms_arena_t *ar,
                     repl_entity_t *r)
{
    int rc = 0;
    size_t n_names = 0;
    const store_attr_t **sa = sorted_attrs(a, ar, &rc), **sb = sorted_attrs(b, ar, &rc);
    const char **names = name_union(a, b, ar, &n_names, &rc);
    if (rc)
        return rc;
    out_t o = {.arena = ar, .e = r, .creation = creation_clock(a), .rc = 0};

    /* Identity of the last change: the later one. */
    const repl_entity_t *last = ident_cmp(a, b) >= 0 ? a : b;
    memset(r, 0, sizeof *r);
    r->kind = REPL_KIND_OBJECT;
    r->key = a->key;
    r->origin = last->origin;
    r->origin_seq = last->origin_seq;
    r->hlc = last->hlc;

    /* Immutables. */
    const store_object_t *im = immut_cmp(&a->obj, &b->obj) <= 0 ? &a->obj : &b->obj;
    if (immut_cmp(&a->obj, &b->obj) != 0)
        log_immutable_mismatch(a, b);
    r->obj = *im;
    r->obj.version = 0;
    r->obj.updated_us = a->obj.updated_us > b->obj.updated_us ? a->obj.updated_us : b->obj.updated_us;
    r->obj.state = repl_state_join(a->obj.state, b->obj.state);

    o.cap_attrs = a->obj.n_attrs + b->obj.n_attrs + 1;
    o.cap_clocks = a->n_clocks + b->n_clocks + n_names + 3;
    r->obj.attrs = kms_arena_alloc(ar, o.cap_attrs * sizeof *r->obj.attrs);
    r->clocks = kms_arena_alloc(ar, o.cap_clocks * sizeof *r->clocks);
    if (!r->obj.attrs || !r->clocks)
        return KMS_ERR_NOMEM;
    r->obj.n_attrs = 0;
    r->n_clocks = 0;

    put_clock(&o, "", o.creation);

    /* Key material. */
    clk_t ma = eff_clock(a, NAME_MATERIAL), mb = eff_clock(b, NAME_MATERIAL);
    int mc = clk_cmp(ma, mb);
    if (mc == 0)
        mc = material_cmp(&a->obj.sealed, &b->obj.sealed);
    const repl_entity_t *mw = mc >= 0 ? a : b;
    put_clock(&o, NAME_MATERIAL, mc >= 0 ? ma : mb);
    if (repl_state_destroyed(r->obj.state)) {
        r->obj.sealed = (kms_sealed_t){0};
    } else {
        r->obj.sealed = mw->obj.sealed;
        if (!r->obj.sealed.len)
            r->obj.sealed.blob = NULL;
    }

    /* Storage status. */
    clk_t aa = eff_clock(a, NAME_ARCHIVED), ab = eff_clock(b, NAME_ARCHIVED);
    int ac = clk_cmp(aa, ab);
    if (ac == 0)
        ac = (int)a->obj.archived - (int)b->obj.archived;
    r->obj.archived = ac >= 0 ? a->obj.archived : b->obj.archived;
    put_clock(&o, NAME_ARCHIVED, ac >= 0 ? aa : ab);

    /* Every attribute name: last writer wins (State: the joined value). */
    for (size_t i = 0; i < n_names && o.rc == 0; i++) {
        const char *name = names[i];
        run_t ra = find_run(sa, a->obj.n_attrs, name), rb = find_run(sb, b->obj.n_attrs, name);
        clk_t ca = eff_clock(a, name), cb = eff_clock(b, name);
        int c = clk_cmp(ca, cb);
        if (strcmp(name, NAME_STATE) == 0) {
            if (ra.n || rb.n)
                put_state_attr(&o, r->obj.state);
            put_clock(&o, name, c >= 0 ? ca : cb);
            continue;
        }
        if (c == 0)
            c = run_cmp(ra, rb);
        put_run(&o, c >= 0 ? ra : rb);
        put_clock(&o, name, c >= 0 ? ca : cb);
    }
    if (o.rc)
        return o.rc;
    /* Clocks sorted by name (attributes already are: names in order). */
    for (size_t i = 1; i < r->n_clocks; i++)
        for (size_t j = i; j > 0 && strcmp(r->clocks[j - 1].name, r->clocks[j].name) > 0; j--) {
            repl_clock_t t = r->clocks[j];
            r->clocks[j] = r->clocks[j - 1];
            r->clocks[j - 1] = t;
        }
    return 0;
}

static void copy_tombstone(const repl_entity_t *t, repl_entity_t *r)
{
    memset(r, 0, sizeof *r);
    r->kind = REPL_KIND_OBJECT;
    r->key = t->key;
    r->origin = t->origin;
    r->origin_seq = t->origin_seq;
    r->hlc = t->hlc;
    r->deleted = true;
    kms_strlcpy(r->obj.id, t->key ? t->key : t->obj.id, sizeof r->obj.id);
}

int repl_merge_object(const repl_entity_t *a, const repl_entity_t *b, kms_arena_t *arena,
                      repl_entity_t *out)
{
    if (!arena || !out || (!a && !b))
        return KMS_ERR_INVAL;
    if (!a || !b) {
        const repl_entity_t *x = a ? a : b;
        if (x->deleted) {
            copy_tombstone(x, out);
            return 0;
        }
        return join_puts(x, x, arena, out);
    }
    if (a->deleted && b->deleted) {
        copy_tombstone(ident_cmp(a, b) >= 0 ? a : b, out);
        return 0;
    }
    if (a->deleted || b->deleted) {
        const repl_entity_t *t = a->deleted ? a : b, *p = a->deleted ? b : a;
        if (clk_cmp(creation_clock(p), (clk_t){t->hlc, t->origin}) > 0)
            return join_puts(p, p, arena, out);
        copy_tombstone(t, out);
        return 0;
    }
    int c = clk_cmp(creation_clock(a), creation_clock(b));
    if (c != 0) {
        const repl_entity_t *w = c > 0 ? a : b;
        return join_puts(w, w, arena, out);
    }
    return join_puts(a, b, arena, out);
}

/* ------------------------------------------------------ whole rows */
const repl_entity_t *repl_merge_lww(const repl_entity_t *a, const repl_entity_t *b)
{
    if (!a || !b)
        return a ? a : b;
    int c = ident_cmp(a, b);
    if (c == 0)
        c = (int)a->deleted - (int)b->deleted; /* a removal beats a write of equal clock */
    return c >= 0 ? a : b;
}

void repl_merge_node(const repl_entity_t *a, const repl_entity_t *b, repl_entity_t *out)
{
    const repl_entity_t *w = repl_merge_lww(a, b);
    *out = *w;
    if (a && b && !out->deleted)
        out->node.removed = a->node.removed || b->node.removed;
}

/* --------------------------------------------------------- equality */
bool repl_object_equal(const repl_entity_t *a, const repl_entity_t *b)
{
    if (a->deleted != b->deleted || strcmp(a->key ? a->key : "", b->key ? b->key : "") != 0)
        return false;
    if (a->hlc != b->hlc || strcmp(a->origin, b->origin) != 0 || a->origin_seq != b->origin_seq)
        return false;
    if (a->deleted)
        return true;
    const store_object_t *x = &a->obj, *y = &b->obj;
    if (x->object_type != y->object_type || x->state != y->state || x->archived != y->archived ||
        material_cmp(&x->sealed, &y->sealed) != 0 || x->created_us != y->created_us ||
        strcmp(x->tenant, y->tenant) != 0)
        return false;
    if (x->n_attrs != y->n_attrs || a->n_clocks != b->n_clocks)
        return false;
    for (size_t i = 0; i < x->n_attrs; i++) {
        const store_attr_t *p = &x->attrs[i], *q = &y->attrs[i];
        if (strcmp(p->name, q->name) != 0 || p->index != q->index ||
            bytes_cmp(p->value, p->value_len, q->value, q->value_len) != 0)
            return false;
    }
    for (size_t i = 0; i < a->n_clocks; i++)
        if (strcmp(a->clocks[i].name, b->clocks[i].name) != 0 ||
            clk_cmp((clk_t){a->clocks[i].hlc, a->clocks[i].node},
                    (clk_t){b->clocks[i].hlc, b->clocks[i].node}) != 0)
            return false;
    return true;
}
