/*
 * conf/conf_int.h: private to conf/. The schema table that drives both the
 * loader and the dumper, so that a setting's name, type, range and field
 * cannot drift apart between reading and printing.
 */
#ifndef KMS_CONF_INT_H
#define KMS_CONF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum conf_ftype {
    CONF_T_SECTION,  /* mapping; `sub` lists its keys */
    CONF_T_STR,      /* const char *; any scalar */
    CONF_T_PATH,     /* const char *; relative -> against the file's directory */
    CONF_T_MODPATH,  /* const char *; as PATH only when it contains '/' (dlopen name) */
    CONF_T_UINT,     /* unsigned, decimal, [min, max] */
    CONF_T_INT,      /* int, decimal, [min, max] */
    CONF_T_BOOL,     /* bool: true/false/yes/no/on/off */
    CONF_T_DURATION, /* uint64_t ms, [min, max] ms */
    CONF_T_SIZE,     /* size_t bytes, [min, max]; 0 also allowed when zero_ok */
    CONF_T_ENUM,     /* int-sized enum, one of `enums` */
    CONF_T_OCTAL,    /* unsigned, octal digits, [min, max] */
    CONF_T_HOSTPORT, /* const char *; "" or conf_parse_hostport() */
    CONF_T_HOSTLIST, /* const char *const * + size_t at off2; a sequence (or one scalar) */
    CONF_T_FPLIST,   /* as HOSTLIST, of certificate SHA-256 fingerprints: 64 hex digits,
                        ':' between bytes allowed; stored as 64 lower-case hex digits */
    CONF_T_DEPRECATED, /* accepted only with a value of `enums` (stored nowhere), logged as
                          deprecated with `hint`; any other value is an error; never dumped */
};

typedef struct conf_enum {
    const char *name;
    int value;
} conf_enum_t;

/* Extra check for a string value: 0 or KMS_ERR_CONFIG with `why` filled. */
typedef int (*conf_check_cb)(const char *value, char *why, size_t whylen);

typedef struct conf_field {
    const char *key;
    enum conf_ftype type;
    size_t off;                 /* offset of the value in conf_t */
    size_t off2;                /* HOSTLIST, FPLIST: offset of the count */
    int64_t min, max;           /* numeric range (ms for durations, bytes for sizes) */
    int zero_ok;                /* SIZE: 0 allowed besides [min, max] */
    size_t min_items, max_items;/* HOSTLIST, FPLIST */
    const conf_enum_t *enums;   /* ENUM: NULL-terminated */
    conf_check_cb check;        /* STR: optional */
    const struct conf_field *sub; /* SECTION: terminated by key == NULL */
    const char *hint;           /* DEPRECATED: what to use instead */
} conf_field_t;

/* The top-level schema, terminated by key == NULL. */
extern const conf_field_t conf_schema[];

/* Name of an enum value (for the dumper); "?" when unknown. */
const char *conf_enum_name(const conf_enum_t *e, int value);

/* Upper bound on the size of a configuration file. */
#define CONF_MAX_FILE (1024 * 1024)
/* Upper bound on YAML nesting (the schema needs 3). */
#define CONF_MAX_DEPTH 16

#endif
