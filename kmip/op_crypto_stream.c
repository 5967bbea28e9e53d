/*
 * kmip/op_crypto_stream.c: the table of open streams of multi-part
 * cryptographic operations (KMIP 1.3: Init Indicator, Correlation Value,
 * Final Indicator).
 *
 * A stream is a crypto_op_t (its OpenSSL context holds the key schedule)
 * kept between requests under a random 16-byte Correlation Value, owned by
 * the identity (name and tenant) that opened it: anyone else asking for it
 * gets Item Not Found, as for a value that never existed. A request takes
 * the stream out while it works on it, so two requests can never feed one
 * context at once, and puts it back unless it was the final part or it
 * failed. The table is bounded (kmip_config_t: in all, per tenant, per
 * identity: one tenant's identities cannot take every stream) and
 * a stream idle longer than the configured time is freed the next time
 * anyone touches the table. Nothing here is persistent: a restart ends
 * every stream.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define DEFAULT_MAX 1024
#define DEFAULT_PER_IDENTITY 16
#define DEFAULT_IDLE_S 60

typedef struct kmip_stream {
    uint8_t corr[KMIP_CORRELATION_LEN];
    char owner[128];
    char tenant[64];
    uint32_t operation;
    char key_id[64];
    crypto_op_t *op;        /* NULL while a request has it */
    uint64_t last_ns;       /* last use (monotonic) */
    struct kmip_stream *next;
} kmip_stream_t;

struct kmip_streams {
    pthread_mutex_t mu;
    kmip_stream_t *head;
    size_t n;
    size_t max, per_identity, per_tenant;
    uint64_t idle_ns;
};

int kmip_streams_new(kmip_server_t *s)
{
    struct kmip_streams *t = calloc(1, sizeof(*t));
    if (!t)
        return KMS_ERR_NOMEM;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return KMS_ERR_NOMEM;
    }
    t->max = s->cfg.crypto_streams_max ? s->cfg.crypto_streams_max : DEFAULT_MAX;
    t->per_identity = s->cfg.crypto_streams_per_identity ? s->cfg.crypto_streams_per_identity
                                                         : DEFAULT_PER_IDENTITY;
    t->per_tenant = s->cfg.crypto_streams_per_tenant ? s->cfg.crypto_streams_per_tenant
                                                     : (t->max + 3) / 4;
    t->idle_ns = (uint64_t)(s->cfg.crypto_stream_idle_s ? s->cfg.crypto_stream_idle_s
                                                        : DEFAULT_IDLE_S) * 1000000000ull;
    s->streams = t;
    if (crypto_pkey_cache_new(256, 60, &s->pkeys) != 0) {
        kmip_streams_free(s);
        return KMS_ERR_NOMEM;
    }
    return 0;
}

static void stream_free(kmip_stream_t *e)
{
    crypto_op_free(e->op);
    kms_wipe(e, sizeof(*e));
    free(e);
}

void kmip_streams_free(kmip_server_t *s)
{
    struct kmip_streams *t = s ? s->streams : NULL;
    if (s) {
        crypto_pkey_cache_free(s->pkeys);
        s->pkeys = NULL;
    }
    if (!t)
        return;
    for (kmip_stream_t *e = t->head, *next; e; e = next) {
        next = e->next;
        stream_free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
    s->streams = NULL;
}

/* Unlink and collect idle streams; called with the lock held. Streams a
 * request holds (op NULL) are not idle. */
static kmip_stream_t *sweep_locked(struct kmip_streams *t, uint64_t now)
{
    kmip_stream_t *dead = NULL;
    for (kmip_stream_t **pp = &t->head; *pp;) {
        kmip_stream_t *e = *pp;
        if (e->op && now - e->last_ns > t->idle_ns) {
            *pp = e->next;
            t->n--;
            e->next = dead;
            dead = e;
        } else {
            pp = &e->next;
        }
    }
    return dead;
}

static void free_list(kmip_stream_t *e)
{
    while (e) {
        kmip_stream_t *next = e->next;
        stream_free(e);
        e = next;
    }
}

static bool owned_by(const kmip_stream_t *e, const kmip_ctx_t *ctx)
{
    return strcmp(e->owner, ctx->ident->name) == 0 && strcmp(e->tenant, ctx->ident->tenant) == 0;
}

static kmip_stream_t *find_locked(struct kmip_streams *t, const uint8_t *corr, size_t len)
{
    if (len != KMIP_CORRELATION_LEN)
        return NULL;
    for (kmip_stream_t *e = t->head; e; e = e->next)
        if (CRYPTO_memcmp(e->corr, corr, KMIP_CORRELATION_LEN) == 0)
            return e;
    return NULL;
}

int kmip_stream_put(kmip_ctx_t *ctx, uint32_t operation, const char *key_id, crypto_op_t *op,
                    uint8_t corr_out[KMIP_CORRELATION_LEN])
{
    struct kmip_streams *t = ctx->srv->streams;
    kmip_stream_t *e = calloc(1, sizeof(*e));
    if (!e) {
        crypto_op_free(op);
        return KMS_ERR_NOMEM;
    }
    if (RAND_bytes(e->corr, sizeof(e->corr)) != 1) {
        crypto_op_free(op);
        free(e);
        return kmip_fail(ctx, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE, "the DRBG failed");
    }
    kms_strlcpy(e->owner, ctx->ident->name, sizeof(e->owner));
    kms_strlcpy(e->tenant, ctx->ident->tenant, sizeof(e->tenant));
    kms_strlcpy(e->key_id, key_id ? key_id : "", sizeof(e->key_id));
    e->operation = operation;
    e->op = op;
    uint64_t now = kms_mono_ns();
    e->last_ns = now;
    size_t mine = 0, tenant = 0;
    pthread_mutex_lock(&t->mu);
    kmip_stream_t *dead = sweep_locked(t, now);
    for (kmip_stream_t *x = t->head; x; x = x->next) {
        mine += owned_by(x, ctx);
        tenant += strcmp(x->tenant, ctx->ident->tenant) == 0;
    }
    bool full = t->n >= t->max || mine >= t->per_identity || tenant >= t->per_tenant;
    if (!full) {
        e->next = t->head;
        t->head = e;
        t->n++;
    }
    pthread_mutex_unlock(&t->mu);
    free_list(dead);
    if (full) {
        stream_free(e);
        return kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                         "too many open streams (at most %zu per client, %zu per tenant, %zu "
                         "in all): finish or abandon one first",
                         t->per_identity, t->per_tenant, t->max);
    }
    memcpy(corr_out, e->corr, KMIP_CORRELATION_LEN);
    return 0;
}

/* Find the caller's stream; with `take`, move its op out. */
static int lookup(kmip_ctx_t *ctx, const uint8_t *corr, size_t len, uint32_t operation,
                  char key_id_out[64], crypto_op_t **op_out)
{
    struct kmip_streams *t = ctx->srv->streams;
    uint64_t now = kms_mono_ns();
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    kmip_stream_t *dead = sweep_locked(t, now);
    kmip_stream_t *e = find_locked(t, corr, len);
    if (!e || !owned_by(e, ctx)) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                       "no open stream with this Correlation Value (finished, expired or "
                       "never opened)");
    } else if (!e->op) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                       "another request is working on this stream");
    } else if (e->operation != operation) {
        rc = kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                       "the Correlation Value belongs to a stream of %s",
                       ttlv_enum_name(KMIP_TAG_OPERATION, e->operation));
    } else {
        if (key_id_out)
            kms_strlcpy(key_id_out, e->key_id, 64);
        if (op_out) {
            *op_out = e->op;
            e->op = NULL;
        }
        e->last_ns = now;
    }
    pthread_mutex_unlock(&t->mu);
    free_list(dead);
    return rc ? KMS_ERR_NOTFOUND : 0;
}

int kmip_stream_peek(kmip_ctx_t *ctx, const uint8_t *corr, size_t corr_len, uint32_t operation,
                     char key_id_out[64])
{
    return lookup(ctx, corr, corr_len, operation, key_id_out, NULL);
}

int kmip_stream_take(kmip_ctx_t *ctx, const uint8_t *corr, size_t corr_len, uint32_t operation,
                     crypto_op_t **op_out)
{
    *op_out = NULL;
    int rc = lookup(ctx, corr, corr_len, operation, NULL, op_out);
    if (rc)
        return rc;
    /* The entry stays as a placeholder while the request works on it; a
     * failed or final part removes it with kmip_stream_return(NULL op). */
    return 0;
}

int kmip_stream_return(kmip_ctx_t *ctx, const uint8_t corr[KMIP_CORRELATION_LEN],
                       uint32_t operation, const char *key_id, crypto_op_t *op)
{
    (void)key_id;
    struct kmip_streams *t = ctx->srv->streams;
    kmip_stream_t *gone = NULL;
    pthread_mutex_lock(&t->mu);
    for (kmip_stream_t **pp = &t->head; *pp; pp = &(*pp)->next) {
        kmip_stream_t *e = *pp;
        if (e->op || e->operation != operation ||
            CRYPTO_memcmp(e->corr, corr, KMIP_CORRELATION_LEN) != 0)
            continue;
        if (op) {
            e->op = op;
            e->last_ns = kms_mono_ns();
            op = NULL;
        } else {
            *pp = e->next;
            t->n--;
            gone = e;
        }
        break;
    }
    pthread_mutex_unlock(&t->mu);
    if (gone) {
        gone->next = NULL;
        free_list(gone);
    }
    crypto_op_free(op); /* the entry vanished meanwhile (server shutting down) */
    return 0;
}

size_t kmip_streams_count(kmip_server_t *s)
{
    struct kmip_streams *t = s->streams;
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}
