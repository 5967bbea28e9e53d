/*
 * kmsctl/cmd_init.c: `kmsctl init`, the first-run setup of a kmsd
 * directory: a private CA, the server certificate, an admin client
 * certificate, the master key file, the database with the admin client
 * registered, and a kmsd.yaml that ties them together.
 *
 * The configuration file is written last, so its presence means the setup
 * completed. --force replaces the configuration and the PKI but never the
 * master key or the database: an existing master key is kept (replacing it
 * would make every stored key unreadable) and the admin client is
 * re-registered with the new certificate. It does not start kmsd.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "certs/certs.h"
#include "common/kms.h"
#include "conf/conf.h"
#include "hsm/hsm.h"
#include "kmsctl/kmsctl.h"
#include "store/store.h"

#define MAX_HOSTS 32
#define ADMIN_NAME "admin"
#define DEFAULT_TENANT "default"

int cmd_init(int argc, char **argv);

static void init_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl init --dir DIR [--listen ADDR:PORT] [--host NAME_OR_IP ...] [--rsa] [--force]\n"
            "\n"
            "First-run setup of a kmsd directory. Creates DIR (mode 0700) with:\n"
            "  kmsd.yaml          configuration (paths relative to DIR)\n"
            "  pki/ca.crt, ca.key         private CA (give ca.crt to KMIP clients, e.g. vCenter)\n"
            "  pki/server.crt, server.key server certificate (serverAuth + clientAuth)\n"
            "  pki/client.crt, client.key admin client certificate, CN \"admin\", registered\n"
            "  master.key         file master key (0600) wrapping the data-store keys\n"
            "  kms.db             database, with tenant \"default\" and the admin client\n"
            "\n"
            "  --dir DIR          directory to set up (created if missing)\n"
            "  --listen ADDR:PORT KMIP listener (default [::]:5696)\n"
            "  --host NAME_OR_IP  extra name in the server certificate (repeatable); this\n"
            "                     machine's host name, localhost, 127.0.0.1 and ::1 are always in\n"
            "  --rsa              RSA 3072 keys instead of EC P-256\n"
            "  --days N           leaf certificate validity in days (default %d; CA: %d)\n"
            "  --force            replace an existing configuration and PKI (clients holding\n"
            "                     certificates of the old CA must be given new ones). The\n"
            "                     master key and the database are always kept.\n",
            CERTS_LEAF_DAYS, CERTS_CA_DAYS);
}

/* mkdir -p with mode 0700 for every directory created. */
static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int join(char *out, size_t n, const char *dir, const char *name)
{
    return (size_t)snprintf(out, n, "%s/%s", dir, name) < n ? 0 : -1;
}

/* Write one key and certificate pair, reporting a clear error. */
static int write_pair(const char *dir, const char *stem, EVP_PKEY *key, X509 *cert, bool force)
{
    char kp[PATH_MAX], cp[PATH_MAX], name[64];
    snprintf(name, sizeof(name), "%s.key", stem);
    if (join(kp, sizeof(kp), dir, name) != 0)
        return KMS_ERR_INVAL;
    snprintf(name, sizeof(name), "%s.crt", stem);
    if (join(cp, sizeof(cp), dir, name) != 0)
        return KMS_ERR_INVAL;
    const char *failed = kp;
    int rc = certs_write_key_pem(kp, key, force);
    if (rc == 0) {
        failed = cp;
        rc = certs_write_cert_pem(cp, cert, force);
    }
    if (rc != 0)
        fprintf(stderr, "kmsctl init: cannot write %s: %s%s\n", failed, kms_strerror(rc),
                rc == KMS_ERR_EXISTS ? " (use --force to replace)" : "");
    return rc;
}

/* Register tenant "default" (if missing) and the admin client. */
static int register_admin(const char *db_path, const char *fingerprint)
{
    store_options_t opt = {.path = db_path, .node_id = NULL, .max_batch = 512, .read_only = false};
    store_t *s = NULL;
    store_reader_t *r = NULL;
    store_write_t *w = NULL;
    store_client_t c;
    int rc;

    if ((rc = store_open(&opt, &s)) != 0) {
        fprintf(stderr, "kmsctl init: cannot open the database %s: %s\n", db_path, kms_strerror(rc));
        goto out;
    }
    if ((rc = store_reader_new(s, &r)) != 0)
        goto fail;
    int have_tenant = store_tenant_exists(r, DEFAULT_TENANT);
    if (have_tenant != 0 && have_tenant != KMS_ERR_NOTFOUND) {
        rc = have_tenant;
        goto fail;
    }
    if ((w = store_write_new()) == NULL) {
        rc = KMS_ERR_NOMEM;
        goto fail;
    }
    if (have_tenant == KMS_ERR_NOTFOUND && (rc = store_write_tenant(w, DEFAULT_TENANT, false)) != 0)
        goto fail;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", ADMIN_NAME);
    snprintf(c.tenant, sizeof(c.tenant), "%s", DEFAULT_TENANT);
    snprintf(c.role, sizeof(c.role), "admin");
    snprintf(c.kind, sizeof(c.kind), "cert");
    snprintf(c.cert_sha256, sizeof(c.cert_sha256), "%s", fingerprint);
    if ((rc = store_write_client(w, &c, false)) != 0)
        goto fail;
    if ((rc = store_commit(s, w, NULL, 0)) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "kmsctl init: cannot register the admin client in %s: %s\n", db_path,
            kms_strerror(rc));
out:
    store_write_free(w);
    store_reader_free(r);
    store_close(s);
    return rc;
}

/* YAML double-quoted string (the values here are already validated). */
static void yq(kms_buf_t *b, const char *s)
{
    kms_buf_append_byte(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            kms_buf_append_byte(b, '\\');
        kms_buf_append_byte(b, (uint8_t)*s);
    }
    kms_buf_append_byte(b, '"');
}

static int write_config(const char *path, const char *listen, bool force)
{
    kms_buf_t b;
    int rc;
    kms_buf_init(&b, 1 << 16);
    kms_buf_printf(&b,
                   "# kmsd configuration written by `kmsctl init`.\n"
                   "# Relative paths are resolved against this file's directory.\n"
                   "# Every setting and its default: kmsd.yaml.sample (conf/kmsd.yaml).\n"
                   "# The effective configuration: kmsd --check-config -c THIS_FILE\n"
                   "\n"
                   "listen:\n  - ");
    yq(&b, listen);
    kms_buf_printf(&b,
                   "\n\n"
                   "tls:\n"
                   "  cert: pki/server.crt\n"
                   "  key: pki/server.key\n"
                   "  client_ca: pki/ca.crt\n"
                   "  client_auth: required\n"
                   "\n"
                   "store:\n"
                   "  path: kms.db\n"
                   "\n"
                   "hsm:\n"
                   "  # The master key is a 0600 file here; for a PKCS#11 HSM see the sample.\n"
                   "  provider: file\n"
                   "  key_file: master.key\n"
                   "\n"
                   "admin:\n"
                   "  socket: admin.sock\n"
                   "  mode: \"0600\"\n"
                   "\n"
                   "log:\n"
                   "  level: info\n"
                   "\n"
                   "audit:\n"
                   "  path: audit.log\n");
    if (b.len == 0 || b.len >= b.max) {
        kms_buf_dispose(&b);
        return KMS_ERR_INTERNAL;
    }
    rc = certs_write_file(path, b.data, b.len, 0644, force);
    kms_buf_dispose(&b);
    return rc;
}

static int is_wildcard_host(const char *h)
{
    return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || h[0] == '\0';
}

/* This machine's host name if it can be a DNS SAN. */
static int local_hostname(char *out, size_t n)
{
    if (gethostname(out, n) != 0)
        return -1;
    out[n - 1] = '\0';
    if (out[0] == '\0' || strlen(out) > 253)
        return -1;
    for (const char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return -1;
    return 0;
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},   {"listen", required_argument, NULL, 'l'},
        {"host", required_argument, NULL, 'H'},  {"rsa", no_argument, NULL, 'r'},
        {"days", required_argument, NULL, 'D'},  {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *dir_arg = NULL, *listen = "[::]:5696";
    const char *hosts[MAX_HOSTS + 2];
    size_t n_hosts = 0;
    bool rsa = false, force = false;
    int days = 0, o;
    char dir[PATH_MAX], pki[PATH_MAX], path[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX];
    char host[256], hostname[256], ca_cn[64], fp[65];
    kms_error_t err;
    uint16_t port;
    EVP_PKEY *ca_key = NULL, *srv_key = NULL, *cli_key = NULL;
    X509 *ca = NULL, *srv = NULL, *cli = NULL;
    conf_t *check = NULL;
    int ret = KMSCTL_EXIT_FAIL, rc;

    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir_arg = optarg; break;
        case 'l': listen = optarg; break;
        case 'H':
            if (n_hosts >= MAX_HOSTS) {
                fprintf(stderr, "kmsctl init: at most %d --host options\n", MAX_HOSTS);
                return KMSCTL_EXIT_USAGE;
            }
            hosts[n_hosts++] = optarg;
            break;
        case 'r': rsa = true; break;
        case 'f': force = true; break;
        case 'D': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > CERTS_MAX_DAYS) {
                fprintf(stderr, "kmsctl init: --days must be 1-%d\n", CERTS_MAX_DAYS);
                return KMSCTL_EXIT_USAGE;
            }
            days = (int)v;
            break;
        }
        case 'h': init_usage(stdout); return KMSCTL_EXIT_OK;
        default:
            fprintf(stderr, "kmsctl init: unknown or incomplete option '%s'\n", argv[optind - 1]);
            init_usage(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kmsctl init: unexpected argument '%s'\n", argv[optind]);
        init_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    if (dir_arg == NULL || dir_arg[0] == '\0') {
        fprintf(stderr, "kmsctl init: --dir is required\n");
        init_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    if (conf_parse_hostport(listen, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "kmsctl init: --listen '%s' is not ADDR:PORT or [IPV6]:PORT\n", listen);
        return KMSCTL_EXIT_USAGE;
    }
    /* SANs: the --host names, this machine's name, the listen address when
     * it is a specific one. The first of them is the subject CN. */
    if (local_hostname(hostname, sizeof(hostname)) == 0)
        hosts[n_hosts++] = hostname;
    if (!is_wildcard_host(host))
        hosts[n_hosts++] = host;

    /* The directory, made absolute. */
    if (mkdirs(dir_arg) != 0 || realpath(dir_arg, dir) == NULL) {
        fprintf(stderr, "kmsctl init: cannot create %s: %s\n", dir_arg, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    if (chmod(dir, 0700) != 0) {
        fprintf(stderr, "kmsctl init: cannot set mode 0700 on %s: %s\n", dir, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    if (join(path, sizeof(path), dir, "kmsd.yaml") != 0 || join(pki, sizeof(pki), dir, "pki") != 0 ||
        join(db, sizeof(db), dir, "kms.db") != 0 || join(keyfile, sizeof(keyfile), dir, "master.key") != 0 ||
        strlen(dir) + strlen("/admin.sock") >= 108) {
        fprintf(stderr, "kmsctl init: %s is too long a path (the admin socket path must fit in 107 bytes)\n", dir);
        return KMSCTL_EXIT_USAGE;
    }
    if (!force && access(path, F_OK) == 0) {
        fprintf(stderr,
                "kmsctl init: %s already exists; refusing to overwrite it.\n"
                "  Use --force to replace the configuration and certificates "
                "(the master key and the database are kept).\n",
                path);
        return KMSCTL_EXIT_FAIL;
    }
    /* A database without its master key: a new key could not open the
     * stored keys, and creating one would hide that the old one is gone. */
    if (access(db, F_OK) == 0 && access(keyfile, F_OK) != 0) {
        fprintf(stderr,
                "kmsctl init: %s exists but its master key %s is missing.\n"
                "  Restore the master key from your backup; a new one cannot open the stored keys.\n",
                db, keyfile);
        return KMSCTL_EXIT_FAIL;
    }
    if (mkdirs(pki) != 0 || chmod(pki, 0700) != 0) {
        fprintf(stderr, "kmsctl init: cannot create %s: %s\n", pki, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }

    /* PKI: CA, server, admin client. */
    enum certs_key_type kt = rsa ? CERTS_KEY_RSA_3072 : CERTS_KEY_EC_P256;
    unsigned char rnd[4];
    char rhex[9];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        fprintf(stderr, "kmsctl init: no randomness\n");
        goto out;
    }
    kms_hex_encode(rnd, sizeof(rnd), rhex);
    snprintf(ca_cn, sizeof(ca_cn), "kmsd CA %s", rhex);
    const char *srv_cn = n_hosts > 0 ? hosts[0] : "localhost";
    if ((rc = certs_key_new(kt, &ca_key)) != 0 || (rc = certs_create_ca(ca_key, ca_cn, 0, &ca)) != 0 ||
        (rc = certs_key_new(kt, &srv_key)) != 0) {
        fprintf(stderr, "kmsctl init: cannot create the CA: %s\n", kms_strerror(rc));
        goto out;
    }
    if ((rc = certs_issue_server(ca, ca_key, srv_key, strlen(srv_cn) <= 64 ? srv_cn : "kmsd", hosts,
                                 n_hosts, days, &srv)) != 0) {
        fprintf(stderr, "kmsctl init: cannot issue the server certificate: %s%s\n", kms_strerror(rc),
                rc == KMS_ERR_INVAL ? " (is every --host a DNS name or an IP address?)" : "");
        ret = rc == KMS_ERR_INVAL ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_FAIL;
        goto out;
    }
    if ((rc = certs_key_new(kt, &cli_key)) != 0 ||
        (rc = certs_issue_client(ca, ca_key, cli_key, ADMIN_NAME, days, &cli)) != 0 ||
        (rc = certs_fingerprint_sha256(cli, fp)) != 0) {
        fprintf(stderr, "kmsctl init: cannot issue the admin client certificate: %s\n", kms_strerror(rc));
        goto out;
    }
    if (write_pair(pki, "ca", ca_key, ca, force) != 0 || write_pair(pki, "server", srv_key, srv, force) != 0 ||
        write_pair(pki, "client", cli_key, cli, force) != 0)
        goto out;

    /* Master key: created once, never replaced. */
    hsm_config_t hc = {.provider = HSM_PROVIDER_FILE, .key_file = keyfile, .slot = -1,
                       .key_label = "kmsd-master"};
    kms_error_clear(&err);
    rc = hsm_init_master(&hc, NULL, &err);
    if (rc == KMS_ERR_EXISTS) {
        printf("kept the existing master key %s\n", keyfile);
    } else if (rc != 0) {
        fprintf(stderr, "kmsctl init: cannot create the master key: %s\n",
                err.msg[0] ? err.msg : kms_strerror(rc));
        goto out;
    }

    /* The admin client, so the generated certificate is a known identity.
     * The database (and its -wal/-shm files) is private to the service user. */
    mode_t old_umask = umask(077);
    rc = register_admin(db, fp);
    umask(old_umask);
    if (rc != 0)
        goto out;

    /* The configuration last: its presence means the setup completed. */
    if ((rc = write_config(path, listen, force)) != 0) {
        fprintf(stderr, "kmsctl init: cannot write %s: %s\n", path, kms_strerror(rc));
        goto out;
    }
    if ((rc = conf_load(path, &check, &err)) != 0) {
        fprintf(stderr, "kmsctl init: the written configuration does not load: %s\n", err.msg);
        goto out;
    }

    printf("kmsd is set up in %s\n"
           "  configuration   %s\n"
           "  CA certificate  %s/ca.crt   (clients trust this; `kmsctl ca export --dir %s`)\n"
           "  server          %s/server.crt (CN %s, listen %s)\n"
           "  admin client    %s/client.crt + client.key (CN admin, SHA-256 %s)\n"
           "  master key      %s\n"
           "  database        %s\n"
           "start it with:    kmsd -c %s\n",
           dir, path, pki, dir, pki, strlen(srv_cn) <= 64 ? srv_cn : "kmsd", listen, pki, fp, keyfile,
           db, path);
    ret = KMSCTL_EXIT_OK;
out:
    conf_free(check);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    return ret;
}
