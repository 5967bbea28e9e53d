/*
 * server/metrics.c: the figures behind GET /metrics, in the Prometheus text
 * exposition format (0.0.4), with Prometheus naming (kmsd_ prefix, base
 * units, _total for counters, the standard process_* names).
 *
 * Request, connection, TLS, commit and HTTP counters live per event loop
 * and are written only by that loop's thread (a relaxed load and store:
 * no locked instruction on the request path); a scrape sums every loop.
 * Everything else is read when scraped, from the modules' own counters:
 * store_stats and the WAL file's size, the HSM verdict of keys/, the audit
 * writer's counters, repl_status, /proc/self. Objects per type and state
 * come from one grouped query over an index, run at most every
 * SRV_M_OBJECTS_EVERY_MS by a scrape (on the worker thread that renders
 * it) and otherwise served from the last result.
 *
 * Labels are bounded sets: operations, results, listeners, HTTP routes and
 * codes, object types and states, replication peers. Nothing is labelled
 * per client or per key.
 */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "keys/keys.h"
#include "server/server_int.h"
#include "ttlv/ttlv.h"

/* KMIP operations are 1..0x2B in KMIP 1.4; slot 0 counts requests without
 * one, and values past the table share the last slot. */
#define SRV_M_OPS 64
enum { M_RES_SUCCESS, M_RES_FAILED, M_RES_PENDING, M_RES_UNDONE, M_RES_ERROR, M_RESULTS };
static const char *const result_names[M_RESULTS] = {"success", "operation_failed",
                                                    "operation_pending", "operation_undone",
                                                    "error"};

/* Histogram bounds in seconds; one more bucket for +Inf. */
static const double req_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define M_BUCKETS (sizeof req_bounds / sizeof req_bounds[0])

static const int http_codes[] = {200, 400, 403, 404, 405, 408, 413, 414, 415, 431, 500, 503};
#define M_CODES (sizeof http_codes / sizeof http_codes[0])
static const char *const route_names[SRV_HTTP_ROUTES] = {"/metrics", "/healthz", "/readyz",
                                                         "/kmip", "other"};

/* Objects per type and state: at most one grouped query per this long. */
#define SRV_M_OBJECTS_EVERY_MS 30000
#define M_TYPES 10  /* Object Type 1..9 */
#define M_STATES 7  /* State 1..6 */

typedef _Atomic uint64_t mctr_t;

typedef struct mhist {
    mctr_t bucket[M_BUCKETS + 1];
    mctr_t count;
    mctr_t sum_ns;
} mhist_t;

struct srv_loop_metrics {
    mctr_t requests[SRV_M_OPS][M_RESULTS];
    mhist_t duration[SRV_M_OPS];
    mhist_t commit;
    mctr_t conn[2][4];        /* [http][enum srv_m_conn] */
    mctr_t tls[2][3];         /* [http][enum srv_m_tls] */
    mctr_t http[SRV_HTTP_ROUTES][M_CODES + 1];
};

struct srv_metrics {
    int64_t start_us;
    pthread_mutex_t mu;       /* the object counts and their reader */
    store_reader_t *rd;
    uint64_t objects_at_ms;   /* 0 = never counted */
    int64_t objects[M_TYPES][M_STATES];
    bool objects_ok;
};

/* Single writer: a relaxed load and store is enough and costs no lock. */
static inline void inc(mctr_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static inline uint64_t rd(const mctr_t *c)
{
    return atomic_load_explicit((mctr_t *)c, memory_order_relaxed);
}

static void observe(mhist_t *h, uint64_t ns)
{
    size_t i = 0;
    double s = (double)ns / 1e9;
    while (i < M_BUCKETS && s > req_bounds[i])
        i++;
    inc(&h->bucket[i], 1);
    inc(&h->count, 1);
    inc(&h->sum_ns, ns);
}

/* ------------------------------------------------------------ recording */
int srv_metrics_new(srv_t *srv)
{
    srv_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return KMS_ERR_NOMEM;
    m->start_us = kms_now_us();
    pthread_mutex_init(&m->mu, NULL);
    srv->metrics = m;
    return 0;
}

void srv_metrics_free(srv_t *srv)
{
    srv_metrics_t *m = srv->metrics;
    if (!m)
        return;
    store_reader_free(m->rd);
    pthread_mutex_destroy(&m->mu);
    free(m);
    srv->metrics = NULL;
}

int srv_loop_metrics_new(srv_loop_t *l)
{
    l->m = calloc(1, sizeof *l->m);
    return l->m ? 0 : KMS_ERR_NOMEM;
}

void srv_loop_metrics_free(srv_loop_t *l)
{
    free(l->m);
    l->m = NULL;
}

void srv_metrics_request(srv_loop_t *l, const kmip_summary_t *s, int rc, uint64_t ns)
{
    if (!l->m)
        return;
    size_t op = s->operation < SRV_M_OPS ? s->operation : SRV_M_OPS - 1;
    int res = M_RES_ERROR;
    if (rc == 0 || rc == KMS_ERR_PROTO)
        res = s->result_status <= 3 ? (int)s->result_status : M_RES_ERROR;
    inc(&l->m->requests[op][res], 1);
    observe(&l->m->duration[op], ns);
}

void srv_metrics_commit(srv_loop_t *l, uint64_t ns)
{
    if (l->m)
        observe(&l->m->commit, ns);
}

void srv_metrics_conn(srv_loop_t *l, bool http, enum srv_m_conn ev)
{
    if (l->m)
        inc(&l->m->conn[http][ev], 1);
}

void srv_metrics_tls(srv_loop_t *l, bool http, enum srv_m_tls ev)
{
    if (l->m)
        inc(&l->m->tls[http][ev], 1);
}

void srv_metrics_http(srv_loop_t *l, int route, int status)
{
    if (!l->m || route < 0 || route >= SRV_HTTP_ROUTES)
        return;
    size_t i = 0;
    while (i < M_CODES && http_codes[i] != status)
        i++;
    inc(&l->m->http[route][i], 1);
}

/* ------------------------------------------------------------ rendering */
typedef struct out {
    kms_buf_t *b;
    int rc;
} out_t;

static void emit(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(out_t *o, const char *fmt, ...)
{
    if (o->rc)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        o->rc = KMS_ERR_LIMIT;
    else
        o->rc = kms_buf_append(o->b, line, (size_t)n);
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(out_t *o, const char *name, const char *help, double v)
{
    head(o, name, "gauge", help);
    emit(o, "%s %.17g\n", name, v);
}

static void counter(out_t *o, const char *name, const char *help, uint64_t v)
{
    head(o, name, "counter", help);
    emit(o, "%s %llu\n", name, (unsigned long long)v);
}

/* A counter with one label and two values. */
static void counter2(out_t *o, const char *name, const char *help, const char *label,
                     const char *a, uint64_t va, const char *b, uint64_t vb)
{
    head(o, name, "counter", help);
    emit(o, "%s{%s=\"%s\"} %llu\n", name, label, a, (unsigned long long)va);
    emit(o, "%s{%s=\"%s\"} %llu\n", name, label, b, (unsigned long long)vb);
}

/* Label value: the specification's name in its normalized form
 * ("GetAttributes", "PreActive"), or the number. */
static void enum_label(uint32_t tag, uint32_t v, char *out, size_t n)
{
    const char *name = ttlv_enum_name(tag, v);
    if (!name || ttlv_name_normalize(name, out, n) == SIZE_MAX)
        snprintf(out, n, "0x%08x", v);
}

static void hist_lines(out_t *o, const char *name, const char *labels, const mhist_t *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < M_BUCKETS; i++) {
        cum += rd(&h->bucket[i]);
        emit(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, req_bounds[i],
             (unsigned long long)cum);
    }
    cum += rd(&h->bucket[M_BUCKETS]);
    emit(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    emit(o, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)rd(&h->sum_ns) / 1e9);
    emit(o, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

static void add_hist(mhist_t *sum, const mhist_t *h)
{
    for (size_t i = 0; i <= M_BUCKETS; i++)
        inc(&sum->bucket[i], rd(&h->bucket[i]));
    inc(&sum->count, rd(&h->count));
    inc(&sum->sum_ns, rd(&h->sum_ns));
}

static void render_requests(out_t *o, const srv_t *srv, srv_loop_metrics_t *sum)
{
    for (unsigned i = 0; i < srv->n_loops; i++) {
        const srv_loop_metrics_t *m = srv->loops[i].m;
        if (!m)
            continue;
        for (size_t op = 0; op < SRV_M_OPS; op++) {
            for (int r = 0; r < M_RESULTS; r++)
                inc(&sum->requests[op][r], rd(&m->requests[op][r]));
            add_hist(&sum->duration[op], &m->duration[op]);
        }
        add_hist(&sum->commit, &m->commit);
        for (int h = 0; h < 2; h++) {
            for (int e = 0; e < 4; e++)
                inc(&sum->conn[h][e], rd(&m->conn[h][e]));
            for (int e = 0; e < 3; e++)
                inc(&sum->tls[h][e], rd(&m->tls[h][e]));
        }
        for (int r = 0; r < SRV_HTTP_ROUTES; r++)
            for (size_t c = 0; c <= M_CODES; c++)
                inc(&sum->http[r][c], rd(&m->http[r][c]));
    }
    char op[64], labels[128];
    head(o, "kmsd_kmip_requests_total", "counter",
         "KMIP requests answered, by the first batch item's operation and the worst result "
         "status (error: closed without an answer).");
    for (size_t i = 0; i < SRV_M_OPS; i++)
        for (int r = 0; r < M_RESULTS; r++) {
            uint64_t v = rd(&sum->requests[i][r]);
            if (!v)
                continue;
            if (i == 0)
                snprintf(op, sizeof op, "none");
            else
                enum_label(KMIP_TAG_OPERATION, (uint32_t)i, op, sizeof op);
            emit(o, "kmsd_kmip_requests_total{operation=\"%s\",result=\"%s\"} %llu\n", op,
                 result_names[r], (unsigned long long)v);
        }
    head(o, "kmsd_kmip_request_duration_seconds", "histogram",
         "Time from a complete request to its answer handed to TLS, by operation.");
    for (size_t i = 0; i < SRV_M_OPS; i++) {
        if (!rd(&sum->duration[i].count))
            continue;
        if (i == 0)
            snprintf(op, sizeof op, "none");
        else
            enum_label(KMIP_TAG_OPERATION, (uint32_t)i, op, sizeof op);
        snprintf(labels, sizeof labels, "operation=\"%s\"", op);
        hist_lines(o, "kmsd_kmip_request_duration_seconds", labels, &sum->duration[i]);
    }
}

static void render_connections(out_t *o, const srv_t *srv, const srv_loop_metrics_t *sum)
{
    static const char *const kind[2] = {"kmip", "http"};
    head(o, "kmsd_connections_open", "gauge", "Client connections open now (KMIP and HTTPS).");
    emit(o, "kmsd_connections_open %u\n", atomic_load(&srv->n_conns));
    head(o, "kmsd_connections_accepted_total", "counter", "Connections accepted, by listener.");
    for (int h = 0; h < 2; h++)
        emit(o, "kmsd_connections_accepted_total{listener=\"%s\"} %llu\n", kind[h],
             (unsigned long long)rd(&sum->conn[h][SRV_M_ACCEPTED]));
    head(o, "kmsd_connections_refused_total", "counter",
         "Connections closed at accept: limits.max_connections reached, or shutting down.");
    for (int h = 0; h < 2; h++) {
        emit(o, "kmsd_connections_refused_total{listener=\"%s\",reason=\"max_connections\"} %llu\n",
             kind[h], (unsigned long long)rd(&sum->conn[h][SRV_M_REFUSED_LIMIT]));
        emit(o, "kmsd_connections_refused_total{listener=\"%s\",reason=\"shutdown\"} %llu\n",
             kind[h], (unsigned long long)rd(&sum->conn[h][SRV_M_REFUSED_SHUTDOWN]));
    }
    head(o, "kmsd_tls_handshakes_total", "counter",
         "Completed TLS handshakes, full or resumed (session cache), by listener.");
    for (int h = 0; h < 2; h++) {
        emit(o, "kmsd_tls_handshakes_total{listener=\"%s\",type=\"full\"} %llu\n", kind[h],
             (unsigned long long)rd(&sum->tls[h][SRV_M_TLS_FULL]));
        emit(o, "kmsd_tls_handshakes_total{listener=\"%s\",type=\"resumed\"} %llu\n", kind[h],
             (unsigned long long)rd(&sum->tls[h][SRV_M_TLS_RESUMED]));
    }
    head(o, "kmsd_tls_handshake_failures_total", "counter",
         "TLS handshakes that failed (no or bad client certificate, protocol, timeout).");
    for (int h = 0; h < 2; h++)
        emit(o, "kmsd_tls_handshake_failures_total{listener=\"%s\"} %llu\n", kind[h],
             (unsigned long long)rd(&sum->tls[h][SRV_M_TLS_FAILED]));
    head(o, "kmsd_http_responses_total", "counter", "HTTPS responses, by route and status code.");
    for (int r = 0; r < SRV_HTTP_ROUTES; r++)
        for (size_t c = 0; c <= M_CODES; c++) {
            uint64_t v = rd(&sum->http[r][c]);
            char code[8] = "other";
            if (c < M_CODES)
                snprintf(code, sizeof code, "%d", http_codes[c]);
            if (v)
                emit(o, "kmsd_http_responses_total{route=\"%s\",code=\"%s\"} %llu\n",
                     route_names[r], code, (unsigned long long)v);
        }
}

static void count_cb(uint32_t type, uint32_t state, int64_t n, void *arg)
{
    srv_metrics_t *m = arg;
    if (type < M_TYPES && state < M_STATES)
        m->objects[type][state] = n;
}

static void render_store(out_t *o, srv_t *srv, const srv_loop_metrics_t *sum)
{
    store_stats_t st;
    store_stats(srv->store, &st);
    counter(o, "kmsd_store_commits_total", "Writes committed durably.", st.commits);
    counter(o, "kmsd_store_commit_conflicts_total",
            "Writes refused because another writer changed the object first.", st.conflicts);
    counter(o, "kmsd_store_commit_failures_total", "Writes that failed (I/O, disk full).",
            st.failures);
    counter(o, "kmsd_store_transactions_total",
            "Group-commit transactions (one fsync each); commits / transactions = mean batch size.",
            st.transactions);
    gauge(o, "kmsd_store_batch_size_max", "Most writes seen in one group commit since start.",
          (double)st.max_batch);
    counter(o, "kmsd_store_cache_hits_total", "Object reads answered from the object cache.",
            st.cache_hits);
    counter(o, "kmsd_store_cache_misses_total", "Object reads that read the database.",
            st.cache_misses);
    head(o, "kmsd_store_commit_duration_seconds", "histogram",
         "Event-loop writes: hand-off to the group commit until durable.");
    hist_lines(o, "kmsd_store_commit_duration_seconds", "", &sum->commit);

    char wal[4200];
    struct stat sb;
    double db = 0, walsz = 0;
    if (stat(srv->conf->store.path, &sb) == 0)
        db = (double)sb.st_size;
    if (snprintf(wal, sizeof wal, "%s-wal", srv->conf->store.path) < (int)sizeof wal &&
        stat(wal, &sb) == 0)
        walsz = (double)sb.st_size;
    gauge(o, "kmsd_store_database_bytes", "Size of the SQLite database file.", db);
    gauge(o, "kmsd_store_wal_bytes", "Size of the SQLite write-ahead log.", walsz);

    srv_metrics_t *m = srv->metrics;
    pthread_mutex_lock(&m->mu);
    uint64_t now = kms_mono_ns() / 1000000;
    if (!m->objects_at_ms || now - m->objects_at_ms >= SRV_M_OBJECTS_EVERY_MS) {
        m->objects_at_ms = now;
        memset(m->objects, 0, sizeof m->objects);
        if (!m->rd && store_reader_new(srv->store, &m->rd) != 0)
            m->rd = NULL;
        m->objects_ok = m->rd && store_count_by_type_state(m->rd, count_cb, m) == 0;
    }
    if (m->objects_ok) {
        char t[64], s[64];
        head(o, "kmsd_objects", "gauge",
             "Managed objects by type and state (counted at most every 30 s).");
        for (uint32_t i = 1; i < M_TYPES; i++)
            for (uint32_t j = 1; j < M_STATES; j++) {
                if (!m->objects[i][j])
                    continue;
                enum_label(KMIP_TAG_OBJECT_TYPE, i, t, sizeof t);
                enum_label(KMIP_TAG_STATE, j, s, sizeof s);
                emit(o, "kmsd_objects{type=\"%s\",state=\"%s\"} %lld\n", t, s,
                     (long long)m->objects[i][j]);
            }
    }
    pthread_mutex_unlock(&m->mu);
}

static void render_modules(out_t *o, srv_t *srv)
{
    gauge(o, "kmsd_hsm_up", "1 while the master key is reachable (HSM health monitor), else 0.",
          keys_hsm_down() ? 0 : 1);
    audit_t *au = srv_audit_log();
    audit_counters_t ac;
    audit_get_counters(au, &ac);
    gauge(o, "kmsd_audit_enabled", "1 when an audit log is written.", au ? 1 : 0);
    gauge(o, "kmsd_audit_backlog_records", "Audit records queued, not yet written.",
          (double)ac.queued);
    gauge(o, "kmsd_audit_failing", "1 while audit writes fail (records wait and are retried).",
          ac.failing ? 1 : 0);
    counter(o, "kmsd_audit_records_total", "Audit records written since start.", ac.written);
    counter(o, "kmsd_audit_write_errors_total", "Failed audit writes since start.", ac.errors);
    counter2(o, "kmsd_audit_export_records_total", "Audit record copies sent, by exporter.",
             "exporter", "syslog", ac.syslog_sent, "json_lines", ac.json_sent);
    counter2(o, "kmsd_audit_export_dropped_total",
             "Audit record copies dropped (target down or slow), by exporter.", "exporter",
             "syslog", ac.syslog_dropped, "json_lines", ac.json_dropped);

    repl_t *r = srv->repl;
    gauge(o, "kmsd_replication_enabled", "1 when this node replicates.", r ? 1 : 0);
    if (!r)
        return;
    gauge(o, "kmsd_replication_ready", "1 unless a snapshot catch-up is in progress.",
          repl_ready(r) ? 1 : 0);
    repl_sync_stats_t ss;
    repl_sync_stats(r, &ss);
    counter(o, "kmsd_replication_sync_waits_total",
            "Changing requests that waited for replication.sync_acks peers.", ss.waits);
    counter2(o, "kmsd_replication_sync_timeouts_total",
             "Sync-ack waits that timed out, by what the request got (on_sync_timeout).",
             "action", "fail", ss.failed, "degrade", ss.degraded);
    counter2(o, "kmsd_replication_third_node_rows_total",
             "Change-log rows of a third node's changes, relayed to a peer or not shipped "
             "(the peer gets them from their origin).",
             "action", "relayed", ss.relayed, "skipped", ss.relay_skipped);
    counter2(o, "kmsd_replication_shipped_entities_total",
             "Entities shipped to peers, by where the push link took them: the change log's "
             "rows in memory, as committed, or a read of the store.",
             "source", "memory", ss.shipped_from_memory, "store", ss.shipped_from_store);
    counter2(o, "kmsd_replication_entity_encodings_total",
             "Entities shipped from memory, encoded by the link or taken already encoded "
             "from another link.",
             "how", "encoded", ss.encoded, "shared", ss.encoded_shared);
    counter2(o, "kmsd_replication_ship_batches_total",
             "Change-log batches the push links made, by where: on the replication thread (a "
             "few rows held in memory) or on the threadpool.",
             "where", "inline", ss.batches_inline, "pool", ss.batches_pool);
    counter2(o, "kmsd_replication_positions_total",
             "Batches with nothing to ship: sent as an empty CHANGES frame, or held for the "
             "next frame.",
             "action", "sent", ss.position_frames, "held", ss.positions_held);
    counter(o, "kmsd_replication_apply_commits_total",
            "Store commits of the peers' CHANGES frames.", ss.apply_commits);
    counter(o, "kmsd_replication_applied_frames_total",
            "CHANGES frames applied (several per commit when they arrived during the previous "
            "commit).",
            ss.apply_frames);
    gauge(o, "kmsd_replication_apply_waiting_frames",
          "CHANGES frames read ahead, waiting for the commit in progress.",
          (double)ss.apply_waiting);
    kms_arena_t *a = kms_arena_new(0);
    repl_peer_status_t *ps = NULL;
    size_t n = 0;
    if (a && repl_status(r, a, &ps, &n) == 0) {
        head(o, "kmsd_replication_peer_up", "gauge",
             "1 while both links with the peer are open and it is in state ok.");
        for (size_t i = 0; i < n; i++)
            emit(o, "kmsd_replication_peer_up{peer=\"%s\"} %d\n",
                 ps[i].node_id[0] ? ps[i].node_id : ps[i].addr,
                 ps[i].connected_out && ps[i].connected_in && strcmp(ps[i].state, "ok") == 0);
        head(o, "kmsd_replication_peer_lag_changes", "gauge",
             "Our change-log rows the peer has not acknowledged (-1: no ack since start).");
        for (size_t i = 0; i < n; i++)
            emit(o, "kmsd_replication_peer_lag_changes{peer=\"%s\"} %lld\n",
                 ps[i].node_id[0] ? ps[i].node_id : ps[i].addr, (long long)ps[i].lag_changes);
        head(o, "kmsd_replication_peer_lag_seconds", "gauge",
             "Age of the oldest change in flight to the peer (-1: unknown).");
        for (size_t i = 0; i < n; i++)
            emit(o, "kmsd_replication_peer_lag_seconds{peer=\"%s\"} %.3f\n",
                 ps[i].node_id[0] ? ps[i].node_id : ps[i].addr,
                 ps[i].lag_ms < 0 ? -1.0 : (double)ps[i].lag_ms / 1000.0);
    }
    kms_arena_free(a);
}

static void render_process(out_t *o, const srv_t *srv)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    if (f) {
        char buf[1024];
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        buf[len] = '\0';
        fclose(f);
        /* The command name (field 2) may hold spaces: start after ')'. */
        char *p = strrchr(buf, ')');
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %*u %lu %ld",
                        &utime, &stime, &vsize, &rss) != 4)
            utime = stime = vsize = 0, rss = 0;
    }
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds = fds ? fds - 1 : 0; /* the directory's own descriptor */
    }
    struct rlimit rl = {0, 0};
    (void)getrlimit(RLIMIT_NOFILE, &rl);
    gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (double)rss * (double)page);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)vsize);
    gauge(o, "process_open_fds", "Open file descriptors.", (double)fds);
    gauge(o, "process_max_fds", "Limit on open file descriptors.", (double)rl.rlim_cur);
    head(o, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
    emit(o, "process_cpu_seconds_total %.2f\n", tick > 0 ? (double)(utime + stime) / (double)tick : 0);
    gauge(o, "process_start_time_seconds", "Start time of the process, seconds since the epoch.",
          (double)srv->metrics->start_us / 1e6);
}

/* What the abuse limits did: the pre-auth pool, the request memory
 * budget, tenant worker slots, cancellations, audit.on_full refusals. */
static void render_limits(out_t *o, srv_t *srv)
{
    gauge(o, "kmsd_connections_unauthenticated",
          "Connections not yet authenticated now (limits.max_unauthenticated).",
          (double)atomic_load(&srv->n_preauth));
    counter(o, "kmsd_connections_evicted_total",
            "Unauthenticated connections closed to admit a newer one (pre-auth pool full or "
            "limits.max_connections reached).",
            atomic_load(&srv->n_evicted));
    gauge(o, "kmsd_request_memory_bytes",
          "Bytes of limits.request_memory reserved by requests being received or run.",
          (double)srv_budget_used(srv));
    gauge(o, "kmsd_request_memory_limit_bytes", "limits.request_memory.",
          (double)srv->limits.request_memory);
    counter(o, "kmsd_request_memory_waits_total",
            "Requests that waited for room in limits.request_memory or their share of it.",
            atomic_load(&srv->n_mem_waits));
    counter(o, "kmsd_tenant_worker_waits_total",
            "Requests that waited for one of their tenant's limits.tenant_workers slots.",
            atomic_load(&srv->n_tenant_waits));
    counter(o, "kmsd_requests_cancelled_total",
            "Requests cancelled because their connection closed while they were queued or ran.",
            atomic_load(&srv->n_cancelled));
    counter(o, "kmsd_audit_refused_total",
            "Requests refused unrun because the audit backlog was full (audit.on_full: fail).",
            atomic_load(&srv->n_audit_refused));
}

int srv_metrics_render(srv_t *srv, kms_buf_t *b)
{
    out_t o = {b, 0};
    srv_loop_metrics_t *sum = calloc(1, sizeof *sum);
    if (!sum)
        return KMS_ERR_NOMEM;
    head(&o, "kmsd_build_info", "gauge", "Version of kmsd and of the libraries it runs with.");
    emit(&o,
         "kmsd_build_info{version=\"%s\",openssl=\"%s\",sqlite=\"%s\",libuv=\"%s\"} 1\n",
         SRV_VERSION, OpenSSL_version(OPENSSL_VERSION_STRING), sqlite3_libversion(),
         uv_version_string());
    char why[128];
    gauge(&o, "kmsd_ready", "1 when /readyz answers 200 (ready to serve keys).",
          srv_ready(srv, why, sizeof why) ? 1 : 0);
    render_requests(&o, srv, sum);
    render_connections(&o, srv, sum);
    render_limits(&o, srv);
    render_store(&o, srv, sum);
    render_modules(&o, srv);
    render_process(&o, srv);
    free(sum);
    return o.rc;
}
