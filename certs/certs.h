/*
 * certs/certs.h: the small PKI kmsd needs, on OpenSSL 3.
 *
 * A private CA (EC P-256 by default, RSA 3072 as an option), a server
 * certificate whose SANs cover every name clients use (EKU serverAuth and
 * clientAuth: vCenter and PyKMIP present it both ways), client certificates
 * (EKU clientAuth, CN = client name), signing a client's CSR (vCenter's
 * "KMS signs the CSR" trust method), cluster node certificates (the kmsd
 * peer role) and the CSRs a joining node sends, and the identity facts the
 * server matches on: SHA-256 fingerprint of the DER and the subject CN.
 *
 * Private keys are written only through certs_write_key_pem(): a new file
 * created O_CREAT|O_EXCL with mode 0600 (never chmod'ed afterwards) and
 * renamed into place, so a key is never readable by others, even briefly.
 *
 * It deliberately does not do revocation (CRL/OCSP), key encryption with a
 * passphrase, or certificate chains deeper than CA -> leaf.
 * All functions are thread-safe (no global state beyond OpenSSL's own).
 */
#ifndef KMS_CERTS_H
#define KMS_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <openssl/types.h>
#include <openssl/x509.h> /* X509_REQ */

#include "common/kms.h"

#define CERTS_CA_DAYS 3650   /* default CA validity: 10 years */
#define CERTS_LEAF_DAYS 825  /* default leaf validity: the CA/B maximum, ~2 years */
#define CERTS_MAX_DAYS 36500 /* upper bound accepted for any validity */

enum certs_key_type {
    CERTS_KEY_EC_P256 = 0, /* default: small, fast, accepted by vCenter and PyKMIP */
    CERTS_KEY_RSA_3072 = 1,
};

/* ---------------------------------------------------------------- keys */

/* Generate a new private key. Returns 0, KMS_ERR_INVAL or KMS_ERR_CRYPTO. */
int certs_key_new(enum certs_key_type type, EVP_PKEY **key_out);

/*
 * Write `key` as unencrypted PKCS#8 PEM to `path`: a temporary file in the
 * same directory is created with O_CREAT|O_EXCL and mode 0600, written,
 * fsync'ed and then linked (overwrite false: KMS_ERR_EXISTS when `path`
 * exists) or renamed (overwrite true) into place; the directory is fsync'ed.
 * The PEM text passes only through memory that is wiped. Returns 0,
 * KMS_ERR_EXISTS, KMS_ERR_IO or KMS_ERR_CRYPTO.
 */
int certs_write_key_pem(const char *path, EVP_PKEY *key, bool overwrite);

/* Read a PEM private key (unencrypted). KMS_ERR_IO / KMS_ERR_PROTO. */
int certs_load_key_pem(const char *path, EVP_PKEY **key_out);

/*
 * Create `path` holding exactly `data`, with permission `mode` (before the
 * umask): a temporary sibling is opened O_CREAT|O_EXCL|O_NOFOLLOW with that
 * mode, written, fsync'ed, then link()ed into place (overwrite false:
 * KMS_ERR_EXISTS when `path` exists, which is left untouched) or rename()d
 * over it (overwrite true); the directory is then fsync'ed.
 */
int certs_write_file(const char *path, const void *data, size_t len, unsigned mode,
                     bool overwrite);

/*
 * Load a CA certificate and its private key and check that they belong
 * together and that the key file is not readable by group or others.
 * On failure records one line naming the file in err (NULL ok) and returns
 * KMS_ERR_IO (missing/unreadable), KMS_ERR_PROTO (not PEM), KMS_ERR_PERM
 * (key file mode too open) or KMS_ERR_INVAL (key does not match).
 */
int certs_load_ca(const char *cert_path, const char *key_path, X509 **ca_out,
                  EVP_PKEY **key_out, kms_error_t *err);

/* ------------------------------------------------------- certificates */

/* Write a certificate as PEM the same way (mode 0644 before the umask). */
int certs_write_cert_pem(const char *path, X509 *cert, bool overwrite);
/* Read the first PEM certificate of a file. KMS_ERR_IO / KMS_ERR_PROTO. */
int certs_load_cert_pem(const char *path, X509 **cert_out);
/* Read a CSR in PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST")
 * or DER. KMS_ERR_IO / KMS_ERR_PROTO. */
int certs_load_csr(const char *path, X509_REQ **csr_out);
/* PEM text of a certificate to a stdio stream. 0 or KMS_ERR_IO. */
int certs_print_cert_pem(X509 *cert, FILE *f);
/* The same in memory: the first PEM certificate of p[0..n), a CSR in PEM
 * or DER (KMS_ERR_PROTO when there is none), and the PEM text of a
 * certificate or CSR appended to `out` (KMS_ERR_LIMIT past its cap). */
int certs_cert_parse(const void *p, size_t n, X509 **cert_out);
int certs_csr_parse(const void *p, size_t n, X509_REQ **csr_out);
int certs_cert_pem(X509 *cert, kms_buf_t *out);
int certs_csr_pem(X509_REQ *csr, kms_buf_t *out);

/*
 * Create a self-signed CA certificate for `key`: subject CN=`cn`,
 * basicConstraints critical CA:TRUE pathlen:0, keyUsage critical
 * keyCertSign+cRLSign, subject key identifier, random 128-bit serial,
 * `days` of validity (0 = CERTS_CA_DAYS). Signed with SHA-256.
 */
int certs_create_ca(EVP_PKEY *key, const char *cn, int days, X509 **cert_out);

/*
 * Issue a server certificate for `key` signed by (ca, ca_key): subject
 * CN=`cn`; SANs: each of hosts[0..n_hosts) (IPv4/IPv6 literals as IP
 * entries, anything else as DNS) plus localhost, 127.0.0.1 and ::1, without
 * duplicates; EKU serverAuth and clientAuth; CA:FALSE; keyUsage
 * digitalSignature (+keyEncipherment for RSA). `days` 0 = CERTS_LEAF_DAYS.
 * KMS_ERR_INVAL for a host name with characters a DNS name cannot have.
 */
int certs_issue_server(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *cn,
                       const char *const *hosts, size_t n_hosts, int days, X509 **cert_out);

/* Issue a client certificate: subject CN=`name`, EKU clientAuth only. */
int certs_issue_client(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *name, int days,
                       X509 **cert_out);

/*
 * Sign a client's CSR: the CSR's own signature must verify with its public
 * key, its subject must have a CN, and its key must be RSA >= 2048 bits or
 * EC on P-256/P-384/P-521 (or Ed25519). The certificate copies only the
 * subject and the public key; the extensions are ours (EKU clientAuth,
 * CA:FALSE), whatever the CSR asked for. On refusal returns KMS_ERR_PROTO
 * (unreadable), KMS_ERR_CRYPTO (bad signature) or KMS_ERR_INVAL (weak key,
 * no CN) with the reason in err.
 */
int certs_sign_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, int days, X509 **cert_out,
                   kms_error_t *err);

/* ---------------------------------------------------- cluster nodes */
/*
 * A cluster node's certificate for `key`: subject CN = node_id (the peer
 * links check it against the node id the node announces), EKU serverAuth,
 * clientAuth and the kmsd peer role (CERTS_PEER_ROLE_OID), CA:FALSE, no
 * SANs (peers authenticate each other by the cluster CA and the CN, not by
 * host name). `days` 0 = CERTS_LEAF_DAYS.
 */
int certs_issue_node(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *node_id, int days,
                     X509 **cert_out);

/*
 * A CSR for `key` with subject CN = `cn` and, when n_hosts > 0, a
 * subjectAltName request for hosts[] (IP literals as IP, else DNS names:
 * KMS_ERR_INVAL for a name a DNS name cannot be). Signed with SHA-256 (no
 * digest for Ed25519). For a joining node's node and server certificates.
 */
int certs_csr_new(EVP_PKEY *key, const char *cn, const char *const *hosts, size_t n_hosts,
                  X509_REQ **csr_out);

/*
 * Sign a joining node's CSRs (the inviter, holding the cluster CA key).
 * Both check the CSR as certs_sign_csr does (its own signature, the key
 * type and size, a CN).
 * certs_sign_node_csr: the CN must be `node_id`; the certificate is the
 * one certs_issue_node makes for the CSR's key.
 * certs_sign_server_csr: a server certificate (EKU serverAuth and
 * clientAuth) named by the CSR's CN, with the DNS and IP names of the
 * CSR's subjectAltName request (at most 64; any other kind of name is
 * refused) plus localhost, 127.0.0.1 and ::1. Every other requested
 * extension is ignored: the certificate's extensions are ours.
 * 0, or KMS_ERR_PROTO / KMS_ERR_CRYPTO / KMS_ERR_INVAL / KMS_ERR_LIMIT
 * with err saying why.
 */
int certs_sign_node_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, const char *node_id, int days,
                        X509 **cert_out, kms_error_t *err);
int certs_sign_server_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr, int days, X509 **cert_out,
                          kms_error_t *err);

/* ----------------------------------------------------------- identity */

/*
 * The kmsd cluster peer role: an extended key usage (arc 2.25, the UUID
 * f743b92a-38a1-40cc-b626-51a0588bf761 as a decimal integer). Node
 * certificates carry it together with serverAuth and clientAuth; the peer
 * listener (replication/) requires it and the KMIP listener refuses a
 * certificate that has it, so a client certificate never opens a peer
 * link and a node certificate never opens a KMIP session.
 */
#define CERTS_PEER_ROLE_OID "2.25.328670954439281658831151738066534397793"
/* true when `cert`'s extendedKeyUsage lists CERTS_PEER_ROLE_OID. */
bool certs_has_peer_role(X509 *cert);

/* Lower-case hex SHA-256 of the DER encoding (64 chars + NUL). */
int certs_fingerprint_sha256(X509 *cert, char out[65]);
/* The (last) subject CN as UTF-8. KMS_ERR_NOTFOUND when there is none,
 * KMS_ERR_LIMIT when it does not fit, KMS_ERR_PROTO when it holds a NUL. */
int certs_subject_cn(X509 *cert, char *out, size_t outlen);
/* The same for a CSR's subject. */
int certs_csr_cn(X509_REQ *csr, char *out, size_t outlen);

/*
 * Verify that `leaf` chains to `ca` (X509_verify_cert with `ca` as the only
 * trust anchor, current time) and carries the EKU for `purpose`
 * (X509_PURPOSE_SSL_SERVER or X509_PURPOSE_SSL_CLIENT; 0 = any). On failure
 * returns KMS_ERR_CRYPTO with OpenSSL's reason in err.
 */
int certs_verify(X509 *ca, X509 *leaf, int purpose, kms_error_t *err);
/* The same against every certificate of the PEM bundle `ca_path` (what
 * OpenSSL's handshake trusts when tls.client_ca names a bundle of several
 * CAs). KMS_ERR_IO when the bundle cannot be read. */
int certs_verify_file(const char *ca_path, X509 *leaf, int purpose, kms_error_t *err);

#endif /* KMS_CERTS_H */
