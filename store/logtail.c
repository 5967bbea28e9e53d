/*
 * store/logtail.c: the newest change-log rows in memory, with the object
 * state each put committed.
 *
 * Replication ships every change to every peer; reading each new object
 * back from SQLite once per push link would be the largest cost of the
 * node the clients write to. So, once enabled (store_log_tail_enable), the
 * writer thread records, while it applies a batch, every change-log row
 * it appends and, for an object put, a copy of the object exactly as it
 * stored it (attributes in (name, index) order, blob, clocks, change
 * identity, version and times: what store_get_repl would read). The
 * records of one batch form a segment, published after the COMMIT and
 * before the batch's writers are answered or replication is notified; a
 * failed write's records are dropped with its savepoint, a failed batch's
 * with its transaction. Segments are immutable once published and
 * reference-counted, so a reader holds the ones it uses without a copy.
 *
 * Bounded: past max_bytes the oldest segments are dropped and the floor
 * (every row after it is held) moves up; a reader asking for rows below
 * the floor gets KMS_ERR_NOTFOUND and reads the log from SQLite instead.
 * A batch that cannot be recorded (no memory) empties the tail and moves
 * the floor past it. It deliberately holds no tombstone or tenant, client,
 * node or data-store-key state: those rows are rare and read from SQLite.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

struct store_tail_seg {
    struct store_tail_seg *next;     /* newer */
    struct store_tail_seg *prev;     /* older while both are in the tail (lookups) */
    atomic_int refs;                 /* the tail's own, plus one per reader holding it */
    store_logged_t *v;               /* rows in seq order; each obj one malloc'd block */
    size_t n, cap;
    size_t bytes;                    /* rows and objects */
};

struct store_logtail {
    pthread_mutex_t mu;
    store_tail_seg_t *oldest, *newest;
    int64_t floor;                   /* every row with seq > floor is held */
    size_t bytes, max_bytes;
    bool active;                     /* floor is known (writer, first batch) */
    /* The segment the writer is recording (writer thread only). */
    store_tail_seg_t *pending;
    bool broken;                     /* a record of this batch failed */
};

struct store_tail_ref {
    size_t n;
    store_tail_seg_t *v[];
};

/* Free the objects of rows [from, n). */
static void seg_drop_objects(store_tail_seg_t *g, size_t from)
{
    for (size_t i = from; i < g->n; i++) {
        free((void *)g->v[i].obj);
        g->v[i].obj = NULL;
    }
}

static void seg_unref(store_tail_seg_t *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    seg_drop_objects(g, 0);
    free(g->v);
    free(g);
}

static store_tail_seg_t *seg_new(void)
{
    store_tail_seg_t *g = calloc(1, sizeof(*g));
    if (g)
        atomic_init(&g->refs, 1);
    return g;
}

int store_log_tail_enable(store_t *s, size_t max_bytes)
{
    if (!s || max_bytes == 0)
        return KMS_ERR_INVAL;
    if (s->read_only)
        return KMS_ERR_PERM;
    store_logtail_t *t = calloc(1, sizeof(*t));
    if (!t)
        return KMS_ERR_NOMEM;
    pthread_mutex_init(&t->mu, NULL);
    t->max_bytes = max_bytes;
    store_logtail_t *none = NULL;
    if (!atomic_compare_exchange_strong(&s->tail, &none, t)) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return KMS_ERR_STATE; /* already enabled */
    }
    return 0;
}

void store_log_tail_free(store_t *s)
{
    store_logtail_t *t = atomic_exchange(&s->tail, NULL);
    if (!t)
        return;
    while (t->oldest) {
        store_tail_seg_t *g = t->oldest;
        t->oldest = g->next;
        seg_unref(g);
    }
    seg_unref(t->pending);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ------------------------------------------------------ writer thread */
void store_tail_batch_start(store_t *s)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (!t)
        return;
    if (!t->active) {
        /* The first batch since enabling: every row up to the highest seq
         * committed so far is in SQLite only. Between batches the writer is
         * the only one appending, so the value is exact. */
        sqlite3_stmt *st;
        int64_t seq = -1;
        if (store_wstmt(s, WS_LAST_SEQ, &st) == 0) {
            if (sqlite3_step(st) == SQLITE_ROW)
                seq = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        }
        if (seq < 0)
            return; /* try again with the next batch */
        pthread_mutex_lock(&t->mu);
        t->floor = seq;
        t->active = true;
        pthread_mutex_unlock(&t->mu);
    }
    store_tail_reset(s);
}

void store_tail_reset(store_t *s)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (!t || !t->active)
        return;
    t->broken = false;
    if (t->pending) {
        seg_drop_objects(t->pending, 0);
        t->pending->n = 0;
        t->pending->bytes = 0;
    }
}

size_t store_tail_mark(store_t *s)
{
    store_logtail_t *t = atomic_load(&s->tail);
    return t && t->pending ? t->pending->n : 0;
}

void store_tail_truncate(store_t *s, size_t mark)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (t && t->pending && mark < t->pending->n) {
        seg_drop_objects(t->pending, mark);
        t->pending->n = mark;
    }
}

void store_tail_add_row(store_t *s, enum store_kind kind, const char *key, int64_t version,
                        bool deleted, const store_change_id_t *id, int64_t seq)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (!t || !t->active || t->broken)
        return;
    if (!t->pending && !(t->pending = seg_new()))
        goto broken;
    store_tail_seg_t *g = t->pending;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        store_logged_t *v = realloc(g->v, cap * sizeof(*v));
        if (!v)
            goto broken;
        g->v = v;
        g->cap = cap;
    }
    store_logged_t *e = &g->v[g->n];
    memset(e, 0, sizeof(*e));
    e->row.seq = seq;
    e->row.kind = kind;
    if (kms_strlcpy(e->row.key, key, sizeof(e->row.key)) >= sizeof(e->row.key))
        goto broken;
    e->row.id = *id;
    e->row.version = version;
    e->row.deleted = deleted;
    g->n++;
    return;
broken:
    t->broken = true;
}

static int attr_cmp(const void *pa, const void *pb)
{
    const store_attr_t *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    return (a->index > b->index) - (a->index < b->index);
}

/* Attributes into (name, index) order. An object has a dozen or two,
 * mostly in order already: insertion sort, one comparison per attribute
 * in the best case, without qsort's indirect calls (this runs on the
 * writer thread, for every object put). Long lists: qsort. */
static void sort_attrs(store_attr_t *v, size_t n)
{
    if (n > 64) {
        qsort(v, n, sizeof(*v), attr_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        if (attr_cmp(&v[i - 1], &v[i]) <= 0)
            continue;
        store_attr_t x = v[i];
        size_t j = i;
        while (j > 0 && attr_cmp(&v[j - 1], &x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

void store_tail_add_object(store_t *s, const store_object_t *o, int64_t version,
                           int64_t created_us, int64_t updated_us, const store_change_id_t *id,
                           int64_t seq, const uint8_t *clocks, size_t clocks_len, bool has_clocks)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (!t || !t->active || t->broken)
        return;
    store_tail_seg_t *g = t->pending;
    /* The object as a read would give it: what the writer set, and the
     * clocks column decoded (NULL: every name at the change's clock). */
    store_object_t v = *o;
    store_clock_t dflt = {.name = STORE_CLOCK_DEFAULT, .hlc = id->hlc, .node = id->origin};
    v.version = version;
    v.created_us = created_us;
    v.updated_us = updated_us;
    v.change = *id;
    v.clocks = &dflt;
    v.n_clocks = 1;
    if (has_clocks &&
        store_clocks_decode(clocks, clocks_len, s->wscratch, &v.clocks, &v.n_clocks) != 0)
        goto broken;
    /* The row store_log_change just recorded for this put. */
    if (!g || !g->n || g->v[g->n - 1].row.seq != seq)
        goto broken;
    size_t size = store_object_size(&v, sizeof(v), true);
    store_object_t *c = malloc(size);
    if (!c)
        goto broken;
    store_object_copy(&v, c, (uint8_t *)(c + 1), true);
    /* The order a read gives (the attributes' primary key). */
    sort_attrs(c->attrs, c->n_attrs);
    g->v[g->n - 1].obj = c;
    g->bytes += size;
    return;
broken:
    t->broken = true;
}

/* Drop the oldest segments until at most `budget` bytes are held. Locked. */
static void evict(store_logtail_t *t, size_t budget)
{
    while (t->oldest && t->bytes > budget) {
        store_tail_seg_t *g = t->oldest;
        t->oldest = g->next;
        if (t->oldest)
            t->oldest->prev = NULL;
        else
            t->newest = NULL;
        t->bytes -= g->bytes;
        if (g->n && g->v[g->n - 1].row.seq > t->floor)
            t->floor = g->v[g->n - 1].row.seq;
        seg_unref(g);
    }
}

void store_tail_publish(store_t *s, int64_t top_seq)
{
    store_logtail_t *t = atomic_load(&s->tail);
    if (!t || !t->active)
        return;
    store_tail_seg_t *g = t->pending;
    pthread_mutex_lock(&t->mu);
    if (t->broken) {
        /* Rows of this batch are missing: nothing at or below its top is
         * held any more. */
        evict(t, 0);
        if (top_seq > t->floor)
            t->floor = top_seq;
    } else if (g && g->n) {
        /* What it holds: its rows (trimmed to size) and objects. */
        store_logged_t *v = g->n < g->cap ? realloc(g->v, g->n * sizeof(*v)) : NULL;
        if (v) {
            g->v = v;
            g->cap = g->n;
        }
        g->bytes += sizeof(*g) + g->cap * sizeof(*g->v);
        g->prev = t->newest;
        if (t->newest)
            t->newest->next = g;
        else
            t->oldest = g;
        t->newest = g;
        t->bytes += g->bytes;
        t->pending = NULL; /* published: immutable from here */
        evict(t, t->max_bytes);
    }
    pthread_mutex_unlock(&t->mu);
    t->broken = false;
}

/* ------------------------------------------------------------ readers */
/* A published segment's highest seq (segments are never empty). */
static int64_t seg_last(const store_tail_seg_t *g)
{
    return g->v[g->n - 1].row.seq;
}

/* The index of g's first row with seq > after (rows in seq order). */
static size_t seg_after(const store_tail_seg_t *g, int64_t after)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->v[mid].row.seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int store_log_tail(store_t *s, int64_t after, size_t limit, store_logged_t *v, size_t *n_out,
                   store_tail_ref_t **ref_out)
{
    store_logtail_t *t = s ? atomic_load(&s->tail) : NULL;
    int err = 0;
    if (!v || !n_out || !ref_out || limit == 0)
        return KMS_ERR_INVAL;
    *n_out = 0;
    *ref_out = NULL;
    if (!t)
        return KMS_ERR_NOTFOUND;
    pthread_mutex_lock(&t->mu);
    if (!t->active || after < t->floor) {
        err = KMS_ERR_NOTFOUND;
        goto out;
    }
    /* Readers ask for the newest rows: walk back from the newest
     * segment to the first one holding a row after `after`, and find
     * that row by bisection. */
    store_tail_seg_t *first = t->newest;
    if (first && seg_last(first) <= after)
        first = NULL;
    while (first && first->prev && seg_last(first->prev) > after)
        first = first->prev;
    size_t from = first ? seg_after(first, after) : 0;
    size_t nseg = 0;
    for (store_tail_seg_t *g = first; g && *n_out < limit; g = g->next) {
        size_t i = g == first ? from : 0;
        for (; i < g->n && *n_out < limit; i++)
            v[(*n_out)++] = g->v[i];
        nseg++;
    }
    if (!nseg)
        goto out;
    store_tail_ref_t *ref = malloc(sizeof(*ref) + nseg * sizeof(ref->v[0]));
    if (!ref) {
        *n_out = 0;
        err = KMS_ERR_NOMEM;
        goto out;
    }
    ref->n = nseg;
    store_tail_seg_t *g = first;
    for (size_t k = 0; k < nseg; k++, g = g->next) {
        atomic_fetch_add(&g->refs, 1);
        ref->v[k] = g;
    }
    *ref_out = ref;
out:
    pthread_mutex_unlock(&t->mu);
    return err;
}

void store_log_tail_release(store_tail_ref_t *ref)
{
    if (!ref)
        return;
    for (size_t k = 0; k < ref->n; k++)
        seg_unref(ref->v[k]);
    free(ref);
}

void store_log_tail_stats(store_t *s, int64_t *floor_out, size_t *bytes_out)
{
    store_logtail_t *t = s ? atomic_load(&s->tail) : NULL;
    int64_t floor = -1;
    size_t bytes = 0;
    if (t) {
        pthread_mutex_lock(&t->mu);
        floor = t->active ? t->floor : -1;
        bytes = t->bytes;
        pthread_mutex_unlock(&t->mu);
    }
    if (floor_out)
        *floor_out = floor;
    if (bytes_out)
        *bytes_out = bytes;
}
