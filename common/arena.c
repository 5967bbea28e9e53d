/*
 * common/arena.c: a bump allocator for per-request memory.
 *
 * Blocks are chained; a request is freed in one call. Every block is wiped
 * on reset and free because request trees carry key material. The arena has
 * an optional byte limit so that one request cannot take unbounded memory.
 */
#include "common/kms.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 8192
#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[];
};

struct kms_arena {
    struct arena_block *head;
    size_t limit;
    size_t total; /* bytes handed out, for the limit */
};

kms_arena_t *kms_arena_new(size_t limit)
{
    kms_arena_t *a = calloc(1, sizeof(*a));
    if (a)
        a->limit = limit;
    return a;
}

static void free_blocks(struct arena_block *b)
{
    while (b) {
        struct arena_block *n = b->next;
        kms_wipe(b->data, b->used);
        free(b);
        b = n;
    }
}

void kms_arena_free(kms_arena_t *a)
{
    if (!a)
        return;
    free_blocks(a->head);
    free(a);
}

void kms_arena_reset(kms_arena_t *a)
{
    if (!a || !a->head)
        return;
    /* Keep the last block in the chain (the oldest, the first allocated). */
    struct arena_block *keep = a->head;
    while (keep->next)
        keep = keep->next;
    struct arena_block *b = a->head;
    while (b != keep) {
        struct arena_block *n = b->next;
        kms_wipe(b->data, b->used);
        free(b);
        b = n;
    }
    kms_wipe(keep->data, keep->used);
    keep->used = 0;
    a->head = keep;
    a->total = 0;
}

void *kms_arena_alloc(kms_arena_t *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    size_t rounded = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (a->limit && (rounded > a->limit || a->total > a->limit - rounded))
        return NULL;
    struct arena_block *b = a->head;
    if (!b || b->size - b->used < rounded) {
        size_t size = rounded > ARENA_BLOCK ? rounded : ARENA_BLOCK;
        b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (uint8_t *)b->data + b->used;
    b->used += rounded;
    a->total += rounded;
    memset(p, 0, n);
    return p;
}

void *kms_arena_memdup(kms_arena_t *a, const void *p, size_t n)
{
    void *d = kms_arena_alloc(a, n);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

char *kms_arena_strndup(kms_arena_t *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = kms_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

char *kms_arena_strdup(kms_arena_t *a, const char *s) { return kms_arena_strndup(a, s, strlen(s)); }

size_t kms_arena_used(const kms_arena_t *a) { return a->total; }

kms_arena_mark_t kms_arena_mark(const kms_arena_t *a)
{
    kms_arena_mark_t m = {.block = a->head, .used = a->head ? a->head->used : 0, .total = a->total};
    return m;
}

/* Allocation only ever fills the head block or pushes a new head, so what
 * came after the mark is the blocks in front of the marked one plus the
 * marked block's bytes past `used`. */
void kms_arena_rewind(kms_arena_t *a, kms_arena_mark_t m)
{
    struct arena_block *b = a->head;
    while (b && b != (struct arena_block *)m.block) {
        struct arena_block *n = b->next;
        kms_wipe(b->data, b->used);
        free(b);
        b = n;
    }
    a->head = b;
    if (b && b->used > m.used) {
        kms_wipe((uint8_t *)b->data + m.used, b->used - m.used);
        b->used = m.used;
    }
    a->total = m.total;
}
