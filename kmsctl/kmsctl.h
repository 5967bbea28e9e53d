/*
 * kmsctl/kmsctl.h: private header of the admin CLI. Each subcommand lives
 * in its own file and is listed in the table in main.c.
 *
 * Exit codes (documented in kmsctl(8)): 0 success, 1 operation failed,
 * 2 usage error or malformed input, 3 cannot reach kmsd / config error.
 */
#ifndef KMSCTL_H
#define KMSCTL_H

#define KMSCTL_EXIT_OK 0
#define KMSCTL_EXIT_FAIL 1
#define KMSCTL_EXIT_USAGE 2
#define KMSCTL_EXIT_UNREACHABLE 3

/* Global options parsed by main.c before the subcommand. */
typedef struct kmsctl_globals {
    const char *config_path; /* --config, default /etc/kmsd/kmsd.yaml */
    int json;                /* --json */
    long timeout_ms;         /* --timeout SECONDS for admin socket calls; -1 = not given
                                (60 s, none for backup and restore) */
} kmsctl_globals_t;

extern kmsctl_globals_t kmsctl_g;

/* A subcommand: argv[0] is the subcommand name. Returns an exit code. */
typedef int (*kmsctl_cmd_cb)(int argc, char **argv);

#endif
