/*
 * kmsctl/kmip_client.h: private to kmsctl. A small blocking KMIP client
 * over mutual TLS, used by `kmsctl key`: one connection, one request
 * (one batch item) at a time, built and parsed with the ttlv/ codec.
 */
#ifndef KMSCTL_KMIP_CLIENT_H
#define KMSCTL_KMIP_CLIENT_H

#include <stdint.h>

#include "common/kms.h"
#include "conf/conf.h"
#include "ttlv/ttlv.h"

typedef struct kmsctl_kmip kmsctl_kmip_t;

typedef struct kmsctl_kmip_options {
    const char *server;   /* "HOST:PORT"; NULL = the config's first listen address */
    const char *cert;     /* client certificate; NULL = DIR/pki/client.crt (DIR = config's dir) */
    const char *key;      /* its key; NULL = DIR/pki/client.key */
    const char *ca;       /* CA for the server certificate; NULL = tls.client_ca */
} kmsctl_kmip_options_t;

/* Connect and handshake (verifying the server's certificate and name).
 * 0 or KMS_ERR_IO / KMS_ERR_CRYPTO / KMS_ERR_CONFIG with a line in err. */
int kmsctl_kmip_open(const conf_t *c, const kmsctl_kmip_options_t *o, kmsctl_kmip_t **out,
                     kms_error_t *err);
void kmsctl_kmip_close(kmsctl_kmip_t *k); /* NULL ok */

/* The answer to one batch item; everything lives in the caller's arena. */
typedef struct kmsctl_kmip_result {
    uint32_t status;             /* KMIP Result Status */
    uint32_t reason;             /* Result Reason, 0 when absent */
    const char *message;         /* Result Message or "" */
    ttlv_item_t *payload;        /* Response Payload or NULL */
} kmsctl_kmip_result_t;

/* Send Operation `op` with the Request Payload `payload` (a struct with tag
 * REQUEST_PAYLOAD built in `a`, may be NULL = empty). 0 when an answer
 * arrived (whatever its status), else KMS_ERR_IO / KMS_ERR_PROTO. */
int kmsctl_kmip_call(kmsctl_kmip_t *k, kms_arena_t *a, uint32_t op, ttlv_item_t *payload,
                     kmsctl_kmip_result_t *res);

#endif
