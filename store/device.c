/*
 * store/device.c: a device client's identifiers (KMIP Device credential):
 * the checks store_client_set_device and the writer apply, and the packed
 * form store schema v9 kept them in (one text, 0x1f between the fields,
 * the serial number first), which store_device_unpack reads for what
 * older versions wrote: their replicated client entities and backups.
 *
 * It touches no database (no SQLite), so the replication frame codec and
 * its fuzz target link it alone. Nothing writes the packed form.
 */
#include <stdio.h>
#include <string.h>

#include "store/store.h"

/* The identifier fields in the order of store_device_t. */
static char *device_field(store_device_t *d, int i)
{
    char *f[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    return f[i];
}

static bool device_text_ok(const char *v)
{
    size_t n = strnlen(v, STORE_DEVICE_FIELD_MAX + 1);
    if (n > STORE_DEVICE_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

/* Every field as store_client_set_device requires, the serial number set. */
static bool device_ok(const store_device_t *d)
{
    const char *f[5] = {d->serial, d->device_id, d->network_id, d->machine_id, d->media_id};
    for (int i = 0; i < 5; i++)
        if (!device_text_ok(f[i]))
            return false;
    return d->serial[0] != '\0';
}

int store_client_set_device(store_client_t *c, const store_device_t *d)
{
    if (!c || !d || !device_ok(d))
        return KMS_ERR_INVAL;
    c->device = *d;
    c->cert_sha256[0] = '\0';
    snprintf(c->kind, sizeof c->kind, "device");
    return 0;
}

int store_client_device(const store_client_t *c, store_device_t *out)
{
    if (!out)
        return KMS_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (!c || strcmp(c->kind, "device") != 0 || !device_ok(&c->device))
        return KMS_ERR_INVAL;
    *out = c->device;
    return 0;
}

#define DEVICE_SEP '\x1f'

int store_device_unpack(const char *packed, store_device_t *out)
{
    if (!out)
        return KMS_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (!packed || strnlen(packed, STORE_DEVICE_PACKED_MAX + 1) > STORE_DEVICE_PACKED_MAX)
        return KMS_ERR_INVAL;
    const char *p = packed;
    for (int i = 0; i < 5; i++) {
        const char *end = i < 4 ? strchr(p, DEVICE_SEP) : p + strlen(p);
        if (!end || (size_t)(end - p) > STORE_DEVICE_FIELD_MAX)
            goto bad;
        char *f = device_field(out, i);
        memcpy(f, p, (size_t)(end - p));
        f[end - p] = '\0';
        p = end + 1;
    }
    if (device_ok(out))
        return 0;
bad:
    memset(out, 0, sizeof(*out));
    return KMS_ERR_INVAL;
}
