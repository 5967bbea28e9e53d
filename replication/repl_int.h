/*
 * replication/repl_int.h: private to replication/.
 *
 * The peer protocol's TTLV tags as one X-macro table (value, name, type),
 * so the encoder, the decoder's type checks and the error messages cannot
 * drift apart. The tags live in the 0x5455xx block of the TTLV extension
 * range 0x54xxxx: the shared strict decoder (ttlv/) accepts only 0x42xxxx
 * and 0x54xxxx tags, and the admin protocol uses 0x5400xx.
 */
#ifndef KMS_REPL_INT_H
#define KMS_REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "replication/repl.h"
#include "ttlv/ttlv.h"

#define REPL_LOG "repl"

/* XX(value, NAME, TYPE): TYPE is a ttlv_type suffix. */
#define REPL_TAGS(XX)                                  \
    XX(0x545501, FRAME, STRUCTURE)                     \
    XX(0x545502, PROTOCOL_VERSION, INTEGER)            \
    XX(0x545503, CLUSTER_ID, TEXT_STRING)              \
    XX(0x545504, NODE_ID, TEXT_STRING)                 \
    XX(0x545505, WALL_MS, LONG_INTEGER)                \
    XX(0x545506, LINK_POS, LONG_INTEGER)               \
    XX(0x545507, PEER_ADDR, TEXT_STRING)               \
    XX(0x545508, KMIP_ADDR, TEXT_STRING)               \
    XX(0x545509, SEQ, LONG_INTEGER)                    \
    XX(0x54550A, ENTITY, STRUCTURE)                    \
    XX(0x54550B, KIND, ENUMERATION)                    \
    XX(0x54550C, KEY, TEXT_STRING)                     \
    XX(0x54550D, ORIGIN, TEXT_STRING)                  \
    XX(0x54550E, ORIGIN_SEQ, LONG_INTEGER)             \
    XX(0x54550F, HLC, LONG_INTEGER)                    \
    XX(0x545510, DELETED, BOOLEAN)                     \
    XX(0x545511, OBJECT_TYPE, ENUMERATION)             \
    XX(0x545512, STATE, ENUMERATION)                   \
    XX(0x545513, TENANT, TEXT_STRING)                  \
    XX(0x545514, CREATED_US, LONG_INTEGER)             \
    XX(0x545515, UPDATED_US, LONG_INTEGER)             \
    XX(0x545516, ARCHIVED, BOOLEAN)                    \
    XX(0x545517, DSK_ID, LONG_INTEGER)                 \
    XX(0x545518, SEAL_GEN, LONG_INTEGER)               \
    XX(0x545519, BLOB, BYTE_STRING)                    \
    XX(0x54551A, ATTRIBUTE, STRUCTURE)                 \
    XX(0x54551B, NAME, TEXT_STRING)                    \
    XX(0x54551C, INDEX, INTEGER)                       \
    XX(0x54551D, VALUE, BYTE_STRING)                   \
    XX(0x54551E, SKEY, TEXT_STRING)                    \
    XX(0x54551F, NKEY, LONG_INTEGER)                   \
    XX(0x545520, FLAGS, INTEGER)                       \
    XX(0x545521, CLOCK, STRUCTURE)                     \
    XX(0x545522, ROLE, TEXT_STRING)                    \
    XX(0x545523, CLIENT_KIND, TEXT_STRING)             \
    XX(0x545524, CERT_SHA256, TEXT_STRING)             \
    XX(0x545525, PASSWORD_HASH, TEXT_STRING)           \
    XX(0x545526, KEY_BYTES, BYTE_STRING)               \
    XX(0x545527, CURRENT, BOOLEAN)                     \
    XX(0x545528, REMOVED, BOOLEAN)                     \
    XX(0x545529, SNAPSHOT_SEQ, LONG_INTEGER)           \
    XX(0x54552A, HWM, STRUCTURE)                       \
    XX(0x54552B, COUNT, LONG_INTEGER)                  \
    XX(0x54552C, NONCE, LONG_INTEGER)                  \
    XX(0x54552D, INVITE_ID, TEXT_STRING)               \
    XX(0x54552E, SECRET, BYTE_STRING)                  \
    XX(0x54552F, NODE_CSR, BYTE_STRING)                \
    XX(0x545530, SERVER_CSR, BYTE_STRING)              \
    XX(0x545531, CA_CERT, BYTE_STRING)                 \
    XX(0x545532, CLIENT_CA, BYTE_STRING)               \
    XX(0x545533, NODE_CERT, BYTE_STRING)               \
    XX(0x545534, SERVER_CERT, BYTE_STRING)             \
    XX(0x545535, SETTING, STRUCTURE)                   \
    XX(0x545536, TEXT_VALUE, TEXT_STRING)              \
    XX(0x545537, PER_OBJECT, BOOLEAN)                  \
    XX(0x545538, DIGEST, STRUCTURE)                    \
    XX(0x545539, DIGEST_KIND, ENUMERATION)             \
    XX(0x54553A, SHA256, BYTE_STRING)                  \
    XX(0x54553B, ERROR_CODE, INTEGER)                  \
    XX(0x54553C, MESSAGE, TEXT_STRING)                 \
    XX(0x54553D, LAST_SEQ, LONG_INTEGER)               \
    XX(0x54553E, ADDED_HLC, LONG_INTEGER)              \
    XX(0x54553F, CURRENT_DSK, LONG_INTEGER)            \
    XX(0x545540, TOKEN, STRUCTURE)                     \
    XX(0x545541, EXPIRES_MS, LONG_INTEGER)             \
    XX(0x545542, CERTIFY_CA, BYTE_STRING)              \
    XX(0x545543, CERTIFY_CA_KEY, BYTE_STRING)          \
    XX(0x545544, LINKED, BOOLEAN)                      \
    XX(0x545545, DEVICE, STRUCTURE)                    \
    XX(0x545546, DEVICE_SERIAL, TEXT_STRING)           \
    XX(0x545547, DEVICE_IDENTIFIER, TEXT_STRING)       \
    XX(0x545548, NETWORK_IDENTIFIER, TEXT_STRING)      \
    XX(0x545549, MACHINE_IDENTIFIER, TEXT_STRING)      \
    XX(0x54554A, MEDIA_IDENTIFIER, TEXT_STRING)        \
    XX(0x54554B, DISABLED, STRUCTURE)                  \
    XX(0x54554C, DISABLED_US, LONG_INTEGER)            \
    XX(0x54554D, DISABLED_REASON, TEXT_STRING)

enum repl_tag {
#define XX(v, name, type) REPL_TAG_##name = (v),
    REPL_TAGS(XX)
#undef XX
};

/* The table's type for a tag; TTLV_ANY when the tag is not ours. */
enum ttlv_type repl_tag_type(uint32_t tag);
/* "NODE_ID"...; "?" when unknown. */
const char *repl_tag_name(uint32_t tag);

/* ---------------------------------------------------------- frame.c */
/* Bounded sizes of the protocol's fields. */
#define REPL_ID_MAX 63            /* node ids, object ids, tenants (store_object_t id[64]) */
#define REPL_TEXT_MAX 4096        /* attribute names, addresses, messages, hashes */
#define REPL_DSK_MAX 64           /* data-store key bytes */
#define REPL_SECRET_MAX 256       /* join secret bytes */
#define REPL_ATTR_FLAG_NKEY 1u
#define REPL_ATTR_FLAG_INDEX 2u

/* Decoding cursor over a structure's children, in order, with a sticky
 * error: after the first failure every getter returns a zero value and
 * changes nothing, so a decoder reads its fields straight and checks
 * `rc` once. */
typedef struct repl_rd {
    const ttlv_item_t *parent;
    const ttlv_item_t *next;
    kms_arena_t *arena;
    kms_error_t *err;
    int rc;
} repl_rd_t;

/* Builder over a tree with a sticky error (NOMEM, INVAL). */
typedef struct repl_encache repl_encache_t;

typedef struct repl_wr {
    kms_arena_t *arena;
    kms_error_t *err;
    int rc;
} repl_wr_t;

/* entity.c: one entity to and from an ENTITY structure. */
void repl_entity_read(repl_rd_t *r, const ttlv_item_t *ent, repl_entity_t *e);
/* Free the secrets an entity owns (decoded frames). */
void repl_entity_dispose(repl_entity_t *e);
/* One ENTITY structure written straight to the end of out, without an
 * item tree: the bytes any frame carrying it holds (repl_frame_encode
 * takes them too), so an entity shipped to several links is encoded once.
 * 0, KMS_ERR_INVAL (a field out of its bounds, an unknown kind, a DSK
 * without a key), KMS_ERR_LIMIT (out's cap) or KMS_ERR_NOMEM, with err
 * filled; out unchanged on error. */
int repl_entity_encode(const repl_entity_t *e, kms_buf_t *out, kms_error_t *err);
/* frame.c: a CHANGES frame around entities so encoded (ents: len bytes,
 * one after another): the same bytes as repl_frame_encode of that frame
 * with those entities. Errors as repl_frame_encode's; `out` unchanged on
 * error. */
int repl_frame_encode_changes(int64_t last_seq, const uint8_t *ents, size_t len, size_t max_frame,
                              kms_buf_t *out, kms_error_t *err);

/* frame.c helpers shared with entity.c */
void repl_rd_init(repl_rd_t *r, const ttlv_item_t *parent, kms_arena_t *a, kms_error_t *err);
bool repl_rd_peek(const repl_rd_t *r, uint32_t tag);
const ttlv_item_t *repl_rd_item(repl_rd_t *r, uint32_t tag);
const char *repl_rd_text(repl_rd_t *r, uint32_t tag, size_t max);
void repl_rd_text_into(repl_rd_t *r, uint32_t tag, char *buf, size_t cap);
int64_t repl_rd_long(repl_rd_t *r, uint32_t tag);
int64_t repl_rd_long_range(repl_rd_t *r, uint32_t tag, int64_t lo, int64_t hi);
int32_t repl_rd_int(repl_rd_t *r, uint32_t tag);
uint32_t repl_rd_enum(repl_rd_t *r, uint32_t tag);
bool repl_rd_bool(repl_rd_t *r, uint32_t tag);
repl_bytes_t repl_rd_bytes(repl_rd_t *r, uint32_t tag, size_t max);
kms_secret_t *repl_rd_secret(repl_rd_t *r, uint32_t tag, size_t max);
void repl_rd_end(repl_rd_t *r);
void repl_rd_fail(repl_rd_t *r, const ttlv_item_t *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Room for n elements of size sz in the arena (sticky NOMEM/LIMIT). */
void *repl_rd_array(repl_rd_t *r, size_t n, size_t sz);

ttlv_item_t *repl_wr_struct(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag);
void repl_wr_text(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, const char *s, size_t max);
void repl_wr_long(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, int64_t v);
void repl_wr_int(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, int32_t v);
void repl_wr_enum(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, uint32_t v);
void repl_wr_bool(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, bool v);
void repl_wr_bytes(repl_wr_t *w, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n);
void repl_wr_fail(repl_wr_t *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- merge.c */
/* (hlc, node) order: -1, 0, 1. */
int repl_clock_cmp(int64_t hlc_a, const char *node_a, int64_t hlc_b, const char *node_b);
/* Join of two KMIP states in the lifecycle lattice. */
uint32_t repl_state_join(uint32_t a, uint32_t b);
/* Destroyed or Destroyed Compromised: no key material. */
bool repl_state_destroyed(uint32_t s);
/*
 * The merged state of one object from two of its states (kind OBJECT,
 * puts or tombstones; either may be NULL but not both) into *out, in
 * canonical form. *out points into a, b and `arena`. 0 or KMS_ERR_NOMEM /
 * KMS_ERR_INVAL. Pure (it only logs a mismatch of immutable fields).
 */
int repl_merge_object(const repl_entity_t *a, const repl_entity_t *b, kms_arena_t *arena,
                      repl_entity_t *out);
/* Whole-row last-writer-wins (tenants, clients, DSK "current"): the
 * entity with the later (hlc, origin); a removal beats a write of the
 * same clock. Either may be NULL. */
const repl_entity_t *repl_merge_lww(const repl_entity_t *a, const repl_entity_t *b);
/* Nodes: LWW, and `removed` is sticky. Both non-NULL. */
void repl_merge_node(const repl_entity_t *a, const repl_entity_t *b, repl_entity_t *out);
/* Equality of two canonical object states (merge results). */
bool repl_object_equal(const repl_entity_t *a, const repl_entity_t *b);

/* ------------------------------------------------------- the module */
typedef struct repl_conn repl_conn_t;
typedef struct repl_peer repl_peer_t;
typedef struct repl_node repl_node_t;
typedef struct repl_ship repl_ship_t;
typedef struct repl_apply repl_apply_t;
typedef struct repl_verify_req repl_verify_req_t;
typedef struct repl_waiter repl_waiter_t;

/* One connection's state; callbacks switch on it. */
enum repl_conn_state {
    RC_CONNECTING,   /* outbound TCP connect in progress */
    RC_HANDSHAKE,    /* TLS handshake */
    RC_HELLO,        /* waiting for HELLO (inbound) or HELLO_ACK (outbound) */
    RC_OPEN,         /* frames flow */
    RC_CLOSING,      /* flushing, then uv_close */
};

struct repl_conn {
    repl_t *r;
    bool outbound;               /* we connected: a push link (we send changes) */
    repl_peer_t *peer;           /* outbound: the configured address */
    repl_node_t *node;           /* the other node, once HELLO named it */
    enum repl_conn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;            /* handshake deadline, then keepalive */
    uv_connect_t creq;
    int handles;                 /* initialised handles not yet closed */
    SSL *ssl;
    BIO *rbio, *wbio;            /* memory BIOs: libuv owns the socket */
    kms_buf_t in;                /* the frame being read (header first) */
    size_t need;                 /* its total size once the header is read */
    size_t frame_len;            /* the size of the frame last handed to link.c */
    size_t pending_out;          /* bytes handed to uv_write, not yet written */
    unsigned writes;             /* write requests in flight */
    bool reading;
    bool busy;                   /* read no further frame (apply.c, join.c) */
    bool has_cert;               /* the other side presented a (verified) certificate */
    char cn[64];                 /* its subject CN (must equal its node id) */
    char fp[65];                 /* its SHA-256 fingerprint */
    uint64_t last_rx_ms;         /* monotonic ms of the last frame received */
    char addr[64];               /* remote address, for logs */
    repl_ship_t *ship;           /* outbound, once open (ship.c) */
    repl_apply_t *apply;         /* inbound, once a frame arrived (apply.c) */
    void *verifying;             /* inbound: digests being computed for the peer */
    repl_verify_req_t *verify_req; /* outbound: the request waiting for VERIFY_RESP */
    void *joining;               /* inbound without a certificate: the JOIN_REQ being answered */
    uint64_t opened_ms;          /* monotonic ms when it became RC_OPEN */
    bool hello_deferred;         /* inbound HELLO kept until a snapshot is applied (link.c) */
    int64_t hello_head;          /* its log head */
    char hello_peer_addr[256];   /* its peer address */
    repl_conn_t *next;
};

/* A configured peer address: one outbound push link, reconnected with
 * backoff for as long as the module runs. */
struct repl_peer {
    repl_t *r;
    char addr[256];
    char host[256];
    char port[8];
    repl_conn_t *conn;           /* NULL while disconnected */
    uv_timer_t retry;
    uv_getaddrinfo_t gai;
    bool resolving;
    bool is_self;                /* the address is this node: not retried (mutex) */
    bool known;                  /* a node answered from it (mutex) */
    unsigned backoff_ms;
    char last_error[160];        /* why the last attempt failed before a node answered (mutex) */
    repl_peer_t *next;
};

/* What this node knows of another node (status, progress). Guarded by
 * the module's mutex for readers on other threads; written on the loop. */
struct repl_node {
    repl_peer_status_t st;
    bool acked_known;            /* it acknowledged a position since start */
    int64_t covered;             /* every row <= this reached it or it holds it (trim); -1: acked_seq */
    int64_t oldest_unacked_hlc;  /* of the oldest frame in flight to it (lag) */
    /* startup.c (loop thread) */
    bool startup_expected;       /* in the node list at start: waited for */
    bool startup_caught_up;      /* we applied its log up to startup_target */
    int64_t startup_target;      /* highest log head it named since start (-1: none) */
    repl_node_t *next;
};

struct repl {
    repl_options_t opt;          /* strings point into `strs` */
    kms_arena_t *strs;
    SSL_CTX *sctx;               /* accepting side */
    SSL_CTX *cctx;               /* connecting side */
    uv_loop_t loop;
    uv_thread_t thread;
    bool started, loop_init;
    uv_async_t wake;             /* stop, store commits, waiters */
    uv_tcp_t listener;
    bool listening;
    atomic_bool stopping;
    pthread_mutex_t mu;          /* guards nodes' status for other threads */
    repl_conn_t *conns;
    repl_peer_t *peers;
    repl_node_t *nodes;
    uint8_t rdbuf[64 * 1024];    /* libuv read buffer (one loop thread) */

    repl_verify_req_t *verify_new; /* queued by repl_verify (mutex) */

    /* sync.c */
    bool hooks_init;
    store_reader_t *rd;          /* the loop thread's reader */
    _Atomic int64_t last_seq;    /* highest change-log seq committed here */
    _Atomic int64_t trimmed_to;  /* the log holds no row <= this */
    atomic_int catching_up;      /* inbound links inside a snapshot */
    atomic_bool seeded;          /* holds data (or needs none): may serve */
    atomic_bool nodes_changed;   /* a node row was applied: reload removals */
    atomic_int trim_result;      /* 0 none, 1 done, negative failed */
    store_write_t *trim_w;       /* the trim being committed */
    atomic_bool trim_cb_done;    /* its callback returned */
    int64_t trim_to;
    uv_timer_t trim_timer, wait_timer;
    pthread_mutex_t wq_mu;       /* guards wq_new */
    pthread_mutex_t apply_mu;    /* one apply commit at a time (apply.c) */
    repl_waiter_t *wq_new;       /* queued by repl_wait (any thread) */
    repl_waiter_t *waiters;      /* loop thread */
    atomic_uint_fast64_t sync_waits, sync_failed, sync_degraded;
    uint64_t degrade_logged_ms;
    char removed_fp[64][65];     /* certificate fingerprints of removed nodes */
    size_t n_removed_fp;

    /* Progress per origin (apply.c, loop thread): the highest origin_seq
     * of each node's own changes applied here durably, reported to the
     * peers in ACK and HELLO_ACK so that they relay a third node's changes
     * only to a node that cannot get them from it directly. */
    struct { char node_id[64]; int64_t hwm; } prog[64];
    size_t n_prog;
    uv_timer_t relay_timer;      /* ship.c runs it, sync.c opens and closes it */
    bool relay_timer_on;
    atomic_uint_fast64_t relayed, relay_skipped;
    atomic_uint_fast64_t shipped_mem, shipped_store;
    atomic_uint_fast64_t ship_inline, ship_queued; /* log batches: loop thread, threadpool */
    atomic_uint_fast64_t position_frames, positions_held; /* ship.c, SHIP_EMPTY_MS */
    atomic_uint_fast64_t apply_commits, apply_frames, apply_waiting; /* apply.c */
    repl_encache_t *encache;     /* encoded entities shared by the push links (NULL: none) */

    /* startup.c */
    atomic_bool startup_done;    /* the start-up catch-up finished or timed out */
    uv_timer_t startup_timer;    /* replication.startup_wait */
    bool startup_timer_init;
    uint64_t startup_t0_ms;
};



/* "host:port" or "[v6]:port" -> host, port text. 0 or KMS_ERR_CONFIG. */
int repl_split_hostport(const char *s, char *host, size_t hostlen, char port[8]);

#define REPL_BACKOFF_MIN_MS 100
#define REPL_BACKOFF_MAX_MS 5000

/* tls.c */
int repl_tls_init(repl_t *r, kms_error_t *err);
void repl_tls_free(repl_t *r);
/* After the handshake: fill c->has_cert/cn/fp and check the peer role.
 * 0, or KMS_ERR_PERM with why filled. */
int repl_tls_check_peer(repl_conn_t *c, char *why, size_t whylen);

/* conn.c */
repl_conn_t *repl_conn_new(repl_t *r, bool outbound);
/* Start TLS on a connected socket (reading, handshake deadline). */
void repl_conn_start(repl_conn_t *c);
/* Encode and send one frame. 0 or an error (the connection is closed). */
int repl_conn_send(repl_conn_t *c, const repl_frame_t *f);
/* Send ERROR(code, message) and close. */
void repl_conn_fail(repl_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void repl_conn_close(repl_conn_t *c, const char *why);
/* Continue reading after a frame was applied (busy cleared). */
void repl_conn_resume(repl_conn_t *c);
/* Send a PING when the link was quiet, close it when the peer was silent
 * too long, and re-arm the timer. */
void repl_conn_keepalive(repl_conn_t *c);
/* Send an already encoded frame (ship.c encodes off the loop). */
int repl_conn_send_bytes(repl_conn_t *c, const uint8_t *p, size_t n);
/* Open and fewer than `high` bytes waiting for the socket. */
bool repl_conn_can_send(const repl_conn_t *c, size_t high);

/* link.c: the protocol on an established connection. */
void repl_link_ready(repl_conn_t *c);                 /* TLS done and checked */
void repl_link_frame(repl_conn_t *c, repl_frame_t *f); /* takes f */
/* The connection is closing (was: its state before). */
void repl_link_closed(repl_conn_t *c, const char *why, enum repl_conn_state was);
/* Writes drained on an open link: the sender may produce more. */
void repl_link_writable(repl_conn_t *c);
int64_t repl_wall_ms(const repl_t *r);
uint64_t repl_mono_ms(void);
/* The status entry of node_id, created when absent (loop thread; NULL on NOMEM). */
repl_node_t *repl_node_get(repl_t *r, const char *node_id);
void repl_peer_schedule(repl_peer_t *p);
/* Record why the last attempt on p failed (status; takes the mutex). */
void repl_peer_error(repl_peer_t *p, const char *why);

/* state.c: store rows <-> entities (entities point into the rows). */
/* One (kind, key) of a list, at index i. */
typedef struct repl_keyref {
    uint32_t kind;
    const char *key;
    size_t i;
} repl_keyref_t;
/* dup_out[i] (n_dup entries, cleared first) is set for every entry of refs
 * whose (kind, key) an entry of lower index has too (keep_last: of higher
 * index), so one entry per key stays unmarked: a hash table (lists of up
 * to 2 048) or one sort, instead of comparing each entry with every
 * other. May reorder refs. */
void repl_mark_repeats(repl_keyref_t *refs, size_t n, bool keep_last, bool *dup_out,
                       size_t n_dup);
void repl_entity_from_object(repl_entity_t *e, const store_object_t *o);
void repl_object_from_entity(store_object_t *o, const repl_entity_t *e);
store_object_t *repl_object_copy(kms_arena_t *a, const store_object_t *o);
void repl_entity_from_node(repl_entity_t *e, const store_node_t *n);
void repl_node_from_entity(store_node_t *n, const repl_entity_t *e);

/* sync.c */
void repl_node_acked(repl_t *r, repl_node_t *n, int64_t acked, int64_t oldest_hlc);
bool repl_node_removed(repl_t *r, const char *node_id, const char *fp);
void repl_load_nodes(repl_t *r);
void repl_adopt_current_dsk(repl_t *r, store_reader_t *rd);
int64_t repl_log_floor(repl_t *r);
void repl_set_node_state(repl_t *r, repl_node_t *n, const char *state);
/* A snapshot's progress on node n's status (repl_peer_status_t). */
void repl_set_node_catchup(repl_t *r, repl_node_t *n, int64_t total, int64_t done);

/* Frames in flight per push link (bytes), and the socket's high-water
 * mark before the sender pauses. */
#define REPL_SHIP_WINDOW ((size_t)4 << 20)
/* The change log's newest rows kept in memory with the objects they
 * committed (store_log_tail_enable), shared by every push link; a link
 * further behind reads the store. */
#define REPL_LOG_TAIL_BYTES ((size_t)16 << 20)
/* encache.c: encoded ENTITY structures of rows shipped from memory, by
 * the row's seq, shared by the push links (REPL_ENCACHE_BYTES, oldest
 * dropped first). get appends the bytes to out: 0, or KMS_ERR_NOTFOUND
 * (or out's error). Any thread. */
#define REPL_ENCACHE_BYTES ((size_t)8 << 20)
repl_encache_t *repl_encache_new(size_t max_bytes);
void repl_encache_free(repl_encache_t *c); /* NULL ok */
int repl_encache_get(repl_encache_t *c, int64_t seq, kms_buf_t *out);
void repl_encache_put(repl_encache_t *c, int64_t seq, const uint8_t *p, size_t len);
void repl_encache_stats(repl_encache_t *c, uint64_t *hits_out, uint64_t *misses_out);

/* verify.c */
void repl_verify_answer(repl_conn_t *c, const repl_frame_t *f);   /* inbound VERIFY_REQ */
void repl_verify_response(repl_conn_t *c, const repl_frame_t *f); /* outbound VERIFY_RESP */
void repl_verify_link_closed(repl_conn_t *c);
/* Send queued requests (loop thread); `stopping`: answer them at once. */
void repl_verify_pump(repl_t *r, bool stopping);

/* join.c: a JOIN_REQ on a connection without a certificate (takes f),
 * and its connection closing before the answer. */
void repl_join_frame(repl_conn_t *c, repl_frame_t *f);
void repl_join_link_closed(repl_conn_t *c);
/* The answer to a JOIN_REQ from `remote` (blocking: a worker thread):
 * JOIN_RESP, or ERROR saying why not (logged). 0 or KMS_ERR_NOMEM. */
int repl_join_answer(const repl_options_t *o, const char *remote, const repl_frame_t *req,
                     repl_frame_t **resp_out);

/* members.c: a push link to a node of the node list that no configured
 * peer address reaches yet (a node that joined after this one started).
 * Loop thread (repl_load_nodes). */
void repl_push_to_node(repl_t *r, const store_node_t *n);

/* ship.c: the sending side of an outbound (push) link. */
/* The entity (kind, key) as it is now; KMS_ERR_NOTFOUND when gone. */
int repl_load_entity(repl_t *r, store_reader_t *rd, kms_arena_t *a, enum store_kind kind,
                     const char *key, repl_entity_t *e);

/* link_pos and the peer's progress vector from HELLO_ACK; seq and the
 * vector of each ACK (hwm NULL, n 0 from a peer that sends none). */
void repl_ship_start(repl_conn_t *c, int64_t link_pos, const repl_hwm_t *hwm, size_t n_hwm);
void repl_ship_acked(repl_conn_t *c, int64_t seq, const repl_hwm_t *hwm, size_t n_hwm);
void repl_ship_more(repl_conn_t *c);
void repl_ship_stop(repl_conn_t *c);
/* A deferred HELLO (link.c): answered once the snapshot being applied is
 * done, so that the late link starts where the snapshot left off. */
void repl_link_answer_deferred(repl_t *r);

/* The module's store side: commit notifications, waiters, readers
 * (ship.c). Loop thread, except init/free. */
int repl_hooks_init(repl_t *r, kms_error_t *err);

/* startup.c: the start-up catch-up (see there). init: after the node list
 * is loaded, before the loop runs; head: a node named its log head (HELLO
 * or HELLO_ACK); progress: our applied position of a node's log moved
 * (apply.c, after the commit); stop: with the other handles. Loop thread. */
void repl_startup_init(repl_t *r);
void repl_startup_head(repl_t *r, repl_node_t *n, int64_t head);
void repl_startup_progress(repl_t *r, const char *node_id, int64_t link_pos);
void repl_startup_stop(repl_t *r);
/* repl.c: connect the push link of a peer now (it just showed it is up),
 * unless it is connected or connecting. Loop thread. */
void repl_peer_kick(repl_t *r, const char *peer_addr);
void repl_hooks_wake(repl_t *r);
void repl_hooks_stop(repl_t *r);
/* Wait (bounded) for a trim commit in flight: before the loop closes. */
void repl_hooks_wait_trim(repl_t *r);
void repl_hooks_free(repl_t *r);
/* Fill the lag fields of a status snapshot (caller's thread). */
void repl_status_fill(repl_t *r, repl_peer_status_t *v, size_t n);

/* apply.c: the receiving side of an inbound link. */
/* Where this node's copy of node_id's log stands (its repl_state). */
int64_t repl_apply_link_pos(repl_t *r, const char *node_id);
/* Load the progress table from the store (repl_hooks_init). */
void repl_progress_load(repl_t *r);
/* This node's progress for a peer (ACK, HELLO_ACK): one entry per origin
 * it knows, with `linked` = that node's push link to us is open. At most
 * cap entries; node ids point into r. Loop thread. */
size_t repl_progress_fill(repl_t *r, repl_hwm_t *v, size_t cap);
void repl_apply_frame(repl_conn_t *c, repl_frame_t *f); /* takes f */
void repl_apply_stop(repl_conn_t *c);

#endif /* KMS_REPL_INT_H */
