/*
 * admin/admin.h: kmsd's local administration protocol, its client side
 * (used by kmsctl) and its server side (used by kmsd).
 *
 * Protocol on a Unix socket (never on a network port): each message is
 * one TTLV Structure (8-byte header gives its length, at most
 * ADMIN_MAX_MESSAGE) with private tags in the 0x54xxxx extension range.
 * Request: ADMIN_REQUEST { PROTOCOL_VERSION, COMMAND, [arguments] }.
 * Response: ADMIN_RESPONSE { PROTOCOL_VERSION, STATUS (0 or KMS_ERR_*),
 * MESSAGE, RECORD* } where RECORD { FIELD* } and FIELD { FIELD_NAME,
 * FIELD_TEXT | FIELD_LONG | FIELD_BOOL }. backup.create / backup.restore
 * carry one file descriptor (SCM_RIGHTS) with the request's first bytes.
 * A request with another protocol version is answered with STATUS =
 * KMS_ERR_NOTSUP. One request per connection round trip; the client may
 * send several in sequence.
 * Progress: a request carrying ARG_PROGRESS = true to a long command
 * (backup.create, backup.restore) is answered by zero or more
 * ADMIN_PROGRESS { PROGRESS_PHASE, PROGRESS_UNIT, PROGRESS_DONE,
 * PROGRESS_TOTAL (-1 = unknown) } messages, at most about ten a second,
 * before its ADMIN_RESPONSE; without ARG_PROGRESS only the response comes.
 * Background work (the re-encryption after rotate.store-key, a joining
 * node's catch-up) is followed by polling rotate.status / cluster.status.
 *
 * Files: proto.c (framing and decoding, pure), client.c (kmsctl's side),
 * socket.c (the admin thread and its socket), cmds.c (what each command
 * does), backup.c and backup_format.c (portable encrypted backups).
 * A client (kmsctl) uses only the "protocol" and "client" parts below.
 *
 * It deliberately does not decide who a KMIP client is (kmip/auth.c does;
 * admin/ only hashes new passwords with kmip_password_hash) and holds no
 * server state of its own beyond what admin_options_t names.
 */
#ifndef KMS_ADMIN_H
#define KMS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"
#include "common/kms.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "replication/repl.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

/* -------------------------------------------------------------- protocol */
#define ADMIN_PROTOCOL_VERSION 1
#define ADMIN_MAX_MESSAGE (1u << 20)

#define ADMIN_TAGS(XX)                \
    XX(0x540001, REQUEST)             \
    XX(0x540002, PROTOCOL_VERSION)    \
    XX(0x540003, COMMAND)             \
    XX(0x540004, RESPONSE)            \
    XX(0x540005, STATUS)              \
    XX(0x540006, MESSAGE)             \
    XX(0x540007, RECORD)              \
    XX(0x540008, FIELD)               \
    XX(0x540009, FIELD_NAME)          \
    XX(0x54000A, FIELD_TEXT)          \
    XX(0x54000B, FIELD_LONG)          \
    XX(0x54000C, FIELD_BOOL)          \
    XX(0x540010, ARG_TENANT)          \
    XX(0x540011, ARG_NAME)            \
    XX(0x540012, ARG_ROLE)            \
    XX(0x540013, ARG_CERT_PEM)        \
    XX(0x540014, ARG_PASSWORD)        \
    XX(0x540015, ARG_FORCE)           \
    XX(0x540016, ARG_PASSPHRASE)      \
    XX(0x540017, ARG_KEY)             \
    XX(0x540018, ARG_BY_CN)           \
    XX(0x540019, ARG_TTL_MS)          \
    XX(0x54001A, ARG_ADDR)            \
    XX(0x54001B, ARG_NODE)            \
    XX(0x54001C, ARG_DEVICE_SERIAL)   \
    XX(0x54001D, ARG_DEVICE_ID)       \
    XX(0x54001E, ARG_NETWORK_ID)      \
    XX(0x54001F, ARG_MACHINE_ID)      \
    XX(0x540020, ARG_MEDIA_ID)        \
    XX(0x540021, ARG_REASON)          \
    XX(0x540030, PROGRESS)            \
    XX(0x540031, PROGRESS_PHASE)      \
    XX(0x540032, PROGRESS_UNIT)       \
    XX(0x540033, PROGRESS_DONE)       \
    XX(0x540034, PROGRESS_TOTAL)      \
    XX(0x540035, ARG_PROGRESS)

enum admin_tag {
#define XX(val, name) ADMIN_TAG_##name = (val),
    ADMIN_TAGS(XX)
#undef XX
};

/*
 * Check the 8-byte TTLV header that opens every admin message: tag
 * ADMIN_REQUEST, type Structure, body length a multiple of 8 and at most
 * ADMIN_MAX_MESSAGE - 8. Returns 0 with *body_len set, or
 * KMS_ERR_PROTO. Any thread.
 */
int admin_check_header(const uint8_t hdr[8], uint32_t *body_len);

/*
 * Decode one complete admin message (header included, `len` bytes) into
 * arena `a`: the header check above, the length must match the header
 * exactly, then the TTLV decoder with its default limits. Returns 0 with
 * *req_out the ADMIN_REQUEST structure, or KMS_ERR_PROTO / KMS_ERR_LIMIT
 * (the decoder's depth and item limits) with err->msg / err->offset saying
 * why (err may be NULL), or KMS_ERR_NOMEM (arena limit). It does not
 * look at the request's fields: admin_execute() validates the protocol
 * version, the command and its arguments. Any thread.
 */
int admin_decode_request(const uint8_t *msg, size_t len, kms_arena_t *a,
                         ttlv_item_t **req_out, kms_error_t *err);

/* ---------------------------------------------------------------- client */
/* A new ADMIN_REQUEST with the protocol version and `command` in `a`;
 * NULL on NOMEM. */
ttlv_item_t *admin_request_new(kms_arena_t *a, const char *command);

/*
 * Send `req` to the admin socket at `socket_path` (with the open file
 * `pass_fd` attached, SCM_RIGHTS, for backup and restore; -1 = none) and
 * read one answer into `a`. Returns 0 with *resp_out a well-formed
 * ADMIN_RESPONSE (whatever its STATUS: see admin_response_status), or
 * KMS_ERR_UNAVAIL (cannot connect), KMS_ERR_IO (cannot send, or the
 * connection closed early), KMS_ERR_PROTO (malformed answer), KMS_ERR_INVAL
 * (path too long), KMS_ERR_NOMEM, KMS_ERR_TIMEOUT (no whole answer within
 * the timeout set by admin_call_set_timeout), with err saying what
 * happened. The request's encoding is wiped after sending (it may hold a
 * password). Blocking; any thread.
 */
int admin_call(const char *socket_path, kms_arena_t *a, const ttlv_item_t *req, int pass_fd,
               ttlv_item_t **resp_out, kms_error_t *err);
/* The most time admin_call() spends on one call after connecting
 * (sending and reading the answer); 0 = no limit (the default). For the
 * process; set before calling. */
void admin_call_set_timeout(unsigned ms);

/* Progress of a long command: `phase` ("objects", "verifying", ...),
 * `unit` ("objects" or "bytes"), `done` of `total` (-1 = unknown). The
 * strings are valid during the call. */
typedef void (*admin_progress_cb)(void *arg, const char *phase, const char *unit, int64_t done,
                                  int64_t total);

/*
 * admin_call, also accepting ADMIN_PROGRESS messages before the answer:
 * each is passed to `cb` (NULL = ignored) on the calling thread. The
 * request asks for them with ARG_PROGRESS (the caller adds it). Same
 * returns as admin_call; a malformed progress message is KMS_ERR_PROTO.
 */
int admin_call_progress(const char *socket_path, kms_arena_t *a, const ttlv_item_t *req,
                        int pass_fd, admin_progress_cb cb, void *cb_arg, ttlv_item_t **resp_out,
                        kms_error_t *err);

/* STATUS of a response (0 or KMS_ERR_*); *msg_out (may be NULL) gets its
 * MESSAGE ("" when none). */
int admin_response_status(const ttlv_item_t *resp, const char **msg_out);

/* A FIELD's name ("?" when missing) and value item (NULL when missing). */
const char *admin_field_name(const ttlv_item_t *field);
const ttlv_item_t *admin_field_value(const ttlv_item_t *field);

/* Print the RECORDs of a response: as one JSON object (single) or array
 * when `json`, else as "name: value" lines (single) or a tab-separated
 * table with a header line. */
void admin_print_records(FILE *f, const ttlv_item_t *resp, bool single, bool json);

/* ---------------------------------------------------------------- server */
/* What the server's own structures know; filled by a callback it registers
 * (admin_options_t.status_cb). Fields left at -1 are unknown. */
typedef struct admin_status {
    int64_t connections;         /* open KMIP connections */
    int64_t requests;            /* KMIP requests served since start */
    const char *hsm;             /* hsm_describe() or NULL */
    int hsm_health;              /* hsm_health(): 0 ok, else KMS_ERR_* ; 1 = unknown */
    const char *listen;          /* "[::]:5696" or NULL */
    /* Abuse and fault counters since start (-1 = unknown). */
    int64_t unauthenticated;     /* open connections not yet authenticated */
    int64_t refused;             /* connections refused at limits.max_connections */
    int64_t evicted;             /* unauthenticated connections evicted for newer ones */
    int64_t memory_waits;        /* requests that waited for limits.request_memory */
    int64_t cancelled;           /* requests cancelled because their client went away */
    int64_t tenant_waits;        /* requests that waited for a limits.tenant_workers slot */
    int64_t audit_refused;       /* requests refused unrun: audit backlog full (on_full fail) */
    int64_t request_memory;      /* bytes of limits.request_memory reserved now */
} admin_status_t;
/* An admin thread (several may call it at once). */
typedef void (*admin_status_cb)(void *arg, admin_status_t *st);

typedef struct admin admin_t;

typedef struct admin_options {
    const char *socket_path;     /* conf admin.socket */
    unsigned mode;               /* conf admin.mode (e.g. 0600) */
    const char *group;           /* conf admin.group, "" or NULL = unchanged */
    store_t *store;
    kmip_password_cost_t password_cost; /* new password clients (kmip_password_hash); 0 = defaults */
    audit_t *audit;              /* every command leaves a record here; NULL = none */
    const char *client_ca;       /* conf tls.client_ca: certificates to register must chain to it */
    hsm_keyring_t *keyring;      /* backup/restore unseal and re-seal with it (NULL: refused) */
    const char *store_path;      /* conf store.path: backup snapshots go next to it */
    const char *version;         /* kmsd version string */
    admin_status_cb status_cb;   /* may be NULL */
    void *status_arg;
    /* "rotate.master|store-key|status" through keys/ (the caller started
     * it with keys_start); false = those commands are not supported. */
    bool key_rotation;
    /* cluster.*: "" or NULL = this node is not a cluster node. */
    const char *peer_listen;     /* conf replication.listen */
    const char *cluster_ca;      /* conf replication.ca */
    const char *cluster_ca_key;  /* conf replication.ca_key: "" = this node admits no nodes */
    repl_t *repl;                /* running replication (status, verify, remove); NULL = none */
} admin_options_t;

/*
 * Bind the socket (replacing a stale one; refusing when another kmsd
 * answers on it), chmod/chown it and start the admin thread. Returns 0,
 * KMS_ERR_IO, KMS_ERR_EXISTS (a live server owns the socket), KMS_ERR_CONFIG
 * (unknown group). The options' strings and handles must outlive
 * admin_stop().
 */
int admin_start(const admin_options_t *opt, admin_t **out);
/* Stop the thread, close and unlink the socket. NULL ok. */
void admin_stop(admin_t *ad);

/*
 * Execute one decoded request and build the ADMIN_RESPONSE in arena `a`
 * (never NULL unless NOMEM). `who` names the caller for the audit log
 * ("uid=0 pid=42"); `fd` is the file passed with the request or -1;
 * `conn_fd` is the caller's connection, on which ADMIN_PROGRESS messages
 * are written when the request asks for them (-1 = never). Runs on the
 * admin thread (socket.c) and in the fuzz target; store writes block it,
 * which is fine there.
 */
ttlv_item_t *admin_execute(const admin_options_t *opt, int64_t started_us, const char *who,
                           const ttlv_item_t *req, int fd, int conn_fd, kms_arena_t *a);

#endif /* KMS_ADMIN_H */
