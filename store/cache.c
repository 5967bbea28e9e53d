/*
 * store/cache.c: a bounded cache of objects for store_get.
 *
 * A Get that hits costs a hash look-up and one copy into the caller's
 * arena instead of a SQLite query. Entries are deep copies in one block
 * each, in 64 shards (mutex, hash chains, LRU list, byte budget).
 *
 * Never stale: every mutation goes through the writer thread, which, for
 * each object id in a batch, marks its shard "in flux" and drops the entry
 * before the transaction, and drops it again and ends the flux after the
 * COMMIT, before any waiter is woken. A reader fills the cache only with
 * what it read from the database while its shard was not in flux and had
 * the same generation before and after the read; any write to the shard
 * in between bumps the generation and the fill is discarded. So a cached
 * entry is always the latest committed version. The cache knows nothing of
 * other processes: only kmsd's writer may change objects while it runs.
 * Memory is wiped when an entry is dropped (blobs are sealed, but still).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_SHARDS 64
#define CACHE_BUCKETS 1024 /* per shard; chains stay short up to ~100k entries */

typedef struct centry {
    struct centry *hnext;
    struct centry *lprev, *lnext;
    uint64_t hash;
    size_t size;             /* whole block, for the budget and the copy */
    store_object_t obj;      /* points into this block */
} centry_t;

typedef struct cshard {
    pthread_mutex_t mu;
    centry_t *buckets[CACHE_BUCKETS];
    centry_t lru;            /* sentinel: lnext = most recent */
    size_t bytes, max_bytes;
    uint64_t gen;            /* bumped by every invalidation */
    unsigned influx;         /* writes of this shard between BEGIN and COMMIT */
    uint64_t hits, misses;
} cshard_t;

struct store_cache {
    cshard_t shard[CACHE_SHARDS];
};

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 1099511628211ULL;
    /* FNV's last step barely moves the high bits; mix them in (splitmix64
     * finaliser) since shard and bucket take different halves. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static cshard_t *shard_of(store_cache_t *c, uint64_t h)
{
    return &c->shard[(h >> 32) % CACHE_SHARDS];
}

store_cache_t *store_cache_new(size_t max_bytes)
{
    store_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cshard_t *sh = &c->shard[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->lru.lnext = sh->lru.lprev = &sh->lru;
        sh->max_bytes = max_bytes / CACHE_SHARDS;
    }
    return c;
}

static void lru_unlink(centry_t *e)
{
    e->lprev->lnext = e->lnext;
    e->lnext->lprev = e->lprev;
}

static void lru_front(cshard_t *sh, centry_t *e)
{
    e->lnext = sh->lru.lnext;
    e->lprev = &sh->lru;
    sh->lru.lnext->lprev = e;
    sh->lru.lnext = e;
}

static void entry_free(centry_t *e)
{
    kms_wipe(e, e->size);
    free(e);
}

/* Unlink from chain and LRU, free. Shard locked. */
static void drop(cshard_t *sh, centry_t **link)
{
    centry_t *e = *link;
    *link = e->hnext;
    lru_unlink(e);
    sh->bytes -= e->size;
    entry_free(e);
}

static centry_t **find(cshard_t *sh, uint64_t h, const char *id)
{
    centry_t **link = &sh->buckets[(h & 0xffffffffu) % CACHE_BUCKETS];
    for (; *link; link = &(*link)->hnext)
        if ((*link)->hash == h && strcmp((*link)->obj.id, id) == 0)
            return link;
    return link;
}

void store_cache_free(store_cache_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cshard_t *sh = &c->shard[i];
        for (int b = 0; b < CACHE_BUCKETS; b++)
            while (sh->buckets[b])
                drop(sh, &sh->buckets[b]);
        pthread_mutex_destroy(&sh->mu);
    }
    free(c);
}

size_t store_object_size(const store_object_t *o, size_t base, bool with_clocks)
{
    size_t n = base + o->sealed.len + o->n_attrs * sizeof(store_attr_t) + 16;
    for (size_t i = 0; i < o->n_attrs; i++) {
        const store_attr_t *a = &o->attrs[i];
        n += strlen(a->name) + 1 + a->value_len + 1 + (a->skey ? strlen(a->skey) + 1 : 0);
    }
    for (size_t i = 0; with_clocks && i < o->n_clocks; i++)
        n += sizeof(store_clock_t) + strlen(o->clocks[i].name) + 1 + strlen(o->clocks[i].node) + 1;
    return n;
}

/* Copy the string s (with its NUL) to p, point *dst at it; past it. */
static uint8_t *put_str(uint8_t *p, const char *s, const char **dst)
{
    size_t n = strlen(s) + 1;
    memcpy(p, s, n);
    *dst = (const char *)p;
    return p + n;
}

void store_object_copy(const store_object_t *src, store_object_t *dst, uint8_t *p,
                       bool with_clocks)
{
    *dst = *src;
    dst->attrs = NULL;
    dst->sealed.blob = NULL;
    dst->touched = NULL; /* never set on what store_get returns; not copied */
    dst->clocks = NULL;
    dst->n_touched = dst->n_clocks = 0;
    /* store_attr_t and store_clock_t need pointer alignment (both are
     * multiples of 8 bytes long) */
    uintptr_t u = ((uintptr_t)p + 15) & ~(uintptr_t)15;
    p = (uint8_t *)u;
    if (src->n_attrs) {
        dst->attrs = (store_attr_t *)p;
        p += src->n_attrs * sizeof(store_attr_t);
    }
    if (with_clocks && src->n_clocks) {
        dst->clocks = (store_clock_t *)p;
        dst->n_clocks = src->n_clocks;
        p += src->n_clocks * sizeof(store_clock_t);
    }
    if (src->sealed.blob) {
        memcpy(p, src->sealed.blob, src->sealed.len);
        dst->sealed.blob = p;
        p += src->sealed.len;
    }
    for (size_t i = 0; i < src->n_attrs; i++) {
        const store_attr_t *a = &src->attrs[i];
        store_attr_t *d = &dst->attrs[i];
        *d = *a;
        p = put_str(p, a->name, &d->name);
        if (a->value_len)
            memcpy(p, a->value, a->value_len);
        p[a->value_len] = 0; /* values are NUL-terminated too, as store_get gives them */
        d->value = p;
        p += a->value_len + 1;
        if (a->skey)
            p = put_str(p, a->skey, &d->skey);
    }
    for (size_t i = 0; dst->clocks && i < src->n_clocks; i++) {
        store_clock_t *d = &dst->clocks[i];
        *d = src->clocks[i];
        p = put_str(p, src->clocks[i].name, &d->name);
        p = put_str(p, src->clocks[i].node, &d->node);
    }
}

int store_cache_get(store_cache_t *c, const char *id, const char *tenant, kms_arena_t *arena,
                    store_object_t **out, uint64_t *gen_out)
{
    uint64_t h = hash_id(id);
    cshard_t *sh = shard_of(c, h);
    int rc = 1;
    pthread_mutex_lock(&sh->mu);
    centry_t **link = find(sh, h, id);
    centry_t *e = *link;
    if (!e) {
        sh->misses++;
        *gen_out = sh->influx ? UINT64_MAX : sh->gen; /* UINT64_MAX: do not fill */
        goto out;
    }
    sh->hits++;
    lru_unlink(e);
    lru_front(sh, e);
    if (tenant && strcmp(tenant, e->obj.tenant) != 0) {
        rc = KMS_ERR_NOTFOUND; /* another tenant's: same answer as the database */
        goto out;
    }
    size_t len = e->size - offsetof(centry_t, obj);
    store_object_t *o = kms_arena_alloc(arena, len + 16);
    if (!o) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    store_object_copy(&e->obj, o, (uint8_t *)(o + 1), false);
    *out = o;
    rc = 0;
out:
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

void store_cache_fill(store_cache_t *c, const store_object_t *o, uint64_t gen)
{
    if (gen == UINT64_MAX)
        return;
    uint64_t h = hash_id(o->id);
    cshard_t *sh = shard_of(c, h);
    size_t size = store_object_size(o, sizeof(centry_t), false);
    if (size > sh->max_bytes / 4)
        return; /* one object must not flush a shard */
    centry_t *e = malloc(size);
    if (!e)
        return;
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->size = size;
    store_object_copy(o, &e->obj, (uint8_t *)(e + 1), false);
    pthread_mutex_lock(&sh->mu);
    centry_t **link = find(sh, h, o->id);
    if (sh->influx || sh->gen != gen || *link) {
        pthread_mutex_unlock(&sh->mu);
        entry_free(e); /* a write touched the shard meanwhile, or already cached */
        return;
    }
    *link = e;
    lru_front(sh, e);
    sh->bytes += size;
    while (sh->bytes > sh->max_bytes && sh->lru.lprev != &sh->lru) {
        centry_t *old = sh->lru.lprev;
        drop(sh, find(sh, old->hash, old->obj.id));
    }
    pthread_mutex_unlock(&sh->mu);
}

void store_cache_begin(store_cache_t *c, const char *id)
{
    uint64_t h = hash_id(id);
    cshard_t *sh = shard_of(c, h);
    pthread_mutex_lock(&sh->mu);
    centry_t **link = find(sh, h, id);
    if (*link)
        drop(sh, link);
    sh->influx++;
    sh->gen++;
    pthread_mutex_unlock(&sh->mu);
}

void store_cache_end(store_cache_t *c, const char *id)
{
    uint64_t h = hash_id(id);
    cshard_t *sh = shard_of(c, h);
    pthread_mutex_lock(&sh->mu);
    centry_t **link = find(sh, h, id);
    if (*link)
        drop(sh, link);
    sh->influx--;
    sh->gen++;
    pthread_mutex_unlock(&sh->mu);
}

void store_cache_stats(store_cache_t *c, store_stats_t *st)
{
    for (int i = 0; c && i < CACHE_SHARDS; i++) {
        cshard_t *sh = &c->shard[i];
        pthread_mutex_lock(&sh->mu);
        st->cache_hits += sh->hits;
        st->cache_misses += sh->misses;
        st->cache_bytes += sh->bytes;
        pthread_mutex_unlock(&sh->mu);
    }
}
