/*
 * kmsctl/admin_client.c: kmsctl's use of kmsd's admin socket (the protocol
 * and its client side live in admin/): finding the socket in kmsd's own
 * configuration, turning the outcome of a call into kmsctl's messages and
 * exit codes, and printing records as --json asks.
 *
 * It deliberately holds no protocol code of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

int kmsctl_load_conf(conf_t **out)
{
    kms_error_t err;
    kms_error_clear(&err);
    int rc = conf_load(kmsctl_g.config_path, out, &err);
    if (rc) {
        fprintf(stderr, "kmsctl: %s\n", err.msg[0] ? err.msg : kms_strerror(rc));
        return KMSCTL_EXIT_UNREACHABLE;
    }
    return 0;
}

int kmsctl_read_file(const char *path, size_t max, char **out, size_t *len_out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return KMS_ERR_IO;
    kms_buf_t b;
    kms_buf_init(&b, max);
    char tmp[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0 && rc == 0)
        rc = kms_buf_append(&b, tmp, n);
    if (!rc && ferror(f))
        rc = KMS_ERR_IO;
    if (!rc)
        rc = kms_buf_append_byte(&b, 0);
    fclose(f);
    kms_wipe(tmp, sizeof(tmp)); /* the file may be a password file */
    if (rc) {
        kms_buf_dispose_wipe(&b);
        return rc;
    }
    size_t len = 0;
    *out = (char *)kms_buf_take(&b, &len);
    if (len_out)
        *len_out = len - 1;
    return 0;
}

int kmsctl_admin_call(kms_arena_t *a, ttlv_item_t *req, ttlv_item_t **resp_out)
{
    return kmsctl_admin_call_fd(a, req, -1, resp_out);
}

int kmsctl_admin_call_fd(kms_arena_t *a, ttlv_item_t *req, int pass_fd, ttlv_item_t **resp_out)
{
    return kmsctl_admin_call_progress(a, req, pass_fd, NULL, NULL, resp_out);
}

int kmsctl_admin_call_progress(kms_arena_t *a, ttlv_item_t *req, int pass_fd,
                               admin_progress_cb cb, void *cb_arg, ttlv_item_t **resp_out)
{
    conf_t *c = NULL;
    int ec = kmsctl_load_conf(&c);
    if (ec)
        return ec;
    if (cb && !ttlv_new_bool(a, req, ADMIN_TAG_ARG_PROGRESS, true)) {
        conf_free(c);
        return KMSCTL_EXIT_FAIL;
    }
    ttlv_item_t *resp = NULL;
    kms_error_t err;
    kms_error_clear(&err);
    /* Backup and restore (they pass a file) take as long as the data does;
     * everything else answers within seconds unless kmsd is stuck. */
    long t = kmsctl_g.timeout_ms >= 0 ? kmsctl_g.timeout_ms : pass_fd >= 0 ? 0 : 60000;
    admin_call_set_timeout((unsigned)t);
    int rc = admin_call_progress(c->admin.socket, a, req, pass_fd, cb, cb_arg, &resp, &err);
    if (rc == KMS_ERR_UNAVAIL) {
        fprintf(stderr, "kmsctl: %s (is kmsd running? see admin.socket in %s)\n",
                kms_error_msg(&err), kmsctl_g.config_path);
        ec = KMSCTL_EXIT_UNREACHABLE;
        goto out;
    }
    if (rc) {
        fprintf(stderr, "kmsctl: %s\n", kms_error_msg(&err));
        ec = KMSCTL_EXIT_UNREACHABLE;
        goto out;
    }
    const char *m = "";
    int st = admin_response_status(resp, &m);
    if (st != 0) {
        fprintf(stderr, "kmsctl: kmsd refused: %s%s%s\n", kms_strerror(st), *m ? ": " : "", m);
        ec = st == KMS_ERR_NOTSUP ? KMSCTL_EXIT_UNREACHABLE : KMSCTL_EXIT_FAIL;
        if (st == KMS_ERR_INVAL)
            ec = KMSCTL_EXIT_USAGE;
        goto out;
    }
    *resp_out = resp;
    ec = 0;
out:
    conf_free(c);
    return ec;
}

void kmsctl_print_records(FILE *f, const ttlv_item_t *resp, bool single)
{
    admin_print_records(f, resp, single, kmsctl_g.json != 0);
}

const ttlv_item_t *kmsctl_rec_value(const ttlv_item_t *rec, const char *name)
{
    for (const ttlv_item_t *f = rec ? ttlv_find(rec, ADMIN_TAG_FIELD) : NULL; f;
         f = ttlv_find_next(f, ADMIN_TAG_FIELD))
        if (strcmp(admin_field_name(f), name) == 0)
            return admin_field_value(f);
    return NULL;
}

const char *kmsctl_rec_text(const ttlv_item_t *rec, const char *name)
{
    const ttlv_item_t *v = kmsctl_rec_value(rec, name);
    return v && v->type == TTLV_TEXT_STRING ? ttlv_text(v) : "";
}

int64_t kmsctl_rec_long(const ttlv_item_t *rec, const char *name, int64_t dflt)
{
    const ttlv_item_t *v = kmsctl_rec_value(rec, name);
    return v && v->type == TTLV_LONG_INTEGER ? v->v.i64 : dflt;
}
