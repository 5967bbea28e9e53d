/*
 * tests/fuzz/fuzz_keyring.h: the temporary directory and the file keyring
 * (a master key file, one data-store key, current) that the fuzz targets
 * running real store code share (fuzz_kmip, fuzz_admin, fuzz_backup). The
 * directory is on /dev/shm when present. Included by one .c file per
 * target; it deliberately opens no store (each target has its own).
 */
#ifndef FUZZ_KEYRING_H
#define FUZZ_KEYRING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/kms.h"
#include "hsm/hsm.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz setup: %s\n", what);
    abort();
}

/* Make "kmsd-fuzz-<name>.XXXXXX" into dir (dirlen bytes) and a file
 * keyring in it; aborts on failure. */
static void fuzz_dir_and_keyring(const char *name, char *dir, size_t dirlen, hsm_t **hsm_out,
                                 hsm_keyring_t **kr_out)
{
    kms_error_t err = {0};
    char path[512];
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, dirlen, "%s/kmsd-fuzz-%s.XXXXXX", base, name);
    if (!mkdtemp(dir))
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/master.key", dir);
    hsm_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.provider = HSM_PROVIDER_FILE;
    hc.key_file = path;
    hc.slot = -1;
    if (hsm_init_master(&hc, NULL, &err) || hsm_open(&hc, hsm_out, &err) ||
        hsm_keyring_new(*hsm_out, kr_out))
        die(err.msg);
    kms_buf_t w;
    kms_buf_init(&w, 0);
    int rc = hsm_keyring_generate(*kr_out, 1, &w);
    kms_buf_dispose(&w);
    if (rc || hsm_keyring_set_current(*kr_out, 1))
        die("keyring");
}

#endif /* FUZZ_KEYRING_H */
