/*
 * kmsctl/admin_client.h: private to kmsctl. Talking to kmsd's admin Unix
 * socket through admin/'s client (the protocol is described in
 * admin/admin.h), printing its answers as text or JSON, and the audit
 * chain verifier.
 */
#ifndef KMSCTL_ADMIN_CLIENT_H
#define KMSCTL_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "admin/admin.h" /* the protocol and client part only */
#include "common/kms.h"
#include "conf/conf.h"
#include "ttlv/ttlv.h"

/* Load kmsctl_g.config_path. Returns an exit code (0 or
 * KMSCTL_EXIT_UNREACHABLE after printing the error). */
int kmsctl_load_conf(conf_t **out);

/*
 * Send `req` to the admin socket of the loaded config and read the answer.
 * Returns an exit code: 0 (answer in *resp_out, STATUS 0), KMSCTL_EXIT_FAIL
 * (kmsd refused: its message printed to stderr), KMSCTL_EXIT_UNREACHABLE
 * (cannot connect / protocol error, printed). The answer lives in `a`.
 */
int kmsctl_admin_call(kms_arena_t *a, ttlv_item_t *req, ttlv_item_t **resp_out);
/* The same, passing the open file `pass_fd` to kmsd with the request
 * (SCM_RIGHTS), for backup and restore; -1 = none. */
int kmsctl_admin_call_fd(kms_arena_t *a, ttlv_item_t *req, int pass_fd, ttlv_item_t **resp_out);
/* The same, with the request asking for ADMIN_PROGRESS messages when `cb`
 * is not NULL; each is passed to cb(cb_arg, ...) (e.g. kmsctl_progress_cb
 * with a bar). */
int kmsctl_admin_call_progress(kms_arena_t *a, ttlv_item_t *req, int pass_fd,
                               admin_progress_cb cb, void *cb_arg, ttlv_item_t **resp_out);

/* Print the RECORDs of a response: as one JSON object (single) or array
 * with --json, else as "name: value" lines (single) or a table. */
void kmsctl_print_records(FILE *f, const ttlv_item_t *resp, bool single);

/* FIELD `name` of RECORD `rec` (may be NULL): its text ("" when absent or
 * not text), its number (dflt when absent or not a number), its value. */
const char *kmsctl_rec_text(const ttlv_item_t *rec, const char *name);
int64_t kmsctl_rec_long(const ttlv_item_t *rec, const char *name, int64_t dflt);
const ttlv_item_t *kmsctl_rec_value(const ttlv_item_t *rec, const char *name);

/* Read a whole (small) file; NUL-terminated, caller frees. 0 or KMS_ERR_*. */
int kmsctl_read_file(const char *path, size_t max, char **out, size_t *len_out);

/*
 * Verify the hash chain of audit files given in chronological order. With
 * `cont` false the first line must chain to the genesis hash (seq 1);
 * with `cont` true the first line may continue a file not given. Returns
 * 0 (intact), KMS_ERR_PROTO (broken: err says "FILE:LINE: reason"), or
 * KMS_ERR_IO / KMS_ERR_CRYPTO (cannot read or hash: err says which).
 * *lines_out counts the lines checked; last_hash_out (65 bytes, may be
 * NULL) receives the final chain hash.
 */
int kmsctl_audit_verify_files(char *const *files, size_t n, bool cont, uint64_t *lines_out,
                              char *last_hash_out, kms_error_t *err);

#endif
