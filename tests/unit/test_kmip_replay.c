/*
 * tests/unit/test_kmip_replay.c: replays every request of the KMIP 1.1
 * test-case document (tests/vectors/kmip-1.1-testcases.txt) through
 * kmip_handle() on a real store and keyring, one fresh server per test
 * case, and compares each response with the document's.
 *
 * Ignored because the server chooses them: Time Stamps and other
 * Date-Time values, Key Material / Digest Value / Big Integer values
 * (random keys), Result Message texts, Vendor Identification and Server
 * Information. Unique Identifiers are compared through a map from the
 * document's ids to ours, learned from the responses (and used to rewrite
 * later requests). Attributes in a payload are compared as "every
 * expected attribute is present" (a server may hold more). The server
 * runs on the document's own timeline: its clock (kmip_config_t.clock)
 * reads the Time Stamp of the response the document shows, so dates in
 * the requests mean what they meant then (9.2 waits two minutes for a
 * Deactivation Date, here without sleeping).
 *
 * The identity cases run with real identities (KMIP_ACCESS_CLIENTS and
 * no certificate): 11.1's users Fred and Barney as password clients and
 * 11.2's two devices as device clients with every identifier the document
 * sends, so each Credential is verified and names its own identity. The
 * other cases run with KMIP_ACCESS_OPEN.
 *
 * Prints one line per message that does not match, with the first
 * difference, and a summary. The test fails when the number of matching
 * responses drops below the recorded baseline or a request is not
 * answered at all.
 */
#include "tests/unit/test_kmip_env.h"

#include <time.h>

#include "certs/certs.h"

#define VECTORS "tests/vectors/kmip-1.1-testcases.txt"
#define MAX_IDS 256
#define REPLAY_BASELINE 250 /* responses that matched when this was written; raise it, never lower */

typedef struct idmap {
    char doc[MAX_IDS][64];
    char ours[MAX_IDS][64];
    size_t n;
} idmap_t;

static int64_t g_doc_now;

/* 11.2's devices: name, password, then serial number, Device, Network,
 * Machine and Media Identifiers. */
static const char *const DEVICES_11_2[2][7] = {
    {"device-a", "secret", "serNum123456", "devID2233", "netID9000", "machineID1", "mediaID313"},
    {"device-b", "passwd", "serNum101010", "devID4444", "netID9", "machineID1111", "mediaID0000"},
};

static void commit_device(kenv_t *e, const char *const d[7])
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    kms_strlcpy(c.name, d[0], sizeof(c.name));
    kms_strlcpy(c.tenant, "default", sizeof(c.tenant));
    kms_strlcpy(c.role, "client", sizeof(c.role));
    store_device_t dev;
    memset(&dev, 0, sizeof(dev));
    char *f[5] = {dev.serial, dev.device_id, dev.network_id, dev.machine_id, dev.media_id};
    for (int i = 0; i < 5; i++)
        kms_strlcpy(f[i], d[2 + i], STORE_DEVICE_FIELD_MAX + 1);
    assert_int_equal(store_client_set_device(&c, &dev), 0);
    kmip_password_cost_t cost = KENV_PASSWORD_COST;
    assert_int_equal(kmip_password_hash(&cost, d[1], c.password_hash, sizeof(c.password_hash)),
                     0);
    store_write_t *w = store_write_new();
    assert_int_equal(store_write_client(w, &c, false), 0);
    assert_int_equal(store_commit(e->store, w, NULL, 0), 0);
    store_write_free(w);
}

/* Register the identities of test cases 11.1 and 11.2 in tenant default;
 * true when `tcase` is one of them. */
static bool register_identities(kenv_t *e, const char *tcase)
{
    bool users = strncmp(tcase, "11.1 ", 5) == 0, devices = strncmp(tcase, "11.2 ", 5) == 0;
    if (!users && !devices)
        return false;
    assert_int_equal(kenv_commit_tenant(e, "default"), 0);
    if (users) {
        assert_int_equal(kenv_commit_client(e, "Fred", "default", "client", "password1"), 0);
        assert_int_equal(kenv_commit_client(e, "Barney", "default", "client", "secret2"), 0);
    }
    for (int i = 0; devices && i < 2; i++)
        commit_device(e, DEVICES_11_2[i]);
    return true;
}
static int64_t doc_clock(void *arg)
{
    (void)arg;
    return g_doc_now;
}

static const char *map_get(const idmap_t *m, const char *doc)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->doc[i], doc) == 0)
            return m->ours[i];
    return NULL;
}

static void map_put(idmap_t *m, const char *doc, const char *ours)
{
    if (map_get(m, doc) || m->n == MAX_IDS)
        return;
    snprintf(m->doc[m->n], 64, "%s", doc);
    snprintf(m->ours[m->n], 64, "%s", ours);
    m->n++;
}

static bool is_id_tag(uint32_t tag)
{
    return tag == KMIP_TAG_UNIQUE_IDENTIFIER || tag == KMIP_TAG_PRIVATE_KEY_UNIQUE_IDENTIFIER ||
           tag == KMIP_TAG_PUBLIC_KEY_UNIQUE_IDENTIFIER || tag == KMIP_TAG_LINKED_OBJECT_IDENTIFIER ||
           tag == KMIP_TAG_REPLACED_UNIQUE_IDENTIFIER;
}

/* Rewrite document ids in a request to ours; shift real dates by delta. */
static void rewrite(kms_arena_t *a, ttlv_item_t *it, const idmap_t *m, int64_t delta)
{
    if (it->type == TTLV_BYTE_STRING && it->tag == KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE &&
        it->v.bytes.len <= 31) {
        /* Correlation values are mapped like ids, by their hex. */
        char hex[64];
        uint8_t *p = NULL;
        size_t n = 0;
        kms_hex_encode(it->v.bytes.ptr, it->v.bytes.len, hex);
        const char *o = map_get(m, hex);
        if (o && kms_hex_decode(o, strlen(o), &p, &n) == 0) {
            it->v.bytes.ptr = kms_arena_memdup(a, p, n);
            it->v.bytes.len = n;
            free(p);
        }
    } else if (it->type == TTLV_TEXT_STRING) {
        const char *o = map_get(m, ttlv_text(it));
        if (o) {
            char *c = kms_arena_strdup(a, o);
            it->v.bytes.ptr = (const uint8_t *)c;
            it->v.bytes.len = strlen(c);
        }
    } else if (it->type == TTLV_DATE_TIME && it->v.i64 > 1000000000) {
        it->v.i64 += delta;
    }
    for (ttlv_item_t *c = it->first; c; c = c->next)
        rewrite(a, c, m, delta);
}

static bool ignorable_child(uint32_t tag)
{
    return tag == KMIP_TAG_RESULT_MESSAGE || tag == KMIP_TAG_VENDOR_IDENTIFICATION ||
           tag == KMIP_TAG_SERVER_INFORMATION;
}

typedef struct cmp {
    idmap_t *map;
    bool learn;
    char diff[512];
} cmp_t;

static bool cmp_item(cmp_t *c, const ttlv_item_t *x, const ttlv_item_t *y);

static void set_diff(cmp_t *c, const ttlv_item_t *x, const char *what)
{
    if (c->diff[0])
        return;
    const char *n = ttlv_tag_name(x->tag);
    snprintf(c->diff, sizeof(c->diff), "%s (0x%06X): %s", n ? n : "?", x->tag, what);
}

static bool cmp_struct(cmp_t *c, const ttlv_item_t *x, const ttlv_item_t *y)
{
    /* Non-attribute children pair in order; expected Attributes must each
     * be present somewhere in y. */
    const ttlv_item_t *yc = y->first;
    for (const ttlv_item_t *xc = x->first; xc; xc = xc->next) {
        if (ignorable_child(xc->tag))
            continue;
        if (xc->tag == KMIP_TAG_ATTRIBUTE || xc->tag == KMIP_TAG_ATTRIBUTE_NAME) {
            bool found = false;
            for (const ttlv_item_t *z = y->first; z && !found; z = z->next) {
                if (z->tag != xc->tag)
                    continue;
                cmp_t tmp = {.map = c->map, .learn = false};
                found = cmp_item(&tmp, xc, z);
            }
            if (!found) {
                const ttlv_item_t *n = xc->tag == KMIP_TAG_ATTRIBUTE_NAME ? xc : ttlv_find(xc, KMIP_TAG_ATTRIBUTE_NAME);
                char w[200];
                snprintf(w, sizeof(w), "attribute '%s' missing or different",
                         n && n->type == TTLV_TEXT_STRING ? ttlv_text(n) : "?");
                set_diff(c, xc, w);
                return false;
            }
            continue;
        }
        while (yc && (ignorable_child(yc->tag) || yc->tag == KMIP_TAG_ATTRIBUTE || yc->tag == KMIP_TAG_ATTRIBUTE_NAME))
            yc = yc->next;
        if (!yc) {
            set_diff(c, xc, "missing in our response");
            return false;
        }
        if (!cmp_item(c, xc, yc))
            return false;
        yc = yc->next;
    }
    while (yc && (ignorable_child(yc->tag) || yc->tag == KMIP_TAG_ATTRIBUTE || yc->tag == KMIP_TAG_ATTRIBUTE_NAME))
        yc = yc->next;
    if (yc) {
        set_diff(c, yc, "extra item in our response");
        return false;
    }
    return true;
}

static bool cmp_item(cmp_t *c, const ttlv_item_t *x, const ttlv_item_t *y)
{
    if (x->tag != y->tag) {
        char w[128];
        const char *n = ttlv_tag_name(y->tag);
        snprintf(w, sizeof(w), "we have %s (0x%06X) here", n ? n : "?", y->tag);
        set_diff(c, x, w);
        return false;
    }
    if (x->type != y->type) {
        set_diff(c, x, "different type");
        return false;
    }
    switch (x->type) {
    case TTLV_STRUCTURE: return cmp_struct(c, x, y);
    case TTLV_DATE_TIME: return true;
    case TTLV_BIG_INTEGER: return true;
    case TTLV_BYTE_STRING:
        if (x->tag == KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE) {
            char hx[64], hy[64];
            if (c->learn && x->v.bytes.len <= 31 && y->v.bytes.len <= 31) {
                kms_hex_encode(x->v.bytes.ptr, x->v.bytes.len, hx);
                kms_hex_encode(y->v.bytes.ptr, y->v.bytes.len, hy);
                map_put(c->map, hx, hy);
            }
            return true;
        }
        if (x->tag == KMIP_TAG_KEY_MATERIAL || x->tag == KMIP_TAG_DIGEST_VALUE ||
            x->tag == KMIP_TAG_IV_COUNTER_NONCE)
            return true;
        if (x->v.bytes.len != y->v.bytes.len || memcmp(x->v.bytes.ptr, y->v.bytes.ptr, x->v.bytes.len)) {
            set_diff(c, x, "different bytes");
            return false;
        }
        return true;
    case TTLV_TEXT_STRING: {
        const char *xs = ttlv_text(x), *ys = ttlv_text(y);
        const char *mapped = map_get(c->map, xs);
        if (mapped)
            xs = mapped;
        else if (is_id_tag(x->tag) || (x->tag == KMIP_TAG_ATTRIBUTE_VALUE && strlen(xs) == 36 && xs[8] == '-')) {
            if (c->learn)
                map_put(c->map, xs, ys);
            return true;
        }
        if (strcmp(xs, ys) != 0) {
            char w[300];
            snprintf(w, sizeof(w), "'%.100s' expected, we say '%.100s'", xs, ys);
            set_diff(c, x, w);
            return false;
        }
        return true;
    }
    case TTLV_INTEGER:
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL:
        if (x->tag == KMIP_TAG_LEASE_TIME) /* server policy */
            return true;
        if (x->v.i32 != y->v.i32) {
            char w[160];
            const char *xn = x->type == TTLV_ENUMERATION ? ttlv_enum_name(x->tag, ttlv_u32(x)) : NULL;
            const char *yn = y->type == TTLV_ENUMERATION ? ttlv_enum_name(y->tag, ttlv_u32(y)) : NULL;
            snprintf(w, sizeof(w), "0x%X (%s) expected, we say 0x%X (%s)", ttlv_u32(x),
                     xn ? xn : "", ttlv_u32(y), yn ? yn : "");
            set_diff(c, x, w);
            return false;
        }
        return true;
    case TTLV_LONG_INTEGER:
        if (x->v.i64 != y->v.i64) {
            set_diff(c, x, "different value");
            return false;
        }
        return true;
    case TTLV_BOOLEAN:
        if (x->v.b != y->v.b) {
            set_diff(c, x, "different boolean");
            return false;
        }
        return true;
    default: return true;
    }
}

typedef struct vec {
    int index;
    char tcase[128];
    bool request;
    uint8_t *bytes;
    size_t len;
} vec_t;

static size_t load_vectors(vec_t **out)
{
    FILE *f = fopen(VECTORS, "r");
    assert_non_null(f);
    size_t cap = 600, n = 0;
    vec_t *v = calloc(cap, sizeof(*v));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t r;
    while ((r = getline(&line, &lcap, f)) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *save = NULL;
        char *idx = strtok_r(line, "\t", &save);
        char *tc = strtok_r(NULL, "\t", &save);
        char *kind = strtok_r(NULL, "\t", &save);
        char *hex = strtok_r(NULL, "\t\r\n", &save);
        if (!idx || !tc || !kind || !hex)
            continue;
        if (n == cap)
            break;
        v[n].index = atoi(idx);
        snprintf(v[n].tcase, sizeof(v[n].tcase), "%s", tc);
        v[n].request = strcmp(kind, "request") == 0;
        assert_int_equal(kms_hex_decode(hex, strlen(hex), &v[n].bytes, &v[n].len), 0);
        n++;
    }
    free(line);
    fclose(f);
    *out = v;
    return n;
}

static int64_t resp_timestamp(const ttlv_item_t *resp)
{
    const ttlv_item_t *h = resp ? ttlv_find(resp, KMIP_TAG_RESPONSE_HEADER) : NULL;
    const ttlv_item_t *t = h ? ttlv_find(h, KMIP_TAG_TIME_STAMP) : NULL;
    return t ? t->v.i64 : 0;
}

static const char *first_op(const ttlv_item_t *msg)
{
    const ttlv_item_t *bi = ttlv_find(msg, KMIP_TAG_BATCH_ITEM);
    const ttlv_item_t *op = bi ? ttlv_find(bi, KMIP_TAG_OPERATION) : NULL;
    const char *n = op ? ttlv_enum_name(KMIP_TAG_OPERATION, ttlv_u32(op)) : NULL;
    return n ? n : "?";
}

static void test_replay(void **state)
{
    (void)state;
    vec_t *v = NULL;
    size_t n = load_vectors(&v);
    assert_true(n >= 500);
    size_t total = 0, matched = 0, cases = 0, cases_ok = 0;
    kenv_t *e = NULL;
    idmap_t *map = calloc(1, sizeof(*map));
    /* An issuing CA for 13.4's Certify and Re-certify. */
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    assert_int_equal(certs_key_new(CERTS_KEY_EC_P256, &ca_key), 0);
    assert_int_equal(certs_create_ca(ca_key, "replay issuing CA", 0, &ca), 0);
    const char *cur = "";
    bool case_ok = true, ids = false;
    size_t ids_diffs = 0; /* differences in the identity cases (11.1, 11.2) */
    for (size_t i = 0; i + 1 < n; i++) {
        if (!v[i].request || v[i + 1].request)
            continue;
        if (strcmp(cur, v[i].tcase) != 0) {
            if (e) {
                cases_ok += case_ok;
                kenv_teardown(e);
                free(e);
            }
            e = calloc(1, sizeof(*e));
            assert_int_equal(kenv_setup(e, KMIP_ACCESS_OPEN), 0);
            kmip_server_free(e->srv);
            ids = register_identities(e, v[i].tcase);
            kmip_config_t kc = {.store = e->store, .keyring = e->kr, .vendor = "kmsd",
                                .version = "test", .clock = doc_clock,
                                .access = ids ? KMIP_ACCESS_CLIENTS : KMIP_ACCESS_OPEN,
                                .password_cost = KENV_PASSWORD_COST, .certify_ca = ca,
                                .certify_ca_key = ca_key};
            assert_int_equal(kmip_server_new(&kc, &e->srv), 0);
            memset(map, 0, sizeof(*map));
            cur = v[i].tcase;
            cases++;
            case_ok = true;
        }
        ttlv_item_t *req = NULL, *exp = NULL;
        kms_error_t err;
        assert_int_equal(ttlv_decode(v[i].bytes, v[i].len, NULL, e->a, &req, &err), 0);
        assert_int_equal(ttlv_decode(v[i + 1].bytes, v[i + 1].len, NULL, e->a, &exp, &err), 0);
        g_doc_now = resp_timestamp(exp);
        rewrite(e->a, req, map, 0);
        kms_buf_t b;
        kms_buf_init(&b, 0);
        assert_int_equal(ttlv_encode(req, &b), 0);
        ttlv_item_t *got = kenv_call_raw(e, NULL, b.data, b.len);
        /* The document's server had finished an asynchronous operation by
         * the time it was polled; ours runs it on another thread: poll
         * again, as a client would, until it is no longer pending. */
        for (int tries = 0; tries < 1000 && strcmp(first_op(req), "Poll") == 0 &&
                            rs_status(rs_item(got, 0)) == KMIP_RESULT_STATUS_OPERATION_PENDING &&
                            rs_status(rs_item(exp, 0)) != KMIP_RESULT_STATUS_OPERATION_PENDING;
             tries++) {
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
            got = kenv_call_raw(e, NULL, b.data, b.len);
        }
        kms_buf_dispose(&b);
        total++;
        /* Every request is answered with a Response Message. */
        assert_int_equal(e->last_rc, 0);
        assert_non_null(got);
        cmp_t c = {.map = map, .learn = true};
        if (cmp_item(&c, exp, got)) {
            matched++;
        } else {
            case_ok = false;
            ids_diffs += ids;
            /* the reason our item failed, if it did */
            const char *why = "";
            for (ttlv_item_t *bi = ttlv_find(got, KMIP_TAG_BATCH_ITEM); bi;
                 bi = ttlv_find_next(bi, KMIP_TAG_BATCH_ITEM)) {
                ttlv_item_t *m = ttlv_find(bi, KMIP_TAG_RESULT_MESSAGE);
                if (m) {
                    why = ttlv_text(m);
                    break;
                }
            }
            printf("REPLAY-DIFF [%s] #%d %s: %s%s%s\n", v[i].tcase, v[i].index, first_op(req), c.diff,
                   why[0] ? " -- ours: " : "", why);
        }
        kms_arena_reset(e->a);
    }
    if (e) {
        cases_ok += case_ok;
        kenv_teardown(e);
        free(e);
    }
    printf("REPLAY: %zu of %zu responses match the KMIP 1.1 test-case document; %zu of %zu test cases fully\n",
           matched, total, cases_ok, cases);
    for (size_t i = 0; i < n; i++)
        free(v[i].bytes);
    free(v);
    free(map);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    assert_true(total >= 250);
    assert_true(matched >= REPLAY_BASELINE);
    assert_int_equal(ids_diffs, 0); /* verified users and devices match the document in full */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
