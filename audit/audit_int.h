/*
 * audit/audit_int.h: private to audit/ (and its unit tests, which look at
 * the writer's counters): the log's state shared by the writer thread and
 * the producers.
 *
 * It deliberately declares no functions: audit/audit.h is the interface.
 */
#ifndef KMS_AUDIT_INT_H
#define KMS_AUDIT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"

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
};

#endif /* KMS_AUDIT_INT_H */
