/*
 * kmsctl/cmd_status.c: `kmsctl status`: ask kmsd over the admin socket how
 * it is (version, uptime, connections, objects, tenants, HSM, store and
 * audit health). Exit 0 when kmsd answers and reports "ok", 1 when it
 * answers "degraded", 3 when it cannot be reached.
 */
#include <stdio.h>
#include <string.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

int cmd_status(int argc, char **argv)
{
    if (argc > 1) {
        bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        fprintf(help ? stdout : stderr,
                "usage: kmsctl [--config FILE] [--json] status\n\n"
                "Show kmsd's version, uptime, connections, object/tenant/client counts,\n"
                "HSM, store and audit state, from its admin socket (admin.socket in FILE).\n\n"
                "exit status: 0 healthy, 1 degraded or refused, 2 usage, 3 kmsd unreachable\n");
        return help ? KMSCTL_EXIT_OK : KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, "status");
    int ec = req ? kmsctl_admin_call(a, req, &resp) : KMSCTL_EXIT_FAIL;
    if (ec == 0) {
        kmsctl_print_records(stdout, resp, true);
        /* Degraded is a failure for scripts and monitoring. */
        const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
        for (const ttlv_item_t *f = rec ? ttlv_find(rec, ADMIN_TAG_FIELD) : NULL; f;
             f = ttlv_find_next(f, ADMIN_TAG_FIELD)) {
            const ttlv_item_t *n = ttlv_find(f, ADMIN_TAG_FIELD_NAME);
            const ttlv_item_t *v = ttlv_find(f, ADMIN_TAG_FIELD_TEXT);
            if (n && v && strcmp(ttlv_text(n), "health") == 0 && strcmp(ttlv_text(v), "ok") != 0)
                ec = KMSCTL_EXIT_FAIL;
        }
    }
    kms_arena_free(a);
    return ec;
}
