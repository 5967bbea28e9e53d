/*
 * kmip/kmip.h: KMIP semantics on top of the TTLV codec.
 *
 * A request walks one straight path, each step a call on one request value
 * (kmip_request_t) that the caller holds from decode to free:
 *
 *   decode -> authenticate -> gate -> execute -> [commit_done] -> encode
 *
 * decode parses the bytes once into the request value; authenticate
 * resolves who is asking (certificate or Credential, against the store's
 * clients table); gate takes what the server can offer right now as data
 * (is key material reachable); execute runs the Batch Items against the
 * store; encode builds the Response Message; summary says what happened,
 * for the caller's log line and audit record. No sockets, no event loop, no
 * call back into the caller: server/ feeds bytes and facts in and takes
 * bytes and a summary out.
 *
 * An event-loop thread may execute a request itself when
 * kmip_request_can_run_inline() says so (reads, and single writes whose
 * commit it hands to the store without waiting); everything else is
 * executed on a worker thread, which is handed the decoded value, never the
 * bytes. kmip_handle() chains every step for tests and the fuzzer.
 */
#ifndef KMS_KMIP_H
#define KMS_KMIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "store/store.h"

typedef struct kmip_server kmip_server_t;
typedef struct kmip_request kmip_request_t;

enum kmip_role { KMIP_ROLE_NONE = 0, KMIP_ROLE_CLIENT = 1, KMIP_ROLE_ADMIN = 2 };

/* Who is asking, as established by the transport (TLS client certificate).
 * The Credential in the Request Header is checked by
 * kmip_request_authenticate(). */
typedef struct kmip_peer {
    const char *cert_sha256;   /* hex fingerprint of the client certificate, or NULL */
    const char *cert_cn;       /* subject CN, or NULL */
    const char *address;       /* "127.0.0.1:53422", for logs and audit */
} kmip_peer_t;

/* The identity a request runs as. */
typedef struct kmip_identity {
    char name[128];
    char tenant[64];
    enum kmip_role role;
} kmip_identity_t;

/* Where identities come from. */
enum kmip_access {
    KMIP_ACCESS_CLIENTS = 0,   /* the store's clients table (kmsd) */
    KMIP_ACCESS_OPEN = 1,      /* no lookup: every peer is admin of tenant "default",
                                  named by its Credential's user name or device (else
                                  its certificate CN); for unit tests of operations only */
};

/* Argon2id cost of new password hashes; a zero field takes the default
 * (t=2 passes, m=19 MiB, p=1: the OWASP minimum). Verification always
 * uses the cost stored in the hash. */
typedef struct kmip_password_cost {
    uint32_t t_cost;
    uint32_t m_kib;
    uint32_t parallelism;
} kmip_password_cost_t;

/* The time KMIP semantics use (dates, state transitions, Time Stamp), in
 * seconds since the epoch. */
typedef int64_t (*kmip_clock_cb)(void *arg);

/* Which key sizes Create, Create Key Pair, Re-key and Register accept,
 * beyond what each algorithm allows (kmip/policy.c; conf kmip.key_policy).
 * A refusal is Invalid Field, its message naming the policy. */
enum kmip_key_policy {
    KMIP_KEY_POLICY_INTEROP = 0, /* RSA >= 1024, two-key 3DES, every curve */
    KMIP_KEY_POLICY_NIST = 1,    /* SP 800-131A: RSA >= 2048, no DES / two-key 3DES,
                                    curves >= 224 bits, keys >= 112 bits */
};

typedef struct kmip_config {
    store_t *store;
    hsm_keyring_t *keyring;
    enum kmip_access access;
    kmip_password_cost_t password_cost; /* of the unknown-user dummy check */
    size_t max_response;       /* hard cap on a response; default 16 MiB */
    size_t max_batch_items;    /* default 1024 */
    size_t arena_limit;        /* per-request memory; default 64 MiB */
    const char *vendor;        /* "kmsd" */
    const char *version;       /* server version string */
    size_t max_depth;          /* TTLV nesting of a request (limits.max_depth); 0 = TTLV default */
    size_t max_items;          /* TTLV items in a request (limits.max_items); 0 = TTLV default */
    kmip_clock_cb clock;       /* NULL = the wall clock; tests replay a recorded timeline */
    enum kmip_key_policy key_policy; /* default KMIP_KEY_POLICY_INTEROP */
    void *clock_arg;
    /* Streamed (multi-part) cryptographic operations, KMIP 1.3: open
     * streams in all (default 1024) and per identity (default 16), and
     * the idle time after which a stream is dropped (default 60 s). */
    size_t crypto_streams_max;
    size_t crypto_streams_per_identity;
    size_t crypto_streams_per_tenant;  /* 0: a quarter of crypto_streams_max */
    uint32_t crypto_stream_idle_s;
    /* Work budget of one execution in ms (limits.request_time; 0 = none):
     * the batch loop and Locate stop with Operation Failed once it is
     * spent. */
    uint32_t request_time_ms;
    /* Certify and Re-certify: the CA that issues certificates to KMIP
     * clients (borrowed: must outlive the server). NULL = the two
     * operations answer Operation Not Supported and Query omits them.
     * It must not be a CA kmsd trusts for its own clients or peers (see
     * docs/security.md); the server checks that at startup. */
    X509 *certify_ca;
    EVP_PKEY *certify_ca_key;
    uint32_t certify_days;     /* validity when the request names no end; default 365 */
    /* Asynchronous operations (kmip/op_async.c): how long a record (pending
     * or answered) is kept, default 3600 s, and how many one identity may
     * have, default 16 (past that the operation answers synchronously). */
    uint32_t async_lifetime_s;
    uint32_t async_per_identity;
} kmip_config_t;

/* cfg is copied (the store and keyring must outlive the server). With
 * KMIP_ACCESS_CLIENTS it hashes one random password at password_cost, the
 * hash unknown user names are checked against (so that refusing them takes
 * as long as a wrong password). */
int kmip_server_new(const kmip_config_t *cfg, kmip_server_t **out);
/* Closes every thread's store reader. Call once no request runs any more,
 * and before store_close(). NULL ok. */
void kmip_server_free(kmip_server_t *s);

/* ------------------------------------------------------------ identity */
/*
 * Who a peer is (the lookup kmip_request_authenticate makes): its
 * certificate (SHA-256 fingerprint in the store's clients table, or the
 * subject CN of a client registered by CN alone) and/or a Credential (user
 * name + password, verified against the stored Argon2id hash; both present:
 * the same tenant, the lesser role; Device credentials:
 * kmip_identify_device). Certificate answers are cached per
 * thread until a commit changes clients or tenants; successful password
 * verifications are cached for 5 minutes, keyed by the stored hash.
 * Returns 0 with *id_out filled, KMS_ERR_PERM (refused: did not
 * authenticate, whatever the cause; a log line says why, never the
 * password; a request answers it Authentication Not Successful) or
 * KMS_ERR_UNAVAIL (the clients table cannot be read; General Failure),
 * *id_out then zeroed. A Credential costs an Argon2id
 * verification unless cached: not on an event loop. Any thread.
 */
int kmip_identify(kmip_server_t *s, const kmip_peer_t *peer, const char *username,
                  const char *password, kmip_identity_t *id_out);

/* A KMIP Device credential as a request carries it (KMIP 1.1 section
 * 2.1.2, Table 5); NULL = the field was not sent. */
typedef struct kmip_device_cred {
    const char *serial;        /* Device Serial Number */
    const char *password;
    const char *device_id;     /* Device Identifier */
    const char *network_id;    /* Network Identifier */
    const char *machine_id;    /* Machine Identifier */
    const char *media_id;      /* Media Identifier */
} kmip_device_cred_t;

/*
 * kmip_identify for a request whose Credential is a Device credential: the
 * device client registered with its Device Serial Number, whose other
 * registered identifiers the credential must all carry with the same
 * values (identifiers the client did not register are not compared), and
 * whose password must verify against the stored Argon2id hash. An unknown
 * or mismatched device costs the same Argon2id time as a wrong password.
 * With a certificate: the same tenant, the lesser role, as for a user.
 * Same returns and threads as kmip_identify (kmip_identify_all with one
 * Credential).
 */
int kmip_identify_device(kmip_server_t *s, const kmip_peer_t *peer, const kmip_device_cred_t *dev,
                         kmip_identity_t *id_out);

/* One Credential of an Authentication structure: Username and Password
 * (username, password) or Device (dev). */
typedef struct kmip_credential {
    bool device;               /* a Device credential */
    const char *username;      /* Username and Password: required */
    const char *password;      /* NULL = not sent */
    kmip_device_cred_t dev;    /* Device */
} kmip_credential_t;

/* The most Credentials a request's Authentication may hold (KMIP 1.2+
 * allows several): each may cost an Argon2id verification. */
#define KMIP_MAX_CREDENTIALS 4

/*
 * kmip_identify for a certificate and/or n (0..KMIP_MAX_CREDENTIALS)
 * Credentials: every one presented must authenticate (as kmip_identify and
 * kmip_identify_device check one), and all of them, with the certificate,
 * must name the same tenant. The identity is the first Credential's
 * client (else the certificate's), with the lesser role: admin only when
 * every one of them is an admin. Every Credential is verified even after
 * one failed, so the time taken does not tell which one did. Same returns
 * and threads as kmip_identify; n above the bound is KMS_ERR_PERM.
 */
int kmip_identify_all(kmip_server_t *s, const kmip_peer_t *peer, const kmip_credential_t *creds,
                      size_t n, kmip_identity_t *id_out);

/*
 * For tls.require_registered, right after the handshake: 0 when a
 * certificate client with this fingerprint (or, registered by CN without a
 * fingerprint, this CN) exists, KMS_ERR_PERM when not (a log line says how
 * to register it), KMS_ERR_UNAVAIL. Through the same per-thread cache as
 * kmip_identify: one indexed read at most. sha256_hex is lower-case hex;
 * cn may be NULL. Any thread.
 */
int kmip_cert_registered(kmip_server_t *s, const char *sha256_hex, const char *cn);

/*
 * The identity of a certificate alone, as kmip_identify() finds it, but
 * without logging a refusal: for the server's admission of a connection
 * right after its handshake (it decides what to log). 0 with *id_out
 * filled, KMS_ERR_PERM (not registered), KMS_ERR_UNAVAIL. Any thread.
 */
int kmip_identify_cert(kmip_server_t *s, const kmip_peer_t *peer, kmip_identity_t *id_out);

/* Argon2id-encode `password` (1..1024 bytes) with `cost` (NULL = the
 * defaults) and a random salt into out (>= 160 bytes), for a new password
 * client. 0, KMS_ERR_INVAL, KMS_ERR_LIMIT (out too small), KMS_ERR_CRYPTO.
 * Costs m_kib of memory and t passes. Any thread. */
int kmip_password_hash(const kmip_password_cost_t *cost, const char *password, char *out,
                       size_t outlen);

/* What happened, for the per-request log line and the audit log. */
typedef struct kmip_summary {
    uint32_t operation;        /* first batch item's operation (0 if none) */
    uint32_t result_status;    /* worst status over the batch */
    uint32_t result_reason;
    size_t batch_count;
    char identity[128];
    char tenant[64];
    char object_id[64];        /* first object id touched, "" if none */
} kmip_summary_t;

/* ------------------------------------------------------------ requests */
/*
 * A request value belongs to one thread at a time; the caller may hand it
 * to another thread between steps (decode on an event loop, execute and
 * encode on a worker, free back on the loop). Its memory (the decoded
 * tree, the answers, the deferred write) is one arena, wiped when freed.
 */

/*
 * Step 1: decode one complete request message (8-byte header included)
 * and check its header and Batch Items. The bytes are not referenced
 * afterwards: the caller may wipe them at once. Returns 0 with *req_out
 * set, also for a message that is answered with Invalid Message (nothing
 * of it runs); KMS_ERR_PROTO with *req_out set when the bytes are not TTLV
 * at all: the caller sends the encoded Invalid Message answer and closes
 * the connection; KMS_ERR_NOMEM or KMS_ERR_INVAL with *req_out NULL. peer
 * may be NULL; its strings are not copied and must stay valid until
 * kmip_request_free (a connection's own fields do). Any thread.
 */
int kmip_request_decode(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *msg, size_t len,
                        kmip_request_t **req_out);

/* Reads and single writes an event loop may execute (see
 * kmip_request_execute). False when an item could block (Locate, whose
 * cost grows with the store; key pair generation; Re-key's two writes) or
 * the request carries a Credential (password hashing, also for a Device
 * credential). */
bool kmip_request_can_run_inline(const kmip_request_t *r);

/*
 * Step 2: who is asking (kmip_identify: certificate and/or Credential). A
 * refused request is still answered: every Batch Item with Authentication
 * Not Successful (General Failure when the clients table cannot be read),
 * and nothing runs. Returns 0, or KMS_ERR_PERM when refused (also when the
 * clients table cannot be read).
 * Called once per request; a second call returns the first verdict. A
 * Credential may cost a password hash: call it on a worker thread unless
 * kmip_request_can_run_inline() is true.
 */
int kmip_request_authenticate(kmip_request_t *r);

/* Step 3: what the server can offer this request, read once per request
 * by the caller. Items whose operation needs key material (Create,
 * Register, Get, Re-key, the cryptographic operations...) are answered
 * Operation Failed / General Failure with `keys_reason` while
 * `keys_unavailable`; everything else runs. */
typedef struct kmip_gate {
    bool keys_unavailable;     /* the master key cannot be reached */
    const char *keys_reason;   /* their Result Message (copied); NULL = "unavailable" */
    /* Nothing may run (e.g. the audit log cannot take the record): every
     * item is answered Operation Failed / General Failure with this
     * message (copied). NULL = run. */
    const char *refuse_all;
} kmip_gate_t;
void kmip_request_gate(kmip_request_t *r, const kmip_gate_t *g);

enum kmip_run {
    KMIP_RUN_WORKER = 0,       /* may block: store commits wait until durable */
    KMIP_RUN_LOOP = 1,         /* an event loop: nothing waits */
};

/*
 * Step 4: run the Batch Items. With KMIP_RUN_WORKER every write is
 * committed (and durable) before this returns 0. With KMIP_RUN_LOOP (only
 * when kmip_request_can_run_inline()) the one store write a request may
 * make is not committed: kmip_request_pending_write() returns it, and the
 * answer stands only once it commits (kmip_request_commit_done). When the
 * request turns out to need a worker midway (a second write, a read after
 * the write) it returns KMS_ERR_AGAIN with nothing stored and nothing
 * answered: execute it again with KMIP_RUN_WORKER on a worker thread.
 * Executing again discards the answers of the previous run. Returns 0,
 * KMS_ERR_AGAIN, KMS_ERR_INVAL.
 */
int kmip_request_execute(kmip_request_t *r, enum kmip_run where);

/* The write a KMIP_RUN_LOOP execution left to commit, or NULL. Owned by
 * the request: commit it (store_commit_async) and report the outcome with
 * kmip_request_commit_done() before encoding; do not free it. */
store_write_t *kmip_request_pending_write(const kmip_request_t *r);

/*
 * The pending write's commit finished with `result` (0 or the codes of
 * store_commit). Returns 0 when the request can be encoded now: committed,
 * or failed for good, in which case the item that wrote is answered
 * Operation Failed with the reason (nothing was stored, and it is never
 * answered as a success). Returns KMS_ERR_AGAIN on
 * KMS_ERR_CONFLICT (another writer changed the object first): nothing was
 * stored; execute the request again with KMIP_RUN_WORKER, which retries
 * against the new version.
 */
int kmip_request_commit_done(kmip_request_t *r, int result);

/*
 * After execute (and commit_done): the highest change-log seq the
 * request's committed writes appended (store_write_last_seq), 0 when it
 * changed nothing. A server with replication.sync_acks waits for peers to
 * acknowledge this position before it encodes the answer. Any thread.
 */
int64_t kmip_request_last_seq(const kmip_request_t *r);

/*
 * The request's changes are committed here but were not confirmed as
 * asked (replication.sync_acks not met, on_sync_timeout fail): every item
 * that wrote and succeeded is answered Operation Failed / General Failure
 * with `msg` (copied) instead. Before encode. Any thread.
 */
void kmip_request_unconfirmed(kmip_request_t *r, const char *msg);

/* Step 5: the Response Message into resp (reset first). Responses over
 * the client's Maximum Response Size or the configured cap answer Response
 * Too Large. 0, KMS_ERR_NOMEM; KMS_ERR_STATE while a pending write is not
 * settled (kmip_request_commit_done): nothing is answered before it is
 * durable. Any thread. */
int kmip_request_encode(kmip_request_t *r, kms_buf_t *resp);

/* What happened (after encode: a Response Too Large rewrite counts). */
void kmip_request_summary(const kmip_request_t *r, kmip_summary_t *out);

/* Ask an execution in progress (on another thread) or a later one to stop
 * soon: the batch loop answers the items it has not run Operation Failed
 * ("request cancelled"), Locate stops between rows. For a connection that
 * closed while its request ran. Any thread; NULL ok. */
void kmip_request_cancel(kmip_request_t *r);

/* Free the request, its arena (wiped) and an uncommitted pending write.
 * NULL ok. */
void kmip_request_free(kmip_request_t *r);

/*
 * Every step in one call, on the calling thread (KMIP_RUN_WORKER, keys
 * available): for tests and the fuzzer. Fills `resp` with a complete
 * Response Message and returns 0 in every case the client can be answered
 * (including Invalid Message, Operation Not Supported, Permission
 * Denied...). Returns KMS_ERR_PROTO when the bytes are not TTLV at all
 * (`resp` then holds the Invalid Message answer). summary_out may be NULL.
 */
int kmip_handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                kms_buf_t *resp, kmip_summary_t *summary_out);

/* Whether the numeric search key of attribute `name`, whose value has TTLV
 * type `ttlv_type`, goes into the store's Locate index
 * (store_attr_t.index_nkey): Date-Time values and custom attributes (x-,
 * y-) only. Store migration 5 applies the same rule to existing rows;
 * restore uses it for backed-up attributes. */
bool kmip_attr_nkey_indexed(const char *name, int ttlv_type);

#endif /* KMS_KMIP_H */
