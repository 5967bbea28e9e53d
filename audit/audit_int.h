/*
 * audit/audit_int.h: private to audit/ (and its unit tests, which look at
 * the writer's counters): the log's state shared by the writer thread and
 * the producers.
 *
 * Besides the state, the exporters' interface between audit.c (the writer)
 * and export.c.
 */
#ifndef KMS_AUDIT_INT_H
#define KMS_AUDIT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"

/* The exporters of one log (export.c); owned by the writer thread. */
typedef struct audit_export audit_export_t;

/* Set up the exporters named in opt; *out stays NULL when none is. A
 * target that cannot be reached yet is retried later, not an error.
 * 0, KMS_ERR_INVAL (bad syslog target), KMS_ERR_NOMEM. */
int audit_export_new(const audit_options_t *opt, audit_export_t **out);
void audit_export_free(audit_export_t *x);
/* Writer thread, after `lines` (complete lines, each ending in '\n') are
 * on disk: copy each record to every exporter. Never blocks. */
void audit_export_lines(audit_export_t *x, const char *lines, size_t len);
/* Copies sent and dropped (any thread). */
void audit_export_counters(audit_export_t *x, audit_counters_t *out);

typedef struct audit_item {
    struct audit_item *next;
    size_t len;
    char body[]; /* the fields between "seq" and "prev", no braces */
} audit_item_t;

/* The writer thread's state (audit.c, "writer"): the encoded lines not
 * yet known to be on disk and the hash chain after them. */
typedef struct writer {
    kms_buf_t out;
    uint64_t out_items;        /* records in `out` */
    uint64_t out_seq;          /* chain state after the last line in `out` */
    char out_hash[65];
    audit_item_t *carry;       /* taken from the queue, not yet encoded (rotation) */
    bool rotate_due;           /* rotate once `out` is on disk */
    unsigned backoff_ms;
} writer_t;

struct audit {
    char *path;
    size_t rotate_size;
    bool do_fsync;
    size_t max_queue;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;   /* writer waits for items (and sleeps between retries) */
    pthread_cond_t cv_space;  /* flushers and waiters wait for progress */
    audit_item_t *head, *tail;
    size_t queued;            /* the backlog: queued + taken by the writer, not yet on disk */
    uint64_t enqueued_total;  /* items ever queued (a record's ticket is this after it) */
    uint64_t done_total;      /* items finished: on disk, or given up at close */
    atomic_uint_fast64_t durable_total; /* items on disk (and fsynced when do_fsync) */
    bool stopping;
    bool started;
    bool writer_idle;         /* waiting on cv_work with an empty queue */
    bool failing;             /* the last write or fsync failed; retrying */
    char last_error[128];
    audit_notify_cb notify;
    void *notify_arg;
    pthread_t thread;

    /* writer-owned (read under mu for status) */
    int fd;
    size_t file_size;         /* bytes written to the current file */
    size_t synced_size;       /* of which known durable (fsynced, or written when !do_fsync) */
    uint64_t seq;             /* last sequence number encoded */
    char last_hash[65];       /* hash of the last line encoded */
    uint64_t durable_seq;     /* ... and of the last line on disk */
    char durable_hash[65];
    uint64_t written, rotations, errors;
    audit_export_t *exp;      /* NULL = no exporter */
    writer_t w;               /* the writer thread's own state (see audit.c) */
};

#endif /* KMS_AUDIT_INT_H */
