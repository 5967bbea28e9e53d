/*
 * conf/dump.c: render a conf_t as YAML (for `kmsd --check-config`), by
 * walking the same schema table the loader uses, so every setting appears.
 *
 * Output is valid input for conf_load(): strings double-quoted with YAML
 * escapes, durations in ms, sizes in bytes, the admin mode in octal. The
 * configuration never contains secrets (a PIN is named by file or
 * environment variable, never inlined), so nothing is redacted.
 */
#include <stdio.h>

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

static int dump_table(const conf_t *c, const conf_field_t *t, const char *indent, FILE *f)
{
    const char *base = (const char *)c;
    for (; t->key; t++) {
        int rc = 0;
        if (t->type == CONF_T_DEPRECATED)
            continue;
        if (fprintf(f, "%s%s:", indent, t->key) < 0)
            return -1;
        if (t->type == CONF_T_SECTION) {
            if (fputc('\n', f) == EOF || dump_table(c, t->sub, "  ", f) != 0)
                return -1;
            continue;
        }
        switch (t->type) {
        case CONF_T_STR:
        case CONF_T_PATH:
        case CONF_T_MODPATH:
        case CONF_T_HOSTPORT:
            rc = fputc(' ', f) == EOF ? -1 : put_str(f, *(const char *const *)(base + t->off));
            break;
        case CONF_T_HOSTLIST: {
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
        if (rc < 0 || fputc('\n', f) == EOF)
            return -1;
    }
    return 0;
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
