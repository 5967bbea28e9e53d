/*
 * server/listen.c: listen addresses and their sockets.
 *
 * Resolves each `listen` and `http.listen` entry once, then creates one bound socket per
 * address per event loop with SO_REUSEPORT, so the kernel spreads incoming
 * connections over the loops (Debian's libuv 1.44 has no UV_TCP_REUSEPORT,
 * hence socket()/bind() here and uv_tcp_open() in the loop thread). "[::]"
 * is dual-stack (IPV6_V6ONLY off); any other IPv6 address is IPv6 only.
 *
 * It deliberately does not accept or read: loop.c and conn.c do. Because
 * SO_REUSEPORT would let a second kmsd (same user) silently share a port,
 * srv_listen_probe() first binds without it and fails if the port is taken.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server_int.h"

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
    }
}

int srv_listen_resolve(srv_t *srv, kms_error_t *err)
{
    const conf_t *c = srv->conf;
    size_t n = c->n_listen + c->http.n_listen;
    srv->addrs = calloc(n, sizeof *srv->addrs);
    if (!srv->addrs)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        char host[256], port[8];
        uint16_t p;
        struct addrinfo hints = {0}, *res = NULL;
        bool http = i >= c->n_listen;
        const char *text = http ? c->http.listen[i - c->n_listen] : c->listen[i];
        const char *key = http ? "http.listen" : "listen";
        if (conf_parse_hostport(text, host, sizeof host, &p) != 0) {
            return kms_error_set(err, KMS_ERR_CONFIG, "%s: bad address '%s'", key, text);
        }
        snprintf(port, sizeof port, "%u", p);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (g != 0 || !res) {
            return kms_error_set(err, KMS_ERR_CONFIG, "%s: cannot resolve '%s': %s", key, text,
                                 gai_strerror(g));
        }
        srv->addrs[i].http = http;
        memcpy(&srv->addrs[i].ss, res->ai_addr, res->ai_addrlen);
        srv->addrs[i].len = res->ai_addrlen;
        freeaddrinfo(res);
        addr_text(&srv->addrs[i].ss, srv->addrs[i].text, sizeof srv->addrs[i].text);
        srv->n_addrs++;
    }
    return 0;
}

static int make_socket(const srv_addr_t *a, bool reuseport, kms_error_t *err)
{
    int one = 1, fd, e;
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return kms_error_set(err, KMS_ERR_IO, "listen %s: socket: %s", a->text, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0))
        goto fail;
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
            goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
        goto fail;
    return fd;
fail:
    e = errno;
    close(fd);
    return kms_error_set(err, KMS_ERR_IO, "listen %s: %s", a->text, strerror(e));
}

int srv_listen_socket(const srv_addr_t *a, kms_error_t *err)
{
    return make_socket(a, true, err);
}

int srv_listen_probe(const srv_addr_t *a, kms_error_t *err)
{
    int fd = make_socket(a, false, err);
    if (fd < 0)
        return KMS_ERR_IO;
    close(fd); /* never listened, so no TIME_WAIT: the port is free again */
    return 0;
}
