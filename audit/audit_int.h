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

struct audit {
    char *path;
    size_t rotate_size;
    bool do_fsync;
    size_t max_queue;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;   /* writer waits for items */
    pthread_cond_t cv_space;  /* producers wait for room; flushers wait for done */
    audit_item_t *head, *tail;
    size_t queued;
    uint64_t enqueued_total;  /* items ever queued */
    uint64_t done_total;      /* items written (and synced) */
    bool stopping;
    bool started;
    bool writer_idle;         /* waiting on cv_work with an empty queue */
    pthread_t thread;

    /* writer-owned (read under mu for status) */
    int fd;
    size_t file_size;
    uint64_t seq;
    char last_hash[65];
    uint64_t written, rotations, errors;
    bool failing;             /* the last batch could not be written */
    audit_export_t *exp;      /* NULL = no exporter */
};

#endif /* KMS_AUDIT_INT_H */
