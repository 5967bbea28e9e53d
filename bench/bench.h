/*
 * bench/bench.h: internal declarations of kmipbench, the KMIP load generator.
 *
 * kmipbench speaks KMIP 1.x over mutual TLS to any server (kmsd, PyKMIP, ...)
 * using only our ttlv/ codec and OpenSSL. Files: main.c (options, setup
 * phase, report), loop.c (one epoll loop per thread driving many
 * non-blocking TLS connections), msg.c (request builders, response
 * parsing), hist.c (log-linear latency histogram), tls.c (client context,
 * blocking helper for the setup phase), sqlfloor.c (the one-commit-per-insert
 * SQLite reference loop). It deliberately is not a KMIP client library: it
 * builds exactly the few standard requests it measures.
 */
#ifndef KMS_BENCH_H
#define KMS_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "common/kms.h"
#include "ttlv/ttlv.h"

/* ------------------------------------------------------------ histogram */
/* Log-linear buckets over nanoseconds: 128 linear sub-buckets per power of
 * two, so any recorded value is reported within 1/128 (< 0.8 %). Covers
 * 1 ns .. 2^62 ns; one histogram per thread, merged at the end. */
#define BENCH_HIST_SUB 128
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB * 58)
typedef struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
    uint64_t min_ns;
    double sum_ns;
} bench_hist_t;

void bench_hist_init(bench_hist_t *h);
void bench_hist_record(bench_hist_t *h, uint64_t ns);
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);
/* Value (ns) at quantile q in [0,1]: the midpoint of the bucket holding it. */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);

/* -------------------------------------------------------------- messages */
/* getattrs: Get Attributes of a setup key; create-destroy: Create, then
 * Destroy of that (Pre-Active) key as one sequence, so the number of keys
 * with material stays fixed (a soak's workload). */
enum bench_op { OP_GET = 0, OP_CREATE, OP_LOCATE, OP_VCENTER, OP_GETATTRS, OP_CDESTROY,
                OP_ENCRYPT, OP_SIGN_ECDSA, OP_SIGN_RSA, OP_MAC, OP_COUNT };
/* The cryptographic workloads run alone (not in a mix): each sets up its
 * own kind of key. */
#define OP_FIRST_CRYPTO OP_ENCRYPT
/* The steps of one request on the wire (vcenter runs 4 of them). The
 * cryptographic ones (KMIP 1.2; sent as 1.2 at least) and their set-up:
 *   encrypt     Encrypt of 4 KiB, AES-256-GCM, server-made nonce
 *   sign-ecdsa  Sign of 64 bytes, ECDSA with SHA-256 (a registered P-256 key)
 *   sign-rsa    Sign of 64 bytes, RSA-2048 PKCS#1 v1.5 SHA-256 (registered)
 *   mac         MAC of 64 bytes, HMAC-SHA256 (a registered 256-bit key: PyKMIP's
 *               server cannot create HMAC keys) */
enum bench_step { STEP_CREATE, STEP_ACTIVATE, STEP_GET, STEP_GETATTRS, STEP_LOCATE, STEP_DESTROY,
                  STEP_REGISTER_HMAC, STEP_REGISTER_EC, STEP_REGISTER_RSA,
                  STEP_ENCRYPT, STEP_SIGN_EC, STEP_SIGN_RSA, STEP_MAC };

typedef struct bench_msgcfg {
    int major, minor; /* protocol version sent in every request header */
    /* PKCS#8 DER private keys and the raw HMAC key that the Register
     * set-up steps send. */
    const uint8_t *ec_der, *rsa_der, *hmac_key;
    size_t ec_len, rsa_len, hmac_len;
} bench_msgcfg_t;

/* The step a timed operation of `op` sends, and the step that creates (or
 * registers) its key in the set-up phase (STEP_CREATE for get/locate). */
enum bench_step bench_op_step(enum bench_op op);
enum bench_step bench_op_setup_step(enum bench_op op);

/* Encode one request into out (reset first). `uid` is the object for
 * Get/Activate/Get Attributes, `name` the Name for Locate (and for Create
 * when not NULL). Returns 0 or a negative KMS_ERR_*. */
int bench_build(const bench_msgcfg_t *cfg, enum bench_step step, const char *uid,
                const char *name, kms_arena_t *a, kms_buf_t *out);

/* Result of parsing a response. reason is the Result Reason when status != 0,
 * or -1 for a response we could not decode (counted as "malformed"). */
typedef struct bench_result {
    int status;      /* 0 success, else Result Status or -1 */
    int reason;      /* Result Reason, 0 when absent */
    char uid[128];   /* first Unique Identifier in the payload, "" if none */
} bench_result_t;
int bench_parse(const uint8_t *p, size_t n, kms_arena_t *a, bench_result_t *res);

/* ----------------------------------------------------------------- TLS */
typedef struct bench_tlscfg {
    const char *ca, *cert, *key;
    const char *servername;   /* SNI and host check; NULL: chain only */
    int tls_version;          /* 0 any (1.2..1.3), 12, 13 */
} bench_tlscfg_t;
SSL_CTX *bench_tls_ctx(const bench_tlscfg_t *c);

/* Blocking client for the untimed setup phase. */
typedef struct bench_sync bench_sync_t;
bench_sync_t *bench_sync_open(SSL_CTX *ctx, const struct sockaddr *sa, socklen_t salen, const char *sni);
/* Send one request, read one response into res. 0 or negative KMS_ERR_*. */
int bench_sync_call(bench_sync_t *s, const kms_buf_t *req, kms_arena_t *a, bench_result_t *res);
void bench_sync_close(bench_sync_t *s);

/* --------------------------------------------------------------- errors */
/* Error classes: 0..BENCH_REASONS-1 are KMIP Result Reasons (0 = failure
 * without a reason); then transport classes. */
#define BENCH_REASONS 0x40
enum { ERR_CONNECT = BENCH_REASONS, ERR_TLS, ERR_CLOSED, ERR_MALFORMED, ERR_TIMEOUT, ERR_CLASSES };
const char *bench_err_name(int cls);

/* ------------------------------------------------------------- the run */
typedef struct bench_opts {
    const char *host;
    int port;
    struct sockaddr_storage addr; /* host:port resolved once (IPv4 or IPv6) */
    socklen_t addrlen;
    int conns, threads;
    bool new_conn, resume;
    int weights[OP_COUNT];     /* op mix; single op = 100 */
    double duration, warmup, rate;
    double interval;           /* --interval S: a report line every S seconds (0: none) */
    uint64_t requests;         /* 0: by duration */
    int idle;                  /* --idle N: hold N connections */
    int keys;                  /* setup keys for get/locate */
    bool named;                /* --named: every timed Create carries a unique Name */
    const char *sni;
    bench_msgcfg_t msg;
} bench_opts_t;

typedef struct bench_stats {
    bench_hist_t hist;         /* per request (per sequence for vcenter) */
    uint64_t ok, seqs;         /* successful requests, completed sequences */
    uint64_t errs[ERR_CLASSES];
    uint64_t handshakes, resumed;
    uint64_t established;      /* idle mode: connections currently open */
} bench_stats_t;

/* --interval S: what a worker recorded since the last report, under lock
 * (the main thread takes and resets it every S seconds). */
typedef struct bench_ival {
    pthread_mutex_t lock;
    bench_hist_t hist;
    uint64_t ok, errs;
} bench_ival_t;

typedef struct bench_run {
    const bench_opts_t *o;
    SSL_CTX *ctx;
    char **uids; char **names; int nkeys; /* setup objects */
    _Atomic uint64_t t_measure_ns; /* record only responses completing after this */
    _Atomic uint64_t t_stop_ns;   /* stop sending at this time */
    _Atomic int64_t budget;       /* --requests: remaining sends */
    _Atomic uint64_t established; /* connections that completed a first handshake */
    _Atomic uint64_t idle_failed;
} bench_run_t;

/* Thread body: drives connections [first, first+count) until t_stop_ns. */
typedef struct bench_worker {
    bench_run_t *run;
    int id, nconns;
    bench_stats_t st;
    bench_ival_t ival;
} bench_worker_t;
void *bench_worker_main(void *arg);

/* The SQLite reference: one transaction with one INSERT per commit, WAL,
 * synchronous=FULL, on `path`; commits per second over `n` inserts. */
int bench_sqlite_floor(const char *path, int n, double *rate_out);
/* bench/tlscost.c: server CPU of a TLS 1.3 handshake and its pieces, in
 * process (kmipbench --tls-costs). 0, or 1 when anything failed. */
int bench_tls_costs(const char *ca, const char *client_cert, const char *client_key,
                    const char *server_cert, const char *server_key, int n, bool json);

#endif
