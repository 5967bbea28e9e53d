/*
 * bench/tlscost.c: where the server's CPU of one TLS handshake goes
 * (kmipbench --tls-costs).
 *
 * In one process and one thread, with no sockets: a client SSL and a
 * server SSL joined by memory BIOs run complete handshakes, and only the
 * server side is timed (thread CPU time around its calls), so the figures
 * are what kmsd's loop spends per connection in OpenSSL, without the
 * kernel, the client or KMIP. Then the pieces on their own: parsing the
 * client certificate (what libssl does with the bytes it receives),
 * verifying its chain, the ECDSA signature of CertificateVerify, the
 * verification of the client's, an ECDHE key share, and SSL_new/SSL_free.
 * The server context is configured like kmsd's (server/tls.c): mutual TLS,
 * stateful resumption, one ticket. The numbers are per operation, medians
 * of repeated rounds; the sum of the pieces is a lower bound of a
 * handshake (the record layer, transcript hashing and libssl's own state
 * machine come on top).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "bench/bench.h"

#define ROUNDS 5

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return v[n / 2];
}

/* Move what one side wrote to the other side's read BIO. */
static void pump(BIO *from_w, BIO *to_r)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from_w, buf, sizeof(buf))) > 0)
        BIO_write(to_r, buf, n);
}

typedef struct pair {
    SSL *c, *s;
    BIO *c_in, *c_out, *s_in, *s_out;
} pair_t;

static int pair_new(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *sess, pair_t *p, uint64_t *srv_ns)
{
    memset(p, 0, sizeof(*p));
    uint64_t t0 = cpu_ns();
    p->s = SSL_new(sctx);
    *srv_ns += cpu_ns() - t0;
    p->c = SSL_new(cctx);
    if (!p->s || !p->c)
        return -1;
    p->c_in = BIO_new(BIO_s_mem());
    p->c_out = BIO_new(BIO_s_mem());
    p->s_in = BIO_new(BIO_s_mem());
    p->s_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(p->c_in, -1);
    BIO_set_mem_eof_return(p->s_in, -1);
    SSL_set_bio(p->c, p->c_in, p->c_out);
    SSL_set_bio(p->s, p->s_in, p->s_out);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
    if (sess)
        SSL_set_session(p->c, sess);
    return 0;
}

/* One handshake; the server's CPU time is added to *srv_ns. */
static int handshake(pair_t *p, uint64_t *srv_ns)
{
    for (int i = 0; i < 20; i++) {
        int rc_c = SSL_do_handshake(p->c);
        pump(p->c_out, p->s_in);
        uint64_t t0 = cpu_ns();
        int rc_s = SSL_do_handshake(p->s);
        *srv_ns += cpu_ns() - t0;
        pump(p->s_out, p->c_in);
        if (rc_c == 1 && rc_s == 1) {
            /* Let the client read the ticket (TLS 1.3 sends it after). */
            char b[64];
            (void)SSL_read(p->c, b, sizeof(b));
            ERR_clear_error();
            return 0;
        }
    }
    return -1;
}

static void pair_free(pair_t *p, uint64_t *srv_ns)
{
    /* An SSL freed without a shutdown marks its session not resumable. */
    SSL_set_shutdown(p->c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(p->c);
    uint64_t t0 = cpu_ns();
    SSL_shutdown(p->s);
    SSL_free(p->s);
    *srv_ns += cpu_ns() - t0;
}

/* us per server-side handshake (median of ROUNDS rounds of n). */
static double run_handshakes(SSL_CTX *cctx, SSL_CTX *sctx, int n, bool resume, int *failed)
{
    double r[ROUNDS];
    SSL_SESSION *sess = NULL;
    for (int k = 0; k < ROUNDS; k++) {
        uint64_t ns = 0;
        for (int i = 0; i < n; i++) {
            pair_t p;
            if (pair_new(cctx, sctx, resume ? sess : NULL, &p, &ns) || handshake(&p, &ns)) {
                (*failed)++;
                pair_free(&p, &ns);
                continue;
            }
            if (resume && !sess)
                sess = SSL_get1_session(p.c);
            else if (resume && !SSL_session_reused(p.s))
                (*failed)++;
            pair_free(&p, &ns);
        }
        r[k] = (double)ns / 1e3 / n;
    }
    SSL_SESSION_free(sess);
    return median(r, ROUNDS);
}

static SSL_CTX *server_ctx(const char *ca, const char *cert, const char *key, bool mtls)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (!s || SSL_CTX_use_certificate_chain_file(s, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(s, ca, NULL) != 1) {
        SSL_CTX_free(s);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"kmsd", 4);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_num_tickets(s, 1);
    if (mtls)
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return s;
}

/* us per call of fn over n calls (median of ROUNDS). */
#define TIME_PIECE(out, n, body)                                                                   \
    do {                                                                                           \
        double r_[ROUNDS];                                                                         \
        for (int k_ = 0; k_ < ROUNDS; k_++) {                                                      \
            uint64_t t0_ = cpu_ns();                                                               \
            for (int i_ = 0; i_ < (n); i_++) {                                                     \
                body;                                                                              \
            }                                                                                      \
            r_[k_] = (double)(cpu_ns() - t0_) / 1e3 / (n);                                         \
        }                                                                                          \
        (out) = median(r_, ROUNDS);                                                                \
    } while (0)

int bench_tls_costs(const char *ca, const char *client_cert, const char *client_key,
                    const char *server_cert, const char *server_key, int n, bool json)
{
    int rc = 1, failed = 0;
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX *s_mtls = server_ctx(ca, server_cert, server_key, true);
    SSL_CTX *s_plain = server_ctx(ca, server_cert, server_key, false);
    X509 *ccert = NULL, *cacert = NULL;
    EVP_PKEY *skey = NULL;
    X509_STORE *store = NULL;
    unsigned char *der = NULL;
    FILE *f = NULL;
    if (!cctx || !s_mtls || !s_plain || SSL_CTX_load_verify_locations(cctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(cctx, client_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(cctx, client_key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "kmipbench: --tls-costs: cannot load the certificates\n");
        ERR_print_errors_fp(stderr);
        goto out;
    }
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    if (!(f = fopen(client_cert, "r")) || !(ccert = PEM_read_X509(f, NULL, NULL, NULL)))
        goto out;
    fclose(f);
    if (!(f = fopen(ca, "r")) || !(cacert = PEM_read_X509(f, NULL, NULL, NULL)))
        goto out;
    fclose(f);
    if (!(f = fopen(server_key, "r")) || !(skey = PEM_read_PrivateKey(f, NULL, NULL, NULL)))
        goto out;
    fclose(f);
    f = NULL;
    int der_len = i2d_X509(ccert, &der);
    store = X509_STORE_new();
    if (der_len <= 0 || !store || X509_STORE_add_cert(store, cacert) != 1)
        goto out;

    double hs_mtls = run_handshakes(cctx, s_mtls, n, false, &failed);
    double hs_plain = run_handshakes(cctx, s_plain, n, false, &failed);
    double hs_resume = run_handshakes(cctx, s_mtls, n, true, &failed);

    double t_parse, t_verify_chain, t_sign, t_verify_sig, t_ecdhe, t_x25519, t_sslnew;
    TIME_PIECE(t_parse, n, {
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, der_len);
        X509_free(x);
    });
    TIME_PIECE(t_verify_chain, n, {
        X509_STORE_CTX *sc = X509_STORE_CTX_new();
        X509_STORE_CTX_init(sc, store, ccert, NULL);
        if (X509_verify_cert(sc) != 1)
            failed++;
        X509_STORE_CTX_free(sc);
    });
    unsigned char tbs[64] = {1}, sig[128];
    size_t siglen = sizeof(sig);
    {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, skey);
        EVP_DigestSign(m, sig, &siglen, tbs, sizeof(tbs));
        EVP_MD_CTX_free(m);
    }
    TIME_PIECE(t_sign, n, {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        size_t l = sizeof(sig);
        unsigned char s2[128];
        if (EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, skey) != 1 ||
            EVP_DigestSign(m, s2, &l, tbs, sizeof(tbs)) != 1)
            failed++;
        EVP_MD_CTX_free(m);
    });
    EVP_PKEY *spub = skey; /* a P-256 key and a signature of it: the cost is the client's */
    EVP_PKEY_up_ref(spub);
    TIME_PIECE(t_verify_sig, n, {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        if (EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, spub) != 1 ||
            EVP_DigestVerify(m, sig, siglen, tbs, sizeof(tbs)) != 1)
            failed++;
        EVP_MD_CTX_free(m);
    });
    EVP_PKEY_free(spub);
    EVP_PKEY *peer_p256 = EVP_EC_gen("P-256"), *peer_x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    TIME_PIECE(t_ecdhe, n, {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        EVP_PKEY_CTX *d = EVP_PKEY_CTX_new(k, NULL);
        unsigned char z[64];
        size_t zl = sizeof(z);
        if (!d || EVP_PKEY_derive_init(d) != 1 || EVP_PKEY_derive_set_peer(d, peer_p256) != 1 ||
            EVP_PKEY_derive(d, z, &zl) != 1)
            failed++;
        EVP_PKEY_CTX_free(d);
        EVP_PKEY_free(k);
    });
    TIME_PIECE(t_x25519, n, {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        EVP_PKEY_CTX *d = EVP_PKEY_CTX_new(k, NULL);
        unsigned char z[64];
        size_t zl = sizeof(z);
        if (!d || EVP_PKEY_derive_init(d) != 1 || EVP_PKEY_derive_set_peer(d, peer_x) != 1 ||
            EVP_PKEY_derive(d, z, &zl) != 1)
            failed++;
        EVP_PKEY_CTX_free(d);
        EVP_PKEY_free(k);
    });
    EVP_PKEY_free(peer_p256);
    EVP_PKEY_free(peer_x);
    TIME_PIECE(t_sslnew, n, { SSL_free(SSL_new(s_mtls)); });

    if (json) {
        printf("{\"tls_costs_us\":{\"handshake_mtls\":%.1f,\"handshake_no_client_cert\":%.1f,"
               "\"handshake_resumed\":%.1f,\"parse_client_cert\":%.1f,\"verify_client_chain\":%.1f,"
               "\"ecdsa_p256_sign\":%.1f,\"ecdsa_p256_verify\":%.1f,\"ecdhe_p256\":%.1f,"
               "\"x25519\":%.1f,\"ssl_new_free\":%.1f},\"failed\":%d,\"openssl\":\"%s\"}\n",
               hs_mtls, hs_plain, hs_resume, t_parse, t_verify_chain, t_sign, t_verify_sig, t_ecdhe,
               t_x25519, t_sslnew, failed, OpenSSL_version(OPENSSL_VERSION));
    } else {
        printf("server CPU per operation (us, median of %d rounds of %d), %s\n", ROUNDS, n,
               OpenSSL_version(OPENSSL_VERSION));
        printf("  TLS 1.3 handshake, mutual TLS          %8.1f\n", hs_mtls);
        printf("  TLS 1.3 handshake, no client cert      %8.1f\n", hs_plain);
        printf("  TLS 1.3 resumption (mutual TLS)        %8.1f\n", hs_resume);
        printf("  parse the client certificate (d2i)     %8.1f\n", t_parse);
        printf("  verify the client chain                %8.1f\n", t_verify_chain);
        printf("  ECDSA P-256 sign (CertificateVerify)   %8.1f\n", t_sign);
        printf("  ECDSA P-256 verify (client's)          %8.1f\n", t_verify_sig);
        printf("  ECDHE P-256 keygen + derive            %8.1f\n", t_ecdhe);
        printf("  X25519 keygen + derive                 %8.1f\n", t_x25519);
        printf("  SSL_new + SSL_free                     %8.1f\n", t_sslnew);
        if (failed)
            printf("  (%d operations failed)\n", failed);
    }
    rc = failed ? 1 : 0;
out:
    if (f)
        fclose(f);
    OPENSSL_free(der);
    X509_STORE_free(store);
    X509_free(ccert);
    X509_free(cacert);
    EVP_PKEY_free(skey);
    SSL_CTX_free(cctx);
    SSL_CTX_free(s_mtls);
    SSL_CTX_free(s_plain);
    return rc;
}
