/*
 * kmip/kmip.h: KMIP semantics on top of the TTLV codec.
 *
 * Decodes a Request Message, authorises and executes each Batch Item
 * against the store, and builds the Response Message. No sockets, no event
 * loop: server/ hands in the bytes of one request and gets the bytes of one
 * response back. Operations that write block the calling thread until the
 * store commit is durable, so those run on a worker thread, never on an
 * event-loop thread; kmip_handle_inline() lets a loop run the requests that
 * cannot block (reads, and single writes whose commit it hands over).
 */
#ifndef KMS_KMIP_H
#define KMS_KMIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "store/store.h"

typedef struct kmip_server kmip_server_t;

enum kmip_role { KMIP_ROLE_NONE = 0, KMIP_ROLE_CLIENT = 1, KMIP_ROLE_ADMIN = 2 };

/* Who is asking, as established by the transport (TLS client certificate).
 * The Credential in the Request Header is checked inside kmip_handle()
 * through the auth callback. */
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

/* Resolve the identity of a request from the peer and the (optional)
 * Credential. Return 0 with *id_out filled, or KMS_ERR_PERM to refuse the
 * request (Permission Denied). Called on the worker thread. */
typedef int (*kmip_auth_cb)(void *arg, const kmip_peer_t *peer, const char *username,
                            const char *password, kmip_identity_t *id_out);

typedef struct kmip_config {
    store_t *store;
    hsm_keyring_t *keyring;
    kmip_auth_cb auth;         /* NULL: every peer is admin of tenant "default" (tests) */
    void *auth_arg;
    size_t max_response;       /* hard cap on a response; default 16 MiB */
    size_t max_batch_items;    /* default 1024 */
    size_t arena_limit;        /* per-request memory; default 64 MiB */
    const char *vendor;        /* "kmsd" */
    const char *version;       /* server version string */
    /* Added later, backward compatible (0 = the TTLV defaults): */
    size_t max_depth;          /* TTLV nesting of a request (limits.max_depth) */
    size_t max_items;          /* TTLV items in a request (limits.max_items) */
    /* The time KMIP semantics use (dates, state transitions, Time Stamp),
     * in seconds since the epoch; NULL = the wall clock. For tests that
     * replay a recorded timeline. */
    int64_t (*clock)(void *arg);
    void *clock_arg;
    /* Availability gate (added for HSM fail-closed, backward compatible):
     * called on the worker thread before each batch item's handler; a
     * non-zero return answers that item at once with Operation Failed /
     * General Failure and the text `gate_msg` (or "unavailable"), without
     * running the handler. NULL = every operation runs. Must be fast. */
    int (*gate)(void *arg, uint32_t operation);
    void *gate_arg;
    const char *gate_msg;
} kmip_config_t;

/* cfg is copied (the store and keyring must outlive the server). */
int kmip_server_new(const kmip_config_t *cfg, kmip_server_t **out);
/* Closes every worker thread's store reader. Call once no kmip_handle()
 * runs any more, and before store_close(). NULL ok. */
void kmip_server_free(kmip_server_t *s);

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

/*
 * Handle one complete request message (8-byte header included). Fills
 * `resp` with a complete Response Message and returns 0 in every case the
 * client can be answered (including Invalid Message, Operation Not
 * Supported, Permission Denied...). Returns KMS_ERR_PROTO only when the
 * bytes are not a TTLV item at all; the caller then sends the response in
 * `resp` if it is non-empty and closes the connection. Thread-safe: each
 * worker thread gets its own store reader on first use.
 */
int kmip_handle(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                kms_buf_t *resp, kmip_summary_t *summary_out);

/*
 * For an event-loop thread. When any batch item could block (a Locate,
 * whose cost depends on the store's size; key pair generation; a second
 * store write; a read after a write) or the request carries a Credential
 * (password hashing), return KMS_ERR_AGAIN before anything is executed or
 * authorised: no side effect, `resp` empty, *deferred_out NULL, the
 * summary untouched; the caller runs the same bytes with kmip_handle() on a worker.
 * Reads (Get, Get Attributes, Get Attribute List, Check, Query, Discover
 * Versions) and the operations that make one store write (Create,
 * Register, Activate, Revoke, Destroy, Add/Modify/Delete Attribute,
 * Archive, Recover; and the bookkeeping write of a read, such as Fresh
 * cleared by the first Get) run here. Their write is not committed but
 * returned in *deferred_out (NULL when the request wrote nothing), and
 * `resp` holds the answer as it will be once the write is durable. The
 * caller commits it without blocking (store_commit_async) and sends `resp`
 * only on success; on any commit error it drops `resp` and runs the request
 * again with kmip_handle() on a worker, which answers the real outcome
 * (nothing of the failed write was stored). The caller owns *deferred_out
 * (store_write_free after the commit).
 */
int kmip_handle_inline(kmip_server_t *s, const kmip_peer_t *peer, const uint8_t *req, size_t len,
                       kms_buf_t *resp, kmip_summary_t *summary_out, store_write_t **deferred_out);

/* Whether the numeric search key of attribute `name`, whose value has TTLV
 * type `ttlv_type`, goes into the store's Locate index
 * (store_attr_t.index_nkey): Date-Time values and custom attributes (x-,
 * y-) only. Store migration 5 applies the same rule to existing rows;
 * restore uses it for backed-up attributes. */
bool kmip_attr_nkey_indexed(const char *name, int ttlv_type);

#endif /* KMS_KMIP_H */
