/*
 * store/schema.c: the schema as a list of numbered forward migrations.
 *
 * A new database runs every step from 1; an existing one runs the steps
 * above its recorded version. Each step runs in its own transaction and
 * records itself in schema_version, so a crash mid-migration leaves the
 * database at the previous version, never half-way. Steps are never edited
 * once released: a change is a new step. There are no down-migrations; a
 * database newer than the code is refused rather than guessed at.
 */
#include "store/store_int.h"

/* 'KMSD': marks the file as ours (PRAGMA application_id). */
#define STORE_APP_ID 0x4B4D5344

static const char *const migrations[] = {
    /* 1: objects, their attributes, metadata and the change log.
     * `id` (the KMIP Unique Identifier) is the object's identity; `oid` is
     * an internal integer key that attribute rows use, so rows and index
     * entries of new objects append to the right edge of their b-trees
     * instead of landing on random pages (UUIDs are random): this keeps
     * the pages one group commit dirties, and so the WAL it writes, small.
     * attributes.obj_id has no FOREIGN KEY clause on purpose: an immediate
     * foreign key makes every multi-row insert keep a statement journal;
     * apply.c deletes attribute rows with their object explicitly. */
    "PRAGMA application_id=1263358788;"
    "CREATE TABLE objects ("
    " oid INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " object_type INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " tenant TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK (version > 0),"
    " created_us INTEGER NOT NULL,"
    " updated_us INTEGER NOT NULL,"
    " archived INTEGER NOT NULL DEFAULT 0,"
    " dsk_id INTEGER NOT NULL DEFAULT 0,"
    " blob BLOB);"
    "CREATE TABLE attributes ("
    " obj_id INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " value BLOB NOT NULL,"
    " skey TEXT,"
    " nkey INTEGER,"
    " PRIMARY KEY (obj_id, name, idx)) WITHOUT ROWID;"
    "CREATE INDEX attributes_skey ON attributes(name, skey) WHERE skey IS NOT NULL;"
    "CREATE INDEX attributes_nkey ON attributes(name, nkey) WHERE nkey IS NOT NULL;"
    "CREATE INDEX objects_tenant_created ON objects(tenant, created_us);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE change_log ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " obj_id TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " hlc INTEGER NOT NULL,"
    " node_id TEXT NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0);",

    /* 2: tenants and client identities; every tenant that already owns
     * objects becomes a tenant row. */
    "CREATE TABLE tenants ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " created_us INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE clients ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " tenant TEXT NOT NULL REFERENCES tenants(name),"
    " role TEXT NOT NULL CHECK (role IN ('client', 'admin')),"
    " kind TEXT NOT NULL CHECK (kind IN ('cert', 'password')),"
    " cert_sha256 TEXT NOT NULL DEFAULT '',"
    " password_hash TEXT NOT NULL DEFAULT '',"
    " created_us INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX clients_cert ON clients(cert_sha256) WHERE kind = 'cert';"
    "CREATE INDEX clients_tenant ON clients(tenant);"
    "INSERT OR IGNORE INTO tenants(name, created_us)"
    " SELECT DISTINCT tenant, CAST(strftime('%s', 'now') AS INTEGER) * 1000000 FROM objects;",

    /* 3: Locate answers newest first: an index that yields that order per
     * tenant and storage status without a sort, and one for admin queries
     * over all tenants. Both grow at one edge (created_us is increasing). */
    "DROP INDEX objects_tenant_created;"
    "CREATE INDEX objects_tenant_order ON objects(tenant, archived, created_us DESC, id);"
    "CREATE INDEX objects_order ON objects(created_us DESC, id);",

    /* 4: a certificate client may be registered by subject CN alone (no
     * fingerprint: any certificate with that CN under the client CA); the
     * one-certificate-one-client rule applies to pinned fingerprints only. */
    "DROP INDEX clients_cert;"
    "CREATE UNIQUE INDEX clients_cert ON clients(cert_sha256) WHERE kind = 'cert' AND cert_sha256 <> '';",

    /* 5: numeric keys are indexed only where they are selective. The
     * (name, nkey) index held 11 entries per key, one per enum, integer
     * and date attribute, each in its own part of the b-tree: every group
     * commit rewrote about 11 index pages, half of the WAL it wrote, for
     * entries (Cryptographic Algorithm = AES, Fresh = true) that never
     * narrow a Locate. `ikey` is the indexed copy of nkey, set by kmip/
     * (store_attr_t.index_nkey) for Date-Time values and custom
     * attributes; nkey stays on every row for the per-candidate checks.
     * Existing rows get the same rule here: TTLV type byte 0x09
     * (Date-Time, the 4th byte of the stored value) or an x-/y- name.
     * Object Type and State are matched on the objects columns instead
     * (STORE_COND_TYPE_EQ, STORE_COND_STATE_RANGE). */
    "ALTER TABLE attributes ADD COLUMN ikey INTEGER;"
    "UPDATE attributes SET ikey = nkey WHERE nkey IS NOT NULL AND (substr(value, 4, 1) = x'09'"
    " OR ((substr(name, 1, 2) = 'x-' OR substr(name, 1, 2) = 'y-') AND length(name) > 2));"
    "DROP INDEX attributes_nkey;"
    "CREATE INDEX attributes_ikey ON attributes(name, ikey) WHERE ikey IS NOT NULL;"
    /* The order indexes carry object_type and state, so a Locate by Object
     * Type or State that walks them (these keys are not in the attribute
     * index) rejects an object from the index entry alone. */
    "DROP INDEX objects_tenant_order;"
    "DROP INDEX objects_order;"
    "CREATE INDEX objects_tenant_order ON objects(tenant, archived, created_us DESC, id,"
    " object_type, state);"
    "CREATE INDEX objects_order ON objects(created_us DESC, id, archived, object_type, state);",

    /* 6: the seal generation of the blob (kms_sealed_t.gen), which the
     * seal binds instead of the row's version: a write that leaves the
     * material alone keeps blob and generation, and a row opens on any
     * node whatever its version there. Blobs written up to v5 were sealed
     * for the version of their row, so their generation is that version:
     * they open as they are, no blob is rewritten. */
    "ALTER TABLE objects ADD COLUMN seal_gen INTEGER NOT NULL DEFAULT 0;"
    "UPDATE objects SET seal_gen = version WHERE blob IS NOT NULL;",
    /* 7: replication. The change log names any kind of entity (kind,
     * key) and the change's identity: the node that made it (origin) and
     * that node's seq for it (origin_seq; NULL = this row's own seq, a
     * change made here, which costs no bytes). Every change so far was
     * made here. Objects, tenants and clients carry their last change's
     * identity, objects also their per-name clocks (store/clocks.c; NULL
     * = every name at the object's last change). Existing rows get this
     * node (kmsd_node_id(), registered by open.c) and the hlc and seq of
     * their newest log row (or their time). Then the tables replication
     * keeps: tombstones of removed entities, per-peer progress, cluster
     * nodes, and the identity of replicated data-store keys and of the
     * current-key register (the keys stay in meta). */
    "ALTER TABLE change_log RENAME COLUMN obj_id TO key;"
    "ALTER TABLE change_log RENAME COLUMN node_id TO origin;"
    "ALTER TABLE change_log ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE change_log ADD COLUMN origin_seq INTEGER;"
    "ALTER TABLE objects ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE objects ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE objects ADD COLUMN origin_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE objects ADD COLUMN clocks BLOB;"
    "UPDATE objects SET hlc = c.h, origin = kmsd_node_id(), origin_seq = c.s"
    " FROM (SELECT key, max(seq) AS s, max(hlc) AS h FROM change_log GROUP BY key) AS c"
    " WHERE c.key = objects.id;"
    "UPDATE objects SET hlc = (updated_us / 1000) << 16, origin = kmsd_node_id()"
    " WHERE origin = '';"
    "ALTER TABLE tenants ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tenants ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tenants ADD COLUMN origin_seq INTEGER NOT NULL DEFAULT 0;"
    "UPDATE tenants SET hlc = (created_us / 1000) << 16, origin = kmsd_node_id();"
    "ALTER TABLE clients ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE clients ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE clients ADD COLUMN origin_seq INTEGER NOT NULL DEFAULT 0;"
    "UPDATE clients SET hlc = (created_us / 1000) << 16, origin = kmsd_node_id();"
    "CREATE TABLE tombstones ("
    " kind INTEGER NOT NULL,"
    " key TEXT NOT NULL,"
    " hlc INTEGER NOT NULL,"
    " origin TEXT NOT NULL,"
    " origin_seq INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
    "CREATE TABLE repl_state ("
    " node_id TEXT PRIMARY KEY NOT NULL,"
    " origin_hwm INTEGER NOT NULL DEFAULT 0,"
    " link_pos INTEGER NOT NULL DEFAULT 0,"
    " updated_us INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE nodes ("
    " node_id TEXT PRIMARY KEY NOT NULL,"
    " peer_addr TEXT NOT NULL DEFAULT '',"
    " kmip_addr TEXT NOT NULL DEFAULT '',"
    " cert_sha256 TEXT NOT NULL DEFAULT '',"
    " added_hlc INTEGER NOT NULL DEFAULT 0,"
    " removed INTEGER NOT NULL DEFAULT 0,"
    " hlc INTEGER NOT NULL,"
    " origin TEXT NOT NULL,"
    " origin_seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE dsks ("
    " id INTEGER PRIMARY KEY,"
    " hlc INTEGER NOT NULL,"
    " origin TEXT NOT NULL,"
    " origin_seq INTEGER NOT NULL);"
    "CREATE TABLE dsk_current ("
    " one INTEGER PRIMARY KEY CHECK (one = 1),"
    " id INTEGER NOT NULL,"
    " hlc INTEGER NOT NULL,"
    " origin TEXT NOT NULL,"
    " origin_seq INTEGER NOT NULL);",
    /* v8: records of KMIP asynchronous operations (store/async.c). Node-
     * local: never in the change log. */
    "CREATE TABLE async_ops ("
    " corr BLOB PRIMARY KEY NOT NULL,"
    " identity TEXT NOT NULL,"
    " tenant TEXT NOT NULL,"
    " operation INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " epoch INTEGER NOT NULL,"
    " created_us INTEGER NOT NULL,"
    " expires_us INTEGER NOT NULL,"
    " result BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX async_ops_owner ON async_ops (identity, tenant);"
    "CREATE INDEX async_ops_expiry ON async_ops (expires_us);",
    /* v9: device clients (KMIP Device credentials). The kind's CHECK
     * constraint names them, which SQLite changes only by copying the
     * table. A device client's identifiers are packed into cert_sha256
     * (store/identity.c), its serial number first; clients_device makes
     * that serial number unique among device clients and finds one. */
    "CREATE TABLE clients_v9 ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " tenant TEXT NOT NULL REFERENCES tenants(name),"
    " role TEXT NOT NULL CHECK (role IN ('client', 'admin')),"
    " kind TEXT NOT NULL CHECK (kind IN ('cert', 'password', 'device')),"
    " cert_sha256 TEXT NOT NULL DEFAULT '',"
    " password_hash TEXT NOT NULL DEFAULT '',"
    " created_us INTEGER NOT NULL,"
    " hlc INTEGER NOT NULL DEFAULT 0,"
    " origin TEXT NOT NULL DEFAULT '',"
    " origin_seq INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO clients_v9 (name, tenant, role, kind, cert_sha256, password_hash, created_us,"
    " hlc, origin, origin_seq) SELECT name, tenant, role, kind, cert_sha256, password_hash,"
    " created_us, hlc, origin, origin_seq FROM clients;"
    "DROP TABLE clients;"
    "ALTER TABLE clients_v9 RENAME TO clients;"
    "CREATE UNIQUE INDEX clients_cert ON clients(cert_sha256) WHERE kind = 'cert' AND cert_sha256 <> '';"
    "CREATE INDEX clients_tenant ON clients(tenant);"
    "CREATE UNIQUE INDEX clients_device ON clients(substr(cert_sha256, 1,"
    " instr(cert_sha256, char(31)) - 1)) WHERE kind = 'device';",
    /* v10: a device client's identifiers in columns of their own, so that
     * cert_sha256 holds certificate fingerprints only. The v9 rows are
     * unpacked here, a field at a time: each UPDATE takes the text before
     * the first 0x1f into its column and leaves the rest (every
     * expression of an UPDATE reads the row as it was before it); the
     * Media Identifier is what remains. v9 wrote exactly four separators
     * (store_client_set_device of that version). v9's clients_device,
     * on the text before the first separator, goes first (the steps would
     * break its uniqueness half-way); the new one makes the serial number
     * unique among device clients on its column. */
    "DROP INDEX clients_device;"
    "ALTER TABLE clients ADD COLUMN device_serial TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE clients ADD COLUMN device_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE clients ADD COLUMN network_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE clients ADD COLUMN machine_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE clients ADD COLUMN media_id TEXT NOT NULL DEFAULT '';"
    "UPDATE clients SET device_serial = substr(cert_sha256, 1, instr(cert_sha256, char(31)) - 1),"
    " cert_sha256 = substr(cert_sha256, instr(cert_sha256, char(31)) + 1) WHERE kind = 'device';"
    "UPDATE clients SET device_id = substr(cert_sha256, 1, instr(cert_sha256, char(31)) - 1),"
    " cert_sha256 = substr(cert_sha256, instr(cert_sha256, char(31)) + 1) WHERE kind = 'device';"
    "UPDATE clients SET network_id = substr(cert_sha256, 1, instr(cert_sha256, char(31)) - 1),"
    " cert_sha256 = substr(cert_sha256, instr(cert_sha256, char(31)) + 1) WHERE kind = 'device';"
    "UPDATE clients SET machine_id = substr(cert_sha256, 1, instr(cert_sha256, char(31)) - 1),"
    " cert_sha256 = substr(cert_sha256, instr(cert_sha256, char(31)) + 1) WHERE kind = 'device';"
    "UPDATE clients SET media_id = cert_sha256, cert_sha256 = '' WHERE kind = 'device';"
    "CREATE UNIQUE INDEX clients_device ON clients(device_serial) WHERE kind = 'device';",
    /* v11: the owner tenant (its object's) of every attribute row with a
     * search key, leading the text and numeric key indexes, so a Locate
     * within a tenant reads that tenant's index entries only: with (name,
     * skey) it read every tenant's rows carrying the value and dropped the
     * others', and its time told how many there were. Rows without an
     * index entry keep '' (no bytes). The column is local (apply.c fills
     * it from the object it writes); nothing replicated or backed up
     * carries it. A row whose object is missing (none should exist) keeps
     * '' and is found by no tenant's Locate. */
    "ALTER TABLE attributes ADD COLUMN tenant TEXT NOT NULL DEFAULT '';"
    "UPDATE attributes SET tenant = coalesce((SELECT o.tenant FROM objects o"
    " WHERE o.oid = attributes.obj_id), '') WHERE skey IS NOT NULL OR ikey IS NOT NULL;"
    "DROP INDEX attributes_skey;"
    "DROP INDEX attributes_ikey;"
    "CREATE INDEX attributes_tenant_skey ON attributes(tenant, name, skey)"
    " WHERE skey IS NOT NULL;"
    "CREATE INDEX attributes_tenant_ikey ON attributes(tenant, name, ikey)"
    " WHERE ikey IS NOT NULL;",
    /* v12: a client can be disabled (kmip/auth.c refuses it like an
     * unknown credential) and enabled again with the same registration;
     * when and why it was disabled are kept with it. Every existing client
     * stays enabled. */
    "ALTER TABLE clients ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE clients ADD COLUMN disabled_us INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE clients ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';",
};

const int store_schema_current = (int)KMS_ARRAY_SIZE(migrations);

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    int err = rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : store_sqlerr(db, rc, "schema");
    sqlite3_finalize(st);
    return err;
}

int store_schema_read(sqlite3 *db, int *version_out)
{
    int64_t has = 0, tables = 0, v = 0, app = 0;
    int err = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                            " AND name = 'schema_version'", &has);
    if (!err)
        err = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'", &tables);
    if (!err)
        err = query_int(db, "PRAGMA application_id", &app);
    if (err)
        return err;
    if (!has) {
        if (tables > 0 || (app != 0 && app != STORE_APP_ID)) {
            kms_log(KMS_LOG_ERROR, STORE_LOG, "the database file is not a kmsd database");
            return KMS_ERR_CONFIG;
        }
        *version_out = 0;
        return 0;
    }
    err = query_int(db, "SELECT coalesce(max(version), 0) FROM schema_version", &v);
    if (err)
        return err;
    *version_out = (int)v;
    return 0;
}

static int record_version(sqlite3 *db, int v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO schema_version(version, applied_us)"
                                    " VALUES (?1, ?2)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_int64(st, 2, kms_now_us());
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(db, rc, "migrate");
}

int store_migrate(sqlite3 *db, int *version_out)
{
    int v = 0;
    int err = store_schema_read(db, &v);
    if (err)
        return err;
    if (v > store_schema_current) {
        kms_log(KMS_LOG_ERROR, STORE_LOG,
                "database schema v%d is newer than this kmsd (v%d); refusing to open", v,
                store_schema_current);
        return KMS_ERR_CONFIG;
    }
    /* An existing database: say so before steps that can take long (steps
     * 5 and 11 rewrite every attribute row: ~12 s per 300 000 keys; step 6
     * every object row). */
    if (v > 0 && v < store_schema_current)
        kms_log(KMS_LOG_WARN, STORE_LOG,
                "upgrading the database schema from v%d to v%d; on a large store this takes "
                "a while and WAL space up to the database's size", v, store_schema_current);
    /* A new database goes through every step too; its steps are logged at
     * debug level, as they say nothing an operator acts on. */
    enum kms_log_level step_level = v == 0 ? KMS_LOG_DEBUG : KMS_LOG_INFO;
    for (; v < store_schema_current; v++) {
        err = store_exec(db, "BEGIN IMMEDIATE", "migrate");
        if (err)
            return err;
        if (v == 0)
            err = store_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
                                 " version INTEGER PRIMARY KEY, applied_us INTEGER NOT NULL);",
                             "migrate");
        if (!err)
            err = store_exec(db, migrations[v], "migrate");
        if (!err)
            err = record_version(db, v + 1);
        if (!err)
            err = store_exec(db, "COMMIT", "migrate");
        if (err) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            kms_log(KMS_LOG_ERROR, STORE_LOG, "schema migration to v%d failed", v + 1);
            return err;
        }
        kms_log(step_level, STORE_LOG, "schema migrated to v%d", v + 1);
    }
    *version_out = v;
    return 0;
}
