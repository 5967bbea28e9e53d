/*
 * kmsctl/cmd_ca.c: `kmsctl ca export`, the CA certificate in PEM on
 * stdout: what a KMIP client (vCenter's "Make KMS trust vCenter" / "trust
 * the KMS" step, PyKMIP's ca_certs) needs to verify kmsd.
 *
 * The file is parsed and re-emitted, so only a certificate ever goes out;
 * it never reads the CA private key.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "certs/certs.h"
#include "kmsctl/kmsctl.h"

int cmd_ca(int argc, char **argv);

static void ca_usage(FILE *f)
{
    fprintf(f, "usage: kmsctl ca export [--dir DIR]\n"
               "\n"
               "Print the CA certificate (DIR/pki/ca.crt) as PEM on stdout, for KMIP clients\n"
               "to trust. DIR defaults to the directory of --config (/etc/kmsd).\n");
}

int cmd_ca(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *dir_arg = NULL;
    char dir[PATH_MAX], path[PATH_MAX], fp[65];
    X509 *ca = NULL;
    int o, rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        ca_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "export") != 0) {
        fprintf(stderr, "kmsctl ca: unknown subcommand '%s'\n", argv[1]);
        ca_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir_arg = optarg; break;
        case 'h': ca_usage(stdout); return KMSCTL_EXIT_OK;
        default:
            fprintf(stderr, "kmsctl ca: unknown or incomplete option '%s'\n", argv[optind - 1]);
            ca_usage(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        ca_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    if (dir_arg) {
        snprintf(dir, sizeof(dir), "%s", dir_arg);
    } else {
        snprintf(dir, sizeof(dir), "%s", kmsctl_g.config_path);
        char *slash = strrchr(dir, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/pki/ca.crt", dir) >= sizeof(path)) {
        fprintf(stderr, "kmsctl ca: path too long\n");
        return KMSCTL_EXIT_USAGE;
    }
    if ((rc = certs_load_cert_pem(path, &ca)) != 0) {
        fprintf(stderr, "kmsctl ca: %s: %s\n", path,
                rc == KMS_ERR_IO ? "cannot read it" : "not a PEM certificate");
        return KMSCTL_EXIT_FAIL;
    }
    rc = certs_fingerprint_sha256(ca, fp);
    if (rc == 0)
        rc = certs_print_cert_pem(ca, stdout);
    X509_free(ca);
    if (rc != 0) {
        fprintf(stderr, "kmsctl ca: cannot print the certificate\n");
        return KMSCTL_EXIT_FAIL;
    }
    return KMSCTL_EXIT_OK;
}
