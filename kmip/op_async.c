/*
 * kmip/op_async.c: asynchronous operations (KMIP 1.4 sections 4.27 Poll,
 * 4.26 Cancel, 6.7 Asynchronous Indicator, 6.8 Asynchronous Correlation
 * Value).
 *
 * A Batch Item of a request with Asynchronous Indicator true whose
 * operation may take long (dispatch flag KMIP_OP_ASYNC: Create, Create Key
 * Pair, Re-key, Re-key Key Pair, Locate, Derive Key, Certify, Re-certify,
 * Create / Join Split Key, and Archive / Recover, which the KMIP 1.1 test
 * case 10.1 runs this way) is not run in the request: a record (store
 * table async_ops: who asked, which operation, pending) is committed under
 * a random 16-byte Asynchronous Correlation Value, the item is answered
 * Operation Pending with that value, and the operation is queued to a
 * small pool of threads owned by the server. When it has run, its answer
 * (status, reason, message, payload) replaces the record. Poll answers
 * Operation Pending until then, and the operation's own answer after (in
 * the polled operation's name, as the KMIP 1.1 test cases show it);
 * Cancel cancels a queued operation (Canceled), and otherwise says
 * Unable to Cancel (running), Completed or Failed.
 *
 * Both work from any connection of the same identity (name and tenant):
 * the record, not the connection, holds the operation. When a queued
 * operation starts, its client is looked up again (kmip_identity_recheck):
 * one removed or disabled meanwhile gets the answer its next request
 * would get (Authentication Not Successful), and one whose role was lowered runs
 * with the lower role. Another identity's
 * correlation value is Item Not Found, as an unknown one. Records are
 * node-local, live async_lifetime_s (default one hour) after they are made
 * and at most async_per_identity (16) per identity; past that, or with the
 * queue full, the operation runs synchronously as if the indicator were
 * false (which the specification allows). A record still pending from an
 * earlier server instance (each instance has a random epoch) was
 * interrupted by a restart: Poll answers Operation Failed saying so, and
 * Cancel answers Failed. Only operations whose answers hold no key
 * material are run this way, so no secret is ever written in a record.
 *
 * It does not reorder a batch: items after an asynchronous one run at once
 * and cannot use its ID Placeholder.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "kmip/kmip_int.h"

#define ASYNC_THREADS 2
#define ASYNC_QUEUE_MAX 256
#define ASYNC_DEFAULT_LIFETIME_S 3600
#define ASYNC_DEFAULT_PER_IDENTITY 16

/* One queued operation: everything it needs, copied out of the request. */
typedef struct async_job {
    uint8_t corr[KMIP_CORRELATION_LEN];
    kmip_identity_t ident;
    int ver_major, ver_minor;
    uint32_t operation;
    uint8_t *payload;            /* TTLV of the Request Payload (heap) */
    size_t payload_len;
    int64_t created_us, expires_us;
    bool canceled;               /* Cancel took it off before it ran */
    struct async_job *next;
} async_job_t;

struct async_worker {
    kmip_server_t *srv;
    size_t slot;
};

struct kmip_async {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    async_job_t *head, *tail;    /* queued, oldest first */
    size_t queued;
    const async_job_t *running[ASYNC_THREADS];
    pthread_t threads[ASYNC_THREADS];
    struct async_worker args[ASYNC_THREADS];
    size_t n_threads;
    bool stopping;
    uint64_t epoch;              /* this server instance */
};

static uint32_t lifetime_s(const kmip_server_t *s)
{
    return s->cfg.async_lifetime_s ? s->cfg.async_lifetime_s : ASYNC_DEFAULT_LIFETIME_S;
}

static void job_free(async_job_t *j)
{
    if (!j)
        return;
    free(j->payload);
    free(j);
}

/* ------------------------------------------------------------- records */
static int record_write(kmip_server_t *s, const async_job_t *j, int state, const uint8_t *result,
                        size_t result_len)
{
    store_write_t *w = store_write_new();
    store_async_t a = {
        .corr = j->corr,
        .corr_len = sizeof j->corr,
        .identity = j->ident.name,
        .tenant = j->ident.tenant,
        .operation = j->operation,
        .state = state,
        .epoch = s->async->epoch,
        .created_us = j->created_us,
        .expires_us = j->expires_us,
        .result = result,
        .result_len = result_len,
    };
    int rc = w ? store_write_async(w, &a) : KMS_ERR_NOMEM;
    /* Expired records go with every write: the table stays bounded. */
    if (rc == 0)
        rc = store_write_async_delete(w, NULL, 0, kms_now_us());
    if (rc == 0)
        rc = store_commit(s->cfg.store, w, NULL, 0);
    store_write_free(w);
    return rc;
}

/* The answer of a finished item as stored: a Batch Item structure with
 * Result Status, Result Reason / Message and Response Payload. */
static int encode_answer(kms_arena_t *a, const kmip_item_t *it, kms_buf_t *out)
{
    ttlv_item_t *bi = ttlv_new_struct(a, NULL, KMIP_TAG_BATCH_ITEM);
    if (!bi || !ttlv_new_enum(a, bi, KMIP_TAG_RESULT_STATUS, it->status))
        return KMS_ERR_NOMEM;
    if (it->status == KMIP_RESULT_STATUS_OPERATION_FAILED &&
        (!ttlv_new_enum(a, bi, KMIP_TAG_RESULT_REASON, it->reason) ||
         (it->msg && *it->msg && !ttlv_new_textz(a, bi, KMIP_TAG_RESULT_MESSAGE, it->msg))))
        return KMS_ERR_NOMEM;
    if (it->status == KMIP_RESULT_STATUS_SUCCESS && it->resp_payload)
        ttlv_append(bi, it->resp_payload);
    return ttlv_encode(bi, out);
}

/* ------------------------------------------------------------- running */
static void run_job(kmip_server_t *s, async_job_t *j)
{
    kms_arena_t *a = kms_arena_new(s->cfg.arena_limit);
    kmip_item_t it;
    kmip_ctx_t ctx;
    kms_buf_t out;
    ttlv_item_t *payload = NULL;
    kms_error_t e = {0};
    int rc;

    memset(&it, 0, sizeof it);
    memset(&ctx, 0, sizeof ctx);
    kms_buf_init(&out, s->cfg.max_response);
    it.operation = j->operation;
    it.op = kmip_op_lookup(j->operation);
    if (!a || ttlv_decode(j->payload, j->payload_len, NULL, a, &payload, &e) != 0 || !it.op) {
        kmip_item_fail(&it, KMIP_RESULT_REASON_GENERAL_FAILURE,
                       "the queued operation could not be read back");
    } else if ((rc = kmip_identity_recheck(s, &j->ident)) != 0) {
        /* The client was removed, disabled or moved to another tenant
         * while the operation waited: answered as its next request is. */
        kms_log(KMS_LOG_INFO, "kmip", "asynchronous operation 0x%x of %s/%s not run: %s",
                j->operation, j->ident.tenant, j->ident.name,
                rc == KMS_ERR_PERM ? "the client no longer exists or is disabled"
                                   : kms_strerror(rc));
        if (rc == KMS_ERR_PERM)
            kmip_item_fail(&it, KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL, KMIP_DENIED_MSG);
        else
            kmip_item_fail(&it, KMIP_RESULT_REASON_GENERAL_FAILURE, KMIP_ID_UNAVAIL_MSG);
    } else {
        /* j->ident holds the client's current role (a demoted admin runs
         * as a client of its tenant) */
        it.payload = payload;
        ctx.srv = s;
        ctx.arena = a;
        ctx.ident = &j->ident;
        ctx.tenant_filter = j->ident.role == KMIP_ROLE_ADMIN ? NULL : j->ident.tenant;
        ctx.ver_major = j->ver_major;
        ctx.ver_minor = j->ver_minor;
        ctx.now = kmip_now(s);
        ctx.max_response = s->cfg.max_response;
        /* The operator's work budget applies as to any request; no
         * connection can cancel it (it outlives the one that asked). */
        ctx.deadline_ns = s->cfg.request_time_ms
                              ? kms_mono_ns() + (uint64_t)s->cfg.request_time_ms * 1000000ULL
                              : 0;
        ctx.reader = kmip_thread_reader(s);
        if (!ctx.reader)
            kmip_item_fail(&it, KMIP_RESULT_REASON_GENERAL_FAILURE, "store unavailable");
        else
            kmip_item_run(&ctx, &it);
        kmip_ctx_release(&ctx);
    }
    rc = a ? encode_answer(a, &it, &out) : KMS_ERR_NOMEM;
    if (rc == 0)
        rc = record_write(s, j, STORE_ASYNC_DONE, out.data, out.len);
    if (rc != 0)
        kms_log(KMS_LOG_ERROR, "kmip", "asynchronous operation 0x%x of %s: its answer was not "
                "stored: %s", j->operation, j->ident.name, kms_strerror(rc));
    kms_buf_dispose_wipe(&out);
    kms_arena_free(a);
}

static void *worker(void *arg)
{
    const struct async_worker *wa = arg;
    (void)pthread_setname_np(pthread_self(), "kmsd-async");
    kmip_server_t *s = wa->srv;
    struct kmip_async *q = s->async;
    size_t slot = wa->slot;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stopping)
            break;
        async_job_t *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        if (j->canceled) {
            job_free(j);
            continue;
        }
        q->running[slot] = j;
        pthread_mutex_unlock(&q->mu);
        run_job(s, j);
        pthread_mutex_lock(&q->mu);
        q->running[slot] = NULL;
        job_free(j);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int kmip_async_new(kmip_server_t *s)
{
    struct kmip_async *q = calloc(1, sizeof *q);
    if (!q)
        return KMS_ERR_NOMEM;
    if (RAND_bytes((unsigned char *)&q->epoch, sizeof q->epoch) != 1) {
        free(q);
        return KMS_ERR_CRYPTO;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    s->async = q;
    return 0;
}

void kmip_async_free(kmip_server_t *s)
{
    struct kmip_async *q = s ? s->async : NULL;
    if (!q)
        return;
    /* Running operations finish and record their answers; queued ones
     * stay pending in the store and answer "interrupted" after a restart. */
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    while (q->head) {
        async_job_t *n = q->head->next;
        job_free(q->head);
        q->head = n;
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
    s->async = NULL;
}

/* Queue j (ownership passes in). False when the queue is full. */
static bool enqueue(kmip_server_t *s, async_job_t *j)
{
    struct kmip_async *q = s->async;
    bool ok = false;

    pthread_mutex_lock(&q->mu);
    if (!q->stopping && q->queued < ASYNC_QUEUE_MAX) {
        /* Threads start on first use: a server that never sees an
         * asynchronous request has none. */
        while (q->n_threads < ASYNC_THREADS) {
            struct async_worker *wa = &q->args[q->n_threads];
            wa->srv = s;
            wa->slot = q->n_threads;
            if (pthread_create(&q->threads[q->n_threads], NULL, worker, wa) != 0)
                break;
            q->n_threads++;
        }
        if (q->n_threads > 0) {
            if (q->tail)
                q->tail->next = j;
            else
                q->head = j;
            q->tail = j;
            q->queued++;
            pthread_cond_signal(&q->cv);
            ok = true;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

bool kmip_async_start(kmip_ctx_t *ctx, kmip_item_t *it)
{
    kmip_server_t *s = ctx->srv;
    uint32_t per = s->cfg.async_per_identity ? s->cfg.async_per_identity
                                             : ASYNC_DEFAULT_PER_IDENTITY;
    int64_t now_us = kms_now_us();
    async_job_t *j = NULL;
    kms_buf_t b;
    size_t n = 0;
    int rc;

    if (ctx->inline_only) {
        ctx->need_worker = true; /* a commit to wait for: not on an event loop */
        return true;
    }
    if (store_async_count(ctx->reader, ctx->ident->name, ctx->ident->tenant, now_us, &n) != 0 ||
        n >= per)
        return false; /* at the limit: answered synchronously */
    if (!(j = calloc(1, sizeof *j)))
        return false;
    kms_buf_init(&b, s->cfg.max_response);
    if (ttlv_encode(it->payload, &b) != 0 || RAND_bytes(j->corr, sizeof j->corr) != 1) {
        kms_buf_dispose(&b);
        free(j);
        return false;
    }
    j->payload = kms_buf_take(&b, &j->payload_len);
    j->ident = *ctx->ident;
    j->ver_major = ctx->ver_major;
    j->ver_minor = ctx->ver_minor;
    j->operation = it->operation;
    j->created_us = now_us;
    j->expires_us = now_us + (int64_t)lifetime_s(s) * 1000000;
    if ((rc = record_write(s, j, STORE_ASYNC_PENDING, NULL, 0)) != 0) {
        kms_log(KMS_LOG_WARN, "kmip", "asynchronous operation not recorded (%s): run now",
                kms_strerror(rc));
        job_free(j);
        return false;
    }
    uint8_t *corr = kms_arena_memdup(ctx->arena, j->corr, sizeof j->corr);
    if (!corr || !enqueue(s, j)) {
        /* Not queued: the record is dropped and the item runs now. */
        store_write_t *w = store_write_new();
        if (w && store_write_async_delete(w, j->corr, sizeof j->corr, 0) == 0)
            (void)store_commit(s->cfg.store, w, NULL, 0);
        store_write_free(w);
        job_free(j);
        return false;
    }
    it->status = KMIP_RESULT_STATUS_OPERATION_PENDING;
    it->async_corr = corr;
    it->async_corr_len = KMIP_CORRELATION_LEN;
    it->resp_payload = NULL;
    return true;
}

/* ------------------------------------------------------- Poll, Cancel */
/* The caller's record of the payload's Asynchronous Correlation Value:
 * Item Not Found when there is none, it expired, or it is another
 * identity's. */
static int load_record(kmip_ctx_t *ctx, store_async_t *rec)
{
    const ttlv_item_t *c = ttlv_find(ctx->payload, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE);
    int rc;

    if (!c || c->type != TTLV_BYTE_STRING || c->v.bytes.len == 0 ||
        c->v.bytes.len > STORE_ASYNC_CORR_MAX)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "an Asynchronous Correlation Value is required");
    rc = store_async_get(ctx->reader, ctx->arena, c->v.bytes.ptr, c->v.bytes.len, rec);
    if (rc == KMS_ERR_NOTFOUND || (rc == 0 && (strcmp(rec->identity, ctx->ident->name) != 0 ||
                                               strcmp(rec->tenant, ctx->ident->tenant) != 0 ||
                                               rec->expires_us < kms_now_us())))
        return kmip_fail(ctx, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                         "no asynchronous operation with this correlation value");
    return rc;
}

static bool interrupted(const kmip_ctx_t *ctx, const store_async_t *rec)
{
    return rec->state == STORE_ASYNC_PENDING && rec->epoch != ctx->srv->async->epoch;
}

int kmip_op_poll(kmip_ctx_t *ctx)
{
    store_async_t rec;
    ttlv_item_t *bi = NULL;
    const ttlv_item_t *st, *rs, *msg, *pl;
    kms_error_t e = {0};
    int rc;

    if ((rc = load_record(ctx, &rec)))
        return rc;
    /* As the KMIP 1.1 test cases answer: in the polled operation's name. */
    ctx->answer_op = rec.operation;
    if (interrupted(ctx, &rec))
        return kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE,
                         "the operation was interrupted by a restart of the server before it "
                         "finished; its changes, if any, are visible (Locate) and it may be "
                         "sent again");
    if (rec.state == STORE_ASYNC_CANCELED)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OPERATION_CANCELED_BY_REQUESTER,
                         "the operation was canceled");
    if (rec.state == STORE_ASYNC_PENDING) {
        ctx->async_corr = rec.corr;
        ctx->async_corr_len = rec.corr_len;
        return 0;
    }
    if (ttlv_decode(rec.result, rec.result_len, NULL, ctx->arena, &bi, &e) != 0 ||
        !(st = ttlv_find(bi, KMIP_TAG_RESULT_STATUS)))
        return kmip_fail(ctx, KMIP_RESULT_REASON_GENERAL_FAILURE,
                         "the operation's stored answer does not decode");
    if (ttlv_u32(st) != KMIP_RESULT_STATUS_SUCCESS) {
        rs = ttlv_find(bi, KMIP_TAG_RESULT_REASON);
        msg = ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE);
        return kmip_fail(ctx, rs ? ttlv_u32(rs) : KMIP_RESULT_REASON_GENERAL_FAILURE, "%s",
                         msg && msg->type == TTLV_TEXT_STRING ? ttlv_text(msg) : "failed");
    }
    /* The operation's own Response Payload answers the Poll. */
    pl = ttlv_find(bi, KMIP_TAG_RESPONSE_PAYLOAD);
    while (pl && pl->first) {
        ttlv_item_t *c = pl->first;
        ttlv_remove(c);
        ttlv_append(ctx->resp_payload, c);
    }
    return 0;
}

int kmip_op_cancel(kmip_ctx_t *ctx)
{
    struct kmip_async *q = ctx->srv->async;
    store_async_t rec;
    uint32_t result;
    int rc;

    if ((rc = load_record(ctx, &rec)))
        return rc;
    if (interrupted(ctx, &rec)) {
        result = KMIP_CANCELLATION_RESULT_FAILED;
    } else if (rec.state == STORE_ASYNC_CANCELED) {
        result = KMIP_CANCELLATION_RESULT_CANCELED;
    } else if (rec.state == STORE_ASYNC_DONE) {
        kms_error_t e = {0};
        ttlv_item_t *bi = NULL;
        const ttlv_item_t *st = NULL;
        if (ttlv_decode(rec.result, rec.result_len, NULL, ctx->arena, &bi, &e) == 0)
            st = ttlv_find(bi, KMIP_TAG_RESULT_STATUS);
        result = st && ttlv_u32(st) == KMIP_RESULT_STATUS_SUCCESS
                     ? KMIP_CANCELLATION_RESULT_COMPLETED : KMIP_CANCELLATION_RESULT_FAILED;
    } else {
        /* Pending here: canceled if still queued, else it is running. */
        async_job_t copy;
        bool found = false;
        pthread_mutex_lock(&q->mu);
        for (async_job_t *j = q->head; j && !found; j = j->next) {
            if (j->canceled || rec.corr_len != sizeof j->corr ||
                memcmp(j->corr, rec.corr, sizeof j->corr) != 0)
                continue;
            j->canceled = true; /* the worker drops it instead of running it */
            copy = *j;
            found = true;
        }
        pthread_mutex_unlock(&q->mu);
        result = KMIP_CANCELLATION_RESULT_UNABLE_TO_CANCEL;
        if (found) {
            copy.payload = NULL;
            copy.next = NULL;
            if ((rc = record_write(ctx->srv, &copy, STORE_ASYNC_CANCELED, NULL, 0)) != 0)
                return rc;
            result = KMIP_CANCELLATION_RESULT_CANCELED;
        }
    }
    if (!ttlv_new_bytes(ctx->arena, ctx->resp_payload, KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE,
                        rec.corr, rec.corr_len) ||
        !ttlv_new_enum(ctx->arena, ctx->resp_payload, KMIP_TAG_CANCELLATION_RESULT, result))
        return KMS_ERR_NOMEM;
    return 0;
}
