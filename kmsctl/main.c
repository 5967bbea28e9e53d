/*
 * kmsctl/main.c: entry point of the admin CLI. Parses the global options
 * (--config, --json) and dispatches to one subcommand from the table.
 * Subcommands live in their own files; this file holds no logic of theirs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsctl/kmsctl.h"

kmsctl_globals_t kmsctl_g = {.config_path = "/etc/kmsd/kmsd.yaml", .json = 0, .timeout_ms = -1};

#ifndef KMSD_VERSION
#define KMSD_VERSION "0.1.0"
#endif

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("kmsctl %s\n", KMSD_VERSION);
    return KMSCTL_EXIT_OK;
}

/* Subcommand prototypes: one per file. */
int cmd_init(int argc, char **argv); /* cmd_init.c */
int cmd_pki(int argc, char **argv);  /* cmd_pki.c */
int cmd_ca(int argc, char **argv);   /* cmd_ca.c */
int cmd_ttlv(int argc, char **argv); /* cmd_ttlv.c */
int cmd_status(int argc, char **argv); /* cmd_status.c */
int cmd_tenant(int argc, char **argv); /* cmd_tenant.c */
int cmd_client(int argc, char **argv); /* cmd_client.c */
int cmd_audit(int argc, char **argv);  /* cmd_audit.c */
int cmd_key(int argc, char **argv);    /* cmd_key.c */
int cmd_backup(int argc, char **argv);  /* cmd_backup.c */
int cmd_restore(int argc, char **argv); /* cmd_backup.c */
int cmd_hsm(int argc, char **argv);  /* cmd_hsm.c */
int cmd_rotate(int argc, char **argv); /* cmd_rotate.c */
int cmd_cluster(int argc, char **argv); /* cmd_cluster.c */

static const struct {
    const char *name;
    kmsctl_cmd_cb fn;
    const char *help;
} commands[] = {
    {"version", cmd_version, "print the version"},
    {"status", cmd_status, "kmsd's health, uptime, connections and counts (admin socket)"},
    {"tenant", cmd_tenant, "add, list or remove tenants"},
    {"client", cmd_client, "register (certificate, CSR, password), list, disable, enable or remove clients"},
    {"audit", cmd_audit, "verify audit log files; audit chain status"},
    {"key", cmd_key, "list, show, create, activate, revoke, destroy keys (KMIP over TLS)"},
    {"backup", cmd_backup, "encrypted, portable online backup of kmsd"},
    {"restore", cmd_restore, "restore a backup onto an empty kmsd"},
    {"init", cmd_init, "first-run setup: CA, certificates, master key, config"},
    {"pki", cmd_pki, "issue client certificates, sign a client's CSR"},
    {"ca", cmd_ca, "export the CA certificate for clients to trust"},
    {"ttlv", cmd_ttlv, "decode/encode KMIP TTLV messages (binary or hex <-> readable)"},
    {"hsm", cmd_hsm, "create or check the master key (key file or PKCS#11 token)"},
    {"rotate", cmd_rotate, "rotate the master key or the data-store key, online (admin socket)"},
    {"cluster", cmd_cluster, "form and run a cluster: invite, join, status, verify, remove"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kmsctl [--config FILE] [--json] [--timeout SECONDS] COMMAND [ARGS...]\n\n"
               "--timeout: most time to wait for kmsd's answer on the admin socket (default\n"
               "60; backup and restore wait as long as they take; 0 = forever)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'kmsctl COMMAND --help' describes each command.\n"
               "exit status: 0 ok, 1 failed, 2 usage or malformed input, 3 kmsd unreachable or config error\n");
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            kmsctl_g.config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            kmsctl_g.config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--json") == 0) {
            kmsctl_g.json = 1;
        } else if (strcmp(argv[i], "--timeout") == 0 || strncmp(argv[i], "--timeout=", 10) == 0) {
            const char *v = argv[i][9] == '=' ? argv[i] + 10 : (i + 1 < argc ? argv[++i] : "");
            char *end = NULL;
            double sec = strtod(v, &end);
            if (!*v || *end || sec < 0 || sec > 86400) {
                fprintf(stderr, "kmsctl: --timeout takes seconds (0-86400; 0 = wait forever)\n");
                return KMSCTL_EXIT_USAGE;
            }
            kmsctl_g.timeout_ms = (long)(sec * 1000);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            return cmd_version(0, NULL);
        } else {
            fprintf(stderr, "kmsctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(argc - i, argv + i);
    fprintf(stderr, "kmsctl: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return KMSCTL_EXIT_USAGE;
}
