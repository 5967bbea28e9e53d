/*
 * conf/values.c: parsers for the scalar forms the configuration accepts:
 * durations ("10s", "500ms", "2m", plain seconds), sizes ("1MiB", "64KiB",
 * plain bytes) and listen addresses ("ADDR:PORT", "[V6]:PORT").
 *
 * Pure string functions with overflow-checked arithmetic; they do not
 * resolve host names or check that an address is local (the server does,
 * when it binds).
 */
#include <ctype.h>
#include <string.h>

#include "conf/conf.h"

struct unit {
    const char *name;
    uint64_t mult;
};

/*
 * "<digits>[.<digits>][ ]<unit>" -> value * unit, rounded down. `units` is
 * terminated by name == NULL; an empty suffix uses `bare_mult`.
 */
static int parse_scaled(const char *s, const struct unit *units, uint64_t bare_mult,
                        uint64_t *out)
{
    uint64_t ip = 0, frac = 0, den = 1, mult = 0;
    const char *p = s;

    if (s == NULL || !isdigit((unsigned char)*p))
        return KMS_ERR_CONFIG;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (ip > (UINT64_MAX - d) / 10)
            return KMS_ERR_CONFIG;
        ip = ip * 10 + d;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return KMS_ERR_CONFIG;
        for (; isdigit((unsigned char)*p); p++) {
            if (den >= 1000)
                return KMS_ERR_CONFIG; /* at most 3 decimals: "1.5s", "0.25GiB" */
            frac = frac * 10 + (uint64_t)(*p - '0');
            den *= 10;
        }
    }
    if (*p == ' ' && *++p == '\0')
        return KMS_ERR_CONFIG; /* "10 " */
    if (*p == '\0') {
        mult = bare_mult;
    } else {
        for (const struct unit *u = units; u->name; u++)
            if (strcmp(p, u->name) == 0) {
                mult = u->mult;
                break;
            }
        if (mult == 0)
            return KMS_ERR_CONFIG;
    }
    if (den > 1 && mult == 1)
        return KMS_ERR_CONFIG; /* "1.5" bytes, "0.5ms": no fractions of the base unit */
    if (ip != 0 && mult > UINT64_MAX / ip)
        return KMS_ERR_CONFIG;
    uint64_t v = ip * mult;
    /* frac < den <= 1000 and mult <= 2^40, so frac * mult < 2^50 fits. */
    uint64_t f = frac * mult / den;
    if (v > UINT64_MAX - f)
        return KMS_ERR_CONFIG;
    *out = v + f;
    return 0;
}

int conf_parse_duration_ms(const char *s, uint64_t *ms_out)
{
    static const struct unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0},
    };
    uint64_t v;
    if (parse_scaled(s, units, 1000, &v) != 0)
        return KMS_ERR_CONFIG;
    *ms_out = v;
    return 0;
}

int conf_parse_size(const char *s, uint64_t *bytes_out)
{
    static const struct unit units[] = {
        {"B", 1},
        {"kB", 1000ULL}, {"KB", 1000ULL}, {"KiB", 1ULL << 10},
        {"MB", 1000000ULL}, {"MiB", 1ULL << 20},
        {"GB", 1000000000ULL}, {"GiB", 1ULL << 30},
        {"TB", 1000000000000ULL}, {"TiB", 1ULL << 40},
        {NULL, 0},
    };
    uint64_t v;
    if (parse_scaled(s, units, 1, &v) != 0)
        return KMS_ERR_CONFIG;
    *bytes_out = v;
    return 0;
}

static int host_name_ok(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_')
            return 0;
    }
    return 1;
}

static int host_v6_ok(const char *h, size_t n)
{
    size_t colons = 0;
    if (n < 2 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '%') { /* zone id: fe80::1%eth0 */
            for (i++; i < n; i++)
                if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
                    return 0;
            break;
        }
        if (c == ':')
            colons++;
        else if (!isxdigit(c) && c != '.')
            return 0;
    }
    return colons >= 2;
}

int conf_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port_out)
{
    const char *h, *ps, *colon;
    size_t hn;

    if (s == NULL || host == NULL || hostlen == 0)
        return KMS_ERR_CONFIG;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return KMS_ERR_CONFIG;
        h = s + 1;
        hn = (size_t)(rb - h);
        if (!host_v6_ok(h, hn))
            return KMS_ERR_CONFIG;
        ps = rb + 2;
    } else {
        colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return KMS_ERR_CONFIG; /* no port, or an IPv6 address without brackets */
        h = s;
        hn = (size_t)(colon - s);
        if (!host_name_ok(h, hn))
            return KMS_ERR_CONFIG;
        ps = colon + 1;
    }
    if (*ps == '\0' || strlen(ps) > 5)
        return KMS_ERR_CONFIG;
    unsigned long port = 0;
    for (const char *q = ps; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return KMS_ERR_CONFIG;
        port = port * 10 + (unsigned long)(*q - '0');
    }
    if (port < 1 || port > 65535 || hn + 1 > hostlen)
        return KMS_ERR_CONFIG;
    memcpy(host, h, hn);
    host[hn] = '\0';
    if (port_out)
        *port_out = (uint16_t)port;
    return 0;
}
