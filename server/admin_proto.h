/*
 * server/admin_proto.h: the admin socket's request framing and decoding as
 * pure functions (no socket, no store), so server/admin.c and the fuzz
 * target tests/fuzz/fuzz_admin.c run the very same code. The protocol
 * itself (tags, versions, commands) is described in server/access.h.
 */
#ifndef KMS_SERVER_ADMIN_PROTO_H
#define KMS_SERVER_ADMIN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "ttlv/ttlv.h"

/*
 * Check the 8-byte TTLV header that opens every admin message: tag
 * ADMIN_REQUEST, type Structure, body length a multiple of 8 and at most
 * SRV_ADMIN_MAX_MESSAGE - 8. Returns 0 with *body_len set, or
 * KMS_ERR_PROTO. Any thread.
 */
int srv_admin_check_header(const uint8_t hdr[8], uint32_t *body_len);

/*
 * Decode one complete admin message (header included, `len` bytes) into
 * arena `a`: the header check above, the length must match the header
 * exactly, then the TTLV decoder with its default limits. Returns 0 with
 * *req_out the ADMIN_REQUEST structure, or KMS_ERR_PROTO / KMS_ERR_LIMIT
 * (the decoder's depth and item limits) with err->msg / err->offset saying
 * why (err may be NULL), or KMS_ERR_NOMEM (arena limit). It does not
 * look at the request's fields: srv_admin_execute() validates the protocol
 * version, the command and its arguments. Any thread.
 */
int srv_admin_decode_request(const uint8_t *msg, size_t len, kms_arena_t *a,
                             ttlv_item_t **req_out, kms_error_t *err);

#endif /* KMS_SERVER_ADMIN_PROTO_H */
