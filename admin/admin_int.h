/*
 * admin/admin_int.h: private to admin/ (and its unit tests): what the
 * command handlers share (the request being executed and its response
 * records), the cluster commands (cluster.c), the backup and restore
 * commands the command table calls (backup.c) and the backup file format
 * they write and read (backup_format.c).
 *
 * It deliberately declares nothing a client of the protocol needs.
 */
#ifndef KMS_ADMIN_INT_H
#define KMS_ADMIN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "admin/admin.h"

/* ------------------------------------------------------------ cmds.c */
/* One admin request being executed: the command handlers (cmds.c,
 * cluster.c) read its arguments and add RECORDs to its response. */
typedef struct admin_req {
    const admin_options_t *opt;
    int64_t started_us;
    const char *who;
    const ttlv_item_t *req;
    int fd;                      /* passed with the request, or -1 */
    kms_arena_t *a;
    ttlv_item_t *resp;
    char msg[512];
    const char *target;          /* tenant/client name for the audit record */
    char target_buf[128];        /* owns `target` when it came from a handler's local */
    const char *tenant;
    int conn_fd;                 /* progress goes here when asked for, or -1 */
    int64_t progress_us;         /* when the last progress message went out */
    char progress_phase[32];     /* and its phase */
} admin_req_t;

/* A text argument of the request (NULL when absent or not text). */
const char *admin_arg_text(const admin_req_t *r, uint32_t tag);
/* A new RECORD in the response, and its fields. NULL / KMS_ERR_NOMEM. */
ttlv_item_t *admin_rec_new(admin_req_t *r);
int admin_field_text(admin_req_t *r, ttlv_item_t *rec, const char *name, const char *v);
int admin_field_long(admin_req_t *r, ttlv_item_t *rec, const char *name, int64_t v);
int admin_field_bool(admin_req_t *r, ttlv_item_t *rec, const char *name, bool v);
/* Set the response MESSAGE and return rc (a handler's refusal). */
int admin_refuse(admin_req_t *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- progress.c */
/* socket.c: write n bytes to an admin connection within its I/O timeout
 * (10 s in all). 0 or KMS_ERR_IO. */
int admin_write_all(int fd, const uint8_t *p, size_t n);
/*
 * An admin_progress_cb with arg = the admin_req_t: sends one
 * ADMIN_PROGRESS message on r->conn_fd when the request carried
 * ARG_PROGRESS = true, at most one per 100 ms unless the phase changed or
 * the work is complete. A connection that cannot take it gets no more
 * (conn_fd = -1); the command goes on. Admin thread.
 */
void admin_progress(void *arg, const char *phase, const char *unit, int64_t done, int64_t total);

/* cluster.c: cluster.invite | status | verify | remove. */
int admin_cluster_invite(admin_req_t *r, store_reader_t *rd);
int admin_cluster_status(admin_req_t *r, store_reader_t *rd);
int admin_cluster_verify(admin_req_t *r, store_reader_t *rd);
int admin_cluster_remove(admin_req_t *r, store_reader_t *rd);

/*
 * backup.c: write a portable encrypted backup into `fd` / restore one
 * from `fd` (a file kmsctl opened and passed with SCM_RIGHTS). The backup
 * key is Argon2id(pass) or `rawkey` (32 bytes). `progress` (may be NULL)
 * is told how far it got: create "backing up" (objects); restore "verifying" (bytes of
 * the file), then "restoring" (objects). On failure err says why.
 * *count_out: objects written / restored. Admin thread.
 */
int admin_backup_create(const admin_options_t *opt, int fd, const char *pass,
                        const ttlv_item_t *rawkey, admin_progress_cb progress,
                        void *progress_arg, int64_t *count_out, kms_error_t *err);
int admin_backup_restore(const admin_options_t *opt, int fd, const char *pass,
                         const ttlv_item_t *rawkey, admin_progress_cb progress,
                         void *progress_arg, int64_t *count_out, kms_error_t *err);

/* ------------------------------------------------- backup_format.c */
/* File: "KMSDBAK1", then TTLV items BK_HEADER, BK_TENANT*, BK_CLIENT*,
 * BK_OBJECT*, BK_END{count, mac} (described in backup_format.c). */
#define BK_MAGIC "KMSDBAK1"
#define BK_FORMAT 1
#define BK_MAX_ITEM (64u << 20)
#define BK_ARGON_T 3
#define BK_ARGON_M (64 * 1024)
#define BK_ARGON_P 1

enum {
    BK_HEADER = 0x540100, BK_FORMAT_TAG, BK_KDF, BK_SALT, BK_T, BK_M, BK_P, BK_CREATED, BK_NODE,
    BK_CHECK,
    BK_TENANT = 0x540110, BK_CLIENT, BK_OBJECT, BK_ATTR,
    BK_NAME = 0x540120, BK_TENANT_NAME, BK_ROLE, BK_KIND, BK_CERT, BK_PWHASH, BK_TIME,
    BK_ID, BK_TYPE, BK_STATE, BK_ARCHIVED, BK_BLOB, BK_INDEX, BK_VALUE, BK_SKEY, BK_NKEY,
    BK_DEVICE_SERIAL = 0x540130, BK_DEVICE_ID, BK_NETWORK_ID, BK_MACHINE_ID, BK_MEDIA_ID,
    BK_DISABLED_US, BK_DISABLED_REASON,
    BK_END = 0x54011F, BK_COUNT = 0x540140, BK_MAC,
};

typedef struct bk_keys {
    uint8_t enc[32];
    uint8_t mac[32];
} bk_keys_t;

/* Output: every item is encoded into buf, MAC'd (all but the trailer) and
 * written; the first error sticks in err and later items are skipped. */
typedef struct bk_out {
    int fd;
    EVP_MAC_CTX *mac;
    kms_buf_t buf;
    int err;
} bk_out_t;

/* Input: items read from fd, MAC'd while mac is not NULL. */
typedef struct bk_in {
    int fd;
    EVP_MAC_CTX *mac; /* NULL: not MAC'ing */
} bk_in_t;

/* The backup's keys from a passphrase (Argon2id with salt and cost t, m, p
 * as the header gives them, bounded) or a 32-byte key item.
 * 0, KMS_ERR_INVAL, KMS_ERR_CRYPTO. */
int admin_bk_derive(const char *pass, const ttlv_item_t *rawkey, const uint8_t *salt, size_t saltlen,
                    uint32_t t, uint32_t m, uint32_t p, bk_keys_t *keys);
/* HMAC-SHA256 context under `key`; NULL on failure. */
EVP_MAC_CTX *admin_bk_mac_new(const uint8_t key[32]);
/* Encode `it`, MAC it when `mac`, write it (errors stick in o->err). */
void admin_bk_put(bk_out_t *o, const ttlv_item_t *it, bool mac);
/* Magic and header (KDF, salt, default cost, creation time, node, key
 * check value), MAC'd. 0, KMS_ERR_IO, KMS_ERR_NOMEM. */
int admin_bk_write_header(bk_out_t *o, const bk_keys_t *keys, bool rawkey, const uint8_t *salt,
                          size_t saltlen, const char *node, kms_arena_t *a);
/* The trailer: object count and the MAC of everything before it. */
int admin_bk_write_trailer(bk_out_t *o, int64_t count, kms_arena_t *a);
/* AES-256-GCM with AAD "kmsd-backup-v1:" + id. enc: out = nonce(12) || ct
 * || tag(16); dec: `in` is that and out the plaintext. 0, KMS_ERR_CRYPTO,
 * KMS_ERR_NOMEM. */
int admin_bk_gcm(bool enc, const uint8_t key[32], const char *id, const uint8_t *in, size_t len,
                 kms_buf_t *out);
/* Next item into `a` (the trailer is returned but never MAC'd). 0,
 * KMS_ERR_PROTO (truncated or malformed), KMS_ERR_NOMEM, KMS_ERR_CRYPTO. */
int admin_bk_get(bk_in_t *in, kms_arena_t *a, ttlv_item_t **out);
/* A text field of an item (NULL when absent) / a number (dflt). */
const char *admin_bk_text(const ttlv_item_t *p, uint32_t tag);
int64_t admin_bk_num(const ttlv_item_t *p, uint32_t tag, int64_t dflt);
/* Rewind `fd`, check magic, format and key check value; derive the keys
 * and start the MAC over magic + header. Leaves fd after the header. On
 * failure err says why (not a backup, unsupported format, wrong key...). */
int admin_bk_open(int fd, const char *pass, const ttlv_item_t *rawkey, kms_arena_t *a,
                  bk_keys_t *keys, EVP_MAC_CTX **mac_out, kms_error_t *err);
/* Check the trailer `end` against the MAC of everything read before it;
 * *count_out = its object count (-1 when missing). 0 or KMS_ERR_CRYPTO. */
int admin_bk_check_trailer(EVP_MAC_CTX *mac, const ttlv_item_t *end, int64_t *count_out);

#endif /* KMS_ADMIN_INT_H */
