/*
 * server/timer.c: the one timer helper every connection deadline goes
 * through (handshake, idle, message, write, close grace).
 *
 * Each connection has a single uv_timer_t; srv_timer_set() re-arms it only
 * when the kind of deadline changes (or the caller asks), so a client that
 * trickles one byte per second cannot push its message deadline back
 * (slowloris). It deliberately knows nothing about TLS or KMIP: on expiry
 * it closes the connection with a reason naming the limit.
 */
#include <stdio.h>

#include "server/server_int.h"

/* Time given to a closing connection to flush its close_notify. */
#define SRV_CLOSE_GRACE_MS 2000

const char *srv_timer_name(enum srv_timer_kind kind)
{
    switch (kind) {
    case SRV_TIMER_HANDSHAKE: return "limits.handshake_timeout";
    case SRV_TIMER_IDLE: return "limits.idle_timeout";
    case SRV_TIMER_MESSAGE: return "limits.message_timeout";
    case SRV_TIMER_WRITE: return "client not reading (limits.message_timeout)";
    case SRV_TIMER_CLOSE: return "close grace";
    case SRV_TIMER_DURABLE: return "audit record not durable (limits.message_timeout)";
    case SRV_TIMER_NONE: break;
    }
    return "none";
}

uint64_t srv_timer_ms(const srv_t *srv, enum srv_timer_kind kind)
{
    switch (kind) {
    case SRV_TIMER_HANDSHAKE: return srv->limits.handshake_timeout_ms;
    case SRV_TIMER_IDLE: return srv->limits.idle_timeout_ms;
    case SRV_TIMER_MESSAGE: return srv->limits.message_timeout_ms;
    case SRV_TIMER_WRITE: return srv->limits.message_timeout_ms;
    case SRV_TIMER_CLOSE: return SRV_CLOSE_GRACE_MS;
    case SRV_TIMER_DURABLE: return srv->limits.message_timeout_ms;
    case SRV_TIMER_NONE: break;
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    srv_conn_t *c = t->data;
    enum srv_timer_kind kind = c->timer_kind;
    c->timer_kind = SRV_TIMER_NONE;
    if (kind == SRV_TIMER_CLOSE) {
        srv_conn_close_now(c);
        return;
    }
    char why[96];
    snprintf(why, sizeof why, "timeout: %s (%llu ms)", srv_timer_name(kind),
             (unsigned long long)srv_timer_ms(c->loop->srv, kind));
    if (kind == SRV_TIMER_HANDSHAKE || kind == SRV_TIMER_WRITE)
        c->tls_failed = true; /* no close_notify: the peer is not there */
    srv_conn_close(c, why);
}

void srv_timer_set(srv_conn_t *c, enum srv_timer_kind kind, bool restart)
{
    if (!c->timer_init || c->handles_closing)
        return;
    if (kind == c->timer_kind && !restart)
        return;
    c->timer_kind = kind;
    if (kind == SRV_TIMER_NONE) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, srv_timer_ms(c->loop->srv, kind), 0);
}
