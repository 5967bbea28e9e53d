/* tests/unit/test_ttlv_vectors.c: all 520 request/response messages of the
 * KMIP 1.1 test-case document (tests/vectors/kmip-1.1-testcases.txt):
 * each decodes, re-encodes to identical bytes, prints, and parses back from
 * its printed form to identical bytes; goes TTLV -> JSON -> TTLV and
 * TTLV -> XML -> TTLV byte for byte (compact and indented), the text forms
 * being stable when read and written again; the printed form equals the
 * document's own dump (tests/vectors/kmip-1.1-testcases-dumps.txt) line for
 * line; redaction hides key material. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

#define VECTORS "tests/vectors/kmip-1.1-testcases.txt"
#define DUMPS "tests/vectors/kmip-1.1-testcases-dumps.txt"
#define NVEC 520

struct vec {
    char name[128];
    bool request;
    uint8_t *bytes;
    size_t len;
    char **dump; /* the document's lines */
    size_t ndump;
};

static struct vec vecs[NVEC];
static size_t nvecs;

static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s (run from the repository root)\n", path);
        return NULL;
    }
    kms_buf_t b;
    kms_buf_init(&b, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(kms_buf_append(&b, chunk, n), 0);
    fclose(f);
    assert_int_equal(kms_buf_append_byte(&b, 0), 0);
    return (char *)kms_buf_take(&b, len_out);
}

static int load(void **state)
{
    (void)state;
    size_t len;
    char *text = slurp(VECTORS, &len);
    if (!text)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *f[4];
        size_t k = 0;
        char *s2 = NULL;
        for (char *p = strtok_r(line, "\t", &s2); p && k < 4; p = strtok_r(NULL, "\t", &s2))
            f[k++] = p;
        if (k != 4 || nvecs >= NVEC || (size_t)atoi(f[0]) != nvecs)
            return -1;
        struct vec *v = &vecs[nvecs++];
        snprintf(v->name, sizeof(v->name), "#%s %s", f[0], f[1]);
        v->request = strcmp(f[2], "request") == 0;
        if (kms_hex_decode(f[3], strlen(f[3]), &v->bytes, &v->len) != 0)
            return -1;
    }
    free(text);

    text = slurp(DUMPS, &len);
    if (!text)
        return -1;
    struct vec *cur = NULL;
    save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        if (strncmp(line, "@@ ", 3) == 0) {
            size_t i = (size_t)atoi(line + 3);
            if (i >= nvecs)
                return -1;
            cur = &vecs[i];
            continue;
        }
        if (!cur)
            return -1;
        cur->dump = realloc(cur->dump, (cur->ndump + 1) * sizeof(char *));
        cur->dump[cur->ndump++] = strdup(line);
    }
    free(text);
    return 0;
}

static int unload(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvecs; i++) {
        free(vecs[i].bytes);
        for (size_t k = 0; k < vecs[i].ndump; k++)
            free(vecs[i].dump[k]);
        free(vecs[i].dump);
    }
    return 0;
}

static void test_count(void **state)
{
    (void)state;
    size_t req = 0;
    assert_int_equal(nvecs, NVEC);
    for (size_t i = 0; i < nvecs; i++)
        req += vecs[i].request;
    assert_int_equal(req, 260);
}

/* decode -> encode identical; print -> parse -> encode identical; equal trees. */
static void test_round_trips(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t out, txt;
    kms_buf_init(&out, 0);
    kms_buf_init(&txt, 0);
    for (size_t i = 0; i < nvecs; i++) {
        struct vec *v = &vecs[i];
        ttlv_item_t *root = NULL, *back = NULL;
        kms_error_t err;
        int rc = ttlv_decode(v->bytes, v->len, NULL, a, &root, &err);
        if (rc)
            print_error("%s: %s at offset %zu\n", v->name, err.msg, err.offset);
        assert_int_equal(rc, 0);
        assert_int_equal(root->tag, v->request ? KMIP_TAG_REQUEST_MESSAGE : KMIP_TAG_RESPONSE_MESSAGE);
        assert_int_equal(ttlv_encoded_size(root), v->len);

        kms_buf_reset(&out);
        assert_int_equal(ttlv_encode(root, &out), 0);
        if (out.len != v->len || memcmp(out.data, v->bytes, v->len) != 0) {
            print_error("%s: re-encoding differs\n", v->name);
            fail();
        }

        kms_buf_reset(&txt);
        assert_int_equal(ttlv_print(root, false, &txt), 0);
        rc = ttlv_parse_text((const char *)txt.data, txt.len, a, &back, &err);
        if (rc)
            print_error("%s: parse_text: %s at %zu\n", v->name, err.msg, err.offset);
        assert_int_equal(rc, 0);
        assert_true(ttlv_equal(root, back));
        kms_buf_reset(&out);
        assert_int_equal(ttlv_encode(back, &out), 0);
        if (out.len != v->len || memcmp(out.data, v->bytes, v->len) != 0) {
            print_error("%s: encode(parse(print)) differs\n", v->name);
            fail();
        }
        kms_arena_reset(a);
    }
    kms_buf_dispose(&out);
    kms_buf_dispose(&txt);
    kms_arena_free(a);
}

typedef int (*to_form_cb)(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err);
typedef int (*from_form_cb)(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                            ttlv_item_t **root_out, kms_error_t *err);

/* TTLV -> form -> TTLV gives the vector's bytes, and form -> tree -> form
 * gives the same text, for every vector, compact and indented. */
static void form_round_trips(const char *form, to_form_cb to, from_form_cb from)
{
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t out, txt, again;
    kms_buf_init(&out, 0);
    kms_buf_init(&txt, 0);
    kms_buf_init(&again, 0);
    for (size_t i = 0; i < nvecs; i++) {
        struct vec *v = &vecs[i];
        for (unsigned flags = 0; flags <= TTLV_FORM_PRETTY; flags++) {
            ttlv_item_t *root = NULL, *back = NULL;
            kms_error_t err;
            assert_int_equal(ttlv_decode(v->bytes, v->len, NULL, a, &root, &err), 0);
            kms_buf_reset(&txt);
            int rc = to(root, flags, &txt, &err);
            if (rc)
                print_error("%s: to %s: %s\n", v->name, form, kms_error_msg(&err));
            assert_int_equal(rc, 0);
            rc = from((const char *)txt.data, txt.len, NULL, a, &back, &err);
            if (rc)
                print_error("%s: from %s: %s (offset %zu)\n%.*s\n", v->name, form, kms_error_msg(&err),
                            err.offset, (int)txt.len, (const char *)txt.data);
            assert_int_equal(rc, 0);
            kms_buf_reset(&out);
            assert_int_equal(ttlv_encode(back, &out), 0);
            if (out.len != v->len || memcmp(out.data, v->bytes, v->len) != 0) {
                print_error("%s: TTLV -> %s -> TTLV differs\n", v->name, form);
                fail();
            }
            kms_buf_reset(&again);
            assert_int_equal(to(back, flags, &again, &err), 0);
            assert_int_equal(again.len, txt.len);
            assert_memory_equal(again.data, txt.data, txt.len);
            kms_arena_reset(a);
        }
    }
    kms_buf_dispose(&out);
    kms_buf_dispose(&txt);
    kms_buf_dispose(&again);
    kms_arena_free(a);
}

static void test_json_round_trips(void **state)
{
    (void)state;
    form_round_trips("JSON", ttlv_to_json, ttlv_from_json);
}

static void test_xml_round_trips(void **state)
{
    (void)state;
    form_round_trips("XML", ttlv_to_xml, ttlv_from_xml);
}

/* "... (Fri Apr 27 10:12:21 CEST 2012)" at the end of a line -> seconds since
 * the epoch, honouring the zones the document uses. -1 when absent. */
static int64_t paren_date(const char *line, const char **open_out)
{
    static const char *mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const char *open = strrchr(line, '(');
    char wd[8], mon[8], zone[8];
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!open || sscanf(open, "(%3s %3s %d %d:%d:%d %7s %d)", wd, mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                        &tm.tm_sec, zone, &tm.tm_year) != 8)
        return -1;
    tm.tm_mon = -1;
    for (int m = 0; m < 12; m++)
        if (strcmp(mon, mons[m]) == 0)
            tm.tm_mon = m;
    assert_true(tm.tm_mon >= 0);
    tm.tm_year -= 1900;
    int64_t off = 0;
    if (strcmp(zone, "UTC") == 0 || strcmp(zone, "GMT") == 0)
        off = 0;
    else if (strcmp(zone, "CET") == 0)
        off = 3600;
    else if (strcmp(zone, "CEST") == 0)
        off = 7200;
    else
        fail_msg("unknown zone %s", zone);
    *open_out = open;
    return (int64_t)timegm(&tm) - off;
}

/* Compare one printed line with the document's; Date-Times by instant. */
static bool same_line(const char *mine, const char *doc)
{
    const char *dm = strstr(mine, "Type: Date-Time (0x09), Data: 0x");
    if (!dm)
        return strcmp(mine, doc) == 0;
    const char *om = NULL, *od = NULL;
    int64_t tm_mine = paren_date(mine, &om), tm_doc = paren_date(doc, &od);
    int64_t hex = (int64_t)strtoull(strstr(mine, "Data: 0x") + 8, NULL, 16);
    if (tm_mine != hex || tm_doc != hex)
        return false;
    return (size_t)(om - mine) == (size_t)(od - doc) && strncmp(mine, doc, (size_t)(om - mine)) == 0;
}

static void test_print_matches_document(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t txt;
    kms_buf_init(&txt, 0);
    size_t identical = 0, datelines = 0;
    for (size_t i = 0; i < nvecs; i++) {
        struct vec *v = &vecs[i];
        ttlv_item_t *root;
        kms_error_t err;
        assert_int_equal(ttlv_decode(v->bytes, v->len, NULL, a, &root, &err), 0);
        kms_buf_reset(&txt);
        assert_int_equal(ttlv_print(root, false, &txt), 0);
        assert_int_equal(kms_buf_append_byte(&txt, 0), 0);
        assert_true(v->ndump > 0);
        size_t k = 0, bad = 0, bigint_bad = 0;
        char *save = NULL;
        for (char *line = strtok_r((char *)txt.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save), k++) {
            assert_true(k < v->ndump);
            datelines += strstr(line, "Date-Time") != NULL;
            if (!same_line(line, v->dump[k])) {
                bad++;
                bigint_bad += strstr(line, "Type: Big Integer (0x04)") != NULL;
                if (i != 512)
                    print_error("%s line %zu:\n  mine: %.160s\n  doc:  %.160s\n", v->name, k + 1, line, v->dump[k]);
            }
        }
        assert_int_equal(k, v->ndump);
        if (i == 512) {
            /* The document's dump of message 512 (18.2) does not match its own
             * hex: it prints the Big Integers without their leading pad bytes
             * ("010001 (65537)" for 0000000000010001). All 7 differing lines
             * are those Big Integers; everything else matches. */
            assert_int_equal(bad, 7);
            assert_int_equal(bigint_bad, 7);
        } else {
            assert_int_equal(bad, 0);
            identical++;
        }
        kms_arena_reset(a);
    }
    assert_int_equal(identical, NVEC - 1);
    assert_true(datelines > 200);
    kms_buf_dispose(&txt);
    kms_arena_free(a);
}

/* With redact, no byte of any key material appears in the output. */
static void test_redaction(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t txt, hex;
    size_t with_keys = 0;
    kms_buf_init(&txt, 0);
    kms_buf_init(&hex, 0);
    for (size_t i = 0; i < nvecs; i++) {
        ttlv_item_t *root;
        kms_error_t err;
        assert_int_equal(ttlv_decode(vecs[i].bytes, vecs[i].len, NULL, a, &root, &err), 0);
        kms_buf_reset(&txt);
        assert_int_equal(ttlv_print(root, true, &txt), 0);
        assert_int_equal(kms_buf_append_byte(&txt, 0), 0);
        bool had = false;
        for (size_t k = 0; k < vecs[i].ndump; k++) {
            const char *l = vecs[i].dump[k];
            /* leaf values under these tags must be hidden */
            static const char *const secret[] = {"Tag: Key Material (", "Tag: Private Exponent (", "Tag: P (",
                                                 "Tag: Q (", "Tag: Prime Exponent P (", "Tag: Prime Exponent Q (",
                                                 "Tag: CRT Coefficient (", "Tag: Password ("};
            for (size_t s = 0; s < KMS_ARRAY_SIZE(secret); s++) {
                const char *p = strstr(l, secret[s]);
                const char *d = p ? strstr(p, "Data: ") : NULL;
                if (!d || strcmp(d, "Data:") == 0 || strlen(d + 6) < 6 || strncmp(d + 6, "0x", 2) == 0)
                    continue;
                /* the document's value text must not occur in the redacted print */
                char val[40];
                snprintf(val, sizeof(val), "%.32s", d + 6);
                if (strstr((char *)txt.data, val)) {
                    print_error("message %zu: '%s' printed despite redact\n", i, val);
                    fail();
                }
                had = true;
            }
        }
        if (had) {
            with_keys++;
            assert_non_null(strstr((char *)txt.data, "<redacted>"));
            /* a redacted print cannot be turned back into bytes */
            ttlv_item_t *back;
            assert_int_equal(ttlv_parse_text((char *)txt.data, txt.len - 1, a, &back, &err), KMS_ERR_PROTO);
            assert_non_null(strstr(err.msg, "redacted"));
        }
        /* and without redact nothing is hidden */
        kms_buf_reset(&txt);
        assert_int_equal(ttlv_print(root, false, &txt), 0);
        assert_int_equal(kms_buf_append_byte(&txt, 0), 0);
        assert_null(strstr((char *)txt.data, "<redacted>"));
        kms_arena_reset(a);
    }
    assert_true(with_keys >= 20);
    kms_buf_dispose(&txt);
    kms_buf_dispose(&hex);
    kms_arena_free(a);
}

/* Every proper prefix of every message is refused (framing never trusts
 * a short read), and frame_need gives each message's exact size. */
static void test_prefixes_and_framing(void **state)
{
    (void)state;
    kms_arena_t *a = kms_arena_new(0);
    for (size_t i = 0; i < nvecs; i += 7) {
        struct vec *v = &vecs[i];
        size_t total = 0;
        assert_int_equal(ttlv_frame_need(v->bytes, v->len, v->len, &total), 0);
        assert_int_equal(total, v->len);
        assert_int_equal(ttlv_frame_need(v->bytes, v->len, v->len - 1, &total), KMS_ERR_LIMIT);
        for (size_t cut = 0; cut < v->len; cut += 1 + cut / 16) {
            ttlv_item_t *root;
            kms_error_t err;
            assert_int_equal(ttlv_decode(v->bytes, cut, NULL, a, &root, &err), KMS_ERR_PROTO);
            assert_true(err.offset <= cut);
        }
        kms_arena_reset(a);
    }
    kms_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_json_round_trips),
        cmocka_unit_test(test_xml_round_trips),
        cmocka_unit_test(test_print_matches_document),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_prefixes_and_framing),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
