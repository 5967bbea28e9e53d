/*
 * server/main.c: kmsd's entry point and its start-up / shutdown sequence.
 *
 *   kmsd -c FILE                 run the server
 *   kmsd --check-config FILE     validate FILE (also: --check-config -c FILE);
 *                                exit 0 and print the effective configuration,
 *                                or exit 2 with "FILE:LINE:COL: key: problem"
 *   kmsd --version
 *
 * main() is the whole life of the process, one step per function, in the
 * order below; every step logs one line and a failure exits non-zero with
 * one clear line. Hooks (access control, admin socket, audit log) go where
 * the "HOOK" comments say. It deliberately holds no logic of its own.
 *
 * Exit status: 0 clean shutdown, 1 start-up or runtime failure (including a
 * shutdown that could not finish in time), 2 usage or configuration error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "keys/keys.h" /* keyring, rotation, HSM health */
#include "server/server_int.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: kmsd -c FILE | kmsd --check-config [-c] FILE | kmsd --version\n");
}

static int check_config(const char *path)
{
    kms_error_t err;
    conf_t *c = NULL;
    kms_error_clear(&err);
    int rc = conf_load(path, &c, &err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err.msg[0] ? err.msg : kms_strerror(rc));
        return 2;
    }
    conf_dump(c, stdout);
    fprintf(stderr, "%s: configuration OK\n", path);
    conf_free(c);
    return 0;
}

/* Step 1: the configuration file (limits and listen addresses stay fixed). */
static int load_config(srv_t *srv, const char *path)
{
    kms_error_t err;
    kms_error_clear(&err);
    int rc = conf_load(path, &srv->conf, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "config: %s", err.msg[0] ? err.msg : kms_strerror(rc));
        return rc;
    }
    kms_log_set_format(srv->conf->log.format); /* from the first line on */
    srv->conf_path = srv->conf->path[0] ? srv->conf->path : path;
    srv->limits = srv->conf->limits;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_loops = srv->conf->workers ? srv->conf->workers : (unsigned)(cpus > 0 ? cpus : 1);
    kms_log(KMS_LOG_INFO, SRV_LOG, "kmsd %s starting with %s (%u loops, %u worker threads)",
            SRV_VERSION, srv->conf_path, srv->n_loops, srv->conf->threads);
    return 0;
}

/* Step 7: the TLS context for new connections. */
static int setup_tls(srv_t *srv)
{
    kms_error_t err;
    SSL_CTX *ctx = NULL;
    kms_error_clear(&err);
    int rc = srv_tls_ctx_new(srv->conf, &ctx, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "tls: %s", err.msg);
        return rc;
    }
    srv_tls_swap(srv, ctx);
    kms_log(KMS_LOG_INFO, SRV_LOG, "tls: certificate %s, client CA %s, client auth %s, min %s",
            srv->conf->tls.cert, srv->conf->tls.client_ca,
            srv->conf->tls.client_auth == CONF_CLIENT_AUTH_REQUIRED ? "required" : "optional",
            srv->conf->tls.min_version >= TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2");
    return 0;
}

/* Step 8: listen sockets (as the starting user, so port < 1024 works). */
static int bind_listeners(srv_t *srv)
{
    kms_error_t err;
    kms_error_clear(&err);
    int rc = srv_listen_resolve(srv, &err);
    if (rc == 0)
        rc = srv_loops_bind(srv, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "%s", err.msg[0] ? err.msg : kms_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < srv->n_addrs; i++)
        kms_log(KMS_LOG_INFO, SRV_LOG, "listening on %s%s (%u SO_REUSEPORT sockets)",
                srv->addrs[i].text, srv->addrs[i].http ? " (https: metrics, health, kmip)" : "",
                srv->n_loops);
    return 0;
}

/* Shutdown: stop accepting, drain, then release modules in reverse order. */
static int shutdown_all(srv_t *srv)
{
    int status = 0;
    hsm_t *current = keys_hsm(); /* a rotation may have replaced srv->hsm */
    if (current)
        srv->hsm = current;
    keys_stop(); /* before the loops: the monitor wakes them */
    if (srv->loops) {
        srv_loops_stop(srv);
        /* The loops force-close at shutdown_timeout; allow a little more for
         * a request stuck in the HSM or the disk, then give up. */
        uint64_t deadline = kms_mono_ns() / 1000000 + srv->limits.shutdown_timeout_ms + 5000;
        if (!srv_loops_join(srv, deadline)) {
            kms_log(KMS_LOG_ERROR, SRV_LOG,
                    "shutdown: requests still running after the shutdown timeout; exiting");
            return 1; /* do not free what worker threads may still use */
        }
    }
    /* No connection is left: nothing waits for an admission or a durable
     * audit record. */
    srv_admit_stop(srv);
    srv_audit_detach(srv);
    srv_loops_free(srv);
    srv_metrics_free(srv);
    /* Admin socket, audit log (flushed), replication. */
    srv_access_stop(srv);
    srv_repl_stop(srv);
    kmip_server_free(srv->kmip);
    X509_free(srv->certify_ca);
    EVP_PKEY_free(srv->certify_ca_key);
    hsm_keyring_free(srv->keyring);
    store_close(srv->store);
    hsm_close(srv->hsm);
    srv_tls_swap(srv, NULL);
    free(srv->addrs);
    kms_log(KMS_LOG_INFO, SRV_LOG, "stopped");
    conf_free(srv->conf);
    return status;
}

static int run(const char *path)
{
    static srv_t srv; /* one server per process; signal and loop code refer to it */
    int rc;

    pthread_mutex_init(&srv.tls_lock, NULL);
    pthread_mutex_init(&srv.budget_mu, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* 1-2. configuration and log level */
    if (load_config(&srv, path) != 0)
        return 2;
    kms_log_set_level(srv.conf->log.level);
    kms_log_set_format(srv.conf->log.format);
    /* 3. no core dumps, not ptrace-able by other users, private files;
     * libuv's worker threads, sized by `threads`, before any thread
     * (store, replication) can queue work and fix their number */
    if ((rc = srv_harden()) != 0 || (rc = srv_start_threadpool(&srv)) != 0)
        goto fail;
    /* 4-6. database, master key (named by store meta after a rotation),
     * data-store keys (first start: DSK 1) */
    if ((rc = srv_open_store(&srv)) != 0 || (rc = srv_open_hsm(&srv)) != 0 ||
        (rc = keys_setup_keyring(srv.hsm, srv.store, &srv.keyring)) != 0)
        goto fail;
    /* Replication (server/cluster.c), then the audit log and the admin
     * socket (server/hooks.c): binds the admin Unix socket here, still as
     * root. */
    if ((rc = srv_repl_start(&srv)) != 0 || (rc = srv_access_start(&srv)) != 0)
        goto fail;
    /* 7. the KMIP engine */
    if ((rc = srv_open_kmip(&srv)) != 0)
        goto fail;
    /* 8-9. TLS context, listen sockets (KMIP and HTTPS), metrics */
    if ((rc = srv_metrics_new(&srv)) != 0 || (rc = setup_tls(&srv)) != 0 ||
        (rc = bind_listeners(&srv)) != 0)
        goto fail;
    /* (The admin socket was bound by srv_access_start() above.) */
    /* 10. drop root (files and ports are open) */
    if ((rc = srv_drop_privileges(&srv)) != 0)
        goto fail;
    /* 11. signals first (a failing loop raises SIGTERM), then the loops,
     * listening only if this node can serve keys now (server/ready.c: a
     * node still catching up keeps its KMIP listener closed) */
    unsigned unready = srv_ready_update(&srv);
    if ((rc = srv_signals_init(&srv)) != 0 || (rc = srv_admit_start(&srv)) != 0 ||
        (rc = srv_loops_start(&srv)) != 0)
        goto fail;
    /* Health monitor (HSM, store; readiness after every probe), key
     * rotation, resumed re-encryption (keys/, wired by server/hooks.c) */
    if ((rc = srv_keys_start(&srv)) != 0)
        goto fail;
    if (unready)
        kms_log(KMS_LOG_INFO, SRV_LOG, "started; the KMIP listener opens once ready");
    else
        kms_log(KMS_LOG_INFO, SRV_LOG, "ready");
    /* 12. until SIGTERM / SIGINT (SIGHUP reloads TLS and log level) */
    srv_signals_run(&srv);
    /* 13. graceful shutdown */
    return shutdown_all(&srv);
fail:
    kms_log(KMS_LOG_ERROR, SRV_LOG, "start-up failed: %s", kms_strerror(rc));
    (void)shutdown_all(&srv);
    /* 2: the configuration or a file it names is wrong (a key file with
     * a loose mode is refused with KMS_ERR_PERM) */
    return rc == KMS_ERR_CONFIG || rc == KMS_ERR_PERM ? 2 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("kmsd %s\n", SRV_VERSION);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check-config") == 0)
        return check_config(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--check-config") == 0 && strcmp(argv[2], "-c") == 0)
        return check_config(argv[3]);
    if (argc == 4 && strcmp(argv[1], "-c") == 0 && strcmp(argv[3], "--check-config") == 0)
        return check_config(argv[2]);
    if (argc == 3 && strcmp(argv[1], "-c") == 0)
        return run(argv[2]);
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
