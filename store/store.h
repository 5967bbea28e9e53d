/*
 * store/store.h: durable persistence of managed objects on SQLite.
 *
 * WAL mode, synchronous=FULL. One writer thread owns the write connection
 * and commits every write pending at that moment in one transaction and one
 * fsync (group commit); store_commit() returns only once the caller's write
 * is durable. Readers use their own connections (one store_reader_t per
 * thread) so reads never wait for a commit. Every object change appends to a
 * change log in the same transaction (for replication).
 *
 * The store never sees plaintext key material: `sealed` is already sealed by
 * hsm/. It knows nothing of KMIP beyond opaque attribute values (TTLV bytes)
 * and the search keys that kmip/ derives from them.
 */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"

typedef struct store store_t;
typedef struct store_reader store_reader_t;
typedef struct store_write store_write_t;

/* ------------------------------------------------------------- objects */
typedef struct store_attr {
    const char *name;        /* "Cryptographic Algorithm", "x-Vendor-Key-Id" */
    uint32_t index;          /* Attribute Index (0 for the first instance) */
    const uint8_t *value;    /* TTLV encoding of the Attribute Value item */
    size_t value_len;
    /* Search keys, derived by kmip/ for Locate; either may be absent. */
    const char *skey;        /* text key (names, ids, groups) or NULL; always indexed */
    int64_t nkey;            /* numeric key (enums, ints, dates) */
    bool has_nkey;
    /* The nkey also goes into the (name, ikey) index, so a Locate may be
     * driven by it. Every index entry costs each group commit a page per
     * attribute name, so kmip/ sets this only for selective keys (dates,
     * custom attributes), never for enums such as Cryptographic Algorithm
     * that every key shares. A key without it is still checked per
     * candidate. */
    bool index_nkey;
} store_attr_t;

typedef struct store_object {
    char id[64];             /* UUID text, unique across nodes */
    uint32_t object_type;    /* KMIP Object Type */
    uint32_t state;          /* KMIP State */
    char tenant[64];         /* owner tenant */
    int64_t version;         /* set by the store: 1 on create, +1 on each put */
    int64_t created_us;      /* set by the store on create */
    int64_t updated_us;      /* set by the store on every put */
    bool archived;           /* Storage Status: archived vs on-line */
    /* Key material sealed by hsm/ (kms_sealed_t): data-store key id, seal
     * generation and blob, stored and returned exactly as given. The store
     * never changes them itself: a put that keeps them keeps the blob's
     * bytes. (dsk_id 0 = no material.) */
    kms_sealed_t sealed;
    store_attr_t *attrs;     /* every attribute instance of the object */
    size_t n_attrs;
} store_object_t;

/* ---------------------------------------------------------------- open */
typedef struct store_options {
    const char *path;        /* SQLite file; created with its directory's umask */
    const char *node_id;     /* this node's id for the change log (NULL = from the DB, created once) */
    size_t max_batch;        /* group commit: most writes in one transaction (default 512) */
    bool read_only;          /* open for inspection (kmsctl); no writer thread */
    size_t cache_bytes;      /* object cache for store_get (0 = 64 MiB) */
    bool no_cache;           /* disable that cache */
    /* WAL checkpoint every this many appended frames (0 = 2000); the WAL
     * is rewound past 8 times that. Tests use small values. */
    int ckpt_frames;
} store_options_t;

/* Open (creating and migrating the schema as needed) and start the writer
 * thread. Any thread. KMS_ERR_IO: cannot open, or the file is corrupt / not
 * a database; KMS_ERR_CONFIG: a SQLite file that is not kmsd's, a schema
 * newer than this code, or (read_only) one that needs migrating first. */
int store_open(const store_options_t *opt, store_t **out);
/* Finish pending writes, stop the writer, checkpoint the WAL, close. NULL ok.
 * Call after every other user is done (readers freed, no commit running). */
void store_close(store_t *s);
/* Schema version of the opened database. */
int store_schema_version(store_t *s);
const char *store_node_id(store_t *s);

/* --------------------------------------------------------------- reads */
/* One reader per thread; not thread-safe itself. A reader is a read-only
 * connection: it sees every commit acknowledged before its call starts. */
int store_reader_new(store_t *s, store_reader_t **out);
void store_reader_free(store_reader_t *r);

/* Load an object with all attributes; everything allocated from `arena`.
 * `tenant` NULL = any tenant; otherwise an object of another tenant is
 * KMS_ERR_NOTFOUND exactly as a missing one. */
int store_get(store_reader_t *r, kms_arena_t *arena, const char *id, const char *tenant,
              store_object_t **out);

enum store_cond_kind {
    STORE_COND_SKEY_EQ,      /* an instance of `name` has skey == s */
    STORE_COND_NKEY_EQ,      /* an instance of `name` has nkey == lo */
    STORE_COND_NKEY_RANGE,   /* an instance of `name` has lo <= nkey <= hi */
    STORE_COND_NKEY_MASK,    /* an instance of `name` has (nkey & lo) == lo */
    STORE_COND_HAS,          /* the object has an attribute `name` */
    STORE_COND_TYPE_EQ,      /* the object's object_type == lo (`name` unused) */
    STORE_COND_STATE_RANGE,  /* lo <= the object's state <= hi (`name` unused) */
};
typedef struct store_cond {
    enum store_cond_kind kind;
    const char *name;
    const char *s;
    int64_t lo, hi;
    /* NKEY kinds: rows of `name` are stored with index_nkey, so the
     * condition may drive the query when it is rare. Without it the
     * condition is only checked per candidate. */
    bool indexed;
} store_cond_t;

typedef struct store_query {
    const char *tenant;          /* NULL = all tenants (admin only) */
    const store_cond_t *conds;   /* ANDed */
    size_t n_conds;
    bool want_online;            /* Storage Status Mask bits; both false = on-line only */
    bool want_archived;
    size_t max_items;            /* 0 = no limit */
    size_t offset;
} store_query_t;

/* Ids matching the query, newest first (created_us desc, then id). The
 * array and strings come from `arena` (*ids_out is NULL when *n_out is 0).
 * At most STORE_LOCATE_MAX ids. KMS_ERR_LIMIT above 64 conditions. */
int store_locate(store_reader_t *r, const store_query_t *q, kms_arena_t *arena, char ***ids_out,
                 size_t *n_out);

/* The query plan SQLite chooses for `q` (EXPLAIN QUERY PLAN, one line per
 * step, "\n"-separated) into `arena`; for tests and diagnostics. */
int store_locate_explain(store_reader_t *r, const store_query_t *q, kms_arena_t *arena,
                         char **plan_out);

/* Small key/value metadata (wrapped data-store keys, settings).
 * KMS_ERR_NOTFOUND when absent; the value is NUL-terminated in the arena. */
int store_meta_get(store_reader_t *r, kms_arena_t *arena, const char *key, uint8_t **val_out,
                   size_t *len_out);

/* -------------------------------------------------------------- writes */
/* A write is a set of mutations applied atomically in one transaction. */
typedef void (*store_commit_cb)(store_write_t *w, int result, void *arg);
store_write_t *store_write_new(void);
void store_write_free(store_write_t *w);  /* NULL ok */

#define STORE_VERSION_NEW 0   /* expect_version: the object must not exist */
#define STORE_VERSION_ANY (-1) /* expect_version: no check */
/* Replace the object row and all its attribute rows with `obj` (deep copy
 * taken). The put fails with KMS_ERR_CONFLICT when the stored version
 * differs from expect_version (optimistic concurrency: re-read and retry).
 * On success the new version is expect_version + 1 (1 for a new object).
 * KMS_ERR_INVAL at once for an empty/unterminated id or tenant, or two
 * attributes with the same (name, index). */
int store_write_put(store_write_t *w, const store_object_t *obj, int64_t expect_version);
/* Remove an object and its attributes entirely (not KMIP Destroy, which
 * keeps metadata; used by restore and tests). expect_version must be a
 * version or STORE_VERSION_ANY; committing fails with KMS_ERR_NOTFOUND (ANY)
 * or KMS_ERR_CONFLICT (a version) when the object is absent. The change log
 * gets a `deleted` row with version + 1. */
int store_write_delete(store_write_t *w, const char *id, int64_t expect_version);
int store_write_meta(store_write_t *w, const char *key, const void *val, size_t len);

/* Submit and wait until the write is durable (or failed). Called from any
 * thread except the writer; blocks the caller, so never from an event-loop
 * thread. Returns 0, or an error with nothing of the write applied:
 * KMS_ERR_CONFLICT (version check), KMS_ERR_NOTFOUND / KMS_ERR_EXISTS /
 * KMS_ERR_STATE (see the tenant/client and delete calls), KMS_ERR_IO (disk;
 * logged), KMS_ERR_PERM (store opened read_only), KMS_ERR_UNAVAIL (closing).
 * On success the new version of each put object is in *versions_out[i] if
 * versions_out is given (in put order). The write is not consumed: free it
 * (or reuse it) afterwards. An empty write returns 0 at once. */
int store_commit(store_t *s, store_write_t *w, int64_t *versions_out, size_t n_versions);

/* The same without waiting, for event loops: queue the write and return 0;
 * the writer thread calls cb(w, result, arg) once it is durable (result 0)
 * or failed (the codes of store_commit), after the commit and before any
 * later batch. cb runs on the writer thread and must only hand the result
 * over (no store calls, no blocking); w belongs to the caller again from
 * the moment cb is called. An error return (KMS_ERR_UNAVAIL closing,
 * KMS_ERR_PERM read-only, KMS_ERR_INVAL) means cb will not be called. An
 * empty write is refused (KMS_ERR_INVAL): there is nothing to wait for. */
int store_commit_async(store_t *s, store_write_t *w, store_commit_cb cb, void *arg);

/* ---------------------------------------------------------- change log */
typedef struct store_change {
    int64_t seq;         /* monotonic per node */
    char obj_id[64];
    int64_t version;
    int64_t hlc;         /* hybrid logical clock: (physical ms << 16) | logical */
    char node_id[64];    /* originating node */
    bool deleted;
} store_change_t;
typedef int (*store_change_cb)(const store_change_t *c, void *arg);
/* Changes with seq > after, in order, at most `limit`; stops early if cb != 0. */
int store_changes_since(store_reader_t *r, int64_t after, size_t limit, store_change_cb cb, void *arg);
int64_t store_last_seq(store_reader_t *r);

/* ------------------------------------------------------------- scanning */
/* Object ids in id order after `after_id` ("" for the start), at most
 * `limit`, with the dsk_id of each (for store-key rotation and backup). */
typedef int (*store_scan_cb)(const char *id, uint32_t dsk_id, void *arg);
int store_scan(store_reader_t *r, const char *after_id, size_t limit, store_scan_cb cb, void *arg);
int64_t store_count_objects(store_reader_t *r);

/* ------------------------------------------------------ tenants, clients */
typedef struct store_client {
    char name[128];          /* unique: CN for certificates, user name for passwords */
    char tenant[64];
    char role[16];           /* "client" | "admin" */
    char kind[16];           /* "cert" | "password" */
    char cert_sha256[65];    /* lower-case hex fingerprint (kind cert), else "" */
    char password_hash[160]; /* Argon2id encoded hash (kind password), else "" */
    int64_t created_us;
} store_client_t;

/* Add (remove=false) or remove a tenant. On commit: add of an existing one
 * is KMS_ERR_EXISTS; removing a missing one KMS_ERR_NOTFOUND; removing one
 * that still owns objects or clients KMS_ERR_STATE. */
int store_write_tenant(store_write_t *w, const char *tenant, bool remove);
/* Add or update (by name; created_us kept) or remove a client. Checked when
 * added: role "client"|"admin", kind "cert" (cert_sha256 = 64 lower-case
 * hex, or "" for a client identified by subject CN alone) | "password"
 * (non-empty hash) -> KMS_ERR_INVAL. On commit: unknown
 * tenant KMS_ERR_NOTFOUND; a fingerprint bound to another client
 * KMS_ERR_EXISTS; removing a missing client KMS_ERR_NOTFOUND. */
int store_write_client(store_write_t *w, const store_client_t *c, bool remove);
int store_tenant_exists(store_reader_t *r, const char *tenant);     /* 0 or KMS_ERR_NOTFOUND */
int store_list_tenants(store_reader_t *r, kms_arena_t *a, char ***out, size_t *n_out);
int store_client_by_name(store_reader_t *r, const char *name, store_client_t *out);
int store_client_by_cert(store_reader_t *r, const char *sha256_hex, store_client_t *out);
int store_list_clients(store_reader_t *r, kms_arena_t *a, store_client_t **out, size_t *n_out);

/* --------------------------------------------------------------- backup */
/* Online, consistent copy of the whole database to `dest_path` (SQLite
 * backup API), callable while the server serves (writes continue). Written
 * to "<dest_path>.partial", integrity-checked, fsynced, then renamed over
 * dest_path. `progress` (pages done, total) may be NULL; blocks the caller. */
typedef void (*store_progress_cb)(int done, int total, void *arg);
int store_backup(store_t *s, const char *dest_path, store_progress_cb progress, void *arg);

/* ---------------------------------------------------------- statistics */
/* Counters since store_open (any thread; a consistent snapshot). `commits`
 * counts writes that were applied and made durable; `transactions` counts
 * SQLite COMMITs, so commits / transactions is the mean group-commit size. */
typedef struct store_stats {
    uint64_t commits;        /* writes applied and durable */
    uint64_t conflicts;      /* writes refused with KMS_ERR_CONFLICT */
    uint64_t failures;       /* writes failed otherwise (I/O, constraint, ...) */
    uint64_t transactions;   /* group transactions committed */
    uint64_t max_batch;      /* most writes seen in one transaction */
    uint64_t retried;        /* batches re-run write by write because one failed */
    uint64_t cache_hits;     /* store_get answered from the object cache */
    uint64_t cache_misses;   /* store_get that read the database */
    uint64_t cache_bytes;    /* memory held by the cache now */
} store_stats_t;
void store_stats(store_t *s, store_stats_t *out);

/* A number that changes after every commit that may have changed the
 * clients or tenants tables, before that commit's writers are woken. A
 * cache of identities read while the number was G is valid while it is
 * still G (read it before the database). Only this process writes. */
uint64_t store_clients_generation(store_t *s);

/* Hybrid logical clock step: the next value after `last` given the wall
 * clock `wall_ms`. (wall_ms << 16) when the wall clock moved past `last`,
 * else last + 1, so values are strictly increasing even when the wall
 * clock goes back. Pure; exposed for replication and tests. */
int64_t store_hlc_next(int64_t last, int64_t wall_ms);

/* Upper bound on the ids one store_locate returns (max_items 0 or larger
 * is clipped to it). */
#define STORE_LOCATE_MAX 100000

#endif /* KMS_STORE_H */
