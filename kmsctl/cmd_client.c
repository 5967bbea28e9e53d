/*
 * kmsctl/cmd_client.c: `kmsctl client add|list|remove|disable|enable`, over
 * kmsd's admin socket.
 *
 * add registers a certificate (--cert FILE: kmsd takes its SHA-256
 * fingerprint and CN), a CSR (--csr FILE: signed here with the CA next to
 * tls.client_ca, the certificate written to --out, then registered), or a
 * password client (--user NAME: the password from --password-file, or typed
 * at a terminal, or one line on stdin; kmsd stores only an Argon2id hash),
 * or a device client that sends a KMIP Device credential (--device-serial
 * and the other identifiers it must send, --name, a password as for a
 * user).
 * disable suspends a client (kmsd refuses its credentials from its next
 * request on) and keeps its registration; enable lets it in again.
 * The password crosses only the local admin socket and is wiped after use.
 * It deliberately never prints a password or a hash.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

#define MAX_PASSWORD 1024

static void usage_client(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] client add --tenant T --cert FILE [--name N] [--role R]\n"
            "       kmsctl [--config FILE] [--json] client add --tenant T --csr FILE [--out CRT]\n"
            "                  [--ca-key KEY] [--days N] [--name N] [--role R]\n"
            "       kmsctl [--config FILE] [--json] client add --tenant T --cn CN [--role R]\n"
            "       kmsctl [--config FILE] [--json] client add --tenant T --user NAME\n"
            "                  [--password-file F] [--role R]\n"
            "       kmsctl [--config FILE] [--json] client add --tenant T --name N --device-serial S\n"
            "                  [--device-id ID] [--network-id ID] [--machine-id ID] [--media-id ID]\n"
            "                  [--password-file F] [--role R]\n"
            "       kmsctl [--config FILE] [--json] client list [--tenant T]\n"
            "       kmsctl [--config FILE] [--json] client remove NAME [--tenant T]\n"
            "       kmsctl [--config FILE] [--json] client disable NAME [--reason TEXT] [--tenant T]\n"
            "       kmsctl [--config FILE] [--json] client enable NAME [--tenant T]\n\n"
            "--cert  register a client certificate (PEM) signed by tls.client_ca; the\n"
            "        client's name is the certificate's CN unless --name is given.\n"
            "--csr   sign a certificate request with the CA (tls.client_ca and, unless\n"
            "        --ca-key, ca.key in the same directory), write it to --out (default:\n"
            "        standard output) and register it.\n"
            "--cn    register by subject CN alone: any certificate under tls.client_ca\n"
            "        with that CN is this client (no fingerprint pinned); prefer --cert.\n"
            "--user  a client that sends a KMIP Credential (user name + password); the\n"
            "        password is read from --password-file (first line), the terminal,\n"
            "        or one line on standard input.\n"
            "--device-serial  a client that sends a KMIP Device credential with this\n"
            "        Device Serial Number (unique among devices) and a password (read as\n"
            "        for --user); each of --device-id, --network-id, --machine-id and\n"
            "        --media-id given must be sent with the same value, those not given\n"
            "        are not compared. Identifiers: 1-64 printable characters.\n"
            "--role  client (default) or admin (may manage every tenant's objects).\n"
            "disable  refuse the client's certificate or credential from its next\n"
            "        request on, as if unknown, keeping its registration, role and\n"
            "        objects (--reason: up to 200 characters, shown by list); the last\n"
            "        enabled admin cannot be disabled. enable lets it in again.\n\n"
            "exit status: 0 ok, 1 refused by kmsd, 2 usage or bad input, 3 kmsd unreachable\n");
}

/* Password from a file (first line), a terminal (no echo), or stdin. */
static int read_password(const char *file, char *out, size_t outlen)
{
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (kmsctl_read_file(file, MAX_PASSWORD + 2, &buf, &len) != 0) {
            fprintf(stderr, "kmsctl: cannot read password file %s\n", file);
            return KMSCTL_EXIT_USAGE;
        }
    } else {
        bool tty = isatty(STDIN_FILENO);
        struct termios old, quiet;
        if (tty) {
            fprintf(stderr, "Password: ");
            tcgetattr(STDIN_FILENO, &old);
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        buf = calloc(1, MAX_PASSWORD + 2);
        bool ok = buf && fgets(buf, MAX_PASSWORD + 2, stdin) != NULL;
        if (tty) {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
            fputc('\n', stderr);
        }
        if (!ok) {
            free(buf);
            fprintf(stderr, "kmsctl: no password given\n");
            return KMSCTL_EXIT_USAGE;
        }
        len = strlen(buf);
    }
    size_t n = strcspn(buf, "\r\n");
    int ec = 0;
    if (n == 0 || n >= outlen || n > MAX_PASSWORD) {
        fprintf(stderr, "kmsctl: the password must be 1-%d characters on one line\n", MAX_PASSWORD);
        ec = KMSCTL_EXIT_USAGE;
    } else {
        memcpy(out, buf, n);
        out[n] = '\0';
    }
    kms_wipe(buf, len);
    free(buf);
    return ec;
}

/* Sign the CSR with the dev CA; the PEM of the new certificate in *pem_out. */
static int sign_csr(const conf_t *c, const char *csr_path, const char *ca_key_path, int days,
                    const char *out_path, char **pem_out, size_t *pem_len)
{
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *csr = NULL;
    BIO *mem = NULL;
    char keypath[4096];
    kms_error_t err;
    int ec = KMSCTL_EXIT_FAIL;
    kms_error_clear(&err);
    if (!ca_key_path) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s", c->tls.client_ca);
        snprintf(keypath, sizeof(keypath), "%s/ca.key", dirname(tmp));
        ca_key_path = keypath;
    }
    if (certs_load_ca(c->tls.client_ca, ca_key_path, &ca, &ca_key, &err) != 0) {
        fprintf(stderr, "kmsctl: cannot load the CA: %s\n", err.msg);
        ec = KMSCTL_EXIT_UNREACHABLE;
        goto out;
    }
    if (certs_load_csr(csr_path, &csr) != 0) {
        fprintf(stderr, "kmsctl: %s is not a readable certificate request\n", csr_path);
        ec = KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (certs_sign_csr(ca, ca_key, csr, days, &cert, &err) != 0) {
        fprintf(stderr, "kmsctl: refusing to sign %s: %s\n", csr_path, err.msg);
        ec = KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (out_path && certs_write_cert_pem(out_path, cert, false) != 0) {
        fprintf(stderr, "kmsctl: cannot write %s (exists already?)\n", out_path);
        goto out;
    }
    mem = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;
    if (!mem || !PEM_write_bio_X509(mem, cert) || (n = BIO_get_mem_data(mem, &p)) <= 0)
        goto out;
    *pem_out = malloc((size_t)n);
    if (!*pem_out)
        goto out;
    memcpy(*pem_out, p, (size_t)n);
    *pem_len = (size_t)n;
    if (!out_path && !kmsctl_g.json)
        fwrite(p, 1, (size_t)n, stdout);
    ec = 0;
out:
    BIO_free(mem);
    X509_free(cert);
    X509_REQ_free(csr);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return ec;
}

static int client_add(int argc, char **argv)
{
    const char *tenant = NULL, *cert = NULL, *csr = NULL, *user = NULL, *pwfile = NULL;
    const char *role = NULL, *name = NULL, *out = NULL, *ca_key = NULL, *cn = NULL;
    const char *serial = NULL, *dev_id = NULL, *net_id = NULL, *mach_id = NULL, *media_id = NULL;
    int days = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage_client(stdout);
            return KMSCTL_EXIT_OK;
        }
        const char **dst = strcmp(o, "--tenant") == 0          ? &tenant
                           : strcmp(o, "--cert") == 0          ? &cert
                           : strcmp(o, "--csr") == 0           ? &csr
                           : strcmp(o, "--user") == 0          ? &user
                           : strcmp(o, "--password-file") == 0 ? &pwfile
                           : strcmp(o, "--role") == 0          ? &role
                           : strcmp(o, "--name") == 0          ? &name
                           : strcmp(o, "--out") == 0           ? &out
                           : strcmp(o, "--ca-key") == 0        ? &ca_key
                           : strcmp(o, "--cn") == 0            ? &cn
                           : strcmp(o, "--device-serial") == 0 ? &serial
                           : strcmp(o, "--device-id") == 0     ? &dev_id
                           : strcmp(o, "--network-id") == 0    ? &net_id
                           : strcmp(o, "--machine-id") == 0    ? &mach_id
                           : strcmp(o, "--media-id") == 0      ? &media_id
                                                               : NULL;
        if (strcmp(o, "--days") == 0 && v) {
            days = atoi(v);
            i++;
            continue;
        }
        if (!dst || !v) {
            usage_client(stderr);
            return KMSCTL_EXIT_USAGE;
        }
        *dst = v;
        i++;
    }
    bool dev_extra = dev_id || net_id || mach_id || media_id;
    if (!tenant || (!!cert + !!csr + !!user + !!cn + !!serial) != 1 || (cn && name) ||
        (pwfile && !user && !serial) || (dev_extra && !serial) || (serial && !name) ||
        ((out || ca_key || days) && !csr) || days < 0 || days > CERTS_MAX_DAYS) {
        usage_client(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    int ec = KMSCTL_EXIT_FAIL;
    kms_arena_t *a = kms_arena_new(0);
    char *pem = NULL;
    size_t pem_len = 0;
    char password[MAX_PASSWORD + 1];
    password[0] = '\0';
    conf_t *c = NULL;
    if (!a)
        goto out;
    ttlv_item_t *req = admin_request_new(a, "client.add");
    if (!req || !ttlv_new_textz(a, req, ADMIN_TAG_ARG_TENANT, tenant) ||
        (role && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_ROLE, role)))
        goto out;
    if (cert) {
        if (kmsctl_read_file(cert, 256 * 1024, &pem, &pem_len) != 0) {
            fprintf(stderr, "kmsctl: cannot read %s\n", cert);
            ec = KMSCTL_EXIT_USAGE;
            goto out;
        }
    } else if (csr) {
        ec = kmsctl_load_conf(&c);
        if (ec)
            goto out;
        ec = sign_csr(c, csr, ca_key, days, out, &pem, &pem_len);
        if (ec)
            goto out;
        ec = KMSCTL_EXIT_FAIL;
    } else if (cn) {
        name = cn;
        if (!ttlv_new_bool(a, req, ADMIN_TAG_ARG_BY_CN, true))
            goto out;
    } else {
        ec = read_password(pwfile, password, sizeof(password));
        if (ec)
            goto out;
        ec = KMSCTL_EXIT_FAIL;
        if (user)
            name = user;
        if (!ttlv_new_textz(a, req, ADMIN_TAG_ARG_PASSWORD, password))
            goto out;
        const struct {
            uint32_t tag;
            const char *v;
        } dev[5] = {{ADMIN_TAG_ARG_DEVICE_SERIAL, serial}, {ADMIN_TAG_ARG_DEVICE_ID, dev_id},
                    {ADMIN_TAG_ARG_NETWORK_ID, net_id},    {ADMIN_TAG_ARG_MACHINE_ID, mach_id},
                    {ADMIN_TAG_ARG_MEDIA_ID, media_id}};
        for (int i = 0; i < 5; i++)
            if (dev[i].v && !ttlv_new_textz(a, req, dev[i].tag, dev[i].v))
                goto out;
    }
    if (pem && !ttlv_new_bytes(a, req, ADMIN_TAG_ARG_CERT_PEM, pem, pem_len))
        goto out;
    if (name && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_NAME, name))
        goto out;
    ttlv_item_t *resp = NULL;
    ec = kmsctl_admin_call(a, req, &resp);
    if (ec)
        goto out;
    if (kmsctl_g.json) {
        kmsctl_print_records(stdout, resp, true);
    } else {
        const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
        printf("client registered:\n");
        if (rec)
            kmsctl_print_records(stdout, resp, true);
    }
out:
    kms_wipe(password, sizeof(password));
    free(pem);
    conf_free(c);
    kms_arena_free(a); /* wiped: the request held the password */
    return ec;
}

int cmd_client(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_client(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "add") == 0)
        return client_add(argc - 2, argv + 2);
    const char *tenant = NULL, *name = NULL, *reason = NULL;
    bool disable = strcmp(argv[1], "disable") == 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_client(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
            tenant = argv[++i];
        } else if (disable && strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            usage_client(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    const char *cmd;
    if (strcmp(argv[1], "list") == 0 && !name)
        cmd = "client.list";
    else if ((strcmp(argv[1], "remove") == 0 || strcmp(argv[1], "rm") == 0) && name)
        cmd = "client.remove";
    else if (disable && name)
        cmd = "client.disable";
    else if (strcmp(argv[1], "enable") == 0 && name)
        cmd = "client.enable";
    else {
        usage_client(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    int ec = KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, cmd);
    if (!req || (tenant && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_TENANT, tenant)) ||
        (name && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_NAME, name)) ||
        (reason && !ttlv_new_textz(a, req, ADMIN_TAG_ARG_REASON, reason)))
        goto out;
    ec = kmsctl_admin_call(a, req, &resp);
    if (ec)
        goto out;
    if (strcmp(cmd, "client.list") == 0)
        kmsctl_print_records(stdout, resp, false);
    else if (kmsctl_g.json)
        kmsctl_print_records(stdout, resp, true);
    else if (strcmp(cmd, "client.remove") == 0)
        printf("client %s removed\n", name);
    else
        printf("client %s %s\n", name, disable ? "disabled" : "enabled");
out:
    kms_arena_free(a);
    return ec;
}
