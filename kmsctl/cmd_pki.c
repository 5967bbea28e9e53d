/*
 * kmsctl/cmd_pki.c: `kmsctl pki issue-client` and `kmsctl pki sign-csr`,
 * certificates for KMIP clients from the CA that `kmsctl init` made
 * (DIR/pki/ca.crt + ca.key). Both carry EKU clientAuth only.
 *
 * sign-csr is vCenter's "KMS signs the vCenter CSR" trust method: the CSR's
 * signature is verified and only its subject and key are used. Neither
 * command registers the client in the database or talks to kmsd (that is
 * `kmsctl client add`, which needs the tenant); they print the fingerprint
 * and the command to run.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "common/kms.h"
#include "kmsctl/kmsctl.h"

int cmd_pki(int argc, char **argv);

static void pki_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl pki issue-client NAME [--dir DIR] [--out-dir D] [--rsa] [--days N] [--force]\n"
            "       kmsctl pki sign-csr FILE [--dir DIR] [--out FILE] [--days N] [--force]\n"
            "\n"
            "Client certificates (EKU clientAuth) from the CA in DIR/pki (ca.crt, ca.key).\n"
            "DIR defaults to the directory of --config (/etc/kmsd).\n"
            "\n"
            "  issue-client NAME  new key and certificate with CN=NAME, written to\n"
            "                     D/NAME.key (0600) and D/NAME.crt (D defaults to DIR/pki)\n"
            "  sign-csr FILE      sign a client's CSR (PEM or DER), e.g. the one vCenter\n"
            "                     generates; the certificate goes to --out or to stdout\n"
            "  --days N           validity in days (default %d)\n"
            "  --rsa              RSA 3072 key instead of EC P-256 (issue-client)\n"
            "  --force            replace existing output files\n",
            CERTS_LEAF_DAYS);
}

/* DIR given, or the directory of the configuration file. */
static void default_dir(const char *given, char *out, size_t n)
{
    if (given) {
        snprintf(out, n, "%s", given);
        return;
    }
    snprintf(out, n, "%s", kmsctl_g.config_path);
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

static int load_ca(const char *dir, X509 **ca, EVP_PKEY **key)
{
    char cp[PATH_MAX], kp[PATH_MAX];
    kms_error_t err;
    if ((size_t)snprintf(cp, sizeof(cp), "%s/pki/ca.crt", dir) >= sizeof(cp) ||
        (size_t)snprintf(kp, sizeof(kp), "%s/pki/ca.key", dir) >= sizeof(kp)) {
        fprintf(stderr, "kmsctl pki: %s: path too long\n", dir);
        return KMSCTL_EXIT_USAGE;
    }
    kms_error_clear(&err);
    if (certs_load_ca(cp, kp, ca, key, &err) != 0) {
        fprintf(stderr, "kmsctl pki: cannot use the CA: %s\n", err.msg);
        return KMSCTL_EXIT_FAIL;
    }
    return 0;
}

/* Client names become file names and certificate CNs. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-@", s[i]))
            return 0;
    return 1;
}

struct pki_args {
    const char *dir, *out, *out_dir;
    int days;
    bool rsa, force;
    const char *positional;
};

static int parse(int argc, char **argv, struct pki_args *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},     {"out", required_argument, NULL, 'o'},
        {"out-dir", required_argument, NULL, 'O'}, {"days", required_argument, NULL, 'D'},
        {"rsa", no_argument, NULL, 'r'},           {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int o;
    memset(a, 0, sizeof(*a));
    optind = 1;
    opterr = 0;
    /* GNU getopt permutes, so NAME/FILE may come before or after options. */
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': a->dir = optarg; break;
        case 'o': a->out = optarg; break;
        case 'O': a->out_dir = optarg; break;
        case 'r': a->rsa = true; break;
        case 'f': a->force = true; break;
        case 'D': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > CERTS_MAX_DAYS) {
                fprintf(stderr, "kmsctl pki: --days must be 1-%d\n", CERTS_MAX_DAYS);
                return KMSCTL_EXIT_USAGE;
            }
            a->days = (int)v;
            break;
        }
        case 'h': pki_usage(stdout); return -1;
        default:
            fprintf(stderr, "kmsctl pki: unknown or incomplete option '%s'\n", argv[optind - 1]);
            pki_usage(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        pki_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    a->positional = argv[optind];
    return 0;
}

static int issue_client(const struct pki_args *a)
{
    char dir[PATH_MAX], od[PATH_MAX], kp[PATH_MAX], cp[PATH_MAX], fp[65];
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL, *k = NULL;
    int ret = KMSCTL_EXIT_FAIL, rc;

    if (!name_ok(a->positional)) {
        fprintf(stderr, "kmsctl pki: client name '%s': 1-64 letters, digits, '.', '_', '-', '@'\n",
                a->positional);
        return KMSCTL_EXIT_USAGE;
    }
    if (a->out) {
        fprintf(stderr, "kmsctl pki: issue-client writes two files; use --out-dir\n");
        return KMSCTL_EXIT_USAGE;
    }
    default_dir(a->dir, dir, sizeof(dir));
    if ((rc = load_ca(dir, &ca, &ca_key)) != 0)
        return rc;
    if ((size_t)snprintf(od, sizeof(od), "%s%s", a->out_dir ? a->out_dir : dir,
                         a->out_dir ? "" : "/pki") >= sizeof(od) ||
        (size_t)snprintf(kp, sizeof(kp), "%s/%s.key", od, a->positional) >= sizeof(kp) ||
        (size_t)snprintf(cp, sizeof(cp), "%s/%s.crt", od, a->positional) >= sizeof(cp)) {
        fprintf(stderr, "kmsctl pki: output path too long\n");
        ret = KMSCTL_EXIT_USAGE;
        goto out;
    }
    /* --out-dir is made when missing (0700: it receives a private key); a
     * missing parent is reported as such rather than as a failed write. */
    if (a->out_dir && mkdir(od, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "kmsctl pki: cannot create --out-dir %s: %s\n", od, strerror(errno));
        goto out;
    }
    if (!a->force && (access(kp, F_OK) == 0 || access(cp, F_OK) == 0)) {
        fprintf(stderr, "kmsctl pki: %s or %s exists (use --force to replace)\n", kp, cp);
        goto out;
    }
    if ((rc = certs_key_new(a->rsa ? CERTS_KEY_RSA_3072 : CERTS_KEY_EC_P256, &k)) != 0 ||
        (rc = certs_issue_client(ca, ca_key, k, a->positional, a->days, &x)) != 0 ||
        (rc = certs_fingerprint_sha256(x, fp)) != 0) {
        fprintf(stderr, "kmsctl pki: cannot issue the certificate: %s\n", kms_strerror(rc));
        goto out;
    }
    if ((rc = certs_write_key_pem(kp, k, a->force)) != 0) {
        fprintf(stderr, "kmsctl pki: cannot write %s: %s\n", kp, kms_strerror(rc));
        goto out;
    }
    if ((rc = certs_write_cert_pem(cp, x, a->force)) != 0) {
        fprintf(stderr, "kmsctl pki: cannot write %s: %s\n", cp, kms_strerror(rc));
        goto out;
    }
    if (kmsctl_g.json)
        printf("{\"name\":\"%s\",\"cert\":\"%s\",\"key\":\"%s\",\"sha256\":\"%s\"}\n", a->positional,
               cp, kp, fp);
    else
        printf("issued client certificate CN=%s\n  certificate %s\n  private key %s (0600)\n"
               "  SHA-256     %s\n"
               "register it before use: kmsctl client add --tenant TENANT --cert %s\n",
               a->positional, cp, kp, fp, cp);
    ret = KMSCTL_EXIT_OK;
out:
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca_key);
    return ret;
}

static int sign_csr(const struct pki_args *a)
{
    char dir[PATH_MAX], fp[65], cn[256];
    kms_error_t err;
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *csr = NULL;
    int ret = KMSCTL_EXIT_FAIL, rc;

    if (a->out_dir || a->rsa) {
        fprintf(stderr, "kmsctl pki: sign-csr takes --out FILE (no --out-dir, no --rsa)\n");
        return KMSCTL_EXIT_USAGE;
    }
    if ((rc = certs_load_csr(a->positional, &csr)) != 0) {
        fprintf(stderr, "kmsctl pki: %s: %s\n", a->positional,
                rc == KMS_ERR_IO ? strerror(errno) : "not a certificate request (PEM or DER)");
        return rc == KMS_ERR_IO ? KMSCTL_EXIT_FAIL : KMSCTL_EXIT_USAGE;
    }
    default_dir(a->dir, dir, sizeof(dir));
    if ((rc = load_ca(dir, &ca, &ca_key)) != 0) {
        ret = rc;
        goto out;
    }
    kms_error_clear(&err);
    if ((rc = certs_sign_csr(ca, ca_key, csr, a->days, &x, &err)) != 0) {
        fprintf(stderr, "kmsctl pki: refusing to sign %s: %s\n", a->positional, err.msg);
        ret = KMSCTL_EXIT_USAGE; /* malformed input */
        goto out;
    }
    if (certs_fingerprint_sha256(x, fp) != 0 || certs_subject_cn(x, cn, sizeof(cn)) != 0)
        goto out;
    if (a->out) {
        if ((rc = certs_write_cert_pem(a->out, x, a->force)) != 0) {
            fprintf(stderr, "kmsctl pki: cannot write %s: %s%s\n", a->out, kms_strerror(rc),
                    rc == KMS_ERR_EXISTS ? " (use --force to replace)" : "");
            goto out;
        }
        printf("signed certificate CN=%s\n  certificate %s\n  SHA-256     %s\n"
               "register it before use: kmsctl client add --tenant TENANT --cert %s\n",
               cn, a->out, fp, a->out);
    } else {
        if (certs_print_cert_pem(x, stdout) != 0)
            goto out;
        fprintf(stderr, "signed certificate CN=%s SHA-256 %s\n", cn, fp);
    }
    ret = KMSCTL_EXIT_OK;
out:
    X509_REQ_free(csr);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return ret;
}

int cmd_pki(int argc, char **argv)
{
    struct pki_args a;
    int rc;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        pki_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "issue-client") != 0 && strcmp(sub, "sign-csr") != 0) {
        fprintf(stderr, "kmsctl pki: unknown subcommand '%s'\n", sub);
        pki_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    if ((rc = parse(argc - 1, argv + 1, &a)) != 0)
        return rc < 0 ? KMSCTL_EXIT_OK : rc;
    return strcmp(sub, "issue-client") == 0 ? issue_client(&a) : sign_csr(&a);
}
