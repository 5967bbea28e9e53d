/*
 * kmip/server.c: the kmip_server_t handle: configuration defaults, the
 * identity state (auth.c) and the per-thread store readers.
 *
 * Each worker thread gets its own store_reader_t on its first request
 * (SQLite connections are not shared between threads). Readers are kept
 * in a list so that kmip_server_free() can close those of threads that
 * are still alive; a thread that exits first frees its own through the
 * pthread key destructor. Requests are request.c, execute.c and
 * message.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kmip/kmip_int.h"

#define DEFAULT_MAX_RESPONSE (16u << 20)
#define DEFAULT_MAX_BATCH 1024
#define DEFAULT_ARENA_LIMIT (64u << 20)

struct kmip_reader_node {
    kmip_server_t *srv;
    store_reader_t *reader;
    struct kmip_reader_node *prev, *next;
};

static void unlink_node(kmip_server_t *s, struct kmip_reader_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        s->readers = n->next;
    if (n->next)
        n->next->prev = n->prev;
}

/* Thread exit: close this thread's reader. */
static void reader_dtor(void *p)
{
    struct kmip_reader_node *n = p;
    kmip_server_t *s = n->srv;
    pthread_mutex_lock(&s->readers_lock);
    unlink_node(s, n);
    pthread_mutex_unlock(&s->readers_lock);
    store_reader_free(n->reader);
    free(n);
}

int kmip_server_new(const kmip_config_t *cfg, kmip_server_t **out)
{
    if (!cfg || !out)
        return KMS_ERR_INVAL;
    kmip_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return KMS_ERR_NOMEM;
    s->cfg = *cfg;
    if (!s->cfg.max_response)
        s->cfg.max_response = DEFAULT_MAX_RESPONSE;
    if (!s->cfg.max_batch_items)
        s->cfg.max_batch_items = DEFAULT_MAX_BATCH;
    if (!s->cfg.arena_limit)
        s->cfg.arena_limit = DEFAULT_ARENA_LIMIT;
    if (!s->cfg.max_depth)
        s->cfg.max_depth = TTLV_DEFAULT_MAX_DEPTH;
    if (!s->cfg.max_items)
        s->cfg.max_items = TTLV_DEFAULT_MAX_ITEMS;
    snprintf(s->vendor, sizeof(s->vendor), "%s", cfg->vendor ? cfg->vendor : "kmsd");
    snprintf(s->version, sizeof(s->version), "%s", cfg->version ? cfg->version : "0");
    s->cfg.vendor = s->vendor;
    s->cfg.version = s->version;
    int rc = KMS_ERR_NOMEM;
    bool have_lock = false, have_key = false;
    if (pthread_mutex_init(&s->readers_lock, NULL) != 0)
        goto fail;
    have_lock = true;
    if (pthread_key_create(&s->reader_key, reader_dtor) != 0)
        goto fail;
    have_key = true;
    if ((rc = kmip_auth_init(s)) != 0)
        goto fail;
    if ((rc = kmip_streams_new(s)) != 0) {
        kmip_auth_dispose(s);
        goto fail;
    }
    if ((rc = kmip_async_new(s)) != 0) {
        kmip_streams_free(s);
        kmip_auth_dispose(s);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (have_key)
        pthread_key_delete(s->reader_key);
    if (have_lock)
        pthread_mutex_destroy(&s->readers_lock);
    kms_wipe(s, sizeof(*s)); /* the password cache key */
    free(s);
    return rc;
}

void kmip_server_free(kmip_server_t *s)
{
    if (!s)
        return;
    /* Queued asynchronous operations stop (a running one finishes); their
     * threads' readers close as the threads exit. */
    kmip_async_free(s);
    /* No request may run any more. Deleting the key first means no
     * destructor runs for readers freed here. */
    pthread_key_delete(s->reader_key);
    pthread_mutex_lock(&s->readers_lock);
    struct kmip_reader_node *n = s->readers;
    s->readers = NULL;
    pthread_mutex_unlock(&s->readers_lock);
    while (n) {
        struct kmip_reader_node *next = n->next;
        store_reader_free(n->reader);
        free(n);
        n = next;
    }
    pthread_mutex_destroy(&s->readers_lock);
    kmip_auth_dispose(s);
    kmip_streams_free(s);
    free(s);
}

store_reader_t *kmip_thread_reader(kmip_server_t *s)
{
    struct kmip_reader_node *n = pthread_getspecific(s->reader_key);
    if (n)
        return n->reader;
    if (!s->cfg.store)
        return NULL;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->srv = s;
    if (store_reader_new(s->cfg.store, &n->reader) != 0) {
        free(n);
        return NULL;
    }
    pthread_mutex_lock(&s->readers_lock);
    n->next = s->readers;
    if (s->readers)
        s->readers->prev = n;
    s->readers = n;
    pthread_mutex_unlock(&s->readers_lock);
    if (pthread_setspecific(s->reader_key, n) != 0) {
        pthread_mutex_lock(&s->readers_lock);
        unlink_node(s, n);
        pthread_mutex_unlock(&s->readers_lock);
        store_reader_free(n->reader);
        free(n);
        return NULL;
    }
    return n->reader;
}
