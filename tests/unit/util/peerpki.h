/* tests/unit/util/peerpki.h: for replication tests: a cluster PKI on disk:
 * a CA and node certificates (CN = node id, EKU serverAuth + clientAuth +
 * the kmsd peer role), made with certs/ and OpenSSL. Issuing node
 * certificates for real nodes is kmsctl's job; tests make their own. And
 * free loopback ports. */
#ifndef KMS_TEST_PEERPKI_H
#define KMS_TEST_PEERPKI_H

#include <stdbool.h>

/* DIR/<name>.crt and DIR/<name>.key: a new self-signed CA. 0 or -1. */
int kms_test_pki_ca(const char *dir, const char *name);
/* DIR/<node>.crt and .key signed by the CA DIR/<ca>.crt/.key, CN = node;
 * peer_role false: the EKU is clientAuth only (a KMIP client certificate).
 * 0 or -1. */
int kms_test_pki_node(const char *dir, const char *ca, const char *node, bool peer_role);

/* A TCP port on 127.0.0.1 free right now (bound and released), or -1. */
int kms_test_free_port(void);
void kms_test_sleep_ms(int ms);

#endif
