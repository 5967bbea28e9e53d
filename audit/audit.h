/*
 * audit/audit.h: the append-only, hash-chained audit log (audit/audit.c).
 *
 * Producers queue records; one writer thread numbers them, chains each
 * line to the SHA-256 of the one before, appends, fsyncs and rotates by
 * size. The on-disk line format and the chain are described in audit.c;
 * kmsctl's verifier reads them independently of this code.
 *
 * Each written record can also be copied, byte for byte as it was chained,
 * to syslog (RFC 5424, local socket, UDP or TCP) and to a JSON-lines file
 * or FIFO that a SIEM reads (audit/export.c). Copies never hold up the
 * log: an exporter that cannot take a record drops it and counts it.
 *
 * It deliberately knows nothing about KMIP or the admin protocol: callers
 * (server/, admin/) turn what happened into an audit_rec_t. It never holds
 * key material or passwords (the record has no field for them).
 */
#ifndef KMS_AUDIT_H
#define KMS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"

typedef struct audit audit_t;

typedef struct audit_options {
    const char *path;            /* the current file; rotated files are PATH.<UTC time>.<12-digit seq> */
    size_t rotate_size;          /* rotate before a line would make the file larger (0 = never) */
    bool fsync;                  /* fsync after each written batch */
    size_t max_queue;            /* records waiting for the writer (default 65536) */
    /* Exporters (NULL or "" = off). syslog: "local" (/dev/log),
     * "unix:/PATH" (datagram socket), "udp:HOST:PORT" (RFC 5426, one
     * datagram per record) or "tcp:HOST:PORT" (RFC 6587 octet counting). */
    const char *syslog;
    int syslog_facility;         /* RFC 5424 facility code; 0 = 10 (authpriv) */
    const char *json_lines;      /* file or FIFO: one record per line, appended */
} audit_options_t;

/* The all-zero hash the very first line chains to. */
#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/*
 * Open (or continue) the audit log and start its writer thread. An existing
 * file is continued: the sequence number and chain hash are taken from its
 * last complete line (a partial last line from a crash is cut off, with a
 * warning). Returns 0, KMS_ERR_IO, KMS_ERR_NOMEM.
 */
int audit_open(const audit_options_t *opt, audit_t **out);
/* Write everything queued, fsync, stop the writer and close. NULL ok. */
void audit_close(audit_t *au);
/* Block until every record queued before the call is written (and fsync'ed
 * when configured), at most 10 s. 0, KMS_ERR_TIMEOUT (the disk refuses
 * writes: the writer keeps the records and retries every second),
 * KMS_ERR_STATE (closing). For tests, admin "audit status" and shutdown. */
int audit_flush(audit_t *au);

/* One audit record. Strings may be NULL (written as ""). */
typedef struct audit_rec {
    const char *kind;            /* "kmip" | "admin" */
    const char *identity;
    const char *tenant;
    const char *address;
    const char *operation;       /* "Get", "tenant.add", ... */
    const char *object_id;
    const char *result;          /* "Success", "Operation Failed", "ok", "error" */
    const char *reason;          /* result reason or error text */
    long batch_count;            /* -1 = omit */
} audit_rec_t;

/* Queue a record; never does I/O itself. Blocks only when the queue is full
 * (backpressure on worker threads; never call it from a loop thread with a
 * full queue in mind: the writer drains within one fsync). Returns 0,
 * KMS_ERR_NOMEM, KMS_ERR_STATE (closed). Any thread. */
int audit_write(audit_t *au, const audit_rec_t *rec);

/* Chain state for "audit status": records written since open, the last
 * sequence number and hash, the current path. */
typedef struct audit_status {
    uint64_t last_seq;
    char last_hash[65];
    uint64_t written;
    uint64_t rotations;
    uint64_t errors;             /* failed writes (the writer keeps and retries the records) */
} audit_status_t;
int audit_get_status(audit_t *au, audit_status_t *out);

/* What the writer is doing, read without waiting for any I/O (metrics,
 * readiness). */
typedef struct audit_counters {
    uint64_t queued;             /* records waiting for the writer */
    uint64_t written;            /* records written since open */
    uint64_t errors;             /* failed writes since open */
    bool failing;                /* the last write failed: records wait for a retry */
    uint64_t syslog_sent, syslog_dropped; /* exporter copies sent / dropped */
    uint64_t json_sent, json_dropped;
} audit_counters_t;
/* Any thread; au NULL gives zeros. */
void audit_get_counters(audit_t *au, audit_counters_t *out);

#endif /* KMS_AUDIT_H */
