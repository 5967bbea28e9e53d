/*
 * ttlv/json.c: the JSON message encoding of the KMIP Profiles (1.3/1.4),
 * read and written with libjansson over the ttlv_item_t tree.
 *
 * Every item is one JSON object with the members "tag" (normalized tag
 * name, or "0x" + 6 hex digits for a tag the tables do not know), "type"
 * (normalized type name; left out for a Structure, which is also what its
 * absence means) and "value" (an array of items for a Structure, otherwise
 * the scalar of ttlv/form.c):
 *   {"tag":"BatchItem","value":[
 *     {"tag":"Operation","type":"Enumeration","value":"Create"}, ...]}
 * Input is parsed whole by jansson (duplicate members refused), then
 * walked under the caller's depth and item limits. Any other member, a
 * JSON real, null, or a value of the wrong JSON kind is refused.
 *
 * Jansson keeps no positions for values, so errors past the syntax name
 * the item's path instead of a byte offset. A syntax error is told by
 * its line, column and kind, never with jansson's own text, which quotes
 * the token "near" the error: in a request that token can be a password
 * or key material, and the message goes to the log. Jansson's allocator is set,
 * once, to ttlv/form.c's, which wipes every block before freeing it: a
 * parsed request may hold key material in jansson's strings.
 *
 * It deliberately does not check KMIP semantics, as the TTLV decoder.
 */
#include <jansson.h>
#include <string.h>
#include <threads.h>

#include "ttlv/ttlv_int.h"

/*
 * json_set_alloc_funcs() is process-wide. Switching is safe at any time:
 * both allocators hand out plain malloc blocks, so a block allocated
 * before the switch is freed correctly after it (and is then wiped too).
 */
static once_flag alloc_once = ONCE_FLAG_INIT;
static void alloc_init(void) { json_set_alloc_funcs(ttlv_form_malloc, ttlv_form_free); }

/* ---------------------------------------------------------------- decode */
/* What kind of syntax error jansson found, without quoting the input. */
static const char *syntax_error(enum json_error_code c)
{
    switch (c) {
    case json_error_out_of_memory: return "out of memory";
    case json_error_stack_overflow: return "nested too deeply";
    case json_error_invalid_utf8: return "invalid UTF-8";
    case json_error_premature_end_of_input: return "premature end of input";
    case json_error_end_of_input_expected: return "text after the message";
    case json_error_null_character: return "NUL character";
    case json_error_duplicate_key: return "duplicate member";
    case json_error_numeric_overflow: return "number out of range";
    default: return "invalid syntax";
    }
}

struct jdec {
    kms_arena_t *arena;
    size_t max_depth, max_items, items;
    kms_error_t *err;
};

static int jfail(struct jdec *d, int code, const ttlv_item_t *it, const char *what)
{
    return ttlv_form_fail(d->err, code, "JSON", KMS_ERROR_NO_OFFSET, it, what);
}

/* The tag named by a "tag" member: a normalized name or "0x" + 6 hex digits. */
static int read_tag(struct jdec *d, const json_t *jt, const ttlv_item_t *parent, bool vendor,
                    uint32_t *tag_out)
{
    char msg[160];
    uint64_t u;
    const char *s = json_string_value(jt);
    size_t n = s ? json_string_length(jt) : 0;
    if (!s)
        return jfail(d, KMS_ERR_PROTO, parent, "\"tag\" must be a string");
    if (n == 8 && ttlv_form_hexnum(s, n, 6, &u)) {
        if (!ttlv_form_tag_ok((uint32_t)u, vendor)) {
            snprintf(msg, sizeof(msg), "tag %.8s is neither 0x42xxxx nor 0x54xxxx", s);
            return jfail(d, KMS_ERR_PROTO, parent, msg);
        }
        *tag_out = (uint32_t)u;
        return 0;
    }
    if (ttlv_tag_by_norm(s, tag_out) != 0) {
        snprintf(msg, sizeof(msg), "unknown tag name \"%.64s\" (unknown tags are written 0x42XXXX)", s);
        return jfail(d, KMS_ERR_PROTO, parent, msg);
    }
    return 0;
}

static int dec_item(struct jdec *d, json_t *o, ttlv_item_t *parent, size_t depth, bool vendor,
                    ttlv_item_t **out);

static int dec_value(struct jdec *d, json_t *jv, ttlv_item_t *it, size_t depth, bool vendor)
{
    struct ttlv_fval v = {.kind = TTLV_FVAL_TEXT};
    const char *why = NULL;
    if (it->type == TTLV_STRUCTURE) {
        size_t i;
        json_t *c;
        if (!json_is_array(jv))
            return jfail(d, KMS_ERR_PROTO, it, "the value of a Structure must be an array");
        vendor = vendor || it->tag == KMIP_TAG_VENDOR_EXTENSION;
        json_array_foreach(jv, i, c) {
            ttlv_item_t *child;
            int rc = dec_item(d, c, it, depth + 1, vendor, &child);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (json_is_integer(jv)) {
        v.kind = TTLV_FVAL_INT;
        v.i = json_integer_value(jv);
    } else if (json_is_boolean(jv)) {
        v.kind = TTLV_FVAL_BOOL;
        v.b = json_is_true(jv);
    } else if (json_is_string(jv)) {
        v.s = json_string_value(jv);
        v.n = json_string_length(jv);
    } else {
        return jfail(d, KMS_ERR_PROTO, it, "\"value\" must be an integer, true/false or a string");
    }
    int rc = ttlv_fval_parse(it, TTLV_FORM_JSON, &v, d->arena, &why);
    if (rc == KMS_ERR_PROTO)
        return jfail(d, rc, it, why);
    return rc;
}

static int dec_item(struct jdec *d, json_t *o, ttlv_item_t *parent, size_t depth, bool vendor,
                    ttlv_item_t **out)
{
    const char *key;
    json_t *m, *jt = NULL, *jty = NULL, *jv = NULL;
    enum ttlv_type type = TTLV_STRUCTURE;
    uint32_t tag;
    char msg[160];

    if (!json_is_object(o))
        return jfail(d, KMS_ERR_PROTO, parent, "an item must be a JSON object");
    if (depth > d->max_depth) {
        snprintf(msg, sizeof(msg), "nesting deeper than %zu", d->max_depth);
        return jfail(d, KMS_ERR_LIMIT, parent, msg);
    }
    if (d->items >= d->max_items) {
        snprintf(msg, sizeof(msg), "more than %zu items", d->max_items);
        return jfail(d, KMS_ERR_LIMIT, parent, msg);
    }
    json_object_foreach(o, key, m) {
        if (strcmp(key, "tag") == 0) {
            jt = m;
        } else if (strcmp(key, "type") == 0) {
            jty = m;
        } else if (strcmp(key, "value") == 0) {
            jv = m;
        } else {
            snprintf(msg, sizeof(msg), "unknown member \"%.32s\" (an item has tag, type, value)", key);
            return jfail(d, KMS_ERR_PROTO, parent, msg);
        }
    }
    if (!jt)
        return jfail(d, KMS_ERR_PROTO, parent, "an item without \"tag\"");
    int rc = read_tag(d, jt, parent, vendor, &tag);
    if (rc)
        return rc;
    if (jty && (!json_is_string(jty) || ttlv_type_by_norm(json_string_value(jty), &type) != 0)) {
        snprintf(msg, sizeof(msg), "unknown type \"%.32s\" (Structure, Integer, LongInteger, "
                 "BigInteger, Enumeration, Boolean, TextString, ByteString, DateTime, Interval)",
                 json_is_string(jty) ? json_string_value(jty) : "?");
        return jfail(d, KMS_ERR_PROTO, parent, msg);
    }
    /* linked before its value is read, so an Attribute Value sees its Attribute Name */
    ttlv_item_t *it = ttlv_item_alloc(d->arena, parent, tag, type);
    if (!it)
        return jfail(d, KMS_ERR_NOMEM, parent, "out of memory (arena limit)");
    d->items++;
    if (!jv)
        return jfail(d, KMS_ERR_PROTO, it, "an item without \"value\"");
    rc = dec_value(d, jv, it, depth, vendor);
    if (rc == KMS_ERR_NOMEM)
        return jfail(d, rc, it, "out of memory (arena limit)");
    if (rc)
        return rc;
    *out = it;
    return 0;
}

int ttlv_from_json(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                   ttlv_item_t **root_out, kms_error_t *err)
{
    struct jdec d = {.arena = arena, .err = err};
    json_error_t je;
    ttlv_item_t *root = NULL;
    int rc = ttlv_decode_begin(text, len, lim, arena, root_out, "JSON", &d.max_depth, &d.max_items, err);
    if (rc)
        return rc;
    call_once(&alloc_once, alloc_init);
    json_t *doc = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        enum json_error_code c = json_error_code(&je);
        int code = c == json_error_out_of_memory ? KMS_ERR_NOMEM
                   : c == json_error_stack_overflow ? KMS_ERR_LIMIT
                                                    : KMS_ERR_PROTO;
        return kms_error_set_at(err, code, (size_t)je.position, "JSON line %d column %d: %s", je.line,
                                je.column, syntax_error(c));
    }
    rc = dec_item(&d, doc, NULL, 1, false, &root);
    json_decref(doc);
    if (rc)
        return rc;
    *root_out = root;
    return 0;
}

/* ---------------------------------------------------------------- encode */
/* The scalar of a non-Structure item as a jansson value. */
static int enc_scalar(const ttlv_item_t *it, kms_buf_t *sc, json_t **jv_out)
{
    struct ttlv_fval v;
    int rc = ttlv_fval_format(it, TTLV_FORM_JSON, sc, &v);
    if (rc)
        return rc;
    if (v.kind == TTLV_FVAL_INT)
        *jv_out = json_integer(v.i);
    else if (v.kind == TTLV_FVAL_BOOL)
        *jv_out = json_boolean(v.b);
    else if (!(*jv_out = json_stringn(v.s, v.n)) && ttlv_utf8_check((const uint8_t *)v.s, v.n) != v.n)
        return KMS_ERR_INVAL; /* jansson refuses what is not UTF-8 (only a hand-built tree) */
    kms_wipe(sc->data, sc->len); /* the hex of a key must not outlive its copy */
    return *jv_out ? 0 : KMS_ERR_NOMEM;
}

static int enc_item(const ttlv_item_t *it, kms_buf_t *sc, size_t depth, json_t **out)
{
    char nb[TTLV_NORM_MAX], hexname[16];
    json_t *o = NULL, *jv = NULL;
    const char *tname = ttlv_type_norm(it->type);
    const char *name = ttlv_tag_norm(it->tag, nb);
    int rc = KMS_ERR_NOMEM;

    if (depth > TTLV_HARD_MAX_DEPTH)
        return KMS_ERR_LIMIT;
    if (!tname || it->tag > 0xFFFFFF)
        return KMS_ERR_INVAL;
    if (!name) {
        snprintf(hexname, sizeof(hexname), "0x%06X", (unsigned)it->tag);
        name = hexname;
    }
    if (!(o = json_object()) || json_object_set_new(o, "tag", json_string(name)) != 0)
        goto out;
    if (it->type != TTLV_STRUCTURE) {
        if (json_object_set_new(o, "type", json_string(tname)) != 0)
            goto out;
        if ((rc = enc_scalar(it, sc, &jv)) != 0)
            goto out;
    } else if ((jv = json_array()) != NULL) {
        for (const ttlv_item_t *c = it->first; c; c = c->next) {
            json_t *jc = NULL;
            if ((rc = enc_item(c, sc, depth + 1, &jc)) != 0)
                goto out;
            if (json_array_append_new(jv, jc) != 0) {
                rc = KMS_ERR_NOMEM;
                goto out;
            }
        }
    }
    rc = KMS_ERR_NOMEM;
    /* set_new takes jv whatever it returns */
    if (jv && json_object_set_new(o, "value", jv) == 0)
        rc = 0;
    jv = NULL;
out:
    json_decref(jv);
    if (rc)
        json_decref(o);
    else
        *out = o;
    return rc;
}

struct dump_ctx {
    kms_buf_t *out;
    int rc;
};

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct dump_ctx *c = data;
    c->rc = kms_buf_append(c->out, buf, size);
    return c->rc ? -1 : 0;
}

int ttlv_to_json(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err)
{
    kms_buf_t sc;
    int rc = 0;
    kms_error_clear(err);
    if (!root || !out)
        return kms_error_set(err, KMS_ERR_INVAL, "invalid arguments");
    call_once(&alloc_once, alloc_init);
    size_t before = out->len;
    kms_buf_init(&sc, 0);
    json_t *doc = NULL;
    rc = enc_item(root, &sc, 1, &doc);
    kms_buf_dispose_wipe(&sc);
    if (rc == 0) {
        struct dump_ctx c = {out, 0};
        size_t jflags = (flags & TTLV_FORM_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT;
        if (json_dump_callback(doc, dump_cb, &c, jflags) != 0)
            rc = c.rc ? c.rc : KMS_ERR_NOMEM;
        json_decref(doc);
    }
    if (rc) {
        if (out->data && out->len > before)
            kms_wipe(out->data + before, out->len - before);
        out->len = before;
        return kms_error_set(err, rc, "JSON: cannot write the message: %s", kms_strerror(rc));
    }
    return 0;
}
