/*
 * ttlv/tree.c: linking, unlinking, searching, comparing and copying trees.
 *
 * Children are a singly linked list with a tail pointer, so appends are
 * O(1) and order is the wire order. Nothing here allocates except
 * ttlv_clone(). It deliberately does not free: items live as long as their
 * arena.
 */
#include <string.h>

#include "ttlv/ttlv_int.h"

void ttlv_append(ttlv_item_t *parent, ttlv_item_t *child)
{
    if (!parent || !child)
        return;
    if (child->parent)
        ttlv_remove(child);
    child->parent = parent;
    child->next = NULL;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
}

void ttlv_remove(ttlv_item_t *child)
{
    if (!child || !child->parent)
        return;
    ttlv_item_t *p = child->parent;
    ttlv_item_t *prev = NULL;
    for (ttlv_item_t *c = p->first; c; prev = c, c = c->next) {
        if (c != child)
            continue;
        if (prev)
            prev->next = c->next;
        else
            p->first = c->next;
        if (p->last == c)
            p->last = prev;
        break;
    }
    child->parent = NULL;
    child->next = NULL;
}

ttlv_item_t *ttlv_find(const ttlv_item_t *parent, uint32_t tag)
{
    if (!parent)
        return NULL;
    for (ttlv_item_t *c = parent->first; c; c = c->next)
        if (c->tag == tag)
            return c;
    return NULL;
}

ttlv_item_t *ttlv_find_next(const ttlv_item_t *after, uint32_t tag)
{
    if (!after)
        return NULL;
    for (ttlv_item_t *c = after->next; c; c = c->next)
        if (c->tag == tag)
            return c;
    return NULL;
}

size_t ttlv_count(const ttlv_item_t *parent, uint32_t tag)
{
    size_t n = 0;
    if (!parent)
        return 0;
    for (const ttlv_item_t *c = parent->first; c; c = c->next)
        if (c->tag == tag)
            n++;
    return n;
}

static bool value_equal(const ttlv_item_t *a, const ttlv_item_t *b)
{
    switch (a->type) {
    case TTLV_INTEGER:
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL:
        return a->v.i32 == b->v.i32;
    case TTLV_LONG_INTEGER:
    case TTLV_DATE_TIME:
        return a->v.i64 == b->v.i64;
    case TTLV_BOOLEAN:
        return a->v.b == b->v.b;
    case TTLV_BIG_INTEGER:
    case TTLV_TEXT_STRING:
    case TTLV_BYTE_STRING:
        return a->v.bytes.len == b->v.bytes.len &&
               (a->v.bytes.len == 0 || memcmp(a->v.bytes.ptr, b->v.bytes.ptr, a->v.bytes.len) == 0);
    default:
        return true; /* Structure: compared through children */
    }
}

bool ttlv_equal(const ttlv_item_t *a, const ttlv_item_t *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->tag != b->tag || a->type != b->type || !value_equal(a, b))
        return false;
    const ttlv_item_t *x = a->first, *y = b->first;
    for (; x && y; x = x->next, y = y->next)
        if (!ttlv_equal(x, y))
            return false;
    return x == NULL && y == NULL;
}

static ttlv_item_t *clone_rec(kms_arena_t *a, const ttlv_item_t *src, ttlv_item_t *parent, size_t depth)
{
    if (depth > TTLV_HARD_MAX_DEPTH)
        return NULL;
    ttlv_item_t *it = NULL;
    switch (src->type) {
    case TTLV_BIG_INTEGER:
    case TTLV_TEXT_STRING:
    case TTLV_BYTE_STRING: {
        size_t n = src->v.bytes.len;
        if (n == SIZE_MAX)
            return NULL;
        uint8_t *c = kms_arena_alloc(a, n + 1);
        if (!c)
            return NULL;
        if (n)
            memcpy(c, src->v.bytes.ptr, n);
        it = ttlv_item_alloc(a, NULL, src->tag, src->type);
        if (!it)
            return NULL;
        it->v.bytes.ptr = c;
        it->v.bytes.len = n;
        break;
    }
    default:
        it = ttlv_item_alloc(a, NULL, src->tag, src->type);
        if (!it)
            return NULL;
        it->v = src->v;
        break;
    }
    it->offset = src->offset;
    for (const ttlv_item_t *c = src->first; c; c = c->next)
        if (!clone_rec(a, c, it, depth + 1))
            return NULL;
    if (parent)
        ttlv_append(parent, it);
    return it;
}

ttlv_item_t *ttlv_clone(kms_arena_t *a, const ttlv_item_t *src)
{
    if (!a || !src)
        return NULL;
    return clone_rec(a, src, NULL, 1);
}
