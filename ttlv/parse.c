/*
 * ttlv/parse.c: reads the printed form of ttlv/print.c back into a tree,
 * so that encode(parse(print(x))) reproduces x's bytes. Used by
 * `kmsctl ttlv encode` and by the round-trip tests and fuzzer.
 *
 * Input is one item per line; nesting is given by the indent (two spaces
 * per level). Tag and type are taken from the hex in parentheses, or from
 * the name when there is no hex ("Tag: Operation, Type: Enumeration,
 * Data: Create" works). Values are read in the printer's formats, plus a
 * few conveniences for hand-written input: decimal numbers, bare
 * enumeration names, true/false, Big Integers of any byte count
 * (sign-extended to a multiple of 8). Blank lines and lines starting with
 * '#' are skipped. Errors name the byte offset in the text and the line.
 *
 * It deliberately does not accept "<redacted>" values (there is nothing to
 * encode) and does not check KMIP semantics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ttlv/ttlv_int.h"

struct line {
    const char *p;   /* start of the line */
    size_t n;        /* length without the line end and trailing blanks */
    size_t off;      /* offset of p in the text */
    size_t no;       /* 1-based line number */
};

struct span {
    const char *p;
    size_t n;
};

static bool sp_eq(struct span s, const char *lit) { return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0; }

/* "0x" + 1..maxdig hex digits, exactly filling s. */
static bool parse_hexnum(struct span s, unsigned maxdig, uint64_t *v)
{
    return ttlv_form_hexnum(s.p, s.n, maxdig, v);
}

/* Optional '-', then decimal digits, within [min, max]. */
static bool parse_dec(struct span s, int64_t min, int64_t max, int64_t *v)
{
    return ttlv_form_decnum(s.p, s.n, min, max, v);
}

/* Splits "X (Y)" into X; a value without " (" stays whole. */
static struct span before_paren(struct span s)
{
    for (size_t i = 0; i + 1 < s.n; i++)
        if (s.p[i] == ' ' && s.p[i + 1] == '(' && s.p[s.n - 1] == ')')
            return (struct span){s.p, i};
    return s;
}

/* "Name (0xHEX)" / "(0xHEX)" / "0xHEX" -> number; otherwise not found. */
static bool paren_hex(struct span s, unsigned maxdig, uint64_t *v)
{
    if (s.n >= 2 && s.p[s.n - 1] == ')') {
        size_t i = s.n - 1;
        while (i > 0 && s.p[i - 1] != '(')
            i--;
        if (i == 0)
            return false;
        return parse_hexnum((struct span){s.p + i, s.n - 1 - i}, maxdig, v);
    }
    return parse_hexnum(s, maxdig, v);
}

static int perr(kms_error_t *err, const struct line *ln, const char *at, const char *what)
{
    size_t col = at ? (size_t)(at - ln->p) : 0;
    return kms_error_set_at(err, KMS_ERR_PROTO, ln->off + col, "line %zu: %s", ln->no, what);
}

/* Unquote a "..." text value (C escapes) into the arena. */
static int unquote(kms_arena_t *a, struct span s, uint8_t **out, size_t *n_out)
{
    if (s.n < 2 || s.p[0] != '"' || s.p[s.n - 1] != '"')
        return KMS_ERR_PROTO;
    uint8_t *b = kms_arena_alloc(a, s.n);
    if (!b)
        return KMS_ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 1; i + 1 < s.n; i++) {
        char c = s.p[i];
        if (c == '"')
            return KMS_ERR_PROTO; /* an unescaped quote inside */
        if (c != '\\') {
            b[o++] = (uint8_t)c;
            continue;
        }
        if (i + 2 >= s.n)
            return KMS_ERR_PROTO;
        c = s.p[++i];
        switch (c) {
        case 'n': b[o++] = '\n'; break;
        case 't': b[o++] = '\t'; break;
        case 'r': b[o++] = '\r'; break;
        case '"': b[o++] = '"'; break;
        case '\\': b[o++] = '\\'; break;
        case 'x': {
            if (i + 3 >= s.n)
                return KMS_ERR_PROTO;
            int h = ttlv_hexval(s.p[i + 1]), l = ttlv_hexval(s.p[i + 2]);
            if (h < 0 || l < 0)
                return KMS_ERR_PROTO;
            b[o++] = (uint8_t)(h << 4 | l);
            i += 2;
            break;
        }
        default:
            return KMS_ERR_PROTO;
        }
    }
    b[o] = 0;
    *out = b;
    *n_out = o;
    return 0;
}

static int parse_value(kms_arena_t *a, ttlv_item_t *it, struct span d, const struct line *ln,
                       kms_error_t *err)
{
    uint64_t u;
    int64_t sv;
    int rc;
    struct span head = before_paren(d);

    if (sp_eq(d, "<redacted>") && it->type != TTLV_STRUCTURE)
        return perr(err, ln, d.p, "a <redacted> value cannot be encoded");
    switch (it->type) {
    case TTLV_STRUCTURE:
        if (d.n == 0 || sp_eq(d, "null"))
            return 0;
        return perr(err, ln, d.p, "a Structure takes no value (\"null\" or nothing)");
    case TTLV_INTEGER:
        if (parse_hexnum(head, 8, &u))
            it->v.i32 = (int32_t)(uint32_t)u;
        else if (parse_dec(head, INT32_MIN, INT32_MAX, &sv))
            it->v.i32 = (int32_t)sv;
        else
            return perr(err, ln, d.p, "bad Integer (want 0x00000000 or a decimal)");
        return 0;
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL: {
        uint32_t ev;
        if (parse_hexnum(head, 8, &u))
            it->v.i32 = (int32_t)(uint32_t)u;
        else if (parse_dec(head, 0, UINT32_MAX, &sv))
            it->v.i32 = (int32_t)(uint32_t)sv;
        else if (it->type == TTLV_ENUMERATION && d.n < 128) {
            char name[128];
            memcpy(name, d.p, d.n);
            name[d.n] = 0;
            if (ttlv_enum_by_name(ttlv_naming_tag(it), name, &ev) != 0)
                return perr(err, ln, d.p, "unknown enumeration name for this tag");
            it->v.i32 = (int32_t)ev;
        } else
            return perr(err, ln, d.p, "bad value (want 0x00000000 or a decimal)");
        return 0;
    }
    case TTLV_LONG_INTEGER:
    case TTLV_DATE_TIME:
        if (parse_hexnum(head, 16, &u))
            it->v.i64 = (int64_t)u;
        else if (parse_dec(head, INT64_MIN, INT64_MAX, &sv))
            it->v.i64 = sv;
        else
            return perr(err, ln, d.p, "bad 64-bit value (want 0x0000000000000000 or a decimal)");
        return 0;
    case TTLV_BOOLEAN:
        if (sp_eq(d, "TRUE") || sp_eq(d, "true") || sp_eq(d, "True"))
            it->v.b = true;
        else if (sp_eq(d, "FALSE") || sp_eq(d, "false") || sp_eq(d, "False"))
            it->v.b = false;
        else
            return perr(err, ln, d.p, "bad Boolean (want TRUE or FALSE)");
        return 0;
    case TTLV_BYTE_STRING:
    case TTLV_BIG_INTEGER: {
        uint8_t *b;
        size_t n;
        struct span h = it->type == TTLV_BIG_INTEGER ? head : d;
        rc = ttlv_form_hexbytes(a, h.p, h.n, &b, &n);
        if (rc == KMS_ERR_NOMEM)
            return rc;
        if (rc)
            return perr(err, ln, d.p, "bad hex (want an even number of hex digits)");
        if (it->type == TTLV_BIG_INTEGER && (rc = ttlv_bigint_blocks(a, &b, &n)) != 0)
            return rc;
        it->v.bytes.ptr = b;
        it->v.bytes.len = n;
        return 0;
    }
    case TTLV_TEXT_STRING: {
        uint8_t *b;
        size_t n;
        if (d.n && d.p[0] == '"') {
            rc = unquote(a, d, &b, &n);
            if (rc == KMS_ERR_NOMEM)
                return rc;
            if (rc)
                return perr(err, ln, d.p, "bad quoted text (escapes: \\n \\t \\r \\\" \\\\ \\xNN)");
        } else {
            b = (uint8_t *)kms_arena_strndup(a, d.p, d.n);
            if (!b)
                return KMS_ERR_NOMEM;
            n = d.n;
        }
        size_t bad = ttlv_utf8_check(b, n);
        if (bad != n)
            return perr(err, ln, d.p, "Text String is not valid UTF-8 or contains NUL");
        it->v.bytes.ptr = b;
        it->v.bytes.len = n;
        return 0;
    }
    default:
        return perr(err, ln, NULL, "invalid type");
    }
}

/* Finds lit in s; returns its index or SIZE_MAX. */
static size_t find(struct span s, const char *lit)
{
    size_t m = strlen(lit);
    for (size_t i = 0; i + m <= s.n; i++)
        if (memcmp(s.p + i, lit, m) == 0)
            return i;
    return SIZE_MAX;
}

static int parse_line(kms_arena_t *a, const struct line *ln, size_t indent, ttlv_item_t *parent,
                      ttlv_item_t **item_out, kms_error_t *err)
{
    struct span s = {ln->p + indent, ln->n - indent};
    if (s.n < 5 || memcmp(s.p, "Tag: ", 5) != 0)
        return perr(err, ln, s.p, "expected \"Tag: \"");
    s.p += 5, s.n -= 5;
    size_t ti = find(s, ", Type: ");
    if (ti == SIZE_MAX)
        return perr(err, ln, s.p, "expected \", Type: \"");
    struct span tagsp = {s.p, ti};
    struct span rest = {s.p + ti + 8, s.n - ti - 8};
    size_t di = find(rest, ", Data:");
    if (di == SIZE_MAX)
        return perr(err, ln, rest.p, "expected \", Data:\"");
    struct span typesp = {rest.p, di};
    struct span data = {rest.p + di + 7, rest.n - di - 7};
    if (data.n && data.p[0] == ' ')
        data.p++, data.n--;

    uint64_t u;
    uint32_t tag;
    char name[128];
    if (paren_hex(tagsp, 6, &u)) {
        tag = (uint32_t)u;
    } else {
        if (tagsp.n >= sizeof(name))
            return perr(err, ln, tagsp.p, "tag name too long");
        memcpy(name, tagsp.p, tagsp.n);
        name[tagsp.n] = 0;
        if (ttlv_tag_by_name(name, &tag) != 0)
            return perr(err, ln, tagsp.p, "unknown tag name (give the hex: \"Name (0x42XXXX)\")");
    }
    enum ttlv_type type;
    if (paren_hex(typesp, 2, &u)) {
        if (!ttlv_type_name((enum ttlv_type)u))
            return perr(err, ln, typesp.p, "unknown item type");
        type = (enum ttlv_type)u;
    } else {
        if (typesp.n >= sizeof(name))
            return perr(err, ln, typesp.p, "type name too long");
        memcpy(name, typesp.p, typesp.n);
        name[typesp.n] = 0;
        if (ttlv_type_by_name(name, &type) != 0)
            return perr(err, ln, typesp.p, "unknown type name");
    }
    /* linked first, so that an Attribute Value can see its Attribute Name */
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, type);
    if (!it)
        return KMS_ERR_NOMEM;
    int rc = parse_value(a, it, data, ln, err);
    if (rc)
        return rc;
    *item_out = it;
    return 0;
}

int ttlv_parse_text(const char *text, size_t len, kms_arena_t *arena, ttlv_item_t **root_out,
                    kms_error_t *err_out)
{
    ttlv_item_t *stack[TTLV_HARD_MAX_DEPTH];
    size_t open = 0; /* number of levels in stack */
    ttlv_item_t *root = NULL;
    size_t pos = 0, lineno = 0;
    int rc = 0;

    kms_error_clear(err_out);
    if (!arena || !root_out || (!text && len))
        return kms_error_set_at(err_out, KMS_ERR_INVAL, 0, "invalid arguments");
    *root_out = NULL;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        struct line ln = {text + pos, end - pos, pos, ++lineno};
        pos = nl ? end + 1 : len;
        while (ln.n && (ln.p[ln.n - 1] == ' ' || ln.p[ln.n - 1] == '\r' || ln.p[ln.n - 1] == '\t'))
            ln.n--;
        size_t indent = 0;
        while (indent < ln.n && ln.p[indent] == ' ')
            indent++;
        if (indent == ln.n || ln.p[indent] == '#')
            continue;
        if (memchr(ln.p, 0, ln.n))
            return perr(err_out, &ln, memchr(ln.p, 0, ln.n), "NUL byte in text");
        if (indent % 2)
            return perr(err_out, &ln, ln.p + indent, "indent must be two spaces per level");
        size_t level = indent / 2;
        if (level >= TTLV_HARD_MAX_DEPTH)
            return perr(err_out, &ln, ln.p + indent, "nested too deep");
        if (level == 0 && root)
            return perr(err_out, &ln, ln.p, "more than one top-level item");
        if (level > open || (level > 0 && stack[level - 1]->type != TTLV_STRUCTURE))
            return perr(err_out, &ln, ln.p + indent, "indent does not follow a Structure");
        ttlv_item_t *it = NULL;
        rc = parse_line(arena, &ln, indent, level ? stack[level - 1] : NULL, &it, err_out);
        if (rc == KMS_ERR_NOMEM)
            return kms_error_set_at(err_out, rc, ln.off, "line %zu: out of memory", ln.no);
        if (rc)
            return rc;
        if (level == 0)
            root = it;
        stack[level] = it;
        open = level + 1;
    }
    if (!root)
        return kms_error_set_at(err_out, KMS_ERR_PROTO, len, "no item in the text");
    *root_out = root;
    return 0;
}
