/*
 * kmsctl/cmd_init.c: `kmsctl init`, the first-run setup of a kmsd
 * directory: a private CA, the server certificate, an admin client
 * certificate, the master key (a file, or a key in a PKCS#11 token), the
 * database with the admin client registered, and a kmsd.yaml that ties
 * them together. With --peer-listen the directory is the first node of a
 * cluster: a cluster id in the database, a node certificate with the kmsd
 * peer role, and the replication section (other nodes join with `kmsctl
 * cluster invite` / `kmsctl cluster join`).
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
#include "kmsctl/setup.h"
#include "replication/repl.h"
#include "store/store.h"

#define MAX_HOSTS 32
#define ADMIN_NAME "admin"
#define DEFAULT_TENANT "default"
/* Store meta key of the cluster id (kmsd reads it to start replication). */
#define META_CLUSTER_ID "cluster_id"

int cmd_init(int argc, char **argv);

static void init_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl init --dir DIR [--listen ADDR:PORT] [--host NAME_OR_IP[,...]] [--rsa] [--force]\n"
            "                   [--peer-listen ADDR:PORT [--node-id ID]] [HSM OPTIONS]\n"
            "\n"
            "First-run setup of a kmsd directory. Creates DIR (mode 0700) with:\n"
            "  kmsd.yaml          configuration (paths relative to DIR)\n"
            "  pki/ca.crt, ca.key         private CA (give ca.crt to KMIP clients, e.g. vCenter)\n"
            "  pki/server.crt, server.key server certificate (serverAuth + clientAuth)\n"
            "  pki/client.crt, client.key admin client certificate, CN \"admin\", registered\n"
            "  pki/node.crt, node.key     with --peer-listen: node certificate (kmsd peer role)\n"
            "  pki/certify-ca.crt, .key   the CA of KMIP Certify (trusted by nothing in kmsd)\n"
            "  master.key         file master key (0600) wrapping the data-store keys\n"
            "  kms.db             database, with tenant \"default\" and the admin client\n"
            "\n"
            "  --dir DIR          directory to set up (created if missing)\n"
            "  --listen ADDR:PORT KMIP listener (default [::]:5696)\n"
            "  --host NAME_OR_IP[,NAME_OR_IP...]\n"
            "                     names and addresses clients use to reach kmsd, put in the\n"
            "                     server certificate (repeatable; the first is its CN); this\n"
            "                     machine's host name, localhost, 127.0.0.1 and ::1 are always in\n"
            "  --rsa              RSA 3072 keys instead of EC P-256\n"
            "  --days N           leaf certificate validity in days (default %d; CA: %d)\n"
            "  --force            replace an existing configuration and PKI (clients holding\n"
            "                     certificates of the old CA must be given new ones). The\n"
            "                     master key and the database are always kept.\n"
            "  --peer-listen ADDR:PORT  make DIR the first node of a cluster: the replication\n"
            "                     listener other nodes connect to (docs/cluster.md); add nodes\n"
            "                     with `kmsctl cluster invite` and `kmsctl cluster join`\n"
            "  --node-id ID       this node's id in the cluster (letters, digits, - _ .;\n"
            "                     default: a random one)\n"
            KMSCTL_HSM_USAGE,
            CERTS_LEAF_DAYS, CERTS_CA_DAYS);
}

/* One --host value: a comma-separated list, each name copied into its own
 * slot of `store` (the SAN list points there). Empty items are skipped. */
static int add_hosts(const char *arg, char (*store)[256], const char **hosts, size_t *n)
{
    for (const char *p = arg; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (*n >= MAX_HOSTS) {
                fprintf(stderr, "kmsctl init: at most %d --host names\n", MAX_HOSTS);
                return KMSCTL_EXIT_USAGE;
            }
            if (len >= sizeof(store[0])) {
                fprintf(stderr, "kmsctl init: --host name '%.*s...' is too long\n", 40, p);
                return KMSCTL_EXIT_USAGE;
            }
            memcpy(store[*n], p, len);
            store[*n][len] = '\0';
            hosts[*n] = store[*n];
            (*n)++;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/*
 * Register tenant "default" (if missing) and the admin client; for the
 * first node of a cluster (self), also this node in the node list and the
 * cluster id (cluster_id, 33 bytes): the one the database already has is
 * kept, else a new one is made. One commit.
 */
static int register_admin(const char *db_path, const char *fingerprint, const store_node_t *self,
                          char *cluster_id)
{
    store_options_t opt = {.path = db_path, .node_id = self ? self->node_id : NULL,
                           .max_batch = 512, .read_only = false};
    kms_arena_t *a = NULL;
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
    if (self && (rc = store_write_node(w, self)) != 0)
        goto fail;
    if (self) {
        uint8_t *v = NULL;
        size_t len = 0;
        if ((a = kms_arena_new(0)) == NULL) {
            rc = KMS_ERR_NOMEM;
            goto fail;
        }
        rc = store_meta_get(r, a, META_CLUSTER_ID, &v, &len);
        if (rc == 0 && len > 0 && len < 33) {
            memcpy(cluster_id, v, len);
            cluster_id[len] = '\0';
        } else if (rc == KMS_ERR_NOTFOUND) {
            if ((rc = kmsctl_random_id(cluster_id)) != 0 ||
                (rc = store_write_meta(w, META_CLUSTER_ID, cluster_id, strlen(cluster_id))) != 0)
                goto fail;
        } else {
            rc = rc ? rc : KMS_ERR_PROTO;
            goto fail;
        }
    }
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
    kms_arena_free(a);
    store_write_free(w);
    store_reader_free(r);
    store_close(s);
    return rc;
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},   {"listen", required_argument, NULL, 'l'},
        {"host", required_argument, NULL, 'H'},  {"rsa", no_argument, NULL, 'r'},
        {"days", required_argument, NULL, 'D'},  {"force", no_argument, NULL, 'f'},
        {"peer-listen", required_argument, NULL, 'p'}, {"node-id", required_argument, NULL, 'n'},
        KMSCTL_HSM_LONGOPTS,
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *dir_arg = NULL, *listen = "[::]:5696", *peer_listen = NULL, *node_arg = NULL;
    const char *hosts[MAX_HOSTS + 2];
    static char host_store[MAX_HOSTS][256];
    size_t n_hosts = 0;
    bool rsa = false, force = false;
    int days = 0, o;
    char dir[PATH_MAX], pki[PATH_MAX], path[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX];
    char host[256], hostname[256], ca_cn[64], certify_cn[64], fp[65], node_id[64] = "", cluster_id[33] = "";
    kms_error_t err;
    uint16_t port;
    EVP_PKEY *certify_key = NULL, *ca_key = NULL, *srv_key = NULL, *cli_key = NULL, *node_key = NULL;
    X509 *ca = NULL, *srv = NULL, *cli = NULL, *node = NULL, *certify_ca = NULL;
    conf_t *check = NULL;
    kmsctl_hsm_opts_t hopt;
    hsm_config_t hc;
    int ret = KMSCTL_EXIT_FAIL, rc;

    memset(&hopt, 0, sizeof(hopt));
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (kmsctl_hsm_opt(o, optarg, &hopt))
            continue;
        switch (o) {
        case 'd': dir_arg = optarg; break;
        case 'l': listen = optarg; break;
        case 'p': peer_listen = optarg; break;
        case 'n': node_arg = optarg; break;
        case 'H':
            if ((rc = add_hosts(optarg, host_store, hosts, &n_hosts)) != 0)
                return rc;
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
    if (peer_listen) {
        char phost[256];
        uint16_t pport;
        if (conf_parse_hostport(peer_listen, phost, sizeof(phost), &pport) != 0) {
            fprintf(stderr, "kmsctl init: --peer-listen '%s' is not ADDR:PORT or [IPV6]:PORT\n",
                    peer_listen);
            return KMSCTL_EXIT_USAGE;
        }
        if (node_arg && !repl_node_id_ok(node_arg)) {
            fprintf(stderr, "kmsctl init: --node-id '%s': 1-63 letters, digits, '-', '_' or '.'\n",
                    node_arg);
            return KMSCTL_EXIT_USAGE;
        }
        if (node_arg)
            kms_strlcpy(node_id, node_arg, sizeof(node_id));
        else if (kmsctl_random_id(node_id) != 0) {
            fprintf(stderr, "kmsctl init: no randomness\n");
            return KMSCTL_EXIT_FAIL;
        }
    } else if (node_arg) {
        fprintf(stderr, "kmsctl init: --node-id needs --peer-listen (a node id names a cluster node)\n");
        return KMSCTL_EXIT_USAGE;
    }
    /* SANs: the --host names, this machine's name, the listen address when
     * it is a specific one. The first of them is the subject CN. */
    if (kmsctl_local_hostname(hostname, sizeof(hostname)) == 0)
        hosts[n_hosts++] = hostname;
    if (!kmsctl_wildcard_host(host))
        hosts[n_hosts++] = host;

    /* The directory, made absolute. */
    if (kmsctl_mkdirs(dir_arg) != 0 || realpath(dir_arg, dir) == NULL) {
        fprintf(stderr, "kmsctl init: cannot create %s: %s\n", dir_arg, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    if (chmod(dir, 0700) != 0) {
        fprintf(stderr, "kmsctl init: cannot set mode 0700 on %s: %s\n", dir, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    if (kmsctl_path(path, sizeof(path), dir, "kmsd.yaml") != 0 ||
        kmsctl_path(pki, sizeof(pki), dir, "pki") != 0 ||
        kmsctl_path(db, sizeof(db), dir, "kms.db") != 0 ||
        kmsctl_path(keyfile, sizeof(keyfile), dir, "master.key") != 0 ||
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
    if (!hopt.module && access(db, F_OK) == 0 && access(keyfile, F_OK) != 0) {
        fprintf(stderr,
                "kmsctl init: %s exists but its master key %s is missing.\n"
                "  Restore the master key from your backup; a new one cannot open the stored keys.\n",
                db, keyfile);
        return KMSCTL_EXIT_FAIL;
    }
    if (kmsctl_mkdirs(pki) != 0 || chmod(pki, 0700) != 0) {
        fprintf(stderr, "kmsctl init: cannot create %s: %s\n", pki, strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }

    /* PKI: CA, server, admin client (and node). */
    enum certs_key_type kt = rsa ? CERTS_KEY_RSA_3072 : CERTS_KEY_EC_P256;
    unsigned char rnd[4];
    char rhex[9];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        fprintf(stderr, "kmsctl init: no randomness\n");
        goto out;
    }
    kms_hex_encode(rnd, sizeof(rnd), rhex);
    snprintf(ca_cn, sizeof(ca_cn), "kmsd CA %s", rhex);
    snprintf(certify_cn, sizeof(certify_cn), "kmsd issuing CA %s", rhex);
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
    if (peer_listen && ((rc = certs_key_new(kt, &node_key)) != 0 ||
                        (rc = certs_issue_node(ca, ca_key, node_key, node_id, days, &node)) != 0)) {
        fprintf(stderr, "kmsctl init: cannot issue the node certificate: %s\n", kms_strerror(rc));
        goto out;
    }
    /* The issuing CA of KMIP Certify: a separate key and name, trusted by
     * nothing in kmsd (docs/security.md). */
    if ((rc = certs_key_new(kt, &certify_key)) != 0 ||
        (rc = certs_create_ca(certify_key, certify_cn, 0, &certify_ca)) != 0) {
        fprintf(stderr, "kmsctl init: cannot create the issuing CA: %s\n", kms_strerror(rc));
        goto out;
    }
    if (kmsctl_write_pair("init", pki, "ca", ca_key, ca, NULL, force) != 0 ||
        kmsctl_write_pair("init", pki, "certify-ca", certify_key, certify_ca, NULL, force) != 0 ||
        kmsctl_write_pair("init", pki, "server", srv_key, srv, NULL, force) != 0 ||
        kmsctl_write_pair("init", pki, "client", cli_key, cli, NULL, force) != 0 ||
        (node && kmsctl_write_pair("init", pki, "node", node_key, node, ca, force) != 0))
        goto out;

    /* Master key: created once, never replaced. */
    if ((ret = kmsctl_master_key("init", &hopt, keyfile, &hc)) != KMSCTL_EXIT_OK)
        goto out;
    ret = KMSCTL_EXIT_FAIL;

    /* The admin client, so the generated certificate is a known identity.
     * The database (and its -wal/-shm files) is private to the service user. */
    mode_t old_umask = umask(077);
    store_node_t self;
    memset(&self, 0, sizeof self);
    if (peer_listen) {
        kms_strlcpy(self.node_id, node_id, sizeof self.node_id);
        kmsctl_advertised(peer_listen, self.peer_addr, sizeof self.peer_addr);
        kmsctl_advertised(listen, self.kmip_addr, sizeof self.kmip_addr);
        self.added_hlc = (kms_now_us() / 1000) << 16;
        if ((rc = certs_fingerprint_sha256(node, self.cert_sha256)) != 0)
            goto out;
    }
    rc = register_admin(db, fp, peer_listen ? &self : NULL, cluster_id);
    umask(old_umask);
    if (rc != 0)
        goto out;

    /* The configuration last: its presence means the setup completed. */
    kmsctl_node_conf_t nc = {.by = "init", .listen = listen, .client_ca = "pki/ca.crt", .hsm = &hc,
                             .node_id = node_id, .peer_listen = peer_listen, .ca_key = true,
                             .certify_ca = true};
    if ((rc = kmsctl_write_config(path, &nc, force)) != 0) {
        fprintf(stderr, "kmsctl init: cannot write %s: %s\n", path, kms_strerror(rc));
        goto out;
    }
    if ((rc = conf_load(path, &check, &err)) != 0) {
        fprintf(stderr, "kmsctl init: the written configuration does not load: %s\n",
                kms_error_msg(&err));
        goto out;
    }

    printf("kmsd is set up in %s\n"
           "  configuration   %s\n"
           "  CA certificate  %s/ca.crt   (clients trust this; `kmsctl ca export --dir %s`)\n"
           "  server          %s/server.crt (CN %s, listen %s)\n"
           "  admin client    %s/client.crt + client.key (CN admin, SHA-256 %s)\n",
           dir, path, pki, dir, pki, strlen(srv_cn) <= 64 ? srv_cn : "kmsd", listen, pki, fp);
    if (hopt.module)
        printf("  master key      '%s' in PKCS#11 token '%s'\n", hc.key_label, hopt.token);
    else
        printf("  master key      %s\n", keyfile);
    printf("  database        %s\n", db);
    if (peer_listen)
        printf("  cluster         %s, first node %s (peer listener %s)\n"
               "  node            %s/node.crt + node.key (kmsd peer role)\n"
               "add nodes with:   kmsctl --config %s cluster invite   (then `kmsctl cluster join`)\n",
               cluster_id, node_id, peer_listen, pki, path);
    printf("start it with:    kmsd -c %s\n", path);
    ret = KMSCTL_EXIT_OK;
out:
    conf_free(check);
    X509_free(ca);
    X509_free(certify_ca);
    X509_free(srv);
    X509_free(cli);
    X509_free(node);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(certify_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    EVP_PKEY_free(node_key);
    return ret;
}
