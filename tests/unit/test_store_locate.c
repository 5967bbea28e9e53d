/* tests/unit/test_store_locate.c: store_locate on a real SQLite file with a
 * few hundred objects in two tenants: every condition kind checked against
 * a model computed here, tenant isolation, storage-status filter, newest
 * first order, offset/max_items paging, and the query plan (Locate by Name
 * and the presence of a text marker within a tenant must use an index, not
 * scan objects). A tenant's Locate does the same work (SQLite VM steps,
 * not time) however many objects of another tenant carry its value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/kms.h"
#include "store/store.h"

#define N_OBJ 240

static char g_dir[64];
static store_t *g_s;
static store_reader_t *g_r;
static kms_arena_t *g_a;

/* The model: what each object i carries. */
static const char *tenant_of(int i) { return i % 3 == 2 ? "beta" : "alpha"; }
static int group_of(int i) { return i % 4; }
static int64_t length_of(int i) { return i % 2 ? 256 : 128; }
static int64_t mask_of(int i) { return i % 3 ? 12 : 4; }
static bool flag_of(int i) { return i % 5 == 0; }
static bool archived_of(int i) { return i % 7 == 0; }
static uint32_t type_of(int i) { return i % 11 == 3 ? 7 : 2; }   /* a few Secret Data */
static uint32_t state_of(int i) { return (uint32_t)(i % 4 + 1); } /* Pre-Active..Compromised */

static void id_of(int i, char *buf, size_t n) { snprintf(buf, n, "loc-%04d", i); }

static int index_of(const char *id)
{
    return atoi(id + 4);
}

static int setup_all(void **state)
{
    (void)state;
    kms_log_set_level(KMS_LOG_ERROR);
    strcpy(g_dir, "/tmp/kmsd-storeloc-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char path[128];
    snprintf(path, sizeof(path), "%s/kms.db", g_dir);
    store_options_t o = {.path = path};
    if (store_open(&o, &g_s) != 0)
        return -1;
    for (int i = 0; i < N_OBJ; i++) {
        store_object_t ob;
        store_attr_t at[6];
        char name[32], grp[32];
        memset(&ob, 0, sizeof(ob));
        memset(at, 0, sizeof(at));
        id_of(i, ob.id, sizeof(ob.id));
        strcpy(ob.tenant, tenant_of(i));
        ob.object_type = type_of(i);
        ob.state = state_of(i);
        ob.archived = archived_of(i);
        snprintf(name, sizeof(name), "name-%d", i);
        snprintf(grp, sizeof(grp), "group-%d", group_of(i));
        size_t n = 0;
        at[n++] = (store_attr_t){.name = "Name", .value = (const uint8_t *)"v", .value_len = 1,
                                 .skey = name};
        at[n++] = (store_attr_t){.name = "Object Group", .value = (const uint8_t *)"g",
                                 .value_len = 1, .skey = grp};
        at[n++] = (store_attr_t){.name = "Cryptographic Length", .value = (const uint8_t *)"l",
                                 .value_len = 1, .nkey = length_of(i), .has_nkey = true};
        at[n++] = (store_attr_t){.name = "Cryptographic Usage Mask",
                                 .value = (const uint8_t *)"m", .value_len = 1,
                                 .nkey = mask_of(i), .has_nkey = true};
        at[n++] = (store_attr_t){.name = "Activation Date", .value = (const uint8_t *)"d",
                                 .value_len = 1, .nkey = 1000000 + i, .has_nkey = true,
                                 .index_nkey = true};
        if (flag_of(i))
            at[n++] = (store_attr_t){.name = "x-flag", .value = (const uint8_t *)"f",
                                     .value_len = 1};
        ob.attrs = at;
        ob.n_attrs = n;
        store_write_t *w = store_write_new();
        if (!w || store_write_put(w, &ob, STORE_VERSION_NEW) != 0 ||
            store_commit(g_s, w, NULL, 0) != 0)
            return -1;
        store_write_free(w);
    }
    if (store_reader_new(g_s, &g_r) != 0)
        return -1;
    g_a = kms_arena_new(0);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    kms_arena_free(g_a);
    store_reader_free(g_r);
    store_close(g_s);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef bool (*pred_fn)(int i);

/* Locate and compare with the model: same set, newest first. */
static void check(const store_query_t *q, pred_fn pred)
{
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(store_locate(g_r, q, g_a, &ids, &n), 0);
    int expect[N_OBJ], ne = 0;
    for (int i = N_OBJ - 1; i >= 0; i--) { /* newest first = highest i first */
        bool online_ok = q->want_online || (!q->want_online && !q->want_archived);
        bool st_ok = archived_of(i) ? q->want_archived : online_ok;
        if ((!q->tenant || strcmp(q->tenant, tenant_of(i)) == 0) && st_ok && pred(i))
            expect[ne++] = i;
    }
    size_t first = q->offset < (size_t)ne ? q->offset : (size_t)ne;
    size_t want = (size_t)ne - first;
    if (q->max_items && q->max_items < want)
        want = q->max_items;
    assert_int_equal(n, want);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(index_of(ids[k]), expect[first + k]);
}

static bool p_all(int i) { (void)i; return true; }
static bool p_name17(int i) { return i == 17; }
static bool p_group1(int i) { return group_of(i) == 1; }
static bool p_len256(int i) { return length_of(i) == 256; }
static bool p_mask8(int i) { return (mask_of(i) & 8) == 8; }
static bool p_mask4(int i) { return (mask_of(i) & 4) == 4; }
static bool p_flag(int i) { return flag_of(i); }
static bool p_group2_len128_flag(int i)
{
    return group_of(i) == 2 && length_of(i) == 128 && flag_of(i);
}
static bool p_none(int i) { (void)i; return false; }
static bool p_dates(int i) { return i >= 100 && i <= 109; }
static bool p_type7(int i) { return type_of(i) == 7; }
static bool p_state23(int i) { return state_of(i) == 2 || state_of(i) == 3; }
static bool p_type7_state4_len256(int i)
{
    return type_of(i) == 7 && state_of(i) == 4 && length_of(i) == 256;
}
static bool p_type2_name17(int i) { return i == 17 && type_of(i) == 2; }

/* Object Type and State on the objects columns, alone, combined with each
 * other and with attribute conditions, driven and walked. */
static void test_object_columns(void **state)
{
    (void)state;
    store_cond_t c[3] = {{.kind = STORE_COND_TYPE_EQ, .lo = 7}};
    store_query_t q = {.tenant = "alpha", .conds = c, .n_conds = 1};
    check(&q, p_type7);
    q.tenant = NULL;
    check(&q, p_type7);
    c[0].lo = 99;
    check(&q, p_none);
    c[0] = (store_cond_t){.kind = STORE_COND_STATE_RANGE, .lo = 2, .hi = 3};
    q.tenant = "beta";
    check(&q, p_state23);
    c[0] = (store_cond_t){.kind = STORE_COND_NKEY_EQ, .name = "Cryptographic Length", .lo = 256};
    c[1] = (store_cond_t){.kind = STORE_COND_STATE_RANGE, .lo = 4, .hi = 4};
    c[2] = (store_cond_t){.kind = STORE_COND_TYPE_EQ, .lo = 7};
    q.n_conds = 3;
    q.tenant = NULL;
    check(&q, p_type7_state4_len256);
    q.want_archived = true;
    q.want_online = true;
    check(&q, p_type7_state4_len256);
    q.want_archived = q.want_online = false;
    /* a Name drives, the type is checked on the row */
    c[0] = (store_cond_t){.kind = STORE_COND_TYPE_EQ, .lo = 2};
    c[1] = (store_cond_t){.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "name-17"};
    q.n_conds = 2;
    check(&q, p_type2_name17);
    c[0].lo = 7;
    check(&q, p_none);
}

static void test_skey(void **state)
{
    (void)state;
    store_cond_t c = {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "name-17"};
    store_query_t q = {.tenant = "alpha", .conds = &c, .n_conds = 1};
    check(&q, p_name17); /* 17 % 3 == 2: beta's, so alpha sees nothing */
    q.tenant = "beta";
    check(&q, p_name17);
    char **ids;
    size_t n;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_int_equal(n, 1);
    q.tenant = "alpha";
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_int_equal(n, 0);
    q.tenant = NULL;
    check(&q, p_name17);
    c.name = "Object Group";
    c.s = "group-1";
    q.tenant = "alpha";
    check(&q, p_group1);
    /* a skey under another attribute name does not match */
    c.name = "Name";
    check(&q, p_none);
}

static void test_nkey(void **state)
{
    (void)state;
    store_cond_t c = {.kind = STORE_COND_NKEY_EQ, .name = "Cryptographic Length", .lo = 256};
    store_query_t q = {.tenant = "alpha", .conds = &c, .n_conds = 1};
    check(&q, p_len256);
    c.kind = STORE_COND_NKEY_RANGE;
    c.lo = 200;
    c.hi = 300;
    check(&q, p_len256);
    c.lo = 128;
    c.hi = 256; /* inclusive bounds */
    check(&q, p_all);
    c.lo = 129;
    c.hi = 255;
    check(&q, p_none);
    c.kind = STORE_COND_NKEY_MASK;
    c.name = "Cryptographic Usage Mask";
    c.lo = 8;
    check(&q, p_mask8);
    c.lo = 4;
    check(&q, p_mask4);
    c.lo = 12;
    check(&q, p_mask8);
    /* a rare range (drives through the (name, ikey) index) */
    c.kind = STORE_COND_NKEY_RANGE;
    c.name = "Activation Date";
    c.lo = 1000100;
    c.hi = 1000109;
    c.indexed = true;
    check(&q, p_dates);
    q.tenant = NULL;
    check(&q, p_dates);
    /* the same range, not marked indexed: checked per candidate, same answer */
    c.indexed = false;
    check(&q, p_dates);
    q.tenant = "alpha";
    check(&q, p_dates);
    q.tenant = NULL;
    /* a rare equality next to a common one */
    store_cond_t two[2] = {
        {.kind = STORE_COND_NKEY_EQ, .name = "Cryptographic Length", .lo = 128},
        {.kind = STORE_COND_NKEY_EQ, .name = "Activation Date", .lo = 1000104, .indexed = true},
    };
    q.conds = two;
    q.n_conds = 2;
    char **ids;
    size_t n;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "loc-0104");
    two[0].lo = 256; /* 104 is even: length 128 */
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_int_equal(n, 0);
}

static void test_has_and_combined(void **state)
{
    (void)state;
    store_cond_t c[3] = {
        {.kind = STORE_COND_HAS, .name = "x-flag"},
        {.kind = STORE_COND_SKEY_EQ, .name = "Object Group", .s = "group-2"},
        {.kind = STORE_COND_NKEY_EQ, .name = "Cryptographic Length", .lo = 128},
    };
    store_query_t q = {.tenant = "beta", .conds = c, .n_conds = 1};
    check(&q, p_flag);
    q.tenant = NULL;
    check(&q, p_flag);
    q.n_conds = 3;
    check(&q, p_group2_len128_flag);
    q.tenant = "alpha";
    check(&q, p_group2_len128_flag);
    c[0].name = "x-missing";
    check(&q, p_none);
}

static void test_status_filter(void **state)
{
    (void)state;
    store_query_t q = {.tenant = "alpha"};
    check(&q, p_all); /* default: on-line only */
    q.want_online = true;
    check(&q, p_all);
    q.want_archived = true;
    check(&q, p_all);
    q.want_online = false;
    check(&q, p_all); /* archived only */
    char **ids;
    size_t n;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_true(n > 0);
    for (size_t k = 0; k < n; k++)
        assert_true(archived_of(index_of(ids[k])));
}

static void test_paging(void **state)
{
    (void)state;
    store_query_t q = {.tenant = NULL, .want_online = true, .want_archived = true};
    char **all;
    size_t n_all;
    assert_int_equal(store_locate(g_r, &q, g_a, &all, &n_all), 0);
    assert_int_equal(n_all, N_OBJ);
    /* newest first over everything */
    for (size_t k = 0; k + 1 < n_all; k++)
        assert_true(index_of(all[k]) > index_of(all[k + 1]));
    /* pages of 7 concatenate to the full list */
    size_t seen = 0;
    for (size_t off = 0;; off += 7) {
        q.offset = off;
        q.max_items = 7;
        check(&q, p_all);
        char **ids;
        size_t n;
        assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
        for (size_t k = 0; k < n; k++)
            assert_string_equal(ids[k], all[seen + k]);
        seen += n;
        if (n < 7)
            break;
    }
    assert_int_equal(seen, N_OBJ);
    q.offset = N_OBJ + 5;
    check(&q, p_all); /* past the end: empty */
    q.offset = 3;
    q.max_items = 0;
    check(&q, p_all);
}

static void test_invalid(void **state)
{
    (void)state;
    char **ids;
    size_t n;
    store_cond_t c = {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = NULL};
    store_query_t q = {.conds = &c, .n_conds = 1};
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), KMS_ERR_INVAL);
    c.kind = (enum store_cond_kind)99;
    c.s = "x";
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), KMS_ERR_INVAL);
    store_cond_t many[65];
    for (int i = 0; i < 65; i++)
        many[i] = (store_cond_t){.kind = STORE_COND_HAS, .name = "Name"};
    q.conds = many;
    q.n_conds = 65;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), KMS_ERR_LIMIT);
    q.n_conds = 64;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    /* a value with SQL in it is just a value */
    c.kind = STORE_COND_SKEY_EQ;
    c.s = "x' OR 1=1 --";
    q.conds = &c;
    q.n_conds = 1;
    assert_int_equal(store_locate(g_r, &q, g_a, &ids, &n), 0);
    assert_int_equal(n, 0);
}

/* A text presence (what Locate asks for the operation-policy marker on
 * every request): found through the (name, skey) index, so its cost is
 * the objects that carry the name, not the tenant's size. */
static void test_skey_any(void **state)
{
    (void)state;
    store_cond_t c = {.kind = STORE_COND_SKEY_ANY, .name = "Object Group"};
    store_query_t q = {.tenant = "alpha", .conds = &c, .n_conds = 1};
    check(&q, p_all);
    q.tenant = NULL;
    check(&q, p_all);
    c.name = "x-flag"; /* present on some objects, but without a text key */
    check(&q, p_none);
    c.name = "no-such-attribute";
    check(&q, p_none);
    char *plan = NULL;
    c.name = "_kmsd.private";
    q.tenant = "beta";
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (text presence within tenant):\n%s", plan);
    /* skey IS NOT NULL */
    assert_non_null(strstr(plan, "attributes_tenant_skey (tenant=? AND name=? AND skey>?)"));
    assert_non_null(strstr(plan, "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"));
    assert_null(strstr(plan, "objects_tenant_order"));
    assert_null(strstr(plan, "SCAN"));
}

static void test_plan(void **state)
{
    (void)state;
    char *plan = NULL;
    store_cond_t c = {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "name-17"};
    store_query_t q = {.tenant = "beta", .conds = &c, .n_conds = 1};
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (Name within tenant):\n%s", plan);
    /* driven by the Name index, objects by primary key: no walk over the
     * tenant's objects */
    assert_non_null(strstr(plan, "attributes_tenant_skey (tenant=? AND name=? AND skey=?)"));
    assert_non_null(strstr(plan, "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"));
    assert_null(strstr(plan, "objects_tenant_order"));
    assert_null(strstr(plan, "SCAN"));
    /* a common numeric range, not indexed */
    store_cond_t cn = {.kind = STORE_COND_NKEY_RANGE, .name = "Cryptographic Length", .lo = 1,
                       .hi = 300};
    q.conds = &cn;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (range within tenant):\n%s", plan);
    assert_null(strstr(plan, "SCAN"));
    /* checked per candidate by a primary-key seek, not a walk of the range */
    assert_non_null(strstr(plan, "SEARCH a USING PRIMARY KEY (obj_id=? AND name=?)"));
    assert_null(strstr(plan, "attributes_tenant_ikey"));
    /* Name + Object Type + range: the Name drives, the rest are seeks */
    store_cond_t c3[3] = {
        {.kind = STORE_COND_NKEY_EQ, .name = "Object Type", .lo = 2},
        {.kind = STORE_COND_NKEY_RANGE, .name = "Cryptographic Length", .lo = 1, .hi = 300},
        {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "name-17"},
    };
    q.conds = c3;
    q.n_conds = 3;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (Name + type + range):\n%s", plan);
    assert_non_null(strstr(plan, "attributes_tenant_skey (tenant=? AND name=? AND skey=?)"));
    assert_non_null(strstr(plan, "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"));
    assert_null(strstr(plan, "SCAN"));
    assert_null(strstr(plan, "attributes_tenant_ikey"));
    /* a rare indexed numeric range drives through the (name, ikey) index */
    store_cond_t cd = {.kind = STORE_COND_NKEY_RANGE, .name = "Activation Date", .lo = 1000100,
                       .hi = 1000109, .indexed = true};
    q.conds = &cd;
    q.n_conds = 1;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (rare range):\n%s", plan);
    assert_non_null(
        strstr(plan, "attributes_tenant_ikey (tenant=? AND name=? AND ikey>? AND ikey<?)"));
    assert_non_null(strstr(plan, "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"));
    assert_null(strstr(plan, "SCAN"));
    /* a rare value of a key that is not indexed (the Cryptographic Length
     * rows here) never drives: it has no index entries to count (a count
     * of 0 would look rare) or to seek */
    store_cond_t cl = {.kind = STORE_COND_NKEY_EQ, .name = "Cryptographic Length", .lo = 4096,
                       .hi = 4096};
    q.conds = &cl;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (not indexed):\n%s", plan);
    assert_null(strstr(plan, "attributes_tenant_ikey"));
    assert_non_null(strstr(plan, "objects_tenant_order"));
    assert_non_null(strstr(plan, "SEARCH a USING PRIMARY KEY (obj_id=? AND name=?)"));
    /* Object Type and State alone: the order index covers the walk (no
     * table row, no attribute seek, no sort) */
    store_cond_t ct[2] = {{.kind = STORE_COND_TYPE_EQ, .lo = 7},
                          {.kind = STORE_COND_STATE_RANGE, .lo = 1, .hi = 3}};
    q.conds = ct;
    q.n_conds = 2;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (type + state):\n%s", plan);
    assert_non_null(strstr(plan, "USING COVERING INDEX objects_tenant_order"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    q.tenant = NULL;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (type + state, all tenants):\n%s", plan);
    assert_non_null(strstr(plan, "USING COVERING INDEX objects_order"));
    q.tenant = "beta";
    /* Name + Object Type + State: the Name still drives (no walk) */
    store_cond_t cn2[3] = {{.kind = STORE_COND_TYPE_EQ, .lo = 2},
                           {.kind = STORE_COND_STATE_RANGE, .lo = 1, .hi = 4},
                           {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "name-17"}};
    q.conds = cn2;
    q.n_conds = 3;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (Name + type + state):\n%s", plan);
    assert_non_null(strstr(plan, "attributes_tenant_skey (tenant=? AND name=? AND skey=?)"));
    assert_null(strstr(plan, "SCAN"));
    /* no condition within a tenant: the order index, no sort */
    q.n_conds = 0;
    assert_int_equal(store_locate_explain(g_r, &q, g_a, &plan), 0);
    print_message("plan (all of a tenant):\n%s", plan);
    assert_non_null(strstr(plan, "objects_tenant_order"));
    assert_null(strstr(plan, "TEMP B-TREE"));
}


/* O14 (docs/security.md): the work of tenant beta's Locate by a text
 * value, a text marker or a rare indexed number does not change when
 * tenant alpha gains objects carrying the same values. Counted in SQLite
 * VM steps (store_locate_steps), so the check does not depend on this
 * machine's speed; with the (name, key) indexes of schema v10 every one
 * of alpha's rows was read and dropped, and the numeric estimate counted
 * them. Over all tenants (admin) the same Locates find both tenants'. */
#define O14_FOREIGN 300

static void put_o14(store_t *s, const char *tenant, int i)
{
    store_object_t ob;
    store_attr_t at[4];
    memset(&ob, 0, sizeof(ob));
    memset(at, 0, sizeof(at));
    snprintf(ob.id, sizeof(ob.id), "o14-%s-%04d", tenant, i);
    strcpy(ob.tenant, tenant);
    ob.object_type = 2;
    ob.state = 2;
    at[0] = (store_attr_t){.name = "Name", .value = (const uint8_t *)"v", .value_len = 1,
                           .skey = "shared-name"};
    at[1] = (store_attr_t){.name = "_kmsd.private", .value = (const uint8_t *)"p",
                           .value_len = 1, .skey = "someone"};
    at[2] = (store_attr_t){.name = "x-num", .value = (const uint8_t *)"n", .value_len = 1,
                           .nkey = 7, .has_nkey = true, .index_nkey = true};
    at[3] = (store_attr_t){.name = "Name", .index = 1, .value = (const uint8_t *)"v",
                           .value_len = 1, .skey = i % 2 ? "odd" : "even"};
    ob.attrs = at;
    ob.n_attrs = 4;
    store_write_t *w = store_write_new();
    assert_non_null(w);
    assert_int_equal(store_write_put(w, &ob, STORE_VERSION_NEW), 0);
    assert_int_equal(store_commit(s, w, NULL, 0), 0);
    store_write_free(w);
}

static void steps_of(store_reader_t *r, const store_query_t *q, size_t want, int64_t *steps)
{
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(store_locate(r, q, g_a, &ids, &n), 0);
    assert_int_equal(n, want);
    *steps = store_locate_steps(r);
    assert_true(*steps > 0);
}

static void test_foreign_rows_cost_nothing(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/o14.db", g_dir);
    store_options_t o = {.path = path};
    store_t *s = NULL;
    store_reader_t *r = NULL;
    assert_int_equal(store_open(&o, &s), 0);
    assert_int_equal(store_reader_new(s, &r), 0);
    /* beta: a few objects; alpha: one, so the statements exist for both */
    for (int i = 0; i < 8; i++)
        put_o14(s, "beta", i);
    put_o14(s, "alpha", 0);
    const store_cond_t conds[] = {
        {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "shared-name"},
        {.kind = STORE_COND_SKEY_ANY, .name = "_kmsd.private"},
        {.kind = STORE_COND_NKEY_EQ, .name = "x-num", .lo = 7, .hi = 7, .indexed = true},
        {.kind = STORE_COND_SKEY_EQ, .name = "Name", .s = "odd"},
    };
    const size_t n_conds = KMS_ARRAY_SIZE(conds);
    const size_t beta_n[] = {8, 8, 8, 4};
    int64_t before[KMS_ARRAY_SIZE(conds)];
    for (size_t k = 0; k < n_conds; k++) {
        store_query_t q = {.tenant = "beta", .conds = &conds[k], .n_conds = 1};
        steps_of(r, &q, beta_n[k], &before[k]);
    }
    for (int i = 1; i <= O14_FOREIGN; i++)
        put_o14(s, "alpha", i);
    for (size_t k = 0; k < n_conds; k++) {
        store_query_t q = {.tenant = "beta", .conds = &conds[k], .n_conds = 1};
        int64_t after;
        steps_of(r, &q, beta_n[k], &after);
        print_message("condition %zu: %lld VM steps before, %lld after %d foreign objects\n", k,
                      (long long)before[k], (long long)after, O14_FOREIGN);
        assert_int_equal(after, before[k]);
        /* alpha and an admin see alpha's */
        char **ids = NULL;
        size_t n = 0;
        q.tenant = "alpha";
        assert_int_equal(store_locate(r, &q, g_a, &ids, &n), 0);
        assert_int_equal(n, k == 3 ? (O14_FOREIGN + 1) / 2 : O14_FOREIGN + 1);
        q.tenant = NULL;
        assert_int_equal(store_locate(r, &q, g_a, &ids, &n), 0);
        assert_int_equal(n, beta_n[k] + (k == 3 ? (O14_FOREIGN + 1) / 2 : O14_FOREIGN + 1));
    }
    /* over all tenants the text and numeric drivers seek the index per
     * tenant: never a scan of the attributes */
    for (size_t k = 0; k < 3; k++) {
        store_cond_t c = conds[k];
        if (k == 2)
            c.lo = c.hi = 8; /* rare: it drives */
        store_query_t q = {.conds = &c, .n_conds = 1};
        char *plan = NULL;
        assert_int_equal(store_locate_explain(r, &q, g_a, &plan), 0);
        print_message("plan (all tenants, condition %zu):\n%s", k, plan);
        assert_non_null(strstr(plan, k == 2 ? "attributes_tenant_ikey (tenant=? AND name=?"
                                            : "attributes_tenant_skey (tenant=? AND name=?"));
        assert_null(strstr(plan, "SCAN a"));
        assert_null(strstr(plan, "SCAN attributes"));
    }
    store_reader_free(r);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skey),
        cmocka_unit_test(test_nkey),
        cmocka_unit_test(test_has_and_combined),
        cmocka_unit_test(test_object_columns),
        cmocka_unit_test(test_status_filter),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_skey_any),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_foreign_rows_cost_nothing),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
