/*
 * audit/audit.h: the append-only, hash-chained audit log (audit/audit.c).
 *
 * Producers queue records; one writer thread numbers them, chains each
 * line to the SHA-256 of the one before, appends, fsyncs and rotates by
 * size. The on-disk line format and the chain are described in audit.c;
 * kmsctl's verifier reads them independently of this code. Records the
 * disk refuses (full, I/O errors) wait in a bounded backlog and are
 * written, in order and from the byte where writing stopped, once it
 * accepts them again; a producer can wait until its own record is on disk
 * (a ticket), which is how kmsd makes records durable before answering.
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
    size_t max_queue;            /* the backlog: records not yet on disk (default 65536);
                                    audit_backlog_full() reports when it is reached */
    /* Exporters (NULL or "" = off). syslog: "local" (/dev/log),
     * "unix:/PATH" (datagram socket), "udp:HOST:PORT" (RFC 5426, one
     * datagram per record) or "tcp:HOST:PORT" (RFC 6587 octet counting). */
    const char *syslog;
    int syslog_facility;         /* RFC 5424 facility code; 0 = 10 (authpriv) */
    const char *json_lines;      /* file or FIFO: one record per line, appended */
} audit_options_t;

/* Called by the writer thread (no lock held) each time records became
 * durable; the callee reads audit_durable_ticket(). Keep it short. */
typedef void (*audit_notify_cb)(void *arg);

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
 * writes: the writer keeps the records and retries, at least every
 * second), KMS_ERR_STATE (closing). For tests and shutdown. */
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

/* Queue a record; never does I/O and never blocks (an event loop calls
 * it). The backlog limit is enforced by callers, before the work the
 * record describes (audit_backlog_full): a record of work already done is
 * always kept, so the backlog may exceed max_queue by the requests in
 * flight. *ticket_out (may be NULL) identifies the record for
 * audit_wait() / audit_durable_ticket(). Returns 0, KMS_ERR_NOMEM,
 * KMS_ERR_INVAL (a field too long), KMS_ERR_STATE (closed). Any thread. */
int audit_write_ticket(audit_t *au, const audit_rec_t *rec, uint64_t *ticket_out);
int audit_write(audit_t *au, const audit_rec_t *rec);

/* Every record with a ticket <= this is on disk (and fsynced when
 * configured). Lock-free; any thread. */
uint64_t audit_durable_ticket(audit_t *au);

/* Wait until record `ticket` is on disk, at most timeout_ms. 0,
 * KMS_ERR_IO at once when the disk is refusing writes (the record stays
 * in the backlog), KMS_ERR_TIMEOUT, KMS_ERR_STATE (closing). Blocking:
 * not on an event loop. */
int audit_wait(audit_t *au, uint64_t ticket, unsigned timeout_ms);

/* True while the backlog holds max_queue records or more. Any thread. */
bool audit_backlog_full(audit_t *au);

/* The writer's durability callback (NULL = none); set before traffic. */
void audit_set_notify(audit_t *au, audit_notify_cb cb, void *arg);

/* Chain state for "audit status": records written since open, the last
 * sequence number and hash on disk, the backlog. */
typedef struct audit_status {
    uint64_t last_seq;
    char last_hash[65];
    uint64_t written;
    uint64_t rotations;
    uint64_t errors;             /* failed writes and fsyncs (the records are kept and retried) */
    uint64_t backlog;            /* records not yet on disk */
    bool failing;                /* the disk is refusing writes right now */
    char last_error[128];        /* what it said ("" when none) */
} audit_status_t;
/* Flushes first (at most 10 s) unless the writer is failing, so it answers
 * at once on a full disk. 0, or the flush's error (the numbers are filled
 * in either case). */
int audit_get_status(audit_t *au, audit_status_t *out);

/* What the writer is doing, read without waiting for any I/O (metrics,
 * readiness). */
typedef struct audit_counters {
    uint64_t queued;             /* the backlog: records not yet on disk */
    uint64_t written;            /* records written since open */
    uint64_t errors;             /* failed writes since open */
    bool failing;                /* the last write failed: records wait for a retry */
    uint64_t syslog_sent, syslog_dropped; /* exporter copies sent / dropped */
    uint64_t json_sent, json_dropped;
} audit_counters_t;
/* Any thread; au NULL gives zeros. */
void audit_get_counters(audit_t *au, audit_counters_t *out);

#endif /* KMS_AUDIT_H */
