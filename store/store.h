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

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"

typedef struct store store_t;
typedef struct store_reader store_reader_t;
typedef struct store_write store_write_t;

/* ------------------------------------------------- change identity */
/* What the change log, tombstones and LWW rows name: objects, tenants,
 * clients, data-store keys and cluster nodes. The values are stored. */
enum store_kind {
    STORE_KIND_OBJECT = 0,   /* key: object id */
    STORE_KIND_TENANT = 1,   /* key: tenant name */
    STORE_KIND_CLIENT = 2,   /* key: client name */
    STORE_KIND_DSK = 3,      /* key: data-store key id in decimal, or "current" */
    STORE_KIND_NODE = 4,     /* key: node id */
};
/* Bytes of a change key with its NUL (client names are the longest). */
#define STORE_KEY_MAX 128
/* The key of the "current data-store key" register in the change log. */
#define STORE_DSK_CURRENT_KEY "current"

/* Who made a change and when: the node that made it (`origin`), that
 * node's change-log sequence number for it, and its hybrid logical clock.
 * A change made here has origin = this node and origin_seq = its local
 * seq; an applied remote change keeps the values it arrived with. */
typedef struct store_change_id {
    int64_t hlc;
    char origin[64];
    int64_t origin_seq;
} store_change_id_t;

/* Per-name clock of an object: the (hlc, node) of the last write of the
 * attribute `name` (all of its instances). Pseudo-names: "" is the default
 * clock of every name without an entry (the creation clock of an object
 * whose puts listed what they touched), "#material" the sealed material
 * (blob, dsk_id), "#archived" the storage status. A name with a clock and
 * no instances is an attribute tombstone. */
typedef struct store_clock {
    const char *name;
    int64_t hlc;
    const char *node;
} store_clock_t;
#define STORE_CLOCK_DEFAULT ""
#define STORE_CLOCK_MATERIAL "#material"
#define STORE_CLOCK_ARCHIVED "#archived"

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
    /* Local puts (store_write_put): the attribute names (and pseudo-names,
     * see store_clock_t) whose instances this put changed. The writer sets
     * their clocks to the put's HLC and leaves the others alone. NULL =
     * every name (creates, restores, a whole-object rewrite); a create
     * ignores the list and writes only the default clock. */
    const char *const *touched;
    size_t n_touched;
    /* Replication view: filled by store_get_repl and the snapshot,
     * stored exactly by store_write_put_repl; store_get leaves them zero.
     * `clocks` is sorted by name, names unique. */
    store_change_id_t change;  /* identity of the object's last change */
    store_clock_t *clocks;
    size_t n_clocks;
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
    STORE_COND_SKEY_ANY,     /* an instance of `name` has a text key (any skey): drives
                              * through the (name, skey) index like SKEY_EQ, so finding
                              * the few objects with a text marker reads only those */
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
    /* Stop early (KMS_ERR_TIMEOUT) once *cancel is set or kms_mono_ns()
     * passes deadline_ns; NULL / 0 = never. Checked every few thousand
     * SQLite steps, so a scan of millions of rows ends within
     * milliseconds of either. */
    const atomic_bool *cancel;
    uint64_t deadline_ns;
} store_query_t;

/* Ids matching the query, newest first (created_us desc, then id). The
 * array and strings come from `arena` (*ids_out is NULL when *n_out is 0).
 * At most STORE_LOCATE_MAX ids. KMS_ERR_LIMIT above 64 conditions;
 * KMS_ERR_TIMEOUT when stopped by q->cancel or q->deadline_ns. */
int store_locate(store_reader_t *r, const store_query_t *q, kms_arena_t *arena, char ***ids_out,
                 size_t *n_out);

/* The query plan SQLite chooses for `q` (EXPLAIN QUERY PLAN, one line per
 * step, "\n"-separated) into `arena`; for tests and diagnostics. */
int store_locate_explain(store_reader_t *r, const store_query_t *q, kms_arena_t *arena,
                         char **plan_out);

/* SQLite virtual-machine steps the reader's last store_locate took, its
 * estimates included (sqlite3_stmt_status): the work it did, counted
 * independently of the machine's speed; for tests and diagnostics. */
int64_t store_locate_steps(const store_reader_t *r);

/* Small key/value metadata (wrapped data-store keys, settings).
 * KMS_ERR_NOTFOUND when absent; the value is NUL-terminated in the arena. */
int store_meta_get(store_reader_t *r, kms_arena_t *arena, const char *key, uint8_t **val_out,
                   size_t *len_out);

/* ------------------------------------------------ asynchronous operations */
/*
 * Records of KMIP asynchronous operations (table async_ops): node-local,
 * never in the change log nor replicated. The caller bounds their number
 * and lifetime and never puts key material in `result`.
 */
#define STORE_ASYNC_CORR_MAX 64
enum store_async_state {
    STORE_ASYNC_PENDING = 1,   /* queued or running (epoch: the server instance running it) */
    STORE_ASYNC_DONE = 2,      /* result: the answer */
    STORE_ASYNC_CANCELED = 3,  /* canceled before it ran */
};
typedef struct store_async {
    const uint8_t *corr;     /* Asynchronous Correlation Value */
    size_t corr_len;
    const char *identity;    /* who started it: name and tenant */
    const char *tenant;
    uint32_t operation;      /* KMIP Operation */
    int state;               /* enum store_async_state */
    uint64_t epoch;          /* the server instance that owns a pending operation */
    int64_t created_us;
    int64_t expires_us;      /* removed by the sweep after this */
    const uint8_t *result;   /* DONE: the encoded answer (opaque here), else NULL */
    size_t result_len;
} store_async_t;

/* Insert or replace the record of a->corr (deep copy taken). */
int store_write_async(store_write_t *w, const store_async_t *a);
/* Delete the record `corr`, or (corr NULL) every record that expired
 * before `before_us`. */
int store_write_async_delete(store_write_t *w, const uint8_t *corr, size_t len, int64_t before_us);
/* The record `corr` (strings and result in `arena`); KMS_ERR_NOTFOUND. */
int store_async_get(store_reader_t *r, kms_arena_t *arena, const uint8_t *corr, size_t len,
                    store_async_t *out);
/* The number of unexpired records of one identity. */
int store_async_count(store_reader_t *r, const char *identity, const char *tenant,
                      int64_t now_us, size_t *n_out);

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
/* One row per committed change, appended in the change's transaction.
 * `seq` is local and increasing, never reused (also after a trim); it is
 * the position a replication link resumes from. */
typedef struct store_change {
    int64_t seq;
    enum store_kind kind;
    char key[STORE_KEY_MAX];
    store_change_id_t id;    /* origin, origin_seq, hlc */
    int64_t version;         /* objects: the local version it produced; else 0 */
    bool deleted;            /* a removal (the entity has a tombstone) */
} store_change_t;
typedef int (*store_change_cb)(const store_change_t *c, void *arg);
/* Changes with seq > after, in order, at most `limit` (0 = no limit);
 * stops early, returning 0, when cb returns non-zero. */
int store_changes_since(store_reader_t *r, int64_t after, size_t limit, store_change_cb cb, void *arg);
/* The highest seq ever appended (0 for none), also when trimmed away;
 * negative KMS_ERR_* on failure. */
int64_t store_last_seq(store_reader_t *r);

/* ---- the newest rows in memory (store/logtail.c) */
/* Keep the rows the writer appends from now on in memory, up to
 * `max_bytes` (oldest dropped first), each object put with a copy of the
 * object exactly as committed. For replication, which would otherwise
 * read every new object back from SQLite once per peer. Once per store;
 * KMS_ERR_STATE when already enabled, KMS_ERR_PERM read-only. Any thread. */
int store_log_tail_enable(store_t *s, size_t max_bytes);
/* A row with the state it committed: `obj` is the object as stored by
 * that change (attributes in (name, index) order, blob, clocks, change
 * identity, version, times: as store_get_repl reads it, at that moment)
 * for an object put; NULL for any other row (removals, tenants, clients,
 * data-store keys, nodes: read those from the store). */
typedef struct store_logged {
    store_change_t row;
    const store_object_t *obj;
} store_logged_t;
typedef struct store_tail_ref store_tail_ref_t;
/* The rows with seq > after (at most `limit`, into v[limit]) from memory.
 * 0 with *n_out rows (0: nothing committed after `after` yet); the objects
 * stay valid until store_log_tail_release(*ref_out) (NULL when no row).
 * KMS_ERR_NOTFOUND when memory does not hold every row after `after` (not
 * enabled, or dropped for the budget): read store_changes_since instead.
 * Rows appear once their batch committed, before store_commit returns and
 * before the notify callback runs. Any thread; never touches SQLite. */
int store_log_tail(store_t *s, int64_t after, size_t limit, store_logged_t *v, size_t *n_out,
                   store_tail_ref_t **ref_out);
void store_log_tail_release(store_tail_ref_t *ref); /* NULL ok */
/* The tail's floor (every row after it is held; -1 when off or before the
 * writer's first batch since enabling) and bytes held. For tests, status. */
void store_log_tail_stats(store_t *s, int64_t *floor_out, size_t *bytes_out);

/* ------------------------------------------------------------- scanning */
/* Object ids in id order after `after_id` ("" for the start), at most
 * `limit`, with the dsk_id of each (for store-key rotation and backup). */
typedef int (*store_scan_cb)(const char *id, uint32_t dsk_id, void *arg);
int store_scan(store_reader_t *r, const char *after_id, size_t limit, store_scan_cb cb, void *arg);
int64_t store_count_objects(store_reader_t *r);
/* Objects owned by `tenant` (online and archived), from the tenant index:
 * no ids are read. >= 0, or a negative KMS_ERR_*. */
int64_t store_count_tenant_objects(store_reader_t *r, const char *tenant);
/* Objects per (object type, state): one grouped query over an index that
 * holds both columns (no table rows read), cb once per pair. Costs a pass
 * over that index: for periodic figures (metrics), not per request.
 * 0 or a KMS_ERR_*. */
typedef void (*store_count_cb)(uint32_t object_type, uint32_t state, int64_t n, void *arg);
int store_count_by_type_state(store_reader_t *r, store_count_cb cb, void *arg);

/* ------------------------------------------------------ tenants, clients */
/* The identifiers of a KMIP Device credential (KMIP 1.1 section 2.1.2,
 * Table 5) a device client is registered with: 1..STORE_DEVICE_FIELD_MAX
 * bytes of printable text each (no control characters), "" = not
 * registered. The serial number is required and unique among device
 * clients. */
#define STORE_DEVICE_FIELD_MAX 64
typedef struct store_device {
    char serial[STORE_DEVICE_FIELD_MAX + 1];     /* Device Serial Number */
    char device_id[STORE_DEVICE_FIELD_MAX + 1];  /* Device Identifier */
    char network_id[STORE_DEVICE_FIELD_MAX + 1]; /* Network Identifier */
    char machine_id[STORE_DEVICE_FIELD_MAX + 1]; /* Machine Identifier */
    char media_id[STORE_DEVICE_FIELD_MAX + 1];   /* Media Identifier */
} store_device_t;

/* Bytes of the reason a client was disabled for (store_client_t). */
#define STORE_CLIENT_REASON_MAX 200

/* A client identity: what identifies it depends on the kind. */
typedef struct store_client {
    char name[128];          /* unique: CN for certificates, user name for passwords */
    char tenant[64];
    char role[16];           /* "client" | "admin" */
    char kind[16];           /* "cert" | "password" | "device" */
    char cert_sha256[65];    /* kind cert: lower-case hex fingerprint, or "" (by CN); else "" */
    store_device_t device;   /* kind device: its identifiers (store_client_set_device);
                                else all "" */
    char password_hash[160]; /* Argon2id encoded hash (kinds password, device), else "" */
    int64_t created_us;
    /* Disabled (schema v12): kmip/ refuses its credentials as it refuses
     * an unknown one; its registration, role and objects are kept. When
     * and why are kept while it is disabled (0 and "" when enabled; the
     * store writes them so). The reason is printable text or "". */
    bool disabled;
    int64_t disabled_us;
    char disabled_reason[STORE_CLIENT_REASON_MAX + 1];
    store_change_id_t change; /* set by the store on reads; ignored by store_write_client */
} store_client_t;

/* Add (remove=false) or remove a tenant. On commit: add of an existing one
 * is KMS_ERR_EXISTS; removing a missing one KMS_ERR_NOTFOUND; removing one
 * that still owns objects or clients KMS_ERR_STATE. */
int store_write_tenant(store_write_t *w, const char *tenant, bool remove);
/* Add or update (by name; created_us kept) or remove a client. An update
 * writes the whole record (disabling is an update with disabled set).
 * Checked when added: role "client"|"admin", kind "cert" (cert_sha256 = 64 lower-case
 * hex, or "" for a client identified by subject CN alone) | "password"
 * (non-empty hash) | "device" (non-empty hash, identifiers as
 * store_client_set_device makes them, cert_sha256 "") -> KMS_ERR_INVAL.
 * Only a device client's identifiers are stored (else they are ""). On commit: unknown
 * tenant KMS_ERR_NOTFOUND; a fingerprint or device serial number bound to
 * another client KMS_ERR_EXISTS; removing a missing client KMS_ERR_NOTFOUND. */
int store_write_client(store_write_t *w, const store_client_t *c, bool remove);
int store_tenant_exists(store_reader_t *r, const char *tenant);     /* 0 or KMS_ERR_NOTFOUND */
int store_list_tenants(store_reader_t *r, kms_arena_t *a, char ***out, size_t *n_out);
int store_client_by_name(store_reader_t *r, const char *name, store_client_t *out);
int store_client_by_cert(store_reader_t *r, const char *sha256_hex, store_client_t *out);
/* The device client registered with this Device Serial Number: 0,
 * KMS_ERR_NOTFOUND, KMS_ERR_INVAL (NULL), or a read error. */
int store_client_by_device(store_reader_t *r, const char *serial, store_client_t *out);
/* Make *c a device client's record of *d (kind "device", c->device = *d,
 * cert_sha256 ""). KMS_ERR_INVAL when the serial number is missing or a
 * field is too long or holds a control character; *c is then unchanged. */
int store_client_set_device(store_client_t *c, const store_device_t *d);
/* The identifiers of a device client: 0, or KMS_ERR_INVAL when *c is not
 * a well-formed device record (*out then zeroed). */
int store_client_device(const store_client_t *c, store_device_t *out);
/* The identifiers of a device client in the packed form of store schema
 * v9 and of the kmsd versions that used it, in their client records,
 * backups and replicated client entities: the five fields in the order of
 * store_device_t, separated by 0x1f, the serial number first (at most
 * STORE_DEVICE_PACKED_MAX bytes). For reading what such a version wrote;
 * nothing writes the form any more. 0, or KMS_ERR_INVAL when `packed` is
 * not that form or a field is not as store_client_set_device requires
 * (*out then zeroed). */
#define STORE_DEVICE_PACKED_MAX (5 * STORE_DEVICE_FIELD_MAX + 4)
int store_device_unpack(const char *packed, store_device_t *out);
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

/* ---------------------------------------------------------- replication */
/*
 * What replication/ needs, without SQL: the change log above, entity
 * state with its change identity and clocks, tombstones, per-peer
 * progress, one-transaction snapshots, and writes that store a merged
 * remote state exactly. The store does not merge objects (replication's
 * merge rule does, and puts the result with expect_version); it does
 * enforce last-writer-wins by (hlc, origin) where a row is one register:
 * tenants, clients, nodes, the current data-store key, and a tombstone
 * against the entity it removes. An applied remote change is logged
 * again here with its own origin, origin_seq and hlc, so it is relayed to
 * peers that did not get it directly (unless the write is no-log, below).
 */

/* Order of two clocks: by hlc, then node id (byte order). <0, 0, >0. */
int store_clock_cmp(int64_t hlc_a, const char *node_a, int64_t hlc_b, const char *node_b);

/* The store's encoding of a clock list (the `clocks` column), exposed so
 * replication may ship it as opaque bytes. Canonical: entries sorted by
 * name, each node id once in a table of first use, minimal varints, so
 * decode then encode gives the same bytes. encode: KMS_ERR_INVAL for a
 * repeated name, a NULL name or node, a node id of 64 bytes or more or a
 * negative hlc; KMS_ERR_LIMIT above STORE_CLOCKS_MAX entries or names of
 * STORE_CLOCK_NAME_MAX bytes. decode: everything from `arena`, entries in
 * name order; KMS_ERR_PROTO for anything but such bytes. Pure. */
#define STORE_CLOCKS_MAX 4096
#define STORE_CLOCK_NAME_MAX 1024
int store_clocks_encode(const store_clock_t *c, size_t n, kms_buf_t *out);
int store_clocks_decode(const uint8_t *p, size_t len, kms_arena_t *arena, store_clock_t **out,
                        size_t *n_out);

/* Move this node's clock past `hlc` (a remote change's): the next local
 * change gets a larger value. Thread-safe, cheap; takes effect at the
 * next change the writer makes. Applying a remote change observes its
 * hlc by itself. */
void store_hlc_observe(store_t *s, int64_t hlc);

/* Called by the writer thread after each commit that appended change-log
 * rows, with the highest seq now durable, before the batch's writers are
 * answered (a store_commit that returned was notified). It must only hand
 * over (uv_async_send, an eventfd write): no store calls, no blocking. One
 * callback per store; changing it while the writer runs is safe (NULL
 * removes it), but a call already started may still run once with the old
 * one: keep its arg alive until store_close. */
typedef void (*store_notify_cb)(int64_t last_seq, void *arg);
void store_set_notify(store_t *s, store_notify_cb cb, void *arg);

/* The highest change-log seq a committed write appended (0 if it appended
 * none or did not commit); valid once store_commit returned 0 or the
 * async callback ran with 0. For sync acks: wait until peers have it. */
int64_t store_write_last_seq(const store_write_t *w);

/* ---- entity state for replication */
typedef struct store_tombstone {
    enum store_kind kind;
    char key[STORE_KEY_MAX];
    store_change_id_t id;    /* the removal's identity */
    int64_t seq;             /* local log position that recorded it (trim) */
} store_tombstone_t;

typedef struct store_tenant {
    char name[64];
    int64_t created_us;
    store_change_id_t change;
} store_tenant_t;

typedef struct store_node {
    char node_id[64];
    char peer_addr[256];     /* host:port of its peer listener */
    char kmip_addr[256];     /* host:port of its KMIP listener */
    char cert_sha256[65];    /* lower-case hex fingerprint of its node certificate, or "" */
    int64_t added_hlc;
    bool removed;            /* sticky: once set, never cleared */
    store_change_id_t change;
} store_node_t;

typedef struct store_dsk {
    uint32_t id;             /* the wrapped bytes are meta "dsk.<id>" (node-local) */
    store_change_id_t change; /* hlc 0 and origin "" when it was never replicated */
} store_dsk_t;

typedef struct store_repl_state {
    char node_id[64];        /* the peer */
    int64_t origin_hwm;      /* highest origin_seq of its own changes applied here */
    int64_t link_pos;        /* highest of its seqs received and processed on its link */
    int64_t updated_us;
} store_repl_state_t;

/* An object with clocks and change identity, any tenant, never from the
 * object cache. In one read transaction, also the tombstone of `id` if
 * there is one: *obj_out NULL when the object is absent; tomb_out (may be
 * NULL) gets the tombstone, or hlc 0 and an empty key when there is none
 * (a tombstone older than the object's last change is void). 0 when
 * either exists, KMS_ERR_NOTFOUND when neither does. Stored clocks that
 * do not decode: KMS_ERR_IO (logged). */
int store_get_repl(store_reader_t *r, kms_arena_t *arena, const char *id, store_object_t **obj_out,
                   store_tombstone_t *tomb_out);
int store_tombstone_get(store_reader_t *r, enum store_kind kind, const char *key,
                        store_tombstone_t *out);   /* 0 or KMS_ERR_NOTFOUND */
typedef int (*store_tombstone_cb)(const store_tombstone_t *t, void *arg);
/* Every tombstone in (kind, key) order; stops early when cb != 0. */
int store_each_tombstone(store_reader_t *r, store_tombstone_cb cb, void *arg);
int store_tenant_get(store_reader_t *r, const char *name, store_tenant_t *out);
int store_list_tenants_repl(store_reader_t *r, kms_arena_t *a, store_tenant_t **out,
                            size_t *n_out);
/* (Clients: store_client_by_name / store_list_clients fill .change.) */
int store_node_get(store_reader_t *r, const char *node_id, store_node_t *out);
int store_list_nodes(store_reader_t *r, kms_arena_t *a, store_node_t **out, size_t *n_out);
int store_repl_state(store_reader_t *r, const char *node_id, store_repl_state_t *out);
int store_list_repl_state(store_reader_t *r, kms_arena_t *a, store_repl_state_t **out,
                          size_t *n_out);
/* Data-store keys held here (meta "dsk.<id>"), in id order, with the
 * identity of their replicated creation; the current one as an LWW
 * register (KMS_ERR_NOTFOUND before the first). */
int store_list_dsks(store_reader_t *r, kms_arena_t *a, store_dsk_t **out, size_t *n_out);
int store_dsk_get(store_reader_t *r, uint32_t id, store_dsk_t *out);
int store_dsk_current(store_reader_t *r, uint32_t *id_out, store_change_id_t *change_out);

/* ---- snapshot: one read transaction over everything */
/* Open a read transaction on `r`: until store_snapshot_end every read on
 * this reader (objects, the list calls, tombstones, repl state, dsks,
 * the change log, store_get without its cache) sees the database as of
 * this moment, whatever the writer commits meanwhile. *seq_out = the
 * highest change-log seq visible in it. Holds the WAL from being
 * rewound: keep it as short as the copy. KMS_ERR_STATE if already open. */
int store_snapshot_begin(store_reader_t *r, int64_t *seq_out);
int64_t store_snapshot_seq(const store_reader_t *r); /* KMS_ERR_STATE when none is open */
/* Objects with id > after_id ("" for the first), in id order, at most
 * `limit` (0 = all), each complete (attributes, blob, clocks, change
 * identity). The object is valid during the call only. Stops early when
 * cb != 0. Works outside a snapshot too (then each call is its own). */
typedef int (*store_object_cb)(const store_object_t *o, void *arg);
int store_snapshot_objects(store_reader_t *r, const char *after_id, size_t limit,
                           store_object_cb cb, void *arg);
int store_snapshot_end(store_reader_t *r);

/* ---- writes of applied remote state (and local node/dsk changes) */
/* Store exactly this object state (attributes, blob, archived, state,
 * created_us, obj->clocks: none = every name at `id`'s clock) as the
 * result of change `id`, with the version check of store_write_put, and
 * log it with id's origin, origin_seq and hlc. The put is dropped (nothing
 * written or logged; its version in store_commit's versions_out is 0)
 * when the object's tombstone is newer than `id`; an older tombstone is
 * removed. obj->touched and obj->change are ignored. */
int store_write_put_repl(store_write_t *w, const store_object_t *obj, int64_t expect_version,
                         const store_change_id_t *id);
/* Removal of an object, tenant or client by change `id`: the entity is
 * removed if its last change is older than `id` (else kept), and the
 * tombstone recorded if it is newer than the one there (LWW), and logged
 * (deleted) when either happened. Objects: expect_version as
 * store_write_delete, or STORE_VERSION_NEW = must be absent; an object
 * deleted with an explicit version is removed whatever its last change
 * (the caller's merge decided: a tombstone removes every incarnation
 * created at or before it); with STORE_VERSION_ANY the rule above. Tenants:
 * removing one that still owns objects or clients fails with
 * KMS_ERR_STATE (the write fails; replication decides). KMS_ERR_INVAL for
 * other kinds (nodes are removed with store_node_t.removed). */
int store_write_delete_repl(store_write_t *w, enum store_kind kind, const char *key,
                            int64_t expect_version, const store_change_id_t *id);
/* Tenant / client rows by change `id`, LWW: applied when newer than the
 * row and its tombstone, else skipped silently; created_us as given.
 * Client checks as store_write_client; unknown tenant: KMS_ERR_NOTFOUND
 * at commit. */
int store_write_tenant_repl(store_write_t *w, const store_tenant_t *t, const store_change_id_t *id);
int store_write_client_repl(store_write_t *w, const store_client_t *c, const store_change_id_t *id);
/* A cluster node row: local (this node's change) or applied (LWW as
 * above). `removed` is sticky whatever the clocks say. */
int store_write_node(store_write_t *w, const store_node_t *n);
int store_write_node_repl(store_write_t *w, const store_node_t *n, const store_change_id_t *id);
/* A new data-store key: its wrapped form (wrapped by this node's master
 * key) goes to meta "dsk.<id>", and a dsk change row names the id (the
 * key bytes are never in the log). Local: KMS_ERR_EXISTS at commit when
 * the id exists. Applied: an existing id is left alone (ids are never
 * reused; replication compares the keys' bytes first). */
int store_write_dsk(store_write_t *w, uint32_t dsk_id, const void *wrapped, size_t len);
int store_write_dsk_repl(store_write_t *w, uint32_t dsk_id, const void *wrapped, size_t len,
                         const store_change_id_t *id);
/* The current data-store key (meta "dsk.current", decimal), an LWW
 * register: local, or applied when newer than the register's clock. */
int store_write_dsk_current(store_write_t *w, uint32_t dsk_id);
int store_write_dsk_current_repl(store_write_t *w, uint32_t dsk_id, const store_change_id_t *id);
/* Progress of the link from `node`: origin_hwm only grows (two links
 * applying one origin's changes may finish out of order); link_pos is set
 * as given (a re-seeded peer may restart lower). STORE_KEEP leaves a
 * field as it is (0 for a new row). Not logged: it is this node's own.
 * Put it in the write of the batch it describes: both commit or neither. */
#define STORE_KEEP (-1)
int store_write_repl_state(store_write_t *w, const char *node, int64_t origin_hwm, int64_t link_pos);
/* Forget a peer's progress (a removed node). */
int store_write_repl_state_drop(store_write_t *w, const char *node);
/* Remove change-log rows and tombstones recorded at seq <= up_to_seq
 * (every peer has them). seq keeps counting from where it was. */
int store_write_trim(store_write_t *w, int64_t up_to_seq);
/* The write's applied changes (the _repl calls) append no change-log
 * rows: for a snapshot applied to a joining node, whose entities are the
 * sender's state as of its snapshot seq; relaying them would resend the
 * whole database to every peer. Tombstones it records get the current
 * last seq. Local changes in the same write are logged regardless. */
void store_write_no_log(store_write_t *w);

/* Upper bound on the ids one store_locate returns (max_items 0 or larger
 * is clipped to it). */
#define STORE_LOCATE_MAX 100000

/*
 * Fault injection, for tests: the next `count` writes (STORE_FAULT_WRITE)
 * or syncs (STORE_FAULT_SYNC) the writer makes to the database and its
 * WAL fail as if the kernel had answered `err` (ENOSPC or EIO); count 0
 * stops it. Process-wide, any thread. kmsd itself never calls it.
 */
enum store_fault { STORE_FAULT_WRITE = 0, STORE_FAULT_SYNC = 1 };
void store_fault_inject(enum store_fault what, int err, unsigned count);

#endif /* KMS_STORE_H */
