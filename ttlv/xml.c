/*
 * ttlv/xml.c: the XML message encoding of the KMIP Profiles (1.3/1.4),
 * read with libexpat and written here, over the ttlv_item_t tree.
 *
 * Every item is one element named by its normalized tag name, with a
 * "type" attribute (left out for a Structure, which is also what its
 * absence means) and, except for a Structure, a "value" attribute holding
 * the scalar of ttlv/form.c; a Structure's items are its child elements.
 * A tag the tables do not know is a <TTLV tag="0x540001" ...> element, as
 * the KMIP test-case documents write vendor extensions:
 *   <BatchItem>
 *     <Operation type="Enumeration" value="Create"/>
 *     <VendorExtension><TTLV tag="0x540001" type="TextString" value="na"/></VendorExtension>
 *   </BatchItem>
 *
 * Reading is streaming (expat callbacks build the tree as elements open),
 * so the depth and item limits stop a hostile document early, and errors
 * carry the byte offset of the offending element. A DOCTYPE is refused
 * outright: no DTD, no entity can be declared, so none can expand. Text
 * between elements must be whitespace; comments and processing
 * instructions are ignored. Expat allocates through ttlv/form.c's wiping
 * allocator, since a request may hold key material.
 *
 * Writing is done here because expat only reads: elements and attributes
 * with the five markup characters escaped, and tab, line feed and carriage
 * return as character references (an XML parser would otherwise turn them
 * into spaces). Text XML 1.0 cannot carry (other control characters,
 * U+FFFE, U+FFFF) is refused with KMS_ERR_NOTSUP rather than altered.
 *
 * It deliberately does not check KMIP semantics, as the TTLV decoder.
 */
#include <expat.h>
#include <stdio.h>
#include <string.h>

#include "ttlv/ttlv_int.h"

/* ---------------------------------------------------------------- decode */
struct xdec {
    XML_Parser p;
    kms_arena_t *arena;
    size_t max_depth, max_items, items, depth;
    size_t vendor;       /* open Vendor Extension structures */
    ttlv_item_t *root, *cur;
    kms_error_t *err;
    int rc;
};

/* Records the first error and stops the parser; returns the code. */
static int xfail(struct xdec *d, int code, const ttlv_item_t *it, const char *what)
{
    if (d->rc)
        return d->rc;
    d->rc = ttlv_form_fail(d->err, code, "XML", (size_t)XML_GetCurrentByteIndex(d->p), it, what);
    XML_StopParser(d->p, XML_FALSE);
    return d->rc;
}

/* The tag of an element: its name, or for <TTLV> the tag attribute. */
static int elem_tag(struct xdec *d, const char *name, const char *tag_attr, uint32_t *tag_out)
{
    char msg[160];
    uint64_t u;
    if (strcmp(name, "TTLV") != 0) {
        if (tag_attr) {
            return xfail(d, KMS_ERR_PROTO, d->cur, "a tag attribute belongs only on a <TTLV> element");
        }
        if (ttlv_tag_by_norm(name, tag_out) == 0)
            return 0;
        snprintf(msg, sizeof(msg), "unknown tag name <%.64s> (unknown tags are <TTLV tag=\"0x42XXXX\">)",
                 name);
        return xfail(d, KMS_ERR_PROTO, d->cur, msg);
    }
    if (!tag_attr || strlen(tag_attr) != 8 || !ttlv_form_hexnum(tag_attr, 8, 6, &u)) {
        return xfail(d, KMS_ERR_PROTO, d->cur, "<TTLV> needs tag=\"0x\" + 6 hex digits");
    }
    if (!ttlv_form_tag_ok((uint32_t)u, d->vendor > 0)) {
        snprintf(msg, sizeof(msg), "tag %s is neither 0x42xxxx nor 0x54xxxx", tag_attr);
        return xfail(d, KMS_ERR_PROTO, d->cur, msg);
    }
    *tag_out = (uint32_t)u;
    return 0;
}

static int start_item(struct xdec *d, const XML_Char *name, const XML_Char **atts)
{
    const char *tag_attr = NULL, *type_attr = NULL, *value_attr = NULL, *why = NULL;
    enum ttlv_type type = TTLV_STRUCTURE;
    uint32_t tag;
    char msg[160];

    if (d->depth + 1 > d->max_depth) {
        snprintf(msg, sizeof(msg), "nesting deeper than %zu", d->max_depth);
        return xfail(d, KMS_ERR_LIMIT, d->cur, msg);
    }
    if (d->items >= d->max_items) {
        snprintf(msg, sizeof(msg), "more than %zu items", d->max_items);
        return xfail(d, KMS_ERR_LIMIT, d->cur, msg);
    }
    if (d->cur && d->cur->type != TTLV_STRUCTURE)
        return xfail(d, KMS_ERR_PROTO, d->cur, "only a Structure contains elements");
    for (size_t i = 0; atts[i]; i += 2) {
        if (strcmp(atts[i], "tag") == 0) {
            tag_attr = atts[i + 1];
        } else if (strcmp(atts[i], "type") == 0) {
            type_attr = atts[i + 1];
        } else if (strcmp(atts[i], "value") == 0) {
            value_attr = atts[i + 1];
        } else {
            snprintf(msg, sizeof(msg), "unknown attribute %.32s (an item has type and value)", atts[i]);
            return xfail(d, KMS_ERR_PROTO, d->cur, msg);
        }
    }
    if (elem_tag(d, name, tag_attr, &tag) != 0)
        return d->rc;
    if (type_attr && ttlv_type_by_norm(type_attr, &type) != 0) {
        snprintf(msg, sizeof(msg), "unknown type \"%.32s\" (Structure, Integer, LongInteger, BigInteger, "
                 "Enumeration, Boolean, TextString, ByteString, DateTime, Interval)", type_attr);
        return xfail(d, KMS_ERR_PROTO, d->cur, msg);
    }
    /* linked before its value is read, so an Attribute Value sees its Attribute Name */
    ttlv_item_t *it = ttlv_item_alloc(d->arena, d->cur, tag, type);
    if (!it)
        return xfail(d, KMS_ERR_NOMEM, d->cur, "out of memory (arena limit)");
    it->offset = (size_t)XML_GetCurrentByteIndex(d->p);
    d->items++;
    if (type == TTLV_STRUCTURE && value_attr)
        return xfail(d, KMS_ERR_PROTO, it, "a Structure has no value attribute");
    if (type != TTLV_STRUCTURE) {
        if (!value_attr)
            return xfail(d, KMS_ERR_PROTO, it, "an item without a value attribute");
        struct ttlv_fval v = {.kind = TTLV_FVAL_TEXT, .s = value_attr, .n = strlen(value_attr)};
        int rc = ttlv_fval_parse(it, TTLV_FORM_XML, &v, d->arena, &why);
        if (rc)
            return xfail(d, rc, it, rc == KMS_ERR_NOMEM ? "out of memory (arena limit)" : why);
    }
    if (!d->root)
        d->root = it;
    if (type == TTLV_STRUCTURE && tag == KMIP_TAG_VENDOR_EXTENSION)
        d->vendor++;
    d->cur = it;
    d->depth++;
    return 0;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xdec *d = ud;
    if (!d->rc)
        start_item(d, name, atts);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct xdec *d = ud;
    (void)name; /* expat has checked that it matches the start */
    if (d->rc || !d->cur)
        return;
    if (d->cur->type == TTLV_STRUCTURE && d->cur->tag == KMIP_TAG_VENDOR_EXTENSION)
        d->vendor--;
    d->cur = d->cur->parent;
    d->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct xdec *d = ud;
    for (int i = 0; !d->rc && i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            xfail(d, KMS_ERR_PROTO, d->cur, "text between elements (values go in value=\"...\")");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    xfail(ud, KMS_ERR_PROTO, NULL, "a DOCTYPE is not allowed");
}

/* Input is fed in pieces: XML_Parse takes an int length. */
#define XML_CHUNK (1u << 20)

int ttlv_from_xml(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                  ttlv_item_t **root_out, kms_error_t *err)
{
    static const XML_Memory_Handling_Suite mem = {ttlv_form_malloc, ttlv_form_realloc, ttlv_form_free};
    struct xdec d = {.arena = arena, .err = err};
    int rc = ttlv_decode_begin(text, len, lim, arena, root_out, "XML", &d.max_depth, &d.max_items, err);
    if (rc)
        return rc;
    d.p = XML_ParserCreate_MM(NULL, &mem, NULL);
    if (!d.p)
        return kms_error_set_at(err, KMS_ERR_NOMEM, 0, "XML: out of memory");
    XML_SetUserData(d.p, &d);
    XML_SetElementHandler(d.p, on_start, on_end);
    XML_SetCharacterDataHandler(d.p, on_text);
    XML_SetStartDoctypeDeclHandler(d.p, on_doctype);

    size_t pos = 0;
    enum XML_Status st = XML_STATUS_OK;
    do {
        size_t n = len - pos < XML_CHUNK ? len - pos : XML_CHUNK;
        st = XML_Parse(d.p, text ? text + pos : "", (int)n, pos + n == len);
        pos += n;
    } while (st == XML_STATUS_OK && pos < len);
    if (st != XML_STATUS_OK && !d.rc) {
        enum XML_Error e = XML_GetErrorCode(d.p);
        XML_Index at = XML_GetCurrentByteIndex(d.p); /* -1 when nothing was parsed */
        d.rc = kms_error_set_at(err, e == XML_ERROR_NO_MEMORY ? KMS_ERR_NOMEM : KMS_ERR_PROTO,
                                at < 0 ? len : (size_t)at, "XML line %lu column %lu: %s",
                                (unsigned long)XML_GetCurrentLineNumber(d.p),
                                (unsigned long)XML_GetCurrentColumnNumber(d.p), XML_ErrorString(e));
    }
    XML_ParserFree(d.p);
    if (d.rc)
        return d.rc;
    *root_out = d.root;
    return 0;
}

/* ---------------------------------------------------------------- encode */
/*
 * Attribute text with markup escaped. XML 1.0 has no way to write other
 * C0 controls or U+FFFE / U+FFFF (EF BF BE / EF BF BF in UTF-8).
 */
static int put_attr(kms_buf_t *out, const char *s, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&quot;"; break;
        case '\t': esc = "&#9;"; break;
        case '\n': esc = "&#10;"; break;
        case '\r': esc = "&#13;"; break;
        default:
            if (c < 0x20 || (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBF &&
                             ((unsigned char)s[i + 2] & 0xFE) == 0xBE))
                return KMS_ERR_NOTSUP;
        }
        rc = esc ? kms_buf_append(out, esc, strlen(esc)) : kms_buf_append_byte(out, c);
    }
    return rc;
}

static int put_indent(kms_buf_t *out, unsigned flags, size_t depth)
{
    int rc = 0;
    for (size_t i = 1; rc == 0 && (flags & TTLV_FORM_PRETTY) && i < depth; i++)
        rc = kms_buf_append(out, "  ", 2);
    return rc;
}

static int put_item(const ttlv_item_t *it, unsigned flags, size_t depth, kms_buf_t *sc, kms_buf_t *out)
{
    char nb[TTLV_NORM_MAX], elem[TTLV_NORM_MAX];
    struct ttlv_fval v;
    const char *tname = ttlv_type_norm(it->type);
    const char *nl = (flags & TTLV_FORM_PRETTY) ? "\n" : "";
    int rc;

    if (depth > TTLV_HARD_MAX_DEPTH)
        return KMS_ERR_LIMIT;
    if (!tname || it->tag > 0xFFFFFF)
        return KMS_ERR_INVAL;
    const char *name = ttlv_tag_norm(it->tag, nb);
    snprintf(elem, sizeof(elem), "%s", name ? name : "TTLV");
    if ((rc = put_indent(out, flags, depth)) != 0 || (rc = kms_buf_printf(out, "<%s", elem)) != 0)
        return rc;
    if (!name && (rc = kms_buf_printf(out, " tag=\"0x%06X\"", (unsigned)it->tag)) != 0)
        return rc;
    if (it->type == TTLV_STRUCTURE) {
        if (!it->first)
            return kms_buf_printf(out, "/>%s", nl);
        if ((rc = kms_buf_printf(out, ">%s", nl)) != 0)
            return rc;
        for (const ttlv_item_t *c = it->first; c; c = c->next)
            if ((rc = put_item(c, flags, depth + 1, sc, out)) != 0)
                return rc;
        if ((rc = put_indent(out, flags, depth)) != 0)
            return rc;
        return kms_buf_printf(out, "</%s>%s", elem, nl);
    }
    size_t n = it->v.bytes.len;
    if (it->type == TTLV_TEXT_STRING && ttlv_utf8_check(it->v.bytes.ptr, n) != n)
        return KMS_ERR_INVAL; /* only a hand-built tree */
    if ((rc = ttlv_fval_format(it, TTLV_FORM_XML, sc, &v)) != 0 ||
        (rc = kms_buf_printf(out, " type=\"%s\" value=\"", tname)) != 0)
        return rc;
    if (v.kind == TTLV_FVAL_INT)
        rc = kms_buf_printf(out, "%lld", (long long)v.i);
    else if (v.kind == TTLV_FVAL_BOOL)
        rc = kms_buf_printf(out, "%s", v.b ? "true" : "false");
    else
        rc = put_attr(out, v.s, v.n);
    kms_wipe(sc->data, sc->len); /* the hex of a key must not outlive its copy */
    return rc ? rc : kms_buf_printf(out, "\"/>%s", nl);
}

int ttlv_to_xml(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err)
{
    kms_buf_t sc;
    kms_error_clear(err);
    if (!root || !out)
        return kms_error_set(err, KMS_ERR_INVAL, "invalid arguments");
    size_t before = out->len;
    kms_buf_init(&sc, 0);
    int rc = put_item(root, flags, 1, &sc, out);
    kms_buf_dispose_wipe(&sc);
    if (rc) {
        if (out->data && out->len > before)
            kms_wipe(out->data + before, out->len - before);
        out->len = before;
        return kms_error_set(err, rc, "XML: cannot write the message: %s",
                             rc == KMS_ERR_NOTSUP ? "a Text String holds a character XML 1.0 cannot carry"
                                                  : kms_strerror(rc));
    }
    return 0;
}
