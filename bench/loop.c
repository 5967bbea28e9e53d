/*
 * bench/loop.c: one worker thread driving many non-blocking TLS connections.
 *
 * Each thread owns an epoll set (edge-triggered) and a slice of the
 * connections. A connection is a small state machine: CLOSED -> CONNECTING ->
 * HANDSHAKE -> READY -> WRITE -> READ -> READY (persistent) or CLOSED
 * (--new-conn, keeping the TLS session for --resume). In open-loop mode
 * (--rate) each connection sends on its own fixed schedule and latency is
 * measured from the INTENDED send time, so a slow server cannot hide its
 * stalls by delaying our sends (no coordinated omission). In --idle mode
 * connections only handshake and then stay open. vcenter (Create, Activate,
 * Get, Get Attributes) and create-destroy (Create, Destroy) are sequences on
 * the key the Create returned, timed as one operation.
 * With --interval, each thread also records into a histogram the main
 * thread takes and resets under the thread's lock.
 * It does not pipeline requests on one connection (KMIP clients do not) and
 * does not retry a failed request: failures are counted by Result Reason or
 * transport class.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/bench.h"

enum cstate { CS_CLOSED, CS_CONNECTING, CS_HANDSHAKE, CS_READY, CS_WRITE, CS_READ, CS_HOLD, CS_DONE };

typedef struct conn {
    bench_worker_t *w;
    int fd;
    SSL *ssl;
    SSL_SESSION *sess;      /* --resume: the session of the previous connection */
    enum cstate state;
    bool have_req;          /* an operation has begun and is not finished */
    bool counted;           /* its first handshake is in run->established */
    bool measured;          /* the current operation began inside the measured window */
    bool sched_set;         /* open loop: next_at is absolute (else an offset) */
    enum bench_op op;
    enum bench_step step;
    int key;                /* index of the setup key used by get/locate */
    char uid[128];          /* vcenter: the key created by this sequence */
    char name[96];          /* --named: the Name of the current Create */
    uint64_t ncreated;      /* --named: Creates sent on this connection */
    uint64_t t_begin;       /* intended start of the operation (ns, monotonic) */
    uint64_t next_at;       /* open loop: next intended start; also reconnect back-off */
    kms_buf_t out;
    size_t out_pos;
    kms_buf_t in;
    size_t need;
    kms_arena_t *arena;
} conn_t;

typedef struct worker_int {
    bench_worker_t *w;
    bench_run_t *run;
    const bench_opts_t *o;
    int ep;
    conn_t *c;
    int n;
    uint64_t rng;
    uint64_t interval_ns;   /* open loop: per-connection send interval */
    int connecting;         /* idle mode: handshakes in flight */
    int next_idle;          /* idle mode: next connection to open */
    int live;               /* connections not DONE */
} worker_int_t;

#define IDLE_CONCURRENCY 128

static uint64_t rnd(worker_int_t *wi)
{
    uint64_t x = wi->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return wi->rng = x;
}

static enum bench_op pick_op(worker_int_t *wi)
{
    int total = 0, r;
    for (int i = 0; i < OP_COUNT; i++)
        total += wi->o->weights[i];
    r = (int)(rnd(wi) % (uint64_t)total);
    for (int i = 0; i < OP_COUNT; i++) {
        if (r < wi->o->weights[i])
            return (enum bench_op)i;
        r -= wi->o->weights[i];
    }
    return OP_GET;
}

static void conn_close(worker_int_t *wi, conn_t *c)
{
    if (c->ssl) {
        if (wi->o->resume && c->state >= CS_READY) {
            SSL_SESSION *s = SSL_get1_session(c->ssl);
            if (s && SSL_SESSION_is_resumable(s)) {
                SSL_SESSION_free(c->sess);
                c->sess = s;
            } else {
                SSL_SESSION_free(s);
            }
        }
        if (c->state >= CS_READY)
            SSL_shutdown(c->ssl); /* best-effort close_notify; never waits */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = CS_CLOSED;
}

/* --interval: one more error in the current interval. */
static void ival_error(worker_int_t *wi, bool measured)
{
    if (!measured || wi->o->interval <= 0)
        return;
    pthread_mutex_lock(&wi->w->ival.lock);
    wi->w->ival.errs++;
    pthread_mutex_unlock(&wi->w->ival.lock);
}

static void count_err(worker_int_t *wi, conn_t *c, int cls)
{
    bool measured = c->have_req ? c->measured : kms_mono_ns() >= atomic_load(&wi->run->t_measure_ns);
    if (measured)
        wi->w->st.errs[cls]++;
    ival_error(wi, measured);
}

/* A transport failure: count it, end the operation, back off 50 ms. */
static void conn_fail(worker_int_t *wi, conn_t *c, int cls)
{
    count_err(wi, c, cls);
    if ((c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) && wi->o->idle)
        wi->connecting--;
    if (wi->o->idle)
        atomic_fetch_add(&wi->run->idle_failed, 1);
    if (c->state == CS_HOLD)
        atomic_fetch_sub(&wi->run->established, 1);
    conn_close(wi, c);
    c->have_req = false;
    uint64_t retry = kms_mono_ns() + 50000000ull;
    if (c->next_at < retry && (!wi->interval_ns || c->sched_set))
        c->next_at = retry;
    if (wi->o->idle)
        c->state = CS_DONE, wi->live--;
}

static int conn_start(worker_int_t *wi, conn_t *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    int one = 1;

    c->fd = socket(wi->o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(wi, c, ERR_CONNECT);
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)&wi->o->addr, wi->o->addrlen) < 0 && errno != EINPROGRESS) {
        conn_fail(wi, c, ERR_CONNECT);
        return -1;
    }
    if (epoll_ctl(wi->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(wi, c, ERR_CONNECT);
        return -1;
    }
    c->state = CS_CONNECTING;
    if (wi->o->idle)
        wi->connecting++;
    return 0;
}

/* Begin an operation if the schedule, budget and clock allow. */
static bool begin_op(worker_int_t *wi, conn_t *c, uint64_t now)
{
    bench_run_t *run = wi->run;
    if (now >= atomic_load(&run->t_stop_ns))
        return false;
    if (atomic_load(&run->t_measure_ns) == UINT64_MAX)
        return false; /* still opening the persistent connections: no traffic yet */
    if (wi->interval_ns && !c->sched_set) { /* the schedule starts with the traffic */
        c->next_at += now;
        c->sched_set = true;
    }
    if (wi->interval_ns && now < c->next_at)
        return false;
    if (!wi->interval_ns && now < c->next_at) /* reconnect back-off */
        return false;
    if (wi->o->requests && now >= atomic_load(&run->t_measure_ns) && atomic_fetch_sub(&run->budget, 1) <= 0) {
        atomic_store(&run->t_stop_ns, now);
        return false;
    }
    c->op = pick_op(wi);
    c->step = bench_op_step(c->op);
    c->key = run->nkeys ? (int)(rnd(wi) % (uint64_t)run->nkeys) : 0;
    c->uid[0] = 0;
    c->t_begin = wi->interval_ns ? c->next_at : now;
    if (wi->interval_ns)
        c->next_at += wi->interval_ns;
    c->measured = now >= atomic_load(&run->t_measure_ns);
    c->have_req = true;
    return true;
}

static int send_step(worker_int_t *wi, conn_t *c)
{
    const char *uid = NULL, *name = NULL;
    bench_run_t *run = wi->run;

    if (c->op == OP_VCENTER || c->op == OP_CDESTROY)
        uid = c->uid;
    else if (run->nkeys)
        uid = run->uids[c->key], name = run->names[c->key];
    if (c->step == STEP_CREATE) {
        name = NULL;
        if (wi->o->named) {
            snprintf(c->name, sizeof(c->name), "kmipbench-%ld-%d-%d-%llu", (long)getpid(), wi->w->id,
                     (int)(c - wi->c), (unsigned long long)c->ncreated++);
            name = c->name;
        }
    }
    if (bench_build(&wi->o->msg, c->step, uid, name, c->arena, &c->out) < 0)
        return -1;
    c->out_pos = 0;
    c->state = CS_WRITE;
    return 0;
}

/* A full response arrived: account for it and move on. */
static void on_response(worker_int_t *wi, conn_t *c)
{
    bench_result_t res;
    uint64_t now = kms_mono_ns();
    bool measured = c->measured; /* by start time, so --requests N counts exactly N */
    bench_stats_t *st = &wi->w->st;

    if (bench_parse(c->in.data, c->need, c->arena, &res) < 0) {
        if (measured)
            st->errs[ERR_MALFORMED]++;
        ival_error(wi, measured);
        c->have_req = false;
    } else if (res.status != 0) {
        if (measured)
            st->errs[res.reason > 0 && res.reason < BENCH_REASONS ? res.reason : 0]++;
        ival_error(wi, measured);
        c->have_req = false;
    } else {
        if (measured)
            st->ok++;
        if ((c->op == OP_VCENTER && c->step != STEP_GETATTRS) ||
            (c->op == OP_CDESTROY && c->step == STEP_CREATE)) {
            if (c->step == STEP_CREATE) {
                memcpy(c->uid, res.uid, sizeof(c->uid));
                c->step = c->op == OP_CDESTROY ? STEP_DESTROY : STEP_ACTIVATE;
            } else {
                c->step = c->step == STEP_ACTIVATE ? STEP_GET : STEP_GETATTRS;
            }
            if (send_step(wi, c) == 0)
                return;
            c->have_req = false; /* cannot happen: fixed-size requests */
            return;
        }
        if (measured) {
            uint64_t ns = now > c->t_begin ? now - c->t_begin : 0;
            st->seqs++;
            bench_hist_record(&st->hist, ns);
            if (wi->o->interval > 0) {
                pthread_mutex_lock(&wi->w->ival.lock);
                bench_hist_record(&wi->w->ival.hist, ns);
                wi->w->ival.ok++;
                pthread_mutex_unlock(&wi->w->ival.lock);
            }
        }
        c->have_req = false;
    }
    c->state = CS_READY;
    if (wi->o->new_conn)
        conn_close(wi, c);
}

/* Run the connection's state machine until it must wait. */
static void drive(worker_int_t *wi, conn_t *c)
{
    for (;;) {
        uint64_t now;
        int n, err;
        switch (c->state) {
        case CS_DONE:
        case CS_HOLD:
            return;
        case CS_CLOSED:
            now = kms_mono_ns();
            if (wi->o->new_conn) {
                if (!c->have_req && !begin_op(wi, c, now)) {
                    if (now >= atomic_load(&wi->run->t_stop_ns))
                        c->state = CS_DONE, wi->live--;
                    return;
                }
            } else if (now >= atomic_load(&wi->run->t_stop_ns)) {
                c->state = CS_DONE, wi->live--;
                return;
            } else if (now < c->next_at && !wi->interval_ns) {
                return; /* back-off after a failure */
            }
            if (conn_start(wi, c) < 0)
                return;
            return; /* wait for writability */
        case CS_CONNECTING: {
            socklen_t sl = sizeof(err);
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 || err) {
                conn_fail(wi, c, ERR_CONNECT);
                return;
            }
            if (!(c->ssl = SSL_new(wi->run->ctx)) || !SSL_set_fd(c->ssl, c->fd)) {
                conn_fail(wi, c, ERR_TLS);
                return;
            }
            if (wi->o->sni) {
                SSL_set_tlsext_host_name(c->ssl, wi->o->sni);
                SSL_set1_host(c->ssl, wi->o->sni);
            }
            if (wi->o->resume && c->sess)
                SSL_set_session(c->ssl, c->sess);
            c->state = CS_HANDSHAKE;
            break;
        }
        case CS_HANDSHAKE:
            ERR_clear_error();
            n = SSL_connect(c->ssl);
            if (n != 1) {
                err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return;
                conn_fail(wi, c, ERR_TLS);
                return;
            }
            if (kms_mono_ns() >= atomic_load(&wi->run->t_measure_ns)) {
                wi->w->st.handshakes++;
                if (SSL_session_reused(c->ssl))
                    wi->w->st.resumed++;
            }
            if (wi->o->idle) {
                wi->connecting--;
                c->state = CS_HOLD;
                atomic_fetch_add(&wi->run->established, 1);
                return;
            }
            if (!c->counted && !wi->o->new_conn) {
                c->counted = true;
                atomic_fetch_add(&wi->run->established, 1);
            }
            c->state = CS_READY;
            if (c->have_req) {
                if (send_step(wi, c) < 0) {
                    conn_fail(wi, c, ERR_MALFORMED);
                    return;
                }
            }
            break;
        case CS_READY:
            now = kms_mono_ns();
            if (!c->have_req) {
                if (!begin_op(wi, c, now)) {
                    if (now >= atomic_load(&wi->run->t_stop_ns)) {
                        conn_close(wi, c);
                        c->state = CS_DONE, wi->live--;
                    }
                    return;
                }
            }
            if (send_step(wi, c) < 0) {
                conn_fail(wi, c, ERR_MALFORMED);
                return;
            }
            break;
        case CS_WRITE:
            ERR_clear_error();
            n = SSL_write(c->ssl, c->out.data + c->out_pos, (int)(c->out.len - c->out_pos));
            if (n <= 0) {
                err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return;
                conn_fail(wi, c, ERR_CLOSED);
                return;
            }
            c->out_pos += (size_t)n;
            if (c->out_pos == c->out.len) {
                c->state = CS_READ;
                kms_buf_reset(&c->in);
                c->need = 0;
            }
            break;
        case CS_READ:
            if (kms_buf_reserve(&c->in, 16384) < 0) {
                conn_fail(wi, c, ERR_MALFORMED);
                return;
            }
            ERR_clear_error();
            n = SSL_read(c->ssl, c->in.data + c->in.len, 16384);
            if (n <= 0) {
                err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return;
                conn_fail(wi, c, ERR_CLOSED);
                return;
            }
            c->in.len += (size_t)n;
            if (!c->need && c->in.len >= 8 &&
                ttlv_frame_need(c->in.data, c->in.len, c->in.max, &c->need) < 0) {
                conn_fail(wi, c, ERR_MALFORMED);
                return;
            }
            if (c->need && c->in.len >= c->need)
                on_response(wi, c);
            break;
        }
    }
}

/* Earliest time a waiting connection wants to run, for the epoll timeout. */
static uint64_t next_wake(worker_int_t *wi)
{
    uint64_t t = UINT64_MAX;
    for (int i = 0; i < wi->n; i++) {
        conn_t *c = &wi->c[i];
        if ((c->state == CS_READY || c->state == CS_CLOSED) && !c->have_req && c->next_at < t)
            t = c->next_at;
        else if (c->state == CS_CLOSED && c->have_req)
            t = 0;
    }
    return t;
}

void *bench_worker_main(void *arg)
{
    bench_worker_t *w = arg;
    worker_int_t wi = {.w = w, .run = w->run, .o = w->run->o, .n = w->nconns};
    struct epoll_event evs[256];
    uint64_t hard_stop = 0;

    wi.rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)w->id * 0x100000001B3ull) ^ kms_mono_ns();
    bench_hist_init(&w->st.hist);
    wi.ep = epoll_create1(EPOLL_CLOEXEC);
    wi.c = calloc((size_t)wi.n, sizeof(conn_t));
    if (wi.ep < 0 || !wi.c) {
        perror("kmipbench: worker");
        goto out;
    }
    if (wi.o->rate > 0) /* per-connection interval so the total is --rate */
        wi.interval_ns = (uint64_t)(1e9 * (double)wi.o->conns / wi.o->rate);
    for (int i = 0; i < wi.n; i++) {
        conn_t *c = &wi.c[i];
        c->w = w;
        c->fd = -1;
        /* spread the first sends over one interval */
        c->next_at = wi.interval_ns ? wi.interval_ns * (uint64_t)i / (uint64_t)wi.n : 0;
        if (!wi.o->idle) {
            kms_buf_init(&c->out, 1u << 20);
            kms_buf_init(&c->in, 64u << 20);
            if (!(c->arena = kms_arena_new(0))) {
                perror("kmipbench: arena");
                goto out;
            }
        }
    }
    wi.live = wi.n;
    if (!wi.o->idle)
        for (int i = 0; i < wi.n; i++)
            drive(&wi, &wi.c[i]);

    while (wi.live > 0) {
        uint64_t now = kms_mono_ns();
        uint64_t stop = atomic_load(&wi.run->t_stop_ns);
        if (now >= stop) {
            if (!hard_stop)
                hard_stop = now + 5000000000ull; /* in-flight requests get 5 s */
            if (wi.o->idle || now >= hard_stop) {
                for (int i = 0; i < wi.n; i++)
                    if (wi.c[i].state != CS_DONE) {
                        if (wi.c[i].have_req && wi.c[i].measured)
                            w->st.errs[ERR_TIMEOUT]++; /* begun in the window, never answered */
                        if (wi.c[i].state == CS_HOLD)
                            atomic_fetch_sub(&wi.run->established, 1);
                        conn_close(&wi, &wi.c[i]);
                        wi.c[i].state = CS_DONE;
                    }
                break;
            }
            for (int i = 0; i < wi.n; i++) /* idle READY connections finish now */
                if (wi.c[i].state == CS_READY || wi.c[i].state == CS_CLOSED)
                    drive(&wi, &wi.c[i]);
        }
        if (wi.o->idle)
            while (wi.next_idle < wi.n && wi.connecting < IDLE_CONCURRENCY)
                conn_start(&wi, &wi.c[wi.next_idle++]);

        /* 100 ms: stop flag and back-off checks; 2 ms while waiting for the start */
        int64_t timeout_ns = atomic_load(&wi.run->t_measure_ns) == UINT64_MAX ? 2000000 : 100000000;
        if (!wi.o->idle && (wi.interval_ns || wi.o->new_conn || wi.n <= 1024) &&
            atomic_load(&wi.run->t_measure_ns) != UINT64_MAX) {
            uint64_t t = next_wake(&wi);
            if (t != UINT64_MAX)
                timeout_ns = t <= now ? 0 : (int64_t)(t - now) < timeout_ns ? (int64_t)(t - now) : timeout_ns;
        }
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        int ne = epoll_pwait2(wi.ep, evs, (int)KMS_ARRAY_SIZE(evs), &ts, NULL);
        if (ne < 0 && errno != EINTR) {
            perror("kmipbench: epoll");
            break;
        }
        for (int i = 0; i < ne; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == CS_HOLD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                /* the server closed an idle connection (or sent a ticket) */
                char b[256];
                ERR_clear_error();
                int n = SSL_read(c->ssl, b, sizeof(b));
                if (n <= 0 && SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ)
                    conn_fail(&wi, c, ERR_CLOSED);
                continue;
            }
            drive(&wi, c);
        }
        if (!wi.o->idle && (wi.interval_ns || wi.o->new_conn || wi.n <= 1024)) {
            now = kms_mono_ns();
            for (int i = 0; i < wi.n; i++) {
                conn_t *c = &wi.c[i];
                if (((c->state == CS_READY || c->state == CS_CLOSED) && !c->have_req &&
                     c->next_at <= now) || (c->state == CS_CLOSED && c->have_req))
                    drive(&wi, c);
            }
        }
    }
out:
    if (wi.c) {
        for (int i = 0; i < wi.n; i++) {
            conn_close(&wi, &wi.c[i]);
            SSL_SESSION_free(wi.c[i].sess);
            kms_buf_dispose(&wi.c[i].out);
            kms_buf_dispose(&wi.c[i].in);
            kms_arena_free(wi.c[i].arena);
        }
        free(wi.c);
    }
    if (wi.ep >= 0)
        close(wi.ep);
    return NULL;
}
