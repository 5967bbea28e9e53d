/*
 * admin/socket.c: kmsd's local admin socket.
 *
 * A Unix stream socket (conf admin.socket, chmod admin.mode, chgrp
 * admin.group). One thread accepts; each connection is served by a thread
 * of its own, at most ADMIN_MAX_CONNS at once (more are answered "busy"),
 * so a slow or stuck client never holds up another. Each message is one
 * TTLV ADMIN_REQUEST framed by its own 8-byte header and bounded by
 * ADMIN_MAX_MESSAGE (framing and decoding: admin/proto.c), answered by one
 * ADMIN_RESPONSE (admin/cmds.c). Timeouts are per connection and per
 * message: a request must arrive whole within ADMIN_IO_TIMEOUT_MS of its
 * first byte (trickling bytes does not extend it), an answer must be
 * taken within the same time, and a connection idle that long between
 * requests is closed; garbage closes it at once. Commands that change
 * state run one at a time (exec_mu); reading ones (status, lists) run
 * alongside them. The caller's uid/pid (SO_PEERCRED) name it in the log
 * and the audit log. A request may carry one open file (SCM_RIGHTS: the
 * backup file kmsctl created or opens for restore); it is closed after
 * that request. A long command may write ADMIN_PROGRESS messages on the
 * connection before its response (admin/progress.c).
 *
 * It deliberately listens only on a filesystem socket, never on a network
 * address, and does not run on the KMIP event loops: admin commands may
 * block on store commits without delaying any KMIP client.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/admin_int.h"

#define ADMIN_IO_TIMEOUT_MS 10000
/* Connections served at once; one more is told "busy" and closed. */
#define ADMIN_MAX_CONNS 16

struct admin {
    admin_options_t opt;
    char *socket_path;
    int lfd;
    int wake[2];      /* self-pipe: stop request (every thread polls it) */
    pthread_t thread;
    bool started;
    int64_t started_us;
    pthread_mutex_t mu;       /* n_conns */
    pthread_cond_t cv;        /* a connection thread ended */
    unsigned n_conns;
    pthread_mutex_t exec_mu;  /* commands that change state, one at a time */
};

typedef struct conn_arg {
    admin_t *ad;
    int fd;
} conn_arg_t;

/* Milliseconds left until `deadline_ms` (kms_mono_ns based), at least 0. */
static int ms_left(uint64_t deadline_ms)
{
    uint64_t now = kms_mono_ns() / 1000000ULL;
    return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

/* Read exactly n bytes by deadline_ms (kms_mono_ns() / 1e6). A file
 * descriptor passed with the bytes (SCM_RIGHTS) lands in *passed (the
 * first one; extras are closed). 0, KMS_ERR_IO (EOF/error),
 * KMS_ERR_TIMEOUT, KMS_ERR_STATE (stop), KMS_ERR_NOTFOUND (clean close). */
static int read_n(admin_t *ad, int fd, uint8_t *p, size_t n, bool at_start, int *passed,
                  uint64_t deadline_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = ad->wake[0], .events = POLLIN}};
        int pr = poll(pf, 2, ms_left(deadline_ms));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return KMS_ERR_IO;
        if (pf[1].revents)
            return KMS_ERR_STATE;
        if (pr == 0)
            return KMS_ERR_TIMEOUT;
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = p + got, .iov_len = n - got};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        for (struct cmsghdr *c = r >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int pfd;
                memcpy(&pfd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (*passed < 0)
                    *passed = pfd;
                else
                    close(pfd);
            }
        }
        if (r == 0 && got == 0 && at_start)
            return KMS_ERR_NOTFOUND; /* clean close between requests */
        if (r <= 0)
            return KMS_ERR_IO;
        got += (size_t)r;
    }
    return 0;
}

/* Write n bytes within ADMIN_IO_TIMEOUT_MS in all (responses here, progress
 * messages in progress.c). */
int admin_write_all(int fd, const uint8_t *p, size_t n)
{
    uint64_t deadline = kms_mono_ns() / 1000000ULL + ADMIN_IO_TIMEOUT_MS;
    while (n > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int pr = poll(&pf, 1, ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return KMS_ERR_IO;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return KMS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answer a request we could not even decode, then the caller closes. */
static void send_error(int fd, int rc, const char *msg)
{
    kms_arena_t *a = kms_arena_new(0);
    kms_buf_t out;
    kms_buf_init(&out, ADMIN_MAX_MESSAGE);
    ttlv_item_t *r = a ? ttlv_new_struct(a, NULL, ADMIN_TAG_RESPONSE) : NULL;
    if (r && ttlv_new_int(a, r, ADMIN_TAG_PROTOCOL_VERSION, ADMIN_PROTOCOL_VERSION) &&
        ttlv_new_int(a, r, ADMIN_TAG_STATUS, rc) &&
        ttlv_new_textz(a, r, ADMIN_TAG_MESSAGE, msg) && ttlv_encode(r, &out) == 0)
        (void)admin_write_all(fd, out.data, out.len);
    kms_buf_dispose(&out);
    kms_arena_free(a);
}

/* Commands that only read (run alongside others); everything else,
 * including commands this list does not know, runs alone. */
static bool reads_only(const ttlv_item_t *req)
{
    static const char *const shared[] = {"status", "audit.status", "tenant.list",
                                         "client.list"};
    const ttlv_item_t *c = ttlv_find(req, ADMIN_TAG_COMMAND);
    if (!c || c->type != TTLV_TEXT_STRING)
        return false;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(shared); i++)
        if (strcmp(ttlv_text(c), shared[i]) == 0)
            return true;
    return false;
}

static void serve_conn(admin_t *ad, int fd)
{
    char who[64] = "unknown";
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
        snprintf(who, sizeof(who), "uid=%u pid=%d", (unsigned)cred.uid, (int)cred.pid);
    uint8_t *msg = NULL;
    size_t msg_len = 0;
    kms_arena_t *a = kms_arena_new(8 * ADMIN_MAX_MESSAGE);
    if (!a)
        return;
    int passed = -1;
    for (;;) {
        uint8_t hdr[8];
        if (passed >= 0) {
            close(passed);
            passed = -1;
        }
        /* Idle between requests, then the whole request, each at most
         * ADMIN_IO_TIMEOUT_MS: the request's clock starts at its first byte. */
        uint64_t deadline = kms_mono_ns() / 1000000ULL + ADMIN_IO_TIMEOUT_MS;
        int rc = read_n(ad, fd, hdr, 1, true, &passed, deadline);
        deadline = kms_mono_ns() / 1000000ULL + ADMIN_IO_TIMEOUT_MS;
        if (rc == 0)
            rc = read_n(ad, fd, hdr + 1, 7, false, &passed, deadline);
        if (rc) {
            if (rc == KMS_ERR_TIMEOUT)
                kms_log(KMS_LOG_WARN, "admin", "%s: no complete request within %d s; closing",
                        who, ADMIN_IO_TIMEOUT_MS / 1000);
            break;
        }
        uint32_t blen = 0;
        if (admin_check_header(hdr, &blen) != 0) {
            kms_log(KMS_LOG_WARN, "admin", "%s: not an admin request; closing", who);
            send_error(fd, KMS_ERR_PROTO, "not an admin request (or too large)");
            break;
        }
        msg = malloc((size_t)blen + 8);
        if (!msg)
            break;
        msg_len = (size_t)blen + 8;
        memcpy(msg, hdr, 8);
        rc = read_n(ad, fd, msg + 8, blen, false, &passed, deadline);
        if (rc) {
            if (rc == KMS_ERR_TIMEOUT)
                kms_log(KMS_LOG_WARN, "admin", "%s: no complete request within %d s; closing",
                        who, ADMIN_IO_TIMEOUT_MS / 1000);
            break;
        }
        ttlv_item_t *req = NULL;
        kms_error_t terr;
        rc = admin_decode_request(msg, (size_t)blen + 8, a, &req, &terr);
        /* The request may carry a password: wipe the raw bytes now. */
        kms_wipe(msg, (size_t)blen + 8);
        free(msg);
        msg = NULL;
        if (rc) {
            kms_log(KMS_LOG_WARN, "admin", "%s: malformed request at byte %zu: %s", who,
                    terr.offset, terr.msg);
            send_error(fd, KMS_ERR_PROTO, terr.msg);
            break;
        }
        bool exclusive = !reads_only(req);
        if (exclusive)
            pthread_mutex_lock(&ad->exec_mu);
        ttlv_item_t *resp = admin_execute(&ad->opt, ad->started_us, who, req, passed, fd, a);
        if (exclusive)
            pthread_mutex_unlock(&ad->exec_mu);
        kms_buf_t out;
        kms_buf_init(&out, ADMIN_MAX_MESSAGE);
        rc = resp ? ttlv_encode(resp, &out) : KMS_ERR_NOMEM;
        if (rc) {
            send_error(fd, rc, rc == KMS_ERR_LIMIT ? "answer too large" : "out of memory");
            kms_buf_dispose(&out);
            break;
        }
        rc = admin_write_all(fd, out.data, out.len);
        kms_buf_dispose(&out);
        kms_arena_reset(a); /* wipes: the request tree held the password */
        if (rc)
            break;
    }
    if (passed >= 0)
        close(passed);
    if (msg)
        kms_wipe(msg, msg_len); /* a request cut short may hold part of a password */
    free(msg);
    kms_arena_free(a);
}

static void *conn_main(void *arg)
{
    conn_arg_t *ca = arg;
    admin_t *ad = ca->ad;
    (void)pthread_setname_np(pthread_self(), "kmsd-admin-c");
    serve_conn(ad, ca->fd);
    close(ca->fd);
    free(ca);
    pthread_mutex_lock(&ad->mu);
    ad->n_conns--;
    pthread_cond_broadcast(&ad->cv);
    pthread_mutex_unlock(&ad->mu);
    return NULL;
}

/* Hand a new connection to a thread of its own, or say "busy". */
static void start_conn(admin_t *ad, int fd)
{
    pthread_mutex_lock(&ad->mu);
    bool room = ad->n_conns < ADMIN_MAX_CONNS;
    if (room)
        ad->n_conns++;
    pthread_mutex_unlock(&ad->mu);
    conn_arg_t *ca = room ? malloc(sizeof *ca) : NULL;
    pthread_attr_t at;
    bool started = false;
    if (ca && pthread_attr_init(&at) == 0) {
        *ca = (conn_arg_t){.ad = ad, .fd = fd};
        (void)pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&(pthread_t){0}, &at, conn_main, ca) == 0;
        pthread_attr_destroy(&at);
    }
    if (started)
        return;
    free(ca);
    if (room) {
        pthread_mutex_lock(&ad->mu);
        ad->n_conns--;
        pthread_mutex_unlock(&ad->mu);
    }
    kms_log(KMS_LOG_WARN, "admin", "%s admin connection refused: %d already served",
            room ? "cannot start a thread:" : "busy:", ADMIN_MAX_CONNS);
    send_error(fd, KMS_ERR_BUSY, "too many admin connections at once; try again");
    close(fd);
}

static void *admin_main(void *arg)
{
    admin_t *ad = arg;
    (void)pthread_setname_np(pthread_self(), "kmsd-admin");
    for (;;) {
        struct pollfd pf[2] = {{.fd = ad->lfd, .events = POLLIN}, {.fd = ad->wake[0], .events = POLLIN}};
        int pr = poll(pf, 2, -1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0 || pf[1].revents)
            break;
        int fd = accept4(ad->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        start_conn(ad, fd);
    }
    /* Connection threads see the same wake-up and end after their
     * current command. */
    pthread_mutex_lock(&ad->mu);
    while (ad->n_conns > 0)
        pthread_cond_wait(&ad->cv, &ad->mu);
    pthread_mutex_unlock(&ad->mu);
    return NULL;
}

/* Is something answering on this socket path? */
static bool socket_alive(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(fd);
    return alive;
}

int admin_start(const admin_options_t *opt, admin_t **out)
{
    *out = NULL;
    if (!opt || !opt->socket_path || !*opt->socket_path || !opt->store)
        return KMS_ERR_INVAL;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(opt->socket_path) >= sizeof(sun.sun_path)) {
        kms_log(KMS_LOG_ERROR, "admin", "admin.socket path too long: %s", opt->socket_path);
        return KMS_ERR_CONFIG;
    }
    strcpy(sun.sun_path, opt->socket_path);
    admin_t *ad = calloc(1, sizeof(*ad));
    if (!ad)
        return KMS_ERR_NOMEM;
    ad->lfd = -1;
    ad->wake[0] = ad->wake[1] = -1;
    pthread_mutex_init(&ad->mu, NULL);
    pthread_cond_init(&ad->cv, NULL);
    pthread_mutex_init(&ad->exec_mu, NULL);
    ad->opt = *opt;
    ad->started_us = kms_now_us();
    int rc = KMS_ERR_NOMEM;
    ad->socket_path = strdup(opt->socket_path);
    if (!ad->socket_path)
        goto fail;
    ad->opt.socket_path = ad->socket_path;
    rc = KMS_ERR_IO;
    if (pipe2(ad->wake, O_CLOEXEC) != 0)
        goto fail;
    struct stat st;
    if (lstat(sun.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            kms_log(KMS_LOG_ERROR, "admin", "%s exists and is not a socket", sun.sun_path);
            goto fail;
        }
        if (socket_alive(&sun)) {
            kms_log(KMS_LOG_ERROR, "admin", "%s: another kmsd answers on it", sun.sun_path);
            rc = KMS_ERR_EXISTS;
            goto fail;
        }
        unlink(sun.sun_path); /* stale, from a crashed kmsd */
    }
    ad->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ad->lfd < 0)
        goto fail;
    /* Bind with a restrictive umask so there is no window in which the
     * socket is open to others; then set the configured mode. */
    mode_t old = umask(0177);
    int br = bind(ad->lfd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (br != 0) {
        kms_log(KMS_LOG_ERROR, "admin", "bind %s: %s", sun.sun_path, strerror(errno));
        goto fail;
    }
    if (opt->group && *opt->group) {
        struct group gr, *res = NULL;
        char buf[4096];
        if (getgrnam_r(opt->group, &gr, buf, sizeof(buf), &res) != 0 || !res) {
            kms_log(KMS_LOG_ERROR, "admin", "admin.group '%s': no such group", opt->group);
            rc = KMS_ERR_CONFIG;
            goto fail_unlink;
        }
        if (chown(sun.sun_path, (uid_t)-1, res->gr_gid) != 0) {
            kms_log(KMS_LOG_ERROR, "admin", "chgrp %s: %s", sun.sun_path, strerror(errno));
            goto fail_unlink;
        }
    }
    if (chmod(sun.sun_path, (mode_t)(opt->mode ? opt->mode : 0600) & 0777) != 0) {
        kms_log(KMS_LOG_ERROR, "admin", "chmod %s: %s", sun.sun_path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(ad->lfd, 16) != 0)
        goto fail_unlink;
    if (pthread_create(&ad->thread, NULL, admin_main, ad) != 0) {
        rc = KMS_ERR_INTERNAL;
        goto fail_unlink;
    }
    ad->started = true;
    kms_log(KMS_LOG_INFO, "admin", "admin socket %s (mode %04o)", sun.sun_path,
            (opt->mode ? opt->mode : 0600) & 0777);
    *out = ad;
    return 0;
fail_unlink:
    unlink(sun.sun_path);
fail:
    admin_stop(ad);
    return rc;
}

void admin_stop(admin_t *ad)
{
    if (!ad)
        return;
    if (ad->started) {
        ssize_t w;
        do {
            w = write(ad->wake[1], "x", 1);
        } while (w < 0 && errno == EINTR);
        pthread_join(ad->thread, NULL);
        unlink(ad->socket_path);
    }
    if (ad->lfd >= 0)
        close(ad->lfd);
    if (ad->wake[0] >= 0)
        close(ad->wake[0]);
    if (ad->wake[1] >= 0)
        close(ad->wake[1]);
    pthread_mutex_destroy(&ad->mu);
    pthread_cond_destroy(&ad->cv);
    pthread_mutex_destroy(&ad->exec_mu);
    free(ad->socket_path);
    free(ad);
}
