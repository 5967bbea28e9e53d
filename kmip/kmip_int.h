/*
 * kmip/kmip_int.h: the private contract inside kmip/ (core + operations).
 *
 * - kmip_request_t: the request value of kmip.h (decoded header and Batch
 *   Items, identity, the answers of the last execution, the pending write).
 * - kmip_ctx_t: everything one batch item's handler needs (arena, identity,
 *   protocol version, ID Placeholder, store reader, request and response
 *   payloads, the failure recorded in a kms_error_t).
 * - The operation handler signature and the dispatch table entry.
 * - The managed-object model (kmip_obj_t) with load/save against store/:
 *   attributes are kept as decoded TTLV Attribute Value items; key material
 *   is sealed with hsm_row_seal() only when it is new, and a save that
 *   leaves it alone writes the stored sealed fields back unchanged.
 * - Attribute helpers (get/set/add/remove by name and index) and the
 *   attribute rule table (single/multi valued, who may set/modify/delete).
 * - kmip_fail(): record a KMIP Result Reason + message in ctx->err and
 *   return an error.
 *
 * Nothing here is visible outside kmip/. Not thread-safe per object: one
 * context belongs to one worker thread for the duration of one request.
 *
 * Conventions for handlers:
 *   int kmip_op_xxx(kmip_ctx_t *ctx)
 *     reads ctx->payload (the Request Payload structure, never NULL: an
 *     empty structure when the request had none), appends its answer to
 *     ctx->resp_payload (an empty Response Payload structure, already made),
 *     and returns 0, or returns kmip_fail(ctx, REASON, "msg") on a client
 *     error. Any other negative return without kmip_fail() becomes General
 *     Failure (or the mapping in kmip_reason_of()).
 *   Objects, trees and strings come from ctx->arena (freed after the
 *   request). Plaintext material goes in kms_secret_t; give it to
 *   kmip_ctx_own_secret() or free it yourself.
 */
#ifndef KMS_KMIP_INT_H
#define KMS_KMIP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "store/store.h"
#include "ttlv/ttlv.h"

/* ---------------------------------------------------------------- server */
/* Identity state (auth.c): the password verification cache. */
#define KMIP_PW_CACHE_SLOTS 256
typedef struct kmip_pw_cache_entry {
    unsigned char tag[32];       /* HMAC(cache_key, name, password, stored hash) */
    int64_t expires_us;
    bool used;
} kmip_pw_cache_entry_t;

typedef struct kmip_auth {
    pthread_mutex_t mu;          /* guards cache[] */
    kmip_pw_cache_entry_t cache[KMIP_PW_CACHE_SLOTS];
    unsigned char cache_key[32];
    char dummy_hash[160];        /* verified for unknown users: same cost, same time */
    uint64_t instance;           /* unique per server: thread caches outlive servers */
} kmip_auth_t;

/* Set up / tear down s->auth (kmip_server_new / _free). */
int kmip_auth_init(kmip_server_t *s);
void kmip_auth_dispose(kmip_server_t *s);

/* What every item of a request whose identity was not established
 * answers (execute.c), and a queued operation whose client is gone
 * (op_async.c): Authentication Not Successful with one text whatever was
 * wrong, or General Failure when the clients table cannot be read. */
#define KMIP_DENIED_MSG "authentication not successful"
#define KMIP_ID_UNAVAIL_MSG "identity store unavailable"

/* An identity established earlier (a queued asynchronous operation's),
 * checked again against the clients table as a new request would be: 0
 * with id->role lowered to the client's current role if that is less
 * (never raised: an identity of several credentials holds the least of
 * their roles); KMS_ERR_PERM when the client named id->name no longer
 * exists in id->tenant; KMS_ERR_UNAVAIL when the table cannot be read.
 * With KMIP_ACCESS_OPEN there is no table: 0, unchanged. Any thread. */
int kmip_identity_recheck(kmip_server_t *s, kmip_identity_t *id);

struct kmip_reader_node;
struct kmip_server {
    kmip_config_t cfg;
    pthread_key_t reader_key;  /* per-thread reader node, created on first use */
    pthread_mutex_t readers_lock;
    struct kmip_reader_node *readers; /* every live reader, freed by kmip_server_free */
    char vendor[64];
    char version[64];
    kmip_auth_t auth;
    struct kmip_streams *streams; /* cryptographic streams (op_crypto_stream.c) */
    struct crypto_pkey_cache *pkeys; /* parsed keys of the cryptographic services */
    struct kmip_async *async;    /* asynchronous operations (op_async.c) */
};

/* The calling thread's store reader (created on first use; NULL on error). */
store_reader_t *kmip_thread_reader(kmip_server_t *s);

/* --------------------------------------------------------------- request */
/* One Batch Item: what decoding decided (fixed for the request's life) and
 * what the last execution answered (reset by each kmip_request_execute). */
typedef struct kmip_item {
    uint32_t operation;          /* the Operation, 0 when absent or malformed */
    bool echo_operation;         /* the answer names the Operation */
    const ttlv_item_t *batch_id; /* Unique Batch Item ID to echo, or NULL */
    const ttlv_item_t *payload;  /* Request Payload (an empty structure if absent) */
    const struct kmip_op_entry *op; /* the handler; NULL when refused before running */
    bool async;                  /* Asynchronous Indicator and an operation that may use it */
    uint32_t refuse_reason;      /* decode or gate answered it already: Result Reason */
    const char *refuse_msg;      /* and Result Message */

    uint32_t status;             /* KMIP_RESULT_STATUS_* of the last execution */
    uint32_t reason;
    const char *msg;
    ttlv_item_t *resp_payload;   /* NULL = none */
    bool wrote;                  /* it committed (or deferred) a store write */
    const uint8_t *async_corr;   /* Operation Pending: its Asynchronous Correlation Value */
    size_t async_corr_len;
    uint32_t answer_op;          /* the Operation the answer names, 0 = `operation` (Poll
                                    answers in the name of the polled operation) */
} kmip_item_t;

struct kmip_request {
    kmip_server_t *srv;
    kms_arena_t *arena;          /* everything below lives in it (the struct too) */
    kmip_peer_t peer;            /* the caller's strings (they outlive the request) */
    int64_t now;                 /* seconds since the epoch, fixed per execution */

    /* Header. `invalid` set: the whole message is answered Invalid Message
     * with that text and nothing else happens. */
    const char *invalid;
    bool not_ttlv;               /* the bytes were not TTLV (kmip_request_decode: PROTO) */
    int ver_major, ver_minor;
    bool have_version;
    int64_t max_resp;            /* the client's Maximum Response Size; 0 = none */
    kmip_credential_t creds[KMIP_MAX_CREDENTIALS]; /* the Authentication's Credentials
                                    that kmip_identify_all verifies, in order */
    size_t n_creds;
    uint32_t bec;                /* Batch Error Continuation Option */

    kmip_item_t *items;
    size_t n_items;
    size_t n_out;                /* items answered by the last execution */

    /* Identity (kmip_request_authenticate). */
    bool authenticated;          /* the step ran */
    bool denied;                 /* its verdict: refused */
    int auth_rc;                 /* why: KMS_ERR_PERM (did not authenticate) or
                                    KMS_ERR_UNAVAIL (clients table unreadable) */
    kmip_identity_t ident;

    /* The last execution. */
    uint32_t fail_reason;        /* Result Reason of the failure that decided the batch */
    char first_object_id[64];
    store_write_t *deferred;     /* KMIP_RUN_LOOP: the write left to commit */
    size_t deferred_item;        /* the item that made it */
    int64_t last_seq;            /* highest change-log seq its commits appended */
    bool deferred_optional;      /* bookkeeping only (Fresh, served marker): its
                                    failure does not fail the item */

    atomic_bool cancelled;       /* kmip_request_cancel() */
};

/* Answer item `it` Operation Failed with reason and message (no payload). */
void kmip_item_fail(kmip_item_t *it, uint32_t reason, const char *msg);
/* The time KMIP semantics use now (config clock or the wall clock), s. */
int64_t kmip_now(const kmip_server_t *s);

/* --------------------------------------------------------------- context */
#define KMIP_MAX_OWNED_SECRETS 16

typedef struct kmip_ctx {
    kmip_server_t *srv;
    kms_arena_t *arena;
    const kmip_identity_t *ident;
    const char *tenant_filter;   /* ident->tenant for clients, NULL for admins */
    int ver_major, ver_minor;    /* the request's Protocol Version */
    store_reader_t *reader;
    int64_t now;                 /* seconds since the epoch, fixed per request */
    size_t max_response;         /* bytes the whole Response Message may take: the
                                    client's Maximum Response Size or the server's cap,
                                    whichever is smaller */

    uint32_t operation;          /* this batch item's Operation */
    const ttlv_item_t *payload;  /* Request Payload (an empty structure if absent) */
    ttlv_item_t *resp_payload;   /* Response Payload being built */

    char id_placeholder[64];     /* ID Placeholder, "" when unset; kept across items */
    bool placeholder_set;        /* an earlier item set it, maybe to nothing (a Locate
                                    that found nothing leaves it empty) */

    /* Failure recorded by kmip_fail() for this item (err.reason: the
     * KMIP Result Reason; code 0 = nothing recorded). */
    kms_error_t err;

    /* Undo log of the batch (Batch Error Continuation Option Undo). */
    struct kmip_undo *undo;
    bool undo_enabled;

    char first_object_id[64];    /* for kmip_summary_t: the first object loaded */
    char first_created_id[64];   /* ...or, before it, the first object created */

    /* KMIP_RUN_LOOP: the request runs on an event loop, where nothing may
     * wait for a commit. The one write it may make is not committed but
     * kept in `deferred` for the caller (see kmip.h); a second write or a
     * read after it sets need_worker, and kmip_request_execute() then drops
     * the whole answer (KMS_ERR_AGAIN): it runs again on a worker. */
    bool inline_only;
    bool need_worker;
    store_write_t *deferred;
    /* Commits made by this execution (KMIP_RUN_WORKER): how many, and the
     * highest change-log seq they appended (for sync acks). */
    size_t n_commits;
    int64_t last_seq;
    bool deferred_optional;      /* see kmip_request_t */

    /* The request's cancellation flag and the end of its work budget
     * (kms_mono_ns; 0 = none): long loops call kmip_ctx_budget(). */
    const atomic_bool *cancelled;
    uint64_t deadline_ns;

    /* A handler that answers Operation Pending (Poll of an unfinished
     * operation) sets the correlation value here. */
    const uint8_t *async_corr;
    size_t async_corr_len;
    uint32_t answer_op;          /* Poll: the polled operation names the answer */

    /* Locate with Object Group Member "Default" picked the ID Placeholder:
     * a Get of it advances the group's round-robin pointer. */
    bool default_member_pending;

    /* Secrets freed when the item ends: owned_inline, grown on the heap
     * past KMIP_MAX_OWNED_SECRETS (never recycled while in use). */
    kms_secret_t *owned_inline[KMIP_MAX_OWNED_SECRETS];
    kms_secret_t **owned;
    size_t n_owned, cap_owned;
} kmip_ctx_t;

/* Record reason + message (printf) in ctx->err for the current item;
 * returns KMS_ERR_INVAL so handlers can `return kmip_fail(...)`. */
int kmip_fail(kmip_ctx_t *ctx, uint32_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Result Reason for a negative return when kmip_fail() was not called
 * (NOTFOUND -> Item Not Found, PERM -> Permission Denied, NOTSUP ->
 * Operation Not Supported, CRYPTO -> Cryptographic Failure, LIMIT ->
 * Response Too Large, else General Failure). */
uint32_t kmip_reason_of(int rc);
/* Forget a failure recorded for the current item (bookkeeping that may
 * fail without failing the item). */
void kmip_fail_clear(kmip_ctx_t *ctx);
/* 0 while the request may go on; else records the reason (cancelled, or
 * limits.request_time spent while doing `what`) in ctx->err and returns
 * KMS_ERR_TIMEOUT. Cheap: call it in loops over rows or objects. */
int kmip_ctx_budget(kmip_ctx_t *ctx, const char *what);

/* The secret is freed (wiped) when the request ends. Returns s. */
kms_secret_t *kmip_ctx_own_secret(kmip_ctx_t *ctx, kms_secret_t *s);

/* Unique Identifier of the request payload, or the ID Placeholder when the
 * payload has none. NULL (and kmip_fail Invalid Field, as KMIP 1.1 test
 * case 15.2 answers) when neither exists, also when an earlier item left
 * the placeholder empty (a Locate that found nothing). */
const char *kmip_req_uid(kmip_ctx_t *ctx);
/* Set the ID Placeholder (a Locate's find); NULL empties it (a Locate
 * that found nothing). */
void kmip_set_placeholder(kmip_ctx_t *ctx, const char *id);
/* An operation made object `id` (Create, Register, Derive Key, Re-key,
 * Certify, a key pair's private key, split parts, Join): it becomes the
 * ID Placeholder, and the request's object in its log line and audit
 * record (kmip_summary_t.object_id) unless an earlier item created one.
 * The objects it was made from (a base key, the key re-keyed, a public
 * key certified) are inputs, as a wrapping key is. */
void kmip_set_created(kmip_ctx_t *ctx, const char *id);
/* Answer with Unique Identifier `id` of an object the operation made
 * (appended to the Response Payload; kmip_set_created). 0 or
 * KMS_ERR_NOMEM. */
int kmip_answer_id(kmip_ctx_t *ctx, const char *id);
/* Protocol version helpers. */
static inline bool kmip_ver_at_least(const kmip_ctx_t *c, int maj, int min)
{
    return c->ver_major > maj || (c->ver_major == maj && c->ver_minor >= min);
}

/* --------------------------------------------------------------- handlers */
typedef int (*kmip_op_cb)(kmip_ctx_t *ctx);

enum kmip_op_flags {
    KMIP_OP_READ = 1u << 0,       /* reads only, bounded: an event loop may run it */
    KMIP_OP_ONE_WRITE = 1u << 1,  /* one store write of bounded cost: a loop may run
                                     it with the write deferred (KMIP_RUN_LOOP) */
    KMIP_OP_NEEDS_KEYS = 1u << 2, /* needs key material: refused while the master
                                     key is unreachable (kmip_request_gate) */
    KMIP_OP_NEEDS_CA = 1u << 3,   /* offered only with an issuing CA (certify_ca) */
    KMIP_OP_ASYNC = 1u << 4,      /* may run asynchronously (op_async.c): may take long,
                                     and its answer holds no key material */
};

typedef struct kmip_op_entry {
    uint32_t operation;          /* KMIP_OPERATION_* */
    kmip_op_cb fn;               /* NULL = Operation Not Supported */
    unsigned flags;              /* enum kmip_op_flags */
} kmip_op_entry_t;

/* Run one item with its handler (it->op) in ctx: its answer (status,
 * reason, message, payload) lands in `it`. execute.c; op_async.c runs
 * queued operations with it. kmip_ctx_release frees the secrets the
 * handler gave the context. */
void kmip_item_run(kmip_ctx_t *ctx, kmip_item_t *it);
void kmip_ctx_release(kmip_ctx_t *ctx);

/* Asynchronous operations (op_async.c): the queue and its threads
 * (kmip_async_free waits for a running operation, then stops), and
 * kmip_async_start, which records item `it`, queues it and answers it
 * Operation Pending (true), or returns false when it must run now (limits,
 * a full queue); on an event loop it sets ctx->need_worker. */
int kmip_async_new(kmip_server_t *s);
void kmip_async_free(kmip_server_t *s);
bool kmip_async_start(kmip_ctx_t *ctx, kmip_item_t *it);
int kmip_op_poll(kmip_ctx_t *ctx);
int kmip_op_cancel(kmip_ctx_t *ctx);

/* The dispatch table (kmip/dispatch.c); entry NULL when unknown. */
const kmip_op_entry_t *kmip_op_lookup(uint32_t operation);
/* Operations this server offers (a handler, and what it needs is
 * configured), in table order (for Query Operations). */
size_t kmip_op_supported(const kmip_server_t *s, uint32_t *ops_out, size_t max);

/* Handlers (op_*.c). */
int kmip_op_create(kmip_ctx_t *ctx);
int kmip_op_locate(kmip_ctx_t *ctx);
int kmip_op_check(kmip_ctx_t *ctx);
int kmip_op_get(kmip_ctx_t *ctx);
int kmip_op_get_attributes(kmip_ctx_t *ctx);
int kmip_op_get_attribute_list(kmip_ctx_t *ctx);
int kmip_op_add_attribute(kmip_ctx_t *ctx);
int kmip_op_modify_attribute(kmip_ctx_t *ctx);
int kmip_op_delete_attribute(kmip_ctx_t *ctx);
int kmip_op_obtain_lease(kmip_ctx_t *ctx);
int kmip_op_get_usage_allocation(kmip_ctx_t *ctx);
int kmip_op_activate(kmip_ctx_t *ctx);
int kmip_op_revoke(kmip_ctx_t *ctx);
int kmip_op_destroy(kmip_ctx_t *ctx);
int kmip_op_archive(kmip_ctx_t *ctx);
int kmip_op_recover(kmip_ctx_t *ctx);
int kmip_op_query(kmip_ctx_t *ctx);
int kmip_op_discover_versions(kmip_ctx_t *ctx);
int kmip_op_register(kmip_ctx_t *ctx);
int kmip_op_create_key_pair(kmip_ctx_t *ctx);
int kmip_op_rekey(kmip_ctx_t *ctx);
int kmip_op_rekey_key_pair(kmip_ctx_t *ctx);
int kmip_op_certify(kmip_ctx_t *ctx);
int kmip_op_create_split_key(kmip_ctx_t *ctx);
int kmip_op_join_split_key(kmip_ctx_t *ctx);
int kmip_op_recertify(kmip_ctx_t *ctx);
int kmip_op_validate(kmip_ctx_t *ctx);

/* --------------------------------------------------------- object model */
typedef struct kmip_attr {
    const char *name;            /* "Cryptographic Algorithm", "x-Foo" */
    uint32_t index;              /* Attribute Index */
    ttlv_item_t *value;          /* the Attribute Value item (tag ATTRIBUTE_VALUE,
                                    or the structure's own tag for structures) */
    struct kmip_attr *next;
} kmip_attr_t;

typedef struct kmip_obj {
    char id[64];
    uint32_t object_type;
    uint32_t state;              /* mirror of the State attribute */
    char tenant[64];             /* owner */
    int64_t version;             /* stored version; 0 = not stored yet */
    int64_t created_us;
    bool archived;

    /* Sealed material as stored (dsk_id 0 = none), and the owner tenant
     * it was sealed for. */
    kms_sealed_t sealed;
    char sealed_owner[64];
    /* Plaintext material when opened or newly set (owned by the context). */
    kms_secret_t *material;
    bool has_material;           /* false after Destroy wiped it */
    bool material_new;           /* set since the last save: seal it at the next */

    kmip_attr_t *attrs;          /* every instance, in insertion order */
    bool dirty;
    const store_object_t *loaded; /* the stored row this was loaded from (NULL if new) */
} kmip_obj_t;

/* The server's default Object Group (KMIP 1.1 section 3.33): Locate of a
 * fresh or default member of it makes a fresh AES-256 key when it has
 * none (kmip_create_group_key, op_create.c). */
#define KMIP_DEFAULT_GROUP "default"
int kmip_create_group_key(kmip_ctx_t *ctx, const char *group, kmip_obj_t **out);

/* Lease Time given to every new object except Templates (seconds). */
#define KMIP_DEFAULT_LEASE_SECONDS 3600

/*
 * A new object of `object_type` for the requesting identity's tenant:
 * fresh UUID v4, State Pre-Active, and the server attributes Unique
 * Identifier, Object Type, State and Lease Time (not for Templates),
 * Initial Date, Last Change Date, Fresh (keys and secret data) and the
 * private liveness marker. Nothing stored yet.
 */
int kmip_obj_new(kmip_ctx_t *ctx, uint32_t object_type, kmip_obj_t **out);

/*
 * Load object `id` visible to the requester (another tenant's object is
 * KMS_ERR_NOTFOUND, with kmip_fail Item Not Found already recorded).
 * Date-driven transitions (Activation Date reached -> Active, Deactivation
 * Date reached -> Deactivated) are applied, and stored (best effort) when
 * one happened.
 */
int kmip_obj_load(kmip_ctx_t *ctx, const char *id, kmip_obj_t **out);

/* Material: attach freshly generated / registered plaintext (ownership of
 * `stored` passes to the context); sets Digest (crypto_digest_value: SHA-256 of the
 * bytes), and from `desc` Cryptographic Algorithm / Length when non-zero
 * plus the private bookkeeping (registered format, curve, sub type). */
struct crypto_material;
int kmip_obj_set_material(kmip_ctx_t *ctx, kmip_obj_t *o, kms_secret_t *stored,
                          const struct crypto_material *desc);
/* Open the sealed material (cached in o->material). KMS_ERR_NOTFOUND with
 * Key Value Not Present recorded when the object has none (destroyed). */
int kmip_obj_open_material(kmip_ctx_t *ctx, kmip_obj_t *o, const kms_secret_t **out);
/* Description of the stored material (for crypto_object_build). */
int kmip_obj_material_desc(const kmip_obj_t *o, struct crypto_material *desc_out);
/* Wipe the material (Destroy): blob dropped, metadata kept. */
void kmip_obj_drop_material(kmip_obj_t *o);

/*
 * Write the object (Last Change Date updated) with expect_version =
 * o->version, and commit. Material is sealed only when it is new since the
 * last save (or its owner changed); otherwise the stored sealed fields go
 * back as they are, so an attribute-only write costs no seal. On success
 * o->version is the new version. KMS_ERR_CONFLICT when someone else wrote
 * it first (re-load and retry, or use kmip_obj_update()).
 */
int kmip_obj_save(kmip_ctx_t *ctx, kmip_obj_t *o);

/* Load `id`, run cb on it, save; retried on KMS_ERR_CONFLICT (up to 32
 * times, with a short jittered back-off). cb returns 0 or an error
 * (kmip_fail); it sets *unchanged_out (false on entry) when it changed
 * nothing, and the save is skipped. *out (may be NULL) gets the final
 * object. */
typedef int (*kmip_mutate_cb)(kmip_ctx_t *ctx, kmip_obj_t *o, void *arg, bool *unchanged_out);
int kmip_obj_update(kmip_ctx_t *ctx, const char *id, kmip_mutate_cb cb, void *arg,
                    kmip_obj_t **out);

/* Undo log (Batch Error Continuation Option Undo): every successful save
 * of the batch is recorded while ctx->undo_enabled; kmip_undo_run() puts
 * back the earlier rows (their sealed material as it was: no seal) and
 * deletes objects the batch created, newest first. */
int kmip_undo_run(kmip_ctx_t *ctx);

/* Apply date-driven transitions now (called by load). True if changed. */
bool kmip_obj_eval_dates(kmip_ctx_t *ctx, kmip_obj_t *o);
/* Set State (attribute and mirror). */
int kmip_obj_set_state(kmip_ctx_t *ctx, kmip_obj_t *o, uint32_t state);

/* ------------------------------------------- key wrapping, Get, re-key */
/*
 * Load the managed key `key_id` for use as a key-encryption key and return
 * its plaintext (owned by the caller). It must be visible to the
 * requester, a Symmetric Key with Cryptographic Algorithm AES, in State
 * Active, with the usage bit `usage` (Wrap Key for Get, Unwrap Key for
 * Register) in its Cryptographic Usage Mask; otherwise the failure is
 * recorded with kmip_fail(). *mode_out (may be NULL) gets the Block Cipher
 * Mode of its Cryptographic Parameters, or 0. keywrap_keys.c.
 */
int kmip_kek_load(kmip_ctx_t *ctx, const char *key_id, uint32_t usage, kms_secret_t **kek_out,
                  uint32_t *mode_out);

/*
 * Everything Get needs to answer with object `o`: opens its material,
 * applies Key Format Type (`want_fmt`, 0 = as registered), Key
 * Compression Type (`want_compression`, 0 = none; anything else is Key
 * Compression Type Not Supported) and the Key Wrapping Specification
 * (`kws`, NULL = not wrapped), and appends the object structure
 * (Symmetric Key, Private Key, ...) to `parent` (crypto_object_build).
 * keywrap_keys.c.
 */
int kmip_get_object(kmip_ctx_t *ctx, kmip_obj_t *o, uint32_t want_fmt, uint32_t want_compression,
                    const ttlv_item_t *kws, ttlv_item_t *parent);

/*
 * Re-key helpers (op_rekey.c), used by Re-key and Re-key Key Pair:
 * kmip_rekey_derive() makes the (unsaved, material-less) replacement of
 * `old` per KMIP 1.1 section 4.4: same type, template `tmpl` applied
 * (may be NULL; it cannot change algorithm or length), client attributes
 * copied, dates copied or shifted by `offset` (an Interval item or NULL),
 * Replaced Object Link to the old object. kmip_rekey_retire() then moves
 * the old object's Names away and gives it the Replacement Object Link.
 */
/* The attributes the server derives from certificate `der` (mlen bytes):
 * Certificate Type and Length, X.509 Certificate Identifier / Subject /
 * Issuer, their KMIP 1.0 text forms, Digital Signature Algorithm.
 * op_register.c; Certify and Re-certify use it too. */
int kmip_cert_set_attrs(kmip_ctx_t *ctx, kmip_obj_t *o, const kms_secret_t *der, size_t mlen);

int kmip_rekey_derive(kmip_ctx_t *ctx, kmip_obj_t *old, const ttlv_item_t *tmpl,
                      const ttlv_item_t *offset, kmip_obj_t **new_out);
int kmip_rekey_retire(kmip_ctx_t *ctx, const char *old_id, const char *new_id);
/* A Link attribute value (Link Type, Linked Object Identifier) in the
 * arena; NULL without memory. op_rekey.c. */
ttlv_item_t *kmip_link_value(kmip_ctx_t *ctx, uint32_t type, const char *id);

/* --------------------------------------------------------------- policy */
/* Operation Policy Name (policy.c): "default" (KMIP's Default Operation
 * Policy: the creator's) and "public" (the owner tenant's, as objects
 * without a name are).
 * kmip_policy_check: may the requester run ctx->operation on `o`? 0, or
 * KMS_ERR_PERM with Permission Denied recorded. kmip_obj_load calls it.
 * kmip_policy_check_name: Invalid Field recorded for a name kmsd does not
 * know. kmip_policy_creator: the requester as a creator ("tenant/name").
 * kmip_policy_refresh: after the object's Operation Policy Name changed,
 * keep the private marker Locate uses to hide it from other identities. */
int kmip_policy_check(kmip_ctx_t *ctx, const kmip_obj_t *o);
int kmip_policy_check_name(kmip_ctx_t *ctx, const char *name);
int kmip_policy_creator(const kmip_ctx_t *ctx, char *out, size_t len);
int kmip_policy_refresh(kmip_ctx_t *ctx, kmip_obj_t *o);
/* The operator's key-size policy for a key of `alg` with `bits` (and EC
 * `curve`, 0 if none) made or registered now: 0, or Invalid Field recorded
 * with a message naming the policy. */
int kmip_key_policy_check(kmip_ctx_t *ctx, uint32_t alg, int32_t bits, uint32_t curve);

/* ------------------------------------------------------------ attributes */
/* Instance `index` of `name`, or NULL. */
kmip_attr_t *kmip_attr_get(const kmip_obj_t *o, const char *name, uint32_t index);
size_t kmip_attr_count(const kmip_obj_t *o, const char *name);
/* Replace instance `index` of name (or add it when absent). `value` is
 * taken as is (arena item; its tag is forced to Attribute Value). */
int kmip_attr_set(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t index,
                  ttlv_item_t *value);
/* Add a new instance with index = highest + 1 (0 if none); *index_out may be NULL. */
int kmip_attr_add(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, ttlv_item_t *value,
                  uint32_t *index_out);
/* Remove instance `index` of `name`; KMS_ERR_NOTFOUND if absent. */
int kmip_attr_remove(kmip_obj_t *o, const char *name, uint32_t index);
/* Remove every instance of `name`. */
void kmip_attr_remove_all(kmip_obj_t *o, const char *name);

/* Typed shortcuts on instance 0. The getters return KMS_ERR_NOTFOUND when
 * absent and KMS_ERR_PROTO when the stored type differs. */
int kmip_attr_set_enum(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t v);
int kmip_attr_set_int(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, int32_t v);
int kmip_attr_set_date(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, int64_t secs);
int kmip_attr_set_text(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, const char *s);
int kmip_attr_set_bool(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, bool v);
int kmip_attr_set_interval(kmip_ctx_t *ctx, kmip_obj_t *o, const char *name, uint32_t v);
int kmip_attr_get_enum(const kmip_obj_t *o, const char *name, uint32_t *out);
int kmip_attr_get_int(const kmip_obj_t *o, const char *name, int32_t *out);
int kmip_attr_get_date(const kmip_obj_t *o, const char *name, int64_t *out);
const char *kmip_attr_get_text(const kmip_obj_t *o, const char *name); /* NULL if absent */

/* Always Sensitive and Never Extractable (KMIP 1.4), kept by the server
 * from Sensitive and Extractable: at creation (`creation`) they copy the
 * initial values; after a later Add/Modify they stay true only while the
 * property has held since creation. Nothing is set for an object that has
 * neither Sensitive nor Extractable. */
int kmip_attr_export_history(kmip_ctx_t *ctx, kmip_obj_t *o, bool creation);

/* Whether attribute `name` belongs in an "every attribute" answer (Get
 * Attributes without names, Get Attribute List) to this request: not
 * private bookkeeping, and introduced by a KMIP version no later than the
 * request's (a 1.1 client is not shown 1.2 attributes). Custom x-/y-
 * attributes always are. */
bool kmip_attr_shown(const kmip_ctx_t *ctx, const char *name);

/* Append an Attribute structure (Name, Index when > 0, Value) to parent. */
ttlv_item_t *kmip_attr_to_ttlv(kmip_ctx_t *ctx, ttlv_item_t *parent, const kmip_attr_t *a);

/* Rules of a standard attribute (NULL for unknown names; custom x-/y-
 * names get a generic multi-valued, client-modifiable rule). */
enum kmip_attr_flags {
    KMIP_ATTR_MULTI = 1u << 0,         /* multiple instances allowed */
    KMIP_ATTR_CLIENT_INIT = 1u << 1,   /* client may set it on Create/Register */
    KMIP_ATTR_CLIENT_MOD = 1u << 2,    /* Modify Attribute allowed (client) */
    KMIP_ATTR_CLIENT_DEL = 1u << 3,    /* Delete Attribute allowed */
    KMIP_ATTR_CLIENT_ADD = 1u << 4,    /* Add Attribute allowed */
    KMIP_ATTR_HIDDEN = 1u << 5,        /* private bookkeeping, never shown */
    KMIP_ATTR_MOD_PREACTIVE = 1u << 6, /* modifiable only in Pre-Active state */
};
typedef struct kmip_attr_rule {
    const char *name;
    uint32_t tag;              /* tag of the value item (0 for custom) */
    enum ttlv_type type;       /* TTLV_ANY for custom */
    unsigned flags;
    int since_minor;           /* KMIP 1.x version that introduced it (1.2 -> 2) */
} kmip_attr_rule_t;
const kmip_attr_rule_t *kmip_attr_rule(const char *name);
/* True for "x-..." / "y-..." names. */
bool kmip_attr_is_custom(const char *name);

/*
 * Apply a Template-Attribute (or Common/Private/Public Key Template-
 * Attribute) structure to a new object: Name references to Template
 * objects are resolved (their attributes first, then the explicit ones),
 * every attribute is validated against its rule (type, may the client set
 * it, single-valued) and the object-type applicability. Failures are
 * recorded with kmip_fail (Invalid Field, Permission Denied for server-
 * only attributes, Item Not Found for an unknown template). `tmpl` may be
 * NULL.
 */
int kmip_attrs_apply_template(kmip_ctx_t *ctx, kmip_obj_t *o, const ttlv_item_t *tmpl);

/* Check a client-supplied value for attribute `name` (rule `r`): the type,
 * and the shape of Name, Link and Usage Limits structures, usage mask
 * bits, positive lengths. Invalid Field recorded when wrong. */
int kmip_attr_check_value(kmip_ctx_t *ctx, const char *name, const kmip_attr_rule_t *r,
                          const ttlv_item_t *v);

/* Parse one Attribute structure into name/index/value (value cloned into
 * the arena). Invalid Field recorded when malformed. */
int kmip_attr_parse(kmip_ctx_t *ctx, const ttlv_item_t *attr, const char **name_out,
                    uint32_t *index_out, bool *has_index_out, ttlv_item_t **value_out);

/* Search keys for the store (Locate) of one attribute value. */
void kmip_attr_search_keys(kms_arena_t *a, const char *name, const ttlv_item_t *value,
                           const char **skey_out, int64_t *nkey_out, bool *has_nkey_out);

/* ------------------------------------------------ cryptographic services */
/* Handlers (op_crypto.c, op_crypto_rng.c, op_crypto_derive.c). */
int kmip_op_encrypt(kmip_ctx_t *ctx);
int kmip_op_decrypt(kmip_ctx_t *ctx);
int kmip_op_sign(kmip_ctx_t *ctx);
int kmip_op_signature_verify(kmip_ctx_t *ctx);
int kmip_op_mac(kmip_ctx_t *ctx);
int kmip_op_mac_verify(kmip_ctx_t *ctx);
int kmip_op_hash(kmip_ctx_t *ctx);
int kmip_op_rng_retrieve(kmip_ctx_t *ctx);
int kmip_op_rng_seed(kmip_ctx_t *ctx);
int kmip_op_derive_key(kmip_ctx_t *ctx);

/*
 * Load the key `id` for a cryptographic operation and check that this use
 * is allowed (KMIP 1.4 sections 3.19, 3.22, 3.25, 3.26): an object of one
 * of the types in `types` (a bit per KMIP_OBJECT_TYPE_*: 1u << type), not
 * archived (Object Archived) or destroyed (Item Not Found), with `usage` in
 * its Cryptographic Usage Mask, in State Active -- or, when `protect` is
 * false (decrypting, verifying), Deactivated or Compromised too -- and not
 * past its Protect Stop Date (protect) / before its Process Start Date
 * (process). Refusals are Permission Denied (Illegal Operation for a wrong
 * object type). *o_out is the loaded object (material opened).
 * op_crypto.c.
 */
struct crypto_key;
int kmip_crypto_key_load(kmip_ctx_t *ctx, const char *id, uint32_t types, uint32_t usage,
                         bool protect, kmip_obj_t **o_out, struct crypto_key *key_out);
/* The Byte String field `tag` of `parent` (*p_out NULL and *len_out 0 when
 * absent; Invalid Field recorded when it is another type). op_crypto.c. */
int kmip_req_bytes(kmip_ctx_t *ctx, const ttlv_item_t *parent, uint32_t tag, const uint8_t **p_out,
                   size_t *len_out);
/* Free what kmip_crypto_key_load allocated in *key (the EVP_PKEY). */
void kmip_crypto_key_dispose(struct crypto_key *key);
/* Count a use of `o` against its Usage Limits (Unit Object: 1 when
 * `new_use`, i.e. not a later part of a stream; Unit Byte: `bytes`):
 * Permission Denied when the count would go below 0; a store write when
 * the object has Usage Limits, none otherwise. */
int kmip_crypto_use(kmip_ctx_t *ctx, kmip_obj_t *o, int64_t bytes, bool new_use);

/*
 * Streams of KMIP 1.3 multi-part operations (op_crypto_stream.c): the
 * operation object between requests, keyed by a random Correlation Value
 * and owned by the identity (name and tenant) that started it. Bounded in
 * number (per identity and in total) and idle time; expired streams are
 * freed (key schedules wiped) whenever the table is touched, and all of
 * them by kmip_server_free.
 */
struct crypto_op;
#define KMIP_CORRELATION_LEN 16
/* Make / free the stream table and the parsed-key cache (s->pkeys: 256
 * keys, 60 s idle) of the cryptographic services. */
int kmip_streams_new(kmip_server_t *s);
void kmip_streams_free(kmip_server_t *s);
/* Register `op` (ownership passes in, also on failure) for this identity
 * under a new Correlation Value (*corr_out). Permission Denied past the
 * limits. */
int kmip_stream_put(kmip_ctx_t *ctx, uint32_t operation, const char *key_id, struct crypto_op *op,
                    uint8_t corr_out[KMIP_CORRELATION_LEN]);
/* The key id of the caller's stream `corr` for `operation` (copied into
 * key_id_out[64], "" for Hash) without taking it: Item Not Found when there
 * is none, it is another identity's or it expired. */
int kmip_stream_peek(kmip_ctx_t *ctx, const uint8_t *corr, size_t corr_len, uint32_t operation,
                     char key_id_out[64]);
/* Take the stream out of the table (the caller now owns the op); it is the
 * caller's to put back with kmip_stream_return or to free. */
int kmip_stream_take(kmip_ctx_t *ctx, const uint8_t *corr, size_t corr_len, uint32_t operation,
                     struct crypto_op **op_out);
/* Put a taken stream back under its Correlation Value (ownership passes in). */
int kmip_stream_return(kmip_ctx_t *ctx, const uint8_t corr[KMIP_CORRELATION_LEN],
                       uint32_t operation, const char *key_id, struct crypto_op *op);
/* Open streams (for tests and Query). */
size_t kmip_streams_count(kmip_server_t *s);

#endif /* KMS_KMIP_INT_H */
