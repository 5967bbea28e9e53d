/*
 * conf/conf.h: the kmsd configuration, one YAML file into a plain struct.
 *
 * conf_load() reads the file with libyaml and fills a conf_t in which every
 * setting has a value (its documented default when the file omits it). An
 * unknown key, a wrong type or an out-of-range value is an error whose text
 * names file:line:column and the dotted key, e.g.
 *   "kmsd.yaml:12:5: limits.max_connections: must be between 1 and 1000000".
 * Relative paths in the file are resolved against the file's directory, so
 * the loaded struct holds only absolute paths (or "" for "unset"). Every
 * piece of state defaults to /var/lib/kmsd (database, master-key file,
 * audit log, admin socket), so one directory, or one container volume,
 * holds it all; only the configuration and the PKI default to /etc/kmsd.
 *
 * conf/ deliberately does not open, create or check the files it names
 * (certificates, keys, the database): the server and hsm/ do that and report
 * their own errors. It depends on common/ only (and libyaml).
 *
 * The sample conf/kmsd.yaml documents every setting; keep it in step with
 * the defaults in conf/defaults.c.
 */
#ifndef KMS_CONF_H
#define KMS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kms.h"

/* tls.client_auth */
enum conf_client_auth {
    CONF_CLIENT_AUTH_REQUIRED = 0, /* handshake fails without a valid client certificate */
    CONF_CLIENT_AUTH_OPTIONAL = 1, /* certificate requested; without one the KMIP Credential
                                      (user name + password) must identify the client */
};

/* hsm.provider; same values as enum hsm_provider in hsm/hsm.h (conf/ may not
 * include hsm/, so the caller converts: (enum hsm_provider)c->hsm.provider). */
enum conf_hsm_provider { CONF_HSM_FILE = 0, CONF_HSM_PKCS11 = 1 };

/* audit.on_full: what a request gets while the audit backlog is full. */
enum conf_audit_full {
    CONF_AUDIT_FULL_BLOCK = 0,     /* it waits until its record can be queued */
    CONF_AUDIT_FULL_FAIL = 1,      /* Operation Failed, "audit log unavailable", nothing runs */
};

/* replication.on_sync_timeout: what a changing request gets when fewer than
 * sync_acks peers acknowledged it within sync_timeout_ms. */
enum conf_sync_timeout {
    CONF_SYNC_TIMEOUT_FAIL = 0,    /* Operation Failed with a clear Result Message */
    CONF_SYNC_TIMEOUT_DEGRADE = 1, /* the normal answer, plus a rate-limited WARN log */
};

/* kmip.key_policy: which key sizes Create, Create Key Pair, Re-key and
 * Register accept (beyond what each algorithm itself allows). */
enum conf_key_policy {
    CONF_KEY_POLICY_INTEROP = 0, /* RSA from 1024 bits, two-key 3DES, every curve: what
                                    standard clients and the KMIP test cases use */
    CONF_KEY_POLICY_NIST = 1,    /* NIST SP 800-131A for new keys: RSA >= 2048, no DES or
                                    two-key 3DES, curves >= 224 bits, keys >= 112 bits */
};

/*
 * The effective configuration. Every string is non-NULL ("" = unset) and
 * every path is absolute (or ""). Durations are milliseconds, sizes bytes.
 * Owned by the conf_t: callers treat it as read-only.
 */
typedef struct conf {
    const char *path;            /* absolute path of the loaded file; "" for pure defaults */

    const char *node_id;         /* node_id: "" = generated once and kept in the DB */
    const char *const *listen;   /* listen: "ADDR:PORT" or "[V6ADDR]:PORT"; default ["[::]:5696"] */
    size_t n_listen;             /*   (at least one; validated with conf_parse_hostport) */
    unsigned workers;            /* workers: event loops; 0 = number of online CPUs (default 0) */
    unsigned threads;            /* threads: request worker threads (default 32) */
    const char *run_as;          /* run_as: user to drop to when started as root ("" = stay) */

    struct conf_tls {
        const char *cert;        /* tls.cert: server certificate chain PEM (default /etc/kmsd/pki/server.crt) */
        const char *key;         /* tls.key: server private key PEM (default /etc/kmsd/pki/server.key) */
        const char *client_ca;   /* tls.client_ca: CA bundle for client certs (default /etc/kmsd/pki/ca.crt) */
        enum conf_client_auth client_auth; /* tls.client_auth: required | optional (default required) */
        bool require_registered; /* tls.require_registered: only certificates registered with
                                    kmsctl (fingerprint known) may connect (default false) */
        int min_version;         /* tls.min_version: "1.2" -> 0x0303 (TLS1_2_VERSION), "1.3" -> 0x0304 */
        const char *ciphers;     /* tls.ciphers: OpenSSL cipher list for TLS <= 1.2 */
        const char *ciphersuites;/* tls.ciphersuites: TLS 1.3 suites */
        bool session_resumption; /* tls.session_resumption: session tickets/cache (default true) */
    } tls;

    struct conf_limits {
        size_t max_message;          /* limits.max_message: one request (default 1 MiB) */
        size_t max_response;         /* limits.max_response: one response (default 16 MiB) */
        unsigned max_connections;    /* limits.max_connections: whole process (default 10000) */
        unsigned max_depth;          /* limits.max_depth: TTLV structure nesting (default 32) */
        unsigned max_items;          /* limits.max_items: TTLV items per message (default 100000) */
        unsigned max_batch_items;    /* limits.max_batch_items: batch items per request (default 1024) */
        uint64_t handshake_timeout_ms; /* limits.handshake_timeout (default 10 s) */
        uint64_t idle_timeout_ms;      /* limits.idle_timeout: no request in flight (default 120 s) */
        uint64_t message_timeout_ms;   /* limits.message_timeout: first to last byte of a request (30 s) */
        size_t max_pending_output;     /* limits.max_pending_output: stop reading above it (4 MiB) */
        uint64_t shutdown_timeout_ms;  /* limits.shutdown_timeout: drain on SIGTERM (default 10 s) */
        unsigned crypto_streams;       /* limits.crypto_streams: open multi-part cryptographic
                                          operations in all (default 1024) */
        unsigned crypto_streams_per_client; /* limits.crypto_streams_per_client (default 16) */
        unsigned crypto_streams_per_tenant; /* limits.crypto_streams_per_tenant (default 256): one
                                              tenant's identities cannot take every stream */
        uint64_t crypto_stream_idle_ms; /* limits.crypto_stream_idle_timeout: an unused stream
                                           is dropped after this (default 60 s) */
        unsigned max_unauthenticated;  /* limits.max_unauthenticated: connections not yet
                                          authenticated (TCP, handshake, unregistered), whole
                                          process; the oldest is closed to admit a new one
                                          (default 1024) */
        size_t max_message_unauthenticated; /* limits.max_message_unauthenticated: largest
                                          request before the client is authenticated (32 KiB) */
        size_t request_memory;         /* limits.request_memory: bytes of requests being received
                                          or executed, all authenticated clients (128 MiB) */
        size_t request_memory_per_client; /* limits.request_memory_per_client: one identity's
                                          share of request_memory (default 32 MiB) */
        uint64_t request_time_ms;      /* limits.request_time: work budget of one request;
                                          Locate and batches stop when it is spent (10 s) */
        unsigned tenant_workers;       /* limits.tenant_workers: requests of one tenant on
                                          worker threads at once (default 8) */
    } limits;

    struct conf_kmip {
        enum conf_key_policy key_policy; /* kmip.key_policy: interop | nist (default interop) */
    } kmip;

    struct conf_store {
        const char *path;        /* store.path (default /var/lib/kmsd/kms.db) */
        unsigned max_batch;      /* store.max_batch: writes per group commit (default 512) */
        size_t cache_size;       /* store.cache_size: object cache for reads (default 64 MiB, 0 off) */
    } store;

    struct conf_hsm {
        enum conf_hsm_provider provider; /* hsm.provider: file | pkcs11 (default file) */
        const char *key_file;    /* hsm.key_file (default /var/lib/kmsd/master.key) */
        const char *module;      /* hsm.module: PKCS#11 library ("" unless pkcs11) */
        const char *token_label; /* hsm.token_label */
        int slot;                /* hsm.slot: -1 = unset (use token_label) */
        const char *pin_file;    /* hsm.pin_file */
        const char *pin_env;     /* hsm.pin_env: name of an environment variable */
        const char *key_label;   /* hsm.key_label (default "kmsd-master") */
    } hsm;

    struct conf_admin {
        const char *socket;      /* admin.socket (default /var/lib/kmsd/admin.sock) */
        unsigned mode;           /* admin.mode: octal permission bits (default 0600) */
        const char *group;       /* admin.group: group owner of the socket ("" = unchanged) */
    } admin;

    struct conf_log {
        enum kms_log_level level; /* log.level: error | warn | info | debug (default info) */
        enum kms_log_format format; /* log.format: text | json (default text) */
    } log;

    struct conf_audit {
        const char *path;        /* audit.path: "" = off (default /var/lib/kmsd/audit.log) */
        size_t rotate_size;      /* audit.rotate_size (default 100 MiB) */
        bool fsync;              /* audit.fsync: fsync each record (default true) */
        const char *syslog;      /* audit.syslog: copy of every record to syslog (RFC 5424):
                                    "" = off, "local" (/dev/log), "unix:PATH",
                                    "udp:HOST:PORT", "tcp:HOST:PORT" */
        int syslog_facility;     /* audit.syslog_facility: auth | authpriv | local0..local7
                                    (default authpriv = 10) */
        const char *json_lines;  /* audit.json_lines: copy of every record as one JSON object
                                    per line to this file or FIFO (a SIEM's input); "" = off */
        unsigned max_backlog;    /* audit.max_backlog: records waiting for the disk (65536) */
        enum conf_audit_full on_full; /* audit.on_full: block | fail (default fail) */
        bool durable;            /* audit.durable: a request is answered only once its record
                                    is fsynced (default false) */
    } audit;

    struct conf_http {
        const char *const *listen; /* http.listen: HTTPS listener (metrics, health, KMIP over
                                      HTTPS); empty = off (default) */
        size_t n_listen;
        size_t max_header;       /* http.max_header: request line + headers (default 8 KiB) */
        size_t max_body;         /* http.max_body: one request body (default 4 MiB) */
        /* http.metrics_clients: SHA-256 fingerprints (64 lower-case hex
         * digits) of the certificates that may read /metrics besides
         * registered admin clients; empty by default. */
        const char *const *metrics_clients;
        size_t n_metrics_clients;
    } http;

    struct conf_replication {
        const char *listen;      /* replication.listen: "ADDR:PORT", "" = replication off */
        const char *const *peers;/* replication.peers: "host:port" list, bootstrap (default empty) */
        size_t n_peers;
        const char *cert;        /* replication.cert: node certificate with the peer role
                                    (default /etc/kmsd/pki/node.crt) */
        const char *key;         /* replication.key: its private key (default /etc/kmsd/pki/node.key) */
        const char *ca;          /* replication.ca: the cluster CA that signs node certificates
                                    (default /etc/kmsd/pki/ca.crt) */
        const char *ca_key;      /* replication.ca_key: CA private key, to sign joining nodes'
                                    CSRs ("" = this node cannot admit new nodes) */
        unsigned sync_acks;      /* replication.sync_acks: peers that must have a change before
                                    the client is answered (default 0 = after the local commit) */
        unsigned sync_timeout_ms;/* replication.sync_timeout_ms: wait for those acks (default 2000) */
        enum conf_sync_timeout on_sync_timeout; /* replication.on_sync_timeout: fail | degrade
                                    (default fail) */
        uint64_t max_clock_skew_ms; /* replication.max_clock_skew: refuse a peer whose wall clock
                                    is further off (default 5 s) */
        uint64_t max_lag_ms;     /* replication.max_lag: a peer silent longer no longer holds the
                                    change log back and is re-seeded by snapshot (default 24 h) */
        uint64_t startup_wait_ms; /* replication.startup_wait: after a start, how long the
                                    KMIP listener waits for the peers' changes */
        size_t max_frame;        /* replication.max_frame: largest peer frame (default 16 MiB) */
    } replication;

    struct conf_certify {
        const char *ca;          /* certify.ca: the CA that signs certificates for KMIP Certify /
                                    Re-certify ("" = those operations are off; default "").
                                    Never a CA in tls.client_ca or replication.ca */
        const char *ca_key;      /* certify.ca_key: its private key */
        unsigned days;           /* certify.days: validity when a request names no end (365) */
    } certify;

    void *priv_;                 /* owned allocations; do not touch */
} conf_t;

/*
 * Fill *c with the defaults. The strings point at static storage, so a
 * conf_t filled only by conf_defaults() owns nothing and needs no conf_free()
 * (calling conf_free() on it would be wrong: it was not heap-allocated).
 */
void conf_defaults(conf_t *c);

/*
 * Load the YAML file `path` over the defaults into a new conf_t (*out),
 * then apply the environment overrides KMSD_LISTEN (comma-separated
 * ADDR:PORT list, replaces `listen`), KMSD_LOG_LEVEL (`log.level`) and
 * KMSD_LOG_FORMAT (`log.format`) when they are set and not empty; a bad value is an error naming the variable
 * ("$KMSD_LISTEN: listen: ...", no offset).
 * On error returns KMS_ERR_CONFIG (bad content), KMS_ERR_IO (cannot read) or
 * KMS_ERR_NOMEM, leaves *out NULL and records one line in err (NULL ok):
 * "FILE:LINE:COL: KEY: what is wrong", with the byte offset in the file.
 * An empty file gives the defaults. Thread-safe (no global state).
 */
int conf_load(const char *path, conf_t **out, kms_error_t *err);

/*
 * As conf_load() but from memory: `name` is used in messages and `dir`
 * (absolute, or NULL = current directory) resolves relative paths. For
 * tests and fuzzers.
 */
int conf_load_buffer(const char *name, const char *dir, const void *data, size_t len,
                     conf_t **out, kms_error_t *err);

/* Free a conf_t from conf_load*(). NULL is a no-op. */
void conf_free(conf_t *c);

/*
 * Write the effective configuration to f as YAML that conf_load() accepts
 * (every setting, durations in ms, sizes in bytes); for `kmsd --check-config`.
 * Holds no secrets (the PIN itself is never in the config). Returns 0 or
 * KMS_ERR_IO.
 */
int conf_dump(const conf_t *c, FILE *f);

/* Called with a setting's dotted name ("tls.cert", "threads"). */
typedef void (*conf_key_cb)(const char *key, void *arg);

/*
 * Call cb once for every setting whose value differs between a and b, in
 * the schema's order. Returns 0, KMS_ERR_NOMEM or KMS_ERR_INVAL.
 */
int conf_changed(const conf_t *a, const conf_t *b, conf_key_cb cb, void *arg);

/* ---------------------------------------------------------- value parsers */
/* Shared with kmsctl; each returns 0 or KMS_ERR_CONFIG. */

/* "10s", "500ms", "2m", "1h", "1.5s" or plain seconds ("30") -> ms. */
int conf_parse_duration_ms(const char *s, uint64_t *ms_out);
/* "1MiB", "64KiB", "1GiB", "1MB", "10kB" or plain bytes -> bytes. */
int conf_parse_size(const char *s, uint64_t *bytes_out);
/* "1.2.3.4:5696", "[::1]:5696", "host.example:5696" -> host (no brackets,
 * NUL-terminated, at most hostlen-1 chars) and port 1..65535. */
int conf_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port_out);

#endif /* KMS_CONF_H */
