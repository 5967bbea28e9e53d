/*
 * server/loop.c: the event-loop threads.
 *
 * `workers` loops, each in its own thread with its own SO_REUSEPORT socket
 * per listen address, so the kernel balances connections and loops share
 * nothing but the atomic connection counter and the TLS context. Sockets
 * are bound by the main thread (before privileges are dropped); each
 * thread wraps them with uv_tcp_open() and listens.
 *
 * Shutdown: the main thread wakes every loop (uv_async_send); a loop closes
 * its listeners, closes idle connections, lets busy ones finish their
 * request, and force-closes whatever is left after limits.shutdown_timeout.
 * Readiness (ready.c) wakes them the same way: a loop pauses (KMIP listen
 * sockets shut, KMIP connections closed once answered, so clients fail
 * over) or resumes listening; the HTTPS listener and its connections stay
 * open so that /readyz can say why. uv_run() returns when the last handle
 * is closed. It deliberately does no TLS, KMIP or HTTP work itself
 * (conn.c, http.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server_int.h"

int srv_loops_bind(srv_t *srv, kms_error_t *err)
{
    for (size_t a = 0; a < srv->n_addrs; a++)
        if (srv_listen_probe(&srv->addrs[a], err) != 0)
            return KMS_ERR_IO;
    srv->loops = calloc(srv->n_loops, sizeof *srv->loops);
    if (!srv->loops)
        return KMS_ERR_NOMEM;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        l->srv = srv;
        l->index = i;
        if (srv_loop_metrics_new(l) != 0)
            return KMS_ERR_NOMEM;
        l->fds = malloc(srv->n_addrs * sizeof *l->fds);
        l->listeners = calloc(srv->n_addrs, sizeof *l->listeners);
        if (!l->fds || !l->listeners)
            return KMS_ERR_NOMEM;
        for (size_t a = 0; a < srv->n_addrs; a++)
            l->fds[a] = -1;
        l->n_listeners = srv->n_addrs;
        for (size_t a = 0; a < srv->n_addrs; a++) {
            int fd = srv_listen_socket(&srv->addrs[a], err);
            if (fd < 0)
                return KMS_ERR_IO;
            l->fds[a] = fd;
        }
    }
    return 0;
}

static void on_drain_timer(uv_timer_t *t)
{
    srv_loop_t *l = t->data;
    kms_log(KMS_LOG_WARN, SRV_LOG, "loop %u: shutdown timeout, closing %zu connections",
            l->index, l->n_conns);
    for (srv_conn_t *c = l->conns; c; c = c->next)
        srv_conn_drain(c, true, "shutdown timeout");
    if (!uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, NULL);
}

static void on_listener_closed(uv_handle_t *h)
{
    srv_loop_t *l = h->data;
    l->n_closing--;
}

/* A listener handle that was opened (a loop that started paused never
 * initialised its handles) and is not closing. */
static bool listener_open(uv_tcp_t *t)
{
    return t->type == UV_TCP && !uv_is_closing((uv_handle_t *)t);
}

/* Why a paused loop closes its connections (the log of each names it). */
#define SRV_NOT_SERVING "this node is not serving keys now"

void srv_loop_apply_pause(srv_loop_t *l)
{
    srv_t *srv = l->srv;
    bool want = atomic_load(&srv->listen_paused);
    if (want == atomic_load(&l->paused))
        return;
    if (want) {
        for (size_t i = 0; i < l->n_listeners; i++) {
            uv_tcp_t *t = &l->listeners[i];
            uv_os_fd_t fd = -1;
            /* The HTTPS listener stays open: /readyz must say why. */
            if (!listener_open(t) || srv->addrs[i].http)
                continue;
            /* Keep the bound socket (a dup survives uv_close); shutdown()
             * takes it out of LISTEN, so new connections are refused. */
            if (uv_fileno((uv_handle_t *)t, &fd) == 0 && l->fds[i] < 0) {
                int keep = dup(fd);
                if (keep >= 0) {
                    (void)shutdown(keep, SHUT_RD);
                    l->fds[i] = keep;
                }
            }
            l->n_closing++;
            uv_close((uv_handle_t *)t, on_listener_closed);
        }
        atomic_store(&l->paused, true);
        /* Connections already open would keep a client here; close them
         * once their request in flight is answered, so it fails over. */
        for (srv_conn_t *c = l->conns; c; c = c->next)
            if (!c->http)
                srv_conn_drain(c, false, SRV_NOT_SERVING);
        return;
    }
    if (l->n_closing)
        return; /* the monitor wakes us again */
    for (size_t i = 0; i < l->n_listeners; i++) {
        uv_tcp_t *t = &l->listeners[i];
        kms_error_t err;
        if (srv->addrs[i].http)
            continue; /* never paused */
        kms_error_clear(&err);
        if (l->fds[i] < 0)
            l->fds[i] = srv_listen_socket(&srv->addrs[i], &err);
        if (l->fds[i] < 0) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "loop %u: cannot re-open %s: %s", l->index,
                    srv->addrs[i].text, err.msg);
            l->fds[i] = -1;
            continue;
        }
        int r = uv_tcp_init(&l->loop, t);
        if (r == 0) {
            t->data = l;
            r = uv_tcp_open(t, l->fds[i]);
            if (r == 0)
                l->fds[i] = -1;
            if (r == 0)
                r = uv_listen((uv_stream_t *)t, 1024, srv_conn_accept);
            if (r != 0) {
                l->n_closing++;
                uv_close((uv_handle_t *)t, on_listener_closed);
            }
        }
        if (r != 0)
            kms_log(KMS_LOG_ERROR, SRV_LOG, "loop %u: re-listen %s: %s", l->index,
                    srv->addrs[i].text, uv_strerror(r));
    }
    atomic_store(&l->paused, false);
}

static void on_wake(uv_async_t *a)
{
    srv_loop_t *l = a->data;
    if (l->stopping)
        return;
    if (!atomic_load(&l->srv->stopping)) {
        srv_loop_apply_pause(l); /* the HSM monitor's wake-up */
        return;
    }
    l->stopping = true;
    for (size_t i = 0; i < l->n_listeners; i++)
        if (listener_open(&l->listeners[i]))
            uv_close((uv_handle_t *)&l->listeners[i], NULL);
    uv_close((uv_handle_t *)&l->wake, NULL);
    for (srv_conn_t *c = l->conns; c; c = c->next)
        srv_conn_drain(c, false, "server shutting down");
    if (l->n_conns == 0)
        srv_loop_conns_gone(l);
    else
        uv_timer_start(&l->drain_timer, on_drain_timer, l->srv->limits.shutdown_timeout_ms, 0);
}

void srv_loop_conns_gone(srv_loop_t *l)
{
    /* No connection is left, so no deferred commit is pending either. */
    if (!uv_is_closing((uv_handle_t *)&l->drain_timer))
        uv_close((uv_handle_t *)&l->drain_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&l->commit_async))
        uv_close((uv_handle_t *)&l->commit_async, NULL);
    srv_loop_events_close(l); /* no connection waits for an admission */
    srv_wait_close(l);
}

static void loop_thread(void *arg)
{
    srv_loop_t *l = arg;
    srv_t *srv = l->srv;
    char name[16];
    snprintf(name, sizeof name, "kmsd-loop%u", l->index);
    (void)pthread_setname_np(pthread_self(), name);
    /* Not ready at start (ready.c decided before the loops started): the
     * KMIP sockets stay bound but not listening until the node can serve;
     * the HTTPS listener opens regardless (/readyz must say why, and
     * srv_loop_apply_pause never opens it later). */
    if (atomic_load(&srv->listen_paused))
        atomic_store(&l->paused, true);
    for (size_t i = 0; i < l->n_listeners; i++) {
        uv_tcp_t *t = &l->listeners[i];
        if (atomic_load(&l->paused) && !srv->addrs[i].http)
            continue;
        int r = uv_tcp_init(&l->loop, t);
        if (r == 0) {
            t->data = l;
            r = uv_tcp_open(t, l->fds[i]);
        }
        if (r == 0) {
            l->fds[i] = -1; /* owned by the handle now */
            r = uv_listen((uv_stream_t *)t, 1024, srv_conn_accept);
        }
        if (r != 0) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "loop %u: listen %s: %s", l->index,
                    srv->addrs[i].text, uv_strerror(r));
            atomic_store(&srv->stopping, true);
            kill(getpid(), SIGTERM); /* the main thread shuts everything down */
            break;
        }
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    atomic_fetch_sub(&srv->n_loops_running, 1);
}

int srv_loops_start(srv_t *srv)
{
    for (unsigned i = 0; i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        int r = uv_loop_init(&l->loop);
        if (r == 0)
            r = uv_async_init(&l->loop, &l->wake, on_wake);
        if (r == 0)
            r = uv_timer_init(&l->loop, &l->drain_timer);
        if (r == 0)
            r = uv_async_init(&l->loop, &l->commit_async, srv_conn_commits_done);
        if (r == 0 && pthread_mutex_init(&l->commit_mu, NULL) != 0)
            r = UV_ENOMEM;
        if (r == 0)
            r = srv_loop_events_init(l);
        if (r == 0)
            r = srv_wait_init(l);
        if (r != 0) {
            kms_log(KMS_LOG_ERROR, SRV_LOG, "loop %u: %s", i, uv_strerror(r));
            return KMS_ERR_INTERNAL;
        }
        l->wake.data = l;
        l->drain_timer.data = l;
        l->commit_async.data = l;
        atomic_fetch_add(&srv->n_loops_running, 1);
        r = uv_thread_create(&l->thread, loop_thread, l);
        if (r != 0) {
            atomic_fetch_sub(&srv->n_loops_running, 1);
            kms_log(KMS_LOG_ERROR, SRV_LOG, "loop %u: thread: %s", i, uv_strerror(r));
            return KMS_ERR_INTERNAL;
        }
        l->started = true;
    }
    return 0;
}

void srv_loops_stop(srv_t *srv)
{
    atomic_store(&srv->stopping, true);
    for (unsigned i = 0; i < srv->n_loops; i++)
        if (srv->loops[i].started)
            uv_async_send(&srv->loops[i].wake);
}

bool srv_loops_join(srv_t *srv, uint64_t deadline_ms)
{
    /* Poll the running count so a stuck worker cannot hang the exit forever. */
    while (atomic_load(&srv->n_loops_running) > 0) {
        if (kms_mono_ns() / 1000000 >= deadline_ms)
            return false;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < srv->n_loops; i++)
        if (srv->loops[i].started) {
            uv_thread_join(&srv->loops[i].thread);
            srv->loops[i].joined = true;
        }
    return true;
}

void srv_loops_free(srv_t *srv)
{
    if (!srv->loops)
        return;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        srv_loop_t *l = &srv->loops[i];
        if (l->joined) {
            uv_run(&l->loop, UV_RUN_NOWAIT); /* run pending close callbacks */
            if (uv_loop_close(&l->loop) != 0)
                kms_log(KMS_LOG_WARN, SRV_LOG, "loop %u: handles left open", i);
        }
        for (size_t a = 0; l->fds && a < l->n_listeners; a++)
            if (l->fds[a] >= 0)
                close(l->fds[a]);
        if (l->started) {
            pthread_mutex_destroy(&l->commit_mu);
            pthread_mutex_destroy(&l->events_mu);
        }
        srv_tenant_free(l);
        srv_preauth_free(l);
        free(l->fds);
        free(l->listeners);
        srv_loop_metrics_free(l);
    }
    free(srv->loops);
    srv->loops = NULL;
}
