/*
 * kmsctl/setup.h: private to kmsctl. What `kmsctl init` and `kmsctl
 * cluster join` share when they set up a kmsd directory: the directory
 * itself, key and certificate files, the master key (a file or a PKCS#11
 * token), and the kmsd.yaml that ties them together. Both produce the same
 * layout (docs/cluster.md, "Forming a cluster").
 */
#ifndef KMSCTL_SETUP_H
#define KMSCTL_SETUP_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "hsm/hsm.h"

/* mkdir -p with mode 0700 for every directory created. 0 or -1 (errno). */
int kmsctl_mkdirs(const char *path);
/* out = dir "/" name; -1 when it does not fit. */
int kmsctl_path(char *out, size_t n, const char *dir, const char *name);
/* This machine's host name when it can be a DNS SAN; -1 otherwise. */
int kmsctl_local_hostname(char *out, size_t n);
/* "", "0.0.0.0" or "::": an address that names no host. */
bool kmsctl_wildcard_host(const char *h);
/* "host:port" other machines reach `listen` at: the address itself, or
 * this machine's host name with its port when it names no host. */
void kmsctl_advertised(const char *listen, char *out, size_t n);
/* A random 128-bit id in lower-case hex (cluster ids, generated node ids). */
int kmsctl_random_id(char out[33]);

/*
 * DIR/STEM.key (0600, O_EXCL unless force) and DIR/STEM.crt holding `cert`
 * followed by `chain` when not NULL (a node certificate is served with
 * its CA, so a joining node can find the CA its token names). Errors are
 * printed as "kmsctl WHO: cannot write PATH: reason".
 */
int kmsctl_write_pair(const char *who, const char *dir, const char *stem, EVP_PKEY *key, X509 *cert,
                      X509 *chain, bool force);

/* ------------------------------------------------------------ master key */
/* The master key options of init and join: a key file DIR/master.key by
 * default, or a key generated in a PKCS#11 token. */
typedef struct kmsctl_hsm_opts {
    const char *module;          /* --hsm-module LIB: PKCS#11 when set */
    const char *token;           /* --hsm-token LABEL */
    const char *pin_file;        /* --hsm-pin-file FILE */
    const char *key_label;       /* --hsm-key-label K (default kmsd-master) */
    char pin_abs[4096];          /* pin_file made absolute (kmsctl_master_key) */
} kmsctl_hsm_opts_t;

/* getopt_long entries for the options above (values 0x100..0x103), and
 * what to append to a usage text. */
#define KMSCTL_HSM_LONGOPTS                                         \
    {"hsm-module", required_argument, NULL, 0x100},                 \
    {"hsm-token", required_argument, NULL, 0x101},                  \
    {"hsm-pin-file", required_argument, NULL, 0x102},               \
    {"hsm-key-label", required_argument, NULL, 0x103}
#define KMSCTL_HSM_USAGE                                                                   \
    "  --hsm-module LIB   master key in a PKCS#11 token instead of DIR/master.key, e.g.\n"   \
    "                     /usr/lib/softhsm/libsofthsm2.so; with:\n"                         \
    "  --hsm-token LABEL  the token's label\n"                                             \
    "  --hsm-pin-file F   file holding the user PIN (its first line)\n"                     \
    "  --hsm-key-label K  the master key's label in the token (default kmsd-master)\n"

/* Take option `o` (getopt's value) into h: true when it was one of them. */
bool kmsctl_hsm_opt(int o, const char *arg, kmsctl_hsm_opts_t *h);

/*
 * The master key of a new node in `dir`: created once (a 0600 key file
 * dir/master.key, or an AES-256 key generated inside the token, sensitive
 * and not extractable) and never replaced; an existing one is kept (said
 * on stdout). cfg_out (paths pointing into h and keyfile, which must
 * outlive it) is what kmsd.yaml's hsm section and hsm_open need. Returns
 * an exit code, the error printed as "kmsctl WHO: ...".
 */
int kmsctl_master_key(const char *who, kmsctl_hsm_opts_t *h, const char *keyfile,
                      hsm_config_t *cfg_out);

/* ------------------------------------------------------------ kmsd.yaml */
typedef struct kmsctl_setting {
    const char *name;            /* a key of the replication section */
    const char *value;           /* written as a YAML scalar (quoted) */
} kmsctl_setting_t;

typedef struct kmsctl_node_conf {
    const char *by;              /* "init" or "cluster join", for the file's first line */
    const char *listen;          /* KMIP listener */
    const char *client_ca;       /* tls.client_ca, relative to the directory */
    const hsm_config_t *hsm;     /* file (key_file relative to the directory) or pkcs11 */
    /* Cluster mode when peer_listen is set; else a single node, no
     * replication section and no node_id. */
    const char *node_id;
    const char *peer_listen;
    const char *const *peers;    /* replication.peers */
    size_t n_peers;
    bool ca_key;                 /* replication.ca_key: pki/ca.key (this node admits nodes) */
    bool certify_ca;             /* certify.ca / ca_key: pki/certify-ca.crt / .key */
    const kmsctl_setting_t *settings; /* more replication keys (cluster settings) */
    size_t n_settings;
} kmsctl_node_conf_t;

/* Write DIR's kmsd.yaml (at `path`, mode 0644; EXISTS unless force). */
int kmsctl_write_config(const char *path, const kmsctl_node_conf_t *nc, bool force);

#endif
