/* common/err.c: the one table from KMS_ERR_* codes to messages, and the
 * error-detail struct every module fills the same way. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/kms.h"

const char *kms_strerror(int err)
{
    switch (err) {
    case KMS_OK:
        return "ok";
#define XX(name, val, msg) \
    case KMS_ERR_##name:   \
        return msg;
        KMS_ERR_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

void kms_error_clear(kms_error_t *e)
{
    if (!e)
        return;
    e->code = 0;
    e->reason = 0;
    e->offset = KMS_ERROR_NO_OFFSET;
    e->msg[0] = '\0';
}

static int error_vset(kms_error_t *e, int code, uint32_t reason, size_t offset, const char *fmt,
                      va_list ap)
{
    if (!e)
        return code;
    e->code = code;
    e->reason = reason;
    e->offset = offset;
    if (fmt)
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    else
        e->msg[0] = '\0';
    return code;
}

int kms_error_set(kms_error_t *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = error_vset(e, code, 0, KMS_ERROR_NO_OFFSET, fmt, ap);
    va_end(ap);
    return rc;
}

int kms_error_set_reason(kms_error_t *e, int code, uint32_t reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = error_vset(e, code, reason, KMS_ERROR_NO_OFFSET, fmt, ap);
    va_end(ap);
    return rc;
}

int kms_error_set_at(kms_error_t *e, int code, size_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = error_vset(e, code, 0, offset, fmt, ap);
    va_end(ap);
    return rc;
}

const char *kms_error_msg(const kms_error_t *e)
{
    if (!e)
        return kms_strerror(KMS_ERR_INTERNAL);
    return e->msg[0] ? e->msg : kms_strerror(e->code);
}

int kms_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return KMS_ERR_IO; /* errno kept for the caller */
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}
