/*
 * kmsctl/cmd_key.c: `kmsctl key list|show|create|activate|revoke|destroy`.
 *
 * Speaks KMIP over mutual TLS to kmsd (kmsctl/kmip_client.c) with the admin
 * client certificate `kmsctl init` wrote (DIR/pki/client.crt and .key, DIR
 * being the config file's directory; --cert/--key choose another identity),
 * so kmsd's access control and audit log apply as to any client. It shows
 * attributes only: it never asks for, and never prints, key material.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmip_client.h"
#include "kmsctl/kmsctl.h"

static void usage_key(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] key list [--name NAME] [--max N]\n"
            "       kmsctl [--config FILE] [--json] key show ID\n"
            "       kmsctl [--config FILE] [--json] key create [--name NAME] [--length 128|192|256]\n"
            "       kmsctl [--config FILE] key activate ID\n"
            "       kmsctl [--config FILE] key revoke ID [--reason unspecified|compromise|superseded|"
            "cessation]\n"
            "       kmsctl [--config FILE] key destroy ID\n"
            "common options: --server HOST:PORT  --cert FILE --key FILE  --ca FILE\n\n"
            "KMIP over TLS as the admin client of `kmsctl init` (DIR/pki/client.crt);\n"
            "kmsd's tenant rules apply to that identity like to any client. Attributes\n"
            "only: key material is never requested or printed.\n\n"
            "exit status: 0 ok, 1 kmsd answered with an error, 2 usage, 3 cannot connect\n");
}

/* ------------------------------------------------------------ printing */
static void put_json_str(kms_buf_t *b, const char *s, size_t n)
{
    kms_buf_append_byte(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            kms_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            kms_buf_printf(b, "\\u%04x", ch);
        else
            kms_buf_append_byte(b, ch);
    }
    kms_buf_append_byte(b, '"');
}

/* One value as text (json: as a JSON value). `tag` names enums when the
 * item is an Attribute Value (whose own tag says nothing). */
static void fmt_value(kms_buf_t *b, uint32_t tag, const ttlv_item_t *v, bool json)
{
    char tmp[64];
    switch (v->type) {
    case TTLV_TEXT_STRING:
        if (json)
            put_json_str(b, ttlv_text(v), v->v.bytes.len);
        else
            kms_buf_append(b, v->v.bytes.ptr, v->v.bytes.len);
        break;
    case TTLV_INTEGER:
        if (tag == KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK)
            kms_buf_printf(b, json ? "%u" : "0x%08x", ttlv_u32(v));
        else
            kms_buf_printf(b, "%d", v->v.i32);
        break;
    case TTLV_INTERVAL:
        kms_buf_printf(b, "%u", ttlv_u32(v));
        break;
    case TTLV_LONG_INTEGER:
        kms_buf_printf(b, "%lld", (long long)v->v.i64);
        break;
    case TTLV_ENUMERATION: {
        const char *n = ttlv_enum_name(tag, ttlv_u32(v));
        if (!n) {
            snprintf(tmp, sizeof(tmp), "0x%08x", ttlv_u32(v));
            n = tmp;
        }
        if (json)
            put_json_str(b, n, strlen(n));
        else
            kms_buf_printf(b, "%s", n);
        break;
    }
    case TTLV_BOOLEAN:
        kms_buf_printf(b, "%s", v->v.b ? "true" : "false");
        break;
    case TTLV_DATE_TIME: {
        time_t t = (time_t)v->v.i64;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (json)
            put_json_str(b, tmp, strlen(tmp));
        else
            kms_buf_printf(b, "%s", tmp);
        break;
    }
    case TTLV_BYTE_STRING:
    case TTLV_BIG_INTEGER: {
        if (json)
            kms_buf_append_byte(b, '"');
        for (size_t i = 0; i < v->v.bytes.len && i < 64; i++)
            kms_buf_printf(b, "%02x", v->v.bytes.ptr[i]);
        if (v->v.bytes.len > 64)
            kms_buf_printf(b, "...");
        if (json)
            kms_buf_append_byte(b, '"');
        break;
    }
    case TTLV_STRUCTURE:
        kms_buf_append_byte(b, '{');
        for (const ttlv_item_t *c = v->first; c; c = c->next) {
            const char *cn = ttlv_tag_name(c->tag);
            if (!cn) {
                snprintf(tmp, sizeof(tmp), "0x%06x", c->tag);
                cn = tmp;
            }
            if (c != v->first)
                kms_buf_printf(b, json ? "," : ", ");
            if (json) {
                put_json_str(b, cn, strlen(cn));
                kms_buf_append_byte(b, ':');
            } else {
                kms_buf_printf(b, "%s: ", cn);
            }
            fmt_value(b, c->tag, c, json);
        }
        kms_buf_append_byte(b, '}');
        break;
    default:
        kms_buf_printf(b, json ? "null" : "?");
    }
}

static uint32_t attr_tag(const char *name)
{
    uint32_t t = 0;
    return ttlv_attr_tag_by_name(name, &t) == 0 ? t : 0;
}

/* ------------------------------------------------------------- helpers */
typedef struct key_ctx {
    conf_t *conf;
    kmsctl_kmip_t *k;
    kms_arena_t *a;
} key_ctx_t;

static int report(const kmsctl_kmip_result_t *r, const char *what)
{
    if (r->status == KMIP_RESULT_STATUS_SUCCESS)
        return 0;
    const char *st = ttlv_enum_name(KMIP_TAG_RESULT_STATUS, r->status);
    const char *rs = r->reason ? ttlv_enum_name(KMIP_TAG_RESULT_REASON, r->reason) : NULL;
    fprintf(stderr, "kmsctl key: %s: %s", what, st ? st : "failed");
    if (rs)
        fprintf(stderr, " (%s)", rs);
    if (r->message[0])
        fprintf(stderr, ": %s", r->message);
    fputc('\n', stderr);
    return KMSCTL_EXIT_FAIL;
}

static ttlv_item_t *payload_with_id(kms_arena_t *a, const char *id)
{
    ttlv_item_t *p = ttlv_new_struct(a, NULL, KMIP_TAG_REQUEST_PAYLOAD);
    if (p && id && !ttlv_new_textz(a, p, KMIP_TAG_UNIQUE_IDENTIFIER, id))
        return NULL;
    return p;
}

static ttlv_item_t *new_attr(kms_arena_t *a, ttlv_item_t *parent, const char *name)
{
    ttlv_item_t *at = ttlv_new_struct(a, parent, KMIP_TAG_ATTRIBUTE);
    if (!at || !ttlv_new_textz(a, at, KMIP_TAG_ATTRIBUTE_NAME, name))
        return NULL;
    return at;
}

/* Print one object's attributes from a Get Attributes payload. */
static void print_attrs(kms_buf_t *b, const ttlv_item_t *p, bool json)
{
    if (json)
        kms_buf_printf(b, "[");
    bool first = true;
    for (const ttlv_item_t *at = ttlv_find(p, KMIP_TAG_ATTRIBUTE); at;
         at = ttlv_find_next(at, KMIP_TAG_ATTRIBUTE)) {
        const ttlv_item_t *n = ttlv_find(at, KMIP_TAG_ATTRIBUTE_NAME);
        const ttlv_item_t *ix = ttlv_find(at, KMIP_TAG_ATTRIBUTE_INDEX);
        const ttlv_item_t *v = ttlv_find(at, KMIP_TAG_ATTRIBUTE_VALUE);
        if (!n || n->type != TTLV_TEXT_STRING || !v)
            continue;
        uint32_t tag = attr_tag(ttlv_text(n));
        if (json) {
            kms_buf_printf(b, "%s{\"name\":", first ? "" : ",");
            put_json_str(b, ttlv_text(n), n->v.bytes.len);
            kms_buf_printf(b, ",\"index\":%d,\"value\":", ix ? ix->v.i32 : 0);
            fmt_value(b, tag, v, true);
            kms_buf_append_byte(b, '}');
        } else {
            kms_buf_printf(b, "  %-32s ", ttlv_text(n));
            fmt_value(b, tag, v, false);
            kms_buf_append_byte(b, '\n');
        }
        first = false;
    }
    if (json)
        kms_buf_printf(b, "]");
}

/* The value of the first instance of attribute `name`, formatted. */
static void attr_text(kms_buf_t *b, const ttlv_item_t *p, const char *name, bool json)
{
    for (const ttlv_item_t *at = ttlv_find(p, KMIP_TAG_ATTRIBUTE); at;
         at = ttlv_find_next(at, KMIP_TAG_ATTRIBUTE)) {
        const ttlv_item_t *n = ttlv_find(at, KMIP_TAG_ATTRIBUTE_NAME);
        const ttlv_item_t *v = ttlv_find(at, KMIP_TAG_ATTRIBUTE_VALUE);
        if (!n || !v || strcmp(ttlv_text(n), name) != 0)
            continue;
        if (strcmp(name, "Name") == 0 && v->type == TTLV_STRUCTURE) {
            const ttlv_item_t *nv = ttlv_find(v, KMIP_TAG_NAME_VALUE);
            if (nv) {
                fmt_value(b, KMIP_TAG_NAME_VALUE, nv, json);
                return;
            }
        }
        fmt_value(b, attr_tag(name), v, json);
        return;
    }
    kms_buf_printf(b, json ? "null" : "-");
}

/* -------------------------------------------------------------- commands */
static int key_list(key_ctx_t *x, const char *name, int max)
{
    ttlv_item_t *p = payload_with_id(x->a, NULL);
    if (!p)
        return KMSCTL_EXIT_FAIL;
    if (max > 0 && !ttlv_new_int(x->a, p, KMIP_TAG_MAXIMUM_ITEMS, max))
        return KMSCTL_EXIT_FAIL;
    if (name) {
        ttlv_item_t *at = new_attr(x->a, p, "Name");
        ttlv_item_t *v = at ? ttlv_new_struct(x->a, at, KMIP_TAG_ATTRIBUTE_VALUE) : NULL;
        if (!v || !ttlv_new_textz(x->a, v, KMIP_TAG_NAME_VALUE, name) ||
            !ttlv_new_enum(x->a, v, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING))
            return KMSCTL_EXIT_FAIL;
    }
    kmsctl_kmip_result_t r;
    if (kmsctl_kmip_call(x->k, x->a, KMIP_OPERATION_LOCATE, p, &r) != 0) {
        fprintf(stderr, "kmsctl key: no answer from kmsd\n");
        return KMSCTL_EXIT_UNREACHABLE;
    }
    int ec = report(&r, "locate");
    if (ec)
        return ec;
    kms_buf_t out;
    kms_buf_init(&out, 64u << 20);
    bool json = kmsctl_g.json;
    kms_buf_printf(&out, json ? "[" : "%-36s  %-24s  %-14s  %-6s  %-6s  %s\n", "id", "name",
                   "type", "alg", "length", "state");
    bool first = true;
    static const char *cols[] = {"Name", "Object Type", "Cryptographic Algorithm",
                                 "Cryptographic Length", "State"};
    for (const ttlv_item_t *id = r.payload ? ttlv_find(r.payload, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
         id; id = ttlv_find_next(id, KMIP_TAG_UNIQUE_IDENTIFIER)) {
        ttlv_item_t *gp = payload_with_id(x->a, ttlv_text(id));
        for (size_t i = 0; gp && i < KMS_ARRAY_SIZE(cols); i++)
            if (!ttlv_new_textz(x->a, gp, KMIP_TAG_ATTRIBUTE_NAME, cols[i]))
                gp = NULL;
        kmsctl_kmip_result_t g;
        if (!gp || kmsctl_kmip_call(x->k, x->a, KMIP_OPERATION_GET_ATTRIBUTES, gp, &g) != 0) {
            kms_buf_dispose(&out);
            return KMSCTL_EXIT_UNREACHABLE;
        }
        if (g.status != KMIP_RESULT_STATUS_SUCCESS || !g.payload)
            continue; /* destroyed meanwhile */
        if (json) {
            kms_buf_printf(&out, "%s{\"id\":", first ? "" : ",");
            put_json_str(&out, ttlv_text(id), id->v.bytes.len);
            static const char *keys[] = {"name", "type", "algorithm", "length", "state"};
            for (size_t i = 0; i < KMS_ARRAY_SIZE(cols); i++) {
                kms_buf_printf(&out, ",\"%s\":", keys[i]);
                attr_text(&out, g.payload, cols[i], true);
            }
            kms_buf_append_byte(&out, '}');
        } else {
            kms_buf_printf(&out, "%-36s", ttlv_text(id));
            int widths[] = {24, 14, 6, 6, 0};
            for (size_t i = 0; i < KMS_ARRAY_SIZE(cols); i++) {
                size_t start = out.len + 2;
                kms_buf_printf(&out, "  ");
                attr_text(&out, g.payload, cols[i], false);
                while (widths[i] && out.len - start < (size_t)widths[i])
                    kms_buf_append_byte(&out, ' ');
            }
            kms_buf_append_byte(&out, '\n');
        }
        first = false;
    }
    if (json)
        kms_buf_printf(&out, "]\n");
    fwrite(out.data, 1, out.len, stdout);
    kms_buf_dispose(&out);
    return 0;
}

static int key_show(key_ctx_t *x, const char *id)
{
    ttlv_item_t *p = payload_with_id(x->a, id);
    kmsctl_kmip_result_t r;
    if (!p || kmsctl_kmip_call(x->k, x->a, KMIP_OPERATION_GET_ATTRIBUTES, p, &r) != 0)
        return KMSCTL_EXIT_UNREACHABLE;
    int ec = report(&r, id);
    if (ec)
        return ec;
    kms_buf_t out;
    kms_buf_init(&out, 64u << 20);
    if (kmsctl_g.json) {
        kms_buf_printf(&out, "{\"id\":");
        put_json_str(&out, id, strlen(id));
        kms_buf_printf(&out, ",\"attributes\":");
        print_attrs(&out, r.payload, true);
        kms_buf_printf(&out, "}\n");
    } else {
        kms_buf_printf(&out, "%s\n", id);
        print_attrs(&out, r.payload, false);
    }
    fwrite(out.data, 1, out.len, stdout);
    kms_buf_dispose(&out);
    return 0;
}

static int key_create(key_ctx_t *x, const char *name, int length)
{
    kms_arena_t *a = x->a;
    ttlv_item_t *p = payload_with_id(a, NULL);
    if (!p || !ttlv_new_enum(a, p, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY))
        return KMSCTL_EXIT_FAIL;
    ttlv_item_t *ta = ttlv_new_struct(a, p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    ttlv_item_t *at;
    if (!ta || !(at = new_attr(a, ta, "Cryptographic Algorithm")) ||
        !ttlv_new_enum(a, at, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES) ||
        !(at = new_attr(a, ta, "Cryptographic Length")) ||
        !ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE, length) ||
        !(at = new_attr(a, ta, "Cryptographic Usage Mask")) ||
        !ttlv_new_int(a, at, KMIP_TAG_ATTRIBUTE_VALUE,
                      (int32_t)(KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT |
                                KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT)))
        return KMSCTL_EXIT_FAIL;
    if (name) {
        ttlv_item_t *v;
        if (!(at = new_attr(a, ta, "Name")) || !(v = ttlv_new_struct(a, at, KMIP_TAG_ATTRIBUTE_VALUE)) ||
            !ttlv_new_textz(a, v, KMIP_TAG_NAME_VALUE, name) ||
            !ttlv_new_enum(a, v, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING))
            return KMSCTL_EXIT_FAIL;
    }
    kmsctl_kmip_result_t r;
    if (kmsctl_kmip_call(x->k, a, KMIP_OPERATION_CREATE, p, &r) != 0)
        return KMSCTL_EXIT_UNREACHABLE;
    int ec = report(&r, "create");
    if (ec)
        return ec;
    const ttlv_item_t *id = r.payload ? ttlv_find(r.payload, KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
    if (!id || id->type != TTLV_TEXT_STRING) {
        fprintf(stderr, "kmsctl key: create answered without an id\n");
        return KMSCTL_EXIT_FAIL;
    }
    if (kmsctl_g.json)
        printf("{\"id\":\"%s\"}\n", ttlv_text(id)); /* a UUID: nothing to escape */
    else
        printf("%s\n", ttlv_text(id));
    return 0;
}

static int key_simple(key_ctx_t *x, uint32_t op, const char *id, uint32_t reason)
{
    ttlv_item_t *p = payload_with_id(x->a, id);
    if (!p)
        return KMSCTL_EXIT_FAIL;
    if (op == KMIP_OPERATION_REVOKE) {
        ttlv_item_t *rr = ttlv_new_struct(x->a, p, KMIP_TAG_REVOCATION_REASON);
        if (!rr || !ttlv_new_enum(x->a, rr, KMIP_TAG_REVOCATION_REASON_CODE, reason))
            return KMSCTL_EXIT_FAIL;
        if (reason == KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE &&
            !ttlv_new_datetime(x->a, p, KMIP_TAG_COMPROMISE_OCCURRENCE_DATE, time(NULL)))
            return KMSCTL_EXIT_FAIL;
    }
    kmsctl_kmip_result_t r;
    if (kmsctl_kmip_call(x->k, x->a, op, p, &r) != 0)
        return KMSCTL_EXIT_UNREACHABLE;
    int ec = report(&r, id);
    if (ec)
        return ec;
    const char *verb = op == KMIP_OPERATION_ACTIVATE ? "activated"
                       : op == KMIP_OPERATION_REVOKE ? "revoked"
                                                     : "destroyed";
    if (kmsctl_g.json)
        printf("{\"id\":\"%s\",\"result\":\"%s\"}\n", id, verb);
    else
        printf("%s %s\n", id, verb);
    return 0;
}

int cmd_key(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_key(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    const char *id = NULL, *name = NULL, *reason = NULL;
    kmsctl_kmip_options_t ko = {0};
    int length = 256, max = 0;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage_key(stdout);
            return KMSCTL_EXIT_OK;
        }
        if (o[0] != '-') {
            if (id) {
                usage_key(stderr);
                return KMSCTL_EXIT_USAGE;
            }
            id = o;
            continue;
        }
        if (!v) {
            usage_key(stderr);
            return KMSCTL_EXIT_USAGE;
        }
        i++;
        if (strcmp(o, "--name") == 0)
            name = v;
        else if (strcmp(o, "--length") == 0)
            length = atoi(v);
        else if (strcmp(o, "--max") == 0)
            max = atoi(v);
        else if (strcmp(o, "--reason") == 0)
            reason = v;
        else if (strcmp(o, "--server") == 0)
            ko.server = v;
        else if (strcmp(o, "--cert") == 0)
            ko.cert = v;
        else if (strcmp(o, "--key") == 0)
            ko.key = v;
        else if (strcmp(o, "--ca") == 0)
            ko.ca = v;
        else {
            usage_key(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    uint32_t op = 0, rcode = KMIP_REVOCATION_REASON_CODE_UNSPECIFIED;
    bool need_id = true;
    if (strcmp(sub, "list") == 0) {
        need_id = false;
        op = KMIP_OPERATION_LOCATE;
    } else if (strcmp(sub, "show") == 0) {
        op = KMIP_OPERATION_GET_ATTRIBUTES;
    } else if (strcmp(sub, "create") == 0) {
        need_id = false;
        op = KMIP_OPERATION_CREATE;
    } else if (strcmp(sub, "activate") == 0) {
        op = KMIP_OPERATION_ACTIVATE;
    } else if (strcmp(sub, "revoke") == 0) {
        op = KMIP_OPERATION_REVOKE;
    } else if (strcmp(sub, "destroy") == 0) {
        op = KMIP_OPERATION_DESTROY;
    }
    if (reason) {
        if (strcmp(reason, "unspecified") == 0)
            rcode = KMIP_REVOCATION_REASON_CODE_UNSPECIFIED;
        else if (strcmp(reason, "compromise") == 0)
            rcode = KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE;
        else if (strcmp(reason, "superseded") == 0)
            rcode = KMIP_REVOCATION_REASON_CODE_SUPERSEDED;
        else if (strcmp(reason, "cessation") == 0)
            rcode = KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION;
        else
            op = 0;
    }
    if (!op || need_id != (id != NULL) || (length != 128 && length != 192 && length != 256) ||
        max < 0 || (reason && op != KMIP_OPERATION_REVOKE)) {
        usage_key(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    key_ctx_t x = {0};
    int ec = kmsctl_load_conf(&x.conf);
    if (ec)
        return ec;
    kms_error_t err;
    kms_error_clear(&err);
    int rc = kmsctl_kmip_open(x.conf, &ko, &x.k, &err);
    if (rc != 0) {
        fprintf(stderr, "kmsctl key: %s\n", err.msg[0] ? err.msg : kms_strerror(rc));
        conf_free(x.conf);
        return KMSCTL_EXIT_UNREACHABLE;
    }
    x.a = kms_arena_new(0);
    if (!x.a)
        ec = KMSCTL_EXIT_FAIL;
    else if (op == KMIP_OPERATION_LOCATE)
        ec = key_list(&x, name, max);
    else if (op == KMIP_OPERATION_GET_ATTRIBUTES)
        ec = key_show(&x, id);
    else if (op == KMIP_OPERATION_CREATE)
        ec = key_create(&x, name, length);
    else
        ec = key_simple(&x, op, id, rcode);
    kms_arena_free(x.a);
    kmsctl_kmip_close(x.k);
    conf_free(x.conf);
    return ec;
}
