/*
 * tests/unit/test_kmip_robust.c: misuse never crashes kmip_handle().
 *
 * Every request of the KMIP 1.1 test-case document is mutated many times
 * (deterministic seed) in two ways and sent through kmip_handle() on a
 * real store and keyring (every other time with its Unique Identifiers
 * pointed at real objects, Pre-Active, Active and Compromised, so the
 * mutations reach the deeper checks):
 * - structurally, on the decoded tree: an item changes type (a structure
 *   becomes a leaf and back), is removed, duplicated, gets a random
 *   enumeration/integer, an empty or overlong text, a far date; the tree
 *   is re-encoded, so the message is valid TTLV and must be answered with
 *   a Response Message whose Batch Count matches its Batch Items;
 * - on the bytes: flipped bytes and truncations, which must be answered
 *   or refused with KMS_ERR_PROTO, never crash.
 * Run it under ASan/UBSan (make SANITIZE=address,undefined) for its full
 * value.
 */
#include "tests/unit/test_kmip_env.h"

#define VECTORS "tests/vectors/kmip-1.1-testcases.txt"
#define TREE_MUTATIONS 24
#define BYTE_MUTATIONS 6

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static size_t count_items(const ttlv_item_t *it)
{
    size_t n = 1;
    for (const ttlv_item_t *c = it->first; c; c = c->next)
        n += count_items(c);
    return n;
}

static ttlv_item_t *nth_item(ttlv_item_t *it, size_t *k)
{
    if ((*k)-- == 0)
        return it;
    for (ttlv_item_t *c = it->first; c; c = c->next) {
        ttlv_item_t *r = nth_item(c, k);
        if (r)
            return r;
    }
    return NULL;
}

static void mutate(kms_arena_t *a, ttlv_item_t *root)
{
    size_t n = count_items(root);
    size_t k = 1 + rnd() % (n > 1 ? n - 1 : 1); /* never the root itself */
    ttlv_item_t *it = nth_item(root, &k);
    if (!it || !it->parent)
        return;
    static const char long_text[] =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    switch (rnd() % 8) {
    case 0: /* remove */
        ttlv_remove(it);
        break;
    case 1: { /* duplicate */
        ttlv_item_t *c = ttlv_clone(a, it);
        if (c)
            ttlv_append(it->parent, c);
        break;
    }
    case 2: /* becomes an Integer leaf */
        it->type = TTLV_INTEGER;
        it->first = it->last = NULL;
        it->v.i32 = (int32_t)rnd();
        break;
    case 3: /* becomes an empty structure */
        it->type = TTLV_STRUCTURE;
        it->first = it->last = NULL;
        break;
    case 4: /* random enumeration / integer value */
        if (it->type == TTLV_ENUMERATION || it->type == TTLV_INTEGER || it->type == TTLV_INTERVAL)
            it->v.i32 = (int32_t)(rnd() % 3 == 0 ? rnd() : rnd() % 64);
        else
            ttlv_remove(it);
        break;
    case 5: /* text: empty or long */
        it->type = TTLV_TEXT_STRING;
        it->first = it->last = NULL;
        if (rnd() & 1) {
            it->v.bytes.ptr = (const uint8_t *)"";
            it->v.bytes.len = 0;
        } else {
            it->v.bytes.ptr = (const uint8_t *)long_text;
            it->v.bytes.len = sizeof(long_text) - 1;
        }
        break;
    case 6: /* far date */
        it->type = TTLV_DATE_TIME;
        it->first = it->last = NULL;
        it->v.i64 = (rnd() & 1) ? INT64_MAX / 2 : -1;
        break;
    default: /* byte string */
        it->type = TTLV_BYTE_STRING;
        it->first = it->last = NULL;
        it->v.bytes.ptr = (const uint8_t *)"\x00\xff";
        it->v.bytes.len = 2;
        break;
    }
}

/* Point every Unique Identifier at one of our real objects so that the
 * mutations reach the operations' deeper checks, not just Item Not Found. */
static void use_real_ids(kms_arena_t *a, ttlv_item_t *it, char ids[][64], size_t n)
{
    if (it->type == TTLV_TEXT_STRING &&
        (it->tag == KMIP_TAG_UNIQUE_IDENTIFIER || it->tag == KMIP_TAG_LINKED_OBJECT_IDENTIFIER)) {
        char *c = kms_arena_strdup(a, ids[rnd() % n]);
        it->v.bytes.ptr = (const uint8_t *)c;
        it->v.bytes.len = strlen(c);
    }
    for (ttlv_item_t *c = it->first; c; c = c->next)
        use_real_ids(a, c, ids, n);
}

static size_t successes;

static void check_answer(kenv_t *e, const ttlv_item_t *resp)
{
    assert_int_equal(e->last_rc, 0);
    assert_non_null(resp);
    assert_int_equal(resp->tag, KMIP_TAG_RESPONSE_MESSAGE);
    const ttlv_item_t *h = ttlv_find(resp, KMIP_TAG_RESPONSE_HEADER);
    assert_non_null(h);
    const ttlv_item_t *bc = ttlv_find(h, KMIP_TAG_BATCH_COUNT);
    assert_non_null(bc);
    assert_int_equal((size_t)bc->v.i32, ttlv_count(resp, KMIP_TAG_BATCH_ITEM));
    for (const ttlv_item_t *bi = ttlv_find(resp, KMIP_TAG_BATCH_ITEM); bi;
         bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM))
    {
        const ttlv_item_t *st = ttlv_find(bi, KMIP_TAG_RESULT_STATUS);
        assert_non_null(st);
        successes += ttlv_u32(st) == KMIP_RESULT_STATUS_SUCCESS;
    }
}

static void test_mutated_requests(void **state)
{
    (void)state;
    kenv_t *e = calloc(1, sizeof(*e));
    assert_int_equal(kenv_setup(e, KMIP_ACCESS_OPEN), 0);
    /* A few real objects in different states. */
    char ids[3][64];
    for (int i = 0; i < 3; i++)
        snprintf(ids[i], sizeof(ids[i]), "%s", k_create_aes(e, "robust"));
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, ids[1]));
    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, ids[2]));
    assert_ok(k_revoke(e, ids[2], KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE));
    kms_arena_reset(e->a);
    FILE *f = fopen(VECTORS, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t lcap = 0;
    size_t sent = 0, refused = 0;
    while (getline(&line, &lcap, f) > 0) {
        if (line[0] == '#' || !strstr(line, "\trequest\t"))
            continue;
        char *hex = strrchr(line, '\t') + 1;
        hex[strcspn(hex, "\r\n")] = 0;
        uint8_t *req = NULL;
        size_t len = 0;
        assert_int_equal(kms_hex_decode(hex, strlen(hex), &req, &len), 0);
        for (int m = 0; m < TREE_MUTATIONS; m++) {
            ttlv_item_t *root = NULL;
            kms_error_t err;
            assert_int_equal(ttlv_decode(req, len, NULL, e->a, &root, &err), 0);
            if (m & 1)
                use_real_ids(e->a, root, ids, 3);
            int muts = 1 + (int)(rnd() % 3);
            for (int j = 0; j < muts; j++)
                mutate(e->a, root);
            kms_buf_t b;
            kms_buf_init(&b, 0);
            assert_int_equal(ttlv_encode(root, &b), 0);
            check_answer(e, kenv_call_raw(e, NULL, b.data, b.len));
            kms_buf_dispose(&b);
            sent++;
            kms_arena_reset(e->a);
        }
        for (int m = 0; m < BYTE_MUTATIONS; m++) {
            uint8_t *c = malloc(len);
            memcpy(c, req, len);
            size_t l = len;
            if ((rnd() & 1) && len > 16)
                l = 16 + rnd() % (len - 16);
            for (int j = 0; j < 3; j++)
                c[8 + rnd() % (l - 8)] ^= (uint8_t)(1u << (rnd() % 8));
            ttlv_item_t *r = kenv_call_raw(e, NULL, c, l);
            if (e->last_rc == KMS_ERR_PROTO)
                refused++;
            else
                check_answer(e, r);
            free(c);
            sent++;
            kms_arena_reset(e->a);
        }
        free(req);
    }
    free(line);
    fclose(f);
    printf("robustness: %zu mutated requests, %zu refused as not TTLV, %zu batch items still "
           "succeeded, no crash\n", sent, refused, successes);
    assert_true(sent > 2000);
    kenv_teardown(e);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutated_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
