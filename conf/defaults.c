/*
 * conf/defaults.c: the default value of every setting. conf/kmsd.yaml
 * documents the same values; change both together. All state (database,
 * master-key file, audit log, admin socket) defaults to /var/lib/kmsd, the
 * package's state directory and the container image's one volume; only the
 * configuration and the PKI default to /etc/kmsd.
 *
 * Defaults point at static storage; nothing here allocates.
 */
#include <string.h>

#include "conf/conf.h"

/* Forward-secret AEAD suites only (ECDHE with AES-GCM or ChaCha20-Poly1305). */
#define CONF_DEFAULT_CIPHERS                                                  \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define CONF_DEFAULT_CIPHERSUITES \
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* One dual-stack listener: on Linux "[::]" also accepts IPv4 unless
 * net.ipv6.bindv6only is set (the server sets IPV6_V6ONLY=0 explicitly). */
static const char *const default_listen[] = {"[::]:5696"};

void conf_defaults(conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->path = "";
    c->node_id = "";
    c->listen = default_listen;
    c->n_listen = 1;
    c->workers = 0;
    c->threads = 32;
    c->run_as = "";

    c->tls.cert = "/etc/kmsd/pki/server.crt";
    c->tls.key = "/etc/kmsd/pki/server.key";
    c->tls.client_ca = "/etc/kmsd/pki/ca.crt";
    c->tls.client_auth = CONF_CLIENT_AUTH_REQUIRED;
    c->tls.require_registered = false;
    c->tls.min_version = 0x0303;
    c->tls.ciphers = CONF_DEFAULT_CIPHERS;
    c->tls.ciphersuites = CONF_DEFAULT_CIPHERSUITES;
    c->tls.session_resumption = true;

    c->kmip.key_policy = CONF_KEY_POLICY_INTEROP;
    c->limits.max_message = 1u << 20;
    c->limits.max_response = 16u << 20;
    c->limits.max_connections = 10000;
    c->limits.max_depth = 32;
    c->limits.max_items = 100000;
    c->limits.max_batch_items = 1024;
    c->limits.handshake_timeout_ms = 10000;
    c->limits.idle_timeout_ms = 120000;
    c->limits.message_timeout_ms = 30000;
    c->limits.max_pending_output = 4u << 20;
    c->limits.shutdown_timeout_ms = 10000;
    c->limits.crypto_streams = 1024;
    c->limits.crypto_streams_per_client = 16;
    c->limits.crypto_streams_per_tenant = 256;
    c->limits.crypto_stream_idle_ms = 60000;
    c->limits.max_unauthenticated = 1024;
    c->limits.max_message_unauthenticated = 32u << 10;
    c->limits.request_memory = (size_t)128 << 20;
    c->limits.request_memory_per_client = (size_t)32 << 20;
    c->limits.request_time_ms = 10000;
    c->limits.tenant_workers = 8;

    c->store.path = "/var/lib/kmsd/kms.db";
    c->store.max_batch = 512;
    c->store.cache_size = (size_t)64 << 20;

    c->hsm.provider = CONF_HSM_FILE;
    c->hsm.key_file = "/var/lib/kmsd/master.key";
    c->hsm.module = "";
    c->hsm.token_label = "";
    c->hsm.slot = -1;
    c->hsm.pin_file = "";
    c->hsm.pin_env = "";
    c->hsm.key_label = "kmsd-master";

    c->admin.socket = "/var/lib/kmsd/admin.sock";
    c->admin.mode = 0600;
    c->admin.group = "";

    c->log.level = KMS_LOG_INFO;
    c->log.format = KMS_LOG_TEXT;

    c->audit.path = "/var/lib/kmsd/audit.log";
    c->audit.rotate_size = (size_t)100 << 20;
    c->audit.fsync = true;
    c->audit.syslog = "";
    c->audit.syslog_facility = 10; /* authpriv */
    c->audit.json_lines = "";
    c->audit.max_backlog = 65536;
    c->audit.on_full = CONF_AUDIT_FULL_FAIL;
    c->audit.durable = false;

    c->http.listen = NULL;
    c->http.n_listen = 0;
    c->http.max_header = 8u << 10;
    c->http.max_body = 4u << 20;
    c->http.metrics_clients = NULL;
    c->http.n_metrics_clients = 0;

    c->replication.listen = "";
    c->replication.peers = NULL;
    c->replication.n_peers = 0;
    c->replication.cert = "/etc/kmsd/pki/node.crt";
    c->replication.key = "/etc/kmsd/pki/node.key";
    c->replication.ca = "/etc/kmsd/pki/ca.crt";
    c->replication.ca_key = "";
    c->replication.sync_acks = 0;
    c->replication.sync_timeout_ms = 2000;
    c->replication.on_sync_timeout = CONF_SYNC_TIMEOUT_FAIL;
    c->replication.max_clock_skew_ms = 5000;
    c->replication.max_lag_ms = 24ULL * 3600 * 1000;
    c->replication.startup_wait_ms = 15000;
    c->replication.max_frame = (size_t)16 << 20;

    c->certify.ca = "";
    c->certify.ca_key = "";
    c->certify.days = 365;

    c->priv_ = NULL;
}
