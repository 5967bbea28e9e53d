/*
 * kmsctl/setup.c: the pieces of a kmsd directory that `kmsctl init` and
 * `kmsctl cluster join` both make: directories (0700), key and
 * certificate files, the master key (file or PKCS#11), and kmsd.yaml.
 * Sharing them keeps the two layouts identical: a joined node's directory
 * looks like an initialised one.
 *
 * It deliberately decides nothing about certificates or the database:
 * the commands do.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "certs/certs.h"
#include "common/kms.h"
#include "conf/conf.h"
#include "kmsctl/kmsctl.h"
#include "kmsctl/setup.h"

int kmsctl_mkdirs(const char *path)
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

int kmsctl_path(char *out, size_t n, const char *dir, const char *name)
{
    return (size_t)snprintf(out, n, "%s/%s", dir, name) < n ? 0 : -1;
}

bool kmsctl_wildcard_host(const char *h)
{
    return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || h[0] == '\0';
}

int kmsctl_local_hostname(char *out, size_t n)
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

void kmsctl_advertised(const char *listen, char *out, size_t n)
{
    char host[256], name[256];
    uint16_t port = 0;
    if (conf_parse_hostport(listen, host, sizeof host, &port) == 0 && kmsctl_wildcard_host(host) &&
        kmsctl_local_hostname(name, sizeof name) == 0)
        snprintf(out, n, "%s:%u", name, port);
    else
        kms_strlcpy(out, listen, n);
}

int kmsctl_random_id(char out[33])
{
    uint8_t r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return KMS_ERR_CRYPTO;
    kms_hex_encode(r, sizeof(r), out);
    return 0;
}

int kmsctl_write_pair(const char *who, const char *dir, const char *stem, EVP_PKEY *key, X509 *cert,
                      X509 *chain, bool force)
{
    char kp[PATH_MAX], cp[PATH_MAX], name[64];
    kms_buf_t pem;
    int rc;

    snprintf(name, sizeof(name), "%s.key", stem);
    if (kmsctl_path(kp, sizeof(kp), dir, name) != 0)
        return KMS_ERR_INVAL;
    snprintf(name, sizeof(name), "%s.crt", stem);
    if (kmsctl_path(cp, sizeof(cp), dir, name) != 0)
        return KMS_ERR_INVAL;
    const char *failed = kp;
    kms_buf_init(&pem, 1 << 20);
    rc = certs_write_key_pem(kp, key, force);
    if (rc == 0) {
        failed = cp;
        rc = certs_cert_pem(cert, &pem);
        if (rc == 0 && chain)
            rc = certs_cert_pem(chain, &pem);
        if (rc == 0)
            rc = certs_write_file(cp, pem.data, pem.len, 0644, force);
    }
    if (rc != 0)
        fprintf(stderr, "kmsctl %s: cannot write %s: %s%s\n", who, failed, kms_strerror(rc),
                rc == KMS_ERR_EXISTS ? " (use --force to replace)" : "");
    kms_buf_dispose(&pem);
    return rc;
}

/* ------------------------------------------------------------ master key */
bool kmsctl_hsm_opt(int o, const char *arg, kmsctl_hsm_opts_t *h)
{
    switch (o) {
    case 0x100: h->module = arg; return true;
    case 0x101: h->token = arg; return true;
    case 0x102: h->pin_file = arg; return true;
    case 0x103: h->key_label = arg; return true;
    default: return false;
    }
}

int kmsctl_master_key(const char *who, kmsctl_hsm_opts_t *h, const char *keyfile,
                      hsm_config_t *cfg_out)
{
    kms_error_t err;
    kms_error_clear(&err);
    memset(cfg_out, 0, sizeof(*cfg_out));
    cfg_out->slot = -1;
    cfg_out->key_label = h->key_label ? h->key_label : "kmsd-master";
    if (!h->module && (h->token || h->pin_file || h->key_label)) {
        fprintf(stderr, "kmsctl %s: --hsm-token, --hsm-pin-file and --hsm-key-label need "
                        "--hsm-module\n", who);
        return KMSCTL_EXIT_USAGE;
    }
    if (h->module) {
        if (!h->token || !h->pin_file) {
            fprintf(stderr, "kmsctl %s: --hsm-module needs --hsm-token and --hsm-pin-file\n", who);
            return KMSCTL_EXIT_USAGE;
        }
        /* kmsd.yaml resolves relative paths against its own directory. */
        if (realpath(h->pin_file, h->pin_abs) == NULL) {
            fprintf(stderr, "kmsctl %s: --hsm-pin-file %s: %s\n", who, h->pin_file, strerror(errno));
            return KMSCTL_EXIT_USAGE;
        }
        cfg_out->provider = HSM_PROVIDER_PKCS11;
        cfg_out->module = h->module;
        cfg_out->token_label = h->token;
        cfg_out->pin_file = h->pin_abs;
    } else {
        cfg_out->provider = HSM_PROVIDER_FILE;
        cfg_out->key_file = keyfile;
    }
    int rc = hsm_init_master(cfg_out, NULL, &err);
    if (rc == KMS_ERR_EXISTS) {
        if (h->module)
            printf("kept the existing master key '%s' in token '%s' (no other node may use it)\n",
                   cfg_out->key_label, h->token);
        else
            printf("kept the existing master key %s\n", keyfile);
        return KMSCTL_EXIT_OK;
    }
    if (rc != 0) {
        fprintf(stderr, "kmsctl %s: cannot create the master key: %s\n", who, kms_error_msg(&err));
        return rc == KMS_ERR_CONFIG ? KMSCTL_EXIT_UNREACHABLE : KMSCTL_EXIT_FAIL;
    }
    return KMSCTL_EXIT_OK;
}

/* ------------------------------------------------------------ kmsd.yaml */
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

/* "  key: "value"\n" */
static void yline(kms_buf_t *b, const char *indent, const char *key, const char *value)
{
    kms_buf_printf(b, "%s%s: ", indent, key);
    yq(b, value);
    kms_buf_append_byte(b, '\n');
}

static void write_hsm(kms_buf_t *b, const hsm_config_t *h)
{
    if (h->provider == HSM_PROVIDER_PKCS11) {
        kms_buf_printf(b, "hsm:\n"
                          "  # A non-extractable AES-256 key inside the PKCS#11 token; the PIN\n"
                          "  # is read from pin_file.\n"
                          "  provider: pkcs11\n");
        yline(b, "  ", "module", h->module);
        yline(b, "  ", "token_label", h->token_label);
        yline(b, "  ", "pin_file", h->pin_file);
        yline(b, "  ", "key_label", h->key_label);
        kms_buf_append_byte(b, '\n');
        return;
    }
    kms_buf_printf(b, "hsm:\n"
                      "  # The master key is a 0600 file here; for a PKCS#11 HSM see the sample.\n"
                      "  provider: file\n"
                      "  key_file: master.key\n"
                      "\n");
}

static void write_replication(kms_buf_t *b, const kmsctl_node_conf_t *nc)
{
    kms_buf_printf(b, "replication:\n"
                      "  # Active-active replication with the other nodes (docs/cluster.md).\n");
    yline(b, "  ", "listen", nc->peer_listen);
    kms_buf_printf(b, "  # Nodes to connect to at start; nodes that join later are learnt\n"
                      "  # from the replicated node list.\n"
                      "  peers:");
    if (nc->n_peers == 0)
        kms_buf_printf(b, " []");
    for (size_t i = 0; i < nc->n_peers; i++) {
        kms_buf_printf(b, "\n    - ");
        yq(b, nc->peers[i]);
    }
    kms_buf_printf(b, "\n"
                      "  # This node's certificate (kmsd peer role, CN = node_id) and the\n"
                      "  # cluster CA every node's certificate chains to.\n"
                      "  cert: pki/node.crt\n"
                      "  key: pki/node.key\n"
                      "  ca: pki/ca.crt\n");
    if (nc->ca_key)
        kms_buf_printf(b, "  # The CA key signs the certificates of nodes this node admits\n"
                          "  # (`kmsctl cluster invite`).\n"
                          "  ca_key: pki/ca.key\n");
    else
        kms_buf_printf(b, "  # No CA key here: invite new nodes from a node that holds it.\n"
                          "  ca_key: \"\"\n");
    for (size_t i = 0; i < nc->n_settings; i++)
        yline(b, "  ", nc->settings[i].name, nc->settings[i].value);
    kms_buf_append_byte(b, '\n');
}

int kmsctl_write_config(const char *path, const kmsctl_node_conf_t *nc, bool force)
{
    kms_buf_t b;
    int rc;
    kms_buf_init(&b, 1 << 16);
    kms_buf_printf(&b, "# kmsd configuration written by `kmsctl %s`.\n"
                       "# Relative paths are resolved against this file's directory.\n"
                       "# Every setting and its default: kmsd.yaml.sample (conf/kmsd.yaml).\n"
                       "# The effective configuration: kmsd --check-config -c THIS_FILE\n"
                       "\n",
                   nc->by);
    if (nc->peer_listen) {
        kms_buf_printf(&b, "# This node's id in the cluster (its node certificate's CN).\n");
        yline(&b, "", "node_id", nc->node_id);
        kms_buf_append_byte(&b, '\n');
    }
    kms_buf_printf(&b, "listen:\n  - ");
    yq(&b, nc->listen);
    kms_buf_printf(&b, "\n\n"
                       "tls:\n"
                       "  cert: pki/server.crt\n"
                       "  key: pki/server.key\n");
    yline(&b, "  ", "client_ca", nc->client_ca);
    kms_buf_printf(&b, "  client_auth: required\n"
                       "\n"
                       "store:\n"
                       "  path: kms.db\n"
                       "\n");
    write_hsm(&b, nc->hsm);
    kms_buf_printf(&b, "admin:\n"
                       "  socket: admin.sock\n"
                       "  mode: \"0600\"\n"
                       "\n"
                       "log:\n"
                       "  level: info\n"
                       "\n"
                       "audit:\n"
                       "  path: audit.log\n");
    if (nc->certify_ca)
        kms_buf_printf(&b, "\n"
                           "# KMIP Certify / Re-certify sign with this CA, which nothing in\n"
                           "# kmsd trusts: a certificate a client obtains is no kmsd credential.\n"
                           "certify:\n"
                           "  ca: pki/certify-ca.crt\n"
                           "  ca_key: pki/certify-ca.key\n");
    if (nc->peer_listen) {
        kms_buf_append_byte(&b, '\n');
        write_replication(&b, nc);
    }
    if (b.len == 0 || b.len >= b.max) {
        kms_buf_dispose(&b);
        return KMS_ERR_INTERNAL;
    }
    rc = certs_write_file(path, b.data, b.len, 0644, force);
    kms_buf_dispose(&b);
    return rc;
}
