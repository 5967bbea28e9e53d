/*
 * crypto/op.c: the operation object the cryptographic services share
 * (crypto_op_t): feed, finish, free. Each service (cipher.c, sign.c,
 * mac.c, hash.c) supplies the functions; operations that cannot stream
 * get their input kept here, wiped when freed, and see it as one part at
 * the final step.
 *
 * It holds no key material itself beyond what the services' OpenSSL
 * contexts hold; those are freed (and so cleansed) by dispose.
 */
#include <stdlib.h>

#include "crypto/crypto_int.h"

bool crypto_op_streamable(const crypto_op_t *op)
{
    return op && op->streamable;
}

enum crypto_svc crypto_op_svc(const crypto_op_t *op)
{
    return op->svc;
}

int crypto_op_update(crypto_op_t *op, const uint8_t *data, size_t len, kms_buf_t *out,
                     kms_error_t *err)
{
    kms_error_clear(err);
    if (!op || (!data && len))
        return kms_error_set(err, KMS_ERR_INVAL, "no operation");
    if (!op->streamable) {
        int rc = kms_buf_append(&op->held, data, len);
        if (rc)
            return crypto_invalid(err, "input too large for this mechanism (at most %u bytes)",
                                  CRYPTO_HELD_MAX);
        return 0;
    }
    if (len == 0)
        return 0;
    return crypto_error_ensure(err, op->update(op, data, len, out, err));
}

int crypto_op_final(crypto_op_t *op, kms_buf_t *out, crypto_final_t *fin, kms_error_t *err)
{
    kms_error_clear(err);
    if (!op || !fin)
        return kms_error_set(err, KMS_ERR_INVAL, "no operation");
    fin->tag_out_len = 0;
    fin->valid = false;
    return crypto_error_ensure(err, op->final(op, op->held.data, op->held.len, out, fin, err));
}

void crypto_op_free(crypto_op_t *op)
{
    if (!op)
        return;
    kms_buf_dispose_wipe(&op->held);
    op->dispose(op); /* frees op itself */
}
