/*
 * server/access.h: private header of kmsd's access control: who a client is
 * (auth.c), the local admin socket (admin*.c) and the hash-chained audit log
 * (audit*.c). Only server/ includes it (and the unit tests that compile
 * these files directly).
 *
 * It deliberately does not decide which objects an identity may touch:
 * kmip/ enforces tenant ownership with the kmip_identity_t returned here.
 */
#ifndef KMS_SERVER_ACCESS_H
#define KMS_SERVER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "kmip/kmip.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

/* ------------------------------------------------------------ identities */
typedef struct srv_access srv_access_t;

typedef struct srv_access_options {
    store_t *store;              /* clients and tenants tables (required) */
    /* Argon2id cost for new password hashes; 0 = defaults (OWASP: t=2,
     * m=19 MiB, p=1). Verification always uses the cost stored in the hash. */
    uint32_t argon2_t_cost;
    uint32_t argon2_m_kib;
    uint32_t argon2_parallelism;
} srv_access_options_t;

/* Create the access checker. Any thread. */
int srv_access_new(const srv_access_options_t *opt, srv_access_t **out);
/* Free it; every reader must have been returned (no request in flight). NULL ok. */
void srv_access_free(srv_access_t *a);

/*
 * The kmip_auth_cb: set kmip_config_t.auth = srv_access_auth_cb and
 * auth_arg = the srv_access_t. Resolves the identity from the certificate
 * (fingerprint, else CN for clients registered by CN) and/or the KMIP
 * Credential (user name + Argon2id password). Returns 0 or KMS_ERR_PERM
 * (and KMS_ERR_UNAVAIL when the store cannot be read). Every lookup goes to
 * the store, so a removed client is refused on its very next request; only
 * successful password verifications are cached (keyed by the stored hash,
 * so a changed or removed password invalidates them). Worker threads.
 */
int srv_access_auth_cb(void *arg, const kmip_peer_t *peer, const char *username,
                       const char *password, kmip_identity_t *id_out);

/*
 * For tls.require_registered: 0 when a certificate with this fingerprint (or,
 * for clients registered by CN without a fingerprint, this CN) is registered,
 * KMS_ERR_PERM when not (a log line says how to register it), or
 * KMS_ERR_UNAVAIL. One indexed SQLite read: cheap, but it does block, so the
 * server may call it from the TLS verify callback only because it is short.
 * sha256_hex is lower-case hex (64 chars); cn may be NULL. Any thread.
 */
int srv_access_cert_registered(srv_access_t *a, const char *sha256_hex, const char *cn);

/* Argon2id-encode `password` with the configured cost into out (>= 160
 * bytes). Returns 0, KMS_ERR_INVAL or KMS_ERR_CRYPTO. Any thread. */
int srv_access_hash_password(const srv_access_t *a, const char *password, char *out,
                             size_t outlen);

/* ------------------------------------------------------------- audit log */
typedef struct srv_audit srv_audit_t;

typedef struct srv_audit_options {
    const char *path;            /* the current file; rotated files are PATH.<UTC time>.<12-digit seq> */
    size_t rotate_size;          /* rotate before a line would make the file larger (0 = never) */
    bool fsync;                  /* fsync after each written batch */
    size_t max_queue;            /* records waiting for the writer (default 65536) */
} srv_audit_options_t;

/* The all-zero hash the very first line chains to. */
#define SRV_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/*
 * Open (or continue) the audit log and start its writer thread. An existing
 * file is continued: the sequence number and chain hash are taken from its
 * last complete line (a partial last line from a crash is cut off, with a
 * warning). Returns 0, KMS_ERR_IO, KMS_ERR_NOMEM.
 */
int srv_audit_open(const srv_audit_options_t *opt, srv_audit_t **out);
/* Write everything queued, fsync, stop the writer and close. NULL ok. */
void srv_audit_close(srv_audit_t *au);
/* Block until every record queued before the call is written (and fsync'ed
 * when configured), at most 10 s. 0, KMS_ERR_TIMEOUT (the disk refuses
 * writes: the writer keeps the records and retries every second),
 * KMS_ERR_STATE (closing). For tests, admin "audit status" and shutdown. */
int srv_audit_flush(srv_audit_t *au);

/* One audit record. Strings may be NULL (written as ""). */
typedef struct srv_audit_rec {
    const char *kind;            /* "kmip" | "admin" */
    const char *identity;
    const char *tenant;
    const char *address;
    const char *operation;       /* "Get", "tenant.add", ... */
    const char *object_id;
    const char *result;          /* "Success", "Operation Failed", "ok", "error" */
    const char *reason;          /* result reason or error text */
    long batch_count;            /* -1 = omit */
} srv_audit_rec_t;

/* Queue a record; never does I/O itself. Blocks only when the queue is full
 * (backpressure on worker threads; never call it from a loop thread with a
 * full queue in mind: the writer drains within one fsync). Returns 0,
 * KMS_ERR_NOMEM, KMS_ERR_STATE (closed). Any thread. */
int srv_audit_write(srv_audit_t *au, const srv_audit_rec_t *rec);

/* Chain state for "audit status": records written since open, the last
 * sequence number and hash, the current path. */
typedef struct srv_audit_status {
    uint64_t last_seq;
    char last_hash[65];
    uint64_t written;
    uint64_t rotations;
    uint64_t errors;             /* failed writes (the writer keeps and retries the records) */
} srv_audit_status_t;
int srv_audit_get_status(srv_audit_t *au, srv_audit_status_t *out);

/*
 * The process-wide audit log used by srv_audit_record() and the admin
 * socket; main.c sets it after srv_audit_open() and clears it (NULL) before
 * srv_audit_close().
 */
void srv_audit_set_global(srv_audit_t *au);
srv_audit_t *srv_audit_global(void);

/* The server calls this after every KMIP request (worker thread, after
 * kmip_handle()). No-op when no audit log is configured. */
void srv_audit_record(const kmip_summary_t *sum, const kmip_peer_t *peer);

/* ----------------------------------------------------------- admin socket */
/*
 * Protocol on the Unix socket (never on a network port): each message is
 * one TTLV Structure (8-byte header gives its length, at most
 * SRV_ADMIN_MAX_MESSAGE) with private tags in the 0x54xxxx extension range.
 * Request: ADMIN_REQUEST { PROTOCOL_VERSION, COMMAND, [arguments] }.
 * Response: ADMIN_RESPONSE { PROTOCOL_VERSION, STATUS (0 or KMS_ERR_*),
 * MESSAGE, RECORD* } where RECORD { FIELD* } and FIELD { FIELD_NAME,
 * FIELD_TEXT | FIELD_LONG | FIELD_BOOL }. backup.create / backup.restore
 * carry one file descriptor (SCM_RIGHTS) with the request's first bytes.
 * A request with another protocol
 * version is answered with STATUS = KMS_ERR_NOTSUP. One request per
 * connection round trip; the client may send several in sequence.
 */
#define SRV_ADMIN_PROTOCOL_VERSION 1
#define SRV_ADMIN_MAX_MESSAGE (1u << 20)

#define SRV_ADMIN_TAGS(XX)                  \
    XX(0x540001, ADMIN_REQUEST)             \
    XX(0x540002, ADMIN_PROTOCOL_VERSION)    \
    XX(0x540003, ADMIN_COMMAND)             \
    XX(0x540004, ADMIN_RESPONSE)            \
    XX(0x540005, ADMIN_STATUS)              \
    XX(0x540006, ADMIN_MESSAGE)             \
    XX(0x540007, ADMIN_RECORD)              \
    XX(0x540008, ADMIN_FIELD)               \
    XX(0x540009, ADMIN_FIELD_NAME)          \
    XX(0x54000A, ADMIN_FIELD_TEXT)          \
    XX(0x54000B, ADMIN_FIELD_LONG)          \
    XX(0x54000C, ADMIN_FIELD_BOOL)          \
    XX(0x540010, ADMIN_ARG_TENANT)          \
    XX(0x540011, ADMIN_ARG_NAME)            \
    XX(0x540012, ADMIN_ARG_ROLE)            \
    XX(0x540013, ADMIN_ARG_CERT_PEM)        \
    XX(0x540014, ADMIN_ARG_PASSWORD)        \
    XX(0x540015, ADMIN_ARG_FORCE)           \
    XX(0x540016, ADMIN_ARG_PASSPHRASE)      \
    XX(0x540017, ADMIN_ARG_KEY)             \
    XX(0x540018, ADMIN_ARG_BY_CN)

enum srv_admin_tag {
#define XX(val, name) SRV_TAG_##name = (val),
    SRV_ADMIN_TAGS(XX)
#undef XX
};

/* What the server engineer's structures know; filled by a callback they
 * register (srv_admin_options_t.status_cb). Fields left at -1 are unknown. */
typedef struct srv_admin_status {
    int64_t connections;         /* open KMIP connections */
    int64_t requests;            /* KMIP requests served since start */
    const char *hsm;             /* hsm_describe() or NULL */
    int hsm_health;              /* hsm_health(): 0 ok, else KMS_ERR_* ; 1 = unknown */
    const char *listen;          /* "[::]:5696" or NULL */
} srv_admin_status_t;
typedef void (*srv_admin_status_cb)(void *arg, srv_admin_status_t *st);

typedef struct srv_admin srv_admin_t;

typedef struct srv_admin_options {
    const char *socket_path;     /* conf admin.socket */
    unsigned mode;               /* conf admin.mode (e.g. 0600) */
    const char *group;           /* conf admin.group, "" or NULL = unchanged */
    store_t *store;
    srv_access_t *access;        /* for password hashing */
    const char *client_ca;       /* conf tls.client_ca: certificates to register must chain to it */
    hsm_keyring_t *keyring;      /* backup/restore unseal and re-seal with it (NULL: refused) */
    const char *store_path;      /* conf store.path: backup snapshots go next to it */
    const char *version;         /* kmsd version string */
    srv_admin_status_cb status_cb; /* may be NULL */
    void *status_arg;
    /* "rotate.master|store-key|status" (server/keys_rotate.c: srv_keys_admin);
     * NULL = those commands are not supported. Added for key rotation. */
    int (*rotate_cmd)(const char *cmd, const ttlv_item_t *req, kms_arena_t *a, ttlv_item_t *resp,
                      char *msg, size_t msglen);
} srv_admin_options_t;

/*
 * Bind the socket (replacing a stale one; refusing when another kmsd
 * answers on it), chmod/chown it and start the admin thread. Returns 0,
 * KMS_ERR_IO, KMS_ERR_EXISTS (a live server owns the socket), KMS_ERR_CONFIG
 * (unknown group).
 */
int srv_admin_start(const srv_admin_options_t *opt, srv_admin_t **out);
/* Stop the thread, close and unlink the socket. NULL ok. */
void srv_admin_stop(srv_admin_t *ad);

/* ---------------------------------------------------- wiring into kmsd */
/*
 * For main.c: one call after srv_open_store() and before srv_open_kmip()
 * creates the access checker and installs srv->auth / auth_arg (and
 * srv->cert_check when tls.require_registered), opens the audit log
 * (audit.path, "" = off) and starts the admin socket (admin.*). Logs its
 * own errors; returns 0 or KMS_ERR_*. srv_access_stop() (after the loops
 * and workers have stopped, before store_close) undoes it. Main thread.
 */
typedef struct srv srv_t;
int srv_access_start(srv_t *srv);
void srv_access_stop(srv_t *srv);

/*
 * Internal to admin*.c (and the unit tests): execute one decoded request
 * and build the ADMIN_RESPONSE in arena `a` (never NULL unless NOMEM).
 * `who` names the caller for the audit log ("uid=0 pid=42"). Runs on the
 * admin thread; store writes block it, which is fine there.
 */
ttlv_item_t *srv_admin_execute(const srv_admin_options_t *opt, int64_t started_us,
                               const char *who, const ttlv_item_t *req, int fd,
                               kms_arena_t *a);

/*
 * admin_backup.c: write a portable encrypted backup into `fd` / restore one
 * from `fd` (a file kmsctl opened and passed with SCM_RIGHTS). The backup
 * key is Argon2id(pass) or `rawkey` (32 bytes). On failure `msg` says why.
 * *count_out: objects written / restored. Admin thread.
 */
int srv_admin_backup_create(const srv_admin_options_t *opt, int fd, const char *pass,
                            const ttlv_item_t *rawkey, char *msg, size_t msglen,
                            int64_t *count_out);
int srv_admin_backup_restore(const srv_admin_options_t *opt, int fd, const char *pass,
                             const ttlv_item_t *rawkey, char *msg, size_t msglen,
                             int64_t *count_out);

#endif /* KMS_SERVER_ACCESS_H */
