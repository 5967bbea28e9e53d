/*
 * server/auth.c: who is this client? The kmip_auth_cb of kmsd.
 *
 * A client is identified by its TLS certificate (SHA-256 fingerprint in the
 * clients table, or its subject CN for clients registered by CN without a
 * fingerprint; the TLS layer has already checked the chain against
 * tls.client_ca) and/or by the KMIP Credential (user name + password,
 * verified against an Argon2id hash). When both are present they must
 * belong to the same tenant. Everything else is Permission Denied, with a
 * log line saying why (never the password).
 *
 * A certificate's client is looked up in the clients table (one indexed
 * SQLite read on a pooled reader) and the answer kept in a small cache of
 * the calling thread, tagged with store_clients_generation(): any commit
 * that touches clients or tenants changes the generation before it is
 * acknowledged, so removing a client still takes effect on its next
 * request, and a Get on an event loop costs no database read. A successful
 * Argon2id verification is cached too, keyed by an HMAC of (name,
 * password, stored hash) under a per-process random key: a changed or
 * removed hash can never hit the cache.
 *
 * It deliberately does not decide what an identity may do with an object;
 * kmip/ enforces tenant ownership and roles.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "server/server_int.h"

#define AUTH_COMPONENT "auth"
#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32
#define AUTH_CACHE_SLOTS 256
#define AUTH_CACHE_TTL_US (300LL * 1000000)
#define AUTH_MAX_POOLED_READERS 64
#define AUTH_MAX_PASSWORD 1024

typedef struct auth_cache_entry {
    unsigned char tag[32];
    int64_t expires_us;
    bool used;
} auth_cache_entry_t;

struct srv_access {
    store_t *store;
    uint32_t t_cost, m_kib, par;

    pthread_mutex_t mu; /* guards readers[] and cache[] */
    store_reader_t *readers[AUTH_MAX_POOLED_READERS];
    size_t n_readers;
    auth_cache_entry_t cache[AUTH_CACHE_SLOTS];
    unsigned char cache_key[32];
    char dummy_hash[160]; /* verified for unknown users: same cost, same time */
    uint64_t instance;    /* unique per srv_access_new (thread caches outlive us) */
};

static atomic_uint_fast64_t g_access_instances;

/* ------------------------------------------------------------ readers */
static int reader_get(srv_access_t *a, store_reader_t **out)
{
    pthread_mutex_lock(&a->mu);
    store_reader_t *r = a->n_readers ? a->readers[--a->n_readers] : NULL;
    pthread_mutex_unlock(&a->mu);
    if (r) {
        *out = r;
        return 0;
    }
    int rc = store_reader_new(a->store, out);
    return rc ? KMS_ERR_UNAVAIL : 0;
}

static void reader_put(srv_access_t *a, store_reader_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&a->mu);
    if (a->n_readers < AUTH_MAX_POOLED_READERS) {
        a->readers[a->n_readers++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    store_reader_free(r);
}

/* ---------------------------------------------------------------- cache */
static void cache_tag(const srv_access_t *a, const char *name, const char *password,
                      const char *stored, unsigned char tag[32])
{
    /* HMAC over name \0 password \0 stored-hash; one-shot API. */
    size_t ln = strlen(name), lp = strlen(password), ls = strlen(stored);
    size_t total = ln + lp + ls + 2;
    unsigned char *msg = OPENSSL_malloc(total);
    unsigned int len = 0;
    if (!msg) {
        memset(tag, 0, 32);
        return;
    }
    memcpy(msg, name, ln + 1);
    memcpy(msg + ln + 1, password, lp + 1);
    memcpy(msg + ln + lp + 2, stored, ls);
    if (!HMAC(EVP_sha256(), a->cache_key, sizeof(a->cache_key), msg, total, tag, &len))
        memset(tag, 0, 32);
    OPENSSL_clear_free(msg, total);
}

static bool cache_hit(srv_access_t *a, const unsigned char tag[32])
{
    static const unsigned char zero[32];
    if (CRYPTO_memcmp(tag, zero, 32) == 0)
        return false;
    int64_t now = kms_now_us();
    bool hit = false;
    pthread_mutex_lock(&a->mu);
    auth_cache_entry_t *e = &a->cache[tag[0] % AUTH_CACHE_SLOTS];
    if (e->used && e->expires_us > now && CRYPTO_memcmp(e->tag, tag, 32) == 0)
        hit = true;
    pthread_mutex_unlock(&a->mu);
    return hit;
}

static void cache_put(srv_access_t *a, const unsigned char tag[32])
{
    pthread_mutex_lock(&a->mu);
    auth_cache_entry_t *e = &a->cache[tag[0] % AUTH_CACHE_SLOTS];
    memcpy(e->tag, tag, 32);
    e->expires_us = kms_now_us() + AUTH_CACHE_TTL_US;
    e->used = true;
    pthread_mutex_unlock(&a->mu);
}

/* --------------------------------------------------------------- public */
int srv_access_hash_password(const srv_access_t *a, const char *password, char *out,
                             size_t outlen)
{
    if (!a || !password || !out)
        return KMS_ERR_INVAL;
    size_t plen = strlen(password);
    if (plen == 0 || plen > AUTH_MAX_PASSWORD)
        return KMS_ERR_INVAL;
    unsigned char salt[AUTH_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return KMS_ERR_CRYPTO;
    size_t need = argon2_encodedlen(a->t_cost, a->m_kib, a->par, AUTH_SALT_LEN, AUTH_HASH_LEN,
                                    Argon2_id);
    if (need > outlen || need > sizeof(((store_client_t *)0)->password_hash))
        return KMS_ERR_LIMIT;
    int rc = argon2id_hash_encoded(a->t_cost, a->m_kib, a->par, password, plen, salt,
                                   sizeof(salt), AUTH_HASH_LEN, out, outlen);
    if (rc != ARGON2_OK) {
        kms_log(KMS_LOG_ERROR, AUTH_COMPONENT, "argon2id: %s", argon2_error_message(rc));
        return KMS_ERR_CRYPTO;
    }
    return 0;
}

int srv_access_new(const srv_access_options_t *opt, srv_access_t **out)
{
    *out = NULL;
    if (!opt || !opt->store)
        return KMS_ERR_INVAL;
    srv_access_t *a = calloc(1, sizeof(*a));
    if (!a)
        return KMS_ERR_NOMEM;
    a->store = opt->store;
    a->t_cost = opt->argon2_t_cost ? opt->argon2_t_cost : 2;
    a->m_kib = opt->argon2_m_kib ? opt->argon2_m_kib : 19 * 1024;
    a->par = opt->argon2_parallelism ? opt->argon2_parallelism : 1;
    pthread_mutex_init(&a->mu, NULL);
    a->instance = atomic_fetch_add(&g_access_instances, 1) + 1;
    int rc = KMS_ERR_CRYPTO;
    if (RAND_bytes(a->cache_key, sizeof(a->cache_key)) != 1)
        goto fail;
    unsigned char rnd[24];
    char dummy_pw[49];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto fail;
    kms_hex_encode(rnd, sizeof(rnd), dummy_pw);
    rc = srv_access_hash_password(a, dummy_pw, a->dummy_hash, sizeof(a->dummy_hash));
    kms_wipe(dummy_pw, sizeof(dummy_pw));
    if (rc)
        goto fail;
    *out = a;
    return 0;
fail:
    srv_access_free(a);
    return rc;
}

void srv_access_free(srv_access_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_readers; i++)
        store_reader_free(a->readers[i]);
    pthread_mutex_destroy(&a->mu);
    OPENSSL_cleanse(a, sizeof(*a));
    free(a);
}

static const char *nz(const char *s)
{
    return s && *s ? s : "-";
}

/* The registered certificate client for this peer, if any: by fingerprint,
 * else by CN for a client registered by CN only. 0, NOTFOUND or UNAVAIL. */
static int find_cert_client(store_reader_t *r, const kmip_peer_t *peer, store_client_t *c)
{
    int rc = KMS_ERR_NOTFOUND;
    if (peer->cert_sha256 && *peer->cert_sha256) {
        rc = store_client_by_cert(r, peer->cert_sha256, c);
        if (rc == 0 && strcmp(c->kind, "cert") == 0)
            return 0;
        if (rc != 0 && rc != KMS_ERR_NOTFOUND)
            return KMS_ERR_UNAVAIL;
    }
    if (peer->cert_cn && *peer->cert_cn) {
        rc = store_client_by_name(r, peer->cert_cn, c);
        if (rc == 0 && strcmp(c->kind, "cert") == 0 && c->cert_sha256[0] == '\0')
            return 0;
        if (rc != 0 && rc != KMS_ERR_NOTFOUND)
            return KMS_ERR_UNAVAIL;
    }
    return KMS_ERR_NOTFOUND;
}

/* Per-thread cache of find_cert_client() answers (see the top comment). */
#define AUTH_CERT_SLOTS 64
typedef struct cert_cache_entry {
    uint64_t owner;            /* srv_access_t instance; 0 = empty */
    uint64_t gen;
    char fp[65];
    char cn[128];
    int rc;                    /* 0 or KMS_ERR_NOTFOUND */
    store_client_t client;     /* when rc == 0; password_hash cleared */
} cert_cache_entry_t;
static __thread cert_cache_entry_t t_cert_cache[AUTH_CERT_SLOTS];

static cert_cache_entry_t *cert_slot(const kmip_peer_t *peer)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = peer->cert_sha256 ? peer->cert_sha256 : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (const char *p = peer->cert_cn ? peer->cert_cn : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return &t_cert_cache[(h ^ (h >> 29)) % AUTH_CERT_SLOTS];
}

/* find_cert_client() through the cache; *r is taken from the pool only on
 * a miss (the caller returns it). */
static int find_cert_client_cached(srv_access_t *a, store_reader_t **r, const kmip_peer_t *peer,
                                   store_client_t *c)
{
    const char *fp = peer->cert_sha256 ? peer->cert_sha256 : "";
    const char *cn = peer->cert_cn ? peer->cert_cn : "";
    bool cacheable = strlen(fp) < sizeof(((cert_cache_entry_t *)0)->fp) &&
                     strlen(cn) < sizeof(((cert_cache_entry_t *)0)->cn);
    uint64_t gen = store_clients_generation(a->store); /* before the read */
    cert_cache_entry_t *e = cert_slot(peer);
    if (cacheable && e->owner == a->instance && e->gen == gen && strcmp(e->fp, fp) == 0 &&
        strcmp(e->cn, cn) == 0) {
        if (e->rc == 0)
            *c = e->client;
        return e->rc;
    }
    if (!*r) {
        int grc = reader_get(a, r);
        if (grc)
            return grc;
    }
    int rc = find_cert_client(*r, peer, c);
    if (cacheable && (rc == 0 || rc == KMS_ERR_NOTFOUND)) {
        e->owner = a->instance;
        e->gen = gen;
        kms_strlcpy(e->fp, fp, sizeof e->fp);
        kms_strlcpy(e->cn, cn, sizeof e->cn);
        e->rc = rc;
        if (rc == 0) {
            e->client = *c;
            e->client.password_hash[0] = '\0';
        }
    }
    return rc;
}

static void fill_identity(const store_client_t *c, kmip_identity_t *id)
{
    kms_strlcpy(id->name, c->name, sizeof(id->name));
    kms_strlcpy(id->tenant, c->tenant, sizeof(id->tenant));
    id->role = strcmp(c->role, "admin") == 0 ? KMIP_ROLE_ADMIN : KMIP_ROLE_CLIENT;
}

static void log_unregistered(const kmip_peer_t *peer)
{
    kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
            "refused %s: certificate CN=%s sha256=%s is signed by the client CA but not "
            "registered; register it with: kmsctl client add --tenant TENANT --cert FILE",
            nz(peer->address), nz(peer->cert_cn), nz(peer->cert_sha256));
}

int srv_access_cert_registered(srv_access_t *a, const char *sha256_hex, const char *cn)
{
    if (!a)
        return KMS_ERR_INVAL;
    kmip_peer_t peer = {.cert_sha256 = sha256_hex, .cert_cn = cn, .address = NULL};
    store_reader_t *r = NULL;
    store_client_t c;
    int rc = find_cert_client_cached(a, &r, &peer, &c);
    reader_put(a, r);
    if (rc == KMS_ERR_NOTFOUND) {
        log_unregistered(&peer);
        return KMS_ERR_PERM;
    }
    return rc;
}

/* Verify a password client. 0, PERM or UNAVAIL. */
static int check_password(srv_access_t *a, store_reader_t *r, const kmip_peer_t *peer,
                          const char *username, const char *password, store_client_t *c)
{
    size_t plen = password ? strlen(password) : 0;
    int rc = store_client_by_name(r, username, c);
    if (rc != 0 && rc != KMS_ERR_NOTFOUND)
        return KMS_ERR_UNAVAIL;
    bool known = rc == 0 && strcmp(c->kind, "password") == 0 && c->password_hash[0];
    if (!known || plen == 0 || plen > AUTH_MAX_PASSWORD) {
        /* Spend the same time as a real check so user names cannot be probed. */
        if (plen > 0 && plen <= AUTH_MAX_PASSWORD)
            (void)argon2id_verify(a->dummy_hash, password, plen);
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT, "refused %s: user '%s' %s", nz(peer->address),
                username, known ? "sent an empty or oversized password" : "is not a registered password client");
        return KMS_ERR_PERM;
    }
    unsigned char tag[32];
    cache_tag(a, c->name, password, c->password_hash, tag);
    if (cache_hit(a, tag))
        return 0;
    int vr = argon2id_verify(c->password_hash, password, plen);
    if (vr != ARGON2_OK) {
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT, "refused %s: wrong password for user '%s'",
                nz(peer->address), username);
        return KMS_ERR_PERM;
    }
    cache_put(a, tag);
    return 0;
}

int srv_access_auth_cb(void *arg, const kmip_peer_t *peer, const char *username,
                       const char *password, kmip_identity_t *id_out)
{
    srv_access_t *a = arg;
    static const kmip_peer_t nopeer = {NULL, NULL, NULL};
    if (!a || !id_out)
        return KMS_ERR_PERM;
    if (!peer)
        peer = &nopeer;
    memset(id_out, 0, sizeof(*id_out));
    bool has_cert = (peer->cert_sha256 && *peer->cert_sha256) || (peer->cert_cn && *peer->cert_cn);
    bool has_cred = username && *username;
    if (!has_cert && !has_cred) {
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
                "refused %s: no client certificate and no credential", nz(peer->address));
        return KMS_ERR_PERM;
    }
    store_reader_t *r = NULL;
    int rc = 0;
    store_client_t cc, pc;
    if (has_cert) {
        rc = find_cert_client_cached(a, &r, peer, &cc);
        if (rc == KMS_ERR_NOTFOUND) {
            log_unregistered(peer);
            rc = KMS_ERR_PERM;
        }
        if (rc)
            goto out;
    }
    if (has_cred) {
        if (!r && (rc = reader_get(a, &r)) != 0)
            goto out;
        rc = check_password(a, r, peer, username, password, &pc);
        if (rc)
            goto out;
    }
    if (has_cert && has_cred) {
        if (strcmp(cc.tenant, pc.tenant) != 0) {
            kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
                    "refused %s: credential of user '%s' (tenant %s) over the certificate of "
                    "'%s' (tenant %s)",
                    nz(peer->address), pc.name, pc.tenant, cc.name, cc.tenant);
            rc = KMS_ERR_PERM;
            goto out;
        }
        /* The credential names the user; the lesser of the two roles applies. */
        fill_identity(&pc, id_out);
        if (strcmp(cc.role, "admin") != 0)
            id_out->role = KMIP_ROLE_CLIENT;
    } else {
        fill_identity(has_cred ? &pc : &cc, id_out);
    }
    rc = 0;
out:
    if (rc == KMS_ERR_UNAVAIL)
        kms_log(KMS_LOG_ERROR, AUTH_COMPONENT, "cannot read the clients table");
    reader_put(a, r);
    return rc;
}
