/*
 * admin/client.c: the client side of kmsd's admin socket.
 *
 * Sends one TTLV ADMIN_REQUEST and reads one ADMIN_RESPONSE (bounded by
 * ADMIN_MAX_MESSAGE), passing the ADMIN_PROGRESS messages that may come
 * before it to a callback, and prints the response records as text or JSON.
 * It deliberately holds no command logic and no policy on what to tell a
 * user: kmsctl builds the requests, finds the socket in kmsd's
 * configuration and turns the outcome into messages and exit codes.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/admin.h"

ttlv_item_t *admin_request_new(kms_arena_t *a, const char *command)
{
    ttlv_item_t *r = ttlv_new_struct(a, NULL, ADMIN_TAG_REQUEST);
    if (!r || !ttlv_new_int(a, r, ADMIN_TAG_PROTOCOL_VERSION, ADMIN_PROTOCOL_VERSION) ||
        !ttlv_new_textz(a, r, ADMIN_TAG_COMMAND, command))
        return NULL;
    return r;
}

static unsigned g_timeout_ms; /* admin_call_set_timeout; 0 = none */

void admin_call_set_timeout(unsigned ms)
{
    g_timeout_ms = ms;
}

/* Wait until fd is readable (or writable) before deadline_ms; 0 = no
 * deadline. 0 or KMS_ERR_TIMEOUT. */
static int wait_fd(int fd, short ev, uint64_t deadline_ms)
{
    if (!deadline_ms)
        return 0;
    for (;;) {
        uint64_t now = kms_mono_ns() / 1000000ULL;
        if (now >= deadline_ms)
            return KMS_ERR_TIMEOUT;
        struct pollfd pf = {.fd = fd, .events = ev};
        int pr = poll(&pf, 1, (int)(deadline_ms - now));
        if (pr > 0)
            return 0;
        if (pr < 0 && errno != EINTR)
            return KMS_ERR_IO;
    }
}

static int read_all(int fd, uint8_t *p, size_t n, uint64_t deadline_ms)
{
    while (n > 0) {
        int wr = wait_fd(fd, POLLIN, deadline_ms);
        if (wr)
            return wr;
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return KMS_ERR_IO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The request's bytes, with `pass_fd` (if >= 0) attached to the first ones. */
static int send_request(int fd, const uint8_t *p, size_t n, int pass_fd)
{
    if (pass_fd >= 0 && n > 0) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } cm;
        memset(&cm, 0, sizeof(cm));
        struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        ssize_t w;
        do {
            w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        if (w <= 0)
            return KMS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    /* send(), not write(): kmsd may close the socket before reading it all
     * (a "busy" answer), and that must not kill kmsctl with SIGPIPE. */
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KMS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ADMIN_PROGRESS: hand its fields to cb. 0 or KMS_ERR_PROTO. */
static int deliver_progress(const ttlv_item_t *m, admin_progress_cb cb, void *cb_arg)
{
    const ttlv_item_t *ph = ttlv_find(m, ADMIN_TAG_PROGRESS_PHASE);
    const ttlv_item_t *un = ttlv_find(m, ADMIN_TAG_PROGRESS_UNIT);
    const ttlv_item_t *dn = ttlv_find(m, ADMIN_TAG_PROGRESS_DONE);
    const ttlv_item_t *tt = ttlv_find(m, ADMIN_TAG_PROGRESS_TOTAL);
    if (!ph || ph->type != TTLV_TEXT_STRING || !un || un->type != TTLV_TEXT_STRING || !dn ||
        dn->type != TTLV_LONG_INTEGER || !tt || tt->type != TTLV_LONG_INTEGER)
        return KMS_ERR_PROTO;
    if (cb)
        cb(cb_arg, ttlv_text(ph), ttlv_text(un), dn->v.i64, tt->v.i64);
    return 0;
}

/* Read one message before deadline_ms (0 = none): an ADMIN_RESPONSE
 * decoded into `a`, or an ADMIN_PROGRESS decoded into `pa`. */
static int read_message(int fd, kms_arena_t *a, kms_arena_t *pa, uint64_t deadline,
                        ttlv_item_t **out, kms_error_t *err)
{
    uint8_t hdr[8], *body = NULL;
    int rc = read_all(fd, hdr, 8, deadline);
    if (rc == KMS_ERR_TIMEOUT)
        return kms_error_set(err, KMS_ERR_TIMEOUT, "no answer from kmsd within %u ms (--timeout)",
                             g_timeout_ms);
    if (rc != 0)
        return kms_error_set(err, KMS_ERR_IO, "kmsd closed the admin connection without an answer");
    uint32_t tag = ((uint32_t)hdr[0] << 16) | ((uint32_t)hdr[1] << 8) | hdr[2];
    uint32_t blen = kms_be32(hdr + 4);
    if ((tag != ADMIN_TAG_RESPONSE && tag != ADMIN_TAG_PROGRESS) || hdr[3] != TTLV_STRUCTURE ||
        blen > ADMIN_MAX_MESSAGE - 8)
        return kms_error_set(err, KMS_ERR_PROTO, "malformed answer on the admin socket");
    body = malloc((size_t)blen + 8);
    if (!body)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    memcpy(body, hdr, 8);
    kms_error_t terr;
    rc = read_all(fd, body + 8, blen, deadline);
    if (rc != 0)
        rc = kms_error_set(err, rc == KMS_ERR_TIMEOUT ? KMS_ERR_TIMEOUT : KMS_ERR_IO,
                           rc == KMS_ERR_TIMEOUT ? "the answer did not arrive within %u ms "
                                                   "(--timeout)"
                                                 : "truncated answer on the admin socket",
                           g_timeout_ms);
    else if (ttlv_decode(body, (size_t)blen + 8, NULL, tag == ADMIN_TAG_RESPONSE ? a : pa, out,
                         &terr) != 0)
        rc = kms_error_set(err, KMS_ERR_PROTO, "malformed answer on the admin socket: %s", terr.msg);
    free(body);
    return rc;
}

int admin_call(const char *socket_path, kms_arena_t *a, const ttlv_item_t *req, int pass_fd,
               ttlv_item_t **resp_out, kms_error_t *err)
{
    return admin_call_progress(socket_path, a, req, pass_fd, NULL, NULL, resp_out, err);
}

int admin_call_progress(const char *socket_path, kms_arena_t *a, const ttlv_item_t *req,
                        int pass_fd, admin_progress_cb cb, void *cb_arg, ttlv_item_t **resp_out,
                        kms_error_t *err)
{
    int fd = -1, rc;
    kms_arena_t *pa = NULL; /* progress messages, reset after each */
    kms_buf_t out;
    kms_buf_init(&out, ADMIN_MAX_MESSAGE);
    *resp_out = NULL;

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof(sun.sun_path)) {
        rc = kms_error_set(err, KMS_ERR_INVAL, "admin socket path too long: %s", socket_path);
        goto out;
    }
    strcpy(sun.sun_path, socket_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        rc = kms_error_set(err, KMS_ERR_UNAVAIL, "cannot reach kmsd at %s: %s", socket_path,
                           strerror(errno));
        goto out;
    }
    uint64_t deadline = g_timeout_ms ? kms_mono_ns() / 1000000ULL + g_timeout_ms : 0;
    if (g_timeout_ms) {
        /* Sending blocks only on a full socket buffer: bound it too. */
        struct timeval tv = {.tv_sec = g_timeout_ms / 1000,
                             .tv_usec = (suseconds_t)(g_timeout_ms % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (ttlv_encode(req, &out) != 0) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, "cannot encode the request");
        goto out;
    }
    /* When kmsd closed the connection before taking the whole request, it
     * may have said why first ("busy"): that answer is read below, and
     * only without one is the failed send the error. */
    bool sent = send_request(fd, out.data, out.len, pass_fd) == 0;
    int send_errno = errno;
    kms_buf_dispose_wipe(&out); /* may have held a password */
    if (!(pa = kms_arena_new(0))) {
        rc = kms_error_set(err, KMS_ERR_NOMEM, NULL);
        goto out;
    }
    ttlv_item_t *resp = NULL;
    for (;;) {
        kms_arena_reset(pa);
        if ((rc = read_message(fd, a, pa, deadline, &resp, err)) != 0) {
            if (!sent)
                rc = kms_error_set(err, KMS_ERR_IO, "cannot send the request to %s: %s",
                                   socket_path, strerror(send_errno));
            goto out;
        }
        if (resp->tag == ADMIN_TAG_RESPONSE)
            break;
        if (deliver_progress(resp, cb, cb_arg) != 0) {
            rc = kms_error_set(err, KMS_ERR_PROTO, "malformed progress message on the admin socket");
            goto out;
        }
        /* kmsd is working on it: the timeout counts from its last word. */
        if (deadline)
            deadline = kms_mono_ns() / 1000000ULL + g_timeout_ms;
    }
    ttlv_item_t *ver = ttlv_find(resp, ADMIN_TAG_PROTOCOL_VERSION);
    ttlv_item_t *st = ttlv_find(resp, ADMIN_TAG_STATUS);
    if (!ver || ver->type != TTLV_INTEGER || !st || st->type != TTLV_INTEGER) {
        rc = kms_error_set(err, KMS_ERR_PROTO, "answer without version or status");
        goto out;
    }
    *resp_out = resp;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    kms_arena_free(pa);
    kms_buf_dispose_wipe(&out);
    return rc;
}

int admin_response_status(const ttlv_item_t *resp, const char **msg_out)
{
    const ttlv_item_t *st = resp ? ttlv_find(resp, ADMIN_TAG_STATUS) : NULL;
    const ttlv_item_t *msg = resp ? ttlv_find(resp, ADMIN_TAG_MESSAGE) : NULL;
    if (msg_out)
        *msg_out = msg && msg->type == TTLV_TEXT_STRING ? ttlv_text(msg) : "";
    if (!st || st->type != TTLV_INTEGER)
        return KMS_ERR_PROTO;
    return st->v.i32 > 0 ? KMS_ERR_PROTO : st->v.i32;
}

/* ------------------------------------------------------------- printing */
/* Columns of a table; field names past this many are not shown (--json
 * shows everything). */
#define ADMIN_TABLE_MAX_COLUMNS 32

static void json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void print_value(FILE *f, const ttlv_item_t *v, bool json)
{
    if (!v) {
        fputs(json ? "null" : "", f);
    } else if (v->tag == ADMIN_TAG_FIELD_TEXT && v->type == TTLV_TEXT_STRING) {
        if (json)
            json_string(f, ttlv_text(v), v->v.bytes.len);
        else
            fwrite(v->v.bytes.ptr, 1, v->v.bytes.len, f);
    } else if (v->tag == ADMIN_TAG_FIELD_LONG && v->type == TTLV_LONG_INTEGER) {
        fprintf(f, "%" PRId64, v->v.i64);
    } else if (v->tag == ADMIN_TAG_FIELD_BOOL && v->type == TTLV_BOOLEAN) {
        fputs(v->v.b ? "true" : "false", f);
    } else {
        fputs(json ? "null" : "?", f);
    }
}

const ttlv_item_t *admin_field_value(const ttlv_item_t *field)
{
    for (const ttlv_item_t *c = field->first; c; c = c->next)
        if (c->tag != ADMIN_TAG_FIELD_NAME)
            return c;
    return NULL;
}

const char *admin_field_name(const ttlv_item_t *field)
{
    const ttlv_item_t *n = ttlv_find(field, ADMIN_TAG_FIELD_NAME);
    return n && n->type == TTLV_TEXT_STRING ? ttlv_text(n) : "?";
}

static void print_record_json(FILE *f, const ttlv_item_t *rec)
{
    fputc('{', f);
    bool first = true;
    for (const ttlv_item_t *fl = ttlv_find(rec, ADMIN_TAG_FIELD); fl;
         fl = ttlv_find_next(fl, ADMIN_TAG_FIELD)) {
        const char *name = admin_field_name(fl);
        if (!first)
            fputc(',', f);
        first = false;
        json_string(f, name, strlen(name));
        fputc(':', f);
        print_value(f, admin_field_value(fl), true);
    }
    fputc('}', f);
}

void admin_print_records(FILE *f, const ttlv_item_t *resp, bool single, bool json)
{
    const ttlv_item_t *first = ttlv_find(resp, ADMIN_TAG_RECORD);
    if (json) {
        if (single) {
            if (first)
                print_record_json(f, first);
            else
                fputs("{}", f);
        } else {
            fputc('[', f);
            for (const ttlv_item_t *r = first; r; r = ttlv_find_next(r, ADMIN_TAG_RECORD)) {
                if (r != first)
                    fputc(',', f);
                print_record_json(f, r);
            }
            fputc(']', f);
        }
        fputc('\n', f);
        return;
    }
    if (single) {
        if (!first)
            return;
        for (const ttlv_item_t *fl = ttlv_find(first, ADMIN_TAG_FIELD); fl;
             fl = ttlv_find_next(fl, ADMIN_TAG_FIELD)) {
            fprintf(f, "%-16s ", admin_field_name(fl));
            print_value(f, admin_field_value(fl), false);
            fputc('\n', f);
        }
        return;
    }
    /* A table: one column per field name, in the order the records first
     * name them (records may differ: a device client has its identifiers
     * where a certificate client has its fingerprint, a disabled client
     * has when and why), tab-separated so that scripts can cut(1) it; a
     * record without a column's field leaves it empty. --json is the
     * stable format. */
    if (!first) {
        fprintf(f, "(none)\n");
        return;
    }
    const char *cols[ADMIN_TABLE_MAX_COLUMNS];
    size_t ncols = 0;
    for (const ttlv_item_t *r = first; r; r = ttlv_find_next(r, ADMIN_TAG_RECORD))
        for (const ttlv_item_t *fl = ttlv_find(r, ADMIN_TAG_FIELD); fl;
             fl = ttlv_find_next(fl, ADMIN_TAG_FIELD)) {
            const char *name = admin_field_name(fl);
            size_t c = 0;
            while (c < ncols && strcmp(cols[c], name) != 0)
                c++;
            if (c == ncols && ncols < ADMIN_TABLE_MAX_COLUMNS)
                cols[ncols++] = name;
        }
    for (size_t c = 0; c < ncols; c++)
        fprintf(f, "%s%s", c ? "\t" : "", cols[c]);
    fputc('\n', f);
    for (const ttlv_item_t *r = first; r; r = ttlv_find_next(r, ADMIN_TAG_RECORD)) {
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                fputc('\t', f);
            const ttlv_item_t *fl = ttlv_find(r, ADMIN_TAG_FIELD);
            while (fl && strcmp(admin_field_name(fl), cols[c]) != 0)
                fl = ttlv_find_next(fl, ADMIN_TAG_FIELD);
            if (fl)
                print_value(f, admin_field_value(fl), false);
        }
        fputc('\n', f);
    }
}
