/*
 * admin/progress.c: ADMIN_PROGRESS messages on the admin connection.
 *
 * A long command (backup.create, backup.restore) reports how far it got
 * through admin_progress(); when the request carried ARG_PROGRESS = true,
 * that becomes one small ADMIN_PROGRESS message before the response, at
 * most one per 100 ms (a phase change and the last item always go out), so
 * kmsctl can draw a bar without polling a busy admin thread.
 *
 * It deliberately never fails a command: progress is advisory, and a
 * client that stops reading gets no more of it (the response write then
 * decides the connection's fate in socket.c).
 */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"

#define PROGRESS_INTERVAL_US 100000

static bool wants_progress(const admin_req_t *r)
{
    const ttlv_item_t *p = r->req ? ttlv_find(r->req, ADMIN_TAG_ARG_PROGRESS) : NULL;
    return p && p->type == TTLV_BOOLEAN && p->v.b;
}

void admin_progress(void *arg, const char *phase, const char *unit, int64_t done, int64_t total)
{
    admin_req_t *r = arg;
    if (!r || r->conn_fd < 0 || !wants_progress(r))
        return;
    int64_t now = kms_now_us();
    bool new_phase = strcmp(phase, r->progress_phase) != 0;
    bool last = total >= 0 && done >= total;
    if (!new_phase && !last && now - r->progress_us < PROGRESS_INTERVAL_US)
        return;
    r->progress_us = now;
    snprintf(r->progress_phase, sizeof r->progress_phase, "%s", phase);
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t out;
    kms_buf_init(&out, 4096);
    ttlv_item_t *m = a ? ttlv_new_struct(a, NULL, ADMIN_TAG_PROGRESS) : NULL;
    int rc = m && ttlv_new_textz(a, m, ADMIN_TAG_PROGRESS_PHASE, phase) &&
                     ttlv_new_textz(a, m, ADMIN_TAG_PROGRESS_UNIT, unit) &&
                     ttlv_new_long(a, m, ADMIN_TAG_PROGRESS_DONE, done) &&
                     ttlv_new_long(a, m, ADMIN_TAG_PROGRESS_TOTAL, total < 0 ? -1 : total)
                 ? ttlv_encode(m, &out)
                 : KMS_ERR_NOMEM;
    if (rc == 0)
        rc = admin_write_all(r->conn_fd, out.data, out.len);
    if (rc) {
        kms_log(KMS_LOG_WARN, "admin", "%s: progress not delivered (%s); sending no more",
                r->who, kms_strerror(rc));
        r->conn_fd = -1;
    }
    kms_buf_dispose(&out);
    kms_arena_free(a);
}
