/*
 * replication/repl.h: active-active replication between kmsd nodes.
 *
 * Every node commits every operation locally; its change log is pushed to
 * every peer over a mutual-TLS 1.3 peer link, and the peer merges what it
 * receives with one deterministic merge rule (docs/cluster.md). This header
 * is the module's one public interface:
 *
 * - the module: repl_open / repl_start / repl_stop / repl_close run the
 *   peer listener and one outbound push link per peer on the module's own
 *   libuv loop thread; repl_ready, repl_wait, repl_status and repl_verify
 *   are what the server and the admin commands ask of it;
 * - the peer protocol's frame codec (pure: no I/O, no store), shared with
 *   kmsctl's join client and the fuzz target.
 *
 * It deliberately knows nothing of KMIP semantics (kmip/) and never reads
 * SQL (store/ has the change-log reader); key material it carries (data-
 * store keys on the TLS link, join secrets) lives only in kms_secret_t.
 */
#ifndef KMS_REPL_H
#define KMS_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "store/store.h"

/* ============================================================== frames
 *
 * A frame is an 8-byte header and a body:
 *   'K' 'R' (0x4B 0x52) | version (1) | type | u32 big-endian body length
 * The body is one TTLV Structure (tag REPL_TAG_FRAME) with private tags of
 * the 0x5455xx block (replication/repl_int.h), fields in a fixed order, so
 * there is exactly one encoding of a frame: a decoded frame re-encodes to
 * the same bytes. The body length is checked against the link's max_frame
 * before any memory is allocated for it.
 */
#define REPL_FRAME_HEADER 8
#define REPL_MAGIC0 0x4B /* 'K' */
#define REPL_MAGIC1 0x52 /* 'R' */
#define REPL_PROTO_VERSION 1
#define REPL_MAX_FRAME_DEFAULT ((size_t)16 << 20)

/* XX(value, NAME): every frame type; the header's type byte. */
#define REPL_FRAME_TYPES(XX)  \
    XX(1, HELLO)              \
    XX(2, HELLO_ACK)          \
    XX(3, CHANGES)            \
    XX(4, ACK)                \
    XX(5, SNAPSHOT_BEGIN)     \
    XX(6, SNAPSHOT_CHUNK)     \
    XX(7, SNAPSHOT_END)       \
    XX(8, PING)               \
    XX(9, PONG)               \
    XX(10, JOIN_REQ)          \
    XX(11, JOIN_RESP)         \
    XX(12, VERIFY_REQ)        \
    XX(13, VERIFY_RESP)       \
    XX(14, ERROR)

enum repl_frame_type {
#define XX(v, name) REPL_FRAME_##name = (v),
    REPL_FRAME_TYPES(XX)
#undef XX
};
/* "HELLO", ...; NULL for an unknown type. */
const char *repl_frame_type_name(int type);

/* XX(value, NAME, "text"): why a peer refuses a link (ERROR frames). */
#define REPL_ERRORS(XX)                                         \
    XX(1, VERSION, "unsupported protocol version")              \
    XX(2, CLUSTER, "another cluster")                           \
    XX(3, SKEW, "clock skew above replication.max_clock_skew")  \
    XX(4, REMOVED, "node removed from the cluster")             \
    XX(5, PROTO, "malformed frame")                             \
    XX(6, LIMIT, "frame above replication.max_frame")           \
    XX(7, UNKNOWN_NODE, "node id unknown or already connected") \
    XX(8, INTERNAL, "internal error")                           \
    XX(9, DENIED, "not allowed")

enum repl_error {
#define XX(v, name, text) REPL_ERROR_##name = (v),
    REPL_ERRORS(XX)
#undef XX
};
/* Text for an ERROR frame code; "unknown error" when unknown. */
const char *repl_error_text(int code);

/* What a change-log row names. */
enum repl_kind {
    REPL_KIND_OBJECT = 1,
    REPL_KIND_TENANT = 2,
    REPL_KIND_CLIENT = 3,
    REPL_KIND_DSK = 4,
    REPL_KIND_NODE = 5,
};

/* Per attribute name: the (hlc, node) of its last write (the store's
 * clock: "#material", "#archived" and "" are its pseudo-names). */
typedef store_clock_t repl_clock_t;

/* A cluster member (kind NODE; also the JOIN_RESP node list). */
typedef struct repl_node_info {
    char node_id[64];
    char peer_addr[256];     /* "host:port" of its peer listener */
    char kmip_addr[256];     /* "host:port" of its KMIP listener (status, clients) */
    char cert_sha256[65];    /* lower-case hex fingerprint of its node certificate */
    int64_t added_hlc;
    bool removed;            /* sticky */
} repl_node_info_t;

/*
 * One replicated entity: the identity of its last change and its current
 * full state (state shipping: re-delivery and coalescing are harmless).
 * `deleted` marks a tombstone (hard delete, tenant/client/node removal):
 * only the identity fields are meaningful then.
 */
typedef struct repl_entity {
    enum repl_kind kind;
    int64_t seq;             /* sender's change-log seq; 0 in snapshots and JOIN_RESP */
    const char *key;         /* object id, tenant name, client name, DSK id (decimal), node id */
    const char *origin;      /* node that made the change */
    int64_t origin_seq;      /* that node's seq for it */
    int64_t hlc;
    bool deleted;

    /* REPL_KIND_OBJECT: obj.id == key; version is node-local and not sent
     * (0 when decoded). obj.sealed (DSK id, seal generation, blob) is sent
     * as it is: the seal binds no node-local value, so it opens on every
     * node holding the DSK. */
    store_object_t obj;
    repl_clock_t *clocks;
    size_t n_clocks;
    /* REPL_KIND_TENANT */
    int64_t tenant_created_us;
    /* REPL_KIND_CLIENT: client.name == key. client_packed: a device client
     * decoded from the packed form of the version before DEVICE (its
     * identifiers in CERT_SHA256, store_device_unpack), that text, which
     * re-encoding sends as it came; NULL otherwise and when encoding from
     * the store. */
    store_client_t client;
    const char *client_packed;
    /* REPL_KIND_DSK: the plaintext data-store key, only ever inside the
     * peer link's TLS; the receiver wraps it under its own master key. */
    uint32_t dsk_id;
    kms_secret_t *dsk;       /* owned by the frame (decoded) or borrowed (encoded) */
    bool dsk_current;        /* this DSK became the current one at `hlc` */
    /* REPL_KIND_NODE: node.node_id == key */
    repl_node_info_t node;
} repl_entity_t;

typedef struct repl_hwm {
    const char *node_id;
    int64_t seq;             /* highest origin_seq of that node's changes held */
    bool linked;             /* HELLO_ACK, ACK: that node's push link to the sender is open */
} repl_hwm_t;

typedef struct repl_setting {
    const char *name;
    const char *value;
} repl_setting_t;

enum repl_digest_kind { REPL_DIGEST_TENANT = 1, REPL_DIGEST_OBJECT = 2 };
typedef struct repl_digest {
    enum repl_digest_kind kind;
    const char *tenant;
    const char *id;          /* object id (REPL_DIGEST_OBJECT), "" for a tenant */
    int64_t count;           /* objects covered */
    uint8_t sha256[32];
} repl_digest_t;

typedef struct repl_bytes {
    const uint8_t *p;
    size_t len;
} repl_bytes_t;

typedef struct repl_frame {
    enum repl_frame_type type;
    kms_arena_t *arena;      /* decoded frames: everything below lives in it */
    bool owns_secrets_;      /* private: decoded, so repl_frame_free frees the secrets */
    union {
        struct { /* HELLO: connector -> acceptor */
            int32_t version;
            const char *cluster_id;
            const char *node_id;
            int64_t wall_ms;
            const char *peer_addr;
            const char *kmip_addr;
            int64_t log_head;    /* the connector's last change-log seq now */
        } hello;
        struct { /* HELLO_ACK: where the acceptor's copy of the connector's log stands */
            const char *cluster_id;
            const char *node_id;
            int64_t wall_ms;
            int64_t link_pos;
            int64_t log_head;    /* the acceptor's last change-log seq now */
            repl_hwm_t *hwm;     /* the acceptor's progress per origin (may be empty) */
            size_t n_hwm;
        } hello_ack;
        struct { /* CHANGES: rows up to last_seq (skipped rows included) */
            int64_t last_seq;
            repl_entity_t *v;
            size_t n;
        } changes;
        struct { /* ACK: every row <= seq is durably merged */
            int64_t seq;
            repl_hwm_t *hwm;     /* the acker's progress per origin (may be empty): the
                                  * sender relays a third node's changes only to a peer
                                  * that cannot get them from it directly */
            size_t n_hwm;
        } ack;
        struct { /* SNAPSHOT_BEGIN */
            int64_t snapshot_seq;
            int64_t objects;     /* objects that will follow (progress) */
            repl_hwm_t *hwm;     /* the sender's origin_hwm vector */
            size_t n_hwm;
        } snap_begin;
        struct { /* SNAPSHOT_CHUNK */
            repl_entity_t *v;
            size_t n;
        } snap_chunk;
        struct { /* SNAPSHOT_END */
            int64_t snapshot_seq;
            int64_t count;       /* entities sent in the chunks */
        } snap_end;
        struct { /* PING, PONG */
            int64_t nonce;
            int64_t wall_ms;
        } ping;
        struct { /* JOIN_REQ: on a connection without a client certificate */
            const char *invite_id;
            kms_secret_t *secret; /* owned (decoded) or borrowed (encoded) */
            const char *node_id;
            const char *peer_addr;
            const char *kmip_addr;
            repl_bytes_t node_csr;
            repl_bytes_t server_csr;
        } join_req;
        struct { /* JOIN_RESP */
            const char *cluster_id;
            repl_bytes_t ca_cert;
            repl_bytes_t client_ca;
            repl_bytes_t node_cert;
            repl_bytes_t server_cert;
            repl_entity_t *nodes; /* kind NODE */
            size_t n_nodes;
            repl_entity_t *dsks;  /* kind DSK */
            size_t n_dsks;
            uint32_t current_dsk;
            repl_setting_t *settings;
            size_t n_settings;
            repl_bytes_t certify_ca;      /* KMIP Certify's issuing CA (PEM), or empty */
            kms_secret_t *certify_ca_key; /* its key (PEM): owned (decoded) or borrowed */
        } join_resp;
        struct { /* VERIFY_REQ: tenant "" = every tenant */
            const char *tenant;
            bool per_object;
        } verify_req;
        struct { /* VERIFY_RESP */
            repl_digest_t *v;
            size_t n;
        } verify_resp;
        struct { /* ERROR: the sender closes after it */
            int32_t code;        /* REPL_ERROR_* */
            const char *message;
        } error;
    } u;
} repl_frame_t;

typedef struct repl_frame_limits {
    size_t max_frame;        /* body bytes; 0 = REPL_MAX_FRAME_DEFAULT */
    size_t max_depth;        /* TTLV nesting; 0 = 8 (frames need 4) */
} repl_frame_limits_t;

/*
 * Check a frame header. With fewer than 8 bytes: KMS_ERR_PARTIAL. Else
 * KMS_ERR_PROTO (bad magic or unknown type), KMS_ERR_NOTSUP (another
 * protocol version: answer ERROR VERSION and close), KMS_ERR_LIMIT (body
 * longer than max_frame), or 0 with the frame type and the total size
 * (header + body). Any thread; reads only hdr[0..8).
 */
int repl_frame_header(const uint8_t *hdr, size_t have, size_t max_frame, int *type_out,
                      size_t *total_out);

/*
 * Decode one complete frame (header included, exactly `len` bytes) into a
 * new frame. Every text field is checked (UTF-8, no NUL, within its size),
 * every item's tag, type and order; unknown or missing fields are errors.
 * Returns 0, or KMS_ERR_PROTO / KMS_ERR_NOTSUP / KMS_ERR_LIMIT with err
 * filled (byte offset of the offending item), KMS_ERR_NOMEM. Memory is
 * bounded by max_frame (the decoded tree lives in an arena capped at a
 * small multiple of it). Free with repl_frame_free(). Any thread.
 */
int repl_frame_decode(const uint8_t *buf, size_t len, const repl_frame_limits_t *lim,
                      repl_frame_t **out, kms_error_t *err);

/* A zeroed frame of `type` with its own arena (for building); NULL on NOMEM. */
repl_frame_t *repl_frame_new(enum repl_frame_type type);

/* Free a frame: wipes and frees the secrets it owns, then its arena. NULL ok. */
void repl_frame_free(repl_frame_t *f);

/*
 * Append the encoding of `f` (header + body) to `out`. KMS_ERR_LIMIT when
 * the body would exceed max_frame (0 = default) or `out` its cap;
 * KMS_ERR_INVAL for a field that cannot be sent (text too long, unknown
 * kind). `out` is unchanged on error. A frame with DSKs or a join secret
 * puts them in `out` in plaintext: dispose it with kms_buf_dispose_wipe.
 */
int repl_frame_encode(const repl_frame_t *f, size_t max_frame, kms_buf_t *out, kms_error_t *err);

/* ============================================================== module */
typedef struct repl repl_t;

typedef struct repl_options {
    store_t *store;              /* open store; replication reads and writes it */
    hsm_keyring_t *keyring;      /* data-store keys: exported to peers, imported (NULL: none) */
    const char *node_id;         /* this node (store_node_id); also its certificate's CN */
    const char *cluster_id;      /* peers of another cluster are refused */
    const char *listen;          /* "ADDR:PORT" of the peer listener ("" = none) */
    const char *advertise;       /* peer address other nodes use for this one ("" = listen) */
    const char *kmip_addr;       /* this node's KMIP address, for status ("" ok) */
    const char *const *peers;    /* "host:port" of the peer listeners to push to */
    size_t n_peers;
    const char *cert;            /* node certificate (PEM) with the peer role, CN = node_id */
    const char *key;             /* its private key (PEM) */
    const char *ca;              /* the cluster CA (PEM) */
    unsigned sync_acks;          /* see repl_wait */
    unsigned sync_timeout_ms;    /* 0 = 2000 */
    bool sync_degrade;           /* on_sync_timeout degrade (else fail) */
    uint64_t max_clock_skew_ms;  /* 0 = 5000 */
    uint64_t max_lag_ms;         /* 0 = 24 h */
    uint64_t startup_wait_ms;    /* longest start-up wait for the peers' changes (0 = 15 s) */
    size_t max_frame;            /* 0 = REPL_MAX_FRAME_DEFAULT */
    unsigned keepalive_ms;       /* PING after this much silence (0 = 2000); a link silent
                                    for 5 times as long is closed */
    unsigned handshake_ms;       /* TLS + HELLO deadline (0 = 10000) */
    unsigned trim_every_ms;      /* how often the log is trimmed (0 = 5000) */
    /* Bytes of the change log's newest rows kept in memory with the objects
     * they committed, which push links ship without reading the store
     * (0 = 16 MiB). Set once per store: the first repl_start's value. */
    size_t log_tail_bytes;
    int64_t clock_offset_ms;     /* tests only: added to this node's wall clock */
    /* Admitting nodes (join.c): */
    const char *ca_key;          /* the cluster CA's key (PEM): signs joining nodes' CSRs;
                                    "" = this node admits no node */
    const char *client_ca;       /* tls.client_ca (PEM): handed to joining nodes ("" ok) */
    const char *certify_ca;      /* certify.ca / certify.ca_key (PEM): KMIP Certify's issuing */
    const char *certify_ca_key;  /* CA, handed to joining nodes with the data-store keys
                                    ("" = this node has none, and neither will they) */
} repl_options_t;

/*
 * Check the options and load the TLS material (node certificate, key, CA)
 * without starting anything. Strings are copied. 0, or KMS_ERR_CONFIG /
 * KMS_ERR_IO with err naming the setting or file. Any thread.
 */
int repl_open(const repl_options_t *opt, repl_t **out, kms_error_t *err);
/*
 * Bind the peer listener and start the replication thread (its own libuv
 * loop), which connects to every peer with backoff (100 ms .. 5 s,
 * jittered). KMS_ERR_IO when the listen address cannot be bound. Call once.
 * The process must ignore SIGPIPE (kmsd does): a peer that closes while
 * we write would otherwise end it.
 */
int repl_start(repl_t *r, kms_error_t *err);
/* Close every link and stop the thread; returns when it has. Idempotent. */
void repl_stop(repl_t *r);
/* Free (after repl_stop, or without repl_start). NULL ok. */
void repl_close(repl_t *r);

/*
 * False while this node must not serve KMIP: replication not running, a
 * joining node not yet seeded by its first snapshot, a snapshot
 * (catch-up) in progress, or, after a start, the peers' changes made
 * while this node was away not yet applied (at most startup_wait_ms;
 * startup.c). The server closes its KMIP listener meanwhile.
 * Any thread; cheap.
 */
bool repl_ready(repl_t *r);

/* replication.sync_acks: 0 = the server need not call repl_wait. */
unsigned repl_sync_acks(const repl_t *r);

/*
 * Sync acks: call cb once sync_acks peers have acknowledged a position at
 * or past `seq` (store_write_last_seq of the request's write): result 0.
 * After sync_timeout_ms: KMS_ERR_TIMEOUT (on_sync_timeout fail), or 0
 * with a rate-limited WARN in the log (degrade). KMS_ERR_UNAVAIL when
 * replication stops first. cb runs on the replication thread and must
 * only hand the result over (as store_commit_async's). Returns 0 (cb will
 * be called exactly once), or KMS_ERR_STATE when replication is not
 * running (cb is not called). Any thread.
 */
typedef void (*repl_wait_cb)(int result, void *arg);
int repl_wait(repl_t *r, int64_t seq, repl_wait_cb cb, void *arg);

/* Sync-ack waits since repl_start (for the server's metrics): requests
 * that waited (repl_wait calls), and the waits that timed out, answered
 * as failures (on_sync_timeout fail) or as successes (degrade). */
typedef struct repl_sync_stats {
    uint64_t waits;
    uint64_t failed;
    uint64_t degraded;
    /* Rows of a third node's changes this node shipped on to a peer
     * (relayed: the peer's link with their origin was down or lagging)
     * and rows it did not ship because the peer gets them directly. */
    uint64_t relayed;
    uint64_t relay_skipped;
    /* Objects and other entities shipped in CHANGES frames: taken from the
     * change log's rows in memory (as committed), or read from the store
     * (a link behind the rows in memory, removals, tenants, clients, keys,
     * nodes). */
    uint64_t shipped_from_memory;
    uint64_t shipped_from_store;
    /* Of those from memory: encoded by this link, or taken already
     * encoded from another link (the cache of encoded entities). */
    uint64_t encoded;
    uint64_t encoded_shared;
    /* Log batches (a CHANGES frame or nothing to send) made by the push
     * links: on the replication thread at once (a few rows, all held in
     * memory), or on libuv's threadpool (more rows, or rows read from the
     * store). */
    uint64_t batches_inline;
    uint64_t batches_pool;
    /* Batches with nothing to ship (every row the peer's own, held there
     * or coming to it directly): empty CHANGES frames that told such a
     * position, and batches whose position was left for the next frame
     * (sent alone after 100 ms at the latest; on a node applying another
     * node's changes, most batches). */
    uint64_t position_frames;
    uint64_t positions_held;
    /* The receiving side: store commits of peers' CHANGES, the CHANGES
     * frames they held (more than one when frames arrived while the
     * previous commit was in progress: they are applied together), and
     * frames read ahead that wait for the commit in progress now. */
    uint64_t apply_commits;
    uint64_t apply_frames;
    uint64_t apply_waiting;
} repl_sync_stats_t;
/* Any thread; zeros when r is NULL. */
void repl_sync_stats(repl_t *r, repl_sync_stats_t *out);

/* One peer as the operator sees it (`kmsctl cluster status`). */
typedef struct repl_peer_status {
    char node_id[64];            /* "" while a configured address has not answered yet */
    char addr[256];              /* configured or advertised peer address */
    bool connected_out;          /* our push link to it is open */
    bool connected_in;           /* its push link to us is open */
    int64_t last_contact_ms;     /* wall clock of its last frame (0 = never) */
    int64_t acked_seq;           /* highest of our change-log seqs it acknowledged */
    int64_t lag_changes;         /* our last seq - acked_seq (-1: no ack since start) */
    int64_t lag_ms;              /* age of the oldest change in flight to it (-1: unknown) */
    int64_t clock_offset_ms;     /* its wall clock minus ours, from the last HELLO/PONG */
    char state[16];              /* ok, connecting, skew, refused, catching-up, removed,
                                    past-max-lag */
    char last_error[160];        /* why the last link closed ("" = none) */
    /* A snapshot from it being applied (state catching-up), or the last
     * one: objects it announced and objects applied so far (0, 0 = none). */
    int64_t catchup_total;
    int64_t catchup_done;
} repl_peer_status_t;

/* Every known peer's status, in node-id order, into `a`. Any thread. */
int repl_status(repl_t *r, kms_arena_t *a, repl_peer_status_t **out, size_t *n_out);

/*
 * Digests of the objects in a store (docs/cluster.md, "verify"): one per
 * tenant (tenant "" = every tenant) and, with per_object, one per object,
 * into `a`. Blocking reads: a worker thread or a tool, never a loop.
 */
int repl_verify_local(store_reader_t *rd, const char *tenant, bool per_object, kms_arena_t *a,
                      repl_digest_t **out, size_t *n_out);
/*
 * Ask every peer this node has an open push link to for its digests: cb
 * runs on the replication thread once per peer (result 0 with its digests,
 * valid during the call; KMS_ERR_UNAVAIL when the link closed first;
 * KMS_ERR_BUSY when a request was already out on it), then once with
 * node_id NULL when all have answered. Returns 0, or KMS_ERR_STATE when
 * replication is not running (cb is not called). Any thread.
 */
typedef void (*repl_verify_cb)(const char *node_id, int result, const repl_digest_t *v, size_t n,
                               void *arg);
int repl_verify(repl_t *r, const char *tenant, bool per_object, repl_verify_cb cb, void *arg);

/* ============================================================== joining
 *
 * A node joins a cluster with a one-time token that an existing node (the
 * inviter, which holds the cluster CA key) issued: `kmsctl cluster invite`
 * prints it, `kmsctl cluster join TOKEN` uses it (docs/cluster.md,
 * "Forming a cluster"). The token is text:
 *   "kmsd-join-v1." base64url( TTLV TOKEN { version, cluster id, the
 *   inviter's peer addresses, SHA-256 of the cluster CA certificate,
 *   invite id, secret, expiry } )
 * It holds a secret: whoever has it may join until it is used or expires.
 * The inviter keeps only SHA-256(secret) (store meta "invite.<id>").
 */
#define REPL_TOKEN_PREFIX "kmsd-join-v1."
#define REPL_TOKEN_ADDRS_MAX 8
#define REPL_JOIN_SECRET_LEN 32
#define REPL_INVITE_ID_LEN 16    /* hex characters */

typedef struct repl_token {
    char cluster_id[64];
    char addrs[REPL_TOKEN_ADDRS_MAX][256]; /* "host:port" of the inviter's peer listener */
    size_t n_addrs;
    uint8_t ca_sha256[32];       /* of the CA certificate's DER */
    char invite_id[REPL_INVITE_ID_LEN + 1];
    kms_secret_t *secret;        /* REPL_JOIN_SECRET_LEN bytes */
    int64_t expires_ms;          /* Unix time */
} repl_token_t;

/* The token's text (NUL-terminated) appended to `out`: dispose `out` with
 * kms_buf_dispose_wipe. KMS_ERR_INVAL for a token that cannot be sent
 * (no address, a field too long, no secret). Pure; any thread. */
int repl_token_encode(const repl_token_t *t, kms_buf_t *out, kms_error_t *err);
/* Parse a token's text into *t (its secret a new kms_secret_t: free with
 * repl_token_dispose, also on failure). KMS_ERR_PROTO with err saying
 * what is wrong (prefix, encoding, fields). Pure; any thread. */
int repl_token_decode(const char *text, repl_token_t *t, kms_error_t *err);
void repl_token_dispose(repl_token_t *t);

typedef struct repl_invite_options {
    store_t *store;              /* where the invite is recorded (meta) */
    const char *cluster_id;
    const char *const *addrs;    /* this node's peer address(es) for the joining node */
    size_t n_addrs;
    const char *ca_cert;         /* path of the cluster CA certificate (PEM) */
    int64_t ttl_ms;              /* > 0 */
} repl_invite_options_t;

/*
 * A new invite: a random id and secret, recorded as (id, SHA-256(secret),
 * expiry) in store meta "invite.<id>", and its token appended to
 * token_out (which then holds the secret: kms_buf_dispose_wipe). Blocks
 * on the store commit: the admin thread, never a loop. 0, or
 * KMS_ERR_CONFIG (CA certificate unreadable), KMS_ERR_INVAL, KMS_ERR_IO.
 */
int repl_invite_new(const repl_invite_options_t *o, kms_buf_t *token_out, char id_out[17],
                    int64_t *expires_out, kms_error_t *err);

/* A node id peers accept: 1-63 letters, digits, '-', '_' or '.'. */
bool repl_node_id_ok(const char *s);

/*
 * Remove a node from the cluster (`kmsctl cluster remove`): its row in the
 * replicated node list gets `removed` (sticky), so every node learns it;
 * each node closes its links within about a second and refuses its
 * certificate from then on (members.c). Removing a removed node again is
 * 0. KMS_ERR_NOTFOUND for a node the list does not have. Blocks on the
 * store commit: the admin thread, never a loop.
 */
int repl_node_remove(repl_t *r, const char *node_id, kms_error_t *err);

#endif /* KMS_REPL_H */
