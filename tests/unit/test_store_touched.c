/* tests/unit/test_store_touched.c: the names a KMIP write touches reach
 * the store's per-name clocks (kmip/object.c marks them, store/ stamps
 * them). Real requests through kmip_handle() on a real store: a Create
 * writes only the default clock; Activate moves State and the dates, an
 * Add/Delete Attribute moves only that name (deleting the last instance
 * leaves its clock), and never the Name of the key or its material. */
#include "tests/unit/test_kmip_env.h"

static store_object_t *repl_view(kenv_t *e, const char *id)
{
    store_reader_t *r = NULL;
    store_object_t *o = NULL;
    assert_int_equal(store_reader_new(e->store, &r), 0);
    assert_int_equal(store_get_repl(r, e->a, id, &o, NULL), 0);
    store_reader_free(r);
    assert_non_null(o);
    return o;
}

static const store_clock_t *clock_of(const store_object_t *o, const char *name)
{
    for (size_t i = 0; i < o->n_clocks; i++)
        if (strcmp(o->clocks[i].name, name) == 0)
            return &o->clocks[i];
    return NULL;
}

static ttlv_item_t *edit(kenv_t *e, uint32_t op, const char *id, const char *name, const char *v)
{
    ttlv_item_t *m = rq_msg(e, 1, 1);
    ttlv_item_t *p = rq_item(e, m, op);
    rq_uid(e, p, id);
    if (op == KMIP_OPERATION_DELETE_ATTRIBUTE) {
        ttlv_new_textz(e->a, p, KMIP_TAG_ATTRIBUTE_NAME, name);
        return rs_item(kenv_call(e, m), 0);
    }
    ttlv_item_t *at = ttlv_new_struct(e->a, p, KMIP_TAG_ATTRIBUTE);
    ttlv_new_textz(e->a, at, KMIP_TAG_ATTRIBUTE_NAME, name);
    ttlv_new_textz(e->a, at, KMIP_TAG_ATTRIBUTE_VALUE, v);
    return rs_item(kenv_call(e, m), 0);
}

static void test_touched_reach_clocks(void **state)
{
    kenv_t *e = *state;
    char *id = k_create_aes(e, "touched");
    store_object_t *o = repl_view(e, id);
    assert_int_equal(o->n_clocks, 1); /* a Create: one default entry */
    int64_t created = o->clocks[0].hlc;
    assert_string_equal(o->clocks[0].node, store_node_id(e->store));

    assert_ok(k_op_uid(e, KMIP_OPERATION_ACTIVATE, id));
    o = repl_view(e, id);
    int64_t activated = o->change.hlc;
    assert_true(activated > created);
    assert_int_equal(clock_of(o, "")->hlc, created);
    assert_int_equal(clock_of(o, "State")->hlc, activated);
    assert_int_equal(clock_of(o, "Activation Date")->hlc, activated);
    /* (Last Change Date moves only when its value does: seconds) */
    /* untouched: no entry of their own, so the creation clock */
    assert_null(clock_of(o, "Name"));
    assert_null(clock_of(o, "Cryptographic Length"));
    assert_null(clock_of(o, STORE_CLOCK_ARCHIVED));
    assert_null(clock_of(o, STORE_CLOCK_MATERIAL)); /* not re-sealed by a state change */

    assert_ok(edit(e, KMIP_OPERATION_ADD_ATTRIBUTE, id, "x-tag", "a"));
    o = repl_view(e, id);
    int64_t added = o->change.hlc;
    assert_int_equal(clock_of(o, "x-tag")->hlc, added);
    assert_int_equal(clock_of(o, "State")->hlc, activated);
    assert_null(clock_of(o, "Name"));

    assert_ok(edit(e, KMIP_OPERATION_DELETE_ATTRIBUTE, id, "x-tag", NULL));
    o = repl_view(e, id);
    assert_true(o->change.hlc > added);
    assert_int_equal(clock_of(o, "x-tag")->hlc, o->change.hlc); /* a clock, no instance */
    for (size_t i = 0; i < o->n_attrs; i++)
        assert_string_not_equal(o->attrs[i].name, "x-tag");
    assert_int_equal(clock_of(o, "State")->hlc, activated);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_touched_reach_clocks, kenv_plain_setup,
                                        kenv_plain_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
