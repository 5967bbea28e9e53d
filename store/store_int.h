/*
 * store/store_int.h: internals shared by the files of store/ only.
 *
 * The store handle, the write (a list of mutations plus its completion
 * state), the reader with its per-connection statement cache, and the small
 * SQLite helpers every file uses. Nothing here is part of the contract with
 * other modules; only store/ includes this header.
 */
#ifndef KMS_STORE_INT_H
#define KMS_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

#define STORE_LOG "store"
#define STORE_DEFAULT_BATCH 512
#define STORE_MAX_BATCH 65536
#define STORE_BUSY_MS 10000
#define STORE_ATTR_ROWS 16
#define STORE_CACHE_DEFAULT ((size_t)64 << 20)
#define STORE_META_HLC_FLOOR "hlc.floor"

typedef struct store_cache store_cache_t;
typedef struct store_logtail store_logtail_t;
typedef struct store_tail_seg store_tail_seg_t;

/* ------------------------------------------------------------- writes */
enum store_op_kind {
    STORE_OP_PUT,
    STORE_OP_DELETE,
    STORE_OP_META,
    STORE_OP_TENANT,
    STORE_OP_CLIENT,
    STORE_OP_NODE,
    STORE_OP_DSK,
    STORE_OP_DSK_CURRENT,
    STORE_OP_REPL_STATE,
    STORE_OP_REPL_STATE_DROP,
    STORE_OP_TRIM,
    STORE_OP_ASYNC,         /* node-local: an asynchronous operation's record (async.c) */
    STORE_OP_ASYNC_DELETE,  /* node-local: drop one (val = corr) or the expired (hwm) */
};

typedef struct store_op {
    enum store_op_kind kind;
    bool remove;            /* TENANT / CLIENT */
    /* An applied remote change: `id` is its identity (else the writer
     * makes one: the next HLC tick, this node, the log row's seq). */
    bool repl;
    store_change_id_t id;
    int64_t expect;         /* PUT / DELETE */
    int64_t new_version;    /* PUT: filled by the writer (0: dropped) */
    store_object_t obj;     /* PUT (deep copy in the write's arena) */
    const char *key;        /* DELETE id, META key, TENANT name, REPL_STATE node */
    const uint8_t *val;     /* META value, DSK wrapped bytes */
    size_t val_len;
    int64_t created_us;     /* TENANT (applied) */
    store_client_t client;  /* CLIENT */
    const store_node_t *node; /* NODE (in the write's arena) */
    uint32_t dsk_id;        /* DSK, DSK_CURRENT */
    int64_t hwm, pos;       /* REPL_STATE; TRIM: pos = up to seq; ASYNC_DELETE: hwm */
    store_async_t *async;   /* ASYNC (in the write's arena) */
} store_op_t;

struct store_write {
    kms_arena_t *arena;     /* deep copies of everything the ops point to */
    store_op_t *ops;
    size_t n_ops, cap_ops;
    /* Completion, guarded by the store's mutex. */
    bool no_log;            /* store_write_no_log */
    int64_t last_seq;       /* highest log seq its ops appended (writer) */
    struct store_write *next;
    pthread_cond_t cv;
    bool done;
    int result;
    /* store_commit_async: called by the writer thread instead of waking a
     * waiter (NULL for store_commit). */
    store_commit_cb done_cb;
    void *done_arg;
};

/* A new zeroed op at the end of w->ops (the caller fills it and bumps
 * w->n_ops); NULL without memory. write.c. */
store_op_t *store_write_add_op(store_write_t *w, enum store_op_kind kind);
/* Apply STORE_OP_ASYNC / STORE_OP_ASYNC_DELETE (writer thread; no log
 * row: node-local). async.c. */
int store_apply_async(store_t *s, store_op_t *op);

/* --------------------------------------------------- writer statements */
enum store_wstmt {
    WS_BEGIN, WS_COMMIT, WS_ROLLBACK, WS_SAVEPOINT, WS_RELEASE, WS_ROLLBACK_TO,
    WS_OBJ_VERSION, WS_OBJ_INSERT, WS_OBJ_UPDATE, WS_OBJ_DELETE,
    WS_ATTR_DELETE, WS_LOG_INSERT,
    WS_META_PUT, WS_META_GET,
    WS_TENANT_INSERT, WS_TENANT_DELETE, WS_TENANT_OBJECTS,
    WS_CLIENT_UPSERT, WS_CLIENT_DELETE,
    /* replication (apply_repl.c) */
    WS_TOMB_GET, WS_TOMB_PUT, WS_TOMB_DELETE,
    WS_ROW_CLOCK_TENANT, WS_ROW_CLOCK_CLIENT, WS_ROW_CLOCK_NODE,
    WS_TENANT_UPSERT,
    WS_NODE_UPSERT, WS_NODE_REMOVE,
    WS_DSK_EXISTS, WS_DSK_PUT, WS_DSK_CURRENT_GET, WS_DSK_CURRENT_PUT,
    WS_REPL_STATE_PUT, WS_REPL_STATE_DROP,
    WS_TRIM_LOG, WS_TRIM_TOMBS, WS_LAST_SEQ,
    WS__COUNT
};

struct store {
    char *path;
    char node_id[64];
    int schema_version;
    size_t max_batch;
    bool read_only;

    sqlite3 *wdb;                     /* writer connection (NULL read-only) */
    sqlite3_stmt *ws[WS__COUNT];
    sqlite3_stmt *attr_ins[STORE_ATTR_ROWS + 1]; /* [n]: insert n attribute rows */
    int64_t last_hlc;                 /* writer thread only */
    _Atomic int_fast64_t hlc_seen;    /* store_hlc_observe: max remote HLC */
    store_write_t *applying;          /* writer thread only: the write store_apply runs */
    kms_arena_t *wscratch;            /* writer thread only: per-op scratch (clocks) */
    kms_buf_t wbuf;                   /* writer thread only: encoded clocks */
    bool wclocks_bound;               /* writer: store_bind_clocks bound wbuf (else NULL) */
    bool hlc_floor_dirty;             /* writer: persist last_hlc (meta) in this batch */
    int64_t log_seq;                  /* writer: seq of the op's log row, 0 if none */
    uint64_t retries;                 /* writer thread only: batches re-run isolated */
    store_notify_cb notify;           /* guarded by mu */
    void *notify_arg;

    pthread_t thread;
    bool thread_started;
    struct store_write **wbatch; /* the writer thread's batch (max_batch entries) */
    pthread_mutex_t mu;               /* guards everything below */
    pthread_cond_t cv_work;
    struct store_write *q_head, *q_tail;
    bool stopping;
    store_stats_t stats;

    /* Background checkpointer (checkpoint.c), its own connection and lock. */
    sqlite3 *cdb;
    pthread_t ckpt_thread;
    bool ckpt_started;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_stop;
    int ckpt_frames;                  /* WAL frames reported by the last commit */
    _Atomic int ckpt_seen;            /* WAL size the last checkpoint started from */
    int ckpt_every;                   /* frames between checkpoints (STORE_CKPT_FRAMES) */
    atomic_bool ckpt_yield;           /* a RESTART waits: the writer parks between batches */
    pthread_cond_t ckpt_yield_cv;     /* ckpt_yield cleared (with ckpt_mu) */

    store_cache_t *cache;             /* NULL when disabled or read_only */
    _Atomic(store_logtail_t *) tail;  /* store_log_tail_enable; NULL = off */
    atomic_uint_fast64_t clients_gen; /* bumped after a commit that may change
                                         the clients or tenants tables */
};

/* --------------------------------------------------- reader statements */
enum store_rstmt {
    RS_OBJ_GET, RS_META_GET,
    RS_CHANGES, RS_LAST_SEQ, RS_SCAN, RS_COUNT, RS_COUNT_KINDS, RS_COUNT_TENANT,
    RS_TENANT_EXISTS, RS_TENANT_LIST,
    RS_CLIENT_BY_NAME, RS_CLIENT_BY_CERT, RS_CLIENT_BY_DEVICE, RS_CLIENT_LIST,
    RS_NKEY_COUNT, RS_NKEY_COUNT_ALL, RS_TENANT_OBJECTS_UPTO, RS_OID_SPAN,
    /* replication (repl_read.c) */
    RS_BEGIN, RS_COMMIT,
    RS_OBJ_GET_REPL, RS_SNAP_OBJECTS,
    RS_TOMB_GET, RS_TOMB_LIST,
    RS_TENANT_GET, RS_TENANT_LIST_REPL,
    RS_NODE_GET, RS_NODE_LIST,
    RS_REPL_STATE_GET, RS_REPL_STATE_LIST,
    RS_DSK_LIST, RS_DSK_GET, RS_DSK_CURRENT,
    RS__COUNT
};

#define STORE_LOCATE_CACHE 16

/* The tenants that have entries in the key index on `col` (skey or ikey),
 * as the CTE kt(t): one seek per tenant (min of the leading column above
 * the previous one). A query over all tenants (admin) joins it to the
 * (tenant, name, key) index, so it seeks that index per tenant instead of
 * reading all of it. */
#define STORE_KEY_TENANTS(col)                                                            \
    "WITH RECURSIVE kt(t) AS (SELECT (SELECT min(tenant) FROM attributes WHERE " col     \
    " IS NOT NULL) UNION ALL SELECT (SELECT min(tenant) FROM attributes WHERE " col      \
    " IS NOT NULL AND tenant > kt.t) FROM kt WHERE kt.t IS NOT NULL) "

struct store_reader {
    store_t *store;
    sqlite3 *db;
    sqlite3_stmt *rs[RS__COUNT];
    /* Locate statements keyed by their SQL text (its shape, never values). */
    struct {
        char *sql;
        sqlite3_stmt *st;
        uint64_t used;
    } lc[STORE_LOCATE_CACHE];
    uint64_t lc_tick;
    int64_t locate_steps; /* SQLite VM steps of the last store_locate */
    /* store_snapshot_begin .. _end: an explicit read transaction is open */
    bool in_snapshot;
    int64_t snapshot_seq;
};

/* ------------------------------------------------------------ helpers */
/* Map a SQLite result code to KMS_ERR_* and log it (never values: every
 * value is a bound parameter, so messages name columns only). */
int store_sqlerr(sqlite3 *db, int rc, const char *what);
/* Open a connection with the pragmas every connection gets. */
int store_db_open(const char *path, bool read_only, bool create, sqlite3 **out);
/* The writer's connection: store_db_open read-write, through the VFS of
 * vfs.c (a commit's WAL frames in one write). */
int store_db_open_writer(const char *path, sqlite3 **out);
/* vfs.c: the name of that VFS, registered on first use; NULL if it cannot be. */
const char *store_vfs_writer(void);
/* Run SQL without results (schema, pragmas). */
int store_exec(sqlite3 *db, const char *sql, const char *what);
/* Prepare once and cache in *slot; the statement is reset and unbound. */
int store_stmt(sqlite3 *db, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out);
/* Bind a NUL-terminated string or NULL. */
int store_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Copy a text column into a fixed buffer; KMS_ERR_LIMIT if it does not fit. */
int store_col_text(sqlite3_stmt *st, int col, char *buf, size_t cap);

/* schema.c */
extern const int store_schema_current;
int store_migrate(sqlite3 *db, int *version_out);
int store_schema_read(sqlite3 *db, int *version_out);

/* writer.c */
int store_writer_start(store_t *s);
void store_writer_stop(store_t *s);

/* checkpoint.c: WAL checkpoints off the writer thread, one per this many
 * frames appended since the last one. */
#define STORE_CKPT_FRAMES 2000
/* WAL size above which the checkpointer rewinds it (RESTART), in
 * checkpoint intervals, and how long that may wait for the write lock and
 * the readers. */
#define STORE_CKPT_RESTART_FACTOR 8
#define STORE_CKPT_RESTART_MS 10
int store_ckpt_start(store_t *s);
void store_ckpt_stop(store_t *s);
/* Writer thread, between batches: park while the checkpointer's RESTART
 * waits for the write lock (bounded). */
void store_ckpt_yield_wait(store_t *s);

/* cache.c: the store_get object cache (see the file for the protocol). */
store_cache_t *store_cache_new(size_t max_bytes);
void store_cache_free(store_cache_t *c);
/* 0: hit, copied into the arena; KMS_ERR_NOTFOUND: cached but another
 * tenant's; 1: miss, *gen_out is the token to pass to store_cache_fill. */
int store_cache_get(store_cache_t *c, const char *id, const char *tenant, kms_arena_t *arena,
                    store_object_t **out, uint64_t *gen_out);
void store_cache_fill(store_cache_t *c, const store_object_t *o, uint64_t gen);
/* Writer: around the transaction that changes `id`. */
void store_cache_begin(store_cache_t *c, const char *id);
void store_cache_end(store_cache_t *c, const char *id);
void store_cache_stats(store_cache_t *c, store_stats_t *st);
/* A deep copy of an object in one block (cache.c, logtail.c): the bytes
 * it takes after `base` bytes of header, and the copy into dst whose
 * variable part starts at p (attributes, blob, strings; the clocks only
 * with_clocks, else none). Values stay NUL-terminated. */
size_t store_object_size(const store_object_t *o, size_t base, bool with_clocks);
void store_object_copy(const store_object_t *src, store_object_t *dst, uint8_t *p,
                       bool with_clocks);

/* logtail.c: recording the rows of the batch being applied (writer
 * thread). batch_start once per batch (activates a newly enabled tail);
 * reset at every BEGIN (what an earlier attempt recorded is void); mark /
 * truncate around a write undone by its savepoint; add_row for every
 * change-log row, add_object right after for a put (the object as
 * stored); publish after a COMMIT that committed writes (top_seq: the
 * highest seq the batch appended). */
void store_tail_batch_start(store_t *s);
void store_tail_reset(store_t *s);
size_t store_tail_mark(store_t *s);
void store_tail_truncate(store_t *s, size_t mark);
void store_tail_add_row(store_t *s, enum store_kind kind, const char *key, int64_t version,
                        bool deleted, const store_change_id_t *id, int64_t seq);
void store_tail_add_object(store_t *s, const store_object_t *o, int64_t version,
                           int64_t created_us, int64_t updated_us, const store_change_id_t *id,
                           int64_t seq, const uint8_t *clocks, size_t clocks_len, bool has_clocks);
void store_tail_publish(store_t *s, int64_t top_seq);
void store_log_tail_free(store_t *s); /* store_close */

/* apply.c: one write's mutations inside the writer's transaction. */
int store_apply(store_t *s, store_write_t *w, int64_t now_us);
int store_wstmt(store_t *s, enum store_wstmt which, sqlite3_stmt **out);
void store_wstmt_finalize(store_t *s);
/* Step a statement that returns no rows; reset it either way. */
int store_wrun(store_t *s, sqlite3_stmt *st, const char *what);
/* The identity of the change `op` makes, and its change-log row (unless
 * the write is no-log and the change applied): local ops get the next
 * HLC tick, this node and the row's seq as origin_seq; applied ops keep
 * op->id and move the clock past its hlc. */
int store_log_change(store_t *s, store_op_t *op, enum store_kind kind, const char *key,
                     int64_t version, bool deleted, int64_t now_us, store_change_id_t *id_out);

/* apply_repl.c: tombstones, LWW rows, nodes, dsks, repl state, trim. */
/* The tombstone of (kind, key): 1 and *out when there is one, 0 when not. */
int store_tomb_read(store_t *s, enum store_kind kind, const char *key, store_change_id_t *out);
int store_tomb_write(store_t *s, enum store_kind kind, const char *key, const store_change_id_t *id);
int store_tomb_remove(store_t *s, enum store_kind kind, const char *key);
int store_apply_repl(store_t *s, store_op_t *op, int64_t now_us);
/* Meta "hlc.floor" = this node's clock: where open seeds the clock from
 * when no log row shows it (no-log applies, trims). */
int store_hlc_floor_save(store_t *s);
/* apply.c: row helpers the applied-change code shares with local ops. */
int store_tenant_put_row(store_t *s, const char *name, int64_t created_us,
                         const store_change_id_t *id, bool upsert);
int store_client_put_row(store_t *s, const store_client_t *c, int64_t created_us,
                         const store_change_id_t *id, bool set_created);
int store_tenant_remove(store_t *s, const char *name);
int store_client_remove(store_t *s, const char *name);
/* A put's clocks column: bound to parameter `col` of `st` (NULL when the
 * clocks are the default of change `id`). Uses s->wscratch / s->wbuf. */
int store_bind_clocks(store_t *s, sqlite3_stmt *st, int col, const store_op_t *op,
                      const store_change_id_t *id, const uint8_t *old, size_t old_len,
                      const store_change_id_t *old_id);
/* 0 on a change row or store_tenant_t; hlc/origin of a row from columns. */
int store_row_change_id(sqlite3_stmt *st, int col, store_change_id_t *out);

/* reader statements */
int store_rstmt(store_reader_t *r, enum store_rstmt which, sqlite3_stmt **out);

/* read.c: an object's rows. Object columns: 0 oid, 1 object_type .. 9
 * blob, 10 seal_gen; attribute columns from STORE_ATTR_COL (name ..
 * ikey present); with `repl`, hlc, origin, origin_seq, clocks from
 * STORE_REPL_COL. */
#define STORE_ATTR_COL 11
#define STORE_REPL_COL 17
int store_row_object(kms_arena_t *a, sqlite3_stmt *st, bool repl, store_object_t *o);
/* Step `st` (the object row, then its attribute rows) into *out; resets it. */
int store_read_object(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *arena, const char *id,
                      bool repl, store_object_t **out);
/* One row of a reader statement into a record (`a` NULL for point reads). */
typedef int (*store_row_fn)(store_reader_t *r, sqlite3_stmt *st, kms_arena_t *a, void *dst);
/* The first row of `which` (bound with key, or kind (>= 0) and key) into
 * dst: 0, KMS_ERR_NOTFOUND, or an error. */
int store_row_one(store_reader_t *r, enum store_rstmt which, int kind, const char *key,
                  store_row_fn fn, void *dst);
/* Every row of `which` as an array of `size`-byte records in the arena
 * (*out NULL when there are none). */
int store_rows_all(store_reader_t *r, enum store_rstmt which, kms_arena_t *a, size_t size,
                   store_row_fn fn, void **out, size_t *n_out);
/* Collecting attribute rows (from STORE_ATTR_COL) of one object. */
typedef struct store_attrs {
    store_attr_t local[32];
    store_attr_t *v;
    size_t n, cap;
} store_attrs_t;
void store_attrs_init(store_attrs_t *acc);
int store_attrs_add(store_attrs_t *acc, kms_arena_t *a, sqlite3_stmt *st);
int store_attrs_finish(store_attrs_t *acc, kms_arena_t *a, store_object_t *o);
void store_attrs_dispose(store_attrs_t *acc);

#endif /* KMS_STORE_INT_H */
