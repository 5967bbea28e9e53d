/*
 * kmsctl/cmd_rotate.c: `kmsctl rotate master|store-key|status`, over kmsd's
 * admin socket, while kmsd keeps serving.
 *
 *   rotate master      new master key (token or key file), every data-store
 *                      key re-wrapped under it in one commit; prints the new
 *                      and the kept previous key
 *   rotate store-key   new data-store key; objects are re-encrypted onto it
 *                      in the background. Waits and shows progress (a bar on
 *                      a terminal) unless --no-wait.
 *   rotate status      progress of the re-encryption, current keys
 *
 * It deliberately holds no key logic: kmsd does the work (keys/rotate.c, keys/reencrypt.c).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"
#include "kmsctl/progress.h"

static void usage_rotate(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] rotate master\n"
            "       kmsctl [--config FILE] [--json] rotate store-key [--no-wait]\n"
            "       kmsctl [--config FILE] [--json] rotate status\n\n"
            "master     create a new master key (PKCS#11: '<hsm.key_label>-<n>' in the token;\n"
            "           file: '<hsm.key_file>.<n>') and re-wrap every data-store key under it,\n"
            "           online. kmsd records the new key in its database and uses it from\n"
            "           then on (also after a restart). The previous key is kept: remove it\n"
            "           yourself after a backup.\n"
            "store-key  create a new data-store key and re-encrypt every object onto it in\n"
            "           the background, online; waits with a progress display unless\n"
            "           --no-wait (then follow it with 'kmsctl rotate status'). A restart\n"
            "           resumes an unfinished re-encryption by itself.\n"
            "status     re-encryption progress and the current keys.\n\n"
            "exit status: 0 ok, 1 refused or objects that could not be re-encrypted,\n"
            "2 usage, 3 kmsd unreachable\n");
}

static const char *field_str(const ttlv_item_t *resp, const char *name)
{
    return kmsctl_rec_text(ttlv_find(resp, ADMIN_TAG_RECORD), name);
}

static int64_t field_num(const ttlv_item_t *resp, const char *name)
{
    return kmsctl_rec_long(ttlv_find(resp, ADMIN_TAG_RECORD), name, -1);
}

static int call(kms_arena_t *a, const char *cmd, ttlv_item_t **resp)
{
    ttlv_item_t *req = admin_request_new(a, cmd);
    return req ? kmsctl_admin_call(a, req, resp) : KMSCTL_EXIT_FAIL;
}

static bool running(const char *state)
{
    return strcmp(state, "starting") == 0 || strcmp(state, "counting") == 0 ||
           strcmp(state, "running") == 0;
}

/* Poll rotate.status until the pass for `dsk` is over, with a progress
 * bar on a terminal; the final status is *last, in *arena_out (the caller
 * frees it). */
static int wait_done(int64_t dsk, kms_arena_t **arena_out, ttlv_item_t **last)
{
    kmsctl_progress_t *bar = kmsctl_progress_wanted(kmsctl_g.json)
                                 ? kmsctl_progress_new(stderr, "re-encrypting", true)
                                 : NULL;
    int ec = 0;
    for (;;) {
        ttlv_item_t *resp = NULL;
        kms_arena_free(*arena_out);
        *arena_out = kms_arena_new(0);
        if (!*arena_out) {
            ec = KMSCTL_EXIT_FAIL;
            break;
        }
        if ((ec = call(*arena_out, "rotate.status", &resp)) != 0)
            break;
        *last = resp;
        const char *st = field_str(resp, "state");
        bool ours = field_num(resp, "target_dsk") == dsk;
        if (ours && field_num(resp, "total") > 0)
            kmsctl_progress_update(bar, NULL, "objects", field_num(resp, "done"),
                                   field_num(resp, "total"));
        if (ours && !running(st))
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kmsctl_progress_end(bar);
    return ec;
}

int cmd_rotate(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_rotate(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    bool no_wait = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_rotate(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(argv[i], "--no-wait") == 0 && strcmp(sub, "store-key") == 0) {
            no_wait = true;
        } else {
            usage_rotate(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    const char *cmd = strcmp(sub, "master") == 0      ? "rotate.master"
                      : strcmp(sub, "store-key") == 0 ? "rotate.store-key"
                      : strcmp(sub, "status") == 0    ? "rotate.status"
                                                      : NULL;
    if (!cmd) {
        usage_rotate(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    int ec = call(a, cmd, &resp);
    if (ec)
        goto out;
    if (strcmp(sub, "master") == 0) {
        if (kmsctl_g.json)
            kmsctl_print_records(stdout, resp, true);
        else
            printf("master key is now '%s' (%lld data-store keys re-wrapped)\n"
                   "the previous master key '%s' was kept: remove it after a backup\n",
                   field_str(resp, "master"), (long long)field_num(resp, "dsks_rewrapped"),
                   field_str(resp, "previous"));
    } else if (strcmp(sub, "status") == 0) {
        kmsctl_print_records(stdout, resp, true);
        if (field_num(resp, "failed") > 0)
            ec = KMSCTL_EXIT_FAIL;
    } else {
        int64_t dsk = field_num(resp, "dsk");
        if (no_wait) {
            if (kmsctl_g.json)
                kmsctl_print_records(stdout, resp, true);
            else
                printf("data-store key %lld is current; re-encrypting in the background "
                       "(kmsctl rotate status)\n", (long long)dsk);
            goto out;
        }
        ttlv_item_t *last = NULL;
        kms_arena_free(a);
        a = NULL;
        ec = wait_done(dsk, &a, &last);
        if (ec)
            goto out;
        if (kmsctl_g.json)
            kmsctl_print_records(stdout, last, true);
        else
            printf("data-store key %lld is current: %lld objects re-encrypted, %lld failed\n",
                   (long long)dsk, (long long)field_num(last, "done"),
                   (long long)field_num(last, "failed"));
        if (field_num(last, "failed") > 0 || strcmp(field_str(last, "state"), "stopped") == 0)
            ec = KMSCTL_EXIT_FAIL;
    }
out:
    kms_arena_free(a);
    return ec;
}
