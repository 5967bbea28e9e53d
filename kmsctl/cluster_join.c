/*
 * kmsctl/cluster_join.c: `kmsctl cluster join TOKEN --dir D ...`, setting
 * up a new node of an existing cluster in D, with the same layout as
 * `kmsctl init` (docs/cluster.md, "Forming a cluster"):
 *
 *  1. the node's own keys: a node key and a server key, and their CSRs
 *     (node CSR: CN = node id; server CSR: the names clients use);
 *  2. TLS 1.3 to the inviter's peer listener WITHOUT a client certificate;
 *     the inviter's certificate must chain to a CA whose SHA-256 is the one
 *     in the token (the CA is found in the chain the inviter sends) and
 *     carry the peer role, before the token's secret is sent;
 *  3. JOIN_REQ {invite id, secret, node id, addresses, CSRs} and one
 *     answer: JOIN_RESP {CA, client CA, node and server certificates,
 *     cluster id, nodes, every data-store key, cluster settings, and KMIP
 *     Certify's issuing CA with its key when the inviter has one} or ERROR
 *     (a used, expired or wrong token: printed as the inviter says it);
 *  4. the certificates checked against the keys made in 1 and the CA;
 *  5. the PKI files in D/pki (the issuing CA's key, if any, mode 0600 as
 *     `kmsctl init` writes it), the node's OWN master key (file or PKCS#11: never shared),
 *     a new store holding the data-store keys wrapped under that master
 *     key, the cluster id and the node list, and D/kmsd.yaml last.
 *
 * `kmsd -c D/kmsd.yaml` then catches up from its peers (snapshot, then the
 * tail) before it opens its KMIP listener. It deliberately copies no
 * objects itself: replication does.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "conf/conf.h"
#include "hsm/hsm.h"
#include "kmsctl/kmsctl.h"
#include "kmsctl/setup.h"
#include "replication/repl.h"
#include "store/store.h"

int kmsctl_cluster_join(int argc, char **argv);

#define MAX_HOSTS 32
#define JOIN_TIMEOUT_S 30
#define META_CLUSTER_ID "cluster_id"

static void join_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl cluster join TOKEN --dir DIR --listen ADDR:PORT --peer-listen ADDR:PORT\n"
            "                           [--host NAME_OR_IP ...] [--node-id ID] [--rsa] [--days N]\n"
            "                           [HSM OPTIONS]\n"
            "\n"
            "Set up a new node of the cluster that issued TOKEN (`kmsctl cluster invite` on a\n"
            "node of it) in DIR, with the layout of `kmsctl init`: its own master key, its\n"
            "server and node certificates signed by the cluster CA (so a client that trusts\n"
            "the CA trusts every node), the cluster's data-store keys wrapped under its own\n"
            "master key, and kmsd.yaml. Start it with `kmsd -c DIR/kmsd.yaml`: it copies the\n"
            "cluster's keys from its peers before it opens its KMIP listener;\n"
            "`kmsctl --config DIR/kmsd.yaml cluster status --wait` shows that catch-up.\n"
            "\n"
            "  TOKEN              the invite's token (one use; it holds a secret)\n"
            "  --dir DIR          directory to set up (created; must not hold a kmsd already)\n"
            "  --listen ADDR:PORT this node's KMIP listener\n"
            "  --peer-listen ADDR:PORT  this node's replication listener\n"
            "  --host NAME_OR_IP  extra name in the server certificate (repeatable); this\n"
            "                     machine's host name, localhost, 127.0.0.1 and ::1 are always in\n"
            "  --node-id ID       this node's id (letters, digits, - _ .; default: random)\n"
            "  --rsa              RSA 3072 keys instead of EC P-256\n"
            "  --days N           certificate validity in days (default %d)\n"
            KMSCTL_HSM_USAGE
            "\n"
            "exit status: 0 joined, 1 refused or failed, 2 usage, 3 inviter unreachable\n",
            CERTS_LEAF_DAYS);
}

/* ------------------------------------------------------------ talking */
typedef struct link {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char addr[256];
} link_t;

static void link_close(link_t *l)
{
    if (l->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(l->ssl);
        SSL_free(l->ssl);
    }
    SSL_CTX_free(l->ctx);
    if (l->fd >= 0)
        close(l->fd);
    ERR_clear_error();
    memset(l, 0, sizeof *l);
    l->fd = -1;
}

/* TCP to "host:port" within the timeout (blocking socket afterwards,
 * with send/receive timeouts). */
static int tcp_connect(const char *addr, int *fd_out, kms_error_t *err)
{
    char host[256];
    uint16_t port;
    char ports[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int fd = -1, rc, last = 0;

    if (conf_parse_hostport(addr, host, sizeof host, &port) != 0)
        return kms_error_set(err, KMS_ERR_PROTO, "'%s' is not HOST:PORT", addr);
    snprintf(ports, sizeof ports, "%u", port);
    if ((rc = getaddrinfo(host, ports, &hints, &ai)) != 0)
        return kms_error_set(err, KMS_ERR_UNAVAIL, "%s: %s", addr, gai_strerror(rc));
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = JOIN_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
            break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return kms_error_set(err, KMS_ERR_UNAVAIL, "cannot connect to %s: %s", addr,
                             strerror(last ? last : ECONNREFUSED));
    *fd_out = fd;
    return 0;
}

/*
 * The inviter must show a certificate with the peer role that chains to
 * the CA the token names. The CA travels in the chain the inviter sends
 * (its node.crt holds the CA after the node certificate); it is taken
 * only if its SHA-256 is the token's. 0, or KMS_ERR_PERM with why.
 */
static int check_inviter(SSL *ssl, const uint8_t want[32], kms_error_t *err)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = SSL_get0_peer_certificate(ssl), *anchor = NULL;
    for (int i = 0; chain && i < sk_X509_num(chain) && !anchor; i++) {
        uint8_t md[32];
        unsigned int len = 0;
        X509 *x = sk_X509_value(chain, i);
        if (X509_digest(x, EVP_sha256(), md, &len) == 1 && len == 32 &&
            CRYPTO_memcmp(md, want, 32) == 0)
            anchor = x;
    }
    ERR_clear_error();
    if (!leaf)
        return kms_error_set(err, KMS_ERR_PERM, "the inviter presented no certificate");
    if (!anchor)
        return kms_error_set(err, KMS_ERR_PERM,
                             "the inviter did not present the cluster CA named in the token "
                             "(another cluster, or not a kmsd peer listener?)");
    kms_error_t ve;
    kms_error_clear(&ve);
    if (certs_verify(anchor, leaf, X509_PURPOSE_SSL_SERVER, &ve) != 0)
        return kms_error_set(err, KMS_ERR_PERM,
                             "the inviter's certificate does not chain to the cluster CA: %s",
                             kms_error_msg(&ve));
    if (!certs_has_peer_role(leaf))
        return kms_error_set(err, KMS_ERR_PERM,
                             "the inviter's certificate is not a kmsd node certificate");
    return 0;
}

/* Connect to one of the inviter's addresses and check who answers. */
static int link_open(const repl_token_t *t, link_t *l, kms_error_t *err)
{
    int rc = KMS_ERR_UNAVAIL;
    l->fd = -1;
    for (size_t i = 0; i < t->n_addrs; i++) {
        kms_strlcpy(l->addr, t->addrs[i], sizeof l->addr);
        if ((rc = tcp_connect(t->addrs[i], &l->fd, err)) != 0)
            continue;
        l->ctx = SSL_CTX_new(TLS_client_method());
        if (!l->ctx || !SSL_CTX_set_min_proto_version(l->ctx, TLS1_3_VERSION) ||
            !SSL_CTX_set_max_proto_version(l->ctx, TLS1_3_VERSION) || !(l->ssl = SSL_new(l->ctx)) ||
            !SSL_set_fd(l->ssl, l->fd)) {
            link_close(l);
            return kms_error_set(err, KMS_ERR_CRYPTO, "cannot set up TLS");
        }
        /* The chain is checked by hand below against the token's CA: no
         * trust store is involved. */
        SSL_set_verify(l->ssl, SSL_VERIFY_NONE, NULL);
        ERR_clear_error();
        if (SSL_connect(l->ssl) != 1) {
            unsigned long e = ERR_peek_last_error();
            rc = kms_error_set(err, KMS_ERR_UNAVAIL, "TLS with %s failed: %s", l->addr,
                               e ? ERR_reason_error_string(e) : "connection closed");
            link_close(l);
            continue;
        }
        if ((rc = check_inviter(l->ssl, t->ca_sha256, err)) != 0) {
            link_close(l);
            return rc; /* the wrong party: do not try others with the secret */
        }
        return 0;
    }
    return rc;
}

static int link_send(link_t *l, const repl_frame_t *f, kms_error_t *err)
{
    kms_buf_t b;
    kms_buf_init(&b, REPL_MAX_FRAME_DEFAULT + REPL_FRAME_HEADER);
    int rc = repl_frame_encode(f, 0, &b, err);
    if (rc == 0) {
        ERR_clear_error();
        if (SSL_write(l->ssl, b.data, (int)b.len) != (int)b.len)
            rc = kms_error_set(err, KMS_ERR_IO, "cannot send to %s", l->addr);
    }
    kms_buf_dispose_wipe(&b); /* the join secret */
    return rc;
}

static int read_exact(link_t *l, uint8_t *p, size_t n, kms_error_t *err)
{
    for (size_t got = 0; got < n;) {
        ERR_clear_error();
        int r = SSL_read(l->ssl, p + got, (int)(n - got > INT_MAX ? INT_MAX : n - got));
        if (r <= 0) {
            int e = SSL_get_error(l->ssl, r);
            return kms_error_set(err, KMS_ERR_IO, "%s %s", l->addr,
                                 e == SSL_ERROR_ZERO_RETURN ? "closed the connection"
                                 : errno == EAGAIN ? "did not answer in time"
                                                   : "closed the connection");
        }
        got += (size_t)r;
    }
    return 0;
}

/* One frame from the inviter (header checked before the body is read). */
static int link_recv(link_t *l, repl_frame_t **out, kms_error_t *err)
{
    uint8_t hdr[REPL_FRAME_HEADER];
    size_t total = 0;
    int type = 0, rc;
    if ((rc = read_exact(l, hdr, sizeof hdr, err)) != 0)
        return rc;
    if (repl_frame_header(hdr, sizeof hdr, 0, &type, &total) != 0)
        return kms_error_set(err, KMS_ERR_PROTO, "%s answered something that is not a frame",
                             l->addr);
    uint8_t *buf = malloc(total);
    if (!buf)
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    memcpy(buf, hdr, sizeof hdr);
    if ((rc = read_exact(l, buf + sizeof hdr, total - sizeof hdr, err)) == 0)
        rc = repl_frame_decode(buf, total, NULL, out, err);
    kms_wipe(buf, total); /* data-store keys */
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ checking */
/* The certificate in `pem` chains to `ca`, certifies `key`, and (for the
 * node certificate) is named node_id and carries the peer role. */
static int check_issued(X509 *ca, repl_bytes_t pem, EVP_PKEY *key, const char *node_id,
                        const char *what, X509 **out, kms_error_t *err)
{
    X509 *x = NULL;
    char cn[64];
    kms_error_t ve;
    kms_error_clear(&ve);
    if (certs_cert_parse(pem.p, pem.len, &x) != 0)
        return kms_error_set(err, KMS_ERR_PROTO, "the inviter sent no readable %s certificate", what);
    int rc = KMS_ERR_PROTO;
    if (certs_verify(ca, x, X509_PURPOSE_SSL_SERVER, &ve) != 0)
        kms_error_set(err, rc, "the %s certificate does not chain to the cluster CA: %s", what,
                      kms_error_msg(&ve));
    else if (EVP_PKEY_eq(X509_get0_pubkey(x), key) != 1)
        kms_error_set(err, rc, "the %s certificate is not for this node's key", what);
    else if (node_id && (certs_subject_cn(x, cn, sizeof cn) != 0 || strcmp(cn, node_id) != 0 ||
                         !certs_has_peer_role(x)))
        kms_error_set(err, rc, "the node certificate is not one for node %s", node_id);
    else
        rc = 0;
    ERR_clear_error();
    if (rc) {
        X509_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

/* ------------------------------------------------------------ the store */
/* Identity of a replicated row as the frame carries it. */
static store_change_id_t change_of(const repl_entity_t *e)
{
    store_change_id_t id;
    memset(&id, 0, sizeof id);
    id.hlc = e->hlc;
    kms_strlcpy(id.origin, e->origin, sizeof id.origin);
    id.origin_seq = e->origin_seq;
    return id;
}

/*
 * The new node's store: cluster id, every data-store key wrapped under
 * this node's own master key, the current one, and the node list. Not
 * logged (they came from the cluster; the snapshot that follows at the
 * first start brings the same rows).
 */
static int seed_store(const char *db, const char *node_id, const hsm_config_t *hc,
                      const repl_frame_t *resp, kms_error_t *err)
{
    store_options_t so = {.path = db, .node_id = node_id, .max_batch = 512};
    store_t *s = NULL;
    store_write_t *w = NULL;
    hsm_t *h = NULL;
    hsm_keyring_t *kr = NULL;
    kms_buf_t wrapped;
    bool have_current = false;
    int rc;

    kms_buf_init(&wrapped, 1 << 16);
    if ((rc = hsm_open(hc, &h, err)) != 0)
        goto out;
    if ((rc = hsm_keyring_new(h, &kr)) != 0) {
        kms_error_set(err, rc, "keyring: %s", kms_strerror(rc));
        goto out;
    }
    if ((rc = store_open(&so, &s)) != 0) {
        kms_error_set(err, rc, "cannot create the database %s: %s", db, kms_strerror(rc));
        goto out;
    }
    if (!(w = store_write_new())) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    store_write_no_log(w);
    rc = store_write_meta(w, META_CLUSTER_ID, resp->u.join_resp.cluster_id,
                          strlen(resp->u.join_resp.cluster_id));
    for (size_t i = 0; i < resp->u.join_resp.n_dsks && rc == 0; i++) {
        const repl_entity_t *e = &resp->u.join_resp.dsks[i];
        store_change_id_t id = change_of(e);
        kms_buf_reset(&wrapped);
        if (!e->dsk || (rc = hsm_keyring_import(kr, e->dsk_id, e->dsk, &wrapped)) != 0) {
            rc = kms_error_set(err, rc ? rc : KMS_ERR_PROTO,
                               "cannot wrap data-store key %u under this node's master key: %s",
                               e->dsk_id, kms_strerror(rc ? rc : KMS_ERR_PROTO));
            break;
        }
        rc = store_write_dsk_repl(w, e->dsk_id, wrapped.data, wrapped.len, &id);
        if (rc == 0 && e->dsk_id == resp->u.join_resp.current_dsk) {
            rc = store_write_dsk_current_repl(w, e->dsk_id, &id);
            have_current = true;
        }
    }
    if (rc == 0 && !have_current)
        rc = kms_error_set(err, KMS_ERR_PROTO, "the inviter sent no current data-store key");
    for (size_t i = 0; i < resp->u.join_resp.n_nodes && rc == 0; i++) {
        const repl_entity_t *e = &resp->u.join_resp.nodes[i];
        store_node_t n;
        store_change_id_t id = change_of(e);
        memset(&n, 0, sizeof n);
        kms_strlcpy(n.node_id, e->node.node_id, sizeof n.node_id);
        kms_strlcpy(n.peer_addr, e->node.peer_addr, sizeof n.peer_addr);
        kms_strlcpy(n.kmip_addr, e->node.kmip_addr, sizeof n.kmip_addr);
        kms_strlcpy(n.cert_sha256, e->node.cert_sha256, sizeof n.cert_sha256);
        n.added_hlc = e->node.added_hlc;
        n.removed = e->node.removed;
        rc = store_write_node_repl(w, &n, &id);
    }
    if (rc == 0 && (rc = store_commit(s, w, NULL, 0)) != 0)
        kms_error_set(err, rc, "cannot write the database %s: %s", db, kms_strerror(rc));
    else if (rc && !err->msg[0])
        kms_error_set(err, rc, "cannot prepare the database: %s", kms_strerror(rc));
out:
    store_write_free(w);
    store_close(s);
    hsm_keyring_free(kr);
    hsm_close(h);
    kms_buf_dispose(&wrapped); /* wrapped forms only */
    return rc;
}

/* ------------------------------------------------------------ command */
typedef struct join_args {
    const char *token, *dir, *listen, *peer_listen, *node_id;
    const char *hosts[MAX_HOSTS + 2];
    size_t n_hosts;
    bool rsa;
    int days;
    kmsctl_hsm_opts_t hsm;
} join_args_t;

static int parse_args(int argc, char **argv, join_args_t *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},  {"listen", required_argument, NULL, 'l'},
        {"peer-listen", required_argument, NULL, 'p'}, {"host", required_argument, NULL, 'H'},
        {"node-id", required_argument, NULL, 'n'}, {"rsa", no_argument, NULL, 'r'},
        {"days", required_argument, NULL, 'D'}, KMSCTL_HSM_LONGOPTS,
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (kmsctl_hsm_opt(o, optarg, &a->hsm))
            continue;
        switch (o) {
        case 'd': a->dir = optarg; break;
        case 'l': a->listen = optarg; break;
        case 'p': a->peer_listen = optarg; break;
        case 'n': a->node_id = optarg; break;
        case 'r': a->rsa = true; break;
        case 'H':
            if (a->n_hosts >= MAX_HOSTS) {
                fprintf(stderr, "kmsctl cluster join: at most %d --host options\n", MAX_HOSTS);
                return KMSCTL_EXIT_USAGE;
            }
            a->hosts[a->n_hosts++] = optarg;
            break;
        case 'D': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > CERTS_MAX_DAYS) {
                fprintf(stderr, "kmsctl cluster join: --days must be 1-%d\n", CERTS_MAX_DAYS);
                return KMSCTL_EXIT_USAGE;
            }
            a->days = (int)v;
            break;
        }
        case 'h': join_usage(stdout); return -1;
        default:
            fprintf(stderr, "kmsctl cluster join: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            join_usage(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    /* getopt_long permutes: the token is the one operand left. */
    if (optind != argc - 1) {
        fprintf(stderr, "kmsctl cluster join: give exactly one TOKEN\n");
        join_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    a->token = argv[optind];
    char host[256];
    uint16_t port;
    if (!a->dir || !a->listen || !a->peer_listen) {
        fprintf(stderr, "kmsctl cluster join: --dir, --listen and --peer-listen are required\n");
        return KMSCTL_EXIT_USAGE;
    }
    if (conf_parse_hostport(a->listen, host, sizeof host, &port) != 0 ||
        conf_parse_hostport(a->peer_listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "kmsctl cluster join: --listen and --peer-listen are ADDR:PORT or [IPV6]:PORT\n");
        return KMSCTL_EXIT_USAGE;
    }
    if (a->node_id && !repl_node_id_ok(a->node_id)) {
        fprintf(stderr, "kmsctl cluster join: --node-id '%s': 1-63 letters, digits, '-', '_' or '.'\n",
                a->node_id);
        return KMSCTL_EXIT_USAGE;
    }
    return 0;
}

/* Keys and CSRs of the new node. */
typedef struct node_keys {
    EVP_PKEY *node_key, *srv_key;
    kms_buf_t node_csr, srv_csr;
} node_keys_t;

static int make_keys(const join_args_t *a, const char *node_id, const char *srv_cn, node_keys_t *k)
{
    X509_REQ *nreq = NULL, *sreq = NULL;
    enum certs_key_type kt = a->rsa ? CERTS_KEY_RSA_3072 : CERTS_KEY_EC_P256;
    int rc;
    if ((rc = certs_key_new(kt, &k->node_key)) != 0 || (rc = certs_key_new(kt, &k->srv_key)) != 0 ||
        (rc = certs_csr_new(k->node_key, node_id, NULL, 0, &nreq)) != 0 ||
        (rc = certs_csr_new(k->srv_key, srv_cn, a->hosts, a->n_hosts, &sreq)) != 0 ||
        (rc = certs_csr_pem(nreq, &k->node_csr)) != 0 || (rc = certs_csr_pem(sreq, &k->srv_csr)) != 0)
        fprintf(stderr, "kmsctl cluster join: cannot make the node's keys: %s%s\n",
                kms_strerror(rc),
                rc == KMS_ERR_INVAL ? " (is every --host a DNS name or an IP address?)" : "");
    X509_REQ_free(nreq);
    X509_REQ_free(sreq);
    return rc;
}

/* Write `pem` as-is to dir/name (0644). */
static int write_pem(const char *dir, const char *name, repl_bytes_t pem)
{
    char p[PATH_MAX];
    int rc = kmsctl_path(p, sizeof p, dir, name) == 0 ? certs_write_file(p, pem.p, pem.len, 0644, false)
                                                      : KMS_ERR_INVAL;
    if (rc)
        fprintf(stderr, "kmsctl cluster join: cannot write %s/%s: %s\n", dir, name, kms_strerror(rc));
    return rc;
}

/* KMIP Certify's issuing CA from the inviter, checked (a CA certificate,
 * its key, not the cluster CA) and written as pki/certify-ca.crt / .key;
 * *have_out false when the inviter has none. */
static int write_certify_ca(const char *pki, const repl_frame_t *resp, X509 *cluster_ca,
                            bool *have_out)
{
    const repl_bytes_t crt = resp->u.join_resp.certify_ca;
    const kms_secret_t *k = resp->u.join_resp.certify_ca_key;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    BIO *b = NULL;
    int rc = KMS_ERR_PROTO;

    *have_out = false;
    if (!crt.len)
        return 0;
    if (k && k->len <= INT_MAX && (b = BIO_new_mem_buf(k->data, (int)k->len)))
        key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    if (certs_cert_parse(crt.p, crt.len, &ca) != 0 || !key || X509_check_ca(ca) < 1 ||
        X509_check_private_key(ca, key) != 1 || X509_cmp(ca, cluster_ca) == 0) {
        fprintf(stderr, "kmsctl cluster join: the inviter's issuing CA (certify.ca) is not a CA "
                        "certificate with its key\n");
        goto out;
    }
    if ((rc = kmsctl_write_pair("cluster join", pki, "certify-ca", key, ca, NULL, false)) == 0)
        *have_out = true;
out:
    ERR_clear_error();
    BIO_free(b);
    EVP_PKEY_free(key);
    X509_free(ca);
    return rc;
}

/* replication.peers: every other node that is not removed, then the
 * inviter's addresses, once each. */
static size_t peer_list(const repl_token_t *t, const repl_frame_t *resp, const char *node_id,
                        const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < resp->u.join_resp.n_nodes + t->n_addrs && n < cap; i++) {
        const char *addr;
        if (i < resp->u.join_resp.n_nodes) {
            const repl_node_info_t *x = &resp->u.join_resp.nodes[i].node;
            if (x->removed || strcmp(x->node_id, node_id) == 0 || !x->peer_addr[0])
                continue;
            addr = x->peer_addr;
        } else {
            addr = t->addrs[i - resp->u.join_resp.n_nodes];
        }
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(out[j], addr) == 0;
        if (!dup)
            out[n++] = addr;
    }
    return n;
}

/* The replication keys an inviter may pass on (its cluster settings). */
static bool setting_known(const char *name)
{
    static const char *const known[] = {"sync_acks",      "sync_timeout_ms", "on_sync_timeout",
                                        "max_clock_skew", "max_lag",         "max_frame"};
    for (size_t i = 0; i < KMS_ARRAY_SIZE(known); i++)
        if (strcmp(name, known[i]) == 0)
            return true;
    return false;
}

int kmsctl_cluster_join(int argc, char **argv)
{
    join_args_t a;
    repl_token_t tok;
    link_t l = {.fd = -1};
    node_keys_t k;
    repl_frame_t *req = NULL, *resp = NULL;
    X509 *ca = NULL, *node = NULL, *srv = NULL;
    kms_error_t err;
    conf_t *check = NULL;
    char dir[PATH_MAX], pki[PATH_MAX], path[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX];
    char node_id[64], hostname[256] = "", host[256], peer_adv[300], kmip_adv[300];
    const char *peers[64];
    hsm_config_t hc;
    uint16_t port;
    int ret = KMSCTL_EXIT_FAIL, rc;
    bool have_certify = false;

    memset(&a, 0, sizeof a);
    memset(&tok, 0, sizeof tok);
    memset(&k, 0, sizeof k);
    kms_buf_init(&k.node_csr, 1 << 16);
    kms_buf_init(&k.srv_csr, 1 << 16);
    kms_error_clear(&err);
    if ((rc = parse_args(argc, argv, &a)) != 0) {
        ret = rc < 0 ? KMSCTL_EXIT_OK : rc;
        goto out;
    }
    if (repl_token_decode(a.token, &tok, &err) != 0) {
        fprintf(stderr, "kmsctl cluster join: %s\n", kms_error_msg(&err));
        ret = KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (a.node_id)
        kms_strlcpy(node_id, a.node_id, sizeof node_id);
    else if (kmsctl_random_id(node_id) != 0)
        goto out;
    /* Server certificate names, as init: --host, the host name, the listen
     * address when specific; the first is the CN. */
    if (kmsctl_local_hostname(hostname, sizeof hostname) == 0)
        a.hosts[a.n_hosts++] = hostname;
    (void)conf_parse_hostport(a.listen, host, sizeof host, &port);
    if (!kmsctl_wildcard_host(host))
        a.hosts[a.n_hosts++] = host;
    kmsctl_advertised(a.peer_listen, peer_adv, sizeof peer_adv);
    kmsctl_advertised(a.listen, kmip_adv, sizeof kmip_adv);

    /* The directory: new, 0700. */
    if (kmsctl_mkdirs(a.dir) != 0 || realpath(a.dir, dir) == NULL) {
        fprintf(stderr, "kmsctl cluster join: cannot create %s: %s\n", a.dir, strerror(errno));
        goto out;
    }
    if (kmsctl_path(path, sizeof path, dir, "kmsd.yaml") != 0 ||
        kmsctl_path(pki, sizeof pki, dir, "pki") != 0 || kmsctl_path(db, sizeof db, dir, "kms.db") != 0 ||
        kmsctl_path(keyfile, sizeof keyfile, dir, "master.key") != 0 ||
        strlen(dir) + strlen("/admin.sock") >= 108) {
        fprintf(stderr, "kmsctl cluster join: %s is too long a path\n", dir);
        ret = KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (access(path, F_OK) == 0 || access(db, F_OK) == 0) {
        fprintf(stderr, "kmsctl cluster join: %s already holds a kmsd (kmsd.yaml or kms.db); a node "
                        "joins with a new directory\n", dir);
        goto out;
    }
    if (chmod(dir, 0700) != 0 || kmsctl_mkdirs(pki) != 0 || chmod(pki, 0700) != 0) {
        fprintf(stderr, "kmsctl cluster join: cannot create %s: %s\n", pki, strerror(errno));
        goto out;
    }
    if ((rc = make_keys(&a, node_id, a.n_hosts ? a.hosts[0] : "localhost", &k)) != 0) {
        ret = rc == KMS_ERR_INVAL ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_FAIL;
        goto out;
    }

    /* Ask the inviter. */
    if ((rc = link_open(&tok, &l, &err)) != 0) {
        fprintf(stderr, "kmsctl cluster join: %s\n", kms_error_msg(&err));
        ret = rc == KMS_ERR_UNAVAIL ? KMSCTL_EXIT_UNREACHABLE : KMSCTL_EXIT_FAIL;
        goto out;
    }
    if (!(req = repl_frame_new(REPL_FRAME_JOIN_REQ)))
        goto out;
    req->u.join_req.invite_id = tok.invite_id;
    req->u.join_req.secret = tok.secret;
    req->u.join_req.node_id = node_id;
    req->u.join_req.peer_addr = peer_adv;
    req->u.join_req.kmip_addr = kmip_adv;
    req->u.join_req.node_csr = (repl_bytes_t){k.node_csr.data, k.node_csr.len};
    req->u.join_req.server_csr = (repl_bytes_t){k.srv_csr.data, k.srv_csr.len};
    if ((rc = link_send(&l, req, &err)) != 0 || (rc = link_recv(&l, &resp, &err)) != 0) {
        fprintf(stderr, "kmsctl cluster join: %s\n", kms_error_msg(&err));
        goto out;
    }
    if (resp->type == REPL_FRAME_ERROR) {
        fprintf(stderr, "kmsctl cluster join: refused by %s: %s\n", l.addr, resp->u.error.message);
        goto out;
    }
    if (resp->type != REPL_FRAME_JOIN_RESP) {
        fprintf(stderr, "kmsctl cluster join: %s answered %s instead of JOIN_RESP\n", l.addr,
                repl_frame_type_name((int)resp->type));
        goto out;
    }
    link_close(&l);

    /* What came back must be the cluster the token names, for our keys. */
    const repl_bytes_t ca_pem = resp->u.join_resp.ca_cert;
    uint8_t md[32];
    unsigned int mdlen = 0;
    if (certs_cert_parse(ca_pem.p, ca_pem.len, &ca) != 0 ||
        X509_digest(ca, EVP_sha256(), md, &mdlen) != 1 || CRYPTO_memcmp(md, tok.ca_sha256, 32) != 0 ||
        strcmp(resp->u.join_resp.cluster_id, tok.cluster_id) != 0) {
        fprintf(stderr, "kmsctl cluster join: the inviter's answer is not for the cluster in the token\n");
        goto out;
    }
    if (check_issued(ca, resp->u.join_resp.node_cert, k.node_key, node_id, "node", &node, &err) ||
        check_issued(ca, resp->u.join_resp.server_cert, k.srv_key, NULL, "server", &srv, &err)) {
        fprintf(stderr, "kmsctl cluster join: %s\n", kms_error_msg(&err));
        goto out;
    }

    /* The directory: PKI, master key, store, configuration last. */
    const repl_bytes_t cca = resp->u.join_resp.client_ca;
    bool own_client_ca = cca.len && (cca.len != ca_pem.len || memcmp(cca.p, ca_pem.p, cca.len) != 0);
    if (write_pem(pki, "ca.crt", ca_pem) != 0 ||
        (own_client_ca && write_pem(pki, "client-ca.crt", cca) != 0) ||
        kmsctl_write_pair("cluster join", pki, "node", k.node_key, node, ca, false) != 0 ||
        kmsctl_write_pair("cluster join", pki, "server", k.srv_key, srv, NULL, false) != 0 ||
        write_certify_ca(pki, resp, ca, &have_certify) != 0)
        goto out;
    if ((ret = kmsctl_master_key("cluster join", &a.hsm, keyfile, &hc)) != KMSCTL_EXIT_OK)
        goto out;
    ret = KMSCTL_EXIT_FAIL;
    mode_t old_umask = umask(077);
    rc = seed_store(db, node_id, &hc, resp, &err);
    umask(old_umask);
    if (rc) {
        fprintf(stderr, "kmsctl cluster join: %s\n", kms_error_msg(&err));
        goto out;
    }
    kmsctl_setting_t settings[16];
    size_t n_settings = 0;
    for (size_t i = 0; i < resp->u.join_resp.n_settings && n_settings < KMS_ARRAY_SIZE(settings); i++)
        if (setting_known(resp->u.join_resp.settings[i].name))
            settings[n_settings++] = (kmsctl_setting_t){resp->u.join_resp.settings[i].name,
                                                        resp->u.join_resp.settings[i].value};
    kmsctl_node_conf_t nc = {.by = "cluster join", .listen = a.listen,
                             .client_ca = own_client_ca ? "pki/client-ca.crt" : "pki/ca.crt",
                             .hsm = &hc, .node_id = node_id, .peer_listen = a.peer_listen,
                             .peers = peers,
                             .n_peers = peer_list(&tok, resp, node_id, peers, KMS_ARRAY_SIZE(peers)),
                             .ca_key = false, .certify_ca = have_certify, .settings = settings,
                             .n_settings = n_settings};
    if ((rc = kmsctl_write_config(path, &nc, false)) != 0) {
        fprintf(stderr, "kmsctl cluster join: cannot write %s: %s\n", path, kms_strerror(rc));
        goto out;
    }
    if ((rc = conf_load(path, &check, &err)) != 0) {
        fprintf(stderr, "kmsctl cluster join: the written configuration does not load: %s\n",
                kms_error_msg(&err));
        goto out;
    }
    printf("joined cluster %s as node %s (admitted by %s)\n"
           "  configuration   %s\n"
           "  CA certificate  %s/ca.crt (the cluster CA: clients that trust it trust this node)\n"
           "  server          %s/server.crt (CN %s, listen %s)\n"
           "  node            %s/node.crt (peer listener %s)\n"
           "  data-store keys %zu, wrapped under this node's own master key\n"
           "  issuing CA      %s\n"
           "  peers           %zu known node(s)\n"
           "start it with:    kmsd -c %s   (it copies the cluster's keys before it serves)\n"
           "follow it with:   kmsctl --config %s cluster status --wait\n",
           tok.cluster_id, node_id, tok.addrs[0], path, pki, pki, a.n_hosts ? a.hosts[0] : "localhost",
           a.listen, pki, a.peer_listen, resp->u.join_resp.n_dsks,
           have_certify ? "pki/certify-ca.crt (the inviter's: Certify answers alike on every node)"
                        : "none (the inviter has none: Certify is off)",
           nc.n_peers, path, path);
    ret = KMSCTL_EXIT_OK;
out:
    conf_free(check);
    link_close(&l);
    if (req)
        req->u.join_req.secret = NULL; /* borrowed from the token */
    repl_frame_free(req);
    repl_frame_free(resp);
    repl_token_dispose(&tok);
    X509_free(ca);
    X509_free(node);
    X509_free(srv);
    EVP_PKEY_free(k.node_key);
    EVP_PKEY_free(k.srv_key);
    kms_buf_dispose(&k.node_csr);
    kms_buf_dispose(&k.srv_csr);
    return ret;
}
