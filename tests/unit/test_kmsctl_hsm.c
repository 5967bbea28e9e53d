/* tests/unit/test_kmsctl_hsm.c: `kmsctl hsm init|check` as an operator runs
 * it: the real kmsctl binary of this build (BUILD/kmsctl, found next to
 * this test's BUILD/tests/), a real key file and a real SoftHSM2 token;
 * exit codes and the one-line messages. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/util/softhsm.h"

static char kmsctl[PATH_MAX];
static char out[8192];
static softhsm_token_t tok;

/* Run kmsctl with args (NULL-terminated); stdout+stderr into out. */
static int run(const char *const *args)
{
    char outpath[] = "/tmp/kmsd-kmsctl-out.XXXXXX";
    int fd = mkstemp(outpath);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[32];
        int n = 0;
        argv[n++] = kmsctl;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        dup2(fd, 1);
        dup2(fd, 2);
        execv(kmsctl, argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    ssize_t r = pread(fd, out, sizeof(out) - 1, 0);
    out[r > 0 ? r : 0] = '\0';
    close(fd);
    unlink(outpath);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int setup(void **state)
{
    (void)state;
    return softhsm_token_create(&tok, "kmsd", "1234", "5678");
}

static int teardown(void **state)
{
    (void)state;
    softhsm_token_destroy(&tok);
    return 0;
}

static void test_file(void **state)
{
    (void)state;
    char key[400];
    snprintf(key, sizeof(key), "%s/master.key", tok.dir);
    const char *init[] = {"hsm", "init", "--file", key, NULL};
    assert_int_equal(run(init), 0);
    assert_non_null(strstr(out, "created master key file"));
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(run(init), 1); /* refuses to overwrite */
    assert_non_null(strstr(out, "refusing to overwrite"));
    const char *check[] = {"hsm", "check", "--file", key, NULL};
    assert_int_equal(run(check), 0);
    assert_non_null(strstr(out, "ok: file "));
    chmod(key, 0644);
    assert_int_equal(run(check), 1);
    assert_non_null(strstr(out, "mode 0644, must be 0600"));
    /* from the config file */
    char yaml[400];
    snprintf(yaml, sizeof(yaml), "%s/kmsd.yaml", tok.dir);
    FILE *f = fopen(yaml, "w");
    assert_non_null(f);
    fprintf(f, "hsm:\n  provider: file\n  key_file: %s\n", key);
    fclose(f);
    chmod(key, 0600);
    const char *bycfg[] = {"--config", yaml, "hsm", "check", NULL};
    assert_int_equal(run(bycfg), 0);
    assert_non_null(strstr(out, key));
}

static void test_pkcs11(void **state)
{
    (void)state;
    const char *init[] = {"hsm", "init", "--pkcs11", "--module", SOFTHSM_MODULE, "--token-label",
                          "kmsd", "--pin-file", tok.pin_file, NULL};
    assert_int_equal(run(init), 0);
    assert_non_null(strstr(out, "generated AES-256 master key 'kmsd-master'"));
    assert_int_equal(run(init), 1);
    assert_non_null(strstr(out, "already exists"));
    const char *check[] = {"--json", "hsm", "check", "--pkcs11", "--module", SOFTHSM_MODULE,
                           "--token-label", "kmsd", "--pin-file", tok.pin_file, NULL};
    assert_int_equal(run(check), 0);
    assert_non_null(strstr(out, "{\"ok\":true,\"provider\":\"pkcs11 token 'kmsd' key 'kmsd-master'"));
    setenv("KMSCTL_TEST_PIN", "0000", 1);
    const char *wrong[] = {"hsm", "check", "--pkcs11", "--module", SOFTHSM_MODULE,
                           "--token-label", "kmsd", "--pin-env", "KMSCTL_TEST_PIN", NULL};
    assert_int_equal(run(wrong), 1);
    assert_non_null(strstr(out, "pkcs11: login failed: wrong PIN (CKR_PIN_INCORRECT)"));
    unsetenv("KMSCTL_TEST_PIN");
    const char *nokey[] = {"hsm", "check", "--pkcs11", "--module", SOFTHSM_MODULE, "--token-label",
                           "kmsd", "--pin-file", tok.pin_file, "--key-label", "other", NULL};
    assert_int_equal(run(nokey), 3);
    assert_non_null(strstr(out, "AES key 'other' not found on token 'kmsd'"));
}

static void test_usage(void **state)
{
    (void)state;
    const char *none[] = {"hsm", NULL};
    assert_int_equal(run(none), 2);
    const char *help[] = {"hsm", "--help", NULL};
    assert_int_equal(run(help), 0);
    assert_non_null(strstr(out, "kmsctl hsm init"));
    const char *bad[] = {"hsm", "frobnicate", NULL};
    assert_int_equal(run(bad), 2);
    const char *half[] = {"hsm", "check", "--pkcs11", "--module", SOFTHSM_MODULE, NULL};
    assert_int_equal(run(half), 2);
    const char *both[] = {"hsm", "init", "--file", "/tmp/x", "--module", SOFTHSM_MODULE, NULL};
    assert_int_equal(run(both), 2);
    const char *slot[] = {"hsm", "check", "--slot", "abc", NULL};
    assert_int_equal(run(slot), 2);
}

int main(void)
{
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    char *slash = strrchr(self, '/'); /* BUILD/tests/test_hsm_kmsctl */
    if (!slash)
        return 1;
    *slash = '\0';
    snprintf(kmsctl, sizeof(kmsctl), "%s/../kmsctl", self);
    if (access(kmsctl, X_OK) != 0) {
        fprintf(stderr, "test_hsm_kmsctl: %s not built\n", kmsctl);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pkcs11, setup, teardown),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
