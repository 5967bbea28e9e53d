/*
 * kmsctl/cmd_backup.c: `kmsctl backup` and `kmsctl restore`.
 *
 * kmsctl opens the backup file itself (created 0600, never overwritten
 * unless --force; with --force the new backup is written to a 0600
 * temporary file next to it and renamed over the old one only once kmsd
 * reported success, so a failed backup never destroys the previous one) and hands the open descriptor to kmsd over the admin
 * socket, so kmsd writes or reads exactly that file with kmsctl's rights and
 * never picks a path itself. The backup key is a passphrase (first line of
 * --passphrase-file; kmsd stretches it with Argon2id, 64 MiB, t=3) or a
 * 32-byte key file (raw, or 64 hex digits). Restore goes onto a running kmsd
 * that holds no objects yet (a fresh `kmsctl init` + kmsd), whatever its
 * master key. On a terminal (and without --json) a progress bar on stderr
 * follows kmsd's ADMIN_PROGRESS messages: objects written; for a restore
 * the bytes verified, then the objects restored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"
#include "kmsctl/progress.h"

static void usage_backup(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] backup --out FILE (--passphrase-file F | --key-file F) [--force]\n"
            "       kmsctl [--config FILE] [--json] restore --in FILE (--passphrase-file F | --key-file F)\n\n"
            "backup   an online, consistent snapshot of kmsd's objects, tenants and clients,\n"
            "         every key re-encrypted under the backup key (AES-256-GCM, whole file\n"
            "         authenticated), so it restores on a server with another master key.\n"
            "restore  onto a running kmsd that holds no objects yet; keys are re-sealed under\n"
            "         its own keyring. Existing clients of that server are kept.\n"
            "--passphrase-file F  first line of F; stretched with Argon2id (salt in the file)\n"
            "--key-file F         32 random bytes, raw or as 64 hex digits\n"
            "On a terminal a progress bar is drawn on stderr (not with --json).\n\n"
            "exit status: 0 ok, 1 refused or failed, 2 usage or bad key file, 3 kmsd unreachable\n");
}

/* Passphrase (first line) or key (32 bytes raw / 64 hex) into the request. */
static int add_secret(kms_arena_t *a, ttlv_item_t *req, const char *pf, const char *kf)
{
    char *buf = NULL;
    size_t len = 0;
    int ec = KMSCTL_EXIT_USAGE;
    if (kmsctl_read_file(pf ? pf : kf, 4096, &buf, &len) != 0) {
        fprintf(stderr, "kmsctl: cannot read %s\n", pf ? pf : kf);
        return KMSCTL_EXIT_USAGE;
    }
    if (pf) {
        size_t n = strcspn(buf, "\r\n");
        buf[n] = '\0';
        if (n < 8)
            fprintf(stderr, "kmsctl: the passphrase must have at least 8 characters\n");
        else if (ttlv_new_textz(a, req, ADMIN_TAG_ARG_PASSPHRASE, buf))
            ec = 0;
    } else {
        uint8_t *raw = NULL;
        size_t rl = 0;
        size_t tl = len;
        while (tl && (buf[tl - 1] == '\n' || buf[tl - 1] == '\r'))
            tl--;
        if (len == 32) {
            if (ttlv_new_bytes(a, req, ADMIN_TAG_ARG_KEY, buf, 32))
                ec = 0;
        } else if (tl == 64 && kms_hex_decode(buf, tl, &raw, &rl) == 0 && rl == 32) {
            if (ttlv_new_bytes(a, req, ADMIN_TAG_ARG_KEY, raw, 32))
                ec = 0;
        } else {
            fprintf(stderr, "kmsctl: %s must hold 32 bytes (raw or 64 hex digits); e.g. "
                            "openssl rand -hex 32 > %s\n", kf, kf);
        }
        if (raw) {
            kms_wipe(raw, rl);
            free(raw);
        }
    }
    kms_wipe(buf, len);
    free(buf);
    return ec;
}

static int run(bool restore, int argc, char **argv)
{
    const char *path = NULL, *pf = NULL, *kf = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage_backup(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(o, "--force") == 0 && !restore) {
            force = true;
        } else if (v && strcmp(o, restore ? "--in" : "--out") == 0) {
            path = v;
            i++;
        } else if (v && strcmp(o, "--passphrase-file") == 0) {
            pf = v;
            i++;
        } else if (v && strcmp(o, "--key-file") == 0) {
            kf = v;
            i++;
        } else {
            usage_backup(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (!path || (!pf == !kf)) {
        usage_backup(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    int ec = KMSCTL_EXIT_FAIL, fd = -1;
    bool created = false;
    kmsctl_progress_t *bar = NULL;
    char tmp[4096];
    const char *target = path; /* the file kmsd writes into */
    ttlv_item_t *req = admin_request_new(a, restore ? "backup.restore" : "backup.create");
    if (!req)
        goto out;
    ec = add_secret(a, req, pf, kf);
    if (ec)
        goto out;
    if (restore) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } else if (force) {
        /* Never truncate the previous backup: write beside it, rename on
         * success. mkstemp creates the file 0600 with O_EXCL. */
        int n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
            errno = ENAMETOOLONG;
        } else {
            fd = mkostemp(tmp, O_CLOEXEC);
            created = fd >= 0;
            target = tmp;
        }
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        created = fd >= 0;
    }
    if (fd < 0) {
        fprintf(stderr, "kmsctl: %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (use --force to replace it)" : "");
        ec = KMSCTL_EXIT_USAGE;
        goto out;
    }
    ttlv_item_t *resp = NULL;
    if (kmsctl_progress_wanted(kmsctl_g.json))
        bar = kmsctl_progress_new(stderr, restore ? "restore" : "backup", true);
    ec = kmsctl_admin_call_progress(a, req, fd, bar ? kmsctl_progress_cb : NULL, bar, &resp);
    kmsctl_progress_end(bar);
    bar = NULL;
    if (ec)
        goto out;
    if (target != path) {
        /* kmsd fsync'ed the data; make the replacement atomic. */
        if (rename(target, path) != 0) {
            fprintf(stderr, "kmsctl: cannot replace %s: %s (the new backup is %s)\n", path,
                    strerror(errno), target);
            created = false; /* keep the complete new backup */
            ec = KMSCTL_EXIT_FAIL;
            goto out;
        }
        created = false;
    }
    if (kmsctl_g.json) {
        kmsctl_print_records(stdout, resp, true);
    } else {
        const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
        const ttlv_item_t *f = rec ? ttlv_find(rec, ADMIN_TAG_FIELD) : NULL;
        const ttlv_item_t *v = f ? ttlv_find(f, ADMIN_TAG_FIELD_LONG) : NULL;
        printf("%s %lld objects %s %s\n", restore ? "restored" : "backed up",
               v ? (long long)v->v.i64 : -1LL, restore ? "from" : "to", path);
    }
out:
    if (fd >= 0)
        close(fd);
    if (ec && created)
        unlink(target); /* never leave a partial backup behind */
    kms_arena_free(a); /* wiped: held the passphrase or key */
    return ec;
}

int cmd_backup(int argc, char **argv)
{
    return run(false, argc, argv);
}

int cmd_restore(int argc, char **argv)
{
    return run(true, argc, argv);
}
