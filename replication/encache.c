/*
 * replication/encache.c: encoded entities shared by a node's push links.
 *
 * An entity shipped from the change log's rows in memory (ship.c) is the
 * state its row committed, the same for every link: the first link to
 * ship a row encodes its ENTITY structure and leaves the bytes here, keyed
 * by the row's seq; the other links copy them instead of encoding the
 * object again. Bounded by bytes, oldest entries dropped first; a miss
 * only costs the encoding. Entities read from the store (current states,
 * data-store keys) are never kept here: their bytes depend on when they
 * were read, and a data-store key is never left in memory. Any thread
 * (the links' work items run on libuv's pool); one mutex.
 */
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

#define ENCACHE_BUCKETS 4096

typedef struct ent {
    struct ent *hnext;       /* bucket chain */
    struct ent *newer;       /* FIFO: eviction from the oldest */
    int64_t seq;
    size_t len;
    uint8_t bytes[];
} ent_t;

struct repl_encache {
    pthread_mutex_t mu;
    ent_t *buckets[ENCACHE_BUCKETS];
    ent_t *oldest, *newest;
    size_t bytes, max_bytes;
    uint64_t hits, misses;
};

repl_encache_t *repl_encache_new(size_t max_bytes)
{
    repl_encache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static ent_t **find(repl_encache_t *c, int64_t seq)
{
    ent_t **link = &c->buckets[(uint64_t)seq % ENCACHE_BUCKETS];
    while (*link && (*link)->seq != seq)
        link = &(*link)->hnext;
    return link;
}

static void drop_oldest(repl_encache_t *c)
{
    ent_t *e = c->oldest;
    ent_t **link = find(c, e->seq);
    *link = e->hnext;
    c->oldest = e->newer;
    if (!c->oldest)
        c->newest = NULL;
    c->bytes -= sizeof *e + e->len;
    kms_wipe(e->bytes, e->len);
    free(e);
}

void repl_encache_free(repl_encache_t *c)
{
    if (!c)
        return;
    while (c->oldest)
        drop_oldest(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int repl_encache_get(repl_encache_t *c, int64_t seq, kms_buf_t *out)
{
    int rc = KMS_ERR_NOTFOUND;
    if (!c)
        return rc;
    pthread_mutex_lock(&c->mu);
    ent_t *e = *find(c, seq);
    if (e)
        rc = kms_buf_append(out, e->bytes, e->len);
    if (rc == 0)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void repl_encache_put(repl_encache_t *c, int64_t seq, const uint8_t *p, size_t len)
{
    if (!c || len > c->max_bytes / 4)
        return;
    ent_t *e = malloc(sizeof *e + len);
    if (!e)
        return; /* a miss next time, nothing else */
    e->hnext = e->newer = NULL;
    e->seq = seq;
    e->len = len;
    memcpy(e->bytes, p, len);
    pthread_mutex_lock(&c->mu);
    ent_t **link = find(c, seq);
    if (*link) {
        /* Another link was first: the same bytes. */
        pthread_mutex_unlock(&c->mu);
        free(e);
        return;
    }
    *link = e;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    c->bytes += sizeof *e + len;
    while (c->bytes > c->max_bytes && c->oldest)
        drop_oldest(c);
    pthread_mutex_unlock(&c->mu);
}

void repl_encache_stats(repl_encache_t *c, uint64_t *hits_out, uint64_t *misses_out)
{
    uint64_t h = 0, m = 0;
    if (c) {
        pthread_mutex_lock(&c->mu);
        h = c->hits;
        m = c->misses;
        pthread_mutex_unlock(&c->mu);
    }
    *hits_out = h;
    *misses_out = m;
}
