/* common/err.c: the one table from KMS_ERR_* codes to messages. */
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
