/*
 * bench/main.c: kmipbench command line, setup phase, run control and report.
 *
 *   kmipbench --host 127.0.0.1 --port 5696 --ca ca.crt --cert c.crt --key c.key
 *             [--op get|create|locate|vcenter|encrypt|sign-ecdsa|sign-rsa|mac|
 *                   mix:get=80,create=20]
 *             [--connections 64] [--threads T] [--new-conn [--resume]]
 *             [--tls 1.2|1.3] [--kmip-version 1.1] [--duration 10 | --requests N]
 *             [--rate R] [--warmup 1] [--keys 100] [--server-pid PID] [--json]
 *   kmipbench --idle 10000 --duration 30 ...     hold N idle TLS connections
 *   kmipbench --sqlite-floor DB [--requests N]   one-commit-per-insert loop
 *
 *   kmipbench --op mix:get=40,create-destroy=20,locate=20,getattrs=20 --interval 30
 *             --duration 1800 --server-pid PID ...   a soak, reported per interval
 *
 * Get and Locate read keys created in an untimed setup phase (--keys, each
 * with a unique Name); the cryptographic workloads use keys made (or, for
 * signing and MAC, generated here and registered) and activated the same way. The report gives requests/s, errors by Result Reason,
 * latency quantiles from the histogram and, with --server-pid, the server's
 * CPU time (utime+stime from /proc) per request. It does not start or stop
 * servers: bench/compare.sh does.
 */
#include <getopt.h>
#include <netdb.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "crypto/crypto.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kmipbench --host H --port P --ca CA --cert CRT --key KEY [options]\n"
        "  --op get|create|locate|vcenter|getattrs|create-destroy|mix:get=80,create=20\n"
        "        workload (default get); vcenter = Create AES-256, Activate, Get, Get\n"
        "        Attributes as one sequence; create-destroy = Create, then Destroy it;\n"
        "        getattrs = Get Attributes and locate = Locate by Name of a setup key\n"
        "  --op encrypt|sign-ecdsa|sign-rsa|mac   Encrypt 4 KiB AES-256-GCM, Sign 64 bytes\n"
        "        (ECDSA P-256 / RSA-2048 PKCS#1 v1.5, SHA-256), MAC 64 bytes HMAC-SHA256\n"
        "  --connections N   concurrent connections (default 64)\n"
        "  --threads T       worker threads (default min(N, cores))\n"
        "  --new-conn        a new TLS connection per operation; --resume reuses sessions\n"
        "  --tls 1.2|1.3     pin the TLS version (default: negotiate 1.2..1.3)\n"
        "  --kmip-version M.N  protocol version in requests (default 1.1)\n"
        "  --duration S | --requests N   run length (default 10 s)\n"
        "  --rate R          open loop: R operations/s in total, latency from intended send\n"
        "  --warmup S        untimed warm-up before measuring (default 1)\n"
        "  --keys K          keys created in setup for get/locate (default 100)\n"
        "  --named           every timed Create also sets a unique Name (seeding for Locate)\n"
        "  --idle N          open N TLS connections and hold them for --duration\n"
        "  --server-pid PID  report server CPU per request and RSS from /proc\n"
        "  --interval S      also a line every S seconds: requests/s, errors, p50/p99 of\n"
        "                    that interval; with --server-pid the server's RSS, open fds\n"
        "                    and CPU, and the load average (a soak: bench/soak.sh)\n"
        "  --host NAME|ADDR  server host (IPv4, IPv6 or a name; default 127.0.0.1)\n"
        "  --servername NAME SNI + host name check (default: chain check only)\n"
        "  --json            one JSON line instead of the text report\n"
        "  --sqlite-floor DB one-commit-per-insert SQLite loop on DB (--requests, default 2000)\n"
        "  --tls-costs      server CPU of a TLS 1.3 handshake and its pieces, in process, with\n"
        "                   --ca --cert --key (client) --server-cert --server-key (--requests, 300)\n");
}

static int parse_op(const char *s, int *w)
{
    static const char *names[OP_COUNT] = {"get",      "create",         "locate",  "vcenter",
                                          "getattrs", "create-destroy", "encrypt", "sign-ecdsa",
                                          "sign-rsa", "mac"};
    memset(w, 0, sizeof(int) * OP_COUNT);
    if (strncmp(s, "mix:", 4) != 0) {
        for (int i = 0; i < OP_COUNT; i++)
            if (!strcmp(s, names[i]))
                return w[i] = 100, 0;
        return -1;
    }
    char *dup = strdup(s + 4), *save = NULL, *tok;
    int total = 0;
    for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int i;
        if (!eq)
            break;
        *eq = 0;
        for (i = 0; i < OP_FIRST_CRYPTO && strcmp(tok, names[i]); i++)
            ;
        long v = strtol(eq + 1, NULL, 10);
        if (i == OP_FIRST_CRYPTO || v < 0 || v > 1000000)
            break;
        w[i] = (int)v;
        total += (int)v;
    }
    free(dup);
    return tok || total <= 0 ? -1 : 0;
}

/* utime+stime of a process in seconds; -1 when unreadable. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[2048];
    unsigned long ut = 0, stt = 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(long pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void sleep_until(uint64_t t)
{
    for (;;) {
        uint64_t now = kms_mono_ns();
        if (now >= t)
            return;
        uint64_t d = t - now;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u)};
        nanosleep(&ts, NULL);
    }
}

/* Open descriptors of a process (entries of /proc/PID/fd); -1 when unreadable. */
static long proc_fds(long pid)
{
    char path[64];
    long n = 0;
    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The 1-minute load average; -1 when unreadable. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* --interval: until the stop time, every o->interval seconds take each
 * worker's interval histogram and counts, and print one line (or one JSON
 * object) with requests/s, errors, p50 / p99 / max of that interval and,
 * with a server pid, its RSS, open fds and CPU seconds used in the
 * interval, and the load average. */
static void report_intervals(bench_run_t *run, bench_worker_t *ws, int nthreads, long pid, bool json)
{
    const bench_opts_t *o = run->o;
    uint64_t stop = atomic_load(&run->t_stop_ns), start = kms_mono_ns(), prev = start;
    uint64_t step = (uint64_t)(o->interval * 1e9);
    bench_hist_t *h = malloc(sizeof(*h));
    double cpu_prev = pid ? proc_cpu_s(pid) : -1;
    if (!h) {
        sleep_until(stop);
        return;
    }
    if (!json)
        printf("%8s %9s %7s %10s %10s %10s %10s %6s %8s %6s\n", "t_s", "ops/s", "errors", "p50_ms",
               "p99_ms", "max_ms", "rss_kB", "fds", "cpu_s", "load1");
    for (uint64_t t = start + step;; t += step) {
        sleep_until(t < stop ? t : stop);
        uint64_t now = kms_mono_ns(), ok = 0, errs = 0;
        bench_hist_init(h);
        for (int i = 0; i < nthreads; i++) {
            pthread_mutex_lock(&ws[i].ival.lock);
            bench_hist_merge(h, &ws[i].ival.hist);
            ok += ws[i].ival.ok;
            errs += ws[i].ival.errs;
            bench_hist_init(&ws[i].ival.hist);
            ws[i].ival.ok = ws[i].ival.errs = 0;
            pthread_mutex_unlock(&ws[i].ival.lock);
        }
        double el = (double)(now - prev) / 1e9, cpu = pid ? proc_cpu_s(pid) : -1;
        double p50 = bench_hist_quantile(h, 0.50) / 1e6, p99 = bench_hist_quantile(h, 0.99) / 1e6;
        long rss = pid ? proc_rss_kb(pid) : -1, fds = pid ? proc_fds(pid) : -1;
        double dcpu = cpu >= 0 && cpu_prev >= 0 ? cpu - cpu_prev : -1;
        if (json)
            printf("{\"interval_end_s\":%.1f,\"operations_per_s\":%.1f,\"errors\":%llu,\"p50_ms\":%.3f,"
                   "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"server_rss_kb\":%ld,\"server_fds\":%ld,"
                   "\"server_cpu_s\":%.2f,\"load1\":%.2f}\n",
                   (double)(now - start) / 1e9, el > 0 ? (double)ok / el : 0, (unsigned long long)errs, p50,
                   p99, h->max_ns / 1e6, rss, fds, dcpu, load1());
        else
            printf("%8.1f %9.1f %7llu %10.3f %10.3f %10.3f %10ld %6ld %8.2f %6.2f\n",
                   (double)(now - start) / 1e9, el > 0 ? (double)ok / el : 0, (unsigned long long)errs, p50,
                   p99, h->max_ns / 1e6, rss, fds, dcpu, load1());
        fflush(stdout);
        prev = now;
        cpu_prev = cpu;
        if (t >= stop)
            break;
    }
    free(h);
}

/* Untimed setup: create the keys Get and Locate read, or the keys of a
 * cryptographic workload (made or registered, then activated). */
static int setup_keys(bench_run_t *run, enum bench_op op)
{
    enum bench_step make = bench_op_setup_step(op);
    bool activate = op >= OP_FIRST_CRYPTO;
    const bench_opts_t *o = run->o;
    bench_sync_t *s = bench_sync_open(run->ctx, (const struct sockaddr *)&o->addr, o->addrlen, o->sni);
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t req;
    bench_result_t res;
    int rc = KMS_ERR_IO;

    kms_buf_init(&req, 1u << 20);
    run->uids = calloc((size_t)o->keys, sizeof(char *));
    run->names = calloc((size_t)o->keys, sizeof(char *));
    if (!s || !a || !run->uids || !run->names)
        goto out;
    for (int i = 0; i < o->keys; i++) {
        char name[96];
        snprintf(name, sizeof(name), "kmipbench-%ld-%lld-%d", (long)getpid(),
                 (long long)(kms_now_us() / 1000000), i);
        if ((rc = bench_build(&o->msg, make, NULL, make == STEP_CREATE ? name : NULL, a, &req)) < 0 ||
            (rc = bench_sync_call(s, &req, a, &res)) < 0)
            goto out;
        if (res.status != 0 || !res.uid[0]) {
            fprintf(stderr, "kmipbench: setup Create failed: %s\n", bench_err_name(res.reason));
            rc = KMS_ERR_PROTO;
            goto out;
        }
        char uid[sizeof(res.uid)];
        memcpy(uid, res.uid, sizeof(uid));
        if (activate && ((rc = bench_build(&o->msg, STEP_ACTIVATE, uid, NULL, a, &req)) < 0 ||
                         (rc = bench_sync_call(s, &req, a, &res)) < 0 || res.status != 0)) {
            fprintf(stderr, "kmipbench: setup Activate failed: %s\n", bench_err_name(res.reason));
            rc = rc < 0 ? rc : KMS_ERR_PROTO;
            goto out;
        }
        memcpy(res.uid, uid, sizeof(uid));
        run->uids[i] = strdup(res.uid);
        run->names[i] = strdup(name);
        run->nkeys = i + 1;
    }
    rc = 0;
out:
    kms_buf_dispose(&req);
    kms_arena_free(a);
    bench_sync_close(s);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts_t o = {.host = "127.0.0.1", .port = 5696, .conns = 64, .duration = 10,
                      .warmup = 1, .keys = 100, .msg = {1, 1}};
    bench_tlscfg_t tc = {0};
    /* A server that closes a connection (kmsd evicting one at its limits)
     * makes the next write fail with EPIPE: counted as connection_closed,
     * never a signal that ends the run. */
    signal(SIGPIPE, SIG_IGN);
    kms_secret_t *priv = NULL, *pub = NULL;
    const char *op = "get", *sqlite_db = NULL, *server_cert = NULL, *server_key = NULL;
    bool tls_costs = false;
    long server_pid = 0;
    bool json = false;
    int rc = 1;
    enum { O_HOST = 256, O_PORT, O_CA, O_CERT, O_KEY, O_CONNS, O_THREADS, O_NEWCONN, O_RESUME,
           O_TLS, O_OP, O_DUR, O_REQS, O_RATE, O_WARM, O_PID, O_JSON, O_IDLE, O_KEYS, O_KV,
           O_SNI, O_SQL, O_NAMED, O_HELP, O_TLSCOST, O_SCERT, O_SKEY, O_IVAL };
    static const struct option lo[] = {
        {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"ca", 1, 0, O_CA},
        {"cert", 1, 0, O_CERT}, {"key", 1, 0, O_KEY}, {"connections", 1, 0, O_CONNS},
        {"threads", 1, 0, O_THREADS}, {"new-conn", 0, 0, O_NEWCONN}, {"resume", 0, 0, O_RESUME},
        {"tls", 1, 0, O_TLS}, {"op", 1, 0, O_OP}, {"duration", 1, 0, O_DUR},
        {"requests", 1, 0, O_REQS}, {"rate", 1, 0, O_RATE}, {"warmup", 1, 0, O_WARM},
        {"server-pid", 1, 0, O_PID}, {"json", 0, 0, O_JSON}, {"idle", 1, 0, O_IDLE},
        {"keys", 1, 0, O_KEYS}, {"kmip-version", 1, 0, O_KV}, {"servername", 1, 0, O_SNI},
        {"sqlite-floor", 1, 0, O_SQL}, {"named", 0, 0, O_NAMED}, {"help", 0, 0, O_HELP},
        {"tls-costs", 0, 0, O_TLSCOST}, {"server-cert", 1, 0, O_SCERT}, {"server-key", 1, 0, O_SKEY},
        {"interval", 1, 0, O_IVAL}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_HOST: o.host = optarg; break;
        case O_PORT: o.port = atoi(optarg); break;
        case O_CA: tc.ca = optarg; break;
        case O_CERT: tc.cert = optarg; break;
        case O_KEY: tc.key = optarg; break;
        case O_CONNS: o.conns = atoi(optarg); break;
        case O_THREADS: o.threads = atoi(optarg); break;
        case O_NEWCONN: o.new_conn = true; break;
        case O_RESUME: o.resume = true; break;
        case O_TLS:
            tc.tls_version = !strcmp(optarg, "1.2") ? 12 : !strcmp(optarg, "1.3") ? 13 : -1;
            break;
        case O_OP: op = optarg; break;
        case O_DUR: o.duration = atof(optarg); break;
        case O_REQS: o.requests = strtoull(optarg, NULL, 10); break;
        case O_RATE: o.rate = atof(optarg); break;
        case O_WARM: o.warmup = atof(optarg); break;
        case O_PID: server_pid = atol(optarg); break;
        case O_JSON: json = true; break;
        case O_IDLE: o.idle = atoi(optarg); break;
        case O_KEYS: o.keys = atoi(optarg); break;
        case O_KV:
            if (sscanf(optarg, "%d.%d", &o.msg.major, &o.msg.minor) != 2)
                o.msg.major = -1;
            break;
        case O_SNI: o.sni = optarg; break;
        case O_SQL: sqlite_db = optarg; break;
        case O_NAMED: o.named = true; break;
        case O_HELP: usage(stdout); return 0;
        case O_TLSCOST: tls_costs = true; break;
        case O_SCERT: server_cert = optarg; break;
        case O_SKEY: server_key = optarg; break;
        case O_IVAL: o.interval = atof(optarg); break;
        default: usage(stderr); return 2;
        }
    }
    if (tls_costs) {
        if (!tc.ca || !tc.cert || !tc.key || !server_cert || !server_key) {
            fprintf(stderr, "kmipbench: --tls-costs needs --ca --cert --key --server-cert --server-key\n");
            return 2;
        }
        return bench_tls_costs(tc.ca, tc.cert, tc.key, server_cert, server_key,
                               o.requests ? (int)o.requests : 300, json);
    }
    if (sqlite_db) {
        double r = 0;
        int n = o.requests ? (int)o.requests : 2000;
        if (bench_sqlite_floor(sqlite_db, n, &r) < 0)
            return 1;
        if (json)
            printf("{\"sqlite_commits_per_s\":%.1f,\"inserts\":%d}\n", r, n);
        else
            printf("SQLite one-commit-per-insert (WAL, synchronous=FULL): %.1f commits/s over %d\n", r, n);
        return 0;
    }
    if (parse_op(op, o.weights) < 0 || tc.tls_version < 0 || o.msg.major < 1 || o.conns < 1 ||
        o.port <= 0 || o.port > 65535 || o.duration <= 0 || o.warmup < 0 || o.rate < 0 ||
        o.keys < 1 || o.idle < 0 || (o.resume && !o.new_conn) || o.interval < 0 ||
        (o.interval > 0 && (o.requests || o.idle))) {
        fprintf(stderr, "kmipbench: bad option (see --help)\n");
        return 2;
    }
    if (o.idle)
        o.conns = o.idle, o.warmup = 0;
    {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        char port[16];
        snprintf(port, sizeof(port), "%d", o.port);
        int gai = getaddrinfo(o.host, port, &hints, &ai);
        if (gai != 0 || !ai || ai->ai_addrlen > sizeof(o.addr)) {
            fprintf(stderr, "kmipbench: cannot resolve %s: %s\n", o.host, gai ? gai_strerror(gai) : "?");
            if (ai)
                freeaddrinfo(ai);
            return 2;
        }
        memcpy(&o.addr, ai->ai_addr, ai->ai_addrlen);
        o.addrlen = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (o.threads <= 0)
        o.threads = o.conns < cores ? o.conns : (int)(cores > 0 ? cores : 1);
    if (o.threads > o.conns)
        o.threads = o.conns;

    /* Many connections need many descriptors: raise the soft limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o.conns + 64)
        fprintf(stderr, "kmipbench: warning: open-file limit %lu < connections %d\n",
                (unsigned long)rl.rlim_cur, o.conns);

    bench_run_t run = {.o = &o};
    bench_worker_t *ws = NULL;
    pthread_t *th = NULL;
    bench_stats_t tot;
    memset(&tot, 0, sizeof(tot));
    bench_hist_init(&tot.hist);

    if (!(run.ctx = bench_tls_ctx(&tc)))
        goto out;
    enum bench_op crypto_op = OP_COUNT;
    for (int i = OP_FIRST_CRYPTO; i < OP_COUNT; i++)
        if (o.weights[i])
            crypto_op = (enum bench_op)i;
    if (crypto_op == OP_SIGN_ECDSA || crypto_op == OP_SIGN_RSA) {
        /* One key for both servers compared: generated here, registered there. */
        bool ec = crypto_op == OP_SIGN_ECDSA;
        if (crypto_keypair_generate(ec ? KMIP_CRYPTOGRAPHIC_ALGORITHM_ECDSA : KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA,
                                    ec ? 256 : 2048, ec ? KMIP_RECOMMENDED_CURVE_P_256 : 0, &priv,
                                    &pub, NULL) < 0) {
            fprintf(stderr, "kmipbench: key generation failed\n");
            goto out;
        }
        if (ec)
            o.msg.ec_der = priv->data, o.msg.ec_len = priv->len;
        else
            o.msg.rsa_der = priv->data, o.msg.rsa_len = priv->len;
    }
    uint8_t hmac_key[32];
    if (crypto_op == OP_MAC) {
        if (crypto_rng_bytes(hmac_key, sizeof(hmac_key), NULL) < 0)
            goto out;
        o.msg.hmac_key = hmac_key, o.msg.hmac_len = sizeof(hmac_key);
    }
    if (crypto_op != OP_COUNT && o.keys > 8)
        o.keys = 8; /* a few keys are enough to spread the load; registration is slow on PyKMIP */
    if ((o.weights[OP_GET] || o.weights[OP_LOCATE] || o.weights[OP_GETATTRS] || crypto_op != OP_COUNT) &&
        !o.idle) {
        if (setup_keys(&run, crypto_op != OP_COUNT ? crypto_op : OP_GET) < 0) {
            fprintf(stderr, "kmipbench: setup phase failed (creating %d keys)\n", o.keys);
            goto out;
        }
    }

    ws = calloc((size_t)o.threads, sizeof(*ws));
    th = calloc((size_t)o.threads, sizeof(*th));
    if (!ws || !th)
        goto out;
    uint64_t t0 = kms_mono_ns();
    /* New connections are part of what --new-conn measures; persistent and idle
     * connections are opened first, and the clock starts after the ramp. */
    atomic_store(&run.t_measure_ns, o.new_conn ? t0 + (uint64_t)(o.warmup * 1e9) : UINT64_MAX);
    atomic_store(&run.t_stop_ns, UINT64_MAX);
    atomic_store(&run.budget, (int64_t)o.requests);
    for (int i = 0; i < o.threads; i++) {
        ws[i].run = &run;
        ws[i].id = i;
        ws[i].nconns = o.conns / o.threads + (i < o.conns % o.threads);
        pthread_mutex_init(&ws[i].ival.lock, NULL);
        bench_hist_init(&ws[i].ival.hist);
        if (pthread_create(&th[i], NULL, bench_worker_main, &ws[i]) != 0) {
            perror("kmipbench: pthread_create");
            o.threads = i;
            atomic_store(&run.t_stop_ns, 0);
            break;
        }
    }

    double cpu0 = -1, cpu1 = -1, self0, self1 = 0;
    long rss_hold = -1, est_max = 0;
    double ramp_s = -1;
    if (!o.new_conn) {
        uint64_t deadline = t0 + (o.idle ? 600ull : 60ull) * 1000000000ull, next_print = t0 + 1000000000ull;
        /* A load run stops waiting for the rest of its connections once none
         * has been established for 2 s: a server at max_connections keeps
         * closing the surplus, which reconnects without ever counting. */
        long est_seen = 0;
        uint64_t est_at = t0;
        for (;;) {
            uint64_t now = kms_mono_ns();
            long est = (long)atomic_load(&run.established);
            long failed = (long)atomic_load(&run.idle_failed);
            if (est != est_seen) {
                est_seen = est;
                est_at = now;
            }
            if (est + failed >= o.conns || now >= deadline)
                break;
            if (!o.idle && est > 0 && now - est_at >= 2000000000ull)
                break;
            if (o.idle && !json && now >= next_print) {
                fprintf(stderr, "  ramp %5.1fs established %ld failed %ld\n", (double)(now - t0) / 1e9, est,
                        failed);
                next_print += 1000000000ull;
            }
            sleep_until(now + 10000000ull);
        }
        ramp_s = (double)(kms_mono_ns() - t0) / 1e9;
        atomic_store(&run.t_measure_ns, kms_mono_ns() + (uint64_t)(o.warmup * 1e9));
    }
    uint64_t tmeas = atomic_load(&run.t_measure_ns);
    if (!o.requests || o.idle)
        atomic_store(&run.t_stop_ns, tmeas + (uint64_t)(o.duration * 1e9));
    sleep_until(tmeas);
    if (server_pid)
        cpu0 = proc_cpu_s(server_pid);
    self0 = self_cpu_s();
    uint64_t tm = kms_mono_ns(), t_end = tm;
    if (o.idle) {
        /* report once a second while holding */
        uint64_t stop = atomic_load(&run.t_stop_ns);
        for (uint64_t t = tm + 1000000000ull;; t += 1000000000ull) {
            sleep_until(t < stop ? t : stop);
            long est = (long)atomic_load(&run.established);
            long failed = (long)atomic_load(&run.idle_failed);
            if (est > est_max)
                est_max = est;
            if (server_pid)
                rss_hold = proc_rss_kb(server_pid);
            if (!json)
                fprintf(stderr, "  hold %5.1fs established %ld failed %ld server RSS %ld kB\n",
                        (double)(kms_mono_ns() - tm) / 1e9, est, failed, rss_hold);
            if (t >= stop)
                break;
        }
    } else if (!o.requests && o.interval > 0) {
        report_intervals(&run, ws, o.threads, server_pid, json);
    } else if (!o.requests) {
        sleep_until(atomic_load(&run.t_stop_ns));
    }
    if (!o.requests || o.idle) {
        if (server_pid)
            cpu1 = proc_cpu_s(server_pid);
        self1 = self_cpu_s();
        t_end = kms_mono_ns();
    }
    for (int i = 0; i < o.threads; i++)
        pthread_join(th[i], NULL);
    if (o.requests && !o.idle) {
        if (server_pid)
            cpu1 = proc_cpu_s(server_pid);
        self1 = self_cpu_s();
        t_end = kms_mono_ns();
    }
    for (int i = 0; i < o.threads; i++) {
        bench_hist_merge(&tot.hist, &ws[i].st.hist);
        tot.ok += ws[i].st.ok;
        tot.seqs += ws[i].st.seqs;
        tot.handshakes += ws[i].st.handshakes;
        tot.resumed += ws[i].st.resumed;
        for (int e = 0; e < ERR_CLASSES; e++)
            tot.errs[e] += ws[i].st.errs[e];
    }
    uint64_t errors = 0;
    for (int e = 0; e < ERR_CLASSES; e++)
        errors += tot.errs[e];
    double el = (double)(t_end - tm) / 1e9;
    double srv_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    const bench_hist_t *h = &tot.hist;
    double p50 = bench_hist_quantile(h, 0.50) / 1e6, p90 = bench_hist_quantile(h, 0.90) / 1e6,
           p99 = bench_hist_quantile(h, 0.99) / 1e6, p999 = bench_hist_quantile(h, 0.999) / 1e6,
           mx = h->max_ns / 1e6, mean = h->total ? h->sum_ns / (double)h->total / 1e6 : 0;
    double rps = el > 0 ? (double)tot.ok / el : 0, ops = el > 0 ? (double)tot.seqs / el : 0;
    double cpu_us = srv_cpu >= 0 && tot.ok ? srv_cpu * 1e6 / (double)tot.ok : -1;
    long srv_rss = server_pid ? proc_rss_kb(server_pid) : -1;
    if (o.idle && rss_hold >= 0)
        srv_rss = rss_hold;
    char tlsname[8];
    snprintf(tlsname, sizeof(tlsname), "%s", tc.tls_version == 12 ? "1.2" : tc.tls_version == 13 ? "1.3" : "any");

    if (json) {
        printf("{\"op\":\"%s\",\"connections\":%d,\"threads\":%d,\"new_conn\":%s,\"resume\":%s,"
               "\"tls\":\"%s\",\"kmip_version\":\"%d.%d\",\"rate_target\":%.1f,\"elapsed_s\":%.3f,"
               "\"requests\":%llu,\"operations\":%llu,\"requests_per_s\":%.1f,\"operations_per_s\":%.1f,"
               "\"errors\":%llu,\"errors_by_reason\":{",
               op, o.conns, o.threads, o.new_conn ? "true" : "false", o.resume ? "true" : "false",
               tlsname, o.msg.major, o.msg.minor, o.rate, el, (unsigned long long)tot.ok,
               (unsigned long long)tot.seqs, rps, ops, (unsigned long long)errors);
        const char *sep = "";
        for (int e = 0; e < ERR_CLASSES; e++)
            if (tot.errs[e]) {
                printf("%s\"%s\":%llu", sep, bench_err_name(e), (unsigned long long)tot.errs[e]);
                sep = ",";
            }
        printf("},\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,"
               "\"mean_ms\":%.4f,\"handshakes\":%llu,\"resumed\":%llu,\"client_cpu_s\":%.3f",
               p50, p90, p99, p999, mx, mean, (unsigned long long)tot.handshakes,
               (unsigned long long)tot.resumed, self1 - self0);
        if (srv_cpu >= 0 && cpu_us >= 0)
            printf(",\"server_cpu_s\":%.3f,\"cpu_us_per_req\":%.2f", srv_cpu, cpu_us);
        else if (srv_cpu >= 0) /* nothing succeeded: no per-request figure */
            printf(",\"server_cpu_s\":%.3f,\"cpu_us_per_req\":null", srv_cpu);
        else
            printf(",\"server_cpu_s\":null,\"cpu_us_per_req\":null");
        printf(",\"server_rss_kb\":%ld", srv_rss);
        if (o.idle)
            printf(",\"idle_target\":%d,\"idle_established\":%ld,\"idle_failed\":%llu,\"ramp_s\":%.2f",
                   o.idle, est_max, (unsigned long long)atomic_load(&run.idle_failed), ramp_s);
        printf("}\n");
    } else {
        printf("kmipbench: op=%s connections=%d threads=%d %s%s tls=%s kmip=%d.%d%s\n", op, o.conns,
               o.threads, o.new_conn ? "new-conn" : "persistent", o.resume ? "+resume" : "", tlsname,
               o.msg.major, o.msg.minor, o.rate > 0 ? " open-loop" : "");
        if (o.idle) {
            printf("idle: %ld of %d connections established (%llu failed), ramp %.2f s, server RSS %ld kB\n",
                   est_max, o.idle, (unsigned long long)atomic_load(&run.idle_failed), ramp_s, srv_rss);
        } else {
            printf("%.2f s: %llu requests ok (%.1f req/s), %llu operations (%.1f op/s), %llu errors\n", el,
                   (unsigned long long)tot.ok, rps, (unsigned long long)tot.seqs, ops,
                   (unsigned long long)errors);
            printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n", p50, p90,
                   p99, p999, mx, mean);
            if (o.new_conn)
                printf("handshakes %llu, resumed %llu\n", (unsigned long long)tot.handshakes,
                       (unsigned long long)tot.resumed);
            if (srv_cpu >= 0 && cpu_us >= 0)
                printf("server CPU: %.3f s, %.2f us per request; RSS %ld kB\n", srv_cpu, cpu_us, srv_rss);
            printf("client CPU: %.3f s\n", self1 - self0);
        }
        for (int e = 0; e < ERR_CLASSES; e++)
            if (tot.errs[e])
                printf("  error %-32s %llu\n", bench_err_name(e), (unsigned long long)tot.errs[e]);
    }
    rc = errors ? 3 : 0;
    if (!o.idle && tot.ok == 0)
        rc = 3;
out:
    kms_secret_free(priv);
    kms_secret_free(pub);
    free(ws);
    free(th);
    for (int i = 0; i < run.nkeys; i++) {
        free(run.uids[i]);
        free(run.names[i]);
    }
    free(run.uids);
    free(run.names);
    SSL_CTX_free(run.ctx);
    return rc;
}
