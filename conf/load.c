/*
 * conf/load.c: YAML text -> conf_t, driven by the schema table.
 *
 * Two passes over the text with libyaml: an event scan that bounds nesting
 * depth and size, rejects aliases and multiple documents, and reports
 * syntax errors with their position; then the document API walks the tree
 * against conf_schema. Every error names FILE:LINE:COL and the dotted key.
 *
 * conf_load() (a file) then applies the few environment overrides in
 * env_overrides[] (KMSD_LISTEN, KMSD_LOG_LEVEL, KMSD_LOG_FORMAT: what a container sets per
 * run), with the same checks; conf_load_buffer() never reads the
 * environment, so a buffer means the same thing to every caller.
 *
 * It does not check that the files named exist, that cipher strings are
 * valid for OpenSSL or that addresses are local: the server does that with
 * the real libraries and reports it at start (and in --check-config).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "conf/conf_int.h"

#define MAX_MARKS 128
#define MAX_EVENTS 200000

typedef struct loader {
    const char *name;         /* file name for messages */
    char dir[PATH_MAX];       /* absolute directory for relative paths */
    yaml_document_t *doc;
    conf_t *c;
    kms_arena_t *a;
    kms_error_t *err;         /* NULL: no detail wanted */
    const char *env;          /* environment variable being applied, or NULL */
    struct {
        const conf_field_t *f;
        yaml_mark_t mark;
    } marks[MAX_MARKS];       /* where each key was set, for cross-field errors */
    size_t n_marks;
} loader_t;

static void fail_at(loader_t *L, yaml_mark_t m, const char *sect, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void fail_at(loader_t *L, yaml_mark_t m, const char *sect, const char *key,
                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (L->env) /* no line and column: the value came from the environment */
        kms_error_set(L->err, KMS_ERR_CONFIG, "$%s: %s%s%s: %s", L->env, sect ? sect : "",
                      sect ? "." : "", key ? key : "", msg);
    else if (key)
        kms_error_set_at(L->err, KMS_ERR_CONFIG, m.index, "%s:%zu:%zu: %s%s%s: %s", L->name,
                         m.line + 1, m.column + 1, sect ? sect : "", sect ? "." : "", key, msg);
    else
        kms_error_set_at(L->err, KMS_ERR_CONFIG, m.index, "%s:%zu:%zu: %s", L->name, m.line + 1,
                         m.column + 1, msg);
}

static void fmt_ms(uint64_t ms, char *out, size_t n)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, n, "%llums", (unsigned long long)ms);
}

static void fmt_size(uint64_t b, char *out, size_t n)
{
    if (b != 0 && b % (1ULL << 30) == 0)
        snprintf(out, n, "%lluGiB", (unsigned long long)(b >> 30));
    else if (b != 0 && b % (1ULL << 20) == 0)
        snprintf(out, n, "%lluMiB", (unsigned long long)(b >> 20));
    else if (b != 0 && b % (1ULL << 10) == 0)
        snprintf(out, n, "%lluKiB", (unsigned long long)(b >> 10));
    else
        snprintf(out, n, "%llu bytes", (unsigned long long)b);
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a scalar";
    }
}

/* YAML null: an empty plain scalar, "~" or "null". */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

/* The scalar text, after checking it holds no NUL or control characters. */
static const char *scalar_text(loader_t *L, const yaml_node_t *n, const char *sect,
                               const char *key, const char *want)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail_at(L, n->start_mark, sect, key, "expected %s, got %s", want, node_kind(n));
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        fail_at(L, n->start_mark, sect, key, "contains a NUL character");
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fail_at(L, n->start_mark, sect, key, "contains a control character");
            return NULL;
        }
    return v;
}

static int parse_int64(const char *s, int64_t *out)
{
    int neg = 0;
    uint64_t v = 0;
    if (*s == '-' || *s == '+')
        neg = (*s++ == '-');
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10 || v > (uint64_t)INT64_MAX)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static const char *resolve_path(loader_t *L, const char *v)
{
    if (v[0] == '\0' || v[0] == '/')
        return kms_arena_strdup(L->a, v);
    size_t dl = strlen(L->dir), vl = strlen(v);
    if (dl + 1 + vl + 1 > PATH_MAX)
        return NULL;
    char *p = kms_arena_alloc(L->a, dl + 1 + vl + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, L->dir, dl);
    size_t o = dl;
    if (o == 0 || p[o - 1] != '/')
        p[o++] = '/';
    if (v[0] == '.' && v[1] == '/')
        v += 2; /* "./pki/ca.crt" -> "DIR/pki/ca.crt" */
    memcpy(p + o, v, strlen(v) + 1);
    return p;
}

static void note_mark(loader_t *L, const conf_field_t *f, yaml_mark_t m)
{
    if (L->n_marks < MAX_MARKS) {
        L->marks[L->n_marks].f = f;
        L->marks[L->n_marks].mark = m;
        L->n_marks++;
    }
}

/* A certificate fingerprint as 64 lower-case hex digits into out[65]:
 * 64 hex digits, or 32 bytes of two digits with ':' between them (as
 * `openssl x509 -fingerprint -sha256` prints it), any case. */
static int parse_fingerprint(const char *v, char out[65])
{
    size_t n = 0, len = strlen(v);
    bool colons = len == 95;
    if (len != 64 && !colons)
        return KMS_ERR_CONFIG;
    for (size_t i = 0; i < len; i++) {
        if (colons && i % 3 == 2) {
            if (v[i] != ':')
                return KMS_ERR_CONFIG;
            continue;
        }
        char ch = (char)tolower((unsigned char)v[i]);
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return KMS_ERR_CONFIG;
        out[n++] = ch;
    }
    out[n] = '\0';
    return n == 64 ? 0 : KMS_ERR_CONFIG;
}

/* A list setting (HOSTLIST: ADDR:PORT items; FPLIST: fingerprints). */
static int set_hostlist(loader_t *L, const conf_field_t *f, const yaml_node_t *n,
                        const char *sect)
{
    size_t count = 0;
    const yaml_node_t *items[64];
    char host[256];
    bool fp = f->type == CONF_T_FPLIST;
    const char *what = fp ? "a SHA-256 certificate fingerprint" : "ADDR:PORT";

    if (is_null(n)) {
        count = 0;
    } else if (n->type == YAML_SCALAR_NODE) {
        items[0] = n;
        count = 1;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            if (count >= f->max_items || count >= KMS_ARRAY_SIZE(items)) {
                fail_at(L, n->start_mark, sect, f->key, "at most %zu entries", f->max_items);
                return KMS_ERR_CONFIG;
            }
            items[count++] = yaml_document_get_node(L->doc, *it);
        }
    } else {
        fail_at(L, n->start_mark, sect, f->key, "expected a list of %s, got %s",
                fp ? "SHA-256 certificate fingerprints" : "ADDR:PORT", node_kind(n));
        return KMS_ERR_CONFIG;
    }
    if (count < f->min_items) {
        fail_at(L, n->start_mark, sect, f->key, "needs at least %zu address", f->min_items);
        return KMS_ERR_CONFIG;
    }
    const char **arr = NULL;
    if (count > 0) {
        arr = kms_arena_alloc(L->a, count * sizeof(*arr));
        if (arr == NULL)
            return KMS_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        const char *v = items[i] ? scalar_text(L, items[i], sect, f->key, what) : NULL;
        if (v == NULL)
            return KMS_ERR_CONFIG;
        if (fp) {
            if (parse_fingerprint(v, host) != 0) {
                fail_at(L, items[i]->start_mark, sect, f->key,
                        "'%s' is not a SHA-256 fingerprint (64 hex digits, ':' between bytes "
                        "allowed)", v);
                return KMS_ERR_CONFIG;
            }
            v = host;
        } else if (conf_parse_hostport(v, host, sizeof(host), NULL) != 0) {
            fail_at(L, items[i]->start_mark, sect, f->key,
                    "'%s' is not ADDR:PORT or [IPV6]:PORT (port 1-65535)", v);
            return KMS_ERR_CONFIG;
        }
        if ((arr[i] = kms_arena_strdup(L->a, v)) == NULL)
            return KMS_ERR_NOMEM;
    }
    *(const char *const **)((char *)L->c + f->off) = arr;
    *(size_t *)((char *)L->c + f->off2) = count;
    return 0;
}

static int set_field(loader_t *L, const conf_field_t *f, const yaml_node_t *n, const char *sect)
{
    char *base = (char *)L->c;
    char why[160], lo[32], hi[32];
    const char *v;
    int64_t iv;
    uint64_t uv;

    switch (f->type) {
    case CONF_T_HOSTLIST:
    case CONF_T_FPLIST:
        return set_hostlist(L, f, n, sect);
    case CONF_T_STR:
    case CONF_T_PATH:
    case CONF_T_MODPATH:
    case CONF_T_HOSTPORT: {
        const char *s;
        if (is_null(n)) {
            v = "";
        } else if ((v = scalar_text(L, n, sect, f->key, "a string")) == NULL) {
            return KMS_ERR_CONFIG;
        }
        if (f->check && f->check(v, why, sizeof(why)) != 0) {
            fail_at(L, n->start_mark, sect, f->key, "%s", why);
            return KMS_ERR_CONFIG;
        }
        if (f->type == CONF_T_HOSTPORT && v[0] != '\0') {
            char host[256];
            if (conf_parse_hostport(v, host, sizeof(host), NULL) != 0) {
                fail_at(L, n->start_mark, sect, f->key,
                        "'%s' is not ADDR:PORT or [IPV6]:PORT (port 1-65535)", v);
                return KMS_ERR_CONFIG;
            }
        }
        if (f->type == CONF_T_PATH || (f->type == CONF_T_MODPATH && strchr(v, '/')))
            s = resolve_path(L, v);
        else
            s = kms_arena_strdup(L->a, v);
        if (s == NULL) {
            fail_at(L, n->start_mark, sect, f->key, "path too long");
            return KMS_ERR_CONFIG;
        }
        *(const char **)(base + f->off) = s;
        return 0;
    }
    case CONF_T_SECTION:
        return KMS_ERR_INTERNAL; /* handled by the caller */
    default:
        break;
    }

    /* Every remaining type needs a non-null scalar. */
    if (is_null(n)) {
        fail_at(L, n->start_mark, sect, f->key, "a value is required");
        return KMS_ERR_CONFIG;
    }
    switch (f->type) {
    case CONF_T_UINT:
    case CONF_T_INT:
        if ((v = scalar_text(L, n, sect, f->key, "an integer")) == NULL)
            return KMS_ERR_CONFIG;
        if (parse_int64(v, &iv) != 0) {
            fail_at(L, n->start_mark, sect, f->key, "expected an integer, got '%s'", v);
            return KMS_ERR_CONFIG;
        }
        if (iv < f->min || iv > f->max) {
            fail_at(L, n->start_mark, sect, f->key, "must be between %lld and %lld",
                    (long long)f->min, (long long)f->max);
            return KMS_ERR_CONFIG;
        }
        if (f->type == CONF_T_UINT)
            *(unsigned *)(base + f->off) = (unsigned)iv;
        else
            *(int *)(base + f->off) = (int)iv;
        return 0;
    case CONF_T_OCTAL: {
        if ((v = scalar_text(L, n, sect, f->key, "an octal mode")) == NULL)
            return KMS_ERR_CONFIG;
        const char *p = v;
        if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
            p += 2;
        char *end = NULL;
        errno = 0;
        unsigned long m = (*p >= '0' && *p <= '7') ? strtoul(p, &end, 8) : 0;
        if (end == NULL || *end != '\0' || errno != 0) {
            fail_at(L, n->start_mark, sect, f->key, "expected an octal mode like 0600, got '%s'", v);
            return KMS_ERR_CONFIG;
        }
        if ((int64_t)m < f->min || (int64_t)m > f->max) {
            fail_at(L, n->start_mark, sect, f->key, "must be between 0%llo and 0%llo",
                    (unsigned long long)f->min, (unsigned long long)f->max);
            return KMS_ERR_CONFIG;
        }
        *(unsigned *)(base + f->off) = (unsigned)m;
        return 0;
    }
    case CONF_T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        if ((v = scalar_text(L, n, sect, f->key, "true or false")) == NULL)
            return KMS_ERR_CONFIG;
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(v, yes[i]) == 0) {
                *(bool *)(base + f->off) = true;
                return 0;
            }
            if (strcasecmp(v, no[i]) == 0) {
                *(bool *)(base + f->off) = false;
                return 0;
            }
        }
        fail_at(L, n->start_mark, sect, f->key, "expected true or false, got '%s'", v);
        return KMS_ERR_CONFIG;
    }
    case CONF_T_DURATION:
        if ((v = scalar_text(L, n, sect, f->key, "a duration")) == NULL)
            return KMS_ERR_CONFIG;
        if (conf_parse_duration_ms(v, &uv) != 0) {
            fail_at(L, n->start_mark, sect, f->key,
                    "expected a duration like 10s, 500ms, 2m, 1h or plain seconds, got '%s'", v);
            return KMS_ERR_CONFIG;
        }
        if (uv < (uint64_t)f->min || uv > (uint64_t)f->max) {
            fmt_ms((uint64_t)f->min, lo, sizeof(lo));
            fmt_ms((uint64_t)f->max, hi, sizeof(hi));
            fail_at(L, n->start_mark, sect, f->key, "must be between %s and %s", lo, hi);
            return KMS_ERR_CONFIG;
        }
        *(uint64_t *)(base + f->off) = uv;
        return 0;
    case CONF_T_SIZE:
        if ((v = scalar_text(L, n, sect, f->key, "a size")) == NULL)
            return KMS_ERR_CONFIG;
        if (conf_parse_size(v, &uv) != 0) {
            fail_at(L, n->start_mark, sect, f->key,
                    "expected a size like 1MiB, 64KiB or plain bytes, got '%s'", v);
            return KMS_ERR_CONFIG;
        }
        if (!(f->zero_ok && uv == 0) && (uv < (uint64_t)f->min || uv > (uint64_t)f->max)) {
            fmt_size((uint64_t)f->min, lo, sizeof(lo));
            fmt_size((uint64_t)f->max, hi, sizeof(hi));
            fail_at(L, n->start_mark, sect, f->key, "must be %sbetween %s and %s",
                    f->zero_ok ? "0 or " : "", lo, hi);
            return KMS_ERR_CONFIG;
        }
        if (uv > SIZE_MAX)
            return KMS_ERR_CONFIG;
        *(size_t *)(base + f->off) = (size_t)uv;
        return 0;
    case CONF_T_DEPRECATED:
        if ((v = scalar_text(L, n, sect, f->key, "a name")) == NULL)
            return KMS_ERR_CONFIG;
        for (const conf_enum_t *e = f->enums; e->name; e++)
            if (strcasecmp(v, e->name) == 0) {
                kms_log(KMS_LOG_WARN, "conf", "%s:%zu:%zu: %s%s%s is deprecated and ignored: %s",
                        L->name, n->start_mark.line + 1, n->start_mark.column + 1,
                        sect ? sect : "", sect ? "." : "", f->key, f->hint);
                return 0;
            }
        fail_at(L, n->start_mark, sect, f->key, "'%s' is no longer supported: %s", v, f->hint);
        return KMS_ERR_CONFIG;
    case CONF_T_ENUM: {
        char choices[160] = "";
        if ((v = scalar_text(L, n, sect, f->key, "a name")) == NULL)
            return KMS_ERR_CONFIG;
        for (const conf_enum_t *e = f->enums; e->name; e++) {
            if (strcasecmp(v, e->name) == 0) {
                *(int *)(base + f->off) = e->value;
                return 0;
            }
            size_t cl = strlen(choices);
            snprintf(choices + cl, sizeof(choices) - cl, "%s%s", cl ? ", " : "", e->name);
        }
        fail_at(L, n->start_mark, sect, f->key, "must be one of: %s (got '%s')", choices, v);
        return KMS_ERR_CONFIG;
    }
    default:
        return KMS_ERR_INTERNAL;
    }
}

static int walk_mapping(loader_t *L, const yaml_node_t *map, const conf_field_t *table,
                        const char *sect)
{
    bool seen[64] = {false};

    if (is_null(map))
        return 0; /* "tls:" with nothing under it: all defaults */
    if (map->type != YAML_MAPPING_NODE) {
        fail_at(L, map->start_mark, NULL, sect ? sect : "(top level)",
                "expected a mapping of settings, got %s", node_kind(map));
        return KMS_ERR_CONFIG;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
        if (k == NULL || v == NULL)
            return KMS_ERR_CONFIG;
        if (k->type != YAML_SCALAR_NODE) {
            fail_at(L, k->start_mark, NULL, NULL, "%s%skeys must be plain names",
                    sect ? sect : "", sect ? ": " : "");
            return KMS_ERR_CONFIG;
        }
        const char *key = (const char *)k->data.scalar.value;
        size_t idx = 0;
        const conf_field_t *f = NULL;
        for (const conf_field_t *t = table; t->key; t++, idx++)
            if (strcmp(t->key, key) == 0) {
                f = t;
                break;
            }
        if (f == NULL) {
            char safe[64];
            size_t j = 0;
            for (; key[j] && j + 1 < sizeof(safe); j++)
                safe[j] = (key[j] >= 0x20 && key[j] < 0x7f) ? key[j] : '?';
            safe[j] = '\0';
            fail_at(L, k->start_mark, sect, safe, "unknown key");
            return KMS_ERR_CONFIG;
        }
        if (idx < KMS_ARRAY_SIZE(seen)) {
            if (seen[idx]) {
                fail_at(L, k->start_mark, sect, f->key, "duplicate key");
                return KMS_ERR_CONFIG;
            }
            seen[idx] = true;
        }
        note_mark(L, f, v->start_mark);
        int rc = f->type == CONF_T_SECTION ? walk_mapping(L, v, f->sub, f->key)
                                           : set_field(L, f, v, sect);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Settings the environment overrides (conf_load() only). A container sets
 * them per run without editing the mounted file; an empty value counts as
 * unset. KMSD_LISTEN is a comma-separated list of ADDR:PORT.
 */
static const struct {
    const char *var, *sect, *key;
} env_overrides[] = {
    {"KMSD_LISTEN", NULL, "listen"},
    {"KMSD_LOG_LEVEL", "log", "level"},
    {"KMSD_LOG_FORMAT", "log", "format"},
};

static const conf_field_t *schema_field(const char *sect, const char *key)
{
    const conf_field_t *t = conf_schema;
    if (sect) {
        for (t = conf_schema; t->key && strcmp(t->key, sect) != 0; t++)
            ;
        if (t->key == NULL || t->sub == NULL)
            return NULL;
        t = t->sub;
    }
    for (; t->key; t++)
        if (strcmp(t->key, key) == 0)
            return t;
    return NULL;
}

/* The value as a node of L->doc: a sequence of the comma-separated items
 * for a list setting, else one scalar. 0 when libyaml runs out of memory. */
static int env_node(loader_t *L, const conf_field_t *f, const char *v)
{
    yaml_document_t *d = L->doc;
    if (f->type != CONF_T_HOSTLIST && f->type != CONF_T_FPLIST)
        return yaml_document_add_scalar(d, NULL, (yaml_char_t *)v, (int)strlen(v),
                                        YAML_PLAIN_SCALAR_STYLE);
    int seq = yaml_document_add_sequence(d, NULL, YAML_FLOW_SEQUENCE_STYLE);
    for (const char *p = v; seq; p++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        int it = yaml_document_add_scalar(d, NULL, (yaml_char_t *)p, (int)n, YAML_PLAIN_SCALAR_STYLE);
        if (it == 0 || !yaml_document_append_sequence_item(d, seq, it))
            return 0;
        if (end == NULL)
            break;
        p = end;
    }
    return seq;
}

static int apply_env(loader_t *L)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(env_overrides); i++) {
        const char *v = getenv(env_overrides[i].var);
        if (v == NULL || v[0] == '\0')
            continue;
        const conf_field_t *f = schema_field(env_overrides[i].sect, env_overrides[i].key);
        if (f == NULL)
            return KMS_ERR_INTERNAL;
        if (strlen(v) > 4096) {
            L->env = env_overrides[i].var;
            fail_at(L, (yaml_mark_t){0, 0, 0}, env_overrides[i].sect, f->key, "longer than 4096 bytes");
            return KMS_ERR_CONFIG;
        }
        int id = env_node(L, f, v);
        if (id == 0)
            return KMS_ERR_NOMEM;
        L->env = env_overrides[i].var;
        int rc = set_field(L, f, yaml_document_get_node(L->doc, id), env_overrides[i].sect);
        L->env = NULL;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Where a key was set, or the top of the file when it was not. */
static yaml_mark_t mark_of(loader_t *L, const char *sect, const char *key)
{
    yaml_mark_t m = {0, 0, 0};
    for (const conf_field_t *s = conf_schema; s->key; s++) {
        if (strcmp(s->key, sect) != 0 || s->sub == NULL)
            continue;
        for (const conf_field_t *f = s->sub; f->key; f++)
            if (strcmp(f->key, key) == 0)
                for (size_t i = 0; i < L->n_marks; i++)
                    if (L->marks[i].f == f)
                        m = L->marks[i].mark;
    }
    return m;
}

/* Rules that involve more than one key. */
static int cross_check(loader_t *L)
{
    const conf_t *c = L->c;
#define REQUIRE(cond, sect, key, ...)                                 \
    do {                                                              \
        if (!(cond)) {                                                \
            fail_at(L, mark_of(L, sect, key), sect, key, __VA_ARGS__); \
            return KMS_ERR_CONFIG;                                    \
        }                                                             \
    } while (0)

    REQUIRE(c->tls.cert[0], "tls", "cert", "a server certificate file is required");
    REQUIRE(c->tls.key[0], "tls", "key", "a server private key file is required");
    REQUIRE(c->tls.client_ca[0] || c->tls.client_auth == CONF_CLIENT_AUTH_OPTIONAL, "tls",
            "client_ca", "a client CA file is required when tls.client_auth is required");
    REQUIRE(c->tls.ciphers[0], "tls", "ciphers", "must not be empty");
    REQUIRE(c->tls.ciphersuites[0], "tls", "ciphersuites", "must not be empty");
    REQUIRE(c->store.path[0], "store", "path", "a database path is required");
    REQUIRE(c->admin.socket[0], "admin", "socket", "an admin socket path is required");
    REQUIRE(strlen(c->admin.socket) < 108, "admin", "socket",
            "longer than a Unix socket path may be (107 bytes)");
    REQUIRE(c->hsm.key_label[0], "hsm", "key_label", "must not be empty");
    if (c->hsm.provider == CONF_HSM_FILE) {
        REQUIRE(c->hsm.key_file[0], "hsm", "key_file", "required when hsm.provider is file");
    } else {
        REQUIRE(c->hsm.module[0], "hsm", "provider", "pkcs11 needs hsm.module (the PKCS#11 library)");
        REQUIRE(c->hsm.token_label[0] || c->hsm.slot >= 0, "hsm", "provider",
                "pkcs11 needs hsm.token_label or hsm.slot");
        REQUIRE(c->hsm.pin_file[0] || c->hsm.pin_env[0], "hsm", "provider",
                "pkcs11 needs hsm.pin_file or hsm.pin_env (the user PIN)");
    }
    REQUIRE(c->limits.request_memory_per_client <= c->limits.request_memory, "limits",
            "request_memory_per_client", "must not exceed limits.request_memory");
    REQUIRE(c->limits.max_message <= c->limits.request_memory_per_client, "limits", "max_message",
            "must not exceed limits.request_memory_per_client (such a message could never be "
            "received)");
    REQUIRE(c->limits.max_message_unauthenticated <= c->limits.max_message, "limits",
            "max_message_unauthenticated", "must not exceed limits.max_message");
    if (c->audit.durable)
        REQUIRE(c->audit.fsync, "audit", "durable", "needs audit.fsync: true");
    if (c->replication.n_peers > 0)
        REQUIRE(c->replication.listen[0], "replication", "listen",
                "required when replication.peers is set (peers connect to it)");
    if (c->replication.sync_acks > 0)
        REQUIRE(c->replication.listen[0], "replication", "sync_acks",
                "needs replication.listen (this node must replicate to have peers ack)");
    if (c->replication.listen[0]) {
        REQUIRE(c->replication.cert[0], "replication", "cert",
                "a node certificate file is required when replication.listen is set");
        REQUIRE(c->replication.key[0], "replication", "key",
                "a node private key file is required when replication.listen is set");
        REQUIRE(c->replication.ca[0], "replication", "ca",
                "the cluster CA file is required when replication.listen is set");
    }
#undef REQUIRE
    return 0;
}

/* Pass 1: syntax, depth, size, no aliases, one document. */
static int scan_events(loader_t *L, const unsigned char *data, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int rc = 0, depth = 0, docs = 0;
    size_t events = 0;

    if (!yaml_parser_initialize(&p))
        return KMS_ERR_NOMEM;
    yaml_parser_set_input_string(&p, data, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_mark_t m = p.problem_mark;
            if (p.context)
                fail_at(L, m, NULL, NULL, "YAML syntax error: %s %s", p.problem ? p.problem : "",
                        p.context);
            else
                fail_at(L, m, NULL, NULL, "YAML syntax error: %s", p.problem ? p.problem : "?");
            rc = KMS_ERR_CONFIG;
            break;
        }
        yaml_event_type_t t = ev.type;
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        if (++events > MAX_EVENTS) {
            fail_at(L, m, NULL, NULL, "too many YAML items");
            rc = KMS_ERR_CONFIG;
            break;
        }
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            if (++depth > CONF_MAX_DEPTH) {
                fail_at(L, m, NULL, NULL, "nested too deeply");
                rc = KMS_ERR_CONFIG;
                break;
            }
        } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
            depth--;
        } else if (t == YAML_ALIAS_EVENT) {
            fail_at(L, m, NULL, NULL, "YAML aliases are not supported in the configuration");
            rc = KMS_ERR_CONFIG;
            break;
        } else if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                fail_at(L, m, NULL, NULL, "only one YAML document is allowed");
                rc = KMS_ERR_CONFIG;
                break;
            }
        } else if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

static int load_buffer(const char *name, const char *dir, const void *data, size_t len,
                       bool with_env, conf_t **out, kms_error_t *err)
{
    loader_t L;
    yaml_parser_t p;
    yaml_document_t doc;
    int have_parser = 0, have_doc = 0, rc;
    kms_arena_t *a = NULL;

    if (out == NULL || (data == NULL && len > 0))
        return KMS_ERR_INVAL;
    *out = NULL;
    kms_error_clear(err);
    memset(&L, 0, sizeof(L));
    L.name = name ? name : "(config)";
    L.err = err;
    if (len > CONF_MAX_FILE) {
        fail_at(&L, (yaml_mark_t){0, 0, 0}, NULL, NULL, "larger than %d bytes", CONF_MAX_FILE);
        return KMS_ERR_CONFIG;
    }
    if (dir == NULL || dir[0] != '/') {
        if (getcwd(L.dir, sizeof(L.dir)) == NULL)
            return KMS_ERR_IO;
        if (dir && dir[0]) {
            size_t dl = strlen(L.dir);
            if (dl + 1 + strlen(dir) + 1 > sizeof(L.dir))
                return KMS_ERR_CONFIG;
            snprintf(L.dir + dl, sizeof(L.dir) - dl, "/%s", dir);
        }
    } else {
        if (strlen(dir) + 1 > sizeof(L.dir))
            return KMS_ERR_CONFIG;
        memcpy(L.dir, dir, strlen(dir) + 1);
    }

    if ((a = kms_arena_new(0)) == NULL)
        return KMS_ERR_NOMEM;
    L.a = a;
    L.c = kms_arena_alloc(a, sizeof(conf_t));
    if (L.c == NULL) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    conf_defaults(L.c);
    L.c->priv_ = a;

    const unsigned char *text = len ? data : (const unsigned char *)"";
    if ((rc = scan_events(&L, text, len)) != 0)
        goto out;
    if (!yaml_parser_initialize(&p)) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&p, text, len);
    if (!yaml_parser_load(&p, &doc)) {
        fail_at(&L, p.problem_mark, NULL, NULL, "YAML error: %s", p.problem ? p.problem : "?");
        rc = KMS_ERR_CONFIG;
        goto out;
    }
    have_doc = 1;
    L.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && (rc = walk_mapping(&L, root, conf_schema, NULL)) != 0)
        goto out;
    if (with_env && (rc = apply_env(&L)) != 0)
        goto out;
    if ((rc = cross_check(&L)) != 0)
        goto out;
    *out = L.c;
    a = NULL;
    rc = 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&p);
    kms_arena_free(a);
    if (rc == KMS_ERR_NOMEM && err && err->msg[0] == '\0')
        kms_error_set(err, rc, "%s: out of memory", L.name);
    return rc;
}

int conf_load_buffer(const char *name, const char *dir, const void *data, size_t len,
                     conf_t **out, kms_error_t *err)
{
    return load_buffer(name, dir, data, len, false, out, err);
}

int conf_load(const char *path, conf_t **out, kms_error_t *err)
{
    int fd = -1, rc;
    unsigned char *buf = NULL;
    size_t len = 0;
    char abs[PATH_MAX], dir[PATH_MAX];
    struct stat st;

    if (out)
        *out = NULL;
    if (path == NULL || path[0] == '\0' || out == NULL)
        return KMS_ERR_INVAL;
    kms_error_clear(err);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = kms_error_set(err, KMS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONF_MAX_FILE) {
        rc = kms_error_set(err, KMS_ERR_CONFIG, "%s: not a regular file of at most %d bytes", path,
                           CONF_MAX_FILE);
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = kms_error_set(err, KMS_ERR_IO, "%s: read failed: %s", path,
                               n < 0 ? strerror(errno) : "short read");
            goto out;
        }
        len += (size_t)n;
    }

    /* Absolute path of the file, and its directory for relative paths. */
    if (path[0] == '/') {
        if (strlen(path) + 1 > sizeof(abs)) {
            rc = KMS_ERR_CONFIG;
            goto out;
        }
        memcpy(abs, path, strlen(path) + 1);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            rc = KMS_ERR_IO;
            goto out;
        }
        if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= sizeof(abs)) {
            rc = KMS_ERR_CONFIG;
            goto out;
        }
    }
    memcpy(dir, abs, strlen(abs) + 1);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';

    rc = load_buffer(path, dir, buf, len, true, out, err);
    if (rc == 0) {
        const char *p = kms_arena_strdup((kms_arena_t *)(*out)->priv_, abs);
        if (p == NULL) {
            conf_free(*out);
            *out = NULL;
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        (*out)->path = p;
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

void conf_free(conf_t *c)
{
    if (c == NULL)
        return;
    kms_arena_free((kms_arena_t *)c->priv_);
}
