/*
 * replication/pending.c: the parts of the module that need the store's
 * replication API (change-log reader, entity state with clocks, applied
 * writes, peer progress). Until that API is in store/, links carry HELLO,
 * PING/PONG and ERROR only: nothing is shipped, CHANGES and SNAPSHOT
 * frames are refused, every link position is 0 and no node is known to
 * be removed. ship.c, apply.c and sync.c replace this file.
 */
#include "replication/repl_int.h"

void repl_ship_start(repl_conn_t *c, int64_t link_pos)
{
    (void)c;
    (void)link_pos;
}

void repl_ship_acked(repl_conn_t *c, int64_t seq)
{
    (void)seq;
    repl_conn_fail(c, REPL_ERROR_PROTO, "ACK with nothing in flight");
}

void repl_ship_more(repl_conn_t *c)
{
    (void)c;
}

void repl_ship_stop(repl_conn_t *c)
{
    (void)c;
}

int64_t repl_apply_link_pos(repl_t *r, const char *node_id)
{
    (void)r;
    (void)node_id;
    return 0;
}

void repl_apply_frame(repl_conn_t *c, repl_frame_t *f)
{
    repl_frame_free(f);
    repl_conn_fail(c, REPL_ERROR_INTERNAL, "this node cannot apply changes");
}

void repl_apply_stop(repl_conn_t *c)
{
    (void)c;
}

int repl_hooks_init(repl_t *r, kms_error_t *err)
{
    (void)err;
    r->hooks_init = true;
    return 0;
}

void repl_hooks_wake(repl_t *r)
{
    (void)r;
}

void repl_hooks_stop(repl_t *r)
{
    r->hooks_init = false;
}

void repl_hooks_free(repl_t *r)
{
    (void)r;
}

void repl_status_fill(repl_t *r, repl_peer_status_t *v, size_t n)
{
    (void)r;
    (void)v;
    (void)n;
}

bool repl_node_removed(repl_t *r, const char *node_id, const char *fp)
{
    (void)r;
    (void)node_id;
    (void)fp;
    return false;
}

void repl_set_node_state(repl_t *r, repl_node_t *n, const char *state)
{
    if (!n)
        return;
    pthread_mutex_lock(&r->mu);
    kms_strlcpy(n->st.state, state, sizeof n->st.state);
    pthread_mutex_unlock(&r->mu);
}
