/*
 * admin/cmds.c: what the admin socket's commands do.
 *
 * status, tenant.add|list|remove, client.add|list|remove|disable|enable,
 * audit.status,
 * backup.create|restore (backup.c), rotate.master|store-key|status (keys/),
 * cluster.invite|status|verify|remove (cluster.c).
 * Each takes a decoded ADMIN_REQUEST and builds an ADMIN_RESPONSE of
 * records; every command, refused or not, leaves an audit record naming
 * the local caller (never a password, never a hash). Certificates to
 * register must chain to tls.client_ca; their fingerprint and CN come from
 * certs/.
 *
 * It deliberately does no socket I/O (admin/socket.c does) and holds no
 * state between requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "admin/admin_int.h"
#include "certs/certs.h"
#include "keys/keys.h"

#ifndef KMSD_VERSION
#define KMSD_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------- helpers */
const char *admin_arg_text(const admin_req_t *r, uint32_t tag)
{
    const ttlv_item_t *it = ttlv_find(r->req, tag);
    return it && it->type == TTLV_TEXT_STRING ? ttlv_text(it) : NULL;
}

static bool arg_bool(const admin_req_t *r, uint32_t tag)
{
    const ttlv_item_t *it = ttlv_find(r->req, tag);
    return it && it->type == TTLV_BOOLEAN && it->v.b;
}

ttlv_item_t *admin_rec_new(admin_req_t *r)
{
    return ttlv_new_struct(r->a, r->resp, ADMIN_TAG_RECORD);
}

int admin_field_text(admin_req_t *r, ttlv_item_t *rec, const char *name, const char *v)
{
    ttlv_item_t *f = ttlv_new_struct(r->a, rec, ADMIN_TAG_FIELD);
    if (!f || !ttlv_new_textz(r->a, f, ADMIN_TAG_FIELD_NAME, name) ||
        !ttlv_new_textz(r->a, f, ADMIN_TAG_FIELD_TEXT, v ? v : ""))
        return KMS_ERR_NOMEM;
    return 0;
}

int admin_field_long(admin_req_t *r, ttlv_item_t *rec, const char *name, int64_t v)
{
    ttlv_item_t *f = ttlv_new_struct(r->a, rec, ADMIN_TAG_FIELD);
    if (!f || !ttlv_new_textz(r->a, f, ADMIN_TAG_FIELD_NAME, name) ||
        !ttlv_new_long(r->a, f, ADMIN_TAG_FIELD_LONG, v))
        return KMS_ERR_NOMEM;
    return 0;
}

int admin_field_bool(admin_req_t *r, ttlv_item_t *rec, const char *name, bool v)
{
    ttlv_item_t *f = ttlv_new_struct(r->a, rec, ADMIN_TAG_FIELD);
    if (!f || !ttlv_new_textz(r->a, f, ADMIN_TAG_FIELD_NAME, name) ||
        !ttlv_new_bool(r->a, f, ADMIN_TAG_FIELD_BOOL, v))
        return KMS_ERR_NOMEM;
    return 0;
}

int admin_refuse(admin_req_t *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return rc;
}

static bool name_ok(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) >= max)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int commit(admin_req_t *r, store_write_t *w)
{
    return store_commit(r->opt->store, w, NULL, 0);
}

/* Objects of a tenant (on-line and archived), at most `max` ids. */
static int tenant_objects(store_reader_t *rd, kms_arena_t *a, const char *tenant, size_t max,
                          char ***ids, size_t *n)
{
    store_query_t q = {.tenant = tenant, .want_online = true, .want_archived = true,
                       .max_items = max};
    return store_locate(rd, &q, a, ids, n);
}

/* ------------------------------------------------------------ commands */
static int adm_status(admin_req_t *r, store_reader_t *rd)
{
    admin_status_t st = {.connections = -1, .requests = -1, .hsm = NULL, .hsm_health = 1,
                         .listen = NULL, .unauthenticated = -1, .refused = -1, .evicted = -1,
                         .memory_waits = -1, .cancelled = -1, .tenant_waits = -1,
                         .audit_refused = -1, .request_memory = -1};
    if (r->opt->status_cb)
        r->opt->status_cb(r->opt->status_arg, &st);
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec)
        return KMS_ERR_NOMEM;
    int64_t objects = store_count_objects(rd);
    char **tenants = NULL;
    size_t nt = 0;
    store_client_t *clients = NULL;
    size_t nc = 0;
    int trc = store_list_tenants(rd, r->a, &tenants, &nt);
    int crc = store_list_clients(rd, r->a, &clients, &nc);
    bool store_ok = objects >= 0 && trc == 0 && crc == 0;
    bool hsm_ok = st.hsm_health <= 0 ? st.hsm_health == 0 : true;
    audit_t *au = r->opt->audit;
    audit_status_t ast;
    bool audit_ok = !au || (audit_get_status(au, &ast) == 0 && ast.errors == 0);
    const char *health = store_ok && hsm_ok && audit_ok ? "ok" : "degraded";
    int rc = 0;
    rc |= admin_field_text(r, rec, "version", r->opt->version ? r->opt->version : KMSD_VERSION);
    rc |= admin_field_text(r, rec, "health", health);
    rc |= admin_field_long(r, rec, "pid", (int64_t)getpid());
    rc |= admin_field_long(r, rec, "uptime_s", (kms_now_us() - r->started_us) / 1000000);
    rc |= admin_field_text(r, rec, "node_id", store_node_id(r->opt->store));
    rc |= admin_field_long(r, rec, "objects", objects);
    rc |= admin_field_long(r, rec, "tenants", trc == 0 ? (int64_t)nt : -1);
    rc |= admin_field_long(r, rec, "clients", crc == 0 ? (int64_t)nc : -1);
    rc |= admin_field_long(r, rec, "connections", st.connections);
    rc |= admin_field_long(r, rec, "requests", st.requests);
    rc |= admin_field_long(r, rec, "unauthenticated", st.unauthenticated);
    rc |= admin_field_long(r, rec, "refused", st.refused);
    rc |= admin_field_long(r, rec, "evicted", st.evicted);
    rc |= admin_field_long(r, rec, "memory_waits", st.memory_waits);
    rc |= admin_field_long(r, rec, "cancelled", st.cancelled);
    rc |= admin_field_long(r, rec, "tenant_waits", st.tenant_waits);
    rc |= admin_field_long(r, rec, "audit_refused", st.audit_refused);
    rc |= admin_field_long(r, rec, "request_memory", st.request_memory);
    rc |= admin_field_text(r, rec, "listen", st.listen ? st.listen : "");
    rc |= admin_field_text(r, rec, "hsm", st.hsm ? st.hsm : "");
    rc |= admin_field_text(r, rec, "hsm_state",
                     st.hsm_health == 1 ? "unknown" : st.hsm_health == 0 ? "ok" : kms_strerror(st.hsm_health));
    rc |= admin_field_text(r, rec, "store", store_ok ? "ok" : "error");
    rc |= admin_field_text(r, rec, "audit", au ? (audit_ok ? "ok" : "error") : "off");
    return rc ? KMS_ERR_NOMEM : 0;
}

static int adm_tenant_add(admin_req_t *r, store_reader_t *rd)
{
    const char *t = admin_arg_text(r, ADMIN_TAG_ARG_TENANT);
    r->target = r->tenant = t;
    if (!name_ok(t, 64))
        return admin_refuse(r, KMS_ERR_INVAL, "a tenant name (1-63 printable characters) is required");
    if (store_tenant_exists(rd, t) == 0)
        return admin_refuse(r, KMS_ERR_EXISTS, "tenant '%s' already exists", t);
    store_write_t *w = store_write_new();
    if (!w)
        return KMS_ERR_NOMEM;
    int rc = store_write_tenant(w, t, false);
    if (!rc)
        rc = commit(r, w);
    store_write_free(w);
    if (rc == KMS_ERR_EXISTS)
        return admin_refuse(r, rc, "tenant '%s' already exists", t);
    if (rc)
        return admin_refuse(r, rc, "cannot add tenant '%s': %s", t, kms_strerror(rc));
    ttlv_item_t *rec = admin_rec_new(r);
    return rec && !admin_field_text(r, rec, "tenant", t) ? 0 : KMS_ERR_NOMEM;
}

static int adm_tenant_list(admin_req_t *r, store_reader_t *rd)
{
    char **tenants = NULL;
    size_t nt = 0;
    store_client_t *clients = NULL;
    size_t nc = 0;
    int rc = store_list_tenants(rd, r->a, &tenants, &nt);
    if (!rc)
        rc = store_list_clients(rd, r->a, &clients, &nc);
    if (rc)
        return admin_refuse(r, rc, "cannot read tenants: %s", kms_strerror(rc));
    for (size_t i = 0; i < nt; i++) {
        int64_t ncl = 0;
        for (size_t j = 0; j < nc; j++)
            ncl += strcmp(clients[j].tenant, tenants[i]) == 0;
        /* Counted in the index: a tenant of any size costs no memory. */
        int64_t no = store_count_tenant_objects(rd, tenants[i]);
        if (no < 0)
            return admin_refuse(r, (int)no, "cannot count objects of '%s': %s", tenants[i],
                                kms_strerror((int)no));
        ttlv_item_t *rec = admin_rec_new(r);
        if (!rec || admin_field_text(r, rec, "tenant", tenants[i]) || admin_field_long(r, rec, "clients", ncl) ||
            admin_field_long(r, rec, "objects", no))
            return KMS_ERR_NOMEM;
    }
    return 0;
}

/* Objects deleted per commit when a tenant is removed. */
#define TENANT_DELETE_BATCH 1000

/* Delete every object of tenant t, TENANT_DELETE_BATCH per commit (each
 * batch read in a fresh arena, so a tenant of any size costs the same
 * memory), logging progress every 20 batches. *done_out: how many. */
static int delete_tenant_objects(admin_req_t *r, store_reader_t *rd, const char *t, int64_t total,
                                 int64_t *done_out)
{
    int rc = 0;
    int64_t done = 0;
    unsigned batches = 0;
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMS_ERR_NOMEM;
    for (;;) {
        char **ids = NULL;
        size_t n = 0;
        kms_arena_reset(a);
        rc = tenant_objects(rd, a, t, TENANT_DELETE_BATCH, &ids, &n);
        if (rc || n == 0)
            break;
        store_write_t *w = store_write_new();
        if (!w) {
            rc = KMS_ERR_NOMEM;
            break;
        }
        for (size_t i = 0; i < n && !rc; i++)
            rc = store_write_delete(w, ids[i], STORE_VERSION_ANY);
        if (!rc)
            rc = commit(r, w);
        store_write_free(w);
        if (rc)
            break;
        done += (int64_t)n;
        if (++batches % 20 == 0)
            kms_log(KMS_LOG_INFO, "admin", "%s: removing tenant '%s': %lld of %lld objects deleted",
                    r->who, t, (long long)done, (long long)total);
    }
    kms_arena_free(a);
    *done_out = done;
    return rc;
}

static int adm_tenant_remove(admin_req_t *r, store_reader_t *rd)
{
    const char *t = admin_arg_text(r, ADMIN_TAG_ARG_TENANT);
    bool force = arg_bool(r, ADMIN_TAG_ARG_FORCE);
    r->target = r->tenant = t;
    if (!name_ok(t, 64))
        return admin_refuse(r, KMS_ERR_INVAL, "a tenant name is required");
    if (store_tenant_exists(rd, t) != 0)
        return admin_refuse(r, KMS_ERR_NOTFOUND, "no tenant '%s'", t);
    store_client_t *clients = NULL;
    size_t nc = 0, mine = 0;
    int64_t no = store_count_tenant_objects(rd, t);
    int rc = no < 0 ? (int)no : store_list_clients(rd, r->a, &clients, &nc);
    if (rc)
        return admin_refuse(r, rc, "cannot read tenant '%s': %s", t, kms_strerror(rc));
    for (size_t j = 0; j < nc; j++)
        mine += strcmp(clients[j].tenant, t) == 0;
    if ((no || mine) && !force)
        return admin_refuse(r, KMS_ERR_STATE,
                    "tenant '%s' still owns %lld object(s) and has %zu client(s); remove them "
                    "first, or use --force to delete them all permanently",
                    t, (long long)no, mine);
    /* The objects in batches (a tenant may own millions), then its clients
     * and the tenant in one transaction. Cut short (an error, a crash),
     * the tenant stays with fewer objects, and the command can be run
     * again. */
    int64_t deleted = 0;
    rc = delete_tenant_objects(r, rd, t, no, &deleted);
    store_write_t *w = rc ? NULL : store_write_new();
    if (!rc && !w)
        rc = KMS_ERR_NOMEM;
    for (size_t j = 0; j < nc && !rc; j++)
        if (strcmp(clients[j].tenant, t) == 0)
            rc = store_write_client(w, &clients[j], true);
    if (!rc)
        rc = store_write_tenant(w, t, true);
    if (!rc)
        rc = commit(r, w);
    store_write_free(w);
    if (rc == KMS_ERR_STATE)
        return admin_refuse(r, rc, "tenant '%s' still owns objects or clients (changed meanwhile?)", t);
    if (rc)
        return admin_refuse(r, rc, "cannot remove tenant '%s' (%lld object(s) deleted so far): %s",
                            t, (long long)deleted, kms_strerror(rc));
    if (deleted || mine)
        kms_log(KMS_LOG_WARN, "admin", "%s force-removed tenant '%s': %lld object(s), %zu client(s) deleted",
                r->who, t, (long long)deleted, mine);
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "tenant", t) || admin_field_long(r, rec, "objects_deleted", deleted) ||
        admin_field_long(r, rec, "clients_deleted", (int64_t)mine))
        return KMS_ERR_NOMEM;
    return 0;
}

/* Parse a PEM certificate from the request and check it against the CA. */
static int load_cert(admin_req_t *r, const ttlv_item_t *pem, char fp[65], char *cn, size_t cnlen)
{
    X509 *cert = NULL;
    BIO *bio = BIO_new_mem_buf(pem->v.bytes.ptr, (int)pem->v.bytes.len);
    int rc = KMS_ERR_NOMEM;
    if (!bio || pem->v.bytes.len > INT32_MAX)
        goto out;
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!cert) {
        rc = admin_refuse(r, KMS_ERR_INVAL, "not a PEM certificate");
        goto out;
    }
    if (r->opt->client_ca && *r->opt->client_ca) {
        kms_error_t err;
        kms_error_clear(&err);
        rc = certs_verify_file(r->opt->client_ca, cert, X509_PURPOSE_SSL_CLIENT, &err);
        if (rc == KMS_ERR_IO || rc == KMS_ERR_NOMEM) {
            rc = admin_refuse(r, KMS_ERR_CONFIG, "cannot read tls.client_ca %s", r->opt->client_ca);
            goto out;
        }
        if (rc != 0) {
            rc = admin_refuse(r, KMS_ERR_INVAL,
                      "the certificate does not chain to tls.client_ca (%s): %s; kmsd would "
                      "refuse it at the handshake", r->opt->client_ca, kms_error_msg(&err));
            goto out;
        }
    }
    rc = certs_fingerprint_sha256(cert, fp);
    if (rc) {
        rc = admin_refuse(r, rc, "cannot fingerprint the certificate");
        goto out;
    }
    rc = certs_subject_cn(cert, cn, cnlen);
    if (rc == KMS_ERR_NOTFOUND) {
        cn[0] = '\0';
        rc = 0;
    } else if (rc) {
        rc = admin_refuse(r, KMS_ERR_INVAL, "the certificate's subject CN is unusable");
    }
out:
    X509_free(cert);
    BIO_free(bio);
    return rc;
}

/* The answer of client.add and one row of client.list: what identifies the
 * client (for a device its identifiers), never a password or a hash. */
static int client_record(admin_req_t *r, const store_client_t *c, bool created)
{
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "name", c->name) ||
        admin_field_text(r, rec, "tenant", c->tenant) ||
        admin_field_text(r, rec, "role", c->role) || admin_field_text(r, rec, "kind", c->kind))
        return KMS_ERR_NOMEM;
    store_device_t d;
    if (store_client_device(c, &d) == 0) {
        const char *names[5] = {"device_serial", "device_id", "network_id", "machine_id",
                                "media_id"};
        const char *vals[5] = {d.serial, d.device_id, d.network_id, d.machine_id, d.media_id};
        for (int i = 0; i < 5; i++)
            if (vals[i][0] && admin_field_text(r, rec, names[i], vals[i]))
                return KMS_ERR_NOMEM;
    } else if (admin_field_text(r, rec, "cert_sha256", c->cert_sha256)) {
        return KMS_ERR_NOMEM;
    }
    if (created && admin_field_long(r, rec, "created", c->created_us / 1000000))
        return KMS_ERR_NOMEM;
    if (!created)
        return 0;
    /* The state; when and why only for a disabled client. */
    if (admin_field_text(r, rec, "state", c->disabled ? "disabled" : "enabled") ||
        (c->disabled && (admin_field_long(r, rec, "disabled_at", c->disabled_us / 1000000) ||
                         admin_field_text(r, rec, "disabled_reason", c->disabled_reason))))
        return KMS_ERR_NOMEM;
    return 0;
}

/* client.add of a device client: the KMIP Device credential's identifiers
 * (the serial number required, the others optional), a password, a name. */
static int adm_device_add(admin_req_t *r, store_reader_t *rd, const char *tenant, const char *name,
                          const char *role, const char *pw)
{
    store_client_t c;
    memset(&c, 0, sizeof(c));
    if (!name_ok(name, sizeof(c.name)))
        return admin_refuse(r, KMS_ERR_INVAL, "a device client needs --name");
    if (!pw || !*pw)
        return admin_refuse(r, KMS_ERR_INVAL, "a device client needs a non-empty password");
    if (ttlv_find(r->req, ADMIN_TAG_ARG_CERT_PEM) || ttlv_find(r->req, ADMIN_TAG_ARG_BY_CN))
        return admin_refuse(r, KMS_ERR_INVAL, "a device client has no certificate");
    store_device_t d;
    memset(&d, 0, sizeof(d));
    const struct {
        uint32_t tag;
        char *dst;
        const char *flag;
    } f[5] = {{ADMIN_TAG_ARG_DEVICE_SERIAL, d.serial, "--device-serial"},
              {ADMIN_TAG_ARG_DEVICE_ID, d.device_id, "--device-id"},
              {ADMIN_TAG_ARG_NETWORK_ID, d.network_id, "--network-id"},
              {ADMIN_TAG_ARG_MACHINE_ID, d.machine_id, "--machine-id"},
              {ADMIN_TAG_ARG_MEDIA_ID, d.media_id, "--media-id"}};
    for (int i = 0; i < 5; i++) {
        const ttlv_item_t *it = ttlv_find(r->req, f[i].tag);
        if (it && it->type != TTLV_TEXT_STRING)
            return admin_refuse(r, KMS_ERR_INVAL, "malformed %s argument", f[i].flag);
        const char *v = it ? ttlv_text(it) : NULL;
        if (v && (!*v || strlen(v) > STORE_DEVICE_FIELD_MAX))
            return admin_refuse(r, KMS_ERR_INVAL, "%s must be 1-%d characters", f[i].flag,
                                STORE_DEVICE_FIELD_MAX);
        if (v)
            memcpy(f[i].dst, v, strlen(v) + 1);
    }
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant);
    snprintf(c.role, sizeof(c.role), "%s", role);
    c.created_us = kms_now_us();
    if (store_client_set_device(&c, &d) != 0)
        return admin_refuse(r, KMS_ERR_INVAL, "device identifiers must be printable text");
    store_client_t other;
    if (store_client_by_device(rd, d.serial, &other) == 0)
        return admin_refuse(r, KMS_ERR_EXISTS,
                            "device serial number '%s' is already registered as '%s' (tenant %s)",
                            d.serial, other.name, other.tenant);
    if (store_client_by_name(rd, c.name, &other) == 0)
        return admin_refuse(r, KMS_ERR_EXISTS,
                            "a client named '%s' already exists (tenant %s); remove it first",
                            c.name, other.tenant);
    int rc = kmip_password_hash(&r->opt->password_cost, pw, c.password_hash,
                                sizeof(c.password_hash));
    if (rc)
        return admin_refuse(r, rc, "cannot hash the password: %s", kms_strerror(rc));
    store_write_t *w = store_write_new();
    if (!w) {
        rc = KMS_ERR_NOMEM;
        goto out;
    }
    rc = store_write_client(w, &c, false);
    if (!rc)
        rc = commit(r, w);
    store_write_free(w);
    if (rc) {
        rc = admin_refuse(r, rc, "cannot add device client '%s': %s", c.name, kms_strerror(rc));
        goto out;
    }
    rc = client_record(r, &c, false);
out:
    kms_wipe(c.password_hash, sizeof(c.password_hash));
    return rc;
}

static int adm_client_add(admin_req_t *r, store_reader_t *rd)
{
    const char *t = admin_arg_text(r, ADMIN_TAG_ARG_TENANT);
    const char *name = admin_arg_text(r, ADMIN_TAG_ARG_NAME);
    const char *role = admin_arg_text(r, ADMIN_TAG_ARG_ROLE);
    const ttlv_item_t *pwi = ttlv_find(r->req, ADMIN_TAG_ARG_PASSWORD);
    const char *pw = pwi && pwi->type == TTLV_TEXT_STRING ? ttlv_text(pwi) : NULL;
    const ttlv_item_t *pem = ttlv_find(r->req, ADMIN_TAG_ARG_CERT_PEM);
    const ttlv_item_t *bycn = ttlv_find(r->req, ADMIN_TAG_ARG_BY_CN);
    bool by_cn = bycn && bycn->type == TTLV_BOOLEAN && bycn->v.b;
    r->tenant = t;
    r->target = name;
    store_client_t c;
    memset(&c, 0, sizeof(c));
    char cn[128]; /* `name` may point here: same scope as its uses */
    int rc = 0;
    if (!name_ok(t, 64))
        return admin_refuse(r, KMS_ERR_INVAL, "--tenant is required");
    if (!role || !*role)
        role = "client";
    if (strcmp(role, "client") != 0 && strcmp(role, "admin") != 0)
        return admin_refuse(r, KMS_ERR_INVAL, "role must be client or admin");
    bool device = ttlv_find(r->req, ADMIN_TAG_ARG_DEVICE_SERIAL) != NULL;
    if (!device && (pem != NULL) + (pwi != NULL) + by_cn != 1)
        return admin_refuse(r, KMS_ERR_INVAL, "give a certificate, a subject CN, or a user name and password");
    if (store_tenant_exists(rd, t) != 0)
        return admin_refuse(r, KMS_ERR_NOTFOUND, "no tenant '%s' (add it first: kmsctl tenant add %s)", t, t);
    if (device)
        return adm_device_add(r, rd, t, name, role, pw);
    snprintf(c.tenant, sizeof(c.tenant), "%s", t);
    snprintf(c.role, sizeof(c.role), "%s", role);
    c.created_us = kms_now_us();
    if (by_cn) {
        /* Any certificate under tls.client_ca whose subject CN is `name`
         * (no fingerprint pinned): for clients that rotate their own
         * certificates, such as vCenter's "KMS signs the CSR" setups. */
        if (!name_ok(name, sizeof(c.name)))
            return admin_refuse(r, KMS_ERR_INVAL, "--cn needs the subject CN");
        snprintf(c.kind, sizeof(c.kind), "cert");
    } else if (pem) {
        if (pem->type != TTLV_BYTE_STRING)
            return admin_refuse(r, KMS_ERR_INVAL, "malformed certificate argument");
        rc = load_cert(r, pem, c.cert_sha256, cn, sizeof(cn));
        if (rc)
            return rc;
        if (!name)
            name = cn;
        if (!name_ok(name, sizeof(c.name)))
            return admin_refuse(r, KMS_ERR_INVAL, "the certificate has no CN: give --name");
        snprintf(c.kind, sizeof(c.kind), "cert");
        store_client_t other;
        if (store_client_by_cert(rd, c.cert_sha256, &other) == 0)
            return admin_refuse(r, KMS_ERR_EXISTS, "this certificate is already registered as '%s' (tenant %s)",
                        other.name, other.tenant);
    } else {
        if (!pw || !*pw || !name_ok(name, sizeof(c.name)))
            return admin_refuse(r, KMS_ERR_INVAL, "--user NAME and a non-empty password are required");
        snprintf(c.kind, sizeof(c.kind), "password");
        rc = kmip_password_hash(&r->opt->password_cost, pw, c.password_hash,
                                sizeof(c.password_hash));
        if (rc)
            return admin_refuse(r, rc, "cannot hash the password: %s", kms_strerror(rc));
    }
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(r->target_buf, sizeof(r->target_buf), "%s", c.name);
    r->target = r->target_buf; /* `name` may be the local `cn` */
    store_client_t existing;
    if (store_client_by_name(rd, c.name, &existing) == 0)
        return admin_refuse(r, KMS_ERR_EXISTS, "a client named '%s' already exists (tenant %s); remove it first",
                    c.name, existing.tenant);
    store_write_t *w = store_write_new();
    if (!w)
        return KMS_ERR_NOMEM;
    rc = store_write_client(w, &c, false);
    if (!rc)
        rc = commit(r, w);
    store_write_free(w);
    if (rc)
        return admin_refuse(r, rc, "cannot add client '%s': %s", c.name, kms_strerror(rc));
    rc = client_record(r, &c, false);
    kms_wipe(c.password_hash, sizeof(c.password_hash));
    return rc;
}

static int adm_client_list(admin_req_t *r, store_reader_t *rd)
{
    const char *t = admin_arg_text(r, ADMIN_TAG_ARG_TENANT);
    r->tenant = t;
    store_client_t *clients = NULL;
    size_t nc = 0;
    int rc = store_list_clients(rd, r->a, &clients, &nc);
    if (rc)
        return admin_refuse(r, rc, "cannot read clients: %s", kms_strerror(rc));
    for (size_t i = 0; i < nc; i++) {
        if (t && *t && strcmp(clients[i].tenant, t) != 0)
            continue;
        if (client_record(r, &clients[i], true))
            return KMS_ERR_NOMEM;
    }
    return 0;
}

/* The client named by ARG_NAME (and in ARG_TENANT when given) into *c,
 * with the audit record's target and tenant set: 0, or the refusal. */
static int named_client(admin_req_t *r, store_reader_t *rd, store_client_t *c)
{
    const char *name = admin_arg_text(r, ADMIN_TAG_ARG_NAME);
    r->target = name;
    if (!name_ok(name, sizeof(c->name)))
        return admin_refuse(r, KMS_ERR_INVAL, "a client name is required");
    if (store_client_by_name(rd, name, c) != 0)
        return admin_refuse(r, KMS_ERR_NOTFOUND, "no client '%s'", name);
    r->tenant = admin_arg_text(r, ADMIN_TAG_ARG_TENANT);
    if (r->tenant && *r->tenant && strcmp(r->tenant, c->tenant) != 0)
        return admin_refuse(r, KMS_ERR_NOTFOUND, "no client '%s' in tenant '%s'", name, r->tenant);
    /* The audit record is written after the handler returns: not *c's. */
    r->tenant = kms_arena_strdup(r->a, c->tenant);
    return r->tenant ? 0 : KMS_ERR_NOMEM;
}

/* Write *c (remove, or update in place); the refusal names `what`. */
static int write_client(admin_req_t *r, store_client_t *c, bool remove, const char *what)
{
    store_write_t *w = store_write_new();
    if (!w)
        return KMS_ERR_NOMEM;
    int rc = store_write_client(w, c, remove);
    if (!rc)
        rc = commit(r, w);
    store_write_free(w);
    if (rc)
        return admin_refuse(r, rc, "cannot %s client '%s': %s", what, c->name, kms_strerror(rc));
    return 0;
}

static int adm_client_remove(admin_req_t *r, store_reader_t *rd)
{
    store_client_t c;
    int rc = named_client(r, rd, &c);
    if (!rc)
        rc = write_client(r, &c, true, "remove");
    kms_wipe(c.password_hash, sizeof(c.password_hash));
    if (rc)
        return rc;
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_text(r, rec, "name", c.name) || admin_field_text(r, rec, "tenant", c.tenant))
        return KMS_ERR_NOMEM;
    return 0;
}

/* Whether a client other than `name` is an enabled admin. */
static int other_enabled_admin(admin_req_t *r, store_reader_t *rd, const char *name, bool *out)
{
    store_client_t *clients = NULL;
    size_t nc = 0;
    int rc = store_list_clients(rd, r->a, &clients, &nc);
    *out = false;
    for (size_t i = 0; i < nc; i++) {
        const store_client_t *o = &clients[i];
        if (strcmp(o->name, name) != 0 && strcmp(o->role, "admin") == 0 && !o->disabled)
            *out = true;
        kms_wipe(clients[i].password_hash, sizeof(clients[i].password_hash));
    }
    return rc;
}

/* client.disable NAME [--reason TEXT] | client.enable NAME: the whole
 * record is written again with the flag (LWW like every client change), so
 * its registration, role and identifiers stay as they are. kmip/auth.c
 * refuses a disabled client from its next request on. Disabling a disabled
 * client (or enabling an enabled one) changes nothing, not even the time
 * or reason. The last enabled admin cannot be disabled. */
static int adm_client_set_disabled(admin_req_t *r, store_reader_t *rd, bool disable)
{
    store_client_t c;
    const char *reason = admin_arg_text(r, ADMIN_TAG_ARG_REASON);
    int rc = named_client(r, rd, &c);
    if (rc)
        goto out;
    if (reason && !disable) {
        rc = admin_refuse(r, KMS_ERR_INVAL, "enable takes no reason");
        goto out;
    }
    if (reason && *reason && !name_ok(reason, sizeof(c.disabled_reason))) {
        rc = admin_refuse(r, KMS_ERR_INVAL, "--reason must be 1-%zu printable characters",
                          sizeof(c.disabled_reason) - 1);
        goto out;
    }
    bool changed = c.disabled != disable;
    if (changed) {
        bool other = true;
        if (disable && strcmp(c.role, "admin") == 0 &&
            (rc = other_enabled_admin(r, rd, c.name, &other)) != 0) {
            rc = admin_refuse(r, rc, "cannot read clients: %s", kms_strerror(rc));
            goto out;
        }
        if (!other) {
            rc = admin_refuse(r, KMS_ERR_STATE, "'%s' is the last enabled admin client; add or "
                                                "enable another admin first", c.name);
            goto out;
        }
        c.disabled = disable;
        c.disabled_us = disable ? kms_now_us() : 0;
        snprintf(c.disabled_reason, sizeof(c.disabled_reason), "%s",
                 disable && reason ? reason : "");
        rc = write_client(r, &c, false, disable ? "disable" : "enable");
        if (rc)
            goto out;
    }
    /* The audit record's reason: the operator's, or that nothing changed. */
    if (!changed)
        snprintf(r->msg, sizeof(r->msg), "already %s; not changed",
                 disable ? "disabled" : "enabled");
    else if (disable)
        snprintf(r->msg, sizeof(r->msg), "%s", c.disabled_reason);
    rc = client_record(r, &c, true);
out:
    kms_wipe(c.password_hash, sizeof(c.password_hash));
    return rc;
}

static int adm_client_disable(admin_req_t *r, store_reader_t *rd)
{
    return adm_client_set_disabled(r, rd, true);
}

static int adm_client_enable(admin_req_t *r, store_reader_t *rd)
{
    return adm_client_set_disabled(r, rd, false);
}

static int adm_audit_status(admin_req_t *r, store_reader_t *rd)
{
    (void)rd;
    audit_t *au = r->opt->audit;
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec)
        return KMS_ERR_NOMEM;
    if (!au)
        return admin_field_bool(r, rec, "enabled", false);
    audit_status_t st;
    int rc = audit_get_status(au, &st);
    /* A disk that refuses writes is reported, not waited for: the numbers
     * say what is on disk and how much waits. */
    if (rc && !st.failing && rc != KMS_ERR_TIMEOUT)
        return admin_refuse(r, rc, "audit log unavailable: %s", kms_strerror(rc));
    if (admin_field_bool(r, rec, "enabled", true) || admin_field_long(r, rec, "last_seq", (int64_t)st.last_seq) ||
        admin_field_text(r, rec, "last_hash", st.last_hash) ||
        admin_field_long(r, rec, "written", (int64_t)st.written) ||
        admin_field_long(r, rec, "rotations", (int64_t)st.rotations) ||
        admin_field_long(r, rec, "errors", (int64_t)st.errors) ||
        admin_field_long(r, rec, "backlog", (int64_t)st.backlog) ||
        admin_field_text(r, rec, "state", st.failing || rc ? "failing" : "ok") ||
        admin_field_text(r, rec, "last_error", st.last_error))
        return KMS_ERR_NOMEM;
    return 0;
}

static int adm_backup(admin_req_t *r, store_reader_t *rd, bool restore)
{
    (void)rd;
    const char *pass = admin_arg_text(r, ADMIN_TAG_ARG_PASSPHRASE);
    const ttlv_item_t *key = ttlv_find(r->req, ADMIN_TAG_ARG_KEY);
    if ((pass != NULL) == (key != NULL))
        return admin_refuse(r, KMS_ERR_INVAL, "give either a passphrase or a key file");
    if (r->fd < 0)
        return admin_refuse(r, KMS_ERR_INVAL, "no file was passed with the request");
    int64_t n = 0;
    kms_error_t err;
    kms_error_clear(&err);
    int rc = restore ? admin_backup_restore(r->opt, r->fd, pass, key, admin_progress, r, &n, &err)
                     : admin_backup_create(r->opt, r->fd, pass, key, admin_progress, r, &n, &err);
    if (rc)
        return admin_refuse(r, rc, "%s", err.msg);
    ttlv_item_t *rec = admin_rec_new(r);
    if (!rec || admin_field_long(r, rec, "objects", n))
        return KMS_ERR_NOMEM;
    return 0;
}

static int adm_backup_create(admin_req_t *r, store_reader_t *rd)
{
    return adm_backup(r, rd, false);
}

static int adm_backup_restore(admin_req_t *r, store_reader_t *rd)
{
    return adm_backup(r, rd, true);
}

/* rotate.master | rotate.store-key | rotate.status: keys/rotate.c */
static int adm_rotate(admin_req_t *r, store_reader_t *rd)
{
    (void)rd;
    const char *cmd = ttlv_text(ttlv_find(r->req, ADMIN_TAG_COMMAND));
    if (!r->opt->key_rotation)
        return admin_refuse(r, KMS_ERR_NOTSUP, "key rotation is not available in this process");
    kms_error_t err;
    kms_error_clear(&err);
    int rc;
    ttlv_item_t *rec = NULL;
    if (strcmp(cmd, "rotate.master") == 0) {
        keys_master_rotation_t m;
        rc = keys_rotate_master(&m, &err);
        if (rc == 0 &&
            (!(rec = admin_rec_new(r)) || admin_field_text(r, rec, "master", m.master) ||
             admin_field_text(r, rec, "previous", m.previous) ||
             admin_field_long(r, rec, "dsks_rewrapped", m.dsks_rewrapped) ||
             admin_field_text(r, rec, "note", "the previous master key was kept; remove it after a backup")))
            rc = KMS_ERR_NOMEM;
    } else if (strcmp(cmd, "rotate.store-key") == 0) {
        uint32_t dsk = 0, previous = 0;
        rc = keys_rotate_store_key(&dsk, &previous, &err);
        if (rc == 0 && (!(rec = admin_rec_new(r)) || admin_field_long(r, rec, "dsk", dsk) ||
                        admin_field_long(r, rec, "previous_dsk", previous) ||
                        admin_field_text(r, rec, "state", "started")))
            rc = KMS_ERR_NOMEM;
    } else {
        keys_status_t k;
        rc = keys_rotate_status(&k, &err);
        if (rc == 0 &&
            (!(rec = admin_rec_new(r)) || admin_field_text(r, rec, "state", k.state) ||
             admin_field_long(r, rec, "dsk", k.dsk) || admin_field_long(r, rec, "target_dsk", k.target) ||
             admin_field_long(r, rec, "total", k.total) || admin_field_long(r, rec, "done", k.done) ||
             admin_field_long(r, rec, "failed", k.failed) || admin_field_long(r, rec, "elapsed_ms", k.elapsed_ms) ||
             admin_field_text(r, rec, "master", k.master) ||
             admin_field_text(r, rec, "previous_master", k.previous) ||
             admin_field_text(r, rec, "hsm", k.hsm_down ? "unavailable" : "ok")))
            rc = KMS_ERR_NOMEM;
    }
    if (rc && err.code)
        snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
    return rc;
}

/* One command: records into r->resp, or a KMS_ERR_* with r->msg set. */
typedef int (*cmd_cb)(admin_req_t *r, store_reader_t *rd);

static const struct {
    const char *name;
    cmd_cb fn;
} commands[] = {
    {"status", adm_status},
    {"tenant.add", adm_tenant_add},
    {"tenant.list", adm_tenant_list},
    {"tenant.remove", adm_tenant_remove},
    {"client.add", adm_client_add},
    {"client.list", adm_client_list},
    {"client.remove", adm_client_remove},
    {"client.disable", adm_client_disable},
    {"client.enable", adm_client_enable},
    {"audit.status", adm_audit_status},
    {"backup.create", adm_backup_create},
    {"backup.restore", adm_backup_restore},
    {"rotate.master", adm_rotate},
    {"rotate.store-key", adm_rotate},
    {"rotate.status", adm_rotate},
    {"cluster.invite", admin_cluster_invite},
    {"cluster.status", admin_cluster_status},
    {"cluster.verify", admin_cluster_verify},
    {"cluster.remove", admin_cluster_remove},
};

/* Most time an answer waits for its command's audit record to be on disk. */
#define ADMIN_AUDIT_WAIT_MS 5000

/* The command's audit record, on disk before the answer leaves (an
 * operator who reads the log after a command finds it there), unless the
 * disk refuses writes: then it waits in the backlog and the answer goes. */
static void audit_admin(const admin_req_t *r, const char *cmd, int rc)
{
    audit_t *au = r->opt->audit;
    if (!au)
        return;
    audit_rec_t rec = {.kind = "admin", .identity = r->who, .tenant = r->tenant,
                           .address = "admin-socket", .operation = cmd, .object_id = r->target,
                           .result = rc == 0 ? "ok" : kms_strerror(rc), .reason = r->msg,
                           .batch_count = -1};
    uint64_t ticket = 0;
    if (audit_write_ticket(au, &rec, &ticket) != 0)
        kms_log(KMS_LOG_ERROR, "admin", "could not queue the audit record of %s", cmd);
    else
        (void)audit_wait(au, ticket, ADMIN_AUDIT_WAIT_MS);
}

ttlv_item_t *admin_execute(const admin_options_t *opt, int64_t started_us,
                               const char *who, const ttlv_item_t *req, int fd,
                               int conn_fd, kms_arena_t *a)
{
    admin_req_t r = {.opt = opt, .started_us = started_us, .who = who, .req = req, .fd = fd,
                     .a = a, .conn_fd = conn_fd};
    r.resp = ttlv_new_struct(a, NULL, ADMIN_TAG_RESPONSE);
    if (!r.resp || !ttlv_new_int(a, r.resp, ADMIN_TAG_PROTOCOL_VERSION, ADMIN_PROTOCOL_VERSION))
        return NULL;
    ttlv_item_t *status = ttlv_new_int(a, r.resp, ADMIN_TAG_STATUS, 0);
    ttlv_item_t *msg = ttlv_new_textz(a, r.resp, ADMIN_TAG_MESSAGE, "");
    if (!status || !msg)
        return NULL;
    int rc = KMS_ERR_INVAL;
    const char *cmd = "?";
    const ttlv_item_t *ver = req ? ttlv_find(req, ADMIN_TAG_PROTOCOL_VERSION) : NULL;
    const ttlv_item_t *c = req ? ttlv_find(req, ADMIN_TAG_COMMAND) : NULL;
    if (!req || req->tag != ADMIN_TAG_REQUEST || !ver || ver->type != TTLV_INTEGER || !c ||
        c->type != TTLV_TEXT_STRING) {
        rc = admin_refuse(&r, KMS_ERR_PROTO, "malformed admin request");
    } else if (ver->v.i32 != ADMIN_PROTOCOL_VERSION) {
        rc = admin_refuse(&r, KMS_ERR_NOTSUP, "admin protocol version %d not supported (kmsd speaks %d)",
                  ver->v.i32, ADMIN_PROTOCOL_VERSION);
    } else {
        cmd = ttlv_text(c);
        size_t i = 0;
        for (; i < KMS_ARRAY_SIZE(commands); i++)
            if (strcmp(cmd, commands[i].name) == 0)
                break;
        if (i == KMS_ARRAY_SIZE(commands)) {
            rc = admin_refuse(&r, KMS_ERR_NOTSUP, "unknown admin command '%s'", cmd);
        } else {
            store_reader_t *rd = NULL;
            rc = store_reader_new(opt->store, &rd);
            if (rc)
                rc = admin_refuse(&r, KMS_ERR_UNAVAIL, "cannot read the store");
            else
                rc = commands[i].fn(&r, rd);
            store_reader_free(rd);
        }
    }
    if (rc && !r.msg[0])
        snprintf(r.msg, sizeof(r.msg), "%s", kms_strerror(rc));
    if (rc) {
        /* No partial records on failure. */
        ttlv_item_t *it = r.resp->first;
        while (it) {
            ttlv_item_t *next = it->next;
            if (it->tag == ADMIN_TAG_RECORD)
                ttlv_remove(it);
            it = next;
        }
    }
    status->v.i32 = rc;
    ttlv_item_t *m2 = ttlv_new_textz(a, NULL, ADMIN_TAG_MESSAGE, r.msg);
    if (!m2)
        return NULL;
    /* Replace the placeholder message, keeping its position. */
    msg->v.bytes = m2->v.bytes;
    kms_log(rc ? KMS_LOG_WARN : KMS_LOG_INFO, "admin", "%s: %s -> %s%s%s", who, cmd,
            rc ? kms_strerror(rc) : "ok", r.msg[0] ? ": " : "", r.msg);
    audit_admin(&r, cmd, rc);
    return r.resp;
}
