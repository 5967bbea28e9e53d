/*
 * tests/unit/util/softhsm.c: see softhsm.h. Uses the softhsm2-util binary
 * (fork/exec, no shell) so tokens are made exactly as an operator would.
 */
#include "tests/unit/util/softhsm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1); /* keep test output readable; errors still show on stderr */
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int softhsm_token_add(softhsm_token_t *t, const char *label, const char *pin, const char *so_pin)
{
    char *argv[] = {"softhsm2-util", "--init-token", "--free", "--label", (char *)label,
                    "--pin", (char *)pin, "--so-pin", (char *)so_pin, NULL};
    setenv("SOFTHSM2_CONF", t->conf, 1);
    if (run(argv) != 0) {
        fprintf(stderr, "softhsm: softhsm2-util --init-token --label %s failed\n", label);
        return -1;
    }
    return 0;
}

int softhsm_token_create(softhsm_token_t *t, const char *label, const char *pin, const char *so_pin)
{
    FILE *f;
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/kmsd-softhsm.XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    snprintf(t->conf, sizeof(t->conf), "%s/softhsm2.conf", t->dir);
    snprintf(t->tokendir, sizeof(t->tokendir), "%s/tokens", t->dir);
    snprintf(t->hidden, sizeof(t->hidden), "%s/removed", t->dir);
    snprintf(t->pin_file, sizeof(t->pin_file), "%s/pin", t->dir);
    snprintf(t->label, sizeof(t->label), "%s", label);
    if (mkdir(t->tokendir, 0700) != 0 || mkdir(t->hidden, 0700) != 0)
        return -1;
    if (!(f = fopen(t->conf, "w")))
        return -1;
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
               "slots.removable = false\n", t->tokendir);
    fclose(f);
    if (!(f = fopen(t->pin_file, "w")))
        return -1;
    fprintf(f, "%s\n", pin); /* trailing newline on purpose: the provider trims it */
    fclose(f);
    chmod(t->pin_file, 0600);
    setenv("SOFTHSM2_CONF", t->conf, 1);
    return softhsm_token_add(t, label, pin, so_pin);
}

static int move_all(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    int rc = 0;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char a[600], b[600];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
        if (rename(a, b) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int softhsm_token_remove(softhsm_token_t *t) { return move_all(t->tokendir, t->hidden); }
int softhsm_token_restore(softhsm_token_t *t) { return move_all(t->hidden, t->tokendir); }

void softhsm_token_destroy(softhsm_token_t *t)
{
    if (!t->dir[0])
        return;
    char *argv[] = {"rm", "-rf", t->dir, NULL};
    run(argv);
    t->dir[0] = '\0';
}
