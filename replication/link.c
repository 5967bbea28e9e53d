/*
 * replication/link.c: the peer protocol on an established TLS connection.
 *
 * Every link has one direction of data: the connecting node pushes its
 * change log to the accepting one. After the TLS handshake and the peer
 * check (tls.c):
 *   connector -> HELLO(version, cluster id, node id, wall clock, addresses)
 *   acceptor  -> HELLO_ACK(node id, wall clock, link_pos), or ERROR + close
 * Either side refuses the other with ERROR and closes when: the protocol
 * version differs, the cluster id differs, the node id is not the
 * certificate's CN or is our own, the node was removed from the cluster,
 * or the wall clocks differ by more than max_clock_skew. Each refusal is
 * logged on both sides and shows in repl_status. Then frames flow: the
 * connector sends CHANGES / SNAPSHOT_* and the acceptor answers ACK; either
 * side sends PING when the link was quiet for keepalive_ms and answers
 * PING with PONG. A connection without a client certificate (a joining
 * node) may send only JOIN_REQ.
 *
 * It deliberately does not read or write the store itself: shipping
 * (ship.c) and applying (apply.c) do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

uint64_t repl_mono_ms(void)
{
    return kms_mono_ns() / 1000000;
}

int64_t repl_wall_ms(const repl_t *r)
{
    return kms_now_us() / 1000 + r->opt.clock_offset_ms;
}

/* ----------------------------------------------------------- status */
repl_node_t *repl_node_get(repl_t *r, const char *node_id)
{
    repl_node_t **pp = &r->nodes;
    for (; *pp; pp = &(*pp)->next) {
        int c = strcmp((*pp)->st.node_id, node_id);
        if (c == 0)
            return *pp;
        if (c > 0)
            break;
    }
    repl_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->covered = -1;
    kms_strlcpy(n->st.node_id, node_id, sizeof n->st.node_id);
    kms_strlcpy(n->st.state, "connecting", sizeof n->st.state);
    pthread_mutex_lock(&r->mu);
    n->next = *pp;
    *pp = n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void repl_peer_error(repl_peer_t *p, const char *why)
{
    pthread_mutex_lock(&p->r->mu);
    kms_strlcpy(p->last_error, why, sizeof p->last_error);
    pthread_mutex_unlock(&p->r->mu);
}

static void set_state(repl_t *r, repl_node_t *n, const char *state, const char *err)
{
    if (!n)
        return;
    pthread_mutex_lock(&r->mu);
    if (state)
        kms_strlcpy(n->st.state, state, sizeof n->st.state);
    if (err)
        kms_strlcpy(n->st.last_error, err, sizeof n->st.last_error);
    pthread_mutex_unlock(&r->mu);
}

static void contact(repl_conn_t *c, int64_t their_wall)
{
    repl_t *r = c->r;
    if (!c->node)
        return;
    pthread_mutex_lock(&r->mu);
    c->node->st.last_contact_ms = repl_wall_ms(r);
    if (their_wall)
        c->node->st.clock_offset_ms = their_wall - repl_wall_ms(r);
    pthread_mutex_unlock(&r->mu);
}

/* ----------------------------------------------------------- HELLO */
static uint64_t max_skew(const repl_t *r)
{
    return r->opt.max_clock_skew_ms ? r->opt.max_clock_skew_ms : 5000;
}

/* The checks both sides make on the other's HELLO / HELLO_ACK. 0, or the
 * connection was failed with the reason. */
static int check_identity(repl_conn_t *c, const char *cluster_id, const char *node_id,
                          int64_t wall_ms)
{
    repl_t *r = c->r;
    if (strcmp(cluster_id, r->opt.cluster_id) != 0) {
        kms_log(KMS_LOG_WARN, REPL_LOG, "link %s refused: cluster %s is not ours (%s)", c->addr,
                cluster_id, r->opt.cluster_id);
        repl_conn_fail(c, REPL_ERROR_CLUSTER, "cluster %s is not %s", cluster_id,
                       r->opt.cluster_id);
        return KMS_ERR_PERM;
    }
    if (strcmp(node_id, c->cn) != 0) {
        kms_log(KMS_LOG_WARN, REPL_LOG, "link %s refused: node '%s' presents the certificate of '%s'",
                c->addr, node_id, c->cn);
        repl_conn_fail(c, REPL_ERROR_DENIED, "node id '%s' is not the certificate's '%s'", node_id,
                       c->cn);
        return KMS_ERR_PERM;
    }
    if (strcmp(node_id, r->opt.node_id) == 0) {
        if (c->peer) {
            pthread_mutex_lock(&r->mu);
            c->peer->is_self = true; /* a bootstrap list that names this node too */
            pthread_mutex_unlock(&r->mu);
        }
        repl_conn_fail(c, REPL_ERROR_UNKNOWN_NODE, "connected to itself");
        return KMS_ERR_PERM;
    }
    c->node = repl_node_get(r, node_id);
    if (c->node && (strcmp(c->node->st.state, "removed") == 0 ||
                    repl_node_removed(r, node_id, c->fp))) {
        repl_set_node_state(r, c->node, "removed");
        kms_log(KMS_LOG_WARN, REPL_LOG, "link %s refused: node %s was removed from the cluster",
                c->addr, node_id);
        repl_conn_fail(c, REPL_ERROR_REMOVED, "node %s was removed from the cluster", node_id);
        return KMS_ERR_PERM;
    }
    int64_t skew = wall_ms - repl_wall_ms(r);
    if ((uint64_t)(skew < 0 ? -skew : skew) > max_skew(r)) {
        char msg[160];
        snprintf(msg, sizeof msg, "clock skew %lld ms with node %s is above max_clock_skew %llu ms",
                 (long long)skew, node_id, (unsigned long long)max_skew(r));
        kms_log(KMS_LOG_ERROR, REPL_LOG, "link %s refused: %s", c->addr, msg);
        pthread_mutex_lock(&r->mu);
        if (c->node)
            c->node->st.clock_offset_ms = skew;
        pthread_mutex_unlock(&r->mu);
        set_state(r, c->node, "skew", msg);
        repl_conn_fail(c, REPL_ERROR_SKEW, "%s", msg);
        return KMS_ERR_PERM;
    }
    return 0;
}

static void send_hello(repl_conn_t *c)
{
    repl_t *r = c->r;
    repl_frame_t *f = repl_frame_new(REPL_FRAME_HELLO);
    if (!f) {
        repl_conn_close(c, "out of memory");
        return;
    }
    f->u.hello.version = REPL_PROTO_VERSION;
    f->u.hello.cluster_id = r->opt.cluster_id;
    f->u.hello.node_id = r->opt.node_id;
    f->u.hello.wall_ms = repl_wall_ms(r);
    f->u.hello.peer_addr = r->opt.advertise;
    f->u.hello.kmip_addr = r->opt.kmip_addr;
    f->u.hello.log_head = atomic_load(&r->last_seq);
    (void)repl_conn_send(c, f);
    repl_frame_free(f);
}

void repl_link_ready(repl_conn_t *c)
{
    /* Two configured addresses of one node (the token's inviter address and
     * the node list's, or an operator's alias): the link that is open stays,
     * and the other address is tried again only at the longest backoff.
     * Known from the certificate's CN before HELLO, so the peer never sees
     * the second link (which would replace the first on its side, and the
     * two would take turns every 100 ms). */
    for (repl_conn_t *o = c->r->conns; c->outbound && c->peer && o; o = o->next)
        if (o != c && o->outbound && o->state == RC_OPEN && o->node && o->peer != c->peer &&
            strcmp(o->node->st.node_id, c->cn) == 0) {
            c->peer->backoff_ms = REPL_BACKOFF_MAX_MS;
            repl_conn_close(c, "node already linked through another address");
            return;
        }
    if (c->outbound)
        send_hello(c);
    /* inbound: wait for HELLO (or JOIN_REQ without a certificate) */
}

static void link_open(repl_conn_t *c)
{
    repl_t *r = c->r;
    c->state = RC_OPEN;
    c->opened_ms = repl_mono_ms();
    /* One link per direction and pair: a newer one replaces an older one
     * the peer may not have seen close (a half-open TCP connection). */
    for (repl_conn_t *o = r->conns; o; o = o->next)
        if (o != c && o->node == c->node && o->outbound == c->outbound && o->state == RC_OPEN)
            repl_conn_close(o, "replaced by a newer link");
    pthread_mutex_lock(&r->mu);
    if (c->outbound)
        c->node->st.connected_out = true;
    else
        c->node->st.connected_in = true;
    kms_strlcpy(c->node->st.state, "ok", sizeof c->node->st.state);
    if (c->outbound && c->peer) {
        kms_strlcpy(c->node->st.addr, c->peer->addr, sizeof c->node->st.addr);
        c->peer->known = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (c->peer)
        c->peer->backoff_ms = REPL_BACKOFF_MIN_MS;
    kms_log(KMS_LOG_INFO, REPL_LOG, "link %s %s node %s open", c->addr,
            c->outbound ? "to" : "from", c->node->st.node_id);
    repl_conn_keepalive(c);
}

/* Another node's push link to us opened within SEED_WAIT_MS: while we
 * hold nothing, its snapshot is about to start. */
#define SEED_WAIT_MS 2000
static bool seeding_link(const repl_conn_t *c)
{
    uint64_t now = repl_mono_ms();
    for (const repl_conn_t *o = c->r->conns; o; o = o->next)
        if (o != c && !o->outbound && o->state == RC_OPEN && o->node != c->node &&
            now - o->opened_ms < SEED_WAIT_MS)
            return true;
    return false;
}

/* HELLO_ACK with where our copy of its log stands and our progress. */
static void answer_hello(repl_conn_t *c)
{
    repl_t *r = c->r;
    repl_hwm_t v[KMS_ARRAY_SIZE(r->prog)];
    repl_frame_t *a = repl_frame_new(REPL_FRAME_HELLO_ACK);
    if (!a) {
        repl_conn_close(c, "out of memory");
        return;
    }
    a->u.hello_ack.cluster_id = r->opt.cluster_id;
    a->u.hello_ack.node_id = r->opt.node_id;
    a->u.hello_ack.wall_ms = repl_wall_ms(r);
    a->u.hello_ack.link_pos = repl_apply_link_pos(r, c->node->st.node_id);
    a->u.hello_ack.log_head = atomic_load(&r->last_seq);
    a->u.hello_ack.hwm = v;
    a->u.hello_ack.n_hwm = repl_progress_fill(r, v, KMS_ARRAY_SIZE(v));
    int rc = repl_conn_send(c, a);
    repl_frame_free(a);
    if (rc == 0)
        link_open(c);
    if (c->state == RC_OPEN) {
        repl_startup_head(r, c->node, c->hello_head);
        /* It is up: our push link to it need not wait for its backoff
         * (a restarted node waits for our changes before it serves). */
        repl_peer_kick(r, c->hello_peer_addr);
    }
}

static void on_hello(repl_conn_t *c, const repl_frame_t *f)
{
    repl_t *r = c->r;
    if (f->u.hello.version != REPL_PROTO_VERSION) {
        repl_conn_fail(c, REPL_ERROR_VERSION, "protocol version %d is not %d", f->u.hello.version,
                       REPL_PROTO_VERSION);
        return;
    }
    if (check_identity(c, f->u.hello.cluster_id, f->u.hello.node_id, f->u.hello.wall_ms) != 0)
        return;
    if (!c->node) {
        repl_conn_close(c, "out of memory");
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (f->u.hello.peer_addr[0])
        kms_strlcpy(c->node->st.addr, f->u.hello.peer_addr, sizeof c->node->st.addr);
    pthread_mutex_unlock(&r->mu);
    contact(c, f->u.hello.wall_ms);
    c->hello_head = f->u.hello.log_head;
    kms_strlcpy(c->hello_peer_addr, f->u.hello.peer_addr, sizeof c->hello_peer_addr);
    /* A node that holds nothing and is being seeded by a snapshot (or
     * answered a push link moments ago, whose snapshot is on its way)
     * answers the other push links once it is applied: their HELLO_ACK then names
     * the positions the snapshot covered, and they send the tail instead
     * of a second snapshot. The connector's handshake deadline still runs:
     * after it, it connects again. */
    if (!atomic_load(&r->seeded) && (atomic_load(&r->catching_up) > 0 || seeding_link(c))) {
        c->hello_deferred = true;
        kms_log(KMS_LOG_INFO, REPL_LOG,
                "link %s from node %s: answered once the snapshot being applied is done",
                c->addr, c->node->st.node_id);
        return;
    }
    answer_hello(c);
}

void repl_link_answer_deferred(repl_t *r)
{
    for (repl_conn_t *c = r->conns; c; c = c->next)
        if (c->hello_deferred && c->state == RC_HELLO) {
            c->hello_deferred = false;
            answer_hello(c);
        }
}

static void on_hello_ack(repl_conn_t *c, const repl_frame_t *f)
{
    if (check_identity(c, f->u.hello_ack.cluster_id, f->u.hello_ack.node_id,
                       f->u.hello_ack.wall_ms) != 0)
        return;
    if (!c->node) {
        repl_conn_close(c, "out of memory");
        return;
    }
    contact(c, f->u.hello_ack.wall_ms);
    link_open(c);
    if (c->state == RC_OPEN) {
        repl_startup_head(c->r, c->node, f->u.hello_ack.log_head);
        repl_ship_start(c, f->u.hello_ack.link_pos, f->u.hello_ack.hwm, f->u.hello_ack.n_hwm);
    }
}

/* ----------------------------------------------------------- frames */
static void on_error(repl_conn_t *c, const repl_frame_t *f)
{
    repl_t *r = c->r;
    char msg[200];
    snprintf(msg, sizeof msg, "refused by the peer: %s (%s)", repl_error_text(f->u.error.code),
             f->u.error.message);
    kms_log(KMS_LOG_WARN, REPL_LOG, "link %s: %s", c->addr, msg);
    const char *state = NULL;
    switch (f->u.error.code) {
    case REPL_ERROR_SKEW: state = "skew"; break;
    case REPL_ERROR_REMOVED: state = "removed"; break;
    case REPL_ERROR_CLUSTER:
    case REPL_ERROR_DENIED:
    case REPL_ERROR_VERSION: state = "refused"; break;
    default: break;
    }
    /* The refusing side may not be named yet (refused before HELLO_ACK):
     * record it on the configured peer's node once known. */
    if (c->node)
        set_state(r, c->node, state, msg);
    else if (c->peer)
        repl_peer_error(c->peer, msg);
    repl_conn_close(c, msg);
}

static void on_ping(repl_conn_t *c, const repl_frame_t *f)
{
    repl_frame_t *p = repl_frame_new(REPL_FRAME_PONG);
    if (!p) {
        repl_conn_close(c, "out of memory");
        return;
    }
    p->u.ping.nonce = f->u.ping.nonce;
    p->u.ping.wall_ms = repl_wall_ms(c->r);
    contact(c, f->u.ping.wall_ms);
    (void)repl_conn_send(c, p);
    repl_frame_free(p);
}

void repl_link_frame(repl_conn_t *c, repl_frame_t *f)
{
    if (f->type == REPL_FRAME_ERROR) {
        on_error(c, f);
        goto out;
    }
    if (c->state == RC_HELLO) {
        if (!c->outbound && !c->has_cert && f->type == REPL_FRAME_JOIN_REQ) {
            repl_join_frame(c, f); /* a joining node (join.c); takes f */
            return;
        } else if (!c->outbound && !c->has_cert) {
            kms_log(KMS_LOG_WARN, REPL_LOG, "link %s refused: no certificate and not a JOIN_REQ",
                    c->addr);
            repl_conn_fail(c, REPL_ERROR_DENIED,
                           "a connection without a node certificate may only send JOIN_REQ");
        } else if (!c->outbound && f->type == REPL_FRAME_HELLO) {
            on_hello(c, f);
        } else if (c->outbound && f->type == REPL_FRAME_HELLO_ACK) {
            on_hello_ack(c, f);
        } else {
            repl_conn_fail(c, REPL_ERROR_PROTO, "%s before HELLO", repl_frame_type_name(f->type));
        }
        goto out;
    }
    contact(c, 0);
    switch (f->type) {
    case REPL_FRAME_PING:
        on_ping(c, f);
        break;
    case REPL_FRAME_PONG:
        contact(c, f->u.ping.wall_ms);
        break;
    case REPL_FRAME_VERIFY_REQ:
        if (c->outbound)
            repl_conn_fail(c, REPL_ERROR_PROTO, "VERIFY_REQ on a pushing link");
        else
            repl_verify_answer(c, f);
        break;
    case REPL_FRAME_VERIFY_RESP:
        if (c->outbound)
            repl_verify_response(c, f);
        else
            repl_conn_fail(c, REPL_ERROR_PROTO, "VERIFY_RESP on a receiving link");
        break;
    case REPL_FRAME_ACK:
        if (c->outbound)
            repl_ship_acked(c, f->u.ack.seq, f->u.ack.hwm, f->u.ack.n_hwm);
        else
            repl_conn_fail(c, REPL_ERROR_PROTO, "ACK on a receiving link");
        break;
    case REPL_FRAME_CHANGES:
    case REPL_FRAME_SNAPSHOT_BEGIN:
    case REPL_FRAME_SNAPSHOT_CHUNK:
    case REPL_FRAME_SNAPSHOT_END:
        if (c->outbound) {
            repl_conn_fail(c, REPL_ERROR_PROTO, "%s on a pushing link",
                           repl_frame_type_name(f->type));
            break;
        }
        repl_apply_frame(c, f); /* takes f */
        return;
    default:
        repl_conn_fail(c, REPL_ERROR_PROTO, "unexpected %s", repl_frame_type_name(f->type));
        break;
    }
out:
    repl_frame_free(f);
}

void repl_link_writable(repl_conn_t *c)
{
    if (c->outbound)
        repl_ship_more(c);
}

void repl_link_closed(repl_conn_t *c, const char *why, enum repl_conn_state was)
{
    repl_t *r = c->r;
    bool quiet = atomic_load(&r->stopping);
    if (c->node && was == RC_OPEN) {
        bool other = false;
        for (repl_conn_t *o = r->conns; o; o = o->next)
            if (o != c && o->node == c->node && o->outbound == c->outbound && o->state == RC_OPEN)
                other = true;
        pthread_mutex_lock(&r->mu);
        if (!other) {
            if (c->outbound)
                c->node->st.connected_out = false;
            else
                c->node->st.connected_in = false;
        }
        if (!quiet)
            kms_strlcpy(c->node->st.last_error, why, sizeof c->node->st.last_error);
        pthread_mutex_unlock(&r->mu);
        if (!quiet)
            kms_log(KMS_LOG_INFO, REPL_LOG, "link %s %s node %s closed: %s", c->addr,
                    c->outbound ? "to" : "from", c->node->st.node_id, why);
    }
    repl_verify_link_closed(c);
    repl_join_link_closed(c);
    if (c->outbound) {
        repl_ship_stop(c);
        if (c->peer && c->peer->conn == c) {
            c->peer->conn = NULL;
            if (!c->node && !quiet)
                repl_peer_error(c->peer, why);
            if (!quiet && !c->peer->is_self)
                repl_peer_schedule(c->peer);
        }
    } else {
        repl_apply_stop(c);
    }
}
