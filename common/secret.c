/*
 * common/secret.c: the secret type. Memory for key material is locked into
 * RAM where the process may (best effort: RLIMIT_MEMLOCK can refuse) and is
 * always wiped before it is returned to the allocator.
 */
#define _DEFAULT_SOURCE
#include "common/kms.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
    s->data = calloc(1, len ? len : 1);
    if (!s->data) {
        free(s);
        return NULL;
    }
    s->len = len;
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
    kms_wipe(s->data, s->len ? s->len : 1);
    (void)munlock(s->data, s->len ? s->len : 1);
    free(s->data);
    free(s);
}
