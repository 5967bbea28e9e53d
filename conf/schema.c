/*
 * conf/schema.c: the table of every setting: its YAML key, type, place in
 * conf_t and allowed range. The loader and the dumper both walk it.
 *
 * Cross-field rules (pkcs11 needs a module, sync_acks needs listen) are in
 * load.c, after every key is read; this table holds per-key facts only.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_int.h"

_Static_assert(sizeof(enum conf_client_auth) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum conf_hsm_provider) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum conf_audit_full) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum conf_sync_timeout) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum kms_log_level) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum kms_log_format) == sizeof(int), "enum fields are int-sized");
_Static_assert(sizeof(enum conf_key_policy) == sizeof(int), "enum fields are int-sized");

#define OFF(f) offsetof(conf_t, f)
#define KiB (1024LL)
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)
#define SEC (1000LL)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

const char *conf_enum_name(const conf_enum_t *e, int value)
{
    for (; e && e->name; e++)
        if (e->value == value)
            return e->name;
    return "?";
}

/* node_id goes into every change-log row and peers compare it. */
static int check_node_id(const char *v, char *why, size_t n)
{
    size_t len = strlen(v);
    if (len > 63) {
        snprintf(why, n, "at most 63 characters");
        return KMS_ERR_CONFIG;
    }
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_' && v[i] != '.') {
            snprintf(why, n, "only letters, digits, '-', '_' and '.' are allowed");
            return KMS_ERR_CONFIG;
        }
    return 0;
}

static int check_env_name(const char *v, char *why, size_t n)
{
    for (size_t i = 0; v[i]; i++)
        if (!(isalpha((unsigned char)v[i]) || v[i] == '_' || (i > 0 && isdigit((unsigned char)v[i])))) {
            snprintf(why, n, "not an environment variable name");
            return KMS_ERR_CONFIG;
        }
    return 0;
}

/* PKCS#11 labels are 32 bytes, blank-padded. */
static int check_token_label(const char *v, char *why, size_t n)
{
    if (strlen(v) > 32) {
        snprintf(why, n, "a PKCS#11 token label has at most 32 characters");
        return KMS_ERR_CONFIG;
    }
    return 0;
}

static int check_user(const char *v, char *why, size_t n)
{
    if (strlen(v) > 32 || strchr(v, '/') || strchr(v, ':') || strchr(v, ' ')) {
        snprintf(why, n, "not a user name");
        return KMS_ERR_CONFIG;
    }
    return 0;
}

static const conf_enum_t e_client_auth[] = {
    {"required", CONF_CLIENT_AUTH_REQUIRED}, {"optional", CONF_CLIENT_AUTH_OPTIONAL}, {NULL, 0}};
static const conf_enum_t e_tls_version[] = {{"1.2", 0x0303}, {"1.3", 0x0304}, {NULL, 0}};
static const conf_enum_t e_provider[] = {
    {"file", CONF_HSM_FILE}, {"pkcs11", CONF_HSM_PKCS11}, {NULL, 0}};
static const conf_enum_t e_level[] = {{"error", KMS_LOG_ERROR}, {"warn", KMS_LOG_WARN},
                                      {"info", KMS_LOG_INFO},   {"debug", KMS_LOG_DEBUG},
                                      {NULL, 0}};
static const conf_enum_t e_log_format[] = {{"text", KMS_LOG_TEXT}, {"json", KMS_LOG_JSON}, {NULL, 0}};
/* audit.syslog_facility: RFC 5424 facility codes an audit trail belongs to. */
static const conf_enum_t e_facility[] = {
    {"auth", 4},     {"authpriv", 10}, {"local0", 16}, {"local1", 17}, {"local2", 18},
    {"local3", 19},  {"local4", 20},   {"local5", 21}, {"local6", 22}, {"local7", 23},
    {NULL, 0}};

/* audit.syslog: "", "local", "unix:/PATH", "udp:HOST:PORT" or "tcp:HOST:PORT". */
static int check_syslog_target(const char *v, char *why, size_t n)
{
    char host[256];
    if (v[0] == '\0' || strcmp(v, "local") == 0)
        return 0;
    if (strncmp(v, "unix:", 5) == 0 && v[5] == '/' && strlen(v + 5) < 108)
        return 0;
    if ((strncmp(v, "udp:", 4) == 0 || strncmp(v, "tcp:", 4) == 0) &&
        conf_parse_hostport(v + 4, host, sizeof(host), NULL) == 0)
        return 0;
    snprintf(why, n, "expected \"local\", \"unix:/PATH\", \"udp:HOST:PORT\" or \"tcp:HOST:PORT\"");
    return KMS_ERR_CONFIG;
}

/* replication.mode: "async" was the only mode that ever ran; it is what
 * sync_acks 0 does. */
static const conf_enum_t e_repl_mode[] = {{"async", 0}, {NULL, 0}};
static const conf_enum_t e_key_policy[] = {
    {"interop", CONF_KEY_POLICY_INTEROP}, {"nist", CONF_KEY_POLICY_NIST}, {NULL, 0}};
static const conf_enum_t e_audit_full[] = {
    {"block", CONF_AUDIT_FULL_BLOCK}, {"fail", CONF_AUDIT_FULL_FAIL}, {NULL, 0}};
static const conf_enum_t e_sync_timeout[] = {
    {"fail", CONF_SYNC_TIMEOUT_FAIL}, {"degrade", CONF_SYNC_TIMEOUT_DEGRADE}, {NULL, 0}};

static const conf_field_t s_tls[] = {
    {.key = "cert", .type = CONF_T_PATH, .off = OFF(tls.cert)},
    {.key = "key", .type = CONF_T_PATH, .off = OFF(tls.key)},
    {.key = "client_ca", .type = CONF_T_PATH, .off = OFF(tls.client_ca)},
    {.key = "client_auth", .type = CONF_T_ENUM, .off = OFF(tls.client_auth), .enums = e_client_auth},
    {.key = "require_registered", .type = CONF_T_BOOL, .off = OFF(tls.require_registered)},
    {.key = "min_version", .type = CONF_T_ENUM, .off = OFF(tls.min_version), .enums = e_tls_version},
    {.key = "ciphers", .type = CONF_T_STR, .off = OFF(tls.ciphers)},
    {.key = "ciphersuites", .type = CONF_T_STR, .off = OFF(tls.ciphersuites)},
    {.key = "session_resumption", .type = CONF_T_BOOL, .off = OFF(tls.session_resumption)},
    {.key = NULL},
};

static const conf_field_t s_limits[] = {
    {.key = "max_message", .type = CONF_T_SIZE, .off = OFF(limits.max_message), .min = 1 * KiB, .max = 1 * GiB},
    {.key = "max_response", .type = CONF_T_SIZE, .off = OFF(limits.max_response), .min = 1 * KiB, .max = 1 * GiB},
    {.key = "max_connections", .type = CONF_T_UINT, .off = OFF(limits.max_connections), .min = 1, .max = 1000000},
    {.key = "max_depth", .type = CONF_T_UINT, .off = OFF(limits.max_depth), .min = 4, .max = 256},
    {.key = "max_items", .type = CONF_T_UINT, .off = OFF(limits.max_items), .min = 16, .max = 100000000},
    {.key = "max_batch_items", .type = CONF_T_UINT, .off = OFF(limits.max_batch_items), .min = 1, .max = 1000000},
    {.key = "handshake_timeout", .type = CONF_T_DURATION, .off = OFF(limits.handshake_timeout_ms), .min = 100, .max = HOUR},
    {.key = "idle_timeout", .type = CONF_T_DURATION, .off = OFF(limits.idle_timeout_ms), .min = 1 * SEC, .max = 24 * HOUR},
    {.key = "message_timeout", .type = CONF_T_DURATION, .off = OFF(limits.message_timeout_ms), .min = 100, .max = HOUR},
    {.key = "max_pending_output", .type = CONF_T_SIZE, .off = OFF(limits.max_pending_output), .min = 16 * KiB, .max = 1 * GiB},
    {.key = "shutdown_timeout", .type = CONF_T_DURATION, .off = OFF(limits.shutdown_timeout_ms), .min = 0, .max = HOUR},
    {.key = "crypto_streams", .type = CONF_T_UINT, .off = OFF(limits.crypto_streams), .min = 1, .max = 1000000},
    {.key = "crypto_streams_per_client", .type = CONF_T_UINT, .off = OFF(limits.crypto_streams_per_client), .min = 1, .max = 100000},
    {.key = "crypto_streams_per_tenant", .type = CONF_T_UINT, .off = OFF(limits.crypto_streams_per_tenant), .min = 1, .max = 1000000},
    {.key = "crypto_stream_idle_timeout", .type = CONF_T_DURATION, .off = OFF(limits.crypto_stream_idle_ms), .min = 1 * SEC, .max = 24 * HOUR},
    {.key = "max_unauthenticated", .type = CONF_T_UINT, .off = OFF(limits.max_unauthenticated), .min = 1, .max = 1000000},
    {.key = "max_message_unauthenticated", .type = CONF_T_SIZE, .off = OFF(limits.max_message_unauthenticated), .min = 1 * KiB, .max = 1 * GiB},
    {.key = "request_memory", .type = CONF_T_SIZE, .off = OFF(limits.request_memory), .min = 64 * KiB, .max = 64 * GiB},
    {.key = "request_memory_per_client", .type = CONF_T_SIZE, .off = OFF(limits.request_memory_per_client), .min = 16 * KiB, .max = 64 * GiB},
    {.key = "request_time", .type = CONF_T_DURATION, .off = OFF(limits.request_time_ms), .min = 10, .max = 24 * HOUR},
    {.key = "tenant_workers", .type = CONF_T_UINT, .off = OFF(limits.tenant_workers), .min = 1, .max = 4096},
    {.key = NULL},
};

static const conf_field_t s_store[] = {
    {.key = "path", .type = CONF_T_PATH, .off = OFF(store.path)},
    {.key = "max_batch", .type = CONF_T_UINT, .off = OFF(store.max_batch), .min = 1, .max = 100000},
    {.key = "cache_size", .type = CONF_T_SIZE, .off = OFF(store.cache_size), .min = 1 * MiB, .max = 64 * GiB, .zero_ok = true},
    {.key = NULL},
};

static const conf_field_t s_hsm[] = {
    {.key = "provider", .type = CONF_T_ENUM, .off = OFF(hsm.provider), .enums = e_provider},
    {.key = "key_file", .type = CONF_T_PATH, .off = OFF(hsm.key_file)},
    {.key = "module", .type = CONF_T_MODPATH, .off = OFF(hsm.module)},
    {.key = "token_label", .type = CONF_T_STR, .off = OFF(hsm.token_label), .check = check_token_label},
    {.key = "slot", .type = CONF_T_INT, .off = OFF(hsm.slot), .min = -1, .max = 0x7fffffff},
    {.key = "pin_file", .type = CONF_T_PATH, .off = OFF(hsm.pin_file)},
    {.key = "pin_env", .type = CONF_T_STR, .off = OFF(hsm.pin_env), .check = check_env_name},
    {.key = "key_label", .type = CONF_T_STR, .off = OFF(hsm.key_label)},
    {.key = NULL},
};

static const conf_field_t s_admin[] = {
    {.key = "socket", .type = CONF_T_PATH, .off = OFF(admin.socket)},
    {.key = "mode", .type = CONF_T_OCTAL, .off = OFF(admin.mode), .min = 0, .max = 0777},
    {.key = "group", .type = CONF_T_STR, .off = OFF(admin.group), .check = check_user},
    {.key = NULL},
};

static const conf_field_t s_log[] = {
    {.key = "level", .type = CONF_T_ENUM, .off = OFF(log.level), .enums = e_level},
    {.key = "format", .type = CONF_T_ENUM, .off = OFF(log.format), .enums = e_log_format},
    {.key = NULL},
};

static const conf_field_t s_audit[] = {
    {.key = "path", .type = CONF_T_PATH, .off = OFF(audit.path)},
    {.key = "rotate_size", .type = CONF_T_SIZE, .off = OFF(audit.rotate_size), .min = 1 * MiB, .max = 1024 * GiB, .zero_ok = 1},
    {.key = "fsync", .type = CONF_T_BOOL, .off = OFF(audit.fsync)},
    {.key = "syslog", .type = CONF_T_STR, .off = OFF(audit.syslog), .check = check_syslog_target},
    {.key = "syslog_facility", .type = CONF_T_ENUM, .off = OFF(audit.syslog_facility), .enums = e_facility},
    {.key = "json_lines", .type = CONF_T_PATH, .off = OFF(audit.json_lines)},
    {.key = "max_backlog", .type = CONF_T_UINT, .off = OFF(audit.max_backlog), .min = 16, .max = 10000000},
    {.key = "on_full", .type = CONF_T_ENUM, .off = OFF(audit.on_full), .enums = e_audit_full},
    {.key = "durable", .type = CONF_T_BOOL, .off = OFF(audit.durable)},
    {.key = NULL},
};

static const conf_field_t s_http[] = {
    {.key = "listen", .type = CONF_T_HOSTLIST, .off = OFF(http.listen), .off2 = OFF(http.n_listen), .min_items = 0, .max_items = 16},
    {.key = "max_header", .type = CONF_T_SIZE, .off = OFF(http.max_header), .min = 1 * KiB, .max = 1 * MiB},
    {.key = "max_body", .type = CONF_T_SIZE, .off = OFF(http.max_body), .min = 1 * KiB, .max = 1 * GiB},
    {.key = "metrics_clients", .type = CONF_T_FPLIST, .off = OFF(http.metrics_clients), .off2 = OFF(http.n_metrics_clients), .min_items = 0, .max_items = 64},
    {.key = NULL},
};

static const conf_field_t s_replication[] = {
    {.key = "listen", .type = CONF_T_HOSTPORT, .off = OFF(replication.listen)},
    {.key = "peers", .type = CONF_T_HOSTLIST, .off = OFF(replication.peers), .off2 = OFF(replication.n_peers), .min_items = 0, .max_items = 64},
    {.key = "cert", .type = CONF_T_PATH, .off = OFF(replication.cert)},
    {.key = "key", .type = CONF_T_PATH, .off = OFF(replication.key)},
    {.key = "ca", .type = CONF_T_PATH, .off = OFF(replication.ca)},
    {.key = "ca_key", .type = CONF_T_PATH, .off = OFF(replication.ca_key)},
    {.key = "sync_acks", .type = CONF_T_UINT, .off = OFF(replication.sync_acks), .min = 0, .max = 63},
    {.key = "sync_timeout_ms", .type = CONF_T_UINT, .off = OFF(replication.sync_timeout_ms), .min = 1, .max = 600000},
    {.key = "on_sync_timeout", .type = CONF_T_ENUM, .off = OFF(replication.on_sync_timeout), .enums = e_sync_timeout},
    {.key = "max_clock_skew", .type = CONF_T_DURATION, .off = OFF(replication.max_clock_skew_ms), .min = 100, .max = HOUR},
    {.key = "startup_wait", .type = CONF_T_DURATION, .off = OFF(replication.startup_wait_ms), .min = 1 * SEC, .max = 1 * HOUR},
    {.key = "max_lag", .type = CONF_T_DURATION, .off = OFF(replication.max_lag_ms), .min = 1 * MIN, .max = 365 * 24 * HOUR},
    {.key = "max_frame", .type = CONF_T_SIZE, .off = OFF(replication.max_frame), .min = 64 * KiB, .max = 1 * GiB},
    {.key = "mode", .type = CONF_T_DEPRECATED, .enums = e_repl_mode,
     .hint = "answers follow replication.sync_acks (0 = after the local commit, N = once N peers have the change)"},
    {.key = NULL},
};

static const conf_field_t s_kmip[] = {
    {.key = "key_policy", .type = CONF_T_ENUM, .off = OFF(kmip.key_policy), .enums = e_key_policy},
    {.key = NULL},
};

static const conf_field_t s_certify[] = {
    {.key = "ca", .type = CONF_T_PATH, .off = OFF(certify.ca)},
    {.key = "ca_key", .type = CONF_T_PATH, .off = OFF(certify.ca_key)},
    {.key = "days", .type = CONF_T_UINT, .off = OFF(certify.days), .min = 1, .max = 36500},
    {.key = NULL},
};

const conf_field_t conf_schema[] = {
    {.key = "node_id", .type = CONF_T_STR, .off = OFF(node_id), .check = check_node_id},
    {.key = "listen", .type = CONF_T_HOSTLIST, .off = OFF(listen), .off2 = OFF(n_listen), .min_items = 1, .max_items = 64},
    {.key = "workers", .type = CONF_T_UINT, .off = OFF(workers), .min = 0, .max = 256},
    {.key = "threads", .type = CONF_T_UINT, .off = OFF(threads), .min = 1, .max = 4096},
    {.key = "run_as", .type = CONF_T_STR, .off = OFF(run_as), .check = check_user},
    {.key = "tls", .type = CONF_T_SECTION, .sub = s_tls},
    {.key = "limits", .type = CONF_T_SECTION, .sub = s_limits},
    {.key = "kmip", .type = CONF_T_SECTION, .sub = s_kmip},
    {.key = "store", .type = CONF_T_SECTION, .sub = s_store},
    {.key = "hsm", .type = CONF_T_SECTION, .sub = s_hsm},
    {.key = "admin", .type = CONF_T_SECTION, .sub = s_admin},
    {.key = "log", .type = CONF_T_SECTION, .sub = s_log},
    {.key = "audit", .type = CONF_T_SECTION, .sub = s_audit},
    {.key = "http", .type = CONF_T_SECTION, .sub = s_http},
    {.key = "replication", .type = CONF_T_SECTION, .sub = s_replication},
    {.key = "certify", .type = CONF_T_SECTION, .sub = s_certify},
    {.key = NULL},
};
