/*
 * kmip/auth.c: who is asking. The identity step of a request
 * (kmip_request_authenticate -> kmip_identify), the post-handshake check
 * of tls.require_registered (kmip_cert_registered), and the password
 * hashing admin code uses for new password clients (kmip_password_hash).
 *
 * A client is identified by its TLS certificate (SHA-256 fingerprint in the
 * store's clients table, or its subject CN for clients registered by CN
 * without a fingerprint; the TLS layer has already checked the chain
 * against tls.client_ca) and/or by KMIP Credentials (one or more, KMIP
 * 1.2+; at most KMIP_MAX_CREDENTIALS): a user name and password, or a
 * Device credential (the device client registered with its serial number,
 * its other registered identifiers equal, its password), each verified
 * against an Argon2id hash. Every one presented must authenticate, and the
 * certificate and all the Credentials must belong to one tenant; the
 * lesser role applies.
 * Everything else is refused (KMS_ERR_PERM, which the request answers
 * Authentication Not Successful, one answer for every cause), with a log
 * line saying why (never the password). A disabled client (store_client_t
 * .disabled) is refused the same way at the same cost as an unknown one,
 * by certificate, password or device credential, at the handshake with
 * tls.require_registered, and when its queued job starts
 * (kmip_identity_recheck).
 *
 * A certificate's client is looked up in the clients table (one indexed
 * SQLite read on the calling thread's store reader) and the answer kept in
 * a small cache of the calling thread, tagged with
 * store_clients_generation(): any commit that touches clients or tenants
 * changes the generation before it is acknowledged, so removing or
 * disabling a client still takes effect on its next request, and a Get on an event loop costs
 * no database read. A successful Argon2id verification is cached too,
 * keyed by an HMAC of (name, password, stored hash) under a per-server
 * random key: a changed or removed hash can never hit the cache.
 *
 * It deliberately does not decide what an identity may do with an object:
 * the operations enforce tenant ownership and roles. Attestation
 * credentials are not verified (no attestation is offered).
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

#include "kmip/kmip_int.h"

#define AUTH_COMPONENT "auth"
#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32
#define AUTH_CACHE_TTL_US (300LL * 1000000)
#define AUTH_MAX_PASSWORD 1024

static atomic_uint_fast64_t g_auth_instances;

static const char *nz(const char *s)
{
    return s && *s ? s : "-";
}

/* ------------------------------------------------------------ passwords */
/* Argon2id cost with the defaults filled in (OWASP: t=2, m=19 MiB, p=1). */
static kmip_password_cost_t cost_of(const kmip_password_cost_t *c)
{
    kmip_password_cost_t r = {2, 19 * 1024, 1};
    if (c && c->t_cost)
        r.t_cost = c->t_cost;
    if (c && c->m_kib)
        r.m_kib = c->m_kib;
    if (c && c->parallelism)
        r.parallelism = c->parallelism;
    return r;
}

int kmip_password_hash(const kmip_password_cost_t *cost, const char *password, char *out,
                       size_t outlen)
{
    if (!password || !out)
        return KMS_ERR_INVAL;
    size_t plen = strlen(password);
    if (plen == 0 || plen > AUTH_MAX_PASSWORD)
        return KMS_ERR_INVAL;
    kmip_password_cost_t c = cost_of(cost);
    unsigned char salt[AUTH_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return KMS_ERR_CRYPTO;
    size_t need = argon2_encodedlen(c.t_cost, c.m_kib, c.parallelism, AUTH_SALT_LEN,
                                    AUTH_HASH_LEN, Argon2_id);
    if (need > outlen || need > sizeof(((store_client_t *)0)->password_hash))
        return KMS_ERR_LIMIT;
    int rc = argon2id_hash_encoded(c.t_cost, c.m_kib, c.parallelism, password, plen, salt,
                                   sizeof(salt), AUTH_HASH_LEN, out, outlen);
    if (rc != ARGON2_OK) {
        kms_log(KMS_LOG_ERROR, AUTH_COMPONENT, "argon2id: %s", argon2_error_message(rc));
        return KMS_ERR_CRYPTO;
    }
    return 0;
}

/* ------------------------------------------------- verification cache */
static void cache_tag(const kmip_auth_t *a, const char *name, const char *password,
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

static bool cache_hit(kmip_auth_t *a, const unsigned char tag[32])
{
    static const unsigned char zero[32];
    if (CRYPTO_memcmp(tag, zero, 32) == 0)
        return false;
    int64_t now = kms_now_us();
    bool hit = false;
    pthread_mutex_lock(&a->mu);
    kmip_pw_cache_entry_t *e = &a->cache[tag[0] % KMIP_PW_CACHE_SLOTS];
    if (e->used && e->expires_us > now && CRYPTO_memcmp(e->tag, tag, 32) == 0)
        hit = true;
    pthread_mutex_unlock(&a->mu);
    return hit;
}

static void cache_put(kmip_auth_t *a, const unsigned char tag[32])
{
    pthread_mutex_lock(&a->mu);
    kmip_pw_cache_entry_t *e = &a->cache[tag[0] % KMIP_PW_CACHE_SLOTS];
    memcpy(e->tag, tag, 32);
    e->expires_us = kms_now_us() + AUTH_CACHE_TTL_US;
    e->used = true;
    pthread_mutex_unlock(&a->mu);
}

/* ----------------------------------------------------------- lifetime */
int kmip_auth_init(kmip_server_t *s)
{
    kmip_auth_t *a = &s->auth;
    a->instance = atomic_fetch_add(&g_auth_instances, 1) + 1;
    if (s->cfg.access != KMIP_ACCESS_OPEN) {
        /* The cache key, and the hash unknown users are verified against:
         * the same cost, the same time. */
        unsigned char rnd[24];
        char dummy_pw[49];
        if (RAND_bytes(a->cache_key, sizeof(a->cache_key)) != 1 ||
            RAND_bytes(rnd, sizeof(rnd)) != 1)
            return KMS_ERR_CRYPTO;
        kms_hex_encode(rnd, sizeof(rnd), dummy_pw);
        int rc = kmip_password_hash(&s->cfg.password_cost, dummy_pw, a->dummy_hash,
                                    sizeof(a->dummy_hash));
        kms_wipe(dummy_pw, sizeof(dummy_pw));
        kms_wipe(rnd, sizeof(rnd));
        if (rc)
            return rc;
    }
    return pthread_mutex_init(&a->mu, NULL) == 0 ? 0 : KMS_ERR_NOMEM;
}

void kmip_auth_dispose(kmip_server_t *s)
{
    pthread_mutex_destroy(&s->auth.mu);
    OPENSSL_cleanse(&s->auth, sizeof(s->auth));
}

/* --------------------------------------------------------- certificates */
/* The registered certificate client for this peer, if any: by fingerprint,
 * else by CN for a client registered by CN only. 0, NOTFOUND or UNAVAIL. */
static int find_cert_client(store_reader_t *r, const kmip_peer_t *peer, store_client_t *c)
{
    int rc;
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
    uint64_t owner;            /* kmip_auth_t instance; 0 = empty */
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

/* find_cert_client() through the calling thread's cache. */
static int find_cert_client_cached(kmip_server_t *s, const kmip_peer_t *peer, store_client_t *c)
{
    const char *fp = peer->cert_sha256 ? peer->cert_sha256 : "";
    const char *cn = peer->cert_cn ? peer->cert_cn : "";
    bool cacheable = strlen(fp) < sizeof(((cert_cache_entry_t *)0)->fp) &&
                     strlen(cn) < sizeof(((cert_cache_entry_t *)0)->cn);
    uint64_t gen = store_clients_generation(s->cfg.store); /* before the read */
    cert_cache_entry_t *e = cert_slot(peer);
    if (cacheable && e->owner == s->auth.instance && e->gen == gen && strcmp(e->fp, fp) == 0 &&
        strcmp(e->cn, cn) == 0) {
        if (e->rc == 0)
            *c = e->client;
        return e->rc;
    }
    store_reader_t *r = kmip_thread_reader(s);
    if (!r)
        return KMS_ERR_UNAVAIL;
    int rc = find_cert_client(r, peer, c);
    if (cacheable && (rc == 0 || rc == KMS_ERR_NOTFOUND)) {
        e->owner = s->auth.instance;
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

static void log_disabled(const kmip_peer_t *peer, const store_client_t *c)
{
    kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
            "refused %s: certificate CN=%s sha256=%s is client '%s', which is disabled "
            "(kmsctl client enable %s)",
            nz(peer->address), nz(peer->cert_cn), nz(peer->cert_sha256), c->name, c->name);
}

static void log_unregistered(const kmip_peer_t *peer)
{
    kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
            "refused %s: certificate CN=%s sha256=%s is signed by the client CA but not "
            "registered; register it with: kmsctl client add --tenant TENANT --cert FILE",
            nz(peer->address), nz(peer->cert_cn), nz(peer->cert_sha256));
}

int kmip_cert_registered(kmip_server_t *s, const char *sha256_hex, const char *cn)
{
    if (!s)
        return KMS_ERR_INVAL;
    kmip_peer_t peer = {.cert_sha256 = sha256_hex, .cert_cn = cn, .address = NULL};
    store_client_t c;
    int rc = find_cert_client_cached(s, &peer, &c);
    if (rc == KMS_ERR_NOTFOUND) {
        log_unregistered(&peer);
        return KMS_ERR_PERM;
    }
    if (rc == 0 && c.disabled) {
        log_disabled(&peer, &c);
        return KMS_ERR_PERM;
    }
    return rc;
}

static void fill_identity(const store_client_t *c, kmip_identity_t *id);

int kmip_identify_cert(kmip_server_t *s, const kmip_peer_t *peer, kmip_identity_t *id_out)
{
    if (!s || !peer || !id_out)
        return KMS_ERR_INVAL;
    memset(id_out, 0, sizeof(*id_out));
    store_client_t c;
    int rc = find_cert_client_cached(s, peer, &c);
    if (rc == KMS_ERR_NOTFOUND || (rc == 0 && c.disabled))
        return KMS_ERR_PERM;
    if (rc == 0)
        fill_identity(&c, id_out);
    return rc;
}

/* ------------------------------------------------------------ identity */
/* The Argon2id step of a Credential. `why` NULL: verify `password` against
 * the registered client *c (through the cache). Otherwise the credential is
 * refused for `why` (logged), after the same Argon2id work against the
 * dummy hash, so that unknown names and mismatched devices cannot be told
 * from a wrong password by timing. `who` names the credential in logs.
 * 0 or PERM. */
static int verify_secret(kmip_auth_t *a, const kmip_peer_t *peer, const store_client_t *c,
                         const char *password, const char *who, const char *why)
{
    size_t plen = password ? strlen(password) : 0;
    bool usable = plen > 0 && plen <= AUTH_MAX_PASSWORD;
    if (why || !usable) {
        if (usable)
            (void)argon2id_verify(a->dummy_hash, password, plen);
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT, "refused %s: %s %s", nz(peer->address), who,
                why ? why : "sent an empty or oversized password");
        return KMS_ERR_PERM;
    }
    unsigned char tag[32];
    cache_tag(a, c->name, password, c->password_hash, tag);
    if (cache_hit(a, tag))
        return 0;
    if (argon2id_verify(c->password_hash, password, plen) != ARGON2_OK) {
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT, "refused %s: wrong password for %s",
                nz(peer->address), who);
        return KMS_ERR_PERM;
    }
    cache_put(a, tag);
    return 0;
}

/* Verify a password client. 0, PERM or UNAVAIL. */
static int check_password(kmip_server_t *s, const kmip_peer_t *peer, const char *username,
                          const char *password, store_client_t *c)
{
    store_reader_t *r = kmip_thread_reader(s);
    if (!r)
        return KMS_ERR_UNAVAIL;
    int rc = store_client_by_name(r, username, c);
    if (rc != 0 && rc != KMS_ERR_NOTFOUND)
        return KMS_ERR_UNAVAIL;
    bool known = rc == 0 && strcmp(c->kind, "password") == 0 && c->password_hash[0];
    char who[200];
    snprintf(who, sizeof who, "user '%s'", username);
    return verify_secret(&s->auth, peer, c, password, who,
                         !known        ? "is not a registered password client"
                         : c->disabled ? "is disabled (kmsctl client enable)"
                                       : NULL);
}

/* The first identifier a device client registered that the credential
 * does not carry with the same value, or NULL. Identifiers it did not
 * register are not compared. They are not secrets: a plain comparison. */
static const char *device_mismatch(const store_device_t *reg, const kmip_device_cred_t *dev)
{
    const struct {
        const char *want, *got, *name;
    } f[4] = {{reg->device_id, dev->device_id, "Device Identifier"},
              {reg->network_id, dev->network_id, "Network Identifier"},
              {reg->machine_id, dev->machine_id, "Machine Identifier"},
              {reg->media_id, dev->media_id, "Media Identifier"}};
    for (size_t i = 0; i < 4; i++)
        if (f[i].want[0] && (!f[i].got || strcmp(f[i].want, f[i].got) != 0))
            return f[i].name;
    return NULL;
}

/* Verify a device client (kmip_identify_device). 0, PERM or UNAVAIL. */
static int check_device(kmip_server_t *s, const kmip_peer_t *peer, const kmip_device_cred_t *dev,
                        store_client_t *c)
{
    store_reader_t *r = kmip_thread_reader(s);
    if (!r)
        return KMS_ERR_UNAVAIL;
    const char *serial = dev->serial ? dev->serial : "";
    int rc = *serial ? store_client_by_device(r, serial, c) : KMS_ERR_NOTFOUND;
    if (rc != 0 && rc != KMS_ERR_NOTFOUND)
        return KMS_ERR_UNAVAIL;
    store_device_t reg;
    bool known = rc == 0 && c->password_hash[0] && store_client_device(c, &reg) == 0;
    const char *field = known ? device_mismatch(&reg, dev) : NULL;
    char who[200], why[80];
    if (known)
        snprintf(who, sizeof who, "device '%s' (serial number '%s')", c->name, serial);
    else
        snprintf(who, sizeof who, "device serial number '%s'", serial);
    if (field)
        snprintf(why, sizeof why, "sent a %s that does not match its registration", field);
    return verify_secret(&s->auth, peer, c, dev->password, who,
                         !*serial      ? "sent no Device Serial Number"
                         : !known      ? "is not a registered device client"
                         : c->disabled ? "is disabled (kmsctl client enable)"
                         : field       ? why
                                       : NULL);
}

static void fill_identity(const store_client_t *c, kmip_identity_t *id)
{
    kms_strlcpy(id->name, c->name, sizeof(id->name));
    kms_strlcpy(id->tenant, c->tenant, sizeof(id->tenant));
    id->role = strcmp(c->role, "admin") == 0 ? KMIP_ROLE_ADMIN : KMIP_ROLE_CLIENT;
}

int kmip_identity_recheck(kmip_server_t *s, kmip_identity_t *id)
{
    if (!s || !id)
        return KMS_ERR_INVAL;
    if (s->cfg.access == KMIP_ACCESS_OPEN)
        return 0;
    store_reader_t *r = kmip_thread_reader(s);
    if (!r)
        return KMS_ERR_UNAVAIL;
    store_client_t c;
    int rc = store_client_by_name(r, id->name, &c);
    kms_wipe(c.password_hash, sizeof c.password_hash);
    if (rc == KMS_ERR_NOTFOUND || (rc == 0 && (c.disabled || strcmp(c.tenant, id->tenant) != 0)))
        return KMS_ERR_PERM;
    if (rc != 0)
        return KMS_ERR_UNAVAIL;
    kmip_identity_t now;
    fill_identity(&c, &now);
    if (now.role < id->role)
        id->role = now.role;
    return 0;
}

/* kmip_identify_all: a certificate and/or up to KMIP_MAX_CREDENTIALS
 * Credentials. Each Credential is verified (verify_secret's Argon2id work
 * whatever the outcome), then every verified client is held against the
 * first: one tenant, the lesser role. */
int kmip_identify_all(kmip_server_t *s, const kmip_peer_t *peer, const kmip_credential_t *creds,
                      size_t n, kmip_identity_t *id_out)
{
    static const kmip_peer_t nopeer = {NULL, NULL, NULL};
    if (!s || !id_out || (n && !creds))
        return KMS_ERR_PERM;
    if (!peer)
        peer = &nopeer;
    memset(id_out, 0, sizeof(*id_out));
    if (n > KMIP_MAX_CREDENTIALS) {
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT, "refused %s: %zu credentials (at most %d)",
                nz(peer->address), n, KMIP_MAX_CREDENTIALS);
        return KMS_ERR_PERM;
    }
    bool has_cert = (peer->cert_sha256 && *peer->cert_sha256) || (peer->cert_cn && *peer->cert_cn);
    if (!has_cert && n == 0) {
        kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
                "refused %s: no client certificate and no credential", nz(peer->address));
        return KMS_ERR_PERM;
    }
    int rc = 0;
    store_client_t cc, pc, ref;
    bool admin = true, have_ref = false;
    if (has_cert) {
        rc = find_cert_client_cached(s, peer, &cc);
        if (rc == KMS_ERR_NOTFOUND) {
            log_unregistered(peer);
            rc = KMS_ERR_PERM;
        } else if (rc == 0 && cc.disabled) {
            log_disabled(peer, &cc);
            rc = KMS_ERR_PERM;
        }
        if (rc == 0) {
            ref = cc;
            have_ref = true;
            admin = strcmp(cc.role, "admin") == 0;
        }
    }
    /* A refused certificate ends it before any Argon2id work: the peer
     * knows its own certificate, so the time tells it nothing. */
    bool cert_ok = rc == 0;
    for (size_t i = 0; i < n && cert_ok && rc != KMS_ERR_UNAVAIL; i++) {
        const kmip_credential_t *c = &creds[i];
        const char *user = c->username ? c->username : "";
        int r1 = c->device ? check_device(s, peer, &c->dev, &pc)
                           : check_password(s, peer, user, c->password, &pc);
        if (r1 == 0 && have_ref && strcmp(pc.tenant, ref.tenant) != 0) {
            kms_log(KMS_LOG_WARN, AUTH_COMPONENT,
                    "refused %s: credential of %s client '%s' (tenant %s) with the %s of '%s' "
                    "(tenant %s)",
                    nz(peer->address), pc.kind, pc.name, pc.tenant,
                    strcmp(ref.kind, "cert") == 0 ? "certificate" : "credential", ref.name,
                    ref.tenant);
            r1 = KMS_ERR_PERM;
        }
        if (r1 == 0) {
            admin = admin && strcmp(pc.role, "admin") == 0;
            if (i == 0)
                fill_identity(&pc, id_out);
            if (!have_ref) {
                ref = pc;
                have_ref = true;
            }
        }
        if (rc == 0 || r1 == KMS_ERR_UNAVAIL)
            rc = r1;
        kms_wipe(pc.password_hash, sizeof pc.password_hash);
    }
    if (rc == 0 && n == 0)
        fill_identity(&cc, id_out);
    if (rc == 0)
        id_out->role = admin ? KMIP_ROLE_ADMIN : KMIP_ROLE_CLIENT;
    if (rc == KMS_ERR_UNAVAIL)
        kms_log(KMS_LOG_ERROR, AUTH_COMPONENT, "cannot read the clients table");
    if (rc)
        memset(id_out, 0, sizeof(*id_out));
    if (have_ref)
        kms_wipe(ref.password_hash, sizeof ref.password_hash);
    return rc;
}

int kmip_identify(kmip_server_t *s, const kmip_peer_t *peer, const char *username,
                  const char *password, kmip_identity_t *id_out)
{
    kmip_credential_t c = {.username = username, .password = password};
    return kmip_identify_all(s, peer, &c, username && *username ? 1 : 0, id_out);
}

int kmip_identify_device(kmip_server_t *s, const kmip_peer_t *peer, const kmip_device_cred_t *dev,
                         kmip_identity_t *id_out)
{
    kmip_credential_t c = {.device = true};
    if (dev)
        c.dev = *dev;
    return kmip_identify_all(s, peer, &c, 1, id_out);
}
