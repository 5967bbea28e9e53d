/*
 * server/server_int.h: private contract between the files of kmsd's core
 * (main.c, startup.c, tls.c, listen.c, loop.c, conn.c, timer.c, signals.c,
 * ready.c).
 *
 * One srv_t holds the whole running server: the modules it opened (hsm,
 * store, keyring, kmip, replication), the TLS context that new connections
 * use, the listen sockets and the event loops. It deliberately holds no KMIP
 * knowledge: a connection hands complete request bytes to kmip/, which
 * decodes them into a request value; the connection then walks that value
 * through kmip's steps (on its loop thread, or on a worker for requests
 * that may block) and writes back the answer. Who a client is, is kmip's
 * step too (kmip_request_authenticate; kmip_cert_registered after the
 * handshake when tls.require_registered is set).
 */
#ifndef KMS_SERVER_INT_H
#define KMS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "audit/audit.h"
#include "common/kms.h"
#include "conf/conf.h"
#include "hsm/hsm.h"
#include "kmip/kmip.h"
#include "replication/repl.h"
#include "server/http_int.h"
#include "store/store.h"

#define SRV_VERSION "0.1.0"
#define SRV_LOG "kmsd"

typedef struct srv srv_t;
typedef struct srv_loop srv_loop_t;
typedef struct srv_conn srv_conn_t;
typedef struct srv_http srv_http_t;
typedef struct srv_metrics srv_metrics_t;
typedef struct srv_loop_metrics srv_loop_metrics_t;

/* ------------------------------------------------------------ listeners */
/* One configured listen address, resolved once at start. */
typedef struct srv_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80];            /* "127.0.0.1:5696", "[::]:5696" */
    bool http;                /* an http.listen address (server/http.c), else KMIP */
} srv_addr_t;

/* Resolve every conf listen entry, then every http.listen entry, into
 * srv->addrs. 0 or KMS_ERR_CONFIG (err says which entry). */
int srv_listen_resolve(srv_t *srv, kms_error_t *err);
/* A bound (not yet listening) SO_REUSEPORT socket for `a`: the fd, or
 * KMS_ERR_IO with err naming the address and errno's text. */
int srv_listen_socket(const srv_addr_t *a, kms_error_t *err);
/* Refuse to share a port with another process: bind without SO_REUSEPORT
 * once and release it. 0 or KMS_ERR_IO (err filled). */
int srv_listen_probe(const srv_addr_t *a, kms_error_t *err);

/* ------------------------------------------------------------------ TLS */
/* Build an SSL_CTX from the tls section of `c`. 0, KMS_ERR_CONFIG or
 * KMS_ERR_NOMEM; err gets one line naming the setting. */
int srv_tls_ctx_new(const conf_t *c, SSL_CTX **out, kms_error_t *err);
/* The context new connections use: SSL_new() under the lock, so the SSL holds
 * its own reference and a later swap never frees a context still in use. */
SSL *srv_tls_new_ssl(srv_t *srv);
/* Install `ctx` for new connections (takes ownership); the old one is freed
 * once the last connection using it closes. Any thread. */
void srv_tls_swap(srv_t *srv, SSL_CTX *ctx);
/* Peer identity after the handshake: hex SHA-256 of the DER, subject CN
 * ("" when none). Returns false when there is no certificate. */
bool srv_tls_peer(SSL *ssl, char fp[65], char *cn, size_t cnlen);

/* What a connection waits for, if anything (budget.c keeps the loop's
 * list of waiting connections; conn.c decides what waking means). */
enum srv_wait {
    SRV_WAIT_NONE = 0,
    SRV_WAIT_MEMORY,          /* its request's declared size does not fit the budget yet */
    SRV_WAIT_AUDIT,           /* decoded, not run: the audit backlog is full (on_full: block) */
    SRV_WAIT_TENANT,          /* decoded, not run: its tenant has tenant_workers on workers */
    SRV_WAIT_DURABLE,         /* answered, not sent: its audit record is not on disk yet */
};

struct srv_tenant_slot;      /* budget.c: worker requests of one tenant on one loop */
struct srv_ipcount;          /* admit.c: unauthenticated connections of one address */

/* ------------------------------------------------------------- the loops */
struct srv_loop {
    srv_t *srv;
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;          /* main -> loop: stop */
    uv_timer_t drain_timer;   /* shutdown: force-close after shutdown_timeout */
    uv_tcp_t *listeners;      /* one per srv->addrs entry */
    int *fds;                 /* bound sockets, handed to uv_tcp_open in the thread */
    size_t n_listeners;
    srv_conn_t *conns;        /* doubly linked list of live connections */
    size_t n_conns;
    bool stopping;
    bool started, joined;     /* thread created / joined (main thread only) */
    /* Listeners closed while the node cannot serve keys (server/ready.c):
     * the loop applies srv->listen_paused when woken while not stopping,
     * and closes its idle connections when it pauses. */
    atomic_bool paused;       /* applied state, read by ready.c */
    unsigned n_closing;       /* paused listeners whose close callback is pending */
    srv_loop_metrics_t *m;    /* this loop's counters (metrics.c); written by the loop only */
    uint8_t readbuf[65536];   /* shared by all connections of the loop: a read
                                 is fed to OpenSSL before the next one starts */
    /* Deferred commits of inline writes (conn.c): the store's writer thread
     * queues finished ones here and wakes the loop. */
    uv_async_t commit_async;
    pthread_mutex_t commit_mu;
    srv_conn_t *commit_head, *commit_tail;

    /* Connections not yet authenticated, oldest first (admit.c). */
    srv_conn_t *pa_head, *pa_tail;
    atomic_uint n_preauth;
    struct srv_ipcount *ips;  /* how many of them each source address holds */
    size_t ips_cap, ips_used;
    atomic_uint evict_req;    /* other loops ask this one to evict its oldest */
    /* Cross-thread wake-ups (admit.c): admission verdicts from the
     * admission thread, eviction requests, durable audit records. Senders
     * hold events_mu and check events_closed. */
    uv_async_t events;
    pthread_mutex_t events_mu;
    bool events_closed;
    srv_conn_t *admitted_head, *admitted_tail;
    /* Waiting connections, FIFO (budget.c); wait_timer retries them. */
    srv_conn_t *w_head, *w_tail;
    atomic_uint n_durable_waits;
    uv_timer_t wait_timer;
    bool wait_timer_on;
    /* Worker requests per tenant on this loop (budget.c). */
    struct srv_tenant_slot *tslots;
    size_t n_tslots, cap_tslots;
};

/* Loop thread, shutting down: close the loop's own handles once its last
 * connection is gone (conn.c calls it; uv_run then returns). */
void srv_loop_conns_gone(srv_loop_t *l);
/* The async callback of commit_async (conn.c). */
void srv_conn_commits_done(uv_async_t *a);

/* Create the sockets of every loop (main thread, before dropping privileges). */
int srv_loops_bind(srv_t *srv, kms_error_t *err);
/* Start every loop thread. */
int srv_loops_start(srv_t *srv);
/* Ask every loop to stop accepting and drain (any thread). */
void srv_loops_stop(srv_t *srv);
/* Loop thread (on its wake handle, not stopping): make the listeners match
 * srv->listen_paused. Pausing shuts the listen sockets down (connect is
 * refused) but keeps them bound, so resuming needs no privilege, and
 * closes the loop's connections once their request in flight, if any, is
 * answered (srv_conn_drain). A loop that starts paused never listens
 * until resumed. */
void srv_loop_apply_pause(srv_loop_t *l);
/* Join the loop threads; false when they did not finish by `deadline_ms`
 * (kms_mono_ns based, in ms). */
bool srv_loops_join(srv_t *srv, uint64_t deadline_ms);
void srv_loops_free(srv_t *srv);

/* ---------------------------------------------------------- connections */
enum srv_timer_kind {
    SRV_TIMER_NONE = 0,
    SRV_TIMER_HANDSHAKE,      /* accept -> handshake done */
    SRV_TIMER_IDLE,           /* nothing in flight, nothing partial */
    SRV_TIMER_MESSAGE,        /* first byte of a request -> its last byte */
    SRV_TIMER_WRITE,          /* responses queued and the client not reading */
    SRV_TIMER_CLOSE,          /* close_notify flush grace */
    SRV_TIMER_DURABLE,        /* answer held until its audit record is on disk */
};

/*
 * One client connection, owned by its loop thread. States:
 *   HANDSHAKE  TLS handshake running (handshake timer)
 *   READ       reading the next request (idle timer, or message timer once
 *              its first byte arrived)
 *   DISPATCH   the request runs on a worker thread, or waits for its
 *              deferred commit before it is answered; nothing else is parsed
 *              (one request in flight keeps responses in order)
 *   WRITE      unsent responses above limits.max_pending_output: reading
 *              stopped until the write callbacks drain them (write timer)
 *   CLOSING    close_notify sent; waiting for writes and the worker, then
 *              uv_close; freed in the last close callback
 */
enum srv_conn_state {
    SRV_CONN_HANDSHAKE = 0,
    SRV_CONN_READ,
    SRV_CONN_DISPATCH,
    SRV_CONN_WRITE,
    SRV_CONN_CLOSING,
};

struct srv_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_work_t work;
    srv_loop_t *loop;
    srv_conn_t *prev, *next;  /* loop->conns */
    uint64_t id;
    enum srv_conn_state state;
    enum srv_timer_kind timer_kind;
    unsigned refs;            /* open handles + the request on a worker */
    bool reading, handshake_done, tls_failed, draining, handles_closing, timer_init;
    const char *drain_why;    /* draining: the close reason once idle (static text) */

    SSL *ssl;
    BIO *rbio, *wbio;         /* network -> OpenSSL, OpenSSL -> network */

    kms_buf_t in;             /* plaintext of the request being read */
    size_t need;              /* its total size once the header is known, else 0 */
    size_t pending_out;       /* bytes handed to uv_write, not yet written */
    unsigned writes_pending;
    uint64_t requests;

    /* The request in flight, decoded (conn_dispatch to conn_finish; while
     * on a worker or waiting for its commit, refs counts it). */
    kmip_request_t *req;
    bool prepared;            /* authenticated and gated */
    kms_buf_t resp;           /* its encoded answer */
    int rc;                   /* 0; KMS_ERR_PROTO: answer, then close; else close */
    uint64_t t0_ns;
    srv_conn_t *commit_next;  /* loop->commit_head queue (its write is committing, or
                                 its answer waits for peer acknowledgements) */
    int commit_result;
    bool acks_wait;           /* in the queue for its sync acks, not its commit */
    bool acks_encode;         /* executed on a worker, not encoded: wait first */
    int acks_result;          /* repl_wait's verdict */

    uint64_t commit_t0_ns;    /* when its deferred write was handed to the store */
    srv_http_t *http;         /* an HTTPS connection (http.c); NULL = KMIP over TLS */

    char addr[64];            /* "127.0.0.1:53422" */
    char ip[48];              /* its address alone: "127.0.0.1", "::1" */
    bool spoke;               /* it has sent at least one byte */
    char fp[65];              /* client certificate SHA-256, "" if none */
    char cn[96];              /* client certificate CN, "" if none */

    /* Admission (admit.c). Until authenticated a connection is in its
     * loop's pre-auth list (evictable, small requests only). */
    srv_conn_t *pa_prev, *pa_next;
    bool preauth;             /* in the list */
    bool admitting;           /* its certificate is being looked up */
    bool authenticated;       /* registered certificate, or a Credential verified */
    bool auth_ok;             /* the last request's identity step accepted it (any thread) */
    int admit_rc;             /* admission thread -> loop: 0 registered, else KMS_ERR_* */
    kmip_identity_t admit_id;
    srv_conn_t *admit_next;
    char ident[160];          /* whose budget share: "c:<sha256>" or "u:<user>" */
    char tenant[64];          /* for tenant_workers; "" before authentication */

    /* Budget, waits and tenant slots (budget.c). */
    size_t reserved;          /* bytes of the current request held in the budget */
    struct srv_share *share;
    enum srv_wait wait;
    srv_conn_t *w_prev, *w_next;
    srv_conn_t *wk_next;      /* srv_wait_wake's private list */
    enum srv_wait wk_was;
    uint64_t audit_ticket;    /* SRV_WAIT_DURABLE: the record to wait for */
    bool tenant_slot;         /* holds one of its tenant's worker slots */
    bool mem_waited;          /* this request was counted in n_mem_waits */
    bool on_worker;           /* handed to uv_queue_work, after_work not yet run */
};

/* Close with a reason (logged once): close_notify, flush, uv_close. */
void srv_conn_close(srv_conn_t *c, const char *reason);
/* Close the handles now, without waiting for queued writes (timer expiry). */
void srv_conn_close_now(srv_conn_t *c);
/* libuv connection callback of a listener (loop thread); the listener's
 * address says KMIP or HTTPS. */
void srv_conn_accept(uv_stream_t *server, int status);
/* Drop a reference taken for work on another thread (http.c's /metrics);
 * the last one frees the connection. Loop thread. */
void srv_conn_release(srv_conn_t *c);
/* For http.c, loop thread. Decode and run the complete request message in
 * c->in exactly as a KMIP connection does (conn_dispatch); true when it
 * was answered at once and the connection reads on, false when it waits
 * (DISPATCH) or closes. */
bool srv_conn_dispatch(srv_conn_t *c);
/* After an answer that was produced away from the read path: flush it
 * and read on (or wait for the output to drain). */
void srv_conn_resume(srv_conn_t *c);
/* Plaintext from TLS: > 0 bytes read into buf, 0 when more bytes must
 * arrive first, < 0 when the connection is closing (the reason is logged). */
int srv_conn_tls_read(srv_conn_t *c, uint8_t *buf, size_t len);
/* Hand n plaintext bytes to TLS (the caller's state change flushes them).
 * false: the write failed and the connection is closing. */
bool srv_conn_tls_write(srv_conn_t *c, const void *p, size_t n);
/* Shutdown, or the node stopped serving (loop thread): idle connections
 * close now, busy ones after their response, each with the reason `why`
 * (static text); `force` closes everything that has no request running. */
void srv_conn_drain(srv_conn_t *c, bool force, const char *why);

/* conn.c, called by budget.c and admit.c on the loop thread: */
/* The wait c was in ended (the budget, the audit log or a tenant slot may
 * have room now, or its record is durable): go on, or wait again. */
void srv_conn_wake(srv_conn_t *c, enum srv_wait was);
/* May c hold a request of `need` bytes now? 0: yes (reserved in the
 * budget when authenticated); KMS_ERR_AGAIN: c waits for memory
 * (SRV_WAIT_MEMORY; stop reading it); another KMS_ERR_*: never, `why`
 * says which limit. */
int srv_conn_admit_bytes(srv_conn_t *c, size_t need, char *why, size_t whylen);
/* The admission thread's verdict on c's certificate (c->admit_rc). */
void srv_conn_admitted(srv_conn_t *c);

/* ------------------------------------------------------------- admission */
/*
 * admit.c. The pre-auth pool: every connection enters it at accept and
 * leaves it once authenticated. At most limits.max_unauthenticated in all
 * (split evenly over the loops); a new connection evicts the oldest one on
 * its loop (or asks another loop to) when the pool or max_connections is
 * full, and is refused only when every connection is authenticated.
 * srv_admit_room() decides at accept: false = refused (counted, logged
 * rate-limited). Loop thread.
 */
bool srv_admit_room(srv_loop_t *l);
void srv_preauth_enter(srv_conn_t *c);
void srv_preauth_leave(srv_conn_t *c);
void srv_preauth_free(srv_loop_t *l);
/* The admission thread: looks up a certificate's client off the loop
 * (never on a worker, so busy workers cannot delay logins). */
int srv_admit_start(srv_t *srv);
void srv_admit_stop(srv_t *srv);
/* Loop thread: look up c's certificate; srv_conn_admitted(c) follows on
 * the loop (c->refs holds c meanwhile). */
void srv_admit_post(srv_conn_t *c);
/* The loop's events handle (init in srv_loops_start, closed when the
 * loop's last connection is gone). */
int srv_loop_events_init(srv_loop_t *l);
void srv_loop_events_close(srv_loop_t *l);
/* Any thread: wake loop l's events handler (durable audit records). */
void srv_loop_events_send(srv_loop_t *l);

/* Log lines of one kind limited to a few per second; the rest are counted
 * and summarised in the next window ("N more ... suppressed"). */
enum srv_logclass { SRV_LOGC_PREAUTH = 0, SRV_LOGC_REFUSED, SRV_LOGC_N };
void srv_log_limited(enum srv_logclass cls, enum kms_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- budget */
/*
 * budget.c, loop thread unless said otherwise.
 * srv_budget_reserve: hold `need` bytes of limits.request_memory for c's
 * request (its identity's share too). 0 reserved; KMS_ERR_AGAIN no room
 * now (wait for it); KMS_ERR_LIMIT never (why says which limit). Any loop.
 */
int srv_budget_reserve(srv_conn_t *c, size_t need, char *why, size_t whylen);
void srv_budget_release(srv_conn_t *c);
/* Bytes reserved now (metrics, status). Any thread. */
size_t srv_budget_used(srv_t *srv);
/* Append c to its loop's waiters (kind), starting the retry timer. */
void srv_wait_start(srv_conn_t *c, enum srv_wait kind);
/* Take c out of the waiters (no-op when not waiting). */
void srv_wait_end(srv_conn_t *c);
/* Wake every waiter of `kind` (SRV_WAIT_NONE: all). */
void srv_wait_wake(srv_loop_t *l, enum srv_wait kind);
int srv_wait_init(srv_loop_t *l);
void srv_wait_close(srv_loop_t *l);
/* A worker slot of c's tenant (limits.tenant_workers over the loops):
 * true and c->tenant_slot set, or false (full). Release wakes the next
 * waiter of that tenant. */
bool srv_tenant_acquire(srv_conn_t *c);
void srv_tenant_release(srv_conn_t *c);
void srv_tenant_free(srv_loop_t *l);

/* ---------------------------------------------------------------- timers */
/* Arm the connection's single timer for `kind`; re-arms only when the kind
 * changes (or `restart`), so trickling bytes cannot extend a deadline. */
void srv_timer_set(srv_conn_t *c, enum srv_timer_kind kind, bool restart);
const char *srv_timer_name(enum srv_timer_kind kind);
uint64_t srv_timer_ms(const srv_t *srv, enum srv_timer_kind kind);

/* ----------------------------------------------------------------- HTTPS */
/*
 * http.c: HTTP/1.1 on an http.listen connection (libhttp-parser), after
 * conn.c's TLS handshake. GET /metrics, /healthz, /readyz and POST /kmip
 * (the KMIP HTTPS binding, TTLV or its JSON / XML encodings). One request
 * at a time per connection: parsing pauses at the end of each, so
 * pipelined requests wait, unparsed, until the previous one is answered.
 */
/* A connection's HTTP state; 0 or KMS_ERR_NOMEM. Loop thread. */
int srv_http_new(srv_conn_t *c);
void srv_http_free(srv_http_t *h); /* NULL ok */
/* conn_pump, state READ: parse what is buffered or read more; route a
 * complete request. true = progress, call again; false = wait for bytes,
 * or the request is being served (state changed), or closing. */
bool srv_http_step(srv_conn_t *c);
/* A request has begun but is not complete (message timer). */
bool srv_http_partial(const srv_conn_t *c);
/* conn_finish of a POST /kmip: turn the TTLV answer in c->resp into the
 * HTTP response in the request's encoding (in place); with no answer and
 * *rc an error, an error status is written instead. */
void srv_http_kmip_answer(srv_conn_t *c, int *rc);
/* After a response was handed to TLS: read the next request, or close
 * when the client asked to (Connection: close, HTTP/1.0). */
void srv_http_answered(srv_conn_t *c);

/* --------------------------------------------------------------- metrics */
/*
 * metrics.c: counters kept per loop (written by that loop's thread only,
 * read with relaxed atomics) and summed when /metrics is scraped; the
 * rest is read at scrape time from the modules. srv_metrics_new before
 * the loops are made, srv_metrics_free after they are gone.
 */
enum srv_m_conn { SRV_M_ACCEPTED, SRV_M_REFUSED_LIMIT, SRV_M_REFUSED_SHUTDOWN, SRV_M_CLOSED };
enum srv_m_tls { SRV_M_TLS_FULL, SRV_M_TLS_RESUMED, SRV_M_TLS_FAILED };
int srv_metrics_new(srv_t *srv);
void srv_metrics_free(srv_t *srv);
int srv_loop_metrics_new(srv_loop_t *l);
void srv_loop_metrics_free(srv_loop_t *l);
void srv_metrics_request(srv_loop_t *l, const kmip_summary_t *s, int rc, uint64_t ns);
void srv_metrics_commit(srv_loop_t *l, uint64_t ns);
void srv_metrics_conn(srv_loop_t *l, bool http, enum srv_m_conn ev);
void srv_metrics_tls(srv_loop_t *l, bool http, enum srv_m_tls ev);
/* One HTTP response: route (SRV_HTTP_ROUTE_*) and status code. */
void srv_metrics_http(srv_loop_t *l, int route, int status);
/* The Prometheus text exposition (format 0.0.4) of everything, appended
 * to out. Reads files and may query the store: a worker thread. */
int srv_metrics_render(srv_t *srv, kms_buf_t *out);

/* --------------------------------------------------------------- signals */
/* Install the SIGTERM/SIGINT/SIGHUP handlers (main thread, before the loops
 * start), then run them until SIGTERM/SIGINT; SIGHUP reloads TLS + log level.
 * srv_signals_run() returns the signal that stopped it. */
int srv_signals_init(srv_t *srv);
int srv_signals_run(srv_t *srv);
/* Reload the certificate, key, client CA and log level from the config file. */
int srv_reload(srv_t *srv);

/* --------------------------------------------------------------- startup */
int srv_harden(void);
int srv_open_hsm(srv_t *srv);
int srv_open_store(srv_t *srv);
int srv_open_kmip(srv_t *srv);
/* KMS_ERR_CONFIG (logged) when configuration `c`'s tls.client_ca or
 * replication.ca would trust the running issuing CA of KMIP Certify
 * (startup.c; srv_open_kmip and every reload check it), else 0. */
int srv_certify_ca_trusted(const srv_t *srv, const conf_t *c);
int srv_drop_privileges(srv_t *srv);
int srv_start_threadpool(srv_t *srv);

/* ---------------------------------------------------------------- server */
struct srv {
    conf_t *conf;             /* as loaded at start; limits and listen stay fixed */
    const char *conf_path;
    struct conf_limits limits;

    hsm_t *hsm;
    store_t *store;
    hsm_keyring_t *keyring;
    kmip_server_t *kmip;
    struct repl *repl;        /* replication (cluster.c); NULL for a single node */
    X509 *certify_ca;         /* certify.ca and its key, or NULL (srv_open_kmip) */
    EVP_PKEY *certify_ca_key;

    pthread_mutex_t tls_lock;
    SSL_CTX *tls_ctx;         /* for new connections; guarded by tls_lock */

    srv_addr_t *addrs;
    size_t n_addrs;
    srv_loop_t *loops;
    unsigned n_loops;

    atomic_uint n_conns;      /* open connections, all loops */
    atomic_uint_fast64_t next_conn_id;
    atomic_uint_fast64_t n_requests; /* KMIP requests handled since start (status) */
    atomic_uint n_loops_running;
    atomic_bool stopping;
    /* Readiness (ready.c): while the node cannot serve keys the loops stop
     * accepting (listen sockets shut) and close their connections. */
    atomic_bool listen_paused;
    atomic_uint unready;      /* SRV_UNREADY_* bits of the last evaluation */
    srv_metrics_t *metrics;   /* metrics.c's process-wide state */

    /* Abuse counters (kmsctl status, logs). */
    atomic_uint_fast64_t n_refused;   /* connections refused at accept */
    atomic_uint_fast64_t n_evicted;   /* unauthenticated connections evicted */
    atomic_uint_fast64_t n_mem_waits; /* requests that waited for the memory budget */
    atomic_uint_fast64_t n_cancelled; /* requests cancelled by their connection closing */
    atomic_uint_fast64_t n_tenant_waits; /* requests that waited for a tenant worker slot */
    atomic_uint_fast64_t n_audit_refused; /* requests refused: audit backlog full (on_full fail) */
    atomic_uint n_preauth;            /* connections not yet authenticated, all loops */
    /* The memory budget (budget.c), under budget_mu. */
    pthread_mutex_t budget_mu;
    size_t mem_used, mem_large;
    struct srv_share *shares;
    /* The admission thread (admit.c). */
    struct srv_admit *admit;
};

/* ------------------------------------------------------------ readiness */
/* Why this node does not serve keys now (0 = it does). */
enum srv_unready {
    SRV_UNREADY_HSM = 1u << 0,    /* the master key cannot be reached (keys_hsm_down) */
    SRV_UNREADY_STORE = 1u << 1,  /* the database cannot be read (keys_store_down) */
    SRV_UNREADY_REPL = 1u << 2,   /* replication still catching up (repl_ready) */
};
/*
 * Evaluate readiness (HSM, store, replication) and make the KMIP listeners
 * follow it: on a change, log one line and wake each loop whose listeners
 * are not yet in the wanted state (srv_loop_apply_pause). Called after
 * every health probe (keys/' monitor thread, every 250 ms) and once by
 * main before the loops start, so that a node that is not ready never
 * opens its listener. Any thread; serialised inside. Returns the bits.
 */
unsigned srv_ready_update(srv_t *srv);
/* The bits of the last evaluation and, when why is not NULL, their text
 * ("HSM unavailable, replication catching up"; "" when ready): for
 * status. Any thread. */
unsigned srv_ready_state(srv_t *srv, char *why, size_t whylen);
/*
 * For /readyz and the kmsd_ready metric: not shutting down, the store
 * open, the last evaluation ready, and the audit log writing. false with a
 * short reason ("hsm: master key unreachable") in why. Any thread; cheap.
 */
bool srv_ready(srv_t *srv, char *why, size_t whylen);

/* ------------------------------------------------------- audit, admin */
/*
 * hooks.c, for main.c: one call after the store and keyring are open opens
 * the audit log (audit.path, "" = off) and starts the admin socket
 * (admin.*). Logs its own errors; returns 0 or KMS_ERR_*. srv_access_stop()
 * (after the loops and workers have stopped, before store_close) undoes it.
 * Main thread.
 */
int srv_access_start(srv_t *srv);
void srv_access_stop(srv_t *srv);

/* cluster.c, for main.c: start replication when replication.listen is set
 * (after the store and keyring, before srv_access_start); stop it after
 * the loops, before the store closes. Main thread. */
int srv_repl_start(srv_t *srv);
void srv_repl_stop(srv_t *srv);

/* conn_finish calls this after every KMIP request (loop thread): one
 * "kmip" audit record from the request's summary; it only queues it.
 * No-op when no audit log is configured. With audit.durable, *ticket_out
 * (when not NULL) names the record to wait for (0 = nothing to wait for). */
void srv_audit_record(const kmip_summary_t *sum, const kmip_peer_t *peer, uint64_t *ticket_out);
/* The audit log's backlog is full (audit.on_full decides). Any thread. */
bool srv_audit_full(void);
/* Records with a ticket up to this are on disk. Any thread. */
uint64_t srv_audit_durable(void);
/* Stop the audit log's wake-ups of the loops (before they are freed). */
void srv_audit_detach(srv_t *srv);
/* The open audit log, or NULL (metrics and readiness read its counters). */
audit_t *srv_audit_log(void);

/* The health monitor (keys/) and the loops: start the key lifecycle with
 * the listeners following the node's readiness after every probe
 * (hooks.c, ready.c). */
int srv_keys_start(srv_t *srv);

#endif /* KMS_SERVER_INT_H */
