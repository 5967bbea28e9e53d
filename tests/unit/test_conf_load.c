/* tests/unit/test_conf_load.c: conf_load() on real files: defaults, the
 * shipped sample, every kind of type error, unknown keys with their
 * line:column, ranges, durations and sizes, relative paths, cross-field
 * rules, the environment overrides, and the dump round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/conf.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kmsd-conf-test.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to TMP/name and load it. */
static int load_text(const char *name, const char *text, conf_t **out, kms_error_t *err)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return conf_load(path, out, err);
}

/* Expect a load failure whose message ends with `suffix` and contains `pos`. */
static void expect_error(const char *text, const char *pos, const char *suffix)
{
    conf_t *c = (conf_t *)0x1;
    kms_error_t err = {0};
    int rc = load_text("bad.yaml", text, &c, &err);
    if (rc != KMS_ERR_CONFIG || strstr(err.msg, pos) == NULL ||
        strlen(err.msg) < strlen(suffix) ||
        strcmp(err.msg + strlen(err.msg) - strlen(suffix), suffix) != 0)
        fail_msg("for <<%s>>: rc %d, message '%s'; wanted '...%s...%s'", text, rc, err.msg, pos,
                 suffix);
    assert_null(c);
    /* The message names the file. */
    assert_non_null(strstr(err.msg, "bad.yaml:"));
}

static char *dump_to_string(const conf_t *c)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    assert_non_null(f);
    assert_int_equal(conf_dump(c, f), 0);
    fclose(f);
    return s;
}

static void test_defaults(void **state)
{
    (void)state;
    conf_t d;
    conf_defaults(&d);
    assert_int_equal(d.n_listen, 1);
    assert_string_equal(d.listen[0], "[::]:5696");
    assert_int_equal(d.workers, 0);
    assert_int_equal(d.threads, 32);
    assert_int_equal(d.tls.client_auth, CONF_CLIENT_AUTH_REQUIRED);
    assert_false(d.tls.require_registered);
    assert_int_equal(d.tls.min_version, 0x0303);
    assert_non_null(strstr(d.tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384"));
    assert_null(strstr(d.tls.ciphers, "CBC"));
    assert_string_equal(d.tls.ciphersuites,
                        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
    assert_true(d.tls.session_resumption);
    assert_int_equal(d.limits.max_message, 1 << 20);
    assert_int_equal(d.limits.max_response, 16 << 20);
    assert_int_equal(d.limits.max_connections, 10000);
    assert_int_equal(d.limits.max_depth, 32);
    assert_int_equal(d.limits.max_items, 100000);
    assert_int_equal(d.limits.max_batch_items, 1024);
    assert_int_equal(d.limits.handshake_timeout_ms, 10000);
    assert_int_equal(d.limits.idle_timeout_ms, 120000);
    assert_int_equal(d.limits.message_timeout_ms, 30000);
    assert_int_equal(d.limits.max_pending_output, 4 << 20);
    assert_int_equal(d.limits.shutdown_timeout_ms, 10000);
    assert_string_equal(d.store.path, "/var/lib/kmsd/kms.db");
    assert_int_equal(d.store.max_batch, 512);
    assert_int_equal(d.store.cache_size, 64u << 20);
    assert_int_equal(d.hsm.provider, CONF_HSM_FILE);
    assert_string_equal(d.hsm.key_file, "/var/lib/kmsd/master.key");
    assert_int_equal(d.hsm.slot, -1);
    assert_string_equal(d.hsm.key_label, "kmsd-master");
    assert_string_equal(d.admin.socket, "/var/lib/kmsd/admin.sock");
    assert_int_equal(d.admin.mode, 0600);
    assert_int_equal(d.log.level, KMS_LOG_INFO);
    assert_string_equal(d.audit.path, "/var/lib/kmsd/audit.log");
    assert_int_equal(d.audit.rotate_size, 100 << 20);
    assert_true(d.audit.fsync);
    assert_string_equal(d.replication.listen, "");
    assert_int_equal(d.replication.n_peers, 0);
    assert_string_equal(d.replication.cert, "/etc/kmsd/pki/node.crt");
    assert_string_equal(d.replication.key, "/etc/kmsd/pki/node.key");
    assert_string_equal(d.replication.ca, "/etc/kmsd/pki/ca.crt");
    assert_string_equal(d.replication.ca_key, "");
    assert_int_equal(d.replication.sync_acks, 0);
    assert_int_equal(d.replication.sync_timeout_ms, 2000);
    assert_int_equal(d.replication.on_sync_timeout, CONF_SYNC_TIMEOUT_FAIL);
    assert_int_equal(d.kmip.key_policy, CONF_KEY_POLICY_INTEROP);
    assert_int_equal(d.replication.max_clock_skew_ms, 5000);
    assert_int_equal(d.replication.max_lag_ms, 24 * 3600 * 1000ULL);
    assert_int_equal(d.replication.max_frame, 16 << 20);

    /* An empty file and a file of comments give exactly the defaults. */
    char *want = dump_to_string(&d);
    static const char *const empties[] = {"", "# nothing\n", "---\n", "{}\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        conf_t *c = NULL;
        kms_error_t err = {0};
        assert_int_equal(load_text("empty.yaml", empties[i], &c, &err), 0);
        assert_non_null(c);
        assert_true(c->path[0] == '/');
        c->path = "";
        char *got = dump_to_string(c);
        assert_string_equal(got, want);
        free(got);
        conf_free(c);
    }
    free(want);
    conf_free(NULL);
}

/* The shipped sample documents every setting with its default value. */
static void test_sample_file(void **state)
{
    (void)state;
    conf_t *c = NULL, d;
    kms_error_t err = {0};
    int rc = conf_load("conf/kmsd.yaml", &c, &err);
    if (rc != 0)
        fail_msg("conf/kmsd.yaml: %s", err.msg);
    conf_defaults(&d);
    c->path = "";
    char *got = dump_to_string(c), *want = dump_to_string(&d);
    assert_string_equal(got, want);
    free(got);
    free(want);
    conf_free(c);

    /* And every key in the schema appears in the sample (uncommented). */
    FILE *f = fopen("conf/kmsd.yaml", "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    assert_true(n < sizeof(text) - 1); /* the whole sample was read */
    text[n] = '\0';
    conf_defaults(&d);
    char *dump = dump_to_string(&d);
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char key[80];
        if (sscanf(line, " %79[a-z_]:", key) != 1)
            continue;
        char pat[96];
        snprintf(pat, sizeof(pat), "\n%s%s:", line[0] == ' ' ? "  " : "", key);
        if (strstr(text, pat) == NULL)
            fail_msg("conf/kmsd.yaml does not show '%s'", key);
    }
    free(dump);
}

static void test_values_loaded(void **state)
{
    (void)state;
    conf_t *c = NULL;
    kms_error_t err = {0};
    const char *text =
        "node_id: node-1.a\n"
        "listen: [\"127.0.0.1:5696\", \"[::1]:15696\"]\n"
        "workers: 2\n"
        "threads: 8\n"
        "tls:\n"
        "  client_auth: optional\n"
        "  require_registered: yes\n"
        "  min_version: 1.3\n"
        "  session_resumption: off\n"
        "kmip:\n"
        "  key_policy: nist\n"
        "limits:\n"
        "  max_message: 64KiB\n"
        "  max_response: 2MB\n"
        "  handshake_timeout: 500ms\n"
        "  idle_timeout: 2m\n"
        "  message_timeout: 45\n"
        "  shutdown_timeout: 0\n"
        "  max_pending_output: 1048576\n"
        "store:\n"
        "  cache_size: 0\n"
        "hsm:\n"
        "  provider: pkcs11\n"
        "  module: /usr/lib/softhsm/libsofthsm2.so\n"
        "  token_label: kmsd\n"
        "  pin_env: KMSD_PIN\n"
        "admin:\n"
        "  mode: 0660\n"
        "log:\n"
        "  level: debug\n"
        "audit:\n"
        "  path: \"\"\n"
        "  rotate_size: 0\n"
        "replication:\n"
        "  listen: \"0.0.0.0:5697\"\n"
        "  peers:\n"
        "    - kms2.example:5697\n"
        "    - \"[fd00::2]:5697\"\n"
        "  cert: pki/n1.crt\n"
        "  key: /k/n1.key\n"
        "  ca: pki/ca.crt\n"
        "  ca_key: pki/ca.key\n"
        "  sync_acks: 2\n"
        "  sync_timeout_ms: 750\n"
        "  on_sync_timeout: degrade\n"
        "  max_clock_skew: 2s\n"
        "  max_lag: 1h\n"
        "  max_frame: 1MiB\n"
        "  mode: async\n";
    int rc = load_text("values.yaml", text, &c, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(c->node_id, "node-1.a");
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[0], "127.0.0.1:5696");
    assert_string_equal(c->listen[1], "[::1]:15696");
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->threads, 8);
    assert_int_equal(c->tls.client_auth, CONF_CLIENT_AUTH_OPTIONAL);
    assert_true(c->tls.require_registered);
    assert_int_equal(c->tls.min_version, 0x0304);
    assert_false(c->tls.session_resumption);
    assert_int_equal(c->limits.max_message, 65536);
    assert_int_equal(c->limits.max_response, 2000000);
    assert_int_equal(c->limits.handshake_timeout_ms, 500);
    assert_int_equal(c->limits.idle_timeout_ms, 120000);
    assert_int_equal(c->limits.message_timeout_ms, 45000);
    assert_int_equal(c->limits.shutdown_timeout_ms, 0);
    assert_int_equal(c->limits.max_pending_output, 1048576);
    assert_int_equal(c->store.cache_size, 0);
    assert_int_equal(c->hsm.provider, CONF_HSM_PKCS11);
    assert_string_equal(c->hsm.module, "/usr/lib/softhsm/libsofthsm2.so");
    assert_string_equal(c->hsm.token_label, "kmsd");
    assert_string_equal(c->hsm.pin_env, "KMSD_PIN");
    assert_int_equal(c->admin.mode, 0660);
    assert_int_equal(c->log.level, KMS_LOG_DEBUG);
    assert_string_equal(c->audit.path, "");
    assert_int_equal(c->audit.rotate_size, 0);
    assert_string_equal(c->replication.listen, "0.0.0.0:5697");
    assert_int_equal(c->replication.n_peers, 2);
    assert_string_equal(c->replication.peers[1], "[fd00::2]:5697");
    assert_string_equal(c->replication.key, "/k/n1.key");
    assert_non_null(strstr(c->replication.cert, "/pki/n1.crt"));
    assert_true(c->replication.cert[0] == '/');
    assert_non_null(strstr(c->replication.ca_key, "/pki/ca.key"));
    assert_int_equal(c->replication.sync_acks, 2);
    assert_int_equal(c->replication.sync_timeout_ms, 750);
    assert_int_equal(c->replication.on_sync_timeout, CONF_SYNC_TIMEOUT_DEGRADE);
    assert_int_equal(c->kmip.key_policy, CONF_KEY_POLICY_NIST);
    assert_int_equal(c->replication.max_clock_skew_ms, 2000);
    assert_int_equal(c->replication.max_lag_ms, 3600000);
    assert_int_equal(c->replication.max_frame, 1 << 20);

    /* The dump loads back to the same configuration. */
    char *d1 = dump_to_string(c);
    conf_t *c2 = NULL;
    rc = load_text("dump.yaml", d1, &c2, &err);
    if (rc != 0)
        fail_msg("reloading the dump: %s\n%s", err.msg, d1);
    c2->path = c->path;
    char *d2 = dump_to_string(c2);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    conf_free(c2);
    conf_free(c);
}

/* Shorthands: one listen address as a plain string, an empty section. */
static void test_shorthands(void **state)
{
    (void)state;
    conf_t *c = NULL;
    kms_error_t err = {0};
    int rc = load_text("short.yaml", "listen: \"[::1]:5696\"\ntls:\nlimits: {}\nreplication:\n  peers:\n",
                       &c, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0], "[::1]:5696");
    assert_int_equal(c->tls.client_auth, CONF_CLIENT_AUTH_REQUIRED);
    assert_int_equal(c->limits.max_connections, 10000);
    assert_int_equal(c->replication.n_peers, 0);
    conf_free(c);
    /* Quoted numbers and unit-less values are accepted where unambiguous. */
    rc = load_text("q.yaml", "threads: \"16\"\nlimits:\n  idle_timeout: \"90\"\n  max_message: \"65536\"\n",
                   &c, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->threads, 16);
    assert_int_equal(c->limits.idle_timeout_ms, 90000);
    assert_int_equal(c->limits.max_message, 65536);
    conf_free(c);
    /* Too many listen addresses. */
    char big[4096] = "listen:\n";
    for (int i = 0; i < 65; i++) {
        size_t l = strlen(big);
        snprintf(big + l, sizeof(big) - l, "  - \"127.0.0.1:%d\"\n", 1000 + i);
    }
    expect_error(big, ":2:3: ", "listen: at most 64 entries");
}

static void test_relative_paths(void **state)
{
    (void)state;
    conf_t *c = NULL;
    kms_error_t err = {0};
    char want[600];
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    const char *text = "tls:\n  cert: pki/server.crt\n  key: ./pki/server.key\n"
                       "  client_ca: /abs/ca.crt\n"
                       "store:\n  path: ../data/kms.db\n"
                       "hsm:\n  key_file: master.key\n"
                       "admin:\n  socket: admin.sock\n"
                       "audit:\n  path: audit.log\n";
    assert_int_equal(load_text("etc/kmsd.yaml", text, &c, &err), 0);
    snprintf(want, sizeof(want), "%s/pki/server.crt", sub);
    assert_string_equal(c->tls.cert, want);
    snprintf(want, sizeof(want), "%s/pki/server.key", sub);
    assert_string_equal(c->tls.key, want);
    assert_string_equal(c->tls.client_ca, "/abs/ca.crt");
    snprintf(want, sizeof(want), "%s/../data/kms.db", sub);
    assert_string_equal(c->store.path, want);
    snprintf(want, sizeof(want), "%s/master.key", sub);
    assert_string_equal(c->hsm.key_file, want);
    snprintf(want, sizeof(want), "%s/admin.sock", sub);
    assert_string_equal(c->admin.socket, want);
    snprintf(want, sizeof(want), "%s/audit.log", sub);
    assert_string_equal(c->audit.path, want);
    snprintf(want, sizeof(want), "%s/kmsd.yaml", sub);
    assert_string_equal(c->path, want);
    conf_free(c);

    /* A relative config path is made absolute from the current directory. */
    char cwd[400];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmpdir), 0);
    c = NULL;
    int rc = conf_load("etc/kmsd.yaml", &c, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want), "%s/master.key", sub);
    assert_string_equal(c->hsm.key_file, want);
    conf_free(c);

    /* A bare PKCS#11 module name is left for the dynamic loader. */
    text = "hsm:\n  provider: pkcs11\n  module: libsofthsm2.so\n  slot: 0\n  pin_file: pin\n";
    assert_int_equal(load_text("etc/p.yaml", text, &c, &err), 0);
    assert_string_equal(c->hsm.module, "libsofthsm2.so");
    snprintf(want, sizeof(want), "%s/pin", sub);
    assert_string_equal(c->hsm.pin_file, want);
    conf_free(c);
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error("threads: 4\nfoo: 1\n", ":2:1: ", "foo: unknown key");
    expect_error("limits:\n  max_message: 1MiB\n  max_conections: 5\n", ":3:3: ",
                 "limits.max_conections: unknown key");
    expect_error("tls:\n    cert: a\n    bogus: [1]\n", ":3:5: ", "tls.bogus: unknown key");
    expect_error("threads: 4\nthreads: 5\n", ":2:1: ", "threads: duplicate key");
}

static void test_type_errors(void **state)
{
    (void)state;
    /* string */
    expect_error("run_as: {a: b}\n", ":1:9: ", "run_as: expected a string, got a mapping");
    /* unsigned / int */
    expect_error("threads: lots\n", ":1:10: ", "threads: expected an integer, got 'lots'");
    expect_error("threads: [1]\n", ":1:10: ", "threads: expected an integer, got a list");
    expect_error("hsm:\n  slot: 1.5\n", ":2:9: ", "hsm.slot: expected an integer, got '1.5'");
    expect_error("threads:\n", ":1:9: ", "threads: a value is required");
    /* bool */
    expect_error("tls:\n  session_resumption: maybe\n", ":2:23: ",
                 "tls.session_resumption: expected true or false, got 'maybe'");
    /* duration */
    expect_error("limits:\n  idle_timeout: 10 minutes\n", ":2:17: ",
                 "limits.idle_timeout: expected a duration like 10s, 500ms, 2m, 1h or plain "
                 "seconds, got '10 minutes'");
    /* size */
    expect_error("limits:\n  max_message: 1 megabyte\n", ":2:16: ",
                 "limits.max_message: expected a size like 1MiB, 64KiB or plain bytes, got '1 megabyte'");
    /* enum */
    expect_error("tls:\n  client_auth: sometimes\n", ":2:16: ",
                 "tls.client_auth: must be one of: required, optional (got 'sometimes')");
    expect_error("tls:\n  min_version: 1.1\n", ":2:16: ",
                 "tls.min_version: must be one of: 1.2, 1.3 (got '1.1')");
    expect_error("log:\n  level: verbose\n", ":2:10: ",
                 "log.level: must be one of: error, warn, info, debug (got 'verbose')");
    /* octal */
    expect_error("admin:\n  mode: 0999\n", ":2:9: ",
                 "admin.mode: expected an octal mode like 0600, got '0999'");
    /* list of addresses */
    expect_error("listen: {a: 1}\n", ":1:9: ", "listen: expected a list of ADDR:PORT, got a mapping");
    expect_error("listen:\n  - \"127.0.0.1:5696\"\n  - \"::1:5696\"\n", ":3:5: ",
                 "listen: '::1:5696' is not ADDR:PORT or [IPV6]:PORT (port 1-65535)");
    expect_error("listen: []\n", ":1:9: ", "listen: needs at least 1 address");
    expect_error("replication:\n  listen: 5697\n", ":2:11: ",
                 "replication.listen: '5697' is not ADDR:PORT or [IPV6]:PORT (port 1-65535)");
    /* section */
    expect_error("tls: yes\n", ":1:6: ", "tls: expected a mapping of settings, got a scalar");
    expect_error("- a\n- b\n", ":1:1: ", "(top level): expected a mapping of settings, got a list");
    /* string checks */
    expect_error("node_id: \"a b\"\n", ":1:10: ",
                 "node_id: only letters, digits, '-', '_' and '.' are allowed");
    expect_error("hsm:\n  pin_env: 1PIN\n", ":2:12: ", "hsm.pin_env: not an environment variable name");
    expect_error("run_as: \"a\\tb\"\n", ":1:9: ", "run_as: contains a control character");
    expect_error("run_as: \"a\\0b\"\n", ":1:9: ", "run_as: contains a NUL character");
}

static void test_ranges(void **state)
{
    (void)state;
    expect_error("threads: 4\nlimits:\n  max_connections: 0\n", ":3:20: ",
                 "limits.max_connections: must be between 1 and 1000000");
    expect_error("limits:\n    max_connections: 1000001\n", ":2:22: ",
                 "limits.max_connections: must be between 1 and 1000000");
    expect_error("workers: -1\n", ":1:10: ", "workers: must be between 0 and 256");
    expect_error("threads: 99999999999999999999999\n", ":1:10: ",
                 "threads: expected an integer, got '99999999999999999999999'");
    expect_error("limits:\n  max_message: 2GiB\n", ":2:16: ",
                 "limits.max_message: must be between 1KiB and 1GiB");
    expect_error("limits:\n  max_message: 1000\n", ":2:16: ",
                 "limits.max_message: must be between 1KiB and 1GiB");
    expect_error("limits:\n  handshake_timeout: 50ms\n", ":2:22: ",
                 "limits.handshake_timeout: must be between 100ms and 1h");
    expect_error("limits:\n  idle_timeout: 25h\n", ":2:17: ",
                 "limits.idle_timeout: must be between 1s and 24h");
    expect_error("audit:\n  rotate_size: 1000\n", ":2:16: ",
                 "audit.rotate_size: must be 0 or between 1MiB and 1024GiB");
    expect_error("store:\n  cache_size: 64KiB\n", ":2:15: ",
                 "store.cache_size: must be 0 or between 1MiB and 64GiB");
    expect_error("admin:\n  mode: \"01000\"\n", ":2:9: ", "admin.mode: must be between 00 and 0777");
    expect_error("hsm:\n  slot: -2\n", ":2:9: ", "hsm.slot: must be between -1 and 2147483647");
    expect_error("replication:\n  sync_acks: 64\n", ":2:14: ",
                 "replication.sync_acks: must be between 0 and 63");
    expect_error("replication:\n  sync_timeout_ms: 0\n", ":2:20: ",
                 "replication.sync_timeout_ms: must be between 1 and 600000");
    expect_error("kmip:\n  key_policy: fips\n", ":2:15: ",
                 "kmip.key_policy: must be one of: interop, nist (got 'fips')");
    expect_error("replication:\n  on_sync_timeout: retry\n", ":2:20: ",
                 "replication.on_sync_timeout: must be one of: fail, degrade (got 'retry')");
    expect_error("replication:\n  max_clock_skew: 50ms\n", ":2:19: ",
                 "replication.max_clock_skew: must be between 100ms and 1h");
    expect_error("replication:\n  max_lag: 10s\n", ":2:12: ",
                 "replication.max_lag: must be between 1m and 8760h");
    expect_error("replication:\n  max_frame: 1KiB\n", ":2:14: ",
                 "replication.max_frame: must be between 64KiB and 1GiB");
}

/* replication.mode is deprecated: "async" (what sync_acks 0 does) still
 * loads, is not stored and is not dumped; semi-sync is refused with the
 * setting that replaced it. */
static void test_deprecated_mode(void **state)
{
    (void)state;
    conf_t *c = NULL;
    kms_error_t err = {0};
    int rc = load_text("mode.yaml", "replication:\n  mode: async\n", &c, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->replication.sync_acks, 0);
    char *d = dump_to_string(c);
    const char *sect = strstr(d, "\nreplication:\n");
    assert_non_null(sect);
    assert_null(strstr(sect, "  mode:"));
    free(d);
    conf_free(c);
    expect_error("replication:\n  mode: semi-sync\n", ":2:9: ",
                 "replication.mode: 'semi-sync' is no longer supported: answers follow "
                 "replication.sync_acks (0 = after the local commit, N = once N peers have the change)");
}

static void test_cross_field(void **state)
{
    (void)state;
    expect_error("hsm:\n  provider: pkcs11\n  token_label: t\n  pin_env: P\n", ":2:13: ",
                 "hsm.provider: pkcs11 needs hsm.module (the PKCS#11 library)");
    expect_error("hsm:\n  provider: pkcs11\n  module: /x.so\n  pin_env: P\n", ":2:13: ",
                 "hsm.provider: pkcs11 needs hsm.token_label or hsm.slot");
    expect_error("hsm:\n  provider: pkcs11\n  module: /x.so\n  slot: 3\n", ":2:13: ",
                 "hsm.provider: pkcs11 needs hsm.pin_file or hsm.pin_env (the user PIN)");
    expect_error("hsm:\n  key_file: \"\"\n", ":2:13: ", "hsm.key_file: required when hsm.provider is file");
    expect_error("replication:\n  sync_acks: 1\n", ":2:14: ",
                 "replication.sync_acks: needs replication.listen (this node must replicate to have peers ack)");
    expect_error("replication:\n  listen: \"127.0.0.1:1\"\n  cert: \"\"\n", ":3:9: ",
                 "replication.cert: a node certificate file is required when replication.listen is set");
    expect_error("replication:\n  listen: \"127.0.0.1:1\"\n  ca: ~\n", ":3:7: ",
                 "replication.ca: the cluster CA file is required when replication.listen is set");
    expect_error("replication:\n  peers: [\"a:1\"]\n", ":1:1: ",
                 "replication.listen: required when replication.peers is set (peers connect to it)");
    expect_error("tls:\n  cert: ~\n", ":2:9: ", "tls.cert: a server certificate file is required");
    expect_error("admin:\n  socket: /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 ":2:11: ", "admin.socket: longer than a Unix socket path may be (107 bytes)");
}

static void test_yaml_errors(void **state)
{
    (void)state;
    expect_error("threads: 4\ntls:\n  cert: [a\n", ":", "");
    conf_t *c = NULL;
    kms_error_t err = {0};
    assert_int_equal(load_text("syn.yaml", "threads: 4\n  bad indent: 1\n", &c, &err),
                     KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "syn.yaml:2:"));
    assert_non_null(strstr(err.msg, "YAML syntax error"));
    expect_error("a: &x 1\nthreads: *x\n", ":2:10: ",
                 "YAML aliases are not supported in the configuration");
    expect_error("threads: 4\n---\nthreads: 5\n", ":2:1: ", "only one YAML document is allowed");
    /* Deep nesting is refused before the tree is built. */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 99);
    deep[199] = '\0';
    expect_error(deep, ":1:17: ", "nested too deeply");
    /* Missing file. */
    char path[300];
    snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
    c = (conf_t *)0x1;
    assert_int_equal(conf_load(path, &c, &err), KMS_ERR_IO);
    assert_null(c);
    assert_non_null(strstr(err.msg, "missing.yaml: cannot open"));
    /* A directory is not a configuration file. */
    assert_int_equal(conf_load(tmpdir, &c, &err), KMS_ERR_CONFIG);
    /* Loading from memory with a relative directory and NULL err works. */
    assert_int_equal(conf_load_buffer("mem", "rel", "hsm: {key_file: k}\n", 19, &c, NULL), 0);
    assert_non_null(strstr(c->hsm.key_file, "/rel/k"));
    conf_free(c);
}

/* KMSD_LISTEN and KMSD_LOG_LEVEL override the file in conf_load() (with
 * the same checks and an error naming the variable), never in
 * conf_load_buffer(); an empty value counts as unset. */
static void test_environment(void **state)
{
    (void)state;
    static const char text[] = "listen: [\"127.0.0.1:5696\"]\nlog:\n  level: warn\n";
    conf_t *c = NULL;
    kms_error_t err = {0};

    assert_int_equal(setenv("KMSD_LISTEN", " 127.0.0.1:7001 ,[::1]:7002", 1), 0);
    assert_int_equal(setenv("KMSD_LOG_LEVEL", "debug", 1), 0);
    assert_int_equal(load_text("env.yaml", text, &c, &err), 0);
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[0], "127.0.0.1:7001");
    assert_string_equal(c->listen[1], "[::1]:7002");
    assert_int_equal(c->log.level, KMS_LOG_DEBUG);
    conf_free(c);

    /* From memory: the file's values, whatever the environment says. */
    assert_int_equal(conf_load_buffer("mem", NULL, text, strlen(text), &c, &err), 0);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:5696");
    assert_int_equal(c->log.level, KMS_LOG_WARN);
    conf_free(c);

    /* Bad values are refused, naming the variable. */
    c = (conf_t *)0x1;
    assert_int_equal(setenv("KMSD_LISTEN", "127.0.0.1:7001,nope", 1), 0);
    assert_int_equal(load_text("env.yaml", text, &c, &err), KMS_ERR_CONFIG);
    assert_null(c);
    assert_int_equal(err.offset, KMS_ERROR_NO_OFFSET);
    assert_string_equal(err.msg, "$KMSD_LISTEN: listen: 'nope' is not ADDR:PORT or [IPV6]:PORT (port 1-65535)");
    assert_int_equal(setenv("KMSD_LISTEN", "", 1), 0);
    assert_int_equal(setenv("KMSD_LOG_LEVEL", "loud", 1), 0);
    assert_int_equal(load_text("env.yaml", text, &c, &err), KMS_ERR_CONFIG);
    assert_string_equal(err.msg, "$KMSD_LOG_LEVEL: log.level: must be one of: error, warn, info, debug (got 'loud')");

    /* Empty values: the file's. */
    assert_int_equal(setenv("KMSD_LOG_LEVEL", "", 1), 0);
    assert_int_equal(load_text("env.yaml", text, &c, &err), 0);
    assert_string_equal(c->listen[0], "127.0.0.1:5696");
    assert_int_equal(c->log.level, KMS_LOG_WARN);
    conf_free(c);
    unsetenv("KMSD_LISTEN");
    unsetenv("KMSD_LOG_LEVEL");
}

/* conf_changed names each setting whose value differs, lists by content. */
typedef struct keys_seen {
    char list[256];
} keys_seen_t;

static void seen(const char *key, void *arg)
{
    keys_seen_t *k = arg;
    size_t n = strlen(k->list);
    snprintf(k->list + n, sizeof k->list - n, "%s%s", n ? " " : "", key);
}

/* http.metrics_clients: fingerprints in either form, any case, stored as
 * 64 lower-case hex digits (what kmsd compares with the peer's); anything
 * else refused with its position. */
static void test_metrics_clients(void **state)
{
    (void)state;
    static const char y[] =
        "http:\n  metrics_clients:\n"
        "    - 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
        "    - \"60:30:3A:E2:2B:99:88:61:BC:E3:B2:8F:33:EE:C1:BE:75:8A:21:3C:86:C9:3C:07:6D:BE:"
        "9F:55:8C:11:C7:52\"\n";
    conf_t *c = NULL;
    kms_error_t err;
    assert_int_equal(conf_load_buffer("m", NULL, y, strlen(y), &c, &err), 0);
    assert_int_equal(c->http.n_metrics_clients, 2);
    assert_string_equal(c->http.metrics_clients[0],
                        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_string_equal(c->http.metrics_clients[1],
                        "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752");
    char *d = dump_to_string(c);
    assert_non_null(strstr(d, "  metrics_clients:\n"));
    assert_non_null(strstr(d, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
    free(d);
    conf_free(c);
    /* the default: none listed */
    assert_int_equal(conf_load_buffer("e", NULL, "", 0, &c, &err), 0);
    assert_int_equal(c->http.n_metrics_clients, 0);
    conf_free(c);
    expect_error("http:\n  metrics_clients: [CN=prometheus]\n", ":2:21: ",
                 "http.metrics_clients: 'CN=prometheus' is not a SHA-256 fingerprint (64 hex "
                 "digits, ':' between bytes allowed)");
    expect_error("http:\n  metrics_clients:\n"
                 "    - 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\n",
                 ":3:7: ", "is not a SHA-256 fingerprint (64 hex digits, ':' between bytes "
                 "allowed)");
    expect_error("http:\n  metrics_clients: {a: 1}\n", ":2:20: ",
                 "http.metrics_clients: expected a list of SHA-256 certificate fingerprints, "
                 "got a mapping");
}

static void test_changed(void **state)
{
    (void)state;
    static const char a[] = "listen: [\"127.0.0.1:5696\"]\nhsm: {key_file: k}\nthreads: 8\n"
                            "tls: {cert: s.crt}\n";
    static const char b[] = "listen: [\"127.0.0.1:5696\", \"127.0.0.1:5697\"]\n"
                            "hsm: {key_file: k}\nthreads: 8\ntls: {cert: t.crt}\n"
                            "log: {level: debug}\n";
    conf_t *ca = NULL, *cb = NULL, *cc = NULL;
    kms_error_t err;
    assert_int_equal(conf_load_buffer("a", NULL, a, strlen(a), &ca, &err), 0);
    assert_int_equal(conf_load_buffer("b", NULL, b, strlen(b), &cb, &err), 0);
    assert_int_equal(conf_load_buffer("c", NULL, a, strlen(a), &cc, &err), 0);
    keys_seen_t k = {{0}};
    assert_int_equal(conf_changed(ca, cb, seen, &k), 0);
    assert_string_equal(k.list, "listen tls.cert log.level");
    memset(&k, 0, sizeof k);
    assert_int_equal(conf_changed(ca, cc, seen, &k), 0); /* equal strings, other pointers */
    assert_string_equal(k.list, "");
    assert_int_equal(conf_changed(ca, NULL, seen, &k), KMS_ERR_INVAL);
    conf_free(ca);
    conf_free(cb);
    conf_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sample_file),
        cmocka_unit_test(test_values_loaded),
        cmocka_unit_test(test_shorthands),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_cross_field),
        cmocka_unit_test(test_deprecated_mode),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_changed),
        cmocka_unit_test(test_metrics_clients),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
