/*
 * tests/unit/test_kmip_inline.c: a request's path as an event loop walks
 * it: kmip_request_decode once, kmip_request_can_run_inline, execute with
 * KMIP_RUN_LOOP, the pending write and kmip_request_commit_done, and
 * store_commit_async() behind it.
 *
 * Against a real store and keyring (test_kmip_env.h): what may run on a
 * loop, what needs a worker (KMS_ERR_AGAIN before anything is stored, and
 * then runs from the same decoded value), that a deferred write is
 * invisible until it is committed and durable after; a commit that lost a
 * race runs the request again, and one that failed for any other reason
 * is answered as a failure, never as a success; a decoded request can be
 * executed on another thread than the one that decoded it; what the
 * server learns for sync acks (kmip_request_last_seq) and the answer of a
 * change peers did not confirm (kmip_request_unconfirmed).
 */
#include "test_kmip_env.h"

#include <pthread.h>


static kmip_request_t *request(kenv_t *e, ttlv_item_t *msg)
{
    return kenv_request(e, NULL, msg);
}

/* The first Batch Item of r's encoded answer. */
static ttlv_item_t *answer(kenv_t *e, kmip_request_t *r)
{
    return rs_item(kenv_answer(e, r), 0);
}

/* Executed on the loop: 0 (answered, maybe with a pending write) or
 * KMS_ERR_AGAIN (it needs a worker). */
static int run_on_loop(kmip_request_t *r)
{
    assert_true(kmip_request_can_run_inline(r));
    return kmip_request_execute(r, KMIP_RUN_LOOP);
}

/* What the loop does with a pending write: commit it (here blocking) and
 * report the result. */
static int commit(kenv_t *e, kmip_request_t *r)
{
    store_write_t *w = kmip_request_pending_write(r);
    assert_non_null(w);
    return kmip_request_commit_done(r, store_commit(e->store, w, NULL, 0));
}

static kmip_request_t *create_request(kenv_t *e, const char *name)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, name);
    return request(e, m);
}

static int64_t count_objects(kenv_t *e)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    int64_t n = store_count_objects(r);
    store_reader_free(r);
    return n;
}

static ttlv_item_t *get_msg(kenv_t *e, const char *id)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
    return m;
}

static bool fresh(kenv_t *e, const char *id)
{
    return k_attr(e, id, "Fresh")->v.b;
}

/* The first Get of a Fresh object writes (Fresh := false): that write is
 * pending, Fresh changes only when it commits, and the answer holds the
 * key; after that, Get is a pure read with nothing pending. */
static void test_first_get_write(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    assert_true(fresh(e, id));
    kmip_request_t *r = request(e, get_msg(e, id));
    assert_int_equal(run_on_loop(r), 0);
    assert_non_null(kmip_request_pending_write(r));
    assert_true(fresh(e, id)); /* not before the commit */
    assert_int_equal(commit(e, r), 0);
    assert_null(kmip_request_pending_write(r));
    assert_false(fresh(e, id));
    ttlv_item_t *bi = answer(e, r);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    kmip_request_free(r);
    /* Now a pure read: answered on the loop, nothing pending. */
    r = request(e, get_msg(e, id));
    assert_int_equal(run_on_loop(r), 0);
    assert_null(kmip_request_pending_write(r));
    bi = answer(e, r);
    assert_ok(bi);
    assert_string_equal(rs_uid(bi), id);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    kmip_request_free(r);
}

/* A Create runs on the loop with its write pending: the object is not
 * there until the write commits; then the answer names it. */
static void test_deferred_create(void **state)
{
    kenv_t *e = *state;
    int64_t before = count_objects(e);
    kmip_request_t *r = create_request(e, "deferred-1");
    assert_int_equal(run_on_loop(r), 0);
    assert_int_equal(count_objects(e), before);
    assert_int_equal(commit(e, r), 0);
    assert_int_equal(count_objects(e), before + 1);
    ttlv_item_t *bi = answer(e, r);
    assert_ok(bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    assert_non_null(id);
    kmip_summary_t sum;
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.operation, KMIP_OPERATION_CREATE);
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
    assert_string_equal(sum.object_id, id);
    kmip_request_free(r);
    bi = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    /* UUID version 7: the version nibble. */
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '7');
}

/* A loop Activate whose commit loses a race conflicts and stores nothing;
 * the same decoded request, executed again on a worker, answers the real
 * outcome. */
static void test_deferred_conflict(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ACTIVATE), id);
    kmip_request_t *r = request(e, m);
    assert_int_equal(run_on_loop(r), 0);
    /* Meanwhile a worker activates it first. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    assert_int_equal(commit(e, r), KMS_ERR_AGAIN);
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);
    /* Again, on a worker: Activate of an Active key is refused. */
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    assert_null(kmip_request_pending_write(r));
    assert_fail(answer(e, r), KMIP_RESULT_REASON_PERMISSION_DENIED);
    kmip_request_free(r);
}

/* A commit that fails for another reason than a race (a full disk, the
 * store closing) is answered as that failure: the item that wrote fails,
 * and under Stop the batch ends there, although the loop run answered
 * it with success. */
static void test_deferred_failure_answered(void **state)
{
    kenv_t *e = *state;
    int64_t before = count_objects(e);
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_item(e, m, KMIP_OPERATION_QUERY);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    rq_item(e, m, KMIP_OPERATION_DISCOVER_VERSIONS);
    kmip_request_t *r = request(e, m);
    assert_int_equal(run_on_loop(r), 0);
    assert_non_null(kmip_request_pending_write(r));
    assert_int_equal(kmip_request_commit_done(r, KMS_ERR_IO), 0);
    assert_null(kmip_request_pending_write(r));
    assert_int_equal(count_objects(e), before);
    ttlv_item_t *root = kenv_answer(e, r);
    assert_int_equal(ttlv_count(root, KMIP_TAG_BATCH_ITEM), 2);
    assert_ok(rs_item(root, 0));
    ttlv_item_t *bi = rs_item(root, 1);
    assert_fail(bi, KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_null(rs_payload(bi));
    const ttlv_item_t *msg = ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE);
    assert_non_null(msg);
    assert_non_null(strstr(ttlv_text(msg), "not stored"));
    assert_non_null(strstr(ttlv_text(msg), kms_strerror(KMS_ERR_IO)));
    kmip_summary_t sum;
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_OPERATION_FAILED);
    assert_int_equal(sum.result_reason, KMIP_RESULT_REASON_GENERAL_FAILURE);
    kmip_request_free(r);
}

static int64_t last_seq(kenv_t *e)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    int64_t n = store_last_seq(r);
    store_reader_free(r);
    return n;
}

/* What a server with replication.sync_acks learns after execute: the
 * change-log position of the request's last commit (0 for a read), on
 * the loop path and on a worker; and an answer turned into a failure when
 * the peers did not confirm it: only the items that wrote fail, with the
 * message given. */
static void test_last_seq_unconfirmed(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    /* A read: nothing to wait for. */
    kmip_request_t *r = request(e, get_msg(e, id));
    assert_int_equal(run_on_loop(r), 0);
    if (kmip_request_pending_write(r))
        assert_int_equal(commit(e, r), 0); /* the Fresh flag's write */
    kmip_request_free(r);
    r = request(e, get_msg(e, id));
    assert_int_equal(run_on_loop(r), 0);
    assert_null(kmip_request_pending_write(r));
    assert_int_equal(kmip_request_last_seq(r), 0);
    kmip_request_free(r);
    /* A Create on the loop: its commit's seq. */
    r = create_request(e, "acked-1");
    assert_int_equal(run_on_loop(r), 0);
    assert_int_equal(kmip_request_last_seq(r), 0); /* nothing committed yet */
    assert_int_equal(commit(e, r), 0);
    assert_int_equal(kmip_request_last_seq(r), last_seq(e));
    assert_true(kmip_request_last_seq(r) > 0);
    kmip_request_unconfirmed(r, "replication: not confirmed");
    ttlv_item_t *bi = answer(e, r);
    assert_fail(bi, KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_string_equal(ttlv_text(ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE)),
                        "replication: not confirmed");
    kmip_request_free(r);
    /* A batch on a worker: Get (read), Create, Create: the last commit's
     * seq; only the Creates fail when unconfirmed. */
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
    r = request(e, m);
    assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
    assert_int_equal(kmip_request_last_seq(r), last_seq(e));
    kmip_request_unconfirmed(r, "replication: not confirmed");
    ttlv_item_t *root = kenv_answer(e, r);
    assert_ok(rs_item(root, 0));
    assert_fail(rs_item(root, 1), KMIP_RESULT_REASON_GENERAL_FAILURE);
    assert_fail(rs_item(root, 2), KMIP_RESULT_REASON_GENERAL_FAILURE);
    kmip_summary_t sum;
    kmip_request_summary(r, &sum);
    assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_OPERATION_FAILED);
    kmip_request_free(r);
}

/* Two writes, or a read after the pending write, need a worker: the loop
 * run stores nothing, and the same decoded request then runs on a
 * worker. */
static void test_batch_needs_worker(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    for (int second_is_get = 0; second_is_get <= 1; second_is_get++) {
        int64_t before = count_objects(e);
        ttlv_item_t *m = rq_msg(e, 1, 1);
        rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
        if (second_is_get)
            rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
        else
            rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
        kmip_request_t *r = request(e, m);
        assert_int_equal(run_on_loop(r), KMS_ERR_AGAIN);
        assert_null(kmip_request_pending_write(r));
        assert_int_equal(count_objects(e), before);
        assert_int_equal(kmip_request_execute(r, KMIP_RUN_WORKER), 0);
        assert_null(kmip_request_pending_write(r));
        assert_int_equal(count_objects(e), before + (second_is_get ? 1 : 2));
        kmip_summary_t sum;
        (void)answer(e, r);
        kmip_request_summary(r, &sum);
        assert_int_equal(sum.batch_count, 2);
        assert_int_equal(sum.result_status, KMIP_RESULT_STATUS_SUCCESS);
        kmip_request_free(r);
    }
}

/* Locate, Create Key Pair and a password Credential never run on a loop;
 * a Query without a Credential does. */
static void test_never_inline(void **state)
{
    kenv_t *e = *state;
    ttlv_item_t *msgs[3];
    msgs[0] = rq_msg(e, 1, 1);
    rq_item(e, msgs[0], KMIP_OPERATION_LOCATE);
    msgs[1] = rq_msg(e, 1, 1);
    rq_item(e, msgs[1], KMIP_OPERATION_CREATE_KEY_PAIR);
    msgs[2] = rq_msg(e, 1, 1);
    ttlv_item_t *cred = ttlv_new_struct(e->a, rq_header(msgs[2]), KMIP_TAG_AUTHENTICATION);
    ttlv_item_t *c = ttlv_new_struct(e->a, cred, KMIP_TAG_CREDENTIAL);
    ttlv_new_enum(e->a, c, KMIP_TAG_CREDENTIAL_TYPE, KMIP_CREDENTIAL_TYPE_USERNAME_AND_PASSWORD);
    ttlv_item_t *cv = ttlv_new_struct(e->a, c, KMIP_TAG_CREDENTIAL_VALUE);
    ttlv_new_textz(e->a, cv, KMIP_TAG_USERNAME, "u");
    ttlv_new_textz(e->a, cv, KMIP_TAG_PASSWORD, "p");
    rq_item(e, msgs[2], KMIP_OPERATION_QUERY);
    for (size_t i = 0; i < 3; i++) {
        kmip_request_t *r = request(e, msgs[i]);
        assert_false(kmip_request_can_run_inline(r));
        kmip_request_free(r);
    }
    ttlv_item_t *q = rq_msg(e, 1, 1);
    rq_item(e, q, KMIP_OPERATION_QUERY);
    kmip_request_t *r = request(e, q);
    assert_int_equal(run_on_loop(r), 0);
    assert_ok(answer(e, r));
    kmip_request_free(r);
}

/* A request decoded on one thread is executed and encoded on another, and
 * freed back on the first: what the server does with every request a
 * worker runs. */
typedef struct handover {
    kmip_request_t *r;
    kms_buf_t out;
    int rc;
} handover_t;

static void *worker_main(void *arg)
{
    handover_t *h = arg;
    h->rc = kmip_request_execute(h->r, KMIP_RUN_WORKER);
    if (h->rc == 0)
        h->rc = kmip_request_encode(h->r, &h->out);
    return NULL;
}

static void test_handover_to_worker(void **state)
{
    kenv_t *e = *state;
    int64_t before = count_objects(e);
    handover_t h = {.r = create_request(e, "handed-over")};
    kms_buf_init(&h.out, 1u << 20);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker_main, &h), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(h.rc, 0);
    assert_int_equal(count_objects(e), before + 1);
    ttlv_item_t *root = NULL;
    kms_error_t err;
    assert_int_equal(ttlv_decode(h.out.data, h.out.len, NULL, e->a, &root, &err), 0);
    assert_ok(rs_item(root, 0));
    kms_buf_dispose(&h.out);
    kmip_request_free(h.r);
}

/* store_commit_async: the callback sees the result once it is durable. */
typedef struct cb_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, result;
} cb_state_t;

static void on_done(store_write_t *w, int result, void *arg)
{
    cb_state_t *s = arg;
    (void)w;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->result = result;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_calls(cb_state_t *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->calls < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void test_store_commit_async(void **state)
{
    kenv_t *e = *state;
    kmip_request_t *r = create_request(e, NULL);
    assert_int_equal(run_on_loop(r), 0);
    store_write_t *w = kmip_request_pending_write(r);
    assert_non_null(w);
    /* No answer before the write is settled. */
    kms_buf_t out;
    kms_buf_init(&out, 1u << 20);
    assert_int_equal(kmip_request_encode(r, &out), KMS_ERR_STATE);
    assert_int_equal(out.len, 0);
    kms_buf_dispose(&out);
    cb_state_t s = {.calls = 0, .result = -100};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    assert_int_equal(store_commit_async(e->store, w, on_done, &s), 0);
    wait_calls(&s, 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.result, 0);
    /* The same write again: the object exists now, so it conflicts. */
    assert_int_equal(store_commit_async(e->store, w, on_done, &s), 0);
    wait_calls(&s, 2);
    assert_int_equal(s.result, KMS_ERR_CONFLICT);
    assert_int_equal(kmip_request_commit_done(r, 0), 0);
    char *id = kms_arena_strdup(e->a, rs_uid(answer(e, r)));
    kmip_request_free(r);
    assert_ok(k_op_uid(e, KMIP_OPERATION_GET, id));
    /* Nothing to wait for: refused. */
    store_write_t *empty = store_write_new();
    assert_int_equal(store_commit_async(e->store, empty, on_done, &s), KMS_ERR_INVAL);
    store_write_free(empty);
    assert_int_equal(s.calls, 2);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

/* The clients generation moves with client and tenant writes only. */
static void test_clients_generation(void **state)
{
    kenv_t *e = *state;
    uint64_t g0 = store_clients_generation(e->store);
    (void)k_create_aes(e, NULL);
    assert_int_equal(store_clients_generation(e->store), g0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_tenant(w, "gen-t", false), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    uint64_t g1 = store_clients_generation(e->store);
    assert_true(g1 != g0);
    store_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "gen-c");
    snprintf(c.tenant, sizeof(c.tenant), "gen-t");
    snprintf(c.role, sizeof(c.role), "client");
    snprintf(c.kind, sizeof(c.kind), "cert");
    memset(c.cert_sha256, 'a', 64);
    w = store_write_new();
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    assert_true(store_clients_generation(e->store) != g1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_get_write, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_create, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_conflict, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_failure_answered, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_last_seq_unconfirmed, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_batch_needs_worker, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_never_inline, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_handover_to_worker, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_store_commit_async, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_clients_generation, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
