/* tests/unit/util/logcap.h: what kms_log writes to stderr while a test
 * runs some code, read back from a temp file (the real log lines, from
 * every thread of the process). It does not parse them. */
#ifndef KMS_TEST_LOGCAP_H
#define KMS_TEST_LOGCAP_H

typedef struct kms_test_logcap {
    int fd;    /* the unlinked temp file stderr points to */
    int saved; /* stderr before */
} kms_test_logcap_t;

/* Point stderr at a new unlinked temp file. 0 or -1. */
int kms_test_logcap_begin(kms_test_logcap_t *c);
/* Restore stderr and return what was written to it meanwhile
 * (NUL-terminated, the caller frees it), or NULL. */
char *kms_test_logcap_end(kms_test_logcap_t *c);

#endif
