/*
 * conf/dump.c: render a conf_t as YAML (for `kmsd --check-config`), by
 * walking the same schema table the loader uses, so every setting appears.
 *
 * Output is valid input for conf_load(): strings double-quoted with YAML
 * escapes, durations in ms, sizes in bytes, the admin mode in octal. The
 * configuration never contains secrets (a PIN is named by file or
 * environment variable, never inlined), so nothing is redacted.
 *
 * conf_changed compares two configurations setting by setting through the
 * same rendering (a reload names what it could not apply).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"

static int put_str(FILE *f, const char *s)
{
    if (fputc('"', f) == EOF)
        return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (*p == '"' || *p == '\\')
            rc = fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            rc = fprintf(f, "\\x%02x", *p);
        else
            rc = fputc(*p, f) == EOF ? -1 : 1;
        if (rc < 0)
            return -1;
    }
    return fputc('"', f) == EOF ? -1 : 0;
}

/* One setting's value, as it follows "key:" in the YAML. */
static int put_value(const conf_t *c, const conf_field_t *t, const char *indent, FILE *f)
{
    const char *base = (const char *)c;
    int rc = 0;
    switch (t->type) {
    case CONF_T_STR:
    case CONF_T_PATH:
    case CONF_T_MODPATH:
    case CONF_T_HOSTPORT:
        rc = fputc(' ', f) == EOF ? -1 : put_str(f, *(const char *const *)(base + t->off));
        break;
    case CONF_T_HOSTLIST:
    case CONF_T_FPLIST: {
        const char *const *arr = *(const char *const *const *)(base + t->off);
        size_t n = *(const size_t *)(base + t->off2);
        if (n == 0) {
            rc = fputs(" []", f) == EOF ? -1 : 0;
            break;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = (fprintf(f, "\n%s  - ", indent) < 0) ? -1 : put_str(f, arr[i]);
        break;
    }
    case CONF_T_UINT:
    case CONF_T_OCTAL:
        rc = fprintf(f, t->type == CONF_T_OCTAL ? " \"0%o\"" : " %u",
                     *(const unsigned *)(base + t->off));
        break;
    case CONF_T_INT:
        rc = fprintf(f, " %d", *(const int *)(base + t->off));
        break;
    case CONF_T_BOOL:
        rc = fprintf(f, " %s", *(const bool *)(base + t->off) ? "true" : "false");
        break;
    case CONF_T_DURATION:
        rc = fprintf(f, " %llums", (unsigned long long)*(const uint64_t *)(base + t->off));
        break;
    case CONF_T_SIZE:
        rc = fprintf(f, " %zu", *(const size_t *)(base + t->off));
        break;
    case CONF_T_ENUM:
        rc = fprintf(f, " \"%s\"", conf_enum_name(t->enums, *(const int *)(base + t->off)));
        break;
    default:
        break;
    }
    return rc < 0 ? -1 : 0;
}

static int dump_table(const conf_t *c, const conf_field_t *t, const char *indent, FILE *f)
{
    for (; t->key; t++) {
        if (t->type == CONF_T_DEPRECATED)
            continue;
        if (fprintf(f, "%s%s:", indent, t->key) < 0)
            return -1;
        if (t->type == CONF_T_SECTION) {
            if (fputc('\n', f) == EOF || dump_table(c, t->sub, "  ", f) != 0)
                return -1;
            continue;
        }
        if (put_value(c, t, indent, f) != 0 || fputc('\n', f) == EOF)
            return -1;
    }
    return 0;
}

/* Does setting t have the same value in a and b? Compared as rendered, so
 * a list or a string compares by content. */
static int same_value(const conf_t *a, const conf_t *b, const conf_field_t *t, bool *same_out)
{
    char *va = NULL, *vb = NULL;
    size_t la = 0, lb = 0;
    int rc = KMS_ERR_NOMEM;
    FILE *fa = open_memstream(&va, &la);
    FILE *fb = open_memstream(&vb, &lb);
    if (!fa || !fb)
        goto out;
    rc = KMS_ERR_IO;
    if (put_value(a, t, "", fa) != 0 || put_value(b, t, "", fb) != 0 || fflush(fa) != 0 ||
        fflush(fb) != 0)
        goto out;
    *same_out = la == lb && memcmp(va, vb, la) == 0;
    rc = 0;
out:
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    free(va);
    free(vb);
    return rc;
}

static int changed_table(const conf_t *a, const conf_t *b, const conf_field_t *t,
                         const char *section, conf_key_cb cb, void *arg)
{
    for (; t->key; t++) {
        if (t->type == CONF_T_DEPRECATED)
            continue;
        if (t->type == CONF_T_SECTION) {
            int rc = changed_table(a, b, t->sub, t->key, cb, arg);
            if (rc)
                return rc;
            continue;
        }
        bool same = true;
        int rc = same_value(a, b, t, &same);
        if (rc)
            return rc;
        if (!same) {
            char key[128];
            snprintf(key, sizeof key, "%s%s%s", section ? section : "", section ? "." : "",
                     t->key);
            cb(key, arg);
        }
    }
    return 0;
}

int conf_changed(const conf_t *a, const conf_t *b, conf_key_cb cb, void *arg)
{
    if (a == NULL || b == NULL || cb == NULL)
        return KMS_ERR_INVAL;
    return changed_table(a, b, conf_schema, NULL, cb, arg);
}

int conf_dump(const conf_t *c, FILE *f)
{
    if (c == NULL || f == NULL)
        return KMS_ERR_INVAL;
    if (c->path && c->path[0] && fprintf(f, "# effective configuration of %s\n", c->path) < 0)
        return KMS_ERR_IO;
    if (dump_table(c, conf_schema, "", f) != 0 || fflush(f) != 0)
        return KMS_ERR_IO;
    return 0;
}
