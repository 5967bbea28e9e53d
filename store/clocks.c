/*
 * store/clocks.c: the per-name clock list of an object, as stored.
 *
 * An object's `clocks` column holds, per attribute name, the (hlc, node)
 * of its last write. The encoding is compact (each node id once, varints)
 * and canonical (entries sorted by name, node ids in order of first use,
 * minimal varints, nothing after the last entry), so that decoding and
 * re-encoding gives the same bytes and two equal lists compare equal as
 * bytes. Layout:
 *
 *   u8 format (1)
 *   varint n_nodes, then per node: varint len (1..63), the id's bytes
 *   varint n_entries, then per entry: varint name_len (0..1023), the
 *       name's bytes, varint hlc (0..INT64_MAX), varint node index
 *
 * The decoder trusts nothing: every length is checked against the input
 * left and against the limits before anything is allocated. Pure code
 * (common/ only, no SQLite), so a fuzz target links it alone. What the
 * clocks mean and when they change is apply.c's business, not this file's.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define CLOCKS_FORMAT 1
#define CLOCKS_MAX_NODES 256   /* node ids in one list (cluster members) */
#define NODE_ID_MAX 63

int store_clock_cmp(int64_t hlc_a, const char *node_a, int64_t hlc_b, const char *node_b)
{
    if (hlc_a != hlc_b)
        return hlc_a < hlc_b ? -1 : 1;
    int c = strcmp(node_a ? node_a : "", node_b ? node_b : "");
    return c < 0 ? -1 : c > 0;
}

/* ------------------------------------------------------------ encode */
static int put_varint(kms_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return kms_buf_append(b, tmp, n);
}

static int put_bytes(kms_buf_t *b, const char *s, size_t n)
{
    int err = put_varint(b, n);
    return err ? err : kms_buf_append(b, s, n);
}

static int by_name(const void *a, const void *b)
{
    const store_clock_t *x = *(const store_clock_t *const *)a;
    const store_clock_t *y = *(const store_clock_t *const *)b;
    return strcmp(x->name, y->name);
}

int store_clocks_encode(const store_clock_t *c, size_t n, kms_buf_t *out)
{
    const store_clock_t **sorted = NULL;
    const char *nodes[CLOCKS_MAX_NODES];
    uint32_t *node_of = NULL;
    size_t n_nodes = 0, mark = out ? out->len : 0;
    int err = 0;
    if (!out || (n && !c))
        return KMS_ERR_INVAL;
    if (n > STORE_CLOCKS_MAX)
        return KMS_ERR_LIMIT;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].name || !c[i].node || c[i].hlc < 0 || strlen(c[i].node) > NODE_ID_MAX ||
            (c[i].node[0] == '\0'))
            return KMS_ERR_INVAL;
        if (strlen(c[i].name) > STORE_CLOCK_NAME_MAX)
            return KMS_ERR_LIMIT;
    }
    if (n) {
        sorted = malloc(n * sizeof(*sorted));
        node_of = malloc(n * sizeof(*node_of));
        if (!sorted || !node_of) {
            err = KMS_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            sorted[i] = &c[i];
        qsort(sorted, n, sizeof(*sorted), by_name);
    }
    /* Node table in order of first use, so the bytes depend only on the
     * list's content. */
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            err = KMS_ERR_INVAL;
            goto out;
        }
        size_t k = 0;
        while (k < n_nodes && strcmp(nodes[k], sorted[i]->node) != 0)
            k++;
        if (k == n_nodes) {
            if (n_nodes == CLOCKS_MAX_NODES) {
                err = KMS_ERR_LIMIT;
                goto out;
            }
            nodes[n_nodes++] = sorted[i]->node;
        }
        node_of[i] = (uint32_t)k;
    }
    err = kms_buf_append_byte(out, CLOCKS_FORMAT);
    if (!err)
        err = put_varint(out, n_nodes);
    for (size_t k = 0; k < n_nodes && !err; k++)
        err = put_bytes(out, nodes[k], strlen(nodes[k]));
    if (!err)
        err = put_varint(out, n);
    for (size_t i = 0; i < n && !err; i++) {
        err = put_bytes(out, sorted[i]->name, strlen(sorted[i]->name));
        if (!err)
            err = put_varint(out, (uint64_t)sorted[i]->hlc);
        if (!err)
            err = put_varint(out, node_of[i]);
    }
out:
    if (err && out)
        out->len = mark;
    free(sorted);
    free(node_of);
    return err;
}

/* ------------------------------------------------------------ decode */
/* A minimal LEB128 varint of at most `max`: no redundant 0x80 0x00 tails
 * (so each value has one encoding) and nothing past 64 bits. */
static int get_varint(kms_reader_t *r, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (kms_reader_u8(r, &b) != 0)
            return KMS_ERR_PROTO;
        uint64_t part = (uint64_t)(b & 0x7f);
        if (shift == 63 && part > 1)
            return KMS_ERR_PROTO;
        v |= part << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0)
                return KMS_ERR_PROTO; /* not minimal */
            if (v > max)
                return KMS_ERR_PROTO;
            *out = v;
            return 0;
        }
    }
    return KMS_ERR_PROTO;
}

/* A length-prefixed string without NUL bytes, copied into the arena. */
static int get_text(kms_reader_t *r, size_t min, size_t max, kms_arena_t *a, const char **out,
                    size_t *len_out)
{
    uint64_t n;
    const uint8_t *p;
    if (get_varint(r, max, &n) != 0 || n < min || kms_reader_bytes(r, (size_t)n, &p) != 0)
        return KMS_ERR_PROTO;
    if (n && memchr(p, 0, (size_t)n))
        return KMS_ERR_PROTO;
    char *s = kms_arena_strndup(a, (const char *)p, (size_t)n);
    if (!s)
        return KMS_ERR_NOMEM;
    *out = s;
    *len_out = (size_t)n;
    return 0;
}

int store_clocks_decode(const uint8_t *p, size_t len, kms_arena_t *arena, store_clock_t **out,
                        size_t *n_out)
{
    kms_reader_t r;
    uint8_t fmt;
    uint64_t n_nodes, n;
    const char *nodes[CLOCKS_MAX_NODES];
    store_clock_t *v = NULL;
    if ((len && !p) || !arena || !out || !n_out)
        return KMS_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    kms_reader_init(&r, p, len);
    if (kms_reader_u8(&r, &fmt) != 0 || fmt != CLOCKS_FORMAT)
        return KMS_ERR_PROTO;
    if (get_varint(&r, CLOCKS_MAX_NODES, &n_nodes) != 0)
        return KMS_ERR_PROTO;
    for (uint64_t k = 0; k < n_nodes; k++) {
        size_t l;
        int err = get_text(&r, 1, NODE_ID_MAX, arena, &nodes[k], &l);
        if (err)
            return err;
        for (uint64_t j = 0; j < k; j++)
            if (strcmp(nodes[j], nodes[k]) == 0)
                return KMS_ERR_PROTO; /* each node once */
    }
    /* Each entry takes at least 3 bytes: bound the count by the input
     * before allocating for it. */
    if (get_varint(&r, STORE_CLOCKS_MAX, &n) != 0 || n > kms_reader_left(&r) / 3 ||
        (n == 0) != (n_nodes == 0))
        return KMS_ERR_PROTO;
    if (n && !(v = kms_arena_alloc(arena, (size_t)n * sizeof(*v))))
        return KMS_ERR_NOMEM;
    uint64_t used = 0; /* nodes seen so far: the next new one must be index `used` */
    const char *prev = NULL;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t hlc, k;
        size_t l;
        int err = get_text(&r, 0, STORE_CLOCK_NAME_MAX, arena, &v[i].name, &l);
        if (err)
            return err;
        if (prev && strcmp(prev, v[i].name) >= 0)
            return KMS_ERR_PROTO; /* unsorted or repeated */
        prev = v[i].name;
        if (get_varint(&r, INT64_MAX, &hlc) != 0 || get_varint(&r, n_nodes - 1, &k) != 0 ||
            k > used)
            return KMS_ERR_PROTO;
        if (k == used)
            used++;
        v[i].hlc = (int64_t)hlc;
        v[i].node = nodes[k];
    }
    if (used != n_nodes || kms_reader_left(&r) != 0)
        return KMS_ERR_PROTO;
    *out = v;
    *n_out = (size_t)n;
    return 0;
}
