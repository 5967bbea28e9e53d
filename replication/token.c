/*
 * replication/token.c: the join token's text form (repl.h, "joining").
 *
 * "kmsd-join-v1." then base64url without padding (RFC 4648 section 5) of
 * one TTLV TOKEN structure with the replication tags, fields in a fixed
 * order as in frames (frame.c's reader and writer), so a token decodes
 * only if it is exactly what an inviter writes. The text is bounded
 * (REPL_TOKEN_TEXT_MAX) before anything is decoded.
 *
 * It deliberately knows nothing of invites or the store (join.c): a token
 * is checked against the inviter's record only when it is used.
 */
#include <string.h>

#include <openssl/evp.h>

#include "replication/repl_int.h"

/* Longest token text accepted: eight long addresses fit easily. */
#define REPL_TOKEN_TEXT_MAX 8192

static void build(repl_wr_t *w, ttlv_item_t *root, const repl_token_t *t)
{
    repl_wr_int(w, root, REPL_TAG_PROTOCOL_VERSION, REPL_PROTO_VERSION);
    repl_wr_text(w, root, REPL_TAG_CLUSTER_ID, t->cluster_id, REPL_ID_MAX);
    for (size_t i = 0; i < t->n_addrs; i++)
        repl_wr_text(w, root, REPL_TAG_PEER_ADDR, t->addrs[i], 255);
    repl_wr_bytes(w, root, REPL_TAG_SHA256, t->ca_sha256, sizeof t->ca_sha256);
    repl_wr_text(w, root, REPL_TAG_INVITE_ID, t->invite_id, REPL_INVITE_ID_LEN);
    repl_wr_bytes(w, root, REPL_TAG_SECRET, t->secret->data, t->secret->len);
    repl_wr_long(w, root, REPL_TAG_EXPIRES_MS, t->expires_ms);
}

int repl_token_encode(const repl_token_t *t, kms_buf_t *out, kms_error_t *err)
{
    kms_buf_t bin;
    repl_wr_t w = {.arena = NULL, .err = err, .rc = 0};
    size_t mark = out ? out->len : 0;
    int rc;

    if (!t || !out)
        return kms_error_set(err, KMS_ERR_INVAL, "no token");
    if (t->n_addrs == 0 || t->n_addrs > REPL_TOKEN_ADDRS_MAX)
        return kms_error_set(err, KMS_ERR_INVAL, "a token names 1 to %d peer addresses",
                             REPL_TOKEN_ADDRS_MAX);
    if (!t->secret || t->secret->len != REPL_JOIN_SECRET_LEN)
        return kms_error_set(err, KMS_ERR_INVAL, "a token needs a %d-byte secret",
                             REPL_JOIN_SECRET_LEN);
    kms_buf_init(&bin, REPL_TOKEN_TEXT_MAX);
    if (!(w.arena = kms_arena_new(0)))
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    ttlv_item_t *root = ttlv_new_struct(w.arena, NULL, REPL_TAG_TOKEN);
    if (!root)
        repl_wr_fail(&w, KMS_ERR_NOMEM, "out of memory");
    build(&w, root, t);
    if ((rc = w.rc) != 0)
        goto out;
    if ((rc = ttlv_encode(root, &bin)) != 0) {
        kms_error_set(err, rc, "token too long");
        goto out;
    }
    /* base64 of n bytes is 4 * ceil(n / 3) characters plus the NUL. */
    size_t b64 = 4 * ((bin.len + 2) / 3);
    rc = kms_buf_append(out, REPL_TOKEN_PREFIX, strlen(REPL_TOKEN_PREFIX));
    if (rc == 0)
        rc = kms_buf_reserve(out, b64 + 1);
    if (rc) {
        kms_error_set(err, rc, "token does not fit the output buffer");
        goto out;
    }
    char *p = (char *)out->data + out->len;
    int n = EVP_EncodeBlock((unsigned char *)p, bin.data, (int)bin.len);
    /* base64url, unpadded */
    while (n > 0 && p[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        p[i] = p[i] == '+' ? '-' : p[i] == '/' ? '_' : p[i];
    p[n] = '\0';
    out->len += (size_t)n + 1;
    rc = 0;
out:
    if (rc)
        out->len = mark;
    kms_buf_dispose_wipe(&bin);
    kms_arena_free(w.arena); /* wiped: it held the secret */
    return rc;
}

/* base64url (unpadded) text -> bytes in out (cap bytes). */
static int unbase64url(const char *s, size_t n, uint8_t *out, size_t cap, size_t *len_out)
{
    char tmp[REPL_TOKEN_TEXT_MAX + 4];
    if (n == 0 || n > REPL_TOKEN_TEXT_MAX || n % 4 == 1)
        return KMS_ERR_PROTO;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return KMS_ERR_PROTO;
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t pad = (4 - n % 4) % 4;
    memset(tmp + n, '=', pad);
    if ((n + pad) / 4 * 3 > cap)
        return KMS_ERR_PROTO;
    int got = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)(n + pad));
    kms_wipe(tmp, sizeof tmp);
    if (got < 0 || (size_t)got < pad)
        return KMS_ERR_PROTO;
    *len_out = (size_t)got - pad; /* EVP_DecodeBlock counts the padding as zeros */
    return 0;
}

int repl_token_decode(const char *text, repl_token_t *t, kms_error_t *err)
{
    static const size_t plen = sizeof(REPL_TOKEN_PREFIX) - 1;
    uint8_t bin[REPL_TOKEN_TEXT_MAX];
    size_t len = 0;
    kms_arena_t *a = NULL;
    ttlv_item_t *root = NULL;
    int rc;

    if (!t)
        return kms_error_set(err, KMS_ERR_INVAL, "no token");
    memset(t, 0, sizeof *t);
    if (!text || strncmp(text, REPL_TOKEN_PREFIX, plen) != 0)
        return kms_error_set(err, KMS_ERR_PROTO, "not a kmsd join token (it starts with '%s')",
                             REPL_TOKEN_PREFIX);
    size_t n = strnlen(text + plen, REPL_TOKEN_TEXT_MAX + 1);
    /* Copied from a terminal: a trailing newline or spaces are not part of it. */
    while (n > 0 && (text[plen + n - 1] == '\n' || text[plen + n - 1] == '\r' ||
                     text[plen + n - 1] == ' '))
        n--;
    if (unbase64url(text + plen, n, bin, sizeof bin, &len) != 0)
        return kms_error_set(err, KMS_ERR_PROTO, "the join token is damaged (not base64url)");
    if (!(a = kms_arena_new(0))) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    ttlv_limits_t lim = {.max_depth = 2, .max_items = 64};
    kms_error_t te;
    kms_error_clear(&te);
    if (ttlv_decode(bin, len, &lim, a, &root, &te) != 0 || root->tag != REPL_TAG_TOKEN ||
        root->type != TTLV_STRUCTURE) {
        rc = kms_error_set(err, KMS_ERR_PROTO, "the join token is damaged (%s)",
                           te.code ? kms_error_msg(&te) : "not a TOKEN");
        goto out;
    }
    kms_error_t fe;
    kms_error_clear(&fe);
    repl_rd_t r;
    repl_rd_init(&r, root, a, &fe);
    int32_t v = repl_rd_int(&r, REPL_TAG_PROTOCOL_VERSION);
    if (r.rc == 0 && v != REPL_PROTO_VERSION)
        repl_rd_fail(&r, NULL, KMS_ERR_PROTO, "join token of protocol version %d (this kmsctl: %d)",
                     v, REPL_PROTO_VERSION);
    repl_rd_text_into(&r, REPL_TAG_CLUSTER_ID, t->cluster_id, sizeof t->cluster_id);
    while (repl_rd_peek(&r, REPL_TAG_PEER_ADDR)) {
        if (t->n_addrs == REPL_TOKEN_ADDRS_MAX) {
            repl_rd_fail(&r, NULL, KMS_ERR_PROTO, "more than %d addresses", REPL_TOKEN_ADDRS_MAX);
            break;
        }
        repl_rd_text_into(&r, REPL_TAG_PEER_ADDR, t->addrs[t->n_addrs], sizeof t->addrs[0]);
        t->n_addrs++;
    }
    if (r.rc == 0 && t->n_addrs == 0)
        repl_rd_fail(&r, NULL, KMS_ERR_PROTO, "no inviter address");
    repl_bytes_t h = repl_rd_bytes(&r, REPL_TAG_SHA256, sizeof t->ca_sha256);
    if (r.rc == 0 && h.len != sizeof t->ca_sha256)
        repl_rd_fail(&r, NULL, KMS_ERR_PROTO, "CA digest of %zu bytes", h.len);
    else if (r.rc == 0)
        memcpy(t->ca_sha256, h.p, h.len);
    repl_rd_text_into(&r, REPL_TAG_INVITE_ID, t->invite_id, sizeof t->invite_id);
    t->secret = repl_rd_secret(&r, REPL_TAG_SECRET, REPL_JOIN_SECRET_LEN);
    if (r.rc == 0 && t->secret->len != REPL_JOIN_SECRET_LEN)
        repl_rd_fail(&r, NULL, KMS_ERR_PROTO, "secret of %zu bytes", t->secret->len);
    t->expires_ms = repl_rd_long(&r, REPL_TAG_EXPIRES_MS);
    repl_rd_end(&r);
    if ((rc = r.rc) != 0)
        kms_error_set(err, KMS_ERR_PROTO, "the join token is damaged (%s)", kms_error_msg(&fe));
out:
    kms_wipe(bin, sizeof bin);
    kms_arena_free(a);
    return rc ? KMS_ERR_PROTO : 0;
}

void repl_token_dispose(repl_token_t *t)
{
    if (!t)
        return;
    kms_secret_free(t->secret);
    t->secret = NULL;
}
