/*
 * kmsctl/cmd_tenant.c: `kmsctl tenant add|list|remove`, over kmsd's admin
 * socket. A tenant owns objects and clients; removing one that still owns
 * either is refused unless --force, which deletes them permanently.
 */
#include <stdio.h>
#include <string.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

static void usage_tenant(FILE *f)
{
    fprintf(f, "usage: kmsctl [--config FILE] [--json] tenant add NAME\n"
               "       kmsctl [--config FILE] [--json] tenant list\n"
               "       kmsctl [--config FILE] [--json] tenant remove NAME [--force]\n\n"
               "remove refuses a tenant that still owns objects or clients; --force\n"
               "deletes its objects (their keys are lost for good) and clients too,\n"
               "1000 objects per commit (kmsd logs the progress); without --timeout it\n"
               "waits as long as that takes, and a removal cut short can be run again.\n\n"
               "exit status: 0 ok, 1 refused by kmsd, 2 usage, 3 kmsd unreachable\n");
}

int cmd_tenant(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_tenant(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    const char *name = NULL;
    bool force = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_tenant(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            usage_tenant(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    const char *cmd;
    if (strcmp(sub, "add") == 0 && name && !force)
        cmd = "tenant.add";
    else if (strcmp(sub, "list") == 0 && !name && !force)
        cmd = "tenant.list";
    else if ((strcmp(sub, "remove") == 0 || strcmp(sub, "rm") == 0) && name)
        cmd = "tenant.remove";
    else {
        usage_tenant(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    int ec = KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, cmd);
    if (!req || (name && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_TENANT, name)) ||
        (force && !ttlv_new_bool(a, req, ADMIN_TAG_ARG_FORCE, true)))
        goto out;
    if (force && kmsctl_g.timeout_ms < 0)
        kmsctl_g.timeout_ms = 0; /* a large tenant takes a while */
    ec = kmsctl_admin_call(a, req, &resp);
    if (ec)
        goto out;
    if (strcmp(cmd, "tenant.list") == 0)
        kmsctl_print_records(stdout, resp, false);
    else if (kmsctl_g.json)
        kmsctl_print_records(stdout, resp, true);
    else
        printf("tenant %s %s\n", name, strcmp(cmd, "tenant.add") == 0 ? "added" : "removed");
out:
    kms_arena_free(a);
    return ec;
}
