/*
 * common/secret.c: the secret type. Memory for key material is locked into
 * RAM where the process may (best effort: RLIMIT_MEMLOCK can refuse) and is
 * always wiped before it is reused or returned.
 *
 * Small secrets (the common case: 16-64 byte keys, a few KiB for RSA keys)
 * come from size-class pools carved out of 64 KiB slabs that are mmap'ed and
 * mlock'ed once. A freed block is wiped and kept on its class's free list;
 * slabs are never unmapped. So the request path makes no mlock/munlock call,
 * which would take the process-wide mmap lock on every Get. The pool is
 * capped (SLAB_MAX); past it, or above the largest class, a secret is a
 * separately allocated and locked block as before.
 */
#define _DEFAULT_SOURCE
#include "common/kms.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under AddressSanitizer the pool poisons what no secret owns, so overflows
 * past a secret's length and uses after free are still reported. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_SIZE (64u * 1024u)
#define SLAB_MAX 256 /* 16 MiB of locked pool at most */
static const size_t class_size[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
#define N_CLASSES (sizeof(class_size) / sizeof(class_size[0]))

struct free_block {
    struct free_block *next;
};

static struct {
    pthread_mutex_t lock;
    struct free_block *free[N_CLASSES];
    uint8_t *cur[N_CLASSES]; /* unused tail of the class's newest slab */
    size_t cur_left[N_CLASSES];
    unsigned slabs;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int class_of(size_t len)
{
    for (size_t i = 0; i < N_CLASSES; i++)
        if (len <= class_size[i])
            return (int)i;
    return -1;
}

/* A zeroed block of class c for `len` bytes, or NULL when the pool is at
 * its cap. */
static void *pool_get(int c, size_t len)
{
    void *p = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.free[c]) {
        struct free_block *b = pool.free[c];
        UNPOISON(b, class_size[c]);
        pool.free[c] = b->next;
        b->next = NULL; /* blocks are wiped on free: all zero now */
        POISON((uint8_t *)b + len, class_size[c] - len);
        p = b;
    } else {
        if (pool.cur_left[c] < class_size[c] && pool.slabs < SLAB_MAX) {
            void *slab = mmap(NULL, SLAB_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (slab != MAP_FAILED) {
                (void)mlock(slab, SLAB_SIZE); /* best effort */
                (void)madvise(slab, SLAB_SIZE, MADV_DONTDUMP);
                POISON(slab, SLAB_SIZE);
                pool.cur[c] = slab;
                pool.cur_left[c] = SLAB_SIZE;
                pool.slabs++;
            }
        }
        if (pool.cur_left[c] >= class_size[c]) {
            p = pool.cur[c];
            UNPOISON(p, len);
            pool.cur[c] += class_size[c];
            pool.cur_left[c] -= class_size[c];
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return p;
}

static void pool_put(int c, void *p)
{
    UNPOISON(p, class_size[c]);
    kms_wipe(p, class_size[c]);
    pthread_mutex_lock(&pool.lock);
    struct free_block *b = p;
    b->next = pool.free[c];
    pool.free[c] = b;
    POISON(b, class_size[c]);
    pthread_mutex_unlock(&pool.lock);
}

void kms_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

int kms_ct_memcmp(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d != 0;
}

kms_secret_t *kms_secret_new(size_t len)
{
    kms_secret_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->len = len;
    s->pool_ = class_of(len ? len : 1);
    if (s->pool_ >= 0 && (s->data = pool_get(s->pool_, len ? len : 1)) != NULL)
        return s;
    s->pool_ = -1;
    s->data = calloc(1, len ? len : 1);
    if (!s->data) {
        free(s);
        return NULL;
    }
    (void)mlock(s->data, len ? len : 1); /* best effort */
    return s;
}

kms_secret_t *kms_secret_dup(const void *p, size_t len)
{
    kms_secret_t *s = kms_secret_new(len);
    if (s && len)
        memcpy(s->data, p, len);
    return s;
}

void kms_secret_free(kms_secret_t *s)
{
    if (!s)
        return;
    if (s->pool_ >= 0 && (size_t)s->pool_ < N_CLASSES) {
        pool_put(s->pool_, s->data);
    } else {
        kms_wipe(s->data, s->len ? s->len : 1);
        (void)munlock(s->data, s->len ? s->len : 1);
        free(s->data);
    }
    free(s);
}
