/*
 * admin/proto.c: framing and decoding of admin-socket requests.
 *
 * Pure functions over bytes: the header check that decides how much to
 * read, and the TTLV decoding of the whole message. admin/socket.c does the
 * socket I/O around them; tests/fuzz/fuzz_admin.c feeds them arbitrary
 * bytes.
 *
 * It deliberately does not interpret the request (protocol version,
 * command, arguments): admin/cmds.c does, so there is one place that
 * decides what a field means.
 */

#include "admin/admin.h"

int admin_check_header(const uint8_t hdr[8], uint32_t *body_len)
{
    uint32_t tag = ((uint32_t)hdr[0] << 16) | ((uint32_t)hdr[1] << 8) | hdr[2];
    uint32_t blen = kms_be32(hdr + 4);
    if (tag != ADMIN_TAG_REQUEST || hdr[3] != TTLV_STRUCTURE ||
        blen > ADMIN_MAX_MESSAGE - 8 || blen % 8 != 0)
        return KMS_ERR_PROTO;
    *body_len = blen;
    return 0;
}

int admin_decode_request(const uint8_t *msg, size_t len, kms_arena_t *a,
                         ttlv_item_t **req_out, kms_error_t *err)
{
    uint32_t blen = 0;
    kms_error_clear(err);
    *req_out = NULL;
    if (!msg || len < 8 || admin_check_header(msg, &blen) != 0)
        return kms_error_set_at(err, KMS_ERR_PROTO, 0, "not an admin request (or too large)");
    if (len != (size_t)blen + 8)
        return kms_error_set_at(err, KMS_ERR_PROTO, len < (size_t)blen + 8 ? len : (size_t)blen + 8,
                                "message length does not match its header");
    return ttlv_decode(msg, len, NULL, a, req_out, err);
}
