/*
 * server/signals.c: the main thread's loop: signals and configuration reload.
 *
 * SIGTERM / SIGINT start the graceful shutdown (main.c then joins the loops
 * within limits.shutdown_timeout). SIGHUP re-reads the configuration file
 * and swaps in a new TLS context (certificate, key, client CA, ciphers) and
 * the log level; open connections keep the context they started with. A
 * reload that fails keeps everything as it was and says why.
 *
 * It deliberately does not re-apply listen addresses, workers, limits, the
 * store or the HSM settings: those need a restart (the log says so).
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "server/server_int.h"

/* How often free heap pages are handed back to the kernel. */
#define SRV_TRIM_MS 10000

typedef struct srv_sigctx {
    srv_t *srv;
    uv_signal_t term, intr, hup;
    uv_timer_t trim;
    int stop_signal;
} srv_sigctx_t;

/* The settings a reload applies: the TLS context's and the log's. */
static bool reload_applies(const char *key)
{
    return (strncmp(key, "tls.", 4) == 0 && strcmp(key, "tls.require_registered") != 0) ||
           strcmp(key, "log.level") == 0 || strcmp(key, "log.format") == 0;
}

typedef struct pending_keys {
    char list[512];
    size_t n;
} pending_keys_t;

static void note_pending(const char *key, void *arg)
{
    pending_keys_t *p = arg;
    if (reload_applies(key))
        return;
    size_t used = strlen(p->list);
    if (used + strlen(key) + 8 < sizeof p->list)
        snprintf(p->list + used, sizeof p->list - used, "%s%s", p->n ? ", " : "", key);
    else if (!strstr(p->list, ", ..."))
        snprintf(p->list + used, sizeof p->list - used, ", ...");
    p->n++;
}

int srv_reload(srv_t *srv)
{
    kms_error_t err;
    conf_t *nc = NULL;
    SSL_CTX *ctx = NULL;
    kms_error_clear(&err);
    int rc = conf_load(srv->conf_path, &nc, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "reload refused, keeping the running configuration: %s",
                err.msg);
        goto out;
    }
    /* A client CA bundle that now trusts Certify's issuing CA would make
     * the certificates it issued kmsd credentials. */
    if ((rc = srv_certify_ca_trusted(srv, nc)) != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "reload refused, keeping the running configuration");
        goto out;
    }
    rc = srv_tls_ctx_new(nc, &ctx, &err);
    if (rc != 0) {
        kms_log(KMS_LOG_ERROR, SRV_LOG, "reload refused, keeping the running TLS context: %s",
                err.msg);
        goto out;
    }
    srv_tls_swap(srv, ctx);
    ctx = NULL;
    kms_log_set_level(nc->log.level);
    kms_log_set_format(nc->log.format);
    kms_log(KMS_LOG_INFO, SRV_LOG,
            "reloaded %s: certificate %s, client CA %s, log level %d (listen, limits, store "
            "and hsm changes need a restart)",
            srv->conf_path, nc->tls.cert, nc->tls.client_ca, (int)nc->log.level);
    /* The file may also have changed what only a restart applies: say
     * which, rather than leave the operator believing it took effect. The
     * running settings stay those of the start (srv->conf). */
    pending_keys_t pend = {.n = 0};
    if (conf_changed(srv->conf, nc, note_pending, &pend) == 0 && pend.n)
        kms_log(KMS_LOG_WARN, SRV_LOG,
                "reload: %zu changed setting(s) take effect only after a restart: %s", pend.n,
                pend.list);
out:
    SSL_CTX_free(ctx);
    conf_free(nc);
    return rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
    srv_sigctx_t *sc = h->data;
    if (signum == SIGHUP) {
        kms_log(KMS_LOG_INFO, SRV_LOG, "SIGHUP: reloading TLS material and log level");
        (void)srv_reload(sc->srv);
        return;
    }
    kms_log(KMS_LOG_INFO, SRV_LOG, "%s: shutting down (up to %llu ms for requests in flight)",
            strsignal(signum), (unsigned long long)sc->srv->limits.shutdown_timeout_ms);
    sc->stop_signal = signum;
    uv_stop(h->loop);
}

/* Thousands of TLS handshakes leave free holes all over the heap (loop and
 * worker threads have their own malloc arenas); malloc_trim() returns the
 * free pages inside them, so idle connections cost only what they hold. */
static void on_trim(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

static uv_loop_t sig_loop;
static srv_sigctx_t sig_ctx;

int srv_signals_init(srv_t *srv)
{
    sig_ctx.srv = srv;
    if (uv_loop_init(&sig_loop) != 0)
        return KMS_ERR_INTERNAL;
    uv_signal_init(&sig_loop, &sig_ctx.term);
    uv_signal_init(&sig_loop, &sig_ctx.intr);
    uv_signal_init(&sig_loop, &sig_ctx.hup);
    sig_ctx.term.data = sig_ctx.intr.data = sig_ctx.hup.data = &sig_ctx;
    if (uv_signal_start(&sig_ctx.term, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&sig_ctx.intr, on_signal, SIGINT) != 0 ||
        uv_signal_start(&sig_ctx.hup, on_signal, SIGHUP) != 0)
        return KMS_ERR_INTERNAL;
    uv_timer_init(&sig_loop, &sig_ctx.trim);
    uv_timer_start(&sig_ctx.trim, on_trim, SRV_TRIM_MS, SRV_TRIM_MS);
    return 0;
}

int srv_signals_run(srv_t *srv)
{
    (void)srv;
    uv_run(&sig_loop, UV_RUN_DEFAULT);
    /* After the first SIGTERM/SIGINT the default action returns: a second
     * one ends the process at once (the operator's "really stop"). */
    uv_close((uv_handle_t *)&sig_ctx.term, NULL);
    uv_close((uv_handle_t *)&sig_ctx.intr, NULL);
    uv_close((uv_handle_t *)&sig_ctx.hup, NULL);
    uv_close((uv_handle_t *)&sig_ctx.trim, NULL);
    uv_run(&sig_loop, UV_RUN_DEFAULT);
    uv_loop_close(&sig_loop);
    signal(SIGHUP, SIG_IGN); /* a reload during shutdown is moot */
    return sig_ctx.stop_signal;
}
