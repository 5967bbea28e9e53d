/*
 * tests/unit/test_kmip_inline.c: kmip_handle_inline(), the entry point an
 * event loop uses, and store_commit_async() behind it.
 *
 * Against a real store and keyring (test_kmip_env.h): what may run on a
 * loop, what is refused with KMS_ERR_AGAIN before anything is stored, and
 * that a deferred write is invisible until it is committed, durable after,
 * and that a failed deferred commit leaves nothing behind.
 */
#include "test_kmip_env.h"

#include <pthread.h>


/* Encode msg (Batch Count filled in) into b. */
static void encode(kenv_t *e, ttlv_item_t *msg, kms_buf_t *b)
{
    ttlv_item_t *h = rq_header(msg);
    ttlv_item_t *bc = ttlv_find(h, KMIP_TAG_BATCH_COUNT);
    if (!bc)
        bc = ttlv_new_int(e->a, h, KMIP_TAG_BATCH_COUNT, 0);
    bc->v.i32 = (int32_t)ttlv_count(msg, KMIP_TAG_BATCH_ITEM);
    kms_buf_init(b, 64u << 20);
    assert_int_equal(ttlv_encode(msg, b), 0);
}

static ttlv_item_t *decode(kenv_t *e, const kms_buf_t *out)
{
    ttlv_item_t *root = NULL;
    kms_error_t err;
    assert_int_equal(ttlv_decode(out->data, out->len, NULL, e->a, &root, &err), 0);
    return root;
}

/* One call of the bytes in b: VIA_INLINE = kmip_handle_inline, VIA_WORKER =
 * kmip_handle. Returns the call's result; *w the deferred write (or NULL),
 * *bi the first Batch Item of the answer (NULL when there is none). */
enum via { VIA_INLINE, VIA_WORKER };
static int run(kenv_t *e, const kms_buf_t *b, enum via via, store_write_t **w, ttlv_item_t **bi)
{
    kms_buf_t out;
    kmip_summary_t sum;
    store_write_t *dw = NULL;
    kms_buf_init(&out, 1u << 20);
    int rc = via == VIA_INLINE ? kmip_handle_inline(e->srv, NULL, b->data, b->len, &out, &sum, &dw)
                               : kmip_handle(e->srv, NULL, b->data, b->len, &out, &sum);
    if (w)
        *w = dw;
    else
        assert_null(dw);
    if (bi)
        *bi = out.len ? rs_item(decode(e, &out), 0) : NULL;
    if (rc == KMS_ERR_AGAIN)
        assert_int_equal(out.len, 0);
    kms_buf_dispose(&out);
    return rc;
}

/* A Create of an AES key (Name `name` unless NULL), run inline: answered,
 * with its write deferred. Returns that write; *bi the answer's item. */
static store_write_t *inline_create(kenv_t *e, const char *name, ttlv_item_t **bi)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, name);
    kms_buf_t b;
    encode(e, m, &b);
    store_write_t *w = NULL;
    assert_int_equal(run(e, &b, VIA_INLINE, &w, bi), 0);
    assert_non_null(w);
    assert_ok(*bi);
    kms_buf_dispose(&b);
    return w;
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
 * deferred, the answer is ready, Fresh changes only when the write
 * commits; after that, Get is a pure read with nothing deferred. */
static void test_first_get_write(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    assert_true(fresh(e, id));
    kms_buf_t b;
    encode(e, get_msg(e, id), &b);
    store_write_t *w = NULL;
    ttlv_item_t *bi = NULL;
    assert_int_equal(run(e, &b, VIA_INLINE, &w, &bi), 0);
    assert_non_null(w);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    assert_true(fresh(e, id)); /* not before the commit */
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    assert_false(fresh(e, id));
    /* Now a pure read: answered inline, nothing deferred. */
    assert_int_equal(run(e, &b, VIA_INLINE, NULL, &bi), 0);
    assert_ok(bi);
    assert_string_equal(rs_uid(bi), id);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    kms_buf_dispose(&b);
}

/* A Create runs inline with its write deferred: the answer is there, the
 * object is not, until the write commits. */
static void test_deferred_create(void **state)
{
    kenv_t *e = *state;
    int64_t before = count_objects(e);
    ttlv_item_t *bi = NULL;
    store_write_t *w = inline_create(e, "deferred-1", &bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    assert_non_null(id);
    assert_int_equal(count_objects(e), before);
    assert_fail(k_op_uid(e, KMIP_OPERATION_GET, id), KMIP_RESULT_REASON_ITEM_NOT_FOUND);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
    assert_int_equal(count_objects(e), before + 1);
    bi = k_op_uid(e, KMIP_OPERATION_GET, id);
    assert_ok(bi);
    assert_non_null(ttlv_find(rs_payload(bi), KMIP_TAG_SYMMETRIC_KEY));
    /* UUID version 7: the version nibble. */
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '7');
}

/* A deferred Activate whose commit loses a race conflicts and stores
 * nothing; the worker re-run (kmip_handle) then answers the real outcome. */
static void test_deferred_conflict(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    kms_buf_t b;
    ttlv_item_t *m = rq_msg(e, 1, 1);
    rq_uid(e, rq_item(e, m, KMIP_OPERATION_ACTIVATE), id);
    encode(e, m, &b);
    store_write_t *w = NULL;
    ttlv_item_t *bi = NULL;
    assert_int_equal(run(e, &b, VIA_INLINE, &w, &bi), 0);
    assert_non_null(w);
    assert_ok(bi);
    /* Meanwhile a worker activates it first. */
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    assert_int_equal(store_commit(e->store, w, NULL, 0), KMS_ERR_CONFLICT);
    store_write_free(w);
    assert_int_equal(k_state(e, id), KMIP_STATE_ACTIVE);
    /* The re-run: Activate of an Active key is refused. */
    assert_int_equal(run(e, &b, VIA_WORKER, NULL, &bi), 0);
    assert_int_equal(rs_status(bi), KMIP_RESULT_STATUS_OPERATION_FAILED);
    kms_buf_dispose(&b);
}

/* Two writes, or a read after the deferred write, need a worker. */
static void test_batch_needs_worker(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, NULL);
    int64_t before = count_objects(e);
    for (int second_is_get = 0; second_is_get <= 1; second_is_get++) {
        ttlv_item_t *m = rq_msg(e, 1, 1);
        rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 256, 12, NULL);
        if (second_is_get)
            rq_uid(e, rq_item(e, m, KMIP_OPERATION_GET), id);
        else
            rq_create(e, m, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, 128, 12, NULL);
        kms_buf_t b;
        encode(e, m, &b);
        assert_int_equal(run(e, &b, VIA_INLINE, NULL, NULL), KMS_ERR_AGAIN);
        assert_int_equal(count_objects(e), before);
        kms_buf_dispose(&b);
    }
}

/* Locate, Create Key Pair and a password Credential never run inline. */
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
        kms_buf_t b;
        encode(e, msgs[i], &b);
        assert_int_equal(run(e, &b, VIA_INLINE, NULL, NULL), KMS_ERR_AGAIN);
        kms_buf_dispose(&b);
    }
    /* Query without a Credential is inline. */
    ttlv_item_t *q = rq_msg(e, 1, 1);
    rq_item(e, q, KMIP_OPERATION_QUERY);
    kms_buf_t b;
    encode(e, q, &b);
    ttlv_item_t *bi = NULL;
    assert_int_equal(run(e, &b, VIA_INLINE, NULL, &bi), 0);
    assert_ok(bi);
    kms_buf_dispose(&b);
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
    ttlv_item_t *bi = NULL;
    store_write_t *w = inline_create(e, NULL, &bi);
    char *id = kms_arena_strdup(e->a, rs_uid(bi));
    cb_state_t s = {.calls = 0, .result = -100};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    assert_int_equal(store_commit_async(e->store, w, on_done, &s), 0);
    wait_calls(&s, 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.result, 0);
    assert_ok(k_op_uid(e, KMIP_OPERATION_GET, id));
    /* The same write again: the object exists now, so it conflicts. */
    assert_int_equal(store_commit_async(e->store, w, on_done, &s), 0);
    wait_calls(&s, 2);
    assert_int_equal(s.result, KMS_ERR_CONFLICT);
    store_write_free(w);
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
        cmocka_unit_test_setup_teardown(test_batch_needs_worker, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_never_inline, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_store_commit_async, kenv_plain_setup, kenv_plain_teardown),
        cmocka_unit_test_setup_teardown(test_clients_generation, kenv_plain_setup, kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
