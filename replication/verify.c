/*
 * replication/verify.c: digests that tell whether nodes hold the same
 * objects (`kmsctl cluster verify`).
 *
 * An object's digest is SHA-256 over, in this order: its id, object type,
 * state, storage status, DSK id, seal generation, SHA-256 of its sealed
 * blob, and every attribute instance (name, index, value) in the store's
 * (name, index) order, each field length-prefixed. A tenant's digest is
 * SHA-256 over its objects' digests in id order, with the count. Clocks,
 * versions and update times are left out: they legitimately differ
 * between nodes that hold the same data.
 *
 * repl_verify_local computes them from one store (blocking reads: call it
 * on a worker thread); repl_verify asks every peer that this node has an
 * open push link to (VERIFY_REQ on the link; the peer computes on libuv's
 * threadpool and answers VERIFY_RESP). It deliberately does not compare:
 * the caller (kmsctl) lines the lists up and names what differs.
 * One request per link at a time; a second one gets KMS_ERR_BUSY for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "replication/repl_int.h"

#define VERIFY_SCAN 512
#define VERIFY_TIMEOUT_MS 60000

static void put_len(EVP_MD_CTX *h, const void *p, size_t n)
{
    uint8_t be[8];
    kms_put_be64(be, (uint64_t)n);
    EVP_DigestUpdate(h, be, 8);
    if (n)
        EVP_DigestUpdate(h, p, n);
}

static void put_u64(EVP_MD_CTX *h, uint64_t v)
{
    uint8_t be[8];
    kms_put_be64(be, v);
    EVP_DigestUpdate(h, be, 8);
}

/* The digest of one object (see the file comment). 0 or KMS_ERR_CRYPTO. */
static int object_digest(const store_object_t *o, uint8_t out[32])
{
    uint8_t blob[32];
    unsigned int len = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(o->sealed.blob ? o->sealed.blob : (const uint8_t *)"", o->sealed.len, blob,
                   &len, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h);
        return KMS_ERR_CRYPTO;
    }
    put_len(h, o->id, strlen(o->id));
    put_u64(h, o->object_type);
    put_u64(h, o->state);
    put_u64(h, o->archived);
    put_u64(h, o->sealed.dsk_id);
    put_u64(h, (uint64_t)o->sealed.gen);
    put_len(h, blob, 32);
    put_u64(h, o->n_attrs);
    for (size_t i = 0; i < o->n_attrs; i++) {
        put_len(h, o->attrs[i].name, strlen(o->attrs[i].name));
        put_u64(h, o->attrs[i].index);
        put_len(h, o->attrs[i].value, o->attrs[i].value_len);
    }
    int rc = EVP_DigestFinal_ex(h, out, &len) == 1 ? 0 : KMS_ERR_CRYPTO;
    EVP_MD_CTX_free(h);
    return rc;
}

typedef struct tenant_acc {
    char name[64];
    EVP_MD_CTX *h;
    int64_t count;
} tenant_acc_t;

typedef struct walk {
    store_reader_t *rd;
    const char *tenant;
    bool per_object;
    kms_arena_t *a;
    tenant_acc_t *t;
    size_t nt, capt;
    repl_digest_t *objs;
    size_t no, capo;
    char ids[VERIFY_SCAN][64];
    size_t n_ids;
    int rc;
} walk_t;

static int collect(const char *id, uint32_t dsk_id, void *arg)
{
    walk_t *w = arg;
    (void)dsk_id;
    kms_strlcpy(w->ids[w->n_ids++], id, sizeof w->ids[0]);
    return 0;
}

static tenant_acc_t *tenant_acc(walk_t *w, const char *name)
{
    for (size_t i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return &w->t[i];
    if (w->nt == w->capt) {
        size_t cap = w->capt ? w->capt * 2 : 8;
        tenant_acc_t *v = realloc(w->t, cap * sizeof *v);
        if (!v)
            return NULL;
        w->t = v;
        w->capt = cap;
    }
    tenant_acc_t *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    kms_strlcpy(t->name, name, sizeof t->name);
    if (!(t->h = EVP_MD_CTX_new()) || EVP_DigestInit_ex(t->h, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(t->h);
        return NULL;
    }
    w->nt++;
    return t;
}

static int add_object(walk_t *w, const store_object_t *o)
{
    uint8_t d[32];
    int rc;
    if (w->tenant[0] && strcmp(o->tenant, w->tenant) != 0)
        return 0;
    if ((rc = object_digest(o, d)) != 0)
        return rc;
    tenant_acc_t *t = tenant_acc(w, o->tenant);
    if (!t)
        return KMS_ERR_NOMEM;
    EVP_DigestUpdate(t->h, d, 32);
    t->count++;
    if (!w->per_object)
        return 0;
    if (w->no == w->capo) {
        size_t cap = w->capo ? w->capo * 2 : 256;
        repl_digest_t *v = kms_arena_alloc(w->a, cap * sizeof *v);
        if (!v)
            return KMS_ERR_NOMEM;
        if (w->no)
            memcpy(v, w->objs, w->no * sizeof *v);
        w->objs = v;
        w->capo = cap;
    }
    repl_digest_t *x = &w->objs[w->no++];
    x->kind = REPL_DIGEST_OBJECT;
    x->tenant = kms_arena_strdup(w->a, o->tenant);
    x->id = kms_arena_strdup(w->a, o->id);
    x->count = 1;
    memcpy(x->sha256, d, 32);
    return x->tenant && x->id ? 0 : KMS_ERR_NOMEM;
}

int repl_verify_local(store_reader_t *rd, const char *tenant, bool per_object, kms_arena_t *a,
                      repl_digest_t **out, size_t *n_out)
{
    walk_t *w = calloc(1, sizeof *w);
    char after[64] = "";
    int rc = 0;
    *out = NULL;
    *n_out = 0;
    if (!w)
        return KMS_ERR_NOMEM;
    w->rd = rd;
    w->tenant = tenant ? tenant : "";
    w->per_object = per_object;
    w->a = a;
    for (;;) {
        w->n_ids = 0;
        if ((rc = store_scan(rd, after, VERIFY_SCAN, collect, w)) != 0 || w->n_ids == 0)
            break;
        for (size_t i = 0; i < w->n_ids && rc == 0; i++) {
            kms_arena_t *oa = kms_arena_new(0);
            store_object_t *o = NULL;
            rc = oa ? store_get(rd, oa, w->ids[i], NULL, &o) : KMS_ERR_NOMEM;
            if (rc == KMS_ERR_NOTFOUND)
                rc = 0; /* deleted between the scan and the read */
            else if (rc == 0)
                rc = add_object(w, o);
            kms_arena_free(oa);
        }
        if (rc || w->n_ids < VERIFY_SCAN)
            break;
        kms_strlcpy(after, w->ids[w->n_ids - 1], sizeof after);
    }
    if (rc == 0) {
        size_t n = w->nt + w->no;
        repl_digest_t *v = n ? kms_arena_alloc(a, n * sizeof *v) : NULL;
        if (n && !v) {
            rc = KMS_ERR_NOMEM;
        } else {
            for (size_t i = 0; i < w->nt; i++) {
                unsigned int len = 0;
                v[i].kind = REPL_DIGEST_TENANT;
                v[i].tenant = kms_arena_strdup(a, w->t[i].name);
                v[i].id = "";
                put_u64(w->t[i].h, (uint64_t)w->t[i].count);
                v[i].count = w->t[i].count;
                if (!v[i].tenant || EVP_DigestFinal_ex(w->t[i].h, v[i].sha256, &len) != 1)
                    rc = KMS_ERR_CRYPTO;
            }
            if (w->no)
                memcpy(v + w->nt, w->objs, w->no * sizeof *v);
            *out = v;
            *n_out = rc ? 0 : n;
        }
    }
    for (size_t i = 0; i < w->nt; i++)
        EVP_MD_CTX_free(w->t[i].h);
    free(w->t);
    free(w);
    return rc;
}

/* ------------------------------------------------- answering a peer */
typedef struct answer {
    repl_conn_t *c;
    repl_t *r;
    char tenant[64];
    bool per_object;
    uv_work_t work;
    kms_arena_t *a;
    repl_digest_t *v;
    size_t n;
    int rc;
    struct answer *next;
} answer_t;

static void answer_run(uv_work_t *wk)
{
    answer_t *x = wk->data;
    store_reader_t *rd = NULL;
    x->rc = store_reader_new(x->r->opt.store, &rd);
    if (x->rc == 0)
        x->rc = repl_verify_local(rd, x->tenant, x->per_object, x->a, &x->v, &x->n);
    store_reader_free(rd);
}

static void answer_done(uv_work_t *wk, int status)
{
    answer_t *x = wk->data;
    repl_conn_t *c = x->c;
    if (c && c->verifying == x) {
        c->verifying = NULL;
        repl_frame_t *f = repl_frame_new(REPL_FRAME_VERIFY_RESP);
        if (status || x->rc || !f) {
            repl_conn_fail(c, REPL_ERROR_INTERNAL, "cannot compute digests: %s",
                           kms_strerror(x->rc ? x->rc : KMS_ERR_INTERNAL));
        } else {
            f->u.verify_resp.v = x->v;
            f->u.verify_resp.n = x->n;
            (void)repl_conn_send(c, f);
        }
        repl_frame_free(f);
    }
    kms_arena_free(x->a);
    free(x);
}

void repl_verify_answer(repl_conn_t *c, const repl_frame_t *f)
{
    answer_t *x = calloc(1, sizeof *x);
    if (!x || !(x->a = kms_arena_new(0))) {
        free(x);
        repl_conn_close(c, "out of memory");
        return;
    }
    x->c = c;
    x->r = c->r;
    kms_strlcpy(x->tenant, f->u.verify_req.tenant, sizeof x->tenant);
    x->per_object = f->u.verify_req.per_object;
    x->work.data = x;
    /* Frames keep flowing meanwhile (PINGs, CHANGES): a large store takes
     * longer to digest than the keepalive allows a link to be silent. */
    c->verifying = x;
    if (uv_queue_work(&c->r->loop, &x->work, answer_run, answer_done) != 0) {
        c->verifying = NULL;
        kms_arena_free(x->a);
        free(x);
        repl_conn_close(c, "cannot queue work");
    }
}

static void repl_verify_conn_closed(repl_conn_t *c)
{
    /* The work item finishes on its own and finds no connection. */
    if (c->verifying) {
        ((answer_t *)c->verifying)->c = NULL;
        c->verifying = NULL;
    }
}

/* ------------------------------------------------- asking the peers */
struct repl_verify_req {
    char tenant[64];
    bool per_object;
    repl_verify_cb cb;
    void *arg;
    int outstanding;
    struct repl_verify_req *next;
};

int repl_verify(repl_t *r, const char *tenant, bool per_object, repl_verify_cb cb, void *arg)
{
    if (!r || !cb)
        return KMS_ERR_INVAL;
    if (!r->started || atomic_load(&r->stopping))
        return KMS_ERR_STATE;
    repl_verify_req_t *q = calloc(1, sizeof *q);
    if (!q)
        return KMS_ERR_NOMEM;
    kms_strlcpy(q->tenant, tenant ? tenant : "", sizeof q->tenant);
    q->per_object = per_object;
    q->cb = cb;
    q->arg = arg;
    pthread_mutex_lock(&r->mu);
    q->next = r->verify_new;
    r->verify_new = q;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
    return 0;
}

static void req_done_one(repl_verify_req_t *q)
{
    if (--q->outstanding > 0)
        return;
    q->cb(NULL, 0, NULL, 0, q->arg);
    free(q);
}

void repl_verify_pump(repl_t *r, bool stopping)
{
    pthread_mutex_lock(&r->mu);
    repl_verify_req_t *q = r->verify_new;
    r->verify_new = NULL;
    pthread_mutex_unlock(&r->mu);
    while (q) {
        repl_verify_req_t *next = q->next;
        q->outstanding = 1; /* held until every request is out */
        for (repl_conn_t *c = r->conns; c && !stopping; c = c->next) {
            if (!c->outbound || c->state != RC_OPEN || !c->node)
                continue;
            if (c->verify_req) {
                q->cb(c->node->st.node_id, KMS_ERR_BUSY, NULL, 0, q->arg);
                continue;
            }
            repl_frame_t *f = repl_frame_new(REPL_FRAME_VERIFY_REQ);
            if (!f)
                continue;
            f->u.verify_req.tenant = q->tenant;
            f->u.verify_req.per_object = q->per_object;
            q->outstanding++;
            c->verify_req = q;
            if (repl_conn_send(c, f) != 0 && c->verify_req == q) {
                c->verify_req = NULL; /* closed: its close path did not see it */
                q->outstanding--;
            }
            repl_frame_free(f);
        }
        req_done_one(q);
        q = next;
    }
}

void repl_verify_response(repl_conn_t *c, const repl_frame_t *f)
{
    repl_verify_req_t *q = c->verify_req;
    if (!q) {
        repl_conn_fail(c, REPL_ERROR_PROTO, "VERIFY_RESP without a request");
        return;
    }
    c->verify_req = NULL;
    q->cb(c->node->st.node_id, 0, f->u.verify_resp.v, f->u.verify_resp.n, q->arg);
    req_done_one(q);
}

void repl_verify_link_closed(repl_conn_t *c)
{
    repl_verify_req_t *q = c->verify_req;
    repl_verify_conn_closed(c);
    if (!q)
        return;
    c->verify_req = NULL;
    q->cb(c->node ? c->node->st.node_id : "", KMS_ERR_UNAVAIL, NULL, 0, q->arg);
    req_done_one(q);
}
