/*
 * replication/repl.c: the module's life cycle: options, the replication
 * thread and its libuv loop, the peer listener, and one outbound push link
 * per configured peer, reconnected with jittered exponential backoff
 * (100 ms .. 5 s) for as long as the module runs.
 *
 * Threads: repl_open/start/stop/close run on the caller's thread; every
 * handle is used on the replication thread only (the listener and the
 * first timers are set up before it starts). Other threads reach it
 * through uv_async_send (stop, commit notifications, waiters) and read
 * status under the module's mutex. It deliberately holds no protocol
 * logic (link.c) and no store logic (ship.c, apply.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "replication/repl_int.h"

int repl_split_hostport(const char *s, char *host, size_t hostlen, char port[8])
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hl;
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
        return KMS_ERR_CONFIG;
    hl = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hl < 3 || s[hl - 1] != ']')
            return KMS_ERR_CONFIG;
        h = s + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return KMS_ERR_CONFIG;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return KMS_ERR_CONFIG;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, 8, "%ld", p);
    return 0;
}

static const char *dup_str(repl_t *r, const char *s)
{
    return kms_arena_strdup(r->strs, s ? s : "");
}

int repl_open(const repl_options_t *opt, repl_t **out, kms_error_t *err)
{
    char host[256], port[8];
    int rc = KMS_ERR_NOMEM;
    repl_t *r = NULL;

    *out = NULL;
    if (!opt || !opt->store)
        return kms_error_set(err, KMS_ERR_INVAL, "replication: no store");
    if (!opt->node_id || !opt->node_id[0] || strlen(opt->node_id) > REPL_ID_MAX)
        return kms_error_set(err, KMS_ERR_CONFIG, "replication: node id must be 1 to %d bytes",
                             REPL_ID_MAX);
    if (!opt->cluster_id || !opt->cluster_id[0] || strlen(opt->cluster_id) > REPL_ID_MAX)
        return kms_error_set(err, KMS_ERR_CONFIG,
                             "replication: no cluster id (kmsctl init makes one)");
    if (opt->listen && opt->listen[0] && repl_split_hostport(opt->listen, host, sizeof host, port))
        return kms_error_set(err, KMS_ERR_CONFIG, "replication.listen: '%s' is not ADDR:PORT",
                             opt->listen);
    for (size_t i = 0; i < opt->n_peers; i++)
        if (repl_split_hostport(opt->peers[i], host, sizeof host, port))
            return kms_error_set(err, KMS_ERR_CONFIG, "replication.peers: '%s' is not HOST:PORT",
                                 opt->peers[i]);
    if (!opt->cert || !opt->key || !opt->ca || !opt->cert[0] || !opt->key[0] || !opt->ca[0])
        return kms_error_set(err, KMS_ERR_CONFIG,
                             "replication: cert, key and ca are required");

    if (!(r = calloc(1, sizeof *r)) || !(r->strs = kms_arena_new(0)))
        goto fail;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        kms_arena_free(r->strs);
        free(r);
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    }
    if (pthread_mutex_init(&r->wq_mu, NULL) != 0) {
        pthread_mutex_destroy(&r->mu);
        kms_arena_free(r->strs);
        free(r);
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    }
    if (pthread_mutex_init(&r->apply_mu, NULL) != 0) {
        pthread_mutex_destroy(&r->wq_mu);
        pthread_mutex_destroy(&r->mu);
        kms_arena_free(r->strs);
        free(r);
        return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
    }
    r->opt = *opt;
    r->opt.node_id = dup_str(r, opt->node_id);
    r->opt.cluster_id = dup_str(r, opt->cluster_id);
    r->opt.listen = dup_str(r, opt->listen);
    r->opt.advertise = dup_str(r, opt->advertise && opt->advertise[0] ? opt->advertise
                                                                      : opt->listen);
    r->opt.kmip_addr = dup_str(r, opt->kmip_addr);
    r->opt.cert = dup_str(r, opt->cert);
    r->opt.key = dup_str(r, opt->key);
    r->opt.ca = dup_str(r, opt->ca);
    r->opt.ca_key = dup_str(r, opt->ca_key);
    r->opt.client_ca = dup_str(r, opt->client_ca);
    r->opt.certify_ca = dup_str(r, opt->certify_ca);
    r->opt.certify_ca_key = dup_str(r, opt->certify_ca_key);
    r->opt.peers = NULL;
    r->opt.n_peers = 0;
    if (!r->opt.node_id || !r->opt.cluster_id || !r->opt.listen || !r->opt.advertise ||
        !r->opt.kmip_addr || !r->opt.cert || !r->opt.key || !r->opt.ca || !r->opt.ca_key ||
        !r->opt.client_ca || !r->opt.certify_ca || !r->opt.certify_ca_key)
        goto fail;
    for (size_t i = 0; i < opt->n_peers; i++) {
        repl_peer_t *p = calloc(1, sizeof *p);
        if (!p)
            goto fail;
        p->r = r;
        kms_strlcpy(p->addr, opt->peers[i], sizeof p->addr);
        (void)repl_split_hostport(p->addr, p->host, sizeof p->host, p->port);
        p->backoff_ms = REPL_BACKOFF_MIN_MS;
        p->next = r->peers;
        r->peers = p;
    }
    if ((rc = repl_tls_init(r, err)) != 0) {
        repl_close(r);
        return rc;
    }
    *out = r;
    return 0;
fail:
    repl_close(r);
    return kms_error_set(err, KMS_ERR_NOMEM, "out of memory");
}

/* ------------------------------------------------------------ peers */
static void on_connect(uv_connect_t *req, int status)
{
    repl_conn_t *c = req->data;
    if (c->state == RC_CLOSING)
        return;
    if (status < 0) {
        char why[120];
        snprintf(why, sizeof why, "connect to %.80s: %s", c->peer ? c->peer->addr : "?",
                 uv_strerror(status));
        repl_conn_close(c, why);
        return;
    }
    repl_conn_start(c);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    repl_peer_t *p = g->data;
    repl_t *r = p->r;
    p->resolving = false;
    if (atomic_load(&r->stopping)) {
        uv_freeaddrinfo(ai);
        return;
    }
    if (status < 0 || !ai) {
        char why[160];
        snprintf(why, sizeof why, "cannot resolve %.80s: %s", p->host, uv_strerror(status));
        repl_peer_error(p, why);
        uv_freeaddrinfo(ai);
        repl_peer_schedule(p);
        return;
    }
    repl_conn_t *c = repl_conn_new(r, true);
    if (!c) {
        uv_freeaddrinfo(ai);
        repl_peer_schedule(p);
        return;
    }
    c->peer = p;
    p->conn = c;
    kms_strlcpy(c->addr, p->addr, sizeof c->addr);
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, on_connect);
    uv_freeaddrinfo(ai);
    if (rc < 0) {
        char why[120];
        snprintf(why, sizeof why, "connect to %.80s: %s", p->addr, uv_strerror(rc));
        repl_conn_close(c, why);
    }
}

static void on_retry(uv_timer_t *t)
{
    repl_peer_t *p = t->data;
    repl_t *r = p->r;
    if (atomic_load(&r->stopping) || p->conn || p->resolving || p->is_self)
        return;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    p->gai.data = p;
    if (uv_getaddrinfo(&r->loop, &p->gai, on_resolved, p->host, p->port, &hints) == 0)
        p->resolving = true;
    else
        repl_peer_schedule(p);
}

void repl_peer_kick(repl_t *r, const char *peer_addr)
{
    if (!peer_addr || !peer_addr[0] || atomic_load(&r->stopping))
        return;
    for (repl_peer_t *p = r->peers; p; p = p->next)
        if (strcmp(p->addr, peer_addr) == 0 && !p->conn && !p->resolving && !p->is_self &&
            !uv_is_closing((uv_handle_t *)&p->retry)) {
            p->backoff_ms = REPL_BACKOFF_MIN_MS;
            uv_timer_start(&p->retry, on_retry, 0, 0);
        }
}

void repl_peer_schedule(repl_peer_t *p)
{
    uint32_t rnd = 0;
    if (atomic_load(&p->r->stopping))
        return;
    /* Jitter: 75 % .. 125 % of the current backoff, so peers that lost
     * each other at once do not reconnect in lock step. */
    (void)RAND_bytes((unsigned char *)&rnd, sizeof rnd);
    uint64_t d = p->backoff_ms * 3 / 4 + rnd % (p->backoff_ms / 2 + 1);
    uv_timer_start(&p->retry, on_retry, d, 0);
    p->backoff_ms = p->backoff_ms * 2 > REPL_BACKOFF_MAX_MS ? REPL_BACKOFF_MAX_MS
                                                            : p->backoff_ms * 2;
}

/* ------------------------------------------------------------ listener */
static void on_connection(uv_stream_t *server, int status)
{
    repl_t *r = server->data;
    if (status < 0 || atomic_load(&r->stopping))
        return;
    repl_conn_t *c = repl_conn_new(r, false);
    if (!c)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        repl_conn_close(c, "accept failed");
        return;
    }
    repl_conn_start(c);
}

/* ------------------------------------------------------------ thread */
static void stop_all(repl_t *r)
{
    if (r->listening) {
        uv_close((uv_handle_t *)&r->listener, NULL);
        r->listening = false;
    }
    for (repl_peer_t *p = r->peers; p; p = p->next) {
        if (p->resolving)
            uv_cancel((uv_req_t *)&p->gai);
        if (!uv_is_closing((uv_handle_t *)&p->retry))
            uv_close((uv_handle_t *)&p->retry, NULL);
    }
    for (repl_conn_t *c = r->conns; c; c = c->next)
        repl_conn_close(c, "replication stopping");
    repl_verify_pump(r, true);
    repl_hooks_stop(r);
    if (!uv_is_closing((uv_handle_t *)&r->wake))
        uv_close((uv_handle_t *)&r->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    repl_t *r = a->data;
    if (atomic_load(&r->stopping)) {
        stop_all(r);
        return;
    }
    repl_hooks_wake(r);
    repl_verify_pump(r, false);
}

static void thread_main(void *arg)
{
    repl_t *r = arg;
    (void)pthread_setname_np(pthread_self(), "kmsd-repl");
    for (repl_peer_t *p = r->peers; p; p = p->next)
        uv_timer_start(&p->retry, on_retry, 0, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

int repl_start(repl_t *r, kms_error_t *err)
{
    char host[256], port[8];
    struct sockaddr_storage ss;
    int rc;

    if (!r || r->started)
        return kms_error_set(err, KMS_ERR_STATE, "replication already started");
    if ((rc = uv_loop_init(&r->loop)) != 0)
        return kms_error_set(err, KMS_ERR_INTERNAL, "uv_loop_init: %s", uv_strerror(rc));
    r->loop_init = true;
    if ((rc = uv_async_init(&r->loop, &r->wake, on_wake)) != 0)
        return kms_error_set(err, KMS_ERR_INTERNAL, "uv_async_init: %s", uv_strerror(rc));
    r->wake.data = r;
    for (repl_peer_t *p = r->peers; p; p = p->next) {
        uv_timer_init(&r->loop, &p->retry);
        p->retry.data = p;
    }
    if ((rc = repl_hooks_init(r, err)) != 0)
        goto fail;
    if (r->opt.listen[0]) {
        (void)repl_split_hostport(r->opt.listen, host, sizeof host, port);
        if (uv_ip4_addr(host, atoi(port), (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(host, atoi(port), (struct sockaddr_in6 *)&ss) != 0) {
            rc = kms_error_set(err, KMS_ERR_CONFIG,
                               "replication.listen: '%s' is not an IP address and port",
                               r->opt.listen);
            goto fail;
        }
        uv_tcp_init(&r->loop, &r->listener);
        r->listener.data = r;
        r->listening = true;
        rc = uv_tcp_bind(&r->listener, (struct sockaddr *)&ss, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&r->listener, 128, on_connection);
        if (rc != 0) {
            rc = kms_error_set(err, KMS_ERR_IO, "replication.listen %s: %s", r->opt.listen,
                               uv_strerror(rc));
            goto fail;
        }
    }
    if ((rc = uv_thread_create(&r->thread, thread_main, r)) != 0) {
        rc = kms_error_set(err, KMS_ERR_INTERNAL, "replication thread: %s", uv_strerror(rc));
        goto fail;
    }
    r->started = true;
    size_t np = 0;
    for (repl_peer_t *p = r->peers; p; p = p->next)
        np++;
    kms_log(KMS_LOG_INFO, REPL_LOG, "node %s: peer listener %s, %zu configured peers",
            r->opt.node_id, r->opt.listen[0] ? r->opt.listen : "(none)", np);
    return 0;
fail:
    /* Close what was opened on the loop that never ran. */
    atomic_store(&r->stopping, true);
    stop_all(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return rc;
}

void repl_stop(repl_t *r)
{
    if (!r || !r->started)
        return;
    atomic_store(&r->stopping, true);
    uv_async_send(&r->wake);
    uv_thread_join(&r->thread);
    r->started = false;
}

void repl_close(repl_t *r)
{
    if (!r)
        return;
    repl_stop(r);
    repl_hooks_wait_trim(r);
    if (r->loop_init) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        if (uv_loop_close(&r->loop) != 0)
            kms_log(KMS_LOG_WARN, REPL_LOG, "replication loop: handles left open");
    }
    repl_hooks_free(r);
    while (r->peers) {
        repl_peer_t *p = r->peers;
        r->peers = p->next;
        free(p);
    }
    while (r->nodes) {
        repl_node_t *n = r->nodes;
        r->nodes = n->next;
        free(n);
    }
    repl_tls_free(r);
    pthread_mutex_destroy(&r->apply_mu);
    pthread_mutex_destroy(&r->wq_mu);
    pthread_mutex_destroy(&r->mu);
    kms_arena_free(r->strs);
    free(r);
}

/* ------------------------------------------------------------ status */
/* A configured address no node has answered from yet. Caller holds mu. */
static bool peer_unknown(const repl_t *r, const repl_peer_t *p)
{
    if (p->is_self)
        return false;
    for (const repl_node_t *x = r->nodes; x; x = x->next)
        if (strcmp(x->st.addr, p->addr) == 0)
            return false;
    return true;
}

int repl_status(repl_t *r, kms_arena_t *a, repl_peer_status_t **out, size_t *n_out)
{
    size_t n = 0, i = 0;
    *out = NULL;
    *n_out = 0;
    if (!r || !a)
        return KMS_ERR_INVAL;
    pthread_mutex_lock(&r->mu);
    for (repl_node_t *x = r->nodes; x; x = x->next)
        n++;
    for (repl_peer_t *p = r->peers; p; p = p->next)
        n += peer_unknown(r, p);
    repl_peer_status_t *v = n ? kms_arena_alloc(a, n * sizeof *v) : NULL;
    for (repl_node_t *x = r->nodes; v && x; x = x->next)
        v[i++] = x->st;
    for (repl_peer_t *p = r->peers; v && p; p = p->next)
        if (peer_unknown(r, p)) {
            memset(&v[i], 0, sizeof v[i]);
            kms_strlcpy(v[i].addr, p->addr, sizeof v[i].addr);
            kms_strlcpy(v[i].state, "connecting", sizeof v[i].state);
            kms_strlcpy(v[i].last_error, p->last_error, sizeof v[i].last_error);
            i++;
        }
    pthread_mutex_unlock(&r->mu);
    if (n && !v)
        return KMS_ERR_NOMEM;
    repl_status_fill(r, v, n);
    *out = v;
    *n_out = n;
    return 0;
}
